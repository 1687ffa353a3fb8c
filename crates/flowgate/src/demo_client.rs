//! The demo's client side, shared by its sections: one request as the client saw it
//! (status, error code, the gateway's fields), a JSON read of the admin API, percentiles.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// What the client saw of one request.
#[derive(Debug)]
pub(crate) struct Seen {
    pub latency: Duration,
    pub status: u16,
    pub code: Option<String>,
    pub upstream: Option<String>,
    /// `x-flowgate-cache`.
    pub cache: Option<String>,
    /// `x-flowgate-model`: the model the gateway chose, when it chose.
    pub model: Option<String>,
}

#[allow(clippy::disallowed_methods)] // the demo client measures real elapsed time
pub(crate) async fn one_request(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    body: Bytes,
    headers: &[(&str, &str)],
) -> Seen {
    let start = Instant::now();
    let mut req = http::Request::post(url).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body));
    let Ok(req) = req else {
        return Seen {
            latency: start.elapsed(),
            status: 0,
            code: Some("client: bad request".into()),
            upstream: None,
            cache: None,
            model: None,
        };
    };
    match client.request(req).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let field = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let (upstream, cache) = (field("x-flowgate-upstream"), field("x-flowgate-cache"));
            let model = field("x-flowgate-model");
            let body = resp.into_body().collect().await.map(|b| b.to_bytes());
            let code = match (&body, status) {
                (Err(_), _) => Some("stream cut".to_string()),
                (Ok(b), s) if s >= 400 => Some(error_code(s, b)),
                _ => None,
            };
            Seen {
                latency: start.elapsed(),
                status,
                code,
                upstream,
                cache,
                model,
            }
        }
        Err(e) => Seen {
            latency: start.elapsed(),
            status: 0,
            code: Some(format!("client: {e}")),
            upstream: None,
            cache: None,
            model: None,
        },
    }
}

/// `STATUS code` from an OpenAI-shaped error body.
fn error_code(status: u16, body: &Bytes) -> String {
    let code = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/code")
                .and_then(|c| c.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "-".into());
    format!("{status} {code}")
}

pub(crate) async fn fetch_json(url: &str) -> Option<serde_json::Value> {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let resp = client.get(url.parse().ok()?).await.ok()?;
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    serde_json::from_slice(&body).ok()
}

/// POSTs `body` (JSON) to `url`: the status and the JSON answer (null when not JSON).
pub(crate) async fn post_json(
    url: &str,
    body: &serde_json::Value,
) -> Option<(u16, serde_json::Value)> {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let req = http::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .ok()?;
    let resp = client.request(req).await.ok()?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, serde_json::from_slice(&body).unwrap_or_default()))
}

pub(crate) fn pct(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}
