use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{Detector, WARMUP};

const STEP: i64 = 300;
/// 2026-01-05, a Monday.
const T0: i64 = 1_767_571_200;

/// A day-seasonal series at 5-minute steps: 100 + 30·sin(day) + noise (σ = 2), and a
/// weekly dip of 20 at the weekend (reached over six hours, as traffic falls off).
fn seasonal(points: usize, seed: u64) -> Vec<(i64, f64)> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..points)
        .map(|i| {
            let t = T0 + i as i64 * STEP;
            let day = ((t % 86_400) as f64 / 86_400.0) * std::f64::consts::TAU;
            // Days since Monday 00:00, as a real number: the weekend is days 5 to 7.
            let d = ((t - T0) % (7 * 86_400)) as f64 / 86_400.0;
            let ramp = |x: f64| (x / 0.25).clamp(0.0, 1.0);
            let weekend = -20.0 * (ramp(d - 5.0 + 0.25) - ramp(d - 7.0 + 0.25));
            // Approximately normal noise: the sum of four uniforms.
            let noise: f64 = (0..4).map(|_| rng.random::<f64>() - 0.5).sum::<f64>() * 2.0 * 1.73;
            (t, 100.0 + 30.0 * day.sin() + weekend + noise)
        })
        .collect()
}

fn scores(series: &[(i64, f64)]) -> Vec<f64> {
    let mut d = Detector::new();
    series
        .iter()
        .map(|(t, v)| d.observe(*t, *v).score)
        .collect()
}

/// Learned for eight days, then judged: a week and a day, so that the detector has seen
/// each weekday and the weekend's start and end once (the first Monday after a weekend is
/// new, and flagged as such).
const LEARN: usize = 8 * 288;

/// Two weeks: the last-week predictor is first judged on a weekend in the second one.
const CLEAN_LEARN: usize = 14 * 288;

#[test]
fn a_clean_seasonal_series_raises_no_alarm() {
    for seed in 1..=6 {
        let s = seasonal(28 * 288, seed);
        let sc = scores(&s);
        let alarms = sc[CLEAN_LEARN..].iter().filter(|x| **x >= 0.5).count();
        let worst = sc[CLEAN_LEARN..].iter().copied().fold(0.0, f64::max);
        assert!(
            alarms <= 2,
            "seed {seed}: {alarms} points at 0.5 or more (worst {worst})"
        );
        assert!(sc.iter().all(|x| x.is_finite() && (0.0..=1.0).contains(x)));
    }
}

#[test]
fn spikes_and_dips_score_at_once() {
    let mut s = seasonal(14 * 288, 7);
    let (spike, dip) = (LEARN + 100, LEARN + 900);
    s[spike].1 += 25.0;
    s[dip].1 -= 25.0;
    let sc = scores(&s);
    assert!(sc[spike] > 0.8, "spike {}", sc[spike]);
    assert!(sc[dip] > 0.8, "dip {}", sc[dip]);
    let mut d = Detector::new();
    for (t, v) in &s[..spike] {
        d.observe(*t, *v);
    }
    let v = d.observe(s[spike].0, s[spike].1);
    assert_eq!(v.direction, 1);
    assert!(v.upper < s[spike].1 && v.lower < v.expected);
}

#[test]
fn a_level_shift_is_found_within_points_then_accepted() {
    let mut s = seasonal(14 * 288, 11);
    let at = LEARN + 300;
    for p in &mut s[at..] {
        p.1 += 15.0;
    }
    let sc = scores(&s);
    let found = (at..at + 5).find(|i| sc[*i] >= 0.5);
    assert!(found.is_some(), "{:?}", &sc[at..at + 5]);
    let later = &sc[at + 100..at + 400];
    let alarms = later.iter().filter(|x| **x >= 0.5).count();
    assert!(
        alarms <= 3,
        "the new level is the level: {alarms} alarms after"
    );
}

