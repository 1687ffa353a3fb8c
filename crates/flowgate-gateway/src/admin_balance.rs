//! The load balancer on the admin listener: `GET /api/v1/performance/load-balancer/metrics`
//! (per pool: its strategy; per endpoint: weight, requests in flight, latency estimate,
//! ejection) and
//! `POST /api/v1/performance/load-balancer/strategy` (`{"pool": "llm", "strategy":
//! "round_robin"}`: switches a pool's strategy at run time, until a reload changes that pool).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use flowgate_balance::Strategy;
use serde_json::{Value, json};

use crate::admin::client_error;
use crate::gateway::Gateway;

pub fn routes() -> axum::Router<Arc<Gateway>> {
    axum::Router::new()
        .route("/api/v1/performance/load-balancer/metrics", get(metrics))
        .route("/api/v1/performance/load-balancer/strategy", post(strategy))
}

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
                .map(|(e, (n, h))| {
                    json!({
                        "name": &*e.name,
                        "weight": n.weight(),
                        "in_flight": e.active(),
                        "latency_ms": n.latency(now).as_secs_f64() * 1e3,
                        "ejected": h.is_out(now),
                        "ejected_for_ms": h.out_for(now).map(|d| d.as_millis() as u64),
                        "times_ejected": h.times_ejected(),
                    })
                })
                .collect();
            json!({"pool": &*u.name, "strategy": b.strategy().as_str(), "endpoints": endpoints})
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
