#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};

use super::*;

#[test]
fn a_chat_request_becomes_generate_content() {
    let req = json!({
        "model": "gemini-2.5-flash",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"png\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
        ],
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "lookup"}},
        "temperature": 0.3, "top_p": 0.9, "max_tokens": 50, "stop": "END",
        "response_format": {"type": "json_object"},
        "stream": true, "stream_options": {"include_usage": true},
    });
    let t = translate(&req).unwrap();
    assert!(t.stream && t.include_usage);
    let b = t.body;
    assert_eq!(
        b["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}]})
    );
    assert_eq!(b["contents"][0]["role"], "user");
    assert_eq!(
        b["contents"][0]["parts"][1]["inlineData"]["mimeType"],
        "image/png"
    );
    assert_eq!(b["contents"][1]["role"], "model");
    assert_eq!(
        b["contents"][1]["parts"][0]["functionCall"],
        json!({"name": "lookup", "args": {"q": "png"}})
    );
    assert_eq!(
        b["contents"][2]["parts"][0]["functionResponse"],
        json!({"name": "lookup", "response": {"content": "a cat"}})
    );
    assert_eq!(b["tools"][0]["functionDeclarations"][0]["name"], "lookup");
    assert_eq!(
        b["toolConfig"]["functionCallingConfig"],
        json!({"mode": "ANY", "allowedFunctionNames": ["lookup"]})
    );
    let g = &b["generationConfig"];
    assert_eq!(
        (g["temperature"].as_f64(), g["topP"].as_f64()),
        (Some(0.3), Some(0.9))
    );
    assert_eq!(g["maxOutputTokens"], 50);
    assert_eq!(g["stopSequences"], json!(["END"]));
    assert_eq!(g["responseMimeType"], "application/json");
    assert_eq!(
        path("gemini-2.5-flash", true),
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(
        path("models/gemini-2.0-flash", false),
        "/v1beta/models/gemini-2.0-flash:generateContent"
    );
}

#[test]
fn what_gemini_cannot_take_is_refused() {
    let refused = |extra: Value| {
        let mut req = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            req[k] = v.clone();
        }
        translate(&req).unwrap_err().param
    };
    assert_eq!(refused(json!({"n": 2})), "n");
    assert_eq!(
        refused(
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]})
        ),
        "messages[0].content[0]"
    );
    assert_eq!(
        refused(json!({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]})),
        "messages[0].tool_call_id"
    );
}

#[test]
fn answers_usage_and_finish_reasons_come_back_as_openais() {
    let answer = json!({
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "thinking...", "thought": true},
            {"text": "It is "}, {"text": "a cat."},
            {"functionCall": {"name": "lookup", "args": {"q": "cat"}}},
        ]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 5, "thoughtsTokenCount": 3, "cachedContentTokenCount": 4, "totalTokenCount": 20},
        "responseId": "abc",
    });
    let c: Value =
        serde_json::from_slice(&completion(answer.to_string().as_bytes(), "flash", 9).unwrap())
            .unwrap();
    assert_eq!(c["id"], "chatcmpl-abc");
    assert_eq!(c["model"], "flash");
    let m = &c["choices"][0]["message"];
    assert_eq!(m["content"], "It is a cat.");
    assert_eq!(m["tool_calls"][0]["function"]["name"], "lookup");
    assert_eq!(
        m["tool_calls"][0]["function"]["arguments"],
        "{\"q\":\"cat\"}"
    );
    assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(c["usage"]["prompt_tokens"], 12);
    assert_eq!(c["usage"]["completion_tokens"], 8);
    assert_eq!(c["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
    let cut = json!({"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": "MAX_TOKENS"}]});
    let c: Value =
        serde_json::from_slice(&completion(cut.to_string().as_bytes(), "m", 0).unwrap()).unwrap();
    assert_eq!(c["choices"][0]["finish_reason"], "length");
    let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}});
    let c: Value =
        serde_json::from_slice(&completion(blocked.to_string().as_bytes(), "m", 0).unwrap())
            .unwrap();
    assert_eq!(c["choices"][0]["finish_reason"], "content_filter");
    assert!(completion(b"{}", "m", 0).is_err());
}

#[test]
fn a_stream_becomes_chunks_ending_in_usage_and_done_at_its_end() {
    let sse = |v: Value| format!("data: {v}\r\n\r\n");
    let bytes = [
        sse(json!({"candidates": [{"content": {"parts": [{"text": "Hello"}], "role": "model"}}], "responseId": "r1"})),
        sse(json!({"candidates": [{"content": {"parts": [{"text": " there"}], "role": "model"}, "finishReason": "STOP"}],
                   "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2}})),
    ]
    .concat();
    let mut s = Stream::new("flash", 1, true);
    let mut out = s.push(bytes.as_bytes());
    assert!(!s.is_finished());
    out.extend(s.finish());
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let ev: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let content: String = ev
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hello there");
    assert_eq!(ev[0]["id"], "chatcmpl-r1");
    assert_eq!(ev[ev.len() - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(ev[ev.len() - 1]["usage"]["completion_tokens"], 2);
    // Byte by byte: the same.
    let mut b = Stream::new("flash", 1, true);
    let mut again = Vec::new();
    for x in bytes.as_bytes() {
        again.extend(b.push(std::slice::from_ref(x)));
    }
    again.extend(b.finish());
    assert_eq!(again, out);
    // Cut before the finish reason: an error, no [DONE].
    let mut cut = Stream::new("flash", 1, false);
    cut.push(sse(json!({"candidates": [{"content": {"parts": [{"text": "Hel"}]}}]})).as_bytes());
    let end = String::from_utf8(cut.finish()).unwrap();
    assert!(
        end.contains("\"error\"") && !end.contains("[DONE]"),
        "{end}"
    );
}

#[test]
fn google_errors_map_to_openai_statuses() {
    let e = |status: u16, s: &str, reason: Option<&str>| {
        let mut body = json!({"error": {"code": status, "message": "m", "status": s}});
        if let Some(r) = reason {
            body["error"]["details"] =
                json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": r}]);
        }
        let (st, v) = error(status, body.to_string().as_bytes());
        (st, v["error"]["code"].as_str().unwrap().to_string())
    };
    assert_eq!(
        e(400, "INVALID_ARGUMENT", Some("API_KEY_INVALID")),
        (401, "upstream_auth_failed".into())
    );
    assert_eq!(
        e(400, "INVALID_ARGUMENT", None),
        (400, "invalid_request".into())
    );
    assert_eq!(
        e(429, "RESOURCE_EXHAUSTED", None),
        (429, "rate_limit_exceeded".into())
    );
    assert_eq!(
        e(503, "UNAVAILABLE", None),
        (503, "upstream_overloaded".into())
    );
    assert_eq!(e(500, "INTERNAL", None), (502, "upstream_error".into()));
    assert_eq!(e(404, "NOT_FOUND", None), (404, "model_not_found".into()));
    let (st, v) = error(502, b"<html>");
    assert_eq!(st, 502);
    assert!(v["error"]["message"].is_string());
}
