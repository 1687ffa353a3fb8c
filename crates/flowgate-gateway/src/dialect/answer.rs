//! A translated streamed answer's body, translated event by event as it streams
//! (Anthropic's server-sent events, Bedrock's event-stream frames, Gemini's events). A whole
//! answer is read and translated before its head is sent ([`super::whole`]), so that it
//! goes out with its length in one write.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use flowgate_config::Provider;
use flowgate_http::BoxError;
use flowgate_http::pool::ResponseBody;
use flowgate_providers::{anthropic, bedrock, gemini};
use http_body::{Body, Frame, SizeHint};

use super::Translation;

/// An answer's body as the client gets it: the upstream's own, or translated.
#[derive(Debug)]
pub enum AnswerBody {
    Native(ResponseBody),
    Translated(Box<Translated>),
    /// An answer made whole here (a translated answer or error).
    Full(Option<Bytes>),
}

/// A translated answer in the making.
#[derive(Debug)]
pub struct Translated {
    inner: ResponseBody,
    how: How,
    done: bool,
}

#[derive(Debug)]
enum How {
    /// Each event is translated as it comes.
    Stream(anthropic::Translator),
    /// Each event-stream frame is translated as it comes.
    Bedrock(bedrock::Stream),
    /// Each Gemini event is translated as it comes.
    Gemini(Box<gemini::Stream>),
}

impl AnswerBody {
    /// The streamed answer `inner`, translated as `t` says, made at `created`.
    pub(crate) fn translated(inner: ResponseBody, t: &Translation, created: u64) -> Self {
        let how = if t.provider == Provider::Gemini {
            How::Gemini(Box::new(gemini::Stream::new(
                &t.model,
                created,
                t.include_usage,
            )))
        } else if t.provider == Provider::Bedrock {
            How::Bedrock(bedrock::Stream::new(
                &t.model,
                created,
                t.include_usage,
                t.json_mode,
            ))
        } else {
            How::Stream(anthropic::Translator::new(
                &t.model,
                created,
                t.include_usage,
                t.json_mode,
            ))
        };
        AnswerBody::Translated(Box::new(Translated {
            inner,
            how,
            done: false,
        }))
    }
}

impl Body for AnswerBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            AnswerBody::Native(b) => Pin::new(b).poll_frame(cx),
            AnswerBody::Translated(t) => t.poll(cx),
            AnswerBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            AnswerBody::Native(b) => b.is_end_stream(),
            AnswerBody::Translated(t) => t.done,
            AnswerBody::Full(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            AnswerBody::Native(b) => b.size_hint(),
            AnswerBody::Translated(_) => SizeHint::default(),
            AnswerBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

impl Translated {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(f))) => f.into_data().ok(),
                Poll::Ready(None) => None,
            };
            let end = frame.is_none();
            match &mut self.how {
                How::Stream(tr) => {
                    if let Some(data) = frame {
                        let out = tr.push(&data).map_err(|e| -> BoxError { Box::new(e) })?;
                        if tr.is_finished() {
                            self.done = true;
                        }
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                        }
                    } else {
                        self.done = true;
                        if !tr.is_finished() {
                            return Poll::Ready(Some(Err(
                                "the upstream's stream ended before its last event".into(),
                            )));
                        }
                    }
                }
                How::Gemini(s) => {
                    let out = match frame {
                        Some(data) => s.push(&data),
                        None => s.finish(),
                    };
                    if s.is_finished() || end {
                        self.done = true;
                    }
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                    }
                }
                How::Bedrock(s) => {
                    let out = match frame {
                        Some(data) => s.push(&data),
                        None => s.finish(),
                    };
                    if s.is_finished() {
                        self.done = true;
                        if let Some(e) = s.failure() {
                            tracing::warn!(error = %e, "bedrock's stream broke");
                        }
                    }
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                    }
                    if end {
                        self.done = true;
                    }
                }
            }
        }
    }
}
