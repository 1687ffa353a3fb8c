//! The scaling recommender: how many replicas a target (an upstream pool, or flowgate
//! itself) should have, from its utilization now and, when asked to look ahead, the
//! utilization its forecast demand will bring by the time a new replica is ready.
//!
//! Reactive, as Kubernetes' Horizontal Pod Autoscaler decides, with the band an operator
//! asks for: past `up_at` (80%) or under `down_at` (30%) the size becomes
//! `ceil(current × utilization / target)` (the size at which utilization would sit at
//! `target`, 60%); inside the band nothing changes, so a metric that wanders around a
//! threshold does not flap. Then, in order: stabilization (a scale-down takes the highest
//! size recommended over the last `down_stabilization`, five minutes; a scale-up the
//! lowest over `up_stabilization`, none by default), step limits (at most `max_step_up`
//! added and `max_step_down` removed at once), the minimum and maximum, and cooldowns
//! after the last change (`up_cooldown`, `down_cooldown`). Predictive: when the
//! utilization forecast for `lead` from now passes `up_at`, the size it needs is
//! recommended now (only upward: a forecast never removes capacity the present needs).
//! Every decision carries its inputs and the reason in words.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;

/// How a target scales: the config's policy (one definition, with its defaults and
/// checks, in `flowgate_config`).
pub use flowgate_config::ScalingPolicy as Policy;

/// What the target measures now.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Input {
    /// Replicas now.
    pub current: u32,
    /// Demand over capacity now (1.0: saturated); NaN when unknown.
    pub utilization: f64,
    /// The utilization the forecast demand brings `lead` from now, at today's size.
    pub predicted: Option<f64>,
}

/// Which way a decision goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Up,
    Down,
    Hold,
}

/// One decision, with what it was made from and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Unix seconds.
    pub at: u64,
    pub input: Input,
    /// The size the utilization asks for, before stabilization and limits.
    pub wanted: u32,
    pub desired: u32,
    pub direction: Direction,
    pub reason: String,
}

/// A target's recommender: its policy and what it remembers (recent recommendations for
/// stabilization, its last change for cooldowns).
#[derive(Debug, Clone)]
pub struct Scaler {
    pub policy: Policy,
    /// (Unix seconds, size wanted).
    recent: VecDeque<(u64, u32)>,
    /// (Unix seconds, direction) of the last change.
    last_change: Option<(u64, Direction)>,
}

fn pct(u: f64) -> String {
    format!("{:.0}%", u * 100.0)
}

impl Scaler {
    pub fn new(policy: Policy) -> Scaler {
        Scaler {
            policy,
            recent: VecDeque::new(),
            last_change: None,
        }
    }

    /// The size `utilization` asks for at size `current`, or `None` within the band.
    fn wants(&self, current: u32, utilization: f64) -> Option<u32> {
        let p = &self.policy;
        if utilization > p.up_at || utilization < p.down_at {
            let raw = (f64::from(current.max(1)) * utilization / p.target).ceil();
            Some(raw.clamp(1.0, f64::from(u32::MAX)) as u32)
        } else {
            None
        }
    }

