//! The automation cycle ([`crate::automation`]): every `[automation] interval` (and on
//! `POST /api/v1/automation/cycle`) the gateway tells the engine what it knows (alerts
//! firing, anomalies open, when capacity runs out under the baseline, budgets' spend,
//! series' values), then carries out what it asks: an action (a pool's strategy
//! switched, a pool scaled through its actuator, a change to the running config laid
//! over the file's and built the way a reload builds, the cache warmed, the notifiers
//! told), an undo (the state before put back), a verdict kept. Every step goes to the
//! audit log. A failed action or undo is logged as a warning, counted, and announced: an
//! event in the alert history, to every notifier; a scale that failed half-way is rolled
//! back to the size before.

use std::sync::Arc;
use std::time::Duration;

use flowgate_config::{AutomationAction, AutomationRule, Replicas, Severity, Trigger};
use flowgate_insight::alerts::{Event, Status};
use flowgate_insight::automation::{Facts, Step};
use flowgate_insight::scaling::{Decision, Direction, Input};

use crate::automation::{Entry, Undo};
use crate::gateway::Gateway;

/// Runs a cycle every `[automation] interval` while there are rules, until `stopped`.
pub(crate) fn spawn(gw: &Arc<Gateway>, stopped: tokio::sync::watch::Receiver<bool>) {
    crate::control_loop::every(
        gw,
        stopped,
        |c| {
            let a = &c.automation;
            (a.interval, a.enabled && !a.rules.is_empty())
        },
        |gw| async move {
            cycle(&gw).await;
        },
    );
}

/// What the gateway knows, for the rules that ask.
struct Known {
    firing: Vec<String>,
    anomalies: Vec<(String, f64)>,
    runs_out: Vec<(String, Option<u64>)>,
    budgets: Vec<(String, f64)>,
}

fn known(gw: &Gateway, rules: &[AutomationRule], now: u64) -> Known {
    let firing = gw
        .alerting()
        .with(|e| {
            e.alerts()
                .into_iter()
                .filter(|a| a.status == Status::Firing)
                .map(|a| a.rule)
                .collect()
        })
        .unwrap_or_default();
    let mut k = Known {
        firing,
        anomalies: Vec::new(),
        runs_out: Vec::new(),
        budgets: Vec::new(),
    };
    for r in rules {
        match &r.when {
            Trigger::Anomaly { pattern, min_score } => {
                if let Some((score, series)) = gw.anomalies().worst_open(Some(pattern), *min_score)
                {
                    k.anomalies.push((series, score));
                }
            }
            Trigger::Budget { budget, .. } => {
                let budgets = gw.spending().budgets().load();
                if let Some(b) = crate::alerting::fullest_budget(&budgets, budget.as_deref(), now) {
                    k.budgets.push(b);
                }
            }
            Trigger::RunsOut { .. } if k.runs_out.is_empty() => {
                k.runs_out = crate::capacity::runs_out(gw, now);
            }
            _ => {}
        }
    }
    k
}

