//! Scaling recommendations for the pools `[scaling]` names. Every `interval` (and on
//! `POST /api/v1/scaling/optimize`; the loop is `scaling_loop.rs`) the control plane reads each pool's demand (its
//! requests a second over the last minute, from the history's live ring), its replicas
//! (its endpoints), and with `lead` the demand the forecast expects by then (the pool's
//! minutes of the last week, `flowgate_insight::forecast`, refreshed every five minutes);
//! `flowgate_insight::scaling` decides. The last decision and the last 100 changes of
//! each pool are kept for the API and the metrics an HPA or KEDA reads.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use flowgate_config::PoolScaling;
use flowgate_insight::forecast::{Season, forecast, regular};
use flowgate_insight::scaling::{Decision, Direction, Input, Scaler};
use flowgate_telemetry::history::{History, Resolution, label};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use serde::Serialize;

use crate::cache_metrics::gauge;
use crate::runtime::Runtime;

/// Changes kept per pool.
const KEEP: usize = 100;
/// How long a demand forecast is used before it is made again.
const FORECAST_AGE: u64 = 300;
/// Minutes of history a forecast reads (a week), and the least it needs (two days).
const FORECAST_MINUTES: u64 = 7 * 1440;
const FORECAST_LEAST: usize = 2 * 1440;
/// Points a forecast looks ahead at least, in minutes (a day): the forecaster judges
/// its methods on the last two spans of its horizon, and a span of a few minutes (at
/// night, before a morning ramp) favours a flat forecast over the daily shape.
const FORECAST_JUDGED: usize = 1440;

/// A pool's recommender and what it decided.
#[derive(Debug)]
struct PoolState {
    /// The settings it was made with (a reload that changes them starts it afresh).
    settings: PoolScaling,
    scaler: Scaler,
    last: Option<Plan>,
    changes: VecDeque<Change>,
    /// Actions that failed since the history last took the count.
    failures: u64,
    /// (made at, the demand forecast a minute apart from then), or why there is none.
    forecast: Option<(u64, Result<Vec<f64>, String>)>,
}

/// What an actuator did with a decision.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Acted {
    /// `command`, `webhook`, or `dry_run` (the actuator was not called).
    pub(crate) by: &'static str,
    pub(crate) ok: bool,
    /// The command's output (its end) or the webhook's answer, or why it failed.
    pub(crate) detail: String,
    pub(crate) took_ms: u64,
    /// Endpoints registered and deregistered from a command's output.
    pub(crate) registered: Vec<String>,
    pub(crate) deregistered: Vec<String>,
}

impl Acted {
    /// What `by` did (`ok`, or not), in `detail`; no endpoints changed, its time taken
    /// filled in by the caller that measured it.
    pub(crate) fn new(by: &'static str, ok: bool, detail: String) -> Acted {
        Acted {
            by,
            ok,
            detail,
            took_ms: 0,
            registered: Vec::new(),
            deregistered: Vec::new(),
        }
    }
}

/// A change decided, and what was done with it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Change {
    pub(crate) decision: Decision,
    pub(crate) acted: Option<Acted>,
}

/// A target's plan: its decision with the numbers it came from.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Plan {
    pub(crate) pool: String,
    /// The demand over the last minute, in `unit` (a pool's requests a second; flowgate's
    /// requests in flight or CPU cores, over all its replicas).
    pub(crate) demand: f64,
    pub(crate) unit: &'static str,
    /// The forecast's busiest demand up to `lead` from now, or why there is none.
    pub(crate) predicted: Option<f64>,
    pub(crate) prediction: Option<String>,
    /// What one replica serves at full utilization, in `unit`.
    pub(crate) per_replica: f64,
    /// Replicas the demand needs at the policy's target utilization (what KEDA's
    /// `metrics-api` scaler reads, with a target value of 1).
    pub(crate) replica_demand: f64,
    pub(crate) decision: Decision,
    pub(crate) acted: Option<Acted>,
}

/// The pools' recommenders.
#[derive(Debug, Default, Clone)]
pub(crate) struct Scaling(Arc<Mutex<HashMap<String, PoolState>>>);

