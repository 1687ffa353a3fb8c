//! The automation rules' engine: when each rule acts, and when what it did is kept or
//! undone. It decides; the gateway carries actions out (and back) and feeds it what it
//! knows each cycle ([`Facts`]).
//!
//! A rule acts on the **edge** of its trigger (an alert that starts firing or resolves, an
//! anomaly that opens on a matching series, a resource that comes to run out within its
//! days, a budget that crosses its percentage, a schedule's window that opens), never again
//! while the trigger holds. Before it acts: the automation is not paused, the rule's
//! cooldown since its last action has passed, and it has acted fewer than `max_per_hour`
//! times in the last hour; otherwise the step is skipped, and said so. After it acts, with
//! `verify`, the series it names is read (its median over the five minutes before, or
//! over `within` when shorter) at the action and again once `within` has passed:
//! if it did not improve by the share asked (lower or higher, as the rule says) the action
//! is undone. A schedule's action is undone when its window closes.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

/// The config's rules (their actions are the gateway's business), triggers and checks:
/// one definition, with its validation, in `flowgate_config`.
pub use flowgate_config::{AutomationRule as Rule, Better, Trigger, Verify};

/// What the gateway knows at a cycle.
pub struct Facts<'a> {
    /// Unix seconds.
    pub now: u64,
    /// Alert rules firing now.
    pub firing: &'a [String],
    /// Open anomalies: (series, score).
    pub anomalies: &'a [(String, f64)],
    /// Capacity resources and when each runs out (Unix seconds), if it does.
    pub runs_out: &'a [(String, Option<u64>)],
    /// Budgets and the share of their limit spent (percent).
    pub budgets: &'a [(String, f64)],
    /// A series' median over the span given before now, for verification.
    pub value: &'a dyn Fn(&str, std::time::Duration) -> Option<f64>,
}

/// What the engine asks for, or says it did not do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Carry the rule's action out.
    Act { rule: String, why: String },
    /// Undo the rule's last action.
    Undo { rule: String, why: String },
    /// The rule's action did what it was for.
    Kept { rule: String, why: String },
    /// The trigger held but the rule did not act.
    Skipped { rule: String, why: String },
}

impl Step {
    /// The rule it is of.
    pub fn rule(&self) -> &str {
        match self {
            Step::Act { rule, .. }
            | Step::Undo { rule, .. }
            | Step::Kept { rule, .. }
            | Step::Skipped { rule, .. } => rule,
        }
    }
}

/// An action awaiting its verification.
#[derive(Debug, Clone)]
struct Pending {
    at: u64,
    before: Option<f64>,
}

#[derive(Debug, Default)]
struct State {
    /// Whether the trigger held at the last cycle.
    held: bool,
    /// When it acted, within the last hour (and the last one, for the cooldown).
    acted: VecDeque<u64>,
    last: Option<u64>,
    pending: Option<Pending>,
    /// A schedule's action is in force (to undo when its window closes).
    in_window: bool,
}

/// The rules and what each remembers.
#[derive(Debug, Default)]
pub struct Engine {
    rules: Vec<Rule>,
    state: HashMap<String, State>,
    pub paused: bool,
}

/// Whether `name` matches `pattern`, `*` matching any run of characters.
fn matches(pattern: &str, name: &str) -> bool {
    flowgate_config::series_matches(pattern, name)
}

