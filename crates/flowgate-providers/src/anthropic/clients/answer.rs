//! OpenAI answers (whatever provider made them, or the cache) as the Messages API answers
//! a Claude client expects: a whole `message`; the streamed event sequence
//! (`message_start`, `content_block_start`/`_delta`/`_stop` per text or tool-use block,
//! `message_delta` with the stop reason and usage, `message_stop`); and errors in
//! Anthropic's shape with its error types.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::anthropic::response::BadAnswer;
use flowgate_cost::sse::Events;

/// `finish_reason` as a `stop_reason`.
fn stop_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// The message id for an OpenAI answer's id (`chatcmpl-msg_x` came from Anthropic).
fn message_id(id: Option<&str>) -> String {
    match id {
        Some(id) => match id.strip_prefix("chatcmpl-") {
            Some(rest) if rest.starts_with("msg_") => rest.to_string(),
            Some(rest) => format!("msg_{rest}"),
            None => format!("msg_{id}"),
        },
        None => "msg_flowgate".into(),
    }
}

/// OpenAI `usage` as Anthropic's: input tokens without those read from or written to the
/// prompt cache, which are counted apart.
fn usage(u: Option<&Value>) -> Value {
    let n = |p: &str| {
        u.and_then(|u| u.pointer(p))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let read = n("/prompt_tokens_details/cached_tokens");
    let write = n("/cache_creation_input_tokens");
    json!({
        "input_tokens": n("/prompt_tokens").saturating_sub(read + write),
        "output_tokens": n("/completion_tokens"),
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": write,
    })
}

/// A whole OpenAI chat completion as a `message` for `model`.
pub fn message(body: &[u8], model: &str) -> Result<Vec<u8>, BadAnswer> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| BadAnswer(format!("the answer is not JSON: {e}")))?;
    let choice = v
        .pointer("/choices/0")
        .ok_or_else(|| BadAnswer("the answer has no choice".into()))?;
    let msg = choice.get("message");
    let mut content = Vec::new();
    if let Some(t) = msg
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        content.push(json!({"type": "text", "text": t}));
    }
    for call in msg
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let f = call.get("function");
        let args = f
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .unwrap_or("{}");
        content.push(json!({
            "type": "tool_use",
            "id": call.get("id").and_then(Value::as_str).unwrap_or_default(),
            "name": f.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or_default(),
            "input": serde_json::from_str::<Value>(args).unwrap_or_else(|_| json!({})),
        }));
    }
    let out = json!({
        "id": message_id(v.get("id").and_then(Value::as_str)),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason").and_then(Value::as_str)),
        "stop_sequence": null,
        "usage": usage(v.get("usage")),
    });
    Ok(out.to_string().into_bytes())
}

/// One Anthropic event.
fn event(out: &mut Vec<u8>, kind: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// The block being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(usize),
    Tool(usize),
}

/// Translates one streamed answer's OpenAI chunks into Anthropic events.
#[derive(Debug)]
pub struct Stream {
    events: Events,
    model: String,
    started: bool,
    open: Option<Open>,
    next_block: usize,
    /// OpenAI tool-call index → Anthropic block index.
    tools: HashMap<u64, usize>,
    stop: Option<String>,
    usage: Option<Value>,
    finished: bool,
}

impl Stream {
    /// For an answer to `model` (the client's name for it).
    pub fn new(model: &str) -> Self {
        Stream {
            events: Events::new(),
            model: model.into(),
            started: false,
            open: None,
            next_block: 0,
            tools: HashMap::new(),
            stop: None,
            usage: None,
            finished: false,
        }
    }

