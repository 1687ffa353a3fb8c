//! Bedrock's errors in OpenAI's shape. AWS names the error in `x-amzn-errortype`
//! (`ThrottlingException:http://...`) and puts its words in `message`; the status follows
//! the error's kind: throttling → 429 (the caller adds `Retry-After` when AWS gave none),
//! `ServiceUnavailable` and `ModelNotReady` → 503 (the balancer retries and fails over),
//! a bad signature, an unknown key or an expired token → 401, validation → 400 with AWS's
//! message.

use serde_json::Value;

use crate::openai::error_body;

/// The status and OpenAI-shaped body for a Bedrock error answer (`status`, its
/// `x-amzn-errortype` if any, `body`).
pub fn error(status: u16, error_type: Option<&str>, body: &[u8]) -> (u16, Value) {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
    };
    // The header's type, else the body's `__type` (`com.amazon...#ThrottlingException`).
    let kind = error_type
        .or_else(|| field("__type"))
        .map(|t| {
            let t = t.split(':').next().unwrap_or(t);
            t.rsplit('#').next().unwrap_or(t)
        })
        .unwrap_or("");
    let message = field("message").or_else(|| field("Message")).map_or_else(
        || String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
        str::to_string,
    );
    let (status, openai_type, code) = match (kind, status) {
        ("ThrottlingException" | "ServiceQuotaExceededException", _) | (_, 429)
            if kind != "ModelNotReadyException" =>
        {
            (429, "rate_limit_error", "rate_limit_exceeded")
        }
        ("ServiceUnavailableException" | "ModelNotReadyException", _) | (_, 503) => {
            (503, "server_error", "upstream_overloaded")
        }
        (
            "UnrecognizedClientException"
            | "ExpiredTokenException"
            | "InvalidSignatureException"
            | "IncompleteSignatureException"
            | "MissingAuthenticationTokenException",
            _,
        )
        | (_, 401) => (401, "authentication_error", "upstream_auth_failed"),
        ("AccessDeniedException", _) | (_, 403) => {
            (403, "permission_error", "upstream_permission_denied")
        }
        ("ResourceNotFoundException", _) | (_, 404) => {
            (404, "invalid_request_error", "model_not_found")
        }
        ("ModelTimeoutException", _) | (_, 408) => (504, "timeout_error", "upstream_timeout"),
        ("ValidationException", _) => (400, "invalid_request_error", "invalid_request"),
        (_, 413) => (413, "invalid_request_error", "request_too_large"),
        (_, 400..=499) if kind != "ModelErrorException" => {
            (400, "invalid_request_error", "invalid_request")
        }
        _ => (502, "upstream_error", "upstream_error"),
    };
    let message = if kind.is_empty() {
        format!("bedrock: {message}")
    } else {
        format!("bedrock: {kind}: {message}")
    };
    (status, error_body(&message, openai_type, None, code))
}
