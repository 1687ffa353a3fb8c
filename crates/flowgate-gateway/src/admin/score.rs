//! `GET /api/v1/performance/score`: the health score, 0–100, and each component with its
//! value, weight and why ([`flowgate_insight::score`]), from what the gateway measures: the
//! last 5 minutes of answers (telemetry's windows), each pool's usable endpoints, memory
//! against its limit and CPU (the memory governor's reading, the history's last minute),
//! the cache's hit ratio (the history's last 5 minutes, else since start), the fullest
//! budget, the alerts firing and the anomalies open.

use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use flowgate_config::{AlertKind, Severity};
use flowgate_insight::alerts::Status;
use flowgate_insight::score::{Inputs, score};

use crate::gateway::Gateway;

/// The latency target without a latency SLO in the rules: real-time chat's 3 s.
const DEFAULT_TARGET_MS: f64 = 3000.0;

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new().routes(routes!(get_score))
}

#[utoipa::path(
    get,
    path = "/api/v1/performance/score",
    tag = "insight",
    summary = "the health score 0-100 and its components, each explained",
    responses((status = 200, description = "the score", body = Object))
)]
async fn get_score(State(gw): State<Arc<Gateway>>) -> Response {
    Json(current(&gw)).into_response()
}

/// The score now (also read by the report and the recommendations).
pub(super) fn current(gw: &Gateway) -> flowgate_insight::score::Score {
    score(&inputs(gw))
}

fn inputs(gw: &Gateway) -> Inputs {
    let rt = gw.runtime();
    let now = gw.clock().unix_millis() / 1000;
    let mut i = Inputs {
        latency_target_ms: DEFAULT_TARGET_MS,
        ..Inputs::default()
    };
    if let Some(w) = gw
        .telemetry()
        .report()
        .and_then(|r| r.overall.get("5m").cloned())
    {
        i.requests = w.requests;
        i.error_ratio = (w.requests > 0).then_some(w.error_rate);
        i.latency_p95_ms = w.latency_ms.map(|l| l.p95);
    }
    // The tightest latency objective of the rules, if any.
    if let Some(ms) = gw
        .alerting()
        .with(|e| {
            e.rules()
                .iter()
                .filter_map(|r| match &r.kind {
                    AlertKind::BurnRate {
                        latency_ms: Some(ms),
                        ..
                    } => Some(*ms),
                    _ => None,
                })
                .min()
        })
        .flatten()
    {
        i.latency_target_ms = ms as f64;
    }
    i.upstreams = rt
        .upstreams
        .iter()
        .filter(|u| !u.endpoints().is_empty())
        .map(|u| {
            (
                u.name.to_string(),
                u.usable_endpoints() as f64 / u.endpoints().len() as f64,
            )
        })
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let (rss, limit) = gw.memory().reading();
    if let Some(l) = limit {
        i.saturation
            .push(("memory of its limit".into(), rss as f64 / l.max(1) as f64));
    }
    if let Some(h) = gw.history() {
        if limit.is_none()
            && let Some(m) = h.live("memory_ratio", now, 60)
        {
            i.saturation.push(("memory of the host".into(), m));
        }
        if let Some(c) = h.live("process_cpu_ratio", now, 60) {
            i.saturation.push(("CPU of the host".into(), c));
        }
        i.cache_hit_ratio = h.live("cache_hit_ratio{tier=\"all\"}", now, 300);
    }
    if i.cache_hit_ratio.is_none()
        && let Some(c) = gw.cache()
    {
        let s = c.stats();
        let hits = s.hits_memory + s.hits_redis + s.hits_disk;
        if hits + s.misses > 0 {
            i.cache_hit_ratio = Some(hits as f64 / (hits + s.misses) as f64);
        }
    }
    i.budget = crate::alerting::fullest_budget(&gw.spending().budgets().load(), None, now)
        .map(|(n, p)| (n, p / 100.0));
    if gw.history().is_some() && gw.runtime().config.anomalies.enabled {
        i.anomalies_open = Some(
            gw.anomalies()
                .open()
                .iter()
                .map(|a| (a.series.clone(), a.summary()))
                .collect(),
        );
    }
    for a in gw.alerting().with(|e| e.alerts()).unwrap_or_default() {
        if a.status == Status::Firing {
            i.alerts_firing[match a.severity {
                Severity::Critical => 0,
                Severity::Warning => 1,
                Severity::Info => 2,
            }] += 1;
        }
    }
    i
}
