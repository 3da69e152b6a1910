//! The streamed run driver behind `qbat-gpu run` and the default study.
//!
//! Members are integrated block by block (a block is the unit of checkpointing, not of the
//! device: each engine chunks a block as its limits require). After each block
//! - the ensemble statistics are folded into an exactly mergeable accumulator
//!   (`output::accumulate`), leaving out members flagged unhealthy;
//! - the block's series (raw f64) and summary rows are written durably under the staging
//!   directory `.DIR.partial/blocks/`;
//! - the checkpoint (done blocks, the accumulator, verify deviations, timings) is replaced
//!   atomically, so a killed run continues with `--resume DIR`.
//!
//! Host memory is bounded by one block (its results and the engine's work space) plus the
//! accumulator, whatever the ensemble size; the block size comes from a memory budget.
//! At the end the final files are assembled from the blocks in member order, and the staging
//! directory is renamed into place. A shard (`--shard K/N`) runs members
//! [K M / N, (K + 1) M / N) with the same per-member seeds, and keeps `stats-state.bin` so
//! that `qbat-gpu merge` can combine shards exactly.

use crate::config::Plan;
use crate::engine::{integrate, resolve_backend, Engine};
use crate::error::{QbatError, Result};
use crate::job::{Peak, PEAK_MEASURES};
use crate::measures::Measure;
use crate::output::accumulate::StatsAccumulator;
use crate::output::{self, write_atomic, Format, OutputDir, OutputOptions};
use crate::run::{fold_deviations, reference_member, verify_indices, verify_report, RunOptions, Timings};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `--shard K/N`: shard K (0-based) of N.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (k, n) = s.split_once('/').ok_or_else(|| format!("'{s}' is not K/N (e.g. 0/4)"))?;
        let index: usize = k.trim().parse().map_err(|_| format!("'{k}' is not a shard index"))?;
        let count: usize = n.trim().parse().map_err(|_| format!("'{n}' is not a shard count"))?;
        if count == 0 || index >= count {
            return Err(format!("shard index must be in 0..{count} (0-based), got {index}"));
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Member indices of this shard: [K M / N, (K + 1) M / N).
    pub fn range(&self, members: usize) -> std::ops::Range<usize> {
        let at = |k: usize| ((k as u128 * members as u128) / self.count as u128) as usize;
        at(self.index)..at(self.index + 1)
    }
}

/// What to do when the GPU is lost mid-run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnDeviceLoss {
    /// Finish the unfinished blocks on the CPU engine (f64).
    Cpu,
    /// Stop, keeping the checkpoint: continue later with --resume.
    Stop,
}

#[derive(Clone, Debug)]
pub struct StudyOptions {
    pub run: RunOptions,
    pub output: OutputOptions,
    pub out: PathBuf,
    /// Replace the qbat-gpu files of an existing `out`, and discard an interrupted run's
    /// checkpoint there.
    pub force: bool,
    /// Continue the interrupted run of `out`.
    pub resume: bool,
    pub shard: Option<Shard>,
    /// Members per block (None: from the memory budget).
    pub block_members: Option<usize>,
    pub on_device_loss: OnDeviceLoss,
    /// `--devices all` or adapter names (comma-separated): blocks spread across the devices.
    pub devices: Option<String>,
}

/// Health of a member's trajectory (summary.csv `health`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Ok,
    /// A value went NaN or infinite.
    NonFinite,
    /// |Tr rho - 1| beyond tolerance.
    Trace,
    /// The state turned clearly non-positive (min_eigenvalue below -tolerance).
    NonPositive,
}

impl Health {
    pub fn name(&self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::NonFinite => "nonfinite",
            Health::Trace => "trace",
            Health::NonPositive => "nonpositive",
        }
    }
}

/// Trace and positivity tolerances of the health check for a run's precision.
pub fn health_tolerance(precision: crate::run::Precision) -> (f64, f64) {
    match precision {
        crate::run::Precision::F32 => (1e-3, 1e-3),
        crate::run::Precision::F64 => (1e-8, 1e-6),
    }
}

/// Health of one member from its values [sample][measure].
pub fn member_health(values: &[f64], measures: &[Measure], precision: crate::run::Precision) -> Health {
    if values.iter().any(|v| !v.is_finite()) {
        return Health::NonFinite;
    }
    let nm = measures.len();
    let (trace_tol, pos_tol) = health_tolerance(precision);
    let col = |m: Measure| measures.iter().position(|x| *x == m);
    if let Some(k) = col(Measure::TraceError) {
        if values.iter().skip(k).step_by(nm).any(|v| v.abs() > trace_tol) {
            return Health::Trace;
        }
    }
    if let Some(k) = col(Measure::MinEigenvalue) {
        if values.iter().skip(k).step_by(nm).any(|v| *v < -pos_tol) {
            return Health::NonPositive;
        }
    }
    Health::Ok
}

/// Health counts of a run.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct HealthCounts {
    pub ok: u64,
    pub nonfinite: u64,
    pub trace: u64,
    pub nonpositive: u64,
    /// Ids of the first flagged members.
    pub flagged_ids: Vec<u64>,
}

