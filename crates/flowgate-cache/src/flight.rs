//! Single-flight: concurrent misses on one key cause one upstream request.
//!
//! The first miss leads: it goes upstream and publishes what it got. Later misses follow:
//! they wait, bounded, for the leader's entry. A leader that ends without one (an error, a
//! response that cannot be cached, a client that went away) publishes nothing, and its
//! followers go upstream themselves, as they do when their wait runs out.
//!
//! A leader whose answer streams publishes the stream as soon as its head is in
//! ([`Leader::stream`]): followers that asked for the same kind of stream (their *flavor*,
//! chosen by the caller) subscribe and get it chunk by chunk; the others wait for the
//! complete entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use crate::entry::Entry;
use crate::fanout::{Share, Subscription};
use crate::key::CacheKey;

/// How far a flight got.
#[derive(Debug, Clone)]
enum Progress {
    Pending,
    /// The answer is streaming, in the given flavor.
    Streaming(Arc<Share>, u8),
    Done(Arc<Entry>),
}

type Slot = watch::Receiver<Progress>;

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
    tx: watch::Sender<Progress>,
    inflight: Arc<Mutex<HashMap<CacheKey, Slot>>>,
    on_abandon: Option<OnAbandon>,
}

/// What runs when a leader ends without publishing (e.g. releasing a lock other replicas
/// wait on).
struct OnAbandon(Box<dyn FnOnce() + Send + Sync>);

impl std::fmt::Debug for OnAbandon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnAbandon")
    }
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
        let (tx, rx) = watch::channel(Progress::Pending);
        map.insert(key.clone(), rx);
        Join::Leader(Leader {
            key: key.clone(),
            tx,
            inflight: self.inflight.clone(),
            on_abandon: None,
        })
    }

    /// Leads a new flight for `key`, unless one is in progress (for a background refresh:
    /// one at a time, and never while a request is upstream for the key).
    pub fn try_lead(&self, key: &CacheKey) -> Option<Leader> {
        match self.join(key) {
            Join::Leader(l) => Some(l),
            Join::Follower(_) => None,
        }
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
    pub fn publish(mut self, entry: Arc<Entry>) {
        self.on_abandon = None;
        let _ = self.tx.send(Progress::Done(entry));
    }

    /// Runs `f` if this leader ends without publishing an entry.
    pub fn on_abandon(&mut self, f: impl FnOnce() + Send + Sync + 'static) {
        self.on_abandon = Some(OnAbandon(Box::new(f)));
    }

    /// The answer streams through `share`, in `flavor`: followers of that flavor subscribe.
    pub fn stream(&self, share: Arc<Share>, flavor: u8) {
        let _ = self.tx.send(Progress::Streaming(share, flavor));
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        // Published or not, the flight is over: later misses start a new one. Followers
        // of an unpublished flight see the sender gone.
        lock(&self.inflight).remove(&self.key);
        if let Some(OnAbandon(f)) = self.on_abandon.take() {
            f();
        }
    }
}

/// The flight map, also after a panic elsewhere poisoned its lock: every critical section
/// leaves it consistent (one insert or one remove), so a leader's exit must still remove its
/// flight, or the key could never be led again.
fn lock(m: &Mutex<HashMap<CacheKey, Slot>>) -> MutexGuard<'_, HashMap<CacheKey, Slot>> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a follower got.
#[derive(Debug)]
pub enum Waited {
    /// The complete answer.
    Entry(Arc<Entry>),
    /// The answer as it streams, from its first byte, with the response fields the share
    /// carries.
    Stream {
        fields: Vec<(String, Bytes)>,
        stream: Subscription,
    },
}

