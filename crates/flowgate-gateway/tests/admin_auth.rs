//! The admin API's door: tokens with scopes (config and `FLOWGATE_ADMIN_TOKEN`), the open
//! endpoints, the lockout after wrong tokens, the Host allow-list, JSON-only writes, and
//! registration that cannot name an arbitrary environment variable.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::Bytes;
use common::*;
use flowgate_sim::EndpointSpec;
use http::{Request, StatusCode};
use http_body_util::Full;

const WRITE: &str = "fgk_write_token_for_the_admin_tests_0000000000000000";
const READ: &str = "fgk_read_token_for_the_admin_tests_00000000000000000";

fn hash(token: &str) -> String {
    flowgate_config::format_key_hash(&flowgate_admission::keys::hash(token.as_bytes()))
}

fn tokens(extra: &str) -> String {
    format!(
        "[admin]\n{extra}\n[[admin.tokens]]\nname = \"ops\"\nscope = \"write\"\nhash = \"{}\"\n\
         [[admin.tokens]]\nname = \"grafana\"\nscope = \"read\"\nhash = \"{}\"\n",
        hash(WRITE),
        hash(READ)
    )
}

fn with_token(mut req: Request<Full<Bytes>>, token: &str) -> Request<Full<Bytes>> {
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

fn strategy(admin: std::net::SocketAddr) -> Request<Full<Bytes>> {
    post(
        admin,
        "/api/v1/performance/load-balancer/strategy",
        Bytes::from_static(br#"{"pool":"llm","strategy":"round_robin"}"#),
    )
}

#[tokio::test]
async fn tokens_and_scopes_decide_who_may_read_and_write() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&format!(
        "{}\n{}",
        fleet_config(&[up.url()], ""),
        tokens("")
    ))
    .await;
    let c = client();
    let perf = "/api/v1/performance/metrics";

    let r = send(&c, get(gw.admin_addr, perf)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error_code(), "invalid_admin_token");
    assert!(r.headers.contains_key("www-authenticate"));
    let r = send(&c, with_token(get(gw.admin_addr, perf), "fgk_nope")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    assert_eq!(
        send(&c, with_token(get(gw.admin_addr, perf), READ))
            .await
            .status,
        StatusCode::OK
    );
    let r = send(&c, with_token(strategy(gw.admin_addr), READ)).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a read token may not write"
    );
    assert_eq!(r.error_code(), "insufficient_scope");
    let r = send(&c, with_token(strategy(gw.admin_addr), WRITE)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );

    // Open by default: /health and /ready; /metrics needs a token unless opened.
    assert_eq!(
        send(&c, get(gw.admin_addr, "/health")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&c, get(gw.admin_addr, "/ready")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&c, get(gw.admin_addr, "/metrics")).await.status,
        StatusCode::UNAUTHORIZED
    );
    let gw = gateway(&format!(
        "{}\n{}",
        fleet_config(&[up.url()], ""),
        tokens("open = [\"health\", \"metrics\"]")
    ))
    .await;
    assert_eq!(
        send(&c, get(gw.admin_addr, "/metrics")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&c, get(gw.admin_addr, "/ready")).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_environments_token_may_write() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway_env(
        &fleet_config(&[up.url()], ""),
        &[("FLOWGATE_ADMIN_TOKEN", "from-the-environment")],
    )
    .await;
    let c = client();
    assert_eq!(
        send(&c, strategy(gw.admin_addr)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = send(
        &c,
        with_token(strategy(gw.admin_addr), "from-the-environment"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_tokens_from_one_address_are_turned_away_for_a_while() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&format!(
        "{}\n{}",
        fleet_config(&[up.url()], ""),
        tokens("")
    ))
    .await;
    let c = client();
    let perf = "/api/v1/performance/metrics";
    for _ in 0..5 {
        let r = send(&c, with_token(get(gw.admin_addr, perf), "fgk_guess")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = send(&c, with_token(get(gw.admin_addr, perf), READ)).await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even a right token, for now"
    );
    assert_eq!(r.error_code(), "too_many_failures");
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(
        send(&c, get(gw.admin_addr, "/health")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn only_known_hosts_and_json_writes_are_answered() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway(&format!(
        "{}\n[admin]\nallowed_hosts = [\"admin.corp\"]\n",
        fleet_config(&[up.url()], "")
    ))
    .await;
    let c = client();
    let mut req = get(gw.admin_addr, "/api/v1/performance/metrics");
    req.headers_mut()
        .insert("host", "attacker.example".parse().unwrap());
    let r = send(&c, req).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.error_code(), "host_not_allowed");
    let mut req = get(gw.admin_addr, "/api/v1/performance/metrics");
    req.headers_mut()
        .insert("host", "admin.corp:9090".parse().unwrap());
    assert_eq!(send(&c, req).await.status, StatusCode::OK);

    // A form post from another site: no JSON content type.
    let mut req = strategy(gw.admin_addr);
    req.headers_mut().insert(
        "content-type",
        "application/x-www-form-urlencoded".parse().unwrap(),
    );
    let r = send(&c, req).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        send(&c, strategy(gw.admin_addr)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_registered_endpoint_may_only_carry_a_credential_the_config_declares() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway_env(
        &format!(
            "[pools.llm]\nendpoints = [{{ url = \"{}\", api_key_env = \"FG_TEST_UPSTREAM_KEY\" }}]\n",
            up.url()
        ),
        &[("FG_TEST_UPSTREAM_KEY", "sk-upstream")],
    )
    .await;
    let c = client();
    let register = |body: String| {
        post(
            gw.admin_addr,
            "/api/v1/performance/load-balancer/instances/register",
            Bytes::from(body),
        )
    };
    // PATH is set in every process: asking for it must neither work nor tell.
    for var in ["PATH", "SURELY_NOT_SET_ANYWHERE"] {
        let r = send(
            &c,
            register(format!(
                r#"{{"pool":"llm","url":"http://127.0.0.1:9","name":"x-{var}","api_key_env":"{var}"}}"#
            )),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{var}");
        let msg = r.error_message();
        assert!(msg.contains("may only name a variable the config"), "{msg}");
        assert!(!msg.contains("not set"), "reveals nothing: {msg}");
    }
}
