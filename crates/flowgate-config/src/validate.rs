//! Turns a [`RawConfig`] into a runtime [`Config`], collecting every problem (not only the
//! first) with the key it belongs to.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, Uri};

use crate::error::KeyPath;
use crate::ip_block::IpBlock;
use crate::model::{
    AccessLog, AdaptiveConfig, AffinityConfig, AuthConfig, BalanceStrategy, CacheCategory,
    CacheConfig, CacheMode, ClientDialect, ConcurrencyConfig, ConfidenceTtl, Config,
    DiskCacheConfig, EndpointConfig, KeyConfig, LimitScope, LimitUnit, Limits, PathMatch,
    PoolConfig, Priority, Rate, RateLimitConfig, RedisCacheConfig, RouteCache, RouteConfig,
    RouteKind, Secret, ServerConfig, SharedLimitsConfig, TagBy, UpstreamKey, WarmConfig,
};
use crate::raw::{
    RawAuth, RawCache, RawCacheCategory, RawCacheMode, RawConcurrency, RawConfidence, RawConfig,
    RawDiskCache, RawEndpoint, RawKey, RawPool, RawRate, RawRateLimit, RawRedisCache, RawRoute,
    RawRouteCache, RawRouteKind, RawSharedLimits, RawWarm,
};
use crate::redis_link::{RawLink, redis_link};
use crate::units::{dur, positive, relative_to, valid_name};

/// Defaults, documented in `docs/configuration.md`.
pub mod defaults {
    use std::time::Duration;

    pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
    pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);
    pub const MAX_CLIENT_CONNECTIONS: usize = 10_000;
    pub const LISTEN: &str = "127.0.0.1:8080";
    pub const ADMIN_LISTEN: &str = "127.0.0.1:9090";
    pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
    pub const MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;
    pub const MAX_HEADER_BYTES: u64 = 64 * 1024;
    pub const MAX_HEADERS: u32 = 100;
    pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
    pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
    pub const MAX_CONNECTIONS: u32 = 1024;
    pub const MAX_IDLE: u32 = 64;
    pub const MAX_WORKERS: u32 = 256;
    pub const CACHE_MEMORY: u64 = 256 * 1024 * 1024;
    pub const CACHE_MAX_ENTRY: u64 = 4 * 1024 * 1024;
    pub const CACHE_TTL: Duration = Duration::from_secs(3600);
    pub const MAX_CACHE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
    pub const COALESCE_WAIT: Duration = Duration::from_secs(30);
    pub const COMPRESS_ABOVE: u64 = 1024;
    pub const CACHE_DISK: u64 = 1024 * 1024 * 1024;
    pub const DISK_PURGE_INTERVAL: Duration = Duration::from_secs(60);
    pub use crate::redis_link::{
        REDIS_BREAKER_COOLDOWN, REDIS_BREAKER_FAILURES, REDIS_PREFIX, REDIS_TIMEOUT,
    };
    pub const REDIS_LOCK_WAIT: Duration = Duration::from_secs(5);
    pub const QUEUE_TIMEOUT: Duration = Duration::from_secs(30);
    pub const POPULAR_HITS: u64 = 5;
    pub const WARM_RATE: u32 = 10;
    pub const WARM_KEEP: usize = 1000;
}

pub(crate) use crate::error::Found;

