//! The response cache on the request path of openai routes.
//!
//! After the body is read: the request's key and the cache decision ([`plan`]); a fresh
//! entry answers at once; an identical request already upstream is waited for; otherwise
//! the request goes upstream as the flight's leader and a successful, complete JSON
//! response is copied into the cache as it streams to the client ([`Tee`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use flowgate_cache::openai::OpenAiRequest;
use flowgate_cache::policy::{self, Decision};
use flowgate_cache::{Cache, CachedResponse, Directives, Entry, Leader, Mode, Usage};
use flowgate_config::CacheMode;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::router::RouteEntry;

/// `x-flowgate-cache`: what the cache did for a response.
pub static CACHE_STATUS: HeaderName = HeaderName::from_static("x-flowgate-cache");
static TTL_HEADER: HeaderName = HeaderName::from_static("x-flowgate-cache-ttl");
static NAMESPACE_HEADER: HeaderName = HeaderName::from_static("x-flowgate-cache-namespace");

/// What the cache did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    HitMemory,
    Miss,
    Coalesced,
    Bypass,
}

impl Status {
    pub fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Status::HitMemory => "hit-l1",
            Status::Miss => "miss",
            Status::Coalesced => "coalesced",
            Status::Bypass => "bypass",
        })
    }
}

/// A request the cache may answer.
#[derive(Debug)]
pub struct Planned {
    pub key: flowgate_cache::CacheKey,
    pub read: bool,
    pub max_age: Option<Duration>,
    pub ttl: Duration,
}

/// The cache decision for one request.
#[derive(Debug)]
pub enum Plan {
    /// The route does not use the cache: no `x-flowgate-cache` header.
    Off,
    Bypass,
    Use(Planned),
}

/// Decides for an openai request with `body`. A malformed caching header is the client's
/// error (400).
pub fn plan(
    route: &RouteEntry,
    default_ttl: Duration,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Plan, ProxyError> {
    let mode = match route.cfg.cache.mode {
        CacheMode::Off => return Ok(Plan::Off),
        CacheMode::Deterministic => Mode::Deterministic,
        CacheMode::Always => Mode::Always,
    };
    let directives = Directives::parse(
        headers
            .get(header::CACHE_CONTROL)
            .map(HeaderValue::as_bytes),
        headers.get(&TTL_HEADER).map(HeaderValue::as_bytes),
        headers.get(&NAMESPACE_HEADER).map(HeaderValue::as_bytes),
    )
    .map_err(|e| ProxyError::BadCacheDirective(e.to_string()))?;
    // The body was parsed already (400 if it is not JSON); a body that is not an object
    // is simply not cached.
    let Ok(request) = OpenAiRequest::parse(body) else {
        return Ok(Plan::Bypass);
    };
    let k = request.into_key();
    match policy::decide(mode, k.deterministic, k.stream, &directives) {
        Decision::Bypass(_) => Ok(Plan::Bypass),
        Decision::Use { read } => {
            let namespace = directives
                .namespace
                .clone()
                .unwrap_or_else(|| route.cache_namespace.clone());
            Ok(Plan::Use(Planned {
                key: k.material.finish(namespace),
                read,
                max_age: directives.max_age,
                ttl: directives
                    .ttl
                    .or(route.cfg.cache.ttl)
                    .unwrap_or(default_ttl),
            }))
        }
    }
}

/// The response for a cached entry, `age` old (`x-flowgate-cache` is added with the other
/// gateway fields by `Gateway::handle`).
pub fn respond(entry: &Entry, age: Duration) -> Response<ProxyBody> {
    let r = &entry.response;
    let mut resp = Response::new(ProxyBody::from(r.body.clone()));
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
    let h = resp.headers_mut();
    for (name, value) in &r.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_maybe_shared(value.clone()),
        ) {
            h.append(n, v);
        }
    }
    h.insert(header::AGE, HeaderValue::from(age.as_secs()));
    resp
}

/// Response fields worth replaying: not per-response ones (dates, cookies, ids, framing).
fn keep_header(name: &HeaderName) -> bool {
    !(name == header::DATE
        || name == header::SET_COOKIE
        || name == header::CONTENT_LENGTH
        || name == header::TRANSFER_ENCODING
        || name == header::AGE
        || name.as_str() == "x-request-id"
        || name.as_str().starts_with("x-flowgate-"))
}

/// Copies a response into the cache as it streams to the client.
#[derive(Debug)]
pub struct Tee {
    cache: Arc<Cache>,
    leader: Leader,
    ttl: Duration,
    status: u16,
    headers: Vec<(String, Bytes)>,
    body: BytesMut,
}

impl Tee {
    /// A tee for a response with `status` and `headers`, when it may be stored: a
    /// successful JSON answer (streams are not stored yet). Otherwise the leader is dropped
    /// and the requests waiting on it go upstream themselves.
    pub fn start(
        cache: Arc<Cache>,
        leader: Leader,
        ttl: Duration,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Option<Box<Tee>> {
        let json = headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if status != StatusCode::OK || !json {
            return None;
        }
        let headers = headers
            .iter()
            .filter(|(n, _)| keep_header(n))
            .map(|(n, v)| (n.as_str().to_string(), Bytes::copy_from_slice(v.as_bytes())))
            .collect();
        Some(Box::new(Tee {
            cache,
            leader,
            ttl,
            status: status.as_u16(),
            headers,
            body: BytesMut::new(),
        }))
    }

    /// Adds a chunk; `false` once the response is too large to store.
    pub fn push(&mut self, chunk: &[u8]) -> bool {
        if (self.body.len() + chunk.len()) as u64 > self.cache.settings().max_entry_bytes {
            return false;
        }
        self.body.extend_from_slice(chunk);
        true
    }

    /// The response is complete: store it and hand it to the waiting requests.
    pub fn finish(self) {
        let body = self.body.freeze();
        let usage = usage_of(&body);
        let response = CachedResponse {
            status: self.status,
            headers: self.headers,
            body,
            usage,
        };
        self.cache.fill(self.leader, response, self.ttl);
    }
}

/// The `usage` an OpenAI response reports (zero when it has none).
fn usage_of(body: &[u8]) -> Usage {
    #[derive(serde::Deserialize)]
    struct Body {
        usage: Option<RawUsage>,
    }
    #[derive(serde::Deserialize)]
    struct RawUsage {
        #[serde(default)]
        prompt_tokens: u64,
        #[serde(default)]
        completion_tokens: u64,
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(Body { usage: Some(u) }) => Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
        },
        _ => Usage::default(),
    }
}
