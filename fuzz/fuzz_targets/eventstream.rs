#![no_main]
//! See `flowgate_providers::fuzzing::eventstream`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| flowgate_providers::fuzzing::eventstream(data));
