//! What a pool's own measurements say would serve it better: a latency-aware strategy for
//! a pool whose endpoints differ in speed but are picked blind to it, weights that follow
//! the endpoints' speed and success for a `weighted` pool, and outlier detection for an
//! endpoint failing while its peers do not. Each piece of advice carries what it rests on
//! and what it is expected to change; none is given on too few answers.

use crate::Strategy;

/// Answers an endpoint must have given in the outlier window before its latency and
/// success count.
pub const MIN_ANSWERS: u32 = 20;

/// The slowest endpoint's latency over the fastest's from which the difference matters.
pub const SPREAD: f64 = 1.5;

/// The expected mean latency must fall by at least this share for a change to be advised.
pub const GAIN: f64 = 0.10;

/// What was seen of one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub name: String,
    pub weight: u32,
    /// Its peak-EWMA latency now, in milliseconds.
    pub latency_ms: f64,
    /// Answers in the outlier window, and how many of them failed.
    pub answers: u32,
    pub failures: u32,
    /// Out (ejected, breaker open, down by health checks).
    pub out: bool,
}

impl Seen {
    fn success(&self) -> f64 {
        if self.answers == 0 {
            return 1.0;
        }
        1.0 - f64::from(self.failures) / f64::from(self.answers)
    }

    fn counts(&self) -> bool {
        !self.out && self.answers >= MIN_ANSWERS && self.latency_ms > 0.0
    }
}

/// A change advised for a pool.
#[derive(Debug, Clone, PartialEq)]
pub enum Advice {
    /// Pick by latency (`p2c_ewma`) instead of blind to it.
    Strategy {
        to: Strategy,
        /// The mean latency of the answers as they were spread, and as they would be
        /// spread by speed and success.
        mean_ms_now: f64,
        mean_ms_expected: f64,
        /// The slowest counted endpoint's latency over the fastest's.
        spread: f64,
    },
    /// New weights, one per endpoint in the order seen (`weighted` pools).
    Weights {
        to: Vec<u32>,
        mean_ms_now: f64,
        mean_ms_expected: f64,
    },
    /// `endpoint` fails far more often than the others and outlier detection does not
    /// take it out on its failure share.
    Failing {
        endpoint: usize,
        success: f64,
        others_success: f64,
        /// A failure share (percent) that would eject it.
        failure_percent: u32,
    },
}

/// What `advise` found for a pool: its advice, or why it has none.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    Advice(Vec<Advice>),
    /// Nothing to advise, and why.
    Nothing(String),
}

/// Advice for a pool picking by `strategy` whose endpoints were `seen`, given its
/// outlier detection's failure share (`failure_percent`, 0 when off).
pub fn advise(strategy: Strategy, seen: &[Seen], failure_percent: u32) -> Finding {
    let counted: Vec<usize> = (0..seen.len()).filter(|i| seen[*i].counts()).collect();
    if counted.len() < 2 {
        return Finding::Nothing(format!(
            "fewer than two endpoints in service with {MIN_ANSWERS} answers in the outlier window"
        ));
    }
    let mut advice = Vec::new();
    advice.extend(failing(seen, &counted, failure_percent));
    let answers: f64 = counted.iter().map(|i| f64::from(seen[*i].answers)).sum();
    let mean_ms_now = counted
        .iter()
        .map(|i| f64::from(seen[*i].answers) / answers * seen[*i].latency_ms)
        .sum::<f64>();
    // Traffic in proportion to speed and success: what a latency-aware pick tends to.
    let merit = |i: usize| seen[i].success() / seen[i].latency_ms;
    let total: f64 = counted.iter().map(|i| merit(*i)).sum();
    let mean_ms_expected = counted
        .iter()
        .map(|i| merit(*i) / total * seen[*i].latency_ms)
        .sum::<f64>();
    let (fast, slow) = counted.iter().fold((f64::MAX, 0.0f64), |(lo, hi), i| {
        (lo.min(seen[*i].latency_ms), hi.max(seen[*i].latency_ms))
    });
    let spread = slow / fast;
    let gains = mean_ms_expected <= mean_ms_now * (1.0 - GAIN);
    match strategy {
        Strategy::RoundRobin | Strategy::Random if spread >= SPREAD && gains => {
            advice.push(Advice::Strategy {
                to: Strategy::P2cEwma,
                mean_ms_now,
                mean_ms_expected,
                spread,
            });
        }
        Strategy::Weighted if spread >= SPREAD && gains => {
            let best = counted.iter().map(|i| merit(*i)).fold(0.0, f64::max);
            let to = (0..seen.len())
                .map(|i| {
                    if counted.contains(&i) {
                        ((merit(i) / best * 100.0).round() as u32).max(1)
                    } else {
                        seen[i].weight
                    }
                })
                .collect();
            advice.push(Advice::Weights {
                to,
                mean_ms_now,
                mean_ms_expected,
            });
        }
        _ => {}
    }
    if advice.is_empty() {
        let why = match strategy {
            Strategy::P2cEwma | Strategy::LeastLoaded => {
                "the strategy already follows the endpoints' latency or load".to_string()
            }
            Strategy::ConsistentHash => {
                "consistent_hash keeps keys on their endpoints; picking by speed would \
                 break that"
                    .to_string()
            }
            _ => format!(
                "the endpoints' latencies are within {SPREAD}x of each other (now {spread:.2}x) \
                 or spreading by them would gain less than {:.0}%",
                GAIN * 100.0
            ),
        };
        return Finding::Nothing(why);
    }
    Finding::Advice(advice)
}

