//! What the cache stores: a complete successful response and when it was stored.

use std::sync::atomic::{AtomicU64, Ordering};
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

/// Tokens an answer was billed, as `flowgate-cost` reads them.
pub use flowgate_cost::Usage;

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

/// How long an entry is fresh, and how long after that it may still be served while one
/// request refreshes it (stale-while-revalidate).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lifetime {
    pub ttl: Duration,
    pub stale: Duration,
}

impl Lifetime {
    pub fn fresh_for(ttl: Duration) -> Self {
        Lifetime {
            ttl,
            stale: Duration::ZERO,
        }
    }

    /// Fresh and stale together: how long a tier keeps the entry.
    pub fn total(&self) -> Duration {
        self.ttl.saturating_add(self.stale)
    }
}

/// What an entry is about, beyond its key: its TTL category and its invalidation tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    pub category: Option<String>,
    pub tags: Vec<String>,
}

/// The most tags an entry carries.
pub const MAX_TAGS: usize = 16;
/// The longest tag.
pub const MAX_TAG_LEN: usize = 128;

/// Why a list of tags was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("invalid tag {0:?}: use letters, digits and '-', '_', '.', ':', '/' (at most 128)")]
    Invalid(String),
    #[error("more than {MAX_TAGS} tags")]
    TooMany,
}

/// Whether `t` can be a tag: it is stored in key names and record headers, so printable,
/// without separators or glob characters.
pub fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= MAX_TAG_LEN
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/'))
}

impl Labels {
    /// Adds the comma-separated tags of `list` (a header's value), each once.
    pub fn add_tags(&mut self, list: &[u8]) -> Result<(), TagError> {
        let list = std::str::from_utf8(list)
            .map_err(|_| TagError::Invalid(String::from_utf8_lossy(list).into_owned()))?;
        for t in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if !valid_tag(t) {
                return Err(TagError::Invalid(t.to_string()));
            }
            if !self.tags.iter().any(|x| x == t) {
                if self.tags.len() == MAX_TAGS {
                    return Err(TagError::TooMany);
                }
                self.tags.push(t.to_string());
            }
        }
        Ok(())
    }
}

/// A stored response and its freshness.
#[derive(Debug)]
pub struct Entry {
    pub response: CachedResponse,
    pub stored_at: Instant,
    pub life: Lifetime,
    pub labels: Labels,
    /// Hits since it was stored: its popularity, for refresh-ahead and TTL extension.
    hits: AtomicU64,
}

/// How an entry stands at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    /// Past its TTL, within its stale window.
    Stale,
    Expired,
}

impl Entry {
    pub fn new(
        response: CachedResponse,
        stored_at: Instant,
        life: Lifetime,
        labels: Labels,
    ) -> Self {
        Entry {
            response,
            stored_at,
            life,
            labels,
            hits: AtomicU64::new(0),
        }
    }

    /// Time since it was stored.
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.stored_at)
    }

    /// Fresh, stale or expired, at `age`.
    pub fn freshness(&self, age: Duration) -> Freshness {
        freshness(self.life, age)
    }

    /// Counts a hit; the hits so far, this one included.
    pub fn hit(&self) -> u64 {
        self.hits.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

/// Fresh, stale or expired: an entry with `life`, `age` old.
pub fn freshness(life: Lifetime, age: Duration) -> Freshness {
    if age < life.ttl {
        Freshness::Fresh
    } else if age < life.total() {
        Freshness::Stale
    } else {
        Freshness::Expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_read_from_a_list_once_each() {
        let mut l = Labels::default();
        l.add_tags(b" invoices, team:billing ,,invoices").unwrap();
        assert_eq!(l.tags, ["invoices", "team:billing"]);
        assert_eq!(l.add_tags(b"a b"), Err(TagError::Invalid("a b".into())));
        assert_eq!(l.add_tags(b"x*"), Err(TagError::Invalid("x*".into())));
        let many: Vec<String> = (0..MAX_TAGS).map(|i| format!("t{i}")).collect();
        assert_eq!(
            l.add_tags(many.join(",").as_bytes()),
            Err(TagError::TooMany)
        );
    }
}
