//! The gateway's state: Prometheus metrics, health, readiness and the performance report.

use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::reply::OPENMETRICS;
use crate::gateway::Gateway;

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new()
        .routes(routes!(metrics))
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(performance))
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "status",
    summary = "Prometheus metrics (OpenMetrics text)",
    responses((status = 200, description = "the metrics", body = String, content_type = "application/openmetrics-text"))
)]
async fn metrics(State(gw): State<Arc<Gateway>>) -> Response {
    let mut r = gw.telemetry().encode_prometheus().into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, OPENMETRICS.clone());
    r
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "status",
    summary = "liveness: version, uptime, config, pools",
    responses((status = 200, description = "alive", body = Object))
)]
async fn health(State(gw): State<Arc<Gateway>>) -> Json<serde_json::Value> {
    let rt = gw.runtime();
    let (reloads, last_error) = gw.reload_status();
    let pools: Vec<_> = rt
        .upstreams
        .iter()
        .map(|u| {
            let eps: Vec<_> = u
                .endpoints()
                .iter()
                .map(|e| json!({"name": &*e.name, "active": e.active(), "idle_connections": e.idle_count()}))
                .collect();
            json!({"name": &*u.name, "endpoints": eps})
        })
        .collect();
    Json(json!({
        "status": if last_error.is_some() { "degraded" } else { "ok" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": gw.uptime().as_secs(),
        "draining": gw.is_draining(),
        "workers": gw.workers(),
        "config": {
            "origin": rt.config.origin,
            "routes": rt.config.routes.len(),
            "pools": rt.config.pools.len(),
            "reloads": reloads,
            "last_reload_error": last_error,
        },
        "pools": pools,
    }))
}

#[utoipa::path(
    get,
    path = "/ready",
    tag = "status",
    summary = "readiness: 503 while draining",
    responses((status = 200, description = "ready", body = Object), (status = 503, description = "draining", body = Object))
)]
async fn ready(State(gw): State<Arc<Gateway>>) -> (StatusCode, Json<serde_json::Value>) {
    if gw.is_draining() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": "draining"})),
        )
    } else {
        (StatusCode::OK, Json(json!({"ready": true})))
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/performance/metrics",
    tag = "status",
    summary = "request counts, latency percentiles and errors by route, pool and endpoint",
    responses((status = 200, description = "the counts", body = Object), (status = 500, description = "telemetry unavailable", body = super::openapi::ApiError))
)]
async fn performance(State(gw): State<Arc<Gateway>>) -> Response {
    match gw.telemetry().report() {
        Some(r) => Json(r).into_response(),
        None => (StatusCode::INTERNAL_SERVER_ERROR, "telemetry unavailable").into_response(),
    }
}
