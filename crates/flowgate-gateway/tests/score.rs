//! `GET /api/v1/performance/score` from a serving gateway: healthy while answers succeed,
//! lower, and saying why, once a share of them fail.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use serde_json::Value;

fn component<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {v}"))
}

#[tokio::test]
async fn the_score_falls_with_failures_and_says_why() {
    let failing = Arc::new(AtomicBool::new(false));
    let url = switchable_upstream(failing.clone()).await;
    let cfg = format!(
        "[cache]\nenabled = true\n\n\
         [pools.llm]\nendpoints = [{{ url = \"{url}\" }}]\nretries = {{ attempts = 1 }}\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n"
    );
    let gw = gateway(&cfg).await;
    let (_, v) = admin(&gw, "GET", "/api/v1/performance/score", "").await;
    assert_eq!(v["score"], 100, "{v}");
    assert_eq!(component(&v, "availability")["value"], "no traffic");

    let c = client();
    for i in 0..10 {
        send(
            &c,
            post(
                gw.data_addr,
                "/v1/chat/completions",
                chat(0.0, &format!("q{i}")),
            ),
        )
        .await;
    }
    let (_, v) = admin(&gw, "GET", "/api/v1/performance/score", "").await;
    assert_eq!(v["status"], "healthy", "{v}");
    assert_eq!(component(&v, "availability")["score"], 100.0);
    assert!(
        component(&v, "latency")["value"]
            .as_str()
            .unwrap()
            .ends_with(" ms")
    );
    assert_eq!(component(&v, "upstreams")["score"], 100.0);
    // Ten distinct questions: every lookup missed.
    assert_eq!(component(&v, "cache")["score"], 0.0);
    let weights: f64 = v["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["weight"].as_f64().unwrap())
        .sum();
    assert!((weights - 1.0).abs() < 0.01, "{weights}");

    failing.store(true, Ordering::Relaxed);
    for i in 0..10 {
        send(
            &c,
            post(
                gw.data_addr,
                "/v1/chat/completions",
                chat(0.0, &format!("f{i}")),
            ),
        )
        .await;
    }
    let (_, v) = admin(&gw, "GET", "/api/v1/performance/score", "").await;
    let a = component(&v, "availability");
    assert_eq!(a["score"], 0.0, "{a}");
    assert_eq!(a["value"], "50.0%");
    assert!(a["why"].as_str().unwrap().contains("of 20 answers"), "{a}");
    assert!(v["score"].as_u64().unwrap() < 80, "{v}");
    assert_ne!(v["status"], "healthy");
    assert_eq!(v["components"][0]["score"], 0.0, "worst first");
}