pub(crate) fn validate(
    raw: RawConfig,
    origin: &str,
    env: &[(String, String)],
) -> Result<Config, Found> {
    let mut found = Found::new();
    let root = KeyPath::default();

    let server_key = root.clone().key("server");
    let listen = addr(
        raw.server.listen.as_deref(),
        defaults::LISTEN,
        &server_key.clone().key("listen"),
        &mut found,
    );
    let admin_listen = addr(
        raw.server.admin_listen.as_deref(),
        defaults::ADMIN_LISTEN,
        &server_key.clone().key("admin_listen"),
        &mut found,
    );
    if listen == admin_listen && listen.port() != 0 {
        found.push((
            server_key.clone().key("admin_listen"),
            format!("must differ from server.listen (both are {listen})"),
        ));
    }
    let workers = match raw.server.workers {
        None => None,
        Some(n @ 1..=defaults::MAX_WORKERS) => std::num::NonZeroUsize::new(n as usize),
        Some(n) => {
            found.push((
                server_key.clone().key("workers"),
                format!(
                    "{n} is out of range: expected 1 to {} (leave it out for one per core)",
                    defaults::MAX_WORKERS
                ),
            ));
            None
        }
    };
    let server = ServerConfig {
        listen,
        admin_listen,
        drain_timeout: dur(raw.server.drain_timeout, defaults::DRAIN_TIMEOUT),
        http2: raw.server.http2.unwrap_or(true),
        workers,
        region: raw.server.region.clone(),
        trusted_proxies: raw
            .server
            .trusted_proxies
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, s)| {
                let block = IpBlock::parse(s);
                if block.is_none() {
                    found.push((
                        root.clone().key("server").key("trusted_proxies").index(i),
                        format!("{s:?}: expected an IP address or a block such as \"10.0.0.0/8\""),
                    ));
                }
                block
            })
            .collect(),
        tls: crate::tls::listener_tls(raw.server.tls, origin, &server_key, &mut found),
        data_dir: match raw.server.data_dir.as_deref() {
            Some("") => {
                found.push((
                    server_key.clone().key("data_dir"),
                    "an empty path: leave it out to keep nothing across restarts".into(),
                ));
                None
            }
            Some(d) => Some(relative_to(origin, d)),
            None => None,
        },
        access_log: match raw.server.access_log.as_deref() {
            Some("") => {
                found.push((
                    server_key.clone().key("access_log"),
                    "an empty path: a file, or \"-\" for standard output".into(),
                ));
                None
            }
            Some("-") => Some(AccessLog::Stdout),
            Some(p) => Some(AccessLog::File(relative_to(origin, p))),
            None => None,
        },
    };

    let lk = root.clone().key("limits");
    let l = &raw.limits;
    let max_header_bytes = l
        .max_header_bytes
        .map_or(defaults::MAX_HEADER_BYTES, |b| b.0);
    if !(1024..=1024 * 1024).contains(&max_header_bytes) {
        found.push((
            lk.clone().key("max_header_bytes"),
            format!("{max_header_bytes} is out of range: expected 1KiB to 1MiB"),
        ));
    }
    let max_headers = l.max_headers.unwrap_or(defaults::MAX_HEADERS);
    if !(1..=1000).contains(&max_headers) {
        found.push((
            lk.clone().key("max_headers"),
            format!("{max_headers} is out of range: expected 1 to 1000"),
        ));
    }
    let header_read_timeout = dur(l.header_read_timeout, defaults::HEADER_READ_TIMEOUT);
    positive(
        header_read_timeout,
        &lk.clone().key("header_read_timeout"),
        &mut found,
    );
    let limits = Limits {
        max_body_bytes: l.max_body_bytes.map_or(defaults::MAX_BODY_BYTES, |b| b.0),
        max_header_bytes: usize::try_from(max_header_bytes).unwrap_or(usize::MAX),
        max_headers: max_headers as usize,
        header_read_timeout,
        body_read_timeout: dur(l.body_read_timeout, defaults::BODY_READ_TIMEOUT),
        send_timeout: dur(l.send_timeout, defaults::SEND_TIMEOUT),
        max_connections: l
            .max_connections
            .map_or(defaults::MAX_CLIENT_CONNECTIONS, |n| n as usize),
        max_connections_per_address: l.max_connections_per_address.unwrap_or(0) as usize,
        exact_tokens: match l.token_count.as_deref() {
            None | Some("exact") => true,
            Some("approximate") => false,
            Some(other) => {
                found.push((
                    lk.clone().key("token_count"),
                    format!("{other:?}: expected \"exact\" or \"approximate\""),
                ));
                true
            }
        },
    };
    positive(
        limits.body_read_timeout,
        &lk.clone().key("body_read_timeout"),
        &mut found,
    );
    positive(
        limits.send_timeout,
        &lk.clone().key("send_timeout"),
        &mut found,
    );

    // Routes may name every pool written, valid or not (an invalid one has its own errors).
    let declared: Vec<String> = raw.pools.keys().cloned().collect();
    let pool_names: BTreeSet<&str> = declared.iter().map(String::as_str).collect();
    let mut pools = Vec::new();
    for (name, p) in raw.pools {
        let key = root.clone().key("pools").key(&name);
        if let Some(mut pool) = pool(name, p, &key, origin, env, &mut found) {
            pool.local_region = server.region.clone();
            pools.push(Arc::new(pool));
        }
    }

    let cache = cache(&raw.cache, origin, &root.clone().key("cache"), &mut found);
    let models = crate::catalog::catalog(
        &raw.models,
        &pool_names,
        &root.clone().key("models"),
        &mut found,
    );
    let pool_of = |name: &str| {
        pools
            .iter()
            .find(|p| p.name == name)
            .map(|p| (p.provider, p.model.is_some()))
    };
    crate::catalog::check_deployments(&models, &pool_of, &root.clone().key("models"), &mut found);
    let tiers = crate::budget::tiers(
        raw.cost.as_ref().map_or(&[][..], |c| &c.tiers[..]),
        &models,
        &root.clone().key("cost").key("tiers"),
        &mut found,
    );

    let mut routes = Vec::new();
    let mut route_names = BTreeSet::new();
    for (i, r) in raw.routes.into_iter().enumerate() {
        let key = root.clone().key("routes").index(i);
        let serves_models = models.served().next().is_some();
        if let Some(route) = route(
            i,
            r,
            &key,
            &RouteContext {
                pools: &pool_names,
                serves_models,
                cache: &cache,
                tiers: &tiers,
            },
            &mut found,
        ) {
            if !route_names.insert(route.name.clone()) {
                found.push((
                    key.key("name"),
                    format!("duplicate route name {:?}", route.name),
                ));
                continue;
            }
            routes.push(Arc::new(route));
        }
    }

    let route_kinds = routes.iter().map(|r| (r.name.clone(), r.kind)).collect();
    let rate_limits = rate_limits(
        &raw.rate_limits,
        &route_kinds,
        &root.clone().key("rate_limits"),
        &mut found,
    );
    let auth = auth(
        &raw.auth,
        origin,
        &route_kinds,
        &root.clone().key("auth"),
        &mut found,
    );

    let shared_limits = raw
        .shared_limits
        .as_ref()
        .filter(|s| s.enabled != Some(false))
        .and_then(|s| shared_limits(s, &root.clone().key("shared_limits"), &mut found));

    let admin = crate::admin::admin(
        raw.admin.as_ref(),
        env,
        &root.clone().key("admin"),
        &mut found,
    );

    let known = crate::budget::Known {
        keys: auth.keys.iter().map(|k| k.name.as_str()).collect(),
        teams: auth.keys.iter().filter_map(|k| k.team.as_deref()).collect(),
        routes: routes.iter().map(|r| r.name.as_str()).collect(),
        models: Some(&models),
    };
    let cost = crate::cost::cost(
        raw.cost.as_ref(),
        tiers,
        &known,
        server.data_dir.as_ref(),
        origin,
        &root.clone().key("cost"),
        &mut found,
    );

    let history = crate::history::history(
        raw.history.as_ref(),
        server.data_dir.as_ref(),
        origin,
        &root.clone().key("history"),
        &mut found,
    );

    let memory =
        crate::memory::memory(raw.memory.as_ref(), &root.clone().key("memory"), &mut found);
    let tracing = crate::traces::tracing(
        raw.tracing.as_ref(),
        env,
        &root.clone().key("tracing"),
        &mut found,
    );

    let anomalies = crate::anomalies::anomalies(
        raw.anomalies.as_ref(),
        &root.clone().key("anomalies"),
        &mut found,
    );

    // What alert rules and automation rules may name. Pools as written for scaling and
    // automation: a pool with a problem of its own is not missing.
    let route_names: Vec<&str> = routes.iter().map(|r| r.name.as_str()).collect();
    let budget_names: Vec<&str> = cost.budgets.iter().map(|b| b.name.as_str()).collect();
    let declared_pools: Vec<&str> = declared.iter().map(String::as_str).collect();

    let scaling = crate::scaling::scaling(
        raw.scaling.as_ref(),
        &declared_pools,
        env,
        &root.clone().key("scaling"),
        &mut found,
    );

    let databases = crate::databases::databases(
        &raw.databases,
        env,
        origin,
        &root.clone().key("databases"),
        &mut found,
    );
    let database_names: Vec<&str> = raw
        .databases
        .iter()
        .filter_map(|d| d.name.as_deref())
        .collect();

    let alerts = {
        let pools: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
        let names = crate::alerts::AlertNames {
            routes: &route_names,
            pools: &pools,
            budgets: &budget_names,
            notifiers: &[],
            databases: &database_names,
        };
        let mut alerts = crate::alerts::alerts(
            raw.alerts.as_ref(),
            &names,
            env,
            Some(origin),
            server.data_dir.as_ref(),
            &root.clone().key("alerts"),
            &mut found,
        );
        // Each database's slow-query rule, unless a rule of its name replaces it.
        for (i, d) in databases.iter().enumerate() {
            let Some(rule) = d.alert_rule() else { continue };
            if alerts
                .rules
                .iter()
                .any(|r| Some(&r.name) == rule.name.as_ref())
            {
                continue;
            }
            let k = root.clone().key("databases").index(i);
            if let Some(r) = crate::alerts::alert_rule(&rule, 0, &names, &k, &mut found) {
                alerts.rules.push(r);
            }
        }
        alerts
    };

    let automation = {
        let alert_rules: Vec<&str> = alerts.rules.iter().map(|r| r.name.as_str()).collect();
        let scaled: Vec<(&str, u32, u32)> = scaling
            .pools
            .iter()
            .filter(|p| p.actuator.is_some())
            .map(|p| (p.pool.as_str(), p.policy.min, p.policy.max))
            .collect();
        // As written: a notifier with a problem of its own is not missing.
        let notifiers: Vec<&str> = raw
            .alerts
            .iter()
            .flat_map(|a| a.notifiers.iter().filter_map(|n| n.name.as_deref()))
            .collect();
        crate::automation::automation(
            raw.automation.as_ref(),
            &crate::automation::Names {
                alerts: &alert_rules,
                budgets: &budget_names,
                targets: crate::automation::Targets {
                    pools: &declared_pools,
                    scaled: &scaled,
                    strategy: |s| BalanceStrategy::parse(s).map(|_| ()),
                    routes: &routes,
                    rate_limits: &rate_limits,
                    cache: &cache,
                    tiers: &cost.tiers,
                    notifiers: &notifiers,
                },
                series: &crate::alerts::AlertNames {
                    routes: &route_names,
                    pools: &declared_pools,
                    budgets: &budget_names,
                    notifiers: &[],
                    databases: &database_names,
                },
            },
            &root.clone().key("automation"),
            &mut found,
        )
    };

    if found.is_empty() {
        Ok(Config {
            origin: origin.to_string(),
            server,
            limits,
            pools,
            routes,
            cache,
            models,
            rate_limits,
            auth,
            shared_limits,
            admin,
            cost,
            history,
            memory,
            tracing,
            alerts,
            anomalies,
            scaling,
            automation,
            databases,
        })
    } else {
        Err(found)
    }
}

