use super::*;
use flowgate_config::{AutomationAction, Schedule};
use jiff::tz::TimeZone;
use std::time::Duration;

fn rule(when: Trigger) -> Rule {
    Rule {
        name: "r".into(),
        when,
        action: AutomationAction::Strategy {
            pool: "llm".into(),
            to: "least_loaded".into(),
        },
        cooldown: Duration::from_secs(600),
        max_per_hour: 10,
        verify: None,
    }
}

fn alert() -> Trigger {
    Trigger::Alert {
        rule: "slow".into(),
        resolves: false,
    }
}

/// One cycle at `now` with `firing` alerts and `value` for every series.
fn cycle(e: &mut Engine, now: u64, firing: &[&str], value: Option<f64>) -> Vec<Step> {
    let firing: Vec<String> = firing.iter().map(|s| s.to_string()).collect();
    let value = move |_: &str, _: std::time::Duration| value;
    e.evaluate(&Facts {
        now,
        firing: &firing,
        anomalies: &[],
        runs_out: &[],
        budgets: &[],
        value: &value,
    })
}

fn kinds(steps: &[Step]) -> Vec<&'static str> {
    steps
        .iter()
        .map(|s| match s {
            Step::Act { .. } => "act",
            Step::Undo { .. } => "undo",
            Step::Kept { .. } => "kept",
            Step::Skipped { .. } => "skipped",
        })
        .collect()
}

#[test]
fn a_rule_acts_on_the_edge_once_and_cooldowns_hold() {
    let mut e = Engine::new(vec![rule(alert())]);
    assert_eq!(kinds(&cycle(&mut e, 0, &[], None)), Vec::<&str>::new());
    let s = cycle(&mut e, 30, &["slow"], None);
    assert_eq!(
        s,
        [Step::Act {
            rule: "r".into(),
            why: "alert slow fires".into()
        }]
    );
    // Still firing: nothing more.
    assert!(cycle(&mut e, 60, &["slow"], None).is_empty());
    // Resolved and firing again within the cooldown: skipped, and said why.
    assert!(cycle(&mut e, 90, &[], None).is_empty());
    let s = cycle(&mut e, 120, &["slow"], None);
    assert!(
        matches!(&s[..], [Step::Skipped { why, .. }] if why.contains("cooling down since its action at 30 until 630")),
        "{s:?}"
    );
    // Past the cooldown, the next edge acts.
    cycle(&mut e, 700, &[], None);
    assert_eq!(kinds(&cycle(&mut e, 730, &["slow"], None)), ["act"]);
}

#[test]
fn at_most_so_many_actions_an_hour_and_none_while_paused() {
    let mut r = rule(alert());
    r.cooldown = Duration::ZERO;
    r.max_per_hour = 2;
    let mut e = Engine::new(vec![r]);
    let mut acted = Vec::new();
    // The alert flaps every minute for an hour and a half.
    for m in 0..90u64 {
        let firing: &[&str] = if m % 2 == 1 { &["slow"] } else { &[] };
        for s in cycle(&mut e, m * 60, firing, None) {
            acted.push((m, s));
        }
    }
    let acts: Vec<u64> = acted
        .iter()
        .filter(|(_, s)| matches!(s, Step::Act { .. }))
        .map(|(m, _)| *m)
        .collect();
    assert_eq!(acts, [1, 3, 61, 63], "two in each hour");
    assert!(acted.iter().any(|(_, s)| matches!(s, Step::Skipped { why, .. } if why.contains("acted 2 time(s) in the last hour"))));

    let mut e = Engine::new(vec![rule(alert())]);
    e.paused = true;
    let s = cycle(&mut e, 0, &["slow"], None);
    assert!(
        matches!(&s[..], [Step::Skipped { why, .. }] if why.ends_with("but automation is paused")),
        "{s:?}"
    );
}

