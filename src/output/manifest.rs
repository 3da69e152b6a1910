//! The manifest of an output directory, `.qbat-manifest.json`: every file a qbat-gpu run wrote
//! there, with its size and BLAKE3 hash. It marks a directory as a qbat-gpu output; `--force`
//! replaces exactly the files it lists and never another; `merge` checks every listed file
//! before any work, so that a damaged or edited shard is refused rather than copied through.

use super::{read_bounded, write_atomic, SMALL_FILE_LIMIT};
use crate::error::{QbatError, Result};
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::Path;

/// The manifest's file name (hidden, so that listings of results stay clean).
pub const MANIFEST: &str = ".qbat-manifest.json";

/// One file: its name in the directory, its size and its BLAKE3 hash (hex), and where the
/// commit that placed it left it (`Identity`, where known).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub bytes: u64,
    pub blake3: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
}

impl FileEntry {
    pub fn new(name: impl Into<String>, bytes: u64, blake3: String) -> FileEntry {
        FileEntry { name: name.into(), bytes, blake3, identity: None }
    }
}

/// Where a file lay when its output was committed: its device and inode, and its change and
/// modification times (s, ns). Writing to a file, replacing, renaming or touching it sets its
/// change time to the clock's time, which no user can choose; so a listed file whose identity
/// and size are unchanged is still the file qbat-gpu committed, and the check before it is
/// replaced or removed need not read it (`check_still_written`). That holds only where a
/// change made after the identity was taken gets a later change time: on a file system whose
/// clock ticks coarsely (a few ms on kernels before 6.13, a second or two on some), an edit in
/// the same tick keeps it. So an identity is recorded only for a file last changed before a
/// probe file made afterwards (`Manifest::record_identities`, git's rule for its index). A
/// manifest can be forged either way: this trusts it no more than its hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    dev: u64,
    ino: u64,
    ctime: (i64, i64),
    mtime: (i64, i64),
}

impl Identity {
    /// The identity of a regular file; None for anything else, or where the platform has none.
    pub fn of(meta: &std::fs::Metadata) -> Option<Identity> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            meta.file_type().is_file().then(|| Identity {
                dev: meta.dev(),
                ino: meta.ino(),
                ctime: (meta.ctime(), meta.ctime_nsec()),
                mtime: (meta.mtime(), meta.mtime_nsec()),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            None
        }
    }
}

/// The files of one output directory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub files: Vec<FileEntry>,
}

/// A name a manifest may list: one plain, visible file name of the directory (no separator,
/// not `.` or `..`, no leading dot, no NUL).
pub(super) fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0']) && Path::new(name).file_name().is_some_and(|n| n == name)
}

/// Check that writing `names` into `dir` replaces only files qbat-gpu wrote there: each that
/// exists must be listed in the directory's manifest with its present size and hash. Else an
/// error naming the file, before anything is written.
pub fn check_replaceable(dir: &Path, names: &[String]) -> Result<()> {
    check_replaceable_under(dir, Manifest::read(dir)?.as_ref(), names)
}

/// `check_replaceable` against `manifest`, the directory's manifest as read already (None where
/// it has none).
pub fn check_replaceable_under(dir: &Path, manifest: Option<&Manifest>, names: &[String]) -> Result<()> {
    for name in names {
        let path = dir.join(name);
        // (a dangling link counts: symlink_metadata, not exists)
        if std::fs::symlink_metadata(&path).is_err() {
            continue;
        }
        match manifest.and_then(|m| m.get(name)) {
            None => {
                return Err(QbatError::invalid(
                    path.display().to_string(),
                    "exists and was not written by qbat-gpu (it is not in the manifest); move it away first",
                ))
            }
            Some(want) => check_still_written(&path, want, "move it away first")?,
        }
    }
    Ok(())
}

/// A listed file that is present must still be the one qbat-gpu wrote before it is replaced
/// or removed: a regular file (not a link, directory or special file) of the listed size and
/// hash. Else an error naming it, ending with `advice`.
pub fn check_still_written(path: &Path, want: &FileEntry, advice: &str) -> Result<()> {
    let refuse = |why: String| QbatError::invalid(path.display().to_string(), format!("{why}; {advice}"));
    match std::fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(m) if !m.file_type().is_file() => Err(refuse("is not the regular file qbat-gpu wrote (a link, directory or special file)".into())),
        Ok(_) if untouched(path, want) => Ok(()),
        Ok(_) => {
            check_file(path, want).map_err(|why| refuse(format!("differs from the file qbat-gpu wrote ({why}: edited, or left by an interrupted commit)")))
        }
    }
}

