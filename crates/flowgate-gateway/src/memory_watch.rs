//! The memory governor's task: reads the process's memory every `interval` of the running
//! config and hands it to [`crate::memory_governor::Governor::step`].

use std::sync::{Arc, Weak};

use flowgate_telemetry::process::ProcFs;
use tokio::sync::watch;

use crate::gateway::Gateway;

/// Reads memory every `interval` of the running config until `stopped`.
pub(crate) fn spawn(gw: &Arc<Gateway>, mut stopped: watch::Receiver<bool>) {
    let weak: Weak<Gateway> = Arc::downgrade(gw);
    tokio::spawn(async move {
        let fs = ProcFs::default();
        loop {
            let interval = match weak.upgrade() {
                Some(gw) => {
                    let config = gw.runtime().config.memory.clone();
                    let s = fs.read_stats();
                    let rss = s.resident_bytes.unwrap_or(0);
                    let limit = crate::memory_governor::limit_of(&config, s.cgroup_limit_bytes);
                    gw.memory()
                        .step(gw.cache().map(|c| &**c), &config, rss, limit);
                    config.interval
                }
                None => return,
            };
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
        }
    });
}
