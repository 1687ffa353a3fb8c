//! Runtime configuration: validated, immutable, and impossible to deserialize directly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, Uri};

pub use crate::admin::{ADMIN_TOKEN_ENV, AdminConfig, AdminScope, AdminToken};
pub use crate::catalog::{ModelCatalog, ModelPrice};
pub use crate::ip_block::IpBlock;
pub use crate::priority::Priority;
pub use crate::protocol::UpstreamProtocol;
pub use crate::provider::{AwsEnv, Provider};
pub use crate::proxy::{Egress, ProxyConfig};
pub use crate::redis_link::RedisLinkConfig;
pub use crate::resilience::{
    Fallback, HealthCheckConfig, HedgeAfter, HedgeConfig, OutlierConfig, RetryConfig, Triggers,
};
pub use crate::secret::{Secret, format_key_hash, parse_key_hash};
pub use crate::tls::{ListenerTls, TlsRoots, UpstreamTls};

/// A whole, valid flowgate configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the config came from (a file path, or `<embedded>`).
    pub origin: String,
    pub server: ServerConfig,
    pub limits: Limits,
    /// Upstream pools, sorted by name.
    pub pools: Vec<Arc<PoolConfig>>,
    /// Routes in match order: the first route that matches a request serves it.
    pub routes: Vec<Arc<RouteConfig>>,
    pub cache: CacheConfig,
    /// What models cost (`[models."name"]`).
    pub models: ModelCatalog,
    /// Request rate limits (`[[rate_limits]]`); a request must pass every one that applies.
    pub rate_limits: Vec<RateLimitConfig>,
    /// Who may call the data plane (`[auth]`, virtual keys).
    pub auth: AuthConfig,
    /// Where rate-limit counts are shared by replicas; `None`: each gateway counts alone.
    pub shared_limits: Option<SharedLimitsConfig>,
    /// Who may call the admin API (`[admin]`).
    pub admin: AdminConfig,
    /// Pricing and the spend ledger (`[cost]`).
    pub cost: crate::cost::CostConfig,
    /// The metrics history (`[history]`).
    pub history: crate::history::HistoryConfig,
    /// The memory governor (`[memory]`).
    pub memory: crate::memory::MemoryConfig,
    /// Request traces over OTLP (`[tracing]`), when on.
    pub tracing: Option<crate::traces::TracingConfig>,
    /// Alert rules and notifiers (`[alerts]`).
    pub alerts: crate::alerts::AlertsConfig,
    /// Anomaly detection on the history (`[anomalies]`).
    pub anomalies: crate::anomalies::AnomaliesConfig,
    /// Scaling recommendations for pools (`[scaling]`).
    pub scaling: crate::scaling::ScalingConfig,
    /// Automation rules (`[automation]`).
    pub automation: crate::automation::AutomationConfig,
    /// The databases the advisor watches (`[[databases]]`).
    pub databases: Vec<crate::databases::DatabaseConfig>,
}

/// Virtual API keys (`[auth]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// Off: every client may call (local use, the demo).
    pub enabled: bool,
    /// The header carrying the key: `authorization` (as `Bearer KEY`) or another one
    /// (the key as is).
    pub header: HeaderName,
    /// The file keys created through the admin API are kept in.
    pub store: Option<std::path::PathBuf>,
    /// Keys written in the config (`[[auth.keys]]`).
    pub keys: Vec<KeyConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: false,
            header: http::header::AUTHORIZATION,
            store: None,
            keys: Vec::new(),
        }
    }
}

/// A virtual key: only its hash is known.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyConfig {
    pub name: String,
    /// BLAKE3 of the key.
    #[serde(with = "hex_hash")]
    pub hash: [u8; 32],
    /// The team (tenant) it belongs to, for `team`-scoped limits.
    pub team: Option<String>,
    /// Route names it may call (empty: all).
    pub routes: Vec<String>,
    /// Models it may ask for: names, or prefixes ending in `*` (empty: all).
    pub models: Vec<String>,
    /// Its own limits, counted for this key alone.
    pub limits: Vec<Rate>,
    /// How many of its requests may be in flight at once (queued beyond).
    #[serde(default)]
    pub concurrency: Option<ConcurrencyConfig>,
    /// The priority of its requests, and the highest `x-flowgate-priority` may ask for.
    #[serde(default)]
    pub priority: Option<Priority>,
}

/// How a pool chooses an endpoint (`strategy` of a pool; see `flowgate-balance`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BalanceStrategy {
    RoundRobin,
    Weighted,
    LeastLoaded,
    #[default]
    P2cEwma,
    ConsistentHash,
    Random,
}

impl BalanceStrategy {
    pub const ALL: [BalanceStrategy; 6] = [
        BalanceStrategy::RoundRobin,
        BalanceStrategy::Weighted,
        BalanceStrategy::LeastLoaded,
        BalanceStrategy::P2cEwma,
        BalanceStrategy::ConsistentHash,
        BalanceStrategy::Random,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BalanceStrategy::RoundRobin => "round_robin",
            BalanceStrategy::Weighted => "weighted",
            BalanceStrategy::LeastLoaded => "least_loaded",
            BalanceStrategy::P2cEwma => "p2c_ewma",
            BalanceStrategy::ConsistentHash => "consistent_hash",
            BalanceStrategy::Random => "random",
        }
    }

    /// The strategy named `s`, or why there is none (naming the known ones).
    pub fn parse(s: &str) -> Result<BalanceStrategy, String> {
        BalanceStrategy::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = BalanceStrategy::ALL.iter().map(|x| x.as_str()).collect();
                format!("unknown strategy {s:?}: expected one of {}", all.join(", "))
            })
    }
}

