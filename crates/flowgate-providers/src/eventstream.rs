//! AWS's event-stream framing (`application/vnd.amazon.eventstream`), in which Bedrock
//! streams its answers: binary messages, each
//!
//! ```text
//! total length (u32) | headers length (u32) | prelude CRC32 (u32)
//! headers | payload | message CRC32 (u32)
//! ```
//!
//! big-endian, the prelude CRC over the first 8 bytes and the message CRC over everything
//! before it. A header is a name (u8 length), a type byte and a value of that type.
//! [`Decoder`] takes bytes as they arrive and gives back whole, checked messages; anything
//! malformed is a [`DecodeError`], never a panic. [`encode`] writes messages (for the
//! simulator and the tests).

use std::fmt;

/// The largest message accepted (AWS's limit).
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// The largest headers section accepted (AWS's limit).
pub const MAX_HEADERS: usize = 128 * 1024;
const PRELUDE: usize = 12;
/// Prelude and message CRC.
const OVERHEAD: usize = PRELUDE + 4;

/// A header's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Bool(bool),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Bytes(Vec<u8>),
    String(String),
    /// Milliseconds since the epoch.
    Timestamp(i64),
    Uuid([u8; 16]),
}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub headers: Vec<(String, Value)>,
    pub payload: Vec<u8>,
}

impl Message {
    /// The string value of header `name` (`:event-type`, `:message-type`...).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(n, v)| match v {
            Value::String(s) if n == name => Some(s.as_str()),
            _ => None,
        })
    }
}

