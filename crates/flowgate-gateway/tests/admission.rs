//! Request rate limits on the request path, on a manual clock.
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

#[tokio::test]
async fn requests_over_a_limit_get_429_and_every_response_says_what_is_left() {
    let up = sim(EndpointSpec::default()).await;
    let clock = flowgate_clock::ManualClock::at_epoch_2026();
    let gw = gateway_on(
        clock.shared(),
        &format!(
            "[[rate_limits]]\nname = \"per-team\"\nscope = \"header:x-team\"\nrequests = 2\nper = \"1s\"\nburst = 3\nroutes = [\"chat\"]\n\n{}",
            fleet_config(&[up.url()], "")
        ),
    )
    .await;
    let c = client();
    let ask = |team: &str| {
        let mut r = post(gw.data_addr, "/v1/chat/completions", chat_body(false));
        r.headers_mut().insert("x-team", team.parse().unwrap());
        r
    };
    // A burst of 3, then 2 per second.
    for left in [2, 1, 0] {
        let r = send(&c, ask("a")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["x-ratelimit-limit-requests"], "2");
        assert_eq!(
            r.headers["x-ratelimit-remaining-requests"],
            left.to_string().as_str()
        );
    }
    let limited = send(&c, ask("a")).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.error_code(), "rate_limit_exceeded");
    assert_eq!(limited.json()["error"]["type"], "requests");
    assert_eq!(limited.headers["retry-after"], "1");
    assert_eq!(limited.headers["x-ratelimit-remaining-requests"], "0");
    assert_eq!(limited.headers["x-ratelimit-reset-requests"], "1.5s");
    let msg = limited.json()["error"]["message"].to_string();
    assert!(msg.contains("per-team") && msg.contains("for a"), "{msg}");
    // Another team has its own count; the upstream never saw the refused request.
    assert_eq!(send(&c, ask("b")).await.status, StatusCode::OK);
    assert_eq!(up.stats().requests, 4);
    // Half a second later one request is allowed again.
    clock.advance(Duration::from_millis(500));
    assert_eq!(send(&c, ask("a")).await.status, StatusCode::OK);
    assert_eq!(
        send(&c, ask("a")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The limit applies to its routes only.
    let echo = send(&c, get(gw.data_addr, "/echo/x")).await;
    assert_eq!(echo.status, StatusCode::OK);
    assert!(!echo.headers.contains_key("x-ratelimit-limit-requests"));
}

#[tokio::test]
async fn a_request_refused_by_one_limit_is_given_back_to_the_others() {
    let up = sim(EndpointSpec::default()).await;
    let clock = flowgate_clock::ManualClock::at_epoch_2026();
    let gw = gateway_on(
        clock.shared(),
        &format!(
            "[[rate_limits]]\nname = \"all\"\nrequests = 3\nper = \"1m\"\n\n\
             [[rate_limits]]\nname = \"per-model\"\nscope = \"model\"\nrequests = 1\nper = \"1m\"\n\n{}",
            fleet_config(&[up.url()], "")
        ),
    )
    .await;
    let c = client();
    let ask = |model: &str| {
        let body = format!(r#"{{"model":"{model}","messages":[]}}"#);
        post(
            gw.data_addr,
            "/v1/chat/completions",
            bytes::Bytes::from(body),
        )
    };
    assert_eq!(send(&c, ask("m1")).await.status, StatusCode::OK);
    // Refused by per-model: the global count is given back, so m2 and m3 still pass.
    for _ in 0..3 {
        let r = send(&c, ask("m1")).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(
            r.json()["error"]["message"]
                .to_string()
                .contains("per-model")
        );
    }
    assert_eq!(send(&c, ask("m2")).await.status, StatusCode::OK);
    assert_eq!(send(&c, ask("m3")).await.status, StatusCode::OK);
    // Now the global limit is spent.
    let r = send(&c, ask("m4")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        r.json()["error"]["message"]
            .to_string()
            .contains("rate limit all")
    );
    assert_eq!(up.stats().requests, 3);
}

#[tokio::test]
async fn client_limits_keep_their_counts_across_a_reload_that_keeps_their_name() {
    let up = sim(EndpointSpec::default()).await;
    let clock = flowgate_clock::ManualClock::at_epoch_2026();
    let limit = |name: &str| {
        format!(
            "[[rate_limits]]\nname = \"{name}\"\nscope = \"ip\"\nrequests = 2\nper = \"1m\"\n\n{}",
            fleet_config(&[up.url()], "")
        )
    };
    let parse = |toml: String| {
        let toml =
            format!("[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n{toml}");
        flowgate_config::parse(&toml, "test.toml", std::iter::empty()).unwrap()
    };
    let gw = gateway_on(clock.shared(), &limit("per-client")).await;
    let c = client();
    let ask = || post(gw.data_addr, "/v1/chat/completions", chat_body(false));
    assert_eq!(send(&c, ask()).await.status, StatusCode::OK);
    assert_eq!(send(&c, ask()).await.status, StatusCode::OK);
    let refused = send(&c, ask()).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    // The message names the client by its address.
    assert!(
        refused.error_message().contains("for 127.0.0.1"),
        "{}",
        refused.error_message()
    );
    // Same name after a reload: the client is still out of requests.
    gw.gateway.apply(parse(limit("per-client")));
    assert_eq!(send(&c, ask()).await.status, StatusCode::TOO_MANY_REQUESTS);
    // A new name is a new limit with its own counts.
    gw.gateway.apply(parse(limit("per-address")));
    assert_eq!(send(&c, ask()).await.status, StatusCode::OK);
    // The old limit's counts go once nothing uses them: a sweep keeps the new one's only.
    assert_eq!(gw.gateway.sweep_rate_limits(), 1);
    assert_eq!(up.stats().requests, 3);
}

/// A gateway on a manual clock with one global token limit of 1000 per minute on the chat
/// route (after `extra`), its upstream and a client.
async fn token_limited(
    spec: EndpointSpec,
    extra: &str,
) -> (Running, flowgate_sim::SimServer, TestClient) {
    let up = sim(spec).await;
    let clock = flowgate_clock::ManualClock::at_epoch_2026();
    let gw = gateway_on(
        clock.shared(),
        &format!(
            "{extra}[[rate_limits]]\nname = \"tpm\"\ntokens = 1000\nper = \"1m\"\nroutes = [\"chat\"]\n\n{}",
            fleet_config(&[up.url()], "").replace(
                "name = \"chat\"\n",
                "name = \"chat\"\nmax_prompt_tokens = 40\n"
            )
        ),
    )
    .await;
    (gw, up, client())
}

/// A chat request whose prompt is estimated at 12 tokens (3 + 4 per message + "user" 1 +
/// 16 ASCII characters 4), allowing `max_tokens`.
fn ask_tokens(
    addr: std::net::SocketAddr,
    max_tokens: u64,
    stream: &str,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    post(
        addr,
        "/v1/chat/completions",
        bytes::Bytes::from(format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"abcdefghijklmnop"}}],"max_tokens":{max_tokens}{stream}}}"#
        )),
    )
}

