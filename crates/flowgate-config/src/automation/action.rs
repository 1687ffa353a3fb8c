//! What an automation rule does (`do`): its forms as written, their validation against
//! what the config names, and the changes to the running config some of them make
//! ([`Change`], applied to a [`Config`] the way a reload applies one).

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Found, KeyPath};
use crate::model::{CacheConfig, Config, PoolConfig, RateLimitConfig, RouteConfig, RouteKind};
use crate::units::HumanDuration;
use crate::{ModelPolicy, ModelTier, Priority, Severity};

/// The longest TTL an action may give a cache category.
const MAX_TTL: Duration = Duration::from_secs(30 * 86_400);

/// `do = { ... }` as written: one action's key, with its arguments.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDo {
    pub strategy: Option<String>,
    pub scale: Option<String>,
    pub replicas: Option<toml::Value>,
    pub pool: Option<String>,
    pub warm: Option<i64>,
    pub cache_ttl: Option<String>,
    pub ttl: Option<HumanDuration>,
    pub rate_limit: Option<String>,
    pub amount: Option<i64>,
    pub burst: Option<i64>,
    pub shed: Option<String>,
    pub route: Option<String>,
    pub model_tier: Option<String>,
    pub notify: Option<toml::Value>,
    pub severity: Option<String>,
}

/// A pool's size an action asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replicas {
    To(u32),
    By(i32),
}

/// A change to the running config (undone by taking it away: the config is rebuilt from
/// the file's with the changes still in force).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `[[cache.categories]]` `category` stores new entries for `ttl`.
    CacheTtl { category: String, ttl: Duration },
    /// `[[rate_limits]]` `limit` allows `amount` per its period; its burst scales with it
    /// unless given.
    RateLimit {
        limit: String,
        amount: u64,
        burst: Option<u64>,
    },
    /// Requests of `priority` and below are refused (503) on `route`, every route when
    /// `None`.
    Shed {
        route: Option<String>,
        priority: Priority,
    },
    /// Every priority of `route` is served from `tier`.
    ModelTier { route: String, tier: String },
    /// `pool` picks its endpoints by `strategy` (the pool is rebuilt, as by a reload that
    /// changes it: its latency estimates and breakers start over).
    Strategy {
        pool: String,
        strategy: crate::BalanceStrategy,
    },
    /// `pool`'s named endpoints get these weights (likewise rebuilt).
    Weights {
        pool: String,
        weights: Vec<(String, u32)>,
    },
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Switch `pool`'s balancing strategy (undone: the one before).
    Strategy { pool: String, to: String },
    /// Scale `pool` through its scaling actuator (undone: the size before).
    Scale { pool: String, replicas: Replicas },
    /// Change the running config (undone: the change taken away).
    Change(Change),
    /// Warm the cache with the `top` most requested recent requests (nothing to undo).
    Warm { top: usize },
    /// Tell `notifiers` (every one when empty) why the rule acted (nothing to undo).
    Notify {
        notifiers: Vec<String>,
        severity: Severity,
    },
}

/// What the rules' actions may name.
pub(crate) struct Targets<'a> {
    pub pools: &'a [&'a str],
    /// Pools `[scaling]` scales with an actuator, and their bounds.
    pub scaled: &'a [(&'a str, u32, u32)],
    /// Checks a balancing strategy's name.
    pub strategy: fn(&str) -> Result<(), String>,
    pub routes: &'a [Arc<RouteConfig>],
    pub rate_limits: &'a [RateLimitConfig],
    pub cache: &'a CacheConfig,
    pub tiers: &'a [ModelTier],
    pub notifiers: &'a [&'a str],
}

/// The action keys, and the arguments each takes.
const FORMS: [(&str, &[&str]); 8] = [
    ("strategy", &["pool"]),
    ("scale", &["replicas"]),
    ("warm", &[]),
    ("cache_ttl", &["ttl"]),
    ("rate_limit", &["amount", "burst"]),
    ("shed", &["route"]),
    ("model_tier", &["route"]),
    ("notify", &["severity"]),
];

impl RawDo {
    fn given(&self, name: &str) -> bool {
        match name {
            "strategy" => self.strategy.is_some(),
            "scale" => self.scale.is_some(),
            "replicas" => self.replicas.is_some(),
            "pool" => self.pool.is_some(),
            "warm" => self.warm.is_some(),
            "cache_ttl" => self.cache_ttl.is_some(),
            "ttl" => self.ttl.is_some(),
            "rate_limit" => self.rate_limit.is_some(),
            "amount" => self.amount.is_some(),
            "burst" => self.burst.is_some(),
            "shed" => self.shed.is_some(),
            "route" => self.route.is_some(),
            "model_tier" => self.model_tier.is_some(),
            "notify" => self.notify.is_some(),
            "severity" => self.severity.is_some(),
            _ => false,
        }
    }
}

