//! A Messages API request (from a Claude client) as the OpenAI chat request the gateway
//! works on: `system` becomes the first message; text and image blocks become content
//! parts (base64 sources as data URLs); `tool_use` blocks become an assistant's
//! `tool_calls`, `tool_result` blocks `tool` messages; tools, `tool_choice`, stop
//! sequences, temperature, `top_p` and `metadata.user_id` map to their OpenAI fields; a
//! streamed request asks for the usage chunk (the last Anthropic events carry the usage).
//! `top_k` has no OpenAI field and is dropped; what cannot be carried (extended thinking,
//! documents) is refused with the field named.

use serde_json::{Map, Value, json};

use crate::Unsupported;

/// What answering the client needs to remember of its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    /// The model as the client named it.
    pub model: String,
    pub stream: bool,
}

/// `body` (a Messages API request) as an OpenAI chat request's JSON.
pub fn to_openai(body: &[u8]) -> Result<(Vec<u8>, Ask), Unsupported> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Unsupported::new("", format!("the request body is not JSON: {e}")))?;
    let o = v
        .as_object()
        .ok_or_else(|| Unsupported::new("", "the request body must be a JSON object"))?;
    let model = o
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| Unsupported::new("model", "model: Field required"))?;
    let max_tokens = o
        .get("max_tokens")
        .and_then(Value::as_u64)
        .ok_or_else(|| Unsupported::new("max_tokens", "max_tokens: Field required"))?;
    if o.get("thinking")
        .and_then(|t| t.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t != "disabled")
    {
        return Err(Unsupported::new(
            "thinking",
            "extended thinking cannot be carried through the gateway's OpenAI form yet",
        ));
    }
    let mut out = Map::new();
    out.insert("model".into(), model.into());
    out.insert("max_tokens".into(), max_tokens.into());
    let mut messages = Vec::new();
    match o.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(Value::Array(blocks)) => {
            let text = texts(blocks, "system")?;
            messages.push(json!({"role": "system", "content": text}));
        }
        Some(_) => {
            return Err(Unsupported::new(
                "system",
                "system must be a string or text blocks",
            ));
        }
    }
    let turns = o
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| Unsupported::new("messages", "messages: Field required"))?;
    for (i, m) in turns.iter().enumerate() {
        turn(m, i, &mut messages)?;
    }
    out.insert("messages".into(), Value::Array(messages));
    for k in ["temperature", "top_p"] {
        if let Some(v) = o.get(k).filter(|v| !v.is_null()) {
            out.insert(k.into(), v.clone());
        }
    }
    if let Some(stop) = o.get("stop_sequences").and_then(Value::as_array)
        && !stop.is_empty()
    {
        out.insert("stop".into(), Value::Array(stop.clone()));
    }
    if let Some(user) = o
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        out.insert("user".into(), user.into());
    }
    if let Some(tools) = o.get("tools").and_then(Value::as_array) {
        let mut fns = Vec::new();
        for (i, t) in tools.iter().enumerate() {
            let name = t.get("name").and_then(Value::as_str).ok_or_else(|| {
                Unsupported::new(format!("tools[{i}].name"), "a tool needs a name")
            })?;
            if t.get("type")
                .and_then(Value::as_str)
                .is_some_and(|k| k != "custom")
            {
                return Err(Unsupported::new(
                    format!("tools[{i}].type"),
                    "only client tools (with input_schema) can be carried; server tools cannot",
                ));
            }
            let mut f = json!({"name": name, "parameters": t.get("input_schema").cloned().unwrap_or_else(|| json!({"type": "object"}))});
            if let Some(d) = t.get("description") {
                f["description"] = d.clone();
            }
            fns.push(json!({"type": "function", "function": f}));
        }
        out.insert("tools".into(), Value::Array(fns));
    }
    if let Some(choice) = o.get("tool_choice") {
        let (c, parallel) = tool_choice(choice)?;
        out.insert("tool_choice".into(), c);
        if parallel == Some(false) {
            out.insert("parallel_tool_calls".into(), false.into());
        }
    }
    let stream = o.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if stream {
        out.insert("stream".into(), true.into());
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    let ask = Ask {
        model: model.to_string(),
        stream,
    };
    Ok((Value::Object(out).to_string().into_bytes(), ask))
}

