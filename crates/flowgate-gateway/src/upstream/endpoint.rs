//! One upstream endpoint and its connection pool.
//!
//! The pool is our own, on hyper's HTTP/1.1 client connections, rather than hyper-util's
//! legacy client, for three reasons (docs/decisions/2026-11-22-own-connection-pool.md):
//! an exact per-endpoint cap on open connections, a connection obtained *before* the
//! request is built (so a connect failure can be retried elsewhere even for a streamed
//! body), and exact connection counts for metrics.
//!
//! * Each open connection owns a semaphore permit (`max_connections` of them, shared by all
//!   workers), held by the task that drives the connection and released when it closes.
//! * Idle connections wait on LIFO stacks (the most recently used first: warm, and likely
//!   still open), one per data-plane worker, so that a worker reuses the connections its
//!   own thread drives (docs/decisions/2026-11-22-thread-per-core.md). `max_idle` caps
//!   the stacks together; a reaper closes connections idle past `idle_timeout`.
//! * A request that finds neither an idle connection on its worker's stack nor a free
//!   permit takes an idle one from any stack, or waits for whichever comes first: a
//!   connection returned to a stack, or a permit freed by a closing one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use flowgate_clock::SharedClock;
use flowgate_config::{EndpointConfig, PoolConfig};
use flowgate_telemetry::{EndpointLabels, Metrics};
use http::HeaderValue;
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
    /// `name` as the `x-flowgate-upstream` response header.
    pub name_header: HeaderValue,
    /// The `Host` header requests to this endpoint carry.
    pub host_header: HeaderValue,
    connect_timeout: Duration,
    idle_timeout: Duration,
    /// Idle connections, one stack per worker (shard 0 also serves non-worker threads).
    idle: Box<[Mutex<Vec<Idle>>]>,
    /// Idle connections allowed on all stacks together.
    max_idle: usize,
    /// Idle connections on all stacks now.
    idle_total: AtomicUsize,
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
    conn: Conn,
    since: Instant,
}

/// A pooled connection and the stack it returns to (that of the worker driving it).
#[derive(Debug)]
struct Conn {
    send: SendRequest<ReqBody>,
    shard: usize,
}

/// A connection lent to one request. Dropping it closes the connection (its response was
/// not read to the end); [`Lease::release`] returns it to the pool.
#[derive(Debug)]
pub struct Lease {
    conn: Option<Conn>,
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
    /// A new endpoint with `shards` idle stacks (one per data-plane worker).
    pub fn new(
        pool: &PoolConfig,
        cfg: EndpointConfig,
        shards: usize,
        clock: SharedClock,
        metrics: &Metrics,
    ) -> Arc<Self> {
        let shards = shards.max(1);
        let labels = EndpointLabels {
            pool: pool.name.clone(),
            endpoint: cfg.name.clone(),
        };
        let ep = Arc::new(Endpoint {
            name: Arc::from(cfg.name.as_str()),
            name_header: header_value(&cfg.name),
            host_header: header_value(&cfg.authority),
            cfg,
            connect_timeout: pool.connect_timeout,
            idle_timeout: pool.idle_timeout,
            idle: (0..shards).map(|_| Mutex::new(Vec::new())).collect(),
            max_idle: pool.max_idle as usize,
            idle_total: AtomicUsize::new(0),
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
        self.idle_total.load(Ordering::Relaxed)
    }

    /// The idle stack of the worker running this thread.
    fn home(&self) -> usize {
        crate::worker::current().map_or(0, |w| w % self.idle.len())
    }

    /// The most recently returned live connection on stack `shard`; dead or expired ones
    /// met on the way are dropped.
    fn pop_idle(&self, shard: usize) -> Option<Conn> {
        let now = self.clock.now();
        let mut idle = self.idle.get(shard)?.lock().ok()?;
        while let Some(i) = idle.pop() {
            self.idle_total.fetch_sub(1, Ordering::Relaxed);
            if self.reusable(&i, now) {
                return Some(i.conn);
            }
        }
        None
    }

    /// An idle connection from any stack, the home one first.
    fn pop_idle_any(&self, home: usize) -> Option<Conn> {
        let n = self.idle.len();
        (0..n).find_map(|k| self.pop_idle((home + k) % n))
    }

    fn reusable(&self, i: &Idle, now: Instant) -> bool {
        !i.conn.send.is_closed() && now.saturating_duration_since(i.since) < self.idle_timeout
    }

    /// A connection ready to take a request: a pooled one from this worker's stack, a new
    /// one, or (when the connection cap is reached) one from any stack as it frees up.
    pub async fn checkout(self: &Arc<Self>) -> Result<Lease, ConnectError> {
        let home = self.home();
        loop {
            if let Some(conn) = self.pop_idle(home) {
                if let Some(lease) = self.ready(conn).await {
                    return Ok(lease);
                }
                continue;
            }
            if let Ok(permit) = self.permits.clone().try_acquire_owned() {
                return self.connect(permit, home).await;
            }
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(conn) = self.pop_idle_any(home) {
                if let Some(lease) = self.ready(conn).await {
                    return Ok(lease);
                }
                continue;
            }
            tokio::select! {
                permit = self.permits.clone().acquire_owned() => match permit {
                    Ok(p) => return self.connect(p, home).await,
                    Err(_) => return Err(ConnectError::Io(std::io::Error::other("pool closed"))),
                },
                () = &mut returned => {}
            }
        }
    }

    /// Leases `conn` once it can take a request; `None` when the upstream closed it
    /// meanwhile (no request was sent on it).
    async fn ready(self: &Arc<Self>, mut conn: Conn) -> Option<Lease> {
        conn.send.ready().await.ok()?;
        Some(self.lease(conn))
    }

    fn lease(self: &Arc<Self>, conn: Conn) -> Lease {
        self.active.fetch_add(1, Ordering::Relaxed);
        Lease {
            conn: Some(conn),
            endpoint: self.clone(),
        }
    }

    async fn connect(
        self: &Arc<Self>,
        permit: tokio::sync::OwnedSemaphorePermit,
        shard: usize,
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
        let (send, driver) = match res {
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
        Ok(self.lease(Conn { send, shard }))
    }

    /// Returns `conn` to its stack (beyond `max_idle` idle connections it is closed instead)
    /// and wakes one waiter.
    fn push_idle(&self, conn: Conn) {
        if conn.send.is_closed() {
            return;
        }
        let room = self.idle_total.fetch_add(1, Ordering::Relaxed) < self.max_idle;
        let stack = self.idle.get(conn.shard).and_then(|s| s.lock().ok());
        let kept = match stack {
            Some(mut stack) if room => {
                stack.push(Idle {
                    conn,
                    since: self.clock.now(),
                });
                true
            }
            _ => false,
        };
        if !kept {
            self.idle_total.fetch_sub(1, Ordering::Relaxed);
        }
        self.returned.notify_one();
    }

    fn reap(&self) {
        let now = self.clock.now();
        for stack in &self.idle {
            if let Ok(mut idle) = stack.lock() {
                let before = idle.len();
                idle.retain(|i| self.reusable(i, now));
                self.idle_total
                    .fetch_sub(before - idle.len(), Ordering::Relaxed);
            }
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
        self.conn.as_mut().map(|c| &mut c.send)
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

/// `s` as a header value; validation only lets header-safe names and authorities through.
fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
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
