//! Concurrency limits of routes, pools and keys on the request path: permits, the
//! priority queue, its timeout, and the answers of a full one.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::time::Duration;

use common::*;
use flowgate_gateway::Running;
use flowgate_sim::{EndpointSpec, LatencyDist};
use http::StatusCode;

/// An upstream answering each request after `ms` milliseconds.
async fn slow(ms: u64) -> flowgate_sim::SimServer {
    sim(EndpointSpec {
        latency: LatencyDist::Fixed(Duration::from_millis(ms)),
        ..EndpointSpec::default()
    })
    .await
}

/// A gateway whose chat route has `concurrency` (each chat body distinct: no cache here).
async fn limited_route(up: &flowgate_sim::SimServer, concurrency: &str, extra: &str) -> Running {
    gateway(&format!(
        "{extra}{}",
        fleet_config(&[up.url()], "").replace(
            "name = \"chat\"\n",
            &format!("name = \"chat\"\nconcurrency = {concurrency}\n")
        )
    ))
    .await
}

/// Sends a chat request with `headers` from a task of its own: its reply and how long it
/// took.
fn spawn_chat(
    c: &TestClient,
    gw: &Running,
    headers: &[(&'static str, &'static str)],
) -> tokio::task::JoinHandle<(Reply, Duration)> {
    let ended = spawn_chat_ended(c, gw, headers);
    tokio::spawn(async move {
        let (r, took, _) = ended.await.unwrap();
        (r, took)
    })
}

/// Like [`spawn_chat`], with the moment the reply was complete.
fn spawn_chat_ended(
    c: &TestClient,
    gw: &Running,
    headers: &[(&'static str, &'static str)],
) -> tokio::task::JoinHandle<(Reply, Duration, std::time::Instant)> {
    let (c, addr) = (c.clone(), gw.data_addr);
    let headers = headers.to_vec();
    tokio::spawn(async move {
        let mut r = post(addr, "/v1/chat/completions", chat_body(false));
        for (k, v) in headers {
            r.headers_mut().insert(k, v.parse().unwrap());
        }
        let start = std::time::Instant::now();
        let reply = send(&c, r).await;
        (reply, start.elapsed(), std::time::Instant::now())
    })
}

/// The admin view of the concurrency limits.
async fn limiters(gw: &Running) -> serde_json::Value {
    send(
        &client(),
        get(gw.admin_addr, "/api/v1/performance/concurrency"),
    )
    .await
    .json()["limiters"]
        .clone()
}

