//! What the metrics history costs: a record taken; the ticks of 10 s of a gateway with 10
//! routes, 5 pools and 20 endpoints at 5,000 requests a second (ten one-second samples of
//! every series, the last writing the 10 s points); and the file two simulated days leave
//! (the 10 s points' retention; sampled every 10 s to be quick: the same points).
//!
//! cargo bench -p flowgate-telemetry --bench history
#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // benchmark set-up, like a test's

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use flowgate_telemetry::history::{History, HistorySettings};
use flowgate_telemetry::{RequestRecord, Sink};

/// 2026-12-01 00:00:00 UTC.
const T0: u64 = 1_796_083_200;

fn records() -> Vec<RequestRecord> {
    (0..100)
        .map(|i| RequestRecord {
            route: Arc::from(format!("route-{}", i % 10)),
            pool: Some(Arc::from(format!("pool-{}", i % 5))),
            endpoint: Some(Arc::from(format!("http://10.0.0.{}:8000", i % 20))),
            status: if i % 50 == 0 { 502 } else { 200 },
            duration: Duration::from_millis(20 + i as u64),
            total: Duration::from_millis(200 + 7 * i as u64),
            cache: Some(if i % 3 == 0 { "hit-l1" } else { "miss" }),
            ..RequestRecord::empty()
        })
        .collect()
}

fn history(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("flowgate-bench-history-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let recs = records();
    let mut g = c.benchmark_group("history");
    g.sample_size(20);
    // A record taken (what the telemetry consumer does per request for the history).
    let (mem, _) = History::open(HistorySettings::default(), T0).unwrap();
    let sink = mem.sink();
    let mut i = 0;
    g.bench_function("take one record", |b| {
        b.iter(|| {
            i += 1;
            sink.take(&recs[i % recs.len()]);
        })
    });
    // 10 s at 5,000 req/s: each second's 5,000 records, then its tick; the tenth writes.
    let (file, _) = History::open(
        HistorySettings {
            path: Some(dir.join("tick.redb")),
            ..HistorySettings::default()
        },
        T0,
    )
    .unwrap();
    let fs = file.sink();
    let end = std::cell::Cell::new(T0);
    g.bench_function(
        "10 ticks of 1 s at 5,000 req/s (35 scopes), records included",
        |b| {
            b.iter_batched(
                || (),
                |()| {
                    for _ in 0..10 {
                        for k in 0..5_000 {
                            fs.take(&recs[k % recs.len()]);
                        }
                        end.set(end.get() + 1);
                        file.tick(end.get()).unwrap();
                    }
                },
                BatchSize::PerIteration,
            )
        },
    );
    g.finish();
    // The days below take minutes: only when benchmarking (`cargo bench`), not when the
    // test suite runs the benchmark once to see that it works.
    if !std::env::args().any(|a| a == "--bench") {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    // Two days (the 10 s points' retention) of the same gateway, 1,000 records a tick.
    let path = dir.join("days.redb");
    let (days, _) = History::open(
        HistorySettings {
            path: Some(path.clone()),
            ..HistorySettings::default()
        },
        T0,
    )
    .unwrap();
    let s = days.sink();
    let start = Instant::now();
    for t in 1..=17_280u64 {
        for k in 0..1000 {
            s.take(&recs[k % recs.len()]);
        }
        days.tick(T0 + t * 10).unwrap();
    }
    let series = days.series().len();
    let rows = days.rows().unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "two days of {series} series: {rows:?} points (10 s, 1 min, 1 h), file {:.1} MB \
         ({:.0} bytes a point, {:.2} MB a series), written in {:?}",
        size as f64 / 1e6,
        size as f64 / rows.iter().sum::<u64>() as f64,
        size as f64 / 1e6 / series as f64,
        start.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, history);
criterion_main!(benches);
