//! Header handling on the proxy hop: hop-by-hop headers are removed in both directions
//! (RFC 9110 §7.6.1, including any header the `Connection` header names), `X-Forwarded-*`
//! are set, and a request id is taken from the client or generated.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use flowgate_config::IpBlock;
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
/// The model the gateway chose for a request (a policy, `auto`, a budget's downgrade).
pub static MODEL: HeaderName = HeaderName::from_static("x-flowgate-model");
/// When a budget that refused a request lets requests through again (Unix seconds).
pub static BUDGET_RESET: HeaderName = HeaderName::from_static("x-flowgate-budget-reset");
static FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
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

/// What the upstream is told about the client: `X-Forwarded-For`, `Forwarded` (RFC 7239)
/// and `X-Real-IP`. A peer in `[server] trusted_proxies` (a load balancer in front) is
/// believed: its chain is kept and this hop appended. Anyone else could have written any
/// chain, so theirs is replaced by this hop alone.
#[derive(Debug)]
pub struct ClientFields<'a> {
    pub forwarded_for: Cow<'a, [u8]>,
    pub forwarded: Vec<u8>,
    pub real_ip: &'a [u8],
    /// The scheme the client used: `http`, or `https` on a TLS listener.
    pub proto: &'static [u8],
}

impl<'a> ClientFields<'a> {
    /// For a request with fields `h` from `client`, reached at `authority`.
    pub fn new(
        h: &'a HeaderMap,
        client: &'a Peer,
        trusted: &[IpBlock],
        authority: Option<&[u8]>,
    ) -> Self {
        let believed = !trusted.is_empty() && trusted.iter().any(|b| b.contains(client.addr.ip()));
        let theirs = |name: &HeaderName| {
            h.get(name)
                .filter(|v| believed && !v.is_empty())
                .map(HeaderValue::as_bytes)
        };
        let ip = client.ip().as_bytes();
        let forwarded_for = match theirs(&FORWARDED_FOR) {
            Some(prev) => Cow::Owned([prev, b", ", ip].concat()),
            None => Cow::Borrowed(ip),
        };
        let mut forwarded = Vec::with_capacity(64);
        if let Some(prev) = theirs(&FORWARDED) {
            forwarded.extend_from_slice(prev);
            forwarded.extend_from_slice(b", ");
        }
        forwarded.extend_from_slice(b"for=");
        if client.addr.is_ipv6() {
            forwarded.extend_from_slice(b"\"[");
            forwarded.extend_from_slice(ip);
            forwarded.extend_from_slice(b"]\"");
        } else {
            forwarded.extend_from_slice(ip);
        }
        if let Some(host) =
            authority.filter(|a| a.iter().all(|c| c.is_ascii_graphic() && *c != b'"'))
        {
            forwarded.extend_from_slice(b";host=\"");
            forwarded.extend_from_slice(host);
            forwarded.push(b'"');
        }
        let proto: &'static [u8] = if client.tls { b"https" } else { b"http" };
        forwarded.extend_from_slice(b";proto=");
        forwarded.extend_from_slice(proto);
        ClientFields {
            forwarded_for,
            forwarded,
            real_ip: theirs(&REAL_IP).unwrap_or(ip),
            proto,
        }
    }
}

/// W3C Trace Context's field.
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The fields the gateway sets on an upstream request, replacing any the client sent of the
/// same names: `Host` for the upstream, `X-Forwarded-For` / `-Proto` / `-Host`,
/// `Forwarded`, `X-Real-IP` and the request id. Written by the head encoder, so the
/// client's header map is never grown.
#[derive(Debug)]
pub struct UpstreamFields<'a> {
    fields: [(&'a HeaderName, &'a [u8]); 14],
    len: usize,
}

impl<'a> UpstreamFields<'a> {
    /// `authority`: the `Host` (or HTTP/2 `:authority`) the client used, sent as
    /// `X-Forwarded-Host`; without one the client's own `X-Forwarded-Host` must have been
    /// removed.
    pub fn new(
        upstream_host: &'a HeaderValue,
        client: &'a ClientFields<'a>,
        authority: Option<&'a [u8]>,
        request_id: &'a HeaderValue,
    ) -> Self {
        let mut fields: [(&'a HeaderName, &'a [u8]); 14] = [
            (&header::HOST, upstream_host.as_bytes()),
            (&FORWARDED_FOR, &client.forwarded_for),
            (&FORWARDED_PROTO, client.proto),
            (&REQUEST_ID, request_id.as_bytes()),
            (&FORWARDED, &client.forwarded),
            (&REAL_IP, client.real_ip),
            (&FORWARDED_HOST, b""),
            (&FORWARDED_HOST, b""),
            (&FORWARDED_HOST, b""),
            (&FORWARDED_HOST, b""),
            (&FORWARDED_HOST, b""),
            (&FORWARDED_HOST, b""),
            (&FORWARDED_HOST, b""),
            (&FORWARDED_HOST, b""),
        ];
        let len = match authority {
            Some(a) => {
                fields[6].1 = a;
                7
            }
            None => 6,
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

    /// Adds the fields the upstream's API wants (`anthropic-version`).
    pub fn with(mut self, fields: &'a [(HeaderName, &'a [u8])]) -> Self {
        for (name, value) in fields {
            self.fields[self.len] = (name, value);
            self.len += 1;
        }
        self
    }

