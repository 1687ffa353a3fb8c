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
//! The state (one GCRA timestamp per limit and value, `flowgate_admission::LocalLimiter`)
//! lives in the gateway, not in the runtime: a reload that keeps a limit's name keeps its
//! counts.

use std::sync::Arc;
use std::time::Duration;

use flowgate_admission::{Decision, LocalLimiter, Quota};
use flowgate_clock::SharedClock;
use flowgate_config::{Config, KeyConfig, LimitScope, LimitUnit, Rate, RateLimitConfig};
use flowgate_cost::{Estimate, Meter};
use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::error::ProxyError;
use crate::headers::Peer;
use crate::router::RouteEntry;

/// `x-ratelimit-{limit,remaining,reset}-` + `requests` and `tokens`.
static FIELDS: [[HeaderName; 3]; 2] = [
    [
        HeaderName::from_static("x-ratelimit-limit-requests"),
        HeaderName::from_static("x-ratelimit-remaining-requests"),
        HeaderName::from_static("x-ratelimit-reset-requests"),
    ],
    [
        HeaderName::from_static("x-ratelimit-limit-tokens"),
        HeaderName::from_static("x-ratelimit-remaining-tokens"),
        HeaderName::from_static("x-ratelimit-reset-tokens"),
    ],
];

/// A configured limit, ready to check.
#[derive(Debug)]
pub struct Limit {
    name: Arc<str>,
    scope: LimitScope,
    rate: Rate,
    /// The routes it applies to (empty: all).
    routes: Vec<String>,
    quota: Quota,
}

impl Limit {
    fn new(name: &str, scope: LimitScope, rate: Rate, routes: Vec<String>) -> Option<Limit> {
        // Validation guarantees a quota GCRA can keep.
        let quota = Quota::new(rate.amount, rate.per, rate.burst).ok()?;
        Some(Limit {
            name: Arc::from(name),
            scope,
            rate,
            routes,
            quota,
        })
    }

    /// The limits of a virtual key (its own: counted for it alone, on every route).
    pub fn of_key(key: &KeyConfig) -> Vec<Limit> {
        key.limits
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                Limit::new(
                    &format!("key:{}#{i}", key.name),
                    LimitScope::Key,
                    *r,
                    vec![],
                )
            })
            .collect()
    }
}

/// The limits of one config.
pub fn compile(config: &Config) -> Vec<Limit> {
    config
        .rate_limits
        .iter()
        .filter_map(|l: &RateLimitConfig| {
            Limit::new(&l.name, l.scope.clone(), l.rate, l.routes.clone())
        })
        .collect()
}

/// One limit's state after a request: what it allows, what is left, when it is full again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub limit: u64,
    pub remaining: u64,
    pub reset: Duration,
}

/// What a request learned about its limits, for its response headers: the tightest
/// request limit and the tightest token limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateState {
    requests: Option<Tally>,
    tokens: Option<Tally>,
}

impl RateState {
    fn of(unit: LimitUnit, t: Tally) -> Self {
        let mut s = RateState::default();
        *s.slot(unit) = Some(t);
        s
    }

    fn slot(&mut self, unit: LimitUnit) -> &mut Option<Tally> {
        match unit {
            LimitUnit::Requests => &mut self.requests,
            LimitUnit::Tokens => &mut self.tokens,
        }
    }

    /// Keeps `t` when it leaves less than the tally of its kind so far.
    fn tighten(&mut self, unit: LimitUnit, t: Tally) {
        let slot = self.slot(unit);
        if slot.is_none_or(|s| t.remaining < s.remaining) {
            *slot = Some(t);
        }
    }

    /// Adds the `x-ratelimit-*` fields.
    pub fn write(&self, h: &mut HeaderMap) {
        for (tally, [limit, remaining, reset]) in [self.requests, self.tokens].iter().zip(&FIELDS) {
            let Some(t) = tally else { continue };
            h.insert(limit.clone(), HeaderValue::from(t.limit));
            h.insert(remaining.clone(), HeaderValue::from(t.remaining));
            if let Ok(v) = HeaderValue::from_str(&reset_text(t.reset)) {
                h.insert(reset.clone(), v);
            }
        }
    }
}

