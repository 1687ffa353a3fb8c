//! The tokens an answer used, read as its body streams past.
//!
//! OpenAI-compatible servers report `usage` (`prompt_tokens`, `completion_tokens`) in a JSON
//! answer and, for a stream, in a chunk near its end (when the client asked for
//! `stream_options.include_usage`, or always, as many compatible servers do). A [`Meter`] is
//! fed the body's bytes as they go to the client and keeps only what it needs: a JSON
//! answer up to [`MAX_JSON`] bytes (read at the end), a stream's current event. When no
//! usage comes, the answer's text is estimated as a prompt is ([`crate::tokens`]).

use bytes::Bytes;
use serde::Deserialize;

use crate::sse::Events;
use crate::tokens::Text;

/// The largest JSON answer a meter keeps to read its usage; past it the completion is
/// estimated from the size (four bytes a token).
pub const MAX_JSON: usize = 1 << 20;

/// Tokens an upstream billed for an answer (its `usage` object; other members ignored).
/// As OpenAI counts them, the prompt's tokens include those read from the provider's
/// prompt cache and those written to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Of the prompt, read from the provider's prompt cache
    /// (`prompt_tokens_details.cached_tokens`).
    #[serde(rename = "prompt_tokens_details", deserialize_with = "cached_tokens")]
    pub cache_read_tokens: u64,
    /// Of the prompt, written to the provider's prompt cache (`cache_creation_input_tokens`,
    /// as Anthropic reports it and the gateway's translation keeps it).
    #[serde(rename = "cache_creation_input_tokens", deserialize_with = "count")]
    pub cache_write_tokens: u64,
}

impl Usage {
    /// Prompt and completion: what token limits count.
    pub fn total(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }

    /// The prompt's tokens neither read from nor written to the provider's prompt cache.
    pub fn uncached_prompt(&self) -> u64 {
        self.prompt_tokens
            .saturating_sub(self.cache_read_tokens)
            .saturating_sub(self.cache_write_tokens)
    }
}

/// A count that may be `null`.
fn count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.unwrap_or(0))
}

/// `prompt_tokens_details.cached_tokens` (the object or its member may be missing or null).
fn cached_tokens<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    struct Details {
        #[serde(default, deserialize_with = "count")]
        cached_tokens: u64,
    }
    Ok(Option::<Details>::deserialize(d)?.map_or(0, |d| d.cached_tokens))
}

/// The `usage` a whole JSON answer reports, if it has one.
///
/// Answers put `usage` near their end, after the choices' text: its last `"usage"` key is
/// read alone when what follows its object closes the answer and nothing else (so it is
/// the answer's own, not a member of something inside); otherwise the answer is read
/// whole.
pub fn usage_of(json: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        usage: Option<Usage>,
    }
    if let Some(u) = last_usage(json) {
        return Some(u);
    }
    serde_json::from_slice::<Answer>(json).ok()?.usage
}

/// The object of the last `"usage"` key of `json`, when it is a member of the outermost
/// object (see [`usage_of`]).
fn last_usage(json: &[u8]) -> Option<Usage> {
    let at = memchr::memmem::rfind(json, b"\"usage\"")?;
    let rest = json[at + 7..].trim_ascii_start().strip_prefix(b":")?;
    let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<Usage>();
    let usage = values.next()?.ok()?;
    closes_the_answer(&rest[values.byte_offset()..]).then_some(usage)
}

/// Whether `tail` holds only plain members (no object or array) and the one `}` that
/// closes the outermost object.
fn closes_the_answer(tail: &[u8]) -> bool {
    let (mut in_string, mut escaped, mut closes) = (false, false, 0);
    for &b in tail {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' | b']' => return false,
            b'}' => closes += 1,
            _ => {}
        }
    }
    closes == 1
}

/// Reads the usage of one answer, fed chunk by chunk.
#[derive(Debug)]
pub struct Meter {
    form: Form,
    read: Read,
}

/// What the answer said so far.
#[derive(Debug, Default)]
struct Read {
    usage: Option<Usage>,
    /// The answer's text, estimated, for when no usage comes.
    completion: u64,
}

impl Read {
    /// Reads one JSON answer or stream chunk: its usage, or else its text.
    fn answer(&mut self, json: &[u8]) {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            usage: Option<Usage>,
            #[serde(default)]
            choices: Text<false>,
        }
        // `[DONE]` and chunks that are not answers say nothing of tokens.
        if let Ok(a) = serde_json::from_slice::<Answer>(json) {
            self.completion = self.completion.saturating_add(a.choices.0);
            if a.usage.is_some() {
                self.usage = a.usage;
            }
        }
    }
}

