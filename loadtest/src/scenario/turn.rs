//! `turn`: TURN (RFC 8656) load over UDP or TCP against any server that takes TURN REST
//! API credentials (`--secret`) or a static user (`--user`/`--password`): Switchboard's
//! relay or coturn.
//!
//! `--mode relay` (the default): each client allocates (the 401 challenge round trip
//! included in the allocation latency), creates a permission and binds a channel to a
//! loopback peer this process runs (UDP sockets on 127.0.0.1; the server must allow
//! 127.0.0.1 as a peer), then sends numbered, timestamped packets at its share of `--rate`
//! as ChannelData (`--via channel`), Send indications (`send`) or both alternately. The
//! peer echoes each packet back through the relay unless `--no-echo`. Unit of work: a
//! relayed packet that arrived (at the peer, or back at the client); latencies are one
//! way; loss is sent − received per leg after a drain, and counts as errors so
//! `--slo loss<1%` reads it; jitter (RFC 3550) is one value per flow and leg.
//!
//! `--mode allocate`: each client allocates on a fresh socket and releases (Refresh with
//! LIFETIME 0) in a loop at its share of `--rate`. Unit of work: an allocation.
//!
//! The STUN codec is turn-relay's (zero-copy parse, writer into our buffers): per packet
//! a client only fills a reused buffer, so the tester is not what limits the rate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use turn_relay::core::auth::{long_term_key, rest_password};
use turn_relay::core::stun::{self, attr, channel_data, method, Class, Message, Writer};

use crate::report::Report;
use crate::run::{drive_udp, Common, Live, Pacer};
use crate::stats::{self, Batch, Flow};

/// Bound on one client's allocation, permission and channel setup, retransmissions included.
const SETUP_LIMIT: Duration = Duration::from_secs(10);
/// Bound on releasing an allocation at the end (one or two tries).
const RELEASE_LIMIT: Duration = Duration::from_secs(1);
/// First STUN retransmission timeout over UDP, doubled per try (RFC 8489 §6.2.1 uses
/// 500 ms for the Internet; loopback answers in microseconds).
const FIRST_RTO: Duration = Duration::from_millis(250);
/// How long receivers keep reading after sending stops, for packets in flight.
const DRAIN: Duration = Duration::from_millis(500);
/// The channel every client binds (each allocation has its own channel space).
const CHANNEL: u16 = 0x4000;
/// Payload layout: run tag u32, client index u32, sequence u64, send time µs u64, kind u8.
const HEADER: usize = 25;
pub const MIN_SIZE: usize = 32;
pub const MAX_SIZE: usize = 1200;
/// Packet kinds: the uplink path taken, or the peer's echo.
const KIND_CHANNEL: u8 = 0;
const KIND_SEND: u8 = 1;
const KIND_ECHO: u8 = 2;
/// Receive and send buffers asked for on the tester's UDP sockets (the kernel caps them at
/// net.core.rmem_max / wmem_max): bursts from many paced clients must not drop here.
const UDP_BUFFER: usize = 4 << 20;
/// REQUESTED-TRANSPORT: UDP (RFC 8656 §18.7).
const TRANSPORT_UDP: [u8; 4] = [17, 0, 0, 0];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    Udp,
    Tcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Allocate once, then send through the relay to the loopback peer.
    Relay,
    /// Allocate and release in a loop (unit: allocation).
    Allocate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    /// ChannelData.
    Channel,
    /// Send indications.
    Send,
    /// Alternately.
    Both,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TurnArgs {
    #[command(flatten)]
    pub common: Common,
    /// The TURN listener, host:port (loopback only): Switchboard's `TURN (UDP)` banner line
    /// (TCP is on the same port), or coturn's listening port.
    #[arg(long, default_value = "127.0.0.1:3478")]
    pub target: String,
    /// Client transport to the server (the relayed leg to the peer is UDP either way).
    #[arg(long, value_enum, default_value = "udp")]
    pub transport: Transport,
    /// TURN REST API shared secret: username `expiry:userid` (one user id per client),
    /// password base64(HMAC-SHA1(secret, username)).
    #[arg(long, env = "LOADTEST_TURN_SECRET", conflicts_with_all = ["user", "password"])]
    pub secret: Option<String>,
    /// A static long-term user instead of --secret (all clients share its quota).
    #[arg(long, requires = "password")]
    pub user: Option<String>,
    /// The static user's password.
    #[arg(long, requires = "user")]
    pub password: Option<String>,
    /// Validity of the REST usernames minted from --secret.
    #[arg(long, default_value = "60m", value_parser = crate::run::parse_duration)]
    pub credential_ttl: Duration,
    /// What each client does (`--rate` is packets/s or allocations/s over all clients).
    #[arg(long, value_enum, default_value = "relay")]
    pub mode: Mode,
    /// How clients hand packets to the relay.
    #[arg(long, value_enum, default_value = "channel")]
    pub via: Via,
    /// Payload bytes per packet.
    #[arg(long, default_value_t = 200)]
    pub size: usize,
    /// One way only: the peer counts packets and does not echo them back through the relay.
    #[arg(long)]
    pub no_echo: bool,
    /// UDP sockets of the loopback peer; clients are spread over them.
    #[arg(long, default_value_t = 1)]
    pub peer_sockets: u32,
    /// How often each client refreshes its allocation and its channel binding (which
    /// refreshes the permission, RFC 8656 §12). The default stays well inside the 300 s
    /// permission lifetime, so a lost refresh is made up by the next.
    #[arg(long, default_value = "60s", value_parser = crate::run::parse_duration)]
    pub refresh_every: Duration,
    /// Loopback source addresses the clients are spread over (127.0.0.1, then 127.1.0.1,
    /// 127.1.0.2 …; in allocate mode each allocation takes the next): servers limit
    /// unauthenticated requests per source IP (Switchboard: 20/s, burst 100), which
    /// otherwise caps `--mode allocate` at that limit.
    #[arg(long, default_value_t = 1)]
    pub source_ips: u32,
}

