use super::*;

const DAY: u64 = 86_400;

/// A day of minutes: `f(minute)` for each.
fn minutes(f: impl Fn(u64) -> f64) -> Vec<(u64, f64)> {
    (0..1440).map(|m| (m * 60, f(m))).collect()
}

fn stage(name: &str, points: Vec<(u64, f64)>) -> (String, Vec<(u64, f64)>) {
    (name.to_string(), points)
}

#[test]
fn the_dominant_stage_is_named_and_a_growing_queue_is_a_rising_trend() {
    let requests = minutes(|_| 10.0);
    let stages = [
        stage("gateway", minutes(|_| 0.1)),
        stage("first_byte", minutes(|m| 400.0 + (m % 7) as f64 * 10.0)),
        // From 10 ms to 130 ms over the day.
        stage("queue", minutes(|m| 10.0 + m as f64 / 12.0)),
        stage("generation", minutes(|_| 100.0)),
    ];
    let r = analyse("chat", &stages, &requests, &[], (0, DAY));
    assert_eq!(r.dominant.as_deref(), Some("first_byte"));
    assert_eq!(r.advice, Some(advice("first_byte")));
    let names: Vec<&str> = r.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(names, ["first_byte", "generation", "queue", "gateway"]);
    let share: f64 = r.stages.iter().map(|s| s.share).sum();
    assert!((share - 1.0).abs() < 1e-9, "{share}");
    assert!(
        (r.mean_ms - (430.0 + 100.0 + 70.0 + 0.1)).abs() < 1.0,
        "{}",
        r.mean_ms
    );
    assert_eq!(r.requests, 10.0 * 60.0 * 1440.0);
    let queue = &r.stages[2];
    assert_eq!(queue.trend.direction, "rising");
    // 120 ms a day.
    assert!(
        (queue.trend.ms_per_day - 120.0).abs() < 5.0,
        "{:?}",
        queue.trend
    );
    assert_eq!(r.stages[0].trend.direction, "steady");
    assert_eq!(r.stages[3].trend.direction, "steady");
    assert!(
        r.findings[0].contains("first_byte takes 72%"),
        "{:?}",
        r.findings
    );
    assert!(
        r.findings.iter().any(|f| f.contains("queue is rising")),
        "{:?}",
        r.findings
    );
}

#[test]
fn means_are_weighted_by_requests_and_a_slow_minute_makes_no_trend() {
    // A quiet minute with a slow answer counts for its one request, not for half.
    let requests = vec![(0, 99.0), (60, 1.0)];
    let stages = [stage("first_byte", vec![(0, 100.0), (60, 10_100.0)])];
    let r = analyse("chat", &stages, &requests, &[], (0, 120));
    assert!((r.stages[0].mean_ms - 200.0).abs() < 1e-9, "{:?}", r.stages);
    assert_eq!(r.stages[0].trend.direction, "unknown");
    // A steady stage with one minute a hundred times slower is still steady.
    let requests = minutes(|_| 5.0);
    let stages = [stage(
        "connect",
        minutes(|m| if m == 1300 { 500.0 } else { 5.0 }),
    )];
    let r = analyse("chat", &stages, &requests, &[], (0, DAY));
    assert_eq!(r.stages[0].trend.direction, "steady", "{:?}", r.stages[0]);
}

#[test]
fn a_stage_over_its_budget_is_a_finding() {
    let requests = minutes(|_| 2.0);
    let stages = [
        stage("queue", minutes(|_| 80.0)),
        stage("first_byte", minutes(|_| 300.0)),
    ];
    let budgets = [
        ("queue".to_string(), 100.0),
        ("queue".to_string(), 50.0),
        ("first_byte".to_string(), 1000.0),
    ];
    let r = analyse("chat", &stages, &requests, &budgets, (0, DAY));
    let queue = r.stages.iter().find(|s| s.stage == "queue").unwrap();
    // The tightest of two budgets holds.
    assert_eq!((queue.budget_ms, queue.over_budget), (Some(50.0), true));
    let fb = r.stages.iter().find(|s| s.stage == "first_byte").unwrap();
    assert_eq!((fb.budget_ms, fb.over_budget), (Some(1000.0), false));
    assert!(
        r.findings
            .iter()
            .any(|f| f
                == "on route chat, queue is over its budget: 80.0 ms per request against 50.0 ms"),
        "{:?}",
        r.findings
    );
}

#[test]
fn a_route_without_requests_names_nothing_and_has_no_nan() {
    let stages = [stage("first_byte", vec![(0, f64::NAN)])];
    let r = analyse("idle", &stages, &[], &[], (0, DAY));
    assert_eq!(r.dominant, None);
    assert_eq!(r.advice, None);
    assert!(r.findings.is_empty());
    assert_eq!(r.stages[0].mean_ms, 0.0);
    assert_eq!(r.stages[0].share, 0.0);
    assert_eq!(r.stages[0].trend.direction, "unknown");
    assert_eq!(r.requests, 0.0);
    let r = analyse("none", &[], &[(0, 3.0)], &[], (0, 0));
    assert_eq!(r.mean_ms, 0.0);
    assert!(r.stages.is_empty());
}
