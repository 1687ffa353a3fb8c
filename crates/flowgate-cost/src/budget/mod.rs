//! Budgets at work: what each has spent in its window, and what it says of a request.
//!
//! A budget counts the dollars spent upstream (not what the cache saved) by the requests
//! it covers: all (global), or those of one key, team, route or model, or of each apart.
//! Its window is the last 60 minutes (counted by the minute: a minute's spend leaves the
//! window 60 minutes after it), or the calendar day or month in its time zone. Spend is
//! counted in whole billionths of a dollar as each answer ends ([`Budgets::charge`]);
//! before a request goes upstream, [`Budgets::check`] says whether a budget at or past a
//! `block` threshold refuses it (and when it will not any more), or one past a
//! `downgrade` threshold sends it to a cheaper model. Crossing a threshold upward is an
//! [`Event`] (the `notify` action, and every other): kept for the API and logged.
//!
//! At start the counters are filled from the spend ledger ([`Budgets::seed`]), so a
//! restart forgets nothing the ledger kept. With `[cost.shared]` the counters are every
//! replica's, synced through Redis ([`Budgets::sync`], the `shared` module).

mod shared;
#[cfg(test)]
mod tests;
mod window;

use std::collections::VecDeque;

use hashbrown::HashMap;
use std::sync::{Arc, Mutex};

use flowgate_config::{ActionKind, BudgetConfig, BudgetScope, DowngradeTo, Priority};
use rust_decimal::Decimal;

use crate::ledger::{Dim, Ledger, LedgerError, Query};
use crate::price::nanos;
pub use shared::SharedSpend;
use shared::Unsynced;
pub use window::Counter;

/// Events kept for the API.
const EVENTS: usize = 256;
/// Names a per-key (team, route, model) budget counts apart; more share no counter (a
/// client sending ever new model names must not grow it without end).
const MAX_VALUES: usize = 10_000;

/// Who a request is, as budgets see it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Who<'a> {
    pub key: Option<&'a str>,
    pub team: Option<&'a str>,
    pub route: &'a str,
    pub model: Option<&'a str>,
}

impl<'a> Who<'a> {
    fn get(&self, scope: BudgetScope) -> Option<&'a str> {
        match scope {
            BudgetScope::Global => Some(""),
            BudgetScope::Key => self.key,
            BudgetScope::Team => self.team,
            BudgetScope::Route => Some(self.route),
            BudgetScope::Model => self.model,
        }
    }
}

/// One budget and its counters (one, or one per key, team, route or model).
#[derive(Debug)]
pub struct Budget {
    pub config: BudgetConfig,
    /// Shared with the budget it replaced on a rebuild, so that a request charging the
    /// old one still counts.
    counters: Arc<Mutex<HashMap<String, Entry>>>,
    /// Whether the counters are synced with the other replicas'.
    shared: bool,
}

/// The spend of one name a budget counts.
#[derive(Debug)]
struct Entry {
    /// All replicas' spend when shared (as last synced, plus this one's since).
    counter: Counter,
    /// When shared: this replica's spend the shared counter does not hold yet.
    unsynced: Option<Unsynced>,
}

impl Entry {
    fn new(config: &BudgetConfig, shared: bool) -> Entry {
        Entry {
            counter: Counter::new(config),
            unsynced: shared.then(Unsynced::fresh),
        }
    }
}

/// What one sync with the shared counters did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Synced {
    /// Counters pushed and read.
    pub synced: usize,
    /// Counters Redis did not answer for (they keep counting locally).
    pub failed: usize,
    /// Billionths of a dollar spent here that the shared counters do not hold yet.
    pub unsynced_nanos: u64,
}

/// A budget's state for one of the names it counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub budget: String,
    /// The key, team, route or model counted (`""` for a global budget).
    pub value: String,
    pub spent_nanos: u64,
    pub limit_nanos: u64,
    /// The window: its start, and its end (Unix seconds) for a calendar one.
    pub window_start: u64,
    pub window_end: Option<u64>,
    /// The highest threshold reached (percent), if any.
    pub reached: Option<Decimal>,
}

/// A request a budget refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub budget: String,
    pub value: String,
    pub spent_nanos: u64,
    pub limit_nanos: u64,
    /// When the spend is back under the threshold at the latest (Unix seconds).
    pub resets_at: u64,
}