/// Is the regular file at `path` (not a link) the one `want` lists, untouched since the commit
/// that recorded its identity? (Of its listed size, and with that identity.)
fn untouched(path: &Path, want: &FileEntry) -> bool {
    want.identity.is_some() && std::fs::symlink_metadata(path).is_ok_and(|m| m.len() == want.bytes) && current_identity(path) == want.identity
}

/// The identity of the regular file at `path` (not a link), from the file opened: on a network
/// file system an open revalidates the attributes a bare `lstat` may take from a stale cache.
fn current_identity(path: &Path) -> Option<Identity> {
    Identity::of(&crate::plain_file::open_plain(path).ok()?.metadata().ok()?)
}

/// Size and BLAKE3 hash of a regular file, read once in pieces of up to 8 MiB (no larger than
/// the file), each hashed on every core where it is large enough to gain from it. Anything
/// but a regular file (a link, a FIFO, a device, a directory) is refused, naming it, before a
/// byte is read (`plain_file::open_regular`): no hash waits on a writer or reads without end.
pub fn hash_file(path: &Path) -> Result<FileEntry> {
    let (f, len) = crate::plain_file::open_regular(path)?;
    hash_opened(f, len, path)
}

/// `hash_file` of the file `f` opened at `path`, of `len` bytes when it was opened.
fn hash_opened(mut f: impl std::io::Read, len: u64, path: &Path) -> Result<FileEntry> {
    const PIECE: u64 = 8 << 20;
    let mut hasher = blake3::Hasher::new();
    let mut piece = vec![0u8; len.clamp(4096, PIECE) as usize];
    let mut bytes = 0u64;
    loop {
        let n = match f.read(&mut piece) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => r.map_err(|e| QbatError::io(path, e))?,
        };
        if n == 0 {
            break;
        }
        // (on rayon's pool only where `start_pool` started it in this process: a hash that
        // started the pool on its own left it unrecorded, and a forked child then handed work
        // to threads it does not have, and waited for ever)
        if n >= 1 << 20 && crate::threads::pool_usable() {
            hasher.update_rayon(&piece[..n]);
        } else {
            hasher.update(&piece[..n]);
        }
        bytes += n as u64;
    }
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    Ok(FileEntry::new(name, bytes, hasher.finalize().to_hex().to_string()))
}

/// The reason the file at `path` is not the one `want` records (a regular file, of its size,
/// then of its BLAKE3 hash), if it is not: a file of another size is not read, and no more
/// than its recorded size (and a byte, to see it grew) is.
pub fn check_file(path: &Path, want: &FileEntry) -> std::result::Result<(), String> {
    use std::io::Read as _;
    let (f, len) = crate::plain_file::open_regular(path).map_err(|e| e.with_causes())?;
    if len != want.bytes {
        return Err(format!("{} holds {len} bytes, not {}", path.display(), want.bytes));
    }
    let got = hash_opened(f.take(want.bytes.saturating_add(1)), len, path).map_err(|e| e.with_causes())?;
    if got.bytes != want.bytes {
        return Err(format!("{} holds {} bytes, not {}", path.display(), got.bytes, want.bytes));
    }
    if got.blake3 != want.blake3 {
        return Err(format!("the content of {} differs from its hash", path.display()));
    }
    Ok(())
}

impl Manifest {
    /// The manifest of every plain file in `dir` (in name order), the manifest itself and
    /// hidden temporary files left out.
    pub fn of_dir(dir: &Path) -> Result<Manifest> {
        Manifest::of_dir_with(dir, &[])
    }

