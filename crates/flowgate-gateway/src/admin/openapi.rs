//! The admin API's OpenAPI 3.1 document, made from the handlers' `#[utoipa::path]`
//! attributes as they are routed (`utoipa_axum::routes!`: a path is written once, for
//! the router and the document both), and what every operation shares laid over it: the
//! bearer token, the answers of the door in front of every handler (401, 403, 415, 429),
//! the error shape. Served at `GET /api/v1/openapi.json` and printed by `flowgate openapi`.

use std::sync::Arc;

use axum::Extension;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};
use utoipa::{IntoParams, ToSchema};

/// An error answer, in the OpenAI shape the data plane uses too.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "a schema: the answers are made by reply::client_error"
)]
pub(super) struct ApiError {
    error: ApiErrorDetail,
}

/// What went wrong.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "a schema: the answers are made by reply::client_error"
)]
struct ApiErrorDetail {
    /// In words, saying what is wrong.
    message: String,
    /// `invalid_request_error`, `authentication_error`, `permission_error`, `not_found_error`,
    /// `rate_limit_error` or `api_error`.
    r#type: String,
    /// A stable code for programs (`invalid_parameter`, `pool_not_found`, ...).
    code: String,
}

/// A listing of events: a time range and how many of the last ones.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "parameters: the handlers read them with reply::listing"
)]
pub(super) struct Listing {
    /// From this time (Unix seconds, inclusive); the beginning by default.
    from: Option<u64>,
    /// Up to this time (Unix seconds, inclusive); now by default.
    to: Option<u64>,
    /// The last N (1,000 by default, 10,000 at most).
    limit: Option<u64>,
}

/// A report's time window.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "a parameter: the handlers read it with reply::window"
)]
pub(super) struct Window {
    /// How far back: `24h`, `7d` (from 1 h to 35 d).
    window: Option<String>,
}

/// The optimize endpoints' body: propose (`{}`), apply, or revert what was applied.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "a schema: the handlers read it with reply::optimize_asked"
)]
pub(super) struct OptimizeBody {
    /// Apply the proposals that can be applied at run time (through the running config's
    /// overlay).
    apply: Option<bool>,
    /// Take away every change this endpoint applied.
    revert: Option<bool>,
}

const TITLE: &str = "flowgate admin API";

/// The answers the door (`guard.rs`) gives before any handler, by status.
const DOOR: [(&str, &str); 4] = [
    (
        "401",
        "no token, or an unknown one, while the API has tokens ([[admin.tokens]] or \
         FLOWGATE_ADMIN_TOKEN)",
    ),
    (
        "403",
        "the token's scope does not allow this call (a `metrics` token outside /metrics, \
         /health and /ready; a `read` token for anything but GET and HEAD), or a Host the \
         API does not answer for",
    ),
    (
        "415",
        "a request with a body that is not Content-Type: application/json",
    ),
    (
        "429",
        "too many wrong tokens from this address: try again after Retry-After seconds",
    ),
];

/// The groups of operations, in the order a reader meets them.
const TAGS: [(&str, &str); 14] = [
    (
        "status",
        "liveness, readiness, Prometheus, the gateway's parts, this document",
    ),
    (
        "insight",
        "the performance report, score, recommendations and stages",
    ),
    (
        "cache",
        "the response cache: statistics, invalidation, warming, optimization",
    ),
    (
        "load-balancer",
        "pools and endpoints: metrics, strategy, registration, optimization",
    ),
    ("admission", "rate limits, concurrency limits and queues"),
    ("cost", "spend, savings, budgets and cost advice"),
    ("keys", "virtual API keys"),
    ("history", "the metrics history and the live view"),
    ("alerts", "alerts, their rules, silences and notifiers"),
    ("anomalies", "anomalies found on the metrics history"),
    (
        "capacity",
        "capacity planning: forecasts, scenarios, bottlenecks",
    ),
    ("scaling", "scaling plans and actuators"),
    (
        "automation",
        "automation rules, their audit log, the optimization cycle",
    ),
    ("dashboard", "the built-in dashboard's page and assets"),
];

/// Paths answered whatever the token when `[admin]` opens them.
const OPENABLE: [&str; 3] = ["/health", "/ready", "/metrics"];