impl HealthCounts {
    fn add(&mut self, id: u64, h: Health) {
        match h {
            Health::Ok => self.ok += 1,
            Health::NonFinite => self.nonfinite += 1,
            Health::Trace => self.trace += 1,
            Health::NonPositive => self.nonpositive += 1,
        }
        if h != Health::Ok && self.flagged_ids.len() < 20 {
            self.flagged_ids.push(id);
        }
    }
    pub fn flagged(&self) -> u64 {
        self.nonfinite + self.trace + self.nonpositive
    }
    pub fn merge(&mut self, o: &HealthCounts) {
        self.ok += o.ok;
        self.nonfinite += o.nonfinite;
        self.trace += o.trace;
        self.nonpositive += o.nonpositive;
        for id in &o.flagged_ids {
            if self.flagged_ids.len() < 20 {
                self.flagged_ids.push(*id);
            }
        }
    }
    /// One line for the report, with the likely cause.
    pub fn warning(&self, dt: f64) -> Option<String> {
        if self.flagged() == 0 {
            return None;
        }
        let ids: Vec<String> = self.flagged_ids.iter().map(|i| i.to_string()).collect();
        let mut s = format!(
            "{} member(s) flagged unhealthy and left out of the statistics ({} non-finite, {} lost trace, {} non-positive; first ids: {})",
            self.flagged(),
            self.nonfinite,
            self.trace,
            self.nonpositive,
            ids.join(", ")
        );
        if self.nonfinite + self.trace > 0 {
            s += &format!("; this is RK4 instability or f32 rounding: try a smaller dt than {dt} or --precision f64");
        }
        Some(s)
    }
}

/// Members whose fock_tail passed the plan's threshold.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct FockTailFlags {
    pub count: u64,
    /// (member id, largest tail) of the first few.
    pub first: Vec<(u64, f64)>,
    /// Largest photon number reached by a flagged member (0 when not measured).
    pub worst_photon_number: f64,
}

/// Everything the checkpoint must carry besides the accumulator.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Progress {
    fingerprint: serde_json::Value,
    /// Members per block: fixed when the run starts, kept by a resume.
    #[serde(default)]
    members_per_block: usize,
    done: Vec<usize>,
    generation: u64,
    measures: Vec<String>,
    precision: Option<crate::run::Precision>,
    backend: String,
    device: String,
    timings: TimingsAcc,
    verify_members: Vec<u64>,
    verify_max: Vec<f64>,
    health: HealthCounts,
    fock: FockTailFlags,
    notes: Vec<String>,
    engine_plan: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct TimingsAcc {
    ensemble: f64,
    integrate: f64,
    host_measures: f64,
    verify: f64,
    #[serde(default)]
    streaming: f64,
    member_steps: f64,
}

/// What a finished study hands back for the report.
pub struct StudyOutcome {
    pub dir: PathBuf,
    pub info: crate::run::RunInfo,
    pub stats: output::stats::Stats,
    pub health: HealthCounts,
    pub fock: FockTailFlags,
    pub members: usize,
    pub blocks: usize,
    pub resumed_blocks: usize,
}

/// The staging directory of `out`: `.NAME.partial` beside it (fixed, so a resume finds it).
pub fn staging_dir(out: &Path) -> PathBuf {
    let name = out.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "out".into());
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    parent.join(format!(".{name}.partial"))
}

fn io(path: &Path, e: std::io::Error) -> QbatError {
    QbatError::io(path.display().to_string(), e)
}

/// What must match for a checkpoint or shard to belong to this run.
pub fn fingerprint(plan: &Plan, opts: &StudyOptions, members_total: usize) -> serde_json::Value {
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "config": plan.config_json,
        "seed": plan.seed,
        "members": members_total,
        "samples": plan.schedule.times.len(),
        "measures": plan.measures.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "precision": opts.run.precision,
        "format": opts.output.format,
        "series": opts.output.series,
    })
}

/// Which field of two fingerprints differs first.
pub fn fingerprint_difference(a: &serde_json::Value, b: &serde_json::Value) -> Option<String> {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return Some("fingerprint".into()) };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().find(|k| a.get(*k) != b.get(*k)).cloned()
}

/// Members per block: results (and two-qubit states for the eigen measures) of a block stay
/// within `budget` bytes.
pub fn block_members(plan: &Plan, members: usize, budget: f64) -> usize {
    let keeps_states = plan.measures.iter().any(|m| m.needs_eigensolve());
    let per_member = 512.0 + crate::config::result_bytes_per_member(plan.space, plan.schedule.times.len(), plan.measures.len(), keeps_states);
    ((budget / per_member) as usize).clamp(1, members.max(1))
}

/// The memory budget of one block: a quarter of the available memory, at most 1 GiB.
pub fn block_budget() -> f64 {
    (0.25 * crate::config::available_memory_bytes()).min(2f64.powi(30))
}

