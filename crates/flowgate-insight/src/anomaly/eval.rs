//! Labelled evaluation sets for the detector, and a scorer that rewards early detection
//! inside a window and penalizes false alarms (in the manner of the Numenta benchmark).
//!
//! **The sets** ([`suite`]): three kinds of series, each simulated with its own noise and
//! seasonality, and one incident injected per series, of each [`Kind`]:
//! - `traffic-5m`: requests at 5-minute steps, four weeks: a daily cycle with a morning and
//!   an afternoon peak, a weekend at 60%, noise 5% of the level;
//! - `machine-1m`: a machine metric at 1-minute steps, ten days: a level with a mild daily
//!   cycle and autocorrelated noise (AR(1), φ = 0.8);
//! - `business-1h`: hourly business counts, four months: daily and weekly cycles and a
//!   slow growth, noise 4%.
//!
//! Incidents, in units of the noise's deviation σ at that point: a spike (+7σ, one point),
//! a dip (−7σ), a level shift up or down (±5σ, to the end), a drift (reaching 6σ over
//! three hours, then held), more noise (×4 for three hours), a flatline (the value stuck
//! for three hours) and a missing peak (three hours without the daily cycle). Clean series
//! (no incident) of each kind measure false alarms alone.
//!
//! **The scorer** ([`evaluate`]): an alarm is a point scored at or above the threshold.
//! An incident's window starts at its first point and lasts its duration (at least twelve
//! points and two hours). The first alarm in the window earns `1 − delay/(2·window)` (1 at
//! once, ½ at its end); a window without one costs 1; every alarm outside the windows
//! costs [`FALSE_ALARM_COST`], each point of a run (as the Numenta benchmark counts them),
//! except in the first 15% of a series (its probation, as there). The normalized score is
//! 100 for a perfect detector and 0 for one that never alarms.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// What an alarm outside every window costs (a missed incident costs 1).
pub const FALSE_ALARM_COST: f64 = 0.11;

/// 2026-01-05, a Monday.
const T0: i64 = 1_767_571_200;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// The kinds of incident injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Spike,
    Dip,
    ShiftUp,
    ShiftDown,
    Drift,
    Variance,
    Flatline,
    MissingPeak,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Spike,
        Kind::Dip,
        Kind::ShiftUp,
        Kind::ShiftDown,
        Kind::Drift,
        Kind::Variance,
        Kind::Flatline,
        Kind::MissingPeak,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Spike => "spike",
            Kind::Dip => "dip",
            Kind::ShiftUp => "shift up",
            Kind::ShiftDown => "shift down",
            Kind::Drift => "drift",
            Kind::Variance => "variance",
            Kind::Flatline => "flatline",
            Kind::MissingPeak => "missing peak",
        }
    }
}

/// The simulated series' families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Traffic5m,
    Machine1m,
    Business1h,
}

impl Family {
    pub const ALL: [Family; 3] = [Family::Traffic5m, Family::Machine1m, Family::Business1h];

    pub fn name(self) -> &'static str {
        match self {
            Family::Traffic5m => "traffic-5m",
            Family::Machine1m => "machine-1m",
            Family::Business1h => "business-1h",
        }
    }

    fn step(self) -> i64 {
        match self {
            Family::Traffic5m => 300,
            Family::Machine1m => 60,
            Family::Business1h => HOUR,
        }
    }

    fn days(self) -> i64 {
        match self {
            Family::Traffic5m => 28,
            Family::Machine1m => 10,
            Family::Business1h => 120,
        }
    }

    /// Days learned before an incident may start.
    fn learn_days(self) -> i64 {
        match self {
            Family::Traffic5m => 15,
            Family::Machine1m => 4,
            Family::Business1h => 36,
        }
    }

    /// The expected value at `t`, without noise, and with its daily cycle flattened
    /// (what a missing peak leaves).
    fn mean(self, t: i64, flat: bool) -> f64 {
        let days = (t - T0) as f64 / DAY as f64;
        let hour = (t.rem_euclid(DAY)) as f64 / HOUR as f64;
        let weekend = ((t - T0).div_euclid(DAY) % 7) >= 5;
        let bump = |at: f64, width: f64| (-((hour - at) / width).powi(2)).exp();
        match self {
            Family::Traffic5m => {
                let daily = if flat {
                    0.2
                } else {
                    0.2 + 0.8 * bump(10.0, 2.5) + 0.7 * bump(15.0, 3.0)
                };
                let week = if weekend { 0.6 } else { 1.0 };
                200.0 * daily.min(1.2) * week + 20.0
            }
            Family::Machine1m => {
                let daily = if flat {
                    0.0
                } else {
                    5.0 * (hour / 24.0 * std::f64::consts::TAU).sin()
                };
                40.0 + daily
            }
            Family::Business1h => {
                let daily = if flat { 0.3 } else { 0.3 + bump(13.0, 4.0) };
                let week = if weekend { 0.5 } else { 1.0 };
                1000.0 * (1.0 + 0.002 * days) * daily * week
            }
        }
    }

    /// The noise's deviation at a mean of `m`.
    fn sigma(self, m: f64) -> f64 {
        match self {
            Family::Traffic5m => 0.05 * m + 1.0,
            // The AR(1) noise's deviation: innovations of 2 with φ = 0.8.
            Family::Machine1m => 2.0 / (1.0_f64 - 0.64).sqrt(),
            Family::Business1h => 0.04 * m + 2.0,
        }
    }
}

