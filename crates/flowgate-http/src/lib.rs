//! flowgate's transport: everything that speaks HTTP on a socket, and nothing of what the
//! messages mean.
//!
//! - [`server`]: the data-plane listener. Its own HTTP/1.1 (heads read with httparse,
//!   keep-alive, pipelining, `100-continue`, lingering close, a head deadline per
//!   connection) and h2c through hyper, serving any [`server::Service`].
//! - [`client`]: HTTP/1.1 to upstreams, driven by the request's own task, sending any
//!   [`http_body::Body`]; [`client::ResponseBody`] streams an answer frame by frame.
//! - [`pool`]: the connections to one upstream address (an exact cap, per-worker idle
//!   stacks, a reaper).
//! - [`fetch`]: whole requests from the control plane (notifiers, exporters), pooled
//!   per origin.
//! - [`worker`]: the thread-per-core data plane the listener and the pool are built for.
//! - [`tls`]: rustls configurations and handshakes; [`stream`]: a connection, plain or TLS;
//!   [`proxy`]: `CONNECT` tunnels through an egress proxy.
//! - [`chunked`] and [`fields`]: the body framing and head fields both sides share;
//!   `sock`: socket reads and writes.
//!
//! It knows nothing of routes, caching, admission, cost or OpenAI: the gateway composes
//! those on top (`docs/architecture.md`).

pub mod chunked;
pub mod client;
mod deadline;
pub mod fetch;
pub mod fields;
pub mod fuzzing;
pub mod pool;
pub mod proxy;
pub mod server;
mod sock;
pub mod stream;
pub mod tls;
pub mod worker;

/// Boxed error of a body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
