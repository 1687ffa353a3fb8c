//! One request through the gateway, as named stages: [`Gateway::handle`] observes it (the
//! request id, the in-flight gauge, the response fields that explain what happened, the
//! telemetry record) around the stages of `proxy`:
//!
//! 1. **route**: the head's limits (HTTP/2; the listener held HTTP/1.1 heads to them), the
//!    path's dot-segments removed (`path.rs`: what is routed is what is forwarded), then
//!    the route that matches path, method and fields;
//! 2. **authenticate**: the caller's virtual key, when `[auth]` is on; then, when memory
//!    is short (the memory governor's shed level), low-priority requests are refused;
//! 3. **read**: the body, whole for `openai` routes (and checked as JSON when the cache
//!    would not check it anyway) and for cached `http` routes, else streamed on;
//! 4. **shape**: what the body says (model, token estimate), read at most once, and the
//!    checks on it (the key's models, the prompt-size guard);
//! 5. **admit**: the rate limits, before the cache (a limited client is limited for hits
//!    too);
//! 6. **cache**: an answer from a tier, or the flight this request leads ([`cache`]);
//! 7. **queue**: the concurrency permits, only for requests going upstream;
//! 8. **forward**: the route's pool, retries, hedges and fallbacks ([`crate::forward`]);
//! 9. **account**: the answer's body, composed of the watches that settle the token limits,
//!    give the permits back and fill the cache as it passes.
//!
//! The end of each stage is a mark on the request's `Laps` (one clock read), so that its
//! record splits its time by stage without gaps (`flowgate_telemetry::breakdown`).

mod cache;
mod choice;
mod models;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use flowgate_config::{ClientDialect, RouteKind};
use flowgate_cost::Estimate;
use flowgate_http::pool::ResponseBody;
use flowgate_http::server::{ClientBody, Peer};
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{HeaderName, Request, Response, Version};

use crate::admission::Reservation;
use crate::auth::Caller;
use crate::body::{self, InFlightGuard, ProxyBody, ReqBody};
use crate::caching::{self, Fill, Tee};
use crate::dialect::AnswerBody;
use crate::error::ProxyError;
use crate::forward::Forwarder;
use crate::gateway::Gateway;
use crate::headers;
use crate::outcome::Outcome;
use crate::queues::{Permits, Scope};
use crate::router::RouteEntry;
use crate::runtime::Runtime;
use crate::watch::Watched;
use flowgate_telemetry::breakdown::{Laps, Step};
use flowgate_telemetry::trace::Stage;

use cache::Consulted;

static ATTEMPTS: HeaderName = HeaderName::from_static("x-flowgate-attempts");

impl Gateway {
    /// Serves one request end to end. Never fails: errors become OpenAI-shaped responses.
    pub async fn handle(
        self: &Arc<Self>,
        req: Request<ClientBody>,
        peer: &Peer,
    ) -> Response<ProxyBody> {
        let start = self.clock().now();
        let _serving = flowgate_http::worker::Serving::enter();
        let guard = InFlightGuard::new(&self.telemetry().metrics().in_flight);
        let rt = self.runtime();
        let request_id = self.request_ids().take_or_make(req.headers());
        let asked_head = req.method() == http::Method::HEAD;
        let asked = crate::account::Asked {
            start,
            at_ms: self.clock().unix_millis(),
            method: req.method().clone(),
            uri: req.uri().clone(),
            request_id: request_id.clone(),
            peer: peer.addr.ip(),
            cost: crate::cost_header::asked(req.headers()),
        };
        let mut out = Outcome {
            laps: Laps::from(start),
            ..Outcome::default()
        };
        if let Some(t) = &rt.config.tracing
            && self.tracer().is_some()
        {
            let parent = req
                .headers()
                .get(&headers::TRACEPARENT)
                .and_then(flowgate_telemetry::trace::parse_traceparent);
            let sampler = flowgate_telemetry::trace::Sampler {
                ratio: t.sample_ratio,
                parent_based: t.parent_based,
            };
            out.trace = sampler.decide(parent.as_ref(), start).map(Box::new);
        }
        let (mut resp, error) = match self.proxy(&rt, req, peer, &request_id, &mut out).await {
            Ok(r) => (r, None),
            Err(e) => {
                if e.status().is_server_error() {
                    tracing::warn!(request_id = ?request_id, error = %e, "request failed");
                }
                (e.into_response(), Some(e.kind()))
            }
        };
        resp = crate::account::open(self, &rt, resp, &mut out, asked, error).await;
        if out.dialect == ClientDialect::Anthropic {
            resp = crate::dialect::claude::answer(resp, out.claude.as_ref())
                .await
                .map(ProxyBody::claude);
        }
        if let Some((t, accept)) = out.transform.take() {
            resp = crate::transform::apply(&t, resp, accept.as_ref(), asked_head).await;
        }
        explain(resp.headers_mut(), request_id, &out, error.is_some());
        resp.map(|b| b.with_guard(guard))
    }

