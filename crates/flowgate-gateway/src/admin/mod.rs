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
mod capacity;
mod cost;
mod guard;
mod health;
mod history;
mod instances;
mod keys;
mod live;
mod recommendations;
mod reply;
mod report;
mod scaling;
mod score;
mod stages;
mod status;

use std::sync::Arc;

use crate::gateway::Gateway;

/// The admin API's router.
pub fn router(gw: Arc<Gateway>) -> axum::Router {
    axum::Router::new()
        .merge(status::routes())
        .merge(cache::routes())
        .merge(cache_optimize::routes())
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
        .fallback(reply::not_found)
        .layer(axum::middleware::from_fn_with_state(
            guard::Door::new(gw.clone()),
            guard::guard,
        ))
        .with_state(gw)
}