/// Client `i`'s loopback source address out of `n`.
fn source_ip(i: usize, n: u32) -> std::net::Ipv4Addr {
    match i % n.max(1) as usize {
        0 => std::net::Ipv4Addr::LOCALHOST,
        k => std::net::Ipv4Addr::new(127, 1, (k >> 8) as u8, k as u8),
    }
}

/// The long-term credentials a client authenticates with.
#[derive(Debug, Clone)]
enum Creds {
    Rest {
        secret: Vec<u8>,
        expiry: u64,
        run_id: String,
    },
    Static {
        user: String,
        password: String,
    },
}

impl Creds {
    fn for_client(&self, i: usize) -> (String, String) {
        match self {
            // One user id per client: servers count allocation quotas per user.
            Creds::Rest {
                secret,
                expiry,
                run_id,
            } => rest_credentials(secret, *expiry, &format!("lt{run_id}c{i}")),
            Creds::Static { user, password } => (user.clone(), password.clone()),
        }
    }
}

/// TURN REST API credentials (draft-uberti-behave-turn-rest §2.2): username
/// `expiry:userid`, password base64(HMAC-SHA1(secret, username)).
pub fn rest_credentials(secret: &[u8], expiry_unix: u64, user_id: &str) -> (String, String) {
    let username = format!("{expiry_unix}:{user_id}");
    let password = rest_password(secret, &username);
    (username, password)
}

/// What the clients and peers of one run share.
struct Ctx {
    live: Arc<Live>,
    target: SocketAddr,
    transport: Transport,
    creds: Creds,
    via: Via,
    size: usize,
    echo: bool,
    peers: Vec<SocketAddr>,
    source_ips: u32,
    refresh_every: Duration,
    /// Marks this run's packets (stray datagrams are ignored).
    tag: u32,
    rate_per_client: f64,
    common: Common,
    /// A misconfiguration every client would hit (credentials refused): ends the run.
    fatal: mpsc::Sender<String>,
}

pub async fn run(args: TurnArgs) -> anyhow::Result<Report> {
    args.common.check()?;
    let target = crate::target::loopback(&args.target)?;
    anyhow::ensure!(
        (MIN_SIZE..=MAX_SIZE).contains(&args.size),
        "--size must be {MIN_SIZE}..={MAX_SIZE} bytes"
    );
    anyhow::ensure!(
        (1..=64).contains(&args.peer_sockets),
        "--peer-sockets must be 1..=64"
    );
    anyhow::ensure!(
        (1..=65_000).contains(&args.source_ips),
        "--source-ips must be 1..=65000"
    );
    let creds = match (&args.secret, &args.user, &args.password) {
        (Some(secret), None, None) => {
            anyhow::ensure!(!secret.is_empty(), "--secret must not be empty");
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
            Creds::Rest {
                secret: secret.as_bytes().to_vec(),
                expiry: now + args.credential_ttl.as_secs().max(1),
                run_id: format!("{:x}", rand::random::<u32>()),
            }
        }
        (None, Some(user), Some(password)) => Creds::Static {
            user: user.clone(),
            password: password.clone(),
        },
        _ => bail!("give --secret (TURN REST API) or --user and --password"),
    };
    let unit = match args.mode {
        Mode::Relay => "relayed packet",
        Mode::Allocate => "allocation",
    };
    let mut report = Report::new("turn", &args.target, unit);
    report.params = params(&args, &creds);
    if args.mode == Mode::Allocate && args.source_ips == 1 && args.common.clients > 1 {
        report.notes.push(
            "all clients share 127.0.0.1: a server's per-IP limit of unauthenticated requests \
             may cap allocations/s (spread them with --source-ips)"
                .into(),
        );
    }
    let live = Live::new(args.common.count);
    let mut peer_sockets = Vec::new();
    if args.mode == Mode::Relay {
        for _ in 0..args.peer_sockets {
            peer_sockets.push(
                udp_bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                    .context("binding the loopback peer")?,
            );
        }
    }
    let (fatal_tx, mut fatal_rx) = mpsc::channel(1);
    let ctx = Arc::new(Ctx {
        live: live.clone(),
        target,
        transport: args.transport,
        creds,
        via: args.via,
        size: args.size,
        echo: !args.no_echo,
        peers: peer_sockets
            .iter()
            .map(UdpSocket::local_addr)
            .collect::<Result<_, _>>()?,
        source_ips: args.source_ips,
        refresh_every: args.refresh_every,
        tag: rand::random(),
        rate_per_client: args.common.rate_per_client(),
        common: args.common.clone(),
        fatal: fatal_tx,
    });
    let mode = args.mode;
    let work = async move {
        let (peers_stop, peers_stopped) = watch::channel(false);
        let peers: Vec<_> = peer_sockets
            .into_iter()
            .map(|s| tokio::spawn(peer(ctx.clone(), s, peers_stopped.clone())))
            .collect();
        let n = ctx.common.clients;
        let clients: Vec<_> = (0..n as usize)
            .map(|i| {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    if ctx.live.sleep(ctx.common.ramp_delay(i as u32, n)).await {
                        return;
                    }
                    let res = match mode {
                        Mode::Relay => relay_client(&ctx, i).await,
                        Mode::Allocate => allocate_client(&ctx, i).await,
                    };
                    if let Err(e) = res {
                        ctx.live.error(format!("{e:#}"));
                    }
                })
            })
            .collect();
        let all_done = async {
            for c in clients {
                let _ = c.await;
            }
        };
        tokio::select! {
            _ = all_done => {}
            Some(why) = fatal_rx.recv() => bail!("{why}"),
        }
        let _ = peers_stop.send(true);
        for p in peers {
            let _ = p.await;
        }
        if !ctx.live.stopped() {
            bail!("every client ended before the run did (see the errors)");
        }
        Ok(())
    };
    let mut report = drive_udp(&args.common, live, report, work).await;
    if mode == Mode::Relay {
        let c = |k: &str| report.counters.get(k).copied().unwrap_or(0);
        let lost = stats::lost(&[
            (c("packets_sent"), c("peer_received")),
            (c("echoes_sent"), c("echoes_received")),
        ]);
        report.counters.insert("packets_lost".into(), lost);
        if lost > 0 {
            *report.errors.entry("lost packets".into()).or_default() += lost;
            report.totals.errors += lost;
            report.finish_totals();
        }
    }
    Ok(report)
}

