//! OpenAI's `/v1/embeddings` on Gemini: `POST /v1beta/models/{model}:batchEmbedContents`,
//! one request per input (`dimensions` as `outputDimensionality`), the vectors back in
//! OpenAI's list, as floats or, when the client asks `encoding_format: "base64"` (as
//! OpenAI's own SDKs do by default), as little-endian `f32` bytes in base64. Gemini reports
//! no usage for embeddings: the prompt tokens are estimated by the rule of thumb.

use base64::Engine;
use serde_json::{Value, json};

use crate::Unsupported;
use crate::anthropic::BadAnswer;

/// An embeddings request translated, and what its answer needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub body: Value,
    /// Answer in base64 (`encoding_format: "base64"`).
    pub base64: bool,
    /// The estimated tokens of the inputs.
    pub prompt_tokens: u64,
}

/// `req` (an OpenAI embeddings request) for Gemini's `model`.
pub fn request(req: &Value, model: &str) -> Result<Embeddings, Unsupported> {
    let inputs: Vec<&str> = match req.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) && !a.is_empty() => {
            a.iter().filter_map(Value::as_str).collect()
        }
        Some(Value::Array(_)) => {
            return Err(Unsupported::new(
                "input",
                "Gemini embeds text: input must be a string or an array of strings (not token ids)",
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
    let dims = req.get("dimensions").and_then(Value::as_u64);
    let name = format!("models/{}", model.strip_prefix("models/").unwrap_or(model));
    let requests: Vec<Value> = inputs
        .iter()
        .map(|t| {
            let mut r = json!({"model": name, "content": {"parts": [{"text": t}]}});
            if let Some(d) = dims {
                r["outputDimensionality"] = d.into();
            }
            r
        })
        .collect();
    Ok(Embeddings {
        body: json!({"requests": requests}),
        base64,
        prompt_tokens: inputs.iter().map(|t| flowgate_cost::text_tokens(t)).sum(),
    })
}

/// Gemini's `batchEmbedContents` answer as OpenAI's embeddings list for `model`.
pub fn answer(body: &[u8], model: &str, e: &Embeddings) -> Result<Vec<u8>, BadAnswer> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|err| BadAnswer(format!("the answer is not JSON: {err}")))?;
    let list = v
        .get("embeddings")
        .and_then(Value::as_array)
        .ok_or_else(|| BadAnswer("the answer has no embeddings".into()))?;
    let mut data = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let values = item
            .get("values")
            .and_then(Value::as_array)
            .ok_or_else(|| BadAnswer(format!("embedding {i} has no values")))?;
        let embedding = if e.base64 {
            let mut bytes = Vec::with_capacity(values.len() * 4);
            for x in values {
                // f32, as OpenAI's base64 embeddings are.
                #[allow(clippy::cast_possible_truncation)]
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
        "usage": {"prompt_tokens": e.prompt_tokens, "total_tokens": e.prompt_tokens},
    });
    Ok(out.to_string().into_bytes())
}
