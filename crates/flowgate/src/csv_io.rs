//! The CSV files the offline commands read and write: the input opened with its header,
//! its columns found by name, and the times in them.

use std::fs::File;
use std::path::Path;

/// An input CSV, its header read.
pub struct Input {
    reader: csv::Reader<File>,
    pub headers: csv::StringRecord,
    name: String,
    /// The line last read (the header is line 1).
    line: usize,
}

impl Input {
    pub fn open(path: &Path) -> Result<Input, String> {
        let name = path.display().to_string();
        let mut reader = csv::ReaderBuilder::new()
            .flexible(false)
            .from_path(path)
            .map_err(|e| format!("{name}: {e}"))?;
        let headers = reader
            .headers()
            .map_err(|e| format!("{name}: {e}"))?
            .clone();
        Ok(Input {
            reader,
            headers,
            name,
            line: 1,
        })
    }

    /// Reads the next row into `record`: its line, or `None` at the end.
    pub fn read(&mut self, record: &mut csv::StringRecord) -> Result<Option<usize>, String> {
        self.line += 1;
        match self.reader.read_record(record) {
            Ok(true) => Ok(Some(self.line)),
            Ok(false) => Ok(None),
            Err(e) => Err(self.error(self.line, e)),
        }
    }

    /// The column named `name`, if there is one.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h.trim() == name)
    }

    /// The column named `name`, or an error naming the file and the header.
    pub fn column(&self, name: &str) -> Result<usize, String> {
        self.find(name).ok_or_else(|| {
            let have: Vec<&str> = self.headers.iter().collect();
            format!(
                "{}: no column {name:?} (the header has {have:?})",
                self.name
            )
        })
    }

    /// `line`'s error `e`, naming the file.
    pub fn error(&self, line: usize, e: impl std::fmt::Display) -> String {
        format!("{}: line {line}: {e}", self.name)
    }

    /// The time in `record`'s column `column` (on `line`) as Unix seconds, or an error
    /// naming the file and line.
    pub fn time(
        &self,
        record: &csv::StringRecord,
        column: usize,
        line: usize,
    ) -> Result<i64, String> {
        let time = record.get(column).unwrap_or_default();
        parse_time(time).ok_or_else(|| {
            self.error(
                line,
                format!("time {time:?} is not YYYY-MM-DD HH:MM:SS, ISO 8601 or Unix seconds"),
            )
        })
    }
}

/// The number in `record`'s column `column`; NaN when it is empty or not a number.
pub fn number(record: &csv::StringRecord, column: usize) -> f64 {
    record
        .get(column)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(f64::NAN)
}

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