pub(crate) fn action(
    raw: &RawDo,
    t: &Targets<'_>,
    key: &KeyPath,
    found: &mut Found,
) -> Option<Action> {
    let chosen: Vec<&(&str, &[&str])> = FORMS.iter().filter(|(k, _)| raw.given(k)).collect();
    let &[&(form, args)] = chosen.as_slice() else {
        found.push((
            key.clone(),
            "one of strategy (with pool), scale (with replicas), warm, cache_ttl (with ttl), \
             rate_limit (with amount), shed, model_tier (with route) or notify"
                .into(),
        ));
        return None;
    };
    // An argument of another action is a mistake, not a no-op.
    for (_, other) in FORMS.iter().filter(|(k, _)| *k != form) {
        for a in other.iter().filter(|a| !args.contains(a) && raw.given(a)) {
            found.push((key.clone().key(a), format!("{form} does not take {a}")));
        }
    }
    let k = |name: &str| key.clone().key(name);
    let missing = |found: &mut Found, name: &str, what: &str| {
        found.push((k(name), format!("missing: {what}")));
    };
    match form {
        "strategy" => {
            let to = raw.strategy.clone()?;
            let Some(pool) = raw.pool.clone() else {
                missing(found, "pool", "the pool whose strategy changes");
                return None;
            };
            if !t.pools.contains(&pool.as_str()) {
                found.push((k("pool"), format!("no pool {pool:?}")));
            }
            if let Err(e) = (t.strategy)(&to) {
                found.push((k("strategy"), e));
            }
            Some(Action::Strategy { pool, to })
        }
        "scale" => scale(raw, t, key, found),
        "warm" => {
            let n = raw.warm?;
            let keep = t.cache.warm.keep;
            if !t.cache.enabled {
                found.push((
                    k("warm"),
                    "the cache is not enabled ([cache] enabled)".into(),
                ));
            } else if keep == 0 {
                found.push((
                    k("warm"),
                    "no recent requests are kept to warm with ([cache.warm] keep = 0)".into(),
                ));
            } else if n < 1 || n as usize > keep {
                found.push((
                    k("warm"),
                    format!("{n}: from 1 to the recent requests kept ([cache.warm] keep = {keep})"),
                ));
            }
            Some(Action::Warm {
                top: usize::try_from(n).unwrap_or(0),
            })
        }
        "cache_ttl" => {
            let category = raw.cache_ttl.clone()?;
            if !t.cache.categories.iter().any(|c| c.name == category) {
                found.push((
                    k("cache_ttl"),
                    format!("no category {category:?} in [[cache.categories]]"),
                ));
            }
            let Some(ttl) = raw.ttl else {
                missing(found, "ttl", "the category's new TTL (\"2h\")");
                return None;
            };
            if ttl.0.is_zero() || ttl.0 > MAX_TTL {
                found.push((k("ttl"), "from 1s to 30d".into()));
            }
            Some(Action::Change(Change::CacheTtl {
                category,
                ttl: ttl.0,
            }))
        }
        "rate_limit" => {
            let limit = raw.rate_limit.clone()?;
            if !t.rate_limits.iter().any(|l| l.name == limit) {
                found.push((
                    k("rate_limit"),
                    format!("no limit {limit:?} in [[rate_limits]]"),
                ));
            }
            let Some(amount) = raw.amount else {
                missing(
                    found,
                    "amount",
                    "the requests (or tokens) the limit allows per its period",
                );
                return None;
            };
            let positive = |found: &mut Found, name: &str, n: i64| {
                if n < 1 {
                    found.push((k(name), format!("{n}: at least 1")));
                }
                u64::try_from(n).unwrap_or(1)
            };
            Some(Action::Change(Change::RateLimit {
                limit,
                amount: positive(found, "amount", amount),
                burst: raw.burst.map(|b| positive(found, "burst", b)),
            }))
        }
        "shed" => {
            let written = raw.shed.clone()?;
            let priority = match Priority::parse(&written) {
                Some(Priority::Critical) => {
                    found.push((
                        k("shed"),
                        "critical requests are never shed: high, normal or low".into(),
                    ));
                    return None;
                }
                Some(p) => p,
                None => {
                    found.push((
                        k("shed"),
                        format!(
                            "{written:?}: high, normal or low (that priority and below are refused)"
                        ),
                    ));
                    return None;
                }
            };
            if let Some(r) = &raw.route
                && !t.routes.iter().any(|x| x.name == *r)
            {
                found.push((k("route"), format!("no route {r:?}")));
            }
            Some(Action::Change(Change::Shed {
                route: raw.route.clone(),
                priority,
            }))
        }
        "model_tier" => {
            let tier = raw.model_tier.clone()?;
            if !t.tiers.iter().any(|x| x.name == tier) {
                found.push((
                    k("model_tier"),
                    format!("unknown tier {tier:?}: [[cost.tiers]] names the tiers"),
                ));
            }
            let Some(route) = raw.route.clone() else {
                missing(found, "route", "the route whose requests change tier");
                return None;
            };
            match t.routes.iter().find(|x| x.name == route) {
                None => found.push((k("route"), format!("no route {route:?}"))),
                Some(r) if r.kind != RouteKind::OpenAi => found.push((
                    k("route"),
                    format!("route {route:?} is not an openai route: it has no models"),
                )),
                Some(_) => {}
            }
            Some(Action::Change(Change::ModelTier { route, tier }))
        }
        "notify" => {
            let notifiers = match &raw.notify {
                Some(toml::Value::String(s)) if s == "*" => Vec::new(),
                Some(toml::Value::String(s)) => vec![s.clone()],
                Some(toml::Value::Array(a)) if !a.is_empty() => a
                    .iter()
                    .map(|v| v.as_str().unwrap_or_default().to_string())
                    .collect(),
                _ => {
                    found.push((
                        k("notify"),
                        "a notifier's name, a list of them, or \"*\" (every one)".into(),
                    ));
                    return None;
                }
            };
            for n in &notifiers {
                if !t.notifiers.contains(&n.as_str()) {
                    found.push((
                        k("notify"),
                        format!("no notifier {n:?} in [[alerts.notifiers]]"),
                    ));
                }
            }
            let severity = Severity::read(
                raw.severity.as_deref(),
                Severity::Warning,
                k("severity"),
                found,
            );
            Some(Action::Notify {
                notifiers,
                severity,
            })
        }
        _ => None,
    }
}

