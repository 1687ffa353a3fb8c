//! Session affinity: requests with the same session id go to the same endpoint while it can
//! take them.
//!
//! A table maps each session id to its endpoint and when it was last used. A session whose
//! endpoint is out (breaker open) moves to another one, and that is counted; a session idle
//! for `idle` is forgotten. Each endpoint may carry at most `cap` sessions (0: no cap): a
//! new session goes to an endpoint under its cap, or, when every one is full, to any
//! (counted as overflow). The table is sharded by the id's hash, each shard behind its own
//! mutex, held only to look an id up or bind it; at most [`MAX_SESSIONS`] ids are kept per
//! pool (sessions beyond are balanced as if they had no id, and counted).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Session ids kept per pool at most.
pub const MAX_SESSIONS: usize = 100_000;
const SHARDS: usize = 16;

/// One shard of the table: session id → its endpoint and last use.
type Shard = Mutex<HashMap<Box<[u8]>, Session>>;

#[derive(Debug, Clone, Copy)]
struct Session {
    endpoint: usize,
    last_ns: u64,
}

/// What the table says of a request's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// It has an endpoint: this one.
    Bound(usize),
    /// It had one that cannot take it now: it needs another (then [`Sessions::bind`]).
    Moving(usize),
    /// It is new (or expired): it needs an endpoint.
    New,
}

/// How the sessions of a pool fared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounts {
    pub active: usize,
    pub moved: u64,
    pub expired: u64,
    /// New sessions placed over every endpoint's cap.
    pub overflow: u64,
    /// Sessions not kept because the table was full.
    pub untracked: u64,
}

/// A pool's session table.
#[derive(Debug)]
pub struct Sessions {
    shards: Box<[Shard]>,
    hasher: std::hash::RandomState,
    idle_ns: u64,
    cap: u32,
    /// Sessions bound to each endpoint.
    per_endpoint: Box<[AtomicU32]>,
    moved: AtomicU64,
    expired: AtomicU64,
    overflow: AtomicU64,
    untracked: AtomicU64,
}

impl Sessions {
    pub fn new(endpoints: usize, cap: u32, idle: Duration) -> Self {
        Sessions {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: std::hash::RandomState::new(),
            idle_ns: u64::try_from(idle.as_nanos()).unwrap_or(u64::MAX),
            cap,
            per_endpoint: (0..endpoints).map(|_| AtomicU32::new(0)).collect(),
            moved: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            overflow: AtomicU64::new(0),
            untracked: AtomicU64::new(0),
        }
    }

    fn shard(&self, id: &[u8]) -> &Shard {
        let h = self.hasher.hash_one(id) as usize;
        &self.shards[h % self.shards.len()]
    }

