//! `POST /api/v1/performance/load-balancer/optimize` on real traffic: a round-robin pool
//! over a fast and a slow endpoint is told to pick by latency, with the endpoints'
//! latencies as evidence and the mean latency expected; applied, the pool balances by
//! p2c_ewma (listed among the changes in force); reverted, by round robin again. A
//! weighted pool gets weights by speed. Bad bodies 400, an unknown pool 404.
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

const OPTIMIZE: &str = "/api/v1/performance/load-balancer/optimize";

/// A fast (5 ms) and a slow (60 ms) endpoint in pool `llm` balanced by `strategy`, with
/// 40 requests served through it.
async fn served(strategy: &str) -> (Running, [flowgate_sim::SimServer; 2]) {
    let at = |ms| {
        sim(EndpointSpec {
            latency: LatencyDist::Fixed(Duration::from_millis(ms)),
            ..EndpointSpec::default()
        })
    };
    let ups = [at(5).await, at(60).await];
    let urls: Vec<String> = ups.iter().map(|u| u.url()).collect();
    let gw = gateway(&fleet_config(&urls, &format!("strategy = \"{strategy}\""))).await;
    let c = client();
    for _ in 0..40 {
        let r = send(
            &c,
            post(gw.data_addr, "/v1/chat/completions", chat_body(false)),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    (gw, ups)
}

async fn strategy_of(gw: &Running) -> String {
    let (_, m) = admin(gw, "GET", "/api/v1/performance/load-balancer/metrics", "").await;
    m["pools"][0]["strategy"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_blind_pool_is_told_to_pick_by_latency_applied_and_reverted() {
    let (gw, _ups) = served("round_robin").await;
    let (code, v) = admin(&gw, "POST", OPTIMIZE, "{}").await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let pool = &v["pools"][0];
    assert_eq!(pool["pool"], "llm");
    let eps = pool["evidence"]["endpoints"].as_array().unwrap();
    assert_eq!(eps.len(), 2);
    // Round robin: 20 answers each, and latencies as measured.
    assert!(eps.iter().all(|e| e["answers"] == 20), "{v}");
    let (fast, slow) = (
        eps[0]["latency_ms"].as_f64().unwrap(),
        eps[1]["latency_ms"].as_f64().unwrap(),
    );
    assert!(fast >= 5.0 && slow >= 60.0 && slow > 3.0 * fast, "{v}");
    let p = &pool["proposals"][0];
    assert_eq!(p["kind"], "strategy", "{v}");
    assert_eq!(
        (p["from"].as_str(), p["to"].as_str()),
        (Some("round_robin"), Some("p2c_ewma"))
    );
    assert_eq!(p["change"], "[pools.llm] strategy = \"p2c_ewma\"");
    assert_eq!(p["applicable"], true);
    let e = &p["expected"];
    let (now, then) = (
        e["mean_latency_ms_now"].as_f64().unwrap(),
        e["mean_latency_ms_expected"].as_f64().unwrap(),
    );
    assert!((now - (fast + slow) / 2.0).abs() < 1e-6, "{v}");
    assert!(then < now * 0.9 && then > fast, "{v}");
    assert_eq!(v["applied"], 0);
    assert_eq!(strategy_of(&gw).await, "round_robin");

    let (_, v) = admin(&gw, "POST", OPTIMIZE, "{\"apply\": true}").await;
    assert_eq!(v["applied"], 1, "{v}");
    assert_eq!(v["pools"][0]["proposals"][0]["was"], "round_robin", "{v}");
    assert_eq!(strategy_of(&gw).await, "p2c_ewma");
    let (_, rules) = admin(&gw, "GET", "/api/v1/automation/rules", "").await;
    assert!(
        rules["in_force"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["rule"] == "api:lb-optimize:llm:strategy"),
        "{rules}"
    );
    // The rebuilt pool serves.
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", chat_body(false)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);

    let (code, v) = admin(&gw, "POST", OPTIMIZE, "{\"revert\": true}").await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(
        v["reverted"],
        serde_json::json!(["pool llm balanced by p2c_ewma"])
    );
    assert_eq!(strategy_of(&gw).await, "round_robin");
}

#[tokio::test]
async fn a_weighted_pool_gets_weights_by_speed() {
    let (gw, _ups) = served("weighted").await;
    let (_, v) = admin(
        &gw,
        "POST",
        &format!("{OPTIMIZE}?pool=llm"),
        "{\"apply\": true}",
    )
    .await;
    let p = &v["pools"][0]["proposals"][0];
    assert_eq!(p["kind"], "weights", "{v}");
    let (a, b) = (
        p["to"][0]["weight"]
            .as_u64()
            .unwrap_or_else(|| panic!("{v}")),
        p["to"][1]["weight"]
            .as_u64()
            .unwrap_or_else(|| panic!("{v}")),
    );
    assert_eq!(a, 100, "{v}");
    assert!(b < 20, "{v}");
    assert_eq!(v["applied"], 1, "{v}");
    let (_, m) = admin(&gw, "GET", "/api/v1/performance/load-balancer/metrics", "").await;
    let weights: Vec<u64> = m["pools"][0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["weight"].as_u64().unwrap())
        .collect();
    assert_eq!(weights, vec![a, b], "{m}");
}

#[tokio::test]
async fn bad_bodies_are_400_an_unknown_pool_404_and_a_quiet_pool_says_why() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&fleet_config(&[up.url()], "")).await;
    for (body, says) in [
        ("nonsense", "not JSON"),
        ("[]", "JSON object"),
        ("{\"apply\": 1}", "apply: 1 is not true or false"),
        ("{\"apply\": true, \"revert\": true}", "not both"),
        ("{\"pools\": []}", "unknown field \"pools\""),
    ] {
        let (code, v) = admin(&gw, "POST", OPTIMIZE, body).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{body}: {v}");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.contains(says), "{body}: {m}");
    }
    let (code, v) = admin(&gw, "POST", &format!("{OPTIMIZE}?pool=nowhere"), "").await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"]["code"], "pool_not_found");
    let (code, v) = admin(&gw, "POST", OPTIMIZE, "").await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["pools"][0]["proposals"], serde_json::json!([]));
    assert!(
        v["pools"][0]["none_because"]
            .as_str()
            .unwrap()
            .contains("fewer than two"),
        "{v}"
    );
}
