//! A circuit breaker on a clock in milliseconds.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

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
