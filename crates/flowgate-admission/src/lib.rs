//! flowgate's admission control: who may send a request now, and how many tokens it may
//! spend.
//!
//! Rate limits use GCRA, the generic cell rate algorithm ([`gcra`]): one timestamp of state
//! per limited key (its theoretical arrival time), exact, O(1), no timers and no refill
//! task. [`local::LocalLimiter`] keeps those timestamps for one process; token limits
//! reserve an estimate when a request is admitted and settle with the real usage when its
//! answer ends ([`local::LocalLimiter::settle`]).
//!
//! Virtual API keys ([`keys`]) are made, hashed, found in constant time and stored here.
//!
//! [`shared::SharedLimiter`] keeps them in Redis for every replica (one versioned Lua
//! script, `gcra.lua`).
//!
//! Concurrency limits ([`concurrency::Concurrency`]) give a permit per request in flight and
//! queue the rest by priority; an adaptive limit ([`adaptive::Gradient`]) follows latency.

pub mod adaptive;
pub mod concurrency;
pub mod gcra;
pub mod keys;
pub mod local;
pub mod shared;

pub use concurrency::{Concurrency, Permit, Priority, Refused};
pub use gcra::{Decision, Quota, QuotaError};
pub use local::LocalLimiter;
pub use shared::SharedLimiter;