fn params(args: &TurnArgs, creds: &Creds) -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut p = args.common.params();
    p.insert("transport".into(), vname(&args.transport).into());
    p.insert("mode".into(), vname(&args.mode).into());
    p.insert("via".into(), vname(&args.via).into());
    p.insert("size".into(), args.size.into());
    p.insert("echo".into(), (!args.no_echo).into());
    p.insert("peer_sockets".into(), args.peer_sockets.into());
    p.insert("source_ips".into(), args.source_ips.into());
    p.insert(
        "refresh_every_s".into(),
        args.refresh_every.as_secs_f64().into(),
    );
    let kind = match creds {
        Creds::Rest { .. } => "rest",
        Creds::Static { .. } => "static",
    };
    p.insert("credentials".into(), kind.into());
    p
}

/// A value's name as clap spells it on the command line.
fn vname<T: clap::ValueEnum>(v: &T) -> String {
    v.to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}

// ---- transport -------------------------------------------------------------------------

/// The sending side of a client's connection to the server.
enum Tx {
    Udp(Arc<UdpSocket>),
    Tcp(OwnedWriteHalf),
}

/// The receiving side: one STUN message or ChannelData frame at a time, from a buffer
/// allocated once per connection.
enum Rx {
    Udp {
        socket: Arc<UdpSocket>,
        buf: Box<[u8]>,
    },
    Tcp {
        stream: OwnedReadHalf,
        buf: Box<[u8]>,
        start: usize,
        end: usize,
    },
}

/// Source ports `--mode allocate` cycles through over UDP: below Linux's ephemeral range
/// (32768-60999) and the relays' port ranges (coturn 49152-65535).
const CYCLE_PORTS: std::ops::Range<u16> = 20_000..32_768;

/// The UDP source ports one `--mode allocate` client takes in turn. A server may keep a
/// released allocation's 5-tuple for a while (coturn deletes lazily and answers 437 to a
/// new Allocate from it), and random ephemeral ports come back within that window at
/// thousands of allocations a second; a private cycle reuses a port only after all of
/// its others. Clients get disjoint slices (their source IPs rotate, see `allocate_client`).
struct PortCycle {
    base: u16,
    len: u16,
    next: u16,
}

impl PortCycle {
    fn new(i: usize, clients: u32) -> Self {
        let len = (CYCLE_PORTS.len() / clients.max(1) as usize) as u16;
        Self {
            base: CYCLE_PORTS.start + (i * len as usize) as u16,
            len,
            next: 0,
        }
    }

    /// The next port, or 0 (the kernel's choice) when the slices are empty.
    fn next(&mut self) -> u16 {
        if self.len == 0 {
            return 0;
        }
        let port = self.base + self.next;
        self.next = (self.next + 1) % self.len;
        port
    }
}

/// A non-blocking UDP socket on `local` with [`UDP_BUFFER`]-sized buffers.
fn udp_bind(local: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(local),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Best effort: the kernel silently caps the size, and a small buffer is not an error.
    let _ = socket.set_recv_buffer_size(UDP_BUFFER);
    let _ = socket.set_send_buffer_size(UDP_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&local.into())?;
    UdpSocket::from_std(socket.into())
}

async fn connect(
    target: SocketAddr,
    transport: Transport,
    source: std::net::Ipv4Addr,
) -> anyhow::Result<(Tx, Rx)> {
    connect_from(target, transport, source, None).await
}

