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
