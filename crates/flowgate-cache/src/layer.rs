//! The cache as a tower [`Layer`] (feature `tower`): flowgate's tiered cache, keys,
//! single-flight and stale-while-revalidate in front of any HTTP [`Service`] in a Rust
//! process — an axum app, or an HTTP client calling an LLM API.
//!
//! ```text
//! let cache = Arc::new(Cache::open(settings, clock)?);
//! let svc = ServiceBuilder::new()
//!     .layer(CacheLayer::new(cache, LayerConfig::openai("chat", Duration::from_secs(3600))))
//!     .service(llm_client);
//! ```
//!
//! Requests are read whole (within [`LayerConfig::max_body`]) to be keyed, as the gateway
//! keys them: [`KeyKind::OpenAi`] by the canonical request body ([`crate::openai`]),
//! [`KeyKind::Http`] by method, path, query, selected headers and body ([`crate::http`]).
//! Clients steer it with `Cache-Control` (`no-store`, `no-cache`, `max-age`) and
//! `x-flowgate-cache-ttl`; every response says what happened in `x-flowgate-cache`
//! (`hit-l1`, `hit-l2`, `hit-l3`, `stale`, `miss`, `coalesced`, `bypass`) and answers
//! from the cache carry `age`. Answers are buffered (the layer serves whole responses:
//! streamed answers are stored and fanned out by the gateway, not by this layer); a `200`
//! answer is stored when it fits `max_entry`, is JSON on openai keys, and is allowed by
//! its origin on http keys ([`crate::http::storable`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use tower_layer::Layer;
use tower_service::Service;

use crate::http::Storable;
use crate::openai::OpenAiRequest;
use crate::policy::{self, Decision, Directives, Mode};
use crate::{
    Account, Cache, CacheKey, CachedResponse, Entry, Labels, Leader, Lifetime, Lookup, Lower,
    Query, Tier, Usage, Waited, wire,
};

/// Errors are boxed, as tower middleware does.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `x-flowgate-cache`: what the cache did for a response.
pub static CACHE_STATUS: HeaderName = HeaderName::from_static("x-flowgate-cache");

/// How requests are keyed.
#[derive(Debug, Clone)]
pub enum KeyKind {
    /// OpenAI-compatible JSON bodies: deterministic = temperature 0, a seed, embeddings.
    OpenAi,
    /// Any HTTP API: deterministic = GET and HEAD.
    Http {
        /// Query parameters in the key (`None`: all), sorted.
        query: Option<Vec<String>>,
        /// Request headers in the key.
        headers: Vec<HeaderName>,
    },
}

/// What the layer caches and for how long.
#[derive(Debug, Clone)]
pub struct LayerConfig {
    pub kind: KeyKind,
    pub mode: Mode,
    /// Entries of layers with the same namespace are shared.
    pub namespace: Arc<str>,
    pub life: Lifetime,
    /// Larger request bodies are refused (the layer must read them to key them).
    pub max_body: usize,
}

impl LayerConfig {
    /// Deterministic OpenAI requests cached for `ttl` in `namespace`.
    pub fn openai(namespace: &str, ttl: Duration) -> Self {
        LayerConfig {
            kind: KeyKind::OpenAi,
            mode: Mode::Deterministic,
            namespace: Arc::from(namespace),
            life: Lifetime {
                ttl,
                stale: Duration::ZERO,
            },
            max_body: 10 << 20,
        }
    }

    /// GET and HEAD requests of an HTTP API cached for `ttl` in `namespace`, keyed by every
    /// query parameter and no header.
    pub fn http(namespace: &str, ttl: Duration) -> Self {
        LayerConfig {
            kind: KeyKind::Http {
                query: None,
                headers: Vec::new(),
            },
            ..Self::openai(namespace, ttl)
        }
    }
}

/// Puts a [`Cache`] in front of a service.
#[derive(Debug, Clone)]
pub struct CacheLayer {
    cache: Arc<Cache>,
    cfg: Arc<LayerConfig>,
}

