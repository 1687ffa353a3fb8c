//! flowgate's load balancer: which endpoint of a pool gets the next request.
//!
//! A [`Balancer`] holds one [`Node`] per endpoint (its weight, its requests in flight, its
//! peak-EWMA latency) and picks by the pool's [`Strategy`]. Every piece of state is an
//! atomic: picking and reporting take no lock, so workers never wait on each other.
//!
//! - `round_robin`: each endpoint in turn.
//! - `weighted`: smooth weighted round robin (nginx's): over one cycle of `Σ weights` picks
//!   each endpoint gets exactly its weight, spread out rather than in runs. The cycle is
//!   computed once; picking is an atomic increment.
//! - `least_loaded`: the fewest requests in flight, ties broken at random.
//! - `p2c_ewma` (the default): two endpoints at random, the one with the lower
//!   `peak-EWMA latency × √(in flight + 1)` wins (Finagle's and linkerd's balancer, with a
//!   square root on the load: see `docs/decisions/2026-11-23-p2c-load-term.md`). Peak
//!   EWMA jumps up to a slower sample at once and decays towards faster ones with time
//!   (`decay`), so a slowing endpoint loses traffic immediately and wins it back gradually.
//! - `consistent_hash`: a ring of 160 points per endpoint (weighted), hashed with XXH3 so
//!   that every replica maps a key to the same endpoint; with bounded load: an endpoint with
//!   more than `1.25 ×` the average in flight passes the key to the next one on the ring.
//! - `random`.
//!
//! The caller counts the requests in flight (the gateway's endpoints count connections in
//! use until each answer's body ends) and gives that count to each pick, with the endpoints
//! a request may use (health, ejection and breakers come on top).

pub mod advice;
pub mod affinity;
mod ewma;
pub mod health;
pub mod locality;
pub mod quantile;
pub mod retry;
mod ring;
mod wrr;

use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flowgate_clock::SharedClock;

pub use affinity::{Place, SessionCounts, Sessions};
pub use ewma::PeakEwma;
pub use health::{Health, Outcome, OutlierSettings, State, Transitions, probed};
pub use locality::{Choice, Levels};
pub use quantile::Latencies;
pub use retry::{RetryBudget, backoff, jitter};

pub use flowgate_config::BalanceStrategy as Strategy;

/// One endpoint's state.
#[derive(Debug)]
pub struct Node {
    weight: u32,
    latency: PeakEwma,
}

impl Node {
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// The peak-EWMA latency now.
    pub fn latency(&self, now_ns: u64) -> Duration {
        Duration::from_nanos(self.latency.get(now_ns))
    }
}

/// A pool's balancer.
#[derive(Debug)]
pub struct Balancer {
    /// The strategy's index in `Strategy::ALL` (switchable at run time).
    strategy: AtomicU8,
    nodes: Box<[Node]>,
    next: AtomicUsize,
    /// One cycle of smooth weighted round robin.
    cycle: Box<[u32]>,
    ring: ring::Ring,
    health: Box<[Health]>,
    outliers: OutlierSettings,
    /// Priority levels and regions, when the endpoints have them.
    levels: Option<Levels>,
    /// The random draws' state (splitmix64): seeded, so that a simulation repeats.
    draws: AtomicU64,
    clock: SharedClock,
    origin: Instant,
}

fn index_of(s: Strategy) -> u8 {
    Strategy::ALL.iter().position(|x| *x == s).unwrap_or(0) as u8
}

/// Moves `epoch` on to `e` if it is behind; the epoch it was at when this call moved it
/// (the caller then rolls its generations over), `None` when there was nothing to do or
/// another thread did it.
pub(crate) fn advance(epoch: &std::sync::atomic::AtomicU64, e: u64) -> Option<u64> {
    let old = epoch.load(Ordering::Relaxed);
    (old != e
        && epoch
            .compare_exchange(old, e, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok())
    .then_some(old)
}

/// Which attempt of a request a pick is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// The first: it takes a turn and goes by priority level and region.
    First,
    /// A retry or a hedge: no turn, any level.
    Again,
    /// What the first would be, changing nothing.
    Preview,
}

