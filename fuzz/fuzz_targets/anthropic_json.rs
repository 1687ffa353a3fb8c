#![no_main]
//! See `flowgate_providers::fuzzing::anthropic_json`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| flowgate_providers::fuzzing::anthropic_json(data));
