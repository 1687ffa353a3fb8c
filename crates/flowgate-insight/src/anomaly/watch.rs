//! Many series watched at once: a [`Detector`] per series, and the anomalies they find,
//! each opened when its series scores at or past the threshold, followed while it scores
//! so (its peak kept: the score, the value, what was expected and the band), and closed
//! once the series has scored under the threshold for the `quiet` time. The last
//! [`KEPT`] anomalies are kept, open or closed, for the API and the reports.
//!
//! Nothing here reads a clock: times are the points' (Unix seconds), and [`Watch::close_quiet`]
//! is told the time.

use std::collections::{HashMap, VecDeque};

use flowgate_config::AnomaliesConfig;
use serde::Serialize;

use super::{Detector, Verdict};

/// Anomalies kept, open or closed.
pub const KEPT: usize = 1000;

/// One anomaly of one series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    pub id: u64,
    pub series: String,
    /// Its first point's time, and the last point at or past the threshold (Unix seconds).
    pub started: u64,
    pub last: u64,
    /// When it closed; `None` while open.
    pub ended: Option<u64>,
    /// The highest score it reached (of equal scores, the point furthest out), and at that
    /// point: the value, what was expected and
    /// the band around it, and `up` or `down`.
    pub score: f64,
    pub value: f64,
    pub expected: f64,
    pub lower: f64,
    pub upper: f64,
    pub direction: &'static str,
    /// Points at or past the threshold.
    pub points: u64,
}

impl Anomaly {
    pub fn is_open(&self) -> bool {
        self.ended.is_none()
    }

    /// One line: what, how far from what was expected, how sure.
    pub fn summary(&self) -> String {
        let how = if self.expected.abs() > 1e-9 {
            format!("{:.2}x", self.value / self.expected)
        } else {
            format!("{:+.3}", self.value - self.expected)
        };
        format!(
            "{} went {} to {} ({how} the expected {}, band {}..{}; score {:.2})",
            self.series,
            self.direction,
            short(self.value),
            short(self.expected),
            short(self.lower),
            short(self.upper),
            self.score
        )
    }
}

fn short(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

struct Tracked {
    detector: Detector,
    /// The last point's time: a point at or before it is not scored again.
    last_t: Option<u64>,
    /// The index (id) of its open anomaly, if any.
    open: Option<u64>,
}

/// The series watched and their anomalies (see the module's documentation).
pub struct Watch {
    settings: AnomaliesConfig,
    series: HashMap<String, Tracked>,
    anomalies: VecDeque<Anomaly>,
    next_id: u64,
    /// Series not watched because `max_series` were.
    refused: u64,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("series", &self.series.len())
            .field("anomalies", &self.anomalies.len())
            .finish_non_exhaustive()
    }
}

impl Watch {
    pub fn new(settings: AnomaliesConfig) -> Watch {
        Watch {
            settings,
            series: HashMap::new(),
            anomalies: VecDeque::new(),
            next_id: 1,
            refused: 0,
        }
    }

    /// New settings: detectors of series still watched are kept, others dropped (their
    /// open anomalies closed at `now`).
    pub fn set(&mut self, settings: AnomaliesConfig, now: u64) {
        self.settings = settings;
        let gone: Vec<String> = self
            .series
            .keys()
            .filter(|n| !self.settings.watches(n))
            .cloned()
            .collect();
        for name in gone {
            if let Some(t) = self.series.remove(&name)
                && let Some(id) = t.open
            {
                self.close(id, now);
            }
        }
    }

    pub fn settings(&self) -> &AnomaliesConfig {
        &self.settings
    }

    /// Whether `series` is watched (or would be, room allowing).
    pub fn wants(&self, series: &str) -> bool {
        self.settings.enabled && self.settings.watches(series)
    }

    /// Whether `series` has a detector already.
    pub fn tracks(&self, series: &str) -> bool {
        self.series.contains_key(series)
    }

    /// Series with a detector.
    pub fn tracked(&self) -> usize {
        self.series.len()
    }

