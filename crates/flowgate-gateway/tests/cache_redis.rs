//! The Redis tier (L2) against a private redis-server on loopback, killed mid-test.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use common::*;
use flowgate_gateway::Running;
use flowgate_sim::{EndpointSpec, SimServer};
use http::StatusCode;

fn config(redis: &RedisServer, upstream: &str) -> String {
    format!(
        "[cache]\nenabled = true\nmemory = \"16MiB\"\n\n\
         [cache.redis]\nurl = \"{}\"\ntimeout = \"200ms\"\nbreaker_failures = 2\nbreaker_cooldown = \"300ms\"\n\n{}",
        redis.url(),
        fleet_config(&[upstream.to_string()], "")
    )
}

/// A configuration with all three tiers (the disk in a fresh directory named after `test`,
/// returned for removal), and `cache_extra` in the `[cache]` section.
fn all_tiers(
    redis: &RedisServer,
    up: &SimServer,
    test: &str,
    cache_extra: &str,
) -> (String, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("flowgate-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = config(redis, &up.url()).replacen(
        "[cache.redis]",
        &format!(
            "{cache_extra}[cache.disk]\npath = \"{}\"\n\n[cache.redis]",
            dir.join("l3.redb").display()
        ),
        1,
    );
    (cfg, dir)
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
async fn an_invalidation_reaches_the_memory_tier_of_every_replica() {
    let redis = RedisServer::start().await;
    let up = sim(EndpointSpec::default()).await;
    let a = gateway(&config(&redis, &up.url())).await;
    let b = gateway(&config(&redis, &up.url())).await;
    // Both replicas listen on the invalidation channel (a message nobody can read is
    // ignored; PUBLISH answers how many got it).
    let mut listening = false;
    for _ in 0..200 {
        let got = redis_cmd(redis.port, &["PUBLISH", "flowgate:invalidations", "probe"]).await;
        if got == ":2" {
            listening = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(listening, "the replicas did not subscribe to invalidations");
    let c = client();
    let url = "/v1/chat/completions";
    let ask = |gw: &Running| post(gw.data_addr, url, chat(0.0, "everywhere"));
    assert_eq!(cache_header(&send(&c, ask(&a)).await), "miss");
    let a_cache = a.gateway.cache().unwrap().clone();
    eventually(|| a_cache.stats().redis.unwrap().writes == 1).await;
    assert_eq!(cache_header(&send(&c, ask(&b)).await), "hit-l2");
    assert_eq!(cache_header(&send(&c, ask(&b)).await), "hit-l1");

    // Invalidated through a: b's memory tier loses the entry too.
    let r = send(&c, invalidate(a.admin_addr, r#"{"namespace": "chat"}"#)).await;
    assert_eq!(r.json()["invalidated"]["memory"], 1);
    let b_cache = b.gateway.cache().unwrap().clone();
    eventually(|| b_cache.stats().entries == 0).await;
    assert_eq!(cache_header(&send(&c, ask(&b)).await), "miss");
    assert_eq!(up.stats().requests, 2);
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
    let (cfg, dir) = all_tiers(&redis, &up, "invalidate", "");
    let gw = gateway(&with_namespace_header(&cfg)).await;
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

    let r = send(&c, invalidate(gw.admin_addr, r#"{"namespace": "chat"}"#)).await;
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

    let r = send(&c, invalidate(gw.admin_addr, r#"{"all": true}"#)).await;
    assert_eq!(r.json()["invalidated"]["memory"], 2);
    for bad in [
        r#"{}"#,
        r#"{"key": "a", "all": true}"#,
        r#"{"tag": ""}"#,
        "nope",
        r#"{"all": false}"#,
    ] {
        let r = send(&c, invalidate(gw.admin_addr, bad)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.error_code(), "invalid_selector");
    }
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn tags_invalidate_their_entries_in_every_tier() {
    let redis = RedisServer::start().await;
    let up = sim(EndpointSpec::default()).await;
    let (cfg, dir) = all_tiers(
        &redis,
        &up,
        "tags",
        "[[cache.categories]]\nname = \"cost\"\nheader = \"x-analysis-type\"\nvalue = \"cost\"\nttl = \"1h\"\ntags = [\"cost\"]\n\n",
    );
    let gw = gateway(&cfg).await;
    let c = client();
    let url = "/v1/chat/completions";
    let cache = gw.gateway.cache().unwrap().clone();
    let with = |content: &str, name: &'static str, value: &'static str| {
        let mut r = post(gw.data_addr, url, chat(0.0, content));
        r.headers_mut().insert(name, value.parse().unwrap());
        r
    };
    let invoice = || with("invoice", "x-flowgate-cache-tags", "invoices, team:billing");
    let cost = || with("cost", "x-analysis-type", "cost");
    let plain = || post(gw.data_addr, url, chat(0.0, "plain"));
    for r in [invoice(), cost(), plain()] {
        assert_eq!(cache_header(&send(&c, r).await), "miss");
    }
    eventually(|| cache.stats().redis.unwrap().writes == 3).await;
    cache.flush().await;

    let one_each = serde_json::json!({"memory": 1, "redis": 1, "disk": 1});
    let r = send(&c, invalidate(gw.admin_addr, r#"{"tag": "team:billing"}"#)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["invalidated"], one_each);
    // The category's tag, given by configuration.
    let r = send(&c, invalidate(gw.admin_addr, r#"{"tag": "cost"}"#)).await;
    assert_eq!(r.json()["invalidated"], one_each);
    // Gone below memory too: a second gateway on the same Redis and disk would miss; here
    // the entries are fetched again, the untagged one is still there.
    assert_eq!(cache_header(&send(&c, invoice()).await), "miss");
    assert_eq!(cache_header(&send(&c, cost()).await), "miss");
    assert_eq!(cache_header(&send(&c, plain()).await), "hit-l1");
    assert_eq!(up.stats().requests, 5);
    // The tag's set in Redis goes with its entries.
    eventually(|| cache.stats().redis.unwrap().writes == 5).await;
    let set = ["EXISTS", "flowgate:tag:{invoices}"];
    let ttl = redis_cmd(redis.port, &["PTTL", "flowgate:tag:{invoices}"]).await;
    assert!(
        ttl.trim_start_matches(':').parse::<i64>().unwrap() > 0,
        "{ttl}"
    );
    let r = send(&c, invalidate(gw.admin_addr, r#"{"tag": "invoices"}"#)).await;
    assert_eq!(r.json()["invalidated"], one_each);
    assert_eq!(redis_cmd(redis.port, &set).await, ":0");

    // A malformed tag list is the client's error.
    let r = send(&c, with("x", "x-flowgate-cache-tags", "a b")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.error_message().contains("x-flowgate-cache-tags"),
        "{}",
        r.error_message()
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends the same request to both gateways at once.
async fn both(c: &TestClient, a: &Running, b: &Running, content: &str) -> (Reply, Reply) {
    let url = "/v1/chat/completions";
    tokio::join!(
        send(c, post(a.data_addr, url, chat(0.0, content))),
        send(c, post(b.data_addr, url, chat(0.0, content)))
    )
}

/// A Redis, an upstream behaving as `spec`, and two gateways sharing them with `lock_wait`.
async fn replicas(
    spec: EndpointSpec,
    lock_wait: &str,
) -> (RedisServer, SimServer, Running, Running) {
    let redis = RedisServer::start().await;
    let up = sim(spec).await;
    let cfg = config(&redis, &up.url()).replacen(
        "[cache.redis]",
        &format!("[cache.redis]\nlock_wait = \"{lock_wait}\""),
        1,
    );
    let a = gateway(&cfg).await;
    let b = gateway(&cfg).await;
    (redis, up, a, b)
}

fn slow(latency_ms: u64, error_rate: f64) -> EndpointSpec {
    EndpointSpec {
        latency: flowgate_sim::LatencyDist::Fixed(std::time::Duration::from_millis(latency_ms)),
        error_rate,
        ..EndpointSpec::default()
    }
}

#[tokio::test]
async fn replicas_go_upstream_once_for_a_key_through_the_fetch_lock() {
    let (_redis, up, a, b) = replicas(slow(400, 0.0), "5s").await;
    let c = client();
    let (ra, rb) = both(&c, &a, &b, "locked").await;
    assert_eq!((ra.status, rb.status), (StatusCode::OK, StatusCode::OK));
    let mut seen = [cache_header(&ra), cache_header(&rb)];
    seen.sort();
    assert_eq!(
        seen,
        ["hit-l2", "miss"],
        "one replica must wait for the other"
    );
    assert_eq!(ra.body, rb.body);
    assert_eq!(up.stats().requests, 1);
    let redis_stats = |g: &Running| g.gateway.cache().unwrap().stats().redis.unwrap();
    let (sa, sb) = (redis_stats(&a), redis_stats(&b));
    assert_eq!(
        (sa.lock_waits + sb.lock_waits, sa.lock_hits + sb.lock_hits),
        (1, 1)
    );
}

#[tokio::test]
async fn the_fetch_lock_wait_is_bounded() {
    let (_redis, up, a, b) = replicas(slow(1500, 0.0), "100ms").await;
    let c = client();
    let (ra, rb) = both(&c, &a, &b, "slow").await;
    assert_eq!((ra.status, rb.status), (StatusCode::OK, StatusCode::OK));
    assert_eq!((cache_header(&ra), cache_header(&rb)), ("miss", "miss"));
    assert_eq!(
        up.stats().requests,
        2,
        "the waiting replica must give up and go upstream"
    );
    let waits: u64 = [&a, &b]
        .iter()
        .map(|g| g.gateway.cache().unwrap().stats().redis.unwrap().lock_waits)
        .sum();
    assert_eq!(waits, 1);
}

#[tokio::test]
async fn a_replica_whose_fetch_fails_releases_the_lock_at_once() {
    let (_redis, up, a, b) = replicas(slow(300, 1.0), "60s").await;
    let c = client();
    // Were the lock left to expire, the waiting replica would wait a minute.
    let (ra, rb) = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        both(&c, &a, &b, "fails"),
    )
    .await
    .expect("the waiting replica waited for the lock to expire instead of its release");
    assert!(ra.status.is_server_error() && rb.status.is_server_error());
    assert_eq!(up.stats().requests, 2);
}

#[tokio::test]
async fn a_redis_cluster_is_shared_and_invalidated_across_its_nodes() {
    let cluster = RedisCluster::start().await;
    let up = sim(EndpointSpec::default()).await;
    // One seed node: the client discovers the others.
    let cfg = format!(
        "[cache]\nenabled = true\nmemory = \"16MiB\"\n\n\
         [cache.redis]\ncluster = true\nurls = [\"redis://127.0.0.1:{}\"]\ntimeout = \"500ms\"\n\n{}",
        cluster.nodes[0].port,
        fleet_config(&[up.url()], "")
    );
    let a = gateway(&cfg).await;
    let b = gateway(&cfg).await;
    let c = client();
    let url = "/v1/chat/completions";
    let prompts: Vec<String> = (0..12).map(|i| format!("cluster-{i}")).collect();
    for (i, p) in prompts.iter().enumerate() {
        let mut req = post(a.data_addr, url, chat(0.0, p));
        if i % 2 == 0 {
            req.headers_mut()
                .insert("x-flowgate-cache-tags", "even".parse().unwrap());
        }
        let r = send(&c, req).await;
        assert_eq!(cache_header(&r), "miss");
    }
    let writes = || a.gateway.cache().unwrap().stats().redis.unwrap().writes;
    eventually(|| writes() == 12).await;
    for p in &prompts {
        let r = send(&c, post(b.data_addr, url, chat(0.0, p))).await;
        assert_eq!(cache_header(&r), "hit-l2", "{p}");
    }
    assert_eq!(up.stats().requests, 12);
    let sizes = cluster.sizes().await;
    // The answers and the set of the "even" tag.
    assert_eq!(sizes.iter().sum::<u64>(), 13, "{sizes:?}");
    assert!(
        sizes.iter().filter(|&&n| n > 0).count() >= 2,
        "keys must spread over the slots of several nodes: {sizes:?}"
    );
    // A tag's members live in the slots of several nodes.
    let r = send(&c, invalidate(a.admin_addr, r#"{"tag": "even"}"#)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["invalidated"]["redis"], 6);
    assert_eq!(cluster.sizes().await.iter().sum::<u64>(), 6);
    let r = send(&c, invalidate(a.admin_addr, r#"{"all": true}"#)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["invalidated"]["redis"], 6);
    assert_eq!(cluster.sizes().await, [0, 0, 0]);
}
