//! HTTP/2 to upstreams, on the `h2` crate: one [`H2Conn`] carries many requests at once,
//! each on a stream of its own, within what the server allows
//! (`SETTINGS_MAX_CONCURRENT_STREAMS`). A task per connection drives it and sends PINGs:
//! a server that does not answer one in time is taken for gone and the connection closed.
//! A request the server did not process (after a GOAWAY, or refused with
//! `REFUSED_STREAM`) fails as [`ExchangeError::Unprocessed`]: safe to send again on another
//! connection.

use std::any::Any;
use std::future::poll_fn;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::{Reason, RecvStream, SendStream};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, header};
use http_body::Body;

use super::wire::{
    ExchangeError, ReqFraming, RequestHead, ResponseFraming, ResponseHead, SPARE_FIELDS,
};
use crate::BoxError;
use crate::stream::Stream;

/// Each stream's receive window: what a server may send of one answer before the gateway
/// has passed it on (HTTP/2's default of 64 KiB would make a large answer wait for a round
/// trip every 64 KiB).
const STREAM_WINDOW: u32 = 1024 * 1024;
/// The connection's receive window, over all its streams.
const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

/// The connection-specific fields HTTP/2 forbids (RFC 9113 §8.2.2); `te` is allowed only
/// as `trailers`.
const CONNECTION_FIELDS: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::UPGRADE,
    header::HOST,
];

/// An HTTP/2 connection to an upstream. When the last handle to it is dropped, its
/// driver says GOAWAY and closes it (each stream holds a handle, so none is cut off).
pub struct H2Conn {
    send: SendRequest<Bytes>,
    /// Requests holding a stream of it now.
    streams: AtomicUsize,
    /// Closed, a GOAWAY received, or a PING unanswered: no new request may use it.
    dead: Arc<AtomicBool>,
    /// `https` or `http`, for the requests' `:scheme`.
    scheme: &'static str,
    /// What the owner keeps while the connection lives (its pool's slot).
    _hold: Box<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for H2Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Conn")
            .field("streams", &self.streams())
            .field("dead", &self.is_dead())
            .finish_non_exhaustive()
    }
}

impl H2Conn {
    /// Opens HTTP/2 on `io` (TLS with `h2` agreed by ALPN, or cleartext by prior
    /// knowledge), PINGing the server every `keepalive` and closing the connection when a
    /// PING is not answered within `pong_timeout`. `hold` is kept until the connection is
    /// dropped.
    pub async fn handshake(
        io: Stream,
        keepalive: Duration,
        pong_timeout: Duration,
        hold: Box<dyn Any + Send + Sync>,
    ) -> Result<Self, h2::Error> {
        let scheme = if matches!(io, Stream::Tls(_)) {
            "https"
        } else {
            "http"
        };
        let (send, mut conn) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .enable_push(false)
            .handshake::<_, Bytes>(io)
            .await?;
        let ping = conn.ping_pong();
        let dead = Arc::new(AtomicBool::new(false));
        let gone = dead.clone();
        let (settled, ready) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut conn = pin!(conn);
            let keep = keepalive_loop(ping, settled, keepalive, pong_timeout);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "upstream h2 connection ended");
                    }
                }
                () = keep => tracing::debug!("upstream h2 connection did not answer a PING; closed"),
            }
            gone.store(true, Ordering::Relaxed);
        });
        // The server's SETTINGS (its stream limit above all) come before its answer to the
        // first PING: once that is back, the limit is known, and the server alive.
        match tokio::time::timeout(pong_timeout, ready).await {
            Ok(Ok(())) => {}
            _ => {
                dead.store(true, Ordering::Relaxed);
                return Err(h2::Error::from(Reason::SETTINGS_TIMEOUT));
            }
        }
        Ok(H2Conn {
            send,
            streams: AtomicUsize::new(0),
            dead,
            scheme,
            _hold: hold,
        })
    }

    /// Whether a new request may be sent on it: alive, and (unless `even_full`) with a
    /// stream to spare under the server's limit.
    pub fn has_room(&self, even_full: bool) -> bool {
        if self.dead.load(Ordering::Relaxed) {
            return false;
        }
        // A GOAWAY or a closed connection shows as an error here, before any request.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        if let Poll::Ready(Err(_)) = self.send.clone().poll_ready(&mut cx) {
            self.dead.store(true, Ordering::Relaxed);
            return false;
        }
        even_full || self.streams() < self.send.current_max_send_streams()
    }

    /// Requests on it now.
    pub fn streams(&self) -> usize {
        self.streams.load(Ordering::Relaxed)
    }

    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Relaxed)
    }

    /// Takes a stream for one request: released when the returned [`H2Stream`] is dropped.
    pub fn open_stream(self: &Arc<Self>) -> H2Stream {
        self.streams.fetch_add(1, Ordering::Relaxed);
        H2Stream {
            conn: self.clone(),
            response: None,
        }
    }
}

