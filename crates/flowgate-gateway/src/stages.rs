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

/// The time budgets the alert rules in force set: (route, stage, milliseconds).
fn budgets(gw: &Gateway) -> Vec<(String, String, f64)> {
    let rules = gw
        .alerting()
        .with(|e| e.rules().to_vec())
        .unwrap_or_default();
    rules
        .iter()
        .filter_map(|r| match &r.kind {
            AlertKind::Threshold {
                series,
                op: Op::Above | Op::AtLeast,
                value,
                ..
            } => {
                let labels = series.strip_prefix("stage_ms{")?.strip_suffix('}')?;
                let (route, stage) = labels.split_once(',')?;
                let route = route.strip_prefix("route=\"")?.strip_suffix('"')?;
                let stage = stage.strip_prefix("stage=\"")?.strip_suffix('"')?;
                Some((route.to_string(), stage.to_string(), *value))
            }
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
            let stages: Vec<(String, Vec<(u64, f64)>)> = STAGES
                .iter()
                .map(|s| (s.to_string(), read(&stage_ms(route, s))))
                .filter(|(_, points)| !points.is_empty())
                .collect();
            let own: Vec<(String, f64)> = budgets
                .iter()
                .filter(|(r, _, _)| r == route)
                .map(|(_, s, ms)| (s.clone(), *ms))
                .collect();
            analyse(route, &stages, &requests, &own, (from, to))
        })
        .collect();
    out.sort_by(|a, b| b.requests.total_cmp(&a.requests));
    out
}