    async fn proxy(
        self: &Arc<Self>,
        rt: &Runtime,
        req: Request<ClientBody>,
        peer: &Peer,
        request_id: &HeaderValue,
        out: &mut Outcome,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let mut req = req;
        // The path as routed is the path forwarded: dot-segments go first.
        if let Some(uri) = crate::path::normalize(req.uri())? {
            *req.uri_mut() = uri;
        }
        if models::is_list(rt, &req) {
            return self.list_models(rt, &req, out);
        }
        let route = route(rt, &req, out)?;
        let (mut parts, incoming) = req.into_parts();
        let caller = self.authenticate(rt, route, &mut parts.headers)?;
        out.caller.clone_from(&caller);
        // Stage 2b: short of memory, low-priority requests go before their body is read.
        if self.memory().level() == flowgate_telemetry::memory::Pressure::Shed {
            let priority = crate::queues::priority(
                &parts.headers,
                caller.as_deref().map(|c| &c.key),
                route.cfg.priority_header,
            )?;
            self.memory().admit(priority, &rt.config.memory)?;
        }
        // Stage 2c: a route that sheds refuses its low priorities, as early.
        crate::shed::check(
            &route.cfg,
            &parts.headers,
            caller.as_deref().map(|c| &c.key),
        )?;
        out.laps.lap(Step::Gateway, self.clock().now());
        let read = self.read(rt, route, &parts, incoming, out).await;
        out.laps.lap(Step::Read, self.clock().now());
        let mut read = read?;
        // A Claude client's request is OpenAI's from here on.
        if route.cfg.dialect == ClientDialect::Anthropic
            && let Ok(body) = &read
        {
            let (openai, ask) = crate::dialect::claude::request(body)?;
            out.claude = Some(ask);
            read = Ok(openai);
            // Where an OpenAI server takes it (a translating pool sets its own path).
            parts.uri = http::Uri::from_static(crate::dialect::claude::OPENAI_PATH);
        }
        let exact = rt.config.limits.exact_tokens;
        // Shaping and the model stage may rewrite an OpenAI body.
        let (decision, rewritten) = {
            let shape = Shape::of(read.as_ref().ok(), exact);
            shape.check(route, caller.as_deref())?;
            match &read {
                Ok(body) if route.cfg.kind == RouteKind::OpenAi => {
                    self.openai_stages(rt, route, caller.as_deref(), &parts, body, &shape, out)?
                }
                _ => Default::default(),
            }
        };
        let mut decision = decision;
        if let Some(b) = rewritten {
            read = Ok(b);
        }
        let shape = Shape::of(read.as_ref().ok(), exact);
        // A model the catalog deploys goes to its pools (the route's own pool otherwise).
        let route = if route.by_model.is_empty() {
            route
        } else {
            let r = route.for_model(shape.model(), &rt.config.models)?;
            out.pool = Some(r.upstream.name.clone());
            r
        };
        out.laps.lap(Step::Gateway, self.clock().now());
        let admitted = self
            .admit(rt, route, caller.as_deref(), &parts, peer, &shape, out)
            .await;
        out.laps.lap(Step::Admission, self.clock().now());
        out.reservation = admitted?;
        drop(shape);
        let mut fill = None;
        let body = match read {
            Ok(body) => {
                if let Some(cache) = self.cache() {
                    let began = self.clock().now();
                    out.laps.lap(Step::Gateway, began);
                    let consulted = self.consult(cache, rt, route, &parts, &body, out).await;
                    let ended = self.clock().now();
                    out.laps.lap(Step::Cache, ended);
                    if let Some(t) = out.trace.as_mut() {
                        let found = out.cache.map_or("error", crate::caching::Status::as_str);
                        t.stage(Stage::Cache(found), began, ended);
                    }
                    match consulted? {
                        Consulted::Answer(resp) => return Ok(*resp),
                        Consulted::Upstream(leader) => fill = leader.map(|f| *f),
                    }
                }
                // A budget at its block threshold refuses what would spend (a cached
                // answer spends nothing).
                if let Some(b) = decision.verdict.block.take() {
                    return Err(ProxyError::BudgetExceeded {
                        blocked: Box::new(b),
                        now: self.clock().unix_millis() / 1000,
                    });
                }
                ReqBody::full(body)
            }
            // No body (a GET, say): nothing to stream, and a retry can send it again.
            Err(incoming) if http_body::Body::is_end_stream(&incoming) => ReqBody::Full(None),
            Err(incoming) => ReqBody::Stream {
                inner: incoming,
                seen: 0,
                limit: rt.config.limits.max_body_bytes,
            },
        };
        // The listener leaves hop-by-hop fields out of HTTP/1.1 heads as it reads them.
        if parts.version == Version::HTTP_2 {
            headers::strip_hop_by_hop(&mut parts.headers);
        }
        let began = self.clock().now();
        out.laps.lap(Step::Gateway, began);
        let permits = self.queue(route, caller.as_deref(), &parts).await;
        let ended = self.clock().now();
        out.laps.lap(Step::Queue, ended);
        if let Some(t) = out.trace.as_mut() {
            t.stage(Stage::Queue, began, ended);
        }
        let permits = permits?;
        headers::drop_unbacked_forwarded_host(&mut parts);
        let trusted = &rt.config.server.trusted_proxies;
        let forwarded = Forwarder::new(self.clock(), trusted, &rt.config.models)
            .forward(route, &parts, body, peer, request_id, out)
            .await;
        out.laps.forwarded(self.clock().now());
        let (head, lease, endpoint) = forwarded?;
        // A fallback's answer (perhaps another model's) is not stored under this request.
        if out.pool.as_ref() != Some(&route.upstream.name) {
            fill = None;
        }
        let mut resp = Response::new(ProxyBody::from(Bytes::new()));
        *resp.status_mut() = head.status;
        *resp.headers_mut() = head.headers;
        // The upstream client leaves hop-by-hop fields out of the head (`fields::collect`).
        resp.headers_mut()
            .insert(headers::UPSTREAM.clone(), endpoint.name_header.clone());
        // The gaps allowed in the answer are those of the pool that gave it (a fallback's).
        let read_timeout = match &out.pool {
            Some(p) if *p != route.upstream.name => rt
                .upstreams
                .iter()
                .find(|u| u.name == *p)
                .map_or(route.upstream.cfg.read_timeout, |u| u.cfg.read_timeout),
            _ => route.upstream.cfg.read_timeout,
        };
        let body = ResponseBody::new(lease, head.body, read_timeout);
        let body = match out.translation.clone() {
            // The gateway's own key refused: the client is told whose it was.
            None if matches!(head.status.as_u16(), 401 | 403) && endpoint.credential.is_some() => {
                resp.headers_mut().remove(header::CONTENT_LENGTH);
                let raw = crate::dialect::read_whole(body, crate::dialect::MAX_ERROR).await;
                AnswerBody::Full(Some(crate::dialect::refused_key(&raw, &endpoint.name)))
            }
            None => AnswerBody::Native(body),
            Some(t) => {
                self.translate_answer(&mut resp, body, t, &endpoint.name)
                    .await
            }
        };
        Ok(account(resp, body, permits, fill))
    }

