//! Capacity planning in the gateway: the constrained resources of the running config, each
//! with the history series its demand is read from ([`flowgate_insight::capacity`] says
//! when each runs out): request and token rate limits of global or route scope (demand:
//! the routes' request or token rate, their busiest 10 s of each hour), budgets of global
//! scope (demand: spend an hour, by each day's mean), and memory against the governor's
//! limit (demand: resident memory). Limits per key, client, model or header, and
//! concurrency limits, have no series of their demand in the history and are left out
//! (said in `skipped`).

use flowgate_config::{BudgetScope, BudgetWindow, LimitScope, LimitUnit};
use flowgate_insight::capacity::Resource;
use flowgate_telemetry::history::{History, Resolution, label};
use rust_decimal::prelude::ToPrimitive;

use crate::gateway::Gateway;

/// Days of hourly points read for a demand's course.
pub(crate) const HISTORY_DAYS: u64 = 35;
const HOUR: u64 = 3600;

/// A resource and the series whose hourly values add up to its demand.
pub(crate) struct Constrained {
    pub(crate) resource: Resource,
    pub(crate) parts: Vec<String>,
}

/// What the running config constrains, and what it could not plan for (and why).
pub(crate) fn resources(gw: &Gateway) -> (Vec<Constrained>, Vec<String>) {
    let rt = gw.runtime();
    let cfg = &rt.config;
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let all_routes: Vec<String> = cfg.routes.iter().map(|r| r.name.clone()).collect();
    for l in &cfg.rate_limits {
        let routes = if l.routes.is_empty() {
            all_routes.clone()
        } else {
            l.routes.clone()
        };
        let per_sec = l.rate.amount as f64 / l.rate.per.as_secs_f64().max(1e-9);
        let (base, unit) = match l.rate.unit {
            LimitUnit::Requests => ("requests_per_second", "requests/s"),
            LimitUnit::Tokens => ("tokens_per_second", "tokens/s"),
        };
        let kind = match l.rate.unit {
            LimitUnit::Requests => "request_rate",
            LimitUnit::Tokens => "token_rate",
        };
        let change = format!("raise [[rate_limits]] \"{}\"", l.name);
        match l.scope {
            LimitScope::Global => out.push(Constrained {
                resource: Resource {
                    name: format!("rate limit \"{}\"", l.name),
                    kind,
                    limit: per_sec,
                    unit: unit.into(),
                    series: format!("{base} of routes {}", routes.join(", ")),
                    change,
                    daily_mean: false,
                },
                parts: routes
                    .iter()
                    .map(|r| format!("{base}{}", label("route", r)))
                    .collect(),
            }),
            LimitScope::Route => {
                for r in &routes {
                    let series = format!("{base}{}", label("route", r));
                    out.push(Constrained {
                        resource: Resource {
                            name: format!("rate limit \"{}\" on route {r}", l.name),
                            kind,
                            limit: per_sec,
                            unit: unit.into(),
                            series: series.clone(),
                            change: change.clone(),
                            daily_mean: false,
                        },
                        parts: vec![series],
                    });
                }
            }
            _ => skipped.push(format!(
                "rate limit \"{}\": its scope counts each caller apart, and the history keeps no demand per caller",
                l.name
            )),
        }
    }
    for b in &cfg.cost.budgets {
        if b.scope != BudgetScope::Global {
            skipped.push(format!(
                "budget \"{}\": the history keeps spend for the whole gateway only",
                b.name
            ));
            continue;
        }
        let hours = match b.window {
            BudgetWindow::Hour => 1.0,
            BudgetWindow::Day => 24.0,
            BudgetWindow::Month => 730.0,
        };
        out.push(Constrained {
            resource: Resource {
                name: format!("budget \"{}\"", b.name),
                kind: "budget",
                limit: b.limit_usd.to_f64().unwrap_or(0.0) / hours,
                unit: "USD/hour".into(),
                series: "spend_usd_per_hour".into(),
                change: format!(
                    "raise [[cost.budgets]] \"{}\" limit_usd (a {} budget, here an hour's share)",
                    b.name,
                    b.window.as_str()
                ),
                daily_mean: b.window != BudgetWindow::Hour,
            },
            parts: vec!["spend_usd_per_hour".into()],
        });
    }
    if let (_, Some(limit)) = gw.memory().reading() {
        out.push(Constrained {
            resource: Resource {
                name: "memory".into(),
                kind: "memory",
                limit: limit as f64,
                unit: "bytes".into(),
                series: "process_resident_memory_bytes".into(),
                change: "raise [memory] limit (or the container's), or shrink [cache] memory"
                    .into(),
                daily_mean: false,
            },
            parts: vec!["process_resident_memory_bytes".into()],
        });
    }
    (out, skipped)
}

/// The hourly demand of `parts` summed, over the [`HISTORY_DAYS`] before `now`: each
/// hour's busiest 10 s (`max`), or its mean (`mean`); the hour of the last point. Hours a
/// part has no point count as 0 for it.
pub(crate) fn demand(
    history: &History,
    parts: &[String],
    now: u64,
    mean: bool,
) -> Option<(Vec<f64>, u64)> {
    let end = now - now % HOUR;
    let start = end.saturating_sub(HISTORY_DAYS * 86_400);
    let hours = ((end - start) / HOUR) as usize;
    let mut sum = vec![0.0; hours];
    let mut seen = vec![false; hours];
    for p in parts {
        let points = history.read(p, Resolution::Hour, start, end).ok()?;
        for pt in points {
            let i = ((pt.t.saturating_sub(start)) / HOUR) as usize;
            if i < hours {
                sum[i] += if mean { pt.value } else { pt.max };
                seen[i] = true;
            }
        }
    }
    let first = seen.iter().position(|s| *s)?;
    let last = seen.iter().rposition(|s| *s)?;
    Some((sum[first..=last].to_vec(), start + last as u64 * HOUR))
}

#[cfg(test)]
mod tests {
    use flowgate_telemetry::history::{HistorySettings, Sample};

    use super::*;

    const T0: u64 = 1_767_571_200;

    #[test]
    fn demand_sums_its_parts_hour_by_hour() {
        let (h, _) = History::open(HistorySettings::default(), T0).unwrap();
        let mut hour = 0u64;
        h.add_probe(Box::new(move || {
            hour += 1;
            let mut v = vec![(
                "requests_per_second{route=\"a\"}".to_string(),
                Sample::Gauge(hour as f64),
            )];
            // Route b only from the third hour.
            if hour >= 3 {
                v.push((
                    "requests_per_second{route=\"b\"}".to_string(),
                    Sample::Gauge(10.0),
                ));
            }
            v
        }));
        for i in 1..=5 {
            h.tick(T0 + i * HOUR).unwrap();
        }
        let parts = [
            "requests_per_second{route=\"a\"}".to_string(),
            "requests_per_second{route=\"b\"}".to_string(),
        ];
        let (values, last) = demand(&h, &parts, T0 + 5 * HOUR + 10, false).unwrap();
        assert_eq!(values, [1.0, 2.0, 13.0, 14.0, 15.0]);
        assert_eq!(last, T0 + 4 * HOUR);
        assert!(demand(&h, &["nothing".to_string()], T0 + 5 * HOUR, false).is_none());
    }
}
