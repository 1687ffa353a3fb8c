//! A deterministic simulation of the balancer on virtual time (issue 5's measurement): three
//! endpoints, one 5× slower and one failing 20% of its requests, under Poisson arrivals;
//! p50/p99 and the client-visible error rate per strategy, without and with retries (and the
//! retry budget), and with hedging at the pool's p95. The same seed gives the same numbers.
//!
//! cargo run --release -p flowgate-balance --example simulate [-- SEED]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use flowgate_balance::{Balancer, Latencies, Outcome, RetryBudget, Strategy};
use flowgate_clock::ManualClock;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Endpoints: base latency (ms) and failure share.
const ENDPOINTS: [(f64, f64); 3] = [(20.0, 0.0), (100.0, 0.0), (20.0, 0.2)];
/// Arrival rates: a moderate load (each fast endpoint about one request in flight) and a
/// heavy one (about four: the load term of P2C's cost then sends some to the slow one).
const RATES_PER_S: [f64; 2] = [50.0, 200.0];
const SECONDS: f64 = 120.0;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Plain,
    Retries,
    Hedged,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Arrive,
    /// An attempt of request `req`, sent to endpoint `ep` at `sent`, is answered.
    Answer {
        req: usize,
        ep: usize,
        sent: u64,
    },
    /// Request `req`'s hedging delay is over.
    Hedge {
        req: usize,
    },
}

struct Request {
    start: u64,
    done: bool,
    attempts: u8,
    tried: Vec<usize>,
    /// Attempts in flight (a hedge may make two).
    out: u8,
}