    /// The answer of a pool whose provider speaks another API, in OpenAI's shape: an error
    /// read whole and mapped (its status too), else translated as it passes.
    async fn translate_answer(
        &self,
        resp: &mut Response<ProxyBody>,
        body: ResponseBody,
        t: Arc<crate::dialect::Translation>,
        endpoint: &str,
    ) -> AnswerBody {
        // The length changes with the shape.
        resp.headers_mut().remove(header::CONTENT_LENGTH);
        if !resp.status().is_success() {
            let raw = crate::dialect::read_whole(body, crate::dialect::MAX_ERROR).await;
            let (status, json) =
                crate::dialect::error(&t, resp.status().as_u16(), resp.headers(), &raw, endpoint);
            *resp.status_mut() =
                http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            // A rate limit always says when to come back (Bedrock's never does).
            if status == 429 && !h.contains_key(header::RETRY_AFTER) {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            return AnswerBody::Full(Some(json));
        }
        let stream = crate::dialect::is_stream(
            &t,
            resp.headers()
                .get(header::CONTENT_TYPE)
                .map(HeaderValue::as_bytes),
        );
        let created = self.clock().unix_millis() / 1000;
        if stream {
            // The answer is OpenAI's event stream now, whatever the upstream framed it in.
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            return AnswerBody::translated(body, &t, created);
        }
        // A whole answer is read and translated before the head goes: the client gets it
        // with its length, in one write, or a clean 502 when it does not read.
        let mut body = body;
        let translated = crate::dialect::read_all(&mut body, crate::dialect::MAX_WHOLE)
            .await
            .and_then(|raw| crate::dialect::whole(&t, &raw, created));
        let (status, out) = match translated {
            Ok(c) => (http::StatusCode::OK, c),
            Err(why) => {
                tracing::warn!(endpoint, error = %why, "an answer that does not translate");
                let e = ProxyError::UpstreamClosed {
                    endpoint: endpoint.to_string(),
                    reason: format!("its answer does not read: {why}"),
                };
                (e.status(), e.body())
            }
        };
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
        AnswerBody::Full(Some(out))
    }

    /// Stage 2: the caller of a route with `[auth]` on, its key checked for the route. The
    /// client's key stops here: the upstream gets the pool's own credential.
    fn authenticate(
        &self,
        rt: &Runtime,
        route: &RouteEntry,
        fields: &mut http::HeaderMap,
    ) -> Result<Option<Arc<Caller>>, ProxyError> {
        let auth = &rt.config.auth;
        if !auth.enabled {
            return Ok(None);
        }
        let caller = self.auth().authenticate(auth, &rt.keys, fields)?;
        caller.check_route(&route.name)?;
        fields.remove(&auth.header);
        Ok(Some(caller))
    }

    /// Stage 3: the body, whole where a later stage needs all of it (`Ok`), else the
    /// client's stream (`Err`). A declared length over the limit is a 413 at once.
    async fn read(
        &self,
        rt: &Runtime,
        route: &RouteEntry,
        parts: &Parts,
        incoming: ClientBody,
        out: &mut Outcome,
    ) -> Result<Result<Bytes, ClientBody>, ProxyError> {
        let max = rt.config.limits.max_body_bytes;
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max) {
            return Err(ProxyError::BodyTooLarge { limit: max });
        }
        // openai bodies are always read whole and checked to be JSON (by the cache's plan
        // when it reads them anyway); http bodies only when the cache needs them for the
        // key, else they stream through.
        Ok(match route.cfg.kind {
            RouteKind::OpenAi => {
                let body = body::read_whole(incoming, max).await?;
                if caching::needs_check(self.cache().is_some(), &route.cfg) {
                    crate::openai::check_json(&body)?;
                }
                Ok(body)
            }
            RouteKind::Http if self.http_cached(route, &parts.method, out) => {
                Ok(body::read_whole(incoming, max).await?)
            }
            RouteKind::Http => Err(incoming),
        })
    }

