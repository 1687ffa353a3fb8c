//! HTTP messages to and from the cache (feature `tower`): the key of an http request,
//! what its origin allows to be stored, which response fields an entry keeps and how they
//! are given back. Shared by the tower layer ([`crate::layer`]) and the gateway.

use bytes::Bytes;
use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

use crate::http::{HttpKey, Storable};
use crate::policy::MAX_CLIENT_TTL;

/// The key hash of an http request ([`crate::http`]): method, path, the query parameters
/// `query` selects (all when `None`), the `keyed` headers, the body. `None` when it carries
/// credentials (`authorization`, `cookie`) the key does not hold: its answer may be meant
/// for that client alone.
pub fn http_request_key(
    parts: &http::request::Parts,
    query: Option<&[String]>,
    keyed: &[HeaderName],
    body: &[u8],
) -> Option<u128> {
    for credential in [header::AUTHORIZATION, header::COOKIE] {
        if parts.headers.contains_key(&credential) && !keyed.contains(&credential) {
            return None;
        }
    }
    let mut k = HttpKey::new(parts.method.as_str(), parts.uri.path());
    k.query(parts.uri.query(), query);
    for name in keyed {
        k.header(
            name.as_str(),
            parts
                .headers
                .get_all(name)
                .iter()
                .map(HeaderValue::as_bytes),
        );
    }
    k.body(body);
    Some(k.finish().digest())
}

/// What an answer's `Cache-Control` and `Vary` allow when the key holds the `keyed`
/// headers ([`crate::http::storable`]); the origin's TTL at most 30 days.
pub fn origin_allows(headers: &HeaderMap, keyed: &[HeaderName]) -> Storable {
    let values = |name| headers.get_all(name).into_iter().map(HeaderValue::as_bytes);
    match crate::http::storable(
        values(header::CACHE_CONTROL),
        values(header::VARY),
        |name| keyed.iter().any(|k| k == name),
    ) {
        Storable::Yes { ttl } => Storable::Yes {
            ttl: ttl.map(|t| t.min(MAX_CLIENT_TTL)),
        },
        no => no,
    }
}

/// The fields of a response worth storing: not per-response ones (dates, cookies, ids,
/// framing, age) nor flowgate's own (`x-flowgate-*`).
pub fn stored_fields(headers: &HeaderMap) -> Vec<(String, Bytes)> {
    headers
        .iter()
        .filter(|(n, _)| keep(n))
        .map(|(n, v)| (n.as_str().to_string(), Bytes::copy_from_slice(v.as_bytes())))
        .collect()
}

fn keep(name: &HeaderName) -> bool {
    !(name == header::DATE
        || name == header::SET_COOKIE
        || name == header::CONTENT_LENGTH
        || name == header::TRANSFER_ENCODING
        || name == header::AGE
        || name.as_str() == "x-request-id"
        || name.as_str().starts_with("x-flowgate-"))
}

/// Adds stored `fields` to `headers` (a field that is no longer valid is left out).
pub fn replay_fields(headers: &mut HeaderMap, fields: &[(String, Bytes)]) {
    for (name, value) in fields {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_maybe_shared(value.clone()),
        ) {
            headers.append(n, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_response_fields_are_not_stored_and_the_rest_round_trips() {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("content-type", "text/csv"),
            ("date", "Mon, 23 Nov 2026 10:00:00 GMT"),
            ("set-cookie", "s=1"),
            ("content-length", "4"),
            ("x-request-id", "r1"),
            ("x-flowgate-cache-tags", "a"),
            ("x-report", "one"),
            ("x-report", "two"),
        ] {
            h.append(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        let stored = stored_fields(&h);
        let names: Vec<&str> = stored.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["content-type", "x-report", "x-report"]);
        let mut back = HeaderMap::new();
        replay_fields(&mut back, &stored);
        assert_eq!(back.get_all("x-report").iter().count(), 2);
        assert_eq!(back["content-type"], "text/csv");
    }
}
