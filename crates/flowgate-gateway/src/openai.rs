//! OpenAI-shaped request bodies: read once, with the size limit, and validated as JSON.
//! The body is forwarded unchanged; the fields later stages need (cache keys, token limits,
//! cost) are read here.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};

use crate::error::ProxyError;

/// The fields of an OpenAI request body the gateway reads.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
pub struct OpenAiHead<'a> {
    #[serde(borrow, default, deserialize_with = "borrowed_str")]
    pub model: Option<Cow<'a, str>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
}

/// A string borrowed from the body when it has no escapes (serde's own `Cow` support
/// always copies inside an `Option`).
fn borrowed_str<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string or null")
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_owned())))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// 400 unless `body` is empty or a JSON request.
pub fn check_json(body: &[u8]) -> Result<(), ProxyError> {
    if !body.is_empty() {
        serde_json::from_slice::<OpenAiHead<'_>>(body)
            .map_err(|e| ProxyError::InvalidJson(e.to_string()))?;
    }
    Ok(())
}

/// The model a request names, if it is JSON and names one.
pub fn model(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<OpenAiHead<'_>>(body)
        .ok()?
        .model
        .map(Cow::into_owned)
}

/// Whether a request asks for a streamed answer (`"stream": true`).
pub fn streams(body: &[u8]) -> bool {
    serde_json::from_slice::<OpenAiHead<'_>>(body).is_ok_and(|h| h.stream == Some(true))
}

/// The body with its `model` set to `model` (for a fallback that asks another model);
/// `None` unless it is a JSON object.
pub fn with_model(body: &Option<bytes::Bytes>, model: &str) -> Option<bytes::Bytes> {
    let mut v: serde_json::Map<String, serde_json::Value> = match body {
        Some(b) => serde_json::from_slice(b).ok()?,
        None => serde_json::Map::new(),
    };
    v.insert("model".into(), serde_json::Value::String(model.into()));
    serde_json::to_vec(&v).ok().map(bytes::Bytes::from)
}

/// The token estimate of a request, its text counted by `tokenizer` (nothing for an empty
/// body); 400 unless it is JSON.
pub fn estimate(
    body: &[u8],
    tokenizer: flowgate_cost::Tokenizer,
) -> Result<flowgate_cost::Estimate, ProxyError> {
    if body.is_empty() {
        return Ok(flowgate_cost::Estimate::default());
    }
    flowgate_cost::estimate_with(body, tokenizer)
        .map_err(|e| ProxyError::InvalidJson(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_borrow_plain_strings_and_accept_escapes_and_null() {
        let h: OpenAiHead<'_> =
            serde_json::from_slice(br#"{"model":"gpt-4o","stream":true,"max_tokens":5}"#).unwrap();
        assert!(matches!(h.model, Some(Cow::Borrowed("gpt-4o"))));
        assert_eq!((h.stream, h.max_tokens), (Some(true), Some(5)));
        let h: OpenAiHead<'_> = serde_json::from_slice(br#"{"model":"a\"b"}"#).unwrap();
        assert_eq!(h.model.as_deref(), Some("a\"b"));
        let h: OpenAiHead<'_> = serde_json::from_slice(br#"{"model":null}"#).unwrap();
        assert!(h.model.is_none());
        assert!(serde_json::from_slice::<OpenAiHead<'_>>(br#"{"model":5}"#).is_err());
    }
}
