//! The stored form of an entry, for the tiers outside the process (Redis, disk).
//!
//! A small versioned binary layout, so that gateways of different versions sharing a Redis
//! never misread each other (an unknown version is a miss):
//!
//! ```text
//! "FG" version:u8 flags:u8 stored_at_ms:u64 ttl_ms:u64 stale_ms:u64 status:u16
//! prompt_tokens:u64 completion_tokens:u64 field_count:u16
//! { name_len:u16 name value_len:u32 value }*
//! category_len:u16 category tag_count:u16 { tag_len:u16 tag }*  body_len:u32 body
//! ```
//!
//! Integers are little-endian; times are wall-clock milliseconds since the Unix epoch
//! (monotonic instants mean nothing to another process). With flag bit 0 the body is
//! zstd-compressed and `body_len` is its size once decompressed. An empty category is none.
//! Version 1 (without the stale window and labels) is no longer read: such a record is a
//! miss and is replaced by the next fill.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Buf, BufMut, Bytes};

use crate::entry::{CachedResponse, Labels, Lifetime, Usage};

const MAGIC: &[u8; 2] = b"FG";
const VERSION: u8 = 2;
const ZSTD: u8 = 1;
/// zstd's default level: fast, and most of the gain on JSON.
const LEVEL: i32 = 3;

/// An entry with wall-clock times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub stored_at_ms: u64,
    pub ttl_ms: u64,
    pub stale_ms: u64,
    pub labels: Labels,
    pub response: CachedResponse,
}

impl Record {
    /// When it can no longer be served, even stale, in Unix milliseconds.
    pub fn expires_at_ms(&self) -> u64 {
        self.stored_at_ms
            .saturating_add(self.ttl_ms)
            .saturating_add(self.stale_ms)
    }

    pub fn life(&self) -> Lifetime {
        Lifetime {
            ttl: std::time::Duration::from_millis(self.ttl_ms),
            stale: std::time::Duration::from_millis(self.stale_ms),
        }
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Record {
    /// A record of `response`, stored at `stored_at_ms` with `life` and `labels`.
    pub fn new(
        response: CachedResponse,
        stored_at_ms: u64,
        life: Lifetime,
        labels: Labels,
    ) -> Self {
        Record {
            stored_at_ms,
            ttl_ms: millis(life.ttl),
            stale_ms: millis(life.stale),
            labels,
            response,
        }
    }
}

/// An encoded record and what compression did to its body.
#[derive(Debug)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    /// Body bytes before and after compression (equal when it was not compressed).
    pub body_raw: usize,
    pub body_stored: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("not a flowgate cache record")]
    Magic,
    #[error("record version {0}, this gateway reads version {VERSION}")]
    Version(u8),
    #[error("truncated record")]
    Truncated,
    #[error("corrupt compressed body")]
    Body,
}

/// Encodes `r`, compressing a body of more than `compress_above` bytes when that saves space.
pub fn encode(r: &Record, compress_above: usize) -> Encoded {
    let body = &r.response.body;
    let compressed = (body.len() > compress_above)
        .then(|| compress(body))
        .flatten()
        .filter(|c| c.len() < body.len());
    let stored: &[u8] = compressed.as_deref().unwrap_or(body);
    let fields: usize = r
        .response
        .headers
        .iter()
        .map(|(n, v)| 6 + n.len() + v.len())
        .sum();
    let mut out = Vec::with_capacity(48 + fields + stored.len());
    out.put_slice(MAGIC);
    out.put_u8(VERSION);
    out.put_u8(if compressed.is_some() { ZSTD } else { 0 });
    out.put_u64_le(r.stored_at_ms);
    out.put_u64_le(r.ttl_ms);
    out.put_u64_le(r.stale_ms);
    out.put_u16_le(r.response.status);
    out.put_u64_le(r.response.usage.prompt_tokens);
    out.put_u64_le(r.response.usage.completion_tokens);
    let headers = &r.response.headers[..r.response.headers.len().min(usize::from(u16::MAX))];
    out.put_u16_le(headers.len() as u16);
    for (name, value) in headers {
        let name = &name.as_bytes()[..name.len().min(usize::from(u16::MAX))];
        out.put_u16_le(name.len() as u16);
        out.put_slice(name);
        out.put_u32_le(u32::try_from(value.len()).unwrap_or(u32::MAX));
        out.put_slice(value);
    }
    put_short(&mut out, r.labels.category.as_deref().unwrap_or(""));
    let tags = &r.labels.tags[..r.labels.tags.len().min(usize::from(u16::MAX))];
    out.put_u16_le(tags.len() as u16);
    for t in tags {
        put_short(&mut out, t);
    }
    out.put_u32_le(u32::try_from(body.len()).unwrap_or(u32::MAX));
    out.put_slice(stored);
    Encoded {
        bytes: out,
        body_raw: body.len(),
        body_stored: stored.len(),
    }
}

