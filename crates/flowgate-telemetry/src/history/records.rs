//! The request records' part of the history: per route, pool and endpoint, requests,
//! errors (5xx and failures to answer), latency to the answer's last byte and to its head
//! (for a stream, about its first token); per route, tokens and the mean time a request
//! spent in each stage of its path (`stage_ms`, for the bottleneck analysis); per cache
//! tier, hits over lookups; spend. Counted as records arrive (on the control plane), taken as samples at
//! each tick. A scope once seen keeps reporting (zero requests, not nothing) so that a
//! silent route shows as such.

use hashbrown::HashMap;
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;

use super::series::Sample;
use crate::breakdown::Step;
use crate::pipeline::Sink;
use crate::record::RequestRecord;

/// Scopes counted apart (routes, pools and endpoints together); more are not counted.
const MAX_SCOPES: usize = 1_000;
const MAX_MICROS: u64 = 600_000_000;

#[derive(Debug)]
struct Scope {
    requests: u64,
    errors: u64,
    latency: Histogram<u32>,
    head: Histogram<u32>,
    tokens: u64,
    /// A route's time in each stage, in microseconds, and the stages it ever spent time
    /// in (those are written, zero or not; the others never are).
    stages: [u64; Step::ALL.len()],
    stages_seen: u16,
}

impl Scope {
    fn new() -> Option<Scope> {
        let h = Histogram::new_with_bounds(1, MAX_MICROS, 2).ok()?;
        Some(Scope {
            requests: 0,
            errors: 0,
            latency: h.clone(),
            head: h,
            tokens: 0,
            stages: [0; Step::ALL.len()],
            stages_seen: 0,
        })
    }
}

#[derive(Debug, Default)]
struct Counts {
    /// Latency thresholds counted per route: (route, milliseconds).
    slow: Vec<(Arc<str>, u64)>,
    /// By (label, name): `route`, `pool` or `endpoint`.
    scopes: HashMap<(&'static str, Arc<str>), Scope>,
    lookups: u64,
    hits: [u64; 3],
    stale: u64,
    spend_usd: f64,
}

/// The counts since the last tick.
#[derive(Debug, Default)]
pub(super) struct Records(Mutex<Counts>);

fn micros(d: std::time::Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_MICROS)
}

impl Records {
    /// Counts the share of `route`'s requests slower than `ms`.
    pub(super) fn watch(&self, route: &str, ms: u64) {
        if let Ok(mut c) = self.0.lock()
            && !c.slow.iter().any(|(r, m)| &**r == route && *m == ms)
        {
            c.slow.push((Arc::from(route), ms));
        }
    }

    fn add(&self, rec: &RequestRecord) {
        let Ok(mut c) = self.0.lock() else {
            return;
        };
        let error = rec.is_error();
        let tokens = rec
            .spend
            .as_ref()
            .filter(|s| !s.cached)
            .map_or(0, |s| s.usage.prompt_tokens + s.usage.completion_tokens);
        let stages = rec.stages();
        let scopes = [
            Some(("route", &rec.route)),
            rec.pool.as_ref().map(|p| ("pool", p)),
            rec.endpoint.as_ref().map(|e| ("endpoint", e)),
        ];
        for (label, name) in scopes.into_iter().flatten() {
            let key = (label, name.clone());
            if !c.scopes.contains_key(&key) {
                if c.scopes.len() >= MAX_SCOPES {
                    continue;
                }
                let Some(s) = Scope::new() else {
                    continue;
                };
                c.scopes.insert(key.clone(), s);
            }
            let Some(s) = c.scopes.get_mut(&key) else {
                continue;
            };
            s.requests += 1;
            s.errors += u64::from(error);
            let _ = s.latency.record(micros(rec.total.max(rec.duration)));
            let _ = s.head.record(micros(rec.duration));
            if label == "route" {
                s.tokens += tokens;
                for (step, d) in stages.iter() {
                    let us = d.as_micros() as u64;
                    if us > 0 {
                        s.stages[step as usize] += us;
                        s.stages_seen |= 1 << step as usize;
                    }
                }
            }
        }
        match rec.cache {
            Some("hit-l1") => c.hits[0] += 1,
            Some("hit-l2") => c.hits[1] += 1,
            Some("hit-l3") => c.hits[2] += 1,
            Some("stale") => c.stale += 1,
            _ => {}
        }
        if matches!(
            rec.cache,
            Some("hit-l1" | "hit-l2" | "hit-l3" | "stale" | "miss" | "coalesced")
        ) {
            c.lookups += 1;
        }
        if let Some(s) = rec.spend.as_ref().filter(|s| !s.cached)
            && let Some(usd) = s.usd
        {
            use rust_decimal::prelude::ToPrimitive;
            c.spend_usd += usd.to_f64().unwrap_or(0.0);
        }
    }

