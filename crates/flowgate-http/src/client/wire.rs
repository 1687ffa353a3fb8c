//! HTTP/1.1 to upstreams, driven by the request's own task
//! (docs/decisions/2026-11-22-inline-upstream-http1.md).
//!
//! A request writes its head (and a buffered body) in one vectored write, or streams its body
//! (with its declared length, or chunked), then reads the response head into the
//! connection's buffer and parses it with `httparse`; header values share that buffer. The
//! response body is decoded from the same buffer as the client reads it ([`Decoder`]): each
//! read becomes a frame, so streamed (SSE) chunks are passed on as they arrive. No task,
//! channel or wake-up sits between the request and its upstream socket.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName};
use http::{Method, StatusCode};
use http_body::Body;
use tokio::io::AsyncWriteExt;

use crate::BoxError;
use crate::chunked::{Decoder, Step, chunk_size_line};
use crate::fields;
use crate::stream::Stream;

/// Largest response head accepted from an upstream.
const MAX_HEAD: usize = 64 * 1024;
/// Most header fields accepted in a response head.
const MAX_HEADERS: usize = 128;
/// Room left in each response head's map for the fields the caller adds (a gateway's
/// request id, upstream name, cache status, rate-limit fields), so that adding them never
/// grows the map.
pub const SPARE_FIELDS: usize = 12;
/// Room reserved in the read buffer before each read.
const READ_RESERVE: usize = 8 * 1024;

/// An open connection to an upstream and its read buffer.
#[derive(Debug)]
pub struct Wire {
    io: Stream,
    buf: BytesMut,
    /// The request head being written, kept to reuse its allocation.
    head: Vec<u8>,
    /// The field names this upstream sent last.
    names: fields::Names,
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("connection closed before the response head")]
    ClosedBeforeHead,
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("request body failed: {0}")]
    Body(BoxError),
    /// HTTP/2: the server did not process the request (a GOAWAY, or `REFUSED_STREAM`); it
    /// can be sent again on another connection.
    #[error("not processed by the upstream: {0}")]
    Unprocessed(String),
    #[error("HTTP/2: {0}")]
    H2(h2::Error),
}

impl ExchangeError {
    /// Whether the upstream is known not to have acted on the request.
    pub fn is_unprocessed(&self) -> bool {
        matches!(self, ExchangeError::Unprocessed(_))
    }
}

/// How a request body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqFraming {
    /// No body and no length header (GET and the like).
    None,
    Length(u64),
    Chunked,
}

impl ReqFraming {
    /// The framing for `body` sent with `method`: its length when known (an empty body
    /// declares none except on the methods that carry one), else chunked.
    pub fn of(method: &Method, body: &impl Body) -> Self {
        match body.size_hint().exact() {
            Some(0) if !matches!(*method, Method::POST | Method::PUT | Method::PATCH) => {
                ReqFraming::None
            }
            Some(n) => ReqFraming::Length(n),
            None => ReqFraming::Chunked,
        }
    }
}

/// A response head read from an upstream, and how its body comes.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: ResponseFraming,
}

/// How a response's body comes.
#[derive(Debug)]
pub enum ResponseFraming {
    /// Off the HTTP/1.1 connection, framed as `decoder` says; the connection can take
    /// another request once the body is read when `keep_alive`.
    H1 { decoder: Decoder, keep_alive: bool },
    /// On its own HTTP/2 stream.
    H2(h2::RecvStream),
}

impl ResponseFraming {
    /// Whether the body is over (or there is none).
    pub fn is_done(&self) -> bool {
        match self {
            ResponseFraming::H1 { decoder, .. } => decoder.is_done(),
            ResponseFraming::H2(recv) => recv.is_end_stream(),
        }
    }
}

