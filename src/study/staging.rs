//! The staging directory `.DIR.partial` of a streamed run: made whole or not at all, marked
//! as qbat-gpu's, locked, opened for a resume, and removed, touching only what qbat-gpu
//! writes in it.

use super::checkpoint::{load_checkpoint, Progress};
use super::StudyOptions;
use crate::error::{QbatError, Result};
use crate::output::accumulate::StatsAccumulator;
use crate::output::OutputDir;
use crate::plain_file::read_regular_bounded;
use std::path::{Path, PathBuf};

/// The staging directory of `out`: `.NAME.partial` beside the directory `out` resolves to
/// (fixed, so a resume finds it; from the canonical path, so that two runs given one
/// directory through different paths or a symbolic link share one staging directory and lock).
pub fn staging_dir(out: &Path) -> PathBuf {
    let canonical = crate::output::out_path::resolved(out);
    let out = canonical.as_deref().unwrap_or(out);
    crate::output::parent_of(out).join(crate::output::name_beside(out, ".", "out", ".partial"))
}

pub(super) struct Staging {
    pub(super) dir: PathBuf,
    pub(super) _lock: std::fs::File,
}

impl Staging {
    pub(super) fn blocks(&self) -> PathBuf {
        self.dir.join("blocks")
    }
}

pub(super) fn take_lock(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join("lock");
    // something other than a file in the lock's place is damage, not a failing disk
    if std::fs::symlink_metadata(&path).is_ok_and(|m| !m.is_file()) {
        return Err(QbatError::invalid(path.display().to_string(), "is not the run's lock file; move it away"));
    }
    let mut open = std::fs::OpenOptions::new();
    open.create(true).truncate(false).write(true);
    // (nor through a link put there since)
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut open, libc::O_NOFOLLOW);
    let f = open.open(&path).map_err(|e| QbatError::io(&path, e))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(QbatError::invalid("--out", format!("another qbat-gpu run is writing {} (its lock is held)", dir.display())))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(QbatError::io(&path, e)),
    }
}

/// Open (resume) or create the staging directory of `opts.out`.
pub(super) fn open_staging(
    opts: &StudyOptions,
    fp: &serde_json::Value,
    members: usize,
    n_samples: usize,
    notes: &mut Vec<String>,
) -> Result<(Staging, Option<(Progress, StatsAccumulator)>)> {
    let dir = staging_dir(&opts.out);
    let shown = opts.out.display();
    crate::gpu::check_cache_outside(&opts.out, Some(&dir), "--out")?;
    sweep_gone(&dir);
    if opts.resume {
        if !dir.is_dir() {
            let why = if opts.out.join("run.json").is_file() { "it has finished already" } else { "no interrupted run was found there" };
            return Err(QbatError::invalid("--resume", format!("cannot resume {shown}: {why} (looked for {})", dir.display())));
        }
        if is_empty_dir(&dir) {
            return Err(QbatError::invalid("--resume", format!("cannot resume {shown}: {} is empty, no interrupted run was found there", dir.display())));
        }
        check_ours(&dir, "--resume")?;
        let lock = take_lock(&dir)?;
        if is_committed(&dir) {
            // (kept where the output is gone: it may hold the run's series)
            if !opts.out.join("run.json").is_file() {
                return Err(QbatError::invalid(
                    "--resume",
                    format!("cannot resume {shown}: the run finished, but its output is no longer there; run it again without --resume"),
                ));
            }
            remove_staging(&dir)?;
            return Err(QbatError::invalid(
                "--resume",
                format!(
                    "cannot resume {shown}: it has finished already (the staging directory {} that a stop after its commit left was removed)",
                    dir.display()
                ),
            ));
        }
        // (an --out the commit cannot write is said now, the checkpoint left as it is)
        crate::output::out_path::check_for_resume(&opts.out)?;
        check_blocks(&dir)?;
        // (the finish makes `final/` anew: one that it would refuse, refused before the work)
        if std::fs::symlink_metadata(dir.join("final")).is_ok() {
            fresh_final(&dir)?;
        }
        // (a link, even one that leads nowhere, is a checkpoint to refuse, not a missing one)
        let loaded = if std::fs::symlink_metadata(dir.join("checkpoint.json")).is_ok() {
            Some(load_checkpoint(&dir, members, n_samples, fp, &shown.to_string(), super::block_budget() as usize)?)
        } else {
            None // killed before the first block finished: start from scratch
        };
        notes.push(match loaded {
            Some(_) => format!("resumed from the checkpoint in {}", dir.display()),
            // (nothing to take, nor to check the config against: the run starts afresh in it)
            None => format!("{} holds no checkpoint (the run was stopped before its first): the run starts from its first block", dir.display()),
        });
        return Ok((Staging { dir, _lock: lock }, loaded));
    }
    OutputDir::check(&opts.out, opts.force)?;
    // (a link that leads nowhere is something in the way too)
    if std::fs::symlink_metadata(&dir).is_ok() && !is_empty_dir(&dir) {
        // An interrupted run, or one still going.
        check_ours(&dir, "--out")?;
        let lock = take_lock(&dir)?;
        // (a finished run's leftover has nothing to continue: removed without a word)
        let interrupted = !is_committed(&dir);
        if interrupted && !opts.force {
            return Err(QbatError::invalid(
                "--out",
                format!("{shown} has an interrupted run ({}); continue it with --resume {shown}, or pass --force to start over", dir.display()),
            ));
        }
        // (its lock held until it is gone, so that no resume starts in it meanwhile; one holding
        // a file of someone else's is refused, whole)
        remove_staging(&dir)?;
        drop(lock);
        if interrupted {
            // (a newline in the directory's name shown escaped, as the other notes show it)
            crate::console::note(&format!("discarded the interrupted run in {} (use --resume to continue one)", dir.display()));
        }
    }
    let (dir, lock) = make_staging(&dir)?;
    Ok((Staging { dir, _lock: lock }, None))
}

