//! The connection pool of one upstream address.
//!
//! The pool is our own (docs/decisions/2026-11-22-own-connection-pool.md): an exact
//! per-endpoint cap on open connections, a connection obtained *before* the request is
//! built (so a connect failure can be retried elsewhere even for a streamed body), and exact
//! connection counts for metrics. Connections speak HTTP/1.1 through [`crate::client`], driven
//! by the request that holds them.
//!
//! * Each open connection owns a semaphore permit (`max_connections` of them, shared by all
//!   workers), released when the connection is dropped (which closes it).
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
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::client::Wire;
use crate::proxy::{Proxy, TunnelError};
use crate::stream::Stream;
use crate::tls::{Connector, HandshakeError};

mod body;

pub use body::{ReadTimeout, ResponseBody};

/// The pooled connections to one upstream address.
#[derive(Debug)]
pub struct Pool {
    settings: PoolSettings,
    /// Idle connections, one stack per worker (shard 0 also serves non-worker threads).
    idle: Box<[Mutex<Vec<Idle>>]>,
    /// Idle connections on all stacks now.
    idle_total: AtomicUsize,
    permits: Arc<Semaphore>,
    returned: Notify,
    /// Requests using a connection of this pool now.
    active: AtomicUsize,
    clock: SharedClock,
    metrics: PoolMetrics,
}

/// How a pool connects and how many connections it keeps.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// `host:port` to connect to.
    pub authority: String,
    pub connect_timeout: Duration,
    /// Idle connections older than this are closed.
    pub idle_timeout: Duration,
    /// Idle connections allowed on all stacks together.
    pub max_idle: usize,
    /// Open connections allowed (idle or in use).
    pub max_connections: usize,
    /// TLS to the server (`https://`), with the server name to verify.
    pub tls: Option<Connector>,
    /// The HTTP proxy connections go through (a `CONNECT` tunnel), if any.
    pub proxy: Option<Proxy>,
}

/// The pool's counters, made by the caller (labelled as it likes).
#[derive(Debug, Clone, Default)]
pub struct PoolMetrics {
    /// Connections open now.
    pub open: Gauge,
    /// Connections opened.
    pub connects: Counter,
    /// Connection attempts that failed.
    pub connect_errors: Counter,
}

#[derive(Debug)]
struct Idle {
    conn: Box<Conn>,
    since: Instant,
}

/// An open connection: its permit, the stack it returns to (that of the worker whose
/// runtime its socket is registered with) and whether it has served a request before.
#[derive(Debug)]
struct Conn {
    wire: Wire,
    shard: usize,
    reused: bool,
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// A connection lent to one request. Dropping it closes the connection (its response was
/// not read to the end); [`Lease::release`] returns it to the pool.
#[derive(Debug)]
pub struct Lease {
    /// Boxed: a lease moves with the request (into the response body, back to the idle
    /// stack) and a connection is allocated once, when it is opened.
    conn: Option<Box<Conn>>,
    pool: Arc<Pool>,
}

/// Why no connection could be had.
#[derive(Debug)]
pub enum ConnectError {
    Timeout(Duration),
    Io(std::io::Error),
    /// The TCP connection opened; its TLS handshake failed.
    Tls(HandshakeError),
    /// The egress proxy could not be reached or would not open the tunnel.
    Proxy(TunnelError),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Timeout(d) => write!(
                f,
                "connect timed out after {}",
                flowgate_clock::format_duration(*d)
            ),
            ConnectError::Io(e) => write!(f, "{e}"),
            ConnectError::Tls(e) => write!(f, "{e}"),
            ConnectError::Proxy(e) => write!(f, "{e}"),
        }
    }
}

impl Pool {
    /// A pool with `shards` idle stacks (one per data-plane worker; see [`crate::worker`]).
    pub fn new(
        settings: PoolSettings,
        metrics: PoolMetrics,
        shards: usize,
        clock: SharedClock,
    ) -> Arc<Self> {
        let shards = shards.max(1);
        let pool = Arc::new(Pool {
            idle: (0..shards).map(|_| Mutex::new(Vec::new())).collect(),
            idle_total: AtomicUsize::new(0),
            permits: Arc::new(Semaphore::new(settings.max_connections)),
            returned: Notify::new(),
            active: AtomicUsize::new(0),
            clock,
            metrics,
            settings,
        });
        spawn_reaper(Arc::downgrade(&pool));
        pool
    }

