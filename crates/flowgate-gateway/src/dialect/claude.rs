//! Claude clients (`kind = "anthropic"` routes): their Messages API request becomes the
//! OpenAI request every later stage works on ([`request`]), and the OpenAI answer, whoever
//! made it (a provider, the cache, the gateway's own error), goes back to them in the
//! Messages API's shape ([`answer`]): a message, an event stream, or an Anthropic error
//! body with the status kept.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use flowgate_http::BoxError;
use flowgate_providers::anthropic::clients::{self, Ask};
use http::{HeaderValue, Response, header};
use http_body::{Body, Frame, SizeHint};

use crate::error::ProxyError;

/// The path a Claude client's request takes once it is OpenAI's.
pub(crate) const OPENAI_PATH: &str = "/v1/chat/completions";

/// A Claude client's request body as OpenAI's, and what its answer needs.
pub(crate) fn request(body: &[u8]) -> Result<(Bytes, Ask), ProxyError> {
    let (openai, ask) = clients::to_openai(body).map_err(ProxyError::Unsupported)?;
    Ok((Bytes::from(openai), ask))
}

/// `resp` (OpenAI's shape) as the Claude client that asked `ask` gets it: a stream
/// translated event by event; anything else (a whole answer, an error) read and
/// translated before its head goes, so that it is sent with its length in one write.
pub(crate) async fn answer<B>(resp: Response<B>, ask: Option<&Ask>) -> Response<ClaudeBody<B>>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    let (mut parts, mut body) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let ok = parts.status.is_success();
    let stream = ok
        && parts
            .headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let model = ask.map(|a| a.model.as_str()).unwrap_or_default();
    if stream {
        return Response::from_parts(
            parts,
            ClaudeBody::Stream {
                inner: body,
                s: Box::new(clients::Stream::new(model)),
                done: false,
            },
        );
    }
    let out = match super::read_all(&mut body, super::MAX_WHOLE).await {
        Ok(buf) if ok => clients::message(&buf, model).map_err(|e| e.to_string()),
        Ok(buf) => Ok(clients::error(parts.status.as_u16(), &buf)),
        Err(e) => Err(e),
    };
    let out = out.unwrap_or_else(|why| {
        tracing::warn!(error = %why, "an answer that does not translate for a Claude client");
        parts.status = http::StatusCode::BAD_GATEWAY;
        let e = format!(
            r#"{{"error":{{"message":"the answer does not read: {}"}}}}"#,
            why.replace('"', "'")
        );
        clients::error(502, e.as_bytes())
    });
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
    Response::from_parts(parts, ClaudeBody::Full(Some(Bytes::from(out))))
}

/// An answer's body in the Messages API's shape.
#[derive(Debug)]
pub enum ClaudeBody<B> {
    /// Translated event by event.
    Stream {
        inner: B,
        s: Box<clients::Stream>,
        done: bool,
    },
    /// Translated whole.
    Full(Option<Bytes>),
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
        let (inner, s, done) = match self.get_mut() {
            ClaudeBody::Full(b) => return Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ClaudeBody::Stream { inner, s, done } => (inner, s, done),
        };
        loop {
            if *done {
                return Poll::Ready(None);
            }
            let out = match Pin::new(&mut *inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    *done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(f))) => match f.into_data() {
                    Ok(data) => {
                        let out = s.push(&data);
                        *done = s.is_finished();
                        out
                    }
                    // Trailers have no place in the Messages API's answers.
                    Err(_) => continue,
                },
                Poll::Ready(None) => {
                    *done = true;
                    s.finish()
                }
            };
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClaudeBody::Full(b) => b.is_none(),
            ClaudeBody::Stream { done, .. } => *done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClaudeBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ClaudeBody::Stream { .. } => SizeHint::default(),
        }
    }
}
