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
        active.retain(|(rule, change)| match change.apply(&mut config) {
            _ if gone.contains(rule) => {
                tracing::warn!(%rule, change = %change.describe(), "automation's change dropped: its rule is gone");
                false
            }
            Ok(_) => true,
            Err(why) => {
                tracing::warn!(%rule, change = %change.describe(), %why, "automation's change dropped: the config no longer allows it");
                false
            }
        });
        config
    }

    /// Checks `change` against `file` (the file's config with the changes in force); what
    /// its target was.
    pub fn check(&self, file: &Config, change: &ConfigChange) -> Result<String, String> {
        let mut config = self.apply(file.clone());
        change.apply(&mut config)
    }

    /// Puts `rule`'s change in force (replacing one it made before).
    pub fn set(&self, rule: &str, change: ConfigChange) {
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
