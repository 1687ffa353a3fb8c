//! Passive health: one circuit breaker per endpoint, driven by what the gateway sees of its
//! answers.
//!
//! - **Closed** (in rotation). `consecutive` failures in a row (5xx answers, connection
//!   failures, timeouts), or a failure share of at least `failure_percent` over the last
//!   `window` (once it saw `min_requests`), open it.
//! - **Open** (ejected) for `base × times opened`, at most `max`. Never more than
//!   `max_percent` of a pool is out at once, and at least one endpoint always stays in.
//! - **Half-open** once its time is over: it takes at most `probes` trial requests at a
//!   time; `probes` successes close it, a failure opens it again, for longer. Trials that
//!   never report (a cancelled request) are written off after `base`.
//! - **Throttled**: a 429 with `Retry-After` takes it out for exactly that long, then it is
//!   back in full (a provider's limit says nothing of its health).
//!
//! All state is atomic: reports and picks take no lock.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// The breaker policy of a pool.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutlierSettings {
    /// Failures in a row that open the breaker (0: never).
    pub consecutive: u32,
    pub base: Duration,
    pub max: Duration,
    /// The largest share of a pool out at once, in percent (at least one endpoint always
    /// stays).
    pub max_percent: u32,
    /// A failure share (percent) over `window` that opens the breaker (0: never).
    pub failure_percent: u32,
    /// Answers the window must hold before its failure share counts.
    pub min_requests: u32,
    pub window: Duration,
    /// Trial requests a half-open endpoint takes at a time; that many successes close it.
    pub probes: u32,
}

impl Default for OutlierSettings {
    fn default() -> Self {
        OutlierSettings {
            consecutive: 5,
            base: Duration::from_secs(30),
            max: Duration::from_secs(300),
            max_percent: 50,
            failure_percent: 50,
            min_requests: 20,
            window: Duration::from_secs(10),
            probes: 3,
        }
    }
}

/// How one request to an endpoint went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// A 5xx, a connection that failed or closed, a timeout.
    Failure,
    /// A 429: out for `Retry-After` when it says (a failure otherwise).
    Throttled(Option<Duration>),
}

/// An endpoint's breaker state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
    /// Out until a 429's `Retry-After` is over.
    Throttled,
    /// Failed its active health checks.
    Down,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::Throttled => "throttled",
            State::Down => "down",
        }
    }
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const THROTTLED: u8 = 2;

/// How often the breaker changed state, by the state it went to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transitions {
    pub opened: u64,
    pub half_opened: u64,
    pub closed: u64,
}

/// One endpoint's health.
#[derive(Debug, Default)]
pub struct Health {
    /// `CLOSED`, `OPEN` (half-open once `until` is past) or `THROTTLED`.
    state: AtomicU8,
    /// Out until then (ns on the balancer's clock; 0 when closed).
    until: AtomicU64,
    failures: AtomicU32,
    /// Times opened in all.
    times: AtomicU32,
    /// Times opened since it last stayed closed for `max`: the multiplier of the next
    /// ejection (Envoy lowers its multiplier the same way while an endpoint stays healthy).
    streak: AtomicU32,
    /// When its breaker last closed after half-open trials (ns; 0: never).
    closed_at: AtomicU64,
    /// Trial requests let through and successes seen since it went half-open.
    trials: AtomicU32,
    passed: AtomicU32,
    /// When the last trial was let through (ns).
    trial_at: AtomicU64,
    half_opened: AtomicU64,
    closed: AtomicU64,
    window: Window,
    /// Outcomes reported, and failures among them, since the start.
    reported: AtomicU64,
    failed: AtomicU64,
    /// Out by its active health checks.
    down: AtomicBool,
    /// Health checks in a row that passed (> 0) or failed (< 0).
    probe_run: AtomicI32,
    probes_passed: AtomicU64,
    probes_failed: AtomicU64,
}