impl CacheLayer {
    pub fn new(cache: Arc<Cache>, cfg: LayerConfig) -> Self {
        CacheLayer {
            cache,
            cfg: Arc::new(cfg),
        }
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = CacheService<S>;

    fn layer(&self, inner: S) -> CacheService<S> {
        CacheService {
            inner,
            cache: self.cache.clone(),
            cfg: self.cfg.clone(),
        }
    }
}

/// The service [`CacheLayer`] makes: it takes any request body and gives the inner
/// service the buffered one.
#[derive(Debug, Clone)]
pub struct CacheService<S> {
    inner: S,
    cache: Arc<Cache>,
    cfg: Arc<LayerConfig>,
}

/// A request body larger than [`LayerConfig::max_body`].
#[derive(Debug, thiserror::Error)]
#[error("request body larger than {0} bytes")]
pub struct BodyTooLarge(pub usize);

impl<S, B, RB> Service<Request<B>> for CacheService<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<RB>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    RB: Body + Send + 'static,
    RB::Data: Send,
    RB::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The service that was polled ready serves this request; a clone takes its place.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (cache, cfg) = (self.cache.clone(), self.cfg.clone());
        Box::pin(serve(inner, cache, cfg, req))
    }
}

/// A request the cache may answer.
struct Planned {
    key: CacheKey,
    read: bool,
    max_age: Option<Duration>,
    life: Lifetime,
    /// Whether the origin's `max-age` may set the TTL (the client did not).
    origin_ttl: bool,
}

async fn serve<S, B, RB>(
    mut inner: S,
    cache: Arc<Cache>,
    cfg: Arc<LayerConfig>,
    req: Request<B>,
) -> Result<Response<Full<Bytes>>, BoxError>
where
    S: Service<Request<Full<Bytes>>, Response = Response<RB>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Body,
    B::Error: Into<BoxError>,
    RB: Body + Send + 'static,
    RB::Data: Send,
    RB::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    let body = Limited::new(body, cfg.max_body)
        .collect()
        .await
        .map_err(|e| -> BoxError {
            if e.is::<http_body_util::LengthLimitError>() {
                Box::new(BodyTooLarge(cfg.max_body))
            } else {
                e
            }
        })?
        .to_bytes();
    let planned = match plan(&cfg, &parts, &body)? {
        Some(p) => p,
        None => {
            cache.count_bypass();
            let answer = forward(&mut inner, parts, body).await?;
            return Ok(labelled(answer.into_response(), "bypass", None));
        }
    };
    let q = Query {
        read: planned.read,
        max_age: planned.max_age,
        account: Account::default(),
    };
    let leader = match cache.lookup(&planned.key, &q) {
        Lookup::Hit(hit) => {
            if let Some(leader) = hit.refresh {
                refresh(inner, cache.clone(), cfg, &parts, body, leader, planned);
            }
            return Ok(replay(&hit.entry, hit_label(hit.tier, hit.stale), hit.age));
        }
        Lookup::Coalesced(follower) => {
            match follower.wait(cache.settings().coalesce_wait, None).await {
                Some(Waited::Entry(entry)) => {
                    return Ok(replay(&entry, "coalesced", Duration::ZERO));
                }
                // The identical request failed or took too long: go upstream alone.
                _ => {
                    let answer = forward(&mut inner, parts, body).await?;
                    return Ok(labelled(answer.into_response(), "miss", None));
                }
            }
        }
        Lookup::Miss(leader) => match cache.lookup_lower(leader, &q, true).await {
            Lower::Hit(hit) => {
                if let Some(leader) = hit.refresh {
                    refresh(inner, cache.clone(), cfg, &parts, body, leader, planned);
                }
                return Ok(replay(&hit.entry, hit_label(hit.tier, hit.stale), hit.age));
            }
            Lower::Miss(leader) => leader,
        },
    };
    let answer = forward(&mut inner, parts, body).await?;
    store(&cache, &cfg, leader, &answer, &planned);
    Ok(labelled(answer.into_response(), "miss", None))
}

