//! The history's writer: a control-plane task that samples the metrics history at every
//! second of the wall clock (points are written as each 10 s, minute and hour ends) and
//! evaluates the alert rules right after, handing each minute's points to the anomaly
//! detectors ([`crate::anomalies`]); and the probe of what the gateway holds —
//! requests in flight, each pool's usable endpoints, whether Redis answers, the alert
//! notifiers' failures, the anomalies open.

use std::sync::{Arc, Weak};
use std::time::Duration;

use flowgate_clock::SharedClock;
use flowgate_telemetry::history::Sample;
use tokio::sync::watch;

use crate::gateway::Gateway;

/// What the gateway holds: in flight, usable endpoints per pool, Redis. Holds the gateway
/// weakly (the history must not keep it alive).
fn gateway_probe(gw: Weak<Gateway>) -> flowgate_telemetry::history::Probe {
    Box::new(move || {
        let Some(gw) = gw.upgrade() else {
            return Vec::new();
        };
        let mut out = vec![
            (
                "requests_in_flight".to_string(),
                Sample::Gauge(gw.telemetry().metrics().in_flight.get() as f64),
            ),
            (
                "memory_pressure_level".to_string(),
                Sample::Gauge(f64::from(gw.memory().level() as u8)),
            ),
            (
                "anomalies_open".to_string(),
                Sample::Gauge(gw.anomalies().with(|w| w.open().len()).unwrap_or(0) as f64),
            ),
        ];
        let rt = gw.runtime();
        for u in rt.upstreams.iter() {
            let usable = u.usable_endpoints();
            let label = flowgate_telemetry::history::label("pool", &u.name);
            out.push((
                format!("upstream_usable_endpoints{label}"),
                Sample::Gauge(usable as f64),
            ));
            out.push((
                format!("upstream_usable_ratio{label}"),
                Sample::Ratio(usable as f64, u.endpoints().len() as f64),
            ));
        }
        // Failures since the last second, per second, by what failed.
        let mut failures = |base: &str, label: &str, counts: Vec<(String, u64)>| {
            for (name, failed) in counts {
                out.push((
                    format!("{base}{}", flowgate_telemetry::history::label(label, &name)),
                    Sample::Amount {
                        amount: failed as f64,
                        per: 1.0,
                    },
                ));
            }
        };
        let notifiers: Vec<(String, u64)> = gw
            .alerting()
            .notifiers()
            .take_failures()
            .into_iter()
            .map(|(n, f)| (n.to_string(), f))
            .collect();
        failures("notification_failures", "notifier", notifiers);
        failures(
            "automation_failures",
            "rule",
            gw.automation().take_failures(),
        );
        failures("scaling_failures", "pool", gw.scaling().take_failures());
        if let Some(r) = gw.cache().and_then(|c| c.stats().redis) {
            out.push((
                "redis_up{link=\"cache\"}".to_string(),
                Sample::Gauge(if r.open { 0.0 } else { 1.0 }),
            ));
        }
        out
    })
}

/// One turn of the control plane: the history's second ending at `end` written (with
/// the 10 s, minutes and hours that end with it), the minutes handed to the anomaly
/// detectors, the alert rules evaluated.
pub(crate) struct Writer {
    history: flowgate_telemetry::history::History,
    telemetry: flowgate_telemetry::Telemetry,
    gw: Weak<Gateway>,
    detectors: tokio::sync::mpsc::Sender<crate::anomalies::Minute>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// The turn for the second ending at `end` (Unix seconds); false once the gateway is
    /// gone.
    pub(crate) async fn step(&self, end: u64) -> bool {
        self.telemetry.flush();
        let h = self.history.clone();
        let written = tokio::task::spawn_blocking(move || h.tick(end)).await;
        match written {
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the metrics history could not be written")
            }
            Err(e) => tracing::warn!(error = %e, "the metrics history's writer failed"),
            Ok(Ok(w)) => crate::anomalies::send(&self.detectors, w.minutes),
        }
        let Some(gw) = self.gw.upgrade() else {
            return false;
        };
        gw.alerting().evaluate(
            &self.history,
            &gw.spending().budgets().load(),
            gw.anomalies(),
            end,
        );
        true
    }
}

/// The history's writer, when there is a history: on a clock its owner drives, it waits
/// for [`Writer::step`] to be called; otherwise it turns at every second of the wall
/// clock until `stopped`.
pub(crate) fn start(
    gw: &Arc<Gateway>,
    clock: SharedClock,
    mut stopped: watch::Receiver<bool>,
) -> Option<Arc<Writer>> {
    let history = gw.history()?.clone();
    history.add_probe(crate::history::process_probe());
    history.add_probe(gateway_probe(Arc::downgrade(gw)));
    let writer = Arc::new(Writer {
        telemetry: gw.telemetry().clone(),
        gw: Arc::downgrade(gw),
        // The detectors' thread ends when the writer is dropped.
        detectors: crate::anomaly_thread::spawn(gw, history.clone()),
        history,
    });
    if clock.driven() {
        return Some(writer);
    }
    let turning = writer.clone();
    tokio::spawn(async move {
        loop {
            let now_ms = clock.unix_millis();
            let next = (now_ms / 1000 + 1) * 1000;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(next - now_ms)) => {}
                _ = stopped.wait_for(|s| *s) => break,
            }
            if !turning.step(next / 1000).await {
                break;
            }
        }
    });
    Some(writer)
}