/// A concurrency limit (`concurrency = {...}` of a route, pool or key): permits for
/// requests in flight, and a bounded queue ordered by priority beyond them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConcurrencyConfig {
    /// Requests in flight at once (with `adaptive`, the starting limit).
    pub limit: u32,
    /// Extra permits for `critical` and `high` requests. Default 0.
    pub burst: u32,
    /// Requests that may wait, all priorities together. Default: `limit`.
    pub queue: u32,
    /// How long a request waits before it is refused. Default 30 s.
    #[serde(with = "duration_nanos")]
    pub queue_timeout: Duration,
    /// Pools only: the limit follows the upstream's latency within these bounds.
    pub adaptive: Option<AdaptiveConfig>,
}

/// The bounds of an adaptive limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AdaptiveConfig {
    pub min: u32,
    pub max: u32,
}

impl KeyConfig {
    /// Whether the key may ask for `model` (a request without a model always may).
    pub fn allows_model(&self, model: Option<&str>) -> bool {
        let Some(model) = model else { return true };
        self.models.is_empty()
            || self.models.iter().any(|m| match m.strip_suffix('*') {
                Some(prefix) => model.starts_with(prefix),
                None => m == model,
            })
    }

    /// Whether the key may call the route named `route`.
    pub fn allows_route(&self, route: &str) -> bool {
        self.routes.is_empty() || self.routes.iter().any(|r| r == route)
    }
}

/// Hashes as `blake3:` and 64 hex digits.
mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_key_hash(h))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        super::parse_key_hash(&s).ok_or_else(|| serde::de::Error::custom("not blake3:HEX64"))
    }
}

/// The credential flowgate sends an upstream in place of the client's (`api_key_env`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamKey {
    /// `authorization` (sent as `Bearer SECRET`) or another header (the secret as is).
    pub header: HeaderName,
    pub secret: Secret,
}

/// A rate limit (`[[rate_limits]]`): `amount` requests or tokens per `per` for each value of
/// `scope`, `burst` of them at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub name: String,
    pub scope: LimitScope,
    pub rate: Rate,
    /// The routes it applies to (empty: all).
    pub routes: Vec<String>,
}

/// How much a limit allows: `amount` requests or tokens per `per`, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rate {
    pub unit: LimitUnit,
    pub amount: u64,
    #[serde(with = "duration_nanos")]
    pub per: Duration,
    pub burst: u64,
}

/// Durations as whole nanoseconds (in the key store).
mod duration_nanos {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_nanos(u64::deserialize(d)?))
    }
}

/// What a rate limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitUnit {
    /// Requests (`requests = N`).
    Requests,
    /// Tokens (`tokens = N`) on openai routes: an estimate is reserved when a request is
    /// admitted and corrected with the answer's usage.
    Tokens,
}

impl LimitUnit {
    /// `requests` or `tokens`, as in the config and OpenAI's header names.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitUnit::Requests => "requests",
            LimitUnit::Tokens => "tokens",
        }
    }
}

/// What a rate limit counts apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitScope {
    /// All requests together.
    Global,
    /// Each client address (the connection's peer).
    ClientIp,
    /// Each route.
    Route,
    /// Each requested model (openai routes; requests without one share a count).
    Model,
    /// Each value of a request header (requests without it share a count).
    Header(HeaderName),
    /// Each virtual key (requests without one share a count).
    Key,
    /// Each virtual key's team (requests without one share a count).
    Team,
}

impl std::fmt::Display for LimitScope {
    /// As written in the config: `global`, `ip`, `header:x-team`, ...
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitScope::Global => f.write_str("global"),
            LimitScope::ClientIp => f.write_str("ip"),
            LimitScope::Route => f.write_str("route"),
            LimitScope::Model => f.write_str("model"),
            LimitScope::Header(h) => write!(f, "header:{h}"),
            LimitScope::Key => f.write_str("key"),
            LimitScope::Team => f.write_str("team"),
        }
    }
}

/// The response cache (`[cache]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Whether routes may use the cache at all. Default false.
    pub enabled: bool,
    /// Bytes of responses held in memory. Default 256 MiB. Takes effect at start only.
    pub memory_bytes: u64,
    /// Largest response stored. Default 4 MiB.
    pub max_entry_bytes: u64,
    /// Freshness of a stored response unless the route or the client says otherwise.
    /// Default 1 h.
    pub ttl: Duration,
    /// How long a request waits for an identical one already upstream before going
    /// upstream itself. Default 30 s.
    pub coalesce_wait: Duration,
    /// Bodies larger than this are stored zstd-compressed outside memory. Default 1 KiB.
    pub compress_above: u64,
    /// After its TTL, an entry is still served for this long while one request refreshes
    /// it in the background (stale-while-revalidate). Default 0 (off).
    pub stale: Duration,
    /// A popular entry hit this close to its expiry is refreshed in the background.
    /// Default 0 (off).
    pub refresh_ahead: Duration,
    /// Hits since it was stored that make an entry popular. Default 5.
    pub popular_hits: u64,
    /// A popular entry's TTL doubles at each refresh up to this. Default none (no extension).
    pub max_ttl: Option<Duration>,
    /// TTL categories (`[[cache.categories]]`), in match order: the first that matches a
    /// request sets its TTL.
    pub categories: Vec<CacheCategory>,
    /// TTL from a confidence score in the answer (`[cache.confidence]`).
    pub confidence: Option<ConfidenceTtl>,
    /// The disk tier (`[cache.disk]`), when enabled. Takes effect at start only.
    pub disk: Option<DiskCacheConfig>,
    /// The Redis tier (`[cache.redis]`), when enabled. Takes effect at start only.
    pub redis: Option<RedisCacheConfig>,
    /// Warming (`[cache.warm]`).
    pub warm: WarmConfig,
}

