//! HTTP/1.1 client connections, served by the gateway itself
//! (docs/decisions/2026-11-23-own-http1-listener.md).
//!
//! One task per connection reads request heads with httparse into the connection's buffer,
//! hands each request to [`Gateway::handle`] and writes the response: the head and the first
//! piece of the body in one `writev`, then each frame as it comes (chunked when the length is
//! unknown), so SSE chunks reach the client as the upstream sends them. A body that arrived
//! with its head is handed over as bytes; a longer one is read off the connection as the
//! gateway polls it. Requests on a connection are served one after another (pipelined ones
//! wait in the buffer). Over-limit and malformed heads get OpenAI-shaped JSON errors.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use super::body::{BUF, ClientBody, Incoming, MIN_ROOM, Reading};
use super::client_io::ClientIo;
use super::conn_state::ConnState;
use super::service::{HeadError, Limits, Peer, Service};
use crate::chunked::{Chunk, Decoder, chunk_size_line};
use crate::fields::{self, Framing};
use bytes::{Bytes, BytesMut};
use flowgate_clock::SharedClock;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version, header};
use http_body::Body;

/// The HTTP/2 connection preface starts this way (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";
/// How long and how much a closing connection keeps reading what the client still sends, so
/// that the client reads its answer instead of a reset (as nginx's lingering close).
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1024 * 1024;

/// One client connection speaking HTTP/1.1.
pub(super) struct Conn<S> {
    stream: Arc<ClientIo>,
    buf: BytesMut,
    /// The encoded response head, reused.
    out: Vec<u8>,
    /// The field names this client sent last.
    names: fields::Names,
    state: Arc<ConnState>,
    peer: Peer,
    svc: Arc<S>,
    limits: Limits,
    http2: bool,
}

/// How a connection ended.
pub(super) enum Ended {
    Closed,
    /// The client opened with the HTTP/2 preface: these bytes are its start.
    Http2(BytesMut),
}

/// A request head read off the wire.
#[derive(Debug)]
pub(super) struct Head {
    req: Request<()>,
    framing: Framing,
    /// `Expect: 100-continue`: the client waits for a go-ahead before sending its body.
    expect_continue: bool,
    keep_alive: bool,
}

impl<S: Service> Conn<S> {
    pub(super) fn new(
        stream: Arc<ClientIo>,
        state: Arc<ConnState>,
        peer: Peer,
        svc: Arc<S>,
        limits: Limits,
        http2: bool,
    ) -> Self {
        Conn {
            stream,
            buf: BytesMut::with_capacity(BUF),
            out: Vec::with_capacity(512),
            names: fields::Names::default(),
            state,
            peer,
            svc,
            limits,
            http2,
        }
    }

    /// Serves requests until the client or the gateway ends the connection.
    pub(super) async fn serve(&mut self) -> Ended {
        let mut first = true;
        loop {
            let head = loop {
                if !self.buf.is_empty() {
                    if first && self.http2 && self.buf.starts_with(H2_PREFACE) {
                        return Ended::Http2(std::mem::take(&mut self.buf));
                    }
                    match parse(&mut self.buf, &self.limits, &mut self.names) {
                        Ok(Some(head)) => break head,
                        Ok(None) => {}
                        Err(e) => {
                            self.refuse(&e).await;
                            return Ended::Closed;
                        }
                    }
                }
                match self.read_more().await {
                    Ok(0) | Err(_) => return Ended::Closed,
                    Ok(_) => self.state.on_read(),
                }
            };
            first = false;
            let busy = self.state.begin();
            if !self.exchange(head).await {
                return Ended::Closed;
            }
            drop(busy);
            if !self.buf.is_empty() {
                // A pipelined request began arriving with the last one.
                self.state.on_read();
            }
        }
    }

