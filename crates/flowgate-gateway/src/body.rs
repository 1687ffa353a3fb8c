//! Body types of the proxy hop.
//!
//! [`ReqBody`] goes upstream: either bytes already read (openai routes) or the client's body
//! streamed through with a size limit (http routes; never buffered). [`ProxyBody`] goes to
//! the client: a local answer, a shared stream, or the upstream's body
//! ([`flowgate_http::pool::ResponseBody`]: frame by frame as bytes arrive) with the
//! policies that watch it composed around it ([`Watch`]).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use flowgate_cache::Subscription;
use flowgate_http::BoxError;
use flowgate_http::server::{BodyTimeout, ClientBody};
use http_body::{Body, Frame, SizeHint};
use prometheus_client::metrics::gauge::Gauge;

use crate::error::ProxyError;
use crate::watch::Watched;

/// The client's body grew past the configured limit while streaming.
#[derive(Debug, thiserror::Error)]
#[error("request body is larger than the limit of {0} bytes")]
pub struct BodyLimitExceeded(pub u64);

/// A request body on its way upstream.
#[derive(Debug)]
pub enum ReqBody {
    Full(Option<Bytes>),
    Stream {
        inner: ClientBody,
        seen: u64,
        limit: u64,
    },
}

/// Reads a request's whole body (413 past `limit`), for the stages that need all of it.
pub async fn read_whole(mut incoming: ClientBody, limit: u64) -> Result<Bytes, ProxyError> {
    if let ClientBody::Full(b) = &mut incoming {
        let b = b.take().unwrap_or_default();
        if b.len() as u64 > limit {
            return Err(ProxyError::BodyTooLarge { limit });
        }
        return Ok(b);
    }
    let mut first: Option<Bytes> = None;
    let mut more: Option<BytesMut> = None;
    let mut seen = 0u64;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut incoming).poll_frame(cx)).await
    {
        let frame = frame.map_err(|e| body_error(e.as_ref()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len() as u64;
        if seen > limit {
            return Err(ProxyError::BodyTooLarge { limit });
        }
        // Most bodies arrive in one frame: keep it as is, and copy only when more follow.
        match (&mut first, &mut more) {
            (None, _) => first = Some(data),
            (Some(f), None) => {
                let mut b = BytesMut::with_capacity(f.len() + data.len());
                b.extend_from_slice(f);
                b.extend_from_slice(&data);
                more = Some(b);
            }
            (Some(_), Some(b)) => b.extend_from_slice(&data),
        }
    }
    Ok(match (first, more) {
        (_, Some(b)) => b.freeze(),
        (Some(f), None) => f,
        (None, None) => Bytes::new(),
    })
}

/// The error of a client's body that broke: a 408 when it stopped arriving, else a 400.
pub fn body_error(e: &(dyn std::error::Error + 'static)) -> ProxyError {
    match find_cause::<BodyTimeout>(e) {
        Some(t) => ProxyError::BodyTimeout(t.0),
        None => ProxyError::BodyRead(e.to_string()),
    }
}

/// The first error of type `E` in `err`'s source chain.
pub(crate) fn find_cause<'a, E: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        cur = e.source();
    }
    None
}

impl ReqBody {
    pub fn full(b: Bytes) -> Self {
        if b.is_empty() {
            ReqBody::Full(None)
        } else {
            ReqBody::Full(Some(b))
        }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ReqBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ReqBody::Stream { inner, seen, limit } => {
                match ready!(Pin::new(inner).poll_frame(cx)) {
                    Some(Ok(frame)) => {
                        if let Some(d) = frame.data_ref() {
                            *seen += d.len() as u64;
                            if *seen > *limit {
                                return Poll::Ready(Some(Err(Box::new(BodyLimitExceeded(*limit)))));
                            }
                        }
                        Poll::Ready(Some(Ok(frame)))
                    }
                    Some(Err(e)) => Poll::Ready(Some(Err(e))),
                    None => Poll::Ready(None),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Full(b) => b.is_none(),
            ReqBody::Stream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ReqBody::Full(None) => SizeHint::with_exact(0),
            ReqBody::Stream { inner, .. } => inner.size_hint(),
        }
    }
}

/// Counts a request as in flight until its response body is done or dropped.
#[derive(Debug)]
pub struct InFlightGuard(Gauge);

impl InFlightGuard {
    pub fn new(g: &Gauge) -> Self {
        g.inc();
        InFlightGuard(g.clone())
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// An upstream answer's body as it is read: copied into the cache on a fill, holding the
/// request's concurrency permits until it ends.
pub type UpstreamBody = Watched<Watched<crate::dialect::AnswerBody>>;

/// A response body on its way to the client: its source, accounted for (tokens, price,
/// the request's record), and counted in flight until it is done or dropped.
#[derive(Debug)]
pub struct ProxyBody {
    inner: Watched<Source>,
    _guard: Option<InFlightGuard>,
}

#[derive(Debug)]
enum Source {
    Full(Option<Bytes>),
    Upstream(UpstreamBody),
    /// A stream read from upstream by another task and shared with other clients.
    Shared(Subscription),
    /// An answer in the dialect of a client that speaks another API than OpenAI's.
    Dialect(Box<crate::dialect::claude::ClaudeBody<ProxyBody>>),
}

impl From<Bytes> for ProxyBody {
    fn from(b: Bytes) -> Self {
        ProxyBody::of(Source::Full(Some(b)))
    }
}

impl ProxyBody {
    fn of(source: Source) -> Self {
        ProxyBody {
            inner: Watched::bare(source),
            _guard: None,
        }
    }

    /// Streams an upstream answer's body.
    pub fn upstream(body: UpstreamBody) -> Self {
        ProxyBody::of(Source::Upstream(body))
    }

    /// A client's copy of a shared upstream stream.
    pub fn shared(s: Subscription) -> Self {
        ProxyBody::of(Source::Shared(s))
    }

    /// An answer translated for a Claude client.
    pub(crate) fn claude(b: crate::dialect::claude::ClaudeBody<ProxyBody>) -> Self {
        ProxyBody::of(Source::Dialect(Box::new(b)))
    }

    /// Attaches the in-flight guard, released when the body is finished or dropped.
    pub fn with_guard(mut self, g: InFlightGuard) -> Self {
        self._guard = Some(g);
        self
    }

    /// Puts the request's account on the answer (its tokens, their
    /// price, the request's record), which sees it pass.
    pub(crate) fn with_account<W: crate::watch::Watch + 'static>(mut self, a: Box<W>) -> Self {
        self.inner.set(Some(a));
        self
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Body for Source {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Source::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Source::Upstream(up) => Pin::new(up).poll_frame(cx),
            Source::Shared(s) => match s.poll_next(cx) {
                Poll::Ready(Some(Ok(data))) => Poll::Ready(Some(Ok(Frame::data(data)))),
                Poll::Ready(Some(Err(cut))) => Poll::Ready(Some(Err(Box::new(cut)))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
            Source::Dialect(d) => Pin::new(d.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Source::Full(b) => b.is_none(),
            Source::Upstream(up) => up.is_end_stream(),
            Source::Shared(_) => false,
            Source::Dialect(d) => d.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Source::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Source::Full(None) => SizeHint::with_exact(0),
            Source::Upstream(up) => up.size_hint(),
            Source::Shared(_) | Source::Dialect(_) => SizeHint::default(),
        }
    }
}