/// `connect`, over UDP from the next free port of `ports` if given.
async fn connect_from(
    target: SocketAddr,
    transport: Transport,
    source: std::net::Ipv4Addr,
    ports: Option<&mut PortCycle>,
) -> anyhow::Result<(Tx, Rx)> {
    let mut local = SocketAddr::from((source, 0));
    Ok(match transport {
        Transport::Udp => {
            let socket = match ports {
                None => udp_bind(local),
                Some(ports) => {
                    // A port another process holds is skipped (a few tries, then the kernel's).
                    let mut bound = None;
                    for _ in 0..8 {
                        local.set_port(ports.next());
                        match udp_bind(local) {
                            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                            r => {
                                bound = Some(r);
                                break;
                            }
                        }
                    }
                    match bound {
                        Some(r) => r,
                        None => {
                            local.set_port(0);
                            udp_bind(local)
                        }
                    }
                }
            }
            .with_context(|| format!("binding {local}"))?;
            socket.connect(target).await?;
            let socket = Arc::new(socket);
            (
                Tx::Udp(socket.clone()),
                Rx::Udp {
                    socket,
                    buf: vec![0; 4096].into_boxed_slice(),
                },
            )
        }
        Transport::Tcp => {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket
                .bind(local)
                .with_context(|| format!("binding {local}"))?;
            let stream = socket
                .connect(target)
                .await
                .map_err(gone)
                .with_context(|| format!("connecting to {target}"))?;
            stream.set_nodelay(true)?;
            let (rd, wr) = stream.into_split();
            (
                Tx::Tcp(wr),
                Rx::Tcp {
                    stream: rd,
                    buf: vec![0; 64 * 1024].into_boxed_slice(),
                    start: 0,
                    end: 0,
                },
            )
        }
    })
}

impl Tx {
    async fn send(&mut self, frame: &[u8]) -> anyhow::Result<()> {
        match self {
            Tx::Udp(s) => {
                s.send(frame).await.map_err(gone)?;
            }
            Tx::Tcp(s) => s.write_all(frame).await.map_err(gone)?,
        }
        Ok(())
    }

    fn reliable(&self) -> bool {
        matches!(self, Tx::Tcp(_))
    }
}

impl Rx {
    /// The next frame. Cancel-safe: state changes only once a read has completed.
    async fn recv(&mut self) -> anyhow::Result<&[u8]> {
        match self {
            Rx::Udp { socket, buf } => {
                let n = socket.recv(buf).await.map_err(gone)?;
                Ok(&buf[..n])
            }
            Rx::Tcp {
                stream,
                buf,
                start,
                end,
            } => loop {
                if let Some(len) = stun::stream_frame_len(&buf[*start..*end]) {
                    anyhow::ensure!(len <= buf.len(), "a {len}-byte frame from the server");
                    if *end - *start >= len {
                        let frame = *start..*start + len;
                        *start += len;
                        return Ok(&buf[frame]);
                    }
                }
                if *start > 0 {
                    buf.copy_within(*start..*end, 0);
                    *end -= *start;
                    *start = 0;
                }
                let n = stream.read(&mut buf[*end..]).await.map_err(gone)?;
                anyhow::ensure!(n > 0, "the server closed the connection");
                *end += n;
            },
        }
    }
}

fn gone(e: std::io::Error) -> anyhow::Error {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            anyhow::anyhow!("connection refused: nothing listens there (or the server went away)")
        }
        _ => anyhow::Error::new(e),
    }
}

// ---- STUN transactions ----------------------------------------------------------------

/// What a client needs from a response (setup path only: owned, allocated).
#[derive(Debug, Default)]
struct Reply {
    class: Option<Class>,
    code: u16,
    reason: String,
    realm: Option<String>,
    nonce: Option<Vec<u8>>,
    relayed: Option<SocketAddr>,
    integrity_ok: bool,
}

impl Reply {
    fn parse(msg: &Message<'_>, key: Option<&[u8; 16]>) -> Self {
        let mut r = Reply {
            class: Some(msg.class),
            realm: msg.text(attr::REALM).ok().flatten().map(str::to_string),
            nonce: msg.get(attr::NONCE).map(<[u8]>::to_vec),
            relayed: msg.xor_address(attr::XOR_RELAYED_ADDRESS).ok().flatten(),
            integrity_ok: key.is_some_and(|k| msg.verify_integrity(k)),
            ..Reply::default()
        };
        if let Some(v) = msg.get(attr::ERROR_CODE).filter(|v| v.len() >= 4) {
            r.code = u16::from(v[2] & 0x7) * 100 + u16::from(v[3]);
            r.reason = String::from_utf8_lossy(&v[4..]).into_owned();
        }
        r
    }

    fn error(&self) -> String {
        format!("{} {}", self.code, self.reason)
    }
}

/// Sends `req` and waits for the answer with its transaction id, retransmitting over UDP
/// (RTO doubling from [`FIRST_RTO`]) until `limit`.
async fn transact(
    live: &Live,
    tx: &mut Tx,
    rx: &mut Rx,
    req: &[u8],
    key: Option<&[u8; 16]>,
    limit: Duration,
) -> anyhow::Result<Reply> {
    let txid: [u8; 12] = req[8..20].try_into()?;
    let give_up = Instant::now() + limit;
    let mut rto = FIRST_RTO;
    loop {
        tx.send(req).await?;
        let wait_until = if tx.reliable() {
            give_up
        } else {
            (Instant::now() + rto).min(give_up)
        };
        rto *= 2;
        loop {
            let frame = match tokio::time::timeout_at(wait_until.into(), rx.recv()).await {
                Err(_) => break,
                Ok(frame) => frame?,
            };
            if !stun::looks_like_stun(frame) {
                continue;
            }
            if let Ok(msg) = Message::parse(frame) {
                if msg.transaction_id == txid {
                    return Ok(Reply::parse(&msg, key));
                }
            }
        }
        if Instant::now() >= give_up {
            bail!("no answer from the TURN server in {}s", limit.as_secs_f64());
        }
        live.add("retransmits", 1);
    }
}

/// An authenticated client: what its requests carry.
struct Session {
    username: String,
    realm: String,
    nonce: Vec<u8>,
    key: [u8; 16],
}