    /// Whether the stream ended (its last event, or an error).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The Anthropic events for the bytes `chunk` completes.
    pub fn push(&mut self, mut chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(data) = self.events.next(&mut chunk) {
            if self.finished {
                break;
            }
            if data == b"[DONE]" {
                self.end(&mut out);
                continue;
            }
            match serde_json::from_slice::<Value>(&data) {
                Ok(v) if v.get("error").is_some() => {
                    let message = v
                        .pointer("/error/message")
                        .and_then(Value::as_str)
                        .unwrap_or("the upstream's stream failed");
                    self.fail(&mut out, "api_error", message);
                }
                Ok(v) => self.chunk(&v, &mut out),
                Err(e) => self.fail(
                    &mut out,
                    "api_error",
                    &format!("an event that is not JSON: {e}"),
                ),
            }
        }
        out
    }

    /// The events for the end of the answer's bytes: an error event if it ended before
    /// its last.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.finished {
            self.fail(
                &mut out,
                "api_error",
                "the stream ended before its last event",
            );
        }
        out
    }

    fn fail(&mut self, out: &mut Vec<u8>, kind: &str, message: &str) {
        event(
            out,
            "error",
            &json!({"type": "error", "error": {"type": kind, "message": message}}),
        );
        self.finished = true;
    }

    fn start(&mut self, id: Option<&str>, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let msg = json!({"type": "message_start", "message": {
            "id": message_id(id), "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }});
        event(out, "message_start", &msg);
        event(out, "ping", &json!({"type": "ping"}));
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some(Open::Text(i) | Open::Tool(i)) = self.open.take() {
            event(
                out,
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": i}),
            );
        }
    }

    fn open_block(&mut self, want: Open, block: Value, out: &mut Vec<u8>) -> usize {
        self.close(out);
        let i = self.next_block;
        self.next_block += 1;
        self.open = Some(match want {
            Open::Text(_) => Open::Text(i),
            Open::Tool(_) => Open::Tool(i),
        });
        event(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": i, "content_block": block}),
        );
        i
    }

    fn chunk(&mut self, v: &Value, out: &mut Vec<u8>) {
        self.start(v.get("id").and_then(Value::as_str), out);
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(u.clone());
        }
        let Some(choice) = v.pointer("/choices/0") else {
            return;
        };
        let delta = choice.get("delta");
        if let Some(t) = delta
            .and_then(|d| d.get("content"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            let i = match self.open {
                Some(Open::Text(i)) => i,
                _ => self.open_block(Open::Text(0), json!({"type": "text", "text": ""}), out),
            };
            event(
                out,
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": t}}),
            );
        }
        for call in delta
            .and_then(|d| d.get("tool_calls"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let n = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            let i = match self.tools.get(&n) {
                Some(&i) => i,
                None => {
                    let block = json!({
                        "type": "tool_use",
                        "id": call.get("id").and_then(Value::as_str).unwrap_or_default(),
                        "name": call.pointer("/function/name").and_then(Value::as_str).unwrap_or_default(),
                        "input": {},
                    });
                    let i = self.open_block(Open::Tool(0), block, out);
                    self.tools.insert(n, i);
                    i
                }
            };
            if let Some(args) = call
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty())
            {
                event(
                    out,
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": args}}),
                );
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.stop = Some(f.to_string());
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        self.start(None, out);
        self.close(out);
        let u = usage(self.usage.as_ref());
        event(
            out,
            "message_delta",
            &json!({"type": "message_delta", "delta": {"stop_reason": stop_reason(self.stop.as_deref()), "stop_sequence": null}, "usage": u}),
        );
        event(out, "message_stop", &json!({"type": "message_stop"}));
        self.finished = true;
    }
}

/// An OpenAI error answer (`status`, `body`) in Anthropic's shape; the status is kept
/// (`overloaded_error` for a 503, as Anthropic words it).
pub fn error(status: u16, body: &[u8]) -> Vec<u8> {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let message = v
        .as_ref()
        .and_then(|v| v.pointer("/error/message"))
        .and_then(Value::as_str)
        .map_or_else(
            || String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
            str::to_string,
        );
    let kind = match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    };
    json!({"type": "error", "error": {"type": kind, "message": message}})
        .to_string()
        .into_bytes()
}
