//! `POST /api/v1/performance/load-balancer/optimize`: what each pool's own measurements
//! (its endpoints' peak-EWMA latency, their answers and failures in the outlier window)
//! say would serve it better (`flowgate_balance::advice`), each proposal with its
//! evidence and the mean latency expected: a latency-aware strategy for a pool picking
//! blind to its endpoints' speed, weights by speed and success for a `weighted` pool, an
//! outlier failure share for an endpoint failing alone.
//!
//! `?pool=NAME` looks at one pool (404 `pool_not_found` when there is none). Body `{}`
//! proposes; `{"apply": true}` also applies the strategy and weights through the
//! running config's overlay (owners `api:lb-optimize:POOL:strategy|weights`: kept over
//! reloads, listed in `GET /api/v1/automation/rules` `in_force`; the pool is rebuilt as by
//! a reload that changes it); `{"revert": true}` takes them away.

use std::collections::HashMap;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flowgate_balance::advice::{self, Advice, Finding, Seen};
use flowgate_config::ConfigChange;
use serde_json::{Value, json};

use super::reply::client_error;
use crate::gateway::Gateway;
use crate::upstream::Upstream;

/// The owners of the changes it applies start with this.
const OWNER: &str = "api:lb-optimize:";

pub fn routes() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::new().routes(routes!(optimize))
}

/// What the balancer saw of each of `u`'s endpoints.
fn seen(u: &Upstream) -> Vec<Seen> {
    let b = u.balancer();
    let now = b.now_ns();
    u.endpoints()
        .iter()
        .zip(b.nodes().iter().zip(b.health()))
        .map(|(e, (n, h))| {
            let (answers, failures) = h.window(now, b.outliers());
            Seen {
                name: e.name.to_string(),
                weight: n.weight(),
                latency_ms: n.latency(now).as_secs_f64() * 1e3,
                answers,
                failures,
                out: h.is_out(now),
            }
        })
        .collect()
}

fn evidence(u: &Upstream, seen: &[Seen]) -> Value {
    let endpoints: Vec<Value> = seen
        .iter()
        .map(|s| {
            json!({
                "endpoint": s.name,
                "weight": s.weight,
                "latency_ms": s.latency_ms,
                "answers": s.answers,
                "failures": s.failures,
                "out": s.out,
            })
        })
        .collect();
    json!({
        "window_seconds": u.balancer().outliers().window.as_secs(),
        "endpoints": endpoints,
    })
}

