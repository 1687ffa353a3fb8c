//! OpenAI's `/v1/embeddings` on Gemini: `POST /v1beta/models/{model}:batchEmbedContents`,
//! one request per input (`dimensions` as `outputDimensionality`), the vectors back in
//! OpenAI's list, as floats or, when the client asks `encoding_format: "base64"` (as
//! OpenAI's own SDKs do by default), as little-endian `f32` bytes in base64. Gemini reports
//! no usage for embeddings: the prompt tokens are estimated by the rule of thumb.

use serde_json::{Value, json};

use crate::Unsupported;
use crate::anthropic::BadAnswer;
use crate::openai::{EmbeddingInputs, embeddings_list};

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
    let inputs = EmbeddingInputs::of(req)?;
    let dims = req.get("dimensions").and_then(Value::as_u64);
    let name = format!("models/{}", model.strip_prefix("models/").unwrap_or(model));
    let requests: Vec<Value> = inputs
        .texts
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
        base64: inputs.base64,
        prompt_tokens: inputs.prompt_tokens,
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
    let vectors = list
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.get("values")
                .ok_or_else(|| BadAnswer(format!("embedding {i} has no values")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    embeddings_list(&vectors, model, e.base64, e.prompt_tokens)
}
