//! `POST /api/v1/performance/cache/optimize` on a manual clock: a category whose answers
//! are asked again ten seconds after their 60 s TTL gets a longer TTL proposed with its
//! evidence; applied (and shown in the cache's strategies), an answer is still a hit 70 s
//! later; reverted, it is a miss again.
//! Bad bodies get 400, a gateway without a cache 404.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use common::*;
use http::StatusCode;

async fn ask(gw: &flowgate_gateway::Running, content: &str) -> String {
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", chat(0.0, content)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    cache_header(&r).to_string()
}

#[tokio::test]
async fn a_longer_ttl_is_proposed_applied_and_reverted() {
    let up = switchable_upstream(Arc::new(AtomicBool::new(false))).await;
    let clock = flowgate_clock::ManualClock::at_epoch_2026();
    let cfg = format!(
        "[cache]\nenabled = true\n\n\
         [[cache.categories]]\nname = \"faq\"\npath = \"/v1\"\nttl = \"60s\"\n\n\
         [pools.llm]\nendpoints = [{{ url = \"{up}\" }}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n"
    );
    let gw = gateway_on(clock.shared(), &cfg).await;
    // Nothing to say yet.
    let (code, v) = admin(&gw, "POST", "/api/v1/performance/cache/optimize", "{}").await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["proposals"], serde_json::json!([]), "{v}");
    // Each question asked again 10 s after its answer expired.
    for i in 0..12 {
        let q = format!("question {i}");
        assert_eq!(ask(&gw, &q).await, "miss");
        clock.advance(Duration::from_secs(70));
        assert_eq!(ask(&gw, &q).await, "miss");
    }
    let (_, v) = admin(&gw, "POST", "/api/v1/performance/cache/optimize", "").await;
    let p = &v["proposals"][0];
    assert_eq!(p["kind"], "longer_ttl", "{v}");
    assert_eq!(p["category"], "faq");
    assert_eq!(p["applicable"], true);
    assert!(p.get("applied").is_none(), "{v}");
    let e = &p["evidence"];
    assert_eq!(
        (
            e["misses"].as_u64(),
            e["misses_of_expired_answers"].as_u64()
        ),
        (Some(24), Some(12)),
        "{v}"
    );
    // 10 s past a 60 s TTL: a quarter of a TTL more answers them.
    assert_eq!(e["suggested_ttl_seconds"], 75, "{v}");
    assert_eq!(v["applied"], 0);

    let (_, v) = admin(
        &gw,
        "POST",
        "/api/v1/performance/cache/optimize",
        "{\"apply\": true}",
    )
    .await;
    assert_eq!(v["applied"], 1, "{v}");
    assert_eq!(v["proposals"][0]["applied"], true, "{v}");
    assert_eq!(v["proposals"][0]["was"], "TTL 1m", "{v}");
    let (_, r) = admin(&gw, "GET", "/api/v1/automation/rules", "").await;
    assert_eq!(r["in_force"][0]["rule"], "api:cache-optimize:faq", "{r}");
    // The strategies in force say so, and the category's answers now keep 75 s.
    let ttl = |v: &serde_json::Value| v["categories"][0]["ttl_seconds"].as_f64();
    let (_, st) = admin(&gw, "GET", "/api/v1/performance/cache/strategies", "").await;
    assert_eq!(
        (st["categories"][0]["name"].as_str(), ttl(&st)),
        (Some("faq"), Some(75.0)),
        "{st}"
    );
    assert_eq!(st["routes"][0]["mode"], "deterministic", "{st}");
    assert_eq!(ask(&gw, "after").await, "miss");
    clock.advance(Duration::from_secs(70));
    assert!(ask(&gw, "after").await.starts_with("hit"));

    let (_, v) = admin(
        &gw,
        "POST",
        "/api/v1/performance/cache/optimize",
        "{\"revert\": true}",
    )
    .await;
    assert_eq!(v["reverted"][0], "cache category faq's TTL 75s", "{v}");
    let (_, r) = admin(&gw, "GET", "/api/v1/automation/rules", "").await;
    assert_eq!(r["in_force"], serde_json::json!([]), "{r}");
    let (_, st) = admin(&gw, "GET", "/api/v1/performance/cache/strategies", "").await;
    assert_eq!(ttl(&st), Some(60.0), "{st}");
    assert_eq!(ask(&gw, "reverted").await, "miss");
    clock.advance(Duration::from_secs(70));
    assert_eq!(ask(&gw, "reverted").await, "miss");

    for bad in [
        "{\"apply\": \"yes\"}",
        "{\"tune\": true}",
        "[1]",
        "{\"apply\": true, \"revert\": true}",
        "{",
    ] {
        let (code, e) = admin(&gw, "POST", "/api/v1/performance/cache/optimize", bad).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{bad}: {e}");
        assert_eq!(e["error"]["code"], "invalid_request", "{bad}: {e}");
    }
    gw.shutdown();

    let plain = gateway(&format!(
        "[pools.llm]\nendpoints = [{{ url = \"{up}\" }}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n"
    ))
    .await;
    let (code, _) = admin(&plain, "POST", "/api/v1/performance/cache/optimize", "{}").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    plain.shutdown();
}
