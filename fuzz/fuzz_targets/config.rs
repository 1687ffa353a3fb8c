#![no_main]
//! See `flowgate_config::fuzzing::config`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| flowgate_config::fuzzing::config(data));