    /// The samples of the 10 s just ended, and a fresh start.
    pub(super) fn take(&self) -> Vec<(String, Sample)> {
        let Ok(mut c) = self.0.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let per_second = |amount: f64| Sample::Amount { amount, per: 1.0 };
        let slow = c.slow.clone();
        for ((kind, name), s) in &mut c.scopes {
            if *kind == "route" {
                for (_, ms) in slow.iter().filter(|(r, _)| r == name) {
                    let over = s.latency.count_between(ms * 1000 + 1, MAX_MICROS);
                    out.push((
                        slow_ratio(name, *ms),
                        Sample::Ratio(over as f64, s.requests as f64),
                    ));
                }
            }
            let l = label(kind, name);
            out.push((
                format!("requests_per_second{l}"),
                per_second(s.requests as f64),
            ));
            out.push((
                format!("error_ratio{l}"),
                Sample::Ratio(s.errors as f64, s.requests as f64),
            ));
            if !s.latency.is_empty() {
                out.push((format!("latency_ms{l}"), Sample::Latency(s.latency.clone())));
                out.push((
                    format!("head_latency_ms{l}"),
                    Sample::Latency(s.head.clone()),
                ));
            }
            if *kind == "route" {
                out.push((format!("tokens_per_second{l}"), per_second(s.tokens as f64)));
                for step in Step::ALL {
                    if s.stages_seen & (1 << step as usize) != 0 {
                        out.push((
                            stage_ms(name, step.as_str()),
                            Sample::Ratio(
                                s.stages[step as usize] as f64 / 1000.0,
                                s.requests as f64,
                            ),
                        ));
                    }
                }
                s.stages = [0; Step::ALL.len()];
            }
            s.requests = 0;
            s.errors = 0;
            s.tokens = 0;
            s.latency.reset();
            s.head.reset();
        }
        if c.lookups > 0 || c.hits.iter().any(|h| *h > 0) {
            let lookups = c.lookups as f64;
            for (tier, hits) in ["memory", "redis", "disk"].iter().zip(c.hits) {
                out.push((
                    format!("cache_hit_ratio{{tier=\"{tier}\"}}"),
                    Sample::Ratio(hits as f64, lookups),
                ));
            }
            let all = c.hits.iter().sum::<u64>() + c.stale;
            out.push((
                "cache_hit_ratio{tier=\"all\"}".to_string(),
                Sample::Ratio(all as f64, lookups),
            ));
        }
        out.push((
            "spend_usd_per_hour".to_string(),
            Sample::Amount {
                amount: c.spend_usd,
                per: 3600.0,
            },
        ));
        c.lookups = 0;
        c.hits = [0; 3];
        c.stale = 0;
        c.spend_usd = 0.0;
        out
    }
}

/// `{name="value"}`, the value escaped as Prometheus writes it.
pub fn label(name: &str, value: &str) -> String {
    format!("{{{name}=\"{}\"}}", escape(value))
}

/// The series of the share of `route`'s requests slower than `ms` milliseconds (kept for
/// the routes [`super::History::watch_latency`] names).
pub fn slow_ratio(route: &str, ms: u64) -> String {
    format!("slow_ratio{{route=\"{}\",over_ms=\"{ms}\"}}", escape(route))
}

/// The series of the mean time `route`'s requests spent in `stage`, in milliseconds.
pub fn stage_ms(route: &str, stage: &str) -> String {
    format!("stage_ms{{route=\"{}\",stage=\"{stage}\"}}", escape(route))
}

/// A label value as Prometheus writes it: `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Takes each record into the history's counts.
#[derive(Debug, Clone)]
pub struct RecordSink(pub(super) Arc<Records>);

impl Sink for RecordSink {
    fn take(&self, rec: &RequestRecord) {
        self.0.add(rec);
    }
}
