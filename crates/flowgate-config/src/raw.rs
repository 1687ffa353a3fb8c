//! The raw, deserializable shape of `flowgate.toml`. Unknown fields are rejected; every value
//! is checked again by the validator (`validate.rs`) before it becomes part of a runtime [`crate::Config`].

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::units::{ByteSize, HumanDuration};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub pools: BTreeMap<String, RawPool>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub cache: RawCache,
    #[serde(default)]
    pub models: BTreeMap<String, crate::catalog::RawModel>,
    #[serde(default)]
    pub rate_limits: Vec<RawRateLimit>,
    #[serde(default)]
    pub auth: RawAuth,
    pub shared_limits: Option<RawSharedLimits>,
    pub admin: Option<crate::admin::RawAdmin>,
    pub cost: Option<crate::cost::RawCost>,
    pub history: Option<crate::history::RawHistory>,
    pub memory: Option<crate::memory::RawMemory>,
    pub tracing: Option<crate::traces::RawTracing>,
    pub alerts: Option<crate::alerts::RawAlerts>,
    pub anomalies: Option<crate::anomalies::RawAnomalies>,
    pub scaling: Option<crate::scaling::RawScaling>,
    pub automation: Option<crate::automation::RawAutomation>,
    #[serde(default)]
    pub databases: Vec<crate::databases::RawDatabase>,
}

/// `[shared_limits]`: rate-limit counts shared by replicas through Redis.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSharedLimits {
    pub enabled: Option<bool>,
    pub url: Option<String>,
    pub urls: Option<Vec<String>>,
    pub cluster: Option<bool>,
    pub prefix: Option<String>,
    pub timeout: Option<HumanDuration>,
    pub breaker_failures: Option<u32>,
    pub breaker_cooldown: Option<HumanDuration>,
    pub fallback_share: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuth {
    pub enabled: Option<bool>,
    pub header: Option<String>,
    pub store: Option<String>,
    #[serde(default)]
    pub keys: Vec<RawKey>,
}

/// A virtual key as written in `[[auth.keys]]`, or sent to the admin API to make one
/// (without `hash`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub name: Option<String>,
    pub hash: Option<String>,
    pub team: Option<String>,
    pub routes: Option<Vec<String>>,
    pub models: Option<Vec<String>>,
    #[serde(default)]
    pub limits: Vec<RawRate>,
    pub concurrency: Option<RawConcurrency>,
    pub priority: Option<String>,
}

/// `concurrency = { limit, burst, queue, queue_timeout, adaptive }` of a route, pool or key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConcurrency {
    pub limit: Option<u32>,
    pub burst: Option<u32>,
    pub queue: Option<u32>,
    pub queue_timeout: Option<HumanDuration>,
    pub adaptive: Option<RawAdaptive>,
}

/// `adaptive = { min, max }`: the limit follows latency within these bounds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdaptive {
    pub min: Option<u32>,
    pub max: Option<u32>,
}

