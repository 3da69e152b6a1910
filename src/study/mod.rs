//! The streamed run driver behind `qbat-gpu run` and the default study.
//!
//! Members are integrated block by block (a block is the unit of checkpointing, not of the
//! device: each engine chunks a block as its limits require). After each block
//! - the ensemble statistics are folded into an exactly mergeable accumulator
//!   (`output::accumulate`), leaving out members flagged unhealthy;
//! - the block's series (raw f64) is written durably in place into the run's series file, and
//!   its summary rows into a block file, under the staging directory `.DIR.partial/blocks/`;
//! - the checkpoint (done blocks, the accumulator, verify deviations, timings) is replaced
//!   atomically when due (`checkpoint::CheckpointPace`), so a killed run continues with
//!   `--resume DIR`.
//!
//! Host memory is bounded by one block (its results and the engine's work space) plus the
//! accumulator, whatever the ensemble size; the block size comes from a memory budget and the
//! results' size (`block_members`).
//! At the end the final files are assembled from the blocks in member order, and the staging
//! directory is renamed into place. A shard (`--shard K/N`) runs members
//! [K M / N, (K + 1) M / N) with the same per-member seeds, and keeps `stats-state.bin` so
//! that `qbat-gpu merge` can combine shards exactly.

mod analysis_feed;
mod checkpoint;
mod csv_series;
mod devices;
mod direct_write;
mod drive;
mod finish;
pub mod health;
pub mod merge;
mod merge_checks;
mod merged_engines;
mod merged_verify;
mod series_file;
mod staging;
mod verify_ahead;

pub use finish::{summary_header, summary_rows};
pub use health::{
    fock_flags, fock_tail_warnings, health_tolerance, member_health, FockTailCheck, FockTailFlags, FockTailRecord, Health, HealthCounts, HEALTH_CODES,
};
pub use staging::staging_dir;

use crate::config::Plan;
use crate::engine::{resolve_backend, RunOptions};
use crate::error::{QbatError, Result};
use crate::output::{self, OutputOptions};
use devices::engines_for;
use drive::drive;
use serde::{Deserialize, Serialize};
use serde_json::json;
use staging::open_staging;
use std::path::PathBuf;
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
        Shard::checked(index, count, s)
    }
}

