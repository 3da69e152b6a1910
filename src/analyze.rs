//! `qbat-gpu analyze DIR`: how the measures of a finished run relate to each other, read from
//! the run's output files (never from in-memory results), with bounded memory.
//!
//! For each pair (a, b) of measures it writes `analysis.csv`:
//! - `scope = pooled`: Pearson and Spearman correlation of a and b over every (member, time)
//!   sample of the correlation set;
//! - `scope = per_time`: the same over the members of the correlation set at each sample time;
//! - on the pooled row, the monotone fractions over ALL members of the run: for one member,
//!   order its samples by a (`order_by`); b is *monotone non-decreasing* in a when every
//!   sample's b is >= the largest b at a smaller a minus `tol`, *non-increasing* when every b
//!   is <= the smallest b at a smaller a plus `tol`, and either only where the samples of
//!   equal a have b equal within `tol` (b a function of a: pair by pair, any two samples
//!   with a_i <= a_j ask b_j >= b_i - tol of a non-decreasing b and b_j <= b_i + tol of a
//!   non-increasing one, whichever came first in time), with `tol` =
//!   rel_tol * max_t |b| of that member (rel_tol = 1e-9 for f64 runs, 1e-5 for f32 runs: the
//!   rounding of a single-precision state). `monotone_fraction` counts members that are
//!   either, `monotone_increasing` and `monotone_decreasing` each kind (a member with b
//!   constant to `tol` counts in both; one whose b moves by more than `tol` while a stays put
//!   in neither, whichever way a and time run).
//!
//! The correlation set is every member, or, past `max_members` (or past
//! `MAX_POOLED_SAMPLES` samples per measure), an evenly strided subset of the n members
//! summary.csv does not flag: the u-th of them is kept when (u * cap) mod n < cap, which keeps
//! exactly `cap` members spread over the whole file (a swept grid is sampled across all its
//! axes, not just its first rows). The table and the
//! csv (`members`, `members_total`, `capped`) say when the cap applied.
//!
//! Spearman = Pearson of the ranks, ties given their average rank. A correlation over a set
//! where a or b is constant is undefined and left empty in the csv.

use crate::error::{QbatError, Result};
use crate::measures::DEFAULT_RESOURCES;
use crate::output::plots::{hist2d_stem, Hist2dCounter, HIST_BINS};
use crate::output::series::{read_in_chunks, SeriesReader};
use std::io::Write;
use std::path::{Path, PathBuf};

mod correlation;
mod gather;
mod ranks;
use correlation::is_constant;
pub use correlation::{integer_pearson, pearson, pearson_checked};
pub use gather::{Gather, Layout, MemoryCheck};

/// What to change where an analysis does not fit the memory left.
const MEMORY_ADVICE: &str = "lower --max-members (the members correlated), or name fewer pairs";
use ranks::doubled_ranks_with;
pub use ranks::{doubled_ranks_whole_and_sliced, ranks};

/// Default cap on the members of the correlation set.
pub const DEFAULT_MAX_MEMBERS: usize = 20_000;
/// Cap on the (member, time) samples per measure held for the pooled correlations
/// (4e6 samples = 32 MB per measure, as much again for its two ranks (u32), and for each
/// thread ranking a measure 32 MB for its sort (up to twice that for a sample crowded into a
/// few of its buckets) and 32 MB for the ranks side by side before they are split).
pub const MAX_POOLED_SAMPLES: usize = 4_000_000;

