//! A pool whose servers speak another API than the client (`provider`): its request is
//! translated for it at each attempt on it (so that a fallback to another provider
//! translates for its own target), and its answer back before anything reaches the
//! client's watches (the token meter and the cache see OpenAI's shape). The translations
//! themselves are `flowgate_providers`'.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use flowgate_config::{PoolConfig, Provider};
use flowgate_http::BoxError;
use flowgate_http::pool::ResponseBody;
use flowgate_providers::anthropic;
use http_body::{Body, Frame, SizeHint};

use crate::error::ProxyError;

/// `max_tokens` for Anthropic when the client sets none (until the model catalog says).
const DEFAULT_MAX_TOKENS: u64 = 4096;
/// The largest whole answer translated (larger is a cut answer).
const MAX_WHOLE: usize = 64 * 1024 * 1024;
/// The largest error body read to translate it.
pub(crate) const MAX_ERROR: usize = 256 * 1024;

/// What reading a translated answer needs to know.
#[derive(Debug, Clone)]
pub(crate) struct Translation {
    pub provider: Provider,
    /// The model as the client named it: the answer names it so.
    pub model: String,
    pub include_usage: bool,
    pub json_mode: bool,
}

/// The request path on a pool of `provider`, when it is not the client's.
pub(crate) fn target_path(provider: Provider) -> Option<&'static str> {
    match provider {
        Provider::OpenAi => None,
        Provider::Anthropic => Some("/v1/messages"),
    }
}

/// The fields a request to `provider` carries besides its credential.
pub(crate) fn fields(provider: Provider) -> Option<(&'static http::HeaderName, &'static [u8])> {
    static VERSION: http::HeaderName = http::HeaderName::from_static("anthropic-version");
    match provider {
        Provider::OpenAi => None,
        Provider::Anthropic => Some((&VERSION, anthropic::VERSION.as_bytes())),
    }
}

/// The client's fields a request to `provider` leaves out: its `Authorization` is a
/// credential for the API it spoke (OpenAI's), never to be handed to another provider (the
/// pool's own key goes in that provider's field).
pub(crate) fn omitted(provider: Provider) -> &'static [&'static http::HeaderName] {
    match provider {
        Provider::OpenAi => &[],
        Provider::Anthropic => &[&http::header::AUTHORIZATION],
    }
}

/// `body` (an OpenAI chat request) for `pool`'s provider, when it needs translating.
pub(crate) fn request(
    pool: &PoolConfig,
    body: &[u8],
) -> Result<Option<(Bytes, Translation)>, ProxyError> {
    if pool.provider == Provider::OpenAi {
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ProxyError::Unsupported(flowgate_providers::Unsupported::new(
            "",
            format!("the request body is not JSON: {e}"),
        ))
    })?;
    let model = v
        .get("model")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_string();
    let target = anthropic::Target {
        model: &model,
        default_max_tokens: DEFAULT_MAX_TOKENS,
    };
    let t = anthropic::translate(&v, &target).map_err(ProxyError::Unsupported)?;
    Ok(Some((
        Bytes::from(t.body.to_string()),
        Translation {
            provider: pool.provider,
            model,
            include_usage: t.include_usage,
            json_mode: t.json_mode,
        },
    )))
}

/// An answer's body as the client gets it: the upstream's own, or translated.
#[derive(Debug)]
pub enum AnswerBody {
    Native(ResponseBody),
    Translated(Box<Translated>),
    /// An answer made whole here (a translated error).
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
    /// The whole answer is read, then translated at once.
    Whole {
        buf: BytesMut,
        t: Translation,
        created: u64,
    },
    /// Each event is translated as it comes.
    Stream(anthropic::Translator),
}

impl AnswerBody {
    /// `inner` translated as `t` says (a streamed answer when `stream`), made at `created`.
    pub(crate) fn translated(
        inner: ResponseBody,
        t: Translation,
        created: u64,
        stream: bool,
    ) -> Self {
        let how = if stream {
            How::Stream(anthropic::Translator::new(
                &t.model,
                created,
                t.include_usage,
                t.json_mode,
            ))
        } else {
            How::Whole {
                buf: BytesMut::new(),
                t,
                created,
            }
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
                How::Whole { buf, t, created } => {
                    if let Some(data) = frame {
                        if buf.len() + data.len() > MAX_WHOLE {
                            self.done = true;
                            return Poll::Ready(Some(Err(format!(
                                "the upstream's answer is larger than {MAX_WHOLE} bytes"
                            )
                            .into())));
                        }
                        buf.extend_from_slice(&data);
                    }
                    if end {
                        self.done = true;
                        let c = anthropic::completion(buf, &t.model, *created, t.json_mode)
                            .map_err(|e| -> BoxError { Box::new(e) })?;
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(c)))));
                    }
                }
            }
        }
    }
}

/// Reads `body` whole, up to `limit` bytes (an error answer's, to translate it).
pub(crate) async fn read_whole(mut body: ResponseBody, limit: usize) -> Bytes {
    let mut buf = BytesMut::new();
    while let Some(Ok(frame)) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
    {
        if let Ok(d) = frame.into_data() {
            let room = limit.saturating_sub(buf.len());
            buf.extend_from_slice(&d[..d.len().min(room)]);
            if room <= d.len() {
                break;
            }
        }
    }
    buf.freeze()
}

/// An error answer of a translated pool (its status and whole body) as the client gets it.
pub(crate) fn error(t: &Translation, status: u16, body: &[u8]) -> (u16, Bytes) {
    let (status, v) = match t.provider {
        Provider::Anthropic => anthropic::error(status, body),
        Provider::OpenAi => (status, serde_json::Value::Null),
    };
    (status, Bytes::from(v.to_string()))
}