/// Test-only fault injection (`QBAT_INJECT_FAULT`, comma-separated): `oom-once` makes the
/// first GPU block fail as out of memory; `lost-at=K` makes GPU block K fail as a lost device;
/// `nan-member=ID` turns member ID's values into NaN after integration (an instability);
/// `slow-blocks=MS` sleeps MS milliseconds after each block (to kill a run mid-way).
fn injected_nan_member() -> Option<u64> {
    let spec = std::env::var("QBAT_INJECT_FAULT").ok()?;
    spec.split(',').find_map(|p| p.strip_prefix("nan-member=").and_then(|id| id.parse().ok()))
}

fn injected_block_delay() -> Option<std::time::Duration> {
    let spec = std::env::var("QBAT_INJECT_FAULT").ok()?;
    spec.split(',').find_map(|p| p.strip_prefix("slow-blocks=").and_then(|ms| ms.parse().ok())).map(std::time::Duration::from_millis)
}

fn injected_fault(block: usize, attempt: usize) -> Option<QbatError> {
    let spec = std::env::var("QBAT_INJECT_FAULT").ok()?;
    for part in spec.split(',') {
        if part == "oom-once" && block == 0 && attempt == 0 {
            return Some(QbatError::DeviceOutOfMemory("injected by QBAT_INJECT_FAULT".into()));
        }
        if let Some(k) = part.strip_prefix("lost-at=").and_then(|k| k.parse::<usize>().ok()) {
            if k == block {
                return Some(QbatError::DeviceLost("injected by QBAT_INJECT_FAULT".into()));
            }
        }
    }
    None
}

struct Staging {
    dir: PathBuf,
    _lock: std::fs::File,
}

impl Staging {
    fn blocks(&self) -> PathBuf {
        self.dir.join("blocks")
    }
}

fn take_lock(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join("lock");
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| io(&path, e))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(QbatError::invalid("--out", format!("another qbat-gpu run is writing {} (its lock is held)", dir.display()))),
        Err(std::fs::TryLockError::Error(e)) => Err(io(&path, e)),
    }
}

/// Open (resume) or create the staging directory of `opts.out`.
fn open_staging(opts: &StudyOptions, fp: &serde_json::Value, n_samples: usize, notes: &mut Vec<String>) -> Result<(Staging, Option<(Progress, StatsAccumulator)>)> {
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
        std::fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
    }
    std::fs::create_dir_all(dir.join("blocks")).map_err(|e| io(&dir, e))?;
    let lock = take_lock(&dir)?;
    Ok((Staging { dir, _lock: lock }, None))
}

