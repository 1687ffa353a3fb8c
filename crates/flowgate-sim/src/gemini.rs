//! Google's Gemini API as the simulator speaks it, after its public reference: `POST
//! /v1beta/models/{model}:generateContent` and `:streamGenerateContent?alt=sse`, the key in
//! `x-goog-api-key` (or `?key=`); a body of `contents` (unknown top-level fields refused, as
//! Google's JSON parser does), a `GenerateContentResponse` with `usageMetadata`, a stream of
//! them as server-sent events (the last with the finish reason and the usage), and errors
//! as Google sends them: `{"error": {"code", "message", "status", "details"}}` (429
//! `RESOURCE_EXHAUSTED`, 503 `UNAVAILABLE`, 400 `API_KEY_INVALID`).
//!
//! A request whose `toolConfig` forces a function (mode `ANY`) is answered with a
//! `functionCall` for it, so that tool paths can be tested.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode, Uri};
use rand::rngs::SmallRng;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::body::SimBody;
use crate::content::{self, Ask};
use crate::reply::{event_stream, json_response, sleep};
use crate::spec::EndpointSpec;
use crate::stats::InFlight;

/// What a Gemini path asks of its model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Generate,
    Stream,
    Embed,
}

/// The model and the operation of a Gemini path.
pub(crate) fn operation(path: &str) -> Option<(String, Op)> {
    let rest = path.strip_prefix("/v1beta/models/")?;
    let (model, op) = rest.rsplit_once(':')?;
    let op = match op {
        "generateContent" => Op::Generate,
        "streamGenerateContent" => Op::Stream,
        "batchEmbedContents" => Op::Embed,
        _ => return None,
    };
    Some((model.to_string(), op))
}

/// A `batchEmbedContents` answer: a vector for each request (`outputDimensionality`
/// values, 8 unless asked), or Google's 400 when there are no requests.
pub(crate) fn embeddings(v: &Value, rng: &mut SmallRng) -> Response<SimBody> {
    use rand::Rng;
    let Some(requests) = v
        .get("requests")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "* BatchEmbedContentsRequest.requests: requests is not specified",
            None,
        );
    };
    let embeddings: Vec<Value> = requests
        .iter()
        .map(|r| {
            let dims = r
                .get("outputDimensionality")
                .and_then(Value::as_u64)
                .unwrap_or(8)
                .min(4096);
            let values: Vec<f64> = (0..dims).map(|_| rng.random_range(-1.0..1.0)).collect();
            json!({"values": values})
        })
        .collect();
    json_response(StatusCode::OK, &json!({"embeddings": embeddings}))
}

/// A Google error answer.
pub(crate) fn error(
    status: StatusCode,
    kind: &str,
    message: &str,
    reason: Option<&str>,
) -> Response<SimBody> {
    let mut e = json!({"error": {"code": status.as_u16(), "message": message, "status": kind}});
    if let Some(r) = reason {
        e["error"]["details"] = json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": r, "domain": "googleapis.com"}]);
    }
    json_response(status, &e)
}

/// What Gemini refuses before generating: no key or another key, a body it cannot parse.
pub(crate) fn refusal(
    spec: &EndpointSpec,
    uri: &Uri,
    headers: &HeaderMap,
    v: &Value,
    op: Op,
) -> Option<Response<SimBody>> {
    let key = headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            uri.query()?
                .split('&')
                .find_map(|p| p.strip_prefix("key=").map(str::to_string))
        });
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        return Some(error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
            None,
        ));
    };
    if spec.gemini_key.as_ref().is_some_and(|want| *want != key) {
        return Some(error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            Some("API_KEY_INVALID"),
        ));
    }
    const GENERATE: &[&str] = &[
        "contents",
        "systemInstruction",
        "generationConfig",
        "tools",
        "toolConfig",
        "safetySettings",
        "cachedContent",
    ];
    let known: &[&str] = if op == Op::Embed {
        &["requests"]
    } else {
        GENERATE
    };
    if let Some(unknown) = v
        .as_object()
        .and_then(|o| o.keys().find(|k| !known.contains(&k.as_str())))
    {
        return Some(error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            &format!(
                "Invalid JSON payload received. Unknown name \"{unknown}\": Cannot find field."
            ),
            None,
        ));
    }
    if op == Op::Embed {
        // Its requests are checked by [`embeddings`].
        return None;
    }
    let contents = v.get("contents").and_then(Value::as_array);
    if contents.is_none_or(Vec::is_empty) {
        return Some(error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "* GenerateContentRequest.contents: contents is not specified",
            None,
        ));
    }
    None
}

/// The function a request forces, if any.
fn forced(v: &Value) -> Option<String> {
    let config = v.pointer("/toolConfig/functionCallingConfig")?;
    if config.get("mode").and_then(Value::as_str) != Some("ANY") {
        return None;
    }
    config
        .pointer("/allowedFunctionNames/0")
        .or_else(|| v.pointer("/tools/0/functionDeclarations/0/name"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The prompt's tokens: its `contents` text, as the simulator counts (four bytes a token).
pub(crate) fn prompt_tokens(v: &Value) -> u32 {
    u32::try_from(v.to_string().len() / 4)
        .unwrap_or(u32::MAX)
        .max(1)
}

fn usage(ask: &Ask, output: u32) -> Value {
    json!({"promptTokenCount": ask.prompt_tokens, "candidatesTokenCount": output, "totalTokenCount": ask.prompt_tokens + output})
}

/// A whole answer.
pub(crate) fn answer(id: u64, ask: &Ask, v: &Value, text: &str, tokens: u32) -> Response<SimBody> {
    let parts = match forced(v) {
        Some(name) => json!([{"functionCall": {"name": name, "args": {"query": text}}}]),
        None => json!([{"text": text}]),
    };
    let body = json!({
        "candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": usage(ask, tokens),
        "modelVersion": ask.model,
        "responseId": format!("sim{id}"),
    });
    json_response(StatusCode::OK, &body)
}

/// The streamed answer: a first piece after `ttft`, then one every `token_delay`.
#[allow(clippy::too_many_arguments)] // the stream's whole recipe
pub(crate) fn stream(
    id: u64,
    ask: Ask,
    v: &Value,
    ttft: Duration,
    tokens: u32,
    token_delay: Duration,
    mut rng: SmallRng,
    guard: InFlight,
) -> Response<SimBody> {
    let tool = forced(v);
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        sleep(ttft).await;
        let chunk = |parts: Value, last: bool| {
            let mut c = json!({
                "candidates": [{"content": {"parts": parts, "role": "model"}, "index": 0}],
                "modelVersion": ask.model,
                "responseId": format!("sim{id}"),
            });
            if last {
                c["candidates"][0]["finishReason"] = "STOP".into();
                c["usageMetadata"] = usage(&ask, tokens);
            }
            Bytes::from(format!("data: {c}\r\n\r\n"))
        };
        let words = content::words(&mut rng, tokens);
        if let Some(name) = &tool {
            // Gemini sends a function call whole, in one chunk.
            let call =
                json!([{"functionCall": {"name": name, "args": {"query": words.join(" ")}}}]);
            if tx.send(chunk(call, true)).await.is_ok() {
                guard.finish();
            }
            return;
        }
        let n = words.len();
        for (i, w) in words.into_iter().enumerate() {
            if i > 0 {
                sleep(token_delay).await;
            }
            let piece = if i == 0 {
                w.to_string()
            } else {
                format!(" {w}")
            };
            if tx
                .send(chunk(json!([{"text": piece}]), i + 1 == n))
                .await
                .is_err()
            {
                return;
            }
        }
        guard.finish();
    });
    event_stream(rx)
}
