//! Upstream pools: the endpoints that serve a route, chosen by the pool's balancer
//! (`flowgate-balance`: its `strategy`, the latency of each endpoint's answers, and the
//! requests in flight on each, counted by its connections in use).

mod endpoint;
mod probe;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use flowgate_balance::{
    Balancer, Latencies, Outcome, OutlierSettings, Place, RetryBudget, Sessions, Strategy,
};

use flowgate_clock::SharedClock;
use flowgate_config::PoolConfig;
use flowgate_telemetry::Metrics;
use smallvec::SmallVec;

pub use endpoint::Endpoint;

/// A named pool of endpoints.
#[derive(Debug)]
pub struct Upstream {
    pub cfg: Arc<PoolConfig>,
    pub name: Arc<str>,
    endpoints: Vec<Arc<Endpoint>>,
    balancer: Balancer,
    /// Retries and hedges may be at most a share of the requests.
    pub budget: RetryBudget,
    /// Recent answer times, for hedging at a percentile.
    pub latencies: Latencies,
    pub counts: ResilienceCounts,
    /// The session table, with `affinity`.
    pub sessions: Option<Sessions>,
    /// A Bedrock pool's AWS credentials, which sign its requests.
    pub(crate) aws: Option<Arc<crate::dialect::aws::Signer>>,
}

/// What the pool did about failures, for the metrics.
#[derive(Debug, Default)]
pub struct ResilienceCounts {
    pub retries: AtomicU64,
    pub hedges: AtomicU64,
    /// Hedges whose answer was taken.
    pub hedges_won: AtomicU64,
    /// Requests that fell back to this pool.
    pub fallbacks: AtomicU64,
}

impl ResilienceCounts {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// How long an endpoint's latency estimate takes to forget (to 1/e) without new samples.
const LATENCY_DECAY: Duration = Duration::from_secs(10);
/// The pool's latency percentiles cover the last one to two of these.
const LATENCY_PERIOD: Duration = Duration::from_secs(30);

impl Upstream {
    /// A pool whose endpoints keep `shards` idle stacks (one per data-plane worker); what
    /// is wrong with its TLS material when it cannot be used.
    pub fn new(
        cfg: Arc<PoolConfig>,
        shards: usize,
        clock: &SharedClock,
        metrics: &Metrics,
    ) -> Result<Arc<Self>, String> {
        let tls = crate::tls::client_config(&cfg).map_err(|(k, m)| format!("{k}: {m}"))?;
        let aws = cfg
            .aws
            .as_ref()
            .map(|env| crate::dialect::aws::Signer::new(&cfg.name, env))
            .transpose()?;
        let endpoints = cfg
            .endpoints
            .iter()
            .map(|e| {
                Endpoint::new(
                    &cfg,
                    e.clone(),
                    tls.as_ref(),
                    shards,
                    clock.clone(),
                    metrics,
                )
            })
            .collect::<Result<_, _>>()?;
        let weights: Vec<u32> = cfg.endpoints.iter().map(|e| e.weight).collect();
        let priorities: Vec<u32> = cfg.endpoints.iter().map(|e| e.priority).collect();
        let regions: Vec<Option<String>> = cfg.endpoints.iter().map(|e| e.region.clone()).collect();
        let levels = flowgate_balance::Levels::new(
            &priorities,
            &regions,
            f64::from(cfg.overprovisioning) / 100.0,
        );
        let pool = Arc::new(Upstream {
            name: Arc::from(cfg.name.as_str()),
            balancer: Balancer::new(cfg.strategy, &weights, LATENCY_DECAY, clock.clone())
                .with_outliers(OutlierSettings {
                    consecutive: cfg.outlier.consecutive_failures,
                    base: cfg.outlier.base_ejection,
                    max: cfg.outlier.max_ejection,
                    max_percent: cfg.outlier.max_ejected_percent,
                    failure_percent: cfg.outlier.failure_percent,
                    min_requests: cfg.outlier.failure_min_requests,
                    window: cfg.outlier.failure_window,
                    probes: cfg.outlier.half_open_probes,
                })
                .with_levels(levels),
            budget: RetryBudget::new(
                cfg.retries.budget_percent,
                cfg.retries.budget_min_per_second,
            ),
            latencies: Latencies::new(LATENCY_PERIOD),
            counts: ResilienceCounts::default(),
            aws,
            sessions: cfg
                .affinity
                .as_ref()
                .map(|a| Sessions::new(cfg.endpoints.len(), a.max_sessions, a.idle_timeout)),
            cfg,
            endpoints,
        });
        if let Some(hc) = &pool.cfg.health_check {
            probe::spawn(&pool, hc);
        }
        Ok(pool)
    }

    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    pub fn balancer(&self) -> &Balancer {
        &self.balancer
    }

