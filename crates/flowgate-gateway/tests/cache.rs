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
    let gw = gateway(&with_namespace_header(&format!(
        "{CACHE}{}",
        fleet_config(&[up.url()], "")
    )))
    .await;
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
    // Another namespace does not see the entry (the route lets clients pick one).
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

fn stream_chat(content: &str, include_usage: bool) -> Bytes {
    Bytes::from(format!(
        "{{\"model\":\"gpt-4o-mini\",\"temperature\":0,\"max_tokens\":5,\"stream\":true,\
          \"stream_options\":{{\"include_usage\":{include_usage}}},\
          \"messages\":[{{\"role\":\"user\",\"content\":\"{content}\"}}]}}"
    ))
}

/// The events' JSON objects of an SSE body, checking it ends with `[DONE]`.
fn events(body: &[u8]) -> Vec<serde_json::Value> {
    let text = std::str::from_utf8(body).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// The text a chat stream carries.
fn streamed_text(body: &[u8]) -> String {
    events(body)
        .iter()
        .filter_map(|e| {
            e["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

#[tokio::test]
async fn streamed_answers_are_stored_and_replayed_as_sse_or_json() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&format!("{CACHE}{}", fleet_config(&[up.url()], ""))).await;
    let c = client();
    let url = "/v1/chat/completions";
    let first = send(&c, post(gw.data_addr, url, stream_chat("s", true))).await;
    assert_eq!(cache_header(&first), "miss");
    assert_eq!(first.headers["content-type"], "text/event-stream");
    let text = streamed_text(&first.body);
    assert_eq!(text.split(' ').count(), 5, "{text}");
    let usage = events(&first.body).last().unwrap()["usage"].clone();
    assert_eq!(usage["completion_tokens"], 5);

    // The same request replays the stream (re-chunked: the whole message in one event).
    let same = send(&c, post(gw.data_addr, url, stream_chat("s", true))).await;
    assert_eq!(cache_header(&same), "hit-l1");
    assert_eq!(streamed_text(&same.body), text);
    assert_eq!(events(&same.body).last().unwrap()["usage"], usage);

    // A non-streaming client gets the assembled answer.
    let as_json = send(&c, post(gw.data_addr, url, chat(0.0, "s"))).await;
    assert_eq!(cache_header(&as_json), "hit-l1");
    assert_eq!(as_json.headers["content-type"], "application/json");
    let v = as_json.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], text.as_str());
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"], usage);

    // A streaming client that did not ask for usage gets a stream without a usage chunk.
    let replay = send(&c, post(gw.data_addr, url, stream_chat("s", false))).await;
    assert_eq!(cache_header(&replay), "hit-l1");
    assert_eq!(replay.headers["content-type"], "text/event-stream");
    assert_eq!(streamed_text(&replay.body), text);
    assert!(
        events(&replay.body)
            .iter()
            .all(|e| e.get("usage").is_none())
    );
    assert_eq!(up.stats().requests, 1, "hits went upstream");

    // And a JSON answer replays as a stream.
    let plain = chat(0.0, "j");
    let stored = send(&c, post(gw.data_addr, url, plain)).await;
    assert_eq!(cache_header(&stored), "miss");
    let as_stream = send(&c, post(gw.data_addr, url, stream_chat("j", true))).await;
    assert_eq!(cache_header(&as_stream), "hit-l1");
    assert_eq!(
        streamed_text(&as_stream.body),
        stored.json()["choices"][0]["message"]["content"]
    );
    assert_eq!(
        events(&as_stream.body).last().unwrap()["usage"],
        stored.json()["usage"]
    );
    assert_eq!(up.stats().requests, 2);
}

/// Starts a streaming request and returns once its response head is in.
async fn open_stream(
    c: &TestClient,
    addr: std::net::SocketAddr,
    body: Bytes,
) -> http::Response<hyper::body::Incoming> {
    let resp = tokio::time::timeout(
        Duration::from_secs(20),
        c.request(post(addr, "/v1/chat/completions", body)),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp
}

async fn read_all(resp: http::Response<hyper::body::Incoming>) -> Result<Bytes, String> {
    use http_body_util::BodyExt;
    resp.into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn one_upstream_stream_fans_out_to_every_waiting_client_chunk_by_chunk() {
    use http_body_util::BodyExt;
    let up = sim(EndpointSpec {
        token_delay: Duration::from_millis(100),
        ..EndpointSpec::default()
    })
    .await;
    let gw = gateway(&format!("{CACHE}{}", fleet_config(&[up.url()], ""))).await;
    let c = client();
    let body = stream_chat("fan", true);
    let leader = open_stream(&c, gw.data_addr, body.clone()).await;
    assert_eq!(leader.headers()["x-flowgate-cache"], "miss");

    // A follower gets its first chunk while the upstream is still streaming.
    let follower = open_stream(&c, gw.data_addr, body.clone()).await;
    assert_eq!(follower.headers()["x-flowgate-cache"], "coalesced");
    assert_eq!(follower.headers()["content-type"], "text/event-stream");
    let mut f = follower.into_body();
    let first = f.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(first.starts_with(b"data: "), "{first:?}");
    assert_eq!(up.stats().completed, 0, "the follower waited for the end");

    // 98 more streaming clients and one JSON client join while it streams.
    let tasks: Vec<_> = (0..98)
        .map(|_| {
            let (c, body) = (c.clone(), body.clone());
            let addr = gw.data_addr;
            tokio::spawn(async move {
                let r = open_stream(&c, addr, body).await;
                let kind = r.headers()["x-flowgate-cache"]
                    .to_str()
                    .unwrap()
                    .to_string();
                (kind, read_all(r).await.unwrap())
            })
        })
        .collect();
    let json = {
        let c = c.clone();
        let addr = gw.data_addr;
        tokio::spawn(
            async move { send(&c, post(addr, "/v1/chat/completions", chat(0.0, "fan"))).await },
        )
    };
    let whole = read_all(leader).await.unwrap();
    let mut rest = first.to_vec();
    while let Some(fr) = f.frame().await {
        rest.extend_from_slice(&fr.unwrap().into_data().unwrap());
    }
    assert_eq!(rest, whole, "the follower got another stream");
    for t in tasks {
        let (kind, got) = t.await.unwrap();
        assert_eq!(kind, "coalesced");
        assert_eq!(got, whole);
    }
    let json = json.await.unwrap();
    assert_eq!(cache_header(&json), "coalesced");
    assert_eq!(
        json.json()["choices"][0]["message"]["content"],
        streamed_text(&whole).as_str()
    );
    assert_eq!(
        up.stats().requests,
        1,
        "one upstream request for 101 clients"
    );
}

#[tokio::test]
async fn a_streaming_leader_that_goes_away_cuts_nobody_and_the_answer_is_still_stored() {
    let up = sim(EndpointSpec {
        token_delay: Duration::from_millis(50),
        ..EndpointSpec::default()
    })
    .await;
    let gw = gateway(&format!("{CACHE}{}", fleet_config(&[up.url()], ""))).await;
    let c = client();
    let body = stream_chat("gone", false);
    let leader = open_stream(&c, gw.data_addr, body.clone()).await;
    let follower = open_stream(&c, gw.data_addr, body.clone()).await;
    drop(leader);
    let got = read_all(follower).await.unwrap();
    assert_eq!(streamed_text(&got).split(' ').count(), 5);
    let again = send(&c, post(gw.data_addr, "/v1/chat/completions", body)).await;
    assert_eq!(cache_header(&again), "hit-l1");
    assert_eq!(streamed_text(&again.body), streamed_text(&got));
    assert_eq!(up.stats().requests, 1);
    assert_eq!(up.stats().cancelled, 0);
}

#[tokio::test]
async fn a_cut_stream_fails_every_client_sharing_it_and_is_not_stored() {
    let up = sim(EndpointSpec {
        token_delay: Duration::from_secs(5),
        completion_tokens: 3,
        ..EndpointSpec::default()
    })
    .await;
    let gw = gateway(&format!(
        "{CACHE}{}",
        fleet_config(&[up.url()], "read_timeout = \"300ms\"")
    ))
    .await;
    let c = client();
    let body = stream_chat("cut", false);
    let leader = open_stream(&c, gw.data_addr, body.clone()).await;
    let follower = open_stream(&c, gw.data_addr, body.clone()).await;
    assert_eq!(follower.headers()["x-flowgate-cache"], "coalesced");
    assert!(
        read_all(leader).await.is_err(),
        "a cut stream looked complete"
    );
    assert!(
        read_all(follower).await.is_err(),
        "a cut stream looked complete"
    );
    let again = open_stream(&c, gw.data_addr, body).await;
    assert_eq!(again.headers()["x-flowgate-cache"], "miss");
}

#[tokio::test]
async fn disk_entries_survive_a_gateway_restart() {
    let dir = std::env::temp_dir().join(format!("flowgate-l3-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let up = sim(EndpointSpec::default()).await;
    let config = format!(
        "{CACHE}[cache.disk]\npath = \"{}\"\n\n{}",
        dir.join("l3.redb").display(),
        fleet_config(&[up.url()], "")
    );
    let c = client();
    let url = "/v1/chat/completions";
    let gw = gateway(&config).await;
    let first = send(&c, post(gw.data_addr, url, chat(0.0, "kept"))).await;
    assert_eq!(cache_header(&first), "miss");
    gw.shutdown();
    gw.wait().await;

    let gw = gateway(&config).await;
    let again = send(&c, post(gw.data_addr, url, chat(0.0, "kept"))).await;
    assert_eq!(cache_header(&again), "hit-l3");
    assert_eq!(again.body, first.body);
    assert!(again.headers.contains_key("age"));
    // Promoted to memory.
    let third = send(&c, post(gw.data_addr, url, chat(0.0, "kept"))).await;
    assert_eq!(cache_header(&third), "hit-l1");
    assert_eq!(up.stats().requests, 1);
    let stats = gw.gateway.cache().unwrap().stats();
    assert_eq!((stats.hits_disk, stats.hits_memory), (1, 1));
    gw.shutdown();
    gw.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_memory_tier_can_be_switched_off() {
    let dir = std::env::temp_dir().join(format!("flowgate-no-l1-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&format!(
        "[cache]\nenabled = true\nmemory = 0\n\n[cache.disk]\npath = \"{}\"\n\n{}",
        dir.join("l3.redb").display(),
        fleet_config(&[up.url()], "")
    ))
    .await;
    let c = client();
    let ask = || post(gw.data_addr, "/v1/chat/completions", chat(0.0, "no-l1"));
    assert_eq!(cache_header(&send(&c, ask()).await), "miss");
    gw.gateway.cache().unwrap().flush().await;
    // Every hit is read from disk: nothing is promoted to a memory tier.
    for _ in 0..3 {
        assert_eq!(cache_header(&send(&c, ask()).await), "hit-l3");
    }
    assert_eq!(up.stats().requests, 1);
    let r = send(&c, invalidate(gw.admin_addr, r#"{"all": true}"#)).await;
    assert_eq!(
        r.json()["invalidated"],
        serde_json::json!({"memory": null, "redis": null, "disk": 1})
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A gateway on a manual clock with `cache_extra` in its `[cache]` table, and its upstream.
async fn clocked(
    cache_extra: &str,
) -> (
    flowgate_clock::ManualClock,
    flowgate_sim::SimServer,
    flowgate_gateway::Running,
) {
    let clock = flowgate_clock::ManualClock::at_epoch_2026();
    let up = sim(EndpointSpec::default()).await;
    let cfg = format!(
        "[cache]\nenabled = true\nmemory = \"16MiB\"\nttl = \"1h\"\n{cache_extra}\n\n{}",
        fleet_config(&[up.url()], "")
    );
    let gw = gateway_on(clock.shared(), &cfg).await;
    (clock, up, gw)
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn stale_answers_are_served_at_once_while_one_background_refresh_runs() {
    let (clock, up, gw) = clocked("stale = \"2h\"").await;
    let c = client();
    let ask = || {
        send(
            &c,
            post(gw.data_addr, "/v1/chat/completions", chat(0.0, "swr")),
        )
    };
    let first = ask().await;
    assert_eq!(cache_header(&first), "miss");
    clock.advance(HOUR + Duration::from_secs(60));
    let stale = ask().await;
    assert_eq!(cache_header(&stale), "stale");
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(stale.body, first.body);
    assert_eq!(stale.headers["age"], "3660");
    // One refresh went upstream in the background and replaced the entry.
    eventually(|| up.stats().requests == 2).await;
    let cache = gw.gateway.cache().unwrap().clone();
    eventually(|| cache.stats().stored == 2).await;
    let fresh = ask().await;
    assert_eq!(cache_header(&fresh), "hit-l1");
    assert_eq!(fresh.headers["age"], "0");
    let s = cache.stats();
    assert_eq!(
        (s.stale, s.refreshes, s.hits_memory, s.misses),
        (1, 1, 1, 1)
    );
    // Past the stale window an entry is a miss again.
    clock.advance(3 * HOUR + Duration::from_secs(1));
    assert_eq!(cache_header(&ask().await), "miss");
    assert_eq!(up.stats().requests, 3);
}

#[tokio::test]
async fn popular_entries_are_refreshed_ahead_of_expiry_and_their_ttl_grows() {
    let (clock, up, gw) =
        clocked("refresh_ahead = \"10m\"\npopular_hits = 3\nmax_ttl = \"4h\"").await;
    let c = client();
    let ask = |content: &'static str| {
        send(
            &c,
            post(gw.data_addr, "/v1/chat/completions", chat(0.0, content)),
        )
    };
    let cache = gw.gateway.cache().unwrap().clone();
    for content in ["popular", "rare"] {
        assert_eq!(cache_header(&ask(content).await), "miss");
    }
    for _ in 0..2 {
        assert_eq!(cache_header(&ask("popular").await), "hit-l1");
    }
    clock.advance(Duration::from_secs(55 * 60));
    // The third hit, 5 minutes before expiry, is answered from memory and refreshes.
    assert_eq!(cache_header(&ask("popular").await), "hit-l1");
    assert_eq!(cache_header(&ask("rare").await), "hit-l1");
    eventually(|| cache.stats().stored == 3).await;
    assert_eq!(
        up.stats().requests,
        3,
        "only the popular entry is refreshed"
    );
    assert_eq!(cache.stats().refreshes, 1);
    // The refreshed entry lives 2 h (doubled, under max_ttl); the rare one expired.
    clock.advance(Duration::from_secs(90 * 60));
    assert_eq!(cache_header(&ask("popular").await), "hit-l1");
    assert_eq!(cache_header(&ask("rare").await), "miss");
}

#[tokio::test]
async fn ttl_categories_choose_how_long_an_answer_lives() {
    let (clock, up, gw) = clocked(
        "[[cache.categories]]\nname = \"cost-analysis\"\nheader = \"x-analysis-type\"\nvalue = \"cost\"\nttl = \"4h\"\n\n\
         [[cache.categories]]\nname = \"mini-chat\"\nmodel = \"gpt-4o-mini*\"\npath = \"/v1/chat\"\nttl = \"5m\"",
    )
    .await;
    let c = client();
    let ask = |content: &'static str, kind: Option<&'static str>| {
        let mut r = post(gw.data_addr, "/v1/chat/completions", chat(0.0, content));
        if let Some(k) = kind {
            r.headers_mut()
                .insert("x-analysis-type", k.parse().unwrap());
        }
        send(&c, r)
    };
    assert_eq!(cache_header(&ask("cost", Some("cost")).await), "miss");
    assert_eq!(cache_header(&ask("other", Some("security")).await), "miss");
    clock.advance(Duration::from_secs(6 * 60));
    // The first category that matches wins: 4 h for cost analyses, 5 min for other
    // gpt-4o-mini chats.
    assert_eq!(cache_header(&ask("cost", Some("cost")).await), "hit-l1");
    assert_eq!(cache_header(&ask("other", Some("security")).await), "miss");
    clock.advance(4 * HOUR);
    assert_eq!(cache_header(&ask("cost", Some("cost")).await), "miss");
    assert_eq!(up.stats().requests, 4);
}

#[tokio::test]
async fn a_confidence_score_in_the_answer_chooses_its_ttl() {
    // The simulator's answers have no confidence field; its choice index (0) stands in.
    let (clock, up, gw) = clocked(
        "[cache.confidence]\npointer = \"/choices/0/index\"\n\
         bands = [{ min = 0.9, ttl = \"8h\" }, { min = 0.0, ttl = \"10m\" }]",
    )
    .await;
    let c = client();
    let ask = |ttl: Option<&'static str>| {
        let mut r = post(gw.data_addr, "/v1/chat/completions", chat(0.0, "scored"));
        if let Some(t) = ttl {
            r.headers_mut()
                .insert("x-flowgate-cache-ttl", t.parse().unwrap());
        }
        send(&c, r)
    };
    assert_eq!(cache_header(&ask(None).await), "miss");
    clock.advance(Duration::from_secs(9 * 60));
    assert_eq!(cache_header(&ask(None).await), "hit-l1");
    clock.advance(Duration::from_secs(2 * 60));
    // Past the 10 min band (the 1 h default would still hold it). A client's TTL wins.
    assert_eq!(cache_header(&ask(Some("3600")).await), "miss");
    clock.advance(Duration::from_secs(30 * 60));
    assert_eq!(cache_header(&ask(None).await), "hit-l1");
    assert_eq!(up.stats().requests, 2);
}

#[tokio::test]
async fn an_upstream_tags_its_answers_and_a_tag_invalidates_them() {
    let body = r#"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
    let (url, upstream) = canned_upstream(format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
         x-flowgate-cache-tags: customer:42, bad tag\r\nx-flowgate-cache-tags: report\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ))
    .await;
    let gw = gateway(&format!("{CACHE}{}", fleet_config(&[url], ""))).await;
    let c = client();
    let ask = |content: &str| post(gw.data_addr, "/v1/chat/completions", chat(0.0, content));
    assert_eq!(cache_header(&send(&c, ask("a")).await), "miss");
    assert_eq!(cache_header(&send(&c, ask("b")).await), "miss");
    let first = send(&c, ask("a")).await;
    assert_eq!(cache_header(&first), "hit-l1");
    // The gateway's own fields are not replayed to clients.
    assert!(!first.headers.contains_key("x-flowgate-cache-tags"));
    // "customer:42" came before the malformed "bad tag" and is kept; "report" came in
    // another field.
    let r = send(&c, invalidate(gw.admin_addr, r#"{"tag": "customer:42"}"#)).await;
    assert_eq!(r.json()["invalidated"]["memory"], 2);
    assert_eq!(cache_header(&send(&c, ask("a")).await), "miss");
    let r = send(&c, invalidate(gw.admin_addr, r#"{"tag": "report"}"#)).await;
    assert_eq!(r.json()["invalidated"]["memory"], 1);
    let r = send(&c, invalidate(gw.admin_addr, r#"{"tag": "bad tag"}"#)).await;
    assert_eq!(r.json()["invalidated"]["memory"], 0);
    assert_eq!(upstream.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[tokio::test]
async fn stats_count_per_tier_and_category_with_the_dollars_saved() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&format!(
        "{CACHE}[[cache.categories]]\nname = \"cost\"\nheader = \"x-analysis-type\"\nvalue = \"cost\"\nttl = \"1h\"\n\n\
         [models.\"gpt-4o-mini*\"]\ninput_usd_per_mtok = 2.0\noutput_usd_per_mtok = 2.0\n\n{}",
        fleet_config(&[up.url()], "")
    ))
    .await;
    let c = client();
    let ask = |content: &'static str, cost: bool| {
        let mut r = post(gw.data_addr, "/v1/chat/completions", chat(0.0, content));
        if cost {
            r.headers_mut()
                .insert("x-analysis-type", "cost".parse().unwrap());
        }
        send(&c, r)
    };
    for (content, cost, expect) in [
        ("a", true, "miss"),
        ("a", true, "hit-l1"),
        ("a", true, "hit-l1"),
        ("b", false, "miss"),
        ("b", false, "hit-l1"),
    ] {
        assert_eq!(cache_header(&ask(content, cost).await), expect);
    }
    let s = send(&c, get(gw.admin_addr, "/api/v1/performance/cache/stats"))
        .await
        .json();
    let tokens = s["tokens_saved"].as_u64().unwrap();
    assert!(tokens > 0);
    // Both prices are $2 per million tokens.
    let usd = s["usd_saved"].as_f64().unwrap();
    assert!(
        (usd - tokens as f64 * 2e-6).abs() < 1e-12,
        "{usd} for {tokens}"
    );
    let cost = &s["categories"][0];
    assert_eq!(cost["name"], "cost");
    assert_eq!(
        (cost["hits"].as_u64(), cost["misses"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(cost["tokens_saved"].as_u64().unwrap() * 3, tokens * 2);
    assert_eq!(s["categories"].as_array().unwrap().len(), 1);

    let r = send(&c, get(gw.admin_addr, "/api/v1/performance/cache/hit-rate"))
        .await
        .json();
    assert!((r["hit_rate"].as_f64().unwrap() - 0.6).abs() < 1e-9, "{r}");
    assert!(
        (r["tiers"]["memory"].as_f64().unwrap() - 0.6).abs() < 1e-9,
        "{r}"
    );
    assert!(r["tiers"]["redis"].is_null());
    assert!(
        (r["categories"]["cost"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9,
        "{r}"
    );

    let text = String::from_utf8(
        send(&c, get(gw.admin_addr, "/api/v1/performance/cache/metrics"))
            .await
            .body
            .to_vec(),
    )
    .unwrap();
    assert_eq!(
        metric(&text, "flowgate_cache_hits_total{tier=\"memory\"}"),
        3.0
    );
    assert_eq!(metric(&text, "flowgate_cache_misses_total"), 2.0);
    assert_eq!(
        metric(
            &text,
            "flowgate_cache_category_hits_total{category=\"cost\"}"
        ),
        2.0
    );
    assert!((metric(&text, "flowgate_cache_usd_saved_total") - usd).abs() < 1e-9);
    assert!(!text.contains("tier=\"redis\""), "{text}");
    // The same families are in /metrics, with everything else.
    let all =
        String::from_utf8(send(&c, get(gw.admin_addr, "/metrics")).await.body.to_vec()).unwrap();
    assert_eq!(
        metric(&all, "flowgate_cache_hits_total{tier=\"memory\"}"),
        3.0
    );
    assert!(all.contains("flowgate_requests_total"), "{all}");
    assert!(all.trim_end().ends_with("# EOF"));
    assert_eq!(all.matches("# EOF").count(), 1);
}

/// An upstream for http routes: the answer says which request it is and how many came
/// before it; `/api/report` varies on `accept`, `/api/private` is marked private,
/// `/api/varies` varies on `accept-language`, `/api/short` is fresh for 5 s.
async fn origin() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    scripted_upstream(move |req| {
        let line = req.lines().next().unwrap_or("").to_string();
        let nth = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let extra = if line.contains("/api/private") {
            "cache-control: private\r\n"
        } else if line.contains("/api/varies") {
            "vary: accept-language\r\n"
        } else if line.contains("/api/short") {
            "cache-control: public, max-age=5\r\n"
        } else if line.contains("/api/report") {
            "vary: Accept\r\nx-report: yes\r\n"
        } else {
            ""
        };
        let body = format!("#{nth} {line}");
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/csv\r\n{extra}content-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        )
    })
    .await
}

#[tokio::test]
async fn http_routes_cache_by_method_path_query_and_selected_headers() {
    let (url, upstream) = origin().await;
    let clock = flowgate_clock::ManualClock::at_epoch_2026();
    let gw = gateway_on(
        clock.shared(),
        &format!(
            "{CACHE}[pools.api]\nendpoints = [{{ url = \"{url}\" }}]\n\n\
             [[routes]]\nname = \"api\"\nkind = \"http\"\nprefix = \"/api\"\npool = \"api\"\n\
             cache = {{ mode = \"deterministic\", query = [\"id\", \"lang\"], headers = [\"accept\"] }}\n"
        ),
    )
    .await;
    let c = client();
    let at = |path: &str| format!("http://{}{path}", gw.data_addr);
    let req = |method: &str, path: &str, headers: &[(&str, &str)]| {
        let mut b = http::Request::builder().method(method).uri(at(path));
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(http_body_util::Full::new(Bytes::new())).unwrap()
    };
    let count = || upstream.load(std::sync::atomic::Ordering::SeqCst);

    let first = send(&c, req("GET", "/api/report?id=7&lang=en", &[])).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(cache_header(&first), "miss");
    // Same meaning: parameters in another order, an escaped unreserved character, a
    // parameter the route does not key on.
    let same = send(&c, req("GET", "/api/report?lang=e%6E&utm=x&id=7", &[])).await;
    assert_eq!(cache_header(&same), "hit-l1");
    assert_eq!(same.body, first.body);
    // The stored answer keeps its own content type and fields.
    assert_eq!(same.headers["content-type"], "text/csv");
    assert_eq!(same.headers["x-report"], "yes");
    // HEAD is answered from the GET's entry, without a body.
    let head = send(&c, req("HEAD", "/api/report?id=7&lang=en", &[])).await;
    assert_eq!(cache_header(&head), "hit-l1");
    assert!(head.body.is_empty());
    assert_eq!(count(), 1);

    // A keyed header, another parameter value, another path: other entries.
    for (path, headers) in [
        ("/api/report?id=7&lang=en", &[("accept", "text/csv")][..]),
        ("/api/report?id=8&lang=en", &[][..]),
        ("/api/report/?id=7&lang=en", &[][..]),
    ] {
        let r = send(&c, req("GET", path, headers)).await;
        assert_eq!(cache_header(&r), "miss", "{path} {headers:?}");
    }
    assert_eq!(count(), 4);

    // POST is not deterministic: it streams through and is never stored.
    for _ in 0..2 {
        let r = send(&c, req("POST", "/api/report?id=7&lang=en", &[])).await;
        assert_eq!(cache_header(&r), "bypass");
    }
    // Credentials the key does not hold: not answered from a shared entry.
    let r = send(
        &c,
        req(
            "GET",
            "/api/report?id=7&lang=en",
            &[("authorization", "Bearer a")],
        ),
    )
    .await;
    assert_eq!(cache_header(&r), "bypass");
    assert_eq!(count(), 7);

    // The origin decides what may be stored, and for how long.
    for path in ["/api/private", "/api/varies"] {
        for _ in 0..2 {
            assert_eq!(cache_header(&send(&c, req("GET", path, &[])).await), "miss");
        }
    }
    assert_eq!(count(), 11);
    assert_eq!(
        cache_header(&send(&c, req("GET", "/api/short", &[])).await),
        "miss"
    );
    clock.advance(Duration::from_secs(4));
    assert_eq!(
        cache_header(&send(&c, req("GET", "/api/short", &[])).await),
        "hit-l1"
    );
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        cache_header(&send(&c, req("GET", "/api/short", &[])).await),
        "miss"
    );
    assert_eq!(count(), 13);
}

#[tokio::test]
async fn http_routes_in_always_mode_key_on_the_body() {
    let (url, upstream) = origin().await;
    let gw = gateway(&format!(
        "{CACHE}[limits]\nmax_body_bytes = 1024\n\n[pools.api]\nendpoints = [{{ url = \"{url}\" }}]\n\n\
         [[routes]]\nname = \"api\"\nkind = \"http\"\nprefix = \"/api\"\npool = \"api\"\n\
         cache = {{ mode = \"always\" }}\n"
    ))
    .await;
    let c = client();
    let search = |body: &'static str| post(gw.data_addr, "/api/search", Bytes::from(body));
    assert_eq!(cache_header(&send(&c, search("q=a")).await), "miss");
    assert_eq!(cache_header(&send(&c, search("q=a")).await), "hit-l1");
    assert_eq!(cache_header(&send(&c, search("q=b")).await), "miss");
    assert_eq!(upstream.load(std::sync::atomic::Ordering::SeqCst), 2);
    // The body is read whole to be keyed, within the request limit.
    let chunk = "a".repeat(600);
    let raw = format!(
        "POST /api/search HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let resp = raw_exchange(gw.data_addr, raw.as_bytes(), Duration::from_secs(3)).await;
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
    assert_eq!(upstream.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// `POST /api/v1/performance/cache/warm` with `body`.
fn warm(admin: std::net::SocketAddr, body: &str) -> http::Request<http_body_util::Full<Bytes>> {
    post(
        admin,
        "/api/v1/performance/cache/warm",
        Bytes::from(body.to_string()),
    )
}

/// Waits for the current warming job to end; its status.
async fn warmed(c: &TestClient, admin: std::net::SocketAddr) -> serde_json::Value {
    for _ in 0..500 {
        let s = send(c, get(admin, "/api/v1/performance/cache/warm"))
            .await
            .json();
        if s["job"]["state"] == "done" {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the warming job did not end");
}

fn chat_json(temperature: f64, content: &str) -> String {
    String::from_utf8(chat(temperature, content).to_vec()).unwrap()
}

#[tokio::test]
async fn warming_requests_fill_the_cache_without_counting_as_client_traffic() {
    let up = sim(EndpointSpec {
        latency: LatencyDist::Fixed(Duration::from_millis(150)),
        ..EndpointSpec::default()
    })
    .await;
    let gw = gateway(&format!(
        "{CACHE}[cache.warm]\nrate = 1000\n\n{}",
        fleet_config(&[up.url()], "")
    ))
    .await;
    let c = client();
    let job = format!(
        r#"{{"requests": [
            {{"path": "/v1/chat/completions", "body": {}}},
            {{"path": "/v1/chat/completions", "body": {}}},
            {{"path": "/v1/chat/completions", "body": {}}},
            {{"path": "/nowhere"}}
        ]}}"#,
        chat_json(0.0, "w1"),
        chat_json(0.0, "w2"),
        chat_json(0.7, "sampled")
    );
    let r = send(&c, warm(gw.admin_addr, &job)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.json()["job"]["total"], 4);
    // One job at a time.
    let busy = send(&c, warm(gw.admin_addr, &job)).await;
    assert_eq!(busy.status, StatusCode::CONFLICT);
    assert_eq!(busy.error_code(), "warming_in_progress");
    let s = warmed(&c, gw.admin_addr).await;
    let j = &s["job"];
    assert_eq!(j["source"], "api");
    assert_eq!(
        (&j["stored"], &j["fresh"], &j["skipped"], &j["failed"]),
        (&2.into(), &0.into(), &2.into(), &0.into())
    );
    let errors = j["errors"].to_string();
    assert!(
        errors.contains("requests[2]: not cacheable") && errors.contains("requests[3]: no route"),
        "{errors}"
    );
    assert_eq!(up.stats().requests, 2);

    // Clients now hit; the warming itself was not counted as their traffic.
    let hit = send(
        &c,
        post(gw.data_addr, "/v1/chat/completions", chat(0.0, "w1")),
    )
    .await;
    assert_eq!(cache_header(&hit), "hit-l1");
    let stats = gw.gateway.cache().unwrap().stats();
    assert_eq!((stats.hits_memory, stats.misses, stats.stored), (1, 0, 2));
    // Warming what is fresh costs nothing upstream.
    assert_eq!(
        send(&c, warm(gw.admin_addr, &job)).await.status,
        StatusCode::ACCEPTED
    );
    let s = warmed(&c, gw.admin_addr).await;
    assert_eq!(s["job"]["fresh"], 2);
    assert_eq!(up.stats().requests, 2);

    // Bad jobs are refused whole, with the faulty request named.
    for (body, needle) in [
        (
            r#"{"requests": [{"path": "/v1/x"}, {"path": "v1"}]}"#,
            "requests[1]",
        ),
        (r#"{"requests": {}}"#, "must be a list"),
        (r#"{"top": 0}"#, "`top`"),
        (r#"{"later": 1}"#, "unknown field `later`"),
        ("[]", "expected an object"),
    ] {
        let r = send(&c, warm(gw.admin_addr, body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.error_code(), "invalid_warm_request");
        let msg = r.json()["error"]["message"].to_string();
        assert!(msg.contains(needle), "{body}: {msg}");
    }
}

#[tokio::test]
async fn top_n_warming_replays_the_most_requested_recent_keys() {
    let (clock, up, gw) = clocked("[cache.warm]\nrate = 1000\nkeep = 10").await;
    let c = client();
    let ask = |content: &'static str| {
        send(
            &c,
            post(gw.data_addr, "/v1/chat/completions", chat(0.0, content)),
        )
    };
    for (content, times) in [("a", 3), ("b", 1), ("c", 2)] {
        for _ in 0..times {
            assert_eq!(ask(content).await.status, StatusCode::OK);
        }
    }
    assert_eq!(up.stats().requests, 3);
    let s = send(&c, get(gw.admin_addr, "/api/v1/performance/cache/warm"))
        .await
        .json();
    assert_eq!(s["kept"], 3);
    let counts: Vec<u64> = s["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["requests"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [3, 2, 1]);
    assert_eq!(s["top"][0]["path"], "/v1/chat/completions");

    // Everything expires; the two most requested are warmed back.
    clock.advance(2 * HOUR);
    let r = send(&c, warm(gw.admin_addr, r#"{"top": 2}"#)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let s = warmed(&c, gw.admin_addr).await;
    assert_eq!(
        (&s["job"]["source"], &s["job"]["stored"]),
        (&"top".into(), &2.into())
    );
    assert_eq!(up.stats().requests, 5);
    assert_eq!(cache_header(&ask("a").await), "hit-l1");
    assert_eq!(cache_header(&ask("c").await), "hit-l1");
    assert_eq!(cache_header(&ask("b").await), "miss");
}

#[tokio::test]
async fn the_warm_file_is_replayed_at_start() {
    let up = sim(EndpointSpec::default()).await;
    let dir = std::env::temp_dir().join(format!("fg-warmfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("warm.jsonl");
    std::fs::write(
        &file,
        format!(
            "# answers to have ready\n{{\"path\": \"/v1/chat/completions\", \"body\": {}}}\n{{\"path\": 7}}\n",
            chat_json(0.0, "ready")
        ),
    )
    .unwrap();
    let gw = gateway(&format!(
        "{CACHE}[cache.warm]\nfile = \"{}\"\nrate = 1000\n\n{}",
        file.display(),
        fleet_config(&[up.url()], "")
    ))
    .await;
    let c = client();
    let s = warmed(&c, gw.admin_addr).await;
    assert_eq!(
        (&s["job"]["source"], &s["job"]["stored"]),
        (&"file".into(), &1.into())
    );
    let errors = s["job"]["errors"].to_string();
    assert!(
        errors.contains(&format!("{}:3: ", file.display())),
        "{errors}"
    );
    let r = send(
        &c,
        post(gw.data_addr, "/v1/chat/completions", chat(0.0, "ready")),
    )
    .await;
    assert_eq!(cache_header(&r), "hit-l1");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn on_caching_routes_the_one_body_read_still_refuses_bad_json() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&format!("{CACHE}{}", fleet_config(&[up.url()], ""))).await;
    let c = client();
    let ask = |body: &'static str| {
        send(
            &c,
            post(gw.data_addr, "/v1/chat/completions", Bytes::from(body)),
        )
    };
    for (body, field) in [
        ("{\"model\": ", "EOF"),
        (r#"{"model": 5, "temperature": 0}"#, "invalid type"),
        (r#"{"stream": "yes", "temperature": 0}"#, "invalid type"),
        (r#"{"max_tokens": -1, "temperature": 0}"#, "invalid value"),
    ] {
        let r = ask(body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.error_code(), "invalid_json");
        let msg = r.json()["error"]["message"].to_string();
        assert!(msg.contains(field), "{body}: {msg}");
    }
    // Valid JSON that is not an object is forwarded, not cached.
    let r = ask("[]").await;
    assert_eq!(cache_header(&r), "bypass");
    assert_eq!(up.stats().requests, 1);
}

#[tokio::test]
async fn a_namespace_header_is_ignored_where_the_route_does_not_allow_it() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&format!("{CACHE}{}", fleet_config(&[up.url()], ""))).await;
    let c = client();
    let ask = |ns: Option<&str>| {
        let mut r = post(
            gw.data_addr,
            "/v1/chat/completions",
            chat(0.0, "tenant data"),
        );
        if let Some(ns) = ns {
            r.headers_mut()
                .insert("x-flowgate-cache-namespace", ns.parse().unwrap());
        }
        r
    };
    assert_eq!(cache_header(&send(&c, ask(None)).await), "miss");
    // Naming another namespace neither hides the entry nor reaches another tenant's.
    assert_eq!(cache_header(&send(&c, ask(Some("team-b"))).await), "hit-l1");
    assert_eq!(up.stats().requests, 1);
}