/// `[[rate_limits]]`: each with a unique name, a known scope, a rate GCRA can keep (at most
/// one request per nanosecond) and routes that exist.
fn rate_limits(
    raw: &[RawRateLimit],
    route_kinds: &BTreeMap<String, RouteKind>,
    key: &KeyPath,
    found: &mut Found,
) -> Vec<RateLimitConfig> {
    let mut out: Vec<RateLimitConfig> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let key = key.clone().index(i);
        let name = r.name.clone().unwrap_or_else(|| format!("limit-{i}"));
        if !valid_name(&name) {
            found.push((
                key.clone().key("name"),
                format!("invalid name {name:?}: use letters, digits, '-', '_' and '.'"),
            ));
        } else if out.iter().any(|l| l.name == name) {
            found.push((
                key.clone().key("name"),
                format!("duplicate rate limit {name:?}"),
            ));
        }
        let scope = match r.scope.as_deref() {
            None | Some("global") => Some(LimitScope::Global),
            Some("ip") => Some(LimitScope::ClientIp),
            Some("route") => Some(LimitScope::Route),
            Some("model") => Some(LimitScope::Model),
            Some("key") => Some(LimitScope::Key),
            Some("team") => Some(LimitScope::Team),
            Some(s) => match s
                .strip_prefix("header:")
                .map(|h| HeaderName::from_bytes(h.as_bytes()))
            {
                Some(Ok(h)) => Some(LimitScope::Header(h)),
                _ => {
                    found.push((
                        key.clone().key("scope"),
                        format!(
                            "unknown scope {s:?}: expected \"global\", \"ip\", \"route\", \"model\", \"key\", \"team\" or \"header:NAME\""
                        ),
                    ));
                    None
                }
            },
        };
        let rate = rate(
            &RawRate {
                requests: r.requests,
                tokens: r.tokens,
                per: r.per,
                burst: r.burst,
            },
            &key,
            found,
        );
        let unit = rate.unit;
        let routes = r.routes.clone().unwrap_or_default();
        for (j, route) in routes.iter().enumerate() {
            match route_kinds.get(route) {
                None => found.push((
                    key.clone().key("routes").index(j),
                    format!("unknown route {route:?}"),
                )),
                Some(RouteKind::Http) if unit == LimitUnit::Tokens => found.push((
                    key.clone().key("routes").index(j),
                    format!(
                        "route {route:?} is an http route: token limits apply to openai routes"
                    ),
                )),
                Some(_) => {}
            }
        }
        if let Some(scope) = scope {
            out.push(RateLimitConfig {
                name,
                scope,
                rate,
                routes,
            });
        }
    }
    out
}

/// A limit's rate: `requests` or `tokens` (one of them, at least 1) per `per` (at most one
/// unit per nanosecond), `burst` at once (default: the amount).
fn rate(r: &RawRate, key: &KeyPath, found: &mut Found) -> Rate {
    let (unit, amount) = match (r.requests, r.tokens) {
        (Some(n), None) => (LimitUnit::Requests, n),
        (None, Some(n)) => (LimitUnit::Tokens, n),
        (Some(n), Some(_)) => {
            found.push((
                key.clone().key("tokens"),
                "set either `requests` or `tokens`, not both (use two limits for both)".into(),
            ));
            (LimitUnit::Requests, n)
        }
        (None, None) => (LimitUnit::Requests, 0),
    };
    if amount == 0 {
        found.push((
            key.clone().key(unit.as_str()),
            "missing or 0: the number of requests (`requests`) or tokens (`tokens`) allowed per `per`"
                .into(),
        ));
    }
    let per = dur(r.per, Duration::from_secs(1));
    if per.is_zero() || (amount > 0 && per.as_nanos() < u128::from(amount)) {
        found.push((
            key.clone().key("per"),
            format!(
                "{} is out of range: expected more than 0 and at most one {} per nanosecond",
                crate::format_duration(per),
                unit.as_str().trim_end_matches('s')
            ),
        ));
    }
    let burst = r.burst.unwrap_or(amount);
    if r.burst == Some(0) {
        found.push((key.clone().key("burst"), "must be at least 1".into()));
    }
    Rate {
        unit,
        amount,
        per,
        burst,
    }
}

/// `[auth]`: the key header, the store, and `[[auth.keys]]`, each with a unique name, a
/// `blake3:` hash, routes that exist, model patterns and limits.
fn auth(
    raw: &RawAuth,
    origin: &str,
    route_kinds: &BTreeMap<String, RouteKind>,
    key: &KeyPath,
    found: &mut Found,
) -> AuthConfig {
    let header = match raw.header.as_deref() {
        None => http::header::AUTHORIZATION,
        Some(h) => HeaderName::from_bytes(h.as_bytes()).unwrap_or_else(|_| {
            found.push((
                key.clone().key("header"),
                format!("invalid header name {h:?}"),
            ));
            http::header::AUTHORIZATION
        }),
    };
    let store = raw.store.as_deref().map(|p| relative_to(origin, p));
    let mut keys: Vec<KeyConfig> = Vec::new();
    for (i, k) in raw.keys.iter().enumerate() {
        let kk = key.clone().key("keys").index(i);
        let v = virtual_key(k, &kk, route_kinds, true, found);
        if keys.iter().any(|o| o.name == v.name) {
            found.push((
                kk.clone().key("name"),
                format!("duplicate key name {:?}", v.name),
            ));
        }
        if k.hash.is_some() && keys.iter().any(|o| o.hash == v.hash) {
            found.push((
                kk.clone().key("hash"),
                "the same key is listed twice".into(),
            ));
        }
        keys.push(v);
    }
    let enabled = raw.enabled.unwrap_or(false);
    if enabled && keys.is_empty() && store.is_none() {
        found.push((
            key.clone().key("enabled"),
            "no key could ever pass: add [[auth.keys]] or an auth.store for keys made through the admin API".into(),
        ));
    }
    AuthConfig {
        enabled,
        header,
        store,
        keys,
    }
}

