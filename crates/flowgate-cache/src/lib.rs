//! flowgate's response cache.
//!
//! A request is turned into a [`CacheKey`] (exhaustive, canonical: [`key`], [`openai`],
//! [`http`]);
//! [`policy`] decides whether it may be served from the cache and stored; [`Cache`] looks it
//! up in its tiers and, on a miss, makes concurrent misses of the same key wait for one
//! upstream request ([`flight`]). The crate knows nothing of HTTP or routes: the gateway
//! maps requests and responses to and from [`CachedResponse`].
//!
//! Tiers: memory (L1, [`memory`]), Redis (L2, [`remote`]) and disk (L3, [`disk`]), the
//! lower two storing compressed records ([`codec`]); streams ([`stream`], [`fanout`]);
//! stale-while-revalidate and refresh-ahead; invalidation by key, pattern, namespace and
//! tag ([`invalidate`]).

pub mod advice;
pub mod codec;
pub mod disk;
pub mod entry;
pub mod fanout;
pub mod flight;
pub mod ghost;
pub mod http;
pub mod invalidate;
pub mod key;
#[cfg(feature = "tower")]
pub mod layer;
pub mod memory;
pub mod openai;
pub mod policy;
mod pressure;
pub mod remote;
mod stats;
pub mod stream;
#[cfg(feature = "tower")]
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use flowgate_clock::SharedClock;

pub use entry::{CachedResponse, Entry, Freshness, Labels, Lifetime, Usage};
pub use fanout::{Share, StreamCut, Subscription};
pub use flight::{Follower, Join, Leader, Waited};
pub use key::{CacheKey, KeyBuilder};
pub use policy::{BypassReason, Decision, Directives, Mode};
pub use stats::{
    Account, CacheStats, CategorySnapshot, EXPIRED_WITHIN_TTLS, ExpiredWithin, StatsSnapshot,
};

use codec::Record;
use disk::{DiskError, DiskReader, DiskSettings, DiskTier};
use flight::Flights;
use memory::MemoryTier;
use remote::{RedisError, RedisSettings, RedisTier};

/// Cache-wide settings (fixed for the life of the cache).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// Bytes of responses the memory tier holds (0: no memory tier).
    pub memory_bytes: u64,
    /// Largest response stored.
    pub max_entry_bytes: u64,
    /// How long a miss waits for a concurrent identical one before going upstream itself.
    pub coalesce_wait: Duration,
    /// The Redis tier, when there is one.
    pub redis: Option<RedisSettings>,
    /// The disk tier, when there is one.
    pub disk: Option<DiskSettings>,
    /// A popular entry hit this close to its expiry is refreshed in the background (zero:
    /// never).
    pub refresh_ahead: Duration,
    /// Hits since it was stored that make an entry popular.
    pub popular_hits: u64,
}

/// What an invalidation removed, per tier (`None` for a tier that is off; for Redis,
/// `Some(None)` when it could not be reached, so the caller can retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Invalidated {
    pub memory: Option<u64>,
    pub redis: Option<Option<u64>>,
    pub disk: Option<u64>,
}

/// A tier that could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error(transparent)]
    Redis(#[from] RedisError),
}

/// Which tier answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Memory,
    Redis,
    Disk,
}

/// The answer of [`Cache::lookup_lower`].
#[derive(Debug)]
pub enum Lower {
    /// An entry from a lower tier, now also in the tiers above it.
    Hit(Hit),
    /// Not there either: go upstream as the flight's leader.
    Miss(Leader),
}

/// The answer of [`Cache::lookup`].
#[derive(Debug)]
pub enum Lookup {
    /// An entry to answer with.
    Hit(Hit),
    /// Nobody is fetching this key: go upstream, then [`Cache::fill`] with the `Leader`.
    Miss(Leader),
    /// An identical request is upstream: wait for it ([`Follower::wait`]).
    Coalesced(Follower),
}

