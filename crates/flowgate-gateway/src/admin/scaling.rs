//! Scaling on the admin listener ([`crate::scaling`]):
//! - `GET /api/v1/scaling/status`: each scaled pool's policy, its last plan (demand,
//!   prediction, utilization, the decision with its reason) and its recent changes;
//! - `POST /api/v1/scaling/optimize`: decide for every pool now, and answer the plans;
//! - `GET /api/v1/scaling/keda/{pool}`: the pool's numbers as KEDA's `metrics-api` scaler
//!   reads them (`valueLocation: replicaDemand`, `targetValue: "1"`; or `desiredReplicas`).

use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::reply::client_error;
use crate::gateway::Gateway;
use crate::scaling::Plan;

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(optimize))
        .routes(routes!(keda))
}

fn policy_json(gw: &Gateway, pool: &str) -> Value {
    let rt = gw.runtime();
    let Some(p) = rt.config.scaling.pools.iter().find(|p| p.pool == pool) else {
        return Value::Null;
    };
    let s = &p.policy;
    json!({
        "min": s.min,
        "max": s.max,
        "up_at": s.up_at,
        "down_at": s.down_at,
        "target": s.target,
        "up_stabilization_seconds": s.up_stabilization.as_secs(),
        "down_stabilization_seconds": s.down_stabilization.as_secs(),
        "up_cooldown_seconds": s.up_cooldown.as_secs(),
        "down_cooldown_seconds": s.down_cooldown.as_secs(),
        "max_step_up": s.max_step_up,
        "max_step_down": s.max_step_down,
        "lead_seconds": s.lead.map(|l| l.as_secs()),
        "per_replica": { p.per_replica.unit(): p.per_replica.capacity() },
        "replicas": p.replicas,
    })
}

/// A plan as JSON: NaN (no demand measured) as null.
fn plan_json(p: &Plan) -> Value {
    let mut v = serde_json::to_value(p).unwrap_or_default();
    let finite = |x: f64| if x.is_finite() { json!(x) } else { Value::Null };
    v["demand"] = finite(p.demand);
    v["replica_demand"] = finite(p.replica_demand);
    v["decision"]["input"]["utilization"] = finite(p.decision.input.utilization);
    v
}

pub(super) fn plans(gw: &Gateway, list: Vec<(Plan, Vec<crate::scaling::Change>)>) -> Value {
    let rt = gw.runtime();
    json!({
        "enabled": rt.config.scaling.enabled,
        "interval_seconds": rt.config.scaling.interval.as_secs(),
        "dry_run": rt.config.scaling.pools.iter().map(|p| (p.pool.clone(), json!(p.dry_run))).collect::<serde_json::Map<_, _>>(),
        "pools": list.iter().map(|(p, changes)| json!({
            "pool": p.pool,
            "policy": policy_json(gw, &p.pool),
            "plan": plan_json(p),
            "changes": changes,
        })).collect::<Vec<_>>(),
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/scaling/status",
    tag = "scaling",
    summary = "scaling plans for pools and flowgate itself",
    responses((status = 200, description = "the plans", body = Object))
)]
async fn status(State(gw): State<Arc<Gateway>>) -> Response {
    Json(plans(&gw, gw.scaling().status())).into_response()
}

#[utoipa::path(
    post,
    path = "/api/v1/scaling/optimize",
    tag = "scaling",
    summary = "decide now and act (or say what a dry run would do)",
    responses((status = 200, description = "the plans and actions", body = Object))
)]
async fn optimize(State(gw): State<Arc<Gateway>>) -> Response {
    crate::scaling_loop::cycle(&gw).await;
    Json(plans(&gw, gw.scaling().status())).into_response()
}

#[utoipa::path(
    get,
    path = "/api/v1/scaling/keda/{pool}",
    tag = "scaling",
    summary = "KEDA metrics-api value for a pool",
    params(("pool" = String, Path, description = "the pool, or flowgate")),
    responses((status = 200, description = "the value", body = Object), (status = 404, description = "no such scaled pool", body = super::openapi::ApiError))
)]
async fn keda(State(gw): State<Arc<Gateway>>, Path(pool): Path<String>) -> Response {
    let Some((p, _)) = gw
        .scaling()
        .status()
        .into_iter()
        .find(|(p, _)| p.pool == pool)
    else {
        let known = gw
            .runtime()
            .config
            .scaling
            .pools
            .iter()
            .any(|p| p.pool == pool);
        let why = if known {
            format!("pool {pool:?} has no decision yet: POST /api/v1/scaling/optimize makes one")
        } else {
            format!("pool {pool:?} is not scaled (no [scaling.pools.{pool}])")
        };
        return client_error(StatusCode::NOT_FOUND, &why, "pool_not_found");
    };
    Json(json!({
        "pool": p.pool,
        "replicaDemand": if p.replica_demand.is_finite() { p.replica_demand } else { 0.0 },
        "desiredReplicas": p.decision.desired,
        "currentReplicas": p.decision.input.current,
        "utilization": if p.decision.input.utilization.is_finite() { p.decision.input.utilization } else { 0.0 },
    }))
    .into_response()
}
