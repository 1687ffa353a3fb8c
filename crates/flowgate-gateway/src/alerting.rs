//! Alerting in the gateway: the rules ([`flowgate_insight::alerts::Engine`]: the config's
//! and those made through the API, [`crate::alert_rules`]) evaluated every second, right
//! after the history's tick, over the history (the live ring for the last 15 minutes,
//! stored points beyond) and the budgets in force. Events are logged, kept in the alerts'
//! store ([`AlertStore`], with the API's rules) and handed to the notifiers
//! ([`flowgate_insight::notify`]), which deliver them on tasks of their own.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use flowgate_clock::SharedClock;
use flowgate_config::RawAlertRule;
use flowgate_config::{AlertKind, AlertRule, AlertsConfig};
use flowgate_cost::budget::Budgets;
use flowgate_http::fetch::Fetcher;
use flowgate_insight::alerts::store::AlertStore;
use flowgate_insight::alerts::{Engine, Event, EventKind, Source};

use crate::alert_rules::{Names, Refused};
use crate::anomalies::Anomalies;
use flowgate_insight::notify::Notifiers;
use flowgate_telemetry::history::series::LIVE_SECS;
use flowgate_telemetry::history::{History, Resolution};

/// The engine and the notifiers (see the module's documentation).
#[derive(Debug)]
pub(crate) struct Alerting {
    engine: Arc<Mutex<Engine>>,
    notifiers: Arc<ArcSwap<Notifiers>>,
    fetcher: Arc<Fetcher>,
    clock: SharedClock,
    store: Arc<AlertStore>,
    /// Who the notifications say they come from: `flowgate@HOST`.
    source: String,
    /// The config's rules as last applied.
    from_config: Mutex<Vec<AlertRule>>,
}

impl Alerting {
    /// The config's notifiers, and the store (its rules are put in force by
    /// [`Alerting::set`]).
    pub(crate) fn new(
        config: &AlertsConfig,
        clock: SharedClock,
        fetcher: Arc<Fetcher>,
        host: &str,
    ) -> std::io::Result<Alerting> {
        let source = format!("flowgate@{host}");
        let now = clock.unix_millis() / 1000;
        let (store, moved) = AlertStore::open(config.path.as_deref(), now, config.retention)
            .map_err(|e| std::io::Error::other(format!("alerts store: {e}")))?;
        if let Some(m) = moved {
            tracing::error!(
                moved_to = %m.to.display(),
                error = %m.why,
                "the alerts' file could not be read: moved aside, a fresh one kept (API rules and alert history start over)"
            );
        }
        let notifiers = Notifiers::new(
            &config.notifiers,
            None,
            fetcher.clone(),
            clock.clone(),
            source.clone(),
        );
        Ok(Alerting {
            engine: Arc::new(Mutex::new(Engine::new(Vec::new()))),
            notifiers: Arc::new(ArcSwap::from_pointee(notifiers)),
            fetcher,
            clock,
            store: Arc::new(store),
            source,
            from_config: Mutex::new(Vec::new()),
        })
    }

    /// Puts `config`'s rules and notifiers in force, with the API's rules `names` allows
    /// (at start, and at a reload); what `history` must count for them, counted.
    /// Notifiers that keep their name and kind keep their counts.
    pub(crate) fn set(&self, config: &AlertsConfig, names: &Names, history: Option<&History>) {
        if let Ok(mut c) = self.from_config.lock() {
            c.clone_from(&config.rules);
        }
        self.put_in_force(names, history);
        let old = self.notifiers.load();
        self.notifiers.store(Arc::new(Notifiers::new(
            &config.notifiers,
            Some(&old),
            self.fetcher.clone(),
            self.clock.clone(),
            self.source.clone(),
        )));
    }

