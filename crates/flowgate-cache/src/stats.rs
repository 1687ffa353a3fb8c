//! Cache counters, read by the admin API and the metrics exporter.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::Tier;
use crate::disk::DiskSnapshot;
use crate::entry::Usage;
use crate::remote::RedisSnapshot;

/// Monotonic counters.
#[derive(Debug, Default)]
pub struct CacheStats {
    hits_memory: AtomicU64,
    hits_redis: AtomicU64,
    hits_disk: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
    bypass: AtomicU64,
    stored: AtomicU64,
    not_stored: AtomicU64,
    stale: AtomicU64,
    refreshes: AtomicU64,
    tokens_saved: AtomicU64,
}

/// The counters at one moment, with the tiers' sizes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    pub hits_memory: u64,
    pub hits_redis: u64,
    pub hits_disk: u64,
    pub misses: u64,
    pub coalesced: u64,
    pub bypass: u64,
    pub stored: u64,
    pub not_stored: u64,
    /// Answers served stale (within their stale window) while a refresh ran.
    pub stale: u64,
    /// Background refreshes started (stale serves and refresh-ahead).
    pub refreshes: u64,
    /// Prompt and completion tokens hits did not have to buy.
    pub tokens_saved: u64,
    /// The memory tier's entries and bytes.
    pub entries: u64,
    pub bytes: u64,
    /// The Redis tier, when there is one.
    pub redis: Option<RedisSnapshot>,
    /// The disk tier, when there is one.
    pub disk: Option<DiskSnapshot>,
}

impl StatsSnapshot {
    /// Answers from the cache: hits of every tier, and stale serves.
    pub fn hits(&self) -> u64 {
        self.hits_memory + self.hits_redis + self.hits_disk + self.stale
    }

    /// Hits over lookups (hits, misses and coalesced waits), 0 when there were none. A
    /// lower-tier hit was first a memory miss: it counts once, as a hit.
    pub fn hit_rate(&self) -> f64 {
        let lookups = self.hits() + self.misses + self.coalesced;
        if lookups == 0 {
            0.0
        } else {
            self.hits() as f64 / lookups as f64
        }
    }
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl CacheStats {
    pub(crate) fn hit(&self, tier: Tier, usage: Usage) {
        match tier {
            Tier::Memory => add(&self.hits_memory, 1),
            Tier::Redis => add(&self.hits_redis, 1),
            Tier::Disk => add(&self.hits_disk, 1),
        }
        self.saved(usage);
    }

    fn saved(&self, usage: Usage) {
        add(
            &self.tokens_saved,
            usage.prompt_tokens + usage.completion_tokens,
        );
    }

    /// An answer served stale: it saved its tokens too.
    pub(crate) fn stale(&self, usage: Usage) {
        add(&self.stale, 1);
        self.saved(usage);
    }

    pub(crate) fn refresh(&self) {
        add(&self.refreshes, 1);
    }

    pub(crate) fn miss(&self) {
        add(&self.misses, 1);
    }

    pub(crate) fn coalesced(&self) {
        add(&self.coalesced, 1);
    }

    pub(crate) fn bypass(&self) {
        add(&self.bypass, 1);
    }

    pub(crate) fn stored(&self) {
        add(&self.stored, 1);
    }

    pub(crate) fn not_stored(&self) {
        add(&self.not_stored, 1);
    }

    pub(crate) fn snapshot(&self, entries: u64, bytes: u64) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            hits_memory: get(&self.hits_memory),
            hits_redis: get(&self.hits_redis),
            hits_disk: get(&self.hits_disk),
            misses: get(&self.misses),
            coalesced: get(&self.coalesced),
            bypass: get(&self.bypass),
            stored: get(&self.stored),
            not_stored: get(&self.not_stored),
            stale: get(&self.stale),
            refreshes: get(&self.refreshes),
            tokens_saved: get(&self.tokens_saved),
            entries,
            bytes,
            redis: None,
            disk: None,
        }
    }
}