/// Run a plan, streamed, into `opts.out`.
pub fn run_study(plan: &Plan, opts: &StudyOptions) -> Result<StudyOutcome> {
    let t0 = Instant::now();
    let total = plan.members.len();
    let range = opts.shard.map(|s| s.range(total)).unwrap_or(0..total);
    if range.is_empty() {
        return Err(QbatError::invalid("--shard", format!("shard {:?} of {total} members is empty; use fewer shards", opts.shard)));
    }
    let local = plan.slice(range.clone());
    let fp = {
        let mut f = fingerprint(plan, opts, total);
        f["shard"] = json!(opts.shard);
        f
    };
    // Backend and devices first: a bad option must fail before any staging directory is
    // touched (and never cost an interrupted run its checkpoint).
    let mut notes = vec![];
    let engine = resolve_backend(&opts.run, &mut notes)?;
    let engines = engines_for(opts, engine, &mut notes)?;
    let (staging, loaded) = open_staging(opts, &fp, local.schedule.times.len(), &mut notes)?;
    match drive(plan, &local, opts, &staging, loaded, fp, notes, engines, t0) {
        Ok(outcome) => Ok(outcome),
        Err(e @ QbatError::DeviceLost(_)) => Err(QbatError::DeviceLost(format!(
            "{e}; the finished blocks are kept: continue with --resume {} (add --backend cpu to finish on the CPU)",
            opts.out.display()
        ))),
        Err(e) => {
            // A run that failed before its first checkpoint, or for a reason a resume would only
            // repeat (numerics), leaves nothing; otherwise the checkpoint is kept. A resumed run's
            // checkpoint is never removed here.
            let checkpointed = staging.dir.join("checkpoint.json").exists();
            if !opts.resume && (!checkpointed || matches!(e, QbatError::Numerics(_))) {
                let _ = std::fs::remove_dir_all(&staging.dir);
            } else {
                eprintln!("note: the finished blocks are kept in {}: continue with --resume {}", staging.dir.display(), opts.out.display());
            }
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn drive(
    plan: &Plan,
    local: &Plan,
    opts: &StudyOptions,
    staging: &Staging,
    loaded: Option<(Progress, StatsAccumulator)>,
    fp: serde_json::Value,
    notes: Vec<String>,
    engines: Vec<Engine>,
    t0: Instant,
) -> Result<StudyOutcome> {
    let n = local.members.len();
    let ns = local.schedule.times.len();
    let run_notes = notes;
    let setup = t0.elapsed().as_secs_f64();
    // Several devices balance by taking blocks as they finish: give each a few.
    let for_balance = if engines.len() > 1 { n.div_ceil(4 * engines.len()) } else { n };
    let fresh_block = || opts.block_members.unwrap_or_else(|| block_members(local, n, block_budget()).min(for_balance)).max(1);
    let resumed;
    let (mut progress, mut acc) = match loaded {
        Some((p, a)) => {
            // A resumed run keeps the blocks it was cut into.
            if let Some(b) = opts.block_members.filter(|b| *b != p.members_per_block) {
                return Err(QbatError::invalid("--block-members", format!("the interrupted run uses blocks of {} members, not {b}; leave --block-members out (or give {}) to resume it", p.members_per_block, p.members_per_block)));
            }
            if p.members_per_block == 0 {
                return Err(QbatError::invalid("--resume", "the checkpoint has no block size (written by another version?); pass --force without --resume to start over"));
            }
            resumed = p.done.len();
            (p, Some(a))
        }
        None => {
            resumed = 0;
            (Progress { fingerprint: fp, members_per_block: fresh_block(), ..Default::default() }, None)
        }
    };
    let block = progress.members_per_block;
    let n_blocks = n.div_ceil(block);
    if progress.done.iter().any(|&b| b >= n_blocks) {
        return Err(QbatError::invalid("--resume", "the checkpoint names blocks beyond this run's members; it belongs to another run"));
    }
    progress.notes.extend(run_notes);
    if local.steady && opts.run.verify > 0 && !progress.notes.iter().any(|n| n.starts_with("--verify skipped")) {
        progress.notes.push("--verify skipped: steady states are solved for, not integrated; steady_residual = ||L rho||_F is their check".into());
    }
    // The members --verify re-runs: chosen by the seed among this run's members.
    let verify_idx: Vec<usize> = if opts.run.verify > 0 && !matches!(engines[0], Engine::Reference) && !local.steady {
        verify_indices(plan.seed, n, opts.run.verify)
    } else {
        vec![]
    };
    let pb = crate::run::progress_bar(opts.run.progress && n_blocks > 1, n as u64, "blocks");
    pb.set_position(progress.done.iter().map(|&b| (b * block..((b + 1) * block).min(n)).len() as u64).sum());
    let mut run_opts = opts.run.clone();
    run_opts.progress = opts.run.progress && n_blocks == 1;
    let mut workers: Vec<Worker> = engines
        .into_iter()
        .map(|engine| Worker { label: engine.device_name(), engine, opts: run_opts.clone(), notes: vec![], blocks: 0, members: 0, busy: 0.0 })
        .collect();
    let pending: Vec<usize> = (0..n_blocks).filter(|b| !progress.done.contains(b)).collect();
    let mut sink = Absorber { local, opts, staging, progress: &mut progress, acc: &mut acc, verify_idx: &verify_idx, ns, pb: &pb };
    let slice = |b: usize| {
        let lo = b * block;
        (lo, local.slice(lo..(lo + block).min(n)))
    };
    if workers.len() == 1 {
        let w = &mut workers[0];
        for &b in &pending {
            let (lo, sub) = slice(b);
            let t = Instant::now();
            let out = w.compute(&sub, b, opts.on_device_loss)?;
            sink.progress.notes.append(&mut w.notes);
            sink.absorb(b, lo, &sub, out, t.elapsed().as_secs_f64(), w.engine.name(), &w.engine.device_name())?;
        }
    } else {
        // One thread per device pulls the next pending block; results are absorbed here, in
        // completion order (the accumulator is exact and order-independent, and the block files
        // are assembled in member order at the end, so the output does not depend on it).
        let next = std::sync::atomic::AtomicUsize::new(0);
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| -> Result<()> {
            let (tx, rx) = std::sync::mpsc::channel();
            for w in workers.iter_mut() {
                let (tx, next, stop, pending, slice) = (tx.clone(), &next, &stop, &pending, &slice);
                scope.spawn(move || loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= pending.len() || stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let b = pending[i];
                    let (lo, sub) = slice(b);
                    let t = Instant::now();
                    let r = w.compute(&sub, b, opts.on_device_loss);
                    let failed = r.is_err();
                    let _ = tx.send((b, lo, sub, r, t.elapsed().as_secs_f64(), w.engine.name(), std::mem::take(&mut w.notes)));
                    if failed {
                        break;
                    }
                });
            }
            drop(tx);
            for (b, lo, sub, r, wall, name, mut notes) in rx {
                sink.progress.notes.append(&mut notes);
                let out = match r {
                    Ok(out) => out,
                    Err(e) => {
                        stop.store(true, std::sync::atomic::Ordering::SeqCst);
                        return Err(e);
                    }
                };
                if let Err(e) = sink.absorb(b, lo, &sub, out, wall, name, "several devices") {
                    stop.store(true, std::sync::atomic::Ordering::SeqCst);
                    return Err(e);
                }
            }
            Ok(())
        })?;
    }
    if workers.len() > 1 {
        let per: Vec<serde_json::Value> = workers
            .iter()
            .map(|w| json!({"device": w.label, "blocks": w.blocks, "members": w.members, "busy_s": w.busy, "member_steps_per_second": w.members as f64 * local.schedule.total_steps() as f64 / w.busy.max(1e-12)}))
            .collect();
        progress.engine_plan = Some(json!({"devices": per}));
        progress.device = workers.iter().map(|w| w.label.clone()).collect::<Vec<_>>().join(" + ");
    }
    pb.finish_and_clear();
    let acc = acc.ok_or_else(|| QbatError::Numerics("no member was integrated".into()))?;
    if progress.health.ok == 0 {
        return Err(QbatError::Numerics(format!(
            "every member was flagged unhealthy; {}",
            progress.health.warning(local.schedule.dt).unwrap_or_default()
        )));
    }
    finish(plan, local, opts, staging, progress, acc, block, n_blocks, resumed, setup)
}

/// One device (or the CPU) working through blocks.
struct Worker {
    engine: Engine,
    opts: RunOptions,
    label: String,
    notes: Vec<String>,
    blocks: usize,
    members: usize,
    busy: f64,
}

impl Worker {
    /// Integrate one block, re-chunking on out-of-memory and moving to the CPU on device loss
    /// (when asked to).
    fn compute(&mut self, sub: &Plan, b: usize, on_loss: OnDeviceLoss) -> Result<crate::engine::EngineOutput> {
        let t = Instant::now();
        let mut attempt = 0;
        let out = loop {
            let res = match injected_fault(b, attempt).filter(|_| matches!(self.engine, Engine::Gpu(_))) {
                Some(e) => Err(e),
                None => integrate(sub, &self.opts, &self.engine),
            };
            match res {
                Ok(out) => break out,
                Err(QbatError::DeviceOutOfMemory(why)) => {
                    let current = self.opts.max_chunk.unwrap_or(sub.members.len());
                    if current <= 1 {
                        return Err(QbatError::DeviceOutOfMemory(format!("{why}, even one member at a time")));
                    }
                    self.opts.max_chunk = Some(current / 2);
                    let note = format!("device out of memory in block {b} ({why}); re-chunked to at most {} members per dispatch and retried", current / 2);
                    eprintln!("note: {note}");
                    self.notes.push(note);
                }
                Err(QbatError::DeviceLost(why)) if on_loss == OnDeviceLoss::Cpu && matches!(self.engine, Engine::Gpu(_)) => {
                    let note = format!("the GPU {} was lost in block {b} ({why}); its blocks from {b} on were finished on the CPU engine (f64)", self.label);
                    eprintln!("note: {note}");
                    self.notes.push(note);
                    self.engine = Engine::Cpu;
                }
                Err(e) => return Err(e),
            }
            attempt += 1;
        };
        self.blocks += 1;
        self.members += sub.members.len();
        self.busy += t.elapsed().as_secs_f64();
        Ok(out)
    }
}

/// The engines of a run: one per `--devices` entry, else the resolved backend.
fn engines_for(opts: &StudyOptions, engine: Engine, notes: &mut Vec<String>) -> Result<Vec<Engine>> {
    let Some(spec) = opts.devices.as_deref() else { return Ok(vec![engine]) };
    if !matches!(engine, Engine::Gpu(_)) {
        notes.push("--devices ignored: the run is not on the GPU".into());
        return Ok(vec![engine]);
    }
    let need_f64 = opts.run.precision == crate::run::Precision::F64;
    let names: Vec<String> = if spec == "all" {
        crate::gpu::GpuContext::adapter_names()
    } else {
        spec.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
    };
    if names.is_empty() {
        return Err(QbatError::invalid("--devices", "no adapter named"));
    }
    let mut engines = vec![];
    for name in &names {
        let ctx = crate::gpu::GpuContext::new(Some(name), need_f64).map_err(|e| QbatError::invalid("--devices", format!("'{name}': {e}")))?;
        engines.push(Engine::Gpu(std::sync::Arc::new(ctx)));
    }
    Ok(engines)
}

/// Folds finished blocks into the run: health, statistics, verify, block files, checkpoint.
struct Absorber<'a> {
    local: &'a Plan,
    opts: &'a StudyOptions,
    staging: &'a Staging,
    progress: &'a mut Progress,
    acc: &'a mut Option<StatsAccumulator>,
    verify_idx: &'a [usize],
    ns: usize,
    pb: &'a indicatif::ProgressBar,
}

