//! Every Prometheus family flowgate's gateway exports, built once at start and passed in
//! (no global registry). Names follow `flowgate_<area>_<thing>_<unit>`; labels are bounded
//! by configuration (route, pool, endpoint names; status codes).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Labels of a finished request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub pool: String,
    pub status: String,
}

/// Labels of a route.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

/// Labels of a stage of a route's requests (`crate::breakdown::Step`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub route: String,
    pub stage: String,
}

/// Labels of an upstream endpoint.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub pool: String,
    pub endpoint: String,
}

/// Labels of a failed TLS handshake with an upstream endpoint.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TlsErrorLabels {
    pub pool: String,
    pub endpoint: String,
    /// `unknown_issuer`, `expired`, `name_mismatch`, `alert`, ... (`flowgate_http::tls`).
    pub reason: String,
}

/// Labels of a gateway-side failure.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub route: String,
    pub kind: String,
}

/// Labels of a data-plane worker.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabels {
    pub worker: String,
}

/// Labels of a config reload.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

/// Labels of a failure counted by reason alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

fn latency_histogram() -> Histogram {
    // 100 µs .. ~3.3 min: gateway overhead and slow LLM answers both land in a real bucket.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0001, 2.0, 22,
    ))
}

/// The gateway's metric families.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub request_stages: Family<StageLabels, Counter<f64, AtomicU64>>,
    pub upstream_duration: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    pub gateway_errors: Family<ErrorLabels, Counter>,
    pub in_flight: Gauge,
    pub upstream_connections: Family<EndpointLabels, Gauge>,
    pub upstream_connects: Family<EndpointLabels, Counter>,
    pub upstream_connect_errors: Family<EndpointLabels, Counter>,
    pub upstream_tls_errors: Family<TlsErrorLabels, Counter>,
    pub config_reloads: Family<ResultLabels, Counter>,
    pub worker_connections: Family<WorkerLabels, Counter>,
    pub refused_connections: Counter,
    pub client_tls_errors: Family<ReasonLabels, Counter>,
    pub certificate_reloads: Family<ResultLabels, Counter>,
    pub certificate_expiry: Gauge,
    pub dropped_records: Counter,
}

impl Metrics {
    /// Builds the families and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Metrics {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
            request_stages: Family::default(),
            upstream_duration: Family::new_with_constructor(latency_histogram),
            gateway_errors: Family::default(),
            in_flight: Gauge::default(),
            upstream_connections: Family::default(),
            upstream_connects: Family::default(),
            upstream_connect_errors: Family::default(),
            upstream_tls_errors: Family::default(),
            config_reloads: Family::default(),
            worker_connections: Family::default(),
            refused_connections: Counter::default(),
            client_tls_errors: Family::default(),
            certificate_reloads: Family::default(),
            certificate_expiry: Gauge::default(),
            dropped_records: Counter::default(),
        };
        let r = registry.sub_registry_with_prefix("flowgate");
        r.register(
            "requests",
            "Requests answered, by route, pool and status",
            m.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Time from request head received to response head sent",
            m.request_duration.clone(),
        );
        r.register(
            "request_stage_seconds",
            "Time requests spent in each stage of their path (gateway, read, admission, cache, queue, retries, connect, first_byte, generation), by route",
            m.request_stages.clone(),
        );
        r.register(
            "upstream_duration_seconds",
            "Time from upstream request sent to upstream response head received",
            m.upstream_duration.clone(),
        );
        r.register(
            "gateway_errors",
            "Requests the gateway failed itself, by kind",
            m.gateway_errors.clone(),
        );
        r.register(
            "requests_in_flight",
            "Requests being served now",
            m.in_flight.clone(),
        );
        r.register(
            "upstream_connections",
            "Open upstream connections (active and idle)",
            m.upstream_connections.clone(),
        );
        r.register(
            "upstream_connects",
            "Upstream connections opened",
            m.upstream_connects.clone(),
        );
        r.register(
            "upstream_connect_errors",
            "Upstream connection attempts that failed",
            m.upstream_connect_errors.clone(),
        );
        r.register(
            "upstream_tls_errors",
            "TLS handshakes with upstreams that failed, by reason",
            m.upstream_tls_errors.clone(),
        );
        r.register(
            "config_reloads",
            "Configuration reloads, by result",
            m.config_reloads.clone(),
        );
        r.register(
            "refused_connections",
            "Client connections closed as they were accepted: over max_connections or max_connections_per_address",
            m.refused_connections.clone(),
        );
        r.register(
            "client_tls_errors",
            "Client TLS handshakes on the data-plane listener that failed, by reason",
            m.client_tls_errors.clone(),
        );
        r.register(
            "listener_certificate_reloads",
            "Reloads of the listener's certificate ([server.tls]), by result",
            m.certificate_reloads.clone(),
        );
        r.register(
            "listener_certificate_expiry_timestamp_seconds",
            "When the listener's served certificate expires (Unix time)",
            m.certificate_expiry.clone(),
        );
        r.register(
            "worker_connections",
            "Client connections accepted, by data-plane worker",
            m.worker_connections.clone(),
        );
        r.register(
            "telemetry_dropped_records",
            "Request records dropped because the telemetry queue was full",
            m.dropped_records.clone(),
        );
        m
    }

    /// The accepted-connections counter of data-plane worker `worker`.
    pub fn worker_connections(&self, worker: usize) -> Counter {
        self.worker_connections
            .get_or_create(&WorkerLabels {
                worker: worker.to_string(),
            })
            .clone()
    }

    /// Counts a reload of the listener's certificate with `result` (`ok` or `error`).
    pub fn count_certificate_reload(&self, result: &str) {
        self.certificate_reloads
            .get_or_create(&ResultLabels {
                result: result.to_string(),
            })
            .inc();
    }

    /// Counts a config reload with `result` (`ok` or `error`).
    pub fn count_reload(&self, result: &str) {
        self.config_reloads
            .get_or_create(&ResultLabels {
                result: result.to_string(),
            })
            .inc();
    }
}