fn scale(raw: &RawDo, t: &Targets<'_>, key: &KeyPath, found: &mut Found) -> Option<Action> {
    let pool = raw.scale.as_ref()?;
    let Some(&(_, min, max)) = t.scaled.iter().find(|(p, _, _)| p == pool) else {
        found.push((
            key.clone().key("scale"),
            format!("pool {pool:?} has no [scaling.pools.{pool}] with an actuator to scale it"),
        ));
        return None;
    };
    let replicas = match &raw.replicas {
        Some(toml::Value::Integer(n)) if *n >= i64::from(min) && *n <= i64::from(max) => {
            Replicas::To(*n as u32)
        }
        Some(toml::Value::Integer(n)) => {
            found.push((
                key.clone().key("replicas"),
                format!("{n} is beyond the pool's scaling bounds, {min} to {max}"),
            ));
            return None;
        }
        Some(toml::Value::String(s)) => match s.parse::<i32>() {
            Ok(n)
                if (s.starts_with('+') || s.starts_with('-'))
                    && n != 0
                    && n.unsigned_abs() <= max =>
            {
                Replicas::By(n)
            }
            _ => {
                found.push((
                    key.clone().key("replicas"),
                    format!(
                        "{s:?}: a count (4) or a change (\"+2\", \"-1\") within the pool's \
                         bounds, {min} to {max}"
                    ),
                ));
                return None;
            }
        },
        _ => {
            found.push((
                key.clone().key("replicas"),
                "missing: a count (4) or a change (\"+2\", \"-1\")".into(),
            ));
            return None;
        }
    };
    Some(Action::Scale {
        pool: pool.clone(),
        replicas,
    })
}

/// The config's pool `name`.
fn pool_of<'c>(config: &'c mut Config, name: &str) -> Result<&'c mut Arc<PoolConfig>, String> {
    config
        .pools
        .iter_mut()
        .find(|p| p.name == name)
        .ok_or_else(|| format!("no pool {name:?}"))
}

