//! Retries, the retry budget, fallback chains and hedged requests, end to end against
//! scripted upstreams and the simulator.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use flowgate_sim::EndpointSpec;
use http::StatusCode;
use http_body_util::BodyExt;

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";

fn status(code: u16) -> String {
    format!(
        "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
    )
}

fn attempts(r: &Reply) -> &str {
    r.headers
        .get("x-flowgate-attempts")
        .map_or("-", |v| v.to_str().unwrap())
}

fn upstream(r: &Reply) -> &str {
    r.headers
        .get("x-flowgate-upstream")
        .map_or("-", |v| v.to_str().unwrap())
}

fn host_of(url: &str) -> &str {
    url.trim_start_matches("http://")
}

async fn chat(gw: &flowgate_gateway::Running) -> Reply {
    send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", chat_body(false)),
    )
    .await
}

#[tokio::test]
async fn a_503_is_retried_on_another_endpoint_at_once_and_a_400_is_never_retried() {
    let (failing, failing_n) = canned_upstream(status(503)).await;
    let (good, good_n) = canned_upstream(OK.into()).await;
    let gw = gateway(&fleet_config(
        &[failing.clone(), good.clone()],
        "strategy = \"round_robin\"\noutlier = { consecutive_failures = 0, failure_percent = 0 }\n",
    ))
    .await;
    for i in 0..4 {
        let r = chat(&gw).await;
        assert_eq!(r.status, StatusCode::OK, "{i}");
        assert_eq!(upstream(&r), host_of(&good));
        // Round robin: every other request starts on the failing endpoint.
        assert_eq!(attempts(&r), if i % 2 == 0 { "2" } else { "1" }, "{i}");
    }
    assert_eq!(
        (
            failing_n.load(Ordering::SeqCst),
            good_n.load(Ordering::SeqCst)
        ),
        (2, 4)
    );

    let (bad, bad_n) = canned_upstream(status(400)).await;
    let (other, other_n) = canned_upstream(OK.into()).await;
    let gw = gateway(&fleet_config(
        &[bad, other],
        "strategy = \"round_robin\"\nretries = { attempts = 3, on = [\"connect\", \"5xx\", \"429\"] }\n",
    ))
    .await;
    let r = chat(&gw).await;
    assert_eq!((r.status, attempts(&r)), (StatusCode::BAD_REQUEST, "1"));
    assert_eq!(
        (bad_n.load(Ordering::SeqCst), other_n.load(Ordering::SeqCst)),
        (1, 0)
    );
}