/// A key's own limit: a rate limit without name, scope or routes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRate {
    pub requests: Option<u64>,
    pub tokens: Option<u64>,
    pub per: Option<HumanDuration>,
    pub burst: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimit {
    pub name: Option<String>,
    pub scope: Option<String>,
    pub requests: Option<u64>,
    pub tokens: Option<u64>,
    pub per: Option<HumanDuration>,
    pub burst: Option<u64>,
    pub routes: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCache {
    pub enabled: Option<bool>,
    pub memory: Option<ByteSize>,
    pub max_entry: Option<ByteSize>,
    pub ttl: Option<HumanDuration>,
    pub coalesce_wait: Option<HumanDuration>,
    pub compress_above: Option<ByteSize>,
    pub stale: Option<HumanDuration>,
    pub refresh_ahead: Option<HumanDuration>,
    pub popular_hits: Option<u64>,
    pub max_ttl: Option<HumanDuration>,
    pub categories: Option<Vec<RawCacheCategory>>,
    pub confidence: Option<RawConfidence>,
    pub disk: Option<RawDiskCache>,
    pub redis: Option<RawRedisCache>,
    pub warm: Option<RawWarm>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWarm {
    pub file: Option<String>,
    pub rate: Option<u32>,
    pub keep: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCacheCategory {
    pub name: Option<String>,
    pub path: Option<String>,
    pub header: Option<String>,
    pub value: Option<String>,
    pub model: Option<String>,
    pub ttl: Option<HumanDuration>,
    pub stale: Option<HumanDuration>,
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfidence {
    pub pointer: Option<String>,
    pub bands: Option<Vec<RawBand>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBand {
    pub min: Option<f64>,
    pub ttl: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRedisCache {
    pub enabled: Option<bool>,
    pub url: Option<String>,
    pub urls: Option<Vec<String>>,
    pub cluster: Option<bool>,
    pub prefix: Option<String>,
    pub timeout: Option<HumanDuration>,
    pub breaker_failures: Option<u32>,
    pub breaker_cooldown: Option<HumanDuration>,
    pub lock_wait: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDiskCache {
    pub enabled: Option<bool>,
    pub path: Option<String>,
    pub size: Option<ByteSize>,
    pub purge_interval: Option<HumanDuration>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawCacheMode {
    Off,
    Deterministic,
    Always,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRouteCache {
    pub mode: Option<RawCacheMode>,
    pub ttl: Option<HumanDuration>,
    pub stale: Option<HumanDuration>,
    pub max_ttl: Option<HumanDuration>,
    pub namespace: Option<String>,
    pub namespace_header: Option<bool>,
    pub query: Option<Vec<String>>,
    pub headers: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    pub drain_timeout: Option<HumanDuration>,
    pub http2: Option<bool>,
    pub workers: Option<u32>,
    pub region: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub tls: Option<crate::tls::RawListenerTls>,
    pub data_dir: Option<String>,
    pub access_log: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub max_body_bytes: Option<ByteSize>,
    pub max_header_bytes: Option<ByteSize>,
    pub max_headers: Option<u32>,
    pub body_read_timeout: Option<HumanDuration>,
    pub send_timeout: Option<HumanDuration>,
    pub max_connections: Option<u32>,
    pub max_connections_per_address: Option<u32>,
    pub header_read_timeout: Option<HumanDuration>,
    pub token_count: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPool {
    pub endpoints: Vec<RawEndpoint>,
    pub connect_timeout: Option<HumanDuration>,
    pub request_timeout: Option<HumanDuration>,
    pub read_timeout: Option<HumanDuration>,
    pub idle_timeout: Option<HumanDuration>,
    pub max_connections: Option<u32>,
    pub max_idle: Option<u32>,
    pub concurrency: Option<RawConcurrency>,
    pub strategy: Option<String>,
    pub hash_header: Option<String>,
    pub outlier: Option<RawOutlier>,
    pub retries: Option<RawRetries>,
    pub health_check: Option<RawHealthCheck>,
    pub affinity: Option<RawAffinity>,
    pub region_header: Option<String>,
    pub overprovisioning: Option<f64>,
    pub tag_by: Option<String>,
    pub tag_fallback: Option<bool>,
    pub tls: Option<crate::tls::RawUpstreamTls>,
    pub proxy: Option<String>,
    pub protocol: Option<String>,
    pub h2_keepalive: Option<HumanDuration>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub aws_profile: Option<String>,
    pub api_version: Option<String>,
}

/// `outlier = {...}` of a pool.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutlier {
    pub consecutive_failures: Option<u32>,
    pub base_ejection: Option<HumanDuration>,
    pub max_ejection: Option<HumanDuration>,
    pub max_ejected_percent: Option<u32>,
    pub failure_percent: Option<u32>,
    pub failure_min_requests: Option<u32>,
    pub failure_window: Option<HumanDuration>,
    pub half_open_probes: Option<u32>,
}

/// `affinity = {...}` of a pool.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAffinity {
    pub header: Option<String>,
    pub max_sessions: Option<u32>,
    pub idle_timeout: Option<HumanDuration>,
}

/// `health_check = {...}` of a pool.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealthCheck {
    pub path: String,
    pub expect: Option<u16>,
    pub interval: Option<HumanDuration>,
    pub jitter: Option<HumanDuration>,
    pub timeout: Option<HumanDuration>,
    pub healthy: Option<u32>,
    pub unhealthy: Option<u32>,
}

/// `retries = {...}` of a pool.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetries {
    pub attempts: Option<u32>,
    pub on: Option<Vec<String>>,
    pub backoff_base: Option<HumanDuration>,
    pub backoff_max: Option<HumanDuration>,
    pub budget_percent: Option<u32>,
    pub budget_min_per_second: Option<u32>,
}

/// One step of a route's `fallback = [...]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFallback {
    pub pool: String,
    pub model: Option<String>,
}

/// `hedge = {...}` of a route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHedge {
    pub after: String,
    pub max: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoint {
    pub url: String,
    pub name: Option<String>,
    pub weight: Option<u32>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub region: Option<String>,
    pub priority: Option<u32>,
    pub api_key_env: Option<String>,
    pub api_key_file: Option<String>,
    pub api_key_header: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawRouteKind {
    Openai,
    Anthropic,
    Http,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub name: Option<String>,
    pub kind: RawRouteKind,
    pub path: Option<String>,
    pub prefix: Option<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub pool: Option<String>,
    pub cache: Option<RawRouteCache>,
    pub max_prompt_tokens: Option<u64>,
    pub concurrency: Option<RawConcurrency>,
    #[serde(default)]
    pub fallback: Vec<RawFallback>,
    pub fallback_on: Option<Vec<String>>,
    pub hedge: Option<RawHedge>,
    pub priority_header: Option<bool>,
    pub shed: Option<String>,
    pub transform: Option<crate::transform::RawTransform>,
    pub model_policy: Option<crate::budget::RawModelPolicy>,
    pub shaping: Option<crate::budget::RawShaping>,
}