#[derive(Debug)]
enum Form {
    /// A JSON answer, kept whole until [`MAX_JSON`] (then only counted): its chunks as
    /// they came (shared, not copied; most answers come in one).
    Json { chunks: Vec<Bytes>, seen: u64 },
    /// Server-sent events, read one by one.
    Sse(Events),
}

impl Meter {
    /// A meter for an answer of this `Content-Type`; `None` when it is neither JSON nor a
    /// stream of events (an audio file, say), whose tokens cannot be read.
    pub fn for_content_type(content_type: &[u8]) -> Option<Meter> {
        let form = if content_type.starts_with(b"application/json") {
            Form::Json {
                chunks: Vec::new(),
                seen: 0,
            }
        } else if content_type.starts_with(b"text/event-stream") {
            Form::Sse(Events::new())
        } else {
            return None;
        };
        Some(Meter {
            form,
            read: Read::default(),
        })
    }

    /// Feeds the next bytes of the answer.
    pub fn push(&mut self, data: &Bytes) {
        match &mut self.form {
            Form::Json { chunks, seen } => {
                *seen += data.len() as u64;
                if *seen <= MAX_JSON as u64 {
                    chunks.push(data.clone());
                } else if !chunks.is_empty() {
                    *chunks = Vec::new();
                }
            }
            Form::Sse(events) => {
                let mut chunk = &data[..];
                while let Some(event) = events.next(&mut chunk) {
                    self.read.answer(&event);
                }
            }
        }
    }

    /// What the answer used: its reported usage, or else the `prompt`'s estimate (asked
    /// for only then) and the answer's text so far (a client that left early paid for
    /// what it got).
    pub fn finish(mut self, prompt: impl FnOnce() -> u64) -> Metered {
        if let Form::Json { chunks, seen } = &mut self.form {
            let kept: usize = chunks.iter().map(Bytes::len).sum();
            if kept as u64 == *seen {
                let whole = match chunks.as_slice() {
                    [one] => std::borrow::Cow::Borrowed(&one[..]),
                    many => std::borrow::Cow::Owned(many.concat()),
                };
                // The usage alone first: the answer's text is counted only without it.
                match usage_of(&whole) {
                    Some(u) => self.read.usage = Some(u),
                    None => self.read.answer(&whole),
                }
            } else {
                self.read.completion = seen.div_ceil(4);
            }
        }
        match self.read.usage {
            Some(usage) => Metered {
                usage,
                estimated: false,
            },
            None => Metered {
                usage: Usage {
                    prompt_tokens: prompt(),
                    completion_tokens: self.read.completion,
                    ..Usage::default()
                },
                estimated: true,
            },
        }
    }
}

/// The tokens an answer used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metered {
    pub usage: Usage,
    /// No usage came (a stream cut short, an upstream that reports none): the prompt's
    /// estimate and the answer's text counted as it passed.
    pub estimated: bool,
}

impl Metered {
    pub fn total(&self) -> u64 {
        self.usage.total()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meter(content_type: &str, chunks: &[&str], prompt: u64) -> Metered {
        let mut m = Meter::for_content_type(content_type.as_bytes()).unwrap();
        for c in chunks {
            m.push(&Bytes::copy_from_slice(c.as_bytes()));
        }
        m.finish(|| prompt)
    }

    #[test]
    fn json_answers_report_their_usage_however_they_are_split() {
        let body = r#"{"choices":[{"message":{"content":"hello there"}}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#;
        let want = reported(12, 3);
        for cut in 0..body.len() {
            let (a, b) = body.split_at(cut);
            assert_eq!(meter("application/json", &[a, b], 99), want);
        }
        assert_eq!(want.total(), 15);
    }

    #[test]
    fn the_answers_own_usage_is_read_wherever_it_stands() {
        let u = |p, c| Usage {
            prompt_tokens: p,
            completion_tokens: c,
            ..Usage::default()
        };
        for (body, want) in [
            // Last, then plain members (OpenAI's service_tier, system_fingerprint).
            (
                r#"{"choices":[{"message":{"content":"a \"usage\": {} b}"}}],"usage":{"prompt_tokens":5,"completion_tokens":2},"service_tier":"default","system_fingerprint":"fp_}x"}"#,
                Some(u(5, 2)),
            ),
            // First, with a nested `usage` after it: the answer read whole.
            (
                r#"{"usage":{"prompt_tokens":7,"completion_tokens":1},"choices":[{"message":{"usage":{"prompt_tokens":99}}}]}"#,
                Some(u(7, 1)),
            ),
            // Only a nested one: not the answer's.
            (
                r#"{"choices":[{"usage":{"prompt_tokens":99,"completion_tokens":9}}]}"#,
                None,
            ),
            // Pretty-printed.
            (
                "{\n  \"usage\" : {\"prompt_tokens\": 3, \"completion_tokens\": 4}\n}\n",
                Some(u(3, 4)),
            ),
            ("not json", None),
        ] {
            assert_eq!(usage_of(body.as_bytes()), want, "{body}");
            let whole = serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| serde_json::from_value::<Usage>(v["usage"].clone()).ok());
            assert_eq!(
                usage_of(body.as_bytes()),
                whole,
                "the same as reading it whole: {body}"
            );
        }
    }

