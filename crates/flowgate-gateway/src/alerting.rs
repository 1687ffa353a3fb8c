//! Alerting in the gateway: the config's rules ([`flowgate_insight::alerts::Engine`])
//! evaluated every second, right after the history's tick, over the history (the live
//! ring for the last 15 minutes, stored points beyond) and the budgets in force. Events
//! are logged and kept for the API; notifiers are to come.

use std::sync::Mutex;
use std::time::Duration;

use flowgate_config::{AlertKind, AlertRule};
use flowgate_cost::budget::Budgets;
use flowgate_insight::alerts::{Engine, Event, EventKind, Source};
use flowgate_telemetry::history::series::LIVE_SECS;
use flowgate_telemetry::history::{History, Resolution};

/// The engine (see the module's documentation).
#[derive(Debug)]
pub(crate) struct Alerting {
    engine: Mutex<Engine>,
}

impl Alerting {
    pub(crate) fn new(rules: &[AlertRule]) -> Alerting {
        Alerting {
            engine: Mutex::new(Engine::new(rules.to_vec())),
        }
    }

    /// Puts `rules` in force (a reload); what `history` must count for them, counted.
    pub(crate) fn set_rules(&self, rules: &[AlertRule], history: Option<&History>) {
        watch(rules, history);
        if let Ok(mut e) = self.engine.lock() {
            e.set_rules(rules.to_vec());
        }
    }

    /// Runs `f` on the engine.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut Engine) -> T) -> Option<T> {
        self.engine.lock().ok().map(|mut e| f(&mut e))
    }

    /// Evaluates every rule at `now`; the events, logged.
    pub(crate) fn evaluate(&self, history: &History, budgets: &Budgets, now: u64) -> Vec<Event> {
        let src = Watched { history, budgets };
        let events = self.with(|e| e.evaluate(&src, now)).unwrap_or_default();
        for e in &events {
            let quiet = if e.silenced {
                " (silenced)"
            } else if e.inhibited {
                " (inhibited)"
            } else {
                ""
            };
            match e.kind {
                EventKind::Firing | EventKind::Repeat => tracing::warn!(
                    rule = %e.rule,
                    severity = e.severity.as_str(),
                    group = %e.group,
                    "alert firing{quiet}: {}",
                    e.summary
                ),
                EventKind::Resolved => tracing::info!(
                    rule = %e.rule,
                    severity = e.severity.as_str(),
                    "alert resolved{quiet}: {}",
                    e.summary
                ),
            }
        }
        events
    }
}

/// Has `history` count what `rules` read beyond its usual series: the slow requests of
/// each latency SLO.
pub(crate) fn watch(rules: &[AlertRule], history: Option<&History>) {
    let Some(h) = history else {
        return;
    };
    for r in rules {
        if let AlertKind::BurnRate {
            route,
            latency_ms: Some(ms),
            ..
        } = &r.kind
        {
            h.watch_latency(route, *ms);
        }
    }
}

/// What rules read: the history and the budgets.
struct Watched<'a> {
    history: &'a History,
    budgets: &'a Budgets,
}

impl Source for Watched<'_> {
    fn value(&self, series: &str, now: u64, window: Duration) -> Option<f64> {
        let secs = window.as_secs().max(1);
        let latency = series.contains("latency_ms_p");
        if !latency && secs <= LIVE_SECS {
            return self.history.live(series, now, secs);
        }
        // Beyond the live ring (or a latency): the stored points' mean.
        let res = if secs <= 6 * 3600 {
            Resolution::TenSeconds
        } else if secs <= 7 * 86_400 {
            Resolution::Minute
        } else {
            Resolution::Hour
        };
        let points = self
            .history
            .read(series, res, now.saturating_sub(secs), now + 1)
            .ok()?;
        (!points.is_empty())
            .then(|| points.iter().map(|p| p.value).sum::<f64>() / points.len() as f64)
    }

    fn last_seen(&self, series: &str) -> Option<u64> {
        self.history.last_seen(series)
    }

    fn budget_percent(&self, name: Option<&str>, now: u64) -> Option<(String, f64)> {
        self.budgets
            .list()
            .iter()
            .filter(|b| name.is_none_or(|n| n == b.config.name))
            .flat_map(|b| b.statuses(now))
            .filter(|s| s.limit_nanos > 0)
            .map(|s| {
                let label = if s.value.is_empty() {
                    s.budget.clone()
                } else {
                    format!("{} ({})", s.budget, s.value)
                };
                (label, s.spent_nanos as f64 * 100.0 / s.limit_nanos as f64)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    fn bad_ratio(
        &self,
        route: &str,
        latency_ms: Option<u64>,
        now: u64,
        window: Duration,
    ) -> Option<f64> {
        let series = match latency_ms {
            None => format!(
                "error_ratio{}",
                flowgate_telemetry::history::label("route", route)
            ),
            Some(ms) => flowgate_telemetry::history::slow_ratio(route, ms),
        };
        self.value(&series, now, window)
    }
}
