//! Concurrency limits: a permit per in-flight request, a bounded queue ordered by priority.
//!
//! A request takes a permit when one is free and nobody of its priority or higher is
//! waiting; otherwise it waits in the queue of its priority (first come, first served
//! within a priority) for at most the limiter's `queue_timeout`. A released permit goes
//! straight to the first waiter of the highest priority, so a freed slot is never taken by
//! a newcomer ahead of the queue. When the queue is full, a newcomer of a higher priority
//! takes the place of the newest waiter of the lowest priority below it, which is shed;
//! otherwise the newcomer is refused at once. `critical` and `high` requests may also use
//! `burst` permits above the limit, headroom the others never take.
//!
//! The limit can change while requests are in flight (the adaptive limit of
//! [`crate::adaptive`]): a larger one lets waiters in at once, a smaller one takes effect
//! as permits come back. The lock is held for a few comparisons and a queue operation,
//! never across an await.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use flowgate_config::Priority;
use tokio::sync::oneshot;

use crate::adaptive::{AdaptiveSettings, Gradient};

/// The queue of a priority.
fn index(p: Priority) -> usize {
    p as usize
}

/// Whether requests of `p` may use the burst permits above the limit.
fn may_burst(p: Priority) -> bool {
    p <= Priority::High
}

/// A limiter's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Permits for requests of any priority.
    pub limit: usize,
    /// Extra permits for `critical` and `high` requests.
    pub burst: usize,
    /// Requests that may wait at once, all priorities together (0: none wait).
    pub queue: usize,
    /// How long a request waits for a permit before it is refused.
    pub queue_timeout: Duration,
}

/// Why a request got no permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue was full of requests of its priority or higher.
    QueueFull,
    /// It waited `queue_timeout` without a permit.
    Timeout,
    /// It was waiting when a request of a higher priority needed its place.
    Shed,
}

/// One waiting request.
#[derive(Debug)]
struct Waiter {
    id: u64,
    tx: oneshot::Sender<Grant>,
}

/// What a waiter is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    Permit,
    Shed,
}

#[derive(Debug)]
struct State {
    /// The limit now (the configured one, or the adaptive limit's value).
    limit: usize,
    burst: usize,
    /// Waiters allowed, all priorities together.
    queue: usize,
    queue_timeout: Duration,
    in_flight: usize,
    /// One queue per priority, most urgent first.
    queues: [VecDeque<Waiter>; 4],
    queued: usize,
    next_id: u64,
}

/// Counters, kept per priority.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests that got a permit (at once or after waiting).
    pub admitted: [AtomicU64; 4],
    /// Of those, the ones that waited.
    pub waited: [AtomicU64; 4],
    pub timeouts: [AtomicU64; 4],
    /// Refused because the queue was full, or shed from it for a more urgent request.
    pub shed: [AtomicU64; 4],
}

/// A concurrency limiter. Shared by `Arc`: permits hold it.
#[derive(Debug)]
pub struct Concurrency {
    /// The settings live with the state: one lock per decision.
    state: Mutex<State>,
    counters: Counters,
    /// With an adaptive limit: its settings and state, fed by [`Permit::observe`].
    adaptive: Option<AdaptiveSettings>,
    gradient: Option<Mutex<Gradient>>,
}

/// The right to have one request in flight; given back when dropped.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<Concurrency>,
}

/// One moment of a limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub limit: usize,
    pub burst: usize,
    pub in_flight: usize,
    /// Waiting now, per priority (most urgent first).
    pub queued: [usize; 4],
    pub queue: usize,
}

