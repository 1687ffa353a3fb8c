//! `flowgate demo`: the whole product on embedded defaults, in one process.
//!
//! It starts a simulated fleet (one fast, one slow, one flaky upstream), a gateway in front of
//! it on free loopback ports, drives an open-loop workload of Zipf-distributed prompts (some
//! streamed) through the gateway, and prints what happened: throughput, latency percentiles,
//! errors by kind, and how traffic spread over the upstreams, next to the gateway's own view
//! from its admin API, how the balancer spread traffic and ejected the flaky upstream, and
//! what the response cache saved, how a burst is shaped, and one model name served by two
//! providers to OpenAI and Claude clients. Each later capability adds a section.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use flowgate_sim::workload::ZipfWorkload;
use flowgate_sim::{EndpointSpec, LatencyDist, SimServer};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Semaphore;

use crate::demo_client::{fetch_json, one_request, pct};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How long to drive traffic, in seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Requests per second offered (open loop).
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Share of requests that ask for a streamed (SSE) answer.
    #[arg(long, default_value_t = 0.2)]
    stream_share: f64,
    /// Seed of the workload and the simulated fleet.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// What to show: the whole product (`tour`), or a working day compressed into well
    /// under a minute: predictive scaling, business-hours warming and an automation rule
    /// verified against an injected slowdown (`peak`).
    #[arg(long, value_enum, default_value_t = Scenario::Tour)]
    scenario: Scenario,
}

/// What `flowgate demo` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Tour,
    Peak,
}

/// One simulated upstream of the demo fleet.
struct SimNode {
    role: &'static str,
    server: SimServer,
}

/// Everything the demo prints.
#[derive(Debug, Default)]
struct Report {
    latencies: Vec<Duration>,
    statuses: BTreeMap<u16, u64>,
    errors: BTreeMap<String, u64>,
    upstreams: BTreeMap<String, u64>,
    /// Responses by `x-flowgate-cache` value.
    cache: BTreeMap<String, u64>,
    transport_errors: u64,
}

const MAX_OUTSTANDING: usize = 1024;

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    if args.scenario == Scenario::Peak {
        return crate::demo_peak::run(args.seed).await;
    }
    anyhow::ensure!(args.rate > 0, "--rate must be at least 1");
    anyhow::ensure!(args.duration > 0, "--duration must be at least 1");
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.stream_share),
        "--stream-share must be between 0 and 1"
    );

    let fleet = start_fleet(args.seed).await?;
    let toml = gateway_config(&fleet);
    let config = flowgate_config::parse(&toml, "<demo>", std::iter::empty())
        .map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    let telemetry = flowgate_telemetry::Telemetry::new(flowgate_clock::SystemClock::shared());
    let gw = flowgate_gateway::launch(config, None, telemetry).await?;

    println!("flowgate demo");
    println!(
        "  gateway   http://{} (admin http://{})",
        gw.data_addr, gw.admin_addr
    );
    for n in &fleet {
        println!("  upstream  {:<6} {}", n.role, n.server.url());
    }
    println!(
        "  workload  {} req/s for {} s, Zipf(1.0) over 1000 prompts, {:.0}% streamed\n",
        args.rate,
        args.duration,
        args.stream_share * 100.0
    );

    let watch = crate::demo_balance::watch(gw.admin_addr);
    let report = drive(
        &args,
        &format!("http://{}/v1/chat/completions", gw.data_addr),
    )
    .await?;
    let gateway_view = fetch_json(&format!(
        "http://{}/api/v1/performance/metrics",
        gw.admin_addr
    ))
    .await;
    let cache_view = fetch_json(&format!(
        "http://{}/api/v1/performance/cache/stats",
        gw.admin_addr
    ))
    .await;
    print_report(&report, &fleet, args.duration, gateway_view.as_ref());
    let answered = |name: &str| report.upstreams.get(name).copied().unwrap_or(0);
    let total = report.upstreams.values().sum();
    crate::demo_balance::print(gw.admin_addr, watch, &answered, total).await;
    print_cache(&report, cache_view.as_ref());
    crate::demo_burst::run(gw.data_addr, gw.admin_addr).await;
    crate::demo_providers::run(args.seed).await;
    crate::demo_cost::run(args.seed).await;
    crate::demo_insight::run(args.seed, gw.admin_addr).await;

    gw.shutdown();
    gw.wait().await;
    Ok(())
}

