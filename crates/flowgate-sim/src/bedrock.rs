//! AWS Bedrock's runtime API for Anthropic's models, as the simulator speaks it, after
//! AWS's API reference: `POST /model/{modelId}/invoke` and
//! `/invoke-with-response-stream`, every request's SigV4 signature checked (a bad one gets
//! AWS's 403 and error type), the body the Messages API's with Bedrock's
//! `anthropic_version` and no `model`, the streamed answer in event-stream frames whose
//! `chunk` events carry the Messages API's events base64-encoded (the last one with
//! Bedrock's invocation metrics), and errors as AWS sends them: `x-amzn-ErrorType` and
//! `{"message": ...}` (429 `ThrottlingException`, 503 `ServiceUnavailableException`).

use base64::Engine;
use bytes::Bytes;
use flowgate_clock::Clock;
use flowgate_providers::{bedrock, eventstream, sigv4};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::body::SimBody;
use crate::reply::json_response;
use crate::spec::EndpointSpec;

/// The model and whether the answer streams, for a Bedrock operation's path.
pub(crate) fn operation(path: &str) -> Option<(String, bool)> {
    let rest = path.strip_prefix("/model/")?;
    let (model, op) = rest.rsplit_once('/')?;
    let stream = match op {
        "invoke" => false,
        "invoke-with-response-stream" => true,
        _ => return None,
    };
    Some((decode(model), stream))
}

/// `%XX` escapes decoded (the model id as the path carries it).
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = s
            .get(i + 1..i + 3)
            .filter(|_| b[i] == b'%')
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An AWS error answer.
pub(crate) fn error(status: StatusCode, kind: &str, message: &str) -> Response<SimBody> {
    let mut r = json_response(status, &json!({"message": message}));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"
    )) {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    r
}

/// The 403 AWS answers a request whose signature does not check out with, if it does not.
pub(crate) fn unsigned(
    spec: &EndpointSpec,
    method: &str,
    uri: &http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Response<SimBody>> {
    let fields: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)))
        .collect();
    let req = sigv4::Signed {
        method,
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: &fields,
        body,
    };
    let lookup = |id: &str| (id == spec.aws.access_key).then(|| spec.aws.clone());
    let now = flowgate_clock::SystemClock.unix_millis() / 1000;
    let refused = sigv4::verify(
        &req,
        &lookup,
        bedrock::SERVICE,
        spec.aws_region.as_deref(),
        now,
    )
    .err()?;
    let (kind, message) = refused.aws();
    Some(error(StatusCode::FORBIDDEN, kind, &message))
}

/// What Bedrock refuses in a body before invoking `model`: its 400 answer.
pub(crate) fn refusal(model: &str, v: &Value) -> Option<Response<SimBody>> {
    use bedrock::embeddings::Family;
    let why = match bedrock::embeddings::family(model) {
        Some(Family::Titan) if !v.get("inputText").is_some_and(Value::is_string) => Some(
            "Malformed input request: #: required key [inputText] not found, please reformat your input and try again.",
        ),
        Some(Family::Cohere)
            if !v.get("texts").is_some_and(Value::is_array)
                || !v.get("input_type").is_some_and(Value::is_string) =>
        {
            Some(
                "Malformed input request: #: required keys [texts, input_type] not found, please reformat your input and try again.",
            )
        }
        Some(_) => None,
        None => messages_refusal(v),
    }?;
    Some(error(StatusCode::BAD_REQUEST, "ValidationException", why))
}

/// An embeddings answer: Titan's one vector with its token count, or Cohere's list.
pub(crate) fn embeddings(
    model: &str,
    v: &Value,
    rng: &mut rand::rngs::SmallRng,
) -> Response<SimBody> {
    use bedrock::embeddings::Family;
    use rand::Rng;
    let mut vector = |n: u64| -> Vec<f64> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
    let body = match bedrock::embeddings::family(model) {
        Some(Family::Titan) => {
            let text = v
                .get("inputText")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let dims = v
                .get("dimensions")
                .and_then(Value::as_u64)
                .unwrap_or(8)
                .min(1024);
            json!({"embedding": vector(dims), "inputTextTokenCount": text.len() / 4 + 1})
        }
        _ => {
            let texts = v
                .get("texts")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let list: Vec<Value> = texts.iter().map(|_| json!(vector(8))).collect();
            json!({"embeddings": list, "id": "sim", "response_type": "embeddings_floats", "texts": texts})
        }
    };
    json_response(StatusCode::OK, &body)
}

/// What Bedrock refuses in an Anthropic model's body.
fn messages_refusal(v: &Value) -> Option<&'static str> {
    let why = if v.get("anthropic_version").and_then(Value::as_str) != Some(bedrock::VERSION) {
        "Malformed input request: #: required key [anthropic_version] not found or not bedrock-2023-05-31, please reformat your input and try again."
    } else if v.get("model").is_some() || v.get("stream").is_some() {
        "Malformed input request: #: extraneous key [model or stream] is not permitted, please reformat your input and try again."
    } else if v.get("max_tokens").and_then(Value::as_u64).is_none() {
        "Malformed input request: #: required key [max_tokens] not found, please reformat your input and try again."
    } else if !v.get("messages").is_some_and(Value::is_array) {
        "Malformed input request: #: required key [messages] not found, please reformat your input and try again."
    } else {
        return None;
    };
    Some(why)
}

/// One Messages API event in an event-stream `chunk` frame; the last one carries
/// Bedrock's invocation metrics.
pub(crate) fn frame(kind: &str, data: &Value) -> Bytes {
    let mut data = data.clone();
    if kind == "message_stop"
        && let Some(o) = data.as_object_mut()
    {
        o.insert(
            "amazon-bedrock-invocationMetrics".into(),
            json!({"inputTokenCount": 0, "outputTokenCount": 0, "invocationLatency": 0, "firstByteLatency": 0}),
        );
    }
    let payload = json!({
        "bytes": base64::engine::general_purpose::STANDARD.encode(data.to_string()),
        "p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123",
    });
    Bytes::from(eventstream::encode(
        &[
            (":event-type", eventstream::Value::String("chunk".into())),
            (
                ":content-type",
                eventstream::Value::String("application/json".into()),
            ),
            (":message-type", eventstream::Value::String("event".into())),
        ],
        payload.to_string().as_bytes(),
    ))
}

/// A streamed answer's head as Bedrock sends it.
pub(crate) fn stream_head(mut r: Response<SimBody>) -> Response<SimBody> {
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(bedrock::STREAM_CONTENT_TYPE),
    );
    r.headers_mut().remove(header::CACHE_CONTROL);
    r
}
