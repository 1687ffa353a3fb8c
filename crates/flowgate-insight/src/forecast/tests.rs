use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::eval::smape;
use super::{Season, forecast, regular};

/// Hourly: a daily cycle, a weekend at 70%, a slow trend, noise of `noise` (relative).
fn hourly(n: usize, seed: u64, noise: f64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let phase = rng.random_range(0.0..24.0);
    let amplitude = rng.random_range(0.2..0.6);
    let truth: Vec<f64> = (0..n)
        .map(|i| {
            let hour = (i as f64 + phase) % 24.0;
            let weekend = (i / 24) % 7 >= 5;
            let daily = 1.0 + amplitude * (hour / 24.0 * std::f64::consts::TAU).sin();
            100.0 * daily * if weekend { 0.7 } else { 1.0 } * (1.0 + 0.0002 * i as f64)
        })
        .collect();
    let noisy = truth
        .iter()
        .map(|t| {
            let z = crate::anomaly::eval::normal(&mut rng);
            t * (1.0 + noise * z)
        })
        .collect();
    (truth, noisy)
}

#[test]
fn a_seasonal_series_is_recovered_and_beats_the_naive_methods() {
    let (mut ours, mut snaive) = (0.0, 0.0);
    for seed in 0..10 {
        let (truth, y) = hourly(24 * 35 + 48, seed, 0.05);
        let (train, test) = y.split_at(24 * 35);
        let f = forecast(train, 3600, 48, Season::Auto);
        assert_eq!(f.steps.len(), 48);
        assert!(f.seasons.contains(&24), "{:?}", f.seasons);
        let point: Vec<f64> = f.steps.iter().map(|s| s.forecast).collect();
        // Near the truth without noise.
        let s = smape(&point, &truth[24 * 35..]);
        assert!(
            s < 6.0,
            "seed {seed}: sMAPE {s} against the truth; {:?}",
            f.methods
        );
        ours += smape(&point, test);
        let naive: Vec<f64> = (0..48).map(|j| train[train.len() - 24 + j % 24]).collect();
        snaive += smape(&naive, test);
    }
    assert!(
        ours < 0.9 * snaive,
        "ours {ours} vs seasonal naive {snaive}"
    );
}

#[test]
fn intervals_cover_what_they_say() {
    let (mut in80, mut in95, mut total) = (0, 0, 0);
    for seed in 100..140 {
        let (_, y) = hourly(24 * 28 + 72, seed, 0.08);
        let (train, test) = y.split_at(24 * 28);
        let f = forecast(train, 3600, 72, Season::Auto);
        for (s, v) in f.steps.iter().zip(test) {
            assert!(s.lo95 <= s.lo80 && s.lo80 <= s.forecast && s.forecast <= s.hi80);
            assert!(s.hi80 <= s.hi95);
            in80 += usize::from(*v >= s.lo80 && *v <= s.hi80);
            in95 += usize::from(*v >= s.lo95 && *v <= s.hi95);
            total += 1;
        }
    }
    let (c80, c95) = (in80 as f64 / total as f64, in95 as f64 / total as f64);
    assert!((0.72..=0.9).contains(&c80), "80% intervals cover {c80}");
    assert!((0.88..=0.99).contains(&c95), "95% intervals cover {c95}");
}

#[test]
fn ninety_days_ahead_runs_and_stays_finite() {
    let (_, y) = hourly(24 * 60, 7, 0.05);
    let f = forecast(&y, 3600, 24 * 90, Season::Auto);
    assert_eq!(f.steps.len(), 24 * 90);
    for s in &f.steps {
        for x in [s.forecast, s.lo80, s.hi80, s.lo95, s.hi95] {
            assert!(x.is_finite());
        }
    }
    // Intervals widen with the horizon.
    let width = |s: &super::Step| s.hi80 - s.lo80;
    assert!(width(&f.steps[24 * 89]) >= width(&f.steps[0]));
}

#[test]
fn short_constant_and_empty_series_are_defined() {
    let f = forecast(&[42.0], 60, 5, Season::Auto);
    assert_eq!(f.steps.len(), 5);
    assert!(f.steps.iter().all(|s| s.forecast == 42.0 && s.lo95 == 42.0));
    let f = forecast(&[7.0; 500], 3600, 24, Season::Auto);
    assert!(
        f.steps
            .iter()
            .all(|s| (s.forecast - 7.0).abs() < 1e-9 && s.hi95 - s.lo95 < 1e-6)
    );
    assert!(forecast(&[], 60, 5, Season::Auto).steps.is_empty());
    assert!(
        forecast(&[f64::NAN, f64::NAN], 60, 5, Season::Auto)
            .steps
            .is_empty()
    );
    // A given season that the series is too short for: no season, still a forecast.
    let f = forecast(&[1.0, 2.0, 3.0, 4.0], 60, 3, Season::Points(24));
    assert!(f.seasons.is_empty() && f.steps.len() == 3);
}

#[test]
fn irregular_points_are_made_regular() {
    let (first, step, v) = regular(&[
        (120, 3.0),
        (0, 1.0),
        (60, 2.0),
        (60, 4.0),
        (300, 6.0),
        (360, f64::NAN),
    ])
    .unwrap();
    assert_eq!((first, step), (0, 60));
    // 0:1, 60: mean(2, 4) = 3, 120: 3, then 180 and 240 filled towards 300: 6.
    assert_eq!(v, vec![1.0, 3.0, 3.0, 4.0, 5.0, 6.0]);
    assert!(regular(&[(0, f64::NAN)]).is_none());
    assert_eq!(regular(&[(5, 1.0)]), Some((5, 3600, vec![1.0])));
}

#[test]
fn the_simulated_sets_beat_both_baselines_with_calibrated_intervals() {
    let r = super::eval::evaluate(4, 24 * 35, 48);
    eprintln!("{r:?}");
    assert!(
        r.ours.0 < 0.95 * r.snaive.0 && r.ours.0 < 0.95 * r.naive2.0,
        "{r:?}"
    );
    assert!(
        r.ours.1 < 0.95 * r.snaive.1 && r.ours.1 < 0.95 * r.naive2.1,
        "{r:?}"
    );
    assert!((0.72..=0.9).contains(&r.cover80), "{r:?}");
}
