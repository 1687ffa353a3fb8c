//! The data plane against the simulator, on loopback: what a client of the gateway sees.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use flowgate_sim::EndpointSpec;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn json_is_proxied_with_ids_and_upstream_headers() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&fleet_config(&[up.url()], "")).await;
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", chat_body(false)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["usage"]["completion_tokens"], 5);
    assert!(r.headers.contains_key("x-request-id"));
    assert_eq!(
        r.headers["x-flowgate-upstream"],
        up.addr().to_string().as_str()
    );
    assert_eq!(r.headers["x-flowgate-attempts"], "1");
    assert_eq!(up.stats().requests, 1);
}

#[tokio::test]
async fn sse_chunks_reach_the_client_before_the_upstream_finishes() {
    let up = sim(EndpointSpec {
        token_delay: Duration::from_millis(150),
        completion_tokens: 5,
        ..EndpointSpec::default()
    })
    .await;
    let gw = gateway(&fleet_config(&[up.url()], "")).await;
    let resp = client()
        .request(post(gw.data_addr, "/v1/chat/completions", chat_body(true)))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(first.starts_with(b"data: "), "{first:?}");
    // The upstream is still streaming (5 tokens, 150 ms apart) when the first chunk arrives.
    assert_eq!(
        up.stats().completed,
        0,
        "first chunk arrived only after the upstream finished"
    );
    let mut rest = Vec::new();
    let mut frames = 1;
    while let Some(f) = body.frame().await {
        if let Ok(d) = f.unwrap().into_data() {
            frames += 1;
            rest.extend_from_slice(&d);
        }
    }
    assert!(frames >= 5, "chunks were merged: {frames} frames");
    assert!(String::from_utf8_lossy(&rest).ends_with("data: [DONE]\n\n"));
    eventually(|| up.stats().completed == 1).await;
}

#[tokio::test]
async fn declared_oversized_body_gets_413_before_it_is_sent() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&format!(
        "[limits]\nmax_body_bytes = 1024\n\n{}",
        fleet_config(&[up.url()], "")
    ))
    .await;
    // The head promises 10 MB; no body byte is sent. The answer must come anyway.
    let raw = b"POST /echo/x HTTP/1.1\r\nhost: a\r\ncontent-length: 10000000\r\n\r\n";
    let resp = raw_exchange(gw.data_addr, raw, Duration::from_secs(3)).await;
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
    assert!(resp.contains("\"code\":\"request_too_large\""), "{resp}");
    assert_eq!(up.stats().requests, 0);
}

#[tokio::test]
async fn chunked_oversized_body_gets_413_on_both_route_kinds() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&format!(
        "[limits]\nmax_body_bytes = 1024\n\n{}",
        fleet_config(&[up.url()], "")
    ))
    .await;
    for path in ["/v1/chat/completions", "/echo/upload"] {
        let chunk = "a".repeat(600);
        let raw = format!(
            "POST {path} HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
        );
        let resp = raw_exchange(gw.data_addr, raw.as_bytes(), Duration::from_secs(3)).await;
        assert!(resp.starts_with("HTTP/1.1 413"), "{path}: {resp}");
    }
}

#[tokio::test]
async fn http_route_streams_bodies_without_buffering() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&fleet_config(&[up.url()], "")).await;
    let body = Bytes::from(vec![b'x'; 300_000]);
    let r = send(&client(), post(gw.data_addr, "/echo/big?q=1", body)).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["body_bytes"], 300_000);
    assert_eq!(v["path"], "/echo/big");
    assert_eq!(v["query"], "q=1");
}