/// Cache warming (`[cache.warm]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmConfig {
    /// Requests (JSON Lines) replayed into the cache at start.
    pub file: Option<std::path::PathBuf>,
    /// Warming requests sent upstream per second, at most. Default 10.
    pub rate: u32,
    /// Recent requests kept, the most requested first, for top-N warming. Default 1000;
    /// 0 keeps none.
    pub keep: usize,
}

/// A TTL category: requests it matches (every condition given must hold) get its TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheCategory {
    pub name: String,
    /// Path prefix, at a segment boundary as for routes.
    pub path: Option<PathMatch>,
    /// A request header (lower-case name) and its value.
    pub header: Option<(http::HeaderName, String)>,
    /// The request's `model`; a trailing `*` matches any suffix.
    pub model: Option<String>,
    pub ttl: Duration,
    /// Overrides the route's and `cache.stale`.
    pub stale: Option<Duration>,
    /// Invalidation tags given to its entries.
    pub tags: Vec<String>,
}

impl CacheCategory {
    /// Whether a request for `path`, with `headers`, asking for `model`, is in this category.
    pub fn matches(&self, path: &str, headers: &http::HeaderMap, model: Option<&str>) -> bool {
        self.path.as_ref().is_none_or(|p| p.matches(path))
            && self
                .header
                .as_ref()
                .is_none_or(|(n, v)| headers.get(n).is_some_and(|h| h.as_bytes() == v.as_bytes()))
            && self
                .model
                .as_ref()
                .is_none_or(|m| match m.strip_suffix('*') {
                    Some(prefix) => model.is_some_and(|x| x.starts_with(prefix)),
                    None => model == Some(m.as_str()),
                })
    }
}

/// TTL chosen by a number in the answer: the first band whose `min` the number reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfidenceTtl {
    /// JSON pointer into the response body (RFC 6901); a string met on the way that holds
    /// JSON (an LLM's message content) is parsed and the rest of the pointer read in it.
    pub pointer: String,
    /// (`min` in millionths, TTL), highest `min` first.
    pub bands: Vec<(u32, Duration)>,
}

impl ConfidenceTtl {
    /// The TTL for a score of `value`, if a band takes it.
    pub fn ttl_for(&self, value: f64) -> Option<Duration> {
        self.bands
            .iter()
            .find(|(min, _)| value * 1e6 >= f64::from(*min))
            .map(|(_, ttl)| *ttl)
    }
}

/// The Redis tier of the cache (`[cache.redis]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisCacheConfig {
    pub link: RedisLinkConfig,
    /// How long a miss waits for another replica that holds the key's fetch lock, polling
    /// Redis, before going upstream itself; zero turns the lock off. Default 5 s.
    pub lock_wait: Duration,
}

/// Rate-limit counts shared by every replica through Redis (`[shared_limits]`).
#[derive(Debug, Clone, PartialEq)]
pub struct SharedLimitsConfig {
    pub link: RedisLinkConfig,
    /// The share of each limit a replica enforces alone while Redis is unreachable, in
    /// (0, 1]. Default 1 (each replica the whole limit); `1 / replicas` keeps the total.
    pub fallback_share: f64,
}

/// The disk tier of the cache (`[cache.disk]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskCacheConfig {
    /// The store's file; a relative path is relative to the config file's directory.
    pub path: std::path::PathBuf,
    /// Bytes of stored records kept. Default 1 GiB.
    pub max_bytes: u64,
    /// How often expired entries are purged. Default 60 s.
    pub purge_interval: Duration,
}

/// Which requests of a route are cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    Off,
    /// Requests that always get the same answer: temperature 0, a seed, embeddings (openai
    /// routes); GET and HEAD (http routes).
    Deterministic,
    /// Every request.
    Always,
}

/// A route's use of the cache (`[routes.cache]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCache {
    /// Default: `deterministic` on openai routes when the cache is enabled, else `off`.
    pub mode: CacheMode,
    /// Overrides `cache.ttl`.
    pub ttl: Option<Duration>,
    /// Overrides `cache.stale`.
    pub stale: Option<Duration>,
    /// Overrides `cache.max_ttl`.
    pub max_ttl: Option<Duration>,
    /// Routes with the same namespace share entries. Default: the route's name.
    pub namespace: Option<String>,
    /// Whether a client may pick another namespace with `x-flowgate-cache-namespace`
    /// (`namespace_header`). Default false: a client could otherwise read and fill the
    /// entries of any namespace, another tenant's included.
    pub namespace_header: bool,
    /// http routes: the query parameters in the key (`None`: all of them).
    pub query: Option<Vec<String>>,
    /// http routes: the request headers in the key, sorted (default none).
    pub headers: Vec<HeaderName>,
}

