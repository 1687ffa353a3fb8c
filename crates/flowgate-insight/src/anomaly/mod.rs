//! Anomaly detection on one series, online and causal: each point is scored from the state
//! the points before it left, then learned from. No per-series tuning: every setting is a
//! count of points, a share of a day, or a multiple of the series' own spread.
//!
//! **What is expected** comes from competing predictors: the series' recent level (an
//! exponentially weighted mean), the same time yesterday, the median of the same time on
//! the last three days, and the same time last week, each lagged one corrected by its own
//! recent bias (its mean signed error over about two hours). Each is judged by its mean
//! absolute error over about two days, apart for weekdays and the weekend, and the best
//! one gives the expectation: a series with a daily cycle comes to be predicted by the last
//! days, one with a weekly cycle by last week (at least on weekends), one without by its
//! level. Seasonality is found by what predicts, not declared. The **spread** is 1.4826
//! times the median absolute error over about a day (a few hours of a changing regime do not
//! inflate it), floored so that a constant series still has one, and scaled by how the
//! noise grows with the level ([`noise`]: traffic is noisier at its peaks).
//!
//! A point is as surprising as the best explanation leaves it: its standardized error is
//! the smallest among the trusted predictors (judged, and within 1.5 times the best one's
//! error; each by the chosen one's spread), so that a weekend's start, which last week
//! explains, is not an alarm, while a spike, a shift or a drift fails them all. Four scores, the largest
//! kept, each in [0, 1]:
//! - **point**: `1 − exp(−(z/4.4)⁴)`: 0.2 at three spreads, 0.5 at four, 0.97 at six;
//! - **shift**: a two-sided CUSUM of the standardized errors, capped so that it falls back
//!   within a dozen points once the cause is gone, each error shrunk by how much the errors'
//!   lag-one autocorrelation inflates a sum (a machine metric's wandering noise is not a
//!   shift);
//! - **offset**: the smallest absolute bias among the trusted lagged predictors, in spreads
//!   (0.5 at 2.3): a series that has sat off what yesterday and last week say for hours, as a
//!   drift does;
//! - **variance**: the recent error the best explanation leaves, against the spread (a
//!   series that got noisier).
//!
//! At steps of five minutes or less a lagged value is the mean of its bucket and the two
//! either side (a quarter of an hour): a third of one point's noise, so that a spike of
//! seven deviations is not half hidden by the noise of what predicted it.
//!
//! A run of five points past 2.5 spreads on one side is accepted as a level shift (the
//! point that completes it scores 0.95): the
//! level moves by the run's median, the lagged predictors' past values are moved by it
//! (until their lag has passed the shift; only once last week predicts, so that a first
//! Monday's ramp, a "shift" to nothing learned yet, does not corrupt the lags) and their
//! biases start over. It is reported when it starts, not for a day after. Biases are kept
//! in units of the noise where they were made, so that a shift of a fifth of the traffic is
//! larger at the peak than at night. Learning is robust: what updates the levels and the
//! errors is clipped at three spreads. The first [`WARMUP`] points are learned from and
//! scored 0. Memory: the last eight days for the lags, in buckets of [`BUCKET`] seconds
//! (the mean of the points in each; a series at a coarser step keeps its points): at most
//! 2,304 buckets of 16 bytes, ~37 KB, whatever the step.

use std::collections::VecDeque;

pub mod eval;
mod noise;
pub mod watch;
mod window;

use noise::LevelNoise;

use window::{Lags, SortedWindow};

/// Points learned before any is scored.
pub const WARMUP: u64 = 12;

const DAY: i64 = 86_400;
const WEEK: i64 = 7 * DAY;
/// Points kept for the lags, in time.
const KEEP: i64 = 8 * DAY;
/// The most errors kept for the spread (a day of them, at a step of a minute).
const MAX_ERRORS: usize = 1440;
/// Times are held within ±this many seconds (about 10,000 years).
const MAX_TIME: i64 = (i32::MAX as i64) * BUCKET / 2;
/// The lags' resolution (seconds): points finer than this are kept as their bucket's mean,
/// which is a steadier lag than one point (and bounds the memory a series takes).
pub const BUCKET: i64 = 300;

