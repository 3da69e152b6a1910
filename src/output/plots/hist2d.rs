//! The 2-D histograms of pairs of measures (`plot_hist2d_<a>_<b>`): counted in one pass over
//! a series, on their own or inside another pass (`analyze`), and drawn.

use super::super::series::{read_in_chunks, Chunk, SeriesReader};
use super::super::stats::read_stats;
use super::super::summary::read_run_json;
use super::super::summary_ids::SummaryIds;
use super::{draw_axes, draw_on, drawable, encode_png, ensure_font, heat, label_area, measure_unit, s, scale_of, units, write_pair, DrawResult, YAxis, SIZE};
use crate::error::{QbatError, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use rayon::prelude::*;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// A 2-D histogram of (a, b) over every healthy member and sample time of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Hist2d {
    pub a: String,
    pub b: String,
    pub a_range: (f64, f64),
    pub b_range: (f64, f64),
    pub bins: usize,
    /// counts[ia * bins + ib]
    pub counts: Vec<u64>,
}

/// Memory for the counts of `Hist2dCounter::count`'s tasks: 32 MiB holds the counts of 1,165
/// pairs of 60 x 60 bins, so a task per thread (up to 129) for the default study's 9 pairs,
/// and 3 tasks for every pair of 25 measures.
const PARTIAL_BUDGET: usize = 32 << 20;

/// The 2-D histograms of pairs of measures, counted a chunk of members at a time: by
/// `hist2d_data`, or inside another pass over the series (`analyze`).
pub struct Hist2dCounter {
    hists: Vec<Hist2d>,
    /// the pairs' measure indices in the series
    ks: Vec<(usize, usize)>,
    nt: usize,
    nm: usize,
    /// Counts of the tasks of `count`, each laid out as the histograms' counts one after
    /// another; added into `hists` by `finish`.
    partial: Vec<Vec<u64>>,
}

impl Hist2dCounter {
    /// Empty histograms of `pairs` of `rd`'s series in DIR. Ranges: each measure's min and max
    /// over the healthy members and all times (stats.csv's min/max when there, else a first
    /// pass over the series).
    pub fn new(dir: &Path, rd: &SeriesReader, pairs: &[(String, String)], bins: usize) -> Result<Hist2dCounter> {
        let (nt, nm) = (rd.n_times(), rd.n_measures());
        let idx = |m: &str| rd.measure_index(m).ok_or_else(|| QbatError::invalid("pairs", format!("{m} is not in the series")));
        let ks: Vec<(usize, usize)> = pairs.iter().map(|(a, b)| Ok((idx(a)?, idx(b)?))).collect::<Result<_>>()?;
        let mut range = vec![(f64::INFINITY, f64::NEG_INFINITY); nm];
        if dir.join("stats.csv").is_file() {
            let stats = read_stats(dir)?;
            for r in &stats.stats {
                // a bound that is not finite (a damaged stats.csv) leaves the range to the series
                if let Some(k) = rd.measure_index(&stats.measures[r.measure]).filter(|_| r.min.is_finite() && r.max.is_finite()) {
                    range[k] = (range[k].0.min(r.min), range[k].1.max(r.max));
                }
            }
        }
        let needed: Vec<usize> = ks.iter().flat_map(|&(a, b)| [a, b]).collect();
        let mut block = vec![];
        // an unset range (no stats.csv row) is (inf, -inf); one too wide to draw is taken from
        // the series instead (a stats.csv that does not match it)
        for &k in &needed {
            if !(range[k].1 - range[k].0).is_finite() {
                range[k] = (f64::INFINITY, f64::NEG_INFINITY);
            }
        }
        if needed.iter().any(|&k| range[k].0 > range[k].1) {
            let mut first = SeriesReader::open(dir)?.ok_or_else(|| QbatError::invalid("DIR", format!("{}: the series went away", dir.display())))?;
            let flagged = flagged_members(dir, &first)?;
            while let Some(id) = first.next_member(&mut block)? {
                if !healthy(id, &block, &flagged) {
                    continue;
                }
                for s in 0..nt {
                    for &k in &needed {
                        let v = block[s * nm + k];
                        if v.is_finite() {
                            range[k] = (range[k].0.min(v), range[k].1.max(v));
                        }
                    }
                }
            }
        }
        // Widen a single value's range so that it sits mid-bin (an unset range stays unset).
        let range: Vec<(f64, f64)> =
            range.into_iter().map(|(lo, hi)| if lo == hi { (lo - 0.5f64.max(1e-9 * lo.abs()), hi + 0.5f64.max(1e-9 * hi.abs())) } else { (lo, hi) }).collect();
        // a pair is drawn when both its measures have finite values (a set range) over a
        // drawable width
        let (pairs, ks): (Vec<&(String, String)>, Vec<_>) = pairs
            .iter()
            .zip(ks)
            .filter(|((a, b), (ka, kb))| {
                let plot = format!("plot_hist2d_{a}_{b}");
                [*ka, *kb].iter().all(|&k| range[k].0 <= range[k].1 && drawable(&plot, range[k]).is_some())
            })
            .unzip();
        let hists = pairs
            .iter()
            .zip(&ks)
            .map(|((a, b), &(ka, kb))| Hist2d { a: a.clone(), b: b.clone(), a_range: range[ka], b_range: range[kb], bins, counts: vec![0; bins * bins] })
            .collect();
        Ok(Hist2dCounter { hists, ks, nt, nm, partial: vec![] })
    }