    /// Serves one request; whether the connection can take another.
    async fn exchange(&mut self, head: Head) -> bool {
        let Head {
            req,
            framing,
            expect_continue,
            keep_alive,
        } = head;
        let head_request = req.method() == Method::HEAD;
        let version = req.version();
        let body = match (framing.transfer, framing.length) {
            (Some(_), _) => self.lend(Decoder::Chunked(Chunk::Size), expect_continue),
            (None, None | Some(0)) => ClientBody::Full(None),
            (None, Some(n)) if n <= self.buf.len() as u64 => {
                ClientBody::Full(Some(self.buf.split_to(n as usize).freeze()))
            }
            (None, Some(n)) => self.lend(Decoder::Length(n), expect_continue),
        };
        // The connection's buffer, while a body read off the socket has it.
        let reading = match &body {
            ClientBody::H1(r) => Some(r.shared()),
            _ => None,
        };
        let resp = self.svc.call(req.map(|()| body), &self.peer).await;
        let mut keep = keep_alive && !self.state.is_draining();
        let mut unread = false;
        if let Some(shared) = reading {
            // The gateway is done with the body; the buffer comes back with whatever
            // followed it, unless the body was left unread (then the connection closes).
            match Arc::try_unwrap(shared) {
                Ok(m) => {
                    let r = m.into_inner().unwrap_or_else(PoisonError::into_inner);
                    if r.decoder.is_done() {
                        self.buf = r.buf;
                    } else {
                        unread = true;
                    }
                }
                Err(_) => unread = true,
            }
            keep &= !unread;
        }
        let kept = self.respond(resp, head_request, version, keep).await;
        if !kept && unread {
            self.linger().await;
        }
        kept
    }

    /// Hands the connection's buffer to a body read as the gateway polls it.
    fn lend(&mut self, decoder: Decoder, expect_continue: bool) -> ClientBody {
        ClientBody::H1(Incoming::new(
            self.stream.clone(),
            Reading {
                buf: std::mem::take(&mut self.buf),
                decoder,
                continue_owed: expect_continue,
                continue_sent: 0,
            },
            self.limits.body_read_timeout,
        ))
    }

    /// Writes `resp`; whether the connection can take another request.
    async fn respond(
        &mut self,
        resp: Response<S::Body>,
        head_request: bool,
        version: Version,
        keep: bool,
    ) -> bool {
        let (parts, mut body) = resp.into_parts();
        let status = parts.status;
        let bodiless = head_request
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let framing = if bodiless {
            Out::None
        } else if let Some(n) = body.size_hint().exact() {
            Out::Length(Some(n))
        } else if parts.headers.contains_key(header::CONTENT_LENGTH) {
            Out::Length(None)
        } else if version == Version::HTTP_11 {
            Out::Chunked
        } else {
            Out::Close
        };
        let keep = keep && !matches!(framing, Out::Close);
        encode_head(
            &mut self.out,
            status,
            &parts.headers,
            framing,
            keep,
            version,
            self.svc.clock(),
        );
        if bodiless {
            drop(body);
            return self
                .stream
                .write_all(&mut [IoSlice::new(&self.out)], self.limits.send_timeout)
                .await
                .is_ok()
                && keep;
        }
        let chunked = matches!(framing, Out::Chunked);
        // The head goes out with the first piece of the body when that is ready now (a
        // whole answer: one write); else at once, so that the client sees it early.
        let first = poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await;
        let mut head_sent = false;
        let mut pending = match first {
            Poll::Ready(f) => Some(f),
            Poll::Pending => None,
        };
        loop {
            let frame = match pending.take() {
                Some(f) => f,
                None => {
                    if !head_sent {
                        head_sent = true;
                        if self
                            .stream
                            .write_all(&mut [IoSlice::new(&self.out)], self.limits.send_timeout)
                            .await
                            .is_err()
                        {
                            return false;
                        }
                    }
                    poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
                }
            };
            let (data, end) = match frame {
                None => (Bytes::new(), true),
                Some(Ok(f)) => match f.into_data() {
                    Ok(d) => {
                        let end = body.is_end_stream();
                        if d.is_empty() && !end {
                            continue;
                        }
                        (d, end)
                    }
                    Err(_) => continue, // trailers are not forwarded
                },
                // The answer broke off: the client must not take it for whole.
                Some(Err(_)) => return false,
            };
            // Decided only now: a frame skipped above must not take the head with it.
            let head_bytes: &[u8] = if head_sent { &[] } else { &self.out };
            head_sent = true;
            let mut size = [0u8; 18];
            let size = if chunked && !data.is_empty() {
                chunk_size_line(&mut size, data.len())
            } else {
                &[]
            };
            let tail: &[u8] = match (chunked, data.is_empty(), end) {
                (true, false, true) => b"\r\n0\r\n\r\n",
                (true, false, false) => b"\r\n",
                (true, true, true) => b"0\r\n\r\n",
                _ => b"",
            };
            let mut bufs = [
                IoSlice::new(head_bytes),
                IoSlice::new(size),
                IoSlice::new(&data),
                IoSlice::new(tail),
            ];
            if self
                .stream
                .write_all(&mut bufs, self.limits.send_timeout)
                .await
                .is_err()
            {
                return false;
            }
            if end {
                return keep;
            }
        }
    }