    #[test]
    fn without_usage_the_answer_text_is_estimated() {
        let body =
            r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"abcdefgh"}}]}"#;
        // prompt 10 + "assistant"(3) + "abcdefgh"(2); the index is not text.
        assert_eq!(
            meter("application/json; charset=utf-8", &[body], 10),
            estimated(10, 5)
        );
        assert_eq!(
            meter("application/json", &["not json"], 10),
            estimated(10, 0)
        );
        assert!(Meter::for_content_type(b"audio/mpeg").is_none());
    }

    #[test]
    fn json_answers_past_the_cap_are_estimated_from_their_size() {
        let mut m = Meter::for_content_type(b"application/json").unwrap();
        let block = Bytes::from(vec![b' '; 1 << 16]);
        for _ in 0..=(MAX_JSON >> 16) {
            m.push(&block);
        }
        let size = ((MAX_JSON >> 16) + 1) << 16;
        assert_eq!(m.finish(|| 0), estimated(0, (size / 4) as u64));
    }

    #[test]
    fn streams_report_usage_from_their_last_chunk_across_any_split() {
        let stream = "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n\
                      data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\r\n\r\n\
                      : keep-alive\n\n\
                      data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\n\
                      data: [DONE]\n\n";
        let want = reported(7, 2);
        for cut in 0..stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(meter("text/event-stream", &[a, b], 0), want, "cut at {cut}");
        }
        // Byte by byte.
        let bytes: Vec<String> = stream.chars().map(String::from).collect();
        let parts: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(meter("text/event-stream", &parts, 0), want);
    }

    #[test]
    fn streams_without_usage_count_the_text_so_far() {
        let cut_short = "data: {\"choices\":[{\"delta\":{\"content\":\"abcd\"}}]}\n\n\
                         data: {\"choices\":[{\"delta\":{\"content\":\"efgh\"}}]}\n\n\
                         data: {\"choices\":[{\"delta\":{\"content\":\"ij";
        assert_eq!(meter("text/event-stream", &[cut_short], 5), estimated(5, 2));
    }

    #[test]
    fn prompt_cache_reads_and_writes_are_read_where_each_dialect_puts_them() {
        let body = r#"{"usage":{"prompt_tokens":100,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":60,"audio_tokens":0},"cache_creation_input_tokens":30}}"#;
        let m = meter("application/json", &[body], 0);
        assert_eq!(
            (m.usage.cache_read_tokens, m.usage.cache_write_tokens),
            (60, 30)
        );
        assert_eq!(m.usage.uncached_prompt(), 10);
        for body in [
            r#"{"usage":{"prompt_tokens":9,"completion_tokens":1,"prompt_tokens_details":null,"cache_creation_input_tokens":null}}"#,
            r#"{"usage":{"prompt_tokens":9,"completion_tokens":1,"prompt_tokens_details":{}}}"#,
        ] {
            assert_eq!(
                meter("application/json", &[body], 0),
                reported(9, 1),
                "{body}"
            );
        }
        // More cached than prompted (a confused upstream): nothing negative.
        let odd = Usage {
            prompt_tokens: 5,
            cache_read_tokens: 9,
            ..Usage::default()
        };
        assert_eq!(odd.uncached_prompt(), 0);
    }

    fn reported(prompt: u64, completion: u64) -> Metered {
        Metered {
            usage: Usage {
                prompt_tokens: prompt,
                completion_tokens: completion,
                ..Usage::default()
            },
            estimated: false,
        }
    }

    fn estimated(prompt: u64, completion: u64) -> Metered {
        Metered {
            estimated: true,
            ..reported(prompt, completion)
        }
    }
}
