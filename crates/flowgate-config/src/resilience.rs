//! What a pool and a route do about failing endpoints: the breaker (`outlier`), `retries`,
//! a route's `fallback` chain and `hedge`: their runtime types and their validation.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::error::Found;
use crate::error::KeyPath;
use crate::format_duration;
use crate::raw::{RawFallback, RawHealthCheck, RawHedge, RawOutlier, RawRetries};
use crate::units::{dur, positive};

/// The circuit breaker of each endpoint of a pool (`outlier = {...}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierConfig {
    /// Failures in a row (5xx, connection failures, timeouts) that open the breaker.
    /// Default 5; 0: never.
    pub consecutive_failures: u32,
    /// A failure share (percent) over `failure_window` that opens it. Default 50; 0: never.
    pub failure_percent: u32,
    /// Answers the window must hold before its share counts. Default 20.
    pub failure_min_requests: u32,
    /// Default 10 s.
    pub failure_window: Duration,
    /// Open for this × times opened. Default 30 s.
    pub base_ejection: Duration,
    /// At most. Default 5 min.
    pub max_ejection: Duration,
    /// The largest share of the pool out at once, in percent. Default 50.
    pub max_ejected_percent: u32,
    /// Trial requests a half-open endpoint takes at a time; as many successes close it.
    /// Default 3.
    pub half_open_probes: u32,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            consecutive_failures: 5,
            failure_percent: 50,
            failure_min_requests: 20,
            failure_window: Duration::from_secs(10),
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejected_percent: 50,
            half_open_probes: 3,
        }
    }
}

/// Active health checks of a pool's endpoints (`health_check = {...}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// The path probed with GET (e.g. `/health`, or `/v1/models`: no tokens spent).
    pub path: String,
    /// The status a healthy endpoint answers. Default 200.
    pub expect: u16,
    /// Default 10 s.
    pub interval: Duration,
    /// Added to each interval at random, up to this. Default a tenth of the interval.
    pub jitter: Duration,
    /// A probe not answered within this fails. Default 2 s.
    pub timeout: Duration,
    /// Probes in a row that bring a down endpoint back. Default 2.
    pub healthy: u32,
    /// Probes in a row that take it out. Default 3.
    pub unhealthy: u32,
}

/// The failures that trigger a retry or a fallback.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Triggers {
    /// The connection could not be made (or no endpoint may be used).
    pub connect: bool,
    /// The connection closed before the answer's head: the upstream may have acted on it.
    pub reset: bool,
    /// The pool's `request_timeout` passed (fallbacks only).
    pub timeout: bool,
    /// Answers with these statuses (429 and 5xx only).
    pub statuses: Vec<u16>,
}

impl Triggers {
    pub fn status(&self, s: u16) -> bool {
        self.statuses.contains(&s)
    }

    /// The names as written in the config.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = [
            (self.connect, "connect"),
            (self.reset, "reset"),
            (self.timeout, "timeout"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| n.to_string())
        .collect();
        if (500..600).all(|s| self.status(s)) {
            v.push("5xx".into());
            v.extend(
                self.statuses
                    .iter()
                    .filter(|s| **s < 500)
                    .map(u16::to_string),
            );
        } else {
            v.extend(self.statuses.iter().map(u16::to_string));
        }
        v
    }
}

/// A pool's retries (`retries = {...}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    /// Attempts in all, the first included. Default 2; 1: no retries.
    pub attempts: u32,
    /// Default `["connect", "502", "503", "504", "429"]`.
    pub on: Triggers,
    /// Exponential backoff from this, with jitter. Default 25 ms.
    pub backoff_base: Duration,
    /// Default 250 ms.
    pub backoff_max: Duration,
    /// Retries (and hedges) at most this share of the pool's requests over 10 s. Default 20.
    pub budget_percent: u32,
    /// Plus this many per second. Default 3.
    pub budget_min_per_second: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: 2,
            on: Triggers {
                connect: true,
                reset: false,
                timeout: false,
                statuses: vec![429, 502, 503, 504],
            },
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_millis(250),
            budget_percent: 20,
            budget_min_per_second: 3,
        }
    }
}

/// One step of a route's fallback chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    pub pool: String,
    /// The model the request asks for there (openai routes), if another.
    pub model: Option<String>,
}

/// When a route sends a second attempt before the first answered (`hedge = {...}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HedgeConfig {
    pub after: HedgeAfter,
    /// Extra attempts at most. Default 1.
    pub max: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HedgeAfter {
    /// This quantile of the pool's recent answers, in hundredths of a percent (`"p95"`:
    /// 9500).
    Quantile(u32),
    Fixed(Duration),
}

impl HedgeAfter {
    /// The quantile as a fraction (0..1), if it is one.
    pub fn quantile(self) -> Option<f64> {
        match self {
            HedgeAfter::Quantile(q) => Some(f64::from(q) / 10_000.0),
            HedgeAfter::Fixed(_) => None,
        }
    }
}

