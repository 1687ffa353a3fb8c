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

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use flowgate_clock::SharedClock;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::codec::{self, Record};

/// Where and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://host:port/db` (or `rediss://` where the client supports TLS).
    pub url: String,
    /// Key prefix; several deployments can share one Redis.
    pub prefix: String,
    /// Deadline of each operation.
    pub timeout: Duration,
    pub breaker_failures: u32,
    pub breaker_cooldown: Duration,
    /// Bodies larger than this are stored zstd-compressed.
    pub compress_above: u64,
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
    pub body_raw: AtomicU64,
    pub body_stored: AtomicU64,
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
    /// Whether the breaker currently keeps requests away from Redis.
    pub open: bool,
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
    conn: ConnectionManager,
    settings: RedisSettings,
    breaker: Breaker,
    clock: SharedClock,
    stats: RedisStats,
}

impl std::fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTier")
            .field("prefix", &self.inner.settings.prefix)
            .field("breaker", &self.inner.breaker)
            .finish()
    }
}

/// The outcome of one guarded operation.
enum Guarded<T> {
    Done(T),
    Failed,
}

impl RedisTier {
    /// A tier for `settings.url`; connects lazily (a Redis that is down at start is skipped
    /// like one that goes down later). Must be called within a Tokio runtime.
    pub fn open(settings: RedisSettings, clock: SharedClock) -> Result<Self, RedisError> {
        let client =
            redis::Client::open(settings.url.as_str()).map_err(|e| RedisError(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout.max(Duration::from_millis(200))))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| RedisError(e.to_string()))?;
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

    /// Runs `cmd` under the deadline and the breaker.
    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Guarded<T> {
        let i = &self.inner;
        let now = i.clock.unix_millis();
        if !i.breaker.allow(now) {
            i.stats.skipped.fetch_add(1, Ordering::Relaxed);
            return Guarded::Failed;
        }
        let mut conn = i.conn.clone();
        match tokio::time::timeout(i.settings.timeout, cmd.query_async::<T>(&mut conn)).await {
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
        match self.run::<Option<Vec<u8>>>(cmd).await {
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

    /// Stores `record` for its remaining freshness, from a task of its own.
    pub fn put(&self, cache_key: &str, record: Record) {
        let remaining = record
            .expires_at_ms()
            .saturating_sub(self.inner.clock.unix_millis());
        if remaining == 0 {
            return;
        }
        let (tier, key) = (self.clone(), self.key(cache_key));
        tokio::spawn(async move {
            let i = &tier.inner;
            let compress_above = usize::try_from(i.settings.compress_above).unwrap_or(usize::MAX);
            let e = codec::encode(&record, compress_above);
            let mut cmd = redis::cmd("SET");
            cmd.arg(&key).arg(e.bytes).arg("PX").arg(remaining);
            if let Guarded::Done(()) = tier.run::<()>(cmd).await {
                i.stats.writes.fetch_add(1, Ordering::Relaxed);
                i.stats
                    .body_raw
                    .fetch_add(e.body_raw as u64, Ordering::Relaxed);
                i.stats
                    .body_stored
                    .fetch_add(e.body_stored as u64, Ordering::Relaxed);
            }
        });
    }

    /// Removes one entry; how many were removed (0 or 1), `None` when Redis failed.
    pub async fn remove(&self, cache_key: &str) -> Option<u64> {
        let mut cmd = redis::cmd("UNLINK");
        cmd.arg(self.key(cache_key));
        match self.run::<u64>(cmd).await {
            Guarded::Done(n) => Some(n),
            Guarded::Failed => None,
        }
    }

    /// Removes every entry of this prefix whose cache key matches the glob `pattern`
    /// (`*` for all), walking the keyspace with SCAN; how many, or `None` when Redis failed
    /// part-way.
    pub async fn remove_matching(&self, pattern: &str) -> Option<u64> {
        let glob = format!("{}:{{{pattern}}}", self.inner.settings.prefix);
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&glob)
                .arg("COUNT")
                .arg(500);
            let Guarded::Done((next, keys)) = self.run::<(u64, Vec<String>)>(scan).await else {
                return None;
            };
            if !keys.is_empty() {
                let mut unlink = redis::cmd("UNLINK");
                for k in &keys {
                    unlink.arg(k);
                }
                let Guarded::Done(n) = self.run::<u64>(unlink).await else {
                    return None;
                };
                removed += n;
            }
            if next == 0 {
                return Some(removed);
            }
            cursor = next;
        }
    }

    pub fn snapshot(&self) -> RedisSnapshot {
        let s = &self.inner.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RedisSnapshot {
            errors: get(&s.errors),
            timeouts: get(&s.timeouts),
            skipped: get(&s.skipped),
            writes: get(&s.writes),
            body_raw: get(&s.body_raw),
            body_stored: get(&s.body_stored),
            open: self.inner.breaker.is_open(self.inner.clock.unix_millis()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
