//! The response cache on the request path of openai and http routes.
//!
//! After the body is read: the request's key and the cache decision ([`plan`]); a fresh
//! entry answers at once; an identical request already upstream is waited for; otherwise
//! the request goes upstream as the flight's leader and a successful, complete response is
//! copied into the cache as it passes ([`Tee`]).
//!
//! `stream` is not part of the key: an answer is stored as JSON (a streamed one assembled)
//! and replayed in the form each client asked for ([`Form`]). A leader's streamed answer is
//! read from upstream by a task of its own ([`pump`]) and shared chunk by chunk with every
//! waiting streaming client, the leader's own included: a client that goes away stops
//! nobody else's stream, and the answer, already paid for, still reaches the cache.
//!
//! On http routes an answer is stored as it came ([`Form::Raw`]), when its origin allows it
//! (`flowgate_cache::http::storable`), and a request carrying credentials (`authorization`,
//! `cookie`) is not answered from a shared entry unless the route keys on that header.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use flowgate_cache::http::{self as http_key, Storable};
use flowgate_cache::openai::KeyMemo;
use flowgate_cache::policy::{self, Decision};
use flowgate_cache::stream::{Assembler, render_sse};
use flowgate_cache::{
    Account, Cache, CacheKey, CacheSettings, CachedResponse, Directives, Entry, Labels, Leader,
    Lifetime, Mode, Query, Share, StreamCut, Subscription, Tier, Usage,
};
use flowgate_config::{CacheMode, ConfidenceTtl, Config, RouteConfig, RouteKind};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::BodyExt;

use crate::body::{ProxyBody, UpstreamBody};
use crate::error::ProxyError;
use crate::router::RouteEntry;
use crate::watch::Watch;

/// `x-flowgate-cache`: what the cache did for a response.
pub static CACHE_STATUS: HeaderName = HeaderName::from_static("x-flowgate-cache");
static TTL_HEADER: HeaderName = HeaderName::from_static("x-flowgate-cache-ttl");
static NAMESPACE_HEADER: HeaderName = HeaderName::from_static("x-flowgate-cache-namespace");
/// Invalidation tags, comma-separated: on a request, or on the upstream's response.
static TAGS_HEADER: HeaderName = HeaderName::from_static("x-flowgate-cache-tags");

/// What the cache did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Hit(Tier),
    /// Served past its TTL, within its stale window, while a refresh runs.
    Stale,
    Miss,
    Coalesced,
    Bypass,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Hit(Tier::Memory) => "hit-l1",
            Status::Hit(Tier::Redis) => "hit-l2",
            Status::Hit(Tier::Disk) => "hit-l3",
            Status::Stale => "stale",
            Status::Miss => "miss",
            Status::Coalesced => "coalesced",
            Status::Bypass => "bypass",
        }
    }

    pub fn header(self) -> HeaderValue {
        HeaderValue::from_static(self.as_str())
    }

    /// The answer came from the cache or another request's call: nothing was spent
    /// upstream for it.
    pub fn answered_by_cache(self) -> bool {
        matches!(self, Status::Hit(_) | Status::Stale | Status::Coalesced)
    }
}

/// How a client wants its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Json,
    /// Server-sent events, with a final usage chunk when `include_usage`.
    Sse {
        include_usage: bool,
    },
    /// As the upstream sent it, with its own content type (http routes).
    Raw,
}

impl Form {
    fn content_type(self) -> Option<&'static str> {
        match self {
            Form::Json => Some("application/json"),
            Form::Sse { .. } => Some(SSE),
            Form::Raw => None,
        }
    }

    /// Streams of one flavor can be shared: a client that asked for a usage chunk must not
    /// get a stream without one, nor a client that did not a stream with one.
    pub fn flavor(self) -> Option<u8> {
        match self {
            Form::Json | Form::Raw => None,
            Form::Sse { include_usage } => Some(u8::from(include_usage)),
        }
    }
}

/// A request the cache may answer.
#[derive(Debug)]
pub struct Planned {
    pub key: flowgate_cache::CacheKey,
    pub read: bool,
    pub max_age: Option<Duration>,
    /// How long an answer stored now stays fresh, and stale after that.
    pub life: Lifetime,
    /// The longest a popular entry's TTL may grow to at its refreshes.
    pub max_ttl: Option<Duration>,
    pub labels: Labels,
    /// Reads the answer's TTL from a score in it (unless the client set the TTL).
    pub confidence: Option<ConfidenceTtl>,
    pub form: Form,
    /// The price of the requested model, for the dollars a hit saves.
    pub price: Option<flowgate_cost::ModelPrice>,
    /// On http routes: what the origin's answer must allow to be stored.
    pub origin: Option<Origin>,
    /// The route's transform, when the cache keeps its answers redacted.
    pub scrub: Option<Arc<crate::transform::Transform>>,
}

