//! Server-sent events, split as their bytes arrive: the data of each complete event.
//!
//! Lines end in `\n` or `\r\n`; an event's `data:` lines are joined with `\n` (one leading
//! space after the colon dropped); a blank line ends the event; `event:`, `id:`, `retry:`
//! and comments carry nothing the readers here need. A line split across chunks is kept
//! until its end arrives.

/// Splits a stream of server-sent events.
#[derive(Debug, Default)]
pub struct Events {
    /// An incomplete line carried to the next chunk.
    partial: Vec<u8>,
    /// The `data` lines of the current event.
    data: Vec<u8>,
}

impl Events {
    pub fn new() -> Self {
        Self::default()
    }

    /// The data of the next event `input` completes, advancing `input` past what was read;
    /// `None` once `input` is used up (an unfinished line is kept for the next chunk).
    pub fn next(&mut self, input: &mut &[u8]) -> Option<Vec<u8>> {
        while let Some(nl) = input.iter().position(|&b| b == b'\n') {
            let (line, rest) = input.split_at(nl);
            *input = &rest[1..];
            let event = if self.partial.is_empty() {
                self.line(line)
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                let event = self.line(&whole);
                whole.clear();
                self.partial = whole;
                event
            };
            if event.is_some() {
                return event;
            }
        }
        self.partial.extend_from_slice(input);
        *input = &[];
        None
    }

    /// At the end of the stream: the event it ended without a blank line after, if any.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        if !self.partial.is_empty() {
            let last = std::mem::take(&mut self.partial);
            if let Some(event) = self.line(&last) {
                return Some(event);
            }
        }
        (!self.data.is_empty()).then(|| std::mem::take(&mut self.data))
    }

    /// Reads one line; the event's data when the line ends it.
    fn line(&mut self, line: &[u8]) -> Option<Vec<u8>> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return (!self.data.is_empty()).then(|| std::mem::take(&mut self.data));
        }
        if let Some(v) = line.strip_prefix(b"data:") {
            if !self.data.is_empty() {
                self.data.push(b'\n');
            }
            self.data
                .extend_from_slice(v.strip_prefix(b" ").unwrap_or(v));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<String> {
        let mut e = Events::new();
        let mut out = Vec::new();
        for c in chunks {
            let mut input = *c;
            while let Some(d) = e.next(&mut input) {
                out.push(String::from_utf8(d).unwrap());
            }
        }
        out.extend(e.finish().map(|d| String::from_utf8(d).unwrap()));
        out
    }

    #[test]
    fn events_are_split_however_the_bytes_arrive() {
        let stream: &[u8] =
            b"data: a\n\n: comment\nevent: x\ndata:b\r\ndata:  c\r\n\r\n\n\ndata: last";
        let want = ["a", "b\n c", "last"];
        assert_eq!(events(&[stream]), want);
        for cut in 0..stream.len() {
            let (x, y) = stream.split_at(cut);
            assert_eq!(events(&[x, y]), want, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(events(&bytes), want);
        assert!(events(&[b": only a comment\n\n"]).is_empty());
    }
}
