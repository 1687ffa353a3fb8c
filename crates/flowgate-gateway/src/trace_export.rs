//! The trace exporter at start (`[tracing]`), and its counts as metrics:
//! `flowgate_trace_spans_total{result="exported|failed|dropped"}` and the batches sent.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use flowgate_config::TracingConfig;
use flowgate_http::fetch::Fetcher;
use flowgate_telemetry::trace::export::{ExportSettings, Exporter};
use prometheus_client::encoding::DescriptorEncoder;

use crate::cache_metrics::{counter, one};

/// Starts the exporter `config` describes, its spans from `host`.
pub(crate) fn start(config: &TracingConfig, fetcher: Arc<Fetcher>, host: &str) -> Exporter {
    Exporter::start(
        ExportSettings {
            url: config.endpoint.clone(),
            headers: config.headers.clone(),
            timeout: config.timeout,
            batch: config.batch,
            interval: config.interval,
            queue: config.queue,
            service: config.service_name.clone(),
            host: host.to_string(),
        },
        fetcher,
    )
}

/// The exporter's counts, encoded at each scrape.
#[derive(Debug)]
pub(crate) struct Collector(pub(crate) Exporter);

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut e;
        let s = self.0.stats();
        let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        counter(
            e,
            "flowgate_trace_spans",
            "Spans of traced requests, by fate: exported to the collector, failed (refused or unreachable after retries), dropped (the queue was full)",
            vec![
                (vec![("result", "exported")], n(&s.exported)),
                (vec![("result", "failed")], n(&s.failed)),
                (vec![("result", "dropped")], n(&s.dropped)),
            ],
        )?;
        counter(
            e,
            "flowgate_trace_batches",
            "Export requests sent to the trace collector",
            one(n(&s.batches)),
        )
    }
}
