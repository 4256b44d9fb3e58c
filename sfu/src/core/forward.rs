//! What one subscriber receives of one publisher track: the simulcast layer choice (requested
//! quality, bandwidth estimate, keyframe-gated switching) and the sequence-number/timestamp
//! rewrite that makes a layer switch look like one continuous stream to the decoder.
//!
//! Pure logic: no str0m, no clock. Times come in as `Instant`s the caller read once per batch.

use std::time::{Duration, Instant};

/// Simulcast layers we forward: Janus's substreams 0 (low), 1 (medium), 2 (high).
pub const MAX_LAYERS: usize = 3;

/// Rewrites a source's (extended) sequence numbers and RTP timestamps onto one output stream.
///
/// Within one source the output is `input + offset`, so reordering and gaps pass through as
/// they came (the receiver NACKs real losses). When the source changes (a simulcast switch),
/// the offset is recomputed so the first packet of the new source follows the last one sent,
/// and packets from before the switch point are dropped.
#[derive(Debug, Default)]
pub struct Rewriter {
    state: Option<RewriteState>,
}

#[derive(Debug, Clone, Copy)]
struct RewriteState {
    /// `out_seq = in_seq + seq_delta`.
    seq_delta: i64,
    /// `out_ts = in_ts + ts_delta` (wrapping, RTP timestamps are 32-bit).
    ts_delta: u32,
    /// First input sequence number of the current source; older packets are stale.
    first_in_seq: u64,
    /// Highest output sequence number so far.
    max_out_seq: u64,
    /// Output timestamp and arrival time of the packet that set `max_out_seq`.
    last_out_ts: u32,
    last_arrival: Instant,
}

/// One output packet's header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    pub seq: u64,
    pub ts: u32,
}

impl Rewriter {
    /// Maps one input packet. `switched` says this packet is the first of a new source.
    /// Returns `None` for a packet that must not be sent (older than the current source).
    pub fn rewrite(
        &mut self,
        switched: bool,
        in_seq: u64,
        in_ts: u32,
        arrival: Instant,
        clock_rate: u32,
    ) -> Option<Rewritten> {
        let state = match (self.state, switched) {
            (Some(s), false) => s,
            (prev, _) => self.restart(prev, in_seq, in_ts, arrival, clock_rate),
        };
        if in_seq < state.first_in_seq {
            return None;
        }
        let seq = (in_seq as i64 + state.seq_delta) as u64;
        let ts = in_ts.wrapping_add(state.ts_delta);
        let s = self.state.as_mut()?;
        if seq > s.max_out_seq {
            s.max_out_seq = seq;
            s.last_out_ts = ts;
            s.last_arrival = arrival;
        }
        Some(Rewritten { seq, ts })
    }

    /// Leaves out an input packet the subscriber will not get (a dropped temporal layer) so
    /// that the output stays gapless: the next packet takes the number this one would have.
    /// Older packets still on their way are dropped from then on, since their numbers would
    /// collide; a skipped packet that itself comes late leaves a gap (rare, and the receiver
    /// then asks for a keyframe).
    pub fn skip(&mut self, in_seq: u64) {
        let Some(s) = self.state.as_mut() else {
            return;
        };
        let max_in_seq = (s.max_out_seq as i64 - s.seq_delta) as u64;
        if in_seq <= max_in_seq {
            return;
        }
        s.seq_delta = s.max_out_seq as i64 - in_seq as i64;
        s.first_in_seq = in_seq + 1;
    }

    fn restart(
        &mut self,
        prev: Option<RewriteState>,
        in_seq: u64,
        in_ts: u32,
        arrival: Instant,
        clock_rate: u32,
    ) -> RewriteState {
        let state = match prev {
            // The very first source passes through unchanged.
            None => RewriteState {
                seq_delta: 0,
                ts_delta: 0,
                first_in_seq: in_seq,
                max_out_seq: in_seq,
                last_out_ts: in_ts,
                last_arrival: arrival,
            },
            Some(p) => {
                let next_seq = p.max_out_seq + 1;
                // Advance the timestamp by the wall time since the last packet sent, at least
                // one tick, so the new frame is later than the last one the decoder saw.
                let elapsed = arrival.saturating_duration_since(p.last_arrival);
                let ticks = ticks(elapsed, clock_rate).max(1);
                let next_ts = p.last_out_ts.wrapping_add(ticks);
                RewriteState {
                    seq_delta: next_seq as i64 - in_seq as i64,
                    ts_delta: next_ts.wrapping_sub(in_ts),
                    first_in_seq: in_seq,
                    max_out_seq: next_seq,
                    last_out_ts: next_ts,
                    last_arrival: arrival,
                }
            }
        };
        self.state = Some(state);
        state
    }
}

