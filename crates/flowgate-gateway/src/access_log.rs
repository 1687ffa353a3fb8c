//! The access log: one JSON object per line per request, written when its answer is done
//! (like nginx's and Envoy's), from the telemetry consumer, never from the request path.
//! Appended to a file (reopened on reload, so that a rotated file is let go) or written to
//! standard output. A line holds what the record knows: when, who (peer, key, team), what
//! (method, path, route, model), what answered (pool, endpoint, provider, cache, attempts,
//! status), how fast (to the head, to the last byte) and what it cost (tokens, dollars,
//! estimated or not, saved by the cache).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::sync::Mutex;

use flowgate_config::AccessLog as Destination;
use flowgate_telemetry::{RequestRecord, Sink};
use serde::Serialize;

pub(crate) struct AccessLog {
    out: Mutex<Out>,
}

enum Out {
    Stdout(BufWriter<std::io::Stdout>),
    File(BufWriter<File>),
}

impl AccessLog {
    pub(crate) fn open(to: &Destination) -> std::io::Result<AccessLog> {
        let out = match to {
            Destination::Stdout => Out::Stdout(BufWriter::new(std::io::stdout())),
            Destination::File(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| {
                        std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
                    })?;
                Out::File(BufWriter::new(f))
            }
        };
        Ok(AccessLog {
            out: Mutex::new(out),
        })
    }
}

#[derive(Serialize)]
struct Line<'a> {
    /// RFC 3339, UTC, milliseconds.
    time: String,
    request_id: &'a str,
    peer: Option<String>,
    method: &'a str,
    path: &'a str,
    route: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    team: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    /// When the gateway chose the model: the client's, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    requested_model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pool: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache: Option<&'static str>,
    attempts: u32,
    /// To the response head, and to the answer's last byte, in milliseconds.
    duration_ms: f64,
    total_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tokens: Option<Tokens>,
    /// Dollars as an exact decimal string; `null` for a model without a price.
    #[serde(skip_serializing_if = "Option::is_none")]
    cost_usd: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    saved_usd: Option<String>,
}

#[derive(Serialize)]
struct Tokens {
    prompt: u64,
    completion: u64,
    cache_read: u64,
    cache_write: u64,
    estimated: bool,
}

fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl AccessLog {
    fn line(rec: &RequestRecord) -> Line<'_> {
        let spend = rec.spend.as_ref();
        let usd = spend.map(|s| s.usd.map(|d| d.to_string()));
        let cached = spend.is_some_and(|s| s.cached);
        Line {
            time: flowgate_clock::rfc3339_millis(rec.at_ms),
            request_id: rec.request_id.to_str().unwrap_or(""),
            peer: rec.peer.map(|p| p.to_string()),
            method: rec.method.as_str(),
            path: rec.uri.path(),
            route: &rec.route,
            status: rec.status,
            error: rec.error.map(|e| e.as_str()),
            key: rec.key.as_deref(),
            team: rec.team.as_deref(),
            model: rec.model.as_deref(),
            requested_model: rec.requested_model.as_deref(),
            model_reason: rec.model_reason.as_deref(),
            pool: rec.pool.as_deref(),
            endpoint: rec.endpoint.as_deref(),
            provider: rec.provider,
            cache: rec.cache,
            attempts: rec.attempts,
            duration_ms: ms(rec.duration),
            total_ms: ms(rec.total),
            upstream_ms: rec.upstream_duration.map(ms),
            tokens: spend.map(|s| Tokens {
                prompt: s.usage.prompt_tokens,
                completion: s.usage.completion_tokens,
                cache_read: s.usage.cache_read_tokens,
                cache_write: s.usage.cache_write_tokens,
                estimated: s.estimated,
            }),
            // What a cache hit would have cost was saved, not spent.
            cost_usd: if cached {
                Some(Some("0".into()))
            } else {
                usd.clone()
            },
            saved_usd: if cached { usd.flatten() } else { None },
        }
    }
}

impl Sink for AccessLog {
    fn take(&self, rec: &RequestRecord) {
        let Ok(mut out) = self.out.lock() else {
            return;
        };
        let w: &mut dyn Write = match &mut *out {
            Out::Stdout(w) => w,
            Out::File(w) => w,
        };
        if serde_json::to_writer(&mut *w, &Self::line(rec)).is_ok() {
            let _ = w.write_all(b"\n");
        }
    }

    fn flush(&self) {
        if let Ok(mut out) = self.out.lock() {
            let _ = match &mut *out {
                Out::Stdout(w) => w.flush(),
                Out::File(w) => w.flush(),
            };
        }
    }
}