    /// Stage 5: the rate limits (the configured ones and the key's own): a request counts
    /// one, a token limit reserves the estimate; the tokens reserved, settled by the answer.
    #[allow(clippy::too_many_arguments)]
    async fn admit(
        &self,
        rt: &Runtime,
        route: &RouteEntry,
        caller: Option<&Caller>,
        parts: &Parts,
        peer: &Peer,
        shape: &Shape<'_>,
        out: &mut Outcome,
    ) -> Result<Option<Reservation>, ProxyError> {
        let key_limits = caller.map_or(&[][..], |c| &c.limits[..]);
        if rt.rate_limits.is_empty() && key_limits.is_empty() {
            return Ok(None);
        }
        let admitted = crate::admission::admit(
            rt.rate_limits.iter().chain(key_limits),
            route,
            caller.map(|c| &c.key),
            &parts.headers,
            peer,
            || shape.model(),
            || shape.estimate(),
        )
        .await?;
        out.rate = Some(admitted.state);
        Ok(admitted.tokens)
    }

    /// Stage 7: a permit of each concurrency limit (key, route, pool), or a wait in its
    /// priority queue.
    async fn queue(
        &self,
        route: &RouteEntry,
        caller: Option<&Caller>,
        parts: &Parts,
    ) -> Result<Option<Permits>, ProxyError> {
        let key_name = caller.map_or("", |c| c.key.name.as_str());
        Permits::enter(
            [
                (
                    Scope::Key,
                    key_name,
                    caller.and_then(|c| c.concurrency.as_ref()),
                ),
                (Scope::Route, &route.name, route.concurrency.as_ref()),
                (
                    Scope::Pool,
                    &route.upstream.name,
                    route.pool_concurrency.as_ref(),
                ),
            ],
            || {
                crate::queues::priority(
                    &parts.headers,
                    caller.map(|c| &c.key),
                    route.cfg.priority_header,
                )
            },
            self.clock(),
        )
        .await
    }
}