/// A downgrade a budget asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downgrade {
    pub budget: String,
    pub to: DowngradeTo,
    pub spare: Vec<Priority>,
}

/// What the budgets say of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub block: Option<Blocked>,
    pub downgrade: Option<Downgrade>,
}

/// A threshold crossed upward.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Event {
    /// Unix seconds.
    pub at: u64,
    pub budget: String,
    pub value: String,
    pub threshold_percent: String,
    pub action: &'static str,
    pub spent_usd: String,
    pub limit_usd: String,
}

impl Budget {
    pub fn new(config: BudgetConfig, shared: bool) -> Budget {
        Budget {
            config,
            counters: Arc::default(),
            shared,
        }
    }

    fn limit_nanos(&self) -> u64 {
        nanos(self.config.limit_usd)
    }

    fn threshold_nanos(&self, percent: Decimal) -> u64 {
        nanos(self.config.limit_usd * percent / Decimal::ONE_HUNDRED)
    }

    /// The name `who` counts under, if this budget covers it.
    fn value_of<'a>(&'a self, who: &Who<'a>) -> Option<&'a str> {
        let v = who.get(self.config.scope)?;
        match &self.config.value {
            Some(only) if only != v => None,
            _ => Some(v),
        }
    }

    /// Adds `n` billionths spent at `now` under `value`; the thresholds crossed.
    fn add(&self, value: &str, n: u64, now: u64) -> Vec<Decimal> {
        let Ok(mut counters) = self.counters.lock() else {
            return Vec::new();
        };
        if !counters.contains_key(value) {
            if counters.len() >= MAX_VALUES {
                return Vec::new();
            }
            counters.insert(value.to_string(), Entry::new(&self.config, self.shared));
        }
        let Some(e) = counters.get_mut(value) else {
            return Vec::new();
        };
        let before = e.counter.spent(now);
        if let Some(bucket) = e.counter.add(n, now)
            && let Some(u) = &mut e.unsynced
        {
            u.add(bucket, n);
        }
        self.crossed(before, before.saturating_add(n))
    }

    /// The thresholds passed going from `before` to `after` spent.
    fn crossed(&self, before: u64, after: u64) -> Vec<Decimal> {
        self.config
            .actions
            .iter()
            .map(|a| a.at_percent)
            .filter(|&p| {
                let t = self.threshold_nanos(p);
                before < t.max(1) && after >= t
            })
            .collect()
    }

    /// The state of `value` at `now`.
    pub fn status(&self, value: &str, now: u64) -> Status {
        let (spent, start, end) = match self.counters.lock() {
            Ok(mut c) => match c.get_mut(value) {
                Some(Entry { counter: c, .. }) => {
                    (c.spent(now), c.window_start(now), c.window_end(now))
                }
                None => {
                    let c = Counter::new(&self.config);
                    (0, c.window_start(now), c.window_end(now))
                }
            },
            Err(_) => (0, now, None),
        };
        Status {
            budget: self.config.name.clone(),
            value: value.to_string(),
            spent_nanos: spent,
            limit_nanos: self.limit_nanos(),
            window_start: start,
            window_end: end,
            reached: self.reached(spent),
        }
    }

    /// Every name counted, with its state.
    pub fn statuses(&self, now: u64) -> Vec<Status> {
        let mut values: Vec<String> = match self.counters.lock() {
            Ok(c) => c.keys().cloned().collect(),
            Err(_) => Vec::new(),
        };
        if values.is_empty()
            && (self.config.scope == BudgetScope::Global || self.config.value.is_some())
        {
            values.push(self.config.value.clone().unwrap_or_default());
        }
        values.sort();
        values.iter().map(|v| self.status(v, now)).collect()
    }

    fn reached(&self, spent: u64) -> Option<Decimal> {
        self.config
            .actions
            .iter()
            .rev()
            .map(|a| a.at_percent)
            .find(|&p| spent >= self.threshold_nanos(p))
    }

