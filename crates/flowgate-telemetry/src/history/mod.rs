//! The metrics history: what the gateway measured, kept at three resolutions (10 s, 1 min,
//! 1 h, each for its own retention) in the embedded store under `data_dir`, written by the
//! control plane every 10 s, read by the history API and by what watches the gateway
//! (alerts, anomalies, forecasts).
//!
//! Where the numbers come from: the request records (as a [`Sink`]: per route, pool and
//! endpoint, requests, errors, latency and time to the answer's head; tokens; cache hits
//! per tier; spend), and probes the gateway registers for levels it holds (queue depth,
//! in flight, the process's CPU and memory, Redis and upstream health). Each second a
//! [`Sample`] per series is merged into its 10 s, minute and hour, written as points when
//! they end, and kept in a live ring for the last minutes ([`series`], [`History::live`]).
//! Series are named like Prometheus samples: `requests_per_second{route="chat"}`.

mod point;
mod records;
pub mod series;
mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use point::{Point, Resolution};
pub use records::{RecordSink, label, slow_ratio, stage_ms};
pub use series::{QUANTILES, Sample};
pub use store::StoreError;

use series::Series;
use store::Store;

/// Where the history is kept and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySettings {
    /// The file; `None`: in memory (lost at exit).
    pub path: Option<PathBuf>,
    /// How long each resolution's points are kept (10 s, 1 min, 1 h).
    pub retention: [Duration; 3],
}

impl Default for HistorySettings {
    fn default() -> Self {
        HistorySettings {
            path: None,
            retention: [
                Duration::from_secs(48 * 3600),
                Duration::from_secs(35 * 86_400),
                Duration::from_secs(400 * 86_400),
            ],
        }
    }
}

/// Levels a probe reads at each tick: (series name, sample).
pub type Probe = Box<dyn FnMut() -> Vec<(String, Sample)> + Send>;

/// The most series kept (each is a few hundred bytes in memory and a row per 10 s on
/// disk); past it, new names are dropped and counted.
pub const MAX_SERIES: usize = 5_000;

/// The history (see the module's documentation). Cheap to clone.
#[derive(Clone)]
pub struct History {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    settings: HistorySettings,
    records: Arc<records::Records>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    series: HashMap<String, (Series, bool)>,
    probes: Vec<Probe>,
    last_prune: u64,
    dropped: u64,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

/// What one tick wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Written {
    pub points: usize,
    pub series: usize,
    /// The minutes that ended with it, by stored series name (what the anomaly detectors
    /// read): empty but at a minute's end.
    pub minutes: Vec<(String, Point)>,
}

impl History {
    /// The history `settings` name, opened at `now` (Unix seconds). An unreadable file is
    /// moved aside and said so (returned).
    pub fn open(
        settings: HistorySettings,
        now: u64,
    ) -> Result<(History, Option<flowgate_store::MovedAside>), StoreError> {
        let (store, moved) = Store::open(settings.path.as_deref(), now)?;
        Ok((
            History {
                inner: Arc::new(Inner {
                    store,
                    settings,
                    records: Arc::default(),
                    state: Mutex::new(State::default()),
                }),
            },
            moved,
        ))
    }

    /// What the telemetry consumer hands records to.
    pub fn sink(&self) -> RecordSink {
        RecordSink(self.inner.records.clone())
    }

    /// Adds a probe, read at every tick.
    pub fn add_probe(&self, probe: Probe) {
        if let Ok(mut s) = self.inner.state.lock() {
            s.probes.push(probe);
        }
    }

