//! The HTTP/1.1 body framing both sides share (RFC 9112 §6, §7.1): [`Decoder`] reads a body
//! delimited by its length, by chunks or by the connection's end out of a connection's
//! buffer, one frame per step, so that a streamed body is passed on as it arrives;
//! [`chunk_size_line`] writes the size line of a chunk sent. The listener decodes request
//! bodies with it, the client response bodies.

use bytes::{Buf, Bytes, BytesMut};
use http::StatusCode;

use crate::fields::Framing;

/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;
/// Most bytes of trailer fields accepted after a chunked body.
const MAX_TRAILERS: usize = 8 * 1024;

/// The size line of a chunk of `len` bytes, `{len:x}\r\n`, written into `buf` (for request
/// bodies sent upstream and answers sent to clients).
pub fn chunk_size_line(buf: &mut [u8; 18], len: usize) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut at = 16;
    let mut n = len;
    loop {
        at -= 1;
        buf[at] = HEX[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    buf[16] = b'\r';
    buf[17] = b'\n';
    &buf[at..]
}

/// What one decoding step produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Data(Bytes),
    NeedMore,
    End,
    Error(String),
}

/// Reads a body out of the connection's buffer (RFC 9112 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoder {
    /// This many bytes are left.
    Length(u64),
    Chunked(Chunk),
    /// Delimited by the connection closing.
    Eof,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    /// Reading trailer fields; this many bytes of them so far.
    Trailers(usize),
}

impl Decoder {
    pub(crate) fn for_response(head_request: bool, status: StatusCode, framing: &Framing) -> Self {
        if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            return Decoder::Done;
        }
        match (framing.transfer, framing.length) {
            (Some(true), _) => Decoder::Chunked(Chunk::Size),
            (Some(false), _) | (None, None) => Decoder::Eof,
            (None, Some(0)) => Decoder::Done,
            (None, Some(n)) => Decoder::Length(n),
        }
    }

    /// Whether the body has been read to its end.
    pub fn is_done(&self) -> bool {
        matches!(self, Decoder::Done)
    }

    pub(crate) fn reads_to_eof(&self) -> bool {
        matches!(self, Decoder::Eof)
    }

    /// Exact remaining length, when known.
    pub fn remaining(&self) -> Option<u64> {
        match self {
            Decoder::Length(n) => Some(*n),
            Decoder::Done => Some(0),
            _ => None,
        }
    }

    /// Decodes what `buf` holds: a frame of body data, the end, or a need for more bytes.
    pub fn step(&mut self, buf: &mut BytesMut) -> Step {
        loop {
            match self {
                Decoder::Done => return Step::End,
                Decoder::Length(left) => {
                    if buf.is_empty() {
                        return Step::NeedMore;
                    }
                    let n = (*left).min(buf.len() as u64) as usize;
                    *left -= n as u64;
                    if *left == 0 {
                        *self = Decoder::Done;
                    }
                    return Step::Data(buf.split_to(n).freeze());
                }
                Decoder::Eof => {
                    if buf.is_empty() {
                        return Step::NeedMore;
                    }
                    return Step::Data(buf.split().freeze());
                }
                Decoder::Chunked(state) => match *state {
                    Chunk::Size => {
                        let Some(line) = take_line(buf) else {
                            return too_long(buf, "chunk size line");
                        };
                        let Some(size) = chunk_size(&line) else {
                            return Step::Error(format!(
                                "bad chunk size line {:?}",
                                String::from_utf8_lossy(&line[..line.len().min(64)])
                            ));
                        };
                        *state = if size == 0 {
                            Chunk::Trailers(0)
                        } else {
                            Chunk::Data(size)
                        };
                    }
                    Chunk::Data(left) => {
                        if buf.is_empty() {
                            return Step::NeedMore;
                        }
                        let n = left.min(buf.len() as u64) as usize;
                        *state = if left == n as u64 {
                            Chunk::DataEnd
                        } else {
                            Chunk::Data(left - n as u64)
                        };
                        return Step::Data(buf.split_to(n).freeze());
                    }
                    Chunk::DataEnd => {
                        if buf.len() < 2 {
                            return Step::NeedMore;
                        }
                        if &buf[..2] != b"\r\n" {
                            return Step::Error("chunk data not followed by CRLF".into());
                        }
                        buf.advance(2);
                        *state = Chunk::Size;
                    }
                    Chunk::Trailers(seen) => {
                        let Some(line) = take_line(buf) else {
                            return too_long(buf, "trailer line");
                        };
                        if line.is_empty() {
                            *self = Decoder::Done;
                            continue;
                        }
                        // Trailers are read (never forwarded), held to a size, and each
                        // must be a field: no bare LF can end them early or late and take
                        // the next pipelined request with it.
                        let seen = seen + line.len() + 2;
                        if seen > MAX_TRAILERS {
                            return Step::Error(format!(
                                "trailers larger than {MAX_TRAILERS} bytes"
                            ));
                        }
                        if !is_field_line(&line) {
                            return Step::Error("malformed trailer field".into());
                        }
                        *state = Chunk::Trailers(seen);
                    }
                },
            }
        }
    }

    /// The connection reached end of stream: fine only for bodies delimited by it.
    pub(crate) fn at_eof(&mut self) -> Result<(), String> {
        match self {
            Decoder::Eof | Decoder::Done => {
                *self = Decoder::Done;
                Ok(())
            }
            _ => Err("upstream closed the connection in the middle of the body".into()),
        }
    }
}