/// One injected incident: its kind, its first point and its window (in points).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incident {
    pub kind: Kind,
    pub start: usize,
    pub window: usize,
}

/// One labelled series.
#[derive(Debug, Clone)]
pub struct Labelled {
    pub family: Family,
    pub name: String,
    pub points: Vec<(i64, f64)>,
    /// None on a clean series.
    pub incident: Option<Incident>,
}

/// Approximately standard normal: the sum of twelve uniforms, less six.
pub(crate) fn normal(rng: &mut SmallRng) -> f64 {
    (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0
}

/// One series of `family` with `kind` injected (or clean), from `seed`.
pub fn series(family: Family, kind: Option<Kind>, seed: u64) -> Labelled {
    let mut rng = SmallRng::seed_from_u64(seed);
    let step = family.step();
    let n = (family.days() * DAY / step) as usize;
    let per_hour = (HOUR / step).max(1) as usize;
    // Three hours, at least twelve points.
    let duration = (3 * per_hour).max(12);
    let window = duration.max(2 * per_hour).max(12);
    let learned = (family.learn_days() * DAY / step) as usize;
    let start = rng.random_range(learned..n - 2 * window);
    let mut ar = 0.0;
    let mut points = Vec::with_capacity(n);
    let mut stuck = 0.0;
    for i in 0..n {
        let t = T0 + i as i64 * step;
        let during = i >= start && i < start + duration;
        let after = i >= start;
        let flat = kind == Some(Kind::MissingPeak) && during;
        let m = family.mean(t, flat);
        let s = family.sigma(family.mean(t, false));
        let noise = match family {
            Family::Machine1m => {
                ar = 0.8 * ar + 2.0 * normal(&mut rng);
                ar
            }
            _ => s * normal(&mut rng),
        };
        let mut v = m + noise;
        match kind {
            Some(Kind::Spike) if i == start => v += 7.0 * s,
            Some(Kind::Dip) if i == start => v -= 7.0 * s,
            Some(Kind::ShiftUp) if after => v += 5.0 * s,
            Some(Kind::ShiftDown) if after => v -= 5.0 * s,
            Some(Kind::Drift) if after => {
                v += 6.0 * s * ((i - start) as f64 / duration as f64).min(1.0);
            }
            Some(Kind::Variance) if during => v += 3.0 * noise,
            Some(Kind::Flatline) if i == start => stuck = v,
            Some(Kind::Flatline) if during => v = stuck,
            _ => {}
        }
        points.push((t, v));
    }
    let name = format!(
        "{}/{}/{seed}",
        family.name(),
        kind.map_or("clean", Kind::name)
    );
    Labelled {
        family,
        name,
        points,
        incident: kind.map(|kind| Incident {
            kind,
            start,
            window,
        }),
    }
}

/// Every family with every kind, and clean, for each seed in `seeds`.
pub fn suite(seeds: std::ops::RangeInclusive<u64>) -> Vec<Labelled> {
    let mut out = Vec::new();
    for seed in seeds {
        for family in Family::ALL {
            out.push(series(family, None, seed));
            for kind in Kind::ALL {
                out.push(series(family, Some(kind), seed * 100 + kind as u64));
            }
        }
    }
    out
}

/// How one series was scored at one threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// The delay (points) to the first alarm in the incident's window, if one came.
    pub delay: Option<usize>,
    /// Alarms outside the window (after the probation).
    pub false_alarms: usize,
    /// Reward less costs (see the module's documentation).
    pub raw: f64,
}

/// Scores one series' anomaly scores at `threshold`.
pub fn outcome(series: &Labelled, scores: &[f64], threshold: f64) -> Outcome {
    let inside = |i: usize| {
        series
            .incident
            .is_some_and(|w| i >= w.start && i < w.start + w.window)
    };
    let mut delay = None;
    let mut false_alarms = 0;
    let probation = series.points.len() * 15 / 100;
    for (i, s) in scores.iter().enumerate() {
        let alarm = *s >= threshold;
        if alarm && inside(i) {
            if let Some(w) = series.incident
                && delay.is_none()
            {
                delay = Some(i - w.start);
            }
        } else if alarm && i >= probation {
            false_alarms += 1;
        }
    }
    let reward = match (series.incident, delay) {
        (Some(w), Some(d)) => 1.0 - d as f64 / (2 * w.window) as f64,
        (Some(_), None) => -1.0,
        (None, _) => 0.0,
    };
    Outcome {
        delay,
        false_alarms,
        raw: reward - FALSE_ALARM_COST * false_alarms as f64,
    }
}

