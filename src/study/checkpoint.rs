//! The checkpoint in a streamed run's staging directory (`staging.rs`): done blocks, verify
//! deviations, timings, and the statistics accumulator where the series does not hold the
//! values to rebuild it from, replaced atomically after a block when it is due
//! (`CheckpointPace`), and the block files it names.

use super::fingerprint_difference;
use super::health::{member_health, FockTailFlags, Health, HealthCounts};
use super::series_file::{SeriesFile, SERIES_FILE};
use crate::engine::Precision;
use crate::error::{QbatError, Result};
use crate::measures::Measure;
use crate::output::accumulate::StatsAccumulator;
use crate::output::manifest::{check_file, write_atomic_hashed, FileEntry};
use crate::output::{write_atomic, SMALL_FILE_LIMIT};
use crate::plain_file::{open_regular, read_regular_bounded};
use crate::verify::VerifyGroup;
use serde::{Deserialize, Serialize};
use std::path::Path;

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
    pub(super) fn after_block(&mut self, staging: &Path, progress: &mut Progress, acc: &StatsAccumulator) -> Result<f64> {
        // (`slow-blocks`, the tests' kill after a given block, wants every block's)
        let every_block = progress.series_holds_every_block() || crate::faults::block_delay().is_some();
        if !every_block && !self.due_at(std::time::Instant::now()) {
            self.pending = true;
            return Ok(0.0);
        }
        self.write(staging, progress, acc)
    }

    fn write(&mut self, staging: &Path, progress: &mut Progress, acc: &StatsAccumulator) -> Result<f64> {
        let t = std::time::Instant::now();
        save_checkpoint(staging, progress, acc)?;
        self.last_cost = t.elapsed().as_secs_f64();
        self.last_end = Some(std::time::Instant::now());
        self.pending = false;
        Ok(self.last_cost)
    }

    /// The checkpoint of the blocks absorbed since the last one, if any (a cancelled run, or a
    /// device's error after whole blocks).
    pub(super) fn flush(&mut self, staging: &Path, progress: &mut Progress, acc: Option<&StatsAccumulator>) -> Result<f64> {
        match acc {
            Some(acc) if self.pending => self.write(staging, progress, acc),
            _ => Ok(0.0),
        }
    }
}

pub(super) fn save_checkpoint(staging: &Path, progress: &mut Progress, acc: &StatsAccumulator) -> Result<()> {
    let old = progress.generation;
    progress.generation += 1;
    // Where every finished block's values are in the series, a resume rebuilds the
    // accumulator from them (it is exact whatever the order of the blocks), so no state is
    // written: the state grows with the run, and was written again after every block.
    progress.stats_state = match progress.series_holds_every_block() {
        true => None,
        false => {
            let sp = staging.join(format!("stats-state-{}.bin", progress.generation));
            Some(write_atomic_hashed(&sp, |w| acc.write_to(w))?)
        }
    };
    let text = serde_json::to_string(&progress).map_err(|e| QbatError::Numerics(format!("checkpoint: {e}")))?;
    let raw = serde_json::value::RawValue::from_string(text).map_err(|e| QbatError::Numerics(format!("checkpoint: {e}")))?;
    let sealed = Sealed { blake3: blake3::hash(raw.get().as_bytes()).to_hex().to_string(), progress: &raw };
    let ck = staging.join("checkpoint.json");
    write_atomic(&ck, |w| serde_json::to_writer(&mut *w, &sealed).map_err(std::io::Error::other))?;
    let _ = std::fs::remove_file(staging.join(format!("stats-state-{old}.bin")));
    Ok(())
}

