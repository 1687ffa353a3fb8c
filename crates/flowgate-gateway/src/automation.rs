//! The automation rules at work: the engine (`flowgate_insight::automation`) with the
//! config's rules (taken afresh when a reload changes them; a pause survives it), what
//! each action changed (to undo it), and the audit log of every step (the last 1,000).
//! The cycle that feeds and obeys it is `automation_loop.rs`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use flowgate_config::AutomationRule;
use flowgate_insight::automation::{Engine, Step};
use serde::Serialize;

/// Log entries kept.
const KEEP: usize = 1000;

/// What an action changed, to put back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Undo {
    Strategy { pool: String, was: String },
    Scale { pool: String, was: u32 },
}

/// One step of the audit log.
#[derive(Debug, Clone, Serialize)]
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
    log: VecDeque<Entry>,
    /// Steps that failed, by rule, since the history last took the counts.
    failures: HashMap<String, u64>,
}

/// See the module's documentation.
#[derive(Debug, Default)]
pub(crate) struct Automation(Mutex<State>);

impl Automation {
    /// Runs `f` on the engine, its rules first made `rules` if they changed.
    pub(crate) fn with_engine<T>(
        &self,
        rules: &[AutomationRule],
        f: impl FnOnce(&mut Engine) -> T,
    ) -> Option<T> {
        let mut s = self.0.lock().ok()?;
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
        self.0.lock().map(|s| s.engine.paused).unwrap_or(false)
    }

    /// Remembers what `rule`'s action changed.
    pub(crate) fn changed(&self, rule: &str, undo: Undo) {
        if let Ok(mut s) = self.0.lock() {
            s.undo.insert(rule.to_string(), undo);
        }
    }

    /// What `rule`'s last action changed, forgotten.
    pub(crate) fn take_undo(&self, rule: &str) -> Option<Undo> {
        self.0.lock().ok()?.undo.remove(rule)
    }

    pub(crate) fn log(&self, entry: Entry) {
        if let Ok(mut s) = self.0.lock() {
            if !entry.ok {
                *s.failures.entry(entry.step.rule().to_string()).or_default() += 1;
            }
            if s.log.len() >= KEEP {
                s.log.pop_front();
            }
            s.log.push_back(entry);
        }
    }

    /// Each rule's failed steps since the last call (the history's
    /// `automation_failures{rule}`).
    pub(crate) fn take_failures(&self) -> Vec<(String, u64)> {
        self.0
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

    /// The log, oldest first.
    pub(crate) fn history(&self) -> Vec<Entry> {
        self.0
            .lock()
            .map(|s| s.log.iter().cloned().collect())
            .unwrap_or_default()
    }
}
