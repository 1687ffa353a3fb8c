//! Forecasting any series from minutes to months ahead, with 80% and 95% prediction
//! intervals, and no per-series setting.
//!
//! **Seasons** are found by autocorrelation among a day and a week at the series' step
//! (or given): a detrended autocorrelation of 0.3 or more with two seasons seen
//! ([`season`]).
//!
//! **Candidates** ([`methods`]): the seasonal naive and the mean of the last three seasons
//! for each season found; and SES, Theta and Holt's damped trend, each on the series as it
//! is and on the series seasonally adjusted by each season's indices (classical
//! decomposition, multiplicative for a positive series).
//!
//! **Chosen by validation on the series' own recent past**: each candidate forecasts the
//! last `V` points (`V` the horizon, at most a quarter of the series) from the points
//! before them, and from one `V` earlier when there is room; its error is the mean
//! absolute error over a naive method's in-sample error (a MASE), summed over the origins.
//! The three best are combined, weighted by the inverse of their errors (a combination of
//! a few good methods is steadier than the best one alone).
//!
//! **Intervals** come from the combination's own errors at the validation origins: their
//! variance as a line in the horizon (`a + b·h`, fitted from the first steps and from all,
//! held under ten times the mean), relative to the forecast for a positive series (whose
//! errors grow with its level), with the 80% and 95% multipliers from the errors'
//! own quantiles where they are wider than a normal's.

pub mod eval;
mod methods;
mod season;

use std::fmt;

use season::Indices;

/// What the seasons are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Season {
    /// Found among a day and a week at the series' step.
    Auto,
    /// One season of this many points (1: none).
    Points(usize),
}

/// One forecast step: the point forecast and its intervals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub forecast: f64,
    pub lo80: f64,
    pub hi80: f64,
    pub lo95: f64,
    pub hi95: f64,
}

/// A forecast: its steps, the seasons used and the methods combined (with weights).
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    pub steps: Vec<Step>,
    pub seasons: Vec<usize>,
    pub methods: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Core {
    Ses,
    Theta,
    Damped,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Method {
    Naive(usize),
    Mean(usize),
    Adjusted(Option<usize>, Core),
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::Naive(m) => write!(f, "seasonal naive ({m})"),
            Method::Mean(m) => write!(f, "seasonal mean of 3 ({m})"),
            Method::Adjusted(season, core) => {
                let core = match core {
                    Core::Ses => "SES",
                    Core::Theta => "Theta",
                    Core::Damped => "damped trend",
                };
                match season {
                    Some(m) => write!(f, "{core}, seasonally adjusted ({m})"),
                    None => write!(f, "{core}"),
                }
            }
        }
    }
}

/// `method`'s forecast of `h` points after `y`; `None` when `y` is too short for it.
fn run(method: Method, y: &[f64], h: usize) -> Option<Vec<f64>> {
    let n = y.len();
    let positive = y.iter().all(|v| *v > 0.0);
    let out = match method {
        Method::Naive(m) if n >= m => methods::seasonal_naive(y, m, h),
        Method::Mean(m) if n >= m => methods::seasonal_mean(y, m, 3, h),
        Method::Adjusted(season, core) if n >= 3 => {
            let ix = match season {
                Some(m) => Some(Indices::fit(y, m, positive)?),
                None => None,
            };
            let adjusted: Vec<f64> = match &ix {
                Some(ix) => y
                    .iter()
                    .enumerate()
                    .map(|(i, v)| ix.remove(i, *v))
                    .collect(),
                None => y.to_vec(),
            };
            let f = match core {
                Core::Ses => methods::ses_forecast(&adjusted, h),
                Core::Theta => methods::theta(&adjusted, h),
                Core::Damped => methods::damped(&adjusted, h),
            };
            match &ix {
                Some(ix) => f
                    .iter()
                    .enumerate()
                    .map(|(j, v)| ix.restore(n + j, *v))
                    .collect(),
                None => f,
            }
        }
        _ => return None,
    };
    out.iter().all(|v| v.is_finite()).then_some(out)
}

/// The in-sample mean absolute error of the seasonal naive (`m`) or naive method: the
/// scale of a MASE.
fn naive_scale(y: &[f64], m: usize) -> f64 {
    let m = if y.len() > m { m } else { 1 };
    if y.len() <= m {
        return 0.0;
    }
    (m..y.len()).map(|i| (y[i] - y[i - m]).abs()).sum::<f64>() / (y.len() - m) as f64
}

/// The periods tried for `season` on `y` at `step` seconds.
fn seasons(y: &[f64], step: i64, season: Season) -> Vec<usize> {
    match season {
        Season::Points(m) if m >= 2 && y.len() >= 2 * m => vec![m],
        Season::Points(_) => Vec::new(),
        Season::Auto => {
            let step = step.max(1);
            let candidates: Vec<usize> = [86_400_i64, 7 * 86_400]
                .iter()
                .filter(|p| *p % step == 0)
                .map(|p| (p / step) as usize)
                .collect();
            season::detect(y, &candidates)
        }
    }
}

