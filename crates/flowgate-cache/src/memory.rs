//! L1: the in-process tier, bounded by bytes.
//!
//! moka's cache admits with W-TinyLFU (Einziger et al., "TinyLFU: A Highly Efficient Cache
//! Admission Policy", 2017): a newcomer displaces a resident only if it is likely to be used
//! more, which keeps a Zipf-distributed prompt workload's head in memory better than LRU.
//! Entries are weighed by their size. Freshness is judged on the gateway's clock by the
//! caller; moka's own per-entry expiry only reclaims memory once an entry cannot be served.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::sync::Cache;

use crate::entry::Entry;
use crate::invalidate::Selector;
use crate::key::CacheKey;

/// The memory tier.
#[derive(Clone)]
pub struct MemoryTier {
    entries: Cache<CacheKey, Arc<Entry>>,
    /// Entries dropped to stay within the byte bound.
    evictions: Arc<AtomicU64>,
    /// A bound under the configured one, while memory is short (`u64::MAX`: none).
    cap: Arc<AtomicU64>,
}

impl std::fmt::Debug for MemoryTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTier")
            .field("entries", &self.entries.entry_count())
            .field("bytes", &self.entries.weighted_size())
            .finish()
    }
}

/// Reclaims an entry once it can no longer be served, even stale (an upper bound: a
/// promoted entry was already some time old).
struct Lifetime;

impl moka::Expiry<CacheKey, Arc<Entry>> for Lifetime {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Arc<Entry>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.life.total())
    }
}

impl MemoryTier {
    /// A tier holding at most `max_bytes` of responses.
    pub fn new(max_bytes: u64) -> Self {
        Self::with_policy(max_bytes, moka::policy::EvictionPolicy::tiny_lfu())
    }

