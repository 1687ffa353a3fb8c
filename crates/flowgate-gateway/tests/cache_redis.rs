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

fn chat(content: &str) -> Bytes {
    Bytes::from(format!(
        "{{\"model\":\"gpt-4o-mini\",\"temperature\":0,\"max_tokens\":5,\
          \"messages\":[{{\"role\":\"user\",\"content\":\"{content}\"}}]}}"
    ))
}

fn config(redis: &RedisServer, upstream: &str) -> String {
    format!(
        "[cache]\nenabled = true\nmemory = \"16MiB\"\n\n\
         [cache.redis]\nurl = \"{}\"\ntimeout = \"200ms\"\nbreaker_failures = 2\nbreaker_cooldown = \"300ms\"\n\n{}",
        redis.url(),
        fleet_config(&[upstream.to_string()], "")
    )
}

fn cache_header(r: &Reply) -> String {
    r.headers
        .get("x-flowgate-cache")
        .map_or(String::new(), |v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn gateways_share_answers_through_redis() {
    let redis = RedisServer::start().await;
    let up = sim(EndpointSpec::default()).await;
    let a = gateway(&config(&redis, &up.url())).await;
    let b = gateway(&config(&redis, &up.url())).await;
    let c = client();
    let url = "/v1/chat/completions";
    let first = send(&c, post(a.data_addr, url, chat("shared"))).await;
    assert_eq!(cache_header(&first), "miss");
    let writes = || a.gateway.cache().unwrap().stats().redis.unwrap().writes;
    eventually(|| writes() == 1).await;

    let other = send(&c, post(b.data_addr, url, chat("shared"))).await;
    assert_eq!(cache_header(&other), "hit-l2");
    assert_eq!(other.body, first.body);
    assert!(other.headers.contains_key("age"));
    let again = send(&c, post(b.data_addr, url, chat("shared"))).await;
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
    let warm = send(&c, post(gw.data_addr, url, chat("before"))).await;
    assert_eq!(cache_header(&warm), "miss");
    eventually(|| cache.stats().redis.unwrap().writes == 1).await;

    redis.kill();
    for i in 0..10 {
        let r = send(&c, post(gw.data_addr, url, chat(&format!("down-{i}")))).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "a request failed because Redis is down"
        );
        assert_eq!(cache_header(&r), "miss");
    }
    // Memory still answers, and the breaker keeps requests away from the dead Redis.
    let hit = send(&c, post(gw.data_addr, url, chat("before"))).await;
    assert_eq!(cache_header(&hit), "hit-l1");
    let s = cache.stats().redis.unwrap();
    assert!(s.errors + s.timeouts >= 2, "{s:?}");
    assert!(s.skipped > 0, "the breaker never opened: {s:?}");

    // Redis comes back: after the cooldown the cache writes to it again.
    let _redis = RedisServer::on_port(port).await;
    let mut recovered = false;
    for i in 0..100 {
        let r = send(&c, post(gw.data_addr, url, chat(&format!("after-{i}")))).await;
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
