//! Cache counters, read by the admin API and the metrics exporter: per tier, and per TTL
//! category of the requests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::Tier;
use crate::disk::DiskSnapshot;
use flowgate_cost::ModelPrice;

use crate::entry::Usage;
use crate::ghost::MissKind;
use crate::remote::RedisSnapshot;

/// Who asked, for the accounting of the answer: the request's TTL category and the price
/// of its model. The gateway's own warming requests are not counted: the figures are the
/// clients'.
#[derive(Debug, Clone, Copy, Default)]
pub struct Account<'a> {
    pub category: Option<&'a str>,
    pub price: Option<ModelPrice>,
    pub warming: bool,
}

/// At most this many categories are counted apart (they come from configuration; the
/// bound only guards against a runaway caller). Later ones are not counted by category.
const MAX_CATEGORIES: usize = 256;

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
    nanos_saved: AtomicU64,
    misses_expired: AtomicU64,
    misses_dropped: AtomicU64,
    categories: RwLock<HashMap<String, Arc<CategoryCounters>>>,
}

/// How long before a miss its answer had expired, in TTLs: the bounds of the buckets
/// misses of expired answers are counted in (the last bucket is beyond 4).
pub const EXPIRED_WITHIN_TTLS: [f64; 5] = [0.25, 0.5, 1.0, 2.0, 4.0];

/// The counters of one category.
#[derive(Debug, Default)]
struct CategoryCounters {
    hits: AtomicU64,
    stale: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
    tokens_saved: AtomicU64,
    nanos_saved: AtomicU64,
    /// Misses of expired answers, by how long before (in TTLs, [`EXPIRED_WITHIN_TTLS`]).
    expired: [AtomicU64; EXPIRED_WITHIN_TTLS.len() + 1],
    dropped: AtomicU64,
}

/// Misses of answers that had expired at most `ttls` TTLs before.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct ExpiredWithin {
    pub ttls: f64,
    pub misses: u64,
}

/// One category's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CategorySnapshot {
    pub name: String,
    /// Hits of every tier.
    pub hits: u64,
    pub stale: u64,
    pub misses: u64,
    pub coalesced: u64,
    pub hit_rate: f64,
    pub tokens_saved: u64,
    pub usd_saved: f64,
    /// Misses of answers the cache had kept and that had expired; of them, those within
    /// each bound (cumulative): what a TTL that many times longer would have answered.
    pub misses_expired: u64,
    pub expired_within: Vec<ExpiredWithin>,
    /// Misses of answers dropped while still servable (evicted for room, or invalidated).
    pub misses_dropped: u64,
}

/// The counters at one moment, with the tiers' sizes.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
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
    /// What those tokens would have cost, for the models with a price.
    pub usd_saved: f64,
    /// Misses of answers kept lately that had expired, and of answers dropped while still
    /// servable (evicted for room, or invalidated).
    pub misses_expired: u64,
    pub misses_dropped: u64,
    /// The memory tier's entries and bytes, and entries it evicted to stay in its bound.
    pub entries: u64,
    pub bytes: u64,
    pub evictions: u64,
    /// Per TTL category of the requests (those with none are only in the totals), by name.
    pub categories: Vec<CategorySnapshot>,
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
        self.share_of_lookups(self.hits())
    }

    /// Lookups: hits, misses and coalesced waits.
    pub fn lookups(&self) -> u64 {
        self.hits() + self.misses + self.coalesced
    }

    /// `n` over the lookups, 0 when there were none (e.g. the share one tier answered).
    pub fn share_of_lookups(&self, n: u64) -> f64 {
        ratio(n, self.lookups())
    }
}

/// `part` over `whole`, 0 when `whole` is 0.
fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

