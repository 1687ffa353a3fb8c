//! Alert rules (`[[alerts.rules]]`), as written and as validated: the series they watch
//! must be ones the metrics history keeps (by name, and routes and pools that exist),
//! durations and thresholds must hold.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Found, KeyPath};
use crate::history::SERIES;
use crate::severity::Severity;
use crate::units::parse_duration;

/// `[alerts]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlerts {
    #[serde(default)]
    pub rules: Vec<RawAlertRule>,
    #[serde(default)]
    pub notifiers: Vec<crate::notifiers::RawNotifier>,
    pub retention: Option<crate::units::HumanDuration>,
}

/// The alerts' file under `[server] data_dir`: the rules made through the API and the
/// events.
pub const ALERTS_FILE: &str = "alerts.redb";

/// A rule as written (and as the admin API takes it, in JSON).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlertRule {
    pub name: Option<String>,
    pub severity: Option<String>,
    pub kind: Option<String>,
    pub series: Option<String>,
    pub window: Option<String>,
    pub op: Option<String>,
    pub value: Option<f64>,
    #[serde(rename = "for")]
    pub for_: Option<String>,
    pub change: Option<String>,
    pub budget: Option<String>,
    pub at: Option<f64>,
    pub route: Option<String>,
    pub objective: Option<f64>,
    pub latency_ms: Option<u64>,
    pub long: Option<String>,
    pub short: Option<String>,
    pub factor: Option<f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub group: Option<String>,
    pub repeat: Option<String>,
    pub description: Option<String>,
    /// The notifiers its events go to; every one when not set.
    pub notify: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Above,
    AtLeast,
    Below,
    AtMost,
}

impl Op {
    pub fn holds(self, v: f64, threshold: f64) -> bool {
        match self {
            Op::Above => v > threshold,
            Op::AtLeast => v >= threshold,
            Op::Below => v < threshold,
            Op::AtMost => v <= threshold,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Above => ">",
            Op::AtLeast => ">=",
            Op::Below => "<",
            Op::AtMost => "<=",
        }
    }
}

/// What a rule watches.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertKind {
    /// The series over `window` compared with `value`.
    Threshold {
        series: String,
        window: Duration,
        op: Op,
        value: f64,
    },
    /// The series over `window` against itself `window` earlier: the change, in percent
    /// of the earlier value or absolute, compared with `value`.
    RateOfChange {
        series: String,
        window: Duration,
        percent: bool,
        op: Op,
        value: f64,
    },
    /// No data for the series for the rule's `for`.
    Absent { series: String },
    /// A budget (or any) at or past `at_percent` of its limit.
    Budget {
        budget: Option<String>,
        at_percent: f64,
    },
    /// An SLO's error budget burning `factor` times faster than it allows, over both
    /// `long` and `short` windows (Google's SRE workbook): for availability (bad = errors)
    /// or, with `latency_ms`, latency (bad = slower answers).
    BurnRate {
        route: String,
        objective: f64,
        latency_ms: Option<u64>,
        long: Duration,
        short: Duration,
        factor: f64,
    },
    /// An open anomaly ([`crate::AnomaliesConfig`]) on a series matching `series` (any
    /// watched series when `None`; the series a rule names are watched) scoring at least
    /// `min_score`.
    Anomaly {
        series: Option<String>,
        min_score: f64,
    },
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    pub name: String,
    pub severity: Severity,
    pub kind: AlertKind,
    /// How long the condition must hold before the alert fires (pending until then).
    pub for_: Duration,
    pub labels: BTreeMap<String, String>,
    /// Alerts of a group inhibit each other: a critical one silences the group's others.
    pub group: String,
    /// How often a firing alert is notified again.
    pub repeat: Duration,
    pub description: String,
    /// The notifiers its events go to (by name); `None`: every one.
    pub notify: Option<Vec<String>>,
    /// As written, for the API to show.
    pub raw: RawAlertRule,
}

