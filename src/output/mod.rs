//! Output directory: run.json, series.csv | series.npy + series.json, summary.csv, stats.csv,
//! and plots. Every file is written under a temporary name and renamed; a new directory is
//! assembled beside its final path and renamed into place, so a failed run leaves nothing
//! under a final name.

pub mod accumulate;
pub mod added;
pub mod cancel;
pub mod dir_lock;
pub mod exact_sum;
pub mod manifest;
pub mod out_path;
pub mod plots;
pub mod recover;
pub mod series;
pub mod states;
pub mod stats;
pub mod summary;
pub mod summary_ids;
pub mod uncommitted;

use crate::config::Plan;
use crate::error::{QbatError, Result};
pub use cancel::{cancel_writes, WriteCancel};
pub use dir_lock::{lock_dir, lock_dir_shared};
use manifest::{Manifest, MANIFEST};
pub use out_path::name_beside;

use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Csv,
    Npy,
}

/// What to write.
#[derive(Clone, Debug)]
pub struct OutputOptions {
    pub format: Format,
    pub series: bool,
    pub plots: bool,
    /// Refuse a series larger than this many bytes.
    pub series_limit: u64,
}

impl Default for OutputOptions {
    fn default() -> Self {
        OutputOptions { format: Format::Csv, series: true, plots: true, series_limit: 4 << 30 }
    }
}

/// A directory being assembled: files go to a fresh `staging` directory beside `final_dir`,
/// which becomes `final_dir` on commit (or, for an existing directory under `--force`, whose
/// files replace the qbat-gpu files there). A run that fails leaves `final_dir` untouched.
pub struct OutputDir {
    final_dir: PathBuf,
    staging: PathBuf,
    /// Size and hash of each file `write` wrote, taken as it was written, so that the
    /// manifest need not read them back.
    written: std::sync::Mutex<Vec<manifest::FileEntry>>,
    /// `--force`: the commit may replace the qbat-gpu files of a non-empty `final_dir`.
    force: bool,
    /// `staging` was made by `begin`, for this output alone: a failed commit removes it. (A
    /// run's staging, given to `at`, stays for `--resume`.)
    own_staging: bool,
    /// When it began: `cancel_writes` since stops its writes and its commit.
    cancel: WriteCancel,
}

/// Largest file of metadata (run.json, series.json, a checkpoint, a manifest) read back.
pub const SMALL_FILE_LIMIT: u64 = 64 << 20;

/// Read a whole file of at most `limit` bytes. Anything but a regular file (a device such as
/// /dev/zero, a pipe, a directory) and anything larger is refused, naming the file, before
/// it is read: no read grows without bound.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let (f, len) = crate::plain_file::open_followed_regular(path)?;
    crate::plain_file::read_to_limit(f, len, path, limit)
}

/// `read_bounded` as UTF-8 text.
pub fn read_text_bounded(path: &Path, limit: u64) -> Result<String> {
    String::from_utf8(read_bounded(path, limit)?).map_err(|_| QbatError::invalid(path.display().to_string(), "is not UTF-8 text"))
}

/// A new name for a directory assembled beside `final_dir`: the process and a count of the
/// names it took, so that each `OutputDir::begin` of a process (a Python session saving twice)
/// makes its own.
/// The longest name of an output directory: 255 bytes (a file name's limit on common file
/// systems) less the room its staging names take beside it (up to 40 bytes more).
pub const MAX_OUT_NAME: usize = 215;

fn staging_path(final_dir: &Path) -> PathBuf {
    static TAKEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = TAKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    parent_of(final_dir).join(name_beside(final_dir, ".", "out", &format!(".partial-{}-{n}", std::process::id())))
}

impl OutputDir {
    /// Check, before the run, that the target can be written: not a file, not a non-empty
    /// directory (unless `force`), and its parent writable (probed by creating the staging
    /// directory and removing it again).
    pub fn check(final_dir: &Path, force: bool) -> Result<()> {
        Self::check_with(final_dir, force, force)
    }