/// Forecasts `horizon` points after `y` (points at a regular `step` in seconds; see
/// [`regular`]). Never NaN: a series of one point, or constant, forecasts itself with
/// intervals of no width.
pub fn forecast(y: &[f64], step: i64, horizon: usize, season: Season) -> Forecast {
    let y: Vec<f64> = y.iter().copied().filter(|v| v.is_finite()).collect();
    let Some(&last) = y.last() else {
        return Forecast {
            steps: Vec::new(),
            seasons: Vec::new(),
            methods: Vec::new(),
        };
    };
    let n = y.len();
    let found = seasons(&y, step, season);
    let mut candidates = Vec::new();
    for m in &found {
        candidates.push(Method::Naive(*m));
        candidates.push(Method::Mean(*m));
    }
    for s in std::iter::once(None).chain(found.iter().map(|m| Some(*m))) {
        for core in [Core::Ses, Core::Theta, Core::Damped] {
            candidates.push(Method::Adjusted(s, core));
        }
    }
    let longest = found.iter().copied().max().unwrap_or(1);
    let v = horizon.min(n / 4).max(1);
    // Validation origins: the last V points, and the V before them, when what is left
    // before still holds two seasons (or ten points).
    let least = (2 * longest).max(10);
    let origins: Vec<usize> = [n.saturating_sub(v), n.saturating_sub(2 * v)]
        .into_iter()
        .filter(|o| *o >= least && *o < n)
        .collect();
    let mut scored: Vec<(Method, f64)> = Vec::new();
    for method in &candidates {
        let mut total = 0.0;
        let mut ok = !origins.is_empty();
        for o in &origins {
            let len = v.min(n - o);
            match run(*method, &y[..*o], len) {
                Some(f) => {
                    let mae = f
                        .iter()
                        .zip(&y[*o..o + len])
                        .map(|(a, b)| (a - b).abs())
                        .sum::<f64>()
                        / len as f64;
                    let scale = naive_scale(&y[..*o], longest).max(1e-12);
                    total += mae / scale;
                }
                None => ok = false,
            }
        }
        if ok && total.is_finite() {
            scored.push((*method, total));
        }
    }
    scored.sort_by(|a, b| a.1.total_cmp(&b.1));
    scored.truncate(3);
    if scored.is_empty() {
        // Too short to validate anything: the last value, with the naive's spread.
        let spread = naive_scale(&y, 1) * 1.25;
        return Forecast {
            steps: (1..=horizon)
                .map(|h| band(last, spread * (h as f64).sqrt(), 1.2816, 1.96))
                .collect(),
            seasons: found,
            methods: vec![("naive".into(), 1.0)],
        };
    }
    let weights: Vec<f64> = if scored[0].1 <= 1e-12 {
        (0..scored.len()).map(|i| f64::from(i == 0)).collect()
    } else {
        let inv: Vec<f64> = scored.iter().map(|(_, e)| 1.0 / e).collect();
        let sum: f64 = inv.iter().sum();
        inv.iter().map(|w| w / sum).collect()
    };
    let combine = |y: &[f64], h: usize| -> Vec<f64> {
        let mut out = vec![0.0; h];
        for ((method, _), w) in scored.iter().zip(&weights) {
            if let Some(f) = run(*method, y, h) {
                for (o, x) in out.iter_mut().zip(f) {
                    *o += w * x;
                }
            }
        }
        out
    };
    let point = combine(&y, horizon);
    let positive = y.iter().all(|x| *x > 0.0);
    // The combination's errors at the origins, by horizon (relative for a positive series).
    let mut errors: Vec<(usize, f64)> = Vec::new();
    for o in &origins {
        let len = v.min(n - o);
        let f = combine(&y[..*o], len);
        for (j, (a, b)) in f.iter().zip(&y[*o..o + len]).enumerate() {
            let e = if positive {
                (b - a) / a.abs().max(1e-12)
            } else {
                b - a
            };
            if e.is_finite() {
                errors.push((j + 1, e));
            }
        }
    }
    let spread = Spread::fit(&errors);
    Forecast {
        steps: point
            .iter()
            .enumerate()
            .map(|(j, f)| {
                let s = spread.at(j + 1) * if positive { f.abs() } else { 1.0 };
                band(*f, s, spread.z80, spread.z95)
            })
            .collect(),
        seasons: found,
        methods: scored
            .iter()
            .zip(&weights)
            .map(|((m, _), w)| (m.to_string(), *w))
            .collect(),
    }
}

