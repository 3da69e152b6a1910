//! What `OutputDir::check` asks of the `--out` path itself before any work: that its lookup
//! fails, if at all, only for a missing name; that an existing directory takes new entries; and
//! that the longest path qbat-gpu builds from it fits the system's limit. Each was found only
//! at the commit, after the whole run, with exit 1 and a staging directory left.

use crate::error::{QbatError, Result};
use std::path::Path;

/// The longest path the system takes, in bytes (Linux's PATH_MAX, less its closing NUL).
pub const PATH_MAX: usize = 4095;

/// The most bytes qbat-gpu's own names add after `--out`'s name: a merge's analysis writes
/// `.NAME.partial-PID-N/.qbat-added-PID-N/.FILE.XXXXXX` beside it (1 + 9 + 10 + 1 + 20, then
/// 1 + 12 + 10 + 1 + 20, then 1 + 1 + FILE + 7 with FILE up to 55 bytes, the 2-D histogram
/// `plot_hist2d_<a>_<b>.svg` of the two longest measure names): 149 bytes; 160 with room.
pub const PATH_ROOM: usize = 160;

/// `final_dir` is there or is missing: any other failure of its lookup (`FILE/` or a socket
/// with a trailing slash, ENOTDIR; a loop, ELOOP; EACCES) leaves no directory to use or make.
/// A missing one spelled with a last component `.` (`new/.`, `new/./`) is refused too: the
/// system resolves that name only where the directory is there, so the commit could not
/// rename the output to it (exit 1 after the whole run, the staging directory left).
pub(super) fn found_or_missing(final_dir: &Path) -> Result<()> {
    match std::fs::metadata(final_dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(QbatError::invalid("--out", format!("cannot use {}: {e}", final_dir.display()))),
        Err(_) if ends_in_dot(final_dir) => {
            let plain: std::path::PathBuf = final_dir.components().collect();
            Err(QbatError::invalid(
                "--out",
                format!("{} does not exist, and a new directory cannot be named through '.': give it as {}", final_dir.display(), plain.display()),
            ))
        }
        _ => Ok(()),
    }
}

/// Whether `path` as spelled ends in the component `.` (trailing slashes aside).
fn ends_in_dot(path: &Path) -> bool {
    let bytes = path.as_os_str().as_encoded_bytes();
    let end = bytes.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1);
    let trimmed = &bytes[..end];
    trimmed == b"." || trimmed.ends_with(b"/.")
}

/// The existing directory `dir` takes new entries (not mode 555, not a read-only mount), asked
/// of the system for this process (`faccessat`, W_OK | X_OK, effective ids): nothing is made in
/// it, so neither a refused command nor another process's commit or recovery there sees an
/// entry of this check. Refused naming `field` where the answer is about the directory
/// (EACCES, EPERM, EROFS); another failure is an i/o error. (Unix; elsewhere the commit finds
/// out.)
pub fn writable_inside(dir: &Path, field: &str) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let Ok(c_path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
            return Ok(());
        };
        // SAFETY: a NUL-terminated path that lives through the call.
        if unsafe { libc::faccessat(libc::AT_FDCWD, c_path.as_ptr(), libc::W_OK | libc::X_OK, libc::AT_EACCESS) } != 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EACCES | libc::EPERM | libc::EROFS) => Err(QbatError::invalid(field, format!("cannot write in {}: {e}", dir.display()))),
                _ => Err(QbatError::io(dir, e)),
            };
        }
        // a removed folder (the working directory another process deleted) passes the access
        // check but takes no new entry
        // (no links where the folder's path cannot be resolved: some FUSE file systems report
        // no links for a folder that is there)
        let removed = |m: std::fs::Metadata| {
            std::os::unix::fs::MetadataExt::nlink(&m) == 0 && std::fs::canonicalize(dir).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
        };
        if std::fs::metadata(dir).is_ok_and(removed) {
            return Err(QbatError::invalid(field, format!("cannot write in {}: the folder was removed", dir.display())));
        }
    }
    #[cfg(not(unix))]
    let _ = (dir, field);
    Ok(())
}

/// What a resume asks of `--out` before any block runs (`OutputDir::check` is not for it: its
/// --out may hold the output its run was started to replace): that its lookup fails, if at
/// all, only for a missing name; that it is a directory, if it is there; and that the commit
/// can write into it, or where it is missing, into its parent, which the commit renames the
/// output into. Each was found only at the commit, after the remaining blocks, with exit 1.
pub fn check_for_resume(final_dir: &Path) -> Result<()> {
    found_or_missing(final_dir)?;
    match std::fs::metadata(final_dir) {
        Ok(m) if m.is_dir() => writable_inside(final_dir, "--out"),
        Ok(_) => Err(QbatError::invalid("--out", format!("{} exists and is not a directory", final_dir.display()))),
        Err(_) => writable_inside(super::parent_of(final_dir), "--out"),
    }
}

/// `path` as the file system resolves it, also where it does not exist yet: its canonical
/// form, else its canonical parent joined with its name; None where neither resolves.
pub fn resolved(path: &Path) -> Option<std::path::PathBuf> {
    std::fs::canonicalize(path).ok().or_else(|| Some(std::fs::canonicalize(super::parent_of(path)).ok()?.join(path.file_name()?)))
}

/// The path of `final_dir` (as given, and from the root through its canonical parent) with
/// `PATH_ROOM` more bytes after it stays within `PATH_MAX`.
pub(super) fn fits_path_max(final_dir: &Path) -> Result<()> {
    let absolute = resolved(final_dir).unwrap_or_else(|| final_dir.to_path_buf());
    let longest = absolute.as_os_str().len().max(final_dir.as_os_str().len());
    if longest + PATH_ROOM > PATH_MAX {
        return Err(QbatError::invalid(
            "--out",
            format!(
                "its path is {longest} bytes long, more than the {} that leave room under the system's limit of {PATH_MAX} for the names qbat-gpu writes beside and in it; choose a shorter path",
                PATH_MAX - PATH_ROOM
            ),
        ));
    }
    Ok(())
}

/// `PREFIX NAME SUFFIX`, NAME the file name of `path` (`or` where it has none) kept byte for
/// byte: the names qbat-gpu builds beside an output (its staging, lock and temporary files)
/// differ wherever the outputs' names differ, in bytes that are not UTF-8 too.
pub fn name_beside(path: &Path, prefix: &str, or: &str, suffix: &str) -> std::ffi::OsString {
    let mut name = std::ffi::OsString::from(prefix);
    name.push(path.file_name().unwrap_or(std::ffi::OsStr::new(or)));
    name.push(suffix);
    name
}
