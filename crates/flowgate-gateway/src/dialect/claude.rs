//! Claude clients (`kind = "anthropic"` routes): their Messages API request becomes the
//! OpenAI request every later stage works on ([`request`]), and the OpenAI answer, whoever
//! made it (a provider, the cache, the gateway's own error), goes back to them in the
//! Messages API's shape ([`answer`]): a message, an event stream, or an Anthropic error
//! body with the status kept.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use flowgate_http::BoxError;
use flowgate_providers::anthropic::clients::{self, Ask};
use http::{HeaderValue, Response, header};
use http_body::{Body, Frame, SizeHint};

use crate::error::ProxyError;

/// The path a Claude client's request takes once it is OpenAI's.
pub(crate) const OPENAI_PATH: &str = "/v1/chat/completions";

/// The largest whole answer or error translated.
const MAX_WHOLE: usize = 64 * 1024 * 1024;

/// A Claude client's request body as OpenAI's, and what its answer needs.
pub(crate) fn request(body: &[u8]) -> Result<(Bytes, Ask), ProxyError> {
    let (openai, ask) = clients::to_openai(body).map_err(ProxyError::Unsupported)?;
    Ok((Bytes::from(openai), ask))
}

/// `resp` (OpenAI's shape) as the Claude client that asked `ask` gets it.
pub(crate) fn answer<B>(resp: Response<B>, ask: Option<&Ask>) -> Response<ClaudeBody<B>> {
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let stream = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let model = ask.map(|a| a.model.clone()).unwrap_or_default();
    let how = if !parts.status.is_success() {
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        How::Error(parts.status.as_u16(), BytesMut::new())
    } else if stream {
        How::Stream(Box::new(clients::Stream::new(&model)))
    } else {
        How::Whole(model, BytesMut::new())
    };
    Response::from_parts(
        parts,
        ClaudeBody {
            inner: body,
            how,
            done: false,
        },
    )
}

/// An answer's body in the Messages API's shape.
#[derive(Debug)]
pub struct ClaudeBody<B> {
    inner: B,
    how: How,
    done: bool,
}

#[derive(Debug)]
enum How {
    /// A whole completion for the model the client named.
    Whole(String, BytesMut),
    Stream(Box<clients::Stream>),
    /// An error answer with its status.
    Error(u16, BytesMut),
}

impl<B> Body for ClaudeBody<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(f))) => match f.into_data() {
                    Ok(d) => Some(d),
                    // Trailers have no place in the Messages API's answers.
                    Err(_) => continue,
                },
                Poll::Ready(None) => None,
            };
            match (&mut this.how, frame) {
                (How::Stream(s), Some(data)) => {
                    let out = s.push(&data);
                    if s.is_finished() {
                        this.done = true;
                    }
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                    }
                }
                (How::Stream(s), None) => {
                    this.done = true;
                    let out = s.finish();
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                    }
                }
                (How::Whole(_, buf) | How::Error(_, buf), Some(data)) => {
                    if buf.len() + data.len() > MAX_WHOLE {
                        this.done = true;
                        return Poll::Ready(Some(Err(format!(
                            "the answer is larger than {MAX_WHOLE} bytes"
                        )
                        .into())));
                    }
                    buf.extend_from_slice(&data);
                }
                (How::Whole(model, buf), None) => {
                    this.done = true;
                    let m =
                        clients::message(buf, model).map_err(|e| -> BoxError { Box::new(e) })?;
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(m)))));
                }
                (How::Error(status, buf), None) => {
                    this.done = true;
                    let e = clients::error(*status, buf);
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(e)))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