#[tokio::test]
async fn header_limits_answer_431_as_json() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&format!(
        "[limits]\nmax_header_bytes = \"2KiB\"\nmax_headers = 10\n\n{}",
        fleet_config(&[up.url()], "")
    ))
    .await;
    let big = "v".repeat(3000);
    let raw = format!("GET /echo/x HTTP/1.1\r\nhost: a\r\nx-big: {big}\r\n\r\n");
    let resp = raw_exchange(gw.data_addr, raw.as_bytes(), Duration::from_secs(3)).await;
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");
    assert!(resp.contains("headers_too_large"), "{resp}");

    let many: String = (0..15).map(|i| format!("x-h{i}: 1\r\n")).collect();
    let raw = format!("GET /echo/x HTTP/1.1\r\nhost: a\r\n{many}\r\n");
    let resp = raw_exchange(gw.data_addr, raw.as_bytes(), Duration::from_secs(3)).await;
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");
    assert!(resp.contains("more than 10 header fields"), "{resp}");
    assert_eq!(up.stats().requests, 0);
}

#[tokio::test]
async fn slow_request_head_gets_408_and_idle_connections_close_quietly() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&format!(
        "[limits]\nheader_read_timeout = \"300ms\"\n\n{}",
        fleet_config(&[up.url()], "")
    ))
    .await;
    let resp = raw_exchange(
        gw.data_addr,
        b"GET /echo/x HTTP/1.1\r\nhost: a\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
    assert!(resp.contains("request_timeout"), "{resp}");
    // A connection that never sent a byte is closed without an answer.
    let resp = raw_exchange(gw.data_addr, b"", Duration::from_secs(3)).await;
    assert_eq!(resp, "");
}

#[tokio::test]
async fn head_deadline_spares_long_responses_and_closes_idle_keep_alive_connections() {
    let up = sim(EndpointSpec {
        token_delay: Duration::from_millis(150),
        completion_tokens: 5,
        ..EndpointSpec::default()
    })
    .await;
    let gw = gateway(&format!(
        "[limits]\nheader_read_timeout = \"200ms\"\n\n{}",
        fleet_config(&[up.url()], "")
    ))
    .await;
    let body = chat_body(true);
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: a\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    let mut s = tokio::net::TcpStream::connect(gw.data_addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body).await.unwrap();
    // The stream takes over 500 ms, more than twice the head timeout: it must arrive whole.
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"0\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("response stalled")
            .unwrap();
        assert!(
            n > 0,
            "closed mid-response: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(String::from_utf8_lossy(&got).contains("data: [DONE]"));
    // Then the idle keep-alive connection is closed without a word, within 1.25 timeouts
    // (plus scheduling slack).
    let idle = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("idle connection was never closed")
        .unwrap();
    assert_eq!(n, 0, "{}", String::from_utf8_lossy(&buf[..n]));
    let waited = idle.elapsed();
    assert!(
        waited >= Duration::from_millis(190) && waited < Duration::from_millis(1000),
        "closed after {waited:?}"
    );
}

#[tokio::test]
async fn upstream_down_is_502() {
    let port = dead_port().await;
    let gw = gateway(&fleet_config(&[format!("http://127.0.0.1:{port}")], "")).await;
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", chat_body(false)),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.error_code(), "upstream_unreachable");
    assert_eq!(r.json()["error"]["type"], "upstream_error");
}

#[tokio::test]
async fn upstream_reset_is_502() {
    let up = sim(EndpointSpec {
        reset_rate: 1.0,
        ..EndpointSpec::default()
    })
    .await;
    let gw = gateway(&fleet_config(&[up.url()], "")).await;
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", chat_body(false)),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.error_code(), "upstream_closed");
}

#[tokio::test]
async fn slow_upstream_is_504_and_the_upstream_request_is_cancelled() {
    let up = sim(EndpointSpec::fixed(Duration::from_secs(3))).await;
    let gw = gateway(&fleet_config(&[up.url()], "request_timeout = \"200ms\"")).await;
    let t0 = Instant::now();
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", chat_body(false)),
    )
    .await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(r.error_code(), "upstream_timeout");
    // The endpoint that did not answer is named, and charged a failure.
    let host = up.url().trim_start_matches("http://").to_string();
    assert!(r.error_message().contains(&host), "{}", r.error_message());
    assert_eq!(r.headers["x-flowgate-upstream"], host.as_str());
    let m = send(
        &client(),
        get(gw.admin_addr, "/api/v1/performance/load-balancer/metrics"),
    )
    .await
    .json();
    assert_eq!(m["pools"][0]["endpoints"][0]["failures"], 1, "{m}");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "timeout not enforced: {:?}",
        t0.elapsed()
    );
    // The gateway dropped the upstream connection: the simulator sees the request abandoned.
    eventually(|| up.stats().cancelled == 1).await;
    assert_eq!(up.stats().completed, 0);
}

