//! The one record the data plane emits per request, when its answer has gone (or the
//! client left): what was asked, by whom, what answered, how fast, and what it cost.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use flowgate_cost::Usage;
use rust_decimal::Decimal;

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
    /// When its head arrived, Unix milliseconds.
    pub at_ms: u64,
    /// From its head received to the answer's last byte (or the client leaving).
    pub total: Duration,
    pub method: http::Method,
    /// The path and query as routed.
    pub uri: http::Uri,
    pub request_id: http::HeaderValue,
    pub peer: Option<IpAddr>,
    /// The caller's virtual key (by name) and its team, with `[auth]` on.
    pub key: Option<Arc<str>>,
    pub team: Option<Arc<str>>,
    /// The model the request went to: the client's, or the one the gateway chose.
    pub model: Option<Arc<str>>,
    /// When the gateway chose the model: the one the client asked for, and why.
    pub requested_model: Option<Arc<str>>,
    pub model_reason: Option<Arc<str>>,
    /// The answering pool's provider (`openai`, `anthropic`, ...).
    pub provider: Option<&'static str>,
    /// What the cache did (`hit-l1`, `miss`, ...), on cached routes.
    pub cache: Option<&'static str>,
    /// Attempts sent upstream (retries and hedges included).
    pub attempts: u32,
    /// The tokens of an LLM answer and their price, once its body ended.
    pub spend: Option<Spend>,
    /// What the route's prompt shaping changed.
    pub shaped: Option<flowgate_cost::shaping::Shaped>,
    /// A traced request's trace (its stages' times, for its spans).
    pub trace: Option<Box<crate::trace::Trace>>,
    /// Where its time went before the answer's head, as marked on its path
    /// ([`RequestRecord::stages`] completes it).
    pub laps: crate::breakdown::Breakdown,
}

/// What an answer used and cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spend {
    pub usage: Usage,
    /// No usage came: the tokens are estimated.
    pub estimated: bool,
    /// At the model's price, in US dollars; `None` for a model without one.
    pub usd: Option<Decimal>,
    /// Answered by flowgate's cache (or by another request's flight): `usd` was saved,
    /// not spent.
    pub cached: bool,
    /// The answer tokens the request allowed (`max_tokens` × `n`), when it said.
    pub max_tokens: Option<u64>,
}

impl RequestRecord {
    /// A record of which nothing is known yet: no route (`"-"`), status 0, no durations.
    pub fn empty() -> Self {
        RequestRecord {
            route: Arc::from("-"),
            pool: None,
            endpoint: None,
            status: 0,
            duration: Duration::ZERO,
            upstream_duration: None,
            error: None,
            at_ms: 0,
            total: Duration::ZERO,
            method: http::Method::GET,
            uri: http::Uri::from_static("/"),
            request_id: http::HeaderValue::from_static(""),
            peer: None,
            key: None,
            team: None,
            model: None,
            requested_model: None,
            model_reason: None,
            provider: None,
            cache: None,
            attempts: 0,
            spend: None,
            shaped: None,
            trace: None,
            laps: crate::breakdown::Breakdown::default(),
        }
    }

    /// Where its time went, stage by stage, to the answer's last byte.
    pub fn stages(&self) -> crate::breakdown::Breakdown {
        self.laps
            .complete(self.duration, self.total.max(self.duration))
    }

    /// Whether this request counts as an error for error rates: 5xx or a gateway failure
    /// other than a client's own mistake.
    pub fn is_error(&self) -> bool {
        self.status >= 500
            || matches!(self.error, Some(e) if e != ErrorKind::Client && e != ErrorKind::Cancelled)
    }
}
