//! The worker's outgoing datagrams, queued while it handles one receive batch (or one timer
//! round) and then sent in as few syscalls as possible: one `sendmmsg` for the whole queue,
//! and within it one message per run of same-size datagrams to one destination (UDP GSO).
//!
//! This module only plans: it copies each datagram into a preallocated slot (one memcpy is
//! far cheaper than a syscall), groups the slots per destination keeping their order, and
//! cuts each destination's datagrams into GSO messages. `udp.rs` turns the plan into
//! `mmsghdr`s. Nothing here allocates after [`Outbox::new`].

use std::net::SocketAddr;

/// Datagrams queued before the outbox must be sent (a receive batch of 32 forwarded to a
/// few subscribers fills it; when full it is flushed and refilled).
pub const OUTBOX_SLOTS: usize = 64;
/// Largest datagram a slot holds (str0m's datagrams stay below its 1150-byte default MTU
/// plus SRTP overhead; DTLS flights are smaller than that too). Larger ones are sent alone.
pub const SLOT_BYTES: usize = 2048;
/// Larger datagrams never share a GSO send: every segment must fit the path MTU or the kernel
/// refuses the whole send. 1232 bytes fit IPv6's minimum MTU (1280 - 40 - 8).
pub const GSO_MAX_SEGMENT: usize = 1232;
/// Bytes per GSO send at most: one UDP datagram's payload limit, rounded down.
const GSO_BYTES: usize = 64_000;

/// One message of the plan: `count` datagrams to `to`, the slots
/// `Outbox::order()[start..start + count]`; with `count > 1` they share one GSO send of
/// `segment`-byte segments (the last may be shorter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    pub to: SocketAddr,
    pub start: usize,
    pub count: usize,
    pub segment: usize,
}

pub struct Outbox {
    /// `OUTBOX_SLOTS` slots of `SLOT_BYTES`.
    data: Box<[u8]>,
    /// Length of each queued datagram, in queue order (slot i holds datagram i).
    lens: Vec<u16>,
    /// Index into `dests` of each queued datagram.
    dest_of: Vec<u8>,
    /// Distinct destinations of the queued datagrams, first seen first.
    dests: Vec<SocketAddr>,
    /// Per destination: where its slots start in `order` (counting sort).
    starts: Vec<usize>,
    /// The plan: slot indices grouped by destination, queue order kept within each.
    order: Vec<usize>,
    messages: Vec<Message>,
}

