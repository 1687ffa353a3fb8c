//! The demo's balancer section: while the workload runs, the pool's endpoints are watched
//! through the admin API (every 250 ms), and afterwards the demo prints how the balancer
//! treated them: each one's share of the answers and latency estimate, and the flaky one's
//! breaker opening and closing again, with the retries that hid its failures.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::task::JoinHandle;

use crate::demo_client::fetch_json;

/// The demo pool's resilience settings: a failure share of 10% over 5 s opens a breaker for
/// 2 s (so that the demo shows it open and closing again), and failed answers are retried
/// once, on another endpoint.
pub const POOL_SETTINGS: &str = "outlier = { consecutive_failures = 3, failure_percent = 10, \
    failure_min_requests = 20, failure_window = \"5s\", base_ejection = \"2s\", \
    max_ejection = \"6s\" }\n\
    retries = { attempts = 2, on = [\"connect\", \"reset\", \"5xx\", \"429\"] }\n";

/// A change of an endpoint's state, seen at `at` after the start.
struct Change {
    at: Duration,
    endpoint: String,
    state: String,
}

/// Watches the `llm` pool's endpoint states until the returned handle is aborted or
/// awaited after `stop`.
pub struct Watch {
    task: JoinHandle<Vec<Change>>,
    stop: tokio::sync::watch::Sender<bool>,
}

#[allow(clippy::disallowed_methods)] // the demo measures real elapsed time
pub fn watch(admin: SocketAddr) -> Watch {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let url = format!("http://{admin}/api/v1/performance/load-balancer/metrics");
    let task = tokio::spawn(async move {
        let start = Instant::now();
        let mut last: Vec<(String, String)> = Vec::new();
        let mut changes = Vec::new();
        loop {
            if let Some(m) = fetch_json(&url).await {
                let now: Vec<(String, String)> = endpoints(&m)
                    .iter()
                    .map(|e| (name(e), e["state"].as_str().unwrap_or("?").to_string()))
                    .collect();
                for (n, s) in &now {
                    let before = last.iter().find(|(m, _)| m == n).map(|(_, s)| s.as_str());
                    if before.is_some_and(|b| b != s) {
                        changes.push(Change {
                            at: start.elapsed(),
                            endpoint: n.clone(),
                            state: s.clone(),
                        });
                    }
                }
                last = now;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = stopped.changed() => return changes,
            }
        }
    });
    Watch { task, stop }
}

fn endpoints(m: &Value) -> Vec<Value> {
    m["pools"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["pool"] == "llm"))
        .and_then(|p| p["endpoints"].as_array().cloned())
        .unwrap_or_default()
}

fn name(e: &Value) -> String {
    e["name"].as_str().unwrap_or("?").to_string()
}

/// Prints the balancer section: `answered(name)` is how many answers the client got from that
/// endpoint, out of `total` answered upstream (cache hits are not).
pub async fn print(admin: SocketAddr, watch: Watch, answered: &dyn Fn(&str) -> u64, total: u64) {
    let _ = watch.stop.send(true);
    let changes = watch.task.await.unwrap_or_default();
    let Some(m) = fetch_json(&format!(
        "http://{admin}/api/v1/performance/load-balancer/metrics"
    ))
    .await
    else {
        return;
    };
    let pool = m["pools"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["pool"] == "llm"))
        .cloned()
        .unwrap_or_default();
    println!(
        "Balancing (pool llm, {}: two endpoints at random, the lower latency x sqrt(load) wins)",
        pool["strategy"].as_str().unwrap_or("?")
    );
    for e in endpoints(&m) {
        let n = name(&e);
        let c = answered(&n);
        let (requests, failures) = (
            e["requests"].as_u64().unwrap_or(0),
            e["failures"].as_u64().unwrap_or(0),
        );
        println!(
            "  {:<6} {:>5.1}% of upstream answers   latency estimate {:>6.1} ms   {:>4} of {:>4} attempts failed   breaker opened {} time(s)",
            n,
            100.0 * c as f64 / total.max(1) as f64,
            e["latency_ms"].as_f64().unwrap_or(0.0),
            failures,
            requests,
            e["times_ejected"].as_u64().unwrap_or(0),
        );
    }
    let budget = &pool["retry_budget"];
    println!(
        "  retries {} (budget: at most 20% of requests + 3/s; {} refused), hedges {}",
        pool["retries"].as_u64().unwrap_or(0),
        budget["exhausted"].as_u64().unwrap_or(0),
        pool["hedges"].as_u64().unwrap_or(0),
    );
    if changes.is_empty() {
        println!("  no endpoint changed state during the run");
    }
    for c in changes.iter().take(12) {
        println!(
            "  {:>5.1} s  {:<6} -> {}",
            c.at.as_secs_f64(),
            c.endpoint,
            c.state
        );
    }
    if changes.len() > 12 {
        println!("  ... and {} more changes", changes.len() - 12);
    }
}
