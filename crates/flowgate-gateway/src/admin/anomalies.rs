//! `GET /api/v1/anomalies`: what the detectors on the history found — the anomalies kept
//! (the last 1,000), newest first, each with its series, when it started and ended, its
//! peak score, value, expected value and band, and direction; `?state=open` for the open
//! ones only, `&series=` a pattern (`*` matches any run), `&from=&to=` Unix seconds,
//! `&limit=` (100 by default). With the settings in force and how many series are watched.

use std::collections::HashMap;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::Json;
use axum::extract::{Query as Params, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::reply::client_error;
use crate::gateway::Gateway;

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new().routes(routes!(anomalies))
}

/// The most one answer holds (all that is kept).
const MAX: usize = flowgate_insight::anomaly::watch::KEPT;

#[utoipa::path(
    get,
    path = "/api/v1/anomalies",
    tag = "anomalies",
    summary = "anomalies found on the history, newest first",
    params(super::openapi::Listing, ("state" = Option<String>, Query, description = "`open` for the open ones only"), ("series" = Option<String>, Query, description = "a series pattern (`*` matches any run)")),
    responses((status = 200, description = "the anomalies", body = Object), (status = 400, description = "a bad parameter", body = super::openapi::ApiError))
)]
async fn anomalies(
    State(gw): State<Arc<Gateway>>,
    Params(p): Params<HashMap<String, String>>,
) -> Response {
    let (from, to, limit) = match super::reply::range(&p, 100) {
        Ok(r) => r,
        Err(m) => return client_error(StatusCode::BAD_REQUEST, &m, "invalid_parameter"),
    };
    let open_only = match p.get("state").map(String::as_str) {
        None | Some("all") => false,
        Some("open") => true,
        Some(s) => {
            return client_error(
                StatusCode::BAD_REQUEST,
                &format!("state: {s:?} is neither \"open\" nor \"all\""),
                "invalid_parameter",
            );
        }
    };
    let pattern = p.get("series").map(String::as_str);
    let limit = usize::try_from(limit).unwrap_or(MAX).min(MAX);
    let body = gw.anomalies().with(|w| {
        let s = w.settings();
        let list: Vec<_> = w
            .between(from, to)
            .into_iter()
            .filter(|a| !open_only || a.is_open())
            .filter(|a| pattern.is_none_or(|p| flowgate_config::series_matches(p, &a.series)))
            .take(limit)
            .map(|a| {
                let mut v = serde_json::to_value(a).unwrap_or_default();
                v["summary"] = json!(a.summary());
                v
            })
            .collect();
        json!({
            "enabled": s.enabled && gw.history().is_some(),
            "threshold": s.threshold,
            "quiet_secs": s.quiet.as_secs(),
            "series_patterns": s.series,
            "tracked": w.tracked(),
            "refused": w.refused(),
            "memory_bytes": w.memory_bytes(),
            "open": w.open().len(),
            "anomalies": list,
        })
    });
    Json(body.unwrap_or_default()).into_response()
}
