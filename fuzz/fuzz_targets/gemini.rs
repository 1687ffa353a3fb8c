#![no_main]
//! See `flowgate_providers::fuzzing::gemini`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| flowgate_providers::fuzzing::gemini(data));
