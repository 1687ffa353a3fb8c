//! The performance report and the recommendations gathered, on the admin listener:
//! - `GET /api/v1/performance/report?window=7d`: over the window (1 hour to 35 days; 7
//!   days by default) the history's traffic, latency percentiles, errors per route, the
//!   cache's hit ratio and spend (minutes for a window up to two days, hours beyond), a
//!   forecast of the traffic with its 80% and 95% intervals, the anomalies, each route's
//!   split of latency by stage (`crate::stages`), the health score, the findings (each
//!   with its evidence) and the recommendations;
//! - `GET /api/v1/performance/recommendations`: what to change, from capacity planning
//!   (resources that run out within 90 days, baseline and +10% a month), the stages of
//!   the last day (over budget, dominant and rising, or dominant and the gateway's own),
//!   spend (the cost recommendations) and the health score (components under 50), each
//!   with its evidence and expected effect.
//!
//! `flowgate report` renders the report as HTML or Markdown with charts.

use std::collections::HashMap;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::Json;
use axum::extract::{Query as Params, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flowgate_insight::bottleneck::RouteStages;
use flowgate_insight::forecast::{Season, forecast, regular};
use flowgate_insight::score::Score;
use flowgate_telemetry::history::{History, Resolution, label};
use serde_json::{Value, json};

use super::reply::client_error;
use crate::gateway::Gateway;

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new()
        .routes(routes!(report))
        .routes(routes!(recommendations))
}

/// `[[t, value], …]` of `series` over [`from`, `to`) at `res`.
fn points(history: &History, series: &str, res: Resolution, from: u64, to: u64) -> Vec<Value> {
    history
        .read(series, res, from, to)
        .unwrap_or_default()
        .iter()
        .map(|p| json!([p.t, p.value]))
        .collect()
}

/// The traffic of every route summed, by point time, at `res`.
fn total_traffic(
    history: &History,
    routes: &[String],
    res: Resolution,
    from: u64,
    to: u64,
) -> Vec<(i64, f64)> {
    let mut by: std::collections::BTreeMap<u64, f64> = std::collections::BTreeMap::new();
    for r in routes {
        let s = format!("requests_per_second{}", label("route", r));
        for p in history.read(&s, res, from, to).unwrap_or_default() {
            *by.entry(p.t).or_default() += p.value;
        }
    }
    by.into_iter()
        .map(|(t, v)| (i64::try_from(t).unwrap_or(i64::MAX), v))
        .collect()
}

#[utoipa::path(
    get,
    path = "/api/v1/performance/report",
    tag = "insight",
    summary = "the performance report: score, traffic, latency, errors, cache, spend, forecast, anomalies, stages, findings, recommendations",
    params(super::openapi::Window),
    responses((status = 200, description = "the report", body = Object), (status = 400, description = "a bad window", body = super::openapi::ApiError), (status = 409, description = "the metrics history is off ([history] enabled = false)", body = super::openapi::ApiError))
)]
async fn report(
    State(gw): State<Arc<Gateway>>,
    Params(p): Params<HashMap<String, String>>,
) -> Response {
    let window = match super::reply::window(&p, 7 * 86_400) {
        Ok(w) => w,
        Err(e) => return client_error(StatusCode::BAD_REQUEST, &e, "invalid_parameter"),
    };
    let Some(history) = gw.history() else {
        return super::reply::history_off();
    };
    let now = gw.clock().unix_millis() / 1000;
    let (from, to) = (now.saturating_sub(window), now + 1);
    let res = crate::stages::resolution(window);
    let rt = gw.runtime();
    let routes: Vec<String> = rt.config.routes.iter().map(|r| r.name.clone()).collect();
    let per_route = |base: &str| -> Vec<Value> {
        routes
            .iter()
            .map(|r| {
                let s = format!("{base}{}", label("route", r));
                json!({ "route": r, "points": points(history, &s, res, from, to) })
            })
            .collect()
    };
    let latency: Vec<Value> = routes
        .iter()
        .map(|r| {
            let l = label("route", r);
            json!({
                "route": r,
                "p50": points(history, &format!("latency_ms_p50{l}"), res, from, to),
                "p95": points(history, &format!("latency_ms_p95{l}"), res, from, to),
                "p99": points(history, &format!("latency_ms_p99{l}"), res, from, to),
            })
        })
        .collect();
    let forecast_json = traffic_forecast(history, &routes, now, window);
    let anomalies: Vec<Value> = gw
        .anomalies()
        .with(|w| {
            w.between(from, to)
                .into_iter()
                .map(|a| {
                    let mut v = serde_json::to_value(a).unwrap_or_default();
                    v["summary"] = json!(a.summary());
                    v
                })
                .collect()
        })
        .unwrap_or_default();
    let score = super::score::current(&gw);
    let stages = crate::stages::by_route(&gw, history, (from, to), None);
    let (recommendations, _) = gather(&gw, &score, &stages);
    let mut findings: Vec<Value> = score
        .components
        .iter()
        .filter(|c| c.score < 80.0)
        .map(|c| {
            json!({
                "area": "health",
                "finding": format!("{} scores {:.0} of 100", c.name, c.score),
                "evidence": c.why,
            })
        })
        .collect();
    findings.extend(stages.iter().flat_map(|r| {
        r.findings.iter().map(|f| {
            json!({
                "area": "latency",
                "finding": f,
                "evidence": format!(
                    "stage_ms of route {} over the window ({} per point)",
                    r.route,
                    res.as_str()
                ),
            })
        })
    }));
    findings.extend(anomalies.iter().map(|a| {
        json!({
            "area": "anomalies",
            "finding": format!("an anomaly on {}", a["series"].as_str().unwrap_or("?")),
            "evidence": a["summary"],
        })
    }));
    Json(json!({
        "window": { "from": from, "to": now, "seconds": window },
        "resolution": res.as_str(),
        "score": score,
        "traffic": per_route("requests_per_second"),
        "latency_ms": latency,
        "errors": per_route("error_ratio"),
        "cache_hit_ratio": points(history, "cache_hit_ratio{tier=\"all\"}", res, from, to),
        "spend_usd_per_hour": points(history, "spend_usd_per_hour", res, from, to),
        "stages": stages,
        "forecast": forecast_json,
        "anomalies": anomalies,
        "findings": findings,
        "recommendations": recommendations,
    }))
    .into_response()
}

