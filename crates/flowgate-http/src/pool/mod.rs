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
//! * HTTP/2 connections ([`Protocol`]: by ALPN, or by setting) are shared instead of lent:
//!   a request takes a stream on a connection of its worker's list that has one to spare
//!   under the server's `SETTINGS_MAX_CONCURRENT_STREAMS`, else on any worker's, else opens
//!   another connection (one at a time: the others wait for it rather than each opening
//!   their own), else, at the cap, queues on the least busy one. Dead connections (GOAWAY,
//!   closed, PING unanswered) are dropped from the lists; idle ones past `idle_timeout` are
//!   closed by the reaper.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use flowgate_clock::SharedClock;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::client::h2::{H2Conn, H2Stream};
use crate::client::{ExchangeError, RequestHead, ResponseHead, Wire};
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
    /// HTTP/2 connections, one list per worker, with when each last had no stream.
    h2: Box<[Mutex<Vec<Shared>>]>,
    /// What the server speaks, as far as is known: [`UNKNOWN`], [`HTTP1`] or [`HTTP2`].
    learned: AtomicU8,
    /// A connection that may turn out HTTP/2 is being opened; [`Pool::opened`] is notified
    /// when it is done.
    opening: AtomicBool,
    opened: Notify,
}

const UNKNOWN: u8 = 0;
const HTTP1: u8 = 1;
const HTTP2: u8 = 2;

/// An HTTP/2 connection in a pool's list.
#[derive(Debug)]
struct Shared {
    conn: Arc<H2Conn>,
    /// When it was last seen without a stream (for the idle timeout).
    idle_since: Instant,
}

/// Which HTTP a pool speaks to its servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// HTTP/2 when the server picks it by ALPN (offered on TLS), else HTTP/1.1.
    #[default]
    Auto,
    Http1,
    /// HTTP/2 over TLS, agreed by ALPN; a server that does not agree is an error.
    H2,
    /// HTTP/2 in cleartext, with prior knowledge.
    H2c,
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
    pub protocol: Protocol,
    /// How often an HTTP/2 connection is PINGed; one not answered within
    /// `connect_timeout` is closed.
    pub h2_keepalive: Duration,
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

/// What an open connection holds of its pool: a permit under the cap, and its count in
/// the open-connections gauge.
#[derive(Debug)]
struct Slot {
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// An open HTTP/1.1 connection: its slot, the stack it returns to (that of the worker whose
/// runtime its socket is registered with) and whether it has served a request before.
#[derive(Debug)]
struct Conn {
    wire: Wire,
    shard: usize,
    reused: bool,
    _slot: Slot,
}

/// A connection lent to one request (an HTTP/1.1 connection, or a stream of an HTTP/2
/// one). Dropping it closes an HTTP/1.1 connection (its response was not read to the end);
/// [`Lease::release`] returns it to the pool.
#[derive(Debug)]
pub struct Lease {
    conn: Option<Leased>,
    pool: Arc<Pool>,
}

/// Each variant boxed: a lease moves with the request (into the response body, back to the
/// idle stack), so it stays three words. An HTTP/1.1 connection is allocated once, when it
/// is opened; an HTTP/2 stream once per request.
#[derive(Debug)]
enum Leased {
    H1(Box<Conn>),
    H2(Box<SharedStream>),
}

/// A stream of a shared HTTP/2 connection, and whether the connection served a request
/// before.
#[derive(Debug)]
struct SharedStream {
    stream: H2Stream,
    reused: bool,
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
    /// The HTTP/2 handshake failed, or the server would not speak HTTP/2.
    H2(String),
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
            ConnectError::H2(e) => write!(f, "HTTP/2: {e}"),
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
            h2: (0..shards).map(|_| Mutex::new(Vec::new())).collect(),
            learned: AtomicU8::new(match (settings.protocol, &settings.tls) {
                (Protocol::Http1, _) | (Protocol::Auto, None) => HTTP1,
                (Protocol::H2 | Protocol::H2c, _) => HTTP2,
                (Protocol::Auto, Some(_)) => UNKNOWN,
            }),
            opening: AtomicBool::new(false),
            opened: Notify::new(),
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

    /// A connection ready to take a request: for HTTP/1.1, a pooled one from this worker's
    /// stack, a new one, or (when the connection cap is reached) one from any stack as it
    /// frees up; for HTTP/2, a stream on a shared connection (see the module's notes).
    pub async fn checkout(self: &Arc<Self>) -> Result<Lease, ConnectError> {
        if self.learned.load(Ordering::Relaxed) == HTTP1 {
            return self.checkout_h1().await;
        }
        self.checkout_shared().await
    }

