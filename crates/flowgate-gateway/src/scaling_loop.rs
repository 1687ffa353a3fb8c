//! The scaling recommenders' loop ([`crate::scaling`]) on the control plane.

use std::sync::Arc;

use crate::gateway::Gateway;

/// Decides every `[scaling] interval` (the first an interval after start: there is no
/// demand to read before) until `stopped`.
pub(crate) fn spawn(gw: &Arc<Gateway>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let weak = Arc::downgrade(gw);
    tokio::spawn(async move {
        loop {
            let interval = match weak.upgrade() {
                Some(gw) => gw.runtime().config.scaling.interval,
                None => return,
            };
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
            let Some(gw) = weak.upgrade() else { return };
            let scaling = &gw.runtime().config.scaling;
            if scaling.enabled && !scaling.pools.is_empty() {
                let now = gw.clock().unix_millis() / 1000;
                gw.scaling().cycle(&gw.runtime(), gw.history(), now);
            }
        }
    });
}
