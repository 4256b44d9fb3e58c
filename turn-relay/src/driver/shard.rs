//! One shard: a thread with a single-threaded tokio runtime that owns one core `Server`,
//! its `SO_REUSEPORT` UDP (and TCP/TLS) listener, and the relayed sockets of its
//! allocations. Everything here runs on that thread, so the state sits in `RefCell`s
//! borrowed only between awaits, never across one: no locks on the relay path.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tokio::task::AbortHandle;

use super::coalesce;
use super::udp::{self, Datagrams, Outbox, Received, RecvBuffers, Source, UdpIo, OUT_BUF};
use crate::core::allocation::{AllocationId, FiveTuple, Transport};
use crate::core::server::{BindError, Output, RelaySockets, Server};
use crate::metrics::TurnMetrics;

/// Upper bound on the timer loop's sleep: deadlines are at least 300 s away when set,
/// so a one-second tick loses no precision that matters and keeps the loop simple.
const TIMER_TICK: Duration = Duration::from_secs(1);
/// Batches one socket may process per wake before yielding (quinn's IO_LOOP_BOUND idea:
/// one busy socket must not starve the shard's others).
const IO_LOOP_BOUND: usize = 16;
/// Bytes queued for one stream client before further relayed packets are dropped
/// (arbitrary: about a second of a 2 Mbit/s call).
pub(crate) const STREAM_QUEUE_LIMIT: usize = 256 * 1024;

/// Bytes waiting to be written to a TCP/TLS client, and a wake-up for its writer.
#[derive(Default)]
pub(crate) struct StreamOut {
    pub queue: RefCell<Vec<u8>>,
    pub ready: Notify,
}

/// Relayed ports held for a RESERVATION-TOKEN: bound (so nothing else takes them) but
/// unread until an Allocate on any shard claims them. Locked per Allocate and per
/// reservation expiry only.
#[derive(Clone, Default)]
pub(crate) struct HeldSockets(Arc<Mutex<HashMap<SocketAddr, std::net::UdpSocket>>>);

struct RelayEntry {
    id: AllocationId,
    io: Rc<UdpIo>,
    task: AbortHandle,
}

pub(crate) struct Shard {
    pub server: RefCell<Server>,
    pub listener: UdpIo,
    pub listen: SocketAddr,
    relays: RefCell<Vec<Option<RelayEntry>>>,
    held: HeldSockets,
    pub streams: RefCell<HashMap<SocketAddr, Rc<StreamOut>>>,
    bufs: RefCell<RecvBuffers>,
    pub out: RefCell<Vec<u8>>,
    /// UDP datagrams of the batch in progress, sent by [`Shard::flush`].
    outbox: RefCell<Outbox>,
    pub metrics: TurnMetrics,
}

impl Shard {
    pub fn new(
        server: Server,
        listener: UdpIo,
        listen: SocketAddr,
        held: HeldSockets,
        metrics: TurnMetrics,
    ) -> Rc<Self> {
        Rc::new(Self {
            server: RefCell::new(server),
            listener,
            listen,
            relays: RefCell::new(Vec::new()),
            held,
            streams: RefCell::new(HashMap::new()),
            bufs: RefCell::new(RecvBuffers::new()),
            out: RefCell::new(vec![0; OUT_BUF]),
            outbox: RefCell::new(Outbox::new()),
            metrics,
        })
    }

    /// Queues a relayed payload to leave allocation `id`'s socket for `peer`.
    pub fn send_to_peer(&self, id: AllocationId, peer: SocketAddr, payload: &[u8]) {
        self.outbox
            .borrow_mut()
            .push(Source::Relay(id), peer, None, payload, &mut |d| {
                self.transmit(d)
            });
    }

    /// Sends a framed packet to a client over whatever transport it came on (UDP: queued
    /// until the batch ends).
    pub fn send_to_client(&self, to: &FiveTuple, bytes: &[u8]) {
        match to.transport {
            Transport::Udp => {
                let src_ip = Some(to.server.ip());
                self.outbox.borrow_mut().push(
                    Source::Listener,
                    to.client,
                    src_ip,
                    bytes,
                    &mut |d| self.transmit(d),
                );
            }
            Transport::Tcp | Transport::Tls => {
                let streams = self.streams.borrow();
                let Some(out) = streams.get(&to.client) else {
                    return;
                };
                let mut queue = out.queue.borrow_mut();
                if queue.len() + bytes.len() > STREAM_QUEUE_LIMIT {
                    self.metrics.dropped("stream_backlog");
                    return;
                }
                queue.extend_from_slice(bytes);
                out.ready.notify_one();
            }
        }
    }

