//! Retry policy: a budget that keeps retries (and hedges) a small share of a pool's
//! requests, and the backoff between attempts.
//!
//! The budget counts requests and retries per second over the last ten seconds; a retry is
//! allowed while retries stay under `percent` of the requests plus `min_per_second` (so a
//! quiet pool can still retry). When an outage makes every request fail, retries stop at
//! that share instead of multiplying the load (Finagle's and linkerd's retry budgets; gRPC's
//! retry throttling). Counting is lock-free: one compare-and-swap per request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;

/// Seconds the budget looks back over.
pub const BUDGET_WINDOW_SECS: u64 = 10;
const SLOTS: usize = BUDGET_WINDOW_SECS as usize;

/// A pool's retry budget.
#[derive(Debug)]
pub struct RetryBudget {
    percent: u32,
    min_per_second: u32,
    /// Per second, `second << 32 | count`.
    requests: [AtomicU64; SLOTS],
    retries: [AtomicU64; SLOTS],
    /// Retries refused because the budget was spent.
    exhausted: AtomicU64,
}

impl RetryBudget {
    pub fn new(percent: u32, min_per_second: u32) -> Self {
        RetryBudget {
            percent,
            min_per_second,
            requests: Default::default(),
            retries: Default::default(),
            exhausted: AtomicU64::new(0),
        }
    }

    /// Counts a request (its first attempt).
    pub fn deposit(&self, now_ns: u64) {
        bump(&self.requests, second(now_ns));
    }

    /// Takes one retry from the budget if it has one; a refusal is counted.
    pub fn withdraw(&self, now_ns: u64) -> bool {
        let s = second(now_ns);
        let requests = sum(&self.requests, s);
        let retries = sum(&self.retries, s);
        let allowed = (requests * u64::from(self.percent) / 100)
            + u64::from(self.min_per_second) * BUDGET_WINDOW_SECS;
        if retries >= allowed {
            self.exhausted.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        bump(&self.retries, s);
        true
    }

    /// Requests and retries over the window, and how many retries it refused in all.
    pub fn counts(&self, now_ns: u64) -> (u64, u64, u64) {
        let s = second(now_ns);
        (
            sum(&self.requests, s),
            sum(&self.retries, s),
            self.exhausted.load(Ordering::Relaxed),
        )
    }
}

fn second(now_ns: u64) -> u64 {
    (now_ns / 1_000_000_000) & u64::from(u32::MAX)
}

fn bump(slots: &[AtomicU64; SLOTS], s: u64) {
    let slot = &slots[(s % SLOTS as u64) as usize];
    let mut cur = slot.load(Ordering::Relaxed);
    loop {
        let next = if cur >> 32 == s { cur + 1 } else { s << 32 | 1 };
        match slot.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(seen) => cur = seen,
        }
    }
}

/// The counts of the slots that hold one of the last `SLOTS` seconds up to `s`.
fn sum(slots: &[AtomicU64; SLOTS], s: u64) -> u64 {
    slots
        .iter()
        .map(|x| x.load(Ordering::Relaxed))
        .filter(|v| s.wrapping_sub(v >> 32) < SLOTS as u64 && v >> 32 <= s)
        .map(|v| v & u64::from(u32::MAX))
        .sum()
}

/// The wait before retry number `retry` (1 for the first): exponential from `base`, at most
/// `max`, with "equal jitter" (between half of it and all of it), so that clients that
/// failed together do not come back together.
pub fn backoff(retry: u32, base: Duration, max: Duration) -> Duration {
    let full = base
        .saturating_mul(1u32 << retry.saturating_sub(1).min(20))
        .min(max);
    let half = full / 2;
    half + full
        .saturating_sub(half)
        .mul_f64(rand::rng().random::<f64>())
}

/// A random wait from zero up to `up_to` (spreads periodic work such as health checks).
pub fn jitter(up_to: Duration) -> Duration {
    up_to.mul_f64(rand::rng().random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn retries_stay_under_the_share_of_requests_plus_the_floor() {
        let b = RetryBudget::new(20, 1);
        // 100 requests in one second: 20 retries, plus the floor of 1 per second over the
        // window (10).
        for _ in 0..100 {
            b.deposit(5 * S);
        }
        let granted = (0..100).filter(|_| b.withdraw(5 * S)).count();
        assert_eq!(granted, 30);
        assert_eq!(b.counts(5 * S), (100, 30, 70));
        // More requests earn more retries.
        for _ in 0..50 {
            b.deposit(6 * S);
        }
        let granted = (0..100).filter(|_| b.withdraw(6 * S)).count();
        assert_eq!(granted, 10);
    }

    #[test]
    fn old_seconds_leave_the_window() {
        let b = RetryBudget::new(20, 0);
        for _ in 0..100 {
            b.deposit(0);
        }
        assert_eq!((0..50).filter(|_| b.withdraw(S / 2)).count(), 20);
        assert!(!b.withdraw(9 * S));
        // Ten seconds on, both the requests and the retries are forgotten: nothing earned.
        assert!(!b.withdraw(10 * S));
        assert_eq!(b.counts(10 * S).0, 0);
        b.deposit(10 * S);
        for _ in 0..4 {
            b.deposit(10 * S);
        }
        // 5 requests × 20% = 1 retry.
        assert_eq!((0..5).filter(|_| b.withdraw(11 * S)).count(), 1);
    }

    #[test]
    fn a_quiet_pool_can_retry_by_the_floor() {
        let b = RetryBudget::new(20, 2);
        assert_eq!((0..50).filter(|_| b.withdraw(3 * S)).count(), 20);
    }

    #[test]
    fn backoff_grows_exponentially_with_jitter_up_to_the_max() {
        let (base, max) = (Duration::from_millis(25), Duration::from_millis(250));
        for _ in 0..200 {
            let d = backoff(1, base, max);
            assert!(d >= Duration::from_micros(12_500) && d <= base, "{d:?}");
            let d = backoff(3, base, max);
            assert!(
                d >= Duration::from_millis(50) && d <= Duration::from_millis(100),
                "{d:?}"
            );
            let d = backoff(30, base, max);
            assert!(d >= Duration::from_millis(125) && d <= max, "{d:?}");
        }
        let spread: std::collections::HashSet<_> = (0..20).map(|_| backoff(2, base, max)).collect();
        assert!(spread.len() > 10, "jittered");
    }
}
