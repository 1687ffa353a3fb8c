//! The memory governor, forced with a limit far under what the test process holds: every
//! step is taken (the memory cache shrunk, fills stopped, low-priority requests shed with
//! 503 and Retry-After), counted and shown; a reload that lifts the limit undoes them.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::time::Duration;

use common::*;
use flowgate_sim::EndpointSpec;
use http::StatusCode;

const CACHE: &str = "[cache]\nenabled = true\nmemory = \"16MiB\"\n\n";

fn config(memory: &str, up: &str) -> String {
    format!(
        "{CACHE}[memory]\n{memory}\n\n{}",
        fleet_config(&[up.to_string()], "")
    )
}

async fn metrics(gw: &flowgate_gateway::Running) -> String {
    String::from_utf8_lossy(&send(&client(), get(gw.admin_addr, "/metrics")).await.body).to_string()
}

fn with_priority(
    addr: std::net::SocketAddr,
    body: bytes::Bytes,
    p: &str,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut r = post(addr, "/v1/chat/completions", body);
    r.headers_mut()
        .insert("x-flowgate-priority", p.parse().unwrap());
    r
}

#[tokio::test]
async fn a_small_limit_takes_every_step_and_lifting_it_undoes_them() {
    let up = sim(EndpointSpec::default()).await;
    // 16 MiB with levels at 1, 2 and 3 percent: whatever this process holds is past all three.
    let tight = "limit = \"16MiB\"\nshrink_at = 1\nno_fill_at = 2\nshed_at = 3\nrecover = 0.5\n\
                 interval = \"100ms\"\nretry_after = \"7s\"";
    let gw = gateway(&config(tight, &up.url())).await;
    let c = client();
    eventually(|| gw.gateway.cache().is_some_and(|c| c.fills_paused())).await;
    let m = metrics(&gw).await;
    assert!(m.contains("flowgate_memory_pressure_level 3"), "{m}");
    assert!(m.contains("flowgate_memory_limit_bytes 16777216"), "{m}");
    for step in ["shrink", "no_fill", "shed"] {
        assert!(
            m.contains(&format!(
                "flowgate_memory_governor_steps_total{{step=\"{step}\",direction=\"taken\"}} 1"
            )),
            "{step}: {m}"
        );
    }

    // Shed: a low-priority request gets 503 memory_pressure, told when to come back.
    let r = send(&c, with_priority(gw.data_addr, chat(0.0, "a"), "low")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["error"]["code"], "memory_pressure");
    assert_eq!(r.json()["error"]["type"], "overloaded");
    assert_eq!(r.headers["retry-after"], "7");
    assert_eq!(up.stats().requests, 0, "refused before going upstream");
    // Normal requests pass, but nothing is stored: the same request misses twice.
    for _ in 0..2 {
        let r = send(
            &c,
            post(gw.data_addr, "/v1/chat/completions", chat(0.0, "a")),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(cache_header(&r), "miss");
    }
    assert_eq!(up.stats().requests, 2);
    let (_, h) = admin(&gw, "GET", "/api/v1/performance/health", "").await;
    let memory = h["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "memory")
        .unwrap()
        .clone();
    assert_eq!(memory["status"], "degraded", "{memory}");
    assert!(
        memory["detail"].as_str().unwrap().contains("of 16 MiB"),
        "{memory}"
    );
    assert!(
        metrics(&gw)
            .await
            .contains("flowgate_memory_shed_requests_total 1")
    );

    // The limit lifted: every step undone.
    let relaxed = flowgate_config::parse(
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n{}",
            config("limit = \"off\"\ninterval = \"100ms\"", &up.url())
        ),
        "test.toml",
        std::iter::empty(),
    )
    .unwrap();
    gw.gateway.apply(relaxed);
    eventually(|| gw.gateway.cache().is_some_and(|c| !c.fills_paused())).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = send(&c, with_priority(gw.data_addr, chat(0.0, "b"), "low")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(cache_header(&r), "miss");
    let r = send(&c, with_priority(gw.data_addr, chat(0.0, "b"), "low")).await;
    assert_eq!(cache_header(&r), "hit-l1", "stored again");
    let m = metrics(&gw).await;
    assert!(m.contains("flowgate_memory_pressure_level 0"), "{m}");
    for step in ["shrink", "no_fill", "shed"] {
        assert!(
            m.contains(&format!(
                "flowgate_memory_governor_steps_total{{step=\"{step}\",direction=\"undone\"}} 1"
            )),
            "{step}: {m}"
        );
    }
}
