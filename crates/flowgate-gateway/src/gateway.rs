//! The gateway: the current runtime (swapped atomically on reload), telemetry, and the
//! per-request flow from route to upstream and back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use flowgate_cache::disk::DiskSettings;
use flowgate_cache::remote::RedisSettings;
use flowgate_cache::{Cache, CacheSettings, Entry, Lookup, Lower, Waited};
use flowgate_clock::SharedClock;
use flowgate_config::{Config, RouteKind};
use flowgate_cost::Estimate;
use flowgate_telemetry::{RequestRecord, Telemetry};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, Version};

use crate::admission::{Counts, Shared};
use crate::auth::Auth;
use crate::body::{InFlightGuard, ProxyBody, ReqBody};
use crate::cache_metrics::CacheCollector;
use crate::caching::{self, Fill, Form, Plan, Tee};
use crate::error::ProxyError;
use crate::forward::Forwarder;
use crate::headers::{self, RequestIds};
use crate::instances::Instances;
use crate::outcome::Outcome;
use crate::queues::{Permits, Queues, Scope};
use crate::router::RouteEntry;
use crate::runtime::{Lasting, Runtime};
use crate::warming::Warming;
use crate::watch::Watched;
use flowgate_http::pool::ResponseBody;
use flowgate_http::server::{ClientBody, Peer};

/// The gateway. Share it as `Arc<Gateway>`.
#[derive(Debug)]
pub struct Gateway {
    /// Shared with the balancer's metrics collector.
    runtime: Arc<ArcSwap<Runtime>>,
    /// Data-plane workers, fixed at start (idle connections are kept per worker).
    workers: usize,
    telemetry: Telemetry,
    clock: SharedClock,
    ids: Arc<RequestIds>,
    draining: AtomicBool,
    reloads: AtomicU64,
    last_reload_error: Mutex<Option<String>>,
    started: Instant,
    /// The response cache, when `[cache] enabled` at start (its size is fixed then).
    cache: Option<Arc<Cache>>,
    /// Warming jobs and the recent requests top-N warming replays.
    warming: Warming,
    /// The counts of the rate limits.
    counts: Arc<Counts>,
    /// The concurrency limiters (of keys, routes and pools).
    queues: Arc<Queues>,
    /// The key store and the keys made through the admin API.
    auth: Auth,
    /// Endpoints registered through the admin API.
    instances: Instances,
    /// Held while a new runtime is built and swapped in (reloads and registrations).
    rebuilding: Mutex<()>,
}

static ATTEMPTS: http::HeaderName = http::HeaderName::from_static("x-flowgate-attempts");

