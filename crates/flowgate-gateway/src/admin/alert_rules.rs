//! Alert rules on the admin listener: `GET /api/v1/alerts/rules` (every rule in force,
//! with where it comes from: `config` or `api`, as written and as read), `GET`, `PUT` (make
//! or replace; the body as a `[[alerts.rules]]` table, in JSON) and `DELETE`
//! `/api/v1/alerts/rules/{name}`. Rules made here are kept in the alerts' store and
//! outlive a restart; the config's are changed in the config file.

use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flowgate_config::{AlertRule, RawAlertRule};
use serde_json::{Value, json};

use super::reply::Made;
use crate::alert_rules::Refused;
use crate::gateway::Gateway;

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(one, put, remove))
}

/// `r` as the API shows it; `source`: `config` or `api`.
fn shown(r: &AlertRule, source: &str) -> Value {
    json!({
        "name": r.name,
        "source": source,
        "severity": r.severity,
        "group": r.group,
        "labels": r.labels,
        "for_seconds": r.for_.as_secs(),
        "repeat_seconds": r.repeat.as_secs(),
        "watches": flowgate_config::describe_alert(&r.kind),
        "description": r.description,
        "notify": r.notify,
        "definition": r.raw,
    })
}

/// The rules in force, each shown.
fn in_force(gw: &Gateway) -> Vec<Value> {
    let config = &gw.runtime().config.alerts.rules;
    gw.alerting()
        .with(|e| {
            e.rules()
                .iter()
                .map(|r| {
                    let from_config = config.iter().any(|c| c.name == r.name);
                    shown(r, if from_config { "config" } else { "api" })
                })
                .collect()
        })
        .unwrap_or_default()
}

#[utoipa::path(
    get,
    path = "/api/v1/alerts/rules",
    tag = "alerts",
    summary = "every alert rule with its state",
    responses((status = 200, description = "the rules", body = Object))
)]
async fn list(State(gw): State<Arc<Gateway>>) -> Response {
    Json(json!({ "rules": in_force(&gw) })).into_response()
}

/// Alert rules in the admin API's answers.
const RULE: Made = Made {
    noun: "alert rule",
    code: "rule",
};

#[utoipa::path(
    get,
    path = "/api/v1/alerts/rules/{name}",
    tag = "alerts",
    summary = "one alert rule",
    params(("name" = String, Path, description = "the rule")),
    responses((status = 200, description = "the rule", body = Object), (status = 404, description = "no such rule", body = super::openapi::ApiError))
)]
async fn one(State(gw): State<Arc<Gateway>>, Path(name): Path<String>) -> Response {
    match in_force(&gw).into_iter().find(|r| r["name"] == name) {
        Some(r) => Json(r).into_response(),
        None => RULE.refused(&name, Refused::NotFound),
    }
}

#[utoipa::path(
    put,
    path = "/api/v1/alerts/rules/{name}",
    tag = "alerts",
    summary = "make or replace a rule of the API's own",
    params(("name" = String, Path, description = "the rule")),
    request_body(content = Object, description = "the rule, as [[alerts.rules]] in the config", content_type = "application/json"),
    responses((status = 200, description = "replaced", body = Object), (status = 201, description = "made", body = Object), (status = 400, description = "a bad rule", body = super::openapi::ApiError), (status = 409, description = "a rule of the config has this name", body = super::openapi::ApiError))
)]
async fn put(
    State(gw): State<Arc<Gateway>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let raw: RawAlertRule = match RULE.body(&name, &body, |r: &RawAlertRule| r.name.as_deref()) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let existed = gw
        .alerting()
        .store()
        .rules()
        .unwrap_or_default()
        .iter()
        .any(|r| r.name.as_deref() == Some(name.as_str()));
    let rt = gw.runtime();
    let names = gw.alert_names(&rt);
    match gw.alerting().put_rule(&name, raw, &names, gw.history()) {
        Ok(rule) => {
            let status = if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            (status, Json(shown(&rule, "api"))).into_response()
        }
        Err(r) => RULE.refused(&name, r),
    }
}

#[utoipa::path(
    delete,
    path = "/api/v1/alerts/rules/{name}",
    tag = "alerts",
    summary = "delete a rule of the API's own",
    params(("name" = String, Path, description = "the rule")),
    responses((status = 204, description = "deleted"), (status = 404, description = "no such rule", body = super::openapi::ApiError), (status = 409, description = "a rule of the config", body = super::openapi::ApiError))
)]
async fn remove(State(gw): State<Arc<Gateway>>, Path(name): Path<String>) -> Response {
    let rt = gw.runtime();
    let names = gw.alert_names(&rt);
    match gw.alerting().delete_rule(&name, &names, gw.history()) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => RULE.refused(&name, r),
    }
}
