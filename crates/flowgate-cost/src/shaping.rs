//! Prompt shaping: a route's OpenAI chat requests made cheaper before they are sent (and
//! before the cache keys them, so that requests differing only in blank space share an
//! entry). Each step is off unless the route sets it:
//!
//! - **whitespace compaction** of messages' text: runs of spaces and tabs become one space,
//!   spaces at line ends go, three or more line breaks become two. Fenced code blocks
//!   (```` ``` ````) are left exactly as they are, as are tool messages (their content is a
//!   tool's output, often JSON) and assistant tool calls;
//! - **`max_tokens`**: a default when the request sets none, and a cap;
//! - **`temperature`**: clamped into a range;
//! - **parameters removed**: named fields the target ignores (or the operator does not want
//!   sent), e.g. `user`, `logit_bias`.
//!
//! Every change is reported with the prompt tokens it saved (estimated by the rule of
//! thumb, as the guard counts without a tokenizer).

pub use flowgate_config::Shaping;
use serde_json::{Map, Value};

use crate::tokenizer::text_tokens;

/// What shaping did to one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shaped {
    /// The steps that changed something: `whitespace`, `max_tokens_default`,
    /// `max_tokens_cap`, `temperature`, `drop`.
    pub steps: Vec<&'static str>,
    /// Prompt tokens saved by compaction (estimated).
    pub prompt_tokens_saved: u64,
    /// Answer tokens no longer allowed (a cap below what was asked).
    pub completion_tokens_capped: u64,
}

/// `body` shaped by `shaping`; `None` when nothing changed (or it is not a JSON object).
pub fn apply(this: &Shaping, body: &[u8]) -> Option<(Vec<u8>, Shaped)> {
    if this.is_off() {
        return None;
    }
    let mut v: Map<String, Value> = serde_json::from_slice(body).ok()?;
    let mut out = Shaped::default();
    if this.compact_whitespace
        && let Some(Value::Array(messages)) = v.get_mut("messages")
    {
        let mut saved = 0u64;
        for m in messages.iter_mut() {
            if m.get("role").and_then(Value::as_str) == Some("tool") {
                continue;
            }
            match m.get_mut("content") {
                Some(Value::String(s)) => saved += compact_in_place(s),
                Some(Value::Array(parts)) => {
                    for p in parts.iter_mut() {
                        if p.get("type").and_then(Value::as_str) == Some("text")
                            && let Some(Value::String(s)) = p.get_mut("text")
                        {
                            saved += compact_in_place(s);
                        }
                    }
                }
                _ => {}
            }
        }
        if saved > 0 {
            out.steps.push("whitespace");
            out.prompt_tokens_saved = saved;
        }
    }
    let key = if v.contains_key("max_completion_tokens") {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    match (
        v.get(key).and_then(Value::as_u64),
        this.max_tokens_default,
        this.max_tokens_cap,
    ) {
        (None, Some(d), cap) => {
            v.insert(key.into(), cap.map_or(d, |c| d.min(c)).into());
            out.steps.push("max_tokens_default");
        }
        (Some(asked), _, Some(cap)) if asked > cap => {
            v.insert(key.into(), cap.into());
            out.steps.push("max_tokens_cap");
            out.completion_tokens_capped = asked - cap;
        }
        _ => {}
    }
    if let Some((lo, hi)) = this.temperature
        && let Some(t) = v.get("temperature").and_then(Value::as_f64)
    {
        let c = t.clamp(lo, hi);
        if c != t {
            v.insert("temperature".into(), c.into());
            out.steps.push("temperature");
        }
    }
    let before = v.len();
    for d in &this.drop {
        v.remove(d);
    }
    if v.len() != before {
        out.steps.push("drop");
    }
    if out.steps.is_empty() {
        return None;
    }
    Some((serde_json::to_vec(&v).ok()?, out))
}

/// `s` compacted (see the module's documentation); the tokens it saved.
fn compact_in_place(s: &mut String) -> u64 {
    let c = compact(s);
    if c.len() == s.len() {
        return 0;
    }
    let saved = text_tokens(s).saturating_sub(text_tokens(&c));
    *s = c;
    // Blank space counts little as tokens; a smaller text never counts as more.
    saved.max(1)
}

/// Text with its blank space compacted, fenced code blocks untouched.
pub fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_code = false;
    let mut blank_lines = 0usize;
    for (i, line) in text.split('\n').enumerate() {
        let fence = line.trim_start().starts_with("```");
        if in_code || fence {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(line);
            blank_lines = 0;
            if fence {
                in_code = !in_code;
            }
            continue;
        }
        let squeezed = squeeze(line);
        if squeezed.is_empty() {
            blank_lines += 1;
            // At most one blank line between paragraphs.
            if blank_lines > 1 {
                continue;
            }
        } else {
            blank_lines = 0;
        }
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&squeezed);
    }
    out
}