impl Gateway {
    /// A gateway serving `config`; fails when the cache's disk tier cannot be opened.
    pub fn new(config: Config, telemetry: Telemetry) -> std::io::Result<Arc<Self>> {
        let clock = telemetry.clock().clone();
        let workers = flowgate_http::worker::count(config.server.workers);
        let c = &config.cache;
        let cache = if c.enabled {
            let settings = CacheSettings {
                memory_bytes: c.memory_bytes,
                max_entry_bytes: c.max_entry_bytes,
                coalesce_wait: c.coalesce_wait,
                redis: c.redis.as_ref().map(|r| RedisSettings {
                    link: link_settings(&r.link),
                    prefix: r.link.prefix.clone(),
                    compress_above: c.compress_above,
                    lock_wait: r.lock_wait,
                }),
                refresh_ahead: c.refresh_ahead,
                popular_hits: c.popular_hits,
                disk: c.disk.as_ref().map(|d| DiskSettings {
                    path: d.path.clone(),
                    max_bytes: d.max_bytes,
                    purge_interval: d.purge_interval,
                    compress_above: c.compress_above,
                }),
            };
            let cache = Arc::new(
                Cache::open(settings, clock.clone())
                    .map_err(|e| std::io::Error::other(format!("cache: {e}")))?,
            );
            telemetry.register_collector(Box::new(CacheCollector(cache.clone())));
            Some(cache)
        } else {
            None
        };
        let keep = if cache.is_some() { c.warm.keep } else { 0 };
        let shared = match &config.shared_limits {
            Some(l) => {
                let link = flowgate_redis::Link::open(link_settings(&l.link), clock.clone())
                    .map_err(|e| std::io::Error::other(format!("shared_limits: {e}")))?;
                let limiter = flowgate_admission::SharedLimiter::new(link, &l.link.prefix);
                Some(Shared::new(limiter, l.fallback_share))
            }
            None => None,
        };
        let counts = Arc::new(Counts::new(clock.clone(), shared));
        let queues = Arc::new(Queues::default());
        telemetry.register_collector(Box::new(crate::admission_metrics::AdmissionCollector {
            counts: counts.clone(),
            queues: queues.clone(),
        }));
        let auth = Auth::open(config.auth.store.as_deref(), counts.clone(), queues.clone())
            .map_err(|e| std::io::Error::other(format!("auth: {e}")))?;
        let runtime = Runtime::build(
            config,
            None,
            &Lasting {
                shards: workers,
                clock: &clock,
                metrics: telemetry.metrics(),
                counts: &counts,
                queues: &queues,
                instances: &Instances::default(),
            },
        );
        let runtime = Arc::new(ArcSwap::from_pointee(runtime));
        telemetry.register_collector(Box::new(crate::balance_metrics::BalanceCollector(
            runtime.clone(),
        )));
        let seed = clock.unix_millis() ^ u64::from(std::process::id()).rotate_left(32);

        Ok(Arc::new(Gateway {
            runtime,
            workers,
            started: clock.now(),
            clock,
            telemetry,
            ids: Arc::new(RequestIds::new(seed)),
            draining: AtomicBool::new(false),
            reloads: AtomicU64::new(0),
            last_reload_error: Mutex::new(None),
            cache,
            warming: Warming::new(keep),
            counts,
            queues,
            auth,
            instances: Instances::default(),
            rebuilding: Mutex::new(()),
        }))
    }

    pub(crate) fn request_ids(&self) -> &RequestIds {
        &self.ids
    }

    /// The response cache, if enabled.
    pub fn cache(&self) -> Option<&Arc<Cache>> {
        self.cache.as_ref()
    }

    /// Forgets rate-limit counts that are back to their full burst; how many are kept.
    pub fn sweep_rate_limits(&self) -> usize {
        self.queues.sweep();
        self.counts.sweep()
    }

    /// Forgets the idle sessions of every pool with `affinity`; how many are kept.
    pub fn sweep_sessions(&self) -> usize {
        let rt = self.runtime();
        rt.upstreams
            .iter()
            .filter_map(|u| Some(u.sessions.as_ref()?.sweep(u.balancer().now_ns())))
            .sum()
    }

    /// With `[shared_limits]`: whether rate limits are counted locally now (Redis does not
    /// answer), and how many checks were.
    pub fn rate_limit_fallback(&self) -> Option<(bool, u64)> {
        self.counts.shared().map(Shared::fallback)
    }

    pub(crate) fn counts(&self) -> &Counts {
        &self.counts
    }

    pub(crate) fn queues(&self) -> &Queues {
        &self.queues
    }

    pub(crate) fn auth(&self) -> &Auth {
        &self.auth
    }

    pub(crate) fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The wall-clock time, in Unix milliseconds (from the gateway's clock).
    pub(crate) fn unix_millis(&self) -> u64 {
        self.clock.unix_millis()
    }

    pub(crate) fn warming(&self) -> &Warming {
        &self.warming
    }

    /// Data-plane worker threads (fixed at start).
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The runtime serving new requests.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Time since the gateway started.
    pub fn uptime(&self) -> Duration {
        self.clock.now().saturating_duration_since(self.started)
    }

    /// Whether the gateway is shutting down (then `/ready` answers 503).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub(crate) fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Successful reloads so far, and the error of the last failed one (cleared by success).
    pub fn reload_status(&self) -> (u64, Option<String>) {
        let err = self.last_reload_error.lock().ok().and_then(|g| g.clone());
        (self.reloads.load(Ordering::Relaxed), err)
    }

    /// Swaps in a new config. Requests in flight finish on the old one; pools whose settings
    /// did not change keep their connections.
    pub fn apply(&self, config: Config) {
        let old = self.runtime.load_full();
        let (was, now) = (&old.config.server, &config.server);
        if (was.listen, was.admin_listen, was.workers)
            != (now.listen, now.admin_listen, now.workers)
        {
            tracing::warn!(
                "server.listen, server.admin_listen and server.workers changed in the new \
                 config; they take effect after a restart"
            );
        }
        let (was, now) = (&old.config.cache, &config.cache);
        if old.config.auth.store != config.auth.store {
            tracing::warn!("auth.store changed in the new config; it takes effect after a restart");
        }
        let tiers = |c: &flowgate_config::CacheConfig| {
            (c.enabled, c.memory_bytes, c.disk.clone(), c.redis.clone())
        };
        if old.config.shared_limits != config.shared_limits {
            tracing::warn!(
                "shared_limits changed in the new config; it takes effect after a restart"
            );
        }
        if tiers(was) != tiers(now) {
            tracing::warn!(
                "cache.enabled, cache.memory, cache.disk and cache.redis changed in the new \
                 config; they take effect after a restart"
            );
        }
        drop(old);
        self.swap_in(config);
        self.reloads.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut g) = self.last_reload_error.lock() {
            *g = None;
        }
        self.count_reload("ok");
    }