fn ticks(d: Duration, clock_rate: u32) -> u32 {
    (d.as_micros() * clock_rate as u128 / 1_000_000).min(u32::MAX as u128) as u32
}

/// What the allocator knows of one video track a subscriber receives.
#[derive(Debug, Clone, Copy, Default)]
pub struct Demand {
    /// Measured bitrate (bits/s) of each layer, low to high; `None` where the layer is not
    /// being received from the publisher.
    pub layers: [Option<u64>; MAX_LAYERS],
    /// Highest layer the subscriber asked for (Janus `substream`).
    pub max_layer: u8,
    /// The subscriber paused this track (or the whole subscription).
    pub paused: bool,
    /// The layer chosen last time: holding it (or going lower) costs only `HOLD_PERCENT` of
    /// its rate, so an estimate that wobbles around a layer's rate does not flap layers
    /// (each switch costs a keyframe).
    pub current: Option<u8>,
}

/// Share of a layer's rate the budget must cover to keep forwarding it; moving up needs all
/// of it. The estimate of a link that carries exactly the current layer hovers around that
/// rate, so a layer is dropped only when the estimate falls clearly below it.
pub const HOLD_PERCENT: u64 = 80;

impl Demand {
    /// What layer `layer` costs against the budget.
    fn cost(&self, layer: u8, rate: u64) -> u64 {
        if self.current.is_some_and(|c| layer <= c) {
            rate * HOLD_PERCENT / 100
        } else {
            rate
        }
    }

    fn active(&self) -> impl Iterator<Item = (u8, u64)> + '_ {
        self.layers
            .iter()
            .enumerate()
            .filter(move |(i, _)| *i as u8 <= self.max_layer)
            .filter_map(|(i, b)| b.map(|b| (i as u8, b)))
    }

    /// The highest layer wanted and sent, unless paused.
    pub fn top_layer(&self) -> Option<u8> {
        if self.paused {
            return None;
        }
        self.active().last().map(|(l, _)| l)
    }

    /// Rate of the highest layer wanted and sent, unless paused.
    pub fn top_rate(&self) -> Option<u64> {
        if self.paused {
            return None;
        }
        self.active().last().map(|(_, r)| r)
    }

    fn is_simulcast(&self) -> bool {
        self.layers.iter().filter(|l| l.is_some()).count() > 1
    }
}

/// Splits a subscriber's bandwidth estimate over its video tracks, mediasoup-style: every
/// track first gets its lowest wanted layer while the budget lasts, then tracks are upgraded
/// one layer at a time, round-robin, while the next step fits. A track with a single layer
/// (no simulcast) is always forwarded: there is nothing cheaper to fall back to.
///
/// Returns the target layer per track (`None`: forward nothing).
pub fn allocate(budget_bps: u64, demands: &[Demand]) -> Vec<Option<u8>> {
    let mut left = budget_bps;
    let mut out: Vec<Option<u8>> = demands
        .iter()
        .map(|d| {
            if d.paused {
                return None;
            }
            let (layer, rate) = d.active().next()?;
            let rate = d.cost(layer, rate);
            if !d.is_simulcast() {
                left = left.saturating_sub(rate);
                return Some(layer);
            }
            (rate <= left).then(|| {
                left -= rate;
                layer
            })
        })
        .collect();
    loop {
        let mut upgraded = false;
        for (d, cur) in demands.iter().zip(out.iter_mut()) {
            let Some(layer) = *cur else { continue };
            let rate = d.cost(layer, d.layers[layer as usize].unwrap_or(0));
            if let Some((next, next_rate)) = d.active().find(|(l, _)| *l > layer) {
                let step = d.cost(next, next_rate).saturating_sub(rate);
                if step <= left {
                    left -= step;
                    *cur = Some(next);
                    upgraded = true;
                }
            }
        }
        if !upgraded {
            return out;
        }
    }
}

/// When to re-run bandwidth probing for a subscriber whose estimate holds its layers back:
/// after `REPROBE_FIRST` of being limited, then at doubling intervals up to `REPROBE_MAX`
/// while it stays limited (a link that really is narrow is probed rarely).
#[derive(Debug, Default)]
pub struct Reprobe {
    limited_since: Option<Instant>,
    wait: Duration,
}

pub const REPROBE_FIRST: Duration = Duration::from_secs(2);
pub const REPROBE_MAX: Duration = Duration::from_secs(64);

