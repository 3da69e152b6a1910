//! One pass over a series' members, in member order: the pooled columns of the correlation
//! set, the monotone counts over every member, and the pairs' 2-D histograms where they are
//! counted in the same pass; then the correlations from the pooled columns (`finish`).
//!
//! `analyze_dir` feeds it from the series file. A streamed run feeds it each block as soon as
//! the block's bytes have been read back from the file and found equal to the block's values
//! (`study::drive`), so that its analysis does not read the series again at the end
//! (`analyze_gathered`; except where members were flagged and the set is capped: the blocks'
//! stride ran over every member, not knowing the flags ahead). Both feed the same members in
//! the same order, so both give the same analysis, bit for bit.

use super::ranks::doubled_ranks_whole_and_sliced;
use super::{monotone_along, order_by, pearson_checked, spearman_of, varies, Analysis, PairRow, Scope, MAX_POOLED_SAMPLES};
use crate::error::{QbatError, Result};
use crate::output::added::Added;
use crate::output::plots::{draw_hist2d_plots, Hist2dCounter};
use crate::output::series::in_subset;
use crate::output::write_atomic;
use rayon::prelude::*;
use std::path::Path;

/// What a pass gathers: the pairs, the measures they use, and the correlation set's size.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub pairs: Vec<(String, String)>,
    /// The series' measure index of each pooled column.
    used: Vec<usize>,
    /// Each pair's measure indices in the series, and its pooled columns.
    pair_k: Vec<(usize, usize)>,
    pair_cols: Vec<(usize, usize)>,
    /// Members, sample times and measures of the series.
    n: usize,
    nt: usize,
    nm: usize,
    /// The members known to be flagged unhealthy before the pass (summary.csv's), left out
    /// of the stride: member u of the `strided_over = n - flagged` others is in the
    /// correlation set when `in_subset(u, strided_over, cap)`, so that a cap keeps `cap`
    /// healthy members, not `cap` less the flagged ones it fell on.
    strided_over: usize,
    cap: usize,
    /// Slots of the correlation set (`min(strided_over, cap)`).
    members_used: usize,
    monotone_tol: f64,
}

impl Layout {
    /// The layout of `pairs` (resolved among `measures`, the series' own) for a series of `n`
    /// members, `flagged` of them known to be flagged unhealthy before the pass (0 where that
    /// is not known: a run's blocks), and `nt` sample times, with at most `max_members` members
    /// in the correlation set. Err names what is wrong with the series.
    pub fn new(
        measures: &[String],
        pairs: Vec<(String, String)>,
        (n, flagged): (usize, usize),
        nt: usize,
        max_members: usize,
        monotone_tol: f64,
    ) -> std::result::Result<Layout, String> {
        if n == 0 {
            return Err("the series has no members".into());
        }
        let index = |m: &str| measures.iter().position(|p| p == m).ok_or_else(|| format!("{m} is not in the series"));
        let mut used: Vec<usize> = vec![];
        let mut pair_k = vec![];
        for (a, b) in &pairs {
            let (ka, kb) = (index(a)?, index(b)?);
            for k in [ka, kb] {
                if !used.contains(&k) {
                    used.push(k);
                }
            }
            pair_k.push((ka, kb));
        }
        let col_of = |k: usize| used.iter().position(|&u| u == k).expect("used");
        let pair_cols = pair_k.iter().map(|&(ka, kb)| (col_of(ka), col_of(kb))).collect();
        let cap = max_members.max(1).min((MAX_POOLED_SAMPLES / nt.max(1)).max(1));
        let strided_over = n.saturating_sub(flagged);
        Ok(Layout { pairs, used, pair_k, pair_cols, n, nt, nm: measures.len(), strided_over, cap, members_used: strided_over.min(cap), monotone_tol })
    }