    /// `check` with `force` for a command that replaces only its own kind of output
    /// (`bench --scaling`) and refuses another's after this check: a commit cut short in
    /// `final_dir` is left for its commit to finish or undo, so that a refusal changes nothing.
    pub fn check_replacing_own(final_dir: &Path) -> Result<()> {
        Self::check_with(final_dir, true, false)
    }

    /// `check`, finishing or undoing a commit cut short in `final_dir` first where `recover`.
    fn check_with(final_dir: &Path, force: bool, recover: bool) -> Result<()> {
        let shown = final_dir.display();
        if final_dir.as_os_str().is_empty() {
            return Err(QbatError::invalid("--out", "is empty: name the output directory"));
        }
        // the staging names beside it (`.NAME.partial.new-PID`, `.NAME.partial-PID-N`) are
        // longer than NAME, and must still fit a file name (255 bytes on common file systems)
        let resolved = std::fs::canonicalize(final_dir).ok();
        for name in [final_dir.file_name(), resolved.as_deref().and_then(Path::file_name)].into_iter().flatten() {
            if name.len() > MAX_OUT_NAME {
                return Err(QbatError::invalid(
                    "--out",
                    format!("its name is {} bytes long, more than the {MAX_OUT_NAME} that leave room for the names qbat-gpu writes beside it; choose a shorter name", name.len()),
                ));
            }
        }
        // a link that leads nowhere (or to itself) is neither a directory nor free to create
        if let (Ok(_), Err(why)) = (std::fs::symlink_metadata(final_dir), std::fs::metadata(final_dir)) {
            return Err(QbatError::invalid("--out", format!("{shown} is a symbolic link that cannot be followed ({why})")));
        }
        out_path::found_or_missing(final_dir)?;
        if final_dir.exists() && !final_dir.is_dir() {
            return Err(QbatError::invalid("--out", format!("{shown} exists and is not a directory")));
        }
        if final_dir.is_dir() {
            // (before a recovery below writes in it)
            out_path::writable_inside(final_dir, "--out")?;
            let entries = std::fs::read_dir(final_dir).map_err(|e| QbatError::invalid("--out", format!("cannot read {shown}: {e}")))?;
            if entries.count() > 0 {
                if !force {
                    return Err(QbatError::invalid(
                        "--out",
                        format!("{shown} exists and is not empty; choose a new directory, or pass --force to replace the qbat-gpu files in it"),
                    ));
                }
                // --force replaces a run's own files, listed in its manifest, and nothing else.
                // A commit into it cut short is finished or undone now, where the directory's
                // lock is free, so that what stands in the way is said before the work; where
                // another process holds the lock, the commit does it, and checks the files then.
                if recover && recover::has_traces(final_dir) {
                    if let Some(lock) = dir_lock::try_lock_dir(final_dir) {
                        recover::recover(final_dir, lock.is_some(), None)?;
                    }
                }
                // (an undone commit into an empty directory leaves it empty)
                let emptied = std::fs::read_dir(final_dir).is_ok_and(|mut d| d.next().is_none());
                let old = match recover::has_traces(final_dir) || emptied {
                    true => Manifest::default(),
                    false => Manifest::read(final_dir)?.ok_or_else(|| not_an_output(final_dir))?,
                };
                // a listed file of another size is not the one qbat-gpu wrote: said now rather
                // than at the commit (which also checks the hashes)
                for f in &old.files {
                    let path = final_dir.join(&f.name);
                    match std::fs::metadata(&path) {
                        Ok(m) if m.is_file() && m.len() != f.bytes => {
                            return Err(QbatError::invalid(
                                path.display().to_string(),
                                format!("holds {} bytes, not the {} qbat-gpu wrote: it was edited; move it away, or choose another --out", m.len(), f.bytes),
                            ))
                        }
                        _ => {}
                    }
                }
            }
        }
        let parent = parent_of(final_dir);
        if !parent.is_dir() {
            return Err(QbatError::invalid("--out", format!("the parent directory {} does not exist", parent.display())));
        }
        out_path::fits_path_max(final_dir)?;
        let probe = staging_path(final_dir);
        std::fs::create_dir(&probe).map_err(|e| QbatError::invalid("--out", format!("cannot write in {}: {e}", parent.display())))?;
        let _ = std::fs::remove_dir(&probe);
        Ok(())
    }

