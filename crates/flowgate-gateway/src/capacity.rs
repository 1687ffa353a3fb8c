//! Capacity planning in the gateway: the constrained resources of the running config, each
//! with the history series its demand is read from ([`flowgate_insight::capacity`] says
//! when each runs out): request and token rate limits of global or route scope (demand:
//! the routes' request or token rate, their busiest 10 s of each hour), budgets of global
//! scope (demand: spend an hour, by each day's mean), memory against the governor's limit
//! (demand: resident memory), and the concurrency limits of routes and pools (an adaptive
//! one at the limit it learned from the upstream's latency; demand: requests in flight,
//! by Little's law the busiest 10 s of requests a second times the time a request holds
//! its permit, which the stages' split measures). Limits per key, client, model or
//! header have no series of their demand in the history and are left out (said in
//! `skipped`).

use flowgate_config::{BudgetScope, BudgetWindow, LimitScope, LimitUnit};
use flowgate_insight::capacity::Resource;
use flowgate_telemetry::history::{History, Resolution, label, stage_ms};
use rust_decimal::prelude::ToPrimitive;

use crate::gateway::Gateway;
use crate::queues::Scope;

/// Days of hourly points read for a demand's course.
pub(crate) const HISTORY_DAYS: u64 = 35;
const HOUR: u64 = 3600;

/// A resource and what its demand is read from.
pub(crate) struct Constrained {
    pub(crate) resource: Resource,
    pub(crate) demand: Demand,
}

/// What a resource's hourly demand is made of.
pub(crate) enum Demand {
    /// Series whose hourly values add up.
    Sum(Vec<String>),
    /// The requests in flight of these routes, summed: each hour's busiest 10 s of
    /// requests a second times the mean time a request held its permit ([`HELD`]).
    InFlight(Vec<String>),
}

/// The stages a request holds its concurrency permits through (taken after `queue`,
/// given back when the answer's body ends).
const HELD: [&str; 4] = ["retries", "connect", "first_byte", "generation"];

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
                demand: Demand::Sum(
                    routes
                        .iter()
                        .map(|r| format!("{base}{}", label("route", r)))
                        .collect(),
                ),
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
                        demand: Demand::Sum(vec![series]),
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
            demand: Demand::Sum(vec!["spend_usd_per_hour".into()]),
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
            demand: Demand::Sum(vec!["process_resident_memory_bytes".into()]),
        });
    }
    concurrency(gw, &mut out, &mut skipped);
    (out, skipped)
}

/// The concurrency limits of routes and pools, each at its limit now (an adaptive one's
/// learned limit); those per key are skipped.
fn concurrency(gw: &Gateway, out: &mut Vec<Constrained>, skipped: &mut Vec<String>) {
    let rt = gw.runtime();
    let mut keys = 0;
    for (scope, name, gate) in gw.queues().all() {
        let limit = gate.limiter.snapshot().limit as f64;
        let adaptive = gate.limiter.adaptive_settings();
        let (what, routes, change) = match scope {
            Scope::Key => {
                keys += 1;
                continue;
            }
            Scope::Route => (
                format!("concurrency of route {name}"),
                vec![name.clone()],
                format!("raise route {name}'s concurrency.limit"),
            ),
            Scope::Pool => {
                let routes: Vec<String> = rt
                    .config
                    .routes
                    .iter()
                    .filter(|r| r.pool.as_deref() == Some(name.as_str()))
                    .map(|r| r.name.clone())
                    .collect();
                let change = match adaptive {
                    Some(a) => format!(
                        "pool {name}'s limit adapts to its upstream's latency (at {limit:.0} now, at most {}): add endpoints, or raise concurrency.adaptive.max if the upstream can take more",
                        a.max
                    ),
                    None => format!("raise pool {name}'s concurrency.limit, or add endpoints"),
                };
                (format!("concurrency of pool {name}"), routes, change)
            }
        };
        if routes.is_empty() {
            continue;
        }
        out.push(Constrained {
            resource: Resource {
                name: what,
                kind: "concurrency",
                limit,
                unit: "requests in flight".into(),
                series: format!(
                    "requests_per_second × stage_ms ({}) of routes {}",
                    HELD.join(" + "),
                    routes.join(", ")
                ),
                change,
                daily_mean: false,
            },
            demand: Demand::InFlight(routes),
        });
    }
    if keys > 0 {
        skipped.push(format!(
            "concurrency of {keys} key(s): the history keeps no demand per caller"
        ));
    }
    // What an upstream sustains is what an adaptive limit learns from its latency.
    for p in &rt.config.pools {
        if p.concurrency.as_ref().is_none_or(|c| c.adaptive.is_none()) {
            skipped.push(format!(
                "pool {}: what its upstream sustains is measured by an adaptive concurrency limit only (concurrency.adaptive)",
                p.name
            ));
        }
    }
}

