//! The fields of an HTTP/1.1 head read off the wire (RFC 9112): what the gateway keeps of them
//! in a [`HeaderMap`] and what they say about the message's framing and connection.
//!
//! Hop-by-hop fields (`Connection` and the fields it names, `Keep-Alive`, `TE`, `Trailer`,
//! `Transfer-Encoding`, `Upgrade`, `Proxy-*`) are read here and never enter the map, so that
//! nothing downstream has to strip them again. Both the upstream client and the listener
//! read heads through this one function.

use bytes::Bytes;
use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

/// Where one field's name and value sit in a head: `[name start, name end, value start,
/// value end]`, offsets into the head's bytes.
pub type Span = [u32; 4];

/// What a head's hop-by-hop and framing fields say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Framing {
    /// `Transfer-Encoding` is present: `Some(true)` when its last coding is `chunked`.
    pub transfer: Option<bool>,
    /// `Content-Length`, when present and `Transfer-Encoding` is not.
    pub length: Option<u64>,
    /// `Connection: close`.
    pub close: bool,
    /// `Connection: keep-alive` (what an HTTP/1.0 peer must send to keep the connection).
    pub keep_alive: bool,
    /// Both `Transfer-Encoding` and `Content-Length` were sent: a request with both is
    /// refused (a request-smuggling shape); on a response the length is dropped.
    pub both: bool,
    /// `Expect: 100-continue`, which the listener answers itself (the field is left out).
    pub expect_continue: bool,
}

/// Records where each of `fields` sits in the buffer starting at `base`.
pub fn spans(base: *const u8, fields: &[httparse::Header<'_>], out: &mut [Span]) -> usize {
    let base = base as usize;
    for (span, h) in out.iter_mut().zip(fields) {
        let name = h.name.as_ptr() as usize - base;
        let value = h.value.as_ptr() as usize - base;
        // Heads are far shorter than 4 GiB, so offsets fit.
        *span = [
            name as u32,
            (name + h.name.len()) as u32,
            value as u32,
            (value + h.value.len()) as u32,
        ];
    }
    fields.len().min(out.len())
}

/// Reads the fields at `spans` of `head` into a map with room for `extra` more, leaving the
/// hop-by-hop ones out.
pub fn collect(head: &Bytes, spans: &[Span], extra: usize) -> Result<(HeaderMap, Framing), String> {
    let mut map = HeaderMap::with_capacity(spans.len() + extra);
    let mut framing = Framing::default();
    // Fields named by `Connection` other than close/keep-alive: rare, removed at the end.
    let mut named = false;
    for &[name_at, name_end, start, end] in spans {
        let name_bytes = &head[name_at as usize..name_end as usize];
        let value_bytes = &head[start as usize..end as usize];
        let name = HeaderName::from_bytes(name_bytes)
            .map_err(|_| format!("bad header name {:?}", String::from_utf8_lossy(name_bytes)))?;
        match hop(&name) {
            Hop::No => {}
            Hop::Connection => {
                for token in value_bytes.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        framing.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        framing.keep_alive = true;
                    } else if !token.is_empty() {
                        named = true;
                    }
                }
                continue;
            }
            Hop::TransferEncoding => {
                let last = value_bytes
                    .rsplit(|&b| b == b',')
                    .next()
                    .unwrap_or_default()
                    .trim_ascii();
                framing.transfer = Some(last.eq_ignore_ascii_case(b"chunked"));
                continue;
            }
            Hop::Other => continue,
        }
        if name == header::EXPECT && value_bytes.eq_ignore_ascii_case(b"100-continue") {
            framing.expect_continue = true;
            continue;
        }
        if name == header::CONTENT_LENGTH {
            for part in value_bytes.split(|&b| b == b',') {
                let n = parse_length(part.trim_ascii()).ok_or_else(|| {
                    format!(
                        "bad content-length {:?}",
                        String::from_utf8_lossy(value_bytes)
                    )
                })?;
                if framing.length.is_some_and(|l| l != n) {
                    return Err("conflicting content-length".into());
                }
                framing.length = Some(n);
            }
        }
        let value = HeaderValue::from_maybe_shared(head.slice(start as usize..end as usize))
            .map_err(|_| format!("bad value for header {name}"))?;
        map.append(name, value);
    }
    if framing.transfer.is_some() && framing.length.is_some() {
        framing.both = true;
        framing.length = None;
        map.remove(header::CONTENT_LENGTH);
    }
    if named {
        remove_named(head, spans, &mut map);
    }
    Ok((map, framing))
}

