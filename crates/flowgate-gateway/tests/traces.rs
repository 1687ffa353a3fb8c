//! Traces against a local OTLP/HTTP receiver that decodes what it gets: a traced request's
//! server span and its stages' spans with the HTTP and `gen_ai.*` attributes, the client's
//! trace followed (or not, as its sampled flag says), and the attempt's `traceparent` sent
//! upstream.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;
#[path = "../../flowgate-insight/tests/common/receivers.rs"]
mod receivers;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use http::StatusCode;
use serde_json::Value;

/// Every span the receiver got, flattened.
fn spans(got: &[receivers::Got]) -> Vec<Value> {
    let mut out = Vec::new();
    for g in got {
        assert_eq!(g.path, "/v1/traces");
        assert_eq!(g.header("content-type"), "application/json");
        let j = g.json();
        for rs in j["resourceSpans"].as_array().unwrap() {
            let service = &rs["resource"]["attributes"][0];
            assert_eq!(service["key"], "service.name");
            assert_eq!(service["value"]["stringValue"], "flowgate-test");
            for ss in rs["scopeSpans"].as_array().unwrap() {
                out.extend(ss["spans"].as_array().unwrap().iter().cloned());
            }
        }
    }
    out
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

async fn until_spans(r: &receivers::HttpReceiver, n: usize) -> Vec<Value> {
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = spans(&r.got());
        if s.len() >= n || std::time::Instant::now() > end {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn traced_requests_reach_the_collector_with_their_stages_and_the_upstream_its_parent() {
    let collector = receivers::HttpReceiver::start().await;
    let upstream_saw: Arc<Mutex<Vec<String>>> = Arc::default();
    let saw = upstream_saw.clone();
    let (url, _) = scripted_upstream(move |req| {
        let tp = req
            .lines()
            .find_map(|l| l.strip_prefix("traceparent: "))
            .unwrap_or("")
            .to_string();
        saw.lock().unwrap().push(tp);
        let body = r#"{"id":"c","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":31,"completion_tokens":64,"total_tokens":95}}"#;
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    })
    .await;
    let cfg = format!(
        "[cache]\nenabled = true\n\n\
         [tracing]\nendpoint = \"{}\"\nsample_ratio = 1.0\nservice_name = \"flowgate-test\"\ninterval = \"100ms\"\n\
         headers = {{ \"x-tenant\" = \"t1\" }}\n\n\
         [pools.llm]\nendpoints = [{{ url = \"{url}\" }}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\npath = \"/v1/chat/completions\"\npool = \"llm\"\n\n\
         [models.\"gpt-4o-mini\"]\ninput_usd_per_mtok = 0.15\noutput_usd_per_mtok = 0.60\n",
        collector.url("/v1/traces")
    );
    let gw = gateway(&cfg).await;
    let c = client();
    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let mut req = post(gw.data_addr, "/v1/chat/completions", chat(0.0, "traced"));
    req.headers_mut().insert(
        "traceparent",
        format!("00-{client_trace}-{client_span}-01")
            .parse()
            .unwrap(),
    );
    send(&c, req).await.expect(StatusCode::OK);

    // The client's trace, its span the request's parent; a cache lookup and an attempt.
    let got = until_spans(&collector, 3).await;
    assert_eq!(collector.got()[0].header("x-tenant"), "t1");
    let root = got
        .iter()
        .find(|s| s["kind"] == 2)
        .expect("a server span")
        .clone();
    assert_eq!(root["traceId"], client_trace);
    assert_eq!(root["parentSpanId"], client_span);
    assert_eq!(root["name"], "POST chat");
    assert_eq!(
        attr(&root, "http.response.status_code").unwrap()["intValue"],
        "200"
    );
    assert_eq!(
        attr(&root, "gen_ai.request.model").unwrap()["stringValue"],
        "gpt-4o-mini"
    );
    assert_eq!(
        attr(&root, "gen_ai.usage.output_tokens").unwrap()["intValue"],
        "64"
    );
    assert_eq!(
        attr(&root, "flowgate.cache").unwrap()["stringValue"],
        "miss"
    );
    let children: Vec<&Value> = got
        .iter()
        .filter(|s| s["parentSpanId"] == root["spanId"])
        .collect();
    let names: Vec<&str> = children
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"cache lookup"), "{names:?}");
    assert!(names.contains(&"admission queue"), "{names:?}");
    let attempt = children
        .iter()
        .find(|s| s["name"] == "chat gpt-4o-mini")
        .expect("an attempt span");
    assert_eq!(attempt["kind"], 3);
    assert_eq!(
        attr(attempt, "gen_ai.provider.name").unwrap()["stringValue"],
        "openai"
    );
    assert_eq!(
        attr(attempt, "gen_ai.usage.input_tokens").unwrap()["intValue"],
        "31"
    );
    let start: u64 = attempt["startTimeUnixNano"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let end: u64 = attempt["endTimeUnixNano"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(end >= start);
    // The upstream was told the attempt is its parent.
    let sent = upstream_saw.lock().unwrap()[0].clone();
    assert_eq!(
        sent,
        format!(
            "00-{client_trace}-{}-01",
            attempt["spanId"].as_str().unwrap()
        )
    );

    // A client that does not sample: not traced, its traceparent passed on as it was.
    let before = spans(&collector.got()).len();
    let mut req = post(gw.data_addr, "/v1/chat/completions", chat(0.0, "untraced"));
    let unsampled = format!("00-{client_trace}-{client_span}-00");
    req.headers_mut()
        .insert("traceparent", unsampled.parse().unwrap());
    send(&c, req).await.expect(StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(spans(&collector.got()).len(), before, "nothing exported");
    assert_eq!(upstream_saw.lock().unwrap()[1], unsampled);

    // No traceparent: traced at ratio 1, in a trace of its own.
    send(
        &c,
        post(gw.data_addr, "/v1/chat/completions", chat(0.0, "own")),
    )
    .await
    .expect(StatusCode::OK);
    let got = until_spans(&collector, before + 3).await;
    let own = got
        .iter()
        .filter(|s| s["kind"] == 2 && s["traceId"] != client_trace)
        .count();
    assert_eq!(own, 1);
    let m =
        String::from_utf8_lossy(&send(&c, get(gw.admin_addr, "/metrics")).await.body).to_string();
    assert!(
        metric(&m, "flowgate_trace_spans_total{result=\"exported\"} ") >= 6.0,
        "{m}"
    );
}
