//! HTTP/2 client connections, served by hyper: h2c (prior knowledge, the preface read by the
//! HTTP/1.1 connection first and replayed by [`Rewind`]) or h2 chosen by ALPN. A connection
//! that does not answer a PING within the head deadline is closed (a preface and then
//! silence), and so is one without a stream for as long (idle, like an HTTP/1.1 keep-alive
//! connection); when the server stops, streams in flight finish after a GOAWAY.

use std::convert::Infallible;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, watch};

use super::body::H2Body;
use super::service::{Limits, Peer, Service};
use super::{ClientBody, stopped};

/// Serves an HTTP/2 connection with hyper until it ends or the server stops (then
/// gracefully: streams in flight finish).
pub(super) async fn serve<S: Service, T>(
    svc: Arc<S>,
    io: T,
    peer: Peer,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = Arc::new(peer);
    let activity = Arc::new(Activity::default());
    let streams = activity.clone();
    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let svc = svc.clone();
        let peer = peer.clone();
        let stream = streams.start();
        let timeout = limits.body_read_timeout;
        let req = req.map(|b| ClientBody::H2(H2Body::new(b, timeout)));
        async move {
            let resp = svc.call(req, &peer).await;
            Ok::<_, Infallible>(resp.map(|body| Counted {
                body,
                _stream: stream,
            }))
        }
    });
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    // A peer that does not answer a PING within the head deadline is gone, or never was an
    // HTTP/2 client (a preface and then nothing): the connection is closed.
    b.timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(limits.header_read_timeout))
        .keep_alive_timeout(limits.header_read_timeout);
    let mut conn = pin!(b.serve_connection(TokioIo::new(io), svc));
    tokio::select! {
        _ = conn.as_mut() => return,
        () = stopped(&mut stop) => {}
        () = activity.idle(limits.header_read_timeout) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// The streams open on a connection, for its idle timeout.
#[derive(Debug, Default)]
struct Activity {
    open: AtomicUsize,
    /// Bumped at each stream's start and end.
    epoch: AtomicU64,
    changed: Notify,
}

impl Activity {
    fn start(self: &Arc<Self>) -> StreamGuard {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.bump();
        StreamGuard(self.clone())
    }

    fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// Resolves once the connection has had no stream for `timeout`.
    async fn idle(&self, timeout: Duration) {
        loop {
            let changed = self.changed.notified();
            let mut changed = pin!(changed);
            changed.as_mut().enable();
            if self.open.load(Ordering::Relaxed) > 0 {
                changed.await;
                continue;
            }
            let epoch = self.epoch.load(Ordering::Relaxed);
            tokio::select! {
                () = tokio::time::sleep(timeout) => {
                    if self.epoch.load(Ordering::Relaxed) == epoch {
                        return;
                    }
                }
                () = changed => {}
            }
        }
    }
}

/// Held by a stream from its request to the end of its answer (or until dropped).
#[derive(Debug)]
struct StreamGuard(Arc<Activity>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        self.0.bump();
    }
}

/// An answer's body, holding its stream open until it is done.
#[derive(Debug)]
pub(super) struct Counted<B> {
    body: B,
    _stream: StreamGuard,
}

impl<B: Body + Unpin> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A stream whose first bytes were already read: they are read again first.
pub(super) struct Rewind<T> {
    start: Bytes,
    inner: T,
}

impl<T> Rewind<T> {
    pub(super) fn new(start: Bytes, inner: T) -> Self {
        Rewind { start, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.start.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = this.start.len().min(buf.remaining());
        buf.put_slice(&this.start[..n]);
        this.start.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
