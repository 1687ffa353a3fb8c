//! Bottleneck analysis: where a route's requests spend their time, stage by stage (the
//! gateway's `stage_ms{route,stage}` series: the mean milliseconds a request spent in a
//! stage, per point), over a window. Each stage gets its mean per request (weighted by the
//! requests of each point, so a busy minute counts for more than a quiet one), its share
//! of the total, its trend (Theil–Sen slope over at most 48 equal spans of the window:
//! robust to the odd slow minute), and its time budget when an alert rule sets one; the
//! dominant stage is named, with what usually shortens it.

use serde::Serialize;

/// Spans of the window a trend is fitted on, at most.
const SPANS: usize = 48;
/// Spans with requests a trend needs.
const MIN_SPANS: usize = 6;
/// A change over the window past this share of the mean is a trend (below: steady).
const TREND: f64 = 0.25;

/// A stage's trend over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trend {
    /// Milliseconds per request more (or less) each day.
    pub ms_per_day: f64,
    /// The change over the whole window, as a share of the stage's mean (0.5: +50%).
    pub change: f64,
    /// `rising`, `falling`, `steady`, or `unknown` (too few spans with requests).
    pub direction: &'static str,
}

/// One stage of a route over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageSummary {
    pub stage: String,
    /// Mean milliseconds a request spent in it.
    pub mean_ms: f64,
    /// Its share of the requests' whole time.
    pub share: f64,
    pub trend: Trend,
    /// The time budget an alert rule sets for it, and whether the mean is over it.
    pub budget_ms: Option<f64>,
    pub over_budget: bool,
}

/// A route's time, split by stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteStages {
    pub route: String,
    /// Requests in the window (per point, summed: requests per second × seconds).
    pub requests: f64,
    /// Mean milliseconds per request, all stages together.
    pub mean_ms: f64,
    /// Largest first.
    pub stages: Vec<StageSummary>,
    /// The stage with the largest share, when the route had requests.
    pub dominant: Option<String>,
    /// What usually shortens the dominant stage.
    pub advice: Option<&'static str>,
    /// What stands out, each said in a sentence: the dominant stage, trends, budgets
    /// exceeded.
    pub findings: Vec<String>,
}

/// What a stage's time usually comes from, and what shortens it.
pub fn advice(stage: &str) -> &'static str {
    match stage {
        "gateway" => {
            "the gateway's own work: check its CPU (process_cpu_ratio) and event-loop lag; add cores or instances"
        }
        "read" => "clients send their bodies slowly: large prompts or slow links",
        "admission" => {
            "rate-limit checks: a shared limit waits on Redis; check the link's latency or use a local limit"
        }
        "cache" => {
            "cache lookups (and waits on another request's flight): check the Redis and disk tiers' latency"
        }
        "queue" => {
            "requests wait for a concurrency permit: raise the route's, key's or pool's concurrency, or add endpoints"
        }
        "retries" => {
            "failed attempts, backoffs and fallbacks: look at the failing endpoints (GET /api/v1/balance) before adding retries"
        }
        "connect" => {
            "new upstream connections (TCP and TLS) or waits at the pool's cap: raise max_idle or max_connections, keep connections warm"
        }
        "first_byte" => {
            "the upstream's time to answer: a faster model or region, hedging, caching, shorter prompts"
        }
        "generation" => {
            "the answer's generation and transfer: lower max_tokens, stream the answer, cache repeated questions"
        }
        _ => "",
    }
}

/// The Theil–Sen slope of `(x, y)` pairs and its lower and upper quartile slopes.
fn theil_sen(xy: &[(f64, f64)]) -> Option<(f64, f64, f64)> {
    let mut slopes = Vec::with_capacity(xy.len() * xy.len() / 2);
    for (i, a) in xy.iter().enumerate() {
        for b in &xy[i + 1..] {
            let dx = b.0 - a.0;
            if dx > 0.0 {
                slopes.push((b.1 - a.1) / dx);
            }
        }
    }
    if slopes.is_empty() {
        return None;
    }
    slopes.sort_by(f64::total_cmp);
    let at = |q: f64| slopes[((slopes.len() - 1) as f64 * q).round() as usize];
    Some((at(0.5), at(0.25), at(0.75)))
}

