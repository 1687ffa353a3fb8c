//! The gateway as the listener's [`Service`]: each request goes to [`Gateway::handle`];
//! heads the listener could not read get the gateway's JSON errors.

use std::sync::Arc;

use flowgate_clock::SharedClock;
use flowgate_http::server::{ClientBody, Connections, HeadError, Limits, Peer, Service, Settings};
use http::{Request, Response};
use prometheus_client::metrics::counter::Counter;

use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::gateway::Gateway;

impl Service for Gateway {
    type Body = ProxyBody;

    fn call(
        self: &Arc<Self>,
        req: Request<ClientBody>,
        peer: &Peer,
    ) -> impl Future<Output = Response<ProxyBody>> + Send {
        self.handle(req, peer)
    }

    fn refuse(&self, e: &HeadError) -> Response<ProxyBody> {
        ProxyError::from(e.clone()).into_response()
    }

    fn settings(&self) -> Settings {
        let rt = self.runtime();
        let l = &rt.config.limits;
        Settings {
            limits: Limits {
                max_header_bytes: l.max_header_bytes,
                max_headers: l.max_headers,
                header_read_timeout: l.header_read_timeout,
                body_read_timeout: l.body_read_timeout,
                send_timeout: l.send_timeout,
            },
            http2: rt.config.server.http2,
            drain_timeout: rt.config.server.drain_timeout,
            max_connections: l.max_connections,
            max_connections_per_address: l.max_connections_per_address,
        }
    }

    fn clock(&self) -> &SharedClock {
        Gateway::clock(self)
    }

    fn accepted_counter(&self, worker: usize) -> Counter {
        self.telemetry().metrics().worker_connections(worker)
    }

    fn on_drain(&self) {
        self.set_draining();
    }

    fn connections(&self) -> &Arc<Connections> {
        self.client_connections()
    }

    fn on_refused_connection(&self) {
        self.telemetry().metrics().refused_connections.inc();
    }

    fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.listener_tls().map(|t| t.config.clone())
    }

    fn on_handshake_failed(&self, reason: &'static str) {
        self.telemetry()
            .metrics()
            .client_tls_errors
            .get_or_create(&flowgate_telemetry::ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }
}