impl AlertRule {
    /// Whether its events go to notifier `name`.
    pub fn notifies(&self, name: &str) -> bool {
        self.notify
            .as_ref()
            .is_none_or(|n| n.iter().any(|x| x == name))
    }
}

/// `[alerts]`: the rules, where their events go, and how long the events are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertsConfig {
    pub rules: Vec<AlertRule>,
    pub notifiers: Vec<crate::notifiers::NotifierConfig>,
    /// How long events are kept (90 days by default).
    pub retention: Duration,
    /// `alerts.redb` in `[server] data_dir`; `None`: in memory.
    pub path: Option<std::path::PathBuf>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            rules: Vec::new(),
            notifiers: Vec::new(),
            retention: Duration::from_secs(90 * 86_400),
            path: None,
        }
    }
}

/// What the rules may name.
#[derive(Debug, Clone, Copy)]
pub struct AlertNames<'a> {
    pub routes: &'a [&'a str],
    pub pools: &'a [&'a str],
    pub budgets: &'a [&'a str],
    pub notifiers: &'a [&'a str],
    pub databases: &'a [&'a str],
}

/// Checks `series` against [`SERIES`] (the history's) and `names`; the series as the
/// history names it (its labels in their order, without spaces).
pub fn check_series(series: &str, names: &AlertNames<'_>) -> Result<String, String> {
    let (base, labels) = match series.find('{') {
        Some(i) => (&series[..i], Some(&series[i..])),
        None => (series, None),
    };
    let Some((_, spec)) = SERIES.iter().find(|(b, _)| *b == base) else {
        return Err(format!(
            "unknown series {base:?} (GET /api/v1/metrics/series lists those kept; docs/observability.md names them all)"
        ));
    };
    let (spec, l) = match (spec, labels) {
        (None, None) => return Ok(base.to_string()),
        (None, Some(_)) => return Err(format!("series {base:?} takes no label")),
        (Some(spec), None) if spec.contains(',') => {
            let wanted: Vec<String> = spec.split(',').map(|n| format!("{n}=\"...\"")).collect();
            return Err(format!(
                "series {base:?} needs labels: {{{}}}",
                wanted.join(",")
            ));
        }
        (Some(spec), None) => {
            let first = spec.split('|').next().unwrap_or(spec);
            return Err(format!(
                "series {base:?} needs a label: {{{first}=\"...\"}} (one of {spec})"
            ));
        }
        (Some(spec), Some(l)) => (spec, l),
    };
    let malformed = || format!("malformed labels {l:?}: expected {{name=\"value\",...}}");
    let inner = l
        .strip_prefix('{')
        .and_then(|l| l.strip_suffix('}'))
        .ok_or_else(malformed)?;
    let mut given = Vec::new();
    for pair in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').ok_or_else(malformed)?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or_else(malformed)?;
        given.push((name.trim(), value));
    }
    // `a|b|c`: one of them; `a,b`: each of them.
    let wanted: Vec<&str> = if spec.contains(',') {
        spec.split(',').collect()
    } else {
        match given.as_slice() {
            [(name, _)] if spec.split('|').any(|a| a == *name) => vec![*name],
            [(name, _)] => {
                return Err(format!(
                    "series {base:?} is labelled by {spec}, not {name:?}"
                ));
            }
            _ => return Err(format!("series {base:?} takes one label: {spec}")),
        }
    };
    if let Some((name, _)) = given.iter().find(|(n, _)| !wanted.contains(n)) {
        return Err(format!(
            "series {base:?} is labelled by {}, not {name:?}",
            wanted.join(" and ")
        ));
    }
    let mut out = Vec::with_capacity(wanted.len());
    for w in &wanted {
        let mut of = given.iter().filter(|(n, _)| n == w);
        let (Some((_, value)), None) = (of.next(), of.next()) else {
            return Err(format!(
                "series {base:?} needs each of its labels once: {}",
                wanted.join(", ")
            ));
        };
        let known: Option<&[&str]> = match *w {
            "route" => Some(names.routes),
            "pool" => Some(names.pools),
            "notifier" => Some(names.notifiers),
            "database" => Some(names.databases),
            "stage" => Some(crate::history::STAGES),
            _ => None,
        };
        match known {
            Some(k) if !k.contains(value) => {
                let hint = if *w == "stage" {
                    format!(" (one of {})", crate::history::STAGES.join(", "))
                } else {
                    String::new()
                };
                return Err(format!("unknown {w} {value:?}{hint}"));
            }
            _ => out.push(format!("{w}=\"{value}\"")),
        }
    }
    Ok(format!("{base}{{{}}}", out.join(",")))
}

