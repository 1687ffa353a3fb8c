//! The spend families: dollars spent and saved and tokens, by route, model, provider and
//! team (not by key: keys are many; the ledger has them), and how the ledger's writer is
//! doing, counted from the records on the control plane; and the budgets' spend, limit
//! and utilization, with how their sync with the other replicas goes. Encoded at each
//! scrape.

use hashbrown::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowgate_cost::ledger::{Dims, Totals};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::cache_metrics::{counter, gauge, one};

/// The labels spend is counted by.
type Labels = [Arc<str>; 4];

#[derive(Debug, Default)]
pub(super) struct SpendCounts {
    by: Mutex<HashMap<Labels, Totals>>,
    writer: Mutex<WriterCounts>,
    /// Prompt shaping per route: requests changed by each step, prompt tokens saved,
    /// answer tokens capped.
    shaping: Mutex<HashMap<(Arc<str>, &'static str), u64>>,
    shaping_saved: Mutex<HashMap<Arc<str>, (u64, u64)>>,
    sync: Mutex<SyncCounts>,
}

/// The shared budgets' syncs: counters synced and not, and the last one's state.
#[derive(Debug, Default, Clone, Copy)]
struct SyncCounts {
    synced: u64,
    failed: u64,
    local: bool,
    unsynced_nanos: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct WriterCounts {
    flushes: u64,
    failures: u64,
    rows: u64,
    last: Duration,
}

impl SpendCounts {
    pub(super) fn add(&self, d: &Dims, t: &Totals) {
        let labels = [
            d.route.clone(),
            d.model.clone(),
            d.provider.clone(),
            d.team.clone(),
        ];
        if let Ok(mut by) = self.by.lock() {
            by.entry(labels).or_default().add(t);
        }
    }

    pub(super) fn shaped(&self, route: &Arc<str>, s: &flowgate_cost::shaping::Shaped) {
        if let Ok(mut m) = self.shaping.lock() {
            for step in &s.steps {
                *m.entry((route.clone(), *step)).or_default() += 1;
            }
        }
        if let Ok(mut m) = self.shaping_saved.lock() {
            let e = m.entry(route.clone()).or_default();
            e.0 += s.prompt_tokens_saved;
            e.1 += s.completion_tokens_capped;
        }
    }

    pub(super) fn flushed(&self, rows: usize, took: Duration) {
        if let Ok(mut w) = self.writer.lock() {
            w.flushes += 1;
            w.rows += rows as u64;
            w.last = took;
        }
    }

    pub(super) fn synced(&self, r: &flowgate_cost::budget::Synced) {
        if let Ok(mut s) = self.sync.lock() {
            s.synced += r.synced as u64;
            s.failed += r.failed as u64;
            s.local = r.failed > 0;
            s.unsynced_nanos = r.unsynced_nanos;
        }
    }

    pub(super) fn flush_failures(&self) -> u64 {
        self.writer.lock().map_or(0, |w| w.failures)
    }

