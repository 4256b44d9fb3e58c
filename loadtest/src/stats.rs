//! Per-flow receive statistics of packet scenarios: one-way latency, loss, reordering and
//! RFC 3550 interarrival jitter, plus the batch that hands latencies to [`Live`] without a
//! lock per packet. Sender and receiver share [`Live::epoch`], so the send time carried
//! in a payload gives the one-way latency directly.

use std::time::{Duration, Instant};

use crate::run::Live;

/// RFC 3550 §6.4.1 interarrival jitter, in µs: the mean deviation of the difference in
/// transit time between consecutive packets, smoothed with gain 1/16.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Jitter {
    last_transit_us: Option<i64>,
    jitter_us: f64,
}

impl Jitter {
    /// Adds one packet's transit time (arrival − send time, any common clock).
    pub fn update(&mut self, transit_us: i64) {
        if let Some(prev) = self.last_transit_us {
            let d = (transit_us - prev).unsigned_abs() as f64;
            self.jitter_us += (d - self.jitter_us) / 16.0;
        }
        self.last_transit_us = Some(transit_us);
    }

    pub fn value_us(&self) -> f64 {
        self.jitter_us
    }
}

/// What a receiver saw of one flow (one sender's numbered packets).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Flow {
    pub received: u64,
    /// Packets that arrived after a higher sequence number.
    pub reordered: u64,
    /// One past the highest sequence number seen.
    next_seq: u64,
    pub jitter: Jitter,
}

impl Flow {
    /// One packet: its sequence number (from 0), send and arrival times in µs. Returns
    /// its one-way latency.
    pub fn on_packet(&mut self, seq: u64, sent_us: u64, recv_us: u64) -> u64 {
        self.received += 1;
        if seq < self.next_seq {
            self.reordered += 1;
        } else {
            self.next_seq = seq + 1;
        }
        self.jitter.update(recv_us as i64 - sent_us as i64);
        recv_us.saturating_sub(sent_us)
    }

    /// Missing so far by sequence numbers (RFC 3550's cumulative lost, duplicates aside):
    /// packets after the last one seen are not counted until a later one arrives.
    pub fn gaps(&self) -> u64 {
        self.next_seq.saturating_sub(self.received)
    }

    /// Lost out of `sent`, once nothing more is in flight.
    pub fn lost(&self, sent: u64) -> u64 {
        sent.saturating_sub(self.received)
    }
}

/// Packets lost over a run: what was sent minus what arrived, per leg. Receivers count
/// after a drain, so packets still in flight when sending stopped are not counted lost.
pub fn lost(legs: &[(u64, u64)]) -> u64 {
    legs.iter()
        .map(|&(sent, received)| sent.saturating_sub(received))
        .sum()
}

/// Latencies a receiver collects for one operation, handed to [`Live::record_many`] when
/// full or every [`Batch::FLUSH_EVERY`]: the hot path only pushes into a reused buffer.
pub struct Batch {
    op: &'static str,
    values: Vec<u64>,
    last_flush: Instant,
}

impl Batch {
    const CAPACITY: usize = 1024;
    /// Keeps the live progress line current at low packet rates.
    const FLUSH_EVERY: Duration = Duration::from_millis(250);

    pub fn new(op: &'static str) -> Self {
        Self {
            op,
            values: Vec::with_capacity(Self::CAPACITY),
            last_flush: Instant::now(),
        }
    }

    pub fn push(&mut self, live: &Live, latency_us: u64) {
        self.values.push(latency_us);
        if self.values.len() >= Self::CAPACITY || self.last_flush.elapsed() >= Self::FLUSH_EVERY {
            self.flush(live);
        }
    }

    pub fn flush(&mut self, live: &Live) {
        live.record_many(self.op, &self.values);
        self.values.clear();
        self.last_flush = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_follows_rfc3550_by_hand() {
        // Transits 10, 20, 15, 15 µs: D = 10, 5, 0.
        let mut j = Jitter::default();
        for t in [10, 20, 15, 15] {
            j.update(t);
        }
        let j1 = 10.0 / 16.0;
        let j2 = j1 + (5.0 - j1) / 16.0;
        let j3 = j2 + (0.0 - j2) / 16.0;
        assert!((j.value_us() - j3).abs() < 1e-12, "{}", j.value_us());
        assert!((j3 - 0.842_285_156_25).abs() < 1e-12);
    }

    #[test]
    fn constant_transit_has_no_jitter() {
        let mut f = Flow::default();
        for seq in 0..100 {
            f.on_packet(seq, seq * 1000, seq * 1000 + 250);
        }
        assert_eq!(f.jitter.value_us(), 0.0);
        assert_eq!((f.received, f.reordered, f.gaps()), (100, 0, 0));
    }

    #[test]
    fn loss_and_reordering_of_a_flow() {
        let mut f = Flow::default();
        // 0..=9 sent; 3 and 7 lost, 5 arrives after 6.
        for seq in [0, 1, 2, 4, 6, 5, 8, 9] {
            assert_eq!(f.on_packet(seq, 100, 340), 240);
        }
        assert_eq!(f.received, 8);
        assert_eq!(f.reordered, 1);
        assert_eq!(f.gaps(), 2);
        assert_eq!(f.lost(10), 2);
        // Two more were sent after 9 and never arrived: only the send count knows.
        assert_eq!(f.lost(12), 4);
        assert_eq!(lost(&[(12, 8), (8, 8), (3, 5)]), 4);
    }

    #[test]
    fn batch_records_every_value_once() {
        let live = Live::new(None);
        let mut b = Batch::new("echo");
        for v in 1..=3000 {
            b.push(&live, v);
        }
        b.flush(&live);
        b.flush(&live);
        assert_eq!(live.ops(), 3000);
    }
}
