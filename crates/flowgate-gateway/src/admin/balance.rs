//! The load balancer on the admin listener: `GET /api/v1/performance/load-balancer/metrics`
//! (per pool: its strategy, retries, retry budget, hedges and fallbacks; per endpoint:
//! weight, requests in flight, latency estimate, outcomes, recent success rate, breaker
//! state) and
//! `POST /api/v1/performance/load-balancer/strategy` (`{"pool": "llm", "strategy":
//! "round_robin"}`: switches a pool's strategy at run time, until a reload changes that pool).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flowgate_balance::Strategy;
use serde_json::{Value, json};

use super::reply::client_error;
use crate::gateway::Gateway;

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new()
        .routes(routes!(metrics))
        .routes(routes!(strategy))
}

#[utoipa::path(
    get,
    path = "/api/v1/performance/load-balancer/metrics",
    tag = "load-balancer",
    summary = "pools and endpoints: strategy, weights, latency, outcomes, breakers",
    responses((status = 200, description = "the pools", body = Object))
)]
async fn metrics(State(gw): State<Arc<Gateway>>) -> Json<Value> {
    let rt = gw.runtime();
    let pools: Vec<Value> = rt
        .upstreams
        .iter()
        .map(|u| {
            let b = u.balancer();
            let now = b.now_ns();
            let endpoints: Vec<Value> = u
                .endpoints()
                .iter()
                .zip(b.nodes().iter().zip(b.health()))
                .enumerate()
                .map(|(i, (e, (n, h)))| {
                    let (requests, failures) = h.totals();
                    let (recent, recent_failures) = h.window(now, b.outliers());
                    json!({
                        "name": &*e.name,
                        "weight": n.weight(),
                        "in_flight": e.active(),
                        "latency_ms": n.latency(now).as_secs_f64() * 1e3,
                        "requests": requests,
                        "failures": failures,
                        "success_rate": (recent > 0)
                            .then(|| 1.0 - f64::from(recent_failures) / f64::from(recent)),
                        "state": h.state(now).as_str(),
                        "ejected": h.is_out(now),
                        "ejected_for_ms": h.out_for(now).map(|d| d.as_millis() as u64),
                        "times_ejected": h.times_ejected(),
                        "sessions": u.sessions.as_ref().map(|s| s.on(i)),
                    })
                })
                .collect();
            let (requests, retries, exhausted) = u.budget.counts(now);
            let c = &u.counts;
            let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            json!({
                "pool": &*u.name,
                "strategy": b.strategy().as_str(),
                "endpoints": endpoints,
                "retries": n(&c.retries),
                "retry_budget": {
                    "window_s": flowgate_balance::retry::BUDGET_WINDOW_SECS,
                    "requests": requests,
                    "retries": retries,
                    "exhausted": exhausted,
                },
                "hedges": n(&c.hedges),
                "hedges_won": n(&c.hedges_won),
                "fallbacks": n(&c.fallbacks),
                "sessions": u.sessions.as_ref().map(|s| {
                    let c = s.counts();
                    json!({
                        "active": c.active,
                        "moved": c.moved,
                        "expired": c.expired,
                        "overflow": c.overflow,
                        "untracked": c.untracked,
                    })
                }),
            })
        })
        .collect();
    Json(json!({ "pools": pools }))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Switch {
    pool: String,
    strategy: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/performance/load-balancer/strategy",
    tag = "load-balancer",
    summary = "switch a pool's balancing strategy",
    request_body(content = Object, description = "pool, strategy", content_type = "application/json"),
    responses((status = 200, description = "the new and previous strategy", body = Object), (status = 400, description = "a bad body or unknown strategy", body = super::openapi::ApiError), (status = 404, description = "no such pool", body = super::openapi::ApiError))
)]
async fn strategy(State(gw): State<Arc<Gateway>>, body: axum::body::Bytes) -> Response {
    let bad = |m: &str| client_error(StatusCode::BAD_REQUEST, m, "invalid_strategy_request");
    let sw: Switch = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            return bad(&format!(
                "expected {{\"pool\": NAME, \"strategy\": NAME}}: {e}"
            ));
        }
    };
    let s = match Strategy::parse(&sw.strategy) {
        Ok(s) => s,
        Err(why) => return bad(&why),
    };
    let rt = gw.runtime();
    let Some(u) = rt.upstreams.iter().find(|u| *u.name == sw.pool) else {
        return client_error(
            StatusCode::NOT_FOUND,
            &format!("no pool named {:?}", sw.pool),
            "pool_not_found",
        );
    };
    let was = u.balancer().strategy();
    u.balancer().set_strategy(s);
    tracing::info!(pool = %u.name, from = was.as_str(), to = s.as_str(), "balancing strategy switched");
    Json(json!({"pool": &*u.name, "strategy": s.as_str(), "was": was.as_str()})).into_response()
}
