//! Pools whose servers speak Anthropic's Messages API (`provider = "anthropic"`), served to
//! OpenAI clients: the simulator's `/v1/messages` on loopback behind an openai route.
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
use flowgate_sim::EndpointSpec;
use http::StatusCode;
use http_body_util::BodyExt;

const KEY: (&str, &str) = ("ANTHROPIC_API_KEY", "sk-ant-sim");

/// An anthropic pool `claude` of `urls` behind the `chat` route, and `extra` after it.
fn config(urls: &[String], extra: &str) -> String {
    let eps: Vec<String> = urls
        .iter()
        .map(|u| format!("{{ url = \"{u}\", api_key_env = \"ANTHROPIC_API_KEY\" }}"))
        .collect();
    format!(
        "[pools.claude]\nprovider = \"anthropic\"\nendpoints = [{}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\npath = \"/v1/chat/completions\"\npool = \"claude\"\n{extra}\n",
        eps.join(", ")
    )
}

/// An upstream that answers every request with one Anthropic message, keeping the last
/// request it got (head and body, as text).
async fn anthropic_upstream() -> (String, std::sync::Arc<std::sync::Mutex<String>>) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let keep = seen.clone();
    let answer = r#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}"#;
    let (url, _) = scripted_upstream(move |req| {
        *keep.lock().unwrap() = req.to_string();
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        )
    })
    .await;
    (url, seen)
}

fn body(extra: &str) -> Bytes {
    Bytes::from(format!(
        "{{\"model\":\"claude-sonnet\",\"max_tokens\":6,\"messages\":[{{\"role\":\"system\",\"content\":\"Be brief.\"}},{{\"role\":\"user\",\"content\":\"hi\"}}]{extra}}}"
    ))
}

#[tokio::test]
async fn an_openai_client_gets_an_openai_answer_from_an_anthropic_pool() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway_env(&config(&[up.url()], ""), &[KEY]).await;
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", body("")),
    )
    .await;
    // The simulator refuses a request without anthropic-version, max_tokens or messages:
    // a 200 means the request was translated and carried the API's fields.
    r.expect(StatusCode::OK);
    // Translated whole before its head: sent with its length, in one write.
    assert_eq!(
        r.headers["content-length"].to_str().unwrap(),
        r.body.len().to_string()
    );
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "claude-sonnet");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .split(' ')
            .count(),
        6
    );
    assert_eq!(v["usage"]["completion_tokens"], 6);
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-msg_"));
    assert_eq!(up.stats().requests, 1);
}

#[tokio::test]
async fn a_streamed_anthropic_answer_reaches_the_client_as_openai_chunks() {
    let up = sim(EndpointSpec {
        token_delay: Duration::from_millis(5),
        ..EndpointSpec::default()
    })
    .await;
    let gw = gateway_env(&config(&[up.url()], ""), &[KEY]).await;
    let resp = client()
        .request(post(
            gw.data_addr,
            "/v1/chat/completions",
            body(",\"stream\":true,\"stream_options\":{\"include_usage\":true}"),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let events: Vec<serde_json::Value> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        events
            .iter()
            .all(|e| e["object"] == "chat.completion.chunk")
    );
    let content: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content.split(' ').count(), 6, "{content}");
    assert_eq!(events.last().unwrap()["usage"]["completion_tokens"], 6);
}

#[tokio::test]
async fn what_anthropic_cannot_do_is_a_400_before_anything_is_sent() {
    let up = sim(EndpointSpec::default()).await;
    let gw = gateway_env(&config(&[up.url()], ""), &[KEY]).await;
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", body(",\"n\":2")),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "unsupported_parameter");
    assert!(
        r.error_message().contains("n must be 1"),
        "{}",
        r.error_message()
    );
    assert_eq!(up.stats().requests, 0);
}

#[tokio::test]
async fn an_overloaded_anthropic_pool_is_a_503_or_falls_back_to_an_openai_pool() {
    let overloaded = sim(EndpointSpec {
        error_rate: 1.0,
        ..EndpointSpec::default()
    })
    .await;
    let gw = gateway_env(&config(&[overloaded.url()], ""), &[KEY]).await;
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", body("")),
    )
    .await;
    r.expect(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.error_code(), "upstream_overloaded");
    assert_eq!(overloaded.stats().requests, 2, "529 is retried as a 503 is");

    // Down the chain to an OpenAI pool: the same request, untranslated there.
    let openai = sim(EndpointSpec::default()).await;
    let chain = format!(
        "fallback = [{{ pool = \"gpt\" }}]\n\n[pools.gpt]\nendpoints = [{{ url = \"{}\" }}]\n",
        openai.url()
    );
    let gw = gateway_env(&config(&[overloaded.url()], &chain), &[KEY]).await;
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", body("")),
    )
    .await;
    r.expect(StatusCode::OK);
    assert_eq!(r.json()["object"], "chat.completion");
    assert_eq!(openai.stats().requests, 1);
}

#[tokio::test]
async fn translated_answers_are_cached_in_openais_shape() {
    let up = sim(EndpointSpec::default()).await;
    let cfg = format!(
        "[cache]\nenabled = true\nmemory = \"16MiB\"\n\n{}",
        config(&[up.url()], "")
    );
    let gw = gateway_env(&cfg, &[KEY]).await;
    let c = client();
    let first = send(
        &c,
        post(
            gw.data_addr,
            "/v1/chat/completions",
            body(",\"temperature\":0"),
        ),
    )
    .await;
    let second = send(
        &c,
        post(
            gw.data_addr,
            "/v1/chat/completions",
            body(",\"temperature\":0"),
        ),
    )
    .await;
    assert_eq!(cache_header(&first), "miss");
    assert_eq!(cache_header(&second), "hit-l1");
    assert_eq!(first.json()["choices"], second.json()["choices"]);
    assert_eq!(second.json()["object"], "chat.completion");
    assert_eq!(up.stats().requests, 1);
}

