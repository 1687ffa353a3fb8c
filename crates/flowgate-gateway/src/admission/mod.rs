//! Rate limits on the request path, after routing and before the cache.
//!
//! Every `[[rate_limits]]` entry that applies to the route counts the request under its
//! scope's value (the client address, the route, the model, a header's value, or one count
//! for all); the request must pass all of them. A request limit counts one; a token limit
//! reserves the request's estimate (prompt + the completion it allows) and is settled when
//! the answer ends: with the `usage` the upstream reports, else with the estimated prompt
//! and the answer's text, nothing for an error or a cache hit. A refusal is a 429 with
//! `Retry-After`; the limits that had already counted the request give it back. Every
//! response of a limited route carries OpenAI's `x-ratelimit-{limit,remaining,reset}-requests`
//! and `-tokens` fields, each from the limit of its kind with the least left.
//!
//! The counts (one GCRA timestamp per limit and value, a `flowgate_admission::LocalLimiter`
//! per limit) live in the gateway's [`Counts`], not in the runtime: a reload that keeps a
//! limit's name keeps its counts. A request of a value seen before allocates nothing to be
//! counted: the value is looked up by reference.
//!
//! With `[shared_limits]`, every replica counts in Redis (`flowgate_admission::SharedLimiter`)
//! instead; when Redis does not answer within its deadline (or its breaker is open), the
//! request is counted locally against the replica's `fallback_share` of the limit, and
//! counted as a fallback; the first request Redis answers again makes the limits shared
//! again. Both changes of state are logged.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowgate_admission::{Decision, LocalLimiter, Quota, SharedLimiter};
use flowgate_clock::SharedClock;
use flowgate_config::{Config, KeyConfig, LimitScope, LimitUnit, Rate, RouteKind};
use flowgate_cost::Estimate;
use http::header::{HeaderMap, HeaderValue};

mod rate_state;
pub mod refusal;

pub use rate_state::{RateState, Tally};
pub use refusal::Refusal;

use crate::error::ProxyError;
use crate::router::RouteEntry;
use flowgate_http::server::Peer;

/// Rate-limit counts kept in Redis for every replica, and the state of the local fallback.
#[derive(Debug)]
pub struct Shared {
    limiter: SharedLimiter,
    /// The share of each limit this replica enforces alone while Redis does not answer.
    share: f64,
    /// Whether the last check had to be answered locally.
    local: AtomicBool,
    /// Checks answered locally because Redis did not answer.
    fallbacks: AtomicU64,
}

impl Shared {
    pub fn new(limiter: SharedLimiter, share: f64) -> Self {
        Shared {
            limiter,
            share,
            local: AtomicBool::new(false),
            fallbacks: AtomicU64::new(0),
        }
    }

    fn answered(&self) {
        if self.local.swap(false, Ordering::Relaxed) {
            tracing::warn!("Redis answers again: rate limits are shared by every replica again");
        }
    }

    fn failed(&self) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        if !self.local.swap(true, Ordering::Relaxed) {
            tracing::error!(
                share = self.share,
                "Redis does not answer: rate limits are counted locally, this replica \
                 enforcing its share of each limit, until Redis answers again"
            );
        }
    }

    /// Whether limits are counted locally now, and how many checks were.
    pub fn fallback(&self) -> (bool, u64) {
        (
            self.local.load(Ordering::Relaxed),
            self.fallbacks.load(Ordering::Relaxed),
        )
    }
}

/// The counts of every limit, by the limit's name.
#[derive(Debug)]
pub struct Counts {
    clock: SharedClock,
    by_name: Mutex<HashMap<Arc<str>, Arc<Table>>>,
    shared: Option<Arc<Shared>>,
}

/// One limit's counts: its values' timestamps kept here, and how many requests it let
/// through and refused (kept across reloads, for the metrics).
#[derive(Debug)]
pub struct Table {
    pub local: LocalLimiter,
    /// The limit's scope, as configured when the table was made.
    pub scope: String,
    pub admitted: AtomicU64,
    pub limited: AtomicU64,
}

impl Counts {
    /// Counts kept here, or in Redis (`shared`) with local ones as the fallback.
    pub fn new(clock: SharedClock, shared: Option<Shared>) -> Self {
        Counts {
            clock,
            by_name: Mutex::new(HashMap::new()),
            shared: shared.map(Arc::new),
        }
    }

    pub fn shared(&self) -> Option<&Shared> {
        self.shared.as_deref()
    }

