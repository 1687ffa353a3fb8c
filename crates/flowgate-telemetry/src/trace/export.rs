//! Spans out over OTLP/HTTP: traced records become spans on the control plane (a
//! [`TraceSink`] of the telemetry pipeline) and wait in a bounded queue; a task sends them
//! in batches (`batch` spans, or what came within `interval`) as JSON to the collector,
//! trying a batch again twice when the collector cannot be reached or answers 429 or 5xx.
//! A full queue drops spans, counted: tracing never holds up anything else.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use flowgate_http::fetch::{Fetcher, Request};
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, Uri};
use tokio::sync::mpsc;

use super::spans::{self, Span};
use crate::{RequestRecord, Sink};

/// Where and how spans are sent.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    /// The collector's traces endpoint (`…/v1/traces`).
    pub url: Uri,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub timeout: Duration,
    /// Spans per request to the collector.
    pub batch: usize,
    /// The longest a span waits for its batch.
    pub interval: Duration,
    /// Spans waiting at most; more are dropped.
    pub queue: usize,
    /// `service.name`.
    pub service: String,
    /// `host.name`.
    pub host: String,
}

/// Spans by fate.
#[derive(Debug, Default)]
pub struct ExportStats {
    pub exported: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
    pub batches: AtomicU64,
}

/// The sending end (see the module's documentation).
#[derive(Debug, Clone)]
pub struct Exporter {
    tx: mpsc::Sender<Span>,
    stats: Arc<ExportStats>,
}

impl Exporter {
    /// Starts the exporting task (within a Tokio runtime).
    pub fn start(settings: ExportSettings, fetcher: Arc<Fetcher>) -> Exporter {
        let (tx, rx) = mpsc::channel(settings.queue.max(1));
        let stats = Arc::new(ExportStats::default());
        tokio::spawn(run(rx, settings, fetcher, stats.clone()));
        Exporter { tx, stats }
    }

    /// Queues `spans`; those that do not fit are dropped and counted.
    pub fn push(&self, spans: Vec<Span>) {
        for s in spans {
            if self.tx.try_send(s).is_err() {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn stats(&self) -> &Arc<ExportStats> {
        &self.stats
    }
}

async fn run(
    mut rx: mpsc::Receiver<Span>,
    settings: ExportSettings,
    fetcher: Arc<Fetcher>,
    stats: Arc<ExportStats>,
) {
    let mut batch = Vec::with_capacity(settings.batch);
    loop {
        // The first span, then what comes within the interval, up to a batch.
        match rx.recv().await {
            Some(s) => batch.push(s),
            None => return,
        }
        let window = tokio::time::sleep(settings.interval);
        tokio::pin!(window);
        while batch.len() < settings.batch {
            tokio::select! {
                s = rx.recv() => match s {
                    Some(s) => batch.push(s),
                    None => break,
                },
                () = &mut window => break,
            }
        }
        let n = batch.len() as u64;
        if send(&settings, &fetcher, &batch).await {
            stats.exported.fetch_add(n, Ordering::Relaxed);
        } else {
            stats.failed.fetch_add(n, Ordering::Relaxed);
        }
        stats.batches.fetch_add(1, Ordering::Relaxed);
        batch.clear();
    }
}

/// Sends one batch, trying twice more after a failure worth another try; whether the
/// collector took it.
async fn send(settings: &ExportSettings, fetcher: &Fetcher, batch: &[Span]) -> bool {
    let body = Bytes::from(super::otlp::request(
        batch,
        &settings.service,
        &settings.host,
    ));
    let mut headers = vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
    headers.extend(settings.headers.iter().cloned());
    let req = Request {
        method: Method::POST,
        url: &settings.url,
        headers: &headers,
        body,
        timeout: settings.timeout,
    };
    for attempt in 0..3u32 {
        let retry = match fetcher.send(&req).await {
            Ok(a) if a.status.is_success() => return true,
            Ok(a) => {
                let s = a.status.as_u16();
                tracing::warn!(url = %settings.url, status = s, "the trace collector refused spans");
                s == 429 || s >= 500
            }
            Err(e) => {
                tracing::warn!(url = %settings.url, error = %e, "spans could not be sent");
                true
            }
        };
        if !retry || attempt == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200) * 2u32.pow(attempt)).await;
    }
    false
}

/// The pipeline's sink for traced records.
#[derive(Debug)]
pub struct TraceSink(pub Exporter);

impl Sink for TraceSink {
    fn take(&self, rec: &RequestRecord) {
        if let Some(t) = &rec.trace {
            self.0.push(spans::of(rec, t));
        }
    }
}
