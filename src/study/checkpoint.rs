//! The staging directory `.DIR.partial` of a streamed run: its lock, the checkpoint (done
//! blocks, the statistics accumulator, verify deviations, timings) replaced atomically after
//! each block, and the block files it names.

use super::health::{FockTailFlags, HealthCounts};
use super::{fingerprint_difference, StudyOptions};
use crate::engine::Precision;
use crate::error::{QbatError, Result};
use crate::output::accumulate::StatsAccumulator;
use crate::output::{write_atomic, OutputDir};
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
    pub(super) verify_members: Vec<u64>,
    pub(super) verify_max: Vec<f64>,
    pub(super) health: HealthCounts,
    pub(super) fock: FockTailFlags,
    pub(super) notes: Vec<String>,
    pub(super) engine_plan: Option<serde_json::Value>,
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


/// The staging directory of `out`: `.NAME.partial` beside it (fixed, so a resume finds it).
pub fn staging_dir(out: &Path) -> PathBuf {
    let name = out.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "out".into());
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
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
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| QbatError::io(&path, e))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(QbatError::invalid("--out", format!("another qbat-gpu run is writing {} (its lock is held)", dir.display()))),
        Err(std::fs::TryLockError::Error(e)) => Err(QbatError::io(&path, e)),
    }
}

/// Open (resume) or create the staging directory of `opts.out`.
pub(super) fn open_staging(opts: &StudyOptions, fp: &serde_json::Value, n_samples: usize, notes: &mut Vec<String>) -> Result<(Staging, Option<(Progress, StatsAccumulator)>)> {
    let dir = staging_dir(&opts.out);
    let shown = opts.out.display();
    if opts.resume {
        if !dir.is_dir() {
            let why = if opts.out.join("run.json").is_file() { "it has finished already" } else { "no interrupted run was found there" };
            return Err(QbatError::invalid("--resume", format!("cannot resume {shown}: {why} (looked for {})", dir.display())));
        }
        let lock = take_lock(&dir)?;
        let ck = dir.join("checkpoint.json");
        let progress: Option<Progress> = match std::fs::read(&ck) {
            Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| QbatError::invalid("--resume", format!("the checkpoint {} is damaged: {e}", ck.display())))?),
            Err(_) => None,
        };
        let loaded = match progress {
            None => None, // killed before the first block finished: start from scratch
            Some(p) => {
                if let Some(field) = fingerprint_difference(&p.fingerprint, fp) {
                    return Err(QbatError::invalid(
                        "--resume",
                        format!("the interrupted run in {shown} differs from this one in '{field}'; run it with the same config and options, or pass --force without --resume to start over"),
                    ));
                }
                let sp = dir.join(format!("stats-state-{}.bin", p.generation));
                let damaged = |why: String| QbatError::invalid("--resume", format!("the checkpoint's {} is damaged ({why}); pass --force without --resume to start over", sp.display()));
                let mut f = std::io::BufReader::new(std::fs::File::open(&sp).map_err(|e| damaged(e.to_string()))?);
                let acc = StatsAccumulator::read_from(&mut f, (n_samples, p.measures.len())).map_err(|e| damaged(e.to_string()))?;
                // no cell may count more members than the finished blocks hold
                if acc.cells.iter().any(|c| c.n > p.health.ok) {
                    return Err(damaged(format!("a cell counts more than the {} healthy members finished", p.health.ok)));
                }
                Some((p, acc))
            }
        };
        notes.push(format!("resumed from the checkpoint in {}", dir.display()));
        return Ok((Staging { dir, _lock: lock }, loaded));
    }
    OutputDir::check(&opts.out, opts.force)?;
    if dir.exists() {
        // An interrupted run, or one still going.
        let lock = take_lock(&dir)?;
        drop(lock);
        if !opts.force {
            return Err(QbatError::invalid(
                "--out",
                format!("{shown} has an interrupted run ({}); continue it with --resume {shown}, or pass --force to start over", dir.display()),
            ));
        }
        eprintln!("note: discarding the interrupted run in {} (use --resume to continue one)", dir.display());
        std::fs::remove_dir_all(&dir).map_err(|e| QbatError::io(&dir, e))?;
    }
    std::fs::create_dir_all(dir.join("blocks")).map_err(|e| QbatError::io(&dir, e))?;
    let lock = take_lock(&dir)?;
    Ok((Staging { dir, _lock: lock }, None))
}


pub(super) fn save_checkpoint(staging: &Staging, progress: &mut Progress, acc: &StatsAccumulator) -> Result<()> {
    let old = progress.generation;
    progress.generation += 1;
    let sp = staging.dir.join(format!("stats-state-{}.bin", progress.generation));
    write_atomic(&sp, |w| acc.write_to(w))?;
    let ck = staging.dir.join("checkpoint.json");
    write_atomic(&ck, |w| serde_json::to_writer(&mut *w, &progress).map_err(std::io::Error::other))?;
    let _ = std::fs::remove_file(staging.dir.join(format!("stats-state-{old}.bin")));
    Ok(())
}


/// Read block b's raw series values.
/// Read block b's raw series values: exactly `count` of them, or an error naming the file.
pub(super) fn read_block_values(staging: &Staging, b: usize, count: usize) -> Result<Vec<f64>> {
    let p = staging.blocks().join(format!("{b:06}.values"));
    let bytes = std::fs::read(&p).map_err(|e| QbatError::io(&p, e))?;
    if bytes.len() != count * 8 {
        return Err(QbatError::invalid("--resume", format!("{} holds {} bytes, not the {} of its block; the checkpoint is damaged", p.display(), bytes.len(), count * 8)));
    }
    Ok(bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
}

