//! OpenAI streams and the cache: a streamed answer is stored as the JSON a non-streaming
//! client would have got ([`Assembler`]), and a stored answer is replayed to a streaming
//! client as server-sent events ([`render_sse`]).
//!
//! Chunks are merged the way OpenAI defines deltas: within a choice, strings are
//! concatenated (`content`, `refusal`, `text`, tool-call `arguments`, and any string field a
//! compatible server adds, such as `reasoning_content`); identity fields (`role`, `id`,
//! `type`, `name`, `index`) are set; arrays of objects carrying an `index` are merged by it;
//! other arrays (log-probabilities) are appended. A stream is stored only when it is
//! complete: `[DONE]` arrived and every choice has a `finish_reason`.

use bytes::{BufMut, Bytes, BytesMut};
use flowgate_cost::sse::Events;
use serde_json::{Map, Value, json};

/// Builds the non-streaming answer from the bytes of an SSE response, fed as they arrive.
#[derive(Debug, Default)]
pub struct Assembler {
    /// The stream, split into events.
    events: Events,
    /// Top-level fields of the last chunk (`id`, `model`, ...).
    top: Map<String, Value>,
    /// Merged choices, by `index`.
    choices: Vec<Map<String, Value>>,
    usage: Option<Value>,
    done: bool,
    /// Something was not understood: the stream is passed on but not stored.
    broken: bool,
}

impl Assembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes of the stream.
    pub fn push(&mut self, mut chunk: &[u8]) {
        while !self.broken
            && let Some(data) = self.events.next(&mut chunk)
        {
            self.dispatch(&data);
        }
    }

    /// One complete event (`event:`, `id:`, `retry:` and comments do not change the
    /// answer).
    fn dispatch(&mut self, data: &[u8]) {
        if self.done {
            self.broken = true; // events after [DONE]
            return;
        }
        if data == b"[DONE]" {
            self.done = true;
            return;
        }
        match serde_json::from_slice::<Value>(data) {
            Ok(Value::Object(chunk)) if !chunk.contains_key("error") => self.merge_chunk(chunk),
            _ => self.broken = true,
        }
    }

    fn merge_chunk(&mut self, chunk: Map<String, Value>) {
        for (name, value) in chunk {
            match name.as_str() {
                "choices" => {
                    let Value::Array(choices) = value else {
                        self.broken = true;
                        return;
                    };
                    for c in choices {
                        if !self.merge_choice(c) {
                            self.broken = true;
                            return;
                        }
                    }
                }
                "usage" => {
                    if !value.is_null() {
                        self.usage = Some(value);
                    }
                }
                _ => {
                    self.top.insert(name, value);
                }
            }
        }
    }

    fn merge_choice(&mut self, choice: Value) -> bool {
        let Value::Object(choice) = choice else {
            return false;
        };
        let Some(index) = choice.get("index").and_then(Value::as_u64) else {
            return false;
        };
        let Ok(i) = usize::try_from(index) else {
            return false;
        };
        if i > 128 {
            return false; // `n` is far smaller; not a stream we understand
        }
        if self.choices.len() <= i {
            self.choices.resize_with(i + 1, Map::new);
        }
        let acc = &mut self.choices[i];
        for (name, value) in choice {
            match name.as_str() {
                "finish_reason" | "index" => {
                    if !value.is_null() {
                        acc.insert(name, value);
                    }
                }
                _ => merge_field(acc, name, value),
            }
        }
        true
    }

    /// The assembled answer, when the stream was complete and understood.
    pub fn finish(mut self) -> Option<Bytes> {
        if !self.broken
            && let Some(data) = self.events.finish()
        {
            self.dispatch(&data);
        }
        if self.broken || !self.done || self.choices.is_empty() {
            return None;
        }
        let object = match self.top.get("object").and_then(Value::as_str) {
            Some("chat.completion.chunk") => "chat.completion",
            Some("text_completion") => "text_completion",
            _ => return None,
        };
        let chat = object == "chat.completion";
        let mut choices = Vec::with_capacity(self.choices.len());
        for mut c in self.choices {
            if !c.contains_key("finish_reason") || !c.contains_key("index") {
                return None; // a choice that never finished, or a gap in the indexes
            }
            if chat {
                let mut message = match c.remove("delta") {
                    Some(Value::Object(m)) => m,
                    _ => Map::new(),
                };
                message.entry("role").or_insert_with(|| "assistant".into());
                message.entry("content").or_insert(Value::Null);
                if let Some(Value::Array(calls)) = message.get_mut("tool_calls") {
                    for call in calls.iter_mut().filter_map(Value::as_object_mut) {
                        call.remove("index");
                    }
                }
                c.insert("message".into(), Value::Object(message));
            } else {
                c.entry("text").or_insert_with(|| "".into());
            }
            c.entry("logprobs").or_insert(Value::Null);
            choices.push(Value::Object(c));
        }
        let mut out = self.top;
        out.insert("object".into(), object.into());
        out.insert("choices".into(), Value::Array(choices));
        if let Some(u) = self.usage {
            out.insert("usage".into(), u);
        }
        serde_json::to_vec(&Value::Object(out))
            .ok()
            .map(Bytes::from)
    }
}

