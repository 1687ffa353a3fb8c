//! Simulated hourly series to evaluate the forecaster against the baselines the issue
//! names: the seasonal naive (the last day repeated) and the seasonally adjusted naive
//! ("Naive2": the last value of the series divided by its daily indices, multiplied back),
//! on sMAPE and MASE (scaled by the in-sample seasonal naive's error), with the 80% and
//! 95% intervals' coverage. Five kinds of series, each seeded: a daily and weekly cycle
//! (multiplicative), the same with a trend, an additive daily cycle with a level shift
//! in its history, a random walk, and an autocorrelated series around a level.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::season::Indices;
use super::{Season, forecast};
use crate::anomaly::eval::normal;

/// One simulated hourly series of `n` points, of kind `kind % 5`.
pub fn series(kind: u64, seed: u64, n: usize) -> Vec<f64> {
    let mut rng = SmallRng::seed_from_u64(seed * 31 + kind);
    let amp = rng.random_range(0.2..0.7);
    let phase = rng.random_range(0.0..24.0);
    let noise = rng.random_range(0.02..0.1);
    let mut walk = 100.0;
    let mut ar = 0.0;
    (0..n)
        .map(|i| {
            let hour = (i as f64 + phase) % 24.0;
            let daily = (hour / 24.0 * std::f64::consts::TAU).sin();
            let weekend = (i / 24) % 7 >= 5;
            let z = normal(&mut rng);
            match kind % 5 {
                0 => {
                    100.0
                        * (1.0 + amp * daily)
                        * if weekend { 0.6 } else { 1.0 }
                        * (1.0 + noise * z)
                }
                1 => 100.0 * (1.0 + amp * daily) * (1.0 + 0.001 * i as f64) * (1.0 + noise * z),
                2 => {
                    let shift = if i > n / 3 { 30.0 } else { 0.0 };
                    200.0 + 50.0 * amp * daily + shift + 10.0 * noise * 10.0 * z
                }
                3 => {
                    walk += 2.0 * z;
                    walk
                }
                _ => {
                    ar = 0.7 * ar + 5.0 * z;
                    50.0 + ar
                }
            }
        })
        .collect()
}

/// The seasonal naive of period `m`.
pub fn seasonal_naive(y: &[f64], m: usize, h: usize) -> Vec<f64> {
    super::methods::seasonal_naive(y, m.min(y.len()).max(1), h)
}

/// Naive2: the naive method on the series adjusted by its multiplicative indices of
/// period `m` (additive for a series not all positive), when it shows that season.
pub fn naive2(y: &[f64], m: usize, h: usize) -> Vec<f64> {
    let n = y.len();
    let seasonal = super::season::acf(y, m) >= 0.3;
    match Indices::fit(y, m, y.iter().all(|v| *v > 0.0)).filter(|_| seasonal) {
        Some(ix) => {
            let last = ix.remove(n - 1, y[n - 1]);
            (0..h).map(|j| ix.restore(n + j, last)).collect()
        }
        None => vec![y[n - 1]; h],
    }
}

pub fn smape(f: &[f64], y: &[f64]) -> f64 {
    f.iter()
        .zip(y)
        .map(|(a, b)| 200.0 * (a - b).abs() / (a.abs() + b.abs()).max(1e-12))
        .sum::<f64>()
        / f.len().max(1) as f64
}

pub fn mase(f: &[f64], y: &[f64], train: &[f64], m: usize) -> f64 {
    let scale = super::naive_scale(train, m).max(1e-12);
    f.iter().zip(y).map(|(a, b)| (a - b).abs()).sum::<f64>() / f.len().max(1) as f64 / scale
}

/// Means over a set: (sMAPE, MASE) for ours, the seasonal naive and Naive2, and our
/// intervals' coverage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub series: usize,
    pub ours: (f64, f64),
    pub snaive: (f64, f64),
    pub naive2: (f64, f64),
    pub cover80: f64,
    pub cover95: f64,
}

/// Forecasts `horizon` hours after `train_len` points of each series, for `seeds` seeds
/// of each kind.
pub fn evaluate(seeds: u64, train_len: usize, horizon: usize) -> Report {
    let mut r = Report::default();
    let (mut in80, mut in95, mut points) = (0usize, 0usize, 0usize);
    for seed in 0..seeds {
        for kind in 0..5 {
            let y = series(kind, seed, train_len + horizon);
            let (train, test) = y.split_at(train_len);
            let f = forecast(train, 3600, horizon, Season::Auto);
            let ours: Vec<f64> = f.steps.iter().map(|s| s.forecast).collect();
            let sn = seasonal_naive(train, 24, horizon);
            let n2 = naive2(train, 24, horizon);
            for (acc, fc) in [
                (&mut r.ours, &ours),
                (&mut r.snaive, &sn),
                (&mut r.naive2, &n2),
            ] {
                acc.0 += smape(fc, test);
                acc.1 += mase(fc, test, train, 24);
            }
            for (s, v) in f.steps.iter().zip(test) {
                in80 += usize::from(*v >= s.lo80 && *v <= s.hi80);
                in95 += usize::from(*v >= s.lo95 && *v <= s.hi95);
                points += 1;
            }
            r.series += 1;
        }
    }
    let k = r.series.max(1) as f64;
    for acc in [&mut r.ours, &mut r.snaive, &mut r.naive2] {
        acc.0 /= k;
        acc.1 /= k;
    }
    r.cover80 = in80 as f64 / points.max(1) as f64;
    r.cover95 = in95 as f64 / points.max(1) as f64;
    r
}