impl Shard {
    /// Shard `index` of `count`, or why not, with the value shown as `given` (as its caller
    /// wrote it: the CLI's `K/N`, Python's `(k, n)`).
    pub fn checked(index: usize, count: usize, given: &str) -> std::result::Result<Shard, String> {
        if count == 0 {
            return Err(format!("the shard count N of K/N must be at least 1, got {given}"));
        }
        if index >= count {
            return Err(format!("the shard index K of K/N must be in 0..{count} (0-based), got {index}"));
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    /// As `--shard` takes it: `K/N`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Member indices of this shard: [K M / N, (K + 1) M / N).
    pub fn range(&self, members: usize) -> std::ops::Range<usize> {
        crate::config::shard_range(self.index, self.count, members)
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
    /// Members per block (None: `block_members`).
    pub block_members: Option<usize>,
    pub on_device_loss: OnDeviceLoss,
    /// `--devices all` or adapter names (comma-separated): blocks spread across the devices.
    pub devices: Option<String>,
    /// `--allow-mixed-backends`: a resume may finish the run on another engine.
    pub allow_mixed_backends: bool,
    /// Analyse the series before the commit (`analyze` with its default pairs: capacity_b
    /// against each resource), beside the plots; its 2-D histograms are counted in its own
    /// pass over the series. The default study does. It needs capacity_b with a resource among
    /// the measures (checked before any block runs); without a series (`output.series` false)
    /// it is left out, and run.json's notes say so.
    pub analyze: bool,
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
    /// The analysis, when `StudyOptions::analyze` asked for one.
    pub analysis: Option<crate::analyze::Analysis>,
    /// The note (in run.json's notes) that the analysis asked for was not computed: no series
    /// was written, or it did not fit the memory left at the run's end (`finish`).
    pub analysis_skipped: Option<String>,
}

/// A shard's note where every one of its members was flagged unhealthy (the unsharded run's
/// error, which `merge` raises where it holds for the whole run); not carried into a merge.
pub const SHARD_ALL_UNHEALTHY: &str = "every member of this shard was flagged unhealthy";

/// How the run's note (in run.json, and printed with the others) begins where the analysis
/// asked for was left out (`StudyOutcome::analysis_skipped`).
pub const ANALYSIS_LEFT_OUT: &str = "the capacity_b correlations were not computed";

/// The default study's analysis of the output assembled in `dir` (its series there, or the
/// columns `gathered` as the blocks landed; a run's end, a merge), decided before run.json is
/// written: its options, the memory checked once, against `check` (`MemoryCheck::Done` in
/// the options returned), and where it does not fit, or no series was written (`series`
/// false), the note that says so, naming `out` for `analyze` later. The `analysis-short`
/// fault leaves no memory.
fn plan_analysis(
    dir: &std::path::Path,
    gathered: Option<&crate::analyze::Gather>,
    series: bool,
    plots: bool,
    check: crate::analyze::MemoryCheck,
    out: &std::path::Path,
) -> Result<(crate::analyze::AnalyzeOptions, Option<String>)> {
    use crate::analyze::{memory_left_for, AnalyzeOptions, MemoryCheck};
    if !series {
        return Ok((AnalyzeOptions::default(), Some(format!("{ANALYSIS_LEFT_OUT}: no series was written (--series false)"))));
    }
    let memory_check = if crate::faults::is_injected(crate::faults::Fault::AnalysisShort) { MemoryCheck::NoneLeft } else { check };
    let analyze = AnalyzeOptions { plots, memory_check, ..Default::default() };
    let advice = format!("run `qbat-gpu analyze {}` where more is left, or with a lower --max-members", out.display());
    let left_out = memory_left_for(dir, gathered, &analyze, &advice)?.err().map(|why| format!("{ANALYSIS_LEFT_OUT}: {why}"));
    Ok((AnalyzeOptions { memory_check: MemoryCheck::Done, ..analyze }, left_out))
}

/// What must match for a checkpoint or shard to belong to this run.
pub fn fingerprint(plan: &Plan, opts: &StudyOptions, members_total: usize) -> serde_json::Value {
    let mut fp = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "config": plan.config_json,
        "seed": plan.seed,
        "members": members_total,
        "samples": plan.schedule.times.len(),
        "measures": plan.measures.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "precision": opts.run.precision,
        "format": opts.output.format,
        "series": opts.output.series,
        "states": plan.save_states.map(|s| s.name()),
    });
    // The cutoff as run: `--auto-fock` sets it after the config is read, so the config alone
    // does not say it. (Only where there is one, so that the fingerprints of other models stay
    // as they were.)
    if let Some(n_fock) = plan.n_fock() {
        fp["n_fock"] = json!(n_fock);
    }
    // The window edges that end segments: a run from before they did (its steps straddled
    // them) is not resumed or merged with one from after. (Only where there are any.)
    if !plan.schedule.edges.is_empty() {
        fp["window_edges"] = json!(plan.schedule.edges);
    }
    fp
}

/// Which field of two fingerprints differs first.
pub fn fingerprint_difference(a: &serde_json::Value, b: &serde_json::Value) -> Option<String> {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return Some("fingerprint".into());
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().find(|k| a.get(*k) != b.get(*k)).cloned()
}

/// Members per block: ceil(members / k) for k blocks, as many as keep a block's results (and
/// two-qubit states for the eigen measures) within `budget` bytes, and at least as many as the
/// results fill `PIPELINE_MIN_BLOCK_BYTES`, up to `PIPELINE_BLOCKS`, for a run that writes a
/// series (`with_series`). With several blocks each block's integration overlaps the previous
/// one's absorption (statistics, series write, checkpoint), and only the last block's is left
/// exposed; a small run stays one block, as each block adds its own syncs and hand-over.
/// Without a series the absorption is mostly the statistics and the checkpoint of their state
/// (tens of MB for the main job): more blocks would only write it more often.
pub fn block_members(plan: &Plan, members: usize, budget: f64, with_series: bool) -> usize {
    let per_member = block_bytes_per_member(plan);
    let members = members.max(1);
    let for_budget = members.div_ceil(((budget / per_member) as usize).max(1));
    let for_pipeline = if with_series { ((members as f64 * per_member / PIPELINE_MIN_BLOCK_BYTES) as usize).min(PIPELINE_BLOCKS) } else { 1 };
    members.div_ceil(for_budget.max(for_pipeline).max(1))
}

/// What a member costs in a block: its results, twice over, and its entry.
pub fn block_bytes_per_member(plan: &Plan) -> f64 {
    let keeps_states = plan.measures.iter().any(|m| m.needs_eigensolve());
    let saved_dim = plan.save_states.map_or(0, |s| crate::measures::saved::saved_dim(plan.space, s));
    512.0 + crate::config::result_bytes_per_member(plan.space, plan.schedule.times.len(), plan.measures.len(), keeps_states, saved_dim)
}

/// The most blocks a run is cut into for the overlap alone (the budget may need more).
const PIPELINE_BLOCKS: usize = 4;

/// The results that make one more block for the overlap.
const PIPELINE_MIN_BLOCK_BYTES: f64 = 64.0 * 1048576.0;

/// The memory budget of one block: a quarter of the available memory, at most 1 GiB.
pub fn block_budget() -> f64 {
    (0.25 * crate::config::available_memory_bytes()).min(2f64.powi(30))
}

/// Run a plan, streamed, into `opts.out`.
pub fn run_study(plan: &Plan, opts: &StudyOptions) -> Result<StudyOutcome> {
    let t0 = Instant::now();
    crate::faults::check_env()?;
    let total = plan.ensemble_size;
    let range = opts.shard.map(|s| s.range(total)).unwrap_or(0..total);
    if range.is_empty() {
        return Err(QbatError::invalid(
            "--shard",
            format!("shard {} of {total} members is empty; use fewer shards", opts.shard.map(|s| s.to_string()).unwrap_or_default()),
        ));
    }
    // The plan holds every member, or (parsed with the shard) only this shard's.
    let local = if plan.members.len() == total {
        plan.slice(range.clone())
    } else if plan.members.first().map(|m| m.id as usize) == Some(range.start) && plan.members.len() == range.len() {
        plan.clone()
    } else {
        return Err(QbatError::invalid("--shard", "the plan was built for another shard"));
    };
    if opts.analyze && opts.output.series {
        let names: Vec<String> = plan.measures.iter().map(|m| m.name().to_string()).collect();
        let defaults = crate::analyze::AnalyzeOptions::default();
        let pairs = crate::analyze::resolve_pairs(&names, &defaults)?;
        // The analysis at the end, checked now rather than after the whole run (the tolerance
        // does not change what it holds).
        let layout = crate::analyze::Layout::new(&names, pairs, (local.members.len(), 0), local.schedule.times.len(), defaults.max_members, 0.0)
            .map_err(|why| QbatError::invalid("analyze", why))?;
        layout.check_fits(false, defaults.memory_check, "time.samples", "use fewer sample times, or --series false (no analysis)")?;
    }
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
    for e in &engines {
        crate::engine::refuse_early(&local, &opts.run, e)?;
    }
    // What the commit would refuse after the whole run, said now: in an old output (a
    // directory that is not one is refused by `open_staging`), a file of a name the run writes
    // (or, for the plots and the analysis, may write) that its manifest does not list, or a
    // listed file edited since.
    // (where a commit into it was cut short, its commit finishes or undoes that first, under
    // the directory's lock, and checks the files then)
    let early = opts.force && !opts.resume && opts.out.is_dir() && !crate::output::recover::has_traces(&opts.out);
    let old = if early { crate::output::manifest::Manifest::read(&opts.out)? } else { None };
    if let Some(old) = old {
        // (each name once: a file whose identity changed, a copied output's, is hashed here and
        // again at the commit, not more)
        let names: std::collections::BTreeSet<String> = finish::files_written(&local, opts)
            .into_iter()
            .map(str::to_string)
            .chain(finish::names_it_may_draw(&local, opts))
            .chain(old.files.into_iter().map(|f| f.name))
            .collect();
        crate::output::manifest::check_replaceable(&opts.out, &names.into_iter().collect::<Vec<_>>())?;
    }
    let (staging, loaded) = open_staging(opts, &fp, local.members.len(), local.schedule.times.len(), &mut notes)?;
    // (a signal that ends the process before the first checkpoint removes it)
    let _watched = crate::output::uncommitted::watch_run_staging(&staging.dir, staging::remove_unless_checkpointed);
    if let Some(delay) = crate::faults::setup_delay() {
        std::thread::sleep(delay);
    }
    match drive(plan, &local, opts, &staging, loaded, fp, notes, engines, t0) {
        Ok(outcome) => Ok(outcome),
        // (the message itself, not the error's display: that would give its prefix twice)
        Err(QbatError::DeviceLost(lost)) if std::fs::symlink_metadata(staging.dir.join("checkpoint.json")).is_ok() => Err(QbatError::DeviceLost(format!(
            "{lost}; the finished blocks are kept: continue with --resume {} (add --backend cpu --allow-mixed-backends to finish on the CPU)",
            opts.out.display()
        ))),
        // lost before any block was kept: nothing to resume, and nothing left in the way
        Err(QbatError::DeviceLost(lost)) => {
            let _ = staging::remove_staging(&staging.dir);
            Err(QbatError::DeviceLost(format!("{lost}; no block had finished, so nothing is kept: run it again (--backend cpu runs it on the CPU)")))
        }
        Err(e) => {
            // A run that failed before its first checkpoint, or for a reason a resume would only
            // repeat (numerics), leaves nothing; otherwise the checkpoint is kept. A resumed run's
            // checkpoint is never removed here.
            // (a resume of a directory with no checkpoint, a run stopped in its setup, has
            // nothing to keep either)
            let checkpointed = std::fs::symlink_metadata(staging.dir.join("checkpoint.json")).is_ok();
            if !checkpointed || (!opts.resume && matches!(e, QbatError::Numerics(_))) {
                let _ = staging::remove_staging(&staging.dir);
            } else if !(opts.resume && e.exit_code() == 2 && !matches!(e, QbatError::Threads(_))) {
                // (a resume refused as bad input touched nothing: its error says it all; a
                // thread limit can stop it after blocks were added)
                crate::console::note(&format!("the checkpointed blocks are kept in {}: continue with --resume {}", staging.dir.display(), opts.out.display()));
            }
            Err(e)
        }
    }
}

/// Peak resident memory of this process (VmHWM, Linux), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::{block_members, staging};