/// Fields that name something rather than carry streamed text: set, never concatenated.
fn is_identity(name: &str) -> bool {
    matches!(name, "role" | "id" | "type" | "name" | "index")
}

fn merge_field(acc: &mut Map<String, Value>, name: String, value: Value) {
    if value.is_null() {
        return;
    }
    if is_identity(&name) {
        acc.insert(name, value);
        return;
    }
    match acc.get_mut(&name) {
        None => {
            let mut v = value;
            // Start indexed arrays in index order (a later chunk may extend any of them).
            if let Value::Array(items) = &mut v
                && items.iter().all(|x| x.get("index").is_some())
            {
                let mut merged = Vec::new();
                for item in std::mem::take(items) {
                    merge_indexed(&mut merged, item);
                }
                *items = merged;
            }
            acc.insert(name, v);
        }
        Some(old) => merge_value(old, value),
    }
}

fn merge_value(old: &mut Value, new: Value) {
    match (old, new) {
        (Value::String(a), Value::String(b)) => a.push_str(&b),
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge_field(a, k, v);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if b.iter().all(|x| x.get("index").is_some()) && !b.is_empty() {
                for item in b {
                    merge_indexed(a, item);
                }
            } else {
                a.extend(b);
            }
        }
        (_, Value::Null) => {}
        (old, new) => *old = new,
    }
}

/// Merges an element carrying an `index` into the element of `items` with the same index.
fn merge_indexed(items: &mut Vec<Value>, item: Value) {
    let index = item.get("index").cloned();
    match items.iter_mut().find(|x| x.get("index") == index.as_ref()) {
        Some(existing) => merge_value(existing, item),
        None => items.push(item),
    }
}

