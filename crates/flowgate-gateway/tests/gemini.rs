//! Gemini pools (`provider = "gemini"`), served to OpenAI clients: the simulator's Gemini
//! dialect checks the key and refuses any field Gemini does not know.
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

const KEY: (&str, &str) = ("GEMINI_API_KEY", "gemini-sim-key");

fn config(url: &str, extra: &str) -> String {
    format!(
        "[pools.gemini]\nprovider = \"gemini\"\nendpoints = [{{ url = \"{url}\", api_key_env = \"GEMINI_API_KEY\" }}]\n{extra}\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\npath = \"/v1/chat/completions\"\npool = \"gemini\"\n"
    )
}

async fn gemini_sim(spec: EndpointSpec) -> flowgate_sim::SimServer {
    sim(EndpointSpec {
        gemini_key: Some(KEY.1.into()),
        ..spec
    })
    .await
}

fn body(extra: &str) -> Bytes {
    Bytes::from(format!(
        "{{\"model\":\"gemini-2.5-flash\",\"max_tokens\":6,\"messages\":[{{\"role\":\"system\",\"content\":\"Be brief.\"}},{{\"role\":\"user\",\"content\":\"hi\"}}]{extra}}}"
    ))
}

#[tokio::test]
async fn whole_and_streamed_answers_with_tools_come_back_as_openais() {
    let up = gemini_sim(EndpointSpec {
        token_delay: Duration::from_millis(1),
        ..EndpointSpec::default()
    })
    .await;
    let gw = gateway_env(&config(&up.url(), ""), &[KEY]).await;
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", body("")),
    )
    .await;
    r.expect(StatusCode::OK);
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gemini-2.5-flash");
    assert_eq!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .split(' ')
            .count(),
        6
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["completion_tokens"], 6);

    let (events, done) = openai_stream(
        gw.data_addr,
        "/v1/chat/completions",
        body(",\"stream\":true,\"stream_options\":{\"include_usage\":true}"),
    )
    .await;
    assert!(done, "{events:?}");
    let content: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content.split(' ').count(), 6, "{content}");
    assert_eq!(events.last().unwrap()["usage"]["completion_tokens"], 6);

    let tools = ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"lookup\",\"parameters\":{\"type\":\"object\"}}}],\"tool_choice\":\"required\"";
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", body(tools)),
    )
    .await;
    r.expect(StatusCode::OK);
    let call = &r.json()["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "lookup");
    assert_eq!(r.json()["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(up.stats().unauthorized, 0);
}

#[tokio::test]
async fn googles_errors_become_openais_and_fail_over() {
    // A wrong key: Google's 400 API_KEY_INVALID, a 401 naming the endpoint.
    let up = gemini_sim(EndpointSpec::default()).await;
    let gw = gateway_env(&config(&up.url(), ""), &[("GEMINI_API_KEY", "wrong")]).await;
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", body("")),
    )
    .await;
    r.expect(StatusCode::UNAUTHORIZED);
    assert!(
        r.error_message().contains("API key not valid"),
        "{}",
        r.error_message()
    );
    assert!(
        r.error_message()
            .contains(&format!("endpoint {}", up.addr()))
    );
    // Quota: 429 with a Retry-After.
    let limited = gemini_sim(EndpointSpec {
        rate_limit_rate: 1.0,
        ..EndpointSpec::default()
    })
    .await;
    let gw = gateway_env(
        &config(&limited.url(), "retries = { attempts = 1 }"),
        &[KEY],
    )
    .await;
    let r = send(
        &client(),
        post(gw.data_addr, "/v1/chat/completions", body("")),
    )
    .await;
    r.expect(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.error_code(), "rate_limit_exceeded");
    assert!(r.headers.contains_key("retry-after"));
    // Overloaded: 503, retried on the other endpoint.
    let down = gemini_sim(EndpointSpec {
        error_rate: 1.0,
        ..EndpointSpec::default()
    })
    .await;
    let good = gemini_sim(EndpointSpec::default()).await;
    let two = format!(
        "[pools.gemini]\nprovider = \"gemini\"\nstrategy = \"round_robin\"\nendpoints = [{{ url = \"{}\", api_key_env = \"GEMINI_API_KEY\" }}, {{ url = \"{}\", api_key_env = \"GEMINI_API_KEY\" }}]\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\npath = \"/v1/chat/completions\"\npool = \"gemini\"\n",
        down.url(),
        good.url()
    );
    let gw = gateway_env(&two, &[KEY]).await;
    for _ in 0..3 {
        let r = send(
            &client(),
            post(gw.data_addr, "/v1/chat/completions", body("")),
        )
        .await;
        r.expect(StatusCode::OK);
    }
    assert!(down.stats().server_errors >= 1);
}

#[tokio::test]
async fn embeddings_are_batched_to_gemini_and_come_back_as_floats_or_base64() {
    let up = gemini_sim(EndpointSpec::default()).await;
    let cfg = config(&up.url(), "").replace("path = \"/v1/chat/completions\"", "prefix = \"/v1\"");
    let gw = gateway_env(&cfg, &[KEY]).await;
    let ask = |extra: &str| {
        post(
            gw.data_addr,
            "/v1/embeddings",
            Bytes::from(format!(
                r#"{{"model":"gemini-embedding-001","input":["first text","second"],"dimensions":4{extra}}}"#
            )),
        )
    };
    let r = send(&client(), ask("")).await;
    r.expect(StatusCode::OK);
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "gemini-embedding-001");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 4);
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    // As OpenAI's SDKs ask by default: four little-endian f32s, in base64.
    let r = send(&client(), ask(r#","encoding_format":"base64""#)).await;
    r.expect(StatusCode::OK);
    let b64 = r.json()["data"][0]["embedding"]
        .as_str()
        .unwrap()
        .to_string();
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(bytes.len(), 16);
    // Token ids cannot be embedded by Gemini: a 400 before anything is sent.
    let before = up.stats().requests;
    let r = send(
        &client(),
        post(
            gw.data_addr,
            "/v1/embeddings",
            Bytes::from(r#"{"model":"gemini-embedding-001","input":[[1,2,3]]}"#),
        ),
    )
    .await;
    r.expect(StatusCode::BAD_REQUEST);
    assert_eq!(up.stats().requests, before);
}