impl Reprobe {
    /// Called at each allocation with whether it was limited by the estimate. Returns true
    /// when a probe is due now.
    pub fn on_allocation(&mut self, now: Instant, limited: bool) -> bool {
        if !limited {
            self.limited_since = None;
            self.wait = REPROBE_FIRST;
            return false;
        }
        let since = *self.limited_since.get_or_insert(now);
        let wait = self.wait.max(REPROBE_FIRST);
        if now.saturating_duration_since(since) < wait {
            return false;
        }
        self.limited_since = Some(now);
        self.wait = (wait * 2).min(REPROBE_MAX);
        true
    }
}

/// A subscriber's view of one simulcast track: the layer it gets now, the layer it should
/// get, and whether it waits for a keyframe to switch.
#[derive(Debug, Default)]
pub struct LayerSwitch {
    current: Option<u8>,
    target: Option<u8>,
}

/// What to do with one incoming packet of some layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not the layer this subscriber gets.
    Drop,
    /// Forward, continuing the current layer.
    Forward,
    /// Forward: this keyframe starts the target layer (a switch; rewrite continuity).
    SwitchTo(u8),
}

impl LayerSwitch {
    pub fn current(&self) -> Option<u8> {
        self.current
    }

    pub fn target(&self) -> Option<u8> {
        self.target
    }

    /// Sets the layer the allocator chose. Returns true when this asks for a keyframe on the
    /// new target (a switch is now pending).
    pub fn set_target(&mut self, target: Option<u8>) -> bool {
        self.target = target;
        if target.is_none() {
            // Stop right away: nothing to wait for.
            self.current = None;
        }
        self.needs_keyframe()
    }

    /// A switch is pending: the target layer differs from what is sent now.
    pub fn needs_keyframe(&self) -> bool {
        self.target.is_some() && self.target != self.current
    }

    /// Decides for a packet of `layer`. Switches happen only at the start of a keyframe of
    /// the target layer, so the decoder never sees a layer it has no reference frame for.
    pub fn on_packet(&mut self, layer: u8, starts_keyframe: bool) -> Verdict {
        if self.target == Some(layer) && self.current != Some(layer) && starts_keyframe {
            self.current = Some(layer);
            return Verdict::SwitchTo(layer);
        }
        if self.current == Some(layer) {
            Verdict::Forward
        } else {
            Verdict::Drop
        }
    }
}

/// Bits per second of one layer, over a sliding one-second window in two halves (cheap,
/// allocation-free, good enough for layer allocation).
#[derive(Debug, Default, Clone, Copy)]
pub struct RateMeter {
    window_start: Option<Instant>,
    bytes_current: u64,
    bytes_previous: u64,
    last_packet: Option<Instant>,
    /// Start of the current run of packets (no idle gap since).
    active_since: Option<Instant>,
}

/// Half of the rate window.
const RATE_HALF_WINDOW: Duration = Duration::from_millis(500);
/// A layer with no packet for this long counts as not sent (publishers drop layers when
/// their uplink shrinks; Chrome stops a layer within a frame interval or two).
pub const LAYER_IDLE: Duration = Duration::from_millis(1500);

impl RateMeter {
    pub fn on_packet(&mut self, now: Instant, bytes: usize) {
        self.roll(now);
        self.bytes_current += bytes as u64;
        if self
            .last_packet
            .is_none_or(|l| now.saturating_duration_since(l) > LAYER_IDLE)
        {
            self.active_since = Some(now);
        }
        self.last_packet = Some(now);
    }

    fn roll(&mut self, now: Instant) {
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= RATE_HALF_WINDOW * 2 {
            self.bytes_previous = 0;
            self.bytes_current = 0;
            self.window_start = Some(now);
        } else if elapsed >= RATE_HALF_WINDOW {
            self.bytes_previous = self.bytes_current;
            self.bytes_current = 0;
            self.window_start = Some(start + RATE_HALF_WINDOW);
        }
    }

    /// The layer has been sent for a whole window: its rate is a measurement, not a guess.
    pub fn settled(&self, now: Instant) -> bool {
        self.bitrate(now).is_some()
            && self
                .active_since
                .is_some_and(|t| now.saturating_duration_since(t) >= RATE_HALF_WINDOW * 2)
    }