/// Raw body bytes per stored byte (1 when nothing was written).
/// The body bytes a tier wrote, before and after compression.
#[derive(Debug, Default)]
pub struct BodyBytes {
    raw: AtomicU64,
    stored: AtomicU64,
}

impl BodyBytes {
    /// Counts a written entry.
    pub fn add(&self, e: &Encoded) {
        self.raw.fetch_add(e.body_raw as u64, Ordering::Relaxed);
        self.stored
            .fetch_add(e.body_stored as u64, Ordering::Relaxed);
    }

    /// Raw and stored bytes so far.
    pub fn get(&self) -> (u64, u64) {
        (
            self.raw.load(Ordering::Relaxed),
            self.stored.load(Ordering::Relaxed),
        )
    }
}

pub fn compression_ratio(raw: u64, stored: u64) -> f64 {
    if stored == 0 {
        1.0
    } else {
        raw as f64 / stored as f64
    }
}

/// A string of at most 64 KiB, with its length.
fn put_short(out: &mut Vec<u8>, s: &str) {
    let s = &s.as_bytes()[..s.len().min(usize::from(u16::MAX))];
    out.put_u16_le(s.len() as u16);
    out.put_slice(s);
}

/// When the record in `b` can no longer be served, read from its header alone (the body
/// is not decoded).
pub fn expires_at_ms(b: &[u8]) -> Option<u64> {
    if b.len() < 28 || &b[..2] != MAGIC || b[2] != VERSION {
        return None;
    }
    let word = |at: usize| b[at..at + 8].try_into().ok().map(u64::from_le_bytes);
    Some(word(4)?.saturating_add(word(12)?).saturating_add(word(20)?))
}

/// zstd with a content checksum, so that a damaged value is an error rather than wrong text.
fn compress(body: &[u8]) -> Option<Vec<u8>> {
    let mut c = zstd::bulk::Compressor::new(LEVEL).ok()?;
    c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
        .ok()?;
    c.compress(body).ok()
}

/// Everything of a record before its body.
struct Head {
    flags: u8,
    stored_at_ms: u64,
    ttl_ms: u64,
    stale_ms: u64,
    status: u16,
    usage: Usage,
    headers: Vec<(String, Bytes)>,
    labels: Labels,
}

fn need(b: &[u8], n: usize) -> Result<(), DecodeError> {
    if b.remaining() < n {
        Err(DecodeError::Truncated)
    } else {
        Ok(())
    }
}

fn short(b: &mut &[u8]) -> Result<String, DecodeError> {
    need(b, 2)?;
    let n = usize::from(b.get_u16_le());
    need(b, n)?;
    let s = String::from_utf8_lossy(&b[..n]).into_owned();
    b.advance(n);
    Ok(s)
}

/// Reads the head of a record, leaving `b` at its body length.
fn read_head(b: &mut &[u8]) -> Result<Head, DecodeError> {
    if b.len() < 4 || &b[..2] != MAGIC {
        return Err(DecodeError::Magic);
    }
    if b[2] != VERSION {
        return Err(DecodeError::Version(b[2]));
    }
    let flags = b[3];
    b.advance(4);
    need(b, 8 + 8 + 8 + 2 + 8 + 8 + 2)?;
    let stored_at_ms = b.get_u64_le();
    let ttl_ms = b.get_u64_le();
    let stale_ms = b.get_u64_le();
    let status = b.get_u16_le();
    let usage = Usage {
        prompt_tokens: b.get_u64_le(),
        completion_tokens: b.get_u64_le(),
        // A stored answer keeps what a new call would cost at the input price.
        ..Usage::default()
    };
    let count = b.get_u16_le();
    let mut headers = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        need(b, 2)?;
        let n = usize::from(b.get_u16_le());
        need(b, n + 4)?;
        let name = String::from_utf8_lossy(&b[..n]).into_owned();
        b.advance(n);
        let v = b.get_u32_le() as usize;
        need(b, v)?;
        headers.push((name, Bytes::copy_from_slice(&b[..v])));
        b.advance(v);
    }
    let category = Some(short(b)?).filter(|c| !c.is_empty());
    need(b, 2)?;
    let count = b.get_u16_le();
    let mut tags = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        tags.push(short(b)?);
    }
    Ok(Head {
        flags,
        stored_at_ms,
        ttl_ms,
        stale_ms,
        status,
        usage,
        headers,
        labels: Labels { category, tags },
    })
}

