//! The load balancer through the admin API: what it reports, and switching a pool's
//! strategy at run time.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use bytes::Bytes;
use common::*;
use flowgate_sim::EndpointSpec;
use http::StatusCode;
use std::time::Duration;

#[tokio::test]
async fn a_pool_reports_its_endpoints_and_switches_strategy_at_run_time() {
    let ups = [
        sim(EndpointSpec::default()).await,
        sim(EndpointSpec::default()).await,
        sim(EndpointSpec::default()).await,
    ];
    let urls: Vec<String> = ups.iter().map(|u| u.url()).collect();
    let gw = gateway(&fleet_config(&urls, "")).await;
    let c = client();
    let admin = |path: &str, body: &'static str| {
        post(gw.admin_addr, path, Bytes::from_static(body.as_bytes()))
    };
    let chat = || post(gw.data_addr, "/v1/chat/completions", chat_body(false));
    for _ in 0..6 {
        assert_eq!(send(&c, chat()).await.status, StatusCode::OK);
    }
    let m = send(
        &c,
        get(gw.admin_addr, "/api/v1/performance/load-balancer/metrics"),
    )
    .await
    .json();
    let pool = &m["pools"][0];
    assert_eq!(
        (pool["pool"].as_str(), pool["strategy"].as_str()),
        (Some("llm"), Some("p2c_ewma"))
    );
    assert_eq!(pool["endpoints"].as_array().unwrap().len(), 3);
    // Those that answered have a latency estimate; nothing is in flight now.
    assert!(
        pool["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["latency_ms"].as_f64().unwrap() > 0.0)
    );
    assert!(
        pool["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["in_flight"] == 0)
    );

    let r = send(
        &c,
        admin(
            "/api/v1/performance/load-balancer/strategy",
            r#"{"pool":"llm","strategy":"round_robin"}"#,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        (r.json()["strategy"].as_str(), r.json()["was"].as_str()),
        (Some("round_robin"), Some("p2c_ewma"))
    );
    let before: Vec<u64> = ups.iter().map(|u| u.stats().requests).collect();
    for _ in 0..30 {
        assert_eq!(send(&c, chat()).await.status, StatusCode::OK);
    }
    for (u, b) in ups.iter().zip(before) {
        assert_eq!(u.stats().requests - b, 10);
    }

    for (body, status, says) in [
        (
            r#"{"pool":"llm","strategy":"fastest"}"#,
            StatusCode::BAD_REQUEST,
            "unknown strategy \"fastest\"",
        ),
        (
            r#"{"pool":"nope","strategy":"random"}"#,
            StatusCode::NOT_FOUND,
            "no pool named \"nope\"",
        ),
        (
            r#"{"pool":"llm"}"#,
            StatusCode::BAD_REQUEST,
            "expected {\"pool\": NAME, \"strategy\": NAME}",
        ),
    ] {
        let r = send(
            &c,
            admin("/api/v1/performance/load-balancer/strategy", body),
        )
        .await;
        assert_eq!(r.status, status, "{body}");
        assert!(
            r.error_message().contains(says),
            "{body}: {}",
            r.error_message()
        );
    }
}

/// `n` chat requests: how many answered 200, and how many needed a second attempt.
async fn run(gw: &flowgate_gateway::Running, n: usize) -> (usize, usize) {
    let c = client();
    let (mut ok, mut retried) = (0, 0);
    for _ in 0..n {
        let r = send(
            &c,
            post(gw.data_addr, "/v1/chat/completions", chat_body(false)),
        )
        .await;
        ok += usize::from(r.status == StatusCode::OK);
        retried += usize::from(
            r.headers
                .get("x-flowgate-attempts")
                .is_some_and(|v| v == "2"),
        );
    }
    (ok, retried)
}

#[tokio::test]
async fn a_dead_endpoint_is_ejected_gets_no_traffic_and_gets_it_back_after_recovery() {
    let up = sim(EndpointSpec::default()).await;
    let port = dead_port().await;
    let clock = flowgate_clock::ManualClock::at_epoch_2026();
    let gw = gateway_on(
        clock.shared(),
        &fleet_config(
        &[format!("http://127.0.0.1:{port}"), up.url()],
            "strategy = \"round_robin\"\noutlier = { consecutive_failures = 2, base_ejection = \"400ms\" }\n",
        ),
    )
    .await;
    // Two refusals eject it: after that no request tries it first.
    let (ok, retried) = run(&gw, 12).await;
    assert_eq!((ok, retried), (12, 2));
    let m = send(
        &client(),
        get(gw.admin_addr, "/api/v1/performance/load-balancer/metrics"),
    )
    .await
    .json();
    let dead = &m["pools"][0]["endpoints"][0];
    assert_eq!(dead["ejected"], true, "{m}");
    assert_eq!(dead["times_ejected"], 1);
    // It recovers (a server comes up on its port) and its ejection ends: it gets traffic.
    let back = flowgate_sim::SimServer::start(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        EndpointSpec::default(),
    )
    .await
    .unwrap();
    let (ok, retried) = run(&gw, 4).await;
    assert_eq!((ok, retried, back.stats().requests), (4, 0, 0), "still out");
    clock.advance(std::time::Duration::from_millis(400));
    let (ok, retried) = run(&gw, 10).await;
    assert_eq!((ok, retried), (10, 0));
    assert_eq!(back.stats().requests, 5);
}

#[tokio::test]
async fn a_429_with_retry_after_takes_the_endpoint_out_for_that_long() {
    let throttled = sim(EndpointSpec {
        rate_limit_rate: 1.0,
        retry_after_secs: 30,
        ..EndpointSpec::default()
    })
    .await;
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&fleet_config(
        &[throttled.url(), up.url()],
        "strategy = \"round_robin\"\n",
    ))
    .await;
    let (ok, retried) = run(&gw, 11).await;
    // The first request met the 429 and was retried on the other endpoint at once; the
    // rest went there from the start.
    assert_eq!((ok, retried), (11, 1));
    assert_eq!(throttled.stats().requests, 1);
    let m = send(
        &client(),
        get(gw.admin_addr, "/api/v1/performance/load-balancer/metrics"),
    )
    .await
    .json();
    let out = m["pools"][0]["endpoints"][0]["ejected_for_ms"]
        .as_u64()
        .unwrap();
    assert!(out > 29_000 && out <= 30_000, "{out}");
}

/// A pool `llm` of `eps` (url, tag) picking by the `x-analysis-type` header, with `extra`
/// settings, and the chat route.
fn tagged_pool(eps: &[(String, &str)], extra: &str) -> String {
    let tags: Vec<String> = eps
        .iter()
        .map(|(_, t)| format!(", tags = [\"{t}\"]"))
        .collect();
    let eps: Vec<(String, &str)> = eps
        .iter()
        .zip(&tags)
        .map(|((u, _), t)| (u.clone(), t.as_str()))
        .collect();
    pool_of(
        &eps,
        &format!("tag_by = \"header:x-analysis-type\"\n{extra}"),
    )
}

async fn chat_tagged(gw: &flowgate_gateway::Running, tag: Option<&str>) -> StatusCode {
    let mut r = post(gw.data_addr, "/v1/chat/completions", chat_body(false));
    if let Some(t) = tag {
        r.headers_mut()
            .insert("x-analysis-type", t.parse().unwrap());
    }
    send(&client(), r).await.status
}

#[tokio::test]
async fn a_request_tag_selects_the_endpoints_carrying_it_and_falls_back_when_they_are_out() {
    let security = sim(EndpointSpec::default()).await;
    let (cost1, cost2) = (
        sim(EndpointSpec::default()).await,
        sim(EndpointSpec::default()).await,
    );
    let gw = gateway(&tagged_pool(
        &[
            (security.url(), "security"),
            (cost1.url(), "cost"),
            (cost2.url(), "cost"),
        ],
        "strategy = \"round_robin\"\n",
    ))
    .await;
    for _ in 0..4 {
        assert_eq!(chat_tagged(&gw, Some("security")).await, StatusCode::OK);
    }
    assert_eq!(security.stats().requests, 4);
    for _ in 0..4 {
        assert_eq!(chat_tagged(&gw, Some("cost")).await, StatusCode::OK);
    }
    let (c1, c2) = (cost1.stats().requests, cost2.stats().requests);
    assert!(c1 + c2 == 4 && c1 > 0 && c2 > 0, "{c1} {c2}");
    // No tag, or a tag no endpoint has: any endpoint.
    for _ in 0..6 {
        assert_eq!(chat_tagged(&gw, None).await, StatusCode::OK);
        assert_eq!(chat_tagged(&gw, Some("unknown")).await, StatusCode::OK);
    }
    assert_eq!(
        security.stats().requests + cost1.stats().requests + cost2.stats().requests,
        20
    );

    // The only security endpoint is unreachable: with fallback the request goes to the
    // others; without, it is refused.
    let dead = format!("http://127.0.0.1:{}", dead_port().await);
    let cost = sim(EndpointSpec::default()).await;
    let eps = [(dead, "security"), (cost.url(), "cost")];
    let gw = gateway(&tagged_pool(
        &eps,
        "outlier = { consecutive_failures = 1 }\n",
    ))
    .await;
    assert_eq!(chat_tagged(&gw, Some("security")).await, StatusCode::OK);
    assert_eq!(chat_tagged(&gw, Some("security")).await, StatusCode::OK);
    let strict = gateway(&tagged_pool(
        &eps,
        "outlier = { consecutive_failures = 1 }\ntag_fallback = false\n",
    ))
    .await;
    // The first try meets the dead endpoint (502, no other tagged one to retry on) and
    // ejects it; then nothing carries the tag.
    assert_eq!(
        chat_tagged(&strict, Some("security")).await,
        StatusCode::BAD_GATEWAY
    );
    let r = send(&client(), {
        let mut r = post(strict.data_addr, "/v1/chat/completions", chat_body(false));
        r.headers_mut()
            .insert("x-analysis-type", "security".parse().unwrap());
        r
    })
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        r.error_message().contains("tagged \"security\""),
        "{}",
        r.error_message()
    );
}