    /// What this budget says of a request counted under `value` at `now`.
    fn judge(&self, value: &str, now: u64, verdict: &mut Verdict) {
        let Ok(mut counters) = self.counters.lock() else {
            return;
        };
        if self.shared && !counters.contains_key(value) && counters.len() < MAX_VALUES {
            // Read at the next sync: what the other replicas spent under this name.
            counters.insert(value.to_string(), Entry::new(&self.config, true));
        }
        let mut counter = counters.get_mut(value).map(|e| {
            if let Some(u) = &mut e.unsynced {
                u.touch();
            }
            &mut e.counter
        });
        let spent = counter.as_mut().map_or(0, |c| c.spent(now));
        for a in &self.config.actions {
            let threshold = self.threshold_nanos(a.at_percent);
            if spent < threshold {
                continue;
            }
            match &a.kind {
                ActionKind::Block if verdict.block.is_none() => {
                    let resets_at = counter.as_ref().map_or(now, |c| c.under_at(threshold, now));
                    verdict.block = Some(Blocked {
                        budget: self.config.name.clone(),
                        value: value.to_string(),
                        spent_nanos: spent,
                        limit_nanos: self.limit_nanos(),
                        resets_at,
                    });
                }
                ActionKind::Downgrade { to, spare } => {
                    // The strongest downgrade wins: to the cheapest over a cheaper one.
                    let stronger = match &verdict.downgrade {
                        None => true,
                        Some(d) => d.to == DowngradeTo::Cheaper && *to == DowngradeTo::Cheapest,
                    };
                    if stronger {
                        verdict.downgrade = Some(Downgrade {
                            budget: self.config.name.clone(),
                            to: *to,
                            spare: spare.clone(),
                        });
                    }
                }
                _ => {}
            }
        }
    }
}

/// The budgets in force, and the events of their thresholds.
#[derive(Debug, Default)]
pub struct Budgets {
    list: Vec<Arc<Budget>>,
    events: Mutex<VecDeque<Event>>,
}

/// The event of `b` passing threshold `p` (percent) for `value`, logged.
fn event(b: &Budget, value: &str, p: Decimal, spent: u64, now: u64) -> Event {
    let action = b
        .config
        .actions
        .iter()
        .filter(|a| a.at_percent == p)
        .map(|a| a.kind.as_str())
        .next()
        .unwrap_or("notify");
    let e = Event {
        at: now,
        budget: b.config.name.clone(),
        value: value.to_string(),
        threshold_percent: p.normalize().to_string(),
        action,
        spent_usd: usd_of(spent),
        limit_usd: b.config.limit_usd.normalize().to_string(),
    };
    tracing::warn!(
        budget = %e.budget,
        value = %e.value,
        threshold = %e.threshold_percent,
        action,
        spent_usd = %e.spent_usd,
        limit_usd = %e.limit_usd,
        "a budget crossed a threshold"
    );
    e
}

