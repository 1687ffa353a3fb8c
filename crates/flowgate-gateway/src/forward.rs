//! Sending a request upstream until an answer's head is in: attempts on the endpoints of
//! the route's pool, retries within the pool's budget, a hedged second attempt, and the
//! route's fallback chain.
//!
//! - An **attempt** gets a connection to one endpoint, writes the request and reads the
//!   answer's head; its outcome goes to the pool's balancer (latency, breaker).
//! - A failed attempt is **retried** when the pool's `retries.on` names the failure, the
//!   request has attempts left, its body can be sent again (a buffered body, or a streamed
//!   one not yet read), and the pool's budget has a retry. A retry goes to an endpoint the
//!   request has not tried when there is one, at once; back to one it tried only after a
//!   jittered exponential backoff (or the 429's `Retry-After`, if longer). Everything happens
//!   before the client gets a byte: an answer is never retried once its head went out.
//! - A **hedge** (routes with `hedge`, buffered non-streaming requests): when the first
//!   attempt has not answered within the delay (a percentile of the pool's recent answers),
//!   a second goes to another endpoint, paid from the retry budget; the first good answer
//!   wins and the other attempt is dropped (its connection closed).
//! - When the pool's answer is a failure the route's `fallback_on` names, the request goes
//!   down the route's **fallback** chain, each pool with its own retries, the body's
//!   `model` rewritten where the step names one.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use flowgate_balance::Outcome as Health;
use flowgate_clock::SharedClock;
use flowgate_config::{HedgeAfter, IpBlock, ModelCatalog, RouteKind, TagBy, Triggers};
use http::header::{self, HeaderValue};
use http::{Method, Uri};
use smallvec::SmallVec;

use crate::body::{BodyLimitExceeded, ReqBody, find_cause};
use crate::dialect::Prepared;
use crate::error::ProxyError;
use crate::headers::{self, ClientFields, UpstreamFields};
use crate::outcome::Outcome;
use crate::router::RouteEntry;
use crate::upstream::{Endpoint, ResilienceCounts, Upstream};
use flowgate_http::client::{ExchangeError, ReqFraming, RequestHead, ResponseHead};
use flowgate_http::pool::{ConnectError, Lease};
use flowgate_http::server::Peer;
use flowgate_telemetry::trace::{Stage, span_id, traceparent};

/// An answer's head, the connection its body comes on, and the endpoint that answered.
pub(crate) type Answer = Result<(ResponseHead, Lease, Arc<Endpoint>), ProxyError>;

/// The request as it goes upstream.
pub(crate) struct Outbound<'a> {
    pub parts: &'a http::request::Parts,
    pub request_id: &'a HeaderValue,
    /// What the upstream is told about the client, and the authority the client used.
    pub client: ClientFields<'a>,
    pub authority: Option<&'a [u8]>,
}

/// What one attempt got.
struct Tried {
    ep: Arc<Endpoint>,
    answer: Answer,
    /// Time to the answer's head, when there was one.
    took: Option<Duration>,
    /// Time to get its connection (`Duration::MAX`: it never got one).
    connect: Duration,
}

/// A failure that may send a request again, or further down its route's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Connect,
    Reset,
    Timeout,
    Status(u16, Option<Duration>),
}

impl Failure {
    fn of(answer: &Answer) -> Option<Failure> {
        match answer {
            Ok((head, ..)) => {
                // 529 is Anthropic's (and Cloudflare's) "overloaded", and a 429 of
                // Bedrock's `ModelNotReadyException` a model still loading: 503s by
                // other names.
                let s = match head.status.as_u16() {
                    529 => 503,
                    429 if head
                        .headers
                        .get("x-amzn-errortype")
                        .is_some_and(|t| t.as_bytes().starts_with(b"ModelNotReadyException")) =>
                    {
                        503
                    }
                    s => s,
                };
                (s == 429 || s >= 500).then(|| Failure::Status(s, retry_after(head)))
            }
            Err(ProxyError::Connect { .. } | ProxyError::NoEndpoint { .. }) => {
                Some(Failure::Connect)
            }
            Err(ProxyError::UpstreamClosed { .. }) => Some(Failure::Reset),
            Err(ProxyError::Timeout { .. }) => Some(Failure::Timeout),
            Err(_) => None,
        }
    }