    /// Whether a pass of `self` and one of `other` take the same columns of the same members
    /// (the stride's population matters only where the cap applies).
    fn same_set(&self, other: &Layout) -> bool {
        let uncapped = |l: &Layout| l.strided_over <= l.cap;
        (&self.pairs, &self.used, &self.pair_k, self.n, self.nt, self.nm, self.cap, self.monotone_tol.to_bits())
            == (&other.pairs, &other.used, &other.pair_k, other.n, other.nt, other.nm, other.cap, other.monotone_tol.to_bits())
            && (self.strided_over == other.strided_over || (uncapped(self) && uncapped(other)))
    }

    /// Bytes of the pooled columns.
    pub fn pooled_bytes(&self) -> u64 {
        (self.used.len() * self.members_used * self.nt * std::mem::size_of::<f64>()) as u64
    }

    /// Bytes the analysis holds at its peak beyond what is held already (`gathered`: the
    /// pooled columns, fed as a run's blocks landed): the columns (8 B a sample each), then
    /// either the series reader's three chunks in flight while they fill (`read_in_chunks`:
    /// about 2^20 values, or a member, each) or, as `finish` ranks them, their ranks pooled
    /// and per time (2 x 4 B) and a column's sort (`SORT_BYTES_PER_VALUE`, one at least:
    /// `columns_at_once`).
    pub fn memory_need(&self, gathered: bool) -> f64 {
        let samples = (self.members_used * self.nt) as f64;
        let columns = self.used.len() as f64 * samples * 8.0;
        let chunks = 3.0 * (1usize << 20).max(self.nt * self.nm) as f64 * 8.0;
        let ranks = self.used.len() as f64 * samples * 8.0 + samples * SORT_BYTES_PER_VALUE;
        if gathered {
            ranks
        } else {
            columns + chunks.max(ranks)
        }
    }

    /// Err where `memory_need` is more than the memory left (`check`): `field` named, and
    /// `advice` on what to change. Under `ulimit -d` with 48 and 64 threads the ranks aborted
    /// the default job's end, and `analyze` under `ulimit -d` and `-v`, before this check.
    pub fn check_fits(&self, gathered: bool, check: MemoryCheck, field: &str, advice: &str) -> Result<()> {
        use crate::config::available_memory::{available_memory, available_memory_without, size_need, size_text, Available, Limit};
        let need = self.memory_need(gathered);
        let avail = match check {
            MemoryCheck::Before => available_memory(),
            MemoryCheck::AtRunEnd => available_memory_without(Limit::AddressSpace),
            MemoryCheck::NoneLeft => Available { bytes: 0.0, limit: Limit::Host },
            MemoryCheck::Done => return Ok(()),
        };
        if need <= avail.bytes {
            return Ok(());
        }
        let raise = avail.limit.ulimit().map(|flag| format!("; or raise the limit ({flag})")).unwrap_or_default();
        Err(QbatError::TooLarge {
            field: field.into(),
            reason: format!(
                "the correlations of {} members x {} samples x {} measures need about {}, more than the {} available{}; {advice}{raise}",
                self.members_used,
                self.nt,
                self.used.len(),
                size_need(need),
                size_text(avail.bytes),
                avail.under()
            ),
        })
    }
}

/// The state of one pass.
pub struct Gather {
    layout: Layout,
    /// pooled[c][s * members_used + u]: column c of correlation-set member u at sample s, time
    /// by time, so that each sample time's column is one slice (compacted in `finish` when
    /// flagged members leave gaps).
    pooled: Vec<Vec<f64>>,
    /// Monotone counts per pair: (increasing, decreasing, either).
    counts: Vec<(usize, usize, usize)>,
    /// Members taken so far, those of them not flagged (the stride's index), those in the
    /// correlation set, and those left out.
    index: usize,
    unflagged: usize,
    kept: usize,
    skipped: usize,
    hist2d: Option<Hist2dCounter>,
}