    /// Answers a head that cannot be served, and closes.
    async fn refuse(&mut self, e: &HeadError) {
        let resp = self.svc.refuse(e);
        self.respond(resp, false, Version::HTTP_11, false).await;
        self.linger().await;
    }

    /// Reads into the buffer; 0 at the end of the stream.
    async fn read_more(&mut self) -> io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < MIN_ROOM {
            self.buf.reserve(BUF);
        }
        poll_fn(|cx| self.stream.poll_read_some(cx, &mut self.buf)).await
    }

    /// Stops sending, then reads and drops what the client still sends for a short while.
    async fn linger(&mut self) {
        self.stream.close_write(LINGER).await;
        let mut left = LINGER_BYTES;
        let _ = tokio::time::timeout(LINGER, async {
            loop {
                self.buf.clear();
                match self.read_more().await {
                    Ok(n) if n > 0 && n < left => left -= n,
                    _ => return,
                }
            }
        })
        .await;
    }
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy)]
enum Out {
    /// No body (HEAD, 1xx, 204, 304): the fields are written as they are.
    None,
    /// `Content-Length`: written by us when known, else the response's own field.
    Length(Option<u64>),
    Chunked,
    /// Delimited by closing the connection (an HTTP/1.0 client, length unknown).
    Close,
}

/// `resp` as bytes to write, closing the connection, when its body is all there (an error
/// answer); `None` for a body still to come.
pub(super) fn encode_whole<B>(resp: Response<B>, clock: &SharedClock) -> Option<Vec<u8>>
where
    B: Body<Data = Bytes> + Unpin,
{
    let (parts, mut body) = resp.into_parts();
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let data = match Pin::new(&mut body).poll_frame(&mut cx) {
        Poll::Ready(None) => Bytes::new(),
        Poll::Ready(Some(Ok(f))) if body.is_end_stream() => f.into_data().ok()?,
        _ => return None,
    };
    let mut out = Vec::with_capacity(256 + data.len());
    encode_head(
        &mut out,
        parts.status,
        &parts.headers,
        Out::Length(Some(data.len() as u64)),
        false,
        Version::HTTP_11,
        clock,
    );
    out.extend_from_slice(&data);
    Some(out)
}

