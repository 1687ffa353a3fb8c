//! Budget counters shared by every replica through Redis (`[cost.shared]`).
//!
//! Each replica counts what it spends locally, as it spends it, and every `sync_interval`
//! writes what it has spent in each bucket of a budget's window (each minute of a rolling
//! hour; the calendar day or month) and reads back what all replicas have spent: budgets
//! are judged on the request path from memory, never by a call to Redis.
//!
//! A bucket is one Redis hash: each replica's spend in it, in whole micro-dollars, summed
//! by one script (atomic). A replica writes its absolute amount, not an increment, so a
//! write sent again (it timed out after Redis took it) counts once, and a Redis that
//! comes back empty after a restart is filled again by the replicas' next syncs.
//! Billionths under a micro-dollar stay local until they make one.
//!
//! While Redis is down a replica keeps counting locally: the others' spend as last read
//! plus all of its own. When Redis answers again the counters reconcile by themselves.
//!
//! Keys: `<prefix>:bud2:{<budget>:<value>}:<h|d|mo>:<bucket>`; the braces put one
//! counter's buckets in one Cluster slot, as one script's keys must be.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};

use flowgate_redis::{Link, Op};

use super::window::Counter;

/// The script; `EVALSHA` sends its digest (the text only when the server lacks it).
const SCRIPT: &str = include_str!("shared.lua");
/// Part of every key: a change to what the keys hold gets new keys.
const VERSION: &str = "bud2";
/// Billionths of a dollar in a micro-dollar.
const NANOS_PER_MICRO: u64 = 1_000;
/// How long a bucket's key outlives its window.
const GRACE_SECS: u64 = 300;

/// The link to the shared counters and this replica's name in them.
#[derive(Debug)]
pub struct SharedSpend {
    link: Link,
    prefix: String,
    replica: String,
    script: redis::Script,
}

impl SharedSpend {
    /// Counters under `prefix` through `link`, written as a replica named at random (a
    /// restarted replica is a new one: what it spent before stays counted).
    pub fn new(link: Link, prefix: &str) -> SharedSpend {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        SharedSpend {
            link,
            prefix: prefix.to_string(),
            replica: format!("{:016x}", h.finish()),
            script: redis::Script::new(SCRIPT),
        }
    }

    pub fn link(&self) -> &Link {
        &self.link
    }

    /// Sends `push` for `budget`'s counter of `value`: the totals of its buckets over all
    /// replicas (billionths), in its order, or `None` when Redis did not answer.
    pub(super) async fn run(&self, budget: &str, value: &str, push: &Push) -> Option<Vec<u64>> {
        let tag = format!("{}:{VERSION}:{{{budget}:{value}}}", self.prefix);
        let mut call = self.script.prepare_invoke();
        call.arg(&self.replica);
        for b in &push.buckets {
            call.key(format!("{tag}:{}:{}", push.kind, b.bucket))
                .arg(b.mine_micros)
                .arg(b.ttl);
        }
        let totals: Vec<i64> = self.link.run(Op::Script(&call)).await?;
        (totals.len() == push.buckets.len()).then(|| {
            totals
                .into_iter()
                .map(|t| {
                    u64::try_from(t)
                        .unwrap_or(0)
                        .saturating_mul(NANOS_PER_MICRO)
                })
                .collect()
        })
    }
}

/// One counter's call: this replica's spend in each bucket of the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Push {
    pub kind: &'static str,
    pub buckets: Vec<BucketPush>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BucketPush {
    pub bucket: u64,
    /// What this replica has spent in the bucket, whole micro-dollars (0: nothing).
    pub mine_micros: u64,
    /// Seconds the key lives.
    pub ttl: u64,
}

/// This replica's own spend of one counter, and how much of it Redis holds.
#[derive(Debug, Default)]
pub(super) struct Unsynced {
    /// Billionths spent here, per bucket of the window.
    mine: BTreeMap<u64, u64>,
    /// Micro-dollars of `mine` Redis acknowledged, per bucket.
    acked: BTreeMap<u64, u64>,
    /// Checked or charged since the last sync: worth reading.
    touched: bool,
}

impl Unsynced {
    /// A counter to read at the next sync.
    pub fn fresh() -> Unsynced {
        Unsynced {
            touched: true,
            ..Unsynced::default()
        }
    }

    pub fn add(&mut self, bucket: u64, n: u64) {
        let m = self.mine.entry(bucket).or_default();
        *m = m.saturating_add(n);
        self.touched = true;
    }

    pub fn touch(&mut self) {
        self.touched = true;
    }

    /// Billionths spent here that Redis does not hold yet.
    pub fn amount(&self) -> u64 {
        self.mine
            .iter()
            .map(|(b, n)| {
                let acked = self.acked.get(b).copied().unwrap_or(0);
                n.saturating_sub(acked.saturating_mul(NANOS_PER_MICRO))
            })
            .fold(0, u64::saturating_add)
    }