    /// A bloch-charger plan of `members` members, 2001 samples and 6 measures: 2001 x 6 f64
    /// twice over plus 512 B, 192,608 B a member as blocks count it.
    fn plan(members: usize) -> crate::config::Plan {
        let text = format!(
            "model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = 1.0\ngamma = 0.05\n[initial]\nrandom = \"bloch\"\n[time]\ndt = 0.01\nt_end = 20.0\nsamples = 2001\n[ensemble]\nsize = {members}\nseed = 1\n[output]\nmeasures = [\"energy_b\", \"ergotropy_b\", \"capacity_b\", \"coherence_l1\", \"purity\", \"trace_error\"]\n"
        );
        crate::config::parse_plan(&text, &Default::default()).expect("a valid plan")
    }

    #[test]
    fn blocks_are_as_many_as_the_budget_or_the_overlap_needs_and_evenly_sized() {
        let member = 512.0 + 2001.0 * 6.0 * 8.0 * 2.0;
        let gib = 2f64.powi(30);
        // (members, budget) -> members per block
        let cases = [
            // the overlap: 1500 members fill 4.3 x 64 MiB, 800 fill 2.3, 300 less than one
            ((1500, gib), 375),
            ((800, gib), 400),
            ((300, gib), 300),
            // the budget: 100 members' worth makes 15 blocks of 100; 160 members' worth makes
            // 10 blocks, evenly of 150 (not 9 of 160 and one of 60)
            ((1500, 100.0 * member), 100),
            ((1500, 160.0 * member), 150),
            // a budget below one member: a member a block
            ((1500, 1000.0), 1),
            // one member, or none: one block
            ((1, gib), 1),
            ((0, gib), 1),
        ];
        for ((members, budget), want) in cases {
            assert_eq!(block_members(&plan(members.max(1)), members, budget, true), want, "{members} members, a budget of {budget} B");
        }
        // without a series, the budget alone: 1500 members in one block, or in 10 of 150
        assert_eq!(block_members(&plan(1500), 1500, gib, false), 1500);
        assert_eq!(block_members(&plan(1500), 1500, 160.0 * member, false), 150);
    }

    /// A staging directory that cannot be made whole (here: its mark's path is past the
    /// system's limit, where the directory's own path fits) leaves nothing beside it.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_staging_directory_that_cannot_be_made_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let mut d = root.path().to_path_buf();
        let fresh = |d: &std::path::Path| d.as_os_str().len() + format!("/.o.partial.new-{}", std::process::id()).len();
        while fresh(&d) + 202 < 4089 {
            d.push("d".repeat(100));
            std::fs::create_dir(&d).unwrap();
        }
        // the last directory's name makes `.o.partial.new-PID` 4089 bytes: `/qbat-staging` in
        // it is past 4095
        d.push("p".repeat(4089 - fresh(&d) - 1));
        std::fs::create_dir(&d).unwrap();
        assert_eq!(fresh(&d), 4089);
        let e = staging::make_staging(&d.join(".o.partial")).unwrap_err();
        assert!(e.with_causes().contains("qbat-staging"), "{}", e.with_causes());
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0, "left beside it");
    }
}
