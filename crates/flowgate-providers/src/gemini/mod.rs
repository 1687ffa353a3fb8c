//! Google's Gemini API (`generativelanguage.googleapis.com`): `POST
//! /v1beta/models/{model}:generateContent`, or `:streamGenerateContent?alt=sse` for a
//! streamed answer, the key in `x-goog-api-key`. Requests are translated from OpenAI's
//! chat form ([`translate`]), answers, streams and errors back ([`completion`], [`Stream`],
//! [`error()`]); and OpenAI's embeddings as `batchEmbedContents` ([`embeddings_request`],
//! [`embeddings_answer`]).

mod embeddings;
mod request;
mod response;
#[cfg(test)]
mod tests;

pub use embeddings::{Embeddings, answer as embeddings_answer, request as embeddings_request};
pub use request::{Translated, translate};
pub use response::{Stream, completion, error};

/// The API version in the path.
pub const API: &str = "v1beta";

/// The path that embeds texts with `model`.
pub fn embed_path(model: &str) -> String {
    let model = crate::sigv4::encode_component(model.strip_prefix("models/").unwrap_or(model));
    format!("/{API}/models/{model}:batchEmbedContents")
}

/// The path of the operation on `model`.
pub fn path(model: &str, stream: bool) -> String {
    let model = crate::sigv4::encode_component(model.strip_prefix("models/").unwrap_or(model));
    if stream {
        format!("/{API}/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("/{API}/models/{model}:generateContent")
    }
}
