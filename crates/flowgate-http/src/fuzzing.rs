//! Entry points for fuzzing the parsers that read what peers send: request heads, response
//! heads and chunked bodies. Each takes arbitrary bytes, must never panic, and checks what
//! must hold of whatever it accepts. `fuzz/` (cargo-fuzz) drives them with libFuzzer; the
//! stable test `crates/flowgate-gateway/tests/fuzz_corpus.rs` replays the saved corpus and a bounded random run in
//! every test run (docs/testing.md).

use std::time::Duration;

use bytes::BytesMut;

use crate::chunked::{Chunk, Decoder, Step};
use crate::fields::Names;
use crate::server::Limits;

/// Parses `data` as the start of a client connection: request heads one after another.
pub fn request_head(data: &[u8]) {
    let limits = Limits {
        max_header_bytes: 8 * 1024,
        max_headers: 64,
        header_read_timeout: Duration::from_secs(10),
        body_read_timeout: Duration::from_secs(10),
        send_timeout: Duration::from_secs(10),
    };
    let mut buf = BytesMut::from(data);
    let mut names = Names::default();
    // A few heads in a row, as pipelined requests come: the names cache must not carry a
    // wrong name from one to the next.
    for _ in 0..4 {
        match crate::server::parse_for_fuzzing(&mut buf, &limits, &mut names) {
            Ok(Some(req)) => {
                let h = req.headers();
                for hop in [
                    "connection",
                    "transfer-encoding",
                    "keep-alive",
                    "te",
                    "upgrade",
                ] {
                    assert!(!h.contains_key(hop), "hop-by-hop {hop} kept");
                }
                if req.version() == http::Version::HTTP_11 {
                    assert_eq!(h.get_all("host").iter().count(), 1, "one Host");
                }
            }
            Ok(None) | Err(_) => return,
        }
    }
}

/// Parses `data` as what an upstream sends: a response head (interim ones skipped), then
/// its body decoded as the head frames it.
pub fn response_head(data: &[u8]) {
    let (head_request, data) = match data.split_first() {
        Some((first, rest)) => (first & 1 == 1, rest),
        None => return,
    };
    let mut buf = BytesMut::from(data);
    let Ok(Some((decoder, keep_alive))) = crate::client::parse_for_fuzzing(&mut buf, head_request)
    else {
        return;
    };
    if matches!(decoder, Decoder::Eof) {
        assert!(!keep_alive, "a body to the end cannot keep the connection");
    }
    drain(decoder, &mut buf);
}

/// Decodes `data` as a chunked body, whole and cut in two at a place the first byte picks:
/// the same bytes and the same end either way.
pub fn chunked(data: &[u8]) {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let whole = decode(body, &[body.len()]);
    let at = usize::from(cut) % (body.len() + 1);
    let split = decode(body, &[at, body.len()]);
    assert_eq!(whole, split, "cut at {at}");
}

/// Steps `decoder` over `buf` until it needs more, ends or fails; how many bytes it gave.
fn drain(mut decoder: Decoder, buf: &mut BytesMut) -> usize {
    let mut given = 0;
    for _ in 0..buf.len() + 2 {
        match decoder.step(buf) {
            Step::Data(b) => given += b.len(),
            _ => break,
        }
    }
    given
}

/// The data and end of a chunked body fed in pieces ending at `ends`.
fn decode(body: &[u8], ends: &[usize]) -> (Vec<u8>, String) {
    let mut d = Decoder::Chunked(Chunk::Size);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut from = 0;
    for &end in ends {
        buf.extend_from_slice(&body[from..end]);
        from = end;
        loop {
            match d.step(&mut buf) {
                Step::Data(b) => out.extend_from_slice(&b),
                Step::NeedMore => break,
                Step::End => return (out, "end".into()),
                Step::Error(_) => return (out, "error".into()),
            }
        }
    }
    (out, "more".into())
}
