//! Key material of OpenAI-compatible requests (chat, completions, embeddings).
//!
//! Every known request field is classified: it either changes the answer (part of the key)
//! or it does not (`stream`, `user`, `metadata`, ...). The classification is the two lists
//! [`request!`] is given: the request type, its reader and its key material are all made
//! from them, so a field cannot be read without being placed on one side. Fields this
//! schema does not know are kept in the key (changing the key for an unknown field only
//! costs a miss; ignoring one could serve a wrong answer).
//!
//! The body is read once, straight into canonical digests ([`Canon`]): no JSON tree is
//! built.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::key::{Canon, KeyBuilder, Name, Top};

/// Makes [`OpenAiRequest`] from the fields that change the answer and the delivery fields
/// (with the type each is read as).
macro_rules! request {
    (
        answer { $($a:ident),* $(,)? }
        delivery { $($d:ident: $t:ty),* $(,)? }
    ) => {
        /// An OpenAI-style request body, as far as caching is concerned.
        #[derive(Debug, Default)]
        pub struct OpenAiRequest<'a> {
            $($a: Option<Canon<'a>>,)*
            $($d: Option<$t>,)*
            /// Fields this schema does not know, by name: part of the key.
            other: Vec<(Cow<'a, str>, Canon<'a>)>,
        }

        impl<'de> Deserialize<'de> for OpenAiRequest<'de> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = OpenAiRequest<'de>;

                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a JSON object")
                    }

                    fn visit_map<A: MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<OpenAiRequest<'de>, A::Error> {
                        let mut r = OpenAiRequest::default();
                        while let Some(Name(name)) = map.next_key()? {
                            match name.as_ref() {
                                $(stringify!($a) => r.$a = Some(map.next_value()?),)*
                                $(stringify!($d) => r.$d = Some(map.next_value()?),)*
                                _ => {
                                    let value = map.next_value()?;
                                    r.other.push((name, value));
                                }
                            }
                        }
                        Ok(r)
                    }
                }
                d.deserialize_map(V)
            }
        }

        impl<'a> OpenAiRequest<'a> {
            /// The fields that change the answer, by name, in a fixed order.
            fn answer(&self) -> impl Iterator<Item = (&'static str, Option<&Canon<'a>>)> {
                [$((stringify!($a), self.$a.as_ref())),*].into_iter()
            }
        }
    };
}

request! {
    answer {
        // What is asked.
        model, messages, prompt, input, suffix, instructions, tools, tool_choice, functions,
        function_call, parallel_tool_calls, response_format, modalities, audio, prediction,
        web_search_options, encoding_format, dimensions,
        // How it is sampled.
        temperature, top_p, n, max_tokens, max_completion_tokens, seed, stop,
        presence_penalty, frequency_penalty, logit_bias, logprobs, top_logprobs, echo,
        best_of, reasoning_effort, verbosity,
    }
    // Delivery and bookkeeping: the answer is the same (skipped without allocating, but
    // for the two the gateway reads).
    delivery {
        stream: Value,
        stream_options: Value,
        user: IgnoredAny,
        metadata: IgnoredAny,
        store: IgnoredAny,
        service_tier: IgnoredAny,
        safety_identifier: IgnoredAny,
        prompt_cache_key: IgnoredAny,
    }
}

/// What a request's body says about caching it.
#[derive(Debug, Clone)]
pub struct OpenAiKey {
    /// The hash of the key material ([`crate::CacheKey::new`] puts it in a namespace).
    pub hash: u128,
    /// Whether the same request always gets the same answer: temperature 0, a seed, or an
    /// embeddings request.
    pub deterministic: bool,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// Whether a streaming client asked for a final usage chunk (`stream_options`).
    pub include_usage: bool,
    /// The model asked for, when it is a string (for TTL categories chosen by model).
    pub model: Option<String>,
    /// The answer tokens allowed (`max_completion_tokens`, else `max_tokens`, × `n`),
    /// when given as non-negative integers.
    pub max_tokens: Option<u64>,
    /// Whether the fields the gateway reads have their types: `model` a string, `stream` a
    /// boolean, `max_tokens` a non-negative integer (each may be absent or null).
    pub well_typed: bool,
}