async fn chat_in(gw: &flowgate_gateway::Running, session: &str) -> Reply {
    let mut r = post(gw.data_addr, "/v1/chat/completions", chat_body(false));
    r.headers_mut()
        .insert("x-session-id", session.parse().unwrap());
    send(&client(), r).await
}

fn upstream_of(r: &Reply) -> String {
    r.headers["x-flowgate-upstream"]
        .to_str()
        .unwrap()
        .to_string()
}

async fn lb_metrics(gw: &flowgate_gateway::Running) -> serde_json::Value {
    send(
        &client(),
        get(gw.admin_addr, "/api/v1/performance/load-balancer/metrics"),
    )
    .await
    .json()
}

#[tokio::test]
async fn a_session_sticks_to_its_endpoint_up_to_the_cap_and_moves_when_it_fails() {
    // The first endpoint answers three requests, then only 503s.
    let (flaky, _) = scripted_upstream({
        let calls = std::sync::atomic::AtomicUsize::new(0);
        move |_| {
            let code = if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 3 {
                "200 OK"
            } else {
                "503 Busy"
            };
            format!(
                "HTTP/1.1 {code}\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
            )
        }
    })
    .await;
    let (b, c) = (
        sim(EndpointSpec::default()).await,
        sim(EndpointSpec::default()).await,
    );
    let gw = gateway(&fleet_config(
        &[flaky.clone(), b.url(), c.url()],
        "strategy = \"round_robin\"\naffinity = { max_sessions = 1 }\n\
         outlier = { consecutive_failures = 1, max_ejected_percent = 34 }\n",
    ))
    .await;
    // Round robin would rotate; the session stays where it started.
    let home = upstream_of(&chat_in(&gw, "alice").await);
    assert_eq!(home, flaky.trim_start_matches("http://"));
    for _ in 0..2 {
        assert_eq!(upstream_of(&chat_in(&gw, "alice").await), home);
    }
    let bob = upstream_of(&chat_in(&gw, "bob").await);
    assert_eq!(bob, b.url().trim_start_matches("http://"));
    // Alice's endpoint fails (her answer comes from a retry elsewhere) and is ejected: her
    // next request moves to the endpoint without a session, counted, and stays there.
    let r = chat_in(&gw, "alice").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-flowgate-attempts"], "2");
    let moved_to = upstream_of(&chat_in(&gw, "alice").await);
    assert_eq!(moved_to, c.url().trim_start_matches("http://"));
    assert_eq!(upstream_of(&chat_in(&gw, "alice").await), moved_to);
    // Every endpoint that can take a session has its one: a new session goes over a cap,
    // counted.
    let carol = upstream_of(&chat_in(&gw, "carol").await);
    assert_ne!(carol, home);
    let m = lb_metrics(&gw).await;
    let sessions = &m["pools"][0]["sessions"];
    assert_eq!(
        (
            sessions["moved"].as_u64(),
            sessions["overflow"].as_u64(),
            sessions["active"].as_u64()
        ),
        (Some(1), Some(1), Some(3)),
        "{m}"
    );
    let on: Vec<u64> = (0..3)
        .map(|i| m["pools"][0]["endpoints"][i]["sessions"].as_u64().unwrap())
        .collect();
    assert_eq!(on[0], 0, "alice left the failed endpoint: {on:?}");
    assert_eq!(on.iter().sum::<u64>(), 3);
}

