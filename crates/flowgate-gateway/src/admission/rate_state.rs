//! What a request learned about its rate limits, as OpenAI's `x-ratelimit-*` response
//! fields: the tightest request limit and the tightest token limit.

use std::time::Duration;

use flowgate_config::LimitUnit;
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// `x-ratelimit-{limit,remaining,reset}-` + `requests` and `tokens`.
static FIELDS: [[HeaderName; 3]; 2] = [
    [
        HeaderName::from_static("x-ratelimit-limit-requests"),
        HeaderName::from_static("x-ratelimit-remaining-requests"),
        HeaderName::from_static("x-ratelimit-reset-requests"),
    ],
    [
        HeaderName::from_static("x-ratelimit-limit-tokens"),
        HeaderName::from_static("x-ratelimit-remaining-tokens"),
        HeaderName::from_static("x-ratelimit-reset-tokens"),
    ],
];

/// One limit's state after a request: what it allows, what is left, when it is full again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub limit: HeaderValue,
    pub remaining: u64,
    pub reset: Duration,
}

/// What a request learned about its limits, for its response headers: the tightest
/// request limit and the tightest token limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateState {
    requests: Option<Tally>,
    tokens: Option<Tally>,
}

impl RateState {
    pub(super) fn of(unit: LimitUnit, t: Tally) -> Self {
        let mut s = RateState::default();
        *s.slot(unit) = Some(t);
        s
    }

    fn slot(&mut self, unit: LimitUnit) -> &mut Option<Tally> {
        match unit {
            LimitUnit::Requests => &mut self.requests,
            LimitUnit::Tokens => &mut self.tokens,
        }
    }

    /// Keeps `t` when it leaves less than the tally of its kind so far.
    pub(super) fn tighten(&mut self, unit: LimitUnit, t: impl FnOnce() -> Tally, remaining: u64) {
        let slot = self.slot(unit);
        if slot.as_ref().is_none_or(|s| remaining < s.remaining) {
            *slot = Some(t());
        }
    }

    /// Adds the `x-ratelimit-*` fields.
    pub fn write(&self, h: &mut HeaderMap) {
        for (tally, [limit, remaining, reset]) in [&self.requests, &self.tokens].iter().zip(&FIELDS)
        {
            let Some(t) = tally else { continue };
            h.insert(limit.clone(), t.limit.clone());
            let n = t.remaining;
            h.insert(remaining.clone(), recent(n << 1, || HeaderValue::from(n)));
            let ms = u64::try_from(t.reset.as_millis()).unwrap_or(u64::MAX >> 1);
            h.insert(reset.clone(), recent(ms << 1 | 1, || reset_value(t.reset)));
        }
    }
}

thread_local! {
    /// Header values made recently on this thread, by what they say: a limit's remaining
    /// count and reset time repeat from one response to the next, and making a value
    /// allocates and formats. Direct-mapped: a slot holds the last value of its keys.
    static RECENT: std::cell::RefCell<[(u64, Option<HeaderValue>); 64]> =
        std::cell::RefCell::new(std::array::from_fn(|_| (0, None)));
}

/// The value for `key` (a number shifted left, its low bit saying what it is): a recent
/// one, or `make`'s.
fn recent(key: u64, make: impl FnOnce() -> HeaderValue) -> HeaderValue {
    RECENT.with_borrow_mut(|slots| {
        let slot = &mut slots[(key % 64) as usize];
        match slot {
            (k, Some(v)) if *k == key => v.clone(),
            _ => {
                let v = make();
                *slot = (key, Some(v.clone()));
                v
            }
        }
    })
}

/// OpenAI's reset format: `1s`, `1.5s`, `6m0s`, `120ms`. Written without `format!`: it
/// is on every response of a limited route.
fn reset_value(d: Duration) -> HeaderValue {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let mut text = Text::default();
    if ms < 1000 {
        text.num(ms).push(b"ms");
    } else if ms < 60_000 {
        text.num(ms / 1000);
        let frac = ms % 1000;
        if frac > 0 {
            // 1000 + frac has the fraction's three digits after its leading 1.
            let mut buf = itoa::Buffer::new();
            let digits = &buf.format(1000 + frac).as_bytes()[1..];
            let end = digits.iter().rposition(|&b| b != b'0').map_or(0, |i| i + 1);
            text.push(b".").push(&digits[..end]);
        }
        text.push(b"s");
    } else {
        text.num(ms / 60_000).push(b"m");
        text.num(ms % 60_000 / 1000).push(b"s");
    }
    HeaderValue::from_bytes(text.as_bytes()).unwrap_or(HeaderValue::from_static("0s"))
}

/// A short text built on the stack.
struct Text {
    bytes: [u8; 48],
    len: usize,
}

impl Default for Text {
    fn default() -> Self {
        Text {
            bytes: [0; 48],
            len: 0,
        }
    }
}

impl Text {
    /// Appends `s` (what does not fit is dropped: callers write at most 40 bytes).
    fn push(&mut self, s: &[u8]) -> &mut Self {
        let end = (self.len + s.len()).min(self.bytes.len());
        self.bytes[self.len..end].copy_from_slice(&s[..end - self.len]);
        self.len = end;
        self
    }

    fn num(&mut self, n: u64) -> &mut Self {
        self.push(itoa::Buffer::new().format(n).as_bytes())
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_are_written_as_openai_does() {
        let text = |ms| reset_value(Duration::from_millis(ms));
        for (ms, want) in [
            (0, "0ms"),
            (120, "120ms"),
            (1000, "1s"),
            (1500, "1.5s"),
            (1050, "1.05s"),
            (59_999, "59.999s"),
            (360_000, "6m0s"),
            (u64::MAX, "307445734561825m51s"),
        ] {
            assert_eq!(text(ms), want, "{ms} ms");
        }
    }
}
