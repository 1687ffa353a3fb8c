//! L2: Redis, shared by every gateway replica.
//!
//! Values are [`codec`] records (compressed above the threshold) under
//! `<prefix>:{<cache key>}`; the braces are a Cluster hash tag, so that every key about one
//! entry (the value, its fetch lock) lives in one slot. Every key is written with a TTL: the
//! entry's remaining freshness, or the lock's few seconds.
//!
//! Redis must never make a request fail or wait long: every call goes through a
//! [`flowgate_redis::Link`] (a deadline, a circuit breaker), and writes are sent from
//! spawned tasks and never awaited by a request.
//!
//! Replicas tell each other about invalidations on the Pub/Sub channel
//! `<prefix>:invalidations` ([`RedisTier::announce`], [`RedisTier::listen`]), so that an
//! invalidation reaches every replica's memory tier, not only the one that got the call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use flowgate_clock::SharedClock;
use flowgate_redis::{Link, LinkSettings, Op};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::codec::{self, Record};
use crate::invalidate::Selector;

/// Where and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// The server or Cluster, the deadline of each call, the breaker.
    pub link: LinkSettings,
    /// Key prefix; several deployments can share one Redis.
    pub prefix: String,
    /// Bodies larger than this are stored zstd-compressed.
    pub compress_above: u64,
    /// How long a miss waits for the replica holding the key's fetch lock (zero: no lock).
    pub lock_wait: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("cache.redis.url: {0}")]
pub struct RedisError(String);

/// Counters of the Redis tier (its link counts the calls that failed).
#[derive(Debug, Default)]
pub struct RedisStats {
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

/// The Redis tier. Cheap to clone.
#[derive(Clone)]
pub struct RedisTier {
    inner: Arc<Inner>,
}

struct Inner {
    link: Link,
    settings: RedisSettings,
    clock: SharedClock,
    stats: RedisStats,
}

impl std::fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTier")
            .field("prefix", &self.inner.settings.prefix)
            .field("link", &self.inner.link)
            .finish()
    }
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
        let link = Link::open(settings.link.clone(), clock.clone())
            .map_err(|e| RedisError(e.to_string()))?;
        Ok(RedisTier {
            inner: Arc::new(Inner {
                link,
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

    /// Runs `op` through the link: `None` when Redis failed or is skipped.
    async fn run<T: redis::FromRedisValue>(&self, op: Op<'_>) -> Option<T> {
        self.inner.link.run(op).await
    }

    /// The record under `cache_key`, if Redis has it and answers in time.
    pub async fn get(&self, cache_key: &str) -> Option<Record> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key(cache_key));
        match self.run::<Option<Vec<u8>>>(Op::Cmd(&cmd)).await {
            Some(Some(v)) => match codec::decode(&v) {
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
            Some(Some(_)) => Lock::Taken,
            Some(None) => Lock::Held,
            None => Lock::Unavailable,
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
        let (value, held) = self.run::<(Option<Vec<u8>>, bool)>(Op::Pipe(&pipe)).await?;
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
            if tier.run::<()>(Op::Pipe(&pipe)).await.is_none() {
                return;
            }
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
        self.run::<i64>(Op::Cmd(&publish)).await.is_some()
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
            .link
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
            .set_connection_timeout(Some(settings.link.timeout.max(Duration::from_millis(200))))
            .set_max_delay(Duration::from_secs(1))
            .set_push_sender(tx)
            .set_automatic_resubscription();
        let mut conn = ConnectionManager::new_lazy_with_config(client, config).map_err(err)?;
        let channel = self.invalidation_channel();
        let retry = settings.link.breaker_cooldown;
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
                let keys = self.run::<Vec<String>>(Op::Cmd(&members)).await?;
                let n = self.unlink(keys).await?;
                self.unlink(vec![set]).await?;
                Some(n)
            }
            _ => {
                let pattern = sel.glob()?;
                let nodes = if self.inner.settings.link.cluster {
                    self.inner.link.primaries().await?
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
        self.run::<u64>(Op::Cmd(&unlink)).await
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
            let (next, keys) = self.run::<(u64, Vec<String>)>(Op::At(&scan, node)).await?;
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
        let link = self.inner.link.snapshot();
        RedisSnapshot {
            errors: link.errors,
            timeouts: link.timeouts,
            skipped: link.skipped,
            writes: get(&s.writes),
            body_raw,
            body_stored,
            lock_waits: get(&s.lock_waits),
            lock_hits: get(&s.lock_hits),
            open: link.open,
        }
    }
}