/// The total traffic's hourly forecast for a quarter of the window (a day to a week),
/// from the hours of the last 35 days; why not, when there are too few.
fn traffic_forecast(history: &History, routes: &[String], now: u64, window: u64) -> Value {
    let hours = total_traffic(
        history,
        routes,
        Resolution::Hour,
        now.saturating_sub(super::reply::MAX_WINDOW),
        now + 1,
    );
    if hours.len() < 48 {
        return json!({
            "series": "requests_per_second (all routes)",
            "steps": [],
            "why_none": format!("{} hour(s) of history: a forecast needs two days", hours.len()),
        });
    }
    let Some((first, step, values)) = regular(&hours) else {
        return json!({ "steps": [], "why_none": "no number in the history" });
    };
    let horizon = (window / 4).clamp(86_400, 7 * 86_400) / 3600;
    let f = forecast(&values, step, horizon as usize, Season::Auto);
    let last = first + step * (values.len() as i64 - 1);
    let steps: Vec<Value> = f
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!([
                last + step * (i as i64 + 1),
                s.forecast,
                s.lo80,
                s.hi80,
                s.lo95,
                s.hi95
            ])
        })
        .collect();
    json!({
        "series": "requests_per_second (all routes)",
        "columns": ["t", "forecast", "lo80", "hi80", "lo95", "hi95"],
        "seasons": f.seasons,
        "steps": steps,
    })
}

/// The recommendations of capacity, the stages' split of latency, spend and the health
/// score; and what could not be read (the spend ledger's error).
fn gather(gw: &Gateway, score: &Score, stages: &[RouteStages]) -> (Vec<Value>, Option<String>) {
    let mut out = Vec::new();
    // One plan (each resource's demand read once) for every standard scenario.
    let plan = super::capacity::plan(gw, &HashMap::new()).unwrap_or_default();
    let outlooks: Vec<&Value> = plan["outlooks"].as_array().into_iter().flatten().collect();
    for scenario in ["baseline", "growth-10"] {
        for o in outlooks.iter().filter(|o| o["scenario"] == scenario) {
            if o["recommendation"].is_null() {
                continue;
            }
            out.push(json!({
                "area": "capacity",
                "scenario": scenario,
                "resource": o["resource"],
                "change": o["recommendation"],
                "evidence": format!(
                    "busiest hour of the last week at {:.0}% of the limit; runs out {}",
                    o["utilization"].as_f64().unwrap_or(0.0) * 100.0,
                    o["runs_out"]["at"].as_u64().map_or("not within 90 days".to_string(), |t| format!("at {t} (Unix seconds)"))
                ),
                "expected_effect": format!("{} stays under its limit through the next 90 days under \"{scenario}\"", o["resource"].as_str().unwrap_or("it")),
            }));
        }
    }
    out.extend(super::stages::recommendations(stages));
    let mut failed = None;
    match super::recommendations::cost_list(gw, &HashMap::new()) {
        Ok(list) => out.extend(list.into_iter().map(|r| {
            json!({
                "area": "cost",
                "kind": r["kind"],
                "change": r["change"],
                "evidence": r["evidence"],
                "expected_effect": match r["saving_usd"].as_str() {
                    Some(s) => format!("saves about ${s} over the cost window"),
                    None => "fewer misses (saving not priced)".to_string(),
                },
            })
        })),
        Err(e) => failed = Some(e),
    }
    out.extend(score.components.iter().filter(|c| c.score < 50.0).map(|c| {
        json!({
            "area": "health",
            "change": format!("look into {}: it scores {:.0} of 100", c.name, c.score),
            "evidence": c.why,
            "expected_effect": format!(
                "the health score rises by up to {:.0} points",
                (100.0 - c.score) * c.weight
            ),
        })
    }));
    (out, failed)
}

/// The recommendations gathered now (the stages over the last day), and why the cost
/// ones could not be read, if they could not.
pub(super) fn current_recommendations(gw: &Gateway) -> (Vec<Value>, Option<String>) {
    let stages = match gw.history() {
        Some(h) => {
            let now = gw.clock().unix_millis() / 1000;
            crate::stages::by_route(gw, h, (now.saturating_sub(86_400), now + 1), None)
        }
        None => Vec::new(),
    };
    gather(gw, &super::score::current(gw), &stages)
}

#[utoipa::path(
    get,
    path = "/api/v1/performance/recommendations",
    tag = "insight",
    summary = "what to change (capacity, latency, cost, health), each with evidence and expected effect",
    responses((status = 200, description = "the recommendations", body = Object))
)]
async fn recommendations(State(gw): State<Arc<Gateway>>) -> Response {
    let (list, failed) = current_recommendations(&gw);
    Json(json!({ "recommendations": list, "cost_unread": failed })).into_response()
}