#[tokio::test]
async fn idle_sessions_expire_and_their_endpoint_takes_new_ones() {
    let (a, b) = (
        sim(EndpointSpec::default()).await,
        sim(EndpointSpec::default()).await,
    );
    let clock = flowgate_clock::ManualClock::at_epoch_2026();
    let gw = gateway_on(
        clock.shared(),
        &fleet_config(
            &[a.url(), b.url()],
            "strategy = \"round_robin\"\naffinity = { max_sessions = 1, idle_timeout = \"1m\" }\n",
        ),
    )
    .await;
    let first = upstream_of(&chat_in(&gw, "s1").await);
    let second = upstream_of(&chat_in(&gw, "s2").await);
    assert_ne!(first, second);
    clock.advance(Duration::from_secs(30));
    // s1 is used again: its idle time starts over; s2 is not.
    assert_eq!(upstream_of(&chat_in(&gw, "s1").await), first);
    clock.advance(Duration::from_secs(31));
    assert_eq!(gw.gateway.sweep_sessions(), 1);
    // s2's place is free: a new session gets it, without going over a cap.
    assert_eq!(upstream_of(&chat_in(&gw, "s3").await), second);
    let m = lb_metrics(&gw).await;
    let sessions = &m["pools"][0]["sessions"];
    assert_eq!(
        (sessions["expired"].as_u64(), sessions["overflow"].as_u64()),
        (Some(1), Some(0)),
        "{m}"
    );
}

