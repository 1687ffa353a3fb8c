//! The classic methods the forecaster combines, each on a plain slice of points at a
//! regular step: the seasonal naive, the seasonal mean of the last seasons, simple
//! exponential smoothing, the Theta method (SES with half the linear trend, as in
//! Assimakopoulos and Nikolopoulos, 2000) and Holt's damped trend. Parameters are chosen
//! by the one-step squared error on the series itself.

/// The last season repeated.
pub(super) fn seasonal_naive(y: &[f64], m: usize, h: usize) -> Vec<f64> {
    let n = y.len();
    (0..h).map(|j| y[n - m + j % m]).collect()
}

/// The mean of the last `k` seasons at each phase (fewer if fewer were seen).
pub(super) fn seasonal_mean(y: &[f64], m: usize, k: usize, h: usize) -> Vec<f64> {
    let n = y.len();
    let seasons = (n / m).clamp(1, k);
    (0..h)
        .map(|j| {
            let phase = j % m;
            (1..=seasons).map(|s| y[n - s * m + phase]).sum::<f64>() / seasons as f64
        })
        .collect()
}

/// Simple exponential smoothing: the final level and the smoothing weight chosen (the
/// one with the least one-step squared error).
pub(super) fn ses(y: &[f64]) -> (f64, f64) {
    let mut best = (f64::INFINITY, 0.5, y[0]);
    for a in (1..=19).map(|i| i as f64 * 0.05) {
        let (mut level, mut sse) = (y[0], 0.0);
        for v in &y[1..] {
            let e = v - level;
            sse += e * e;
            level += a * e;
        }
        if sse < best.0 {
            best = (sse, a, level);
        }
    }
    (best.2, best.1)
}

pub(super) fn ses_forecast(y: &[f64], h: usize) -> Vec<f64> {
    let (level, _) = ses(y);
    vec![level; h]
}

/// Theta: SES plus half the slope of the least-squares line through the series, with the
/// correction for the smoothing's lag (Hyndman and Billah, 2003).
pub(super) fn theta(y: &[f64], h: usize) -> Vec<f64> {
    let n = y.len() as f64;
    let (level, a) = ses(y);
    let mean_t = (n - 1.0) / 2.0;
    let mean_y = y.iter().sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (i, v) in y.iter().enumerate() {
        let dt = i as f64 - mean_t;
        num += dt * (v - mean_y);
        den += dt * dt;
    }
    let slope = if den > 0.0 { num / den } else { 0.0 };
    let lag = 1.0 / a - (1.0 - a).powf(n) / a;
    (1..=h)
        .map(|j| level + slope / 2.0 * ((j - 1) as f64 + lag))
        .collect()
}

/// Holt's linear trend, damped (φ = 0.98): the trend fades over the horizon.
pub(super) fn damped(y: &[f64], h: usize) -> Vec<f64> {
    const PHI: f64 = 0.98;
    if y.len() < 3 {
        return vec![*y.last().unwrap_or(&0.0); h];
    }
    let mut best = (f64::INFINITY, y[0], 0.0);
    for a in [0.1, 0.2, 0.3, 0.5, 0.7, 0.9] {
        for b in [0.01, 0.03, 0.1, 0.2] {
            let (mut l, mut t, mut sse) = (y[0], y[1] - y[0], 0.0);
            for v in &y[1..] {
                let f = l + PHI * t;
                let e = v - f;
                sse += e * e;
                let nl = f + a * e;
                t = PHI * t + a * b * e;
                l = nl;
            }
            if sse < best.0 {
                best = (sse, l, t);
            }
        }
    }
    let (_, l, t) = best;
    let mut damp = 0.0;
    let mut phi = 1.0;
    (0..h)
        .map(|_| {
            phi *= PHI;
            damp += phi;
            l + damp * t
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_method_continues_what_it_models() {
        let season: Vec<f64> = (0..48).map(|i| (i % 4) as f64).collect();
        assert_eq!(
            seasonal_naive(&season, 4, 6),
            vec![0.0, 1.0, 2.0, 3.0, 0.0, 1.0]
        );
        assert_eq!(seasonal_mean(&season, 4, 3, 2), vec![0.0, 1.0]);
        let flat = vec![5.0; 30];
        assert!(
            ses_forecast(&flat, 3)
                .iter()
                .all(|v| (*v - 5.0).abs() < 1e-9)
        );
        let line: Vec<f64> = (0..100).map(|i| 2.0 * i as f64).collect();
        let th = theta(&line, 10);
        assert!(th[9] > th[0] && th[9] > 198.0, "{th:?}");
        let d = damped(&line, 10);
        assert!((d[0] - 200.0).abs() < 2.0, "{d:?}");
    }
}