    /// `of_dir`, taking the entries of `known` (files this process wrote and hashed as it
    /// wrote them) instead of reading those files again.
    pub fn of_dir_with(dir: &Path, known: &[FileEntry]) -> Result<Manifest> {
        let mut names: Vec<String> = vec![];
        for entry in std::fs::read_dir(dir).map_err(|e| QbatError::io(dir, e))? {
            let entry = entry.map_err(|e| QbatError::io(dir, e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if entry.file_type().map_err(|e| QbatError::io(&entry.path(), e))?.is_file() && !name.starts_with('.') {
                names.push(name);
            }
        }
        names.sort();
        let entry = |n: &String| match known.iter().find(|e| &e.name == n) {
            Some(e) => Ok(e.clone()),
            None => hash_file(&dir.join(n)),
        };
        Ok(Manifest { files: names.iter().map(entry).collect::<Result<_>>()? })
    }

    /// The manifest of `dir`, or None where it has none (not a qbat-gpu output). A manifest
    /// that cannot be read or parsed is an error naming it.
    pub fn read(dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(MANIFEST);
        if !path.exists() {
            return Ok(None);
        }
        Manifest::parse(&read_bounded(&path, SMALL_FILE_LIMIT)?, &path).map(Some)
    }

    /// The manifest in `bytes`, read from `path`: an error naming it where it is not one.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Manifest> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| QbatError::invalid(path.display().to_string(), format!("damaged manifest: {e}")))?;
        // Only the directory's own plain files are ever listed: a name that reaches elsewhere
        // (`../x`, an absolute path) would have `--force` remove a file qbat-gpu did not write.
        if let Some(f) = m.files.iter().find(|f| !is_plain_name(&f.name)) {
            return Err(QbatError::invalid(path.display().to_string(), format!("damaged manifest: {:?} is not the name of a file in this directory", f.name)));
        }
        Ok(m)
    }

    /// Record in the manifest of `dir`, an output just committed, each listed file's
    /// `Identity`, where the file was last changed before a probe file made first (so that
    /// any later change gets a later change time, whatever the clock's tick): a probe is made,
    /// then each file looked at; where one was changed in the probe's tick, the probe is made
    /// again a few ms later, a few times at most, and a file still not older gets none (it
    /// will be read and hashed when it is next checked), as does one not of its listed size.
    /// Called once nothing else of the run will touch the files: removing the second link of a
    /// file placed by a hard link moves its change time. The output stands without
    /// identities: they only spare a later check a read.
    pub fn record_identities(dir: &Path) -> Result<()> {
        // Under the directory's lock, so that the manifest written back is the one read: a
        // commit into `dir` between the two (a --force run just after this one's) was
        // overwritten by this one's list, its files trusted under this one's hashes. Where
        // another holds the lock, nothing is recorded (the files are then hashed when read).
        let Some(_lock) = super::dir_lock::try_lock_dir(dir) else {
            return Ok(());
        };
        let Some(mut m) = Manifest::read(dir)? else {
            return Ok(());
        };
        if let Some(wait) = crate::faults::identities_delay() {
            std::thread::sleep(wait);
        }
        for attempt in 0..4 {
            if attempt > 0 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let Some(probe) = probe_change_time(dir) else {
                return Ok(());
            };
            let mut all = true;
            for f in &mut m.files {
                let meta = std::fs::symlink_metadata(dir.join(&f.name)).ok().filter(|meta| meta.len() == f.bytes);
                f.identity = meta.and_then(|meta| Identity::of(&meta)).filter(|id| id.ctime < probe);
                all &= f.identity.is_some();
            }
            if all {
                break;
            }
        }
        m.write(dir)
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        write_atomic(&dir.join(MANIFEST), |w| serde_json::to_writer_pretty(&mut *w, self).map_err(std::io::Error::other))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.files.iter().any(|f| f.name == name)
    }

    pub fn get(&self, name: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.name == name)
    }