    /// An output directory assembled in an existing `staging` directory, to replace the files
    /// of a non-empty `final_dir` at the commit only under `force`.
    pub fn at(final_dir: &Path, staging: &Path, force: bool) -> OutputDir {
        OutputDir { final_dir: final_dir.into(), staging: staging.into(), written: Default::default(), force, own_staging: false, cancel: WriteCancel::now() }
    }

    /// An output directory assembled in a fresh staging directory (see `at`).
    pub fn begin(final_dir: &Path, force: bool) -> Result<OutputDir> {
        OutputDir::begin_marked(final_dir, force, WriteCancel::now())
    }

    /// `begin` for work that began at `cancel` (its source checked, its shards read): a
    /// `cancel_writes` since then stops it too.
    pub fn begin_marked(final_dir: &Path, force: bool, cancel: WriteCancel) -> Result<OutputDir> {
        cancel.check()?;
        let staging = uncommitted::make_dir(|| staging_path(final_dir))?;
        Ok(OutputDir { own_staging: true, cancel, ..OutputDir::at(final_dir, &staging, force) })
    }

    /// Write one file atomically (see `write_atomic`); `Err(Cancelled)` where the output is
    /// cancelled meanwhile (`cancel_writes`).
    pub fn write(&self, name: &str, f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
        self.cancel.check()?;
        let cancel = self.cancel;
        let written = manifest::write_atomic_hashed(&self.staging.join(name), |w| f(&mut cancel::CancellableWriter { inner: w, cancel }));
        let entry = written.map_err(|e| if cancel.is_cancelled() { QbatError::Cancelled } else { e })?;
        self.record(name, entry);
        Ok(())
    }

    /// When the output began, for the work that goes into it (a merge's analysis).
    pub fn cancel(&self) -> WriteCancel {
        self.cancel
    }

    /// List `entry` in the manifest under `name`, replacing an earlier entry of that name.
    fn record(&self, name: &str, mut entry: manifest::FileEntry) {
        // Keyed by the name as given: the manifest lists top-level files only.
        entry.name = name.to_string();
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written.retain(|e| e.name != entry.name);
        written.push(entry);
    }

    /// Put the finished file `from` into the output as `name` without copying it: a hard link
    /// (a copy, synced and checked against `entry`, where the file system has none), recorded
    /// with its known `entry`.
    pub fn place(&self, name: &str, from: &Path, entry: manifest::FileEntry) -> Result<()> {
        self.cancel.check()?;
        let to = self.staging.join(name);
        if to.exists() {
            std::fs::remove_file(&to).map_err(|e| QbatError::io(&to, e))?;
        }
        if std::fs::hard_link(from, &to).is_err() {
            copy_checked(from, &to, &entry)?;
        }
        self.record(name, entry);
        Ok(())
    }

