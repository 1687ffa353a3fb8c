//! Spend on the admin listener, read from the spend ledger (rows written and those still
//! to be written alike): `GET /api/v1/cost/summary` (sums over a window, grouped by key,
//! team, route, model or provider) and `GET /api/v1/cost/timeseries` (sums per minute,
//! hour or day).
//!
//! The window is `window` (a duration back from now: `90s`, `15m`, `24h`, `30d`; default
//! `24h`) or `from` and `to` (Unix seconds, `to` default now). Filters: `key`, `team`,
//! `route`, `model`, `provider` (exact names; an empty value is "none", e.g. requests
//! without a key). Dollars are exact decimal strings.

use std::collections::HashMap;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::Json;
use axum::extract::{Query as Params, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flowgate_cost::ledger::{Dim, Query, Step, Totals};
use serde_json::{Value, json};

use super::reply::{client_error, server_error};
use crate::gateway::Gateway;

const DAY: u64 = 86_400;
/// The longest window a read covers (the hours' longest retention).
const MAX_WINDOW: u64 = 3660 * DAY;
/// The most buckets a series returns.
const MAX_POINTS: u64 = 10_000;

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new()
        .routes(routes!(summary))
        .routes(routes!(timeseries))
}

pub(super) fn bad(message: String) -> Response {
    client_error(StatusCode::BAD_REQUEST, &message, "invalid_parameter")
}

/// The window and filters of a read; what is wrong with them.
pub(super) fn query(gw: &Gateway, p: &HashMap<String, String>) -> Result<Query, String> {
    let now = gw.clock().unix_millis() / 1000;
    let secs = |k: &str| -> Result<Option<u64>, String> {
        p.get(k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| format!("{k}: {v:?} is not a time in Unix seconds"))
            })
            .transpose()
    };
    let (from, to) = match (p.get("window"), secs("from")?, secs("to")?) {
        (Some(_), Some(_), _) => {
            return Err("window and from exclude each other".into());
        }
        (Some(w), None, to) => {
            let len = flowgate_config::parse_window(w).ok_or_else(|| {
                format!("window: {w:?} is not a duration such as \"15m\", \"24h\" or \"30d\"")
            })?;
            let to = to.unwrap_or(now);
            (to.saturating_sub(len), to)
        }
        (None, Some(from), to) => (from, to.unwrap_or(now)),
        (None, None, to) => {
            let to = to.unwrap_or(now);
            (to.saturating_sub(DAY), to)
        }
    };
    if from >= to {
        return Err(format!(
            "the window is empty: from {from} is not before to {to}"
        ));
    }
    if to - from > MAX_WINDOW {
        return Err(format!(
            "the window is longer than {} days",
            MAX_WINDOW / DAY
        ));
    }
    let filter = Dim::ALL
        .iter()
        .filter_map(|d| p.get(d.as_str()).map(|v| (*d, v.clone())))
        .collect();
    Ok(Query {
        from,
        to,
        now,
        filter,
    })
}

/// Parameters other than these are refused, so that a misspelt filter is not read as none.
pub(super) fn check_known(p: &HashMap<String, String>, extra: &[&str]) -> Result<(), String> {
    let known = |k: &str| {
        ["window", "from", "to"].contains(&k) || extra.contains(&k) || Dim::parse(k).is_some()
    };
    match p.keys().find(|k| !known(k)) {
        Some(k) => Err(format!("unknown parameter {k:?}")),
        None => Ok(()),
    }
}

fn totals(t: &Totals) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

pub(super) fn window(q: &Query) -> Value {
    json!({
        "from": q.from,
        "to": q.to,
        "from_time": flowgate_clock::rfc3339_millis(q.from * 1000),
        "to_time": flowgate_clock::rfc3339_millis(q.to * 1000),
    })
}

