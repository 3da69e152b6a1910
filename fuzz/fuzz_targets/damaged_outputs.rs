//! Damaged shard directories and checkpoints: `merge` and `--resume` must refuse them, or give
//! exactly the undamaged result. The check lives in `fuzz/checks/`, where `cargo test` replays
//! the committed corpus through it.
#![no_main]

#[path = "../checks/damaged_outputs.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    check::check(data);
});
