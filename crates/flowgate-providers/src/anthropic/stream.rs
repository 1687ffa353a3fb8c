//! A Messages API event stream as OpenAI `chat.completion.chunk` events, event by event as
//! they arrive: text deltas become `delta.content`, tool-use blocks become
//! `delta.tool_calls` (name first, then argument fragments), the stop reason becomes the
//! last chunk's `finish_reason`, and the stream ends with a usage chunk (when the client
//! asked for `stream_options.include_usage`) and `data: [DONE]`. An `error` event becomes an
//! OpenAI error object and ends the stream without `[DONE]`, so clients see it failed.
//!
//! Events are read into structs that borrow from their bytes, and each chunk is written as
//! a prefix serialized once per answer (id, created, model), the delta, and a fixed tail.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::json;

use super::request::JSON_TOOL;
use super::response::finish_reason;
use super::wire::{DeltaOut, Event, FunctionOut, ToolCallOut};
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
    model: String,
    created: u64,
    /// `data: {"id":...,"object":"chat.completion.chunk","created":...,"model":...,
    /// "choices":[{"index":0,"delta":`, made again when `message_start` names the id.
    prefix: Vec<u8>,
    include_usage: bool,
    json_mode: bool,
    usage: Usage,
    stop_reason: Option<String>,
    /// Anthropic block index → OpenAI tool-call index.
    tools: HashMap<u64, usize>,
    /// Blocks that carry the JSON-mode answer (their input is the content).
    json_blocks: Vec<u64>,
    finished: bool,
    /// Who is named in errors passed on.
    provider: &'static str,
}

const TAIL: &[u8] = b",\"finish_reason\":null,\"logprobs\":null}]}\n\n";

impl Translator {
    /// For an answer to `model` (the client's name for it) started at `created`.
    pub fn new(model: &str, created: u64, include_usage: bool, json_mode: bool) -> Self {
        let mut t = Translator {
            events: Events::new(),
            model: model.into(),
            created,
            prefix: Vec::new(),
            include_usage,
            json_mode,
            usage: Usage::default(),
            stop_reason: None,
            tools: HashMap::new(),
            json_blocks: Vec::new(),
            finished: false,
            provider: "anthropic",
        };
        t.set_id("chatcmpl-anthropic");
        t
    }

