//! The staging directory `.DIR.partial` of a streamed run: its lock, the checkpoint (done
//! blocks, verify deviations, timings, and the statistics accumulator where the series does
//! not hold the values to rebuild it from) replaced atomically after a block when it is due
//! (`CheckpointPace`), and the block files it names.

use super::health::{member_health, FockTailFlags, Health, HealthCounts};
use super::series_file::{SeriesFile, SERIES_FILE};
use super::{fingerprint_difference, StudyOptions};
use crate::engine::Precision;
use crate::error::{QbatError, Result};
use crate::measures::Measure;
use crate::output::accumulate::StatsAccumulator;
use crate::output::manifest::{check_file, write_atomic_hashed, FileEntry};
use crate::output::{write_atomic, OutputDir, SMALL_FILE_LIMIT};
use crate::plain_file::{open_regular, read_regular_bounded};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Everything the checkpoint must carry besides the accumulator.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct Progress {
    pub(super) fingerprint: serde_json::Value,
    /// Members per block: fixed when the run starts, kept by a resume.
    #[serde(default)]
    pub(super) members_per_block: usize,
    pub(super) done: Vec<usize>,
    pub(super) generation: u64,
    pub(super) measures: Vec<String>,
    pub(super) precision: Option<Precision>,
    pub(super) backend: String,
    pub(super) device: String,
    pub(super) timings: TimingsAcc,
    /// `--verify` deviations, one group per precision of the blocks that held the members
    /// (each compared with its own tolerance).
    pub(super) verify: Vec<VerifyGroup>,
    pub(super) health: HealthCounts,
    pub(super) fock: FockTailFlags,
    pub(super) notes: Vec<String>,
    pub(super) engine_plan: Option<serde_json::Value>,
    /// The files of every finished block, with the engine that computed it.
    #[serde(default)]
    pub(super) blocks: Vec<BlockRecord>,
    /// The statistics state of this generation (`stats-state-<generation>.bin`); None where
    /// every finished block's values are in the series, from which a resume rebuilds it.
    #[serde(default)]
    pub(super) stats_state: Option<FileEntry>,
    /// `--backend` as the run was started (a resume with another needs --allow-mixed-backends).
    #[serde(default)]
    pub(super) requested_backend: String,
    /// The run was started with `--force` (or into the default directory): its commit, and a
    /// resume's, may replace the qbat-gpu files of a non-empty --out. Without it the run's
    /// check found --out new or empty, and a resume refuses one written since (another run,
    /// merge or save) unless given --force itself.
    #[serde(default)]
    pub(super) force: bool,
    /// `--verify` as the run was started (None in an older checkpoint): its blocks verified
    /// the members chosen for that count, so a resume with another is refused.
    #[serde(default)]
    pub(super) verify_count: Option<usize>,
}

impl Progress {
    /// Every finished block's values are in the series (`--series`): the statistics state
    /// is rebuilt from them, not written.
    fn series_holds_every_block(&self) -> bool {
        self.blocks.iter().all(|b| b.values.is_some())
    }
}

/// The verified members of one precision and each measure's largest deviation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct VerifyGroup {
    pub(super) precision: Precision,
    pub(super) members: Vec<u64>,
    #[serde(deserialize_with = "null_as_infinite")]
    pub(super) max: Vec<f64>,
}

/// Largest deviations as written: an infinite one (a NaN against the reference,
/// `fold_deviations`) is JSON's null, as serde_json writes any non-finite number.
fn null_as_infinite<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<f64>, D::Error> {
    let written: Vec<Option<f64>> = Deserialize::deserialize(d)?;
    Ok(written.into_iter().map(|x| x.unwrap_or(f64::INFINITY)).collect())
}

/// A finished block: its members, its files (size and BLAKE3), and the engine and precision
/// that computed it (a resume or a device loss can change them between blocks).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct BlockRecord {
    pub(super) block: usize,
    pub(super) members: usize,
    /// The block's members' range of `blocks/series.npy` (size and BLAKE3 of the range).
    pub(super) values: Option<FileEntry>,
    /// `--save-states`: the block's states (complex128 LE, re then im).
    #[serde(default)]
    pub(super) states: Option<FileEntry>,
    pub(super) summary: FileEntry,
    pub(super) backend: String,
    pub(super) precision: Precision,
}

