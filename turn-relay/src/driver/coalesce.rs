//! Receive coalescing: NIC interrupt moderation, done by the shard thread itself.
//!
//! A relay that wakes for every few datagrams pays a wake-up, an `epoll_wait`, a
//! `recvmmsg` per ready socket and a send per destination for each handful of packets;
//! most of its CPU goes to those fixed costs and to waking its receivers once per packet.
//! So when a wake handled datagrams (traffic is flowing), the shard does not go back to
//! the kernel until `window` has passed since it woke: what arrived meanwhile is read,
//! relayed and sent in larger batches. A quiet shard (nothing handled) and a saturated
//! one (the batch took longer than `window`) never wait; a datagram waits at most
//! `window` (plus the kernel's timer slack) in the socket buffer.
//!
//! The waits happen in the runtime's park hook, so they apply to the whole shard: its
//! listener, its relayed sockets and its TCP/TLS clients.

use std::cell::Cell;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;

thread_local! {
    /// When this shard's runtime last woke, and what it has handled since.
    static WAKE: Cell<Wake> = Cell::new(Wake { at: Instant::now(), handled: 0 });
}

#[derive(Clone, Copy)]
struct Wake {
    at: Instant,
    handled: u64,
}

/// Records `n` datagrams (or stream frames) handled by the current shard since it woke.
pub(crate) fn handled(n: usize) {
    WAKE.with(|w| {
        let mut wake = w.get();
        wake.handled += n as u64;
        w.set(wake);
    });
}

/// How long to wait before parking: the rest of `window` after `woke`, if that wake
/// handled anything and the window has not already passed.
pub(crate) fn wait(
    window: Duration,
    woke: Instant,
    handled: u64,
    now: Instant,
) -> Option<Duration> {
    if handled == 0 {
        return None;
    }
    let until = woke + window;
    (until > now).then(|| until - now)
}

/// The runtime hooks of one shard thread: `(on_thread_park, on_thread_unpark)`. A zero
/// `window` turns coalescing off.
pub(crate) fn hooks(
    window: Duration,
    waits: Counter,
) -> (
    impl Fn() + Send + Sync + 'static,
    impl Fn() + Send + Sync + 'static,
) {
    let park = move || on_park(window, &waits, Instant::now(), std::thread::sleep);
    let unpark = || on_unpark(Instant::now());
    (park, unpark)
}

/// About to park: waits out the window (through `sleep`) if this wake handled anything.
fn on_park(window: Duration, waits: &Counter, now: Instant, sleep: impl FnOnce(Duration)) {
    let wake = WAKE.with(Cell::get);
    if let Some(pause) = wait(window, wake.at, wake.handled, now) {
        waits.inc();
        sleep(pause);
    }
}

/// Woke: a new wake starts, with nothing handled yet.
fn on_unpark(now: Instant) {
    WAKE.with(|w| {
        w.set(Wake {
            at: now,
            handled: 0,
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_micros(100);

    #[test]
    fn a_busy_wake_waits_out_the_rest_of_the_window() {
        let woke = Instant::now();
        let now = woke + Duration::from_micros(30);
        assert_eq!(wait(WINDOW, woke, 5, now), Some(Duration::from_micros(70)));
    }

    #[test]
    fn a_quiet_wake_parks_at_once() {
        let woke = Instant::now();
        assert_eq!(wait(WINDOW, woke, 0, woke), None);
    }

    #[test]
    fn a_batch_longer_than_the_window_parks_at_once() {
        let woke = Instant::now();
        assert_eq!(wait(WINDOW, woke, 64, woke + WINDOW), None);
        assert_eq!(wait(WINDOW, woke, 64, woke + 2 * WINDOW), None);
    }

    #[test]
    fn a_zero_window_never_waits() {
        let woke = Instant::now();
        assert_eq!(wait(Duration::ZERO, woke, 64, woke), None);
    }

    #[test]
    fn each_wake_counts_its_own_datagrams() {
        let waits = Counter::default();
        let mut slept = Vec::new();
        let woke = Instant::now();
        on_unpark(woke);
        on_park(WINDOW, &waits, woke, |d| slept.push(d));
        assert!(slept.is_empty(), "nothing handled: no wait");
        on_unpark(woke);
        handled(2);
        handled(1);
        on_park(WINDOW, &waits, woke + Duration::from_micros(40), |d| {
            slept.push(d)
        });
        assert_eq!(
            slept,
            [Duration::from_micros(60)],
            "datagrams handled: the rest of the window"
        );
        on_unpark(woke + WINDOW);
        on_park(WINDOW, &waits, woke + WINDOW, |d| slept.push(d));
        assert_eq!(slept.len(), 1, "a new wake starts from zero");
        assert_eq!(waits.get(), 1);
    }
}