    fn triggers(self, on: &Triggers) -> bool {
        match self {
            Failure::Connect => on.connect,
            Failure::Reset => on.reset,
            Failure::Timeout => on.timeout,
            Failure::Status(s, _) => on.status(s),
        }
    }
}

/// Sends requests upstream, timing them by its clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Forwarder<'c> {
    clock: &'c SharedClock,
    /// Peers whose forwarding fields are believed (`[server] trusted_proxies`).
    trusted: &'c [IpBlock],
    /// What a translated request's model is called at its provider, and its longest answer.
    models: &'c ModelCatalog,
}

impl<'c> Forwarder<'c> {
    pub(crate) fn new(
        clock: &'c SharedClock,
        trusted: &'c [IpBlock],
        models: &'c ModelCatalog,
    ) -> Self {
        Forwarder {
            clock,
            trusted,
            models,
        }
    }

    fn clock(&self) -> &SharedClock {
        self.clock
    }

    /// Sends the request on `route` (its pool, then its fallback chain) and returns the first
    /// answer that is not a failure the route moves on from.
    pub(crate) async fn forward(
        &self,
        route: &RouteEntry,
        parts: &http::request::Parts,
        body: ReqBody,
        peer: &Peer,
        request_id: &HeaderValue,
        out: &mut Outcome,
    ) -> Answer {
        let authority = headers::authority(parts);
        let req = Outbound {
            parts,
            request_id,
            client: ClientFields::new(&parts.headers, peer, self.trusted, authority),
            authority,
        };
        let hedge = route.cfg.hedge.filter(|_| hedgeable(route, parts, &body));
        let hedge = hedge.map(|h| h.after);
        let mut body = Some(body);
        // A deployment that names the model its pool knows: the first pool is asked for it.
        let mut asked = match (&route.model, &body) {
            (Some(m), Some(ReqBody::Full(b))) => crate::openai::with_model(b, m).map(ReqBody::full),
            _ => None,
        };
        let first = if asked.is_some() {
            &mut asked
        } else {
            &mut body
        };
        let answer = self.on_pool(&route.upstream, &req, first, hedge, out).await;
        if route.fallbacks.is_empty() || !falls_back(route, &answer) {
            return answer;
        }
        // Boxed: most requests never fall back, and need not carry a second exchange.
        Box::pin(self.fall_back(route, &req, body, hedge, answer, out)).await
    }

    /// Down the route's fallback chain, from the first pool's failed `answer`.
    async fn fall_back(
        &self,
        route: &RouteEntry,
        req: &Outbound<'_>,
        mut body: Option<ReqBody>,
        hedge: Option<HedgeAfter>,
        mut answer: Answer,
        out: &mut Outcome,
    ) -> Answer {
        for (pool, model) in &route.fallbacks {
            if !falls_back(route, &answer) {
                break;
            }
            // The next pool needs the body again: a streamed one sent is gone, and a model
            // is rewritten in a buffered one (openai routes always buffer).
            let next = match (model, &body) {
                (Some(m), Some(ReqBody::Full(b))) => {
                    crate::openai::with_model(b, m).map(ReqBody::full)
                }
                (Some(_), _) => None,
                (None, _) => for_attempt(&mut body),
            };
            let Some(next) = next else { break };
            tracing::debug!(route = %route.name, pool = %pool.name, "falling back");
            ResilienceCounts::add(&pool.counts.fallbacks);
            out.pool = Some(pool.name.clone());
            drop(answer);
            let mut next = Some(next);
            answer = self.on_pool(pool, req, &mut next, hedge, out).await;
        }
        answer
    }

