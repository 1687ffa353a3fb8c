//! The counters of a simulated endpoint, and the mark a request carries while it is
//! answered (what `GET /sim/stats` reports).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Counters of one simulated endpoint.
#[derive(Debug, Default)]
pub struct SimStats {
    pub(crate) requests: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) server_errors: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) resets: AtomicU64,
    pub(crate) stalls: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    pub(crate) unauthorized: AtomicU64,
}

/// A copy of the counters, as `GET /sim/stats` returns them.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Requests received (every path but `/sim/stats` and `/health`).
    pub requests: u64,
    /// Responses sent in full.
    pub completed: u64,
    /// Requests the client abandoned before the response was complete.
    pub cancelled: u64,
    pub server_errors: u64,
    pub rate_limited: u64,
    pub resets: u64,
    pub stalls: u64,
    pub in_flight: u64,
    /// Requests refused for their credentials (Bedrock's SigV4, Azure's key and api-version).
    pub unauthorized: u64,
}

impl SimStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            requests: l(&self.requests),
            completed: l(&self.completed),
            cancelled: l(&self.cancelled),
            server_errors: l(&self.server_errors),
            rate_limited: l(&self.rate_limited),
            resets: l(&self.resets),
            stalls: l(&self.stalls),
            in_flight: l(&self.in_flight),
            unauthorized: l(&self.unauthorized),
        }
    }
}

/// Marks a request in flight; counts it as cancelled if dropped before `finish`.
pub(crate) struct InFlight {
    stats: Arc<SimStats>,
    done: bool,
}

impl InFlight {
    pub(crate) fn new(stats: &Arc<SimStats>) -> Self {
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            stats: stats.clone(),
            done: false,
        }
    }

    pub(crate) fn finish(mut self) {
        self.done = true;
        self.stats.completed.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.done {
            self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}
