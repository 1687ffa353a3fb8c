//! The dashboard at `/dashboard`: one page, its script and its style, embedded in the
//! binary and served as they are (nothing is fetched from anywhere else: the page's
//! Content-Security-Policy says so). They hold no data, so they are served without a token;
//! the page asks for the admin token and sends it with every call to the API, as any
//! client does.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::gateway::Gateway;

const INDEX: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("app.css");

/// Only this listener: no other origin for scripts, styles, images or calls.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                      form-action 'none'; frame-ancestors 'none'";

/// The paths the dashboard serves (open without a token: they hold no data).
pub(super) const PATHS: [&str; 4] = [
    "/dashboard",
    "/dashboard/app.js",
    "/dashboard/app.css",
    "/dashboard/session",
];

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new()
        .routes(routes!(page))
        .routes(routes!(script))
        .routes(routes!(style))
        .routes(routes!(session))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The dashboard: overview, routes, pools, cache, admission, cost, alerts, capacity.
#[utoipa::path(
    get,
    path = "/dashboard",
    tag = "dashboard",
    summary = "the dashboard's page (served without a token; it asks for one)",
    responses((status = 200, description = "the page", body = String, content_type = "text/html"))
)]
async fn page() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

#[utoipa::path(
    get,
    path = "/dashboard/app.js",
    tag = "dashboard",
    summary = "the dashboard's script",
    responses((status = 200, description = "the script", body = String, content_type = "text/javascript"))
)]
async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

#[utoipa::path(
    get,
    path = "/dashboard/app.css",
    tag = "dashboard",
    summary = "the dashboard's style",
    responses((status = 200, description = "the style", body = String, content_type = "text/css"))
)]
async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// Whether the API asks for a token, so that the page asks for one before calling it (and
/// no call is refused for the want of one).
#[utoipa::path(
    get,
    path = "/dashboard/session",
    tag = "dashboard",
    summary = "whether the admin API needs a token (served without one)",
    responses((status = 200, description = "`{\"token_required\": bool}`", body = Object))
)]
async fn session(State(gw): State<Arc<Gateway>>) -> Json<serde_json::Value> {
    let required = gw.runtime().config.admin.requires_token();
    Json(serde_json::json!({ "token_required": required }))
}