    /// Attempts on `pool` (retried by its policy) within its request timeout.
    async fn on_pool(
        &self,
        pool: &Upstream,
        req: &Outbound<'_>,
        body: &mut Option<ReqBody>,
        hedge: Option<HedgeAfter>,
        out: &mut Outcome,
    ) -> Answer {
        // A pool whose servers speak another API gets the request translated for it (or
        // its own model); the route's own body stays as it is for the next pool of the chain.
        out.translation = None;
        let mut own = None;
        // The path on the pool's servers, when not the client's.
        let mut path: Option<Cow<'static, str>> = None;
        let whole = match body.as_ref() {
            Some(ReqBody::Full(b)) => Some(b),
            _ => None,
        };
        match crate::dialect::prepare(&pool.cfg, req.parts.uri.path(), whole, self.models)? {
            Prepared::AsIs => {}
            Prepared::Body(b) => own = Some(ReqBody::full(b)),
            Prepared::Translated(b, p, t) => {
                own = Some(ReqBody::full(b));
                path = Some(p);
                out.translation = Some(t);
            }
            Prepared::Path(p) => path = Some(Cow::Owned(p)),
        }
        let pool_path = path.as_deref();
        let body = if own.is_some() { &mut own } else { body };
        let timeout = pool.cfg.request_timeout;
        // A body streamed from the client goes at the client's pace: the timeout then
        // covers what the upstream does (waiting for a connection, answering once the body
        // is in), never the upload (`send`).
        if matches!(body, Some(ReqBody::Stream { .. })) {
            return self.attempts(pool, req, pool_path, body, hedge, out).await;
        }
        let answered = {
            // Pinned where it is made: the timeout holds a pointer, not a copy of the future.
            let attempts = std::pin::pin!(self.attempts(pool, req, pool_path, body, hedge, out));
            tokio::time::timeout(timeout, attempts).await
        };
        match answered {
            Ok(a) => a,
            Err(_) => {
                if let Some(ep) = out.endpoint.as_deref().and_then(|n| pool.endpoint(n)) {
                    pool.report(ep, None, Health::Failure);
                }
                let endpoint = out.endpoint.as_deref().unwrap_or(&pool.name).to_string();
                Err(ProxyError::Timeout { endpoint, timeout })
            }
        }
    }

