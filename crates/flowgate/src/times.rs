//! Times in the CSV files the offline commands read and write.

/// `s` as Unix seconds: `YYYY-MM-DD HH:MM:SS` (UTC), a date, ISO 8601 / RFC 3339 with an
/// offset, or Unix seconds.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Some(ts.as_second());
    }
    let civil = s.parse::<jiff::civil::DateTime>().ok().or_else(|| {
        s.parse::<jiff::civil::Date>()
            .ok()
            .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
    })?;
    civil
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp().as_second())
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC); the number itself when out of range.
pub fn format_time(t: i64) -> String {
    match jiff::Timestamp::from_second(t) {
        Ok(ts) => ts.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        Err(_) => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{format_time, parse_time};

    #[test]
    fn times_in_every_form_read() {
        let t = 1_767_571_200; // 2026-01-05 00:00:00 UTC
        for s in [
            "2026-01-05 00:00:00",
            "2026-01-05T00:00:00",
            "2026-01-05T00:00:00Z",
            "2026-01-05T01:00:00+01:00",
            "2026-01-05",
            "1767571200",
        ] {
            assert_eq!(parse_time(s), Some(t), "{s}");
        }
        for bad in ["", "yesterday", "2026-13-01 00:00:00"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        assert_eq!(format_time(t), "2026-01-05 00:00:00");
        assert_eq!(format_time(i64::MAX), i64::MAX.to_string());
    }
}
