//! `flowgate demo --scenario peak`: a working day compressed into a minute or two.
//!
//! A gateway runs on a [`SteppedClock`]: time passes at its real pace while requests are
//! in flight (their latency is real) and jumps a minute ahead between minutes, the demo
//! turning the control plane (`Running::tick`) at each. Two days of traffic — quiet
//! nights, a morning ramp to a daily peak, a lunch dip — grow the history the forecast
//! reads; then the fourth day is shown. A pool of simulated replicas is scaled by
//! flowgate's recommender (reactive and predictive, `lead = 15m`) through a webhook
//! actuator the demo answers as an orchestrator would (starting replicas and registering
//! them with the load-balancer API, deregistering them on the way down). An automation
//! rule warms the cache at the start of business hours; at 14:00 every replica slows down
//! by 150 ms, a latency alert fires, and a rule sheds chat's low-priority requests — its
//! verification ten minutes later finds p95 latency no lower (the replicas are slow, not
//! busy) and undoes it. Everything shown is read from the gateway's admin API or seen by
//! the client.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use flowgate_clock::{Clock, SteppedClock};
use flowgate_sim::workload::ZipfWorkload;
use flowgate_sim::{EndpointSpec, LatencyDist, SimServer};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::demo_client::{one_request, pct, post_json};

/// Monday 2026-01-05 00:00 UTC: three days of history, then Thursday is shown.
const START: u64 = 1_767_571_200;
const MINUTES_A_DAY: u64 = 1440;
/// The day shown ends at 20:00.
const SHOWN_UNTIL: u64 = 20 * 60;
/// The slowdown, in minutes of the day shown, and how much slower.
const SLOW: (u64, u64) = (14 * 60, 15 * 60);
const SLOWER: Duration = Duration::from_millis(150);
/// Replicas from the config file (never deregistered).
const FILE_REPLICAS: usize = 2;
/// Share of requests sent at low priority.
const LOW_SHARE: f64 = 0.25;

/// Requests a minute the day asks for at `minute` of the day.
fn demand(minute: u64) -> f64 {
    let h = minute as f64 / 60.0;
    let (night, peak) = (4.0, 20.0);
    if h < 7.0 {
        night
    } else if h < 9.0 {
        night + (peak - night) * (h - 7.0) / 2.0
    } else if (12.0..13.0).contains(&h) {
        peak * 0.7
    } else if h < 17.0 {
        peak
    } else if h < 19.0 {
        peak - (peak - night) * (h - 17.0) / 2.0
    } else {
        night
    }
}

/// `HH:MM` of Unix seconds `t` (UTC).
fn hhmm(t: u64) -> String {
    format!("{:02}:{:02}", t % 86_400 / 3600, t % 3600 / 60)
}

/// A replica change the orchestrator made.
struct Scaled {
    at: u64,
    from: usize,
    to: usize,
    reason: String,
}

/// The simulated replicas and the orchestrator that starts and stops them.
struct Fleet {
    admin: OnceLock<String>,
    replicas: tokio::sync::Mutex<Vec<(String, SimServer)>>,
    next: AtomicU32,
    slow: AtomicBool,
    seed: u64,
    clock: SteppedClock,
    log: Mutex<Vec<Scaled>>,
}

