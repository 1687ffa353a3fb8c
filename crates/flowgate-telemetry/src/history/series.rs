//! One series over the three resolutions. Samples come every second (each covers the time
//! since the one before); each is merged into its 10 s, its minute and its hour, which
//! become points when they end, and kept a while in a live ring for what must look at the
//! last seconds (alert rules, the live view). Merging keeps what the value needs, not the
//! values: amounts are summed (a rate is the sum over the bucket's length), ratios keep
//! numerator and denominator, latencies their histogram, gauges their sum and count. So a
//! minute's p95 is the p95 of all the minute's requests, and its rate the minute's own,
//! not an average of averages. A minute or hour point also keeps the lowest and highest
//! 10 s value within it.

use std::collections::VecDeque;

use hdrhistogram::Histogram;

use super::point::{Point, Resolution};

/// The percentiles a latency series is stored as (suffixes `_p50`, `_p95`, `_p99`).
pub const QUANTILES: [(&str, f64); 3] = [("p50", 0.50), ("p95", 0.95), ("p99", 0.99)];

/// One 10-second sample of a series.
#[derive(Debug, Clone)]
pub enum Sample {
    /// A level (memory, queue depth): the bucket's mean.
    Gauge(f64),
    /// How much happened in the 10 s (requests, tokens, dollars): stored per `per`
    /// seconds of the bucket.
    Amount { amount: f64, per: f64 },
    /// A part of a whole (errors of requests, hits of lookups): absent when the whole is 0.
    Ratio(f64, f64),
    /// Durations in microseconds: stored in milliseconds at [`QUANTILES`].
    Latency(Histogram<u32>),
}

#[derive(Debug, Clone)]
enum Acc {
    Gauge { sum: f64, n: u64 },
    Amount { sum: f64, per: f64 },
    Ratio(f64, f64),
    Latency(Box<Histogram<u32>>),
}

impl Acc {
    fn of(s: Sample) -> Acc {
        match s {
            Sample::Gauge(v) => Acc::Gauge { sum: v, n: 1 },
            Sample::Amount { amount, per } => Acc::Amount { sum: amount, per },
            Sample::Ratio(a, b) => Acc::Ratio(a, b),
            Sample::Latency(h) => Acc::Latency(Box::new(h)),
        }
    }

    fn merge(&mut self, o: &Acc) {
        match (self, o) {
            (Acc::Gauge { sum, n }, Acc::Gauge { sum: s, n: m }) => {
                *sum += s;
                *n += m;
            }
            (Acc::Amount { sum, .. }, Acc::Amount { sum: s, .. }) => *sum += s,
            (Acc::Ratio(a, b), Acc::Ratio(c, d)) => {
                *a += c;
                *b += d;
            }
            (Acc::Latency(h), Acc::Latency(o)) => {
                let _ = h.add(&**o);
            }
            // A series does not change kind; if it did, the bucket keeps the first.
            _ => {}
        }
    }

    /// The values over a bucket of `secs` seconds, one per output (three for latencies);
    /// `None` where there is none (an empty ratio or histogram).
    fn values(&self, secs: f64) -> Vec<Option<f64>> {
        match self {
            Acc::Gauge { sum, n } => vec![(*n > 0).then(|| sum / *n as f64)],
            Acc::Amount { sum, per } => vec![Some(sum / secs * per)],
            Acc::Ratio(a, b) => vec![(*b > 0.0).then(|| a / b)],
            Acc::Latency(h) => QUANTILES
                .iter()
                .map(|(_, q)| (!h.is_empty()).then(|| h.value_at_quantile(*q) as f64 / 1000.0))
                .collect(),
        }
    }
}

/// A bucket being filled at one resolution.
#[derive(Debug, Clone)]
struct Level {
    start: u64,
    acc: Option<Acc>,
    /// Lowest and highest 10-second value, per output.
    lo: Vec<f64>,
    hi: Vec<f64>,
}

impl Level {
    fn new(start: u64) -> Level {
        Level {
            start,
            acc: None,
            lo: Vec::new(),
            hi: Vec::new(),
        }
    }
}

/// How long the live ring keeps each second (amounts, ratios and gauges; latencies are
/// not kept live: their histograms are large).
pub const LIVE_SECS: u64 = 900;

/// A series' buckets at 10 s, the minute and the hour, and its last seconds.
#[derive(Debug, Clone)]
pub struct Series {
    levels: [Level; 3],
    live: VecDeque<(u64, Acc)>,
    /// When it last had a sample.
    last: Option<u64>,
}

