//! TURN hot paths on turn-relay's own sans-IO core: STUN parse and build with its codec, and
//! ChannelData relayed through `Server` in both directions (one packet in, one out), driven
//! with synthetic time as `turn-relay/tests/core.rs` does.

use std::collections::HashMap;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use turn_relay::core::allocation::{AllocationId, FiveTuple, Transport};
use turn_relay::core::auth::{long_term_key, rest_password};
use turn_relay::core::server::{BindError, Output, RelaySockets, Server, Shared, MIN_OUT_BUF};
use turn_relay::core::stun::{attr, channel_data, method, Class, Message, Writer};
use turn_relay::{PortRange, TurnConfig, TurnMetrics};

const SECRET: &[u8] = b"bench-secret";
const REALM: &str = "switchboard";
/// Wall-clock seconds at the synthetic start.
const UNIX0: u64 = 1_800_000_000;
const CHANNEL: u16 = 0x4001;
/// An SRTP video packet as browsers send it (≈ 1200 B payload + headers).
const MEDIA_LEN: usize = 1200;

/// Relayed "sockets" as a map: the core only asks for bind/close.
#[derive(Default)]
struct Sockets {
    open: HashMap<AllocationId, SocketAddr>,
}

impl RelaySockets for Sockets {
    fn open(&mut self, id: AllocationId, addr: SocketAddr) -> Result<(), BindError> {
        self.open.insert(id, addr);
        Ok(())
    }
    fn close(&mut self, id: AllocationId) {
        self.open.remove(&id);
    }
    fn reserve(&mut self, _: SocketAddr) -> Result<(), BindError> {
        Err(BindError::Failed)
    }
    fn open_reserved(&mut self, _: AllocationId, _: SocketAddr) -> Result<(), BindError> {
        Err(BindError::Failed)
    }
    fn release(&mut self, _: SocketAddr) {}
}

fn client() -> FiveTuple {
    FiveTuple {
        client: "198.51.100.7:4000".parse().unwrap(),
        server: "192.0.2.100:3478".parse().unwrap(),
        transport: Transport::Udp,
    }
}

fn peer() -> SocketAddr {
    "203.0.113.9:7000".parse().unwrap()
}

/// A signed request as a client sends it after the 401: the attributes, then USERNAME,
/// REALM, NONCE, MESSAGE-INTEGRITY and FINGERPRINT.
fn request(txid: u8, m: u16, attrs: &[(u16, &[u8])], user: &str, nonce: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let mut w = Writer::new(&mut buf, Class::Request, m, [txid; 12]);
    for (t, v) in attrs {
        w.attr(*t, v);
    }
    if !user.is_empty() {
        let key = long_term_key(user, REALM, &rest_password(SECRET, user));
        w.attr(attr::USERNAME, user.as_bytes())
            .attr(attr::REALM, REALM.as_bytes())
            .attr(attr::NONCE, nonce)
            .sync()
            .integrity(&key, false);
    }
    w.fingerprint();
    let len = w.finish().expect("request fits");
    buf.truncate(len);
    buf
}

/// XOR-PEER-ADDRESS for transaction `txid`.
fn peer_attr(txid: u8) -> Vec<u8> {
    let mut buf = [0u8; 64];
    let len = Writer::new(&mut buf, Class::Request, method::BINDING, [txid; 12])
        .xor_address(attr::XOR_PEER_ADDRESS, peer())
        .finish()
        .expect("fits");
    buf[24..len].to_vec()
}

/// A server with one allocation whose channel `CHANNEL` is bound to `peer()`.
struct Relay {
    server: Server,
    sockets: Sockets,
    now: Instant,
    id: AllocationId,
}

