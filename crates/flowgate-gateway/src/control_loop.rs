//! A control-plane loop that runs a cycle at an interval the running config sets (read
//! again each turn, so a reload changes it), while the config says it is due, until the
//! gateway stops.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use flowgate_config::Config;

use crate::gateway::Gateway;

/// Runs `cycle` every `settings(config).0` (the first an interval after start: there is
/// nothing to read before), on the turns `settings(config).1` says it is due, until
/// `stopped` or the gateway is gone.
pub(crate) fn every<F, Fut>(
    gw: &Arc<Gateway>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
    settings: fn(&Config) -> (Duration, bool),
    cycle: F,
) where
    F: Fn(Arc<Gateway>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let weak = Arc::downgrade(gw);
    tokio::spawn(async move {
        loop {
            let interval = match weak.upgrade() {
                Some(gw) => settings(&gw.runtime().config).0,
                None => return,
            };
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
            let Some(gw) = weak.upgrade() else { return };
            if settings(&gw.runtime().config).1 {
                cycle(gw).await;
            }
        }
    });
}