fn percent(v: u32, key: KeyPath, found: &mut Found) {
    if v > 100 {
        found.push((key, format!("{v}: a percentage, 0 to 100")));
    }
}

pub(crate) fn outlier(o: Option<&RawOutlier>, key: &KeyPath, found: &mut Found) -> OutlierConfig {
    let d = OutlierConfig::default();
    let c = OutlierConfig {
        consecutive_failures: o
            .and_then(|o| o.consecutive_failures)
            .unwrap_or(d.consecutive_failures),
        failure_percent: o
            .and_then(|o| o.failure_percent)
            .unwrap_or(d.failure_percent),
        failure_min_requests: o
            .and_then(|o| o.failure_min_requests)
            .unwrap_or(d.failure_min_requests),
        failure_window: dur(o.and_then(|o| o.failure_window), d.failure_window),
        base_ejection: dur(o.and_then(|o| o.base_ejection), d.base_ejection),
        max_ejection: dur(o.and_then(|o| o.max_ejection), d.max_ejection),
        max_ejected_percent: o
            .and_then(|o| o.max_ejected_percent)
            .unwrap_or(d.max_ejected_percent),
        half_open_probes: o
            .and_then(|o| o.half_open_probes)
            .unwrap_or(d.half_open_probes),
    };
    positive(c.base_ejection, &key.clone().key("base_ejection"), found);
    positive(c.failure_window, &key.clone().key("failure_window"), found);
    if c.max_ejection < c.base_ejection {
        found.push((
            key.clone().key("max_ejection"),
            format!(
                "{} is shorter than base_ejection ({})",
                format_duration(c.max_ejection),
                format_duration(c.base_ejection)
            ),
        ));
    }
    percent(
        c.max_ejected_percent,
        key.clone().key("max_ejected_percent"),
        found,
    );
    percent(c.failure_percent, key.clone().key("failure_percent"), found);
    if c.half_open_probes == 0 {
        found.push((
            key.clone().key("half_open_probes"),
            "must be at least 1".into(),
        ));
    }
    c
}

/// A list of trigger names: `connect`, `reset`, `timeout` (where `timeout_allowed`),
/// `5xx`, or a status (429 or 5xx).
fn triggers(names: &[String], timeout_allowed: bool, key: &KeyPath, found: &mut Found) -> Triggers {
    let mut t = Triggers::default();
    let mut statuses = BTreeSet::new();
    for (i, n) in names.iter().enumerate() {
        match n.trim().to_ascii_lowercase().as_str() {
            "connect" => t.connect = true,
            "reset" => t.reset = true,
            "timeout" if timeout_allowed => t.timeout = true,
            "timeout" => found.push((
                key.clone().index(i),
                "\"timeout\" ends the request (the pool's request_timeout): it can trigger a \
                 route's fallback, not a retry"
                    .into(),
            )),
            "5xx" => statuses.extend(500..600),
            s => match s.parse::<u16>() {
                Ok(code) if code == 429 || (500..600).contains(&code) => {
                    statuses.insert(code);
                }
                Ok(code) if (400..500).contains(&code) => found.push((
                    key.clone().index(i),
                    format!(
                        "{code}: a 4xx other than 429 is the request's fault; sending it \
                         again would get the same answer"
                    ),
                )),
                _ => found.push((
                    key.clone().index(i),
                    format!(
                        "{n:?}: expected \"connect\", \"reset\", {}\"5xx\", \"429\" or a 5xx \
                         status",
                        if timeout_allowed { "\"timeout\", " } else { "" }
                    ),
                )),
            },
        }
    }
    t.statuses = statuses.into_iter().collect();
    t
}

pub(crate) fn retries(r: Option<&RawRetries>, key: &KeyPath, found: &mut Found) -> RetryConfig {
    let d = RetryConfig::default();
    let Some(r) = r else { return d };
    let c = RetryConfig {
        attempts: r.attempts.unwrap_or(d.attempts),
        on: r.on.as_ref().map_or(d.on.clone(), |on| {
            triggers(on, false, &key.clone().key("on"), found)
        }),
        backoff_base: dur(r.backoff_base, d.backoff_base),
        backoff_max: dur(r.backoff_max, d.backoff_max),
        budget_percent: r.budget_percent.unwrap_or(d.budget_percent),
        budget_min_per_second: r.budget_min_per_second.unwrap_or(d.budget_min_per_second),
    };
    if !(1..=10).contains(&c.attempts) {
        found.push((
            key.clone().key("attempts"),
            format!(
                "{}: expected 1 (no retries) to 10 attempts in all",
                c.attempts
            ),
        ));
    }
    if c.backoff_max < c.backoff_base {
        found.push((
            key.clone().key("backoff_max"),
            format!(
                "{} is shorter than backoff_base ({})",
                format_duration(c.backoff_max),
                format_duration(c.backoff_base)
            ),
        ));
    }
    percent(c.budget_percent, key.clone().key("budget_percent"), found);
    c
}

