//! The response cache on the request path, against the simulator on loopback.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use flowgate_sim::{EndpointSpec, LatencyDist};
use http::StatusCode;

const CACHE: &str = "[cache]\nenabled = true\nmemory = \"16MiB\"\n\n";

fn chat(temperature: f64, content: &str) -> Bytes {
    Bytes::from(format!(
        "{{\"model\":\"gpt-4o-mini\",\"temperature\":{temperature},\"max_tokens\":5,\
          \"messages\":[{{\"role\":\"user\",\"content\":\"{content}\"}}]}}"
    ))
}

/// Sends `n` copies of a chat request at once; the replies in order.
async fn at_once(c: &TestClient, addr: std::net::SocketAddr, n: usize, body: Bytes) -> Vec<Reply> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (c, body) = (c.clone(), body.clone());
            tokio::spawn(async move { send(&c, post(addr, "/v1/chat/completions", body)).await })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn cache_header(r: &Reply) -> &str {
    r.headers
        .get("x-flowgate-cache")
        .map_or("", |v| v.to_str().unwrap())
}

#[tokio::test]
async fn deterministic_requests_are_answered_from_memory() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&format!("{CACHE}{}", fleet_config(&[up.url()], ""))).await;
    let c = client();
    let first = send(
        &c,
        post(gw.data_addr, "/v1/chat/completions", chat(0.0, "a")),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(cache_header(&first), "miss");
    // Same meaning: other member order, `0` for `0.0`, and a delivery field.
    let same = Bytes::from(
        "{\"messages\":[{\"content\":\"a\",\"role\":\"user\"}],\"user\":\"u-9\",\
          \"max_tokens\":5,\"temperature\":0,\"model\":\"gpt-4o-mini\"}",
    );
    let second = send(&c, post(gw.data_addr, "/v1/chat/completions", same)).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(cache_header(&second), "hit-l1");
    assert_eq!(second.body, first.body);
    assert_eq!(
        second.headers["content-type"],
        first.headers["content-type"]
    );
    assert!(second.headers.contains_key("age"));
    assert_ne!(
        second.headers["x-request-id"],
        first.headers["x-request-id"]
    );
    assert_eq!(up.stats().requests, 1, "the hit went upstream");

    // Another prompt misses; a sampled request goes around the cache.
    let other = send(
        &c,
        post(gw.data_addr, "/v1/chat/completions", chat(0.0, "b")),
    )
    .await;
    assert_eq!(cache_header(&other), "miss");
    for _ in 0..2 {
        let sampled = send(
            &c,
            post(gw.data_addr, "/v1/chat/completions", chat(0.7, "a")),
        )
        .await;
        assert_eq!(cache_header(&sampled), "bypass");
    }
    assert_eq!(up.stats().requests, 4);
}

#[tokio::test]
async fn clients_steer_the_cache_with_headers() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&format!("{CACHE}{}", fleet_config(&[up.url()], ""))).await;
    let c = client();
    let with = |name: &str, value: &str| {
        let mut r = post(gw.data_addr, "/v1/chat/completions", chat(0.0, "h"));
        r.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        r
    };
    assert_eq!(
        cache_header(&send(&c, with("cache-control", "no-store")).await),
        "bypass"
    );
    assert_eq!(
        cache_header(&send(&c, with("x-flowgate-cache-ttl", "60")).await),
        "miss"
    );
    assert_eq!(
        cache_header(&send(&c, with("accept", "*/*")).await),
        "hit-l1"
    );
    // no-cache: not read, but refreshed.
    assert_eq!(
        cache_header(&send(&c, with("cache-control", "no-cache")).await),
        "miss"
    );
    // Another namespace does not see the entry.
    assert_eq!(
        cache_header(&send(&c, with("x-flowgate-cache-namespace", "team-b")).await),
        "miss"
    );
    assert_eq!(up.stats().requests, 4);
    let bad = send(&c, with("x-flowgate-cache-ttl", "1h")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error_code(), "invalid_cache_header");
    assert!(
        bad.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("x-flowgate-cache-ttl")
    );
}

#[tokio::test]
async fn concurrent_identical_misses_reach_the_upstream_once() {
    let up = sim(EndpointSpec {
        latency: LatencyDist::Fixed(Duration::from_millis(300)),
        ..EndpointSpec::default()
    })
    .await;
    let gw = gateway(&format!("{CACHE}{}", fleet_config(&[up.url()], ""))).await;
    let c = client();
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    let mut bodies = std::collections::BTreeSet::new();
    for r in at_once(&c, gw.data_addr, 100, chat(0.0, "same")).await {
        assert_eq!(r.status, StatusCode::OK);
        *kinds.entry(cache_header(&r).to_string()).or_default() += 1;
        bodies.insert(r.body);
    }
    assert_eq!(up.stats().requests, 1, "{kinds:?}");
    assert_eq!(kinds.get("miss"), Some(&1), "{kinds:?}");
    assert_eq!(bodies.len(), 1, "every client got the one answer");
}

#[tokio::test]
async fn failed_leaders_release_their_followers_and_errors_are_not_cached() {
    let up = sim(EndpointSpec {
        latency: LatencyDist::Fixed(Duration::from_millis(200)),
        error_rate: 1.0,
        ..EndpointSpec::default()
    })
    .await;
    let gw = gateway(&format!("{CACHE}{}", fleet_config(&[up.url()], ""))).await;
    let c = client();
    for r in at_once(&c, gw.data_addr, 5, chat(0.0, "boom")).await {
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(cache_header(&r), "miss");
    }
    // One leader, then every follower on its own: nothing was stored.
    assert_eq!(up.stats().requests, 5);
    let again = send(
        &c,
        post(gw.data_addr, "/v1/chat/completions", chat(0.0, "boom")),
    )
    .await;
    assert_eq!(cache_header(&again), "miss");
}
