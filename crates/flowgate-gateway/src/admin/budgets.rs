//! Budgets on the admin listener: `GET /api/v1/cost/budgets` (every budget in force, the
//! config's and the API's, each with what it has spent per key, team, route or model it
//! counts, and the thresholds crossed lately), `GET`, `PUT` and `DELETE
//! /api/v1/cost/budgets/{name}` (the API's own: kept in the ledger's file; the config's
//! are changed in the config), and `POST /api/v1/cost/explain` (which model a request
//! would go to and why, and whether a budget would refuse it: nothing is sent).

use std::collections::HashMap;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::Json;
use axum::extract::{Path, Query as Params, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flowgate_config::{BudgetConfig, RawBudget};
use flowgate_cost::budget::{Budget, Status, usd_of};
use serde_json::{Value, json};

use super::reply::{Made, client_error, server_error};
use crate::api_made::Refused;
use crate::gateway::Gateway;

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(one, put, remove))
        .routes(routes!(explain))
}

fn now(gw: &Gateway) -> u64 {
    gw.clock().unix_millis() / 1000
}

fn status_shown(s: &Status) -> Value {
    let percent = if s.limit_nanos == 0 {
        0.0
    } else {
        s.spent_nanos as f64 * 100.0 / s.limit_nanos as f64
    };
    json!({
        "match": s.value,
        "spent_usd": usd_of(s.spent_nanos),
        "limit_usd": usd_of(s.limit_nanos),
        "percent": (percent * 100.0).round() / 100.0,
        "threshold_reached": s.reached.map(|p| p.normalize().to_string()),
        "window_start": s.window_start,
        "window_end": s.window_end,
    })
}

fn shown(gw: &Gateway, b: &Budget) -> Value {
    let c: &BudgetConfig = &b.config;
    let source = if gw.spending().budgets().is_config(&c.name) {
        "config"
    } else {
        "api"
    };
    let statuses: Vec<Value> = b.statuses(now(gw)).iter().map(status_shown).collect();
    let mut raw = serde_json::to_value(&c.raw).unwrap_or(Value::Null);
    raw["name"] = Value::from(c.name.as_str());
    json!({
        "name": c.name,
        "source": source,
        "scope": c.scope.as_str(),
        "match": c.value,
        "limit_usd": c.limit_usd.normalize().to_string(),
        "window": c.window.as_str(),
        "timezone": c.timezone_name,
        "actions": c.actions.iter().map(|a| json!({
            "at": a.at_percent.normalize().to_string(),
            "do": a.kind.as_str(),
            "to": match &a.kind {
                flowgate_config::ActionKind::Downgrade { to: flowgate_config::DowngradeTo::Cheapest, .. } => Some("cheapest"),
                flowgate_config::ActionKind::Downgrade { .. } => Some("cheaper"),
                _ => None,
            },
            "spare": match &a.kind {
                flowgate_config::ActionKind::Downgrade { spare, .. } => spare.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                _ => Vec::new(),
            },
        })).collect::<Vec<_>>(),
        "status": statuses,
        "definition": raw,
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/cost/budgets",
    tag = "cost",
    summary = "every budget in force with its spend and thresholds crossed",
    responses((status = 200, description = "the budgets", body = Object))
)]
async fn list(State(gw): State<Arc<Gateway>>) -> Response {
    let budgets = gw.spending().budgets().load();
    let list: Vec<Value> = budgets.list().iter().map(|b| shown(&gw, b)).collect();
    Json(json!({"budgets": list, "events": budgets.events()})).into_response()
}

/// Budgets in the admin API's answers.
const BUDGET: Made = Made {
    noun: "budget",
    code: "budget",
};

#[utoipa::path(
    get,
    path = "/api/v1/cost/budgets/{name}",
    tag = "cost",
    summary = "one budget",
    params(("name" = String, Path, description = "the budget")),
    responses((status = 200, description = "the budget", body = Object), (status = 404, description = "no such budget", body = super::openapi::ApiError))
)]
async fn one(State(gw): State<Arc<Gateway>>, Path(name): Path<String>) -> Response {
    let budgets = gw.spending().budgets().load();
    match budgets.get(&name) {
        Some(b) => Json(shown(&gw, b)).into_response(),
        None => BUDGET.refused(&name, Refused::NotFound),
    }
}