    /// The call to make for `counter` at `now`, with every bucket of the window; `None`
    /// when this replica spent nothing in it and nobody asked since the last sync.
    pub fn push(&mut self, counter: &Counter, now: u64) -> Option<Push> {
        let window = counter.buckets(now);
        let first = window.first().copied().unwrap_or(0);
        self.mine.retain(|b, _| *b >= first);
        self.acked.retain(|b, _| *b >= first);
        if self.mine.is_empty() && !self.touched {
            return None;
        }
        let buckets = window
            .iter()
            .map(|&b| BucketPush {
                bucket: b,
                mine_micros: self.mine.get(&b).map_or(0, |n| n / NANOS_PER_MICRO),
                ttl: counter
                    .bucket_end(b)
                    .saturating_sub(now)
                    .saturating_add(GRACE_SECS),
            })
            .collect();
        Some(Push {
            kind: counter.kind(),
            buckets,
        })
    }

    /// Redis answered `push` with `totals` (billionths): each bucket of the counter
    /// becomes the others' spend plus all of this replica's, including what it spent
    /// since the push was made.
    pub fn acked(&mut self, push: &Push, totals: &[u64], counter: &mut Counter, now: u64) {
        for (b, total) in push.buckets.iter().zip(totals) {
            let sent = b.mine_micros.saturating_mul(NANOS_PER_MICRO);
            let mine = self.mine.get(&b.bucket).copied().unwrap_or(0);
            counter.set(
                b.bucket,
                total.saturating_sub(sent).saturating_add(mine),
                now,
            );
            if b.mine_micros > 0 {
                self.acked.insert(b.bucket, b.mine_micros);
            }
        }
        self.touched = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowgate_config::{BudgetConfig, BudgetScope, BudgetWindow, RawBudget};
    use rust_decimal::Decimal;

    fn hour() -> Counter {
        Counter::new(&BudgetConfig {
            name: "b".into(),
            scope: BudgetScope::Global,
            value: None,
            limit_usd: Decimal::ONE,
            window: BudgetWindow::Hour,
            timezone: jiff::tz::TimeZone::UTC,
            timezone_name: "UTC".into(),
            actions: Vec::new(),
            raw: RawBudget::default(),
        })
    }

    const NOW: u64 = 6_000_000;

    #[test]
    fn a_replica_writes_its_whole_micro_dollars_per_bucket_and_counts_the_others() {
        let mut c = hour();
        let mut u = Unsynced::default();
        let m = NOW / 60;
        c.add(2_500, NOW);
        u.add(m, 2_500);
        c.add(999, NOW - 60);
        u.add(m - 1, 999);
        let p = u.push(&c, NOW).unwrap();
        assert_eq!(p.kind, "h");
        assert_eq!(p.buckets.len(), 60);
        assert_eq!(
            p.buckets[59],
            BucketPush {
                bucket: m,
                mine_micros: 2,
                ttl: 3600 - NOW % 60 + GRACE_SECS
            }
        );
        assert!(p.buckets[..59].iter().all(|b| b.mine_micros == 0));
        assert_eq!(u.amount(), 2_500 + 999);
        // Spent here while the call was out.
        c.add(10_000, NOW);
        u.add(m, 10_000);
        // Redis: another replica spent 7 micro-dollars in this minute and 1 in the last.
        let mut totals = vec![0; 60];
        totals[59] = 9_000;
        totals[58] = 1_000;
        u.acked(&p, &totals, &mut c, NOW);
        assert_eq!(c.spent(NOW), 7_000 + 12_500 + 1_000 + 999);
        assert_eq!(u.amount(), 500 + 10_000 + 999);
        // The next call writes the new absolute amount: sent twice, counted once.
        let next = u.push(&c, NOW).unwrap();
        assert_eq!(next.buckets[59].mine_micros, 12);
    }

    #[test]
    fn nothing_spent_and_nobody_asking_is_no_call() {
        let c = hour();
        let mut u = Unsynced::default();
        assert_eq!(u.push(&c, NOW), None);
        u.touch();
        let p = u.push(&c, NOW).unwrap();
        assert!(p.buckets.iter().all(|b| b.mine_micros == 0));
        u.acked(&p, &[0; 60], &mut hour(), NOW);
        assert_eq!(u.push(&c, NOW), None);
        // Spend that left the window is forgotten, not written.
        let mut u = Unsynced::default();
        u.add(1, 5_000);
        assert!(
            u.push(&c, NOW)
                .unwrap()
                .buckets
                .iter()
                .all(|b| b.mine_micros == 0)
        );
        assert_eq!(u.amount(), 0);
        assert_eq!(
            u.push(&c, NOW).map(|_| ()),
            Some(()),
            "asked: still read once"
        );
    }
}
