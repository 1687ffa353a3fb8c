//! Spans as OTLP/HTTP's JSON encoding (`ExportTraceServiceRequest`, the protobuf message
//! in proto3's JSON mapping with OTLP's exceptions: trace and span ids in hex, enums as
//! integers). Content type `application/json`, as every OTLP/HTTP receiver takes it.

use serde_json::{Value as Json, json};

use super::hex;
use super::spans::{Span, Value};

fn value(v: &Value) -> Json {
    match v {
        Value::Str(s) => json!({ "stringValue": s }),
        // int64 as a string, as proto3's JSON mapping writes it.
        Value::Int(i) => json!({ "intValue": i.to_string() }),
        Value::Float(f) => json!({ "doubleValue": f }),
    }
}

fn attributes(list: &[(&str, Value)]) -> Vec<Json> {
    list.iter()
        .map(|(k, v)| json!({ "key": k, "value": value(v) }))
        .collect()
}

fn span(s: &Span) -> Json {
    let mut j = json!({
        "traceId": hex(&s.trace_id),
        "spanId": hex(&s.span_id),
        "name": s.name,
        "kind": s.kind as i32,
        "startTimeUnixNano": s.start_ns.to_string(),
        "endTimeUnixNano": s.end_ns.max(s.start_ns).to_string(),
        "attributes": attributes(&s.attributes),
        "status": match &s.error {
            // STATUS_CODE_ERROR, with what failed.
            Some(e) => json!({ "code": 2, "message": e }),
            None => json!({}),
        },
    });
    if let Some(p) = &s.parent {
        j["parentSpanId"] = json!(hex(p));
    }
    j
}

/// The export request for `spans`, from service `service` (its resource attributes:
/// `service.name`, `service.version`, `host.name`).
pub fn request(spans: &[Span], service: &str, host: &str) -> Vec<u8> {
    let body = json!({
        "resourceSpans": [{
            "resource": { "attributes": attributes(&[
                ("service.name", Value::Str(service.to_string())),
                ("service.version", Value::Str(env!("CARGO_PKG_VERSION").to_string())),
                ("host.name", Value::Str(host.to_string())),
            ]) },
            "scopeSpans": [{
                "scope": { "name": "flowgate", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans.iter().map(span).collect::<Vec<_>>(),
            }],
        }],
    });
    serde_json::to_vec(&body).unwrap_or_default()
}