#[utoipa::path(
    put,
    path = "/api/v1/cost/budgets/{name}",
    tag = "cost",
    summary = "make or replace a budget of the API's own",
    params(("name" = String, Path, description = "the budget")),
    request_body(content = Object, description = "the budget, as [[budgets]] in the config", content_type = "application/json"),
    responses((status = 200, description = "replaced", body = Object), (status = 201, description = "made", body = Object), (status = 400, description = "a bad budget", body = super::openapi::ApiError), (status = 409, description = "a budget of the config has this name", body = super::openapi::ApiError))
)]
async fn put(
    State(gw): State<Arc<Gateway>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let raw: RawBudget = match BUDGET.body(&name, &body, |r: &RawBudget| r.name.as_deref()) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let rt = gw.runtime();
    let names = gw.budget_names(&rt);
    let known = names.known(&rt.config);
    let spending = gw.spending();
    let existed = spending.budgets().load().get(&name).is_some();
    match spending
        .budgets()
        .put(&name, raw, &known, spending.ledger(), now(&gw))
    {
        Ok(_) => {
            let budgets = spending.budgets().load();
            let status = if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            match budgets.get(&name) {
                Some(b) => (status, Json(shown(&gw, b))).into_response(),
                None => server_error("the budget was kept but is not in force"),
            }
        }
        Err(r) => BUDGET.refused(&name, r),
    }
}

#[utoipa::path(
    delete,
    path = "/api/v1/cost/budgets/{name}",
    tag = "cost",
    summary = "delete a budget of the API's own",
    params(("name" = String, Path, description = "the budget")),
    responses((status = 204, description = "deleted"), (status = 404, description = "no such budget", body = super::openapi::ApiError), (status = 409, description = "a budget of the config", body = super::openapi::ApiError))
)]
async fn remove(State(gw): State<Arc<Gateway>>, Path(name): Path<String>) -> Response {
    let rt = gw.runtime();
    let names = gw.budget_names(&rt);
    let known = names.known(&rt.config);
    let spending = gw.spending();
    match spending
        .budgets()
        .delete(&name, &known, spending.ledger(), now(&gw))
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => BUDGET.refused(&name, r),
    }
}

/// `POST /api/v1/cost/explain?route=NAME&key=NAME&priority=P` with an OpenAI chat request
/// as the body: the model stage's decision for it, as if it came now.
#[utoipa::path(
    post,
    path = "/api/v1/cost/explain",
    tag = "cost",
    summary = "which model a request would go to, at what price, and whether a budget would refuse it (nothing is sent)",
    params(("route" = Option<String>, Query, description = "the route"), ("key" = Option<String>, Query, description = "the caller's key"), ("priority" = Option<String>, Query, description = "the request's priority")),
    request_body(content = Object, description = "the request body, as a client would send it", content_type = "application/json"),
    responses((status = 200, description = "the explanation", body = Object), (status = 400, description = "a body that is not a JSON object, or a bad priority", body = super::openapi::ApiError), (status = 404, description = "no such openai route or key", body = super::openapi::ApiError))
)]
async fn explain(
    State(gw): State<Arc<Gateway>>,
    Params(p): Params<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    let rt = gw.runtime();
    let openai = |r: &&crate::router::RouteEntry| r.cfg.kind == flowgate_config::RouteKind::OpenAi;
    let route = match p.get("route") {
        Some(name) => rt
            .router
            .routes()
            .iter()
            .filter(openai)
            .find(|r| *r.name == **name),
        None => rt.router.routes().iter().find(openai),
    };
    let Some(route) = route else {
        return client_error(
            StatusCode::NOT_FOUND,
            "route: no such openai route (name one with ?route=NAME)",
            "route_not_found",
        );
    };
    if let Err(e) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body) {
        return client_error(
            StatusCode::BAD_REQUEST,
            &format!("the body must be the request's JSON object: {e}"),
            "invalid_request",
        );
    }
    let callers = gw.auth().list(&rt.keys);
    let caller = match p.get("key") {
        Some(k) => match callers.iter().find(|c| c.key.name == *k) {
            Some(c) => Some(c.clone()),
            None => {
                return client_error(
                    StatusCode::NOT_FOUND,
                    &format!("key: no key named {k:?}"),
                    "key_not_found",
                );
            }
        },
        None => None,
    };
    let mut headers = http::HeaderMap::new();
    if let Some(pr) = p.get("priority") {
        if flowgate_config::Priority::parse(pr).is_none() {
            return client_error(
                StatusCode::BAD_REQUEST,
                &format!("priority: {pr:?} is not critical, high, normal or low"),
                "invalid_parameter",
            );
        }
        if let Ok(v) = http::HeaderValue::from_str(pr) {
            headers.insert("x-flowgate-priority", v);
        }
    }
    let requested = crate::caching::model_of(&body);
    // A route that serves by model serves this one through its deployments.
    let route = match route.for_model(requested.as_deref(), &rt.config.models) {
        Ok(r) => r,
        Err(e) => return client_error(e.status(), &e.to_string(), e.code()),
    };
    let exact = rt.config.limits.exact_tokens;
    let estimate = || {
        let t = flowgate_cost::Tokenizer::counting(requested.as_deref(), exact);
        crate::openai::estimate(&body, t)
    };
    let explained = gw.explain_model(
        &rt,
        route,
        caller.as_deref(),
        &headers,
        &body,
        requested.as_deref(),
        estimate,
    );
    match explained {
        Ok(v) => Json(v).into_response(),
        Err(e) => client_error(e.status(), &e.to_string(), e.code()),
    }
}
