//! What the cache's own counters say would have saved money: a longer TTL for a category
//! whose misses are often for answers that had expired shortly before, and more room when
//! many misses are for answers dropped while still servable. Read from the counters since
//! start ([`StatsSnapshot`]), with their evidence; none on too few misses.

use std::time::Duration;

use crate::stats::StatsSnapshot;

/// Misses below which a category gets no advice.
pub const MIN_MISSES: u64 = 20;
/// The share of misses (percent) that must be near misses, or drops, to advise.
const MIN_SHARE_PERCENT: u64 = 10;
/// The longest TTL advised, as a multiple of the current one.
const MAX_FACTOR: f64 = 3.0;

/// A longer TTL for a category.
#[derive(Debug, Clone, PartialEq)]
pub struct LongerTtl {
    pub category: String,
    pub ttl: Duration,
    pub suggested_ttl: Duration,
    pub misses: u64,
    /// Misses of answers that had expired.
    pub misses_expired: u64,
    /// Of them, those the suggested TTL would have answered.
    pub would_hit: u64,
    /// What an answer of the category saved on average (none before its first hit).
    pub usd_per_hit: Option<f64>,
}

impl LongerTtl {
    pub fn saving_usd(&self) -> Option<f64> {
        self.usd_per_hit.map(|v| v * self.would_hit as f64)
    }
}

/// For each category with a TTL (`ttl_of`) and enough misses, the shortest longer TTL
/// (up to three times the current) that would have answered at least half of its misses
/// of expired answers, when those are a tenth of its misses or more.
pub fn longer_ttls(s: &StatsSnapshot, ttl_of: &dyn Fn(&str) -> Option<Duration>) -> Vec<LongerTtl> {
    let mut out = Vec::new();
    for c in &s.categories {
        let Some(ttl) = ttl_of(&c.name) else {
            continue;
        };
        if c.misses < MIN_MISSES
            || c.misses_expired * 100 < c.misses * MIN_SHARE_PERCENT
            || ttl.is_zero()
        {
            continue;
        }
        let Some(w) = c
            .expired_within
            .iter()
            .filter(|w| 1.0 + w.ttls <= MAX_FACTOR)
            .find(|w| w.misses * 2 >= c.misses_expired)
        else {
            continue;
        };
        let hits = c.hits + c.stale;
        out.push(LongerTtl {
            category: c.name.clone(),
            ttl,
            suggested_ttl: Duration::from_secs((ttl.as_secs_f64() * (1.0 + w.ttls)).ceil() as u64),
            misses: c.misses,
            misses_expired: c.misses_expired,
            would_hit: w.misses,
            usd_per_hit: (hits > 0 && c.usd_saved > 0.0).then(|| c.usd_saved / hits as f64),
        });
    }
    out.sort_by_key(|a| std::cmp::Reverse(a.would_hit));
    out
}

/// Whether misses of answers dropped while still servable are a tenth of the misses or
/// more (with enough misses): their number, and the memory tier's evictions.
pub fn too_little_room(s: &StatsSnapshot) -> Option<(u64, u64)> {
    (s.misses >= MIN_MISSES && s.misses_dropped * 100 >= s.misses * MIN_SHARE_PERCENT)
        .then_some((s.misses_dropped, s.evictions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{CategorySnapshot, EXPIRED_WITHIN_TTLS, ExpiredWithin};

    fn category(name: &str, misses: u64, expired: [u64; 5], hits: u64) -> CategorySnapshot {
        CategorySnapshot {
            name: name.into(),
            hits,
            misses,
            usd_saved: hits as f64 * 0.002,
            misses_expired: expired[4] + 1,
            expired_within: EXPIRED_WITHIN_TTLS
                .iter()
                .zip(expired)
                .map(|(&ttls, misses)| ExpiredWithin { ttls, misses })
                .collect(),
            ..CategorySnapshot::default()
        }
    }

    #[test]
    fn a_category_whose_misses_expired_shortly_before_gets_a_longer_ttl() {
        let s = StatsSnapshot {
            categories: vec![
                // 40 misses of 100 expired, 30 of them within half a TTL.
                category("faq", 100, [10, 30, 35, 38, 39], 50),
                // Expired long before: a longer TTL would not help.
                category("news", 100, [0, 1, 2, 3, 39], 50),
                // Few misses.
                category("rare", 10, [5, 5, 5, 5, 5], 5),
            ],
            ..StatsSnapshot::default()
        };
        let ttl = |_: &str| Some(Duration::from_secs(600));
        let advice = longer_ttls(&s, &ttl);
        let [a] = advice.as_slice() else {
            panic!("{advice:?}")
        };
        assert_eq!(a.category, "faq");
        assert_eq!(a.suggested_ttl, Duration::from_secs(900));
        assert_eq!((a.misses, a.misses_expired, a.would_hit), (100, 40, 30));
        assert!((a.saving_usd().unwrap() - 0.06).abs() < 1e-9);
        // A category without a TTL of its own gets none.
        assert!(longer_ttls(&s, &|_| None).is_empty());
    }

    #[test]
    fn many_misses_of_dropped_answers_ask_for_room() {
        let mut s = StatsSnapshot {
            misses: 100,
            misses_dropped: 9,
            evictions: 500,
            ..StatsSnapshot::default()
        };
        assert_eq!(too_little_room(&s), None);
        s.misses_dropped = 10;
        assert_eq!(too_little_room(&s), Some((10, 500)));
    }
}