/// The suite's results at one threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub threshold: f64,
    /// 0 (never alarms) to 100 (every incident at once, no false alarm); can be negative.
    pub normalized: f64,
    pub found: usize,
    pub incidents: usize,
    pub false_alarms: usize,
    /// Points scored (over every series).
    pub points: usize,
    /// Per kind: (kind, found, incidents, median delay in points).
    pub kinds: Vec<(Kind, usize, usize, Option<usize>)>,
    /// Per family: (family, found, incidents, false alarms, points).
    pub families: Vec<(Family, usize, usize, usize, usize)>,
}

/// Scores `scores` (one vector per series of `suite`, in order) at `threshold`.
pub fn evaluate(suite: &[Labelled], scores: &[Vec<f64>], threshold: f64) -> Report {
    let outcomes: Vec<Outcome> = suite
        .iter()
        .zip(scores)
        .map(|(s, sc)| outcome(s, sc, threshold))
        .collect();
    let incidents = suite.iter().filter(|s| s.incident.is_some()).count();
    let raw: f64 = outcomes.iter().map(|o| o.raw).sum();
    // Never alarming scores −incidents; perfect scores +incidents.
    let null = -(incidents as f64);
    let normalized = if incidents == 0 {
        0.0
    } else {
        100.0 * (raw - null) / (incidents as f64 - null)
    };
    let kinds = Kind::ALL
        .iter()
        .map(|k| {
            let mut delays: Vec<usize> = Vec::new();
            let mut total = 0;
            for (s, o) in suite.iter().zip(&outcomes) {
                if s.incident.is_some_and(|w| w.kind == *k) {
                    total += 1;
                    delays.extend(o.delay);
                }
            }
            delays.sort_unstable();
            let median = delays.get(delays.len() / 2).copied();
            (*k, delays.len(), total, median)
        })
        .collect();
    let families = Family::ALL
        .iter()
        .map(|f| {
            let (mut found, mut total, mut fa, mut pts) = (0, 0, 0, 0);
            for (s, o) in suite.iter().zip(&outcomes) {
                if s.family == *f {
                    total += usize::from(s.incident.is_some());
                    found += usize::from(o.delay.is_some());
                    fa += o.false_alarms;
                    pts += s.points.len();
                }
            }
            (*f, found, total, fa, pts)
        })
        .collect();
    Report {
        threshold,
        normalized,
        found: outcomes.iter().filter(|o| o.delay.is_some()).count(),
        incidents,
        false_alarms: outcomes.iter().map(|o| o.false_alarms).sum(),
        points: suite.iter().map(|s| s.points.len()).sum(),
        kinds,
        families,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scorer_rewards_early_and_charges_false_alarms() {
        let s = series(Family::Business1h, Some(Kind::Spike), 1);
        let w = s.incident.unwrap();
        let n = s.points.len();
        let mut sc = vec![0.0; n];
        assert_eq!(outcome(&s, &sc, 0.5).raw, -1.0);
        sc[w.start] = 0.9;
        assert_eq!(outcome(&s, &sc, 0.5).raw, 1.0);
        assert_eq!(outcome(&s, &sc, 0.95).delay, None);
        sc[w.start] = 0.0;
        sc[w.start + w.window - 1] = 0.9;
        let late = outcome(&s, &sc, 0.5).raw;
        assert!(late > 0.5 && late < 0.6, "{late}");
        // Alarms outside the window: each point, after the probation.
        sc[10] = 0.9;
        let late_start = s.points.len() / 5;
        sc[late_start] = 0.9;
        sc[late_start + 1] = 0.9;
        let o = outcome(&s, &sc, 0.5);
        assert_eq!(o.false_alarms, 2);
        assert!((o.raw - (late - 0.22)).abs() < 1e-9);
        let r = evaluate(std::slice::from_ref(&s), &[vec![1.0; n]], 0.5);
        assert_eq!(r.found, 1);
        assert_eq!(r.false_alarms, n - n * 15 / 100 - w.window);
    }

    #[test]
    fn series_are_reproducible_and_labelled_after_learning() {
        for f in Family::ALL {
            let a = series(f, Some(Kind::Flatline), 3);
            assert_eq!(a.points, series(f, Some(Kind::Flatline), 3).points);
            let w = a.incident.unwrap();
            assert!(a.points[w.start].0 >= T0 + f.learn_days() * DAY);
            assert!(w.start + w.window < a.points.len());
            // A flatline holds one value.
            assert_eq!(a.points[w.start + 1].1, a.points[w.start + 5].1);
        }
        assert_eq!(suite(1..=1).len(), 27);
    }
}
