//! Automation rules (`[automation]`, `[[automation.rules]]`): when a rule acts (`when`),
//! what it does (`do`), how often at most, and how its effect is verified (docs/automation.md;
//! `flowgate_insight::automation` decides, the gateway acts).

use std::time::Duration;

use jiff::tz::TimeZone;
use serde::Deserialize;

use crate::cron::Schedule;
use crate::error::{Found, KeyPath};
use crate::units::HumanDuration;

mod action;

pub use action::{Action, Change, Replicas};
pub(crate) use action::{RawDo, Targets};

/// `[automation]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAutomation {
    pub enabled: Option<bool>,
    pub paused: Option<bool>,
    pub interval: Option<HumanDuration>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub name: Option<String>,
    pub when: Option<RawWhen>,
    #[serde(rename = "do")]
    pub action: Option<RawDo>,
    pub cooldown: Option<HumanDuration>,
    pub max_per_hour: Option<u32>,
    pub verify: Option<RawVerify>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWhen {
    pub alert: Option<String>,
    pub resolves: Option<bool>,
    pub anomaly: Option<String>,
    pub score: Option<f64>,
    pub runs_out_within: Option<HumanDuration>,
    pub resource: Option<String>,
    pub budget: Option<String>,
    pub at: Option<f64>,
    pub schedule: Option<String>,
    #[serde(rename = "for")]
    pub for_: Option<HumanDuration>,
    pub time_zone: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVerify {
    pub series: Option<String>,
    pub within: Option<HumanDuration>,
    pub lower_by: Option<f64>,
    pub higher_by: Option<f64>,
}

/// What starts a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// Alert rule `rule` starts firing (`resolves`: stops firing).
    Alert { rule: String, resolves: bool },
    /// An anomaly opens on a series matching `pattern` (`*` any run) scoring `min_score`.
    Anomaly { pattern: String, min_score: f64 },
    /// A capacity resource (by name; `None`: any) runs out within `within`.
    RunsOut {
        resource: Option<String>,
        within: Duration,
    },
    /// A budget (by name; `None`: any) has spent `percent` of its limit.
    Budget {
        budget: Option<String>,
        percent: f64,
    },
    /// Each firing of `schedule` in `zone` opens a window of `open`.
    Schedule {
        schedule: Schedule,
        zone: TimeZone,
        open: Duration,
    },
}

/// Which way a verified series must go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Lower,
    Higher,
}

/// A check after acting: `series` must improve by `by` (0.1: 10%) within `within`.
#[derive(Debug, Clone, PartialEq)]
pub struct Verify {
    pub series: String,
    pub within: Duration,
    pub better: Better,
    pub by: f64,
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct AutomationRule {
    pub name: String,
    pub when: Trigger,
    pub action: Action,
    /// No action again for this long after one (10 minutes by default).
    pub cooldown: Duration,
    /// Actions at most in any hour (6 by default).
    pub max_per_hour: u32,
    pub verify: Option<Verify>,
}

/// `[automation]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AutomationConfig {
    pub enabled: bool,
    /// Paused at start (the API pauses and resumes it too).
    pub paused: bool,
    /// How often the rules are evaluated (30 s).
    pub interval: Duration,
    pub rules: Vec<AutomationRule>,
}

impl Default for AutomationConfig {
    fn default() -> Self {
        AutomationConfig {
            enabled: true,
            paused: false,
            interval: Duration::from_secs(30),
            rules: Vec::new(),
        }
    }
}

/// What rules may name.
pub(crate) struct Names<'a> {
    pub alerts: &'a [&'a str],
    pub budgets: &'a [&'a str],
    /// What actions may name.
    pub targets: Targets<'a>,
    pub series: &'a crate::alerts::AlertNames<'a>,
}