    /// Count the samples of a chunk's healthy members (`healthy`: not flagged in summary.csv,
    /// every value finite, as the analysis and stats.csv take them). Each task (one per thread, within
    /// `PARTIAL_BUDGET`, and one at least) takes a run of members and counts every pair of a
    /// member while its samples are in cache (a pass per pair would stream the chunk from
    /// memory once per pair), into counts of its own; `finish` adds them up (the counts are
    /// integers, so the order they are added in does not matter).
    pub fn count(&mut self, chunk: &Chunk, flagged: &HashSet<u64>) {
        let blocks: Vec<&[f64]> = chunk.members().filter(|&(id, block)| healthy(id, block, flagged)).map(|(_, block)| block).collect();
        self.count_blocks(&blocks);
    }

    /// `count` of members' blocks (times x measures), every one counted.
    pub fn count_blocks(&mut self, blocks: &[&[f64]]) {
        let (nt, nm, cells) = (self.nt, self.nm, self.cells());
        if cells == 0 || blocks.is_empty() {
            return;
        }
        if self.partial.is_empty() {
            // a task per thread, as many as fit in PARTIAL_BUDGET (one at least)
            let bytes = cells * self.hists.len() * std::mem::size_of::<u64>();
            let tasks = rayon::current_num_threads().min(PARTIAL_BUDGET / bytes).max(1);
            self.partial = vec![vec![0; cells * self.hists.len()]; tasks];
        }
        let tasks = self.partial.len().min(blocks.len()).max(1);
        let (hists, ks) = (&self.hists, &self.ks);
        self.partial.par_iter_mut().zip(blocks.par_chunks(blocks.len().div_ceil(tasks).max(1))).for_each(|(counts, members)| {
            for block in members {
                for ((h, &(ka, kb)), counts) in hists.iter().zip(ks).zip(counts.chunks_exact_mut(cells)) {
                    for s in 0..nt {
                        h.count_sample(counts, block[s * nm + ka], block[s * nm + kb]);
                    }
                }
            }
        });
    }

    /// Count every sample of columns given by measure (`column(k)`: measure k's value of each
    /// sample, in the same order for every measure), each pair's columns split among the
    /// threads; false, counting nothing, when a pair's measure has no column.
    pub fn count_columns<'a>(&mut self, column: impl Fn(usize) -> Option<&'a [f64]>) -> bool {
        let Some(columns) = self.ks.iter().map(|&(ka, kb)| Some((column(ka)?, column(kb)?))).collect::<Option<Vec<_>>>() else {
            return false;
        };
        let cells = self.cells();
        for (h, (xa, xb)) in self.hists.iter_mut().zip(columns) {
            let part = xa.len().div_ceil(rayon::current_num_threads().max(1)).max(1);
            let counts = xa
                .par_chunks(part)
                .zip(xb.par_chunks(part))
                .map(|(xa, xb)| {
                    let mut counts = vec![0u64; cells];
                    for (&va, &vb) in xa.iter().zip(xb) {
                        h.count_sample(&mut counts, va, vb);
                    }
                    counts
                })
                .collect::<Vec<_>>();
            for part in counts {
                for (c, p) in h.counts.iter_mut().zip(part) {
                    *c += p;
                }
            }
        }
        true
    }

    /// Cells of one histogram.
    fn cells(&self) -> usize {
        self.hists.first().map_or(0, |h| h.bins * h.bins)
    }

    /// Add the tasks' counts into the histograms and drop them.
    fn fold_partials(&mut self) {
        let cells = self.cells().max(1);
        for counts in self.partial.drain(..) {
            for (h, part) in self.hists.iter_mut().zip(counts.chunks_exact(cells)) {
                for (c, p) in h.counts.iter_mut().zip(part) {
                    *c += p;
                }
            }
        }
    }

    pub fn finish(mut self) -> Vec<Hist2d> {
        self.fold_partials();
        self.hists
    }
}

impl Hist2d {
    /// Count the sample (va, vb) into `counts` (laid out as `self.counts`) where both are finite.
    #[inline]
    fn count_sample(&self, counts: &mut [u64], va: f64, vb: f64) {
        let bins = self.bins;
        // The cast truncates toward zero and saturates (NaN and negatives to 0): for the bin
        // index that is floor, clamped, without a libm call per sample.
        let bin = |v: f64, (lo, hi): (f64, f64)| (((v - lo) / (hi - lo) * bins as f64) as usize).min(bins - 1);
        if va.is_finite() && vb.is_finite() {
            counts[bin(va, self.a_range) * bins + bin(vb, self.b_range)] += 1;
        }
    }
}