/// Make the staging directory `dir` whole or not at all: built under a name of this
/// process's beside it (its mark first, then `blocks/` and the lock, taken), then renamed into
/// place. So a directory of that name is never seen without its mark, and a failure or a kill
/// while it is made leaves nothing in the way of the next run. (An empty directory there, the
/// only kind the rename replaces, holds nothing to lose.)
pub(super) fn make_staging(dir: &Path) -> Result<(PathBuf, std::fs::File)> {
    let fresh = dir.with_file_name(crate::output::name_beside(dir, "", "", &format!(".new-{}", std::process::id())));
    // one of this process id's own, left by a run killed while it made it (process ids repeat,
    // in a container every time)
    if std::fs::symlink_metadata(&fresh).is_ok() {
        check_ours(&fresh, "--out")?;
        remove_staging(&fresh)?;
    }
    crate::plain_file::create_own_dir(&fresh).map_err(|e| QbatError::io(&fresh, e))?;
    let made = (|| -> Result<std::fs::File> {
        let mark = fresh.join(STAGING_MARK);
        std::fs::write(&mark, "a qbat-gpu run's staging directory\n").map_err(|e| QbatError::io(&mark, e))?;
        crate::plain_file::create_own_dir(&fresh.join("blocks")).map_err(|e| QbatError::io(&fresh.join("blocks"), e))?;
        let lock = take_lock(&fresh)?;
        std::fs::rename(&fresh, dir).map_err(|e| match std::fs::symlink_metadata(dir) {
            // another run's, made since this one looked
            Ok(_) => QbatError::invalid("--out", format!("another qbat-gpu run is writing {} (it appeared while this one started)", dir.display())),
            Err(_) => QbatError::io(dir, e),
        })?;
        Ok(lock)
    })();
    match made {
        Ok(lock) => Ok((dir.to_path_buf(), lock)),
        Err(e) => {
            let _ = remove_staging(&fresh);
            Err(e)
        }
    }
}

/// A signal's end for a run's staging directory (`output::uncommitted::watch_run_staging`):
/// removed where it holds no checkpoint, so that the next run into its `--out` is not refused
/// for an interrupted run with nothing to resume; kept, for `--resume`, where it holds one.
pub(super) fn remove_unless_checkpointed(dir: &Path) {
    if std::fs::symlink_metadata(dir.join("checkpoint.json")).is_err() {
        let _ = remove_staging(dir);
    }
}

