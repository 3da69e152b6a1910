//! Locks on an existing output directory (flock on the directory itself). A commit into it,
//! and `analyze` adding its files, take it exclusively (`lock_dir`); whatever reads a finished
//! output to write another from it (`merge` its shards, Python's copy of an opened output)
//! takes it shared (`lock_dir_shared`) from its check of the manifest until its last read, so
//! that a `--force` run or merge that replaces the directory's files meanwhile waits for the
//! reads to end, rather than the reader taking one run's manifest and another's files.
//!
//! No holder waits for another lock while it holds one exclusively (a commit moves its files,
//! an analysis reads and writes its own directory), and a reader gives its shared locks back
//! before its own commit: no two processes wait on each other.

use super::cancel::WriteCancel;
use crate::error::Result;
use std::fs::{File, TryLockError};
use std::path::Path;

/// An exclusive lock on the existing directory `final_dir`, held while the value lives, so
/// that the commits into it (saves from threads or processes, under `--force`, and `analyze`
/// adding its files) go one at a time, and not while another process reads it (`lock_dir_shared`);
/// Ok(None) where the file system cannot lock (the commit then goes on unlocked). A lock
/// held elsewhere is said once, then waited for, until `cancel` is cancelled (a process stopped
/// while holding the lock, `kill -STOP` or a hung file system, kept such a wait, and Python's
/// Ctrl-C with it, for ever).
pub fn lock_dir(final_dir: &Path, cancel: WriteCancel) -> Result<Option<File>> {
    wait_for(final_dir, cancel, true)
}

/// `lock_dir` without a wait: None where another holds the lock (a commit, an analysis or a
/// reader), Some(None) where the file system cannot lock.
pub fn try_lock_dir(dir: &Path) -> Option<Option<File>> {
    let Ok(f) = open_dir(dir) else {
        return Some(None);
    };
    match f.try_lock() {
        Ok(()) => Some(Some(f)),
        Err(TryLockError::Error(_)) => Some(None),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// A shared lock on the existing output directory `dir`, for reading its files as its manifest
/// lists them: readers share it, a commit into `dir` (`lock_dir`) waits for them, and they for
/// it. Ok(None) where `dir` cannot be opened or the file system cannot lock; a wait is said
/// once, and ends with `cancel`, as `lock_dir`'s.
pub fn lock_dir_shared(dir: &Path, cancel: WriteCancel) -> Result<Option<File>> {
    wait_for(dir, cancel, false)
}

/// `dir`'s lock, `exclusive` or shared, waited for as `lock_dir` says.
fn wait_for(dir: &Path, cancel: WriteCancel, exclusive: bool) -> Result<Option<File>> {
    let Ok(f) = open_dir(dir) else {
        return Ok(None);
    };
    let mut said = false;
    loop {
        match if exclusive { f.try_lock() } else { f.try_lock_shared() } {
            Ok(()) => return Ok(Some(f)),
            Err(TryLockError::Error(_)) => return Ok(None),
            Err(TryLockError::WouldBlock) if !said => {
                // what holds it: a shared lock is free where only readers do (a commit waits
                // for a merge or a copy reading the directory), else a commit
                let shown = dir.display();
                crate::console::note(&match exclusive && f.try_lock_shared().is_ok_and(|()| f.unlock().is_ok()) {
                    true => format!("waiting for a merge or copy reading {shown} to finish"),
                    false if exclusive => format!("waiting for another commit into {shown} to finish"),
                    false => format!("waiting for another commit into {shown} to finish before reading it"),
                });
                said = true;
            }
            Err(TryLockError::WouldBlock) => {}
        }
        cancel.check()?;
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `dir` opened to be locked: as a directory, never blocking (a FIFO in its place, opened
/// for reading, waited for a writer for ever, before anything refused it).
fn open_dir(dir: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_DIRECTORY | libc::O_NONBLOCK);
    options.open(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Readers share a directory's lock; a commit's exclusive lock waits for them, and they
    /// for it.
    #[test]
    fn readers_share_the_lock_and_a_commit_waits_for_them() {
        static COUNTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = tempfile::tempdir().unwrap();
        let mark = WriteCancel::on(&COUNTS);
        let a = lock_dir_shared(dir.path(), mark).unwrap().unwrap();
        let b = lock_dir_shared(dir.path(), mark).unwrap().unwrap();
        let commit = std::thread::spawn({
            let d = dir.path().to_path_buf();
            move || lock_dir(&d, mark).map(|l| l.is_some())
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!commit.is_finished(), "the commit did not wait for the readers");
        drop(a);
        drop(b);
        assert!(commit.join().unwrap().unwrap(), "the commit took the lock once the readers were done");
        let held = lock_dir(dir.path(), mark).unwrap().unwrap();
        let reader = std::thread::spawn({
            let d = dir.path().to_path_buf();
            move || lock_dir_shared(&d, mark).map(|l| l.is_some())
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!reader.is_finished(), "the reader did not wait for the commit");
        drop(held);
        assert!(reader.join().unwrap().unwrap());
    }
}