#[derive(Clone, Debug)]
pub struct AnalyzeOptions {
    /// Every pair among these measures (in addition to `pairs`).
    pub measures: Vec<String>,
    /// Explicit (a, b) pairs.
    pub pairs: Vec<(String, String)>,
    /// Also write the 2-D histograms of each pair (plot_hist2d_<a>_<b>.png/svg).
    pub plots: bool,
    pub max_members: usize,
    /// Relative tolerance of the monotone test; None = from run.json's precision.
    pub monotone_tol: Option<f64>,
    /// The memory left the analysis is checked against (`Layout::check_fits`) before it reads
    /// the series.
    pub memory_check: MemoryCheck,
    /// The output the analysis goes into, whose cancellation (Python's Ctrl-C during a merge)
    /// stops the pass over the series at its next chunk.
    pub cancel: Option<crate::output::WriteCancel>,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions {
            measures: vec![],
            pairs: vec![],
            plots: true,
            max_members: DEFAULT_MAX_MEMBERS,
            monotone_tol: None,
            memory_check: MemoryCheck::Before,
            cancel: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Pooled,
    PerTime,
}

impl Scope {
    pub fn name(&self) -> &'static str {
        match self {
            Scope::Pooled => "pooled",
            Scope::PerTime => "per_time",
        }
    }
}

/// One row of analysis.csv.
#[derive(Clone, Debug, PartialEq)]
pub struct PairRow {
    pub a: String,
    pub b: String,
    pub scope: Scope,
    /// Sample time (per_time rows).
    pub t: Option<f64>,
    /// (a, b) samples the correlations used.
    pub n: usize,
    pub pearson: Option<f64>,
    pub spearman: Option<f64>,
    /// Pooled rows, runs with at least two sample times: fractions over all members.
    pub monotone_fraction: Option<f64>,
    pub monotone_increasing: Option<f64>,
    pub monotone_decreasing: Option<f64>,
}

#[derive(Clone, Debug)]
pub struct Analysis {
    pub dir: PathBuf,
    pub members_total: usize,
    /// Members of the correlation set.
    pub members_used: usize,
    /// Members left out as flagged unhealthy (summary.csv `health`, or non-finite values).
    pub skipped: usize,
    pub capped: bool,
    pub times: Vec<f64>,
    pub monotone_tol: f64,
    pub rows: Vec<PairRow>,
    /// analysis.csv and the plots written.
    pub files: Vec<PathBuf>,
    /// Whether it was taken from the run's blocks as they were written and checked
    /// (`analyze_gathered`), the series not read again.
    pub from_blocks: bool,
}

impl Analysis {
    /// The analysis of a directory that was renamed to `dir` (a run's staging directory,
    /// committed): its files named there.
    pub fn moved_to(mut self, dir: &Path) -> Analysis {
        self.files = self.files.iter().filter_map(|f| f.file_name()).map(|name| dir.join(name)).collect();
        self.dir = dir.into();
        self
    }

