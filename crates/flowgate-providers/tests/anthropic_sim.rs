//! The Anthropic translation against the simulator's Messages API, over loopback HTTP:
//! an OpenAI request translated, sent, and its answer (whole, streamed, a tool call, an
//! error) translated back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use flowgate_providers::anthropic::{self, Target, Translator};
use flowgate_sim::{EndpointSpec, SimServer};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

const TARGET: Target<'static> = Target {
    model: "claude-sonnet-4-5",
    default_max_tokens: 64,
};

async fn sim(spec: EndpointSpec) -> SimServer {
    SimServer::start("127.0.0.1:0".parse().unwrap(), spec)
        .await
        .unwrap()
}

/// Sends `body` to the simulator's `/v1/messages`: status, `Retry-After`, body.
async fn post(sim: &SimServer, body: &Value, version: bool) -> (StatusCode, Option<String>, Bytes) {
    let mut req = Request::post(format!("{}/v1/messages", sim.url()))
        .header("content-type", "application/json")
        .header("x-api-key", "sk-ant-test");
    if version {
        req = req.header("anthropic-version", anthropic::VERSION);
    }
    let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let resp = client.request(req).await.unwrap();
    let status = resp.status();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (
        status,
        retry,
        resp.into_body().collect().await.unwrap().to_bytes(),
    )
}

fn chat(extra: Value) -> Value {
    let mut req = json!({"model": "claude-sonnet", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Summarize the report"},
    ], "max_tokens": 8});
    if let (Some(r), Some(e)) = (req.as_object_mut(), extra.as_object()) {
        r.extend(e.clone());
    }
    req
}

#[tokio::test]
async fn a_translated_request_gets_an_answer_that_translates_back() {
    let sim = sim(EndpointSpec::default()).await;
    let t = anthropic::translate(&chat(json!({})), &TARGET).unwrap();
    let (status, _, body) = post(&sim, &t.body, true).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let c: Value = serde_json::from_slice(
        &anthropic::completion(&body, "claude-sonnet", 1, t.json_mode).unwrap(),
    )
    .unwrap();
    assert!(
        !c["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert_eq!(c["choices"][0]["finish_reason"], "stop");
    assert!(c["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(c["usage"]["completion_tokens"], 8);
}

#[tokio::test]
async fn a_streamed_answer_becomes_chunks_with_usage_and_done() {
    let sim = sim(EndpointSpec::default()).await;
    let t = anthropic::translate(
        &chat(json!({"stream": true, "stream_options": {"include_usage": true}})),
        &TARGET,
    )
    .unwrap();
    let (status, _, body) = post(&sim, &t.body, true).await;
    assert_eq!(status, StatusCode::OK);
    let mut tr = Translator::new("claude-sonnet", 1, t.include_usage, t.json_mode);
    // Fed in small pieces, as a network would.
    let mut out = Vec::new();
    for piece in body.chunks(13) {
        out.extend(tr.push(piece).unwrap());
    }
    assert!(tr.is_finished());
    let text = String::from_utf8(out).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let events: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let content: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content.split(' ').count(), 8, "{content}");
    let last = events.last().unwrap();
    assert_eq!(last["usage"]["completion_tokens"], 8);
    assert_eq!(tr.usage().output, 8);
}

#[tokio::test]
async fn a_forced_tool_comes_back_as_a_tool_call_whole_and_streamed() {
    let sim = sim(EndpointSpec::default()).await;
    let tools = json!({
        "tools": [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}],
        "tool_choice": "required",
    });
    let t = anthropic::translate(&chat(tools.clone()), &TARGET).unwrap();
    let (_, _, body) = post(&sim, &t.body, true).await;
    let c: Value =
        serde_json::from_slice(&anthropic::completion(&body, "c", 1, false).unwrap()).unwrap();
    assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
    let call = &c["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "search");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(args["query"].is_string());

    let mut streamed = tools;
    streamed["stream"] = true.into();
    let t = anthropic::translate(&chat(streamed), &TARGET).unwrap();
    let (_, _, body) = post(&sim, &t.body, true).await;
    let mut tr = Translator::new("c", 1, false, false);
    let text = String::from_utf8(tr.push(&body).unwrap()).unwrap();
    let args: String = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|e| {
            e["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    let args: Value = serde_json::from_str(&args).unwrap();
    assert!(args["query"].is_string(), "{args}");
    assert!(text.contains("\"finish_reason\":\"tool_calls\""), "{text}");
}

#[tokio::test]
async fn provider_errors_come_back_in_openais_shape_with_the_right_status() {
    let overloaded = sim(EndpointSpec {
        error_rate: 1.0,
        ..EndpointSpec::default()
    })
    .await;
    let t = anthropic::translate(&chat(json!({})), &TARGET).unwrap();
    let (status, _, body) = post(&overloaded, &t.body, true).await;
    assert_eq!(status.as_u16(), 529);
    let (status, v) = anthropic::error(status.as_u16(), &body);
    assert_eq!(
        (status, v["error"]["code"].as_str().unwrap()),
        (503, "upstream_overloaded")
    );

    let limited = sim(EndpointSpec {
        rate_limit_rate: 1.0,
        retry_after_secs: 7,
        ..EndpointSpec::default()
    })
    .await;
    let (status, retry, body) = post(&limited, &t.body, true).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry.as_deref(), Some("7"));
    assert_eq!(anthropic::error(429, &body).0, 429);

    let ok = sim(EndpointSpec::default()).await;
    let (status, _, body) = post(&ok, &t.body, false).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, v) = anthropic::error(status.as_u16(), &body);
    assert_eq!(status, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("anthropic-version"),
        "{v}"
    );
}
