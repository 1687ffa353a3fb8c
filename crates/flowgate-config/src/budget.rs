//! Budgets (`[[cost.budgets]]`), model tiers (`[[cost.tiers]]`) and routes' model
//! policies (`model_policy`), as written and as validated: every name they use must exist
//! (keys, teams, routes, models, tiers), thresholds lie in 0–100%, amounts are decimals.
//! Budgets made through the admin API go through the same checks ([`budget`]).

use std::collections::BTreeSet;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::catalog::ModelCatalog;
use crate::error::{Found, KeyPath};
use crate::priority::Priority;

/// `[[cost.budgets]]` as written (and as the admin API takes it, in JSON).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    pub name: Option<String>,
    pub scope: Option<String>,
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(
        default,
        deserialize_with = "crate::units::usd",
        serialize_with = "crate::units::usd_out"
    )]
    pub limit_usd: Option<Decimal>,
    pub window: Option<String>,
    pub timezone: Option<String>,
    #[serde(default)]
    pub actions: Vec<RawAction>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    #[serde(
        default,
        deserialize_with = "crate::units::usd",
        serialize_with = "crate::units::usd_out"
    )]
    pub at: Option<Decimal>,
    #[serde(rename = "do")]
    pub action: Option<String>,
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spare: Vec<String>,
}

/// `[[cost.tiers]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTier {
    pub name: String,
    pub models: Vec<String>,
}

/// A route's `shaping` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawShaping {
    pub compact_whitespace: Option<bool>,
    pub max_tokens_default: Option<u64>,
    pub max_tokens_cap: Option<u64>,
    pub temperature: Option<[f64; 2]>,
    pub drop: Option<Vec<String>>,
}

/// How a route makes its requests cheaper before they are sent (`flowgate_cost::shaping`);
/// every step off by default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shaping {
    pub compact_whitespace: bool,
    pub max_tokens_default: Option<u64>,
    pub max_tokens_cap: Option<u64>,
    /// The range a request's temperature is clamped into.
    pub temperature: Option<(f64, f64)>,
    /// Top-level fields removed.
    pub drop: Vec<String>,
}

impl Shaping {
    pub fn is_off(&self) -> bool {
        *self == Shaping::default()
    }
}

/// Fields a request cannot do without.
const KEPT: [&str; 2] = ["model", "messages"];

pub(crate) fn shaping(raw: &RawShaping, key: &KeyPath, found: &mut Found) -> Shaping {
    for (v, k) in [
        (raw.max_tokens_default, "max_tokens_default"),
        (raw.max_tokens_cap, "max_tokens_cap"),
    ] {
        if v == Some(0) {
            found.push((key.clone().key(k), "must be at least 1 token".into()));
        }
    }
    if let (Some(d), Some(c)) = (raw.max_tokens_default, raw.max_tokens_cap)
        && d > c
    {
        found.push((
            key.clone().key("max_tokens_default"),
            format!("{d} is above the cap of {c}"),
        ));
    }
    let temperature = raw.temperature.and_then(|[lo, hi]| {
        let ok = (0.0..=2.0).contains(&lo) && (0.0..=2.0).contains(&hi) && lo <= hi;
        if !ok {
            found.push((
                key.clone().key("temperature"),
                format!("[{lo}, {hi}]: expected [low, high] with 0 <= low <= high <= 2"),
            ));
        }
        ok.then_some((lo, hi))
    });
    let drop = raw.drop.clone().unwrap_or_default();
    for (i, d) in drop.iter().enumerate() {
        if KEPT.contains(&d.as_str()) || d.is_empty() {
            found.push((
                key.clone().key("drop").index(i),
                format!("{d:?}: a request cannot do without it"),
            ));
        }
    }
    Shaping {
        compact_whitespace: raw.compact_whitespace.unwrap_or(false),
        max_tokens_default: raw.max_tokens_default,
        max_tokens_cap: raw.max_tokens_cap,
        temperature,
        drop,
    }
}

/// A route's `model_policy` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawModelPolicy {
    #[serde(default)]
    pub by_priority: std::collections::BTreeMap<String, String>,
    pub auto: Option<bool>,
}

