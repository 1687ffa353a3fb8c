//! Budgets shared by gateway replicas through a private redis-server on loopback: two
//! gateways spend against one budget; with Redis killed each counts locally, and when it
//! comes back (empty, as after a crash) the counters reconcile to every replica's spend.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use flowgate_gateway::Running;
use http::StatusCode;

/// An OpenAI upstream billing 1,000 prompt tokens per answer.
async fn upstream() -> String {
    let (url, _) = scripted_upstream(|_req| {
        let answer = r#"{"id":"c","object":"chat.completion","model":"dollar-model","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1000,"completion_tokens":0}}"#;
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        )
    })
    .await;
    url
}

/// `dollar-model` at $1 per million tokens: each answer costs $0.001. One global budget of
/// `limit` dollars per rolling hour, blocking at 100%, shared through `redis`.
fn config(url: &str, redis: &str, limit: &str) -> String {
    format!(
        "[models.\"dollar-model\"]\ninput_usd_per_mtok = 1\noutput_usd_per_mtok = 1\n\n\
         [cost.shared]\nurl = \"{redis}\"\nsync_interval = \"50ms\"\ntimeout = \"200ms\"\n\
         breaker_failures = 1\nbreaker_cooldown = \"100ms\"\n\n\
         [[cost.budgets]]\nname = \"hourly\"\nlimit_usd = {limit}\nwindow = \"hour\"\n\
         actions = [{{ at = 100, do = \"block\" }}]\n\n\
         [pools.llm]\nendpoints = [{{ url = \"{url}\" }}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n"
    )
}

async fn ask(gw: &Running) -> StatusCode {
    let body =
        Bytes::from(r#"{"model":"dollar-model","messages":[{"role":"user","content":"hi"}]}"#);
    send(&client(), post(gw.data_addr, "/v1/chat/completions", body))
        .await
        .status
}

async fn metrics(gw: &Running) -> String {
    String::from_utf8_lossy(&send(&client(), get(gw.admin_addr, "/metrics")).await.body)
        .into_owned()
}

/// What `gw`'s budget counts, in dollars.
async fn spent(gw: &Running) -> f64 {
    metric(
        &metrics(gw).await,
        "flowgate_budget_spent_usd{budget=\"hourly\",value=\"\"} ",
    )
}

/// Waits until each of `gateways` counts `usd` spent.
async fn until_spent(gateways: &[&Running], usd: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for gw in gateways {
        loop {
            let s = spent(gw).await;
            if (s - usd).abs() < 1e-9 {
                break;
            }
            assert!(Instant::now() < deadline, "counts ${s}, not ${usd}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Every replica's micro-dollars in the budget's buckets in Redis, sorted.
async fn in_redis(port: u16) -> Vec<u64> {
    let script = "local t = {} \
        for _, k in ipairs(redis.call('KEYS', ARGV[1])) do \
          for _, v in ipairs(redis.call('HVALS', k)) do table.insert(t, tonumber(v)) end \
        end \
        table.sort(t) \
        return table.concat(t, ',')";
    let reply = redis_cmd(port, &["EVAL", script, "0", "flowgate:bud2:{hourly:}:h:*"]).await;
    reply.split(',').filter_map(|v| v.parse().ok()).collect()
}

#[tokio::test]
async fn two_gateways_spend_against_one_budget_through_redis() {
    let redis = RedisServer::start().await;
    let url = upstream().await;
    let cfg = config(&url, &redis.url(), "0.003");
    let (a, b) = (gateway(&cfg).await, gateway(&cfg).await);
    assert_eq!(ask(&a).await, StatusCode::OK);
    assert_eq!(ask(&a).await, StatusCode::OK);
    assert_eq!(ask(&b).await, StatusCode::OK);
    // $0.003 in all, counted by both: both refuse, though neither spent it alone.
    until_spent(&[&a, &b], 0.003).await;
    assert_eq!(ask(&a).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(ask(&b).await, StatusCode::TOO_MANY_REQUESTS);
    let m = metrics(&b).await;
    assert_eq!(
        metric(
            &m,
            "flowgate_budget_utilization_ratio{budget=\"hourly\",value=\"\"} "
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "flowgate_budget_limit_usd{budget=\"hourly\",value=\"\"} "
        ),
        0.003
    );
    assert_eq!(metric(&m, "flowgate_budget_redis_fallback "), 0.0);
    assert!(metric(&m, "flowgate_budget_syncs_total{result=\"ok\"} ") >= 1.0);
    // One bucket (this minute, unless the test straddled two): each replica's micro-dollars.
    let held = in_redis(redis.port).await;
    assert!(
        held == [1000, 2000] || held.iter().sum::<u64>() == 3000,
        "{held:?}"
    );
}

#[tokio::test]
async fn replicas_count_locally_while_redis_is_down_and_reconcile_when_it_returns() {
    let mut redis = RedisServer::start().await;
    let port = redis.port;
    let url = upstream().await;
    let cfg = config(&url, &redis.url(), "0.005");
    let (a, b) = (gateway(&cfg).await, gateway(&cfg).await);
    assert_eq!(ask(&a).await, StatusCode::OK);
    assert_eq!(ask(&b).await, StatusCode::OK);
    until_spent(&[&a, &b], 0.002).await;

    redis.kill();
    // Each goes on alone: what all had spent, plus its own since. Nothing fails.
    assert_eq!(ask(&a).await, StatusCode::OK);
    assert_eq!(ask(&a).await, StatusCode::OK);
    assert_eq!(ask(&b).await, StatusCode::OK);
    until_spent(&[&a], 0.004).await;
    until_spent(&[&b], 0.003).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = metrics(&a).await;
        if metric(&m, "flowgate_budget_redis_fallback ") == 1.0 {
            assert!(metric(&m, "flowgate_budget_syncs_total{result=\"failed\"} ") >= 1.0);
            assert!(metric(&m, "flowgate_budget_unsynced_usd ") >= 0.002 - 1e-9);
            break;
        }
        assert!(Instant::now() < deadline, "never counted locally");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Neither alone has reached $0.005.
    assert_eq!(spent(&b).await, 0.003);

    // Back, empty: each replica writes all it spent again, and both count $0.005.
    let _redis = RedisServer::on_port(port).await;
    until_spent(&[&a, &b], 0.005).await;
    assert_eq!(ask(&a).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(ask(&b).await, StatusCode::TOO_MANY_REQUESTS);
    let m = metrics(&a).await;
    assert_eq!(metric(&m, "flowgate_budget_redis_fallback "), 0.0);
    assert_eq!(metric(&m, "flowgate_budget_unsynced_usd "), 0.0);
}
