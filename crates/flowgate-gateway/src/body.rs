//! Body types of the proxy hop.
//!
//! [`ReqBody`] goes upstream: either bytes already read (openai routes) or the client's body
//! streamed through with a size limit (http routes; never buffered). [`ProxyBody`] goes to
//! the client: either a local answer or the upstream's body decoded straight off the upstream
//! connection, frame by frame as bytes arrive (SSE chunks are forwarded as they come), with a
//! read timeout between frames. When the upstream body ends, its connection goes back to the
//! pool.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use prometheus_client::metrics::gauge::Gauge;
use tokio::time::Sleep;

use crate::admission::TokenMeter;
use crate::caching::Tee;
use crate::error::ProxyError;
use crate::queues::Permits;
use crate::upstream::Lease;
use crate::upstream::h1::Decoder;
use flowgate_cache::Subscription;

/// Boxed error of a body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The client's body grew past the configured limit while streaming.
#[derive(Debug, thiserror::Error)]
#[error("request body is larger than the limit of {0} bytes")]
pub struct BodyLimitExceeded(pub u64);

/// The upstream sent nothing for longer than the pool's read timeout.
#[derive(Debug, thiserror::Error)]
#[error("upstream sent nothing for {}", flowgate_config::format_duration(*.0))]
pub struct ReadTimeout(pub Duration);

/// A request body as the listener hands it to the gateway.
#[derive(Debug)]
pub enum ClientBody {
    /// All of it (or nothing), read with the head: most request bodies.
    Full(Option<Bytes>),
    /// The rest of an HTTP/1.1 body, read off the connection as it is polled.
    H1(crate::server::Incoming),
    /// An HTTP/2 stream's body.
    H2(hyper::body::Incoming),
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ClientBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ClientBody::H1(b) => Pin::new(b).poll_frame(cx),
            ClientBody::H2(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Full(b) => b.is_none(),
            ClientBody::H1(b) => b.is_end_stream(),
            ClientBody::H2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ClientBody::H1(b) => b.size_hint(),
            ClientBody::H2(b) => b.size_hint(),
        }
    }
}

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
        let frame = frame.map_err(|e| ProxyError::BodyRead(e.to_string()))?;
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

/// A response body on its way to the client.
#[derive(Debug)]
pub struct ProxyBody {
    kind: Kind,
    /// Reads the answer's token usage for the token limits (boxed: only token-limited
    /// requests have one).
    meter: Option<Box<TokenMeter>>,
    /// The request's concurrency permits: given back when the body ends or is dropped.
    permits: Option<Box<Permits>>,
    _guard: Option<InFlightGuard>,
}

#[derive(Debug)]
enum Kind {
    Full(Option<Bytes>),
    Upstream(UpstreamBody),
    /// A stream read from upstream by another task and shared with other clients.
    Shared(Subscription),
}

#[derive(Debug)]
struct UpstreamBody {
    lease: Option<Lease>,
    decoder: Decoder,
    keep_alive: bool,
    read_timeout: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    /// The timer must be pushed back before the next wait (a frame arrived since).
    stale_timer: bool,
    /// Copies the body into the cache on its way (boxed: only cache fills have one).
    tee: Option<Box<Tee>>,
}

impl From<Bytes> for ProxyBody {
    fn from(b: Bytes) -> Self {
        ProxyBody {
            kind: Kind::Full(Some(b)),
            meter: None,
            permits: None,
            _guard: None,
        }
    }
}

impl ProxyBody {
    /// Streams the body of the response being read on `lease`'s connection, framed as
    /// `decoder` says; the connection is returned to the pool at the end when `keep_alive`.
    pub fn upstream(
        lease: Lease,
        decoder: Decoder,
        keep_alive: bool,
        read_timeout: Duration,
    ) -> Self {
        ProxyBody {
            kind: Kind::Upstream(UpstreamBody {
                lease: Some(lease),
                decoder,
                keep_alive,
                read_timeout,
                timer: None,
                stale_timer: false,
                tee: None,
            }),
            meter: None,
            permits: None,
            _guard: None,
        }
    }

    /// A client's copy of a shared upstream stream.
    pub fn shared(s: Subscription) -> Self {
        ProxyBody {
            kind: Kind::Shared(s),
            meter: None,
            permits: None,
            _guard: None,
        }
    }

