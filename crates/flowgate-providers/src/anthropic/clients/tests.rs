#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};

use super::*;
use crate::anthropic::{self, Target, Translator};

fn openai(req: &Value) -> Value {
    let (body, _) = to_openai(req.to_string().as_bytes()).unwrap();
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn a_claude_request_becomes_openais_and_back_the_same() {
    let req = json!({
        "model": "claude-sonnet",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this image?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me look it up."},
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "png"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a cat"},
            ]},
        ],
        "tools": [{"name": "lookup", "description": "Looks up.", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "stop_sequences": ["END"],
        "temperature": 0.2,
        "top_k": 5,
        "metadata": {"user_id": "u1"},
        "stream": true,
    });
    let o = openai(&req);
    assert_eq!(
        o["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(
        o["messages"][1]["content"][1]["image_url"]["url"],
        "data:image/png;base64,iVBORw0KGgo="
    );
    assert_eq!(
        o["messages"][2]["tool_calls"][0]["function"]["arguments"],
        "{\"q\":\"png\"}"
    );
    assert_eq!(
        o["messages"][3],
        json!({"role": "tool", "tool_call_id": "toolu_1", "content": "a cat"})
    );
    assert_eq!(o["tool_choice"], "required");
    assert_eq!(o["parallel_tool_calls"], false);
    assert_eq!(o["stop"], json!(["END"]));
    assert_eq!(o["user"], "u1");
    assert_eq!(o["stream_options"]["include_usage"], true);
    assert!(o.get("top_k").is_none());
    // And to Anthropic again, as a pool of Anthropic's API would get it.
    let back = anthropic::translate(
        &o,
        &Target {
            model: "claude-3-5-sonnet-20240620",
            default_max_tokens: 10,
        },
    )
    .unwrap()
    .body;
    assert_eq!(back["system"][0]["text"], "Be brief.");
    assert_eq!(
        back["messages"][1]["content"][1]["input"],
        json!({"q": "png"})
    );
    assert_eq!(back["messages"][2]["content"][0]["type"], "tool_result");
    assert_eq!(
        back["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
    assert_eq!(back["max_tokens"], 100);
}

#[test]
fn what_cannot_be_carried_is_refused_with_its_field() {
    let refused = |extra: Value| {
        let mut req =
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            req[k] = v.clone();
        }
        to_openai(req.to_string().as_bytes()).unwrap_err().param
    };
    assert_eq!(
        refused(json!({"thinking": {"type": "enabled", "budget_tokens": 1024}})),
        "thinking"
    );
    assert_eq!(refused(json!({"max_tokens": null})), "max_tokens");
    assert_eq!(
        refused(
            json!({"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]})
        ),
        "messages[0].content[0]"
    );
    assert_eq!(
        refused(json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]})),
        "tools[0].type"
    );
    assert!(to_openai(b"not json").is_err());
}

#[test]
fn a_whole_answer_comes_back_as_the_message_it_was() {
    let original = json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-3-5-sonnet-20240620",
        "content": [
            {"type": "text", "text": "Looking."},
            {"type": "tool_use", "id": "toolu_9", "name": "lookup", "input": {"q": "x"}},
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 7, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 2},
    });
    let completion =
        anthropic::completion(original.to_string().as_bytes(), "claude-sonnet", 1, false).unwrap();
    let m: Value = serde_json::from_slice(&message(&completion, "claude-sonnet").unwrap()).unwrap();
    assert_eq!(m["id"], "msg_01");
    assert_eq!(m["model"], "claude-sonnet");
    assert_eq!(m["content"], original["content"]);
    assert_eq!(m["stop_reason"], "tool_use");
    assert_eq!(m["usage"], original["usage"]);
}

/// Anthropic events' (name, data) pairs.
fn events(bytes: &[u8]) -> Vec<(String, Value)> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (name, data) = e.split_once('\n').unwrap();
            (
                name.strip_prefix("event: ").unwrap().to_string(),
                serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_stream_comes_back_as_anthropic_events_whole_or_byte_by_byte() {
    let sse = |name: &str, v: Value| format!("event: {name}\ndata: {v}\n\n");
    let upstream = [
        sse("message_start", json!({"type": "message_start", "message": {"id": "msg_7", "usage": {"input_tokens": 9, "output_tokens": 1}}})),
        sse("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
        sse("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}})),
        sse("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        sse("content_block_start", json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_2", "name": "f", "input": {}}})),
        sse("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}})),
        sse("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "1}"}})),
        sse("content_block_stop", json!({"type": "content_block_stop", "index": 1})),
        sse("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 5}})),
        sse("message_stop", json!({"type": "message_stop"})),
    ]
    .concat();
    let chunks = Translator::new("claude-sonnet", 1, true, false)
        .push(upstream.as_bytes())
        .unwrap();
    let mut whole = Stream::new("claude-sonnet");
    let all = whole.push(&chunks);
    assert!(whole.is_finished());
    let ev = events(&all);
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(ev[0].1["message"]["id"], "msg_7");
    assert_eq!(ev[5].1["content_block"]["name"], "f");
    let args: String = ev[6..8]
        .iter()
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert_eq!(args, "{\"a\":1}");
    assert_eq!(ev[9].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(ev[9].1["usage"]["output_tokens"], 5);
    assert_eq!(ev[9].1["usage"]["input_tokens"], 9);
    let mut bytewise = Stream::new("claude-sonnet");
    let mut out = Vec::new();
    for b in &chunks {
        out.extend(bytewise.push(std::slice::from_ref(b)));
    }
    assert_eq!(out, all);
    // Cut short: an error event at the end.
    let mut cut = Stream::new("m");
    cut.push(&chunks[..chunks.len() / 2]);
    let end = events(&cut.finish());
    assert_eq!(end[0].0, "error");
}

#[test]
fn errors_are_anthropics_shape_with_the_status_kept() {
    let e: Value = serde_json::from_slice(&error(
        429,
        br#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#,
    ))
    .unwrap();
    assert_eq!(
        e,
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
    );
    let e: Value = serde_json::from_slice(&error(503, b"<html>")).unwrap();
    assert_eq!(e["error"]["type"], "overloaded_error");
}
