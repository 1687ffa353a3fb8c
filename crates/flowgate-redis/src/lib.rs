//! flowgate's link to Redis, shared by every part that keeps state there (the cache's L2
//! tier, the shared rate limits).
//!
//! Redis must never make a request fail or wait long: every call has a deadline
//! (`timeout`), and after `breaker_failures` consecutive failures the link is skipped for
//! `breaker_cooldown` (a circuit breaker on the caller's clock); then one call probes it
//! again. A call that fails, times out or is skipped returns `None` and is counted; the
//! caller goes on without Redis.

mod breaker;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use flowgate_clock::SharedClock;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};

pub use breaker::Breaker;

/// Where Redis is and how long to wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSettings {
    /// `redis://host:port/db` (or `rediss://` where the client supports TLS): the server,
    /// or seed nodes of a Cluster.
    pub urls: Vec<String>,
    /// Whether `urls` are nodes of a Redis Cluster.
    pub cluster: bool,
    /// Deadline of each call.
    pub timeout: Duration,
    pub breaker_failures: u32,
    pub breaker_cooldown: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LinkError(String);

/// Calls that did not get an answer.
#[derive(Debug, Default)]
struct Failures {
    errors: AtomicU64,
    timeouts: AtomicU64,
    /// Calls skipped because the breaker was open.
    skipped: AtomicU64,
}

/// The link's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkSnapshot {
    pub errors: u64,
    pub timeouts: u64,
    pub skipped: u64,
    /// Whether the breaker currently keeps calls away from Redis.
    pub open: bool,
}

/// One call to Redis.
#[derive(Debug, Clone, Copy)]
pub enum Op<'a> {
    Cmd(&'a redis::Cmd),
    Pipe(&'a redis::Pipeline),
    /// A command for one node of a Cluster (`host`, `port`); on a standalone server, the server.
    At(&'a redis::Cmd, &'a (String, u16)),
    /// A script, by its digest (loaded first when the server does not know it).
    Script(&'a redis::ScriptInvocation<'a>),
}

/// A link to one Redis deployment. Cheap to clone.
#[derive(Clone)]
pub struct Link {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Conn,
    settings: LinkSettings,
    breaker: Breaker,
    clock: SharedClock,
    failures: Failures,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("urls", &self.inner.settings.urls.len())
            .field("cluster", &self.inner.settings.cluster)
            .field("breaker", &self.inner.breaker)
            .finish()
    }
}

/// A standalone server (one multiplexed connection, reconnected by the manager) or a
/// Cluster (connections to every node, routed by slot; connected on first use, and again
/// after a failed attempt).
enum Conn {
    Single(ConnectionManager),
    Cluster(Box<Cluster>),
}

struct Cluster {
    client: ClusterClient,
    conn: tokio::sync::OnceCell<ClusterConnection>,
}

impl Conn {
    async fn exec<T: redis::FromRedisValue>(&self, op: Op<'_>) -> redis::RedisResult<T> {
        match self {
            Conn::Single(c) => {
                let mut c = c.clone();
                match op {
                    Op::Cmd(cmd) | Op::At(cmd, _) => cmd.query_async(&mut c).await,
                    Op::Pipe(p) => p.query_async(&mut c).await,
                    Op::Script(s) => s.invoke_async(&mut c).await,
                }
            }
            Conn::Cluster(cluster) => {
                let mut c = cluster
                    .conn
                    .get_or_try_init(|| cluster.client.get_async_connection())
                    .await?
                    .clone();
                match op {
                    Op::Cmd(cmd) => cmd.query_async(&mut c).await,
                    Op::Pipe(p) => p.query_async(&mut c).await,
                    Op::Script(s) => s.invoke_async(&mut c).await,
                    Op::At(cmd, (host, port)) => {
                        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port: *port,
                        });
                        let v = c.route_command(cmd.clone(), route).await?;
                        redis::from_redis_value(v).map_err(Into::into)
                    }
                }
            }
        }
    }
}

