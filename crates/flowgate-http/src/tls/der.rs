//! A certificate's expiry, read from its DER (RFC 5280 §4.1): rustls checks validity in the
//! handshake but does not show it, and warning before a listener certificate expires needs
//! the date. Only the path to `validity.notAfter` is walked, every length checked.

use rustls_pki_types::CertificateDer;

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// When `cert` stops being valid, in seconds since the Unix epoch; `None` when it is not a
/// certificate this walk understands.
pub fn not_after(cert: &CertificateDer<'_>) -> Option<i64> {
    let (cert, _) = element(cert, SEQUENCE)?;
    let (mut tbs, _) = element(cert, SEQUENCE)?;
    if tbs.first() == Some(&VERSION) {
        tbs = element(tbs, VERSION)?.1;
    }
    let (_, rest) = element(tbs, INTEGER)?; // serial number
    let (_, rest) = element(rest, SEQUENCE)?; // signature algorithm
    let (_, rest) = element(rest, SEQUENCE)?; // issuer
    let (validity, _) = element(rest, SEQUENCE)?;
    let not_before = any_time(validity)?;
    let end = any_time(not_before.rest)?;
    parse_time(end.tag, end.text)
}

/// The contents of the element at the start of `der` with tag `tag`, and what follows it.
fn element(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = der.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (len <= rest.len()).then(|| rest.split_at(len))
}

/// A time at the start of `der`: its encoding and contents, and what follows it.
struct Time<'a> {
    tag: u8,
    text: &'a [u8],
    rest: &'a [u8],
}

fn any_time(der: &[u8]) -> Option<Time<'_>> {
    let tag = *der.first()?;
    if tag != UTC_TIME && tag != GENERALIZED_TIME {
        return None;
    }
    let (text, rest) = element(der, tag)?;
    Some(Time { tag, text, rest })
}

/// `YYMMDDHHMMSSZ` (UTCTime; years 50–99 are 19xx) or `YYYYMMDDHHMMSSZ`.
fn parse_time(tag: u8, s: &[u8]) -> Option<i64> {
    let digits = s.strip_suffix(b"Z")?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let num = |b: &[u8]| b.iter().fold(0i64, |a, d| a * 10 + i64::from(d - b'0'));
    let (year, rest) = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy = num(&digits[..2]);
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (GENERALIZED_TIME, 14) => (num(&digits[..4]), &digits[4..]),
        _ => return None,
    };
    let [month, day, hour, min, sec] = [0, 2, 4, 6, 8].map(|i| num(&rest[i..i + 2]));
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + min * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_expiry_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 2);
        params.not_after = rcgen::date_time_ymd(2031, 7, 9);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        // 2031-07-09T00:00:00Z
        assert_eq!(not_after(cert.der()), Some(1_941_321_600));
    }

    #[test]
    fn times_in_both_encodings() {
        assert_eq!(parse_time(UTC_TIME, b"700101000000Z"), Some(0));
        assert_eq!(parse_time(UTC_TIME, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(
            parse_time(GENERALIZED_TIME, b"20500101000000Z"),
            Some(2_524_608_000)
        );
        assert_eq!(parse_time(UTC_TIME, b"701301000000Z"), None);
        assert_eq!(parse_time(UTC_TIME, b"7001010000Z"), None);
    }

    #[test]
    fn garbage_is_none_not_a_panic() {
        for bad in [
            &b""[..],
            b"\x30",
            b"\x30\x84\xff\xff\xff\xff",
            b"\x30\x03\x30\x01",
            b"\x30\x80",
        ] {
            assert_eq!(not_after(&CertificateDer::from(bad.to_vec())), None);
        }
    }
}
