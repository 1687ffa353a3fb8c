//! A warming job: its requests, one at a time, each as its flight's leader, paced at
//! `cache.warm.rate` per second when they go upstream.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use flowgate_cache::{Lookup, Lower};

use super::{Busy, JobStatus, Labelled, MAX_ERRORS, WarmRequest};
use crate::caching::{self, Plan};
use crate::gateway::Gateway;

/// Starts a job warming `requests` (each labelled for its errors); its first status.
pub fn start(
    gw: &Arc<Gateway>,
    source: &'static str,
    requests: Vec<Labelled>,
) -> Result<JobStatus, Busy> {
    let w = gw.warming();
    if w.running.swap(true, Ordering::AcqRel) {
        let current = w.status();
        return Err(Busy(current.unwrap_or_else(|| empty(0, source))));
    }
    let mut status = empty(w.next_id.fetch_add(1, Ordering::Relaxed), source);
    status.total = requests.len();
    if let Ok(mut g) = w.last.lock() {
        *g = Some(status.clone());
    }
    let gw = gw.clone();
    tokio::spawn(async move {
        for (label, request) in requests {
            let outcome = match request {
                Ok(r) => warm_one(&gw, &r).await,
                Err(e) => Warmed::Skipped(e),
            };
            let went_upstream = matches!(outcome, Warmed::Stored | Warmed::Failed(_));
            gw.warming().update(|s| {
                s.done += 1;
                let problem = match outcome {
                    Warmed::Stored => {
                        s.stored += 1;
                        None
                    }
                    Warmed::Fresh => {
                        s.fresh += 1;
                        None
                    }
                    Warmed::Skipped(why) => {
                        s.skipped += 1;
                        Some(why)
                    }
                    Warmed::Failed(why) => {
                        s.failed += 1;
                        Some(why)
                    }
                };
                if let Some(why) = problem
                    && s.errors.len() < MAX_ERRORS
                {
                    s.errors.push(format!("{label}: {why}"));
                }
            });
            if went_upstream {
                let rate = gw.runtime().config.cache.warm.rate.max(1);
                tokio::time::sleep(Duration::from_secs(1) / rate).await;
            }
        }
        let w = gw.warming();
        w.update(|s| s.state = "done");
        if let Some(s) = w.status() {
            tracing::info!(
                job = s.id,
                source = s.source,
                stored = s.stored,
                fresh = s.fresh,
                skipped = s.skipped,
                failed = s.failed,
                "cache warming done"
            );
        }
        w.running.store(false, Ordering::Release);
    });
    Ok(status)
}

fn empty(id: u64, source: &'static str) -> JobStatus {
    JobStatus {
        id,
        source,
        state: "running",
        total: 0,
        done: 0,
        stored: 0,
        fresh: 0,
        skipped: 0,
        failed: 0,
        errors: Vec::new(),
    }
}

/// Warms the cache with one request.
async fn warm_one(gw: &Arc<Gateway>, r: &WarmRequest) -> Warmed {
    let Some(cache) = gw.cache() else {
        return Warmed::Skipped("the cache is not enabled".into());
    };
    let rt = gw.runtime();
    let route = match rt
        .router
        .route(&r.method, r.uri.path(), &r.headers)
        .and_then(|route| {
            if route.by_model.is_empty() {
                return Ok(route);
            }
            let model = caching::model_of(&r.body);
            route.for_model(model.as_deref(), &rt.config.models)
        }) {
        Ok(route) => route.clone(),
        Err(e) => return Warmed::Skipped(e.to_string()),
    };
    let parts = r.parts();
    let planned = match caching::plan(&route, &rt.config, &parts, &r.body) {
        Err(e) => return Warmed::Skipped(e.to_string()),
        Ok(Plan::Off) => return Warmed::Skipped(format!("route {} does not cache", route.name)),
        Ok(Plan::Bypass) => {
            return Warmed::Skipped(
                "not cacheable (a sampled request, no-store, or credentials the key does not \
                 hold)"
                    .into(),
            );
        }
        Ok(Plan::Use(p)) => p,
    };
    let mut q = planned.query();
    q.account.warming = true;
    // A fresh entry is left alone; a stale one (or one due for refresh-ahead) is refreshed
    // with the leader its hit came with; a missing one is fetched.
    let hit = match cache.lookup(&planned.key, &q) {
        Lookup::Hit(hit) => hit,
        Lookup::Coalesced(_) => return Warmed::Fresh,
        Lookup::Miss(l) => match cache.lookup_lower(l, &q, false).await {
            Lower::Hit(hit) => hit,
            Lower::Miss(l) => {
                let life = planned.life;
                return fetch(
                    gw,
                    &rt.config.models,
                    &route,
                    &parts,
                    r,
                    planned.fill(cache, l, life),
                )
                .await;
            }
        },
    };
    let Some(leader) = hit.refresh else {
        return Warmed::Fresh;
    };
    let life = caching::refreshed_life(&hit.entry, &planned, cache.settings());
    fetch(
        gw,
        &rt.config.models,
        &route,
        &parts,
        r,
        planned.fill(cache, leader, life),
    )
    .await
}

/// Sends a warming request upstream as its flight's leader.
async fn fetch(
    gw: &Gateway,
    models: &flowgate_config::ModelCatalog,
    route: &crate::router::RouteEntry,
    parts: &http::request::Parts,
    r: &WarmRequest,
    fill: caching::Fill,
) -> Warmed {
    let req = crate::refresh::own_request(parts);
    match crate::refresh::fetch(
        gw.clock(),
        gw.request_ids(),
        models,
        route,
        &req,
        r.body.clone(),
        fill,
    )
    .await
    {
        Ok((_, true)) => Warmed::Stored,
        Ok((status, false)) => Warmed::Failed(format!(
            "the upstream answered {status}, which is not stored"
        )),
        Err(e) => Warmed::Failed(e),
    }
}

/// What one warming request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warmed {
    /// Fetched upstream and stored (or refreshed).
    Stored,
    /// Already fresh in a tier (or being fetched by an identical request).
    Fresh,
    /// Not for the cache: no route, a route that does not cache, a request it would not
    /// store.
    Skipped(String),
    /// Sent upstream, but no answer could be stored.
    Failed(String),
}