/// A lookup: whether the tiers are read (`false`: the client sent `no-cache`), the oldest
/// entry accepted, and who asks (for the accounting).
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub read: bool,
    pub max_age: Option<Duration>,
    pub account: Account<'a>,
}

/// An entry found in a tier.
#[derive(Debug)]
pub struct Hit {
    pub entry: Arc<Entry>,
    pub tier: Tier,
    pub age: Duration,
    /// Past its TTL, within its stale window.
    pub stale: bool,
    /// When set, this request should refresh the entry in the background (it is stale, or
    /// popular and about to expire) and fill the cache with this leader.
    pub refresh: Option<Leader>,
}

/// The tiered read-through cache.
#[derive(Debug)]
pub struct Cache {
    settings: CacheSettings,
    memory: Option<MemoryTier>,
    redis: Option<RedisTier>,
    disk: Option<(DiskTier, DiskReader)>,
    flights: Flights,
    clock: SharedClock,
    stats: CacheStats,
    /// What was kept and is gone, for the misses' reasons.
    ghosts: ghost::Ghosts,
    /// The task applying other replicas' invalidations to the memory tier.
    listener: Option<tokio::task::AbortHandle>,
    /// What memory pressure asks of it.
    pressure: pressure::Pressure,
}

impl Drop for Cache {
    fn drop(&mut self) {
        if let Some(l) = &self.listener {
            l.abort();
        }
    }
}

impl Cache {
    /// Opens the cache's tiers (within a Tokio runtime when there is a Redis tier).
    pub fn open(settings: CacheSettings, clock: SharedClock) -> Result<Self, OpenError> {
        let redis = match &settings.redis {
            Some(r) => Some(RedisTier::open(r.clone(), clock.clone())?),
            None => None,
        };
        let disk = match &settings.disk {
            Some(d) => {
                let tier = DiskTier::open(d, clock.clone())?;
                let reader = tier.reader();
                Some((tier, reader))
            }
            None => None,
        };
        let memory = (settings.memory_bytes > 0).then(|| MemoryTier::new(settings.memory_bytes));
        // Other replicas' invalidations reach this memory tier.
        let listener = match (&redis, &memory) {
            (Some(r), Some(m)) => {
                let m = m.clone();
                Some(r.listen(move |sel| _ = m.remove_matching(&sel))?)
            }
            _ => None,
        };
        Ok(Cache {
            memory,
            redis,
            disk,
            settings,
            flights: Flights::default(),
            clock,
            stats: CacheStats::default(),
            ghosts: ghost::Ghosts::default(),
            listener,
            pressure: pressure::Pressure::default(),
        })
    }

    pub fn settings(&self) -> &CacheSettings {
        &self.settings
    }

    /// Looks `key` up. A query that does not read (the client sent `no-cache`) skips the
    /// tiers but still joins the flight, so that a stampede of `no-cache` requests still
    /// goes upstream once. Entries older than the query's `max_age` are refused.
    pub fn lookup(&self, key: &CacheKey, q: &Query<'_>) -> Lookup {
        if q.read
            && let Some(memory) = &self.memory
            && let Some(entry) = memory.get(key)
            && let age = entry.age(self.clock.now())
            && q.max_age.is_none_or(|m| age <= m)
            && let Some(stale) = match entry.freshness(age) {
                Freshness::Fresh => Some(false),
                Freshness::Stale => Some(true),
                Freshness::Expired => None,
            }
        {
            // A stale entry is always refreshed; a fresh one when it is popular and close
            // to its expiry. Either way by one request at a time (the key's flight).
            let hits = if q.account.warming {
                entry.hits()
            } else {
                entry.hit()
            };
            let refresh = (stale || self.refresh_ahead(&entry, age, hits))
                .then(|| self.flights.try_lead(key))
                .flatten();
            return Lookup::Hit(self.answered(
                Hit {
                    entry,
                    tier: Tier::Memory,
                    age,
                    stale,
                    refresh,
                },
                &q.account,
            ));
        }
        match self.flights.join(key) {
            Join::Leader(l) => Lookup::Miss(l),
            Join::Follower(f) => {
                self.stats.coalesced(&q.account);
                Lookup::Coalesced(f)
            }
        }
    }

