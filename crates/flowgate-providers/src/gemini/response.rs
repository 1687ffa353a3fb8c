//! Gemini's answers in OpenAI's shape: a `GenerateContentResponse` as a `chat.completion`,
//! each streamed one (`streamGenerateContent?alt=sse`) as `chat.completion.chunk` events
//! ([`Stream`]), and Google's error bodies as OpenAI's with the status a client and the
//! balancer act on.

use serde_json::{Value, json};

use crate::anthropic::BadAnswer;
use crate::openai::{DONE, Usage, error_body, sse_data};
use flowgate_cost::sse::Events;

/// `finishReason` as `finish_reason` (`tool_calls` when the answer calls a function).
fn finish_reason(reason: Option<&str>, calls: bool) -> &'static str {
    match reason {
        Some("MAX_TOKENS") => "length",
        Some(
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY",
        ) => "content_filter",
        _ if calls => "tool_calls",
        _ => "stop",
    }
}

/// `usageMetadata` as token counts (thinking tokens are completion tokens, as OpenAI's
/// reasoning tokens are).
fn usage(u: Option<&Value>) -> Usage {
    let n = |k: &str| {
        u.and_then(|u| u.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let cached = n("cachedContentTokenCount");
    Usage {
        input: n("promptTokenCount").saturating_sub(cached),
        output: n("candidatesTokenCount") + n("thoughtsTokenCount"),
        cache_read: cached,
        cache_write: 0,
    }
}

/// The text and the function calls of a candidate's parts (thought summaries left out).
fn parts(candidate: Option<&Value>, first_call: usize) -> (String, Vec<Value>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    for p in candidate
        .and_then(|c| c.pointer("/content/parts"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if p.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            text.push_str(t);
        }
        if let Some(f) = p.get("functionCall") {
            let n = first_call + calls.len();
            let id = f
                .get("id")
                .and_then(Value::as_str)
                .map_or_else(|| format!("call_{n}"), str::to_string);
            calls.push(json!({
                "index": n,
                "id": id,
                "type": "function",
                "function": {
                    "name": f.get("name").and_then(Value::as_str).unwrap_or_default(),
                    "arguments": f.get("args").map_or_else(|| "{}".to_string(), Value::to_string),
                },
            }));
        }
    }
    (text, calls)
}

/// A whole Gemini answer as a `chat.completion` naming `model`, made at `created`.
pub fn completion(body: &[u8], model: &str, created: u64) -> Result<Vec<u8>, BadAnswer> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| BadAnswer(format!("the answer is not JSON: {e}")))?;
    let candidate = v.pointer("/candidates/0");
    if candidate.is_none() && v.get("promptFeedback").is_none() {
        return Err(BadAnswer("the answer has no candidate".into()));
    }
    let (text, calls) = parts(candidate, 0);
    let reason = candidate
        .and_then(|c| c.get("finishReason"))
        .and_then(Value::as_str);
    // A prompt Gemini blocked has no candidate: an empty answer, filtered.
    let finish = if candidate.is_none() {
        "content_filter"
    } else {
        finish_reason(reason, !calls.is_empty())
    };
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { text.into() }});
    if !calls.is_empty() {
        let calls: Vec<Value> = calls
            .into_iter()
            .map(|mut c| {
                c.as_object_mut().map(|o| o.remove("index"));
                c
            })
            .collect();
        message["tool_calls"] = Value::Array(calls);
    }
    let id = v
        .get("responseId")
        .and_then(Value::as_str)
        .unwrap_or("gemini");
    let out = json!({
        "id": format!("chatcmpl-{id}"),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": null}],
        "usage": usage(v.get("usageMetadata")).out(),
    });
    Ok(out.to_string().into_bytes())
}

/// Translates one answer's stream. Gemini ends a stream by closing it after the chunk with
/// the finish reason (there is no `[DONE]`): [`Stream::finish`] writes the usage chunk and
/// `[DONE]` then.
#[derive(Debug)]
pub struct Stream {
    events: Events,
    model: String,
    created: u64,
    include_usage: bool,
    id: Option<String>,
    started: bool,
    calls: usize,
    usage: Usage,
    finish: Option<&'static str>,
    finished: bool,
}

