//! flowgate's response cache.
//!
//! A request is turned into a [`CacheKey`] (exhaustive, canonical: [`key`], [`openai`]);
//! [`policy`] decides whether it may be served from the cache and stored; [`Cache`] looks it
//! up in its tiers and, on a miss, makes concurrent misses of the same key wait for one
//! upstream request ([`flight`]). The crate knows nothing of HTTP or routes: the gateway
//! maps requests and responses to and from [`CachedResponse`].
//!
//! Built so far: the memory tier (L1). The Redis (L2) and disk (L3) tiers, stale-while-
//! revalidate, compression, invalidation and warming are to come (issue 3).

pub mod entry;
pub mod fanout;
pub mod flight;
pub mod key;
pub mod memory;
pub mod openai;
pub mod policy;
mod stats;
pub mod stream;

use std::sync::Arc;
use std::time::Duration;

use flowgate_clock::SharedClock;

pub use entry::{CachedResponse, Entry, Usage};
pub use fanout::{Share, StreamCut, Subscription};
pub use flight::{Follower, Join, Leader, Waited};
pub use key::{CacheKey, KeyBuilder};
pub use policy::{BypassReason, Decision, Directives, Mode};
pub use stats::{CacheStats, StatsSnapshot};

use flight::Flights;
use memory::MemoryTier;

/// Cache-wide settings (fixed for the life of the cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// Bytes of responses the memory tier holds.
    pub memory_bytes: u64,
    /// Largest response stored.
    pub max_entry_bytes: u64,
    /// How long a miss waits for a concurrent identical one before going upstream itself.
    pub coalesce_wait: Duration,
}

/// Which tier answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Memory,
}

/// The answer of [`Cache::lookup`].
#[derive(Debug)]
pub enum Lookup {
    /// A fresh entry, `age` old.
    Hit {
        entry: Arc<Entry>,
        tier: Tier,
        age: Duration,
    },
    /// Nobody is fetching this key: go upstream, then [`Cache::fill`] with the `Leader`.
    Miss(Leader),
    /// An identical request is upstream: wait for it ([`Follower::wait`]).
    Coalesced(Follower),
}

/// The tiered read-through cache.
#[derive(Debug)]
pub struct Cache {
    settings: CacheSettings,
    memory: MemoryTier,
    flights: Flights,
    clock: SharedClock,
    stats: CacheStats,
}

impl Cache {
    pub fn new(settings: CacheSettings, clock: SharedClock) -> Self {
        Cache {
            memory: MemoryTier::new(settings.memory_bytes),
            settings,
            flights: Flights::default(),
            clock,
            stats: CacheStats::default(),
        }
    }

    pub fn settings(&self) -> &CacheSettings {
        &self.settings
    }

    /// Looks `key` up. `read: false` (the client sent `no-cache`) skips the tiers but still
    /// joins the flight, so that a stampede of `no-cache` requests still goes upstream once.
    /// `max_age` refuses entries older than that.
    pub fn lookup(&self, key: &CacheKey, read: bool, max_age: Option<Duration>) -> Lookup {
        if read && let Some(entry) = self.memory.get(key) {
            let age = entry.age(self.clock.now());
            if age < entry.ttl && max_age.is_none_or(|m| age <= m) {
                self.stats.hit(Tier::Memory, entry.response.usage);
                return Lookup::Hit {
                    entry,
                    tier: Tier::Memory,
                    age,
                };
            }
        }
        match self.flights.join(key) {
            Join::Leader(l) => {
                self.stats.miss();
                Lookup::Miss(l)
            }
            Join::Follower(f) => {
                self.stats.coalesced();
                Lookup::Coalesced(f)
            }
        }
    }

    /// Stores the leader's response for `ttl` and hands it to the requests that waited.
    /// Responses over `max_entry_bytes` are not stored (the waiters go upstream).
    pub fn fill(&self, leader: Leader, response: CachedResponse, ttl: Duration) -> bool {
        if response.body.len() as u64 > self.settings.max_entry_bytes || ttl.is_zero() {
            self.stats.not_stored();
            return false;
        }
        let now = self.clock.now();
        let entry = Arc::new(Entry {
            response,
            stored_at: now,
            ttl,
        });
        self.memory.insert(leader.key().clone(), entry.clone(), now);
        self.stats.stored();
        leader.publish(entry);
        true
    }

    /// Counts a request the cache was not asked about.
    pub fn count_bypass(&self) {
        self.stats.bypass();
    }