/// Lays what every operation shares over the document the handlers made.
pub(super) fn finish(mut doc: OpenApi) -> OpenApi {
    doc.info.title = TITLE.into();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    // Not the defaults utoipa-axum's router starts from (its own crate's authors).
    doc.info.contact = None;
    doc.info.license = Some(
        utoipa::openapi::LicenseBuilder::new()
            .name(env!("CARGO_PKG_LICENSE"))
            .identifier(Some(env!("CARGO_PKG_LICENSE")))
            .build(),
    );
    doc.info.description = Some(
        "The admin listener of flowgate, the performance gateway for LLM and slow HTTP \
         APIs. JSON in and out; errors in the OpenAI shape. See docs/admin-api.md."
            .into(),
    );
    doc.tags = Some(
        TAGS.iter()
            .map(|(name, what)| {
                utoipa::openapi::tag::TagBuilder::new()
                    .name(*name)
                    .description(Some(*what))
                    .build()
            })
            .collect(),
    );
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("an admin token ([[admin.tokens]])"))
                .build(),
        ),
    );
    for (status, why) in DOOR {
        components.responses.insert(
            door_name(status),
            RefOr::T(
                ResponseBuilder::new()
                    .description(why)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ApiError")))
                            .build(),
                    )
                    .build(),
            ),
        );
    }
    let bearer = SecurityRequirement::new("bearer", Vec::<String>::new());
    for (path, item) in doc.paths.paths.iter_mut() {
        let openable = OPENABLE.contains(&path.as_str());
        let open = super::dashboard::PATHS.contains(&path.as_str());
        for (method, op) in operations(item) {
            op.operation_id = Some(operation_id(method_name(&method), path));
            if open {
                // No token asked; only the Host check.
                op.security = Some(vec![SecurityRequirement::default()]);
                op.responses.responses.insert(
                    "403".into(),
                    RefOr::Ref(Ref::from_response_name(door_name("403"))),
                );
                continue;
            }
            let body = matches!(
                method,
                HttpMethod::Post | HttpMethod::Put | HttpMethod::Patch
            );
            let mut security = vec![bearer.clone()];
            if openable {
                security.push(SecurityRequirement::default());
            }
            op.security = Some(security);
            for (status, _) in DOOR {
                if status == "415" && !body {
                    continue;
                }
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name(door_name(status))));
            }
        }
    }
    doc
}

/// An operation's id from its method and path (unique, as the paths are):
/// `get_cost_budgets_name` for `GET /api/v1/cost/budgets/{name}`.
fn operation_id(method: &str, path: &str) -> String {
    let words = path
        .trim_start_matches("/api/v1")
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty());
    std::iter::once(method)
        .chain(words)
        .collect::<Vec<_>>()
        .join("_")
}

fn method_name(m: &HttpMethod) -> &'static str {
    match m {
        HttpMethod::Get => "get",
        HttpMethod::Put => "put",
        HttpMethod::Post => "post",
        HttpMethod::Delete => "delete",
        HttpMethod::Patch => "patch",
        HttpMethod::Head => "head",
        HttpMethod::Options => "options",
        HttpMethod::Trace => "trace",
    }
}

fn door_name(status: &str) -> String {
    match status {
        "401" => "Unauthorized",
        "403" => "Forbidden",
        "415" => "UnsupportedMediaType",
        _ => "TooManyFailures",
    }
    .to_string()
}

/// A path's operations, by method.
fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = (HttpMethod, &mut Operation)> {
    [
        (HttpMethod::Get, item.get.as_mut()),
        (HttpMethod::Put, item.put.as_mut()),
        (HttpMethod::Post, item.post.as_mut()),
        (HttpMethod::Delete, item.delete.as_mut()),
        (HttpMethod::Patch, item.patch.as_mut()),
        (HttpMethod::Head, item.head.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
}

/// The document, as JSON, served as it was made at start.
#[derive(Clone)]
pub(super) struct Document(pub Arc<str>);

/// This document: the admin API's OpenAPI 3.1 description.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "status",
    responses((status = 200, description = "the OpenAPI 3.1 document", body = Object))
)]
pub(super) async fn serve(Extension(doc): Extension<Document>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.0.to_string(),
    )
        .into_response()
}
