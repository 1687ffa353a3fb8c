//! Cost control (`[cost]`): whether answers are priced and accounted, where the spend
//! ledger is kept and for how long, and how often it is written; the model tiers and the
//! budgets (`budget.rs`). (Prices themselves are the model catalog's, `[models."NAME"]`.)

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::budget::{BudgetConfig, Known, ModelTier};
use crate::error::{Found, KeyPath};

use crate::redis_link::{RawLink, RedisLinkConfig, redis_link};
use crate::units::{HumanDuration, dur, relative_to};

/// The ledger's file under `[server] data_dir`.
pub const LEDGER_FILE: &str = "ledger.redb";

/// `[cost]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCost {
    pub enabled: Option<bool>,
    pub ledger: Option<String>,
    pub flush_interval: Option<HumanDuration>,
    pub minute_retention_days: Option<u32>,
    pub hour_retention_days: Option<u32>,
    #[serde(default)]
    pub tiers: Vec<crate::budget::RawTier>,
    #[serde(default)]
    pub budgets: Vec<crate::budget::RawBudget>,
    pub shared: Option<RawSharedBudgets>,
}

/// `[cost.shared]` as written: the Redis the budgets' counters are shared through.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSharedBudgets {
    pub enabled: Option<bool>,
    pub url: Option<String>,
    pub urls: Option<Vec<String>>,
    pub cluster: Option<bool>,
    pub prefix: Option<String>,
    pub timeout: Option<HumanDuration>,
    pub breaker_failures: Option<u32>,
    pub breaker_cooldown: Option<HumanDuration>,
    pub sync_interval: Option<HumanDuration>,
}

/// Budget counters shared by every replica through Redis (`[cost.shared]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedBudgetsConfig {
    pub link: RedisLinkConfig,
    /// How often a replica adds what it spent to the shared counters and reads what all
    /// have spent (what one replica may overspend before the others know). Default 1 s.
    pub sync_interval: Duration,
}

/// Cost control.
#[derive(Debug, Clone, PartialEq)]
pub struct CostConfig {
    /// Answers are priced and their spend kept in the ledger. Default on.
    pub enabled: bool,
    /// The ledger's file: `ledger`, else `ledger.redb` in `[server] data_dir`; `None`: kept
    /// in memory (lost at exit).
    pub ledger: Option<PathBuf>,
    /// How often what was added is written (at most a second).
    pub flush_interval: Duration,
    pub minute_retention: Duration,
    pub hour_retention: Duration,
    /// Model tiers, most capable first (`[[cost.tiers]]`).
    pub tiers: Vec<ModelTier>,
    /// `[[cost.budgets]]`.
    pub budgets: Vec<BudgetConfig>,
    /// `None`: each replica counts its own spend.
    pub shared: Option<SharedBudgetsConfig>,
}