/// What a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BudgetScope {
    Global,
    Key,
    Team,
    Route,
    Model,
}

impl BudgetScope {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetScope::Global => "global",
            BudgetScope::Key => "key",
            BudgetScope::Team => "team",
            BudgetScope::Route => "route",
            BudgetScope::Model => "model",
        }
    }
}

/// Over what time a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BudgetWindow {
    /// The last 60 minutes, by the minute.
    Hour,
    /// The calendar day in the budget's time zone.
    Day,
    /// The calendar month in the budget's time zone.
    Month,
}

impl BudgetWindow {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetWindow::Hour => "hour",
            BudgetWindow::Day => "day",
            BudgetWindow::Month => "month",
        }
    }
}

/// Where a downgrade sends a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DowngradeTo {
    /// The cheapest model of the requested model's own tier that is cheaper than it.
    Cheaper,
    /// The cheapest model of the cheapest tier that has what the request needs.
    Cheapest,
}

/// What a budget does once its spend reaches a share of its limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionKind {
    /// Tell the operators (a log line, an event in the API, a metric).
    Notify,
    /// Send requests to a cheaper model, except those of the `spare` priorities.
    Downgrade {
        to: DowngradeTo,
        spare: Vec<Priority>,
    },
    /// Refuse requests that would go upstream (429, `insufficient_quota`) until the spend
    /// falls back under the threshold.
    Block,
}

impl ActionKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ActionKind::Notify => "notify",
            ActionKind::Downgrade { .. } => "downgrade",
            ActionKind::Block => "block",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetAction {
    /// Percent of the limit, 0 to 100.
    pub at_percent: Decimal,
    pub kind: ActionKind,
}

/// A budget.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetConfig {
    pub name: String,
    pub scope: BudgetScope,
    /// The one key, team, route or model counted; `None` with such a scope: each counted
    /// apart, against the same limit.
    pub value: Option<String>,
    pub limit_usd: Decimal,
    pub window: BudgetWindow,
    pub timezone: jiff::tz::TimeZone,
    /// As written (`UTC` by default), for display.
    pub timezone_name: String,
    /// By threshold, lowest first.
    pub actions: Vec<BudgetAction>,
    /// How it was written, for the API to show and keep.
    pub raw: RawBudget,
}

/// A model tier: models of comparable capability, most capable tier first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelTier {
    pub name: String,
    /// The catalog's ids (aliases resolved).
    pub models: Vec<String>,
}

/// How a route picks the model of a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelPolicy {
    /// The tier each priority is served from (`x-flowgate-priority`).
    pub by_priority: Vec<(Priority, String)>,
    /// `"model": "auto"` is the cheapest model that has what the request needs.
    pub auto: bool,
}

/// The names a budget may count.
#[derive(Debug, Clone, Default)]
pub struct Known<'a> {
    pub keys: BTreeSet<&'a str>,
    pub teams: BTreeSet<&'a str>,
    pub routes: BTreeSet<&'a str>,
    pub models: Option<&'a ModelCatalog>,
}