/// The key and decision for a request; `None`: not for the cache.
fn plan(
    cfg: &LayerConfig,
    parts: &http::request::Parts,
    body: &[u8],
) -> Result<Option<Planned>, BoxError> {
    let h = &parts.headers;
    let directives = Directives::parse(
        h.get(header::CACHE_CONTROL).map(HeaderValue::as_bytes),
        h.get("x-flowgate-cache-ttl").map(HeaderValue::as_bytes),
        None,
    )?;
    let (hash, deterministic) = match &cfg.kind {
        KeyKind::OpenAi => {
            let Ok(request) = OpenAiRequest::parse(body) else {
                return Ok(None);
            };
            let k = request.into_key();
            // Streams are the gateway's to share and replay.
            if k.stream {
                return Ok(None);
            }
            (k.hash, k.deterministic)
        }
        KeyKind::Http { query, headers } => {
            let Some(hash) = wire::http_request_key(parts, query.as_deref(), headers, body) else {
                return Ok(None);
            };
            (hash, crate::http::deterministic(parts.method.as_str()))
        }
    };
    Ok(match policy::decide(cfg.mode, deterministic, &directives) {
        Decision::Bypass(_) => None,
        Decision::Use { read } => Some(Planned {
            key: CacheKey::new(cfg.namespace.clone(), hash),
            read,
            max_age: directives.max_age,
            life: Lifetime {
                ttl: directives.ttl.unwrap_or(cfg.life.ttl),
                stale: cfg.life.stale,
            },
            origin_ttl: directives.ttl.is_none(),
        }),
    })
}

/// An answer the inner service gave, read whole.
struct Answer {
    head: http::response::Parts,
    body: Bytes,
}

impl Answer {
    fn into_response(self) -> Response<Full<Bytes>> {
        Response::from_parts(self.head, Full::new(self.body))
    }
}

/// Calls the inner service and reads its answer whole.
async fn forward<S, RB>(
    inner: &mut S,
    parts: http::request::Parts,
    body: Bytes,
) -> Result<Answer, BoxError>
where
    S: Service<Request<Full<Bytes>>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    RB: Body,
    RB::Error: Into<BoxError>,
{
    let resp = inner
        .call(Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(Into::into)?;
    let (head, body) = resp.into_parts();
    let body = body.collect().await.map_err(Into::into)?.to_bytes();
    Ok(Answer { head, body })
}

/// Stores an answer when it may be: a `200`, JSON on openai keys, allowed by its origin on
/// http keys. Otherwise the leader is dropped and the requests waiting on it go upstream.
fn store(cache: &Cache, cfg: &LayerConfig, leader: Leader, answer: &Answer, planned: &Planned) {
    if answer.head.status != StatusCode::OK {
        return;
    }
    let mut life = planned.life;
    let usage = match &cfg.kind {
        KeyKind::OpenAi => {
            let json = answer
                .head
                .headers
                .get(header::CONTENT_TYPE)
                .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
            if !json {
                return;
            }
            flowgate_cost::usage_of(&answer.body).unwrap_or_default()
        }
        KeyKind::Http { headers, .. } => {
            match wire::origin_allows(&answer.head.headers, headers) {
                Storable::No(_) => return,
                Storable::Yes { ttl } => {
                    if let Some(ttl) = ttl.filter(|_| planned.origin_ttl) {
                        life.ttl = ttl;
                    }
                }
            }
            Usage::default()
        }
    };
    let response = CachedResponse {
        status: answer.head.status.as_u16(),
        headers: wire::stored_fields(&answer.head.headers),
        body: answer.body.clone(),
        usage,
    };
    cache.fill(leader, response, life, Labels::default());
}

/// Refreshes an entry in the background with a clone of the inner service.
fn refresh<S, RB>(
    mut inner: S,
    cache: Arc<Cache>,
    cfg: Arc<LayerConfig>,
    parts: &http::request::Parts,
    body: Bytes,
    leader: Leader,
    planned: Planned,
) where
    S: Service<Request<Full<Bytes>>, Response = Response<RB>> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    RB: Body + Send + 'static,
    RB::Data: Send,
    RB::Error: Into<BoxError>,
{
    let mut req = Request::new(());
    *req.method_mut() = if parts.method == http::Method::HEAD {
        http::Method::GET
    } else {
        parts.method.clone()
    };
    *req.uri_mut() = parts.uri.clone();
    *req.headers_mut() = parts.headers.clone();
    let (parts, ()) = req.into_parts();
    tokio::spawn(async move {
        if let Ok(answer) = forward(&mut inner, parts, body).await {
            store(&cache, &cfg, leader, &answer, &planned);
        }
    });
}

fn hit_label(tier: Tier, stale: bool) -> &'static str {
    match (stale, tier) {
        (true, _) => "stale",
        (false, Tier::Memory) => "hit-l1",
        (false, Tier::Redis) => "hit-l2",
        (false, Tier::Disk) => "hit-l3",
    }
}

