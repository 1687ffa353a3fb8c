//! One upstream endpoint of a pool: its name and credential as requests carry them, and its
//! connection pool ([`flowgate_http::pool`]).

use std::sync::Arc;

use flowgate_clock::SharedClock;
use flowgate_config::{EndpointConfig, PoolConfig};
use flowgate_http::pool::{ConnectError, Lease, Pool, PoolMetrics, PoolSettings};
use flowgate_telemetry::{EndpointLabels, Metrics};
use http::{HeaderName, HeaderValue};

/// An upstream server with its pooled connections.
#[derive(Debug)]
pub struct Endpoint {
    pub name: Arc<str>,
    pub cfg: EndpointConfig,
    /// `name` as the `x-flowgate-upstream` response header.
    pub name_header: HeaderValue,
    /// The `Host` header requests to this endpoint carry.
    pub host_header: HeaderValue,
    /// The credential requests to this endpoint carry (`api_key_env`), marked sensitive.
    pub credential: Option<(HeaderName, HeaderValue)>,
    pool: Arc<Pool>,
}

impl Endpoint {
    /// A new endpoint of `pool` with `shards` idle stacks (one per data-plane worker).
    pub fn new(
        pool: &PoolConfig,
        cfg: EndpointConfig,
        shards: usize,
        clock: SharedClock,
        metrics: &Metrics,
    ) -> Arc<Self> {
        let labels = EndpointLabels {
            pool: pool.name.clone(),
            endpoint: cfg.name.clone(),
        };
        let connections = Pool::new(
            PoolSettings {
                authority: cfg.authority.clone(),
                connect_timeout: pool.connect_timeout,
                idle_timeout: pool.idle_timeout,
                max_idle: pool.max_idle as usize,
                max_connections: pool.max_connections as usize,
            },
            PoolMetrics {
                open: metrics.upstream_connections.get_or_create(&labels).clone(),
                connects: metrics.upstream_connects.get_or_create(&labels).clone(),
                connect_errors: metrics
                    .upstream_connect_errors
                    .get_or_create(&labels)
                    .clone(),
            },
            shards,
            clock,
        );
        Arc::new(Endpoint {
            name: Arc::from(cfg.name.as_str()),
            name_header: header_value(&cfg.name),
            host_header: header_value(&cfg.authority),
            credential: cfg.api_key.as_ref().and_then(credential),
            cfg,
            pool: connections,
        })
    }

    /// A connection ready to take a request (see [`Pool::checkout`]).
    pub async fn checkout(&self) -> Result<Lease, ConnectError> {
        self.pool.checkout().await
    }

    /// Requests in flight on this endpoint.
    pub fn active(&self) -> usize {
        self.pool.active()
    }

    /// Idle pooled connections.
    pub fn idle_count(&self) -> usize {
        self.pool.idle_count()
    }
}

/// `Bearer SECRET` in `Authorization`, the secret as is in another header.
fn credential(k: &flowgate_config::UpstreamKey) -> Option<(HeaderName, HeaderValue)> {
    let value = if k.header == http::header::AUTHORIZATION {
        HeaderValue::from_str(&format!("Bearer {}", k.secret.expose()))
    } else {
        HeaderValue::from_str(k.secret.expose())
    };
    // Validation checked the secret can be a header value.
    let mut value = value.ok()?;
    value.set_sensitive(true);
    Some((k.header.clone(), value))
}

/// `s` as a header value; validation only lets header-safe names and authorities through.
fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}