    /// Whether a fresh entry, `age` old and hit `hits` times, is due for refresh-ahead.
    fn refresh_ahead(&self, entry: &Entry, age: Duration, hits: u64) -> bool {
        let ahead = self.settings.refresh_ahead;
        !ahead.is_zero()
            && hits >= self.settings.popular_hits
            && entry.life.ttl.saturating_sub(age) <= ahead
    }

    /// Counts an answer from the cache: a hit of its tier or a stale serve, and the
    /// refresh it asks for.
    fn answered(&self, hit: Hit, account: &Account<'_>) -> Hit {
        let usage = hit.entry.response.usage;
        if hit.stale {
            self.stats.stale(usage, account);
        } else {
            self.stats.hit(hit.tier, usage, account);
        }
        if hit.refresh.is_some() {
            self.stats.refresh();
        }
        hit
    }

    /// After a memory miss, as the flight's leader: the tiers below memory (read as for
    /// [`Cache::lookup`]). A fresh entry found there is promoted, with its remaining
    /// freshness, and handed to the requests waiting on the flight. Misses are counted
    /// here.
    ///
    /// With Redis, a miss then takes the key's fetch lock, so that one replica goes
    /// upstream for it; when another replica holds it and `wait_for_peers` is set, this
    /// polls Redis for that replica's answer, for at most the lock's wait.
    pub async fn lookup_lower(
        &self,
        mut leader: Leader,
        q: &Query<'_>,
        wait_for_peers: bool,
    ) -> Lower {
        let (read, max_age) = (q.read, q.max_age);
        let mut found = None;
        if read {
            let name = leader.key().to_string();
            found = self.read_lower(&leader, &name, max_age).await;
            if found.is_none()
                && let Some(redis) = &self.redis
            {
                found = self
                    .fetch_lock(redis, &mut leader, &name, max_age, wait_for_peers)
                    .await;
            }
        }
        match found {
            Some((entry, tier, age)) => {
                if !q.account.warming {
                    entry.hit();
                }
                // Stale: answered at once, and this leader refreshes it; the requests
                // waiting on the flight get the refreshed answer.
                let stale = entry.freshness(age) == Freshness::Stale;
                let refresh = if stale {
                    Some(leader)
                } else {
                    leader.publish(entry.clone());
                    None
                };
                Lower::Hit(self.answered(
                    Hit {
                        entry,
                        tier,
                        age,
                        stale,
                        refresh,
                    },
                    &q.account,
                ))
            }
            None => {
                let kind = self.ghosts.miss(leader.key(), self.clock.now());
                self.stats.miss(&q.account, kind);
                Lower::Miss(leader)
            }
        }
    }

    /// Redis, then disk; a fresh entry is promoted to the tiers above the one that had it.
    async fn read_lower(
        &self,
        leader: &Leader,
        name: &str,
        max_age: Option<Duration>,
    ) -> Option<(Arc<Entry>, Tier, Duration)> {
        if let Some(redis) = &self.redis
            && let Some(record) = redis.get(name).await
            && let Some(age) = self.usable_age(&record, max_age)
        {
            return Some(self.promote(leader.key(), record, Tier::Redis, age));
        }
        if let Some((_, reader)) = &self.disk
            && let Some(record) = self.read_disk(reader, name.to_string()).await
            && let Some(age) = self.usable_age(&record, max_age)
        {
            if let Some(redis) = &self.redis {
                redis.put(name, record.clone());
            }
            return Some(self.promote(leader.key(), record, Tier::Disk, age));
        }
        None
    }

