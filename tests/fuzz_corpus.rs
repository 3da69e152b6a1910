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

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest one input may take, as libFuzzer's `-timeout=10` in fuzz/smoke.sh, with room
/// for a loaded machine and a debug build. An input past it ends the process, naming it: a
/// hang would otherwise hold `cargo test` forever.
const PER_INPUT: Duration = Duration::from_secs(60);

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

/// Runs `check` on every input of `target`'s corpus and fails naming each input that panicked;
/// `check`'s results, in the corpus's order.
fn replay<T>(target: &str, min: usize, check: impl Fn(&[u8]) -> T) -> Vec<T> {
    let inputs = corpus(target, min);
    // the input in progress and its start, watched by a thread that ends the process when one
    // takes longer than PER_INPUT (None between inputs; the thread ends once `done` is set)
    let current: Arc<Mutex<Option<(PathBuf, Instant)>>> = Arc::new(Mutex::new(None));
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (current, done) = (Arc::clone(&current), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if let Some((path, start)) = &*current.lock().unwrap() {
                    if start.elapsed() > PER_INPUT {
                        // (to the real stderr: libtest captures this thread's eprintln!, and
                        // the abort would lose it)
                        let _ = writeln!(std::io::stderr(), "{}: still running after {PER_INPUT:?}: a hang", path.display());
                        std::process::abort();
                    }
                }
            }
        })
    };
    let mut results = vec![];
    let mut failed = vec![];
    for (path, data) in &inputs {
        *current.lock().unwrap() = Some((path.clone(), Instant::now()));
        match catch_unwind(AssertUnwindSafe(|| check(data))) {
            Ok(r) => results.push(r),
            Err(_) => failed.push(path.file_name().unwrap().to_string_lossy().into_owned()),
        }
    }
    done.store(true, Ordering::Relaxed);
    watchdog.join().unwrap();
    let first: Vec<&String> = failed.iter().take(10).collect();
    assert!(failed.is_empty(), "{target}: {} of {} corpus inputs failed their check, first {first:?}", failed.len(), inputs.len());
    results
}

/// How many of `results` are `want`.
fn count<T: PartialEq>(results: &[T], want: T) -> usize {
    results.iter().filter(|r| **r == want).count()
}

#[test]
fn config_parser_corpus_passes() {
    let results = replay("config_parser", 1000, config_parser::check);
    // (floors well under today's counts, 44 accepted and 2120 refused: a budget or a parser
    // that turned everything away would pass every input unchecked)
    let (accepted, refused) = (count(&results, Some(true)), count(&results, Some(false)));
    assert!(accepted >= 20 && refused >= 1000, "{accepted} configs accepted, {refused} refused by parse_plan");
}

#[test]
fn ensemble_expansion_corpus_passes() {
    use arbitrary::{Arbitrary, Unstructured};
    use ensemble_expansion::Input;
    // decoded as libfuzzer-sys's fuzz_target! does: inputs shorter than the type's lower size
    // bound, or that do not decode, are skipped
    let results = replay("ensemble_expansion", 500, |data| {
        if data.len() < Input::size_hint(0).0 {
            return None;
        }
        Input::arbitrary_take_rest(Unstructured::new(data)).ok().map(|input| ensemble_expansion::check(&input))
    });
    // (today 368 and 498)
    let (accepted, refused) = (count(&results, Some(true)), count(&results, Some(false)));
    assert!(accepted >= 100 && refused >= 100, "{accepted} plans accepted and checked, {refused} refused");
}

#[test]
fn damaged_outputs_corpus_passes() {
    // (the undamaged runs built first, outside the watchdog's time for one input)
    let base = damaged_outputs::base_dir();
    replay("damaged_outputs", 5, damaged_outputs::check);
    std::fs::remove_dir_all(base).unwrap();
}
