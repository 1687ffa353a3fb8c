use std::str::FromStr;
use std::sync::Arc;

use flowgate_config::{BudgetAction, BudgetWindow, RawBudget};

use super::*;
use crate::ledger::{Dims, Retention, Totals};
use crate::usage::Usage;

/// 2026-12-01 00:00:00 UTC, a Tuesday.
const T0: u64 = 1_796_083_200;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn budget(
    name: &str,
    limit: &str,
    window: BudgetWindow,
    actions: &[(&str, ActionKind)],
) -> BudgetConfig {
    BudgetConfig {
        name: name.into(),
        scope: BudgetScope::Global,
        value: None,
        limit_usd: d(limit),
        window,
        timezone: jiff::tz::TimeZone::UTC,
        timezone_name: "UTC".into(),
        actions: actions
            .iter()
            .map(|(at, kind)| BudgetAction {
                at_percent: d(at),
                kind: kind.clone(),
            })
            .collect(),
        raw: RawBudget::default(),
    }
}

fn who(key: &str) -> Who<'_> {
    Who {
        key: Some(key),
        team: None,
        route: "chat",
        model: Some("gpt-4o-mini"),
    }
}

#[test]
fn a_budget_blocks_at_exactly_its_threshold_and_lifts_as_the_hour_moves_on() {
    let b = Budgets::new(
        &[budget(
            "hourly",
            "0.002",
            BudgetWindow::Hour,
            &[("100", ActionKind::Block)],
        )],
        None,
        false,
    );
    let w = who("a");
    b.charge(&w, d("0.0015"), T0 + 10);
    assert_eq!(b.check(&w, T0 + 11).block, None);
    b.charge(&w, d("0.0004999"), T0 + 70);
    assert_eq!(b.check(&w, T0 + 71).block, None, "a billionth under");
    b.charge(&w, d("0.0000001"), T0 + 80);
    let blocked = b.check(&w, T0 + 81).block.expect("at the limit: blocked");
    assert_eq!(
        (blocked.spent_nanos, blocked.limit_nanos),
        (2_000_000, 2_000_000)
    );
    // When the first minute's 0.0015 leaves the window, 60 minutes after that minute.
    assert_eq!(blocked.resets_at, T0 + 3600);
    assert!(b.check(&w, T0 + 3599).block.is_some());
    assert_eq!(
        b.check(&w, T0 + 3600).block,
        None,
        "lifted at the window's end"
    );
    assert_eq!(
        b.get("hourly").unwrap().status("", T0 + 3600).spent_nanos,
        500_000
    );
}

#[test]
fn calendar_days_begin_at_midnight_in_the_budgets_time_zone() {
    let mut cfg = budget(
        "daily",
        "1",
        BudgetWindow::Day,
        &[("100", ActionKind::Block)],
    );
    cfg.timezone = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    let b = Budgets::new(&[cfg], None, false);
    let w = who("a");
    // 22:30 UTC on 1 December is 23:30 in Berlin.
    b.charge(&w, d("1"), T0 + 22 * 3600 + 1800);
    let blocked = b.check(&w, T0 + 22 * 3600 + 1801).block.unwrap();
    // Midnight in Berlin is 23:00 UTC.
    assert_eq!(blocked.resets_at, T0 + 23 * 3600);
    assert_eq!(b.check(&w, T0 + 23 * 3600).block, None);
    let s = b.get("daily").unwrap().status("", T0 + 23 * 3600 + 5);
    assert_eq!(
        (s.window_start, s.window_end),
        (T0 + 23 * 3600, Some(T0 + 47 * 3600))
    );
}

#[test]
fn a_day_across_a_dst_change_is_23_hours_long_and_months_are_the_calendars() {
    let mut cfg = budget(
        "daily",
        "1",
        BudgetWindow::Day,
        &[("100", ActionKind::Block)],
    );
    cfg.timezone = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    let c = Counter::new(&cfg);
    // 2027-03-28 (clocks go forward in Berlin), noon UTC.
    let noon = 1_806_235_200;
    let (start, end) = (c.window_start(noon), c.window_end(noon).unwrap());
    assert_eq!(end - start, 23 * 3600);
    cfg.window = BudgetWindow::Month;
    cfg.timezone = jiff::tz::TimeZone::UTC;
    let c = Counter::new(&cfg);
    // February 2027: 28 days.
    let feb = 1_801_828_800; // 2027-02-05T12:00:00Z
    assert_eq!(
        c.window_end(feb).unwrap() - c.window_start(feb),
        28 * 86_400
    );
}