#[tokio::test]
async fn stalled_stream_is_cut_by_the_read_timeout() {
    let up = sim(EndpointSpec {
        token_delay: Duration::from_secs(5),
        completion_tokens: 3,
        ..EndpointSpec::default()
    })
    .await;
    let gw = gateway(&fleet_config(&[up.url()], "read_timeout = \"300ms\"")).await;
    let resp = client()
        .request(post(gw.data_addr, "/v1/chat/completions", chat_body(true)))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let t0 = Instant::now();
    let res = resp.into_body().collect().await;
    assert!(
        res.is_err(),
        "a stalled stream must end in an error, not look complete"
    );
    assert!(t0.elapsed() < Duration::from_secs(3));
    eventually(|| up.stats().cancelled == 1).await;
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_and_forwarding_headers_set() {
    let up = sim(EndpointSpec::default()).await;
    let req = |gw: &flowgate_gateway::Running| {
        Request::get(format!("http://{}/echo/h", gw.data_addr))
            .header("connection", "keep-alive, x-private-hop")
            .header("x-private-hop", "secret")
            .header("keep-alive", "timeout=5")
            .header("te", "trailers")
            .header("proxy-authorization", "Basic abc")
            .header("x-forwarded-for", "10.1.2.3")
            .header("forwarded", "for=10.1.2.3")
            .header("x-real-ip", "10.1.2.3")
            .header("x-forwarded-host", "forged.example")
            .header("x-end-to-end", "kept")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let gw = gateway(&fleet_config(&[up.url()], "")).await;
    let r = send(&client(), req(&gw)).await;
    let h = &r.json()["headers"];
    for gone in [
        "connection",
        "x-private-hop",
        "keep-alive",
        "te",
        "proxy-authorization",
    ] {
        assert!(h.get(gone).is_none(), "{gone} was forwarded: {h}");
    }
    assert_eq!(h["x-end-to-end"][0], "kept");
    // An untrusted client's chain could say anything: this hop alone.
    assert_eq!(h["x-forwarded-for"][0], "127.0.0.1");
    assert_eq!(h["x-real-ip"][0], "127.0.0.1");
    let authority = gw.data_addr.to_string();
    assert_eq!(
        h["forwarded"][0],
        format!("for=127.0.0.1;host=\"{authority}\";proto=http")
    );
    assert_eq!(h["x-forwarded-proto"][0], "http");
    assert_eq!(h["host"][0], up.addr().to_string());
    assert_eq!(
        h["x-forwarded-host"][0], authority,
        "from the Host used, never the client's"
    );
    assert_eq!(h["x-forwarded-host"].as_array().unwrap().len(), 1);

    // A trusted proxy's chain is kept and this hop appended.
    let gw = gateway_with(
        "trusted_proxies = [\"127.0.0.0/8\"]",
        &fleet_config(&[up.url()], ""),
    )
    .await;
    let r = send(&client(), req(&gw)).await;
    let h = &r.json()["headers"];
    assert_eq!(h["x-forwarded-for"][0], "10.1.2.3, 127.0.0.1");
    assert_eq!(h["x-real-ip"][0], "10.1.2.3");
    assert!(
        h["forwarded"][0]
            .as_str()
            .unwrap()
            .starts_with("for=10.1.2.3, for=127.0.0.1;"),
        "{h}"
    );
}

#[tokio::test]
async fn request_id_is_taken_or_generated_and_propagated() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&fleet_config(&[up.url()], "")).await;
    let c = client();
    let req = Request::get(format!("http://{}/echo/id", gw.data_addr))
        .header("x-request-id", "client-chosen-42")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = send(&c, req).await;
    assert_eq!(r.headers["x-request-id"], "client-chosen-42");
    assert_eq!(r.json()["headers"]["x-request-id"][0], "client-chosen-42");
    let r = send(&c, get(gw.data_addr, "/echo/id")).await;
    let made = r.headers["x-request-id"].to_str().unwrap().to_string();
    assert!(made.len() >= 16, "{made}");
    assert_eq!(r.json()["headers"]["x-request-id"][0], made.as_str());
}