impl Health {
    /// Its state: down (by its health checks), else its breaker's.
    pub fn state(&self, now_ns: u64) -> State {
        if self.is_down() {
            State::Down
        } else {
            self.breaker(now_ns)
        }
    }

    fn breaker(&self, now_ns: u64) -> State {
        match self.state.load(Ordering::Relaxed) {
            CLOSED => State::Closed,
            s => {
                let out = self.until.load(Ordering::Relaxed) > now_ns;
                match (s, out) {
                    (OPEN, true) => State::Open,
                    (OPEN, false) => State::HalfOpen,
                    (_, true) => State::Throttled,
                    (_, false) => State::Closed,
                }
            }
        }
    }

    /// Whether it is not closed (a cheap first test before [`Health::admits`]).
    pub(crate) fn is_marked(&self) -> bool {
        self.state.load(Ordering::Relaxed) != CLOSED || self.is_down()
    }

    /// Whether its active health checks took it out.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Health checks passed and failed since the start.
    pub fn probes(&self) -> (u64, u64) {
        (
            self.probes_passed.load(Ordering::Relaxed),
            self.probes_failed.load(Ordering::Relaxed),
        )
    }

    /// Whether it is out of rotation (open, throttled or down).
    pub fn is_out(&self, now_ns: u64) -> bool {
        self.is_down()
            || (self.state.load(Ordering::Relaxed) != CLOSED
                && self.until.load(Ordering::Relaxed) > now_ns)
    }

    /// Whether a request may go to it now: closed; or half-open with a trial to spare.
    pub(crate) fn admits(&self, now_ns: u64, s: &OutlierSettings) -> bool {
        match self.state(now_ns) {
            State::Closed => true,
            State::Open | State::Throttled | State::Down => false,
            State::HalfOpen => {
                self.trials.load(Ordering::Relaxed) < s.probes.max(1)
                    || now_ns.saturating_sub(self.trial_at.load(Ordering::Relaxed))
                        > s.base.as_nanos() as u64
            }
        }
    }

    /// A request was sent its way: a half-open endpoint counts it as a trial.
    pub(crate) fn picked(&self, now_ns: u64, s: &OutlierSettings) {
        if self.state(now_ns) != State::HalfOpen {
            return;
        }
        let last = self.trial_at.swap(now_ns, Ordering::Relaxed);
        let stale = now_ns.saturating_sub(last) > s.base.as_nanos() as u64;
        if self.trials.load(Ordering::Relaxed) == 0 {
            self.half_opened.fetch_add(1, Ordering::Relaxed);
        } else if stale {
            // The earlier trials never reported: written off.
            self.trials.store(0, Ordering::Relaxed);
        }
        self.trials.fetch_add(1, Ordering::Relaxed);
    }

    /// How many times its breaker opened.
    pub fn times_ejected(&self) -> u32 {
        self.times.load(Ordering::Relaxed)
    }

    pub fn transitions(&self) -> Transitions {
        Transitions {
            opened: u64::from(self.times_ejected()),
            half_opened: self.half_opened.load(Ordering::Relaxed),
            closed: self.closed.load(Ordering::Relaxed),
        }
    }

    /// Outcomes reported since the start, and failures among them.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.reported.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    /// Until when it is out, if it is.
    pub fn out_for(&self, now_ns: u64) -> Option<Duration> {
        let until = self.until.load(Ordering::Relaxed);
        (self.is_marked() && until > now_ns).then(|| Duration::from_nanos(until - now_ns))
    }

    /// The answers and failures of the last window (the previous one weighted by how much
    /// of it still falls within).
    pub fn window(&self, now_ns: u64, s: &OutlierSettings) -> (u32, u32) {
        self.window.counts(now_ns, window_ns(s))
    }