    /// The config's rules and the API's, in force.
    fn put_in_force(&self, names: &Names, history: Option<&History>) {
        let config = self
            .from_config
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        let api = self.store.rules().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the alert rules made through the API could not be read");
            Vec::new()
        });
        let rules = crate::alert_rules::in_force(&config, &api, names);
        watch(&rules, history);
        if let Ok(mut e) = self.engine.lock() {
            e.set_rules(rules);
        }
    }

    /// Makes (or replaces) rule `name` from the API's `raw`; it is kept and in force.
    pub(crate) fn put_rule(
        &self,
        name: &str,
        raw: RawAlertRule,
        names: &Names,
        history: Option<&History>,
    ) -> Result<AlertRule, Refused> {
        if self.in_config(name) {
            return Err(Refused::InConfig);
        }
        let rule = names.check(name, &raw)?;
        self.store
            .put_rule(name, &rule.raw)
            .map_err(Refused::Store)?;
        self.put_in_force(names, history);
        Ok(rule)
    }

    /// Removes rule `name` made through the API.
    pub(crate) fn delete_rule(
        &self,
        name: &str,
        names: &Names,
        history: Option<&History>,
    ) -> Result<(), Refused> {
        if self.in_config(name) {
            return Err(Refused::InConfig);
        }
        if !self.store.delete_rule(name).map_err(Refused::Store)? {
            return Err(Refused::NotFound);
        }
        self.put_in_force(names, history);
        Ok(())
    }

    fn in_config(&self, name: &str) -> bool {
        self.from_config
            .lock()
            .is_ok_and(|c| c.iter().any(|r| r.name == name))
    }

    /// The store: the API's rules and the events.
    pub(crate) fn store(&self) -> &AlertStore {
        &self.store
    }

    /// The notifiers in force.
    pub(crate) fn notifiers(&self) -> arc_swap::Guard<Arc<Notifiers>> {
        self.notifiers.load()
    }

    /// The alerts' and notifiers' metric families, encoded at each scrape.
    pub(crate) fn collector(&self) -> crate::alert_metrics::AlertCollector {
        crate::alert_metrics::AlertCollector {
            engine: self.engine.clone(),
            notifiers: self.notifiers.clone(),
        }
    }

    /// Runs `f` on the engine.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut Engine) -> T) -> Option<T> {
        self.engine.lock().ok().map(|mut e| f(&mut e))
    }

    /// Evaluates every rule at `now`; the events, logged and handed to the notifiers.
    pub(crate) fn evaluate(
        &self,
        history: &History,
        budgets: &Budgets,
        anomalies: &Anomalies,
        now: u64,
    ) -> Vec<Event> {
        let src = Watched {
            history,
            budgets,
            anomalies,
        };
        let (events, rules) = self
            .with(|e| {
                let events = e.evaluate(&src, now);
                // The rules of the events, for the notifiers (few: most ticks have none).
                let rules: Vec<AlertRule> = e
                    .rules()
                    .iter()
                    .filter(|r| events.iter().any(|ev| ev.rule == r.name))
                    .cloned()
                    .collect();
                (events, rules)
            })
            .unwrap_or_default();
        if !events.is_empty() {
            // Kept off the async task: a durable write waits for the disk.
            let (store, kept) = (self.store.clone(), events.clone());
            tokio::task::spawn_blocking(move || {
                if let Err(e) = store.record(&kept, now) {
                    tracing::warn!(error = %e, "alert events could not be kept");
                }
            });
        }
        let notifiers = self.notifiers.load();
        for e in &events {
            notifiers.dispatch(e, rules.iter().find(|r| r.name == e.rule));
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

/// An event not of an alert rule (an automation's notice, a failed action): kept in the
/// alert history and handed to the notifiers named (every one when `to` is empty).
pub(crate) fn announce(alerting: &Alerting, e: Event, to: &[String]) {
    let store = alerting.store.clone();
    let kept = [e.clone()];
    let now = e.at;
    // Kept off the async task: a durable write waits for the disk.
    tokio::task::spawn_blocking(move || {
        if let Err(err) = store.record(&kept, now) {
            tracing::warn!(error = %err, "an event could not be kept");
        }
    });
    alerting.notifiers().dispatch_to(&e, to);
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

/// What rules read: the history, the budgets and the anomalies open.
struct Watched<'a> {
    history: &'a History,
    budgets: &'a Budgets,
    anomalies: &'a Anomalies,
}

/// `series` over the `window` before `now`, as a rule reads it: from the live ring by the
/// second, or beyond it (and for latencies) the stored points' mean.
pub(crate) fn series_value(
    history: &History,
    series: &str,
    now: u64,
    window: Duration,
) -> Option<f64> {
    let secs = window.as_secs().max(1);
    let latency = series.contains("latency_ms_p");
    if !latency && secs <= LIVE_SECS {
        return history.live(series, now, secs);
    }
    let res = if secs <= 6 * 3600 {
        Resolution::TenSeconds
    } else if secs <= 7 * 86_400 {
        Resolution::Minute
    } else {
        Resolution::Hour
    };
    let points = history
        .read(series, res, now.saturating_sub(secs), now + 1)
        .ok()?;
    (!points.is_empty()).then(|| points.iter().map(|p| p.value).sum::<f64>() / points.len() as f64)
}

impl Source for Watched<'_> {
    fn value(&self, series: &str, now: u64, window: Duration) -> Option<f64> {
        series_value(self.history, series, now, window)
    }

    fn last_seen(&self, series: &str) -> Option<u64> {
        self.history.last_seen(series)
    }

    fn budget_percent(&self, name: Option<&str>, now: u64) -> Option<(String, f64)> {
        fullest_budget(self.budgets, name, now)
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

    fn anomaly(&self, pattern: Option<&str>, min_score: f64) -> Option<(f64, String)> {
        self.anomalies.worst_open(pattern, min_score)
    }
}

/// The budget (of `name`, or of any) that has spent the largest share of its limit at
/// `now`: its name (with the key, team, route or model it counts) and that share in
/// percent.
pub(crate) fn fullest_budget(
    budgets: &Budgets,
    name: Option<&str>,
    now: u64,
) -> Option<(String, f64)> {
    budgets
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
