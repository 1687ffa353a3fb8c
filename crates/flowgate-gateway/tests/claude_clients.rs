//! Claude clients (`kind = "anthropic"` routes, `/v1/messages`): their requests are served by
//! any provider and the cache as OpenAI requests are, and they get the Messages API's
//! answers, streams and errors back.
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
use serde_json::{Value, json};

const KEY: (&str, &str) = ("ANTHROPIC_API_KEY", "sk-ant-sim");

/// A `messages` route (Claude clients) and a `chat` route (OpenAI clients) on pool `p`
/// (`pool`), sharing one cache namespace; `extra` after.
fn config(pool: &str, extra: &str) -> String {
    format!(
        "[cache]\nenabled = true\nmemory = \"16MiB\"\n\n[pools.p]\n{pool}\n\n\
         [[routes]]\nname = \"messages\"\nkind = \"anthropic\"\npath = \"/v1/messages\"\npool = \"p\"\ncache = {{ namespace = \"llm\" }}\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\npath = \"/v1/chat/completions\"\npool = \"p\"\ncache = {{ namespace = \"llm\" }}\n{extra}\n"
    )
}

fn claude(extra: &str) -> Bytes {
    Bytes::from(format!(
        "{{\"model\":\"claude-sonnet\",\"max_tokens\":6,\"temperature\":0,\"system\":\"Be brief.\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]{extra}}}"
    ))
}

/// The same question in OpenAI's words.
fn openai() -> Bytes {
    Bytes::from(
        r#"{"model":"claude-sonnet","max_tokens":6,"temperature":0,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}]}"#,
    )
}

#[tokio::test]
async fn a_claude_client_gets_a_message_from_any_provider() {
    let up = sim(EndpointSpec::default()).await;
    for pool in [
        // Anthropic's API: translated out of OpenAI's form and back.
        format!(
            "provider = \"anthropic\"\nendpoints = [{{ url = \"{}\", api_key_env = \"ANTHROPIC_API_KEY\" }}]",
            up.url()
        ),
        // An OpenAI-compatible server.
        format!("endpoints = [{{ url = \"{}\" }}]", up.url()),
    ] {
        let gw = gateway_env(&config(&pool, ""), &[KEY]).await;
        let r = send(&client(), post(gw.data_addr, "/v1/messages", claude(""))).await;
        r.expect(StatusCode::OK);
        // Translated whole before its head: sent with its length.
        assert_eq!(
            r.headers["content-length"].to_str().unwrap(),
            r.body.len().to_string()
        );
        let m = r.json();
        assert_eq!(m["type"], "message", "{m}");
        assert_eq!(m["role"], "assistant");
        assert_eq!(m["model"], "claude-sonnet");
        assert_eq!(m["content"][0]["type"], "text");
        assert_eq!(
            m["content"][0]["text"].as_str().unwrap().split(' ').count(),
            6
        );
        assert_eq!(m["stop_reason"], "end_turn");
        assert_eq!(m["usage"]["output_tokens"], 6);
        assert!(m["usage"]["input_tokens"].as_u64().unwrap() > 0);
    }
}