/// Stage 1: the route of a request whose head is within the limits.
fn route<'r>(
    rt: &'r Runtime,
    req: &Request<ClientBody>,
    out: &mut Outcome,
) -> Result<&'r RouteEntry, ProxyError> {
    if req.version() == Version::HTTP_2 {
        let limits = &rt.config.limits;
        check_head(req, limits.max_header_bytes, limits.max_headers)?;
    }
    let route = rt
        .router
        .route(req.method(), req.uri().path(), req.headers())?;
    out.route = Some(route.name.clone());
    out.dialect = route.cfg.dialect;
    if let Some(t) = &route.transform {
        let accept = t
            .compresses()
            .then(|| req.headers().get(http::header::ACCEPT_ENCODING).cloned())
            .flatten();
        out.transform = Some((t.clone(), accept));
    }
    // A route that serves by model knows its pool once it knows the model.
    if route.cfg.pool.is_some() {
        out.pool = Some(route.upstream.name.clone());
    }
    Ok(route)
}

/// Stage 4: what an OpenAI-shaped body says, each part read at most once, by the first
/// stage that asks.
struct Shape<'b> {
    body: Option<&'b Bytes>,
    /// Whether OpenAI models' prompts are counted with their tokenizer.
    exact: bool,
    /// The model and the answer tokens allowed.
    asked: OnceLock<(Option<String>, Option<u64>)>,
    estimate: OnceLock<Result<Estimate, ProxyError>>,
}

impl<'b> Shape<'b> {
    fn of(body: Option<&'b Bytes>, exact: bool) -> Self {
        Shape {
            body,
            exact,
            asked: OnceLock::new(),
            estimate: OnceLock::new(),
        }
    }

    fn asked(&self) -> &(Option<String>, Option<u64>) {
        self.asked
            .get_or_init(|| self.body.map_or((None, None), |b| caching::asked_of(b)))
    }

    fn model(&self) -> Option<&str> {
        self.asked().0.as_deref()
    }

