//! `qbat-gpu analyze DIR`: how the measures of a finished run relate to each other, read from
//! the run's output files (never from in-memory results), with bounded memory.
//!
//! For each pair (a, b) of measures it writes `analysis.csv`:
//! - `scope = pooled`: Pearson and Spearman correlation of a and b over every (member, time)
//!   sample of the correlation set;
//! - `scope = per_time`: the same over the members of the correlation set at each sample time;
//! - on the pooled row, the monotone fractions over ALL members of the run: for one member,
//!   order its samples by a (ties in a broken by b); b is *monotone non-decreasing* in a when
//!   every sample's b is >= the largest b before it minus `tol`, *non-increasing* when every
//!   b is <= the smallest b before it plus `tol`, with `tol` = rel_tol * max_t |b| of that member
//!   (rel_tol = 1e-9 for f64 runs, 1e-5 for f32 runs: the rounding of a single-precision state).
//!   `monotone_fraction` counts members that are either, `monotone_increasing` and
//!   `monotone_decreasing` each kind (a member with b constant to `tol` counts in both).
//!
//! The correlation set is every member, or, past `max_members` (or past
//! `MAX_POOLED_SAMPLES` samples per measure), an evenly strided subset: member i of n is kept
//! when (i * cap) mod n < cap, which keeps exactly `cap` members spread over the whole file
//! (a swept grid is sampled across all its axes, not just its first rows). The table and the
//! csv (`members`, `members_total`, `capped`) say when the cap applied.
//!
//! Spearman = Pearson of the ranks, ties given their average rank. A correlation over a set
//! where a or b is constant is undefined and left empty in the csv.

use crate::error::{QbatError, Result};
use crate::measures::DEFAULT_RESOURCES;
use crate::output::plots::{draw_hist2d_plots, hist2d_stem, Hist2dCounter, HIST_BINS};
use crate::output::series::{in_subset, read_in_chunks, SeriesReader};
use crate::output::write_atomic;
use rayon::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};

mod ranks;
pub use ranks::ranks;
use ranks::{doubled_ranks_whole_and_sliced, doubled_ranks_with};

/// Default cap on the members of the correlation set.
pub const DEFAULT_MAX_MEMBERS: usize = 20_000;
/// Cap on the (member, time) samples per measure held for the pooled correlations
/// (4e6 samples = 32 MB per measure, half as much again for its ranks (u32), and 32 MB for
/// each thread's sort, up to twice that for a sample crowded into a few of its buckets).
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
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions { measures: vec![], pairs: vec![], plots: true, max_members: DEFAULT_MAX_MEMBERS, monotone_tol: None }
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

/// Ids of the members summary.csv flags unhealthy (its `health` column is not `ok`); none
/// when the run has no summary.csv or no health column.
fn flagged_members(dir: &Path) -> Result<std::collections::HashSet<u64>> {
    let path = dir.join("summary.csv");
    let mut out = std::collections::HashSet::new();
    if !path.is_file() {
        return Ok(out);
    }
    let mut rdr = csv::Reader::from_path(&path).map_err(|e| bad(&path, e.to_string()))?;
    let header = rdr.headers().map_err(|e| bad(&path, e.to_string()))?.clone();
    let Some(k) = header.iter().position(|h| h == "health") else {
        return Ok(out);
    };
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| bad(&path, format!("line {}: {e}", i + 2)))?;
        if rec.get(k).is_some_and(|h| h != "ok") {
            let id = rec[0].trim().parse().map_err(|_| bad(&path, format!("line {}: not a member id: {:?}", i + 2, &rec[0])))?;
            out.insert(id);
        }
    }
    Ok(out)
}

fn bad(path: &Path, reason: impl Into<String>) -> QbatError {
    QbatError::invalid(path.display().to_string(), reason)
}

