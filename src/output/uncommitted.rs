//! The staging directories of this process's outputs that are not yet committed (those
//! `OutputDir::begin` made), so that a signal that ends the process removes them
//! (`remove_all`) rather than leaving them half-written for good: a merge stopped by SIGTERM
//! (a batch system's time limit, `timeout`) left one that nothing removed. A commit holds the
//! list (`hold`) while its files move, so that a signal waits for them: an output is committed
//! whole or not at all. (Not while it waits for the output directory's lock, which another
//! process may hold for long: a signal then ends it uncommitted.)

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

static UNCOMMITTED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The list, held: while held, no signal removes anything.
pub struct Held(MutexGuard<'static, Vec<PathBuf>>);

/// The list, held (a poisoned lock is taken over: the list itself is always whole).
pub fn hold() -> Held {
    Held(UNCOMMITTED.lock().unwrap_or_else(|e| e.into_inner()))
}

impl Held {
    /// List `dir`, a staging directory just made.
    pub(super) fn add(&mut self, dir: &Path) {
        self.0.push(dir.to_path_buf());
    }

    /// Take `dir` off the list: committed, or removed by its own failure.
    pub(super) fn forget(&mut self, dir: &Path) {
        self.0.retain(|d| d != dir);
    }
}

/// A new directory, listed as it is made (a signal removes it), at the first of the names
/// `next_name` gives that is free: made here, never taken over, a name in use (a leftover of a
/// killed process with this id: ids repeat, in a container every time) is passed over for the
/// next.
pub fn make_dir(mut next_name: impl FnMut() -> PathBuf) -> crate::error::Result<PathBuf> {
    let mut held = hold();
    let mut tries = 0;
    loop {
        let dir = next_name();
        match crate::plain_file::create_own_dir(&dir) {
            Ok(()) => {
                held.add(&dir);
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 1000 => tries += 1,
            Err(e) => return Err(crate::error::QbatError::io(&dir, e)),
        }
    }
}

/// The staging directory of this process's streamed run (`.OUT.partial`, not on the list: it
/// stays for `--resume`) and what a signal does with it: its run's `remove_unless_checkpointed`,
/// which removes it where it holds no checkpoint yet. A run stopped by a signal in its setup,
/// before its blocks can be stopped at the next one, left one with nothing in it to resume,
/// which refused the next run into its `--out`.
static RUN_STAGING: Mutex<Option<(PathBuf, fn(&Path))>> = Mutex::new(None);

/// While held, a signal that ends the process hands the run's staging directory to its
/// `remove_unless_checkpointed` (`watch_run_staging`).
pub struct RunStaging(());

impl Drop for RunStaging {
    fn drop(&mut self) {
        *RUN_STAGING.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Watch `dir`, a streamed run's staging directory, until the guard is dropped.
pub fn watch_run_staging(dir: &Path, remove_unless_checkpointed: fn(&Path)) -> RunStaging {
    *RUN_STAGING.lock().unwrap_or_else(|e| e.into_inner()) = Some((dir.to_path_buf(), remove_unless_checkpointed));
    RunStaging(())
}

/// Remove every listed directory, and keep the list held (the caller ends the process, and no
/// commit may begin meanwhile); the run's staging directory goes where it holds no checkpoint
/// (`watch_run_staging`). A thread still writing into one finds it gone (renamed away
/// first, so that no file is made in it by its old name), and the removal is tried again
/// for what such a thread made in the meantime.
pub fn remove_all() -> Held {
    let mut held = hold();
    for dir in std::mem::take(&mut *held.0) {
        let gone = dir.with_file_name(crate::output::name_beside(&dir, "", "", ".gone"));
        let at = if std::fs::rename(&dir, &gone).is_ok() { gone } else { dir };
        for _ in 0..3 {
            if std::fs::remove_dir_all(&at).is_ok() || !at.exists() {
                break;
            }
        }
    }
    if let Some((dir, remove_unless_checkpointed)) = RUN_STAGING.lock().unwrap_or_else(|e| e.into_inner()).take() {
        remove_unless_checkpointed(&dir);
    }
    held
}
