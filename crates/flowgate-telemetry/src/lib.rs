//! flowgate's telemetry: typed Prometheus families, sliding-window latency percentiles, and
//! the record pipeline that feeds both.
//!
//! The data plane does two cheap things per request: it moves atomic gauges (in-flight
//! requests, open upstream connections) and it pushes one [`RequestRecord`] into a bounded
//! channel ([`Telemetry::record`], never blocks; a full channel drops the record and counts
//! it; pushing never wakes a thread). A control-plane task ([`Telemetry::spawn_consumer`])
//! drains the channel on a short tick, and every reader drains it first, updating the
//! Prometheus families and the [`windows::LatencyWindows`] behind
//! `GET /api/v1/performance/metrics`, then hands each record to the [`Sink`]s others
//! registered (the access log, the spend ledger). This keeps locks, label lookups,
//! histogram arithmetic and files off the request path.

pub mod breakdown;
pub mod history;
pub mod memory;
mod metrics;
mod pipeline;
pub mod process;
mod record;
pub mod trace;
pub mod windows;

pub use metrics::{EndpointLabels, Metrics, ReasonLabels, ResultLabels, TlsErrorLabels};
pub use pipeline::{Sink, Telemetry};
pub use record::{ErrorKind, RequestRecord, Spend};
pub use windows::{LatencyWindows, PerformanceReport, WindowStats};