/// Remove a staging directory that `check_ours` accepted (its lock held), its mark last. It is
/// first renamed out of the way (`.NAME.partial.gone-PID`): a run that looks for it then finds
/// none, and one that found it before is refused by the lock this process holds. A removal cut
/// short (a kill) leaves that leftover, which the next run into the same output removes
/// (`sweep_gone`). Only what qbat-gpu writes there goes (`Folder`): a directory holding
/// anything else is refused, named, and left whole under its name.
pub(super) fn remove_staging(dir: &Path) -> Result<()> {
    if let Some(path) = foreign_entry(dir) {
        return Err(QbatError::invalid(
            path.display().to_string(),
            format!("is in {}, where qbat-gpu keeps a run's files, but qbat-gpu did not write it, and removes only its own: move it away", dir.display()),
        ));
    }
    let gone = dir.with_file_name(crate::output::name_beside(dir, "", "", &format!(".gone-{}", std::process::id())));
    // (where it cannot be renamed, an earlier removal's leftover in the way, it goes in place)
    let at = if std::fs::rename(dir, &gone).is_ok() { gone } else { dir.to_path_buf() };
    let emptied = empty_staging(&at);
    // (an empty one goes by rmdir, which needs neither a path inside it that fits nor read
    // permission on it: its mark could not be written, a mode-000 directory)
    match std::fs::remove_dir(&at) {
        // (gone already: another run's `sweep_gone` finished it)
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => {
            // what stays goes back under its name, where the next run finds it and names what is in it
            if at != dir {
                let _ = std::fs::rename(&at, dir);
            }
            Err(QbatError::io(dir, emptied.err().unwrap_or(e)))
        }
        Ok(()) => Ok(()),
    }
}

/// Remove the leftovers of removals of the staging directory `dir` cut short by a kill:
/// `.NAME.partial.gone-PID` beside it whose lock no process holds (a removal in progress holds
/// it), holding only what qbat-gpu writes. Anything else keeps its leftover, as it is.
fn sweep_gone(dir: &Path) {
    let (Some(parent), Some(_)) = (dir.parent(), dir.file_name()) else { return };
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    let prefix = crate::output::name_beside(dir, "", "", ".gone-");
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name.as_encoded_bytes().strip_prefix(prefix.as_encoded_bytes());
        if !pid.is_some_and(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit)) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let gone = entry.path();
        // (the lock, where there still is one, taken before anything goes: not one in removal)
        let lock = gone.join("lock");
        let held = match std::fs::symlink_metadata(&lock) {
            Ok(m) if m.is_file() => match take_lock(&gone) {
                Ok(file) => Some(file),
                Err(_) => continue,
            },
            Ok(_) => continue,
            Err(_) => None,
        };
        if foreign_entry(&gone).is_none() {
            let _ = empty_staging(&gone).and_then(|()| std::fs::remove_dir(&gone));
        }
        drop(held);
    }
}

/// Remove what qbat-gpu wrote in the staging directory `dir`, its mark last; anything else
/// (put there since `foreign_entry` looked) stays, and so does the directory.
fn empty_staging(dir: &Path) -> std::io::Result<()> {
    remove_own(Folder::Top, dir)?;
    match std::fs::remove_file(dir.join(STAGING_MARK)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Remove the files of `folder` at `at` that qbat-gpu writes there and, each emptied first, the
/// folders it makes there (the staging directory's mark excepted: it goes last).
/// At the top the lock goes after the rest (while it is there, no `sweep_gone` of another run
/// takes the directory for a removal cut short); a file already gone is not an error (such a
/// sweep, where the lock went first in a build before this one).
fn remove_own(folder: Folder, at: &Path) -> std::io::Result<()> {
    let gone = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    };
    let top = matches!(folder, Folder::Top);
    for entry in std::fs::read_dir(at)? {
        let entry = entry?;
        let (name, kind) = (entry.file_name(), entry.file_type()?);
        let Some(name) = name.to_str() else { continue };
        if kind.is_file() && folder.holds(name) && !(top && (name == STAGING_MARK || name == "lock")) {
            gone(std::fs::remove_file(entry.path()))?;
        } else if let Some(sub) = kind.is_dir().then(|| folder.subfolder(name)).flatten() {
            remove_own(sub, &entry.path())?;
            gone(std::fs::remove_dir(entry.path()))?;
        }
    }
    if top {
        gone(std::fs::remove_file(at.join("lock")))?;
    }
    Ok(())
}

/// Make `final/` in the staging directory `dir` anew for the output's files: one left by a
/// finish cut short goes, unless it holds anything qbat-gpu does not write there (refused,
/// named, left whole).
pub(super) fn fresh_final(dir: &Path) -> Result<PathBuf> {
    let at = dir.join("final");
    if std::fs::symlink_metadata(&at).is_ok() {
        let foreign = match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => first_foreign(Folder::Final, &at),
            _ => Some(at.clone()),
        };
        if let Some(path) = foreign {
            return Err(QbatError::invalid(
                path.display().to_string(),
                format!("is in {}, where qbat-gpu assembles the output, but qbat-gpu did not write it: move it away", at.display()),
            ));
        }
        remove_own(Folder::Final, &at).and_then(|()| std::fs::remove_dir(&at)).map_err(|e| QbatError::io(&at, e))?;
    }
    crate::plain_file::create_own_dir(&at).map_err(|e| QbatError::io(&at, e))?;
    Ok(at)
}

