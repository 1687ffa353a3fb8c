//! The performance report and the recommendations of a serving gateway, on a manual clock
//! moved a minute at a time: the report holds the minutes of traffic, latency and errors
//! it served, the score, and says why there is no forecast yet; bad windows get 400.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use common::*;
use http::StatusCode;

#[tokio::test]
async fn the_report_holds_what_was_served() {
    let url = switchable_upstream(Arc::new(AtomicBool::new(false))).await;
    let clock = flowgate_clock::ManualClock::at_epoch_2026();
    let cfg = format!(
        "[pools.llm]\nendpoints = [{{ url = \"{url}\" }}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n"
    );
    let gw = gateway_on(clock.shared(), &cfg).await;
    for _ in 0..3 {
        chat_minute(&gw, &clock, 6).await;
    }
    let (code, r) = admin(&gw, "GET", "/api/v1/performance/report?window=1h", "").await;
    assert_eq!(code, StatusCode::OK, "{r}");
    let served: f64 = r["traffic"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_f64().unwrap() * 60.0)
        .sum();
    assert!(
        (served - 18.0).abs() < 0.5,
        "18 requests in the minutes: {r}"
    );
    assert_eq!(r["resolution"], "1m");
    assert_eq!(r["window"]["seconds"], 3600);
    assert_eq!(r["traffic"][0]["route"], "chat");
    assert!(
        !r["latency_ms"][0]["p95"].as_array().unwrap().is_empty(),
        "{r}"
    );
    assert_eq!(r["errors"][0]["route"], "chat");
    assert!(
        r["forecast"]["why_none"]
            .as_str()
            .unwrap()
            .contains("a forecast needs two days"),
        "{r}"
    );
    assert!(r["score"]["score"].as_u64().is_some(), "{r}");
    assert!(r["findings"].is_array() && r["recommendations"].is_array());

    let (code, recs) = admin(&gw, "GET", "/api/v1/performance/recommendations", "").await;
    assert_eq!(code, StatusCode::OK, "{recs}");
    assert!(recs["recommendations"].is_array(), "{recs}");
    assert!(recs["cost_unread"].is_null(), "{recs}");

    for bad in ["window=30s", "window=90d", "window=soon"] {
        let (code, e) = admin(&gw, "GET", &format!("/api/v1/performance/report?{bad}"), "").await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{bad}: {e}");
        assert_eq!(e["error"]["code"], "invalid_parameter");
    }
    gw.shutdown();
}