/// Encodes a response head into `out`.
fn encode_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    fields: &HeaderMap,
    framing: Out,
    keep: bool,
    version: Version,
    clock: &SharedClock,
) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let own_length = matches!(framing, Out::Length(Some(_)) | Out::Chunked | Out::Close);
    for (name, value) in fields {
        if own_length && (name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING) {
            continue;
        }
        if name == header::CONNECTION {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !fields.contains_key(header::DATE) {
        out.extend_from_slice(b"date: ");
        date::write(out, clock.wall());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Out::Length(Some(n)) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Out::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Out::None | Out::Length(None) | Out::Close => {}
    }
    if !keep {
        out.extend_from_slice(b"connection: close\r\n");
    } else if version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

impl Head {
    pub(super) fn into_request(self) -> Request<()> {
        self.req
    }
}

/// Parses a request head at the start of `buf`: `None` until it is complete. The head's
/// bytes leave `buf` and the header values share them.
pub(super) fn parse(
    buf: &mut BytesMut,
    limits: &Limits,
    names: &mut fields::Names,
) -> Result<Option<Head>, HeadError> {
    // Where each field sits: here for most heads, in `more` for those with many fields.
    let mut spans = [[0u32; 4]; fields::FIRST_SLOTS];
    let mut more = Vec::new();
    let Some(scan) = scan(buf, limits, &mut spans, &mut more)? else {
        return Ok(None);
    };
    let head = buf.split_to(scan.len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(scan.path))
        .map_err(|e| HeadError::Malformed(format!("bad request target: {e}")))?;
    let spans = if more.is_empty() {
        &spans[..scan.count]
    } else {
        &more[..]
    };
    // No room for more: the fields the gateway sets upstream are written by the head
    // encoder (`headers::UpstreamFields`), never added to the request's map.
    let (map, framing) = fields::collect(&head, spans, 0, names).map_err(HeadError::Malformed)?;
    if framing.both {
        return Err(HeadError::Malformed(
            "both Content-Length and Transfer-Encoding are set".into(),
        ));
    }
    let version = scan.version;
    if framing.transfer.is_some() && version == Version::HTTP_10 {
        return Err(HeadError::Malformed(
            "Transfer-Encoding in an HTTP/1.0 request".into(),
        ));
    }
    if framing.transfer == Some(false) {
        return Err(HeadError::Malformed(
            "a request body's transfer coding must end with chunked".into(),
        ));
    }
    if framing.other_coding {
        return Err(HeadError::Unsupported(
            "transfer codings other than a single chunked".into(),
        ));
    }
    if version == Version::HTTP_11 && framing.hosts != 1 {
        return Err(HeadError::Malformed(if framing.hosts == 0 {
            "an HTTP/1.1 request needs a Host field".into()
        } else {
            "more than one Host field".into()
        }));
    }
    // `Expect: 100-continue` is answered here (and left out of the map): the upstream gets the
    // body with the request.
    let expect_continue = version == Version::HTTP_11 && framing.expect_continue;
    let keep_alive = if version == Version::HTTP_11 {
        !framing.close
    } else {
        framing.keep_alive && !framing.close
    };
    let mut r = Request::new(());
    *r.method_mut() = scan.method;
    *r.uri_mut() = uri;
    *r.version_mut() = version;
    *r.headers_mut() = map;
    Ok(Some(Head {
        req: r,
        framing,
        expect_continue,
        keep_alive,
    }))
}

/// Where the parts of a complete head sit in the buffer (the fields' spans are written to the
/// caller's arrays).
struct Scan {
    len: usize,
    method: Method,
    version: Version,
    path: std::ops::Range<usize>,
    count: usize,
}

fn scan(
    buf: &[u8],
    limits: &Limits,
    spans: &mut [fields::Span; fields::FIRST_SLOTS],
    more: &mut Vec<fields::Span>,
) -> Result<Option<Scan>, HeadError> {
    let mut slots = [httparse::EMPTY_HEADER; fields::FIRST_SLOTS];
    match scan_with(buf, limits, &mut slots, spans, more) {
        Err(HeadError::TooManyFields { .. }) if limits.max_headers > fields::FIRST_SLOTS => {
            let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers + 1];
            scan_with(buf, limits, &mut slots, spans, more)
        }
        r => r,
    }
}

fn scan_with<'b>(
    buf: &'b [u8],
    limits: &Limits,
    slots: &mut [httparse::Header<'b>],
    spans: &mut [fields::Span; fields::FIRST_SLOTS],
    more: &mut Vec<fields::Span>,
) -> Result<Option<Scan>, HeadError> {
    let mut req = httparse::Request::new(slots);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n > limits.max_header_bytes => {
            return Err(HeadError::TooLarge {
                limit: limits.max_header_bytes,
            });
        }
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > limits.max_header_bytes => {
            return Err(HeadError::TooLarge {
                limit: limits.max_header_bytes,
            });
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::TooManyFields {
                limit: limits.max_headers,
            });
        }
        Err(e) => return Err(HeadError::Malformed(format!("bad request head: {e}"))),
    };
    if req.headers.len() > limits.max_headers {
        return Err(HeadError::TooManyFields {
            limit: limits.max_headers,
        });
    }
    let method = Method::from_bytes(req.method.unwrap_or_default().as_bytes())
        .map_err(|_| HeadError::Malformed("bad method".into()))?;
    let version = if req.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let path = req.path.unwrap_or_default();
    let at = path.as_ptr() as usize - buf.as_ptr() as usize;
    let count = if req.headers.len() <= fields::FIRST_SLOTS {
        fields::spans(buf.as_ptr(), req.headers, spans)
    } else {
        more.resize(req.headers.len(), [0u32; 4]);
        fields::spans(buf.as_ptr(), req.headers, more)
    };
    Ok(Some(Scan {
        len,
        method,
        version,
        path: at..at + path.len(),
        count,
    }))
}