/// One virtual key: a valid name, a `blake3:` hash (when `hash_required`; keys made
/// through the API get theirs), routes that exist, model patterns and limits.
pub(crate) fn virtual_key(
    k: &RawKey,
    kk: &KeyPath,
    route_kinds: &BTreeMap<String, RouteKind>,
    hash_required: bool,
    found: &mut Found,
) -> KeyConfig {
    let name = k.name.clone().unwrap_or_default();
    if !valid_name(&name) {
        found.push((
            kk.clone().key("name"),
            format!("invalid or missing name {name:?}: use letters, digits, '-', '_' and '.'"),
        ));
    }
    let hash = match k
        .hash
        .as_deref()
        .map(|h| (h, crate::model::parse_key_hash(h)))
    {
        Some((_, Some(h))) => h,
        Some((h, None)) => {
            found.push((
                kk.clone().key("hash"),
                format!(
                    "{:?} is not a key hash: expected \"blake3:\" and 64 hex digits (`flowgate key` makes a key and its hash)",
                    h.chars().take(16).collect::<String>()
                ),
            ));
            [0; 32]
        }
        None if hash_required => {
            found.push((
                kk.clone().key("hash"),
                "missing: the key's hash, \"blake3:HEX\" (`flowgate key` makes a key and its hash); keys are never written in plain text".into(),
            ));
            [0; 32]
        }
        None => [0; 32],
    };
    if let Some(team) = &k.team
        && !valid_name(team)
    {
        found.push((
            kk.clone().key("team"),
            format!("invalid team {team:?}: use letters, digits, '-', '_' and '.'"),
        ));
    }
    let routes = k.routes.clone().unwrap_or_default();
    for (j, r) in routes.iter().enumerate() {
        if !route_kinds.contains_key(r) {
            found.push((
                kk.clone().key("routes").index(j),
                format!("unknown route {r:?}"),
            ));
        }
    }
    let models = k.models.clone().unwrap_or_default();
    for (j, m) in models.iter().enumerate() {
        if m.is_empty() || m.strip_suffix('*').unwrap_or(m).contains('*') {
            found.push((
                kk.clone().key("models").index(j),
                format!("{m:?}: a model name, or a prefix ending in '*'"),
            ));
        }
    }
    let limits = k
        .limits
        .iter()
        .enumerate()
        .map(|(j, r)| rate(r, &kk.clone().key("limits").index(j), found))
        .collect();
    KeyConfig {
        name,
        hash,
        team: k.team.clone(),
        routes,
        models,
        limits,
        concurrency: k
            .concurrency
            .as_ref()
            .and_then(|c| concurrency(c, false, &kk.clone().key("concurrency"), found)),
        priority: k.priority.as_deref().and_then(|p| {
            let parsed = Priority::parse(p);
            if parsed.is_none() {
                found.push((
                    kk.clone().key("priority"),
                    format!("{p:?}: expected \"critical\", \"high\", \"normal\" or \"low\""),
                ));
            }
            parsed
        }),
    }
}

/// `api_key_env`: the variable must be set to a value a header can carry; `api_key_header`
/// (default `authorization`) must be a header name. The value is never put in a message.
fn upstream_key(
    e: &RawEndpoint,
    key: &KeyPath,
    env: &[(String, String)],
    origin: Option<&str>,
    found: &mut Found,
) -> Option<UpstreamKey> {
    if e.api_key_env.is_some() && e.api_key_file.is_some() {
        found.push((
            key.clone().key("api_key_file"),
            "set api_key_env or api_key_file, not both".into(),
        ));
        return None;
    }
    if let Some(file) = &e.api_key_file {
        let Some(origin) = origin else {
            found.push((
                key.clone().key("api_key_file"),
                "api_key_file is read from the config file's machine only: not through the admin API".into(),
            ));
            return None;
        };
        let header = key_header(e, key, found)?;
        let path = crate::units::relative_to(origin, file);
        let value = match std::fs::read_to_string(&path) {
            Ok(v) => v.trim().to_string(),
            Err(err) => {
                found.push((
                    key.clone().key("api_key_file"),
                    format!("cannot read {}: {err}", path.display()),
                ));
                return None;
            }
        };
        if value.is_empty() || HeaderValue::from_str(&value).is_err() {
            found.push((
                key.clone().key("api_key_file"),
                format!(
                    "{} is empty or holds characters a header cannot carry",
                    path.display()
                ),
            ));
            return None;
        }
        return Some(UpstreamKey {
            header,
            secret: Secret::from_file(path.display().to_string(), value),
        });
    }
    let var = e.api_key_env.as_deref()?;
    let header = key_header(e, key, found)?;
    let Some((_, value)) = env.iter().find(|(k, _)| k == var) else {
        found.push((
            key.clone().key("api_key_env"),
            format!("environment variable {var} is not set"),
        ));
        return None;
    };
    if value.is_empty() || HeaderValue::from_str(value).is_err() {
        found.push((
            key.clone().key("api_key_env"),
            format!(
                "environment variable {var} is empty or holds characters a header cannot carry"
            ),
        ));
        return None;
    }
    Some(UpstreamKey {
        header,
        secret: Secret::new(var, value.as_str()),
    })
}

fn cache(raw: &RawCache, origin: &str, key: &KeyPath, found: &mut Found) -> CacheConfig {
    let disk = raw
        .disk
        .as_ref()
        .filter(|d| d.enabled != Some(false))
        .and_then(|d| disk_cache(d, origin, &key.clone().key("disk"), found));
    let redis = raw
        .redis
        .as_ref()
        .filter(|r| r.enabled != Some(false))
        .and_then(|r| redis_cache(r, &key.clone().key("redis"), found));
    let c = CacheConfig {
        enabled: raw.enabled.unwrap_or(false),
        memory_bytes: raw.memory.map_or(defaults::CACHE_MEMORY, |b| b.0),
        max_entry_bytes: raw.max_entry.map_or(defaults::CACHE_MAX_ENTRY, |b| b.0),
        ttl: dur(raw.ttl, defaults::CACHE_TTL),
        coalesce_wait: dur(raw.coalesce_wait, defaults::COALESCE_WAIT),
        compress_above: raw.compress_above.map_or(defaults::COMPRESS_ABOVE, |b| b.0),
        stale: dur(raw.stale, Duration::ZERO),
        refresh_ahead: dur(raw.refresh_ahead, Duration::ZERO),
        popular_hits: raw.popular_hits.unwrap_or(defaults::POPULAR_HITS),
        max_ttl: raw.max_ttl.map(|d| d.0),
        categories: categories(
            raw.categories.as_deref().unwrap_or_default(),
            &key.clone().key("categories"),
            found,
        ),
        confidence: raw
            .confidence
            .as_ref()
            .and_then(|c| confidence(c, &key.clone().key("confidence"), found)),
        disk,
        redis,
        warm: warm(
            raw.warm.as_ref().unwrap_or(&RawWarm::default()),
            origin,
            &key.clone().key("warm"),
            found,
        ),
    };
    if c.memory_bytes == 0 {
        if c.enabled && c.redis.is_none() && c.disk.is_none() {
            found.push((
                key.clone().key("memory"),
                "0 turns the memory tier off, and there is no [cache.redis] or [cache.disk] \
                 tier left to hold answers"
                    .into(),
            ));
        }
    } else if c.memory_bytes < 1024 * 1024 {
        found.push((
            key.clone().key("memory"),
            format!(
                "{} B is too small: expected at least 1MiB (or 0 for no memory tier)",
                c.memory_bytes
            ),
        ));
    }
    // An entry takes at most a quarter of memory; without memory, at most what Redis
    // stores in one value.
    let (max_entry, of) = match c.memory_bytes {
        0 => (MAX_ENTRY_WITHOUT_MEMORY, "512 MiB without a memory tier"),
        m => (m / 4, "a quarter of cache.memory"),
    };
    if c.max_entry_bytes == 0 || c.max_entry_bytes > max_entry {
        found.push((
            key.clone().key("max_entry"),
            format!(
                "{} B is out of range: expected 1 B to {of} ({max_entry} B)",
                c.max_entry_bytes,
            ),
        ));
    }
    ttl_in_range(c.ttl, &key.clone().key("ttl"), found);
    if let Some(m) = c.max_ttl {
        ttl_in_range(m, &key.clone().key("max_ttl"), found);
    }
    if c.popular_hits == 0 {
        found.push((key.clone().key("popular_hits"), "must be at least 1".into()));
    }
    positive(c.coalesce_wait, &key.clone().key("coalesce_wait"), found);
    c
}

