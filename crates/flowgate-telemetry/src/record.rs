//! The one record the data plane emits per request.

use std::sync::Arc;
use std::time::Duration;

/// Why a request failed inside the gateway (as opposed to an upstream answering 5xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Could not connect to any endpoint.
    Connect,
    /// The upstream did not answer within the request timeout.
    Timeout,
    /// The upstream reset the connection or sent something unparseable.
    Upstream,
    /// The client sent something we refused (4xx from the gateway).
    Client,
    /// The client went away before the response finished.
    Cancelled,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Upstream => "upstream",
            ErrorKind::Client => "client",
            ErrorKind::Cancelled => "cancelled",
        }
    }
}

/// What happened to one request.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// Route name (`"-"` when no route matched).
    pub route: Arc<str>,
    /// Pool name, when a route matched.
    pub pool: Option<Arc<str>>,
    /// Endpoint that answered, when one did.
    pub endpoint: Option<Arc<str>>,
    /// Status sent to the client.
    pub status: u16,
    /// From request head received to response head sent.
    pub duration: Duration,
    /// From upstream request sent to upstream response head received.
    pub upstream_duration: Option<Duration>,
    /// Set when the gateway itself failed the request.
    pub error: Option<ErrorKind>,
}

impl RequestRecord {
    /// Whether this request counts as an error for error rates: 5xx or a gateway failure
    /// other than a client's own mistake.
    pub fn is_error(&self) -> bool {
        self.status >= 500
            || matches!(self.error, Some(e) if e != ErrorKind::Client && e != ErrorKind::Cancelled)
    }
}