    fn release(&self, endpoint: usize) {
        if let Some(n) = self.per_endpoint.get(endpoint) {
            n.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Where session `id` goes at `now_ns`, given which endpoints can take a request now.
    /// A bound session's last use is now.
    pub fn place(&self, id: &[u8], now_ns: u64, usable: impl Fn(usize) -> bool) -> Place {
        let Ok(mut map) = self.shard(id).lock() else {
            return Place::New;
        };
        let Some(s) = map.get_mut(id) else {
            return Place::New;
        };
        if now_ns.saturating_sub(s.last_ns) >= self.idle_ns {
            let gone = s.endpoint;
            map.remove(id);
            drop(map);
            self.release(gone);
            self.expired.fetch_add(1, Ordering::Relaxed);
            return Place::New;
        }
        if usable(s.endpoint) {
            s.last_ns = now_ns;
            Place::Bound(s.endpoint)
        } else {
            Place::Moving(s.endpoint)
        }
    }

    /// The endpoint session `id` is bound to, if it is and has not expired (changing
    /// nothing).
    pub fn peek(&self, id: &[u8], now_ns: u64) -> Option<usize> {
        let map = self.shard(id).lock().ok()?;
        let s = map.get(id)?;
        (now_ns.saturating_sub(s.last_ns) < self.idle_ns).then_some(s.endpoint)
    }

    /// Whether endpoint `i` is at its session cap.
    pub fn is_full(&self, i: usize) -> bool {
        self.cap != 0
            && self
                .per_endpoint
                .get(i)
                .is_some_and(|n| n.load(Ordering::Relaxed) >= self.cap)
    }

    /// Binds session `id` to endpoint `i` (a session that was elsewhere moves, counted);
    /// `over_cap`: every endpoint was full.
    pub fn bind(&self, id: &[u8], i: usize, now_ns: u64, over_cap: bool) {
        let Ok(mut map) = self.shard(id).lock() else {
            return;
        };
        let was = map.get(id).map(|s| s.endpoint);
        if was.is_none() && self.active() >= MAX_SESSIONS {
            self.untracked.fetch_add(1, Ordering::Relaxed);
            return;
        }
        map.insert(
            id.into(),
            Session {
                endpoint: i,
                last_ns: now_ns,
            },
        );
        drop(map);
        match was {
            Some(old) if old == i => return,
            Some(old) => {
                self.release(old);
                self.moved.fetch_add(1, Ordering::Relaxed);
            }
            None => {}
        }
        if over_cap {
            self.overflow.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(n) = self.per_endpoint.get(i) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Forgets the sessions idle for longer than the timeout; how many are left.
    pub fn sweep(&self, now_ns: u64) -> usize {
        for shard in self.shards.iter() {
            let mut gone = Vec::new();
            if let Ok(mut map) = shard.lock() {
                map.retain(|_, s| {
                    let keep = now_ns.saturating_sub(s.last_ns) < self.idle_ns;
                    if !keep {
                        gone.push(s.endpoint);
                    }
                    keep
                });
            }
            for e in gone {
                self.release(e);
                self.expired.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.active()
    }

    /// Sessions bound now (the endpoints' counts).
    fn active(&self) -> usize {
        self.per_endpoint
            .iter()
            .map(|n| n.load(Ordering::Relaxed) as usize)
            .sum()
    }

    /// Sessions bound to endpoint `i` now.
    pub fn on(&self, i: usize) -> u32 {
        self.per_endpoint
            .get(i)
            .map_or(0, |n| n.load(Ordering::Relaxed))
    }

    pub fn counts(&self) -> SessionCounts {
        SessionCounts {
            active: self.active(),
            moved: self.moved.load(Ordering::Relaxed),
            expired: self.expired.load(Ordering::Relaxed),
            overflow: self.overflow.load(Ordering::Relaxed),
            untracked: self.untracked.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn table() -> Sessions {
        Sessions::new(3, 2, Duration::from_secs(60))
    }

    #[test]
    fn a_session_stays_bound_while_its_endpoint_can_take_it() {
        let t = table();
        assert_eq!(t.place(b"a", 0, |_| true), Place::New);
        t.bind(b"a", 1, 0, false);
        for k in 1..5 {
            assert_eq!(t.place(b"a", k * S, |_| true), Place::Bound(1));
        }
        assert_eq!(t.on(1), 1);
        // Its endpoint is out: it moves, counted, and the counts follow it.
        assert_eq!(t.place(b"a", 5 * S, |i| i != 1), Place::Moving(1));
        t.bind(b"a", 2, 5 * S, false);
        assert_eq!((t.on(1), t.on(2)), (0, 1));
        assert_eq!(t.place(b"a", 6 * S, |_| true), Place::Bound(2));
        assert_eq!(t.counts().moved, 1);
        assert_eq!(t.counts().active, 1);
    }

    #[test]
    fn idle_sessions_expire_and_free_their_place() {
        let t = table();
        t.bind(b"a", 0, 0, false);
        t.bind(b"b", 0, 0, false);
        assert!(t.is_full(0), "cap of 2");
        assert!(!t.is_full(1));
        // Used 30 s on: the idle time starts again.
        assert_eq!(t.place(b"a", 30 * S, |_| true), Place::Bound(0));
        // b is idle for a minute: the sweep forgets it, a stays.
        assert_eq!(t.sweep(60 * S), 1);
        assert!(!t.is_full(0));
        // a is idle for a minute when next seen: new.
        assert_eq!(t.place(b"a", 90 * S, |_| true), Place::New);
        assert_eq!(t.counts().expired, 2);
        assert_eq!((t.counts().active, t.on(0)), (0, 0));
    }

    #[test]
    fn over_cap_and_untracked_sessions_are_counted() {
        let t = table();
        t.bind(b"a", 0, 0, true);
        t.bind(b"a", 0, S, false);
        assert_eq!(t.counts().overflow, 1);
        assert_eq!(t.on(0), 1, "binding to the same endpoint again counts once");
        let big = Sessions::new(1, 0, Duration::from_secs(60));
        for i in 0..MAX_SESSIONS + 3 {
            big.bind(&i.to_le_bytes(), 0, 0, false);
        }
        assert_eq!(big.counts().active, MAX_SESSIONS);
        assert_eq!(big.counts().untracked, 3);
        assert!(!big.is_full(0), "no cap");
    }
}
