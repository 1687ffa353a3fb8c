//! GCRA: a limit of `rate` per `period` with a burst of `burst`, decided from one timestamp.
//!
//! Each admitted unit (a request, or a token) pushes the key's theoretical arrival time
//! (TAT) one emission interval `T = period / rate` further. A request costing `n` units at
//! time `now` is admitted when `max(TAT, now) + n·T − now ≤ burst·T`: a key that has been
//! idle can take `burst` units at once, then one unit per `T`. Over any window of length
//! `W` at most `burst + W / T` units are admitted, and a steady demand above the rate gets
//! at least `burst + W / T − 1` ([`tests`]).
//!
//! Times are nanoseconds since an origin the caller chooses (a limiter's start); the state
//! is a `u64` TAT, `0` for a key never seen.

use std::time::Duration;

/// How many units per period, and how many at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// The emission interval `T`, in nanoseconds.
    interval: u64,
    /// Units a key may take at once after being idle.
    burst: u64,
}

/// A quota that cannot be enforced.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuotaError {
    #[error("a rate of 0 admits nothing: remove the limit instead")]
    ZeroRate,
    #[error("the period must be longer than 0")]
    ZeroPeriod,
    #[error("{rate} per {period:?} is finer than one per nanosecond")]
    TooFine { rate: u64, period: Duration },
    #[error("a burst of 0 admits nothing: use at least 1")]
    ZeroBurst,
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Admitted; the key's new TAT is to be stored.
    Admit {
        tat: u64,
        /// Units still available right now.
        remaining: u64,
        /// Until the key is back to its full burst.
        reset: Duration,
    },
    /// Refused; nothing changes.
    Deny {
        /// When the same request would be admitted (never, for a cost above the burst).
        retry_after: Option<Duration>,
        /// Units available right now.
        remaining: u64,
        reset: Duration,
    },
}

impl Quota {
    /// `rate` units per `period`, `burst` of them at once.
    pub fn new(rate: u64, period: Duration, burst: u64) -> Result<Quota, QuotaError> {
        if rate == 0 {
            return Err(QuotaError::ZeroRate);
        }
        if period.is_zero() {
            return Err(QuotaError::ZeroPeriod);
        }
        if burst == 0 {
            return Err(QuotaError::ZeroBurst);
        }
        let nanos = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
        let interval = nanos / rate;
        if interval == 0 {
            return Err(QuotaError::TooFine { rate, period });
        }
        Ok(Quota { interval, burst })
    }

