//! A pool whose servers speak another API than the client (`provider`): its request is
//! translated for it at each attempt on it (so that a fallback to another provider
//! translates for its own target), and its answer back before anything reaches the
//! client's watches (the token meter and the cache see OpenAI's shape). The translations
//! themselves are `flowgate_providers`'; here is what the gateway does with them: the
//! path and fields of the request ([`prepare`]), the answer's body ([`answer`]), its
//! errors ([`error`]), and Bedrock's signature ([`aws`]). And the other way: Claude
//! clients' requests and answers ([`claude`]).

mod answer;
pub(crate) mod aws;
pub(crate) mod claude;

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use flowgate_config::{ModelCatalog, PoolConfig, Provider};
use flowgate_http::pool::ResponseBody;
use flowgate_providers::{Unsupported, anthropic, bedrock, gemini};
use http::HeaderName;
use http_body::Body;

pub use answer::AnswerBody;

use crate::error::ProxyError;

/// `max_tokens` for Anthropic when the client sets none and the catalog does not know the
/// model's longest answer.
const DEFAULT_MAX_TOKENS: u64 = 4096;
/// The largest error body read to translate it.
pub(crate) const MAX_ERROR: usize = 256 * 1024;
/// The largest whole answer read to translate it (larger is a bad answer).
pub(crate) const MAX_WHOLE: usize = 64 * 1024 * 1024;

/// How a request was translated, and what reading its answer needs to know.
#[derive(Debug, Clone)]
pub(crate) struct Translation {
    pub provider: Provider,
    /// The model as the client named it: the answer names it so.
    pub model: String,
    pub include_usage: bool,
    pub json_mode: bool,
    /// An embeddings request: how its answer is written.
    pub embeddings: Option<Box<Embed>>,
}

/// How an embeddings answer is read, by provider.
#[derive(Debug, Clone)]
pub(crate) enum Embed {
    Gemini(gemini::Embeddings),
    Bedrock(bedrock::embeddings::Embeddings),
}

/// The request body for a pool, when it is not the route's.
pub(crate) enum Prepared {
    /// The route's body, as it is.
    AsIs,
    /// The route's body with another `model` (an OpenAI pool's `model`).
    Body(Bytes),
    /// Translated for the pool's provider: the body, its path after the endpoint's base
    /// path, and how its answer is read.
    Translated(Bytes, Cow<'static, str>, Arc<Translation>),
    /// The route's body, to another path (an Azure deployment's).
    Path(String),
}

/// The request body (an OpenAI request; `None` when it streams from the client, unread) as
/// `pool` wants it.
pub(crate) fn prepare(
    pool: &PoolConfig,
    path: &str,
    whole: Option<&Option<Bytes>>,
    catalog: &ModelCatalog,
) -> Result<Prepared, ProxyError> {
    if pool.provider == Provider::OpenAi && pool.model.is_none() {
        return Ok(Prepared::AsIs);
    }
    if pool.provider == Provider::Azure {
        return Ok(Prepared::Path(azure_path(pool, path, whole, catalog)));
    }
    let Some(b) = whole else {
        return Err(ProxyError::Unsupported(Unsupported::new(
            "",
            format!(
                "pool {} ({}) rewrites requests: it must be behind an openai route, whose bodies are read whole",
                pool.name,
                pool.provider.as_str()
            ),
        )));
    };
    let bytes = b.as_deref().unwrap_or_default();
    if pool.provider == Provider::OpenAi {
        let model = pool.model.as_deref().unwrap_or_default();
        return Ok(match crate::openai::with_model(b, model) {
            Some(b) => Prepared::Body(b),
            None => Prepared::AsIs,
        });
    }
    let embeddings = matches!(pool.provider, Provider::Gemini | Provider::Bedrock)
        && path.ends_with("/embeddings");
    // What is translated is a chat request (or, for Gemini and Bedrock, embeddings); other
    // operations have no counterpart there.
    if !path.ends_with("/chat/completions") && !embeddings {
        return Err(ProxyError::Unsupported(Unsupported::new(
            "",
            format!(
                "pool {} ({}) serves chat completions only here: {path} goes to an openai, azure or openai_compatible pool",
                pool.name,
                pool.provider.as_str()
            ),
        )));
    }
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ProxyError::Unsupported(Unsupported::new(
            "",
            format!("the request body is not JSON: {e}"),
        ))
    })?;
    let model = v
        .get("model")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_string();
    // The id the pool's servers know: the pool's own, else the catalog's for their
    // provider, else the client's. No `max_tokens` is the model's longest answer, as an
    // OpenAI model answers without one.
    let known = catalog.get(&model);
    let target = anthropic::Target {
        model: pool
            .model
            .as_deref()
            .or_else(|| known.and_then(|m| m.id_at(pool.provider)))
            .unwrap_or(&model),
        default_max_tokens: known
            .and_then(|m| m.max_output)
            .unwrap_or(DEFAULT_MAX_TOKENS),
    };
    if embeddings {
        let (body, path, embed) = if pool.provider == Provider::Bedrock {
            let e =
                bedrock::embeddings::request(&v, target.model).map_err(ProxyError::Unsupported)?;
            let path = bedrock::path(target.model, false);
            (json_bytes(&e.body), path, Embed::Bedrock(e))
        } else {
            let e =
                gemini::embeddings_request(&v, target.model).map_err(ProxyError::Unsupported)?;
            let path = gemini::embed_path(target.model);
            (json_bytes(&e.body), path, Embed::Gemini(e))
        };
        return Ok(Prepared::Translated(
            body,
            Cow::Owned(path),
            Arc::new(Translation {
                provider: pool.provider,
                model,
                include_usage: false,
                json_mode: false,
                embeddings: Some(Box::new(embed)),
            }),
        ));
    }
    if pool.provider == Provider::Gemini {
        let t = gemini::translate(&v).map_err(ProxyError::Unsupported)?;
        return Ok(Prepared::Translated(
            json_bytes(&t.body),
            Cow::Owned(gemini::path(target.model, t.stream)),
            Arc::new(Translation {
                provider: pool.provider,
                model,
                include_usage: t.include_usage,
                json_mode: false,
                embeddings: None,
            }),
        ));
    }
    let t = anthropic::translate(&v, &target).map_err(ProxyError::Unsupported)?;
    let (body, path) = match pool.provider {
        Provider::Bedrock => (
            bedrock::body(t.body),
            Cow::Owned(bedrock::path(target.model, t.stream)),
        ),
        _ => (t.body, Cow::Borrowed("/v1/messages")),
    };
    Ok(Prepared::Translated(
        json_bytes(&body),
        path,
        Arc::new(Translation {
            provider: pool.provider,
            model,
            include_usage: t.include_usage,
            json_mode: t.json_mode,
            embeddings: None,
        }),
    ))
}

