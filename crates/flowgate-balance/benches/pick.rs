//! What a pick costs for a pool of 16 endpoints (issue 5 asks for at most 200 ns), with
//! every strategy, latencies measured and some requests in flight.
//!
//! cargo bench -p flowgate-balance --bench pick

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use flowgate_balance::{Balancer, Strategy};
use flowgate_clock::SystemClock;

fn pick(c: &mut Criterion) {
    let mut g = c.benchmark_group("pick of 16");
    for s in Strategy::ALL {
        let weights: Vec<u32> = (1..=16).collect();
        let b = Balancer::new(s, &weights, Duration::from_secs(10), SystemClock::shared());
        for i in 0..16 {
            b.observe(i, Duration::from_millis(10 + i as u64 * 5));
        }
        let load: Vec<u32> = (0..16).map(|i| i % 3).collect();
        let mut k = 0u64;
        g.bench_function(s.as_str(), |bench| {
            bench.iter(|| {
                k = k.wrapping_add(1);
                b.pick(Some(black_box(&k.to_le_bytes())), |_| true, |i| load[i])
            })
        });
    }
    g.finish();
}

criterion_group!(benches, pick);
criterion_main!(benches);
