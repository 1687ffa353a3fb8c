//! Priced requests: every answer's tokens at its model's price (the prompt in its cached
//! and uncached parts), in the head when the client asks, in the spend ledger and the
//! metrics, in the access log; cache hits as saved spend; a cut stream as an estimate; the
//! ledger kept across a restart.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::path::PathBuf;
use std::str::FromStr;

use bytes::Bytes;
use common::*;
use flowgate_cost::ledger::{Dim, Query, Totals};
use http::StatusCode;
use rust_decimal::Decimal;

/// 1,000 prompt tokens of which 600 from the provider's prompt cache, 200 out.
const ANSWER: &str = r#"{"id":"c1","object":"chat.completion","model":"priced-model","choices":[{"index":0,"message":{"role":"assistant","content":"fine"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1000,"completion_tokens":200,"total_tokens":1200,"prompt_tokens_details":{"cached_tokens":600}}}"#;

/// 400 × $2.50 + 600 × $1.25 + 200 × $10, per million.
const PRICE: &str = "0.00375";

const PRICES: &str = "[models.\"priced-model\"]\ninput_usd_per_mtok = 2.50\n\
                      output_usd_per_mtok = \"10\"\ncache_read_usd_per_mtok = 1.25\n";

async fn upstream() -> String {
    let (url, _) = canned_upstream(format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{ANSWER}",
        ANSWER.len()
    ))
    .await;
    url
}

fn config(url: &str, extra: &str) -> String {
    format!(
        "{PRICES}\n[pools.llm]\nendpoints = [{{ url = \"{url}\" }}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n{extra}\n"
    )
}

fn body(content: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"model":"priced-model","temperature":0,"messages":[{{"role":"user","content":"{content}"}}]}}"#
    ))
}

fn asking(addr: std::net::SocketAddr, b: Bytes) -> http::Request<http_body_util::Full<Bytes>> {
    let mut r = post(addr, "/v1/chat/completions", b);
    r.headers_mut()
        .insert("x-flowgate-cost", http::HeaderValue::from_static("1"));
    r
}

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// Everything the gateway's ledger holds, in one sum.
fn ledger_total(gw: &flowgate_gateway::Running) -> Totals {
    gw.gateway.telemetry().flush();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let q = Query {
        from: now - 3600,
        to: now + 60,
        now,
        filter: Vec::new(),
    };
    let rows = gw.gateway.spending().ledger().summary(&q, None).unwrap();
    rows.first().map(|r| r.1).unwrap_or_default()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowgate-cost-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn answers_are_priced_in_their_cached_and_uncached_parts() {
    let url = upstream().await;
    let gw = gateway(&config(&url, "")).await;
    let c = client();
    let r = send(&c, asking(gw.data_addr, body("a"))).await;
    r.expect(StatusCode::OK);
    assert_eq!(r.headers["x-flowgate-cost-usd"], PRICE);
    assert!(!r.headers.contains_key("x-flowgate-saved-usd"));
    assert_eq!(
        r.json()["usage"]["completion_tokens"],
        200,
        "the body is intact"
    );
    // Not asked: not in the head, priced all the same.
    let r = send(&c, post(gw.data_addr, "/v1/chat/completions", body("b"))).await;
    r.expect(StatusCode::OK);
    assert!(!r.headers.contains_key("x-flowgate-cost-usd"));
    let t = ledger_total(&gw);
    assert_eq!(
        (
            t.requests,
            t.input_tokens,
            t.cache_read_tokens,
            t.output_tokens
        ),
        (2, 800, 1200, 400)
    );
    assert_eq!(t.usd, d(PRICE) * Decimal::from(2));
    let m = gw.gateway.telemetry().encode_prometheus();
    let spent = metric(
        &m,
        "flowgate_spend_usd_total{route=\"chat\",model=\"priced-model\"",
    );
    assert!((spent - 0.0075).abs() < 1e-12, "{m}");
}

#[tokio::test]
async fn cache_hits_cost_nothing_and_count_what_they_saved() {
    let url = upstream().await;
    let gw = gateway_with(
        "",
        &format!("[cache]\nenabled = true\n\n{}", config(&url, "")),
    )
    .await;
    let c = client();
    let first = send(&c, asking(gw.data_addr, body("same"))).await;
    first.expect(StatusCode::OK);
    assert_eq!(cache_header(&first), "miss");
    let hit = send(&c, asking(gw.data_addr, body("same"))).await;
    hit.expect(StatusCode::OK);
    assert_eq!(cache_header(&hit), "hit-l1");
    assert_eq!(hit.headers["x-flowgate-cost-usd"], "0");
    assert_eq!(hit.headers["x-flowgate-saved-usd"], PRICE);
    // The hit's record is sent when its body ends on the gateway's side, which may come
    // just after the client has read it.
    eventually(|| ledger_total(&gw).requests >= 2).await;
    let t = ledger_total(&gw);
    assert_eq!((t.requests, t.cache_hits), (2, 1));
    assert_eq!((t.usd, t.saved_usd), (d(PRICE), d(PRICE)));
}

#[tokio::test]
async fn a_stream_without_usage_is_priced_from_estimates_and_marked_so() {
    // Three text chunks and no usage chunk.
    let events: String = ["Hello", " there", " friend"]
        .iter()
        .map(|t| {
            format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{t}\"}}}}]}}\n\n")
        })
        .collect::<String>()
        + "data: [DONE]\n\n";
    let (url, _) = canned_upstream(format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{events}",
        events.len()
    ))
    .await;
    let gw = gateway(&config(&url, "")).await;
    let b = Bytes::from(
        r#"{"model":"priced-model","stream":true,"messages":[{"role":"user","content":"say hello to my friend please"}]}"#,
    );
    let r = send(&client(), asking(gw.data_addr, b)).await;
    r.expect(StatusCode::OK);
    // Streamed: no price in the head.
    assert!(!r.headers.contains_key("x-flowgate-cost-usd"));
    let t = ledger_total(&gw);
    assert_eq!((t.requests, t.estimated), (1, 1));
    assert!(t.input_tokens > 0 && t.output_tokens > 0, "{t:?}");
    let want = (Decimal::from(t.input_tokens) * d("2.5")
        + Decimal::from(t.output_tokens) * d("10"))
        / Decimal::from(1_000_000);
    assert_eq!(t.usd, want);
}

