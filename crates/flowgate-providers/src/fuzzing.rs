//! Entry points for fuzzing what upstreams send (cargo-fuzz targets in `fuzz/`, and the
//! stable replay of their corpus in `crates/flowgate-gateway/tests/fuzz_corpus.rs`). Each
//! takes any bytes, must not panic, and checks what must hold of what comes out.

use serde_json::Value;

use crate::{anthropic, bedrock, eventstream, gemini};

/// An Anthropic event stream, cut in two where the first byte says: the translation of the
/// two pieces is the translation of the whole, and every event it makes is JSON (or the end).
pub fn anthropic_stream(data: &[u8]) {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(stream.len());
    let mut whole = anthropic::Translator::new("m", 0, true, false);
    let all = whole.push(stream);
    let mut parts = anthropic::Translator::new("m", 0, true, false);
    let split = parts.push(&stream[..cut]).and_then(|mut a| {
        parts.push(&stream[cut..]).map(|b| {
            a.extend(b);
            a
        })
    });
    if let (Ok(all), Ok(split)) = (&all, &split) {
        assert_eq!(all, split, "the same events whole and cut");
        openai_events(all);
    }
}

/// Every event in `out` is `data: JSON` or `data: [DONE]`.
fn openai_events(out: &[u8]) {
    let text = String::from_utf8(out.to_vec());
    assert!(text.is_ok(), "UTF-8 events");
    for event in text
        .iter()
        .flat_map(|t| t.split("\n\n"))
        .filter(|e| !e.is_empty())
    {
        let data = event.strip_prefix("data: ");
        assert!(data.is_some(), "a data line: {event:?}");
        if let Some(data) = data.filter(|d| *d != "[DONE]") {
            assert!(
                serde_json::from_str::<Value>(data).is_ok(),
                "JSON events: {data:?}"
            );
        }
    }
}

/// A Bedrock response stream, cut in two where the first byte says: the same events whole
/// and cut, every one JSON, and a stream that ends, whatever it held.
pub fn bedrock_stream(data: &[u8]) {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(stream.len());
    let mut whole = bedrock::Stream::new("m", 0, true, false);
    let mut all = whole.push(stream);
    all.extend(whole.finish());
    let mut parts = bedrock::Stream::new("m", 0, true, false);
    let mut split = parts.push(&stream[..cut]);
    split.extend(parts.push(&stream[cut..]));
    split.extend(parts.finish());
    assert_eq!(all, split, "the same events whole and cut");
    assert!(whole.is_finished(), "the stream ends");
    openai_events(&all);
}

/// Any JSON as an OpenAI request for Anthropic, and any bytes as its answer and its error.
pub fn anthropic_json(data: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        let target = anthropic::Target {
            model: "m",
            default_max_tokens: 16,
        };
        if let Ok(t) = anthropic::translate(&v, &target) {
            assert!(t.body["max_tokens"].is_u64());
            assert!(t.body["messages"].is_array());
        }
    }
    if let Ok(c) = anthropic::completion(data, "m", 0, false) {
        let c: Result<Value, _> = serde_json::from_slice(&c);
        assert!(
            c.is_ok_and(|c| c["object"] == "chat.completion"),
            "a JSON completion"
        );
    }
    let (status, body) = anthropic::error(500, data);
    assert!((400..600).contains(&status));
    assert!(body["error"]["message"].is_string());
}

/// An event stream, cut in two where the first byte says: the same messages (or the same
/// error) whole and cut, and each message decoded encodes back to bytes that decode to it.
pub fn eventstream(data: &[u8]) {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(stream.len());
    let whole = eventstream::Decoder::new().push(stream);
    let mut d = eventstream::Decoder::new();
    let split = d.push(&stream[..cut]).and_then(|mut a| {
        a.extend(d.push(&stream[cut..])?);
        Ok(a)
    });
    if let (Ok(a), Ok(b)) = (&whole, &split) {
        assert_eq!(a, b, "the same messages whole and cut");
        for m in a {
            let headers: Vec<(&str, eventstream::Value)> = m
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.clone()))
                .collect();
            let again =
                eventstream::Decoder::new().push(&eventstream::encode(&headers, &m.payload));
            assert_eq!(
                again.as_deref(),
                Ok(std::slice::from_ref(m)),
                "a round trip"
            );
        }
    }
}

/// A Gemini SSE stream, cut in two where the first byte says: the same events whole and
/// cut, every one JSON, and a stream that ends, whatever it held; and any bytes as a whole
/// answer and an error.
pub fn gemini(data: &[u8]) {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(stream.len());
    let mut whole = gemini::Stream::new("m", 0, true);
    let mut all = whole.push(stream);
    all.extend(whole.finish());
    let mut parts = gemini::Stream::new("m", 0, true);
    let mut split = parts.push(&stream[..cut]);
    split.extend(parts.push(&stream[cut..]));
    split.extend(parts.finish());
    assert_eq!(all, split, "the same events whole and cut");
    assert!(whole.is_finished(), "the stream ends");
    openai_events(&all);
    if let Ok(c) = gemini::completion(stream, "m", 0) {
        let c: Result<Value, _> = serde_json::from_slice(&c);
        assert!(
            c.is_ok_and(|c| c["object"] == "chat.completion"),
            "a JSON completion"
        );
    }
    let (status, body) = gemini::error(500, stream);
    assert!((400..600).contains(&status));
    assert!(body["error"]["message"].is_string());
}