pub(super) fn filters(q: &Query) -> Value {
    q.filter
        .iter()
        .map(|(d, v)| (d.as_str().to_string(), Value::from(v.as_str())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[utoipa::path(
    get,
    path = "/api/v1/cost/summary",
    tag = "cost",
    summary = "spend and savings over a window, grouped",
    params(("window" = Option<String>, Query, description = "a duration back from now (`90s`, `15m`, `24h`, `30d`; 24h by default)"), ("from" = Option<u64>, Query, description = "from this time (Unix seconds), instead of window"), ("to" = Option<u64>, Query, description = "up to this time (Unix seconds; now by default)"), ("key" = Option<String>, Query, description = "only this virtual key (empty: requests without one)"), ("team" = Option<String>, Query, description = "only this team"), ("route" = Option<String>, Query, description = "only this route"), ("model" = Option<String>, Query, description = "only this model"), ("provider" = Option<String>, Query, description = "only this provider"), ("group_by" = Option<String>, Query, description = "`key`, `team`, `route`, `model` or `provider`")),
    responses((status = 200, description = "the sums", body = Object), (status = 400, description = "a bad window, filter or group", body = super::openapi::ApiError))
)]
async fn summary(
    State(gw): State<Arc<Gateway>>,
    Params(p): Params<HashMap<String, String>>,
) -> Response {
    if let Err(why) = check_known(&p, &["group_by"]) {
        return bad(why);
    }
    let group = match p.get("group_by").map(String::as_str) {
        None => None,
        Some(g) => match Dim::parse(g) {
            Some(d) => Some(d),
            None => {
                return bad(format!(
                    "group_by: {g:?}: expected key, team, route, model or provider"
                ));
            }
        },
    };
    let q = match query(&gw, &p) {
        Ok(q) => q,
        Err(why) => return bad(why),
    };
    gw.telemetry().flush();
    let ledger = gw.spending().ledger();
    let (rows, total) = match (ledger.summary(&q, group), ledger.summary(&q, None)) {
        (Ok(rows), Ok(total)) => (rows, total),
        (Err(e), _) | (_, Err(e)) => {
            return server_error(&e.to_string());
        }
    };
    let total = total.first().map(|(_, t)| *t).unwrap_or_default();
    let groups: Vec<Value> = match group {
        None => Vec::new(),
        Some(_) => rows
            .iter()
            .map(|(name, t)| {
                let mut v = totals(t);
                v["name"] = Value::from(name.as_str());
                v
            })
            .collect(),
    };
    Json(json!({
        "window": window(&q),
        "filter": filters(&q),
        "group_by": group.map(Dim::as_str),
        "total": totals(&total),
        "groups": groups,
    }))
    .into_response()
}

#[utoipa::path(
    get,
    path = "/api/v1/cost/timeseries",
    tag = "cost",
    summary = "spend per minute, hour or day",
    params(("window" = Option<String>, Query, description = "a duration back from now (`90s`, `15m`, `24h`, `30d`; 24h by default)"), ("from" = Option<u64>, Query, description = "from this time (Unix seconds), instead of window"), ("to" = Option<u64>, Query, description = "up to this time (Unix seconds; now by default)"), ("key" = Option<String>, Query, description = "only this virtual key (empty: requests without one)"), ("team" = Option<String>, Query, description = "only this team"), ("route" = Option<String>, Query, description = "only this route"), ("model" = Option<String>, Query, description = "only this model"), ("provider" = Option<String>, Query, description = "only this provider"), ("step" = Option<String>, Query, description = "`minute`, `hour` or `day`")),
    responses((status = 200, description = "the points", body = Object), (status = 400, description = "a bad window, filter or step", body = super::openapi::ApiError))
)]
async fn timeseries(
    State(gw): State<Arc<Gateway>>,
    Params(p): Params<HashMap<String, String>>,
) -> Response {
    if let Err(why) = check_known(&p, &["step"]) {
        return bad(why);
    }
    let q = match query(&gw, &p) {
        Ok(q) => q,
        Err(why) => return bad(why),
    };
    let step = match p.get("step").map(String::as_str) {
        None if q.to - q.from <= 2 * 3600 => Step::Minute,
        None if q.to - q.from <= 14 * DAY => Step::Hour,
        None => Step::Day,
        Some(s) => match Step::parse(s) {
            Some(s) => s,
            None => return bad(format!("step: {s:?}: expected minute, hour or day")),
        },
    };
    if (q.to - q.from) / step.secs() > MAX_POINTS {
        return bad(format!(
            "{} points of a {s} are more than {MAX_POINTS}: a longer step or a shorter window",
            (q.to - q.from) / step.secs(),
            s = p.get("step").map_or("minute", String::as_str)
        ));
    }
    gw.telemetry().flush();
    let points = match gw.spending().ledger().series(&q, step) {
        Ok(p) => p,
        Err(e) => return server_error(&e.to_string()),
    };
    let points: Vec<Value> = points
        .iter()
        .map(|(at, t)| {
            let mut v = totals(t);
            v["at"] = Value::from(*at);
            v["time"] = Value::from(flowgate_clock::rfc3339_millis(at * 1000));
            v
        })
        .collect();
    Json(json!({
        "window": window(&q),
        "filter": filters(&q),
        "step": step.secs(),
        "points": points,
    }))
    .into_response()
}
