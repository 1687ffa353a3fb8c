//! Seasonality: which periods a series has (found by autocorrelation, or given), and its
//! seasonal indices by classical decomposition (a centred moving average for the trend,
//! the mean ratio, or difference, to it at each phase).

/// How strong the autocorrelation at a period must be for it to count as a season.
const MIN_ACF: f64 = 0.3;

/// The autocorrelation of `y` at `lag`, after removing a moving average of `lag` points
/// (so that a trend does not pass for a season); 0 when it cannot be told.
pub(super) fn acf(y: &[f64], lag: usize) -> f64 {
    if lag == 0 || y.len() < 2 * lag + 2 {
        return 0.0;
    }
    let trend = centred_average(y, lag);
    let d: Vec<f64> = y
        .iter()
        .zip(&trend)
        .filter_map(|(v, t)| t.map(|t| v - t))
        .collect();
    if d.len() <= lag + 1 {
        return 0.0;
    }
    let mean = d.iter().sum::<f64>() / d.len() as f64;
    let var: f64 = d.iter().map(|x| (x - mean).powi(2)).sum();
    if var <= 0.0 || !var.is_finite() {
        return 0.0;
    }
    let cov: f64 = (lag..d.len())
        .map(|i| (d[i] - mean) * (d[i - lag] - mean))
        .sum();
    cov / var
}

/// A moving average of `m` points centred on each point (a 2×m average for even `m`),
/// where it is defined.
fn centred_average(y: &[f64], m: usize) -> Vec<Option<f64>> {
    let n = y.len();
    let mut out = vec![None; n];
    if m < 2 || n < m + 1 {
        return out;
    }
    let mut prefix = vec![0.0; n + 1];
    for (i, v) in y.iter().enumerate() {
        prefix[i + 1] = prefix[i] + v;
    }
    let sum = |a: usize, b: usize| prefix[b] - prefix[a];
    let half = m / 2;
    for (i, o) in out.iter_mut().enumerate() {
        if m % 2 == 1 {
            if i >= half && i + half < n {
                *o = Some(sum(i - half, i + half + 1) / m as f64);
            }
        } else if i >= half && i + half < n {
            // The mean of the two m-point windows around i.
            let a = sum(i - half, i + half) / m as f64;
            let b = sum(i + 1 - half, i + half + 1) / m as f64;
            *o = Some((a + b) / 2.0);
        }
    }
    out
}

/// The periods (in points) among `candidates` that `y` shows (an autocorrelation of at
/// least [`MIN_ACF`] with at least two seasons seen), shortest first.
pub(super) fn detect(y: &[f64], candidates: &[usize]) -> Vec<usize> {
    let mut found: Vec<usize> = candidates
        .iter()
        .copied()
        .filter(|m| *m >= 2 && y.len() >= 2 * m + 2 && acf(y, *m) >= MIN_ACF)
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// Seasonal indices of period `m`: one per phase (`phase = i % m` for point `i` of the
/// series), from the last `seasons` seasons. Multiplicative (mean 1) for a positive
/// series, else additive (mean 0).
#[derive(Debug, Clone)]
pub(super) struct Indices {
    pub m: usize,
    pub multiplicative: bool,
    pub values: Vec<f64>,
}

impl Indices {
    pub(super) fn fit(y: &[f64], m: usize, multiplicative: bool) -> Option<Indices> {
        if m < 2 || y.len() < 2 * m {
            return None;
        }
        let trend = centred_average(y, m);
        let mut sums = vec![0.0; m];
        let mut counts = vec![0usize; m];
        for (i, (v, t)) in y.iter().zip(&trend).enumerate() {
            let Some(t) = t else { continue };
            let r = if multiplicative {
                if *t <= 0.0 {
                    continue;
                }
                v / t
            } else {
                v - t
            };
            if r.is_finite() {
                sums[i % m] += r;
                counts[i % m] += 1;
            }
        }
        let neutral = if multiplicative { 1.0 } else { 0.0 };
        let mut values: Vec<f64> = sums
            .iter()
            .zip(&counts)
            .map(|(s, c)| if *c > 0 { s / *c as f64 } else { neutral })
            .collect();
        let mean = values.iter().sum::<f64>() / m as f64;
        for v in &mut values {
            if multiplicative {
                *v = if mean > 0.0 {
                    (*v / mean).max(1e-3)
                } else {
                    1.0
                };
            } else {
                *v -= mean;
            }
        }
        Some(Indices {
            m,
            multiplicative,
            values,
        })
    }

    /// The index of point `i` (counted from the series' start).
    pub(super) fn at(&self, i: usize) -> f64 {
        self.values[i % self.m]
    }

    pub(super) fn remove(&self, i: usize, v: f64) -> f64 {
        if self.multiplicative {
            v / self.at(i)
        } else {
            v - self.at(i)
        }
    }

    pub(super) fn restore(&self, i: usize, v: f64) -> f64 {
        if self.multiplicative {
            v * self.at(i)
        } else {
            v + self.at(i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Indices, acf, detect};

    #[test]
    fn a_daily_cycle_is_found_and_a_trend_is_not() {
        let daily: Vec<f64> = (0..24 * 14)
            .map(|i| 100.0 + 20.0 * (i as f64 / 24.0 * std::f64::consts::TAU).sin())
            .collect();
        assert!(acf(&daily, 24) > 0.9);
        assert_eq!(detect(&daily, &[24, 168]), vec![24]);
        let trend: Vec<f64> = (0..500).map(|i| i as f64).collect();
        assert!(detect(&trend, &[24, 168]).is_empty());
        let ix = Indices::fit(&daily, 24, true).unwrap();
        assert!((ix.at(6) - 1.2).abs() < 0.02, "{}", ix.at(6));
        assert!((ix.restore(30, ix.remove(30, 117.0)) - 117.0).abs() < 1e-9);
    }
}
