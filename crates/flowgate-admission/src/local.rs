//! Rate limits kept in this process: one GCRA timestamp per limited key.
//!
//! Keys are spread over shards, each a small map behind its own lock, held for one map
//! lookup and one comparison: requests of different keys rarely meet, and no lock is held
//! across an await. A key whose timestamp is in the past is the same as a key never seen,
//! so [`LocalLimiter::sweep`] can drop it at any time: the state is bounded by the keys
//! active within one burst's worth of time.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use flowgate_clock::SharedClock;

use crate::gcra::{Decision, Quota};

const SHARDS: usize = 16;

/// Per-key GCRA state for keys of type `K`.
#[derive(Debug)]
pub struct LocalLimiter<K> {
    shards: Vec<Mutex<HashMap<K, u64>>>,
    hasher: RandomState,
    clock: SharedClock,
    origin: Instant,
}

impl<K: Hash + Eq + Clone> LocalLimiter<K> {
    pub fn new(clock: SharedClock) -> Self {
        let origin = clock.now();
        LocalLimiter {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
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

    fn shard(&self, key: &K) -> &Mutex<HashMap<K, u64>> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        &self.shards[i]
    }

    /// Admits or refuses a request of `key` costing `cost` units under `quota`; an
    /// admitted one is counted at once.
    pub fn check(&self, key: &K, quota: &Quota, cost: u64) -> Decision {
        let now = self.now();
        let Ok(mut map) = self.shard(key).lock() else {
            // A panic while holding a shard's lock cannot happen (no code in it panics);
            // were it to, admitting is the answer that loses no traffic.
            return quota.decide(0, now, cost);
        };
        let slot = map.get_mut(key);
        let d = quota.decide(slot.as_deref().copied().unwrap_or(0), now, cost);
        if let Decision::Admit { tat, .. } = d {
            // A key seen before is updated in place: no copy of it per request.
            match slot {
                Some(t) => *t = tat,
                None => _ = map.insert(key.clone(), tat),
            }
        }
        d
    }

    /// Corrects a reservation of `reserved` units made by [`LocalLimiter::check`] to the
    /// `actual` units used (tokens, once the answer's usage is known).
    pub fn settle(&self, key: &K, quota: &Quota, reserved: u64, actual: u64) {
        let now = self.now();
        if let Ok(mut map) = self.shard(key).lock() {
            match map.get_mut(key) {
                Some(t) => *t = quota.settle(*t, now, reserved, actual),
                None => _ = map.insert(key.clone(), quota.settle(0, now, reserved, actual)),
            }
        }
    }

    /// Drops the keys back to their full burst; how many are left.
    pub fn sweep(&self) -> usize {
        let now = self.now();
        self.shards
            .iter()
            .filter_map(|s| s.lock().ok())
            .map(|mut m| {
                m.retain(|_, tat| *tat > now);
                m.len()
            })
            .sum()
    }

    /// Until `key` is back to its full burst (zero for a key at rest).
    pub fn backlog(&self, key: &K) -> Duration {
        let now = self.now();
        let tat = self
            .shard(key)
            .lock()
            .ok()
            .and_then(|m| m.get(key).copied())
            .unwrap_or(0);
        Duration::from_nanos(tat.saturating_sub(now))
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
        let admitted =
            |key: &str| matches!(l.check(&key.to_string(), &q, 1), Decision::Admit { .. });
        assert!(admitted("a") && admitted("a"));
        assert!(!admitted("a"));
        assert!(admitted("b"), "another key has its own limit");
        assert_eq!(l.backlog(&"a".to_string()), Duration::from_secs(1));
        clock.advance(Duration::from_millis(500));
        assert!(admitted("a"));
        assert!(!admitted("a"));
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
        let k = "team".to_string();
        assert!(matches!(
            l.check(&k, &q, 500),
            Decision::Admit { remaining: 100, .. }
        ));
        assert!(matches!(l.check(&k, &q, 200), Decision::Deny { .. }));
        // The first answer used 50 tokens: 450 come back.
        l.settle(&k, &q, 500, 50);
        assert!(matches!(
            l.check(&k, &q, 200),
            Decision::Admit { remaining: 350, .. }
        ));
    }
}