/// A member the histograms count: not flagged unhealthy in summary.csv, and every value of it
/// finite (as the analysis and stats.csv take members).
fn healthy(id: u64, block: &[f64], flagged: &HashSet<u64>) -> bool {
    !flagged.contains(&id) && block.iter().all(|v| v.is_finite())
}

/// The members DIR's summary.csv flags unhealthy (none without one).
fn flagged_members(dir: &Path, rd: &SeriesReader) -> Result<HashSet<u64>> {
    Ok(SummaryIds::read(dir, rd.members_total, &rd.path)?.flagged)
}

/// `counter`'s histograms counted in a pass over DIR's series.
pub fn hist2d_counted(dir: &Path, mut counter: Hist2dCounter) -> Result<Hist2dCounter> {
    if let Some(mut rd) = SeriesReader::open(dir)? {
        let flagged = flagged_members(dir, &rd)?;
        read_in_chunks(&mut rd, |chunk| {
            counter.count(chunk, &flagged);
            Ok(())
        })?;
    }
    Ok(counter)
}

/// Histograms of the pairs that can be drawn, in their order, in one pass over the series (see
/// `Hist2dCounter::new` for the ranges). A pair is left out when a measure of it has no finite
/// value (silently, as a band plot is), or a range too wide to draw (with a note).
pub fn hist2d_data(dir: &Path, pairs: &[(String, String)], bins: usize) -> Result<Vec<Hist2d>> {
    let Some(mut rd) = SeriesReader::open(dir)? else {
        return Ok(vec![]);
    };
    let mut counter = Hist2dCounter::new(dir, &rd, pairs, bins)?;
    let flagged = flagged_members(dir, &rd)?;
    read_in_chunks(&mut rd, |chunk| {
        counter.count(chunk, &flagged);
        Ok(())
    })?;
    Ok(counter.finish())
}

/// Bins per axis of the 2-D histograms.
pub const HIST_BINS: usize = 60;

/// `plot_hist2d_<a>_<b>` for each pair (color: log of the count).
pub fn write_hist2d_plots(dir: &Path, pairs: &[(String, String)]) -> Result<Vec<PathBuf>> {
    draw_hist2d_plots(dir, dir, &hist2d_data(dir, pairs, HIST_BINS)?)
}

/// The file names of the 2-D histogram of (a, b), without their .png and .svg.
pub fn hist2d_stem(a: &str, b: &str) -> String {
    format!("plot_hist2d_{a}_{b}")
}

/// `plot_hist2d_<a>_<b>` of each counted histogram of the output `dir` (its run.json names the
/// model's units), written into `into`.
pub fn draw_hist2d_plots(dir: &Path, into: &Path, data: &[Hist2d]) -> Result<Vec<PathBuf>> {
    let model = read_run_json(dir).and_then(|v| v["model"].as_str().map(String::from)).unwrap_or_default();
    let (_, eunit) = units(&model);
    let drawn: Vec<Vec<PathBuf>> = data
        .par_iter()
        .map(|h| -> Result<Vec<PathBuf>> {
            let total: u64 = h.counts.iter().sum();
            let peak = h.counts.iter().copied().max().unwrap_or(0).max(1) as f64;
            // (each axis drawn scaled where its values are tiny or huge: `scale_of`)
            let (sa, sb) = (scale_of(h.a_range), scale_of(h.b_range));
            let (xr, yr) = (sa.span(h.a_range), sb.span(h.b_range));
            let (xl, yl) = (measure_unit(&h.a, eunit) + &sa.note, measure_unit(&h.b, eunit) + &sb.note);
            render_both!(into, &hist2d_stem(&h.a, &h.b), SIZE, |root: &DrawingArea<_, Shift>| -> DrawResult {
                let mut chart = ChartBuilder::on(root)
                    .caption(
                        format!("{} against {}: {} samples (members x times), color log(1 + count), 1 pale to {} dark", h.b, h.a, total, peak as u64),
                        ("sans-serif", 17),
                    )
                    .margin(14)
                    .x_label_area_size(48)
                    .y_label_area_size(label_area(yr, 15))
                    .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
                    .map_err(s)?;
                draw_axes(&mut chart, (xl.as_str(), xr), (yl.as_str(), &YAxis::plain(yr)), 15, false)?;
                let (dx, dy) = ((xr.1 - xr.0) / h.bins as f64, (yr.1 - yr.0) / h.bins as f64);
                chart
                    .draw_series(h.counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(i, c)| {
                        let (ia, ib) = (i / h.bins, i % h.bins);
                        let x = xr.0 + ia as f64 * dx;
                        let y = yr.0 + ib as f64 * dy;
                        // log scale: one count is pale, the fullest bin dark
                        let f = (*c as f64).ln_1p() / peak.ln_1p();
                        Rectangle::new([(x, y), (x + dx, y + dy)], heat(f).filled())
                    }))
                    .map_err(s)?;
                Ok(())
            })
        })
        .collect::<Result<_>>()?;
    Ok(drawn.into_iter().flatten().collect())
}