    /// Series refused for want of room.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// The detectors' memory, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.series
            .iter()
            .map(|(n, t)| n.len() + t.detector.memory_bytes())
            .sum()
    }

    /// Adopts a detector for `series` that has already learned its past (up to `last_t`),
    /// unless one is there or there is no room. Whether it was taken.
    pub fn adopt(&mut self, series: &str, detector: Detector, last_t: Option<u64>) -> bool {
        if self.series.contains_key(series) {
            return false;
        }
        if self.series.len() >= self.settings.max_series {
            self.refused += 1;
            return false;
        }
        self.series.insert(
            series.to_string(),
            Tracked {
                detector,
                last_t,
                open: None,
            },
        );
        true
    }

    /// Scores `series`' point (`t`, `value`) and opens, follows or closes its anomaly. A
    /// series not watched, or a point at or before its last one, is not scored (`None`).
    pub fn observe(&mut self, series: &str, t: u64, value: f64) -> Option<Verdict> {
        if !self.wants(series) {
            return None;
        }
        if !self.series.contains_key(series) && !self.adopt(series, Detector::new(), None) {
            return None;
        }
        let threshold = self.settings.threshold;
        let quiet = self.settings.quiet.as_secs();
        let tracked = self.series.get_mut(series)?;
        if tracked.last_t.is_some_and(|l| t <= l) {
            return None;
        }
        tracked.last_t = Some(t);
        let v = tracked
            .detector
            .observe(i64::try_from(t).unwrap_or(i64::MAX), value);
        let open = tracked.open;
        if v.score >= threshold {
            match open.and_then(|id| self.anomalies.iter_mut().find(|a| a.id == id)) {
                Some(a) => {
                    a.last = t;
                    a.points += 1;
                    // Scores saturate: of two at 1, the one further out.
                    let further = |x: f64, e: f64, up: f64| (x - e).abs() / (up - e).max(1e-12);
                    if v.score > a.score
                        || (v.score == a.score
                            && further(value, v.expected, v.upper)
                                > further(a.value, a.expected, a.upper))
                    {
                        peak(a, &v, value);
                    }
                }
                None => {
                    let id = self.next_id;
                    self.next_id += 1;
                    let mut a = Anomaly {
                        id,
                        series: series.to_string(),
                        started: t,
                        last: t,
                        ended: None,
                        score: 0.0,
                        value,
                        expected: v.expected,
                        lower: v.lower,
                        upper: v.upper,
                        direction: "up",
                        points: 1,
                    };
                    peak(&mut a, &v, value);
                    self.anomalies.push_back(a);
                    if self.anomalies.len() > KEPT {
                        self.anomalies.pop_front();
                    }
                    if let Some(tr) = self.series.get_mut(series) {
                        tr.open = Some(id);
                    }
                }
            }
        } else if let Some(id) = open
            && self
                .anomalies
                .iter()
                .find(|a| a.id == id)
                .is_none_or(|a| t >= a.last + quiet)
        {
            self.close(id, t);
            if let Some(tr) = self.series.get_mut(series) {
                tr.open = None;
            }
        }
        Some(v)
    }

    /// Closes the open anomalies whose series have not scored past the threshold since
    /// `now − quiet` (a series that stopped reporting closes too).
    pub fn close_quiet(&mut self, now: u64) {
        let quiet = self.settings.quiet.as_secs();
        let stale: Vec<u64> = self
            .anomalies
            .iter()
            .filter(|a| a.is_open() && now >= a.last + quiet)
            .map(|a| a.id)
            .collect();
        for id in stale {
            self.close(id, now);
        }
    }

    fn close(&mut self, id: u64, at: u64) {
        if let Some(a) = self.anomalies.iter_mut().find(|a| a.id == id) {
            a.ended.get_or_insert(at.max(a.last));
            if let Some(t) = self.series.get_mut(&a.series)
                && t.open == Some(id)
            {
                t.open = None;
            }
        }
    }

    /// The open anomalies, the highest score first.
    pub fn open(&self) -> Vec<&Anomaly> {
        let mut v: Vec<&Anomaly> = self.anomalies.iter().filter(|a| a.is_open()).collect();
        v.sort_by(|a, b| b.score.total_cmp(&a.score));
        v
    }

    /// The anomalies kept that overlap [`from`, `to`), newest first.
    pub fn between(&self, from: u64, to: u64) -> Vec<&Anomaly> {
        self.anomalies
            .iter()
            .rev()
            .filter(|a| a.started < to && a.ended.is_none_or(|e| e >= from))
            .collect()
    }

    /// The open anomaly scoring highest among those on series matching `pattern` (any
    /// when `None`) with a score of at least `min_score`.
    pub fn worst_open(&self, pattern: Option<&str>, min_score: f64) -> Option<&Anomaly> {
        self.open().into_iter().find(|a| {
            a.score >= min_score
                && pattern.is_none_or(|p| flowgate_config::series_matches(p, &a.series))
        })
    }
}

