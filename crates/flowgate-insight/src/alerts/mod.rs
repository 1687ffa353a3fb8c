//! Alert rules at work. Every evaluation (each second, after the history's tick) reads
//! each rule's condition from a [`Source`] (the history and the budgets) and moves its
//! alert through its lifecycle: inactive → pending (the condition holds, for less than
//! the rule's `for`) → firing → resolved (the condition no longer holds, or its data is
//! gone). Firing, resolving and, while firing, every `repeat` are events: kept in the
//! alerts' history and handed to the notifiers, unless the alert is silenced (a
//! [`Silence`] matches it) or inhibited (a critical alert of its group is firing, and it
//! is not critical). One alert per rule: a rule's labels are its own.

mod silence;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use flowgate_config::{AlertKind, AlertRule, Severity};
use serde::{Deserialize, Serialize};

pub use silence::Silence;

/// What the rules read.
pub trait Source {
    /// The value of `series` over the `window` up to `now` (a rate, ratio, percentile or
    /// mean, as the series is); `None` when there is no data then.
    fn value(&self, series: &str, now: u64, window: Duration) -> Option<f64>;
    /// When `series` last had a sample (Unix seconds).
    fn last_seen(&self, series: &str) -> Option<u64>;
    /// The budget (of `name`, or of any when `None`) that has spent the largest share of
    /// its limit at `now`: its name and that share in percent.
    fn budget_percent(&self, name: Option<&str>, now: u64) -> Option<(String, f64)>;
    /// The share of `route`'s requests over `window` that were bad: failed, or with
    /// `latency_ms`, slower than that.
    fn bad_ratio(
        &self,
        route: &str,
        latency_ms: Option<u64>,
        now: u64,
        window: Duration,
    ) -> Option<f64>;
    /// The open anomaly scoring highest on a series matching `pattern` (any when `None`)
    /// with a score of at least `min_score`: its score and a line saying what it is.
    fn anomaly(&self, pattern: Option<&str>, min_score: f64) -> Option<(f64, String)>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Inactive,
    Pending,
    Firing,
}

/// A rule's alert now.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub rule: String,
    pub severity: Severity,
    pub group: String,
    pub labels: BTreeMap<String, String>,
    pub status: Status,
    /// Since when the condition holds (Unix seconds), while pending or firing.
    pub since: Option<u64>,
    pub fired_at: Option<u64>,
    /// The value last read, and what it says.
    pub value: Option<f64>,
    pub summary: String,
    pub silenced: bool,
    pub inhibited: bool,
    #[serde(skip)]
    last_notified: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Firing,
    Resolved,
    /// Still firing, notified again after the rule's `repeat`.
    Repeat,
}

/// A change of an alert, for the history and the notifiers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub at: u64,
    pub kind: EventKind,
    pub rule: String,
    pub severity: Severity,
    pub group: String,
    pub labels: BTreeMap<String, String>,
    pub value: Option<f64>,
    pub summary: String,
    pub description: String,
    /// Since when it fired (for a resolution: how long it lasted).
    pub fired_at: Option<u64>,
    /// Not notified: a silence matched it, or a critical alert of its group fired.
    pub silenced: bool,
    pub inhibited: bool,
}

impl Event {
    /// Whether the notifiers get it.
    pub fn notify(&self) -> bool {
        !self.silenced && !self.inhibited
    }

    /// A notice of no alert rule (an automation's step, a database's plan change): the
    /// rule `GROUP:VALUE`, labelled `label = VALUE`, firing at `at`.
    pub fn notice(
        at: u64,
        group: &str,
        (label, value): (&str, &str),
        severity: Severity,
        summary: String,
        description: String,
    ) -> Event {
        Event {
            at,
            kind: EventKind::Firing,
            rule: format!("{group}:{value}"),
            severity,
            group: group.to_string(),
            labels: [(label.to_string(), value.to_string())].into(),
            value: None,
            summary,
            description,
            fired_at: Some(at),
            silenced: false,
            inhibited: false,
        }
    }
}

/// The rules, their alerts and the silences.
#[derive(Debug, Default)]
pub struct Engine {
    rules: Vec<AlertRule>,
    alerts: HashMap<String, Alert>,
    silences: Vec<Silence>,
    next_silence: u64,
    /// When the engine started: a series never seen is absent since then.
    started: Option<u64>,
}

impl Engine {
    pub fn new(rules: Vec<AlertRule>) -> Engine {
        Engine {
            rules,
            next_silence: 1,
            ..Engine::default()
        }
    }

