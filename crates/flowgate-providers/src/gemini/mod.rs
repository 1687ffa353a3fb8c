//! Google's Gemini API (`generativelanguage.googleapis.com`): `POST
//! /v1beta/models/{model}:generateContent`, or `:streamGenerateContent?alt=sse` for a
//! streamed answer, the key in `x-goog-api-key`. Requests are translated from OpenAI's
//! chat form ([`translate`]), answers, streams and errors back ([`completion`], [`Stream`],
//! [`error()`]).

mod request;
mod response;
#[cfg(test)]
mod tests;

pub use request::{Translated, translate};
pub use response::{Stream, completion, error};

/// The API version in the path.
pub const API: &str = "v1beta";

/// The path of the operation on `model`.
pub fn path(model: &str, stream: bool) -> String {
    let model = crate::sigv4::encode_component(model.strip_prefix("models/").unwrap_or(model));
    if stream {
        format!("/{API}/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("/{API}/models/{model}:generateContent")
    }
}