    /// Removes one entry from every tier.
    pub fn invalidate(&self, key: &CacheKey) {
        self.memory.remove(key);
    }

    /// Empties every tier.
    pub fn clear(&self) {
        self.memory.clear();
    }

    /// Counters and sizes.
    pub fn stats(&self) -> StatsSnapshot {
        let (entries, bytes) = self.memory.usage();
        self.stats.snapshot(entries, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use flowgate_clock::ManualClock;

    fn settings() -> CacheSettings {
        CacheSettings {
            memory_bytes: 1 << 20,
            max_entry_bytes: 1 << 16,
            coalesce_wait: Duration::from_secs(5),
        }
    }

    fn key(n: u8) -> CacheKey {
        let mut k = KeyBuilder::new("t");
        k.field("n", &[n]);
        k.finish("ns".into())
    }

    fn response(body: &'static str) -> CachedResponse {
        CachedResponse {
            status: 200,
            headers: vec![(
                "content-type".into(),
                Bytes::from_static(b"application/json"),
            )],
            body: Bytes::from_static(body.as_bytes()),
            usage: Usage {
                prompt_tokens: 10,
                completion_tokens: 5,
            },
        }
    }

    fn lead(c: &Cache, k: &CacheKey) -> Leader {
        match c.lookup(k, true, None) {
            Lookup::Miss(l) => l,
            other => panic!("expected a miss, got {other:?}"),
        }
    }

    #[test]
    fn entries_are_fresh_for_their_ttl_on_the_gateway_clock() {
        let clock = ManualClock::at_epoch_2026();
        let c = Cache::new(settings(), clock.shared());
        let l = lead(&c, &key(1));
        assert!(c.fill(l, response("{\"a\":1}"), Duration::from_secs(60)));
        clock.advance(Duration::from_secs(59));
        match c.lookup(&key(1), true, None) {
            Lookup::Hit { entry, tier, age } => {
                assert_eq!(tier, Tier::Memory);
                assert_eq!(age, Duration::from_secs(59));
                assert_eq!(entry.age(clock.shared().now()), age);
            }
            other => panic!("{other:?}"),
        }
        clock.advance(Duration::from_secs(1));
        let _expired = lead(&c, &key(1));
        let s = c.stats();
        assert_eq!((s.hits_memory, s.misses, s.stored), (1, 2, 1));
        assert_eq!(s.tokens_saved, 15);
    }

    #[test]
    fn max_age_and_no_cache_skip_older_entries() {
        let clock = ManualClock::at_epoch_2026();
        let c = Cache::new(settings(), clock.shared());
        let l = lead(&c, &key(2));
        c.fill(l, response("{}"), Duration::from_secs(600));
        clock.advance(Duration::from_secs(120));
        assert!(matches!(
            c.lookup(&key(2), true, Some(Duration::from_secs(60))),
            Lookup::Miss(_)
        ));
        assert!(matches!(c.lookup(&key(2), false, None), Lookup::Miss(_)));
        assert!(matches!(
            c.lookup(&key(2), true, Some(Duration::from_secs(300))),
            Lookup::Hit { .. }
        ));
    }

    #[test]
    fn oversized_responses_are_not_stored_and_invalidation_removes() {
        let c = Cache::new(
            CacheSettings {
                max_entry_bytes: 4,
                ..settings()
            },
            ManualClock::at_epoch_2026().shared(),
        );
        let l = lead(&c, &key(3));
        assert!(!c.fill(l, response("{\"long\":1}"), Duration::from_secs(60)));
        let l = lead(&c, &key(3));
        assert!(c.fill(l, response("{}"), Duration::from_secs(60)));
        assert!(matches!(c.lookup(&key(3), true, None), Lookup::Hit { .. }));
        c.invalidate(&key(3));
        assert!(matches!(c.lookup(&key(3), true, None), Lookup::Miss(_)));
    }

    #[test]
    fn memory_is_bounded_by_bytes() {
        let c = Cache::new(
            CacheSettings {
                memory_bytes: 64 * 1024,
                ..settings()
            },
            ManualClock::at_epoch_2026().shared(),
        );
        static BODY: [u8; 1000] = [b'x'; 1000];
        for i in 0..=255u8 {
            let l = lead(&c, &key(i));
            let mut r = response("");
            r.body = Bytes::from_static(&BODY);
            c.fill(l, r, Duration::from_secs(60));
        }
        let s = c.stats();
        assert!(s.bytes <= 64 * 1024, "{s:?}");
        assert!(s.entries < 256 && s.entries > 10, "{s:?}");
    }
}
