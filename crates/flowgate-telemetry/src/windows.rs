//! Request rate, error rate and latency percentiles over sliding windows (last 1 and 5
//! minutes), per route and overall.
//!
//! Each scope keeps a ring of [`SLOTS`] slots of [`SLOT`] each; a slot holds a request count,
//! an error count and an HDR histogram of latencies (microseconds, 2 significant digits:
//! ±1%, from 1 µs to 10 min). A window query merges the slots it covers, including the
//! current partial one, so a window is at most one slot (5 s) longer than its nominal length.
//! Slot histograms are allocated on first use and reused when the ring wraps.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Width of one slot.
pub const SLOT: Duration = Duration::from_secs(5);
/// Number of slots (5 minutes).
pub const SLOTS: usize = 60;
const MAX_MICROS: u64 = 600_000_000;

/// The windows reported, by name and number of slots.
pub const WINDOWS: [(&str, usize); 2] = [("1m", 12), ("5m", 60)];

#[derive(Debug)]
struct Slot {
    /// Index of the 5-second period this slot holds (since the windows' start).
    epoch: u64,
    requests: u64,
    errors: u64,
    hist: Option<Histogram<u32>>,
}

/// The ring of slots of one scope (a route, or everything).
#[derive(Debug)]
struct Ring {
    slots: Vec<Slot>,
}

/// Figures for one scope over one window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WindowStats {
    pub requests: u64,
    pub errors: u64,
    pub rate_per_second: f64,
    pub error_rate: f64,
    pub latency_ms: Option<LatencyMs>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LatencyMs {
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub mean: f64,
    pub max: f64,
}

/// The JSON body of `GET /api/v1/performance/metrics`.
#[derive(Debug, Clone, Serialize)]
pub struct PerformanceReport {
    pub uptime_seconds: u64,
    pub overall: BTreeMap<&'static str, WindowStats>,
    pub routes: BTreeMap<String, BTreeMap<&'static str, WindowStats>>,
}

/// Sliding windows for every route and overall.
#[derive(Debug)]
pub struct LatencyWindows {
    start: Instant,
    overall: Ring,
    routes: BTreeMap<Arc<str>, Ring>,
}

impl Ring {
    fn new() -> Self {
        Ring {
            slots: (0..SLOTS)
                .map(|_| Slot {
                    epoch: u64::MAX,
                    requests: 0,
                    errors: 0,
                    hist: None,
                })
                .collect(),
        }
    }

    fn record(&mut self, epoch: u64, micros: u64, error: bool) {
        let idx = (epoch % SLOTS as u64) as usize;
        let Some(slot) = self.slots.get_mut(idx) else {
            return;
        };
        if slot.epoch != epoch {
            slot.epoch = epoch;
            slot.requests = 0;
            slot.errors = 0;
            if let Some(h) = &mut slot.hist {
                h.reset();
            }
        }
        slot.requests += 1;
        slot.errors += u64::from(error);
        if slot.hist.is_none() {
            // Constant, valid bounds: this cannot fail.
            slot.hist = Histogram::new_with_bounds(1, MAX_MICROS, 2).ok();
        }
        if let Some(h) = &mut slot.hist {
            h.saturating_record(micros.clamp(1, MAX_MICROS));
        }
    }

    fn stats(&self, now_epoch: u64, slots: usize, covered: Duration) -> WindowStats {
        let oldest = now_epoch.saturating_sub(slots as u64 - 1);
        let mut requests = 0;
        let mut errors = 0;
        let mut merged: Option<Histogram<u32>> = None;
        for s in &self.slots {
            if s.epoch == u64::MAX || s.epoch < oldest || s.epoch > now_epoch {
                continue;
            }
            requests += s.requests;
            errors += s.errors;
            if let Some(h) = &s.hist {
                match &mut merged {
                    Some(m) => {
                        let _ = m.add(h);
                    }
                    None => merged = Some(h.clone()),
                }
            }
        }
        let secs = covered.as_secs_f64().max(1.0);
        let latency_ms = merged.filter(|h| !h.is_empty()).map(|h| {
            let ms = |v: u64| v as f64 / 1000.0;
            LatencyMs {
                p50: ms(h.value_at_quantile(0.50)),
                p90: ms(h.value_at_quantile(0.90)),
                p95: ms(h.value_at_quantile(0.95)),
                p99: ms(h.value_at_quantile(0.99)),
                p999: ms(h.value_at_quantile(0.999)),
                mean: (h.mean()).round() / 1000.0,
                max: ms(h.max()),
            }
        });
        WindowStats {
            requests,
            errors,
            rate_per_second: requests as f64 / secs,
            error_rate: if requests == 0 {
                0.0
            } else {
                errors as f64 / requests as f64
            },
            latency_ms,
        }
    }
}