/// An http route's answer is stored only as its origin allows, and for as long as it says
/// unless the client chose the TTL.
#[derive(Debug, Clone)]
pub struct Origin {
    route: Arc<RouteConfig>,
    sets_ttl: bool,
}

/// A leader's duty: fill the cache with the answer it gets.
#[derive(Debug)]
pub struct Fill {
    pub cache: Arc<Cache>,
    pub leader: Leader,
    pub life: Lifetime,
    pub labels: Labels,
    pub confidence: Option<ConfidenceTtl>,
    pub form: Form,
    pub origin: Option<Origin>,
    pub scrub: Option<Arc<crate::transform::Transform>>,
}

impl Planned {
    /// The cache lookup for this request.
    pub fn query(&self) -> Query<'_> {
        Query {
            read: self.read,
            max_age: self.max_age,
            account: Account {
                category: self.labels.category.as_deref(),
                price: self.price,
                warming: false,
            },
        }
    }

    /// The duty of the leader that fetches this request's answer, stored with `life`.
    pub fn fill(self, cache: &Arc<Cache>, leader: Leader, life: Lifetime) -> Fill {
        Fill {
            cache: cache.clone(),
            leader,
            life,
            labels: self.labels,
            confidence: self.confidence,
            form: self.form,
            origin: self.origin,
            scrub: self.scrub,
        }
    }
}

/// The life of the answer that refreshes `entry`: the planned one, except that a popular
/// entry's TTL doubles (from its current TTL) up to `max_ttl`.
pub fn refreshed_life(entry: &Entry, planned: &Planned, settings: &CacheSettings) -> Lifetime {
    let mut life = planned.life;
    if let Some(max) = planned.max_ttl
        && entry.hits() >= settings.popular_hits
    {
        life.ttl = entry
            .life
            .ttl
            .saturating_mul(2)
            .clamp(life.ttl, max.max(life.ttl));
    }
    life
}

/// The cache decision for one request.
#[derive(Debug)]
// Returned once per request and matched at once: boxing `Planned` would cost an
// allocation on every cached request.
#[allow(clippy::large_enum_variant)]
pub enum Plan {
    /// The route does not use the cache: no `x-flowgate-cache` header.
    Off,
    Bypass,
    Use(Planned),
}

/// What a request's kind says about caching it.
struct Material {
    /// The hash of the key material.
    hash: u128,
    deterministic: bool,
    form: Form,
    /// The model asked for (openai routes).
    model: Option<String>,
}

thread_local! {
    /// The keys of the bodies this thread saw last (each data-plane worker has its own):
    /// a body sent again byte for byte is not parsed again.
    static MEMO: std::cell::RefCell<KeyMemo> = std::cell::RefCell::new(KeyMemo::new(256));
}

/// The `model` of an openai request body, when it is a string, read as the cache keys the
/// body (and remembered by the memo, so the cache does not read it again).
pub fn model_of(body: &[u8]) -> Option<String> {
    asked_of(body).0
}

/// The `model` and the answer tokens allowed (`max_tokens`, × `n`) of an openai request
/// body, read as for [`model_of`].
pub fn asked_of(body: &[u8]) -> (Option<String>, Option<u64>) {
    match MEMO.with_borrow_mut(|memo| memo.key(body)) {
        Ok(k) => (k.model, k.max_tokens),
        Err(_) => (None, None),
    }
}

/// The key material of an openai request, read in the one pass that also checks the body
/// (400 if it is not JSON, as [`crate::openai::check_json`] says): `None` when it is JSON
/// but not an object.
fn openai_material(body: &[u8]) -> Result<Option<Material>, ProxyError> {
    let k = match MEMO.with_borrow_mut(|memo| memo.key(body)) {
        Ok(k) => k,
        Err(_) => {
            crate::openai::check_json(body)?;
            return Ok(None);
        }
    };
    if !k.well_typed {
        // The check names the faulty field.
        crate::openai::check_json(body)?;
    }
    Ok(Some(Material {
        hash: k.hash,
        deterministic: k.deterministic,
        form: if k.stream {
            Form::Sse {
                include_usage: k.include_usage,
            }
        } else {
            Form::Json
        },
        model: k.model,
    }))
}

