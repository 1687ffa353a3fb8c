//! A pool's recent latency percentiles, lock-free, for the hedging delay ("send a second
//! attempt when the first has not answered within the pool's p95").
//!
//! Samples fall in buckets growing by 1/8 (±6%), from 1 ms to about 50 minutes; two
//! generations (the current `period` and the one before) hold the recent past, so the
//! percentile follows a pool that slows down or recovers within one to two periods.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const BUCKETS: usize = 128;
/// Each bucket is this much wider than the one before.
const GROWTH: f64 = 1.125;
const FIRST_MS: f64 = 1.0;

/// Recent latencies of one pool.
#[derive(Debug)]
pub struct Latencies {
    period_ns: u64,
    /// The period the current generation holds.
    epoch: AtomicU64,
    current: Box<[AtomicU64]>,
    previous: Box<[AtomicU64]>,
}

fn bucket_of(d: Duration) -> usize {
    let ms = d.as_secs_f64() * 1000.0;
    if ms <= FIRST_MS {
        return 0;
    }
    ((ms / FIRST_MS).ln() / GROWTH.ln())
        .ceil()
        .min((BUCKETS - 1) as f64) as usize
}

/// The upper bound of bucket `i`.
fn upper(i: usize) -> Duration {
    Duration::from_secs_f64(FIRST_MS * GROWTH.powi(i as i32) / 1000.0)
}

impl Latencies {
    pub fn new(period: Duration) -> Self {
        let zeros = || (0..BUCKETS).map(|_| AtomicU64::new(0)).collect();
        Latencies {
            period_ns: (period.as_nanos() as u64).max(1),
            epoch: AtomicU64::new(0),
            current: zeros(),
            previous: zeros(),
        }
    }

    fn roll(&self, now_ns: u64) {
        let e = now_ns / self.period_ns;
        let Some(old) = crate::advance(&self.epoch, e) else {
            return;
        };
        let keep = e == old + 1;
        for (c, p) in self.current.iter().zip(self.previous.iter()) {
            let n = c.swap(0, Ordering::Relaxed);
            p.store(if keep { n } else { 0 }, Ordering::Relaxed);
        }
    }

    pub fn record(&self, now_ns: u64, d: Duration) {
        self.roll(now_ns);
        self.current[bucket_of(d)].fetch_add(1, Ordering::Relaxed);
    }

    /// The `q` quantile (0..=1) of the recent samples (an upper bound, within 12.5%), when
    /// there are at least `min_samples`.
    pub fn quantile(&self, now_ns: u64, q: f64, min_samples: u64) -> Option<Duration> {
        self.roll(now_ns);
        let counts: Vec<u64> = self
            .current
            .iter()
            .zip(self.previous.iter())
            .map(|(c, p)| c.load(Ordering::Relaxed) + p.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 || total < min_samples {
            return None;
        }
        let rank = ((total as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        counts.iter().enumerate().find_map(|(i, n)| {
            seen += n;
            (seen >= rank).then(|| upper(i))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn the_quantile_is_an_upper_bound_within_a_bucket() {
        let l = Latencies::new(Duration::from_secs(10));
        for ms in 1..=100u64 {
            l.record(S, Duration::from_millis(ms));
        }
        let p95 = l.quantile(S, 0.95, 20).unwrap();
        assert!(
            p95 >= Duration::from_millis(95) && p95 <= Duration::from_micros(95_000 * 1125 / 1000),
            "{p95:?}"
        );
        let p50 = l.quantile(S, 0.5, 20).unwrap();
        assert!(p50 >= Duration::from_millis(50) && p50 <= Duration::from_micros(56_250));
        assert_eq!(l.quantile(S, 0.95, 101), None, "too few samples");
    }

    #[test]
    fn old_samples_age_out_after_two_periods() {
        let l = Latencies::new(Duration::from_secs(10));
        for _ in 0..100 {
            l.record(0, Duration::from_millis(500));
        }
        for _ in 0..100 {
            l.record(12 * S, Duration::from_millis(20));
        }
        // The slow period is the previous one: still half the samples.
        assert!(l.quantile(12 * S, 0.95, 20).unwrap() >= Duration::from_millis(500));
        // Two periods on, only the fast ones are left.
        for _ in 0..100 {
            l.record(21 * S, Duration::from_millis(20));
        }
        let p95 = l.quantile(21 * S, 0.95, 20).unwrap();
        assert!(p95 < Duration::from_millis(23), "{p95:?}");
        assert_eq!(l.quantile(45 * S, 0.95, 1), None, "all aged out");
    }

    #[test]
    fn extremes_land_in_the_end_buckets() {
        assert_eq!(bucket_of(Duration::ZERO), 0);
        assert_eq!(bucket_of(Duration::from_secs(100_000)), BUCKETS - 1);
    }
}
