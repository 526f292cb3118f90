//! libFuzzer entry point; the checks are in `bodies/roundtrip.rs` (shared with the
//! stable `cargo test` run, crates/radius/tests/fuzz.rs).
#![no_main]

#[path = "../bodies/roundtrip.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::check(data));
