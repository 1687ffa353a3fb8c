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
use std::time::Duration;

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
    let c = client();
    for _ in 0..3 {
        for _ in 0..6 {
            send(
                &c,
                post(gw.data_addr, "/v1/chat/completions", chat_body(false)),
            )
            .await
            .expect(StatusCode::OK);
        }
        // A record is sent as its answer's body ends: let the last ones land in this minute.
        tokio::time::sleep(Duration::from_millis(300)).await;
        clock.advance(Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    // The last minute is written at the writer's next tick (within a second or so).
    let served = |r: &serde_json::Value| -> f64 {
        r["traffic"][0]["points"].as_array().map_or(0.0, |ps| {
            ps.iter().map(|p| p[1].as_f64().unwrap() * 60.0).sum()
        })
    };
    let start = std::time::Instant::now();
    let r = loop {
        let (code, r) = admin(&gw, "GET", "/api/v1/performance/report?window=1h", "").await;
        assert_eq!(code, StatusCode::OK, "{r}");
        if (served(&r) - 18.0).abs() < 0.5 {
            break r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "18 requests in the minutes: {r}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
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