#[test]
fn an_action_that_does_not_help_is_undone() {
    let verified = |better: Better| Rule {
        verify: Some(Verify {
            series: "latency_ms_p95{route=\"chat\"}".into(),
            within: Duration::from_secs(600),
            better,
            by: 0.1,
        }),
        ..rule(alert())
    };
    // Latency 800 ms at the action, 760 ten minutes later: 5% is not the 10% asked.
    let mut e = Engine::new(vec![verified(Better::Lower)]);
    assert_eq!(kinds(&cycle(&mut e, 0, &["slow"], Some(800.0))), ["act"]);
    assert!(
        cycle(&mut e, 300, &["slow"], Some(700.0)).is_empty(),
        "not before its time"
    );
    let s = cycle(&mut e, 600, &["slow"], Some(760.0));
    assert!(
        matches!(&s[..], [Step::Undo { why, .. }] if why.contains("did not help") && why.contains("from 800.000 to 760.000 (-5%)")),
        "{s:?}"
    );
    // 800 → 600: kept.
    let mut e = Engine::new(vec![verified(Better::Lower)]);
    cycle(&mut e, 0, &["slow"], Some(800.0));
    assert_eq!(kinds(&cycle(&mut e, 600, &["slow"], Some(600.0))), ["kept"]);
    // A hit ratio that must rise, and a series that cannot be read: undone.
    let mut e = Engine::new(vec![verified(Better::Higher)]);
    cycle(&mut e, 0, &["slow"], Some(0.5));
    assert_eq!(kinds(&cycle(&mut e, 600, &["slow"], Some(0.6))), ["kept"]);
    let mut e = Engine::new(vec![verified(Better::Higher)]);
    cycle(&mut e, 0, &["slow"], None);
    assert_eq!(kinds(&cycle(&mut e, 600, &["slow"], None)), ["undo"]);
    // An action that failed awaits nothing.
    let mut e = Engine::new(vec![verified(Better::Lower)]);
    cycle(&mut e, 0, &["slow"], Some(800.0));
    e.failed("r");
    assert!(cycle(&mut e, 600, &["slow"], Some(900.0)).is_empty());
}

#[test]
fn business_hours_open_and_close_in_their_zone_across_a_dst_change() {
    let mut e = Engine::new(vec![rule(Trigger::Schedule {
        schedule: Schedule::parse("0 8 * * 1-5").unwrap(),
        zone: TimeZone::get("Europe/Berlin").unwrap(),
        open: Duration::from_secs(10 * 3600),
    })]);
    let ts = |s: &str| s.parse::<jiff::Timestamp>().unwrap().as_second() as u64;
    let mut steps = Vec::new();
    // Friday 2027-03-26 to Tuesday 2027-03-30, every quarter of an hour; the clocks move
    // forward on Sunday the 28th.
    let mut t = ts("2027-03-26T00:00:00Z");
    while t < ts("2027-03-30T00:00:00Z") {
        for s in cycle(&mut e, t, &[], None) {
            steps.push((
                jiff::Timestamp::from_second(t as i64).unwrap().to_string(),
                kinds(&[s])[0],
            ));
        }
        t += 900;
    }
    assert_eq!(
        steps,
        [
            // Friday 08:00 and 18:00 in Berlin (UTC+1).
            ("2027-03-26T07:00:00Z".to_string(), "act"),
            ("2027-03-26T17:00:00Z".to_string(), "undo"),
            // Monday 08:00 and 18:00 in Berlin (UTC+2 now); nothing at the weekend.
            ("2027-03-29T06:00:00Z".to_string(), "act"),
            ("2027-03-29T16:00:00Z".to_string(), "undo"),
        ]
    );
}

#[test]
fn anomalies_capacity_and_budgets_trigger_on_their_edge() {
    let mut e = Engine::new(vec![
        Rule {
            name: "odd".into(),
            ..rule(Trigger::Anomaly {
                pattern: "latency_ms_p95*".into(),
                min_score: 0.9,
            })
        },
        Rule {
            name: "soon".into(),
            ..rule(Trigger::RunsOut {
                resource: None,
                within: Duration::from_secs(14 * 86_400),
            })
        },
        Rule {
            name: "spend".into(),
            ..rule(Trigger::Budget {
                budget: Some("daily".into()),
                percent: 80.0,
            })
        },
    ]);
    let none = |_: &str, _: std::time::Duration| None;
    let anomalies = vec![
        ("latency_ms_p95{route=\"chat\"}".to_string(), 0.95),
        ("error_ratio{route=\"chat\"}".to_string(), 0.99),
    ];
    let runs_out = vec![("rate limit \"all\"".to_string(), Some(10 * 86_400))];
    let budgets = vec![("daily".to_string(), 85.0)];
    let s = e.evaluate(&Facts {
        now: 0,
        firing: &[],
        anomalies: &anomalies,
        runs_out: &runs_out,
        budgets: &budgets,
        value: &none,
    });
    let why: Vec<String> = s
        .iter()
        .map(|s| match s {
            Step::Act { why, .. } => why.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        why,
        [
            "an anomaly on latency_ms_p95{route=\"chat\"} scores 0.95",
            "rate limit \"all\" runs out in 10.0 days",
            "budget daily has spent 85%"
        ]
    );
    // Under its score, past its days, under its share: nothing.
    let mut e = Engine::new(e.rules().to_vec());
    let anomalies = vec![("latency_ms_p95{route=\"chat\"}".to_string(), 0.5)];
    let runs_out = vec![("rate limit \"all\"".to_string(), Some(30 * 86_400))];
    let budgets = vec![("daily".to_string(), 50.0)];
    assert!(
        e.evaluate(&Facts {
            now: 0,
            firing: &[],
            anomalies: &anomalies,
            runs_out: &runs_out,
            budgets: &budgets,
            value: &none
        })
        .is_empty()
    );
}