impl Fleet {
    async fn replica(&self) -> std::io::Result<SimServer> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let s = SimServer::start(
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            EndpointSpec {
                latency: LatencyDist::LogNormal {
                    median: Duration::from_millis(3),
                    sigma: 0.3,
                },
                completion_tokens: 8,
                seed: self.seed ^ u64::from(n),
                ..EndpointSpec::default()
            },
        )
        .await?;
        if self.slow.load(Ordering::Relaxed) {
            s.slow_down(SLOWER);
        }
        Ok(s)
    }

    /// Makes the pool `desired` replicas: new ones registered, the newest deregistered.
    async fn resize(&self, desired: usize, reason: &str) -> Result<(), String> {
        let admin = self.admin.get().ok_or("the gateway is not up yet")?;
        let mut list = self.replicas.lock().await;
        let from = list.len();
        while list.len() < desired {
            let s = self.replica().await.map_err(|e| e.to_string())?;
            let name = format!("r{}", self.next.load(Ordering::Relaxed));
            let body = json!({"pool": "llm", "url": s.url(), "name": name});
            let url = format!("{admin}/api/v1/performance/load-balancer/instances/register");
            match post_json(&url, &body).await {
                Some((200..=299, _)) => list.push((name, s)),
                other => return Err(format!("register {name}: {other:?}")),
            }
        }
        while list.len() > desired.max(FILE_REPLICAS) {
            let Some((name, s)) = list.pop() else { break };
            let url = format!("{admin}/api/v1/performance/load-balancer/instances/deregister");
            if let Some((200..=299, _)) =
                post_json(&url, &json!({"pool": "llm", "name": name})).await
            {
                drop(s);
            } else {
                list.push((name, s));
                return Err("deregister failed".into());
            }
        }
        if list.len() != from
            && let Ok(mut log) = self.log.lock()
        {
            log.push(Scaled {
                at: self.clock.unix_millis() / 1000,
                from,
                to: list.len(),
                reason: reason.to_string(),
            });
        }
        Ok(())
    }

    async fn slow_down(&self, extra: Duration) {
        self.slow.store(!extra.is_zero(), Ordering::Relaxed);
        for (_, s) in self.replicas.lock().await.iter() {
            s.slow_down(extra);
        }
    }
}

/// The orchestrator's webhook: `{"desired": N, "reason": …}` from the scaling actuator.
async fn webhook(fleet: Arc<Fleet>) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let fleet = fleet.clone();
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let fleet = fleet.clone();
                        async move {
                            let body = req.into_body().collect().await.map(|b| b.to_bytes());
                            let v: Value = body
                                .ok()
                                .and_then(|b| serde_json::from_slice(&b).ok())
                                .unwrap_or_default();
                            let desired = v["desired"].as_u64().unwrap_or(0) as usize;
                            let reason = v["reason"].as_str().unwrap_or_default();
                            let (status, said) = match fleet.resize(desired, reason).await {
                                Ok(()) => (200, "scaled".to_string()),
                                Err(e) => (500, e),
                            };
                            http::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from(said)))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn config(replicas: &[String], webhook: std::net::SocketAddr) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[cache]
enabled = true
ttl = "30m"

[cache.warm]
rate = 500

[pools.llm]
endpoints = [{{ url = "{}", name = "r0" }}, {{ url = "{}", name = "r1" }}]

[[routes]]
name = "chat"
kind = "openai"
prefix = "/v1"
pool = "llm"

[scaling.pools.llm]
per_replica = {{ requests_per_second = 0.05 }}
min = 2
max = 12
lead = "15m"
dry_run = false
actuator = {{ webhook = "http://{webhook}/scale" }}

[[alerts.rules]]
name = "chat-slow"
series = 'latency_ms_p95{{route="chat"}}'
window = "2m"
value = 50
for = "2m"

[automation]
paused = true

[[automation.rules]]
name = "business-hours-warm"
when = {{ schedule = "0 8 * * 1-5", for = "10h" }}
do = {{ warm = 50 }}

[[automation.rules]]
name = "slow-chat-shed-low"
when = {{ alert = "chat-slow" }}
do = {{ shed = "low", route = "chat" }}
verify = {{ series = 'latency_ms_p95{{route="chat"}}', within = "10m", lower_by = 0.2 }}
"#,
        replicas[0], replicas[1]
    )
}

/// An hour of the day shown, as the client and the recommender saw it.
#[derive(Default)]
struct Hour {
    requests: u64,
    hits: u64,
    shed: u64,
    latencies: Vec<Duration>,
    replicas_max: u64,
    utilization_max: f64,
    over: u64,
}

