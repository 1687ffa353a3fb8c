//! The shapes flowgate answers in, whatever the provider: OpenAI's error body and its
//! streamed `chat.completion.chunk` events.

use serde::Serialize;
use serde_json::{Value, json};

/// An error body in OpenAI's shape.
pub fn error_body(message: &str, kind: &str, param: Option<&str>, code: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

/// One streamed event (`data: {...}\n\n`).
pub fn sse_data(v: &Value) -> Vec<u8> {
    let mut out = b"data: ".to_vec();
    // A `Value` always serializes.
    out.extend_from_slice(v.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
    out
}

/// The end of an OpenAI stream.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// Token counts as OpenAI reports them: prompt tokens include those read from the provider's
/// prompt cache (`prompt_tokens_details.cached_tokens`) and those written to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Input tokens not served from the prompt cache.
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

impl Usage {
    /// As OpenAI's `usage` object.
    pub fn out(self) -> UsageOut {
        let prompt = self.input + self.cache_read + self.cache_write;
        UsageOut {
            prompt_tokens: prompt,
            completion_tokens: self.output,
            total_tokens: prompt + self.output,
            prompt_tokens_details: CachedOut {
                cached_tokens: self.cache_read,
            },
            cache_creation_input_tokens: self.cache_write,
        }
    }
}

/// OpenAI's `usage` object (with the prompt-cache writes Anthropic reports besides).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct UsageOut {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub prompt_tokens_details: CachedOut,
    pub cache_creation_input_tokens: u64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct CachedOut {
    pub cached_tokens: u64,
}

/// A message's `content` (a string, or an array of parts) as a provider's parts: a
/// non-empty string through `text`, each part through `part` (given its field's path).
pub(crate) fn content_parts(
    content: Option<&Value>,
    at: &str,
    text: impl Fn(&str) -> Value,
    part: impl Fn(&Value, &str) -> Result<Value, crate::Unsupported>,
) -> Result<Vec<Value>, crate::Unsupported> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![text(s)]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(k, p)| part(p, &format!("{at}[{k}]")))
            .collect(),
        Some(_) => Err(crate::Unsupported::new(
            at,
            "content must be a string or an array of parts",
        )),
    }
}

/// Adds `items` to the last turn when it is `role`'s (providers that want turns to
/// alternate), else starts a turn `{"role": role, field: items}`.
pub(crate) fn push_turn(turns: &mut Vec<Value>, role: &str, field: &str, items: Vec<Value>) {
    if items.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(last) if last["role"] == role => {
            if let Some(a) = last[field].as_array_mut() {
                a.extend(items);
            }
        }
        _ => turns.push(json!({"role": role, field: items})),
    }
}

/// The media type and base64 data of a `data:` URL.
pub(crate) fn data_url<'u>(
    url: &'u str,
    at: &str,
) -> Result<(&'u str, &'u str), crate::Unsupported> {
    let rest = url
        .strip_prefix("data:")
        .ok_or_else(|| crate::Unsupported::new(at, "not a data URL"))?;
    let (meta, data) = rest
        .split_once(',')
        .ok_or_else(|| crate::Unsupported::new(at, "a data URL without data"))?;
    let media = meta
        .strip_suffix(";base64")
        .ok_or_else(|| crate::Unsupported::new(at, "image data URLs must be base64"))?;
    Ok((media, data))
}

/// The texts of an OpenAI embeddings request, and how its answer is written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EmbeddingInputs<'a> {
    pub texts: Vec<&'a str>,
    /// `encoding_format: "base64"` (OpenAI's SDKs ask it by default).
    pub base64: bool,
    /// The inputs' tokens by the rule of thumb, for providers that report none.
    pub prompt_tokens: u64,
}

impl<'a> EmbeddingInputs<'a> {
    pub(crate) fn of(req: &'a Value) -> Result<Self, crate::Unsupported> {
        use crate::Unsupported;
        let texts: Vec<&str> = match req.get("input") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_string) => {
                a.iter().filter_map(Value::as_str).collect()
            }
            Some(Value::Array(_)) => {
                return Err(Unsupported::new(
                    "input",
                    "input must be a string or an array of strings here (not token ids)",
                ));
            }
            _ => return Err(Unsupported::new("input", "input: Field required")),
        };
        let base64 = match req.get("encoding_format").and_then(Value::as_str) {
            None | Some("float") => false,
            Some("base64") => true,
            Some(other) => {
                return Err(Unsupported::new(
                    "encoding_format",
                    format!("{other:?}: expected float or base64"),
                ));
            }
        };
        let prompt_tokens = texts.iter().map(|t| flowgate_cost::text_tokens(t)).sum();
        Ok(EmbeddingInputs {
            texts,
            base64,
            prompt_tokens,
        })
    }
}

/// OpenAI's embeddings list of `vectors` (JSON arrays of numbers) for `model`: floats, or
/// little-endian `f32` bytes in base64.
pub(crate) fn embeddings_list(
    vectors: &[&Value],
    model: &str,
    base64: bool,
    prompt_tokens: u64,
) -> Result<Vec<u8>, crate::anthropic::BadAnswer> {
    use base64::Engine;
    let mut data = Vec::with_capacity(vectors.len());
    for (i, v) in vectors.iter().enumerate() {
        let values = v.as_array().ok_or_else(|| {
            crate::anthropic::BadAnswer(format!("embedding {i} is not a list of numbers"))
        })?;
        let embedding = if base64 {
            let mut bytes = Vec::with_capacity(values.len() * 4);
            for x in values {
                #[allow(clippy::cast_possible_truncation)] // f32, as OpenAI's base64 is
                let f = x.as_f64().unwrap_or(0.0) as f32;
                bytes.extend_from_slice(&f.to_le_bytes());
            }
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        } else {
            Value::Array(values.clone())
        };
        data.push(json!({"object": "embedding", "index": i, "embedding": embedding}));
    }
    let out = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    });
    Ok(out.to_string().into_bytes())
}
