//! flowgate's configuration: the TOML schema, validation, environment overrides and the
//! file watcher behind hot reload.
//!
//! Loading is two steps, as in STYLE.md: the file is deserialized into raw `serde` types that
//! reject unknown fields, then validated into [`Config`], a runtime type that cannot be
//! deserialized and cannot be invalid. Every problem names the file, line, column and key, or
//! the `FLOWGATE__*` environment variable that set the value, and says what was expected.
//!
//! ```
//! let cfg = flowgate_config::parse(
//!     "[pools.llm]\nendpoints = [{ url = \"http://127.0.0.1:9000\" }]\n\
//!      [[routes]]\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n",
//!     "flowgate.toml",
//!     std::iter::empty(),
//! )
//! .unwrap();
//! assert_eq!(cfg.routes[0].pool.as_deref(), Some("llm"));
//! ```

mod admin;
mod alerts;
mod anomalies;
mod automation;
mod budget;
mod catalog;
mod cost;
mod cron;
mod databases;
mod env;
mod error;
pub mod fuzzing;
mod history;
mod ip_block;
mod memory;
mod model;
mod notifiers;
mod priority;
mod problems;
mod protocol;
mod provider;
mod proxy;
mod raw;
mod redis_link;
mod resilience;
mod scaling;
mod secret;
mod severity;
mod tls;
mod traces;
mod transform;
mod units;
mod validate;
mod watch;

use std::path::Path;

pub use alerts::{
    AlertKind, AlertNames, AlertRule, AlertsConfig, Op, RawAlertRule, alert_rule, check_series,
    describe as describe_alert,
};
pub use anomalies::{
    AnomaliesConfig, DEFAULT_SERIES as DEFAULT_ANOMALY_SERIES, check_pattern, series_matches,
};
pub use automation::{
    Action as AutomationAction, AutomationConfig, AutomationRule, Better, Change as ConfigChange,
    Replicas, Trigger, Verify,
};
pub use budget::{
    ActionKind, BudgetAction, BudgetConfig, BudgetScope, BudgetWindow, DowngradeTo, Known,
    ModelPolicy, ModelTier, RawAction, RawBudget, Shaping, budget,
};
pub use catalog::{Capabilities, Deployment, ModelInfo};
pub use cost::{CostConfig, SharedBudgetsConfig};
pub use cron::Schedule;
pub use databases::{
    DatabaseAction, DatabaseConfig, PickError, pick_database, query_mean_series,
    slow_queries_series, table_findings_series, xid_age_series,
};
pub use env::PREFIX as ENV_PREFIX;
pub use error::{ConfigError, KeyPath, Location, Problem, Seg};
pub use flowgate_clock::format_duration;
pub use history::{HistoryConfig, SERIES, STAGES};
pub use memory::{MemoryConfig, MemoryLimit};
pub use model::{
    ADMIN_TOKEN_ENV, AccessLog, AdaptiveConfig, AdminConfig, AdminScope, AdminToken,
    AffinityConfig, AuthConfig, AwsEnv, BalanceStrategy, CacheCategory, CacheConfig, CacheMode,
    ClientDialect, ConcurrencyConfig, ConfidenceTtl, Config, DiskCacheConfig, Egress,
    EndpointConfig, Fallback, HealthCheckConfig, HedgeAfter, HedgeConfig, IpBlock, KeyConfig,
    LimitScope, LimitUnit, Limits, ListenerTls, ModelCatalog, ModelPrice, OutlierConfig, PathMatch,
    PoolConfig, Priority, Provider, ProxyConfig, Rate, RateLimitConfig, RedisCacheConfig,
    RedisLinkConfig, RetryConfig, RouteCache, RouteConfig, RouteKind, Secret, ServerConfig,
    SharedLimitsConfig, TagBy, TlsRoots, Triggers, UpstreamKey, UpstreamProtocol, UpstreamTls,
    WarmConfig,
};
pub use model::{format_key_hash, parse_key_hash};
pub use notifiers::{NotifierConfig, NotifierKind, PAGERDUTY_URL, RawNotifier, SmtpTls};
pub use raw::RawEndpoint as EndpointSpec;
pub use raw::RawKey as KeySpec;
pub use scaling::{
    Actuator, GATEWAY_TARGET, PerReplica, PoolScaling, ScalingConfig, ScalingPolicy,
};
pub use severity::Severity;
pub use traces::TracingConfig;
pub use transform::{CODINGS, TransformConfig};
pub use units::{hex, parse_duration, parse_size, parse_usd, parse_window};
pub use validate::defaults;
pub use watch::{FileWatcher, watch_file};

use crate::error::{line_col, locate};

/// Reads, overrides (from the process environment) and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with(path, |_| Vec::new())
}

/// As [`load`], then `check` looks at what the files the config names hold (certificates,
/// keys): its problems, as (key, message), are located in the file as the others are.
pub fn load_with(
    path: &Path,
    check: impl FnOnce(&Config) -> Vec<(KeyPath, String)>,
) -> Result<Config, ConfigError> {
    let origin = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: origin.clone(),
        source,
    })?;
    parse_with(&src, &origin, std::env::vars(), check)
}