impl Absorber<'_> {
    fn absorb(&mut self, b: usize, lo: usize, sub: &Plan, out: crate::engine::EngineOutput, wall: f64, backend: &str, device: &str) -> Result<()> {
        let (local, opts, staging, ns) = (self.local, self.opts, self.staging, self.ns);
        let t_absorb = Instant::now();
        let progress = &mut *self.progress;
        let hi = lo + sub.members.len();
            // The measure columns are fixed by the first block.
            let names: Vec<String> = out.measures.iter().map(|m| m.name().to_string()).collect();
            if progress.measures.is_empty() {
                progress.measures = names.clone();
                progress.engine_plan = out.engine_plan.clone();
                progress.backend = backend.into();
                progress.device = device.into();
                for note in &out.notes {
                    if !progress.notes.contains(note) {
                        progress.notes.push(note.clone());
                    }
                }
            } else if progress.measures != names {
                return Err(QbatError::Numerics(format!("block {b} returned the measures {names:?}, not {:?}", progress.measures)));
            }
            progress.precision = Some(out.precision);
            let nm = out.measures.len();
            let nb = hi - lo;
            let mut out = out;
            if let Some(i) = injected_nan_member().and_then(|id| sub.members.iter().position(|m| m.id == id)) {
                out.values[(i * ns + ns / 2) * nm..(i + 1) * ns * nm].fill(f64::NAN);
            }
            // health
            let health: Vec<Health> = (0..nb).map(|i| member_health(&out.values[i * ns * nm..(i + 1) * ns * nm], &out.measures, out.precision)).collect();
            for (i, h) in health.iter().enumerate() {
                progress.health.add(sub.members[i].id, *h);
            }
            fock_flags(local, &out.measures, &out.values, &sub, ns, &mut progress.fock);
            // stats
            let a = self.acc.get_or_insert_with(|| StatsAccumulator::new(ns, nm));
            let include: Vec<bool> = health.iter().map(|h| *h == Health::Ok).collect();
            a.add_block(&out.values, &include);
            // verify the chosen members of this block
            let tv = Instant::now();
            for &i in self.verify_idx.iter().filter(|&&i| (lo..hi).contains(&i)) {
                let m = &local.members[i];
                let (r, _) = reference_member(local, m, &out.measures);
                if progress.verify_max.is_empty() {
                    progress.verify_max = vec![0.0; nm];
                }
                let row = ns * nm;
                fold_deviations(&mut progress.verify_max, &out.values[(i - lo) * row..(i - lo + 1) * row], &r);
                progress.verify_members.push(m.id);
            }
            let t_verify = tv.elapsed().as_secs_f64();
            // durable block files, then the checkpoint that names them
            let tag = format!("{b:06}");
            if opts.output.series {
                write_atomic(&staging.blocks().join(format!("{tag}.values")), |w| {
                    for v in &out.values {
                        w.write_all(&v.to_le_bytes())?;
                    }
                    Ok(())
                })?;
            }
            write_atomic(&staging.blocks().join(format!("{tag}.summary")), |w| summary_rows(w, local, &sub, &out.peaks, &health))?;
            progress.timings.ensemble += out.ensemble;
            progress.timings.integrate += (wall - out.host_measures).max(0.0);
            progress.timings.host_measures += out.host_measures;
            progress.timings.verify += t_verify;
            progress.timings.member_steps += nb as f64 * local.schedule.total_steps() as f64;
            progress.done.push(b);
            progress.timings.streaming += (t_absorb.elapsed().as_secs_f64() - t_verify).max(0.0);
            save_checkpoint(staging, progress, a)?;
            self.pb.inc(nb as u64);
            if let Some(d) = injected_block_delay() {
                std::thread::sleep(d);
            }
        Ok(())
    }
}

