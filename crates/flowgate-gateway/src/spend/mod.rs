//! Spend: each answered request's priced tokens ([`flowgate_telemetry::Spend`], put in its
//! record by its account) go into the spend ledger and the spend metrics, on the control
//! plane, from the telemetry consumer ([`SpendSink`]); a task writes the ledger every
//! `[cost] flush_interval` ([`spawn_writer`]), and once more at shutdown. The budgets in
//! force (the config's and those made through the admin API, kept in the ledger's file)
//! are here too ([`budgets`]); with `[cost.shared]` a task syncs their counters with the
//! other replicas' ([`spawn_sync`]).

pub(crate) mod budgets;
mod metrics;

use std::sync::Arc;
use std::time::Duration;

use flowgate_clock::SharedClock;
use flowgate_config::CostConfig;
use flowgate_cost::budget::SharedSpend;
use flowgate_cost::ledger::{Dims, Ledger, MovedAside, Retention, Totals};
use flowgate_telemetry::{RequestRecord, Sink};
use tokio::sync::watch;

pub use metrics::SpendCollector;
use metrics::SpendCounts;

/// The ledger and what else spend feeds. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Spending {
    ledger: Arc<Ledger>,
    counts: Arc<SpendCounts>,
    /// Whether answers are priced (`[cost] enabled`, fixed at start).
    enabled: bool,
    budgets: Arc<budgets::InForce>,
    /// The other replicas' budget counters (`[cost.shared]`).
    shared: Option<Arc<SharedSpend>>,
}

impl Spending {
    /// The ledger `cost` names (its file, or memory), opened at `now` (Unix seconds). A
    /// file that is not a ledger is moved aside and said so. (The budgets are put in force
    /// once the keys are known: [`budgets::InForce::rebuild`].) With `shared`, budgets
    /// count every replica's spend.
    pub fn open(
        cost: &CostConfig,
        now: u64,
        shared: Option<SharedSpend>,
    ) -> std::io::Result<Spending> {
        let retention = Retention {
            minutes: cost.minute_retention,
            hours: cost.hour_retention,
        };
        let ledger = match &cost.ledger {
            Some(path) => {
                let (ledger, moved) =
                    Ledger::open(path, retention, now).map_err(std::io::Error::other)?;
                if let Some(MovedAside { to, why }) = moved {
                    tracing::error!(
                        ledger = %path.display(),
                        moved_to = %to.display(),
                        error = %why,
                        "the spend ledger could not be opened: it was moved aside and a new one started"
                    );
                }
                ledger
            }
            None => Ledger::in_memory(retention).map_err(std::io::Error::other)?,
        };
        Ok(Spending {
            ledger: Arc::new(ledger),
            counts: Arc::default(),
            enabled: cost.enabled,
            budgets: Arc::new(budgets::InForce::new(shared.is_some())),
            shared: shared.map(Arc::new),
        })
    }

    /// With `[cost.shared]`: whether the budgets count locally now (Redis does not answer).
    pub(crate) fn budgets_local(&self) -> Option<bool> {
        self.shared.as_ref().map(|s| s.link().is_open())
    }

    /// Writes of the ledger that failed since start.
    pub(crate) fn ledger_failures(&self) -> u64 {
        self.counts.flush_failures()
    }

