//! What a pool's demand forecast costs the scaling recommender, made every five minutes
//! per pool with `lead`: a week of minutes forecast a day ahead (the horizon its methods
//! are judged on; the recommender reads the first `lead` of it), next to the same
//! forecast over the lead alone (22 minutes), as the recommender made it before.
//!
//! cargo bench -p flowgate-insight --bench demand_forecast
#![allow(clippy::unwrap_used)] // benchmark set-up, like a test's

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use flowgate_insight::forecast::{Season, forecast};

/// A week of a pool's requests a second by the minute: quiet nights, a morning ramp, a
/// busy day, with noise.
fn week() -> Vec<f64> {
    (0..7 * 1440u64)
        .map(|m| {
            let h = (m % 1440) as f64 / 60.0;
            let base = if (8.0..18.0).contains(&h) { 0.33 } else { 0.07 };
            let noise = ((m.wrapping_mul(2_654_435_761) >> 7) % 1000) as f64 / 1000.0 - 0.5;
            base * (1.0 + 0.2 * noise)
        })
        .collect()
}

fn demand_forecast(c: &mut Criterion) {
    let y = week();
    let mut g = c.benchmark_group("demand_forecast");
    g.sample_size(20);
    g.bench_function("a week of minutes, a day ahead", |b| {
        b.iter(|| black_box(forecast(&y, 60, 1440, Season::Auto)))
    });
    g.bench_function("a week of minutes, 22 minutes ahead", |b| {
        b.iter(|| black_box(forecast(&y, 60, 22, Season::Auto)))
    });
    g.finish();
}

criterion_group!(benches, demand_forecast);
criterion_main!(benches);