impl Relay {
    fn new() -> Self {
        let mut config =
            TurnConfig::new("192.0.2.100:3478".parse().unwrap(), Some(SECRET.to_vec()));
        config.relay_ports = PortRange {
            min: 50000,
            max: 50009,
        };
        // Rate limits are not what is measured.
        config.max_bandwidth = None;
        let now = Instant::now();
        let mut server = Server::new(
            &config,
            Shared::new(&config),
            TurnMetrics::default(),
            [9; 32],
            3,
            now,
            UNIX0,
        );
        let mut sockets = Sockets::default();
        let mut out = vec![0u8; MIN_OUT_BUF];
        let user = format!("{}:alice", UNIX0 + 3600);
        let transport: &[u8] = &[17, 0, 0, 0];
        let ask = |server: &mut Server, sockets: &mut Sockets, out: &mut Vec<u8>, req: &[u8]| {
            match server.handle_datagram(now, client(), req, out, sockets) {
                Output::Reply(len) => out[..len].to_vec(),
                other => panic!("expected a reply, got {other:?}"),
            }
        };
        let challenge = request(
            1,
            method::ALLOCATE,
            &[(attr::REQUESTED_TRANSPORT, transport)],
            "",
            &[],
        );
        let resp = ask(&mut server, &mut sockets, &mut out, &challenge);
        let nonce = Message::parse(&resp)
            .unwrap()
            .get(attr::NONCE)
            .unwrap()
            .to_vec();
        let alloc = request(
            2,
            method::ALLOCATE,
            &[(attr::REQUESTED_TRANSPORT, transport)],
            &user,
            &nonce,
        );
        let resp = ask(&mut server, &mut sockets, &mut out, &alloc);
        assert_eq!(Message::parse(&resp).unwrap().class, Class::Success);
        let channel = [(CHANNEL >> 8) as u8, CHANNEL as u8, 0, 0];
        let pa = peer_attr(3);
        let bind = request(
            3,
            method::CHANNEL_BIND,
            &[
                (attr::CHANNEL_NUMBER, &channel),
                (attr::XOR_PEER_ADDRESS, &pa),
            ],
            &user,
            &nonce,
        );
        let resp = ask(&mut server, &mut sockets, &mut out, &bind);
        assert_eq!(Message::parse(&resp).unwrap().class, Class::Success);
        let id = *sockets
            .open
            .keys()
            .next()
            .expect("allocation opened its socket");
        Self {
            server,
            sockets,
            now,
            id,
        }
    }
}

fn stun(c: &mut Criterion) {
    let user = format!("{}:alice", UNIX0 + 3600);
    let nonce = [7u8; 24];
    let pa = peer_attr(5);
    let refresh = request(
        5,
        method::CREATE_PERMISSION,
        &[(attr::XOR_PEER_ADDRESS, &pa)],
        &user,
        &nonce,
    );
    let key = long_term_key(&user, REALM, &rest_password(SECRET, &user));
    let mut g = c.benchmark_group("turn/stun");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_signed_request", |b| {
        b.iter(|| Message::parse(black_box(&refresh)).unwrap().len())
    });
    g.bench_function("parse_and_verify_integrity", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(&refresh)).unwrap();
            assert!(m.verify_integrity(&key));
        })
    });
    let mut buf = [0u8; MIN_OUT_BUF];
    let mapped = client().client;
    g.bench_function("build_binding_success", |b| {
        b.iter(|| {
            Writer::new(
                &mut buf,
                Class::Success,
                method::BINDING,
                black_box([1; 12]),
            )
            .xor_address(attr::XOR_MAPPED_ADDRESS, mapped)
            .fingerprint()
            .finish()
            .unwrap()
        })
    });
    g.bench_function("build_signed_success", |b| {
        b.iter(|| {
            Writer::new(
                &mut buf,
                Class::Success,
                method::REFRESH,
                black_box([1; 12]),
            )
            .u32(attr::LIFETIME, 600)
            .integrity(&key, false)
            .fingerprint()
            .finish()
            .unwrap()
        })
    });
    g.finish();
}

fn channel_data_relay(c: &mut Criterion) {
    let mut relay = Relay::new();
    let payload = vec![0x80u8; MEDIA_LEN];
    let mut frame = vec![0u8; MEDIA_LEN + channel_data::HEADER_LEN];
    let n = channel_data::write(&mut frame, CHANNEL, &payload, false).unwrap();
    let frame = &frame[..n];
    let mut out = vec![0u8; MIN_OUT_BUF.max(MEDIA_LEN + 64)];
    let mut g = c.benchmark_group("turn/channel_data");
    g.throughput(Throughput::Elements(1));
    g.bench_function("client_to_peer_1200B", |b| {
        b.iter(|| {
            let o = relay.server.handle_datagram(
                relay.now,
                client(),
                black_box(frame),
                &mut out,
                &mut relay.sockets,
            );
            assert!(matches!(o, Output::ToPeer { .. }));
        })
    });
    g.bench_function("peer_to_client_1200B", |b| {
        b.iter(|| {
            let to = relay
                .server
                .handle_peer_datagram(relay.now, relay.id, peer(), black_box(&payload), &mut out)
                .unwrap();
            to.len
        })
    });
    g.finish();
    // The hot path keeps plain counters; flushing them is per batch, not per packet.
    let _ = relay.server.flush_stats();
}

fn rest_credentials(c: &mut Criterion) {
    let user = format!("{}:12345", UNIX0 + 86_400);
    let mut g = c.benchmark_group("turn/rest_credentials");
    g.throughput(Throughput::Elements(1));
    // What the server derives per authenticated request: HMAC-SHA1 password, then the
    // RFC 8489 long-term key MD5(user:realm:password).
    g.bench_function("password_and_long_term_key", |b| {
        b.iter(|| {
            let password = rest_password(SECRET, black_box(&user));
            long_term_key(&user, REALM, &password)
        })
    });
    g.finish();
}

criterion_group!(benches, stun, channel_data_relay, rest_credentials);
criterion_main!(benches);