async fn start_fleet(seed: u64) -> anyhow::Result<Vec<SimNode>> {
    let ms = Duration::from_millis;
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let specs = [
        (
            "fast",
            EndpointSpec {
                latency: LatencyDist::LogNormal {
                    median: ms(20),
                    sigma: 0.4,
                },
                token_delay: ms(2),
                seed,
                ..EndpointSpec::default()
            },
        ),
        (
            "slow",
            EndpointSpec {
                latency: LatencyDist::LogNormal {
                    median: ms(150),
                    sigma: 0.5,
                },
                token_delay: ms(8),
                seed: seed + 1,
                ..EndpointSpec::default()
            },
        ),
        (
            "flaky",
            EndpointSpec {
                latency: LatencyDist::LogNormal {
                    median: ms(30),
                    sigma: 0.6,
                },
                token_delay: ms(3),
                error_rate: 0.08,
                rate_limit_rate: 0.04,
                reset_rate: 0.02,
                seed: seed + 2,
                ..EndpointSpec::default()
            },
        ),
    ];
    let mut fleet = Vec::new();
    for (role, spec) in specs {
        fleet.push(SimNode {
            role,
            server: SimServer::start(loopback, spec).await?,
        });
    }
    Ok(fleet)
}

fn gateway_config(fleet: &[SimNode]) -> String {
    let endpoints: Vec<String> = fleet
        .iter()
        .map(|n| {
            format!(
                "  {{ url = \"{}\", name = \"{}\" }},",
                n.server.url(),
                n.role
            )
        })
        .collect();
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ndrain_timeout = \"5s\"\n\n\
         [pools.llm]\nendpoints = [\n{}\n]\nrequest_timeout = \"10s\"\n{}\n{}\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n\n\
         [cache]\nenabled = true\nmemory = \"64MiB\"\nttl = \"1h\"\n\n\
         [[cache.categories]]\nname = \"cost-analysis\"\nmodel = \"gpt-4o-mini*\"\nttl = \"4h\"\n\n\
         [models.\"gpt-4o-mini*\"]\ninput_usd_per_mtok = 0.15\noutput_usd_per_mtok = 0.60\n",
        endpoints.join("\n"),
        crate::demo_balance::POOL_SETTINGS,
        // Before the chat route: routes match in order.
        crate::demo_burst::config(
            fleet
                .iter()
                .find(|n| n.role == "slow")
                .map(|n| n.server.url())
        )
    )
}