fn categories(raw: &[RawCacheCategory], key: &KeyPath, found: &mut Found) -> Vec<CacheCategory> {
    let mut out: Vec<CacheCategory> = Vec::new();
    for (i, c) in raw.iter().enumerate() {
        let key = key.clone().index(i);
        let name = c.name.clone().unwrap_or_default();
        if !valid_name(&name) {
            found.push((
                key.clone().key("name"),
                format!("invalid or missing name {name:?}: use letters, digits, '-', '_' and '.'"),
            ));
        } else if out.iter().any(|o| o.name == name) {
            found.push((
                key.clone().key("name"),
                format!("{name:?} is defined twice"),
            ));
        }
        let header = match (&c.header, &c.value) {
            (Some(h), Some(v)) => match http::HeaderName::from_bytes(h.trim().as_bytes()) {
                Ok(n) => Some((n, v.clone())),
                Err(_) => {
                    found.push((
                        key.clone().key("header"),
                        format!("invalid header name {h:?}"),
                    ));
                    None
                }
            },
            (None, None) => None,
            _ => {
                found.push((
                    key.clone().key("value"),
                    "header and value go together: the category matches requests whose header has that value".into(),
                ));
                None
            }
        };
        let path = match &c.path {
            Some(p) if p.starts_with('/') => Some(PathMatch::Prefix(p.clone())),
            Some(p) => {
                found.push((
                    key.clone().key("path"),
                    format!("{p:?} must start with '/'"),
                ));
                None
            }
            None => None,
        };
        if c.path.is_none() && c.header.is_none() && c.model.is_none() {
            found.push((
                key.clone(),
                "a category needs at least one of path, header (with value) or model".into(),
            ));
        }
        let Some(ttl) = c.ttl else {
            found.push((
                key.clone().key("ttl"),
                "missing: a category sets a TTL".into(),
            ));
            continue;
        };
        ttl_in_range(ttl.0, &key.clone().key("ttl"), found);
        let tags = c.tags.clone().unwrap_or_default();
        for (j, t) in tags.iter().enumerate() {
            if !valid_tag(t) {
                found.push((
                    key.clone().key("tags").index(j),
                    format!(
                        "invalid tag {t:?}: use letters, digits, '-', '_', '.', ':' and '/' (at most 128)"
                    ),
                ));
            }
        }
        if tags.len() > 16 {
            found.push((key.clone().key("tags"), "at most 16 tags".into()));
        }
        out.push(CacheCategory {
            name,
            path,
            header,
            model: c.model.clone(),
            ttl: ttl.0,
            stale: c.stale.map(|d| d.0),
            tags,
        });
    }
    out
}

fn confidence(raw: &RawConfidence, key: &KeyPath, found: &mut Found) -> Option<ConfidenceTtl> {
    let pointer = raw.pointer.clone().unwrap_or_default();
    if !pointer.starts_with('/') {
        found.push((
            key.clone().key("pointer"),
            format!("expected a JSON pointer such as \"/confidence\", got {pointer:?}"),
        ));
    }
    let raw_bands = raw.bands.as_deref().unwrap_or_default();
    if raw_bands.is_empty() {
        found.push((
            key.clone().key("bands"),
            "missing: give bands such as [{ min = 0.9, ttl = \"4h\" }, { min = 0.0, ttl = \"30m\" }]".into(),
        ));
    }
    let mut bands = Vec::new();
    for (i, b) in raw_bands.iter().enumerate() {
        let key = key.clone().key("bands").index(i);
        let min = b.min.unwrap_or(f64::NAN);
        if !(0.0..=1.0).contains(&min) {
            found.push((
                key.clone().key("min"),
                "expected a number from 0 to 1".into(),
            ));
            continue;
        }
        let Some(ttl) = b.ttl else {
            found.push((key.clone().key("ttl"), "missing".into()));
            continue;
        };
        ttl_in_range(ttl.0, &key.clone().key("ttl"), found);
        bands.push(((min * 1e6).round() as u32, ttl.0));
    }
    bands.sort_by_key(|b| std::cmp::Reverse(b.0));
    Some(ConfidenceTtl { pointer, bands })
}

fn redis_cache(raw: &RawRedisCache, key: &KeyPath, found: &mut Found) -> Option<RedisCacheConfig> {
    let link = redis_link(
        RawLink {
            url: &raw.url,
            urls: &raw.urls,
            cluster: raw.cluster,
            prefix: &raw.prefix,
            timeout: raw.timeout,
            breaker_failures: raw.breaker_failures,
            breaker_cooldown: raw.breaker_cooldown,
        },
        "the Redis tier needs",
        key,
        found,
    )?;
    Some(RedisCacheConfig {
        link,
        lock_wait: dur(raw.lock_wait, defaults::REDIS_LOCK_WAIT),
    })
}

fn shared_limits(
    raw: &RawSharedLimits,
    key: &KeyPath,
    found: &mut Found,
) -> Option<SharedLimitsConfig> {
    let link = redis_link(
        RawLink {
            url: &raw.url,
            urls: &raw.urls,
            cluster: raw.cluster,
            prefix: &raw.prefix,
            timeout: raw.timeout,
            breaker_failures: raw.breaker_failures,
            breaker_cooldown: raw.breaker_cooldown,
        },
        "shared limits need",
        key,
        found,
    );
    let fallback_share = raw.fallback_share.unwrap_or(1.0);
    if !(fallback_share > 0.0 && fallback_share <= 1.0) {
        found.push((
            key.clone().key("fallback_share"),
            format!(
                "expected a share of each limit above 0 and at most 1 (e.g. 0.5 for two \
                 replicas), got {fallback_share}"
            ),
        ));
        return None;
    }
    Some(SharedLimitsConfig {
        link: link?,
        fallback_share,
    })
}

fn warm(raw: &RawWarm, origin: &str, key: &KeyPath, found: &mut Found) -> WarmConfig {
    let file = raw.file.as_deref().map(|f| relative_to(origin, f));
    if let Some(f) = &file
        && !f.is_file()
    {
        found.push((
            key.clone().key("file"),
            format!("no such file {}", f.display()),
        ));
    }
    let rate = raw.rate.unwrap_or(defaults::WARM_RATE);
    if !(1..=10_000).contains(&rate) {
        found.push((
            key.clone().key("rate"),
            format!("{rate} is out of range: expected 1 to 10000 requests per second"),
        ));
    }
    let keep = raw.keep.unwrap_or(defaults::WARM_KEEP);
    if keep > 100_000 {
        found.push((
            key.clone().key("keep"),
            format!("{keep} is out of range: expected 0 to 100000 requests"),
        ));
    }
    WarmConfig { file, rate, keep }
}