    /// Puts `rules` in force; the alerts of rules that keep their name keep their state.
    pub fn set_rules(&mut self, rules: Vec<AlertRule>) {
        self.alerts
            .retain(|name, _| rules.iter().any(|r| r.name == *name));
        self.rules = rules;
    }

    pub fn rules(&self) -> &[AlertRule] {
        &self.rules
    }

    /// Every rule's alert, pending and firing first.
    pub fn alerts(&self) -> Vec<Alert> {
        let mut all: Vec<Alert> = self.alerts.values().cloned().collect();
        all.sort_by(|a, b| {
            (
                b.status == Status::Firing,
                b.status == Status::Pending,
                b.severity,
            )
                .cmp(&(
                    a.status == Status::Firing,
                    a.status == Status::Pending,
                    a.severity,
                ))
                .then_with(|| a.rule.cmp(&b.rule))
        });
        all
    }

    pub fn silences(&self, now: u64) -> Vec<Silence> {
        self.silences
            .iter()
            .filter(|s| s.until > now)
            .cloned()
            .collect()
    }

    /// Adds a silence; its id.
    pub fn silence(
        &mut self,
        rule: String,
        labels: BTreeMap<String, String>,
        until: u64,
        comment: String,
        now: u64,
    ) -> u64 {
        let id = self.next_silence;
        self.next_silence += 1;
        self.silences.retain(|s| s.until > now);
        self.silences.push(Silence {
            id,
            rule,
            labels,
            until,
            comment,
            created_at: now,
        });
        id
    }

    /// Ends silence `id`; whether there was one.
    pub fn unsilence(&mut self, id: u64) -> bool {
        let before = self.silences.len();
        self.silences.retain(|s| s.id != id);
        self.silences.len() != before
    }

