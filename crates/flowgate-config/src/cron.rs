//! Cron schedules in a time zone, for the automation rules that will act on a schedule
//! (issue 26: business hours as `0 8 * * 1-5` for ten hours in `Europe/Berlin`).
//!
//! Five fields, as Vixie cron reads them: minute (0–59), hour (0–23), day of month
//! (1–31), month (1–12 or `jan`–`dec`), day of week (0–7, 0 and 7 Sunday, or `sun`–`sat`);
//! each `*`, a number, a range `a-b`, a step `*/n` or `a-b/n`, or a list of those. When
//! both day fields are restricted a day matches either (Vixie's rule). Times are the
//! zone's wall-clock times: a time the zone skips when it moves forward (02:30 on the
//! spring change in Europe) fires at the same wall time an hour later, a time it repeats
//! when it moves back fires once, the first time.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    days_restricted: bool,
    weekdays_restricted: bool,
    /// As written.
    pub expr: String,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// One field's values as a bit set, or what is wrong with it.
fn field(s: &str, lo: u32, hi: u32, names: &[&str], what: &str) -> Result<u64, String> {
    let value = |v: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
            return Ok(lo + i as u32);
        }
        v.parse::<u32>()
            .ok()
            .filter(|n| (lo..=hi).contains(n))
            .ok_or_else(|| format!("{what}: {v:?} is not from {lo} to {hi}"))
    };
    let mut bits = 0u64;
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => {
                let st =
                    st.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        format!("{what}: step {st:?} is not a whole number above 0")
                    })?;
                (r, st)
            }
            None => (part, 1),
        };
        let (a, b) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None if part.contains('/') => (value(r)?, hi),
                None => {
                    let v = value(r)?;
                    (v, v)
                }
            },
        };
        if a > b {
            return Err(format!("{what}: {range:?} runs backwards"));
        }
        let mut v = a;
        while v <= b {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

impl Schedule {
    /// Parses five fields, or says which is wrong.
    pub fn parse(expr: &str) -> Result<Schedule, String> {
        let f: Vec<&str> = expr.split_whitespace().collect();
        let [mi, h, dom, mon, dow] = f[..] else {
            return Err(format!(
                "{expr:?} has {} field(s): five are needed (minute hour day-of-month month day-of-week, e.g. \"0 8 * * 1-5\")",
                f.len()
            ));
        };
        let mut weekdays = field(dow, 0, 7, &WEEKDAYS, "day of week")?;
        // 7 is Sunday too.
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & 0x7f;
        }
        Ok(Schedule {
            minutes: field(mi, 0, 59, &[], "minute")?,
            hours: field(h, 0, 23, &[], "hour")? as u32,
            days: field(dom, 1, 31, &[], "day of month")? as u32,
            months: field(mon, 1, 12, &MONTHS, "month")? as u16,
            weekdays: weekdays as u8,
            days_restricted: dom != "*",
            weekdays_restricted: dow != "*",
            expr: expr.to_string(),
        })
    }

    fn day_matches(&self, d: Date) -> bool {
        if self.months & (1 << d.month()) == 0 {
            return false;
        }
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().to_sunday_zero_offset()) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }

    /// The wall-clock times of day `d` it fires at, earliest first.
    fn times(&self, d: Date) -> impl DoubleEndedIterator<Item = DateTime> + '_ {
        let day = self.day_matches(d);
        (0..24i8)
            .filter(move |h| day && self.hours & (1 << h) != 0)
            .flat_map(move |h| {
                (0..60i8)
                    .filter(move |m| self.minutes & (1 << m) != 0)
                    .map(move |m| d.at(h, m, 0, 0))
            })
    }

    /// The last time it fired at or before `now`, in `tz`, looking back at most 400 days.
    pub fn last_at_or_before(&self, now: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let today = now.to_zoned_datetime(tz.clone()).date();
        let mut d = today;
        for _ in 0..400 {
            for t in self.times(d).rev() {
                let at = tz
                    .to_ambiguous_zoned_datetime(t)
                    .compatible()
                    .ok()?
                    .timestamp();
                if at <= now {
                    return Some(at);
                }
            }
            d = d.yesterday().ok()?;
        }
        None
    }

    /// The first time it fires after `now`, in `tz`, looking ahead at most 400 days.
    pub fn next_after(&self, now: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let mut d = now.to_zoned_datetime(tz.clone()).date();
        for _ in 0..400 {
            for t in self.times(d) {
                let at = tz
                    .to_ambiguous_zoned_datetime(t)
                    .compatible()
                    .ok()?
                    .timestamp();
                if at > now {
                    return Some(at);
                }
            }
            d = d.tomorrow().ok()?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn fields_read_as_cron_reads_them() {
        let s = Schedule::parse("*/15 8-17 * * mon-fri").unwrap();
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        // Friday 2026-12-04 17:50 in Berlin (16:50 UTC): the last firing was 17:45.
        let now = at("2026-12-04T16:50:00Z");
        assert_eq!(
            s.last_at_or_before(now, &berlin),
            Some(at("2026-12-04T16:45:00Z"))
        );
        // The next is Monday 08:00.
        assert_eq!(s.next_after(now, &berlin), Some(at("2026-12-07T07:00:00Z")));
        // Day of month and day of week both restricted: either matches.
        let s = Schedule::parse("0 0 1 * 0").unwrap();
        let utc = TimeZone::UTC;
        assert_eq!(
            s.next_after(at("2026-12-01T00:00:00Z"), &utc),
            Some(at("2026-12-06T00:00:00Z")),
            "Sunday the 6th comes before the 1st of January"
        );
        // 7 is Sunday, names and lists.
        assert_eq!(
            Schedule::parse("0 12 * jan,jul 7")
                .unwrap()
                .next_after(at("2026-12-07T00:00:00Z"), &utc),
            Some(at("2027-01-03T12:00:00Z"))
        );
    }

    #[test]
    fn daylight_saving_changes_keep_the_wall_clock() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let s = Schedule::parse("0 8 * * *").unwrap();
        // 08:00 is 07:00 UTC in winter and 06:00 UTC in summer, across 2027-03-28.
        assert_eq!(
            s.next_after(at("2027-03-27T08:00:00Z"), &berlin),
            Some(at("2027-03-28T06:00:00Z"))
        );
        assert_eq!(
            s.next_after(at("2027-03-26T08:00:00Z"), &berlin),
            Some(at("2027-03-27T07:00:00Z"))
        );
        // 02:30 does not exist on 2027-03-28 in Berlin: it fires at 03:30 (01:30 UTC).
        let s = Schedule::parse("30 2 * * *").unwrap();
        assert_eq!(
            s.next_after(at("2027-03-28T00:00:00Z"), &berlin),
            Some(at("2027-03-28T01:30:00Z"))
        );
        // 02:30 happens twice on 2027-10-31: it fires once, the first time (00:30 UTC).
        assert_eq!(
            s.next_after(at("2027-10-30T23:00:00Z"), &berlin),
            Some(at("2027-10-31T00:30:00Z"))
        );
        assert_eq!(
            s.next_after(at("2027-10-31T00:30:00Z"), &berlin),
            Some(at("2027-11-01T01:30:00Z"))
        );
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        for (e, says) in [
            ("0 8 * *", "has 4 field(s): five are needed"),
            ("60 8 * * *", "minute: \"60\" is not from 0 to 59"),
            ("0 25 * * *", "hour: \"25\" is not from 0 to 23"),
            ("0 8 0 * *", "day of month: \"0\" is not from 1 to 31"),
            ("0 8 * foo *", "month: \"foo\" is not from 1 to 12"),
            ("0 8 * * 1-8", "day of week: \"8\" is not from 0 to 7"),
            ("0 17-8 * * *", "hour: \"17-8\" runs backwards"),
            (
                "*/0 8 * * *",
                "minute: step \"0\" is not a whole number above 0",
            ),
        ] {
            let err = Schedule::parse(e).unwrap_err();
            assert!(err.contains(says), "{e}: {err}");
        }
    }
}
