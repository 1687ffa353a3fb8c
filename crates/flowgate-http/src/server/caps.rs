//! Caps on client connections, over all workers: a total and a number per client address,
//! so that one client cannot hold every connection the gateway will take. A connection over
//! a cap is closed as it is accepted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The connections open now, in total and by address. Share one between all listeners.
#[derive(Debug, Default)]
pub struct Connections {
    total: AtomicUsize,
    by_address: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection, counted until dropped.
#[derive(Debug)]
pub struct Admitted {
    caps: Arc<Connections>,
    ip: IpAddr,
}

impl Connections {
    /// Counts a new connection from `ip` unless it would pass `max` in total or
    /// `per_address` from `ip` (0: no cap).
    pub fn admit(self: &Arc<Self>, ip: IpAddr, max: usize, per_address: usize) -> Option<Admitted> {
        let total = self.total.fetch_add(1, Ordering::Relaxed) + 1;
        if max > 0 && total > max {
            self.total.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let mut by = self
            .by_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = by.entry(ip).or_insert(0);
        if per_address > 0 && *n >= per_address {
            drop(by);
            self.total.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        *n += 1;
        Some(Admitted {
            caps: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.caps.total.fetch_sub(1, Ordering::Relaxed);
        let mut by = self
            .caps
            .by_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = by.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                by.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_in_total_and_per_address_and_free_on_drop() {
        let c = Arc::new(Connections::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = c.admit(a, 3, 2).unwrap();
        let _a2 = c.admit(a, 3, 2).unwrap();
        assert!(c.admit(a, 3, 2).is_none(), "per address");
        let _b1 = c.admit(b, 3, 2).unwrap();
        assert!(c.admit(b, 3, 2).is_none(), "in total");
        assert_eq!(c.open(), 3);
        drop(a1);
        assert!(c.admit(a, 3, 2).is_some(), "freed on drop");
        assert!(c.admit(b, 0, 0).is_some(), "0: no cap");
    }
}
