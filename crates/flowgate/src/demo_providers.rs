//! The demo's mixed fleet: one model name, two providers. A second gateway serves
//! `claude-sonnet` from a simulated Bedrock (every request signed with SigV4 and checked by
//! the simulator; a share of them answered `ServiceUnavailable`) and falls back to a
//! simulated Anthropic API. OpenAI clients (`/v1/chat/completions`) and Claude clients
//! (`/v1/messages`) ask the same questions; one cache answers both.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use flowgate_sim::{EndpointSpec, LatencyDist, SIM_AWS_KEY, SimServer};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::demo_client::{fetch_json, one_request};

/// Requests sent: half from OpenAI clients, half from Claude clients, over this many
/// distinct questions.
const REQUESTS: usize = 120;
const QUESTIONS: usize = 30;

fn config(bedrock: &str, anthropic: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ndrain_timeout = \"5s\"\n\n\
         [cache]\nenabled = true\nmemory = \"16MiB\"\n\n\
         [pools.bedrock]\nprovider = \"bedrock\"\nendpoints = [{{ url = \"{bedrock}\", region = \"us-east-1\", name = \"bedrock\" }}]\n\
         retries = {{ attempts = 1 }}\n\n\
         [pools.anthropic]\nprovider = \"anthropic\"\nendpoints = [{{ url = \"{anthropic}\", api_key_env = \"ANTHROPIC_API_KEY\", name = \"anthropic\" }}]\n\n\
         [models.\"claude-3-5-sonnet-20240620\"]\naliases = [\"claude-sonnet\"]\n\
         deployments = [{{ pool = \"bedrock\" }}, {{ pool = \"anthropic\" }}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\npath = \"/v1/chat/completions\"\ncache = {{ namespace = \"llm\" }}\n\n\
         [[routes]]\nname = \"messages\"\nkind = \"anthropic\"\npath = \"/v1/messages\"\ncache = {{ namespace = \"llm\" }}\n"
    )
}

pub async fn run(seed: u64) {
    println!(
        "\nOne model, two providers (claude-sonnet: Bedrock first, Anthropic's API as fallback)"
    );
    let ms = Duration::from_millis;
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let spec = |error_rate: f64, seed: u64| EndpointSpec {
        latency: LatencyDist::LogNormal {
            median: ms(25),
            sigma: 0.4,
        },
        token_delay: ms(2),
        error_rate,
        aws_region: Some("us-east-1".into()),
        seed,
        ..EndpointSpec::default()
    };
    let (Ok(bedrock), Ok(anthropic)) = (
        SimServer::start(loopback, spec(0.25, seed + 10)).await,
        SimServer::start(loopback, spec(0.0, seed + 11)).await,
    ) else {
        println!("  (could not start the simulated providers)");
        return;
    };
    // The gateway's environment: the simulator's AWS key, a placeholder Anthropic key.
    let env = [
        ("AWS_ACCESS_KEY_ID", SIM_AWS_KEY.0),
        ("AWS_SECRET_ACCESS_KEY", SIM_AWS_KEY.1),
        ("ANTHROPIC_API_KEY", "sk-ant-demo"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let toml = config(&bedrock.url(), &anthropic.url());
    let gw = match flowgate_config::parse(&toml, "<demo: providers>", env) {
        Ok(cfg) => {
            let telemetry =
                flowgate_telemetry::Telemetry::new(flowgate_clock::SystemClock::shared());
            flowgate_gateway::launch(cfg, None, telemetry).await
        }
        Err(e) => {
            println!("  demo config: {e}");
            return;
        }
    };
    let Ok(gw) = gw else {
        println!("  (could not start the gateway)");
        return;
    };
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut by: BTreeMap<(&str, String), u64> = BTreeMap::new();
    let mut hits = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..REQUESTS {
        let q = i % QUESTIONS;
        let claude = i % 2 == 1;
        let stream = i % 5 == 0;
        let (path, body) = if claude {
            (
                "/v1/messages",
                format!(
                    r#"{{"model":"claude-sonnet","max_tokens":24,"temperature":0,"stream":{stream},"messages":[{{"role":"user","content":"question {q}"}}]}}"#
                ),
            )
        } else {
            (
                "/v1/chat/completions",
                format!(
                    r#"{{"model":"claude-sonnet","max_tokens":24,"temperature":0,"stream":{stream},"messages":[{{"role":"user","content":"question {q}"}}]}}"#
                ),
            )
        };
        let (client, url) = (client.clone(), format!("http://{}{path}", gw.data_addr));
        tasks.spawn(async move {
            let seen = one_request(&client, &url, Bytes::from(body), &[]).await;
            (claude, seen)
        });
        // A few at a time, so that repeated questions can find the answers of earlier ones.
        if tasks.len() >= 8
            && let Some(Ok((claude, s))) = tasks.join_next().await
        {
            tally(&mut by, &mut hits, claude, &s);
        }
        while let Some(Ok((claude, s))) = tasks.try_join_next() {
            tally(&mut by, &mut hits, claude, &s);
        }
    }
    while let Some(Ok((claude, s))) = tasks.join_next().await {
        tally(&mut by, &mut hits, claude, &s);
    }
    println!(
        "  {REQUESTS} requests: {} from OpenAI clients, {} from Claude clients, {QUESTIONS} distinct questions, a fifth streamed",
        REQUESTS / 2,
        REQUESTS / 2
    );
    println!("  {:<14} {:<22} {:>6}", "client", "answered by", "count");
    for ((client, by), n) in &by {
        println!("  {client:<14} {by:<22} {n:>6}");
    }
    let (b, a) = (bedrock.stats(), anthropic.stats());
    println!(
        "  bedrock saw {} signed requests ({} refused for their signature), answered {} with ServiceUnavailable;\n  \
         those fell back to anthropic, which saw {} requests; the cache answered {hits} (one entry for both dialects)",
        b.requests, b.unauthorized, b.server_errors, a.requests
    );
    if let Some(models) = fetch_json(&format!("http://{}/v1/models", gw.data_addr)).await {
        let ids: Vec<&str> = models["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["id"].as_str())
            .collect();
        println!("  GET /v1/models: {}", ids.join(", "));
    }
    gw.shutdown();
    gw.wait().await;
}

fn tally(
    by: &mut BTreeMap<(&'static str, String), u64>,
    hits: &mut u64,
    claude: bool,
    s: &crate::demo_client::Seen,
) {
    let client = if claude { "claude" } else { "openai" };
    let how = match (s.status, s.cache.as_deref(), s.upstream.as_deref()) {
        (200, Some(c), _) if c.starts_with("hit") => {
            *hits += 1;
            "cache".to_string()
        }
        (200, Some("coalesced"), _) => "another's flight".to_string(),
        (200, _, Some(u)) => u.to_string(),
        (status, _, _) => format!("error {status}"),
    };
    *by.entry((client, how)).or_default() += 1;
}