    async fn attempts(
        &self,
        pool: &Upstream,
        req: &Outbound<'_>,
        pool_path: Option<&str>,
        body: &mut Option<ReqBody>,
        hedge: Option<HedgeAfter>,
        out: &mut Outcome,
    ) -> Answer {
        let headers = &req.parts.headers;
        let key = pool.hash_key(headers);
        let tag = request_tag(pool, headers, body.as_ref());
        let tag = tag.as_deref();
        pool.budget.deposit(pool.balancer().now_ns());
        let mut tried: SmallVec<[Arc<Endpoint>; 4]> = SmallVec::new();
        let session = pool.session_id(headers);
        let region = pool.region(headers);
        let Some(mut ep) = pool.pick(key, tag, session, region).cloned() else {
            return Err(ProxyError::NoEndpoint {
                pool: match tag {
                    Some(t) => format!("{} (tagged {t:?}; tag_fallback is off)", pool.name),
                    None => pool.name.to_string(),
                },
            });
        };
        loop {
            out.attempts += 1;
            // Named before the attempt: a request timeout charges this endpoint.
            out.endpoint = Some(ep.name.clone());
            // In a block of its own: the answer is not kept in the future across the
            // backoff's sleep.
            let step = {
                // A traced request names its attempt's span to the upstream.
                let span = out.trace.as_ref().map(|t| (t.trace_id, span_id()));
                let parent = span.map(|(t, s)| traceparent(&t, &s, true));
                let began = self.clock().now();
                out.laps.attempt(began);
                let t = match hedge {
                    // Boxed: the hedge's two attempts would double every request's future.
                    Some(after) if tried.is_empty() => {
                        Box::pin(self.hedged(
                            pool,
                            ep,
                            req,
                            pool_path,
                            body,
                            after,
                            key,
                            tag,
                            parent.as_ref(),
                            out,
                        ))
                        .await
                    }
                    _ => {
                        self.attempt(pool, ep, req, pool_path, body, parent.as_ref())
                            .await
                    }
                };
                out.laps.connected(t.connect);
                if let (Some(trace), Some((_, id))) = (out.trace.as_mut(), span) {
                    let (status, error) = match &t.answer {
                        Ok((head, _, _)) => (head.status.as_u16(), None),
                        Err(e) => (0, Some(e.code().to_string())),
                    };
                    let stage = Stage::Attempt {
                        endpoint: t.ep.name.to_string(),
                        number: out.attempts,
                        status,
                        error,
                    };
                    trace.stage_with(id, stage, began, self.clock().now());
                }
                out.endpoint = Some(t.ep.name.clone());
                if let Some(took) = t.took {
                    out.upstream_duration = Some(took);
                }
                tried.push(t.ep.clone());
                next_step(pool, t, &tried, key, tag, out.attempts, body.is_some())
            };
            let wait = match step {
                Next::Again(next, wait) => {
                    ep = next;
                    wait
                }
                Next::Done(answer) => return answer,
            };
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
            }
            ResilienceCounts::add(&pool.counts.retries);
            tracing::debug!(pool = %pool.name, attempt = out.attempts, "retrying");
        }
    }

    /// The first attempt to `first`, and a second to another endpoint when it has not
    /// answered within the hedging delay; the first good answer wins.
    #[allow(clippy::too_many_arguments)]
    async fn hedged(
        &self,
        pool: &Upstream,
        first: Arc<Endpoint>,
        req: &Outbound<'_>,
        pool_path: Option<&str>,
        body: &mut Option<ReqBody>,
        after: HedgeAfter,
        key: Option<&[u8]>,
        tag: Option<&str>,
        parent: Option<&HeaderValue>,
        out: &mut Outcome,
    ) -> Tried {
        let delay = match after {
            HedgeAfter::Fixed(d) => Some(d),
            HedgeAfter::Quantile(_) => after.quantile().and_then(|q| {
                pool.latencies
                    .quantile(pool.balancer().now_ns(), q, HEDGE_MIN_SAMPLES)
            }),
        };
        // Hedged requests have buffered bodies: the first attempt keeps its own.
        let mut second_body = for_attempt(body);
        let started = self.clock().now();
        let a = self.attempt(pool, first.clone(), req, pool_path, body, parent);
        let Some(delay) = delay else {
            return a.await;
        };
        tokio::pin!(a);
        tokio::select! {
            t = &mut a => return t,
            () = tokio::time::sleep(delay) => {}
        }
        let second = pool
            .pick_other(std::slice::from_ref(&first), key, tag)
            .cloned();
        let Some(second) = second else {
            return a.await;
        };
        if !pool.budget.withdraw(pool.balancer().now_ns()) {
            return a.await;
        }
        ResilienceCounts::add(&pool.counts.hedges);
        out.attempts += 1;
        let b = self.attempt(pool, second, req, pool_path, &mut second_body, parent);
        tokio::pin!(b);
        tokio::select! {
            t = &mut a => if good(&t) { t } else { won(pool, b.await) },
            t = &mut b => if good(&t) {
                // The first attempt is dropped unanswered: it took at least this long,
                // which its endpoint's latency estimate should know.
                pool.took_at_least(&first, self.clock().now().saturating_duration_since(started));
                won(pool, t)
            } else {
                a.await
            },
        }
    }

    /// One attempt on `ep`: a connection, the request written (with `parent` as its
    /// `traceparent`, when traced), the answer's head read.
    async fn attempt(
        &self,
        pool: &Upstream,
        ep: Arc<Endpoint>,
        req: &Outbound<'_>,
        pool_path: Option<&str>,
        body: &mut Option<ReqBody>,
        parent: Option<&HeaderValue>,
    ) -> Tried {
        let (answer, took, connect) = match self.send(pool, &ep, req, pool_path, body, parent).await
        {
            Ok((head, lease, took, connect)) => {
                (Ok((head, lease, ep.clone())), Some(took), connect)
            }
            Err(e) => {
                let connect = match e {
                    ProxyError::Connect { .. } => Duration::MAX,
                    _ => Duration::ZERO,
                };
                (Err(e), None, connect)
            }
        };
        Tried {
            ep,
            answer,
            took,
            connect,
        }
    }

    /// One exchange on `ep`; `pool_path` is the path on the pool's servers when it is not
    /// the client's (a translating pool's, an Azure deployment's).
    async fn send(
        &self,
        pool: &Upstream,
        ep: &Arc<Endpoint>,
        req: &Outbound<'_>,
        pool_path: Option<&str>,
        body: &mut Option<ReqBody>,
        parent: Option<&HeaderValue>,
    ) -> Result<(ResponseHead, Lease, Duration, Duration), ProxyError> {
        let parts = req.parts;
        let streamed = matches!(body, Some(ReqBody::Stream { .. }));
        let timeout = pool.cfg.request_timeout;
        let timed_out = || ProxyError::Timeout {
            endpoint: ep.name.to_string(),
            timeout,
        };
        let asked = self.clock().now();
        let checkout = if streamed {
            tokio::time::timeout(timeout, ep.checkout())
                .await
                .map_err(|_| timed_out())?
        } else {
            ep.checkout().await
        };
        let mut lease = match checkout {
            Ok(l) => l,
            Err(e) => {
                // An endpoint that cannot be reached costs as much as the longest a
                // connection may take: the balancer turns away from it until that decays.
                pool.report(ep, Some(pool.cfg.connect_timeout), Health::Failure);
                return Err(connect_error(ep, &e));
            }
        };
        let connect = self.clock().now().saturating_duration_since(asked);
        let Some(mut body) = for_attempt(body) else {
            return Err(closed(ep, "the request body was already sent".into()));
        };
        // A buffered body as it was before a write consumed it, for a stale connection.
        let again = match &body {
            ReqBody::Full(b) => Some(b.clone()),
            ReqBody::Stream { .. } => None,
        };
        let provider = pool.cfg.provider;
        let target = match pool_path {
            Some(path) => Cow::Owned(format!("{}{path}", ep.cfg.base_path)),
            None => upstream_target(ep, &parts.uri),
        };
        // A Bedrock request is signed at each attempt, over the body it sends.
        let signature = match (&pool.aws, &body) {
            (Some(signer), ReqBody::Full(b)) => signer.sign(
                ep.host_header.to_str().unwrap_or_default(),
                &target,
                b.as_deref().unwrap_or_default(),
                ep.cfg.region.as_deref().unwrap_or_default(),
                self.clock().unix_millis() / 1000,
            ),
            _ => Default::default(),
        };
        let fields =
            UpstreamFields::new(&ep.host_header, &req.client, req.authority, req.request_id)
                .with_credential(ep.credential.as_ref())
                .with(crate::dialect::fields(provider))
                .with_values(&signature)
                .with_trace(parent);
        let head = RequestHead {
            omit: crate::dialect::omitted(provider),
            method: &parts.method,
            target: &target,
            headers: &parts.headers,
            set: fields.as_slice(),
            framing: ReqFraming::of(&parts.method, &body),
        };
        let head_request = parts.method == Method::HEAD;
        let mut stale_retries = 0;
        let mut started;
        // When other requests are being served on this worker, every one that is ready is
        // read and prepared before any of them is written upstream: the writes of one turn
        // of the event loop reach the upstream back to back, so that it wakes once for all
        // of them instead of once for each. A request alone has no one to wait for
        // (docs/decisions/2026-11-23-upstream-writes-per-turn.md,
        // docs/decisions/2026-11-23-yield-only-with-company.md).
        if flowgate_http::worker::serving_others() {
            tokio::task::yield_now().await;
        }
        let resp = loop {
            let reused = lease.is_reused();
            match lease.write_request(&head, &mut body).await {
                Ok(()) => {}
                // A pooled connection the upstream had closed while it sat idle, found out
                // while writing (or a stream an HTTP/2 server refused): the upstream never
                // got the request, and a buffered body can be sent again on a fresh
                // connection. Once the request is written it is never resent here (the
                // retry policy decides), unless the server says it did not process it.
                Err(e)
                    if again.is_some()
                        && stale_retries < 2
                        && (e.is_unprocessed() || reused && matches!(e, ExchangeError::Io(_))) =>
                {
                    stale_retries += 1;
                    body = ReqBody::Full(again.clone().flatten());
                    drop(lease);
                    lease = ep.checkout().await.map_err(|e| connect_error(ep, &e))?;
                    continue;
                }
                Err(e) => {
                    if !matches!(e, ExchangeError::Body(_)) {
                        pool.report(ep, None, Health::Failure);
                    }
                    return Err(exchange_error(ep, e));
                }
            }
            // The upstream's time starts once it has the whole request: a slow upload is
            // the client's, never the endpoint's latency (nor, streamed, its timeout).
            started = self.clock().now();
            let read = if streamed {
                match tokio::time::timeout(timeout, lease.read_head(head_request)).await {
                    Ok(r) => r,
                    Err(_) => {
                        pool.report(ep, None, Health::Failure);
                        return Err(timed_out());
                    }
                }
            } else {
                lease.read_head(head_request).await
            };
            match read {
                Ok(r) => break r,
                // An HTTP/2 server going away (GOAWAY) did not process this stream: sent
                // again on another connection, as a refused write is.
                Err(e) if e.is_unprocessed() && again.is_some() && stale_retries < 2 => {
                    stale_retries += 1;
                    body = ReqBody::Full(again.clone().flatten());
                    drop(lease);
                    lease = ep.checkout().await.map_err(|e| connect_error(ep, &e))?;
                }
                Err(e) => {
                    pool.report(ep, None, Health::Failure);
                    return Err(exchange_error(ep, e));
                }
            }
        };
        let took = self.clock().now().saturating_duration_since(started);
        pool.report(ep, Some(took), outcome_of(&resp));
        Ok((resp, lease, took, connect))
    }
}