impl Gather {
    /// An empty pass; `hist2d` counts the healthy members `add` is given.
    pub fn new(layout: Layout, hist2d: Option<Hist2dCounter>) -> Gather {
        // (each column zeroed on its own: `vec![column; k]` would copy the first into the others)
        let pooled = (0..layout.used.len()).map(|_| vec![0.0; layout.members_used * layout.nt]).collect();
        let counts = vec![(0, 0, 0); layout.pairs.len()];
        Gather { layout, pooled, counts, index: 0, unflagged: 0, kept: 0, skipped: 0, hist2d }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// `matches` with the tolerance it was gathered with (where run.json, which sets the
    /// tolerance `analyze_gathered` compares, is not yet written).
    pub fn matches_series(&self, measures: &[String], pairs: &[(String, String)], n: usize, nt: usize, max_members: usize) -> bool {
        self.matches(measures, pairs, n, nt, max_members, self.layout.monotone_tol)
    }

    /// Whether the correlation set may leave out members that are not flagged (the cap).
    pub fn capped(&self) -> bool {
        self.layout.members_used < self.layout.strided_over
    }

    /// The index of the next member it takes: members come in order.
    pub fn next_member(&self) -> usize {
        self.index
    }

    /// Take the next members, in order: each one's flag (unhealthy in summary.csv) and block
    /// (times x measures). The healthy ones are counted into the 2-D histograms, where it counts
    /// them (`new`'s `hist2d`).
    pub fn add(&mut self, members: &[(bool, &[f64])]) {
        let Layout { nt, nm, strided_over, cap, members_used, monotone_tol, .. } = self.layout;
        // the healthy members, and those of them in the correlation set
        let (mut blocks, mut subset): (Vec<&[f64]>, Vec<&[f64]>) = (vec![], vec![]);
        for &(flagged, block) in members {
            self.index += 1;
            // Members flagged unhealthy (summary.csv `health`, or a non-finite value)
            // are left out, as stats.csv leaves them out, and counted.
            if flagged {
                self.skipped += 1;
                continue;
            }
            let u = self.unflagged;
            self.unflagged += 1;
            if block.iter().any(|v| !v.is_finite()) {
                self.skipped += 1;
                continue;
            }
            // (never past the set's slots, whatever the flags the layout was given)
            if in_subset(u, strided_over, cap) && self.kept + subset.len() < members_used {
                subset.push(block);
            }
            blocks.push(block);
        }
        // the three passes over the members side by side, each in parallel
        let first = self.kept;
        self.kept += subset.len();
        let (pooled, used, pair_k, hist2d) = (&mut self.pooled, &self.layout.used, &self.layout.pair_k, &mut self.hist2d);
        let ((), monotone) = rayon::join(
            || {
                rayon::join(
                    || {
                        // (the members the correlations may take: flagged ones are not counted)
                        if let Some(h) = hist2d.as_mut() {
                            h.count_blocks(&blocks)
                        }
                    },
                    || gather_pooled(pooled, used, &subset, first, members_used, (nt, nm)),
                );
            },
            || (nt >= 2).then(|| monotone_counts(&blocks, pair_k, nt, nm, monotone_tol)),
        );
        for (total, add) in self.counts.iter_mut().zip(monotone.unwrap_or_default()) {
            *total = (total.0 + add.0, total.1 + add.1, total.2 + add.2);
        }
    }

    /// Whether it was fed every member of a series of these measures, pairs, members and
    /// sample times, and took the correlation set that `analyze` takes with this cap and
    /// monotone tolerance (its stride over the members not flagged, which a run's blocks
    /// learn only as they land).
    pub fn matches(&self, measures: &[String], pairs: &[(String, String)], n: usize, nt: usize, max_members: usize, monotone_tol: f64) -> bool {
        Layout::new(measures, pairs.to_vec(), (n, self.skipped), nt, max_members, monotone_tol).is_ok_and(|l| l.same_set(&self.layout)) && self.index == n
    }

    /// Count `counter`'s histograms from the pooled columns, when they hold every sample of
    /// every member (none left out, the correlation set not capped); false otherwise, with
    /// `counter` untouched.
    pub fn count_hist2d(&self, counter: &mut Hist2dCounter) -> bool {
        let l = &self.layout;
        if self.skipped > 0 || self.kept != l.n || l.members_used != l.n {
            return false;
        }
        counter.count_columns(|k| l.used.iter().position(|&u| u == k).map(|c| &self.pooled[c][..]))
    }

    /// The histograms `finish` draws, counted elsewhere.
    pub fn set_hist2d(&mut self, counter: Hist2dCounter) {
        self.hist2d = Some(counter);
    }

    /// The correlations from the pooled columns, analysis.csv written into `dir` (recorded in
    /// its manifest) and the histograms drawn. `series` names the file in errors; `times` are
    /// its sample times; `from_blocks` says how it was fed (`Analysis::from_blocks`).
    pub fn finish(self, dir: &Path, series: &Path, times: Vec<f64>, from_blocks: bool) -> Result<Analysis> {
        let Gather { layout, mut pooled, counts, index, kept, skipped, hist2d, .. } = self;
        let Layout { pairs, pair_cols, n, nt, members_used, monotone_tol, .. } = layout;
        let bad = |why: String| QbatError::invalid(series.display().to_string(), why);
        if index != n {
            return Err(bad(format!("read {index} members, expected {n}")));
        }
        if skipped == n {
            return Err(QbatError::Numerics(format!("{}: every member is flagged unhealthy; there is nothing to analyse", series.display())));
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
        // pooled column (None for a constant column, whose every slice is constant too); as
        // many columns at once as the memory left holds their sorts (`columns_at_once`).
        let at_once = columns_at_once(pooled.len(), members_used * nt);
        let ranks: Vec<Option<(Vec<u32>, Vec<u32>)>> = pooled
            .chunks(at_once)
            .flat_map(|columns| {
                columns
                    .par_iter()
                    .map_init(Vec::new, |scratch, c| varies(c).then(|| doubled_ranks_whole_and_sliced(c, members_used, scratch)))
                    .collect::<Vec<_>>()
            })
            .collect();
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
                        t: Some(times[s]),
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
        let mut analysis = Analysis {
            dir: dir.into(),
            members_total: n,
            members_used,
            skipped,
            capped: members_used < healthy,
            times,
            monotone_tol,
            rows,
            files: vec![],
            from_blocks,
        };
        // written aside and committed with the manifest that lists them: a failure (a full
        // disk) leaves DIR as it was, with no file of ours unlisted (which the next analysis
        // would have to refuse) or listed with other bytes
        let added = Added::begin(dir)?;
        write_atomic(&added.staging().join("analysis.csv"), |w| super::write_csv(&analysis, w)).map_err(|e| added.named(e))?;
        let mut names = vec!["analysis.csv".to_string()];
        if let Some(h) = hist2d {
            let plots = draw_hist2d_plots(dir, added.staging(), &h.finish()).map_err(|e| added.named(e))?;
            names.extend(plots.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().to_string()));
        }
        added.commit(&names)?;
        analysis.files = names.iter().map(|n| dir.join(n)).collect();
        Ok(analysis)
    }
}

/// Per pair (a, b), how many of `blocks` (one member's times x measures each) have b
/// monotone non-decreasing, non-increasing, and either, along a. Each thread reuses its
/// columns and sort order from member to member, and a's order serves the pairs that follow
/// with the same a; the counts are integers, added in any order.
fn monotone_counts(blocks: &[&[f64]], pair_k: &[(usize, usize)], nt: usize, nm: usize, tol: f64) -> Vec<(usize, usize, usize)> {
    let add = |mut total: Vec<(usize, usize, usize)>, more: Vec<(usize, usize, usize)>| {
        for (t, m) in total.iter_mut().zip(more) {
            *t = (t.0 + m.0, t.1 + m.1, t.2 + m.2);
        }
        total
    };
    blocks
        .par_iter()
        .fold(
            || (vec![(0, 0, 0); pair_k.len()], Vec::<f64>::new(), Vec::<f64>::new(), Vec::<usize>::new()),
            |(mut counts, mut va, mut vb, mut order), blk| {
                let column = |k: usize, into: &mut Vec<f64>| {
                    into.clear();
                    into.extend((0..nt).map(|s| blk[s * nm + k]));
                };
                let mut sorted_by = None;
                for (c, &(ka, kb)) in counts.iter_mut().zip(pair_k) {
                    if sorted_by != Some(ka) {
                        column(ka, &mut va);
                        order_by(&va, &mut order);
                        sorted_by = Some(ka);
                    }
                    column(kb, &mut vb);
                    let (inc, dec) = monotone_along(&va, &vb, &order, tol);
                    *c = (c.0 + usize::from(inc), c.1 + usize::from(dec), c.2 + usize::from(inc || dec));
                }
                (counts, va, vb, order)
            },
        )
        .map(|(counts, ..)| counts)
        .reduce(|| vec![(0, 0, 0); pair_k.len()], add)
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
    // Members GROUP at a time: a group's values at one (time, column) are consecutive in the
    // column, so that each store fills a cache line rather than touching one line (and one
    // page) per member, `members` values apart; and its reads at one time are a few lines of
    // each member's block.
    const GROUP: usize = 8;
    tasks.into_par_iter().enumerate().for_each(|(t, mut cols)| {
        let times = t * times_per_task..((t + 1) * times_per_task).min(nt);
        for (g, group) in subset.chunks(GROUP).enumerate() {
            let at = first + g * GROUP;
            for (r, s) in times.clone().enumerate() {
                for (col, &k) in cols.iter_mut().zip(used) {
                    let run = &mut col[r * members + at..r * members + at + group.len()];
                    for (v, block) in run.iter_mut().zip(group) {
                        *v = block[s * nm + k];
                    }
                }
            }
        }
    });
}

/// Which memory left an analysis is checked against (`Layout::check_fits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryCheck {
    /// all that is left, every limit counted: `analyze`, and a run before its first block (the
    /// analysis runs last, when a run's blocks are gone; `memory_need` is about 6% above what
    /// it was seen to take)
    Before,
    /// at a run's end, all that is left under the data-size limit, a cgroup's and the host's,
    /// but not the address-space limit: VmSize then holds the arenas' reservations, which the
    /// analysis reuses (the check refused analyses that ran under `ulimit -v 1000000` to
    /// `1100000`), while VmData holds what the threads' arenas kept, which it may not (64
    /// threads under `ulimit -d 660000` aborted without the check)
    AtRunEnd,
    /// nothing left (the `analysis-short` fault)
    NoneLeft,
    /// checked already, by `memory_left_for` just before (a run's end, a merge): not again, so
    /// that what the plots beside it take meanwhile cannot fail what that check let through
    Done,
}

/// Bytes a column's sort takes while its ranks are computed, per value: the packed samples
/// (8 B) and the bucket starts and radix sort's buffers, with slack.
const SORT_BYTES_PER_VALUE: f64 = 16.0;

/// How many of `columns` columns of `len` values to rank at once: all of them (one a thread)
/// where the usable memory holds their ranks (8 B a value each) and a sort a column, else as
/// many sorts as it holds beside the ranks, at least one. Under a tight `ulimit -d` a sort a
/// thread, 16 threads' worth of the default job's pooled columns, aborted the run at its end.
fn columns_at_once(columns: usize, len: usize) -> usize {
    let usable = crate::config::available_memory::available_memory().usable();
    let ranks = (columns * len) as f64 * 8.0;
    let sort = len as f64 * SORT_BYTES_PER_VALUE;
    (((usable - ranks) / sort).floor().max(1.0) as usize).min(columns.max(1))
}
