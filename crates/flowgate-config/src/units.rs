//! Human-readable durations (`"250ms"`, `"30s"`, `"5m"`, `"1h"`), byte sizes
//! (`65536`, `"64KiB"`, `"10MiB"`, `"1GB"`) and US dollar amounts (`0.15`, `"0.0375"`) as
//! they appear in `flowgate.toml`.

use std::fmt;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::de::{self, Deserialize, Deserializer, Visitor};

use crate::error::{Found, KeyPath};

/// A duration written as a number and a unit: `ms`, `s`, `m` or `h` (e.g. `"1500ms"`, `"2m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

/// A size in bytes: an integer, or a number with a unit (`B`, `KB`, `KiB`, `MB`, `MiB`, `GB`, `GiB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

const DURATION_EXPECTED: &str = "a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\"";
const SIZE_EXPECTED: &str = "a size in bytes such as 65536, \"64KiB\" or \"10MiB\"";

/// Parses `"250ms"`, `"30s"`, `"5m"`, `"1h"` (fractions allowed: `"1.5s"`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    if !secs.is_finite() || !(0.0..=1.0e9).contains(&secs) {
        return None;
    }
    Some(Duration::from_secs_f64(secs))
}

/// Parses a byte size with an optional unit.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "KiB" => 1024,
        "MB" => 1000 * 1000,
        "MiB" => 1024 * 1024,
        "GB" => 1000 * 1000 * 1000,
        "GiB" => 1024 * 1024 * 1024,
        _ => return None,
    };
    value.checked_mul(mult)
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(DURATION_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<HumanDuration, E> {
                parse_duration(s).map(HumanDuration).ok_or_else(|| {
                    E::custom(format!(
                        "invalid duration {s:?}: expected {DURATION_EXPECTED}"
                    ))
                })
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(SIZE_EXPECTED)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("invalid size {v}: expected {SIZE_EXPECTED}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ByteSize, E> {
                parse_size(s).map(ByteSize).ok_or_else(|| {
                    E::custom(format!("invalid size {s:?}: expected {SIZE_EXPECTED}"))
                })
            }
        }
        d.deserialize_any(V)
    }
}

const USD_EXPECTED: &str = "US dollars as a decimal number such as 0.15, 2 or \"0.0375\"";

/// The largest amount of dollars a config may write (a price or a budget): far above any
/// real one, small enough that sums of them stay exact.
const MAX_USD: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

/// A dollar amount: a TOML number, as written (a float's shortest decimal form, so `0.15`
/// is 0.15 exactly), or a string holding a decimal. Never a binary float.
pub fn parse_usd(s: &str) -> Option<Decimal> {
    let d = Decimal::from_str_exact(s.trim()).ok()?;
    (d.abs() <= MAX_USD).then_some(d.normalize())
}

/// `#[serde(deserialize_with)]` for an optional dollar amount ([`parse_usd`]).
pub(crate) fn usd<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Decimal;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(USD_EXPECTED)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Decimal, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Decimal, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Decimal, E> {
            // `Display` writes the shortest form that reads back as `v`: what was written.
            self.visit_str(&v.to_string())
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Decimal, E> {
            parse_usd(s)
                .ok_or_else(|| E::custom(format!("invalid amount {s:?}: expected {USD_EXPECTED}")))
        }
    }
    d.deserialize_any(V).map(Some)
}

/// `#[serde(serialize_with)]` for an optional dollar amount: the exact decimal in a string
/// (a JSON number would be read as a float; it reads back through [`usd`]).
pub(crate) fn usd_out<S: serde::Serializer>(v: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(d) => s.collect_str(&d.normalize()),
        None => s.serialize_none(),
    }
}

/// A span of time back from now, in whole seconds: a duration (`90s`, `15m`, `24h`) or a
/// number of days (`30d`); `None` for anything else or nothing.
pub fn parse_window(s: &str) -> Option<u64> {
    match s.strip_suffix('d') {
        Some(days) => days.parse::<u64>().ok()?.checked_mul(86_400),
        None => parse_duration(s).map(|d| d.as_secs()),
    }
    .filter(|&n| n > 0)
}

/// `bytes` as lower-case hex digits (key hashes, key ids, generated keys).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// `path`, relative to the directory of the config file `origin` unless absolute.
pub(crate) fn relative_to(origin: &str, path: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(path);
    if path.is_relative() {
        std::path::Path::new(origin)
            .parent()
            .map_or_else(|| path.to_path_buf(), |dir| dir.join(path))
    } else {
        path.to_path_buf()
    }
}

/// Edit distance (insertions, deletions, substitutions; a swap of neighbours counts one).
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev2: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        prev2 = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

/// A name the config gives (a route, a pool, a limit, a budget, a tier): 1 to 64 letters,
/// digits, `-`, `_` and `.`.
pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `v`, or `default` when not given.
pub(crate) fn dur(v: Option<HumanDuration>, default: Duration) -> Duration {
    v.map_or(default, |d| d.0)
}

/// A problem at `key` when `d` is zero.
pub(crate) fn positive(d: Duration, key: &KeyPath, found: &mut Found) {
    if d.is_zero() {
        found.push((key.clone(), "must be greater than zero".into()));
    }
}

/// `s` as an `http://` or `https://` URL with a host; else an error on `key` calling it
/// `what`.
pub(crate) fn http_url(
    s: &str,
    what: &str,
    key: crate::error::KeyPath,
    found: &mut crate::error::Found,
) -> Option<http::Uri> {
    match s.parse::<http::Uri>() {
        Ok(u)
            if matches!(u.scheme_str(), Some("http" | "https"))
                && u.authority().is_some_and(|a| !a.host().is_empty()) =>
        {
            Some(u)
        }
        _ => {
            found.push((
                key,
                format!("{what} is not an http:// or https:// URL with a host"),
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        for bad in ["", "30", "s", "-1s", "1d", "1e400s", "ms5"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hex_digits() {
        assert_eq!(hex(&[0x00, 0xab, 0x7f, 0xff]), "00ab7fff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Some(65536));
        assert_eq!(parse_size("64KiB"), Some(65536));
        assert_eq!(parse_size("10MiB"), Some(10 * 1024 * 1024));
        assert_eq!(parse_size("1GB"), Some(1_000_000_000));
        assert_eq!(parse_size("99999999999999GiB"), None);
        assert_eq!(parse_size("10 parsecs"), None);
    }

    #[test]
    fn distance_counts_edits_and_swaps() {
        assert_eq!(distance("listen", "listen"), 0);
        assert_eq!(distance("lisen", "listen"), 1);
        assert_eq!(distance("lsiten", "listen"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("prefx", "prefix"), 1);
    }

    #[test]
    fn windows_are_durations_or_days() {
        assert_eq!(parse_window("90s"), Some(90));
        assert_eq!(parse_window("24h"), Some(86_400));
        assert_eq!(parse_window("30d"), Some(30 * 86_400));
        for bad in ["", "0s", "0d", "soon", "-1d", "1w"] {
            assert_eq!(parse_window(bad), None, "{bad}");
        }
    }
}