impl Budgets {
    /// The budgets of `configs` (their counters `shared` with other replicas, or not);
    /// those already in `old` with the same name, scope and window keep their counters (a
    /// reload, a change through the API).
    pub fn new(configs: &[BudgetConfig], old: Option<&Budgets>, shared: bool) -> Budgets {
        let list = configs
            .iter()
            .map(|c| {
                let kept = old.and_then(|o| {
                    o.list.iter().find(|b| {
                        b.config.name == c.name
                            && b.config.scope == c.scope
                            && b.config.value == c.value
                            && b.config.window == c.window
                            && b.config.timezone == c.timezone
                    })
                });
                match kept {
                    Some(b) => Arc::new(Budget {
                        config: c.clone(),
                        counters: b.counters.clone(),
                        shared,
                    }),
                    None => Arc::new(Budget::new(c.clone(), shared)),
                }
            })
            .collect();
        let events = old
            .and_then(|o| o.events.lock().ok().map(|e| e.clone()))
            .unwrap_or_default();
        Budgets {
            list,
            events: Mutex::new(events),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn list(&self) -> &[Arc<Budget>] {
        &self.list
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Budget>> {
        self.list.iter().find(|b| b.config.name == name)
    }

    /// What the budgets covering `who` say at `now`.
    pub fn check(&self, who: &Who<'_>, now: u64) -> Verdict {
        let mut v = Verdict::default();
        for b in &self.list {
            if let Some(value) = b.value_of(who) {
                b.judge(value, now, &mut v);
            }
        }
        v
    }

    /// Counts `usd` spent by `who` at `now` in every budget covering it; thresholds
    /// crossed become events (logged).
    pub fn charge(&self, who: &Who<'_>, usd: Decimal, now: u64) {
        let n = nanos(usd);
        if n == 0 {
            return;
        }
        for b in &self.list {
            let Some(value) = b.value_of(who) else {
                continue;
            };
            for p in b.add(value, n, now) {
                let spent = b.status(value, now).spent_nanos;
                self.keep(event(b, value, p, spent, now));
            }
        }
    }

    fn keep(&self, e: Event) {
        if let Ok(mut events) = self.events.lock() {
            if events.len() >= EVENTS {
                events.pop_front();
            }
            events.push_back(e);
        }
    }

    /// Adds what this replica spent since the last sync to the shared counters and reads
    /// back what every replica spent, for each counter charged or checked since; a
    /// threshold the others' spend passed is an event here too. A counter Redis does not
    /// answer for keeps counting locally and is pushed again at the next sync.
    pub async fn sync(&self, shared: &SharedSpend, now: u64) -> Synced {
        let mut calls = Vec::new();
        for (i, b) in self.list.iter().enumerate() {
            let Ok(mut counters) = b.counters.lock() else {
                continue;
            };
            for (value, e) in counters.iter_mut() {
                if let Some(u) = &mut e.unsynced
                    && let Some(push) = u.push(&e.counter, now)
                {
                    calls.push((i, value.clone(), push));
                }
            }
        }
        let mut report = Synced::default();
        for (i, value, push) in calls {
            let b = &self.list[i];
            let totals = shared.run(&b.config.name, &value, &push).await;
            let crossed = {
                let Ok(mut counters) = b.counters.lock() else {
                    continue;
                };
                let Some(Entry {
                    counter,
                    unsynced: Some(u),
                }) = counters.get_mut(&value)
                else {
                    continue;
                };
                let Some(totals) = totals else {
                    report.failed += 1;
                    continue;
                };
                report.synced += 1;
                let before = counter.spent(now);
                u.acked(&push, &totals, counter, now);
                let after = counter.spent(now);
                (after > before).then(|| (b.crossed(before, after), after))
            };
            if let Some((crossed, spent)) = crossed {
                for p in crossed {
                    self.keep(event(b, &value, p, spent, now));
                }
            }
        }
        report.unsynced_nanos = self
            .list
            .iter()
            .filter_map(|b| b.counters.lock().ok())
            .flat_map(|c| {
                c.values()
                    .filter_map(|e| e.unsynced.as_ref().map(Unsynced::amount))
                    .collect::<Vec<_>>()
            })
            .fold(0u64, u64::saturating_add);
        report
    }

    /// The thresholds crossed lately, oldest first.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .map(|e| e.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Fills the counters of `only` (every budget when `None`) from what `ledger` holds of
    /// their windows at `now` (at start, or for a budget just made).
    pub fn seed(&self, ledger: &Ledger, now: u64, only: Option<&str>) -> Result<(), LedgerError> {
        for b in &self.list {
            if only.is_some_and(|n| n != b.config.name) {
                continue;
            }
            let start = Counter::new(&b.config).window_start(now);
            let dim = match b.config.scope {
                BudgetScope::Global => None,
                BudgetScope::Key => Some(Dim::Key),
                BudgetScope::Team => Some(Dim::Team),
                BudgetScope::Route => Some(Dim::Route),
                BudgetScope::Model => Some(Dim::Model),
            };
            let filter = match (dim, &b.config.value) {
                (Some(d), Some(v)) => vec![(d, v.clone())],
                _ => Vec::new(),
            };
            let q = Query {
                from: start,
                to: now + 1,
                now,
                filter,
            };
            let mut fresh: HashMap<String, Entry> = HashMap::new();
            ledger.each(&q, |bucket, dims, t| {
                let value = dim.map_or("", |d| dims.get(d));
                if value.is_empty() && dim.is_some() {
                    return;
                }
                if fresh.len() >= MAX_VALUES && !fresh.contains_key(value) {
                    return;
                }
                fresh
                    .entry(value.to_string())
                    .or_insert_with(|| Entry::new(&b.config, b.shared))
                    .counter
                    .add(nanos(t.usd), bucket.max(start));
            })?;
            if let Ok(mut c) = b.counters.lock() {
                *c = fresh;
            }
        }
        Ok(())
    }
}

/// Billionths of a dollar as dollars, exactly.
pub fn usd_of(nanos: u64) -> String {
    (Decimal::from(nanos) / Decimal::from(1_000_000_000u64))
        .normalize()
        .to_string()
}
