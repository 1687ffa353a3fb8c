//! The fuzzing entry point of the config loader: any bytes, read as a config file, give a
//! config or errors, never a panic; an accepted config can be summarized. `fuzz/` drives it
//! with libFuzzer; `crates/flowgate-gateway/tests/fuzz_corpus.rs` replays the saved corpus on every test run.

/// Parses `data` as a config file (without the environment).
pub fn config(data: &[u8]) {
    let src = String::from_utf8_lossy(data);
    match crate::parse(&src, "fuzz.toml", std::iter::empty()) {
        Ok(c) => {
            let _ = c.summary();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}
