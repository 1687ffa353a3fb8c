//! Every error a client can see, and the one place that turns it into a response: JSON in
//! the OpenAI error shape (`{"error":{"message","type","param","code"}}`) with the right
//! status.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::json;

use flowgate_http::server::HeadError;
use flowgate_telemetry::ErrorKind;

/// What went wrong with a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProxyError {
    #[error("no route matches {method} {path}")]
    NoRoute { method: String, path: String },
    /// A route that serves by model, asked for one it does not serve.
    #[error("{}", model_not_found(model, closest))]
    ModelNotFound { model: String, closest: Vec<String> },
    #[error("method {method} is not allowed on {path} (allowed: {allowed})")]
    MethodNotAllowed {
        method: String,
        path: String,
        allowed: String,
    },
    #[error("request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: u64 },
    #[error("request headers are larger than the limit of {limit} bytes")]
    HeadersTooLarge { limit: usize },
    #[error("request has more than {limit} header fields")]
    TooManyHeaders { limit: usize },
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    #[error("invalid caching header {0}")]
    BadCacheDirective(String),
    #[error("could not connect to upstream {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    #[error("upstream {endpoint} closed the connection without a complete response: {reason}")]
    UpstreamClosed { endpoint: String, reason: String },
    #[error("upstream {endpoint} did not answer within {}", flowgate_config::format_duration(*.timeout))]
    Timeout { endpoint: String, timeout: Duration },
    #[error("upstream pool {pool} has no endpoint to send to")]
    NoEndpoint { pool: String },
    #[error("{0}")]
    RateLimited(Box<crate::admission::refusal::Refusal>),
    /// A budget at its `block` threshold (as judged at `now`, Unix seconds).
    #[error("{}", budget_exceeded(blocked))]
    BudgetExceeded {
        blocked: Box<flowgate_cost::budget::Blocked>,
        now: u64,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("API key {key} may not use {what} {name:?}")]
    NotAllowed {
        key: String,
        /// `route` or `model`.
        what: &'static str,
        name: String,
    },
    #[error(
        "the prompt is about {estimated} tokens, more than this route's limit of {limit} \
         (estimated without a tokenizer: about 4 characters a token)"
    )]
    PromptTooLarge { estimated: u64, limit: u64 },
    #[error("{0}")]
    Overloaded(Box<crate::queues::overload::Overload>),
    /// Shed by the memory governor: memory is near its limit.
    #[error(
        "flowgate is short of memory and sheds {} priority requests; retry in {}",
        priority.as_str(),
        flowgate_config::format_duration(*retry_after)
    )]
    MemoryPressure {
        priority: flowgate_config::Priority,
        retry_after: Duration,
    },
    /// Refused by the route's `shed` (written, or set by an automation rule).
    #[error(
        "route {route:?} sheds {} priority requests and below for now; retry in {}",
        priority.as_str(),
        flowgate_config::format_duration(*retry_after)
    )]
    Shed {
        route: String,
        priority: flowgate_config::Priority,
        retry_after: Duration,
    },
    #[error("x-flowgate-priority {0:?} is not a priority: use critical, high, normal or low")]
    BadPriority(String),
    /// The request asks for what the pool's provider cannot do (`n > 1` on Anthropic).
    #[error("{0}")]
    Unsupported(flowgate_providers::Unsupported),
    /// A request the listener could not read as HTTP/1.1.
    #[error("malformed request: {0}")]
    BadRequest(String),
    /// A well-formed request asking for what is not implemented.
    #[error("not implemented: {0}")]
    NotImplemented(String),
    /// The request head did not arrive in time.
    #[error("request head not received within {}", flowgate_config::format_duration(*.0))]
    HeadTimeout(Duration),
    /// The request body stopped arriving.
    #[error("the client sent nothing of its request body for {}", flowgate_config::format_duration(*.0))]
    BodyTimeout(Duration),
}

impl From<HeadError> for ProxyError {
    fn from(e: HeadError) -> Self {
        match e {
            HeadError::Malformed(m) => ProxyError::BadRequest(m),
            HeadError::TooLarge { limit } => ProxyError::HeadersTooLarge { limit },
            HeadError::TooManyFields { limit } => ProxyError::TooManyHeaders { limit },
            HeadError::Timeout(d) => ProxyError::HeadTimeout(d),
            HeadError::Unsupported(what) => ProxyError::NotImplemented(what),
        }
    }
}

