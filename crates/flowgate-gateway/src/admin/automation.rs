//! Automation on the admin listener ([`crate::automation`]):
//! - `GET /api/v1/automation/rules`: the rules, whether automation is paused, and the
//!   changes to the running config in force;
//! - `GET /api/v1/automation/history?from=&to=&rule=&limit=`: the audit log (every
//!   action, undo, verdict and skip, with what was done), oldest first;
//! - `POST /api/v1/automation/cycle`: one optimization cycle now (every rule evaluated and
//!   acted on where allowed, the scaling recommenders decided and acted on where allowed,
//!   the recommendations gathered): its steps, plans and recommendations;
//! - `POST /api/v1/automation/pause` and `/resume`: no action while paused (skips are
//!   logged), until resumed.

use std::collections::HashMap;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::Json;
use axum::extract::{Query as Params, State};
use axum::response::{IntoResponse, Response};
use flowgate_config::{AutomationAction, AutomationRule, Better, Replicas, Trigger};
use serde_json::{Value, json};

use super::reply::server_error;
use crate::gateway::Gateway;

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new()
        .routes(routes!(rules))
        .routes(routes!(history))
        .routes(routes!(cycle))
        .routes(routes!(pause))
        .routes(routes!(resume))
}

/// A rule in words and numbers.
fn rule_json(r: &AutomationRule) -> Value {
    let when = match &r.when {
        Trigger::Alert { rule, resolves } => {
            format!(
                "alert {rule} {}",
                if *resolves { "resolves" } else { "fires" }
            )
        }
        Trigger::Anomaly { pattern, min_score } => {
            format!("an anomaly on {pattern} scores {min_score} or more")
        }
        Trigger::RunsOut { resource, within } => format!(
            "{} runs out within {} days (baseline)",
            resource.as_deref().unwrap_or("a resource"),
            within.as_secs() / 86_400
        ),
        Trigger::Budget { budget, percent } => format!(
            "budget {} has spent {percent}%",
            budget.as_deref().unwrap_or("(any)")
        ),
        Trigger::Schedule {
            schedule,
            zone,
            open,
        } => format!(
            "\"{}\" in {}, open {}",
            schedule.expr,
            zone.iana_name().unwrap_or("UTC"),
            flowgate_config::format_duration(*open)
        ),
    };
    let action = match &r.action {
        AutomationAction::Strategy { pool, to } => format!("switch pool {pool} to {to}"),
        AutomationAction::Scale { pool, replicas } => match replicas {
            Replicas::To(n) => format!("scale pool {pool} to {n}"),
            Replicas::By(d) => format!("scale pool {pool} by {d:+}"),
        },
        AutomationAction::Change(c) => c.describe(),
        AutomationAction::Warm { top } => {
            format!("warm the cache with the {top} most requested recent requests")
        }
        AutomationAction::Notify {
            notifiers,
            severity,
        } => format!(
            "notify {} ({})",
            if notifiers.is_empty() {
                "every notifier".to_string()
            } else {
                notifiers.join(", ")
            },
            severity.as_str()
        ),
    };
    json!({
        "name": r.name,
        "when": when,
        "do": action,
        "cooldown_seconds": r.cooldown.as_secs(),
        "max_per_hour": r.max_per_hour,
        "verify": r.verify.as_ref().map(|v| json!({
            "series": v.series,
            "within_seconds": v.within.as_secs(),
            "better": match v.better { Better::Lower => "lower", Better::Higher => "higher" },
            "by": v.by,
        })),
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/automation/rules",
    tag = "automation",
    summary = "the automation rules, their state, and the changes in force",
    responses((status = 200, description = "the rules", body = Object))
)]
async fn rules(State(gw): State<Arc<Gateway>>) -> Response {
    let rt = gw.runtime();
    let a = &rt.config.automation;
    Json(json!({
        "enabled": a.enabled,
        "paused": gw.automation().paused(),
        "interval_seconds": a.interval.as_secs(),
        "rules": a.rules.iter().map(rule_json).collect::<Vec<_>>(),
        "in_force": gw.overrides().list().into_iter().map(|(rule, c)| json!({
            "rule": rule,
            "change": c.describe(),
        })).collect::<Vec<_>>(),
    }))
    .into_response()
}

/// The most steps one answer holds.
const MAX_STEPS: usize = 10_000;

#[utoipa::path(
    get,
    path = "/api/v1/automation/history",
    tag = "automation",
    summary = "the audit log: what the rules did and why",
    params(super::openapi::Listing, ("rule" = Option<String>, Query, description = "one rule's steps")),
    responses((status = 200, description = "the steps", body = Object), (status = 400, description = "a bad range", body = super::openapi::ApiError))
)]
async fn history(
    State(gw): State<Arc<Gateway>>,
    Params(p): Params<HashMap<String, String>>,
) -> Response {
    let (from, to, limit) = match super::reply::listing(&p, 1_000, MAX_STEPS) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    match gw
        .automation()
        .history(from, to, p.get("rule").map(String::as_str), limit)
    {
        Ok(steps) => Json(json!({ "history": steps })).into_response(),
        Err(e) => server_error(&format!(
            "the automation's audit log could not be read: {e}"
        )),
    }
}

/// One optimization cycle: every rule evaluated and acted on where allowed, the scaling
/// recommenders decided and their actuators run where allowed (not while automation is
/// paused: their last plans are shown), and the recommendations gathered (advice: what
/// to change, with its evidence; not applied).
#[utoipa::path(
    post,
    path = "/api/v1/automation/cycle",
    tag = "automation",
    summary = "the optimization cycle: rules, scaling recommenders, recommendations",
    responses((status = 200, description = "what each part did", body = Object))
)]
async fn cycle(State(gw): State<Arc<Gateway>>) -> Response {
    let steps = crate::automation_loop::cycle(&gw).await;
    let paused = gw.automation().paused();
    if !paused {
        crate::scaling_loop::cycle(&gw).await;
    }
    let scaling = super::scaling::plans(&gw, gw.scaling().status());
    let (recommendations, cost_unread) = super::report::current_recommendations(&gw);
    Json(json!({
        "paused": paused,
        "steps": steps,
        "scaling": scaling["pools"],
        "recommendations": recommendations,
        "cost_unread": cost_unread,
    }))
    .into_response()
}

#[utoipa::path(
    post,
    path = "/api/v1/automation/pause",
    tag = "automation",
    summary = "pause the automation (no rule acts)",
    responses((status = 200, description = "paused", body = Object))
)]
async fn pause(State(gw): State<Arc<Gateway>>) -> Response {
    gw.automation()
        .set_paused(&gw.runtime().config.automation.rules, true);
    tracing::warn!("automation paused through the admin API");
    Json(json!({ "paused": true })).into_response()
}

#[utoipa::path(
    post,
    path = "/api/v1/automation/resume",
    tag = "automation",
    summary = "resume the automation",
    responses((status = 200, description = "resumed", body = Object))
)]
async fn resume(State(gw): State<Arc<Gateway>>) -> Response {
    gw.automation()
        .set_paused(&gw.runtime().config.automation.rules, false);
    tracing::info!("automation resumed through the admin API");
    Json(json!({ "paused": false })).into_response()
}