/// The (event, data) pairs of a streamed answer.
async fn events(gw: &flowgate_gateway::Running, body: Bytes) -> Vec<(String, Value)> {
    let resp = client()
        .request(post(gw.data_addr, "/v1/messages", body))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (name, data) = e.split_once('\n').unwrap();
            (
                name.trim_start_matches("event: ").to_string(),
                serde_json::from_str(data.trim_start_matches("data: ")).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_claude_client_streams_anthropic_events_with_tools() {
    let up = sim(EndpointSpec::default()).await;
    let pool = format!(
        "provider = \"anthropic\"\nendpoints = [{{ url = \"{}\", api_key_env = \"ANTHROPIC_API_KEY\" }}]",
        up.url()
    );
    let gw = gateway_env(&config(&pool, ""), &[KEY]).await;
    let ev = events(&gw, claude(",\"stream\":true")).await;
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(&names[names.len() - 2..], ["message_delta", "message_stop"]);
    let text: String = ev
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(text.split(' ').count(), 6, "{text}");
    assert_eq!(ev[ev.len() - 2].1["usage"]["output_tokens"], 6);

    let tools = ",\"stream\":true,\"tools\":[{\"name\":\"lookup\",\"input_schema\":{\"type\":\"object\"}}],\"tool_choice\":{\"type\":\"tool\",\"name\":\"lookup\"}";
    let ev = events(&gw, claude(tools)).await;
    let start = ev
        .iter()
        .find(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use")
        .unwrap();
    assert_eq!(start.1["content_block"]["name"], "lookup");
    let args: String = ev
        .iter()
        .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
        .collect();
    assert!(serde_json::from_str::<Value>(&args).is_ok(), "{args}");
    assert_eq!(ev[ev.len() - 2].1["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn one_cache_entry_answers_both_dialects() {
    let up = sim(EndpointSpec::default()).await;
    let pool = format!(
        "provider = \"anthropic\"\nendpoints = [{{ url = \"{}\", api_key_env = \"ANTHROPIC_API_KEY\" }}]",
        up.url()
    );
    let gw = gateway_env(&config(&pool, ""), &[KEY]).await;
    let c = client();
    let first = send(&c, post(gw.data_addr, "/v1/messages", claude(""))).await;
    assert_eq!(cache_header(&first), "miss");
    // The same question from an OpenAI client: the Claude client's answer, in OpenAI's shape.
    let second = send(&c, post(gw.data_addr, "/v1/chat/completions", openai())).await;
    assert_eq!(cache_header(&second), "hit-l1");
    assert_eq!(second.json()["object"], "chat.completion");
    assert_eq!(
        second.json()["choices"][0]["message"]["content"],
        first.json()["content"][0]["text"]
    );
    // And streamed to a Claude client, from the same entry.
    let ev = events(&gw, claude(",\"stream\":true")).await;
    let text: String = ev
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(json!(text), first.json()["content"][0]["text"]);
    assert_eq!(up.stats().requests, 1);
}

#[tokio::test]
async fn errors_reach_claude_clients_in_anthropics_shape() {
    let limited = sim(EndpointSpec {
        rate_limit_rate: 1.0,
        retry_after_secs: 7,
        ..EndpointSpec::default()
    })
    .await;
    let pool = format!(
        "provider = \"anthropic\"\nendpoints = [{{ url = \"{}\", api_key_env = \"ANTHROPIC_API_KEY\" }}]\nretries = {{ attempts = 1 }}",
        limited.url()
    );
    let gw = gateway_env(&config(&pool, ""), &[KEY]).await;
    let r = send(&client(), post(gw.data_addr, "/v1/messages", claude(""))).await;
    r.expect(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers["retry-after"], "7");
    let e = r.json();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "rate_limit_error");

    // What the gateway refuses itself: a request it cannot carry, a model it does not serve.
    let r = send(
        &client(),
        post(
            gw.data_addr,
            "/v1/messages",
            claude(",\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":1024}"),
        ),
    )
    .await;
    r.expect(StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("thinking")
    );
    let models = "\n[models.\"claude-3-5-sonnet-20240620\"]\naliases = [\"claude-sonnet\"]\ndeployments = [{ pool = \"p\" }]\n";
    let by_model = config(&pool, models).replace(
        "path = \"/v1/messages\"\npool = \"p\"\n",
        "path = \"/v1/messages\"\n",
    );
    let gw = gateway_env(&by_model, &[KEY]).await;
    let r = send(
        &client(),
        post(
            gw.data_addr,
            "/v1/messages",
            Bytes::from(r#"{"model":"claude-sonet","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#),
        ),
    )
    .await;
    r.expect(StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"]["type"], "not_found_error");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("claude-sonnet")
    );
}