    /// A tier with another admission and eviction policy: for comparisons (the
    /// `admission` example measures W-TinyLFU against LRU).
    pub fn with_policy(max_bytes: u64, policy: moka::policy::EvictionPolicy) -> Self {
        let evictions = Arc::new(AtomicU64::new(0));
        let evicted = evictions.clone();
        let entries = Cache::builder()
            .max_capacity(max_bytes)
            .eviction_policy(policy)
            .weigher(|_k: &CacheKey, v: &Arc<Entry>| {
                u32::try_from(v.response.weight()).unwrap_or(u32::MAX)
            })
            .expire_after(Lifetime)
            .eviction_listener(move |_k, _v, cause| {
                if cause == moka::notification::RemovalCause::Size {
                    evicted.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build();
        MemoryTier {
            entries,
            evictions,
            cap: Arc::new(AtomicU64::new(u64::MAX)),
        }
    }

    pub fn get(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        self.entries.get(key)
    }

    /// Stores `entry`, unless it can no longer be served at `now` or the tier is held
    /// under a lower bound ([`MemoryTier::cap`]) and full to it.
    pub fn insert(&self, key: CacheKey, entry: Arc<Entry>, now: Instant) {
        if entry.age(now) >= entry.life.total() {
            return;
        }
        let cap = self.cap.load(Ordering::Relaxed);
        if cap != u64::MAX && self.entries.weighted_size() + entry.response.weight() as u64 > cap {
            return;
        }
        self.entries.insert(key, entry);
    }

    /// Holds the tier under `bytes` (removing entries until it is), or with `None` lifts
    /// that bound; the entries removed. moka keeps no order of use that can be read, so
    /// the entries go in its iteration order; the most used come back first.
    pub fn cap(&self, bytes: Option<u64>) -> u64 {
        self.cap.store(bytes.unwrap_or(u64::MAX), Ordering::Relaxed);
        let Some(bytes) = bytes else {
            return 0;
        };
        self.entries.run_pending_tasks();
        let mut size = self.entries.weighted_size();
        let mut removed = 0;
        for (k, e) in self.entries.iter() {
            if size <= bytes {
                break;
            }
            if self.remove(&k) {
                size = size.saturating_sub(e.response.weight() as u64);
                removed += 1;
            }
        }
        self.entries.run_pending_tasks();
        removed
    }

    /// Removes `key`; whether it was held.
    pub fn remove(&self, key: &CacheKey) -> bool {
        self.entries.remove(key).is_some()
    }

    /// Removes the entries `sel` selects; how many. An exact key is looked up, any other
    /// selector walks the whole tier.
    pub fn remove_matching(&self, sel: &Selector) -> u64 {
        if let Selector::Key(name) = sel {
            return u64::from(CacheKey::parse(name).is_some_and(|k| self.remove(&k)));
        }
        let mut n = 0;
        for (k, e) in self.entries.iter() {
            if sel.matches(&k.to_string(), &e.labels.tags) && self.remove(&k) {
                n += 1;
            }
        }
        n
    }

    /// Entries and bytes held (after pending maintenance), and evictions so far.
    pub fn usage(&self) -> (u64, u64, u64) {
        self.entries.run_pending_tasks();
        (
            self.entries.entry_count(),
            self.entries.weighted_size(),
            self.evictions.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{CachedResponse, Labels, Lifetime, Usage};
    use crate::key::KeyBuilder;
    use bytes::Bytes;
    use flowgate_clock::Clock;

    #[test]
    fn the_byte_bound_evicts_and_counts_it() {
        let tier = MemoryTier::new(4096);
        let now = flowgate_clock::ManualClock::at_epoch_2026().now();
        for i in 0..64u32 {
            let mut k = KeyBuilder::new("t");
            k.field("i", &i.to_le_bytes());
            let response = CachedResponse {
                status: 200,
                headers: Vec::new(),
                body: Bytes::from(vec![b'x'; 512]),
                usage: Usage::default(),
            };
            let life = Lifetime::fresh_for(Duration::from_secs(60));
            let entry = Arc::new(Entry::new(response, now, life, Labels::default()));
            tier.insert(k.finish("ns".into()), entry, now);
        }
        let (entries, bytes, evictions) = tier.usage();
        assert!(bytes <= 4096, "{bytes}");
        assert!(entries < 64 && evictions > 0, "{entries} {evictions}");
        assert_eq!(entries + evictions, 64);
    }

    fn entry(now: Instant) -> Arc<Entry> {
        let response = CachedResponse {
            status: 200,
            headers: Vec::new(),
            body: Bytes::from(vec![b'x'; 1000]),
            usage: Usage::default(),
        };
        let life = Lifetime::fresh_for(Duration::from_secs(60));
        Arc::new(Entry::new(response, now, life, Labels::default()))
    }

    fn key(i: u32) -> CacheKey {
        let mut k = KeyBuilder::new("t");
        k.field("i", &i.to_le_bytes());
        k.finish("ns".into())
    }

    #[test]
    fn a_cap_shrinks_the_tier_and_holds_it_until_lifted() {
        let tier = MemoryTier::new(1 << 20);
        let now = flowgate_clock::ManualClock::at_epoch_2026().now();
        for i in 0..100 {
            tier.insert(key(i), entry(now), now);
        }
        let (_, full, _) = tier.usage();
        assert!(full > 90_000, "{full}");
        let removed = tier.cap(Some(full / 2));
        let (n, half, _) = tier.usage();
        assert!(half <= full / 2, "{half}");
        assert!(removed >= 45 && n + removed == 100, "{removed} {n}");
        // Held: nothing more goes in while it is at the cap.
        for i in 100..120 {
            tier.insert(key(i), entry(now), now);
        }
        assert!(tier.usage().1 <= full / 2);
        // Lifted: it fills again.
        assert_eq!(tier.cap(None), 0);
        for i in 100..120 {
            tier.insert(key(i), entry(now), now);
        }
        assert!(tier.usage().1 > half);
    }
}