/// OpenAI's reset format: `1s`, `6m0s`, `120ms`.
fn reset_text(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        let s = d.as_secs_f64();
        format!("{}s", (s * 1000.0).round() / 1000.0)
    } else {
        format!("{}m{}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

type Key = (Arc<str>, String);
type Limiter = LocalLimiter<Key>;

/// The rate limiter of a gateway.
#[derive(Debug)]
pub struct Admission {
    limiter: Arc<Limiter>,
}

/// An admitted request: its limits' state, and the tokens it holds until its answer ends.
#[derive(Debug)]
pub struct Admitted {
    pub state: RateState,
    pub tokens: Option<Reservation>,
}

impl Admission {
    pub fn new(clock: SharedClock) -> Self {
        Admission {
            limiter: Arc::new(LocalLimiter::new(clock)),
        }
    }

    /// Counts a request against every limit of `limits` that applies to `route`: one
    /// request, or the tokens of `estimate` (asked only for a token limit; `model` only
    /// for a model-scoped one). The tightest limits' state, or the 429 of the first that
    /// refuses.
    #[allow(clippy::too_many_arguments)]
    pub fn admit<'l>(
        &self,
        limits: impl Iterator<Item = &'l Limit>,
        route: &RouteEntry,
        caller: Option<&KeyConfig>,
        headers: &HeaderMap,
        peer: &Peer,
        model: impl Fn() -> Option<String>,
        estimate: impl Fn() -> Result<Estimate, ProxyError>,
    ) -> Result<Admitted, ProxyError> {
        let mut tokens: Option<Estimate> = None;
        let mut counted: Vec<(Quota, Key, u64, LimitUnit)> = Vec::new();
        let mut state = RateState::default();
        for l in limits {
            if !l.routes.is_empty() && !l.routes.iter().any(|r| **r == *route.name) {
                continue;
            }
            let unit = l.rate.unit;
            let cost = match unit {
                LimitUnit::Requests => 1,
                // Token limits apply to openai routes (validation keeps them off http ones).
                LimitUnit::Tokens if route.cfg.kind != flowgate_config::RouteKind::OpenAi => {
                    continue;
                }
                LimitUnit::Tokens => match estimate() {
                    Ok(e) => {
                        tokens = Some(e);
                        e.reserve()
                    }
                    Err(err) => {
                        self.give_back(&counted);
                        return Err(err);
                    }
                },
            };
            let value = match &l.scope {
                LimitScope::Global => String::new(),
                LimitScope::ClientIp => peer.addr.ip().to_string(),
                LimitScope::Route => route.name.to_string(),
                LimitScope::Model => model().unwrap_or_default(),
                LimitScope::Header(h) => headers
                    .get(h)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default(),
                LimitScope::Key => caller.map(|k| k.name.clone()).unwrap_or_default(),
                LimitScope::Team => caller.and_then(|k| k.team.clone()).unwrap_or_default(),
            };
            let key = (l.name.clone(), value);
            match self.limiter.check(&key, &l.quota, cost) {
                Decision::Admit {
                    remaining, reset, ..
                } => {
                    state.tighten(
                        unit,
                        Tally {
                            limit: l.rate.amount,
                            remaining,
                            reset,
                        },
                    );
                    counted.push((l.quota, key, cost, unit));
                }
                Decision::Deny {
                    retry_after,
                    reset,
                    remaining,
                } => {
                    self.give_back(&counted);
                    return Err(ProxyError::RateLimited(Box::new(Refusal {
                        limit: l.name.to_string(),
                        value: key.1,
                        unit,
                        amount: l.rate.amount,
                        per: l.rate.per,
                        needed: cost,
                        burst: l.rate.burst,
                        retry_after,
                        state: RateState::of(
                            unit,
                            Tally {
                                limit: l.rate.amount,
                                remaining,
                                reset,
                            },
                        ),
                    })));
                }
            }
        }
        let tokens = tokens.map(|e| Reservation {
            limiter: self.limiter.clone(),
            held: counted
                .into_iter()
                .filter(|c| c.3 == LimitUnit::Tokens)
                .map(|(q, k, ..)| (q, k))
                .collect(),
            reserved: e.reserve(),
            prompt: e.prompt,
            settled: false,
        });
        Ok(Admitted { state, tokens })
    }

    /// The limits that counted a refused request give it back.
    fn give_back(&self, counted: &[(Quota, Key, u64, LimitUnit)]) {
        for (quota, key, cost, _) in counted {
            self.limiter.settle(key, quota, *cost, 0);
        }
    }

    /// Forgets values whose counts are back to their full burst.
    pub fn sweep(&self) -> usize {
        self.limiter.sweep()
    }
}

/// Why a limit refused a request: the 429's message and headers.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub limit: String,
    /// The scope's value the limit counted (empty for a global limit).
    pub value: String,
    pub unit: LimitUnit,
    pub amount: u64,
    pub per: Duration,
    /// What the request would have taken, and the most the limit allows at once.
    pub needed: u64,
    pub burst: u64,
    /// `None` when the request can never pass (it needs more than the burst).
    pub retry_after: Option<Duration>,
    pub state: RateState,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = self.unit.as_str();
        write!(f, "rate limit {} reached", self.limit)?;
        if !self.value.is_empty() {
            write!(f, " for {}", self.value)?;
        }
        write!(
            f,
            ": {} {unit} per {}; ",
            self.amount,
            flowgate_config::format_duration(self.per)
        )?;
        match self.retry_after {
            Some(d) => write!(f, "retry in {}", flowgate_config::format_duration(d)),
            None => write!(
                f,
                "this request needs about {} {unit}, more than the {} the limit allows at \
                 once; shorten the prompt or lower max_tokens",
                self.needed, self.burst
            ),
        }
    }
}

