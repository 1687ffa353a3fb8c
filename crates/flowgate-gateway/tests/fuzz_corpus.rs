//! The fuzz targets (`flowgate_http::fuzzing`, `flowgate_config::fuzzing`) on the stable
//! toolchain: every input saved in `fuzz/corpus/TARGET/` is
//! replayed, then a bounded run of mutated inputs (seed from `FLOWGATE_FUZZ_SEED`, else the
//! clock; printed). An input that fails is saved to the corpus as `crash-SEED-N`, so that a
//! regression found once stays found once committed (docs/testing.md).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Mutated inputs per target and test run.
const RUNS: usize = 20_000;

fn corpus(target: &str) -> (PathBuf, Vec<Vec<u8>>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut inputs: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "empty corpus {}", dir.display());
    (dir, inputs.into_iter().map(|(_, d)| d).collect())
}

fn seed() -> u64 {
    std::env::var("FLOWGATE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

/// Bytes that matter to HTTP parsers, to insert.
const INTERESTING: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b":",
    b";",
    b",",
    b" ",
    b"\t",
    b"\0",
    b"0",
    b"f",
    b"+",
    b"-",
    b"chunked",
    b"content-length: ",
    b"transfer-encoding: ",
    b"host: ",
    b"HTTP/1.1 ",
    b"\r\n\r\n",
    b"%2e",
    b"\xff",
    b"=",
    b"\"",
    b"[",
    b"]",
    b"{",
    b"event: ",
    b"data: ",
    b"\"type\":",
    b"message_stop",
];

fn mutate(rng: &mut SmallRng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut d = corpus[rng.random_range(0..corpus.len())].clone();
    for _ in 0..rng.random_range(1..6) {
        let at = rng.random_range(0..=d.len());
        match rng.random_range(0..6) {
            0 if !d.is_empty() => {
                let i = rng.random_range(0..d.len());
                d[i] ^= 1 << rng.random_range(0..8);
            }
            1 => {
                let s = INTERESTING[rng.random_range(0..INTERESTING.len())];
                d.splice(at..at, s.iter().copied());
            }
            2 => d.truncate(at),
            3 if !d.is_empty() => {
                let end = rng.random_range(at..=d.len());
                d.drain(at..end);
            }
            4 => {
                let other = &corpus[rng.random_range(0..corpus.len())];
                let from = rng.random_range(0..=other.len());
                d.splice(at..at, other[from..].iter().copied());
            }
            _ => {
                let n = rng.random_range(0..=u8::MAX);
                d.insert(at.min(d.len()), n);
            }
        }
    }
    d
}

fn run(target: &str, f: fn(&[u8])) {
    let (dir, inputs) = corpus(target);
    for (i, input) in inputs.iter().enumerate() {
        if catch_unwind(AssertUnwindSafe(|| f(input))).is_err() {
            panic!("{target}: saved input {i} of {} fails", dir.display());
        }
    }
    let seed = seed();
    let mut rng = SmallRng::seed_from_u64(seed);
    for n in 0..RUNS {
        let input = mutate(&mut rng, &inputs);
        if catch_unwind(AssertUnwindSafe(|| f(&input))).is_err() {
            let saved = dir.join(format!("crash-{seed}-{n}"));
            std::fs::write(&saved, &input).unwrap();
            panic!(
                "{target}: a mutated input fails (seed {seed}, run {n}); saved as {}: \
                 commit it with the fix",
                saved.display()
            );
        }
    }
    eprintln!(
        "{target}: {} saved and {RUNS} mutated inputs (seed {seed})",
        inputs.len()
    );
}

#[test]
fn request_heads() {
    run("request_head", flowgate_http::fuzzing::request_head);
}

#[test]
fn response_heads() {
    run("response_head", flowgate_http::fuzzing::response_head);
}

#[test]
fn chunked_bodies() {
    run("chunked", flowgate_http::fuzzing::chunked);
}

#[test]
fn anthropic_streams() {
    run(
        "anthropic_stream",
        flowgate_providers::fuzzing::anthropic_stream,
    );
}

#[test]
fn anthropic_json() {
    run(
        "anthropic_json",
        flowgate_providers::fuzzing::anthropic_json,
    );
}

#[test]
fn event_streams() {
    run("eventstream", flowgate_providers::fuzzing::eventstream);
}

#[test]
fn bedrock_streams() {
    run(
        "bedrock_stream",
        flowgate_providers::fuzzing::bedrock_stream,
    );
}

#[test]
fn gemini_answers() {
    run("gemini", flowgate_providers::fuzzing::gemini);
}

#[test]
fn config_files() {
    run("config", flowgate_config::fuzzing::config);
}
