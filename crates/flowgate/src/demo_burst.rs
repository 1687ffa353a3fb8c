//! The demo's last act: a burst shaped by admission control. 160 requests arrive at once
//! at the `burst` route (chat requests marked `x-flowgate-demo: burst`), in front of the slow upstream with a rate limit per client (40 a
//! second, 40 at once) and a concurrency limit (4 in flight, 24 waiting for at most 2 s),
//! a quarter of them at each priority. The rate limit refuses what is over its burst; the
//! concurrency limit lets the rest through four at a time, most urgent first, and sheds the
//! least urgent when its queue is full.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use flowgate_admission::Priority;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::demo_client::{Seen, fetch_json, one_request, pct};

const REQUESTS: usize = 160;

/// The burst route, its pool (the slow upstream alone) and its limits.
pub fn config(slow: Option<String>) -> String {
    let Some(url) = slow else {
        return String::new();
    };
    format!(
        "[pools.shaped]\nendpoints = [{{ url = \"{url}\", name = \"slow\" }}]\nrequest_timeout = \"10s\"\n\
         concurrency = {{ limit = 4, queue = 24, queue_timeout = \"2s\" }}\n\n\
         [[routes]]\nname = \"burst\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"shaped\"\n\
         headers = {{ \"x-flowgate-demo\" = \"burst\" }}\n\
         cache = {{ mode = \"off\" }}\n\n\
         [[rate_limits]]\nname = \"burst-per-client\"\nscope = \"ip\"\nrequests = 40\nper = \"1s\"\n\
         routes = [\"burst\"]\n"
    )
}

/// What happened to the requests of one priority.
#[derive(Default)]
struct Tally {
    sent: u64,
    served: u64,
    rate_limited: u64,
    overloaded: u64,
    other: u64,
    latencies: Vec<Duration>,
}

pub async fn run(data: SocketAddr, admin: SocketAddr) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let url = format!("http://{data}/v1/chat/completions");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..REQUESTS {
        let p = Priority::ALL[i % 4];
        let body = Bytes::from(format!(
            r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"burst request {i}"}}],"max_tokens":16}}"#
        ));
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move {
            let headers = [
                ("x-flowgate-priority", p.as_str()),
                ("x-flowgate-demo", "burst"),
            ];
            let seen: Seen = one_request(&client, &url, body, &headers).await;
            (p, seen)
        });
    }
    let mut by: BTreeMap<Priority, Tally> = BTreeMap::new();
    while let Some(Ok((p, s))) = tasks.join_next().await {
        let t = by.entry(p).or_default();
        t.sent += 1;
        match (s.status, s.code.as_deref()) {
            (200, _) => {
                t.served += 1;
                t.latencies.push(s.latency);
            }
            (_, Some(c)) if c.ends_with("rate_limit_exceeded") => t.rate_limited += 1,
            (_, Some(c)) if c.ends_with("overloaded") => t.overloaded += 1,
            _ => t.other += 1,
        }
    }
    println!();
    println!(
        "Burst shaping ({REQUESTS} requests at once to the slow upstream: 40 req/s with a burst \
         of 40 per client, then 4 in flight and 24 waiting for at most 2 s, most urgent first)"
    );
    println!(
        "  {:<9} {:>5} {:>7} {:>13} {:>11} {:>6} {:>8} {:>8}",
        "priority", "sent", "served", "rate-limited", "overloaded", "other", "p50 ms", "max ms"
    );
    for (p, t) in &mut by {
        t.latencies.sort_unstable();
        println!(
            "  {:<9} {:>5} {:>7} {:>13} {:>11} {:>6} {:>8.0} {:>8.0}",
            p.as_str(),
            t.sent,
            t.served,
            t.rate_limited,
            t.overloaded,
            t.other,
            pct(&t.latencies, 0.5),
            pct(&t.latencies, 1.0)
        );
    }
    let view = fetch_json(&format!("http://{admin}/api/v1/performance/concurrency")).await;
    let pool = view.as_ref().and_then(|v| {
        v["limiters"]
            .as_array()?
            .iter()
            .find(|l| l["name"] == "shaped")
            .cloned()
    });
    if let Some(l) = pool {
        println!("The pool's queue (GET /api/v1/performance/concurrency)");
        println!(
            "  {:<9} {:>7} {:>7} {:>6}",
            "priority", "waited", "shed", "timeouts"
        );
        for p in Priority::ALL {
            let n = |what: &str| l[what][p.as_str()].as_u64().unwrap_or(0);
            println!(
                "  {:<9} {:>7} {:>7} {:>6}",
                p.as_str(),
                n("waited"),
                n("shed"),
                n("timeouts")
            );
        }
    }
}
