//! A Bedrock response stream as OpenAI chunks: event-stream frames are decoded (their CRCs
//! checked), each `chunk` event's payload (`{"bytes": BASE64}`) decoded to the Messages
//! API event it carries and translated by [`anthropic::Translator`]; an `exception`
//! message (AWS's `throttlingException`, `modelStreamErrorException`...) ends the stream
//! with an OpenAI error event. A frame that does not decode, or an event of a type Bedrock
//! does not send, ends it the same way: the client reads a clean error, never a cut.

use base64::Engine;
use serde::Deserialize;

use crate::anthropic;
use crate::eventstream::{DecodeError, Decoder, Message};
use crate::openai::Usage;

/// The stream made no sense (reported to the client as an error event, and to the caller
/// for its logs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("{0}")]
    Frame(DecodeError),
    #[error("an event-stream message of type {0:?}")]
    UnknownMessage(String),
    #[error("an event of type {0:?}")]
    UnknownEvent(String),
    #[error("a chunk that does not read: {0}")]
    Chunk(String),
    #[error("{0}")]
    Event(anthropic::StreamError),
    #[error("the stream ended before the answer's last event")]
    Unfinished,
}

/// Translates one answer's stream.
#[derive(Debug)]
pub struct Stream {
    decoder: Decoder,
    translator: anthropic::Translator,
    /// The first thing that went wrong, once reported.
    failed: Option<StreamError>,
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow)]
    bytes: std::borrow::Cow<'a, str>,
}

#[derive(Deserialize)]
struct Exception<'a> {
    #[serde(borrow, default, alias = "Message")]
    message: Option<std::borrow::Cow<'a, str>>,
}

impl Stream {
    /// For an answer to `model` (the client's name for it) started at `created`.
    pub fn new(model: &str, created: u64, include_usage: bool, json_mode: bool) -> Self {
        Stream {
            decoder: Decoder::new(),
            translator: anthropic::Translator::new(model, created, include_usage, json_mode)
                .from_provider("bedrock"),
            failed: None,
        }
    }

    /// Whether the stream ended (its last event, or an error).
    pub fn is_finished(&self) -> bool {
        self.translator.is_finished()
    }

    /// The usage reported so far.
    pub fn usage(&self) -> Usage {
        self.translator.usage()
    }

    /// What went wrong, if the stream ended in an error of the upstream's making.
    pub fn failure(&self) -> Option<&StreamError> {
        self.failed.as_ref()
    }

    /// The OpenAI events for the bytes `chunk` completes.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.is_finished() {
            return out;
        }
        match self.decoder.push(chunk) {
            Ok(messages) => {
                for m in messages {
                    if let Err(e) = self.message(&m, &mut out) {
                        self.fail(e, &mut out);
                    }
                    if self.is_finished() {
                        break;
                    }
                }
            }
            Err(e) => self.fail(StreamError::Frame(e), &mut out),
        }
        out
    }

    /// The events for the end of the upstream's bytes: an error event if it ended inside
    /// a frame or before the answer's last event.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.is_finished() {
            return out;
        }
        let e = match self.decoder.finish() {
            Err(e) => StreamError::Frame(e),
            Ok(()) => StreamError::Unfinished,
        };
        self.fail(e, &mut out);
        out
    }

    fn fail(&mut self, e: StreamError, out: &mut Vec<u8>) {
        self.translator
            .fail("upstream_error", &format!("the stream broke: {e}"), out);
        self.failed = Some(e);
    }

    fn message(&mut self, m: &Message, out: &mut Vec<u8>) -> Result<(), StreamError> {
        match m.header(":message-type").unwrap_or("event") {
            "event" => match m.header(":event-type") {
                Some("chunk") => {
                    let c: Chunk<'_> = serde_json::from_slice(&m.payload)
                        .map_err(|e| StreamError::Chunk(e.to_string()))?;
                    let event = base64::engine::general_purpose::STANDARD
                        .decode(c.bytes.as_bytes())
                        .map_err(|e| StreamError::Chunk(e.to_string()))?;
                    self.translator
                        .push_event(&event, out)
                        .map_err(StreamError::Event)
                }
                other => Err(StreamError::UnknownEvent(other.unwrap_or("").to_string())),
            },
            "exception" => {
                let kind = m.header(":exception-type").unwrap_or("exception");
                let message = serde_json::from_slice::<Exception<'_>>(&m.payload)
                    .ok()
                    .and_then(|e| e.message.map(|m| m.into_owned()))
                    .unwrap_or_default();
                let code = match kind {
                    "throttlingException" | "serviceQuotaExceededException" => {
                        "rate_limit_exceeded"
                    }
                    "serviceUnavailableException" | "modelNotReadyException" => {
                        "upstream_overloaded"
                    }
                    "modelTimeoutException" => "upstream_timeout",
                    _ => "upstream_error",
                };
                self.translator
                    .fail(code, &format!("{kind}: {message}"), out);
                Ok(())
            }
            "error" => {
                let code = m.header(":error-code").unwrap_or("error").to_string();
                let message = m.header(":error-message").unwrap_or("").to_string();
                self.translator
                    .fail("upstream_error", &format!("{code}: {message}"), out);
                Ok(())
            }
            other => Err(StreamError::UnknownMessage(other.to_string())),
        }
    }
}