    /// Takes the key's fetch lock in Redis for this leader (released by its fill, or when it
    /// ends without one), or waits for the replica that holds it.
    async fn fetch_lock(
        &self,
        redis: &RedisTier,
        leader: &mut Leader,
        name: &str,
        max_age: Option<Duration>,
        wait: bool,
    ) -> Option<(Arc<Entry>, Tier, Duration)> {
        match redis.lock(name).await {
            remote::Lock::Taken => {
                let (r, n) = (redis.clone(), name.to_string());
                leader.on_abandon(move || r.unlock(&n));
                None
            }
            remote::Lock::Unavailable => None,
            remote::Lock::Held if !wait => None,
            remote::Lock::Held => {
                let (record, age) = redis
                    .wait_for_peer(name, |r| self.usable_age(r, max_age))
                    .await?;
                Some(self.promote(leader.key(), record, Tier::Redis, age))
            }
        }
    }

    /// A record from `tier`, `age` old, now also in memory.
    fn promote(
        &self,
        key: &CacheKey,
        record: Record,
        tier: Tier,
        age: Duration,
    ) -> (Arc<Entry>, Tier, Duration) {
        let now = self.clock.now();
        let life = record.life();
        let entry = Arc::new(Entry::new(
            record.response,
            now.checked_sub(age).unwrap_or(now),
            life,
            record.labels,
        ));
        self.ghosts
            .kept(key, entry.stored_at + life.total(), life.ttl);
        self.remember(key, &entry, now);
        (entry, tier, age)
    }

    /// Keeps `entry` in the memory tier, when there is one.
    fn remember(&self, key: &CacheKey, entry: &Arc<Entry>, now: std::time::Instant) {
        if let Some(memory) = &self.memory {
            memory.insert(key.clone(), entry.clone(), now);
        }
    }

    /// A record's age on the gateway's wall clock, if it may still be served (fresh, or
    /// stale within its window) and is no older than `max_age`.
    fn usable_age(&self, record: &Record, max_age: Option<Duration>) -> Option<Duration> {
        let age =
            Duration::from_millis(self.clock.unix_millis().saturating_sub(record.stored_at_ms));
        let usable = entry::freshness(record.life(), age) != Freshness::Expired
            && max_age.is_none_or(|m| age <= m);
        usable.then_some(age)
    }

