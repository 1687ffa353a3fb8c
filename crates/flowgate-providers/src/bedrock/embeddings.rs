//! OpenAI's `/v1/embeddings` on Bedrock, for the two families Bedrock serves: Amazon's
//! Titan Text Embeddings (`amazon.titan-embed-text-*`: one text per call, `dimensions` and
//! `normalize`, its token count reported) and Cohere's Embed (`cohere.embed-*`: up to 96
//! texts per call, `input_type` `search_document`, no usage reported: estimated). The
//! vectors come back in OpenAI's list, as floats or as base64 `f32` bytes.

use serde_json::{Value, json};

use crate::Unsupported;
use crate::anthropic::BadAnswer;
use crate::openai::{EmbeddingInputs, embeddings_list};

/// Whose embedding model a Bedrock id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Titan,
    Cohere,
}

/// An embeddings request translated, and what its answer needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub body: Value,
    pub family: Family,
    pub base64: bool,
    /// The estimated tokens of the inputs (Cohere reports none).
    pub prompt_tokens: u64,
}

/// The family of the Bedrock model `id`, if it embeds.
pub fn family(id: &str) -> Option<Family> {
    // Cross-region inference profiles prefix the id with a geography (`us.`).
    let id = id
        .split_once('.')
        .filter(|(g, _)| g.len() == 2)
        .map_or(id, |(_, rest)| rest);
    if id.starts_with("amazon.titan-embed-text") {
        Some(Family::Titan)
    } else if id.starts_with("cohere.embed") {
        Some(Family::Cohere)
    } else {
        None
    }
}

/// `req` (an OpenAI embeddings request) for the Bedrock model `id`.
pub fn request(req: &Value, id: &str) -> Result<Embeddings, Unsupported> {
    let family = family(id).ok_or_else(|| {
        Unsupported::new(
            "model",
            format!("{id} is not an embedding model Bedrock serves (amazon.titan-embed-text-*, cohere.embed-*)"),
        )
    })?;
    let inputs = EmbeddingInputs::of(req)?;
    let body = match family {
        Family::Titan => {
            let [text] = inputs.texts[..] else {
                return Err(Unsupported::new(
                    "input",
                    "Titan embeds one text per request: send one input",
                ));
            };
            let mut b = json!({"inputText": text, "normalize": true});
            if let Some(d) = req.get("dimensions").and_then(Value::as_u64) {
                b["dimensions"] = d.into();
            }
            b
        }
        Family::Cohere => {
            if inputs.texts.len() > 96 {
                return Err(Unsupported::new(
                    "input",
                    "Cohere embeds at most 96 texts per request",
                ));
            }
            if req.get("dimensions").is_some() {
                return Err(Unsupported::new(
                    "dimensions",
                    "Cohere's Embed v3 has a fixed size",
                ));
            }
            json!({"texts": inputs.texts, "input_type": "search_document", "truncate": "END"})
        }
    };
    Ok(Embeddings {
        body,
        family,
        base64: inputs.base64,
        prompt_tokens: inputs.prompt_tokens,
    })
}

/// Bedrock's answer as OpenAI's embeddings list for `model`.
pub fn answer(body: &[u8], model: &str, e: &Embeddings) -> Result<Vec<u8>, BadAnswer> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|err| BadAnswer(format!("the answer is not JSON: {err}")))?;
    let (vectors, tokens): (Vec<&Value>, u64) = match e.family {
        Family::Titan => (
            vec![
                v.get("embedding")
                    .ok_or_else(|| BadAnswer("the answer has no embedding".into()))?,
            ],
            v.get("inputTextTokenCount")
                .and_then(Value::as_u64)
                .unwrap_or(e.prompt_tokens),
        ),
        Family::Cohere => {
            let list = v
                .get("embeddings")
                .and_then(|x| x.get("float").or(Some(x)))
                .and_then(Value::as_array)
                .ok_or_else(|| BadAnswer("the answer has no embeddings".into()))?;
            (list.iter().collect(), e.prompt_tokens)
        }
    };
    embeddings_list(&vectors, model, e.base64, tokens)
}
