//! What counting a prompt costs: the estimate of a 2 KB chat request by the rule of thumb
//! and with OpenAI's tokenizer (`o200k_base`), the latter paid by every request of a route
//! with token limits or a prompt guard unless `[limits] token_count = "approximate"`.
//!
//! cargo bench -p flowgate-cost --bench estimate
#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // benchmark set-up, like a test's

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flowgate_cost::{Tokenizer, estimate_with};

fn estimate(c: &mut Criterion) {
    let text = "Summarize the quarterly infrastructure cost report for the platform team, \
                with the three largest line items and what changed since last quarter. "
        .repeat(14);
    let body = serde_json::json!({
        "model": "gpt-4o",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
    })
    .to_string();
    let rss = || {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let l = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_string();
                l.split_whitespace().nth(1)?.parse::<u64>().ok()
            })
            .unwrap_or(0)
    };
    let (before, load) = (rss(), std::time::Instant::now());
    Tokenizer::warm();
    println!(
        "vocabularies loaded in {:?}, resident memory +{} MiB",
        load.elapsed(),
        (rss() - before) / 1024
    );
    let mut g = c.benchmark_group("estimate");
    g.throughput(Throughput::Bytes(body.len() as u64));
    for (name, t) in [
        ("rule of thumb", Tokenizer::Approximate),
        ("o200k_base", Tokenizer::of(Some("gpt-4o"))),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| estimate_with(black_box(body.as_bytes()), t).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, estimate);
criterion_main!(benches);