    pub fn pooled(&self, a: &str, b: &str) -> Option<&PairRow> {
        self.rows.iter().find(|r| r.scope == Scope::Pooled && r.a == a && r.b == b)
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics.

fn bad(path: &Path, reason: impl Into<String>) -> QbatError {
    QbatError::invalid(path.display().to_string(), reason)
}

/// Spearman rank correlation (ties get their average rank); None when either side is constant.
pub fn spearman_checked(x: &[f64], y: &[f64]) -> Option<f64> {
    spearman_of(varying_ranks(x).as_deref(), varying_ranks(y).as_deref())
}

/// The (doubled) ranks of a sample a correlation is defined over (see `varies`).
fn varying_ranks(v: &[f64]) -> Option<Vec<u32>> {
    varies(v).then(|| doubled_ranks_with(v, &mut vec![]))
}

/// Whether a correlation is defined over the sample: two or more points, not all equal.
fn varies(v: &[f64]) -> bool {
    v.len() >= 2 && !is_constant(v)
}

/// Spearman from the `varying_ranks` of both sides: None when either has none.
fn spearman_of(rx: Option<&[u32]>, ry: Option<&[u32]>) -> Option<f64> {
    integer_pearson(rx?, ry?)
}

/// The order of the monotone test: the sample indices sorted by a, -0 and +0 one value,
/// into `order`. O(n log n). (Ties stay in time order, a stable sort, though the test does not
/// depend on their order.)
pub fn order_by(a: &[f64], order: &mut Vec<usize>) {
    order.clear();
    order.extend(0..a.len());
    // (x + 0 turns -0 into +0)
    order.sort_by(|&x, &y| (a[x] + 0.0).total_cmp(&(a[y] + 0.0)));
}

/// Is b monotone along a? Returns (non-decreasing, non-increasing), see the module doc.
/// `order` is the samples' order by a (`order_by`). Read group by group of equal a, with
/// (gmin, gmax) a group's extremes of b and (run_min, run_max) those of the groups before:
///   non-decreasing:  gmin >= max(run_max, gmax) - tol,
///   non-increasing:  gmax <= min(run_min, gmin) + tol,
/// the group's own max and min standing in for its samples taken both ways round (b takes
/// one value, within tol, at one a).
/// Symmetric: a -> -a swaps the two, and the samples' time order plays no part.
pub fn monotone_along(a: &[f64], b: &[f64], order: &[usize], rel_tol: f64) -> (bool, bool) {
    let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let tol = rel_tol * scale;
    let (mut inc, mut dec) = (true, true);
    let (mut run_max, mut run_min) = (f64::NEG_INFINITY, f64::INFINITY);
    let mut i = 0;
    while i < order.len() && (inc || dec) {
        let mut j = i;
        let (mut gmin, mut gmax) = (b[order[i]], b[order[i]]);
        // (== holds -0 and +0 equal, as the sort does)
        while j + 1 < order.len() && a[order[j + 1]] == a[order[i]] {
            j += 1;
            gmin = gmin.min(b[order[j]]);
            gmax = gmax.max(b[order[j]]);
        }
        // (the group's own pairs with those before it: pair by pair, each bound rounded)
        inc &= gmin >= run_max.max(gmax) - tol;
        dec &= gmax <= run_min.min(gmin) + tol;
        run_max = run_max.max(gmax);
        run_min = run_min.min(gmin);
        i = j + 1;
    }
    (inc, dec)
}

/// The pairs to analyse: explicit pairs, every pair among `measures`, or (neither given)
/// capacity_b against each default resource present. Every name must be in the series.
pub fn resolve_pairs(present: &[String], opts: &AnalyzeOptions) -> Result<Vec<(String, String)>> {
    let has = |m: &str| present.iter().any(|p| p == m);
    let check = |field: &str, m: &str| -> Result<()> {
        if has(m) {
            Ok(())
        } else {
            Err(QbatError::invalid(field, format!("{m} is not in the series (it has: {})", present.join(", "))))
        }
    };
    let mut pairs: Vec<(String, String)> = vec![];
    for (a, b) in &opts.pairs {
        check("--pairs", a)?;
        check("--pairs", b)?;
        if a == b {
            return Err(QbatError::invalid("--pairs", format!("{a}:{b} pairs a measure with itself")));
        }
        pairs.push((a.clone(), b.clone()));
    }
    for (i, a) in opts.measures.iter().enumerate() {
        check("--measures", a)?;
        for b in &opts.measures[i + 1..] {
            if a != b {
                pairs.push((a.clone(), b.clone()));
            }
        }
    }
    if opts.pairs.is_empty() && opts.measures.is_empty() {
        if !has("capacity_b") {
            return Err(QbatError::invalid(
                "--pairs",
                format!("the series has no capacity_b to compare with the resources; name pairs with --pairs a:b (it has: {})", present.join(", ")),
            ));
        }
        pairs = DEFAULT_RESOURCES.iter().filter(|r| has(r)).map(|r| ("capacity_b".to_string(), r.to_string())).collect();
        if pairs.is_empty() {
            return Err(QbatError::invalid(
                "--pairs",
                format!("the series has none of the resources {}; name pairs with --pairs a:b", DEFAULT_RESOURCES.join(", ")),
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    pairs.retain(|p| seen.insert(p.clone()));
    if pairs.is_empty() {
        return Err(QbatError::invalid("--measures", "name at least two different measures"));
    }
    Ok(pairs)
}

/// The monotone test's tolerance (relative) for the precision run.json records: 1e-9 for f64
/// (also for a series with no run.json beside it, made by hand), 1e-5 where anything ran in
/// f32. A run.json that cannot be read, or names no precision qbat-gpu runs, is refused
/// rather than guessed around.
fn default_tol(dir: &Path) -> Result<f64> {
    let path = dir.join("run.json");
    if std::fs::symlink_metadata(&path).is_err() {
        return Ok(1e-9);
    }
    let text = crate::output::read_text_bounded(&path, crate::output::SMALL_FILE_LIMIT)?;
    let run: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(&path, format!("not JSON: {e}")))?;
    let named = |v: &serde_json::Value| v.as_str().map(str::to_ascii_lowercase);
    // f32 anywhere: the run's, one of its `engines` (an older build's run whose blocks moved
    // to the f64 CPU engine by `--on-device-loss cpu` left `precision` the last block's), or
    // one of a run's or a merge's precisions ("mixed: f32 | f64")
    let engines = run.get("engines").and_then(|e| e.as_array()).into_iter().flatten().filter_map(|e| e.get("precision"));
    let f32_ran = engines.chain(run.get("precision")).filter_map(named).any(|p| p == "f32" || (p.starts_with("mixed:") && p.contains("f32")));
    match run.get("precision").and_then(named).as_deref() {
        _ if f32_ran => Ok(1e-5),
        Some("f64") => Ok(1e-9),
        _ => Err(bad(&path, "names no precision (\"f32\" or \"f64\"); pass --monotone-tol")),
    }
}

/// Analyse DIR's series: correlations and monotone fractions of each pair; writes
/// DIR/analysis.csv (and the pairs' 2-D histograms when `opts.plots`).
pub fn analyze_dir(dir: &Path, opts: &AnalyzeOptions) -> Result<Analysis> {
    // One analysis (or commit) at a time in DIR: two side by side each updated the manifest
    // from what they had read, and one's files were lost from it (the next analysis then
    // refused them as not qbat-gpu's).
    // A commit into it cut short (a run's `--force`, an analysis) is finished or undone first.
    let _one_at_a_time = match dir.is_dir() {
        true => {
            // (a read-only DIR is said before the work, not at the commit of its files)
            crate::output::out_path::writable_inside(dir, &dir.display().to_string())?;
            let lock = crate::output::lock_dir(dir, opts.cancel.unwrap_or_else(crate::output::WriteCancel::now))?;
            crate::output::recover::recover(dir, lock.is_some(), None)?;
            lock
        }
        false => None,
    };
    let (mut reader, pairs) = open_for_analysis(dir, opts)?;
    let monotone_tol = monotone_tol(dir, opts)?;
    let mut summary = crate::output::summary_ids::SummaryIds::read(dir, reader.members_total, &reader.path)?;
    // (the stride of a capped correlation set runs over the members summary.csv does not flag)
    let members = (reader.members_total, summary.flagged.len());
    let layout = Layout::new(&reader.measures, pairs, members, reader.n_times(), opts.max_members, monotone_tol).map_err(|why| bad(&reader.path, why))?;
    layout.check_fits(false, opts.memory_check, "--max-members", MEMORY_ADVICE)?;
    // the pairs' 2-D histograms, counted in the same pass
    let hist2d = if opts.plots { Some(Hist2dCounter::new(dir, &reader, &layout.pairs, HIST_BINS)?) } else { None };
    let mut gather = Gather::new(layout, hist2d);
    let reader_path = reader.path.clone();
    read_in_chunks(&mut reader, |chunk| {
        opts.cancel.map_or(Ok(()), |c| c.check())?;
        let members: Vec<(bool, &[f64])> =
            chunk.members().map(|(id, block)| summary.check_next(id, &reader_path).map(|()| (summary.flagged.contains(&id), block))).collect::<Result<_>>()?;
        gather.add(&members);
        Ok(())
    })?;
    summary.check_end(&reader.path)?;
    gather.finish(dir, &reader.path, reader.times.clone(), false)
}

/// The analysis of a run whose series was fed to `gather` block by block as it was written
/// (each block once its bytes were read back from the file and found equal to its values):
/// DIR holds that series, its stats.csv and run.json. The 2-D histograms are counted from the
/// gathered columns where they hold every member's samples, else in a pass over the series.
/// A gather that does not match the files (another tolerance, members or measures; blocks
/// missed) is dropped for `analyze_dir`, which reads the series.
pub fn analyze_gathered(dir: &Path, gather: Gather, opts: &AnalyzeOptions) -> Result<Analysis> {
    let (reader, pairs) = open_for_analysis(dir, opts)?;
    let tol = monotone_tol(dir, opts)?;
    if !gather.matches(&reader.measures, &pairs, reader.members_total, reader.n_times(), opts.max_members, tol) {
        // (its columns given back before the pass that gathers them anew)
        drop(gather);
        return analyze_dir(dir, opts);
    }
    gather.layout().check_fits(true, opts.memory_check, "--max-members", MEMORY_ADVICE)?;
    let mut gather = gather;
    if opts.plots {
        let mut counter = Hist2dCounter::new(dir, &reader, &pairs, HIST_BINS)?;
        if !gather.count_hist2d(&mut counter) {
            counter = crate::output::plots::hist2d_counted(dir, counter)?;
        }
        gather.set_hist2d(counter);
    }
    gather.finish(dir, &reader.path, reader.times.clone(), true)
}

/// Whether the analysis of DIR's series, `analyze_gathered` with `gathered` where it matches
/// the series or else `analyze_dir`, fits in the memory left (`opts.memory_check`), found
/// before any of the series is read: Ok(Err(why)) where it does not, `why` the reason its
/// refusal would give, ending in `advice`. A run's end asks this before it writes run.json, which then says
/// whether the analysis was left out.
pub fn memory_left_for(dir: &Path, gathered: Option<&Gather>, opts: &AnalyzeOptions, advice: &str) -> Result<std::result::Result<(), String>> {
    let (reader, pairs) = open_for_analysis(dir, opts)?;
    let (n, nt) = (reader.members_total, reader.n_times());
    let fits = match gathered.filter(|g| g.matches_series(&reader.measures, &pairs, n, nt, opts.max_members)) {
        Some(g) => g.layout().check_fits(true, opts.memory_check, "--max-members", advice),
        // (the tolerance does not change what the analysis holds)
        None => {
            // (as if none were flagged: the most the set can hold)
            let layout = Layout::new(&reader.measures, pairs, (n, 0), nt, opts.max_members, 0.0).map_err(|why| bad(&reader.path, why))?;
            layout.check_fits(false, opts.memory_check, "--max-members", advice)
        }
    };
    match fits {
        Ok(()) => Ok(Ok(())),
        Err(QbatError::TooLarge { reason, .. }) => Ok(Err(reason)),
        Err(e) => Err(e),
    }
}

/// The monotone test's tolerance: `--monotone-tol` where given (a finite number >= 0), else
/// from DIR's run.json (`default_tol`).
fn monotone_tol(dir: &Path, opts: &AnalyzeOptions) -> Result<f64> {
    match opts.monotone_tol {
        Some(t) if t.is_finite() && t >= 0.0 => Ok(t),
        Some(t) => Err(QbatError::invalid("--monotone-tol", format!("{t} must be a finite number >= 0"))),
        None => default_tol(dir),
    }
}

/// DIR's series reader and the pairs to analyse, after the checks every analysis makes: the
/// options, the directory, and that its files the analysis replaces are qbat-gpu's.
fn open_for_analysis(dir: &Path, opts: &AnalyzeOptions) -> Result<(SeriesReader, Vec<(String, String)>)> {
    if opts.max_members == 0 {
        return Err(QbatError::invalid("--max-members", "must be at least 1"));
    }
    if !dir.is_dir() {
        return Err(QbatError::invalid("DIR", format!("{} is not a directory", dir.display())));
    }
    let reader = SeriesReader::open(dir)?
        .ok_or_else(|| QbatError::invalid("DIR", format!("{} has no series.csv or series.npy (run with --series true to write one)", dir.display())))?;
    // A series its run's manifest lists must still be the one the run wrote: one cut at a
    // member's row would otherwise be analysed as fewer members, without a word. So must the
    // files the analysis reads beside it: summary.csv (the members left out as unhealthy) and
    // run.json (the precision, and so the monotone tolerance).
    // (series.json holds the npy's axes: its members and times)
    if let Some(manifest) = crate::output::manifest::Manifest::read(dir)? {
        let name = reader.path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let axes = (name == "series.npy").then_some("series.json");
        for name in std::iter::once(name.as_str()).chain(axes).chain(["summary.csv", "run.json"]) {
            if let Some(want) = manifest.get(name) {
                // (gone, it would be read as absent: no member left out, the f64 tolerance)
                let path = dir.join(name);
                if std::fs::symlink_metadata(&path).is_err() {
                    return Err(QbatError::invalid(path.display().to_string(), "listed in the manifest but missing: analyze reads the files its run wrote"));
                }
                crate::output::manifest::check_still_written(&path, want, "analyze reads only the series its run wrote")?;
            }
        }
    }
    let pairs = resolve_pairs(&reader.measures, opts)?;
    // what this writes replaces only files qbat-gpu wrote (a finished run's own analysis)
    let mut names = vec!["analysis.csv".to_string()];
    if opts.plots {
        names.extend(pairs.iter().flat_map(|(a, b)| ["png", "svg"].map(|ext| format!("{}.{ext}", hist2d_stem(a, b)))));
    }
    crate::output::manifest::check_replaceable(dir, &names)?;
    Ok((reader, pairs))
}

fn opt(x: Option<f64>) -> String {
    x.map(|v| format!("{v:?}")).unwrap_or_default()
}

/// analysis.csv: one row per pair and scope.
pub fn write_csv(an: &Analysis, w: &mut dyn Write) -> std::io::Result<()> {
    writeln!(w, "a,b,scope,t,n,members,members_total,capped,pearson,spearman,monotone_fraction,monotone_increasing,monotone_decreasing")?;
    for r in &an.rows {
        writeln!(
            w,
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.a,
            r.b,
            r.scope.name(),
            opt(r.t),
            r.n,
            an.members_used,
            an.members_total,
            an.capped,
            opt(r.pearson),
            opt(r.spearman),
            opt(r.monotone_fraction),
            opt(r.monotone_increasing),
            opt(r.monotone_decreasing)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::series::in_subset;

    fn sort_order(a: &[f64]) -> Vec<usize> {
        let mut idx = vec![];
        order_by(a, &mut idx);
        idx
    }

    #[test]
    fn strided_subset_has_exactly_cap_members() {
        for (n, cap) in [(10, 3), (100, 7), (7, 7), (5, 9), (1000, 999)] {
            let k = (0..n).filter(|&i| in_subset(i, n, cap)).count();
            assert_eq!(k, n.min(cap), "n = {n}, cap = {cap}");
        }
        // evenly spread: with n = 100, cap = 10 every tenth member
        let picked: Vec<usize> = (0..100).filter(|&i| in_subset(i, 100, 10)).collect();
        assert_eq!(picked, (0..10).map(|i| 10 * i).collect::<Vec<_>>());
    }

    #[test]
    fn monotone_definition() {
        let m = |a: &[f64], b: &[f64]| monotone_along(a, b, &sort_order(a), 1e-9);
        let a = [0.0, 1.0, 2.0, 3.0];
        assert_eq!(m(&a, &[0.0, 1.0, 1.0, 2.0]), (true, false));
        assert_eq!(m(&a, &[3.0, 2.0, 2.0, 0.0]), (false, true));
        assert_eq!(m(&a, &[1.0, 1.0, 1.0, 1.0]), (true, true));
        assert_eq!(m(&a, &[0.0, 2.0, 1.0, 3.0]), (false, false));
        // a tie in a: b must take one value there, whatever its time order
        let a2 = [0.0, 1.0, 1.0, 2.0];
        assert_eq!(m(&a2, &[0.0, 2.0, 1.0, 3.0]), (false, false));
        assert_eq!(m(&a2, &[0.0, 1.0, 2.0, 3.0]), (false, false));
        assert_eq!(m(&a2, &[0.0, 1.5, 1.5, 3.0]), (true, false));
        // a constant a (-0 and +0 one value): b constant, or neither
        let a3 = [0.0, -0.0, 0.0, -0.0];
        assert_eq!(m(&a3, &[0.1, 0.9, 0.2, 0.5]), (false, false));
        assert_eq!(m(&a3, &[0.9, 0.5, 0.2, 0.1]), (false, false));
        assert_eq!(m(&a3, &[0.5, 0.5, 0.5, 0.5 + 1e-12]), (true, true));
        // at tol's edge, each bound rounded as the pairwise definition rounds it (the exact
        // difference 6.97150670526e-10 is above tol = 6.97150669178e-10; its rounded bound
        // is not)
        let near = [0.6971506691781684, 0.6971506684810177];
        assert_eq!(m(&[0.0, 0.0], &near), ((near[1] >= near[0] - 1e-9 * near[0]), (near[0] <= near[1] + 1e-9 * near[0])));
        assert_eq!(m(&[0.0, 0.0], &near), (true, true));
        // a -> -a swaps the verdicts, and so does reading the samples backwards in time
        let (a4, b4) = ([3.0, 1.0, 1.0, 0.0], [3.0, 2.0, 2.0, 0.0]);
        assert_eq!(m(&a4, &b4), (true, false));
        assert_eq!(m(&a4.map(|x| -x), &b4), (false, true));
        let (mut ar, mut br) = (a4, b4);
        ar.reverse();
        br.reverse();
        assert_eq!(m(&ar, &br), (true, false));
        // rounding below the tolerance is not a decrease; above it is
        assert!(m(&a, &[0.0, 1.0, 1.0 - 1e-12, 2.0]).0);
        assert!(!m(&a, &[0.0, 1.0, 1.0 - 1e-6, 2.0]).0);
        // drift: many small steps down add up and are caught (running max, not neighbours)
        let a5: Vec<f64> = (0..100).map(f64::from).collect();
        let b5: Vec<f64> = (0..100).map(|i| 1.0 - 5e-10 * f64::from(i)).collect();
        assert!(!m(&a5, &b5).0);
    }

    #[test]
    fn correlations_of_a_hand_case() {
        // x = 1..5, y = x^2: Spearman = 1 (same order), Pearson < 1 (not linear)
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [1.0, 4.0, 9.0, 16.0, 25.0];
        // Pearson by hand: mean x 3, mean y 11; sxy = 60, sxx = 10, syy = 374
        let want = 60.0 / (10.0f64 * 374.0).sqrt();
        assert!((pearson_checked(&x, &y).unwrap() - want).abs() < 1e-14);
        assert_eq!(spearman_checked(&x, &y), Some(1.0));
        assert_eq!(pearson_checked(&x, &[2.0; 5]), None);
    }

    /// Pearson does not change with the units: the hand case's value at scales from the
    /// subnormals to f64's largest, where the plain sums overflow or underflow (to 0, or to
    /// the empty cell of a constant side).
    #[test]
    fn pearson_is_the_same_at_every_scale() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [1.0, 4.0, 9.0, 16.0, 25.0];
        let want = 60.0 / (10.0f64 * 374.0).sqrt();
        for scale in [1e-320, 1e-300, 1e-170, 1e-100, 1e80, 1e160, 1e300, 3e307] {
            let xs: Vec<f64> = x.iter().map(|v| v * scale).collect();
            for ys in [y.to_vec(), y.iter().map(|v| v / 25.0 * scale).collect(), y.iter().map(|v| v / 1e150).collect()] {
                let r = pearson_checked(&xs, &ys).unwrap_or_else(|| panic!("scale {scale:e}: none"));
                // (x at 1e-320 is subnormal: 1..5 x 1e-320 keep about 10 bits)
                let tol = if scale < 1e-307 { 1e-3 } else { 1e-14 };
                assert!((r - want).abs() < tol, "scale {scale:e}: {r} against {want}");
            }
            // a side against itself
            assert!((pearson_checked(&xs, &xs).unwrap() - 1.0).abs() < 1e-14, "scale {scale:e}");
        }
    }
}
