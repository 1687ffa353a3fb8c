//! What the cache does when memory is short (the gateway's memory governor asks): the
//! memory tier held at half its size, and no new fills (the leader's answer is passed on
//! and not kept; requests that waited on it go upstream themselves). Hits still serve.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::Cache;

/// The cache's state under memory pressure.
#[derive(Debug, Default)]
pub(crate) struct Pressure {
    fills_paused: AtomicBool,
}

impl Cache {
    /// Holds the memory tier at half its configured size (`true`: the entries over it are
    /// removed), or lets it grow again; the entries removed.
    pub fn shrink_memory(&self, shrink: bool) -> u64 {
        let Some(m) = &self.memory else { return 0 };
        m.cap(shrink.then_some(self.settings.memory_bytes / 2))
    }

    /// Stops (or resumes) storing new answers in every tier.
    pub fn pause_fills(&self, paused: bool) {
        self.pressure.fills_paused.store(paused, Ordering::Relaxed);
    }

    /// Whether new answers are being refused (a fill would only hold memory).
    pub fn fills_paused(&self) -> bool {
        self.pressure.fills_paused.load(Ordering::Relaxed)
    }
}
