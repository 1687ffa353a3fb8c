#![no_main]
//! See `flowgate_http::fuzzing::chunked`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| flowgate_http::fuzzing::chunked(data));
