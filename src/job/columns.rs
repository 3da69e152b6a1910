//! Where each output column of a two-qubit run comes from: the integrator's columns (kernel
//! or twin, `TwoQubitJob::measures`), the eigen-solve measures (`EigenJob::measures`), or
//! neither (NaN). The GPU host fills a block's rows from the mapped read-back with it: one
//! pass from where the values were computed to where they are kept, in the plan's column
//! order. (The CPU engine's `merge_columns` applies the same rule to the twin's buffers.)

use super::two_qubit::kernel_code;
use crate::measures::Measure;
use rayon::prelude::*;

/// The source of one output column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnSource {
    /// Column c of the integrator's rows (a measure the kernel computes).
    Integrator(usize),
    /// Column c of the eigen-solve measures' rows.
    Eigen(usize),
    /// Neither: NaN.
    Missing,
}

/// The sources of the columns `out` from the integrator's columns `integrator` (a job's
/// `measures`) and the eigen-solve measures' `eigen`: a measure the integrator lists is taken
/// from it (NaN where the kernel has no code for it, as its column holds no value), else from
/// the eigen-solve measures, else NaN.
pub fn column_sources(out: &[Measure], integrator: &[Measure], eigen: &[Measure]) -> Vec<ColumnSource> {
    out.iter()
        .map(|m| match (integrator.iter().position(|x| x == m), eigen.iter().position(|x| x == m)) {
            (Some(c), _) if kernel_code(integrator[c]).is_some() => ColumnSource::Integrator(c),
            (Some(_), _) => ColumnSource::Missing,
            (None, Some(c)) => ColumnSource::Eigen(c),
            (None, None) => ColumnSource::Missing,
        })
        .collect()
}

/// Rows handed to a rayon task at a time: a few thousand values.
const ROWS_PER_TASK: usize = 256;

/// `out` := rows of `columns.len()` values, row r's column k from `columns[k]`:
/// `integrator(r, c)`, `eigen(r, c)` (rows counted from `out`'s first), or NaN. Every entry
/// is written, in parallel over rows.
pub fn fill_rows(out: &mut [f64], columns: &[ColumnSource], integrator: impl Fn(usize, usize) -> f64 + Sync, eigen: impl Fn(usize, usize) -> f64 + Sync) {
    let width = columns.len();
    if width == 0 {
        return;
    }
    assert_eq!(out.len() % width, 0, "{} values are not rows of {width}", out.len());
    out.par_chunks_mut(width * ROWS_PER_TASK).enumerate().for_each(|(task, rows)| {
        for (i, row) in rows.chunks_exact_mut(width).enumerate() {
            let r = task * ROWS_PER_TASK + i;
            for (v, source) in row.iter_mut().zip(columns) {
                *v = match *source {
                    ColumnSource::Integrator(c) => integrator(r, c),
                    ColumnSource::Eigen(c) => eigen(r, c),
                    ColumnSource::Missing => f64::NAN,
                };
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::two_qubit::KERNEL_MEASURES;
    use Measure::*;

    /// Each output column names the list it comes from and its place there; a measure the
    /// kernel has no code for is NaN even where the integrator lists it.
    #[test]
    fn sources_follow_the_lists() {
        assert!(kernel_code(PhotonNumber).is_none() && !KERNEL_MEASURES.contains(&Concurrence));
        let integrator = [EnergyB, PhotonNumber, BellChsh];
        let eigen = [MinEigenvalue, Concurrence];
        let got = column_sources(&[Concurrence, BellChsh, PhotonNumber, EnergyB, Purity, MinEigenvalue], &integrator, &eigen);
        use ColumnSource::*;
        assert_eq!(got, vec![Eigen(1), Integrator(2), Missing, Integrator(0), Missing, Eigen(0)]);
    }

    /// Every entry of rows spanning several tasks is written from its own row and column.
    #[test]
    fn rows_are_filled_from_their_sources() {
        use ColumnSource::*;
        let columns = [Eigen(1), Missing, Integrator(2), Integrator(0)];
        let rows = 3 * ROWS_PER_TASK + 5;
        let mut out = vec![7.0; rows * columns.len()];
        fill_rows(&mut out, &columns, |r, c| (10 * r + c) as f64, |r, c| -((10 * r + c) as f64));
        for r in 0..rows {
            let row = &out[r * 4..r * 4 + 4];
            assert_eq!(row[0], -((10 * r + 1) as f64));
            assert!(row[1].is_nan());
            assert_eq!((row[2], row[3]), ((10 * r + 2) as f64, (10 * r) as f64));
        }
    }
}