/// What checkpoint.json holds: the progress, and the BLAKE3 hash of its exact text.
#[derive(Serialize, Deserialize)]
struct Sealed<'a> {
    blake3: String,
    #[serde(borrow)]
    progress: &'a serde_json::value::RawValue,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct TimingsAcc {
    pub(super) ensemble: f64,
    pub(super) integrate: f64,
    pub(super) host_measures: f64,
    pub(super) verify: f64,
    #[serde(default)]
    pub(super) streaming: f64,
    pub(super) member_steps: f64,
}

/// The staging directory of `out`: `.NAME.partial` beside the directory `out` resolves to
/// (fixed, so a resume finds it; from the canonical path, so that two runs given one
/// directory through different paths or a symbolic link share one staging directory and lock).
pub fn staging_dir(out: &Path) -> PathBuf {
    let canonical = crate::output::out_path::resolved(out);
    let out = canonical.as_deref().unwrap_or(out);
    let name = out.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "out".into());
    let parent = crate::output::parent_of(out);
    parent.join(format!(".{name}.partial"))
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
            check_leftover(&dir)?;
            remove_staging(&dir).map_err(|e| QbatError::io(&dir, e))?;
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
        // (a link, even one that leads nowhere, is a checkpoint to refuse, not a missing one)
        let loaded = if std::fs::symlink_metadata(dir.join("checkpoint.json")).is_ok() {
            Some(load_checkpoint(&dir, members, n_samples, fp, &shown.to_string(), super::block_budget() as usize)?)
        } else {
            None // killed before the first block finished: start from scratch
        };
        notes.push(format!("resumed from the checkpoint in {}", dir.display()));
        return Ok((Staging { dir, _lock: lock }, loaded));
    }
    OutputDir::check(&opts.out, opts.force)?;
    // (a link that leads nowhere is something in the way too)
    if std::fs::symlink_metadata(&dir).is_ok() && !is_empty_dir(&dir) {
        // An interrupted run, or one still going.
        check_ours(&dir, "--out")?;
        let lock = take_lock(&dir)?;
        // (a finished run's leftover has nothing to continue: removed without a word)
        if is_committed(&dir) {
            if !opts.force {
                check_leftover(&dir)?;
            }
        } else {
            if !opts.force {
                return Err(QbatError::invalid(
                    "--out",
                    format!("{shown} has an interrupted run ({}); continue it with --resume {shown}, or pass --force to start over", dir.display()),
                ));
            }
            eprintln!("note: discarding the interrupted run in {} (use --resume to continue one)", dir.display());
        }
        // (its lock held until it is gone, so that no resume starts in it meanwhile)
        remove_staging(&dir).map_err(|e| QbatError::io(&dir, e))?;
        drop(lock);
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
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let fresh = dir.with_file_name(format!("{name}.new-{}", std::process::id()));
    // one of this process id's own, left by a run killed while it made it (process ids repeat,
    // in a container every time)
    if std::fs::symlink_metadata(&fresh).is_ok() {
        check_ours(&fresh, "--out")?;
        remove_staging(&fresh).map_err(|e| QbatError::io(&fresh, e))?;
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

/// Remove a staging directory that `check_ours` accepted (its lock held), its mark last: a
/// removal cut short (a kill, a file that stays while it is open on a network file system)
/// leaves a directory still marked as qbat-gpu's, which `--force` discards, not one refused as
/// the user's. It is first renamed out of the way (`.NAME.partial.gone-PID`): a run that looks
/// for it then finds none, and one that found it before waits on the lock this process holds,
/// never taking a new lock file while these files go.
pub(super) fn remove_staging(dir: &Path) -> std::io::Result<()> {
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let gone = dir.with_file_name(format!("{name}.gone-{}", std::process::id()));
    // (where it cannot be renamed, an earlier removal's leftover in the way, it goes in place)
    let dir = if std::fs::rename(dir, &gone).is_ok() { gone } else { dir.to_path_buf() };
    let emptied = empty_staging(&dir);
    // (an empty one goes by rmdir, which needs neither a path inside it that fits nor read
    // permission on it: its mark could not be written, a mode-000 directory)
    std::fs::remove_dir(&dir).map_err(|e| emptied.err().unwrap_or(e))
}

/// Remove everything in the staging directory `dir`, its mark last.
fn empty_staging(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name() == STAGING_MARK {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    match std::fs::remove_file(dir.join(STAGING_MARK)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
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

/// Refuse to remove a committed run's leftover staging directory `dir` that holds anything but
/// what qbat-gpu writes there (its mark, lock, checkpoint, statistics states, the hidden names
/// of their atomic writes, and `blocks/` of regular files): someone else's file is never
/// removed without `--force`.
fn check_leftover(dir: &Path) -> Result<()> {
    check_blocks(dir)?;
    for entry in std::fs::read_dir(dir).map_err(|e| QbatError::io(dir, e))? {
        let entry = entry.map_err(|e| QbatError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        let ours = name == "blocks"
            || (is_file && ([STAGING_MARK, "lock", "checkpoint.json"].contains(&name.as_str()) || name.starts_with("stats-state-") || name.starts_with('.')));
        if !ours {
            return Err(QbatError::invalid(
                entry.path().display().to_string(),
                "is in the staging directory of a finished run, and qbat-gpu did not write it; move it away (or pass --force)",
            ));
        }
    }
    Ok(())
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

/// When the checkpoint is written after a block. Where the series holds every finished
/// block, the checkpoint holds no statistics state, costs little, and is written after every
/// block. Without a series it holds the state, which grows with the run, so writing it after
/// every block made the checkpoints the larger part of a long run (on a GPU, 11 of a 15 s
/// run). That one is written after the first block, and then once the time since the last
/// one ended is at least `PACE` times what that one cost: the checkpoints take at most about
/// 1/(PACE + 1) of the run, and a crash or a failure loses the blocks finished since the last
/// (a resume runs them again, to the same bits; a cancelled run and a device's error write
/// one for them first).
pub(super) struct CheckpointPace {
    last_end: Option<std::time::Instant>,
    last_cost: f64,
    /// Blocks absorbed since the last checkpoint.
    pending: bool,
}

/// Run time between checkpoints, in units of the last one's cost.
const PACE: f64 = 10.0;

impl CheckpointPace {
    pub(super) fn new() -> CheckpointPace {
        CheckpointPace { last_end: None, last_cost: 0.0, pending: false }
    }

    fn due_at(&self, now: std::time::Instant) -> bool {
        match self.last_end {
            None => true,
            Some(_) if crate::faults::is_injected(crate::faults::Fault::CheckpointOnce) => false,
            Some(end) => now.saturating_duration_since(end).as_secs_f64() >= PACE * self.last_cost,
        }
    }

    /// After a block was absorbed: the checkpoint written when due; the seconds it took.
    pub(super) fn after_block(&mut self, staging: &Staging, progress: &mut Progress, acc: &StatsAccumulator) -> Result<f64> {
        // (`slow-blocks`, the tests' kill after a given block, wants every block's)
        let every_block = progress.series_holds_every_block() || crate::faults::block_delay().is_some();
        if !every_block && !self.due_at(std::time::Instant::now()) {
            self.pending = true;
            return Ok(0.0);
        }
        self.write(staging, progress, acc)
    }

    fn write(&mut self, staging: &Staging, progress: &mut Progress, acc: &StatsAccumulator) -> Result<f64> {
        let t = std::time::Instant::now();
        save_checkpoint(staging, progress, acc)?;
        self.last_cost = t.elapsed().as_secs_f64();
        self.last_end = Some(std::time::Instant::now());
        self.pending = false;
        Ok(self.last_cost)
    }

    /// The checkpoint of the blocks absorbed since the last one, if any (a cancelled run, or a
    /// device's error after whole blocks).
    pub(super) fn flush(&mut self, staging: &Staging, progress: &mut Progress, acc: Option<&StatsAccumulator>) -> Result<f64> {
        match acc {
            Some(acc) if self.pending => self.write(staging, progress, acc),
            _ => Ok(0.0),
        }
    }
}

pub(super) fn save_checkpoint(staging: &Staging, progress: &mut Progress, acc: &StatsAccumulator) -> Result<()> {
    let old = progress.generation;
    progress.generation += 1;
    // Where every finished block's values are in the series, a resume rebuilds the
    // accumulator from them (it is exact whatever the order of the blocks), so no state is
    // written: the state grows with the run, and was written again after every block.
    progress.stats_state = match progress.series_holds_every_block() {
        true => None,
        false => {
            let sp = staging.dir.join(format!("stats-state-{}.bin", progress.generation));
            Some(write_atomic_hashed(&sp, |w| acc.write_to(w))?)
        }
    };
    let text = serde_json::to_string(&progress).map_err(|e| QbatError::Numerics(format!("checkpoint: {e}")))?;
    let raw = serde_json::value::RawValue::from_string(text).map_err(|e| QbatError::Numerics(format!("checkpoint: {e}")))?;
    let sealed = Sealed { blake3: blake3::hash(raw.get().as_bytes()).to_hex().to_string(), progress: &raw };
    let ck = staging.dir.join("checkpoint.json");
    write_atomic(&ck, |w| serde_json::to_writer(&mut *w, &sealed).map_err(std::io::Error::other))?;
    let _ = std::fs::remove_file(staging.dir.join(format!("stats-state-{old}.bin")));
    Ok(())
}

/// Read and check a checkpoint before any work: its own hash, the statistics state and every
/// finished block's files (size and BLAKE3), and that its blocks are this run's. Anything
/// damaged, missing or edited is an error naming the file, with the way to start over.
/// A statistics state rebuilt from the series reads it in pieces of at most `piece_bytes` (or
/// one member).
fn load_checkpoint(
    dir: &Path,
    members: usize,
    n_samples: usize,
    fp: &serde_json::Value,
    shown: &str,
    piece_bytes: usize,
) -> Result<(Progress, StatsAccumulator)> {
    let ck = dir.join("checkpoint.json");
    let restart = "pass --force without --resume to start the run over";
    let damaged = |path: &Path, why: String| QbatError::invalid(path.display().to_string(), format!("the checkpoint is damaged: {why}; {restart}"));
    // a refusal (a link, a FIFO, too large) is damage; a file that cannot be read now (no
    // permission, an i/o error) is not, and starting over is not the advice for it
    let as_damage = |path: &Path, e: QbatError| match e {
        QbatError::Io { .. } => e,
        e => damaged(path, e.with_causes()),
    };
    // (a regular file: never a link, nor a FIFO waited on)
    let bytes = read_regular_bounded(&ck, SMALL_FILE_LIMIT).map_err(|e| as_damage(&ck, e))?;
    let sealed: Sealed = serde_json::from_slice(&bytes).map_err(|e| damaged(&ck, format!("not a sealed checkpoint ({e})")))?;
    if blake3::hash(sealed.progress.get().as_bytes()).to_hex().as_str() != sealed.blake3 {
        return Err(damaged(&ck, "its content differs from its hash (edited?)".into()));
    }
    let p: Progress = serde_json::from_str(sealed.progress.get()).map_err(|e| damaged(&ck, e.to_string()))?;
    if let Some(field) = fingerprint_difference(&p.fingerprint, fp) {
        return Err(QbatError::invalid(
            "--resume",
            format!("the interrupted run in {shown} differs from this one in '{field}'; run it with the same config and options, or pass --force without --resume to start over"),
        ));
    }
    let sp = dir.join(format!("stats-state-{}.bin", p.generation));
    // Without a statistics state, the accumulator is rebuilt from the series, as each block's
    // values are read and checked; a block's healthy members are those its values say are.
    let mut rebuilt = match &p.stats_state {
        Some(want) => {
            check_file(&sp, want).map_err(|why| damaged(&sp, why))?;
            None
        }
        None if p.series_holds_every_block() => Some((StatsAccumulator::new(n_samples, p.measures.len()), 0u64)),
        None => return Err(damaged(&ck, "it names no statistics state".into())),
    };
    if p.measures.is_empty() {
        return Err(damaged(&ck, "it names no measures".into()));
    }
    let measures: Vec<Measure> =
        p.measures.iter().map(|m| Measure::from_name(m).map_err(|_| damaged(&ck, format!("it names the measure '{m}'")))).collect::<Result<_>>()?;
    // a verify group holds one largest deviation per measure (the report folds into them),
    // each a deviation: finite or +inf, never negative
    if p.verify.iter().any(|g| g.max.len() != measures.len() || g.max.iter().any(|d| d.is_nan() || *d < 0.0)) {
        return Err(damaged(&ck, "its --verify deviations do not match its measures".into()));
    }
    let series_path = dir.join("blocks").join(SERIES_FILE);
    let mut series: Option<SeriesFile> = None;
    // (before any file is read: a block listed twice would be read twice)
    let mut listed: Vec<usize> = p.blocks.iter().map(|b| b.block).collect();
    listed.sort_unstable();
    let mut done = p.done.clone();
    done.sort_unstable();
    if listed != done || listed.windows(2).any(|w| w[0] == w[1]) {
        return Err(damaged(&ck, "its finished blocks and their files disagree".into()));
    }
    for b in &p.blocks {
        let tag = format!("{:06}", b.block);
        if let Some(v) = &b.values {
            if v.name != SERIES_FILE {
                return Err(damaged(&ck, format!("block {} names {}: it was written by another version of qbat-gpu", b.block, v.name)));
            }
            // The block's members: [b * per block, ..), as many as the block holds.
            let first = b.block.checked_mul(p.members_per_block).filter(|&f| f < members);
            if first.is_none_or(|f| b.members != p.members_per_block.min(members - f)) {
                return Err(damaged(&ck, format!("block {} does not hold members of this run", b.block)));
            }
            let s = match series.take() {
                Some(s) => s,
                None => SeriesFile::open(&dir.join("blocks"), members, n_samples, p.measures.len()).map_err(|why| damaged(&series_path, why))?,
            };
            let first = first.expect("checked");
            match rebuilt.as_mut() {
                Some((acc, healthy)) => {
                    // (in pieces of whole members of at most a block's memory budget: the
                    // accumulator is the same however the values come)
                    s.read_checked_block(first, b.members, v, piece_bytes, |values| {
                        let include: Vec<bool> =
                            values.chunks_exact(n_samples * measures.len()).map(|member| member_health(member, &measures, b.precision) == Health::Ok).collect();
                        *healthy += include.iter().filter(|&&ok| ok).count() as u64;
                        acc.add_block(values, &include);
                    })
                    .map_err(|why| damaged(&series_path, why))?;
                }
                None => s.check_block(first, b.members, v).map_err(|why| damaged(&series_path, why))?,
            }
            series = Some(s);
        }
        if let Some(v) = &b.states {
            check_file(&dir.join("blocks").join(format!("{tag}.states")), v).map_err(|why| damaged(&dir.join("blocks").join(format!("{tag}.states")), why))?;
        }
        check_file(&dir.join("blocks").join(format!("{tag}.summary")), &b.summary)
            .map_err(|why| damaged(&dir.join("blocks").join(format!("{tag}.summary")), why))?;
    }
    if let Some((acc, healthy)) = rebuilt {
        if healthy != p.health.ok {
            return Err(damaged(
                &ck,
                format!("it counts {} healthy members, but its finished blocks' values in {} hold {healthy}", p.health.ok, series_path.display()),
            ));
        }
        return Ok((p, acc));
    }
    // (checked above; opened again as a regular file, and read no further than its size)
    let state_bytes = p.stats_state.as_ref().map_or(0, |s| s.bytes);
    let (f, _) = open_regular(&sp).map_err(|e| as_damage(&sp, e))?;
    let mut f = std::io::BufReader::new(std::io::Read::take(f, state_bytes));
    let acc = StatsAccumulator::read_from(&mut f, (n_samples, p.measures.len()), state_bytes).map_err(|e| damaged(&sp, e.to_string()))?;
    // no cell may count more members than the finished blocks hold
    if acc.cells.iter().any(|c| c.n > p.health.ok) {
        return Err(damaged(&sp, format!("a cell counts more than the {} healthy members finished", p.health.ok)));
    }
    Ok((p, acc))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first checkpoint is due at once; a later one once PACE times the last one's cost
    /// has passed since it ended, not before.
    #[test]
    fn a_checkpoint_is_due_after_pace_times_the_last_ones_cost() {
        let mut pace = CheckpointPace::new();
        let end = std::time::Instant::now();
        assert!(pace.due_at(end));
        let cost = 0.02;
        pace.last_cost = cost;
        pace.last_end = Some(end);
        let after = |f: f64| end + std::time::Duration::from_secs_f64(f * PACE * cost);
        assert!(!pace.due_at(end), "due right after a checkpoint of {cost} s");
        assert!(!pace.due_at(after(0.9)), "due after 0.9 x PACE x its cost");
        assert!(pace.due_at(after(1.1)), "not due after 1.1 x PACE x its cost");
    }

    /// A resume rebuilds the statistics judging each block's members by the block's own
    /// precision: a trace error of 1e-5 is healthy in an f32 block and flagged in an f64 one.
    #[test]
    fn the_rebuilt_statistics_judge_each_block_by_its_precision() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("blocks")).unwrap();
        let staging = Staging { dir: dir.path().into(), _lock: take_lock(dir.path()).unwrap() };
        let (members, ns, nm) = (4, 3, 2);
        let measures = vec!["energy_b".to_string(), "trace_error".to_string()];
        let series = SeriesFile::create(&staging.blocks(), members, ns, nm, true).unwrap();
        // member m at sample s: energy m + s / 4, and a trace error of 1e-5 for members 1 and 3
        let values: Vec<f64> = (0..members).flat_map(|m| (0..ns).flat_map(move |s| [m as f64 + s as f64 / 4.0, if m % 2 == 1 { 1e-5 } else { 0.0 }])).collect();
        let fp = serde_json::json!({"config": "test"});
        let bytes = |acc: &StatsAccumulator| {
            let mut b = vec![];
            acc.write_to(&mut b).unwrap();
            b
        };
        for (precision, healthy) in [(Precision::F32, [true; 4]), (Precision::F64, [true, false, true, false])] {
            let mut progress = Progress { fingerprint: fp.clone(), members_per_block: 2, measures: measures.clone(), ..Default::default() };
            let row = ns * nm;
            for b in 0..2 {
                let (entry, _) = series.write_block(2 * b, &values[2 * b * row..(2 * b + 2) * row]).unwrap();
                let summary = write_atomic_hashed(&staging.blocks().join(format!("{b:06}.summary")), |w| w.write_all(b"summary rows\n")).unwrap();
                progress.blocks.push(BlockRecord { block: b, members: 2, values: Some(entry), states: None, summary, backend: "cpu".into(), precision });
                progress.done.push(b);
            }
            let ok = healthy.iter().filter(|&&h| h).count() as u64;
            progress.health.ok = ok;
            // the accumulator is not written: the series holds the values
            save_checkpoint(&staging, &mut progress, &StatsAccumulator::new(ns, nm)).unwrap();
            assert!(progress.stats_state.is_none());
            let mut expected = StatsAccumulator::new(ns, nm);
            expected.add_block(&values, &healthy);
            // a block read whole, or a member at a time
            for piece_bytes in [1 << 20, 1] {
                let (_, rebuilt) = load_checkpoint(&staging.dir, members, ns, &fp, "out", piece_bytes).unwrap();
                assert_eq!(bytes(&rebuilt), bytes(&expected), "{precision:?}, pieces of {piece_bytes} bytes");
                assert_eq!(rebuilt.cell(0, 0).n, ok);
            }
            // a checkpoint counting the other precision's healthy members is refused
            progress.health.ok = 6 - ok;
            save_checkpoint(&staging, &mut progress, &StatsAccumulator::new(ns, nm)).unwrap();
            let err = load_checkpoint(&staging.dir, members, ns, &fp, "out", 1 << 20).unwrap_err().to_string();
            assert!(err.contains("checkpoint.json") && err.contains("healthy members"), "{err}");
        }
    }
}