/// Read and check a checkpoint before any work: its own hash, the statistics state and every
/// finished block's files (size and BLAKE3), and that its blocks are this run's. Anything
/// damaged, missing or edited is an error naming the file, with the way to start over.
/// A statistics state rebuilt from the series reads it in pieces of at most `piece_bytes` (or
/// one member).
pub(super) fn load_checkpoint(
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
    // a verify group holds one worst member's deviation per measure (the report folds into
    // them), each finite or +inf, never negative; and its scale, finite and not negative, its
    // id, among the group's members and only beside its scale, and the largest deviation of any,
    // at least the worst member's, one a measure where it has them (an older build's has none,
    // or scales alone)
    let one_each = |len: usize| len == 0 || len == measures.len();
    let deviation = |d: &f64| !d.is_nan() && *d >= 0.0;
    let bad = |g: &VerifyGroup| {
        let w = &g.worst;
        w.max.len() != measures.len()
            || !w.max.iter().all(deviation)
            || !one_each(w.scale.len())
            || w.scale.iter().any(|x| !x.is_finite() || *x < 0.0)
            || !one_each(w.member.len())
            || (!w.member.is_empty() && w.scale.is_empty())
            || w.member.iter().flatten().any(|id| !g.members.contains(id))
            || !one_each(w.largest.len())
            || !w.largest.iter().all(deviation)
            || (!w.largest.is_empty() && w.largest.iter().zip(&w.max).any(|(l, m)| l < m))
    };
    if p.verify.iter().any(bad) {
        return Err(damaged(&ck, "its --verify deviations do not match its measures and verified members".into()));
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
    if let Some((_, healthy)) = rebuilt.as_ref().filter(|(_, healthy)| *healthy != p.health.ok) {
        return Err(damaged(
            &ck,
            format!("it counts {} healthy members, but its finished blocks' values in {} hold {healthy}", p.health.ok, series_path.display()),
        ));
    }
    progress_holds_together(&p).map_err(|why| damaged(&ck, why))?;
    if let Some((acc, _)) = rebuilt {
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

/// What a checkpoint's progress says beyond its verify figures, checked as input (a forgery
/// sealed again passes the seal): its health counts every finished block's members once, its
/// flagged ids no more than it flags; its timings are seconds and member-steps, finite and not
/// negative; each block's engine is one of qbat-gpu's. Err: why not.
fn progress_holds_together(p: &Progress) -> std::result::Result<(), String> {
    let finished: u64 = p.blocks.iter().map(|b| b.members as u64).sum();
    let h = &p.health;
    let counted = [h.nonfinite, h.trace, h.nonpositive].into_iter().try_fold(h.ok, u64::checked_add);
    if counted != Some(finished) || h.flagged_ids.len() as u64 > h.flagged() {
        return Err(format!("its health counts do not add up to the {finished} members of its finished blocks"));
    }
    let t = &p.timings;
    if [t.ensemble, t.integrate, t.host_measures, t.verify, t.streaming, t.member_steps].iter().any(|x| !x.is_finite() || *x < 0.0) {
        return Err("its timings are not finite and non-negative".into());
    }
    match p.blocks.iter().find(|b| !["gpu", "cpu", "reference"].contains(&b.backend.as_str())) {
        Some(b) => Err(format!("block {} names the engine '{}'", b.block, crate::error::shown_line(&b.backend))),
        None => Ok(()),
    }
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
        let (staging, blocks) = (dir.path(), dir.path().join("blocks"));
        let (members, ns, nm) = (4, 3, 2);
        let measures = vec!["energy_b".to_string(), "trace_error".to_string()];
        let series = SeriesFile::create(&blocks, members, ns, nm, true).unwrap();
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
                let summary = write_atomic_hashed(&blocks.join(format!("{b:06}.summary")), |w| w.write_all(b"summary rows\n")).unwrap();
                progress.blocks.push(BlockRecord { block: b, members: 2, values: Some(entry), states: None, summary, backend: "cpu".into(), precision });
                progress.done.push(b);
            }
            let ok = healthy.iter().filter(|&&h| h).count() as u64;
            progress.health.ok = ok;
            progress.health.trace = members as u64 - ok;
            // the accumulator is not written: the series holds the values
            save_checkpoint(staging, &mut progress, &StatsAccumulator::new(ns, nm)).unwrap();
            assert!(progress.stats_state.is_none());
            let mut expected = StatsAccumulator::new(ns, nm);
            expected.add_block(&values, &healthy);
            // a block read whole, or a member at a time
            for piece_bytes in [1 << 20, 1] {
                let (_, rebuilt) = load_checkpoint(staging, members, ns, &fp, "out", piece_bytes).unwrap();
                assert_eq!(bytes(&rebuilt), bytes(&expected), "{precision:?}, pieces of {piece_bytes} bytes");
                assert_eq!(rebuilt.cell(0, 0).n, ok);
            }
            // a checkpoint counting the other precision's healthy members is refused
            progress.health.ok = 6 - ok;
            save_checkpoint(staging, &mut progress, &StatsAccumulator::new(ns, nm)).unwrap();
            let err = load_checkpoint(staging, members, ns, &fp, "out", 1 << 20).unwrap_err().to_string();
            assert!(err.contains("checkpoint.json") && err.contains("healthy members"), "{err}");
        }
    }
}