/// A budget, checked; its problems (key, message) otherwise.
pub fn budget(
    raw: &RawBudget,
    index: usize,
    known: &Known<'_>,
    key: &KeyPath,
    found: &mut Found,
) -> Option<BudgetConfig> {
    let before = found.len();
    let name = raw
        .name
        .clone()
        .unwrap_or_else(|| format!("budget-{index}"));
    if !crate::units::valid_name(&name) {
        found.push((
            key.clone().key("name"),
            format!("invalid name {name:?}: use letters, digits, '-', '_' and '.'"),
        ));
    }
    let scope = match raw.scope.as_deref() {
        None | Some("global") => BudgetScope::Global,
        Some("key") => BudgetScope::Key,
        Some("team") => BudgetScope::Team,
        Some("route") => BudgetScope::Route,
        Some("model") => BudgetScope::Model,
        Some(s) => {
            found.push((
                key.clone().key("scope"),
                format!(
                    "unknown scope {s:?}: expected \"global\", \"key\", \"team\", \"route\" or \"model\""
                ),
            ));
            BudgetScope::Global
        }
    };
    let value = raw.value.clone();
    match (scope, value.as_deref()) {
        (BudgetScope::Global, Some(_)) => found.push((
            key.clone().key("match"),
            "a global budget counts everything: match applies to key, team, route and model budgets".into(),
        )),
        (BudgetScope::Key, Some(v)) if !known.keys.contains(v) => found.push((
            key.clone().key("match"),
            format!("unknown key {v:?}"),
        )),
        (BudgetScope::Team, Some(v)) if !known.teams.contains(v) => found.push((
            key.clone().key("match"),
            format!("unknown team {v:?}: no key belongs to it"),
        )),
        (BudgetScope::Route, Some(v)) if !known.routes.contains(v) => found.push((
            key.clone().key("match"),
            format!("unknown route {v:?}"),
        )),
        (BudgetScope::Model, Some(v))
            if known.models.is_some_and(|c| c.get(v).is_none() && c.price(v).is_none()) =>
        {
            found.push((
                key.clone().key("match"),
                format!("unknown model {v:?}: the catalog neither knows nor prices it"),
            ));
        }
        _ => {}
    }
    let limit_usd = match raw.limit_usd {
        Some(l) if l > Decimal::ZERO => l,
        Some(l) => {
            found.push((
                key.clone().key("limit_usd"),
                format!("{l} is not a budget: expected US dollars above 0"),
            ));
            Decimal::ONE
        }
        None => {
            found.push((
                key.clone().key("limit_usd"),
                "missing: the budget's limit in US dollars".into(),
            ));
            Decimal::ONE
        }
    };
    let window = match raw.window.as_deref() {
        Some("hour") => BudgetWindow::Hour,
        Some("day") => BudgetWindow::Day,
        Some("month") => BudgetWindow::Month,
        other => {
            found.push((
                key.clone().key("window"),
                match other {
                    Some(w) => format!(
                        "unknown window {w:?}: expected \"hour\" (the last 60 minutes), \"day\" or \"month\""
                    ),
                    None => "missing: \"hour\" (the last 60 minutes), \"day\" or \"month\"".into(),
                },
            ));
            BudgetWindow::Day
        }
    };
    let timezone_name = raw.timezone.clone().unwrap_or_else(|| "UTC".into());
    let timezone = match jiff::tz::TimeZone::get(&timezone_name) {
        Ok(tz) => tz,
        Err(_) => {
            found.push((
                key.clone().key("timezone"),
                format!("unknown time zone {timezone_name:?}: expected an IANA name such as \"UTC\" or \"Europe/Berlin\""),
            ));
            jiff::tz::TimeZone::UTC
        }
    };
    if raw.actions.is_empty() {
        found.push((
            key.clone().key("actions"),
            "a budget needs at least one action, e.g. [{ at = 100, do = \"block\" }]".into(),
        ));
    }
    let mut actions = Vec::new();
    for (i, a) in raw.actions.iter().enumerate() {
        let key = key.clone().key("actions").index(i);
        let at_percent = match a.at {
            Some(p) if p >= Decimal::ZERO && p <= Decimal::ONE_HUNDRED => p,
            Some(p) => {
                found.push((
                    key.clone().key("at"),
                    format!("{p}% is out of range: a threshold is 0 to 100 (percent of the limit)"),
                ));
                continue;
            }
            None => {
                found.push((
                    key.clone().key("at"),
                    "missing: percent of the limit, 0 to 100".into(),
                ));
                continue;
            }
        };
        let spare: Vec<Priority> = a
            .spare
            .iter()
            .enumerate()
            .filter_map(|(j, p)| {
                let found_p = Priority::ALL.into_iter().find(|x| x.as_str() == p);
                if found_p.is_none() {
                    found.push((
                        key.clone().key("spare").index(j),
                        format!("unknown priority {p:?}: expected critical, high, normal or low"),
                    ));
                }
                found_p
            })
            .collect();
        let kind = match (a.action.as_deref(), a.to.as_deref()) {
            (Some("notify"), None) => ActionKind::Notify,
            (Some("block"), None) => ActionKind::Block,
            (Some("downgrade"), to) => {
                ActionKind::Downgrade {
                    to: match to {
                        None | Some("cheaper") => DowngradeTo::Cheaper,
                        Some("cheapest") => DowngradeTo::Cheapest,
                        Some(t) => {
                            found.push((
                            key.clone().key("to"),
                            format!("{t:?}: expected \"cheaper\" (in the model's tier) or \"cheapest\""),
                        ));
                            DowngradeTo::Cheaper
                        }
                    },
                    spare: spare.clone(),
                }
            }
            (Some("notify" | "block"), Some(_)) => {
                found.push((
                    key.clone().key("to"),
                    "only a downgrade has a target".into(),
                ));
                continue;
            }
            (Some(other), _) => {
                found.push((
                    key.clone().key("do"),
                    format!(
                        "unknown action {other:?}: expected \"notify\", \"downgrade\" or \"block\""
                    ),
                ));
                continue;
            }
            (None, _) => {
                found.push((
                    key.clone().key("do"),
                    "missing: \"notify\", \"downgrade\" or \"block\"".into(),
                ));
                continue;
            }
        };
        if !spare.is_empty() && !matches!(kind, ActionKind::Downgrade { .. }) {
            found.push((
                key.clone().key("spare"),
                "only a downgrade spares priorities".into(),
            ));
        }
        actions.push(BudgetAction { at_percent, kind });
    }
    actions.sort_by_key(|a| a.at_percent);
    (found.len() == before).then(|| BudgetConfig {
        name,
        scope,
        value,
        limit_usd,
        window,
        timezone,
        timezone_name,
        actions,
        raw: raw.clone(),
    })
}

