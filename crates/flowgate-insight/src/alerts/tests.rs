use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use flowgate_config::{AlertKind, AlertRule, Op, RawAlertRule, Severity};

use super::*;

/// Values set by the test.
#[derive(Default)]
struct Fake {
    values: RefCell<HashMap<(String, u64), f64>>,
    last: RefCell<HashMap<String, u64>>,
    budget: RefCell<Option<f64>>,
    bad: RefCell<HashMap<u64, f64>>,
    /// Open anomalies: (series, score).
    anomalies: RefCell<Vec<(String, f64)>>,
}

impl Fake {
    fn set(&self, series: &str, window: u64, v: Option<f64>) {
        let k = (series.to_string(), window);
        match v {
            Some(v) => self.values.borrow_mut().insert(k, v),
            None => self.values.borrow_mut().remove(&k),
        };
    }
}

impl Source for Fake {
    fn value(&self, series: &str, now: u64, window: Duration) -> Option<f64> {
        let _ = now;
        self.values
            .borrow()
            .get(&(series.to_string(), window.as_secs()))
            .copied()
    }
    fn last_seen(&self, series: &str) -> Option<u64> {
        self.last.borrow().get(series).copied()
    }
    fn budget_percent(&self, _: Option<&str>, _: u64) -> Option<(String, f64)> {
        self.budget.borrow().map(|p| ("hourly".to_string(), p))
    }
    fn bad_ratio(&self, _: &str, _: Option<u64>, _: u64, window: Duration) -> Option<f64> {
        self.bad.borrow().get(&window.as_secs()).copied()
    }
    fn anomaly(&self, pattern: Option<&str>, min_score: f64) -> Option<(f64, String)> {
        self.anomalies
            .borrow()
            .iter()
            .filter(|(s, score)| {
                *score >= min_score && pattern.is_none_or(|p| flowgate_config::series_matches(p, s))
            })
            .map(|(s, score)| (*score, format!("{s} is anomalous")))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    }
}

fn rule(name: &str, severity: Severity, kind: AlertKind, for_secs: u64) -> AlertRule {
    AlertRule {
        name: name.into(),
        severity,
        kind,
        for_: Duration::from_secs(for_secs),
        labels: BTreeMap::from([("team".to_string(), "platform".to_string())]),
        group: "chat".into(),
        repeat: Duration::from_secs(3600),
        description: format!("{name} says so"),
        notify: None,
        raw: RawAlertRule::default(),
    }
}

fn errors_over(value: f64) -> AlertKind {
    AlertKind::Threshold {
        series: "error_ratio{route=\"chat\"}".into(),
        window: Duration::from_secs(10),
        op: Op::Above,
        value,
    }
}

const T0: u64 = 1_796_083_200;

fn kinds(events: &[Event]) -> Vec<(String, EventKind, bool)> {
    events
        .iter()
        .map(|e| (e.rule.clone(), e.kind, e.notify()))
        .collect()
}

#[test]
fn a_threshold_fires_after_its_for_repeats_and_resolves() {
    let src = Fake::default();
    let mut e = Engine::new(vec![rule(
        "chat-errors",
        Severity::Critical,
        errors_over(0.05),
        5,
    )]);
    let s = "error_ratio{route=\"chat\"}";
    src.set(s, 10, Some(0.01));
    assert!(e.evaluate(&src, T0).is_empty());
    src.set(s, 10, Some(0.2));
    assert!(e.evaluate(&src, T0 + 1).is_empty());
    assert_eq!(e.alerts()[0].status, Status::Pending);
    // `for` holds: 5 s after it began.
    assert!(e.evaluate(&src, T0 + 5).is_empty());
    let fired = e.evaluate(&src, T0 + 6);
    assert_eq!(
        kinds(&fired),
        [("chat-errors".into(), EventKind::Firing, true)]
    );
    assert_eq!(
        fired[0].summary,
        "error_ratio{route=\"chat\"} over 10s is 0.2 (> 0.05)"
    );
    assert_eq!(fired[0].labels["team"], "platform");
    // Firing: no new event until `repeat`.
    assert!(e.evaluate(&src, T0 + 60).is_empty());
    let again = e.evaluate(&src, T0 + 6 + 3600);
    assert_eq!(
        kinds(&again),
        [("chat-errors".into(), EventKind::Repeat, true)]
    );
    src.set(s, 10, Some(0.0));
    let resolved = e.evaluate(&src, T0 + 4000);
    assert_eq!(
        kinds(&resolved),
        [("chat-errors".into(), EventKind::Resolved, true)]
    );
    assert_eq!(resolved[0].fired_at, Some(T0 + 6));
    assert_eq!(e.alerts()[0].status, Status::Inactive);
}

