//! Opening a path for reading as a plain file: never through a link, never waiting on a FIFO
//! (an open of a FIFO for reading blocks until a writer comes). For files qbat-gpu finds at a
//! known name that a user could have replaced: an output's listed files, the pipeline cache.

use std::path::Path;

/// `path` opened for reading, without following a link at its last component or waiting on a
/// FIFO (Unix; a plain open elsewhere). The caller checks the file type of what it opened.
pub fn open_plain(path: &Path) -> std::io::Result<std::fs::File> {
    let mut open = std::fs::OpenOptions::new();
    open.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut open, libc::O_NOFOLLOW | libc::O_NONBLOCK);
    open.open(path)
}
