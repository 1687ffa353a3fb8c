//! What a request's stages learned on the way, for its response fields and its telemetry
//! record.

use std::sync::Arc;
use std::time::Duration;

use crate::admission::RateState;
use crate::caching;

/// What the request flow learned, for the response headers and the telemetry record.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) route: Option<Arc<str>>,
    /// The route's response transforms, and the client's `Accept-Encoding` when the
    /// route compresses.
    pub(crate) transform: Option<(Arc<crate::transform::Transform>, Option<http::HeaderValue>)>,
    /// The pool that answered (a fallback's, if it came to that).
    pub(crate) pool: Option<Arc<str>>,
    /// The endpoint of the last attempt.
    pub(crate) endpoint: Option<Arc<str>>,
    pub(crate) upstream_duration: Option<Duration>,
    /// Attempts sent upstream: retries and hedges included.
    pub(crate) attempts: u32,
    pub(crate) cache: Option<caching::Status>,
    /// The tightest rate limit's state, for the `x-ratelimit-*` fields.
    pub(crate) rate: Option<RateState>,
    /// How the answering pool's request was translated, when its provider needed it.
    pub(crate) translation: Option<std::sync::Arc<crate::dialect::Translation>>,
    /// The API the client speaks (its route's).
    pub(crate) dialect: flowgate_config::ClientDialect,
    /// What a Claude client asked, for its answer.
    pub(crate) claude: Option<flowgate_providers::anthropic::clients::Ask>,
    /// The model the request went to (OpenAI-shaped bodies): the client's, or the one the
    /// gateway chose.
    pub(crate) model: Option<Arc<str>>,
    /// When the gateway chose the model: the client's, and why.
    pub(crate) requested_model: Option<Arc<str>>,
    pub(crate) model_reason: Option<Arc<str>>,
    /// The answer tokens the request allows upstream (`max_tokens` × `n`, after shaping).
    pub(crate) max_tokens: Option<u64>,
    /// The caller's key, with `[auth]` on.
    pub(crate) caller: Option<Arc<crate::auth::Caller>>,
    /// The request's token reservation, settled by its answer's account.
    pub(crate) reservation: Option<crate::admission::Reservation>,
    /// What the route's shaping did to the request.
    pub(crate) shaped: Option<flowgate_cost::shaping::Shaped>,
    /// The request's body as read (an OpenAI request), for an estimate of its prompt.
    pub(crate) body: Option<bytes::Bytes>,
    /// A traced request's trace: its stages' times, for its spans.
    pub(crate) trace: Option<Box<flowgate_telemetry::trace::Trace>>,
    /// Where the request's time went, stage by stage, as its path marks it.
    pub(crate) laps: flowgate_telemetry::breakdown::Laps,
}
