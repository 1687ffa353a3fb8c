//! A Messages API answer as an OpenAI `chat.completion`, and its error bodies in OpenAI's
//! shape with the status a client (and flowgate's balancer) should act on.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value;

use super::request::JSON_TOOL;
use super::wire::{FunctionOut, Message, ToolCallOut};
use crate::openai::{UsageOut, error_body};

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

/// `body` (a Messages API answer) as a `chat.completion` for `model` (the name the client
/// asked for), made at `created` (Unix seconds).
pub fn completion(
    body: &[u8],
    model: &str,
    created: u64,
    json_mode: bool,
) -> Result<Vec<u8>, BadAnswer> {
    let msg: Message<'_> = serde_json::from_slice(body).map_err(|e| BadAnswer(e.to_string()))?;
    let mut text = String::new();
    let mut calls = Vec::new();
    let mut json_inputs = Vec::new();
    for b in &msg.content {
        match &*b.kind {
            "text" => text.push_str(b.text.as_deref().unwrap_or("")),
            "tool_use" if json_mode && b.name.as_deref() == Some(JSON_TOOL) => {
                json_inputs.push(
                    b.input
                        .as_ref()
                        .map_or_else(|| "null".to_string(), Value::to_string),
                );
            }
            "tool_use" => calls.push(ToolCallOut {
                index: None,
                id: b.id.as_deref(),
                kind: Some("function"),
                function: FunctionOut {
                    name: b.name.as_deref(),
                    arguments: Cow::Owned(
                        b.input
                            .as_ref()
                            .map_or_else(|| "{}".to_string(), Value::to_string),
                    ),
                },
            }),
            // Thinking, redacted thinking and server-tool blocks have no Chat Completions
            // form.
            _ => {}
        }
    }
    for j in &json_inputs {
        text.push_str(j);
    }
    let content = if text.is_empty() && !calls.is_empty() {
        None
    } else {
        Some(text.as_str())
    };
    let out = CompletionOut {
        id: msg.id.as_deref().map_or_else(
            || "chatcmpl-anthropic".to_string(),
            |id| format!("chatcmpl-{id}"),
        ),
        object: "chat.completion",
        created,
        model,
        choices: [ChoiceOut {
            index: 0,
            message: MessageOut {
                role: "assistant",
                content,
                tool_calls: calls,
            },
            finish_reason: finish_reason(msg.stop_reason.as_deref(), json_mode),
            logprobs: None,
        }],
        usage: msg.usage.usage().out(),
    };
    serde_json::to_vec(&out).map_err(|e| BadAnswer(e.to_string()))
}

#[derive(Serialize)]
struct CompletionOut<'a> {
    id: String,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [ChoiceOut<'a>; 1],
    usage: UsageOut,
}

#[derive(Serialize)]
struct ChoiceOut<'a> {
    index: u32,
    message: MessageOut<'a>,
    finish_reason: &'static str,
    logprobs: Option<()>,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallOut<'a>>,
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
