//! The time source of flowgate.
//!
//! Every time-dependent piece of flowgate (TTLs, rate limiters, EWMAs, circuit breakers,
//! latency windows, alert windows) reads time through [`Clock`], never through
//! `Instant::now()` directly (clippy's `disallowed-methods` enforces this outside this crate).
//! Production code uses [`SystemClock`]; tests use [`ManualClock`] and move time by hand, so
//! that a test of a 5-minute window runs in microseconds and never flakes.
#![allow(clippy::disallowed_methods)] // this crate is the one place allowed to read the clock

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of monotonic and wall-clock time.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Monotonic time, for measuring durations and scheduling.
    fn now(&self) -> Instant;
    /// Wall-clock time, for timestamps shown to people and stored records.
    fn wall(&self) -> SystemTime;

    /// Wall-clock time as milliseconds since the Unix epoch (0 before 1970).
    fn unix_millis(&self) -> u64 {
        self.wall()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }

    /// Whether the clock's owner drives the control plane itself (a simulation in
    /// compressed time: [`SteppedClock`]), so that the gateway runs no loop of its own on
    /// real time.
    fn driven(&self) -> bool {
        false
    }
}

/// Formats a duration the way the config accepts it back.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(3_600_000) && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// `unix_ms` (milliseconds since the Unix epoch) as an RFC 3339 time in UTC with
/// milliseconds: `2026-12-06T15:04:05.123Z`.
pub fn rfc3339_millis(unix_ms: u64) -> String {
    let (secs, ms) = (unix_ms / 1000, unix_ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The Gregorian date of `days` since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// A shared, dynamically dispatched clock.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    /// The real clock, shared.
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to. Cheap to clone; clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    base: Instant,
    wall_base: SystemTime,
    offset_nanos: AtomicU64,
}

impl ManualClock {
    /// A manual clock whose wall time starts at `wall_start`.
    pub fn new(wall_start: SystemTime) -> Self {
        Self {
            inner: Arc::new(ManualInner {
                base: Instant::now(),
                wall_base: wall_start,
                offset_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// A manual clock whose wall time starts at 2026-01-01T00:00:00Z.
    pub fn at_epoch_2026() -> Self {
        Self::new(UNIX_EPOCH + Duration::from_secs(1_767_225_600))
    }

    /// Moves time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.inner.offset_nanos.fetch_add(nanos, Ordering::SeqCst);
    }

    /// Time elapsed since the clock was made.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.inner.offset_nanos.load(Ordering::SeqCst))
    }

    /// This clock as a [`SharedClock`].
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.inner.base + self.elapsed()
    }

    fn wall(&self) -> SystemTime {
        self.inner.wall_base + self.elapsed()
    }
}

/// Real time that jumps forward when its owner says: durations are measured as they
/// pass (a request's latency is real), and the owner moves both clocks at once between
/// steps of a simulation, to run a day in minutes (`flowgate demo --scenario peak`). Its
/// owner drives the control plane ([`Clock::driven`]). Cheap to clone; clones share time.
#[derive(Debug, Clone)]
pub struct SteppedClock {
    inner: Arc<SteppedInner>,
}

#[derive(Debug)]
struct SteppedInner {
    /// The wall time when it was made, and the real instant then.
    wall_base: SystemTime,
    base: Instant,
    jumped_nanos: AtomicU64,
}

impl SteppedClock {
    /// A clock whose wall time starts at `wall_start` and runs from there.
    pub fn new(wall_start: SystemTime) -> Self {
        Self {
            inner: Arc::new(SteppedInner {
                wall_base: wall_start,
                base: Instant::now(),
                jumped_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// Jumps forward by `by`.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.inner.jumped_nanos.fetch_add(nanos, Ordering::SeqCst);
    }

    /// Jumps forward to `unix_ms`, if it is ahead.
    pub fn advance_to(&self, unix_ms: u64) {
        let now = self.unix_millis();
        if unix_ms > now {
            self.advance(Duration::from_millis(unix_ms - now));
        }
    }

    fn elapsed(&self) -> Duration {
        self.inner.base.elapsed()
            + Duration::from_nanos(self.inner.jumped_nanos.load(Ordering::SeqCst))
    }

    /// This clock as a [`SharedClock`].
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for SteppedClock {
    fn now(&self) -> Instant {
        self.inner.base + self.elapsed()
    }

    fn wall(&self) -> SystemTime {
        self.inner.wall_base + self.elapsed()
    }

    fn driven(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_stepped_clock_runs_and_jumps() {
        use super::Clock;
        let start = super::UNIX_EPOCH + std::time::Duration::from_secs(1_767_571_200);
        let c = super::SteppedClock::new(start);
        let (t0, w0) = (c.now(), c.unix_millis());
        assert!((1_767_571_200_000..1_767_571_201_000).contains(&w0), "{w0}");
        c.advance_to(1_767_571_260_000);
        assert!(c.unix_millis() >= 1_767_571_260_000);
        assert!(c.now().duration_since(t0) >= std::time::Duration::from_secs(59));
        // Never backwards.
        c.advance_to(1_767_571_200_000);
        assert!(c.unix_millis() >= 1_767_571_260_000);
        assert!(c.driven());
        assert!(!super::SystemClock.driven());
    }

    #[test]
    fn times_are_written_as_rfc_3339_in_utc() {
        assert_eq!(super::rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::rfc3339_millis(1_796_569_445_123),
            "2026-12-06T15:04:05.123Z"
        );
        // A leap day, and the last millisecond of a year.
        assert_eq!(
            super::rfc3339_millis(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            super::rfc3339_millis(1_798_761_599_999),
            "2026-12-31T23:59:59.999Z"
        );
    }

    use super::*;

    #[test]
    fn durations_format_as_the_config_writes_them() {
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::at_epoch_2026();
        let t0 = clock.now();
        assert_eq!(clock.now(), t0);
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now() - t0, Duration::from_millis(1500));
        assert_eq!(clock.unix_millis(), 1_767_225_600_000 + 1500);
    }

    #[test]
    fn clones_share_time() {
        let a = ManualClock::at_epoch_2026();
        let b = a.clone();
        a.advance(Duration::from_secs(3));
        assert_eq!(b.elapsed(), Duration::from_secs(3));
    }
}