/// The point score is `1 − exp(−(z / POINT_SCALE)⁴)`: 0.2 at three spreads, 0.5 at four,
/// 0.8 at five, 0.97 at six (noise rarely goes past four; an incident does at once).
const POINT_SCALE: f64 = 4.4;
/// The offset score's scale: a bias is a mean over hours, far steadier than a point, so a
/// sustained offset of 2.3 spreads scores 0.5 (a point needs 4).
const OFFSET_SCALE: f64 = 2.5;
/// CUSUM allowance (in spreads) and the sum at which the shift score is 0.5.
const CUSUM_K: f64 = 1.0;
const CUSUM_HALF: f64 = 6.0;
/// A run of this many points past [`SHIFT_Z`] spreads on one side is a level shift.
const SHIFT_RUN: usize = 5;
const SHIFT_Z: f64 = 2.5;
/// The score of the point that completes a level shift.
const SHIFT_SCORE: f64 = 0.95;

/// What a point was found to be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// In [0, 1]: how anomalous.
    pub score: f64,
    /// What was expected, and the band (three spreads) around it.
    pub expected: f64,
    pub lower: f64,
    pub upper: f64,
    /// +1 above what was expected, −1 under it, 0 on it.
    pub direction: i8,
}

/// Exponentially weighted mean with a warm start (the plain mean while it has seen fewer
/// than `1/alpha` values).
#[derive(Debug, Clone, Copy, Default)]
struct Ewm {
    value: f64,
    n: u64,
}

impl Ewm {
    fn add(&mut self, x: f64, alpha: f64) {
        self.n += 1;
        let a = alpha.max(1.0 / self.n as f64);
        self.value += a * (x - self.value);
    }
}

/// The predictors, in the order of [`Detector::errors`]: the level, yesterday, the median
/// of the last three days, last week.
const PREDICTORS: usize = 4;
const LEVEL: usize = 0;

/// One series' detector (see the module's documentation).
#[derive(Debug, Clone)]
pub struct Detector {
    n: u64,
    /// The smallest step between points seen (seconds).
    step: Option<i64>,
    last_t: Option<i64>,
    /// The recent level.
    level: Ewm,
    /// Each predictor's recent mean signed error (its bias, added to what it predicts)
    /// and its mean absolute error, while it can predict.
    biases: [Ewm; PREDICTORS],
    /// Biases accepted as the new normal (see [`Detector::offset`]), and since when the
    /// offset score has stood at 0.5 or more.
    accepted: [f64; PREDICTORS],
    offset_since: Option<i64>,
    errors: [[Ewm; PREDICTORS]; 2],
    /// The last absolute errors of the predictions used (about a day of them): their
    /// median is the spread, which a few hours of a changing regime do not inflate.
    residuals: VecDeque<f64>,
    /// The same, sorted: the median is read in place.
    sorted: SortedWindow,
    /// Their median, as of the last point.
    mad: f64,
    /// The recent error, for changes in variance.
    recent: Ewm,
    /// How the noise grows with the level: errors, spreads and biases are kept divided by
    /// its factor where they were made.
    noise: LevelNoise,
    cusum_up: f64,
    cusum_down: f64,
    /// The last standardized error, and the recent means of the product of successive
    /// ones and of their squares: their lag-one autocorrelation (see [`Detector::rho`]).
    z_prev: f64,
    zz: Ewm,
    z2: Ewm,
    /// The errors of the current run beyond [`SHIFT_Z`] spreads on one side.
    run: Vec<f64>,
    seen: Lags,
    /// Shifts accepted lately: when they began and by how much.
    shifts: Vec<(i64, f64)>,
}

impl Default for Detector {
    fn default() -> Self {
        Detector::new()
    }
}

