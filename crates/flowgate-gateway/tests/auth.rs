//! Virtual keys: who may call, what they may call, their own limits, and the keys made
//! through the admin API.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use flowgate_gateway::Running;
use http::StatusCode;

const KEY_A: &str = "fgk_test_key_a";
const KEY_B: &str = "fgk_test_key_b";

fn hash(key: &str) -> String {
    flowgate_config::format_key_hash(&flowgate_admission::keys::hash(key.as_bytes()))
}

/// An upstream that answers `{}` and remembers every request it got (head and body).
async fn recording_upstream() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let (url, _) = scripted_upstream(move |req| {
        log.lock().unwrap().push(req.to_string());
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}".to_string()
    })
    .await;
    (url, seen)
}

/// Two keys: `a` (team shop, chat route, gpt-4o* models, 2 requests at once) and `b`
/// (any route and model); the upstream's credential comes from the environment.
async fn keyed_gateway(url: &str, extra: &str) -> Running {
    let toml = format!(
        "{extra}[auth]\nenabled = true\n\n\
         [[auth.keys]]\nname = \"a\"\nhash = \"{}\"\nteam = \"shop\"\nroutes = [\"chat\"]\nmodels = [\"gpt-4o*\"]\n\
         limits = [{{ requests = 2, per = \"1m\" }}]\n\n\
         [[auth.keys]]\nname = \"b\"\nhash = \"{}\"\n\n{}",
        hash(KEY_A),
        hash(KEY_B),
        fleet_config(&[url.to_string()], "").replace(
            &format!("{{ url = \"{url}\" }}"),
            &format!("{{ url = \"{url}\", api_key_env = \"FLOWGATE_TEST_UPSTREAM_KEY\" }}")
        )
    );
    gateway_env(
        &toml,
        &[("FLOWGATE_TEST_UPSTREAM_KEY", "sk-upstream-canary")],
    )
    .await
}

fn with_key(
    mut r: http::Request<http_body_util::Full<Bytes>>,
    key: &str,
) -> http::Request<http_body_util::Full<Bytes>> {
    r.headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    r
}

