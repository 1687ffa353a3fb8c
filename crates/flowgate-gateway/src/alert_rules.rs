//! Alert rules made through the admin API: checked as the config's are (against the
//! running config's routes, pools and notifiers, and the budgets in force), kept in the
//! alerts' store so that they outlive a restart, and put in force beside the config's. A
//! config rule of the same name wins; an API rule the running config no longer allows
//! (its route gone, say) is kept but not in force, and said in the log.

use flowgate_config::{AlertNames, AlertRule, Config, KeyPath, RawAlertRule};
use flowgate_cost::budget::Budgets;

pub(crate) use crate::api_made::Refused;

/// What rules may name, owned (see [`AlertNames`]).
#[derive(Debug, Default)]
pub(crate) struct Names {
    routes: Vec<String>,
    pools: Vec<String>,
    budgets: Vec<String>,
    notifiers: Vec<String>,
    databases: Vec<String>,
}

impl Names {
    pub(crate) fn of(config: &Config, budgets: &Budgets) -> Names {
        Names {
            routes: config.routes.iter().map(|r| r.name.clone()).collect(),
            pools: config.pools.iter().map(|p| p.name.clone()).collect(),
            budgets: budgets
                .list()
                .iter()
                .map(|b| b.config.name.clone())
                .collect(),
            notifiers: config
                .alerts
                .notifiers
                .iter()
                .map(|n| n.name.clone())
                .collect(),
            databases: config.databases.iter().map(|d| d.name.clone()).collect(),
        }
    }

    /// `raw` checked as rule `name`.
    pub(crate) fn check(&self, name: &str, raw: &RawAlertRule) -> Result<AlertRule, Refused> {
        fn v(l: &[String]) -> Vec<&str> {
            l.iter().map(String::as_str).collect()
        }
        let (routes, pools, budgets, notifiers, databases) = (
            v(&self.routes),
            v(&self.pools),
            v(&self.budgets),
            v(&self.notifiers),
            v(&self.databases),
        );
        let names = AlertNames {
            routes: &routes,
            pools: &pools,
            budgets: &budgets,
            notifiers: &notifiers,
            databases: &databases,
        };
        let raw = RawAlertRule {
            name: Some(name.to_string()),
            ..raw.clone()
        };
        let mut found = Vec::new();
        let rule = flowgate_config::alert_rule(&raw, 0, &names, &KeyPath::default(), &mut found);
        match rule {
            Some(r) if found.is_empty() => Ok(r),
            _ => Err(Refused::Invalid(
                found.into_iter().map(|(k, m)| (k.to_string(), m)).collect(),
            )),
        }
    }
}

/// The rules in force: `config`'s, then the API's that `names` allows and no config rule
/// shadows.
pub(crate) fn in_force(
    config: &[AlertRule],
    api: &[RawAlertRule],
    names: &Names,
) -> Vec<AlertRule> {
    let mut rules = config.to_vec();
    for raw in api {
        let Some(name) = raw.name.as_deref() else {
            continue;
        };
        if config.iter().any(|r| r.name == name) {
            tracing::warn!(
                rule = name,
                "an alert rule made through the API has the name of one in the config: the config's is in force"
            );
            continue;
        }
        match names.check(name, raw) {
            Ok(r) => rules.push(r),
            Err(Refused::Invalid(why)) => {
                let why: Vec<String> = why.iter().map(|(k, m)| format!("{k}: {m}")).collect();
                tracing::warn!(
                    rule = name,
                    "an alert rule made through the API is not in force: {}",
                    why.join("; ")
                );
            }
            Err(_) => {}
        }
    }
    rules
}
