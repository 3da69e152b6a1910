//! What `OutputDir::check` asks of the `--out` path itself before any work: that its lookup
//! fails, if at all, only for a missing name; and that an existing directory takes new entries.
//! Each was found only at the commit, after the whole run, with exit 1 and a staging directory
//! left.

use crate::error::{QbatError, Result};
use std::path::Path;

/// `final_dir` is there or is missing: any other failure of its lookup (`FILE/` or a socket
/// with a trailing slash, ENOTDIR; a loop, ELOOP; EACCES) leaves no directory to use or make.
pub(super) fn found_or_missing(final_dir: &Path) -> Result<()> {
    match std::fs::metadata(final_dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(QbatError::invalid("--out", format!("cannot use {}: {e}", final_dir.display()))),
        _ => Ok(()),
    }
}

/// The existing directory `dir` takes new entries (not mode 555, not a read-only mount): a
/// hidden directory of `Added`'s names made in it and removed (one a kill leaves there is an
/// addition cut short, which the next command removes). Refused naming `field`.
pub fn writable_inside(dir: &Path, field: &str) -> Result<()> {
    match super::added::Added::begin(dir) {
        Ok(_probe) => Ok(()),
        Err(QbatError::Io { source, .. }) => Err(QbatError::invalid(field, format!("cannot write in {}: {source}", dir.display()))),
        Err(e) => Err(e),
    }
}
