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
    /// `Transfer-Encoding` names a coding besides `chunked` (`gzip, chunked`): nothing here
    /// decodes those.
    pub other_coding: bool,
    /// How many `Host` fields the head has.
    pub hosts: u8,
}

/// Header slots a head is parsed with first (both sides); a head with more fields is parsed
/// again with room for the limit.
pub const FIRST_SLOTS: usize = 32;

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

/// The field names a peer sent in its last head, by position, with what they mean here.
///
/// A client or an upstream sends the same fields in the same order on every message of a
/// connection, so a name that matches, byte for byte, the one seen at its position is taken
/// from here instead of being parsed again (`HeaderName::from_bytes` lowercases the name,
/// looks it up among the standard ones and, for any other name, allocates a copy). One per
/// connection and direction.
#[derive(Debug, Default)]
pub struct Names(Box<Seen>);

/// Boxed, so that a connection (which moves with its lease) grows by a pointer only.
#[derive(Debug, Default)]
struct Seen {
    /// The raw names, one after another.
    raw: Vec<u8>,
    /// Per position: where its raw name ends in `raw`, the name, its kind.
    seen: Vec<(u32, HeaderName, Kind)>,
}

/// Names kept per connection; fields past this position are always parsed.
const NAMES_KEPT: usize = 32;
/// Longer names are not kept (nor any after them), so that what a connection keeps stays
/// small whatever its peer sends: real field names are far shorter.
const NAME_BYTES_KEPT: usize = 64;

impl Names {
    /// The name at position `at` of a head, which reads `raw` there.
    fn get(&mut self, at: usize, raw: &[u8]) -> Result<(HeaderName, Kind), String> {
        let Seen { raw: kept, seen } = &mut *self.0;
        if let Some((end, name, kind)) = seen.get(at) {
            let start = at.checked_sub(1).map_or(0, |p| seen[p].0 as usize);
            if kept[start..*end as usize] == *raw {
                return Ok((name.clone(), *kind));
            }
        }
        let name = HeaderName::from_bytes(raw)
            .map_err(|_| format!("bad header name {:?}", String::from_utf8_lossy(raw)))?;
        let kind = kind(&name);
        if at < NAMES_KEPT && at <= seen.len() {
            // What followed a changed name is stale too.
            seen.truncate(at);
            kept.truncate(seen.last().map_or(0, |s| s.0 as usize));
            if raw.len() <= NAME_BYTES_KEPT {
                kept.extend_from_slice(raw);
                seen.push((kept.len() as u32, name.clone(), kind));
            }
        }
        Ok((name, kind))
    }
}