impl Scaling {
    /// Decides for every pool `[scaling]` names in `rt`, at `now` (Unix seconds), from
    /// `history`.
    pub(crate) fn cycle(&self, rt: &Runtime, history: Option<&History>, now: u64) -> Vec<Plan> {
        let cfg = &rt.config.scaling;
        let Ok(mut pools) = self.0.lock() else {
            return Vec::new();
        };
        pools.retain(|name, s| {
            cfg.pools
                .iter()
                .any(|p| p.pool == *name && *p == s.settings)
        });
        if !cfg.enabled {
            return Vec::new();
        }
        let mut out = Vec::new();
        for p in &cfg.pools {
            let state = pools.entry(p.pool.clone()).or_insert_with(|| PoolState {
                settings: p.clone(),
                scaler: Scaler::new(p.policy.clone()),
                last: None,
                changes: VecDeque::new(),
                failures: 0,
                forecast: None,
            });
            let current = replicas(rt, p);
            let (series, spread) = demand_series(p);
            // Flowgate's own demand is this replica's, as each of its replicas gets an
            // even share: the fleet's is that times the replicas.
            let spread = if spread {
                f64::from(current.max(1))
            } else {
                1.0
            };
            let demand = history
                .and_then(|h| h.live(&series, now, 60))
                .map_or(f64::NAN, |d| d * spread);
            let capacity = f64::from(current.max(1)) * p.per_replica.capacity();
            let (predicted, prediction) = match (p.policy.lead, history) {
                (None, _) => (None, None),
                (Some(_), None) => (None, Some("no history to forecast from".to_string())),
                (Some(lead), Some(h)) => {
                    if state
                        .forecast
                        .as_ref()
                        .is_none_or(|(at, _)| now.saturating_sub(*at) >= FORECAST_AGE)
                    {
                        state.forecast =
                            Some((now, demand_forecast(h, &series, now, lead.as_secs())));
                    }
                    match state.forecast.as_ref().map(|(at, f)| (at, f.as_ref())) {
                        Some((at, Ok(steps))) => {
                            // The busiest minute from now to `lead` from now.
                            let from = now.saturating_sub(*at) / 60;
                            let to = from + lead.as_secs().div_ceil(60);
                            let peak = steps
                                .iter()
                                .skip(from as usize)
                                .take((to - from + 1) as usize)
                                .copied()
                                .fold(f64::NAN, f64::max);
                            (peak.is_finite().then_some(peak * spread), None)
                        }
                        Some((_, Err(why))) => (None, Some(why.clone())),
                        None => (None, None),
                    }
                }
            };
            let input = Input {
                current,
                utilization: demand / capacity,
                predicted: predicted.map(|r| r / capacity),
            };
            let decision = state.scaler.decide(now, input);
            if decision.direction != Direction::Hold {
                tracing::info!(pool = %p.pool, from = current, to = decision.desired, reason = %decision.reason, "scaling");
                if state.changes.len() >= KEEP {
                    state.changes.pop_front();
                }
                state.changes.push_back(Change {
                    decision: decision.clone(),
                    acted: None,
                });
            }
            let plan = Plan {
                pool: p.pool.clone(),
                demand,
                unit: p.per_replica.unit(),
                predicted,
                prediction,
                per_replica: p.per_replica.capacity(),
                replica_demand: (demand / (p.per_replica.capacity() * p.policy.target)).max(0.0),
                decision,
                acted: None,
            };
            state.last = Some(plan.clone());
            out.push(plan);
        }
        out
    }

    /// What was done with `pool`'s decision made at `at`: kept with its plan and change;
    /// a failure counted for the history.
    pub(crate) fn acted(&self, pool: &str, at: u64, acted: Acted) {
        let Ok(mut pools) = self.0.lock() else {
            return;
        };
        let Some(s) = pools.get_mut(pool) else {
            return;
        };
        if !acted.ok {
            s.failures += 1;
        }
        if let Some(c) = s.changes.iter_mut().rev().find(|c| c.decision.at == at) {
            c.acted = Some(acted.clone());
        }
        if let Some(p) = s.last.as_mut().filter(|p| p.decision.at == at) {
            p.acted = Some(acted);
        }
    }

    /// Each pool's failed actions since the last call (the history's
    /// `scaling_failures{pool}`).
    pub(crate) fn take_failures(&self) -> Vec<(String, u64)> {
        let Ok(mut pools) = self.0.lock() else {
            return Vec::new();
        };
        pools
            .iter_mut()
            .map(|(name, s)| (name.clone(), std::mem::take(&mut s.failures)))
            .collect()
    }

    /// Each pool's last plan and its recent changes, newest last.
    pub(crate) fn status(&self) -> Vec<(Plan, Vec<Change>)> {
        let Ok(pools) = self.0.lock() else {
            return Vec::new();
        };
        let mut out: Vec<_> = pools
            .values()
            .filter_map(|s| Some((s.last.clone()?, s.changes.iter().cloned().collect())))
            .collect();
        out.sort_by(|a, b| a.0.pool.cmp(&b.0.pool));
        out
    }

    /// The Prometheus families an HPA (through the Prometheus adapter) reads.
    pub(crate) fn collector(&self) -> ScalingCollector {
        ScalingCollector(self.clone())
    }
}