fn budget_exceeded(b: &flowgate_cost::budget::Blocked) -> String {
    let whose = if b.value.is_empty() {
        String::new()
    } else {
        format!(" for {:?}", b.value)
    };
    format!(
        "budget {:?}{whose} has spent ${} of ${}: requests that would spend more are refused until {}",
        b.budget,
        flowgate_cost::budget::usd_of(b.spent_nanos),
        flowgate_cost::budget::usd_of(b.limit_nanos),
        flowgate_clock::rfc3339_millis(b.resets_at.saturating_mul(1000))
    )
}

fn model_not_found(model: &str, closest: &[String]) -> String {
    let model = truncate_model(model);
    match closest {
        [] => format!("the model {model:?} is not served here"),
        _ => format!(
            "the model {model:?} is not served here; did you mean {}? (GET /v1/models lists them)",
            closest
                .iter()
                .map(|c| format!("{c:?}"))
                .collect::<Vec<_>>()
                .join(" or ")
        ),
    }
}

/// A client's model name, cut to a sane length for an error.
fn truncate_model(model: &str) -> &str {
    match model.char_indices().nth(100) {
        Some((i, _)) => &model[..i],
        None => model,
    }
}

impl ProxyError {
    /// The HTTP status a client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute { .. } | ProxyError::ModelNotFound { .. } => StatusCode::NOT_FOUND,
            ProxyError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::BodyTooLarge { .. } | ProxyError::PromptTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ProxyError::HeadersTooLarge { .. } | ProxyError::TooManyHeaders { .. } => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            ProxyError::InvalidJson(_)
            | ProxyError::BodyRead(_)
            | ProxyError::BadCacheDirective(_)
            | ProxyError::BadPriority(_)
            | ProxyError::Unsupported(_)
            | ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            // A key over its share is the client's doing; a busy route or pool is not.
            ProxyError::Overloaded(o) if o.scope == crate::queues::overload::Scope::Key => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ProxyError::Overloaded(_)
            | ProxyError::MemoryPressure { .. }
            | ProxyError::Shed { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Connect { .. } | ProxyError::UpstreamClosed { .. } => {
                StatusCode::BAD_GATEWAY
            }
            ProxyError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::NoEndpoint { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::RateLimited(_) | ProxyError::BudgetExceeded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ProxyError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ProxyError::NotAllowed { .. } => StatusCode::FORBIDDEN,
            ProxyError::HeadTimeout(_) | ProxyError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
        }
    }