/// Parses and validates `src`; `origin` names it in errors; `env` supplies overrides
/// (only `FLOWGATE__*` variables are used).
pub fn parse(
    src: &str,
    origin: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    parse_with(src, origin, env, |_| Vec::new())
}

/// As [`parse`], then `check` (see [`load_with`]).
pub fn parse_with(
    src: &str,
    origin: &str,
    env: impl IntoIterator<Item = (String, String)>,
    check: impl FnOnce(&Config) -> Vec<(KeyPath, String)>,
) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = env.into_iter().collect();
    let overrides = env::overrides(env.iter().cloned());
    let problem = |key: KeyPath, message: String| {
        let location = match overrides.iter().find(|o| key.starts_with(&o.path)) {
            Some(o) => Location::Env { var: o.var.clone() },
            None => match locate(src, &key) {
                Some(at) => {
                    let (line, column) = line_col(src, at);
                    Location::File { line, column }
                }
                None => Location::Unknown,
            },
        };
        Problem {
            origin: origin.to_string(),
            location,
            key,
            message,
            within: None,
        }
    };

    let mut table: toml::Table = match src.parse() {
        Ok(t) => t,
        Err(e) => {
            let e: toml::de::Error = e;
            let location = e.span().map_or(Location::Unknown, |s| {
                let (line, column) = line_col(src, s.start);
                Location::File { line, column }
            });
            return Err(ConfigError::Invalid(vec![Problem {
                origin: origin.to_string(),
                location,
                key: KeyPath::default(),
                message: format!("invalid TOML: {}", e.message()),
                within: None,
            }]));
        }
    };
    let mut problems = Vec::new();
    for o in &overrides {
        if let Err(why) = env::apply(&mut table, o) {
            problems.push(Problem {
                origin: origin.to_string(),
                location: Location::Env { var: o.var.clone() },
                key: o.path.clone(),
                message: why,
                within: None,
            });
        }
    }
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }
    // Every key the file gets wrong, then what validation finds in the rest.
    let (raw, mut found) = problems::deserialize_all(table.clone());
    let unreadable = found.len();
    let config = match raw.map(|raw| validate::validate(raw, origin, &env)) {
        Some(Ok(config)) if found.is_empty() => Some(config),
        Some(Ok(_)) | None => None,
        Some(Err(more)) => {
            // A problem of a table a removed key was in is likely that key's doing (a
            // misspelt `prefix` leaves a route without one): the key's problem says it.
            let removed: Vec<KeyPath> = found.iter().map(|(k, _)| k.clone()).collect();
            found.extend(
                more.into_iter()
                    .filter(|(k, _)| !removed.iter().any(|r| r.starts_with(k))),
            );
            None
        }
    };
    if let Some(config) = &config {
        found = check(config);
    }
    match config {
        Some(config) if found.is_empty() => Ok(config),
        _ => {
            let mut found: Vec<Problem> = found
                .into_iter()
                .map(|(k, m)| {
                    let mut p = problem(k, m);
                    p.within = problems::label(&table, &p.key);
                    p
                })
                .collect();
            // The keys that could not be read in the order of the file (serde visits tables
            // in key order), then what validation found.
            found[..unreadable].sort_by_key(|p| match p.location {
                Location::File { line, column } => (0, line, column),
                Location::Env { .. } | Location::Unknown => (1, 0, 0),
            });
            Err(ConfigError::Invalid(found))
        }
    }
}

/// An endpoint to register through the admin API (`{"url", "name", "weight", "tags",
/// "region", "priority"}`), checked as a pool's `endpoints` are (credentials from the
/// environment `env`); the problems as (key, message).
pub fn endpoint_from_spec(
    spec: EndpointSpec,
    env: &[(String, String)],
) -> Result<EndpointConfig, Vec<(String, String)>> {
    let mut found = Vec::new();
    match validate::endpoint(spec, &KeyPath::default(), env, None, &mut found) {
        Some(e) if found.is_empty() => Ok(e),
        _ => Err(found.into_iter().map(|(k, m)| (k.to_string(), m)).collect()),
    }
}

/// A virtual key to make through the admin API (`{"name", "team", "routes", "models",
/// "limits"}`), checked against `config` as `[[auth.keys]]` are (its hash is made later);
/// the problems as (key, message).
pub fn key_from_spec(spec: &KeySpec, config: &Config) -> Result<KeyConfig, Vec<(String, String)>> {
    let routes = config
        .routes
        .iter()
        .map(|r| (r.name.clone(), r.kind))
        .collect();
    let mut found = Vec::new();
    let key = validate::virtual_key(spec, &KeyPath::default(), &routes, false, &mut found);
    if spec.hash.is_some() {
        found.push((
            KeyPath::default().key("hash"),
            "a key made through the API gets a new random key and its hash; leave `hash` out"
                .into(),
        ));
    }
    if found.is_empty() {
        Ok(key)
    } else {
        Err(found.into_iter().map(|(k, m)| (k.to_string(), m)).collect())
    }
}

#[cfg(test)]
mod tests;
