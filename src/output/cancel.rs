//! Python's Ctrl-C for the outputs being written. A save, a merge or a copy runs on a thread of
//! its own while Python waits for it; Ctrl-C calls `cancel_writes`, and every output of the
//! process begun before it stops: at its next write, at the next chunk of the series a merge's
//! analysis reads, or at its commit, including a commit waiting for another's lock on its
//! directory. It ends `Err(Cancelled)` with nothing under its final name (a save's or a merge's
//! staging directory removed; a run's own stays for `--resume`). The CLI ends by the signal
//! instead (`crate::signals`), and never calls this.

use crate::error::{QbatError, Result};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

/// Bumped by `cancel_writes`; an output begun when it held another value is cancelled.
static CANCELS: AtomicU64 = AtomicU64::new(0);

/// Stop every output of this process that is being written now (see the module's doc). One
/// begun afterwards is not affected.
pub fn cancel_writes() {
    CANCELS.fetch_add(1, SeqCst);
}

/// When an output began, as `cancel_writes` counts: it is cancelled once the count moves on.
#[derive(Clone, Copy, Debug)]
pub struct WriteCancel {
    counts: &'static AtomicU64,
    at: u64,
}

impl WriteCancel {
    pub fn now() -> WriteCancel {
        WriteCancel::on(&CANCELS)
    }
    /// A mark on a count of its own (the tests': the process's count stops every output of
    /// the tests running beside them).
    pub(crate) fn on(counts: &'static AtomicU64) -> WriteCancel {
        WriteCancel { counts, at: counts.load(SeqCst) }
    }
    pub fn is_cancelled(self) -> bool {
        self.counts.load(SeqCst) != self.at
    }
    /// `Err(Cancelled)` once `cancel_writes` was called after `self` was taken.
    pub fn check(self) -> Result<()> {
        if self.is_cancelled() {
            Err(QbatError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// A writer that fails once its output is cancelled, so that the file being written is left
/// unfinished (and, written atomically, never appears under its name).
pub(super) struct CancellableWriter<'a> {
    pub inner: &'a mut dyn Write,
    pub cancel: WriteCancel,
}

impl CancellableWriter<'_> {
    fn refuse_if_cancelled(&self) -> std::io::Result<()> {
        // (not ErrorKind::Interrupted, which write_all retries)
        match self.cancel.is_cancelled() {
            true => Err(std::io::Error::other("cancelled")),
            false => Ok(()),
        }
    }
}

impl Write for CancellableWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.refuse_if_cancelled()?;
        self.inner.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.refuse_if_cancelled()?;
        self.inner.write_all(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.refuse_if_cancelled()?;
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mark taken before `cancel_writes` is cancelled; a writer under it fails its next
    /// write and passes nothing more on.
    #[test]
    fn a_cancel_stops_the_writes_begun_before_it() {
        static COUNTS: AtomicU64 = AtomicU64::new(0);
        let before = WriteCancel::on(&COUNTS);
        let mut sink: Vec<u8> = vec![];
        let mut w = CancellableWriter { inner: &mut sink, cancel: before };
        w.write_all(b"first").unwrap();
        COUNTS.fetch_add(1, SeqCst);
        let after = WriteCancel::on(&COUNTS);
        assert!(w.write_all(b"second").is_err());
        assert!(w.write(b"third").is_err());
        assert!(matches!(before.check(), Err(QbatError::Cancelled)));
        assert!(after.check().is_ok());
        assert_eq!(sink, b"first");
    }
}
