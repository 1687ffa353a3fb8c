//! What the cache remembers of the entries it kept once they are gone: when each stopped
//! being servable and its TTL, by key. A miss for a key it remembers says why the answer
//! was not there: it had expired (and how long before, against its TTL: a longer TTL
//! would have answered it) or it was dropped while still servable (evicted for room, or
//! invalidated). The evidence behind the TTL and size advice.
//!
//! Bounded: the last [`CAPACITY`] keys kept, oldest forgotten first. Touched only when an
//! entry is kept and at a miss, never on a memory hit.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::key::CacheKey;

/// Keys remembered (about 40 bytes each).
pub const CAPACITY: usize = 32_768;

/// Why a miss missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissKind {
    /// A key not kept lately (new, or forgotten).
    New,
    /// Its answer had expired `after` before the miss; it was kept for `ttl`.
    Expired { after: Duration, ttl: Duration },
    /// Its answer was dropped while still servable (evicted, or invalidated).
    Dropped,
}

#[derive(Debug, Clone, Copy)]
struct Ghost {
    /// When it stops being servable (TTL and stale window).
    until: Instant,
    ttl: Duration,
}

#[derive(Debug, Default)]
pub struct Ghosts {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_key: HashMap<(u64, u64), Ghost>,
    order: VecDeque<(u64, u64)>,
}

/// The key's fingerprint: its hash with its namespace's.
fn print(key: &CacheKey) -> (u64, u64) {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let ns = BuildHasherDefault::<DefaultHasher>::default().hash_one(key.namespace());
    (ns, key.hash() as u64 ^ (key.hash() >> 64) as u64)
}

impl Ghosts {
    /// `key` was kept at `now`, servable until `until`, fresh for `ttl`.
    pub fn kept(&self, key: &CacheKey, until: Instant, ttl: Duration) {
        let Ok(mut g) = self.inner.lock() else {
            return;
        };
        let k = print(key);
        if g.by_key.insert(k, Ghost { until, ttl }).is_none() {
            g.order.push_back(k);
            while g.order.len() > CAPACITY {
                if let Some(old) = g.order.pop_front() {
                    g.by_key.remove(&old);
                }
            }
        }
    }

    /// Why `key` missed at `now`.
    pub fn miss(&self, key: &CacheKey, now: Instant) -> MissKind {
        let Ok(g) = self.inner.lock() else {
            return MissKind::New;
        };
        match g.by_key.get(&print(key)) {
            None => MissKind::New,
            Some(ghost) if now >= ghost.until => MissKind::Expired {
                after: now - ghost.until,
                ttl: ghost.ttl,
            },
            Some(_) => MissKind::Dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyBuilder;

    fn key(n: u32) -> CacheKey {
        let mut k = KeyBuilder::new("t");
        k.field("n", &n.to_le_bytes());
        k.finish("ns".into())
    }

    #[test]
    fn a_miss_says_whether_the_answer_had_expired_or_was_dropped() {
        let g = Ghosts::default();
        let t0 = flowgate_clock::ManualClock::at_epoch_2026().shared().now();
        let ttl = Duration::from_secs(60);
        assert_eq!(g.miss(&key(1), t0), MissKind::New);
        g.kept(&key(1), t0 + ttl, ttl);
        assert_eq!(
            g.miss(&key(1), t0 + Duration::from_secs(10)),
            MissKind::Dropped
        );
        assert_eq!(
            g.miss(&key(1), t0 + Duration::from_secs(90)),
            MissKind::Expired {
                after: Duration::from_secs(30),
                ttl
            }
        );
        assert_eq!(g.miss(&key(2), t0), MissKind::New);
    }

    #[test]
    fn the_oldest_keys_are_forgotten_first() {
        let g = Ghosts::default();
        let t0 = flowgate_clock::ManualClock::at_epoch_2026().shared().now();
        for n in 0..=CAPACITY as u32 {
            g.kept(&key(n), t0, Duration::from_secs(1));
        }
        assert_eq!(g.miss(&key(0), t0), MissKind::New);
        assert!(matches!(g.miss(&key(1), t0), MissKind::Expired { .. }));
        // Kept again: not a new ghost, the order holds one entry per key.
        g.kept(&key(1), t0, Duration::from_secs(1));
        assert_eq!(g.inner.lock().unwrap().order.len(), CAPACITY);
    }
}
