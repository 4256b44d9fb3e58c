//! Values read from the store, kept in process for a short TTL so most requests skip a
//! store query: resolved `QB-Token`s (every request) and applications (session creation).
//!
//! Every change this process makes to a cached value drops its entry before answering, so
//! this process never serves a value it changed. A change made by another process sharing
//! the store (a second control-plane node on PostgreSQL, or `switchboard app delete`) is
//! seen within the TTL. Time is an input (`now`, from the control plane's clock).

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use time::OffsetDateTime;

struct Entry<V> {
    value: Arc<V>,
    /// Read from the store again at or after this.
    fresh_until: OffsetDateTime,
}

/// Sharded (dashmap, std SipHash: tokens come from clients), so concurrent requests do
/// not contend on one lock. Bounded: when full it starts over rather than tracking
/// recency per read.
pub(crate) struct TtlCache<K, V> {
    entries: DashMap<K, Entry<V>>,
    /// How long an entry is served without the store; zero disables the cache.
    ttl: Duration,
    capacity: usize,
    /// Bumped by every invalidation: a lookup that read the store before one must not
    /// fill the cache with what it read (it may predate the change).
    epoch: AtomicU64,
}

impl<K: Eq + Hash, V> TtlCache<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: DashMap::new(),
            ttl,
            capacity,
            epoch: AtomicU64::new(0),
        }
    }

    /// The cached value, if it was read from the store less than the TTL before `now`.
    pub fn get<Q>(&self, key: &Q, now: OffsetDateTime) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entry = self.entries.get(key)?;
        (now < entry.fresh_until).then(|| entry.value.clone())
    }

    /// Taken before reading the store; hand it to [`TtlCache::fill`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Remembers a value read (or written) at `now`, unless an invalidation happened
    /// since `epoch`.
    pub fn fill(&self, epoch: u64, key: K, value: &Arc<V>, now: OffsetDateTime) {
        if self.ttl.is_zero() {
            return;
        }
        if self.entries.len() >= self.capacity {
            self.clear();
            return;
        }
        let entry = Entry {
            value: value.clone(),
            fresh_until: now + self.ttl,
        };
        // The epoch is compared under the shard's write lock: an invalidation bumps the
        // epoch before it takes that lock to remove, so either it finds this entry and
        // removes it, or this sees its bump and does not insert.
        let slot = self.entries.entry(key);
        if self.epoch() == epoch {
            slot.insert(entry);
        }
    }

    /// Forgets one key (its value was changed or deleted).
    pub fn forget<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries.remove(key);
    }

    /// Forgets every value `stale` picks (a scan: for rare changes such as deletions).
    pub fn forget_where(&self, stale: impl Fn(&V) -> bool) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries.retain(|_, e| !stale(&e.value));
    }

    /// Drops entries no longer fresh at `now`.
    pub fn sweep(&self, now: OffsetDateTime) {
        self.entries.retain(|_, e| now < e.fresh_until);
    }

    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> OffsetDateTime {
        time::macros::datetime!(2026-11-25 12:00:00 UTC)
    }

    const TTL: Duration = Duration::from_secs(5);

    fn cache(ttl: Duration, capacity: usize) -> TtlCache<String, (u8, u8)> {
        TtlCache::new(ttl, capacity)
    }

    fn fill(c: &TtlCache<String, (u8, u8)>, key: &str, value: (u8, u8), now: OffsetDateTime) {
        c.fill(c.epoch(), key.to_string(), &Arc::new(value), now);
    }

    #[test]
    fn an_entry_is_served_for_the_ttl_then_read_again() {
        let c = cache(TTL, 10);
        fill(&c, "t", (1, 1), start());
        assert_eq!(c.get("t", start()).as_deref(), Some(&(1, 1)));
        assert!(c.get("t", start() + Duration::from_millis(4999)).is_some());
        assert!(c.get("t", start() + TTL).is_none());
        assert!(c.get("other", start()).is_none());
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let c = cache(Duration::ZERO, 10);
        fill(&c, "t", (1, 1), start());
        assert!(c.get("t", start()).is_none());
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_cached() {
        let c = cache(TTL, 10);
        let before = c.epoch();
        c.forget("t");
        c.fill(before, "t".into(), &Arc::new((1, 1)), start());
        assert!(c.get("t", start()).is_none());
    }

    #[test]
    fn forget_where_drops_only_what_it_picks() {
        let c = cache(TTL, 10);
        fill(&c, "a1", (1, 10), start());
        fill(&c, "a2", (1, 11), start());
        fill(&c, "b1", (2, 10), start());
        c.forget_where(|v| *v == (1, 10));
        assert!(c.get("a1", start()).is_none());
        assert!(c.get("a2", start()).is_some());
        assert!(c.get("b1", start()).is_some());
        c.forget_where(|v| v.0 == 1);
        assert!(c.get("a2", start()).is_none());
        assert!(c.get("b1", start()).is_some());
    }

    #[test]
    fn a_full_cache_starts_over_and_sweeps_drop_stale_entries() {
        let c = cache(TTL, 2);
        fill(&c, "a", (1, 1), start());
        fill(&c, "b", (1, 2), start() + TTL / 2);
        assert_eq!(c.len(), 2);
        fill(&c, "c", (1, 3), start());
        assert_eq!(c.len(), 0);

        fill(&c, "a", (1, 1), start());
        fill(&c, "b", (1, 2), start() + TTL / 2);
        c.sweep(start() + TTL);
        assert!(c.get("a", start()).is_none());
        assert!(c.get("b", start() + TTL).is_some());
    }
}
