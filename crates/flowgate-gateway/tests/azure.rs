//! Azure OpenAI pools (`provider = "azure"`): OpenAI's bodies sent to a deployment's path
//! with the pool's `api-version` and the key in `api-key`; the simulator's Azure dialect
//! refuses a request without either.
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
use http_body_util::BodyExt;

const KEY: (&str, &str) = ("AZURE_OPENAI_KEY", "azure-sim-key");

fn config(url: &str, pool_extra: &str) -> String {
    format!(
        "[pools.azure]\nprovider = \"azure\"\nendpoints = [{{ url = \"{url}\", api_key_env = \"AZURE_OPENAI_KEY\" }}]\n{pool_extra}\n\n\
         [[routes]]\nname = \"v1\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"azure\"\n"
    )
}

async fn azure_sim() -> flowgate_sim::SimServer {
    sim(EndpointSpec {
        azure_key: Some(KEY.1.into()),
        ..EndpointSpec::default()
    })
    .await
}

#[tokio::test]
async fn chat_embeddings_and_streams_reach_the_deployment() {
    let up = azure_sim().await;
    let gw = gateway_env(&config(&up.url(), ""), &[KEY]).await;
    let mut req = post(
        gw.data_addr,
        "/v1/chat/completions",
        Bytes::from(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#),
    );
    // The client's own key (for the gateway) never reaches Azure.
    req.headers_mut()
        .insert("authorization", "Bearer client-key".parse().unwrap());
    let r = send(&client(), req).await;
    r.expect(StatusCode::OK);
    // The simulator answers as the deployment the path named: the client's model.
    assert_eq!(r.json()["model"], "gpt-4o-mini");
    let r = send(
        &client(),
        post(
            gw.data_addr,
            "/v1/embeddings",
            Bytes::from(r#"{"model":"text-embedding-3-small","input":"hi"}"#),
        ),
    )
    .await;
    r.expect(StatusCode::OK);
    assert_eq!(r.json()["object"], "list");
    let resp = client()
        .request(post(
            gw.data_addr,
            "/v1/chat/completions",
            Bytes::from(
                r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
            ),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(text.ends_with(b"data: [DONE]\n\n"));
    assert_eq!(up.stats().unauthorized, 0);
    assert_eq!(up.stats().requests, 3);
}

#[tokio::test]
async fn the_pools_model_names_the_deployment_and_a_wrong_key_is_azures_401() {
    let up = azure_sim().await;
    let gw = gateway_env(&config(&up.url(), "model = \"prod-gpt4o\""), &[KEY]).await;
    let r = send(
        &client(),
        post(
            gw.data_addr,
            "/v1/chat/completions",
            Bytes::from(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#),
        ),
    )
    .await;
    r.expect(StatusCode::OK);
    assert_eq!(r.json()["model"], "prod-gpt4o");

    let gw = gateway_env(&config(&up.url(), ""), &[("AZURE_OPENAI_KEY", "wrong")]).await;
    let r = send(
        &client(),
        post(
            gw.data_addr,
            "/v1/chat/completions",
            Bytes::from(r#"{"model":"gpt-4o","messages":[]}"#),
        ),
    )
    .await;
    r.expect(StatusCode::UNAUTHORIZED);
    assert!(r.error_message().contains("Access denied"));
    // The key refused is the gateway's: the message says for which endpoint.
    assert!(
        r.error_message()
            .contains(&format!("endpoint {}", up.addr())),
        "{}",
        r.error_message()
    );
}

#[test]
fn an_azure_pool_needs_its_key_and_a_well_formed_api_version() {
    let check = |pool: &str| {
        let src = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n[pools.p]\nprovider = \"azure\"\n{pool}\n"
        );
        let env = [KEY].iter().map(|(k, v)| (k.to_string(), v.to_string()));
        flowgate_config::parse(&src, "t.toml", env).err().map(|e| {
            e.problems()
                .iter()
                .map(|p| p.key.to_string())
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(
        check("api_version = \"latest\"\nendpoints = [{ url = \"https://x.openai.azure.com\" }]")
            .unwrap(),
        ["pools.p.endpoints[0].api_key_env", "pools.p.api_version"]
    );
    assert!(
        check("api_version = \"2025-04-01-preview\"\nendpoints = [{ url = \"https://x.openai.azure.com\", api_key_env = \"AZURE_OPENAI_KEY\" }]")
            .is_none()
    );
}

#[tokio::test]
async fn the_responses_api_goes_to_azures_v1_api() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let keep = seen.clone();
    let answer = r#"{"id":"resp_1","object":"response","status":"completed","output":[]}"#;
    let (url, _) = scripted_upstream(move |req| {
        *keep.lock().unwrap() = req.to_string();
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        )
    })
    .await;
    let gw = gateway_env(&config(&url, ""), &[KEY]).await;
    let r = send(
        &client(),
        post(
            gw.data_addr,
            "/v1/responses",
            Bytes::from(r#"{"model":"gpt-4o-mini","input":"hi"}"#),
        ),
    )
    .await;
    r.expect(StatusCode::OK);
    assert_eq!(r.json()["object"], "response");
    let req = seen.lock().unwrap().clone();
    assert!(
        req.starts_with("POST /openai/v1/responses HTTP/1.1\r\n"),
        "{req}"
    );
    assert!(
        req.to_ascii_lowercase()
            .contains("\r\napi-key: azure-sim-key\r\n"),
        "{req}"
    );
}
