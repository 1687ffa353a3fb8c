//! HTTP/2 to upstreams: chosen by ALPN (or set per pool), requests multiplexed on few
//! connections within the server's stream limit, GOAWAY handled without losing a request,
//! streamed answers passed on as they come, PINGs closing a connection whose server went
//! silent. Every server is on loopback; certificates are made at test time.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::h2::{H2Options, H2Upstream};
use common::tls::{Pki, TlsFront};
use common::*;
use flowgate_sim::EndpointSpec;
use http::{StatusCode, Version};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn ca(pki: &Pki) -> String {
    format!(
        "[pools.llm.tls]\nroots = \"none\"\nca_file = {:?}\n",
        pki.ca_file().display().to_string()
    )
}

#[tokio::test]
async fn a_server_that_picks_h2_by_alpn_is_spoken_to_in_http2() {
    let pki = Pki::new("alpn");
    let up = H2Upstream::start(H2Options {
        tls: Some(pki.issue("server", &["localhost"])),
        ..H2Options::default()
    })
    .await;
    let gw = gateway(&fleet_config(&[up.url("https", "localhost")], &ca(&pki))).await;
    for _ in 0..3 {
        let r = chat_once(&gw).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.error_message());
        assert_eq!(r.json()["choices"][0]["message"]["content"], "hi");
    }
    assert_eq!(
        *up.versions.lock().unwrap(),
        [Version::HTTP_2; 3],
        "the upstream saw HTTP/2"
    );
    assert_eq!(up.connections(), 1, "one connection carries them all");
}

#[tokio::test]
async fn a_hundred_concurrent_requests_share_at_most_two_connections() {
    let pki = Pki::new("hundred");
    let up = H2Upstream::start(H2Options {
        tls: Some(pki.issue("server", &["localhost"])),
        delay: Duration::from_millis(300),
        ..H2Options::default()
    })
    .await;
    let gw = gateway(&fleet_config(&[up.url("https", "localhost")], &ca(&pki))).await;
    let statuses = concurrent_chats(&client(), gw.data_addr, 100).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(up.requests(), 100);
    assert!(
        up.connections() <= 2,
        "{} connections for 100 requests",
        up.connections()
    );
    assert!(
        up.most_in_flight.load(Ordering::SeqCst) > 50,
        "the requests were multiplexed, not queued one by one"
    );
}

#[tokio::test]
async fn the_servers_stream_limit_opens_more_connections_within_the_pool_cap() {
    let up = H2Upstream::start(H2Options {
        max_streams: Some(10),
        delay: Duration::from_millis(400),
        ..H2Options::default()
    })
    .await;
    let cfg = fleet_config(
        &[up.url("http", "127.0.0.1")],
        "protocol = \"h2c\"\nmax_connections = 8",
    );
    let gw = gateway_with("workers = 1", &cfg).await;
    let statuses = concurrent_chats(&client(), gw.data_addr, 30).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert!(
        (3..=4).contains(&up.connections()),
        "30 requests at 10 streams a connection: {} connections",
        up.connections()
    );

    // At the pool's cap, requests queue on the connections instead of failing.
    let cfg = fleet_config(
        &[up.url("http", "127.0.0.1")],
        "protocol = \"h2c\"\nmax_connections = 1",
    );
    let gw = gateway_with("workers = 1", &cfg).await;
    let before = up.connections();
    let statuses = concurrent_chats(&client(), gw.data_addr, 25).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(up.connections() - before, 1, "one connection, the cap");
}

#[tokio::test]
async fn goaway_during_load_loses_no_request() {
    let up = H2Upstream::start(H2Options {
        goaway_after: Some(5),
        delay: Duration::from_millis(20),
        ..H2Options::default()
    })
    .await;
    let cfg = fleet_config(&[up.url("http", "127.0.0.1")], "protocol = \"h2c\"");
    let gw = gateway(&cfg).await;
    let c = client();
    let mut all = Vec::new();
    for _ in 0..6 {
        all.extend(concurrent_chats(&c, gw.data_addr, 10).await);
    }
    assert_eq!(all.len(), 60);
    assert!(all.iter().all(|s| *s == StatusCode::OK), "{all:?}");
    assert!(
        up.connections() >= 60 / 5 / 2,
        "the server went away many times: {} connections",
        up.connections()
    );
}