    pub(super) fn flush_failed(&self) {
        if let Ok(mut w) = self.writer.lock() {
            w.failures += 1;
        }
    }
}

/// Encodes the spend and budget families.
#[derive(Debug, Clone)]
pub struct SpendCollector {
    pub(super) counts: Arc<SpendCounts>,
    pub(super) budgets: Arc<super::budgets::InForce>,
    pub(super) shared: Option<Arc<flowgate_cost::budget::SharedSpend>>,
    pub(super) clock: flowgate_clock::SharedClock,
}

fn usd(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

impl Collector for SpendCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let rows: Vec<(Labels, Totals)> = match self.counts.by.lock() {
            Ok(by) => by.iter().map(|(l, t)| (l.clone(), *t)).collect(),
            Err(_) => Vec::new(),
        };
        let e = &mut e;
        fn labels(l: &Labels) -> Vec<(&'static str, &str)> {
            vec![
                ("route", &*l[0]),
                ("model", &*l[1]),
                ("provider", &*l[2]),
                ("team", &*l[3]),
            ]
        }
        let of = |f: fn(&Totals) -> f64| -> Vec<(Vec<(&str, &str)>, f64)> {
            rows.iter().map(|(l, t)| (labels(l), f(t))).collect()
        };
        counter(
            e,
            "flowgate_spend_usd",
            "US dollars spent upstream, at the catalog's prices",
            of(|t| usd(t.usd)),
        )?;
        counter(
            e,
            "flowgate_saved_usd",
            "US dollars flowgate's cache saved: its answers priced as new calls",
            of(|t| usd(t.saved_usd)),
        )?;
        counter(
            e,
            "flowgate_priced_requests",
            "Answers priced (their tokens read or estimated)",
            of(|t| t.requests as f64),
        )?;
        let mut tokens = Vec::new();
        for (l, t) in &rows {
            for (kind, n) in [
                ("input", t.input_tokens),
                ("output", t.output_tokens),
                ("cache_read", t.cache_read_tokens),
                ("cache_write", t.cache_write_tokens),
            ] {
                let mut ls = labels(l);
                ls.push(("kind", kind));
                tokens.push((ls, n));
            }
        }
        counter(
            e,
            "flowgate_tokens",
            "Tokens of the answers priced, by kind (input: not from the provider's prompt cache)",
            tokens,
        )?;
        let steps: Vec<((Arc<str>, &'static str), u64)> = match self.counts.shaping.lock() {
            Ok(m) => m.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            Err(_) => Vec::new(),
        };
        counter(
            e,
            "flowgate_shaping",
            "Requests a route's prompt shaping changed, by step",
            steps
                .iter()
                .map(|((r, st), n)| (vec![("route", &**r), ("step", *st)], *n))
                .collect(),
        )?;
        let saved: Vec<(Arc<str>, (u64, u64))> = match self.counts.shaping_saved.lock() {
            Ok(m) => m.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            Err(_) => Vec::new(),
        };
        counter(
            e,
            "flowgate_shaping_prompt_tokens_saved",
            "Prompt tokens whitespace compaction saved (estimated)",
            saved
                .iter()
                .map(|(r, (p, _))| (vec![("route", &**r)], *p))
                .collect(),
        )?;
        counter(
            e,
            "flowgate_shaping_completion_tokens_capped",
            "Answer tokens a max_tokens cap no longer allowed",
            saved
                .iter()
                .map(|(r, (_, c))| (vec![("route", &**r)], *c))
                .collect(),
        )?;
        let w = self.counts.writer.lock().map(|w| *w).unwrap_or_default();
        counter(
            e,
            "flowgate_ledger_flushes",
            "Writes of the spend ledger",
            one(w.flushes),
        )?;
        counter(
            e,
            "flowgate_ledger_flush_failures",
            "Writes of the spend ledger that failed (their rows kept for the next)",
            one(w.failures),
        )?;
        counter(
            e,
            "flowgate_ledger_rows_written",
            "Ledger rows written (one per minute and combination of key, team, route, model, provider)",
            one(w.rows),
        )?;
        gauge(
            e,
            "flowgate_ledger_last_flush_seconds",
            "How long the last write of the spend ledger took",
            one(w.last.as_secs_f64()),
        )?;
        self.encode_budgets(e)
    }
}

impl SpendCollector {
    fn encode_budgets(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = self.clock.unix_millis() / 1000;
        let statuses: Vec<flowgate_cost::budget::Status> = self
            .budgets
            .load()
            .list()
            .iter()
            .flat_map(|b| b.statuses(now))
            .collect();
        let nanos = |n: u64| n as f64 / 1e9;
        let of =
            |f: &dyn Fn(&flowgate_cost::budget::Status) -> f64| -> Vec<(Vec<(&str, &str)>, f64)> {
                statuses
                    .iter()
                    .map(|s| {
                        (
                            vec![("budget", s.budget.as_str()), ("value", s.value.as_str())],
                            f(s),
                        )
                    })
                    .collect()
            };
        gauge(
            e,
            "flowgate_budget_spent_usd",
            "US dollars a budget counts in its current window (every replica's when shared)",
            of(&|s| nanos(s.spent_nanos)),
        )?;
        gauge(
            e,
            "flowgate_budget_limit_usd",
            "A budget's limit per window",
            of(&|s| nanos(s.limit_nanos)),
        )?;
        gauge(
            e,
            "flowgate_budget_utilization_ratio",
            "A budget's spend over its limit (1: at the limit)",
            of(&|s| {
                if s.limit_nanos == 0 {
                    0.0
                } else {
                    s.spent_nanos as f64 / s.limit_nanos as f64
                }
            }),
        )?;
        if self.shared.is_some() {
            let s = self.counts.sync.lock().map(|s| *s).unwrap_or_default();
            counter(
                e,
                "flowgate_budget_syncs",
                "Budget counters synced with the other replicas through Redis, by result",
                vec![
                    (vec![("result", "ok")], s.synced as f64),
                    (vec![("result", "failed")], s.failed as f64),
                ],
            )?;
            gauge(
                e,
                "flowgate_budget_redis_fallback",
                "1 while Redis does not answer and budgets count this replica's spend locally",
                one(if s.local { 1.0 } else { 0.0 }),
            )?;
            gauge(
                e,
                "flowgate_budget_unsynced_usd",
                "US dollars this replica spent that the shared counters do not hold yet",
                one(nanos(s.unsynced_nanos)),
            )?;
        }
        Ok(())
    }
}