impl Engine {
    pub fn new(rules: Vec<Rule>) -> Engine {
        Engine {
            rules,
            state: HashMap::new(),
            paused: false,
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether `r`'s trigger holds, and in words why.
    fn holds(r: &Rule, f: &Facts<'_>) -> (bool, String) {
        match &r.when {
            Trigger::Alert { rule, resolves } => {
                let firing = f.firing.iter().any(|a| a == rule);
                if *resolves {
                    (!firing, format!("alert {rule} resolved"))
                } else {
                    (firing, format!("alert {rule} fires"))
                }
            }
            Trigger::Anomaly { pattern, min_score } => match f
                .anomalies
                .iter()
                .find(|(s, score)| matches(pattern, s) && score >= min_score)
            {
                Some((s, score)) => (true, format!("an anomaly on {s} scores {score:.2}")),
                None => (false, String::new()),
            },
            Trigger::RunsOut { resource, within } => {
                let by = f.now + within.as_secs();
                match f.runs_out.iter().find(|(name, at)| {
                    resource.as_ref().is_none_or(|r| r == name) && at.is_some_and(|t| t <= by)
                }) {
                    Some((name, at)) => (
                        true,
                        format!(
                            "{name} runs out in {:.1} days",
                            at.unwrap_or(f.now).saturating_sub(f.now) as f64 / 86_400.0
                        ),
                    ),
                    None => (false, String::new()),
                }
            }
            Trigger::Budget { budget, percent } => {
                match f.budgets.iter().find(|(name, spent)| {
                    budget.as_ref().is_none_or(|b| b == name) && spent >= percent
                }) {
                    Some((name, spent)) => (true, format!("budget {name} has spent {spent:.0}%")),
                    None => (false, String::new()),
                }
            }
            Trigger::Schedule {
                schedule,
                zone,
                open,
            } => {
                let Ok(now) = jiff::Timestamp::from_second(i64::try_from(f.now).unwrap_or(0))
                else {
                    return (false, String::new());
                };
                match schedule.last_at_or_before(now, zone) {
                    Some(start) if now.as_second() - start.as_second() < open.as_secs() as i64 => (
                        true,
                        format!(
                            "the window of \"{}\" in {} opened at {start}",
                            schedule.expr,
                            zone.iana_name().unwrap_or("its zone")
                        ),
                    ),
                    _ => (false, String::new()),
                }
            }
        }
    }

    /// One cycle: what to act on, undo or keep, and what was skipped.
    pub fn evaluate(&mut self, f: &Facts<'_>) -> Vec<Step> {
        let mut out = Vec::new();
        for r in &self.rules {
            let s = self.state.entry(r.name.clone()).or_default();
            let (holds, why) = Self::holds(r, f);
            let edge = holds && !s.held;
            s.held = holds;
            // A schedule's window closed: what it did is undone.
            if matches!(r.when, Trigger::Schedule { .. }) && !holds && s.in_window {
                s.in_window = false;
                s.pending = None;
                out.push(Step::Undo {
                    rule: r.name.clone(),
                    why: "its schedule's window closed".into(),
                });
                continue;
            }
            // A verification due.
            if let (Some(p), Some(v)) = (&s.pending, &r.verify)
                && f.now >= p.at + v.within.as_secs()
            {
                let after = (f.value)(&v.series, read_span(v));
                let step = verdict(&r.name, v, p.before, after);
                s.pending = None;
                if matches!(step, Step::Undo { .. }) {
                    s.in_window = false;
                }
                out.push(step);
            }
            if !edge {
                continue;
            }
            while s
                .acted
                .front()
                .is_some_and(|t| f.now.saturating_sub(*t) >= 3600)
            {
                s.acted.pop_front();
            }
            let skip = if self.paused {
                Some("automation is paused".to_string())
            } else if let Some(last) = s.last.filter(|l| f.now < l + r.cooldown.as_secs()) {
                Some(format!(
                    "cooling down since its action at {last} until {}",
                    last + r.cooldown.as_secs()
                ))
            } else if s.acted.len() >= r.max_per_hour as usize {
                Some(format!(
                    "it acted {} time(s) in the last hour, its most",
                    s.acted.len()
                ))
            } else {
                None
            };
            if let Some(skip) = skip {
                out.push(Step::Skipped {
                    rule: r.name.clone(),
                    why: format!("{why}, but {skip}"),
                });
                continue;
            }
            s.acted.push_back(f.now);
            s.last = Some(f.now);
            s.in_window = matches!(r.when, Trigger::Schedule { .. });
            s.pending = r.verify.as_ref().map(|v| Pending {
                at: f.now,
                before: (f.value)(&v.series, read_span(v)),
            });
            out.push(Step::Act {
                rule: r.name.clone(),
                why,
            });
        }
        out
    }

    /// The rule's action could not be carried out: nothing awaits verification or its
    /// window's end.
    pub fn failed(&mut self, rule: &str) {
        if let Some(s) = self.state.get_mut(rule) {
            s.pending = None;
            s.in_window = false;
        }
    }
}

/// How much of a verified series is read (its median) at the action and at the check: five
/// minutes, or `within` when shorter, so that one odd minute decides nothing.
fn read_span(v: &Verify) -> std::time::Duration {
    v.within.min(std::time::Duration::from_secs(300))
}

/// Whether `v`'s series improved from `before` to `after`.
fn verdict(rule: &str, v: &Verify, before: Option<f64>, after: Option<f64>) -> Step {
    let (Some(b), Some(a)) = (before, after) else {
        return Step::Undo {
            rule: rule.to_string(),
            why: format!("{} could not be read to verify the action", v.series),
        };
    };
    let change = if b.abs() > f64::EPSILON {
        (a - b) / b.abs()
    } else {
        a - b
    };
    let improved = match v.better {
        Better::Lower => change <= -v.by,
        Better::Higher => change >= v.by,
    };
    let said = format!(
        "{} went from {b:.3} to {a:.3} ({:+.0}%) within {} s; {} by {:.0}% was asked",
        v.series,
        change * 100.0,
        v.within.as_secs(),
        match v.better {
            Better::Lower => "lower",
            Better::Higher => "higher",
        },
        v.by * 100.0
    );
    if improved {
        Step::Kept {
            rule: rule.to_string(),
            why: said,
        }
    } else {
        Step::Undo {
            rule: rule.to_string(),
            why: format!("it did not help: {said}"),
        }
    }
}

#[cfg(test)]
mod tests;