/// Tokens a request reserved from its token limits, until its answer says what it used.
/// Dropped unsettled (an error before any answer, a cache hit) it gives them all back.
#[derive(Debug)]
pub struct Reservation {
    limiter: Arc<Limiter>,
    held: Vec<(Quota, Key)>,
    reserved: u64,
    /// The prompt's estimate, charged when the answer's usage cannot be read.
    prompt: u64,
    settled: bool,
}

impl Reservation {
    /// Corrects every token limit to the `actual` tokens used.
    fn settle(&mut self, actual: u64) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        for (quota, key) in &self.held {
            self.limiter.settle(key, quota, self.reserved, actual);
        }
    }

    /// Meters the answer this reservation's request got: settled when its body ends.
    pub fn meter(self, status: http::StatusCode, headers: &HeaderMap) -> TokenMeter {
        let billing = if status.is_success() {
            let ct = headers
                .get(http::header::CONTENT_TYPE)
                .map_or(&b""[..], HeaderValue::as_bytes);
            Meter::for_content_type(ct).map_or(Billing::Prompt, Billing::Read)
        } else {
            Billing::Nothing
        };
        TokenMeter {
            billing,
            reservation: self,
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.settle(0);
    }
}

/// Reads the usage of an answer as it goes to the client, and settles the request's
/// token reservation when the body ends or is dropped (a client that left early pays for
/// the text it got).
#[derive(Debug)]
pub struct TokenMeter {
    billing: Billing,
    reservation: Reservation,
}

/// What an answer is charged.
#[derive(Debug)]
enum Billing {
    /// An error answer: nothing (the upstream bills none).
    Nothing,
    /// An answer whose usage cannot be read (neither JSON nor a stream): the prompt.
    Prompt,
    /// What the answer reports, or its estimate.
    Read(Meter),
}

impl TokenMeter {
    pub fn push(&mut self, chunk: &[u8]) {
        if let Billing::Read(m) = &mut self.billing {
            m.push(chunk);
        }
    }
}

impl Drop for TokenMeter {
    fn drop(&mut self) {
        let prompt = self.reservation.prompt;
        let used = match std::mem::replace(&mut self.billing, Billing::Nothing) {
            Billing::Nothing => 0,
            Billing::Prompt => prompt,
            Billing::Read(m) => m.finish(prompt).total(),
        };
        self.reservation.settle(used);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_are_written_as_openai_does() {
        assert_eq!(reset_text(Duration::from_millis(120)), "120ms");
        assert_eq!(reset_text(Duration::from_millis(1500)), "1.5s");
        assert_eq!(reset_text(Duration::from_secs(360)), "6m0s");
    }
}
