//! The record pipeline: a bounded lock-free queue from the data plane to one consumer.
//!
//! The data plane only pushes (`try_send` on a std `sync_channel`, which never wakes
//! anybody: the consumer never blocks on it). The queue is drained on a short tick by a
//! background task and, before answering, by every reader (`report`, `encode_prometheus`,
//! `flush`), so readers always see every record sent before they were called.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowgate_clock::SharedClock;
use prometheus_client::collector::Collector;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::breakdown::Step;
use crate::metrics::{
    EndpointLabels, ErrorLabels, Metrics, RequestLabels, RouteLabels, StageLabels,
};
use crate::record::{ErrorKind, RequestRecord};
use crate::windows::{LatencyWindows, PerformanceReport};

/// Capacity of the record queue: over a second of slack at 50k requests/s with the tick
/// below.
const QUEUE: usize = 65_536;
/// How often the background task drains the queue.
const TICK: Duration = Duration::from_millis(50);
/// Label-handle cache entries kept before the cache is cleared (names change on reload).
const HANDLE_CACHE: usize = 4096;

/// The telemetry hub: metric families, the registry, the windows and the record queue.
/// Cheap to clone.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    metrics: Metrics,
    registry: Registry,
    /// Collectors of other subsystems' state, added once they exist (the cache's).
    collectors: Mutex<Registry>,
    clock: SharedClock,
    tx: SyncSender<RequestRecord>,
    consumer: Mutex<Consumer>,
    windows: Mutex<LatencyWindows>,
    /// Where records go after the metrics (replaced whole on reload).
    sinks: Mutex<Vec<Arc<dyn Sink>>>,
}

/// What else reads every record, on the control plane, after the metrics: an access log,
/// the spend ledger. Called from the consumer only, in the order records were sent.
pub trait Sink: Send + Sync {
    fn take(&self, rec: &RequestRecord);
    /// The end of a batch (a drain): a chance to write what was buffered.
    fn flush(&self) {}
}

/// The receiving end and the metric handles it has resolved, so that a record costs no
/// label allocation once its route, pool, endpoint and status have been seen.
struct Consumer {
    rx: Receiver<RequestRecord>,
    handles: WordMap<HandleKey, Handles>,
    spawned: bool,
}

/// A record's labels by identity: the data plane hands out the same `Arc<str>` for a
/// route, pool or endpoint until a reload, so comparing addresses is comparing names
/// without reading them. The entry keeps the `Arc`s alive, so an address in the cache
/// cannot be reused for another name; a name seen under two addresses (after a reload)
/// just has two entries.
#[derive(Hash, PartialEq, Eq, Clone, Copy)]
struct HandleKey {
    route: usize,
    pool: usize,
    endpoint: usize,
    status: u16,
    error: Option<ErrorKind>,
}

impl HandleKey {
    fn of(rec: &RequestRecord) -> Self {
        fn addr(s: Option<&Arc<str>>) -> usize {
            s.map_or(0, |s| s.as_ptr() as usize)
        }
        HandleKey {
            route: addr(Some(&rec.route)),
            pool: addr(rec.pool.as_ref()),
            endpoint: addr(rec.endpoint.as_ref()),
            status: rec.status,
            error: rec.error,
        }
    }
}

/// Hashes the few machine words of a [`HandleKey`] (SipHash over them cost more than the
/// rest of recording a request).
#[derive(Default)]
struct WordHasher(u64);

impl std::hash::Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // The multiply-rotate step of rustc's FxHasher.
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

type WordMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<WordHasher>>;

