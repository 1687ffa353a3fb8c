//! Cacheability: which requests may be answered from the cache and stored, and for how long.
//!
//! A route chooses a [`Mode`]; a client refines it per request with `Cache-Control`
//! (`no-store`: neither read nor written; `no-cache`: not read, but the fresh answer is
//! stored; `max-age=N`: only entries at most N seconds old) and with `x-flowgate-cache-ttl`
//! and `x-flowgate-cache-namespace`.

use std::sync::Arc;
use std::time::Duration;

/// Which requests of a route are cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Off,
    /// Only requests that always get the same answer (temperature 0, a seed, embeddings).
    Deterministic,
    /// Every request, deterministic or not (one sampled answer is reused).
    Always,
}

/// A client's caching instructions for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    pub no_store: bool,
    pub no_cache: bool,
    pub max_age: Option<Duration>,
    pub ttl: Option<Duration>,
    pub namespace: Option<Arc<str>>,
}

/// A request header with a caching instruction that cannot be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{header}: {why}")]
pub struct BadDirective {
    pub header: &'static str,
    pub why: String,
}

/// Longest TTL a client may ask for.
pub const MAX_CLIENT_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

impl Directives {
    /// Reads the values of `Cache-Control`, `x-flowgate-cache-ttl` (seconds) and
    /// `x-flowgate-cache-namespace`. Unknown `Cache-Control` directives are ignored, as HTTP
    /// caches do; a malformed TTL or namespace is an error (the client meant something).
    pub fn parse(
        cache_control: Option<&[u8]>,
        ttl: Option<&[u8]>,
        namespace: Option<&[u8]>,
    ) -> Result<Self, BadDirective> {
        let mut d = Directives::default();
        if let Some(cc) = cache_control {
            for part in String::from_utf8_lossy(cc).split(',') {
                let part = part.trim();
                let (name, value) = match part.split_once('=') {
                    Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                    None => (part, None),
                };
                if name.eq_ignore_ascii_case("no-store") {
                    d.no_store = true;
                } else if name.eq_ignore_ascii_case("no-cache") {
                    d.no_cache = true;
                } else if name.eq_ignore_ascii_case("max-age") {
                    let secs =
                        value
                            .and_then(|v| v.parse::<u64>().ok())
                            .ok_or_else(|| BadDirective {
                                header: "cache-control",
                                why: format!("max-age needs a number of seconds, got {part:?}"),
                            })?;
                    d.max_age = Some(Duration::from_secs(secs));
                }
            }
        }
        if let Some(t) = ttl {
            let secs = std::str::from_utf8(t)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .filter(|&s| s > 0 && Duration::from_secs(s) <= MAX_CLIENT_TTL)
                .ok_or_else(|| BadDirective {
                    header: "x-flowgate-cache-ttl",
                    why: format!(
                        "expected seconds from 1 to {}, got {:?}",
                        MAX_CLIENT_TTL.as_secs(),
                        String::from_utf8_lossy(t)
                    ),
                })?;
            d.ttl = Some(Duration::from_secs(secs));
        }
        if let Some(ns) = namespace {
            let ok = !ns.is_empty()
                && ns.len() <= 64
                && ns
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c));
            if !ok {
                return Err(BadDirective {
                    header: "x-flowgate-cache-namespace",
                    why: "expected 1 to 64 characters of [A-Za-z0-9._-]".into(),
                });
            }
            d.namespace = Some(Arc::from(String::from_utf8_lossy(ns).as_ref()));
        }
        Ok(d)
    }
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Neither read nor stored.
    Bypass(BypassReason),
    /// Looked up (unless `read` is false) and stored on a miss.
    Use { read: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BypassReason {
    RouteOff,
    NotDeterministic,
    ClientNoStore,
}

/// Decides for a request of a route in `mode`.
pub fn decide(mode: Mode, deterministic: bool, d: &Directives) -> Decision {
    let reason = match mode {
        Mode::Off => Some(BypassReason::RouteOff),
        _ if d.no_store => Some(BypassReason::ClientNoStore),
        Mode::Deterministic if !deterministic => Some(BypassReason::NotDeterministic),
        _ => None,
    };
    match reason {
        Some(r) => Decision::Bypass(r),
        None => Decision::Use { read: !d.no_cache },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(cc: &str) -> Directives {
        Directives::parse(Some(cc.as_bytes()), None, None).unwrap()
    }

    #[test]
    fn cache_control_directives() {
        assert!(parse("no-store").no_store);
        let d = parse("No-Cache, max-age=60, private");
        assert!(d.no_cache && !d.no_store);
        assert_eq!(d.max_age, Some(Duration::from_secs(60)));
        assert!(Directives::parse(Some(b"max-age=soon"), None, None).is_err());
    }

    #[test]
    fn ttl_and_namespace_headers_are_checked() {
        let d = Directives::parse(None, Some(b"3600"), Some(b"team-a")).unwrap();
        assert_eq!(d.ttl, Some(Duration::from_secs(3600)));
        assert_eq!(d.namespace.as_deref(), Some("team-a"));
        for bad in [&b"0"[..], b"-1", b"1h", b"99999999999"] {
            let e = Directives::parse(None, Some(bad), None).unwrap_err();
            assert_eq!(e.header, "x-flowgate-cache-ttl");
        }
        assert!(Directives::parse(None, None, Some(b"a b")).is_err());
        assert!(Directives::parse(None, None, Some(b"")).is_err());
    }

    #[test]
    fn decisions() {
        let none = Directives::default();
        assert_eq!(
            decide(Mode::Deterministic, true, &none),
            Decision::Use { read: true }
        );
        assert_eq!(
            decide(Mode::Deterministic, false, &none),
            Decision::Bypass(BypassReason::NotDeterministic)
        );
        assert_eq!(
            decide(Mode::Always, false, &none),
            Decision::Use { read: true }
        );
        assert_eq!(
            decide(Mode::Off, true, &none),
            Decision::Bypass(BypassReason::RouteOff)
        );
        let no_cache = parse("no-cache");
        assert_eq!(
            decide(Mode::Always, true, &no_cache),
            Decision::Use { read: false }
        );
        assert_eq!(
            decide(Mode::Always, true, &parse("no-store")),
            Decision::Bypass(BypassReason::ClientNoStore)
        );
    }
}
