//! The flowgate gateway: listener, router, upstream pools, streaming proxy and admin API.
//!
//! One request: the listener (its own HTTP/1.1, hyper for h2c; head limits and timeouts) hands it to
//! [`Gateway::handle`], which matches a route, checks limits, reads the body once for
//! `openai` routes (streams it for `http` routes), takes a pooled upstream connection
//! (round-robin; a connect failure is retried once on another endpoint), forwards the
//! request and streams the response back frame by frame. Errors are answered as OpenAI-shaped
//! JSON. Each request leaves one record for telemetry. See `docs/architecture.md`.

mod access_log;
mod account;
mod admin;
mod admission;
mod admission_metrics;
mod alert_metrics;
mod alert_rules;
mod alerting;
mod anomalies;
mod anomaly_thread;
mod api_made;
mod auth;
mod automation;
mod automation_loop;
mod balance_metrics;
mod body;
mod cache_metrics;
mod caching;
mod capacity;
mod choose;
mod control_loop;
mod cost_header;
mod database_metrics;
mod database_watch;
mod databases;
mod dialect;
mod error;
mod flow;
mod forward;
mod gateway;
mod headers;
mod history;
mod history_writer;
mod instances;
mod launch;
mod listener;
mod memory_governor;
mod memory_watch;
mod openai;
mod outcome;
mod overrides;
mod path;
mod queues;
mod refresh;
mod reload;
mod router;
mod runtime;
mod scaling;
mod scaling_act;
mod scaling_loop;
mod shed;
mod sinks;
mod spend;
mod stages;
pub mod tls;
mod trace_export;
mod transform;
pub mod upstream;
mod warming;
mod watch;

pub use admin::openapi as admin_openapi;
pub use body::{ProxyBody, ReqBody};
pub use error::ProxyError;
pub use gateway::Gateway;
pub use launch::{Running, launch};
pub use reload::reload;
pub use runtime::Runtime;
pub use tls::tls_warnings;

/// What is wrong with what the config names outside itself (TLS files, AWS credentials),
/// by key: `flowgate check`, `flowgate serve` and every reload refuse such a config.
pub fn check_external(config: &flowgate_config::Config) -> Vec<(flowgate_config::KeyPath, String)> {
    let mut found = tls::check_tls(config);
    found.extend(dialect::aws::check(config));
    found
}