/// What follows an attempt. (`Done` is the common case, returned once per attempt: boxing
/// it would cost an allocation per request to save a move.)
#[allow(clippy::large_enum_variant)]
enum Next {
    /// This answer goes to the client (it may be a success).
    Done(Answer),
    /// Another attempt, on this endpoint, after this wait.
    Again(Arc<Endpoint>, Option<Duration>),
}

/// What follows attempt `t`.
fn next_step(
    pool: &Upstream,
    t: Tried,
    tried: &[Arc<Endpoint>],
    key: Option<&[u8]>,
    tag: Option<&str>,
    attempts: u32,
    body_left: bool,
) -> Next {
    let policy = &pool.cfg.retries;
    let Some(failure) = Failure::of(&t.answer).filter(|f| f.triggers(&policy.on)) else {
        return Next::Done(t.answer);
    };
    if attempts >= policy.attempts || !body_left {
        return Next::Done(t.answer);
    }
    if !pool.budget.withdraw(pool.balancer().now_ns()) {
        return Next::Done(t.answer);
    }
    // An endpoint it has not tried, at once; else one it tried, after a backoff.
    if let Some(fresh) = pool.pick_other(tried, key, tag) {
        return Next::Again(fresh.clone(), None);
    }
    let Some(same) = pool.pick_other(&[], key, tag) else {
        return Next::Done(t.answer);
    };
    let mut wait =
        flowgate_balance::backoff(tried.len() as u32, policy.backoff_base, policy.backoff_max);
    if let Failure::Status(_, Some(ra)) = failure {
        wait = wait.max(ra);
    }
    if wait >= pool.cfg.request_timeout {
        return Next::Done(t.answer);
    }
    tracing::debug!(pool = %pool.name, ?failure, ?wait, "retrying after a backoff");
    Next::Again(same.clone(), Some(wait))
}

