//! A ledger row: what one bucket of time (a minute or an hour) holds for one combination
//! of key, team, route, model and provider, and how it is written in the store.

use std::sync::Arc;

use rust_decimal::Decimal;

use crate::usage::Usage;

/// What spend is grouped by. An empty name is "none" (no key: `[auth]` off; no model: a
/// request that names none).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Dims {
    pub key: Arc<str>,
    pub team: Arc<str>,
    pub route: Arc<str>,
    pub model: Arc<str>,
    pub provider: Arc<str>,
}

/// One of [`Dims`]' members, to group or filter by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dim {
    Key,
    Team,
    Route,
    Model,
    Provider,
}

impl Dim {
    pub const ALL: [Dim; 5] = [Dim::Key, Dim::Team, Dim::Route, Dim::Model, Dim::Provider];

    pub fn as_str(self) -> &'static str {
        match self {
            Dim::Key => "key",
            Dim::Team => "team",
            Dim::Route => "route",
            Dim::Model => "model",
            Dim::Provider => "provider",
        }
    }

    pub fn parse(s: &str) -> Option<Dim> {
        Dim::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

impl Dims {
    pub fn get(&self, d: Dim) -> &str {
        match d {
            Dim::Key => &self.key,
            Dim::Team => &self.team,
            Dim::Route => &self.route,
            Dim::Model => &self.model,
            Dim::Provider => &self.provider,
        }
    }

    fn parts(&self) -> [&str; 5] {
        [
            &self.key,
            &self.team,
            &self.route,
            &self.model,
            &self.provider,
        ]
    }
}

/// Sums over the requests of a bucket (or of a query's window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Totals {
    pub requests: u64,
    /// Of them, priced from estimated tokens (a stream cut short, no usage reported).
    pub estimated: u64,
    /// Of them, answered from flowgate's cache (cost nothing, saved `saved_usd`).
    pub cache_hits: u64,
    /// Prompt tokens neither read from nor written to the provider's prompt cache.
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    /// Spent upstream, in US dollars.
    #[serde(with = "usd")]
    pub usd: Decimal,
    /// What flowgate's cache saved: the answers it gave priced as new calls.
    #[serde(with = "usd")]
    pub saved_usd: Decimal,
    /// Of the requests answered upstream, those that set `max_tokens`; the sum of what
    /// they asked, of what they used (answer tokens), and the most one used.
    pub capped_requests: u64,
    pub max_tokens_asked: u64,
    pub capped_output_tokens: u64,
    pub max_output_tokens: u64,
}

/// Dollars as a JSON string holding the exact decimal (a JSON number would be read as a
/// float by most clients).
mod usd {
    use rust_decimal::Decimal;

    pub fn serialize<S: serde::Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&d.normalize())
    }
}

impl Totals {
    /// One request's: its usage, whether it was estimated, what it cost, and whether
    /// flowgate's cache answered it (then `usd` is what it saved).
    pub fn of(usage: &Usage, estimated: bool, usd: Decimal, hit: bool) -> Totals {
        Totals {
            requests: 1,
            estimated: u64::from(estimated),
            cache_hits: u64::from(hit),
            input_tokens: usage.uncached_prompt(),
            output_tokens: usage.completion_tokens,
            cache_read_tokens: usage.cache_read_tokens,
            cache_write_tokens: usage.cache_write_tokens,
            usd: if hit { Decimal::ZERO } else { usd },
            saved_usd: if hit { usd } else { Decimal::ZERO },
            ..Totals::default()
        }
    }

    /// With the `max_tokens` the request asked for (counted for answers from upstream).
    pub fn asked(mut self, max_tokens: Option<u64>) -> Totals {
        if let (Some(m), 0) = (max_tokens, self.cache_hits) {
            self.capped_requests = 1;
            self.max_tokens_asked = m;
            self.capped_output_tokens = self.output_tokens;
            self.max_output_tokens = self.output_tokens;
        }
        self
    }

    pub fn add(&mut self, o: &Totals) {
        for (a, b) in [
            (&mut self.requests, o.requests),
            (&mut self.estimated, o.estimated),
            (&mut self.cache_hits, o.cache_hits),
            (&mut self.input_tokens, o.input_tokens),
            (&mut self.output_tokens, o.output_tokens),
            (&mut self.cache_read_tokens, o.cache_read_tokens),
            (&mut self.cache_write_tokens, o.cache_write_tokens),
            (&mut self.capped_requests, o.capped_requests),
            (&mut self.max_tokens_asked, o.max_tokens_asked),
            (&mut self.capped_output_tokens, o.capped_output_tokens),
        ] {
            *a = a.saturating_add(b);
        }
        self.max_output_tokens = self.max_output_tokens.max(o.max_output_tokens);
        self.usd = self.usd.saturating_add(o.usd);
        self.saved_usd = self.saved_usd.saturating_add(o.saved_usd);
    }
}