/// The key material of an http request: `None` when it carries credentials the key does
/// not hold (its answer may be meant for that client alone).
fn http_material(
    route: &RouteConfig,
    parts: &http::request::Parts,
    body: &[u8],
) -> Option<Material> {
    let hash = flowgate_cache::wire::http_request_key(
        parts,
        route.cache.query.as_deref(),
        &route.cache.headers,
        body,
    )?;
    Some(Material {
        hash,
        deterministic: http_key::deterministic(parts.method.as_str()),
        form: Form::Raw,
        model: None,
    })
}

/// Whether an openai body must be checked apart: when the cache does not plan the
/// request, which otherwise reads and checks it in one pass.
pub fn needs_check(cache_on: bool, route: &RouteConfig) -> bool {
    !cache_on || route.cache.mode == CacheMode::Off
}

/// Whether a request of `method` on an http `route` can use the cache, known before its
/// body is read: `None` when the route does not cache, `Some(false)` for a method its mode
/// leaves out (the body then streams through unread).
pub fn http_eligible(route: &RouteConfig, method: &http::Method) -> Option<bool> {
    match route.cache.mode {
        CacheMode::Off => None,
        CacheMode::Deterministic => Some(http_key::deterministic(method.as_str())),
        CacheMode::Always => Some(true),
    }
}

/// Decides for a request with `body`. A malformed caching header is the client's error
/// (400), and so is an openai body that is not JSON: on routes that cache, this is where
/// it is checked ([`needs_check`]).
pub fn plan(
    route: &RouteEntry,
    config: &Config,
    parts: &http::request::Parts,
    body: &[u8],
) -> Result<Plan, ProxyError> {
    let defaults = &config.cache;
    let headers = &parts.headers;
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
        // Another namespace only where the route lets clients pick one.
        headers
            .get(&NAMESPACE_HEADER)
            .filter(|_| route.cfg.cache.namespace_header)
            .map(HeaderValue::as_bytes),
    )
    .map_err(|e| ProxyError::BadCacheDirective(e.to_string()))?;
    let material = match route.cfg.kind {
        RouteKind::OpenAi => openai_material(body)?,
        RouteKind::Http => http_material(&route.cfg, parts, body),
    };
    let Some(m) = material else {
        return Ok(Plan::Bypass);
    };
    match policy::decide(mode, m.deterministic, &directives) {
        Decision::Bypass(_) => Ok(Plan::Bypass),
        Decision::Use { read } => {
            let namespace = directives
                .namespace
                .clone()
                .unwrap_or_else(|| route.cache_namespace.clone());
            let rc = &route.cfg.cache;
            // The first category the request is in; its TTL beats the route's, the
            // client's beats both. A confidence score in the answer, when configured and
            // present, beats categories and routes too (applied when it is stored), and so
            // does an http origin's max-age.
            let category = defaults
                .categories
                .iter()
                .find(|c| c.matches(parts.uri.path(), headers, m.model.as_deref()));
            let ttl = directives
                .ttl
                .or(category.map(|c| c.ttl))
                .or(rc.ttl)
                .unwrap_or(defaults.ttl);
            let stale = category
                .and_then(|c| c.stale)
                .or(rc.stale)
                .unwrap_or(defaults.stale);
            let mut labels = Labels {
                category: category.map(|c| c.name.clone()),
                tags: category.map(|c| c.tags.clone()).unwrap_or_default(),
            };
            if let Some(list) = headers.get(&TAGS_HEADER) {
                labels
                    .add_tags(list.as_bytes())
                    .map_err(|e| ProxyError::BadCacheDirective(format!("{TAGS_HEADER}: {e}")))?;
            }
            let client_ttl = directives.ttl.is_some();
            Ok(Plan::Use(Planned {
                key: CacheKey::new(namespace, m.hash),
                read,
                max_age: directives.max_age,
                life: Lifetime { ttl, stale },
                max_ttl: rc.max_ttl.or(defaults.max_ttl),
                labels,
                confidence: (!client_ttl).then(|| defaults.confidence.clone()).flatten(),
                form: m.form,
                price: m.model.as_deref().and_then(|m| config.models.price(m)),
                origin: (m.form == Form::Raw).then(|| Origin {
                    route: route.cfg.clone(),
                    sets_ttl: !client_ttl,
                }),
                scrub: route.transform.clone().filter(|t| t.scrubs()),
            }))
        }
    }
}

