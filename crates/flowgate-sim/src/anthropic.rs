//! Anthropic's Messages API as the simulator speaks it (`POST /v1/messages`), after the
//! public API reference: the required `anthropic-version` header and `max_tokens`, a
//! `message` answer with `usage`, the streamed event sequence (`message_start`,
//! `content_block_start`, `ping`, `content_block_delta`..., `content_block_stop`,
//! `message_delta`, `message_stop`), and error bodies (`{"type": "error", "error": {...}}`)
//! with the statuses the API uses (429 `rate_limit_error`, 529 `overloaded_error`).
//!
//! A request that forces a tool (`tool_choice` of type `tool` or `any`) is answered with a
//! `tool_use` block for it, so that tool paths can be tested.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use rand::rngs::SmallRng;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::body::SimBody;
use crate::content::{self, Ask};
use crate::reply::{event_stream, json_response, sleep};
use crate::stats::InFlight;

/// An error body and status in Anthropic's shape.
pub(crate) fn error(status: StatusCode, kind: &str, message: &str) -> Response<SimBody> {
    let v = json!({"type": "error", "error": {"type": kind, "message": message}});
    json_response(status, &v)
}

/// What the API refuses before doing anything (a missing `anthropic-version`, a body
/// without `max_tokens` or `messages`): its 400 answer.
pub(crate) fn refusal(headers: &HeaderMap, v: &Value) -> Option<Response<SimBody>> {
    let why = if !headers.contains_key("anthropic-version") {
        "anthropic-version: header is required"
    } else if v.get("max_tokens").and_then(Value::as_u64).is_none() {
        "max_tokens: Field required"
    } else if !v.get("messages").is_some_and(Value::is_array) {
        "messages: Field required"
    } else {
        return None;
    };
    Some(error(StatusCode::BAD_REQUEST, "invalid_request_error", why))
}

/// The tool the request forces, if any.
fn forced_tool(v: &Value) -> Option<String> {
    let choice = v.get("tool_choice")?;
    match choice.get("type").and_then(Value::as_str)? {
        "tool" => choice
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string),
        "any" => v
            .get("tools")?
            .get(0)?
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
}

fn usage(ask: &Ask, output: u32) -> Value {
    json!({
        "input_tokens": ask.prompt_tokens,
        "output_tokens": output,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    })
}

/// A whole `message` answer.
pub(crate) fn message(id: u64, ask: &Ask, v: &Value, text: &str, tokens: u32) -> Response<SimBody> {
    let (content, stop) = match forced_tool(v) {
        Some(name) => (
            json!([{"type": "tool_use", "id": format!("toolu_sim{id}"), "name": name, "input": {"query": text}}]),
            "tool_use",
        ),
        None => (json!([{"type": "text", "text": text}]), "end_turn"),
    };
    let body = json!({
        "id": format!("msg_sim{id}"),
        "type": "message",
        "role": "assistant",
        "model": ask.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": usage(ask, tokens),
    });
    json_response(StatusCode::OK, &body)
}

/// One event as the Messages API frames it (server-sent events).
pub(crate) fn sse_frame(kind: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

/// Frames one event (named, and its JSON) for the wire.
pub(crate) type Framer = fn(&str, &Value) -> Bytes;

/// The streamed answer: the first event after `ttft`, a token every `token_delay`, each
/// framed by `event` (as server-sent events, or Bedrock's event-stream frames).
#[allow(clippy::too_many_arguments)] // the stream's whole recipe
pub(crate) fn stream(
    event: Framer,
    id: u64,
    ask: Ask,
    v: &Value,
    ttft: Duration,
    tokens: u32,
    token_delay: Duration,
    mut rng: SmallRng,
    guard: InFlight,
) -> Response<SimBody> {
    let tool = forced_tool(v);
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        sleep(ttft).await;
        let start = json!({"type": "message_start", "message": {
            "id": format!("msg_sim{id}"), "type": "message", "role": "assistant", "model": ask.model,
            "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage(&ask, 1),
        }});
        let block = match &tool {
            Some(name) => {
                json!({"type": "tool_use", "id": format!("toolu_sim{id}"), "name": name, "input": {}})
            }
            None => json!({"type": "text", "text": ""}),
        };
        let mut events = vec![
            event("message_start", &start),
            event(
                "content_block_start",
                &json!({"type": "content_block_start", "index": 0, "content_block": block}),
            ),
            event("ping", &json!({"type": "ping"})),
        ];
        if tool.is_some() {
            events.push(event("content_block_delta", &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"query\": \""}})));
        }
        for e in events.drain(..) {
            if tx.send(e).await.is_err() {
                return; // the guard counts the cancellation
            }
        }
        for (i, w) in content::words(&mut rng, tokens).into_iter().enumerate() {
            if i > 0 {
                sleep(token_delay).await;
            }
            let piece = if i == 0 {
                w.to_string()
            } else {
                format!(" {w}")
            };
            let delta = match tool {
                Some(_) => json!({"type": "input_json_delta", "partial_json": piece}),
                None => json!({"type": "text_delta", "text": piece}),
            };
            let e = event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": 0, "delta": delta}),
            );
            if tx.send(e).await.is_err() {
                return;
            }
        }
        let mut tail = Vec::new();
        if tool.is_some() {
            tail.push(event("content_block_delta", &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "\"}"}})));
        }
        let stop = if tool.is_some() {
            "tool_use"
        } else {
            "end_turn"
        };
        tail.extend([
            event("content_block_stop", &json!({"type": "content_block_stop", "index": 0})),
            event("message_delta", &json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": tokens}})),
            event("message_stop", &json!({"type": "message_stop"})),
        ]);
        for e in tail {
            if tx.send(e).await.is_err() {
                return;
            }
        }
        guard.finish();
    });
    event_stream(rx)
}
