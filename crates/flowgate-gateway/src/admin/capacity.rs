//! Capacity planning on the admin listener ([`crate::capacity`] finds the resources,
//! [`flowgate_insight::capacity`] plans):
//! - `GET /api/v1/capacity/scenarios`: the scenarios (`baseline`, `growth-10`, `growth-25`,
//!   `peak-2x`, and `custom` when `?growth=0.15&peak=1.5` are given);
//! - `GET /api/v1/capacity/bottlenecks`: every resource under every scenario, those that
//!   run out soonest first (`?scenario=NAME` for one, `&days=` the horizon, 90 by default);
//! - `GET /api/v1/capacity/recommendations`: what to change, from the same;
//! - `GET /api/v1/capacity/forecast?series=NAME[&days=30]`: a history series' hourly
//!   forecast with 80% and 95% intervals ([`flowgate_insight::forecast`]).

use std::collections::HashMap;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::Json;
use axum::extract::{Query as Params, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flowgate_insight::capacity::{Outlook, Scenario, outlook};
use flowgate_insight::forecast::{Season, forecast};
use flowgate_telemetry::history::Resolution;
use serde_json::json;

use super::reply::client_error;
use crate::gateway::Gateway;

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new()
        .routes(routes!(scenarios))
        .routes(routes!(bottlenecks))
        .routes(routes!(recommendations))
        .routes(routes!(forecast_of))
}

type Query = HashMap<String, String>;

fn bad(m: &str) -> Response {
    client_error(StatusCode::BAD_REQUEST, m, "invalid_parameter")
}

/// A parameter's problem, said to the client as 400 `invalid_parameter`.
type Checked<T> = Result<T, String>;

fn number(p: &Query, k: &str) -> Checked<Option<f64>> {
    match p.get(k) {
        None => Ok(None),
        Some(v) => match v.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(Some(x)),
            _ => Err(format!("{k}: {v:?} is not a number")),
        },
    }
}

/// The standard scenarios, and `custom` from `growth` and `peak` when either is given.
fn scenario_list(p: &Query) -> Checked<Vec<Scenario>> {
    let mut list = Scenario::standard();
    let growth = number(p, "growth")?;
    let peak = number(p, "peak")?;
    if growth.is_some() || peak.is_some() {
        let g = growth.unwrap_or(0.0);
        let k = peak.unwrap_or(1.0);
        if !(-0.9..=10.0).contains(&g) {
            return Err(format!(
                "growth: {g} is out of range: a share a month from -0.9 to 10 (0.15 is +15%)"
            ));
        }
        if !(0.01..=100.0).contains(&k) {
            return Err(format!(
                "peak: {k} is out of range: a multiplier from 0.01 to 100"
            ));
        }
        list.push(Scenario::custom(
            "custom",
            g,
            k,
            &format!(
                "demand grows {:.0}% a month, at {k} times the usual",
                g * 100.0
            ),
        ));
    }
    Ok(list)
}

fn days(p: &Query, default: u64) -> Checked<u64> {
    match number(p, "days")? {
        None => Ok(default),
        Some(d) if (1.0..=90.0).contains(&d) => Ok(d as u64),
        Some(d) => Err(format!("days: {d} is out of range: 1 to 90")),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/capacity/scenarios",
    tag = "capacity",
    summary = "the growth scenarios (and custom with growth and peak)",
    params(("growth" = Option<f64>, Query, description = "monthly growth for the custom scenario (0.15 = 15%)"), ("peak" = Option<f64>, Query, description = "peak factor for the custom scenario")),
    responses((status = 200, description = "the scenarios", body = Object), (status = 400, description = "a bad parameter", body = super::openapi::ApiError))
)]
async fn scenarios(Params(p): Params<Query>) -> Response {
    match scenario_list(&p) {
        Ok(list) => Json(json!({ "scenarios": list })).into_response(),
        Err(m) => bad(&m),
    }
}

/// Every resource under the scenarios asked for, soonest to run out first; the resources
/// without history yet, and those left out.
pub(super) fn plan(gw: &Gateway, p: &Query) -> Checked<serde_json::Value> {
    let mut list = scenario_list(p)?;
    if let Some(name) = p.get("scenario") {
        list.retain(|s| s.name == *name);
    }
    let horizon = days(p, 90)?;
    let now = gw.clock().unix_millis() / 1000;
    let (resources, skipped) = crate::capacity::resources(gw);
    let mut outlooks: Vec<Outlook> = Vec::new();
    let mut no_history = Vec::new();
    for c in &resources {
        let demand = gw
            .history()
            .and_then(|h| crate::capacity::demand(h, &c.demand, now, c.resource.daily_mean));
        let Some((hourly, last)) = demand else {
            no_history.push(c.resource.name.clone());
            continue;
        };
        for s in &list {
            outlooks.push(outlook(&c.resource, &hourly, last, s, horizon));
        }
    }
    outlooks.sort_by_key(|o| o.runs_out.map_or(u64::MAX, |r| r.at));
    Ok(json!({
        "horizon_days": horizon,
        "scenarios": list.iter().map(|s| &s.name).collect::<Vec<_>>(),
        "resources": resources.iter().map(|c| &c.resource).collect::<Vec<_>>(),
        "outlooks": outlooks,
        "no_history_yet": no_history,
        "skipped": skipped,
    }))
}

