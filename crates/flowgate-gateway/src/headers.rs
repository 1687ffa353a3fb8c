//! Header handling on the proxy hop: hop-by-hop headers are removed in both directions
//! (RFC 9110 §7.6.1, including any header the `Connection` header names), `X-Forwarded-*`
//! are set, and a request id is taken from the client or generated.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use flowgate_http::server::Peer;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The request-id header.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// How many fields the gateway may add to a response (request id, upstream, attempts,
/// cache status, age, the six `x-ratelimit-*`): responses are made with room for them, so
/// that adding them never grows the map. The upstream client leaves this room in the
/// answers it reads.
pub const ADDED_FIELDS: usize = flowgate_http::client::SPARE_FIELDS;
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
    // Most messages carry none: one pass over the names is cheaper than nine lookups.
    let hop = hop_by_hop();
    if !h.keys().any(|k| hop.contains(&k)) {
        return;
    }
    if let Some(conn) = h.get(&header::CONNECTION).cloned() {
        for token in conn.to_str().unwrap_or("").split(',') {
            let token = token.trim();
            // `close` and `keep-alive` are the usual tokens; neither needs a lookup here.
            if !token.is_empty()
                && !token.eq_ignore_ascii_case("close")
                && !token.eq_ignore_ascii_case("keep-alive")
            {
                h.remove(token);
            }
        }
    }
    for n in hop {
        h.remove(n);
    }
}

/// The `X-Forwarded-For` value for a request from `client`: the client's own list with the
/// client's address appended, or just the address.
pub fn forwarded_for<'a>(h: &HeaderMap, client: &'a Peer) -> Cow<'a, [u8]> {
    match h.get(&FORWARDED_FOR) {
        Some(prev) if !prev.is_empty() => {
            let mut v = Vec::with_capacity(prev.len() + 2 + client.ip().len());
            v.extend_from_slice(prev.as_bytes());
            v.extend_from_slice(b", ");
            v.extend_from_slice(client.ip().as_bytes());
            Cow::Owned(v)
        }
        _ => Cow::Borrowed(client.ip().as_bytes()),
    }
}

/// The fields the gateway sets on an upstream request, replacing any the client sent of the
/// same names: `Host` for the upstream, `X-Forwarded-For` / `-Proto` / `-Host` and the
/// request id. Written by the head encoder, so the client's header map is never grown.
#[derive(Debug)]
pub struct UpstreamFields<'a> {
    fields: [(&'a HeaderName, &'a [u8]); 6],
    len: usize,
}

impl<'a> UpstreamFields<'a> {
    /// `client_headers` are the request's (hop-by-hop already stripped), `forwarded_for`
    /// from [`forwarded_for`].
    pub fn new(
        client_headers: &'a HeaderMap,
        upstream_host: &'a HeaderValue,
        forwarded_for: &'a [u8],
        request_id: &'a HeaderValue,
    ) -> Self {
        let mut fields: [(&'a HeaderName, &'a [u8]); 6] = [
            (&header::HOST, upstream_host.as_bytes()),
            (&FORWARDED_FOR, forwarded_for),
            (&FORWARDED_PROTO, b"http"),
            (&REQUEST_ID, request_id.as_bytes()),
            (&FORWARDED_HOST, b""),
            (&FORWARDED_HOST, b""),
        ];
        // Without a client `Host` the client's own `X-Forwarded-Host`, if any, passes.
        let len = match client_headers.get(&header::HOST) {
            Some(host) => {
                fields[4].1 = host.as_bytes();
                5
            }
            None => 4,
        };
        UpstreamFields { fields, len }
    }

    /// Adds the endpoint's own credential, replacing the client's field of that name.
    pub fn with_credential(mut self, c: Option<&'a (HeaderName, HeaderValue)>) -> Self {
        if let Some((name, value)) = c {
            self.fields[self.len] = (name, value.as_bytes());
            self.len += 1;
        }
        self
    }

    pub fn as_slice(&self) -> &[(&'a HeaderName, &'a [u8])] {
        &self.fields[..self.len]
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
        let mut id = [0u8; 24];
        hex12(&mut id[..12], self.prefix);
        hex12(&mut id[12..], n);
        HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("-"))
    }
}

/// Writes the low 48 bits of `n` as 12 lowercase hex digits.
fn hex12(out: &mut [u8], n: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in out.iter_mut().rev().enumerate() {
        *b = DIGITS[((n >> (4 * i)) & 0xf) as usize];
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
        let peer = Peer::new("127.0.0.1:5000".parse().unwrap());
        assert_eq!(&*forwarded_for(&h, &peer), b"127.0.0.1");
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        assert_eq!(&*forwarded_for(&h, &peer), b"10.0.0.1, 127.0.0.1");
        let v6 = Peer::new("[::1]:5000".parse().unwrap());
        assert_eq!(&*forwarded_for(&HeaderMap::new(), &v6), b"::1");
    }

    #[test]
    fn upstream_fields_replace_the_clients() {
        let upstream = HeaderValue::from_static("up:80");
        let id = HeaderValue::from_static("id-1");
        let mut h = HeaderMap::new();
        let f = UpstreamFields::new(&h, &upstream, b"1.2.3.4", &id);
        let names: Vec<&str> = f.as_slice().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "host",
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-request-id"
            ]
        );
        h.insert(header::HOST, HeaderValue::from_static("client.example"));
        let f = UpstreamFields::new(&h, &upstream, b"1.2.3.4", &id);
        assert_eq!(f.as_slice()[4], (&FORWARDED_HOST, &b"client.example"[..]));
        assert_eq!(f.as_slice()[0].1, b"up:80");
        let key = (
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer sk-1"),
        );
        let f = UpstreamFields::new(&h, &upstream, b"1.2.3.4", &id).with_credential(Some(&key));
        assert_eq!(
            f.as_slice()[5],
            (&header::AUTHORIZATION, &b"Bearer sk-1"[..])
        );
    }

    #[test]
    fn request_ids_are_taken_or_made_unique() {
        let ids = RequestIds::new(42);
        let mut h = HeaderMap::new();
        let a = ids.take_or_make(&h);
        let b = ids.take_or_make(&h);
        assert_ne!(a, b);
        assert_eq!(a, "00000000002a000000000001");
        assert_eq!(b, "00000000002a000000000002");
        h.insert(REQUEST_ID.clone(), HeaderValue::from_static("client-id-1"));
        assert_eq!(ids.take_or_make(&h), "client-id-1");
        h.insert(REQUEST_ID.clone(), HeaderValue::from_static("has space"));
        assert_ne!(ids.take_or_make(&h), "has space");
    }
}