impl Stream {
    pub fn new(model: &str, created: u64, include_usage: bool) -> Self {
        Stream {
            events: Events::new(),
            model: model.into(),
            created,
            include_usage,
            id: None,
            started: false,
            calls: 0,
            usage: Usage::default(),
            finish: None,
            finished: false,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    pub fn usage(&self) -> Usage {
        self.usage
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Vec<u8> {
        sse_data(&json!({
            "id": format!("chatcmpl-{}", self.id.as_deref().unwrap_or("gemini")),
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
        }))
    }

    fn fail(&mut self, out: &mut Vec<u8>, message: &str) {
        out.extend(sse_data(&error_body(
            &format!("gemini: {message}"),
            "server_error",
            None,
            "upstream_error",
        )));
        self.finished = true;
    }

    /// The OpenAI events for the bytes `chunk` completes.
    pub fn push(&mut self, mut chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(data) = self.events.next(&mut chunk) {
            if self.finished {
                break;
            }
            let v: Value = match serde_json::from_slice(&data) {
                Ok(v) => v,
                Err(e) => {
                    self.fail(&mut out, &format!("an event that is not JSON: {e}"));
                    break;
                }
            };
            if let Some(e) = v.get("error") {
                let m = e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("the stream failed");
                self.fail(&mut out, m);
                break;
            }
            if self.id.is_none() {
                self.id = v
                    .get("responseId")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            if !self.started {
                self.started = true;
                out.extend(self.chunk(json!({"role": "assistant", "content": ""}), None));
            }
            if let Some(u) = v.get("usageMetadata") {
                self.usage = usage(Some(u));
            }
            let candidate = v.pointer("/candidates/0");
            let (text, calls) = parts(candidate, self.calls);
            if !text.is_empty() {
                out.extend(self.chunk(json!({"content": text}), None));
            }
            if !calls.is_empty() {
                self.calls += calls.len();
                out.extend(self.chunk(json!({"tool_calls": calls}), None));
            }
            if let Some(r) = candidate
                .and_then(|c| c.get("finishReason"))
                .and_then(Value::as_str)
            {
                self.finish = Some(finish_reason(Some(r), self.calls > 0));
            }
        }
        out
    }

    /// The events for the end of the upstream's bytes: the last chunk, the usage chunk when
    /// asked and `[DONE]`; an error event if no chunk said the answer was finished.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        let Some(finish) = self.finish else {
            self.fail(&mut out, "the stream ended before the answer's last chunk");
            return out;
        };
        out.extend(self.chunk(json!({}), Some(finish)));
        if self.include_usage {
            out.extend(sse_data(&json!({
                "id": format!("chatcmpl-{}", self.id.as_deref().unwrap_or("gemini")),
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": self.usage.out(),
            })));
        }
        out.extend_from_slice(DONE);
        self.finished = true;
        out
    }
}

/// A Gemini error answer (`status`, `body`: `{"error": {"code", "message", "status",
/// "details"}}`) as the status and OpenAI-shaped body the client gets: an invalid key →
/// 401, quota → 429, unavailable → 503 (the balancer retries and fails over), internal →
/// 502, invalid arguments → 400 with Google's message.
pub fn error(status: u16, body: &[u8]) -> (u16, Value) {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let e = v.as_ref().and_then(|v| v.get("error"));
    let kind = e
        .and_then(|e| e.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let message = e
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map_or_else(
            || String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
            str::to_string,
        );
    let bad_key = e
        .and_then(|e| e.get("details"))
        .and_then(Value::as_array)
        .is_some_and(|d| {
            d.iter()
                .any(|d| d.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID"))
        });
    let (status, t, code) = match (kind, status) {
        _ if bad_key => (401, "authentication_error", "upstream_auth_failed"),
        ("UNAUTHENTICATED", _) | (_, 401) => (401, "authentication_error", "upstream_auth_failed"),
        ("PERMISSION_DENIED", _) | (_, 403) => {
            (403, "permission_error", "upstream_permission_denied")
        }
        ("NOT_FOUND", _) | (_, 404) => (404, "invalid_request_error", "model_not_found"),
        ("RESOURCE_EXHAUSTED", _) | (_, 429) => (429, "rate_limit_error", "rate_limit_exceeded"),
        ("UNAVAILABLE", _) | (_, 503) => (503, "server_error", "upstream_overloaded"),
        ("DEADLINE_EXCEEDED", _) | (_, 504) => (504, "timeout_error", "upstream_timeout"),
        ("INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE", _) | (_, 400..=499) => {
            (400, "invalid_request_error", "invalid_request")
        }
        _ => (502, "upstream_error", "upstream_error"),
    };
    (
        status,
        error_body(&format!("gemini: {message}"), t, None, code),
    )
}
