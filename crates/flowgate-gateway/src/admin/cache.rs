//! The cache's admin API: its statistics, invalidation and warming.

use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use flowgate_cache::invalidate::Selector;
use serde_json::json;

use super::reply::{OPENMETRICS, client_error};
use crate::cache_metrics::CacheCollector;
use crate::gateway::Gateway;
use crate::warming::{self, Busy, Labelled, WarmRequest};

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new()
        .routes(routes!(cache_stats))
        .routes(routes!(cache_hit_rate))
        .routes(routes!(cache_metrics))
        .routes(routes!(cache_invalidate))
        .routes(routes!(cache_warm_status, cache_warm))
}

pub(super) fn cache_disabled() -> Response {
    client_error(
        StatusCode::NOT_FOUND,
        "the cache is not enabled (`[cache] enabled = true`)",
        "cache_disabled",
    )
}

#[utoipa::path(
    get,
    path = "/api/v1/performance/cache/stats",
    tag = "cache",
    summary = "the cache's tiers, hit rates, savings and categories",
    responses((status = 200, description = "the statistics", body = Object), (status = 404, description = "the cache is off ([cache] enabled = false)", body = super::openapi::ApiError))
)]
async fn cache_stats(State(gw): State<Arc<Gateway>>) -> Response {
    let Some(cache) = gw.cache() else {
        return cache_disabled();
    };
    let s = cache.stats();
    let mut v = serde_json::to_value(&s).unwrap_or_default();
    v["hits"] = json!(s.hits());
    v["hit_rate"] = json!(s.hit_rate());
    if let Some(d) = &s.disk {
        v["disk"]["compression_ratio"] = json!(d.compression_ratio());
    }
    if let Some(r) = &s.redis {
        v["redis"]["compression_ratio"] = json!(r.compression_ratio());
    }
    Json(v).into_response()
}

/// The hit rate overall, the share of lookups each tier answered, and per category.
#[utoipa::path(
    get,
    path = "/api/v1/performance/cache/hit-rate",
    tag = "cache",
    summary = "hit rates overall and per category",
    responses((status = 200, description = "the hit rates", body = Object), (status = 404, description = "the cache is off ([cache] enabled = false)", body = super::openapi::ApiError))
)]
async fn cache_hit_rate(State(gw): State<Arc<Gateway>>) -> Response {
    let Some(cache) = gw.cache() else {
        return cache_disabled();
    };
    let s = cache.stats();
    let share = |n| s.share_of_lookups(n);
    let categories: serde_json::Map<String, serde_json::Value> = s
        .categories
        .iter()
        .map(|c| (c.name.clone(), json!(c.hit_rate)))
        .collect();
    Json(json!({
        "hit_rate": s.hit_rate(),
        "lookups": s.lookups(),
        "tiers": {
            "memory": share(s.hits_memory),
            "redis": s.redis.map(|_| share(s.hits_redis)),
            "disk": s.disk.map(|_| share(s.hits_disk)),
            "stale": share(s.stale),
        },
        "categories": categories,
    }))
    .into_response()
}

#[utoipa::path(
    get,
    path = "/api/v1/performance/cache/metrics",
    tag = "cache",
    summary = "the cache's counters per tier",
    responses((status = 200, description = "the counters", body = Object), (status = 404, description = "the cache is off ([cache] enabled = false)", body = super::openapi::ApiError))
)]
async fn cache_metrics(State(gw): State<Arc<Gateway>>) -> Response {
    let Some(cache) = gw.cache() else {
        return cache_disabled();
    };
    let mut r = CacheCollector(cache.clone()).encode_text().into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, OPENMETRICS.clone());
    r
}

/// `{"key": ...}`, `{"prefix": ...}`, `{"pattern": ...}`, `{"namespace": ...}`,
/// `{"tag": ...}` or `{"all": true}`: exactly one.
fn selector(body: &[u8]) -> Result<Selector, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let Some(obj) = v.as_object().filter(|o| o.len() == 1) else {
        return Err(
            "expected an object with exactly one of key, prefix, pattern, namespace, tag, all"
                .into(),
        );
    };
    let (name, value) = obj.iter().next().ok_or("empty object")?;
    if name == "all" {
        return match value.as_bool() {
            Some(true) => Ok(Selector::All),
            _ => Err("`all` must be true".into()),
        };
    }
    let text = value
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("`{name}` must be a non-empty string"))?
        .to_string();
    match name.as_str() {
        "key" => Ok(Selector::Key(text)),
        "prefix" => Ok(Selector::Prefix(text)),
        "pattern" => Ok(Selector::Glob(text)),
        "namespace" => Ok(Selector::Namespace(text)),
        "tag" => Ok(Selector::Tag(text)),
        other => Err(format!(
            "unknown selector `{other}`: expected key, prefix, pattern, namespace, tag or all"
        )),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/performance/cache/invalidate",
    tag = "cache",
    summary = "drop entries by key, tag, category or prefix",
    request_body(content = Object, description = "one selector: key, tag, category or prefix", content_type = "application/json"),
    responses((status = 200, description = "what was dropped", body = Object), (status = 400, description = "a bad selector", body = super::openapi::ApiError), (status = 404, description = "the cache is off ([cache] enabled = false)", body = super::openapi::ApiError), (status = 502, description = "a shared tier could not be reached", body = super::openapi::ApiError))
)]
async fn cache_invalidate(State(gw): State<Arc<Gateway>>, body: axum::body::Bytes) -> Response {
    let Some(cache) = gw.cache() else {
        return cache_disabled();
    };
    let sel = match selector(&body) {
        Ok(s) => s,
        Err(why) => return client_error(StatusCode::BAD_REQUEST, &why, "invalid_selector"),
    };
    let removed = cache.invalidate_matching(&sel).await;
    let status = if matches!(removed.redis, Some(None)) {
        // Redis could not be reached: the caller should retry.
        StatusCode::BAD_GATEWAY
    } else {
        StatusCode::OK
    };
    (status, Json(json!({"invalidated": removed}))).into_response()
}

