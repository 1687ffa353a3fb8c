//! One upstream endpoint and its connection pool.
//!
//! The pool is our own, on hyper's HTTP/1.1 client connections, rather than hyper-util's
//! legacy client, for three reasons (docs/decisions/2026-11-22-own-connection-pool.md):
//! an exact per-endpoint cap on open connections, a connection obtained *before* the
//! request is built (so a connect failure can be retried elsewhere even for a streamed
//! body), and exact connection counts for metrics.
//!
//! * Each open connection owns a semaphore permit (`max_connections` of them), held by the
//!   task that drives the connection and released when the connection closes.
//! * Idle connections wait on a LIFO stack (the most recently used first: warm, and likely
//!   still open), at most `max_idle` of them; a reaper closes those idle past `idle_timeout`.
//! * A request that finds neither an idle connection nor a free permit waits for whichever
//!   comes first: a connection returned to the stack, or a permit freed by a closing one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use flowgate_clock::SharedClock;
use flowgate_config::{EndpointConfig, PoolConfig};
use flowgate_telemetry::{EndpointLabels, Metrics};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};

use crate::body::ReqBody;

/// An upstream server with its pooled connections.
#[derive(Debug)]
pub struct Endpoint {
    pub name: Arc<str>,
    pub cfg: EndpointConfig,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<Idle>>,
    permits: Arc<Semaphore>,
    returned: Notify,
    /// Requests using a connection of this endpoint now.
    active: AtomicUsize,
    clock: SharedClock,
    open_gauge: Gauge,
    connects: Counter,
    connect_errors: Counter,
}

#[derive(Debug)]
struct Idle {
    conn: SendRequest<ReqBody>,
    since: Instant,
}

/// A connection lent to one request. Dropping it closes the connection (its response was
/// not read to the end); [`Lease::release`] returns it to the pool.
#[derive(Debug)]
pub struct Lease {
    conn: Option<SendRequest<ReqBody>>,
    endpoint: Arc<Endpoint>,
}

/// Why no connection could be had.
#[derive(Debug)]
pub enum ConnectError {
    Timeout(Duration),
    Io(std::io::Error),
    Handshake(hyper::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Timeout(d) => write!(
                f,
                "connect timed out after {}",
                flowgate_config::format_duration(*d)
            ),
            ConnectError::Io(e) => write!(f, "{e}"),
            ConnectError::Handshake(e) => write!(f, "handshake failed: {e}"),
        }
    }
}

impl Endpoint {
    pub fn new(
        pool: &PoolConfig,
        cfg: EndpointConfig,
        clock: SharedClock,
        metrics: &Metrics,
    ) -> Arc<Self> {
        let labels = EndpointLabels {
            pool: pool.name.clone(),
            endpoint: cfg.name.clone(),
        };
        let ep = Arc::new(Endpoint {
            name: Arc::from(cfg.name.as_str()),
            cfg,
            connect_timeout: pool.connect_timeout,
            idle_timeout: pool.idle_timeout,
            max_idle: pool.max_idle as usize,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(pool.max_connections as usize)),
            returned: Notify::new(),
            active: AtomicUsize::new(0),
            clock,
            open_gauge: metrics.upstream_connections.get_or_create(&labels).clone(),
            connects: metrics.upstream_connects.get_or_create(&labels).clone(),
            connect_errors: metrics
                .upstream_connect_errors
                .get_or_create(&labels)
                .clone(),
        });
        spawn_reaper(Arc::downgrade(&ep));
        ep
    }

    /// Requests in flight on this endpoint.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Idle pooled connections.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().map_or(0, |v| v.len())
    }

    fn pop_idle(&self) -> Option<SendRequest<ReqBody>> {
        let now = self.clock.now();
        let mut idle = self.idle.lock().ok()?;
        while let Some(i) = idle.pop() {
            if !i.conn.is_closed() && now.saturating_duration_since(i.since) < self.idle_timeout {
                return Some(i.conn);
            }
        }
        None
    }

    /// A connection ready to take a request: a pooled one, or a new one.
    pub async fn checkout(self: &Arc<Self>) -> Result<Lease, ConnectError> {
        loop {
            if let Some(mut conn) = self.pop_idle() {
                // The connection may have been closed by the upstream meanwhile; then no
                // request was sent on it and the next one is tried.
                if conn.ready().await.is_ok() {
                    return Ok(self.lease(conn));
                }
                continue;
            }
            if let Ok(permit) = self.permits.clone().try_acquire_owned() {
                return self.connect(permit).await;
            }
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(conn) = self.pop_idle() {
                self.push_idle(conn);
                continue;
            }
            tokio::select! {
                permit = self.permits.clone().acquire_owned() => match permit {
                    Ok(p) => return self.connect(p).await,
                    Err(_) => return Err(ConnectError::Io(std::io::Error::other("pool closed"))),
                },
                () = &mut returned => {}
            }
        }
    }

    fn lease(self: &Arc<Self>, conn: SendRequest<ReqBody>) -> Lease {
        self.active.fetch_add(1, Ordering::Relaxed);
        Lease {
            conn: Some(conn),
            endpoint: self.clone(),
        }
    }

    async fn connect(
        self: &Arc<Self>,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<Lease, ConnectError> {
        let res = tokio::time::timeout(self.connect_timeout, async {
            let stream = TcpStream::connect(self.cfg.authority.as_str())
                .await
                .map_err(ConnectError::Io)?;
            let _ = stream.set_nodelay(true);
            http1::Builder::new()
                .handshake::<_, ReqBody>(TokioIo::new(stream))
                .await
                .map_err(ConnectError::Handshake)
        })
        .await;
        let (conn, driver) = match res {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => {
                self.connect_errors.inc();
                return Err(e);
            }
            Err(_) => {
                self.connect_errors.inc();
                return Err(ConnectError::Timeout(self.connect_timeout));
            }
        };
        self.connects.inc();
        let gauge = self.open_gauge.clone();
        gauge.inc();
        tokio::spawn(async move {
            // The permit lives exactly as long as the connection.
            let _permit = permit;
            let _ = driver.await;
            gauge.dec();
        });
        Ok(self.lease(conn))
    }

    fn push_idle(&self, conn: SendRequest<ReqBody>) {
        if conn.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.max_idle
        {
            idle.push(Idle {
                conn,
                since: self.clock.now(),
            });
        }
        self.returned.notify_one();
    }

    fn reap(&self) {
        let now = self.clock.now();
        if let Ok(mut idle) = self.idle.lock() {
            idle.retain(|i| {
                !i.conn.is_closed() && now.saturating_duration_since(i.since) < self.idle_timeout
            });
        }
    }
}

impl Lease {
    /// The endpoint this connection belongs to.
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    /// The connection (present until released).
    pub fn conn(&mut self) -> Option<&mut SendRequest<ReqBody>> {
        self.conn.as_mut()
    }

    /// Returns the connection to the pool (its response has been read to the end).
    pub fn release(mut self) {
        if let Some(conn) = self.conn.take() {
            self.endpoint.push_idle(conn);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.endpoint.active.fetch_sub(1, Ordering::Relaxed);
    }
}

fn spawn_reaper(ep: Weak<Endpoint>) {
    tokio::spawn(async move {
        let period = match ep.upgrade() {
            Some(e) => (e.idle_timeout / 4).max(Duration::from_millis(250)),
            None => return,
        };
        loop {
            tokio::time::sleep(period).await;
            match ep.upgrade() {
                Some(e) => e.reap(),
                None => return,
            }
        }
    });
}