/// Whether `answer` is a failure that moves a request down its route's fallback chain.
fn falls_back(route: &RouteEntry, answer: &Answer) -> bool {
    Failure::of(answer).is_some_and(|f| f.triggers(&route.cfg.fallback_on))
}

/// Samples the pool needs before its percentile sets a hedging delay.
const HEDGE_MIN_SAMPLES: u64 = 20;

/// Whether an attempt's answer can be given to the client (when another attempt is out).
fn good(t: &Tried) -> bool {
    Failure::of(&t.answer).is_none()
}

fn won(pool: &Upstream, t: Tried) -> Tried {
    if good(&t) {
        ResilienceCounts::add(&pool.counts.hedges_won);
    }
    t
}

/// Whether a request may be hedged: its body is buffered, it does not stream its answer,
/// and sending it twice does no harm (an idempotent method, or an openai route's model call,
/// whose only side effect is its cost).
fn hedgeable(route: &RouteEntry, parts: &http::request::Parts, body: &ReqBody) -> bool {
    let ReqBody::Full(b) = body else {
        return false;
    };
    match route.cfg.kind {
        RouteKind::OpenAi => !b.as_deref().is_some_and(crate::openai::streams),
        RouteKind::Http => parts.method.is_idempotent(),
    }
}

/// The body for one more attempt: a buffered one again (it stays), a streamed one once (it
/// is taken); `None` when a streamed body was already sent.
fn for_attempt(body: &mut Option<ReqBody>) -> Option<ReqBody> {
    match body {
        Some(ReqBody::Full(b)) => Some(ReqBody::Full(b.clone())),
        Some(ReqBody::Stream { .. }) => body.take(),
        None => None,
    }
}

