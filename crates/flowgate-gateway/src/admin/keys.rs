//! Key management on the admin listener: `POST /api/v1/keys` makes a key (its plain text
//! is in this answer only), `GET /api/v1/keys` lists every key by id (the first digits of
//! its hash; never the key), `DELETE /api/v1/keys/{id}` revokes a stored key at once.

use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flowgate_admission::keys::id_of;
use flowgate_config::{KeyConfig, KeySpec, format_duration};
use serde_json::{Value, json};

use super::reply::client_error;
use crate::auth::{Caller, KeyError};
use crate::gateway::Gateway;

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
}

/// A key as the API shows it: never the key itself, nor its whole hash.
fn shown(key: &KeyConfig, source: &str, created_ms: Option<u64>) -> Value {
    let limits: Vec<Value> = key
        .limits
        .iter()
        .map(|r| {
            json!({
                r.unit.as_str(): r.amount,
                "per": format_duration(r.per),
                "burst": r.burst,
            })
        })
        .collect();
    json!({
        "id": id_of(&key.hash),
        "name": key.name,
        "team": key.team,
        "routes": key.routes,
        "models": key.models,
        "limits": limits,
        "source": source,
        "created_unix_ms": created_ms,
    })
}

fn caller_shown(c: &Caller) -> Value {
    let source = if c.created_ms.is_some() {
        "store"
    } else {
        "config"
    };
    shown(&c.key, source, c.created_ms)
}

#[utoipa::path(
    get,
    path = "/api/v1/keys",
    tag = "keys",
    summary = "the virtual keys (never their secrets)",
    responses((status = 200, description = "the keys", body = Object))
)]
async fn list(State(gw): State<Arc<Gateway>>) -> Response {
    let rt = gw.runtime();
    let keys: Vec<Value> = gw
        .auth()
        .list(&rt.keys)
        .iter()
        .map(|c| caller_shown(c))
        .collect();
    Json(json!({"auth_enabled": rt.config.auth.enabled, "keys": keys})).into_response()
}

#[utoipa::path(
    post,
    path = "/api/v1/keys",
    tag = "keys",
    summary = "make a virtual key; its secret is shown once",
    request_body(content = Object, description = "the key: id, team, limits, budgets, models", content_type = "application/json"),
    responses((status = 201, description = "made", body = Object), (status = 400, description = "a bad key", body = super::openapi::ApiError), (status = 409, description = "no key store, or the id exists", body = super::openapi::ApiError))
)]
async fn create(State(gw): State<Arc<Gateway>>, body: axum::body::Bytes) -> Response {
    let spec: KeySpec = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            return client_error(
                StatusCode::BAD_REQUEST,
                &format!("the body is not a key: {e}"),
                "invalid_key_request",
            );
        }
    };
    let rt = gw.runtime();
    let key = match flowgate_config::key_from_spec(&spec, &rt.config) {
        Ok(k) => k,
        Err(problems) => {
            let why: Vec<String> = problems.iter().map(|(k, m)| format!("{k}: {m}")).collect();
            return client_error(
                StatusCode::BAD_REQUEST,
                &why.join("; "),
                "invalid_key_request",
            );
        }
    };
    match gw.auth().create(&rt.config, key, gw.unix_millis()) {
        Ok((plain, stored)) => {
            // A budget kept for a key of that name holds again.
            gw.budgets_changed();
            let mut v = shown(&stored.key, "store", Some(stored.created_ms));
            v["key"] = json!(plain);
            (StatusCode::CREATED, Json(v)).into_response()
        }
        Err(e) => key_error(&e),
    }
}

#[utoipa::path(
    delete,
    path = "/api/v1/keys/{id}",
    tag = "keys",
    summary = "revoke a virtual key",
    params(("id" = String, Path, description = "the key")),
    responses((status = 200, description = "revoked", body = Object), (status = 404, description = "no such key", body = super::openapi::ApiError), (status = 409, description = "a key of the config", body = super::openapi::ApiError))
)]
async fn revoke(State(gw): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    let rt = gw.runtime();
    match gw.auth().revoke(&rt.keys, &id) {
        Ok(Some(name)) => {
            // A budget made for the key no longer holds.
            gw.budgets_changed();
            Json(json!({"revoked": {"id": id, "name": name}})).into_response()
        }
        Ok(None) => client_error(
            StatusCode::NOT_FOUND,
            &format!("no stored key has id {id:?}"),
            "key_not_found",
        ),
        Err(e) => key_error(&e),
    }
}

fn key_error(e: &KeyError) -> Response {
    let (status, code) = match e {
        KeyError::NoStore => (StatusCode::CONFLICT, "no_key_store"),
        KeyError::Exists(_) => (StatusCode::CONFLICT, "key_exists"),
        KeyError::InConfig(_) => (StatusCode::CONFLICT, "key_in_config"),
        KeyError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "key_store_failed"),
    };
    if status.is_server_error() {
        tracing::error!(error = %e, "key store");
    }
    client_error(status, &e.to_string(), code)
}
