//! Stage 9's last watch, on every answer: its tokens read as it passes to the client,
//! priced at its model's price, the request's token limits settled with them, and the
//! request's record sent (to the metrics, the access log and the spend ledger) when the
//! body ends or the client leaves. A client that left early pays for what it got: the
//! text it received is counted, and the record says the tokens were estimated.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use flowgate_clock::SharedClock;
use flowgate_cost::budget::{Budgets, Who};
use flowgate_cost::{Meter, Metered, ModelPrice, Usage};
use flowgate_telemetry::{ErrorKind, RequestRecord, Spend, Telemetry};
use http::Response;

use crate::admission::Reservation;
use crate::body::ProxyBody;
use crate::caching::Status;
use crate::gateway::Gateway;
use crate::outcome::Outcome;
use crate::runtime::Runtime;
use crate::watch::Watch;

/// How an answer's tokens are read and priced (see the module's documentation).
pub(crate) struct Account {
    telemetry: Telemetry,
    clock: SharedClock,
    start: Instant,
    /// Taken when it is sent.
    record: Option<RequestRecord>,
    billing: Billing,
    /// The token limits' reservation, settled with what the answer used.
    reservation: Option<Reservation>,
    price: Option<ModelPrice>,
    /// The budgets in force when the request came, charged with what it spent.
    budgets: Option<Arc<Budgets>>,
    /// Answered by flowgate's cache or another request's flight: nothing was spent.
    cached: bool,
    /// The request's body (an OpenAI request), to estimate its prompt when no usage comes.
    request: Option<Bytes>,
    exact: bool,
    /// The answer tokens the request allowed.
    max_tokens: Option<u64>,
}

/// What is read of the answer.
enum Billing {
    /// Nothing: not an LLM route, or an error answer (providers bill none).
    Nothing,
    /// A successful answer whose tokens cannot be read (neither JSON nor a stream): the
    /// prompt's estimate.
    Prompt,
    Read(Meter),
}

/// What the request was, for its price.
struct Priced {
    /// The route reads its answers' tokens (an `openai` route).
    pub llm: bool,
    pub price: Option<ModelPrice>,
    pub budgets: Option<Arc<Budgets>>,
    pub cached: bool,
    pub reservation: Option<Reservation>,
    pub request: Option<Bytes>,
    /// Prompts of OpenAI models are counted with their tokenizer.
    pub exact: bool,
    pub max_tokens: Option<u64>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("route", &self.record.as_ref().map(|r| &r.route))
            .finish_non_exhaustive()
    }
}

impl Account {
    /// The account of an answer with `status` and `content_type`, whose request's record
    /// so far is `record` (sent when the account ends).
    fn new(
        telemetry: &Telemetry,
        clock: &SharedClock,
        start: Instant,
        record: RequestRecord,
        status: http::StatusCode,
        content_type: Option<&[u8]>,
        p: Priced,
    ) -> Box<Account> {
        let billing = if !p.llm || !status.is_success() {
            Billing::Nothing
        } else {
            Meter::for_content_type(content_type.unwrap_or_default())
                .map_or(Billing::Prompt, Billing::Read)
        };
        Box::new(Account {
            telemetry: telemetry.clone(),
            clock: clock.clone(),
            start,
            record: Some(record),
            billing,
            reservation: p.reservation,
            price: p.price,
            budgets: p.budgets,
            cached: p.cached,
            request: p.request,
            exact: p.exact,
            max_tokens: p.max_tokens,
        })
    }

    /// The prompt's estimate: the reservation's when there is one, else counted now.
    fn prompt(&self, model: Option<&str>) -> u64 {
        if let Some(r) = &self.reservation {
            return r.prompt();
        }
        let tokenizer = flowgate_cost::Tokenizer::counting(model, self.exact);
        self.request
            .as_deref()
            .and_then(|b| flowgate_cost::estimate_with(b, tokenizer).ok())
            .map_or(0, |e| e.prompt)
    }

