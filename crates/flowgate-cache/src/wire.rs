//! Stored answers to and from HTTP messages (feature `tower`): which response fields an
//! entry keeps, and how they are given back. Shared by the tower layer ([`crate::layer`])
//! and the gateway.

use bytes::Bytes;
use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

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