    /// The directory being assembled.
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// Write the manifest of what was assembled and move it into place: a new directory is
    /// renamed; into an existing qbat-gpu output (`--force`), the files of its manifest are
    /// replaced and no other file is touched. Checked before anything moves: a name clash with
    /// a file qbat-gpu did not write, and an old file that is no longer the one it wrote (its
    /// size and hash; a link or special file). Then every new file goes into the directory
    /// under a hidden name (a rename, or a copy across file systems), the old files go, and
    /// the new ones are renamed into place, the manifest last: a failure before the old files
    /// go leaves the old output whole. A commit cut short (killed) is finished or undone by
    /// the next that takes the directory's lock (`recover`).
    ///
    /// `check` looked at `final_dir` before the work; another run, or another thread's save,
    /// may have written it since. So a `final_dir` found non-empty here is replaced only under
    /// `force` and only when it is a qbat-gpu output, as `check` would have said; the commits
    /// into an existing directory take a lock on it, one at a time.
    pub fn commit(self) -> Result<PathBuf> {
        let committed = self.commit_staging();
        let mut held = uncommitted::hold();
        if committed.is_err() && self.own_staging {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
        held.forget(&self.staging);
        committed.map(|()| self.final_dir)
    }

    /// `commit`, leaving the staging directory as it is on a failure.
    fn commit_staging(&self) -> Result<()> {
        self.cancel.check()?;
        let written = std::mem::take(&mut *self.written.lock().unwrap_or_else(|e| e.into_inner()));
        let manifest = Manifest::of_dir_with(&self.staging, &written)?;
        manifest.write(&self.staging)?;
        let shown = self.final_dir.display();
        let no_longer_empty = || {
            QbatError::invalid(
                "--out",
                format!("{shown} is no longer empty: another run or process wrote it while this one ran; choose another directory, or pass --force to replace the qbat-gpu files in it"),
            )
        };
        if std::fs::symlink_metadata(&self.final_dir).is_err() {
            // (a signal meanwhile waits for the rename: `uncommitted`)
            let mut held = uncommitted::hold();
            // (a directory made meanwhile with files in it refuses the rename)
            // its entries durable before it is renamed in, and the rename after
            crate::plain_file::sync_dir(&self.staging)?;
            let renamed = std::fs::rename(&self.staging, &self.final_dir).map_err(|e| match std::fs::symlink_metadata(&self.final_dir) {
                Ok(_) => no_longer_empty(),
                Err(_) => QbatError::io(&self.final_dir, e),
            });
            if renamed.is_ok() {
                held.forget(&self.staging);
            }
            renamed?;
            return crate::plain_file::sync_dir(parent_of(&self.final_dir));
        }
        let commits = lock_dir(&self.final_dir, self.cancel)?;
        recover::recover(&self.final_dir, commits.is_some(), Some(&self.staging))?;
        let in_use = holds_files(&self.final_dir, &self.staging);
        let old = Manifest::read(&self.final_dir)?;
        if in_use && !self.force {
            return Err(no_longer_empty());
        }
        if in_use && old.is_none() {
            return Err(not_an_output(&self.final_dir));
        }
        let old = old.unwrap_or_default();
        for f in &manifest.files {
            let to = self.final_dir.join(&f.name);
            // (a dangling link counts: symlink_metadata, not exists)
            if std::fs::symlink_metadata(&to).is_ok() && !old.contains(&f.name) {
                return Err(QbatError::invalid(
                    to.display().to_string(),
                    "exists and was not written by qbat-gpu (it is not in the manifest); move it away, or choose another --out",
                ));
            }
        }
        for f in &old.files {
            manifest::check_still_written(&self.final_dir.join(&f.name), f, "move it away, or choose another --out")?;
        }
        // From here the files move: a signal meanwhile waits for them (`uncommitted`), not
        // for the directory's lock above, which another process may hold for long.
        // Its steps (`recover` finishes or undoes a commit cut short by their names): every
        // new file in under a hidden name, the manifest's last; the old files out; each new
        // file renamed into place, the manifest last.
        let mut held = uncommitted::hold();
        let mut steps = crate::faults::CommitSteps::commit();
        let names: Vec<&str> = manifest.files.iter().map(|f| f.name.as_str()).chain([MANIFEST]).collect();
        let hidden = |name: &str| recover::incoming(&self.final_dir, name, std::process::id());
        let mut placed: Vec<(&str, bool)> = vec![];
        for &name in &names {
            match place_file(&self.staging.join(name), &hidden(name)) {
                Ok(renamed) => {
                    placed.push((name, renamed));
                    steps.done();
                }
                Err(e) => {
                    // undo: the renamed ones back into the staging directory, the copies removed
                    for &(n, renamed) in &placed {
                        let _ = if renamed { std::fs::rename(hidden(n), self.staging.join(n)) } else { std::fs::remove_file(hidden(n)) };
                    }
                    return Err(e);
                }
            }
        }
        for f in &old.files {
            let path = self.final_dir.join(&f.name);
            if std::fs::symlink_metadata(&path).is_ok() {
                std::fs::remove_file(&path).map_err(|e| QbatError::io(&path, e))?;
                steps.done();
            }
        }
        for &name in &names {
            let to = self.final_dir.join(name);
            std::fs::rename(hidden(name), &to).map_err(|e| QbatError::io(&to, e))?;
            steps.done();
        }
        // (a file copied across file systems leaves its original)
        placed.iter().filter(|(_, renamed)| !renamed).for_each(|(n, _)| _ = std::fs::remove_file(self.staging.join(n)));
        self.remove_staging();
        held.forget(&self.staging);
        crate::plain_file::sync_dir(&self.final_dir)
    }

    pub fn abort(self) {
        let mut held = uncommitted::hold();
        self.remove_staging();
        held.forget(&self.staging);
    }

    /// The staging directory goes: whole where its own, else (a run's `final/`) only if empty.
    fn remove_staging(&self) {
        let _ = if self.own_staging { std::fs::remove_dir_all(&self.staging) } else { std::fs::remove_dir(&self.staging) };
    }
}

/// The directory `path` is in ("." for a bare name).
pub fn parent_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// The refusal of a non-empty `final_dir` that is not a qbat-gpu output (under `--force`, which
/// replaces only the files a run's manifest lists).
fn not_an_output(final_dir: &Path) -> QbatError {
    QbatError::invalid(
        "--out",
        format!(
            "{} is not empty and is not a qbat-gpu output (it has no {MANIFEST}): qbat-gpu replaces only files it wrote; choose another directory",
            final_dir.display()
        ),
    )
}

/// Whether the existing directory `dir` holds anything besides `staging` (the staging
/// directory of `--out .` is inside it); true where it cannot be read.
pub fn holds_files(dir: &Path, staging: &Path) -> bool {
    let own = staging.file_name();
    std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok()).any(|e| Some(e.file_name().as_os_str()) != own)).unwrap_or(true)
}

