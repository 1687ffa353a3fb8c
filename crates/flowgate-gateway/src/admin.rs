//! The admin listener: `/metrics` (Prometheus), `/health`, `/ready`, and the JSON API under
//! `/api/v1/performance/...`. It runs on its own port so that it can be firewalled apart
//! from the data plane.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::error::error_body;
use crate::gateway::Gateway;

/// The admin API's router.
pub fn router(gw: Arc<Gateway>) -> axum::Router {
    axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/api/v1/performance/metrics", get(performance))
        .fallback(not_found)
        .with_state(gw)
}

async fn metrics(State(gw): State<Arc<Gateway>>) -> Response {
    let mut r = gw.telemetry().encode_prometheus().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

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

async fn performance(State(gw): State<Arc<Gateway>>) -> Response {
    match gw.telemetry().report() {
        Some(r) => Json(r).into_response(),
        None => (StatusCode::INTERNAL_SERVER_ERROR, "telemetry unavailable").into_response(),
    }
}

async fn not_found() -> Response {
    let body = error_body(
        "no such admin endpoint",
        "invalid_request_error",
        "not_found",
    );
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}