/// The route's split over [`from`, `to`) (Unix seconds): `stages` are each stage's points
/// `(t, mean ms per request)`, `requests` the route's `(t, requests per second)` at the
/// same resolution, `budgets` the stages' time budgets in milliseconds.
pub fn analyse(
    route: &str,
    stages: &[(String, Vec<(u64, f64)>)],
    requests: &[(u64, f64)],
    budgets: &[(String, f64)],
    (from, to): (u64, u64),
) -> RouteStages {
    let weight: std::collections::HashMap<u64, f64> = requests
        .iter()
        .filter(|(_, r)| r.is_finite() && *r > 0.0)
        .copied()
        .collect();
    let total_weight: f64 = weight.values().sum();
    // Points are evenly spaced: the requests of a point are its rate × its step.
    let step = {
        let mut ts: Vec<u64> = requests.iter().map(|(t, _)| *t).collect();
        ts.sort_unstable();
        ts.windows(2).map(|w| w[1] - w[0]).filter(|d| *d > 0).min()
    };
    let span = ((to.saturating_sub(from)) as f64 / SPANS as f64).max(1.0);
    let days = to.saturating_sub(from) as f64 / 86_400.0;
    let mut out: Vec<StageSummary> = stages
        .iter()
        .map(|(stage, points)| {
            // Weighted sums, overall and per span.
            let mut sum = 0.0;
            let mut spans = vec![(0.0, 0.0); SPANS];
            for (t, v) in points {
                let Some(w) = weight.get(t) else { continue };
                if !v.is_finite() {
                    continue;
                }
                sum += w * v;
                let i = ((t.saturating_sub(from)) as f64 / span) as usize;
                let s = &mut spans[i.min(SPANS - 1)];
                s.0 += w * v;
                s.1 += w;
            }
            let mean = if total_weight > 0.0 {
                sum / total_weight
            } else {
                0.0
            };
            let xy: Vec<(f64, f64)> = spans
                .iter()
                .enumerate()
                .filter(|(_, (_, w))| *w > 0.0)
                .map(|(i, (s, w))| ((i as f64 + 0.5) * span / 86_400.0, s / w))
                .collect();
            let trend = match (xy.len() >= MIN_SPANS).then(|| theil_sen(&xy)).flatten() {
                Some((slope, lo, hi)) => {
                    let change = if mean > 0.0 { slope * days / mean } else { 0.0 };
                    // Most pairs agree on the direction, and it is large enough.
                    let direction = if change > TREND && lo > 0.0 {
                        "rising"
                    } else if change < -TREND && hi < 0.0 {
                        "falling"
                    } else {
                        "steady"
                    };
                    Trend {
                        ms_per_day: slope,
                        change,
                        direction,
                    }
                }
                None => Trend {
                    ms_per_day: 0.0,
                    change: 0.0,
                    direction: "unknown",
                },
            };
            let budget_ms = budgets
                .iter()
                .filter(|(s, _)| s == stage)
                .map(|(_, b)| *b)
                .reduce(f64::min);
            StageSummary {
                stage: stage.clone(),
                mean_ms: mean,
                share: 0.0,
                trend,
                over_budget: budget_ms.is_some_and(|b| mean > b),
                budget_ms,
            }
        })
        .collect();
    let mean_ms: f64 = out.iter().map(|s| s.mean_ms).sum();
    for s in &mut out {
        s.share = if mean_ms > 0.0 {
            s.mean_ms / mean_ms
        } else {
            0.0
        };
    }
    out.sort_by(|a, b| b.mean_ms.total_cmp(&a.mean_ms));
    let dominant = out
        .first()
        .filter(|s| s.mean_ms > 0.0)
        .map(|s| s.stage.clone());
    let mut findings = Vec::new();
    if let Some(d) = out.first().filter(|s| s.mean_ms > 0.0) {
        findings.push(format!(
            "on route {route}, {} takes {:.0}% of a request's time ({} of {} ms){}",
            d.stage,
            d.share * 100.0,
            round(d.mean_ms),
            round(mean_ms),
            match d.trend.direction {
                "rising" | "falling" => format!(
                    ", {} {:.0}% over the window",
                    d.trend.direction,
                    d.trend.change.abs() * 100.0
                ),
                _ => String::new(),
            }
        ));
    }
    for s in out.iter().skip(1).filter(|s| s.trend.direction == "rising") {
        findings.push(format!(
            "on route {route}, {} is rising: {:+.0}% over the window ({} ms per request now on average)",
            s.stage,
            s.trend.change * 100.0,
            round(s.mean_ms)
        ));
    }
    for s in out.iter().filter(|s| s.over_budget) {
        findings.push(format!(
            "on route {route}, {} is over its budget: {} ms per request against {} ms",
            s.stage,
            round(s.mean_ms),
            round(s.budget_ms.unwrap_or(0.0))
        ));
    }
    RouteStages {
        route: route.to_string(),
        requests: total_weight * step.unwrap_or(1) as f64,
        mean_ms,
        advice: dominant.as_deref().map(advice),
        dominant,
        stages: out,
        findings,
    }
}

/// Milliseconds to three significant figures (whole ones from 100 up).
fn round(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

#[cfg(test)]
mod tests;
