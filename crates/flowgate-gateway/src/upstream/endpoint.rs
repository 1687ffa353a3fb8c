//! One upstream endpoint of a pool: its name and credential as requests carry them, and its
//! connection pool ([`flowgate_http::pool`]).

use std::sync::Arc;

use flowgate_clock::SharedClock;
use flowgate_config::{EndpointConfig, PoolConfig, UpstreamProtocol};
use flowgate_http::pool::{ConnectError, Lease, Pool, PoolMetrics, PoolSettings, Protocol};
use flowgate_http::proxy::Proxy;
use flowgate_http::tls::Connector;
use flowgate_telemetry::{EndpointLabels, Metrics, TlsErrorLabels};
use http::{HeaderName, HeaderValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rustls::ClientConfig;

/// An upstream server with its pooled connections.
#[derive(Debug)]
pub struct Endpoint {
    pub name: Arc<str>,
    /// The pool it belongs to.
    pool_name: Arc<str>,
    pub cfg: EndpointConfig,
    /// `name` as the `x-flowgate-upstream` response header.
    pub name_header: HeaderValue,
    /// The `Host` header requests to this endpoint carry.
    pub host_header: HeaderValue,
    /// The credential requests to this endpoint carry (`api_key_env`), marked sensitive.
    pub credential: Option<(HeaderName, HeaderValue)>,
    pool: Arc<Pool>,
    /// Failed TLS handshakes, by reason.
    tls_errors: Family<TlsErrorLabels, Counter>,
}

impl Endpoint {
    /// A new endpoint of `pool` with `shards` idle stacks (one per data-plane worker);
    /// `tls`: the pool's client configuration, for an `https://` endpoint.
    pub fn new(
        pool: &PoolConfig,
        cfg: EndpointConfig,
        tls: Option<&Arc<ClientConfig>>,
        shards: usize,
        clock: SharedClock,
        metrics: &Metrics,
    ) -> Result<Arc<Self>, String> {
        let tls = match tls.filter(|_| cfg.tls) {
            Some(config) => {
                let name = pool.tls.sni.as_deref().unwrap_or(&cfg.host);
                Some(Connector::new(config.clone(), name).map_err(|e| e.to_string())?)
            }
            None if cfg.tls => return Err(format!("{}: no TLS configuration", cfg.name)),
            None => None,
        };
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
                tls,
                proxy: pool.egress.proxy_for(cfg.tls, &cfg.host).map(|p| {
                    let credentials = p.user.as_deref().zip(p.password.as_deref());
                    Proxy::new(p.authority.clone(), credentials)
                }),
                protocol: match pool.protocol {
                    UpstreamProtocol::Auto => Protocol::Auto,
                    UpstreamProtocol::Http1 => Protocol::Http1,
                    UpstreamProtocol::H2 => Protocol::H2,
                    UpstreamProtocol::H2c => Protocol::H2c,
                },
                h2_keepalive: pool.h2_keepalive,
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
        // The Host field as the URL has it (a default port left out).
        let host = cfg
            .url
            .authority()
            .map_or(cfg.authority.as_str(), |a| a.as_str());
        Ok(Arc::new(Endpoint {
            name: Arc::from(cfg.name.as_str()),
            pool_name: Arc::from(pool.name.as_str()),
            name_header: header_value(&cfg.name),
            host_header: header_value(host),
            credential: cfg.api_key.as_ref().and_then(credential),
            cfg,
            pool: connections,
            tls_errors: metrics.upstream_tls_errors.clone(),
        }))
    }

    /// A connection ready to take a request (see [`Pool::checkout`]); a failed TLS
    /// handshake is counted by its reason.
    pub async fn checkout(&self) -> Result<Lease, ConnectError> {
        let res = self.pool.checkout().await;
        if let Err(ConnectError::Tls(e)) = &res {
            tracing::warn!(endpoint = %self.name, reason = e.reason, error = %e.detail, "upstream TLS handshake failed");
            self.tls_errors
                .get_or_create(&TlsErrorLabels {
                    pool: self.pool_name.to_string(),
                    endpoint: self.name.to_string(),
                    reason: e.reason.to_string(),
                })
                .inc();
        }
        res
    }

    /// Requests in flight on this endpoint.
    pub fn active(&self) -> usize {
        self.pool.active()
    }

    /// Idle pooled connections.
    pub fn idle_count(&self) -> usize {
        self.pool.idle_count()
    }

    /// Open HTTP/2 connections.
    pub fn h2_connections(&self) -> usize {
        self.pool.h2_connections()
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
