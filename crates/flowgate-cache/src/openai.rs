//! Key material of OpenAI-compatible requests (chat, completions, embeddings).
//!
//! Every known request field is classified: it either changes the answer (part of the key)
//! or it does not (`stream`, `user`, `metadata`, ...). The classification is a destructuring
//! without `..`: a field added to [`OpenAiRequest`] does not compile until it is placed on
//! one side. Fields this schema does not know are kept in the key (changing the key for an
//! unknown field only costs a miss; ignoring one could serve a wrong answer).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use crate::entry::Usage;
use crate::key::KeyBuilder;

/// An OpenAI-style request body, as far as caching is concerned.
#[derive(Debug, Deserialize)]
// The delivery fields are declared only to be classified (and skipped without allocating).
#[allow(dead_code)]
pub struct OpenAiRequest {
    // What is asked.
    model: Option<Value>,
    messages: Option<Value>,
    prompt: Option<Value>,
    input: Option<Value>,
    suffix: Option<Value>,
    instructions: Option<Value>,
    tools: Option<Value>,
    tool_choice: Option<Value>,
    functions: Option<Value>,
    function_call: Option<Value>,
    parallel_tool_calls: Option<Value>,
    response_format: Option<Value>,
    modalities: Option<Value>,
    audio: Option<Value>,
    prediction: Option<Value>,
    web_search_options: Option<Value>,
    encoding_format: Option<Value>,
    dimensions: Option<Value>,
    // How it is sampled.
    temperature: Option<Value>,
    top_p: Option<Value>,
    n: Option<Value>,
    max_tokens: Option<Value>,
    max_completion_tokens: Option<Value>,
    seed: Option<Value>,
    stop: Option<Value>,
    presence_penalty: Option<Value>,
    frequency_penalty: Option<Value>,
    logit_bias: Option<Value>,
    logprobs: Option<Value>,
    top_logprobs: Option<Value>,
    echo: Option<Value>,
    best_of: Option<Value>,
    reasoning_effort: Option<Value>,
    verbosity: Option<Value>,
    // Delivery and bookkeeping: the answer is the same.
    stream: Option<Value>,
    stream_options: Option<Value>,
    user: Option<IgnoredAny>,
    metadata: Option<IgnoredAny>,
    store: Option<IgnoredAny>,
    service_tier: Option<IgnoredAny>,
    safety_identifier: Option<IgnoredAny>,
    prompt_cache_key: Option<IgnoredAny>,
    /// Fields this schema does not know: part of the key.
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

/// What a request's body says about caching it.
#[derive(Debug)]
pub struct OpenAiKey {
    pub material: KeyBuilder,
    /// Whether the same request always gets the same answer: temperature 0, a seed, or an
    /// embeddings request.
    pub deterministic: bool,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// Whether a streaming client asked for a final usage chunk (`stream_options`).
    pub include_usage: bool,
    /// The model asked for, when it is a string (for TTL categories chosen by model).
    pub model: Option<String>,
}

impl OpenAiRequest {
    /// Parses a request body.
    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// The key material and the facts caching decisions need.
    pub fn into_key(self) -> OpenAiKey {
        let OpenAiRequest {
            model,
            messages,
            prompt,
            input,
            suffix,
            instructions,
            tools,
            tool_choice,
            functions,
            function_call,
            parallel_tool_calls,
            response_format,
            modalities,
            audio,
            prediction,
            web_search_options,
            encoding_format,
            dimensions,
            temperature,
            top_p,
            n,
            max_tokens,
            max_completion_tokens,
            seed,
            stop,
            presence_penalty,
            frequency_penalty,
            logit_bias,
            logprobs,
            top_logprobs,
            echo,
            best_of,
            reasoning_effort,
            verbosity,
            stream,
            stream_options,
            user: _,
            metadata: _,
            store: _,
            service_tier: _,
            safety_identifier: _,
            prompt_cache_key: _,
            other,
        } = self;
        let deterministic = temperature.as_ref().and_then(Value::as_f64) == Some(0.0)
            || seed.as_ref().is_some_and(|s| !s.is_null())
            || (input.is_some() && messages.is_none() && prompt.is_none());
        let stream = stream.as_ref().and_then(Value::as_bool) == Some(true);
        let include_usage = stream_options
            .as_ref()
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            == Some(true);
        let model_name = model.as_ref().and_then(Value::as_str).map(str::to_string);
        let mut k = KeyBuilder::new("openai");
        for (name, value) in [
            ("model", &model),
            ("messages", &messages),
            ("prompt", &prompt),
            ("input", &input),
            ("suffix", &suffix),
            ("instructions", &instructions),
            ("tools", &tools),
            ("tool_choice", &tool_choice),
            ("functions", &functions),
            ("function_call", &function_call),
            ("parallel_tool_calls", &parallel_tool_calls),
            ("response_format", &response_format),
            ("modalities", &modalities),
            ("audio", &audio),
            ("prediction", &prediction),
            ("web_search_options", &web_search_options),
            ("encoding_format", &encoding_format),
            ("dimensions", &dimensions),
            ("temperature", &temperature),
            ("top_p", &top_p),
            ("n", &n),
            ("max_tokens", &max_tokens),
            ("max_completion_tokens", &max_completion_tokens),
            ("seed", &seed),
            ("stop", &stop),
            ("presence_penalty", &presence_penalty),
            ("frequency_penalty", &frequency_penalty),
            ("logit_bias", &logit_bias),
            ("logprobs", &logprobs),
            ("top_logprobs", &top_logprobs),
            ("echo", &echo),
            ("best_of", &best_of),
            ("reasoning_effort", &reasoning_effort),
            ("verbosity", &verbosity),
        ] {
            k.json(name, value.as_ref());
        }
        k.json("other", Some(&Value::Object(other.into_iter().collect())));
        OpenAiKey {
            material: k,
            deterministic,
            stream,
            include_usage,
            model: model_name,
        }
    }
}

/// The `usage` an OpenAI response reports (zero when it has none).
pub fn usage_of(body: &[u8]) -> Usage {
    #[derive(serde::Deserialize)]
    struct Body {
        usage: Option<RawUsage>,
    }
    #[derive(serde::Deserialize)]
    struct RawUsage {
        #[serde(default)]
        prompt_tokens: u64,
        #[serde(default)]
        completion_tokens: u64,
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(Body { usage: Some(u) }) => Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
        },
        _ => Usage::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::CacheKey;

    fn key(body: &str) -> (CacheKey, bool, bool) {
        let k = OpenAiRequest::parse(body.as_bytes()).unwrap().into_key();
        (k.material.finish("chat".into()), k.deterministic, k.stream)
    }

    const BASE: &str =
        r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"temperature":0}"#;

