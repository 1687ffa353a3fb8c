//! The load balancer's endpoints on the admin listener:
//!
//! - `GET /api/v1/performance/load-balancer/instances`: every pool's endpoints, from the
//!   config file or registered at run time, with their state;
//! - `POST .../instances/register` (`{"pool": "llm", "url": "http://…", "name", "weight",
//!   "tags", "region", "priority"}`) and `POST .../instances/deregister` (`{"pool", "name"}`):
//!   endpoints added at run time (see [`crate::instances`]);
//! - `POST .../simulate-request` (`{"method", "path", "headers", "body"}`): the route, pool and
//!   endpoint a request like that would get now, and why, changing nothing.

use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::{Value, json};

use super::reply::client_error;
use crate::body::ReqBody;
use crate::gateway::Gateway;
use crate::instances::Refused;

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new()
        .routes(routes!(instances))
        .routes(routes!(register))
        .routes(routes!(deregister))
        .routes(routes!(simulate))
}

fn bad(message: &str) -> Response {
    client_error(StatusCode::BAD_REQUEST, message, "invalid_instance_request")
}

fn no_pool(pool: &str) -> Response {
    client_error(
        StatusCode::NOT_FOUND,
        &format!("no pool named {pool:?}"),
        "pool_not_found",
    )
}

#[utoipa::path(
    get,
    path = "/api/v1/performance/load-balancer/instances",
    tag = "load-balancer",
    summary = "every pool's endpoints, from the config and registered",
    responses((status = 200, description = "the endpoints", body = Object))
)]
async fn instances(State(gw): State<Arc<Gateway>>) -> Json<Value> {
    let rt = gw.runtime();
    let pools: Vec<Value> = rt
        .upstreams
        .iter()
        .map(|u| {
            let b = u.balancer();
            let now = b.now_ns();
            let endpoints: Vec<Value> = u
                .endpoints()
                .iter()
                .zip(b.health())
                .map(|(e, h)| {
                    let c = &e.cfg;
                    json!({
                        "name": &*e.name,
                        "url": c.url.to_string(),
                        "weight": c.weight,
                        "tags": c.tags,
                        "region": c.region,
                        "priority": c.priority,
                        "source": if gw.instances().is_registered(&u.name, &e.name) {
                            "runtime"
                        } else {
                            "config"
                        },
                        "state": h.state(now).as_str(),
                        "in_flight": e.active(),
                    })
                })
                .collect();
            json!({"pool": &*u.name, "endpoints": endpoints})
        })
        .collect();
    Json(json!({ "pools": pools }))
}

/// The body's `pool` and the rest.
fn pool_of(body: &[u8]) -> Result<(String, serde_json::Map<String, Value>), String> {
    let mut v: serde_json::Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| format!("expected a JSON object: {e}"))?;
    match v.remove("pool") {
        Some(Value::String(p)) => Ok((p, v)),
        _ => Err("expected \"pool\": the name of a pool".into()),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/performance/load-balancer/instances/register",
    tag = "load-balancer",
    summary = "register an endpoint in a pool",
    request_body(content = Object, description = "pool, url, name, weight, tags, region, priority", content_type = "application/json"),
    responses((status = 201, description = "registered", body = Object), (status = 400, description = "a bad field", body = super::openapi::ApiError), (status = 404, description = "no such pool", body = super::openapi::ApiError), (status = 409, description = "the pool has an endpoint of this name", body = super::openapi::ApiError))
)]
async fn register(State(gw): State<Arc<Gateway>>, body: Bytes) -> Response {
    let (pool, rest) = match pool_of(&body) {
        Ok(x) => x,
        Err(why) => return bad(&why),
    };
    let spec: flowgate_config::EndpointSpec = match serde_json::from_value(Value::Object(rest)) {
        Ok(s) => s,
        Err(e) => return bad(&format!("invalid endpoint: {e}")),
    };
    // A registered endpoint may carry only a credential the config already gives its own
    // endpoints: a caller must not be able to send itself any variable of the process
    // (and learn nothing about which are set).
    let declared: Vec<String> = gw
        .runtime()
        .config
        .pools
        .iter()
        .flat_map(|p| p.endpoints.iter())
        .filter_map(|e| e.api_key.as_ref()?.secret.env_var().map(str::to_string))
        .collect();
    if let Some(var) = &spec.api_key_env
        && !declared.contains(var)
    {
        return bad(&format!(
            "api_key_env may only name a variable the config's endpoints use ({})",
            if declared.is_empty() {
                "none do".to_string()
            } else {
                declared.join(", ")
            }
        ));
    }
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| declared.contains(k))
        .collect();
    let ep = match flowgate_config::endpoint_from_spec(spec, &env) {
        Ok(ep) => ep,
        Err(list) => return bad(&super::reply::problems(&list)),
    };
    let rt = gw.runtime();
    let Some(u) = rt.upstreams.iter().find(|u| *u.name == pool) else {
        return no_pool(&pool);
    };
    let name = ep.name.clone();
    if gw.instances().add(&u.cfg, ep) == Err(Refused::Taken) {
        return client_error(
            StatusCode::CONFLICT,
            &format!("pool {pool:?} has an endpoint named {name:?} already"),
            "endpoint_exists",
        );
    }
    if let Err(why) = gw.rebuild() {
        let _ = gw.instances().remove(&pool, &name);
        return bad(&why);
    }
    tracing::info!(%pool, endpoint = %name, "endpoint registered");
    (
        StatusCode::CREATED,
        Json(json!({"pool": pool, "name": name, "source": "runtime"})),
    )
        .into_response()
}