#[tokio::test]
async fn the_only_endpoint_is_retried_after_a_backoff_and_a_failure_not_listed_is_passed_on() {
    let (flaky, n) = scripted_upstream({
        let calls = std::sync::atomic::AtomicUsize::new(0);
        move |_| {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                status(502)
            } else {
                OK.into()
            }
        }
    })
    .await;
    let gw = gateway(&fleet_config(
        &[flaky],
        "retries = { attempts = 2, backoff_base = \"30ms\", backoff_max = \"30ms\" }\n",
    ))
    .await;
    let start = std::time::Instant::now();
    let r = chat(&gw).await;
    assert_eq!((r.status, attempts(&r)), (StatusCode::OK, "2"));
    assert!(
        start.elapsed() >= Duration::from_millis(15),
        "half the backoff at least"
    );
    assert_eq!(n.load(Ordering::SeqCst), 2);

    // A 500 is not in the default list: the client gets it as it was.
    let (five_hundred, n) = canned_upstream(status(500)).await;
    let gw = gateway(&fleet_config(&[five_hundred], "")).await;
    let r = chat(&gw).await;
    assert_eq!(
        (r.status, attempts(&r)),
        (StatusCode::INTERNAL_SERVER_ERROR, "1")
    );
    assert_eq!(n.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn retries_stop_at_the_budget_and_that_is_counted() {
    let (a, a_n) = canned_upstream(status(503)).await;
    let (b, b_n) = canned_upstream(status(503)).await;
    let gw = gateway(&fleet_config(
        &[a, b],
        "outlier = { consecutive_failures = 0, failure_percent = 0 }\n\
         retries = { attempts = 3, budget_percent = 20, budget_min_per_second = 0, backoff_base = \"1ms\", backoff_max = \"1ms\" }\n",
    ))
    .await;
    for _ in 0..50 {
        assert_eq!(chat(&gw).await.status, StatusCode::SERVICE_UNAVAILABLE);
    }
    // 20% of 50 requests: 10 retries, however many the requests would have wanted (100).
    let sent = a_n.load(Ordering::SeqCst) + b_n.load(Ordering::SeqCst);
    assert_eq!(sent, 60);
    let m = send(
        &client(),
        get(gw.admin_addr, "/api/v1/performance/load-balancer/metrics"),
    )
    .await
    .json();
    let pool = &m["pools"][0];
    assert_eq!(pool["retries"], 10, "{pool}");
    assert_eq!(pool["retry_budget"]["requests"], 50);
    let exhausted = pool["retry_budget"]["exhausted"].as_u64().unwrap();
    assert!(exhausted >= 40, "{exhausted}");
    let metrics = send(&client(), get(gw.admin_addr, "/metrics")).await.body;
    let metrics = String::from_utf8_lossy(&metrics);
    assert_eq!(
        metric(&metrics, "flowgate_retries_total{pool=\"llm\"}"),
        10.0
    );
    assert_eq!(
        metric(
            &metrics,
            "flowgate_retry_budget_exhausted_total{pool=\"llm\"}"
        ),
        exhausted as f64
    );
}

#[tokio::test]
async fn an_answer_that_started_streaming_is_never_retried() {
    // A stream's head and first event, then (once the client had time to get them) the
    // connection drops.
    let (a, a_n) = cut_stream().await;
    let (b, b_n) = cut_stream().await;
    let gw = gateway(&fleet_config(
        &[a, b],
        "retries = { attempts = 3, on = [\"connect\", \"reset\", \"5xx\"] }\n",
    ))
    .await;
    let resp = client()
        .request(post(gw.data_addr, "/v1/chat/completions", chat_body(true)))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-flowgate-attempts"], "1");
    assert!(
        resp.into_body().collect().await.is_err(),
        "the client sees the stream cut, not a second answer"
    );
    assert_eq!(a_n.load(Ordering::SeqCst) + b_n.load(Ordering::SeqCst), 1);

    // A connection dropped before any answer is retried when `reset` is listed.
    let (gone, gone_n) = canned_upstream(String::new()).await;
    let (good, _) = canned_upstream(OK.into()).await;
    let gw = gateway(&fleet_config(
        &[gone, good],
        "strategy = \"round_robin\"\nretries = { on = [\"reset\"] }\n",
    ))
    .await;
    let r = chat(&gw).await;
    assert_eq!((r.status, attempts(&r)), (StatusCode::OK, "2"));
    assert_eq!(gone_n.load(Ordering::SeqCst), 1);
}

/// An upstream that starts a stream, waits a little, and drops the connection; its URL and
/// how many requests it got.
async fn cut_stream() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                // The first read of the request is enough to answer it.
                let _ = s.read(&mut buf).await;
                seen.fetch_add(1, Ordering::SeqCst);
                let event = "data: {\"choices\":[]}\n\n";
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{event}\r\n",
                    event.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            });
        }
    });
    (url, count)
}

