//! The automation rules at work: the engine (`flowgate_insight::automation`) with the
//! config's rules (taken afresh when a reload changes them; a pause survives it), what
//! each action changed (to undo it), and the audit log of every step, kept in
//! `automation.redb` under `[server] data_dir` (in memory without one) for 90 days and
//! at most 100,000 steps, so that it outlives a restart. The cycle that feeds and obeys
//! it is `automation_loop.rs`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use flowgate_config::{AutomationRule, ConfigChange};
use flowgate_insight::automation::{Engine, Step};
use flowgate_store::Journal;
use serde::{Deserialize, Serialize};

/// The audit log's file under `[server] data_dir`.
pub(crate) const FILE: &str = "automation.redb";
/// The steps kept, at most, and for how long.
const MAX_STEPS: u64 = 100_000;
const RETENTION: u64 = 90 * 86_400;

/// What an action changed, to put back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Undo {
    Strategy {
        pool: String,
        was: String,
    },
    Scale {
        pool: String,
        was: u32,
    },
    /// A change to the running config, taken away.
    Change(ConfigChange),
}

/// One step of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// Unix seconds.
    pub(crate) at: u64,
    #[serde(flatten)]
    pub(crate) step: Step,
    /// What was done, or why it could not be.
    pub(crate) done: Option<String>,
    pub(crate) ok: bool,
}

#[derive(Debug, Default)]
struct State {
    engine: Engine,
    undo: HashMap<String, Undo>,
    /// Steps that failed, by rule, since the history last took the counts.
    failures: HashMap<String, u64>,
}

/// See the module's documentation.
pub(crate) struct Automation {
    state: Mutex<State>,
    db: redb::Database,
    log: Journal,
}

impl std::fmt::Debug for Automation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Automation").finish_non_exhaustive()
    }
}

impl Automation {
    /// The automation with its audit log at `path` (in memory when `None`), opened at
    /// `now` (Unix seconds).
    pub(crate) fn open(path: Option<&Path>, now: u64) -> std::io::Result<Automation> {
        let (db, moved) = match path {
            Some(p) => flowgate_store::open(p, now),
            None => flowgate_store::in_memory().map(|db| (db, None)),
        }
        .map_err(|e| std::io::Error::other(format!("automation's audit log: {e}")))?;
        if let Some(m) = moved {
            tracing::error!(moved_to = %m.to.display(), error = %m.why, "the automation's audit log could not be read: moved aside, a fresh one kept");
        }
        let log = Journal::open(&db, "steps", RETENTION, MAX_STEPS)
            .map_err(|e| std::io::Error::other(format!("automation's audit log: {e}")))?;
        Ok(Automation {
            state: Mutex::new(State::default()),
            db,
            log,
        })
    }

    /// Runs `f` on the engine, its rules first made `rules` if they changed.
    pub(crate) fn with_engine<T>(
        &self,
        rules: &[AutomationRule],
        f: impl FnOnce(&mut Engine) -> T,
    ) -> Option<T> {
        let mut s = self.state.lock().ok()?;
        if s.engine.rules() != rules {
            let paused = s.engine.paused;
            s.engine = Engine::new(rules.to_vec());
            s.engine.paused = paused;
            s.undo
                .retain(|name, _| rules.iter().any(|r| r.name == *name));
        }
        Some(f(&mut s.engine))
    }

    pub(crate) fn set_paused(&self, rules: &[AutomationRule], paused: bool) {
        self.with_engine(rules, |e| e.paused = paused);
    }

    pub(crate) fn paused(&self) -> bool {
        self.state.lock().map(|s| s.engine.paused).unwrap_or(false)
    }

    /// Remembers what `rule`'s action changed.
    pub(crate) fn changed(&self, rule: &str, undo: Undo) {
        if let Ok(mut s) = self.state.lock() {
            s.undo.insert(rule.to_string(), undo);
        }
    }

    /// What `rule`'s last action changed, forgotten.
    pub(crate) fn take_undo(&self, rule: &str) -> Option<Undo> {
        self.state.lock().ok()?.undo.remove(rule)
    }

    /// Keeps `entry` in the audit log (a log that cannot be written is said, not fatal).
    pub(crate) fn log(&self, entry: &Entry) {
        if !entry.ok
            && let Ok(mut s) = self.state.lock()
        {
            *s.failures.entry(entry.step.rule().to_string()).or_default() += 1;
        }
        let written = serde_json::to_vec(entry)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                self.log
                    .record(&self.db, [(entry.at, b.as_slice())], entry.at)
            });
        if let Err(e) = written {
            tracing::warn!(error = %e, "an automation step could not be kept in the audit log");
        }
    }

    /// Each rule's failed steps since the last call (the history's
    /// `automation_failures{rule}`).
    pub(crate) fn take_failures(&self) -> Vec<(String, u64)> {
        self.state
            .lock()
            .map(|mut s| {
                // A rule that failed once keeps its series (zero since), so that an alert
                // on it resolves instead of finding no data.
                s.failures
                    .iter_mut()
                    .map(|(rule, n)| (rule.clone(), std::mem::take(n)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The audit log from `from` to `to` (Unix seconds, inclusive), of `rule` (any when
    /// `None`), oldest first, at most the last `limit` steps.
    pub(crate) fn history(
        &self,
        from: u64,
        to: u64,
        rule: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Entry>, String> {
        self.log.read(&self.db, from, to, limit, |bytes| {
            let e: Entry = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
            Ok(rule.is_none_or(|r| r == e.step.rule()).then_some(e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: u64, rule: &str, ok: bool) -> Entry {
        Entry {
            at,
            step: Step::Act {
                rule: rule.into(),
                why: "a test".into(),
            },
            done: Some("done".into()),
            ok,
        }
    }

    #[test]
    fn the_audit_log_outlives_a_restart_and_failures_are_counted() {
        let dir = std::env::temp_dir().join(format!("flowgate-automation-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join(FILE);
        {
            let a = Automation::open(Some(&path), 100).unwrap();
            a.log(&entry(100, "up", true));
            a.log(&entry(160, "down", false));
            a.log(&entry(220, "up", true));
            assert_eq!(a.take_failures(), [("down".to_string(), 1)]);
            assert_eq!(a.take_failures(), [("down".to_string(), 0)]);
        }
        let a = Automation::open(Some(&path), 300).unwrap();
        let all = a.history(0, u64::MAX, None, 10).unwrap();
        assert_eq!(
            all.iter()
                .map(|e| (e.at, e.step.rule(), e.ok))
                .collect::<Vec<_>>(),
            [(100, "up", true), (160, "down", false), (220, "up", true)]
        );
        let ups = a.history(150, u64::MAX, Some("up"), 10).unwrap();
        assert_eq!(ups.iter().map(|e| e.at).collect::<Vec<_>>(), [220]);
        let last = a.history(0, u64::MAX, None, 1).unwrap();
        assert_eq!(last[0].at, 220);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
