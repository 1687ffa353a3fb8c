//! The metrics history on the admin listener: `GET /api/v1/metrics/series` (what exists)
//! and `GET /api/v1/metrics/history?series=…&window=…|from=…&to=…&step=10s|1m|1h` (a
//! series' points, JSON, or CSV with `Accept: text/csv`).
//!
//! The window is `window` (back from now: `15m`, `6h`, `7d`; default `1h`) or `from` and
//! `to` (Unix seconds, `to` default now). The step is a resolution; without one, the finest
//! whose points cover the window within 10,000 points and are still kept.

use std::collections::HashMap;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::Json;
use axum::extract::{Query as Params, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flowgate_telemetry::history::{History, Point, Resolution};
use serde_json::json;

use super::reply::{client_error, server_error};
use crate::gateway::Gateway;

/// The most points one read returns.
const MAX_POINTS: u64 = 10_000;

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new()
        .routes(routes!(series))
        .routes(routes!(history))
}

fn bad(message: String) -> Response {
    client_error(StatusCode::BAD_REQUEST, &message, "invalid_parameter")
}

#[utoipa::path(
    get,
    path = "/api/v1/metrics/series",
    tag = "history",
    summary = "the series the metrics history keeps",
    responses((status = 200, description = "the series", body = Object), (status = 409, description = "the metrics history is off ([history] enabled = false)", body = super::openapi::ApiError))
)]
async fn series(State(gw): State<Arc<Gateway>>) -> Response {
    let Some(h) = gw.history() else {
        return super::reply::history_off();
    };
    let retention = h.settings().retention;
    Json(json!({
        "series": h.series(),
        "resolutions": Resolution::ALL.iter().zip(retention).map(|(r, keep)| json!({
            "step": r.as_str(),
            "retention_seconds": keep.as_secs(),
        })).collect::<Vec<_>>(),
        "dropped_series": h.dropped(),
        "file_bytes": h.file_bytes(),
    }))
    .into_response()
}

/// The window, and the step asked or chosen.
fn window(
    h: &History,
    now: u64,
    p: &HashMap<String, String>,
) -> Result<(u64, u64, Resolution), String> {
    if let Some(k) = p
        .keys()
        .find(|k| !["series", "window", "from", "to", "step"].contains(&k.as_str()))
    {
        return Err(format!("unknown parameter {k:?}"));
    }
    let secs = |k: &str| -> Result<Option<u64>, String> {
        p.get(k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| format!("{k}: {v:?} is not a time in Unix seconds"))
            })
            .transpose()
    };
    let to = secs("to")?.unwrap_or(now);
    let from = match (p.get("window"), secs("from")?) {
        (Some(_), Some(_)) => return Err("window and from exclude each other".into()),
        (Some(w), None) => {
            let len = flowgate_config::parse_window(w).ok_or_else(|| {
                format!("window: {w:?} is not a duration such as \"15m\", \"6h\" or \"7d\"")
            })?;
            to.saturating_sub(len)
        }
        (None, Some(from)) => from,
        (None, None) => to.saturating_sub(3600),
    };
    if from >= to {
        return Err(format!(
            "the window is empty: from {from} is not before to {to}"
        ));
    }
    let kept = |r: Resolution| now.saturating_sub(h.settings().retention[r.index()].as_secs());
    let step = match p.get("step") {
        Some(s) => {
            Resolution::parse(s).ok_or_else(|| format!("step: {s:?}: expected 10s, 1m or 1h"))?
        }
        None => Resolution::ALL
            .into_iter()
            .find(|r| (to - from) / r.secs() <= MAX_POINTS && from >= kept(*r))
            .unwrap_or(Resolution::Hour),
    };
    if (to - from) / step.secs() > MAX_POINTS {
        return Err(format!(
            "{} points of {} are more than {MAX_POINTS}: a coarser step or a shorter window",
            (to - from) / step.secs(),
            step.as_str()
        ));
    }
    Ok((from, to, step))
}

fn csv(series: &str, points: &[Point]) -> String {
    let mut out = String::from("timestamp,time,series,value,min,max\n");
    for p in points {
        out.push_str(&format!(
            "{},{},\"{}\",{},{},{}\n",
            p.t,
            flowgate_clock::rfc3339_millis(p.t * 1000),
            series.replace('"', "\"\""),
            p.value,
            p.min,
            p.max
        ));
    }
    out
}

#[utoipa::path(
    get,
    path = "/api/v1/metrics/history",
    tag = "history",
    summary = "a series' points (JSON, or CSV with Accept: text/csv)",
    params(("series" = String, Query, description = "the series"), ("window" = Option<String>, Query, description = "back from now (`15m`, `6h`, `7d`; 1h by default)"), ("from" = Option<u64>, Query, description = "from (Unix seconds)"), ("to" = Option<u64>, Query, description = "to (Unix seconds)"), ("step" = Option<String>, Query, description = "`10s`, `1m` or `1h`")),
    responses((status = 200, description = "the points", body = Object), (status = 400, description = "a bad window or step", body = super::openapi::ApiError), (status = 404, description = "no such series", body = super::openapi::ApiError), (status = 409, description = "the metrics history is off ([history] enabled = false)", body = super::openapi::ApiError))
)]
async fn history(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Params(p): Params<HashMap<String, String>>,
) -> Response {
    let Some(h) = gw.history() else {
        return super::reply::history_off();
    };
    let Some(name) = p.get("series") else {
        return bad("series: missing (GET /api/v1/metrics/series lists them)".into());
    };
    let now = gw.clock().unix_millis() / 1000;
    let (from, to, step) = match window(h, now, &p) {
        Ok(w) => w,
        Err(why) => return bad(why),
    };
    if let Some(r) = super::reply::unknown_series(h, name) {
        return r;
    }
    let points = match h.read(name, step, from, to) {
        Ok(p) => p,
        Err(e) => return server_error(&e.to_string()),
    };
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/csv"));
    if wants_csv {
        return (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            csv(name, &points),
        )
            .into_response();
    }
    Json(json!({
        "series": name,
        "step": step.as_str(),
        "from": from,
        "to": to,
        "points": points,
    }))
    .into_response()
}