/// `{"requests": [...]}` and/or `{"top": N}`: the labelled requests of a warming job.
fn warm_requests(gw: &Gateway, body: &[u8]) -> Result<Vec<Labelled>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let Some(obj) = v.as_object().filter(|o| !o.is_empty()) else {
        return Err("expected an object with `requests` (a list) and/or `top` (a number)".into());
    };
    if let Some(other) = obj.keys().find(|k| *k != "requests" && *k != "top") {
        return Err(format!(
            "unknown field `{other}`: expected `requests` or `top`"
        ));
    }
    let mut out = Vec::new();
    if let Some(list) = obj.get("requests") {
        let list = list.as_array().ok_or("`requests` must be a list")?;
        if list.len() > warming::MAX_JOB {
            return Err(format!(
                "{} requests: at most {} per job",
                list.len(),
                warming::MAX_JOB
            ));
        }
        for (i, r) in list.iter().enumerate() {
            let request =
                WarmRequest::parse(r.clone()).map_err(|e| format!("requests[{i}]: {e}"))?;
            out.push((format!("requests[{i}]"), Ok(request)));
        }
    }
    if let Some(top) = obj.get("top") {
        let keep = gw.warming().recent.keep();
        let n = top
            .as_u64()
            .filter(|&n| n >= 1)
            .ok_or("`top` must be a number of requests, at least 1")?;
        if keep == 0 {
            return Err("no requests are kept for top-N warming (`cache.warm.keep = 0`)".into());
        }
        let n = usize::try_from(n).unwrap_or(usize::MAX).min(keep);
        out.extend(gw.warming().recent.top_labelled(n));
    }
    Ok(out)
}

#[utoipa::path(
    post,
    path = "/api/v1/performance/cache/warm",
    tag = "cache",
    summary = "start warming: given requests, or the top N recent",
    request_body(content = Object, description = "requests, or top", content_type = "application/json"),
    responses((status = 202, description = "started", body = Object), (status = 400, description = "a bad body", body = super::openapi::ApiError), (status = 404, description = "the cache is off ([cache] enabled = false)", body = super::openapi::ApiError), (status = 409, description = "a warming job is running", body = super::openapi::ApiError))
)]
async fn cache_warm(State(gw): State<Arc<Gateway>>, body: axum::body::Bytes) -> Response {
    if gw.cache().is_none() {
        return cache_disabled();
    }
    let requests = match warm_requests(&gw, &body) {
        Ok(r) => r,
        Err(why) => return client_error(StatusCode::BAD_REQUEST, &why, "invalid_warm_request"),
    };
    let source = if body_has_requests(&body) {
        "api"
    } else {
        "top"
    };
    match warming::job::start(&gw, source, requests) {
        Ok(job) => (StatusCode::ACCEPTED, Json(json!({"job": job}))).into_response(),
        Err(Busy(job)) => client_error(
            StatusCode::CONFLICT,
            &format!(
                "warming job {} is running ({} of {} done): try again when it is done",
                job.id, job.done, job.total
            ),
            "warming_in_progress",
        ),
    }
}

fn body_has_requests(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v.get("requests").is_some())
}

#[utoipa::path(
    get,
    path = "/api/v1/performance/cache/warm",
    tag = "cache",
    summary = "the warming job",
    responses((status = 200, description = "the job", body = Object), (status = 404, description = "the cache is off ([cache] enabled = false)", body = super::openapi::ApiError))
)]
async fn cache_warm_status(State(gw): State<Arc<Gateway>>) -> Response {
    if gw.cache().is_none() {
        return cache_disabled();
    }
    let w = gw.warming();
    let top: Vec<_> = w
        .recent
        .top(10)
        .into_iter()
        .map(|p| {
            json!({
                "key": p.key.to_string(),
                "method": p.request.method.as_str(),
                "path": p.request.uri.path(),
                "requests": p.count,
            })
        })
        .collect();
    Json(json!({
        "job": w.status(),
        "kept": w.recent.len(),
        "keep": w.recent.keep(),
        "top": top,
    }))
    .into_response()
}