impl Default for CostConfig {
    fn default() -> Self {
        CostConfig {
            enabled: true,
            ledger: None,
            flush_interval: Duration::from_secs(1),
            minute_retention: Duration::from_secs(35 * 86_400),
            hour_retention: Duration::from_secs(400 * 86_400),
            tiers: Vec::new(),
            budgets: Vec::new(),
            shared: None,
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn cost(
    raw: Option<&RawCost>,
    tiers: Vec<ModelTier>,
    known: &Known<'_>,
    data_dir: Option<&PathBuf>,
    origin: &str,
    key: &KeyPath,
    found: &mut Found,
) -> CostConfig {
    let d = CostConfig {
        tiers,
        ..CostConfig::default()
    };
    let ledger = match raw.and_then(|r| r.ledger.as_deref()) {
        Some("") => {
            found.push((
                key.clone().key("ledger"),
                "an empty path: leave it out to keep the ledger in [server] data_dir".into(),
            ));
            None
        }
        Some(p) => Some(relative_to(origin, p)),
        None => data_dir.map(|d| d.join(LEDGER_FILE)),
    };
    let Some(raw) = raw else {
        return CostConfig { ledger, ..d };
    };
    let flush_interval = match raw.flush_interval {
        None => d.flush_interval,
        Some(HumanDuration(t)) if !t.is_zero() && t <= Duration::from_secs(1) => t,
        Some(HumanDuration(t)) => {
            found.push((
                key.clone().key("flush_interval"),
                format!(
                    "{t:?} is out of range: from 1ms to 1s (a crash loses at most one interval)"
                ),
            ));
            d.flush_interval
        }
    };
    let mut days = |v: Option<u32>, k: &str, default: Duration, min: u32| match v {
        None => default,
        Some(n) if n >= min && n <= 10 * 366 => Duration::from_secs(u64::from(n) * 86_400),
        Some(n) => {
            found.push((
                key.clone().key(k),
                format!("{n} is out of range: from {min} to 3660 days"),
            ));
            default
        }
    };
    let minute_retention = days(
        raw.minute_retention_days,
        "minute_retention_days",
        d.minute_retention,
        1,
    );
    let hour_retention = days(
        raw.hour_retention_days,
        "hour_retention_days",
        d.hour_retention,
        1,
    );
    if hour_retention < minute_retention {
        found.push((
            key.clone().key("hour_retention_days"),
            "hours must be kept at least as long as minutes".into(),
        ));
    }
    let mut budgets: Vec<BudgetConfig> = Vec::new();
    for (i, b) in raw.budgets.iter().enumerate() {
        let k = key.clone().key("budgets").index(i);
        if let Some(b) = crate::budget::budget(b, i, known, &k, found) {
            if budgets.iter().any(|o| o.name == b.name) {
                found.push((k.key("name"), format!("duplicate budget {:?}", b.name)));
                continue;
            }
            budgets.push(b);
        }
    }
    CostConfig {
        enabled: raw.enabled.unwrap_or(true),
        ledger,
        flush_interval,
        minute_retention,
        hour_retention,
        budgets,
        shared: raw
            .shared
            .as_ref()
            .filter(|s| s.enabled != Some(false))
            .and_then(|s| shared(s, &key.clone().key("shared"), found)),
        ..d
    }
}

fn shared(raw: &RawSharedBudgets, key: &KeyPath, found: &mut Found) -> Option<SharedBudgetsConfig> {
    let link = redis_link(
        RawLink {
            url: &raw.url,
            urls: &raw.urls,
            cluster: raw.cluster,
            prefix: &raw.prefix,
            timeout: raw.timeout,
            breaker_failures: raw.breaker_failures,
            breaker_cooldown: raw.breaker_cooldown,
        },
        "shared budgets need",
        key,
        found,
    );
    let sync_interval = dur(raw.sync_interval, Duration::from_secs(1));
    if sync_interval < Duration::from_millis(10) || sync_interval > Duration::from_secs(60) {
        found.push((
            key.clone().key("sync_interval"),
            format!("{sync_interval:?} is out of range: from 10ms to 60s"),
        ));
        return None;
    }
    Some(SharedBudgetsConfig {
        link: link?,
        sync_interval,
    })
}

impl CostConfig {
    /// Its lines of `flowgate check`'s summary.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        if !self.enabled {
            s.push_str("  cost: off (answers are not priced; no ledger, no budgets)\n");
            return s;
        }
        let _ = writeln!(
            s,
            "  cost: answers priced; ledger {}, written every {}, kept {} d by the minute and {} d by the hour",
            self.ledger.as_ref().map_or_else(
                || "in memory (lost at exit: set server.data_dir)".to_string(),
                |p| p.display().to_string()
            ),
            crate::format_duration(self.flush_interval),
            self.minute_retention.as_secs() / 86_400,
            self.hour_retention.as_secs() / 86_400,
        );
        if let Some(sh) = &self.shared {
            let _ = writeln!(
                s,
                "  budgets shared{}, synced every {}",
                sh.link.summary(),
                crate::format_duration(sh.sync_interval)
            );
        }
        for t in &self.tiers {
            let _ = writeln!(s, "  tier {}: {}", t.name, t.models.join(", "));
        }
        for b in &self.budgets {
            let actions: Vec<String> = b
                .actions
                .iter()
                .map(|a| format!("{} at {}%", a.kind.as_str(), a.at_percent.normalize()))
                .collect();
            let _ = writeln!(
                s,
                "  budget {}: ${} per {}{} for {}{}: {}",
                b.name,
                b.limit_usd.normalize(),
                b.window.as_str(),
                if b.window == crate::budget::BudgetWindow::Hour {
                    " (the last 60 minutes)".to_string()
                } else {
                    format!(" ({})", b.timezone_name)
                },
                b.scope.as_str(),
                b.value.as_ref().map_or_else(
                    || if b.scope == crate::budget::BudgetScope::Global {
                        String::new()
                    } else {
                        " (each apart)".into()
                    },
                    |v| format!(" {v:?}")
                ),
                actions.join(", ")
            );
        }
        s
    }
}