/// The tiers, each model named by its catalog id.
pub(crate) fn tiers(
    raw: &[RawTier],
    catalog: &ModelCatalog,
    key: &KeyPath,
    found: &mut Found,
) -> Vec<ModelTier> {
    let mut out: Vec<ModelTier> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for (i, t) in raw.iter().enumerate() {
        let key = key.clone().index(i);
        if out.iter().any(|o| o.name == t.name) || !crate::units::valid_name(&t.name) {
            found.push((
                key.clone().key("name"),
                format!(
                    "{:?}: a tier needs a unique name of letters, digits, '-', '_' and '.'",
                    t.name
                ),
            ));
        }
        if t.models.is_empty() {
            found.push((
                key.clone().key("models"),
                format!("tier {:?} has no model", t.name),
            ));
        }
        let mut models = Vec::new();
        for (j, m) in t.models.iter().enumerate() {
            let Some(info) = catalog.get(m) else {
                found.push((
                    key.clone().key("models").index(j),
                    format!("unknown model {m:?}: a tier's models are the catalog's ([models.\"NAME\"] adds one)"),
                ));
                continue;
            };
            if info.price.is_none() {
                found.push((
                    key.clone().key("models").index(j),
                    format!("model {m:?} has no price: tiers choose by price"),
                ));
            }
            if !seen.insert(info.id.clone()) {
                found.push((
                    key.clone().key("models").index(j),
                    format!("model {m:?} is in two tiers"),
                ));
            }
            models.push(info.id.clone());
        }
        out.push(ModelTier {
            name: t.name.clone(),
            models,
        });
    }
    out
}

/// A route's model policy, its tiers among `tiers`.
pub(crate) fn model_policy(
    raw: &RawModelPolicy,
    tiers: &[ModelTier],
    key: &KeyPath,
    found: &mut Found,
) -> ModelPolicy {
    let mut by_priority = Vec::new();
    for (p, tier) in &raw.by_priority {
        let k = key.clone().key("by_priority").key(p);
        let Some(priority) = Priority::ALL.into_iter().find(|x| x.as_str() == p) else {
            found.push((
                k,
                format!("unknown priority {p:?}: expected critical, high, normal or low"),
            ));
            continue;
        };
        if !tiers.iter().any(|t| t.name == *tier) {
            found.push((
                k,
                format!("unknown tier {tier:?}: [[cost.tiers]] names the tiers"),
            ));
            continue;
        }
        by_priority.push((priority, tier.clone()));
    }
    let auto = raw.auto.unwrap_or(false);
    if auto && tiers.is_empty() {
        found.push((
            key.clone().key("auto"),
            "\"auto\" picks among the tiers' models: [[cost.tiers]] has none".into(),
        ));
    }
    ModelPolicy { by_priority, auto }
}