    /// The answer tokens the request allows (`max_tokens` × `n`), when it says.
    fn max_tokens(&self) -> Option<u64> {
        self.asked().1
    }

    fn estimate(&self) -> Result<Estimate, ProxyError> {
        self.estimate
            .get_or_init(|| {
                let tokenizer = flowgate_cost::Tokenizer::counting(self.model(), self.exact);
                self.body.map_or(Ok(Estimate::default()), |b| {
                    crate::openai::estimate(b, tokenizer)
                })
            })
            .clone()
    }

    /// The checks on what the body says, before anything is counted: the key's models,
    /// the route's prompt-size guard.
    fn check(&self, route: &RouteEntry, caller: Option<&Caller>) -> Result<(), ProxyError> {
        if let Some(c) = caller {
            c.check_model(|| self.model())?;
        }
        if let Some(limit) = route.cfg.max_prompt_tokens {
            let e = self.estimate()?;
            if e.prompt > limit {
                return Err(ProxyError::PromptTooLarge {
                    estimated: e.prompt,
                    limit,
                });
            }
        }
        Ok(())
    }
}

/// Stage 9: the answer's body, with the watches of the request's policies on it: the
/// cache fill (a stream the flight's followers share is read by a task of its own), the
/// concurrency permits. (Its account, which every answer gets, goes on in `handle`.)
fn account(
    mut resp: Response<ProxyBody>,
    body: AnswerBody,
    mut permits: Option<Permits>,
    fill: Option<Fill>,
) -> Response<ProxyBody> {
    if http_body::Body::is_end_stream(&body) {
        // No body: the connection is back in the pool already.
        drop(body);
        if let Some(p) = &mut permits {
            p.first_byte();
        }
        return resp;
    }
    let tee = fill.and_then(|fill| Tee::start(fill, resp.status(), resp.headers()));
    let share = tee.as_ref().and_then(|t| t.share());
    let body = Watched::new(Watched::new(body, tee), permits.map(Box::new));
    *resp.body_mut() = match share.and_then(|s| s.subscribe().map(|own| (s, own))) {
        Some((share, own)) => {
            tokio::spawn(caching::pump(body, share));
            ProxyBody::shared(own)
        }
        None => ProxyBody::upstream(body),
    };
    resp
}

/// Stage "observe": the fields that explain what happened to a request.
fn explain(h: &mut http::HeaderMap, request_id: HeaderValue, out: &Outcome, failed: bool) {
    h.insert(headers::REQUEST_ID.clone(), request_id);
    if failed
        && let Some(v) = out
            .endpoint
            .as_deref()
            .and_then(|e| HeaderValue::from_str(e).ok())
    {
        h.insert(headers::UPSTREAM.clone(), v);
    }
    if let Some(c) = out.cache {
        h.insert(caching::CACHE_STATUS.clone(), c.header());
    }
    if let Some(r) = &out.rate {
        r.write(h);
    }
    match out.attempts {
        0 => {}
        1 => _ = h.insert(ATTEMPTS.clone(), HeaderValue::from_static("1")),
        n => _ = h.insert(ATTEMPTS.clone(), HeaderValue::from(n)),
    }
    // The model the gateway chose (the record and the access log say why).
    if out.model_reason.is_some()
        && let Some(v) = out
            .model
            .as_deref()
            .and_then(|m| HeaderValue::from_str(m).ok())
    {
        h.insert(headers::MODEL.clone(), v);
    }
}

/// Rejects request heads over the configured size or header count (431, as JSON).
fn check_head(
    req: &Request<ClientBody>,
    max_bytes: usize,
    max_headers: usize,
) -> Result<(), ProxyError> {
    let h = req.headers();
    if h.len() > max_headers {
        return Err(ProxyError::TooManyHeaders { limit: max_headers });
    }
    let size = req.method().as_str().len()
        + req.uri().path_and_query().map_or(1, |p| p.as_str().len())
        + 12
        + h.iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    if size > max_bytes {
        return Err(ProxyError::HeadersTooLarge { limit: max_bytes });
    }
    Ok(())
}
