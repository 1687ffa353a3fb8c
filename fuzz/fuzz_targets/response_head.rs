#![no_main]
//! See `flowgate_http::fuzzing::response_head`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| flowgate_http::fuzzing::response_head(data));