/// Waits until the first limiter has `in_flight` requests in flight and `queued` waiting:
/// the requests sent so far have taken their places.
async fn placed(gw: &Running, in_flight: u64, queued: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let l = &limiters(gw).await[0];
        let waiting: u64 = ["critical", "high", "normal", "low"]
            .iter()
            .map(|p| l["queued"][p].as_u64().unwrap_or(0))
            .sum();
        if l["in_flight"] == in_flight && waiting == queued {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "never placed: {l}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn beyond_the_limit_requests_wait_and_a_full_queue_answers_503_at_once() {
    let up = slow(400).await;
    let gw = limited_route(&up, "{ limit = 1, queue = 1, queue_timeout = \"5s\" }", "").await;
    let c = client();
    let first = spawn_chat(&c, &gw, &[]);
    placed(&gw, 1, 0).await;
    let waiting = spawn_chat(&c, &gw, &[]);
    placed(&gw, 1, 1).await;
    let (full, took) = spawn_chat(&c, &gw, &[]).await.unwrap();
    assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(full.error_code(), "overloaded");
    assert_eq!(full.json()["error"]["type"], "overloaded");
    assert_eq!(full.headers["retry-after"], "1");
    assert!(
        full.error_message()
            .contains("route chat has 1 requests in flight and its queue is full"),
        "{}",
        full.error_message()
    );
    assert!(
        took < Duration::from_millis(300),
        "refused at once, not after waiting: {took:?}"
    );
    let (r1, _) = first.await.unwrap();
    let (r2, t2) = waiting.await.unwrap();
    assert_eq!((r1.status, r2.status), (StatusCode::OK, StatusCode::OK));
    // The second waited for the first's slot: two upstream answers' worth.
    assert!(t2 >= Duration::from_millis(600), "{t2:?}");
    assert_eq!(up.stats().requests, 2);
    // Every permit came back; the admin view and the metrics tell the story.
    assert_eq!(
        send(
            &c,
            post(gw.data_addr, "/v1/chat/completions", chat_body(false))
        )
        .await
        .status,
        StatusCode::OK
    );
    let l = &limiters(&gw).await[0];
    assert_eq!(
        (l["scope"].as_str(), l["name"].as_str()),
        (Some("route"), Some("chat"))
    );
    assert_eq!(
        (l["limit"].as_u64(), l["in_flight"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(l["admitted"]["normal"], 3);
    assert_eq!(l["waited"]["normal"], 1);
    assert_eq!(l["shed"]["normal"], 1);
    assert_eq!(l["queue_timeout"], "5s");
    let m =
        String::from_utf8_lossy(&send(&c, get(gw.admin_addr, "/metrics")).await.body).into_owned();
    let at = "{scope=\"route\",name=\"chat\"";
    assert_eq!(
        metric(&m, &format!("flowgate_concurrency_limit{at}}}")),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            &format!("flowgate_concurrency_shed_total{at},priority=\"normal\"}}")
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            &format!("flowgate_concurrency_wait_seconds_count{at}}}")
        ),
        3.0
    );
}

#[tokio::test]
async fn a_request_that_waits_longer_than_the_queue_timeout_gets_503() {
    let up = slow(600).await;
    let gw = limited_route(&up, "{ limit = 1, queue_timeout = \"100ms\" }", "").await;
    let c = client();
    let first = spawn_chat(&c, &gw, &[]);
    placed(&gw, 1, 0).await;
    let (late, took) = spawn_chat(&c, &gw, &[]).await.unwrap();
    assert_eq!(late.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        late.error_message().contains("came free within 100ms"),
        "{}",
        late.error_message()
    );
    assert!(
        took >= Duration::from_millis(100) && took < Duration::from_millis(500),
        "{took:?}"
    );
    assert_eq!(first.await.unwrap().0.status, StatusCode::OK);
    assert_eq!(up.stats().requests, 1);
}

/// The order in which four requests queued behind a first one went upstream, on a route
/// limited to one at a time whose `concurrency` is `concurrency`: a low, a normal and a
/// critical one (by `x-flowgate-priority`, no key).
async fn queue_order(concurrency: &str) -> Vec<&'static str> {
    let up = slow(200).await;
    let gw = limited_route(&up, concurrency, "").await;
    let c = client();
    let first = spawn_chat_ended(&c, &gw, &[]);
    placed(&gw, 1, 0).await;
    let low = spawn_chat_ended(&c, &gw, &[("x-flowgate-priority", "low")]);
    placed(&gw, 1, 1).await;
    let normal = spawn_chat_ended(&c, &gw, &[]);
    placed(&gw, 1, 2).await;
    let critical = spawn_chat_ended(&c, &gw, &[("x-flowgate-priority", "Critical")]);
    placed(&gw, 1, 3).await;
    let mut ends = Vec::new();
    for (name, t) in [
        ("first", first),
        ("low", low),
        ("normal", normal),
        ("critical", critical),
    ] {
        let (r, _, ended) = t.await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{name}");
        ends.push((ended, name));
    }
    // One at a time, 200 ms each: the order they finished in is the order they were let in.
    ends.sort();
    ends.iter().map(|e| e.1).collect()
}

#[tokio::test]
async fn waiting_requests_go_upstream_most_urgent_first() {
    let order = queue_order("{ limit = 1, queue = 10 }\npriority_header = true").await;
    assert_eq!(order, ["first", "critical", "normal", "low"]);
}

#[tokio::test]
async fn without_the_routes_leave_a_client_may_lower_its_priority_but_not_raise_it() {
    let order = queue_order("{ limit = 1, queue = 10 }").await;
    // "critical" is served as normal (after the normal one that came first); "low" is low.
    assert_eq!(order, ["first", "normal", "critical", "low"]);
}

#[tokio::test]
async fn a_key_over_its_concurrency_gets_429_and_an_unknown_priority_400() {
    let up = slow(400).await;
    let key = "fgk_concurrency_test_key";
    let hash = flowgate_config::format_key_hash(&flowgate_admission::keys::hash(key.as_bytes()));
    let gw = gateway(&format!(
        "[auth]\nenabled = true\n\n[[auth.keys]]\nname = \"one-at-a-time\"\nhash = \"{hash}\"\n\
         concurrency = {{ limit = 1, queue = 0 }}\npriority = \"low\"\n\n{}",
        fleet_config(&[up.url()], "")
    ))
    .await;
    let c = client();
    let bearer: &'static str = Box::leak(format!("Bearer {key}").into_boxed_str());
    let first = spawn_chat(&c, &gw, &[("authorization", bearer)]);
    placed(&gw, 1, 0).await;
    // Asking for critical gets the key's own priority, low; it still finds no slot.
    let (second, _) = spawn_chat(
        &c,
        &gw,
        &[
            ("authorization", bearer),
            ("x-flowgate-priority", "critical"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(second.error_code(), "concurrency_limit_exceeded");
    assert!(
        second.error_message().contains("key one-at-a-time"),
        "{}",
        second.error_message()
    );
    assert_eq!(second.headers["retry-after"], "1");
    assert_eq!(first.await.unwrap().0.status, StatusCode::OK);
    let (bad, _) = spawn_chat(
        &c,
        &gw,
        &[("authorization", bearer), ("x-flowgate-priority", "urgent")],
    )
    .await
    .unwrap();
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error_code(), "invalid_priority");
    assert_eq!(up.stats().requests, 1);
}

#[tokio::test]
async fn a_pool_limit_counts_the_requests_of_every_route_to_it_and_streams_hold_their_permit() {
    let up = sim(EndpointSpec {
        token_delay: Duration::from_millis(40),
        ..EndpointSpec::default()
    })
    .await;
    let gw = gateway(&fleet_config(
        &[up.url()],
        "concurrency = { limit = 1, queue = 0 }\n",
    ))
    .await;
    let c = client();
    // A stream of 16 tokens, 40 ms apart: the permit is held until its last one.
    let (c2, addr) = (c.clone(), gw.data_addr);
    let stream = tokio::spawn(async move {
        send(&c2, post(addr, "/v1/chat/completions", chat_body(true))).await
    });
    placed(&gw, 1, 0).await;
    let busy = send(&c, get(gw.data_addr, "/echo/x")).await;
    assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        busy.error_message().contains("pool llm"),
        "{}",
        busy.error_message()
    );
    assert_eq!(stream.await.unwrap().status, StatusCode::OK);
    assert_eq!(
        send(&c, get(gw.data_addr, "/echo/x")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_adaptive_pool_limit_learns_from_the_time_to_the_first_token() {
    // 100 ms to the first token, then 16 tokens 40 ms apart: a stream lasts about 740 ms.
    let up = sim(EndpointSpec {
        latency: LatencyDist::Fixed(Duration::from_millis(100)),
        token_delay: Duration::from_millis(40),
        ..EndpointSpec::default()
    })
    .await;
    let gw = gateway(&fleet_config(
        &[up.url()],
        "concurrency = { limit = 4, adaptive = { min = 2, max = 8 } }\n",
    ))
    .await;
    let c = client();
    let body = bytes::Bytes::from_static(
        br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"max_tokens":16}"#,
    );
    for _ in 0..3 {
        let start = std::time::Instant::now();
        let r = send(&c, post(gw.data_addr, "/v1/chat/completions", body.clone())).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            start.elapsed() >= Duration::from_millis(600),
            "{:?}",
            start.elapsed()
        );
    }
    let l = &limiters(&gw).await[0];
    assert_eq!(
        (l["scope"].as_str(), l["name"].as_str()),
        (Some("pool"), Some("llm"))
    );
    assert_eq!(
        (l["adaptive"]["min"].as_u64(), l["adaptive"]["max"].as_u64()),
        (Some(2), Some(8))
    );
    let recent = l["adaptive"]["recent_latency_ms"].as_f64().unwrap();
    assert!(
        (90.0..400.0).contains(&recent),
        "the first token's latency, not the whole stream's: {recent} ms"
    );
    // One request at a time uses less than half of the limit: it does not grow.
    assert_eq!(l["limit"], 4);
}