    /// Check every listed file of `dir`: present, of its size and hash. The first difference
    /// is an error naming the file and what differs. A file untouched since its commit (its
    /// recorded `Identity`, which any write, rename or copy changes) is not read again, as
    /// `check_still_written` takes it: a merge of shards on their shared file system reads
    /// each series once, to copy it, not also to hash it.
    pub fn verify(&self, dir: &Path) -> Result<()> {
        for want in &self.files {
            let path = dir.join(&want.name);
            let shown = path.display().to_string();
            match std::fs::symlink_metadata(&path) {
                Err(_) => return Err(QbatError::invalid(shown, "listed in the manifest but missing")),
                // (a FIFO, device, directory or link in its place: not the file written)
                Ok(m) if !m.is_file() => return Err(QbatError::invalid(shown, "listed in the manifest, but is not a regular file")),
                Ok(_) => {}
            }
            if untouched(&path, want) {
                continue;
            }
            let got = hash_file(&path)?;
            if got.bytes != want.bytes {
                return Err(QbatError::invalid(
                    shown,
                    format!("holds {} bytes, the manifest says {}: the file was truncated or edited", got.bytes, want.bytes),
                ));
            }
            if got.blake3 != want.blake3 {
                return Err(QbatError::invalid(shown, "its content differs from the manifest's hash: the file was edited or damaged"));
            }
        }
        Ok(())
    }
}

/// The change time (s, ns) of a hidden file made in `dir` now, and removed; None where none
/// can be made there, or the platform has no change times. The file is looked at, then
/// written: a kernel with fine-grained change times (Linux 6.13 and later) stamps a change to
/// a file whose time was looked at with the clock's own time, later than a coarse tick's, and
/// stamps every later change no earlier (so files changed earlier in the tick are older).
fn probe_change_time(dir: &Path) -> Option<(i64, i64)> {
    use std::io::Write as _;
    let mut probe = tempfile::Builder::new().prefix(".qbat-clock.").tempfile_in(dir).ok()?;
    probe.as_file().metadata().ok()?;
    probe.write_all(b"q").ok()?;
    Identity::of(&probe.as_file().metadata().ok()?).map(|id| id.ctime)
}

/// `write_atomic` that also returns the file's size and BLAKE3 hash, taken as it is written.
pub fn write_atomic_hashed(path: &Path, f: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>) -> Result<FileEntry> {
    let (mut hasher, mut bytes) = (blake3::Hasher::new(), 0u64);
    // Buffered before the hasher: fed a value at a time, BLAKE3 would hash 8-byte pieces
    // (its one-block path, many times slower than whole chunks through its SIMD path).
    write_atomic(path, |w| {
        let mut buffered = std::io::BufWriter::with_capacity(1 << 16, Hashing { inner: w, hasher: &mut hasher, bytes: &mut bytes });
        f(&mut buffered)?;
        buffered.flush()
    })?;
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    Ok(FileEntry::new(name, bytes, hasher.finalize().to_hex().to_string()))
}

/// A writer that hashes (BLAKE3) and counts the bytes `inner` took.
pub struct Hashing<'a, W: std::io::Write + ?Sized> {
    pub inner: &'a mut W,
    pub hasher: &'a mut blake3::Hasher,
    pub bytes: &'a mut u64,
}

impl<W: std::io::Write + ?Sized> std::io::Write for Hashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        *self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// `hash_file` and `check_file` refuse, at once, what is not a regular file: a FIFO (an
    /// open for reading waited on a writer), a link to /dev/zero (read without end), a link to
    /// a regular file; a file of another size than recorded is refused unread.
    #[test]
    fn hashes_and_checks_refuse_what_is_not_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"qbat").unwrap();
        let want = hash_file(&file).unwrap();
        assert_eq!((want.bytes, want.blake3.as_str()), (4, blake3::hash(b"qbat").to_hex().as_str()));
        check_file(&file, &want).unwrap();
        let longer = FileEntry::new("f", 3, want.blake3.clone());
        assert!(check_file(&file, &longer).unwrap_err().contains("holds 4 bytes, not 3"));
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let (zero, link) = (dir.path().join("zero"), dir.path().join("link"));
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        std::os::unix::fs::symlink(&file, &link).unwrap();
        for p in [fifo, zero, link] {
            // (on a thread: a hang fails the test after a few seconds rather than stopping it)
            let (tx, rx) = std::sync::mpsc::channel();
            let (path, want) = (p.clone(), want.clone());
            std::thread::spawn(move || tx.send((hash_file(&path).map_err(|e| e.with_causes()), check_file(&path, &want))).unwrap());
            let (hashed, checked) = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap_or_else(|_| panic!("{}: still reading after 10 s", p.display()));
            for why in [hashed.unwrap_err(), checked.unwrap_err()] {
                assert!(why.contains(&p.display().to_string()) && why.contains("not a regular file"), "{why}");
            }
        }
    }
}