    /// Builds the runtime for `config` (with the registered endpoints) and swaps it in;
    /// pools whose settings did not change keep their state.
    fn swap_in(&self, config: Config) {
        let _one_at_a_time = self.rebuilding.lock();
        let old = self.runtime.load_full();
        let new = Runtime::build(
            config,
            Some(&old),
            &Lasting {
                shards: self.workers,
                clock: &self.clock,
                metrics: self.telemetry.metrics(),
                counts: &self.counts,
                queues: &self.queues,
                instances: &self.instances,
            },
        );
        self.runtime.store(Arc::new(new));
    }

    pub(crate) fn instances(&self) -> &Instances {
        &self.instances
    }

    /// Rebuilds the runtime of the running config after the registered endpoints changed.
    pub(crate) fn instances_changed(&self) {
        let config = (*self.runtime().config).clone();
        self.swap_in(config);
    }

    /// Records a reload that failed; the running config stays.
    pub fn reject(&self, why: String) {
        tracing::error!(error = %why, "config reload failed; keeping the running config");
        if let Ok(mut g) = self.last_reload_error.lock() {
            *g = Some(why);
        }
        self.count_reload("error");
    }

    fn count_reload(&self, result: &str) {
        self.telemetry.metrics().count_reload(result);
    }

    /// Serves one request end to end. Never fails: errors become OpenAI-shaped responses.
    pub async fn handle(
        self: &Arc<Self>,
        req: Request<ClientBody>,
        peer: &Peer,
    ) -> Response<ProxyBody> {
        let start = self.clock.now();
        let _serving = flowgate_http::worker::Serving::enter();
        let guard = InFlightGuard::new(&self.telemetry.metrics().in_flight);
        let rt = self.runtime.load_full();
        let request_id = self.ids.take_or_make(req.headers());
        let mut out = Outcome::default();
        let (mut resp, error) = match self.proxy(&rt, req, peer, &request_id, &mut out).await {
            Ok(r) => (r, None),
            Err(e) => {
                if e.status().is_server_error() {
                    tracing::warn!(request_id = ?request_id, error = %e, "request failed");
                }
                (e.into_response(), Some(e.kind()))
            }
        };
        let h = resp.headers_mut();
        h.insert(headers::REQUEST_ID.clone(), request_id);
        if error.is_some()
            && let Some(v) = out
                .endpoint
                .as_deref()
                .and_then(|e| HeaderValue::from_str(e).ok())
        {
            h.insert(headers::UPSTREAM.clone(), v);
        }
        if let Some(c) = out.cache {
            h.insert(caching::CACHE_STATUS.clone(), c.header());
        }
        if let Some(r) = out.rate {
            r.write(h);
        }
        match out.attempts {
            0 => {}
            1 => _ = h.insert(ATTEMPTS.clone(), HeaderValue::from_static("1")),
            n => _ = h.insert(ATTEMPTS.clone(), HeaderValue::from(n)),
        }
        self.telemetry.record(RequestRecord {
            route: out.route.unwrap_or_else(|| Arc::from("-")),
            pool: out.pool,
            endpoint: out.endpoint,
            status: resp.status().as_u16(),
            duration: self.clock.now().saturating_duration_since(start),
            upstream_duration: out.upstream_duration,
            error,
        });
        resp.map(|b| b.with_guard(guard))
    }