/// 404 `scenario_not_found` for a `?scenario=` that is none of the list's.
fn unknown_scenario(p: &Query) -> Option<Response> {
    let name = p.get("scenario")?;
    let list = scenario_list(p).ok()?;
    (!list.iter().any(|s| s.name == *name)).then(|| {
        let names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
        client_error(
            StatusCode::NOT_FOUND,
            &format!(
                "scenario: no scenario {name:?} (there are {})",
                names.join(", ")
            ),
            "scenario_not_found",
        )
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/capacity/bottlenecks",
    tag = "capacity",
    summary = "every resource under every scenario, those that run out soonest first",
    params(("scenario" = Option<String>, Query, description = "one scenario"), ("days" = Option<u32>, Query, description = "the horizon (90 by default)"), ("growth" = Option<f64>, Query, description = "custom growth"), ("peak" = Option<f64>, Query, description = "custom peak")),
    responses((status = 200, description = "the resources", body = Object), (status = 400, description = "a bad parameter", body = super::openapi::ApiError), (status = 404, description = "no such scenario", body = super::openapi::ApiError))
)]
async fn bottlenecks(State(gw): State<Arc<Gateway>>, Params(p): Params<Query>) -> Response {
    if let Some(r) = unknown_scenario(&p) {
        return r;
    }
    match plan(&gw, &p) {
        Ok(v) => Json(v).into_response(),
        Err(m) => bad(&m),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/capacity/recommendations",
    tag = "capacity",
    summary = "what to change before resources run out",
    params(("scenario" = Option<String>, Query, description = "one scenario"), ("days" = Option<u32>, Query, description = "the horizon (90 by default)")),
    responses((status = 200, description = "the recommendations", body = Object), (status = 400, description = "a bad parameter", body = super::openapi::ApiError), (status = 404, description = "no such scenario", body = super::openapi::ApiError))
)]
async fn recommendations(State(gw): State<Arc<Gateway>>, Params(p): Params<Query>) -> Response {
    if let Some(r) = unknown_scenario(&p) {
        return r;
    }
    let v = match plan(&gw, &p) {
        Ok(v) => v,
        Err(m) => return bad(&m),
    };
    let recs: Vec<serde_json::Value> = v["outlooks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| !o["recommendation"].is_null())
        .map(|o| {
            json!({
                "resource": o["resource"],
                "scenario": o["scenario"],
                "runs_out": o["runs_out"],
                "utilization": o["utilization"],
                "action": o["recommendation"],
                "evidence": format!(
                    "busiest hour of the last week at {:.0}% of the limit; the daily peak grows {} {} a day",
                    o["utilization"].as_f64().unwrap_or(0.0) * 100.0,
                    o["trend_per_day"],
                    o["unit"].as_str().unwrap_or("")
                ),
            })
        })
        .collect();
    Json(json!({ "recommendations": recs, "skipped": v["skipped"], "no_history_yet": v["no_history_yet"] }))
        .into_response()
}

#[utoipa::path(
    get,
    path = "/api/v1/capacity/forecast",
    tag = "capacity",
    summary = "a history series' hourly forecast with 80% and 95% intervals",
    params(("series" = String, Query, description = "the series"), ("days" = Option<u32>, Query, description = "how far ahead (30 by default)")),
    responses((status = 200, description = "the forecast", body = Object), (status = 400, description = "a missing or bad parameter", body = super::openapi::ApiError), (status = 404, description = "no such series", body = super::openapi::ApiError), (status = 409, description = "the metrics history is off ([history] enabled = false)", body = super::openapi::ApiError))
)]
async fn forecast_of(State(gw): State<Arc<Gateway>>, Params(p): Params<Query>) -> Response {
    let Some(history) = gw.history() else {
        return super::reply::history_off();
    };
    let Some(series) = p.get("series") else {
        return bad("series: missing (a history series, e.g. requests_per_second{route=\"chat\"})");
    };
    let horizon = match days(&p, 30) {
        Ok(d) => d,
        Err(m) => return bad(&m),
    };
    if let Some(r) = super::reply::unknown_series(history, series) {
        return r;
    }
    let now = gw.clock().unix_millis() / 1000;
    let from = now.saturating_sub(crate::capacity::HISTORY_DAYS * 86_400);
    let points = match history.read(series, Resolution::Hour, from, now) {
        Ok(p) => p,
        Err(e) => {
            return super::reply::server_error(&format!("the history could not be read: {e}"));
        }
    };
    let regular: Vec<(i64, f64)> = points
        .iter()
        .map(|p| (i64::try_from(p.t).unwrap_or(i64::MAX), p.value))
        .collect();
    let Some((first, step, values)) = flowgate_insight::forecast::regular(&regular) else {
        return Json(json!({ "series": series, "history_points": 0, "forecast": [] }))
            .into_response();
    };
    let f = forecast(
        &values,
        step,
        (horizon * 86_400 / step.max(1) as u64) as usize,
        Season::Auto,
    );
    let last = first + step * (values.len() as i64 - 1);
    let steps: Vec<serde_json::Value> = f
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({
                "t": last + step * (i as i64 + 1),
                "forecast": s.forecast, "lo80": s.lo80, "hi80": s.hi80, "lo95": s.lo95, "hi95": s.hi95,
            })
        })
        .collect();
    Json(json!({
        "series": series,
        "history_points": values.len(),
        "step_secs": step,
        "seasons": f.seasons,
        "methods": f.methods,
        "forecast": steps,
    }))
    .into_response()
}
