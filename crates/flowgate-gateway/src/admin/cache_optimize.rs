//! `POST /api/v1/performance/cache/optimize`: what the cache's own counters say would
//! have answered more requests, each with its evidence (`flowgate_cache::advice`): a
//! longer TTL for a category whose misses were often of answers that had just expired,
//! more room when many misses were of answers dropped while still servable.
//!
//! Body `{}` proposes; `{"apply": true}` also applies what can be applied at run time (a
//! category's TTL, through the running config's overlay, as automation's actions are:
//! kept over reloads, listed in `GET /api/v1/automation/rules` `in_force`, owner
//! `api:cache-optimize:CATEGORY`); `{"revert": true}` takes every change it applied away.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use flowgate_config::ConfigChange;
use serde_json::{Value, json};

use super::reply::{client_error, server_error};
use crate::gateway::Gateway;

/// The owners of the changes it applies start with this.
const OWNER: &str = "api:cache-optimize:";

pub fn routes() -> axum::Router<Arc<Gateway>> {
    axum::Router::new().route("/api/v1/performance/cache/optimize", post(optimize))
}

/// `{"apply": bool, "revert": bool}`, both false by default, not both.
fn asked(body: &[u8]) -> Result<(bool, bool), String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((false, false));
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let obj = v.as_object().ok_or("the body must be a JSON object")?;
    if let Some(k) = obj.keys().find(|k| *k != "apply" && *k != "revert") {
        return Err(format!("unknown field {k:?}: expected apply or revert"));
    }
    let flag = |k: &str| match obj.get(k) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!("{k}: {other} is not true or false")),
    };
    let (apply, revert) = (flag("apply")?, flag("revert")?);
    if apply && revert {
        return Err("apply or revert, not both".into());
    }
    Ok((apply, revert))
}

async fn optimize(State(gw): State<Arc<Gateway>>, body: axum::body::Bytes) -> Response {
    let Some(cache) = gw.cache() else {
        return super::cache::cache_disabled();
    };
    let (apply, revert) = match asked(&body) {
        Ok(a) => a,
        Err(why) => return client_error(StatusCode::BAD_REQUEST, &why, "invalid_request"),
    };
    if revert {
        let gone = gw.overrides().remove_prefixed(OWNER);
        if let Err(e) = gw.rebuild() {
            return server_error(&format!("the config could not be rebuilt: {e}"));
        }
        let reverted: Vec<String> = gone.iter().map(|(_, c)| c.describe()).collect();
        return Json(json!({ "reverted": reverted })).into_response();
    }
    let stats = cache.stats();
    let rt = gw.runtime();
    let ttl_of = |name: &str| {
        rt.config
            .cache
            .categories
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.ttl)
    };
    let mut proposals = Vec::new();
    let mut applied = 0;
    for a in flowgate_cache::advice::longer_ttls(&stats, &ttl_of) {
        let mut p = super::recommendations::longer_ttl(&gw, &a);
        p["applicable"] = json!(true);
        if apply {
            let change = ConfigChange::CacheTtl {
                category: a.category.clone(),
                ttl: a.suggested_ttl,
            };
            let owner = format!("{OWNER}{}", a.category);
            match gw
                .overrides()
                .put(&rt.config, &owner, change, || gw.rebuild())
            {
                Ok(was) => {
                    applied += 1;
                    p["applied"] = json!(true);
                    p["was"] = json!(was);
                    tracing::info!(category = %a.category, ttl = a.suggested_ttl.as_secs(), "cache optimize: a longer TTL applied");
                }
                Err(e) => {
                    p["applied"] = json!(false);
                    p["error"] = json!(e);
                }
            }
        }
        proposals.push(p);
    }
    if let Some((dropped, evictions)) = flowgate_cache::advice::too_little_room(&stats) {
        proposals.push(json!({
            "kind": "more_room",
            "change": "[cache] memory: larger (the memory tier's size takes effect at a restart)",
            "applicable": false,
            "evidence": {
                "misses": stats.misses,
                "misses_of_dropped_answers": dropped,
                "evictions": evictions,
                "since_start_seconds": gw.uptime().as_secs(),
            },
        }));
    }
    Json(json!({ "proposals": proposals, "applied": applied })).into_response()
}