/// The response for a stored entry, `age` old.
fn replay(entry: &Entry, label: &'static str, age: Duration) -> Response<Full<Bytes>> {
    let r = &entry.response;
    let mut resp = Response::new(Full::new(r.body.clone()));
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
    wire::replay_fields(resp.headers_mut(), &r.headers);
    labelled(resp, label, Some(age))
}

fn labelled(
    mut resp: Response<Full<Bytes>>,
    label: &'static str,
    age: Option<Duration>,
) -> Response<Full<Bytes>> {
    let h = resp.headers_mut();
    h.insert(CACHE_STATUS.clone(), HeaderValue::from_static(label));
    if let Some(age) = age {
        h.insert(header::AGE, HeaderValue::from(age.as_secs()));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowgate_clock::ManualClock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An upstream that counts its calls and answers by path: `/private` is marked
    /// private, `/fail` is a 500, anything else a JSON 200 naming the call.
    #[derive(Clone, Default)]
    struct Upstream {
        calls: Arc<AtomicUsize>,
        delay: Duration,
    }

    impl Service<Request<Full<Bytes>>> for Upstream {
        type Response = Response<Full<Bytes>>;
        type Error = std::convert::Infallible;
        type Future =
            Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Self::Error>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: Request<Full<Bytes>>) -> Self::Future {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let delay = self.delay;
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                let path = req.uri().path().to_string();
                let body = format!(
                    r#"{{"call":{n},"usage":{{"prompt_tokens":3,"completion_tokens":2}}}}"#
                );
                let mut b = Response::builder()
                    .status(if path == "/fail" { 500 } else { 200 })
                    .header("content-type", "application/json")
                    .header("x-upstream", "yes");
                if path == "/private" {
                    b = b.header("cache-control", "private");
                }
                Ok(b.body(Full::new(Bytes::from(body))).unwrap())
            })
        }
    }

    fn cache() -> Arc<Cache> {
        let settings = crate::tests::settings();
        Arc::new(Cache::open(settings, ManualClock::at_epoch_2026().shared()).unwrap())
    }

    async fn call(
        svc: &mut CacheService<Upstream>,
        req: Request<Full<Bytes>>,
    ) -> (String, Response<Full<Bytes>>) {
        std::future::poll_fn(|cx| Service::<Request<Full<Bytes>>>::poll_ready(svc, cx))
            .await
            .unwrap();
        let resp = svc.call(req).await.unwrap();
        let label = resp.headers()[&CACHE_STATUS].to_str().unwrap().to_string();
        (label, resp)
    }

    fn chat(body: &str) -> Request<Full<Bytes>> {
        Request::post("/v1/chat/completions")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    }

    #[tokio::test]
    async fn openai_requests_are_answered_from_the_cache() {
        let up = Upstream::default();
        let cache = cache();
        let layer = CacheLayer::new(
            cache.clone(),
            LayerConfig::openai("chat", Duration::from_secs(60)),
        );
        let mut svc = layer.layer(up.clone());
        let (label, first) = call(
            &mut svc,
            chat(r#"{"model":"m","temperature":0,"messages":[]}"#),
        )
        .await;
        assert_eq!(label, "miss");
        let first = first.into_body().collect().await.unwrap().to_bytes();
        // Same meaning, other spelling: a hit with the stored answer and fields.
        let (label, hit) = call(
            &mut svc,
            chat(r#"{ "messages":[], "temperature":0.0, "model":"m" }"#),
        )
        .await;
        assert_eq!(label, "hit-l1");
        assert_eq!(hit.headers()["x-upstream"], "yes");
        assert_eq!(hit.headers()[header::AGE], "0");
        assert_eq!(hit.into_body().collect().await.unwrap().to_bytes(), first);
        // Sampled and streamed requests go around it; so does `no-store`.
        for body in [
            r#"{"model":"m","temperature":0.9,"messages":[]}"#,
            r#"{"model":"m","temperature":0,"messages":[],"stream":true}"#,
        ] {
            assert_eq!(call(&mut svc, chat(body)).await.0, "bypass");
        }
        let mut no_store = chat(r#"{"model":"m","temperature":0,"messages":[]}"#);
        no_store
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        assert_eq!(call(&mut svc, no_store).await.0, "bypass");
        assert_eq!(up.calls.load(Ordering::SeqCst), 4);
        let s = cache.stats();
        assert_eq!((s.hits_memory, s.misses, s.tokens_saved), (1, 1, 5));
    }

    #[tokio::test]
    async fn http_answers_are_stored_as_their_origin_allows() {
        let up = Upstream::default();
        let mut svc = CacheLayer::new(cache(), LayerConfig::http("api", Duration::from_secs(60)))
            .layer(up.clone());
        let get = |uri: &str| Request::get(uri).body(Full::new(Bytes::new())).unwrap();
        assert_eq!(call(&mut svc, get("/r?b=2&a=1")).await.0, "miss");
        assert_eq!(call(&mut svc, get("/r?a=1&b=2")).await.0, "hit-l1");
        for uri in ["/private", "/private", "/fail", "/fail"] {
            assert_eq!(call(&mut svc, get(uri)).await.0, "miss", "{uri}");
        }
        let post = Request::post("/r?a=1&b=2")
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(call(&mut svc, post).await.0, "bypass");
        assert_eq!(up.calls.load(Ordering::SeqCst), 6);
    }

    // Paused time: the slow service's 100 ms pass as soon as every task waits.
    #[tokio::test(start_paused = true)]
    async fn concurrent_identical_misses_call_the_service_once() {
        let up = Upstream {
            delay: Duration::from_millis(100),
            ..Upstream::default()
        };
        let layer = CacheLayer::new(
            cache(),
            LayerConfig::openai("chat", Duration::from_secs(60)),
        );
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let mut svc = layer.layer(up.clone());
                tokio::spawn(async move {
                    call(&mut svc, chat(r#"{"model":"m","seed":1,"messages":[]}"#))
                        .await
                        .0
                })
            })
            .collect();
        let mut labels = Vec::new();
        for t in tasks {
            labels.push(t.await.unwrap());
        }
        assert_eq!(up.calls.load(Ordering::SeqCst), 1);
        assert_eq!(labels.iter().filter(|l| *l == "miss").count(), 1);
        assert_eq!(labels.iter().filter(|l| *l == "coalesced").count(), 19);
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused() {
        let cfg = LayerConfig {
            max_body: 8,
            ..LayerConfig::openai("chat", Duration::from_secs(60))
        };
        let mut svc = CacheLayer::new(cache(), cfg).layer(Upstream::default());
        std::future::poll_fn(|cx| Service::<Request<Full<Bytes>>>::poll_ready(&mut svc, cx))
            .await
            .unwrap();
        let err = svc
            .call(chat(r#"{"model":"a-long-model-name"}"#))
            .await
            .unwrap_err();
        assert!(err.is::<BodyTooLarge>(), "{err}");
    }
}
