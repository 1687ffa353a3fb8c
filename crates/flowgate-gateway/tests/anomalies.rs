//! Anomaly detection on a serving gateway's history, on a manual clock moved a minute at a
//! time: a chat route at a steady rate (a request more or less) for a quarter of an hour,
//! then a minute at thirty times the rate. The detectors open an anomaly on the route's
//! request rate; it is in `GET /api/v1/anomalies`, lowers the health score, and fires the
//! rule of kind `anomaly`.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use common::*;
use http::StatusCode;

const RPS: &str = "requests_per_second{route=\"chat\"}";

async fn open(gw: &flowgate_gateway::Running) -> serde_json::Value {
    admin(gw, "GET", "/api/v1/anomalies?state=open", "").await.1
}

#[tokio::test]
async fn a_burst_opens_an_anomaly_that_the_api_the_score_and_a_rule_see() {
    let url = switchable_upstream(Arc::new(AtomicBool::new(false))).await;
    let clock = flowgate_clock::ManualClock::at_epoch_2026();
    let cfg = format!(
        "[[alerts.rules]]\nname = \"chat-rate-anomaly\"\nkind = \"anomaly\"\n\
         series = '{RPS}'\nvalue = 0.9\n\n\
         [pools.llm]\nendpoints = [{{ url = \"{url}\" }}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n"
    );
    let gw = gateway_on(clock.shared(), &cfg).await;
    let (_, rules) = admin(&gw, "GET", "/api/v1/alerts/rules", "").await;
    assert_eq!(
        rules["rules"][0]["watches"],
        format!("an anomaly on {RPS} scoring 0.9 or more")
    );
    // A steady rate with a little noise (a request more or less a minute): the detector
    // learns that spread. Each minute holds exactly its requests (`chat_minute` waits for
    // them to be counted before it moves the clock).
    for n in [3, 4, 3, 5, 4, 3, 4, 5, 3, 4, 4, 3, 5, 4, 3, 4] {
        chat_minute(&gw, &clock, n).await;
    }
    let v = open(&gw).await;
    assert_eq!(v["enabled"], true, "{v}");
    assert!(v["tracked"].as_u64().unwrap() >= 1, "{v}");
    let on_rps = |v: &serde_json::Value| {
        v["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["series"] == RPS)
            .cloned()
    };
    assert!(on_rps(&v).is_none(), "a steady rate is no anomaly: {v}");

    chat_minute(&gw, &clock, 120).await;
    let start = Instant::now();
    let a = loop {
        let v = open(&gw).await;
        if let Some(a) = on_rps(&v) {
            break a;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no anomaly: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(a["direction"], "up", "{a}");
    assert_eq!(a["value"], 2.0, "120 requests in the minute: {a}");
    assert!(a["score"].as_f64().unwrap() >= 0.9, "{a}");
    assert!(a["expected"].as_f64().unwrap() < 0.1, "{a}");
    assert!(a["ended"].is_null());
    assert!(
        a["summary"].as_str().unwrap().contains("went up to 2"),
        "{a}"
    );

    let (_, score) = admin(&gw, "GET", "/api/v1/performance/score", "").await;
    let part = score["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "anomalies")
        .unwrap_or_else(|| panic!("{score}"))
        .clone();
    assert!(part["score"].as_f64().unwrap() < 100.0, "{part}");
    assert!(
        part["why"]
            .as_str()
            .unwrap()
            .contains("requests_per_second{"),
        "{part}"
    );

    let start = Instant::now();
    loop {
        let (_, alerts) = admin(&gw, "GET", "/api/v1/alerts", "").await;
        let firing = alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["rule"] == "chat-rate-anomaly" && x["status"] == "firing");
        if firing {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{alerts}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Filters, and bad parameters.
    let (_, none) = admin(&gw, "GET", "/api/v1/anomalies?series=error_ratio*", "").await;
    assert_eq!(none["anomalies"].as_array().unwrap().len(), 0, "{none}");
    let (code, bad) = admin(&gw, "GET", "/api/v1/anomalies?state=closed", "").await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{bad}");
    assert_eq!(bad["error"]["code"], "invalid_parameter");
    let (code, _) = admin(&gw, "GET", "/api/v1/anomalies?from=9&to=1", "").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    gw.shutdown();
}
