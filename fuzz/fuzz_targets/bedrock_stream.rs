#![no_main]
//! See `flowgate_providers::fuzzing::bedrock_stream`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| flowgate_providers::fuzzing::bedrock_stream(data));
