//! Endpoints registered and deregistered at run time, and simulate-request, through the
//! admin API.
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

const LB: &str = "/api/v1/performance/load-balancer";

async fn admin(gw: &flowgate_gateway::Running, path: &str, body: String) -> Reply {
    send(
        &client(),
        post(gw.admin_addr, &format!("{LB}/{path}"), Bytes::from(body)),
    )
    .await
}

async fn endpoints(gw: &flowgate_gateway::Running) -> Vec<(String, String)> {
    let m = send(&client(), get(gw.admin_addr, &format!("{LB}/instances")))
        .await
        .json();
    m["pools"][0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["source"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn chats(gw: &flowgate_gateway::Running, n: usize) {
    for _ in 0..n {
        let r = send(
            &client(),
            post(gw.data_addr, "/v1/chat/completions", chat_body(false)),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn an_endpoint_registered_at_run_time_gets_traffic_until_deregistered() {
    let (a, b) = (
        sim(EndpointSpec::default()).await,
        sim(EndpointSpec::default()).await,
    );
    let pool = "strategy = \"round_robin\"\n";
    let gw = gateway(&fleet_config(&[a.url()], pool)).await;
    let reg = admin(
        &gw,
        "instances/register",
        format!(
            "{{\"pool\": \"llm\", \"url\": \"{}\", \"name\": \"extra\", \"tags\": [\"x\"]}}",
            b.url()
        ),
    )
    .await;
    assert_eq!(reg.status, StatusCode::CREATED, "{:?}", reg.body);
    let host_a = a.url().trim_start_matches("http://").to_string();
    assert_eq!(
        endpoints(&gw).await,
        [
            (host_a.clone(), "config".to_string()),
            ("extra".to_string(), "runtime".to_string())
        ]
    );
    chats(&gw, 10).await;
    assert_eq!((a.stats().requests, b.stats().requests), (5, 5));

    // Bad requests: a name taken, a bad URL, an unknown pool, a field that does not exist.
    let again = format!(
        "{{\"pool\": \"llm\", \"url\": \"{}\", \"name\": \"extra\"}}",
        b.url()
    );
    assert_eq!(
        admin(&gw, "instances/register", again).await.status,
        StatusCode::CONFLICT
    );
    let r = admin(
        &gw,
        "instances/register",
        r#"{"pool": "llm", "url": "ftp://x"}"#.into(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error_message().contains("url"), "{}", r.error_message());
    let r = admin(
        &gw,
        "instances/register",
        r#"{"pool": "nope", "url": "http://127.0.0.1:1"}"#.into(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = admin(
        &gw,
        "instances/register",
        r#"{"pool": "llm", "url": "http://127.0.0.1:1", "colour": 1}"#.into(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.error_message().contains("colour"),
        "{}",
        r.error_message()
    );

    // A reload that leaves the pool (and the name) alone keeps it.
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n{}",
        fleet_config(
            &[a.url()],
            "strategy = \"round_robin\"\nconnect_timeout = \"1s\"\n"
        )
    );
    gw.gateway
        .apply(flowgate_config::parse(&toml, "test.toml", std::iter::empty()).unwrap());
    assert_eq!(endpoints(&gw).await.len(), 2);

    // Only registered endpoints can be deregistered.
    let r = admin(
        &gw,
        "instances/deregister",
        format!("{{\"pool\": \"llm\", \"name\": \"{host_a}\"}}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = admin(
        &gw,
        "instances/deregister",
        r#"{"pool": "llm", "name": "extra"}"#.into(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(endpoints(&gw).await.len(), 1);
    let before = b.stats().requests;
    chats(&gw, 4).await;
    assert_eq!(b.stats().requests, before);
    let r = admin(
        &gw,
        "instances/deregister",
        r#"{"pool": "llm", "name": "extra"}"#.into(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn simulate_request_tells_where_a_request_would_go_and_why_changing_nothing() {
    let (a, b) = (
        sim(EndpointSpec::default()).await,
        sim(EndpointSpec::default()).await,
    );
    let gw = gateway(&fleet_config(
        &[a.url(), b.url()],
        "strategy = \"round_robin\"\naffinity = { max_sessions = 10 }\n",
    ))
    .await;
    let describe = |headers: &str| {
        format!(
            "{{\"method\": \"POST\", \"path\": \"/v1/chat/completions\", \"headers\": {{{headers}}}, \"body\": {{\"model\": \"m\"}}}}"
        )
    };
    let s = admin(&gw, "simulate-request", describe("")).await.json();
    assert_eq!(
        (s["route"].as_str(), s["pool"].as_str()),
        (Some("chat"), Some("llm"))
    );
    assert!(s["why"].as_str().unwrap().starts_with("round_robin"), "{s}");
    assert_eq!(s["candidates"].as_array().unwrap().len(), 2);
    let host_a = a.url().trim_start_matches("http://").to_string();
    assert_eq!(s["endpoint"].as_str(), Some(host_a.as_str()));
    // Asking again takes no turn: the same answer, and the real request goes there.
    let again = admin(&gw, "simulate-request", describe("")).await.json();
    assert_eq!(again["endpoint"], s["endpoint"]);
    let mut r = post(gw.data_addr, "/v1/chat/completions", chat_body(false));
    r.headers_mut()
        .insert("x-session-id", "s1".parse().unwrap());
    let r = send(&client(), r).await;
    assert_eq!(r.headers["x-flowgate-upstream"], host_a.as_str());
    // A session's endpoint is where its requests go.
    let s = admin(
        &gw,
        "simulate-request",
        describe("\"x-session-id\": \"s1\""),
    )
    .await
    .json();
    assert_eq!(s["endpoint"].as_str(), Some(host_a.as_str()));
    assert!(
        s["why"]
            .as_str()
            .unwrap()
            .contains("session \"s1\" is bound"),
        "{s}"
    );
    // No route: the 404 a request would get.
    let r = admin(&gw, "simulate-request", r#"{"path": "/nowhere"}"#.into()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = admin(&gw, "simulate-request", r#"{"path": 3}"#.into()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}