fn disk_cache(
    raw: &RawDiskCache,
    origin: &str,
    key: &KeyPath,
    found: &mut Found,
) -> Option<DiskCacheConfig> {
    let Some(path) = raw.path.as_deref().filter(|p| !p.trim().is_empty()) else {
        found.push((
            key.clone().key("path"),
            "missing: the disk tier needs a file path (e.g. \"/var/lib/flowgate/cache.redb\")"
                .into(),
        ));
        return None;
    };
    let path = relative_to(origin, path);
    let max_bytes = raw.size.map_or(defaults::CACHE_DISK, |b| b.0);
    if max_bytes < 1024 * 1024 {
        found.push((
            key.clone().key("size"),
            format!("{max_bytes} B is too small: expected at least 1MiB"),
        ));
    }
    let purge_interval = dur(raw.purge_interval, defaults::DISK_PURGE_INTERVAL);
    positive(purge_interval, &key.clone().key("purge_interval"), found);
    Some(DiskCacheConfig {
        path,
        max_bytes,
        purge_interval,
    })
}

fn ttl_in_range(ttl: Duration, key: &KeyPath, found: &mut Found) {
    if ttl.is_zero() || ttl > defaults::MAX_CACHE_TTL {
        found.push((
            key.clone(),
            "out of range: expected more than 0s and at most 30 days".into(),
        ));
    }
}

fn route_cache(
    raw: Option<RawRouteCache>,
    kind: RouteKind,
    cache: &CacheConfig,
    key: &KeyPath,
    found: &mut Found,
) -> RouteCache {
    let raw = raw.unwrap_or_default();
    let key = key.clone().key("cache");
    let mode = match raw.mode {
        Some(RawCacheMode::Off) => CacheMode::Off,
        Some(RawCacheMode::Deterministic) => CacheMode::Deterministic,
        Some(RawCacheMode::Always) => CacheMode::Always,
        None if cache.enabled && kind == RouteKind::OpenAi => CacheMode::Deterministic,
        None => CacheMode::Off,
    };
    if mode != CacheMode::Off && !cache.enabled {
        found.push((
            key.clone().key("mode"),
            "the cache is disabled: set `[cache] enabled = true` first".into(),
        ));
    }
    let mut headers = Vec::new();
    for (i, h) in raw.headers.iter().flatten().enumerate() {
        match HeaderName::from_bytes(h.as_bytes()) {
            Ok(n) => headers.push(n),
            Err(_) => found.push((
                key.clone().key("headers").index(i),
                format!("invalid header name {h:?}"),
            )),
        }
    }
    headers.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    headers.dedup();
    let mut query = raw.query;
    if let Some(names) = &mut query {
        if let Some(i) = names.iter().position(String::is_empty) {
            found.push((
                key.clone().key("query").index(i),
                "empty query parameter name".into(),
            ));
        }
        names.sort_unstable();
        names.dedup();
    }
    if kind == RouteKind::OpenAi {
        for (name, set) in [("query", query.is_some()), ("headers", !headers.is_empty())] {
            if set {
                found.push((
                    key.clone().key(name),
                    "only http routes choose their key's query parameters and headers: an \
                     openai route's key is its request body"
                        .into(),
                ));
            }
        }
    }
    for (name, t) in [("ttl", raw.ttl), ("max_ttl", raw.max_ttl)] {
        if let Some(t) = t {
            ttl_in_range(t.0, &key.clone().key(name), found);
        }
    }
    if let Some(ns) = &raw.namespace
        && !valid_name(ns)
    {
        found.push((
            key.clone().key("namespace"),
            format!("invalid namespace {ns:?}: use letters, digits, '-', '_' and '.'"),
        ));
    }
    RouteCache {
        mode,
        ttl: raw.ttl.map(|t| t.0),
        stale: raw.stale.map(|t| t.0),
        max_ttl: raw.max_ttl.map(|t| t.0),
        namespace: raw.namespace,
        namespace_header: raw.namespace_header.unwrap_or(false),
        query,
        headers,
    }
}

/// `s` as a header name, or the problem at `key`.
fn header_name(s: &str, key: KeyPath, found: &mut Found) -> Option<HeaderName> {
    HeaderName::from_bytes(s.as_bytes())
        .map_err(|_| found.push((key, format!("{s:?} is not a header name"))))
        .ok()
}

fn addr(v: Option<&str>, default: &str, key: &KeyPath, found: &mut Found) -> SocketAddr {
    let s = v.unwrap_or(default);
    match s.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            found.push((
                key.clone(),
                format!("invalid address {s:?}: expected IP:PORT such as \"127.0.0.1:8080\""),
            ));
            SocketAddr::from(([127, 0, 0, 1], 0))
        }
    }
}