/// Pools `a` (nothing listens), `b` (503) and `c` (200, echoing the model it was asked for),
/// without retries, and routes over them with `route_extra`.
async fn chain(route_extra: &str) -> (flowgate_gateway::Running, String, String) {
    let dead = dead_port().await;
    let (b, _) = canned_upstream(status(503)).await;
    let (c, _) = scripted_upstream(|req| {
        let model = req
            .split("\"model\":\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or("")
            .to_string();
        let body = format!("{{\"model\":\"{model}\"}}");
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    })
    .await;
    let pool = |name: &str, url: &str| {
        format!(
            "[pools.{name}]\nendpoints = [{{ url = \"{url}\" }}]\nretries = {{ attempts = 1 }}\n\n"
        )
    };
    let config = format!(
        "{}{}{}[[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"a\"\n{route_extra}\n",
        pool("a", &format!("http://127.0.0.1:{dead}")),
        pool("b", &b),
        pool("c", &c),
    );
    (gateway(&config).await, b, c)
}

#[tokio::test]
async fn the_fallback_chain_is_followed_in_order_with_the_model_each_step_names() {
    let (gw, _, c) =
        chain("fallback = [{ pool = \"b\" }, { pool = \"c\", model = \"small-model\" }]\n").await;
    let r = chat(&gw).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(upstream(&r), host_of(&c));
    assert_eq!(attempts(&r), "3", "a, then b, then c");
    assert_eq!(r.json()["model"], "small-model");
    let metrics = send(&client(), get(gw.admin_addr, "/metrics")).await.body;
    let metrics = String::from_utf8_lossy(&metrics);
    assert_eq!(
        metric(&metrics, "flowgate_fallbacks_total{pool=\"b\"}"),
        1.0
    );
    assert_eq!(
        metric(&metrics, "flowgate_fallbacks_total{pool=\"c\"}"),
        1.0
    );
}

#[tokio::test]
async fn only_the_failures_a_route_lists_move_it_down_the_chain() {
    let (gw, b, _) =
        chain("fallback = [{ pool = \"b\" }, { pool = \"c\" }]\nfallback_on = [\"connect\"]\n")
            .await;
    // a cannot be reached: on to b, whose 503 is not `connect`: the client gets it.
    let r = chat(&gw).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(upstream(&r), host_of(&b));
    assert_eq!(attempts(&r), "2");
}

#[tokio::test]
async fn a_slow_first_attempt_is_hedged_and_the_faster_answer_wins() {
    let slow = sim(EndpointSpec::fixed(Duration::from_millis(800))).await;
    let fast = sim(EndpointSpec::fixed(Duration::from_millis(5))).await;
    let config = fleet_config(&[slow.url(), fast.url()], "strategy = \"round_robin\"\n").replace(
        "pool = \"llm\"\n\n[[routes]]\nname = \"echo\"",
        "pool = \"llm\"\nhedge = { after = \"100ms\" }\n\n[[routes]]\nname = \"echo\"",
    );
    let gw = gateway(&config).await;
    let start = std::time::Instant::now();
    let first = chat(&gw).await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(
        start.elapsed() < Duration::from_millis(700),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(attempts(&first), "2");
    assert_eq!(upstream(&first), host_of(&fast.url()));
    // The slow attempt was dropped.
    eventually(|| slow.stats().cancelled == 1).await;
    let m = send(
        &client(),
        get(gw.admin_addr, "/api/v1/performance/load-balancer/metrics"),
    )
    .await
    .json();
    assert_eq!(
        (
            m["pools"][0]["hedges"].as_u64(),
            m["pools"][0]["hedges_won"].as_u64()
        ),
        (Some(1), Some(1))
    );
    // The abandoned attempt counts as a slow answer of at least the time it had.
    let slow_estimate = m["pools"][0]["endpoints"][0]["latency_ms"]
        .as_f64()
        .unwrap();
    assert!(slow_estimate >= 100.0, "{slow_estimate}");

    // The second request goes to the fast one first: no hedge needed.
    let r = chat(&gw).await;
    assert_eq!((attempts(&r), upstream(&r)), ("1", host_of(&fast.url())));
    // A streaming request is never hedged: it waits for the slow endpoint.
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", chat_body(true)),
    )
    .await;
    assert_eq!((attempts(&r), upstream(&r)), ("1", host_of(&slow.url())));
}

#[tokio::test]
async fn a_fallbacks_answer_is_read_with_its_own_pools_read_timeout() {
    // The first pool is down and allows 100 ms between chunks; the fallback's server takes
    // 300 ms between tokens and its pool allows 5 s: the stream must come through whole.
    let dead = dead_port().await;
    let slow = sim(EndpointSpec {
        token_delay: Duration::from_millis(300),
        completion_tokens: 3,
        ..EndpointSpec::default()
    })
    .await;
    let config = format!(
        "[pools.a]\nendpoints = [{{ url = \"http://127.0.0.1:{dead}\" }}]\nretries = {{ attempts = 1 }}\nread_timeout = \"100ms\"\n\n\
         [pools.b]\nendpoints = [{{ url = \"{}\" }}]\nread_timeout = \"5s\"\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"a\"\nfallback = [{{ pool = \"b\" }}]\n",
        slow.url()
    );
    let gw = gateway(&config).await;
    let (events, done) = openai_stream(
        gw.data_addr,
        "/v1/chat/completions",
        bytes::Bytes::from(
            r#"{"model":"m","stream":true,"max_tokens":3,"messages":[{"role":"user","content":"hi"}]}"#,
        ),
    )
    .await;
    assert!(done, "the stream was cut: {events:?}");
    assert_eq!(slow.stats().completed, 1);
}
