//! Rate limits shared by gateway replicas through a private redis-server on loopback
//! (killed and brought back mid-test), and through a private Redis Cluster.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::time::Duration;

use common::*;
use flowgate_gateway::Running;
use flowgate_sim::EndpointSpec;
use http::StatusCode;

/// One limit `all` of `n` requests per minute (burst `n`) on the chat route, shared through
/// `redis` (`extra` added to `[shared_limits]`).
fn config(redis: &str, n: u64, extra: &str, upstream: &str) -> String {
    format!(
        "[shared_limits]\n{redis}\n{extra}\n\n\
         [[rate_limits]]\nname = \"all\"\nrequests = {n}\nper = \"1m\"\nroutes = [\"chat\"]\n\n{}",
        fleet_config(&[upstream.to_string()], "")
    )
}

async fn ask(c: &TestClient, gw: &Running) -> Reply {
    send(
        c,
        post(gw.data_addr, "/v1/chat/completions", chat_body(false)),
    )
    .await
}

/// The statuses of `n` requests sent to `gateways` in turn.
async fn statuses(c: &TestClient, gateways: &[&Running], n: usize) -> Vec<StatusCode> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(ask(c, gateways[i % gateways.len()]).await.status);
    }
    out
}

fn count(s: &[StatusCode], status: StatusCode) -> usize {
    s.iter().filter(|&&x| x == status).count()
}

#[tokio::test]
async fn two_gateways_enforce_one_limit_through_redis() {
    let redis = RedisServer::start().await;
    let up = sim(EndpointSpec::default()).await;
    let cfg = config(&format!("url = \"{}\"", redis.url()), 10, "", &up.url());
    let (a, b) = (gateway(&cfg).await, gateway(&cfg).await);
    let c = client();
    // 24 requests, half to each: 10 pass in all, not 10 each.
    let s = statuses(&c, &[&a, &b], 24).await;
    assert_eq!(count(&s, StatusCode::OK), 10, "{s:?}");
    assert_eq!(count(&s, StatusCode::TOO_MANY_REQUESTS), 14, "{s:?}");
    assert_eq!(up.stats().requests, 10);
    // Both say so, from the shared count.
    for gw in [&a, &b] {
        let r = ask(&c, gw).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers["x-ratelimit-remaining-requests"], "0");
        assert_eq!(r.headers["x-ratelimit-limit-requests"], "10");
    }
    // One key per limit and value, versioned, gone once the value is back to its burst.
    let ttl: i64 = redis_cmd(redis.port, &["PTTL", "flowgate:rl1:all:"])
        .await
        .trim_start_matches(':')
        .parse()
        .unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "PTTL {ttl}");
}

