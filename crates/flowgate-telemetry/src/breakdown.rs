//! Where a request's time went: its latency split into the stages of its path, on every
//! request (not only traced ones), for the bottleneck analysis.
//!
//! The data plane keeps [`Laps`]: each mark ends a stage at the time it reads, so the
//! stages before the answer's head follow each other without gaps and add up to the
//! record's `duration`. What no mark names (routing, authentication, shaping, building
//! the response) is the gateway's own time; what follows the head, to the answer's last
//! byte, is `generation` (the upstream producing the answer and the client taking it: a
//! pass-through stream cannot tell the two apart without buffering it).

use std::time::{Duration, Instant};

/// A stage of a request's path, in the order a request meets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// The gateway's own work: routing, authentication, shaping, model choice, building
    /// the answer's head.
    Gateway,
    /// Reading the request's body from the client.
    Read,
    /// The rate limits (a shared limit's round trip to Redis included).
    Admission,
    /// The cache lookup (waiting for another request's flight included).
    Cache,
    /// Waiting for a concurrency permit.
    Queue,
    /// Attempts that did not answer, retry backoffs, hedging delays, fallbacks.
    Retries,
    /// Getting a connection for the answering attempt: a pooled one at once, else TCP and
    /// TLS, or a wait at the pool's cap.
    Connect,
    /// From the connection to the upstream's answer head: the request written and the
    /// upstream's time to its first byte.
    FirstByte,
    /// From the answer's head to its last byte.
    Generation,
}

impl Step {
    pub const ALL: [Step; 9] = [
        Step::Gateway,
        Step::Read,
        Step::Admission,
        Step::Cache,
        Step::Queue,
        Step::Retries,
        Step::Connect,
        Step::FirstByte,
        Step::Generation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Gateway => "gateway",
            Step::Read => "read",
            Step::Admission => "admission",
            Step::Cache => "cache",
            Step::Queue => "queue",
            Step::Retries => "retries",
            Step::Connect => "connect",
            Step::FirstByte => "first_byte",
            Step::Generation => "generation",
        }
    }

    pub fn parse(s: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// Microseconds spent in each [`Step`] (saturating at about 71 minutes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Breakdown([u32; Step::ALL.len()]);

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl Breakdown {
    pub fn add(&mut self, step: Step, d: Duration) {
        let v = &mut self.0[step as usize];
        *v = v.saturating_add(micros(d));
    }

    pub fn get(&self, step: Step) -> Duration {
        Duration::from_micros(u64::from(self.0[step as usize]))
    }

    /// The whole request's split, given its `duration` (to the answer's head) and `total`
    /// (to its last byte): what the marks did not name before the head is the gateway's,
    /// what came after it is generation.
    pub fn complete(mut self, duration: Duration, total: Duration) -> Breakdown {
        let named: u64 = self.0.iter().map(|v| u64::from(*v)).sum();
        let head = duration.as_micros() as u64;
        let rest = Duration::from_micros(head.saturating_sub(named));
        self.add(Step::Gateway, rest);
        self.add(Step::Generation, total.saturating_sub(duration));
        self
    }

    /// Each step with its time.
    pub fn iter(&self) -> impl Iterator<Item = (Step, Duration)> + '_ {
        Step::ALL.into_iter().map(|s| (s, self.get(s)))
    }
}

/// An attempt upstream under way: when it began, and once it has a connection, how long
/// getting it took.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    began: Instant,
    connect: Option<Duration>,
}

/// The marks of a request under way (see the module's notes).
#[derive(Debug, Clone, Default)]
pub struct Laps {
    last: Option<Instant>,
    attempt: Option<Attempt>,
    pub taken: Breakdown,
}

impl Laps {
    /// Marks begin at `start`, when the request's head arrived.
    pub fn from(start: Instant) -> Laps {
        Laps {
            last: Some(start),
            ..Laps::default()
        }
    }

    /// The time since the last mark was `step`'s.
    pub fn lap(&mut self, step: Step, now: Instant) {
        if let Some(last) = self.last {
            self.taken.add(step, now.saturating_duration_since(last));
        }
        self.last = Some(now);
    }

    /// An attempt upstream begins at `now`: the one before it (its own time and any
    /// backoff since) did not answer.
    pub fn attempt(&mut self, now: Instant) {
        match self.attempt.take() {
            Some(before) => self
                .taken
                .add(Step::Retries, now.saturating_duration_since(before.began)),
            None => self.lap(Step::Gateway, now),
        }
        self.attempt = Some(Attempt {
            began: now,
            connect: None,
        });
        self.last = Some(now);
    }