    /// The budgets in force.
    pub(crate) fn budgets(&self) -> &budgets::InForce {
        &self.budgets
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Whether answers are priced and accounted.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// What the telemetry consumer hands records to.
    pub fn sink(&self) -> Arc<dyn Sink> {
        Arc::new(SpendSink(self.clone()))
    }

    /// The spend and budget families for `/metrics`, the budgets read at `clock`'s time.
    pub fn collector(&self, clock: SharedClock) -> SpendCollector {
        SpendCollector {
            counts: self.counts.clone(),
            budgets: self.budgets.clone(),
            shared: self.shared.clone(),
            clock,
        }
    }
}

/// Takes each record's spend into the ledger and the metrics.
struct SpendSink(Spending);

impl Sink for SpendSink {
    fn take(&self, rec: &RequestRecord) {
        if let Some(sh) = &rec.shaped {
            self.0.counts.shaped(&rec.route, sh);
        }
        let Some(s) = rec.spend.as_ref().filter(|_| self.0.enabled) else {
            return;
        };
        let usd = s.usd.unwrap_or_default();
        let totals = Totals::of(&s.usage, s.estimated, usd, s.cached).asked(s.max_tokens);
        let name = |n: Option<&Arc<str>>| n.cloned().unwrap_or_else(|| Arc::from(""));
        let dims = Dims {
            key: name(rec.key.as_ref()),
            team: name(rec.team.as_ref()),
            route: rec.route.clone(),
            model: name(rec.model.as_ref()),
            provider: provider_name(rec.provider),
        };
        self.0.counts.add(&dims, &totals);
        self.0.ledger.add(rec.at_ms / 1000, dims, &totals);
    }
}

/// A provider's name as the ledger keys it, made once per name (there are six).
fn provider_name(p: Option<&'static str>) -> Arc<str> {
    static NAMES: std::sync::OnceLock<Vec<(&'static str, Arc<str>)>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        ["", "openai", "anthropic", "bedrock", "azure", "gemini"]
            .into_iter()
            .map(|n| (n, Arc::from(n)))
            .collect()
    });
    let p = p.unwrap_or("");
    names
        .iter()
        .find(|(n, _)| *n == p)
        .map_or_else(|| Arc::from(p), |(_, a)| a.clone())
}

/// Writes the ledger every `interval` until `stopped`, then once more with every record
/// sent by then. A write that fails is logged and its rows kept for the next.
pub fn spawn_writer(
    spending: &Spending,
    telemetry: flowgate_telemetry::Telemetry,
    clock: SharedClock,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let ledger = spending.ledger.clone();
    let counts = spending.counts.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let last = tokio::select! {
                _ = tick.tick() => false,
                _ = stopped.wait_for(|s| *s) => true,
            };
            if last {
                telemetry.flush();
            }
            let (ledger, clock2, counts) = (ledger.clone(), clock.clone(), counts.clone());
            let _ = tokio::task::spawn_blocking(move || {
                let start = clock2.now();
                match ledger.flush(clock2.unix_millis() / 1000) {
                    // A write of nothing is no write.
                    Ok(r) if r.rows > 0 || r.pruned > 0 => {
                        counts.flushed(r.rows, clock2.now().saturating_duration_since(start));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        counts.flush_failed();
                        tracing::warn!(error = %e, "the spend ledger could not be written; it is kept for the next try");
                    }
                }
            })
            .await;
            if last {
                break;
            }
        }
    })
}

/// Syncs the budgets' counters with the other replicas' (`[cost.shared]`) every `interval`
/// until `stopped`, then once more so that the last spend is written; `None` when budgets
/// are not shared.
pub fn spawn_sync(
    spending: &Spending,
    clock: SharedClock,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let shared = spending.shared.clone()?;
    let budgets = spending.budgets.clone();
    let counts = spending.counts.clone();
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_local = false;
        loop {
            let last = tokio::select! {
                _ = tick.tick() => false,
                _ = stopped.wait_for(|s| *s) => true,
            };
            let r = budgets
                .load()
                .sync(&shared, clock.unix_millis() / 1000)
                .await;
            let local = r.failed > 0;
            if local != was_local {
                if local {
                    tracing::warn!(
                        unsynced_usd = %flowgate_cost::budget::usd_of(r.unsynced_nanos),
                        "Redis does not answer: budgets count this replica's spend locally until it does"
                    );
                } else {
                    tracing::info!("Redis answers again: budgets count every replica's spend");
                }
                was_local = local;
            }
            counts.synced(&r);
            if last {
                break;
            }
        }
    }))
}