/// A line with runs of spaces and tabs made one space, and none at its end (its
/// indentation kept, as lists and quotes need it).
fn squeeze(line: &str) -> String {
    let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
    let mut out = String::with_capacity(line.len());
    out.push_str(&line[..indent]);
    let mut space = false;
    for ch in line[indent..].chars() {
        if ch == ' ' || ch == '\t' {
            space = true;
        } else {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> Shaping {
        Shaping {
            compact_whitespace: true,
            ..Shaping::default()
        }
    }

    #[test]
    fn blank_space_is_compacted_and_code_blocks_are_not() {
        let text = "Summarize   this\t\tplease.   \n\n\n\nIt  matters.\n```python\ndef f(x):\n    return  x   *  2\n\n\n```\n  - keep   the indent";
        assert_eq!(
            compact(text),
            "Summarize this please.\n\nIt matters.\n```python\ndef f(x):\n    return  x   *  2\n\n\n```\n  - keep the indent"
        );
        assert_eq!(compact("already tidy\nyes"), "already tidy\nyes");
    }

    #[test]
    fn tool_calls_and_tool_results_are_left_alone() {
        let body = r#"{"model":"m","messages":[
            {"role":"user","content":"what   is  the weather"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"1","type":"function","function":{"name":"w","arguments":"{\"city\":  \"Paris   France\"}"}}]},
            {"role":"tool","tool_call_id":"1","content":"{\"temp\":   21,   \"sky\":  \"clear   sky\"}"},
            {"role":"user","content":[{"type":"text","text":"and   tomorrow?"},{"type":"image_url","image_url":{"url":"https://x/a   b.png"}}]}
        ]}"#;
        let (out, shaped) = apply(&on(), body.as_bytes()).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["messages"][0]["content"], "what is the weather");
        assert_eq!(
            v["messages"][1]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":  \"Paris   France\"}"
        );
        assert_eq!(
            v["messages"][2]["content"],
            "{\"temp\":   21,   \"sky\":  \"clear   sky\"}"
        );
        assert_eq!(v["messages"][3]["content"][0]["text"], "and tomorrow?");
        assert_eq!(
            v["messages"][3]["content"][1]["image_url"]["url"],
            "https://x/a   b.png"
        );
        assert_eq!(shaped.steps, ["whitespace"]);
        assert!(shaped.prompt_tokens_saved >= 2);
    }

    #[test]
    fn max_tokens_temperature_and_dropped_fields() {
        let s = Shaping {
            max_tokens_default: Some(512),
            max_tokens_cap: Some(1024),
            temperature: Some((0.0, 0.7)),
            drop: vec!["user".into(), "logit_bias".into()],
            ..Shaping::default()
        };
        let (out, shaped) = apply(
            &s,
            br#"{"model":"m","temperature":1.2,"user":"u1","messages":[]}"#,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            (v["max_tokens"].as_u64(), v["temperature"].as_f64()),
            (Some(512), Some(0.7))
        );
        assert!(v.get("user").is_none());
        assert_eq!(shaped.steps, ["max_tokens_default", "temperature", "drop"]);
        let (out, shaped) = apply(
            &s,
            br#"{"model":"m","max_completion_tokens":4000,"messages":[]}"#,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["max_completion_tokens"], 1024);
        assert!(v.get("max_tokens").is_none());
        assert_eq!(shaped.completion_tokens_capped, 2976);
        // Nothing to do: nothing returned.
        assert!(
            apply(
                &s,
                br#"{"model":"m","max_tokens":10,"temperature":0.2,"messages":[]}"#
            )
            .is_none()
        );
        assert!(apply(&Shaping::default(), b"{}").is_none());
        assert!(apply(&s, b"not json").is_none());
    }
}
