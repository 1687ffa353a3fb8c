//! Admission control on the admin listener: `GET /api/v1/performance/rate-limits` (every
//! limit of the running config and of the keys, its counts, the values nearest to or over
//! it, the most limited, and the state of shared counting) and
//! `GET /api/v1/performance/concurrency` (every concurrency limiter: in flight, queued by
//! priority, waits, timeouts and sheds per priority, adaptive limits and their latency).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::Json;
use axum::extract::State;
use flowgate_admission::Priority;
use flowgate_config::format_duration;
use serde_json::{Value, json};

use crate::admission::{Limit, describe};
use crate::gateway::Gateway;

/// Values listed per limit, nearest to (or over) it first.
const BUSIEST: usize = 10;

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new()
        .routes(routes!(rate_limits))
        .routes(routes!(concurrency))
}

fn limit_shown(l: &Limit, key: Option<&str>, shared: bool) -> Value {
    let rate = l.rate();
    let t = l.table();
    let busiest: Vec<Value> = t
        .local
        .busiest(BUSIEST)
        .into_iter()
        .map(|(value, backlog)| {
            json!({
                "value": describe(l.scope(), &value),
                "full_again_in_ms": backlog.as_millis() as u64,
                // Units left now, as the x-ratelimit-remaining-* field would say.
                "remaining": remaining(rate.burst, rate.amount, rate.per, backlog),
            })
        })
        .collect();
    json!({
        "name": l.name(),
        "key": key,
        "scope": l.scope().to_string(),
        "unit": rate.unit.as_str(),
        "amount": rate.amount,
        "per": format_duration(rate.per),
        "burst": rate.burst,
        "routes": l.routes(),
        "admitted": t.admitted.load(Ordering::Relaxed),
        "limited": t.limited.load(Ordering::Relaxed),
        // With shared counting, the values here are the local fallback's.
        "counted_in": if shared { "redis" } else { "gateway" },
        "busiest": busiest,
    })
}

/// Units a value has left when it is `backlog` away from its full burst.
fn remaining(
    burst: u64,
    amount: u64,
    per: std::time::Duration,
    backlog: std::time::Duration,
) -> u64 {
    let interval = per.as_nanos() / u128::from(amount.max(1));
    let used = backlog.as_nanos().div_ceil(interval.max(1));
    u64::try_from(u128::from(burst).saturating_sub(used)).unwrap_or(0)
}

#[utoipa::path(
    get,
    path = "/api/v1/performance/rate-limits",
    tag = "admission",
    summary = "rate limits, what they admitted and refused",
    responses((status = 200, description = "the limits", body = Object))
)]
async fn rate_limits(State(gw): State<Arc<Gateway>>) -> Json<Value> {
    let rt = gw.runtime();
    let shared = gw.counts().shared();
    let mut limits: Vec<Value> = rt
        .rate_limits
        .iter()
        .map(|l| limit_shown(l, None, shared.is_some()))
        .collect();
    for c in gw.auth().list(&rt.keys) {
        limits.extend(
            c.limits
                .iter()
                .map(|l| limit_shown(l, Some(&c.key.name), shared.is_some())),
        );
    }
    let mut top: Vec<(&str, u64)> = limits
        .iter()
        .filter_map(|l| Some((l["name"].as_str()?, l["limited"].as_u64()?)))
        .filter(|(_, n)| *n > 0)
        .collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    top.truncate(BUSIEST);
    let top: Vec<Value> = top
        .into_iter()
        .map(|(name, n)| json!({"limit": name, "limited": n}))
        .collect();
    let shared = shared.map(|s| {
        let (local, checks) = s.fallback();
        json!({"redis": true, "counting_locally": local, "fallback_checks": checks})
    });
    Json(json!({"limits": limits, "most_limited": top, "shared": shared}))
}

fn per_priority(counts: &[AtomicU64; 4]) -> Value {
    let mut m = serde_json::Map::new();
    for p in Priority::ALL {
        m.insert(
            p.as_str().into(),
            counts[p as usize].load(Ordering::Relaxed).into(),
        );
    }
    Value::Object(m)
}

#[utoipa::path(
    get,
    path = "/api/v1/performance/concurrency",
    tag = "admission",
    summary = "concurrency limits and queues",
    responses((status = 200, description = "the limits", body = Object))
)]
async fn concurrency(State(gw): State<Arc<Gateway>>) -> Json<Value> {
    let limiters: Vec<Value> = gw
        .queues()
        .all()
        .into_iter()
        .map(|(scope, name, g)| {
            let c = &g.limiter;
            let s = c.snapshot();
            let n = c.counters();
            let mut queued = serde_json::Map::new();
            for p in Priority::ALL {
                queued.insert(p.as_str().into(), s.queued[p as usize].into());
            }
            let adaptive = c.adaptive_settings().map(|a| {
                let (recent, usual) = c.latencies().unwrap_or_default();
                json!({
                    "min": a.min,
                    "max": a.max,
                    "recent_latency_ms": recent.as_secs_f64() * 1e3,
                    "usual_latency_ms": usual.as_secs_f64() * 1e3,
                })
            });
            json!({
                "scope": scope.as_str(),
                "name": name,
                "limit": s.limit,
                "burst": s.burst,
                "in_flight": s.in_flight,
                "queue": s.queue,
                "queue_timeout": format_duration(c.queue_timeout()),
                "queued": queued,
                "admitted": per_priority(&n.admitted),
                "waited": per_priority(&n.waited),
                "timeouts": per_priority(&n.timeouts),
                "shed": per_priority(&n.shed),
                "adaptive": adaptive,
            })
        })
        .collect();
    Json(json!({"limiters": limiters}))
}
