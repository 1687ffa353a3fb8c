//! The record pipeline: a bounded channel from the data plane to one consumer task.

use std::sync::{Arc, Mutex};

use flowgate_clock::SharedClock;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;

use crate::metrics::{EndpointLabels, ErrorLabels, Metrics, RequestLabels, RouteLabels};
use crate::record::RequestRecord;
use crate::windows::{LatencyWindows, PerformanceReport};

/// Capacity of the record queue. At 50k requests/s this is over a second of slack.
const QUEUE: usize = 65_536;

/// The telemetry hub: metric families, the registry, the windows and the record queue.
/// Cheap to clone.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    metrics: Metrics,
    registry: Registry,
    clock: SharedClock,
    tx: mpsc::Sender<RequestRecord>,
    rx: Mutex<Option<mpsc::Receiver<RequestRecord>>>,
    windows: Mutex<LatencyWindows>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Telemetry {
    /// A new hub; call [`Telemetry::spawn_consumer`] once inside a runtime to start it.
    pub fn new(clock: SharedClock) -> Self {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let (tx, rx) = mpsc::channel(QUEUE);
        let windows = Mutex::new(LatencyWindows::new(clock.now()));
        Telemetry {
            inner: Arc::new(Inner {
                metrics,
                registry,
                clock,
                tx,
                rx: Mutex::new(Some(rx)),
                windows,
            }),
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

    /// Queues a record; never blocks. A full queue drops the record and counts it.
    pub fn record(&self, rec: RequestRecord) {
        if self.inner.tx.try_send(rec).is_err() {
            self.inner.metrics.dropped_records.inc();
        }
    }

    /// Starts the consumer task (once; later calls do nothing). It ends when every
    /// [`Telemetry`] clone is dropped.
    pub fn spawn_consumer(&self) {
        let rx = self.inner.rx.lock().ok().and_then(|mut g| g.take());
        let Some(mut rx) = rx else { return };
        let weak = Arc::downgrade(&self.inner);
        // The task holds only a weak reference, so that dropping the last `Telemetry`
        // drops the sender, closes the channel and ends the task.
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(256);
            while rx.recv_many(&mut batch, 256).await > 0 {
                let Some(inner) = weak.upgrade() else { break };
                inner.consume(&mut batch);
            }
        });
    }

    /// Applies queued records now (tests and shutdown use this to see every record).
    pub fn flush(&self) {
        let mut batch = Vec::new();
        if let Ok(mut g) = self.inner.rx.lock()
            && let Some(rx) = g.as_mut()
        {
            while let Ok(r) = rx.try_recv() {
                batch.push(r);
            }
        }
        self.inner.consume(&mut batch);
    }

    /// Rates and latency percentiles over the last 1 and 5 minutes.
    pub fn report(&self) -> Option<PerformanceReport> {
        let now = self.inner.clock.now();
        self.inner.windows.lock().ok().map(|w| w.report(now))
    }

    /// The Prometheus text exposition of every family.
    pub fn encode_prometheus(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.inner.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Inner {
    fn consume(&self, batch: &mut Vec<RequestRecord>) {
        if batch.is_empty() {
            return;
        }
        let now = self.clock.now();
        let mut windows = self.windows.lock().ok();
        for rec in batch.drain(..) {
            let pool = rec.pool.as_deref().unwrap_or("-");
            self.metrics
                .requests
                .get_or_create(&RequestLabels {
                    route: rec.route.to_string(),
                    pool: pool.to_string(),
                    status: rec.status.to_string(),
                })
                .inc();
            self.metrics
                .request_duration
                .get_or_create(&RouteLabels {
                    route: rec.route.to_string(),
                })
                .observe(rec.duration.as_secs_f64());
            if let (Some(up), Some(ep)) = (rec.upstream_duration, rec.endpoint.as_deref()) {
                self.metrics
                    .upstream_duration
                    .get_or_create(&EndpointLabels {
                        pool: pool.to_string(),
                        endpoint: ep.to_string(),
                    })
                    .observe(up.as_secs_f64());
            }
            if let Some(kind) = rec.error {
                self.metrics
                    .gateway_errors
                    .get_or_create(&ErrorLabels {
                        route: rec.route.to_string(),
                        kind: kind.as_str().into(),
                    })
                    .inc();
            }
            if let Some(w) = windows.as_mut() {
                w.record(now, &rec.route, rec.duration, rec.is_error());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ErrorKind;
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

    #[tokio::test]
    async fn consumer_task_drains_the_queue() {
        let t = Telemetry::new(flowgate_clock::SystemClock::shared());
        t.spawn_consumer();
        for _ in 0..1000 {
            t.record(rec("a", 200, None));
        }
        for _ in 0..100 {
            if t.report().unwrap().overall["1m"].requests == 1000 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("consumer did not drain the queue");
    }
}
