//! Keyframe requests towards a publisher, rate-limited per layer: many subscribers switching
//! at once, or a burst of PLIs from one browser, cost the publisher one keyframe, not dozens.

use std::time::{Duration, Instant};

use super::forward::MAX_LAYERS;

/// Minimum spacing of keyframe requests for one layer. A keyframe takes a round trip plus an
/// encode to arrive (~100–300 ms); asking again sooner only multiplies expensive frames.
/// Janus's `fir_freq` and mediasoup's keyframe request delay live in this range.
pub const KEYFRAME_MIN_INTERVAL: Duration = Duration::from_millis(500);

/// Per-track limiter: one slot per simulcast layer.
#[derive(Debug, Default)]
pub struct KeyframeLimiter {
    last_sent: [Option<Instant>; MAX_LAYERS],
    pending: [bool; MAX_LAYERS],
}

impl KeyframeLimiter {
    /// Someone needs a keyframe on `layer`: returns true when the request should go out now.
    /// A refused request stays pending and goes out on a later [`Self::poll_due`].
    pub fn request(&mut self, layer: u8, now: Instant) -> bool {
        let i = (layer as usize).min(MAX_LAYERS - 1);
        let due = self.last_sent[i]
            .map(|t| now.saturating_duration_since(t) >= KEYFRAME_MIN_INTERVAL)
            .unwrap_or(true);
        if due {
            self.last_sent[i] = Some(now);
            self.pending[i] = false;
        } else {
            self.pending[i] = true;
        }
        due
    }

    /// A keyframe arrived on `layer`: whatever was pending there is satisfied.
    pub fn on_keyframe(&mut self, layer: u8) {
        let i = (layer as usize).min(MAX_LAYERS - 1);
        self.pending[i] = false;
    }

    /// Layers whose postponed request may go out now (marks them sent).
    pub fn poll_due(&mut self, now: Instant) -> impl Iterator<Item = u8> + '_ {
        (0..MAX_LAYERS).filter_map(move |i| {
            if !self.pending[i] {
                return None;
            }
            let due = self.last_sent[i]
                .map(|t| now.saturating_duration_since(t) >= KEYFRAME_MIN_INTERVAL)
                .unwrap_or(true);
            due.then(|| {
                self.pending[i] = false;
                self.last_sent[i] = Some(now);
                i as u8
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_collapse_into_one_request_per_interval() {
        let t = Instant::now();
        let mut k = KeyframeLimiter::default();
        assert!(k.request(1, t));
        assert!(!k.request(1, t + Duration::from_millis(10)));
        assert!(!k.request(1, t + Duration::from_millis(20)));
        // Another layer is independent.
        assert!(k.request(0, t + Duration::from_millis(20)));
        // The postponed one goes out once the interval passed, exactly once.
        assert_eq!(k.poll_due(t + Duration::from_millis(499)).count(), 0);
        let due: Vec<_> = k.poll_due(t + KEYFRAME_MIN_INTERVAL).collect();
        assert_eq!(due, vec![1]);
        assert_eq!(k.poll_due(t + Duration::from_secs(5)).count(), 0);
    }

    #[test]
    fn a_keyframe_satisfies_a_pending_request() {
        let t = Instant::now();
        let mut k = KeyframeLimiter::default();
        assert!(k.request(2, t));
        assert!(!k.request(2, t + Duration::from_millis(100)));
        k.on_keyframe(2);
        assert_eq!(k.poll_due(t + Duration::from_secs(1)).count(), 0);
    }
}
