//! The simulated endpoint's HTTP server.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::body::SimBody;
use crate::content::{self, Ask};
use crate::reply::{event_stream, json_response, sleep};
use crate::spec::Dialect;
use crate::spec::{EndpointSpec, Fate};
use crate::stats::{InFlight, SimStats, StatsSnapshot};
use crate::{anthropic, azure, bedrock, gemini};

const MAX_BODY: usize = 16 * 1024 * 1024;

/// A running simulated endpoint; stops when dropped.
#[derive(Debug)]
pub struct SimServer {
    addr: SocketAddr,
    stats: Arc<SimStats>,
    slowdown: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

struct State {
    spec: EndpointSpec,
    stats: Arc<SimStats>,
    seq: AtomicU64,
    /// Milliseconds added to every answer's latency from now on (an injected slowdown).
    slowdown: Arc<AtomicU64>,
}

/// Returned by the service to make hyper drop the connection without an answer.
#[derive(Debug)]
struct Reset;

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("simulated connection reset")
    }
}

impl std::error::Error for Reset {}

impl SimServer {
    /// Binds `addr` (port 0 picks a free port) and serves `spec`.
    pub async fn start(addr: SocketAddr, spec: EndpointSpec) -> std::io::Result<SimServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(SimStats::default());
        let slowdown = Arc::new(AtomicU64::new(0));
        let state = Arc::new(State {
            spec,
            stats: stats.clone(),
            seq: AtomicU64::new(0),
            slowdown: slowdown.clone(),
        });
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let (stream, _) = match listener.accept().await {
                    Ok(s) => s,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| handle(req, state.clone()));
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        Ok(SimServer {
            addr,
            stats,
            slowdown,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds `extra` to the latency of every answer from now on (zero: back to its spec).
    pub fn slow_down(&self, extra: Duration) {
        let ms = u64::try_from(extra.as_millis()).unwrap_or(u64::MAX);
        self.slowdown.store(ms, Ordering::Relaxed);
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(req: Request<Incoming>, state: Arc<State>) -> Result<Response<SimBody>, Reset> {
    let path = req.uri().path().to_string();
    match (req.method(), path.as_str()) {
        (&Method::GET, "/health") => return Ok(Response::new(SimBody::full("ok"))),
        (&Method::GET, "/sim/stats") => {
            let snap = serde_json::to_value(state.stats.snapshot()).unwrap_or(Value::Null);
            return Ok(json_response(StatusCode::OK, &snap));
        }
        _ => {}
    }
    state.stats.requests.fetch_add(1, Ordering::Relaxed);
    let guard = InFlight::new(&state.stats);
    let n = state.seq.fetch_add(1, Ordering::Relaxed);
    let mut rng = SmallRng::seed_from_u64(state.spec.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));

    if path.starts_with("/echo") {
        let latency = state.spec.latency.sample(&mut rng);
        return Ok(echo(req, latency, guard).await);
    }
    if req.method() == Method::GET && path == "/v1/models" {
        guard.finish();
        let v = json!({"object": "list", "data": [{"id": "sim-model", "object": "model", "created": 1_767_225_600u64, "owned_by": "flowgate-sim"}]});
        return Ok(json_response(StatusCode::OK, &v));
    }
    let azure = azure::operation(&path).map(|(d, op)| (d.to_string(), op.to_string()));
    let op = match &azure {
        Some((_, op)) => format!("/{op}"),
        None => path.clone(),
    };
    let kind = match op.as_str() {
        "/v1/chat/completions" | "/chat/completions" => Kind::Chat,
        "/v1/completions" | "/completions" => Kind::Text,
        "/v1/embeddings" | "/embeddings" => Kind::Embeddings,
        "/v1/messages" => Kind::Messages,
        p if req.method() == Method::POST && bedrock::operation(p).is_some() => Kind::Bedrock,
        p if req.method() == Method::POST && gemini::operation(p).is_some() => Kind::Gemini,
        _ => {
            guard.finish();
            return Ok(json_response(
                StatusCode::NOT_FOUND,
                &content::error(
                    &format!("sim: unknown path {path}"),
                    "invalid_request_error",
                    "not_found",
                ),
            ));
        }
    };
    let dialect = match kind {
        _ if azure.is_some() => Dialect::Azure,
        Kind::Chat | Kind::Text | Kind::Embeddings => Dialect::OpenAi,
        Kind::Messages => Dialect::Anthropic,
        Kind::Bedrock => Dialect::Bedrock,
        Kind::Gemini => Dialect::Gemini,
    };
    if let Some(only) = state.spec.dialect.filter(|d| *d != dialect) {
        guard.finish();
        return Ok(json_response(
            StatusCode::NOT_FOUND,
            &content::error(
                &format!(
                    "sim: {path} is {}'s; this simulator speaks {} only",
                    dialect.as_str(),
                    only.as_str()
                ),
                "invalid_request_error",
                "not_found",
            ),
        ));
    }
    let headers = req.headers().clone();
    let uri = req.uri().clone();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            guard.finish();
            return Ok(json_response(
                StatusCode::BAD_REQUEST,
                &content::error(
                    "sim: could not read body",
                    "invalid_request_error",
                    "bad_body",
                ),
            ));
        }
    };
    if azure.is_some()
        && let Some(refused) = azure::refusal(&state.spec, &uri, &headers)
    {
        state.stats.unauthorized.fetch_add(1, Ordering::Relaxed);
        guard.finish();
        return Ok(refused);
    }
    let bedrock_op = (kind == Kind::Bedrock)
        .then(|| bedrock::operation(&path))
        .flatten();
    if bedrock_op.is_some()
        && let Some(refused) = bedrock::unsigned(&state.spec, "POST", &uri, &headers, &body)
    {
        state.stats.unauthorized.fetch_add(1, Ordering::Relaxed);
        guard.finish();
        return Ok(refused);
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        guard.finish();
        return Ok(json_response(
            StatusCode::BAD_REQUEST,
            &content::error(
                "sim: body is not valid JSON",
                "invalid_request_error",
                "invalid_json",
            ),
        ));
    };
    let messages = kind == Kind::Messages;
    if messages && let Some(refused) = anthropic::refusal(&headers, &v) {
        guard.finish();
        return Ok(refused);
    }
    if bedrock_op.is_some()
        && let Some(refused) = bedrock::refusal(&ask_model(&bedrock_op), &v)
    {
        guard.finish();
        return Ok(refused);
    }
    let gemini_op = (kind == Kind::Gemini)
        .then(|| gemini::operation(&path))
        .flatten();
    if let Some((_, op)) = &gemini_op
        && let Some(refused) = gemini::refusal(&state.spec, &uri, &headers, &v, *op)
    {
        state.stats.unauthorized.fetch_add(1, Ordering::Relaxed);
        guard.finish();
        return Ok(refused);
    }
    let mut ask = Ask::from_json(&v, body.len());
    if let Some((model, stream)) = &bedrock_op {
        ask.model.clone_from(model);
        ask.stream = *stream;
    }
    if let Some((deployment, _)) = &azure {
        ask.model.clone_from(deployment);
    }
    if let Some((model, op)) = &gemini_op {
        ask.model.clone_from(model);
        ask.stream = *op == gemini::Op::Stream;
        ask.prompt_tokens = gemini::prompt_tokens(&v);
        ask.max_tokens = v
            .pointer("/generationConfig/maxOutputTokens")
            .and_then(Value::as_u64)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    }
    let spec = &state.spec;
    match spec.fate(&mut rng) {
        Fate::Ok => {}
        Fate::RateLimited => {
            state.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            guard.finish();
            if gemini_op.is_some() {
                return Ok(gemini::error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "RESOURCE_EXHAUSTED",
                    "Resource has been exhausted (e.g. check quota).",
                    None,
                ));
            }
            if bedrock_op.is_some() {
                // AWS sends no Retry-After.
                return Ok(bedrock::error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "ThrottlingException",
                    "Too many requests, please wait before trying again.",
                ));
            }
            let mut r = if messages {
                anthropic::error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    "sim: rate limit reached",
                )
            } else {
                json_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    &content::error(
                        "sim: rate limit reached",
                        "rate_limit_error",
                        "rate_limit_exceeded",
                    ),
                )
            };
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(spec.retry_after_secs),
            );
            return Ok(r);
        }
        Fate::Reset => {
            state.stats.resets.fetch_add(1, Ordering::Relaxed);
            guard.finish();
            return Err(Reset);
        }
        Fate::Stall => {
            state.stats.stalls.fetch_add(1, Ordering::Relaxed);
            std::future::pending::<()>().await;
        }
        Fate::ServerError => {
            sleep(spec.latency.sample(&mut rng)).await;
            state.stats.server_errors.fetch_add(1, Ordering::Relaxed);
            guard.finish();
            if gemini_op.is_some() {
                return Ok(gemini::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    "The model is overloaded. Please try again later.",
                    None,
                ));
            }
            if bedrock_op.is_some() {
                return Ok(bedrock::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailableException",
                    "Bedrock is unable to process your request.",
                ));
            }
            if messages {
                // Anthropic's overload answer, the one its clients retry elsewhere.
                let status = StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                return Ok(anthropic::error(
                    status,
                    "overloaded_error",
                    "sim: overloaded",
                ));
            }
            return Ok(json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &content::error(
                    "sim: injected server error",
                    "server_error",
                    "internal_error",
                ),
            ));
        }
    }
    let latency = spec.latency.sample(&mut rng)
        + Duration::from_millis(state.slowdown.load(Ordering::Relaxed));
    let completion = ask.completion_tokens(spec.completion_tokens);
    if ask.stream && gemini_op.is_some() {
        return Ok(gemini::stream(
            n,
            ask,
            &v,
            latency,
            completion,
            spec.token_delay,
            rng,
            guard,
        ));
    }
    if ask.stream && bedrock_op.is_some() {
        return Ok(bedrock::stream_head(anthropic::stream(
            bedrock::frame,
            n,
            ask,
            &v,
            latency,
            completion,
            spec.token_delay,
            rng,
            guard,
        )));
    }
    if ask.stream && messages {
        return Ok(anthropic::stream(
            anthropic::sse_frame,
            n,
            ask,
            &v,
            latency,
            completion,
            spec.token_delay,
            rng,
            guard,
        ));
    }
    if ask.stream && kind == Kind::Chat {
        return Ok(stream_chat(
            n,
            ask,
            latency,
            completion,
            spec.token_delay,
            rng,
            guard,
        ));
    }
    sleep(latency).await;
    let text = content::words(&mut rng, completion).join(" ");
    let answer = match kind {
        Kind::Chat => content::chat_completion(n, &ask, &text, completion),
        Kind::Text => content::text_completion(n, &ask, &text, completion),
        Kind::Embeddings => content::embeddings(&ask, &mut rng),
        Kind::Gemini => {
            guard.finish();
            if gemini_op
                .as_ref()
                .is_some_and(|(_, op)| *op == gemini::Op::Embed)
            {
                return Ok(gemini::embeddings(&v, &mut rng));
            }
            return Ok(gemini::answer(n, &ask, &v, &text, completion));
        }
        Kind::Bedrock
            if bedrock_op.as_ref().is_some_and(|(m, _)| {
                flowgate_providers::bedrock::embeddings::family(m).is_some()
            }) =>
        {
            guard.finish();
            let model = ask_model(&bedrock_op);
            return Ok(bedrock::embeddings(&model, &v, &mut rng));
        }
        Kind::Messages | Kind::Bedrock => {
            guard.finish();
            return Ok(anthropic::message(n, &ask, &v, &text, completion));
        }
    };
    guard.finish();
    Ok(json_response(StatusCode::OK, &answer))
}

