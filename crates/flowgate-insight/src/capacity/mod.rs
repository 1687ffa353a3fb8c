//! Capacity planning: when each constrained resource runs out under a scenario of demand,
//! with an interval, and what to change. Nothing here reads a clock or the gateway: the
//! caller gives each resource's limit and its demand's history as hourly peaks (a rate
//! limit is hit by the busiest seconds, not by the hour's mean).
//!
//! **Demand's course** is the trend of its daily peaks: the Theil–Sen slope (the median of
//! the slopes between every two days) over the last four weeks, through their median
//! level; robust to a day of outage or a spike, and not damped as a forecaster's trend is
//! (capacity is about where growth leads). Its interval: the 10th and 90th percentiles of
//! those slopes, widened by the 80th percentile of how far days sat from the line.
//!
//! A **scenario** multiplies the course `h` hours ahead by `(1 + monthly_growth)^(h / 730)`
//! (months of 730 hours) and by its `peak` (a launch, a seasonal high). The resource runs
//! out the first day the scenario's course reaches its limit, `earliest` where the upper
//! bound does, `latest` the lower; past the horizon (90 days by default) and up to five
//! years the date is given as `extrapolated`. Demand already at the limit runs out now.

use serde::Serialize;

/// Hours in the months a scenario's growth is given in.
pub const MONTH_HOURS: f64 = 730.0;

/// How demand may go.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    pub name: String,
    /// Growth a month, as a share: 0.1 is +10% a month.
    pub monthly_growth: f64,
    /// A multiplier on every hour (a peak day: 2.0).
    pub peak: f64,
    pub description: String,
}

impl Scenario {
    /// The standard four: the forecast as it is, +10% and +25% a month, and a peak of
    /// twice the usual.
    pub fn standard() -> Vec<Scenario> {
        vec![
            Scenario::custom("baseline", 0.0, 1.0, "the forecast as it is"),
            Scenario::custom("growth-10", 0.10, 1.0, "demand grows 10% a month"),
            Scenario::custom("growth-25", 0.25, 1.0, "demand grows 25% a month"),
            Scenario::custom("peak-2x", 0.0, 2.0, "a day at twice the usual demand"),
        ]
    }

    pub fn custom(name: &str, monthly_growth: f64, peak: f64, description: &str) -> Scenario {
        Scenario {
            name: name.to_string(),
            monthly_growth,
            peak,
            description: description.to_string(),
        }
    }

    /// What the forecast `hours` ahead is multiplied by.
    pub fn factor(&self, hours: f64) -> f64 {
        let f = (1.0 + self.monthly_growth).powf(hours / MONTH_HOURS) * self.peak;
        if f.is_finite() && f > 0.0 { f } else { 1.0 }
    }
}

/// A constrained resource and the demand that uses it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resource {
    /// Such as `rate limit "global-rps"`.
    pub name: String,
    /// `request_rate`, `token_rate`, `concurrency`, `upstream`, `budget`, `memory`.
    pub kind: &'static str,
    pub limit: f64,
    /// What limit and demand are counted in (`requests/s`, `USD/hour`).
    pub unit: String,
    /// The history series its demand is read from.
    pub series: String,
    /// What to change when it runs out (`raise [[rate_limits]] "global-rps" amount`).
    pub change: String,
    /// Each day is judged by its mean, not its peak: a budget is spent by the day's total.
    pub daily_mean: bool,
}

/// When a resource runs out (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Exhaustion {
    /// The first day the scenario's course reaches the limit.
    pub at: u64,
    /// Where its upper bound does (the earliest).
    pub earliest: u64,
    /// Where its lower bound does; `None`: not within five years.
    pub latest: Option<u64>,
    /// Beyond the horizon.
    pub extrapolated: bool,
}

/// The course of demand: its daily peak `d` days after the last day of history is
/// `level + slope·d` (with `lo_slope` and `hi_slope`, less and more `spread`, as bounds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Course {
    pub level: f64,
    pub slope: f64,
    pub lo_slope: f64,
    pub hi_slope: f64,
    pub spread: f64,
    /// Days of peaks it was fitted on.
    pub days: usize,
}

/// Days fitted at most.
const FIT_DAYS: usize = 28;
const DAY_SECS: u64 = 86_400;
/// The longest a date is given for.
const YEARS: u64 = 5;

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Each whole day of `hourly` values (a partial first day left out) as its peak, or its
/// mean (`mean`); NaN for a day without a finite value.
fn daily(hourly: &[f64], mean: bool) -> Vec<f64> {
    hourly[hourly.len() % 24..]
        .chunks(24)
        .map(|d| {
            let finite = d.iter().copied().filter(|v| v.is_finite());
            if mean {
                let (sum, n) = finite.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
                if n == 0 { f64::NAN } else { sum / n as f64 }
            } else {
                finite.fold(f64::NAN, f64::max)
            }
        })
        .collect()
}

