//! L2: Redis, shared by every gateway replica.
//!
//! Values are [`codec`] records (compressed above the threshold) under
//! `<prefix>:{<cache key>}`; the braces are a Cluster hash tag, so that every key about one
//! entry (the value, its fetch lock) lives in one slot. Every key is written with a TTL: the
//! entry's remaining freshness, or the lock's few seconds.
//!
//! Redis must never make a request fail or wait long: every operation has a deadline
//! (`timeout`), and after `breaker_failures` consecutive failures the tier is skipped for
//! `breaker_cooldown` (a circuit breaker on the gateway's clock); then one request probes
//! it again. Writes are sent from spawned tasks and never awaited by a request.
//!
//! Replicas tell each other about invalidations on the Pub/Sub channel
//! `<prefix>:invalidations` ([`RedisTier::announce`], [`RedisTier::listen`]), so that an
//! invalidation reaches every replica's memory tier, not only the one that got the call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use flowgate_clock::SharedClock;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};

use crate::codec::{self, Record};
use crate::invalidate::Selector;

/// Where and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://host:port/db` (or `rediss://` where the client supports TLS): the server,
    /// or seed nodes of a Cluster.
    pub urls: Vec<String>,
    /// Whether `urls` are nodes of a Redis Cluster.
    pub cluster: bool,
    /// Key prefix; several deployments can share one Redis.
    pub prefix: String,
    /// Deadline of each operation.
    pub timeout: Duration,
    pub breaker_failures: u32,
    pub breaker_cooldown: Duration,
    /// Bodies larger than this are stored zstd-compressed.
    pub compress_above: u64,
    /// How long a miss waits for the replica holding the key's fetch lock (zero: no lock).
    pub lock_wait: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("cache.redis.url: {0}")]
pub struct RedisError(String);

/// Counters of the Redis tier.
#[derive(Debug, Default)]
pub struct RedisStats {
    pub errors: AtomicU64,
    pub timeouts: AtomicU64,
    /// Operations skipped because the breaker was open.
    pub skipped: AtomicU64,
    pub writes: AtomicU64,
    /// Body bytes written before and after compression.
    pub body: codec::BodyBytes,
    /// Misses that found another replica fetching the key and waited for it.
    pub lock_waits: AtomicU64,
    /// Of those, how many got the other replica's answer.
    pub lock_hits: AtomicU64,
}

/// The Redis tier's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RedisSnapshot {
    pub errors: u64,
    pub timeouts: u64,
    pub skipped: u64,
    pub writes: u64,
    pub body_raw: u64,
    pub body_stored: u64,
    pub lock_waits: u64,
    pub lock_hits: u64,
    /// Whether the breaker currently keeps requests away from Redis.
    pub open: bool,
}

impl RedisSnapshot {
    /// Raw body bytes per stored byte (1 when nothing was compressed or written).
    pub fn compression_ratio(&self) -> f64 {
        codec::compression_ratio(self.body_raw, self.body_stored)
    }
}

/// Consecutive failures open it for a cooldown; the first call after that probes.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown_ms: u64,
    failures: AtomicU32,
    open_until_ms: AtomicU64,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cooldown_ms: u64::try_from(cooldown.as_millis()).unwrap_or(u64::MAX),
            failures: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
        }
    }

    /// Whether a call may go to Redis at `now_ms`. When the cooldown is over, one caller
    /// gets through as the probe and the breaker stays open for the others until it reports.
    pub fn allow(&self, now_ms: u64) -> bool {
        let until = self.open_until_ms.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        if now_ms < until {
            return false;
        }
        // Take the probe: push the reopening further so that others keep skipping.
        self.open_until_ms
            .compare_exchange(
                until,
                now_ms.saturating_add(self.cooldown_ms),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    pub fn success(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.open_until_ms.store(0, Ordering::Release);
    }

    pub fn failure(&self, now_ms: u64) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.threshold || self.open_until_ms.load(Ordering::Acquire) != 0 {
            self.failures.store(0, Ordering::Relaxed);
            self.open_until_ms
                .store(now_ms.saturating_add(self.cooldown_ms), Ordering::Release);
        }
    }

    pub fn is_open(&self, now_ms: u64) -> bool {
        self.open_until_ms.load(Ordering::Acquire) > now_ms
    }
}

