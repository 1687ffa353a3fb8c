//! What a budget has spent in its window: the last 60 minutes by the minute, or the
//! calendar day or month in its time zone (a DST day is 23 or 25 hours long; a month is
//! the calendar's).

use flowgate_config::{BudgetConfig, BudgetWindow};
use jiff::tz::TimeZone;

/// Minutes in a rolling hour.
const MINUTES: usize = 60;

/// Spend in billionths of a dollar over a budget's window.
#[derive(Debug, Clone)]
pub enum Counter {
    /// Per minute: (minute since the epoch, spent in it), in the slot `minute % 60`.
    Hour(Box<[(u64, u64); MINUTES]>),
    Calendar {
        tz: TimeZone,
        month: bool,
        start: u64,
        end: u64,
        spent: u64,
    },
}

impl Counter {
    pub fn new(config: &BudgetConfig) -> Counter {
        match config.window {
            BudgetWindow::Hour => Counter::Hour(Box::new([(0, 0); MINUTES])),
            BudgetWindow::Day | BudgetWindow::Month => Counter::Calendar {
                tz: config.timezone.clone(),
                month: config.window == BudgetWindow::Month,
                start: 0,
                end: 0,
                spent: 0,
            },
        }
    }

    /// Adds `n` spent at `at` (Unix seconds); the bucket it went into (the minute, or the
    /// calendar window's start). Spend older than the window is dropped.
    pub fn add(&mut self, n: u64, at: u64) -> Option<u64> {
        match self {
            Counter::Hour(slots) => {
                let minute = at / 60;
                let slot = &mut slots[(minute % MINUTES as u64) as usize];
                if slot.0 < minute {
                    *slot = (minute, 0);
                }
                if slot.0 == minute {
                    slot.1 = slot.1.saturating_add(n);
                    return Some(minute);
                }
                None
            }
            Counter::Calendar { .. } => {
                self.roll(at);
                match self {
                    Counter::Calendar { start, spent, .. } if at >= *start => {
                        *spent = spent.saturating_add(n);
                        Some(*start)
                    }
                    _ => None,
                }
            }
        }
    }

    /// Makes what was spent in `bucket` (a minute, or a calendar window's start) `n`, as
    /// the shared counters say at `now`; a bucket outside the window is left alone.
    pub fn set(&mut self, bucket: u64, n: u64, now: u64) {
        match self {
            Counter::Hour(slots) => {
                let minute = now / 60;
                if bucket <= minute && minute - bucket < MINUTES as u64 {
                    slots[(bucket % MINUTES as u64) as usize] = (bucket, n);
                }
            }
            Counter::Calendar { .. } => {
                self.roll(now);
                if let Counter::Calendar { start, spent, .. } = self
                    && *start == bucket
                {
                    *spent = n;
                }
            }
        }
    }

    /// The buckets of the window holding `now`, oldest first: its 60 minutes, or the
    /// calendar window's start.
    pub fn buckets(&self, now: u64) -> Vec<u64> {
        match self {
            Counter::Hour(_) => {
                let minute = now / 60;
                (minute.saturating_sub(MINUTES as u64 - 1)..=minute).collect()
            }
            Counter::Calendar { tz, month, .. } => vec![bounds(tz, *month, now).0],
        }
    }

    /// When `bucket` leaves every window (Unix seconds).
    pub fn bucket_end(&self, bucket: u64) -> u64 {
        match self {
            Counter::Hour(_) => (bucket + MINUTES as u64) * 60,
            Counter::Calendar { tz, month, .. } => bounds(tz, *month, bucket).1,
        }
    }

    /// What the window's buckets are called in a shared counter's keys.
    pub fn kind(&self) -> &'static str {
        match self {
            Counter::Hour(_) => "h",
            Counter::Calendar { month: false, .. } => "d",
            Counter::Calendar { month: true, .. } => "mo",
        }
    }

    /// Spent in the window that holds `now`.
    pub fn spent(&mut self, now: u64) -> u64 {
        match self {
            Counter::Hour(slots) => {
                let minute = now / 60;
                slots
                    .iter()
                    .filter(|(m, _)| *m <= minute && minute - m < MINUTES as u64)
                    .map(|(_, n)| *n)
                    .fold(0u64, u64::saturating_add)
            }
            Counter::Calendar { .. } => {
                self.roll(now);
                match self {
                    Counter::Calendar { spent, .. } => *spent,
                    Counter::Hour(_) => 0,
                }
            }
        }
    }

    /// A calendar window past its end moves to the one holding `at`, empty.
    fn roll(&mut self, at: u64) {
        if let Counter::Calendar {
            tz,
            month,
            start,
            end,
            spent,
        } = self
            && at >= *end
        {
            (*start, *end) = bounds(tz, *month, at);
            *spent = 0;
        }
    }

    /// The start of the window that holds `now` (Unix seconds).
    pub fn window_start(&self, now: u64) -> u64 {
        match self {
            Counter::Hour(_) => (now / 60).saturating_sub(MINUTES as u64 - 1) * 60,
            Counter::Calendar { tz, month, .. } => bounds(tz, *month, now).0,
        }
    }

    /// The end of a calendar window that holds `now`; none for a rolling hour.
    pub fn window_end(&self, now: u64) -> Option<u64> {
        match self {
            Counter::Hour(_) => None,
            Counter::Calendar { tz, month, .. } => Some(bounds(tz, *month, now).1),
        }
    }

    /// When the spend falls under `threshold` if nothing more is spent: as the oldest
    /// minutes leave a rolling hour, or at the end of a calendar window.
    pub fn under_at(&self, threshold: u64, now: u64) -> u64 {
        match self {
            Counter::Hour(slots) => {
                let minute = now / 60;
                let mut live: Vec<(u64, u64)> = slots
                    .iter()
                    .copied()
                    .filter(|(m, n)| *n > 0 && *m <= minute && minute - m < MINUTES as u64)
                    .collect();
                live.sort_unstable();
                let mut left: u64 = live.iter().map(|(_, n)| *n).fold(0, u64::saturating_add);
                for (m, n) in live {
                    left -= n;
                    if left < threshold {
                        return (m + MINUTES as u64) * 60;
                    }
                }
                now
            }
            Counter::Calendar { tz, month, .. } => bounds(tz, *month, now).1,
        }
    }
}

/// The calendar day (or month) holding `at`, in `tz`: its start and end, Unix seconds.
fn bounds(tz: &TimeZone, month: bool, at: u64) -> (u64, u64) {
    let fallback = (at - at % 86_400, at - at % 86_400 + 86_400);
    let Ok(ts) = jiff::Timestamp::from_second(i64::try_from(at).unwrap_or(i64::MAX)) else {
        return fallback;
    };
    let z = ts.to_zoned_datetime(tz.clone());
    let range = if month {
        z.first_of_month()
            .and_then(|f| f.start_of_day())
            .and_then(|s| {
                let e = s.checked_add(jiff::Span::new().months(1))?;
                Ok((s, e))
            })
    } else {
        z.start_of_day().and_then(|s| {
            let e = s.tomorrow()?.start_of_day()?;
            Ok((s, e))
        })
    };
    match range {
        Ok((s, e)) => (
            u64::try_from(s.timestamp().as_second()).unwrap_or(0),
            u64::try_from(e.timestamp().as_second()).unwrap_or(u64::MAX),
        ),
        Err(_) => fallback,
    }
}
