//! An OpenAI Chat Completions request as a Messages API request.
//!
//! System and developer messages become `system`; tool results become `tool_result` blocks
//! of a user turn; assistant tool calls become `tool_use` blocks; consecutive turns of one
//! role are merged (the API wants them alternating); images by data URL become base64
//! sources, by `https` URL, URL sources. JSON mode (`response_format`) is a forced tool
//! whose input is the answer ([`JSON_TOOL`]). What Anthropic lacks (`n > 1`, penalties,
//! log probabilities, a temperature above 1) is refused with the field named.

use serde_json::{Map, Value, json};

use crate::Unsupported;
use crate::openai::{content_parts, data_url, push_turn};

/// The tool that carries a JSON-mode answer.
pub const JSON_TOOL: &str = "json_response";

/// What the translation needs besides the request.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The provider's model id (the catalog's, not the client's alias).
    pub model: &'a str,
    /// `max_tokens` when the client sets none (required by the API).
    pub default_max_tokens: u64,
}

/// The translated request, and what reading its answer needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    pub body: Value,
    pub stream: bool,
    /// `stream_options.include_usage`: a last chunk with the usage.
    pub include_usage: bool,
    /// The answer comes as the input of [`JSON_TOOL`].
    pub json_mode: bool,
}

/// Translates `req` (an OpenAI chat request) for `target`.
pub fn translate(req: &Value, target: &Target<'_>) -> Result<Translated, Unsupported> {
    let obj = req
        .as_object()
        .ok_or_else(|| Unsupported::new("", "the request body must be a JSON object"))?;
    refuse_unsupported(obj)?;
    let mut out = Map::new();
    out.insert("model".into(), target.model.into());
    let max_tokens = obj
        .get("max_completion_tokens")
        .or_else(|| obj.get("max_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(target.default_max_tokens);
    out.insert("max_tokens".into(), max_tokens.into());
    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| Unsupported::new("messages", "messages must be an array"))?;
    let (system, turns) = messages_of(messages)?;
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    out.insert("messages".into(), Value::Array(turns));
    for (from, to) in [("temperature", "temperature"), ("top_p", "top_p")] {
        if let Some(v) = obj.get(from).filter(|v| !v.is_null()) {
            out.insert(to.into(), v.clone());
        }
    }
    match obj.get("stop") {
        Some(Value::String(s)) => _ = out.insert("stop_sequences".into(), json!([s])),
        Some(Value::Array(a)) if !a.is_empty() => {
            _ = out.insert("stop_sequences".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    if let Some(user) = obj.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    let stream = obj.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if stream {
        out.insert("stream".into(), true.into());
    }
    let include_usage = stream
        && obj
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
    let json_mode = json_schema(obj)?;
    let tools = tools_of(obj)?;
    match (json_mode, tools) {
        (Some(_), Some(_)) => {
            return Err(Unsupported::new(
                "response_format",
                "JSON mode together with tools is not supported for Anthropic models",
            ));
        }
        (Some(schema), None) => {
            out.insert(
                "tools".into(),
                json!([{"name": JSON_TOOL, "description": "Respond with the answer as JSON.", "input_schema": schema}]),
            );
            out.insert(
                "tool_choice".into(),
                json!({"type": "tool", "name": JSON_TOOL}),
            );
        }
        (None, Some((tools, choice))) => {
            out.insert("tools".into(), tools);
            if let Some(choice) = choice {
                out.insert("tool_choice".into(), choice);
            }
        }
        (None, None) => {}
    }
    Ok(Translated {
        body: Value::Object(out),
        stream,
        include_usage,
        json_mode: obj.get("response_format").is_some_and(is_json_format),
    })
}

fn refuse_unsupported(obj: &Map<String, Value>) -> Result<(), Unsupported> {
    if obj.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err(Unsupported::new(
            "n",
            "Anthropic models return one choice: n must be 1",
        ));
    }
    for p in ["presence_penalty", "frequency_penalty"] {
        if obj.get(p).and_then(Value::as_f64).is_some_and(|v| v != 0.0) {
            return Err(Unsupported::new(
                p,
                format!("Anthropic models do not take {p}"),
            ));
        }
    }
    if obj.get("logprobs").and_then(Value::as_bool) == Some(true)
        || obj.contains_key("top_logprobs")
    {
        return Err(Unsupported::new(
            "logprobs",
            "Anthropic models do not return log probabilities",
        ));
    }
    if obj
        .get("temperature")
        .and_then(Value::as_f64)
        .is_some_and(|t| t > 1.0)
    {
        return Err(Unsupported::new(
            "temperature",
            "Anthropic models take a temperature from 0 to 1",
        ));
    }
    Ok(())
}

/// The system prompt (text blocks) and the alternating turns.
fn messages_of(messages: &[Value]) -> Result<(Vec<Value>, Vec<Value>), Unsupported> {
    let mut system = Vec::new();
    let mut turns: Vec<Value> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let at = |rest: &str| format!("messages[{i}]{rest}");
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let (role, blocks) = match role {
            "system" | "developer" => {
                for b in content_blocks(m.get("content"), &at(".content"))? {
                    if b.get("type").and_then(Value::as_str) != Some("text") {
                        return Err(Unsupported::new(
                            at(".content"),
                            "a system message holds text only",
                        ));
                    }
                    system.push(b);
                }
                continue;
            }
            "user" => ("user", content_blocks(m.get("content"), &at(".content"))?),
            "assistant" => {
                let mut blocks = match m.get("content") {
                    None | Some(Value::Null) => Vec::new(),
                    c => content_blocks(c, &at(".content"))?,
                };
                for (j, call) in m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    blocks.push(tool_use(call, &at(&format!(".tool_calls[{j}]")))?);
                }
                ("assistant", blocks)
            }
            "tool" => {
                let id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        Unsupported::new(at(".tool_call_id"), "a tool message needs tool_call_id")
                    })?;
                let content = content_blocks(m.get("content"), &at(".content"))?;
                (
                    "user",
                    vec![json!({"type": "tool_result", "tool_use_id": id, "content": content})],
                )
            }
            other => {
                return Err(Unsupported::new(
                    at(".role"),
                    format!("unknown role {other:?}"),
                ));
            }
        };
        push_turn(&mut turns, role, "content", blocks);
    }
    Ok((system, turns))
}