/// Listeners and process-level settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Data-plane listener. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Admin listener (`/metrics`, `/health`, `/api/v1/...`). Default `127.0.0.1:9090`.
    pub admin_listen: SocketAddr,
    /// How long in-flight requests get to finish after SIGTERM. Default 30 s.
    pub drain_timeout: Duration,
    /// Accept HTTP/2 with prior knowledge (h2c) next to HTTP/1.1. Default true.
    pub http2: bool,
    /// Data-plane worker threads, each with its own event loop, listener socket
    /// (`SO_REUSEPORT`) and idle connections. `None`: one per CPU core. Takes effect at
    /// start only.
    pub workers: Option<std::num::NonZeroUsize>,
    /// The gateway's own region: a pool's endpoints in it are preferred for requests that
    /// do not name theirs.
    pub region: Option<String>,
    /// Peers whose `X-Forwarded-For`, `Forwarded` and `X-Real-IP` are believed and passed
    /// on (a load balancer in front); anyone else's are replaced. Default none.
    pub trusted_proxies: Vec<IpBlock>,
    /// `[server.tls]`: the data plane serves HTTPS (HTTP/1.1, and h2 by ALPN when `http2`).
    pub tls: Option<ListenerTls>,
    /// Where the gateway keeps what it must not lose (the spend ledger, ...); relative to
    /// the config file. `None`: nothing is kept across restarts.
    pub data_dir: Option<std::path::PathBuf>,
    /// Where each request's line goes when its answer is done: a file (JSON lines,
    /// appended) or `-` for standard output. `None`: no access log.
    pub access_log: Option<AccessLog>,
}

/// The access log's destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    Stdout,
    File(std::path::PathBuf),
}

/// Limits on what a client may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body; larger ones get 413 before being read. Default 10 MiB.
    pub max_body_bytes: u64,
    /// Largest request head (request line + headers); larger ones get 431. Default 64 KiB.
    pub max_header_bytes: usize,
    /// Most header fields in one request; more get 431. Default 100.
    pub max_headers: usize,
    /// Time allowed to receive the request head; slower clients get 408. Default 10 s.
    pub header_read_timeout: Duration,
    /// Longest gap between two pieces of a request body; beyond it 408. Default 30 s.
    pub body_read_timeout: Duration,
    /// Longest a response write waits for a client that does not read; beyond it the
    /// connection is closed (and the upstream's with it). Default 60 s.
    pub send_timeout: Duration,
    /// Client connections open at once over all workers; more are closed as they are
    /// accepted (0: no cap). Default 10 000.
    pub max_connections: usize,
    /// Client connections open at once from one address (0: no cap, the default: behind a
    /// load balancer every client has its address).
    pub max_connections_per_address: usize,
    /// Whether prompts of OpenAI's models are counted with their tokenizer (`token_count =
    /// "exact"`, the default) or by the rule of thumb (`"approximate"`: cheaper, no
    /// vocabularies in memory) for token limits and prompt guards.
    pub exact_tokens: bool,
}

/// A named group of upstream endpoints that serve the same API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    pub name: String,
    pub endpoints: Vec<EndpointConfig>,
    /// TCP connect timeout. Default 2 s.
    pub connect_timeout: Duration,
    /// Time until the upstream's response head arrives; beyond it the client gets 504 and the
    /// upstream request is cancelled. Default 120 s (LLM answers are slow).
    pub request_timeout: Duration,
    /// Longest gap between two chunks of a response body (stalled streams). Default 60 s.
    pub read_timeout: Duration,
    /// Idle pooled connections are closed after this. Default 90 s.
    pub idle_timeout: Duration,
    /// Most open connections per endpoint (active + idle). Default 1024.
    pub max_connections: u32,
    /// Most idle keep-alive connections kept per endpoint. Default 64.
    pub max_idle: u32,
    /// Requests of this pool in flight at once, queued beyond (optional; may adapt).
    pub concurrency: Option<ConcurrencyConfig>,
    /// How an endpoint is chosen. Default `p2c_ewma`.
    pub strategy: BalanceStrategy,
    /// The header `consistent_hash` keys requests by. Default `x-session-id`.
    pub hash_header: HeaderName,
    /// When an endpoint's breaker opens.
    pub outlier: OutlierConfig,
    /// When and how often a request is sent again.
    pub retries: RetryConfig,
    /// Active health checks, when set.
    pub health_check: Option<HealthCheckConfig>,
    /// The header naming the client's region (`region_header`); without it (or its value),
    /// the gateway's own `[server] region`.
    pub region_header: Option<HeaderName>,
    /// The gateway's `[server] region`, copied here for the pool's locality.
    pub local_region: Option<String>,
    /// A priority level or region takes all of its traffic while this share of it, × the
    /// share usable, is at least 100%; percent. Default 140 (Envoy's 1.4).
    pub overprovisioning: u32,
    /// Session affinity (`affinity = {...}`), when set.
    pub affinity: Option<AffinityConfig>,
    /// What selects the endpoints tagged for a request (`tag_by`); `None`: all serve all.
    pub tag_by: Option<TagBy>,
    /// Whether a request whose tagged endpoints are all out (or that names a tag no endpoint
    /// has) goes to the others. Default true.
    pub tag_fallback: bool,
    /// How `https://` endpoints are verified (`[pools.NAME.tls]`).
    pub tls: UpstreamTls,
    /// How its connections leave: directly or through an HTTP proxy (`proxy`, or
    /// `HTTPS_PROXY` / `NO_PROXY`).
    pub egress: Egress,
    /// Which HTTP it speaks to its servers. Default `auto`.
    pub protocol: UpstreamProtocol,
    /// How often an HTTP/2 connection is PINGed (one unanswered within `connect_timeout`
    /// is closed). Default 30 s.
    pub h2_keepalive: Duration,
    /// Which API its servers speak. Default `openai`.
    pub provider: Provider,
    /// The model its servers are asked for, whatever the client named (`model`: the
    /// provider's id, e.g. Bedrock's `anthropic.claude-3-5-sonnet-20240620-v1:0`); the
    /// client's own when unset. Answers still name the client's.
    pub model: Option<String>,
    /// Where a Bedrock pool finds its AWS credentials.
    pub aws: Option<crate::provider::AwsEnv>,
    /// An Azure pool's `api-version`.
    pub api_version: Option<String>,
}

