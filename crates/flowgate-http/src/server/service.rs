//! What the listener serves: a [`Service`] answers each request, and says how requests
//! it could not read are answered and what the limits of a new connection are.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flowgate_clock::SharedClock;
use http::{HeaderValue, Request, Response};
use http_body::Body;
use prometheus_client::metrics::counter::Counter;

use super::{ClientBody, Connections};
use crate::BoxError;

/// A handler of the listener's requests.
pub trait Service: Send + Sync + Sized + 'static {
    /// The body of its answers.
    type Body: Body<Data = Bytes, Error = BoxError> + Send + Unpin + 'static;

    /// Answers one request. Never fails: an error is an answer too.
    fn call(
        self: &Arc<Self>,
        req: Request<ClientBody>,
        peer: &Peer,
    ) -> impl Future<Output = Response<Self::Body>> + Send;

    /// The answer to a request the listener could not read (the connection closes after
    /// it). Its body should be whole: the 408 of a head deadline is written at once.
    fn refuse(&self, e: &HeadError) -> Response<Self::Body>;

    /// The limits for a new connection (read at each accept: they may change on reload).
    fn settings(&self) -> Settings;

    /// The clock of the `Date` field.
    fn clock(&self) -> &SharedClock;

    /// Counts the connections worker `worker` accepts.
    fn accepted_counter(&self, worker: usize) -> Counter {
        let _ = worker;
        Counter::default()
    }

    /// The listener stopped accepting and drains its connections.
    fn on_drain(&self) {}

    /// The connections open on every listener of this service, against the caps.
    fn connections(&self) -> &Arc<Connections>;

    /// A connection was closed as it was accepted, over a cap.
    fn on_refused_connection(&self) {}

    /// The TLS configuration of new connections (read at each accept), or `None` for
    /// cleartext.
    fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        None
    }

    /// A client's TLS handshake failed, for `reason` in a word (`timeout`, `alert`,
    /// `bad_certificate`, `handshake`, `io`...).
    fn on_handshake_failed(&self, reason: &'static str) {
        let _ = reason;
    }
}

/// What the listener holds connections to.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub limits: Limits,
    /// Whether a connection may open with the HTTP/2 preface (h2c, prior knowledge).
    pub http2: bool,
    /// How long in-flight requests get to finish once the listener stops.
    pub drain_timeout: Duration,
    /// Client connections open at once, over all workers (0: no cap).
    pub max_connections: usize,
    /// Client connections open at once from one address (0: no cap).
    pub max_connections_per_address: usize,
}

/// The limits on request heads.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request head (request line and fields).
    pub max_header_bytes: usize,
    /// Most fields in one request head.
    pub max_headers: usize,
    /// Time a connection may take to send a request head.
    pub header_read_timeout: Duration,
    /// Longest gap between two pieces of a request body read off the connection.
    pub body_read_timeout: Duration,
    /// Longest a response write may wait for a client that does not read.
    pub send_timeout: Duration,
}

/// Why a request head could not be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// Not HTTP/1.1 as RFC 9112 has it (or a framing the listener refuses).
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("request headers are larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("request has more than {limit} header fields")]
    TooManyFields { limit: usize },
    /// Well-formed, but asks for what is not implemented (a transfer coding besides
    /// `chunked`): 501.
    #[error("not implemented: {0}")]
    Unsupported(String),
    /// The head did not arrive within the connection's head deadline.
    #[error("request head not received within {}", flowgate_clock::format_duration(*.0))]
    Timeout(Duration),
}

/// The client end of a connection, with its address ready to forward.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    ip: HeaderValue,
    /// Whether the connection is TLS (the scheme the client used is `https`).
    pub tls: bool,
}

impl Peer {
    pub fn new(addr: SocketAddr) -> Self {
        let ip = HeaderValue::from_str(&addr.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        Peer {
            addr,
            ip,
            tls: false,
        }
    }

    /// The same client, over TLS.
    #[must_use]
    pub fn over_tls(self) -> Self {
        Peer { tls: true, ..self }
    }

    /// The client's IP address as a field value.
    pub fn ip(&self) -> &HeaderValue {
        &self.ip
    }
}
