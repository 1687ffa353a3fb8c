//! What translating costs on the request path: an OpenAI chat request to Anthropic's
//! Messages API (parse, translate, serialize) and a Messages answer back to a
//! `chat.completion`, for the request of bench/providers.sh.
//!
//! cargo bench -p flowgate-providers --bench translate
#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // benchmark set-up, like a test's

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use flowgate_providers::anthropic;

const REQUEST: &str = r#"{"model":"claude-sonnet","max_tokens":32,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Summarize the quarterly infrastructure cost report"}]}"#;
const ANSWER: &str = r#"{"id":"msg_0001","type":"message","role":"assistant","model":"claude-3-5-sonnet-20240620","content":[{"type":"text","text":"tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7 tok8 tok9 tok10 tok11 tok12 tok13 tok14 tok15 tok16 tok17 tok18 tok19 tok20 tok21 tok22 tok23 tok24 tok25 tok26 tok27 tok28 tok29 tok30 tok31"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":14,"output_tokens":32,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}"#;

fn translate(c: &mut Criterion) {
    let target = anthropic::Target {
        model: "claude-3-5-sonnet-20240620",
        default_max_tokens: 8192,
    };
    let mut g = c.benchmark_group("anthropic");
    g.bench_function("request", |b| {
        b.iter(|| {
            let v: serde_json::Value =
                serde_json::from_slice(black_box(REQUEST.as_bytes())).unwrap();
            let t = anthropic::translate(&v, &target).unwrap();
            serde_json::to_vec(&t.body).unwrap()
        })
    });
    g.bench_function("answer", |b| {
        b.iter(|| {
            anthropic::completion(
                black_box(ANSWER.as_bytes()),
                "claude-sonnet",
                1_765_000_000,
                false,
            )
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, translate);
criterion_main!(benches);