    /// The counts of the limit named `name` (new ones for a name not seen before).
    fn of(&self, name: &Arc<str>, scope: &LimitScope) -> Arc<Table> {
        let table = || {
            Arc::new(Table {
                local: LocalLimiter::new(self.clock.clone()),
                scope: scope.to_string(),
                admitted: AtomicU64::new(0),
                limited: AtomicU64::new(0),
            })
        };
        let Ok(mut m) = self.by_name.lock() else {
            // No code panics while holding the lock; were it to, the limit counts apart.
            return table();
        };
        m.entry(name.clone()).or_insert_with(table).clone()
    }

    /// Every limit's table, by name.
    pub fn tables(&self) -> Vec<(Arc<str>, Arc<Table>)> {
        let mut all: Vec<_> = self
            .by_name
            .lock()
            .map(|m| m.iter().map(|(n, t)| (n.clone(), t.clone())).collect())
            .unwrap_or_default();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The limits of one config.
    pub fn compile(&self, config: &Config) -> Vec<Limit> {
        config
            .rate_limits
            .iter()
            .filter_map(|l| self.limit(&l.name, l.scope.clone(), l.rate, l.routes.clone()))
            .collect()
    }

    /// The limits of a virtual key (its own: counted for it alone, on every route).
    pub fn of_key(&self, key: &KeyConfig) -> Vec<Limit> {
        key.limits
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let name = format!("key:{}#{i}", key.name);
                self.limit(&name, LimitScope::Key, *r, vec![])
            })
            .collect()
    }

    fn limit(
        &self,
        name: &str,
        scope: LimitScope,
        rate: Rate,
        routes: Vec<String>,
    ) -> Option<Limit> {
        // Validation guarantees a quota GCRA can keep.
        let quota = Quota::new(rate.amount, rate.per, rate.burst).ok()?;
        // While Redis does not answer, the replica's share: its rate over a longer period,
        // and its part of the burst (at least one).
        let local_quota = match &self.shared {
            Some(s) if s.share < 1.0 => {
                let burst = ((rate.burst as f64 * s.share).ceil() as u64).max(1);
                Quota::new(rate.amount, rate.per.div_f64(s.share), burst).unwrap_or(quota)
            }
            _ => quota,
        };
        let name: Arc<str> = Arc::from(name);
        Some(Limit {
            counter: Arc::new(Counter {
                table: self.of(&name, &scope),
                name,
                quota,
                local_quota,
                shared: self.shared.clone(),
            }),
            scope,
            rate,
            routes,
            amount: HeaderValue::from(rate.amount),
        })
    }

    /// Forgets values whose counts are back to their full burst, and the counts of limits
    /// no config or key has any more; how many values are kept.
    pub fn sweep(&self) -> usize {
        let Ok(mut m) = self.by_name.lock() else {
            return 0;
        };
        // Only this map holds the counts of a limit that is gone.
        m.retain(|_, c| Arc::strong_count(c) > 1);
        m.values().map(|t| t.local.sweep()).sum()
    }
}

/// A configured limit, ready to check.
#[derive(Debug)]
pub struct Limit {
    scope: LimitScope,
    rate: Rate,
    /// The routes it applies to (empty: all).
    routes: Vec<String>,
    counter: Arc<Counter>,
    /// `rate.amount`, as the `x-ratelimit-limit-*` field's value.
    amount: HeaderValue,
}

/// Where a limit counts: here, or in Redis with the counts here as the fallback.
#[derive(Debug)]
struct Counter {
    name: Arc<str>,
    quota: Quota,
    table: Arc<Table>,
    /// The quota of the local counts: the limit's, or the replica's share of it when the
    /// counts are shared.
    local_quota: Quota,
    shared: Option<Arc<Shared>>,
}

impl Counter {
    /// Counts `cost` units of `value`; the decision and whether Redis made it.
    async fn check(&self, value: &[u8], cost: u64) -> (Decision, bool) {
        let (d, redis) = match &self.shared {
            Some(s) => match s.limiter.check(&self.name, value, &self.quota, cost).await {
                Some(d) => {
                    s.answered();
                    (d, true)
                }
                None => {
                    s.failed();
                    (
                        self.table.local.check(value, &self.local_quota, cost),
                        false,
                    )
                }
            },
            None => (
                self.table.local.check(value, &self.local_quota, cost),
                false,
            ),
        };
        let n = match d {
            Decision::Admit { .. } => &self.table.admitted,
            Decision::Deny { .. } => &self.table.limited,
        };
        n.fetch_add(1, Ordering::Relaxed);
        (d, redis)
    }

