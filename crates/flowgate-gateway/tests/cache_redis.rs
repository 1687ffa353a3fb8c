//! The Redis tier (L2) against a private redis-server on loopback, killed mid-test.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use bytes::Bytes;
use common::*;
use flowgate_sim::EndpointSpec;
use http::StatusCode;

fn config(redis: &RedisServer, upstream: &str) -> String {
    format!(
        "[cache]\nenabled = true\nmemory = \"16MiB\"\n\n\
         [cache.redis]\nurl = \"{}\"\ntimeout = \"200ms\"\nbreaker_failures = 2\nbreaker_cooldown = \"300ms\"\n\n{}",
        redis.url(),
        fleet_config(&[upstream.to_string()], "")
    )
}

#[tokio::test]
async fn gateways_share_answers_through_redis() {
    let redis = RedisServer::start().await;
    let up = sim(EndpointSpec::default()).await;
    let a = gateway(&config(&redis, &up.url())).await;
    let b = gateway(&config(&redis, &up.url())).await;
    let c = client();
    let url = "/v1/chat/completions";
    let first = send(&c, post(a.data_addr, url, chat(0.0, "shared"))).await;
    assert_eq!(cache_header(&first), "miss");
    let writes = || a.gateway.cache().unwrap().stats().redis.unwrap().writes;
    eventually(|| writes() == 1).await;

    let other = send(&c, post(b.data_addr, url, chat(0.0, "shared"))).await;
    assert_eq!(cache_header(&other), "hit-l2");
    assert_eq!(other.body, first.body);
    assert!(other.headers.contains_key("age"));
    let again = send(&c, post(b.data_addr, url, chat(0.0, "shared"))).await;
    assert_eq!(cache_header(&again), "hit-l1", "not promoted to memory");
    assert_eq!(up.stats().requests, 1);
    assert_eq!(b.gateway.cache().unwrap().stats().hits_redis, 1);
}

#[tokio::test]
async fn requests_keep_succeeding_while_redis_is_down_and_it_is_used_again_after() {
    let mut redis = RedisServer::start().await;
    let port = redis.port;
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&config(&redis, &up.url())).await;
    let c = client();
    let url = "/v1/chat/completions";
    let cache = gw.gateway.cache().unwrap().clone();
    let warm = send(&c, post(gw.data_addr, url, chat(0.0, "before"))).await;
    assert_eq!(cache_header(&warm), "miss");
    eventually(|| cache.stats().redis.unwrap().writes == 1).await;

    redis.kill();
    for i in 0..10 {
        let r = send(&c, post(gw.data_addr, url, chat(0.0, &format!("down-{i}")))).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "a request failed because Redis is down"
        );
        assert_eq!(cache_header(&r), "miss");
    }
    // Memory still answers, and the breaker keeps requests away from the dead Redis.
    let hit = send(&c, post(gw.data_addr, url, chat(0.0, "before"))).await;
    assert_eq!(cache_header(&hit), "hit-l1");
    let s = cache.stats().redis.unwrap();
    assert!(s.errors + s.timeouts >= 2, "{s:?}");
    assert!(s.skipped > 0, "the breaker never opened: {s:?}");

    // Redis comes back: after the cooldown the cache writes to it again.
    let _redis = RedisServer::on_port(port).await;
    let mut recovered = false;
    for i in 0..100 {
        let r = send(
            &c,
            post(gw.data_addr, url, chat(0.0, &format!("after-{i}"))),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        if cache.stats().redis.unwrap().writes >= 2 {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(recovered, "Redis was not used again after it came back");
    assert_eq!(up.stats().requests, up.stats().completed);
}

#[tokio::test]
async fn invalidation_reaches_every_tier() {
    let redis = RedisServer::start().await;
    let up = sim(EndpointSpec::default()).await;
    let dir = std::env::temp_dir().join(format!("flowgate-invalidate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = config(&redis, &up.url()).replacen(
        "[cache.redis]",
        &format!(
            "[cache.disk]\npath = \"{}\"\n\n[cache.redis]",
            dir.join("l3.redb").display()
        ),
        1,
    );
    let gw = gateway(&cfg).await;
    let c = client();
    let url = "/v1/chat/completions";
    let cache = gw.gateway.cache().unwrap().clone();
    let team_b = || {
        let mut r = post(gw.data_addr, url, chat(0.0, "b"));
        r.headers_mut()
            .insert("x-flowgate-cache-namespace", "team-b".parse().unwrap());
        r
    };
    for body in [chat(0.0, "one"), chat(0.0, "two")] {
        assert_eq!(
            cache_header(&send(&c, post(gw.data_addr, url, body)).await),
            "miss"
        );
    }
    assert_eq!(cache_header(&send(&c, team_b()).await), "miss");
    eventually(|| cache.stats().redis.unwrap().writes == 3).await;
    cache.flush().await;

    let admin = |body: &str| {
        post(
            gw.admin_addr,
            "/api/v1/performance/cache/invalidate",
            Bytes::from(body.to_string()),
        )
    };
    let r = send(&c, admin(r#"{"namespace": "chat"}"#)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json()["invalidated"],
        serde_json::json!({"memory": 2, "redis": 2, "disk": 2})
    );
    // Gone from every tier: upstream again. The other namespace is untouched.
    assert_eq!(
        cache_header(&send(&c, post(gw.data_addr, url, chat(0.0, "one"))).await),
        "miss"
    );
    assert_eq!(cache_header(&send(&c, team_b()).await), "hit-l1");

    let stats = send(&c, get(gw.admin_addr, "/api/v1/performance/cache/stats")).await;
    assert_eq!(stats.status, StatusCode::OK);
    let s = stats.json();
    assert_eq!(s["hits_memory"], 1);
    assert_eq!(s["misses"], 4);
    assert!(s["hit_rate"].as_f64().unwrap() > 0.19);
    assert!(s["disk"]["compression_ratio"].as_f64().is_some());

    let r = send(&c, admin(r#"{"all": true}"#)).await;
    assert_eq!(r.json()["invalidated"]["memory"], 2);
    for bad in [
        r#"{}"#,
        r#"{"key": "a", "all": true}"#,
        r#"{"tag": "x"}"#,
        "nope",
        r#"{"all": false}"#,
    ] {
        let r = send(&c, admin(bad)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.error_code(), "invalid_selector");
    }
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}