fn trigger(raw: &RawWhen, names: &Names<'_>, key: &KeyPath, found: &mut Found) -> Option<Trigger> {
    let kinds = [
        raw.alert.is_some(),
        raw.anomaly.is_some(),
        raw.runs_out_within.is_some(),
        raw.budget.is_some() || raw.at.is_some(),
        raw.schedule.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        found.push((
            key.clone(),
            "one of alert, anomaly, runs_out_within, budget (with at) or schedule".into(),
        ));
        return None;
    }
    if let Some(rule) = &raw.alert {
        if !names.alerts.contains(&rule.as_str()) {
            found.push((
                key.clone().key("alert"),
                format!("no alert rule {rule:?} in [[alerts.rules]]"),
            ));
        }
        return Some(Trigger::Alert {
            rule: rule.clone(),
            resolves: raw.resolves.unwrap_or(false),
        });
    }
    if let Some(pattern) = &raw.anomaly {
        if let Err(e) = crate::anomalies::check_pattern(pattern) {
            found.push((key.clone().key("anomaly"), e));
        }
        let min_score = raw.score.unwrap_or(0.85);
        if !(min_score > 0.0 && min_score <= 1.0) {
            found.push((
                key.clone().key("score"),
                format!("{min_score} is not a score above 0 and at most 1"),
            ));
        }
        return Some(Trigger::Anomaly {
            pattern: pattern.clone(),
            min_score,
        });
    }
    if let Some(within) = raw.runs_out_within {
        return Some(Trigger::RunsOut {
            resource: raw.resource.clone(),
            within: within.0,
        });
    }
    if let Some(expr) = &raw.schedule {
        let schedule = match Schedule::parse(expr) {
            Ok(s) => s,
            Err(e) => {
                found.push((key.clone().key("schedule"), e));
                return None;
            }
        };
        let zone = match raw.time_zone.as_deref() {
            None => TimeZone::UTC,
            Some(z) => match TimeZone::get(z) {
                Ok(tz) => tz,
                Err(_) => {
                    found.push((key.clone().key("time_zone"), format!("{z:?} is not a time zone of the IANA database (\"Europe/Berlin\", \"UTC\")")));
                    return None;
                }
            },
        };
        let open = raw.for_.map_or(Duration::from_secs(3600), |h| h.0);
        if open < Duration::from_secs(60) || open > Duration::from_secs(7 * 86_400) {
            found.push((
                key.clone().key("for"),
                "from 1m to 7d: how long each window stays open".into(),
            ));
        }
        return Some(Trigger::Schedule {
            schedule,
            zone,
            open,
        });
    }
    if let Some(b) = &raw.budget
        && b != "*"
        && !names.budgets.contains(&b.as_str())
    {
        found.push((
            key.clone().key("budget"),
            format!("no budget {b:?} in [[cost.budgets]]"),
        ));
    }
    let percent = raw.at.unwrap_or(100.0);
    if !(percent > 0.0 && percent <= 1000.0) {
        found.push((
            key.clone().key("at"),
            format!("{percent} is not a percentage above 0"),
        ));
    }
    Some(Trigger::Budget {
        budget: raw.budget.clone().filter(|b| b != "*"),
        percent,
    })
}

fn verify(raw: &RawVerify, names: &Names<'_>, key: &KeyPath, found: &mut Found) -> Option<Verify> {
    let series = match &raw.series {
        Some(s) => match crate::alerts::check_series(s, names.series) {
            Ok(s) => s,
            Err(e) => {
                found.push((key.clone().key("series"), e));
                return None;
            }
        },
        None => {
            found.push((
                key.clone().key("series"),
                "missing: the series that must improve".into(),
            ));
            return None;
        }
    };
    let (better, by) = match (raw.lower_by, raw.higher_by) {
        (Some(b), None) => (Better::Lower, b),
        (None, Some(b)) => (Better::Higher, b),
        _ => {
            found.push((
                key.clone(),
                "one of lower_by or higher_by (0.1: by 10%)".into(),
            ));
            return None;
        }
    };
    if !(by > 0.0 && by <= 1.0) {
        found.push((
            key.clone(),
            format!("{by} is not a share above 0 and at most 1"),
        ));
    }
    let within = raw.within.map_or(Duration::from_secs(600), |h| h.0);
    if within < Duration::from_secs(10) || within > Duration::from_secs(86_400) {
        found.push((key.clone().key("within"), "from 10s to 24h".into()));
    }
    Some(Verify {
        series,
        within,
        better,
        by,
    })
}

pub(crate) fn automation(
    raw: Option<&RawAutomation>,
    names: &Names<'_>,
    key: &KeyPath,
    found: &mut Found,
) -> AutomationConfig {
    let d = AutomationConfig::default();
    let Some(raw) = raw else {
        return d;
    };
    let interval = raw.interval.map_or(d.interval, |h| h.0);
    if interval < Duration::from_secs(1) || interval > Duration::from_secs(3600) {
        found.push((key.clone().key("interval"), "from 1s to 1h".into()));
    }
    let mut rules: Vec<AutomationRule> = Vec::new();
    for (i, r) in raw.rules.iter().enumerate() {
        let key = key.clone().key("rules").index(i);
        let name = r.name.clone().unwrap_or_else(|| format!("rule-{i}"));
        if !crate::units::valid_name(&name) {
            found.push((
                key.clone().key("name"),
                format!("invalid name {name:?}: use letters, digits, '-', '_' and '.'"),
            ));
        }
        if rules.iter().any(|x| x.name == name) {
            found.push((
                key.clone().key("name"),
                format!("a second rule named {name:?}"),
            ));
        }
        let when = match &r.when {
            Some(w) => trigger(w, names, &key.clone().key("when"), found),
            None => {
                found.push((
                    key.clone().key("when"),
                    "missing: what starts the rule".into(),
                ));
                None
            }
        };
        let action = match &r.action {
            Some(a) => action::action(a, &names.targets, &key.clone().key("do"), found),
            None => {
                found.push((key.clone().key("do"), "missing: what the rule does".into()));
                None
            }
        };
        let verify = r
            .verify
            .as_ref()
            .and_then(|v| verify(v, names, &key.clone().key("verify"), found));
        let max_per_hour = r.max_per_hour.unwrap_or(6);
        if max_per_hour == 0 {
            found.push((key.clone().key("max_per_hour"), "at least 1".into()));
        }
        if let (Some(when), Some(action)) = (when, action) {
            rules.push(AutomationRule {
                name,
                when,
                action,
                cooldown: r.cooldown.map_or(Duration::from_secs(600), |h| h.0),
                max_per_hour,
                verify,
            });
        }
    }
    AutomationConfig {
        enabled: raw.enabled.unwrap_or(true),
        paused: raw.paused.unwrap_or(false),
        interval,
        rules,
    }
}

#[cfg(test)]
mod tests;
