//! The paths a call into the extension was given (an output, shards, a run directory), as the
//! library's errors and notes may show them: their translation into Python's keywords
//! (`pyapi::keyword_error_keeping`, `pyapi::keyword_message_keeping`) leaves them as given.
//!
//! Only the call's own, while it runs: a path named `--force` in one call leaves the advice
//! `--force` of the next a keyword. Its texts are worked out once, at its start
//! (`pyapi::shown_paths`: linear in the path's length), not at each poll of what was said.
//! Its errors read this thread's call (`CallPaths`); notes, which the library queues from any
//! thread, are translated with the paths of the calls in flight, and what is still queued at a
//! call's end is translated then, before its paths go, for the package to take after it.

use qbat_gpu::pyapi;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

thread_local! {
    /// The paths of the call running on this thread (`CallPaths::enter`).
    static THIS_CALL: RefCell<Option<Arc<Vec<String>>>> = const { RefCell::new(None) };
}

/// The paths of the calls in flight, on any thread.
static IN_FLIGHT: Mutex<Vec<Arc<Vec<String>>>> = Mutex::new(Vec::new());

/// What the library said during calls now ended, translated at their end, not yet taken: at
/// most `SAID_LIMIT` lines (as the console's own queue), then a count of those dropped.
static SAID: Mutex<Vec<String>> = Mutex::new(Vec::new());
const SAID_LIMIT: usize = 10_000;
static SAID_DROPPED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// `lines` after what `said` holds, to `SAID_LIMIT` lines, the rest counted.
fn keep_said(said: &mut Vec<String>, lines: Vec<String>) {
    let room = SAID_LIMIT.saturating_sub(said.len());
    let dropped = lines.len().saturating_sub(room);
    said.extend(lines.into_iter().take(room));
    SAID_DROPPED.fetch_add(dropped, std::sync::atomic::Ordering::Relaxed);
}

/// The lines `said` held, with a note of those dropped, and the count cleared.
fn said_lines(said: &mut Vec<String>) -> Vec<String> {
    let mut lines = std::mem::take(said);
    let dropped = SAID_DROPPED.swap(0, std::sync::atomic::Ordering::Relaxed);
    if dropped > 0 {
        lines.push(format!("note: {dropped} more lines said on stderr were dropped (more than {SAID_LIMIT} before they were read)"));
    }
    lines
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A call's paths, from its start to its end (the guard's drop).
pub struct CallPaths {
    forms: Arc<Vec<String>>,
    outer: Option<Arc<Vec<String>>>,
}

impl CallPaths {
    pub fn enter<'a>(paths: impl IntoIterator<Item = &'a PathBuf>) -> Self {
        let paths: Vec<&Path> = paths.into_iter().map(PathBuf::as_path).collect();
        let forms = Arc::new(pyapi::shown_paths(&paths));
        lock(&IN_FLIGHT).push(forms.clone());
        let outer = THIS_CALL.with(|c| c.replace(Some(forms.clone())));
        CallPaths { forms, outer }
    }
}

impl Drop for CallPaths {
    fn drop(&mut self) {
        {
            let mut said = lock(&SAID);
            let lines = translated(qbat_gpu::console::take_captured());
            keep_said(&mut said, lines);
        }
        let mut in_flight = lock(&IN_FLIGHT);
        if let Some(k) = in_flight.iter().position(|f| Arc::ptr_eq(f, &self.forms)) {
            in_flight.swap_remove(k);
        }
        THIS_CALL.with(|c| *c.borrow_mut() = self.outer.take());
    }
}

/// The paths of the call on this thread, as its errors may show them (none outside a call).
pub fn this_call() -> Arc<Vec<String>> {
    THIS_CALL.with(|c| c.borrow().clone()).unwrap_or_default()
}

/// `lines` said by the library, with the keywords, the paths of the calls in flight as given.
fn translated(lines: Vec<String>) -> Vec<String> {
    if lines.is_empty() {
        return lines;
    }
    let kept: Vec<String> = lock(&IN_FLIGHT).iter().flat_map(|f| f.iter().cloned()).collect();
    lines.iter().map(|line| pyapi::keyword_message_keeping(line, &kept)).collect()
}

/// What the library said since the last call, oldest first, translated: that of the calls
/// ended, then what is queued now.
pub fn take_said() -> Vec<String> {
    let mut said = lock(&SAID);
    let mut lines = said_lines(&mut said);
    lines.extend(translated(qbat_gpu::console::take_captured()));
    lines
}

/// What was translated at the end of a call and not taken, written to stderr (when the
/// capture goes off, before what is still queued).
pub fn write_said() {
    use std::io::Write;
    let text: String = said_lines(&mut lock(&SAID)).into_iter().map(|l| l + "\n").collect();
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}