    /// Sends everything queued: call once a batch of input has been handled.
    pub fn flush(&self) {
        self.outbox.borrow_mut().flush(&mut |d| self.transmit(d));
    }

    fn transmit(&self, d: Datagrams<'_>) {
        let dropped = match d.source {
            Source::Listener => self.listener.send(d.to, d.src_ip, d.contents, d.segment),
            Source::Relay(id) => {
                let relays = self.relays.borrow();
                match relays
                    .get(id.slot as usize)
                    .and_then(Option::as_ref)
                    .filter(|e| e.id == id)
                {
                    Some(e) => e.io.send(d.to, d.src_ip, d.contents, d.segment),
                    // Closed since the datagrams were queued.
                    None => d.contents.len().div_ceil(d.segment),
                }
            }
        };
        if dropped > 0 {
            self.metrics
                .dropped_packets
                .get_or_create(&crate::metrics::ReasonLabels {
                    reason: "send_failed",
                })
                .inc_by(dropped as u64);
        }
    }

    /// Feeds one client datagram (or stream frame) to the core and carries out its output
    /// (UDP sends wait for [`Shard::flush`]).
    pub fn on_client_datagram(self: &Rc<Self>, now: Instant, tuple: FiveTuple, data: &[u8]) {
        let mut out = self.out.borrow_mut();
        let output = {
            let mut opener = Opener { shard: self };
            self.server
                .borrow_mut()
                .handle_datagram(now, tuple, data, &mut out, &mut opener)
        };
        match output {
            Output::None => {}
            Output::Reply(len) => self.send_to_client(&tuple, &out[..len]),
            Output::ToPeer { id, peer, payload } => self.send_to_peer(id, peer, &data[payload]),
        }
    }

    pub fn close_client(self: &Rc<Self>, tuple: &FiveTuple) {
        self.streams.borrow_mut().remove(&tuple.client);
        let mut opener = Opener { shard: self };
        self.server.borrow_mut().close_client(tuple, &mut opener);
    }
}

/// Opens and closes relayed sockets for the core, spawning each one's receive loop.
struct Opener<'a> {
    shard: &'a Rc<Shard>,
}

impl RelaySockets for Opener<'_> {
    fn open(&mut self, id: AllocationId, addr: SocketAddr) -> Result<(), BindError> {
        let socket = bind_relayed(addr)?;
        self.start(id, socket)
    }

    fn close(&mut self, id: AllocationId) {
        let mut relays = self.shard.relays.borrow_mut();
        if let Some(entry) = relays.get_mut(id.slot as usize) {
            if entry.as_ref().is_some_and(|e| e.id == id) {
                if let Some(e) = entry.take() {
                    e.task.abort();
                }
            }
        }
    }

    fn reserve(&mut self, addr: SocketAddr) -> Result<(), BindError> {
        let socket = bind_relayed(addr)?;
        let mut held = self.shard.held.0.lock().map_err(|_| BindError::Failed)?;
        held.insert(addr, socket);
        Ok(())
    }

    fn open_reserved(&mut self, id: AllocationId, addr: SocketAddr) -> Result<(), BindError> {
        let socket = self
            .shard
            .held
            .0
            .lock()
            .map_err(|_| BindError::Failed)?
            .remove(&addr)
            .ok_or(BindError::Failed)?;
        self.start(id, socket)
    }

    fn release(&mut self, addr: SocketAddr) {
        if let Ok(mut held) = self.shard.held.0.lock() {
            held.remove(&addr);
        }
    }
}

/// Binds a relayed address, telling a taken port (try another) from other failures.
fn bind_relayed(addr: SocketAddr) -> Result<std::net::UdpSocket, BindError> {
    udp::bind_udp(addr).map_err(|e| match e.kind() {
        io::ErrorKind::AddrInUse => BindError::InUse,
        _ => {
            tracing::warn!(%addr, error = %e, "cannot bind a relayed address");
            BindError::Failed
        }
    })
}

impl Opener<'_> {
    /// Makes `socket` allocation `id`'s relayed socket and starts its receive loop.
    fn start(&mut self, id: AllocationId, socket: std::net::UdpSocket) -> Result<(), BindError> {
        let io = Rc::new(UdpIo::relay(socket).map_err(|_| BindError::Failed)?);
        let task = tokio::task::spawn_local(relay_loop(self.shard.clone(), id, io.clone()));
        let mut relays = self.shard.relays.borrow_mut();
        let slot = id.slot as usize;
        if relays.len() <= slot {
            relays.resize_with(slot + 1, || None);
        }
        relays[slot] = Some(RelayEntry {
            id,
            io,
            task: task.abort_handle(),
        });
        Ok(())
    }
}

