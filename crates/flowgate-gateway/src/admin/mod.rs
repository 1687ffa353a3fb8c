//! The admin listener: `/metrics` (Prometheus), `/health`, `/ready` ([`status`]), the JSON
//! API under `/api/v1/performance/...` (the cache, rate and concurrency limits, balancing,
//! registered endpoints), spend under `/api/v1/cost/...` and key management under
//! `/api/v1/keys`, a module each. It runs on
//! its own port so that it can be firewalled apart from the data plane.

mod admission;
mod alert_rules;
mod alerts;
mod anomalies;
mod automation;
mod balance;
mod balance_optimize;
mod budgets;
mod cache;
mod cache_optimize;
mod cache_strategies;
mod capacity;
mod cost;
mod dashboard;
mod database;
mod guard;
mod health;
mod history;
mod instances;
mod keys;
mod live;
mod openapi;
mod recommendations;
mod reply;
mod report;
mod scaling;
mod score;
mod stages;
mod status;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::gateway::Gateway;

/// The admin API's routes, each documented by its handler's `#[utoipa::path]`.
fn api() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new()
        .merge(status::routes())
        .merge(cache::routes())
        .merge(cache_optimize::routes())
        .merge(cache_strategies::routes())
        .merge(cost::routes())
        .merge(budgets::routes())
        .merge(capacity::routes())
        .merge(recommendations::routes())
        .merge(history::routes())
        .merge(alerts::routes())
        .merge(alert_rules::routes())
        .merge(anomalies::routes())
        .merge(health::routes())
        .merge(score::routes())
        .merge(report::routes())
        .merge(stages::routes())
        .merge(scaling::routes())
        .merge(automation::routes())
        .merge(live::routes())
        .merge(keys::routes())
        .merge(admission::routes())
        .merge(balance::routes())
        .merge(balance_optimize::routes())
        .merge(instances::routes())
        .merge(database::routes())
        .merge(dashboard::routes())
        .routes(routes!(openapi::serve))
}

/// The admin API's OpenAPI 3.1 document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    openapi::finish(api().into_openapi())
}

/// The admin API's router.
pub fn router(gw: Arc<Gateway>) -> axum::Router {
    let (router, doc) = api().split_for_parts();
    let json = openapi::finish(doc)
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"the OpenAPI document: {e}\"}}"));
    router
        .fallback(reply::not_found)
        .layer(axum::Extension(openapi::Document(json.into())))
        .layer(axum::middleware::from_fn_with_state(
            guard::Door::new(gw.clone()),
            guard::guard,
        ))
        .with_state(gw)
}