fn band(f: f64, s: f64, z80: f64, z95: f64) -> Step {
    let clean = |x: f64| if x.is_finite() { x } else { f };
    let s = if s.is_finite() { s.max(0.0) } else { 0.0 };
    Step {
        forecast: f,
        lo80: clean(f - z80 * s),
        hi80: clean(f + z80 * s),
        lo95: clean(f - z95 * s),
        hi95: clean(f + z95 * s),
    }
}

/// The errors' deviation as a function of the horizon, and the multipliers.
struct Spread {
    a: f64,
    b: f64,
    cap: f64,
    z80: f64,
    z95: f64,
}

impl Spread {
    fn fit(errors: &[(usize, f64)]) -> Spread {
        if errors.is_empty() {
            return Spread {
                a: 0.0,
                b: 0.0,
                cap: 0.0,
                z80: 1.2816,
                z95: 1.96,
            };
        }
        let mean_sq =
            |e: &[&(usize, f64)]| e.iter().map(|(_, x)| x * x).sum::<f64>() / e.len().max(1) as f64;
        let all: Vec<&(usize, f64)> = errors.iter().collect();
        let hmax = errors.iter().map(|(h, _)| *h).max().unwrap_or(1);
        let early_to = (hmax / 8).max(1);
        let early: Vec<&(usize, f64)> = errors.iter().filter(|(h, _)| *h <= early_to).collect();
        let (v_all, v_early) = (mean_sq(&all), mean_sq(&early));
        let h_all = all.iter().map(|(h, _)| *h as f64).sum::<f64>() / all.len() as f64;
        let h_early = early.iter().map(|(h, _)| *h as f64).sum::<f64>() / early.len().max(1) as f64;
        let b = if h_all > h_early {
            ((v_all - v_early) / (h_all - h_early)).max(0.0)
        } else {
            0.0
        };
        let a = (v_all - b * h_all).max(0.25 * v_all);
        let mut spread = Spread {
            a,
            b,
            cap: 10.0 * v_all,
            z80: 1.2816,
            z95: 1.96,
        };
        // The errors' own quantiles, standardized, where wider than a normal's.
        let mut u: Vec<f64> = errors
            .iter()
            .map(|(h, e)| (e / spread.at(*h).max(1e-12)).abs())
            .filter(|x| x.is_finite())
            .collect();
        if u.len() >= 20 {
            u.sort_by(f64::total_cmp);
            let q = |p: f64| u[((u.len() as f64 * p) as usize).min(u.len() - 1)];
            spread.z80 = spread.z80.max(q(0.8));
            spread.z95 = spread.z95.max(q(0.95));
        }
        spread
    }

    /// The deviation `h` steps ahead.
    fn at(&self, h: usize) -> f64 {
        (self.a + self.b * h as f64).min(self.cap).max(0.0).sqrt()
    }
}

/// Points at irregular times made regular: sorted, a time repeated averaged, the step the
/// median gap, gaps filled by a straight line between their ends. Returns the first
/// time, the step and the values; `None` without a finite value.
pub fn regular(points: &[(i64, f64)]) -> Option<(i64, i64, Vec<f64>)> {
    let mut p: Vec<(i64, f64)> = points
        .iter()
        .copied()
        .filter(|(_, v)| v.is_finite())
        .collect();
    if p.is_empty() {
        return None;
    }
    p.sort_by_key(|(t, _)| *t);
    let mut merged: Vec<(i64, f64, u32)> = Vec::new();
    for (t, v) in p {
        match merged.last_mut() {
            Some((lt, sum, count)) if *lt == t => {
                *sum += v;
                *count += 1;
            }
            _ => merged.push((t, v, 1)),
        }
    }
    let pts: Vec<(i64, f64)> = merged
        .into_iter()
        .map(|(t, s, c)| (t, s / f64::from(c)))
        .collect();
    let mut gaps: Vec<i64> = pts.windows(2).map(|w| w[1].0 - w[0].0).collect();
    gaps.sort_unstable();
    let step = gaps.get(gaps.len() / 2).copied().unwrap_or(3600).max(1);
    let first = pts[0].0;
    let mut values = Vec::with_capacity(pts.len());
    for w in pts.windows(2) {
        let ((t0, v0), (t1, v1)) = (w[0], w[1]);
        if values.is_empty() {
            values.push(v0);
        }
        // The points from t0 to t1 at the step: a straight line where none was given.
        let slots = ((t1 - t0) as f64 / step as f64).round().max(1.0) as usize;
        // A gap of more than a year of steps is not filled point by point.
        let slots = slots.min(1_000_000);
        for k in 1..=slots {
            values.push(v0 + (v1 - v0) * k as f64 / slots as f64);
        }
    }
    if values.is_empty() {
        values.push(pts[0].1);
    }
    Some((first, step, values))
}

#[cfg(test)]
mod tests;
