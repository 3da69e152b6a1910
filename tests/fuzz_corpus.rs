//! The committed fuzz corpora (fuzz/corpus/<target>/), replayed through the fuzz targets' own
//! checks (fuzz/checks/): every input that libFuzzer kept must still pass. This is the
//! deterministic half of fuzzing, run by `cargo test` without cargo-fuzz or an instrumented
//! build; `bash fuzz/smoke.sh` explores new inputs (fuzz/README.md).
//!
//! Its own test binary: `damaged_outputs` sets QBAT_INJECT_FAULT in the process while it
//! builds its interrupted run, which must not reach the studies of other tests.

#[path = "../fuzz/checks/config_parser.rs"]
mod config_parser;
#[path = "../fuzz/checks/damaged_outputs.rs"]
mod damaged_outputs;
#[path = "../fuzz/checks/ensemble_expansion.rs"]
mod ensemble_expansion;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

/// The corpus files of `target`, in name order; at least `min` of them (a corpus that went
/// missing or empty would otherwise pass).
fn corpus(target: &str, min: usize) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    assert!(files.len() >= min, "{}: {} inputs, expected at least {min}", dir.display(), files.len());
    files.into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
}

/// Runs `check` on every input of `target`'s corpus and fails naming each input that panicked.
fn replay(target: &str, min: usize, check: impl Fn(&[u8])) {
    let inputs = corpus(target, min);
    let failed: Vec<String> = inputs
        .iter()
        .filter(|(_, data)| catch_unwind(AssertUnwindSafe(|| check(data))).is_err())
        .map(|(path, _)| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let first: Vec<&String> = failed.iter().take(10).collect();
    assert!(failed.is_empty(), "{target}: {} of {} corpus inputs failed their check, first {first:?}", failed.len(), inputs.len());
}

#[test]
fn config_parser_corpus_passes() {
    replay("config_parser", 1000, config_parser::check);
}

#[test]
fn ensemble_expansion_corpus_passes() {
    use arbitrary::{Arbitrary, Unstructured};
    use ensemble_expansion::Input;
    // decoded as libfuzzer-sys's fuzz_target! does: inputs shorter than the type's lower size
    // bound, or that do not decode, are skipped
    let decoded = std::cell::Cell::new(0usize);
    replay("ensemble_expansion", 500, |data| {
        if data.len() < Input::size_hint(0).0 {
            return;
        }
        if let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) {
            decoded.set(decoded.get() + 1);
            ensemble_expansion::check(&input);
        }
    });
    assert!(decoded.get() >= 500, "only {} corpus inputs decoded", decoded.get());
}

#[test]
fn damaged_outputs_corpus_passes() {
    replay("damaged_outputs", 5, damaged_outputs::check);
}