/// The model a Bedrock path names.
fn ask_model(op: &Option<(String, bool)>) -> String {
    op.as_ref().map(|(m, _)| m.clone()).unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Text,
    Embeddings,
    /// Anthropic's Messages API.
    Messages,
    /// Anthropic's models on Bedrock.
    Bedrock,
    /// Google's Gemini API.
    Gemini,
}

fn stream_chat(
    id: u64,
    ask: Ask,
    ttft: Duration,
    tokens: u32,
    token_delay: Duration,
    mut rng: SmallRng,
    guard: InFlight,
) -> Response<SimBody> {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        sleep(ttft).await;
        let role = content::chunk_event(
            id,
            &ask,
            json!({"role": "assistant", "content": ""}),
            None,
            None,
        );
        if tx.send(role.into()).await.is_err() {
            return; // the guard counts the cancellation
        }
        for (i, w) in content::words(&mut rng, tokens).into_iter().enumerate() {
            if i > 0 {
                sleep(token_delay).await;
            }
            let piece = if i == 0 {
                w.to_string()
            } else {
                format!(" {w}")
            };
            let ev = content::chunk_event(id, &ask, json!({"content": piece}), None, None);
            if tx.send(ev.into()).await.is_err() {
                return;
            }
        }
        let usage = ask
            .include_usage
            .then(|| content::usage(ask.prompt_tokens, tokens));
        let last = content::chunk_event(id, &ask, json!({}), Some("stop"), usage);
        if tx.send(last.into()).await.is_err()
            || tx
                .send(Bytes::from_static(b"data: [DONE]\n\n"))
                .await
                .is_err()
        {
            return;
        }
        guard.finish();
    });
    event_stream(rx)
}

/// Answers with what was received, after the endpoint's latency; the body is read in a
/// streaming way and only counted.
async fn echo(req: Request<Incoming>, latency: Duration, guard: InFlight) -> Response<SimBody> {
    let (parts, mut body) = req.into_parts();
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in &parts.headers {
        headers
            .entry(k.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let mut bytes = 0u64;
    let mut frames = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    bytes += d.len() as u64;
                    frames += 1;
                }
            }
            Err(_) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &content::error("sim: body error", "invalid_request_error", "bad_body"),
                );
            }
        }
    }
    sleep(latency).await;
    guard.finish();
    let v = json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_bytes": bytes,
        "body_frames": frames,
    });
    json_response(StatusCode::OK, &v)
}