fn duration(v: &Option<String>, default: Duration, key: KeyPath, found: &mut Found) -> Duration {
    match v.as_deref() {
        None => default,
        Some(s) => match parse_duration(s) {
            Some(d) => d,
            None => {
                found.push((
                    key,
                    format!("{s:?} is not a duration such as \"10s\", \"5m\" or \"1h\""),
                ));
                default
            }
        },
    }
}

/// `raw` (the `index`th rule) checked against `names`.
pub fn alert_rule(
    raw: &RawAlertRule,
    index: usize,
    names: &AlertNames<'_>,
    key: &KeyPath,
    found: &mut Found,
) -> Option<AlertRule> {
    let before = found.len();
    let name = raw.name.clone().unwrap_or_else(|| format!("rule-{index}"));
    if !crate::units::valid_name(&name) {
        found.push((
            key.clone().key("name"),
            format!("invalid name {name:?}: use letters, digits, '-', '_' and '.'"),
        ));
    }
    let severity = Severity::read(
        raw.severity.as_deref(),
        Severity::Warning,
        key.clone().key("severity"),
        found,
    );
    let op = || match raw.op.as_deref() {
        Some(">") | None => Ok(Op::Above),
        Some(">=") => Ok(Op::AtLeast),
        Some("<") => Ok(Op::Below),
        Some("<=") => Ok(Op::AtMost),
        Some(o) => Err(format!(
            "unknown op {o:?}: expected \">\", \">=\", \"<\" or \"<=\""
        )),
    };
    let series = |found: &mut Found| -> Option<String> {
        let Some(s) = raw.series.clone() else {
            found.push((
                key.clone().key("series"),
                "missing: the series to watch".into(),
            ));
            return None;
        };
        match check_series(&s, names) {
            Ok(s) => Some(s),
            Err(e) => {
                found.push((key.clone().key("series"), e));
                None
            }
        }
    };
    let value = |found: &mut Found| -> f64 {
        match raw.value {
            Some(v) if v.is_finite() => v,
            Some(v) => {
                found.push((key.clone().key("value"), format!("{v} is not a number")));
                0.0
            }
            None => {
                found.push((key.clone().key("value"), "missing: the threshold".into()));
                0.0
            }
        }
    };
    let window = duration(
        &raw.window,
        Duration::from_secs(60),
        key.clone().key("window"),
        found,
    );
    if window.as_secs() < 1 {
        found.push((key.clone().key("window"), "at least 1s".into()));
    }
    let kind = match raw.kind.as_deref().unwrap_or("threshold") {
        "threshold" => {
            let op = op()
                .map_err(|e| found.push((key.clone().key("op"), e)))
                .unwrap_or(Op::Above);
            let value = value(found);
            series(found).map(|series| AlertKind::Threshold {
                series,
                window,
                op,
                value,
            })
        }
        "rate_of_change" => {
            let op = op()
                .map_err(|e| found.push((key.clone().key("op"), e)))
                .unwrap_or(Op::Above);
            let value = value(found);
            let percent = match raw.change.as_deref() {
                None | Some("percent") => true,
                Some("absolute") => false,
                Some(c) => {
                    found.push((
                        key.clone().key("change"),
                        format!("unknown change {c:?}: expected \"percent\" or \"absolute\""),
                    ));
                    true
                }
            };
            series(found).map(|series| AlertKind::RateOfChange {
                series,
                window,
                percent,
                op,
                value,
            })
        }
        "absent" => series(found).map(|series| AlertKind::Absent { series }),
        "budget" => {
            if let Some(b) = &raw.budget
                && !names.budgets.contains(&b.as_str())
            {
                found.push((key.clone().key("budget"), format!("unknown budget {b:?}")));
            }
            let at = raw.at.unwrap_or(100.0);
            if !(0.0..=100.0).contains(&at) {
                found.push((
                    key.clone().key("at"),
                    format!("{at} is out of range: a percent from 0 to 100"),
                ));
            }
            Some(AlertKind::Budget {
                budget: raw.budget.clone(),
                at_percent: at,
            })
        }
        "burn_rate" => {
            let route = match &raw.route {
                Some(r) if names.routes.contains(&r.as_str()) => Some(r.clone()),
                Some(r) => {
                    found.push((key.clone().key("route"), format!("unknown route {r:?}")));
                    None
                }
                None => {
                    found.push((
                        key.clone().key("route"),
                        "missing: the route the SLO is for".into(),
                    ));
                    None
                }
            };
            let objective = raw.objective.unwrap_or(99.9);
            if !(objective > 0.0 && objective < 100.0) {
                found.push((
                    key.clone().key("objective"),
                    format!(
                        "{objective} is out of range: a percent above 0 and below 100 (e.g. 99.9)"
                    ),
                ));
            }
            let long = duration(
                &raw.long,
                Duration::from_secs(3600),
                key.clone().key("long"),
                found,
            );
            let short = duration(
                &raw.short,
                Duration::from_secs(300),
                key.clone().key("short"),
                found,
            );
            if short >= long {
                found.push((
                    key.clone().key("short"),
                    "the short window must be shorter than the long".into(),
                ));
            }
            let factor = raw.factor.unwrap_or(14.4);
            if !(factor > 0.0 && factor.is_finite()) {
                found.push((
                    key.clone().key("factor"),
                    format!("{factor} is not a positive burn rate"),
                ));
            }
            route.map(|route| AlertKind::BurnRate {
                route,
                objective: objective / 100.0,
                latency_ms: raw.latency_ms,
                long,
                short,
                factor,
            })
        }
        "anomaly" => {
            if let Some(p) = &raw.series
                && let Err(e) = crate::anomalies::check_pattern(p)
            {
                found.push((key.clone().key("series"), e));
            }
            let min_score = match raw.value {
                None => 0.85,
                Some(v) if v > 0.0 && v <= 1.0 => v,
                Some(v) => {
                    found.push((
                        key.clone().key("value"),
                        format!(
                            "{v} is out of range: the least anomaly score, above 0 and at most 1"
                        ),
                    ));
                    0.85
                }
            };
            Some(AlertKind::Anomaly {
                series: raw.series.clone(),
                min_score,
            })
        }
        k => {
            found.push((
                key.clone().key("kind"),
                format!(
                    "unknown kind {k:?}: expected \"threshold\", \"rate_of_change\", \"absent\", \"budget\", \"burn_rate\" or \"anomaly\""
                ),
            ));
            None
        }
    };
    let for_ = duration(&raw.for_, Duration::ZERO, key.clone().key("for"), found);
    let repeat = duration(
        &raw.repeat,
        Duration::from_secs(4 * 3600),
        key.clone().key("repeat"),
        found,
    );
    if repeat < Duration::from_secs(60) {
        found.push((key.clone().key("repeat"), "at least 1m".into()));
    }
    if let Some(notify) = &raw.notify {
        for (i, n) in notify.iter().enumerate() {
            if !names.notifiers.contains(&n.as_str()) {
                found.push((
                    key.clone().key("notify").index(i),
                    format!("unknown notifier {n:?}"),
                ));
            }
        }
    }
    let kind = kind?;
    (found.len() == before).then(|| AlertRule {
        notify: raw.notify.clone(),
        group: raw.group.clone().unwrap_or_else(|| name.clone()),
        name,
        severity,
        kind,
        for_,
        labels: raw.labels.clone(),
        repeat,
        description: raw.description.clone().unwrap_or_default(),
        raw: raw.clone(),
    })
}