/// Flag cavity members whose fock_tail passed the threshold.
fn fock_flags(plan: &Plan, measures: &[Measure], values: &[f64], sub: &Plan, ns: usize, flags: &mut FockTailFlags) {
    if !plan.is_cavity() {
        return;
    }
    let nm = measures.len();
    let Some(kt) = measures.iter().position(|m| *m == Measure::FockTail) else { return };
    let kn = measures.iter().position(|m| *m == Measure::PhotonNumber);
    for (i, m) in sub.members.iter().enumerate() {
        let col = |k: usize| (0..ns).map(|s| values[(i * ns + s) * nm + k]).fold(0.0, f64::max);
        let tail = col(kt);
        if tail > plan.fock_tail_threshold {
            flags.count += 1;
            if flags.first.len() < 10 {
                flags.first.push((m.id, tail));
            }
            if let Some(kn) = kn {
                flags.worst_photon_number = flags.worst_photon_number.max(col(kn));
            }
        }
    }
}

fn save_checkpoint(staging: &Staging, progress: &mut Progress, acc: &StatsAccumulator) -> Result<()> {
    let old = progress.generation;
    progress.generation += 1;
    let sp = staging.dir.join(format!("stats-state-{}.bin", progress.generation));
    write_atomic(&sp, |w| acc.write_to(w))?;
    let ck = staging.dir.join("checkpoint.json");
    write_atomic(&ck, |w| serde_json::to_writer(&mut *w, &progress).map_err(std::io::Error::other))?;
    let _ = std::fs::remove_file(staging.dir.join(format!("stats-state-{old}.bin")));
    Ok(())
}

use crate::output::num;

/// The summary.csv header of a plan.
pub fn summary_header(plan: &Plan) -> String {
    let mut h = String::from("member");
    for c in &plan.param_columns {
        h += &format!(",{c}");
    }
    if plan.members.iter().any(|m| m.theta_phi.is_some()) {
        h += ",theta,phi";
    }
    for m in PEAK_MEASURES {
        h += &format!(",max_{0},t_max_{0}", m.name());
    }
    h += ",health";
    h
}