    async fn checkout_h1(self: &Arc<Self>) -> Result<Lease, ConnectError> {
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

    /// For a server that speaks, or may speak, HTTP/2.
    async fn checkout_shared(self: &Arc<Self>) -> Result<Lease, ConnectError> {
        let home = self.home();
        loop {
            if let Some(lease) = self.h2_stream(home, false) {
                return Ok(lease);
            }
            if self.learned.load(Ordering::Relaxed) == HTTP1 {
                return self.checkout_h1().await;
            }
            let opened = self.opened.notified();
            tokio::pin!(opened);
            opened.as_mut().enable();
            if !self.opening.swap(true, Ordering::AcqRel) {
                // This request opens the next connection; the others wait for it.
                let _opening = Opening(self);
                return match self.permits.clone().try_acquire_owned() {
                    Ok(permit) => self.connect(permit, home).await,
                    // At the cap: queue on the least busy connection, or wait for a slot.
                    Err(_) => match self.h2_stream(home, true) {
                        Some(lease) => Ok(lease),
                        None => self.checkout_h1().await,
                    },
                };
            }
            tokio::select! {
                () = &mut opened => {}
                () = tokio::time::sleep(self.settings.connect_timeout) => {}
            }
        }
    }

    /// A stream on a live HTTP/2 connection with one to spare, this worker's first; with
    /// `even_full`, on the least busy live one when none has.
    fn h2_stream(self: &Arc<Self>, home: usize, even_full: bool) -> Option<Lease> {
        let n = self.h2.len();
        let mut least: Option<Arc<H2Conn>> = None;
        for k in 0..n {
            let Ok(mut list) = self.h2[(home + k) % n].lock() else {
                continue;
            };
            list.retain(|s| !s.conn.is_dead());
            for s in list.iter() {
                if s.conn.has_room(false) {
                    return Some(self.lease_h2(s.conn.open_stream(), true));
                }
                if even_full
                    && s.conn.has_room(true)
                    && least
                        .as_ref()
                        .is_none_or(|l| s.conn.streams() < l.streams())
                {
                    least = Some(s.conn.clone());
                }
            }
        }
        least.map(|c| self.lease_h2(c.open_stream(), true))
    }

    fn lease(self: &Arc<Self>, conn: Box<Conn>) -> Lease {
        self.active.fetch_add(1, Ordering::Relaxed);
        Lease {
            conn: Some(Leased::H1(conn)),
            pool: self.clone(),
        }
    }

    fn lease_h2(self: &Arc<Self>, stream: H2Stream, reused: bool) -> Lease {
        self.active.fetch_add(1, Ordering::Relaxed);
        Lease {
            conn: Some(Leased::H2(Box::new(SharedStream { stream, reused }))),
            pool: self.clone(),
        }
    }

    /// Opens a connection and lends it: HTTP/1.1, or HTTP/2 (shared from then on).
    async fn connect(
        self: &Arc<Self>,
        permit: OwnedSemaphorePermit,
        shard: usize,
    ) -> Result<Lease, ConnectError> {
        let timeout = self.settings.connect_timeout;
        let res = tokio::time::timeout(timeout, self.open(permit)).await;
        let opened = match res {
            Ok(Ok(opened)) => opened,
            Ok(Err(e)) => {
                self.metrics.connect_errors.inc();
                return Err(e);
            }
            Err(_) => {
                self.metrics.connect_errors.inc();
                return Err(ConnectError::Timeout(timeout));
            }
        };
        self.metrics.connects.inc();
        match opened {
            Opened::H1(stream, slot) => Ok(self.lease(Box::new(Conn {
                wire: Wire::new(stream),
                shard,
                reused: false,
                _slot: slot,
            }))),
            Opened::H2(conn) => {
                let conn = Arc::new(conn);
                let stream = conn.open_stream();
                if let Some(Ok(mut list)) = self.h2.get(shard).map(|l| l.lock()) {
                    list.push(Shared {
                        conn,
                        idle_since: self.clock.now(),
                    });
                }
                Ok(self.lease_h2(stream, false))
            }
        }
    }

    /// A new connection: TCP (or a tunnel through the proxy), then TLS when the pool
    /// speaks it, then HTTP/2 when the pool's protocol (or the server, by ALPN) says so.
    async fn open(&self, permit: OwnedSemaphorePermit) -> Result<Opened, ConnectError> {
        let authority = self.settings.authority.as_str();
        let tcp = match &self.settings.proxy {
            Some(proxy) => proxy.tunnel(authority).await.map_err(ConnectError::Proxy)?,
            None => TcpStream::connect(authority)
                .await
                .map_err(ConnectError::Io)?,
        };
        let _ = tcp.set_nodelay(true);
        let stream = match &self.settings.tls {
            None => Stream::Plain(tcp),
            Some(tls) => Stream::Tls(Box::new(tls.connect(tcp).await.map_err(ConnectError::Tls)?)),
        };
        let agreed = stream.alpn() == Some(b"h2");
        let h2 = match self.settings.protocol {
            Protocol::Http1 => false,
            Protocol::H2c => true,
            Protocol::Auto => agreed,
            Protocol::H2 if agreed => true,
            Protocol::H2 => {
                return Err(ConnectError::H2(
                    "the server did not agree to HTTP/2 by ALPN (protocol = \"h2\")".into(),
                ));
            }
        };
        self.learned
            .store(if h2 { HTTP2 } else { HTTP1 }, Ordering::Relaxed);
        self.metrics.open.inc();
        let slot = Slot {
            _permit: permit,
            open: self.metrics.open.clone(),
        };
        if !h2 {
            return Ok(Opened::H1(stream, slot));
        }
        H2Conn::handshake(
            stream,
            self.settings.h2_keepalive,
            self.settings.connect_timeout,
            Box::new(slot),
        )
        .await
        .map(Opened::H2)
        .map_err(|e| ConnectError::H2(e.to_string()))
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
        // HTTP/2 connections: the dead and those without a stream for `idle_timeout` go
        // (a connection still carrying streams lives on until they end).
        for list in &self.h2 {
            if let Ok(mut list) = list.lock() {
                list.retain_mut(|s| {
                    if s.conn.streams() > 0 {
                        s.idle_since = now;
                    }
                    !s.conn.is_dead()
                        && now.saturating_duration_since(s.idle_since) < self.settings.idle_timeout
                });
            }
        }
    }

    /// Open HTTP/2 connections in the lists.
    pub fn h2_connections(&self) -> usize {
        self.h2
            .iter()
            .filter_map(|l| l.lock().ok().map(|l| l.len()))
            .sum()
    }
}

/// A connection just opened, with its slot.
enum Opened {
    H1(Stream, Slot),
    H2(H2Conn),
}

/// Held by the request opening a connection for the others: when it is done, they look
/// again.
struct Opening<'a>(&'a Pool);

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        self.0.opening.store(false, Ordering::Release);
        self.0.opened.notify_waiters();
    }
}

