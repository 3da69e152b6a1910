//! Drives a streamed run through its blocks: one worker per device (or the CPU) integrates
//! blocks, re-chunking on out-of-memory and moving to the CPU on device loss; the absorber
//! folds each finished block into the health counts, statistics, verify deviations, the series
//! file, block files and checkpoint.

use super::analysis_feed::AnalysisFeed;
use super::checkpoint::{BlockRecord, CheckpointPace, Progress};
use super::csv_series::{CsvSeries, CSV_FILE};
use super::finish::{finish, summary_rows};
use super::health::{fock_flags, member_health, Health};
use super::series_file::SeriesFile;
use super::staging::Staging;
use super::verify_ahead::VerifyAhead;
use super::{block_budget, block_members, OnDeviceLoss, StudyOptions, StudyOutcome};
use crate::config::Plan;
use crate::engine::{integrate, reference_member, Engine, EngineOutput, Precision, RunOptions, ValuesPool};
use crate::error::{QbatError, Result};
use crate::output::accumulate::StatsAccumulator;
use crate::output::manifest::write_atomic_hashed;
use crate::output::{write_f64_le, Format};
use crate::verify::{energy_floor, sample_weights, verify_indices, VerifyGroup, Worst};
use rayon::prelude::*;
use serde_json::json;
use std::time::Instant;