    async fn proxy(
        self: &Arc<Self>,
        rt: &Runtime,
        req: Request<ClientBody>,
        peer: &Peer,
        request_id: &HeaderValue,
        out: &mut Outcome,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let limits = rt.config.limits;
        // HTTP/1.1 heads were held to these limits by the listener as they were read.
        let h2 = req.version() == Version::HTTP_2;
        if h2 {
            check_head(&req, limits.max_header_bytes, limits.max_headers)?;
        }
        let route = rt
            .router
            .route(req.method(), req.uri().path(), req.headers())?;
        out.route = Some(route.name.clone());
        out.pool = Some(route.upstream.name.clone());

        let (mut parts, incoming) = req.into_parts();
        let auth = &rt.config.auth;
        let caller = if auth.enabled {
            let caller = self.auth.authenticate(auth, &rt.keys, &parts.headers)?;
            caller.check_route(&route.name)?;
            // The client's key stops here: the upstream gets the pool's own credential.
            parts.headers.remove(&auth.header);
            Some(caller)
        } else {
            None
        };
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limits.max_body_bytes) {
            return Err(ProxyError::BodyTooLarge {
                limit: limits.max_body_bytes,
            });
        }
        let max = limits.max_body_bytes;
        // openai bodies are always read whole and checked to be JSON (by the cache's plan
        // when it reads them anyway); http bodies only when the cache needs them for the
        // key, else they stream through.
        let whole = match route.cfg.kind {
            RouteKind::OpenAi => {
                let body = crate::body::read_whole(incoming, max).await?;
                if caching::needs_check(self.cache.is_some(), &route.cfg) {
                    crate::openai::check_json(&body)?;
                }
                Ok(body)
            }
            RouteKind::Http if self.http_cached(route, &parts.method, out) => {
                Ok(crate::body::read_whole(incoming, max).await?)
            }
            RouteKind::Http => Err(incoming),
        };
        let body = whole.as_ref().ok();
        // The model and the token estimate are read at most once, by the first stage that
        // needs them.
        let model = LazyLock::new(|| body.and_then(|b| caching::model_of(b)));
        let estimate =
            LazyLock::new(|| body.map_or(Ok(Estimate::default()), |b| crate::openai::estimate(b)));
        if let Some(c) = &caller {
            c.check_model(|| model.as_deref())?;
        }
        // The prompt-size guard, before anything is counted.
        if let Some(limit) = route.cfg.max_prompt_tokens {
            let e = (*estimate).clone()?;
            if e.prompt > limit {
                return Err(ProxyError::PromptTooLarge {
                    estimated: e.prompt,
                    limit,
                });
            }
        }
        // Rate limits, before the cache: a limited client is limited for hits too (a hit's
        // reserved tokens are given back: it cost the upstream nothing).
        let mut tokens = None;
        let key_limits = caller.as_ref().map_or(&[][..], |c| &c.limits[..]);
        if !rt.rate_limits.is_empty() || !key_limits.is_empty() {
            let model = &model;
            let admitted = crate::admission::admit(
                rt.rate_limits.iter().chain(key_limits),
                route,
                caller.as_ref().map(|c| &c.key),
                &parts.headers,
                peer,
                move || model.as_deref(),
                || (*estimate).clone(),
            )
            .await?;
            out.rate = Some(admitted.state);
            tokens = admitted.tokens;
        }
        // They borrow the body, which goes on from here.
        drop((model, estimate));
        let mut tee = None;
        let body = match whole {
            Ok(body) => {
                if let Some(cache) = &self.cache {
                    match self.consult(cache, rt, route, &parts, &body, out).await? {
                        Consulted::Answer(resp) => return Ok(*resp),
                        Consulted::Upstream(leader) => tee = leader.map(|f| *f),
                    }
                }
                ReqBody::full(body)
            }
            // No body (a GET, say): nothing to stream, and a retry can send it again.
            Err(incoming) if http_body::Body::is_end_stream(&incoming) => ReqBody::Full(None),
            Err(incoming) => ReqBody::Stream {
                inner: incoming,
                seen: 0,
                limit: max,
            },
        };