/// The pool's demand a minute apart from `now` for `lead` seconds and a little more,
/// forecast from its minutes of the last week; why not, with under two days of them.
fn demand_forecast(h: &History, series: &str, now: u64, lead: u64) -> Result<Vec<f64>, String> {
    let points = h
        .read(
            series,
            Resolution::Minute,
            now.saturating_sub(FORECAST_MINUTES * 60),
            now + 1,
        )
        .map_err(|e| e.to_string())?;
    if points.len() < FORECAST_LEAST {
        return Err(format!(
            "{} minute(s) of history: a forecast needs two days",
            points.len()
        ));
    }
    let pairs: Vec<(i64, f64)> = points
        .iter()
        .map(|p| (i64::try_from(p.t).unwrap_or(i64::MAX), p.value))
        .collect();
    let (_, step, values) = regular(&pairs).ok_or("no number in the history")?;
    // From the last point to `lead` past now, with the minutes since the last point.
    let last = points.last().map_or(now, |p| p.t);
    let horizon = (((now.saturating_sub(last) + lead) / 60 + FORECAST_AGE / 60 + 2) as usize)
        .max(FORECAST_JUDGED);
    let f = forecast(&values, step, horizon, Season::Auto);
    let skip = (now.saturating_sub(last) / 60) as usize;
    Ok(f.steps.iter().skip(skip).map(|s| s.forecast).collect())
}

/// The replicas `p`'s target has now: a pool's endpoints, or flowgate's as configured.
pub(crate) fn replicas(rt: &Runtime, p: &flowgate_config::PoolScaling) -> u32 {
    match p.replicas {
        Some(n) => n,
        None => rt.upstream(&p.pool).map_or(0, |u| u.endpoints().len()) as u32,
    }
}

/// The history's series of `p`'s demand, and whether it is one replica's (flowgate's
/// own, to be spread over its replicas) rather than the whole target's.
fn demand_series(p: &flowgate_config::PoolScaling) -> (String, bool) {
    use flowgate_config::PerReplica;
    match p.per_replica {
        PerReplica::RequestsPerSecond(_) => (
            format!("requests_per_second{}", label("pool", &p.pool)),
            false,
        ),
        PerReplica::InFlight(_) => ("requests_in_flight".into(), true),
        PerReplica::CpuCores(_) => ("process_cpu_cores".into(), true),
    }
}

/// See [`Scaling::collector`].
#[derive(Debug)]
pub(crate) struct ScalingCollector(Scaling);

impl Collector for ScalingCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut e;
        let plans = self.0.status();
        let each = |f: &dyn Fn(&Plan) -> f64| -> Vec<(Vec<(&str, &str)>, f64)> {
            plans
                .iter()
                .map(|(p, _)| (vec![("pool", p.pool.as_str())], f(p)))
                .filter(|(_, v)| v.is_finite())
                .collect()
        };
        gauge(
            e,
            "flowgate_scaling_desired_replicas",
            "Replicas the scaling recommender wants for each pool",
            each(&|p| f64::from(p.decision.desired)),
        )?;
        gauge(
            e,
            "flowgate_scaling_current_replicas",
            "Replicas each scaled pool has now (its endpoints)",
            each(&|p| f64::from(p.decision.input.current)),
        )?;
        gauge(
            e,
            "flowgate_scaling_utilization",
            "Each scaled pool's demand over its capacity now (1: saturated)",
            each(&|p| p.decision.input.utilization),
        )?;
        gauge(
            e,
            "flowgate_scaling_replica_demand",
            "Replicas each scaled pool's demand needs at its target utilization",
            each(&|p| p.replica_demand),
        )
    }
}

#[cfg(test)]
mod tests {
    use flowgate_telemetry::history::{HistorySettings, Sample};

    use super::*;

    const T0: u64 = 1_767_571_200;
    const SERIES: &str = "requests_per_second{pool=\"llm\"}";

    /// A history of `days` of minutes of a pool's rate: 10 a second, 30 from 09:00 to
    /// 10:00 each day.
    fn history(days: u64) -> History {
        let (h, _) = History::open(HistorySettings::default(), T0).unwrap();
        let mut minute = 0u64;
        h.add_probe(Box::new(move || {
            minute += 1;
            let hour = (minute % 1440) / 60;
            let rate = if hour == 9 { 30.0 } else { 10.0 };
            vec![(SERIES.to_string(), Sample::Gauge(rate))]
        }));
        for i in 1..=days * 1440 {
            h.tick(T0 + i * 60).unwrap();
        }
        h
    }

    #[test]
    fn the_forecast_sees_the_daily_peak_coming() {
        let h = history(3);
        // 08:50 on the fourth day: the peak starts in ten minutes.
        let now = T0 + 3 * 86_400 + 8 * 3600 + 50 * 60;
        let steps = demand_forecast(&h, SERIES, now, 15 * 60).unwrap();
        let before = steps[..5].iter().copied().fold(f64::NAN, f64::max);
        let ahead = steps[12..16].iter().copied().fold(f64::NAN, f64::max);
        assert!((before - 10.0).abs() < 3.0, "{steps:?}");
        assert!(ahead > 20.0, "the peak is forecast: {steps:?}");
        // Under two days of minutes: said.
        let h = history(1);
        let e = demand_forecast(&h, SERIES, T0 + 86_400, 600).unwrap_err();
        assert!(e.contains("a forecast needs two days"), "{e}");
    }
}