#[tokio::test]
async fn an_unpriced_model_counts_its_tokens_and_no_dollars() {
    let url = upstream().await;
    let gw = gateway(&config(&url, "")).await;
    let b =
        Bytes::from(r#"{"model":"nobody-prices-me","messages":[{"role":"user","content":"x"}]}"#);
    let r = send(&client(), asking(gw.data_addr, b)).await;
    r.expect(StatusCode::OK);
    assert!(!r.headers.contains_key("x-flowgate-cost-usd"));
    let t = ledger_total(&gw);
    assert_eq!(
        (t.requests, t.output_tokens, t.usd),
        (1, 200, Decimal::ZERO)
    );
}

#[tokio::test]
async fn each_request_has_an_access_log_line_with_its_cost() {
    let dir = temp_dir("access");
    let log = dir.join("access.log");
    let url = upstream().await;
    let gw = gateway_with(
        &format!("access_log = \"{}\"", log.display()),
        &config(&url, ""),
    )
    .await;
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", body("a")),
    )
    .await;
    r.expect(StatusCode::OK);
    let r = send(&client(), post(gw.data_addr, "/nowhere", body("a"))).await;
    r.expect(StatusCode::NOT_FOUND);
    gw.gateway.telemetry().flush();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let l = &lines[0];
    assert_eq!(l["route"], "chat");
    assert_eq!(l["status"], 200);
    assert_eq!(l["method"], "POST");
    assert_eq!(l["path"], "/v1/chat/completions");
    assert_eq!(l["model"], "priced-model");
    assert_eq!(l["provider"], "openai");
    assert_eq!(l["cost_usd"], PRICE);
    assert_eq!(l["tokens"]["prompt"], 1000);
    assert_eq!(l["tokens"]["cache_read"], 600);
    assert_eq!(l["tokens"]["estimated"], false);
    assert_eq!(l["request_id"], r_id(&lines[0]));
    assert!(l["time"].as_str().unwrap().ends_with('Z'));
    assert!(l["total_ms"].as_f64().unwrap() >= l["duration_ms"].as_f64().unwrap());
    let nf = &lines[1];
    assert_eq!(
        (nf["route"].as_str(), nf["status"].as_u64()),
        (Some("-"), Some(404))
    );
    assert!(nf.get("cost_usd").is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

fn r_id(l: &serde_json::Value) -> String {
    let id = l["request_id"].as_str().unwrap().to_string();
    assert!(!id.is_empty());
    id
}

#[tokio::test]
async fn the_ledger_in_the_data_dir_is_kept_across_a_restart() {
    let dir = temp_dir("restart");
    let url = upstream().await;
    let server = format!("data_dir = \"{}\"", dir.display());
    let gw = gateway_with(&server, &config(&url, "")).await;
    for i in 0..3 {
        send(
            &client(),
            post(gw.data_addr, "/v1/chat/completions", body(&i.to_string())),
        )
        .await
        .expect(StatusCode::OK);
    }
    // A clean stop writes what the last tick had not.
    gw.shutdown();
    gw.wait().await;
    assert!(dir.join("ledger.redb").exists());
    let gw = gateway_with(&server, &config(&url, "")).await;
    let t = ledger_total(&gw);
    assert_eq!((t.requests, t.usd), (3, d(PRICE) * Decimal::from(3)));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let by_route = gw
        .gateway
        .spending()
        .ledger()
        .summary(
            &Query {
                from: now - 3600,
                to: now + 60,
                now,
                filter: Vec::new(),
            },
            Some(Dim::Route),
        )
        .unwrap();
    assert_eq!(by_route[0].0, "chat");
    gw.shutdown();
    gw.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn with_cost_off_nothing_is_priced() {
    let url = upstream().await;
    let gw = gateway(&format!("[cost]\nenabled = false\n\n{}", config(&url, ""))).await;
    let r = send(&client(), asking(gw.data_addr, body("a"))).await;
    r.expect(StatusCode::OK);
    assert!(!r.headers.contains_key("x-flowgate-cost-usd"));
    assert_eq!(ledger_total(&gw).requests, 0);
}

fn key_hash(key: &str) -> String {
    flowgate_config::format_key_hash(&flowgate_admission::keys::hash(key.as_bytes()))
}

async fn admin_json(gw: &flowgate_gateway::Running, path: &str) -> (StatusCode, serde_json::Value) {
    let r = send(&client(), get(gw.admin_addr, path)).await;
    (r.status, serde_json::from_slice(&r.body).unwrap())
}

#[tokio::test]
async fn the_cost_api_sums_the_ledger_by_team_key_and_time() {
    let url = upstream().await;
    let auth = format!(
        "[auth]\nenabled = true\n\n\
         [[auth.keys]]\nname = \"alice\"\nhash = \"{}\"\nteam = \"red\"\n\n\
         [[auth.keys]]\nname = \"bob\"\nhash = \"{}\"\nteam = \"blue\"\n\n",
        key_hash("sk-alice"),
        key_hash("sk-bob")
    );
    let gw = gateway(&format!("{auth}{}", config(&url, ""))).await;
    for (key, n) in [("sk-alice", 2), ("sk-bob", 1)] {
        for i in 0..n {
            let mut r = post(
                gw.data_addr,
                "/v1/chat/completions",
                body(&format!("{key}{i}")),
            );
            r.headers_mut().insert(
                "authorization",
                http::HeaderValue::from_str(&format!("Bearer {key}")).unwrap(),
            );
            send(&client(), r).await.expect(StatusCode::OK);
        }
    }
    // A request is accounted when the server has ended its answer's body, which may come
    // a moment after the client read its last byte.
    let mut tries = 0;
    let (st, v) = loop {
        let (st, v) = admin_json(&gw, "/api/v1/cost/summary?window=1h&group_by=team").await;
        if v["total"]["requests"] == 3 || tries == 100 {
            break (st, v);
        }
        tries += 1;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["total"]["usd"], "0.01125");
    assert_eq!(v["total"]["requests"], 3);
    let groups: Vec<(String, String)> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap().into(),
                g["usd"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            ("red".into(), "0.0075".into()),
            ("blue".into(), PRICE.into())
        ]
    );
    // The API's numbers are the ledger's.
    assert_eq!(
        v["total"]["usd"].as_str().unwrap(),
        ledger_total(&gw).usd.to_string()
    );
    // A filter.
    let (_, v) = admin_json(&gw, "/api/v1/cost/summary?window=1h&key=bob&group_by=model").await;
    assert_eq!(v["total"]["requests"], 1);
    assert_eq!(v["groups"][0]["name"], "priced-model");
    assert_eq!(v["filter"]["key"], "bob");
    // A series: every request in this minute (or the last one, across its edge).
    let (st, v) = admin_json(&gw, "/api/v1/cost/timeseries?window=2h&step=minute").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let points = v["points"].as_array().unwrap();
    let sum: u64 = points.iter().map(|p| p["requests"].as_u64().unwrap()).sum();
    assert_eq!(sum, 3);
    assert_eq!(points[0]["at"].as_u64().unwrap() % 60, 0);
    assert_eq!(v["step"], 60);
    // Bad parameters are named.
    for (q, says) in [
        ("summary?group_by=colour", "group_by"),
        ("summary?window=soon", "window"),
        ("summary?window=1h&from=5", "exclude"),
        ("summary?from=10&to=5", "empty"),
        ("summary?tema=red", "unknown parameter"),
        ("timeseries?step=week", "step"),
        ("timeseries?window=3000d&step=minute", "points"),
    ] {
        let (st, v) = admin_json(&gw, &format!("/api/v1/cost/{q}")).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{q}: {v}");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.contains(says), "{q}: {m}");
    }
}

#[tokio::test]
async fn shaping_compacts_caps_and_drops_before_the_cache_keys_the_request() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let keep = seen.clone();
    let (url, _) = scripted_upstream(move |req| {
        keep.lock()
            .unwrap()
            .push(req.split("\r\n\r\n").nth(1).unwrap_or_default().to_string());
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{ANSWER}",
            ANSWER.len()
        )
    })
    .await;
    let shaping =
        "shaping = { compact_whitespace = true, max_tokens_cap = 100, drop = [\"user\"] }";
    let gw = gateway(&format!(
        "[cache]\nenabled = true\n\n{}",
        config(&url, shaping)
    ))
    .await;
    let c = client();
    let a = Bytes::from(
        r#"{"model":"priced-model","temperature":0,"max_tokens":4000,"user":"u-1","messages":[{"role":"user","content":"Summarize    the   report.\n\n\n\n```\nkeep   this\n```"}]}"#,
    );
    let r = send(&c, post(gw.data_addr, "/v1/chat/completions", a)).await;
    r.expect(StatusCode::OK);
    let sent: serde_json::Value = serde_json::from_str(&seen.lock().unwrap()[0]).unwrap();
    assert_eq!(
        sent["messages"][0]["content"],
        "Summarize the report.\n\n```\nkeep   this\n```"
    );
    assert_eq!(sent["max_tokens"], 100);
    assert!(sent.get("user").is_none());
    // The same question with other blank space: the same entry.
    let b = Bytes::from(
        r#"{"model":"priced-model","temperature":0,"max_tokens":4000,"user":"u-2","messages":[{"role":"user","content":"Summarize the report.\n\n```\nkeep   this\n```"}]}"#,
    );
    let r = send(&c, post(gw.data_addr, "/v1/chat/completions", b)).await;
    assert_eq!(cache_header(&r), "hit-l1");
    assert_eq!(seen.lock().unwrap().len(), 1);
    let m = gw.gateway.telemetry().encode_prometheus();
    assert_eq!(
        metric(
            &m,
            "flowgate_shaping_total{route=\"chat\",step=\"whitespace\"}"
        ),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "flowgate_shaping_total{route=\"chat\",step=\"max_tokens_cap\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &m,
            "flowgate_shaping_completion_tokens_capped_total{route=\"chat\"}"
        ),
        7800.0
    );
}
