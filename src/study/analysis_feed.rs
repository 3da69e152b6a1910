//! The default study's analysis taken block by block as the blocks land (`analyze::Gather`):
//! each block once the series file's bytes of it were read back and found equal to its
//! values, so that the analysis at the end does not read the series again.
//!
//! It feeds only while the blocks come in member order from the first, in one precision (the
//! monotone tolerance depends on it), each of them checked; otherwise it stops, and the
//! analysis at the end reads the series file, as `qbat-gpu analyze` does. Either way the
//! analysis is the same, bit for bit.

use crate::analyze::{resolve_pairs, AnalyzeOptions, Gather, Layout};
use crate::engine::Precision;

pub(super) enum AnalysisFeed {
    Off,
    Feeding { gather: Box<Gather>, precision: Precision },
}

impl AnalysisFeed {
    /// A feed for a run of `members` members and `n_times` sample times whose first block (of
    /// `measures`, in `precision`) is the first absorbed; Off where the analysis' columns would
    /// take over an eighth of the available memory (on top of the blocks').
    pub(super) fn start(measures: &[String], members: usize, n_times: usize, precision: Precision) -> AnalysisFeed {
        let opts = AnalyzeOptions::default();
        let Ok(pairs) = resolve_pairs(measures, &opts) else {
            return AnalysisFeed::Off;
        };
        // the tolerance `analyze` takes from run.json's precision
        let tol = if precision == Precision::F64 { 1e-9 } else { 1e-5 };
        // (the members flagged are learnt only as the blocks land: the stride runs over all of
        // them, and `analyze_gathered` reads the series again where flagged members would
        // change the set)
        match Layout::new(measures, pairs, (members, 0), n_times, opts.max_members, tol) {
            Ok(layout) if layout.pooled_bytes() as f64 <= crate::config::available_memory_bytes() / 8.0 => {
                AnalysisFeed::Feeding { gather: Box::new(Gather::new(layout, None)), precision }
            }
            _ => AnalysisFeed::Off,
        }
    }

    pub(super) fn is_on(&self) -> bool {
        matches!(self, AnalysisFeed::Feeding { .. })
    }

    /// Whether it feeds a correlation set capped below the run's members (whose 2-D
    /// histograms are then counted from the series at the end).
    pub(super) fn is_capped(&self) -> bool {
        matches!(self, AnalysisFeed::Feeding { gather, .. } if gather.capped())
    }

    /// Take the block of members [first, ..): its `values` (one row of `row` values per
    /// member), which members are healthy (`include`), its precision, and whether the series
    /// file's bytes of it were read back and found equal to the values (`checked`). A block
    /// out of order, in another precision or not checked stops the feed.
    pub(super) fn take(&mut self, first: usize, values: &[f64], row: usize, include: &[bool], precision: Precision, checked: bool) {
        let AnalysisFeed::Feeding { gather, precision: p } = self else {
            return;
        };
        if !checked || gather.next_member() != first || *p != precision || row == 0 || values.len() != include.len() * row {
            *self = AnalysisFeed::Off;
            return;
        }
        let members: Vec<(bool, &[f64])> = values.chunks_exact(row).zip(include).map(|(block, &ok)| (!ok, block)).collect();
        gather.add(&members);
    }

    pub(super) fn into_gather(self) -> Option<Gather> {
        match self {
            AnalysisFeed::Feeding { gather, .. } => Some(*gather),
            AnalysisFeed::Off => None,
        }
    }
}