    /// The rate, or `None` when the layer is idle.
    pub fn bitrate(&self, now: Instant) -> Option<u64> {
        let last = self.last_packet?;
        if now.saturating_duration_since(last) > LAYER_IDLE {
            return None;
        }
        // Bytes over the time they were counted in: up to the last second, never before the
        // layer started (so a young layer is not underrated), at least 100 ms (so one packet
        // is not a burst). An active layer reports at least 1 bit/s.
        let start = self.window_start?;
        let into = now.saturating_duration_since(start);
        let (bytes, span) = if into >= RATE_HALF_WINDOW * 2 {
            (0, RATE_HALF_WINDOW * 2)
        } else if into >= RATE_HALF_WINDOW {
            (self.bytes_current, into)
        } else {
            (
                self.bytes_current + self.bytes_previous,
                into + RATE_HALF_WINDOW,
            )
        };
        let lived = self
            .active_since
            .map_or(span, |t| now.saturating_duration_since(t));
        let span = span.min(lived).max(Duration::from_millis(100));
        Some((bytes * 8 * 1_000_000 / span.as_micros().max(1) as u64).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn first_source_passes_through() {
        let now = t0();
        let mut r = Rewriter::default();
        let a = r.rewrite(true, 100, 9000, now, 90_000).unwrap();
        let b = r.rewrite(false, 101, 9000, now, 90_000).unwrap();
        assert_eq!((a.seq, a.ts), (100, 9000));
        assert_eq!((b.seq, b.ts), (101, 9000));
    }

    #[test]
    fn switch_continues_sequence_without_gap() {
        let now = t0();
        let mut r = Rewriter::default();
        for s in 0..10u64 {
            r.rewrite(s == 0, 1000 + s, 3000 * s as u32, now, 90_000);
        }
        // Layer switch: the new source numbers its packets 50_000.., timestamps 777_000..
        let later = now + Duration::from_millis(33);
        let first = r.rewrite(true, 50_000, 777_000, later, 90_000).unwrap();
        let second = r.rewrite(false, 50_001, 777_000, later, 90_000).unwrap();
        assert_eq!(first.seq, 1010);
        assert_eq!(second.seq, 1011);
        // 33 ms at 90 kHz after the last timestamp sent (27_000).
        assert_eq!(first.ts, 27_000 + 2970);
        assert_eq!(second.ts, first.ts);
        // A straggler of the new source from before the switch point is dropped.
        assert_eq!(r.rewrite(false, 49_999, 776_000, later, 90_000), None);
    }

    #[test]
    fn skipped_packets_leave_no_gap() {
        let mut r = Rewriter::default();
        let t = t0();
        let seqs: Vec<u64> = [100u64, 101, 102, 103, 104, 105]
            .into_iter()
            .filter_map(|seq| {
                if seq == 101 || seq == 103 {
                    r.skip(seq);
                    return None;
                }
                r.rewrite(false, seq, seq as u32 * 3000, t, 90_000)
                    .map(|o| o.seq)
            })
            .collect();
        assert_eq!(seqs, vec![100, 101, 102, 103]);
        // A packet from before the last skip, arriving late, would reuse a number: dropped.
        assert_eq!(r.rewrite(false, 102, 0, t, 90_000), None);
        // A late skipped packet changes nothing.
        r.skip(99);
        assert_eq!(
            r.rewrite(false, 106, 0, t, 90_000).map(|o| o.seq),
            Some(104)
        );
    }

    #[test]
    fn reordering_within_a_source_is_kept() {
        let now = t0();
        let mut r = Rewriter::default();
        r.rewrite(true, 10, 0, now, 48_000);
        let late = r.rewrite(false, 12, 960, now, 48_000).unwrap();
        let early = r.rewrite(false, 11, 480, now, 48_000).unwrap();
        assert_eq!((late.seq, early.seq), (12, 11));
        // The next switch continues after the highest sent, not the last sent.
        let s = r.rewrite(true, 500, 0, now, 48_000).unwrap();
        assert_eq!(s.seq, 13);
    }

    #[test]
    fn timestamp_rewrite_wraps() {
        let now = t0();
        let mut r = Rewriter::default();
        r.rewrite(true, 1, u32::MAX - 10, now, 90_000);
        let s = r
            .rewrite(true, 7, 5, now + Duration::from_millis(1), 90_000)
            .unwrap();
        assert_eq!(s.ts, (u32::MAX - 10).wrapping_add(90));
    }

    fn sim(low: u64, mid: u64, high: u64) -> Demand {
        Demand {
            layers: [Some(low), Some(mid), Some(high)],
            max_layer: 2,
            paused: false,
            current: None,
        }
    }

    #[test]
    fn reprobe_backs_off_while_limited_and_rearms_when_not() {
        let t = t0();
        let mut r = Reprobe::default();
        assert!(!r.on_allocation(t, true));
        assert!(!r.on_allocation(t + REPROBE_FIRST - Duration::from_millis(1), true));
        assert!(r.on_allocation(t + REPROBE_FIRST, true));
        // Next one after twice the wait.
        let t1 = t + REPROBE_FIRST;
        assert!(!r.on_allocation(t1 + REPROBE_FIRST, true));
        assert!(r.on_allocation(t1 + REPROBE_FIRST * 2, true));
        // Unlimited: back to the first wait.
        assert!(!r.on_allocation(t1 + REPROBE_FIRST * 3, false));
        let t2 = t1 + REPROBE_FIRST * 4;
        assert!(!r.on_allocation(t2, true));
        assert!(r.on_allocation(t2 + REPROBE_FIRST, true));
    }

    #[test]
    fn allocation_holds_the_current_layer_until_clearly_short() {
        let mut d = [sim(150_000, 500_000, 1_500_000)];
        // Not enough to move up to the top layer...
        assert_eq!(allocate(1_400_000, &d), vec![Some(1)]);
        // ...but enough to stay on it.
        d[0].current = Some(2);
        assert_eq!(allocate(1_400_000, &d), vec![Some(2)]);
        // Clearly short: down.
        assert_eq!(allocate(1_100_000, &d), vec![Some(1)]);
    }

    #[test]
    fn allocation_follows_the_estimate() {
        let d = [sim(150_000, 500_000, 1_500_000)];
        assert_eq!(allocate(5_000_000, &d), vec![Some(2)]);
        assert_eq!(allocate(1_000_000, &d), vec![Some(1)]);
        assert_eq!(allocate(200_000, &d), vec![Some(0)]);
        assert_eq!(allocate(100_000, &d), vec![None]);
    }

    #[test]
    fn allocation_gives_everyone_low_before_anyone_high() {
        let d = [sim(150_000, 500_000, 1_500_000); 3];
        // 3 × low = 450k, then upgrades round-robin: 2 of 3 fit a step to mid (+350k each).
        assert_eq!(allocate(1_200_000, &d), vec![Some(1), Some(1), Some(0)],);
    }

    #[test]
    fn allocation_respects_requests_pauses_and_missing_layers() {
        let mut d = [sim(150_000, 500_000, 1_500_000); 3];
        d[0].max_layer = 0;
        d[1].paused = true;
        d[2].layers[2] = None;
        assert_eq!(allocate(10_000_000, &d), vec![Some(0), None, Some(1)]);
        // A single-layer track is always forwarded, even over budget.
        let single = Demand {
            layers: [Some(800_000), None, None],
            max_layer: 2,
            paused: false,
            current: None,
        };
        assert_eq!(allocate(10, &[single]), vec![Some(0)]);
    }

    #[test]
    fn switching_waits_for_a_keyframe_of_the_target() {
        let mut s = LayerSwitch::default();
        assert!(s.set_target(Some(2)));
        assert_eq!(s.on_packet(2, false), Verdict::Drop);
        assert_eq!(s.on_packet(2, true), Verdict::SwitchTo(2));
        assert_eq!(s.on_packet(2, false), Verdict::Forward);
        assert!(!s.needs_keyframe());
        // Downgrade: keep sending layer 2 until layer 0 shows a keyframe.
        assert!(s.set_target(Some(0)));
        assert_eq!(s.on_packet(2, false), Verdict::Forward);
        assert_eq!(s.on_packet(0, false), Verdict::Drop);
        assert_eq!(s.on_packet(0, true), Verdict::SwitchTo(0));
        assert_eq!(s.on_packet(2, false), Verdict::Drop);
        // Pause stops at once.
        assert!(!s.set_target(None));
        assert_eq!(s.on_packet(0, false), Verdict::Drop);
    }

    #[test]
    fn rate_meter_measures_and_goes_idle() {
        let now = t0();
        let mut m = RateMeter::default();
        for i in 0..100u64 {
            m.on_packet(now + Duration::from_millis(10 * i), 1000);
        }
        let at = now + Duration::from_millis(990);
        // One second of 1000-byte packets every 10 ms: 800 kbit/s (counted over the 990 ms
        // since the first packet, so a hair above).
        let rate = m.bitrate(at).unwrap();
        assert!((800_000..=810_000).contains(&rate), "{rate}");
        // A layer that started 200 ms ago at the same pace is not underrated.
        let mut young = RateMeter::default();
        for i in 0..20u64 {
            young.on_packet(now + Duration::from_millis(10 * i), 1000);
        }
        let rate = young.bitrate(now + Duration::from_millis(190)).unwrap();
        assert!((800_000..=850_000).contains(&rate), "{rate}");
        assert!(!young.settled(now + Duration::from_millis(190)));
        assert!(m.settled(now + Duration::from_millis(1000)));
        assert_eq!(m.bitrate(at + LAYER_IDLE + Duration::from_millis(1)), None);
    }
}