/// The size of a chunk size line (RFC 9112 §7.1): 1 to 16 hex digits, then nothing or
/// extensions after optional spaces and a `;`. No sign, no leading space, no CR or LF
/// inside: a line two parsers could read two ways is refused.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|c| c.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return None;
    }
    let rest = &line[digits..];
    let ext = rest.trim_ascii_start();
    let ok = rest.is_empty()
        || (ext.first() == Some(&b';')
            && rest[..rest.len() - ext.len()]
                .iter()
                .all(|c| *c == b' ' || *c == b'\t')
            && !ext.iter().any(|c| *c == b'\r' || *c == b'\n' || *c == 0));
    if !ok {
        return None;
    }
    line[..digits]
        .iter()
        .try_fold(0u64, |n, &d| Some(n << 4 | u64::from(hex_value(d))))
}

fn hex_value(d: u8) -> u8 {
    match d {
        b'0'..=b'9' => d - b'0',
        b'a'..=b'f' => d - b'a' + 10,
        _ => d - b'A' + 10,
    }
}

/// Whether `line` reads as a field: a token name, `:`, a value with no CR, LF or NUL.
fn is_field_line(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|c| *c == b':') else {
        return false;
    };
    colon > 0
        && line[..colon]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(c))
        && !line[colon + 1..]
            .iter()
            .any(|c| *c == b'\r' || *c == b'\n' || *c == 0)
}

/// Takes one CRLF-terminated line off `buf` (without the CRLF).
fn take_line(buf: &mut BytesMut) -> Option<Bytes> {
    let at = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = buf.split_to(at).freeze();
    buf.advance(2);
    Some(line)
}