/// Load above which consistent hashing passes a key on: 1.25 × the average in flight.
const BOUND: f64 = 1.25;

impl Balancer {
    /// A balancer over endpoints of these `weights` (0 counts as 1), whose latency
    /// averages forget with a time constant of `decay`.
    pub fn new(strategy: Strategy, weights: &[u32], decay: Duration, clock: SharedClock) -> Self {
        let weights: Vec<u32> = weights.iter().map(|w| (*w).max(1)).collect();
        let origin = clock.now();
        Balancer {
            strategy: AtomicU8::new(index_of(strategy)),
            nodes: weights
                .iter()
                .map(|w| Node {
                    weight: *w,
                    latency: PeakEwma::new(decay),
                })
                .collect(),
            next: AtomicUsize::new(0),
            cycle: wrr::cycle(&weights).into_boxed_slice(),
            ring: ring::Ring::new(&weights),
            health: weights.iter().map(|_| Health::default()).collect(),
            outliers: OutlierSettings::default(),
            levels: None,
            draws: AtomicU64::new(std::hash::BuildHasher::hash_one(
                &std::hash::RandomState::new(),
                0u64,
            )),
            clock,
            origin,
        }
    }

    /// With this ejection policy instead of the default one.
    pub fn with_outliers(mut self, outliers: OutlierSettings) -> Self {
        self.outliers = outliers;
        self
    }

    /// With its random draws starting from `seed` (a simulation that repeats exactly).
    pub fn with_seed(self, seed: u64) -> Self {
        self.draws.store(seed, Ordering::Relaxed);
        self
    }

