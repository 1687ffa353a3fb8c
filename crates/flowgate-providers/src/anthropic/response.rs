//! A Messages API answer as an OpenAI `chat.completion`, and its error bodies in OpenAI's
//! shape with the status a client (and flowgate's balancer) should act on.

use serde_json::{Value, json};

use super::request::JSON_TOOL;
use crate::openai::{Usage, error_body};

/// The answer could not be read as a Messages API answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the upstream's answer is not an Anthropic message: {0}")]
pub struct BadAnswer(pub String);

/// OpenAI's `finish_reason` for an Anthropic `stop_reason`.
pub fn finish_reason(stop_reason: Option<&str>, json_mode: bool) -> &'static str {
    match stop_reason {
        Some("max_tokens") => "length",
        Some("tool_use") if json_mode => "stop",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// The usage of a message (or of a stream's `message_start` / `message_delta`).
pub fn usage(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input: n("input_tokens"),
        output: n("output_tokens"),
        cache_read: n("cache_read_input_tokens"),
        cache_write: n("cache_creation_input_tokens"),
    }
}

/// `msg` (a Messages API answer) as a `chat.completion` for `model` (the name the client
/// asked for), made at `created` (Unix seconds).
pub fn completion(
    msg: &Value,
    model: &str,
    created: u64,
    json_mode: bool,
) -> Result<Value, BadAnswer> {
    let blocks = msg
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| BadAnswer("no content array".into()))?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use")
                if json_mode && b.get("name").and_then(Value::as_str) == Some(JSON_TOOL) =>
            {
                text.push_str(&b.get("input").cloned().unwrap_or(Value::Null).to_string());
            }
            Some("tool_use") => calls.push(json!({
                "id": b.get("id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {
                    "name": b.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": b.get("input").cloned().unwrap_or_else(|| json!({})).to_string(),
                },
            })),
            // Thinking, redacted thinking and server-tool blocks have no Chat Completions
            // form.
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let stop = msg.get("stop_reason").and_then(Value::as_str);
    Ok(json!({
        "id": msg.get("id").and_then(Value::as_str).map_or_else(|| "chatcmpl-anthropic".to_string(), |id| format!("chatcmpl-{id}")),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(stop, json_mode), "logprobs": null}],
        "usage": usage(msg.get("usage").unwrap_or(&Value::Null)).to_json(),
    }))
}

/// An Anthropic error answer (`status`, `body`) as the status and OpenAI-shaped body the
/// client gets. Overloaded (529) and server errors become 503 and 502 (the balancer retries
/// and fails over on them), rate limits stay 429 (the caller keeps `Retry-After`), the
/// client's own errors keep their status and the provider's message.
pub fn error(status: u16, body: &[u8]) -> (u16, Value) {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    let kind = err
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let message = err
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map_or_else(
            || String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
            str::to_string,
        );
    let (status, openai_type, code) = match (status, kind) {
        (529, _) | (_, "overloaded_error") => (503, "server_error", "upstream_overloaded"),
        (429, _) | (_, "rate_limit_error") => (429, "rate_limit_error", "rate_limit_exceeded"),
        (401, _) | (_, "authentication_error") => {
            (401, "authentication_error", "upstream_auth_failed")
        }
        (403, _) | (_, "permission_error") => {
            (403, "permission_error", "upstream_permission_denied")
        }
        (404, _) | (_, "not_found_error") => (404, "invalid_request_error", "model_not_found"),
        (413, _) | (_, "request_too_large") => (413, "invalid_request_error", "request_too_large"),
        (400..=499, _) | (_, "invalid_request_error") => {
            (400, "invalid_request_error", "invalid_request")
        }
        _ => (502, "upstream_error", "upstream_error"),
    };
    let message = format!("anthropic: {message}");
    (status, error_body(&message, openai_type, None, code))
}
