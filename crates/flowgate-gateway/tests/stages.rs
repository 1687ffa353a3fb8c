//! The bottleneck analysis: every request's latency split into the stages of its path.
//! On the real clock, against a simulated upstream that takes its time to answer and to
//! stream, with a route that lets one request through at a time: Prometheus counts each
//! stage's time (queue, first byte, generation, connect), never more than the clients
//! waited. On a manual clock an upstream that moves the clock 300 ms as it answers makes
//! the first byte take exactly that: the history's `stage_ms`, `GET
//! /api/v1/performance/stages`, the report, the recommendations and an alert rule on the
//! stage's time budget all see it.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use flowgate_sim::{EndpointSpec, LatencyDist};
use http::StatusCode;

#[test]
fn the_config_and_the_telemetry_name_the_same_stages() {
    let telemetry: Vec<&str> = flowgate_telemetry::breakdown::Step::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(telemetry, flowgate_config::STAGES);
}

#[tokio::test]
async fn each_stage_of_real_requests_is_counted() {
    let up = sim(EndpointSpec {
        latency: LatencyDist::Fixed(Duration::from_millis(150)),
        token_delay: Duration::from_millis(20),
        completion_tokens: 10,
        ..EndpointSpec::default()
    })
    .await;
    let gw = gateway(&fleet_config(&[up.url()], "").replace(
        "name = \"chat\"\n",
        "name = \"chat\"\nconcurrency = { limit = 1, queue = 4 }\n",
    ))
    .await;
    // Three whole answers at once through one permit: they wait for each other. Then a
    // stream, whose head comes at once and its tokens after 150 ms, 20 ms apart.
    let timed = |body: bytes::Bytes| async move {
        let started = Instant::now();
        let r = send(&client(), post(gw.data_addr, "/v1/chat/completions", body)).await;
        r.expect(StatusCode::OK);
        started.elapsed().as_secs_f64()
    };
    let (a, b, c) = tokio::join!(
        timed(chat_body(false)),
        timed(chat_body(false)),
        timed(chat_body(false))
    );
    let d = timed(chat_body(true)).await;
    let waited = a + b + c + d;
    let stage = |text: &str, s: &str| {
        metric(
            text,
            &format!("flowgate_request_stage_seconds_total{{route=\"chat\",stage=\"{s}\"}}"),
        )
    };
    let mut text = String::new();
    for _ in 0..500 {
        let m = send(&client(), get(gw.admin_addr, "/metrics")).await;
        text = String::from_utf8_lossy(&m.body).into_owned();
        // The stream's record is the last; its counts land together, a moment apart.
        if stage(&text, "generation") >= 0.18
            && metric(
                &text,
                "flowgate_requests_total{route=\"chat\",pool=\"llm\",status=\"200\"}",
            ) >= 4.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Whole answers come after 150 ms; the stream's tokens after 150 ms (its head with the
    // first, or before) and 9 × 20 ms.
    assert!(stage(&text, "first_byte") >= 3.0 * 0.15, "{text}");
    assert!(stage(&text, "generation") >= 9.0 * 0.02, "{text}");
    assert!(
        stage(&text, "queue") >= 0.1,
        "requests waited for the permit: {text}"
    );
    assert!(
        stage(&text, "connect") > 0.0,
        "a connection was opened: {text}"
    );
    assert_eq!(stage(&text, "retries"), 0.0, "{text}");
    let all: f64 = flowgate_config::STAGES
        .iter()
        .map(|s| stage(&text, s))
        .sum();
    assert!(
        all <= waited,
        "the stages ({all} s) are within what the clients waited ({waited} s)"
    );
    gw.shutdown();
}

#[tokio::test]
async fn a_slow_first_byte_is_named_the_bottleneck_and_breaks_its_budget() {
    let clock = flowgate_clock::ManualClock::at_epoch_2026();
    let moved = clock.clone();
    // The upstream takes 300 ms, as the gateway's clock sees it.
    let (url, _) = scripted_upstream(move |_| {
        moved.advance(Duration::from_millis(300));
        let body = r#"{"id":"c","object":"chat.completion","choices":[]}"#;
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    })
    .await;
    let cfg = format!(
        "[[alerts.rules]]\nname = \"chat-first-byte\"\n\
         series = 'stage_ms{{route=\"chat\",stage=\"first_byte\"}}'\nwindow = \"1m\"\nvalue = 250\n\n\
         [pools.llm]\nendpoints = [{{ url = \"{url}\" }}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n"
    );
    let gw = gateway_on(clock.shared(), &cfg).await;
    for _ in 0..3 {
        chat_minute(&gw, &clock, 4).await;
    }
    let (_, h) = admin(
        &gw,
        "GET",
        &format!(
            "/api/v1/metrics/history?series={}&step=1m&window=1h",
            query_value("stage_ms{route=\"chat\",stage=\"first_byte\"}")
        ),
        "",
    )
    .await;
    let points = h["points"].as_array().unwrap();
    assert!(!points.is_empty(), "{h}");
    for p in points {
        assert_eq!(
            p["value"].as_f64().or_else(|| p[1].as_f64()),
            Some(300.0),
            "{h}"
        );
    }

    let (code, s) = admin(&gw, "GET", "/api/v1/performance/stages?window=1h", "").await;
    assert_eq!(code, StatusCode::OK, "{s}");
    assert_eq!(s["resolution"], "1m");
    let chat = &s["routes"][0];
    assert_eq!(chat["route"], "chat", "{s}");
    assert_eq!(chat["dominant"], "first_byte", "{s}");
    assert_eq!(chat["requests"], 12.0, "{s}");
    assert_eq!(chat["mean_ms"], 300.0, "{s}");
    let fb = &chat["stages"][0];
    assert_eq!(fb["stage"], "first_byte");
    assert_eq!(fb["share"], 1.0);
    assert_eq!(fb["budget_ms"], 250.0);
    assert_eq!(fb["over_budget"], true);
    assert!(
        chat["advice"].as_str().unwrap().contains("faster model"),
        "{chat}"
    );
    let findings: Vec<&str> = chat["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        findings.contains(
            &"on route chat, first_byte is over its budget: 300 ms per request against 250 ms"
        ),
        "{findings:?}"
    );

    let (_, r) = admin(&gw, "GET", "/api/v1/performance/report?window=1h", "").await;
    assert_eq!(r["stages"][0]["dominant"], "first_byte", "{r}");
    assert!(
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["area"] == "latency"),
        "{r}"
    );
    let (_, recs) = admin(&gw, "GET", "/api/v1/performance/recommendations", "").await;
    let latency = recs["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["area"] == "latency")
        .unwrap_or_else(|| panic!("{recs}"))
        .clone();
    assert_eq!(latency["stage"], "first_byte", "{latency}");
    assert!(
        latency["evidence"]
            .as_str()
            .unwrap()
            .contains("over its budget of 250.0 ms"),
        "{latency}"
    );

    // The budget's rule fired (and resolved as each minute ended without requests).
    let start = Instant::now();
    loop {
        let (_, alerts) = admin(&gw, "GET", "/api/v1/alerts", "").await;
        let fired = alerts["history"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["rule"] == "chat-first-byte" && x["kind"] == "firing");
        if let Some(f) = fired {
            assert_eq!(f["value"], 300.0, "{f}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{alerts}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Bad parameters.
    for (q, code) in [
        ("window=10m", StatusCode::BAD_REQUEST),
        ("window=1h&route=tea", StatusCode::NOT_FOUND),
    ] {
        let (c, e) = admin(&gw, "GET", &format!("/api/v1/performance/stages?{q}"), "").await;
        assert_eq!(c, code, "{q}: {e}");
    }
    gw.shutdown();
}