    /// Corrects `reserved` units of `value` counted (in Redis when `in_redis`) to
    /// `actual`; Redis is told from a task of its own.
    fn settle(self: &Arc<Self>, value: &[u8], in_redis: bool, reserved: u64, actual: u64) {
        if !in_redis {
            self.table
                .local
                .settle(value, &self.local_quota, reserved, actual);
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return; // Outside a runtime (never on the request path): the count stands.
        };
        let (counter, value) = (self.clone(), value.to_vec());
        rt.spawn(async move {
            if let Some(s) = &counter.shared {
                s.limiter
                    .settle(&counter.name, &value, &counter.quota, reserved, actual)
                    .await;
            }
        });
    }
}

impl Limit {
    /// What the limit counts for a request of `route`: one request, the tokens of
    /// `estimate`, or `None` when it does not apply.
    fn cost(
        &self,
        route: &RouteEntry,
        estimate: &mut impl FnMut() -> Result<Estimate, ProxyError>,
    ) -> Result<Option<u64>, ProxyError> {
        if !self.routes.is_empty() && !self.routes.iter().any(|r| **r == *route.name) {
            return Ok(None);
        }
        Ok(match self.rate.unit {
            LimitUnit::Requests => Some(1),
            // Token limits apply to openai routes (validation keeps them off http ones).
            LimitUnit::Tokens if route.cfg.kind != RouteKind::OpenAi => None,
            LimitUnit::Tokens => Some(estimate()?.reserve()),
        })
    }

    pub fn name(&self) -> &str {
        &self.counter.name
    }

    pub fn scope(&self) -> &LimitScope {
        &self.scope
    }

    pub fn rate(&self) -> &Rate {
        &self.rate
    }

    pub fn routes(&self) -> &[String] {
        &self.routes
    }

    /// Its counts here (for shared limits: the fallback's).
    pub fn table(&self) -> &Table {
        &self.counter.table
    }

    fn tally(&self, remaining: u64, reset: Duration) -> Tally {
        Tally {
            limit: self.amount.clone(),
            remaining,
            reset,
        }
    }
}

/// What a request is counted by.
struct Subject<'a, M> {
    route: &'a RouteEntry,
    caller: Option<&'a KeyConfig>,
    headers: &'a HeaderMap,
    peer: &'a Peer,
    model: M,
}

impl<'a, 'm: 'a, M: Fn() -> Option<&'m str>> Subject<'a, M> {
    /// The value `scope` counts this request under, as bytes (`buf` holds an address's).
    fn value<'b>(&'b self, scope: &LimitScope, buf: &'b mut [u8; 16]) -> &'b [u8]
    where
        'a: 'b,
    {
        match scope {
            LimitScope::Global => b"",
            LimitScope::ClientIp => match self.peer.addr.ip() {
                IpAddr::V4(ip) => {
                    buf[..4].copy_from_slice(&ip.octets());
                    &buf[..4]
                }
                IpAddr::V6(ip) => {
                    *buf = ip.octets();
                    &buf[..]
                }
            },
            LimitScope::Route => self.route.name.as_bytes(),
            LimitScope::Model => (self.model)().unwrap_or_default().as_bytes(),
            LimitScope::Header(h) => self.headers.get(h).map_or(b"", |v| v.as_bytes()),
            LimitScope::Key => self.caller.map_or(b"", |k| k.name.as_bytes()),
            LimitScope::Team => self
                .caller
                .and_then(|k| k.team.as_deref())
                .map_or(b"", str::as_bytes),
        }
    }
}

/// A value as a refusal's message names it.
pub fn describe(scope: &LimitScope, value: &[u8]) -> String {
    if *scope == LimitScope::ClientIp {
        if let Ok(v4) = <[u8; 4]>::try_from(value) {
            return IpAddr::from(v4).to_string();
        }
        if let Ok(v6) = <[u8; 16]>::try_from(value) {
            return IpAddr::from(v6).to_string();
        }
    }
    String::from_utf8_lossy(value).into_owned()
}

/// An admitted request: its limits' state, and the tokens it holds until its answer ends.
#[derive(Debug)]
pub struct Admitted {
    pub state: RateState,
    pub tokens: Option<Reservation>,
}