/// Endpoints whose failure share is far above their peers' and that outlier detection
/// would not eject.
fn failing(seen: &[Seen], counted: &[usize], failure_percent: u32) -> Vec<Advice> {
    counted
        .iter()
        .filter_map(|&i| {
            let success = seen[i].success();
            let (ok, all) =
                counted
                    .iter()
                    .filter(|j| **j != i)
                    .fold((0u64, 0u64), |(ok, all), j| {
                        let s = &seen[*j];
                        (
                            ok + u64::from(s.answers - s.failures.min(s.answers)),
                            all + u64::from(s.answers),
                        )
                    });
            let others_success = ok as f64 / all.max(1) as f64;
            let fails = (1.0 - success) * 100.0;
            let ejects = failure_percent > 0 && fails >= f64::from(failure_percent);
            (success < 0.9 && others_success >= 0.98 && !ejects).then(|| Advice::Failing {
                endpoint: i,
                success,
                others_success,
                // Halfway between the peers' failure share and this one's.
                failure_percent: ((fails + (1.0 - others_success) * 100.0) / 2.0)
                    .floor()
                    .max(1.0) as u32,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(name: &str, latency_ms: f64, answers: u32, failures: u32) -> Seen {
        Seen {
            name: name.into(),
            weight: 1,
            latency_ms,
            answers,
            failures,
            out: false,
        }
    }

    #[test]
    fn a_blind_pool_over_endpoints_of_different_speeds_is_told_to_pick_by_latency() {
        let seen = [ep("a", 100.0, 50, 0), ep("b", 300.0, 50, 0)];
        let Finding::Advice(a) = advise(Strategy::RoundRobin, &seen, 0) else {
            panic!("advice expected")
        };
        let [
            Advice::Strategy {
                to,
                mean_ms_now,
                mean_ms_expected,
                spread,
            },
        ] = a.as_slice()
        else {
            panic!("{a:?}")
        };
        assert_eq!(*to, Strategy::P2cEwma);
        assert!((mean_ms_now - 200.0).abs() < 1e-9);
        // Traffic 3:1 towards the faster: 0.75 × 100 + 0.25 × 300.
        assert!((mean_ms_expected - 150.0).abs() < 1e-9);
        assert!((spread - 3.0).abs() < 1e-9);
    }

    #[test]
    fn a_weighted_pool_gets_weights_by_speed_and_success() {
        let mut seen = [
            ep("a", 100.0, 100, 0),
            ep("b", 200.0, 100, 0),
            ep("c", 50.0, 5, 0),
        ];
        seen[2].weight = 7;
        let Finding::Advice(a) = advise(Strategy::Weighted, &seen, 0) else {
            panic!("advice expected")
        };
        let Some(Advice::Weights { to, .. }) = a.first() else {
            panic!("{a:?}")
        };
        // c has too few answers to count: its weight stays.
        assert_eq!(to, &vec![100, 50, 7]);
    }

    #[test]
    fn an_endpoint_failing_alone_is_named_with_a_failure_share_that_ejects_it() {
        let seen = [ep("a", 100.0, 100, 30), ep("b", 100.0, 100, 0)];
        let Finding::Advice(a) = advise(Strategy::P2cEwma, &seen, 0) else {
            panic!("advice expected")
        };
        assert_eq!(
            a,
            vec![Advice::Failing {
                endpoint: 0,
                success: 0.7,
                others_success: 1.0,
                failure_percent: 15,
            }]
        );
        // Outlier detection already ejecting at 20% failures: nothing to say.
        assert!(matches!(
            advise(Strategy::P2cEwma, &seen, 20),
            Finding::Nothing(_)
        ));
    }

    #[test]
    fn nothing_is_advised_on_too_few_answers_similar_speeds_or_a_latency_aware_pool() {
        let few = [ep("a", 100.0, 19, 0), ep("b", 400.0, 100, 0)];
        assert!(matches!(
            advise(Strategy::RoundRobin, &few, 0),
            Finding::Nothing(w) if w.contains("fewer than two")
        ));
        let alike = [ep("a", 100.0, 50, 0), ep("b", 140.0, 50, 0)];
        assert!(matches!(
            advise(Strategy::RoundRobin, &alike, 0),
            Finding::Nothing(w) if w.contains("1.40x")
        ));
        let apart = [ep("a", 100.0, 50, 0), ep("b", 400.0, 50, 0)];
        for s in [
            Strategy::P2cEwma,
            Strategy::LeastLoaded,
            Strategy::ConsistentHash,
        ] {
            assert!(matches!(advise(s, &apart, 0), Finding::Nothing(_)), "{s:?}");
        }
        let mut out = apart.clone();
        out[1].out = true;
        assert!(matches!(
            advise(Strategy::RoundRobin, &out, 0),
            Finding::Nothing(_)
        ));
    }
}
