//! Token estimates of OpenAI-shaped requests.
//!
//! Each string is counted by the request's [`Tokenizer`]: exactly, with the model's own
//! vocabulary, for OpenAI's models; otherwise as OpenAI's rule of thumb has it for English
//! (a token per four ASCII characters) and one token per other character (CJK and most non-Latin scripts take
//! about one token per character or more; accented Latin letters are over-counted, which is
//! the safe side for a limit). A chat request costs its messages' text, four tokens per
//! message and three to prime the answer; tool and function definitions, `prompt`, `input`
//! (completions, embeddings, responses) and `system` count their text and their numbers
//! (token-id prompts are arrays of numbers). Images count 85 tokens each (OpenAI's low
//! detail price); their URLs or base64 data are not read as text. Audio and files are not
//! estimated.
//!
//! The estimate is a reservation, not a bill: rate limits correct it with the answer's
//! `usage` (the `usage` module).

use std::cell::Cell;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::tokenizer::Tokenizer;

/// Tokens an image in a prompt is counted as.
pub const IMAGE_TOKENS: u64 = 85;
/// Tokens each chat message adds for its role and separators.
const PER_MESSAGE: u64 = 4;
/// Tokens that prime the assistant's answer in a chat request.
const PER_CHAT: u64 = 3;

/// What a request will take: its prompt, and the completion it allows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimate {
    /// The prompt's estimated tokens.
    pub prompt: u64,
    /// `max_tokens` (or `max_completion_tokens`, `max_output_tokens`) × `n`, when given.
    pub completion: Option<u64>,
}

impl Estimate {
    /// Tokens to reserve for the request: the prompt and the longest answer it allows.
    pub fn reserve(&self) -> u64 {
        self.prompt.saturating_add(self.completion.unwrap_or(0))
    }
}

thread_local! {
    /// The tokenizer of the estimate being read on this thread (the visitors below have no
    /// other way to be told).
    static COUNTING: Cell<Tokenizer> = const { Cell::new(Tokenizer::Approximate) };
}

/// The tokens of one string, by the tokenizer of the estimate being read.
fn count(s: &str) -> u64 {
    COUNTING.with(|c| c.get()).count(s)
}

/// The estimate of an OpenAI-shaped request body by the rule of thumb; an error when it
/// is not a JSON object.
pub fn estimate(body: &[u8]) -> Result<Estimate, serde_json::Error> {
    estimate_with(body, Tokenizer::Approximate)
}

/// The estimate of an OpenAI-shaped request body, its strings counted by `tokenizer`; an
/// error when it is not a JSON object.
pub fn estimate_with(body: &[u8], tokenizer: Tokenizer) -> Result<Estimate, serde_json::Error> {
    let before = COUNTING.with(|c| c.replace(tokenizer));
    let r = serde_json::from_slice::<Request>(body);
    COUNTING.with(|c| c.set(before));
    let r = r?;
    let prompt = r.messages.0 + r.prompt.0 + r.input.0 + r.tools.0 + r.functions.0 + r.system.0;
    let max = r
        .max_completion_tokens
        .or(r.max_tokens)
        .or(r.max_output_tokens);
    Ok(Estimate {
        prompt,
        completion: max.map(|m| m.saturating_mul(r.n.unwrap_or(1).max(1))),
    })
}

/// The fields an estimate reads; the others are skipped unread.
#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    messages: Messages,
    #[serde(default)]
    prompt: Text<true>,
    #[serde(default)]
    input: Text<true>,
    #[serde(default)]
    tools: Text<true>,
    #[serde(default)]
    functions: Text<true>,
    #[serde(default)]
    system: Text<true>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    max_output_tokens: Option<u64>,
    #[serde(default)]
    n: Option<u64>,
}

/// Tokens of a chat request's `messages`: their text and each message's overhead.
#[derive(Default)]
struct Messages(u64);

impl<'de> Deserialize<'de> for Messages {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Messages;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of messages")
            }
            fn visit_unit<E>(self) -> Result<Messages, E> {
                Ok(Messages(0))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Messages, A::Error> {
                let mut n = PER_CHAT;
                while let Some(Text::<true>(t)) = seq.next_element()? {
                    n = n.saturating_add(t + PER_MESSAGE);
                }
                Ok(Messages(n))
            }
        }
        d.deserialize_any(V)
    }
}

/// Tokens of any JSON value's text (and of its numbers when `NUMBERS`): strings are
/// estimated with [`text_tokens`], object member names are not counted, images count
/// [`IMAGE_TOKENS`] and audio or files nothing.
#[derive(Default)]
pub struct Text<const NUMBERS: bool>(pub u64);

impl<'de, const NUMBERS: bool> Deserialize<'de> for Text<NUMBERS> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor::<NUMBERS>)
    }
}

struct TextVisitor<const NUMBERS: bool>;