/// Pearson correlation of x and y, each value taken as an f64 (ranks come as u32).
pub fn pearson<T: Copy + Into<f64>>(x: &[T], y: &[T]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().map(|&a| a.into()).sum::<f64>() / n, y.iter().map(|&b| b.into()).sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (&a, &b) in x.iter().zip(y) {
        let (a, b): (f64, f64) = (a.into(), b.into());
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    sxy / (sxx * syy).sqrt()
}

/// Pearson correlation; None when either side is constant (or there are < 2 points).
pub fn pearson_checked<T: Copy + PartialEq + Into<f64>>(x: &[T], y: &[T]) -> Option<f64> {
    if x.len() < 2 || is_constant(x) || is_constant(y) {
        return None;
    }
    let r = pearson(x, y);
    r.is_finite().then(|| r.clamp(-1.0, 1.0))
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
    pearson_checked(rx?, ry?)
}

fn is_constant<T: PartialEq>(v: &[T]) -> bool {
    v.iter().all(|x| *x == v[0])
}

/// Is b monotone along a? Returns (non-decreasing, non-increasing), see the module doc.
/// `order` is the sample order sorted by a (ties in any order).
pub fn monotone_along(a: &[f64], b: &[f64], order: &[usize], rel_tol: f64) -> (bool, bool) {
    let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let tol = rel_tol * scale;
    let (mut inc, mut dec) = (true, true);
    let (mut run_max, mut run_min) = (f64::NEG_INFINITY, f64::INFINITY);
    let mut i = 0;
    while i < order.len() && (inc || dec) {
        // A group of samples with the same a: ordering them by b makes the group as monotone
        // as it can be, so only its extremes meet the running extremes before it.
        let mut j = i;
        let (mut gmin, mut gmax) = (b[order[i]], b[order[i]]);
        while j + 1 < order.len() && a[order[j + 1]] == a[order[i]] {
            j += 1;
            gmin = gmin.min(b[order[j]]);
            gmax = gmax.max(b[order[j]]);
        }
        inc &= gmin >= run_max - tol;
        dec &= gmax <= run_min + tol;
        run_max = run_max.max(gmax);
        run_min = run_min.min(gmin);
        i = j + 1;
    }
    (inc, dec)
}

/// Per pair (a, b), how many of `blocks` (one member's times x measures each) have b
/// monotone non-decreasing, non-increasing, and either, along a.
fn monotone_counts(blocks: &[&[f64]], pair_k: &[(usize, usize)], nt: usize, nm: usize, tol: f64) -> Vec<(usize, usize, usize)> {
    let per_member: Vec<Vec<(bool, bool)>> = blocks
        .par_iter()
        .map(|blk| {
            let col = |k: usize| -> Vec<f64> { (0..nt).map(|s| blk[s * nm + k]).collect() };
            let mut orders: Vec<(usize, Vec<f64>, Vec<usize>)> = vec![];
            pair_k
                .iter()
                .map(|&(ka, kb)| {
                    if !orders.iter().any(|(k, _, _)| *k == ka) {
                        let va = col(ka);
                        let o = sort_order(&va);
                        orders.push((ka, va, o));
                    }
                    let (_, va, order) = orders.iter().find(|(k, _, _)| *k == ka).expect("just added");
                    monotone_along(va, &col(kb), order, tol)
                })
                .collect()
        })
        .collect();
    let mut counts = vec![(0, 0, 0); pair_k.len()];
    for member in per_member {
        for (c, (inc, dec)) in counts.iter_mut().zip(member) {
            *c = (c.0 + usize::from(inc), c.1 + usize::from(dec), c.2 + usize::from(inc || dec));
        }
    }
    counts
}

/// Copy the used measures of `subset` (members `first..` of the correlation set) into the
/// pooled columns, laid out time by time (`pooled[c][s * members + u]`). Each task takes a
/// range of sample times: the columns' parts for those times are its own, and it reads only
/// its part of each member's block.
fn gather_pooled(pooled: &mut [Vec<f64>], used: &[usize], subset: &[&[f64]], first: usize, members: usize, (nt, nm): (usize, usize)) {
    let times_per_task = nt.div_ceil(rayon::current_num_threads().max(1)).max(1);
    // tasks[t][c]: column c at the times of task t
    let mut tasks: Vec<Vec<&mut [f64]>> = vec![];
    for col in pooled.iter_mut() {
        for (t, part) in col.chunks_mut(times_per_task * members.max(1)).enumerate() {
            if tasks.len() == t {
                tasks.push(vec![]);
            }
            tasks[t].push(part);
        }
    }
    tasks.into_par_iter().enumerate().for_each(|(t, mut cols)| {
        let times = t * times_per_task..((t + 1) * times_per_task).min(nt);
        for (j, block) in subset.iter().enumerate() {
            for (col, &k) in cols.iter_mut().zip(used) {
                for (r, s) in times.clone().enumerate() {
                    col[r * members + first + j] = block[s * nm + k];
                }
            }
        }
    });
}

fn sort_order(a: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..a.len()).collect();
    idx.sort_by(|&x, &y| a[x].total_cmp(&a[y]));
    idx
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

/// The monotone test's tolerance for a run: 1e-9 relative for f64 runs, 1e-5 for f32 runs.
fn default_tol(dir: &Path) -> f64 {
    let precision = crate::output::read_text_bounded(&dir.join("run.json"), crate::output::SMALL_FILE_LIMIT)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["precision"].as_str().map(|s| s.to_ascii_lowercase()));
    match precision.as_deref() {
        Some("f64") => 1e-9,
        Some(_) => 1e-5,
        None => 1e-9,
    }
}