    /// A random number (splitmix64 over an atomic counter: lock-free, and the same sequence
    /// for the same seed).
    fn draw(&self) -> u64 {
        let mut z = self
            .draws
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A random index below `n` (> 0).
    fn below(&self, n: usize) -> usize {
        ((u128::from(self.draw()) * n as u128) >> 64) as usize
    }

    /// A random number in `0..1`.
    fn unit(&self) -> f64 {
        (self.draw() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// With priority levels and regions (see [`Levels`]).
    pub fn with_levels(mut self, levels: Option<Levels>) -> Self {
        self.levels = levels;
        self
    }

    pub fn health(&self) -> &[Health] {
        &self.health
    }

    pub fn outliers(&self) -> &OutlierSettings {
        &self.outliers
    }

    /// Whether endpoint `i` can take a request now: its breaker is closed, or half-open
    /// with a trial to spare (no trial is taken).
    pub fn admits(&self, i: usize) -> bool {
        self.health
            .get(i)
            .is_some_and(|h| !h.is_marked() || h.admits(self.now_ns(), &self.outliers))
    }

    /// Sends a request to endpoint `i` chosen by other means (a session's endpoint), if it
    /// can take one now; a half-open endpoint counts it as a trial.
    pub fn claim(&self, i: usize) -> bool {
        let Some(h) = self.health.get(i) else {
            return false;
        };
        if !h.is_marked() {
            return true;
        }
        let now = self.now_ns();
        if !h.admits(now, &self.outliers) {
            return false;
        }
        h.picked(now, &self.outliers);
        true
    }

    /// Takes how a request to endpoint `i` went; whether that ejected it.
    pub fn report(&self, i: usize, outcome: Outcome) -> bool {
        self.report_at(self.now_ns(), i, None, outcome)
    }

    /// Takes how a request to endpoint `i` went at `now_ns` and, when it answered, how long
    /// that took; whether that opened its breaker.
    pub fn report_at(
        &self,
        now_ns: u64,
        i: usize,
        latency: Option<Duration>,
        outcome: Outcome,
    ) -> bool {
        if let (Some(l), Some(n)) = (latency, self.nodes.get(i)) {
            n.latency.observe(now_ns, l);
        }
        health::report(&self.health, i, outcome, &self.outliers, now_ns)
    }

    pub fn strategy(&self) -> Strategy {
        Strategy::ALL
            .get(usize::from(self.strategy.load(Ordering::Relaxed)))
            .copied()
            .unwrap_or_default()
    }

    /// Switches the strategy; picks after this use the new one (every strategy's state is
    /// kept up to date, so the switch needs no warm-up).
    pub fn set_strategy(&self, s: Strategy) {
        self.strategy.store(index_of(s), Ordering::Relaxed);
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Nanoseconds on the balancer's clock.
    pub fn now_ns(&self) -> u64 {
        let d = self.clock.now().saturating_duration_since(self.origin);
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    }

    /// The endpoint for the next request, among those `usable` accepts and not ejected,
    /// with `load(i)` requests in flight on endpoint `i` (`key`: the request's hash attribute, for
    /// `consistent_hash`); `None` when no endpoint may be used.
    pub fn pick(
        &self,
        key: Option<&[u8]>,
        usable: impl Fn(usize) -> bool,
        load: impl Fn(usize) -> u32,
    ) -> Option<usize> {
        self.choose(key, None, usable, load, Attempt::First)
    }

    /// Like [`Balancer::pick`] for a request from `region` (the client's, or the gateway's
    /// own): with [`Balancer::with_levels`], among the priority level and region the
    /// [`Levels`] choose, else (none of those can take it) among all.
    pub fn pick_in(
        &self,
        region: Option<&str>,
        key: Option<&[u8]>,
        usable: impl Fn(usize) -> bool,
        load: impl Fn(usize) -> u32,
    ) -> Option<usize> {
        self.choose(key, region, usable, load, Attempt::First)
    }

    /// The endpoint [`Balancer::pick_in`] would choose now, changing nothing: no turn
    /// taken, no trial counted (for the admin API's simulate-request).
    pub fn preview(
        &self,
        region: Option<&str>,
        key: Option<&[u8]>,
        usable: impl Fn(usize) -> bool,
        load: impl Fn(usize) -> u32,
    ) -> Option<usize> {
        self.choose(key, region, usable, load, Attempt::Preview)
    }

    /// Like [`Balancer::pick`] for a retry of the same request: in turn-based strategies
    /// it takes no turn, so that an endpoint that failed does not get every first attempt.
    pub fn pick_again(
        &self,
        key: Option<&[u8]>,
        usable: impl Fn(usize) -> bool,
        load: impl Fn(usize) -> u32,
    ) -> Option<usize> {
        self.choose(key, None, usable, load, Attempt::Again)
    }

    fn choose(
        &self,
        key: Option<&[u8]>,
        region: Option<&str>,
        usable: impl Fn(usize) -> bool,
        load: impl Fn(usize) -> u32,
        attempt: Attempt,
    ) -> Option<usize> {
        let n = self.nodes.len();
        if n == 0 {
            return None;
        }
        let take_turn = attempt == Attempt::First;
        // Open breakers are out, half-open ones take a few trials (each one's state is
        // read only when one is not closed).
        let now = self.now_ns();
        let marked = self.health.iter().any(Health::is_marked);
        let usable =
            |i: usize| usable(i) && (!marked || self.health[i].admits(now, &self.outliers));
        // A first attempt goes to the level (and region) the levels choose while it can.
        let placed = self
            .levels
            .as_ref()
            .filter(|_| attempt != Attempt::Again)
            .and_then(|l| {
                let c = l.choose(region, usable, || self.unit());
                self.by_strategy(
                    n,
                    key,
                    now,
                    &|i| l.allows(&c, i) && usable(i),
                    &load,
                    take_turn,
                )
            });
        let picked = placed.or_else(|| self.by_strategy(n, key, now, &usable, &load, take_turn));
        if marked
            && attempt != Attempt::Preview
            && let Some(i) = picked
        {
            self.health[i].picked(now, &self.outliers);
        }
        picked
    }

    fn by_strategy(
        &self,
        n: usize,
        key: Option<&[u8]>,
        now: u64,
        usable: &impl Fn(usize) -> bool,
        load: &impl Fn(usize) -> u32,
        take_turn: bool,
    ) -> Option<usize> {
        match self.strategy() {
            Strategy::RoundRobin => self.in_turn(n, take_turn, usable, |i| i % n),
            Strategy::Weighted => {
                let cycle = &self.cycle;
                self.in_turn(cycle.len(), take_turn, usable, |i| {
                    cycle[i % cycle.len()] as usize
                })
            }
            Strategy::LeastLoaded => self.least_loaded(usable, load),
            Strategy::P2cEwma => self.p2c(now, usable, load),
            Strategy::ConsistentHash => match key {
                Some(k) => self.hashed(k, usable, load),
                None => self.p2c(now, usable, load),
            },
            Strategy::Random => {
                let start = self.below(n);
                (0..n).map(|d| (start + d) % n).find(|i| usable(*i))
            }
        }
    }

    /// The next in a sequence of `len` turns whose turn `t` is endpoint `at(t)`, skipping
    /// unusable ones (at most one round of them); one turn is taken when `take_turn`.
    fn in_turn(
        &self,
        len: usize,
        take_turn: bool,
        usable: &impl Fn(usize) -> bool,
        at: impl Fn(usize) -> usize,
    ) -> Option<usize> {
        let start = if take_turn {
            self.next.fetch_add(1, Ordering::Relaxed)
        } else {
            self.next.load(Ordering::Relaxed)
        };
        let first = at(start);
        if usable(first) {
            return Some(first);
        }
        // Its turn goes to the usable ones in turn, not to the next one alone (which would
        // take twice its share).
        let usable_ones: Vec<usize> = (0..len)
            .map(|d| at(start.wrapping_add(d)))
            .filter(|i| usable(*i))
            .collect();
        let m = usable_ones.len();
        (m > 0).then(|| usable_ones[(start / len.max(1)) % m])
    }

    fn least_loaded(
        &self,
        usable: &impl Fn(usize) -> bool,
        load: &impl Fn(usize) -> u32,
    ) -> Option<usize> {
        let (mut best, mut best_load, mut ties) = (None, u32::MAX, 0usize);
        for i in 0..self.nodes.len() {
            if !usable(i) {
                continue;
            }
            let l = load(i);
            if l < best_load {
                (best, best_load, ties) = (Some(i), l, 1);
            } else if l == best_load {
                // Reservoir sampling over the ties: each has the same chance.
                ties += 1;
                if self.below(ties) == 0 {
                    best = Some(i);
                }
            }
        }
        best
    }

    /// Power of two choices over peak-EWMA latency × √(in flight + 1) / weight.
    fn p2c(
        &self,
        now: u64,
        usable: &impl Fn(usize) -> bool,
        load: &impl Fn(usize) -> u32,
    ) -> Option<usize> {
        let n = self.nodes.len();
        let cost = |i: usize| {
            let node = &self.nodes[i];
            // An endpoint never measured costs as little as the fastest can: it gets tried.
            (node.latency.get(now) as f64 + 1.0) * (f64::from(load(i)) + 1.0).sqrt()
                / f64::from(node.weight)
        };
        let two = |n: usize| {
            let a = self.below(n);
            (
                a,
                if n > 1 {
                    (a + 1 + self.below(n - 1)) % n
                } else {
                    a
                },
            )
        };
        let (a, b) = two(n);
        if usable(a) && usable(b) {
            return Some(if cost(b) < cost(a) { b } else { a });
        }
        // Some are out: two of the usable ones (taking the other of a pair whose one is out
        // would hand the out one's share to whichever it was drawn with).
        let ok: smallvec::SmallVec<[usize; 16]> = (0..n).filter(|i| usable(*i)).collect();
        if ok.is_empty() {
            return None;
        }
        let (x, y) = two(ok.len());
        let (a, b) = (ok[x], ok[y]);
        Some(if cost(b) < cost(a) { b } else { a })
    }

    fn hashed(
        &self,
        key: &[u8],
        usable: &impl Fn(usize) -> bool,
        load: &impl Fn(usize) -> u32,
    ) -> Option<usize> {
        let total: u32 = (0..self.nodes.len()).map(load).sum();
        let usable_n = (0..self.nodes.len()).filter(|i| usable(*i)).count().max(1);
        // The bound counts the request being placed.
        let bound = ((f64::from(total) + 1.0) / usable_n as f64 * BOUND).ceil() as u32;
        let mut first_usable = None;
        for i in self.ring.walk(key) {
            if !usable(i) {
                continue;
            }
            first_usable.get_or_insert(i);
            if load(i) < bound {
                return Some(i);
            }
        }
        first_usable
    }

    /// Takes one latency sample of endpoint `i`.
    pub fn observe(&self, i: usize, latency: Duration) {
        if let Some(n) = self.nodes.get(i) {
            n.latency.observe(self.now_ns(), latency);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowgate_clock::ManualClock;

    fn balancer(s: Strategy, weights: &[u32]) -> (Balancer, ManualClock) {
        let clock = ManualClock::at_epoch_2026();
        (
            Balancer::new(s, weights, Duration::from_secs(10), clock.shared()),
            clock,
        )
    }

    /// Endpoints picked for `n` requests (keyed by `key`), with `load[i]` in flight on each.
    fn counts(
        b: &Balancer,
        n: usize,
        load: &[u32],
        key: impl Fn(usize) -> Option<Vec<u8>>,
    ) -> Vec<usize> {
        let mut c = vec![0; b.nodes().len()];
        for i in 0..n {
            let at = |j: usize| load.get(j).copied().unwrap_or(0);
            c[b.pick(key(i).as_deref(), |_| true, at).unwrap()] += 1;
        }
        c
    }

    const IDLE: &[u32] = &[];

    #[test]
    fn round_robin_and_weighted_share_exactly() {
        let (rr, _) = balancer(Strategy::RoundRobin, &[1, 1, 1]);
        assert_eq!(counts(&rr, 300, IDLE, |_| None), [100, 100, 100]);
        // Switched at run time.
        rr.set_strategy(Strategy::LeastLoaded);
        assert_eq!(rr.strategy(), Strategy::LeastLoaded);
        assert_eq!(counts(&rr, 30, &[1, 0, 1], |_| None), [0, 30, 0]);
        let (w, _) = balancer(Strategy::Weighted, &[5, 1, 1]);
        assert_eq!(counts(&w, 700, IDLE, |_| None), [500, 100, 100]);
        // Smooth: the heavy endpoint's turns are spread, never five in a row.
        let seq: Vec<usize> = (0..7)
            .map(|_| w.pick(None, |_| true, |_| 0).unwrap())
            .collect();
        assert!(
            !seq.windows(5).any(|s| s.iter().all(|&i| i == 0)),
            "{seq:?}"
        );
    }

    #[test]
    fn unusable_endpoints_are_skipped_by_every_strategy() {
        for s in Strategy::ALL {
            let (b, _) = balancer(s, &[1, 2, 3]);
            for i in 0..50 {
                let key = format!("k{i}");
                assert_eq!(
                    b.pick(Some(key.as_bytes()), |i| i == 1, |_| 0),
                    Some(1),
                    "{s:?}"
                );
            }
            assert_eq!(b.pick(None, |_| false, |_| 0), None, "{s:?}");
        }
        let (empty, _) = balancer(Strategy::P2cEwma, &[]);
        assert_eq!(empty.pick(None, |_| true, |_| 0), None);
    }

    #[test]
    fn an_ejected_endpoint_gets_nothing_until_its_time_is_over() {
        let (b, clock) = balancer(Strategy::RoundRobin, &[1, 1, 1]);
        for _ in 0..5 {
            b.report(0, Outcome::Failure);
        }
        assert_eq!(counts(&b, 30, IDLE, |_| None), [0, 15, 15]);
        // Half-open: three trials, no more until they answer.
        clock.advance(Duration::from_secs(30));
        assert_eq!(counts(&b, 30, IDLE, |_| None), [3, 13, 14]);
        for _ in 0..3 {
            b.report(0, Outcome::Success);
        }
        assert_eq!(b.health()[0].state(b.now_ns()), State::Closed);
        assert_eq!(counts(&b, 30, IDLE, |_| None), [10, 10, 10]);
    }

    #[test]
    fn least_loaded_goes_where_fewest_requests_are() {
        let (b, _) = balancer(Strategy::LeastLoaded, &[1, 1, 1]);
        assert_eq!(counts(&b, 20, &[2, 0, 1], |_| None), [0, 20, 0]);
        let c = counts(&b, 300, &[0, 0, 1], |_| None);
        assert_eq!(c[2], 0);
        assert!(c[0] > 100 && c[1] > 100, "ties at random: {c:?}");
    }

    #[test]
    fn p2c_sends_less_to_a_slow_endpoint_and_more_again_once_it_recovers() {
        let (b, clock) = balancer(Strategy::P2cEwma, &[1, 1, 1]);
        for _ in 0..20 {
            b.observe(0, Duration::from_millis(20));
            b.observe(1, Duration::from_millis(100));
            b.observe(2, Duration::from_millis(20));
        }
        let c = counts(&b, 3000, IDLE, |_| None);
        // With two choices, the slow one only wins when drawn against itself: never.
        assert_eq!(c[1], 0, "{c:?}");
        assert!(c[0] > 1200 && c[2] > 1200, "{c:?}");
        // It speeds up: its peak decays over time with faster samples, and it gets its share.
        for _ in 0..50 {
            clock.advance(Duration::from_secs(1));
            for i in 0..3 {
                b.observe(i, Duration::from_millis(20));
            }
        }
        let c = counts(&b, 3000, IDLE, |_| None);
        assert!(c[1] > 700, "{c:?}");
        // Load counts too: requests piled on an endpoint make it lose.
        let c = counts(&b, 3000, &[10, 0, 0], |_| None);
        assert!(c[0] < 300, "{c:?}");
    }

    #[test]
    fn p2c_draws_among_the_usable_endpoints_only() {
        let (b, _) = balancer(Strategy::P2cEwma, &[1, 1, 1]);
        for _ in 0..5 {
            b.observe(0, Duration::from_millis(20));
            b.observe(1, Duration::from_millis(100));
        }
        // Endpoint 2 is out: a pair (1, 2) must not hand its turn to the slow one.
        let mut c = [0usize; 3];
        for _ in 0..3000 {
            c[b.pick(None, |i| i != 2, |_| 0).unwrap()] += 1;
        }
        assert_eq!(c, [3000, 0, 0]);
    }

    #[test]
    fn the_same_seed_draws_the_same_picks() {
        let picks = |seed| {
            let (b, _) = balancer(Strategy::Random, &[1, 1, 1, 1]);
            let b = b.with_seed(seed);
            (0..50)
                .map(|_| b.pick(None, |_| true, |_| 0).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(picks(7), picks(7));
        assert_ne!(picks(7), picks(8));
    }

    #[test]
    fn consistent_hash_keeps_a_key_on_its_endpoint_unless_it_is_overloaded() {
        let (b, _) = balancer(Strategy::ConsistentHash, &[1, 1, 1, 1]);
        let pick = |b: &Balancer, load: &[u32]| {
            b.pick(
                Some(b"session-42"),
                |_| true,
                |i| load.get(i).copied().unwrap_or(0),
            )
        };
        let home = pick(&b, IDLE).unwrap();
        for _ in 0..10 {
            assert_eq!(pick(&b, IDLE), Some(home));
        }
        // The same key maps the same way in another balancer (another replica).
        let (other, _) = balancer(Strategy::ConsistentHash, &[1, 1, 1, 1]);
        assert_eq!(pick(&other, IDLE), Some(home));
        // Its endpoint carries more than 1.25 × the average: the key moves on.
        let mut load = [0u32; 4];
        load[home] = 8;
        assert_ne!(pick(&b, &load), Some(home));
        // As loaded as the others: it keeps its key.
        assert_eq!(pick(&b, &[1, 1, 1, 1]), Some(home));
        // Keys spread over the endpoints.
        let c = counts(&b, 4000, IDLE, |i| Some(format!("user-{i}").into_bytes()));
        assert!(c.iter().all(|&n| n > 500), "{c:?}");
    }
}
