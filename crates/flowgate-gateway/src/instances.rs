//! Endpoints registered at run time through the admin API
//! (`POST /api/v1/performance/load-balancer/instances/register` and `.../deregister`).
//!
//! They join their pool's endpoints from the config file and stay until deregistered, or
//! until a reload says otherwise: a new config without their pool drops them, and one whose
//! pool has an endpoint of the same name keeps the file's. A pool whose endpoints change is
//! built anew (its connections, latency estimates, breakers and sessions start over).

use std::sync::{Arc, Mutex};

use flowgate_config::{EndpointConfig, PoolConfig};

/// The registered endpoints, by pool, in registration order.
#[derive(Debug, Default)]
pub struct Instances {
    added: Mutex<Vec<(String, EndpointConfig)>>,
}

/// Why an endpoint could not be registered or deregistered.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The pool has an endpoint of that name already.
    Taken,
    /// No registered endpoint of that name (it may be the file's).
    Unknown,
}

impl Instances {
    /// `pools` with the registered endpoints added; registrations the pools no longer allow
    /// are dropped (and logged).
    pub fn merge(&self, pools: &[Arc<PoolConfig>]) -> Vec<Arc<PoolConfig>> {
        let Ok(mut added) = self.added.lock() else {
            return pools.to_vec();
        };
        added.retain(|(pool, ep)| {
            let keep = pools
                .iter()
                .find(|p| p.name == *pool)
                .is_some_and(|p| p.endpoints.iter().all(|e| e.name != ep.name));
            if !keep {
                tracing::warn!(%pool, endpoint = %ep.name, "registered endpoint dropped: the config no longer allows it");
            }
            keep
        });
        pools
            .iter()
            .map(|p| {
                let mut extra = added.iter().filter(|(pool, _)| *pool == p.name).peekable();
                if extra.peek().is_none() {
                    return p.clone();
                }
                let mut merged = (**p).clone();
                merged.endpoints.extend(extra.map(|(_, e)| e.clone()));
                Arc::new(merged)
            })
            .collect()
    }

    /// Whether `pool`'s endpoint `name` was registered at run time.
    pub fn is_registered(&self, pool: &str, name: &str) -> bool {
        self.added
            .lock()
            .is_ok_and(|a| a.iter().any(|(p, e)| p == pool && e.name == name))
    }

    /// Registers `ep` in `pool` (whose endpoints are `current`).
    pub fn add(&self, pool: &PoolConfig, ep: EndpointConfig) -> Result<(), Refused> {
        if pool.endpoints.iter().any(|e| e.name == ep.name) {
            return Err(Refused::Taken);
        }
        let Ok(mut added) = self.added.lock() else {
            return Err(Refused::Taken);
        };
        added.push((pool.name.clone(), ep));
        Ok(())
    }

    /// Deregisters `pool`'s registered endpoint `name`.
    pub fn remove(&self, pool: &str, name: &str) -> Result<EndpointConfig, Refused> {
        let mut added = self.added.lock().map_err(|_| Refused::Unknown)?;
        let at = added
            .iter()
            .position(|(p, e)| p == pool && e.name == name)
            .ok_or(Refused::Unknown)?;
        Ok(added.remove(at).1)
    }
}
