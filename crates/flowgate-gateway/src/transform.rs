//! The last stage, response transforms (a route's `transform`, `flowgate_transform`):
//! an answer as its client will get it — after the cache (which keeps the answer as
//! the upstream gave it, so that each client gets its own transform), the account and a
//! Claude client's translation — has its JSON rewritten (minified, `null` members
//! dropped, fields redacted) and is compressed with the coding the client's
//! `Accept-Encoding` prefers among the route's, when it is over `compress_above`.
//!
//! Left as they are: streamed answers (`text/event-stream`: never buffered), answers the
//! upstream encoded already, answers without a body (HEAD, 204, 304). A transformed
//! answer is whole before it is sent (its body is gathered: a non-streamed answer).

use bytes::Bytes;
use flowgate_config::TransformConfig;
use flowgate_transform::{Encoding, JsonRewrite, Redaction};
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::BodyExt;

use crate::body::ProxyBody;
use crate::error::ProxyError;

/// The levels each coding compresses at: gzip 6 (zlib's default), br 4 and zstd 3 (the
/// levels their authors suggest for dynamic content).
fn level(e: Encoding) -> u32 {
    match e {
        Encoding::Gzip => 6,
        Encoding::Br => 4,
        Encoding::Zstd => 3,
    }
}

/// A route's transforms, ready to apply.
#[derive(Debug)]
pub struct Transform {
    json: JsonRewrite,
    codings: Vec<Encoding>,
    above: u64,
    /// The redaction the cache's stored copies get (`redact_cached`).
    cached: Option<JsonRewrite>,
}

impl Transform {
    /// `cfg`'s transforms; `None` when they change nothing.
    pub fn new(cfg: &TransformConfig) -> Option<Transform> {
        // Validation checks each field.
        let redact = Redaction::new(&cfg.redact).unwrap_or_default();
        let t = Transform {
            cached: cfg.redact_cached.then(|| JsonRewrite {
                redact: redact.clone(),
                ..JsonRewrite::default()
            }),
            json: JsonRewrite {
                minify: cfg.minify,
                drop_nulls: cfg.drop_nulls,
                redact,
            },
            codings: cfg
                .compress
                .iter()
                .filter_map(|c| Encoding::parse(c))
                .collect(),
            above: cfg.compress_above,
        };
        (!t.json.is_off() || !t.codings.is_empty()).then_some(t)
    }

    /// Whether the cache keeps the route's answers redacted.
    pub fn scrubs(&self) -> bool {
        self.cached.is_some()
    }

    /// `body` as the cache keeps it: redacted when `redact_cached` (and it is JSON).
    pub fn scrub(&self, body: Bytes) -> Bytes {
        match self.cached.as_ref().map(|r| r.apply(&body)) {
            Some(Ok(b)) => Bytes::from(b),
            _ => body,
        }
    }

    /// Whether the client's `Accept-Encoding` matters (the route compresses).
    pub fn compresses(&self) -> bool {
        !self.codings.is_empty()
    }
}

fn is_json(resp: &Response<ProxyBody>) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || m.ends_with("+json")
        })
}

/// `resp` transformed by `t` for a client that accepts `accept`; `head`: the request was
/// a HEAD (no body to transform).
pub async fn apply(
    t: &Transform,
    resp: Response<ProxyBody>,
    accept: Option<&HeaderValue>,
    head: bool,
) -> Response<ProxyBody> {
    let mut resp = resp;
    if t.compresses() {
        // Whatever is sent, what a shared cache keeps depends on the client's codings.
        resp.headers_mut()
            .append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    rewrite(t, resp, accept, head).await
}

async fn rewrite(
    t: &Transform,
    resp: Response<ProxyBody>,
    accept: Option<&HeaderValue>,
    head: bool,
) -> Response<ProxyBody> {
    let h = resp.headers();
    let streamed = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
    let bodiless = head
        || resp.status().is_informational()
        || matches!(
            resp.status(),
            StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
        );
    if streamed || bodiless || h.contains_key(header::CONTENT_ENCODING) {
        return resp;
    }
    let json = is_json(&resp) && !t.json.is_off();
    let coding = accept
        .and_then(|a| a.to_str().ok())
        .and_then(|a| flowgate_transform::negotiate(a, &t.codings));
    if !json && coding.is_none() {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let mut bytes: Bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            let e = ProxyError::UpstreamClosed {
                endpoint: "the answer".into(),
                reason: e.to_string(),
            };
            return e.into_response();
        }
    };
    if json && let Ok(rewritten) = t.json.apply(&bytes) {
        bytes = Bytes::from(rewritten);
    }
    if let Some(c) = coding.filter(|_| bytes.len() as u64 >= t.above) {
        bytes = Bytes::from(c.compress(&bytes, level(c)));
        parts.headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(c.as_str()),
        );
        // Another representation: a strong validator of the plain one no longer holds.
        if let Some(tag) = parts
            .headers
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            && !tag.starts_with("W/")
            && let Ok(weak) = HeaderValue::try_from(format!("W/{tag}"))
        {
            parts.headers.insert(header::ETAG, weak);
        }
    }
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Response::from_parts(parts, ProxyBody::from(bytes))
}
