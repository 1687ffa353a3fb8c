//! Concurrency limits on the request path: how many requests of a key, a route and an
//! upstream pool may be in flight at once, the priority queues beyond, and the adaptive
//! limits of pools.
//!
//! Only requests going upstream take permits (after the cache: a hit costs the upstream
//! nothing), in the order key, route, pool; each is held until the answer's body has ended
//! or the client left. A request waits in each queue for at most that limit's
//! `queue_timeout`. A refusal is a 429 for a key's limit (the client is over its share) and
//! a 503 for a route's or a pool's (the service is busy), with `Retry-After` either way.
//!
//! Priority: `x-flowgate-priority: critical|high|normal|low`, else the key's `priority`,
//! else `normal`. The header may lower a request's priority freely; it may raise it only
//! as far as the caller's key's `priority` (the most its requests may ask for), or to any
//! level on a route with `priority_header = true` (a route of trusted callers). Asking for
//! more than allowed gets the most allowed. An unknown value is a 400 (read only where a
//! concurrency limit applies).
//!
//! The limiters live in the gateway, by scope and name, so that a reload keeps their
//! permits and queues and applies new settings to them. An adaptive pool limit learns from
//! the time to the first byte of each answer (a stream's first token).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use flowgate_admission::adaptive::AdaptiveSettings;
use flowgate_admission::concurrency::{Concurrency, Permit, Priority, Settings};
use flowgate_clock::SharedClock;
use flowgate_config::{ConcurrencyConfig, KeyConfig};
use http::HeaderMap;
use prometheus_client::metrics::histogram::Histogram;

pub mod overload;

pub use overload::{Overload, Scope};

use crate::error::ProxyError;
use crate::watch::Watch;

static PRIORITY: http::HeaderName = http::HeaderName::from_static("x-flowgate-priority");

/// One concurrency limit: its limiter, and how long requests waited for it.
#[derive(Debug)]
pub struct Gate {
    pub limiter: Arc<Concurrency>,
    /// Seconds from asking for a permit to getting it (0 for most: no wait).
    pub waits: Histogram,
}

/// Wait buckets, in seconds: from a millisecond to a minute.
const WAIT_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 60.0,
];

/// Every concurrency limit, by scope and name.
#[derive(Debug, Default)]
pub struct Queues {
    by_name: Mutex<HashMap<(Scope, String), Arc<Gate>>>,
}

fn settings(c: &ConcurrencyConfig) -> Settings {
    Settings {
        limit: c.limit as usize,
        burst: c.burst as usize,
        queue: c.queue as usize,
        queue_timeout: c.queue_timeout,
    }
}

fn adaptive(c: &ConcurrencyConfig) -> Option<AdaptiveSettings> {
    c.adaptive.map(|a| AdaptiveSettings {
        initial: c.limit as usize,
        min: a.min as usize,
        max: a.max as usize,
        ..AdaptiveSettings::default()
    })
}

impl Queues {
    /// The limit of `scope` `name`, set to `cfg`: the one it had (with the new settings)
    /// unless it changes between fixed and adaptive, or its adaptive bounds change.
    pub fn get(&self, scope: Scope, name: &str, cfg: &ConcurrencyConfig) -> Arc<Gate> {
        let fresh = || {
            Arc::new(Gate {
                limiter: Concurrency::new(settings(cfg), adaptive(cfg)),
                waits: Histogram::new(WAIT_BUCKETS),
            })
        };
        let Ok(mut m) = self.by_name.lock() else {
            return fresh();
        };
        let key = (scope, name.to_string());
        if let Some(g) = m.get(&key)
            && g.limiter.adaptive_settings() == adaptive(cfg)
        {
            g.limiter.configure(settings(cfg));
            return g.clone();
        }
        let g = fresh();
        m.insert(key, g.clone());
        g
    }

    /// Every limit, sorted by scope and name.
    pub fn all(&self) -> Vec<(Scope, String, Arc<Gate>)> {
        let mut all: Vec<_> = self
            .by_name
            .lock()
            .map(|m| {
                m.iter()
                    .map(|((s, n), c)| (*s, n.clone(), c.clone()))
                    .collect()
            })
            .unwrap_or_default();
        all.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        all
    }

    /// Forgets the limiters no config or key holds any more (their permits hold them
    /// until the last request ends).
    pub fn sweep(&self) {
        if let Ok(mut m) = self.by_name.lock() {
            m.retain(|_, c| Arc::strong_count(c) > 1);
        }
    }
}

/// The priority of a request: its header, capped by its key's (or by `normal` unless the
/// route lets any caller raise theirs); 400 for an unknown value.
pub fn priority(
    headers: &HeaderMap,
    key: Option<&KeyConfig>,
    route_allows: bool,
) -> Result<Priority, ProxyError> {
    let cap = key.and_then(|k| k.priority);
    let asked = match headers.get(&PRIORITY) {
        None => None,
        Some(v) => Some(v.to_str().ok().and_then(Priority::parse).ok_or_else(|| {
            ProxyError::BadPriority(String::from_utf8_lossy(v.as_bytes()).into())
        })?),
    };
    let most = match cap {
        Some(c) => c,
        None if route_allows => Priority::Critical,
        None => Priority::Normal,
    };
    Ok(match (asked, cap) {
        // Lower is more urgent: `most` is the most a request may ask for.
        (Some(a), _) => a.max(most),
        (None, Some(p)) => p,
        (None, None) => Priority::Normal,
    })
}

/// The permits a request holds; the first byte of its answer is reported to adaptive
/// limits once.
#[derive(Debug)]
pub struct Permits {
    held: Vec<Permit>,
    clock: SharedClock,
    since: Instant,
    observed: bool,
}

impl Permits {
    /// Takes a permit of each of `limits` in turn (key, route, pool), waiting in their
    /// queues; `None` when none applies. The request's `priority` is read only then.
    pub async fn enter(
        limits: [(Scope, &str, Option<&Arc<Gate>>); 3],
        priority: impl FnOnce() -> Result<Priority, ProxyError>,
        clock: &SharedClock,
    ) -> Result<Option<Permits>, ProxyError> {
        if limits.iter().all(|l| l.2.is_none()) {
            return Ok(None);
        }
        let priority = priority()?;
        let mut held = Vec::new();
        for (scope, name, gate) in limits {
            let Some(g) = gate else { continue };
            let c = &g.limiter;
            let asked = clock.now();
            match c.acquire(priority).await {
                Ok(p) => {
                    let waited = clock.now().saturating_duration_since(asked);
                    g.waits.observe(waited.as_secs_f64());
                    held.push(p);
                }
                Err(refused) => {
                    return Err(ProxyError::Overloaded(Box::new(Overload {
                        scope,
                        name: name.to_string(),
                        refused,
                        priority,
                        limit: c.snapshot().limit,
                        queue_timeout: c.queue_timeout(),
                    })));
                }
            }
        }
        Ok(Some(Permits {
            held,
            clock: clock.clone(),
            since: clock.now(),
            observed: false,
        }))
    }

    /// The answer's first byte: its latency goes to the adaptive limits (once).
    pub fn first_byte(&mut self) {
        if std::mem::replace(&mut self.observed, true) {
            return;
        }
        let latency = self.clock.now().saturating_duration_since(self.since);
        for p in &self.held {
            p.observe(latency);
        }
    }
}

impl Watch for Permits {
    /// The first data frame is the answer's first byte, for adaptive limits.
    fn data(&mut self, _: &Bytes) -> bool {
        self.first_byte();
        true
    }

    /// Given back as soon as the body ends (by the drop).
    fn end(self: Box<Self>) {}
}
