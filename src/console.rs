//! The process's stdout and stderr, written without panicking. std's `println!` and its kin
//! panic when a write fails (a reader that closed its pipe, `> /dev/full`); the crate's own
//! macros of those names (lib.rs, main.rs) write here instead. A failed write to stderr is
//! dropped: there is nowhere left to say it. The first failed write to stdout is kept, and
//! nothing more is written there; the CLI reports it in its exit code (`stdout_failure`),
//! except a closed pipe, which only means the reader wanted no more (`qbat-gpu measures |
//! head`).
//!
//! From Python, stderr is captured instead (`capture_stderr`): its lines are queued, and the
//! extension re-emits them in Python (warnings, `sys.stderr`), where Jupyter shows them in the
//! cell; fd 2 goes to the notebook server's console. A queue, not a callback: the run's threads
//! never need the GIL. The CLI never turns it on.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Entries kept at most: a run that says without end (nobody draining) holds bounded memory.
const CAPTURE_LIMIT: usize = 10_000;

/// The captured stderr: `None` while the capture is off.
static CAPTURED: Mutex<Option<Captured>> = Mutex::new(None);
/// Whether the capture is on, read without the lock (the CLI's writes never take it).
static CAPTURING: AtomicBool = AtomicBool::new(false);

#[derive(Default)]
struct Captured {
    /// Whole entries, without their final newline: one `eprintln!` each (a message of several
    /// lines stays one entry, a WARNING with its continuation).
    lines: Vec<String>,
    /// Entries dropped beyond `CAPTURE_LIMIT`.
    dropped: usize,
}

thread_local! {
    /// This thread's text of `eprint!` calls not yet ended by a newline (per thread: another
    /// thread's line never lands in the middle of it).
    static PARTIAL: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Say a note on stderr: `note: TEXT`, the user's strings in it escaped and the line bounded
/// (`error::shown_line`), as every note is said.
pub fn note(text: &str) {
    eprintln!("note: {}", crate::error::shown_line(text));
}

/// Write to stderr (`eprint!`, `eprintln!`), or queue the text while the capture is on.
pub fn err(args: std::fmt::Arguments) {
    if CAPTURING.load(Ordering::Acquire) {
        // formatted before the lock: a Display that itself says something must not deadlock
        let text = std::fmt::format(args);
        let ended = PARTIAL
            .try_with(|p| {
                let mut p = p.borrow_mut();
                p.push_str(&text);
                p.ends_with('\n').then(|| std::mem::take(&mut *p))
            })
            // (a thread being torn down has no buffer left: its text goes as it came)
            .unwrap_or(Some(text));
        let Some(mut line) = ended else {
            return;
        };
        let mut captured = CAPTURED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = captured.as_mut() {
            if line.ends_with('\n') {
                line.pop();
            }
            if c.lines.len() < CAPTURE_LIMIT {
                c.lines.push(line);
            } else {
                c.dropped += 1;
            }
            return;
        }
        drop(captured);
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        return;
    }
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// Capture stderr (`on`), or write it to fd 2 again: turning it off writes out what was queued
/// and not taken, so that nothing said is lost.
pub fn capture_stderr(on: bool) {
    let mut captured = CAPTURED.lock().unwrap_or_else(|e| e.into_inner());
    if on {
        captured.get_or_insert_with(Captured::default);
        CAPTURING.store(true, Ordering::Release);
        return;
    }
    CAPTURING.store(false, Ordering::Release);
    if let Some(mut c) = captured.take() {
        let mut text = take_lines(&mut c).into_iter().map(|l| l + "\n").collect::<String>();
        // (this thread's unended text; another thread's goes out with its newline)
        text.push_str(&PARTIAL.try_with(|p| std::mem::take(&mut *p.borrow_mut())).unwrap_or_default());
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

/// The whole entries captured since the last call (without their final newline), oldest first;
/// empty while the capture is off. A line not yet ended stays for a later call.
pub fn take_captured() -> Vec<String> {
    let mut captured = CAPTURED.lock().unwrap_or_else(|e| e.into_inner());
    captured.as_mut().map(take_lines).unwrap_or_default()
}

fn take_lines(c: &mut Captured) -> Vec<String> {
    let mut lines = std::mem::take(&mut c.lines);
    if c.dropped > 0 {
        lines.push(format!("note: {} more lines said on stderr were dropped (more than {CAPTURE_LIMIT} before they were read)", c.dropped));
        c.dropped = 0;
    }
    lines
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One test: the capture is process-wide (other tests' lines are filtered out by a marker).
    #[test]
    fn captured_lines_are_queued_whole_given_back_once_and_bounded() {
        let mine = |v: Vec<String>| v.into_iter().filter(|l| l.contains("capture-test")).collect::<Vec<_>>();
        capture_stderr(true);
        err(format_args!("note: capture-test {}\n", 1));
        err(format_args!("WARNING: capture-test a\ncontinued\n"));
        err(format_args!("capture-test progress "));
        assert_eq!(mine(take_captured()), ["note: capture-test 1", "WARNING: capture-test a\ncontinued"]);
        err(format_args!("done\n"));
        assert_eq!(mine(take_captured()), ["capture-test progress done"]);
        assert!(mine(take_captured()).is_empty());
        for k in 0..CAPTURE_LIMIT + 5 {
            err(format_args!("capture-test {k}\n"));
        }
        let all = take_captured();
        assert!(all.len() <= CAPTURE_LIMIT + 1 && all.last().is_some_and(|l| l.contains("lines said on stderr were dropped")), "{:?}", all.last());
        err(format_args!("capture-test left\n"));
        capture_stderr(false);
        assert!(take_captured().is_empty());
    }
}