    /// Reads every rule at `now` and moves its alert; the events, in rule order (those
    /// to notify have [`Event::notify`]).
    pub fn evaluate(&mut self, src: &dyn Source, now: u64) -> Vec<Event> {
        let started = *self.started.get_or_insert(now);
        let mut out = Vec::new();
        for rule in &self.rules {
            let (holds, value, summary) = condition(rule, src, now, started);
            let alert = self
                .alerts
                .entry(rule.name.clone())
                .or_insert_with(|| Alert {
                    rule: rule.name.clone(),
                    severity: rule.severity,
                    group: rule.group.clone(),
                    labels: rule.labels.clone(),
                    status: Status::Inactive,
                    since: None,
                    fired_at: None,
                    value: None,
                    summary: String::new(),
                    silenced: false,
                    inhibited: false,
                    last_notified: None,
                });
            alert.severity = rule.severity;
            alert.group = rule.group.clone();
            alert.labels = rule.labels.clone();
            alert.value = value;
            alert.summary = summary;
            // Absence waits for its own `for` in the condition.
            let wait = match rule.kind {
                AlertKind::Absent { .. } => Duration::ZERO,
                _ => rule.for_,
            };
            let kind = match (alert.status, holds) {
                (Status::Inactive, true) => {
                    alert.since = Some(now);
                    alert.status = Status::Pending;
                    None
                }
                (Status::Pending, false) | (Status::Inactive, false) => {
                    alert.status = Status::Inactive;
                    alert.since = None;
                    None
                }
                (Status::Firing, false) => {
                    alert.status = Status::Inactive;
                    alert.since = None;
                    Some(EventKind::Resolved)
                }
                (Status::Firing, true) => alert
                    .last_notified
                    .is_some_and(|t| now >= t + rule.repeat.as_secs())
                    .then_some(EventKind::Repeat),
                (Status::Pending, true) => None,
            };
            if alert.status == Status::Pending
                && alert.since.is_some_and(|s| now >= s + wait.as_secs())
            {
                alert.status = Status::Firing;
                alert.fired_at = Some(now);
                out.push((
                    rule.name.clone(),
                    EventKind::Firing,
                    rule.description.clone(),
                ));
            } else if let Some(k) = kind {
                out.push((rule.name.clone(), k, rule.description.clone()));
            }
        }
        // Inhibition: the groups with a critical alert firing.
        let critical: Vec<String> = self
            .alerts
            .values()
            .filter(|a| a.status == Status::Firing && a.severity == Severity::Critical)
            .map(|a| a.group.clone())
            .collect();
        for a in self.alerts.values_mut() {
            a.inhibited = a.severity != Severity::Critical && critical.contains(&a.group);
            a.silenced = self
                .silences
                .iter()
                .any(|s| s.matches(&a.rule, &a.labels, now));
        }
        let mut events = Vec::new();
        for (rule, kind, description) in out {
            let Some(a) = self.alerts.get_mut(&rule) else {
                continue;
            };
            let e = Event {
                at: now,
                kind,
                rule,
                severity: a.severity,
                group: a.group.clone(),
                labels: a.labels.clone(),
                value: a.value,
                summary: a.summary.clone(),
                description,
                fired_at: a.fired_at,
                silenced: a.silenced,
                inhibited: a.inhibited,
            };
            if kind != EventKind::Resolved {
                a.last_notified = Some(now);
            } else {
                a.last_notified = None;
            }
            events.push(e);
        }
        events
    }
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// Whether `rule`'s condition holds at `now`, the value it read, and a line saying so.
fn condition(
    rule: &AlertRule,
    src: &dyn Source,
    now: u64,
    started: u64,
) -> (bool, Option<f64>, String) {
    let secs = |d: Duration| flowgate_config::format_duration(d);
    match &rule.kind {
        AlertKind::Threshold {
            series,
            window,
            op,
            value,
        } => match src.value(series, now, *window) {
            Some(v) => (
                op.holds(v, *value),
                Some(v),
                format!(
                    "{series} over {} is {} ({} {})",
                    secs(*window),
                    fmt(v),
                    op.as_str(),
                    fmt(*value)
                ),
            ),
            None => (
                false,
                None,
                format!("{series}: no data over {}", secs(*window)),
            ),
        },
        AlertKind::RateOfChange {
            series,
            window,
            percent,
            op,
            value,
        } => {
            let cur = src.value(series, now, *window);
            let prev = src.value(series, now.saturating_sub(window.as_secs()), *window);
            let change = match (cur, prev) {
                (Some(c), Some(p)) if *percent && p != 0.0 => Some((c - p) / p.abs() * 100.0),
                (Some(c), Some(p)) if !*percent => Some(c - p),
                _ => None,
            };
            match change {
                Some(ch) => (
                    op.holds(ch, *value),
                    Some(ch),
                    format!(
                        "{series} changed by {}{} over {} ({} {})",
                        fmt(ch),
                        if *percent { "%" } else { "" },
                        secs(*window),
                        op.as_str(),
                        fmt(*value)
                    ),
                ),
                None => (false, None, format!("{series}: not enough data to compare")),
            }
        }
        AlertKind::Absent { series } => {
            let last = src.last_seen(series).unwrap_or(started).max(started);
            let gone = now.saturating_sub(last);
            (
                gone >= rule.for_.as_secs(),
                Some(gone as f64),
                format!("{series}: no data for {gone}s"),
            )
        }
        AlertKind::Budget { budget, at_percent } => {
            match src.budget_percent(budget.as_deref(), now) {
                Some((name, p)) => (
                    p >= *at_percent,
                    Some(p),
                    format!(
                        "budget {name} at {}% of its limit (alert at {}%)",
                        fmt(p),
                        fmt(*at_percent)
                    ),
                ),
                None => (false, None, "no budget in force".into()),
            }
        }
        AlertKind::BurnRate {
            route,
            objective,
            latency_ms,
            long,
            short,
            factor,
        } => {
            let allowed = 1.0 - objective;
            let burn = |w: Duration| {
                src.bad_ratio(route, *latency_ms, now, w)
                    .map(|r| r / allowed)
            };
            match (burn(*long), burn(*short)) {
                (Some(l), Some(s)) => (
                    l > *factor && s > *factor,
                    Some(l.min(s)),
                    format!(
                        "route {route} burns its error budget {}x over {} and {}x over {} (alert above {}x)",
                        fmt(l),
                        secs(*long),
                        fmt(s),
                        secs(*short),
                        fmt(*factor)
                    ),
                ),
                _ => (false, None, format!("route {route}: no requests to judge")),
            }
        }
        AlertKind::Anomaly { series, min_score } => {
            match src.anomaly(series.as_deref(), *min_score) {
                Some((score, what)) => (true, Some(score), what),
                None => (
                    false,
                    None,
                    format!(
                        "no open anomaly on {} scoring {} or more",
                        series.as_deref().unwrap_or("any watched series"),
                        fmt(*min_score)
                    ),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests;