/// `v` as the body sent: serialized straight into bytes (its `Display` goes through a
/// formatter, slower on the request path).
fn json_bytes(v: &serde_json::Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

/// An Azure OpenAI request's path: the deployment (the pool's `model`, else the model the
/// client named, by the catalog's id), the operation the client's path names after `/v1`
/// (`chat/completions`, `embeddings`, `completions`), and the pool's `api-version`; the
/// Responses API (`/v1/responses...`) goes to Azure's v1 API, `/openai/v1/responses...`.
fn azure_path(
    pool: &PoolConfig,
    path: &str,
    whole: Option<&Option<Bytes>>,
    catalog: &ModelCatalog,
) -> String {
    let asked = whole
        .and_then(|b| b.as_deref())
        .and_then(crate::openai::model);
    let deployment = pool
        .model
        .clone()
        .or_else(|| {
            let m = asked.as_deref()?;
            Some(
                catalog
                    .get(m)
                    .and_then(|i| i.id_at(Provider::Azure))
                    .unwrap_or(m)
                    .to_string(),
            )
        })
        .unwrap_or_default();
    let op = path
        .strip_prefix("/v1/")
        .or_else(|| path.strip_prefix('/'))
        .unwrap_or(path);
    // The Responses API lives in Azure's v1 API, where the body's model is the deployment.
    if op == "responses" || op.starts_with("responses/") {
        return format!("/openai/v1/{op}");
    }
    format!(
        "/openai/deployments/{}/{op}?api-version={}",
        flowgate_providers::sigv4::encode_component(&deployment),
        pool.api_version.as_deref().unwrap_or_default()
    )
}

/// The fields a request to `provider` carries besides its credential.
pub(crate) fn fields(provider: Provider) -> &'static [(HeaderName, &'static [u8])] {
    static ANTHROPIC: [(HeaderName, &[u8]); 2] = [
        (
            HeaderName::from_static("anthropic-version"),
            anthropic::VERSION.as_bytes(),
        ),
        (http::header::CONTENT_TYPE, b"application/json"),
    ];
    static JSON: [(HeaderName, &[u8]); 1] = [(http::header::CONTENT_TYPE, b"application/json")];
    match provider {
        Provider::OpenAi | Provider::Azure => &[],
        Provider::Anthropic => &ANTHROPIC,
        Provider::Bedrock | Provider::Gemini => &JSON,
    }
}