    /// The emission interval.
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval)
    }

    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Decides for a request costing `cost` units at `now`, for a key whose TAT is `tat`.
    pub fn decide(&self, tat: u64, now: u64, cost: u64) -> Decision {
        let tolerance = self.burst.saturating_mul(self.interval);
        let start = tat.max(now);
        let next = start.saturating_add(cost.saturating_mul(self.interval));
        if next - now <= tolerance {
            Decision::Admit {
                tat: next,
                remaining: (tolerance - (next - now)) / self.interval,
                reset: Duration::from_nanos(next - now),
            }
        } else {
            Decision::Deny {
                // Admitted once `next − now` has shrunk to the tolerance; a cost above the
                // burst never fits.
                retry_after: (cost <= self.burst)
                    .then(|| Duration::from_nanos(next - now - tolerance)),
                remaining: tolerance.saturating_sub(start - now) / self.interval,
                reset: Duration::from_nanos(start - now),
            }
        }
    }

    /// The TAT after correcting a reservation of `reserved` units to `actual` ones: more
    /// is owed (the key waits longer), fewer gives the difference back (never before `now`:
    /// idle time is not credit beyond the burst).
    pub fn settle(&self, tat: u64, now: u64, reserved: u64, actual: u64) -> u64 {
        if actual >= reserved {
            tat.max(now)
                .saturating_add((actual - reserved).saturating_mul(self.interval))
        } else {
            tat.saturating_sub((reserved - actual).saturating_mul(self.interval))
                .max(now)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;

    /// Runs `arrivals` (sorted nanosecond times) through one key; the admitted times.
    fn admitted(q: &Quota, arrivals: &[u64]) -> Vec<u64> {
        let mut tat = 0;
        let mut out = Vec::new();
        for &t in arrivals {
            if let Decision::Admit { tat: next, .. } = q.decide(tat, t, 1) {
                tat = next;
                out.push(t);
            }
        }
        out
    }

    #[test]
    fn a_burst_then_the_rate() {
        // 10 per second, 3 at once.
        let q = Quota::new(10, Duration::from_secs(1), 3).unwrap();
        let at_once = admitted(&q, &[0; 10]);
        assert_eq!(at_once.len(), 3);
        let mut tat = 0;
        for _ in 0..3 {
            match q.decide(tat, 0, 1) {
                Decision::Admit { tat: t, .. } => tat = t,
                d => panic!("{d:?}"),
            }
        }
        match q.decide(tat, 0, 1) {
            Decision::Deny {
                retry_after,
                remaining,
                reset,
            } => {
                assert_eq!(retry_after, Some(Duration::from_millis(100)));
                assert_eq!(remaining, 0);
                assert_eq!(reset, Duration::from_millis(300));
            }
            d => panic!("{d:?}"),
        }
        // 100 ms later one unit is back.
        assert!(matches!(
            q.decide(tat, 100 * MS, 1),
            Decision::Admit { remaining: 0, .. }
        ));
        // A cost above the burst never fits.
        assert!(matches!(
            q.decide(0, 0, 4),
            Decision::Deny {
                retry_after: None,
                ..
            }
        ));
    }

    #[test]
    fn bad_quotas_are_refused() {
        let s = Duration::from_secs(1);
        assert_eq!(Quota::new(0, s, 1), Err(QuotaError::ZeroRate));
        assert_eq!(
            Quota::new(1, Duration::ZERO, 1),
            Err(QuotaError::ZeroPeriod)
        );
        assert_eq!(Quota::new(1, s, 0), Err(QuotaError::ZeroBurst));
        assert!(matches!(
            Quota::new(2_000_000_000, s, 1),
            Err(QuotaError::TooFine { .. })
        ));
    }

    #[test]
    fn settling_corrects_a_token_reservation() {
        // 1000 tokens per minute, all at once: T = 60 ms per token.
        let q = Quota::new(1000, Duration::from_secs(60), 1000).unwrap();
        let Decision::Admit { tat, .. } = q.decide(0, 0, 500) else {
            panic!()
        };
        // The answer used 200 tokens, not 500: 300 come back.
        let tat = q.settle(tat, 0, 500, 200);
        assert!(matches!(
            q.decide(tat, 0, 800),
            Decision::Admit { remaining: 0, .. }
        ));
        // Using more than reserved is owed.
        let Decision::Admit { tat, .. } = q.decide(0, 0, 100) else {
            panic!()
        };
        let tat = q.settle(tat, 0, 100, 1100);
        match q.decide(tat, 0, 1) {
            Decision::Deny { retry_after, .. } => {
                // 1100 used of 1000: 101 tokens (× 60 ms) must pass first.
                assert_eq!(retry_after, Some(Duration::from_millis(101 * 60)));
            }
            d => panic!("{d:?}"),
        }
        // A refund never makes credit beyond the burst.
        assert_eq!(q.settle(5, 1_000 * MS, 10, 0), 1_000 * MS);
    }

    proptest! {
        #[test]
        fn any_window_admits_at_most_rate_times_window_plus_burst(
            rate in 1u64..50,
            burst in 1u64..20,
            gaps in prop::collection::vec(0u64..40 * MS, 1..300),
            window_ms in 1u64..3000,
        ) {
            let q = Quota::new(rate, Duration::from_secs(1), burst).unwrap();
            let mut t = 0;
            let arrivals: Vec<u64> = gaps.iter().map(|g| { t += g; t }).collect();
            let ok = admitted(&q, &arrivals);
            let w = window_ms * MS;
            // Every window starting at an admitted request (the worst case).
            for (i, &start) in ok.iter().enumerate() {
                let inside = ok[i..].iter().take_while(|&&a| a < start + w).count() as u64;
                let bound = burst + (w * rate).div_ceil(1_000 * MS);
                prop_assert!(inside <= bound, "{inside} > {bound} in {window_ms} ms");
            }
        }

        #[test]
        fn steady_demand_above_the_rate_gets_at_least_rate_times_window_plus_burst_minus_one(
            rate in 1u64..50,
            burst in 1u64..20,
            window_ms in 100u64..5000,
        ) {
            let q = Quota::new(rate, Duration::from_secs(1), burst).unwrap();
            // A client always over the limit: it sends again at once when admitted, and
            // after `retry_after` when refused.
            let w = window_ms * MS;
            let (mut now, mut tat, mut ok) = (0, 0, 0u64);
            while now < w {
                match q.decide(tat, now, 1) {
                    Decision::Admit { tat: next, .. } => {
                        tat = next;
                        ok += 1;
                    }
                    Decision::Deny { retry_after, .. } => {
                        now += u64::try_from(retry_after.unwrap().as_nanos()).unwrap();
                    }
                }
            }
            let floor = burst + w * rate / (1_000 * MS);
            prop_assert!(ok + 1 >= floor, "{ok} < {floor} - 1");
            // And never more than the upper bound.
            prop_assert!(ok <= burst + (w * rate).div_ceil(1_000 * MS));
        }
    }
}