/// The Redis tier. Cheap to clone.
#[derive(Clone)]
pub struct RedisTier {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Conn,
    settings: RedisSettings,
    breaker: Breaker,
    clock: SharedClock,
    stats: RedisStats,
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

/// One request to Redis.
enum Op<'a> {
    Cmd(&'a redis::Cmd),
    Pipe(&'a redis::Pipeline),
    /// A command for one node of a Cluster (`host`, `port`); on a standalone server, the server.
    At(&'a redis::Cmd, &'a (String, u16)),
}

impl Conn {
    async fn exec<T: redis::FromRedisValue>(&self, op: Op<'_>) -> redis::RedisResult<T> {
        match self {
            Conn::Single(c) => {
                let mut c = c.clone();
                match op {
                    Op::Cmd(cmd) | Op::At(cmd, _) => cmd.query_async(&mut c).await,
                    Op::Pipe(p) => p.query_async(&mut c).await,
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

impl std::fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTier")
            .field("prefix", &self.inner.settings.prefix)
            .field("cluster", &self.inner.settings.cluster)
            .field("breaker", &self.inner.breaker)
            .finish()
    }
}

/// The outcome of one guarded operation.
enum Guarded<T> {
    Done(T),
    Failed,
}

/// What a fetch-lock attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// This replica holds it: go upstream; the fill releases it.
    Taken,
    /// Another replica is fetching the key.
    Held,
    /// No lock (turned off, or Redis unavailable): go upstream.
    Unavailable,
}

impl RedisTier {
    /// A tier for `settings.urls`; connects lazily (a Redis that is down at start is
    /// skipped like one that goes down later). Must be called within a Tokio runtime.
    pub fn open(settings: RedisSettings, clock: SharedClock) -> Result<Self, RedisError> {
        let connect_timeout = settings.timeout.max(Duration::from_millis(200));
        let conn = if settings.cluster {
            let client = ClusterClient::builder(settings.urls.clone())
                .connection_timeout(connect_timeout)
                .response_timeout(settings.timeout)
                .retries(1)
                .build()
                .map_err(|e| RedisError(e.to_string()))?;
            Conn::Cluster(Box::new(Cluster {
                client,
                conn: tokio::sync::OnceCell::new(),
            }))
        } else {
            let [url] = settings.urls.as_slice() else {
                return Err(RedisError(
                    "a standalone Redis has exactly one URL".to_string(),
                ));
            };
            let client =
                redis::Client::open(url.as_str()).map_err(|e| RedisError(e.to_string()))?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(connect_timeout))
                .set_response_timeout(Some(settings.timeout))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_secs(1));
            Conn::Single(
                ConnectionManager::new_lazy_with_config(client, config)
                    .map_err(|e| RedisError(e.to_string()))?,
            )
        };
        Ok(RedisTier {
            inner: Arc::new(Inner {
                conn,
                breaker: Breaker::new(settings.breaker_failures, settings.breaker_cooldown),
                settings,
                clock,
                stats: RedisStats::default(),
            }),
        })
    }

    /// The Redis key of a cache key.
    pub fn key(&self, cache_key: &str) -> String {
        format!("{}:{{{cache_key}}}", self.inner.settings.prefix)
    }

    /// The set of the Redis keys of the entries tagged `tag` (its own slot).
    fn tag_key(&self, tag: &str) -> String {
        format!("{}:tag:{{{tag}}}", self.inner.settings.prefix)
    }

    /// The key of a cache key's fetch lock (in the same slot as its value).
    fn lock_key(&self, cache_key: &str) -> String {
        format!("{}:lock:{{{cache_key}}}", self.inner.settings.prefix)
    }

    /// Runs `op` under the deadline and the breaker.
    async fn run<T: redis::FromRedisValue>(&self, op: Op<'_>) -> Guarded<T> {
        let i = &self.inner;
        let now = i.clock.unix_millis();
        if !i.breaker.allow(now) {
            i.stats.skipped.fetch_add(1, Ordering::Relaxed);
            return Guarded::Failed;
        }
        match tokio::time::timeout(i.settings.timeout, i.conn.exec::<T>(op)).await {
            Ok(Ok(v)) => {
                i.breaker.success();
                Guarded::Done(v)
            }
            Ok(Err(e)) => {
                i.stats.errors.fetch_add(1, Ordering::Relaxed);
                i.breaker.failure(i.clock.unix_millis());
                tracing::debug!(error = %e, "redis cache operation failed");
                Guarded::Failed
            }
            Err(_) => {
                i.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                i.breaker.failure(i.clock.unix_millis());
                Guarded::Failed
            }
        }
    }

    /// The record under `cache_key`, if Redis has it and answers in time.
    pub async fn get(&self, cache_key: &str) -> Option<Record> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key(cache_key));
        match self.run::<Option<Vec<u8>>>(Op::Cmd(&cmd)).await {
            Guarded::Done(Some(v)) => match codec::decode(&v) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::debug!(error = %e, "unreadable redis cache record; a miss");
                    None
                }
            },
            _ => None,
        }
    }

    /// Tries to take `cache_key`'s fetch lock (for `lock_wait`: a replica that dies
    /// holding it delays the others by no more than that).
    pub async fn lock(&self, cache_key: &str) -> Lock {
        let wait = self.inner.settings.lock_wait;
        if wait.is_zero() {
            return Lock::Unavailable;
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.lock_key(cache_key))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
        match self.run::<Option<String>>(Op::Cmd(&cmd)).await {
            Guarded::Done(Some(_)) => Lock::Taken,
            Guarded::Done(None) => Lock::Held,
            Guarded::Failed => Lock::Unavailable,
        }
    }

    /// While another replica holds `cache_key`'s fetch lock: its record if it is there
    /// now, and whether the lock is still held; `None` when Redis failed.
    async fn peek(&self, cache_key: &str) -> Option<(Option<Record>, bool)> {
        let mut pipe = redis::pipe();
        pipe.cmd("GET")
            .arg(self.key(cache_key))
            .cmd("EXISTS")
            .arg(self.lock_key(cache_key));
        let Guarded::Done((value, held)) =
            self.run::<(Option<Vec<u8>>, bool)>(Op::Pipe(&pipe)).await
        else {
            return None;
        };
        Some((value.and_then(|v| codec::decode(&v).ok()), held))
    }

    /// Waits, while another replica holds `cache_key`'s fetch lock, for the record it
    /// stores, polling with growing pauses for at most `lock_wait`. The record is returned
    /// with what `usable` says of it (e.g. its age) when `usable` accepts it; `None` when
    /// it is not, when the lock went without a record, or when Redis failed.
    pub async fn wait_for_peer<T>(
        &self,
        cache_key: &str,
        usable: impl Fn(&Record) -> Option<T>,
    ) -> Option<(Record, T)> {
        let stats = &self.inner.stats;
        stats.lock_waits.fetch_add(1, Ordering::Relaxed);
        // The wait is counted in pauses slept, each Redis call adding at most its own
        // deadline.
        let (limit, mut waited) = (self.inner.settings.lock_wait, Duration::ZERO);
        let mut pause = Duration::from_millis(5);
        while waited < limit {
            let p = pause.min(limit - waited);
            tokio::time::sleep(p).await;
            waited += p;
            match self.peek(cache_key).await {
                Some((Some(record), _)) => {
                    let t = usable(&record)?;
                    stats.lock_hits.fetch_add(1, Ordering::Relaxed);
                    return Some((record, t));
                }
                // Still fetching: wait on.
                Some((None, true)) => pause = (pause * 2).min(Duration::from_millis(100)),
                // Given up without an answer, or Redis failed: go upstream.
                _ => return None,
            }
        }
        None
    }

    /// Releases `cache_key`'s fetch lock (after a failed fetch), from a task of its own.
    pub fn unlock(&self, cache_key: &str) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return; // Outside a runtime: the lock expires by itself.
        };
        let (tier, key) = (self.clone(), self.lock_key(cache_key));
        rt.spawn(async move {
            let mut cmd = redis::cmd("UNLINK");
            cmd.arg(key);
            let _ = tier.run::<u64>(Op::Cmd(&cmd)).await;
        });
    }

    /// Stores `record` for its remaining freshness and releases the key's fetch lock, from
    /// a task of its own. The key joins the set of each of its tags; a set lives as long as
    /// its longest-lived member (members that expired before it are harmless: removing
    /// them removes nothing).
    pub fn put(&self, cache_key: &str, record: Record) {
        let remaining = record
            .expires_at_ms()
            .saturating_sub(self.inner.clock.unix_millis());
        if remaining == 0 {
            return;
        }
        let (tier, key, lock) = (self.clone(), self.key(cache_key), self.lock_key(cache_key));
        tokio::spawn(async move {
            let i = &tier.inner;
            let compress_above = usize::try_from(i.settings.compress_above).unwrap_or(usize::MAX);
            let e = codec::encode(&record, compress_above);
            let mut pipe = redis::pipe();
            pipe.cmd("SET")
                .arg(&key)
                .arg(&e.bytes)
                .arg("PX")
                .arg(remaining)
                .ignore()
                .cmd("UNLINK")
                .arg(&lock)
                .ignore();
            let Guarded::Done(()) = tier.run::<()>(Op::Pipe(&pipe)).await else {
                return;
            };
            for tag in &record.labels.tags {
                // One pipeline per set: each set is in a slot of its own. PEXPIRE NX gives
                // a new set a TTL, GT lengthens it (GT alone treats "none" as forever).
                let set = tier.tag_key(tag);
                let mut pipe = redis::pipe();
                pipe.cmd("SADD").arg(&set).arg(&key).ignore();
                for opt in ["NX", "GT"] {
                    pipe.cmd("PEXPIRE")
                        .arg(&set)
                        .arg(remaining)
                        .arg(opt)
                        .ignore();
                }
                let _ = tier.run::<()>(Op::Pipe(&pipe)).await;
            }
            // Counted once the entry and its tags are written.
            i.stats.writes.fetch_add(1, Ordering::Relaxed);
            i.stats.body.add(&e);
        });
    }

    /// The Pub/Sub channel of invalidations.
    fn invalidation_channel(&self) -> String {
        format!("{}:invalidations", self.inner.settings.prefix)
    }

    /// Tells every replica listening on this Redis to drop what `sel` selects from its
    /// memory tier. Whether Redis took the message.
    pub async fn announce(&self, sel: &Selector) -> bool {
        let Ok(payload) = serde_json::to_string(sel) else {
            return false;
        };
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(self.invalidation_channel()).arg(payload);
        matches!(self.run::<i64>(Op::Cmd(&publish)).await, Guarded::Done(_))
    }

    /// Listens to the invalidations replicas announce, on a connection of its own (RESP3,
    /// resubscribed after every reconnection; on a Cluster, to the first node: Pub/Sub
    /// messages reach every node). `apply` gets each selector. Invalidations announced
    /// while the connection is down are not received (logged when it drops). The task
    /// ends when the returned handle is aborted.
    pub fn listen(
        &self,
        apply: impl Fn(Selector) + Send + 'static,
    ) -> Result<tokio::task::AbortHandle, RedisError> {
        use redis::IntoConnectionInfo;
        let err = |e: redis::RedisError| RedisError(e.to_string());
        let settings = &self.inner.settings;
        let url = settings
            .urls
            .first()
            .ok_or_else(|| RedisError("no URL".into()))?;
        let info = url.as_str().into_connection_info().map_err(err)?;
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(resp3)).map_err(err)?;
        let (tx, mut pushes) = tokio::sync::mpsc::unbounded_channel();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout.max(Duration::from_millis(200))))
            .set_max_delay(Duration::from_secs(1))
            .set_push_sender(tx)
            .set_automatic_resubscription();
        let mut conn = ConnectionManager::new_lazy_with_config(client, config).map_err(err)?;
        let channel = self.invalidation_channel();
        let retry = settings.breaker_cooldown;
        let task = tokio::spawn(async move {
            // Until the first subscription holds; the manager renews it after reconnecting.
            while let Err(e) = conn.subscribe(&channel).await {
                tracing::debug!(error = %e, "cannot subscribe to invalidations yet");
                tokio::time::sleep(retry).await;
            }
            while let Some(push) = pushes.recv().await {
                match push.kind {
                    redis::PushKind::Message => {
                        let selector = match push.data.get(1) {
                            Some(redis::Value::BulkString(b)) => serde_json::from_slice(b).ok(),
                            _ => None,
                        };
                        match selector {
                            Some(sel) => apply(sel),
                            None => tracing::warn!("unreadable invalidation message ignored"),
                        }
                    }
                    redis::PushKind::Disconnection => tracing::warn!(
                        "lost the invalidation channel: invalidations announced by other \
                         replicas until it is back do not reach this memory tier"
                    ),
                    _ => {}
                }
            }
        });
        Ok(task.abort_handle())
    }

    /// Removes the entries `sel` selects: one key directly, a tag through its set, any
    /// other selector by walking the keyspace of the server (or of every Cluster primary)
    /// with SCAN. How many, or `None` when Redis failed part-way.
    pub async fn remove_matching(&self, sel: &Selector) -> Option<u64> {
        let prefix = &self.inner.settings.prefix;
        match sel {
            Selector::Key(name) => self.unlink(vec![self.key(name)]).await,
            Selector::Tag(tag) => {
                let set = self.tag_key(tag);
                let mut members = redis::cmd("SMEMBERS");
                members.arg(&set);
                let Guarded::Done(keys) = self.run::<Vec<String>>(Op::Cmd(&members)).await else {
                    return None;
                };
                let n = self.unlink(keys).await?;
                self.unlink(vec![set]).await?;
                Some(n)
            }
            _ => {
                let pattern = sel.glob()?;
                let nodes = if self.inner.settings.cluster {
                    self.primaries().await?
                } else {
                    vec![(String::new(), 0)]
                };
                let mut removed = 0;
                for node in &nodes {
                    removed += self
                        .remove_on(node, &format!("{prefix}:{{{pattern}}}"))
                        .await?;
                    if *sel == Selector::All {
                        self.remove_on(node, &format!("{prefix}:tag:{{*}}")).await?;
                    }
                }
                Some(removed)
            }
        }
    }

    /// Unlinks `keys` (of any slots: the Cluster client splits the command by slot); how
    /// many existed.
    async fn unlink(&self, keys: Vec<String>) -> Option<u64> {
        if keys.is_empty() {
            return Some(0);
        }
        let mut unlink = redis::cmd("UNLINK");
        unlink.arg(keys);
        match self.run::<u64>(Op::Cmd(&unlink)).await {
            Guarded::Done(n) => Some(n),
            Guarded::Failed => None,
        }
    }

    /// The addresses of the Cluster's primaries.
    async fn primaries(&self) -> Option<Vec<(String, u16)>> {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("NODES");
        let Guarded::Done(text) = self.run::<String>(Op::Cmd(&cmd)).await else {
            return None;
        };
        Some(parse_primaries(&text))
    }

    /// Removes the keys matching `glob` on one node.
    async fn remove_on(&self, node: &(String, u16), glob: &str) -> Option<u64> {
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(glob)
                .arg("COUNT")
                .arg(500);
            let Guarded::Done((next, keys)) =
                self.run::<(u64, Vec<String>)>(Op::At(&scan, node)).await
            else {
                return None;
            };
            removed += self.unlink(keys).await?;
            if next == 0 {
                return Some(removed);
            }
            cursor = next;
        }
    }

    pub fn snapshot(&self) -> RedisSnapshot {
        let s = &self.inner.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (body_raw, body_stored) = s.body.get();
        RedisSnapshot {
            errors: get(&s.errors),
            timeouts: get(&s.timeouts),
            skipped: get(&s.skipped),
            writes: get(&s.writes),
            body_raw,
            body_stored,
            lock_waits: get(&s.lock_waits),
            lock_hits: get(&s.lock_hits),
            open: self.inner.breaker.is_open(self.inner.clock.unix_millis()),
        }
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

    #[test]
    fn the_breaker_opens_after_consecutive_failures_and_probes_after_the_cooldown() {
        let b = Breaker::new(3, Duration::from_secs(5));
        assert!(b.allow(0));
        b.failure(0);
        b.failure(1);
        b.success();
        b.failure(2);
        b.failure(3);
        assert!(b.allow(3), "two failures after a success must not open it");
        b.failure(4);
        assert!(b.is_open(4));
        assert!(!b.allow(4_999 + 4));
        // The cooldown is over: one probe goes through, the others still skip.
        assert!(b.allow(5_004));
        assert!(!b.allow(5_005));
        // A failed probe reopens it at once.
        b.failure(5_006);
        assert!(!b.allow(5_007));
        assert!(b.allow(10_006));
        b.success();
        assert!(!b.is_open(10_007));
        assert!(b.allow(10_007) && b.allow(10_008));
    }
}
