//! Upstream pools: the endpoints that serve a route, chosen round-robin (the full balancer
//! with health, EWMA and breakers comes with `flowgate-balance`).

mod endpoint;
pub mod h1;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use flowgate_clock::SharedClock;
use flowgate_config::PoolConfig;
use flowgate_telemetry::Metrics;

pub use endpoint::{ConnectError, Endpoint, Lease};

/// A named pool of endpoints.
#[derive(Debug)]
pub struct Upstream {
    pub cfg: Arc<PoolConfig>,
    pub name: Arc<str>,
    endpoints: Vec<Arc<Endpoint>>,
    next: AtomicUsize,
}

impl Upstream {
    /// A pool whose endpoints keep `shards` idle stacks (one per data-plane worker).
    pub fn new(
        cfg: Arc<PoolConfig>,
        shards: usize,
        clock: &SharedClock,
        metrics: &Metrics,
    ) -> Arc<Self> {
        let endpoints = cfg
            .endpoints
            .iter()
            .map(|e| Endpoint::new(&cfg, e.clone(), shards, clock.clone(), metrics))
            .collect();
        Arc::new(Upstream {
            name: Arc::from(cfg.name.as_str()),
            cfg,
            endpoints,
            next: AtomicUsize::new(0),
        })
    }

    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    /// The next endpoint in round-robin order.
    pub fn pick(&self) -> Option<&Arc<Endpoint>> {
        let n = self.endpoints.len();
        if n == 0 {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % n;
        self.endpoints.get(i)
    }

    /// An endpoint other than `not` (the next one after it), if the pool has one.
    pub fn pick_other(&self, not: &Arc<Endpoint>) -> Option<&Arc<Endpoint>> {
        let n = self.endpoints.len();
        let at = self.endpoints.iter().position(|e| Arc::ptr_eq(e, not))?;
        (n > 1).then(|| self.endpoints.get((at + 1) % n)).flatten()
    }
}