/// The response for a cached entry, `age` old, in the client's `form` (`None` when the
/// entry cannot be given in that form). `x-flowgate-cache` is added with the other gateway
/// fields by `Gateway::handle`.
pub fn respond(entry: &Entry, age: Duration, form: Form) -> Option<Response<ProxyBody>> {
    let r = &entry.response;
    let body = match form {
        Form::Json | Form::Raw => r.body.clone(),
        Form::Sse { include_usage } => render_sse(&r.body, include_usage)?,
    };
    let mut resp = with_fields(ProxyBody::from(body), &r.headers, form.content_type());
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
    resp.headers_mut()
        .insert(header::AGE, HeaderValue::from(age.as_secs()));
    Some(resp)
}

/// The response of a client that joined a shared stream.
pub fn respond_shared(fields: &[(String, Bytes)], stream: Subscription) -> Response<ProxyBody> {
    let mut resp = with_fields(ProxyBody::shared(stream), fields, Some(SSE));
    resp.headers_mut()
        .insert(header::AGE, HeaderValue::from_static("0"));
    resp
}

const SSE: &str = "text/event-stream";

/// A response with the stored header `fields`, and `content_type` instead of the stored one
/// when given.
fn with_fields(
    body: ProxyBody,
    fields: &[(String, Bytes)],
    content_type: Option<&'static str>,
) -> Response<ProxyBody> {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.reserve(fields.len() + 1 + crate::headers::ADDED_FIELDS);
    flowgate_cache::wire::replay_fields(h, fields);
    if let Some(t) = content_type {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(t));
    }
    resp
}

/// Raw SSE is this many times the size of the answer assembled from it, at most (each
/// token's event repeats the chunk's id, model and framing): past it, a stream is not
/// assembled any further.
const SSE_OVERHEAD: u64 = 16;

/// Copies a response into the cache as it passes.
#[derive(Debug)]
pub struct Tee {
    fill: Fill,
    status: u16,
    headers: Vec<(String, Bytes)>,
    body: Collect,
    /// Bytes seen.
    seen: u64,
}

#[derive(Debug)]
enum Collect {
    /// The body as it comes (JSON, or anything on an http route).
    Whole(BytesMut),
    /// A stream to assemble into the JSON answer.
    Sse(Assembler),
}

impl Tee {
    /// A tee for a response with `status` and `headers`, when it may be stored: a
    /// successful JSON answer or a stream of one (openai routes), a successful answer its
    /// origin lets a shared cache keep (http routes). Otherwise the leader is dropped and
    /// the requests waiting on it go upstream themselves.
    pub fn start(mut fill: Fill, status: StatusCode, headers: &HeaderMap) -> Option<Box<Tee>> {
        // Short of memory (the governor stopped fills): nothing is copied to be kept.
        if status != StatusCode::OK || fill.cache.fills_paused() {
            return None;
        }
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .map_or(&b""[..], HeaderValue::as_bytes);
        let body = if let Some(origin) = &fill.origin {
            match flowgate_cache::wire::origin_allows(headers, &origin.route.cache.headers) {
                Storable::No(why) => {
                    tracing::debug!(reason = why, "answer not stored");
                    return None;
                }
                Storable::Yes { ttl } => {
                    if let Some(ttl) = ttl.filter(|_| origin.sets_ttl) {
                        fill.life.ttl = ttl;
                    }
                }
            }
            Collect::Whole(BytesMut::new())
        } else if content_type.starts_with(b"application/json") {
            Collect::Whole(BytesMut::new())
        } else if content_type.starts_with(b"text/event-stream") {
            Collect::Sse(Assembler::new())
        } else {
            return None;
        };
        for list in headers.get_all(&TAGS_HEADER) {
            // The upstream's tags join the request's; a bad list is the upstream's
            // mistake, not the client's: the valid tags before it are kept.
            if let Err(e) = fill.labels.add_tags(list.as_bytes()) {
                tracing::debug!(error = %e, "upstream cache tags ignored");
            }
        }
        let headers = flowgate_cache::wire::stored_fields(headers);
        Some(Box::new(Tee {
            fill,
            status: status.as_u16(),
            headers,
            body,
            seen: 0,
        }))
    }