/// Counts a request against every limit of `limits` that applies to `route`: one request,
/// or the tokens of `estimate` (asked only for a token limit; `model` only for a
/// model-scoped one). The tightest limits' state, or the 429 of the first that refuses
/// (the limits that had counted it give it back).
#[allow(clippy::too_many_arguments)]
pub async fn admit<'l, 'a, 'm: 'a>(
    limits: impl Iterator<Item = &'l Limit> + Clone,
    route: &'a RouteEntry,
    caller: Option<&'a KeyConfig>,
    headers: &'a HeaderMap,
    peer: &'a Peer,
    model: impl Fn() -> Option<&'m str>,
    estimate: impl Fn() -> Result<Estimate, ProxyError>,
) -> Result<Admitted, ProxyError> {
    let subject = Subject {
        route,
        caller,
        headers,
        peer,
        model,
    };
    let mut tokens: Option<Estimate> = None;
    let mut estimate = || {
        let e = estimate()?;
        tokens = Some(e);
        Ok(e)
    };
    let mut held: Vec<Held> = Vec::new();
    let mut state = RateState::default();
    let mut buf = [0u8; 16];
    // Bit i: limit i was counted in Redis (for giving a refused request back).
    let mut in_redis = Places::default();
    for (counted, l) in limits.clone().enumerate() {
        let cost = match l.cost(route, &mut estimate) {
            Ok(Some(cost)) => cost,
            Ok(None) => continue,
            Err(e) => {
                give_back(limits.take(counted), &subject, &mut estimate, in_redis);
                return Err(e);
            }
        };
        let value = subject.value(&l.scope, &mut buf);
        let unit = l.rate.unit;
        let (decision, redis) = l.counter.check(value, cost).await;
        match decision {
            Decision::Admit {
                remaining, reset, ..
            } => {
                in_redis.set(counted, redis);
                state.tighten(unit, || l.tally(remaining, reset), remaining);
                if unit == LimitUnit::Tokens {
                    held.push(Held {
                        counter: l.counter.clone(),
                        value: Box::from(value),
                        in_redis: redis,
                    });
                }
            }
            Decision::Deny {
                retry_after,
                reset,
                remaining,
            } => {
                let value = describe(&l.scope, value);
                give_back(limits.take(counted), &subject, &mut estimate, in_redis);
                return Err(ProxyError::RateLimited(Box::new(Refusal {
                    limit: l.name().to_string(),
                    value,
                    unit,
                    amount: l.rate.amount,
                    per: l.rate.per,
                    needed: cost,
                    burst: l.rate.burst,
                    retry_after,
                    state: RateState::of(unit, l.tally(remaining, reset)),
                })));
            }
        }
    }
    let tokens = tokens.map(|e| Reservation {
        held,
        reserved: e.reserve(),
        prompt: e.prompt,
        settled: false,
    });
    Ok(Admitted { state, tokens })
}

/// The `limits` that counted a refused request give it back (where they counted it).
fn give_back<'l, 'a, 'm: 'a>(
    limits: impl Iterator<Item = &'l Limit>,
    subject: &Subject<'a, impl Fn() -> Option<&'m str>>,
    estimate: &mut impl FnMut() -> Result<Estimate, ProxyError>,
    in_redis: Places,
) {
    let mut buf = [0u8; 16];
    for (i, l) in limits.enumerate() {
        if let Ok(Some(cost)) = l.cost(subject.route, estimate) {
            let value = subject.value(&l.scope, &mut buf);
            l.counter.settle(value, in_redis.get(i), cost, 0);
        }
    }
}

/// Which of a request's limits counted it in Redis, by their index (past 128 limits a
/// request's give-back goes to the local counts: no config has that many).
#[derive(Debug, Default, Clone, Copy)]
struct Places(u128);

impl Places {
    fn set(&mut self, i: usize, redis: bool) {
        if redis && i < 128 {
            self.0 |= 1 << i;
        }
    }

    fn get(self, i: usize) -> bool {
        i < 128 && self.0 & (1 << i) != 0
    }
}

/// A token limit's share of a reservation.
#[derive(Debug)]
struct Held {
    counter: Arc<Counter>,
    value: Box<[u8]>,
    in_redis: bool,
}

/// Tokens a request reserved from its token limits, until its answer says what it used.
/// Dropped unsettled (an error before any answer, a cache hit) it gives them all back.
#[derive(Debug)]
pub struct Reservation {
    /// Each token limit's counts and value.
    held: Vec<Held>,
    reserved: u64,
    /// The prompt's estimate, charged when the answer's usage cannot be read.
    prompt: u64,
    settled: bool,
}

impl Reservation {
    /// Corrects every token limit to the `actual` tokens used (once; later calls do
    /// nothing).
    pub(crate) fn settle(&mut self, actual: u64) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        for h in &self.held {
            h.counter
                .settle(&h.value, h.in_redis, self.reserved, actual);
        }
    }

    /// The prompt's estimate, charged when the answer's usage cannot be read.
    pub(crate) fn prompt(&self) -> u64 {
        self.prompt
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.settle(0);
    }
}
