//! Opening a path as a plain file: never through a link, never waiting on a FIFO (an open of
//! a FIFO for reading blocks until a writer comes). For files qbat-gpu finds at a known name
//! that a user could have replaced: an output's listed files, the pipeline cache, and the
//! files of a run's staging directory that a resume reads and writes again.

use crate::error::{QbatError, Result};
use std::path::Path;

/// `path` opened for reading, without following a link at its last component or waiting on a
/// FIFO (Unix; a plain open elsewhere). The caller checks the file type of what it opened.
pub fn open_plain(path: &Path) -> std::io::Result<std::fs::File> {
    let mut open = std::fs::OpenOptions::new();
    open.read(true);
    opened_plain(path, &mut open)
}

/// `open` of `path` with O_NOFOLLOW and O_NONBLOCK added (Unix).
fn opened_plain(path: &Path, open: &mut std::fs::OpenOptions) -> std::io::Result<std::fs::File> {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(open, libc::O_NOFOLLOW | libc::O_NONBLOCK);
    open.open(path)
}

/// Make the directory `path` for qbat-gpu's own use: owner rwx added to what the umask left
/// (under umask 0777 it was mode 000, and nothing could be written in it or removed from it),
/// the group's and others' bits as the umask says (077 stays private).
pub fn create_own_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let owned = std::fs::symlink_metadata(path).and_then(|m| match m.permissions().mode() {
            mode if mode & 0o700 != 0o700 => std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o700)),
            _ => Ok(()),
        });
        if let Err(e) = owned {
            // (an empty directory goes without read permission on it)
            let _ = std::fs::remove_dir(path);
            return Err(e);
        }
    }
    Ok(())
}

/// Make the entries of the directory `dir` durable (fsync of the directory: a rename into it
/// survives a power loss only once its directory is synced). Best effort where the directory
/// cannot be opened for it (whatever the reason: a parent one may write in but not read, mode
/// -wx, is the common one) or its file system cannot sync a directory (EINVAL, ENOTSUP,
/// EBADF): a commit that is in place is not failed for that. A failing sync (EIO, ENOSPC) is
/// an i/o error naming `dir`.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let mut open = std::fs::OpenOptions::new();
        open.read(true);
        std::os::unix::fs::OpenOptionsExt::custom_flags(&mut open, libc::O_DIRECTORY);
        let Ok(d) = open.open(dir) else {
            return Ok(());
        };
        match d.sync_all() {
            Err(e) if !matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOTSUP | libc::EBADF)) => return Err(QbatError::io(dir, e)),
            _ => {}
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The refusal of something at `path` that is not a regular file.
fn not_regular(path: &Path) -> QbatError {
    QbatError::invalid(path.display().to_string(), "is not a regular file (a link, a FIFO, a device or a directory); qbat-gpu reads no other")
}

/// `path` opened for reading as a regular file, with its size: a link (even to a regular
/// file), a FIFO, a device or a directory is refused, naming it (exit 2), before it is opened
/// where it can be seen (`symlink_metadata`), and in any case before a byte is read (the type
/// of what was opened). So no read waits on a writer or runs without end. A missing file or
/// one that cannot be opened is an i/o error naming it.
pub fn open_regular(path: &Path) -> Result<(std::fs::File, u64)> {
    let mut open = std::fs::OpenOptions::new();
    open.read(true);
    open_regular_with(path, &mut open)
}

/// `open_regular` for reading and writing (never created): the file of an interrupted run
/// that a resume writes on in place.
pub fn open_regular_rw(path: &Path) -> Result<(std::fs::File, u64)> {
    let mut open = std::fs::OpenOptions::new();
    open.read(true).write(true);
    open_regular_with(path, &mut open)
}

fn open_regular_with(path: &Path, open: &mut std::fs::OpenOptions) -> Result<(std::fs::File, u64)> {
    let seen = std::fs::symlink_metadata(path).map_err(|e| QbatError::io(path, e))?;
    if !seen.file_type().is_file() {
        return Err(not_regular(path));
    }
    let f = match opened_plain(path, open) {
        Ok(f) => f,
        // a link put in its place since it was seen
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(not_regular(path)),
        Err(e) => return Err(QbatError::io(path, e)),
    };
    let meta = f.metadata().map_err(|e| QbatError::io(path, e))?;
    if !meta.file_type().is_file() {
        return Err(not_regular(path));
    }
    blocking(&f).map_err(|e| QbatError::io(path, e))?;
    Ok((f, meta.len()))
}

/// The regular file `f` in blocking mode again (O_NONBLOCK only kept the open from waiting on
/// a FIFO; it means nothing to a regular file on Linux, but may to another system's).
fn blocking(f: &std::fs::File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let fd = f.as_raw_fd();
        // SAFETY: fcntl on a descriptor that `f` owns and keeps open for the call.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        // SAFETY: as above.
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[cfg(not(unix))]
    let _ = f;
    Ok(())
}

/// `path` opened for reading, following links, as a regular file, with its size: the type
/// checked on what was opened (a FIFO is opened without waiting for a writer, then refused),
/// so that a file swapped for a FIFO or a device after a look by name is refused all the same.
/// A file that cannot be opened is refused naming it, with the system's reason.
pub fn open_followed_regular(path: &Path) -> Result<(std::fs::File, u64)> {
    let shown = || path.display().to_string();
    let mut open = std::fs::OpenOptions::new();
    open.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut open, libc::O_NONBLOCK);
    let f = open.open(path).map_err(|e| match refusal_of_the_path(&e) {
        true => QbatError::invalid(shown(), format!("cannot read it: {e}")),
        // out of descriptors or memory, a failing disk: the machine's fault, not the input's
        false => QbatError::io(path, e),
    })?;
    let meta = f.metadata().map_err(|e| QbatError::io(path, e))?;
    if !meta.is_file() {
        return Err(QbatError::invalid(shown(), "is not a regular file"));
    }
    blocking(&f).map_err(|e| QbatError::io(path, e))?;
    Ok((f, meta.len()))
}