    #[test]
    fn delivery_fields_do_not_change_the_key() {
        let (base, det, stream) = key(BASE);
        assert!(det && !stream);
        let (k, _, stream) = key(
            r#"{"stream":true,"user":"u1","metadata":{"a":"b"},"temperature":0.0,
               "messages":[{"content":"hi","role":"user"}],"model":"gpt-4o-mini",
               "stream_options":{"include_usage":true},"store":false}"#,
        );
        assert_eq!(k, base);
        assert!(stream);
        let with_usage = OpenAiRequest::parse(
            br#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#,
        )
        .unwrap()
        .into_key();
        assert!(with_usage.stream && with_usage.include_usage);
    }

    #[test]
    fn answer_fields_change_the_key() {
        let (base, ..) = key(BASE);
        for extra in [
            r#""max_tokens":5"#,
            r#""seed":1"#,
            r#""stop":["x"]"#,
            r#""n":2"#,
            r#""top_p":0.5"#,
            r#""response_format":{"type":"json_object"}"#,
            r#""tools":[]"#,
            r#""some_new_field":1"#,
        ] {
            let body = format!("{},{extra}}}", &BASE[..BASE.len() - 1]);
            assert_ne!(key(&body).0, base, "{extra} did not change the key");
        }
        let (other_model, ..) = key(&BASE.replace("gpt-4o-mini", "gpt-4o"));
        assert_ne!(other_model, base);
    }

    #[test]
    fn determinism_needs_temperature_zero_a_seed_or_embeddings() {
        assert!(!key(r#"{"model":"m","messages":[]}"#).1);
        assert!(!key(r#"{"model":"m","messages":[],"temperature":0.7}"#).1);
        assert!(key(r#"{"model":"m","messages":[],"temperature":0.7,"seed":42}"#).1);
        assert!(!key(r#"{"model":"m","messages":[],"seed":null}"#).1);
        assert!(key(r#"{"model":"text-embedding-3-small","input":"hello"}"#).1);
    }
}