/// A message's content as Messages API blocks.
fn content_blocks(content: Option<&Value>, at: &str) -> Result<Vec<Value>, Unsupported> {
    content_parts(content, at, |s| json!({"type": "text", "text": s}), part)
}

fn part(p: &Value, at: &str) -> Result<Value, Unsupported> {
    match p.get("type").and_then(Value::as_str) {
        Some("text") => {
            Ok(json!({"type": "text", "text": p.get("text").and_then(Value::as_str).unwrap_or("")}))
        }
        Some("image_url") => {
            let url = p
                .get("image_url")
                .and_then(|u| u.get("url").or(Some(u)))
                .and_then(Value::as_str)
                .ok_or_else(|| Unsupported::new(at, "an image_url part needs image_url.url"))?;
            image(url, at)
        }
        Some(other) => Err(Unsupported::new(
            at,
            format!("content parts of type {other:?} are not supported for Anthropic models"),
        )),
        None => Err(Unsupported::new(at, "a content part needs a type")),
    }
}

/// An image by data URL (base64) or by `https` URL.
fn image(url: &str, at: &str) -> Result<Value, Unsupported> {
    if url.starts_with("data:") {
        let (media, data) = data_url(url, at)?;
        if !matches!(
            media,
            "image/jpeg" | "image/png" | "image/gif" | "image/webp"
        ) {
            return Err(Unsupported::new(
                at,
                format!("image type {media:?}: Anthropic takes JPEG, PNG, GIF and WebP"),
            ));
        }
        return Ok(
            json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}),
        );
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err(Unsupported::new(
        at,
        "an image URL must be https:// or a data URL",
    ))
}

fn tool_use(call: &Value, at: &str) -> Result<Value, Unsupported> {
    let id = call.get("id").and_then(Value::as_str).unwrap_or_default();
    let f = call
        .get("function")
        .ok_or_else(|| Unsupported::new(at, "a tool call needs a function"))?;
    let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
    let input = match f.get("arguments") {
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|e| {
            Unsupported::new(
                format!("{at}.function.arguments"),
                format!("tool call arguments are not JSON: {e}"),
            )
        })?,
        Some(v @ Value::Object(_)) => v.clone(),
        _ => json!({}),
    };
    Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
}

/// `tools` and `tool_choice`, when the request has tools.
fn tools_of(obj: &Map<String, Value>) -> Result<Option<(Value, Option<Value>)>, Unsupported> {
    let Some(tools) = obj
        .get("tools")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty())
    else {
        return Ok(None);
    };
    let tools = tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let f = t
                .get("function")
                .filter(|_| t.get("type").and_then(Value::as_str) == Some("function"))
                .ok_or_else(|| {
                    Unsupported::new(
                        format!("tools[{i}]"),
                        "only function tools are supported for Anthropic models",
                    )
                })?;
            let mut tool = Map::new();
            tool.insert("name".into(), f.get("name").cloned().unwrap_or(Value::Null));
            if let Some(d) = f.get("description") {
                tool.insert("description".into(), d.clone());
            }
            tool.insert(
                "input_schema".into(),
                f.get("parameters")
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object"})),
            );
            Ok(Value::Object(tool))
        })
        .collect::<Result<Vec<_>, Unsupported>>()?;
    let parallel = obj.get("parallel_tool_calls").and_then(Value::as_bool);
    let mut choice = match obj.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(json!({"type": "auto"})),
            "required" => Some(json!({"type": "any"})),
            "none" => Some(json!({"type": "none"})),
            other => {
                return Err(Unsupported::new(
                    "tool_choice",
                    format!("{other:?}: expected auto, required, none or a function"),
                ));
            }
        },
        Some(c) => {
            let name = c
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    Unsupported::new("tool_choice", "a tool_choice object names a function")
                })?;
            Some(json!({"type": "tool", "name": name}))
        }
    };
    if parallel == Some(false) {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if c["type"] != "none" {
            c["disable_parallel_tool_use"] = true.into();
        }
    }
    Ok(Some((Value::Array(tools), choice)))
}

fn is_json_format(f: &Value) -> bool {
    matches!(
        f.get("type").and_then(Value::as_str),
        Some("json_object" | "json_schema")
    )
}

/// The schema a JSON-mode answer must follow (`{"type": "object"}` for `json_object`).
fn json_schema(obj: &Map<String, Value>) -> Result<Option<Value>, Unsupported> {
    let Some(f) = obj.get("response_format") else {
        return Ok(None);
    };
    match f.get("type").and_then(Value::as_str) {
        None | Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "object"}))),
        Some("json_schema") => f
            .get("json_schema")
            .and_then(|s| s.get("schema"))
            .cloned()
            .map(Some)
            .ok_or_else(|| {
                Unsupported::new("response_format", "json_schema needs json_schema.schema")
            }),
        Some(other) => Err(Unsupported::new(
            "response_format",
            format!("{other:?}: expected text, json_object or json_schema"),
        )),
    }
}