/// The labels of the record in `b`, without decoding its body.
pub fn labels(mut b: &[u8]) -> Option<Labels> {
    read_head(&mut b).ok().map(|h| h.labels)
}

/// Decodes a record written by [`encode`].
pub fn decode(mut b: &[u8]) -> Result<Record, DecodeError> {
    let head = read_head(&mut b)?;
    need(b, 4)?;
    let body_len = b.get_u32_le() as usize;
    let body = if head.flags & ZSTD != 0 {
        let raw = zstd::bulk::decompress(b, body_len).map_err(|_| DecodeError::Body)?;
        if raw.len() != body_len {
            return Err(DecodeError::Body);
        }
        Bytes::from(raw)
    } else {
        if b.len() != body_len {
            return Err(DecodeError::Truncated);
        }
        Bytes::copy_from_slice(b)
    };
    Ok(Record {
        stored_at_ms: head.stored_at_ms,
        ttl_ms: head.ttl_ms,
        stale_ms: head.stale_ms,
        labels: head.labels,
        response: CachedResponse {
            status: head.status,
            headers: head.headers,
            body,
            usage: head.usage,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(body: Vec<u8>) -> Record {
        Record {
            stored_at_ms: 1_767_225_600_000,
            ttl_ms: 3_600_000,
            stale_ms: 60_000,
            labels: Labels {
                category: Some("cost-analysis".into()),
                tags: vec!["tenant:7".into(), "report".into()],
            },
            response: CachedResponse {
                status: 200,
                headers: vec![
                    ("openai-model".into(), Bytes::from_static(b"gpt-4o-mini")),
                    ("x-empty".into(), Bytes::new()),
                ],
                body: Bytes::from(body),
                usage: Usage {
                    prompt_tokens: 12,
                    completion_tokens: 34,
                    ..Usage::default()
                },
            },
        }
    }

    #[test]
    fn records_round_trip_compressed_or_not() {
        let small = record(b"{\"a\":1}".to_vec());
        let e = encode(&small, 1024);
        assert_eq!(e.body_stored, e.body_raw);
        assert_eq!(decode(&e.bytes).unwrap(), small);

        let big = record(b"{\"content\":\"the same words \"}".repeat(200));
        let e = encode(&big, 1024);
        assert!(
            e.body_stored * 5 < e.body_raw,
            "{} {}",
            e.body_stored,
            e.body_raw
        );
        assert_eq!(decode(&e.bytes).unwrap(), big);
        assert_eq!(big.expires_at_ms(), 1_767_229_260_000);
        assert_eq!(expires_at_ms(&e.bytes), Some(big.expires_at_ms()));
        assert_eq!(expires_at_ms(&e.bytes[..27]), None);
        assert_eq!(labels(&e.bytes), Some(big.labels.clone()));
        let mut plain = small;
        plain.labels = Labels::default();
        assert_eq!(decode(&encode(&plain, 1024).bytes).unwrap(), plain);
    }

    #[test]
    fn damaged_or_foreign_records_are_errors_not_panics() {
        let e = encode(&record(b"x".repeat(5000)), 16).bytes;
        for cut in [0, 3, 10, 40, e.len() - 1] {
            assert!(decode(&e[..cut]).is_err(), "{cut}");
        }
        let mut v1 = e.clone();
        v1[2] = 1;
        assert_eq!(decode(&v1), Err(DecodeError::Version(1)));
        assert_eq!(decode(b"{\"json\":1}"), Err(DecodeError::Magic));
        let mut flipped = e;
        let last = flipped.len() - 3;
        flipped[last] ^= 0xff;
        assert!(decode(&flipped).is_err());
    }
}