#[utoipa::path(
    post,
    path = "/api/v1/performance/load-balancer/instances/deregister",
    tag = "load-balancer",
    summary = "deregister an endpoint registered through the API",
    request_body(content = Object, description = "pool, name", content_type = "application/json"),
    responses((status = 200, description = "deregistered", body = Object), (status = 400, description = "a bad body", body = super::openapi::ApiError), (status = 404, description = "no such pool or endpoint", body = super::openapi::ApiError), (status = 409, description = "an endpoint of the config", body = super::openapi::ApiError))
)]
async fn deregister(State(gw): State<Arc<Gateway>>, body: Bytes) -> Response {
    let (pool, rest) = match pool_of(&body) {
        Ok(x) => x,
        Err(why) => return bad(&why),
    };
    let Some(Value::String(name)) = rest.get("name") else {
        return bad("expected \"name\": the registered endpoint's name");
    };
    let rt = gw.runtime();
    let Some(u) = rt.upstreams.iter().find(|u| *u.name == pool) else {
        return no_pool(&pool);
    };
    if gw.instances().remove(&pool, name).is_err() {
        return if u.endpoint(name).is_some() {
            client_error(
                StatusCode::CONFLICT,
                &format!(
                    "{name:?} is in the config file: remove it there and reload; only \
                     endpoints registered through this API can be deregistered"
                ),
                "endpoint_in_config",
            )
        } else {
            client_error(
                StatusCode::NOT_FOUND,
                &format!("pool {pool:?} has no endpoint named {name:?}"),
                "endpoint_not_found",
            )
        };
    }
    if let Err(why) = gw.rebuild() {
        return bad(&why);
    }
    tracing::info!(%pool, endpoint = %name, "endpoint deregistered");
    Json(json!({"pool": pool, "name": name, "deregistered": true})).into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Described {
    #[serde(default = "post_method")]
    method: String,
    path: String,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    /// JSON (an object, as an openai request's) or text.
    #[serde(default)]
    body: Option<Value>,
}

fn post_method() -> String {
    "POST".into()
}

#[utoipa::path(
    post,
    path = "/api/v1/performance/load-balancer/simulate-request",
    tag = "load-balancer",
    summary = "where a request would go now, and why (nothing is sent)",
    request_body(content = Object, description = "method, path, headers, body", content_type = "application/json"),
    responses((status = 200, description = "the route, pool, endpoint and candidates", body = Object), (status = 400, description = "a bad body", body = super::openapi::ApiError), (status = 404, description = "no route matches the path", body = super::openapi::ApiError))
)]
async fn simulate(State(gw): State<Arc<Gateway>>, body: Bytes) -> Response {
    let d: Described = match serde_json::from_slice(&body) {
        Ok(d) => d,
        Err(e) => {
            return bad(&format!(
                "expected {{\"method\", \"path\", \"headers\", \"body\"}}: {e}"
            ));
        }
    };
    let Ok(method) = Method::from_bytes(d.method.to_ascii_uppercase().as_bytes()) else {
        return bad(&format!("invalid method {:?}", d.method));
    };
    let mut headers = HeaderMap::new();
    for (k, v) in &d.headers {
        match (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            (Ok(k), Ok(v)) => _ = headers.insert(k, v),
            _ => return bad(&format!("invalid header {k:?}: {v:?}")),
        }
    }
    let req_body = match &d.body {
        None => ReqBody::Full(None),
        Some(Value::String(s)) => ReqBody::full(Bytes::from(s.clone())),
        Some(v) => ReqBody::full(Bytes::from(v.to_string())),
    };
    let rt = gw.runtime();
    let model = d
        .body
        .as_ref()
        .and_then(|b| b.get("model"))
        .and_then(Value::as_str);
    let route = match rt
        .router
        .route(&method, &d.path, &headers)
        .and_then(|r| r.for_model(model, &rt.config.models))
    {
        Ok(r) => r,
        Err(e) => {
            return client_error(e.status(), &e.to_string(), e.code());
        }
    };
    let pool = &route.upstream;
    let key = pool.hash_key(&headers);
    let tag = crate::forward::request_tag(pool, &headers, Some(&req_body));
    let session = pool.session_id(&headers);
    let region = pool.region(&headers);
    let (chosen, why) = pool.preview(key, tag.as_deref(), session, region);
    let b = pool.balancer();
    let now = b.now_ns();
    let candidates: Vec<Value> = pool
        .endpoints()
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let (n, h) = (&b.nodes()[i], &b.health()[i]);
            json!({
                "name": &*e.name,
                "usable": b.admits(i),
                "state": h.state(now).as_str(),
                "in_flight": e.active(),
                "latency_ms": n.latency(now).as_secs_f64() * 1e3,
                "weight": n.weight(),
                "tags": e.cfg.tags,
                "region": e.cfg.region,
                "priority": e.cfg.priority,
                "sessions": pool.sessions.as_ref().map(|s| s.on(i)),
            })
        })
        .collect();
    Json(json!({
        "route": &*route.name,
        "pool": &*pool.name,
        "strategy": b.strategy().as_str(),
        "endpoint": chosen.map(|e| &*e.name),
        "why": if chosen.is_some() { why } else { "no endpoint can take it now (the request would get 503)".into() },
        "tag": tag,
        "session": session.map(|s| String::from_utf8_lossy(s).into_owned()),
        "region": region,
        "fallbacks": route.fallbacks.iter().map(|(p, _)| &*p.name).collect::<Vec<_>>(),
        "candidates": candidates,
    }))
    .into_response()
}