impl LatencyWindows {
    /// Empty windows starting at `now`.
    pub fn new(now: Instant) -> Self {
        LatencyWindows {
            start: now,
            overall: Ring::new(),
            routes: BTreeMap::new(),
        }
    }

    fn epoch(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.start).as_nanos() / SLOT.as_nanos()) as u64
    }

    /// Records one request of `route` that took `latency`.
    pub fn record(&mut self, now: Instant, route: &Arc<str>, latency: Duration, error: bool) {
        let epoch = self.epoch(now);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.overall.record(epoch, micros, error);
        match self.routes.get_mut(route) {
            Some(ring) => ring.record(epoch, micros, error),
            None => self
                .routes
                .entry(route.clone())
                .or_insert_with(Ring::new)
                .record(epoch, micros, error),
        }
    }

    /// Figures for every window, overall and per route.
    pub fn report(&self, now: Instant) -> PerformanceReport {
        let epoch = self.epoch(now);
        let uptime = now.saturating_duration_since(self.start);
        let per = |ring: &Ring| {
            WINDOWS
                .iter()
                .map(|(name, slots)| {
                    let nominal = SLOT * (*slots as u32);
                    // Before a window has filled, the rate is over the time actually covered.
                    let covered = uptime.min(nominal);
                    (*name, ring.stats(epoch, *slots, covered))
                })
                .collect::<BTreeMap<_, _>>()
        };
        PerformanceReport {
            uptime_seconds: uptime.as_secs(),
            overall: per(&self.overall),
            routes: self
                .routes
                .iter()
                .map(|(k, r)| (k.to_string(), per(r)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowgate_clock::{Clock, ManualClock};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_and_rates_over_windows() {
        let clock = ManualClock::at_epoch_2026();
        let mut w = LatencyWindows::new(clock.now());
        let chat: Arc<str> = Arc::from("chat");
        // 100 requests over 10 s: 1..=100 ms, one error in ten.
        for i in 1..=100u64 {
            w.record(clock.now(), &chat, ms(i), i % 10 == 0);
            clock.advance(ms(100));
        }
        let r = w.report(clock.now());
        let one = &r.overall["1m"];
        assert_eq!(one.requests, 100);
        assert_eq!(one.errors, 10);
        assert!((one.error_rate - 0.1).abs() < 1e-9);
        assert!(
            (one.rate_per_second - 10.0).abs() < 1e-9,
            "{}",
            one.rate_per_second
        );
        let lat = one.latency_ms.as_ref().unwrap();
        assert!((lat.p50 - 50.0).abs() <= 0.5, "{lat:?}");
        assert!((lat.p99 - 99.0).abs() <= 1.0, "{lat:?}");
        assert!((lat.max - 100.0).abs() <= 1.0, "{lat:?}");
        assert_eq!(r.routes["chat"]["5m"].requests, 100);
    }

    #[test]
    fn old_requests_leave_the_short_window_first() {
        let clock = ManualClock::at_epoch_2026();
        let mut w = LatencyWindows::new(clock.now());
        let a: Arc<str> = Arc::from("a");
        for _ in 0..10 {
            w.record(clock.now(), &a, ms(5), false);
        }
        clock.advance(Duration::from_secs(90));
        w.record(clock.now(), &a, ms(7), false);
        let r = w.report(clock.now());
        assert_eq!(r.overall["1m"].requests, 1);
        assert_eq!(r.overall["5m"].requests, 11);
        clock.advance(Duration::from_secs(300));
        let r = w.report(clock.now());
        assert_eq!(r.overall["5m"].requests, 0);
        assert!(r.overall["5m"].latency_ms.is_none());
    }

    #[test]
    fn ring_reuse_forgets_the_previous_lap() {
        let clock = ManualClock::at_epoch_2026();
        let mut w = LatencyWindows::new(clock.now());
        let a: Arc<str> = Arc::from("a");
        w.record(clock.now(), &a, ms(900), false);
        // Exactly one lap later the same slot index is reused.
        clock.advance(SLOT * SLOTS as u32);
        w.record(clock.now(), &a, ms(1), false);
        let r = w.report(clock.now());
        assert_eq!(r.overall["5m"].requests, 1);
        assert!(r.overall["5m"].latency_ms.as_ref().unwrap().max < 2.0);
    }
}