/// Reads the fields at `spans` of `head` into a map with room for `extra` more, leaving the
/// hop-by-hop ones out. `names` is the connection's cache of the names its peer sends.
pub fn collect(
    head: &Bytes,
    spans: &[Span],
    extra: usize,
    names: &mut Names,
) -> Result<(HeaderMap, Framing), String> {
    let mut map = HeaderMap::with_capacity(spans.len() + extra);
    let mut framing = Framing::default();
    // Fields named by `Connection` other than close/keep-alive: rare, removed at the end.
    let mut named = false;
    for (at, &[name_at, name_end, start, end]) in spans.iter().enumerate() {
        let value_bytes = &head[start as usize..end as usize];
        let (name, kind) = names.get(at, &head[name_at as usize..name_end as usize])?;
        match kind {
            Kind::Plain => {}
            Kind::Connection => {
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
            Kind::TransferEncoding => {
                // Several fields are one list (RFC 9110 §5.3): only a last `chunked` frames.
                let mut codings = value_bytes
                    .split(|&b| b == b',')
                    .map(<[u8]>::trim_ascii)
                    .filter(|c| !c.is_empty())
                    .peekable();
                let mut last_chunked = false;
                while let Some(c) = codings.next() {
                    let chunked = c.eq_ignore_ascii_case(b"chunked");
                    if !chunked || codings.peek().is_some() || framing.transfer.is_some() {
                        framing.other_coding = true;
                    }
                    last_chunked = chunked;
                }
                framing.transfer = Some(last_chunked);
                continue;
            }
            Kind::Host => framing.hosts = framing.hosts.saturating_add(1),
            Kind::OtherHop => continue,
            Kind::Expect => {
                if value_bytes.eq_ignore_ascii_case(b"100-continue") {
                    framing.expect_continue = true;
                    continue;
                }
            }
            Kind::ContentLength => {
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

/// What a field name means to the reading of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Kept as it is.
    Plain,
    Connection,
    TransferEncoding,
    /// Another hop-by-hop field: left out.
    OtherHop,
    Expect,
    ContentLength,
    /// Kept, and counted (a request has exactly one).
    Host,
}

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

fn kind(name: &HeaderName) -> Kind {
    if *name == header::CONNECTION {
        Kind::Connection
    } else if *name == header::TRANSFER_ENCODING {
        Kind::TransferEncoding
    } else if *name == header::CONTENT_LENGTH {
        Kind::ContentLength
    } else if *name == header::EXPECT {
        Kind::Expect
    } else if *name == header::HOST {
        Kind::Host
    } else if *name == header::TE
        || *name == header::TRAILER
        || *name == header::UPGRADE
        || *name == header::PROXY_AUTHENTICATE
        || *name == header::PROXY_AUTHORIZATION
        || *name == KEEP_ALIVE
        || *name == PROXY_CONNECTION
    {
        Kind::OtherHop
    } else {
        Kind::Plain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(fields: &[(&str, &str)]) -> Result<(HeaderMap, Framing), String> {
        read_with(&mut Names::default(), fields)
    }

    fn read_with(
        names: &mut Names,
        fields: &[(&str, &str)],
    ) -> Result<(HeaderMap, Framing), String> {
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
        collect(&Bytes::from(raw), &spans, 0, names)
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

    #[test]
    fn names_are_remembered_by_position_and_read_again_when_they_change() {
        let mut names = Names::default();
        let first = [
            ("Content-Length", "3"),
            ("X-A", "1"),
            ("Connection", "close"),
        ];
        for _ in 0..2 {
            let (map, f) = read_with(&mut names, &first).unwrap();
            assert_eq!(
                (map.len(), f.length, f.close),
                (2, Some(3), true),
                "{map:?}"
            );
            assert_eq!(map["x-a"], "1");
        }
        assert_eq!(names.0.seen.len(), 3);
        // The second name changes: it and what follows are read again.
        let (map, f) = read_with(
            &mut names,
            &[("Content-Length", "3"), ("TE", "x"), ("X-C", "2")],
        )
        .unwrap();
        assert_eq!((map.len(), f.close), (2, false), "{map:?}");
        assert!(map.contains_key("x-c") && !map.contains_key("te") && !map.contains_key("x-a"));
        // Same length, other meaning: a hop-by-hop name at a position becomes a kept one.
        let (map, _) = read_with(
            &mut names,
            &[("Content-Length", "3"), ("X2", "y"), ("X-C", "2")],
        )
        .unwrap();
        assert_eq!(map["x2"], "y");
        // Other case, same name.
        let (map, f) = read_with(&mut names, &[("content-length", "4")]).unwrap();
        assert_eq!((map.len(), f.length), (1, Some(4)));
        assert!(read_with(&mut names, &[("bad name", "1")]).is_err());
        let many: Vec<(String, &str)> = (0..40).map(|i| (format!("x-{i}"), "v")).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        for _ in 0..2 {
            assert_eq!(read_with(&mut names, &many).unwrap().0.len(), 40);
        }
        assert_eq!(names.0.seen.len(), NAMES_KEPT);
        // A long name is read but not kept, nor anything after it.
        let long = "x".repeat(NAME_BYTES_KEPT + 1);
        for _ in 0..2 {
            let (map, _) = read_with(&mut names, &[("a", "1"), (&long, "2"), ("b", "3")]).unwrap();
            assert_eq!(map.len(), 3);
            assert_eq!(map[long.as_str()], "2");
            assert_eq!(names.0.seen.len(), 1);
            assert_eq!(names.0.raw, b"a");
        }
    }
}