/// One line of what `kind` watches, for `flowgate check`.
pub fn describe(kind: &AlertKind) -> String {
    let d = crate::format_duration;
    match kind {
        AlertKind::Threshold {
            series,
            window,
            op,
            value,
        } => {
            format!("{series} over {} {} {value}", d(*window), op.as_str())
        }
        AlertKind::RateOfChange {
            series,
            window,
            percent,
            op,
            value,
        } => format!(
            "{series} changed over {} {} {value}{}",
            d(*window),
            op.as_str(),
            if *percent { "%" } else { "" }
        ),
        AlertKind::Absent { series } => format!("{series} absent"),
        AlertKind::Budget { budget, at_percent } => format!(
            "budget {} at {at_percent}%",
            budget.as_deref().unwrap_or("(any)")
        ),
        AlertKind::BurnRate {
            route,
            objective,
            latency_ms,
            long,
            short,
            factor,
        } => format!(
            "route {route} burns its {}% {} SLO {factor}x over {} and {}",
            objective * 100.0,
            latency_ms.map_or_else(
                || "availability".to_string(),
                |ms| format!("latency ({ms} ms)")
            ),
            d(*long),
            d(*short)
        ),
        AlertKind::Anomaly { series, min_score } => format!(
            "an anomaly on {} scoring {min_score} or more",
            series.as_deref().unwrap_or("any watched series")
        ),
    }
}

