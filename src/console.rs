//! The process's stdout and stderr, written without panicking. std's `println!` and its kin
//! panic when a write fails (a reader that closed its pipe, `> /dev/full`); the crate's own
//! macros of those names (lib.rs, main.rs) write here instead. A failed write to stderr is
//! dropped: there is nowhere left to say it. The first failed write to stdout is kept, and
//! nothing more is written there; the CLI reports it in its exit code (`stdout_failure`),
//! except a closed pipe, which only means the reader wanted no more (`qbat-gpu measures |
//! head`).

use std::io::Write;
use std::sync::Mutex;

static STDOUT_FAILED: Mutex<Option<std::io::Error>> = Mutex::new(None);

/// Write to stdout (`print!`, `println!`).
pub fn out(args: std::fmt::Arguments) {
    let mut failed = STDOUT_FAILED.lock().unwrap_or_else(|e| e.into_inner());
    if failed.is_none() {
        if let Err(e) = std::io::stdout().lock().write_fmt(args) {
            *failed = Some(e);
        }
    }
}

/// Write to stderr (`eprint!`, `eprintln!`).
pub fn err(args: std::fmt::Arguments) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// Flush stdout, and return its first failed write, unless the reader closed the pipe.
pub fn stdout_failure() -> Option<std::io::Error> {
    let mut failed = STDOUT_FAILED.lock().unwrap_or_else(|e| e.into_inner());
    if failed.is_none() {
        if let Err(e) = std::io::stdout().lock().flush() {
            *failed = Some(e);
        }
    }
    failed.take().filter(|e| e.kind() != std::io::ErrorKind::BrokenPipe)
}
