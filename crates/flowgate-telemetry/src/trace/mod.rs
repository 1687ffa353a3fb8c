//! Request traces (OpenTelemetry, W3C Trace Context): which requests are traced, and what
//! a traced request carries to its record. The data plane does little: it reads the
//! client's `traceparent`, decides (a sampled parent is followed; otherwise one request in
//! `1/ratio`, drawn at random), and for a traced request notes when its stages began and
//! ended ([`Trace`]) and sends upstream a `traceparent` naming its attempt. The control
//! plane turns the record into spans with the OpenTelemetry HTTP and `gen_ai.*` semantic
//! conventions ([`spans`]) and exports them over OTLP/HTTP ([`export`]).

pub mod export;
pub mod otlp;
pub mod spans;

use std::time::{Duration, Instant};

use http::HeaderValue;

/// A trace's id (16 bytes) and a span's (8), as W3C Trace Context has them.
pub type TraceId = [u8; 16];
pub type SpanId = [u8; 8];

/// How requests are chosen for tracing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    /// The share of requests traced when the client did not decide (0 to 1).
    pub ratio: f64,
    /// Follow the client's `traceparent` sampled flag when it sends one.
    pub parent_based: bool,
}

/// A `traceparent` read: the trace, the caller's span, and whether the caller samples it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub sampled: bool,
}

fn hex_into(s: &[u8], out: &mut [u8]) -> Option<()> {
    if s.len() != out.len() * 2 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        let d = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        *o = d(s[2 * i])? << 4 | d(s[2 * i + 1])?;
    }
    Some(())
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(D[usize::from(b >> 4)]));
        s.push(char::from(D[usize::from(b & 15)]));
    }
    s
}

/// Reads a `traceparent` field (`00-TRACE-SPAN-FLAGS`); `None` when it is not one (a
/// zero trace or span id, an unknown version's shorter form, upper-case hex).
pub fn parse_traceparent(v: &HeaderValue) -> Option<Parent> {
    let b = v.as_bytes();
    // Version 00 is exactly 55 bytes; a later version may append fields after a dash.
    if b.len() < 55 || (b.len() > 55 && b[55] != b'-') {
        return None;
    }
    let version = &b[0..2];
    if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' || version == b"ff" {
        return None;
    }
    if version == b"00" && b.len() != 55 {
        return None;
    }
    let mut v = [0u8; 1];
    hex_into(version, &mut v)?;
    let mut trace_id = [0u8; 16];
    hex_into(&b[3..35], &mut trace_id)?;
    let mut span_id = [0u8; 8];
    hex_into(&b[36..52], &mut span_id)?;
    let mut flags = [0u8; 1];
    hex_into(&b[53..55], &mut flags)?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some(Parent {
        trace_id,
        span_id,
        sampled: flags[0] & 1 == 1,
    })
}

/// The `traceparent` naming span `span_id` of trace `trace_id`.
pub fn traceparent(trace_id: &TraceId, span_id: &SpanId, sampled: bool) -> HeaderValue {
    let s = format!(
        "00-{}-{}-{}",
        hex(trace_id),
        hex(span_id),
        if sampled { "01" } else { "00" }
    );
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A random span id (never zero).
pub fn span_id() -> SpanId {
    loop {
        let id = rand::random::<[u8; 8]>();
        if id != [0; 8] {
            return id;
        }
    }
}

impl Sampler {
    /// Whether a request with `parent` (its client's `traceparent`, if any), come at
    /// `now`, is traced: its trace, then.
    pub fn decide(&self, parent: Option<&Parent>, now: Instant) -> Option<Trace> {
        let sampled = match parent {
            Some(p) if self.parent_based => p.sampled,
            _ => self.ratio > 0.0 && rand::random::<f64>() < self.ratio,
        };
        if !sampled {
            return None;
        }
        let trace_id = match parent {
            Some(p) => p.trace_id,
            None => loop {
                let id = rand::random::<[u8; 16]>();
                if id != [0; 16] {
                    break id;
                }
            },
        };
        Some(Trace {
            trace_id,
            parent: parent.map(|p| p.span_id),
            span_id: span_id(),
            start: now,
            stages: Vec::new(),
        })
    }
}

/// What a stage of a traced request was.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// The wait for the concurrency permits.
    Queue,
    /// The cache lookup, and what it found (`hit-l1`, `miss`, ...).
    Cache(&'static str),
    /// One attempt upstream: its endpoint, its answer's status (0: none), its error.
    Attempt {
        endpoint: String,
        number: u32,
        status: u16,
        error: Option<String>,
    },
}

/// A stage's span: its id, what it was, and when it began and ended since the request
/// came.
#[derive(Debug, Clone, PartialEq)]
pub struct StageSpan {
    pub span_id: SpanId,
    pub stage: Stage,
    pub start: Duration,
    pub end: Duration,
}

/// A traced request: its trace, its caller's span, its own span, and its stages.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub trace_id: TraceId,
    pub parent: Option<SpanId>,
    pub span_id: SpanId,
    /// When the request came (its stages are timed from here).
    pub start: Instant,
    pub stages: Vec<StageSpan>,
}

impl Trace {
    /// Notes a stage that began at `began` and ended at `now`; its span id.
    pub fn stage(&mut self, stage: Stage, began: Instant, now: Instant) -> SpanId {
        self.stage_with(span_id(), stage, began, now)
    }

    /// The same with its span id chosen before (an attempt's, sent upstream).
    pub fn stage_with(&mut self, id: SpanId, stage: Stage, began: Instant, now: Instant) -> SpanId {
        self.stages.push(StageSpan {
            span_id: id,
            stage,
            start: began.saturating_duration_since(self.start),
            end: now.saturating_duration_since(self.start),
        });
        id
    }
}

#[cfg(test)]
mod tests;