impl Course {
    /// The course of `hourly` values' daily peaks (or means: `mean`), over the last whole
    /// days of them (a partial first day is left out). `None` without a finite value.
    pub fn of(hourly: &[f64], mean: bool) -> Option<Course> {
        let days: Vec<f64> = daily(hourly, mean)
            .into_iter()
            .filter(|v| v.is_finite())
            .collect();
        let days = if days.is_empty() {
            // Less than a day: its peak, flat.
            let m = hourly
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .fold(f64::NAN, f64::max);
            if !m.is_finite() {
                return None;
            }
            vec![m]
        } else {
            days
        };
        let days = &days[days.len().saturating_sub(FIT_DAYS)..];
        let n = days.len();
        let mut slopes = Vec::with_capacity(n * n / 2);
        for i in 0..n {
            for j in i + 1..n {
                slopes.push((days[j] - days[i]) / (j - i) as f64);
            }
        }
        slopes.sort_by(f64::total_cmp);
        let slope = quantile(&slopes, 0.5);
        // The level at the last day: the median of each day carried along the slope.
        let mut at_end: Vec<f64> = days
            .iter()
            .enumerate()
            .map(|(i, v)| v + slope * (n - 1 - i) as f64)
            .collect();
        at_end.sort_by(f64::total_cmp);
        let level = quantile(&at_end, 0.5);
        let mut off: Vec<f64> = at_end.iter().map(|v| (v - level).abs()).collect();
        off.sort_by(f64::total_cmp);
        Some(Course {
            level,
            slope,
            lo_slope: quantile(&slopes, 0.1),
            hi_slope: quantile(&slopes, 0.9),
            spread: quantile(&off, 0.8),
            days: n,
        })
    }

    /// The daily peak `d` days on: as expected, low, high.
    pub fn at(&self, d: f64) -> (f64, f64, f64) {
        (
            self.level + self.slope * d,
            self.level + self.lo_slope * d - self.spread,
            self.level + self.hi_slope * d + self.spread,
        )
    }
}

/// One resource under one scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outlook {
    pub resource: String,
    pub kind: &'static str,
    pub scenario: String,
    pub limit: f64,
    pub unit: String,
    /// The busiest hour of the last week of history (the busiest day's mean, for a
    /// resource judged by days' means), and its share of the limit.
    pub peak_now: f64,
    pub utilization: f64,
    /// The scenario's daily peak at the horizon, and its share of the limit.
    pub peak_at_horizon: f64,
    pub utilization_at_horizon: f64,
    /// Growth of the daily peak a day, as fitted.
    pub trend_per_day: f64,
    pub runs_out: Option<Exhaustion>,
    /// What to change, when it runs out within the horizon (or is past 80% now).
    pub recommendation: Option<String>,
}

/// `resource` under `scenario` over `horizon_days`: `hourly` is its demand's hourly peaks,
/// the last one the hour starting at `last` (Unix seconds).
pub fn outlook(
    resource: &Resource,
    hourly: &[f64],
    last: u64,
    scenario: &Scenario,
    horizon_days: u64,
) -> Outlook {
    let limit = resource.limit;
    let course = Course::of(hourly, resource.daily_mean);
    let peak_now = if resource.daily_mean {
        // The busiest day of the last week, by its mean.
        let days = daily(hourly, true);
        days[days.len().saturating_sub(7)..]
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(0.0_f64, f64::max)
    } else {
        hourly[hourly.len().saturating_sub(7 * 24)..]
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(0.0_f64, f64::max)
    };
    let share = |v: f64| {
        if limit > 0.0 && v.is_finite() {
            v / limit
        } else {
            0.0
        }
    };
    let day_end = last - last % DAY_SECS + DAY_SECS;
    let scaled = |d: u64| -> (f64, f64, f64) {
        let Some(c) = course else {
            return (0.0, 0.0, 0.0);
        };
        let f = scenario.factor(d as f64 * 24.0);
        let (mid, lo, hi) = c.at(d as f64);
        (mid * f, lo * f, hi * f)
    };
    let now_scaled = peak_now * scenario.factor(0.0);
    let runs_out = if limit <= 0.0 || course.is_none() {
        None
    } else if now_scaled >= limit {
        Some(Exhaustion {
            at: last,
            earliest: last,
            latest: Some(last),
            extrapolated: false,
        })
    } else {
        let (mut at, mut earliest, mut latest) = (None, None, None);
        for d in 1..=YEARS * 365 {
            let (mid, lo, hi) = scaled(d);
            let t = day_end + (d - 1) * DAY_SECS;
            if hi >= limit {
                earliest.get_or_insert(t);
            }
            if mid >= limit {
                at.get_or_insert(t);
            }
            if lo >= limit {
                latest.get_or_insert(t);
                break;
            }
        }
        at.map(|at| Exhaustion {
            at,
            earliest: earliest.unwrap_or(at),
            latest,
            extrapolated: at >= day_end + horizon_days * DAY_SECS,
        })
    };
    let (peak_at_horizon, _, hi_at_horizon) = scaled(horizon_days);
    let within = runs_out.is_some_and(|r| !r.extrapolated);
    let recommendation = (within || share(now_scaled) >= 0.8).then(|| {
        // The upper course at the horizon (or now, if higher), a quarter more for headroom.
        let need = hi_at_horizon.max(now_scaled) * 1.25;
        format!(
            "{} to at least {} {} (the upper course of the daily peak in {horizon_days} days under \"{}\", plus 25%)",
            resource.change,
            round_up(need),
            resource.unit,
            scenario.name
        )
    });
    Outlook {
        resource: resource.name.clone(),
        kind: resource.kind,
        scenario: scenario.name.clone(),
        limit,
        unit: resource.unit.clone(),
        peak_now,
        utilization: share(peak_now),
        peak_at_horizon,
        utilization_at_horizon: share(peak_at_horizon),
        trend_per_day: course.map_or(0.0, |c| c.slope),
        runs_out,
        recommendation,
    }
}

/// Up to two significant digits, rounded up: 1234 → 1300, 0.0123 → 0.013.
fn round_up(v: f64) -> String {
    if !(v.is_finite() && v > 0.0) {
        return "0".into();
    }
    let mag = 10f64.powf(v.log10().floor() - 1.0);
    let r = (v / mag).ceil() * mag;
    if r >= 100.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

#[cfg(test)]
mod tests;
