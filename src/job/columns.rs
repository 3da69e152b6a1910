//! Where each output column of a two-qubit run comes from: the integrator's columns (kernel
//! or twin, `TwoQubitJob::measures`), the eigen-solve measures (`EigenJob::measures`), or
//! neither (NaN). The GPU host fills a block's rows from the mapped read-back with it: one
//! pass from where the values were computed (member-minor on the device) to where they are
//! kept (member-major rows), in the plan's column order. (The CPU engine's `merge_columns` applies the same rule to the twin's buffers.)

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

/// Members per rayon task of `fill_rows`: a source's values of one (sample, column) for them
/// are one or two cache lines (16 reals).
const MEMBERS_PER_TASK: usize = 16;

/// `out` := `samples` rows per member, member-major, of `columns.len()` values: member i's
/// sample s, column k from `columns[k]`: `integrator(i, s, c)`, `eigen(i, s, c)` (members
/// counted from `out`'s first), or NaN. The GPU's sources are member-minor (a value's
/// neighbours are the next members'), so tasks take a few members each and read, for each
/// (sample, column), their neighbouring values together. Every entry is written, in parallel.
pub fn fill_rows(
    out: &mut [f64],
    columns: &[ColumnSource],
    samples: usize,
    integrator: impl Fn(usize, usize, usize) -> f64 + Sync,
    eigen: impl Fn(usize, usize, usize) -> f64 + Sync,
) {
    let width = columns.len();
    let row_block = width * samples;
    if row_block == 0 {
        return;
    }
    assert_eq!(out.len() % row_block, 0, "{} values are not members of {samples} rows of {width}", out.len());
    out.par_chunks_mut(row_block * MEMBERS_PER_TASK).enumerate().for_each(|(task, rows)| {
        let (first, members) = (task * MEMBERS_PER_TASK, rows.len() / row_block);
        for s in 0..samples {
            for (k, source) in columns.iter().enumerate() {
                let at = s * width + k;
                match *source {
                    ColumnSource::Integrator(c) => put_column(rows, members, row_block, at, |j| integrator(first + j, s, c)),
                    ColumnSource::Eigen(c) => put_column(rows, members, row_block, at, |j| eigen(first + j, s, c)),
                    ColumnSource::Missing => put_column(rows, members, row_block, at, |_| f64::NAN),
                }
            }
        }
    });
}

/// Entry `at` of each of `members` rows of `row_block` values: `value(j)` for row j (a
/// function per source, inlined: no call per value).
#[inline(always)]
fn put_column(rows: &mut [f64], members: usize, row_block: usize, at: usize, value: impl Fn(usize) -> f64) {
    for j in 0..members {
        rows[j * row_block + at] = value(j);
    }
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

    /// Every entry of members spanning several tasks (the last one short) is written from its
    /// own member, sample and column.
    #[test]
    fn rows_are_filled_from_their_sources() {
        use ColumnSource::*;
        let columns = [Eigen(1), Missing, Integrator(2), Integrator(0)];
        let (members, samples) = (3 * MEMBERS_PER_TASK + 5, 7);
        let mut out = vec![7.0; members * samples * columns.len()];
        let code = |i: usize, s: usize, c: usize| (1000 * i + 10 * s + c) as f64;
        fill_rows(&mut out, &columns, samples, code, |i, s, c| -code(i, s, c));
        for i in 0..members {
            for s in 0..samples {
                let row = &out[(i * samples + s) * 4..(i * samples + s) * 4 + 4];
                assert_eq!(row[0], -code(i, s, 1));
                assert!(row[1].is_nan());
                assert_eq!((row[2], row[3]), (code(i, s, 2), code(i, s, 0)));
            }
        }
    }
}
