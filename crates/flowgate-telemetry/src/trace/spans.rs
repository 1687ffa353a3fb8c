//! A traced request's record as spans: the server span of the request (HTTP semantic
//! conventions, and `gen_ai.*` for an LLM answer), and a child for each stage: the
//! concurrency queue, the cache lookup, each upstream attempt (a client span named as the
//! GenAI conventions name an inference: `chat MODEL`, with the model, the provider, the
//! endpoint and, on the attempt that answered, the tokens).

use super::{SpanId, Stage, Trace, TraceId};
use crate::RequestRecord;

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
}

/// OpenTelemetry's span kinds (the ones used).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

/// A finished span.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    pub name: String,
    pub kind: Kind,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: Vec<(&'static str, Value)>,
    /// Set for a failed span: what failed.
    pub error: Option<String>,
}

fn s(v: impl Into<String>) -> Value {
    Value::Str(v.into())
}

fn i(v: u64) -> Value {
    Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
}

/// `rec`'s spans (its trace's).
pub fn of(rec: &RequestRecord, trace: &Trace) -> Vec<Span> {
    let start_ns = rec.at_ms.saturating_mul(1_000_000);
    let at = |d: std::time::Duration| start_ns.saturating_add(d.as_nanos() as u64);
    let model = rec.model.as_deref();
    let mut root = Vec::with_capacity(16);
    root.push(("http.request.method", s(rec.method.as_str())));
    root.push(("url.path", s(rec.uri.path())));
    root.push(("http.route", s(&*rec.route)));
    root.push(("http.response.status_code", i(u64::from(rec.status))));
    if let Some(p) = rec.peer {
        root.push(("client.address", s(p.to_string())));
    }
    if let Ok(id) = rec.request_id.to_str() {
        root.push(("flowgate.request_id", s(id)));
    }
    if let Some(c) = rec.cache {
        root.push(("flowgate.cache", s(c)));
    }
    root.push(("flowgate.attempts", i(u64::from(rec.attempts))));
    if let Some(k) = &rec.key {
        root.push(("flowgate.key", s(&**k)));
    }
    let mut gen_ai = Vec::new();
    if let Some(m) = model {
        gen_ai.push(("gen_ai.operation.name", s("chat")));
        gen_ai.push((
            "gen_ai.request.model",
            s(rec.requested_model.as_deref().unwrap_or(m)),
        ));
        gen_ai.push(("gen_ai.response.model", s(m)));
        if let Some(p) = rec.provider {
            gen_ai.push(("gen_ai.provider.name", s(p)));
        }
    }
    let mut usage = Vec::new();
    if let Some(sp) = &rec.spend {
        usage.push(("gen_ai.usage.input_tokens", i(sp.usage.prompt_tokens)));
        usage.push(("gen_ai.usage.output_tokens", i(sp.usage.completion_tokens)));
        if let Some(usd) = sp.usd {
            let key = if sp.cached {
                "flowgate.saved_usd"
            } else {
                "flowgate.cost_usd"
            };
            usage.push((key, s(usd.to_string())));
        }
        if sp.estimated {
            usage.push(("flowgate.usage_estimated", s("true")));
        }
    }
    let failed = rec.status >= 500 || rec.error.is_some();
    let mut out = Vec::with_capacity(1 + trace.stages.len());
    let mut attrs = root;
    attrs.extend(gen_ai.iter().cloned());
    attrs.extend(usage.iter().cloned());
    out.push(Span {
        trace_id: trace.trace_id,
        span_id: trace.span_id,
        parent: trace.parent,
        name: format!("{} {}", rec.method, rec.route),
        kind: Kind::Server,
        start_ns,
        end_ns: at(rec.total),
        attributes: attrs,
        error: failed.then(|| {
            rec.error
                .map_or_else(|| rec.status.to_string(), |e| e.as_str().to_string())
        }),
    });
    let last_attempt = trace
        .stages
        .iter()
        .rposition(|st| matches!(st.stage, Stage::Attempt { .. }));
    for (n, st) in trace.stages.iter().enumerate() {
        let (name, kind, mut attrs, error) = match &st.stage {
            Stage::Queue => (
                "admission queue".to_string(),
                Kind::Internal,
                Vec::new(),
                None,
            ),
            Stage::Cache(outcome) => (
                "cache lookup".to_string(),
                Kind::Internal,
                vec![("flowgate.cache", s(*outcome))],
                None,
            ),
            Stage::Attempt {
                endpoint,
                number,
                status,
                error,
            } => {
                let mut a = gen_ai.clone();
                a.push(("server.address", s(endpoint.as_str())));
                a.push(("flowgate.attempt", i(u64::from(*number))));
                if *status > 0 {
                    a.push(("http.response.status_code", i(u64::from(*status))));
                }
                if let Some(e) = error {
                    a.push(("error.type", s(e.as_str())));
                }
                if Some(n) == last_attempt && error.is_none() {
                    a.extend(
                        usage
                            .iter()
                            .filter(|(k, _)| k.starts_with("gen_ai."))
                            .cloned(),
                    );
                }
                let name = match model {
                    Some(m) => format!("chat {m}"),
                    None => format!("{} {endpoint}", rec.method),
                };
                let failed = error
                    .clone()
                    .or((*status >= 500).then(|| status.to_string()));
                (name, Kind::Client, a, failed)
            }
        };
        attrs.shrink_to_fit();
        out.push(Span {
            trace_id: trace.trace_id,
            span_id: st.span_id,
            parent: Some(trace.span_id),
            name,
            kind,
            start_ns: at(st.start),
            end_ns: at(st.end),
            attributes: attrs,
            error,
        });
    }
    out
}