#[tokio::test]
async fn streamed_answers_over_h2_keep_their_chunk_timing() {
    let up = H2Upstream::start(H2Options {
        chunks: Some((3, Duration::from_millis(300))),
        ..H2Options::default()
    })
    .await;
    let cfg = fleet_config(&[up.url("http", "127.0.0.1")], "protocol = \"h2c\"");
    let gw = gateway(&cfg).await;
    let resp = client()
        .request(post(gw.data_addr, "/v1/chat/completions", chat_body(true)))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let start = Instant::now();
    let mut arrivals = Vec::new();
    let mut text = String::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
            arrivals.push(start.elapsed());
        }
    }
    assert!(text.contains("[DONE]"), "{text}");
    assert!(arrivals.len() >= 3, "chunk by chunk: {arrivals:?}");
    let spread = *arrivals.last().unwrap() - arrivals[0];
    assert!(
        spread >= Duration::from_millis(450),
        "the chunks arrived as they were sent, not all at the end: {arrivals:?}"
    );
}

#[tokio::test]
async fn a_server_that_will_not_speak_h2_is_a_502_when_the_pool_requires_it() {
    let pki = Pki::new("noh2");
    let sim = sim(EndpointSpec::default()).await;
    // The front agrees to http/1.1 only.
    let front = TlsFront::start(&pki.issue("server", &["localhost"]), sim.addr(), None).await;
    let cfg = fleet_config(
        &[front.url("localhost")],
        &format!("protocol = \"h2\"\n{}", ca(&pki)),
    );
    let gw = gateway(&cfg).await;
    let r = chat_once(&gw).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(
        r.error_message().contains("offered by ALPN (h2)"),
        "{}",
        r.error_message()
    );

    // Left on auto, the same server is spoken to in HTTP/1.1.
    let cfg = fleet_config(&[front.url("localhost")], &ca(&pki));
    let gw = gateway(&cfg).await;
    assert_eq!(chat_once(&gw).await.status, StatusCode::OK);
}

/// A TCP relay to `to` that can be frozen: while frozen it passes nothing either way, as a
/// server that hangs (or a network that drops everything) would.
struct Relay {
    addr: std::net::SocketAddr,
    frozen: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
}

impl Relay {
    async fn start(to: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
        let relay = Relay {
            addr: listener.local_addr().unwrap(),
            frozen: Arc::default(),
            connections: Arc::default(),
        };
        let (frozen, conns) = (relay.frozen.clone(), relay.connections.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                conns.fetch_add(1, Ordering::SeqCst);
                let server = tokio::net::TcpStream::connect(to).await.unwrap();
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, frozen.clone()));
                tokio::spawn(pump(sr, cw, frozen.clone()));
            }
        });
        relay
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Frozen: what arrives is swallowed.
        if !frozen.load(Ordering::SeqCst) && to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_connection_whose_server_stops_answering_pings_is_replaced() {
    let up = H2Upstream::start(H2Options::default()).await;
    let relay = Relay::start(up.addr).await;
    let cfg = fleet_config(
        &[format!("http://{}", relay.addr)],
        "protocol = \"h2c\"\nh2_keepalive = \"200ms\"\nconnect_timeout = \"300ms\"",
    );
    let gw = gateway_with("workers = 1", &cfg).await;
    assert_eq!(chat_once(&gw).await.status, StatusCode::OK);
    relay.frozen.store(true, Ordering::SeqCst);
    // A PING goes out within 200 ms and is not answered within 300 ms.
    tokio::time::sleep(Duration::from_millis(900)).await;
    relay.frozen.store(false, Ordering::SeqCst);
    assert_eq!(chat_once(&gw).await.status, StatusCode::OK);
    assert_eq!(
        relay.connections.load(Ordering::SeqCst),
        2,
        "the silent connection was given up and a new one opened"
    );
}

#[test]
fn a_protocol_that_does_not_fit_the_endpoints_is_a_config_error() {
    let check = |urls: &[&str], extra: &str| {
        let urls: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
        let src = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n{}",
            fleet_config(&urls, extra)
        );
        flowgate_config::parse(&src, "t.toml", std::iter::empty())
            .err()
            .map(|e| e.problems().to_vec())
    };
    let p = check(&["http://127.0.0.1:1"], "protocol = \"h2\"").unwrap();
    assert_eq!(p[0].key.to_string(), "pools.llm.protocol");
    assert!(p[0].message.contains("h2c"), "{}", p[0].message);
    let p = check(&["https://example.com"], "protocol = \"h2c\"").unwrap();
    assert_eq!(p[0].key.to_string(), "pools.llm.protocol");
    let p = check(&["http://127.0.0.1:1"], "protocol = \"http2\"").unwrap();
    assert!(p[0].message.contains("expected"), "{}", p[0].message);
    assert!(check(&["http://127.0.0.1:1"], "protocol = \"h2c\"").is_none());
    assert!(check(&["https://example.com"], "protocol = \"h2\"").is_none());
}
