//! What the cache stores: a complete successful response and when it was stored.

use std::time::{Duration, Instant};

use bytes::Bytes;

/// A response as the cache keeps it, free of HTTP types: the gateway decides which header
/// fields are worth keeping (never hop-by-hop fields, `set-cookie` or per-request ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedResponse {
    pub status: u16,
    pub headers: Vec<(String, Bytes)>,
    pub body: Bytes,
    /// Tokens the upstream billed for it (from `usage`): what every hit saves.
    pub usage: Usage,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl CachedResponse {
    /// Bytes it occupies, for the memory bound.
    pub fn weight(&self) -> usize {
        self.body.len()
            + self
                .headers
                .iter()
                .map(|(n, v)| n.len() + v.len() + 16)
                .sum::<usize>()
            + 64
    }
}

/// A stored response and its freshness.
#[derive(Debug)]
pub struct Entry {
    pub response: CachedResponse,
    pub stored_at: Instant,
    /// Fresh for this long after `stored_at`.
    pub ttl: Duration,
}

impl Entry {
    /// Time since it was stored.
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.stored_at)
    }

    /// Freshness left.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.ttl.saturating_sub(self.age(now))
    }
}