#[test]
fn more_noise_and_a_drift_are_found() {
    let mut s = seasonal(14 * 288, 13);
    let at = LEARN + 200;
    let mut rng = SmallRng::seed_from_u64(99);
    for p in &mut s[at..at + 100] {
        p.1 += (rng.random::<f64>() - 0.5) * 40.0;
    }
    let sc = scores(&s);
    assert!(
        (at..at + 20).any(|i| sc[i] >= 0.5),
        "variance: {:?}",
        &sc[at..at + 20]
    );
    let mut s = seasonal(14 * 288, 17);
    let at = LEARN + 200;
    for (k, p) in s[at..].iter_mut().enumerate() {
        p.1 += 0.1 * k as f64;
    }
    let sc = scores(&s);
    let found = (at..at + 150).find(|i| sc[*i] >= 0.5);
    assert!(
        found.is_some(),
        "a drift of 0.05 sigma a point within 150 points"
    );
}

#[test]
fn a_score_depends_on_the_points_up_to_it_only() {
    let s = seasonal(3 * 288, 5);
    let a = scores(&s);
    let mut changed = s.clone();
    for p in &mut changed[500..] {
        p.1 = -1e9;
    }
    let b = scores(&changed);
    assert_eq!(a[..500], b[..500]);
    assert_ne!(a[500..], b[500..]);
}

#[test]
fn constant_series_and_bad_values_are_defined() {
    let mut d = Detector::new();
    for i in 0..100 {
        let v = d.observe(T0 + i * 60, 42.0);
        assert_eq!(v.score, 0.0);
    }
    let v = d.observe(T0 + 100 * 60, 43.0);
    assert!(v.score > 0.9, "a change after a constant run: {}", v.score);
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let v = d.observe(T0 + 101 * 60, bad);
        assert_eq!(v.score, 0.0);
        assert!(v.expected.is_finite());
    }
    let mut d = Detector::new();
    assert!(d.is_empty());
    for i in 0..WARMUP {
        assert_eq!(
            d.observe(T0 + i as i64, 1e12 * i as f64).score,
            0.0,
            "warming up"
        );
    }
    assert_eq!(d.len(), WARMUP);
}

#[test]
fn a_flat_series_at_one_minute_steps_and_an_hourly_one() {
    for (step, n) in [(60_i64, 20_000_usize), (3600, 2_000)] {
        let mut rng = SmallRng::seed_from_u64(step as u64);
        let mut s: Vec<(i64, f64)> = (0..n)
            .map(|i| {
                let noise: f64 = (0..4).map(|_| rng.random::<f64>() - 0.5).sum::<f64>();
                (T0 + i as i64 * step, 50.0 + 3.0 * noise)
            })
            .collect();
        let spike = n - 100;
        s[spike].1 += 30.0;
        let sc = scores(&s);
        let alarms = sc[200..spike].iter().filter(|x| **x >= 0.5).count();
        assert!(alarms <= 2, "step {step}: {alarms} alarms on noise");
        assert!(sc[spike] > 0.9, "step {step}: spike {}", sc[spike]);
    }
}

/// The labelled sets (`flowgate anomalies --evaluate`), one seed: a floor under what the
/// detector finds and how often it cries wolf, so that a change that makes it worse fails.
#[test]
fn the_labelled_sets_are_found_with_few_false_alarms() {
    use super::eval::{evaluate, suite};
    let sets = suite(1..=1);
    let scores: Vec<Vec<f64>> = sets.iter().map(|s| scores(&s.points)).collect();
    let at_half = evaluate(&sets, &scores, 0.5);
    assert!(at_half.found >= 15, "{at_half:?}");
    let rate = at_half.false_alarms as f64 * 10_000.0 / at_half.points as f64;
    assert!(rate < 60.0, "{rate} false alarms per 10k points");
    let strict = evaluate(&sets, &scores, 0.95);
    assert!(strict.normalized > 0.0, "{strict:?}");
}