/// A 429's or 503's `Retry-After`, in seconds.
fn retry_after(head: &ResponseHead) -> Option<Duration> {
    head.headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// The tag that picks a request's endpoints, by the pool's `tag_by`: a header's value, or
/// the model of a JSON body.
pub(crate) fn request_tag(
    pool: &Upstream,
    headers: &http::HeaderMap,
    body: Option<&ReqBody>,
) -> Option<String> {
    match pool.cfg.tag_by.as_ref()? {
        TagBy::Header(h) => headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string()),
        TagBy::Model => match body {
            Some(ReqBody::Full(Some(b))) => crate::caching::model_of(b),
            _ => None,
        },
    }
}

/// What an answer says of its endpoint's health: 5xx fail, a 429 takes it out for its
/// `Retry-After` (in seconds), anything else is a success.
fn outcome_of(resp: &ResponseHead) -> Health {
    match resp.status.as_u16() {
        429 => Health::Throttled(retry_after(resp)),
        s if s >= 500 => Health::Failure,
        _ => Health::Success,
    }
}

/// The client's answer for a failed exchange: 413 when the client's streamed body passed the
/// limit, 502 otherwise.
fn exchange_error(ep: &Endpoint, e: ExchangeError) -> ProxyError {
    match &e {
        ExchangeError::Body(b) => match find_cause::<BodyLimitExceeded>(b.as_ref()) {
            Some(BodyLimitExceeded(limit)) => ProxyError::BodyTooLarge { limit: *limit },
            // The client's body broke off, stalled or was malformed: its fault, not the
            // upstream's.
            None => crate::body::body_error(b.as_ref()),
        },
        _ => closed(ep, e.to_string()),
    }
}

fn closed(ep: &Endpoint, reason: String) -> ProxyError {
    ProxyError::UpstreamClosed {
        endpoint: ep.name.to_string(),
        reason,
    }
}

fn connect_error(ep: &Endpoint, e: &ConnectError) -> ProxyError {
    ProxyError::Connect {
        endpoint: ep.name.to_string(),
        reason: e.to_string(),
    }
}

/// The origin-form request target for `ep`: its base path, then the request's path and query.
fn upstream_target<'a>(ep: &Endpoint, uri: &'a Uri) -> Cow<'a, str> {
    let pq = uri.path_and_query().map_or("/", |p| p.as_str());
    if ep.cfg.base_path.is_empty() {
        Cow::Borrowed(pq)
    } else {
        Cow::Owned(format!("{}{}", ep.cfg.base_path, pq))
    }
}