    fn finish(&mut self) {
        let Some(mut record) = self.record.take() else {
            return;
        };
        let model = record.model.as_deref();
        let metered = match std::mem::replace(&mut self.billing, Billing::Nothing) {
            Billing::Nothing => None,
            Billing::Prompt => Some(Metered {
                usage: Usage {
                    prompt_tokens: self.prompt(model),
                    ..Usage::default()
                },
                estimated: true,
            }),
            Billing::Read(m) => Some(m.finish(|| self.prompt(model))),
        };
        if let Some(r) = &mut self.reservation {
            // An answer from the cache used no tokens upstream.
            let used = match &metered {
                Some(m) if !self.cached => m.total(),
                _ => 0,
            };
            r.settle(used);
        }
        record.spend = metered.map(|m| Spend {
            usage: m.usage,
            estimated: m.estimated,
            usd: self
                .price
                .as_ref()
                .map(|p| flowgate_cost::cost(&m.usage, p)),
            cached: self.cached,
            max_tokens: self.max_tokens,
        });
        if let (Some(b), Some(s)) = (&self.budgets, &record.spend)
            && let (Some(usd), false) = (s.usd, s.cached)
        {
            let who = Who {
                key: record.key.as_deref(),
                team: record.team.as_deref(),
                route: &record.route,
                model: record.model.as_deref(),
            };
            b.charge(&who, usd, self.clock.unix_millis() / 1000);
        }
        record.total = self.clock.now().saturating_duration_since(self.start);
        self.telemetry.record(record);
    }
}

impl Watch for Account {
    fn data(&mut self, data: &Bytes) -> bool {
        if let Billing::Read(m) = &mut self.billing {
            m.push(data);
        }
        true
    }

    /// Sent as soon as the body ends (by the drop).
    fn end(self: Box<Self>) {}
}

impl Drop for Account {
    fn drop(&mut self) {
        self.finish();
    }
}

/// What was known of a request when its head arrived, for its record.
pub(crate) struct Asked {
    pub start: Instant,
    pub at_ms: u64,
    pub method: http::Method,
    pub uri: http::Uri,
    pub request_id: http::HeaderValue,
    pub peer: std::net::IpAddr,
    /// The client asked for the price in the head ([`crate::cost_header`]).
    pub cost: bool,
}

/// `resp` (the request's answer, OpenAI-shaped) with its account on: the record of what
/// the request's stages learned (`out`), the price of the model that answered (the
/// answering pool's own model, else the one the client named), the token reservation.
pub(crate) async fn open(
    gw: &Gateway,
    rt: &Runtime,
    mut resp: Response<ProxyBody>,
    out: &mut Outcome,
    asked: Asked,
    error: Option<ErrorKind>,
) -> Response<ProxyBody> {
    let pool = out
        .pool
        .as_ref()
        .and_then(|p| rt.upstreams.iter().find(|u| u.name == *p));
    let pricing = gw.spending().enabled();
    let price = out
        .model
        .as_deref()
        .filter(|_| pricing)
        .map(|m| pool.and_then(|p| p.cfg.model.as_deref()).unwrap_or(m))
        .and_then(|m| rt.config.models.price(m));
    let cached = out.cache.is_some_and(Status::answered_by_cache);
    if asked.cost && pricing && out.body.is_some() {
        resp = crate::cost_header::add(resp, price.as_ref(), cached).await;
    }
    let (key, team) = match out.caller.as_deref() {
        Some(c) => (
            Some(Arc::from(c.key.name.as_str())),
            c.key.team.as_deref().map(Arc::from),
        ),
        None => (None, None),
    };
    let record = RequestRecord {
        route: out.route.clone().unwrap_or_else(|| Arc::from("-")),
        pool: out.pool.clone(),
        endpoint: out.endpoint.clone(),
        status: resp.status().as_u16(),
        duration: gw.clock().now().saturating_duration_since(asked.start),
        upstream_duration: out.upstream_duration,
        error,
        at_ms: asked.at_ms,
        total: std::time::Duration::ZERO,
        method: asked.method,
        uri: asked.uri,
        request_id: asked.request_id,
        peer: Some(asked.peer),
        key,
        team,
        model: out.model.clone(),
        requested_model: out.requested_model.clone(),
        model_reason: out.model_reason.clone(),
        provider: pool.map(|p| p.cfg.provider.as_str()),
        cache: out.cache.map(Status::as_str),
        attempts: out.attempts,
        spend: None,
        shaped: out.shaped.take(),
        trace: out.trace.take(),
        laps: out.laps.taken,
    };
    let account = Account::new(
        gw.telemetry(),
        gw.clock(),
        asked.start,
        record,
        resp.status(),
        resp.headers()
            .get(http::header::CONTENT_TYPE)
            .map(http::HeaderValue::as_bytes),
        Priced {
            llm: (pricing && out.body.is_some()) || out.reservation.is_some(),
            price,
            budgets: Some(gw.spending().budgets().load()).filter(|b| pricing && !b.is_empty()),
            cached,
            reservation: out.reservation.take(),
            request: out.body.take(),
            exact: rt.config.limits.exact_tokens,
            max_tokens: out.max_tokens,
        },
    );
    resp.map(|b| b.with_account(account))
}