/// The text of text blocks, joined.
fn texts(blocks: &[Value], field: &str) -> Result<String, Unsupported> {
    let mut out = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        match (
            b.get("type").and_then(Value::as_str),
            b.get("text").and_then(Value::as_str),
        ) {
            (Some("text"), Some(t)) => out.push(t),
            _ => {
                return Err(Unsupported::new(
                    format!("{field}[{i}]"),
                    "only text blocks can be carried here",
                ));
            }
        }
    }
    Ok(out.join("\n\n"))
}

/// One turn as OpenAI messages (a user turn's tool results come first, as `tool`
/// messages answering the previous assistant turn's calls).
fn turn(m: &Value, i: usize, out: &mut Vec<Value>) -> Result<(), Unsupported> {
    let at = |f: &str| format!("messages[{i}]{f}");
    let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
    if !matches!(role, "user" | "assistant") {
        return Err(Unsupported::new(
            at(".role"),
            "role must be user or assistant",
        ));
    }
    let blocks = match m.get("content") {
        Some(Value::String(s)) => {
            out.push(json!({"role": role, "content": s}));
            return Ok(());
        }
        Some(Value::Array(b)) => b,
        _ => {
            return Err(Unsupported::new(
                at(".content"),
                "content must be a string or blocks",
            ));
        }
    };
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let here = || at(&format!(".content[{j}]"));
        match b.get("type").and_then(Value::as_str).unwrap_or_default() {
            "text" => {
                let t = b.get("text").and_then(Value::as_str).unwrap_or_default();
                parts.push(json!({"type": "text", "text": t}));
            }
            "image" if role == "user" => parts.push(image(b).ok_or_else(|| {
                Unsupported::new(here(), "an image needs a base64 or url source")
            })?),
            "tool_use" if role == "assistant" => {
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": b.get("id").and_then(Value::as_str).unwrap_or_default(),
                    "type": "function",
                    "function": {
                        "name": b.get("name").and_then(Value::as_str).unwrap_or_default(),
                        "arguments": input.to_string(),
                    },
                }));
            }
            "tool_result" if role == "user" => {
                let content = match b.get("content") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(c)) => texts(c, &here())?,
                    _ => String::new(),
                };
                let is_error = b.get("is_error").and_then(Value::as_bool) == Some(true);
                out.push(json!({
                    "role": "tool",
                    "tool_call_id": b.get("tool_use_id").and_then(Value::as_str).unwrap_or_default(),
                    "content": if is_error { format!("Error: {content}") } else { content },
                }));
            }
            // Earlier thinking is the model's own; it has no OpenAI form and is left out.
            "thinking" | "redacted_thinking" if role == "assistant" => {}
            other => {
                return Err(Unsupported::new(
                    here(),
                    format!("a {other:?} block cannot be carried in a {role} turn"),
                ));
            }
        }
    }
    if role == "assistant" {
        let text: Vec<&str> = parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect();
        let mut msg = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { text.join("").into() }});
        if !calls.is_empty() {
            msg["tool_calls"] = Value::Array(calls);
        }
        out.push(msg);
    } else if !parts.is_empty() {
        out.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

/// An image block as an `image_url` part.
fn image(b: &Value) -> Option<Value> {
    let src = b.get("source")?;
    let url = match src.get("type").and_then(Value::as_str)? {
        "base64" => format!(
            "data:{};base64,{}",
            src.get("media_type").and_then(Value::as_str)?,
            src.get("data").and_then(Value::as_str)?
        ),
        "url" => src.get("url").and_then(Value::as_str)?.to_string(),
        _ => return None,
    };
    Some(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// `tool_choice` in OpenAI's words, and `parallel_tool_calls` when it says.
fn tool_choice(c: &Value) -> Result<(Value, Option<bool>), Unsupported> {
    let parallel = c
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        .map(|d| !d);
    let choice = match c.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name = c.get("name").and_then(Value::as_str).ok_or_else(|| {
                Unsupported::new("tool_choice.name", "a tool choice names a tool")
            })?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => {
            return Err(Unsupported::new(
                "tool_choice.type",
                "tool_choice.type must be auto, any, tool or none",
            ));
        }
    };
    Ok((choice, parallel))
}
