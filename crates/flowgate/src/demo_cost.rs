//! The demo's spend: a route priced at the catalog's prices, with two model tiers and an
//! hourly budget that notifies at half and, once spent, sends every request but the
//! critical ones to the cheapest tier. The workload asks repeated questions of `gpt-4o`;
//! the report shows what was spent by model, what the cache saved, the budget's crossings
//! and the downgrades, and what the same traffic would have cost without the cache and
//! without the downgrade.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use flowgate_sim::{EndpointSpec, LatencyDist, SimServer};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rust_decimal::Decimal;

use crate::demo_client::{fetch_json, one_request};

const REQUESTS: usize = 300;
const QUESTIONS: usize = 100;
/// The hourly budget, in dollars.
const BUDGET: &str = "0.008";

fn config(sim: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ndrain_timeout = \"5s\"\n\n\
         [cache]\nenabled = true\nmemory = \"16MiB\"\n\n\
         [pools.llm]\nendpoints = [{{ url = \"{sim}\", name = \"sim\" }}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\npath = \"/v1/chat/completions\"\npool = \"llm\"\npriority_header = true\n\n\
         [[cost.tiers]]\nname = \"premium\"\nmodels = [\"gpt-4o\"]\n\n\
         [[cost.tiers]]\nname = \"economy\"\nmodels = [\"gpt-4o-mini\"]\n\n\
         [[cost.budgets]]\nname = \"hourly\"\nlimit_usd = {BUDGET}\nwindow = \"hour\"\n\
         actions = [{{ at = 50, do = \"notify\" }}, {{ at = 100, do = \"downgrade\", to = \"cheapest\", spare = [\"critical\"] }}]\n"
    )
}

fn d(v: &serde_json::Value) -> Decimal {
    v.as_str()
        .and_then(|s| Decimal::from_str(s).ok())
        .unwrap_or_default()
}

pub async fn run(seed: u64) {
    println!(
        "\nSpend: gpt-4o at the catalog's prices, a ${BUDGET} hourly budget (notify at 50%; at 100% \
         everything but critical to the cheapest tier)"
    );
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let spec = EndpointSpec {
        latency: LatencyDist::LogNormal {
            median: Duration::from_millis(4),
            sigma: 0.3,
        },
        seed: seed + 20,
        ..EndpointSpec::default()
    };
    let Ok(sim) = SimServer::start(loopback, spec).await else {
        println!("  (could not start the simulated upstream)");
        return;
    };
    let cfg = match flowgate_config::parse(&config(&sim.url()), "<demo: cost>", std::iter::empty())
    {
        Ok(c) => c,
        Err(e) => {
            println!("  demo config: {e}");
            return;
        }
    };
    let price = |m: &str| cfg.models.price(m).unwrap_or_default();
    let (big, small) = (price("gpt-4o"), price("gpt-4o-mini"));
    let telemetry = flowgate_telemetry::Telemetry::new(flowgate_clock::SystemClock::shared());
    let Ok(gw) = flowgate_gateway::launch(cfg, None, telemetry).await else {
        println!("  (could not start the gateway)");
        return;
    };
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let url = format!("http://{}/v1/chat/completions", gw.data_addr);
    let mut outcome: BTreeMap<&str, u64> = BTreeMap::new();
    let mut first_downgrade = None;
    for i in 0..REQUESTS {
        let q = (i * 7 + i / QUESTIONS) % QUESTIONS;
        let critical = i % 10 == 0;
        let body = format!(
            r#"{{"model":"gpt-4o","temperature":0,"max_tokens":64,"messages":[{{"role":"user","content":"incident question {q}"}}]}}"#
        );
        let headers: &[(&str, &str)] = if critical {
            &[("x-flowgate-priority", "critical")]
        } else {
            &[]
        };
        let s = one_request(&client, &url, Bytes::from(body), headers).await;
        let how = match (s.status, s.cache.as_deref(), s.model.as_deref()) {
            (200, Some(c), _) if c.starts_with("hit") || c == "stale" => "from the cache",
            (200, _, Some(_)) => {
                first_downgrade.get_or_insert(i + 1);
                "downgraded to gpt-4o-mini"
            }
            (200, _, None) if critical => "gpt-4o (critical)",
            (200, _, None) => "gpt-4o",
            _ => "errors",
        };
        *outcome.entry(how).or_default() += 1;
    }
    let admin = format!("http://{}", gw.admin_addr);
    // The ledger takes the answers' records a flush later: the summary is read once it
    // holds them all (or after five seconds, as it is then).
    let url = format!("{admin}/api/v1/cost/summary?window=1h&group_by=model");
    let mut summary = fetch_json(&url).await;
    for _ in 0..50 {
        let counted = summary
            .as_ref()
            .and_then(|s| s["total"]["requests"].as_u64())
            .unwrap_or(0);
        if counted >= REQUESTS as u64 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        summary = fetch_json(&url).await;
    }
    let budgets = fetch_json(&format!("{admin}/api/v1/cost/budgets")).await;
    let parts: Vec<String> = outcome.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!(
        "  {REQUESTS} requests, {QUESTIONS} distinct questions: {}",
        parts.join(", ")
    );
    if let Some(s) = &summary {
        let total = &s["total"];
        let (spent, saved) = (d(&total["usd"]), d(&total["saved_usd"]));
        let by: Vec<String> = s["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| format!("{} ${}", g["name"].as_str().unwrap_or("-"), d(&g["usd"])))
            .collect();
        println!(
            "  spent ${spent} ({}); the cache saved ${saved}",
            by.join(", ")
        );
        // What gpt-4o-mini was paid, at gpt-4o's prices (both of its prices are ~16.7 times
        // gpt-4o-mini's: the input ratio holds for the output too).
        let mini = s["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|g| g["name"] == "gpt-4o-mini")
            .map_or(Decimal::ZERO, |g| d(&g["usd"]));
        let ratio = if small.input_usd_per_mtok.is_zero() {
            Decimal::ONE
        } else {
            big.input_usd_per_mtok / small.input_usd_per_mtok
        };
        let extra = mini * ratio - mini;
        println!(
            "  the same traffic without the cache: ${}; without the downgrade: ${}",
            (spent + saved).normalize(),
            (spent + extra).round_dp(6).normalize()
        );
    }
    if let Some(b) = &budgets {
        let crossings: Vec<String> = b["events"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                format!(
                    "{} at {}% (${} of ${})",
                    e["action"].as_str().unwrap_or("-"),
                    e["threshold_percent"].as_str().unwrap_or("-"),
                    e["spent_usd"].as_str().unwrap_or("-"),
                    e["limit_usd"].as_str().unwrap_or("-")
                )
            })
            .collect();
        println!(
            "  budget \"hourly\": {}{}",
            if crossings.is_empty() {
                "not crossed".to_string()
            } else {
                crossings.join(", then ")
            },
            first_downgrade.map_or(String::new(), |n| format!(
                "; first downgraded request: #{n}"
            ))
        );
    }
    gw.shutdown();
    gw.wait().await;
}
