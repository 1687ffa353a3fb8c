//! Passive health: outlier ejection, from what the gateway sees of each endpoint's answers.
//!
//! `consecutive` failures in a row (0: never) (5xx answers, connection failures, timeouts) eject an
//! endpoint for `base × times ejected` (at most `max`); a 429 with `Retry-After` takes it out
//! for that long. Never more than `max_share` of a pool is out at once, and at least one
//! endpoint always stays in. An endpoint comes back by itself when its time is over; a
//! success resets its failure count. All state is atomic.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// The ejection policy of a pool.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutlierSettings {
    pub consecutive: u32,
    pub base: Duration,
    pub max: Duration,
    /// The largest share of a pool out at once, in percent (at least one endpoint always
    /// stays).
    pub max_percent: u32,
}

impl Default for OutlierSettings {
    fn default() -> Self {
        OutlierSettings {
            consecutive: 5,
            base: Duration::from_secs(30),
            max: Duration::from_secs(300),
            max_percent: 50,
        }
    }
}

/// How one request to an endpoint went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// A 5xx, a connection that failed or closed, a timeout.
    Failure,
    /// A 429: out for `Retry-After` when it says (a failure otherwise).
    Throttled(Option<Duration>),
}

/// One endpoint's health.
#[derive(Debug, Default)]
pub struct Health {
    failures: AtomicU32,
    /// Out until then (ns on the balancer's clock; 0: in).
    until: AtomicU64,
    times: AtomicU32,
}

impl Health {
    pub fn is_out(&self, now_ns: u64) -> bool {
        self.until.load(Ordering::Relaxed) > now_ns
    }

    /// How many times it was ejected.
    pub fn times_ejected(&self) -> u32 {
        self.times.load(Ordering::Relaxed)
    }

    /// Until when it is out, if it is.
    pub fn out_for(&self, now_ns: u64) -> Option<Duration> {
        let until = self.until.load(Ordering::Relaxed);
        (until > now_ns).then(|| Duration::from_nanos(until - now_ns))
    }
}

/// Takes `outcome` for endpoint `i` of `all`: whether it was ejected by it.
pub fn report(
    all: &[Health],
    i: usize,
    outcome: Outcome,
    settings: &OutlierSettings,
    now_ns: u64,
) -> bool {
    let Some(h) = all.get(i) else { return false };
    let out_for = match outcome {
        Outcome::Success => {
            h.failures.store(0, Ordering::Relaxed);
            return false;
        }
        Outcome::Throttled(Some(d)) => d,
        Outcome::Failure | Outcome::Throttled(None) => {
            let n = h.failures.fetch_add(1, Ordering::Relaxed) + 1;
            // 0: failures never eject.
            if settings.consecutive == 0 || n < settings.consecutive {
                return false;
            }
            let times = h.times.load(Ordering::Relaxed) + 1;
            settings.base.saturating_mul(times).min(settings.max)
        }
    };
    if h.is_out(now_ns) {
        return false;
    }
    // Never more than the share, and never the last one in.
    let out = all.iter().filter(|x| x.is_out(now_ns)).count();
    let allowed = (all.len() * settings.max_percent as usize / 100).min(all.len() - 1);
    if out >= allowed {
        return false;
    }
    let until = now_ns.saturating_add(u64::try_from(out_for.as_nanos()).unwrap_or(u64::MAX));
    h.until.store(until, Ordering::Relaxed);
    h.failures.store(0, Ordering::Relaxed);
    if !matches!(outcome, Outcome::Throttled(Some(_))) {
        h.times.fetch_add(1, Ordering::Relaxed);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn pool(n: usize) -> Vec<Health> {
        (0..n).map(|_| Health::default()).collect()
    }

    #[test]
    fn consecutive_failures_eject_for_longer_each_time_and_it_comes_back() {
        let all = pool(4);
        let st = OutlierSettings::default();
        for _ in 0..4 {
            assert!(!report(&all, 0, Outcome::Failure, &st, 0));
        }
        // A success in between resets the count.
        report(&all, 0, Outcome::Success, &st, 0);
        for k in 0..5 {
            assert_eq!(report(&all, 0, Outcome::Failure, &st, 0), k == 4);
        }
        assert!(all[0].is_out(29 * S) && !all[0].is_out(30 * S));
        // Back, fails again: out for twice the base.
        for _ in 0..5 {
            report(&all, 0, Outcome::Failure, &st, 31 * S);
        }
        assert_eq!(all[0].out_for(31 * S), Some(Duration::from_secs(60)));
        assert_eq!(all[0].times_ejected(), 2);
        // Never longer than the maximum.
        for round in 0..20u64 {
            let t = (100 + round * 400) * S;
            for _ in 0..5 {
                report(&all, 0, Outcome::Failure, &st, t);
            }
        }
        assert!(all[0].out_for(7_700 * S).unwrap() <= Duration::from_secs(300));
    }

    #[test]
    fn at_most_the_share_is_out_and_one_always_stays_and_429_takes_out_for_retry_after() {
        let all = pool(2);
        let st = OutlierSettings::default();
        for _ in 0..5 {
            report(&all, 0, Outcome::Failure, &st, 0);
        }
        assert!(all[0].is_out(0));
        // Half of two is one: the other stays in whatever it does.
        for _ in 0..10 {
            assert!(!report(&all, 1, Outcome::Failure, &st, 0));
        }
        assert!(!all[1].is_out(0));
        let one = pool(1);
        for _ in 0..10 {
            report(&one, 0, Outcome::Failure, &st, 0);
        }
        assert!(!one[0].is_out(0), "the last endpoint always stays");
        // A 429 with Retry-After: out for exactly that, not counted as an ejection.
        let three = pool(3);
        assert!(report(
            &three,
            2,
            Outcome::Throttled(Some(Duration::from_secs(7))),
            &st,
            0
        ));
        assert_eq!(three[2].out_for(0), Some(Duration::from_secs(7)));
        assert_eq!(three[2].times_ejected(), 0);
    }
}
