//! Where request records go after the metrics: the spend ledger always, the metrics
//! history when it is on, the access log when `[server] access_log` names one, the trace
//! exporter with `[tracing]` on. Set at
//! start and again on every reload (the log's file may change; the ledger and the history
//! are fixed at start).

use std::sync::Arc;

use flowgate_config::Config;
use flowgate_telemetry::Sink;

use crate::spend::Spending;

pub(crate) fn of(
    config: &Config,
    spending: &Spending,
    history: Option<&flowgate_telemetry::history::History>,
    tracer: Option<&flowgate_telemetry::trace::export::Exporter>,
) -> Vec<Arc<dyn Sink>> {
    let mut sinks = vec![spending.sink()];
    if let Some(t) = tracer {
        sinks.push(Arc::new(flowgate_telemetry::trace::export::TraceSink(
            t.clone(),
        )));
    }
    if let Some(h) = history {
        sinks.push(Arc::new(h.sink()));
    }
    if let Some(to) = &config.server.access_log {
        match crate::access_log::AccessLog::open(to) {
            Ok(log) => sinks.push(Arc::new(log)),
            Err(e) => tracing::error!(error = %e, "no access log"),
        }
    }
    sinks
}