    /// Endpoints not ejected by their breaker nor down by their health checks, now.
    pub fn usable_endpoints(&self) -> usize {
        let b = &self.balancer;
        let now = b.now_ns();
        b.health().iter().filter(|h| !h.is_out(now)).count()
    }

    /// The attribute `consistent_hash` keys a request by (its `hash_header`).
    pub fn hash_key<'h>(&self, headers: &'h http::HeaderMap) -> Option<&'h [u8]> {
        (self.cfg.strategy == Strategy::ConsistentHash)
            .then(|| headers.get(&self.cfg.hash_header))
            .flatten()
            .map(http::HeaderValue::as_bytes)
    }

    fn load(&self, i: usize) -> u32 {
        self.endpoints
            .get(i)
            .map_or(0, |e| u32::try_from(e.active()).unwrap_or(u32::MAX))
    }

    /// Whether endpoint `i` carries `tag`.
    fn tagged(&self, i: usize, tag: &str) -> bool {
        self.endpoints
            .get(i)
            .is_some_and(|e| e.cfg.tags.iter().any(|t| t == tag))
    }

    /// The session id a request carries, with `affinity`.
    pub fn session_id<'h>(&self, headers: &'h http::HeaderMap) -> Option<&'h [u8]> {
        let a = self.cfg.affinity.as_ref()?;
        headers
            .get(&a.header)
            .map(http::HeaderValue::as_bytes)
            .filter(|v| !v.is_empty())
    }

    /// The region a request comes from: its `region_header`, else the gateway's own.
    pub fn region<'h>(&'h self, headers: &'h http::HeaderMap) -> Option<&'h str> {
        self.cfg
            .region_header
            .as_ref()
            .and_then(|h| headers.get(h))
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .or(self.cfg.local_region.as_deref())
    }

    /// The endpoint for the next request (`key`: see [`Upstream::hash_key`]; `tag`: the
    /// request's tag, see `tag_by`; `session`: see [`Upstream::session_id`]; `region`: see
    /// [`Upstream::region`]), or `None` when none may take it.
    pub fn pick(
        &self,
        key: Option<&[u8]>,
        tag: Option<&str>,
        session: Option<&[u8]>,
        region: Option<&str>,
    ) -> Option<&Arc<Endpoint>> {
        let first = Some(region);
        let (Some(id), Some(table)) = (session, &self.sessions) else {
            return self.choose(key, tag, &|_| true, first);
        };
        let now = self.balancer.now_ns();
        match table.place(id, now, |i| self.balancer.admits(i)) {
            Place::Bound(i) if self.balancer.claim(i) => return self.endpoints.get(i),
            Place::Bound(_) | Place::Moving(_) | Place::New => {}
        }
        // A new place: an endpoint under its session cap, else any.
        let (ep, over_cap) = match self.choose(key, tag, &|i| !table.is_full(i), first) {
            Some(ep) => (ep, false),
            None => (self.choose(key, tag, &|_| true, first)?, true),
        };
        if let Some(i) = self.index_of(ep) {
            table.bind(id, i, now, over_cap);
        }
        Some(ep)
    }

    /// Where [`Upstream::pick`] would send a request now, and why, changing nothing (no
    /// turn taken, no session bound, no trial counted): for the admin API's
    /// simulate-request.
    pub fn preview(
        &self,
        key: Option<&[u8]>,
        tag: Option<&str>,
        session: Option<&[u8]>,
        region: Option<&str>,
    ) -> (Option<&Arc<Endpoint>>, String) {
        let now = self.balancer.now_ns();
        if let (Some(id), Some(table)) = (session, &self.sessions) {
            match table.peek(id, now) {
                Some(i) if self.balancer.admits(i) => {
                    return (
                        self.endpoints.get(i),
                        format!("session {:?} is bound to it", String::from_utf8_lossy(id)),
                    );
                }
                Some(_) => {
                    return (
                        self.preview_among(key, tag, region),
                        format!(
                            "session {:?} is bound to an endpoint that cannot take it now: it \
                             would move here",
                            String::from_utf8_lossy(id)
                        ),
                    );
                }
                None => {}
            }
        }
        let strategy = self.balancer.strategy();
        let mut why = match strategy {
            Strategy::RoundRobin => "round_robin: the next in turn".to_string(),
            Strategy::Weighted => "weighted: the next in the smooth weighted cycle".into(),
            Strategy::LeastLoaded => "least_loaded: the fewest requests in flight".into(),
            Strategy::P2cEwma => "p2c_ewma: of two drawn at random, the lower peak-EWMA \
                                  latency × √(in flight + 1) / weight"
                .into(),
            Strategy::ConsistentHash if key.is_some() => format!(
                "consistent_hash: {} hashes to it on the ring (with bounded load)",
                self.cfg.hash_header
            ),
            Strategy::ConsistentHash => {
                format!(
                    "consistent_hash without {}: as p2c_ewma",
                    self.cfg.hash_header
                )
            }
            Strategy::Random => "random".into(),
        };
        if let Some(t) = tag {
            why.push_str(&format!(
                "; among the endpoints tagged {t:?} when one can take it"
            ));
        }
        if let Some(r) = region {
            why.push_str(&format!(
                "; priority levels and region {r:?} first while enough of them are usable"
            ));
        }
        (self.preview_among(key, tag, region), why)
    }

    fn preview_among(
        &self,
        key: Option<&[u8]>,
        tag: Option<&str>,
        region: Option<&str>,
    ) -> Option<&Arc<Endpoint>> {
        let load = |i| self.load(i);
        self.by_tag(tag, |ok| self.balancer.preview(region, key, ok, load))
    }

    /// An endpoint for another attempt of the same request: one it has not tried when
    /// there is one (`tried`: the endpoints it went to).
    pub fn pick_other(
        &self,
        tried: &[Arc<Endpoint>],
        key: Option<&[u8]>,
        tag: Option<&str>,
    ) -> Option<&Arc<Endpoint>> {
        let not: SmallVec<[usize; 4]> = tried.iter().filter_map(|e| self.index_of(e)).collect();
        self.choose(key, tag, &|i| !not.contains(&i), None)
    }

    /// Among the endpoints `allowed`, by tag (see [`Upstream::by_tag`]); `first`: a
    /// request's first attempt, from this region (another attempt takes no turn).
    fn choose(
        &self,
        key: Option<&[u8]>,
        tag: Option<&str>,
        allowed: &dyn Fn(usize) -> bool,
        first: Option<Option<&str>>,
    ) -> Option<&Arc<Endpoint>> {
        let load = |i| self.load(i);
        let pick = |usable: &dyn Fn(usize) -> bool| match first {
            Some(region) => self
                .balancer
                .pick_in(region, key, |i| allowed(i) && usable(i), load),
            None => self
                .balancer
                .pick_again(key, |i| allowed(i) && usable(i), load),
        };
        self.by_tag(tag, pick)
    }

    /// `pick` among the endpoints carrying `tag` (all when there is none), then, when none
    /// of those can take the request and the pool allows it, among the others.
    fn by_tag(
        &self,
        tag: Option<&str>,
        pick: impl Fn(&dyn Fn(usize) -> bool) -> Option<usize>,
    ) -> Option<&Arc<Endpoint>> {
        let i = match tag {
            None => pick(&|_| true),
            Some(t) => pick(&|i| self.tagged(i, t)).or_else(|| {
                self.cfg
                    .tag_fallback
                    .then(|| pick(&|i| !self.tagged(i, t)))
                    .flatten()
            }),
        }?;
        self.endpoints.get(i)
    }

    fn index_of(&self, ep: &Endpoint) -> Option<usize> {
        self.endpoints.iter().position(|e| std::ptr::eq(&**e, ep))
    }

    /// How a request to `ep` went (a failure may take it out of rotation), and how long
    /// it took to answer when it did (to the response head: for a stream, its start; a
    /// connect failure is charged the pool's connect timeout).
    pub fn report(&self, ep: &Endpoint, latency: Option<Duration>, outcome: Outcome) {
        let Some(i) = self.index_of(ep) else { return };
        let now = self.balancer.now_ns();
        if let Some(l) = latency
            && outcome == Outcome::Success
        {
            self.latencies.record(now, l);
        }
        if self.balancer.report_at(now, i, latency, outcome) {
            tracing::warn!(pool = %self.name, endpoint = %ep.name, ?outcome, "endpoint ejected");
        }
    }

    /// A request to `ep` was abandoned unanswered after `d` (a hedge won): a latency sample
    /// of at least that (a slower estimate takes it at once; a faster one keeps its own).
    pub fn took_at_least(&self, ep: &Endpoint, d: Duration) {
        if let Some(i) = self.index_of(ep)
            && let Some(n) = self.balancer.nodes().get(i)
            && n.latency(self.balancer.now_ns()) < d
        {
            self.balancer.observe(i, d);
        }
    }

    /// The endpoint named `name`, if the pool has it.
    pub fn endpoint(&self, name: &str) -> Option<&Arc<Endpoint>> {
        self.endpoints.iter().find(|e| *e.name == *name)
    }
}
