//! `GET /api/v1/performance/health`: each part of the gateway with its status (`ok`,
//! `degraded`, `down`) and why, and the gateway's as the worst of them. Read from what the
//! parts already keep; nothing is probed by the call.

use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use flowgate_config::Severity;
use flowgate_insight::alerts::Status as AlertStatus;
use serde_json::{Value, json};

use crate::gateway::Gateway;

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new().routes(routes!(health))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok,
    Degraded,
    Down,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Degraded => "degraded",
            Level::Down => "down",
        }
    }
}

/// An event loop this late serves every request on it this late.
const LAG_DEGRADED_MS: f64 = 100.0;

fn part(out: &mut Vec<(String, Level, String)>, name: String, level: Level, detail: String) {
    out.push((name, level, detail));
}

#[utoipa::path(
    get,
    path = "/api/v1/performance/health",
    tag = "status",
    summary = "each part of the gateway with its status (ok, degraded, down) and why",
    responses((status = 200, description = "the parts", body = Object))
)]
async fn health(State(gw): State<Arc<Gateway>>) -> Response {
    let mut parts = Vec::new();
    let (_, last_error) = gw.reload_status();
    part(
        &mut parts,
        "config".into(),
        if last_error.is_some() {
            Level::Degraded
        } else {
            Level::Ok
        },
        last_error.map_or_else(
            || "the running config is the file's".to_string(),
            |e| format!("the last reload failed (the previous config serves): {e}"),
        ),
    );
    let lags = flowgate_http::server::workers::event_loop_lags();
    let worst = lags.iter().max().map_or(0.0, |d| d.as_secs_f64() * 1e3);
    part(
        &mut parts,
        "workers".into(),
        if gw.is_draining() {
            Level::Down
        } else if worst > LAG_DEGRADED_MS {
            Level::Degraded
        } else {
            Level::Ok
        },
        if gw.is_draining() {
            "draining: no new requests".to_string()
        } else {
            format!(
                "{} workers, event-loop lag at most {worst:.1} ms",
                lags.len()
            )
        },
    );
    let rt = gw.runtime();
    for u in rt.upstreams.iter() {
        let all = u.balancer().health().len();
        let usable = u.usable_endpoints();
        let level = match usable {
            0 => Level::Down,
            n if n < all => Level::Degraded,
            _ => Level::Ok,
        };
        part(
            &mut parts,
            format!("pool {}", u.name),
            level,
            format!("{usable} of {all} endpoints usable"),
        );
    }
    let redis = |open: bool, what: &str| {
        if open {
            (Level::Degraded, format!("Redis does not answer: {what}"))
        } else {
            (Level::Ok, "Redis answers".to_string())
        }
    };
    if let Some(r) = gw.cache().and_then(|c| c.stats().redis) {
        let (l, d) = redis(r.open, "the cache serves from its other tiers");
        part(&mut parts, "cache redis".into(), l, d);
    }
    if let Some((local, _)) = gw.rate_limit_fallback() {
        let (l, d) = redis(local, "rate limits count locally");
        part(&mut parts, "shared limits redis".into(), l, d);
    }
    if let Some(local) = gw.spending().budgets_local() {
        let (l, d) = redis(local, "budgets count this replica's spend locally");
        part(&mut parts, "shared budgets redis".into(), l, d);
    }
    let failures = gw.spending().ledger_failures();
    part(
        &mut parts,
        "spend ledger".into(),
        if failures > 0 {
            Level::Degraded
        } else {
            Level::Ok
        },
        format!("{failures} writes failed since start"),
    );
    let alerts = gw.alerting().with(|e| e.alerts()).unwrap_or_default();
    let firing: Vec<_> = alerts
        .iter()
        .filter(|a| a.status == AlertStatus::Firing)
        .collect();
    let critical = firing
        .iter()
        .filter(|a| a.severity == Severity::Critical)
        .count();
    part(
        &mut parts,
        "alerts".into(),
        if critical > 0 {
            Level::Degraded
        } else {
            Level::Ok
        },
        format!("{} firing, {critical} critical", firing.len()),
    );
    let (rss, limit) = gw.memory().reading();
    let level = gw.memory().level();
    part(
        &mut parts,
        "memory".into(),
        match level {
            flowgate_telemetry::memory::Pressure::Normal => Level::Ok,
            _ => Level::Degraded,
        },
        match limit {
            Some(l) => format!(
                "{} MiB of {} MiB ({:.0}%), pressure {}",
                rss >> 20,
                l >> 20,
                rss as f64 * 100.0 / l.max(1) as f64,
                level.as_str()
            ),
            None => format!("{} MiB resident; no limit", rss >> 20),
        },
    );
    // A notifier whose last delivery failed cannot be trusted to tell anyone.
    for n in gw.alerting().notifiers().statuses() {
        let failing = n
            .last_error_at
            .is_some_and(|f| n.last_sent_at.is_none_or(|s| f >= s));
        part(
            &mut parts,
            format!("notifier {}", n.name),
            if failing { Level::Degraded } else { Level::Ok },
            match (&n.last_error, failing) {
                (Some(e), true) => format!("last delivery failed: {e}"),
                _ => format!(
                    "{} sent, {} failed, {} dropped",
                    n.sent, n.failed, n.dropped
                ),
            },
        );
    }
    let overall = parts.iter().map(|(_, l, _)| *l).max().unwrap_or(Level::Ok);
    let components: Vec<Value> = parts
        .iter()
        .map(|(n, l, d)| json!({"name": n, "status": l.as_str(), "detail": d}))
        .collect();
    Json(json!({
        "status": overall.as_str(),
        "components": components,
    }))
    .into_response()
}
