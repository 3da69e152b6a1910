//! Structured configs with sweeps, random or explicit initial states, ensemble sizes and seeds:
//! `parse_plan` either refuses them or gives a plan whose members' initial states are all
//! finite density matrices. The check lives in `fuzz/checks/`, where `cargo test` replays the
//! committed corpus through it.
#![no_main]

#[path = "../checks/ensemble_expansion.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|input: check::Input| {
    check::check(&input);
});