/// The `Date` field's value, formatted once a second per thread.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    thread_local! {
        static NOW: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }

    pub fn write(out: &mut Vec<u8>, now: SystemTime) {
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        NOW.with_borrow_mut(|(at, text)| {
            if *at != secs {
                *at = secs;
                *text = httpdate::fmt_http_date(now);
            }
            out.extend_from_slice(text.as_bytes());
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_header_bytes: 1024,
            max_headers: 8,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(10),
        }
    }

    fn parse_all(raw: &[u8]) -> Result<Option<Head>, HeadError> {
        parse(
            &mut BytesMut::from(raw),
            &limits(),
            &mut fields::Names::default(),
        )
    }

    #[test]
    fn heads_parse_into_requests_without_hop_by_hop_fields() {
        let mut buf = BytesMut::from(
            &b"POST /v1/x?q=1 HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, x-hop\r\nx-hop: 1\r\n\
               Expect: 100-continue\r\nContent-Length: 5\r\n\r\nhelloGET"[..],
        );
        let h = parse(&mut buf, &limits(), &mut fields::Names::default())
            .unwrap()
            .unwrap();
        assert_eq!(h.req.method(), Method::POST);
        assert_eq!(h.req.uri().path(), "/v1/x");
        assert_eq!(h.req.uri().query(), Some("q=1"));
        assert_eq!(h.req.headers().len(), 2, "{:?}", h.req.headers());
        assert_eq!(h.req.headers()["content-length"], "5");
        assert_eq!(h.framing.length, Some(5));
        assert!(h.expect_continue && h.keep_alive);
        assert_eq!(&buf[..], b"helloGET", "the body and what follows stay");

        let h = parse_all(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive, "HTTP/1.0 closes unless asked");
        let h = parse_all(b"GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
        let h = parse_all(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        let h = parse_all(b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing.transfer, Some(true));
        assert!(
            parse_all(b"GET / HTTP/1.1\r\nhost: a\r\n")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn bad_heads_get_the_right_error() {
        let malformed = |raw: &[u8]| matches!(parse_all(raw), Err(HeadError::Malformed(_)));
        assert!(malformed(b"GET / HTTP/1.1\r\nbad header\r\n\r\n"));
        assert!(malformed(
            b"POST / HTTP/1.1\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n"
        ));
        assert!(malformed(
            b"POST / HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n"
        ));
        assert!(malformed(b"POST / HTTP/1.1\r\ncontent-length: x\r\n\r\n"));
        assert!(
            malformed(b"GET / HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 without Host"
        );
        assert!(
            malformed(b"GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n"),
            "two Hosts"
        );
        assert!(
            malformed(b"POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n"),
            "Transfer-Encoding on HTTP/1.0"
        );
        assert_eq!(
            parse_all(b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: gzip, chunked\r\n\r\n")
                .unwrap_err(),
            HeadError::Unsupported("transfer codings other than a single chunked".into())
        );
        assert!(matches!(
            parse_all(b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n"),
            Err(HeadError::Unsupported(_))
        ), "chunked twice is not one chunked");
        let many: String = (0..9).map(|i| format!("x-{i}: 1\r\n")).collect();
        let e = parse_all(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()).unwrap_err();
        assert!(matches!(e, HeadError::TooManyFields { limit: 8 }), "{e}");
        let big = format!("GET / HTTP/1.1\r\nx: {}", "v".repeat(1100));
        let e = parse_all(big.as_bytes()).unwrap_err();
        assert!(matches!(e, HeadError::TooLarge { limit: 1024 }), "{e}");
    }

    #[test]
    fn more_fields_than_the_first_slots_are_read_up_to_the_limit() {
        let l = Limits {
            max_headers: 100,
            max_header_bytes: 64 * 1024,
            ..limits()
        };
        let many: String = (0..90).map(|i| format!("x-{i}: {i}\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\nhost: a\r\n{many}\r\n");
        let h = parse(
            &mut BytesMut::from(raw.as_bytes()),
            &l,
            &mut fields::Names::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.req.headers().len(), 91);
        assert_eq!(h.req.headers()["x-89"], "89");
    }

    #[test]
    fn response_heads_carry_framing_date_and_connection() {
        let manual = flowgate_clock::ManualClock::at_epoch_2026();
        let clock = manual.shared();
        let mut out = Vec::new();
        let mut f = HeaderMap::new();
        f.insert("content-type", "application/json".parse().unwrap());
        f.insert("content-length", "99".parse().unwrap());
        encode_head(
            &mut out,
            StatusCode::OK,
            &f,
            Out::Length(Some(3)),
            true,
            Version::HTTP_11,
            &clock,
        );
        let s = String::from_utf8(out.clone()).unwrap();
        assert!(s.starts_with("HTTP/1.1 200 OK\r\n"), "{s}");
        assert!(
            s.contains("content-length: 3\r\n") && !s.contains("99"),
            "{s}"
        );
        assert!(
            s.contains("\r\ndate: Thu, 01 Jan 2026 00:00:00 GMT\r\n") && s.ends_with("\r\n\r\n"),
            "{s}"
        );
        assert!(!s.contains("connection"), "{s}");

        encode_head(
            &mut out,
            StatusCode::OK,
            &HeaderMap::new(),
            Out::Chunked,
            false,
            Version::HTTP_11,
            &clock,
        );
        let s = String::from_utf8(out.clone()).unwrap();
        manual.advance(Duration::from_secs(61));
        assert!(
            s.contains("transfer-encoding: chunked\r\nconnection: close\r\n"),
            "{s}"
        );

        encode_head(
            &mut out,
            StatusCode::OK,
            &f,
            Out::None,
            true,
            Version::HTTP_10,
            &clock,
        );
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.contains("content-length: 99\r\n"),
            "a HEAD answer keeps the length: {s}"
        );
        assert!(s.contains("connection: keep-alive\r\n"), "{s}");
        assert!(
            s.contains("date: Thu, 01 Jan 2026 00:01:01 GMT\r\n"),
            "the date moves: {s}"
        );
    }
}
