//! The scaling recommenders' loop ([`crate::scaling`]) on the control plane.

use std::sync::Arc;

use flowgate_insight::scaling::Direction;

use crate::gateway::Gateway;
use crate::scaling::Acted;

/// Decides every `[scaling] interval` while pools are scaled, until `stopped`.
pub(crate) fn spawn(gw: &Arc<Gateway>, stopped: tokio::sync::watch::Receiver<bool>) {
    crate::control_loop::every(
        gw,
        stopped,
        |c| {
            let s = &c.scaling;
            (s.interval, s.enabled && !s.pools.is_empty())
        },
        |gw| async move { cycle(&gw).await },
    );
}

/// One cycle: every pool decided, and each change carried out by its actuator (or, in a
/// dry run, said and not done).
pub(crate) async fn cycle(gw: &Arc<Gateway>) {
    let now = gw.clock().unix_millis() / 1000;
    let rt = gw.runtime();
    let plans = gw.scaling().cycle(&rt, gw.history(), now);
    for plan in plans
        .iter()
        .filter(|p| p.decision.direction != Direction::Hold)
    {
        let Some(cfg) = rt.config.scaling.pools.iter().find(|c| c.pool == plan.pool) else {
            continue;
        };
        let Some(actuator) = &cfg.actuator else {
            continue;
        };
        let acted = if cfg.dry_run {
            Acted::new(
                "dry_run",
                true,
                format!(
                    "dry run: the actuator was not asked for {} replicas (dry_run = false acts)",
                    plan.decision.desired
                ),
            )
        } else {
            crate::scaling_act::act(gw, cfg, actuator, &plan.decision).await
        };
        if !acted.ok {
            tracing::warn!(pool = %plan.pool, desired = plan.decision.desired, detail = %acted.detail, "a scaling action failed");
        }
        gw.scaling().acted(&plan.pool, plan.decision.at, acted);
    }
}