struct Handles {
    /// Keeps the names the key points at alive.
    _names: [Option<Arc<str>>; 3],
    requests: Counter,
    duration: Histogram,
    upstream: Option<Histogram>,
    error: Option<Counter>,
    /// The route's time in each stage (`crate::breakdown::Step::ALL`'s order).
    stages: [Counter<f64, AtomicU64>; Step::ALL.len()],
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Telemetry {
    /// A new hub. Records are applied whenever it is read; call
    /// [`Telemetry::spawn_consumer`] inside a runtime to also apply them on a tick.
    pub fn new(clock: SharedClock) -> Self {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let (tx, rx) = sync_channel(QUEUE);
        let windows = Mutex::new(LatencyWindows::new(clock.now()));
        Telemetry {
            inner: Arc::new(Inner {
                metrics,
                registry,
                collectors: Mutex::new(Registry::default()),
                clock,
                tx,
                consumer: Mutex::new(Consumer {
                    rx,
                    handles: WordMap::default(),
                    spawned: false,
                }),
                windows,
                sinks: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Replaces the sinks records go to after the metrics. Records already drained are
    /// not replayed.
    pub fn set_sinks(&self, sinks: Vec<Arc<dyn Sink>>) {
        self.inner.drain();
        if let Ok(mut s) = self.inner.sinks.lock() {
            *s = sinks;
        }
    }

    /// The metric families, for the data plane's gauges.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The clock everything here runs on.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// Queues a record; never blocks and never wakes a thread. A full queue drops the
    /// record and counts it.
    pub fn record(&self, rec: RequestRecord) {
        if let Err(TrySendError::Full(_)) = self.inner.tx.try_send(rec) {
            self.inner.metrics.dropped_records.inc();
        }
    }

    /// Starts the task that drains the queue every few milliseconds (once; later calls do
    /// nothing). It ends when every [`Telemetry`] clone is dropped.
    pub fn spawn_consumer(&self) {
        match self.inner.consumer.lock() {
            Ok(mut c) if !c.spawned => c.spawned = true,
            _ => return,
        }
        // A weak reference, so that dropping the last `Telemetry` ends the task.
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                inner.drain();
            }
        });
    }

    /// Applies every queued record now. When it returns, every record queued before the
    /// call is visible in the metrics and the windows.
    pub fn flush(&self) {
        self.inner.drain();
    }

    /// Rates and latency percentiles over the last 1 and 5 minutes.
    pub fn report(&self) -> Option<PerformanceReport> {
        self.inner.drain();
        let now = self.inner.clock.now();
        self.inner.windows.lock().ok().map(|w| w.report(now))
    }

    /// Adds families read at each scrape from another subsystem's state.
    pub fn register_collector(&self, collector: Box<dyn Collector>) {
        if let Ok(mut r) = self.inner.collectors.lock() {
            r.register_collector(collector);
        }
    }

    /// The Prometheus text exposition of every family.
    pub fn encode_prometheus(&self) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        self.inner.drain();
        let mut out = String::new();
        let encoded = encode_registry(&mut out, &self.inner.registry).and_then(|()| {
            match self.inner.collectors.lock() {
                Ok(c) => encode_registry(&mut out, &c),
                Err(_) => Ok(()),
            }
        });
        if encoded.and_then(|()| encode_eof(&mut out)).is_err() {
            out.clear();
        }
        out
    }
}

impl Inner {
    fn drain(&self) {
        let Ok(mut consumer) = self.consumer.lock() else {
            return;
        };
        let consumer = &mut *consumer;
        let Ok(first) = consumer.rx.try_recv() else {
            return;
        };
        let now = self.clock.now();
        let mut windows = self.windows.lock().ok();
        let sinks = self.sinks.lock().map(|s| s.clone()).unwrap_or_default();
        let mut next = Some(first);
        while let Some(rec) = next {
            if consumer.handles.len() >= HANDLE_CACHE {
                consumer.handles.clear();
            }
            let h = consumer
                .handles
                .entry(HandleKey::of(&rec))
                .or_insert_with(|| self.metrics.handles(&rec));
            h.requests.inc();
            h.duration.observe(rec.duration.as_secs_f64());
            if let (Some(hist), Some(up)) = (&h.upstream, rec.upstream_duration) {
                hist.observe(up.as_secs_f64());
            }
            if let Some(c) = &h.error {
                c.inc();
            }
            for ((_, d), c) in rec.stages().iter().zip(&h.stages) {
                if !d.is_zero() {
                    c.inc_by(d.as_secs_f64());
                }
            }
            if let Some(w) = windows.as_mut() {
                w.record(now, &rec.route, rec.duration, rec.is_error());
            }
            for s in &sinks {
                s.take(&rec);
            }
            next = consumer.rx.try_recv().ok();
        }
        for s in &sinks {
            s.flush();
        }
    }
}

impl Metrics {
    /// Resolves the metric handles a record with these labels updates.
    fn handles(&self, rec: &RequestRecord) -> Handles {
        let pool = rec.pool.as_deref().unwrap_or("-");
        let requests = self
            .requests
            .get_or_create(&RequestLabels {
                route: rec.route.to_string(),
                pool: pool.to_string(),
                status: rec.status.to_string(),
            })
            .clone();
        let duration = self
            .request_duration
            .get_or_create(&RouteLabels {
                route: rec.route.to_string(),
            })
            .clone();
        let upstream = rec.endpoint.as_deref().map(|ep| {
            self.upstream_duration
                .get_or_create(&EndpointLabels {
                    pool: pool.to_string(),
                    endpoint: ep.to_string(),
                })
                .clone()
        });
        let error = rec.error.map(|kind| {
            self.gateway_errors
                .get_or_create(&ErrorLabels {
                    route: rec.route.to_string(),
                    kind: kind.as_str().into(),
                })
                .clone()
        });
        Handles {
            _names: [
                Some(rec.route.clone()),
                rec.pool.clone(),
                rec.endpoint.clone(),
            ],
            requests,
            duration,
            upstream,
            error,
            stages: Step::ALL.map(|step| {
                self.request_stages
                    .get_or_create(&StageLabels {
                        route: rec.route.to_string(),
                        stage: step.as_str().into(),
                    })
                    .clone()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowgate_clock::ManualClock;
    use std::time::Duration;

    fn rec(route: &str, status: u16, error: Option<ErrorKind>) -> RequestRecord {
        RequestRecord {
            route: Arc::from(route),
            pool: Some(Arc::from("llm")),
            endpoint: Some(Arc::from("e1")),
            status,
            duration: Duration::from_millis(12),
            upstream_duration: Some(Duration::from_millis(10)),
            error,
            ..RequestRecord::empty()
        }
    }

    #[test]
    fn records_reach_prometheus_and_windows() {
        let clock = ManualClock::at_epoch_2026();
        let t = Telemetry::new(clock.shared());
        t.record(rec("chat", 200, None));
        t.record(rec("chat", 502, Some(ErrorKind::Connect)));
        t.flush();
        let text = t.encode_prometheus();
        assert!(
            text.contains(r#"flowgate_requests_total{route="chat",pool="llm",status="200"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"flowgate_gateway_errors_total{route="chat",kind="connect"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("flowgate_upstream_duration_seconds_bucket"),
            "{text}"
        );
        let r = t.report().unwrap();
        assert_eq!(r.overall["1m"].requests, 2);
        assert_eq!(r.overall["1m"].errors, 1);
    }

    #[test]
    fn labels_are_told_apart_by_name_not_by_allocation() {
        let t = Telemetry::new(ManualClock::at_epoch_2026().shared());
        let shared = rec("chat", 200, None);
        for _ in 0..3 {
            t.record(shared.clone());
        }
        // Same names in fresh allocations (as after a reload), and another route.
        t.record(rec("chat", 200, None));
        t.record(rec("embed", 200, None));
        t.flush();
        let text = t.encode_prometheus();
        assert!(
            text.contains(r#"flowgate_requests_total{route="chat",pool="llm",status="200"} 4"#),
            "{text}"
        );
        assert!(
            text.contains(r#"flowgate_requests_total{route="embed",pool="llm",status="200"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let t = Telemetry::new(ManualClock::at_epoch_2026().shared());
        for _ in 0..QUEUE + 10 {
            t.record(rec("a", 200, None));
        }
        assert_eq!(t.metrics().dropped_records.get(), 10);
        assert_eq!(t.report().unwrap().overall["1m"].requests, QUEUE as u64);
    }

    #[tokio::test(start_paused = true)]
    async fn the_consumer_task_drains_on_its_tick() {
        let t = Telemetry::new(ManualClock::at_epoch_2026().shared());
        t.spawn_consumer();
        for _ in 0..1000 {
            t.record(rec("a", 200, None));
        }
        tokio::time::sleep(TICK * 2).await;
        // Read the window without draining: the tick must have applied the records.
        let now = t.clock().now();
        let n = t.inner.windows.lock().unwrap().report(now).overall["1m"].requests;
        assert_eq!(n, 1000);
    }
}