/// A pool `llm` over `eps` (url, extra endpoint fields), with `extra` settings, and the chat
/// route.
fn pool_of(eps: &[(String, &str)], extra: &str) -> String {
    let eps: Vec<String> = eps
        .iter()
        .map(|(u, more)| format!("{{ url = \"{u}\"{more} }}"))
        .collect();
    format!(
        "[pools.llm]\nendpoints = [{}]\n{extra}\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n",
        eps.join(", ")
    )
}

#[tokio::test]
async fn a_lower_priority_level_takes_traffic_only_when_the_first_fails() {
    let (a, b, backup) = (
        sim(EndpointSpec::default()).await,
        sim(EndpointSpec::default()).await,
        sim(EndpointSpec::default()).await,
    );
    let (flaky, _) = canned_upstream(
        "HTTP/1.1 503 Busy\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}".into(),
    )
    .await;
    let gw = gateway(&pool_of(
        &[
            (a.url(), ""),
            (b.url(), ""),
            (backup.url(), ", priority = 1"),
        ],
        "",
    ))
    .await;
    for _ in 0..30 {
        assert_eq!(chat_in(&gw, "").await.status, StatusCode::OK);
    }
    assert_eq!(backup.stats().requests, 0);
    assert_eq!(a.stats().requests + b.stats().requests, 30);

    // The first level fails entirely: the second takes over, with no config change.
    let gw = gateway(&pool_of(
        &[(flaky, ""), (backup.url(), ", priority = 1")],
        "outlier = { consecutive_failures = 1 }\n",
    ))
    .await;
    let r = chat_in(&gw, "").await;
    assert_eq!(
        (r.status, &r.headers["x-flowgate-attempts"]),
        (StatusCode::OK, &"2".parse::<http::HeaderValue>().unwrap())
    );
    let before = backup.stats().requests;
    for _ in 0..10 {
        let r = chat_in(&gw, "").await;
        assert_eq!(r.headers["x-flowgate-attempts"], "1");
    }
    assert_eq!(backup.stats().requests - before, 10);
}

#[tokio::test]
async fn requests_stay_in_their_region_and_cross_over_when_it_is_down() {
    let (eu, us) = (
        sim(EndpointSpec::default()).await,
        sim(EndpointSpec::default()).await,
    );
    let dead = dead_port().await;
    let config = pool_of(
        &[
            (eu.url(), ", region = \"eu\""),
            (us.url(), ", region = \"us\""),
            (format!("http://127.0.0.1:{dead}"), ", region = \"ap\""),
        ],
        "region_header = \"x-client-region\"\noutlier = { consecutive_failures = 1 }\n",
    );
    let gw = gateway_with("region = \"eu\"\n", &config).await;
    let from = |region: &'static str| {
        let gw = &gw;
        async move {
            let mut r = post(gw.data_addr, "/v1/chat/completions", chat_body(false));
            if !region.is_empty() {
                r.headers_mut()
                    .insert("x-client-region", region.parse().unwrap());
            }
            upstream_of(&send(&client(), r).await)
        }
    };
    let host = |s: &flowgate_sim::SimServer| s.url().trim_start_matches("http://").to_string();
    for _ in 0..10 {
        assert_eq!(from("us").await, host(&us));
        assert_eq!(from("eu").await, host(&eu));
        // No header: the gateway's own region.
        assert_eq!(from("").await, host(&eu));
    }
    // ap's only endpoint is down: its first request fails over (and ejects it), the rest
    // cross to the other regions at once.
    for _ in 0..10 {
        let got = from("ap").await;
        assert!(got == host(&eu) || got == host(&us), "{got}");
    }
}