impl Session {
    /// Writes an authenticated request: `attrs`, then USERNAME, REALM, NONCE,
    /// MESSAGE-INTEGRITY and FINGERPRINT (RFC 8489 §9.2.3, §14.5, §14.7).
    fn request(
        &self,
        buf: &mut [u8],
        method: u16,
        txid: [u8; 12],
        attrs: impl FnOnce(&mut Writer<'_>),
    ) -> anyhow::Result<usize> {
        let mut w = Writer::new(buf, Class::Request, method, txid);
        attrs(&mut w);
        w.attr(attr::USERNAME, self.username.as_bytes())
            .attr(attr::REALM, self.realm.as_bytes())
            .attr(attr::NONCE, &self.nonce)
            .sync()
            .integrity(&self.key, false)
            .fingerprint();
        w.finish().context("request larger than its buffer")
    }

    /// An authenticated transaction, once more with a fresh nonce after 438 Stale Nonce.
    async fn transact(
        &mut self,
        live: &Live,
        tx: &mut Tx,
        rx: &mut Rx,
        method: u16,
        attrs: impl Fn(&mut Writer<'_>),
        limit: Duration,
    ) -> anyhow::Result<Reply> {
        let mut buf = [0u8; 512];
        for _ in 0..3 {
            let len = self.request(&mut buf, method, rand::random(), &attrs)?;
            let reply = transact(live, tx, rx, &buf[..len], Some(&self.key), limit).await?;
            match reply.class {
                Some(Class::Error) if reply.code == 438 => {
                    self.nonce = reply.nonce.context("438 without a NONCE")?;
                }
                Some(Class::Success) if !reply.integrity_ok => {
                    bail!("a response whose MESSAGE-INTEGRITY does not match our key")
                }
                _ => return Ok(reply),
            }
        }
        bail!("the nonce stayed stale after two fresh ones")
    }
}

/// Why a setup failed: `Fatal` is a misconfiguration every client would hit.
enum SetupError {
    Fatal(String),
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for SetupError {
    fn from(e: anyhow::Error) -> Self {
        SetupError::Failed(e)
    }
}

/// Allocate (RFC 8656 §7.1-7.3): unauthenticated first, which the server answers with 401
/// and its REALM and NONCE, then with the long-term credentials.
async fn allocate(
    live: &Live,
    tx: &mut Tx,
    rx: &mut Rx,
    (username, password): &(String, String),
) -> Result<(Session, SocketAddr), SetupError> {
    let mut buf = [0u8; 512];
    let mut w = Writer::new(&mut buf, Class::Request, method::ALLOCATE, rand::random());
    w.attr(attr::REQUESTED_TRANSPORT, &TRANSPORT_UDP)
        .fingerprint();
    let len = w.finish().context("request larger than its buffer")?;
    let challenge = transact(live, tx, rx, &buf[..len], None, SETUP_LIMIT).await?;
    let (realm, nonce) = match (&challenge.class, challenge.code) {
        (Some(Class::Error), 401) => (
            challenge.realm.clone().context("401 without a REALM")?,
            challenge.nonce.clone().context("401 without a NONCE")?,
        ),
        (Some(Class::Success), _) => {
            return Err(SetupError::Fatal(
                "the server allocated without authentication: not a TURN REST server".into(),
            ))
        }
        _ => {
            return Err(SetupError::Failed(anyhow::anyhow!(
                "allocate: {}",
                challenge.error()
            )))
        }
    };
    let mut session = Session {
        key: long_term_key(username, &realm, password),
        username: username.clone(),
        realm,
        nonce,
    };
    let reply = session
        .transact(
            live,
            tx,
            rx,
            method::ALLOCATE,
            |w| {
                w.attr(attr::REQUESTED_TRANSPORT, &TRANSPORT_UDP);
            },
            SETUP_LIMIT,
        )
        .await?;
    match (reply.class, reply.code) {
        (Some(Class::Success), _) => {
            let relayed = reply
                .relayed
                .context("allocate success without XOR-RELAYED-ADDRESS")?;
            Ok((session, relayed))
        }
        (_, 401) => Err(SetupError::Fatal(format!(
            "the TURN server refused the credentials of {:?} ({}): wrong --secret, or --user/--password?",
            session.username,
            reply.error()
        ))),
        _ => Err(SetupError::Failed(anyhow::anyhow!(
            "allocate: {}",
            reply.error()
        ))),
    }
}

/// Releases the allocation (Refresh with LIFETIME 0), best effort.
async fn release(live: &Live, session: &mut Session, tx: &mut Tx, rx: &mut Rx) -> bool {
    let res = session
        .transact(
            live,
            tx,
            rx,
            method::REFRESH,
            |w| {
                w.u32(attr::LIFETIME, 0);
            },
            RELEASE_LIMIT,
        )
        .await;
    matches!(
        res,
        Ok(Reply {
            class: Some(Class::Success),
            ..
        })
    )
}

/// Runs `f` unless the run stops first (`None`).
async fn unless_stopped<T>(live: &Live, f: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::select! {
        v = f => Some(v),
        _ = live.wait_stop() => None,
    }
}

// ---- clients ----------------------------------------------------------------------------

/// `--mode allocate`: a fresh connection per allocation, released at once.
async fn allocate_client(ctx: &Ctx, i: usize) -> anyhow::Result<()> {
    let live = &ctx.live;
    let creds = ctx.creds.for_client(i);
    let mut pacer = Pacer::new(ctx.rate_per_client);
    let mut ports = PortCycle::new(i, ctx.common.clients);
    let mut cycle = 0usize;
    live.client_up();
    let result = async {
        while pacer.wait(live).await {
            let t0 = Instant::now();
            let attempt = async {
                // Each allocation from the next source IP, as from another client: per-IP
                // limits of a server see the spread, not one busy address.
                let source = source_ip(i + cycle * ctx.common.clients as usize, ctx.source_ips);
                cycle += 1;
                let (mut tx, mut rx) =
                    connect_from(ctx.target, ctx.transport, source, Some(&mut ports)).await?;
                let (mut session, _) = allocate(live, &mut tx, &mut rx, &creds).await?;
                let latency = t0.elapsed();
                if !release(live, &mut session, &mut tx, &mut rx).await {
                    live.add("release_failures", 1);
                }
                Ok::<_, SetupError>(latency)
            };
            match unless_stopped(live, attempt).await {
                None => break,
                Some(Ok(latency)) => live.record("allocate", latency.as_micros() as u64),
                Some(Err(SetupError::Fatal(why))) => {
                    let _ = ctx.fatal.try_send(why.clone());
                    bail!("{why}");
                }
                Some(Err(SetupError::Failed(e))) => live.error(format!("{e:#}")),
            }
        }
        Ok(())
    }
    .await;
    live.client_down();
    result
}

/// `--mode relay`: allocate, permission, channel, then send and count.
async fn relay_client(ctx: &Ctx, i: usize) -> anyhow::Result<()> {
    let live = &ctx.live;
    let peer = ctx.peers[i % ctx.peers.len()];
    let creds = ctx.creds.for_client(i);
    let setup = async {
        let t0 = Instant::now();
        let (mut tx, mut rx) =
            connect(ctx.target, ctx.transport, source_ip(i, ctx.source_ips)).await?;
        let (mut session, _relayed) = allocate(live, &mut tx, &mut rx, &creds).await?;
        live.latency("allocate", t0.elapsed().as_micros() as u64);
        live.add("allocations", 1);
        let t1 = Instant::now();
        let reply = session
            .transact(
                live,
                &mut tx,
                &mut rx,
                method::CREATE_PERMISSION,
                |w| {
                    w.xor_address(attr::XOR_PEER_ADDRESS, peer);
                },
                SETUP_LIMIT,
            )
            .await?;
        if reply.class != Some(Class::Success) {
            return Err(SetupError::Failed(anyhow::anyhow!(
                "create permission for {peer}: {} (does the server allow 127.0.0.1 as a peer?)",
                reply.error()
            )));
        }
        live.latency("create_permission", t1.elapsed().as_micros() as u64);
        let t2 = Instant::now();
        let reply = session
            .transact(
                live,
                &mut tx,
                &mut rx,
                method::CHANNEL_BIND,
                bind_attrs(peer),
                SETUP_LIMIT,
            )
            .await?;
        if reply.class != Some(Class::Success) {
            return Err(SetupError::Failed(anyhow::anyhow!(
                "channel bind to {peer}: {}",
                reply.error()
            )));
        }
        live.latency("channel_bind", t2.elapsed().as_micros() as u64);
        Ok((tx, rx, session))
    };
    let (mut tx, mut rx, mut session) = match unless_stopped(live, setup).await {
        None => return Ok(()),
        Some(Ok(v)) => v,
        Some(Err(SetupError::Fatal(why))) => {
            let _ = ctx.fatal.try_send(why.clone());
            bail!("{why}");
        }
        Some(Err(SetupError::Failed(e))) => {
            live.add("allocation_failures", 1);
            return Err(e.context("setup"));
        }
    };
    live.client_up();
    let mut totals = Totals::default();
    let result = relay_loop(ctx, i, peer, &mut tx, &mut rx, &mut session, &mut totals).await;
    live.client_down();
    live.add("packets_sent", totals.sent);
    live.add("echoes_received", totals.flow.received);
    live.add("reordered", totals.flow.reordered);
    if totals.refreshed > 0 {
        live.add("refreshes_confirmed", totals.refreshed);
    }
    if ctx.echo && totals.flow.received >= 2 {
        live.latency("jitter", totals.flow.jitter.value_us().round() as u64);
    }
    if result.is_ok() {
        if release(live, &mut session, &mut tx, &mut rx).await {
            live.add("released", 1);
        } else {
            live.add("release_failures", 1);
        }
    }
    result
}

fn bind_attrs(peer: SocketAddr) -> impl Fn(&mut Writer<'_>) {
    move |w| {
        w.u32(attr::CHANNEL_NUMBER, u32::from(CHANNEL) << 16)
            .xor_address(attr::XOR_PEER_ADDRESS, peer);
    }
}

#[derive(Default)]
struct Totals {
    sent: u64,
    /// Refresh and ChannelBind refreshes the server confirmed.
    refreshed: u64,
    /// The echo leg, as this client received it.
    flow: Flow,
}

/// Fills the payload of packet `seq` in place.
fn stamp(payload: &mut [u8], tag: u32, index: u32, seq: u64, now_us: u64, kind: u8) {
    payload[0..4].copy_from_slice(&tag.to_be_bytes());
    payload[4..8].copy_from_slice(&index.to_be_bytes());
    payload[8..16].copy_from_slice(&seq.to_be_bytes());
    payload[16..24].copy_from_slice(&now_us.to_be_bytes());
    payload[24] = kind;
}

/// `(index, seq, sent µs, kind)` of one of this run's payloads.
fn read_stamp(payload: &[u8], tag: u32) -> Option<(u32, u64, u64, u8)> {
    let h = payload.get(..HEADER)?;
    if h[0..4] != tag.to_be_bytes() {
        return None;
    }
    let u64_at = |at: usize| u64::from_be_bytes(h[at..at + 8].try_into().unwrap_or_default());
    Some((
        u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        u64_at(8),
        u64_at(16),
        h[24],
    ))
}

/// The application data of a frame from the server: ChannelData, or a Data indication.
fn relayed_payload(frame: &[u8]) -> Option<&[u8]> {
    if channel_data::looks_like(frame) {
        return channel_data::parse(frame).map(|(_, p)| p);
    }
    let msg = Message::parse(frame).ok()?;
    (msg.class == Class::Indication && msg.method == method::DATA)
        .then(|| msg.get(attr::DATA))
        .flatten()
}

async fn relay_loop(
    ctx: &Ctx,
    i: usize,
    peer: SocketAddr,
    tx: &mut Tx,
    rx: &mut Rx,
    session: &mut Session,
    totals: &mut Totals,
) -> anyhow::Result<()> {
    let live = &ctx.live;
    let tcp = tx.reliable();
    let mut payload = vec![0u8; ctx.size];
    let mut out = vec![0u8; ctx.size + 128];
    let mut echoes = Batch::new("echo");
    let mut pacer = Pacer::new(ctx.rate_per_client);
    let mut drain_until: Option<Instant> = None;
    let mut next_refresh = Instant::now() + ctx.refresh_every;
    let far = Instant::now() + crate::run::MAX_DURATION * 2;
    let mut seq = 0u64;
    let result = loop {
        let due = pacer.due();
        // A packet already due goes now: tokio's timer ticks in milliseconds, so sleeping
        // until "now" would cap a client near 1,000 packets/s.
        let wait = async {
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
        };
        tokio::select! {
            _ = wait, if drain_until.is_none() => {
                pacer.advance();
                let via_send = match ctx.via {
                    Via::Channel => false,
                    Via::Send => true,
                    Via::Both => seq % 2 == 1,
                };
                let kind = if via_send { KIND_SEND } else { KIND_CHANNEL };
                let sent_us = live.now_us();
                stamp(&mut payload, ctx.tag, i as u32, seq, sent_us, kind);
                let len = if via_send {
                    let mut txid = [0u8; 12];
                    txid[..4].copy_from_slice(&(i as u32).to_be_bytes());
                    txid[4..].copy_from_slice(&seq.to_be_bytes());
                    let mut w = Writer::new(&mut out, Class::Indication, method::SEND, txid);
                    w.xor_address(attr::XOR_PEER_ADDRESS, peer).attr(attr::DATA, &payload);
                    w.finish()
                } else {
                    channel_data::write(&mut out, CHANNEL, &payload, tcp)
                };
                let Some(len) = len else { break Err(anyhow::anyhow!("packet larger than its buffer")) };
                if let Err(e) = tx.send(&out[..len]).await {
                    break Err(e.context("send"));
                }
                seq += 1;
                totals.sent += 1;
                live.expect_at(sent_us, 1);
            }
            frame = rx.recv() => {
                let frame = match frame {
                    Ok(f) => f,
                    Err(e) => break Err(e.context("receive")),
                };
                if let Some(p) = relayed_payload(frame) {
                    if let Some((index, seq, sent_us, KIND_ECHO)) = read_stamp(p, ctx.tag) {
                        if index as usize == i {
                            live.arrived_at(sent_us, 1);
                            let latency = totals.flow.on_packet(seq, sent_us, live.now_us());
                            echoes.push(live, latency);
                        }
                    }
                } else if let Ok(msg) = Message::parse(frame) {
                    // A refresh's answer: a stale nonce is renewed and the refresh resent.
                    if msg.class == Class::Success {
                        totals.refreshed += 1;
                    } else if msg.class == Class::Error {
                        let reply = Reply::parse(&msg, None);
                        if reply.code == 438 {
                            if let Some(nonce) = reply.nonce {
                                session.nonce = nonce;
                                next_refresh = Instant::now();
                            }
                        } else {
                            live.error(format!("refresh: {}", reply.error()));
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(next_refresh.into()), if drain_until.is_none() => {
                next_refresh = Instant::now() + ctx.refresh_every;
                let mut buf = [0u8; 512];
                let sent = async {
                    let len = session.request(&mut buf, method::REFRESH, rand::random(), |w| {
                        w.u32(attr::LIFETIME, 600);
                    })?;
                    tx.send(&buf[..len]).await?;
                    let len = session.request(&mut buf, method::CHANNEL_BIND, rand::random(), bind_attrs(peer))?;
                    tx.send(&buf[..len]).await
                };
                if let Err(e) = sent.await {
                    break Err(e.context("refresh"));
                }
            }
            _ = live.wait_stop(), if drain_until.is_none() => {
                drain_until = Some(Instant::now() + DRAIN);
            }
            _ = tokio::time::sleep_until(drain_until.unwrap_or(far).into()), if drain_until.is_some() => {
                break Ok(());
            }
        }
    };
    echoes.flush(live);
    result
}

// ---- the loopback peer -------------------------------------------------------------------

/// One peer socket: counts what the relays deliver, per sending client, and echoes it back.
async fn peer(ctx: Arc<Ctx>, socket: UdpSocket, mut stop: watch::Receiver<bool>) {
    let live = &ctx.live;
    let mut flows = vec![Flow::default(); ctx.common.clients as usize];
    let mut channel = Batch::new("channel");
    let mut send = Batch::new("send");
    let mut buf = vec![0u8; 4096];
    let (mut received, mut echoed, mut strays) = (0u64, 0u64, 0u64);
    loop {
        let (n, from) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(v) => v,
                // An ICMP error from an earlier echo to a relay that is gone: keep going.
                Err(_) => continue,
            },
            _ = stop.changed() => break,
        };
        let now = live.now_us();
        let Some((index, seq, sent_us, kind)) = read_stamp(&buf[..n], ctx.tag) else {
            strays += 1;
            continue;
        };
        let Some(flow) = flows.get_mut(index as usize) else {
            strays += 1;
            continue;
        };
        let latency = flow.on_packet(seq, sent_us, now);
        received += 1;
        live.arrived_at(sent_us, 1);
        match kind {
            KIND_SEND => send.push(live, latency),
            _ => channel.push(live, latency),
        }
        if ctx.echo {
            let echo_us = live.now_us();
            stamp(&mut buf[..n], ctx.tag, index, seq, echo_us, KIND_ECHO);
            if socket.send_to(&buf[..n], from).await.is_ok() {
                echoed += 1;
                live.expect_at(echo_us, 1);
            }
        }
    }
    channel.flush(live);
    send.flush(live);
    live.add("peer_received", received);
    live.add("echoes_sent", echoed);
    if strays > 0 {
        live.add("peer_strays", strays);
    }
    // Lost mid-stream (a later packet arrived): tells server drops from a tail cut short.
    live.add("gaps_uplink", flows.iter().map(Flow::gaps).sum());
    for f in flows.iter().filter(|f| f.received >= 2) {
        live.latency("jitter", f.jitter.value_us().round() as u64);
        live.add("reordered", f.reordered);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checked with `openssl dgst -sha1 -hmac north-secret -binary | base64` and `md5sum`.
    #[test]
    fn rest_credentials_match_a_known_vector() {
        let (user, password) = rest_credentials(b"north-secret", 1_764_115_200, "alice");
        assert_eq!(user, "1764115200:alice");
        assert_eq!(password, "WuI9Cm/r/uTkb8jj1KROvTAl3R4=");
        assert_eq!(
            hex::encode(long_term_key(&user, "switchboard", &password)),
            "df1a27b539252f4c5bf1731dcca22403"
        );
    }

    #[test]
    fn authenticated_requests_carry_integrity_and_fingerprint() {
        let (username, password) = rest_credentials(b"s", 4_000_000_000, "u");
        let session = Session {
            key: long_term_key(&username, "switchboard", &password),
            username: username.clone(),
            realm: "switchboard".into(),
            nonce: b"0123456789abcdef0123456789abcdef".to_vec(),
        };
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let mut buf = [0u8; 512];
        let len = session
            .request(&mut buf, method::CHANNEL_BIND, [7; 12], bind_attrs(peer))
            .unwrap();
        let msg = Message::parse(&buf[..len]).expect("parses, FINGERPRINT checked");
        assert!(msg.has_fingerprint);
        assert!(msg.verify_integrity(&session.key));
        assert!(!msg.verify_integrity(&[0; 16]));
        assert_eq!(msg.text(attr::USERNAME).unwrap(), Some(username.as_str()));
        assert_eq!(msg.xor_address(attr::XOR_PEER_ADDRESS).unwrap(), Some(peer));
        assert_eq!(msg.u32(attr::CHANNEL_NUMBER).unwrap(), Some(0x4000_0000));
    }

    #[test]
    fn port_cycles_are_disjoint_and_wrap() {
        // Two clients: each with half the range.
        let mut a = PortCycle::new(0, 2);
        let mut b = PortCycle::new(1, 2);
        let half = CYCLE_PORTS.len() as u16 / 2;
        assert_eq!(
            (a.next(), b.next()),
            (CYCLE_PORTS.start, CYCLE_PORTS.start + half)
        );
        for _ in 1..half {
            let (pa, pb) = (a.next(), b.next());
            assert!(pa < CYCLE_PORTS.start + half && pb >= CYCLE_PORTS.start + half);
            assert!(pb < CYCLE_PORTS.end);
        }
        assert_eq!(a.next(), CYCLE_PORTS.start, "wraps after its whole slice");
        assert_eq!(
            PortCycle::new(0, 20_000).next(),
            0,
            "too many clients: kernel's choice"
        );
        assert_eq!(source_ip(0, 3), std::net::Ipv4Addr::LOCALHOST);
        assert_eq!(source_ip(4, 3), std::net::Ipv4Addr::new(127, 1, 0, 1));
        assert_eq!(source_ip(300, 1000), std::net::Ipv4Addr::new(127, 1, 1, 44));
    }

    #[test]
    fn payload_stamps_round_trip_and_strays_are_refused() {
        let mut p = [0u8; MIN_SIZE];
        stamp(&mut p, 0xABCD, 7, 42, 123_456, KIND_SEND);
        assert_eq!(read_stamp(&p, 0xABCD), Some((7, 42, 123_456, KIND_SEND)));
        assert_eq!(read_stamp(&p, 0xABCE), None);
        assert_eq!(read_stamp(&p[..HEADER - 1], 0xABCD), None);
        let mut framed = [0u8; 64];
        let len = channel_data::write(&mut framed, CHANNEL, &p, true).unwrap();
        assert_eq!(relayed_payload(&framed[..len]), Some(&p[..]));
    }
}