impl Link {
    /// A link to `settings.urls`; connects lazily (a Redis that is down at start is
    /// skipped like one that goes down later). Must be called within a Tokio runtime.
    pub fn open(settings: LinkSettings, clock: SharedClock) -> Result<Self, LinkError> {
        let connect_timeout = settings.timeout.max(Duration::from_millis(200));
        let conn = if settings.cluster {
            let client = ClusterClient::builder(settings.urls.clone())
                .connection_timeout(connect_timeout)
                .response_timeout(settings.timeout)
                .retries(1)
                .build()
                .map_err(|e| LinkError(e.to_string()))?;
            Conn::Cluster(Box::new(Cluster {
                client,
                conn: tokio::sync::OnceCell::new(),
            }))
        } else {
            let [url] = settings.urls.as_slice() else {
                return Err(LinkError(
                    "a standalone Redis has exactly one URL".to_string(),
                ));
            };
            let client = redis::Client::open(url.as_str()).map_err(|e| LinkError(e.to_string()))?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(connect_timeout))
                .set_response_timeout(Some(settings.timeout))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_secs(1));
            Conn::Single(
                ConnectionManager::new_lazy_with_config(client, config)
                    .map_err(|e| LinkError(e.to_string()))?,
            )
        };
        Ok(Link {
            inner: Arc::new(Inner {
                conn,
                breaker: Breaker::new(settings.breaker_failures, settings.breaker_cooldown),
                settings,
                clock,
                failures: Failures::default(),
            }),
        })
    }

    /// Runs `op` under the deadline and the breaker: its answer, or `None` when Redis
    /// failed, was too slow, or is being skipped.
    pub async fn run<T: redis::FromRedisValue>(&self, op: Op<'_>) -> Option<T> {
        let i = &self.inner;
        if !i.breaker.allow(i.clock.unix_millis()) {
            i.failures.skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        match tokio::time::timeout(i.settings.timeout, i.conn.exec::<T>(op)).await {
            Ok(Ok(v)) => {
                i.breaker.success();
                Some(v)
            }
            Ok(Err(e)) => {
                i.failures.errors.fetch_add(1, Ordering::Relaxed);
                i.breaker.failure(i.clock.unix_millis());
                tracing::debug!(error = %e, "redis call failed");
                None
            }
            Err(_) => {
                i.failures.timeouts.fetch_add(1, Ordering::Relaxed);
                i.breaker.failure(i.clock.unix_millis());
                None
            }
        }
    }

    /// Whether the breaker keeps calls away from Redis now.
    pub fn is_open(&self) -> bool {
        self.inner.breaker.is_open(self.inner.clock.unix_millis())
    }

    pub fn snapshot(&self) -> LinkSnapshot {
        let f = &self.inner.failures;
        LinkSnapshot {
            errors: f.errors.load(Ordering::Relaxed),
            timeouts: f.timeouts.load(Ordering::Relaxed),
            skipped: f.skipped.load(Ordering::Relaxed),
            open: self.is_open(),
        }
    }

    /// The addresses of the Cluster's primaries.
    pub async fn primaries(&self) -> Option<Vec<(String, u16)>> {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("NODES");
        let text = self.run::<String>(Op::Cmd(&cmd)).await?;
        Some(parse_primaries(&text))
    }
}

/// The primaries in `CLUSTER NODES` output (`<id> <ip:port@bus[,host]> <flags> ...`),
/// leaving out failed ones.
fn parse_primaries(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (_, addr, flags) = (f.next()?, f.next()?, f.next()?);
            let flags: Vec<&str> = flags.split(',').collect();
            if !flags.contains(&"master") || flags.iter().any(|f| f.starts_with("fail")) {
                return None;
            }
            let addr = addr.split(['@', ',']).next()?;
            let (host, port) = addr.rsplit_once(':')?;
            Some((
                host.trim_matches(['[', ']']).to_string(),
                port.parse().ok()?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_primaries_are_read_from_cluster_nodes() {
        let text = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host-a slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master,fail - 0 1426238318243 3 connected 10923-16383
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460
824fe116063bc5fcf9f4ffd895bc17aee7731ac3 [::1]:30006@31006 master - 0 1426238316232 6 connected
";
        assert_eq!(
            parse_primaries(text),
            [
                ("127.0.0.1".to_string(), 30002),
                ("127.0.0.1".to_string(), 30001),
                ("::1".to_string(), 30006)
            ]
        );
    }
}
