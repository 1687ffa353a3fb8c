#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use serde_json::{Value, json};

use super::*;
use crate::eventstream::{self, encode};

fn frame(event: &Value) -> Vec<u8> {
    let payload = json!({
        "bytes": base64::engine::general_purpose::STANDARD.encode(event.to_string()),
        "p": "abcdefgh",
    });
    encode(
        &[
            (":event-type", eventstream::Value::String("chunk".into())),
            (
                ":content-type",
                eventstream::Value::String("application/json".into()),
            ),
            (":message-type", eventstream::Value::String("event".into())),
        ],
        payload.to_string().as_bytes(),
    )
}

fn answer() -> Vec<u8> {
    let mut out = Vec::new();
    for e in [
        json!({"type": "message_start", "message": {"id": "msg_bdrk_1", "type": "message", "role": "assistant", "content": [], "usage": {"input_tokens": 12, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " there"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 2}}),
        json!({"type": "message_stop", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 12, "outputTokenCount": 2, "invocationLatency": 100, "firstByteLatency": 50}}),
    ] {
        out.extend(frame(&e));
    }
    out
}

/// The `data:` payloads of OpenAI events.
fn events(out: &[u8]) -> Vec<String> {
    String::from_utf8(out.to_vec())
        .unwrap()
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").unwrap().to_string())
        .collect()
}

#[test]
fn bodies_lose_model_and_stream_and_gain_bedrocks_version() {
    let b = body(json!({"model": "m", "stream": true, "max_tokens": 5, "messages": []}));
    assert_eq!(
        b,
        json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "messages": []})
    );
}

#[test]
fn paths_carry_the_model_encoded() {
    assert_eq!(
        path("anthropic.claude-3-5-sonnet-20240620-v1:0", false),
        "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke"
    );
    assert_eq!(
        path("arn:aws:bedrock:us-east-1:1:inference-profile/us.x", true),
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.x/invoke-with-response-stream"
    );
}

#[test]
fn a_stream_becomes_openai_chunks_whole_or_byte_by_byte() {
    let bytes = answer();
    let mut whole = Stream::new("claude-sonnet", 7, true, false);
    let all = whole.push(&bytes);
    assert!(whole.is_finished());
    let ev = events(&all);
    assert_eq!(ev.last().unwrap(), "[DONE]");
    let first: Value = serde_json::from_str(&ev[0]).unwrap();
    assert_eq!(first["id"], "chatcmpl-msg_bdrk_1");
    assert_eq!(first["model"], "claude-sonnet");
    let text: String = ev
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(text, "Hello there");
    let finish: Value = serde_json::from_str(&ev[ev.len() - 3]).unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "length");
    let usage: Value = serde_json::from_str(&ev[ev.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["prompt_tokens"], 12);
    assert_eq!(usage["usage"]["completion_tokens"], 2);
    let mut bytewise = Stream::new("claude-sonnet", 7, true, false);
    let mut out = Vec::new();
    for b in &bytes {
        out.extend(bytewise.push(std::slice::from_ref(b)));
    }
    assert_eq!(out, all);
}

fn error_event(out: &[u8]) -> Value {
    let ev = events(out);
    let last: Value = serde_json::from_str(ev.last().unwrap()).unwrap();
    assert!(last["error"].is_object(), "{ev:?}");
    last
}

