//! The SFU's whole per-packet path, str0m included: one publisher's Opus and three-layer VP8
//! simulcast through a [`Shard`] to eleven subscribers, each a str0m peer connection (DTLS-SRTP,
//! TWCC, NACK/RTX, BWE), over the sans-IO world of the SFU's own tests with synthetic time.
//! Only the shard's calls are timed (datagram in, timers, output: decrypt, layer gate, rewrite,
//! `write_rtp`, str0m's timeout pass and poll, SRTP seal); the clients' side is not. One
//! iteration is one forwarded packet. No syscalls: this is the user-space part of what the
//! conference benchmark measures per forwarded packet (bench/conference.sh).

#[path = "../../sfu/tests/support/world.rs"]
mod world;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use sfu::core::api::RoomId;
use world::{publish, run_media, subscribe, World};

/// A 12-party room's fan-out: one publisher, the other eleven subscribed to it.
const SUBSCRIBERS: usize = 11;

fn forward_through_str0m(c: &mut Criterion) {
    let room = RoomId::Str("bench-room".into());
    let mut w = World::new(1 + SUBSCRIBERS);
    let mut senders = vec![publish(&mut w, 0, 1, &room)];
    for k in 1..=SUBSCRIBERS {
        subscribe(&mut w, k, 100 + k as u64, &room, 1);
    }
    w.run_for(Duration::from_secs(2), |_| {});
    assert!(w.clients.iter().all(|c| c.connected), "all peers connect");
    let mut next_frame = w.now;
    // Past the start: estimates settled, subscribers on their layers.
    run_media(
        &mut w,
        &mut senders,
        &mut next_frame,
        Duration::from_secs(5),
    );
    w.shard.take_stats();

    c.bench_function("sfu/str0m_forward/1_publisher_11_subscribers", |b| {
        b.iter_custom(|iters| {
            let spent = w.shard_time;
            let mut forwarded = 0;
            let started = Instant::now();
            while forwarded < iters {
                run_media(
                    &mut w,
                    &mut senders,
                    &mut next_frame,
                    Duration::from_millis(33),
                );
                forwarded += w.shard.take_stats().rtp_forwarded;
                assert!(
                    started.elapsed() < Duration::from_secs(600),
                    "media stopped flowing"
                );
            }
            // Whole frames run, so prorate the shard's time to `iters` packets.
            (w.shard_time - spent).mul_f64(iters as f64 / forwarded as f64)
        })
    });
}

criterion_group!(benches, forward_through_str0m);
criterion_main!(benches);