/// The format of a stored row (its first byte): 2 added the `max_tokens` counts after the
/// amounts; rows of 1 are still read (without them).
const VERSION: u8 = 2;
const COUNTS: usize = 7;
const V1_LEN: usize = 1 + COUNTS * 8 + 2 * 16;
const CAPPED: usize = 4;
/// A stored row's size: the version, the counts, the two amounts, the `max_tokens` counts.
pub(crate) const TOTALS_LEN: usize = V1_LEN + CAPPED * 8;

pub(crate) fn encode_totals(t: &Totals) -> [u8; TOTALS_LEN] {
    let mut out = [0u8; TOTALS_LEN];
    out[0] = VERSION;
    let counts = [
        t.requests,
        t.estimated,
        t.cache_hits,
        t.input_tokens,
        t.output_tokens,
        t.cache_read_tokens,
        t.cache_write_tokens,
    ];
    for (i, c) in counts.iter().enumerate() {
        out[1 + i * 8..9 + i * 8].copy_from_slice(&c.to_le_bytes());
    }
    let at = 1 + COUNTS * 8;
    out[at..at + 16].copy_from_slice(&t.usd.serialize());
    out[at + 16..V1_LEN].copy_from_slice(&t.saved_usd.serialize());
    let capped = [
        t.capped_requests,
        t.max_tokens_asked,
        t.capped_output_tokens,
        t.max_output_tokens,
    ];
    for (i, c) in capped.iter().enumerate() {
        out[V1_LEN + i * 8..V1_LEN + 8 + i * 8].copy_from_slice(&c.to_le_bytes());
    }
    out
}

/// A stored row; `None` when it is not one this version wrote.
pub(crate) fn decode_totals(b: &[u8]) -> Option<Totals> {
    match (b.first(), b.len()) {
        (Some(1), V1_LEN) | (Some(&VERSION), TOTALS_LEN) => {}
        _ => return None,
    }
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let count = |i: usize| word(1 + i * 8);
    let capped = |i: usize| {
        if b.len() == TOTALS_LEN {
            word(V1_LEN + i * 8)
        } else {
            0
        }
    };
    let amount = |at: usize| {
        let mut w = [0u8; 16];
        w.copy_from_slice(&b[at..at + 16]);
        Decimal::deserialize(w)
    };
    let at = 1 + COUNTS * 8;
    Some(Totals {
        requests: count(0),
        estimated: count(1),
        cache_hits: count(2),
        input_tokens: count(3),
        output_tokens: count(4),
        cache_read_tokens: count(5),
        cache_write_tokens: count(6),
        usd: amount(at),
        saved_usd: amount(at + 16),
        capped_requests: capped(0),
        max_tokens_asked: capped(1),
        capped_output_tokens: capped(2),
        max_output_tokens: capped(3),
    })
}

/// A row's key: the bucket's start (Unix seconds, big-endian, so that rows sort by time
/// and a time range is a key range), then each name with its length.
pub(crate) fn encode_key(bucket: u64, dims: &Dims) -> Vec<u8> {
    let parts = dims.parts();
    let mut out = Vec::with_capacity(8 + parts.iter().map(|p| 2 + p.len()).sum::<usize>());
    out.extend_from_slice(&bucket.to_be_bytes());
    for p in parts {
        // Names are config names and model names: far below 64 KiB; longer is cut.
        let p = &p.as_bytes()[..p.len().min(usize::from(u16::MAX))];
        out.extend_from_slice(&(p.len() as u16).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

pub(crate) fn decode_key(b: &[u8]) -> Option<(u64, Dims)> {
    let (bucket, mut rest) = b.split_at_checked(8)?;
    let bucket = u64::from_be_bytes(bucket.try_into().ok()?);
    let mut names: [Arc<str>; 5] = Default::default();
    for n in &mut names {
        let (len, r) = rest.split_at_checked(2)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let (name, r) = r.split_at_checked(len)?;
        *n = Arc::from(std::str::from_utf8(name).ok()?);
        rest = r;
    }
    let [key, team, route, model, provider] = names;
    rest.is_empty().then_some((
        bucket,
        Dims {
            key,
            team,
            route,
            model,
            provider,
        },
    ))
}

/// The first key of `bucket` (every row of it sorts at or after it).
pub(crate) fn bucket_start(bucket: u64) -> [u8; 8] {
    bucket.to_be_bytes()
}