        // The listener leaves hop-by-hop fields out of HTTP/1.1 heads as it reads them.
        if h2 {
            headers::strip_hop_by_hop(&mut parts.headers);
        }

        // Concurrency limits: only requests going upstream take a permit.
        let key_name = caller.as_ref().map_or("", |c| c.key.name.as_str());
        let pool = &route.upstream;
        let mut permits = Permits::enter(
            [
                (
                    Scope::Key,
                    key_name,
                    caller.as_ref().and_then(|c| c.concurrency.as_ref()),
                ),
                (Scope::Route, &route.name, route.concurrency.as_ref()),
                (Scope::Pool, &pool.name, route.pool_concurrency.as_ref()),
            ],
            || crate::queues::priority(&parts.headers, caller.as_ref().map(|c| &c.key)),
            &self.clock,
        )
        .await?;
        let (head, lease, endpoint) = Forwarder::new(&self.clock)
            .forward(route, &parts, body, peer, request_id, out)
            .await?;
        // A fallback's answer (perhaps another model's) is not stored under this request.
        if out.pool.as_ref() != Some(&pool.name) {
            tee = None;
        }

        let mut resp = Response::new(ProxyBody::from(Bytes::new()));
        *resp.status_mut() = head.status;
        *resp.headers_mut() = head.headers;
        // The upstream client leaves hop-by-hop fields out of the head (`fields::collect`).
        resp.headers_mut()
            .insert(headers::UPSTREAM.clone(), endpoint.name_header.clone());
        let meter = tokens.map(|t| Box::new(t.meter(resp.status(), resp.headers())));
        if head.decoder.is_done() {
            lease.release(head.keep_alive);
            if let Some(p) = &mut permits {
                p.first_byte();
            }
            return Ok(resp.map(|b| b.with_meter(meter)));
        }
        let body = ResponseBody::new(lease, head.decoder, head.keep_alive, pool.cfg.read_timeout);
        let tee = tee.and_then(|fill| Tee::start(fill, resp.status(), resp.headers()));
        let share = tee.as_ref().and_then(|t| t.share());
        let body = Watched::new(Watched::new(body, tee), permits.map(Box::new));
        *resp.body_mut() = match share.and_then(|s| s.subscribe().map(|own| (s, own))) {
            Some((share, own)) => {
                tokio::spawn(caching::pump(body, share));
                ProxyBody::shared(own)
            }
            None => ProxyBody::upstream(body),
        }
        .with_meter(meter);
        Ok(resp)
    }

    /// Whether the cache needs an http request's body: the cache is on and the route caches
    /// requests of this method. A method the route's mode leaves out is a bypass.
    fn http_cached(&self, route: &RouteEntry, method: &Method, out: &mut Outcome) -> bool {
        let Some(cache) = &self.cache else {
            return false;
        };
        match caching::http_eligible(&route.cfg, method) {
            None => false,
            Some(true) => true,
            Some(false) => {
                cache.count_bypass();
                out.cache = Some(caching::Status::Bypass);
                false
            }
        }
    }

    /// Asks the cache about a request: its answer, or the flight to lead upstream.
    async fn consult(
        self: &Arc<Self>,
        cache: &Arc<Cache>,
        rt: &Runtime,
        route: &RouteEntry,
        parts: &http::request::Parts,
        body: &Bytes,
        out: &mut Outcome,
    ) -> Result<Consulted, ProxyError> {
        let planned = match caching::plan(route, &rt.config, parts, body)? {
            Plan::Off => return Ok(Consulted::Upstream(None)),
            Plan::Bypass => {
                cache.count_bypass();
                out.cache = Some(caching::Status::Bypass);
                return Ok(Consulted::Upstream(None));
            }
            Plan::Use(p) => p,
        };
        let form = planned.form;
        let hit = match cache.lookup(&planned.key, &planned.query()) {
            Lookup::Hit(hit) => {
                self.warming.recent.hit(&planned.key);
                hit
            }
            Lookup::Coalesced(follower) => {
                self.warming.recent.hit(&planned.key);
                let waited = follower
                    .wait(cache.settings().coalesce_wait, form.flavor())
                    .await;
                let resp = match waited {
                    Some(Waited::Entry(entry)) => caching::respond(&entry, Duration::ZERO, form),
                    Some(Waited::Stream { fields, stream }) => {
                        Some(caching::respond_shared(&fields, stream))
                    }
                    None => None,
                };
                return match resp {
                    Some(resp) => {
                        out.cache = Some(caching::Status::Coalesced);
                        Ok(Consulted::Answer(Box::new(resp)))
                    }
                    // The identical request failed or took too long: go upstream alone.
                    None => {
                        out.cache = Some(caching::Status::Miss);
                        Ok(Consulted::Upstream(None))
                    }
                };
            }
            Lookup::Miss(leader) => {
                self.warming.recent.miss(&planned.key, parts, body);
                // A streaming client is not made to wait for another replica's whole
                // answer: it goes upstream (and streams) at once.
                let wait_for_peers = matches!(form, caching::Form::Json);
                match cache
                    .lookup_lower(leader, &planned.query(), wait_for_peers)
                    .await
                {
                    Lower::Hit(hit) => hit,
                    // A HEAD request's answer has no body to store: it goes upstream
                    // without leading (GETs waiting on it go upstream themselves).
                    Lower::Miss(_) if parts.method == Method::HEAD => {
                        out.cache = Some(caching::Status::Miss);
                        return Ok(Consulted::Upstream(None));
                    }
                    Lower::Miss(leader) => {
                        out.cache = Some(caching::Status::Miss);
                        let life = planned.life;
                        let fill = planned.fill(cache, leader, life);
                        return Ok(Consulted::Upstream(Some(Box::new(fill))));
                    }
                }
            }
        };
        if let Some(leader) = hit.refresh {
            let life = caching::refreshed_life(&hit.entry, &planned, cache.settings());
            let fill = planned.fill(cache, leader, life);
            crate::refresh::spawn(
                self.clock.clone(),
                self.ids.clone(),
                route.clone(),
                parts,
                body.clone(),
                fill,
            );
        }
        let status = if hit.stale {
            caching::Status::Stale
        } else {
            caching::Status::Hit(hit.tier)
        };
        Ok(Self::answer(cache, &hit.entry, status, hit.age, form, out))
    }

    /// The answer for an entry a tier had.
    fn answer(
        cache: &Cache,
        entry: &Entry,
        status: caching::Status,
        age: Duration,
        form: Form,
        out: &mut Outcome,
    ) -> Consulted {
        match caching::respond(entry, age, form) {
            Some(resp) => {
                out.cache = Some(status);
                Consulted::Answer(Box::new(resp))
            }
            // Stored in a form this client cannot be given: ask upstream.
            None => {
                cache.count_bypass();
                out.cache = Some(caching::Status::Bypass);
                Consulted::Upstream(None)
            }
        }
    }
}

