//! The memory tier's hit rate under a Zipf workload: W-TinyLFU (flowgate's policy) against
//! LRU, the same tier and the same request sequence. docs/benchmarks.md has the figures.
//!
//!     cargo run --release -p flowgate-cache --example admission -- [DISTINCT] [SHARE] [REQUESTS] [S]
//!
//! Defaults: 1 000 000 distinct prompts, a tier holding 5% of them, 10 000 000 requests,
//! exponent 1.0. Every answer weighs the same (1 KiB), so the byte bound is an entry bound.
#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flowgate_cache::memory::MemoryTier;
use flowgate_cache::{CacheKey, CachedResponse, Entry, KeyBuilder, Labels, Lifetime, Usage};
use flowgate_clock::{Clock, ManualClock};
use moka::policy::EvictionPolicy;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, Zipf};

fn key(prompt: u64) -> CacheKey {
    let mut k = KeyBuilder::new("bench");
    k.field("prompt", &prompt.to_le_bytes());
    k.finish("zipf".into())
}

/// Hits over requests for `sequence` through a tier of `bytes` under `policy`; the first
/// `warm` requests fill the tier and are not counted.
fn hit_rate(policy: EvictionPolicy, bytes: u64, sequence: &[u64], warm: usize) -> f64 {
    let tier = MemoryTier::with_policy(bytes, policy);
    let now = ManualClock::at_epoch_2026().now();
    let body = Bytes::from(vec![b'x'; 1024 - 64]);
    let mut hits = 0u64;
    for (i, &p) in sequence.iter().enumerate() {
        let k = key(p);
        if tier.get(&k).is_some() {
            if i >= warm {
                hits += 1;
            }
            continue;
        }
        let response = CachedResponse {
            status: 200,
            headers: Vec::new(),
            body: body.clone(),
            usage: Usage::default(),
        };
        let life = Lifetime::fresh_for(Duration::from_secs(86_400));
        tier.insert(
            k,
            Arc::new(Entry::new(response, now, life, Labels::default())),
            now,
        );
    }
    hits as f64 / (sequence.len() - warm) as f64
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: f64| args.get(i).map_or(default, |a| a.parse().unwrap());
    let distinct = arg(0, 1_000_000.0) as u64;
    let share = arg(1, 0.05);
    let requests = arg(2, 10_000_000.0) as usize;
    let s = arg(3, 1.0);
    let zipf = Zipf::new(distinct as f64, s).unwrap();
    let mut rng = SmallRng::seed_from_u64(42);
    let sequence: Vec<u64> = (0..requests)
        .map(|_| zipf.sample(&mut rng) as u64)
        .collect();
    let capacity = (distinct as f64 * share) as u64;
    let bytes = capacity * 1024;
    let warm = requests / 10;
    let tiny = hit_rate(EvictionPolicy::tiny_lfu(), bytes, &sequence, warm);
    let lru = hit_rate(EvictionPolicy::lru(), bytes, &sequence, warm);
    println!(
        "Zipf({s}) over {distinct} prompts, {requests} requests (first {warm} warm-up), tier of {capacity} entries ({:.1}%)",
        share * 100.0
    );
    println!("| policy | hit rate |\n|---|---|");
    println!("| W-TinyLFU (flowgate) | {:.2}% |", tiny * 100.0);
    println!("| LRU | {:.2}% |", lru * 100.0);
    println!("W-TinyLFU / LRU: {:.2}x", tiny / lru);
}