impl<'a> OpenAiRequest<'a> {
    /// Parses a request body (a JSON object).
    pub fn parse(body: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// The key material and the facts caching decisions need.
    pub fn into_key(self) -> OpenAiKey {
        let top = |c: &Option<Canon<'a>>| c.as_ref().map(|c| c.top.clone());
        let deterministic = matches!(top(&self.temperature), Some(Top::Number(t, _)) if t == 0.0)
            || matches!(top(&self.seed), Some(t) if t != Top::Null)
            || (self.input.is_some() && self.messages.is_none() && self.prompt.is_none());
        let stream = self.stream.as_ref().and_then(Value::as_bool) == Some(true);
        let include_usage = self
            .stream_options
            .as_ref()
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            == Some(true);
        let model = match &self.model {
            Some(Canon {
                top: Top::Str(s), ..
            }) => Some(s.to_string()),
            _ => None,
        };
        let whole = |c: &Option<Canon<'a>>| match top(c) {
            Some(Top::Number(_, Some(n))) => Some(n),
            _ => None,
        };
        let max_tokens = whole(&self.max_completion_tokens)
            .or(whole(&self.max_tokens))
            .map(|m| m.saturating_mul(whole(&self.n).unwrap_or(1).max(1)));
        let well_typed = matches!(top(&self.model), None | Some(Top::Null | Top::Str(_)))
            && matches!(self.stream, None | Some(Value::Null | Value::Bool(_)))
            && matches!(
                top(&self.max_tokens),
                None | Some(Top::Null | Top::Number(_, Some(_)))
            );
        let mut k = KeyBuilder::new("openai");
        for (name, value) in self.answer() {
            k.canon(name, value);
        }
        let mut other: Vec<(&str, u128)> = self
            .other
            .iter()
            .map(|(name, c)| (name.as_ref(), c.digest))
            .collect();
        other.sort_unstable();
        k.count("other", other.len());
        for (name, digest) in other {
            k.pair(name.as_bytes(), &digest.to_le_bytes());
        }
        OpenAiKey {
            hash: k.digest(),
            deterministic,
            stream,
            include_usage,
            model,
            max_tokens,
            well_typed,
        }
    }
}

/// Request bodies up to this size are remembered by [`KeyMemo`].
const MAX_MEMO_BODY: usize = 8 * 1024;

/// The keys of recently seen request bodies, by their exact bytes: a body sent again byte
/// for byte (the same prompt from the same client library, the common case of a cache hit)
/// is keyed without being parsed again. Keying is a pure function of the bytes, so the
/// answer is the one parsing would give. Direct-mapped: each body has one slot (by a hash
/// of its bytes), a newcomer replaces what was there. Meant to be owned by one thread.
#[derive(Debug)]
pub struct KeyMemo {
    slots: Vec<Option<(Box<[u8]>, OpenAiKey)>>,
}

impl KeyMemo {
    /// A memo of `slots` bodies (at least 1) of up to 8 KiB each.
    pub fn new(slots: usize) -> Self {
        KeyMemo {
            slots: vec![None; slots.max(1)],
        }
    }

    /// The key of `body`; an error when it is not a JSON object (not remembered).
    pub fn key(&mut self, body: &[u8]) -> Result<OpenAiKey, serde_json::Error> {
        if body.len() > MAX_MEMO_BODY {
            return Ok(OpenAiRequest::parse(body)?.into_key());
        }
        let n = self.slots.len() as u64;
        let slot = &mut self.slots[(xxhash_rust::xxh3::xxh3_64(body) % n) as usize];
        if let Some((seen, key)) = slot
            && **seen == *body
        {
            return Ok(key.clone());
        }
        let key = OpenAiRequest::parse(body)?.into_key();
        *slot = Some((body.into(), key.clone()));
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::CacheKey;

    fn key(body: &str) -> (CacheKey, bool, bool) {
        let k = OpenAiRequest::parse(body.as_bytes()).unwrap().into_key();
        (
            CacheKey::new("chat".into(), k.hash),
            k.deterministic,
            k.stream,
        )
    }

    const BASE: &str =
        r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"temperature":0}"#;

    #[test]
    fn the_answer_tokens_allowed_are_read_with_the_key() {
        let allowed = |body: &str| {
            OpenAiRequest::parse(body.as_bytes())
                .unwrap()
                .into_key()
                .max_tokens
        };
        assert_eq!(allowed(BASE), None);
        assert_eq!(allowed(r#"{"max_tokens":100}"#), Some(100));
        assert_eq!(allowed(r#"{"max_tokens":100,"n":3}"#), Some(300));
        // The newer name wins over the deprecated one.
        assert_eq!(
            allowed(r#"{"max_tokens":100,"max_completion_tokens":40}"#),
            Some(40)
        );
        assert_eq!(allowed(r#"{"max_tokens":-1}"#), None);
        assert_eq!(allowed(r#"{"max_tokens":"many"}"#), None);
    }

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

    #[test]
    fn the_memo_gives_the_key_parsing_gives() {
        let direct = |b: &str| OpenAiRequest::parse(b.as_bytes()).unwrap().into_key().hash;
        let bodies = [
            BASE.to_string(),
            BASE.replace("hi", "ho"),
            r#"{"model":"m","stream":true,"seed":1}"#.to_string(),
            format!(
                r#"{{"model":"m","prompt":"{}"}}"#,
                "x".repeat(MAX_MEMO_BODY)
            ),
        ];
        // One slot: every body replaces the one before; then eight slots.
        for slots in [1, 8] {
            let mut memo = KeyMemo::new(slots);
            for round in 0..3 {
                for b in &bodies {
                    let k = memo.key(b.as_bytes()).unwrap();
                    assert_eq!(k.hash, direct(b), "slots {slots}, round {round}");
                }
            }
            let k = memo.key(bodies[2].as_bytes()).unwrap();
            assert!(k.stream && k.deterministic && k.well_typed);
            assert!(memo.key(b"[1,2]").is_err());
            assert!(memo.key(b"{\"model\": ").is_err());
        }
    }
}