fn too_long(buf: &BytesMut, what: &str) -> Step {
    if buf.len() > MAX_LINE {
        Step::Error(format!("{what} longer than {MAX_LINE} bytes"))
    } else {
        Step::NeedMore
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(mut d: Decoder, pieces: &[&[u8]]) -> (Vec<u8>, Step) {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for p in pieces {
            buf.extend_from_slice(p);
            loop {
                match d.step(&mut buf) {
                    Step::Data(b) => out.extend_from_slice(&b),
                    Step::NeedMore => break,
                    other => return (out, other),
                }
            }
        }
        (out, Step::NeedMore)
    }

    #[test]
    fn chunked_bodies_decode_across_any_split() {
        let wire = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\n";
        for cut in 0..wire.len() {
            let (body, end) =
                decode_all(Decoder::Chunked(Chunk::Size), &[&wire[..cut], &wire[cut..]]);
            assert_eq!(body, b"hello, world", "cut at {cut}");
            assert_eq!(end, Step::End, "cut at {cut}");
        }
    }

    #[test]
    fn chunk_data_is_passed_on_before_the_chunk_is_complete() {
        let mut d = Decoder::Chunked(Chunk::Size);
        let mut buf = BytesMut::from(&b"a\r\n01234"[..]);
        assert_eq!(d.step(&mut buf), Step::Data(Bytes::from_static(b"01234")));
        assert_eq!(d.step(&mut buf), Step::NeedMore);
    }

    #[test]
    fn chunk_size_lines_are_hex() {
        let mut b = [0u8; 18];
        assert_eq!(chunk_size_line(&mut b, 0x1a2b), b"1a2b\r\n");
        assert_eq!(chunk_size_line(&mut b, 1), b"1\r\n");
        assert_eq!(chunk_size_line(&mut b, usize::MAX), b"ffffffffffffffff\r\n");
    }

    #[test]
    fn bad_chunks_are_errors() {
        let (_, end) = decode_all(Decoder::Chunked(Chunk::Size), &[b"zz\r\n"]);
        assert!(matches!(end, Step::Error(_)));
        let (_, end) = decode_all(Decoder::Chunked(Chunk::Size), &[b"2\r\nabXY"]);
        assert!(matches!(end, Step::Error(_)));
        let (_, end) = decode_all(Decoder::Chunked(Chunk::Size), &[&[b'1'; MAX_LINE + 1]]);
        assert!(matches!(end, Step::Error(_)));
    }

    #[test]
    fn size_lines_two_parsers_could_read_two_ways_are_refused() {
        for bad in [
            &b"+5\r\nhello\r\n0\r\n\r\n"[..],
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5 x\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"5;a\nb\r\nhello\r\n0\r\n\r\n",
            b"11111111111111111\r\n",
        ] {
            let (_, end) = decode_all(Decoder::Chunked(Chunk::Size), &[bad]);
            assert!(
                matches!(end, Step::Error(_)),
                "{:?}: {end:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let (out, end) = decode_all(
            Decoder::Chunked(Chunk::Size),
            &[b"5 ;name=v\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n"],
        );
        assert_eq!((out.as_slice(), end), (&b"hello0123456789"[..], Step::End));
    }

    #[test]
    fn trailers_are_fields_held_to_a_size_and_never_take_the_next_request() {
        // A bare LF after the last chunk is no trailer end: refused, not read on into the
        // pipelined request after it.
        let mut d = Decoder::Chunked(Chunk::Size);
        let mut buf = BytesMut::from(&b"0\r\n\nGET /next HTTP/1.1\r\nhost: a\r\n\r\n"[..]);
        let mut end = d.step(&mut buf);
        while end == Step::NeedMore && !buf.is_empty() {
            end = d.step(&mut buf);
        }
        assert!(matches!(end, Step::Error(_)), "{end:?}");
        let (_, end) = decode_all(
            Decoder::Chunked(Chunk::Size),
            &[b"0\r\nx-checksum: abc\r\n\r\n"],
        );
        assert_eq!(end, Step::End);
        let many: String = (0..300)
            .map(|i| format!("x-{i}: {}\r\n", "v".repeat(30)))
            .collect();
        let (_, end) = decode_all(
            Decoder::Chunked(Chunk::Size),
            &[format!("0\r\n{many}\r\n").as_bytes()],
        );
        assert!(
            matches!(end, Step::Error(ref e) if e.contains("trailers larger")),
            "{end:?}"
        );
    }

    #[test]
    fn length_bodies_stop_at_their_length() {
        let mut d = Decoder::Length(5);
        let mut buf = BytesMut::from(&b"hel"[..]);
        assert_eq!(d.step(&mut buf), Step::Data(Bytes::from_static(b"hel")));
        buf.extend_from_slice(b"loEXTRA");
        assert_eq!(d.step(&mut buf), Step::Data(Bytes::from_static(b"lo")));
        assert_eq!(d.step(&mut buf), Step::End);
        assert_eq!(&buf[..], b"EXTRA");
    }
}
