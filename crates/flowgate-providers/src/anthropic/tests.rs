//! The mappings, each against bodies written from Anthropic's and OpenAI's API references.

use serde_json::{Value, json};

use super::*;

const TARGET: Target<'static> = Target {
    model: "claude-sonnet-4-5",
    default_max_tokens: 4096,
};

/// `msg` translated as a whole answer, read back as JSON.
fn done(msg: &Value, model: &str, created: u64, json_mode: bool) -> Value {
    let out = completion(msg.to_string().as_bytes(), model, created, json_mode).unwrap();
    serde_json::from_slice(&out).unwrap()
}

fn tr(req: Value) -> Translated {
    translate(&req, &TARGET).unwrap()
}

#[test]
fn a_plain_chat_becomes_a_message_with_the_system_prompt_apart() {
    let t = tr(json!({
        "model": "claude-sonnet",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "Hi"},
        ],
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": "END",
        "user": "u-1",
        "seed": 7,
    }));
    assert_eq!(
        t.body,
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 4096,
            "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Answer in French."}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
            "temperature": 0.2,
            "top_p": 0.9,
            "stop_sequences": ["END"],
            "metadata": {"user_id": "u-1"},
        })
    );
    assert!(!t.stream && !t.include_usage && !t.json_mode);
    let t = tr(
        json!({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 50, "max_tokens": 10}),
    );
    assert_eq!(t.body["max_tokens"], 50, "max_completion_tokens wins");
}

#[test]
fn tool_calls_and_results_become_blocks_in_alternating_turns() {
    let t = tr(json!({
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": "24C"},
            {"role": "user", "content": "Thanks; which is warmer?"},
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather now", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": "required",
        "parallel_tool_calls": false,
    }));
    let msgs = t.body["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{msgs:#?}");
    assert_eq!(msgs[1]["role"], "assistant");
    assert_eq!(
        msgs[1]["content"][1],
        json!({"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Rome"}})
    );
    // Both results and the next question in one user turn.
    assert_eq!(msgs[2]["role"], "user");
    assert_eq!(msgs[2]["content"][0]["type"], "tool_result");
    assert_eq!(msgs[2]["content"][0]["tool_use_id"], "call_1");
    assert_eq!(
        msgs[2]["content"][1]["content"],
        json!([{"type": "text", "text": "24C"}])
    );
    assert_eq!(msgs[2]["content"][2]["text"], "Thanks; which is warmer?");
    assert_eq!(
        t.body["tools"],
        json!([{"name": "weather", "description": "Weather now", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}])
    );
    assert_eq!(
        t.body["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
    let named = tr(json!({
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
    }));
    assert_eq!(
        named.body["tool_choice"],
        json!({"type": "tool", "name": "f"})
    );
    assert_eq!(
        named.body["tools"][0]["input_schema"],
        json!({"type": "object"})
    );
}

#[test]
fn images_by_data_url_and_by_url() {
    let t = tr(json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
    ]}]}));
    let content = &t.body["messages"][0]["content"];
    assert_eq!(
        content[1],
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}})
    );
    assert_eq!(
        content[2],
        json!({"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}})
    );
    let bad = translate(
        &json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AA"}}]}]}),
        &TARGET,
    )
    .unwrap_err();
    assert_eq!(bad.param, "messages[0].content[0]");
    assert!(bad.message.contains("image/tiff"), "{}", bad.message);
}

#[test]
fn what_anthropic_lacks_is_refused_with_the_field() {
    for (req, param) in [
        (json!({"n": 2}), "n"),
        (json!({"presence_penalty": 0.5}), "presence_penalty"),
        (json!({"logprobs": true}), "logprobs"),
        (json!({"temperature": 1.5}), "temperature"),
        (
            json!({"response_format": {"type": "json_object"}, "tools": [{"type": "function", "function": {"name": "f"}}]}),
            "response_format",
        ),
        (json!({"tools": [{"type": "web_search"}]}), "tools[0]"),
    ] {
        let mut req = req;
        req["messages"] = json!([{"role": "user", "content": "x"}]);
        let e = translate(&req, &TARGET).unwrap_err();
        assert_eq!(e.param, param, "{req}");
    }
    let e = translate(
        &json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}]}]}),
        &TARGET,
    )
    .unwrap_err();
    assert_eq!(e.param, "messages[0].tool_calls[0].function.arguments");
    // Defaults that mean "nothing asked" pass.
    assert!(
        translate(
            &json!({"n": 1, "presence_penalty": 0, "messages": []}),
            &TARGET
        )
        .is_ok()
    );
}

#[test]
fn json_mode_is_a_forced_tool_and_its_input_is_the_answer() {
    let t = tr(json!({
        "messages": [{"role": "user", "content": "Give me a colour"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": {"type": "object", "properties": {"colour": {"type": "string"}}}}},
    }));
    assert!(t.json_mode);
    assert_eq!(
        t.body["tool_choice"],
        json!({"type": "tool", "name": JSON_TOOL})
    );
    assert_eq!(
        t.body["tools"][0]["input_schema"]["properties"]["colour"]["type"],
        "string"
    );
    let msg = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": JSON_TOOL, "input": {"colour": "teal"}}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 10, "output_tokens": 5},
    });
    let c = done(&msg, "claude-sonnet", 1_700_000_000, true);
    assert_eq!(
        c["choices"][0]["message"]["content"],
        "{\"colour\":\"teal\"}"
    );
    assert_eq!(c["choices"][0]["finish_reason"], "stop");
    assert!(c["choices"][0]["message"].get("tool_calls").is_none());
}

