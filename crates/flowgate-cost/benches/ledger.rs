//! What the spend ledger costs: records taken per second (what the telemetry consumer
//! does per request), one write of a second's rows (the flush), and the file a simulated
//! day leaves.
//!
//! cargo bench -p flowgate-cost --bench ledger
#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // benchmark set-up, like a test's

use std::hint::black_box;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use flowgate_cost::Usage;
use flowgate_cost::ledger::{Dims, Ledger, Retention, Totals};
use rust_decimal::Decimal;

/// 2026-12-01 00:00:00 UTC.
const T0: u64 = 1_796_083_200;

/// 50 keys in 5 teams, 4 routes, 6 models: `i`'s combination.
fn dims(i: usize, names: &[Arc<str>]) -> Dims {
    Dims {
        key: names[i % 50].clone(),
        team: names[50 + i % 5].clone(),
        route: names[55 + i % 4].clone(),
        model: names[59 + i % 6].clone(),
        provider: names[65].clone(),
    }
}

fn names() -> Vec<Arc<str>> {
    (0..50)
        .map(|i| Arc::from(format!("key-{i}")))
        .chain((0..5).map(|i| Arc::from(format!("team-{i}"))))
        .chain((0..4).map(|i| Arc::from(format!("route-{i}"))))
        .chain((0..6).map(|i| Arc::from(format!("model-{i}"))))
        .chain([Arc::from("openai")])
        .collect()
}

fn one() -> Totals {
    let u = Usage {
        prompt_tokens: 1200,
        completion_tokens: 300,
        ..Usage::default()
    };
    Totals::of(&u, false, Decimal::from_str("0.00036").unwrap(), false)
}

fn ledger(c: &mut Criterion) {
    let names = names();
    let t = one();
    let dir = std::env::temp_dir().join(format!("flowgate-ledger-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut g = c.benchmark_group("ledger");
    g.throughput(Throughput::Elements(1));
    let l = Ledger::in_memory(Retention::default()).unwrap();
    let mut i = 0usize;
    g.bench_function("add one record", |b| {
        b.iter(|| {
            i += 1;
            l.add(T0 + (i / 20_000) as u64, dims(i, &names), black_box(&t));
        })
    });
    // A second's rows at 20,000 requests/s over the 300 combinations: 300 rows.
    let (file, _) = Ledger::open(&dir.join("flush.redb"), Retention::default(), T0).unwrap();
    let minute = std::cell::Cell::new(0u64);
    g.throughput(Throughput::Elements(300));
    g.bench_function("flush 300 rows (a second at 20k req/s)", |b| {
        b.iter_batched(
            || {
                minute.set(minute.get() + 1);
                for k in 0..20_000 {
                    file.add(T0 + minute.get() * 60, dims(k, &names), &t);
                }
            },
            |()| file.flush(T0 + minute.get() * 60).unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.finish();
    // A day: every minute, each of the 300 combinations active, one flush a second
    // (1.44 million requests at ~17 a second... far more rows than requests would make: the
    // worst case for the file).
    let path = dir.join("day.redb");
    let (day, _) = Ledger::open(&path, Retention::default(), T0).unwrap();
    let start = Instant::now();
    let mut requests = 0u64;
    for m in 0..1440u64 {
        for k in 0..300 {
            day.add(T0 + m * 60, dims(k, &names), &t);
            requests += 1;
        }
        day.flush(T0 + m * 60 + 59).unwrap();
    }
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "a day of 300 combinations active every minute: {requests} requests, {} minute rows, file {:.1} MB ({:.0} bytes a minute row), written in {:?}",
        1440 * 300,
        size as f64 / 1e6,
        size as f64 / (1440.0 * 300.0),
        start.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, ledger);
criterion_main!(benches);