#[test]
fn a_condition_that_breaks_before_its_for_never_fires_and_no_data_resolves() {
    let src = Fake::default();
    let s = "error_ratio{route=\"chat\"}";
    let mut e = Engine::new(vec![rule(
        "flaky",
        Severity::Warning,
        errors_over(0.05),
        30,
    )]);
    src.set(s, 10, Some(0.5));
    e.evaluate(&src, T0);
    src.set(s, 10, Some(0.0));
    e.evaluate(&src, T0 + 10);
    src.set(s, 10, Some(0.5));
    e.evaluate(&src, T0 + 20);
    assert!(
        e.evaluate(&src, T0 + 45).is_empty(),
        "pending again since T0 + 20"
    );
    assert_eq!(kinds(&e.evaluate(&src, T0 + 50)).len(), 1);
    src.set(s, 10, None);
    assert_eq!(
        kinds(&e.evaluate(&src, T0 + 51)),
        [("flaky".into(), EventKind::Resolved, true)]
    );
}

#[test]
fn rate_of_change_absence_budgets_and_burn_rates_fire() {
    let src = Fake::default();
    let rps = "requests_per_second{route=\"chat\"}";
    let mut e = Engine::new(vec![
        rule(
            "jump",
            Severity::Warning,
            AlertKind::RateOfChange {
                series: rps.into(),
                window: Duration::from_secs(300),
                percent: true,
                op: Op::Above,
                value: 100.0,
            },
            0,
        ),
        AlertRule {
            group: "other".into(),
            ..rule(
                "gone",
                Severity::Warning,
                AlertKind::Absent { series: rps.into() },
                60,
            )
        },
        AlertRule {
            group: "money".into(),
            ..rule(
                "spend",
                Severity::Warning,
                AlertKind::Budget {
                    budget: None,
                    at_percent: 80.0,
                },
                0,
            )
        },
        AlertRule {
            group: "slo".into(),
            ..rule(
                "slo",
                Severity::Critical,
                AlertKind::BurnRate {
                    route: "chat".into(),
                    objective: 0.999,
                    latency_ms: None,
                    long: Duration::from_secs(3600),
                    short: Duration::from_secs(300),
                    factor: 14.4,
                },
                0,
            )
        },
    ]);
    // The value now and 5 minutes ago read the same map: equal, no change.
    src.set(rps, 300, Some(10.0));
    src.last.borrow_mut().insert(rps.into(), T0);
    *src.budget.borrow_mut() = Some(50.0);
    src.bad.borrow_mut().insert(3600, 0.02);
    src.bad.borrow_mut().insert(300, 0.001);
    assert!(e.evaluate(&src, T0).is_empty());
    // The budget at 80%, the short window burning too (2% of requests failing is 20x a
    // 0.1% budget), and no requests for a minute.
    *src.budget.borrow_mut() = Some(80.0);
    src.bad.borrow_mut().insert(300, 0.02);
    let fired = e.evaluate(&src, T0 + 60);
    let mut names: Vec<String> = fired.iter().map(|f| f.rule.clone()).collect();
    names.sort();
    assert_eq!(names, ["gone", "slo", "spend"]);
    let slo = fired.iter().find(|f| f.rule == "slo").unwrap();
    assert_eq!(
        slo.summary,
        "route chat burns its error budget 20x over 1h and 20x over 5m (alert above 14.4x)"
    );
    // Back: the absent series seen again, the short window calm.
    src.last.borrow_mut().insert(rps.into(), T0 + 61);
    src.bad.borrow_mut().insert(300, 0.0);
    let resolved = e.evaluate(&src, T0 + 62);
    let mut names: Vec<String> = resolved.iter().map(|f| f.rule.clone()).collect();
    names.sort();
    assert_eq!(names, ["gone", "slo"]);
}