#[allow(clippy::too_many_arguments)]
pub(super) fn drive(
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
    // (both are n / k rounded up, for k blocks: the smaller is as evenly sized)
    let fresh_block = || opts.block_members.unwrap_or_else(|| block_members(local, n, block_budget(), opts.output.series).min(for_balance)).max(1);
    let resumed;
    let from_checkpoint = loaded.is_some();
    let (mut progress, mut acc) = match loaded {
        Some((p, a)) => {
            // A resumed run keeps the blocks it was cut into.
            if let Some(b) = opts.block_members.filter(|b| *b != p.members_per_block) {
                return Err(QbatError::invalid(
                    "--block-members",
                    format!(
                        "the interrupted run uses blocks of {} members, not {b}; leave --block-members out (or give {}) to resume it",
                        p.members_per_block, p.members_per_block
                    ),
                ));
            }
            if p.members_per_block == 0 {
                return Err(QbatError::invalid(
                    "--resume",
                    "the checkpoint has no block size (written by another version?); pass --force without --resume to start over",
                ));
            }
            // (the blocks done verified the members chosen for the run's count)
            if let Some(k) = p.verify_count.filter(|k| *k != opts.run.verify) {
                return Err(QbatError::invalid(
                    "--verify",
                    format!("the interrupted run verifies {k} members, not {}; give --verify {k} to resume it", opts.run.verify),
                ));
            }
            let asked = backend_name(opts);
            if p.requested_backend != asked && !opts.allow_mixed_backends {
                return Err(QbatError::invalid(
                    "--backend",
                    format!("the interrupted run was started with --backend {}, not {asked}; resume it with the same, or add --allow-mixed-backends to finish it on another engine (run.json then lists the engines)", p.requested_backend),
                ));
            }
            resumed = p.done.len();
            (p, Some(a))
        }
        None => {
            resumed = 0;
            let verify_count = Some(opts.run.verify);
            (Progress { fingerprint: fp, members_per_block: fresh_block(), requested_backend: backend_name(opts), verify_count, ..Default::default() }, None)
        }
    };
    // (a resume given --force keeps it for the resumes after it)
    progress.force |= opts.force;
    // A resume whose --out holds an output that its run was not started to replace: refused
    // now, not at its commit after the remaining blocks.
    if opts.resume && !progress.force && opts.out.is_dir() && crate::output::holds_files(&opts.out, &staging.dir) {
        return Err(QbatError::invalid(
            "--out",
            format!(
                "{} holds an output, and no checkpoint says the interrupted run was started with --force to replace it; pass --force to the resume to replace the qbat-gpu files in it",
                opts.out.display()
            ),
        ));
    }
    let block = progress.members_per_block;
    if from_checkpoint || opts.block_members.is_some() {
        block_fits(local, block.min(n), engines.len(), if from_checkpoint { "--resume" } else { "--block-members" })?;
    }
    let n_blocks = n.div_ceil(block);
    if progress.done.iter().any(|&b| b >= n_blocks) {
        return Err(QbatError::invalid("--resume", "the checkpoint names blocks beyond this run's members; it belongs to another run"));
    }
    if progress.requested_backend != backend_name(opts) {
        let note = format!(
            "resumed with --backend {} after --backend {} (--allow-mixed-backends): see run.json engines",
            backend_name(opts),
            progress.requested_backend
        );
        progress.requested_backend = backend_name(opts);
        crate::console::note(&note);
        progress.notes.push(note);
    }
    // A note is said once, however often the run was resumed.
    for note in &run_notes {
        keep_once(&mut progress.notes, note);
    }
    if local.steady && opts.run.verify > 0 && !progress.notes.iter().any(|n| n.starts_with("--verify skipped")) {
        progress.notes.push("--verify skipped: steady states are solved for, not integrated; steady_residual = ||L rho||_F is their check".into());
    }
    // The members --verify re-runs: chosen by the seed among this run's members; none on the
    // reference, which is the check (a resume that moves onto or off it says that the verify
    // covers only the other engine's blocks: it passed as though it covered the run).
    let on_reference = matches!(engines[0], Engine::Reference);
    let verify_idx: Vec<usize> = if opts.run.verify > 0 && !on_reference && !local.steady { verify_indices(plan.seed, n, opts.run.verify) } else { vec![] };
    if opts.run.verify > 0 && !local.steady && progress.blocks.iter().any(|b| (b.backend == "reference") != on_reference) {
        let note = "--verify covers only the blocks run on an engine other than the reference: the chosen members of the blocks run on --backend reference (the reference itself) were not re-run";
        if keep_once(&mut progress.notes, note) {
            crate::engine::say(&opts.run, note);
        }
    }
    let pb = crate::engine::progress_bar(opts.run.progress && n_blocks > 1, n as u64, "blocks");
    pb.set_position(progress.done.iter().map(|&b| (b * block..((b + 1) * block).min(n)).len() as u64).sum());
    if let Some(c) = &opts.run.control {
        c.set_total(n as u64);
        c.set_done(pb.position());
    }
    let mut run_opts = opts.run.clone();
    run_opts.progress = opts.run.progress && n_blocks == 1;
    // each absorbed block's values buffer, for a later block's engine
    let values_pool = (n_blocks > 1).then(|| std::sync::Arc::new(ValuesPool::default()));
    run_opts.values_pool = values_pool.clone();
    // one set of notes said for every worker and block: each said once
    run_opts.said = Some(run_opts.said.clone().unwrap_or_default());
    // the GPU contexts' kept read-back buffers, freed when the blocks are done (or failed)
    let read_back = crate::engine::ReleaseReadBack::of(&engines);
    let mut workers: Vec<Worker> = engines
        .into_iter()
        .map(|engine| Worker { label: engine.device_name(), engine, opts: run_opts.clone(), notes: vec![], blocks: 0, members: 0, busy: 0.0 })
        .collect();
    let pending: Vec<usize> = (0..n_blocks).filter(|b| !progress.done.contains(b)).collect();
    let mut sink = Absorber {
        local,
        opts,
        said: run_opts.said.clone().unwrap_or_default(),
        staging,
        progress: &mut progress,
        acc: &mut acc,
        verify_idx: &verify_idx,
        ns,
        pb: &pb,
        series: None,
        several_devices: workers.len() > 1,
        values_pool,
        analysis: AnalysisFeed::Off,
        pace: CheckpointPace::new(),
        verify_ahead: VerifyAhead::default(),
    };
    let slice = |b: usize| {
        let lo = b * block;
        // (with only the points its members use: the engines build every point a plan holds)
        (lo, local.slice_points(lo..(lo + block).min(n)))
    };
    // One thread per device pulls the next pending block; results are absorbed here, in
    // completion order (the accumulator is exact and order-independent, and the block files
    // are assembled in member order at the end, so the output does not depend on it). With one
    // device this overlaps the next block's integration with this block's statistics, block
    // files and checkpoint. The channel has no buffer: a worker hands its block over only when
    // the absorber takes it, so at most one block per device waits beside the one absorbed.
    let single_device = workers.len() == 1;
    // (the blocks of several devices are the session's, named by all of them)
    let devices = workers.iter().map(|w| w.label.clone()).collect::<Vec<_>>().join(" + ");
    {
        // A signal stops the blocks (the CLI's control: crate::signals); before and after
        // them it ends the process at once, as it did (a resume's checks and the finish hold
        // nothing a stop would keep).
        let stoppable = opts.run.control.as_ref().filter(|c| c.is_for_signals()).map(|c| crate::signals::stop_on_signals(c.clone()));
        let next = std::sync::atomic::AtomicUsize::new(0);
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| -> Result<()> {
            // However the loop below ends (an error, a panic), the threads stop taking work
            // before the scope waits for them.
            let _stop_on_exit = StopOnExit(&stop);
            let (tx, rx) = std::sync::mpsc::sync_channel(0);
            // (when the devices began: several devices' integration is the blocks' span since)
            let (blocks_began, mut span) = (Instant::now(), 0.0f64);
            let on_gpu = workers.iter().any(|w| matches!(w.engine, Engine::Gpu(_)));
            for w in workers.iter_mut() {
                let (tx, next, stop, pending, slice) = (tx.clone(), &next, &stop, &pending, &slice);
                // (a failure returns at once: the workers started see the receiver dropped)
                let started = crate::threads::spawn_scoped(scope, "a device's blocks", move || loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= pending.len() || stop.load(std::sync::atomic::Ordering::SeqCst) || opts.run.is_cancelled() {
                        break;
                    }
                    let b = pending[i];
                    let (lo, sub) = slice(b);
                    let t = Instant::now();
                    let r = w.compute(&sub, b, opts.on_device_loss);
                    let failed = r.is_err();
                    // the engine's name and device after the block: a lost GPU hands over to the CPU
                    let sent =
                        (b, lo, sub, r, t.elapsed().as_secs_f64(), Instant::now(), w.engine.name(), w.engine.device_name(), std::mem::take(&mut w.notes));
                    if tx.send(sent).is_err() || failed {
                        break;
                    }
                });
                started?;
            }
            drop(tx);
            // The verified members of the blocks to run: their references beside a GPU's
            // integration, on a core it leaves idle (the CPU engine's blocks take every core,
            // and already overlap the absorbed block's references with the next block's).
            // Started after the workers, so that under a thread limit it is the one left out.
            let ahead: Vec<usize> = verify_idx.iter().copied().filter(|&i| on_gpu && pending.contains(&(i / block))).collect();
            sink.verify_ahead = VerifyAhead::start(scope, local, ahead, &stop, || opts.run.is_cancelled());
            for (b, lo, sub, r, wall, ended, name, device, mut notes) in rx.iter() {
                let out = match r {
                    Ok(out) => out,
                    Err(e) => {
                        // stopped before the checkpoint's write, so that no worker takes a
                        // block meanwhile; the whole blocks absorbed before it stay done (the
                        // error is the one to report, whatever the checkpoint's write says)
                        stop.store(true, std::sync::atomic::Ordering::SeqCst);
                        let _ = sink.flush_checkpoint();
                        return Err(e);
                    }
                };
                let notes_before = sink.progress.notes.len();
                sink.progress.notes.append(&mut notes);
                // (a block a lost device handed to the CPU names the CPU)
                let device = if single_device || name != "gpu" { device.as_str() } else { devices.as_str() };
                // Several devices integrate side by side: a block's share of the integration
                // is the wall time its end adds to the blocks' span so far (their sum was the
                // devices' time, several times the run's; a mean undercounts idle devices),
                // the part of it the block spent integrating (not building its ensemble nor
                // measuring on the host, phases of their own).
                let wall = match single_device {
                    true => wall,
                    false => {
                        let end = ended.saturating_duration_since(blocks_began).as_secs_f64();
                        let added = (end - span).max(0.0);
                        span = span.max(end);
                        let overhead = out.host_measures + out.ensemble;
                        let share = if wall > 0.0 { ((wall - overhead) / wall).clamp(0.0, 1.0) } else { 0.0 };
                        added * share + overhead
                    }
                };
                match sink.absorb(b, lo, &sub, out, wall, name, device) {
                    // stopped among the block's --verify references, before any of it was
                    // kept (its notes neither: a resume that runs it again says them again);
                    // the blocks absorbed before it are checkpointed below
                    Err(QbatError::Cancelled) => {
                        sink.progress.notes.truncate(notes_before);
                        break;
                    }
                    absorbed => absorbed?,
                }
            }
            Ok(())
        })?;
        // Workers stop taking blocks once the run is cancelled; the blocks absorbed stay done
        // (the cancel is the one to report, whatever the checkpoint's write says). (No signal
        // stops the run once this is asked: the finish is not stopped half-way.)
        drop(stoppable);
        if let Err(cancelled) = opts.run.check_cancelled() {
            let _ = sink.flush_checkpoint();
            return Err(cancelled);
        }
    }
    let series = sink.series.take();
    let gathered = std::mem::replace(&mut sink.analysis, AnalysisFeed::Off).into_gather();
    // the spent buffers' memory back before the finish reads the series again
    if let Some(pool) = sink.values_pool.take() {
        pool.release();
    }
    drop(read_back);
    if workers.len() > 1 {
        let per: Vec<serde_json::Value> = workers
            .iter()
            .map(|w| json!({"device": w.label, "blocks": w.blocks, "members": w.members, "busy_s": w.busy, "member_steps_per_second": w.members as f64 * local.schedule.total_steps() as f64 / w.busy.max(1e-12)}))
            .collect();
        progress.engine_plan = Some(json!({"devices": per}));
    }
    pb.finish_and_clear();
    let acc = acc.ok_or_else(|| QbatError::Numerics("no member was integrated".into()))?;
    finish(plan, local, opts, staging, series, progress, acc, block, n_blocks, resumed, setup, gathered)
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
    fn compute(&mut self, sub: &Plan, b: usize, on_loss: OnDeviceLoss) -> Result<EngineOutput> {
        let t = Instant::now();
        let mut attempt = 0;
        let out = loop {
            let res = match crate::faults::device_fault(b, attempt).filter(|_| matches!(self.engine, Engine::Gpu(_))) {
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
                    crate::console::note(&note);
                    self.notes.push(note);
                }
                Err(QbatError::DeviceLost(why)) if on_loss == OnDeviceLoss::Cpu && matches!(self.engine, Engine::Gpu(_)) => {
                    let note = format!("the GPU {} was lost in block {b} ({why}); its blocks from {b} on were finished on the CPU engine (f64)", self.label);
                    crate::console::note(&note);
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

/// Add `note` to a run's notes unless they hold it; whether it was new.
pub(super) fn keep_once(notes: &mut Vec<String>, note: &str) -> bool {
    let new = !notes.iter().any(|n| n == note);
    if new {
        notes.push(note.to_string());
    }
    new
}

/// Refuse blocks of `members` that the available memory cannot hold (given by hand, or a
/// checkpoint's, resumed where there is less): allocated, they would abort the process. One
/// block is integrated on each of the `devices` while the one before is absorbed
/// (`block_bytes_per_member` counts two blocks).
fn block_fits(plan: &Plan, members: usize, devices: usize, field: &str) -> Result<()> {
    use crate::config::available_memory::{available_memory, size_need, size_text};
    let avail = available_memory();
    let need = members as f64 * super::block_bytes_per_member(plan) * (devices.max(1) + 1) as f64 / 2.0;
    if need <= avail.usable() {
        return Ok(());
    }
    let advice = if field == "--resume" { "resume it where more memory is available" } else { "give fewer members a block, or leave --block-members out" };
    Err(QbatError::TooLarge {
        field: field.into(),
        reason: format!(
            "blocks of {members} members need about {}, more than 60% of the {} available{}; {advice}",
            size_need(need),
            size_text(avail.bytes),
            avail.under()
        ),
    })
}

/// Sets its flag when dropped.
struct StopOnExit<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for StopOnExit<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Folds finished blocks into the run: health, statistics, verify, block files, checkpoint.
struct Absorber<'a> {
    local: &'a Plan,
    opts: &'a StudyOptions,
    /// The notes said so far, shared with the workers' engines.
    said: crate::engine::SaidNotes,
    staging: &'a Staging,
    progress: &'a mut Progress,
    acc: &'a mut Option<StatsAccumulator>,
    verify_idx: &'a [usize],
    ns: usize,
    pb: &'a indicatif::ProgressBar,
    /// The run's series file, opened at the first block absorbed (`--series`).
    series: Option<SeriesFile>,
    /// Whether several devices run the blocks (they may finish out of member order).
    several_devices: bool,
    /// Where an absorbed block's values go, for a later block's engine.
    values_pool: Option<std::sync::Arc<ValuesPool>>,
    /// The analysis, taking each block as it lands (started at the first block).
    analysis: AnalysisFeed,
    /// When the checkpoint is written.
    pace: CheckpointPace,
    /// The `--verify` references computed ahead.
    verify_ahead: VerifyAhead,
}

impl Absorber<'_> {
    fn flush_checkpoint(&mut self) -> Result<()> {
        let spent = self.pace.flush(&self.staging.dir, self.progress, self.acc.as_ref())?;
        self.progress.timings.streaming += spent;
        Ok(())
    }

    fn absorb(&mut self, b: usize, lo: usize, sub: &Plan, out: EngineOutput, wall: f64, backend: &str, device: &str) -> Result<()> {
        // the engine that actually ran the block, where it is not the one chosen
        let ran_on = out.ran_on.clone();
        let (backend, device) = match &ran_on {
            Some((b, d)) => (*b, d.as_str()),
            None => (backend, device),
        };
        let (local, opts, staging, ns) = (self.local, self.opts, self.staging, self.ns);
        let t_absorb = Instant::now();
        let hi = lo + sub.members.len();
        // The references of the block's verified members first, before any of the block is
        // kept: a run stopped meanwhile (a signal, Python's cancel) stops before the next
        // reference it would compute here (a cavity member's takes seconds) and leaves the block
        // out whole, for --resume to run again. Once they are done, the block is absorbed whole.
        let tv = Instant::now();
        let mut references = Vec::new();
        for &i in self.verify_idx.iter().filter(|&&i| (lo..hi).contains(&i)) {
            // (one computed ahead is taken, waiting at most for the one under way)
            let ahead = if out.measures == local.measures { self.verify_ahead.take(i) } else { None };
            let reference = match ahead {
                Some(r) => r,
                None => {
                    opts.run.check_cancelled()?;
                    reference_member(local, &local.members[i], &out.measures).0
                }
            };
            references.push((i, reference));
        }
        let mut t_verify = tv.elapsed().as_secs_f64();
        let progress = &mut *self.progress;
        // The measure columns are fixed by the first block.
        let names: Vec<String> = out.measures.iter().map(|m| m.name().to_string()).collect();
        if progress.measures.is_empty() {
            progress.measures = names.clone();
            progress.engine_plan = out.engine_plan.clone();
            progress.backend = backend.into();
            progress.device = device.into();
        } else if progress.measures != names {
            return Err(QbatError::Numerics(format!("block {b} returned the measures {names:?}, not {:?}", progress.measures)));
        } else {
            // blocks of another engine or device (a resume on another, a device lost to the
            // CPU): run.json says each, as a merge of such shards does, not the first block's
            progress.backend = super::merged_engines::mixed_with(&progress.backend, backend);
            progress.device = super::merged_engines::mixed_with(&progress.device, device);
        }
        // Every block's notes, once each (a resumed run's engine, or the CPU after a lost
        // device, may have its own; the engine said them); a fallback, said here, with the
        // engine plan it left.
        for note in &out.notes {
            keep_once(&mut progress.notes, note);
        }
        for note in &out.fallbacks {
            // (said in this session even where a resumed run's checkpoint holds it)
            self.said.say(note);
            if keep_once(&mut progress.notes, note) {
                progress.engine_plan = out.engine_plan.clone();
            }
        }
        // (the least precise of the blocks': what the run's values hold to, and what the report
        // says beside a mixed backend; run.json names both)
        progress.precision = Some(match progress.precision {
            Some(Precision::F32) => Precision::F32,
            _ => out.precision,
        });
        let nm = out.measures.len();
        let nb = hi - lo;
        let mut out = out;
        if let Some(i) = crate::faults::nan_member().and_then(|id| sub.members.iter().position(|m| m.id == id)) {
            out.values[(i * ns + ns / 2) * nm..(i + 1) * ns * nm].fill(f64::NAN);
        }
        if opts.output.series && self.series.is_none() {
            // A resumed run's file holds its finished blocks (checked when it was loaded).
            let blocks_dir = staging.blocks();
            let resumed = progress.blocks.iter().any(|r| r.values.is_some());
            // The analysis takes the blocks as they land where they come in order from the first.
            if opts.analyze && lo == 0 && !resumed && !self.several_devices {
                self.analysis = AnalysisFeed::start(&names, local.members.len(), ns, out.precision);
            }
            // A csv series is appended block by block where the blocks come in order from the
            // first (`csv_series`).
            let csv = (opts.output.format == Format::Csv && !resumed && !self.several_devices)
                .then(|| {
                    let measures: Vec<&str> = names.iter().map(String::as_str).collect();
                    // (one that cannot be started here is written at the end)
                    CsvSeries::create(&blocks_dir, local.members.iter().map(|m| m.id).collect(), local.schedule.times.clone(), &measures).ok()
                })
                .flatten();
            // Read again at the end: for a csv series not appended, by the plots drawn from it,
            // whole for its hash where the blocks may not land in order, by an analysis not fed,
            // and for the 2-D histograms of a fed analysis whose gathered columns will not hold
            // every member (a capped correlation set).
            let read_again = (opts.output.format == Format::Csv && csv.is_none())
                || (opts.output.plots && crate::output::plots::plots_read_series(local.model.name(), local.members.len(), ns, &names, !opts.analyze))
                || resumed
                || self.several_devices
                || (opts.analyze && !self.analysis.is_on())
                || (opts.output.plots && self.analysis.is_capped());
            self.series = Some(
                if resumed {
                    // (rows appended before the interruption are not continued: the finish
                    // writes the csv from the file; their space is given back now)
                    let _ = std::fs::remove_file(blocks_dir.join(CSV_FILE));
                    SeriesFile::open(&blocks_dir, local.members.len(), ns, nm).map_err(|why| QbatError::invalid("--resume", why))?
                } else {
                    SeriesFile::create(&blocks_dir, local.members.len(), ns, nm, opts.output.format == Format::Npy)?
                }
                .reading_back(read_again, self.analysis.is_on())
                .with_csv(csv),
            );
        }
        // The block's files beside its health and statistics (the checkpoint below names the
        // files), so that the disk's waits overlap the CPU's work:
        // - a thread writes the values durably into the series (hashing them beside the write)
        //   and the states into a block file, from the start: neither waits on the health;
        // - this thread finds each member's health, then folds the healthy ones into the
        //   statistics;
        // - a third writes the summary rows, once the health is known.
        // The analysis takes the block on the files' thread once the file's bytes of it were
        // found to be its values, with the members the health includes.
        let series = self.series.as_ref();
        let feed = &mut self.analysis;
        let feed_on = feed.is_on();
        let a = self.acc.get_or_insert_with(|| StatsAccumulator::new(ns, nm));
        let tag = &format!("{b:06}");
        // Every core for the health where no other block is being integrated (this is the
        // last of the run's blocks to absorb: the others are done, in this session or before
        // a resume); else this thread alone, beside the next block's integration.
        let blocks = local.members.len().div_ceil(progress.members_per_block.max(1));
        let health_on_every_core = progress.done.len() + 1 >= blocks;
        let (block_values, block_states, peaks, precision) = (&out.values[..], &out.states, &out.peaks, out.precision);
        let (values, states, summary) = std::thread::scope(|scope| -> Result<_> {
            let (include_tx, include_rx) = std::sync::mpsc::sync_channel::<Vec<bool>>(1);
            if crate::faults::thread_refused(b) {
                return Err(crate::threads::unavailable("the block's files", "injected by QBAT_INJECT_FAULT"));
            }
            let files = crate::threads::spawn_scoped(scope, "the block's files", move || -> Result<_> {
                let values = series.map(|s| s.write_block(lo, block_values)).transpose()?;
                let states = match (local.save_states, block_states) {
                    (None, _) => None,
                    (Some(_), Some(st)) => {
                        Some(write_atomic_hashed(&staging.blocks().join(format!("{tag}.states")), |w| write_f64_le(w, st.iter().flat_map(|z| [z.re, z.im])))?)
                    }
                    (Some(_), None) => return Err(QbatError::Numerics(format!("block {b}: the {backend} engine returned no states for --save-states"))),
                };
                if feed_on {
                    // (no health received: this thread's caller is unwinding; nothing to take)
                    if let Ok(include) = include_rx.recv() {
                        feed.take(lo, block_values, ns * nm, &include, precision, values.as_ref().is_some_and(|(_, checked)| *checked));
                    }
                }
                Ok((values.map(|(entry, _)| entry), states))
            })?;
            let member = |i: usize| member_health(&block_values[i * ns * nm..(i + 1) * ns * nm], &out.measures, precision);
            let health: Vec<Health> = if health_on_every_core { (0..nb).into_par_iter().map(member).collect() } else { (0..nb).map(member).collect() };
            let include: Vec<bool> = health.iter().map(|h| *h == Health::Ok).collect();
            if feed_on {
                // (a files' thread that failed before taking it has dropped its receiver)
                let _ = include_tx.send(include.clone());
            }
            drop(include_tx);
            for (i, h) in health.iter().enumerate() {
                progress.health.add(sub.members[i].id, *h);
            }
            let summary_of = move |health: Vec<Health>| {
                move || write_atomic_hashed(&staging.blocks().join(format!("{tag}.summary")), |w| summary_rows(w, local, sub, peaks, &health))
            };
            // (where no thread can be had, written here after the statistics)
            let summary = std::thread::Builder::new().spawn_scoped(scope, summary_of(health.clone())).map_err(|_| summary_of(health));
            fock_flags(local, &out.measures, block_values, sub, ns, &mut progress.fock);
            a.add_block(block_values, &include);
            // both joined, and either's panic raised, before either's error is returned (the
            // files' first): a panic is never dropped for an error
            let files = files.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            let summary = match summary {
                Ok(thread) => thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(write_here) => write_here(),
            };
            let (values, states) = files?;
            let summary = summary?;
            Ok((values, states, summary))
        })?;
        // verify the chosen members of this block against their references
        let tv = Instant::now();
        let mut weight = None;
        for (i, r) in references {
            let m = &local.members[i];
            let g = match progress.verify.iter().position(|g| g.precision == out.precision) {
                Some(g) => g,
                None => {
                    progress.verify.push(VerifyGroup { precision: out.precision, members: vec![], worst: Worst::new(nm) });
                    progress.verify.len() - 1
                }
            };
            let row = ns * nm;
            let floor = energy_floor(&local.systems[m.point], &out.measures);
            let weight = weight.get_or_insert_with(|| sample_weights(&out.measures, &local.schedule.times));
            progress.verify[g].worst.fold(m.id, &out.values[(i - lo) * row..(i - lo + 1) * row], &r, weight, &floor);
            progress.verify[g].members.push(m.id);
        }
        t_verify += tv.elapsed().as_secs_f64();
        // the checkpoint that names the block's files
        progress.blocks.push(BlockRecord { block: b, members: nb, values, states, summary, backend: backend.into(), precision: out.precision });
        progress.timings.ensemble += out.ensemble;
        // (the ensemble, built inside the engine's call, is a phase of its own)
        progress.timings.integrate += (wall - out.host_measures - out.ensemble).max(0.0);
        progress.timings.host_measures += out.host_measures;
        progress.timings.verify += t_verify;
        progress.timings.member_steps += nb as f64 * local.schedule.total_steps() as f64;
        progress.done.push(b);
        progress.timings.streaming += (t_absorb.elapsed().as_secs_f64() - t_verify).max(0.0);
        progress.timings.streaming += self.pace.after_block(&staging.dir, progress, a)?;
        if let Some(pool) = &self.values_pool {
            pool.put(std::mem::take(&mut out.values));
        }
        self.pb.inc(nb as u64);
        if let Some(d) = crate::faults::block_delay() {
            std::thread::sleep(d);
        }
        Ok(())
    }
}

/// `--backend` as named on the command line.
fn backend_name(opts: &StudyOptions) -> String {
    serde_json::to_value(opts.run.backend).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}
