//! `GET /api/v1/cost/recommendations`: what would have saved money, each with its evidence
//! and the change that acts on it, most valuable first:
//!
//! - `cheaper_model`: a route's requests to a model that a cheaper model of the same tier,
//!   with every capability it has and room for them, would have answered for less (the
//!   ledger's tokens over the window, priced at both);
//! - `max_tokens`: a route's requests that ask for far more answer tokens than they use
//!   (the ledger's sums of what was asked and used, and the longest answer);
//! - `longer_ttl`: a cache category whose misses are often for answers that had expired
//!   shortly before (the cache's counters since start);
//! - `cache_room`: many misses for answers dropped while still servable.
//!
//! The window and filters are the other cost reads' (`window`, `from`, `to`, `key`,
//! `team`, `route`, `model`, `provider`).

use std::collections::HashMap;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::Json;
use axum::extract::{Query as Params, State};
use axum::response::{IntoResponse, Response};
use flowgate_cost::advice::{CheaperModel, MaxTokens};
use flowgate_cost::budget::usd_of;
use flowgate_cost::ledger::Totals;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::cost::{bad, check_known, filters, query, window};
use super::reply::server_error;
use crate::gateway::Gateway;

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new().routes(routes!(recommendations))
}

fn usd(d: Decimal) -> String {
    d.round_dp(9).normalize().to_string()
}

/// A longer TTL for a cache category, with its evidence.
pub(super) fn longer_ttl(gw: &Gateway, a: &flowgate_cache::advice::LongerTtl) -> Value {
    json!({
        "kind": "longer_ttl",
        "category": a.category,
        "saving_usd": a.saving_usd().map(|v| usd(Decimal::try_from(v).unwrap_or_default())),
        "change": format!(
            "[[cache.categories]] {:?}: ttl = \"{}s\"",
            a.category,
            a.suggested_ttl.as_secs()
        ),
        "evidence": {
            "ttl_seconds": a.ttl.as_secs(),
            "suggested_ttl_seconds": a.suggested_ttl.as_secs(),
            "misses": a.misses,
            "misses_of_expired_answers": a.misses_expired,
            "would_have_hit": a.would_hit,
            "usd_per_hit": a.usd_per_hit,
            "since_start_seconds": gw.uptime().as_secs(),
        },
    })
}

fn cheaper_model(a: &CheaperModel) -> Value {
    json!({
        "kind": "cheaper_model",
        "route": a.route,
        "model": a.model,
        "saving_usd": usd(a.saving_usd()),
        "change": format!(
            "send route {:?}'s requests for {:?} to {:?} (clients name it, or a model_policy tier)",
            a.route, a.model, a.instead
        ),
        "evidence": {
            "instead": a.instead,
            "tier": a.tier,
            "requests": a.requests,
            "avg_prompt_tokens": a.avg_prompt_tokens,
            "avg_answer_tokens": a.avg_answer_tokens,
            "spent_usd": usd(a.spent_usd),
            "would_cost_usd": usd(a.would_cost_usd),
        },
    })
}

fn max_tokens(a: &MaxTokens) -> Value {
    json!({
        "kind": "max_tokens",
        "route": a.route,
        "model": a.model,
        "saving_usd": Value::Null,
        "change": format!(
            "route {:?}: shaping = {{ max_tokens_cap = {} }} (every answer seen fits)",
            a.route, a.suggested_cap
        ),
        "evidence": {
            "requests": a.requests,
            "avg_max_tokens": a.avg_asked,
            "avg_answer_tokens": a.avg_used,
            "longest_answer_tokens": a.most_used,
            "suggested_cap": a.suggested_cap,
            "exposure_usd_per_request": usd(a.exposure_usd_per_request),
        },
    })
}

/// The cost recommendations for the query `p` (most valuable first), and what the
/// ledger says was spent over it; what is wrong with the query, or the ledger's error.
pub(super) fn cost_list(gw: &Gateway, p: &HashMap<String, String>) -> Result<Vec<Value>, String> {
    cost(gw, p).map(|(list, _, _)| list)
}