/// The median of `series`' 10-second points over `span` before `now`: what a
/// verification compares (one odd point among them moves a mean, not a median).
fn median(
    h: &flowgate_telemetry::history::History,
    series: &str,
    now: u64,
    span: Duration,
) -> Option<f64> {
    let points = h
        .read(
            series,
            flowgate_telemetry::history::Resolution::TenSeconds,
            now.saturating_sub(span.as_secs().max(10)),
            now + 1,
        )
        .ok()?;
    let mut v: Vec<f64> = points
        .iter()
        .map(|p| p.value)
        .filter(|v| v.is_finite())
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

/// One cycle now: the steps taken, as logged.
pub(crate) async fn cycle(gw: &Arc<Gateway>) -> Vec<Entry> {
    let now = gw.clock().unix_millis() / 1000;
    let rt = gw.runtime();
    let rules = &rt.config.automation.rules;
    let k = known(gw, rules, now);
    // Decided in a block: what the engine reads is not held across the actions' waits.
    let steps = {
        let value =
            |series: &str, span: Duration| gw.history().and_then(|h| median(h, series, now, span));
        let facts = Facts {
            now,
            firing: &k.firing,
            anomalies: &k.anomalies,
            runs_out: &k.runs_out,
            budgets: &k.budgets,
            value: &value,
        };
        gw.automation()
            .with_engine(rules, |e| e.evaluate(&facts))
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for step in steps {
        let (done, ok) = match &step {
            Step::Act { rule, why } => match rules.iter().find(|r| r.name == *rule) {
                Some(r) => act(gw, r, why).await,
                None => (Some("the rule is gone".into()), false),
            },
            Step::Undo { rule, .. } => undo(gw, rule).await,
            Step::Kept { rule, .. } => {
                gw.automation().take_undo(rule);
                (None, true)
            }
            Step::Skipped { .. } => (None, true),
        };
        if let (Step::Act { rule, .. }, false) = (&step, ok) {
            gw.automation().with_engine(rules, |e| e.failed(rule));
        }
        if !ok {
            tracing::warn!(?step, done = ?done, "an automation step failed");
            announce(
                gw,
                &step,
                Severity::Warning,
                format!(
                    "automation rule {}: {} failed",
                    step.rule(),
                    match step {
                        Step::Undo { .. } => "an undo",
                        _ => "an action",
                    }
                ),
                done.clone().unwrap_or_default(),
                &[],
            );
        } else if !matches!(step, Step::Skipped { .. }) {
            tracing::info!(?step, done = ?done, "automation");
        }
        let entry = Entry {
            at: now,
            step,
            done,
            ok,
        };
        gw.automation().log(&entry);
        out.push(entry);
    }
    out
}

/// Carries `r`'s action out: what was done, and whether it worked.
async fn act(gw: &Arc<Gateway>, r: &AutomationRule, why: &str) -> (Option<String>, bool) {
    match &r.action {
        AutomationAction::Strategy { pool, to } => match set_strategy(gw, pool, to) {
            Ok(was) => {
                gw.automation().changed(
                    &r.name,
                    Undo::Strategy {
                        pool: pool.clone(),
                        was: was.clone(),
                    },
                );
                (Some(format!("pool {pool}'s strategy {was} → {to}")), true)
            }
            Err(e) => (Some(e), false),
        },
        AutomationAction::Change(change) => {
            let config = gw.runtime().config.clone();
            match gw
                .overrides()
                .put(&config, &r.name, change.clone(), || gw.rebuild())
            {
                Ok(was) => {
                    gw.automation()
                        .changed(&r.name, Undo::Change(change.clone()));
                    (Some(format!("{} (was: {was})", change.describe())), true)
                }
                Err(e) => (Some(format!("{}: {e}", change.describe())), false),
            }
        }
        AutomationAction::Warm { top } => {
            if gw.cache().is_none() {
                return (Some("the cache is not enabled".into()), false);
            }
            let requests = gw.warming().recent.top_labelled(*top);
            if requests.is_empty() {
                return (Some("no recent requests to warm with yet".into()), true);
            }
            match crate::warming::job::start(gw, "automation", requests) {
                Ok(job) => (
                    Some(format!(
                        "warming job {} started with the {} most requested recent requests",
                        job.id, job.total
                    )),
                    true,
                ),
                Err(crate::warming::Busy(job)) => (
                    Some(format!("warming job {} is still running", job.id)),
                    false,
                ),
            }
        }
        AutomationAction::Notify {
            notifiers,
            severity,
        } => {
            announce(
                gw,
                &Step::Act {
                    rule: r.name.clone(),
                    why: why.to_string(),
                },
                *severity,
                format!("automation rule {}: {why}", r.name),
                why.to_string(),
                notifiers,
            );
            (
                Some(format!(
                    "told {}",
                    if notifiers.is_empty() {
                        "every notifier".to_string()
                    } else {
                        notifiers.join(", ")
                    }
                )),
                true,
            )
        }
        AutomationAction::Scale { pool, replicas } => {
            let current = replicas_now(gw, pool);
            let desired = match replicas {
                Replicas::To(n) => *n,
                Replicas::By(d) => current.saturating_add_signed(*d),
            };
            let (done, ok) = scale(
                gw,
                pool,
                current,
                desired,
                &format!("automation rule {}: {why}", r.name),
            )
            .await;
            if !ok {
                // Half-way is worse than either end: back to the size before.
                let (back, _) = scale(
                    gw,
                    pool,
                    current,
                    current,
                    &format!("automation rule {}: rolled back", r.name),
                )
                .await;
                return (
                    Some(format!(
                        "{}; rolled back: {}",
                        done.unwrap_or_default(),
                        back.unwrap_or_default()
                    )),
                    false,
                );
            }
            if ok {
                gw.automation().changed(
                    &r.name,
                    Undo::Scale {
                        pool: pool.clone(),
                        was: current,
                    },
                );
            }
            (done, ok)
        }
    }
}

/// Puts back what `rule`'s last action changed.
async fn undo(gw: &Arc<Gateway>, rule: &str) -> (Option<String>, bool) {
    match gw.automation().take_undo(rule) {
        None => (Some("nothing to undo".into()), true),
        Some(Undo::Strategy { pool, was }) => match set_strategy(gw, &pool, &was) {
            Ok(now) => (Some(format!("pool {pool}'s strategy {now} → {was}")), true),
            Err(e) => (Some(e), false),
        },
        Some(Undo::Scale { pool, was }) => {
            let current = replicas_now(gw, &pool);
            scale(
                gw,
                &pool,
                current,
                was,
                &format!("automation rule {rule} undone"),
            )
            .await
        }
        Some(Undo::Change(change)) => {
            gw.overrides().remove(rule);
            match gw.rebuild() {
                Ok(()) => (Some(format!("taken away: {}", change.describe())), true),
                Err(e) => (Some(format!("{}: {e}", change.describe())), false),
            }
        }
    }
}

/// Switches `pool`'s strategy to `to`; the one it had.
fn set_strategy(gw: &Gateway, pool: &str, to: &str) -> Result<String, String> {
    let s = flowgate_balance::Strategy::parse(to)?;
    let rt = gw.runtime();
    let u = rt
        .upstream(pool)
        .ok_or_else(|| format!("no pool {pool:?}"))?;
    let was = u.balancer().strategy();
    u.balancer().set_strategy(s);
    Ok(was.as_str().to_string())
}

/// The replicas `pool` (or flowgate itself) has now.
fn replicas_now(gw: &Gateway, pool: &str) -> u32 {
    let rt = gw.runtime();
    rt.config
        .scaling
        .pools
        .iter()
        .find(|p| p.pool == pool)
        .map_or(0, |p| crate::scaling::replicas(&rt, p))
}

/// Scales `pool` from `current` to `desired` (within its scaling bounds) through its
/// actuator (even to the size it has: a roll-back tells it again), unless its scaling
/// is a dry run.
async fn scale(
    gw: &Arc<Gateway>,
    pool: &str,
    current: u32,
    desired: u32,
    reason: &str,
) -> (Option<String>, bool) {
    let rt = gw.runtime();
    let Some(cfg) = rt.config.scaling.pools.iter().find(|p| p.pool == pool) else {
        return (Some(format!("pool {pool} is not scaled")), false);
    };
    let Some(actuator) = &cfg.actuator else {
        return (Some(format!("pool {pool} has no actuator")), false);
    };
    let desired = desired.clamp(cfg.policy.min, cfg.policy.max);
    let direction = match desired.cmp(&current) {
        std::cmp::Ordering::Greater => Direction::Up,
        std::cmp::Ordering::Less => Direction::Down,
        std::cmp::Ordering::Equal => Direction::Hold,
    };
    if cfg.dry_run {
        return (
            Some(format!(
                "dry run: pool {pool} would go from {current} to {desired} replicas"
            )),
            true,
        );
    }
    let d = Decision {
        at: gw.clock().unix_millis() / 1000,
        input: Input {
            current,
            utilization: f64::NAN,
            predicted: None,
        },
        wanted: desired,
        desired,
        direction,
        reason: reason.to_string(),
    };
    let acted = crate::scaling_act::act(gw, cfg, actuator, &d).await;
    (
        Some(format!(
            "pool {pool} from {current} to {desired} replicas by its {}: {}",
            acted.by, acted.detail
        )),
        acted.ok,
    )
}

/// Tells the notifiers `to` (every one when empty) about `step`, and keeps it in the alert
/// history.
fn announce(
    gw: &Gateway,
    step: &Step,
    severity: Severity,
    summary: String,
    description: String,
    to: &[String],
) {
    let now = gw.clock().unix_millis() / 1000;
    let e = Event::notice(
        now,
        "automation",
        ("rule", step.rule()),
        severity,
        summary,
        description,
    );
    crate::alerting::announce(gw.alerting(), e, to);
}
