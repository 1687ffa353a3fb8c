//! Server-sent events read incrementally (the WHATWG event-stream format): bytes go in as
//! they arrive, whole events come out. Fields other than `event` and `data` are ignored;
//! multi-line data is joined with `\n`; a line may end in LF, CRLF or CR.

use bytes::{Buf, BytesMut};

/// One event: its type (`message` when unnamed) and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event: String,
    pub data: String,
}

/// Reads events out of a byte stream.
#[derive(Debug, Default)]
pub struct Reader {
    buf: BytesMut,
    event: Option<String>,
    data: Option<String>,
    /// The last byte read was a CR: a following LF belongs to it.
    after_cr: bool,
}

/// An event larger than this is an error (a stream that never ends a line).
pub const MAX_EVENT: usize = 4 * 1024 * 1024;

/// The stream broke the format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("an event of more than {MAX_EVENT} bytes")]
    TooLarge,
    #[error("an event that is not UTF-8")]
    NotUtf8,
}

impl Reader {
    /// Adds `bytes`; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Event>, SseError> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            if self.after_cr {
                match self.buf.first() {
                    // The LF of a CRLF that came in two pieces.
                    Some(b'\n') => self.buf.advance(1),
                    Some(_) => {}
                    None => break,
                }
                self.after_cr = false;
            }
            let Some(end) = self.buf.iter().position(|&b| b == b'\n' || b == b'\r') else {
                break;
            };
            self.after_cr = self.buf[end] == b'\r';
            let line = self.buf.split_to(end);
            self.buf.advance(1);
            let line = std::str::from_utf8(&line).map_err(|_| SseError::NotUtf8)?;
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    out.push(Event {
                        event: self.event.take().unwrap_or_else(|| "message".into()),
                        data,
                    });
                }
                self.event = None;
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "event" => self.event = Some(value.to_string()),
                "data" => match &mut self.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => self.data = Some(value.to_string()),
                },
                _ => {}
            }
            if self.data.as_ref().map_or(0, String::len) > MAX_EVENT {
                return Err(SseError::TooLarge);
            }
        }
        if self.buf.len() > MAX_EVENT {
            return Err(SseError::TooLarge);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: &str, data: &str) -> Event {
        Event {
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let stream =
            b"event: ping\ndata: {}\n\n: comment\ndata: a\ndata: b\n\nevent: x\r\ndata: y\r\n\r\n";
        for cut in 0..stream.len() {
            let mut r = Reader::default();
            let mut got = r.push(&stream[..cut]).unwrap();
            got.extend(r.push(&stream[cut..]).unwrap());
            assert_eq!(
                got,
                [ev("ping", "{}"), ev("message", "a\nb"), ev("x", "y")],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_line_that_never_ends_is_an_error() {
        let mut r = Reader::default();
        let big = vec![b'a'; MAX_EVENT + 1];
        assert_eq!(r.push(&big), Err(SseError::TooLarge));
    }
}