/// The folders of a staging directory, each with the names qbat-gpu writes in it.
#[derive(Clone, Copy)]
enum Folder {
    /// The directory itself: its mark, lock, checkpoint and statistics states.
    Top,
    /// `blocks/`: the series and each block's summary rows and states.
    Blocks,
    /// `final/`: the output's files, assembled before the commit.
    Final,
    /// `final/.qbat-added-PID-N/`: the default study's analysis and its plots, added to the
    /// assembled output (`output/added.rs`) beside the files they replace (`NAME.replaced`);
    /// `.qbat-added-PID-N.gone` where a signal's removal of it was cut short.
    Added,
}

impl Folder {
    /// The folder qbat-gpu makes under this one by this name, if any.
    fn subfolder(self, name: &str) -> Option<Folder> {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let added = || {
            name.strip_suffix(".gone")
                .unwrap_or(name)
                .strip_prefix(".qbat-added-")
                .and_then(|n| n.split_once('-'))
                .is_some_and(|(pid, k)| digits(pid) && digits(k))
        };
        match (self, name) {
            (Folder::Top, "blocks") => Some(Folder::Blocks),
            (Folder::Top, "final") => Some(Folder::Final),
            (Folder::Final, _) if added() => Some(Folder::Added),
            _ => None,
        }
    }

    /// Whether qbat-gpu writes a regular file of this name here: a name of its own, or one's
    /// atomic write in progress (`.NAME.` and six random characters).
    fn holds(self, name: &str) -> bool {
        let temporary =
            name.strip_prefix('.').and_then(|n| n.rsplit_once('.')).filter(|(_, tail)| tail.len() == 6 && tail.bytes().all(|b| b.is_ascii_alphanumeric()));
        match temporary {
            Some((own, _)) => self.names(own),
            None => self.names(name),
        }
    }

    fn names(self, name: &str) -> bool {
        let numbered = |stem: &str| stem.len() >= 6 && stem.bytes().all(|b| b.is_ascii_digit());
        match self {
            Folder::Top => {
                [STAGING_MARK, "lock", "checkpoint.json"].contains(&name)
                    || name
                        .strip_prefix("stats-state-")
                        .and_then(|n| n.strip_suffix(".bin"))
                        .is_some_and(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()))
            }
            Folder::Blocks => {
                ["series.npy", "series.csv"].contains(&name) || name.strip_suffix(".summary").or_else(|| name.strip_suffix(".states")).is_some_and(numbered)
            }
            Folder::Final => {
                const OUTPUT: [&str; 13] = [
                    "run.json",
                    "summary.csv",
                    "summary.json",
                    "summary.npy",
                    "stats.csv",
                    "stats-state.bin",
                    "series.csv",
                    "series.npy",
                    "series.json",
                    "states.npy",
                    "states.json",
                    "analysis.csv",
                    crate::output::manifest::MANIFEST,
                ];
                OUTPUT.contains(&name) || (name.starts_with("plot_") && (name.ends_with(".svg") || name.ends_with(".png")))
            }
            Folder::Added => Folder::Final.names(name.strip_suffix(".replaced").unwrap_or(name)),
        }
    }
}

/// The first thing in the staging directory `dir` that qbat-gpu does not write there
/// (`Folder`): another name, a link, a FIFO, a directory other than `blocks/` and `final/`.
/// None where there is none, and where `dir` cannot be read: its removal, by rmdir, then
/// succeeds only if it is empty.
fn foreign_entry(dir: &Path) -> Option<PathBuf> {
    first_foreign(Folder::Top, dir)
}