#[tokio::test]
async fn limits_fall_back_to_a_local_share_while_redis_is_down_and_are_shared_again_after() {
    let mut redis = RedisServer::start().await;
    let port = redis.port;
    let up = sim(EndpointSpec::default()).await;
    let cfg = config(
        &format!("url = \"{}\"", redis.url()),
        4,
        "timeout = \"200ms\"\nbreaker_failures = 1\nbreaker_cooldown = \"100ms\"\nfallback_share = 0.5",
        &up.url(),
    );
    let gw = gateway(&cfg).await;
    let c = client();
    let fallback = |gw: &Running| gw.gateway.rate_limit_fallback();
    assert_eq!(statuses(&c, &[&gw], 2).await, [StatusCode::OK; 2]);
    assert_eq!(fallback(&gw), Some((false, 0)));

    redis.kill();
    // Requests go on, limited by this replica's half of the limit (a burst of 2), counted
    // apart from the 2 Redis had: nothing fails because Redis is gone.
    let s = statuses(&c, &[&gw], 4).await;
    assert_eq!(
        s,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let (local, checks) = fallback(&gw).unwrap();
    assert!(local && checks == 4, "{local} {checks}");
    let metrics =
        String::from_utf8_lossy(&send(&c, get(gw.admin_addr, "/metrics")).await.body).into_owned();
    assert_eq!(metric(&metrics, "flowgate_rate_limit_redis_fallback "), 1.0);
    assert_eq!(
        metric(&metrics, "flowgate_rate_limit_fallback_checks_total "),
        4.0
    );

    // Back (empty, as after a crash): once the breaker lets a request through and the
    // connection is made again, counts are shared again: 4 fresh requests pass.
    let _redis = RedisServer::on_port(port).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fallback(&gw).unwrap().0 {
        assert!(
            std::time::Instant::now() < deadline,
            "limits never shared again"
        );
        ask(&c, &gw).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The request that found Redis back was counted there: 3 of the 4 are left.
    let s = statuses(&c, &[&gw], 4).await;
    assert_eq!(count(&s, StatusCode::OK), 3, "{s:?}");
    assert_eq!(
        redis_cmd(port, &["EXISTS", "flowgate:rl1:all:"]).await,
        ":1"
    );
}

#[tokio::test]
async fn a_shared_limit_works_on_a_redis_cluster() {
    let cluster = RedisCluster::start().await;
    let up = sim(EndpointSpec::default()).await;
    let cfg = config(
        &format!(
            "cluster = true\nurls = [\"redis://127.0.0.1:{}\"]\ntimeout = \"500ms\"",
            cluster.nodes[0].port
        ),
        5,
        "",
        &up.url(),
    );
    let (a, b) = (gateway(&cfg).await, gateway(&cfg).await);
    let c = client();
    let s = statuses(&c, &[&a, &b], 9).await;
    assert_eq!(count(&s, StatusCode::OK), 5, "{s:?}");
    assert_eq!(a.gateway.rate_limit_fallback(), Some((false, 0)));
}

#[tokio::test]
async fn a_gateway_starts_and_limits_locally_when_redis_is_down_from_the_start() {
    let port = dead_port().await;
    let up = sim(EndpointSpec::default()).await;
    let cfg = config(
        &format!("url = \"redis://127.0.0.1:{port}\""),
        2,
        "timeout = \"100ms\"",
        &up.url(),
    );
    let gw = gateway(&cfg).await;
    let c = client();
    let s = statuses(&c, &[&gw], 3).await;
    assert_eq!(
        s,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert!(gw.gateway.rate_limit_fallback().unwrap().0);
}

#[tokio::test]
async fn shared_token_reservations_are_settled_in_redis_with_the_reported_usage() {
    let redis = RedisServer::start().await;
    let up = sim(EndpointSpec::default()).await;
    // 1000 tokens an hour: 3.6 s per token, so the test's own time gives nothing back.
    let cfg = format!(
        "[shared_limits]\nurl = \"{}\"\n\n\
         [[rate_limits]]\nname = \"tph\"\ntokens = 1000\nper = \"1h\"\nroutes = [\"chat\"]\n\n{}",
        redis.url(),
        fleet_config(&[up.url()], "")
    );
    let (a, b) = (gateway(&cfg).await, gateway(&cfg).await);
    let c = client();
    // A prompt of 12 tokens (see tests/admission.rs) allowing 100 more: 112 reserved.
    let ask = |gw: &Running, max_tokens: u64| {
        post(
            gw.data_addr,
            "/v1/chat/completions",
            bytes::Bytes::from(format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":"abcdefghijklmnop"}}],"max_tokens":{max_tokens}}}"#
            )),
        )
    };
    let remaining = |r: &Reply| -> u64 {
        r.headers["x-ratelimit-remaining-tokens"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let first = send(&c, ask(&a, 100)).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(remaining(&first), 1000 - 112);
    let used = first.json()["usage"]["total_tokens"].as_u64().unwrap();
    assert!(used < 112);
    // The settlement goes to Redis from a task of its own: wait until the key's life
    // (the time until its burst is full again) is the usage's, not the reservation's.
    let pttl = || async {
        redis_cmd(redis.port, &["PTTL", "flowgate:rl1:tph:"])
            .await
            .trim_start_matches(':')
            .parse::<u64>()
            .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while pttl().await > (used + 1) * 3600 {
        assert!(std::time::Instant::now() < deadline, "never settled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The other replica sees the settled count.
    let second = send(&c, ask(&b, 1)).await;
    assert_eq!(remaining(&second), 1000 - used - 13);
}
