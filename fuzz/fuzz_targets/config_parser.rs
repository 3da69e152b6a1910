//! Arbitrary bytes as a config: `parse_plan` must return Ok or a QbatError, never panic, hang
//! or exhaust memory. The check lives in `fuzz/checks/`, where `cargo test` replays the
//! committed corpus through it.
#![no_main]

#[path = "../checks/config_parser.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    check::check(data);
});
