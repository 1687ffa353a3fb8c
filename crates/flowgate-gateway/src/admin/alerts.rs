//! Alerts on the admin listener: `GET /api/v1/alerts` (every rule's alert, pending and
//! firing first, and the stored events: `?from=&to=` Unix seconds, `&rule=`, `&limit=`,
//! the newest 1,000 by default), the silences: `GET /api/v1/alerts/silences`, `POST` one
//! (`{"rule": "chat-*", "labels": {…}, "for": "2h", "comment": "…"}`), `DELETE
//! /api/v1/alerts/silences/{id}`; and `GET /api/v1/alerts/notifiers` (each notifier, where
//! it sends without secrets, and its deliveries: sent, failed, dropped, retried, the last
//! error).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::Json;
use axum::extract::{Path, Query as Params, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::reply::{client_error, server_error};
use crate::gateway::Gateway;

/// The longest silence.
const MAX_SILENCE_SECS: u64 = 30 * 86_400;

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new()
        .routes(routes!(alerts))
        .routes(routes!(silences, silence))
        .routes(routes!(unsilence))
        .routes(routes!(notifiers))
}

#[utoipa::path(
    get,
    path = "/api/v1/alerts/notifiers",
    tag = "alerts",
    summary = "the notifiers and what they sent",
    responses((status = 200, description = "the notifiers", body = Object))
)]
async fn notifiers(State(gw): State<Arc<Gateway>>) -> Response {
    Json(json!({ "notifiers": gw.alerting().notifiers().statuses() })).into_response()
}

fn now(gw: &Gateway) -> u64 {
    gw.clock().unix_millis() / 1000
}

/// The most events one answer holds.
const MAX_EVENTS: usize = 10_000;

#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    tag = "alerts",
    summary = "alerts firing and the alert history",
    params(super::openapi::Listing, ("rule" = Option<String>, Query, description = "one rule's events")),
    responses((status = 200, description = "the alerts", body = Object), (status = 400, description = "a bad range", body = super::openapi::ApiError))
)]
async fn alerts(
    State(gw): State<Arc<Gateway>>,
    Params(p): Params<HashMap<String, String>>,
) -> Response {
    let (from, to, limit) = match super::reply::listing(&p, 1_000, MAX_EVENTS) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let alerts = gw.alerting().with(|e| e.alerts()).unwrap_or_default();
    match gw
        .alerting()
        .store()
        .events(from, to, p.get("rule").map(String::as_str), limit)
    {
        Ok(events) => Json(json!({ "alerts": alerts, "history": events })).into_response(),
        Err(e) => server_error(&format!("the alert history could not be read: {e}")),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/alerts/silences",
    tag = "alerts",
    summary = "the silences in force",
    responses((status = 200, description = "the silences", body = Object))
)]
async fn silences(State(gw): State<Arc<Gateway>>) -> Response {
    let now = now(&gw);
    let list = gw.alerting().with(|e| e.silences(now)).unwrap_or_default();
    Json(json!({ "silences": list })).into_response()
}

/// A silence as the API takes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ask {
    rule: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// How long, from now (`"2h"`), or `until` (Unix seconds).
    #[serde(rename = "for")]
    for_: Option<String>,
    until: Option<u64>,
    #[serde(default)]
    comment: String,
}

fn bad(message: &str) -> Response {
    client_error(StatusCode::BAD_REQUEST, message, "invalid_silence")
}

#[utoipa::path(
    post,
    path = "/api/v1/alerts/silences",
    tag = "alerts",
    summary = "silence alerts matching a rule or labels for a while",
    request_body(content = Object, description = "the silence: matchers, duration, comment", content_type = "application/json"),
    responses((status = 201, description = "made", body = Object), (status = 400, description = "a bad silence", body = super::openapi::ApiError))
)]
async fn silence(State(gw): State<Arc<Gateway>>, body: axum::body::Bytes) -> Response {
    let ask: Ask = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => return bad(&format!("the body is not a silence: {e}")),
    };
    let now = now(&gw);
    let until = match (&ask.for_, ask.until) {
        (Some(_), Some(_)) => return bad("give for or until, not both"),
        (None, None) => return bad("missing: for (\"2h\") or until (Unix seconds)"),
        (Some(f), None) => match flowgate_config::parse_duration(f) {
            Some(d) => now + d.as_secs(),
            None => {
                return bad(&format!(
                    "for: {f:?} is not a duration such as \"30m\" or \"2h\""
                ));
            }
        },
        (None, Some(u)) => u,
    };
    if until <= now || until - now > MAX_SILENCE_SECS {
        return bad("a silence ends in the future, within 30 days");
    }
    if ask.rule.is_empty() {
        return bad("rule: empty (\"*\" silences every rule)");
    }
    let id = gw
        .alerting()
        .with(|e| e.silence(ask.rule, ask.labels, until, ask.comment, now))
        .unwrap_or_default();
    (
        StatusCode::CREATED,
        Json(json!({ "id": id, "until": until })),
    )
        .into_response()
}

#[utoipa::path(
    delete,
    path = "/api/v1/alerts/silences/{id}",
    tag = "alerts",
    summary = "end a silence",
    params(("id" = u64, Path, description = "the silence")),
    responses((status = 204, description = "ended"), (status = 404, description = "no such silence", body = super::openapi::ApiError))
)]
async fn unsilence(State(gw): State<Arc<Gateway>>, Path(id): Path<u64>) -> Response {
    if gw.alerting().with(|e| e.unsilence(id)).unwrap_or(false) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        client_error(
            StatusCode::NOT_FOUND,
            &format!("no silence {id}"),
            "unknown_silence",
        )
    }
}
