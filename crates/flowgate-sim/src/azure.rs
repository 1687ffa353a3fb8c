//! Azure OpenAI's data-plane API as the simulator speaks it, after Azure's REST reference:
//! `POST /openai/deployments/{deployment}/chat/completions` (and `/completions`,
//! `/embeddings`) with an `api-version` query and the key in `api-key` (or an Entra token in
//! `Authorization: Bearer`); the bodies and answers are OpenAI's, the model the deployment.
//! Without `api-version` Azure answers 404 `Resource not found`; without a valid key, 401.

use http::{HeaderMap, Response, StatusCode, Uri};
use serde_json::json;

use crate::body::SimBody;
use crate::reply::json_response;
use crate::spec::EndpointSpec;

/// The deployment and operation (`chat/completions`...) of an Azure path.
pub(crate) fn operation(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/openai/deployments/")?;
    let (deployment, op) = rest.split_once('/')?;
    matches!(op, "chat/completions" | "completions" | "embeddings").then_some((deployment, op))
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<SimBody> {
    json_response(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

/// What Azure refuses before serving: no `api-version`, no key or another key.
pub(crate) fn refusal(
    spec: &EndpointSpec,
    uri: &Uri,
    headers: &HeaderMap,
) -> Option<Response<SimBody>> {
    let versioned = uri.query().unwrap_or_default().split('&').any(|p| {
        p.strip_prefix("api-version=")
            .is_some_and(|v| !v.is_empty())
    });
    if !versioned {
        return Some(error(StatusCode::NOT_FOUND, "404", "Resource not found"));
    }
    let key = headers
        .get("api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        })
        .filter(|k| !k.is_empty());
    let good = match (&spec.azure_key, key) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(want), Some(k)) => want == k,
    };
    (!good).then(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
        )
    })
}
