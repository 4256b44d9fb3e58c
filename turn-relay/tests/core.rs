//! The sans-IO core driven directly, with synthetic time: allocations, permissions,
//! channels, expiry, credentials, nonces, quotas, peer policy and hostile input.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use turn_relay::core::allocation::{AllocationId, FiveTuple, Transport};
use turn_relay::core::auth::{long_term_key, rest_password};
use turn_relay::core::reservation::RESERVATION_LIFETIME;
use turn_relay::core::server::{BindError, Output, RelaySockets, Server, Shared};
use turn_relay::core::stun::{attr, channel_data, method, Class, Message, Writer};
use turn_relay::metrics::ReasonLabels;
use turn_relay::{PortRange, TurnConfig, TurnMetrics};

const SECRET: &[u8] = b"test-secret";
const REALM: &str = "switchboard";
/// Wall-clock seconds at the synthetic start.
const UNIX0: u64 = 1_800_000_000;

/// Relayed sockets as a map; `taken` ports belong to other processes. One instance may
/// serve several `Server`s (shards) in a test, as the driver's held sockets do.
#[derive(Default)]
struct FakeSockets {
    open: HashMap<AllocationId, SocketAddr>,
    held: HashSet<SocketAddr>,
    taken: HashSet<u16>,
}

impl FakeSockets {
    fn in_use(&self, addr: SocketAddr) -> bool {
        self.taken.contains(&addr.port())
            || self.held.contains(&addr)
            || self.open.values().any(|a| *a == addr)
    }
}

impl RelaySockets for FakeSockets {
    fn open(&mut self, id: AllocationId, addr: SocketAddr) -> Result<(), BindError> {
        if self.in_use(addr) {
            return Err(BindError::InUse);
        }
        self.open.insert(id, addr);
        Ok(())
    }

    fn close(&mut self, id: AllocationId) {
        self.open.remove(&id);
    }

    fn reserve(&mut self, addr: SocketAddr) -> Result<(), BindError> {
        if self.in_use(addr) {
            return Err(BindError::InUse);
        }
        self.held.insert(addr);
        Ok(())
    }

    fn open_reserved(&mut self, id: AllocationId, addr: SocketAddr) -> Result<(), BindError> {
        if !self.held.remove(&addr) {
            return Err(BindError::Failed);
        }
        self.open.insert(id, addr);
        Ok(())
    }

    fn release(&mut self, addr: SocketAddr) {
        self.held.remove(&addr);
    }
}

struct Harness {
    server: Server,
    /// The server's metrics (shared handles), to tell drop reasons apart.
    metrics: TurnMetrics,
    sockets: FakeSockets,
    start: Instant,
    now: Instant,
    out: Vec<u8>,
    txid: u8,
}

fn config() -> TurnConfig {
    let mut c = TurnConfig::new("192.0.2.100:3478".parse().unwrap(), Some(SECRET.to_vec()));
    c.relay_ports = PortRange {
        min: 50000,
        max: 50009,
    };
    c.allow_peers = vec!["127.0.0.1".parse().unwrap()];
    c.user_quota = 2;
    c.unauth_burst = 1000;
    c
}

fn tuple(port: u16) -> FiveTuple {
    FiveTuple {
        client: SocketAddr::new("198.51.100.7".parse().unwrap(), port),
        server: "192.0.2.100:3478".parse().unwrap(),
        transport: Transport::Udp,
    }
}

/// Credentials as a client holds them after a 401.
#[derive(Clone)]
struct Creds {
    username: String,
    password: String,
    nonce: Vec<u8>,
}

impl Harness {
    fn new() -> Self {
        Self::with(config())
    }