impl<'de, const NUMBERS: bool> Visitor<'de> for TextVisitor<NUMBERS> {
    type Value = Text<NUMBERS>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Text(count(v)))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Text(u64::from(NUMBERS)))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Text(u64::from(NUMBERS)))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Text(u64::from(NUMBERS)))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Text(u64::from(NUMBERS)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Text(0))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut n = 0u64;
        while let Some(Text::<NUMBERS>(t)) = seq.next_element()? {
            n = n.saturating_add(t);
        }
        Ok(Text(n))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut n = 0u64;
        while let Some(member) = map.next_key::<Member>()? {
            match member {
                Member::Image => {
                    map.next_value::<IgnoredAny>()?;
                    n = n.saturating_add(IMAGE_TOKENS);
                }
                Member::Unread => _ = map.next_value::<IgnoredAny>()?,
                Member::Text => n = n.saturating_add(map.next_value::<Text<NUMBERS>>()?.0),
            }
        }
        Ok(Text(n))
    }
}

/// How an object member's value is counted, by its name.
enum Member {
    Text,
    Image,
    Unread,
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Member;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Member, E> {
                Ok(match v {
                    "image_url" | "input_image" | "image" => Member::Image,
                    "input_audio" | "audio" | "file" | "input_file" => Member::Unread,
                    _ => Member::Text,
                })
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::text_tokens;
    use proptest::prelude::*;

    #[test]
    fn text_counts_ascii_by_fours_and_other_characters_one_each() {
        assert_eq!(text_tokens(""), 0);
        assert_eq!(text_tokens("abcd"), 1);
        assert_eq!(text_tokens("abcde"), 2);
        assert_eq!(text_tokens("日本語"), 3);
        assert_eq!(text_tokens("ab日"), 2);
    }

    #[test]
    fn chat_requests_count_messages_tools_and_the_answer_they_allow() {
        let body = br#"{"model":"m","messages":[
            {"role":"system","content":"You are terse."},
            {"role":"user","content":[{"type":"text","text":"What is in this image?"},
                {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}]}],
            "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","maxLength":3}}}],
            "max_tokens":100,"n":2,"temperature":0.5}"#;
        let e = estimate(body).unwrap();
        // system: "system"(2) + "You are terse."(4) + 4; user: "user"(1) + "text"(1) +
        // "What is in this image?"(6) + "image_url"(3) + image 85 + 4; chat 3.
        let messages = (2 + 4 + 4) + (1 + 1 + 6 + 3 + 85 + 4) + 3;
        // tools: "function"(2) + "f"(1) + "object"(2) + 3 (a number: 1).
        let tools = 2 + 1 + 2 + 1;
        assert_eq!(e.prompt, messages + tools);
        assert_eq!(e.completion, Some(200));
        assert_eq!(e.reserve(), messages + tools + 200);
    }

    #[test]
    fn completions_embeddings_and_responses_count_their_input() {
        let e = estimate(br#"{"prompt":"abcdefgh","max_tokens":5}"#).unwrap();
        assert_eq!((e.prompt, e.completion), (2, Some(5)));
        let e = estimate(br#"{"input":[[1,2,3],[4]]}"#).unwrap();
        assert_eq!((e.prompt, e.completion), (4, None));
        let e = estimate(br#"{"input":"abcd","max_output_tokens":7,"max_tokens":null}"#).unwrap();
        assert_eq!((e.prompt, e.completion), (1, Some(7)));
        // max_completion_tokens wins over the deprecated max_tokens.
        let e = estimate(br#"{"max_tokens":9,"max_completion_tokens":3}"#).unwrap();
        assert_eq!(e.completion, Some(3));
    }

    #[test]
    fn bodies_that_are_not_json_objects_are_errors() {
        assert!(estimate(b"not json").is_err());
        assert!(estimate(b"[1]").is_err());
        assert!(estimate(br#"{"max_tokens":"many"}"#).is_err());
        assert!(estimate(br#"{"messages":"hi"}"#).is_err());
        assert_eq!(estimate(b"{}").unwrap(), Estimate::default());
    }

    #[test]
    fn openai_models_are_counted_by_their_vocabulary() {
        let body = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hello, world! How are you today?"}]}"#;
        let exact = estimate_with(body, Tokenizer::of(Some("gpt-4o"))).unwrap();
        // OpenAI's cookbook count: 3 to prime the answer, 4 per message (3 + the role's 1
        // token, "user"), and the content's 9.
        assert_eq!(exact.prompt, 3 + 4 + 1 + 9);
        let rough = estimate(body).unwrap();
        assert_eq!(
            rough.prompt,
            3 + 4 + 1 + text_tokens("Hello, world! How are you today?")
        );
        // The thread goes back to the rule of thumb afterwards.
        assert_eq!(estimate(body).unwrap(), rough);
    }

    proptest! {
        /// A longer message never makes a smaller estimate, and escapes count as the text
        /// they stand for.
        #[test]
        fn estimates_grow_with_the_text(a in "\\PC{0,60}", b in "\\PC{0,60}") {
            let body = |s: &str| {
                serde_json::json!({"messages": [{"role": "user", "content": s}]}).to_string()
            };
            let short = estimate(body(&a).as_bytes()).unwrap().prompt;
            let long = estimate(body(&format!("{a}{b}")).as_bytes()).unwrap().prompt;
            prop_assert!(long >= short);
            prop_assert_eq!(short, 3 + 4 + 1 + text_tokens(&a));
        }
    }
}
