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
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use flowgate_config::ConfigChange;
use serde_json::json;

use crate::gateway::Gateway;

/// The owners of the changes it applies start with this.
const OWNER: &str = "api:cache-optimize:";

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new().routes(routes!(optimize))
}

#[utoipa::path(
    post,
    path = "/api/v1/performance/cache/optimize",
    tag = "cache",
    summary = "proposals from the cache's counters (longer TTLs, more room), with evidence; applied or reverted on asking",
    request_body(content = Option<super::openapi::OptimizeBody>, description = "{} proposes; `{\"apply\": true}` applies; `{\"revert\": true}` takes back what was applied", content_type = "application/json"),
    responses((status = 200, description = "the proposals, or what was reverted", body = Object), (status = 400, description = "a bad body", body = super::openapi::ApiError), (status = 404, description = "the cache is off ([cache] enabled = false)", body = super::openapi::ApiError), (status = 500, description = "the config could not be rebuilt", body = super::openapi::ApiError))
)]
async fn optimize(State(gw): State<Arc<Gateway>>, body: axum::body::Bytes) -> Response {
    let Some(cache) = gw.cache() else {
        return super::cache::cache_disabled();
    };
    let apply = match super::reply::optimize_asked(&gw, &body, OWNER) {
        Ok(apply) => apply,
        Err(answer) => return *answer,
    };
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
            applied += usize::from(super::reply::apply_proposal(&gw, &owner, change, &mut p));
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