/// A request head to send upstream.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    pub method: &'a Method,
    /// Origin-form target: path and query.
    pub target: &'a str,
    /// The client's fields, hop-by-hop ones already removed.
    pub headers: &'a HeaderMap,
    /// Fields the gateway sets; same-named fields in `headers` are not sent.
    pub set: &'a [(&'a HeaderName, &'a [u8])],
    /// Fields of `headers` not to send at all (a client's credential meant for another
    /// API).
    pub omit: &'a [&'a HeaderName],
    pub framing: ReqFraming,
}

impl RequestHead<'_> {
    /// Writes the head into `out`: request line, the client's fields (without their own
    /// length or transfer coding), the gateway's fields, then the framing of the body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        out.reserve(
            self.method.as_str().len()
                + self.target.len()
                + 40
                + self
                    .headers
                    .iter()
                    .map(|(k, v)| k.as_str().len() + v.len() + 4)
                    .sum::<usize>()
                + self
                    .set
                    .iter()
                    .map(|(k, v)| k.as_str().len() + v.len() + 4)
                    .sum::<usize>(),
        );
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let fields = self.headers.iter().filter(|(name, _)| {
            *name != header::CONTENT_LENGTH
                && *name != header::TRANSFER_ENCODING
                && !self.set.iter().any(|(n, _)| *n == *name)
                && !self.omit.contains(name)
        });
        let fields = fields
            .map(|(n, v)| (n, v.as_bytes()))
            .chain(self.set.iter().map(|&(n, v)| (n, v)));
        for (name, value) in fields {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        match self.framing {
            ReqFraming::None => {}
            ReqFraming::Length(n) => {
                out.extend_from_slice(b"content-length: ");
                out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            ReqFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        }
        out.extend_from_slice(b"\r\n");
    }
}

impl Wire {
    pub fn new(io: Stream) -> Self {
        Wire {
            io,
            buf: BytesMut::with_capacity(READ_RESERVE),
            head: Vec::new(),
            names: fields::Names::default(),
        }
    }

    /// Whether a pooled connection can take a request: the upstream has neither closed it
    /// nor sent anything unasked. Costs no syscall unless the socket has signalled
    /// readiness since it was last used.
    pub fn is_usable(&mut self) -> bool {
        self.buf.is_empty() && self.io.is_usable()
    }

