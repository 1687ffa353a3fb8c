use super::*;

const T0: u64 = 1_767_571_200;
const DAY: f64 = 24.0;

fn resource(limit: f64) -> Resource {
    Resource {
        name: "rate limit \"global\"".into(),
        kind: "request_rate",
        limit,
        unit: "requests/s".into(),
        series: "requests_per_second".into(),
        change: "raise [[rate_limits]] \"global\" amount".into(),
        daily_mean: false,
    }
}

/// `days` of hourly peaks: a daily cycle around `base`, growing by `per_day` of `base` a
/// day, with a little deterministic noise.
fn hourly(days: usize, base: f64, per_day: f64) -> Vec<f64> {
    (0..days * 24)
        .map(|h| {
            let d = h as f64 / DAY;
            let hour = (h % 24) as f64;
            let cycle = 1.0 + 0.3 * (hour / DAY * std::f64::consts::TAU).sin();
            let noise = ((h * 7919) % 17) as f64 / 17.0 - 0.5;
            base * (1.0 + per_day * d) * cycle + noise
        })
        .collect()
}

fn days_after(last: u64, t: u64) -> f64 {
    (t as f64 - last as f64) / 86_400.0
}

#[test]
fn a_growing_demand_runs_out_when_its_growth_says() {
    // 60 days from 100 growing 1% of it a day, peaking at 1.3 times: the daily peak is
    // 130·(1 + 0.01·d), 260 at d = 100: 40 days after the history.
    let y = hourly(60, 100.0, 0.01);
    let last = T0 + (y.len() as u64 - 1) * 3600;
    let limit = 260.0;
    let o = outlook(&resource(limit), &y, last, &Scenario::standard()[0], 90);
    let r = o.runs_out.expect("runs out within 90 days");
    assert!(!r.extrapolated);
    let at = days_after(last, r.at);
    assert!(
        (at - 40.0).abs() < 2.0,
        "runs out {at:.1} days on, not ~40: {o:?}"
    );
    assert!((o.trend_per_day - 1.3).abs() < 0.1, "{o:?}");
    assert!(
        r.earliest <= r.at && r.latest.is_none_or(|l| l >= r.at),
        "{r:?}"
    );
    assert!((o.utilization - 208.0 / 260.0).abs() < 0.02, "{o:?}");
    let rec = o.recommendation.expect("a recommendation");
    assert!(
        rec.starts_with("raise [[rate_limits]] \"global\" amount to at least "),
        "{rec}"
    );
    // Growth brings it forward.
    let g = outlook(&resource(limit), &y, last, &Scenario::standard()[2], 90);
    assert!(g.runs_out.unwrap().at < r.at);
}

#[test]
fn a_flat_demand_runs_out_only_by_growth_or_a_peak() {
    let y = hourly(30, 50.0, 0.0);
    let last = T0 + (y.len() as u64 - 1) * 3600;
    let limit = 130.0;
    let [baseline, growth10, _, peak] = <[Scenario; 4]>::try_from(Scenario::standard()).unwrap();
    // The daily peak is 65: half the limit.
    let b = outlook(&resource(limit), &y, last, &baseline, 90);
    assert!(b.runs_out.is_none(), "{b:?}");
    assert!(b.recommendation.is_none());
    assert!((b.utilization - 0.5).abs() < 0.02, "{b:?}");
    // +10% a month doubles it in ln 2 / ln 1.1 = 7.27 months: 221 days.
    let g = outlook(&resource(limit), &y, last, &growth10, 90);
    let r = g.runs_out.expect("growth runs it out");
    assert!(r.extrapolated);
    let at = days_after(last, r.at);
    assert!((at - 221.0).abs() < 15.0, "{at:.1} days: {g:?}");
    assert!(r.earliest <= r.at);
    // Twice the usual: 130 at once.
    let p = outlook(&resource(limit * 0.99), &y, last, &peak, 90);
    assert_eq!(p.runs_out.map(|r| r.at), Some(last));
    assert!(p.recommendation.is_some());
}

#[test]
fn no_history_and_bad_numbers_are_defined() {
    let o = outlook(&resource(10.0), &[], T0, &Scenario::standard()[1], 90);
    assert!(o.runs_out.is_none());
    assert_eq!((o.peak_now, o.utilization), (0.0, 0.0));
    let y = vec![f64::NAN, 5.0, f64::INFINITY];
    let o = outlook(
        &resource(0.0),
        &y,
        T0,
        &Scenario::custom("x", -2.0, f64::NAN, ""),
        90,
    );
    assert!(o.utilization.is_finite() && o.utilization_at_horizon.is_finite());
    assert_eq!(round_up(1234.0), "1300");
    assert_eq!(round_up(0.0123), "0.013");
    assert_eq!(round_up(f64::NAN), "0");
}

#[test]
fn a_budget_is_judged_by_its_days_means() {
    // Spend of 1 to 3 USD an hour (mean 2), growing 2% of it a day: a day's mean reaches
    // 2.5 (a daily budget of 60 USD) at d = 12.5 after the history's start... 30 days of
    // it: 2·(1 + 0.02·d) = 2.5 at d = 12.5, so already past; 3.6 at d = 40.
    let y: Vec<f64> = (0..30 * 24)
        .map(|h| {
            let d = h as f64 / DAY;
            2.0 * (1.0 + 0.02 * d)
                * (1.0 + 0.5 * ((h % 24) as f64 / DAY * std::f64::consts::TAU).sin())
        })
        .collect();
    let last = T0 + (y.len() as u64 - 1) * 3600;
    let budget = Resource {
        daily_mean: true,
        limit: 3.6,
        unit: "USD/hour".into(),
        ..resource(0.0)
    };
    let o = outlook(&budget, &y, last, &Scenario::standard()[0], 90);
    assert!(
        (o.peak_now - 2.0 * (1.0 + 0.02 * 29.5)).abs() < 0.1,
        "{o:?}"
    );
    let at = days_after(last, o.runs_out.expect("runs out").at);
    assert!((at - 10.5).abs() < 1.5, "{at:.1}: {o:?}");
    // By its peaks it would run out now (the peak hour is 1.5 times the mean).
    let by_peak = outlook(
        &Resource {
            daily_mean: false,
            ..budget
        },
        &y,
        last,
        &Scenario::standard()[0],
        90,
    );
    assert_eq!(by_peak.runs_out.map(|r| r.at), Some(last));
}