    fn with(config: TurnConfig) -> Self {
        let start = Instant::now();
        let metrics = TurnMetrics::default();
        let server = Server::new(
            &config,
            Shared::new(&config),
            metrics.clone(),
            [9; 32],
            3,
            start,
            UNIX0,
        );
        Self {
            server,
            metrics,
            sockets: FakeSockets::default(),
            start,
            now: start,
            out: vec![0; 2048],
            txid: 0,
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        if self.server.poll_timeout().is_some_and(|t| t <= self.now) {
            self.server.handle_timeout(self.now, &mut self.sockets);
        }
    }

    fn rest_creds(&self, user: &str, valid_for: u64) -> Creds {
        let unix = UNIX0 + (self.now - self.start).as_secs();
        let username = format!("{}:{user}", unix + valid_for);
        Creds {
            password: rest_password(SECRET, &username),
            username,
            nonce: Vec::new(),
        }
    }

    /// Builds a request; with `creds`, signs it (SHA-1 unless `sha256`).
    fn build(
        &mut self,
        m: u16,
        attrs: &[(u16, Vec<u8>)],
        creds: Option<&Creds>,
        sha256: bool,
    ) -> Vec<u8> {
        self.txid += 1;
        let mut buf = vec![0u8; 65_600];
        let mut w = Writer::new(&mut buf, Class::Request, m, [self.txid; 12]);
        for (t, v) in attrs {
            w.attr(*t, v);
        }
        if let Some(c) = creds {
            w.attr(attr::USERNAME, c.username.as_bytes())
                .attr(attr::REALM, REALM.as_bytes())
                .attr(attr::NONCE, &c.nonce)
                .sync()
                .integrity(&long_term_key(&c.username, REALM, &c.password), sha256);
        }
        w.fingerprint();
        let len = w.finish().unwrap();
        buf.truncate(len);
        buf
    }

    fn send(&mut self, from: FiveTuple, data: &[u8]) -> Output {
        self.server
            .handle_datagram(self.now, from, data, &mut self.out, &mut self.sockets)
    }

    /// Sends a request and returns the response bytes.
    fn ask(&mut self, from: FiveTuple, data: &[u8]) -> Vec<u8> {
        match self.send(from, data) {
            Output::Reply(len) => self.out[..len].to_vec(),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    /// Allocate with the 401 round trip; returns the creds (with nonce) and relay address.
    fn allocate(&mut self, from: FiveTuple, creds: &mut Creds) -> SocketAddr {
        let transport = (attr::REQUESTED_TRANSPORT, vec![17, 0, 0, 0]);
        let first = self.build(
            method::ALLOCATE,
            std::slice::from_ref(&transport),
            None,
            false,
        );
        let challenge = self.ask(from, &first);
        let m = Message::parse(&challenge).unwrap();
        assert_eq!(error_code(&m), Some(401));
        assert_eq!(m.get(attr::REALM), Some(REALM.as_bytes()));
        creds.nonce = m.get(attr::NONCE).unwrap().to_vec();
        let req = self.build(method::ALLOCATE, &[transport], Some(creds), false);
        let resp = self.ask(from, &req);
        let m = Message::parse(&resp).unwrap();
        assert_eq!(
            m.class,
            Class::Success,
            "allocate failed: {:?}",
            error_code(&m)
        );
        assert!(m.verify_integrity(&long_term_key(&creds.username, REALM, &creds.password)));
        assert_eq!(m.u32(attr::LIFETIME).unwrap(), Some(600));
        assert_eq!(
            m.xor_address(attr::XOR_MAPPED_ADDRESS).unwrap(),
            Some(from.client)
        );
        m.xor_address(attr::XOR_RELAYED_ADDRESS).unwrap().unwrap()
    }

    /// The nonce a 401 hands the client at `from`.
    fn nonce_for(&mut self, from: FiveTuple) -> Vec<u8> {
        let first = self.build(method::ALLOCATE, &[], None, false);
        let resp = self.ask(from, &first);
        Message::parse(&resp)
            .unwrap()
            .get(attr::NONCE)
            .unwrap()
            .to_vec()
    }

    fn request_code(
        &mut self,
        from: FiveTuple,
        m: u16,
        attrs: &[(u16, Vec<u8>)],
        creds: &Creds,
    ) -> Option<u16> {
        let req = self.build(m, attrs, Some(creds), false);
        let resp = self.ask(from, &req);
        let msg = Message::parse(&resp).unwrap();
        error_code(&msg)
    }

    fn peer_attr(&self, peer: SocketAddr) -> (u16, Vec<u8>) {
        // XOR-PEER-ADDRESS depends on the transaction id: encode it for the next one.
        let mut buf = [0u8; 64];
        let len = Writer::new(&mut buf, Class::Request, 1, [self.txid + 1; 12])
            .xor_address(attr::XOR_PEER_ADDRESS, peer)
            .finish()
            .unwrap();
        (attr::XOR_PEER_ADDRESS, buf[24..len].to_vec())
    }
}

impl Harness {
    /// How many datagrams were dropped for `reason` so far.
    fn dropped(&self, reason: &'static str) -> u64 {
        self.metrics
            .dropped_packets
            .get_or_create(&ReasonLabels { reason })
            .get()
    }

    /// Sends `data`, which must be dropped silently for `reason` (RFC 8489 §6.3:
    /// malformed messages and indications are never answered).
    fn assert_dropped(&mut self, data: &[u8], reason: &'static str) {
        let before = self.dropped(reason);
        assert_eq!(self.send(tuple(4000), data), Output::None, "{reason}");
        assert_eq!(self.dropped(reason), before + 1, "{reason}");
    }
}

fn error_code(m: &Message) -> Option<u16> {
    m.get(attr::ERROR_CODE)
        .map(|v| u16::from(v[2]) * 100 + u16::from(v[3]))
}

fn channel_attr(n: u16) -> (u16, Vec<u8>) {
    let mut v = n.to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 0]);
    (attr::CHANNEL_NUMBER, v)
}

/// An attribute to put in a request: type and value.
type Attr = (u16, Vec<u8>);

const PEER: &str = "203.0.113.9:7000";

#[test]
fn binding_answers_with_the_mapped_address() {
    let mut h = Harness::new();
    let req = h.build(method::BINDING, &[], None, false);
    let resp = h.ask(tuple(4000), &req);
    let m = Message::parse(&resp).unwrap();
    assert_eq!(m.class, Class::Success);
    assert!(m.has_fingerprint);
    assert_eq!(
        m.xor_address(attr::XOR_MAPPED_ADDRESS).unwrap(),
        Some(tuple(4000).client)
    );
}

#[test]
fn allocate_challenge_success_retransmit_and_mismatch() {
    let mut h = Harness::new();
    let mut creds = h.rest_creds("alice", 3600);
    let relay = h.allocate(tuple(4000), &mut creds);
    assert_eq!(
        relay.ip(),
        "192.0.2.100".parse::<std::net::IpAddr>().unwrap()
    );
    assert!((50000..=50009).contains(&relay.port()));
    assert_eq!(h.sockets.open.len(), 1);
    // A retransmission of the same Allocate (same transaction) gets the same answer.
    h.txid -= 1;
    let req = h.build(
        method::ALLOCATE,
        &[(attr::REQUESTED_TRANSPORT, vec![17, 0, 0, 0])],
        Some(&creds),
        false,
    );
    let again = Message::parse(&h.ask(tuple(4000), &req)).unwrap().class;
    assert_eq!(again, Class::Success);
    // A new Allocate on the same 5-tuple is a mismatch.
    let code = h.request_code(
        tuple(4000),
        method::ALLOCATE,
        &[(attr::REQUESTED_TRANSPORT, vec![17, 0, 0, 0])],
        &creds,
    );
    assert_eq!(code, Some(437));
    assert_eq!(h.server.allocation_count(), 1);
}

#[test]
fn wrong_secret_expired_credentials_and_stale_nonce() {
    let mut h = Harness::new();
    let transport = (attr::REQUESTED_TRANSPORT, vec![17, 0, 0, 0]);
    let mut creds = h.rest_creds("alice", 60);
    let first = h.build(
        method::ALLOCATE,
        std::slice::from_ref(&transport),
        None,
        false,
    );
    let nonce = Message::parse(&h.ask(tuple(4000), &first))
        .unwrap()
        .get(attr::NONCE)
        .unwrap()
        .to_vec();
    creds.nonce = nonce;
    let mut wrong = creds.clone();
    wrong.password = rest_password(b"not-the-secret", &creds.username);
    let code = h.request_code(
        tuple(4000),
        method::ALLOCATE,
        std::slice::from_ref(&transport),
        &wrong,
    );
    assert_eq!(code, Some(401));
    // One second past the credential's expiry: refused, by the injected clock.
    h.advance(Duration::from_secs(60));
    let code = h.request_code(
        tuple(4000),
        method::ALLOCATE,
        std::slice::from_ref(&transport),
        &creds,
    );
    assert_eq!(code, Some(401));
    // Fresh credentials, but the nonce is now past its 600 s window: 438 with a new one.
    let mut fresh = h.rest_creds("alice", 3600);
    fresh.nonce = creds.nonce.clone();
    h.advance(Duration::from_secs(540));
    let req = h.build(
        method::ALLOCATE,
        std::slice::from_ref(&transport),
        Some(&fresh),
        false,
    );
    let resp = h.ask(tuple(4000), &req);
    let m = Message::parse(&resp).unwrap();
    assert_eq!(error_code(&m), Some(438));
    fresh.nonce = m.get(attr::NONCE).unwrap().to_vec();
    let code = h.request_code(tuple(4000), method::ALLOCATE, &[transport], &fresh);
    assert_eq!(code, None);
    // A nonce minted for another client address is stale for this one.
    let mut other = h.rest_creds("bob", 3600);
    other.nonce = fresh.nonce.clone();
    let code = h.request_code(
        tuple(4001),
        method::ALLOCATE,
        &[(attr::REQUESTED_TRANSPORT, vec![17, 0, 0, 0])],
        &other,
    );
    assert_eq!(code, Some(438));
}

#[test]
fn sha256_integrity_is_answered_in_kind() {
    let mut h = Harness::new();
    let mut creds = h.rest_creds("alice", 3600);
    h.allocate(tuple(4000), &mut creds);
    let req = h.build(
        method::REFRESH,
        &[(attr::LIFETIME, 300u32.to_be_bytes().to_vec())],
        Some(&creds),
        true,
    );
    let resp = h.ask(tuple(4000), &req);
    let m = Message::parse(&resp).unwrap();
    assert_eq!(m.class, Class::Success);
    assert!(m.get(attr::MESSAGE_INTEGRITY).is_none());
    assert!(m.verify_integrity(&long_term_key(&creds.username, REALM, &creds.password)));
    // 300 is below the default: the default (600) is granted.
    assert_eq!(m.u32(attr::LIFETIME).unwrap(), Some(600));
}

#[test]
fn send_indication_and_data_indication_relay() {
    let mut h = Harness::new();
    let mut creds = h.rest_creds("alice", 3600);
    h.allocate(tuple(4000), &mut creds);
    let peer: SocketAddr = PEER.parse().unwrap();
    // Without a permission, a Send indication is dropped silently.
    let send = |h: &mut Harness, payload: &[u8]| {
        h.txid += 1;
        let mut buf = vec![0u8; 256];
        let len = Writer::new(&mut buf, Class::Indication, method::SEND, [h.txid; 12])
            .xor_address(attr::XOR_PEER_ADDRESS, peer)
            .attr(attr::DATA, payload)
            .finish()
            .unwrap();
        buf.truncate(len);
        buf
    };
    let data = send(&mut h, b"hello peer");
    assert_eq!(h.send(tuple(4000), &data), Output::None);
    let pa = h.peer_attr(peer);
    assert_eq!(
        h.request_code(tuple(4000), method::CREATE_PERMISSION, &[pa], &creds),
        None
    );
    let data = send(&mut h, b"hello peer");
    match h.send(tuple(4000), &data) {
        Output::ToPeer {
            peer: to, payload, ..
        } => {
            assert_eq!(to, peer);
            assert_eq!(&data[payload], b"hello peer");
        }
        other => panic!("expected relay, got {other:?}"),
    }
    // Back from the peer: a Data indication (no channel yet).
    let id = *h.sockets.open.keys().next().unwrap();
    let mut out = vec![0u8; 2048];
    let to = h
        .server
        .handle_peer_datagram(h.now, id, peer, b"hello client", &mut out)
        .unwrap();
    assert_eq!(to.five_tuple, tuple(4000));
    let m = Message::parse(&out[..to.len]).unwrap();
    assert_eq!((m.class, m.method), (Class::Indication, method::DATA));
    assert_eq!(m.get(attr::DATA), Some(&b"hello client"[..]));
    assert_eq!(m.xor_address(attr::XOR_PEER_ADDRESS).unwrap(), Some(peer));
    // From a peer IP without permission: dropped.
    let stranger: SocketAddr = "203.0.113.10:7000".parse().unwrap();
    assert!(h
        .server
        .handle_peer_datagram(h.now, id, stranger, b"x", &mut out)
        .is_none());
    let stats = h.server.flush_stats();
    assert_eq!((stats.to_peer_packets, stats.to_client_packets), (1, 1));
}

#[test]
fn channels_bind_and_relay_channel_data_both_ways() {
    let mut h = Harness::new();
    let mut creds = h.rest_creds("alice", 3600);
    h.allocate(tuple(4000), &mut creds);
    let peer: SocketAddr = PEER.parse().unwrap();
    let mut frame = [0u8; 64];
    let n = channel_data::write(&mut frame, 0x4001, b"via channel", false).unwrap();
    // Unbound channel: dropped.
    assert_eq!(h.send(tuple(4000), &frame[..n]), Output::None);
    let pa = h.peer_attr(peer);
    let code = h.request_code(
        tuple(4000),
        method::CHANNEL_BIND,
        &[channel_attr(0x4001), pa],
        &creds,
    );
    assert_eq!(code, None);
    match h.send(tuple(4000), &frame[..n]) {
        Output::ToPeer {
            peer: to, payload, ..
        } => {
            assert_eq!(to, peer);
            assert_eq!(&frame[payload], b"via channel");
        }
        other => panic!("expected relay, got {other:?}"),
    }
    let id = *h.sockets.open.keys().next().unwrap();
    let mut out = vec![0u8; 2048];
    let to = h
        .server
        .handle_peer_datagram(h.now, id, peer, b"back", &mut out)
        .unwrap();
    assert_eq!(
        channel_data::parse(&out[..to.len]),
        Some((0x4001, &b"back"[..]))
    );
    // Bad channel numbers and rebinding to another peer are 400.
    let pa = h.peer_attr(peer);
    let code = h.request_code(
        tuple(4000),
        method::CHANNEL_BIND,
        &[channel_attr(0x3FFF), pa],
        &creds,
    );
    assert_eq!(code, Some(400));
    let pa = h.peer_attr("203.0.113.11:7000".parse().unwrap());
    let code = h.request_code(
        tuple(4000),
        method::CHANNEL_BIND,
        &[channel_attr(0x4001), pa],
        &creds,
    );
    assert_eq!(code, Some(400));
    let code = h.request_code(
        tuple(4000),
        method::CHANNEL_BIND,
        &[channel_attr(0x4002)],
        &creds,
    );
    assert_eq!(code, Some(400));
}

#[test]
fn permissions_channels_and_allocations_expire_with_synthetic_time() {
    let mut h = Harness::new();
    let mut creds = h.rest_creds("alice", 36_000);
    h.allocate(tuple(4000), &mut creds);
    let t_alloc = h.now;
    let peer: SocketAddr = PEER.parse().unwrap();
    let pa = h.peer_attr(peer);
    h.request_code(
        tuple(4000),
        method::CHANNEL_BIND,
        &[channel_attr(0x4000), pa],
        &creds,
    );
    let mut frame = [0u8; 16];
    let n = channel_data::write(&mut frame, 0x4000, b"x", false).unwrap();
    // First the rate limiter's sweep of idle sources (30 s), then the permission the
    // bind installed (300 s).
    assert_eq!(
        h.server.poll_timeout(),
        Some(h.start + Duration::from_secs(30))
    );
    h.advance(Duration::from_secs(30));
    assert_eq!(
        h.server.poll_timeout(),
        Some(t_alloc + Duration::from_secs(300))
    );
    h.advance(Duration::from_secs(269));
    assert!(matches!(
        h.send(tuple(4000), &frame[..n]),
        Output::ToPeer { .. }
    ));
    h.advance(Duration::from_secs(1));
    // Permission gone (300 s), channel still bound (600 s): data is dropped.
    assert_eq!(h.send(tuple(4000), &frame[..n]), Output::None);
    let a = h.server.allocation(&tuple(4000)).unwrap();
    assert_eq!((a.permission_count(), a.channel_count()), (0, 1));
    h.advance(Duration::from_secs(299));
    // Allocation lifetime 600 s: at 599 s it lives, at 600 s it is gone with its socket.
    assert_eq!(h.server.allocation_count(), 1);
    h.advance(Duration::from_secs(1));
    assert_eq!(h.server.allocation_count(), 0);
    assert!(h.sockets.open.is_empty());
    // Its quota slot is free again.
    let mut again = h.rest_creds("alice", 3600);
    h.allocate(tuple(4001), &mut again);
    h.allocate(tuple(4002), &mut again);
}

#[test]
fn refresh_extends_and_zero_deletes_and_other_users_are_refused() {
    let mut h = Harness::new();
    let mut creds = h.rest_creds("alice", 36_000);
    h.allocate(tuple(4000), &mut creds);
    h.advance(Duration::from_secs(500));
    let code = h.request_code(
        tuple(4000),
        method::REFRESH,
        &[(attr::LIFETIME, 3000u32.to_be_bytes().to_vec())],
        &creds,
    );
    assert_eq!(code, None);
    h.advance(Duration::from_secs(2999));
    assert_eq!(h.server.allocation_count(), 1);
    // Another user's valid credentials on this 5-tuple: 441.
    let mut bob = h.rest_creds("bob", 3600);
    bob.nonce = creds.nonce.clone();
    // (the nonce went stale meanwhile; fetch a fresh one through a 438)
    let req = h.build(method::REFRESH, &[], Some(&bob), false);
    let m = Message::parse(&h.ask(tuple(4000), &req))
        .unwrap()
        .get(attr::NONCE)
        .unwrap()
        .to_vec();
    bob.nonce = m.clone();
    creds.nonce = m;
    assert_eq!(
        h.request_code(tuple(4000), method::REFRESH, &[], &bob),
        Some(441)
    );
    let code = h.request_code(
        tuple(4000),
        method::REFRESH,
        &[(attr::LIFETIME, 0u32.to_be_bytes().to_vec())],
        &creds,
    );
    assert_eq!(code, None);
    assert_eq!(h.server.allocation_count(), 0);
    assert!(h.sockets.open.is_empty());
    // Refresh without an allocation: 437.
    assert_eq!(
        h.request_code(tuple(4000), method::REFRESH, &[], &creds),
        Some(437)
    );
}

#[test]
fn user_quota_is_486_and_port_exhaustion_is_508() {
    let mut h = Harness::new();
    let mut creds = h.rest_creds("alice", 3600);
    h.allocate(tuple(4000), &mut creds);
    h.allocate(tuple(4001), &mut creds);
    let t = (attr::REQUESTED_TRANSPORT, vec![17, 0, 0, 0]);
    creds.nonce = h.nonce_for(tuple(4002));
    assert_eq!(
        h.request_code(
            tuple(4002),
            method::ALLOCATE,
            std::slice::from_ref(&t),
            &creds
        ),
        Some(486)
    );
    // Another user is not affected by alice's quota.
    let mut bob = h.rest_creds("bob", 3600);
    h.allocate(tuple(4003), &mut bob);
    // Every port of the range taken (by other processes): 508.
    let mut h = Harness::new();
    for port in 0..10u16 {
        h.sockets.taken.insert(50000 + port);
    }
    let mut bob = h.rest_creds("bob", 3600);
    bob.nonce = h.nonce_for(tuple(5000));
    assert_eq!(
        h.request_code(tuple(5000), method::ALLOCATE, &[t], &bob),
        Some(508)
    );
    // The refused allocation left no quota behind.
    assert_eq!(h.server.allocation_count(), 0);
}

#[test]
fn denied_peers_are_403_and_families_are_checked() {
    let mut h = Harness::new();
    let mut creds = h.rest_creds("alice", 3600);
    h.allocate(tuple(4000), &mut creds);
    for denied in [
        "127.0.0.2:1",
        "10.0.0.1:1",
        "172.16.5.5:1",
        "192.168.1.1:1",
        "169.254.0.1:1",
        "224.0.0.1:1",
        "0.0.0.0:1",
        "255.255.255.255:1",
        "100.64.0.1:1",
        "192.0.2.100:50000", // the relay's own address
        "127.0.0.1:3478",    // allowed IP, but our own listener
        "[::ffff:10.0.0.1]:1",
    ] {
        let pa = h.peer_attr(denied.parse().unwrap());
        let code = h.request_code(tuple(4000), method::CREATE_PERMISSION, &[pa], &creds);
        assert_eq!(code, Some(403), "{denied}");
    }
    let pa = h.peer_attr("127.0.0.1:9".parse().unwrap());
    assert_eq!(
        h.request_code(tuple(4000), method::CREATE_PERMISSION, &[pa], &creds),
        None
    );
    let pa = h.peer_attr("[2001:db8::1]:9".parse().unwrap());
    assert_eq!(
        h.request_code(tuple(4000), method::CREATE_PERMISSION, &[pa], &creds),
        Some(443)
    );
    // One bad peer among good ones installs none of them.
    let good = h.peer_attr(PEER.parse().unwrap());
    let bad = h.peer_attr("10.1.1.1:1".parse().unwrap());
    assert_eq!(
        h.request_code(tuple(4000), method::CREATE_PERMISSION, &[good, bad], &creds),
        Some(403)
    );
    assert_eq!(
        h.server
            .allocation(&tuple(4000))
            .unwrap()
            .permission_count(),
        1
    );
}

#[test]
fn allocate_errors_for_each_bad_request() {
    let mut h = Harness::new();
    let mut creds = h.rest_creds("alice", 3600);
    let first = h.build(method::ALLOCATE, &[], None, false);
    creds.nonce = Message::parse(&h.ask(tuple(4000), &first))
        .unwrap()
        .get(attr::NONCE)
        .unwrap()
        .to_vec();
    let t = |p: u8| (attr::REQUESTED_TRANSPORT, vec![p, 0, 0, 0]);
    let cases: Vec<(Vec<Attr>, u16)> = vec![
        (vec![], 400),
        (vec![(attr::REQUESTED_TRANSPORT, vec![17])], 400),
        (vec![t(6)], 442),
        (vec![t(17), (attr::DONT_FRAGMENT, vec![])], 420),
        (vec![t(17), (0x0033, vec![1, 2, 3, 4])], 420),
        (
            vec![t(17), (attr::REQUESTED_ADDRESS_FAMILY, vec![2, 0, 0, 0])],
            440,
        ),
        (
            vec![t(17), (attr::REQUESTED_ADDRESS_FAMILY, vec![9, 0, 0, 0])],
            440,
        ),
        (vec![t(17), (attr::RESERVATION_TOKEN, vec![0; 8])], 508),
        (vec![t(17), (attr::LIFETIME, vec![1, 2])], 400),
    ];
    for (attrs, want) in cases {
        let code = h.request_code(tuple(4000), method::ALLOCATE, &attrs, &creds);
        assert_eq!(code, Some(want), "{attrs:?}");
    }
    // Integrity present but no USERNAME/REALM/NONCE: 400.
    let mut buf = vec![0u8; 256];
    let len = Writer::new(&mut buf, Class::Request, method::ALLOCATE, [77; 12])
        .attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
        .sync()
        .integrity(b"whatever", false)
        .finish()
        .unwrap();
    let m = h.ask(tuple(4000), &buf[..len]);
    assert_eq!(error_code(&Message::parse(&m).unwrap()), Some(400));
    // Unknown method: 400.
    assert_eq!(h.request_code(tuple(4000), 0x0FF, &[], &creds), Some(400));
    assert_eq!(h.server.allocation_count(), 0);
}

#[test]
fn unauthenticated_requests_are_rate_limited_per_source() {
    let mut c = config();
    c.unauth_burst = 5;
    c.unauth_rate = 1;
    let mut h = Harness::with(c);
    let req = h.build(method::BINDING, &[], None, false);
    for _ in 0..5 {
        assert!(matches!(h.send(tuple(4000), &req), Output::Reply(_)));
    }
    assert_eq!(h.send(tuple(4000), &req), Output::None);
    // Another source is not affected; the first refills with time.
    let mut other = tuple(4000);
    other.client = "198.51.100.8:4000".parse().unwrap();
    assert!(matches!(h.send(other, &req), Output::Reply(_)));
    h.advance(Duration::from_secs(1));
    assert!(matches!(h.send(tuple(4000), &req), Output::Reply(_)));
}

#[test]
fn hostile_input_never_panics() {
    let mut h = Harness::new();
    let mut creds = h.rest_creds("alice", 3600);
    h.allocate(tuple(4000), &mut creds);
    let peer: SocketAddr = PEER.parse().unwrap();
    let pa = h.peer_attr(peer);
    let valid = h.build(
        method::CHANNEL_BIND,
        &[channel_attr(0x4000), pa],
        Some(&creds),
        false,
    );
    // Every truncation and every single-byte corruption of a valid signed request.
    for cut in 0..valid.len() {
        let _ = h.send(tuple(4000), &valid[..cut]);
    }
    for i in 0..valid.len() {
        for x in [0x01u8, 0x80, 0xFF] {
            let mut bad = valid.clone();
            bad[i] ^= x;
            let _ = h.send(tuple(4000), &bad);
        }
    }
    // Pseudo-random garbage, with STUN and ChannelData first bytes.
    let mut seed = 0x1234_5678u32;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    for _ in 0..5000 {
        let len = (next() % 200) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if len >= 8 && next() % 2 == 0 {
            bytes[0] &= 0x01;
            bytes[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
        } else if len >= 1 && next() % 3 == 0 {
            bytes[0] = 0x40;
        }
        let _ = h.send(tuple(4000), &bytes);
    }
    // Oversized: a 64 kB datagram.
    let _ = h.send(tuple(4000), &vec![0x40; 65_535]);
    // A peer datagram too large for the caller's buffer is dropped, not a panic.
    let id = *h.sockets.open.keys().next().unwrap();
    let mut small = [0u8; 16];
    let _ = h
        .server
        .handle_peer_datagram(h.now, id, peer, &[0; 100], &mut small);
    // The allocation survived all of it.
    assert_eq!(h.server.allocation_count(), 1);
}

/// Allocate from `from` with extra attributes (after the 401 round trip); the response.
fn allocate_with(h: &mut Harness, from: FiveTuple, creds: &mut Creds, extra: &[Attr]) -> Vec<u8> {
    creds.nonce = h.nonce_for(from);
    let mut attrs = vec![(attr::REQUESTED_TRANSPORT, vec![17, 0, 0, 0])];
    attrs.extend_from_slice(extra);
    let req = h.build(method::ALLOCATE, &attrs, Some(creds), false);
    h.ask(from, &req)
}

fn relayed(resp: &[u8]) -> SocketAddr {
    let m = Message::parse(resp).unwrap();
    assert_eq!(m.class, Class::Success, "{:?}", error_code(&m));
    m.xor_address(attr::XOR_RELAYED_ADDRESS).unwrap().unwrap()
}

fn token_of(resp: &[u8]) -> Option<Vec<u8>> {
    Message::parse(resp)
        .unwrap()
        .get(attr::RESERVATION_TOKEN)
        .map(<[u8]>::to_vec)
}

#[test]
fn even_port_with_r_reserves_the_next_port_for_a_token() {
    let mut h = Harness::new();
    let mut alice = h.rest_creds("alice", 3600);
    let even_r = (attr::EVEN_PORT, vec![0x80]);
    let rtp = allocate_with(
        &mut h,
        tuple(4000),
        &mut alice,
        std::slice::from_ref(&even_r),
    );
    let rtp_relay = relayed(&rtp);
    assert_eq!(rtp_relay.port() % 2, 0, "{rtp_relay}");
    let token = token_of(&rtp).expect("RESERVATION-TOKEN in the success");
    assert_eq!(token.len(), 8);
    let next = SocketAddr::new(rtp_relay.ip(), rtp_relay.port() + 1);
    assert_eq!(h.sockets.held, HashSet::from([next]));
    // A retransmission gets the same answer, token included, and reserves nothing more.
    let retransmit = {
        let m = Message::parse(&rtp).unwrap();
        let attrs = [(attr::REQUESTED_TRANSPORT, vec![17, 0, 0, 0]), even_r];
        let mut buf = vec![0u8; 1024];
        let mut w = Writer::new(&mut buf, Class::Request, method::ALLOCATE, m.transaction_id);
        for (t, v) in &attrs {
            w.attr(*t, v);
        }
        let key = long_term_key(&alice.username, REALM, &alice.password);
        w.attr(attr::USERNAME, alice.username.as_bytes())
            .attr(attr::REALM, REALM.as_bytes())
            .attr(attr::NONCE, &alice.nonce)
            .sync()
            .integrity(&key, false);
        let len = w.finish().unwrap();
        h.ask(tuple(4000), &buf[..len])
    };
    assert_eq!(relayed(&retransmit), rtp_relay);
    assert_eq!(token_of(&retransmit), Some(token.clone()));
    assert_eq!(h.sockets.held.len(), 1);
    // Another 5-tuple (the RTCP socket) claims the held port with the token.
    let rt = (attr::RESERVATION_TOKEN, token.clone());
    let rtcp = allocate_with(&mut h, tuple(4001), &mut alice, std::slice::from_ref(&rt));
    assert_eq!(relayed(&rtcp), next);
    assert_eq!(token_of(&rtcp), None);
    assert!(h.sockets.held.is_empty());
    assert_eq!(h.server.allocation_count(), 2);
    // A token works once.
    let mut bob = h.rest_creds("bob", 3600);
    let again = allocate_with(&mut h, tuple(4002), &mut bob, &[rt]);
    assert_eq!(error_code(&Message::parse(&again).unwrap()), Some(508));
    // Without R: an even port, no token, nothing held.
    let plain = allocate_with(&mut h, tuple(4003), &mut bob, &[(attr::EVEN_PORT, vec![0])]);
    assert_eq!(relayed(&plain).port() % 2, 0);
    assert_eq!(token_of(&plain), None);
    assert!(h.sockets.held.is_empty());
}

#[test]
fn reservations_expire_after_30_seconds_and_skip_taken_ports() {
    let mut h = Harness::new();
    // Only 50008/50009 is a free even/odd pair; 50009 is the top of the range.
    h.sockets.taken.extend([50001, 50003, 50005, 50007]);
    let mut alice = h.rest_creds("alice", 3600);
    let rtp = allocate_with(
        &mut h,
        tuple(4000),
        &mut alice,
        &[(attr::EVEN_PORT, vec![0x80])],
    );
    assert_eq!(relayed(&rtp).port(), 50008);
    let token = token_of(&rtp).unwrap();
    assert_eq!(
        h.sockets.held,
        HashSet::from(["192.0.2.100:50009".parse().unwrap()])
    );
    // The held port is released when the reservation expires, and the token is void.
    h.advance(RESERVATION_LIFETIME - Duration::from_secs(1));
    assert_eq!(h.sockets.held.len(), 1);
    h.advance(Duration::from_secs(1));
    assert!(h.sockets.held.is_empty());
    let late = allocate_with(
        &mut h,
        tuple(4001),
        &mut alice,
        &[(attr::RESERVATION_TOKEN, token)],
    );
    assert_eq!(error_code(&Message::parse(&late).unwrap()), Some(508));
    // No pair left at all: 508, and the even port tried was given back.
    h.sockets.taken.insert(50009);
    let mut bob = h.rest_creds("bob", 3600);
    let full = allocate_with(
        &mut h,
        tuple(4002),
        &mut bob,
        &[(attr::EVEN_PORT, vec![0x80])],
    );
    assert_eq!(error_code(&Message::parse(&full).unwrap()), Some(508));
    assert_eq!(h.sockets.open.len(), 1);
    assert!(h.sockets.held.is_empty());
}

#[test]
fn a_token_is_claimed_on_another_shard() {
    let mut h = Harness::new();
    let config = config();
    let shared = Shared::new(&config);
    // Two shards of one process: one shared table, one set of held sockets.
    let mut first = Server::new(
        &config,
        shared.clone(),
        TurnMetrics::default(),
        [9; 32],
        3,
        h.start,
        UNIX0,
    );
    let second = Server::new(
        &config,
        shared,
        TurnMetrics::default(),
        [9; 32],
        4,
        h.start,
        UNIX0,
    );
    let mut alice = h.rest_creds("alice", 3600);
    std::mem::swap(&mut h.server, &mut first);
    let rtp = allocate_with(
        &mut h,
        tuple(4000),
        &mut alice,
        &[(attr::EVEN_PORT, vec![0x80])],
    );
    let token = token_of(&rtp).unwrap();
    h.server = second;
    let rtcp = allocate_with(
        &mut h,
        tuple(4001),
        &mut alice,
        &[(attr::RESERVATION_TOKEN, token)],
    );
    assert_eq!(relayed(&rtcp).port(), relayed(&rtp).port() + 1);
    assert!(h.sockets.held.is_empty());
}

#[test]
fn even_port_and_reservation_token_errors() {
    let mut h = Harness::new();
    let mut alice = h.rest_creds("alice", 3600);
    let cases: Vec<(Vec<Attr>, u16)> = vec![
        // RFC 8656 §7.2: both at once, or a token with an address family, is a 400.
        (
            vec![
                (attr::EVEN_PORT, vec![0x80]),
                (attr::RESERVATION_TOKEN, vec![1; 8]),
            ],
            400,
        ),
        (
            vec![
                (attr::RESERVATION_TOKEN, vec![1; 8]),
                (attr::REQUESTED_ADDRESS_FAMILY, vec![1, 0, 0, 0]),
            ],
            400,
        ),
        (vec![(attr::RESERVATION_TOKEN, vec![1; 4])], 400),
        (vec![(attr::EVEN_PORT, vec![])], 400),
        // Unknown token: 508.
        (vec![(attr::RESERVATION_TOKEN, vec![1; 8])], 508),
    ];
    for (attrs, want) in cases {
        let resp = allocate_with(&mut h, tuple(4000), &mut alice, &attrs);
        assert_eq!(
            error_code(&Message::parse(&resp).unwrap()),
            Some(want),
            "{attrs:?}"
        );
    }
    assert_eq!(h.server.allocation_count(), 0);
    assert!(h.sockets.open.is_empty() && h.sockets.held.is_empty());
}

#[test]
fn bad_input_gets_the_rfc_answer_or_a_counted_drop() {
    let mut h = Harness::new();
    let mut creds = h.rest_creds("alice", 3600);
    h.allocate(tuple(4000), &mut creds);
    let peer: SocketAddr = PEER.parse().unwrap();
    let pa = h.peer_attr(peer);
    assert_eq!(
        h.request_code(tuple(4000), method::CREATE_PERMISSION, &[pa], &creds),
        None
    );
    let binding = h.build(method::BINDING, &[], None, false);

    // Truncated STUN (the header promises more than arrived) and trailing bytes: dropped.
    h.assert_dropped(&binding[..binding.len() - 4], "malformed");
    let mut long = binding.clone();
    long.extend_from_slice(&[0; 4]);
    h.assert_dropped(&long, "malformed");
    // An attribute running past the message, a MESSAGE-INTEGRITY of the wrong size, a
    // wrong FINGERPRINT: malformed, dropped.
    let mut past = binding.clone();
    past[22..24].copy_from_slice(&64u16.to_be_bytes());
    h.assert_dropped(&past, "malformed");
    let mut bad_mi = vec![0u8; 64];
    let len = Writer::new(&mut bad_mi, Class::Request, method::ALLOCATE, [7; 12])
        .attr(attr::MESSAGE_INTEGRITY, &[0; 10])
        .finish()
        .unwrap();
    h.assert_dropped(&bad_mi[..len], "malformed");
    let mut bad_fp = binding.clone();
    *bad_fp.last_mut().unwrap() ^= 0xFF;
    h.assert_dropped(&bad_fp, "malformed");
    // Neither STUN nor ChannelData (first byte 0x80..), and a ChannelData header whose
    // length runs past the datagram.
    h.assert_dropped(&[0x80, 0, 0, 4, 1, 2, 3, 4], "not_turn");
    h.assert_dropped(&[0x40, 0x00, 0x00, 0x08, 1, 2], "malformed");
    // A response class from a client is not for a server.
    let mut response = vec![0u8; 32];
    let len = Writer::new(&mut response, Class::Success, method::BINDING, [8; 12])
        .finish()
        .unwrap();
    h.assert_dropped(&response[..len], "unexpected_message");

    // Oversized but well-formed: a 64 kB Binding request is answered normally, and with
    // an unknown comprehension-required attribute it gets 420 listing it.
    let big = h.build(
        method::BINDING,
        &[(attr::SOFTWARE, vec![b'x'; 65_000])],
        None,
        false,
    );
    let m = h.ask(tuple(4000), &big);
    assert_eq!(Message::parse(&m).unwrap().class, Class::Success);
    let unknown = h.build(method::BINDING, &[(0x7FF0, vec![1; 60_000])], None, false);
    let m = h.ask(tuple(4000), &unknown);
    let m = Message::parse(&m).unwrap();
    assert_eq!(error_code(&m), Some(420));
    assert_eq!(m.get(attr::UNKNOWN_ATTRIBUTES), Some(&[0x7F, 0xF0][..]));

    // Bad attribute values in authenticated requests: 400.
    let bad_family = (attr::XOR_PEER_ADDRESS, vec![0, 3, 0, 1, 1, 2, 3, 4]);
    assert_eq!(
        h.request_code(
            tuple(4000),
            method::CREATE_PERMISSION,
            &[bad_family],
            &creds
        ),
        Some(400)
    );
    let short_channel = (attr::CHANNEL_NUMBER, vec![0x40, 0x00]);
    let pa = h.peer_attr(peer);
    assert_eq!(
        h.request_code(
            tuple(4000),
            method::CHANNEL_BIND,
            &[short_channel, pa],
            &creds
        ),
        Some(400)
    );
    // USERNAME that is not UTF-8.
    let req = {
        h.txid += 1;
        let mut buf = vec![0u8; 256];
        let len = Writer::new(&mut buf, Class::Request, method::REFRESH, [h.txid; 12])
            .attr(attr::USERNAME, &[0xE9, 0xFF])
            .attr(attr::REALM, REALM.as_bytes())
            .attr(attr::NONCE, &creds.nonce)
            .sync()
            .integrity(b"key", false)
            .finish()
            .unwrap();
        buf.truncate(len);
        buf
    };
    assert_eq!(
        error_code(&Message::parse(&h.ask(tuple(4000), &req)).unwrap()),
        Some(400)
    );

    // ChannelData for a channel never bound, and from a 5-tuple without an allocation.
    let mut frame = [0u8; 16];
    let n = channel_data::write(&mut frame, 0x4ABC, b"data", false).unwrap();
    h.assert_dropped(&frame[..n], "unbound_channel");
    let before = h.dropped("no_allocation");
    assert_eq!(h.send(tuple(4999), &frame[..n]), Output::None);
    assert_eq!(h.dropped("no_allocation"), before + 1);

    // Denied peers: a permission or channel for one is 403; a Send indication to one
    // (no permission can exist) or to our own listener is dropped without an answer.
    for denied in ["10.0.0.1:5000", "127.0.0.1:3478"] {
        let denied: SocketAddr = denied.parse().unwrap();
        let pa = h.peer_attr(denied);
        assert_eq!(
            h.request_code(
                tuple(4000),
                method::CHANNEL_BIND,
                &[channel_attr(0x4100), pa],
                &creds
            ),
            Some(403),
            "{denied}"
        );
    }
    let send_to = |h: &mut Harness, to: SocketAddr| {
        h.txid += 1;
        let mut buf = vec![0u8; 128];
        let len = Writer::new(&mut buf, Class::Indication, method::SEND, [h.txid; 12])
            .xor_address(attr::XOR_PEER_ADDRESS, to)
            .attr(attr::DATA, b"x")
            .finish()
            .unwrap();
        buf.truncate(len);
        buf
    };
    let to_private = send_to(&mut h, "10.0.0.1:5000".parse().unwrap());
    h.assert_dropped(&to_private, "no_permission");
    let to_listener = send_to(&mut h, "192.0.2.100:3478".parse().unwrap());
    h.assert_dropped(&to_listener, "forbidden_peer");
    // A Send indication without DATA is malformed: dropped, never answered.
    h.txid += 1;
    let mut buf = vec![0u8; 128];
    let len = Writer::new(&mut buf, Class::Indication, method::SEND, [h.txid; 12])
        .xor_address(attr::XOR_PEER_ADDRESS, peer)
        .finish()
        .unwrap();
    h.assert_dropped(&buf[..len], "malformed");
    assert_eq!(h.server.allocation_count(), 1);
}