    pub fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    /// Requests using a connection now.
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
    fn pop_idle(&self, shard: usize) -> Option<Box<Conn>> {
        let now = self.clock.now();
        let mut idle = self.idle.get(shard)?.lock().ok()?;
        while let Some(mut i) = idle.pop() {
            self.idle_total.fetch_sub(1, Ordering::Relaxed);
            if self.reusable(&mut i, now) {
                return Some(i.conn);
            }
        }
        None
    }

    /// An idle connection from any stack, the home one first.
    fn pop_idle_any(&self, home: usize) -> Option<Box<Conn>> {
        let n = self.idle.len();
        (0..n).find_map(|k| self.pop_idle((home + k) % n))
    }

    fn reusable(&self, i: &mut Idle, now: Instant) -> bool {
        now.saturating_duration_since(i.since) < self.settings.idle_timeout
            && i.conn.wire.is_usable()
    }

    /// A connection ready to take a request: a pooled one from this worker's stack, a new
    /// one, or (when the connection cap is reached) one from any stack as it frees up.
    pub async fn checkout(self: &Arc<Self>) -> Result<Lease, ConnectError> {
        let home = self.home();
        loop {
            if let Some(conn) = self.pop_idle(home) {
                return Ok(self.lease(conn));
            }
            if let Ok(permit) = self.permits.clone().try_acquire_owned() {
                return self.connect(permit, home).await;
            }
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(conn) = self.pop_idle_any(home) {
                return Ok(self.lease(conn));
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

    fn lease(self: &Arc<Self>, conn: Box<Conn>) -> Lease {
        self.active.fetch_add(1, Ordering::Relaxed);
        Lease {
            conn: Some(conn),
            pool: self.clone(),
        }
    }

    async fn connect(
        self: &Arc<Self>,
        permit: OwnedSemaphorePermit,
        shard: usize,
    ) -> Result<Lease, ConnectError> {
        let res = tokio::time::timeout(self.settings.connect_timeout, self.open()).await;
        let stream = match res {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                self.metrics.connect_errors.inc();
                return Err(e);
            }
            Err(_) => {
                self.metrics.connect_errors.inc();
                return Err(ConnectError::Timeout(self.settings.connect_timeout));
            }
        };
        self.metrics.connects.inc();
        self.metrics.open.inc();
        Ok(self.lease(Box::new(Conn {
            wire: Wire::new(stream),
            shard,
            reused: false,
            _permit: permit,
            open: self.metrics.open.clone(),
        })))
    }

    /// A new connection: TCP (or a tunnel through the proxy), then TLS when the pool
    /// speaks it.
    async fn open(&self) -> Result<Stream, ConnectError> {
        let authority = self.settings.authority.as_str();
        let tcp = match &self.settings.proxy {
            Some(proxy) => proxy.tunnel(authority).await.map_err(ConnectError::Proxy)?,
            None => TcpStream::connect(authority)
                .await
                .map_err(ConnectError::Io)?,
        };
        let _ = tcp.set_nodelay(true);
        match &self.settings.tls {
            None => Ok(Stream::Plain(tcp)),
            Some(tls) => Ok(Stream::Tls(Box::new(
                tls.connect(tcp).await.map_err(ConnectError::Tls)?,
            ))),
        }
    }

    /// Returns `conn` to its stack (beyond `max_idle` idle connections it is closed instead)
    /// and wakes one waiter.
    fn push_idle(&self, mut conn: Box<Conn>) {
        conn.reused = true;
        let room = self.idle_total.fetch_add(1, Ordering::Relaxed) < self.settings.max_idle;
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
                idle.retain_mut(|i| self.reusable(i, now));
                self.idle_total
                    .fetch_sub(before - idle.len(), Ordering::Relaxed);
            }
        }
    }
}

impl Lease {
    /// The pool this connection belongs to.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// The connection (present until released).
    pub fn wire(&mut self) -> Option<&mut Wire> {
        self.conn.as_mut().map(|c| &mut c.wire)
    }

    /// Whether the connection served a request before this one.
    pub fn is_reused(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| c.reused)
    }

    /// Returns the connection to the pool: its response was read to the end and the
    /// upstream keeps it open. Otherwise it is closed.
    pub fn release(mut self, keep_alive: bool) {
        if let Some(conn) = self.conn.take()
            && keep_alive
            && !conn.wire.has_leftover()
        {
            self.pool.push_idle(conn);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.active.fetch_sub(1, Ordering::Relaxed);
    }
}

fn spawn_reaper(ep: Weak<Pool>) {
    tokio::spawn(async move {
        let period = match ep.upgrade() {
            Some(e) => (e.settings.idle_timeout / 4).max(Duration::from_millis(250)),
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