    fn close(&self) {
        self.state.store(CLOSED, Ordering::Relaxed);
        self.until.store(0, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
        self.trials.store(0, Ordering::Relaxed);
        self.passed.store(0, Ordering::Relaxed);
    }
}

fn window_ns(s: &OutlierSettings) -> u64 {
    (s.window.as_nanos() as u64).max(1)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Takes `outcome` for endpoint `i` of `all`: whether it opened the breaker (or throttled it).
pub fn report(
    all: &[Health],
    i: usize,
    outcome: Outcome,
    settings: &OutlierSettings,
    now_ns: u64,
) -> bool {
    let Some(h) = all.get(i) else { return false };
    let state = h.breaker(now_ns);
    let failed = !matches!(outcome, Outcome::Success | Outcome::Throttled(Some(_)));
    h.window.add(failed, now_ns, window_ns(settings));
    h.reported.fetch_add(1, Ordering::Relaxed);
    if failed {
        h.failed.fetch_add(1, Ordering::Relaxed);
    }
    match (outcome, state) {
        (Outcome::Success, State::HalfOpen) => {
            if h.passed.fetch_add(1, Ordering::Relaxed) + 1 >= settings.probes.max(1) {
                h.close();
                h.closed.fetch_add(1, Ordering::Relaxed);
                h.closed_at.store(now_ns.max(1), Ordering::Relaxed);
            }
            false
        }
        (Outcome::Success, _) => {
            h.failures.store(0, Ordering::Relaxed);
            // A 429's time is over: in rotation again.
            if state == State::Closed && h.is_marked() {
                h.close();
            }
            false
        }
        (Outcome::Throttled(Some(d)), State::Closed | State::Throttled | State::HalfOpen) => {
            take_out(all, h, THROTTLED, d, settings, now_ns)
        }
        // Already out, or a trial that failed: open again, for longer.
        (_, State::Open | State::Down) => false,
        (_, State::HalfOpen) => open(all, h, settings, now_ns),
        (_, State::Closed | State::Throttled) => {
            let n = h.failures.fetch_add(1, Ordering::Relaxed) + 1;
            let in_a_row = settings.consecutive != 0 && n >= settings.consecutive;
            let share = settings.failure_percent != 0 && {
                let (answers, failures) = h.window.counts(now_ns, window_ns(settings));
                answers >= settings.min_requests.max(1)
                    && u64::from(failures) * 100
                        >= u64::from(answers) * u64::from(settings.failure_percent)
            };
            (in_a_row || share) && open(all, h, settings, now_ns)
        }
    }
}

/// Takes the result of a health check of endpoint `i` of `all`: `healthy` passes in a row
/// bring a down endpoint back, `unhealthy` failures in a row take it out (never the last
/// endpoint not down). `Some(down)` when that changed.
pub fn probed(
    all: &[Health],
    i: usize,
    passed: bool,
    healthy: u32,
    unhealthy: u32,
) -> Option<bool> {
    let h = all.get(i)?;
    let run = if passed {
        h.probes_passed.fetch_add(1, Ordering::Relaxed);
        let r = h.probe_run.load(Ordering::Relaxed).max(0).saturating_add(1);
        h.probe_run.store(r, Ordering::Relaxed);
        r
    } else {
        h.probes_failed.fetch_add(1, Ordering::Relaxed);
        let r = h.probe_run.load(Ordering::Relaxed).min(0).saturating_sub(1);
        h.probe_run.store(r, Ordering::Relaxed);
        r
    };
    let down = h.is_down();
    if down && run >= healthy as i32 {
        h.down.store(false, Ordering::Relaxed);
        return Some(false);
    }
    let others_up = all.iter().enumerate().any(|(j, x)| j != i && !x.is_down());
    if !down && run <= -(unhealthy as i32) && others_up {
        h.down.store(true, Ordering::Relaxed);
        return Some(true);
    }
    None
}

/// Opens `h`'s breaker for `base × times`, at most `max`.
fn open(all: &[Health], h: &Health, settings: &OutlierSettings, now_ns: u64) -> bool {
    // Healthy for `max` since it last closed: the multiplier starts over.
    let closed_at = h.closed_at.load(Ordering::Relaxed);
    let forgiven = closed_at != 0 && now_ns.saturating_sub(closed_at) >= nanos(settings.max);
    let streak = if forgiven {
        1
    } else {
        h.streak.load(Ordering::Relaxed) + 1
    };
    let out_for = settings.base.saturating_mul(streak).min(settings.max);
    if !take_out(all, h, OPEN, out_for, settings, now_ns) {
        return false;
    }
    h.streak.store(streak, Ordering::Relaxed);
    h.times.fetch_add(1, Ordering::Relaxed);
    h.failures.store(0, Ordering::Relaxed);
    h.trials.store(0, Ordering::Relaxed);
    h.passed.store(0, Ordering::Relaxed);
    h.window.clear();
    true
}

/// Takes `h` out for `d` as `state`, unless that would put more than the pool's share out.
fn take_out(
    all: &[Health],
    h: &Health,
    state: u8,
    d: Duration,
    settings: &OutlierSettings,
    now_ns: u64,
) -> bool {
    if !h.is_out(now_ns) {
        let out = all.iter().filter(|x| x.is_out(now_ns)).count();
        let allowed = (all.len() * settings.max_percent as usize / 100).min(all.len() - 1);
        if out >= allowed {
            return false;
        }
    }
    h.until
        .store(now_ns.saturating_add(nanos(d)), Ordering::Relaxed);
    h.state.store(state, Ordering::Relaxed);
    true
}

/// Answers and failures over a sliding window: the current fixed window and the previous
/// one, each packed as `failures << 32 | answers`.
#[derive(Debug, Default)]
struct Window {
    epoch: AtomicU64,
    cur: AtomicU64,
    prev: AtomicU64,
}

impl Window {
    fn roll(&self, now_ns: u64, width: u64) {
        let e = now_ns / width;
        let Some(old) = crate::advance(&self.epoch, e) else {
            return;
        };
        let cur = self.cur.swap(0, Ordering::Relaxed);
        self.prev
            .store(if e == old + 1 { cur } else { 0 }, Ordering::Relaxed);
    }

    fn add(&self, failed: bool, now_ns: u64, width: u64) {
        self.roll(now_ns, width);
        self.cur
            .fetch_add(1 | u64::from(failed) << 32, Ordering::Relaxed);
    }

    fn counts(&self, now_ns: u64, width: u64) -> (u32, u32) {
        self.roll(now_ns, width);
        let (cur, prev) = (
            self.cur.load(Ordering::Relaxed),
            self.prev.load(Ordering::Relaxed),
        );
        // The part of the previous window still within the last `width`.
        let left = 1.0 - (now_ns % width) as f64 / width as f64;
        let part = |packed: u64, shift: u32| (packed >> shift) as u32 as f64;
        let answers = part(cur, 0) + part(prev, 0) * left;
        let failures = part(cur, 32) + part(prev, 32) * left;
        (answers.round() as u32, failures.round() as u32)
    }

    fn clear(&self) {
        self.cur.store(0, Ordering::Relaxed);
        self.prev.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn pool(n: usize) -> Vec<Health> {
        (0..n).map(|_| Health::default()).collect()
    }

    /// Only consecutive failures open (the failure share is tested on its own).
    fn in_a_row() -> OutlierSettings {
        OutlierSettings {
            failure_percent: 0,
            ..OutlierSettings::default()
        }
    }

    fn fail(all: &[Health], i: usize, n: usize, st: &OutlierSettings, now: u64) -> bool {
        (0..n).fold(false, |opened, _| {
            report(all, i, Outcome::Failure, st, now) || opened
        })
    }

    #[test]
    fn consecutive_failures_open_for_longer_each_time() {
        let all = pool(4);
        let st = in_a_row();
        assert!(!fail(&all, 0, 4, &st, 0));
        // A success in between resets the count.
        report(&all, 0, Outcome::Success, &st, 0);
        for k in 0..5 {
            assert_eq!(report(&all, 0, Outcome::Failure, &st, 0), k == 4);
        }
        assert_eq!(all[0].state(29 * S), State::Open);
        assert_eq!(all[0].state(30 * S), State::HalfOpen);
        // A trial fails: open again, for twice the base.
        all[0].picked(31 * S, &st);
        assert!(report(&all, 0, Outcome::Failure, &st, 31 * S));
        assert_eq!(all[0].out_for(31 * S), Some(Duration::from_secs(60)));
        assert_eq!(all[0].times_ejected(), 2);
        // Never longer than the maximum.
        for round in 0..20u64 {
            let t = (100 + round * 400) * S;
            all[0].picked(t, &st);
            report(&all, 0, Outcome::Failure, &st, t);
        }
        assert!(all[0].out_for(7_700 * S).unwrap() <= Duration::from_secs(300));
    }

    #[test]
    fn the_ejection_multiplier_starts_over_after_a_healthy_stretch() {
        let all = pool(4);
        let st = in_a_row();
        let close = |t: u64| {
            for _ in 0..3 {
                all[0].picked(t, &st);
                report(&all, 0, Outcome::Success, &st, t);
            }
            assert_eq!(all[0].state(t), State::Closed);
        };
        fail(&all, 0, 5, &st, 0);
        assert_eq!(all[0].out_for(0), Some(Duration::from_secs(30)));
        close(30 * S);
        // Fails again soon: twice as long.
        fail(&all, 0, 5, &st, 40 * S);
        assert_eq!(all[0].out_for(40 * S), Some(Duration::from_secs(60)));
        close(100 * S);
        // Healthy for the maximum (5 min): back to the base.
        fail(&all, 0, 5, &st, 400 * S);
        assert_eq!(all[0].out_for(400 * S), Some(Duration::from_secs(30)));
        assert_eq!(all[0].times_ejected(), 3);
    }

    #[test]
    fn half_open_takes_a_few_trials_and_closes_after_as_many_successes() {
        let all = pool(3);
        let st = in_a_row();
        fail(&all, 1, 5, &st, 0);
        let t = 30 * S;
        assert!(!all[1].admits(t - 1, &st), "open: nothing goes");
        for _ in 0..3 {
            assert!(all[1].admits(t, &st));
            all[1].picked(t, &st);
        }
        assert!(!all[1].admits(t, &st), "three trials out: no more");
        report(&all, 1, Outcome::Success, &st, t + S);
        report(&all, 1, Outcome::Success, &st, t + S);
        assert_eq!(all[1].state(t + S), State::HalfOpen);
        report(&all, 1, Outcome::Success, &st, t + S);
        assert_eq!(all[1].state(t + S), State::Closed);
        assert!(all[1].admits(t + S, &st));
        assert_eq!(
            all[1].transitions(),
            Transitions {
                opened: 1,
                half_opened: 1,
                closed: 1
            }
        );
        // Closed again: it takes five failures in a row to open, not one.
        assert!(!fail(&all, 1, 4, &st, t + 2 * S));
    }

    #[test]
    fn trials_that_never_report_are_written_off() {
        let all = pool(3);
        let st = in_a_row();
        fail(&all, 0, 5, &st, 0);
        for _ in 0..3 {
            all[0].picked(30 * S, &st);
        }
        assert!(!all[0].admits(31 * S, &st));
        // Longer than the base ejection without a report: trials again.
        assert!(all[0].admits(61 * S, &st));
        all[0].picked(61 * S, &st);
        assert!(all[0].admits(61 * S, &st), "one trial of three out");
        assert_eq!(all[0].transitions().half_opened, 1);
    }

    #[test]
    fn a_failure_share_over_the_window_opens() {
        let all = pool(4);
        let st = OutlierSettings {
            consecutive: 0,
            ..OutlierSettings::default()
        };
        // Alternating: never two failures in a row, half of them failures.
        let mut opened = false;
        for k in 0..19u64 {
            let outcome = if k % 2 == 0 {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            opened |= report(&all, 0, outcome, &st, k * S / 10);
        }
        assert!(!opened, "under the minimum of answers");
        assert_eq!(all[0].window(2 * S, &st), (19, 10));
        assert!(report(&all, 0, Outcome::Failure, &st, 2 * S));
        assert_eq!(all[0].state(2 * S), State::Open);
        // One in five failing stays in.
        let mut opened = false;
        for k in 0..200u64 {
            let outcome = if k % 5 == 0 {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            opened |= report(&all, 1, outcome, &st, k * S / 20);
        }
        assert!(!opened);
        // Old answers leave the window: the previous one counts by what is left of it.
        let h = &all[2];
        for _ in 0..10 {
            report(&all, 2, Outcome::Failure, &st, 5 * S);
        }
        assert_eq!(h.window(5 * S, &st), (10, 10));
        assert_eq!(h.window(15 * S, &st), (5, 5));
        assert_eq!(h.window(25 * S, &st), (0, 0));
    }

    #[test]
    fn at_most_the_share_is_out_and_one_always_stays() {
        let all = pool(2);
        let st = in_a_row();
        fail(&all, 0, 5, &st, 0);
        assert!(all[0].is_out(0));
        // Half of two is one: the other stays in whatever it does.
        assert!(!fail(&all, 1, 10, &st, 0));
        assert!(!all[1].is_out(0));
        let one = pool(1);
        fail(&one, 0, 10, &st, 0);
        assert!(!one[0].is_out(0), "the last endpoint always stays");
    }

    #[test]
    fn health_checks_take_an_endpoint_out_and_bring_it_back_in_a_row() {
        let all = pool(3);
        assert_eq!(probed(&all, 0, false, 2, 3), None);
        assert_eq!(probed(&all, 0, false, 2, 3), None);
        // A pass between failures starts the count over.
        assert_eq!(probed(&all, 0, true, 2, 3), None);
        for _ in 0..2 {
            assert_eq!(probed(&all, 0, false, 2, 3), None);
        }
        assert_eq!(probed(&all, 0, false, 2, 3), Some(true));
        assert_eq!(all[0].state(0), State::Down);
        assert!(all[0].is_out(0) && !all[0].admits(0, &in_a_row()));
        assert_eq!(probed(&all, 0, true, 2, 3), None);
        assert_eq!(probed(&all, 0, true, 2, 3), Some(false));
        assert_eq!(all[0].state(0), State::Closed);
        assert_eq!(all[0].probes(), (3, 5));
        // Never the last endpoint up.
        for i in 0..2 {
            for _ in 0..3 {
                probed(&all, i, false, 2, 3);
            }
        }
        for _ in 0..5 {
            assert_eq!(probed(&all, 2, false, 2, 3), None);
        }
        assert!(!all[2].is_down());
    }

    #[test]
    fn a_429_with_retry_after_takes_out_for_exactly_that_then_back_in_full() {
        let three = pool(3);
        let st = in_a_row();
        let throttled = Outcome::Throttled(Some(Duration::from_secs(7)));
        assert!(report(&three, 2, throttled, &st, 0));
        assert_eq!(three[2].state(0), State::Throttled);
        assert_eq!(three[2].out_for(0), Some(Duration::from_secs(7)));
        assert_eq!(three[2].times_ejected(), 0);
        assert!(!three[2].admits(6 * S, &st));
        // Over: in rotation with no trials, closed by its next answer.
        assert_eq!(three[2].state(7 * S), State::Closed);
        assert!(three[2].admits(7 * S, &st));
        report(&three, 2, Outcome::Success, &st, 8 * S);
        assert!(!three[2].is_marked());
        // A 429 without Retry-After is a failure like a 5xx.
        assert!(!report(&three, 1, Outcome::Throttled(None), &st, 0));
        assert_eq!(three[1].failures.load(Ordering::Relaxed), 1);
        assert_eq!(three[1].totals(), (1, 1));
        assert_eq!(
            three[2].totals(),
            (2, 0),
            "a throttled answer is no failure"
        );
    }
}