/// The first entry under the folder `at` of a staging directory that qbat-gpu does not write
/// there: a file of another name, or anything but a file or a folder of its own (whose
/// contents are looked at in turn).
fn first_foreign(folder: Folder, at: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(at).ok()?;
    for entry in entries.flatten() {
        let (kind, name) = (entry.file_type().ok(), entry.file_name());
        let found = match (name.to_str(), kind) {
            (Some(name), Some(kind)) if kind.is_file() && folder.holds(name) => None,
            (Some(name), Some(kind)) if kind.is_dir() => match folder.subfolder(name) {
                Some(sub) => first_foreign(sub, &entry.path()),
                None => Some(entry.path()),
            },
            _ => Some(entry.path()),
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// Whether `dir` is a directory (not a link) with nothing in it.
fn is_empty_dir(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) && std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none())
}

/// The file that marks a staging directory as one qbat-gpu made (written before anything
/// else in it, removed after everything else).
const STAGING_MARK: &str = "qbat-staging";

/// The mark's text once the run's output is committed (the directory is then a finished run's
/// leftover, which a kill before its removal leaves: nothing in it is needed).
const COMMITTED: &str = "a qbat-gpu run's staging directory\ncommitted: the run's output is complete\n";

/// Say in the staging directory `dir` that its run's output is committed: the first thing
/// after the commit, since the mark is removed last. Replaced whole (written aside, renamed):
/// a failure leaves the mark as it was. Not synced, as it is on the run's path: a mark lost to
/// a crash only leaves the leftover to be taken for an interrupted run's, as before.
pub(super) fn mark_committed(dir: &Path) {
    use std::io::Write as _;
    let _ = (|| -> std::io::Result<()> {
        let mut aside = tempfile::Builder::new().prefix(&format!(".{STAGING_MARK}.")).tempfile_in(dir)?;
        aside.write_all(COMMITTED.as_bytes())?;
        aside.persist(dir.join(STAGING_MARK)).map_err(|e| e.error)?;
        Ok(())
    })();
}

/// Whether the staging directory `dir` (accepted by `check_ours`) is a committed run's.
fn is_committed(dir: &Path) -> bool {
    read_regular_bounded(&dir.join(STAGING_MARK), 4096).is_ok_and(|text| text == COMMITTED.as_bytes())
}

/// Refuse a staging directory that qbat-gpu did not make: something else of that name (a
/// file, a link, a directory without `STAGING_MARK`) is the user's, and is never locked,
/// resumed or discarded.
fn check_ours(dir: &Path, flag: &str) -> Result<()> {
    let shown = dir.display();
    let is_dir = std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir());
    let marked = std::fs::symlink_metadata(dir.join(STAGING_MARK)).is_ok_and(|m| m.is_file());
    if is_dir && marked {
        return Ok(());
    }
    let what = if is_dir { format!("a directory without {STAGING_MARK}") } else { "not a directory".to_string() };
    Err(QbatError::invalid(
        flag,
        format!("{shown} is where qbat-gpu keeps an interrupted run, but it is {what}: qbat-gpu did not make it and leaves it alone; move it away"),
    ))
}

/// Refuse to resume a staging directory whose `blocks/` is not a directory of its own (a link,
/// to a user's folder say, or another file) or holds anything but regular files (a link, a
/// FIFO, a device, a directory): the resume would read from them, write through them into
/// files qbat-gpu did not write, or commit a link as the output's series. qbat-gpu writes
/// only regular files there (each replaced by a rename, or created anew), so such a thing was
/// put there by someone else; it is named (exit 2). A `blocks/` that is missing (a removal
/// cut short) is made again: what the checkpoint names in it is then found missing.
fn check_blocks(dir: &Path) -> Result<()> {
    let blocks = dir.join("blocks");
    let restart = "pass --force without --resume to start the run over";
    match std::fs::symlink_metadata(&blocks) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return crate::plain_file::create_own_dir(&blocks).map_err(|e| QbatError::io(&blocks, e)),
        Err(e) => return Err(QbatError::io(&blocks, e)),
        Ok(m) if !m.file_type().is_dir() => {
            return Err(QbatError::invalid(
                blocks.display().to_string(),
                format!("is not the staging directory's own folder of blocks (a link, or another file): qbat-gpu makes it a directory and never reads or writes through a link; {restart}"),
            ))
        }
        Ok(_) => {}
    }
    for entry in std::fs::read_dir(&blocks).map_err(|e| QbatError::io(&blocks, e))? {
        let entry = entry.map_err(|e| QbatError::io(&blocks, e))?;
        // (the entry's own type: a link is a link, wherever it leads)
        if !entry.file_type().map_err(|e| QbatError::io(&entry.path(), e))?.is_file() {
            return Err(QbatError::invalid(
                entry.path().display().to_string(),
                format!("is not a regular file (a link, a FIFO, a device or a directory): qbat-gpu writes only regular files there; {restart}"),
            ));
        }
    }
    Ok(())
}