fn usd(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

impl CacheStats {
    /// The counters of `account`'s category, created at first use.
    fn category(&self, account: &Account<'_>) -> Option<Arc<CategoryCounters>> {
        let name = account.category?;
        if let Some(c) = self.categories.read().ok()?.get(name) {
            return Some(c.clone());
        }
        let mut all = self.categories.write().ok()?;
        if all.len() >= MAX_CATEGORIES && !all.contains_key(name) {
            return None;
        }
        Some(all.entry(name.to_string()).or_default().clone())
    }

    pub(crate) fn hit(&self, tier: Tier, usage: Usage, account: &Account<'_>) {
        if account.warming {
            return;
        }
        match tier {
            Tier::Memory => add(&self.hits_memory, 1),
            Tier::Redis => add(&self.hits_redis, 1),
            Tier::Disk => add(&self.hits_disk, 1),
        }
        let c = self.category(account);
        if let Some(c) = &c {
            add(&c.hits, 1);
        }
        self.saved(usage, account, c.as_deref());
    }

    fn saved(&self, usage: Usage, account: &Account<'_>, c: Option<&CategoryCounters>) {
        let tokens = usage.prompt_tokens + usage.completion_tokens;
        let nanos = account
            .price
            .map_or(0, |p| flowgate_cost::nanos(flowgate_cost::cost(&usage, &p)));
        add(&self.tokens_saved, tokens);
        add(&self.nanos_saved, nanos);
        if let Some(c) = c {
            add(&c.tokens_saved, tokens);
            add(&c.nanos_saved, nanos);
        }
    }

    /// An answer served stale: it saved its tokens too.
    pub(crate) fn stale(&self, usage: Usage, account: &Account<'_>) {
        if account.warming {
            return;
        }
        add(&self.stale, 1);
        let c = self.category(account);
        if let Some(c) = &c {
            add(&c.stale, 1);
        }
        self.saved(usage, account, c.as_deref());
    }

    pub(crate) fn refresh(&self) {
        add(&self.refreshes, 1);
    }

    pub(crate) fn miss(&self, account: &Account<'_>, kind: MissKind) {
        if account.warming {
            return;
        }
        add(&self.misses, 1);
        let c = self.category(account);
        if let Some(c) = &c {
            add(&c.misses, 1);
        }
        match kind {
            MissKind::New => {}
            MissKind::Expired { after, ttl } => {
                add(&self.misses_expired, 1);
                if let Some(c) = &c {
                    let ttls = after.as_secs_f64() / ttl.as_secs_f64().max(1e-3);
                    let i = EXPIRED_WITHIN_TTLS
                        .iter()
                        .position(|b| ttls <= *b)
                        .unwrap_or(EXPIRED_WITHIN_TTLS.len());
                    add(&c.expired[i], 1);
                }
            }
            MissKind::Dropped => {
                add(&self.misses_dropped, 1);
                if let Some(c) = &c {
                    add(&c.dropped, 1);
                }
            }
        }
    }

    pub(crate) fn coalesced(&self, account: &Account<'_>) {
        if account.warming {
            return;
        }
        add(&self.coalesced, 1);
        if let Some(c) = self.category(account) {
            add(&c.coalesced, 1);
        }
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

    pub(crate) fn snapshot(&self, entries: u64, bytes: u64, evictions: u64) -> StatsSnapshot {
        let mut categories: Vec<CategorySnapshot> = self
            .categories
            .read()
            .map(|all| {
                all.iter()
                    .map(|(name, c)| {
                        let hits = get(&c.hits) + get(&c.stale);
                        CategorySnapshot {
                            name: name.clone(),
                            hits: get(&c.hits),
                            stale: get(&c.stale),
                            misses: get(&c.misses),
                            coalesced: get(&c.coalesced),
                            hit_rate: ratio(hits, hits + get(&c.misses) + get(&c.coalesced)),
                            tokens_saved: get(&c.tokens_saved),
                            usd_saved: usd(get(&c.nanos_saved)),
                            misses_expired: c.expired.iter().map(get).sum(),
                            expired_within: EXPIRED_WITHIN_TTLS
                                .iter()
                                .enumerate()
                                .map(|(i, &ttls)| ExpiredWithin {
                                    ttls,
                                    misses: c.expired[..=i].iter().map(get).sum(),
                                })
                                .collect(),
                            misses_dropped: get(&c.dropped),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        categories.sort_by(|a, b| a.name.cmp(&b.name));
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
            usd_saved: usd(get(&self.nanos_saved)),
            misses_expired: get(&self.misses_expired),
            misses_dropped: get(&self.misses_dropped),
            entries,
            bytes,
            evictions,
            categories,
            redis: None,
            disk: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_are_counted_apart_and_in_the_totals() {
        let s = CacheStats::default();
        let price = Some(ModelPrice {
            input_usd_per_mtok: 1.into(),
            output_usd_per_mtok: 2.into(),
            ..ModelPrice::default()
        });
        let cost = Account {
            category: Some("cost"),
            price,
            warming: false,
        };
        let none = Account::default();
        let u = Usage {
            prompt_tokens: 100,
            completion_tokens: 50,
            ..Usage::default()
        };
        s.miss(&cost, MissKind::New);
        s.hit(Tier::Memory, u, &cost);
        s.stale(u, &cost);
        s.coalesced(&cost);
        s.hit(Tier::Disk, u, &none);
        s.miss(&none, MissKind::Dropped);
        let warming = Account {
            warming: true,
            ..cost
        };
        s.hit(Tier::Memory, u, &warming);
        s.miss(&warming, MissKind::New);
        let snap = s.snapshot(0, 0, 0);
        assert_eq!(snap.hits(), 3);
        assert_eq!(snap.tokens_saved, 450);
        // Two priced answers of 100 × $1/M + 50 × $2/M.
        assert!(
            (snap.usd_saved - 0.0004).abs() < 1e-12,
            "{}",
            snap.usd_saved
        );
        let [c] = snap.categories.as_slice() else {
            panic!("{:?}", snap.categories)
        };
        assert_eq!(
            (
                c.name.as_str(),
                c.hits,
                c.stale,
                c.misses,
                c.coalesced,
                c.tokens_saved
            ),
            ("cost", 1, 1, 1, 1, 300)
        );
        assert!((c.hit_rate - 0.5).abs() < 1e-12);
        assert!((c.usd_saved - 0.0004).abs() < 1e-12);
    }
}