#[tokio::test]
async fn health_checks_take_a_failing_endpoint_out_and_bring_it_back() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let healthy = Arc::new(AtomicBool::new(true));
    let probes = Arc::new(AtomicUsize::new(0));
    let (checked, served) = scripted_upstream({
        let (healthy, probes) = (healthy.clone(), probes.clone());
        move |req| {
            // Probes say who they are; anything else on the health path is refused.
            let probe = req.starts_with("GET /health ")
                && req
                    .to_ascii_lowercase()
                    .contains("user-agent: flowgate-health-check");
            let code = if probe {
                probes.fetch_add(1, Ordering::SeqCst);
                if healthy.load(Ordering::SeqCst) {
                    "200 OK"
                } else {
                    "503 Down"
                }
            } else if req.starts_with("GET /health") {
                "404 Not Found"
            } else {
                "200 OK"
            };
            format!("HTTP/1.1 {code}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}")
        }
    })
    .await;
    let other = sim(EndpointSpec::default()).await;
    let gw = gateway(&pool_of(
        &[(checked.clone(), ""), (other.url(), "")],
        "strategy = \"round_robin\"\n\
         health_check = { path = \"/health\", interval = \"40ms\", jitter = \"10ms\", timeout = \"30ms\", healthy = 2, unhealthy = 2 }\n",
    ))
    .await;
    let state = |gw: &flowgate_gateway::Running| {
        let gw = gw.admin_addr;
        async move {
            let m = send(
                &client(),
                get(gw, "/api/v1/performance/load-balancer/metrics"),
            )
            .await
            .json();
            m["pools"][0]["endpoints"][0]["state"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    // Probed, and healthy: in rotation.
    let mut waited = 0;
    while probes.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
        assert!(waited < 200, "never probed");
    }
    assert_eq!(state(&gw).await, "closed");
    // Its health path fails: out after two probes, though it answers requests.
    healthy.store(false, Ordering::SeqCst);
    let mut waited = 0;
    while state(&gw).await != "down" {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
        assert!(waited < 100, "never taken out");
    }
    let before = served.load(Ordering::SeqCst);
    let probes_before = probes.load(Ordering::SeqCst);
    for _ in 0..6 {
        assert_eq!(chat_in(&gw, "").await.status, StatusCode::OK);
    }
    let chats_there =
        served.load(Ordering::SeqCst) - before - (probes.load(Ordering::SeqCst) - probes_before);
    assert_eq!(chats_there, 0, "a down endpoint gets no requests");
    // Healthy again: back after two passing probes.
    healthy.store(true, Ordering::SeqCst);
    let mut waited = 0;
    while state(&gw).await != "closed" {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
        assert!(waited < 100, "never back");
    }
    let metrics = send(&client(), get(gw.admin_addr, "/metrics")).await.body;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("flowgate_upstream_probes_total"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_request_goes_to_the_endpoints_tagged_with_its_model() {
    let (mini, big) = (
        sim(EndpointSpec::default()).await,
        sim(EndpointSpec::default()).await,
    );
    let gw = gateway(&pool_of(
        &[
            (mini.url(), ", tags = [\"gpt-4o-mini\"]"),
            (big.url(), ", tags = [\"gpt-4o\"]"),
        ],
        "tag_by = \"model\"\nstrategy = \"round_robin\"\n",
    ))
    .await;
    // chat_body asks for gpt-4o-mini.
    for _ in 0..6 {
        assert_eq!(chat_in(&gw, "").await.status, StatusCode::OK);
    }
    assert_eq!((mini.stats().requests, big.stats().requests), (6, 0));
    let other = Bytes::from(
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":5}"#,
    );
    for _ in 0..3 {
        let r = send(
            &client(),
            post(gw.data_addr, "/v1/chat/completions", other.clone()),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    assert_eq!((mini.stats().requests, big.stats().requests), (6, 3));
}