impl Follower {
    /// The leader's answer, or `None` when it had none or `max` passed first. A follower
    /// given a `flavor` takes a stream of that flavor as soon as it starts.
    pub async fn wait(mut self, max: Duration, flavor: Option<u8>) -> Option<Waited> {
        let rx = &mut self.rx;
        let got = tokio::time::timeout(max, async move {
            let progress = rx
                .wait_for(|p| match p {
                    Progress::Pending => false,
                    Progress::Streaming(share, f) => Some(*f) == flavor && share.joinable(),
                    Progress::Done(_) => true,
                })
                .await
                .ok()?
                .clone();
            match progress {
                Progress::Done(e) => Some(Waited::Entry(e)),
                Progress::Streaming(share, _) => match share.subscribe() {
                    Some(stream) => Some(Waited::Stream {
                        fields: share.headers().to_vec(),
                        stream,
                    }),
                    // Too far along to replay: only the complete entry can do.
                    None => match &*rx.wait_for(|p| matches!(p, Progress::Done(_))).await.ok()? {
                        Progress::Done(e) => Some(Waited::Entry(e.clone())),
                        _ => None,
                    },
                },
                Progress::Pending => None,
            }
        })
        .await;
        got.ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{CachedResponse, Usage};
    use crate::key::KeyBuilder;
    use flowgate_clock::Clock;

    fn key() -> CacheKey {
        KeyBuilder::new("t").finish("ns".into())
    }

    fn entry() -> Arc<Entry> {
        Arc::new(Entry::new(
            CachedResponse {
                status: 200,
                headers: vec![],
                body: Bytes::from_static(b"{}"),
                usage: Usage::default(),
            },
            flowgate_clock::ManualClock::at_epoch_2026().now(),
            crate::entry::Lifetime::fresh_for(Duration::from_secs(60)),
            crate::entry::Labels::default(),
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn followers_get_the_leaders_entry() {
        let f = Flights::default();
        let Join::Leader(leader) = f.join(&key()) else {
            panic!("first miss must lead")
        };
        let followers: Vec<_> = (0..5)
            .map(|_| match f.join(&key()) {
                Join::Follower(x) => tokio::spawn(x.wait(Duration::from_secs(30), None)),
                Join::Leader(_) => panic!("second miss must follow"),
            })
            .collect();
        leader.publish(entry());
        for w in followers {
            let Some(Waited::Entry(e)) = w.await.unwrap() else {
                panic!("expected the entry")
            };
            assert_eq!(e.response.status, 200);
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
        let w = tokio::spawn(w.wait(Duration::from_secs(30), None));
        drop(leader);
        assert!(w.await.unwrap().is_none());
    }

    #[test]
    fn the_abandon_hook_runs_only_for_a_leader_that_publishes_nothing() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let f = Flights::default();
        let ran = Arc::new(AtomicU32::new(0));
        for publish in [true, false] {
            let Join::Leader(mut leader) = f.join(&key()) else {
                panic!()
            };
            let r = ran.clone();
            leader.on_abandon(move || {
                r.fetch_add(1, Ordering::Relaxed);
            });
            if publish {
                leader.publish(entry());
                assert_eq!(ran.load(Ordering::Relaxed), 0);
            }
        }
        assert_eq!(ran.load(Ordering::Relaxed), 1);
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
        assert!(w.wait(Duration::from_secs(2), Some(0)).await.is_none());
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn followers_of_the_streams_flavor_subscribe_and_others_wait_for_the_entry() {
        let f = Flights::default();
        let Join::Leader(leader) = f.join(&key()) else {
            panic!()
        };
        let follow = |flavor| match f.join(&key()) {
            Join::Follower(x) => tokio::spawn(x.wait(Duration::from_secs(30), flavor)),
            Join::Leader(_) => panic!("must follow"),
        };
        let (same, other, json) = (follow(Some(1)), follow(Some(2)), follow(None));
        let share = Arc::new(Share::new(vec![], 1024));
        leader.stream(share.clone(), 1);
        share.push(Bytes::from_static(b"data: x\n\n"));
        tokio::task::yield_now().await;
        let late_same = follow(Some(1));
        share.end(Ok(()));
        let Some(Waited::Stream { stream: mut s, .. }) = same.await.unwrap() else {
            panic!("same flavor must stream")
        };
        assert_eq!(s.next().await, Some(Ok(Bytes::from_static(b"data: x\n\n"))));
        assert_eq!(s.next().await, None);
        assert!(matches!(
            late_same.await.unwrap(),
            Some(Waited::Stream { .. })
        ));
        leader.publish(entry());
        assert!(matches!(other.await.unwrap(), Some(Waited::Entry(_))));
        assert!(matches!(json.await.unwrap(), Some(Waited::Entry(_))));
    }
}