    /// Decides at `now` (Unix seconds) from `input`. The caller applies the decision (or
    /// not: a dry run) and tells the next call the size there is then.
    pub fn decide(&mut self, now: u64, input: Input) -> Decision {
        let p = self.policy.clone();
        let current = input.current;
        let hold = |wanted: u32, reason: String| Decision {
            at: now,
            input,
            wanted,
            desired: current,
            direction: Direction::Hold,
            reason,
        };
        if !input.utilization.is_finite() {
            return hold(current, "no utilization measured: holding".into());
        }
        let reactive = self.wants(current, input.utilization);
        // Ahead of demand: what the forecast's utilization needs, upward only.
        let ahead = input
            .predicted
            .filter(|u| u.is_finite() && *u > p.up_at)
            .and_then(|u| self.wants(current, u));
        let (wanted, mut why) = match (reactive, ahead) {
            (_, Some(a)) if a > reactive.unwrap_or(current).max(current) => (
                a,
                format!(
                    "the forecast brings utilization to {} within {} s (past {}): {a} replicas keep it at {}",
                    pct(input.predicted.unwrap_or(0.0)),
                    p.lead.map_or(0, |l| l.as_secs()),
                    pct(p.up_at),
                    pct(p.target)
                ),
            ),
            (Some(r), _) if input.utilization > p.up_at => (
                r,
                format!(
                    "utilization {} is past {}: {r} replicas bring it to about {}",
                    pct(input.utilization),
                    pct(p.up_at),
                    pct(p.target)
                ),
            ),
            (Some(r), _) => (
                r,
                format!(
                    "utilization {} is under {}: {r} replicas bring it to about {}",
                    pct(input.utilization),
                    pct(p.down_at),
                    pct(p.target)
                ),
            ),
            (None, _) => (
                current,
                format!(
                    "utilization {} is within {}–{}",
                    pct(input.utilization),
                    pct(p.down_at),
                    pct(p.up_at)
                ),
            ),
        };
        // A recommender that has seen nothing yet takes the size there is as recommended
        // until now: it does not scale down before a whole window has asked for it.
        if self.recent.is_empty() && !p.down_stabilization.is_zero() {
            self.recent.push_back((now, current));
        }
        self.remember(now, wanted);
        // Stabilization: down to the highest wanted over its window, up to the lowest.
        let window = |d: Duration| {
            self.recent
                .iter()
                .filter(move |(t, _)| now.saturating_sub(*t) <= d.as_secs())
        };
        let mut desired = wanted;
        if wanted < current {
            let high = window(p.down_stabilization)
                .map(|(_, w)| *w)
                .max()
                .unwrap_or(wanted);
            if high > wanted {
                why += &format!(
                    "; {high} was wanted within the last {} s (stabilization)",
                    p.down_stabilization.as_secs()
                );
            }
            desired = high.min(current);
        } else if wanted > current && !p.up_stabilization.is_zero() {
            let low = window(p.up_stabilization)
                .map(|(_, w)| *w)
                .min()
                .unwrap_or(wanted);
            if low < wanted {
                why += &format!(
                    "; only {low} was wanted throughout the last {} s (stabilization)",
                    p.up_stabilization.as_secs()
                );
            }
            desired = low.max(current);
        }
        // Step limits, then the bounds.
        if desired > current.saturating_add(p.max_step_up) {
            desired = current.saturating_add(p.max_step_up);
            why += &format!("; at most {} added at once", p.max_step_up);
        }
        if desired < current.saturating_sub(p.max_step_down) {
            desired = current.saturating_sub(p.max_step_down);
            why += &format!("; at most {} removed at once", p.max_step_down);
        }
        if desired > p.max {
            desired = p.max;
            why += &format!("; held at the maximum {}", p.max);
        }
        if desired < p.min {
            desired = p.min;
            why += &format!("; held at the minimum {}", p.min);
        }
        let direction = match desired.cmp(&current) {
            std::cmp::Ordering::Greater => Direction::Up,
            std::cmp::Ordering::Less => Direction::Down,
            std::cmp::Ordering::Equal => Direction::Hold,
        };
        // Cooldowns after the last change.
        if let Some((t, _)) = self.last_change {
            let cooldown = match direction {
                Direction::Up => p.up_cooldown,
                Direction::Down => p.down_cooldown,
                Direction::Hold => Duration::ZERO,
            };
            let until = t + cooldown.as_secs();
            if direction != Direction::Hold && now < until {
                return hold(
                    wanted,
                    format!("{why}; cooling down after the change at {t} until {until}"),
                );
            }
        }
        if direction != Direction::Hold {
            self.last_change = Some((now, direction));
        }
        Decision {
            at: now,
            input,
            wanted,
            desired,
            direction,
            reason: why,
        }
    }

    fn remember(&mut self, now: u64, wanted: u32) {
        let keep = self
            .policy
            .down_stabilization
            .max(self.policy.up_stabilization)
            .as_secs();
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| now.saturating_sub(*t) > keep)
        {
            self.recent.pop_front();
        }
        self.recent.push_back((now, wanted));
    }
}

#[cfg(test)]
mod tests;
