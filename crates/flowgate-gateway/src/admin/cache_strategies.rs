//! `GET /api/v1/performance/cache/strategies`: how the cache decides, as in force (the
//! file's config with the changes applied at run time, such as `cache/optimize`'s TTLs):
//! the defaults (TTL, stale-while-revalidate, refresh-ahead, TTL extension of popular
//! entries, coalescing), the tiers, each route's mode, namespace and overrides, the TTL
//! categories in match order, and confidence-based TTLs.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use flowgate_config::{CacheMode, PathMatch};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::gateway::Gateway;

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new().routes(routes!(strategies))
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn mode(m: CacheMode) -> &'static str {
    match m {
        CacheMode::Off => "off",
        CacheMode::Deterministic => "deterministic",
        CacheMode::Always => "always",
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/performance/cache/strategies",
    tag = "cache",
    summary = "how the cache decides, as in force: defaults, tiers, each route's mode and overrides, TTL categories, confidence TTLs",
    responses((status = 200, description = "the strategies", body = Object), (status = 404, description = "the cache is off ([cache] enabled = false)", body = super::openapi::ApiError))
)]
async fn strategies(State(gw): State<Arc<Gateway>>) -> Response {
    if gw.cache().is_none() {
        return super::cache::cache_disabled();
    }
    let rt = gw.runtime();
    let c = &rt.config.cache;
    let routes: Vec<Value> = rt
        .config
        .routes
        .iter()
        .map(|r| {
            let rc = &r.cache;
            json!({
                "route": r.name,
                "mode": mode(rc.mode),
                "namespace": rc.namespace.as_deref().unwrap_or(&r.name),
                "client_namespaces": rc.namespace_header,
                "ttl_seconds": rc.ttl.map(secs),
                "stale_seconds": rc.stale.map(secs),
                "max_ttl_seconds": rc.max_ttl.map(secs),
            })
        })
        .collect();
    let categories: Vec<Value> = c
        .categories
        .iter()
        .map(|k| {
            json!({
                "name": k.name,
                "path": k.path.as_ref().map(|p| match p {
                    PathMatch::Exact(s) => json!({"exact": s}),
                    PathMatch::Prefix(s) => json!({"prefix": s}),
                }),
                "header": k.header.as_ref().map(|(n, v)| json!({"name": n.as_str(), "value": v})),
                "model": k.model,
                "ttl_seconds": secs(k.ttl),
                "stale_seconds": k.stale.map(secs),
                "tags": k.tags,
            })
        })
        .collect();
    Json(json!({
        "defaults": {
            "ttl_seconds": secs(c.ttl),
            "stale_seconds": secs(c.stale),
            "refresh_ahead_seconds": secs(c.refresh_ahead),
            "popular_hits": c.popular_hits,
            "max_ttl_seconds": c.max_ttl.map(secs),
            "coalesce_wait_seconds": secs(c.coalesce_wait),
            "max_entry_bytes": c.max_entry_bytes,
            "compress_above_bytes": c.compress_above,
        },
        "tiers": {
            "memory_bytes": c.memory_bytes,
            "disk": c.disk.is_some(),
            "redis": c.redis.is_some(),
        },
        "routes": routes,
        "categories": categories,
        "confidence": c.confidence.as_ref().map(|t| json!({
            "pointer": t.pointer,
            "bands": t.bands.iter().map(|(at, ttl)| json!({"at_least": at, "ttl_seconds": secs(*ttl)})).collect::<Vec<_>>(),
        })),
    }))
    .into_response()
}
