//! Peak-EWMA latency, lock-free: a slower sample counts at once, faster ones are averaged
//! in, and the estimate decays towards zero with time, so that an endpoint that was slow
//! and has not been tried since becomes worth trying again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The weight of a faster sample in the average.
const GAIN: f64 = 0.3;

/// One endpoint's latency estimate (nanoseconds, as `f64` bits) and when it was last
/// updated (nanoseconds on the balancer's clock).
#[derive(Debug)]
pub struct PeakEwma {
    value: AtomicU64,
    stamp: AtomicU64,
    decay_ns: f64,
}

impl PeakEwma {
    pub fn new(decay: Duration) -> Self {
        PeakEwma {
            value: AtomicU64::new(0f64.to_bits()),
            stamp: AtomicU64::new(0),
            decay_ns: decay.as_nanos().max(1) as f64,
        }
    }

    fn decayed(&self, bits: u64, now_ns: u64) -> f64 {
        let elapsed = now_ns.saturating_sub(self.stamp.load(Ordering::Relaxed)) as f64;
        f64::from_bits(bits) * (-elapsed / self.decay_ns).exp()
    }

    /// The estimate at `now_ns`, in nanoseconds (0 for an endpoint never measured).
    pub fn get(&self, now_ns: u64) -> u64 {
        self.decayed(self.value.load(Ordering::Relaxed), now_ns) as u64
    }

    /// Takes a sample at `now_ns`. Concurrent samples may interleave; each is counted.
    pub fn observe(&self, now_ns: u64, sample: Duration) {
        let sample = sample.as_nanos() as f64;
        let _ = self
            .value
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let est = self.decayed(bits, now_ns);
                let next = if sample >= est {
                    sample
                } else {
                    est + (sample - est) * GAIN
                };
                Some(next.to_bits())
            });
        self.stamp.fetch_max(now_ns, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_slower_sample_counts_at_once_faster_ones_bring_it_down_and_time_forgets() {
        let e = PeakEwma::new(Duration::from_secs(10));
        assert_eq!(e.get(0), 0);
        e.observe(0, Duration::from_millis(20));
        assert_eq!(e.get(0), 20 * MS);
        e.observe(0, Duration::from_millis(200));
        assert_eq!(e.get(0), 200 * MS, "peak: at once");
        e.observe(0, Duration::from_millis(20));
        assert_eq!(e.get(0), 146 * MS, "200 + (20 - 200) × 0.3");
        // Ten seconds without samples: e⁻¹ of it.
        let later = e.get(10_000 * MS);
        assert!((later as f64 - 146.0 * MS as f64 / std::f64::consts::E).abs() < MS as f64);
        for i in 1..=30 {
            e.observe(10_000 * MS + i * MS, Duration::from_millis(20));
        }
        let settled = e.get(10_030 * MS);
        assert!(settled < 21 * MS && settled > 19 * MS, "{settled}");
    }
}