fn pool(
    name: String,
    p: RawPool,
    key: &KeyPath,
    origin: &str,
    env: &[(String, String)],
    found: &mut Found,
) -> Option<PoolConfig> {
    let before = found.len();
    if !valid_name(&name) {
        found.push((
            key.clone(),
            format!("invalid pool name {name:?}: use letters, digits, '-', '_' and '.'"),
        ));
    }
    if p.endpoints.is_empty() {
        found.push((
            key.clone().key("endpoints"),
            "a pool needs at least one endpoint".into(),
        ));
    }
    let provider = crate::provider::provider(p.provider.as_deref(), key, found);
    let mut raw_endpoints = p.endpoints;
    // An endpoint that names no field for its key gets its provider's.
    for e in raw_endpoints
        .iter_mut()
        .filter(|e| e.api_key_header.is_none())
    {
        e.api_key_header = Some(provider.key_header().into());
    }
    let mut endpoints = Vec::new();
    let mut names = BTreeSet::new();
    for (i, e) in raw_endpoints.into_iter().enumerate() {
        let ek = key.clone().key("endpoints").index(i);
        if let Some(ep) = endpoint(e, &ek, env, Some(origin), found) {
            if !names.insert(ep.name.clone()) {
                found.push((
                    ek,
                    format!("duplicate endpoint {:?} in pool {name:?}", ep.name),
                ));
                continue;
            }
            endpoints.push(ep);
        }
    }
    let mut facts: Vec<crate::provider::EndpointFacts<'_>> = endpoints
        .iter_mut()
        .map(|e| crate::provider::EndpointFacts {
            name: &e.name,
            host: &e.host,
            has_key: e.api_key.is_some(),
            region: &mut e.region,
        })
        .collect();
    let aws = crate::provider::check_endpoints(
        provider,
        p.aws_profile.as_deref(),
        &mut facts,
        env,
        key,
        found,
    );
    let api_version = crate::provider::api_version(provider, p.api_version.as_deref(), key, found);
    let model = p.model.clone();
    if let Some(m) = &model
        && m.trim().is_empty()
    {
        found.push((key.clone().key("model"), "model must not be empty".into()));
    }
    let https = endpoints.iter().any(|e| e.tls);
    let tls = crate::tls::upstream_tls(p.tls, https, origin, key, found);
    let egress = crate::proxy::egress(p.proxy.as_deref(), env, key, found);
    let schemes: Vec<(&str, bool)> = endpoints.iter().map(|e| (e.name.as_str(), e.tls)).collect();
    let protocol = crate::protocol::protocol(p.protocol.as_deref(), &schemes, key, found);
    let h2_keepalive = dur(p.h2_keepalive, crate::protocol::H2_KEEPALIVE);
    positive(h2_keepalive, &key.clone().key("h2_keepalive"), found);
    let connect_timeout = dur(p.connect_timeout, defaults::CONNECT_TIMEOUT);
    let request_timeout = dur(p.request_timeout, defaults::REQUEST_TIMEOUT);
    let read_timeout = dur(p.read_timeout, defaults::READ_TIMEOUT);
    let idle_timeout = dur(p.idle_timeout, defaults::IDLE_TIMEOUT);
    positive(connect_timeout, &key.clone().key("connect_timeout"), found);
    positive(request_timeout, &key.clone().key("request_timeout"), found);
    positive(read_timeout, &key.clone().key("read_timeout"), found);
    positive(idle_timeout, &key.clone().key("idle_timeout"), found);
    let max_connections = p.max_connections.unwrap_or(defaults::MAX_CONNECTIONS);
    if max_connections == 0 {
        found.push((
            key.clone().key("max_connections"),
            "must be at least 1".into(),
        ));
    }
    let max_idle = p
        .max_idle
        .unwrap_or(defaults::MAX_IDLE.min(max_connections));
    if max_idle > max_connections {
        found.push((
            key.clone().key("max_idle"),
            format!("{max_idle} is more than max_connections ({max_connections})"),
        ));
    }
    let strategy = match p.strategy.as_deref() {
        None => BalanceStrategy::default(),
        Some(s) => BalanceStrategy::parse(s).unwrap_or_else(|why| {
            found.push((key.clone().key("strategy"), why));
            BalanceStrategy::default()
        }),
    };
    let hash_header = p
        .hash_header
        .as_deref()
        .and_then(|h| header_name(h, key.clone().key("hash_header"), found))
        .unwrap_or(HeaderName::from_static("x-session-id"));
    let tag_by = match p.tag_by.as_deref() {
        None => None,
        Some("model") => Some(TagBy::Model),
        Some(t) => match t
            .strip_prefix("header:")
            .map(|h| HeaderName::from_bytes(h.trim().as_bytes()))
        {
            Some(Ok(h)) => Some(TagBy::Header(h)),
            _ => {
                found.push((
                    key.clone().key("tag_by"),
                    format!("{t:?}: expected \"model\" or \"header:NAME\""),
                ));
                None
            }
        },
    };
    let region_header = p
        .region_header
        .as_deref()
        .and_then(|h| header_name(h.trim(), key.clone().key("region_header"), found));
    let overprovisioning = match p.overprovisioning {
        None => 140,
        Some(f) if (1.0..=10.0).contains(&f) => (f * 100.0).round() as u32,
        Some(f) => {
            found.push((
                key.clone().key("overprovisioning"),
                format!("{f}: expected a factor from 1.0 to 10.0 (1.4: a level takes all its traffic while 72% of it is usable)"),
            ));
            140
        }
    };
    let affinity = p.affinity.as_ref().map(|a| {
        let akey = key.clone().key("affinity");
        let header = a
            .header
            .as_deref()
            .and_then(|h| header_name(h.trim(), akey.clone().key("header"), found))
            .unwrap_or(HeaderName::from_static("x-session-id"));
        let idle_timeout = dur(a.idle_timeout, Duration::from_secs(30 * 60));
        positive(idle_timeout, &akey.key("idle_timeout"), found);
        AffinityConfig {
            header,
            max_sessions: a.max_sessions.unwrap_or(0),
            idle_timeout,
        }
    });
    let outlier =
        crate::resilience::outlier(p.outlier.as_ref(), &key.clone().key("outlier"), found);
    let retries =
        crate::resilience::retries(p.retries.as_ref(), &key.clone().key("retries"), found);
    (found.len() == before).then_some(PoolConfig {
        name,
        endpoints,
        connect_timeout,
        request_timeout,
        read_timeout,
        idle_timeout,
        max_connections,
        max_idle,
        concurrency: p
            .concurrency
            .as_ref()
            .and_then(|c| concurrency(c, true, &key.clone().key("concurrency"), found)),
        strategy,
        hash_header,
        outlier,
        retries,
        health_check: p
            .health_check
            .as_ref()
            .map(|h| crate::resilience::health_check(h, &key.clone().key("health_check"), found)),
        region_header,
        local_region: None,
        overprovisioning,
        affinity,
        tag_by,
        tag_fallback: p.tag_fallback.unwrap_or(true),
        tls,
        egress,
        protocol,
        h2_keepalive,
        provider,
        model,
        aws,
        api_version,
    })
}

/// A `concurrency` table; `adaptive` only where `adaptive_allowed` (pools).
fn concurrency(
    raw: &RawConcurrency,
    adaptive_allowed: bool,
    key: &KeyPath,
    found: &mut Found,
) -> Option<ConcurrencyConfig> {
    let before = found.len();
    let limit = match raw.limit {
        Some(0) => {
            found.push((key.clone().key("limit"), "must be at least 1".into()));
            0
        }
        Some(n) => n,
        None => {
            found.push((
                key.clone().key("limit"),
                "missing: how many requests may be in flight at once".into(),
            ));
            0
        }
    };
    let queue_timeout = dur(raw.queue_timeout, defaults::QUEUE_TIMEOUT);
    positive(queue_timeout, &key.clone().key("queue_timeout"), found);
    let adaptive = match &raw.adaptive {
        Some(_) if !adaptive_allowed => {
            found.push((
                key.clone().key("adaptive"),
                "an adaptive limit is set per upstream pool: it follows that pool's latency".into(),
            ));
            None
        }
        Some(a) => {
            let min = a.min.unwrap_or(1);
            let max = a.max.unwrap_or(limit.saturating_mul(10)).max(1);
            if min == 0 || min > max {
                found.push((
                    key.clone().key("adaptive").key("min"),
                    format!("expected 1 <= min <= max, got min {min}, max {max}"),
                ));
            } else if limit != 0 && !(min..=max).contains(&limit) {
                found.push((
                    key.clone().key("limit"),
                    format!(
                        "the starting limit {limit} must be within adaptive min {min} and max {max}"
                    ),
                ));
            }
            Some(AdaptiveConfig { min, max })
        }
        None => None,
    };
    (found.len() == before).then_some(ConcurrencyConfig {
        limit,
        burst: raw.burst.unwrap_or(0),
        queue: raw.queue.unwrap_or(limit),
        queue_timeout,
        adaptive,
    })
}

/// The field an endpoint's key goes in (`api_key_header`, `authorization` by default).
fn key_header(e: &RawEndpoint, key: &KeyPath, found: &mut Found) -> Option<HeaderName> {
    match e.api_key_header.as_deref() {
        None => Some(http::header::AUTHORIZATION),
        Some(h) => match HeaderName::from_bytes(h.as_bytes()) {
            Ok(h) => Some(h),
            Err(_) => {
                found.push((
                    key.clone().key("api_key_header"),
                    format!("invalid header name {h:?}"),
                ));
                None
            }
        },
    }
}