/// What [`cost_list`] gives, with the query and the total spent.
fn cost(
    gw: &Gateway,
    p: &HashMap<String, String>,
) -> Result<(Vec<Value>, flowgate_cost::ledger::Query, Decimal), String> {
    check_known(p, &[])?;
    let q = query(gw, p)?;
    gw.telemetry().flush();
    let mut by: HashMap<(Arc<str>, Arc<str>), Totals> = HashMap::new();
    gw.spending()
        .ledger()
        .each(&q, |_, dims, t| {
            by.entry((dims.route.clone(), dims.model.clone()))
                .or_default()
                .add(t);
        })
        .map_err(|e| format!("the spend ledger could not be read: {e}"))?;
    let rows: Vec<(String, String, Totals)> = by
        .into_iter()
        .filter(|((_, model), _)| !model.is_empty())
        .map(|((r, m), t)| (r.to_string(), m.to_string(), t))
        .collect();
    let rt = gw.runtime();
    let config = &rt.config;
    // Dollars first, then the rest in their own order.
    let mut list: Vec<Value> = Vec::new();
    let mut valued: Vec<(Decimal, Value)> =
        flowgate_cost::advice::cheaper_models(&rows, &config.models, &config.cost.tiers)
            .iter()
            .map(|a| (a.saving_usd(), cheaper_model(a)))
            .collect();
    let cache = gw.cache().map(|c| c.stats());
    if let Some(s) = &cache {
        let ttl_of = |name: &str| {
            config
                .cache
                .categories
                .iter()
                .find(|c| c.name == name)
                .map(|c| c.ttl)
        };
        for a in flowgate_cache::advice::longer_ttls(s, &ttl_of) {
            let saving = a
                .saving_usd()
                .and_then(|v| Decimal::try_from(v).ok())
                .unwrap_or_default();
            valued.push((saving, longer_ttl(gw, &a)));
        }
    }
    valued.sort_by_key(|(saving, _)| std::cmp::Reverse(*saving));
    list.extend(valued.into_iter().map(|(_, v)| v));
    list.extend(
        flowgate_cost::advice::max_tokens(&rows, &config.models)
            .iter()
            .map(max_tokens),
    );
    if let Some((dropped, evictions)) = cache
        .as_ref()
        .and_then(flowgate_cache::advice::too_little_room)
    {
        list.push(json!({
            "kind": "cache_room",
            "saving_usd": Value::Null,
            "change": "[cache] memory larger, or fewer invalidations",
            "evidence": {
                "misses": cache.as_ref().map_or(0, |s| s.misses),
                "misses_of_dropped_answers": dropped,
                "evictions": evictions,
                "memory_bytes": config.cache.memory_bytes,
                "since_start_seconds": gw.uptime().as_secs(),
            },
        }));
    }
    let total: Decimal = rows.iter().map(|(_, _, t)| t.usd).sum();
    Ok((list, q, total))
}

#[utoipa::path(
    get,
    path = "/api/v1/cost/recommendations",
    tag = "cost",
    summary = "what would have saved money, with its evidence and the change that acts on it",
    params(("window" = Option<String>, Query, description = "a duration back from now (`90s`, `15m`, `24h`, `30d`; 24h by default)"), ("from" = Option<u64>, Query, description = "from this time (Unix seconds), instead of window"), ("to" = Option<u64>, Query, description = "up to this time (Unix seconds; now by default)"), ("key" = Option<String>, Query, description = "only this virtual key (empty: requests without one)"), ("team" = Option<String>, Query, description = "only this team"), ("route" = Option<String>, Query, description = "only this route"), ("model" = Option<String>, Query, description = "only this model"), ("provider" = Option<String>, Query, description = "only this provider")),
    responses((status = 200, description = "the recommendations", body = Object), (status = 400, description = "a bad window or filter", body = super::openapi::ApiError))
)]
async fn recommendations(
    State(gw): State<Arc<Gateway>>,
    Params(p): Params<HashMap<String, String>>,
) -> Response {
    let (list, q, total) = match cost(&gw, &p) {
        Ok(r) => r,
        Err(why) if why.starts_with("the spend ledger could not be read") => {
            return server_error(&why);
        }
        Err(why) => return bad(why),
    };
    Json(json!({
        "window": window(&q),
        "filter": filters(&q),
        "spent_usd": usd_of(flowgate_cost::nanos(total)),
        "recommendations": list,
    }))
    .into_response()
}
