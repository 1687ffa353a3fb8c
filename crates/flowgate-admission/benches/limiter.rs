//! What a rate-limit check costs: one GCRA decision on a key seen before, the path of every
//! request of a known client (issue 4 asks for at most 100 ns locally).
//!
//! cargo bench -p flowgate-admission --bench limiter
#![allow(clippy::unwrap_used)] // benchmark set-up, like a test's

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flowgate_admission::{Decision, LocalLimiter, Quota};
use flowgate_clock::SystemClock;

fn check(c: &mut Criterion) {
    let limiter = LocalLimiter::new(SystemClock::shared());
    // A request per nanosecond never refuses: the cost measured is the admitted path, as
    // for a limit that does not trigger.
    let quota = Quota::new(1_000_000_000, Duration::from_secs(1), 1_000_000).unwrap();
    let keys: Vec<Vec<u8>> = (0..10_000u32)
        .map(|i| format!("10.0.{}.{}", i / 256, i % 256).into_bytes())
        .collect();
    for k in &keys {
        limiter.check(k, &quota, 1);
    }
    let mut g = c.benchmark_group("local");
    g.throughput(Throughput::Elements(1));
    g.bench_function("check, one key", |b| {
        b.iter(|| {
            let d = limiter.check(black_box(b"203.0.113.7"), &quota, 1);
            assert!(matches!(d, Decision::Admit { .. }));
        })
    });
    let mut i = 0;
    g.bench_function("check, 10k keys", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            limiter.check(black_box(&keys[i]), &quota, 1)
        })
    });
    g.bench_function("check + settle (a token limit)", |b| {
        b.iter(|| {
            limiter.check(black_box(b"team-a"), &quota, 500);
            limiter.settle(black_box(b"team-a"), &quota, 500, 120);
        })
    });
    g.finish();
}

criterion_group!(benches, check);
criterion_main!(benches);