impl Concurrency {
    /// A limiter of `settings.limit` permits, or of a limit that follows latency from
    /// `adaptive.initial` (`settings.limit` is then unused).
    pub fn new(settings: Settings, adaptive: Option<AdaptiveSettings>) -> Arc<Self> {
        let gradient = adaptive.map(Gradient::new);
        let limit = gradient.as_ref().map_or(settings.limit, Gradient::limit);
        Arc::new(Concurrency {
            adaptive,
            gradient: gradient.map(Mutex::new),
            state: Mutex::new(State {
                limit,
                burst: settings.burst,
                queue: settings.queue,
                queue_timeout: settings.queue_timeout,
                in_flight: 0,
                queues: Default::default(),
                queued: 0,
                next_id: 0,
            }),
            counters: Counters::default(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock; a poisoned one still holds a usable state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Takes new settings (a reload): a new fixed limit applies as for
    /// [`Concurrency::set_limit`]; requests already waiting keep their places.
    pub fn configure(&self, settings: Settings) {
        let mut s = self.state();
        s.burst = settings.burst;
        s.queue = settings.queue;
        s.queue_timeout = settings.queue_timeout;
        if self.gradient.is_none() {
            s.limit = settings.limit;
        }
        // A larger limit or burst lets waiters in at once.
        let_in(&mut s);
    }

    /// The bounds of an adaptive limit.
    pub fn adaptive_settings(&self) -> Option<AdaptiveSettings> {
        self.adaptive
    }

    pub fn queue_timeout(&self) -> Duration {
        self.state().queue_timeout
    }

    /// The adaptive limit's recent and usual latency.
    pub fn latencies(&self) -> Option<(Duration, Duration)> {
        let g = self.gradient.as_ref()?;
        Some(g.lock().unwrap_or_else(|e| e.into_inner()).latencies())
    }

    /// One request's latency, for an adaptive limit.
    fn observe(&self, latency: Duration) {
        let Some(g) = &self.gradient else { return };
        let in_flight = self.state().in_flight;
        let (old, new) = {
            let mut g = g.lock().unwrap_or_else(|e| e.into_inner());
            let old = g.limit();
            (old, g.sample(latency, in_flight))
        };
        if new != old {
            self.set_limit(new);
        }
    }

    /// Changes the limit: waiters get the permits a larger one frees at once.
    pub fn set_limit(&self, limit: usize) {
        let mut s = self.state();
        s.limit = limit;
        let_in(&mut s);
    }

    pub fn snapshot(&self) -> Snapshot {
        let s = self.state();
        Snapshot {
            limit: s.limit,
            burst: s.burst,
            in_flight: s.in_flight,
            queued: [0, 1, 2, 3].map(|i| s.queues[i].len()),
            queue: s.queue,
        }
    }

    /// A permit for a request of `priority`: at once, after waiting in the queue, or
    /// refused.
    pub async fn acquire(self: &Arc<Self>, priority: Priority) -> Result<Permit, Refused> {
        let i = index(priority);
        let (id, rx, queue_timeout) = {
            let mut s = self.state();
            let cap = s.limit + if may_burst(priority) { s.burst } else { 0 };
            let ahead: usize = s.queues[..=i].iter().map(VecDeque::len).sum();
            if s.in_flight < cap && ahead == 0 {
                s.in_flight += 1;
                drop(s);
                self.counters.admitted[i].fetch_add(1, Ordering::Relaxed);
                return Ok(Permit {
                    limiter: self.clone(),
                });
            }
            if s.queued >= s.queue && !shed_below(&mut s, priority) {
                drop(s);
                self.counters.shed[i].fetch_add(1, Ordering::Relaxed);
                return Err(Refused::QueueFull);
            }
            let (tx, rx) = oneshot::channel();
            let id = s.next_id;
            s.next_id += 1;
            s.queues[i].push_back(Waiter { id, tx });
            s.queued += 1;
            (id, rx, s.queue_timeout)
        };
        // Leaves the queue if this future is dropped while waiting (the client left).
        let mut waiting = Waiting {
            limiter: self,
            priority,
            id,
            rx,
            done: false,
        };
        let answer = tokio::time::timeout(queue_timeout, &mut waiting.rx).await;
        waiting.done = true;
        let grant = match answer {
            Ok(Ok(g)) => Some(g),
            // A waiter is only ever removed with an answer.
            Ok(Err(_)) => Some(Grant::Shed),
            // Still queued: it timed out. Not queued: answered as the deadline passed.
            Err(_) if self.leave(priority, id) => None,
            Err(_) => Some(waiting.rx.try_recv().unwrap_or(Grant::Shed)),
        };
        match grant {
            Some(Grant::Permit) => {
                self.counters.admitted[i].fetch_add(1, Ordering::Relaxed);
                self.counters.waited[i].fetch_add(1, Ordering::Relaxed);
                Ok(Permit {
                    limiter: self.clone(),
                })
            }
            Some(Grant::Shed) => {
                self.counters.shed[i].fetch_add(1, Ordering::Relaxed);
                Err(Refused::Shed)
            }
            None => {
                self.counters.timeouts[i].fetch_add(1, Ordering::Relaxed);
                Err(Refused::Timeout)
            }
        }
    }

    /// Removes waiter `id` from its queue; whether it was still there.
    fn leave(&self, priority: Priority, id: u64) -> bool {
        let mut s = self.state();
        let q = &mut s.queues[index(priority)];
        let Some(at) = q.iter().position(|w| w.id == id) else {
            return false;
        };
        q.remove(at);
        s.queued -= 1;
        true
    }

    fn release(&self) {
        let mut s = self.state();
        s.in_flight -= 1;
        // Hand the permit on; a waiter whose request went away is skipped.
        while let Some(w) = next_fitting(&mut s) {
            s.in_flight += 1;
            if w.tx.send(Grant::Permit).is_ok() {
                return;
            }
            s.in_flight -= 1;
        }
    }
}

/// Hands every permit the limit now allows to the waiters, most urgent first.
fn let_in(s: &mut State) {
    while let Some(w) = next_fitting(s) {
        s.in_flight += 1;
        if w.tx.send(Grant::Permit).is_err() {
            s.in_flight -= 1;
        }
    }
}

/// The first waiter that a free permit fits, most urgent first.
fn next_fitting(s: &mut State) -> Option<Waiter> {
    let i = Priority::ALL.into_iter().find(|p| {
        let cap = s.limit + if may_burst(*p) { s.burst } else { 0 };
        !s.queues[index(*p)].is_empty() && s.in_flight < cap
    })?;
    // Priorities are tried most urgent first: a normal waiter is not let in past a
    // critical one that does not fit (it always fits where a normal one does).
    let w = s.queues[index(i)].pop_front()?;
    s.queued -= 1;
    Some(w)
}

/// Sheds the newest waiter of the lowest priority below `priority`; whether there was one.
fn shed_below(s: &mut State, priority: Priority) -> bool {
    for p in Priority::ALL.into_iter().rev() {
        if p <= priority {
            return false;
        }
        if let Some(w) = s.queues[index(p)].pop_back() {
            s.queued -= 1;
            let _ = w.tx.send(Grant::Shed);
            return true;
        }
    }
    false
}

/// A request in the queue. Dropped before its answer (the request went away), it leaves
/// the queue, or gives back the permit it was handed meanwhile.
struct Waiting<'a> {
    limiter: &'a Concurrency,
    priority: Priority,
    id: u64,
    rx: oneshot::Receiver<Grant>,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.done
            && !self.limiter.leave(self.priority, self.id)
            && self.rx.try_recv() == Ok(Grant::Permit)
        {
            self.limiter.release();
        }
    }
}

impl Permit {
    /// Reports how long the request took to get its answer (for a stream: its first
    /// token), for an adaptive limit; nothing otherwise.
    pub fn observe(&self, latency: Duration) {
        self.limiter.observe(latency);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(limit: usize, burst: usize, queue: usize) -> Arc<Concurrency> {
        Concurrency::new(
            Settings {
                limit,
                burst,
                queue,
                queue_timeout: Duration::from_secs(10),
            },
            None,
        )
    }

    /// Starts a request of `p` waiting for a permit; its result comes through the handle.
    fn wait(c: &Arc<Concurrency>, p: Priority) -> tokio::task::JoinHandle<Result<Permit, Refused>> {
        let c = c.clone();
        tokio::spawn(async move { c.acquire(p).await })
    }

    /// Lets spawned tasks run up to their next wait.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn permits_up_to_the_limit_then_a_released_one_goes_to_the_waiter() {
        let c = limiter(2, 0, 10);
        let a = c.acquire(Priority::Normal).await.unwrap();
        let _b = c.acquire(Priority::Normal).await.unwrap();
        let third = wait(&c, Priority::Normal);
        settle().await;
        assert_eq!(c.snapshot().queued, [0, 0, 1, 0]);
        assert_eq!(c.snapshot().in_flight, 2);
        drop(a);
        let _third = third.await.unwrap().unwrap();
        assert_eq!(c.snapshot().in_flight, 2);
        assert_eq!(c.snapshot().queued, [0; 4]);
        assert_eq!(c.counters().waited[2].load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_get_permits_most_urgent_first_then_in_arrival_order() {
        let c = limiter(1, 0, 10);
        let held = c.acquire(Priority::Normal).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (n, p) in [
            (1, Priority::Low),
            (2, Priority::Normal),
            (3, Priority::High),
            (4, Priority::Critical),
            (5, Priority::Normal),
        ] {
            let (c, order) = (c.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let permit = c.acquire(p).await.unwrap();
                order.lock().unwrap().push(n);
                // Hold it a moment, then pass it on.
                tokio::task::yield_now().await;
                drop(permit);
            }));
            settle().await;
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [4, 3, 2, 5, 1]);
    }

    #[tokio::test(start_paused = true)]
    #[allow(clippy::disallowed_methods)] // tokio's paused clock, which the timeout follows
    async fn a_request_waits_at_most_the_queue_timeout() {
        let c = limiter(1, 0, 10);
        let _held = c.acquire(Priority::Normal).await.unwrap();
        let start = tokio::time::Instant::now();
        assert_eq!(
            c.acquire(Priority::High).await.unwrap_err(),
            Refused::Timeout
        );
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        assert_eq!(c.snapshot().queued, [0; 4]);
        assert_eq!(c.counters().timeouts[1].load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_sheds_its_newest_least_urgent_waiter_for_a_more_urgent_request() {
        let c = limiter(1, 0, 2);
        let held = c.acquire(Priority::Normal).await.unwrap();
        let low1 = wait(&c, Priority::Low);
        settle().await;
        let low2 = wait(&c, Priority::Low);
        settle().await;
        // Full: a normal request takes the place of the newest low one.
        let normal = wait(&c, Priority::Normal);
        settle().await;
        assert_eq!(low2.await.unwrap().unwrap_err(), Refused::Shed);
        assert_eq!(c.snapshot().queued, [0, 0, 1, 1]);
        // Another low one finds nobody less urgent than itself: refused at once.
        assert_eq!(
            c.acquire(Priority::Low).await.unwrap_err(),
            Refused::QueueFull
        );
        assert_eq!(c.counters().shed[3].load(Ordering::Relaxed), 2);
        drop(held);
        drop(normal.await.unwrap().unwrap());
        drop(low1.await.unwrap().unwrap());
        assert_eq!(c.snapshot().in_flight, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_goes_away_leaves_the_queue_and_loses_no_permit() {
        let c = limiter(1, 0, 10);
        let held = c.acquire(Priority::Normal).await.unwrap();
        let gone = wait(&c, Priority::Normal);
        settle().await;
        gone.abort();
        settle().await;
        assert_eq!(c.snapshot().queued, [0; 4]);
        drop(held);
        assert_eq!(c.snapshot().in_flight, 0);
        let _p = c.acquire(Priority::Low).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn burst_permits_are_for_critical_and_high_requests_only() {
        let c = limiter(1, 1, 10);
        let _n = c.acquire(Priority::Normal).await.unwrap();
        let normal = wait(&c, Priority::Normal);
        settle().await;
        let _h = c.acquire(Priority::High).await.unwrap();
        assert_eq!(c.snapshot().in_flight, 2);
        // Both permits in use: a critical request waits too, ahead of the normal one.
        let critical = wait(&c, Priority::Critical);
        settle().await;
        assert_eq!(c.snapshot().queued, [1, 0, 1, 0]);
        drop(_h);
        let _c = critical.await.unwrap().unwrap();
        assert_eq!(c.snapshot().queued, [0, 0, 1, 0]);
        drop(normal);
    }

    #[tokio::test(start_paused = true)]
    async fn a_larger_limit_lets_waiters_in_and_a_smaller_one_applies_as_permits_return() {
        let c = limiter(1, 0, 10);
        let a = c.acquire(Priority::Normal).await.unwrap();
        let w1 = wait(&c, Priority::Normal);
        let w2 = wait(&c, Priority::Normal);
        settle().await;
        c.set_limit(3);
        let (p1, p2) = (w1.await.unwrap().unwrap(), w2.await.unwrap().unwrap());
        assert_eq!(c.snapshot().in_flight, 3);
        c.set_limit(1);
        let w3 = wait(&c, Priority::Normal);
        settle().await;
        drop(a);
        drop(p1);
        settle().await;
        assert_eq!(c.snapshot().queued, [0, 0, 1, 0], "still 1 in flight");
        drop(p2);
        let _p3 = w3.await.unwrap().unwrap();
        assert_eq!(Priority::parse(" HIGH"), Some(Priority::High));
        assert_eq!(Priority::parse("urgent"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_adaptive_limit_shrinks_when_answers_slow_down() {
        let c = Concurrency::new(
            Settings {
                limit: 0,
                burst: 0,
                queue: 100,
                queue_timeout: Duration::from_secs(10),
            },
            Some(AdaptiveSettings {
                initial: 64,
                min: 2,
                max: 64,
                ..AdaptiveSettings::default()
            }),
        );
        assert!(c.adaptive_settings().is_some());
        assert_eq!(c.snapshot().limit, 64);
        let permits: Vec<Permit> = futures_ready(&c, 64).await;
        for _ in 0..600 {
            permits[0].observe(Duration::from_millis(100));
        }
        assert_eq!(c.snapshot().limit, 64);
        for _ in 0..100 {
            permits[0].observe(Duration::from_secs(2));
        }
        assert!(c.snapshot().limit <= 8, "{:?}", c.snapshot());
        // Permits above the new limit come back without being handed on.
        let waiter = wait(&c, Priority::Normal);
        settle().await;
        drop(permits);
        let _p = waiter.await.unwrap().unwrap();
        assert_eq!(c.snapshot().in_flight, 1);
    }

    async fn futures_ready(c: &Arc<Concurrency>, n: usize) -> Vec<Permit> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(c.acquire(Priority::Normal).await.unwrap());
        }
        out
    }
}
