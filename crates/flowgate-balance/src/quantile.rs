//! A pool's recent latency percentiles, lock-free, for the hedging delay ("send a second
//! attempt when the first has not answered within the pool's p95").
//!
//! Samples fall in buckets at most 1/8 wide (eight per power of two of microseconds); two
//! generations (the current `period` and the one before) hold the recent past, so the
//! percentile follows a pool that slows down or recovers within one to two periods.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Eight buckets per power of two of microseconds (each at most 12.5% wider than the one
/// before), up to 2^34 µs (about 4.8 hours); longer samples count in the last one.
const BUCKETS: usize = 8 * 32;

/// Recent latencies of one pool.
#[derive(Debug)]
pub struct Latencies {
    period_ns: u64,
    /// The period the current generation holds.
    epoch: AtomicU64,
    current: Box<[AtomicU64]>,
    previous: Box<[AtomicU64]>,
}

/// The bucket of `d`: below 8 µs one per microsecond, then eight per power of two (the
/// leading bit's position and the three bits after it).
fn bucket_of(d: Duration) -> usize {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    if us < 8 {
        return us as usize;
    }
    let exp = 63 - us.leading_zeros() as usize;
    let mantissa = ((us >> (exp - 3)) & 7) as usize;
    ((exp - 2) * 8 + mantissa).min(BUCKETS - 1)
}

/// The upper bound of bucket `i` (exclusive).
fn upper(i: usize) -> Duration {
    if i < 8 {
        return Duration::from_micros(i as u64 + 1);
    }
    let (exp, mantissa) = (i / 8 + 2, (i % 8) as u64);
    Duration::from_micros((8 + mantissa + 1) << (exp - 3))
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
        // One snapshot, on the stack (this runs once per hedged request).
        let mut counts = [0u64; BUCKETS];
        for ((n, c), p) in counts.iter_mut().zip(&self.current).zip(&self.previous) {
            *n = c.load(Ordering::Relaxed) + p.load(Ordering::Relaxed);
        }
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
        assert_eq!(bucket_of(Duration::from_secs(1_000_000)), BUCKETS - 1);
        // Every duration is under its bucket's upper bound, and not by more than 12.5%.
        for us in (1..2_000_000u64).step_by(997) {
            let d = Duration::from_micros(us);
            let up = upper(bucket_of(d));
            assert!(d < up, "{us}");
            assert!(
                up.as_secs_f64() <= d.as_secs_f64() * 1.125 + 1e-6,
                "{us} {up:?}"
            );
        }
    }
}