#[test]
fn a_bad_crc_a_cut_frame_or_an_unknown_event_is_an_error_event() {
    // A flipped payload byte: the message CRC fails.
    let mut bad = answer();
    let n = bad.len();
    bad[n - 10] ^= 0x20;
    let mut s = Stream::new("m", 0, false, false);
    let e = error_event(&s.push(&bad));
    assert!(s.is_finished());
    assert!(
        e["error"]["message"].as_str().unwrap().contains("CRC"),
        "{e}"
    );
    // A frame cut short, then the upstream's end.
    let good = answer();
    let mut s = Stream::new("m", 0, false, false);
    let out = s.push(&good[..good.len() - 5]);
    assert!(!s.is_finished() && !out.is_empty());
    let e = error_event(&s.finish());
    assert!(
        e["error"]["message"].as_str().unwrap().contains("ended"),
        "{e}"
    );
    // An event type Bedrock does not send.
    let odd = encode(
        &[
            (":event-type", eventstream::Value::String("surprise".into())),
            (":message-type", eventstream::Value::String("event".into())),
        ],
        b"{}",
    );
    let mut s = Stream::new("m", 0, false, false);
    let e = error_event(&s.push(&odd));
    assert!(
        e["error"]["message"].as_str().unwrap().contains("surprise"),
        "{e}"
    );
    assert_eq!(
        s.failure(),
        Some(&StreamError::UnknownEvent("surprise".into()))
    );
    // A chunk whose bytes are not base64.
    let junk = encode(
        &[
            (":event-type", eventstream::Value::String("chunk".into())),
            (":message-type", eventstream::Value::String("event".into())),
        ],
        br#"{"bytes":"%%%"}"#,
    );
    let mut s = Stream::new("m", 0, false, false);
    error_event(&s.push(&junk));
}

#[test]
fn an_exception_mid_stream_ends_it_with_its_kind() {
    let mut bytes = frame(
        &json!({"type": "message_start", "message": {"id": "m1", "usage": {"input_tokens": 3}}}),
    );
    bytes.extend(encode(
        &[
            (
                ":exception-type",
                eventstream::Value::String("throttlingException".into()),
            ),
            (
                ":content-type",
                eventstream::Value::String("application/json".into()),
            ),
            (
                ":message-type",
                eventstream::Value::String("exception".into()),
            ),
        ],
        br#"{"message":"Too many requests, please wait before trying again."}"#,
    ));
    let mut s = Stream::new("m", 0, false, false);
    let e = error_event(&s.push(&bytes));
    assert_eq!(e["error"]["code"], "rate_limit_exceeded");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("bedrock: throttlingException")
    );
    assert!(s.is_finished());
    assert!(s.finish().is_empty());
}

#[test]
fn aws_errors_map_to_openai_statuses() {
    let cases: &[(u16, Option<&str>, &str, u16, &str)] = &[
        (
            429,
            Some("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            "Too many requests",
            429,
            "rate_limit_exceeded",
        ),
        (
            503,
            Some("ServiceUnavailableException"),
            "busy",
            503,
            "upstream_overloaded",
        ),
        (
            429,
            Some("ModelNotReadyException"),
            "loading",
            503,
            "upstream_overloaded",
        ),
        (
            400,
            Some("ValidationException"),
            "max_tokens: must be positive",
            400,
            "invalid_request",
        ),
        (
            403,
            Some("ExpiredTokenException"),
            "The security token included in the request is expired",
            401,
            "upstream_auth_failed",
        ),
        (
            403,
            Some("InvalidSignatureException"),
            "signature",
            401,
            "upstream_auth_failed",
        ),
        (
            403,
            Some("AccessDeniedException"),
            "no access to the model",
            403,
            "upstream_permission_denied",
        ),
        (404, None, "no such model", 404, "model_not_found"),
        (
            408,
            Some("ModelTimeoutException"),
            "slow",
            504,
            "upstream_timeout",
        ),
        (
            500,
            Some("InternalServerException"),
            "oops",
            502,
            "upstream_error",
        ),
        (
            424,
            Some("ModelErrorException"),
            "model failed",
            502,
            "upstream_error",
        ),
    ];
    for (status, kind, message, want, code) in cases {
        let body = json!({"message": message}).to_string();
        let (got, v) = error(*status, *kind, body.as_bytes());
        assert_eq!(
            (got, v["error"]["code"].as_str().unwrap()),
            (*want, *code),
            "{kind:?}"
        );
        assert!(v["error"]["message"].as_str().unwrap().contains(message));
    }
    // The type in the body when the header is gone; junk bodies still read.
    let (s, _) = error(
        400,
        None,
        br#"{"__type":"com.amazon.coral#ThrottlingException","message":"x"}"#,
    );
    assert_eq!(s, 429);
    let (s, v) = error(500, None, b"\xff\xfe<html>");
    assert_eq!(s, 502);
    assert!(v["error"]["message"].is_string());
}