/// The names a series is stored under: `base{labels}`, or for a latency
/// `base_p50{labels}` and so on.
pub fn names(name: &str, latency: bool) -> Vec<String> {
    if !latency {
        return vec![name.to_string()];
    }
    let (base, labels) = name.split_at(name.find('{').unwrap_or(name.len()));
    QUANTILES
        .iter()
        .map(|(q, _)| format!("{base}_{q}{labels}"))
        .collect()
}

impl Series {
    pub fn new(now: u64) -> Series {
        let level = |secs: u64| Level::new(now - now % secs);
        Series {
            levels: [level(10), level(60), level(3600)],
            live: VecDeque::new(),
            last: None,
        }
    }

    /// The sample of the time up to `end` (Unix seconds): merged into its buckets; the
    /// points of the buckets that ended with it or before go to `out` as (output index,
    /// resolution, point).
    pub fn push(
        &mut self,
        end: u64,
        sample: Option<Sample>,
        out: &mut Vec<(usize, Resolution, Point)>,
    ) {
        // Buckets that ended before this sample's second began.
        self.close(end - 1, out);
        if let Some(s) = sample {
            self.last = Some(end);
            let acc = Acc::of(s);
            for level in &mut self.levels {
                match &mut level.acc {
                    Some(a) => a.merge(&acc),
                    None => level.acc = Some(acc.clone()),
                }
            }
            if !matches!(acc, Acc::Latency(_)) {
                self.live.push_back((end, acc));
            }
        }
        while self
            .live
            .front()
            .is_some_and(|(t, _)| *t + LIVE_SECS <= end)
        {
            self.live.pop_front();
        }
        self.close(end, out);
    }

    /// Closes the buckets over by `at` (those ending at or before it; the next starts with
    /// the bucket holding `at`), finest first: a 10 s point's value goes into its minute's
    /// and hour's lowest and highest.
    fn close(&mut self, at: u64, out: &mut Vec<(usize, Resolution, Point)>) {
        for (i, res) in Resolution::ALL.into_iter().enumerate() {
            let secs = res.secs();
            if at < self.levels[i].start + secs {
                continue;
            }
            let mut closed = Vec::new();
            close(&mut self.levels[i], res, &mut closed);
            self.levels[i].start = at - at % secs;
            if res == Resolution::TenSeconds {
                for (k, _, p) in &closed {
                    for level in &mut self.levels[1..] {
                        if level.lo.len() <= *k {
                            level.lo.resize(k + 1, f64::INFINITY);
                            level.hi.resize(k + 1, f64::NEG_INFINITY);
                        }
                        level.lo[*k] = level.lo[*k].min(p.value);
                        level.hi[*k] = level.hi[*k].max(p.value);
                    }
                }
            }
            out.extend(closed);
        }
    }

    /// When it last had a sample (Unix seconds).
    pub fn last_seen(&self) -> Option<u64> {
        self.last
    }

    /// The value over the last `secs` seconds up to `now`, from the live ring; `None` for
    /// a latency, or when nothing was sampled then (or, for a ratio, nothing counted).
    pub fn live(&self, now: u64, secs: u64) -> Option<f64> {
        let mut acc: Option<Acc> = None;
        for (_, a) in self
            .live
            .iter()
            .filter(|(t, _)| *t + secs > now && *t <= now)
        {
            match &mut acc {
                Some(m) => m.merge(a),
                None => acc = Some(a.clone()),
            }
        }
        acc?.values(secs as f64).first().copied().flatten()
    }
}