    /// Attaches the in-flight guard, released when the body is finished or dropped.
    pub fn with_guard(mut self, g: InFlightGuard) -> Self {
        self._guard = Some(g);
        self
    }

    /// Copies the upstream body into the cache as it passes (no effect on other bodies).
    pub fn with_tee(mut self, tee: Option<Box<Tee>>) -> Self {
        if let Kind::Upstream(up) = &mut self.kind {
            up.tee = tee;
        }
        self
    }

    /// Meters the tokens of the answer as it passes, to settle the request's token limits.
    pub fn with_meter(mut self, m: Option<TokenMeter>) -> Self {
        self.meter = m.map(Box::new);
        self
    }

    /// Holds the request's concurrency permits until the body is finished or dropped; the
    /// first data frame is the answer's first byte for adaptive limits.
    pub fn with_permits(mut self, p: Option<Permits>) -> Self {
        self.permits = p.map(Box::new);
        self
    }
}

impl UpstreamBody {
    /// The body is complete: the connection goes back to the pool, the copy to the cache.
    fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.release(self.keep_alive);
        }
        if let Some(tee) = self.tee.take() {
            tee.finish();
        }
    }

    /// The body failed: the connection is closed, nothing is cached.
    fn fail(&mut self) {
        self.lease = None;
        self.tee = None;
    }

    #[allow(clippy::disallowed_methods)] // timers follow tokio's clock (paused in tests)
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = tokio::time::Instant::now() + self.read_timeout;
        let timer = match &mut self.timer {
            Some(t) => {
                if self.stale_timer {
                    t.as_mut().reset(deadline);
                }
                t
            }
            None => self
                .timer
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.stale_timer = false;
        timer.as_mut().poll(cx)
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = this.kind.poll_frame(cx);
        if let Some(p) = &mut this.permits {
            if let Poll::Ready(Some(Ok(f))) = &polled
                && f.is_data()
            {
                p.first_byte();
            }
            // Given back as soon as the body ends.
            if matches!(polled, Poll::Ready(None)) || this.kind.is_end_stream() {
                this.permits = None;
            }
        }
        if let Some(m) = &mut this.meter {
            if let Poll::Ready(Some(Ok(f))) = &polled
                && let Some(data) = f.data_ref()
            {
                m.push(data);
            }
            // Settled as soon as the body ends, before the client has its last bytes.
            if matches!(polled, Poll::Ready(None)) || this.kind.is_end_stream() {
                this.meter = None;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.kind.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.kind.size_hint()
    }
}

impl Kind {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self {
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream(up) => {
                let Some(wire) = up.lease.as_mut().and_then(Lease::wire) else {
                    return Poll::Ready(None);
                };
                match wire.poll_body(&mut up.decoder, cx) {
                    Poll::Ready(Some(Ok(data))) => {
                        up.stale_timer = true;
                        if let Some(tee) = &mut up.tee
                            && !tee.push(&data)
                        {
                            up.tee = None;
                        }
                        if up.decoder.is_done() {
                            up.release();
                        }
                        Poll::Ready(Some(Ok(Frame::data(data))))
                    }
                    Poll::Ready(Some(Err(e))) => {
                        up.fail();
                        Poll::Ready(Some(Err(Box::new(e))))
                    }
                    Poll::Ready(None) => {
                        up.release();
                        Poll::Ready(None)
                    }
                    Poll::Pending => match up.poll_timer(cx) {
                        Poll::Ready(()) => {
                            up.fail();
                            Poll::Ready(Some(Err(Box::new(ReadTimeout(up.read_timeout)))))
                        }
                        Poll::Pending => Poll::Pending,
                    },
                }
            }
            Kind::Shared(s) => match s.poll_next(cx) {
                Poll::Ready(Some(Ok(data))) => Poll::Ready(Some(Ok(Frame::data(data)))),
                Poll::Ready(Some(Err(cut))) => Poll::Ready(Some(Err(Box::new(cut)))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Kind::Full(b) => b.is_none(),
            Kind::Upstream(up) => up.decoder.is_done(),
            Kind::Shared(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Kind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Upstream(up) => up
                .decoder
                .remaining()
                .map_or_else(SizeHint::default, SizeHint::with_exact),
            Kind::Shared(_) => SizeHint::default(),
        }
    }
}
