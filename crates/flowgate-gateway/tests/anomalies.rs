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

/// Sends `n` chats, lets their records reach the history, then moves the clock a minute
/// on and waits for the history's writer to have closed that minute (it wakes each second
/// of the clock, at most a second later).
async fn minute(gw: &flowgate_gateway::Running, clock: &flowgate_clock::ManualClock, n: usize) {
    let c = client();
    for _ in 0..n {
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
    // A steady rate with a little noise (a request more or less a minute, as a busy
    // machine may also shift one into the next minute): the detector learns that spread.
    for n in [3, 4, 3, 5, 4, 3, 4, 5, 3, 4, 4, 3, 5, 4, 3, 4] {
        minute(&gw, &clock, n).await;
    }
    let v = open(&gw).await;
    assert_eq!(v["enabled"], true, "{v}");
    assert!(v["tracked"].as_u64().unwrap() >= 1, "{v}");
    // Whether a quarter of an hour of a few requests a minute already alarms depends on
    // how a loaded machine spreads them over minutes: that the detector keeps quiet on
    // steady series is its own tests' business (`flowgate-insight`), not this one's.

    minute(&gw, &clock, 120).await;
    let start = Instant::now();
    let v = loop {
        let v = open(&gw).await;
        // The burst's minute (120 requests: 2 a second; a loaded machine may shift a few
        // into the next minute).
        if v["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["series"] == RPS && a["value"].as_f64().unwrap() >= 1.5)
        {
            break v;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no anomaly: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let a = v["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["series"] == RPS && a["value"].as_f64().unwrap() >= 1.5)
        .unwrap();
    assert_eq!(a["direction"], "up", "{a}");
    assert!(
        a["value"].as_f64().unwrap() >= 1.5,
        "120 requests in the minute: {a}"
    );
    assert!(a["score"].as_f64().unwrap() >= 0.9, "{a}");
    assert!(a["expected"].as_f64().unwrap() < 0.1, "{a}");
    assert!(a["ended"].is_null());
    assert!(
        a["summary"].as_str().unwrap().contains("went up to "),
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