/// Session affinity of a pool: requests with the same session id stick to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffinityConfig {
    /// The header carrying the session id. Default `x-session-id`.
    pub header: HeaderName,
    /// Sessions an endpoint carries at most (0: no cap). Default 0.
    pub max_sessions: u32,
    /// A session unused for this long is forgotten. Default 30 min.
    pub idle_timeout: Duration,
}

/// The request attribute that picks endpoints by tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagBy {
    /// A header's value (`"header:x-analysis-type"`).
    Header(HeaderName),
    /// The requested model (openai routes).
    Model,
}

/// One upstream server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConfig {
    /// `host:port` unless a name was given.
    pub name: String,
    /// Base URL: scheme `http`, authority, and an optional path prefix (no trailing `/`).
    pub url: Uri,
    /// Host and port to connect to (port 80 or 443 when the URL has none).
    pub authority: String,
    /// The host alone (no brackets around an IPv6 address): the TLS server name.
    pub host: String,
    /// `https://`: the connection speaks TLS.
    pub tls: bool,
    /// Path prefix prepended to the request path (empty, or starts with `/`).
    pub base_path: String,
    pub weight: u32,
    pub tags: Vec<String>,
    pub region: Option<String>,
    /// 0 first: later levels take traffic as earlier ones fail. Default 0.
    pub priority: u32,
    /// The credential sent upstream, from the environment (`api_key_env`).
    pub api_key: Option<UpstreamKey>,
}

/// How a route treats request bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// OpenAI-compatible API: the JSON body is read once (model, stream, max_tokens) and
    /// forwarded unchanged.
    OpenAi,
    /// Any HTTP API: bodies stream through, never buffered.
    Http,
}

/// The API a route's clients speak. Whatever it is, the gateway works on OpenAI's form:
/// an `anthropic` route's requests are translated to it on the way in and its answers back
/// on the way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientDialect {
    #[default]
    OpenAi,
    /// Anthropic's Messages API (`kind = "anthropic"`, for Claude clients).
    Anthropic,
}

/// How a route matches the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
}

/// A rule that sends matching requests to a pool.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    pub name: String,
    /// `openai` for `kind = "anthropic"` too: its requests are OpenAI's once translated.
    pub kind: RouteKind,
    pub dialect: ClientDialect,
    pub path: PathMatch,
    /// Empty means any method.
    pub methods: Vec<Method>,
    /// Every listed header must be present with exactly this value.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Name of the pool (validation guarantees it exists); `None`: the pools of the
    /// request's model (`[models."NAME"] deployments`).
    pub pool: Option<String>,
    pub cache: RouteCache,
    /// Prompts estimated at more tokens are refused with 413 before any upstream call
    /// (openai routes).
    pub max_prompt_tokens: Option<u64>,
    /// Requests of this route in flight at once, queued beyond (optional).
    pub concurrency: Option<ConcurrencyConfig>,
    /// The pools (and models) tried in order when the route's own pool fails.
    pub fallback: Vec<Fallback>,
    /// The failures that move a request down the chain.
    pub fallback_on: Triggers,
    pub hedge: Option<HedgeConfig>,
    /// Whether any client of the route may raise its priority with `x-flowgate-priority`
    /// (`high`, `critical`). Otherwise only a key whose `priority` allows it may; anyone
    /// may lower theirs. Default false.
    pub priority_header: bool,
    /// Requests of this priority and below are refused with 503 (`shed`; automation's
    /// `shed` action sets it too). Never `critical`.
    pub shed: Option<crate::Priority>,
    /// What is done to the route's answers before its clients get them (`transform`).
    pub transform: Option<crate::transform::TransformConfig>,
    /// How the route picks a request's model (`model_policy`): by priority, `auto`.
    pub model_policy: Option<crate::budget::ModelPolicy>,
    /// How the route's requests are made cheaper before they are sent (`shaping`).
    pub shaping: crate::budget::Shaping,
}

impl PathMatch {
    /// Whether `path` matches. A prefix matches at a segment boundary or anywhere if it ends
    /// with `/`: prefix `/v1` matches `/v1` and `/v1/x` but not `/v10`.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => path == p,
            PathMatch::Prefix(p) => {
                path.starts_with(p.as_str())
                    && (p.ends_with('/')
                        || path.len() == p.len()
                        || path.as_bytes().get(p.len()) == Some(&b'/'))
            }
        }
    }
}