/// Analyse DIR's series: correlations and monotone fractions of each pair; writes
/// DIR/analysis.csv (and the pairs' 2-D histograms when `opts.plots`).
pub fn analyze_dir(dir: &Path, opts: &AnalyzeOptions) -> Result<Analysis> {
    if opts.max_members == 0 {
        return Err(QbatError::invalid("--max-members", "must be at least 1"));
    }
    if !dir.is_dir() {
        return Err(QbatError::invalid("DIR", format!("{} is not a directory", dir.display())));
    }
    let mut reader = SeriesReader::open(dir)?
        .ok_or_else(|| QbatError::invalid("DIR", format!("{} has no series.csv or series.npy (run with --series true to write one)", dir.display())))?;
    let pairs = resolve_pairs(&reader.measures, opts)?;
    // what this writes replaces only files qbat-gpu wrote (a finished run's own analysis)
    let mut names = vec!["analysis.csv".to_string()];
    if opts.plots {
        names.extend(pairs.iter().flat_map(|(a, b)| ["png", "svg"].map(|ext| format!("{}.{ext}", hist2d_stem(a, b)))));
    }
    crate::output::manifest::check_replaceable(dir, &names)?;
    let monotone_tol = match opts.monotone_tol {
        Some(t) if t.is_finite() && t >= 0.0 => t,
        Some(t) => return Err(QbatError::invalid("--monotone-tol", format!("{t} must be a finite number >= 0"))),
        None => default_tol(dir),
    };
    let (n, nt, nm) = (reader.members_total, reader.n_times(), reader.n_measures());
    if n == 0 {
        return Err(bad(&reader.path, "the series has no members"));
    }
    // The measures the pairs need, as columns of the pooled set.
    let mut used: Vec<usize> = vec![];
    for (a, b) in &pairs {
        for m in [a, b] {
            let k = reader.measure_index(m).expect("resolved");
            if !used.contains(&k) {
                used.push(k);
            }
        }
    }
    let pair_k: Vec<(usize, usize)> =
        pairs.iter().map(|(a, b)| (reader.measure_index(a).expect("resolved"), reader.measure_index(b).expect("resolved"))).collect();
    let col_of = |k: usize| used.iter().position(|&u| u == k).expect("used");
    let pair_cols: Vec<(usize, usize)> = pair_k.iter().map(|&(ka, kb)| (col_of(ka), col_of(kb))).collect();
    let cap = opts.max_members.min((MAX_POOLED_SAMPLES / nt).max(1));
    let capped = n > cap;
    let members_used = n.min(cap);
    let flagged = flagged_members(dir)?;
    let mut skipped = 0usize;
    // pooled[c][s * members_used + u]: column c of correlation-set member u at sample s, time
    // by time, so that each sample time's column is one slice (compacted below when flagged
    // members leave gaps).
    // (each column zeroed on its own: `vec![column; k]` would copy the first into the others)
    let mut pooled: Vec<Vec<f64>> = (0..used.len()).map(|_| vec![0.0; members_used * nt]).collect();
    // members of the correlation set read so far
    let mut kept = 0usize;
    // Monotone counts per pair: (increasing, decreasing, either).
    let mut counts = vec![(0usize, 0usize, 0usize); pairs.len()];
    let mut index = 0usize;
    // the pairs' 2-D histograms, counted in the same pass
    let mut hist2d = if opts.plots { Some(Hist2dCounter::new(dir, &reader, &pairs, HIST_BINS)?) } else { None };
    read_in_chunks(&mut reader, |chunk| {
        // the chunk's healthy members, and those of them in the correlation set
        let (mut blocks, mut subset): (Vec<&[f64]>, Vec<&[f64]>) = (vec![], vec![]);
        for (id, block) in chunk.members() {
            let i = index;
            index += 1;
            // Members flagged unhealthy (summary.csv `health`, or a non-finite value)
            // are left out, as stats.csv leaves them out, and counted.
            if flagged.contains(&id) || block.iter().any(|v| !v.is_finite()) {
                skipped += 1;
                continue;
            }
            if in_subset(i, n, cap) {
                subset.push(block);
            }
            blocks.push(block);
        }
        // the three passes over the chunk side by side, each in parallel
        let first = kept;
        kept += subset.len();
        let ((), monotone) = rayon::join(
            || {
                rayon::join(
                    || {
                        if let Some(h) = hist2d.as_mut() {
                            h.count(chunk)
                        }
                    },
                    || gather_pooled(&mut pooled, &used, &subset, first, members_used, (nt, nm)),
                );
            },
            || (nt >= 2).then(|| monotone_counts(&blocks, &pair_k, nt, nm, monotone_tol)),
        );
        for (total, add) in counts.iter_mut().zip(monotone.unwrap_or_default()) {
            *total = (total.0 + add.0, total.1 + add.1, total.2 + add.2);
        }
        Ok(())
    })?;
    if index != n {
        return Err(bad(&reader.path, format!("read {index} members, expected {n}")));
    }
    if skipped == n {
        return Err(QbatError::Numerics(format!("{}: every member is flagged unhealthy; there is nothing to analyse", reader.path.display())));
    }
    // The correlation set without the flagged members it would have held: each time's
    // column moved down over the gap (to an address at or below its own, so in time order
    // nothing is overwritten before it is moved).
    if kept < members_used {
        for col in &mut pooled {
            for s in 0..nt {
                col.copy_within(s * members_used..s * members_used + kept, s * kept);
            }
            col.truncate(kept * nt);
        }
    }
    let members_used = kept;
    let healthy = n - skipped;
    // Ranks per column, pooled and within each sample time's slice, from one sort of the
    // pooled column (None for a constant column, whose every slice is constant too).
    let ranks: Vec<Option<(Vec<u32>, Vec<u32>)>> =
        pooled.par_iter().map_init(Vec::new, |scratch, c| varies(c).then(|| doubled_ranks_whole_and_sliced(c, members_used, scratch))).collect();
    let slice = |s: usize| s * members_used..(s + 1) * members_used;
    // Per time, each pair's correlations from its columns' slices.
    let per_time: Vec<Vec<PairRow>> = (0..nt)
        .into_par_iter()
        .map(|s| {
            let at: Vec<&[f64]> = pooled.iter().map(|c| &c[slice(s)]).collect();
            // a slice's ranks where it varies
            let col_ranks: Vec<Option<&[u32]>> =
                ranks.iter().zip(&at).map(|(r, x)| r.as_ref().filter(|_| varies(x)).map(|(_, sliced)| &sliced[slice(s)])).collect();
            pairs
                .iter()
                .zip(&pair_cols)
                .map(|((a, b), &(ca, cb))| PairRow {
                    a: a.clone(),
                    b: b.clone(),
                    scope: Scope::PerTime,
                    t: Some(reader.times[s]),
                    n: members_used,
                    pearson: pearson_checked(at[ca], at[cb]),
                    spearman: spearman_of(col_ranks[ca], col_ranks[cb]),
                    monotone_fraction: None,
                    monotone_increasing: None,
                    monotone_decreasing: None,
                })
                .collect()
        })
        .collect();
    // The pooled row of each pair, the pairs in parallel.
    let whole = |c: usize| ranks[c].as_ref().map(|(w, _)| &w[..]);
    let pooled_rows: Vec<PairRow> = pairs
        .par_iter()
        .zip(&pair_cols)
        .zip(&counts)
        .map(|(((a, b), &(ca, cb)), count)| {
            let (x, y) = (&pooled[ca], &pooled[cb]);
            let frac = |c: usize| (nt >= 2).then(|| c as f64 / healthy as f64);
            PairRow {
                a: a.clone(),
                b: b.clone(),
                scope: Scope::Pooled,
                t: None,
                n: x.len(),
                pearson: pearson_checked(x, y),
                spearman: spearman_of(whole(ca), whole(cb)),
                monotone_fraction: frac(count.2),
                monotone_increasing: frac(count.0),
                monotone_decreasing: frac(count.1),
            }
        })
        .collect();
    let mut rows = vec![];
    for (p, pooled_row) in pooled_rows.into_iter().enumerate() {
        rows.push(pooled_row);
        rows.extend(per_time.iter().map(|at| at[p].clone()));
    }
    drop(ranks);
    drop(pooled);
    let mut analysis =
        Analysis { dir: dir.into(), members_total: n, members_used, skipped, capped, times: reader.times.clone(), monotone_tol, rows, files: vec![] };
    let csv_path = dir.join("analysis.csv");
    write_atomic(&dir.join("analysis.csv"), |w| write_csv(&analysis, w))?;
    analysis.files.push(csv_path);
    // recorded as soon as written, so that a failure or an interruption in the plots leaves
    // no file of ours unlisted (which the next analysis would have to refuse)
    crate::output::manifest::Manifest::record(dir, &analysis.files)?;
    if let Some(h) = hist2d {
        let plots = draw_hist2d_plots(dir, &h.finish())?;
        crate::output::manifest::Manifest::record(dir, &plots)?;
        analysis.files.extend(plots);
    }
    Ok(analysis)
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
        let a = [0.0, 1.0, 2.0, 3.0];
        let o = sort_order(&a);
        assert_eq!(monotone_along(&a, &[0.0, 1.0, 1.0, 2.0], &o, 1e-9), (true, false));
        assert_eq!(monotone_along(&a, &[3.0, 2.0, 2.0, 0.0], &o, 1e-9), (false, true));
        assert_eq!(monotone_along(&a, &[1.0, 1.0, 1.0, 1.0], &o, 1e-9), (true, true));
        assert_eq!(monotone_along(&a, &[0.0, 2.0, 1.0, 3.0], &o, 1e-9), (false, false));
        // a tie in a: b may take both values there
        let a2 = [0.0, 1.0, 1.0, 2.0];
        let o2 = sort_order(&a2);
        assert_eq!(monotone_along(&a2, &[0.0, 2.0, 1.0, 3.0], &o2, 1e-9), (true, false));
        // rounding below the tolerance is not a decrease; above it is
        assert_eq!(monotone_along(&a, &[0.0, 1.0, 1.0 - 1e-12, 2.0], &o, 1e-9).0, true);
        assert_eq!(monotone_along(&a, &[0.0, 1.0, 1.0 - 1e-6, 2.0], &o, 1e-9).0, false);
        // drift: many small steps down add up and are caught (running max, not neighbours)
        let a3: Vec<f64> = (0..100).map(f64::from).collect();
        let b3: Vec<f64> = (0..100).map(|i| 1.0 - 5e-10 * f64::from(i)).collect();
        assert_eq!(monotone_along(&a3, &b3, &sort_order(&a3), 1e-9).0, false);
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
}
