//! The fields every Redis section has (`url` or `urls`, `cluster`, `prefix`, `timeout`,
//! the breaker's), checked once for all of them.

use std::time::Duration;

use crate::error::{Found, KeyPath};
use crate::units::{HumanDuration, dur, positive, valid_name};

/// How to reach a Redis deployment (`[cache.redis]`, `[shared_limits]`, `[cost.shared]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisLinkConfig {
    /// `redis://[user:password@]host:port[/db]`: the server, or the seed nodes of a
    /// Cluster (`url` or `urls` in the file).
    pub urls: Vec<String>,
    /// Whether `urls` are nodes of a Redis Cluster. Default false.
    pub cluster: bool,
    /// Key prefix. Default `flowgate`.
    pub prefix: String,
    /// Deadline of each Redis call. Default 50 ms.
    pub timeout: Duration,
    /// Consecutive failures that make the gateway go around Redis. Default 3.
    pub breaker_failures: u32,
    /// How long it goes around Redis before trying again. Default 5 s.
    pub breaker_cooldown: Duration,
}

impl RedisLinkConfig {
    /// ` [cluster]: URLS prefix P, timeout T, breaker N failures / C`, passwords hidden.
    pub(crate) fn summary(&self) -> String {
        format!(
            "{}: {} prefix {}, timeout {}, breaker {} failures / {}",
            if self.cluster { " cluster" } else { "" },
            self.urls
                .iter()
                .map(|u| redact_url(u))
                .collect::<Vec<_>>()
                .join(", "),
            self.prefix,
            crate::format_duration(self.timeout),
            self.breaker_failures,
            crate::format_duration(self.breaker_cooldown),
        )
    }
}

pub const REDIS_PREFIX: &str = "flowgate";
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(50);
pub const REDIS_BREAKER_FAILURES: u32 = 3;
pub const REDIS_BREAKER_COOLDOWN: Duration = Duration::from_secs(5);

/// The fields every Redis section has.
pub(crate) struct RawLink<'a> {
    pub url: &'a Option<String>,
    pub urls: &'a Option<Vec<String>>,
    pub cluster: Option<bool>,
    pub prefix: &'a Option<String>,
    pub timeout: Option<HumanDuration>,
    pub breaker_failures: Option<u32>,
    pub breaker_cooldown: Option<HumanDuration>,
}

/// The link to Redis of a section; `what` says who needs it, for the error of a missing URL.
pub(crate) fn redis_link(
    raw: RawLink<'_>,
    what: &str,
    key: &KeyPath,
    found: &mut Found,
) -> Option<RedisLinkConfig> {
    let cluster = raw.cluster.unwrap_or(false);
    let (urls, urls_key) = match (raw.url, raw.urls) {
        (Some(u), None) => (vec![u.trim().to_string()], key.clone().key("url")),
        (None, Some(us)) if !us.is_empty() => (
            us.iter().map(|u| u.trim().to_string()).collect(),
            key.clone().key("urls"),
        ),
        (Some(_), Some(_)) => {
            found.push((
                key.clone().key("urls"),
                "give either url or urls, not both".into(),
            ));
            return None;
        }
        _ => {
            found.push((
                key.clone().key("url"),
                format!(
                    "missing: {what} url = \"redis://host:port\" (or urls = [...] \
                     for the seed nodes of a Cluster)"
                ),
            ));
            return None;
        }
    };
    if let Some(bad) = urls
        .iter()
        .find(|u| !(u.starts_with("redis://") || u.starts_with("rediss://")) || u.len() < 10)
    {
        found.push((
            urls_key,
            format!("expected a redis://host:port URL, got {bad:?}"),
        ));
        return None;
    }
    if urls.len() > 1 && !cluster {
        found.push((
            urls_key,
            format!(
                "{} URLs need cluster = true (a standalone Redis has one URL)",
                urls.len()
            ),
        ));
    }
    let prefix = raw
        .prefix
        .clone()
        .unwrap_or_else(|| REDIS_PREFIX.to_string());
    if !valid_name(&prefix) {
        found.push((
            key.clone().key("prefix"),
            format!("invalid prefix {prefix:?}: use letters, digits, '-', '_' and '.'"),
        ));
    }
    let timeout = dur(raw.timeout, REDIS_TIMEOUT);
    positive(timeout, &key.clone().key("timeout"), found);
    let breaker_failures = raw.breaker_failures.unwrap_or(REDIS_BREAKER_FAILURES);
    if breaker_failures == 0 {
        found.push((
            key.clone().key("breaker_failures"),
            "must be at least 1".into(),
        ));
    }
    let breaker_cooldown = dur(raw.breaker_cooldown, REDIS_BREAKER_COOLDOWN);
    positive(
        breaker_cooldown,
        &key.clone().key("breaker_cooldown"),
        found,
    );
    Some(RedisLinkConfig {
        urls,
        cluster,
        prefix,
        timeout,
        breaker_failures,
        breaker_cooldown,
    })
}

/// A URL without its password, for printing.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_printed_without_passwords() {
        assert_eq!(
            redact_url("redis://u:secret@h:6379/0"),
            "redis://u:***@h:6379/0"
        );
        assert_eq!(redact_url("redis://:secret@h:6379"), "redis://:***@h:6379");
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
    }
}