    /// The attempt under way got its connection after `connect` (`Duration::MAX`: it
    /// never got one).
    pub fn connected(&mut self, connect: Duration) {
        if let Some(a) = &mut self.attempt {
            a.connect = Some(connect);
        }
    }

    /// The forwarding ended at `now`, with an answer or not: the last attempt's time is its
    /// connection's, then the wait for its answer's head (a hedge's delay included); one
    /// cut by the request timeout before it said waited for its head.
    pub fn forwarded(&mut self, now: Instant) {
        match self.attempt.take() {
            Some(a) => {
                let took = now.saturating_duration_since(a.began);
                let connect = a.connect.unwrap_or_default().min(took);
                self.taken.add(Step::Connect, connect);
                self.taken.add(Step::FirstByte, took - connect);
                self.last = Some(now);
            }
            None => self.lap(Step::Gateway, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowgate_clock::{Clock, ManualClock};

    fn t0() -> Instant {
        ManualClock::at_epoch_2026().now()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn marks_follow_each_other_and_add_up_to_the_head() {
        let t0 = t0();
        let mut l = Laps::from(t0);
        l.lap(Step::Gateway, t0 + ms(1));
        l.lap(Step::Read, t0 + ms(4));
        l.lap(Step::Queue, t0 + ms(10));
        l.attempt(t0 + ms(11));
        l.connected(ms(2));
        l.forwarded(t0 + ms(43));
        let b = l.taken.complete(ms(45), ms(100));
        assert_eq!(b.get(Step::Gateway), ms(1 + 1 + 2));
        assert_eq!(b.get(Step::Read), ms(3));
        assert_eq!(b.get(Step::Queue), ms(6));
        assert_eq!(b.get(Step::Connect), ms(2));
        assert_eq!(b.get(Step::FirstByte), ms(30));
        assert_eq!(b.get(Step::Retries), ms(0));
        assert_eq!(b.get(Step::Generation), ms(55));
        let sum: Duration = b.iter().map(|(_, d)| d).sum();
        assert_eq!(sum, ms(100));
    }

    #[test]
    fn attempts_before_the_answering_one_are_retries() {
        let t0 = t0();
        let mut l = Laps::from(t0);
        l.attempt(t0);
        l.connected(ms(1));
        // It failed after 10 ms; a backoff of 5 ms, then the second attempt, which answers
        // on a pooled connection.
        l.attempt(t0 + ms(15));
        l.connected(ms(0));
        l.forwarded(t0 + ms(35));
        assert_eq!(l.taken.get(Step::Retries), ms(15));
        assert_eq!(l.taken.get(Step::FirstByte), ms(20));
        assert_eq!(l.taken.get(Step::Connect), ms(0));
        // A connection never got: all of the attempt was connecting.
        let mut l = Laps::from(t0);
        l.attempt(t0);
        l.connected(Duration::MAX);
        l.forwarded(t0 + ms(3));
        assert_eq!(l.taken.get(Step::Connect), ms(3));
        assert_eq!(l.taken.get(Step::FirstByte), ms(0));
    }

    #[test]
    fn an_attempt_cut_by_the_timeout_waited_for_its_head() {
        let t0 = t0();
        let mut l = Laps::from(t0);
        l.attempt(t0 + ms(1));
        l.forwarded(t0 + ms(30_001));
        assert_eq!(l.taken.get(Step::FirstByte), ms(30_000));
        // No attempt at all (no endpoint): the gateway's.
        let mut l = Laps::from(t0);
        l.forwarded(t0 + ms(2));
        assert_eq!(l.taken.get(Step::Gateway), ms(2));
    }

    #[test]
    fn long_times_saturate_and_names_read_back() {
        let mut b = Breakdown::default();
        b.add(Step::Queue, Duration::from_secs(10_000));
        b.add(Step::Queue, Duration::from_secs(10_000));
        assert_eq!(
            b.get(Step::Queue),
            Duration::from_micros(u64::from(u32::MAX))
        );
        for s in Step::ALL {
            assert_eq!(Step::parse(s.as_str()), Some(s));
        }
        assert_eq!(Step::parse("nope"), None);
        // A head shorter than what was named (clock steps): nothing negative.
        let b = b.complete(ms(1), ms(0));
        assert_eq!(b.get(Step::Gateway), ms(0));
        assert_eq!(b.get(Step::Generation), ms(0));
    }
}