/// Writes `level`'s bucket, if anything went into it, and empties it.
fn close(level: &mut Level, res: Resolution, out: &mut Vec<(usize, Resolution, Point)>) {
    if let Some(acc) = level.acc.take() {
        for (i, v) in acc.values(res.secs() as f64).into_iter().enumerate() {
            if let Some(v) = v {
                let (min, max) = match (level.lo.get(i), level.hi.get(i)) {
                    (Some(lo), Some(hi)) if lo.is_finite() && hi.is_finite() => (*lo, *hi),
                    _ => (v, v),
                };
                out.push((
                    i,
                    res,
                    Point {
                        t: level.start,
                        value: v,
                        min,
                        max,
                    },
                ));
            }
        }
    }
    level.lo.clear();
    level.hi.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: &[u64]) -> Histogram<u32> {
        let mut h = Histogram::new_with_bounds(1, 600_000_000, 2).unwrap();
        for v in values {
            h.record(*v).unwrap();
        }
        h
    }

    fn points(
        out: &[(usize, Resolution, Point)],
        res: Resolution,
        i: usize,
    ) -> Vec<(u64, f64, f64, f64)> {
        out.iter()
            .filter(|(j, r, _)| *r == res && *j == i)
            .map(|(_, _, p)| (p.t, p.value, p.min, p.max))
            .collect()
    }

    const T0: u64 = 1_796_083_200;

    #[test]
    fn a_rate_at_the_minute_is_the_minutes_own_with_its_lowest_and_highest_10_seconds() {
        let mut s = Series::new(T0);
        let mut out = Vec::new();
        // 10, 20, ..., 60 requests in the six 10 s of a minute.
        for i in 1..=6u64 {
            s.push(
                T0 + i * 10,
                Some(Sample::Amount {
                    amount: (i * 10) as f64,
                    per: 1.0,
                }),
                &mut out,
            );
        }
        assert_eq!(points(&out, Resolution::TenSeconds, 0).len(), 6);
        assert_eq!(
            points(&out, Resolution::TenSeconds, 0)[0],
            (T0, 1.0, 1.0, 1.0)
        );
        // 210 requests in 60 s.
        assert_eq!(points(&out, Resolution::Minute, 0), [(T0, 3.5, 1.0, 6.0)]);
        assert!(points(&out, Resolution::Hour, 0).is_empty());
    }

    #[test]
    fn a_minutes_percentile_is_of_all_its_requests_not_an_average_of_percentiles() {
        let mut s = Series::new(T0);
        let mut out = Vec::new();
        // Five quiet 10 s of fast requests, one of slow ones.
        for _ in 0..5 {
            let end = T0 + 10 * (1 + points(&out, Resolution::TenSeconds, 0).len() as u64);
            s.push(end, Some(Sample::Latency(hist(&[1000; 100]))), &mut out);
        }
        s.push(
            T0 + 60,
            Some(Sample::Latency(hist(&[500_000; 100]))),
            &mut out,
        );
        let p50 = points(&out, Resolution::Minute, 0);
        let p95 = points(&out, Resolution::Minute, 1);
        assert_eq!(p50.len(), 1);
        assert!((p50[0].1 - 1.0).abs() < 0.02, "{p50:?}");
        // 100 of 600 are slow: the p95 is slow, the highest 10-s p95 too, the lowest fast.
        assert!((p95[0].1 - 500.0).abs() < 5.0, "{p95:?}");
        assert!((p95[0].2 - 1.0).abs() < 0.02 && (p95[0].3 - 500.0).abs() < 5.0);
        assert_eq!(
            names("latency_ms{route=\"chat\"}", true)[1],
            "latency_ms_p95{route=\"chat\"}"
        );
    }

    #[test]
    fn ratios_gauges_and_gaps_downsample_by_their_parts() {
        let mut s = Series::new(T0);
        let mut g = Series::new(T0);
        let mut out = Vec::new();
        let mut gauges = Vec::new();
        // 1 error of 100, then 9 of 10: the minute's ratio is 10 / 110, not (0.01 + 0.9) / 2.
        s.push(T0 + 10, Some(Sample::Ratio(1.0, 100.0)), &mut out);
        s.push(T0 + 20, Some(Sample::Ratio(9.0, 10.0)), &mut out);
        // Nothing asked: no ratio.
        s.push(T0 + 30, Some(Sample::Ratio(0.0, 0.0)), &mut out);
        for i in 4..=6 {
            s.push(T0 + i * 10, None, &mut out);
        }
        let m = points(&out, Resolution::Minute, 0);
        assert_eq!(m.len(), 1);
        assert!((m[0].1 - 10.0 / 110.0).abs() < 1e-12);
        assert_eq!((m[0].2, m[0].3), (0.01, 0.9));
        assert_eq!(points(&out, Resolution::TenSeconds, 0).len(), 2);
        // A gauge's mean; a missed tick still closes the minute at the next sample.
        for (i, v) in [(1, 100.0), (2, 300.0), (9, 50.0)] {
            g.push(T0 + i * 10, Some(Sample::Gauge(v)), &mut gauges);
        }
        assert_eq!(
            points(&gauges, Resolution::Minute, 0),
            [(T0, 200.0, 100.0, 300.0)]
        );
        // The hour: every 10 s of it.
        for i in 10..=360u64 {
            g.push(T0 + i * 10, Some(Sample::Gauge(50.0)), &mut gauges);
        }
        let h = points(&gauges, Resolution::Hour, 0);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].0, T0);
        assert!(
            (h[0].1 - (400.0 + 50.0 * 352.0) / 354.0).abs() < 1e-9,
            "{h:?}"
        );
    }
}
