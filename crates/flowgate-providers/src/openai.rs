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