/// The hourly demand over the [`HISTORY_DAYS`] before `now`: each hour's busiest 10 s
/// (`max`), or its mean (`mean`), of its parts summed; the hour of the last point. Hours a
/// part has no point count as 0 for it.
pub(crate) fn demand(
    history: &History,
    demand: &Demand,
    now: u64,
    mean: bool,
) -> Option<(Vec<f64>, u64)> {
    let end = now - now % HOUR;
    let start = end.saturating_sub(HISTORY_DAYS * 86_400);
    let hours = ((end - start) / HOUR) as usize;
    let mut sum = vec![0.0; hours];
    let mut seen = vec![false; hours];
    let index = |t: u64| ((t.saturating_sub(start)) / HOUR) as usize;
    match demand {
        Demand::Sum(parts) => {
            for p in parts {
                for pt in history.read(p, Resolution::Hour, start, end).ok()? {
                    let i = index(pt.t);
                    if i < hours {
                        sum[i] += if mean { pt.value } else { pt.max };
                        seen[i] = true;
                    }
                }
            }
        }
        Demand::InFlight(routes) => {
            for r in routes {
                let mut held = vec![0.0; hours];
                for s in HELD {
                    for pt in history
                        .read(&stage_ms(r, s), Resolution::Hour, start, end)
                        .ok()?
                    {
                        let i = index(pt.t);
                        if i < hours {
                            held[i] += pt.value;
                        }
                    }
                }
                let rps = format!("requests_per_second{}", label("route", r));
                for pt in history.read(&rps, Resolution::Hour, start, end).ok()? {
                    let i = index(pt.t);
                    if i < hours {
                        let rate = if mean { pt.value } else { pt.max };
                        sum[i] += rate * held[i] / 1000.0;
                        seen[i] = true;
                    }
                }
            }
        }
    }
    let first = seen.iter().position(|s| *s)?;
    let last = seen.iter().rposition(|s| *s)?;
    Some((sum[first..=last].to_vec(), start + last as u64 * HOUR))
}

/// When each resource runs out under the baseline within 90 days (`None`: it does not),
/// at `now`; those without history yet are left out.
pub(crate) fn runs_out(gw: &Gateway, now: u64) -> Vec<(String, Option<u64>)> {
    let Some(history) = gw.history() else {
        return Vec::new();
    };
    let baseline = flowgate_insight::capacity::Scenario::standard()
        .into_iter()
        .next();
    let Some(baseline) = baseline else {
        return Vec::new();
    };
    resources(gw)
        .0
        .iter()
        .filter_map(|c| {
            let (hourly, last) = demand(history, &c.demand, now, c.resource.daily_mean)?;
            let o = flowgate_insight::capacity::outlook(&c.resource, &hourly, last, &baseline, 90);
            Some((c.resource.name.clone(), o.runs_out.map(|r| r.at)))
        })
        .collect()
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
        let (values, last) =
            demand(&h, &Demand::Sum(parts.to_vec()), T0 + 5 * HOUR + 10, false).unwrap();
        assert_eq!(values, [1.0, 2.0, 13.0, 14.0, 15.0]);
        assert_eq!(last, T0 + 4 * HOUR);
        let nothing = Demand::Sum(vec!["nothing".to_string()]);
        assert!(demand(&h, &nothing, T0 + 5 * HOUR, false).is_none());
    }

    #[test]
    fn requests_in_flight_are_the_rate_times_the_time_a_permit_is_held() {
        let (h, _) = History::open(HistorySettings::default(), T0).unwrap();
        let mut hour = 0u64;
        h.add_probe(Box::new(move || {
            hour += 1;
            let gauge = |name: &str, v: f64| (name.to_string(), Sample::Gauge(v));
            vec![
                gauge("requests_per_second{route=\"a\"}", 10.0 * hour as f64),
                gauge("stage_ms{route=\"a\",stage=\"first_byte\"}", 200.0),
                gauge("stage_ms{route=\"a\",stage=\"generation\"}", 300.0),
                // Waiting for the permit is not holding it.
                gauge("stage_ms{route=\"a\",stage=\"queue\"}", 1000.0),
            ]
        }));
        for i in 1..=3 {
            h.tick(T0 + i * HOUR).unwrap();
        }
        let (values, _) = demand(
            &h,
            &Demand::InFlight(vec!["a".into()]),
            T0 + 3 * HOUR + 10,
            false,
        )
        .unwrap();
        // 10, 20, 30 requests a second, each holding its permit half a second.
        assert_eq!(values, [5.0, 10.0, 15.0]);
    }
}