/// Why the stream cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// A message claims a length outside what the format allows.
    Length {
        total: usize,
        headers: usize,
    },
    PreludeCrc,
    MessageCrc,
    /// A header that runs past its section, or of an unknown type.
    Header(String),
    /// The stream ended inside a message.
    Truncated(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Length { total, headers } => write!(
                f,
                "an event-stream message of {total} bytes with {headers} bytes of headers"
            ),
            DecodeError::PreludeCrc => f.write_str("an event-stream prelude fails its CRC"),
            DecodeError::MessageCrc => f.write_str("an event-stream message fails its CRC"),
            DecodeError::Header(why) => write!(f, "a bad event-stream header: {why}"),
            DecodeError::Truncated(n) => {
                write!(f, "the event stream ended {n} bytes into a message")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Reads messages out of a byte stream.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    failed: Option<DecodeError>,
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Decoder {
    pub fn new() -> Self {
        Decoder::default()
    }

    /// Adds `bytes`; the messages they complete. Once a message fails, every later call
    /// fails the same way (the stream cannot be resynchronized).
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Message>, DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut at = 0;
        let result = loop {
            let rest = &self.buf[at..];
            if rest.len() < PRELUDE {
                break Ok(());
            }
            let total = be32(&rest[0..4]) as usize;
            let headers = be32(&rest[4..8]) as usize;
            if !(OVERHEAD..=MAX_MESSAGE).contains(&total)
                || headers > MAX_HEADERS
                || headers > total - OVERHEAD
            {
                break Err(DecodeError::Length { total, headers });
            }
            if crc32fast::hash(&rest[0..8]) != be32(&rest[8..12]) {
                break Err(DecodeError::PreludeCrc);
            }
            if rest.len() < total {
                break Ok(());
            }
            let msg = &rest[..total];
            if crc32fast::hash(&msg[..total - 4]) != be32(&msg[total - 4..]) {
                break Err(DecodeError::MessageCrc);
            }
            let headers_bytes = &msg[PRELUDE..PRELUDE + headers];
            match parse_headers(headers_bytes) {
                Ok(h) => out.push(Message {
                    headers: h,
                    payload: msg[PRELUDE + headers..total - 4].to_vec(),
                }),
                Err(e) => break Err(e),
            }
            at += total;
        };
        self.buf.drain(..at);
        match result {
            Ok(()) => Ok(out),
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    /// At the end of the stream: an error when it stopped inside a message.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match (&self.failed, self.buf.len()) {
            (Some(e), _) => Err(e.clone()),
            (None, 0) => Ok(()),
            (None, n) => Err(DecodeError::Truncated(n)),
        }
    }
}

fn parse_headers(mut b: &[u8]) -> Result<Vec<(String, Value)>, DecodeError> {
    let bad = |why: &str| DecodeError::Header(why.to_string());
    let take = |b: &mut &[u8], n: usize| -> Result<Vec<u8>, DecodeError> {
        if b.len() < n {
            return Err(bad("runs past the headers"));
        }
        let (head, tail) = b.split_at(n);
        *b = tail;
        Ok(head.to_vec())
    };
    let mut out = Vec::new();
    while !b.is_empty() {
        let len = take(&mut b, 1)?[0] as usize;
        let name =
            String::from_utf8(take(&mut b, len)?).map_err(|_| bad("a name that is not UTF-8"))?;
        let kind = take(&mut b, 1)?[0];
        let num = |v: Vec<u8>| v.iter().fold(0u64, |a, &x| (a << 8) | u64::from(x));
        let value = match kind {
            0 => Value::Bool(true),
            1 => Value::Bool(false),
            2 => Value::Byte(take(&mut b, 1)?[0] as i8),
            3 => Value::Short(num(take(&mut b, 2)?) as u16 as i16),
            4 => Value::Int(num(take(&mut b, 4)?) as u32 as i32),
            5 => Value::Long(num(take(&mut b, 8)?) as i64),
            6 | 7 => {
                let n = num(take(&mut b, 2)?) as usize;
                let v = take(&mut b, n)?;
                if kind == 6 {
                    Value::Bytes(v)
                } else {
                    Value::String(
                        String::from_utf8(v).map_err(|_| bad("a string that is not UTF-8"))?,
                    )
                }
            }
            8 => Value::Timestamp(num(take(&mut b, 8)?) as i64),
            9 => {
                let v = take(&mut b, 16)?;
                let mut u = [0u8; 16];
                u.copy_from_slice(&v);
                Value::Uuid(u)
            }
            t => return Err(bad(&format!("unknown type {t}"))),
        };
        out.push((name, value));
    }
    Ok(out)
}

/// One message, framed and checksummed.
pub fn encode(headers: &[(&str, Value)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len().min(255) as u8);
        h.extend_from_slice(&name.as_bytes()[..name.len().min(255)]);
        match value {
            Value::Bool(true) => h.push(0),
            Value::Bool(false) => h.push(1),
            Value::Byte(v) => h.extend([2, *v as u8]),
            Value::Short(v) => {
                h.push(3);
                h.extend(v.to_be_bytes());
            }
            Value::Int(v) => {
                h.push(4);
                h.extend(v.to_be_bytes());
            }
            Value::Long(v) => {
                h.push(5);
                h.extend(v.to_be_bytes());
            }
            Value::Bytes(v) => {
                h.push(6);
                h.extend((v.len() as u16).to_be_bytes());
                h.extend_from_slice(v);
            }
            Value::String(s) => {
                h.push(7);
                h.extend((s.len() as u16).to_be_bytes());
                h.extend_from_slice(s.as_bytes());
            }
            Value::Timestamp(v) => {
                h.push(8);
                h.extend(v.to_be_bytes());
            }
            Value::Uuid(u) => {
                h.push(9);
                h.extend_from_slice(u);
            }
        }
    }
    let total = OVERHEAD + h.len() + payload.len();
    let mut out = Vec::with_capacity(total);
    out.extend((total as u32).to_be_bytes());
    out.extend((h.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend(prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend(crc.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(payload: &str) -> Vec<u8> {
        encode(
            &[
                (":event-type", Value::String("chunk".into())),
                (":content-type", Value::String("application/json".into())),
                (":message-type", Value::String("event".into())),
            ],
            payload.as_bytes(),
        )
    }

    #[test]
    fn the_crc_is_the_iso_hdlc_one_aws_uses() {
        // The CRC-32 check value (ISO-HDLC, as zlib's), which the event-stream CRCs are.
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn an_empty_message_is_sixteen_bytes_with_its_crcs() {
        let m = encode(&[], b"");
        assert_eq!(m.len(), 16);
        assert_eq!(&m[..8], &[0, 0, 0, 16, 0, 0, 0, 0]);
        assert_eq!(&m[8..12], &crc32fast::hash(&m[..8]).to_be_bytes());
        assert_eq!(&m[12..], &crc32fast::hash(&m[..12]).to_be_bytes());
        assert_eq!(
            Decoder::new().push(&m).unwrap(),
            [Message {
                headers: vec![],
                payload: vec![]
            }]
        );
    }

    #[test]
    fn messages_split_anywhere_come_out_whole_with_every_header_type() {
        let headers = [
            ("t", Value::Bool(true)),
            ("f", Value::Bool(false)),
            ("b", Value::Byte(-3)),
            ("s", Value::Short(-300)),
            ("i", Value::Int(-70_000)),
            ("l", Value::Long(-5_000_000_000)),
            ("bytes", Value::Bytes(vec![0, 1, 255])),
            ("str", Value::String("é".into())),
            ("ts", Value::Timestamp(1_700_000_000_000)),
            ("id", Value::Uuid([7; 16])),
        ];
        let mut stream = encode(&headers, b"{\"bytes\":\"e30=\"}");
        stream.extend(chunk("{}"));
        for cut in 0..stream.len() {
            let mut d = Decoder::new();
            let mut got = d.push(&stream[..cut]).unwrap();
            got.extend(d.push(&stream[cut..]).unwrap());
            assert!(d.finish().is_ok());
            assert_eq!(got.len(), 2, "cut at {cut}");
            let want: Vec<(String, Value)> = headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect();
            assert_eq!(got[0].headers, want);
            assert_eq!(got[1].header(":event-type"), Some("chunk"));
            assert_eq!(got[1].payload, b"{}");
        }
    }

    #[test]
    fn frames_made_by_another_implementation_decode() {
        // `fuzz/corpus/eventstream/*` were written by a separate encoder (Python's `struct`
        // and zlib's CRC-32), after a first byte that is the fuzz target's cut point.
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fuzz/corpus/eventstream/"
        );
        let exc = std::fs::read(format!("{dir}exception")).unwrap();
        let m = Decoder::new().push(&exc[1..]).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].header(":message-type"), Some("exception"));
        assert_eq!(m[0].header(":exception-type"), Some("throttlingException"));
        assert!(
            m[0].payload
                .starts_with(b"{\"message\":\"Too many requests")
        );
        let chunk = std::fs::read(format!("{dir}chunk")).unwrap();
        let m = Decoder::new().push(&chunk[1..]).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].header(":event-type"), Some("chunk"));
        let headers = std::fs::read(format!("{dir}headers")).unwrap();
        let m = Decoder::new().push(&headers[1..]).unwrap();
        assert_eq!(m[0].headers[1], ("i".to_string(), Value::Int(-5)));
    }

    #[test]
    fn damage_is_an_error_never_a_panic() {
        let good = chunk("{\"bytes\":\"AA==\"}");
        let mut bad_body = good.clone();
        let n = bad_body.len();
        bad_body[n - 6] ^= 1;
        assert_eq!(Decoder::new().push(&bad_body), Err(DecodeError::MessageCrc));
        let mut bad_prelude = good.clone();
        bad_prelude[9] ^= 1;
        assert_eq!(
            Decoder::new().push(&bad_prelude),
            Err(DecodeError::PreludeCrc)
        );
        let mut huge = good.clone();
        huge[0] = 0xff;
        assert!(matches!(
            Decoder::new().push(&huge),
            Err(DecodeError::Length { .. })
        ));
        let mut d = Decoder::new();
        assert_eq!(d.push(&good[..good.len() - 1]).unwrap(), []);
        assert_eq!(d.finish(), Err(DecodeError::Truncated(good.len() - 1)));
        // A header that claims more than its section holds.
        let mut h = encode(&[("x", Value::String("abc".into()))], b"");
        h[12 + 1 + 1 + 1 + 1] = 200; // the string's length, low byte
        let crc_at = h.len() - 4;
        let crc = crc32fast::hash(&h[..crc_at]);
        h[crc_at..].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            Decoder::new().push(&h),
            Err(DecodeError::Header(_))
        ));
        // After a failure, the stream stays failed.
        let mut d = Decoder::new();
        assert!(d.push(&bad_body).is_err());
        assert!(d.push(&good).is_err());
    }
}
