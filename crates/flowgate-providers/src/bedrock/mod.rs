//! Anthropic's models on AWS Bedrock (the runtime API's `InvokeModel` and
//! `InvokeModelWithResponseStream`): the body is the Messages API's, without `model` and
//! `stream` (the model is in the path, the stream in the operation) and with Bedrock's
//! `anthropic_version`; the whole answer is a Messages API message; a streamed answer is
//! AWS event-stream frames ([`crate::eventstream`]) whose `chunk` events carry the
//! Messages API's events base64-encoded ([`Stream`]); errors are AWS's
//! (`x-amzn-errortype` and a `message`, [`error()`]). Requests are signed with
//! [`crate::sigv4`] for the service [`SERVICE`]. Embeddings go to Titan or Cohere models
//! ([`embeddings`]).

pub mod embeddings;
mod error;
mod stream;
#[cfg(test)]
mod tests;

pub use error::error;
pub use stream::{Stream, StreamError};

use serde_json::Value;

/// The `anthropic_version` Bedrock wants in the body.
pub const VERSION: &str = "bedrock-2023-05-31";
/// The service name requests are signed for.
pub const SERVICE: &str = "bedrock";
/// The content type of a streamed answer.
pub const STREAM_CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// A Messages API request body (as [`crate::anthropic::translate`] makes it) as Bedrock
/// wants it.
pub fn body(mut messages: Value) -> Value {
    if let Some(o) = messages.as_object_mut() {
        o.remove("model");
        o.remove("stream");
        o.insert("anthropic_version".into(), VERSION.into());
    }
    messages
}

/// The path of the operation on `model` (a model id, an inference profile or an ARN),
/// encoded as it is sent: `/model/{id}/invoke`, or `/invoke-with-response-stream`.
pub fn path(model: &str, stream: bool) -> String {
    format!(
        "/model/{}/{}",
        crate::sigv4::encode(model, true),
        if stream {
            "invoke-with-response-stream"
        } else {
            "invoke"
        }
    )
}