impl Config {
    /// The pool with this name.
    pub fn pool(&self, name: &str) -> Option<&Arc<PoolConfig>> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// A one-screen summary, as `flowgate check` prints it.
    pub fn summary(&self) -> String {
        use crate::format_duration;
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "{}: ok", self.origin);
        let _ = writeln!(
            s,
            "  listen {} (http/1.1{}), admin {}, drain {}, workers {}",
            self.server.listen,
            match (&self.server.tls, self.server.http2) {
                (Some(_), true) => " over TLS, h2 by ALPN",
                (Some(_), false) => " over TLS",
                (None, true) => " + h2c",
                (None, false) => "",
            },
            self.server.admin_listen,
            format_duration(self.server.drain_timeout),
            self.server
                .workers
                .map_or_else(|| "one per core".to_string(), |n| n.to_string())
        );
        let _ = writeln!(
            s,
            "  limits: body {} B, head {} B / {} headers, head read {}",
            self.limits.max_body_bytes,
            self.limits.max_header_bytes,
            self.limits.max_headers,
            format_duration(self.limits.header_read_timeout)
        );
        let _ = writeln!(s, "  {} pool(s):", self.pools.len());
        for p in &self.pools {
            let eps: Vec<String> = p
                .endpoints
                .iter()
                .map(|e| match &e.api_key {
                    Some(k) => format!("{} (key {} in {})", e.name, k.secret, k.header),
                    None => e.name.clone(),
                })
                .collect();
            let _ = writeln!(
                s,
                "    {}: {} endpoint(s) [{}] by {}, {}, connect {}, request {}, max {} conns / {} idle per endpoint{}",
                p.name,
                p.endpoints.len(),
                eps.join(", "),
                match p.strategy {
                    BalanceStrategy::ConsistentHash =>
                        format!("consistent_hash on {}", p.hash_header),
                    s => s.as_str().to_string(),
                },
                match p.retries.attempts {
                    1 => "no retries".to_string(),
                    n => format!(
                        "{n} attempts on {} (budget {}% + {}/s)",
                        p.retries.on.names().join("/"),
                        p.retries.budget_percent,
                        p.retries.budget_min_per_second
                    ),
                },
                format_duration(p.connect_timeout),
                format_duration(p.request_timeout),
                p.max_connections,
                p.max_idle,
                concurrency_summary(p.concurrency.as_ref())
            );
            if matches!(
                p.provider,
                Provider::Anthropic | Provider::Bedrock | Provider::Gemini
            ) {
                let _ = writeln!(
                    s,
                    "      provider {}: OpenAI requests and answers translated",
                    p.provider.as_str()
                );
            }
            if let Some(m) = &p.model {
                let _ = writeln!(s, "      asks its servers for model {m}");
            }
            if let Some(v) = &p.api_version {
                let _ = writeln!(
                    s,
                    "      provider azure: OpenAI requests to deployments, api-version {v}"
                );
            }
            if let Some(aws) = &p.aws {
                let regions: Vec<&str> = p
                    .endpoints
                    .iter()
                    .filter_map(|e| e.region.as_deref())
                    .collect();
                let _ = writeln!(
                    s,
                    "      signed (SigV4) for {} with AWS credentials {}",
                    regions.join(", "),
                    match &aws.profile {
                        Some(p) => format!("of profile {p:?}"),
                        None => "from the environment or the shared files".into(),
                    }
                );
            }
            match p.protocol {
                UpstreamProtocol::Auto if p.endpoints.iter().any(|e| e.tls) => {
                    let _ = writeln!(s, "      http/2 where the server picks it by ALPN");
                }
                UpstreamProtocol::Auto | UpstreamProtocol::Http1 => {}
                UpstreamProtocol::H2 | UpstreamProtocol::H2c => {
                    let _ = writeln!(
                        s,
                        "      http/2 ({}), PING every {}",
                        p.protocol.as_str(),
                        format_duration(p.h2_keepalive)
                    );
                }
            }
            match &p.egress {
                Egress::Direct => {}
                Egress::Proxy(x) => {
                    let _ = writeln!(s, "      through proxy {x}");
                }
                Egress::Env { https, no_proxy } => {
                    let _ = writeln!(
                        s,
                        "      https:// endpoints through proxy {https}{}",
                        if no_proxy.is_empty() {
                            String::new()
                        } else {
                            format!(", except NO_PROXY {}", no_proxy.join(","))
                        }
                    );
                }
            }
            if p.endpoints.iter().any(|e| e.tls) {
                let t = &p.tls;
                let _ = writeln!(
                    s,
                    "      tls: roots {}{}{}{}",
                    t.roots.as_str(),
                    t.ca_file
                        .as_ref()
                        .map_or(String::new(), |f| format!(" + ca {}", f.display())),
                    t.cert_file
                        .as_ref()
                        .map_or(String::new(), |f| format!(", client cert {}", f.display())),
                    t.sni
                        .as_ref()
                        .map_or(String::new(), |n| format!(", sni {n}")),
                );
                if t.insecure_skip_verify {
                    let _ = writeln!(
                        s,
                        "      WARNING: tls.insecure_skip_verify: the servers of pool {} are not \
                         verified; anyone on the path can read and change its traffic",
                        p.name
                    );
                }
            }
        }
        let _ = writeln!(s, "  {} route(s):", self.routes.len());
        for r in &self.routes {
            let (how, path) = match &r.path {
                PathMatch::Exact(p) => ("path", p),
                PathMatch::Prefix(p) => ("prefix", p),
            };
            let methods = if r.methods.is_empty() {
                "any".to_string()
            } else {
                r.methods
                    .iter()
                    .map(Method::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let kind = match (r.kind, r.dialect) {
                (RouteKind::OpenAi, ClientDialect::Anthropic) => "anthropic",
                (RouteKind::OpenAi, _) => "openai",
                (RouteKind::Http, _) => "http",
            };
            let cache = match r.cache.mode {
                CacheMode::Off => String::new(),
                mode => {
                    format!(
                        ", cache {} ttl {} ns {}",
                        if mode == CacheMode::Always {
                            "always"
                        } else {
                            "deterministic"
                        },
                        format_duration(r.cache.ttl.unwrap_or(self.cache.ttl)),
                        r.cache.namespace.as_deref().unwrap_or(&r.name)
                    ) + &http_key(r)
                }
            };
            let mut prompt = r
                .max_prompt_tokens
                .map(|n| format!(", prompts up to {n} tokens"))
                .unwrap_or_default();
            if !r.fallback.is_empty() {
                let chain: Vec<String> = r
                    .fallback
                    .iter()
                    .map(|f| match &f.model {
                        Some(m) => format!("{} (model {m})", f.pool),
                        None => f.pool.clone(),
                    })
                    .collect();
                let _ = write!(
                    prompt,
                    ", falls back to {} on {}",
                    chain.join(" -> "),
                    r.fallback_on.names().join("/")
                );
            }
            match r.hedge.map(|h| h.after) {
                Some(HedgeAfter::Quantile(q)) => {
                    let _ = write!(prompt, ", hedged after p{}", f64::from(q) / 100.0);
                }
                Some(HedgeAfter::Fixed(d)) => {
                    let _ = write!(prompt, ", hedged after {}", format_duration(d));
                }
                None => {}
            }
            if let Some(p) = &r.model_policy {
                let tiers: Vec<String> = p
                    .by_priority
                    .iter()
                    .map(|(pr, t)| format!("{} -> {t}", pr.as_str()))
                    .collect();
                let _ = write!(
                    prompt,
                    ", models by priority ({}){}",
                    tiers.join(", "),
                    if p.auto {
                        ", \"auto\" the cheapest that fits"
                    } else {
                        ""
                    }
                );
            }
            if !r.shaping.is_off() {
                let sh = &r.shaping;
                let mut steps = Vec::new();
                if sh.compact_whitespace {
                    steps.push("whitespace compacted".to_string());
                }
                if let Some(d) = sh.max_tokens_default {
                    steps.push(format!("max_tokens {d} by default"));
                }
                if let Some(c) = sh.max_tokens_cap {
                    steps.push(format!("max_tokens at most {c}"));
                }
                if let Some((lo, hi)) = sh.temperature {
                    steps.push(format!("temperature within {lo}-{hi}"));
                }
                if !sh.drop.is_empty() {
                    steps.push(format!("without {}", sh.drop.join(", ")));
                }
                let _ = write!(prompt, ", shaped ({})", steps.join("; "));
            }
            let _ = writeln!(
                s,
                "    {}: {kind} {how} {path} methods {methods} -> {}{cache}{prompt}{}",
                r.name,
                match &r.pool {
                    Some(p) => format!("pool {p}"),
                    None => "the pools of the request's model".into(),
                },
                concurrency_summary(r.concurrency.as_ref())
            );
        }
        let served: Vec<String> = self
            .models
            .served()
            .map(|m| {
                let pools: Vec<&str> = m.deployments.iter().map(|d| d.pool.as_str()).collect();
                format!("{} -> {}", m.id, pools.join(" -> "))
            })
            .collect();
        let _ = writeln!(
            s,
            "  model catalog {}: {} model(s){}",
            self.models.version,
            self.models.models().len(),
            if served.is_empty() {
                String::new()
            } else {
                format!("; served by model: {}", served.join(", "))
            }
        );
        s.push_str(&self.cost.summary());
        s.push_str(&self.history.summary());
        s.push_str(&self.anomalies.summary(self.history.enabled));
        s.push_str(&self.scaling.summary());
        for r in &self.automation.rules {
            s.push_str(&format!("  automation rule {}\n", r.name));
        }
        for d in &self.databases {
            s.push_str(&d.summary());
        }
        s.push_str(&self.memory.summary());
        if let Some(t) = &self.tracing {
            s.push_str(&t.summary());
        }
        for n in &self.alerts.notifiers {
            s.push_str(&format!(
                "  notifier {} ({}): {}\n",
                n.name,
                n.kind.as_str(),
                n.target()
            ));
        }
        for r in &self.alerts.rules {
            s.push_str(&format!(
                "  alert {} ({}{}): {}\n",
                r.name,
                r.severity.as_str(),
                if r.for_.is_zero() {
                    String::new()
                } else {
                    format!(", for {}", crate::format_duration(r.for_))
                },
                crate::alerts::describe(&r.kind)
            ));
        }
        if let Some(a) = &self.server.access_log {
            let _ = writeln!(
                s,
                "  access log: {}",
                match a {
                    AccessLog::Stdout => "standard output".to_string(),
                    AccessLog::File(p) => p.display().to_string(),
                }
            );
        }
        for l in &self.rate_limits {
            let scope = &l.scope;
            let _ = writeln!(
                s,
                "  rate limit {}: {} {} per {} per {scope}, burst {}, routes {}",
                l.name,
                l.rate.amount,
                l.rate.unit.as_str(),
                format_duration(l.rate.per),
                l.rate.burst,
                if l.routes.is_empty() {
                    "all".to_string()
                } else {
                    l.routes.join(",")
                }
            );
        }
        if self.auth.enabled {
            let _ = writeln!(
                s,
                "  auth: virtual keys in {}, {} key(s) in the config{}",
                self.auth.header,
                self.auth.keys.len(),
                self.auth
                    .store
                    .as_ref()
                    .map(|p| format!(", store {}", p.display()))
                    .unwrap_or_default()
            );
        } else {
            let _ = writeln!(s, "  auth: off (any client may call)");
        }
        let a = &self.admin;
        let open: Vec<&str> = [
            (a.open_health, "/health"),
            (a.open_ready, "/ready"),
            (a.open_metrics, "/metrics"),
        ]
        .iter()
        .filter_map(|(on, p)| on.then_some(*p))
        .collect();
        if a.requires_token() {
            let _ = writeln!(
                s,
                "  admin: {} token(s) ({}){}; open without one: {}",
                a.tokens.len(),
                a.tokens
                    .iter()
                    .map(|t| format!("{} {}", t.name, t.scope.as_str()))
                    .collect::<Vec<_>>()
                    .join(", "),
                a.env_token
                    .as_ref()
                    .map(|t| format!(" + ${} (write)", t.var()))
                    .unwrap_or_default(),
                if open.is_empty() {
                    "nothing".to_string()
                } else {
                    open.join(", ")
                }
            );
        } else {
            let _ = writeln!(
                s,
                "  admin: no token: whoever reaches {} may use the admin API",
                self.server.admin_listen
            );
            if !self.server.admin_listen.ip().is_loopback() {
                let _ = writeln!(
                    s,
                    "  WARNING: server.admin_listen {} is not a loopback address and the admin \
                     API has no token: anyone who reaches it can change keys, limits and \
                     endpoints. Add [[admin.tokens]] (`flowgate key create --admin`) or set \
                     {}",
                    self.server.admin_listen,
                    crate::admin::ADMIN_TOKEN_ENV
                );
            }
        }
        if let Some(l) = &self.shared_limits {
            let _ = writeln!(
                s,
                "  shared limits{}, {} of each limit per replica while Redis is down",
                l.link.summary(),
                l.fallback_share
            );
        }
        if self.cache.enabled {
            let _ = writeln!(
                s,
                "  cache: memory {}, max entry {} B, ttl {}, coalesce wait {}",
                match self.cache.memory_bytes {
                    0 => "off".to_string(),
                    b => format!("{b} B"),
                },
                self.cache.max_entry_bytes,
                format_duration(self.cache.ttl),
                format_duration(self.cache.coalesce_wait)
            );
            if let Some(r) = &self.cache.redis {
                let _ = writeln!(
                    s,
                    "  cache redis{}, lock wait {}",
                    r.link.summary(),
                    format_duration(r.lock_wait)
                );
            }
            if let Some(d) = &self.cache.disk {
                let _ = writeln!(
                    s,
                    "  cache disk: {} up to {} B, purge every {}, compress above {} B",
                    d.path.display(),
                    d.max_bytes,
                    format_duration(d.purge_interval),
                    self.cache.compress_above
                );
            }
            let w = &self.cache.warm;
            let _ = writeln!(
                s,
                "  cache warm: {}, {} per second, top-N keeps {} requests",
                w.file
                    .as_ref()
                    .map_or("no file".to_string(), |f| format!("file {}", f.display())),
                w.rate,
                w.keep
            );
        }
        s
    }
}

/// `, concurrency N (+B burst), queue Q / T[, adaptive MIN-MAX]`, or nothing.
fn concurrency_summary(c: Option<&ConcurrencyConfig>) -> String {
    let Some(c) = c else {
        return String::new();
    };
    let burst = if c.burst > 0 {
        format!(" (+{} burst)", c.burst)
    } else {
        String::new()
    };
    let adaptive = c
        .adaptive
        .map(|a| format!(", adaptive {}-{}", a.min, a.max))
        .unwrap_or_default();
    format!(
        ", concurrency {}{burst}, queue {} / {}{adaptive}",
        c.limit,
        c.queue,
        crate::format_duration(c.queue_timeout)
    )
}

/// What an http route's cache key holds besides method, path and body, for the summary.
fn http_key(r: &RouteConfig) -> String {
    if r.kind != RouteKind::Http {
        return String::new();
    }
    let query = match &r.cache.query {
        None => "all".to_string(),
        Some(q) if q.is_empty() => "none".to_string(),
        Some(q) => q.join(","),
    };
    let headers = if r.cache.headers.is_empty() {
        "none".to_string()
    } else {
        let names: Vec<&str> = r.cache.headers.iter().map(HeaderName::as_str).collect();
        names.join(",")
    };
    format!(" key query {query} headers {headers}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_matches_at_segment_boundaries() {
        let p = PathMatch::Prefix("/v1".into());
        assert!(p.matches("/v1"));
        assert!(p.matches("/v1/chat"));
        assert!(!p.matches("/v10"));
        let slash = PathMatch::Prefix("/api/".into());
        assert!(slash.matches("/api/x"));
        assert!(!slash.matches("/api"));
        assert!(PathMatch::Prefix("/".into()).matches("/anything"));
        assert!(PathMatch::Exact("/a".into()).matches("/a"));
        assert!(!PathMatch::Exact("/a".into()).matches("/a/"));
    }
}