#[tokio::test]
async fn round_robin_spreads_evenly() {
    let ups = [
        sim(EndpointSpec::default()).await,
        sim(EndpointSpec::default()).await,
        sim(EndpointSpec::default()).await,
    ];
    let urls: Vec<String> = ups.iter().map(|u| u.url()).collect();
    let gw = gateway(&fleet_config(&urls, "strategy = \"round_robin\"\n")).await;
    let c = client();
    for _ in 0..30 {
        assert_eq!(
            send(
                &c,
                post(gw.data_addr, "/v1/chat/completions", chat_body(false))
            )
            .await
            .status,
            StatusCode::OK
        );
    }
    for u in &ups {
        assert_eq!(u.stats().requests, 10);
    }
}

#[tokio::test]
async fn connect_failure_is_retried_once_on_another_endpoint() {
    let up = sim(EndpointSpec::default()).await;
    let dead = format!("http://127.0.0.1:{}", dead_port().await);
    let gw = gateway(&fleet_config(
        &[dead, up.url()],
        "strategy = \"round_robin\"\n",
    ))
    .await;
    let retried = retried_of(&gw, 6).await;
    assert_eq!(
        retried, 3,
        "every request that went to the dead endpoint first was retried"
    );
    assert_eq!(up.stats().requests, 6);
}