#[test]
fn a_critical_alert_inhibits_its_groups_others_and_silences_hold_until_they_expire() {
    let src = Fake::default();
    let s = "error_ratio{route=\"chat\"}";
    let mut e = Engine::new(vec![
        rule("chat-errors-page", Severity::Critical, errors_over(0.5), 0),
        rule("chat-errors-warn", Severity::Warning, errors_over(0.05), 0),
        AlertRule {
            group: "elsewhere".into(),
            ..rule("elsewhere-warn", Severity::Warning, errors_over(0.05), 0)
        },
    ]);
    src.set(s, 10, Some(0.1));
    // Only the warnings fire: notified.
    let first = kinds(&e.evaluate(&src, T0));
    assert_eq!(
        first,
        [
            ("chat-errors-warn".into(), EventKind::Firing, true),
            ("elsewhere-warn".into(), EventKind::Firing, true)
        ]
    );
    // The page fires: the warning of its group is inhibited from now on.
    src.set(s, 10, Some(0.9));
    assert_eq!(
        kinds(&e.evaluate(&src, T0 + 1)),
        [("chat-errors-page".into(), EventKind::Firing, true)]
    );
    let warn = e
        .alerts()
        .into_iter()
        .find(|a| a.rule == "chat-errors-warn")
        .unwrap();
    assert!(warn.inhibited);
    let other = e
        .alerts()
        .into_iter()
        .find(|a| a.rule == "elsewhere-warn")
        .unwrap();
    assert!(!other.inhibited);
    // Silenced for 10 minutes: the page's repeat is not notified, then it is again.
    let id = e.silence(
        "chat-*".into(),
        BTreeMap::new(),
        T0 + 3600 + 600,
        "deploying".into(),
        T0 + 2,
    );
    assert_eq!(e.silences(T0 + 2).len(), 1);
    let repeat = e.evaluate(&src, T0 + 3601);
    assert!(repeat.iter().all(|ev| ev.kind == EventKind::Repeat));
    let page = repeat
        .iter()
        .find(|ev| ev.rule == "chat-errors-page")
        .unwrap();
    assert!(page.silenced && !page.notify());
    let warn = repeat
        .iter()
        .find(|ev| ev.rule == "chat-errors-warn")
        .unwrap();
    assert!(warn.inhibited && !warn.notify());
    assert!(
        repeat
            .iter()
            .find(|ev| ev.rule == "elsewhere-warn")
            .unwrap()
            .notify()
    );
    assert!(e.unsilence(id));
    assert!(!e.unsilence(id));
    // Resolving the page lifts the inhibition.
    src.set(s, 10, Some(0.1));
    let calm = e.evaluate(&src, T0 + 3700);
    assert_eq!(
        kinds(&calm),
        [("chat-errors-page".into(), EventKind::Resolved, true)]
    );
    let warn = e
        .alerts()
        .into_iter()
        .find(|a| a.rule == "chat-errors-warn")
        .unwrap();
    assert!(!warn.inhibited);
}

#[test]
fn new_rules_keep_the_state_of_those_that_keep_their_name() {
    let src = Fake::default();
    src.set("error_ratio{route=\"chat\"}", 10, Some(0.9));
    let mut e = Engine::new(vec![rule("a", Severity::Warning, errors_over(0.5), 0)]);
    e.evaluate(&src, T0);
    e.set_rules(vec![
        rule("a", Severity::Critical, errors_over(0.5), 0),
        rule("b", Severity::Warning, errors_over(0.5), 0),
    ]);
    let ev = kinds(&e.evaluate(&src, T0 + 1));
    assert_eq!(
        ev,
        [("b".into(), EventKind::Firing, false)],
        "b inhibited by a, now critical"
    );
    e.set_rules(Vec::new());
    assert!(e.alerts().is_empty());
}

#[test]
fn an_anomaly_rule_fires_while_a_matching_anomaly_is_open() {
    let src = Fake::default();
    let kind = AlertKind::Anomaly {
        series: Some("latency_ms_p95*".into()),
        min_score: 0.95,
    };
    let mut e = Engine::new(vec![rule("latency-anomaly", Severity::Warning, kind, 0)]);
    assert!(e.evaluate(&src, T0).is_empty());
    assert_eq!(
        e.alerts()[0].summary,
        "no open anomaly on latency_ms_p95* scoring 0.95 or more"
    );
    // Another series, or too low a score: nothing.
    src.anomalies
        .borrow_mut()
        .push(("error_ratio{route=\"chat\"}".into(), 0.99));
    src.anomalies
        .borrow_mut()
        .push(("latency_ms_p95{route=\"chat\"}".into(), 0.91));
    assert!(e.evaluate(&src, T0 + 1).is_empty());
    src.anomalies.borrow_mut()[1].1 = 0.97;
    let fired = e.evaluate(&src, T0 + 2);
    assert_eq!(
        kinds(&fired),
        [("latency-anomaly".into(), EventKind::Firing, true)]
    );
    assert_eq!(fired[0].value, Some(0.97));
    assert_eq!(
        fired[0].summary,
        "latency_ms_p95{route=\"chat\"} is anomalous"
    );
    src.anomalies.borrow_mut().clear();
    let resolved = e.evaluate(&src, T0 + 3);
    assert_eq!(
        kinds(&resolved),
        [("latency-anomaly".into(), EventKind::Resolved, true)]
    );
}
