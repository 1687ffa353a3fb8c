//! The changes automation rules (and the admin API's optimizations, owners named `api:…`)
//! make to the running config (`flowgate_config::ConfigChange`: a cache category's TTL, a
//! rate limit, a route's shedding or model tier).
//!
//! They are kept apart from the file's config and laid over it each time a runtime is
//! built (so that they survive a reload, and go as soon as they are taken away): the
//! config is the file's with the changes in force, built the way a reload builds it. A
//! change the file no longer allows (its target or its rule gone) is dropped, and logged.

use std::sync::Mutex;

use flowgate_config::{Config, ConfigChange};

/// The prefix of the owners of changes the admin API made (a rule's name has no `:`).
pub const API: &str = "api:";

/// The changes in force, by the rule (or API call) that made each, in the order they
/// were made.
#[derive(Debug, Default)]
pub struct Overrides {
    active: Mutex<Vec<(String, ConfigChange)>>,
}

impl Overrides {
    /// `config` with the changes in force; those it no longer allows are dropped.
    pub fn apply(&self, mut config: Config) -> Config {
        let Ok(mut active) = self.active.lock() else {
            return config;
        };
        let rules = &config.automation.rules;
        let gone: Vec<String> = active
            .iter()
            .filter(|(rule, _)| !rule.starts_with(API) && !rules.iter().any(|r| r.name == *rule))
            .map(|(rule, _)| rule.clone())
            .collect();
        active.retain(|(rule, change)| {
            // Checked before the change is made: a dropped change leaves no trace.
            if gone.contains(rule) {
                tracing::warn!(%rule, change = %change.describe(), "automation's change dropped: its rule is gone");
                return false;
            }
            match change.apply(&mut config) {
                Ok(_) => true,
                Err(why) => {
                    tracing::warn!(%rule, change = %change.describe(), %why, "automation's change dropped: the config no longer allows it");
                    false
                }
            }
        });
        config
    }

    /// Puts `owner`'s change in force: checked against `config` (the one in force), then
    /// the runtime built with it by `rebuild`; taken out again when that fails. What its
    /// target was.
    pub fn put(
        &self,
        config: &Config,
        owner: &str,
        change: ConfigChange,
        rebuild: impl FnOnce() -> Result<(), String>,
    ) -> Result<String, String> {
        let was = change.apply(&mut config.clone())?;
        self.set(owner, change);
        rebuild().inspect_err(|_| {
            self.remove(owner);
        })?;
        Ok(was)
    }

    /// Puts `rule`'s change in force (replacing one it made before).
    fn set(&self, rule: &str, change: ConfigChange) {
        if let Ok(mut a) = self.active.lock() {
            a.retain(|(r, _)| r != rule);
            a.push((rule.to_string(), change));
        }
    }

    /// Takes `rule`'s change away.
    pub fn remove(&self, rule: &str) -> Option<ConfigChange> {
        let mut a = self.active.lock().ok()?;
        let i = a.iter().position(|(r, _)| r == rule)?;
        Some(a.remove(i).1)
    }

    /// Takes away every change whose owner starts with `prefix`; them.
    pub fn remove_prefixed(&self, prefix: &str) -> Vec<(String, ConfigChange)> {
        let Ok(mut a) = self.active.lock() else {
            return Vec::new();
        };
        let (gone, kept) = std::mem::take(&mut *a)
            .into_iter()
            .partition(|(owner, _)| owner.starts_with(prefix));
        *a = kept;
        gone
    }

    /// The changes in force, by rule.
    pub fn list(&self) -> Vec<(String, ConfigChange)> {
        self.active.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rules: &str) -> Config {
        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:18180\"\nadmin_listen = \"127.0.0.1:18190\"\n\n\
             [pools.api]\nendpoints = [{{ url = \"http://127.0.0.1:18081\" }}]\n\n\
             [[routes]]\nname = \"api\"\nkind = \"http\"\nprefix = \"/api\"\npool = \"api\"\n\n{rules}"
        );
        flowgate_config::parse(&toml, "t.toml", std::iter::empty()).unwrap()
    }

    #[test]
    fn a_change_is_put_checked_and_dropped_with_its_rule() {
        let shed = |p| ConfigChange::Shed {
            route: None,
            priority: p,
        };
        let rule = "[[automation.rules]]\nname = \"r\"\nwhen = { schedule = \"* * * * *\" }\n\
                    do = { shed = \"low\" }\n";
        let o = Overrides::default();
        let with = config(rule);
        let was = o
            .put(&with, "r", shed(flowgate_config::Priority::Low), || Ok(()))
            .unwrap();
        assert_eq!(was, "nothing shed");
        assert_eq!(
            o.apply(with.clone()).routes[0].shed,
            Some(flowgate_config::Priority::Low)
        );
        // A rebuild that fails takes it out again.
        let e = o.put(
            &with,
            "api:x",
            shed(flowgate_config::Priority::Normal),
            || Err("no".into()),
        );
        assert_eq!(e, Err("no".into()));
        assert_eq!(o.list().len(), 1);
        // Its rule gone, it is dropped without being made.
        assert_eq!(o.apply(config("")).routes[0].shed, None);
        assert!(o.list().is_empty());
    }
}
