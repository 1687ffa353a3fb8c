//! The anomaly detectors' thread: every minute the history's writer hands it the minute
//! points that ended ([`crate::anomalies::send`]); it puts the settings in force
//! (`[anomalies]` and the series the alert rules of kind `anomaly` name) and scores them
//! ([`crate::anomalies::score`]). A blocking thread of its own: a series' first learning
//! reads days of stored minutes.

use std::sync::{Arc, Weak};

use flowgate_config::{AlertKind, AnomaliesConfig};
use flowgate_telemetry::history::History;
use tokio::sync::mpsc;

use crate::anomalies::{Anomalies, Minute};
use crate::gateway::Gateway;

/// Minutes waiting for the thread; past it, a minute is dropped (and said).
const QUEUE: usize = 16;

/// The settings in force: `[anomalies]`, with the series the rules of kind `anomaly` name
/// (a rule on a series is a wish to watch it).
fn settings(gw: &Gateway) -> AnomaliesConfig {
    let mut s = gw.runtime().config.anomalies.clone();
    let named = gw
        .alerting()
        .with(|e| {
            e.rules()
                .iter()
                .filter_map(|r| match &r.kind {
                    AlertKind::Anomaly {
                        series: Some(p), ..
                    } => Some(p.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for p in named {
        if !s.series.contains(&p) {
            s.series.push(p);
        }
    }
    s
}

/// Starts the detectors' thread; what the history's writer sends each minute's points to.
/// It ends when the sender is dropped (the writer stopped).
pub(crate) fn spawn(gw: &Arc<Gateway>, history: History) -> mpsc::Sender<Minute> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let anomalies = gw.anomalies().clone();
    let weak = Arc::downgrade(gw);
    tokio::task::spawn_blocking(move || run(rx, &anomalies, &history, &weak));
    tx
}

fn run(
    mut rx: mpsc::Receiver<Minute>,
    anomalies: &Anomalies,
    history: &History,
    gw: &Weak<Gateway>,
) {
    while let Some(minute) = rx.blocking_recv() {
        let Some(end) = minute.iter().map(|(_, p)| p.t + 60).max() else {
            continue;
        };
        if let Some(gw) = gw.upgrade() {
            let wanted = settings(&gw);
            anomalies.with_mut(|w| {
                if *w.settings() != wanted {
                    w.set(wanted, end);
                }
            });
        }
        crate::anomalies::score(anomalies, history, &minute, end);
    }
}