impl Change {
    /// In words, as the audit log says it.
    pub fn describe(&self) -> String {
        match self {
            Change::CacheTtl { category, ttl } => format!(
                "cache category {category}'s TTL {}",
                crate::format_duration(*ttl)
            ),
            Change::RateLimit { limit, amount, .. } => {
                format!("rate limit {limit} at {amount} per its period")
            }
            Change::Shed { route, priority } => format!(
                "{} sheds {} priority requests and below",
                route
                    .as_ref()
                    .map_or("every route".to_string(), |r| format!("route {r}")),
                priority.as_str()
            ),
            Change::ModelTier { route, tier } => {
                format!("route {route} served from tier {tier}")
            }
            Change::Strategy { pool, strategy } => {
                format!("pool {pool} balanced by {}", strategy.as_str())
            }
            Change::Weights { pool, weights } => format!(
                "pool {pool} weighted {}",
                weights
                    .iter()
                    .map(|(e, w)| format!("{e}={w}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// Makes the change in `config`, checked against it as the config's validation
    /// checks the file (the target exists, the value is one it allows); what the target
    /// was, in words.
    pub fn apply(&self, config: &mut Config) -> Result<String, String> {
        match self {
            Change::CacheTtl { category, ttl } => {
                let c = config
                    .cache
                    .categories
                    .iter_mut()
                    .find(|c| c.name == *category)
                    .ok_or_else(|| format!("no cache category {category:?}"))?;
                if ttl.is_zero() || *ttl > MAX_TTL {
                    return Err("a TTL from 1s to 30d".into());
                }
                let was = crate::format_duration(c.ttl);
                c.ttl = *ttl;
                Ok(format!("TTL {was}"))
            }
            Change::RateLimit {
                limit,
                amount,
                burst,
            } => {
                let l = config
                    .rate_limits
                    .iter_mut()
                    .find(|l| l.name == *limit)
                    .ok_or_else(|| format!("no rate limit {limit:?}"))?;
                if *amount == 0 || burst == &Some(0) {
                    return Err("a rate limit allows at least 1".into());
                }
                let was = format!("{} (burst {})", l.rate.amount, l.rate.burst);
                let scaled = (l.rate.burst as f64 * *amount as f64 / l.rate.amount.max(1) as f64)
                    .round()
                    .max(1.0) as u64;
                l.rate.burst = burst.unwrap_or(scaled);
                l.rate.amount = *amount;
                Ok(was)
            }
            Change::Shed { route, priority } => {
                if *priority == Priority::Critical {
                    return Err("critical requests are never shed".into());
                }
                let mut any = false;
                let mut was = Vec::new();
                for r in config
                    .routes
                    .iter_mut()
                    .filter(|r| route.as_ref().is_none_or(|n| *n == r.name))
                {
                    any = true;
                    let r = Arc::make_mut(r);
                    if let Some(p) = r.shed {
                        was.push(format!("{} shed {}", r.name, p.as_str()));
                    }
                    r.shed = Some(*priority);
                }
                if !any {
                    return Err(format!("no route {:?}", route.as_deref().unwrap_or("")));
                }
                Ok(if was.is_empty() {
                    "nothing shed".into()
                } else {
                    was.join(", ")
                })
            }
            Change::ModelTier { route, tier } => {
                if !config.cost.tiers.iter().any(|t| t.name == *tier) {
                    return Err(format!("no model tier {tier:?}"));
                }
                let r = config
                    .routes
                    .iter_mut()
                    .find(|r| r.name == *route)
                    .ok_or_else(|| format!("no route {route:?}"))?;
                if r.kind != RouteKind::OpenAi {
                    return Err(format!("route {route:?} is not an openai route"));
                }
                let r = Arc::make_mut(r);
                let policy = r.model_policy.get_or_insert_with(ModelPolicy::default);
                let was = if policy.by_priority.is_empty() {
                    "the requested models".to_string()
                } else {
                    policy
                        .by_priority
                        .iter()
                        .map(|(p, t)| format!("{} → {t}", p.as_str()))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                policy.by_priority = Priority::ALL.iter().map(|p| (*p, tier.clone())).collect();
                Ok(was)
            }
            Change::Strategy { pool, strategy } => {
                let p = Arc::make_mut(pool_of(config, pool)?);
                let was = p.strategy.as_str().to_string();
                p.strategy = *strategy;
                Ok(was)
            }
            Change::Weights { pool, weights } => {
                let p = Arc::make_mut(pool_of(config, pool)?);
                if let Some((e, _)) = weights
                    .iter()
                    .find(|(e, _)| !p.endpoints.iter().any(|x| x.name == *e))
                {
                    return Err(format!("pool {pool:?} has no endpoint {e:?} in the config"));
                }
                if weights.iter().any(|(_, w)| *w == 0) {
                    return Err("a weight is at least 1".into());
                }
                let was = p
                    .endpoints
                    .iter()
                    .map(|e| format!("{}={}", e.name, e.weight))
                    .collect::<Vec<_>>()
                    .join(", ");
                for e in &mut p.endpoints {
                    if let Some((_, w)) = weights.iter().find(|(n, _)| *n == e.name) {
                        e.weight = *w;
                    }
                }
                Ok(was)
            }
        }
    }
}