/// A proposal as the API shows it, and the change that applies it (none for advice only a
/// file edit can follow).
fn proposal(
    pool: &str,
    from: flowgate_balance::Strategy,
    seen: &[Seen],
    a: &Advice,
) -> (Value, Option<ConfigChange>) {
    let expected = |now: f64, then: f64| {
        json!({
            "mean_latency_ms_now": now,
            "mean_latency_ms_expected": then,
            "lower_by_percent": (1.0 - then / now) * 100.0,
        })
    };
    match a {
        Advice::Strategy {
            to,
            mean_ms_now,
            mean_ms_expected,
            spread,
        } => (
            json!({
                "kind": "strategy",
                "change": format!("[pools.{pool}] strategy = \"{}\"", to.as_str()),
                "from": from.as_str(),
                "to": to.as_str(),
                "why": format!(
                    "{} picks blind to latency while the slowest endpoint takes {spread:.1}x \
                     as long as the fastest",
                    from.as_str()
                ),
                "expected": expected(*mean_ms_now, *mean_ms_expected),
            }),
            Some(ConfigChange::Strategy {
                pool: pool.to_string(),
                strategy: *to,
            }),
        ),
        Advice::Weights {
            to,
            mean_ms_now,
            mean_ms_expected,
        } => {
            let weights: Vec<(String, u32)> = seen
                .iter()
                .zip(to)
                .map(|(s, w)| (s.name.clone(), *w))
                .collect();
            let shown: Vec<Value> = weights
                .iter()
                .map(|(e, w)| json!({"endpoint": e, "weight": w}))
                .collect();
            (
                json!({
                    "kind": "weights",
                    "change": format!(
                        "[pools.{pool}] endpoints' weights: {}",
                        weights
                            .iter()
                            .map(|(e, w)| format!("{e} = {w}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    "to": shown,
                    "why": "weights in proportion to each endpoint's speed and success",
                    "expected": expected(*mean_ms_now, *mean_ms_expected),
                }),
                Some(ConfigChange::Weights {
                    pool: pool.to_string(),
                    weights,
                }),
            )
        }
        Advice::Failing {
            endpoint,
            success,
            others_success,
            failure_percent,
        } => (
            json!({
                "kind": "outlier",
                "change": format!("[pools.{pool}] outlier = {{ failure_percent = {failure_percent} }}"),
                "endpoint": seen[*endpoint].name,
                "why": format!(
                    "{} answered {:.0}% successfully, the others {:.0}%, and outlier detection \
                     does not eject it",
                    seen[*endpoint].name,
                    success * 100.0,
                    others_success * 100.0
                ),
                "expected": "the failing endpoint ejected until it recovers",
            }),
            None,
        ),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/performance/load-balancer/optimize",
    tag = "load-balancer",
    summary = "proposals from endpoint latencies and failures, with evidence; applied or reverted on asking",
    params(("pool" = Option<String>, Query, description = "one pool")),
    request_body(content = Option<super::openapi::OptimizeBody>, description = "{} proposes; `{\"apply\": true}` applies; `{\"revert\": true}` takes back what was applied", content_type = "application/json"),
    responses((status = 200, description = "the proposals per pool, or what was reverted", body = Object), (status = 400, description = "a bad body", body = super::openapi::ApiError), (status = 404, description = "no such pool", body = super::openapi::ApiError), (status = 500, description = "the config could not be rebuilt", body = super::openapi::ApiError))
)]
async fn optimize(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    let rt = gw.runtime();
    if let Some(p) = q.get("pool").filter(|p| rt.upstream(p).is_none()) {
        return client_error(
            StatusCode::NOT_FOUND,
            &format!("no pool named {p:?}"),
            "pool_not_found",
        );
    }
    let apply = match super::reply::optimize_asked(&gw, &body, OWNER) {
        Ok(apply) => apply,
        Err(answer) => return *answer,
    };
    let mut pools = Vec::new();
    let mut applied = 0;
    let chosen = rt
        .upstreams
        .iter()
        .filter(|u| q.get("pool").is_none_or(|p| *p == *u.name));
    for u in chosen {
        let seen = seen(u);
        let strategy = u.balancer().strategy();
        let in_file = |name: &str| {
            rt.config
                .pools
                .iter()
                .any(|p| p.name == *u.name && p.endpoints.iter().any(|e| e.name == name))
        };
        let mut shown = json!({
            "pool": &*u.name,
            "strategy": strategy.as_str(),
            "evidence": evidence(u, &seen),
        });
        let list = match advice::advise(strategy, &seen, u.balancer().outliers().failure_percent) {
            Finding::Nothing(why) => {
                shown["none_because"] = json!(why);
                Vec::new()
            }
            Finding::Advice(list) => list,
        };
        let mut proposals = Vec::new();
        for a in &list {
            let (mut p, change) = proposal(&u.name, strategy, &seen, a);
            // Registered endpoints' weights come with their registration, not the file.
            let applicable = change.is_some()
                && !matches!(a, Advice::Weights { .. } if !seen.iter().all(|s| in_file(&s.name)));
            p["applicable"] = json!(applicable);
            if let (true, true, Some(change)) = (apply, applicable, change) {
                let owner = format!("{OWNER}{}:{}", u.name, p["kind"].as_str().unwrap_or(""));
                applied += usize::from(super::reply::apply_proposal(&gw, &owner, change, &mut p));
            }
            proposals.push(p);
        }
        shown["proposals"] = json!(proposals);
        pools.push(shown);
    }
    Json(json!({ "pools": pools, "applied": applied })).into_response()
}