/// `[alerts]`: its notifiers and its rules, each checked, names unique; secrets read from
/// `env`, files relative to `origin`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn alerts(
    raw: Option<&RawAlerts>,
    names: &AlertNames<'_>,
    env: &[(String, String)],
    origin: Option<&str>,
    data_dir: Option<&std::path::PathBuf>,
    key: &KeyPath,
    found: &mut Found,
) -> AlertsConfig {
    let d = AlertsConfig::default();
    let retention = raw.and_then(|r| r.retention).map_or(d.retention, |h| h.0);
    if !(Duration::from_secs(3600)..=Duration::from_secs(3660 * 86_400)).contains(&retention) {
        found.push((
            key.clone().key("retention"),
            "out of range: from 1h to 3660d".into(),
        ));
    }
    let mut notifiers: Vec<crate::notifiers::NotifierConfig> = Vec::new();
    for (i, n) in raw.map_or(&[][..], |a| &a.notifiers).iter().enumerate() {
        let k = key.clone().key("notifiers").index(i);
        if let Some(n) = crate::notifiers::notifier(n, i, env, origin, &k, found) {
            if notifiers.iter().any(|o| o.name == n.name) {
                found.push((k.key("name"), format!("duplicate notifier {:?}", n.name)));
                continue;
            }
            notifiers.push(n);
        }
    }
    // A notifier that failed its checks is still a name rules may use (one error, not two).
    let written: Vec<String> = raw
        .map_or(&[][..], |a| &a.notifiers)
        .iter()
        .enumerate()
        .map(|(i, n)| n.name.clone().unwrap_or_else(|| format!("notifier-{i}")))
        .collect();
    let notifier_names: Vec<&str> = written.iter().map(String::as_str).collect();
    let names = AlertNames {
        notifiers: &notifier_names,
        ..*names
    };
    let mut rules: Vec<AlertRule> = Vec::new();
    for (i, r) in raw.map_or(&[][..], |a| &a.rules).iter().enumerate() {
        let k = key.clone().key("rules").index(i);
        if let Some(rule) = alert_rule(r, i, &names, &k, found) {
            if rules.iter().any(|o| o.name == rule.name) {
                found.push((k.key("name"), format!("duplicate rule {:?}", rule.name)));
                continue;
            }
            rules.push(rule);
        }
    }
    AlertsConfig {
        rules,
        notifiers,
        retention,
        path: data_dir.map(|d| d.join(ALERTS_FILE)),
    }
}