pub fn summary_rows(w: &mut dyn Write, plan: &Plan, sub: &Plan, peaks: &[Peak], health: &[Health]) -> std::io::Result<()> {
    let angles = plan.members.iter().any(|m| m.theta_phi.is_some());
    for (i, m) in sub.members.iter().enumerate() {
        write!(w, "{}", m.id)?;
        for v in &m.param_values {
            write!(w, ",{}", num(*v))?;
        }
        if angles {
            let (th, ph) = m.theta_phi.unwrap_or((f64::NAN, f64::NAN));
            write!(w, ",{},{}", num(th), num(ph))?;
        }
        for k in 0..4 {
            let p = peaks[i * 4 + k];
            write!(w, ",{},{}", num(p.max), num(p.t_max))?;
        }
        writeln!(w, ",{}", health[i].name())?;
    }
    Ok(())
}

/// Health codes of summary.npy's `health` column.
pub const HEALTH_CODES: [(f64, Health); 4] = [(0.0, Health::Ok), (1.0, Health::NonFinite), (2.0, Health::Trace), (3.0, Health::NonPositive)];

/// `--format npy`: summary.npy (members x columns, f64; health as its code) and summary.json
/// naming the columns, from the block summary rows.
fn write_summary_npy(out: &OutputDir, local: &Plan, staging: &Staging, n_blocks: usize) -> Result<()> {
    let header = summary_header(local);
    let columns: Vec<&str> = header.split(',').collect();
    let code = |h: &str| HEALTH_CODES.iter().find(|(_, x)| x.name() == h).map(|(c, _)| *c).unwrap_or(f64::NAN);
    out.write("summary.npy", |w| {
        use npyz::WriterBuilder;
        let shape = [local.members.len() as u64, columns.len() as u64];
        let mut npy = npyz::WriteOptions::<f64>::new().default_dtype().shape(&shape).writer(w).begin_nd()?;
        for b in 0..n_blocks {
            let text = std::fs::read_to_string(staging.blocks().join(format!("{b:06}.summary")))?;
            for line in text.lines() {
                let cells: Vec<&str> = line.split(',').collect();
                for (k, c) in cells.iter().enumerate() {
                    let v = if k + 1 == cells.len() { code(c) } else { c.parse::<f64>().map_err(std::io::Error::other)? };
                    npy.push(&v)?;
                }
            }
        }
        npy.finish()
    })?;
    let health: serde_json::Map<String, serde_json::Value> = HEALTH_CODES.iter().map(|(c, h)| (format!("{c}"), json!(h.name()))).collect();
    let meta = json!({"columns": columns, "health_codes": health});
    out.write("summary.json", |w| serde_json::to_writer_pretty(&mut *w, &meta).map_err(std::io::Error::other))
}

