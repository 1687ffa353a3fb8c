//! The admin API's error answers: JSON in the OpenAI error shape, as the data plane's.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::error_body;

/// The content type of Prometheus metrics.
pub(super) static OPENMETRICS: HeaderValue =
    HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8");

pub(super) fn client_error(status: StatusCode, message: &str, code: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        error_body(message, "invalid_request_error", code),
    )
        .into_response()
}

/// The gateway failed to read what was asked (a store that cannot be read).
pub(super) fn server_error(message: &str) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "application/json")],
        error_body(message, "server_error", "internal_error"),
    )
        .into_response()
}

pub(super) async fn not_found() -> Response {
    let body = error_body(
        "no such admin endpoint",
        "invalid_request_error",
        "not_found",
    );
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}
