//! XMPP hot paths of `signaling`: the TCP framer fed a typical QuickBlox chat message, the
//! element serialised back, and `Router` delivery to N resources or room occupants over the
//! connections' bounded tokio mpsc queues (no sockets).

use std::hint::black_box;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use control_api::domain::model::{AppId, UserId};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use signaling::core::address::{RoomAddr, UserAddr};
use signaling::core::framing::{to_xml, StreamEvent, TcpFramer};
use signaling::core::router::{Outbound, Router};
use tokio::sync::mpsc;

const STREAM_OPEN: &str = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
    xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/// A 1:1 chat message as the QuickBlox SDK sends it (body, extraParams, markable).
const MESSAGE: &str = "<message to='7-1@localhost' type='chat' id='5f3c9a1e2b7d4c0012345678'>\
    <body>Hello! Are we still on for the call at five?</body>\
    <extraParams xmlns='jabber:client'><save_to_history>1</save_to_history>\
    <dialog_id>5f3c9a1e2b7d4c0087654321</dialog_id><date_sent>1795000000</date_sent></extraParams>\
    <markable xmlns='urn:xmpp:chat-markers:0'/></message>";

/// The stanza limit the server configures (irrelevant here, large enough).
const MAX_STANZA: usize = 256 * 1024;

fn framer() -> TcpFramer {
    let mut f = TcpFramer::new(MAX_STANZA);
    let mut out = Vec::new();
    f.feed(STREAM_OPEN.as_bytes(), &mut out)
        .expect("stream opens");
    assert!(matches!(out.as_slice(), [StreamEvent::Open { .. }]));
    f
}

fn parse_and_serialise(c: &mut Criterion) {
    let mut g = c.benchmark_group("xmpp/stanza");
    g.throughput(Throughput::Elements(1));
    let mut f = framer();
    let mut events = Vec::with_capacity(4);
    g.bench_function("tcp_framer_feed_chat_message", |b| {
        b.iter(|| {
            events.clear();
            f.feed(black_box(MESSAGE.as_bytes()), &mut events).unwrap();
            assert_eq!(events.len(), 1);
        })
    });
    let mut out = Vec::new();
    framer().feed(MESSAGE.as_bytes(), &mut out).unwrap();
    let Some(StreamEvent::Element(element)) = out.pop() else {
        panic!("expected the message element");
    };
    g.bench_function("to_xml_chat_message", |b| {
        b.iter(|| to_xml(black_box(&element)))
    });
    g.finish();
}

fn user(id: i64) -> UserAddr {
    UserAddr {
        app: AppId(1),
        user: UserId(id),
    }
}

/// One stanza to every resource of a user: N connections' queues, each drained as the
/// connection's writer task would.
fn route_to_resources(c: &mut Criterion) {
    let mut g = c.benchmark_group("xmpp/route_to_resources");
    let stanza: Outbound = Arc::from(MESSAGE);
    for n in [1usize, 4] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let router = Router::new();
            let mut queues = Vec::new();
            for r in 0..n {
                let (tx, rx) = mpsc::channel(256);
                let conn = router.next_conn_id();
                router.bind(
                    user(7),
                    conn,
                    &format!("res{r}"),
                    tx,
                    Arc::new(AtomicBool::new(false)),
                );
                queues.push(rx);
            }
            b.iter(|| {
                assert_eq!(router.send_to_user(user(7), None, black_box(&stanza)), n);
                for rx in &mut queues {
                    black_box(rx.try_recv().unwrap());
                }
            })
        });
    }
    g.finish();
}

/// A group-chat message to a 12-occupant room: one stanza built per recipient (its `to`
/// differs), as `Router::broadcast_room` is called by the MUC code.
fn broadcast_room(c: &mut Criterion) {
    let mut g = c.benchmark_group("xmpp/room_broadcast");
    let occupants = 12usize;
    g.throughput(Throughput::Elements(occupants as u64 - 1));
    let router = Router::new();
    let room = RoomAddr {
        app: AppId(1),
        dialog: "5f3c9a1e2b7d4c0087654321".into(),
    };
    let mut queues = Vec::new();
    for u in 0..occupants {
        let (tx, rx) = mpsc::channel(256);
        let conn = router.next_conn_id();
        let resource = signaling::core::router::Resource {
            conn,
            name: "web".into(),
            tx,
            carbons: Arc::new(AtomicBool::new(false)),
        };
        router.join_room(&room, UserId(u as i64 + 1), resource);
        queues.push(rx);
    }
    let body = "<body>Hello room</body>";
    g.bench_function(BenchmarkId::from_parameter(occupants), |b| {
        b.iter(|| {
            let sent = router.broadcast_room(&room, Some(UserId(1)), |to, resource| {
                Arc::from(format!(
                    "<message from='{}' to='{}-1@localhost/{resource}' type='groupchat'>{body}</message>",
                    room.occupant("localhost", UserId(1)),
                    to.0
                ))
            });
            assert_eq!(sent, occupants - 1);
            for rx in &mut queues {
                while let Ok(s) = rx.try_recv() {
                    black_box(s);
                }
            }
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    parse_and_serialise,
    route_to_resources,
    broadcast_room
);
criterion_main!(benches);
