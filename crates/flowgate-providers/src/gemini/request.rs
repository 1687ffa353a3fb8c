//! An OpenAI chat request as a Gemini `generateContent` request: system and developer
//! messages become `systemInstruction`; turns become `contents` (`assistant` → `model`),
//! text and images (data URLs as `inlineData`) their `parts`; an assistant's tool calls
//! become `functionCall` parts and tool messages `functionResponse` parts (named after the
//! call they answer); tools become `functionDeclarations`, `tool_choice` the
//! `functionCallingConfig`; sampling fields, stops and JSON mode go in `generationConfig`.
//! What Gemini lacks or takes otherwise (`n > 1`, images by URL, log probabilities) is
//! refused with the field named.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::Unsupported;
use crate::openai::{content_parts, data_url, push_turn};

/// The translated request, and what reading its answer needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    pub body: Value,
    pub stream: bool,
    /// `stream_options.include_usage`: a last chunk with the usage.
    pub include_usage: bool,
}

/// Translates `req` (an OpenAI chat request) for Gemini.
pub fn translate(req: &Value) -> Result<Translated, Unsupported> {
    let o = req
        .as_object()
        .ok_or_else(|| Unsupported::new("", "the request body must be a JSON object"))?;
    if o.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err(Unsupported::new(
            "n",
            "flowgate asks Gemini for one candidate: n must be 1",
        ));
    }
    if o.get("logprobs").and_then(Value::as_bool) == Some(true) {
        return Err(Unsupported::new(
            "logprobs",
            "log probabilities are not carried to Gemini",
        ));
    }
    let messages = o
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| Unsupported::new("messages", "messages must be an array"))?;
    let mut out = Map::new();
    let (system, contents) = contents_of(messages)?;
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": system}));
    }
    out.insert("contents".into(), Value::Array(contents));
    let mut config = Map::new();
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("seed", "seed"),
    ] {
        if let Some(v) = o.get(from).filter(|v| !v.is_null()) {
            config.insert(to.into(), v.clone());
        }
    }
    if let Some(m) = o
        .get("max_completion_tokens")
        .or_else(|| o.get("max_tokens"))
        .and_then(Value::as_u64)
    {
        config.insert("maxOutputTokens".into(), m.into());
    }
    match o.get("stop") {
        Some(Value::String(s)) => _ = config.insert("stopSequences".into(), json!([s])),
        Some(Value::Array(a)) if !a.is_empty() => {
            _ = config.insert("stopSequences".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    match o
        .get("response_format")
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
    {
        Some("json_object") => {
            config.insert("responseMimeType".into(), "application/json".into());
        }
        Some("json_schema") => {
            config.insert("responseMimeType".into(), "application/json".into());
            if let Some(s) = req.pointer("/response_format/json_schema/schema") {
                config.insert("responseJsonSchema".into(), s.clone());
            }
        }
        _ => {}
    }
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    if let Some(tools) = o.get("tools").and_then(Value::as_array) {
        let mut decls = Vec::new();
        for (i, t) in tools.iter().enumerate() {
            if t.get("type").and_then(Value::as_str) != Some("function") {
                return Err(Unsupported::new(
                    format!("tools[{i}].type"),
                    "only function tools are carried to Gemini",
                ));
            }
            let f = t.get("function").cloned().unwrap_or_default();
            let mut d = json!({"name": f.get("name").cloned().unwrap_or_default()});
            if let Some(desc) = f.get("description") {
                d["description"] = desc.clone();
            }
            if let Some(p) = f.get("parameters") {
                d["parametersJsonSchema"] = p.clone();
            }
            decls.push(d);
        }
        out.insert("tools".into(), json!([{"functionDeclarations": decls}]));
    }
    if let Some(choice) = o.get("tool_choice") {
        let config = match choice {
            Value::String(s) if s == "auto" => json!({"mode": "AUTO"}),
            Value::String(s) if s == "required" => json!({"mode": "ANY"}),
            Value::String(s) if s == "none" => json!({"mode": "NONE"}),
            Value::Object(_) => {
                let name = choice
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        Unsupported::new("tool_choice", "a tool choice names a function")
                    })?;
                json!({"mode": "ANY", "allowedFunctionNames": [name]})
            }
            _ => {
                return Err(Unsupported::new(
                    "tool_choice",
                    "tool_choice must be auto, required, none or a function",
                ));
            }
        };
        out.insert(
            "toolConfig".into(),
            json!({"functionCallingConfig": config}),
        );
    }
    let stream = o.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = stream
        && req
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true);
    Ok(Translated {
        body: Value::Object(out),
        stream,
        include_usage,
    })
}