/// Read block b's raw series values.
/// Read block b's raw series values: exactly `count` of them, or an error naming the file.
fn read_block_values(staging: &Staging, b: usize, count: usize) -> Result<Vec<f64>> {
    let p = staging.blocks().join(format!("{b:06}.values"));
    let bytes = std::fs::read(&p).map_err(|e| io(&p, e))?;
    if bytes.len() != count * 8 {
        return Err(QbatError::invalid("--resume", format!("{} holds {} bytes, not the {} of its block; the checkpoint is damaged", p.display(), bytes.len(), count * 8)));
    }
    Ok(bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
}

#[allow(clippy::too_many_arguments)]
fn finish(
    plan: &Plan,
    local: &Plan,
    opts: &StudyOptions,
    staging: &Staging,
    progress: Progress,
    acc: StatsAccumulator,
    block: usize,
    n_blocks: usize,
    resumed: usize,
    setup: f64,
) -> Result<StudyOutcome> {
    let t_out = Instant::now();
    // The outputs are assembled in a clean subdirectory, which alone is moved into place: no
    // checkpoint, block or stray temporary file can reach the final directory, and the
    // checkpoint stays until the commit has succeeded.
    let assembled = staging.dir.join("final");
    let _ = std::fs::remove_dir_all(&assembled);
    std::fs::create_dir(&assembled).map_err(|e| io(&assembled, e))?;
    let out = OutputDir::at(&opts.out, &assembled);
    let ns = local.schedule.times.len();
    let measures: Vec<&str> = progress.measures.iter().map(|s| s.as_str()).collect();
    let nm = measures.len();
    let ids: Vec<u64> = local.members.iter().map(|m| m.id).collect();
    if opts.output.series {
        match opts.output.format {
            Format::Csv => out.write("series.csv", |w| {
                write!(w, "member,t")?;
                for name in &measures {
                    write!(w, ",{name}")?;
                }
                writeln!(w)?;
                for b in 0..n_blocks {
                    let block_ids = &ids[b * block..((b + 1) * block).min(ids.len())];
                    let values = read_block_values(staging, b, block_ids.len() * ns * nm).map_err(std::io::Error::other)?;
                    for (i, id) in block_ids.iter().enumerate() {
                        for (s, t) in local.schedule.times.iter().enumerate() {
                            write!(w, "{id},{}", num(*t))?;
                            for v in &values[(i * ns + s) * nm..(i * ns + s + 1) * nm] {
                                write!(w, ",{}", num(*v))?;
                            }
                            writeln!(w)?;
                        }
                    }
                }
                Ok(())
            })?,
            Format::Npy => {
                out.write("series.npy", |w| {
                    use npyz::WriterBuilder;
                    let shape = [ids.len() as u64, ns as u64, nm as u64];
                    let mut npy = npyz::WriteOptions::<f64>::new().default_dtype().shape(&shape).writer(w).begin_nd()?;
                    for b in 0..n_blocks {
                        let members = ((b + 1) * block).min(ids.len()) - b * block;
                        let values = read_block_values(staging, b, members * ns * nm).map_err(std::io::Error::other)?;
                        npy.extend(values.iter().copied())?;
                    }
                    npy.finish()
                })?;
                let axes = json!({"members": ids, "times": local.schedule.times, "measures": measures});
                out.write("series.json", |w| serde_json::to_writer_pretty(&mut *w, &axes).map_err(std::io::Error::other))?;
            }
        }
    }
    if opts.output.format == Format::Npy {
        write_summary_npy(&out, local, staging, n_blocks)?;
    }
    out.write("summary.csv", |w| {
        writeln!(w, "{}", summary_header(local))?;
        for b in 0..n_blocks {
            let p = staging.blocks().join(format!("{b:06}.summary"));
            let mut f = std::fs::File::open(&p)?;
            std::io::copy(&mut f, w)?;
        }
        Ok(())
    })?;
    let names: Vec<&'static str> = stats_measures(&progress).iter().map(|m| m.name()).collect();
    let stats = output::stats::Stats::from_accumulator(&acc, local.schedule.times.clone(), names);
    out.write("stats.csv", |w| output::stats::write_csv(&stats, w))?;
    if opts.shard.is_some() {
        out.write("stats-state.bin", |w| acc.write_to(w))?;
    }
    let mut progress = progress;
    // Several devices finish blocks in any order: list ids in member order.
    progress.health.flagged_ids.sort_unstable();
    progress.verify_members.sort_unstable();
    for w in crate::report::fock_tail_warnings(local, &stats_measures(&progress), &progress.fock).into_iter().chain(progress.health.warning(local.schedule.dt)) {
        eprintln!("WARNING: {w}");
        progress.notes.push(w);
    }
    let info = run_info(local, &progress, setup, t_out.elapsed().as_secs_f64());
    let mut rj = output::run_json(plan, &info, &opts.run);
    rj["members"] = json!(local.members.len());
    rj["health"] = json!(progress.health);
    rj["peak_rss_bytes"] = json!(peak_rss_bytes());
    rj["blocks"] = json!({"members_per_block": block, "count": n_blocks, "resumed": resumed});
    if let Some(s) = opts.shard {
        let r = s.range(plan.members.len());
        rj["shard"] = json!({"index": s.index, "count": s.count, "members": [r.start, r.end], "fingerprint": progress.fingerprint});
    }
    out.write("run.json", |w| serde_json::to_writer_pretty(&mut *w, &rj).map_err(std::io::Error::other))?;
    let dir = out.commit()?;
    // Committed: the checkpoint, blocks and lock go.
    let _ = std::fs::remove_dir_all(&staging.dir);
    // Plots read the committed files (each plot is itself written atomically).
    if opts.output.plots {
        output::plots::write_run_plots(&dir)?;
    }
    Ok(StudyOutcome { dir, info, stats, health: progress.health, fock: progress.fock, members: local.members.len(), blocks: n_blocks, resumed_blocks: resumed })
}

fn stats_measures(p: &Progress) -> Vec<Measure> {
    p.measures.iter().filter_map(|s| Measure::from_name(s).ok()).collect()
}

fn run_info(local: &Plan, p: &Progress, setup: f64, output: f64) -> crate::run::RunInfo {
    let measures = stats_measures(p);
    let precision = p.precision.unwrap_or(crate::run::Precision::F64);
    let verify = (!p.verify_members.is_empty()).then(|| verify_report(&measures, &p.verify_max, precision, p.verify_members.clone()));
    crate::run::RunInfo {
        measures,
        times: local.schedule.times.clone(),
        backend: p.backend.clone(),
        device: p.device.clone(),
        precision,
        timings: Timings {
            setup,
            ensemble: p.timings.ensemble,
            integrate: p.timings.integrate,
            host_measures: p.timings.host_measures,
            verify: p.timings.verify,
            streaming: p.timings.streaming,
            output,
        },
        member_steps: p.timings.member_steps,
        verify,
        notes: p.notes.clone(),
        engine_plan: p.engine_plan.clone(),
    }
}

/// Peak resident memory of this process (VmHWM, Linux), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