/// The client's fields a request to `provider` leaves out: its `Authorization` is a
/// credential for the API it spoke (OpenAI's), never to be handed to another provider (the
/// pool's own key goes in that provider's field); and its `Accept-Encoding`, since the
/// answer is read to be translated.
pub(crate) fn omitted(provider: Provider) -> &'static [&'static HeaderName] {
    match provider {
        Provider::OpenAi => &[],
        // Azure's key goes in `api-key`: the client's own key stays here.
        Provider::Azure => &[&http::header::AUTHORIZATION],
        Provider::Anthropic | Provider::Bedrock | Provider::Gemini => {
            &[&http::header::AUTHORIZATION, &http::header::ACCEPT_ENCODING]
        }
    }
}

/// Whether an answer of `t`'s provider with this content type is streamed.
pub(crate) fn is_stream(t: &Translation, content_type: Option<&[u8]>) -> bool {
    let ct = content_type.unwrap_or_default();
    match t.provider {
        Provider::Bedrock => ct.starts_with(bedrock::STREAM_CONTENT_TYPE.as_bytes()),
        _ => ct.starts_with(b"text/event-stream"),
    }
}

/// A whole answer of `t`'s provider as an OpenAI chat completion made at `created`; why
/// not, when it is not the provider's shape.
pub(crate) fn whole(t: &Translation, raw: &[u8], created: u64) -> Result<Bytes, String> {
    let c = match (t.embeddings.as_deref(), t.provider) {
        (Some(Embed::Gemini(e)), _) => gemini::embeddings_answer(raw, &t.model, e),
        (Some(Embed::Bedrock(e)), _) => bedrock::embeddings::answer(raw, &t.model, e),
        (None, Provider::Gemini) => gemini::completion(raw, &t.model, created),
        (None, _) => anthropic::completion(raw, &t.model, created, t.json_mode),
    };
    c.map(Bytes::from).map_err(|e| e.to_string())
}

/// `body` read whole; an error when it breaks or holds more than `limit` bytes (a whole
/// answer, to translate it).
pub(crate) async fn read_all<B>(body: &mut B, limit: usize) -> Result<BytesMut, String>
where
    B: Body<Data = Bytes, Error = flowgate_http::BoxError> + Unpin,
{
    let mut buf = BytesMut::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Ok(d) = frame.into_data() {
            if buf.len() + d.len() > limit {
                return Err(format!("the answer is larger than {limit} bytes"));
            }
            buf.extend_from_slice(&d);
        }
    }
    Ok(buf)
}

/// Reads `body` up to `limit` bytes, what it holds beyond left out (an error answer's, to
/// translate it).
pub(crate) async fn read_whole(mut body: ResponseBody, limit: usize) -> Bytes {
    let mut buf = BytesMut::new();
    while let Some(Ok(frame)) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
    {
        if let Ok(d) = frame.into_data() {
            let room = limit.saturating_sub(buf.len());
            buf.extend_from_slice(&d[..d.len().min(room)]);
            if room <= d.len() {
                break;
            }
        }
    }
    buf.freeze()
}

/// An error answer of a translated pool as the client gets it: its status and body,
/// `endpoint` named where the fault is the gateway's credential for it.
pub(crate) fn error(
    t: &Translation,
    status: u16,
    headers: &http::HeaderMap,
    body: &[u8],
    endpoint: &str,
) -> (u16, Bytes) {
    let (status, mut v) = match t.provider {
        Provider::Anthropic => anthropic::error(status, body),
        Provider::Bedrock => {
            let kind = headers
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok());
            bedrock::error(status, kind, body)
        }
        Provider::Gemini => gemini::error(status, body),
        Provider::OpenAi | Provider::Azure => (status, serde_json::Value::Null),
    };
    if matches!(status, 401 | 403) {
        name_endpoint(&mut v, endpoint);
    }
    (status, json_bytes(&v))
}

/// An OpenAI-shaped 401 or 403 of a pool whose key the gateway sends, its message naming
/// `endpoint` (the client's own key is not what was refused); any other body as it is.
pub(crate) fn refused_key(body: &[u8], endpoint: &str) -> Bytes {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(mut v)
            if v.pointer("/error/message")
                .is_some_and(serde_json::Value::is_string) =>
        {
            name_endpoint(&mut v, endpoint);
            json_bytes(&v)
        }
        _ => Bytes::copy_from_slice(body),
    }
}

fn name_endpoint(v: &mut serde_json::Value, endpoint: &str) {
    if let Some(m) = v.pointer_mut("/error/message")
        && let Some(text) = m.as_str()
    {
        *m = format!("{text} (the gateway's credential for endpoint {endpoint})").into();
    }
}