/// Write a file atomically and durably: a temporary name in the same directory, fsync, then
/// rename; readable by others (0644, as a plain file would be under the usual umask). A failure
/// (full disk, unwritable directory) is an error naming the file, and leaves nothing under
/// its final name.
pub fn write_atomic(path: &Path, f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let dir = parent_of(path);
    let mut tmp = tempfile::Builder::new().prefix(&name_beside(path, ".", "", ".")).tempfile_in(dir).map_err(|e| QbatError::io(path, e))?;
    if let Some(e) = crate::faults::full_disk(path) {
        return Err(QbatError::io(path, e));
    }
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        f(&mut w).map_err(|e| QbatError::io(path, e))?;
        w.flush().map_err(|e| QbatError::io(path, e))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644));
    }
    tmp.as_file().sync_all().map_err(|e| QbatError::io(path, e))?;
    tmp.persist(path).map_err(|e| QbatError::io(path, e.error))?;
    Ok(())
}

/// Write f64s as little-endian bytes, a few thousand at a time (not a write call per value).
pub fn write_f64_le(w: &mut dyn Write, values: impl IntoIterator<Item = f64>) -> std::io::Result<()> {
    let mut buf = [0u8; 8 << 10];
    let mut n = 0;
    for v in values {
        buf[n..n + 8].copy_from_slice(&v.to_le_bytes());
        n += 8;
        if n == buf.len() {
            w.write_all(&buf)?;
            n = 0;
        }
    }
    w.write_all(&buf[..n])
}

