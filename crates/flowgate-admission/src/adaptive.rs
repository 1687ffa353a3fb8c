//! The adaptive concurrency limit: a limit that follows measured latency, after the
//! gradient algorithm of Netflix's concurrency-limits (Gradient2).
//!
//! Two moving averages of the latency are kept: a short one (the last ~10 requests) and a
//! long one (the last ~500), the long one standing for the latency without queueing. While
//! the short one stays within `tolerance` × the long one, the limit grows by about
//! √limit per sample; when it rises above, the limit is multiplied by the gradient
//! `tolerance × long / short` (at least 0.5): the upstream slows down, the gateway sends it
//! less at once and queues or sheds the rest. Each change is smoothed (`smoothing`), and the
//! limit stays within `[min, max]`. When the latency falls back after a long slow period,
//! the long average is pulled down towards the short one, so the limit recovers instead of
//! staying pinned. The limit does not grow while fewer than half of it are in use (nothing
//! was learned about more).
//!
//! For LLM routes the sample is the time to the first byte of the answer: for a stream, the
//! time to its first token, which is what queueing in the upstream lengthens (the length of
//! the answer is the client's choice).

use std::time::Duration;

/// An adaptive limit's bounds and dynamics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveSettings {
    pub initial: usize,
    pub min: usize,
    pub max: usize,
    /// How much slower than usual the latency may be before the limit shrinks (≥ 1).
    pub tolerance: f64,
    /// The share of each new estimate taken (0 < smoothing ≤ 1).
    pub smoothing: f64,
}

impl Default for AdaptiveSettings {
    fn default() -> Self {
        AdaptiveSettings {
            initial: 20,
            min: 1,
            max: 1000,
            tolerance: 1.5,
            smoothing: 0.2,
        }
    }
}

/// An exponential moving average that starts as the plain mean of its first samples.
#[derive(Debug, Clone, Copy)]
struct Ewma {
    window: f64,
    value: f64,
    seen: u32,
}

impl Ewma {
    fn new(window: u32) -> Self {
        Ewma {
            window: f64::from(window),
            value: 0.0,
            seen: 0,
        }
    }

    fn add(&mut self, x: f64) -> f64 {
        self.seen = self.seen.saturating_add(1);
        // Warm-up: a mean until the window is full, then 2 / (window + 1).
        let alpha = if f64::from(self.seen) < self.window {
            1.0 / f64::from(self.seen)
        } else {
            2.0 / (self.window + 1.0)
        };
        self.value += alpha * (x - self.value);
        self.value
    }
}

/// The gradient limit's state.
#[derive(Debug, Clone)]
pub struct Gradient {
    settings: AdaptiveSettings,
    limit: f64,
    short: Ewma,
    long: Ewma,
}

impl Gradient {
    pub fn new(settings: AdaptiveSettings) -> Self {
        let initial = settings.initial.clamp(settings.min, settings.max);
        Gradient {
            settings,
            limit: initial as f64,
            short: Ewma::new(10),
            long: Ewma::new(500),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit.round() as usize
    }

    /// The average latency of the last few requests and the usual one, for reports.
    pub fn latencies(&self) -> (Duration, Duration) {
        let d = |s: f64| Duration::from_secs_f64(s.max(0.0));
        (d(self.short.value), d(self.long.value))
    }

    /// Takes one request's latency, measured while `in_flight` requests were out; the new
    /// limit.
    pub fn sample(&mut self, latency: Duration, in_flight: usize) -> usize {
        let rtt = latency.as_secs_f64().max(1e-6);
        let short = self.short.add(rtt);
        let mut long = self.long.add(rtt);
        // Back from a long slow period: the usual latency comes down with it.
        if long / short > 2.0 {
            self.long.value *= 0.95;
            long = self.long.value;
        }
        if (in_flight as f64) < self.limit / 2.0 {
            return self.limit();
        }
        let s = &self.settings;
        let gradient = (s.tolerance * long / short).clamp(0.5, 1.0);
        let headroom = self.limit.sqrt();
        let next = self.limit * gradient + headroom;
        let next = self.limit * (1.0 - s.smoothing) + next * s.smoothing;
        self.limit = next.clamp(s.min as f64, s.max as f64);
        self.limit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Feeds `n` samples of `latency` with the limit fully used; the limit after each.
    fn run(g: &mut Gradient, latency: Duration, n: usize) -> Vec<usize> {
        (0..n)
            .map(|_| {
                let busy = g.limit();
                g.sample(latency, busy)
            })
            .collect()
    }

    #[test]
    fn the_limit_grows_while_latency_holds_shrinks_when_it_rises_and_recovers() {
        let mut g = Gradient::new(AdaptiveSettings {
            initial: 10,
            min: 2,
            max: 200,
            ..AdaptiveSettings::default()
        });
        // A steady upstream: the limit grows to its maximum.
        let steady = run(&mut g, ms(100), 600);
        assert!(steady.windows(2).all(|w| w[1] >= w[0]), "{steady:?}");
        assert_eq!(g.limit(), 200);
        // The upstream slows down threefold: the limit falls, to well under half.
        let slow = run(&mut g, ms(300), 60);
        assert!(slow.windows(2).all(|w| w[1] <= w[0]), "{slow:?}");
        let low = g.limit();
        assert!(low < 100, "{low}");
        // Back to normal: it recovers to the maximum.
        run(&mut g, ms(100), 2000);
        assert_eq!(g.limit(), 200);
    }

    #[test]
    fn the_limit_stays_within_its_bounds_and_does_not_grow_when_unused() {
        let mut g = Gradient::new(AdaptiveSettings {
            initial: 50,
            min: 5,
            max: 60,
            ..AdaptiveSettings::default()
        });
        // Only 3 in flight of 50: nothing learned about more.
        for _ in 0..100 {
            g.sample(ms(10), 3);
        }
        assert_eq!(g.limit(), 50);
        // A hundredfold slowdown drives it down to the minimum, never below it; a slowdown
        // that lasts becomes the usual latency, and the limit grows again, never above
        // its maximum.
        let limits = run(&mut g, ms(1000), 3000);
        let (short, long) = g.latencies();
        assert!(limits.iter().all(|l| (5..=60).contains(l)), "{limits:?}");
        assert_eq!(limits.iter().min(), Some(&5));
        assert_eq!(g.limit(), 60);
        assert!(short.abs_diff(long) < ms(10), "{short:?} {long:?}");
    }
}
