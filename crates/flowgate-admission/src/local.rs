//! Rate limits kept in this process: one GCRA timestamp per limited key.
//!
//! A limiter holds the counts of one limit; its keys are the bytes of the value the limit
//! counts by (a client address, a key's name, a header's value), looked up by reference:
//! a request of a key seen before allocates nothing. Keys are spread over shards, each a small map behind its own lock, held for one map
//! lookup and one comparison: requests of different keys rarely meet, and no lock is held
//! across an await. A key whose timestamp is in the past is the same as a key never seen,
//! so [`LocalLimiter::sweep`] can drop it at any time: the state is bounded by the keys
//! active within one burst's worth of time.

use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use flowgate_clock::SharedClock;
use hashbrown::HashTable;
use smallvec::SmallVec;

use crate::gcra::{Decision, Quota};

const SHARDS: usize = 16;

/// A key and its theoretical arrival time (ns since the limiter started). Keys up to 24
/// bytes (an IPv6 address, most names) sit in the table itself: a lookup compares them
/// without following a pointer.
type Slot = (SmallVec<[u8; 24]>, u64);

/// Per-key GCRA state of one limit.
#[derive(Debug)]
pub struct LocalLimiter {
    shards: Vec<Mutex<HashTable<Slot>>>,
    /// Keyed SipHash: keys are values clients choose (header values), so their place in the
    /// table must not be predictable. Hashed once per request, for the shard and the table.
    hasher: RandomState,
    clock: SharedClock,
    origin: Instant,
}

impl LocalLimiter {
    pub fn new(clock: SharedClock) -> Self {
        let origin = clock.now();
        LocalLimiter {
            shards: (0..SHARDS).map(|_| Mutex::new(HashTable::new())).collect(),
            hasher: RandomState::new(),
            clock,
            origin,
        }
    }

    /// Nanoseconds since the limiter started (1 at the start: 0 means "never seen").
    fn now(&self) -> u64 {
        let d = self.clock.now().saturating_duration_since(self.origin);
        u64::try_from(d.as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }

    /// Runs `f` on the timestamp of `key` (0 for a key not seen), in place; `f` returns
    /// the new timestamp, if any, and its answer. `None` when the shard is unusable.
    fn with<R>(&self, key: &[u8], f: impl FnOnce(u64) -> (Option<u64>, R)) -> Option<R> {
        let hash = self.hasher.hash_one(key);
        // The table uses the low bits of the hash: the shard takes high ones.
        let shard = &self.shards[(hash >> 60) as usize % SHARDS];
        // A panic while holding a shard's lock cannot happen (no code in it panics).
        let mut table = shard.lock().ok()?;
        match table.find_mut(hash, |(k, _)| k[..] == *key) {
            Some((_, tat)) => {
                let (new, r) = f(*tat);
                if let Some(t) = new {
                    *tat = t;
                }
                Some(r)
            }
            None => {
                let (new, r) = f(0);
                if let Some(t) = new {
                    let hasher = |(k, _): &Slot| self.hasher.hash_one(k);
                    table.insert_unique(hash, (SmallVec::from_slice(key), t), hasher);
                }
                Some(r)
            }
        }
    }

    /// Admits or refuses a request of `key` costing `cost` units under `quota`; an
    /// admitted one is counted at once.
    pub fn check(&self, key: &[u8], quota: &Quota, cost: u64) -> Decision {
        let now = self.now();
        let decide = |tat| {
            let d = quota.decide(tat, now, cost);
            match d {
                Decision::Admit { tat, .. } => (Some(tat), d),
                Decision::Deny { .. } => (None, d),
            }
        };
        // Were the shard unusable, admitting is the answer that loses no traffic.
        self.with(key, decide)
            .unwrap_or_else(|| quota.decide(0, now, cost))
    }

    /// Corrects a reservation of `reserved` units made by [`LocalLimiter::check`] to the
    /// `actual` units used (tokens, once the answer's usage is known).
    pub fn settle(&self, key: &[u8], quota: &Quota, reserved: u64, actual: u64) {
        let now = self.now();
        self.with(key, |tat| {
            (Some(quota.settle(tat, now, reserved, actual)), ())
        });
    }

    /// Drops the keys back to their full burst; how many are left.
    pub fn sweep(&self) -> usize {
        let now = self.now();
        self.shards
            .iter()
            .filter_map(|s| s.lock().ok())
            .map(|mut t| {
                t.retain(|(_, tat)| *tat > now);
                t.len()
            })
            .sum()
    }

    /// The `n` keys furthest from their full burst, with how long until they are back to
    /// it, longest first (a key refused now is among them).
    pub fn busiest(&self, n: usize) -> Vec<(Box<[u8]>, Duration)> {
        let now = self.now();
        let mut all: Vec<(Box<[u8]>, Duration)> = self
            .shards
            .iter()
            .filter_map(|s| s.lock().ok())
            .flat_map(|t| {
                t.iter()
                    .filter(|(_, tat)| *tat > now)
                    .map(|(k, tat)| (Box::from(&k[..]), Duration::from_nanos(tat - now)))
                    .collect::<Vec<_>>()
            })
            .collect();
        all.sort_by_key(|e| std::cmp::Reverse(e.1));
        all.truncate(n);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowgate_clock::ManualClock;

    #[test]
    fn keys_are_limited_apart_and_recover_with_time() {
        let clock = ManualClock::at_epoch_2026();
        let l = LocalLimiter::new(clock.shared());
        let q = Quota::new(2, Duration::from_secs(1), 2).unwrap();
        let admitted = |key: &str| matches!(l.check(key.as_bytes(), &q, 1), Decision::Admit { .. });
        assert!(admitted("a") && admitted("a"));
        assert!(!admitted("a"));
        assert!(admitted("b"), "another key has its own limit");
        assert_eq!(
            l.busiest(5),
            [
                (Box::from(&b"a"[..]), Duration::from_secs(1)),
                (Box::from(&b"b"[..]), Duration::from_millis(500))
            ]
        );
        clock.advance(Duration::from_millis(500));
        assert!(admitted("a"));
        assert!(!admitted("a"));
        // "b" (one request half a second ago) is back at rest.
        assert_eq!(
            l.busiest(5),
            [(Box::from(&b"a"[..]), Duration::from_secs(1))]
        );
        // Keys at rest are swept; the others stay.
        clock.advance(Duration::from_millis(600));
        assert_eq!(l.sweep(), 1);
        clock.advance(Duration::from_secs(1));
        assert_eq!(l.sweep(), 0);
        assert!(admitted("a") && admitted("a"));
    }

    #[test]
    fn token_reservations_are_settled() {
        let clock = ManualClock::at_epoch_2026();
        let l = LocalLimiter::new(clock.shared());
        // 600 tokens per minute: 10 per second.
        let q = Quota::new(600, Duration::from_secs(60), 600).unwrap();
        let k = b"team";
        assert!(matches!(
            l.check(k, &q, 500),
            Decision::Admit { remaining: 100, .. }
        ));
        assert!(matches!(l.check(k, &q, 200), Decision::Deny { .. }));
        // The first answer used 50 tokens: 450 come back.
        l.settle(k, &q, 500, 50);
        assert!(matches!(
            l.check(k, &q, 200),
            Decision::Admit { remaining: 350, .. }
        ));
    }
}