/// `x`, or 0 when it is not a number (no score is ever NaN).
fn finite(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

/// A standardized size `z` (≥ 0) as a score in [0, 1]: 0.5 at `half`.
fn squash(z: f64, half: f64) -> f64 {
    let z = finite(z).max(0.0);
    finite(z * z / (z * z + half * half)).clamp(0.0, 1.0)
}

impl Detector {
    pub fn new() -> Detector {
        Detector {
            n: 0,
            step: None,
            last_t: None,
            level: Ewm::default(),
            biases: [Ewm::default(); PREDICTORS],
            accepted: [0.0; PREDICTORS],
            offset_since: None,
            errors: [[Ewm::default(); PREDICTORS]; 2],
            residuals: VecDeque::new(),
            sorted: SortedWindow::default(),
            mad: 0.0,
            recent: Ewm::default(),
            noise: LevelNoise::default(),
            cusum_up: 0.0,
            cusum_down: 0.0,
            z_prev: 0.0,
            zz: Ewm::default(),
            z2: Ewm::default(),
            run: Vec::new(),
            seen: Lags::default(),
            shifts: Vec::new(),
        }
    }

    /// Points seen.
    pub fn len(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The memory the detector holds: itself and what it keeps on the heap (the lags, the
    /// window of errors, the shifts).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.seen.heap_bytes()
            + self.sorted.heap_bytes()
            + self.residuals.capacity() * std::mem::size_of::<f64>()
            + self.run.capacity() * std::mem::size_of::<f64>()
            + self.shifts.capacity() * std::mem::size_of::<(i64, f64)>()
    }

    /// What was seen nearest `then`, within half a step, moved by the shifts accepted since
    /// (up to `now`): after a level shift, yesterday's value is yesterday's plus the shift
    /// until a day has passed.
    fn at(&self, then: i64, now: i64) -> Option<f64> {
        let step = self.step?;
        let half = (step / 2).max(BUCKET / 2);
        let v = self.seen.nearest(then, half)?;
        // At steps of a bucket or less, the buckets either side too: a lag is a noisy
        // point, and three buckets' mean (a quarter of an hour) has a third of its
        // variance, which the shape barely bends over so short a time.
        let v = if step <= BUCKET {
            let (mut sum, mut n) = (v, 1.0);
            for side in [then - BUCKET, then + BUCKET] {
                if let Some(x) = self.seen.nearest(side, half) {
                    sum += x;
                    n += 1.0;
                }
            }
            sum / n
        } else {
            v
        };
        let moved: f64 = self
            .shifts
            .iter()
            .filter(|(at, _)| *at > then && *at <= now)
            .map(|(_, by)| by)
            .sum();
        Some(v + moved)
    }

    /// Each predictor's prediction for `t`, where it has one: as it is, then with its bias.
    fn predictions(&self, t: i64) -> [Option<f64>; PREDICTORS] {
        let three = {
            let mut v: Vec<f64> = (1..=3).filter_map(|d| self.at(t - d * DAY, t)).collect();
            v.sort_by(f64::total_cmp);
            (v.len() == 3).then(|| v[1])
        };
        let raw = [
            Some(self.level.value),
            self.at(t - DAY, t),
            three,
            self.at(t - WEEK, t),
        ];
        let mut out = [None; PREDICTORS];
        for i in 0..PREDICTORS {
            out[i] = raw[i].map(|r| {
                r + if i == LEVEL {
                    0.0
                } else {
                    // Kept in units of the noise where it was made: a shift of a fifth
                    // of the traffic is more at the peak than at night.
                    self.biases[i].value * self.noise.factor(r)
                }
            });
        }
        out
    }

    /// Weekdays (0) or the weekend (1), UTC: predictors are judged apart in each, so that
    /// one that fails at weekends (yesterday, on a Saturday) is not chosen for them.
    fn regime(t: i64) -> usize {
        // 1970-01-01 was a Thursday.
        usize::from((t.div_euclid(DAY) + 3).rem_euclid(7) >= 5)
    }

    /// The predictor with the smallest recent error in `t`'s regime among those that
    /// predict `t` and have been judged on enough points there.
    fn best(&self, t: i64, p: &[Option<f64>; PREDICTORS]) -> usize {
        let e = &self.errors[Self::regime(t)];
        (0..PREDICTORS)
            .filter(|i| p[*i].is_some() && (*i == LEVEL || e[*i].n >= 2 * WARMUP))
            .min_by(|a, b| e[*a].value.total_cmp(&e[*b].value))
            .unwrap_or(LEVEL)
    }

    /// How many spreads `value` is from what the predictors expected, taking the one that
    /// explains it best among those trusted (judged, and nearly as good as the `chosen`
    /// one): a point is as anomalous as the best explanation leaves it. At a weekend's
    /// start yesterday's shape fails but last week's explains it; a spike, a shift or a
    /// drift fails them all.
    fn least_surprise(
        &self,
        t: i64,
        p: &[Option<f64>; PREDICTORS],
        chosen: usize,
        value: f64,
        scale: f64,
    ) -> f64 {
        let e = &self.errors[Self::regime(t)];
        let best = e[chosen].value;
        let mut z = p[chosen].map_or(0.0, |x| (value - x) / scale);
        for i in 0..PREDICTORS {
            let Some(x) = p[i] else { continue };
            if i == chosen || i == LEVEL || e[i].n < 2 * WARMUP || e[i].value > 1.5 * best {
                continue;
            }
            // Each by the chosen one's spread: one of its own (wider, as it predicts
            // worse) let a spike through as "explained" by the noisiest predictor.
            let zi = (value - x) / scale;
            if zi.abs() < z.abs() {
                z = zi;
            }
        }
        z
    }

    /// How far (in spreads) the series has sat off what the lagged predictors say for a
    /// while: the smallest bias among the trusted ones. A drift moves all of them; a weekend
    /// moves those last week does not explain; an accepted shift none (the lagged values
    /// are moved by it). An offset that has stood for an hour (and a dozen points) is
    /// accepted, as a shift is: only a bias beyond it counts then, or none once the series
    /// comes back (a first weekend, before last week can explain it, is an offset for an
    /// hour, not for two days).
    fn offset(
        &self,
        t: i64,
        p: &[Option<f64>; PREDICTORS],
        chosen: usize,
        scale: f64,
        factor: f64,
    ) -> f64 {
        let e = &self.errors[Self::regime(t)];
        let best = e[chosen].value;
        (0..PREDICTORS)
            .filter(|i| *i != LEVEL && p[*i].is_some() && e[*i].n >= 2 * WARMUP)
            .filter(|i| e[*i].value <= 1.5 * best || *i == chosen)
            .map(|i| {
                let b = self.biases[i].value;
                let beyond = b.abs().min((b - self.accepted[i]).abs()) * factor;
                beyond / (e[i].value * 1.25 * factor).max(scale)
            })
            .min_by(f64::total_cmp)
            .unwrap_or(0.0)
    }

    /// Whether a run of errors sits together: their median absolute deviation from their
    /// median within 1.5 spreads (`scale`).
    fn steady(run: &[f64], scale: f64) -> bool {
        let mut v = run.to_vec();
        v.sort_by(f64::total_cmp);
        let median = v[v.len() / 2];
        let mut dev: Vec<f64> = v.iter().map(|x| (x - median).abs()).collect();
        dev.sort_by(f64::total_cmp);
        dev[dev.len() / 2] <= 1.5 * scale
    }

    /// Whether a point of standardized error `z` (error `r`) completes a level shift: the
    /// run [`Detector::learn`] keeps, with it, is [`SHIFT_RUN`] long and steady.
    fn completes_shift(&self, z: f64, r: f64, scale: f64) -> bool {
        if self.n <= WARMUP
            || z.abs() <= SHIFT_Z
            || self.run.len() + 1 < SHIFT_RUN
            || self.run.last().is_some_and(|l| l.signum() != r.signum())
        {
            return false;
        }
        let mut run = self.run.clone();
        run.push(r);
        if !Self::steady(&run, scale) {
            run.remove(0);
        }
        run.len() >= SHIFT_RUN
    }

    /// Accepts the biases as they are once the offset score has stood at 0.5 or more for
    /// an hour and a dozen points.
    fn accept_offset(&mut self, t: i64, off: f64) {
        if off < 0.5 {
            self.offset_since = None;
            return;
        }
        let since = *self.offset_since.get_or_insert(t);
        let hold = (12 * self.step.unwrap_or(300)).max(3600);
        if t - since >= hold {
            for (a, b) in self.accepted.iter_mut().zip(&self.biases) {
                *a = b.value;
            }
            self.offset_since = None;
        }
    }

    /// The lag-one autocorrelation of the standardized errors, in [0, 0.95]: a metric whose
    /// noise wanders (a machine's load) leaves errors that persist, and a sum of them grows
    /// by itself. The CUSUM takes each error divided by how much that inflates a sum's
    /// deviation, `sqrt((1 + ρ) / (1 − ρ))`, so that it stands for the same false-alarm
    /// rate whatever the noise's memory.
    fn rho(&self) -> f64 {
        if self.z2.n < 2 * WARMUP || self.z2.value <= 0.0 {
            return 0.0;
        }
        finite(self.zz.value / self.z2.value).clamp(0.0, 0.95)
    }

    /// The spread, floored: a constant series still has a scale to be judged against.
    fn scale(&self) -> f64 {
        let floor = 1e-6 * self.level.value.abs().max(1e-6);
        // The median absolute deviation of a normal series is 0.6745 of its deviation.
        (self.mad * 1.4826).max(floor)
    }

    /// Scores `value` at `t` (Unix seconds) from what came before, then learns it.
    /// A value that is not a number scores 0 and is not learned.
    pub fn observe(&mut self, t: i64, value: f64) -> Verdict {
        // About ±10,000 years: lags and slots never overflow.
        let t = t.clamp(-MAX_TIME, MAX_TIME);
        let p = self.predictions(t);
        let chosen = self.best(t, &p);
        let expected = finite(p[chosen].unwrap_or(self.level.value));
        if !value.is_finite() {
            return Verdict {
                score: 0.0,
                expected,
                lower: expected,
                upper: expected,
                direction: 0,
            };
        }
        let factor = self.noise.factor(expected);
        let scale = self.scale() * factor;
        let r = value - expected;
        let z = if self.n == 0 {
            0.0
        } else {
            self.least_surprise(t, &p, chosen, value, scale)
        };
        // Scores, from the state before this point.
        let point = finite(1.0 - (-(z.abs() / POINT_SCALE).powi(4)).exp()).clamp(0.0, 1.0);
        let rho = self.rho();
        let zc = z.clamp(-4.0, 4.0) * ((1.0 - rho) / (1.0 + rho)).sqrt();
        // Capped: a sum that stopped growing falls under half within a dozen points.
        let up = (self.cusum_up + zc - CUSUM_K).clamp(0.0, 2.0 * CUSUM_HALF);
        let down = (self.cusum_down - zc - CUSUM_K).clamp(0.0, 2.0 * CUSUM_HALF);
        let shift = squash(up.max(down), CUSUM_HALF);
        // The error the best explanation leaves (a Monday's start, which only last week
        // explains, is not more noise).
        // Held to six spreads: one spike is not more noise for the next twenty points.
        let least = z.abs().min(6.0) * scale / factor;
        let recent = 0.8 * self.recent.value + 0.2 * least;
        let ratio = recent / (scale / factor / 1.25);
        let variance = if ratio > 2.0 {
            squash(ratio - 2.0, 3.0)
        } else {
            0.0
        };
        let off = self.offset(t, &p, chosen, scale, factor);
        let off = finite(1.0 - (-(off / OFFSET_SCALE).powi(4)).exp()).clamp(0.0, 1.0);
        self.accept_offset(t, off);
        // The point that completes a level shift (see [`Detector::learn`]) is as sure as
        // a spike: five points on one side, sitting together, are no noise.
        let shift = if self.completes_shift(z, r, scale) {
            shift.max(SHIFT_SCORE)
        } else {
            shift
        };
        let score = if self.n >= WARMUP {
            finite(point.max(shift).max(variance).max(off)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let band = 3.0 * scale;
        let verdict = Verdict {
            score,
            expected,
            lower: finite(expected - band),
            upper: finite(expected + band),
            direction: if r > 0.0 {
                1
            } else if r < 0.0 {
                -1
            } else {
                0
            },
        };
        self.learn(t, value, &p, r, z, up, down, factor);
        verdict
    }

    #[allow(clippy::too_many_arguments)]
    fn learn(
        &mut self,
        t: i64,
        value: f64,
        p: &[Option<f64>; PREDICTORS],
        r: f64,
        z: f64,
        up: f64,
        down: f64,
        factor: f64,
    ) {
        self.n += 1;
        if let Some(last) = self.last_t
            && t > last
        {
            self.step = Some(self.step.map_or(t - last, |s| s.min(t - last)));
        }
        self.last_t = Some(t);
        if self.n == 1 {
            // Nothing was predicted for the first point: it only starts the level.
            self.level.add(value, 1.0);
            self.seen.add(t, value);
            return;
        }
        let warm = self.n <= WARMUP;
        let scale = self.scale() * factor;
        // Whether a lagged predictor judged this point: a run the level alone saw (a daily
        // ramp before a day is known) moves the level, not what was seen.
        let lagged = p[PREDICTORS - 1].is_some()
            && self.errors[Self::regime(t)][PREDICTORS - 1].n >= 2 * WARMUP;
        let clip = |x: f64| {
            if warm {
                x
            } else {
                x.clamp(-3.0 * scale, 3.0 * scale)
            }
        };
        // Each predictor judged on this point (its error clipped: one outlier does not
        // decide which predicts best).
        let per_day = self.step.map_or(24.0, |s| (DAY / s.max(1)).max(1) as f64);
        // Judged over about two days: long enough that a predictor failing for hours (at
        // a weekend) loses to one that does not, short enough to follow a change of regime.
        let judged = (1.0 / (2.0 * per_day)).clamp(0.0005, 0.05);
        // Biases follow about two hours.
        let follow = (12.0 / per_day).clamp(0.01, 0.3);
        for (i, pred) in p.iter().enumerate() {
            if let Some(pred) = pred {
                let e = clip(value - pred);
                self.errors[Self::regime(t)][i].add(e.abs() / factor, judged);
                let unit = self.noise.factor(*pred);
                self.biases[i].add(self.biases[i].value + e / unit, follow);
            }
        }
        let level_obs = self.level.value + clip(value - self.level.value);
        self.level.add(level_obs, if warm { 0.2 } else { 0.1 });
        let keep = (per_day as usize).clamp(60, MAX_ERRORS);
        self.noise.learn(value - r, value, r, judged);
        let r_norm = r.abs() / factor;
        let more = window::room(
            self.residuals.len(),
            self.residuals.capacity(),
            MAX_ERRORS + 1,
        );
        self.residuals.reserve_exact(more);
        self.residuals.push_back(r_norm);
        self.sorted.insert(r_norm);
        while self.residuals.len() > keep {
            if let Some(old) = self.residuals.pop_front() {
                self.sorted.remove(old);
            }
        }
        self.mad = self.sorted.median();
        self.recent.add(z.abs().min(6.0) * scale / factor, 0.2);
        self.cusum_up = up;
        self.cusum_down = down;
        let zl = z.clamp(-4.0, 4.0);
        self.zz.add(zl * self.z_prev, judged);
        self.z2.add(zl * zl, judged);
        self.z_prev = zl;
        // A shift that persists becomes the level and the base.
        if !warm && z.abs() > SHIFT_Z && self.run.last().is_none_or(|l| l.signum() == r.signum()) {
            self.run.push(r);
        } else {
            self.run.clear();
        }
        // A run as scattered as a burst of noise is not a shift: its points must sit
        // together (their deviation from their median within 1.5 spreads).
        if self.run.len() >= SHIFT_RUN && !Self::steady(&self.run, scale) {
            self.run.remove(0);
        }
        if self.run.len() >= SHIFT_RUN {
            let mut run = std::mem::take(&mut self.run);
            run.sort_by(f64::total_cmp);
            let median = run[run.len() / 2];
            self.level.value += median;
            // The lagged values from before the run are moved by the shift; what the
            // biases learned of it during the run is in it now.
            for b in &mut self.biases {
                b.value = 0.0;
            }
            self.accepted = [0.0; PREDICTORS];
            if lagged {
                let since = t - self.step.unwrap_or(60) * SHIFT_RUN as i64;
                self.shifts.push((since, median));
            }
            self.cusum_up = 0.0;
            self.cusum_down = 0.0;
        }
        self.shifts.retain(|(at, _)| *at >= t - KEEP);
        self.seen.add(t, value);
        self.seen.forget_before(t - KEEP);
    }
}

#[cfg(test)]
mod tests;