/// A stored non-streaming answer as the SSE stream a streaming client expects: per choice
/// one chunk with its whole message and one with its `finish_reason`, then, when the client
/// asked for `stream_options.include_usage`, a chunk with the usage, then `[DONE]`. `None`
/// for an answer that is not a chat or text completion.
pub fn render_sse(body: &[u8], include_usage: bool) -> Option<Bytes> {
    let Ok(Value::Object(mut answer)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    let chat = match answer.get("object").and_then(Value::as_str) {
        Some("chat.completion") => true,
        Some("text_completion") => false,
        _ => return None,
    };
    let Some(Value::Array(choices)) = answer.remove("choices") else {
        return None;
    };
    let usage = answer.remove("usage");
    let mut common = answer;
    if chat {
        common.insert("object".into(), "chat.completion.chunk".into());
    }
    if include_usage {
        common.insert("usage".into(), Value::Null);
    }
    let mut out = BytesMut::new();
    let mut event = |choice: Value| {
        let mut chunk = common.clone();
        chunk.insert("choices".into(), Value::Array(vec![choice]));
        write_event(&mut out, &Value::Object(chunk));
    };
    for c in choices {
        let Value::Object(mut c) = c else {
            return None;
        };
        let index = c.remove("index").unwrap_or(json!(0));
        let finish = c.remove("finish_reason").unwrap_or(Value::Null);
        let logprobs = c.remove("logprobs").unwrap_or(Value::Null);
        if chat {
            let mut delta = match c.remove("message") {
                Some(Value::Object(m)) => m,
                _ => return None,
            };
            if let Some(Value::Array(calls)) = delta.get_mut("tool_calls") {
                for (i, call) in calls.iter_mut().enumerate() {
                    if let Value::Object(call) = call {
                        call.insert("index".into(), json!(i));
                    }
                }
            }
            event(
                json!({"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": null}),
            );
            event(json!({"index": index, "delta": {}, "logprobs": null, "finish_reason": finish}));
        } else {
            let text = c.remove("text").unwrap_or_else(|| "".into());
            event(
                json!({"index": index, "text": text, "logprobs": logprobs, "finish_reason": null}),
            );
            event(json!({"index": index, "text": "", "logprobs": null, "finish_reason": finish}));
        }
    }
    if include_usage && let Some(u) = usage.filter(|u| !u.is_null()) {
        let mut chunk = common;
        chunk.insert("choices".into(), json!([]));
        chunk.insert("usage".into(), u);
        write_event(&mut out, &Value::Object(chunk));
    }
    out.put_slice(b"data: [DONE]\n\n");
    Some(out.freeze())
}

fn write_event(out: &mut BytesMut, v: &Value) {
    out.put_slice(b"data: ");
    // Writing a Value into memory cannot fail.
    let _ = serde_json::to_writer((&mut *out).writer(), v);
    out.put_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(delta: Value, finish: Value, usage: Option<Value>) -> String {
        let mut v = json!({
            "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "m",
            "system_fingerprint": "fp",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        });
        if let Some(u) = usage {
            v["usage"] = u;
        }
        format!("data: {v}\n\n")
    }

    fn stream() -> String {
        [
            chunk(
                json!({"role": "assistant", "content": ""}),
                Value::Null,
                None,
            ),
            chunk(json!({"content": "Hel"}), Value::Null, None),
            ": keep-alive comment\n\n".to_string(),
            chunk(json!({"content": "lo"}), Value::Null, None),
            chunk(json!({}), json!("stop"), None),
            format!(
                "data: {}\n\n",
                json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7,
                       "model": "m", "system_fingerprint": "fp", "choices": [],
                       "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
            ),
            "data: [DONE]\n\n".to_string(),
        ]
        .concat()
    }

    fn assemble(bytes: &[u8], piece: usize) -> Option<Value> {
        let mut a = Assembler::new();
        for c in bytes.chunks(piece) {
            a.push(c);
        }
        a.finish().map(|b| serde_json::from_slice(&b).unwrap())
    }

    #[test]
    fn a_chat_stream_assembles_into_a_completion_however_it_is_cut() {
        let s = stream();
        let expected = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "m",
            "system_fingerprint": "fp",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"},
                         "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        });
        for piece in [1, 7, 64, s.len()] {
            assert_eq!(
                assemble(s.as_bytes(), piece),
                Some(expected.clone()),
                "{piece}"
            );
        }
        // CRLF line ends are SSE too.
        assert_eq!(
            assemble(s.replace('\n', "\r\n").as_bytes(), 5),
            Some(expected)
        );
    }

    #[test]
    fn tool_calls_and_extra_text_fields_merge_by_index() {
        let s = [
            chunk(json!({"role": "assistant", "content": null, "reasoning_content": "think"}), Value::Null, None),
            chunk(json!({"reasoning_content": "ing", "tool_calls": [{"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}]}), Value::Null, None),
            chunk(json!({"tool_calls": [{"index": 1, "id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}), Value::Null, None),
            chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}), Value::Null, None),
            chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}), Value::Null, None),
            chunk(json!({}), json!("tool_calls"), None),
            "data: [DONE]\n\n".into(),
        ]
        .concat();
        let v = assemble(s.as_bytes(), 3).unwrap();
        let m = &v["choices"][0]["message"];
        assert_eq!(m["content"], Value::Null);
        assert_eq!(m["reasoning_content"], "thinking");
        assert_eq!(m["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
        assert_eq!(m["tool_calls"][0]["id"], "c1");
        assert_eq!(m["tool_calls"][1]["function"]["name"], "g");
        assert!(m["tool_calls"][0].get("index").is_none());
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn incomplete_or_failed_streams_are_not_stored() {
        let s = stream();
        let no_done = s.replace("data: [DONE]\n\n", "");
        assert_eq!(assemble(no_done.as_bytes(), 9), None);
        let cut = &s[..s.len() / 2];
        assert_eq!(assemble(cut.as_bytes(), 9), None);
        let unfinished = [
            chunk(json!({"content": "a"}), Value::Null, None),
            "data: [DONE]\n\n".into(),
        ]
        .concat();
        assert_eq!(assemble(unfinished.as_bytes(), 9), None);
        let error = s.replacen(
            "data: {",
            "data: {\"error\":{\"message\":\"overloaded\"},",
            2,
        );
        assert_eq!(assemble(error.as_bytes(), 9), None);
        assert_eq!(assemble(b"data: not json\n\ndata: [DONE]\n\n", 4), None);
    }

    #[test]
    fn a_stored_completion_replays_as_a_stream_that_assembles_back() {
        let answer = json!({
            "id": "chatcmpl-9", "object": "chat.completion", "created": 9, "model": "m",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "Hi there",
                  "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                 "logprobs": null, "finish_reason": "stop"},
                {"index": 1, "message": {"role": "assistant", "content": "Yo"}, "logprobs": null, "finish_reason": "length"}
            ],
            "usage": {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}
        });
        let body = serde_json::to_vec(&answer).unwrap();
        let sse = render_sse(&body, true).unwrap();
        let text = std::str::from_utf8(&sse).unwrap();
        assert!(text.ends_with("data: [DONE]\n\n"));
        assert_eq!(
            text.matches("\"object\":\"chat.completion.chunk\"").count(),
            5
        );
        assert!(text.contains("\"tool_calls\":[{\"function\":{\"arguments\":\"{}\",\"name\":\"f\"},\"id\":\"c\",\"index\":0"));
        assert_eq!(assemble(&sse, 11), Some(answer.clone()));
        // Without include_usage there is no usage chunk and no usage field.
        let plain = render_sse(&body, false).unwrap();
        assert!(!std::str::from_utf8(&plain).unwrap().contains("usage"));
        let mut no_usage = answer;
        no_usage.as_object_mut().unwrap().remove("usage");
        assert_eq!(assemble(&plain, 64), Some(no_usage));
    }

    #[test]
    fn text_completions_round_trip_and_other_answers_do_not_render() {
        let answer = json!({
            "id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "text": "abc", "logprobs": null, "finish_reason": "stop"}]
        });
        let sse = render_sse(&serde_json::to_vec(&answer).unwrap(), false).unwrap();
        assert_eq!(assemble(&sse, 6), Some(answer));
        assert_eq!(render_sse(br#"{"object":"list","data":[]}"#, false), None);
        assert_eq!(render_sse(b"[1]", false), None);
    }
}