/// PINGs at once (`settled` is sent the answer), then every `every`; returns when one is
/// not answered within `timeout`.
async fn keepalive_loop(
    ping: Option<h2::PingPong>,
    settled: tokio::sync::oneshot::Sender<()>,
    every: Duration,
    timeout: Duration,
) {
    let Some(mut ping) = ping else {
        return std::future::pending().await;
    };
    match tokio::time::timeout(timeout, ping.ping(h2::Ping::opaque())).await {
        Ok(Ok(_)) => {
            let _ = settled.send(());
        }
        Ok(Err(_)) => return std::future::pending().await,
        Err(_) => return,
    }
    loop {
        tokio::time::sleep(every).await;
        match tokio::time::timeout(timeout, ping.ping(h2::Ping::opaque())).await {
            Ok(Ok(_)) => {}
            // The connection's own future reports its end.
            Ok(Err(_)) => return std::future::pending().await,
            Err(_) => return,
        }
    }
}

/// One request's stream on an [`H2Conn`].
#[derive(Debug)]
pub struct H2Stream {
    conn: Arc<H2Conn>,
    response: Option<ResponseFuture>,
}

impl Drop for H2Stream {
    fn drop(&mut self) {
        self.conn.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

impl H2Stream {
    /// Sends `head` and then `body`, as flow control lets it go.
    pub async fn write_request<B>(
        &mut self,
        head: &RequestHead<'_>,
        body: &mut B,
    ) -> Result<(), ExchangeError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<BoxError>,
    {
        let req = self.request(head)?;
        let empty = body.is_end_stream();
        let mut send = self.conn.send.clone();
        let sent = poll_fn(|cx| send.poll_ready(cx))
            .await
            .and_then(|()| send.send_request(req, empty));
        let (response, stream) = sent.map_err(|e| self.failed(e))?;
        self.response = Some(response);
        if !empty {
            send_body(stream, body).await.map_err(|e| match e {
                BodyError::H2(e) => self.failed(e),
                BodyError::Body(e) => ExchangeError::Body(e),
            })?;
        }
        Ok(())
    }

    /// Waits for the answer's head.
    pub async fn read_head(&mut self) -> Result<ResponseHead, ExchangeError> {
        let Some(response) = self.response.take() else {
            return Err(ExchangeError::ClosedBeforeHead);
        };
        let resp = response.await.map_err(|e| self.failed(e))?;
        let (parts, recv) = resp.into_parts();
        let mut headers = parts.headers;
        headers.reserve(SPARE_FIELDS);
        Ok(ResponseHead {
            status: parts.status,
            headers,
            body: ResponseFraming::H2(recv),
        })
    }

    /// The request as HTTP/2 has it: the authority from the `Host` the gateway sets, no
    /// connection-specific fields.
    fn request(&self, head: &RequestHead<'_>) -> Result<Request<()>, ExchangeError> {
        let host = head
            .set
            .iter()
            .find(|(n, _)| **n == header::HOST)
            .map(|(_, v)| *v)
            .or_else(|| head.headers.get(header::HOST).map(HeaderValue::as_bytes))
            .unwrap_or_default();
        let uri = Uri::builder()
            .scheme(self.conn.scheme)
            .authority(host)
            .path_and_query(head.target)
            .build()
            .map_err(|e| ExchangeError::Malformed(format!("request target: {e}")))?;
        let mut headers = HeaderMap::with_capacity(head.headers.len() + head.set.len() + 1);
        for (name, value) in head.headers {
            if *name == header::CONTENT_LENGTH
                || *name == header::TRANSFER_ENCODING
                || CONNECTION_FIELDS.contains(name)
                || (*name == header::TE && value.as_bytes() != b"trailers")
                || head.set.iter().any(|(n, _)| *n == name)
                || head.omit.contains(&name)
            {
                continue;
            }
            headers.append(name.clone(), value.clone());
        }
        for (name, value) in head.set {
            if **name == header::HOST {
                continue;
            }
            let value = HeaderValue::from_bytes(value)
                .map_err(|e| ExchangeError::Malformed(format!("field {name}: {e}")))?;
            headers.append((*name).clone(), value);
        }
        if let ReqFraming::Length(n) = head.framing
            && (n > 0 || !matches!(*head.method, Method::GET | Method::HEAD))
        {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        let mut req = Request::new(());
        *req.method_mut() = head.method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        Ok(req)
    }

    /// The error of a failed request; one the server did not process marks the
    /// connection dead when it came with a GOAWAY.
    fn failed(&self, e: h2::Error) -> ExchangeError {
        let unprocessed = e.reason() == Some(Reason::REFUSED_STREAM) && e.is_remote()
            || e.is_go_away() && e.is_remote();
        if e.is_go_away() || e.is_io() {
            self.conn.dead.store(true, Ordering::Relaxed);
        }
        if unprocessed {
            ExchangeError::Unprocessed(e.to_string())
        } else {
            ExchangeError::H2(e)
        }
    }
}

enum BodyError {
    H2(h2::Error),
    Body(BoxError),
}

/// Sends `body` on `stream`, each piece as the stream's window opens for it (never more
/// buffered than the server will take), and ends the stream.
async fn send_body<B>(mut stream: SendStream<Bytes>, body: &mut B) -> Result<(), BodyError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    loop {
        let Some(frame) = poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await else {
            return stream.send_data(Bytes::new(), true).map_err(BodyError::H2);
        };
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                stream.send_reset(Reason::CANCEL);
                return Err(BodyError::Body(e.into()));
            }
        };
        let Ok(mut data) = frame.into_data() else {
            continue; // trailers are not forwarded
        };
        let end = body.is_end_stream();
        while !data.is_empty() {
            stream.reserve_capacity(data.len());
            let room = match poll_fn(|cx| stream.poll_capacity(cx)).await {
                Some(Ok(n)) => n,
                Some(Err(e)) => return Err(BodyError::H2(e)),
                // The stream is over from the server's side (an early answer, a reset, a
                // GOAWAY): the rest of the body is not wanted, and the response (or its
                // error) says what happened.
                None => return Ok(()),
            };
            if room == 0 {
                continue;
            }
            let piece = data.split_to(room.min(data.len()));
            stream
                .send_data(piece, end && data.is_empty())
                .map_err(BodyError::H2)?;
        }
        if end {
            return Ok(());
        }
    }
}

/// The next piece of an answer's body read off its stream; the window it took is given back
/// to the server at once.
pub(crate) fn poll_body(
    recv: &mut RecvStream,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Bytes, ExchangeError>>> {
    match recv.poll_data(cx) {
        Poll::Ready(Some(Ok(data))) => {
            let _ = recv.flow_control().release_capacity(data.len());
            Poll::Ready(Some(Ok(data)))
        }
        Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(ExchangeError::H2(e)))),
        Poll::Ready(None) => Poll::Ready(None),
        Poll::Pending => Poll::Pending,
    }
}