struct Report {
    p50: f64,
    p99: f64,
    errors: f64,
    upstream_per_request: f64,
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn run(strategy: Strategy, mode: Mode, rate: f64, seed: u64) -> Report {
    let clock = ManualClock::at_epoch_2026();
    let balancer = Balancer::new(
        strategy,
        &[1, 1, 1],
        Duration::from_secs(10),
        clock.shared(),
    )
    .with_seed(seed);
    let budget = RetryBudget::new(20, 3);
    let latencies = Latencies::new(Duration::from_secs(30));
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut in_flight = [0u32; 3];
    let mut events: BinaryHeap<Reverse<(u64, u64, Event)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push = |events: &mut BinaryHeap<_>, t: u64, e: Event| {
        seq += 1;
        events.push(Reverse((t, seq, e)));
    };
    let mut requests: Vec<Request> = Vec::new();
    let (mut took, mut failed, mut upstream) = (Vec::new(), 0usize, 0usize);
    let end = (SECONDS * 1e9) as u64;
    push(&mut events, 0, Event::Arrive);
    let mut now = 0u64;
    // Sends attempt of request `req` to an endpoint (one it has not tried, if it can).
    let send = |req: usize,
                requests: &mut Vec<Request>,
                in_flight: &mut [u32; 3],
                rng: &mut SmallRng,
                now: u64|
     -> Option<(u64, Event)> {
        let r = &mut requests[req];
        let load = |i: usize| in_flight[i];
        let ep = if r.tried.is_empty() {
            balancer.pick(None, |_| true, load)?
        } else {
            let tried = r.tried.clone();
            balancer
                .pick_again(None, |i| !tried.contains(&i), load)
                .or_else(|| balancer.pick_again(None, |_| true, load))?
        };
        r.tried.push(ep);
        r.attempts += 1;
        r.out += 1;
        in_flight[ep] += 1;
        let (base, _) = ENDPOINTS[ep];
        // A spread of ±20% around the base.
        let spread = (rng.random::<f64>() * 0.4 - 0.2).exp();
        let t = now + (base * spread * 1e6) as u64;
        Some((t, Event::Answer { req, ep, sent: now }))
    };
    while let Some(Reverse((t, _, event))) = events.pop() {
        clock.advance(Duration::from_nanos(t - now));
        now = t;
        match event {
            Event::Arrive => {
                if now >= end {
                    continue;
                }
                let req = requests.len();
                requests.push(Request {
                    start: now,
                    done: false,
                    attempts: 0,
                    tried: Vec::new(),
                    out: 0,
                });
                budget.deposit(balancer.now_ns());
                if let Some((at, e)) = send(req, &mut requests, &mut in_flight, &mut rng, now) {
                    upstream += 1;
                    push(&mut events, at, e);
                }
                if mode == Mode::Hedged
                    && let Some(p95) = latencies.quantile(balancer.now_ns(), 0.95, 20)
                {
                    push(
                        &mut events,
                        now + p95.as_nanos() as u64,
                        Event::Hedge { req },
                    );
                }
                let gap = -(1.0 - rng.random::<f64>()).ln() / rate;
                push(&mut events, now + (gap * 1e9) as u64, Event::Arrive);
            }
            Event::Answer { req, ep, sent } => {
                in_flight[ep] -= 1;
                let r = &mut requests[req];
                r.out -= 1;
                let fails = rng.random::<f64>() < ENDPOINTS[ep].1;
                let latency = Duration::from_nanos(now - sent);
                let outcome = if fails {
                    Outcome::Failure
                } else {
                    Outcome::Success
                };
                balancer.report_at(balancer.now_ns(), ep, Some(latency), outcome);
                if !fails {
                    latencies.record(balancer.now_ns(), latency);
                }
                if r.done {
                    continue;
                }
                if !fails {
                    r.done = true;
                    took.push(now - r.start);
                    continue;
                }
                // Another attempt still out (a hedge): wait for it.
                if r.out > 0 {
                    continue;
                }
                let retry =
                    mode != Mode::Plain && r.attempts < 2 && budget.withdraw(balancer.now_ns());
                if retry
                    && let Some((at, e)) = send(req, &mut requests, &mut in_flight, &mut rng, now)
                {
                    upstream += 1;
                    push(&mut events, at, e);
                } else {
                    requests[req].done = true;
                    failed += 1;
                    took.push(now - requests[req].start);
                }
            }
            Event::Hedge { req } => {
                let r = &requests[req];
                if r.done || r.attempts >= 2 || !budget.withdraw(balancer.now_ns()) {
                    continue;
                }
                if let Some((at, e)) = send(req, &mut requests, &mut in_flight, &mut rng, now) {
                    upstream += 1;
                    push(&mut events, at, e);
                }
            }
        }
    }
    took.sort_unstable();
    let at = |q: f64| ms(took[((took.len() as f64 * q) as usize).min(took.len() - 1)]);
    Report {
        p50: at(0.5),
        p99: at(0.99),
        errors: failed as f64 / requests.len() as f64,
        upstream_per_request: upstream as f64 / requests.len() as f64,
    }
}

fn main() {
    let seed = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(42);
    for rate in RATES_PER_S {
        println!(
            "seed {seed}: {rate} req/s for {SECONDS} s (virtual); endpoints 20 ms, 100 ms, 20 ms failing 20%"
        );
        table(rate, seed);
        println!();
    }
}

fn table(rate: f64, seed: u64) {
    println!(
        "{:<16} {:<8} {:>9} {:>9} {:>8} {:>10}",
        "strategy", "mode", "p50 ms", "p99 ms", "errors", "upstream/req"
    );
    let mut rr_p99 = 0.0;
    for (strategy, modes) in [
        (Strategy::RoundRobin, &[Mode::Plain, Mode::Retries][..]),
        (Strategy::Random, &[Mode::Plain, Mode::Retries][..]),
        (Strategy::LeastLoaded, &[Mode::Plain, Mode::Retries][..]),
        (
            Strategy::P2cEwma,
            &[Mode::Plain, Mode::Retries, Mode::Hedged][..],
        ),
    ] {
        for &mode in modes {
            let r = run(strategy, mode, rate, seed);
            if strategy == Strategy::RoundRobin && mode == Mode::Retries {
                rr_p99 = r.p99;
            }
            let name = match mode {
                Mode::Plain => "plain",
                Mode::Retries => "retries",
                Mode::Hedged => "hedged",
            };
            let ratio = if strategy == Strategy::P2cEwma && mode != Mode::Plain {
                format!("  p99 = {:.2}× round_robin's", r.p99 / rr_p99)
            } else {
                String::new()
            };
            println!(
                "{:<16} {:<8} {:>9.1} {:>9.1} {:>7.2}% {:>10.3}{ratio}",
                strategy.as_str(),
                name,
                r.p50,
                r.p99,
                r.errors * 100.0,
                r.upstream_per_request
            );
        }
    }
}
