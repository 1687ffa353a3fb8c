//! Anomaly detection on the metrics history, in the gateway: every minute the history's
//! writer hands the minute points that ended to a thread of their own, which scores each
//! watched series' point with its detector ([`flowgate_insight::anomaly::watch::Watch`])
//! and opens, follows and closes anomalies. The series watched are `[anomalies] series`
//! and those the alert rules of kind `anomaly` name. A series seen for the first time
//! has its detector learn the stored minutes of the eight days before (so that a restart
//! does not start from nothing), off the lock the alert rules and the API read through.
//!
//! What reads it: the alert rules (`kind = "anomaly"`), the health score (open
//! anomalies), `GET /api/v1/anomalies`, and the history's own `anomalies_open` series.
//! The thread itself, which reads the gateway's settings, is in `anomaly_thread.rs`.

use std::sync::{Arc, Mutex};

use flowgate_config::AnomaliesConfig;
use flowgate_insight::anomaly::Detector;
use flowgate_insight::anomaly::watch::{Anomaly, Watch};
use flowgate_telemetry::history::{History, Point, Resolution};
use tokio::sync::mpsc;

/// What a detector learns of a series' past when first seen.
const LEARN_SECS: u64 = 8 * 86_400;

/// One minute's points, by stored series name.
pub(crate) type Minute = Vec<(String, Point)>;

/// The detectors and their anomalies (see the module's documentation). Cheap to share.
#[derive(Debug, Clone)]
pub(crate) struct Anomalies {
    watch: Arc<Mutex<Watch>>,
}

impl Anomalies {
    pub(crate) fn new(config: &AnomaliesConfig) -> Anomalies {
        Anomalies {
            watch: Arc::new(Mutex::new(Watch::new(config.clone()))),
        }
    }

    /// Changes the watch under its lock.
    pub(crate) fn with_mut<T>(&self, f: impl FnOnce(&mut Watch) -> T) -> Option<T> {
        self.watch.lock().ok().map(|mut w| f(&mut w))
    }

    /// Reads the watch under its lock.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&Watch) -> T) -> Option<T> {
        self.watch.lock().ok().map(|w| f(&w))
    }

    /// The open anomaly scoring highest on a series matching `pattern` with at least
    /// `min_score`: its score and summary (what an alert rule reads).
    pub(crate) fn worst_open(
        &self,
        pattern: Option<&str>,
        min_score: f64,
    ) -> Option<(f64, String)> {
        self.with(|w| {
            w.worst_open(pattern, min_score)
                .map(|a| (a.score, a.summary()))
        })
        .flatten()
    }

    /// The open anomalies, the highest score first.
    pub(crate) fn open(&self) -> Vec<Anomaly> {
        self.with(|w| w.open().into_iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Scores one minute's points: series seen for the first time learn their past first.
pub(crate) fn score(anomalies: &Anomalies, history: &History, minute: &Minute, end: u64) {
    let new: Vec<&(String, Point)> = anomalies
        .with(|w| {
            minute
                .iter()
                .filter(|(name, _)| w.wants(name) && !w.tracks(name))
                .collect()
        })
        .unwrap_or_default();
    for (name, p) in new {
        let (detector, last) = learn(history, name, p.t);
        if let Ok(mut w) = anomalies.watch.lock() {
            w.adopt(name, detector, last);
        }
    }
    if let Ok(mut w) = anomalies.watch.lock() {
        for (name, p) in minute {
            w.observe(name, p.t, p.value);
        }
        w.close_quiet(end);
    }
}

/// A detector that has learned `series`' stored minutes of the [`LEARN_SECS`] before
/// `before`, and the last one's time.
fn learn(history: &History, series: &str, before: u64) -> (Detector, Option<u64>) {
    let mut d = Detector::new();
    let points = history
        .read(
            series,
            Resolution::Minute,
            before.saturating_sub(LEARN_SECS),
            before,
        )
        .unwrap_or_default();
    let mut last = None;
    for p in points {
        d.observe(i64::try_from(p.t).unwrap_or(i64::MAX), p.value);
        last = Some(p.t);
    }
    (d, last)
}

/// Hands `minute` to the detectors' thread; a minute it has no room for is dropped.
pub(crate) fn send(tx: &mpsc::Sender<Minute>, minute: Minute) {
    if minute.is_empty() {
        return;
    }
    if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(minute) {
        tracing::warn!("the anomaly detectors are behind: a minute of points was not scored");
    }
}

#[cfg(test)]
mod tests {
    use flowgate_telemetry::history::{HistorySettings, Sample};

    use super::*;

    const T0: u64 = 1_767_571_200;
    const RPS: &str = "requests_per_second{route=\"chat\"}";

    /// A day of a daily cycle, kept in a history in memory.
    fn history_of_a_day() -> History {
        let (h, _) = History::open(HistorySettings::default(), T0).unwrap();
        let mut minute = 0u64;
        h.add_probe(Box::new(move || {
            minute += 1;
            let hour = (minute % 1440) as f64 / 60.0;
            let v = 100.0 + 50.0 * (hour / 24.0 * std::f64::consts::TAU).sin();
            vec![(RPS.to_string(), Sample::Gauge(v))]
        }));
        for m in 1..=1440 {
            h.tick(T0 + m * 60).unwrap();
        }
        h
    }

    #[test]
    fn a_series_first_seen_learns_its_stored_past_and_then_finds_a_burst() {
        let h = history_of_a_day();
        let a = Anomalies::new(&AnomaliesConfig::default());
        let end = T0 + 1441 * 60;
        let normal = |t: u64| {
            let hour = ((t - T0) / 60 % 1440) as f64 / 60.0;
            100.0 + 50.0 * (hour / 24.0 * std::f64::consts::TAU).sin()
        };
        let point = |t: u64, value: f64| Point {
            t,
            value,
            min: value,
            max: value,
        };
        let t = end - 60;
        score(
            &a,
            &h,
            &vec![(RPS.to_string(), point(t, normal(t + 60)))],
            end,
        );
        assert_eq!(a.with(|w| w.tracked()), Some(1));
        // It learned the day: its next normal point is expected, and it is no anomaly,
        // even though the detector has seen only one point live.
        let v = a.with(|w| w.between(0, u64::MAX).len()).unwrap();
        assert_eq!(v, 0);
        assert!(a.open().is_empty());
        score(
            &a,
            &h,
            &vec![(RPS.to_string(), point(end, 1000.0))],
            end + 60,
        );
        let open = a.open();
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(open[0].series, RPS);
        assert!(a.worst_open(Some("requests_per_second*"), 0.9).is_some());
        // Not watched: a series outside the patterns.
        score(
            &a,
            &h,
            &vec![("process_threads".to_string(), point(end, 5.0))],
            end + 60,
        );
        assert_eq!(a.with(|w| w.tracked()), Some(1));
    }
}
