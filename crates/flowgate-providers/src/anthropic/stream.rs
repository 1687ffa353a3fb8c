//! A Messages API event stream as OpenAI `chat.completion.chunk` events, event by event as
//! they arrive: text deltas become `delta.content`, tool-use blocks become
//! `delta.tool_calls` (name first, then argument fragments), the stop reason becomes the
//! last chunk's `finish_reason`, and the stream ends with a usage chunk (when the client
//! asked for `stream_options.include_usage`) and `data: [DONE]`. An `error` event becomes an
//! OpenAI error object and ends the stream without `[DONE]`, so clients see it failed.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::request::JSON_TOOL;
use super::response::{finish_reason, usage};
use crate::openai::{DONE, Usage, error_body, sse_data};
use flowgate_cost::sse::Events;

/// The stream made no sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("the upstream sent an event that is not JSON: {0}")]
    NotJson(String),
    #[error("the upstream sent an event without a type")]
    Untyped,
}

/// Translates one answer's stream.
#[derive(Debug)]
pub struct Translator {
    events: Events,
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    json_mode: bool,
    usage: Usage,
    stop_reason: Option<String>,
    /// Anthropic block index → OpenAI tool-call index.
    tools: HashMap<u64, usize>,
    /// Blocks that carry the JSON-mode answer (their input is the content).
    json_blocks: Vec<u64>,
    finished: bool,
}

impl Translator {
    /// For an answer to `model` (the client's name for it) started at `created`.
    pub fn new(model: &str, created: u64, include_usage: bool, json_mode: bool) -> Self {
        Translator {
            events: Events::new(),
            id: "chatcmpl-anthropic".into(),
            model: model.into(),
            created,
            include_usage,
            json_mode,
            usage: Usage::default(),
            stop_reason: None,
            tools: HashMap::new(),
            json_blocks: Vec::new(),
            finished: false,
        }
    }

    /// The usage reported so far.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Whether the stream ended (`message_stop`, or an error event).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The OpenAI events for the bytes `chunk` completes.
    pub fn push(&mut self, mut chunk: &[u8]) -> Result<Vec<u8>, StreamError> {
        let mut out = Vec::new();
        while let Some(data) = self.events.next(&mut chunk) {
            if self.finished {
                break;
            }
            let data: Value = serde_json::from_slice(&data).map_err(|e| {
                StreamError::NotJson(format!(
                    "{}: {e}",
                    String::from_utf8_lossy(&data[..data.len().min(80)])
                ))
            })?;
            // Each event's data names its type (the `event:` line repeats it).
            let kind = data
                .get("type")
                .and_then(Value::as_str)
                .ok_or(StreamError::Untyped)?
                .to_string();
            self.event(&kind, &data, &mut out);
        }
        Ok(out)
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
        })
    }

    fn event(&mut self, kind: &str, data: &Value, out: &mut Vec<u8>) {
        match kind {
            "message_start" => {
                let msg = data.get("message").unwrap_or(&Value::Null);
                if let Some(id) = msg.get("id").and_then(Value::as_str) {
                    self.id = format!("chatcmpl-{id}");
                }
                self.add_usage(msg.get("usage"));
                out.extend(sse_data(
                    &self.chunk(json!({"role": "assistant", "content": ""}), None),
                ));
            }
            "content_block_start" => {
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = data.get("content_block").unwrap_or(&Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("tool_use")
                        if self.json_mode
                            && block.get("name").and_then(Value::as_str) == Some(JSON_TOOL) =>
                    {
                        self.json_blocks.push(index);
                    }
                    Some("tool_use") => {
                        let n = self.tools.len();
                        self.tools.insert(index, n);
                        let call = json!({
                            "index": n,
                            "id": block.get("id").cloned().unwrap_or(Value::Null),
                            "type": "function",
                            "function": {"name": block.get("name").cloned().unwrap_or(Value::Null), "arguments": ""},
                        });
                        out.extend(sse_data(&self.chunk(json!({"tool_calls": [call]}), None)));
                    }
                    Some("text") => {
                        if let Some(t) = block
                            .get("text")
                            .and_then(Value::as_str)
                            .filter(|t| !t.is_empty())
                        {
                            out.extend(sse_data(&self.chunk(json!({"content": t}), None)));
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                let delta = data.get("delta").unwrap_or(&Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let t = delta.get("text").and_then(Value::as_str).unwrap_or("");
                        out.extend(sse_data(&self.chunk(json!({"content": t}), None)));
                    }
                    Some("input_json_delta") => {
                        let part = delta
                            .get("partial_json")
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        if self.json_blocks.contains(&index) {
                            out.extend(sse_data(&self.chunk(json!({"content": part}), None)));
                        } else if let Some(&n) = self.tools.get(&index) {
                            let call = json!({"index": n, "function": {"arguments": part}});
                            out.extend(sse_data(&self.chunk(json!({"tool_calls": [call]}), None)));
                        }
                    }
                    // Thinking and signature deltas have no Chat Completions form.
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(r) = data
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.stop_reason = Some(r.to_string());
                }
                if let Some(u) = data.get("usage") {
                    // The delta's counts are cumulative: the latest wins.
                    let later = usage(u);
                    self.usage.output = later.output.max(self.usage.output);
                    if later.input > 0 {
                        self.usage.input = later.input;
                    }
                }
            }
            "message_stop" => {
                let finish = finish_reason(self.stop_reason.as_deref(), self.json_mode);
                out.extend(sse_data(&self.chunk(json!({}), Some(finish))));
                if self.include_usage {
                    let mut last = self.chunk(json!({}), None);
                    last["choices"] = json!([]);
                    last["usage"] = self.usage.to_json();
                    out.extend(sse_data(&last));
                }
                out.extend_from_slice(DONE);
                self.finished = true;
            }
            "error" => {
                let e = data.get("error").unwrap_or(&Value::Null);
                let message = e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("the upstream's stream failed");
                let code = match e.get("type").and_then(Value::as_str) {
                    Some("overloaded_error") => "upstream_overloaded",
                    Some("rate_limit_error") => "rate_limit_exceeded",
                    _ => "upstream_error",
                };
                out.extend(sse_data(&error_body(
                    &format!("anthropic: {message}"),
                    "server_error",
                    None,
                    code,
                )));
                self.finished = true;
            }
            // `ping`, `content_block_stop` and events added later carry nothing to pass on.
            _ => {}
        }
    }

    fn add_usage(&mut self, u: Option<&Value>) {
        if let Some(u) = u {
            let start = usage(u);
            self.usage.input = start.input;
            self.usage.cache_read = start.cache_read;
            self.usage.cache_write = start.cache_write;
            self.usage.output = self.usage.output.max(start.output);
        }
    }
}