    fn set_id(&mut self, id: &str) {
        let head = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        })
        .to_string();
        self.prefix.clear();
        self.prefix.extend_from_slice(b"data: ");
        // `{...}` without its closing brace, then the choices.
        self.prefix
            .extend_from_slice(&head.as_bytes()[..head.len() - 1]);
        self.prefix
            .extend_from_slice(b",\"choices\":[{\"index\":0,\"delta\":");
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
            self.push_event(&data, &mut out)?;
        }
        Ok(out)
    }

    /// Adds to `out` the OpenAI events for one Messages API event, `data` its JSON (as
    /// Bedrock carries them, without the SSE framing).
    pub fn push_event(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        if self.finished {
            return Ok(());
        }
        let ev: Event<'_> = match serde_json::from_slice(data) {
            Ok(ev) => ev,
            Err(e) if e.is_data() && !data.is_empty() && data[0] == b'{' => {
                // JSON, but no `type` (or a field of another shape).
                return Err(
                    if serde_json::from_slice::<serde_json::Value>(data)
                        .ok()
                        .and_then(|v| v.get("type").cloned())
                        .is_none()
                    {
                        StreamError::Untyped
                    } else {
                        StreamError::NotJson(e.to_string())
                    },
                );
            }
            Err(e) => {
                return Err(StreamError::NotJson(format!(
                    "{}: {e}",
                    String::from_utf8_lossy(&data[..data.len().min(80)])
                )));
            }
        };
        self.event(ev, out);
        Ok(())
    }

    /// Ends the stream with an OpenAI error event (`code`, and the provider's `message`),
    /// without `[DONE]`, so that the client sees it failed.
    pub fn fail(&mut self, code: &str, message: &str, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        out.extend(sse_data(&error_body(
            &format!("{}: {message}", self.provider),
            "server_error",
            None,
            code,
        )));
        self.finished = true;
    }

    /// Names `provider` in the errors it passes on (`anthropic` unless said).
    pub fn from_provider(mut self, provider: &'static str) -> Self {
        self.provider = provider;
        self
    }

    /// Writes one chunk with `delta` and `finish`.
    fn chunk(&self, out: &mut Vec<u8>, delta: &DeltaOut<'_>, finish: Option<&str>) {
        out.extend_from_slice(&self.prefix);
        // A `DeltaOut` always serializes.
        let _ = serde_json::to_writer(&mut *out, delta);
        match finish {
            None => out.extend_from_slice(TAIL),
            Some(f) => {
                out.extend_from_slice(b",\"finish_reason\":\"");
                out.extend_from_slice(f.as_bytes());
                out.extend_from_slice(b"\",\"logprobs\":null}]}\n\n");
            }
        }
    }

    fn event(&mut self, ev: Event<'_>, out: &mut Vec<u8>) {
        match &*ev.kind {
            "message_start" => {
                if let Some(msg) = &ev.message {
                    if let Some(id) = &msg.id {
                        self.set_id(&format!("chatcmpl-{id}"));
                    }
                    let start = msg.usage.usage();
                    self.usage.input = start.input;
                    self.usage.cache_read = start.cache_read;
                    self.usage.cache_write = start.cache_write;
                    self.usage.output = self.usage.output.max(start.output);
                }
                let delta = DeltaOut {
                    role: Some("assistant"),
                    content: Some(""),
                    ..DeltaOut::default()
                };
                self.chunk(out, &delta, None);
            }
            "content_block_start" => {
                let index = ev.index.unwrap_or(0);
                let Some(block) = &ev.content_block else {
                    return;
                };
                match &*block.kind {
                    "tool_use" if self.json_mode && block.name.as_deref() == Some(JSON_TOOL) => {
                        self.json_blocks.push(index);
                    }
                    "tool_use" => {
                        let n = self.tools.len();
                        self.tools.insert(index, n);
                        let call = ToolCallOut {
                            index: Some(n),
                            id: block.id.as_deref(),
                            kind: Some("function"),
                            function: FunctionOut {
                                name: block.name.as_deref(),
                                arguments: Cow::Borrowed(""),
                            },
                        };
                        let delta = DeltaOut {
                            tool_calls: Some([call]),
                            ..DeltaOut::default()
                        };
                        self.chunk(out, &delta, None);
                    }
                    "text" => {
                        if let Some(t) = block.text.as_deref().filter(|t| !t.is_empty()) {
                            let delta = DeltaOut {
                                content: Some(t),
                                ..DeltaOut::default()
                            };
                            self.chunk(out, &delta, None);
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let index = ev.index.unwrap_or(0);
                let Some(d) = &ev.delta else { return };
                match d.kind.as_deref() {
                    Some("text_delta") => {
                        let delta = DeltaOut {
                            content: Some(d.text.as_deref().unwrap_or("")),
                            ..DeltaOut::default()
                        };
                        self.chunk(out, &delta, None);
                    }
                    Some("input_json_delta") => {
                        let part = d.partial_json.as_deref().unwrap_or("");
                        if self.json_blocks.contains(&index) {
                            let delta = DeltaOut {
                                content: Some(part),
                                ..DeltaOut::default()
                            };
                            self.chunk(out, &delta, None);
                        } else if let Some(&n) = self.tools.get(&index) {
                            let call = ToolCallOut {
                                index: Some(n),
                                id: None,
                                kind: None,
                                function: FunctionOut {
                                    name: None,
                                    arguments: Cow::Borrowed(part),
                                },
                            };
                            let delta = DeltaOut {
                                tool_calls: Some([call]),
                                ..DeltaOut::default()
                            };
                            self.chunk(out, &delta, None);
                        }
                    }
                    // Thinking and signature deltas have no Chat Completions form.
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(r) = ev.delta.as_ref().and_then(|d| d.stop_reason.as_deref()) {
                    self.stop_reason = Some(r.to_string());
                }
                if let Some(u) = &ev.usage {
                    // The delta's counts are cumulative: the latest wins.
                    let later = u.usage();
                    self.usage.output = later.output.max(self.usage.output);
                    if later.input > 0 {
                        self.usage.input = later.input;
                    }
                }
            }
            "message_stop" => {
                let finish = finish_reason(self.stop_reason.as_deref(), self.json_mode);
                self.chunk(out, &DeltaOut::default(), Some(finish));
                if self.include_usage {
                    out.extend_from_slice(
                        &self.prefix[..self.prefix.len() - b"[{\"index\":0,\"delta\":".len()],
                    );
                    out.extend_from_slice(b"[],\"usage\":");
                    let _ = serde_json::to_writer(&mut *out, &self.usage.out());
                    out.extend_from_slice(b"}\n\n");
                }
                out.extend_from_slice(DONE);
                self.finished = true;
            }
            "error" => {
                let e = ev.error.as_ref();
                let message = e
                    .and_then(|e| e.message.as_deref())
                    .unwrap_or("the upstream's stream failed");
                let code = match e.and_then(|e| e.kind.as_deref()) {
                    Some("overloaded_error") => "upstream_overloaded",
                    Some("rate_limit_error") => "rate_limit_exceeded",
                    _ => "upstream_error",
                };
                self.fail(code, message, out);
            }
            // `ping`, `content_block_stop` and events added later carry nothing to pass on.
            _ => {}
        }
    }
}