pub async fn run(seed: u64) -> anyhow::Result<()> {
    let clock = SteppedClock::new(UNIX_EPOCH + Duration::from_secs(START));
    let fleet = Arc::new(Fleet {
        admin: OnceLock::new(),
        replicas: tokio::sync::Mutex::new(Vec::new()),
        next: AtomicU32::new(0),
        slow: AtomicBool::new(false),
        seed,
        clock: clock.clone(),
        log: Mutex::new(Vec::new()),
    });
    let mut first = Vec::new();
    for i in 0..FILE_REPLICAS {
        first.push((format!("r{i}"), fleet.replica().await?));
    }
    let urls: Vec<String> = first.iter().map(|(_, s)| s.url()).collect();
    fleet.replicas.lock().await.extend(first);
    let hook = webhook(fleet.clone()).await?;
    let cfg = flowgate_config::parse(&config(&urls, hook), "<demo peak>", std::iter::empty())
        .map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    let telemetry = flowgate_telemetry::Telemetry::new(clock.shared());
    let gw = flowgate_gateway::launch(cfg, None, telemetry).await?;
    let admin = format!("http://{}", gw.admin_addr);
    let _ = fleet.admin.set(admin.clone());
    let url = format!("http://{}/v1/chat/completions", gw.data_addr);

    println!("\npeak: a working day compressed (flowgate demo --scenario peak)");
    println!(
        "  a pool of simulated replicas (3 ms; 0.05 requests/s each at 100%), scaled by flowgate \
         between 2 and 12 (target 60%, up at 80%, predictive 15 min ahead) through a webhook;\n  \
         three days of traffic grow the history the forecast reads, then Thursday 2026-01-08 is shown"
    );
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut prompts = ZipfWorkload::new(400, 1.0, 0.0, seed).map_err(anyhow::Error::msg)?;
    let mut hours: BTreeMap<u64, Hour> = BTreeMap::new();
    let mut events: Vec<(u64, String)> = Vec::new();
    let shown = 3 * MINUTES_A_DAY;
    for minute in 0..shown + SHOWN_UNTIL {
        let t = START + minute * 60;
        let of_day = minute % MINUTES_A_DAY;
        let on_show = minute >= shown;
        if minute == shown {
            post_json(&format!("{admin}/api/v1/automation/resume"), &json!({})).await;
        }
        if on_show && of_day == SLOW.0 {
            fleet.slow_down(SLOWER).await;
            events.push((
                t,
                format!(
                    "injected: every replica answers {} ms slower",
                    SLOWER.as_millis()
                ),
            ));
        }
        if on_show && of_day == SLOW.1 {
            fleet.slow_down(Duration::ZERO).await;
            events.push((t, "injected: the slowdown ends".into()));
        }
        // The first days' nights are quiet for the forecast alike; the peak is what varies.
        let n = (demand(of_day) * rng.random_range(0.8..1.2)).round() as usize;
        let mut sent = Vec::with_capacity(n);
        for _ in 0..n {
            let item = prompts.next_item();
            let body = Bytes::from(format!(
                "{{\"model\":\"gpt-4o-mini\",\"temperature\":0,\"max_tokens\":8,\
                 \"messages\":[{{\"role\":\"user\",\"content\":\"question {}\"}}]}}",
                item.prompt
            ));
            let low = rng.random_bool(LOW_SHARE);
            let (client, url) = (client.clone(), url.clone());
            sent.push(tokio::spawn(async move {
                let priority = if low { "low" } else { "normal" };
                one_request(&client, &url, body, &[("x-flowgate-priority", priority)]).await
            }));
        }
        let mut seen = Vec::with_capacity(n);
        for s in sent {
            if let Ok(x) = s.await {
                seen.push(x);
            }
        }
        if on_show {
            let hour = hours.entry(of_day / 60).or_default();
            for x in seen {
                hour.requests += 1;
                hour.hits += u64::from(x.cache.as_deref().is_some_and(|c| c.starts_with("hit")));
                if x.code.as_deref() == Some("503 shed") {
                    hour.shed += 1;
                } else {
                    hour.latencies.push(x.latency);
                }
            }
        }
        clock.advance_to((t + 60) * 1000);
        gw.tick().await;
        // One optimization cycle a minute on the day shown (the days before only grow the
        // history): the rules, and the recommender deciding the pool's size.
        if on_show
            && let Some((_, c)) =
                post_json(&format!("{admin}/api/v1/automation/cycle"), &json!({})).await
        {
            let hour = hours.entry(of_day / 60).or_default();
            let input = &c["scaling"][0]["plan"]["decision"]["input"];
            hour.replicas_max = hour
                .replicas_max
                .max(input["current"].as_u64().unwrap_or(0));
            let u = input["utilization"].as_f64().unwrap_or(0.0);
            hour.utilization_max = hour.utilization_max.max(u);
            hour.over += u64::from(u > 0.8);
            for s in c["steps"].as_array().into_iter().flatten() {
                events.push((
                    t + 60,
                    format!(
                        "automation {} {}: {}{}",
                        s["rule"].as_str().unwrap_or_default(),
                        s["step"].as_str().unwrap_or_default(),
                        s["why"].as_str().unwrap_or_default(),
                        s["done"]
                            .as_str()
                            .map(|d| format!(" → {d}"))
                            .unwrap_or_default()
                    ),
                ));
            }
        }
    }
    let day_start = START + shown * 60;
    if let Ok(log) = fleet.log.lock() {
        for s in log.iter().filter(|s| s.at >= day_start) {
            events.push((
                s.at,
                format!("scaled {} → {} replicas: {}", s.from, s.to, s.reason),
            ));
        }
    }
    events.sort_by_key(|(t, _)| *t);
    print_day(&hours);
    println!("\n  what happened (times UTC):");
    for (t, e) in &events {
        println!("    {}  {e}", hhmm(*t));
    }
    if let Some(job) =
        crate::demo_client::fetch_json(&format!("{admin}/api/v1/performance/cache/warm"))
            .await
            .map(|w| w["job"].clone())
            .filter(|j| !j.is_null())
    {
        println!(
            "\n  the business-hours warming replayed {} recent requests: {} fetched again, {} still fresh, {} failed",
            job["total"], job["stored"], job["fresh"], job["failed"]
        );
    }
    let busy: u64 = hours.values().map(|h| h.over).sum();
    let (first_up, ramp) = (
        events.iter().find(|(t, e)| {
            *t >= day_start + 6 * 3600 && e.starts_with("scaled") && e.contains("forecast")
        }),
        day_start + 7 * 3600,
    );
    println!(
        "\n  minutes the pool ran over 80% of its replicas' capacity: {busy} of {}",
        SHOWN_UNTIL
    );
    match first_up {
        Some((t, _)) if *t <= ramp + 30 * 60 => println!(
            "  the first predictive scale-up came at {}, the morning ramp starts at {}",
            hhmm(*t),
            hhmm(ramp)
        ),
        Some((t, _)) => println!("  the first predictive scale-up came at {}", hhmm(*t)),
        None => println!("  no predictive scale-up: the forecast did not see the morning peak"),
    }
    gw.shutdown();
    gw.wait().await;
    Ok(())
}

fn print_day(hours: &BTreeMap<u64, Hour>) {
    println!(
        "\n  {:<5} {:>9} {:>8} {:>11} {:>8} {:>8} {:>6}",
        "hour", "req/min", "replicas", "utilization", "p95 ms", "hit %", "shed"
    );
    for (h, x) in hours {
        let mut l = x.latencies.clone();
        l.sort_unstable();
        println!(
            "  {h:02}:00 {:>9.1} {:>8} {:>10.0}% {:>8.0} {:>7.0}% {:>6}",
            x.requests as f64 / 60.0,
            x.replicas_max,
            x.utilization_max * 100.0,
            pct(&l, 0.95),
            if x.requests > 0 {
                100.0 * x.hits as f64 / x.requests as f64
            } else {
                0.0
            },
            x.shed
        );
    }
}