/// Removes the fields that `Connection` names (RFC 9110 §7.6.1).
fn remove_named(head: &Bytes, spans: &[Span], map: &mut HeaderMap) {
    for &[name_at, name_end, start, end] in spans {
        if head[name_at as usize..name_end as usize].eq_ignore_ascii_case(b"connection") {
            for token in head[start as usize..end as usize].split(|&b| b == b',') {
                if let Ok(name) = HeaderName::from_bytes(token.trim_ascii()) {
                    map.remove(name);
                }
            }
        }
    }
}

/// A decimal length without sign or spaces, that fits in a u64.
fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

enum Hop {
    No,
    Connection,
    TransferEncoding,
    Other,
}

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

fn hop(name: &HeaderName) -> Hop {
    if *name == header::CONNECTION {
        Hop::Connection
    } else if *name == header::TRANSFER_ENCODING {
        Hop::TransferEncoding
    } else if *name == header::TE
        || *name == header::TRAILER
        || *name == header::UPGRADE
        || *name == header::PROXY_AUTHENTICATE
        || *name == header::PROXY_AUTHORIZATION
        || *name == KEEP_ALIVE
        || *name == PROXY_CONNECTION
    {
        Hop::Other
    } else {
        Hop::No
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(fields: &[(&str, &str)]) -> Result<(HeaderMap, Framing), String> {
        let mut raw = Vec::new();
        let mut spans = Vec::new();
        for (n, v) in fields {
            let at = raw.len() as u32;
            raw.extend_from_slice(n.as_bytes());
            let end = raw.len() as u32;
            raw.extend_from_slice(b": ");
            let vat = raw.len() as u32;
            raw.extend_from_slice(v.as_bytes());
            spans.push([at, end, vat, raw.len() as u32]);
            raw.extend_from_slice(b"\r\n");
        }
        collect(&Bytes::from(raw), &spans, 0)
    }

    #[test]
    fn hop_by_hop_fields_stay_out_and_say_how_the_message_is_framed() {
        let (map, f) = read(&[
            ("Connection", "keep-alive, X-Secret-Hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("transfer-encoding", "gzip, chunked"),
            ("x-keep", "1"),
        ])
        .unwrap();
        assert_eq!(map.len(), 1, "{map:?}");
        assert!(map.contains_key("x-keep"));
        assert_eq!(f.transfer, Some(true));
        assert!(f.keep_alive && !f.close && !f.both);

        let (map, f) = read(&[("Expect", "100-Continue"), ("expect", "other")]).unwrap();
        assert!(f.expect_continue);
        assert_eq!(
            map["expect"], "other",
            "only the go-ahead request is taken out"
        );

        let (map, f) = read(&[("content-length", "12, 12"), ("connection", "close")]).unwrap();
        assert_eq!(map["content-length"], "12, 12");
        assert_eq!((f.length, f.close, f.transfer), (Some(12), true, None));

        let (map, f) = read(&[("content-length", "3"), ("transfer-encoding", "chunked")]).unwrap();
        assert!(f.both && f.length.is_none() && !map.contains_key("content-length"));
    }

    #[test]
    fn bad_lengths_and_names_are_errors() {
        for bad in ["-1", "1 2", "", "+5", "99999999999999999999", "1, 2"] {
            assert!(read(&[("content-length", bad)]).is_err(), "{bad:?}");
        }
        assert!(read(&[("bad name", "1")]).is_err());
        assert!(read(&[("x-a", "a\u{7f}b")]).is_err());
    }
}
