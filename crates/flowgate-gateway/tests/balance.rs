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