    /// When the answer is a stream a streaming leader asked for: the share its chunks go
    /// through, published to the flight's followers.
    pub fn share(&self) -> Option<Arc<Share>> {
        let flavor = self.fill.form.flavor()?;
        if !matches!(self.body, Collect::Sse(_)) {
            return None;
        }
        let limit = self.fill.cache.settings().max_entry_bytes * SSE_OVERHEAD;
        let share = Arc::new(Share::new(
            self.headers.clone(),
            usize::try_from(limit).unwrap_or(usize::MAX),
        ));
        self.fill.leader.stream(share.clone(), flavor);
        Some(share)
    }

    /// Adds a chunk; `false` once the response is too large to store.
    pub fn push(&mut self, chunk: &[u8]) -> bool {
        self.seen += chunk.len() as u64;
        let max = self.fill.cache.settings().max_entry_bytes;
        match &mut self.body {
            Collect::Whole(b) => {
                if self.seen > max {
                    return false;
                }
                b.extend_from_slice(chunk);
            }
            Collect::Sse(a) => {
                if self.seen > max.saturating_mul(SSE_OVERHEAD) {
                    return false;
                }
                a.push(chunk);
            }
        }
        true
    }

    /// The response is complete: store it and hand it to the waiting requests. A stream
    /// that did not complete properly is not stored.
    pub fn finish(self) {
        let body = match self.body {
            Collect::Whole(b) => match &self.fill.scrub {
                Some(t) => t.scrub(b.freeze()),
                None => b.freeze(),
            },
            Collect::Sse(a) => match a.finish() {
                Some(b) => b,
                None => return,
            },
        };
        let usage = match self.fill.form {
            Form::Raw => Usage::default(),
            _ => flowgate_cost::usage_of(&body).unwrap_or_default(),
        };
        let response = CachedResponse {
            status: self.status,
            headers: self.headers,
            body,
            usage,
        };
        let Fill {
            cache,
            leader,
            mut life,
            labels,
            confidence,
            ..
        } = self.fill;
        if let Some(c) = &confidence
            && let Some(ttl) = score(&response.body, &c.pointer).and_then(|v| c.ttl_for(v))
        {
            life.ttl = ttl;
        }
        cache.fill(leader, response, life, labels);
    }
}

impl Watch for Tee {
    fn data(&mut self, data: &Bytes) -> bool {
        self.push(data)
    }

    fn end(self: Box<Self>) {
        self.finish();
    }
}

/// Reads a shared stream's upstream `body` to its end, whoever still listens: the answer
/// reaches the cache (through the body's tee) even when the client that asked went away.
pub async fn pump(mut body: UpstreamBody, share: Arc<Share>) {
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(data) = f.into_data() {
                    share.push(data);
                }
            }
            Err(_) => {
                share.end(Err(StreamCut));
                return;
            }
        }
    }
    share.end(Ok(()));
}

/// The number at JSON `pointer` in `body`. A string met with pointer tokens left is read as
/// JSON (an LLM's message content is a string that often holds the JSON the product asked
/// for), so `/choices/0/message/content/confidence` reaches into the answer's content.
pub fn score(body: &[u8], pointer: &str) -> Option<f64> {
    let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
    for raw in pointer.strip_prefix('/')?.split('/') {
        if let serde_json::Value::String(s) = &value {
            value = serde_json::from_str(s).ok()?;
        }
        let token = raw.replace("~1", "/").replace("~0", "~");
        value = match value {
            serde_json::Value::Object(mut m) => m.remove(&token)?,
            serde_json::Value::Array(mut a) => {
                let i: usize = token.parse().ok()?;
                (i < a.len()).then(|| a.swap_remove(i))?
            }
            _ => return None,
        };
    }
    value.as_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_read_by_json_pointer_also_inside_message_content() {
        let plain = br#"{"confidence": 0.93, "a/b": {"~x": [1, 2.5]}}"#;
        assert_eq!(score(plain, "/confidence"), Some(0.93));
        assert_eq!(score(plain, "/a~1b/~0x/1"), Some(2.5));
        assert_eq!(score(plain, "/a~1b/~0x/2"), None);
        assert_eq!(score(plain, "/missing"), None);
        assert_eq!(score(plain, "confidence"), None);
        let chat =
            br#"{"choices":[{"message":{"content":"{\"confidence\": 0.72, \"risk\": \"low\"}"}}]}"#;
        assert_eq!(
            score(chat, "/choices/0/message/content/confidence"),
            Some(0.72)
        );
        assert_eq!(score(chat, "/choices/0/message/content/risk"), None);
        assert_eq!(score(b"not json", "/x"), None);
    }
}