#[test]
fn a_message_becomes_a_chat_completion_with_tool_calls_and_usage() {
    let msg = json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 12, "output_tokens": 30, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 8},
    });
    let c = done(&msg, "claude-sonnet", 1_700_000_000, false);
    assert_eq!(c["id"], "chatcmpl-msg_01");
    assert_eq!(c["object"], "chat.completion");
    assert_eq!(c["model"], "claude-sonnet");
    assert_eq!(c["created"], 1_700_000_000u64);
    let m = &c["choices"][0]["message"];
    assert_eq!(m["content"], "Let me check.");
    assert_eq!(
        m["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(c["usage"]["prompt_tokens"], 120);
    assert_eq!(c["usage"]["completion_tokens"], 30);
    assert_eq!(c["usage"]["total_tokens"], 150);
    assert_eq!(c["usage"]["prompt_tokens_details"]["cached_tokens"], 100);
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
    ] {
        let mut m = msg.clone();
        m["stop_reason"] = stop.into();
        m["content"] = json!([{"type": "text", "text": "x"}]);
        assert_eq!(
            done(&m, "c", 0, false)["choices"][0]["finish_reason"],
            finish
        );
    }
    assert!(
        completion(
            json!({"type": "error"}).to_string().as_bytes(),
            "c",
            0,
            false
        )
        .is_err()
    );
}

#[test]
fn errors_take_openais_shape_and_a_status_the_balancer_acts_on() {
    let body =
        |t: &str, m: &str| json!({"type": "error", "error": {"type": t, "message": m}}).to_string();
    for (status, kind, want, code) in [
        (529, "overloaded_error", 503, "upstream_overloaded"),
        (429, "rate_limit_error", 429, "rate_limit_exceeded"),
        (401, "authentication_error", 401, "upstream_auth_failed"),
        (400, "invalid_request_error", 400, "invalid_request"),
        (404, "not_found_error", 404, "model_not_found"),
        (413, "request_too_large", 413, "request_too_large"),
        (500, "api_error", 502, "upstream_error"),
    ] {
        let (s, v) = error(status, body(kind, "why").as_bytes());
        assert_eq!(
            (s, v["error"]["code"].as_str().unwrap()),
            (want, code),
            "{kind}"
        );
        assert_eq!(v["error"]["message"], "anthropic: why");
    }
    // Not JSON at all (a proxy's page): its start is the message.
    let (s, v) = error(502, b"<html>bad gateway</html>");
    assert_eq!(s, 502);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("bad gateway")
    );
}

/// The stream of the Messages API reference's tool-use example, in pieces.
const STREAM: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_014p\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":472,\"output_tokens\":2,\"cache_read_input_tokens\":0,\"cache_creation_input_tokens\":0}}}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: ping\n\
data: {\"type\": \"ping\"}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Okay, let me check\"}}\n\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01T1\",\"name\":\"get_weather\",\"input\":{}}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\":\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" \\\"SF\\\"}\"}}\n\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":1}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\n";

fn chunks(out: &[u8]) -> Vec<Value> {
    String::from_utf8(out.to_vec())
        .unwrap()
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[test]
fn a_stream_becomes_chunks_ending_in_usage_and_done_wherever_it_is_cut() {
    let mut whole = Translator::new("claude-sonnet", 1_700_000_000, true, false);
    let all = whole.push(STREAM.as_bytes()).unwrap();
    assert!(whole.is_finished());
    assert!(all.ends_with(b"data: [DONE]\n\n"));
    let c = chunks(&all);
    assert_eq!(
        c[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(c[0]["id"], "chatcmpl-msg_014p");
    assert_eq!(c[0]["object"], "chat.completion.chunk");
    assert_eq!(c[1]["choices"][0]["delta"]["content"], "Okay, let me check");
    assert_eq!(
        c[2]["choices"][0]["delta"]["tool_calls"][0],
        json!({"index": 0, "id": "toolu_01T1", "type": "function", "function": {"name": "get_weather", "arguments": ""}})
    );
    let args: String = c[3..5]
        .iter()
        .map(|x| {
            x["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(args, "{\"location\": \"SF\"}");
    assert_eq!(c[5]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(c[6]["choices"], json!([]));
    assert_eq!(c[6]["usage"]["prompt_tokens"], 472);
    assert_eq!(c[6]["usage"]["completion_tokens"], 89);
    assert_eq!(c.len(), 7);
    // Cut anywhere, the same events come out.
    for cut in (0..STREAM.len()).step_by(7) {
        let mut t = Translator::new("claude-sonnet", 1_700_000_000, true, false);
        let mut out = t.push(&STREAM.as_bytes()[..cut]).unwrap();
        out.extend(t.push(&STREAM.as_bytes()[cut..]).unwrap());
        assert_eq!(out, all, "cut at {cut}");
    }
    // Without include_usage: no usage chunk, usage still known to the gateway.
    let mut t = Translator::new("claude-sonnet", 0, false, false);
    let c = chunks(&t.push(STREAM.as_bytes()).unwrap());
    assert_eq!(c.len(), 6);
    assert_eq!(t.usage().output, 89);
}

#[test]
fn an_error_event_ends_the_stream_with_an_error_and_no_done() {
    let mut t = Translator::new("c", 0, false, false);
    let out = t
        .push(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":1}}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n")
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("\"code\":\"upstream_overloaded\""), "{text}");
    assert!(!text.contains("[DONE]"));
    assert!(t.is_finished());
    // Garbage is an error to the caller, never a panic.
    let mut t = Translator::new("c", 0, false, false);
    assert!(matches!(
        t.push(b"event: x\ndata: {not json\n\n"),
        Err(StreamError::NotJson(_))
    ));
}
