//! The budgets in force: the config's, and those made through the admin API (kept in the
//! ledger's file, so that they outlive a restart), as one [`Budgets`] swapped whole when
//! either changes. Their counters carry over; a budget new to the set is filled from the
//! ledger first.

use std::sync::Arc;

use arc_swap::ArcSwap;
use flowgate_config::{BudgetConfig, Config, Known, RawBudget};
use flowgate_cost::budget::Budgets;
use flowgate_cost::ledger::Ledger;

use crate::api_made::Refused;

/// The budgets in force (see the module's documentation).
#[derive(Debug)]
pub(crate) struct InForce {
    current: ArcSwap<Budgets>,
    /// The config's, as last applied.
    from_config: std::sync::Mutex<Vec<BudgetConfig>>,
    shared: bool,
}

impl InForce {
    /// None yet; their counters `shared` with the other replicas', or not.
    pub(crate) fn new(shared: bool) -> InForce {
        InForce {
            current: ArcSwap::from_pointee(Budgets::default()),
            from_config: std::sync::Mutex::new(Vec::new()),
            shared,
        }
    }
}

/// The names budgets may count: the config's keys and teams and those made through the
/// admin API, the routes.
#[derive(Debug, Default)]
pub(crate) struct Names {
    keys: Vec<String>,
    teams: Vec<String>,
    routes: Vec<String>,
}

impl Names {
    pub(crate) fn of(config: &Config, keys: &[Arc<crate::auth::Caller>]) -> Names {
        Names {
            keys: keys.iter().map(|c| c.key.name.clone()).collect(),
            teams: keys.iter().filter_map(|c| c.key.team.clone()).collect(),
            routes: config.routes.iter().map(|r| r.name.clone()).collect(),
        }
    }

    pub(crate) fn known<'a>(&'a self, config: &'a Config) -> Known<'a> {
        Known {
            keys: self.keys.iter().map(String::as_str).collect(),
            teams: self.teams.iter().map(String::as_str).collect(),
            routes: self.routes.iter().map(String::as_str).collect(),
            models: Some(&config.models),
        }
    }
}

impl InForce {
    pub(crate) fn load(&self) -> Arc<Budgets> {
        self.current.load_full()
    }

    /// The budgets made through the API, as kept; those that no longer pass the checks
    /// (a key since removed from the config) are logged and left out.
    fn kept(&self, ledger: &Ledger, known: &Known<'_>) -> Vec<BudgetConfig> {
        let rows = match ledger.budgets() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "the budgets made through the admin API cannot be read");
                return Vec::new();
            }
        };
        rows.iter()
            .filter_map(|(name, json)| {
                let raw: RawBudget = serde_json::from_slice(json).ok()?;
                let mut found = Vec::new();
                let key = flowgate_config::KeyPath::default().key(name);
                let b = flowgate_config::budget(&raw, 0, known, &key, &mut found);
                if b.is_none() {
                    tracing::error!(budget = %name, problems = ?found, "a budget kept from the admin API no longer holds; it is not in force");
                }
                b
            })
            .collect()
    }

    /// Puts the config's `budgets` and the kept ones (checked against `known`) in force at
    /// `now`.
    pub(crate) fn rebuild(
        &self,
        budgets: &[BudgetConfig],
        known: &Known<'_>,
        ledger: &Ledger,
        now: u64,
    ) {
        if let Ok(mut c) = self.from_config.lock() {
            *c = budgets.to_vec();
        }
        self.apply(ledger, now, known);
    }

    fn apply(&self, ledger: &Ledger, now: u64, known: &Known<'_>) {
        let from_config = self
            .from_config
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        let mut all = from_config.clone();
        for b in self.kept(ledger, known) {
            if all.iter().any(|c| c.name == b.name) {
                tracing::warn!(budget = %b.name, "a budget of the admin API has the name of one in the config; the config's is in force");
                continue;
            }
            all.push(b);
        }
        let old = self.current.load_full();
        let new = Budgets::new(&all, Some(&old), self.shared);
        for b in new.list() {
            let carried = old.get(&b.config.name).is_some_and(|o| {
                o.config.scope == b.config.scope
                    && o.config.value == b.config.value
                    && o.config.window == b.config.window
                    && o.config.timezone == b.config.timezone
            });
            if !carried && let Err(e) = new.seed(ledger, now, Some(&b.config.name)) {
                tracing::error!(budget = %b.config.name, error = %e, "a budget's spend could not be read from the ledger; it counts from now");
            }
        }
        self.current.store(Arc::new(new));
    }

    /// Makes or replaces the API's budget `name` from `raw`, checked against `known`.
    pub(crate) fn put(
        &self,
        name: &str,
        mut raw: RawBudget,
        known: &Known<'_>,
        ledger: &Ledger,
        now: u64,
    ) -> Result<BudgetConfig, Refused> {
        if self.is_config(name) {
            return Err(Refused::InConfig);
        }
        raw.name = Some(name.to_string());
        let mut found = Vec::new();
        let Some(b) = flowgate_config::budget(
            &raw,
            0,
            known,
            &flowgate_config::KeyPath::default(),
            &mut found,
        ) else {
            return Err(Refused::Invalid(
                found.into_iter().map(|(k, m)| (k.to_string(), m)).collect(),
            ));
        };
        let json = serde_json::to_vec(&raw).map_err(|e| Refused::Store(e.to_string()))?;
        ledger
            .keep_budget(name, Some(&json))
            .map_err(|e| Refused::Store(e.to_string()))?;
        self.apply(ledger, now, known);
        Ok(b)
    }

    /// Removes the API's budget `name`.
    pub(crate) fn delete(
        &self,
        name: &str,
        known: &Known<'_>,
        ledger: &Ledger,
        now: u64,
    ) -> Result<(), Refused> {
        if self.is_config(name) {
            return Err(Refused::InConfig);
        }
        let kept = ledger
            .budgets()
            .map_err(|e| Refused::Store(e.to_string()))?;
        if !kept.iter().any(|(n, _)| n == name) {
            return Err(Refused::NotFound);
        }
        ledger
            .keep_budget(name, None)
            .map_err(|e| Refused::Store(e.to_string()))?;
        self.apply(ledger, now, known);
        Ok(())
    }

    /// Whether the config sets budget `name`.
    pub(crate) fn is_config(&self, name: &str) -> bool {
        self.from_config
            .lock()
            .is_ok_and(|c| c.iter().any(|b| b.name == name))
    }
}