impl Lease {
    /// The pool this connection belongs to.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// The HTTP/1.1 connection (present until released).
    pub(crate) fn wire(&mut self) -> Option<&mut Wire> {
        match self.conn.as_mut() {
            Some(Leased::H1(c)) => Some(&mut c.wire),
            _ => None,
        }
    }

    /// The HTTP version the request goes out in.
    pub fn version(&self) -> http::Version {
        match self.conn {
            Some(Leased::H2(_)) => http::Version::HTTP_2,
            _ => http::Version::HTTP_11,
        }
    }

    /// Whether the connection served a request before this one.
    pub fn is_reused(&self) -> bool {
        match &self.conn {
            Some(Leased::H1(c)) => c.reused,
            Some(Leased::H2(s)) => s.reused,
            None => false,
        }
    }

    /// Sends a request: `head`, then `body`. Once this returns `Ok` the upstream may act on
    /// the request.
    pub async fn write_request<B>(
        &mut self,
        head: &RequestHead<'_>,
        body: &mut B,
    ) -> Result<(), ExchangeError>
    where
        B: http_body::Body<Data = bytes::Bytes> + Unpin,
        B::Error: Into<crate::BoxError>,
    {
        match self.conn.as_mut() {
            Some(Leased::H1(c)) => c.wire.write_request(head, body).await,
            // Boxed: the HTTP/1.1 path's future stays as small as it was.
            Some(Leased::H2(s)) => Box::pin(s.stream.write_request(head, body)).await,
            None => Err(ExchangeError::ClosedBeforeHead),
        }
    }

    /// Reads the answer's head (HTTP/1.1 interim heads skipped).
    pub async fn read_head(&mut self, head_request: bool) -> Result<ResponseHead, ExchangeError> {
        match self.conn.as_mut() {
            Some(Leased::H1(c)) => c.wire.read_head(head_request).await,
            Some(Leased::H2(s)) => Box::pin(s.stream.read_head()).await,
            None => Err(ExchangeError::ClosedBeforeHead),
        }
    }

    /// Returns the connection to the pool: its response was read to the end and the
    /// upstream keeps it open. Otherwise an HTTP/1.1 connection is closed. (An HTTP/2
    /// stream is given back either way.)
    pub fn release(mut self, keep_alive: bool) {
        if let Some(Leased::H1(conn)) = self.conn.take()
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