impl Default for Outbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Outbox {
    pub fn new() -> Self {
        Self {
            data: vec![0; OUTBOX_SLOTS * SLOT_BYTES].into_boxed_slice(),
            lens: Vec::with_capacity(OUTBOX_SLOTS),
            dest_of: Vec::with_capacity(OUTBOX_SLOTS),
            dests: Vec::with_capacity(OUTBOX_SLOTS),
            starts: Vec::with_capacity(OUTBOX_SLOTS + 1),
            order: Vec::with_capacity(OUTBOX_SLOTS),
            messages: Vec::with_capacity(OUTBOX_SLOTS),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.lens.len() == OUTBOX_SLOTS
    }

    /// Whether `bytes` can be queued at all (else it is sent alone, after a flush).
    pub fn fits(bytes: &[u8]) -> bool {
        !bytes.is_empty() && bytes.len() <= SLOT_BYTES
    }

    /// Queues a copy of `bytes` for `to`. The caller flushes first when [`Self::is_full`] and
    /// sends datagrams that do not [`Self::fits`] itself.
    pub fn push(&mut self, to: SocketAddr, bytes: &[u8]) {
        debug_assert!(!self.is_full() && Self::fits(bytes));
        let slot = self.lens.len();
        // Recent destinations first: a forwarded packet's subscribers were usually just seen.
        let d = match self.dests.iter().rposition(|d| *d == to) {
            Some(d) => d,
            None => {
                self.dests.push(to);
                self.dests.len() - 1
            }
        };
        self.data[slot * SLOT_BYTES..slot * SLOT_BYTES + bytes.len()].copy_from_slice(bytes);
        self.lens.push(bytes.len() as u16);
        self.dest_of.push(d as u8);
    }

    /// Groups the queue into messages; GSO sends hold at most `gso_segments` datagrams (1: no
    /// GSO). Read the plan with [`Self::messages`], [`Self::order`], [`Self::datagram`].
    pub fn plan(&mut self, gso_segments: usize) {
        // Counting sort of the slots by destination: stable, so each keeps its order.
        self.starts.clear();
        self.starts.resize(self.dests.len() + 1, 0);
        for &d in &self.dest_of {
            self.starts[d as usize + 1] += 1;
        }
        for i in 1..self.starts.len() {
            self.starts[i] += self.starts[i - 1];
        }
        self.order.clear();
        self.order.resize(self.lens.len(), 0);
        for (slot, &d) in self.dest_of.iter().enumerate() {
            let at = &mut self.starts[d as usize];
            self.order[*at] = slot;
            *at += 1;
        }
        // Messages: a run of one destination's datagrams of the first one's size (a shorter
        // one can only end it), within the GSO limits.
        self.messages.clear();
        for (k, &slot) in self.order.iter().enumerate() {
            let to = self.dests[self.dest_of[slot] as usize];
            let len = self.lens[slot] as usize;
            if let Some(m) = self.messages.last_mut() {
                let last_len = self.lens[self.order[k - 1]] as usize;
                let joins = m.to == to
                    && gso_segments > 1
                    && m.segment <= GSO_MAX_SEGMENT
                    && last_len == m.segment
                    && len <= m.segment
                    && m.count < gso_segments
                    && m.segment * m.count + len <= GSO_BYTES;
                if joins {
                    m.count += 1;
                    continue;
                }
            }
            self.messages.push(Message {
                to,
                start: k,
                count: 1,
                segment: len,
            });
        }
    }

    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Slot indices in send order (see [`Message::start`]).
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The datagram queued in `slot`.
    pub fn datagram(&self, slot: usize) -> &[u8] {
        &self.data[slot * SLOT_BYTES..slot * SLOT_BYTES + self.lens[slot] as usize]
    }

    /// Empties the queue (after the plan was sent).
    pub fn clear(&mut self) {
        self.lens.clear();
        self.dest_of.clear();
        self.dests.clear();
        self.order.clear();
        self.messages.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    /// The plan as (destination port, datagrams as (first byte, len)) per message.
    fn planned(o: &Outbox) -> Vec<(u16, Vec<(u8, usize)>)> {
        o.messages()
            .iter()
            .map(|m| {
                let dgs = o.order()[m.start..m.start + m.count]
                    .iter()
                    .map(|&s| (o.datagram(s)[0], o.datagram(s).len()))
                    .collect();
                (m.to.port(), dgs)
            })
            .collect()
    }

    #[test]
    fn groups_per_destination_in_queue_order() {
        let mut o = Outbox::new();
        // A fan-out: packets 1..=3 each to three subscribers, interleaved.
        for p in 1..=3u8 {
            for port in [10, 11, 12] {
                o.push(addr(port), &[p; 1000]);
            }
        }
        o.plan(64);
        assert_eq!(
            planned(&o),
            vec![
                (10, vec![(1, 1000), (2, 1000), (3, 1000)]),
                (11, vec![(1, 1000), (2, 1000), (3, 1000)]),
                (12, vec![(1, 1000), (2, 1000), (3, 1000)]),
            ]
        );
    }

    #[test]
    fn without_gso_every_datagram_is_a_message_still_grouped_in_order() {
        let mut o = Outbox::new();
        for p in 1..=2u8 {
            o.push(addr(10), &[p; 100]);
            o.push(addr(11), &[p; 100]);
        }
        o.plan(1);
        assert_eq!(
            planned(&o),
            vec![
                (10, vec![(1, 100)]),
                (10, vec![(2, 100)]),
                (11, vec![(1, 100)]),
                (11, vec![(2, 100)]),
            ]
        );
    }

    #[test]
    fn a_shorter_datagram_ends_a_gso_run_and_a_longer_one_starts_another() {
        let mut o = Outbox::new();
        for (p, len) in [(1u8, 500), (2, 500), (3, 200), (4, 500), (5, 600), (6, 600)] {
            o.push(addr(10), &vec![p; len]);
        }
        o.plan(64);
        assert_eq!(
            planned(&o),
            vec![
                (10, vec![(1, 500), (2, 500), (3, 200)]),
                (10, vec![(4, 500)]),
                (10, vec![(5, 600), (6, 600)]),
            ]
        );
    }

    #[test]
    fn gso_runs_respect_segment_count_size_and_byte_limits() {
        let mut o = Outbox::new();
        for p in 0..5u8 {
            o.push(addr(10), &[p; 100]);
        }
        o.plan(2);
        let counts: Vec<usize> = o.messages().iter().map(|m| m.count).collect();
        assert_eq!(counts, vec![2, 2, 1]);
        o.clear();

        // Over the MTU-safe segment size: each alone.
        for p in 0..3u8 {
            o.push(addr(10), &[p; GSO_MAX_SEGMENT + 1]);
        }
        o.plan(64);
        assert_eq!(o.messages().len(), 3);
        o.clear();

        // 64 × 1200 bytes exceed one UDP datagram: two sends.
        for p in 0..OUTBOX_SLOTS as u8 {
            o.push(addr(10), &[p; 1200]);
        }
        assert!(o.is_full());
        o.plan(64);
        let counts: Vec<usize> = o.messages().iter().map(|m| m.count).collect();
        assert_eq!(
            counts,
            vec![GSO_BYTES / 1200, OUTBOX_SLOTS - GSO_BYTES / 1200]
        );
        let firsts: Vec<u8> = o.order().iter().map(|&s| o.datagram(s)[0]).collect();
        assert_eq!(firsts, (0..OUTBOX_SLOTS as u8).collect::<Vec<_>>());
    }

    #[test]
    fn clear_empties_and_the_outbox_is_reused() {
        let mut o = Outbox::new();
        o.push(addr(10), b"first");
        o.plan(64);
        o.clear();
        assert!(o.is_empty());
        o.push(addr(11), b"second");
        o.plan(64);
        assert_eq!(planned(&o), vec![(11, vec![(b's', 6)])]);
        assert!(Outbox::fits(&[0; SLOT_BYTES]));
        assert!(!Outbox::fits(&[0; SLOT_BYTES + 1]));
        assert!(!Outbox::fits(&[]));
    }
}