/// Bytes the series would take in the chosen format (csv: about 24 bytes a number).
pub fn series_size_estimate(plan: &Plan, format: Format) -> u64 {
    let cells = plan.members.len() as u64 * plan.schedule.times.len() as u64;
    let per_cell = match format {
        Format::Csv => 24 * (plan.measures.len() as u64 + 2),
        Format::Npy => 8 * plan.measures.len() as u64,
    };
    cells * per_cell
}

/// Bytes states.npy would take (`--save-states`; 0 without): complex128 d x d per member and sample.
pub fn states_size_estimate(plan: &Plan) -> u64 {
    let d = |save| crate::measures::saved::saved_dim(plan.space, save) as u64;
    plan.save_states.map_or(0, |save| plan.members.len() as u64 * plan.schedule.times.len() as u64 * d(save) * d(save) * 16)
}

/// Round-trip float text (Rust's shortest representation round-trips exactly).
pub fn num(x: f64) -> String {
    format!("{x:?}")
}

/// Put `from` at `to` (a fresh hidden name): a rename (returns true), or where `to` is on
/// another file system (an existing `--out` that is a mount point) a copy into a file created
/// anew (never through a link planted there) under `to` with `.part` after it, synced, and
/// renamed to `to`, so that `to` is never a copy cut short; the source then stays.
fn place_file(from: &Path, to: &Path) -> Result<bool> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
            let mut part = to.as_os_str().to_owned();
            part.push(".part");
            let part = PathBuf::from(part);
            let copied = (|| {
                let mut src = std::fs::File::open(from)?;
                let mut dst = std::fs::OpenOptions::new().write(true).create_new(true).open(&part)?;
                std::io::copy(&mut src, &mut dst)?;
                dst.sync_all()?;
                std::fs::rename(&part, to)
            })();
            if let Err(e) = copied {
                let _ = std::fs::remove_file(&part);
                return Err(QbatError::io(to, e));
            }
            Ok(false)
        }
        Err(e) => Err(QbatError::io(to, e)),
    }
}