async fn drive(args: &DemoArgs, url: &str) -> anyhow::Result<Report> {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut workload =
        ZipfWorkload::new(1000, 1.0, args.stream_share, args.seed).map_err(anyhow::Error::msg)?;
    let total = u64::from(args.rate) * args.duration;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("  {bar:40} {pos}/{len} requests  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let seen = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let outstanding = Arc::new(Semaphore::new(MAX_OUTSTANDING));
    let mut skipped = 0u64;
    let period = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..total {
        tick.tick().await;
        let item = workload.next_item();
        let Ok(permit) = outstanding.clone().try_acquire_owned() else {
            skipped += 1; // the client itself is saturated: count, don't queue unboundedly
            bar.inc(1);
            continue;
        };
        let (client, seen, bar, url) = (client.clone(), seen.clone(), bar.clone(), url.to_string());
        tasks.spawn(async move {
            let s = one_request(&client, &url, item.body, &[]).await;
            if let Ok(mut v) = seen.lock() {
                v.push(s);
            }
            bar.inc(1);
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    bar.finish_and_clear();
    let mut report = Report {
        transport_errors: skipped,
        ..Report::default()
    };
    let seen = std::mem::take(&mut *seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    for s in seen {
        report.latencies.push(s.latency);
        *report.statuses.entry(s.status).or_default() += 1;
        if let Some(c) = s.code {
            *report.errors.entry(c).or_default() += 1;
        }
        if let Some(u) = s.upstream {
            *report.upstreams.entry(u).or_default() += 1;
        }
        if let Some(c) = s.cache {
            *report.cache.entry(c).or_default() += 1;
        }
    }
    report.latencies.sort_unstable();
    Ok(report)
}

fn print_report(r: &Report, fleet: &[SimNode], secs: u64, gateway: Option<&serde_json::Value>) {
    let n = r.latencies.len() as u64;
    let ok: u64 = r
        .statuses
        .iter()
        .filter(|(s, _)| (200..300).contains(*s))
        .map(|(_, c)| c)
        .sum();
    println!("Requests");
    println!(
        "  sent {n}, succeeded {ok} ({:.1}%), throughput {:.0} req/s",
        100.0 * ok as f64 / n.max(1) as f64,
        n as f64 / secs as f64
    );
    if r.transport_errors > 0 {
        println!(
            "  {} not sent: the demo client had {MAX_OUTSTANDING} requests outstanding",
            r.transport_errors
        );
    }
    println!("Latency seen by the client (ms, whole response)");
    println!(
        "  p50 {:.1}   p95 {:.1}   p99 {:.1}   max {:.1}",
        pct(&r.latencies, 0.50),
        pct(&r.latencies, 0.95),
        pct(&r.latencies, 0.99),
        r.latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    );
    println!("Errors by kind");
    if r.errors.is_empty() {
        println!("  none");
    }
    for (k, c) in &r.errors {
        println!("  {c:>6}  {k}");
    }
    println!("Traffic by upstream");
    for node in fleet {
        let c = r.upstreams.get(node.role).copied().unwrap_or(0);
        let s = node.server.stats();
        println!(
            "  {:<6} {:>6} answered via gateway ({:>5.1}%)   upstream saw {} requests, {} errors, {} 429s, {} resets",
            node.role,
            c,
            100.0 * c as f64 / n.max(1) as f64,
            s.requests,
            s.server_errors,
            s.rate_limited,
            s.resets
        );
    }
    if let Some(g) = gateway.and_then(|g| g.pointer("/overall/1m")) {
        let f = |p: &str| {
            g.pointer(p)
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.0)
        };
        println!(
            "The gateway's own view (GET /api/v1/performance/metrics, last minute, to response head)"
        );
        println!(
            "  {:.0} requests, {:.1}% errors, p50 {:.1} ms, p99 {:.1} ms",
            f("/requests"),
            100.0 * f("/error_rate"),
            f("/latency_ms/p50"),
            f("/latency_ms/p99")
        );
    }
}

fn print_cache(r: &Report, stats: Option<&serde_json::Value>) {
    println!("Response cache (x-flowgate-cache as the client saw it)");
    let line: Vec<String> = r.cache.iter().map(|(k, c)| format!("{k} {c}")).collect();
    println!(
        "  {}",
        if line.is_empty() {
            "no cached route answered".to_string()
        } else {
            line.join("   ")
        }
    );
    let Some(s) = stats else {
        return;
    };
    let n = |p: &str| {
        s.pointer(p)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    let f = |p: &str| {
        s.pointer(p)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0)
    };
    println!("The cache's own view (GET /api/v1/performance/cache/stats)");
    println!(
        "  hit rate {:.1}%: {} answered from memory (the demo's only tier), {} misses, {} coalesced (waited for an identical request already upstream)",
        100.0 * f("/hit_rate"),
        n("/hits_memory"),
        n("/misses"),
        n("/coalesced")
    );
    println!(
        "  saved {} tokens, ${:.4} at gpt-4o-mini prices; {} answers stored ({} entries, {:.1} KiB in memory)",
        n("/tokens_saved"),
        f("/usd_saved"),
        n("/stored"),
        n("/entries"),
        f("/bytes") / 1024.0
    );
}
