//! Content codings a response may be compressed with, the one a client's
//! `Accept-Encoding` picks among those offered, and the compression itself.

/// A content coding (RFC 9110 §8.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Zstd,
    Br,
    Gzip,
}

impl Encoding {
    pub const ALL: [Encoding; 3] = [Encoding::Zstd, Encoding::Br, Encoding::Gzip];

    /// Its token in `Content-Encoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Zstd => "zstd",
            Encoding::Br => "br",
            Encoding::Gzip => "gzip",
        }
    }

    pub fn parse(s: &str) -> Option<Encoding> {
        Encoding::ALL
            .into_iter()
            .find(|e| e.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// `body` compressed at `level` (each coding's own scale: gzip 1–9, br 0–11, zstd
    /// 1–22; clamped).
    pub fn compress(self, body: &[u8], level: u32) -> Vec<u8> {
        match self {
            Encoding::Gzip => {
                // A window no larger than the body (zlib's 512 B to 32 KiB), as nginx
                // sizes its own: a small answer does not pay for a 32 KiB window.
                let wbits = (usize::BITS - body.len().max(1).leading_zeros()).clamp(9, 15) as u8;
                let mut c =
                    flate2::Compress::new_gzip(flate2::Compression::new(level.clamp(1, 9)), wbits);
                let mut out = Vec::with_capacity(body.len() / 2 + 64);
                loop {
                    let read = usize::try_from(c.total_in()).unwrap_or(usize::MAX);
                    let rest = body.get(read..).unwrap_or_default();
                    match c.compress_vec(rest, &mut out, flate2::FlushCompress::Finish) {
                        Ok(flate2::Status::StreamEnd) => break out,
                        // Out of room: more, and on.
                        Ok(_) => out.reserve(out.capacity().max(64)),
                        Err(_) => break Vec::new(),
                    }
                }
            }
            Encoding::Br => {
                let mut out = Vec::with_capacity(body.len() / 3);
                // A window no larger than the body (at least 1 KiB, brotli's smallest):
                // the default 4 MiB one costs more to set up than a small answer to
                // compress.
                let lgwin = (usize::BITS - body.len().max(1).leading_zeros()).clamp(10, 22);
                let params = brotli::enc::BrotliEncoderParams {
                    quality: level.min(11) as i32,
                    lgwin: lgwin as i32,
                    size_hint: body.len(),
                    ..Default::default()
                };
                let _ = brotli::BrotliCompress(&mut &body[..], &mut out, &params);
                out
            }
            Encoding::Zstd => {
                zstd::bulk::compress(body, level.clamp(1, 22) as i32).unwrap_or_default()
            }
        }
    }
}

/// The coding `accept` (an `Accept-Encoding` value) prefers among `offered` (in the
/// server's order of preference, which breaks ties), or `None`: identity. A coding with
/// `q=0` is refused, `*` stands for the codings not named.
pub fn negotiate(accept: &str, offered: &[Encoding]) -> Option<Encoding> {
    let mut named: Vec<(String, f32)> = Vec::new();
    for part in accept.split(',') {
        let mut it = part.split(';');
        let token = it.next().unwrap_or_default().trim().to_ascii_lowercase();
        if token.is_empty() {
            continue;
        }
        let q = it
            .filter_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .or_else(|| p.trim().strip_prefix("Q="))
            })
            .find_map(|v| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        named.push((token, q));
    }
    let q_of = |e: Encoding| -> f32 {
        named
            .iter()
            .find(|(t, _)| t == e.as_str() || (e == Encoding::Gzip && t == "x-gzip"))
            .or_else(|| named.iter().find(|(t, _)| t == "*"))
            .map_or(0.0, |(_, q)| *q)
    };
    let mut best: Option<(Encoding, f32)> = None;
    for e in offered {
        let q = q_of(*e);
        if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((*e, q));
        }
    }
    best.map(|(e, _)| e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_client_picks_among_what_is_offered() {
        let all = Encoding::ALL;
        assert_eq!(
            negotiate("gzip, deflate, br, zstd", &all),
            Some(Encoding::Zstd)
        );
        assert_eq!(negotiate("gzip, br", &all), Some(Encoding::Br));
        assert_eq!(
            negotiate("gzip;q=1.0, br;q=0.5", &all),
            Some(Encoding::Gzip)
        );
        assert_eq!(
            negotiate("br;q=0, *", &[Encoding::Br, Encoding::Gzip]),
            Some(Encoding::Gzip)
        );
        assert_eq!(negotiate("identity", &all), None);
        assert_eq!(negotiate("", &all), None);
        assert_eq!(negotiate("*;q=0", &all), None);
        assert_eq!(negotiate("x-gzip", &all), Some(Encoding::Gzip));
        assert_eq!(negotiate("gzip", &[Encoding::Zstd]), None);
    }

    #[test]
    fn each_coding_decodes_back_with_a_standard_decoder() {
        let body: Vec<u8> = (0..4096u32)
            .flat_map(|i| format!("{{\"n\":{i}}}").into_bytes())
            .collect();
        let gz = Encoding::Gzip.compress(&body, 6);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, body);
        let br = Encoding::Br.compress(&body, 5);
        let mut back = Vec::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, body);
        let zs = Encoding::Zstd.compress(&body, 3);
        assert_eq!(zstd::decode_all(&zs[..]).unwrap(), body);
        assert!(gz.len() < body.len() / 3 && br.len() < gz.len() && zs.len() < body.len() / 3);
        // Every size, each coding's window fitted to it.
        for n in [0usize, 1, 100, 600, 4096, 70_000] {
            let body = &body.repeat(4)[..n];
            for e in Encoding::ALL {
                let c = e.compress(body, 6);
                let mut back = Vec::new();
                match e {
                    Encoding::Gzip => {
                        flate2::read::GzDecoder::new(&c[..])
                            .read_to_end(&mut back)
                            .unwrap();
                    }
                    Encoding::Br => {
                        brotli::Decompressor::new(&c[..], 4096)
                            .read_to_end(&mut back)
                            .unwrap();
                    }
                    Encoding::Zstd => back = zstd::decode_all(&c[..]).unwrap(),
                }
                assert_eq!(back, body, "{e:?} of {n} bytes");
            }
        }
    }
}