#[test]
fn an_anthropic_pool_needs_its_key_and_unknown_providers_are_named() {
    let check = |pool: &str, env: &[(&str, &str)]| {
        let src = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n[pools.p]\n{pool}\n"
        );
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        flowgate_config::parse(&src, "t.toml", env)
            .err()
            .map(|e| e.problems().to_vec())
    };
    let p = check(
        "provider = \"anthropic\"\nendpoints = [{ url = \"https://api.anthropic.com\" }]",
        &[],
    )
    .unwrap();
    assert_eq!(p[0].key.to_string(), "pools.p.endpoints[0].api_key_env");
    let p = check(
        "provider = \"palm\"\nendpoints = [{ url = \"https://x\" }]",
        &[],
    )
    .unwrap();
    assert_eq!(p[0].key.to_string(), "pools.p.provider");
    assert!(p[0].message.contains("\"gemini\""), "{}", p[0].message);
    assert!(check(
        "provider = \"anthropic\"\nendpoints = [{ url = \"https://api.anthropic.com\", api_key_env = \"K\" }]",
        &[("K", "sk-ant")],
    )
    .is_none());
}

#[tokio::test]
async fn the_request_carries_the_apis_fields_and_never_the_clients_own_credential() {
    let (url, seen) = anthropic_upstream().await;
    let gw = gateway_env(&config(&[url], ""), &[KEY]).await;
    let mut req = post(gw.data_addr, "/v1/chat/completions", body(""));
    req.headers_mut().insert(
        "authorization",
        "Bearer sk-openai-client-key".parse().unwrap(),
    );
    let r = send(&client(), req).await;
    r.expect(StatusCode::OK);
    assert_eq!(r.json()["choices"][0]["message"]["content"], "ok");
    let req = seen.lock().unwrap().clone();
    assert!(req.starts_with("POST /v1/messages HTTP/1.1\r\n"), "{req}");
    let lower = req.to_ascii_lowercase();
    assert!(lower.contains("\r\nx-api-key: sk-ant-sim\r\n"), "{req}");
    assert!(
        lower.contains("\r\nanthropic-version: 2023-06-01\r\n"),
        "{req}"
    );
    assert!(
        !lower.contains("authorization"),
        "the client's key went upstream: {req}"
    );
    assert!(!req.contains("sk-openai-client-key"), "{req}");
}

#[tokio::test]
async fn a_pools_model_is_the_one_its_servers_are_asked_for() {
    // An OpenAI pool: the body's model is rewritten (the answer names the served model).
    let up = sim(EndpointSpec::default()).await;
    let cfg = format!(
        "[pools.gpt]\nmodel = \"served-model\"\nendpoints = [{{ url = \"{}\" }}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\npath = \"/v1/chat/completions\"\npool = \"gpt\"\n",
        up.url()
    );
    let gw = gateway_env(&cfg, &[]).await;
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", body("")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["model"], "served-model");
    // An Anthropic pool: the translated body asks for it, the answer names the client's.
    let (url, seen) = anthropic_upstream().await;
    let gw = gateway_env(
        &config(&[url], "").replace(
            "provider = \"anthropic\"\n",
            "provider = \"anthropic\"\nmodel = \"claude-3-5-sonnet-20240620\"\n",
        ),
        &[KEY],
    )
    .await;
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", body("")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["model"], "claude-sonnet");
    let req = seen.lock().unwrap().clone();
    assert!(
        req.contains("\"model\":\"claude-3-5-sonnet-20240620\""),
        "{req}"
    );
}

#[tokio::test]
async fn a_simulator_told_one_provider_answers_only_its_paths() {
    let up = sim(EndpointSpec {
        dialect: Some(flowgate_sim::Dialect::Anthropic),
        ..EndpointSpec::default()
    })
    .await;
    // OpenAI's path on an Anthropic-only simulator: a 404 that says so.
    let r = send(&client(), post(up.addr(), "/v1/chat/completions", body(""))).await;
    r.expect(StatusCode::NOT_FOUND);
    assert!(
        r.error_message().contains("speaks anthropic only"),
        "{}",
        r.error_message()
    );
    // Through an anthropic pool the request is on the simulator's own path.
    let gw = gateway_env(&config(&[up.url()], ""), &[KEY]).await;
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", body("")),
    )
    .await;
    r.expect(StatusCode::OK);
}

#[tokio::test]
async fn what_a_chat_only_provider_cannot_serve_is_a_400_that_says_where_it_goes() {
    let up = sim(EndpointSpec::default()).await;
    let cfg =
        config(&[up.url()], "").replace("path = \"/v1/chat/completions\"", "prefix = \"/v1\"");
    let gw = gateway_env(&cfg, &[KEY]).await;
    let r = send(
        &client(),
        post(
            gw.data_addr,
            "/v1/embeddings",
            Bytes::from(r#"{"model":"text-embedding-3-small","input":"hi"}"#),
        ),
    )
    .await;
    r.expect(StatusCode::BAD_REQUEST);
    assert!(
        r.error_message().contains("serves chat completions only"),
        "{}",
        r.error_message()
    );
    assert_eq!(up.stats().requests, 0);
}
