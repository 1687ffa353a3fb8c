//! Realistic OpenAI-shaped response bodies.

use rand::Rng;
use serde_json::{Value, json};

const WORDS: &[&str] = &[
    "the", "cost", "analysis", "shows", "that", "reserved", "capacity", "would", "reduce", "spend",
    "by", "roughly", "a", "third", "while", "latency", "stays", "within", "budget", "for", "every",
    "region", "we", "reviewed", "and", "risk", "remains", "low",
];

/// What the client asked for, as far as the simulator cares.
#[derive(Debug, Clone)]
pub(crate) struct Ask {
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
    pub max_tokens: Option<u32>,
    pub prompt_tokens: u32,
}

impl Ask {
    pub(crate) fn from_json(v: &Value, body_len: usize) -> Ask {
        Ask {
            model: v
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("sim-model")
                .to_string(),
            stream: v.get("stream").and_then(Value::as_bool).unwrap_or(false),
            include_usage: v
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            max_tokens: v
                .get("max_tokens")
                .or_else(|| v.get("max_completion_tokens"))
                .and_then(Value::as_u64)
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            // About four bytes per token, as tokenizers average on English text.
            prompt_tokens: u32::try_from(body_len / 4).unwrap_or(u32::MAX).max(1),
        }
    }

    pub(crate) fn completion_tokens(&self, configured: u32) -> u32 {
        self.max_tokens
            .map_or(configured, |m| m.min(configured))
            .max(1)
    }
}

/// `n` words of text (one token each).
pub(crate) fn words(rng: &mut impl Rng, n: u32) -> Vec<&'static str> {
    (0..n)
        .map(|_| WORDS[rng.random_range(0..WORDS.len())])
        .collect()
}

pub(crate) fn usage(prompt: u32, completion: u32) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

pub(crate) fn chat_completion(id: u64, ask: &Ask, text: &str, completion: u32) -> Value {
    json!({
        "id": format!("chatcmpl-sim-{id}"),
        "object": "chat.completion",
        "created": 1_767_225_600u64,
        "model": ask.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": usage(ask.prompt_tokens, completion),
        "system_fingerprint": "fp_sim"
    })
}

pub(crate) fn text_completion(id: u64, ask: &Ask, text: &str, completion: u32) -> Value {
    json!({
        "id": format!("cmpl-sim-{id}"),
        "object": "text_completion",
        "created": 1_767_225_600u64,
        "model": ask.model,
        "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": "stop"}],
        "usage": usage(ask.prompt_tokens, completion)
    })
}

pub(crate) fn embeddings(ask: &Ask, rng: &mut impl Rng) -> Value {
    let v: Vec<f32> = (0..16).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    json!({
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": v}],
        "model": ask.model,
        "usage": {"prompt_tokens": ask.prompt_tokens, "total_tokens": ask.prompt_tokens}
    })
}

/// One SSE event of a streamed chat completion.
pub(crate) fn chunk_event(
    id: u64,
    ask: &Ask,
    delta: Value,
    finish: Option<&str>,
    usage: Option<Value>,
) -> String {
    let mut v = json!({
        "id": format!("chatcmpl-sim-{id}"),
        "object": "chat.completion.chunk",
        "created": 1_767_225_600u64,
        "model": ask.model,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
    });
    if let Some(u) = usage {
        v["usage"] = u;
    }
    format!("data: {v}\n\n")
}

pub(crate) fn error(message: &str, kind: &str, code: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}