/// An endpoint's settings; `origin`: the config file it was written in (`None` through the
/// admin API, where no file may be read).
pub(crate) fn endpoint(
    e: RawEndpoint,
    key: &KeyPath,
    env: &[(String, String)],
    origin: Option<&str>,
    found: &mut Found,
) -> Option<EndpointConfig> {
    let api_key = upstream_key(&e, key, env, origin, found);
    let url_key = key.clone().key("url");
    let uri: Uri = match e.url.parse() {
        Ok(u) => u,
        Err(err) => {
            found.push((url_key, format!("invalid URL {:?}: {err}", e.url)));
            return None;
        }
    };
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            found.push((
                url_key,
                format!(
                    "invalid URL {:?}: expected http://HOST[:PORT][/base/path] or https://...",
                    e.url
                ),
            ));
            return None;
        }
    };
    let Some(auth) = uri.authority() else {
        found.push((url_key, format!("invalid URL {:?}: no host", e.url)));
        return None;
    };
    if uri.query().is_some() {
        found.push((
            url_key,
            format!("invalid URL {:?}: a base URL cannot carry a query", e.url),
        ));
        return None;
    }
    let authority = if auth.port().is_some() {
        auth.as_str().to_string()
    } else {
        format!("{}:{}", auth.host(), if tls { 443 } else { 80 })
    };
    let host = auth
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let base_path = uri.path().trim_end_matches('/').to_string();
    let weight = e.weight.unwrap_or(1);
    if weight == 0 {
        found.push((key.clone().key("weight"), "must be at least 1".into()));
        return None;
    }
    let name = e.name.unwrap_or_else(|| authority.clone());
    if name.is_empty() || name.len() > 128 || !name.bytes().all(|c| c.is_ascii_graphic()) {
        found.push((
            key.clone().key("name"),
            format!("{name:?}: expected 1 to 128 visible ASCII characters (it is sent as the x-flowgate-upstream header)"),
        ));
        return None;
    }
    Some(EndpointConfig {
        name,
        url: uri,
        authority,
        host,
        tls,
        base_path,
        weight,
        tags: e.tags,
        region: e.region,
        priority: e.priority.unwrap_or(0),
        api_key,
    })
}

/// What a route's validation needs of the rest of the config.
struct RouteContext<'a> {
    pools: &'a BTreeSet<&'a str>,
    serves_models: bool,
    cache: &'a CacheConfig,
    tiers: &'a [crate::budget::ModelTier],
}

fn route(
    i: usize,
    r: RawRoute,
    key: &KeyPath,
    cx: &RouteContext<'_>,
    found: &mut Found,
) -> Option<RouteConfig> {
    let (pools, serves_models, cache) = (cx.pools, cx.serves_models, cx.cache);
    let before = found.len();
    let name = r.name.unwrap_or_else(|| format!("route-{i}"));
    if !valid_name(&name) {
        found.push((
            key.clone().key("name"),
            format!("invalid route name {name:?}: use letters, digits, '-', '_' and '.'"),
        ));
    }
    let path = match (r.path, r.prefix) {
        (Some(p), None) => Some((PathMatch::Exact(p.clone()), p, "path")),
        (None, Some(p)) => Some((PathMatch::Prefix(p.clone()), p, "prefix")),
        (Some(_), Some(_)) => {
            found.push((
                key.clone().key("prefix"),
                "set either `path` or `prefix`, not both".into(),
            ));
            None
        }
        (None, None) => {
            found.push((
                key.clone(),
                "a route needs `path` (exact match) or `prefix`".into(),
            ));
            None
        }
    };
    if let Some((_, p, field)) = &path
        && !p.starts_with('/')
    {
        found.push((key.clone().key(field), format!("{p:?} must start with '/'")));
    }
    let mut methods = Vec::new();
    for (j, m) in r.methods.iter().enumerate() {
        match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
            Ok(m) => methods.push(m),
            Err(_) => found.push((
                key.clone().key("methods").index(j),
                format!("invalid HTTP method {m:?}"),
            )),
        }
    }
    let mut headers = Vec::new();
    for (h, v) in &r.headers {
        let hk = key.clone().key("headers").key(h);
        match (
            HeaderName::from_bytes(h.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            (Ok(n), Ok(v)) => headers.push((n, v)),
            (Err(_), _) => found.push((hk, format!("invalid header name {h:?}"))),
            (_, Err(_)) => found.push((hk, format!("invalid header value {v:?}"))),
        }
    }
    let (kind, dialect) = match r.kind {
        RawRouteKind::Openai => (RouteKind::OpenAi, ClientDialect::OpenAi),
        RawRouteKind::Anthropic => (RouteKind::OpenAi, ClientDialect::Anthropic),
        RawRouteKind::Http => (RouteKind::Http, ClientDialect::OpenAi),
    };
    match &r.pool {
        Some(pool) if !pools.contains(pool.as_str()) => {
            let known: Vec<&str> = pools.iter().copied().collect();
            found.push((
                key.clone().key("pool"),
                format!(
                    "unknown pool {pool:?}: expected one of [{}]",
                    known.join(", ")
                ),
            ));
        }
        Some(_) => {}
        None if kind != RouteKind::OpenAi => found.push((
            key.clone().key("pool"),
            "an http route needs its pool (only openai routes may serve by the request's model)"
                .into(),
        )),
        None if !serves_models => found.push((
            key.clone().key("pool"),
            "missing: the pool that serves the route, or [models.\"NAME\"] deployments for it to serve by the request's model".into(),
        )),
        None => {}
    }
    let cache = route_cache(r.cache, kind, cache, key, found);
    match r.max_prompt_tokens {
        Some(0) => found.push((
            key.clone().key("max_prompt_tokens"),
            "must be at least 1 (leave it out for no limit)".into(),
        )),
        Some(_) if kind == RouteKind::Http => found.push((
            key.clone().key("max_prompt_tokens"),
            "applies to openai routes only: an http route's body is not a prompt".into(),
        )),
        _ => {}
    }
    let fallback = crate::resilience::fallbacks(
        &r.fallback,
        r.pool.as_deref().unwrap_or_default(),
        kind == RouteKind::OpenAi,
        pools,
        &key.clone().key("fallback"),
        found,
    );
    let fallback_on = crate::resilience::fallback_on(
        r.fallback_on.as_ref(),
        &key.clone().key("fallback_on"),
        found,
    );
    let hedge = r
        .hedge
        .as_ref()
        .and_then(|h| crate::resilience::hedge(h, &key.clone().key("hedge"), found));
    let model_policy = r
        .model_policy
        .as_ref()
        .map(|p| crate::budget::model_policy(p, cx.tiers, &key.clone().key("model_policy"), found));
    let shaping = r
        .shaping
        .as_ref()
        .map_or_else(crate::budget::Shaping::default, |s| {
            crate::budget::shaping(s, &key.clone().key("shaping"), found)
        });
    if kind == RouteKind::Http && (model_policy.is_some() || !shaping.is_off()) {
        found.push((
            key.clone().key(if model_policy.is_some() {
                "model_policy"
            } else {
                "shaping"
            }),
            "applies to openai routes (their bodies are OpenAI requests)".into(),
        ));
    }
    let shed = r.shed.as_deref().and_then(|s| match Priority::parse(s) {
        Some(p) if p != Priority::Critical => Some(p),
        _ => {
            found.push((
                key.clone().key("shed"),
                format!("{s:?}: high, normal or low (that priority and below are refused); critical requests are never shed"),
            ));
            None
        }
    });
    let transform = r
        .transform
        .as_ref()
        .map(|t| crate::transform::transform(t, &key.clone().key("transform"), found));
    let (path, _, _) = path?;
    (found.len() == before).then_some(RouteConfig {
        name,
        kind,
        dialect,
        path,
        methods,
        headers,
        pool: r.pool,
        cache,
        max_prompt_tokens: r.max_prompt_tokens,
        concurrency: r
            .concurrency
            .as_ref()
            .and_then(|c| concurrency(c, false, &key.clone().key("concurrency"), found)),
        fallback,
        fallback_on,
        hedge,
        priority_header: r.priority_header.unwrap_or(false),
        shed,
        transform,
        model_policy,
        shaping,
    })
}

/// The rule of `flowgate_cache::entry::valid_tag` (tags go into key names and records).
/// The largest entry when there is no memory tier (Redis's limit for one value).
const MAX_ENTRY_WITHOUT_MEMORY: u64 = 512 * 1024 * 1024;

fn valid_tag(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/'))
}