#[test]
fn each_key_has_its_own_count_and_a_matched_key_only_its_own() {
    let mut each = budget(
        "per-key",
        "1",
        BudgetWindow::Day,
        &[("100", ActionKind::Block)],
    );
    each.scope = BudgetScope::Key;
    let mut bob = budget(
        "bob",
        "0.5",
        BudgetWindow::Day,
        &[("100", ActionKind::Block)],
    );
    bob.scope = BudgetScope::Key;
    bob.value = Some("bob".into());
    let b = Budgets::new(&[each, bob], None, false);
    b.charge(&who("alice"), d("1"), T0);
    b.charge(&who("bob"), d("0.5"), T0);
    let a = b.check(&who("alice"), T0).block.unwrap();
    assert_eq!((a.budget.as_str(), a.value.as_str()), ("per-key", "alice"));
    let bb = b.check(&who("bob"), T0).block.unwrap();
    assert_eq!(bb.budget, "bob", "bob's own budget, reached first");
    assert_eq!(b.check(&who("carol"), T0).block, None);
    // A request without a key is not counted by key budgets.
    let anon = Who {
        key: None,
        ..who("x")
    };
    b.charge(&anon, d("5"), T0);
    assert_eq!(b.check(&anon, T0).block, None);
}

#[test]
fn thresholds_crossed_upward_are_events_once_each() {
    let b = Budgets::new(
        &[budget(
            "warn",
            "100",
            BudgetWindow::Hour,
            &[
                ("50", ActionKind::Notify),
                ("80", ActionKind::Notify),
                ("100", ActionKind::Notify),
            ],
        )],
        None,
        false,
    );
    let w = who("a");
    b.charge(&w, d("49"), T0);
    assert!(b.events().is_empty());
    b.charge(&w, d("40"), T0 + 1); // 89: crosses 50 and 80
    b.charge(&w, d("5"), T0 + 2); // 94: nothing new
    let e: Vec<(String, &str, String)> = b
        .events()
        .iter()
        .map(|e| (e.threshold_percent.clone(), e.action, e.spent_usd.clone()))
        .collect();
    assert_eq!(
        e,
        [
            ("50".into(), "notify", "89".into()),
            ("80".into(), "notify", "89".into())
        ]
    );
    assert_eq!(b.check(&w, T0 + 3).block, None, "notify never refuses");
}

#[test]
fn downgrades_say_where_to_and_whom_they_spare() {
    let b = Budgets::new(
        &[
            budget(
                "soft",
                "10",
                BudgetWindow::Hour,
                &[(
                    "50",
                    ActionKind::Downgrade {
                        to: DowngradeTo::Cheaper,
                        spare: vec![],
                    },
                )],
            ),
            budget(
                "emergency",
                "20",
                BudgetWindow::Hour,
                &[(
                    "50",
                    ActionKind::Downgrade {
                        to: DowngradeTo::Cheapest,
                        spare: vec![Priority::Critical],
                    },
                )],
            ),
        ],
        None,
        false,
    );
    let w = who("a");
    b.charge(&w, d("6"), T0);
    let v = b.check(&w, T0);
    assert_eq!(v.downgrade.as_ref().unwrap().to, DowngradeTo::Cheaper);
    b.charge(&w, d("5"), T0);
    let v = b.check(&w, T0);
    let dg = v.downgrade.unwrap();
    assert_eq!(
        (dg.budget.as_str(), dg.to, dg.spare),
        ("emergency", DowngradeTo::Cheapest, vec![Priority::Critical])
    );
}

#[test]
fn counters_are_filled_from_the_ledger_and_kept_across_a_rebuild() {
    let ledger = Ledger::in_memory(Retention::default()).unwrap();
    let spend = |usd: &str| {
        Totals::of(
            &Usage {
                prompt_tokens: 10,
                ..Usage::default()
            },
            false,
            d(usd),
            false,
        )
    };
    let dims = |key: &str| Dims {
        key: Arc::from(key),
        route: Arc::from("chat"),
        ..Dims::default()
    };
    // Two hours ago (out of a rolling hour), and twice in the last hour.
    ledger.add(T0 - 7200, dims("a"), &spend("5"));
    ledger.add(T0 - 600, dims("a"), &spend("1"));
    ledger.add(T0 - 60, dims("b"), &spend("2"));
    ledger.flush(T0).unwrap();
    let mut per_key = budget(
        "per-key",
        "10",
        BudgetWindow::Hour,
        &[("100", ActionKind::Block)],
    );
    per_key.scope = BudgetScope::Key;
    let b = Budgets::new(
        &[
            budget(
                "all",
                "10",
                BudgetWindow::Hour,
                &[("100", ActionKind::Block)],
            ),
            per_key,
        ],
        None,
        false,
    );
    b.seed(&ledger, T0, None).unwrap();
    let all = b.get("all").unwrap();
    assert_eq!(all.status("", T0).spent_nanos, 3_000_000_000);
    let pk = b.get("per-key").unwrap();
    assert_eq!(pk.status("a", T0).spent_nanos, 1_000_000_000);
    assert_eq!(pk.status("b", T0).spent_nanos, 2_000_000_000);
    // A rebuild (a reload) keeps what was counted.
    let again = Budgets::new(std::slice::from_ref(&all.config), Some(&b), false);
    assert_eq!(
        again.get("all").unwrap().status("", T0).spent_nanos,
        3_000_000_000
    );
}