    /// Adds fields made for this request (a signature).
    pub fn with_values(mut self, fields: &'a [(HeaderName, HeaderValue)]) -> Self {
        for (name, value) in fields {
            self.fields[self.len] = (name, value.as_bytes());
            self.len += 1;
        }
        self
    }

    /// Adds the attempt's `traceparent` (a traced request's), replacing the client's.
    pub fn with_trace(mut self, traceparent: Option<&'a HeaderValue>) -> Self {
        if let Some(v) = traceparent {
            self.fields[self.len] = (&TRACEPARENT, v.as_bytes());
            self.len += 1;
        }
        self
    }

    pub fn as_slice(&self) -> &[(&'a HeaderName, &'a [u8])] {
        &self.fields[..self.len]
    }
}

/// The authority a request was sent to: its `Host`, else its HTTP/2 `:authority`.
pub fn authority(parts: &http::request::Parts) -> Option<&[u8]> {
    parts
        .headers
        .get(header::HOST)
        .map(HeaderValue::as_bytes)
        .or_else(|| parts.uri.authority().map(|a| a.as_str().as_bytes()))
}

/// Removes what the client wrote as `X-Forwarded-Host` when the gateway will not write its
/// own (a request without an authority): only the gateway says which host was asked for.
pub fn drop_unbacked_forwarded_host(parts: &mut http::request::Parts) {
    if authority(parts).is_none() {
        parts.headers.remove(&FORWARDED_HOST);
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
    fn a_trusted_proxys_chain_is_kept_anyone_elses_replaced() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.insert("forwarded", HeaderValue::from_static("for=6.6.6.6"));
        h.insert("x-real-ip", HeaderValue::from_static("6.6.6.6"));
        let lb = [IpBlock::parse("10.0.0.0/8").unwrap()];
        let stranger = Peer::new("192.0.2.7:5000".parse().unwrap());
        let f = ClientFields::new(&h, &stranger, &lb, Some(b"api.example"));
        assert_eq!(&*f.forwarded_for, b"192.0.2.7");
        assert_eq!(
            f.forwarded,
            b"for=192.0.2.7;host=\"api.example\";proto=http"
        );
        assert_eq!(f.real_ip, b"192.0.2.7");
        let balancer = Peer::new("10.1.2.3:5000".parse().unwrap());
        let f = ClientFields::new(&h, &balancer, &lb, None);
        assert_eq!(&*f.forwarded_for, b"6.6.6.6, 10.1.2.3");
        assert_eq!(f.forwarded, b"for=6.6.6.6, for=10.1.2.3;proto=http");
        assert_eq!(f.real_ip, b"6.6.6.6");
        let v6 = Peer::new("[::1]:5000".parse().unwrap());
        let none = HeaderMap::new();
        let f = ClientFields::new(&none, &v6, &[], None);
        assert_eq!(f.forwarded, b"for=\"[::1]\";proto=http");
        let secure = Peer::new("192.0.2.7:5000".parse().unwrap()).over_tls();
        let f = ClientFields::new(&none, &secure, &[], None);
        assert_eq!(f.forwarded, b"for=192.0.2.7;proto=https");
        assert_eq!(f.proto, b"https");
    }

    #[test]
    fn upstream_fields_replace_the_clients() {
        let upstream = HeaderValue::from_static("up:80");
        let id = HeaderValue::from_static("id-1");
        let h = HeaderMap::new();
        let peer = Peer::new("1.2.3.4:1".parse().unwrap());
        let client = ClientFields::new(&h, &peer, &[], None);
        let f = UpstreamFields::new(&upstream, &client, None, &id);
        let names: Vec<&str> = f.as_slice().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "host",
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-request-id",
                "forwarded",
                "x-real-ip"
            ]
        );
        let f = UpstreamFields::new(&upstream, &client, Some(b"client.example"), &id);
        assert_eq!(f.as_slice()[6], (&FORWARDED_HOST, &b"client.example"[..]));
        assert_eq!(f.as_slice()[0].1, b"up:80");
        let key = (
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer sk-1"),
        );
        let f = UpstreamFields::new(&upstream, &client, None, &id).with_credential(Some(&key));
        assert_eq!(
            f.as_slice()[6],
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