    /// The record on disk under `name` (read on a blocking thread).
    async fn read_disk(&self, reader: &DiskReader, name: String) -> Option<Record> {
        let reader = reader.clone();
        match tokio::task::spawn_blocking(move || reader.get(&name)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "disk cache read failed; treated as a miss");
                None
            }
            Err(_) => None,
        }
    }

    /// Stores the leader's response with `life` and `labels` in every tier and hands it to
    /// the requests that waited. Responses over `max_entry_bytes` are not stored (the
    /// waiters go upstream).
    pub fn fill(
        &self,
        leader: Leader,
        response: CachedResponse,
        life: Lifetime,
        labels: Labels,
    ) -> bool {
        if response.body.len() as u64 > self.settings.max_entry_bytes
            || life.ttl.is_zero()
            || self.fills_paused()
        {
            self.stats.not_stored();
            return false;
        }
        let now = self.clock.now();
        if self.redis.is_some() || self.disk.is_some() {
            let name = leader.key().to_string();
            let record = Record::new(
                response.clone(),
                self.clock.unix_millis(),
                life,
                labels.clone(),
            );
            if let Some(redis) = &self.redis {
                redis.put(&name, record.clone());
            }
            if let Some((disk, _)) = &self.disk {
                disk.put(name, record);
            }
        }
        let entry = Arc::new(Entry::new(response, now, life, labels));
        self.ghosts.kept(leader.key(), now + life.total(), life.ttl);
        self.remember(leader.key(), &entry, now);
        self.stats.stored();
        leader.publish(entry);
        true
    }

    /// Waits until the writes queued so far reached the lower tiers.
    pub async fn flush(&self) {
        if let Some((disk, _)) = &self.disk {
            disk.flush().await;
        }
    }

    /// Counts a request the cache was not asked about.
    pub fn count_bypass(&self) {
        self.stats.bypass();
    }

    /// Removes the entries `sel` selects from every tier, and announces it through Redis to
    /// the other replicas' memory tiers. An exact key is removed directly, a tag through
    /// each tier's tag index; other selectors walk the keys of each tier (Redis with SCAN).
    pub async fn invalidate_matching(&self, sel: &invalidate::Selector) -> Invalidated {
        let memory = self.memory.as_ref().map(|m| m.remove_matching(sel));
        let disk = match &self.disk {
            Some((d, _)) => Some(d.remove(sel.clone()).await),
            None => None,
        };
        let redis = match &self.redis {
            Some(r) => {
                let removed = r.remove_matching(sel).await;
                // The other replicas' memory tiers.
                if !r.announce(sel).await {
                    tracing::warn!(
                        "could not announce the invalidation to other replicas: their memory \
                         tiers keep the entries until they expire"
                    );
                }
                Some(removed)
            }
            None => None,
        };
        Invalidated {
            memory,
            redis,
            disk,
        }
    }

    /// Counters and sizes.
    pub fn stats(&self) -> StatsSnapshot {
        let (entries, bytes, evictions) = self.memory.as_ref().map_or((0, 0, 0), MemoryTier::usage);
        let mut s = self.stats.snapshot(entries, bytes, evictions);
        s.disk = self.disk.as_ref().map(|(d, _)| d.stats().snapshot());
        s.redis = self.redis.as_ref().map(RedisTier::snapshot);
        s
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::Bytes;
    use flowgate_clock::ManualClock;

    /// Memory only: 1 MiB, entries up to 64 KiB.
    pub(crate) fn settings() -> CacheSettings {
        CacheSettings {
            memory_bytes: 1 << 20,
            max_entry_bytes: 1 << 16,
            coalesce_wait: Duration::from_secs(5),
            redis: None,
            disk: None,
            refresh_ahead: Duration::ZERO,
            popular_hits: 3,
        }
    }

    fn q(read: bool, max_age: Option<Duration>) -> Query<'static> {
        Query {
            read,
            max_age,
            account: Account::default(),
        }
    }

    fn fresh(secs: u64) -> Lifetime {
        Lifetime::fresh_for(Duration::from_secs(secs))
    }

    fn key(n: u8) -> CacheKey {
        let mut k = KeyBuilder::new("t");
        k.field("n", &[n]);
        k.finish("ns".into())
    }

    fn response(body: &'static str) -> CachedResponse {
        CachedResponse {
            status: 200,
            headers: vec![(
                "content-type".into(),
                Bytes::from_static(b"application/json"),
            )],
            body: Bytes::from_static(body.as_bytes()),
            usage: Usage {
                prompt_tokens: 10,
                completion_tokens: 5,
                ..Usage::default()
            },
        }
    }

    async fn lead(c: &Cache, k: &CacheKey) -> Leader {
        match c.lookup(k, &q(true, None)) {
            Lookup::Miss(l) => match c.lookup_lower(l, &q(true, None), true).await {
                Lower::Miss(l) => l,
                other => panic!("expected a miss below memory, got {other:?}"),
            },
            other => panic!("expected a miss, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn entries_are_fresh_for_their_ttl_on_the_gateway_clock() {
        let clock = ManualClock::at_epoch_2026();
        let c = Cache::open(settings(), clock.shared()).unwrap();
        let l = lead(&c, &key(1)).await;
        assert!(c.fill(l, response("{\"a\":1}"), fresh(60), Labels::default()));
        clock.advance(Duration::from_secs(59));
        match c.lookup(&key(1), &q(true, None)) {
            Lookup::Hit(Hit {
                entry, tier, age, ..
            }) => {
                assert_eq!(tier, Tier::Memory);
                assert_eq!(age, Duration::from_secs(59));
                assert_eq!(entry.age(clock.shared().now()), age);
            }
            other => panic!("{other:?}"),
        }
        clock.advance(Duration::from_secs(1));
        let _expired = lead(&c, &key(1)).await;
        let s = c.stats();
        assert_eq!((s.hits_memory, s.misses, s.stored), (1, 2, 1));
        assert_eq!(s.tokens_saved, 15);
    }

    #[tokio::test]
    async fn misses_say_whether_their_answer_had_expired_and_how_long_before() {
        let clock = ManualClock::at_epoch_2026();
        let c = Cache::open(settings(), clock.shared()).unwrap();
        let faq = Query {
            account: Account {
                category: Some("faq"),
                ..Account::default()
            },
            ..q(true, None)
        };
        let miss = |k: u8| {
            let c = &c;
            async move {
                let Lookup::Miss(l) = c.lookup(&key(k), &faq) else {
                    panic!("expected a miss")
                };
                let Lower::Miss(l) = c.lookup_lower(l, &faq, true).await else {
                    panic!("expected a miss below memory")
                };
                l
            }
        };
        // Three answers kept 60 s; asked again 10 s, 50 s and 200 s after they expired.
        for k in 1..=3 {
            let l = miss(k).await;
            assert!(c.fill(l, response("{}"), fresh(60), Labels::default()));
        }
        clock.advance(Duration::from_secs(70));
        drop(miss(1).await);
        clock.advance(Duration::from_secs(40));
        drop(miss(2).await);
        clock.advance(Duration::from_secs(150));
        drop(miss(3).await);
        // One dropped while servable: invalidated.
        let l = miss(4).await;
        assert!(c.fill(l, response("{}"), fresh(60), Labels::default()));
        c.invalidate_matching(&invalidate::Selector::Key(key(4).to_string()))
            .await;
        drop(miss(4).await);
        let s = c.stats();
        assert_eq!((s.misses, s.misses_expired, s.misses_dropped), (8, 3, 1));
        let [f] = s.categories.as_slice() else {
            panic!("{:?}", s.categories)
        };
        assert_eq!((f.misses_expired, f.misses_dropped), (3, 1));
        let within: Vec<(f64, u64)> = f
            .expired_within
            .iter()
            .map(|w| (w.ttls, w.misses))
            .collect();
        assert_eq!(
            within,
            [(0.25, 1), (0.5, 1), (1.0, 2), (2.0, 2), (4.0, 3)],
            "10 s, 50 s and 200 s past a 60 s TTL"
        );
    }

    #[tokio::test]
    async fn stale_entries_are_served_while_one_refresh_runs() {
        let clock = ManualClock::at_epoch_2026();
        let c = Cache::open(settings(), clock.shared()).unwrap();
        let life = Lifetime {
            ttl: Duration::from_secs(60),
            stale: Duration::from_secs(30),
        };
        let l = lead(&c, &key(5)).await;
        assert!(c.fill(l, response("{\"v\":1}"), life, Labels::default()));
        clock.advance(Duration::from_secs(70));
        let Lookup::Hit(first) = c.lookup(&key(5), &q(true, None)) else {
            panic!("a stale entry must be served")
        };
        assert!(first.stale);
        assert_eq!(first.age, Duration::from_secs(70));
        let refresh = first.refresh.expect("the first stale serve refreshes");
        let Lookup::Hit(second) = c.lookup(&key(5), &q(true, None)) else {
            panic!()
        };
        assert!(
            second.stale && second.refresh.is_none(),
            "one refresh at a time"
        );
        // max-age below its age refuses it even stale.
        assert!(matches!(
            c.lookup(&key(5), &q(true, Some(Duration::from_secs(65)))),
            Lookup::Coalesced(_)
        ));
        assert!(c.fill(refresh, response("{\"v\":2}"), life, Labels::default()));
        let Lookup::Hit(fresh) = c.lookup(&key(5), &q(true, None)) else {
            panic!()
        };
        assert!(!fresh.stale && fresh.refresh.is_none());
        assert_eq!(fresh.entry.response.body, "{\"v\":2}");
        clock.advance(Duration::from_secs(90));
        assert!(matches!(c.lookup(&key(5), &q(true, None)), Lookup::Miss(_)));
        let s = c.stats();
        assert_eq!((s.stale, s.refreshes, s.hits_memory), (2, 1, 1));
        assert_eq!(s.tokens_saved, 45);
    }

    #[tokio::test]
    async fn popular_entries_are_refreshed_shortly_before_they_expire() {
        let clock = ManualClock::at_epoch_2026();
        let c = Cache::open(
            CacheSettings {
                refresh_ahead: Duration::from_secs(10),
                ..settings()
            },
            clock.shared(),
        )
        .unwrap();
        for k in [6, 7] {
            let l = lead(&c, &key(k)).await;
            c.fill(l, response("{}"), fresh(60), Labels::default());
        }
        let refresh = |k| match c.lookup(&key(k), &q(true, None)) {
            Lookup::Hit(h) => h.refresh,
            other => panic!("{other:?}"),
        };
        clock.advance(Duration::from_secs(45));
        for _ in 0..3 {
            assert!(refresh(6).is_none(), "not yet close to its expiry");
        }
        clock.advance(Duration::from_secs(10));
        let leader = refresh(6).expect("popular and 5 s from expiry: refreshed");
        assert!(refresh(6).is_none(), "one refresh at a time");
        assert!(refresh(7).is_none(), "one hit is not popular");
        drop(leader);
        assert!(refresh(6).is_some(), "a failed refresh is tried again");
        assert_eq!(c.stats().refreshes, 2);
    }

    #[tokio::test]
    async fn max_age_and_no_cache_skip_older_entries() {
        let clock = ManualClock::at_epoch_2026();
        let c = Cache::open(settings(), clock.shared()).unwrap();
        let l = lead(&c, &key(2)).await;
        c.fill(l, response("{}"), fresh(600), Labels::default());
        clock.advance(Duration::from_secs(120));
        assert!(matches!(
            c.lookup(&key(2), &q(true, Some(Duration::from_secs(60)))),
            Lookup::Miss(_)
        ));
        assert!(matches!(
            c.lookup(&key(2), &q(false, None)),
            Lookup::Miss(_)
        ));
        assert!(matches!(
            c.lookup(&key(2), &q(true, Some(Duration::from_secs(300)))),
            Lookup::Hit(_)
        ));
    }

    #[tokio::test]
    async fn oversized_responses_are_not_stored_and_invalidation_removes() {
        let c = Cache::open(
            CacheSettings {
                max_entry_bytes: 4,
                ..settings()
            },
            ManualClock::at_epoch_2026().shared(),
        )
        .unwrap();
        let l = lead(&c, &key(3)).await;
        assert!(!c.fill(l, response("{\"long\":1}"), fresh(60), Labels::default()));
        let l = lead(&c, &key(3)).await;
        assert!(c.fill(l, response("{}"), fresh(60), Labels::default()));
        assert!(matches!(c.lookup(&key(3), &q(true, None)), Lookup::Hit(_)));
        c.invalidate_matching(&invalidate::Selector::Key(key(3).to_string()))
            .await;
        assert!(matches!(c.lookup(&key(3), &q(true, None)), Lookup::Miss(_)));
    }

    #[tokio::test]
    async fn memory_is_bounded_by_bytes() {
        let c = Cache::open(
            CacheSettings {
                memory_bytes: 64 * 1024,
                ..settings()
            },
            ManualClock::at_epoch_2026().shared(),
        )
        .unwrap();
        static BODY: [u8; 1000] = [b'x'; 1000];
        for i in 0..=255u8 {
            let l = lead(&c, &key(i)).await;
            let mut r = response("");
            r.body = Bytes::from_static(&BODY);
            c.fill(l, r, fresh(60), Labels::default());
        }
        let s = c.stats();
        assert!(s.bytes <= 64 * 1024, "{s:?}");
        assert!(s.entries < 256 && s.entries > 10, "{s:?}");
    }

    #[tokio::test]
    async fn disk_entries_survive_a_restart_and_are_promoted_with_their_remaining_ttl() {
        let dir = std::env::temp_dir().join(format!("flowgate-cache-lib-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let clock = ManualClock::at_epoch_2026();
        let with_disk = || CacheSettings {
            disk: Some(DiskSettings {
                path: dir.join("l3.redb"),
                max_bytes: 1 << 20,
                purge_interval: Duration::from_secs(3600),
                compress_above: 1024,
            }),
            ..settings()
        };
        {
            let c = Cache::open(with_disk(), clock.shared()).unwrap();
            let l = lead(&c, &key(9)).await;
            assert!(c.fill(l, response("{\"d\":1}"), fresh(100), Labels::default()));
            c.flush().await;
            assert_eq!(c.stats().disk.unwrap().entries, 1);
        }
        clock.advance(Duration::from_secs(40));
        let c = Cache::open(with_disk(), clock.shared()).unwrap();
        let Lookup::Miss(l) = c.lookup(&key(9), &q(true, None)) else {
            panic!("memory is empty after a restart")
        };
        // max-age below its age refuses it; no-cache does not read it.
        let Lower::Miss(l) = c
            .lookup_lower(l, &q(true, Some(Duration::from_secs(30))), true)
            .await
        else {
            panic!("max-age was ignored")
        };
        drop(l);
        let Lookup::Miss(l) = c.lookup(&key(9), &q(false, None)) else {
            panic!()
        };
        let Lower::Miss(l) = c.lookup_lower(l, &q(false, None), true).await else {
            panic!("no-cache read the disk")
        };
        drop(l);
        let Lookup::Miss(l) = c.lookup(&key(9), &q(true, None)) else {
            panic!()
        };
        match c.lookup_lower(l, &q(true, None), true).await {
            Lower::Hit(Hit {
                entry, tier, age, ..
            }) => {
                assert_eq!(tier, Tier::Disk);
                assert_eq!(age, Duration::from_secs(40));
                assert_eq!(entry.response.body, "{\"d\":1}");
                assert_eq!(entry.response.usage.completion_tokens, 5);
            }
            other => panic!("{other:?}"),
        }
        // Promoted: memory answers, with the same age, until the original expiry.
        clock.advance(Duration::from_secs(59));
        match c.lookup(&key(9), &q(true, None)) {
            Lookup::Hit(Hit { tier, age, .. }) => {
                assert_eq!(tier, Tier::Memory);
                assert_eq!(age, Duration::from_secs(99));
            }
            other => panic!("{other:?}"),
        }
        clock.advance(Duration::from_secs(1));
        let _expired = lead(&c, &key(9)).await;
        let s = c.stats();
        assert_eq!((s.hits_memory, s.hits_disk), (1, 1));
        // Invalidation reaches the disk.
        let l = lead(&c, &key(10)).await;
        c.fill(l, response("{}"), fresh(100), Labels::default());
        c.flush().await;
        assert_eq!(c.stats().disk.unwrap().entries, 1, "key 9 was not purged");
        c.invalidate_matching(&invalidate::Selector::Key(key(10).to_string()))
            .await;
        c.flush().await;
        assert_eq!(c.stats().disk.unwrap().entries, 0);
        let _gone = lead(&c, &key(10)).await;
        drop(c);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
