//! The bottleneck analysis over the gateway's history: each route's `stage_ms` series
//! (written from every request's [`flowgate_telemetry::breakdown`]) read over a window and
//! split by [`flowgate_insight::bottleneck`]; a stage's time budget is what an alert rule
//! in force sets on it (`stage_ms{route="…",stage="…"}` above a value), so one number
//! both raises the alert and shows in the analysis.

use flowgate_config::{AlertKind, Op, STAGES};
use flowgate_insight::bottleneck::{RouteStages, analyse};
use flowgate_telemetry::history::{History, Resolution, label, stage_ms};

use crate::gateway::Gateway;

/// Up to this window minutes are read; beyond, hours.
pub(crate) const MINUTES_UP_TO: u64 = 2 * 86_400;

/// The resolution a window of `seconds` is read at.
pub(crate) fn resolution(seconds: u64) -> Resolution {
    if seconds <= MINUTES_UP_TO {
        Resolution::Minute
    } else {
        Resolution::Hour
    }
}

/// The time budgets the alert rules in force set: (series, milliseconds), for each
/// threshold rule that fires above a value of a `stage_ms` series.
fn budgets(gw: &Gateway) -> Vec<(String, f64)> {
    let rules = gw
        .alerting()
        .with(|e| e.rules().to_vec())
        .unwrap_or_default();
    rules
        .into_iter()
        .filter_map(|r| match r.kind {
            AlertKind::Threshold {
                series,
                op: Op::Above | Op::AtLeast,
                value,
                ..
            } if series.starts_with("stage_ms{") => Some((series, value)),
            _ => None,
        })
        .collect()
}

/// Each route's split over [`from`, `to`) (all routes, or `only`), busiest first.
pub(crate) fn by_route(
    gw: &Gateway,
    history: &History,
    (from, to): (u64, u64),
    only: Option<&str>,
) -> Vec<RouteStages> {
    let res = resolution(to.saturating_sub(from));
    let budgets = budgets(gw);
    let rt = gw.runtime();
    let read = |series: &str| -> Vec<(u64, f64)> {
        history
            .read(series, res, from, to)
            .unwrap_or_default()
            .iter()
            .map(|p| (p.t, p.value))
            .collect()
    };
    let mut out: Vec<RouteStages> = rt
        .config
        .routes
        .iter()
        .map(|r| r.name.as_str())
        .filter(|r| only.is_none_or(|o| o == *r))
        .map(|route| {
            let requests = read(&format!("requests_per_second{}", label("route", route)));
            let mut stages: Vec<(String, Vec<(u64, f64)>)> = Vec::new();
            let mut own: Vec<(String, f64)> = Vec::new();
            for s in STAGES {
                // The series as the history writes it, which is how a rule names it.
                let series = stage_ms(route, s);
                own.extend(
                    budgets
                        .iter()
                        .filter(|(b, _)| *b == series)
                        .map(|(_, ms)| (s.to_string(), *ms)),
                );
                let points = read(&series);
                if !points.is_empty() {
                    stages.push((s.to_string(), points));
                }
            }
            analyse(route, &stages, &requests, &own, (from, to))
        })
        .collect();
    out.sort_by(|a, b| b.requests.total_cmp(&a.requests));
    out
}