/// Whether a failed open says something of the path itself (missing, not allowed, a loop of
/// links, a component that is no directory, too long, a device without its driver): the
/// input's fault, exit 2. Any other failure (EMFILE, ENFILE, EIO, ENOMEM, ...) is an i/o error.
fn refusal_of_the_path(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    if matches!(e.kind(), K::NotFound | K::PermissionDenied | K::NotADirectory | K::IsADirectory | K::InvalidFilename) {
        return true;
    }
    #[cfg(unix)]
    if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENXIO | libc::ENODEV | libc::EROFS | libc::ETXTBSY)) {
        return true;
    }
    false
}

/// The whole regular file at `path` (`open_regular`), of at most `limit` bytes: a larger one
/// is refused, naming it, before it is read, and one that grows past it while it is read.
pub fn read_regular_bounded(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let (f, len) = open_regular(path)?;
    read_to_limit(f, len, path, limit)
}

/// The whole of `f`, opened at `path` with `len` bytes, of at most `limit` bytes: a larger one
/// is refused, naming it, before it is read, and one that grows past it while it is read.
pub fn read_to_limit(f: std::fs::File, len: u64, path: &Path, limit: u64) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let shown = || path.display().to_string();
    if len > limit {
        return Err(QbatError::invalid(shown(), format!("is {len} bytes, more than the {limit} this file may have")));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    f.take(limit + 1).read_to_end(&mut bytes).map_err(|e| QbatError::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(QbatError::invalid(shown(), format!("grew past the {limit} bytes this file may have while it was read")));
    }
    Ok(bytes)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A regular file opens, with its size; a link to one, a link to a device, a FIFO and a
    /// directory are refused at once (exit 2, naming the path); a missing file is an i/o error.
    #[test]
    fn only_regular_files_open() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"12345").unwrap();
        assert_eq!(open_regular(&file).unwrap().1, 5);
        assert_eq!(open_regular_rw(&file).unwrap().1, 5);
        assert_eq!(read_regular_bounded(&file, 5).unwrap(), b"12345");
        assert!(read_regular_bounded(&file, 4).unwrap_err().to_string().contains("more than the 4"));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        for p in [&link, &zero, &fifo, &dir.path().to_path_buf()] {
            for e in [open_regular(p).unwrap_err(), open_regular_rw(p).unwrap_err(), read_regular_bounded(p, 1 << 20).unwrap_err()] {
                assert_eq!(e.exit_code(), 2, "{}: {e}", p.display());
                assert!(e.to_string().contains(&p.display().to_string()) && e.to_string().contains("not a regular file"), "{e}");
            }
        }
        let missing = open_regular(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(missing, QbatError::Io { .. }), "{missing}");
    }

    /// A failed open is the input's fault (exit 2) where it says something of the path, and
    /// an i/o error (exit 1) where the machine ran out of something or its disk failed.
    #[test]
    fn a_failed_open_blames_the_path_only_for_what_the_path_did() {
        for errno in [libc::ENOENT, libc::EACCES, libc::ENOTDIR, libc::ELOOP, libc::ENAMETOOLONG, libc::ENXIO] {
            assert!(refusal_of_the_path(&std::io::Error::from_raw_os_error(errno)), "errno {errno}");
        }
        for errno in [libc::EMFILE, libc::ENFILE, libc::EIO, libc::ENOMEM, libc::EINTR] {
            assert!(!refusal_of_the_path(&std::io::Error::from_raw_os_error(errno)), "errno {errno}");
        }
        let missing = tempfile::tempdir().unwrap().path().join("gone");
        let e = open_followed_regular(&missing).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        assert!(e.to_string().contains(&missing.display().to_string()), "{e}");
    }

    /// A directory syncs; one that cannot be opened for it is left as it is (a commit in place is
    /// not failed for its sync).
    #[test]
    fn a_directory_syncs_and_one_that_cannot_be_opened_is_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        sync_dir(dir.path()).unwrap();
        sync_dir(&dir.path().join("gone")).unwrap();
    }

    /// `open_followed_regular` follows a link to a regular file, and refuses what it opened
    /// when that is a FIFO, a device or a directory: the FIFO's open itself does not wait for
    /// a writer (the thread would hang where it did; the test waits 10 s for it), so a file
    /// swapped for a FIFO between a look by name and the open cannot block a read.
    #[test]
    fn the_followed_open_checks_what_it_opened() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"12345").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(open_followed_regular(&link).unwrap().1, 5);
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let fifo_link = dir.path().join("fifo-link");
        std::os::unix::fs::symlink(&fifo, &fifo_link).unwrap();
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        for p in [fifo, fifo_link, zero, dir.path().to_path_buf()] {
            let (tx, rx) = std::sync::mpsc::channel();
            let shown = p.display().to_string();
            std::thread::spawn(move || tx.send(open_followed_regular(&p).map(|(_, len)| len)));
            let e = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap_or_else(|_| panic!("the open of {shown} waited")).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{e}");
            assert!(e.to_string().contains(&shown) && e.to_string().contains("not a regular file"), "{e}");
        }
    }
}
