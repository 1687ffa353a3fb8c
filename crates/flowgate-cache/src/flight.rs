//! Single-flight: concurrent misses on one key cause one upstream request.
//!
//! The first miss leads: it goes upstream and publishes what it got. Later misses follow:
//! they wait, bounded, for the leader's entry. A leader that ends without one (an error, a
//! response that cannot be cached, a client that went away) publishes nothing, and its
//! followers go upstream themselves, as they do when their wait runs out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use crate::entry::Entry;
use crate::key::CacheKey;

type Slot = watch::Receiver<Option<Arc<Entry>>>;

/// Flights in progress. The map is only touched on misses, which then wait on an upstream.
#[derive(Debug, Default)]
pub struct Flights {
    inflight: Arc<Mutex<HashMap<CacheKey, Slot>>>,
}

/// The outcome of joining a flight.
#[derive(Debug)]
pub enum Join {
    Leader(Leader),
    Follower(Follower),
}

/// The request that goes upstream for a key.
#[derive(Debug)]
pub struct Leader {
    key: CacheKey,
    tx: watch::Sender<Option<Arc<Entry>>>,
    inflight: Arc<Mutex<HashMap<CacheKey, Slot>>>,
}

/// A request waiting for a leader.
#[derive(Debug)]
pub struct Follower {
    rx: Slot,
}

impl Flights {
    pub fn join(&self, key: &CacheKey) -> Join {
        let mut map = lock(&self.inflight);
        if let Some(rx) = map.get(key) {
            return Join::Follower(Follower { rx: rx.clone() });
        }
        let (tx, rx) = watch::channel(None);
        map.insert(key.clone(), rx);
        Join::Leader(Leader {
            key: key.clone(),
            tx,
            inflight: self.inflight.clone(),
        })
    }

    /// Flights in progress.
    pub fn len(&self) -> usize {
        lock(&self.inflight).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Leader {
    pub fn key(&self) -> &CacheKey {
        &self.key
    }

    /// Hands `entry` to every follower.
    pub fn publish(self, entry: Arc<Entry>) {
        let _ = self.tx.send(Some(entry));
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        // Published or not, the flight is over: later misses start a new one. Followers
        // of an unpublished flight see the sender gone.
        lock(&self.inflight).remove(&self.key);
    }
}

/// The flight map, also after a panic elsewhere poisoned its lock: every critical section
/// leaves it consistent (one insert or one remove), so a leader's exit must still remove its
/// flight, or the key could never be led again.
fn lock(m: &Mutex<HashMap<CacheKey, Slot>>) -> MutexGuard<'_, HashMap<CacheKey, Slot>> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Follower {
    /// The leader's entry, or `None` when it had none or `max` passed first.
    pub async fn wait(mut self, max: Duration) -> Option<Arc<Entry>> {
        let got = tokio::time::timeout(max, self.rx.wait_for(Option::is_some)).await;
        match got {
            Ok(Ok(v)) => v.clone(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{CachedResponse, Usage};
    use crate::key::KeyBuilder;
    use bytes::Bytes;
    use flowgate_clock::Clock;

    fn key() -> CacheKey {
        KeyBuilder::new("t").finish("ns".into())
    }

    fn entry() -> Arc<Entry> {
        Arc::new(Entry {
            response: CachedResponse {
                status: 200,
                headers: vec![],
                body: Bytes::from_static(b"{}"),
                usage: Usage::default(),
            },
            stored_at: flowgate_clock::ManualClock::at_epoch_2026().now(),
            ttl: Duration::from_secs(60),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn followers_get_the_leaders_entry() {
        let f = Flights::default();
        let Join::Leader(leader) = f.join(&key()) else {
            panic!("first miss must lead")
        };
        let followers: Vec<_> = (0..5)
            .map(|_| match f.join(&key()) {
                Join::Follower(x) => tokio::spawn(x.wait(Duration::from_secs(30))),
                Join::Leader(_) => panic!("second miss must follow"),
            })
            .collect();
        leader.publish(entry());
        for w in followers {
            assert_eq!(w.await.unwrap().unwrap().response.status, 200);
        }
        assert!(f.is_empty());
        assert!(matches!(f.join(&key()), Join::Leader(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_without_an_entry_releases_its_followers() {
        let f = Flights::default();
        let leader = f.join(&key());
        let Join::Follower(w) = f.join(&key()) else {
            panic!()
        };
        let w = tokio::spawn(w.wait(Duration::from_secs(30)));
        drop(leader);
        assert!(w.await.unwrap().is_none());
    }

    #[tokio::test(start_paused = true)]
    #[allow(clippy::disallowed_methods)]
    async fn waits_are_bounded() {
        let f = Flights::default();
        let _leader = f.join(&key());
        let Join::Follower(w) = f.join(&key()) else {
            panic!()
        };
        let started = tokio::time::Instant::now();
        assert!(w.wait(Duration::from_secs(2)).await.is_none());
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }
}