    /// Sends a request: `head`, then `body` framed as `head.framing`. A body that is all
    /// there (a buffered one) goes out with the head in one write. Once this returns `Ok`
    /// the upstream may act on the request.
    pub async fn write_request<B>(
        &mut self,
        head: &RequestHead<'_>,
        body: &mut B,
    ) -> Result<(), ExchangeError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<BoxError>,
    {
        head.encode(&mut self.head);
        let chunked = head.framing == ReqFraming::Chunked;
        let mut first = None;
        if !body.is_end_stream() {
            match poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx))).await {
                Poll::Ready(Some(frame)) => {
                    let frame = frame.map_err(|e| ExchangeError::Body(e.into()))?;
                    first = frame.into_data().ok().filter(|d| !d.is_empty());
                }
                Poll::Ready(None) | Poll::Pending => {}
            }
        }
        if !chunked && body.is_end_stream() {
            let b = first.as_deref().unwrap_or_default();
            let encoded = &self.head;
            write_all_vectored(&mut self.io, &mut [IoSlice::new(encoded), IoSlice::new(b)]).await?;
            self.io.flush().await?;
            return Ok(());
        }
        self.io.write_all(&self.head).await?;
        if let Some(data) = first {
            self.write_data(chunked, &data).await?;
        }
        while let Some(frame) = poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await {
            let frame = frame.map_err(|e| ExchangeError::Body(e.into()))?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers are not forwarded
            };
            if !data.is_empty() {
                self.write_data(chunked, &data).await?;
            }
        }
        if chunked {
            self.io.write_all(b"0\r\n\r\n").await?;
        }
        self.io.flush().await?;
        Ok(())
    }

    /// Writes one piece of a request body, as a chunk when `chunked`.
    async fn write_data(&mut self, chunked: bool, data: &[u8]) -> io::Result<()> {
        if !chunked {
            return self.io.write_all(data).await;
        }
        let mut size = [0u8; 18];
        write_all_vectored(
            &mut self.io,
            &mut [
                IoSlice::new(chunk_size_line(&mut size, data.len())),
                IoSlice::new(data),
                IoSlice::new(b"\r\n"),
            ],
        )
        .await
    }

    /// Reads the response head (interim `1xx` heads are skipped).
    pub async fn read_head(&mut self, head_request: bool) -> Result<ResponseHead, ExchangeError> {
        loop {
            while !self.buf.is_empty() {
                match parse_head(&mut self.buf, head_request, &mut self.names)? {
                    Parsed::Head(head) => return Ok(head),
                    Parsed::Interim => continue,
                    Parsed::Partial if self.buf.len() > MAX_HEAD => {
                        return Err(ExchangeError::Malformed(format!(
                            "response head larger than {MAX_HEAD} bytes"
                        )));
                    }
                    Parsed::Partial => break,
                }
            }
            self.buf.reserve(READ_RESERVE);
            if poll_fn(|cx| self.io.poll_read_some(cx, &mut self.buf)).await? == 0 {
                return Err(ExchangeError::ClosedBeforeHead);
            }
        }
    }

    /// Reads whatever the upstream sends next into the buffer: `Ok(0)` at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.buf.reserve(READ_RESERVE);
        self.io.poll_read_some(cx, &mut self.buf)
    }

    /// Whether bytes beyond the current response are buffered (then the connection cannot
    /// be reused).
    pub fn has_leftover(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The next frame of the response body being read with `decoder`.
    pub fn poll_body(
        &mut self,
        decoder: &mut Decoder,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, ExchangeError>>> {
        loop {
            match decoder.step(&mut self.buf) {
                Step::Data(b) => return Poll::Ready(Some(Ok(b))),
                Step::End => return Poll::Ready(None),
                Step::Error(e) => return Poll::Ready(Some(Err(ExchangeError::Malformed(e)))),
                Step::NeedMore => {}
            }
            let n = match ready!(self.poll_fill(cx)) {
                Ok(n) => n,
                Err(e) => return Poll::Ready(Some(Err(e.into()))),
            };
            if n == 0 {
                return match decoder.at_eof() {
                    Ok(()) => Poll::Ready(None),
                    Err(e) => Poll::Ready(Some(Err(ExchangeError::Malformed(e)))),
                };
            }
        }
    }
}

async fn write_all_vectored(io: &mut Stream, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    while !bufs.is_empty() {
        let n = io.write_vectored(bufs).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

/// [`parse_head`] to the first final head (interim ones skipped), for fuzzing.
pub(super) fn parse_for_fuzzing(
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Option<(Decoder, bool)>, ExchangeError> {
    let mut names = fields::Names::default();
    loop {
        match parse_head(buf, head_request, &mut names)? {
            Parsed::Head(h) => match h.body {
                ResponseFraming::H1 {
                    decoder,
                    keep_alive,
                } => return Ok(Some((decoder, keep_alive))),
                ResponseFraming::H2(_) => return Ok(None),
            },
            Parsed::Interim => {}
            Parsed::Partial => return Ok(None),
        }
    }
}

/// What [`parse_head`] found.
#[derive(Debug)]
enum Parsed {
    Head(ResponseHead),
    /// An interim (1xx) head, consumed.
    Interim,
    /// Not a whole head yet.
    Partial,
}

/// Parses a response head at the start of `buf`. A parsed head's bytes leave `buf`, and the
/// header values share them.
fn parse_head(
    buf: &mut BytesMut,
    head_request: bool,
    names: &mut fields::Names,
) -> Result<Parsed, ExchangeError> {
    // Where each field sits, so that they can be taken from the head's `Bytes` once the
    // parser no longer borrows the buffer.
    let mut spans = [[0u32; 4]; fields::FIRST_SLOTS];
    let mut more = Vec::new();
    let mut slots = [httparse::EMPTY_HEADER; fields::FIRST_SLOTS];
    let scanned = match scan_head(buf, &mut slots, &mut spans) {
        // Most answers have a few fields; room for all of them only when needed.
        Err(httparse::Error::TooManyHeaders) => {
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            more = vec![[0u32; 4]; MAX_HEADERS];
            scan_head(buf, &mut slots, &mut more)
        }
        r => r,
    };
    let Some(Scanned {
        len,
        code,
        http11,
        count,
    }) = scanned.map_err(|e| ExchangeError::Malformed(format!("bad response head: {e}")))?
    else {
        return Ok(Parsed::Partial);
    };
    let status = StatusCode::from_u16(code)
        .map_err(|_| ExchangeError::Malformed(format!("bad status code {code}")))?;
    if len > MAX_HEAD {
        return Err(ExchangeError::Malformed(format!(
            "response head larger than {MAX_HEAD} bytes"
        )));
    }
    let head = buf.split_to(len).freeze();
    if status.is_informational() {
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(ExchangeError::Malformed(
                "protocol upgrades are not proxied".into(),
            ));
        }
        return Ok(Parsed::Interim);
    }
    let spans = if more.is_empty() {
        &spans[..count]
    } else {
        &more[..count]
    };
    let (headers, framing) =
        fields::collect(&head, spans, SPARE_FIELDS, names).map_err(ExchangeError::Malformed)?;
    // A response framed two ways is a smuggling shape, one in a coding nothing here
    // decodes would reach the client garbled: both fail, and the connection is dropped.
    if framing.both {
        return Err(ExchangeError::Malformed(
            "both Content-Length and Transfer-Encoding".into(),
        ));
    }
    if framing.other_coding {
        return Err(ExchangeError::Malformed(
            "a transfer coding other than chunked".into(),
        ));
    }
    let decoder = Decoder::for_response(head_request, status, &framing);
    let keep_alive = http11 && !decoder.reads_to_eof() && !framing.close;
    Ok(Parsed::Head(ResponseHead {
        status,
        headers,
        body: ResponseFraming::H1 {
            decoder,
            keep_alive,
        },
    }))
}

/// Where a complete response head's parts are (its fields' spans are in the caller's array).
struct Scanned {
    len: usize,
    code: u16,
    http11: bool,
    count: usize,
}

fn scan_head<'b>(
    buf: &'b [u8],
    slots: &mut [httparse::Header<'b>],
    spans: &mut [fields::Span],
) -> Result<Option<Scanned>, httparse::Error> {
    let mut resp = httparse::Response::new(slots);
    let httparse::Status::Complete(len) = resp.parse(buf)? else {
        return Ok(None);
    };
    Ok(Some(Scanned {
        len,
        code: resp.code.unwrap_or(0),
        http11: resp.version == Some(1),
        count: fields::spans(buf.as_ptr(), resp.headers, spans),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunked::Chunk;
    use http::HeaderValue;

    fn decoder(h: &ResponseHead) -> Decoder {
        match &h.body {
            ResponseFraming::H1 { decoder, .. } => decoder.clone(),
            ResponseFraming::H2(_) => panic!("an HTTP/1.1 head"),
        }
    }

    fn keep(h: &ResponseHead) -> bool {
        matches!(
            h.body,
            ResponseFraming::H1 {
                keep_alive: true,
                ..
            }
        )
    }

    fn head(buf: &mut BytesMut, head_request: bool) -> ResponseHead {
        match parse_head(buf, head_request, &mut fields::Names::default()).unwrap() {
            Parsed::Head(h) => h,
            other => panic!("expected a head, got {other:?}"),
        }
    }

    #[test]
    fn heads_parse_with_framing_and_keep_alive() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-a: b\r\n\r\nhi"[..],
        );
        assert!(matches!(
            parse_head(&mut buf, false, &mut fields::Names::default()).unwrap(),
            Parsed::Interim
        ));
        let h = head(&mut buf, false);
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(h.headers["x-a"], "b");
        assert_eq!(decoder(&h), Decoder::Length(2));
        assert!(keep(&h));
        assert_eq!(&buf[..], b"hi");

        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n"[..],
        );
        let h = head(&mut buf, false);
        assert_eq!(decoder(&h), Decoder::Chunked(Chunk::Size));
        assert!(!keep(&h));
        assert!(h.headers.is_empty(), "hop-by-hop fields are not kept");

        let refused = |raw: &[u8]| {
            parse_head(
                &mut BytesMut::from(raw),
                false,
                &mut fields::Names::default(),
            )
            .is_err()
        };
        assert!(
            refused(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n"),
            "framed two ways: refused, the connection dropped"
        );
        assert!(refused(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n"
        ));
        let big = format!("HTTP/1.1 200 OK\r\nx: {}\r\n\r\n", "v".repeat(MAX_HEAD));
        assert!(refused(big.as_bytes()), "a whole head over the limit");
        let mut buf = BytesMut::from(&b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1"[..]);
        assert!(decoder(&head(&mut buf, false)).is_done(), "204 has no body");

        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\n\r\nto the end"[..]);
        let h = head(&mut buf, false);
        assert_eq!(decoder(&h), Decoder::Eof);
        assert!(!keep(&h), "a body delimited by close ends the connection");

        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"[..]);
        assert!(decoder(&head(&mut buf, true)).is_done(), "HEAD has no body");
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\ncontent-le"[..]);
        assert!(matches!(
            parse_head(&mut buf, false, &mut fields::Names::default()).unwrap(),
            Parsed::Partial
        ));

        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n"[..],
        );
        assert!(parse_head(&mut buf, false, &mut fields::Names::default()).is_err());
        let many: String = (0..40).map(|i| format!("x-{i}: {i}\r\n")).collect();
        let mut buf = BytesMut::from(format!("HTTP/1.1 200 OK\r\n{many}\r\n").as_bytes());
        assert_eq!(
            head(&mut buf, false).headers["x-39"],
            "39",
            "more fields than the first slots"
        );
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("x-{i}: 1\r\n"))
            .collect();
        let mut buf = BytesMut::from(format!("HTTP/1.1 200 OK\r\n{many}\r\n").as_bytes());
        assert!(
            parse_head(&mut buf, false, &mut fields::Names::default()).is_err(),
            "more than MAX_HEADERS"
        );
        let mut buf = BytesMut::from(&b"NOT HTTP\r\n\r\n"[..]);
        assert!(parse_head(&mut buf, false, &mut fields::Names::default()).is_err());
    }

    #[test]
    fn request_heads_carry_our_framing_and_fields_only() {
        let mut h = HeaderMap::new();
        h.insert("content-length", HeaderValue::from_static("999"));
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert("host", HeaderValue::from_static("client"));
        let set: [(&HeaderName, &[u8]); 1] = [(&header::HOST, b"up:8080")];
        let mut out = Vec::new();
        RequestHead {
            omit: &[],
            method: &Method::POST,
            target: "/v1/x?y=1",
            headers: &h,
            set: &set,
            framing: ReqFraming::Length(3),
        }
        .encode(&mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "POST /v1/x?y=1 HTTP/1.1\r\nx-a: 1\r\nhost: up:8080\r\ncontent-length: 3\r\n\r\n"
        );
        RequestHead {
            omit: &[],
            method: &Method::PUT,
            target: "/",
            headers: &HeaderMap::new(),
            set: &[],
            framing: ReqFraming::Chunked,
        }
        .encode(&mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "PUT / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
        );
    }
}
