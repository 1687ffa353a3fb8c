//! The model catalog at work: a route that serves by the request's model sends each model
//! to its deployments (the first serves, the rest are its fallback chain, each pool asked
//! for the model by the id its provider knows), lists them at `GET /v1/models`, and
//! answers 404 naming the closest for a model it does not serve.
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
use flowgate_sim::{EndpointSpec, SIM_AWS_KEY};
use http::StatusCode;

const ENV: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", SIM_AWS_KEY.0),
    ("AWS_SECRET_ACCESS_KEY", SIM_AWS_KEY.1),
    ("HOME", "/nonexistent"),
    ("ANTHROPIC_API_KEY", "sk-ant-sim"),
];

/// Pools `bedrock` (at `bedrock_url`, us-east-1) and `direct` (Anthropic, at
/// `anthropic_url`), `claude-sonnet` an alias of the catalog's Claude 3.5 Sonnet deployed
/// on both, and `extra` after.
fn config(bedrock_url: &str, anthropic_url: &str, extra: &str) -> String {
    format!(
        "[pools.bedrock]\nprovider = \"bedrock\"\nendpoints = [{{ url = \"{bedrock_url}\", region = \"us-east-1\" }}]\n\n\
         [pools.direct]\nprovider = \"anthropic\"\nendpoints = [{{ url = \"{anthropic_url}\", api_key_env = \"ANTHROPIC_API_KEY\" }}]\n\n\
         [models.\"claude-3-5-sonnet-20240620\"]\naliases = [\"claude-sonnet\"]\n\
         deployments = [{{ pool = \"bedrock\" }}, {{ pool = \"direct\" }}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\npath = \"/v1/chat/completions\"\n{extra}\n"
    )
}

fn body(model: &str) -> Bytes {
    Bytes::from(format!(
        "{{\"model\":\"{model}\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}"
    ))
}

/// An upstream that keeps what it got and answers one Anthropic message.
async fn recording() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = seen.clone();
    let answer = r#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}"#;
    let (url, _) = scripted_upstream(move |req| {
        keep.lock().unwrap().push(req.to_string());
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        )
    })
    .await;
    (url, seen)
}

#[tokio::test]
async fn a_model_goes_to_its_first_deployment_by_the_id_its_provider_knows() {
    let (bedrock, seen) = recording().await;
    let direct = sim(EndpointSpec::default()).await;
    let gw = gateway_env(&config(&bedrock, &direct.url(), ""), &ENV).await;
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", body("claude-sonnet")),
    )
    .await;
    r.expect(StatusCode::OK);
    assert_eq!(r.json()["model"], "claude-sonnet");
    assert_eq!(
        r.headers["x-flowgate-upstream"],
        bedrock.trim_start_matches("http://")
    );
    let req = seen.lock().unwrap()[0].clone();
    assert!(
        req.starts_with(
            "POST /model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke HTTP/1.1\r\n"
        ),
        "{req}"
    );
    // No max_tokens from the client: the model's longest answer, from the catalog.
    assert!(req.contains("\"max_tokens\":8192"), "{req}");
    assert_eq!(direct.stats().requests, 0);
}

#[tokio::test]
async fn an_unavailable_first_deployment_falls_back_to_the_next_provider() {
    let down = sim(EndpointSpec {
        error_rate: 1.0,
        ..EndpointSpec::default()
    })
    .await;
    let (direct, seen) = recording().await;
    let gw = gateway_env(&config(&down.url(), &direct, ""), &ENV).await;
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", body("claude-sonnet")),
    )
    .await;
    r.expect(StatusCode::OK);
    assert!(down.stats().server_errors >= 1);
    let req = seen.lock().unwrap()[0].clone();
    assert!(req.starts_with("POST /v1/messages HTTP/1.1\r\n"), "{req}");
    assert!(
        req.contains("\"model\":\"claude-3-5-sonnet-20240620\""),
        "Anthropic's id for it: {req}"
    );
}

#[tokio::test]
async fn an_unknown_model_is_a_404_naming_the_closest_and_nothing_is_sent() {
    let (bedrock, seen) = recording().await;
    let gw = gateway_env(&config(&bedrock, "http://127.0.0.1:1", ""), &ENV).await;
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", body("claude-sonet")),
    )
    .await;
    r.expect(StatusCode::NOT_FOUND);
    assert_eq!(r.error_code(), "model_not_found");
    let m = r.error_message();
    assert!(m.contains("\"claude-sonet\""), "{m}");
    assert!(m.contains("did you mean \"claude-sonnet\""), "{m}");
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_route_with_a_pool_keeps_it_for_the_models_the_catalog_does_not_deploy() {
    let (bedrock, _) = recording().await;
    let openai = sim(EndpointSpec::default()).await;
    let extra = format!(
        "pool = \"gpt\"\n\n[pools.gpt]\nendpoints = [{{ url = \"{}\" }}]\n",
        openai.url()
    );
    let gw = gateway_env(&config(&bedrock, "http://127.0.0.1:1", &extra), &ENV).await;
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", body("gpt-4o-mini")),
    )
    .await;
    r.expect(StatusCode::OK);
    assert_eq!(openai.stats().requests, 1);
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", body("claude-sonnet")),
    )
    .await;
    r.expect(StatusCode::OK);
    assert_eq!(
        r.headers["x-flowgate-upstream"],
        bedrock.trim_start_matches("http://")
    );
    assert_eq!(openai.stats().requests, 1);
}