/// Sends `n` chat requests through `gw`: how many needed a second attempt.
async fn retried_of(gw: &flowgate_gateway::Running, n: usize) -> u32 {
    let c = client();
    let mut retried = 0;
    for _ in 0..n {
        let r = send(
            &c,
            post(gw.data_addr, "/v1/chat/completions", chat_body(false)),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        retried += u32::from(r.headers["x-flowgate-attempts"] == "2");
    }
    retried
}

#[tokio::test]
async fn p2c_turns_away_from_an_endpoint_it_cannot_reach_and_from_a_slow_one() {
    // The default strategy: p2c_ewma.
    let fast = sim(EndpointSpec::default()).await;
    let dead = format!("http://127.0.0.1:{}", dead_port().await);
    let gw = gateway(&fleet_config(&[dead, fast.url()], "")).await;
    // Once refused, the dead endpoint costs a connect timeout: it loses every draw.
    let retried = retried_of(&gw, 20).await;
    assert!(retried <= 1, "retried {retried}");

    let slow = sim(EndpointSpec {
        latency: flowgate_sim::LatencyDist::Fixed(Duration::from_millis(80)),
        ..EndpointSpec::default()
    })
    .await;
    let (f1, f2) = (
        sim(EndpointSpec::default()).await,
        sim(EndpointSpec::default()).await,
    );
    let gw = gateway(&fleet_config(&[slow.url(), f1.url(), f2.url()], "")).await;
    retried_of(&gw, 60).await;
    // The slow one answers a few requests, until its latency is known; then it loses
    // every draw against a fast one, and two choices are never the same endpoint.
    let s = slow.stats().requests;
    assert!(
        s <= 6,
        "slow {s}, fast {} and {}",
        f1.stats().requests,
        f2.stats().requests
    );
}

#[tokio::test]
async fn errors_for_bad_requests_are_openai_shaped() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&format!(
        "{}\n[[routes]]\nname = \"only-get\"\nkind = \"http\"\npath = \"/status\"\nmethods = [\"GET\"]\npool = \"llm\"\n",
        fleet_config(&[up.url()], "")
    ))
    .await;
    let c = client();
    let r = send(&c, get(gw.data_addr, "/nowhere")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error_code(), "route_not_found");
    let r = send(&c, post(gw.data_addr, "/status", Bytes::new())).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allowed: GET")
    );
    let r = send(
        &c,
        post(
            gw.data_addr,
            "/v1/chat/completions",
            Bytes::from_static(b"{\"model\": "),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "invalid_json");
    let r = send(
        &c,
        post(
            gw.data_addr,
            "/v1/chat/completions",
            Bytes::from_static(b"{\"stream\": \"yes\"}"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        up.stats().requests,
        0,
        "bad requests must not reach the upstream"
    );
}

#[tokio::test]
async fn h2c_clients_are_served() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&format!(
        "[limits]\nmax_headers = 10\n\n{}",
        fleet_config(&[up.url()], "")
    ))
    .await;
    let c: TestClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let r = send(
        &c,
        post(gw.data_addr, "/v1/chat/completions", chat_body(false)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["object"], "chat.completion");
    // HTTP/2 heads are held to the same limits (by the gateway, not the HTTP/1.1 listener).
    let mut req = post(gw.data_addr, "/v1/chat/completions", chat_body(false));
    for i in 0..15 {
        req.headers_mut().insert(
            format!("x-h{i}").parse::<http::HeaderName>().unwrap(),
            "1".parse().unwrap(),
        );
    }
    let r = send(&c, req).await;
    assert_eq!(r.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(r.json()["error"]["code"], "headers_too_large");
    assert_eq!(up.stats().requests, 1);
}

#[tokio::test]
async fn upstream_connections_are_reused_and_capped() {
    let up = sim(EndpointSpec::fixed(Duration::from_millis(50))).await;
    let gw = gateway(&fleet_config(
        &[up.url()],
        "max_connections = 2\nmax_idle = 2",
    ))
    .await;
    let c = client();
    for status in concurrent_chats(&c, gw.data_addr, 8).await {
        assert_eq!(status, StatusCode::OK);
    }
    let metrics = gw.gateway.telemetry().encode_prometheus();
    assert_eq!(
        metric(&metrics, "flowgate_upstream_connects_total{"),
        2.0,
        "8 requests through a cap of 2 must open exactly 2 connections:\n{metrics}"
    );
}

/// An upstream that answers one request per connection and then closes it without saying so
/// (no `Connection: close`), the way servers with short keep-alive timeouts drop idle
/// connections. Returns its address and the numbers of connections it accepted and closed.
async fn one_shot_upstream() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (opened, shut) = (accepted.clone(), closed.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            opened.fetch_add(1, Ordering::SeqCst);
            let shut = shut.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let body = br#"{"object":"chat.completion"}"#;
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(body).await;
                drop(s);
                shut.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (format!("http://{addr}"), accepted, closed)
}

#[tokio::test]
async fn pooled_connections_the_upstream_closed_are_replaced_without_failing_requests() {
    let (url, accepted, closed) = one_shot_upstream().await;
    let gw = gateway_with("workers = 1", &fleet_config(&[url], "")).await;
    let c = client();
    for i in 0..5 {
        let r = send(
            &c,
            post(gw.data_addr, "/v1/chat/completions", chat_body(false)),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "request {i}: {:?}", r.body);
        // The upstream closes the connection while it sits in the pool.
        eventually(|| closed.load(Ordering::SeqCst) == i + 1).await;
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        5,
        "each request needed a new connection"
    );
}

#[tokio::test]
async fn idle_connections_beyond_max_idle_are_closed() {
    let up = sim(EndpointSpec::fixed(Duration::from_millis(100))).await;
    let gw = gateway_with(
        "workers = 2",
        &fleet_config(&[up.url()], "max_connections = 4\nmax_idle = 1"),
    )
    .await;
    let c = client();
    for status in concurrent_chats(&c, gw.data_addr, 4).await {
        assert_eq!(status, StatusCode::OK);
    }
    let health = send(&c, get(gw.admin_addr, "/health")).await.json();
    assert_eq!(
        health["pools"][0]["endpoints"][0]["idle_connections"], 1,
        "{health}"
    );
    let metrics = gw.gateway.telemetry().encode_prometheus();
    assert_eq!(
        metric(&metrics, "flowgate_upstream_connects_total{"),
        4.0,
        "4 concurrent requests open 4 connections:\n{metrics}"
    );
}

#[tokio::test]
async fn the_connection_cap_holds_across_workers_and_idle_connections_move_between_them() {
    let up = sim(EndpointSpec::fixed(Duration::from_millis(5))).await;
    let gw = gateway_with(
        "workers = 2",
        &fleet_config(&[up.url()], "max_connections = 1\nmax_idle = 1"),
    )
    .await;
    // 32 client connections at once: the kernel spreads them over both workers' sockets,
    // and the one upstream connection has to serve requests of both.
    let c = client();
    for status in concurrent_chats(&c, gw.data_addr, 32).await {
        assert_eq!(status, StatusCode::OK);
    }
    let metrics = gw.gateway.telemetry().encode_prometheus();
    assert!(
        metric(&metrics, "flowgate_worker_connections_total{worker=\"0\"}") > 0.0
            && metric(&metrics, "flowgate_worker_connections_total{worker=\"1\"}") > 0.0,
        "both workers must have accepted connections:\n{metrics}"
    );
    assert_eq!(
        metric(&metrics, "flowgate_upstream_connects_total{"),
        1.0,
        "a cap of 1 allows one upstream connection for all workers:\n{metrics}"
    );
    let health = send(&c, get(gw.admin_addr, "/health")).await.json();
    assert_eq!(health["workers"], 2);
}

#[tokio::test]
async fn graceful_drain_completes_in_flight_requests() {
    let up = sim(EndpointSpec::fixed(Duration::from_millis(600))).await;
    let gw = gateway(&fleet_config(&[up.url()], "")).await;
    let addr = gw.data_addr;
    let c = client();
    let inflight = tokio::spawn(async move {
        send(&c, post(addr, "/v1/chat/completions", chat_body(false))).await
    });
    eventually(|| up.stats().in_flight == 1).await;
    gw.shutdown();
    let t0 = Instant::now();
    let admin = gw.admin_addr;
    gw.wait().await;
    let r = inflight.await.unwrap();
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the in-flight request was dropped"
    );
    assert!(t0.elapsed() < Duration::from_secs(4));
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
    assert!(
        tokio::net::TcpStream::connect(admin).await.is_err(),
        "admin still accepting after shutdown"
    );
}

#[tokio::test]
async fn admin_api_reports_metrics_health_and_percentiles() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&fleet_config(&[up.url()], "")).await;
    let c = client();
    for _ in 0..5 {
        send(
            &c,
            post(gw.data_addr, "/v1/chat/completions", chat_body(false)),
        )
        .await;
    }
    send(&c, get(gw.data_addr, "/nowhere")).await;
    gw.gateway.telemetry().flush();
    let m = send(&c, get(gw.admin_addr, "/metrics")).await;
    let text = String::from_utf8_lossy(&m.body);
    assert!(
        text.contains(r#"flowgate_requests_total{route="chat",pool="llm",status="200"} 5"#),
        "{text}"
    );
    assert!(
        text.contains(r#"flowgate_requests_total{route="-",pool="-",status="404"} 1"#),
        "{text}"
    );
    assert!(text.contains("flowgate_upstream_connections{"), "{text}");
    let p = send(&c, get(gw.admin_addr, "/api/v1/performance/metrics"))
        .await
        .json();
    assert_eq!(p["routes"]["chat"]["1m"]["requests"], 5);
    assert_eq!(p["overall"]["5m"]["requests"], 6);
    assert!(
        p["routes"]["chat"]["1m"]["latency_ms"]["p99"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let h = send(&c, get(gw.admin_addr, "/health")).await.json();
    assert_eq!(h["status"], "ok");
    assert_eq!(
        send(&c, get(gw.admin_addr, "/ready")).await.status,
        StatusCode::OK
    );
    let nf = send(&c, get(gw.admin_addr, "/nope")).await;
    assert_eq!(nf.status, StatusCode::NOT_FOUND);
    assert_eq!(nf.error_code(), "unknown_endpoint");
}
