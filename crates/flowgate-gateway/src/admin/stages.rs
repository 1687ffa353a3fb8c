//! The bottleneck analysis on the admin listener ([`crate::stages`]):
//! `GET /api/v1/performance/stages?window=24h[&route=NAME]`: per route, busiest first, the
//! mean time a request spent in each stage of its path over the window (an hour to 35
//! days; 24 hours by default), each stage's share, trend and time budget, the dominant
//! stage with what usually shortens it, and the findings.

use std::collections::HashMap;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::Json;
use axum::extract::{Query as Params, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flowgate_insight::bottleneck::RouteStages;
use serde_json::{Value, json};

use super::reply::client_error;
use crate::gateway::Gateway;

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new().routes(routes!(stages))
}

#[utoipa::path(
    get,
    path = "/api/v1/performance/stages",
    tag = "insight",
    summary = "where each route's time goes: stages, shares, trends, budgets, the dominant stage",
    params(super::openapi::Window, ("route" = Option<String>, Query, description = "one route")),
    responses((status = 200, description = "the analysis", body = Object), (status = 400, description = "a bad window", body = super::openapi::ApiError), (status = 404, description = "no such route", body = super::openapi::ApiError), (status = 409, description = "the metrics history is off ([history] enabled = false)", body = super::openapi::ApiError))
)]
async fn stages(
    State(gw): State<Arc<Gateway>>,
    Params(p): Params<HashMap<String, String>>,
) -> Response {
    let window = match super::reply::window(&p, 86_400) {
        Ok(w) => w,
        Err(e) => return client_error(StatusCode::BAD_REQUEST, &e, "invalid_parameter"),
    };
    let route = p.get("route").map(String::as_str);
    if let Some(r) = route
        && !gw.runtime().config.routes.iter().any(|c| c.name == r)
    {
        return client_error(
            StatusCode::NOT_FOUND,
            &format!("route: no route {r:?}"),
            "route_not_found",
        );
    }
    let Some(history) = gw.history() else {
        return super::reply::history_off();
    };
    let now = gw.clock().unix_millis() / 1000;
    let (from, to) = (now.saturating_sub(window), now + 1);
    let routes = crate::stages::by_route(&gw, history, (from, to), route);
    Json(json!({
        "window": { "from": from, "to": now, "seconds": window },
        "resolution": crate::stages::resolution(window).as_str(),
        "routes": routes,
    }))
    .into_response()
}

/// What the analysis recommends: for each stage over its budget, and for a dominant stage
/// that is rising or that the gateway's own settings govern (not the upstream's answer)
/// and takes over a quarter of the time, what usually shortens it.
pub(super) fn recommendations(routes: &[RouteStages]) -> Vec<Value> {
    let mut out = Vec::new();
    for r in routes {
        for (i, s) in r.stages.iter().enumerate() {
            let dominant = i == 0 && r.dominant.is_some();
            let governed = !matches!(s.stage.as_str(), "first_byte" | "generation");
            let why = if s.over_budget {
                format!(
                    "{} takes {:.1} ms per request on route {}, over its budget of {:.1} ms",
                    s.stage,
                    s.mean_ms,
                    r.route,
                    s.budget_ms.unwrap_or(0.0)
                )
            } else if dominant && s.trend.direction == "rising" {
                format!(
                    "{} takes {:.0}% of route {}'s time and rose {:.0}% over the window",
                    s.stage,
                    s.share * 100.0,
                    r.route,
                    s.trend.change * 100.0
                )
            } else if dominant && governed && s.share > 0.25 {
                format!(
                    "{} takes {:.0}% of route {}'s time ({:.1} ms per request)",
                    s.stage,
                    s.share * 100.0,
                    r.route,
                    s.mean_ms
                )
            } else {
                continue;
            };
            out.push(json!({
                "area": "latency",
                "route": r.route,
                "stage": s.stage,
                "change": flowgate_insight::bottleneck::advice(&s.stage),
                "evidence": why,
                "expected_effect": format!(
                    "route {}'s requests answer up to {:.1} ms sooner ({:.0}% of their time)",
                    r.route,
                    s.mean_ms,
                    s.share * 100.0
                ),
            }));
        }
    }
    out
}
