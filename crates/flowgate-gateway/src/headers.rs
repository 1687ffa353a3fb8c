//! Header handling on the proxy hop: hop-by-hop headers are removed in both directions
//! (RFC 9110 §7.6.1, including any header the `Connection` header names), `X-Forwarded-*`
//! are set, and a request id is taken from the client or generated.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The request-id header.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Names the upstream endpoint that answered.
pub static UPSTREAM: HeaderName = HeaderName::from_static("x-flowgate-upstream");
static FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Hop-by-hop headers, never forwarded.
fn hop_by_hop() -> [&'static HeaderName; 9] {
    [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::PROXY_AUTHENTICATE,
        &header::PROXY_AUTHORIZATION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ]
}

/// Removes hop-by-hop headers, and the headers listed in `Connection`.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    if let Some(conn) = h.get(&header::CONNECTION) {
        let named: Vec<HeaderName> = conn
            .to_str()
            .unwrap_or("")
            .split(',')
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for n in named {
            h.remove(n);
        }
    }
    for n in hop_by_hop() {
        h.remove(n);
    }
}

/// Appends the client address to `X-Forwarded-For`, sets `X-Forwarded-Proto` and keeps the
/// client's `Host` as `X-Forwarded-Host`.
pub fn set_forwarded(h: &mut HeaderMap, client: IpAddr) {
    let ip = client.to_string();
    let value = match h.get(&FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.is_empty() => format!("{prev}, {ip}"),
        _ => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert(FORWARDED_FOR.clone(), v);
    }
    h.insert(FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    if let Some(host) = h.get(&header::HOST).cloned() {
        h.insert(FORWARDED_HOST.clone(), host);
    }
}

/// Generates request ids: a per-process random prefix and a counter, so ids are unique
/// across replicas and restarts without a syscall per request.
#[derive(Debug)]
pub struct RequestIds {
    prefix: u64,
    next: AtomicU64,
}

impl RequestIds {
    pub fn new(seed: u64) -> Self {
        RequestIds {
            prefix: seed,
            next: AtomicU64::new(1),
        }
    }

    /// The client's id when it sent a usable one (visible ASCII, at most 200 bytes),
    /// otherwise a new one.
    pub fn take_or_make(&self, h: &HeaderMap) -> HeaderValue {
        if let Some(v) = h.get(&REQUEST_ID) {
            let b = v.as_bytes();
            if !b.is_empty() && b.len() <= 200 && b.iter().all(|c| c.is_ascii_graphic()) {
                return v.clone();
            }
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:012x}{:012x}", self.prefix & 0xffff_ffff_ffff, n);
        HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("-"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_connection_named() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        set_forwarded(&mut h, "127.0.0.1".parse().unwrap());
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
    }

    #[test]
    fn request_ids_are_taken_or_made_unique() {
        let ids = RequestIds::new(42);
        let mut h = HeaderMap::new();
        let a = ids.take_or_make(&h);
        let b = ids.take_or_make(&h);
        assert_ne!(a, b);
        h.insert(REQUEST_ID.clone(), HeaderValue::from_static("client-id-1"));
        assert_eq!(ids.take_or_make(&h), "client-id-1");
        h.insert(REQUEST_ID.clone(), HeaderValue::from_static("has space"));
        assert_ne!(ids.take_or_make(&h), "has space");
    }
}