    /// The second ending at `end` (Unix seconds; or the time since the last tick): every
    /// series' sample is merged into its buckets, and the 10 s, minutes and hours that
    /// ended with it are written, in one transaction; once an hour, points past their
    /// retention are deleted.
    pub fn tick(&self, end: u64) -> Result<Written, StoreError> {
        let mut samples = self.inner.records.take();
        let Ok(mut state) = self.inner.state.lock() else {
            return Ok(Written::default());
        };
        for p in &mut state.probes {
            samples.extend(p());
        }
        let mut points = Vec::new();
        let mut out = Vec::new();
        let mut seen: HashMap<String, Sample> = samples.into_iter().collect();
        let state = &mut *state;
        // Every series known (sampled now or not: those not still close their minutes and
        // hours), then the new ones.
        for (name, (series, latency)) in &mut state.series {
            push(
                name,
                *latency,
                series,
                end,
                seen.remove(name),
                &mut out,
                &mut points,
            );
        }
        for (name, sample) in seen {
            if state.series.len() >= MAX_SERIES {
                state.dropped += 1;
                continue;
            }
            let latency = matches!(sample, Sample::Latency(_));
            let mut series = Series::new(end - 1);
            push(
                &name,
                latency,
                &mut series,
                end,
                Some(sample),
                &mut out,
                &mut points,
            );
            state.series.insert(name, (series, latency));
        }
        let prune = (end >= state.last_prune + 3600).then(|| {
            state.last_prune = end;
            let r = &self.inner.settings.retention;
            [0, 1, 2].map(|i| end.saturating_sub(r[i].as_secs()))
        });
        let written = Written {
            points: points.len(),
            series: state.series.len(),
            minutes: points
                .iter()
                .filter(|(_, res, _)| *res == Resolution::Minute)
                .map(|(name, _, p)| (name.clone(), *p))
                .collect(),
        };
        if !points.is_empty() || prune.is_some() {
            self.inner.store.write(&points, prune)?;
        }
        Ok(written)
    }

    /// The points of `series` at `res` in [`from`, `to`).
    pub fn read(
        &self,
        series: &str,
        res: Resolution,
        from: u64,
        to: u64,
    ) -> Result<Vec<Point>, StoreError> {
        self.inner.store.read(series, res, from, to)
    }

    /// The value of `series` over the last `secs` seconds up to `now` (at most
    /// [`series::LIVE_SECS`]), from the live ring: a rate, ratio or mean as its kind says;
    /// `None` for a latency, an unknown series, or no data then.
    pub fn live(&self, series: &str, now: u64, secs: u64) -> Option<f64> {
        let state = self.inner.state.lock().ok()?;
        state.series.get(series)?.0.live(now, secs)
    }

    /// When `series` last had a sample (Unix seconds), since start.
    pub fn last_seen(&self, series: &str) -> Option<u64> {
        let state = self.inner.state.lock().ok()?;
        state.series.get(series)?.0.last_seen()
    }

    /// Counts, for `route`, the share of its requests slower than `ms` milliseconds, as
    /// `slow_ratio{route="…",over_ms="…"}` (what a latency SLO reads).
    pub fn watch_latency(&self, route: &str, ms: u64) {
        self.inner.records.watch(route, ms);
    }

    /// Every series stored, by name.
    pub fn series(&self) -> Vec<String> {
        self.inner.store.series()
    }

    /// New series names dropped because [`MAX_SERIES`] were kept.
    pub fn dropped(&self) -> u64 {
        self.inner.state.lock().map_or(0, |s| s.dropped)
    }

    pub fn settings(&self) -> &HistorySettings {
        &self.inner.settings
    }

    /// Points kept at each resolution (10 s, 1 min, 1 h).
    pub fn rows(&self) -> Result<[u64; 3], StoreError> {
        self.inner.store.rows()
    }

    /// The file's size, when it is one.
    pub fn file_bytes(&self) -> Option<u64> {
        self.inner.store.file_bytes()
    }
}

/// `sample` into `series` (named `name`) for the time up to `end`: the points it closes
/// go to `points`, under their stored names.
fn push(
    name: &str,
    latency: bool,
    series: &mut Series,
    end: u64,
    sample: Option<Sample>,
    out: &mut Vec<(usize, Resolution, Point)>,
    points: &mut Vec<(String, Resolution, Point)>,
) {
    out.clear();
    series.push(end, sample, out);
    if out.is_empty() {
        return;
    }
    let stored = series::names(name, latency);
    for (i, res, p) in out.drain(..) {
        if let Some(n) = stored.get(i) {
            points.push((n.clone(), res, p));
        }
    }
}

#[cfg(test)]
mod tests;
