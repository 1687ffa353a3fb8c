//! The detector's two memories: the lags (eight days of bucket means, looked up by time)
//! and the window of recent errors kept sorted (whose median is the spread).

use std::collections::VecDeque;

use super::{BUCKET, KEEP, MAX_ERRORS};

/// The most buckets held: eight days and the one being filled.
const MAX_BUCKETS: usize = (KEEP / BUCKET) as usize + 2;

/// Room for one more in a collection of `len` with `capacity` that never holds more than
/// `bound`: doubling, but never past the bound (a doubling past it would hold up to twice
/// the memory the detector needs).
pub(super) fn room(len: usize, capacity: usize, bound: usize) -> usize {
    if len < capacity {
        0
    } else {
        len.max(8).min(bound.saturating_sub(len)).max(1)
    }
}

/// One bucket of the lags: `[slot·BUCKET, (slot + 1)·BUCKET)`, the mean of the points in
/// it and how many. 16 bytes.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    slot: i32,
    count: u32,
    mean: f64,
}

impl Bucket {
    fn start(&self) -> i64 {
        i64::from(self.slot) * BUCKET
    }

    /// How far `t` is from the bucket's span (0 inside it).
    fn distance(&self, t: i64) -> i64 {
        let start = self.start();
        if t < start {
            start - t
        } else if t >= start + BUCKET {
            t - (start + BUCKET) + 1
        } else {
            0
        }
    }
}

/// The slot of `t`; times beyond ±20,000 years share the end slots (defined, never a panic).
fn slot(t: i64) -> i32 {
    t.div_euclid(BUCKET)
        .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// The values seen, as bucket means in time order.
#[derive(Debug, Clone, Default)]
pub(super) struct Lags {
    buckets: VecDeque<Bucket>,
}

impl Lags {
    /// Learns `value` at `t`: in time order this is a push or an update of the last bucket;
    /// a time out of order finds its bucket.
    pub(super) fn add(&mut self, t: i64, value: f64) {
        let slot = slot(t);
        let i = match self.buckets.back() {
            Some(last) if last.slot <= slot => {
                if last.slot == slot {
                    self.buckets.len() - 1
                } else {
                    self.buckets.len()
                }
            }
            _ => self.buckets.partition_point(|b| b.slot < slot),
        };
        match self.buckets.get_mut(i) {
            Some(b) if b.slot == slot => {
                b.count = b.count.saturating_add(1);
                b.mean += (value - b.mean) / f64::from(b.count);
            }
            _ => {
                let more = room(self.buckets.len(), self.buckets.capacity(), MAX_BUCKETS);
                self.buckets.reserve_exact(more);
                self.buckets.insert(
                    i,
                    Bucket {
                        slot,
                        count: 1,
                        mean: value,
                    },
                )
            }
        }
    }

    /// The mean of the bucket nearest `then`, if one is within `within` seconds of it.
    pub(super) fn nearest(&self, then: i64, within: i64) -> Option<f64> {
        let from = self
            .buckets
            .partition_point(|b| b.start() + BUCKET <= then - within);
        self.buckets
            .range(from..)
            .take_while(|b| b.start() <= then + within)
            .map(|b| (b.distance(then), b.mean))
            .filter(|(d, _)| *d <= within)
            .min_by_key(|(d, _)| *d)
            .map(|(_, m)| m)
    }

    /// Forgets the buckets that ended before `t`.
    pub(super) fn forget_before(&mut self, t: i64) {
        while self
            .buckets
            .front()
            .is_some_and(|b| b.start() + BUCKET <= t)
        {
            self.buckets.pop_front();
        }
    }

    /// Bytes held on the heap.
    pub(super) fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<Bucket>()
    }

    /// Buckets held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.buckets.len()
    }
}

/// Values kept sorted, for a median read in place: an insertion or a removal is a binary
/// search and a move of at most a day's errors (1,440 values).
#[derive(Debug, Clone, Default)]
pub(super) struct SortedWindow {
    values: Vec<f64>,
}

impl SortedWindow {
    pub(super) fn insert(&mut self, x: f64) {
        let i = self.values.partition_point(|v| v.total_cmp(&x).is_lt());
        let more = room(self.values.len(), self.values.capacity(), MAX_ERRORS + 1);
        self.values.reserve_exact(more);
        self.values.insert(i, x);
    }

    /// Removes one value equal to `x` (one that was inserted).
    pub(super) fn remove(&mut self, x: f64) {
        let i = self.values.partition_point(|v| v.total_cmp(&x).is_lt());
        if self.values.get(i).is_some_and(|v| v.total_cmp(&x).is_eq()) {
            self.values.remove(i);
        }
    }

    /// Bytes held on the heap.
    pub(super) fn heap_bytes(&self) -> usize {
        self.values.capacity() * std::mem::size_of::<f64>()
    }

    /// The upper median; 0 when empty.
    pub(super) fn median(&self) -> f64 {
        self.values
            .get(self.values.len() / 2)
            .copied()
            .unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::{BUCKET, Lags, SortedWindow};

    #[test]
    fn buckets_hold_means_and_are_found_by_time() {
        let mut l = Lags::default();
        for (i, v) in [1.0, 2.0, 3.0, 4.0, 5.0, 6.0].iter().enumerate() {
            l.add(60 * i as i64, *v);
        }
        // 0..300: 1..5 (mean 3); 300..600: 6.
        assert_eq!(l.len(), 2);
        assert_eq!(l.nearest(100, 150), Some(3.0));
        assert_eq!(l.nearest(300, 150), Some(6.0));
        assert_eq!(l.nearest(1_000, 150), None);
        // Out of order: into its own bucket.
        l.add(-10, 10.0);
        l.add(120, 9.0);
        assert_eq!(l.nearest(-100, 150), Some(10.0));
        assert_eq!(l.nearest(0, 0), Some(4.0));
        l.forget_before(BUCKET);
        assert_eq!(l.len(), 1);
        // Hourly points each keep their own bucket, found within half a step.
        let mut l = Lags::default();
        for h in 0..5 {
            l.add(h * 3600, h as f64);
        }
        assert_eq!(l.nearest(2 * 3600 + 100, 1800), Some(2.0));
        assert_eq!(l.nearest(2 * 3600 - 1000, 1800), Some(2.0));
        // Absurd times are defined.
        l.add(i64::MAX, 1.0);
        l.add(i64::MIN, 1.0);
        assert!(l.nearest(i64::MAX / 2, 1800).is_none());
    }

    #[test]
    fn the_median_follows_insertions_and_removals() {
        let mut w = SortedWindow::default();
        assert_eq!(w.median(), 0.0);
        for x in [5.0, 1.0, 3.0, 4.0, 2.0] {
            w.insert(x);
        }
        assert_eq!(w.median(), 3.0);
        w.remove(3.0);
        w.remove(9.0);
        assert_eq!(w.median(), 4.0);
        w.insert(f64::INFINITY);
        w.remove(1.0);
        assert_eq!(w.median(), 5.0);
    }
}