/// `place`'s copy of `from` to `to` where there is no hard link: synced, and checked against
/// the entry the manifest will carry (a short or altered copy is an error, never a wrong manifest).
fn copy_checked(from: &Path, to: &Path, entry: &manifest::FileEntry) -> Result<()> {
    std::fs::copy(from, to).map_err(|e| QbatError::io(to, e))?;
    std::fs::File::open(to).and_then(|f| f.sync_all()).map_err(|e| QbatError::io(to, e))?;
    manifest::check_file(to, entry).map_err(|why| QbatError::io(to, std::io::Error::other(format!("the copy of {}: {why}", from.display()))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit waiting for another's lock on its directory stops when it is cancelled,
    /// with Cancelled; one that finds the lock free takes it whatever was cancelled before.
    #[test]
    fn a_wait_for_another_commits_lock_stops_when_cancelled() {
        static COUNTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = tempfile::tempdir().unwrap();
        let held = std::fs::File::open(dir.path()).unwrap();
        held.lock().unwrap();
        let mark = WriteCancel::on(&COUNTS);
        let waiting = std::thread::spawn({
            let d = dir.path().to_path_buf();
            move || lock_dir(&d, mark).map(|l| l.is_some())
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!waiting.is_finished(), "it did not wait for the lock");
        COUNTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        assert!(matches!(waiting.join().unwrap(), Err(QbatError::Cancelled)));
        held.unlock().unwrap();
        assert!(lock_dir(dir.path(), mark).unwrap().is_some(), "a free lock is taken");
    }

    /// The copy in place of a hard link is checked against the entry it will be recorded with.
    #[test]
    fn a_copy_that_differs_from_its_entry_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("from.npy");
        std::fs::write(&from, b"the values as written").unwrap();
        let entry = manifest::hash_file(&from).unwrap();
        copy_checked(&from, &dir.path().join("a.npy"), &entry).unwrap();
        assert_eq!(std::fs::read(dir.path().join("a.npy")).unwrap(), b"the values as written");
        // the source changed after its entry was taken (as a damaged or edited file would)
        std::fs::write(&from, b"the values as altered").unwrap();
        let e = copy_checked(&from, &dir.path().join("b.npy"), &entry).unwrap_err();
        let e = format!("{e}: {}", std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default());
        assert!(e.contains("b.npy") && e.contains("differs"), "{e}");
    }

    /// A commit that fails while placing the new files leaves the old output whole, and the
    /// new files in the staging directory; an old file that is a link is refused.
    #[cfg(unix)]
    #[test]
    fn a_failed_commit_leaves_the_old_output_whole() {
        let root = tempfile::tempdir().unwrap();
        let (out_dir, staging) = (root.path().join("out"), root.path().join("staging"));
        let commit = |contents: &[u8]| {
            std::fs::create_dir_all(&staging).unwrap();
            let out = OutputDir::at(&out_dir, &staging, true);
            out.write("run.json", |w| w.write_all(contents)).unwrap();
            out.write("stats.csv", |w| w.write_all(contents)).unwrap();
            out.commit()
        };
        commit(b"old").unwrap();
        // the second file's hidden name is taken (by a directory, which no commit leaves):
        // refused before anything moves
        let blocker = out_dir.join(format!(".stats.csv.incoming-{}", std::process::id()));
        std::fs::create_dir(&blocker).unwrap();
        assert!(commit(b"new").is_err());
        for name in ["run.json", "stats.csv"] {
            assert_eq!(std::fs::read(out_dir.join(name)).unwrap(), b"old", "{name}");
            assert_eq!(std::fs::read(staging.join(name)).unwrap(), b"new", "{name}");
        }
        assert!(Manifest::read(&out_dir).unwrap().unwrap().verify(&out_dir).is_ok());
        std::fs::remove_dir(&blocker).unwrap();
        commit(b"new").unwrap();
        assert_eq!(std::fs::read(out_dir.join("stats.csv")).unwrap(), b"new");
        // a listed name that is now a link (to a file of the same bytes) is not removed
        let elsewhere = root.path().join("elsewhere.csv");
        std::fs::write(&elsewhere, b"new").unwrap();
        std::fs::remove_file(out_dir.join("stats.csv")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, out_dir.join("stats.csv")).unwrap();
        let e = commit(b"newer").unwrap_err().to_string();
        assert!(e.contains("stats.csv") && e.contains("not the regular file"), "{e}");
        assert_eq!(std::fs::read(&elsewhere).unwrap(), b"new");
    }

    /// Saves into one new directory at once (threads of one process here; runs of several
    /// processes alike): one is committed, every other is refused unless it has `force`, and
    /// the directory holds whole one output, never a mix.
    #[test]
    fn a_directory_written_since_the_check_is_replaced_only_under_force() {
        let root = tempfile::tempdir().unwrap();
        let out_dir = root.path().join("out");
        let save = |tag: String, force: bool| {
            OutputDir::check(&out_dir, force)?;
            let out = OutputDir::begin(&out_dir, force)?;
            for name in ["run.json", "stats.csv", "summary.csv"] {
                out.write(name, |w| w.write_all(tag.as_bytes()))?;
            }
            out.commit()
        };
        let results: Vec<(usize, Result<PathBuf>)> = std::thread::scope(|s| {
            let saves: Vec<_> = (0..8).map(|k| (k, s.spawn(move || save(format!("save {k}"), false)))).collect();
            saves.into_iter().map(|(k, h)| (k, h.join().unwrap())).collect()
        });
        let committed: Vec<usize> = results.iter().filter(|(_, r)| r.is_ok()).map(|(k, _)| *k).collect();
        assert_eq!(committed.len(), 1, "{results:?}");
        for (_, r) in &results {
            if let Err(e) = r {
                assert!(e.to_string().contains("--out"), "{e}");
            }
        }
        let expect = format!("save {}", committed[0]);
        for name in ["run.json", "stats.csv", "summary.csv"] {
            assert_eq!(std::fs::read_to_string(out_dir.join(name)).unwrap(), expect, "{name}");
        }
        Manifest::read(&out_dir).unwrap().unwrap().verify(&out_dir).unwrap();
        // the same, begun before the directory was written
        let late = OutputDir::begin(&out_dir.with_file_name("late"), false).unwrap();
        late.write("run.json", |w| w.write_all(b"late")).unwrap();
        std::fs::create_dir(root.path().join("late")).unwrap();
        std::fs::write(root.path().join("late").join("notes.txt"), b"a user's").unwrap();
        let e = late.commit().unwrap_err().to_string();
        assert!(e.contains("another run") && e.contains("--force"), "{e}");
        assert_eq!(std::fs::read(root.path().join("late").join("notes.txt")).unwrap(), b"a user's");
        // under force too, a directory that became another's (no manifest) is refused
        let other = OutputDir::begin(&out_dir.with_file_name("late"), true).unwrap();
        other.write("run.json", |w| w.write_all(b"other")).unwrap();
        let e = other.commit().unwrap_err().to_string();
        assert!(e.contains("not a qbat-gpu output"), "{e}");
        assert_eq!(std::fs::read_dir(root.path().join("late")).unwrap().count(), 1);
        // under force, the later output replaces the qbat-gpu files
        save("forced".into(), true).unwrap();
        assert_eq!(std::fs::read_to_string(out_dir.join("stats.csv")).unwrap(), "forced");
        // a refused save leaves nothing behind: its staging directory goes with it
        let left: Vec<String> = std::fs::read_dir(root.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }

    /// A lock someone holds on the directory above the output (`flock DIR cmd` in a batch
    /// script) does not hold up the commit.
    #[cfg(unix)]
    #[test]
    fn a_lock_on_the_parent_does_not_hold_up_a_commit() {
        let root = tempfile::tempdir().unwrap();
        let held = std::fs::File::open(root.path()).unwrap();
        held.lock().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let out_dir = root.path().join("out");
        std::thread::spawn(move || {
            let out = OutputDir::begin(&out_dir, false).unwrap();
            out.write("run.json", |w| w.write_all(b"{}")).unwrap();
            tx.send(out.commit().map_err(|e| e.to_string())).unwrap();
        });
        let committed = rx.recv_timeout(std::time::Duration::from_secs(20)).expect("the commit waited on the parent's lock");
        assert!(committed.unwrap().ends_with("out"));
        drop(held);
        // an empty directory named with a trailing `.` (`--out .` itself: merge_inputs.rs)
        let here = root.path().join("here");
        std::fs::create_dir(&here).unwrap();
        let dot = here.join(".");
        OutputDir::check(&dot, false).unwrap();
        let out = OutputDir::begin(&dot, false).unwrap();
        out.write("run.json", |w| w.write_all(b"{}")).unwrap();
        out.commit().unwrap();
        let names: Vec<String> = std::fs::read_dir(&here).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[cfg(unix)]
    /// A commit into an existing directory on another file system (an --out that is a mount
    /// point) copies the files in, where a rename cannot reach. Run where /dev/shm is another
    /// file system than the temporary directory.
    #[test]
    fn a_commit_reaches_an_output_on_another_file_system() {
        use std::os::unix::fs::MetadataExt;
        let staging_root = tempfile::tempdir().unwrap();
        let Ok(out_root) = tempfile::tempdir_in("/dev/shm") else { return };
        if std::fs::metadata(staging_root.path()).unwrap().dev() == std::fs::metadata(out_root.path()).unwrap().dev() {
            return;
        }
        let staging = staging_root.path().join("staging");
        std::fs::create_dir(&staging).unwrap();
        let out = OutputDir::at(out_root.path(), &staging, false);
        out.write("run.json", |w| w.write_all(b"{}")).unwrap();
        let dir = out.commit().unwrap();
        assert_eq!(std::fs::read(dir.join("run.json")).unwrap(), b"{}");
        assert!(Manifest::read(&dir).unwrap().unwrap().contains("run.json"));
        let names: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(!staging.join("run.json").exists());
    }
}
