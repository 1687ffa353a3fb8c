//! What watching 1,000 series costs the control plane: each detector's first learning of
//! eight days of stored minutes (once, when a series is first seen: at start), then each
//! minute's 1,000 points scored (what the detectors' thread does every minute), and the
//! memory the detectors hold.
//!
//! cargo bench -p flowgate-insight --bench watch
#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // benchmark set-up, like a test's

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flowgate_config::AnomaliesConfig;
use flowgate_insight::anomaly::Detector;
use flowgate_insight::anomaly::watch::Watch;

const SERIES: usize = 1000;
const T0: u64 = 1_767_571_200;
const DAYS: u64 = 8;

/// Series `s`'s value at minute `m`: a daily cycle of its own size, with noise.
fn value(s: usize, m: u64) -> f64 {
    let hour = (m % 1440) as f64 / 60.0;
    let noise = ((m.wrapping_mul(2_654_435_761) ^ s as u64) % 1000) as f64 / 1000.0 - 0.5;
    let base = 10.0 + s as f64;
    base * (1.0 + 0.5 * (hour / 24.0 * std::f64::consts::TAU).sin()) + base * 0.05 * noise
}

fn name(s: usize) -> String {
    format!("requests_per_second{{route=\"r{s}\"}}")
}

fn watch(c: &mut Criterion) {
    let settings = AnomaliesConfig {
        series: vec!["requests_per_second*".into()],
        max_series: SERIES,
        ..AnomaliesConfig::default()
    };
    let mut w = Watch::new(settings);
    let minutes = DAYS * 1440;
    let start = Instant::now();
    for s in 0..SERIES {
        let mut d = Detector::new();
        for m in 0..minutes {
            d.observe((T0 + m * 60) as i64, value(s, m));
        }
        w.adopt(&name(s), d, Some(T0 + (minutes - 1) * 60));
    }
    let learned = start.elapsed();
    println!(
        "learning {DAYS} days of minutes for {SERIES} series: {:.2} s of one core ({} points); the detectors hold {:.1} MB",
        learned.as_secs_f64(),
        SERIES as u64 * minutes,
        w.memory_bytes() as f64 / 1e6
    );
    let names: Vec<String> = (0..SERIES).map(name).collect();
    let mut m = minutes;
    let mut g = c.benchmark_group("watch");
    g.throughput(Throughput::Elements(SERIES as u64));
    g.bench_function("a minute of 1,000 series", |b| {
        b.iter(|| {
            for (s, n) in names.iter().enumerate() {
                black_box(w.observe(n, T0 + m * 60, value(s, m)));
            }
            w.close_quiet(T0 + m * 60 + 60);
            m += 1;
        })
    });
    g.finish();
}

criterion_group!(benches, watch);
criterion_main!(benches);