/// A route's fallback chain: each pool must exist and differ from the route's own and the
/// others; a model only on openai routes.
pub(crate) fn fallbacks(
    raw: &[RawFallback],
    own_pool: &str,
    openai: bool,
    pools: &BTreeSet<&str>,
    key: &KeyPath,
    found: &mut Found,
) -> Vec<Fallback> {
    let mut seen = BTreeSet::from([own_pool]);
    let mut out = Vec::new();
    for (i, f) in raw.iter().enumerate() {
        let k = key.clone().index(i);
        if !pools.contains(f.pool.as_str()) {
            let known: Vec<&str> = pools.iter().copied().collect();
            found.push((
                k.clone().key("pool"),
                format!(
                    "unknown pool {:?}: expected one of [{}]",
                    f.pool,
                    known.join(", ")
                ),
            ));
        } else if !seen.insert(f.pool.as_str()) {
            found.push((
                k.clone().key("pool"),
                format!(
                    "{:?} is already in this route's chain (retries within a pool are its \
                     `retries`)",
                    f.pool
                ),
            ));
        }
        match &f.model {
            Some(m) if !openai => found.push((
                k.key("model"),
                format!("{m:?}: only an openai route's requests name a model"),
            )),
            Some(m) if m.trim().is_empty() => {
                found.push((k.key("model"), "must not be empty".into()))
            }
            _ => {}
        }
        out.push(Fallback {
            pool: f.pool.clone(),
            model: f.model.clone(),
        });
    }
    out
}

pub(crate) fn fallback_on(raw: Option<&Vec<String>>, key: &KeyPath, found: &mut Found) -> Triggers {
    match raw {
        Some(names) => triggers(names, true, key, found),
        None => Triggers {
            connect: true,
            reset: true,
            timeout: true,
            statuses: std::iter::once(429).chain(500..600).collect(),
        },
    }
}

pub(crate) fn health_check(
    raw: &RawHealthCheck,
    key: &KeyPath,
    found: &mut Found,
) -> HealthCheckConfig {
    let interval = dur(raw.interval, Duration::from_secs(10));
    let c = HealthCheckConfig {
        path: raw.path.clone(),
        expect: raw.expect.unwrap_or(200),
        interval,
        jitter: dur(raw.jitter, interval / 10),
        timeout: dur(raw.timeout, Duration::from_secs(2)),
        healthy: raw.healthy.unwrap_or(2),
        unhealthy: raw.unhealthy.unwrap_or(3),
    };
    if !c.path.starts_with('/') {
        found.push((
            key.clone().key("path"),
            format!("{:?} must start with '/'", c.path),
        ));
    }
    if !(100..600).contains(&c.expect) {
        found.push((
            key.clone().key("expect"),
            format!("{}: expected an HTTP status, 100 to 599", c.expect),
        ));
    }
    positive(c.interval, &key.clone().key("interval"), found);
    positive(c.timeout, &key.clone().key("timeout"), found);
    if c.timeout > c.interval {
        found.push((
            key.clone().key("timeout"),
            format!(
                "{} is longer than the interval ({})",
                format_duration(c.timeout),
                format_duration(c.interval)
            ),
        ));
    }
    for (n, k) in [(c.healthy, "healthy"), (c.unhealthy, "unhealthy")] {
        if n == 0 {
            found.push((key.clone().key(k), "must be at least 1".into()));
        }
    }
    c
}

pub(crate) fn hedge(raw: &RawHedge, key: &KeyPath, found: &mut Found) -> Option<HedgeConfig> {
    let after_key = key.clone().key("after");
    let after = match raw.after.trim() {
        q if q.starts_with('p') => match q[1..].parse::<f64>() {
            Ok(p) if p > 0.0 && p < 100.0 => Some(HedgeAfter::Quantile((p * 100.0).round() as u32)),
            _ => {
                found.push((
                    after_key,
                    format!("{q:?}: expected a percentile such as \"p95\" or a duration"),
                ));
                None
            }
        },
        d => match crate::units::parse_duration(d) {
            Some(d) if !d.is_zero() => Some(HedgeAfter::Fixed(d)),
            _ => {
                found.push((
                    after_key,
                    format!("{d:?}: expected a percentile such as \"p95\" or a duration"),
                ));
                None
            }
        },
    };
    let max = raw.max.unwrap_or(1);
    if !(1..=3).contains(&max) {
        found.push((
            key.clone().key("max"),
            format!("{max}: expected 1 to 3 extra attempts"),
        ));
    }
    Some(HedgeConfig { after: after?, max })
}