fn chat_for(addr: std::net::SocketAddr, model: &str) -> http::Request<http_body_util::Full<Bytes>> {
    post(
        addr,
        "/v1/chat/completions",
        Bytes::from(format!(r#"{{"model":"{model}","messages":[]}}"#)),
    )
}

#[tokio::test]
async fn keys_decide_who_may_call_what() {
    let (url, seen) = recording_upstream().await;
    let gw = keyed_gateway(&url, "").await;
    let c = client();
    let addr = gw.data_addr;

    let none = send(&c, chat_for(addr, "gpt-4o")).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.error_code(), "invalid_api_key");
    assert!(none.error_message().contains("Authorization: Bearer KEY"));
    for bad in ["fgk_nope", "", KEY_A.trim_end_matches('a')] {
        let r = send(&c, with_key(chat_for(addr, "gpt-4o"), bad)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{bad:?}");
    }
    let basic = {
        let mut r = chat_for(addr, "gpt-4o");
        r.headers_mut()
            .insert("authorization", format!("Basic {KEY_A}").parse().unwrap());
        r
    };
    assert_eq!(send(&c, basic).await.status, StatusCode::UNAUTHORIZED);
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the upstream"
    );

    // A good key passes; the upstream gets its own credential, never the client's key.
    let ok = send(&c, with_key(chat_for(addr, "gpt-4o-mini"), KEY_A)).await;
    assert_eq!(ok.status, StatusCode::OK);
    let req = seen.lock().unwrap()[0].to_ascii_lowercase();
    assert!(
        req.contains("authorization: bearer sk-upstream-canary"),
        "{req}"
    );
    assert!(!req.contains(KEY_A), "{req}");
    // The bearer scheme is case-insensitive.
    let mut r = chat_for(addr, "gpt-4o");
    r.headers_mut()
        .insert("authorization", format!("bearer {KEY_B}").parse().unwrap());
    assert_eq!(send(&c, r).await.status, StatusCode::OK);

    // Key a: only the chat route, only gpt-4o* models.
    let r = send(&c, with_key(chat_for(addr, "o3"), KEY_A)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.error_code(), "model_not_allowed");
    assert!(
        r.error_message().contains("\"o3\""),
        "{}",
        r.error_message()
    );
    let r = send(&c, with_key(get(addr, "/echo/x"), KEY_A)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.error_code(), "route_not_allowed");
    assert_eq!(
        send(&c, with_key(get(addr, "/echo/x"), KEY_B)).await.status,
        StatusCode::OK
    );

    // Key a's own limit: 2 per minute (one used above); key b is not limited by it.
    let r = send(&c, with_key(chat_for(addr, "gpt-4o"), KEY_A)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-ratelimit-remaining-requests"], "0");
    let r = send(&c, with_key(chat_for(addr, "gpt-4o"), KEY_A)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        r.error_message().contains("key:a#0"),
        "{}",
        r.error_message()
    );
    assert_eq!(
        send(&c, with_key(chat_for(addr, "gpt-4o"), KEY_B))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn team_scoped_limits_count_a_team_together() {
    let (url, _) = recording_upstream().await;
    let gw = keyed_gateway(
        &url,
        "[[rate_limits]]\nname = \"per-team\"\nscope = \"team\"\nrequests = 1\nper = \"1m\"\n\n",
    )
    .await;
    let c = client();
    // a is in team shop; b has no team (the teamless share one count).
    assert_eq!(
        send(&c, with_key(chat_for(gw.data_addr, "gpt-4o"), KEY_A))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        send(&c, with_key(chat_for(gw.data_addr, "gpt-4o"), KEY_B))
            .await
            .status,
        StatusCode::OK
    );
    let r = send(&c, with_key(chat_for(gw.data_addr, "gpt-4o"), KEY_A)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        r.error_message().contains("for shop"),
        "{}",
        r.error_message()
    );
}

fn admin(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> http::Request<http_body_util::Full<Bytes>> {
    http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

#[tokio::test]
async fn keys_made_through_the_admin_api_work_at_once_survive_restarts_and_can_be_revoked() {
    let (url, _) = recording_upstream().await;
    let dir = std::env::temp_dir().join(format!("flowgate-auth-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = format!("[auth]\nstore = \"{}\"\n", dir.join("keys.redb").display());
    let gw = keyed_gateway(&url, "").await;
    let c = client();
    // Without a store, the API cannot make keys.
    let r = send(
        &c,
        admin(gw.admin_addr, "POST", "/api/v1/keys", r#"{"name":"new"}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.error_code(), "no_key_store");
    gw.shutdown();
    gw.wait().await;

    let with_store = format!(
        "{}\nenabled = true\n\n[[auth.keys]]\nname = \"a\"\nhash = \"{}\"\n\n{}",
        store.trim_end(),
        hash(KEY_A),
        fleet_config(&[url], "")
    );
    let gw = gateway(&with_store).await;
    let made = send(
        &c,
        admin(
            gw.admin_addr,
            "POST",
            "/api/v1/keys",
            r#"{"name":"ci-bot","team":"infra","models":["gpt-4o*"],"limits":[{"tokens":5000,"per":"1m"}]}"#,
        ),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
    let v = made.json();
    let key = v["key"].as_str().unwrap().to_string();
    let id = v["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("fgk_") && id.len() == 12);
    assert_eq!(v["limits"][0]["tokens"], 5000);
    assert_eq!(
        send(&c, with_key(chat_for(gw.data_addr, "gpt-4o"), &key))
            .await
            .status,
        StatusCode::OK
    );
    // Bad requests, duplicate names, config keys.
    for (body, status, code) in [
        (r#"{"name":"ci-bot"}"#, StatusCode::CONFLICT, "key_exists"),
        (r#"{"name":"a"}"#, StatusCode::CONFLICT, "key_exists"),
        (
            r#"{"name":"x","routes":["nope"]}"#,
            StatusCode::BAD_REQUEST,
            "invalid_key_request",
        ),
        (
            r#"{"name":"x","colour":"red"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_key_request",
        ),
        (
            r#"{"name":"x","hash":"blake3:00"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_key_request",
        ),
        ("not json", StatusCode::BAD_REQUEST, "invalid_key_request"),
    ] {
        let r = send(&c, admin(gw.admin_addr, "POST", "/api/v1/keys", body)).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (status, code),
            "{body}: {}",
            r.error_message()
        );
    }
    let a_id = flowgate_admission::keys::id_of(&flowgate_admission::keys::hash(KEY_A.as_bytes()));
    let r = send(
        &c,
        admin(gw.admin_addr, "DELETE", &format!("/api/v1/keys/{a_id}"), ""),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (StatusCode::CONFLICT, "key_in_config")
    );
    gw.shutdown();
    gw.wait().await;

    // After a restart the key is still known; the list shows ids, never keys or hashes.
    let gw = gateway(&with_store).await;
    assert_eq!(
        send(&c, with_key(chat_for(gw.data_addr, "gpt-4o"), &key))
            .await
            .status,
        StatusCode::OK
    );
    let list = send(&c, admin(gw.admin_addr, "GET", "/api/v1/keys", "")).await;
    let text = String::from_utf8_lossy(&list.body).to_string();
    assert!(!text.contains(&key) && !text.contains("blake3:"), "{text}");
    let names: Vec<(String, String)> = list.json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["name"].as_str().unwrap().into(),
                k["source"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("a".into(), "config".into()),
            ("ci-bot".into(), "store".into())
        ]
    );
    // Revoked: a 401 from the next request on.
    let r = send(
        &c,
        admin(gw.admin_addr, "DELETE", &format!("/api/v1/keys/{id}"), ""),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["revoked"]["name"], "ci-bot");
    assert_eq!(
        send(&c, with_key(chat_for(gw.data_addr, "gpt-4o"), &key))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let r = send(
        &c,
        admin(gw.admin_addr, "DELETE", &format!("/api/v1/keys/{id}"), ""),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    gw.shutdown();
    gw.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_key_in_another_header_is_read_as_is_and_never_forwarded() {
    let (url, seen) = recording_upstream().await;
    let gw = gateway(&format!(
        "[auth]\nenabled = true\nheader = \"x-flowgate-key\"\n\n\
         [[auth.keys]]\nname = \"a\"\nhash = \"{}\"\n\n{}",
        hash(KEY_A),
        fleet_config(&[url], "")
    ))
    .await;
    let c = client();
    let r = send(&c, chat_for(gw.data_addr, "m")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.error_message().contains("x-flowgate-key: KEY"),
        "{}",
        r.error_message()
    );
    let mut ok = chat_for(gw.data_addr, "m");
    ok.headers_mut()
        .insert("x-flowgate-key", KEY_A.parse().unwrap());
    ok.headers_mut()
        .insert("authorization", "Bearer client-own".parse().unwrap());
    assert_eq!(send(&c, ok).await.status, StatusCode::OK);
    let req = seen.lock().unwrap()[0].to_ascii_lowercase();
    assert!(
        !req.contains("x-flowgate-key") && !req.contains(KEY_A),
        "{req}"
    );
    // Without a credential of its own the pool passes the client's other fields on.
    assert!(req.contains("authorization: bearer client-own"), "{req}");
}