/// The system instruction's parts and the turns.
fn contents_of(messages: &[Value]) -> Result<(Vec<Value>, Vec<Value>), Unsupported> {
    let mut system = Vec::new();
    let mut turns: Vec<Value> = Vec::new();
    // Tool-call id → function name, for the results that answer them.
    let mut names: HashMap<String, String> = HashMap::new();
    for (i, m) in messages.iter().enumerate() {
        let at = |rest: &str| format!("messages[{i}]{rest}");
        let (role, parts) = match m.get("role").and_then(Value::as_str).unwrap_or("") {
            "system" | "developer" => {
                system.extend(parts_of(m.get("content"), &at(".content"))?);
                continue;
            }
            "user" => ("user", parts_of(m.get("content"), &at(".content"))?),
            "assistant" => {
                let mut parts = parts_of(m.get("content"), &at(".content"))?;
                for call in m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let name = call
                        .pointer("/function/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    if let Some(id) = call.get("id").and_then(Value::as_str) {
                        names.insert(id.to_string(), name.to_string());
                    }
                    let args = call
                        .pointer("/function/arguments")
                        .and_then(Value::as_str)
                        .unwrap_or("{}");
                    let args: Value = serde_json::from_str(args).map_err(|_| {
                        Unsupported::new(at(".tool_calls"), "tool call arguments must be JSON")
                    })?;
                    parts.push(json!({"functionCall": {"name": name, "args": args}}));
                }
                ("model", parts)
            }
            "tool" => {
                let id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let name = names.get(id).cloned().ok_or_else(|| {
                    Unsupported::new(
                        at(".tool_call_id"),
                        "a tool message must answer a tool call of an earlier assistant message",
                    )
                })?;
                let text: String = match m.get("content") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(parts)) => parts
                        .iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                        .collect(),
                    _ => String::new(),
                };
                // Gemini wants an object: a JSON object result as it is, else wrapped.
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => json!({"content": text}),
                };
                (
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                )
            }
            other => {
                return Err(Unsupported::new(
                    at(".role"),
                    format!("unknown role {other:?}"),
                ));
            }
        };
        push_turn(&mut turns, role, "parts", parts);
    }
    Ok((system, turns))
}

/// A message's content as Gemini parts.
fn parts_of(content: Option<&Value>, at: &str) -> Result<Vec<Value>, Unsupported> {
    content_parts(content, at, |s| json!({"text": s}), part)
}

fn part(p: &Value, at: &str) -> Result<Value, Unsupported> {
    match p.get("type").and_then(Value::as_str) {
        Some("text") => Ok(json!({"text": p.get("text").and_then(Value::as_str).unwrap_or("")})),
        Some("image_url") => {
            let url = p
                .pointer("/image_url/url")
                .and_then(Value::as_str)
                .ok_or_else(|| Unsupported::new(at, "an image_url part needs image_url.url"))?;
            if !url.starts_with("data:") {
                return Err(Unsupported::new(
                    at,
                    "Gemini takes images inline: send a base64 data URL",
                ));
            }
            let (mime, data) = data_url(url, at)?;
            Ok(json!({"inlineData": {"mimeType": mime, "data": data}}))
        }
        Some(other) => Err(Unsupported::new(
            at,
            format!("content parts of type {other:?} are not carried to Gemini"),
        )),
        None => Err(Unsupported::new(at, "a content part needs a type")),
    }
}