    /// The OpenAI error `type`.
    pub fn error_type(&self) -> &'static str {
        if let ProxyError::RateLimited(r) = self {
            // As OpenAI answers a rate limit.
            r.unit.as_str()
        } else if let ProxyError::Overloaded(_)
        | ProxyError::MemoryPressure { .. }
        | ProxyError::Shed { .. } = self
        {
            "overloaded"
        } else if let ProxyError::BudgetExceeded { .. } = self {
            // As OpenAI answers an account out of credit.
            "insufficient_quota"
        } else if self.status().is_client_error() || matches!(self, ProxyError::NotImplemented(_)) {
            "invalid_request_error"
        } else {
            "upstream_error"
        }
    }

    /// A stable machine-readable `code`.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::NoRoute { .. } => "route_not_found",
            ProxyError::ModelNotFound { .. } => "model_not_found",
            ProxyError::MethodNotAllowed { .. } => "method_not_allowed",
            ProxyError::BodyTooLarge { .. } => "request_too_large",
            ProxyError::PromptTooLarge { .. } => "prompt_too_large",
            ProxyError::HeadersTooLarge { .. } | ProxyError::TooManyHeaders { .. } => {
                "headers_too_large"
            }
            ProxyError::InvalidJson(_) => "invalid_json",
            ProxyError::BodyRead(_) => "invalid_body",
            ProxyError::BadCacheDirective(_) => "invalid_cache_header",
            ProxyError::Connect { .. } => "upstream_unreachable",
            ProxyError::UpstreamClosed { .. } => "upstream_closed",
            ProxyError::Timeout { .. } => "upstream_timeout",
            ProxyError::NoEndpoint { .. } => "no_healthy_upstream",
            ProxyError::RateLimited(_) => "rate_limit_exceeded",
            ProxyError::BudgetExceeded { .. } => "insufficient_quota",
            ProxyError::Overloaded(o) if o.scope == crate::queues::overload::Scope::Key => {
                "concurrency_limit_exceeded"
            }
            ProxyError::Overloaded(_) => "overloaded",
            ProxyError::MemoryPressure { .. } => "memory_pressure",
            ProxyError::Shed { .. } => "shed",
            ProxyError::BadPriority(_) => "invalid_priority",
            ProxyError::Unsupported(_) => "unsupported_parameter",
            ProxyError::BadRequest(_) => "invalid_request",
            ProxyError::HeadTimeout(_) | ProxyError::BodyTimeout(_) => "request_timeout",
            ProxyError::NotImplemented(_) => "not_implemented",
            ProxyError::Unauthorized(_) => "invalid_api_key",
            ProxyError::NotAllowed { what: "model", .. } => "model_not_allowed",
            ProxyError::NotAllowed { .. } => "route_not_allowed",
        }
    }

    /// Whether sending the same request again (elsewhere) is safe: only when the upstream
    /// cannot have seen it.
    pub fn retry_safe(&self) -> bool {
        matches!(self, ProxyError::Connect { .. })
    }

    /// How this error is counted in telemetry.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ProxyError::Connect { .. } | ProxyError::NoEndpoint { .. } => ErrorKind::Connect,
            ProxyError::Timeout { .. } => ErrorKind::Timeout,
            ProxyError::UpstreamClosed { .. } => ErrorKind::Upstream,
            _ => ErrorKind::Client,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Bytes {
        error_body(&self.to_string(), self.error_type(), self.code())
    }

    /// The whole response (body type chosen by the caller).
    pub fn into_response<B: From<Bytes>>(&self) -> Response<B> {
        let mut r = json_response(self.status(), self.body());
        if let ProxyError::RateLimited(refusal) = self {
            let h = r.headers_mut();
            // Whole seconds, rounded up: a client that waits that long is admitted.
            if let Some(d) = refusal.retry_after {
                let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
                h.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            refusal.state.write(h);
        }
        if let ProxyError::BudgetExceeded { blocked: b, now } = self {
            let h = r.headers_mut();
            h.insert(
                header::RETRY_AFTER,
                HeaderValue::from(b.resets_at.saturating_sub(*now).max(1)),
            );
            h.insert(
                crate::headers::BUDGET_RESET.clone(),
                HeaderValue::from(b.resets_at),
            );
        }
        if let ProxyError::Overloaded(_) = self {
            // The queue moves in well under a second when it moves at all.
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let ProxyError::MemoryPressure { retry_after, .. }
        | ProxyError::Shed { retry_after, .. } = self
        {
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs().max(1)),
            );
        }
        r
    }
}

/// `{"error":{...}}` for a message, type and code.
pub fn error_body(message: &str, kind: &str, code: &str) -> Bytes {
    let v = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    Bytes::from(v.to_string())
}

/// A JSON response with this status and body.
pub fn json_response<B: From<Bytes>>(status: StatusCode, body: Bytes) -> Response<B> {
    let mut r = Response::new(B::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_openai_shaped() {
        let e = ProxyError::BodyTooLarge { limit: 10 };
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "request_too_large");
        assert!(v["error"]["message"].as_str().unwrap().contains("10 bytes"));
        let t = ProxyError::Timeout {
            endpoint: "a".into(),
            timeout: Duration::from_secs(2),
        };
        assert_eq!(t.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(t.to_string().contains("within 2s"));
        assert!(!t.retry_safe());
    }

    #[test]
    fn heads_the_listener_refuses_get_the_gateway_errors() {
        let e = ProxyError::from(HeadError::Timeout(Duration::from_secs(10)));
        assert_eq!(e.status(), StatusCode::REQUEST_TIMEOUT);
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"]["code"], "request_timeout");
        assert!(v["error"]["message"].as_str().unwrap().contains("10s"));
        let e = ProxyError::from(HeadError::TooManyFields { limit: 8 });
        assert_eq!(e.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        let e = ProxyError::from(HeadError::Malformed("bad".into()));
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::BAD_REQUEST, "invalid_request")
        );
    }
}
