//! Rate limits on the request path, after routing and before the cache.
//!
//! Every `[[rate_limits]]` entry that applies to the route counts the request under its
//! scope's value (the client address, the route, the model, a header's value, or one count
//! for all); the request must pass all of them. A refusal is a 429 with `Retry-After`; a
//! limit that had already counted the request gives it back. Every response of a limited
//! route carries OpenAI's `x-ratelimit-limit-requests`, `x-ratelimit-remaining-requests`
//! and `x-ratelimit-reset-requests`, from the limit with the fewest requests left.
//!
//! The state (one GCRA timestamp per limit and value, `flowgate_admission::LocalLimiter`)
//! lives in the gateway, not in the runtime: a reload that keeps a limit's name keeps its
//! counts.

use std::sync::Arc;
use std::time::Duration;

use flowgate_admission::{Decision, LocalLimiter, Quota};
use flowgate_clock::SharedClock;
use flowgate_config::{Config, LimitScope, RateLimitConfig};
use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::error::ProxyError;
use crate::headers::Peer;
use crate::router::RouteEntry;

static LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
static REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
static RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");

/// A configured limit, ready to check.
#[derive(Debug)]
pub struct Limit {
    name: Arc<str>,
    cfg: RateLimitConfig,
    quota: Quota,
}

/// The limits of one config.
pub fn compile(config: &Config) -> Vec<Limit> {
    config
        .rate_limits
        .iter()
        .filter_map(|l| {
            // Validation guarantees a quota GCRA can keep.
            let quota = Quota::new(l.requests, l.per, l.burst).ok()?;
            Some(Limit {
                name: Arc::from(l.name.as_str()),
                cfg: l.clone(),
                quota,
            })
        })
        .collect()
}

/// What a request learned about its limits, for its response headers.
#[derive(Debug, Clone, Copy)]
pub struct RateState {
    limit: u64,
    remaining: u64,
    reset: Duration,
}

impl RateState {
    /// Adds the `x-ratelimit-*-requests` fields.
    pub fn write(&self, h: &mut HeaderMap) {
        h.insert(LIMIT.clone(), HeaderValue::from(self.limit));
        h.insert(REMAINING.clone(), HeaderValue::from(self.remaining));
        if let Ok(v) = HeaderValue::from_str(&reset_text(self.reset)) {
            h.insert(RESET.clone(), v);
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

/// The request rate limiter of a gateway.
#[derive(Debug)]
pub struct Admission {
    limiter: LocalLimiter<(Arc<str>, String)>,
}

impl Admission {
    pub fn new(clock: SharedClock) -> Self {
        Admission {
            limiter: LocalLimiter::new(clock),
        }
    }

    /// Counts a request against every limit of `limits` that applies to `route`; the
    /// tightest limit's state, or the 429 of the first that refuses.
    pub fn admit(
        &self,
        limits: &[Limit],
        route: &RouteEntry,
        headers: &HeaderMap,
        peer: &Peer,
        model: impl FnOnce() -> Option<String>,
    ) -> Result<Option<RateState>, ProxyError> {
        // Read at most once, and only when a model-scoped limit applies.
        let model = std::cell::LazyCell::new(model);
        let mut counted: Vec<(&Limit, (Arc<str>, String))> = Vec::new();
        let mut tightest: Option<RateState> = None;
        for l in limits {
            if !l.cfg.routes.is_empty() && !l.cfg.routes.iter().any(|r| **r == *route.name) {
                continue;
            }
            let value = match &l.cfg.scope {
                LimitScope::Global => String::new(),
                LimitScope::ClientIp => peer.addr.ip().to_string(),
                LimitScope::Route => route.name.to_string(),
                LimitScope::Model => model.clone().unwrap_or_default(),
                LimitScope::Header(h) => headers
                    .get(h)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default(),
            };
            let key = (l.name.clone(), value);
            match self.limiter.check(&key, &l.quota, 1) {
                Decision::Admit {
                    remaining, reset, ..
                } => {
                    if tightest.is_none_or(|t| remaining < t.remaining) {
                        tightest = Some(RateState {
                            limit: l.cfg.requests,
                            remaining,
                            reset,
                        });
                    }
                    counted.push((l, key));
                }
                Decision::Deny {
                    retry_after,
                    reset,
                    remaining,
                } => {
                    // The limits that counted this request give it back.
                    for (l, key) in &counted {
                        self.limiter.settle(key, &l.quota, 1, 0);
                    }
                    return Err(ProxyError::RateLimited {
                        limit: l.name.to_string(),
                        value: key.1,
                        requests: l.cfg.requests,
                        per: l.cfg.per,
                        retry_after: retry_after.unwrap_or(reset),
                        state: RateState {
                            limit: l.cfg.requests,
                            remaining,
                            reset,
                        },
                    });
                }
            }
        }
        Ok(tightest)
    }

    /// Forgets values whose counts are back to their full burst.
    pub fn sweep(&self) -> usize {
        self.limiter.sweep()
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
