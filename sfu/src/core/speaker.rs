//! Active-speaker detection from the RFC 6464 audio-level header extension.
//!
//! Levels are in -dBov (0 loudest, 127 silence). Like Janus's videoroom (`audio_level_average`,
//! `audio_active_packets`) we average levels over a window, with two thresholds for hysteresis
//! so a speaker does not flap between `talking` and `stopped-talking` on every breath.

use std::time::{Duration, Instant};

/// Averaging window: about 50 Opus packets (20 ms each).
pub const SPEAKER_WINDOW: Duration = Duration::from_secs(1);
/// Start talking when the window's average level is this loud or louder (Janus's default
/// `audio_level_average` is 25).
pub const TALK_START_DBOV: u8 = 25;
/// Stop when the average is quieter than this (10 dB of hysteresis).
pub const TALK_STOP_DBOV: u8 = 35;

/// A change of speaking state, with the window's average level (dBov).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeakerChange {
    Talking(u8),
    Stopped(u8),
}

#[derive(Debug, Default)]
pub struct SpeakerDetector {
    window_start: Option<Instant>,
    sum: u64,
    count: u64,
    talking: bool,
}

impl SpeakerDetector {
    pub fn talking(&self) -> bool {
        self.talking
    }

    /// One audio packet's level. Returns a change when a window closed and the state flipped.
    pub fn on_level(&mut self, now: Instant, level_dbov: u8) -> Option<SpeakerChange> {
        let change = self.handle_timeout(now);
        self.window_start.get_or_insert(now);
        self.sum += level_dbov.min(127) as u64;
        self.count += 1;
        change
    }

    /// When the current window closes (call [`Self::handle_timeout`] then).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.window_start.map(|s| s + SPEAKER_WINDOW)
    }

    /// Closes the window if it is due. A window without packets (Opus DTX sends none in
    /// silence) counts as silence.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<SpeakerChange> {
        let start = self.window_start?;
        if now.saturating_duration_since(start) < SPEAKER_WINDOW {
            return None;
        }
        let avg = self.sum.checked_div(self.count).unwrap_or(127) as u8;
        self.sum = 0;
        self.count = 0;
        // An empty window ends the timer; the next packet starts a new one.
        self.window_start = (avg < 127).then_some(now);
        match (self.talking, avg) {
            (false, a) if a <= TALK_START_DBOV => {
                self.talking = true;
                Some(SpeakerChange::Talking(a))
            }
            (true, a) if a > TALK_STOP_DBOV => {
                self.talking = false;
                Some(SpeakerChange::Stopped(a))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds 20 ms packets of `level` for `ms`, returning the changes seen.
    fn feed(d: &mut SpeakerDetector, t: &mut Instant, level: u8, ms: u64) -> Vec<SpeakerChange> {
        let mut out = Vec::new();
        for _ in 0..ms / 20 {
            out.extend(d.on_level(*t, level));
            *t += Duration::from_millis(20);
        }
        out
    }

    #[test]
    fn loud_window_starts_and_quiet_window_stops() {
        let mut t = Instant::now();
        let mut d = SpeakerDetector::default();
        // Packets at 0, 20, .., 1020 ms: the window [0, 1000) closes at the packet at 1000.
        assert_eq!(feed(&mut d, &mut t, 20, 980), vec![]);
        assert_eq!(
            feed(&mut d, &mut t, 20, 60),
            vec![SpeakerChange::Talking(20)]
        );
        assert!(d.talking());
        // The window [1000, 2000) holds 2 packets at 20 and 48 at 60 dBov: average 58.
        assert_eq!(
            feed(&mut d, &mut t, 60, 1040),
            vec![SpeakerChange::Stopped(58)]
        );
        assert!(!d.talking());
    }

    #[test]
    fn levels_between_thresholds_do_not_flap() {
        let mut t = Instant::now();
        let mut d = SpeakerDetector::default();
        feed(&mut d, &mut t, 10, 1100);
        assert!(d.talking());
        // 30 dBov: too quiet to start, too loud to stop; state holds either way.
        assert_eq!(feed(&mut d, &mut t, 30, 5000), vec![]);
        assert!(d.talking());
        let mut quiet = SpeakerDetector::default();
        assert_eq!(feed(&mut quiet, &mut t, 30, 5000), vec![]);
        assert!(!quiet.talking());
    }

    #[test]
    fn silence_without_packets_stops_talking() {
        let mut t = Instant::now();
        let mut d = SpeakerDetector::default();
        feed(&mut d, &mut t, 5, 1100);
        assert!(d.talking());
        let due = d.poll_timeout().unwrap();
        // The window with one packet closes (still loud), then the empty one counts as silence.
        assert_eq!(d.handle_timeout(due), None);
        let next = d.poll_timeout().unwrap();
        assert_eq!(d.handle_timeout(next), Some(SpeakerChange::Stopped(127)));
        assert_eq!(d.poll_timeout(), None);
    }
}
