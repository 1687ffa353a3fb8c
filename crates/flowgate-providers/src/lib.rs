//! The providers' dialects, translated to and from the one flowgate's clients speak (OpenAI
//! Chat Completions): request bodies, whole answers, streamed events and error bodies.
//! Pure functions and small state machines over bytes and JSON: no sockets, no clocks (the
//! caller passes the time), so every mapping is tested on its own.
//!
//! - [`anthropic`]: the Messages API (`/v1/messages`), its SSE events and error bodies.
//! - [`bedrock`]: Anthropic's models on AWS Bedrock: the same bodies, signed requests,
//!   event-stream answers and AWS's errors.
//! - [`gemini`]: Google's Gemini API (`generateContent`, its SSE stream, its errors).
//! - [`eventstream`]: AWS's binary event-stream framing, in which Bedrock streams.
//! - [`openai`]: the shapes flowgate answers in (errors, chunks, usage).
//! - [`sigv4`]: AWS Signature Version 4, for Bedrock, with [`aws_credentials`] found where
//!   the AWS tools look for them.
//!
//! Server-sent events are split by `flowgate_cost::sse::Events`, the one splitter the
//! cache and the token meter use too.

pub mod anthropic;
pub mod aws_credentials;
pub mod bedrock;
pub mod eventstream;
pub mod fuzzing;
pub mod gemini;
pub mod openai;
pub mod sigv4;

/// A request the target provider cannot serve as asked: the client gets a 400 saying so,
/// before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Unsupported {
    /// The request field at fault (`n`, `messages[2].content[0]`...).
    pub param: String,
    pub message: String,
}

impl Unsupported {
    pub fn new(param: impl Into<String>, message: impl Into<String>) -> Self {
        Unsupported {
            param: param.into(),
            message: message.into(),
        }
    }
}