fn peak(a: &mut Anomaly, v: &Verdict, value: f64) {
    a.score = v.score;
    a.value = value;
    a.expected = v.expected;
    a.lower = v.lower;
    a.upper = v.upper;
    a.direction = if v.direction < 0 { "down" } else { "up" };
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const T0: u64 = 1_767_571_200;

    fn settings() -> AnomaliesConfig {
        AnomaliesConfig {
            series: vec!["requests_per_second*".into()],
            quiet: Duration::from_secs(600),
            max_series: 2,
            ..AnomaliesConfig::default()
        }
    }

    /// A day of a steady series with a little noise (deterministic).
    fn steady(w: &mut Watch, name: &str, from: u64, minutes: u64) {
        for i in 0..minutes {
            let noise = ((i * 7919) % 13) as f64 / 13.0 - 0.5;
            w.observe(name, from + i * 60, 100.0 + noise);
        }
    }

    #[test]
    fn an_anomaly_opens_follows_its_peak_and_closes_when_quiet() {
        let mut w = Watch::new(settings());
        let rps = "requests_per_second{route=\"chat\"}";
        steady(&mut w, rps, T0, 1440);
        assert!(w.open().is_empty(), "{:?}", w.open());
        let t = T0 + 1440 * 60;
        // Three minutes at five times the rate, the middle one highest.
        for (i, v) in [400.0, 600.0, 500.0].into_iter().enumerate() {
            w.observe(rps, t + i as u64 * 60, v);
        }
        let open = w.open();
        assert_eq!(open.len(), 1);
        let a = open[0].clone();
        assert_eq!((a.started, a.value, a.direction), (t, 600.0, "up"));
        assert!(a.score >= 0.9 && a.expected < 110.0, "{a:?}");
        assert!(a.summary().contains("went up to 600"), "{}", a.summary());
        assert_eq!(w.worst_open(Some("*chat*"), 0.9).map(|a| a.id), Some(a.id));
        assert!(w.worst_open(Some("error_ratio*"), 0.0).is_none());
        // Back to normal: still open until ten quiet minutes have passed.
        steady(&mut w, rps, t + 180, 5);
        assert_eq!(w.open().len(), 1);
        steady(&mut w, rps, t + 480, 10);
        assert!(w.open().is_empty());
        let closed = w.between(t, t + 3600);
        assert_eq!(closed.len(), 1);
        assert!(closed[0].ended.is_some_and(|e| e >= t + 120 + 600));
        // Out-of-order and repeated points are not scored.
        assert!(w.observe(rps, t, 1e9).is_none());
    }

    #[test]
    fn only_watched_series_and_only_so_many() {
        let mut w = Watch::new(settings());
        assert!(w.observe("error_ratio{route=\"chat\"}", T0, 1.0).is_none());
        assert!(
            w.observe("requests_per_second{route=\"a\"}", T0, 1.0)
                .is_some()
        );
        assert!(
            w.observe("requests_per_second{route=\"b\"}", T0, 1.0)
                .is_some()
        );
        assert!(
            w.observe("requests_per_second{route=\"c\"}", T0, 1.0)
                .is_none()
        );
        assert_eq!((w.tracked(), w.refused()), (2, 1));
        assert!(w.memory_bytes() > 0);
        // A series dropped from the settings goes.
        w.set(
            AnomaliesConfig {
                series: vec!["requests_per_second{route=\"a\"}".into()],
                ..settings()
            },
            T0 + 60,
        );
        assert_eq!(w.tracked(), 1);
        let off = AnomaliesConfig {
            enabled: false,
            ..settings()
        };
        w.set(off, T0 + 60);
        assert!(
            w.observe("requests_per_second{route=\"a\"}", T0 + 60, 1.0)
                .is_none()
        );
    }

    #[test]
    fn a_series_that_stops_closes_its_anomaly() {
        let mut w = Watch::new(settings());
        let rps = "requests_per_second{pool=\"llm\"}";
        steady(&mut w, rps, T0, 600);
        let t = T0 + 600 * 60;
        w.observe(rps, t, 10_000.0);
        assert_eq!(w.open().len(), 1);
        w.close_quiet(t + 599);
        assert_eq!(w.open().len(), 1);
        w.close_quiet(t + 600);
        assert!(w.open().is_empty());
        assert_eq!(w.between(0, u64::MAX)[0].ended, Some(t + 600));
    }
}