/// What the cache said about a request.
enum Consulted {
    /// Answered from the cache (boxed: the common path is `Upstream`).
    Answer(Box<Response<ProxyBody>>),
    /// Go upstream; lead the flight (and fill the cache) when given one (boxed: a miss
    /// goes upstream anyway, a hit should not carry its size).
    Upstream(Option<Box<Fill>>),
}

/// Rejects request heads over the configured size or header count (431, as JSON).
fn check_head(
    req: &Request<ClientBody>,
    max_bytes: usize,
    max_headers: usize,
) -> Result<(), ProxyError> {
    let h = req.headers();
    if h.len() > max_headers {
        return Err(ProxyError::TooManyHeaders { limit: max_headers });
    }
    let size = req.method().as_str().len()
        + req.uri().path_and_query().map_or(1, |p| p.as_str().len())
        + 12
        + h.iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    if size > max_bytes {
        return Err(ProxyError::HeadersTooLarge { limit: max_bytes });
    }
    Ok(())
}

/// How to reach a Redis deployment, from its config.
fn link_settings(c: &flowgate_config::RedisLinkConfig) -> flowgate_redis::LinkSettings {
    flowgate_redis::LinkSettings {
        urls: c.urls.clone(),
        cluster: c.cluster,
        timeout: c.timeout,
        breaker_failures: c.breaker_failures,
        breaker_cooldown: c.breaker_cooldown,
    }
}