/// The listener: batches of client datagrams into the core.
pub(crate) async fn listener_loop(shard: Rc<Shard>) {
    loop {
        let mut ready = match shard.listener.readable().await {
            Ok(ready) => ready,
            Err(e) => {
                tracing::error!(error = %e, "TURN UDP listener failed");
                return;
            }
        };
        let mut more = true;
        for _ in 0..IO_LOOP_BOUND {
            let mut bufs = shard.bufs.borrow_mut();
            let (n, drained) = match shard.listener.recv(&mut ready, &mut bufs) {
                Ok(Received::More(n)) => (n, false),
                Ok(Received::Drained(n)) => (n, true),
                Err(e) => {
                    tracing::debug!(error = %e, "TURN UDP receive error");
                    break;
                }
            };
            coalesce::handled(n);
            let now = Instant::now();
            for i in 0..n {
                let (client, dst_ip, datagrams) = bufs.datagrams(i);
                let server =
                    SocketAddr::new(dst_ip.unwrap_or(shard.listen.ip()), shard.listen.port());
                let tuple = FiveTuple {
                    client,
                    server,
                    transport: Transport::Udp,
                };
                for data in datagrams {
                    shard.on_client_datagram(now, tuple, data);
                }
            }
            drop(bufs);
            shard.flush();
            shard.server.borrow_mut().flush_stats();
            if drained {
                more = false;
                break;
            }
        }
        drop(ready);
        yield_if_more(more).await;
    }
}

/// One relayed socket: batches of peer datagrams, framed by the core for the client.
async fn relay_loop(shard: Rc<Shard>, id: AllocationId, io: Rc<UdpIo>) {
    loop {
        let Ok(mut ready) = io.readable().await else {
            return;
        };
        let mut more = true;
        for _ in 0..IO_LOOP_BOUND {
            let mut bufs = shard.bufs.borrow_mut();
            let (n, drained) = match io.recv(&mut ready, &mut bufs) {
                Ok(Received::More(n)) => (n, false),
                Ok(Received::Drained(n)) => (n, true),
                Err(_) => break,
            };
            coalesce::handled(n);
            let now = Instant::now();
            let mut out = shard.out.borrow_mut();
            let mut server = shard.server.borrow_mut();
            for i in 0..n {
                let (peer, _, datagrams) = bufs.datagrams(i);
                for data in datagrams {
                    if let Some(to) = server.handle_peer_datagram(now, id, peer, data, &mut out) {
                        shard.send_to_client(&to.five_tuple, &out[..to.len]);
                    }
                }
            }
            server.flush_stats();
            drop((server, out, bufs));
            shard.flush();
            if drained {
                more = false;
                break;
            }
        }
        drop(ready);
        yield_if_more(more).await;
    }
}

/// Ends a socket's turn: only a socket with more to read yields (IO_LOOP_BOUND fairness). A
/// yield makes the runtime poll the reactor without parking, which would skip the coalescing
/// wait (`driver::coalesce`) every time; a drained socket just awaits readiness again.
async fn yield_if_more(more: bool) {
    if more {
        tokio::task::yield_now().await;
    }
}

/// Drives the core's timers.
pub(crate) async fn timer_loop(shard: Rc<Shard>) {
    loop {
        let now = Instant::now();
        let deadline = shard
            .server
            .borrow()
            .poll_timeout()
            .map_or(now + TIMER_TICK, |d| d.min(now + TIMER_TICK));
        tokio::time::sleep_until(deadline.into()).await;
        let now = Instant::now();
        let mut opener = Opener { shard: &shard };
        shard.server.borrow_mut().handle_timeout(now, &mut opener);
    }
}

/// Runs a shard's tasks until `stop` fires.
pub(crate) async fn run(
    shard: Rc<Shard>,
    tcp: Option<std::net::TcpListener>,
    tls: Option<(std::net::TcpListener, tokio_rustls::TlsAcceptor)>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tasks = vec![
        tokio::task::spawn_local(listener_loop(shard.clone())),
        tokio::task::spawn_local(timer_loop(shard.clone())),
    ];
    if let Some(tcp) = tcp {
        tasks.push(tokio::task::spawn_local(super::tcp::accept_loop(
            shard.clone(),
            tcp,
        )));
    }
    if let Some((listener, acceptor)) = tls {
        tasks.push(tokio::task::spawn_local(super::tls::accept_loop(
            shard.clone(),
            listener,
            acceptor,
        )));
    }
    let _ = stop.wait_for(|s| *s).await;
    for t in tasks {
        t.abort();
    }
    let relays: Vec<_> = shard.relays.borrow_mut().drain(..).flatten().collect();
    for r in relays {
        r.task.abort();
    }
}