fn remaining_tokens(r: &Reply) -> u64 {
    r.headers["x-ratelimit-remaining-tokens"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The `usage.total_tokens` of a stream's chunks (the last that has one).
fn streamed_usage(body: &[u8]) -> Option<u64> {
    String::from_utf8_lossy(body)
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .find_map(|v| v["usage"]["total_tokens"].as_u64())
}

#[tokio::test]
async fn token_limits_reserve_the_estimate_and_settle_with_the_reported_usage() {
    let (gw, _up, c) = token_limited(EndpointSpec::default(), "").await;
    // Reserved: the prompt (12) and the whole answer allowed (100).
    let first = send(&c, ask_tokens(gw.data_addr, 100, "")).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.headers["x-ratelimit-limit-tokens"], "1000");
    assert_eq!(remaining_tokens(&first), 1000 - 112);
    // 112 tokens at 60 ms each.
    assert_eq!(first.headers["x-ratelimit-reset-tokens"], "6.72s");
    assert!(!first.headers.contains_key("x-ratelimit-limit-requests"));
    // Once the answer ended, the reservation became what the upstream billed.
    let used = first.json()["usage"]["total_tokens"].as_u64().unwrap();
    assert!(used < 112, "the sim answers 16 tokens: {used}");
    let second = send(&c, ask_tokens(gw.data_addr, 100, "")).await;
    assert_eq!(remaining_tokens(&second), 1000 - used - 112);

    // A stream that reports its usage (stream_options.include_usage) is settled with it.
    let before =
        remaining_tokens(&second) + 112 - second.json()["usage"]["total_tokens"].as_u64().unwrap();
    let s = send(
        &c,
        ask_tokens(
            gw.data_addr,
            100,
            r#","stream":true,"stream_options":{"include_usage":true}"#,
        ),
    )
    .await;
    assert_eq!(remaining_tokens(&s), before - 112);
    let used = streamed_usage(&s.body).expect("the sim reports usage when asked");
    let after = send(&c, ask_tokens(gw.data_addr, 1, "")).await;
    assert_eq!(remaining_tokens(&after), before - used - 13);

    // A stream without usage is charged the prompt's estimate and its text, estimated:
    // more than the prompt, less than the reservation.
    let before =
        remaining_tokens(&after) + 13 - after.json()["usage"]["total_tokens"].as_u64().unwrap();
    let s = send(&c, ask_tokens(gw.data_addr, 100, r#","stream":true"#)).await;
    assert_eq!(streamed_usage(&s.body), None);
    let after = send(&c, ask_tokens(gw.data_addr, 1, "")).await;
    let charged = before - 13 - remaining_tokens(&after);
    assert!(charged > 12 && charged < 112, "charged {charged}");
}

#[tokio::test]
async fn requests_too_large_for_a_limit_or_the_route_are_refused_before_the_upstream() {
    let (gw, up, c) = token_limited(EndpointSpec::default(), "").await;
    // More than the limit allows at once: it can never pass, so no Retry-After.
    let r = send(&c, ask_tokens(gw.data_addr, 2000, "")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.json()["error"]["type"], "tokens");
    assert_eq!(r.error_code(), "rate_limit_exceeded");
    assert!(!r.headers.contains_key("retry-after"));
    let msg = r.error_message();
    assert!(
        msg.contains("needs about 2012 tokens") && msg.contains("1000"),
        "{msg}"
    );
    // A prompt over the route's max_prompt_tokens (40): 413, nothing counted.
    let long = post(
        gw.data_addr,
        "/v1/chat/completions",
        bytes::Bytes::from(format!(
            r#"{{"messages":[{{"role":"user","content":"{}"}}]}}"#,
            "word ".repeat(40)
        )),
    );
    let r = send(&c, long).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.error_code(), "prompt_too_large");
    assert!(
        r.error_message().contains("about 58 tokens"),
        "{}",
        r.error_message()
    );
    assert_eq!(up.stats().requests, 0);
    // Nothing was held: the whole limit is left for a fitting request.
    let r = send(&c, ask_tokens(gw.data_addr, 988, "")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(remaining_tokens(&r), 0);
    // A body that is not JSON is a 400, not a limit.
    let r = send(
        &c,
        post(gw.data_addr, "/v1/chat/completions", "{nope".into()),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "invalid_json");
}

#[tokio::test]
async fn error_answers_and_cache_hits_give_their_tokens_back() {
    let failing = EndpointSpec {
        error_rate: 1.0,
        ..EndpointSpec::default()
    };
    let (gw, _up, c) = token_limited(failing, "").await;
    for _ in 0..3 {
        let r = send(&c, ask_tokens(gw.data_addr, 100, "")).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(remaining_tokens(&r), 1000 - 112, "errors bill nothing");
    }

    let cache = "[cache]\nenabled = true\nmemory = \"16MiB\"\n\n";
    let (gw, _up, c) = token_limited(EndpointSpec::default(), cache).await;
    let ask = || ask_tokens(gw.data_addr, 100, r#","temperature":0"#);
    let miss = send(&c, ask()).await;
    assert_eq!(cache_header(&miss), "miss");
    let used = miss.json()["usage"]["total_tokens"].as_u64().unwrap();
    for _ in 0..3 {
        let hit = send(&c, ask()).await;
        assert_eq!(cache_header(&hit), "hit-l1");
        assert_eq!(remaining_tokens(&hit), 1000 - used - 112);
    }
}

#[tokio::test]
async fn the_admin_api_and_metrics_show_each_limit_its_busiest_values_and_the_most_limited() {
    let up = sim(EndpointSpec::default()).await;
    let clock = flowgate_clock::ManualClock::at_epoch_2026();
    let gw = gateway_on(
        clock.shared(),
        &format!(
            "[[rate_limits]]\nname = \"per-client\"\nscope = \"ip\"\nrequests = 2\nper = \"1m\"\n\n{}",
            fleet_config(&[up.url()], "")
        ),
    )
    .await;
    let c = client();
    for _ in 0..3 {
        send(
            &c,
            post(gw.data_addr, "/v1/chat/completions", chat_body(false)),
        )
        .await;
    }
    let v = send(&c, get(gw.admin_addr, "/api/v1/performance/rate-limits"))
        .await
        .json();
    let l = &v["limits"][0];
    assert_eq!(l["name"], "per-client");
    assert_eq!(l["scope"], "ip");
    assert_eq!(
        (l["amount"].as_u64(), l["per"].as_str()),
        (Some(2), Some("1m"))
    );
    assert_eq!(
        (l["admitted"].as_u64(), l["limited"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(l["counted_in"], "gateway");
    let busiest = &l["busiest"][0];
    assert_eq!(busiest["value"], "127.0.0.1");
    assert_eq!(busiest["remaining"], 0);
    assert_eq!(busiest["full_again_in_ms"], 60_000);
    assert_eq!(v["most_limited"][0]["limit"], "per-client");
    assert!(v["shared"].is_null());
    let m =
        String::from_utf8_lossy(&send(&c, get(gw.admin_addr, "/metrics")).await.body).into_owned();
    let at = "flowgate_rate_limit_checks_total{limit=\"per-client\",scope=\"ip\",result=";
    assert_eq!(metric(&m, &format!("{at}\"admitted\"}}")), 2.0);
    assert_eq!(metric(&m, &format!("{at}\"limited\"}}")), 1.0);
}

#[tokio::test]
async fn openai_models_are_counted_with_their_own_tokenizer() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&fleet_config(&[up.url()], "").replace(
        "name = \"chat\"\n",
        "name = \"chat\"\nmax_prompt_tokens = 30\n",
    ))
    .await;
    // Forty one-letter words: 79 characters, about 20 tokens by the rule of thumb, 40 by
    // OpenAI's tokenizer (each " a" is a token).
    let words = vec!["a"; 40].join(" ");
    let ask = |model: &str| {
        post(
            gw.data_addr,
            "/v1/chat/completions",
            bytes::Bytes::from(format!(
                r#"{{"model":"{model}","messages":[{{"role":"user","content":"{words}"}}]}}"#
            )),
        )
    };
    // gpt-4o's count (3 + 4 + 1 + 40) is over the guard; a model the tokenizer does not
    // know is estimated (3 + 4 + 1 + 20) under it.
    let r = send(&client(), ask("gpt-4o")).await;
    r.expect(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.error_message().contains("48"), "{}", r.error_message());
    let r = send(&client(), ask("llama-3.1-8b")).await;
    r.expect(StatusCode::OK);
    // token_count = "approximate": gpt-4o by the rule of thumb too.
    let gw = gateway(&format!(
        "[limits]\ntoken_count = \"approximate\"\n\n{}",
        fleet_config(&[up.url()], "").replace(
            "name = \"chat\"\n",
            "name = \"chat\"\nmax_prompt_tokens = 30\n",
        )
    ))
    .await;
    let r = send(
        &client(),
        post(
            gw.data_addr,
            "/v1/chat/completions",
            bytes::Bytes::from(format!(
                r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"{words}"}}]}}"#
            )),
        ),
    )
    .await;
    r.expect(StatusCode::OK);
}