#[tokio::test]
async fn the_served_models_are_listed_to_whoever_may_use_them() {
    let gw = gateway_env(
        &config("http://127.0.0.1:1", "http://127.0.0.1:1", ""),
        &ENV,
    )
    .await;
    let r = send(&client(), get(gw.data_addr, "/v1/models")).await;
    r.expect(StatusCode::OK);
    let v = r.json();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["claude-3-5-sonnet-20240620", "claude-sonnet"]);
    assert_eq!(v["data"][0]["owned_by"], "anthropic");
    assert_eq!(v["data"][0]["object"], "model");

    // With keys: none, a key for one name, a key for all.
    let only = flowgate_config::format_key_hash(&flowgate_admission::keys::hash(b"fgk_only"));
    let all = flowgate_config::format_key_hash(&flowgate_admission::keys::hash(b"fgk_all"));
    let auth = format!(
        "\n[auth]\nenabled = true\n\n[[auth.keys]]\nname = \"only\"\nhash = \"{only}\"\nmodels = [\"claude-sonnet\"]\n\n\
         [[auth.keys]]\nname = \"all\"\nhash = \"{all}\"\n"
    );
    let gw = gateway_env(
        &(config("http://127.0.0.1:1", "http://127.0.0.1:1", "") + &auth),
        &ENV,
    )
    .await;
    let r = send(&client(), get(gw.data_addr, "/v1/models")).await;
    r.expect(StatusCode::UNAUTHORIZED);
    let listed = |key: &'static str| {
        let gw = &gw;
        async move {
            let mut req = get(gw.data_addr, "/v1/models");
            req.headers_mut()
                .insert("authorization", format!("Bearer {key}").parse().unwrap());
            let r = send(&client(), req).await;
            r.expect(StatusCode::OK);
            r.json()["data"].as_array().unwrap().len()
        }
    };
    assert_eq!(listed("fgk_only").await, 1);
    assert_eq!(listed("fgk_all").await, 2);
}

#[test]
fn flowgate_check_refuses_deployments_that_cannot_serve() {
    let check = |models: &str, routes: &str| {
        let src = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n\
             [pools.direct]\nprovider = \"anthropic\"\nendpoints = [{{ url = \"http://127.0.0.1:1\", api_key_env = \"ANTHROPIC_API_KEY\" }}]\n\n\
             [pools.bedrock]\nprovider = \"bedrock\"\nendpoints = [{{ url = \"http://127.0.0.1:1\", region = \"us-east-1\" }}]\n\n\
             {models}\n{routes}\n"
        );
        let env = ENV.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        match flowgate_config::parse(&src, "t.toml", env) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .problems()
                .iter()
                .map(|p| (p.key.to_string(), p.message.clone()))
                .collect(),
        }
    };
    let chat = "[[routes]]\nname = \"chat\"\nkind = \"openai\"\npath = \"/v1/chat/completions\"\n";
    // An embeddings model on a chat-only provider; a model Bedrock has no id for; a pool
    // that does not exist.
    let p = check(
        "[models.\"text-embedding-3-small\"]\ndeployments = [{ pool = \"direct\" }]\n\n\
         [models.\"gpt-4o\"]\ndeployments = [{ pool = \"bedrock\" }, { pool = \"nope\" }]\n",
        chat,
    );
    let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        keys.contains(&"models.text-embedding-3-small.deployments[0].pool"),
        "{p:?}"
    );
    assert!(
        keys.contains(&"models.gpt-4o.deployments[0].model"),
        "{p:?}"
    );
    assert!(keys.contains(&"models.gpt-4o.deployments[1].pool"), "{p:?}");
    // A route without a pool when nothing is deployed; an http route without one.
    let p = check(
        "",
        &format!("{chat}\n[[routes]]\nname = \"raw\"\nkind = \"http\"\nprefix = \"/raw\"\n"),
    );
    let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["routes[0].pool", "routes[1].pool"], "{p:?}");
    // Named: fine.
    assert!(
        check(
            "[models.\"gpt-4o\"]\ndeployments = [{ pool = \"bedrock\", model = \"openai.gpt-oss-120b-1:0\" }]\n",
            chat
        )
        .is_empty()
    );
    // Bedrock embeds (Titan): an embeddings model may be deployed there.
    assert_eq!(
        check(
            "[models.\"amazon.titan-embed-text-v2:0\"]\ndeployments = [{ pool = \"bedrock\" }]\n",
            chat
        ),
        Vec::<(String, String)>::new()
    );
}
