//! Streamed, exactly mergeable ensemble statistics.
//!
//! Each (sample time, measure) cell keeps
//! - n, min, max;
//! - S1 = sum x and S2 = sum x^2 exactly (`exact_sum.rs`: in fixed point while values are
//!   added, as Shewchuk expansions when rounded or stored), so that the mean S1/n is
//!   correctly rounded (`ExactSum::quotient`) and the variance's numerator n S2 - S1^2 exact,
//!   whatever the order, chunking or sharding of the members;
//! - a log-bucket quantile sketch with integer counts, so merges are exact: |x| falls in the
//!   bucket named by the top 21 bits of its IEEE pattern (exponent and 9 mantissa bits, see
//!   `bucket_of`), represented by the bucket's midpoint, within 2^-10 < a =
//!   `QUANTILE_REL_RESOLUTION` of every value in it; |x| < `QUANTILE_ZERO` goes to a zero
//!   bucket represented by 0.
//!
//! Quantiles follow numpy's default (linear interpolation between the order statistics x_lo,
//! x_hi around the rank) applied to the bucket representatives, clamped to [min, max]: each is
//! within max(a max(|x_lo|, |x_hi|), QUANTILE_ZERO) of numpy's value on the full data (a |q|
//! when x_lo and x_hi have the same sign; near a sign change the larger neighbour sets it).
//!
//! Memory per cell does not grow with the ensemble beyond the buckets its values occupy: at
//! most 512 per binade of |x| covered (about 1,700 per decade), 8 bytes each, stored sparsely.
//! A block's sketch keys are sorted and merged once per cell, so adding a value costs its two
//! exact sums and one key, with no logarithm.

mod sketch;

use super::exact_sum::{ExactSum, FixedSum, COLUMN_MAX};
use crate::error::{QbatError, Result};
use rayon::prelude::*;
use sketch::{sketch_key, FoldScratch, Sketch, MAX_KEY};
use std::io::{Read, Write};

/// Relative resolution a of the quantiles.
pub const QUANTILE_REL_RESOLUTION: f64 = 1e-3;
/// Values with |x| below this go to the zero bucket.
pub const QUANTILE_ZERO: f64 = 1e-12;

/// Statistics of one (sample, measure) cell.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub n: u64,
    pub min: f64,
    pub max: f64,
    /// sum x and sum x^2, exact in fixed point
    s1: FixedSum,
    s2: FixedSum,
    sketch: Sketch,
}

impl Default for Cell {
    fn default() -> Self {
        Cell { n: 0, min: f64::INFINITY, max: f64::NEG_INFINITY, s1: FixedSum::default(), s2: FixedSum::default(), sketch: Sketch::default() }
    }
}

impl Cell {
    /// Add a finite value (the caller excludes non-finite ones).
    pub fn add(&mut self, x: f64) {
        let key = self.add_moments(x);
        self.sketch.fold(&mut [key], &mut FoldScratch::default());
    }

    /// n, min, max and the exact sums of x and x^2; returns the value's pending sketch key.
    #[inline]
    fn add_moments(&mut self, x: f64) -> u32 {
        self.s1.add(x);
        self.s2.add_square(x);
        self.add_count(x)
    }

    /// n, min and max of a value whose sums are added elsewhere; returns its sketch key.
    #[inline]
    fn add_count(&mut self, x: f64) -> u32 {
        self.n += 1;
        self.min = least(self.min, x);
        self.max = greatest(self.max, x);
        sketch_key(x)
    }

    /// `add_moments` over a column of values (at most `COLUMN_MAX`; non-finite ones left
    /// out), pushing their pending sketch keys: the sums as integers in one go when
    /// `FixedSum::add_column` takes the column, value by value otherwise. The same state
    /// either way.
    fn add_column(&mut self, xs: &[f64], pending: &mut Vec<u32>) {
        if xs.iter().all(|x| x.is_finite()) && FixedSum::add_column(&mut self.s1, &mut self.s2, xs) {
            // n, min and max as `add_count` leaves them
            let (min, max) = column_min_max(xs);
            (self.n, self.min, self.max) = (self.n + xs.len() as u64, least(self.min, min), greatest(self.max, max));
            pending.extend(xs.iter().map(|&x| sketch_key(x)));
        } else {
            pending.extend(xs.iter().filter(|x| x.is_finite()).map(|&x| self.add_moments(x)));
        }
    }

    pub fn merge(&mut self, o: &Cell) {
        self.n += o.n;
        self.min = least(self.min, o.min);
        self.max = greatest(self.max, o.max);
        self.s1.merge(&o.s1);
        self.s2.merge(&o.s2);
        self.sketch.merge(&o.sketch);
    }

    pub fn mean(&self) -> f64 {
        if self.n == 0 {
            f64::NAN
        } else {
            self.s1.to_exact().quotient(self.n as f64)
        }
    }

    /// Population standard deviation: sqrt((n S2 - S1^2) / n^2), the numerator exact.
    pub fn std(&self) -> f64 {
        if self.n == 0 {
            return f64::NAN;
        }
        let n = self.n as f64;
        let (s1, s2) = (self.s1.to_exact(), self.s2.to_exact());
        let mut num = ExactSum::default();
        for &p in s2.partials() {
            num.add_product(n, p);
        }
        for &a in s1.partials() {
            for &b in s1.partials() {
                num.add_product(-a, b);
            }
        }
        // (NaN, not 0, where a square overflowed: the config's bound on its numbers keeps
        // the measures far from that)
        let num = num.value();
        if num.is_nan() {
            return f64::NAN;
        }
        (num.max(0.0) / (n * n)).sqrt()
    }

    /// Quantile q (numpy's linear interpolation on the bucket representatives), in [min, max].
    pub fn quantile(&self, q: f64) -> f64 {
        self.quantiles([q])[0]
    }

    /// `quantile` of each of `qs`, their order statistics found in one walk over the buckets.
    pub fn quantiles<const N: usize>(&self, qs: [f64; N]) -> [f64; N] {
        if self.n == 0 {
            return [f64::NAN; N];
        }
        if self.min == self.max {
            return [self.min; N];
        }
        // for each q: its position, and the order statistics lo and hi = lo + 1 around it
        let pos = qs.map(|q| q * (self.n - 1) as f64);
        let lo = pos.map(|p| p.floor() as u64);
        let mut ranks = Vec::with_capacity(2 * N);
        for &l in &lo {
            ranks.extend([l, (l + 1).min(self.n - 1)]);
        }
        let at = self.sketch.order_stats(&ranks);
        std::array::from_fn(|i| {
            let (a, b) = (at[2 * i].unwrap_or(self.max), at[2 * i + 1].unwrap_or(self.max));
            (a + (b - a) * (pos[i] - lo[i] as f64)).clamp(self.min, self.max)
        })
    }
}

/// The lesser of two non-NaN values in `total_cmp`'s order, where -0 < +0: so a cell's min
/// is the same whatever the order its values (or blocks) come in, a zero's sign included
/// (`f64::min` leaves the sign of a tie of zeros unspecified).
#[inline]
fn least(a: f64, b: f64) -> f64 {
    if b.total_cmp(&a).is_lt() {
        b
    } else {
        a
    }
}

/// The greater of two non-NaN values in `total_cmp`'s order (see `least`).
#[inline]
fn greatest(a: f64, b: f64) -> f64 {
    if b.total_cmp(&a).is_gt() {
        b
    } else {
        a
    }
}

/// `least` and `greatest` of a column of finite values: by `<` and `>` in four lanes (which
/// vectorise), then the sign of a zero extreme from the column itself (`<` does not tell -0
/// from +0; distinct non-zero values never compare equal).
fn column_min_max(xs: &[f64]) -> (f64, f64) {
    const LANES: usize = 4;
    let (mut lo, mut hi) = ([f64::INFINITY; LANES], [f64::NEG_INFINITY; LANES]);
    let mut chunks = xs.chunks_exact(LANES);
    for c in chunks.by_ref() {
        for l in 0..LANES {
            lo[l] = if c[l] < lo[l] { c[l] } else { lo[l] };
            hi[l] = if c[l] > hi[l] { c[l] } else { hi[l] };
        }
    }
    for &x in chunks.remainder() {
        lo[0] = if x < lo[0] { x } else { lo[0] };
        hi[0] = if x > hi[0] { x } else { hi[0] };
    }
    let (mut min, mut max) = (lo[0], hi[0]);
    for l in 1..LANES {
        min = if lo[l] < min { lo[l] } else { min };
        max = if hi[l] > max { hi[l] } else { max };
    }
    let has = |zero: f64| xs.iter().any(|x| x.to_bits() == zero.to_bits());
    if min == 0.0 {
        min = if has(-0.0) { -0.0 } else { 0.0 };
    }
    if max == 0.0 {
        max = if has(0.0) { 0.0 } else { -0.0 };
    }
    (min, max)
}

/// Ask for values[start..start + len] in cache ahead of their use (a hint: nothing is read,
/// and an address past the slice is never touched).
#[inline(always)]
fn prefetch(values: &[f64], start: usize, len: usize) {
    #[cfg(target_arch = "x86_64")]
    for k in (start..(start + len).min(values.len())).step_by(8) {
        // SAFETY: _mm_prefetch only hints the cache; k is inside `values`.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(values.as_ptr().add(k).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (values, start, len);
}

/// Streamed statistics of a run: one `Cell` per (sample, measure).
#[derive(Clone, Debug, PartialEq)]
pub struct StatsAccumulator {
    pub n_samples: usize,
    pub n_measures: usize,
    /// cells[sample * n_measures + measure]
    pub cells: Vec<Cell>,
}

impl StatsAccumulator {
    pub fn new(n_samples: usize, n_measures: usize) -> Self {
        StatsAccumulator { n_samples, n_measures, cells: vec![Cell::default(); n_samples * n_measures] }
    }

    /// Add a block of members: values[(member * n_samples + sample) * n_measures + measure];
    /// members with `include[member] == false` are left out (unhealthy members).
    pub fn add_block(&mut self, values: &[f64], include: &[bool]) {
        let row = self.n_samples * self.n_measures;
        let members: Vec<usize> = include.iter().enumerate().filter(|(_, &ok)| ok).map(|(i, _)| i).collect();
        // Tiles of TILE cells. A task copies its tile's values of MEMBERS members at a time
        // into columns (one contiguous run per cell: the strided rows are read once, a cache
        // line per member), then adds each column to its cell with the cell's fixed-point
        // sums in L1, keeping the sketch keys pending; it sorts and merges each cell's keys
        // once per block.
        const TILE: usize = 64;
        const MEMBERS: usize = COLUMN_MAX;
        const PREFETCH_AHEAD: usize = 8;
        self.cells.par_chunks_mut(TILE).enumerate().for_each_init(
            || (vec![Vec::<u32>::new(); TILE], FoldScratch::default(), Vec::<f64>::new()),
            |(pending, scratch, columns), (tile, cells)| {
                let (first, width) = (tile * TILE, cells.len());
                for p in pending.iter_mut() {
                    p.clear();
                    p.reserve(members.len());
                }
                for chunk in members.chunks(MEMBERS) {
                    let len = chunk.len();
                    // columns `stride` apart: a stride of a power of two bytes would put every
                    // column's store of a member in the same L1 set
                    let stride = len + 8;
                    columns.resize(width * stride, 0.0);
                    for (j, &i) in chunk.iter().enumerate() {
                        // the rows are 8 B x row apart: the hardware does not see them coming
                        if let Some(&ahead) = chunk.get(j + PREFETCH_AHEAD) {
                            prefetch(values, ahead * row + first, width);
                        }
                        for (c, &x) in values[i * row + first..i * row + first + width].iter().enumerate() {
                            columns[c * stride + j] = x;
                        }
                    }
                    for ((acc, p), column) in cells.iter_mut().zip(pending.iter_mut()).zip(columns.chunks_exact(stride)) {
                        acc.add_column(&column[..len], p);
                    }
                }
                for (acc, p) in cells.iter_mut().zip(pending.iter_mut()) {
                    acc.sketch.fold(p, scratch);
                }
            },
        );
    }

    pub fn merge(&mut self, other: &StatsAccumulator) -> Result<()> {
        if (self.n_samples, self.n_measures) != (other.n_samples, other.n_measures) {
            return Err(QbatError::invalid("stats-state.bin", "the runs have different sample times or measures"));
        }
        self.cells.par_iter_mut().zip(&other.cells).for_each(|(a, b)| a.merge(b));
        Ok(())
    }

    /// Bytes in memory of a state that `write_to` wrote in `file_bytes` bytes for `cells`
    /// cells: its buckets take the 8 B a bucket they take in the file (`read_from` sizes their
    /// vectors exactly), and each cell its fixed size (`Cell`, its two fixed-point sums) beside
    /// them; the file's header and partial sums of each cell are counted twice. (`read_from`
    /// also holds one cell's bucket bytes beside its buckets for a moment: at most the largest
    /// cell's, which a caller adds.)
    pub fn bytes_of_state(file_bytes: u64, cells: usize) -> f64 {
        file_bytes as f64 + (cells * std::mem::size_of::<Cell>()) as f64
    }

    pub fn cell(&self, sample: usize, measure: usize) -> &Cell {
        &self.cells[sample * self.n_measures + measure]
    }

    /// Binary form (little-endian), for checkpoints and shard merging.
    pub fn write_to(&self, w: &mut dyn Write) -> std::io::Result<()> {
        w.write_all(MAGIC)?;
        put_u64(w, self.n_samples as u64)?;
        put_u64(w, self.n_measures as u64)?;
        for c in &self.cells {
            put_u64(w, c.n)?;
            put_f64(w, c.min)?;
            put_f64(w, c.max)?;
            for s in [c.s1.to_exact(), c.s2.to_exact()] {
                put_u64(w, s.partials.len() as u64)?;
                for &p in &s.partials {
                    put_f64(w, p)?;
                }
            }
            put_u64(w, c.sketch.zero)?;
            for b in [&c.sketch.pos, &c.sketch.neg] {
                put_u64(w, b.keys.len() as u64)?;
                let mut bytes = Vec::with_capacity(b.keys.len() * 8);
                for (&k, &n) in b.keys.iter().zip(&b.counts) {
                    bytes.extend_from_slice(&k.to_le_bytes());
                    bytes.extend_from_slice(&n.to_le_bytes());
                }
                w.write_all(&bytes)?;
            }
        }
        Ok(())
    }

    /// Read a state written by `write_to` for a run of `expect` = (samples, measures) from the
    /// `size` bytes of `r`; another shape is an error, found before anything is allocated, as
    /// is a bucket count past the bytes left.
    pub fn read_from(r: &mut dyn Read, expect: (usize, usize), size: u64) -> std::io::Result<StatsAccumulator> {
        // (`limit()` is then what is left of the state)
        let r = &mut r.take(size);
        let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not this run's statistics state ({what})"));
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(bad("no QBSTATS2 header; a state from another qbat-gpu version cannot be continued".into()));
        }
        let ns = get_u64(r)? as usize;
        let nm = get_u64(r)? as usize;
        if (ns, nm) != expect {
            return Err(bad(format!("{ns} samples x {nm} measures, expected {} x {}", expect.0, expect.1)));
        }
        let mut acc = StatsAccumulator::new(ns, nm);
        for c in acc.cells.iter_mut() {
            c.n = get_u64(r)?;
            c.min = get_f64(r)?;
            c.max = get_f64(r)?;
            for s in [&mut c.s1, &mut c.s2] {
                let len = get_u64(r)? as usize;
                if len > 4096 {
                    return Err(bad("expansion length".into()));
                }
                let partials: Vec<f64> = (0..len).map(|_| get_f64(r)).collect::<std::io::Result<_>>()?;
                if partials.iter().any(|p| !p.is_finite()) && !(len == 1 && partials[0].is_infinite()) {
                    return Err(bad("a non-finite partial sum".into()));
                }
                *s = FixedSum::from_exact(&ExactSum { partials });
            }
            c.sketch.zero = get_u64(r)?;
            for b in [&mut c.sketch.pos, &mut c.sketch.neg] {
                let len = get_u64(r)? as usize;
                // keys are the top 21 bits of a finite f64: at most 2^21 buckets
                if len > 1 << 21 {
                    return Err(bad("bucket count".into()));
                }
                // (never allocated from the length alone: a forged length of 2^21 allocated
                // 16 MiB before the read failed, and aborted a merge under `ulimit -d`)
                if len as u64 * 8 > r.limit() {
                    return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the state ends inside its buckets"));
                }
                let mut bytes = vec![0u8; len * 8];
                r.read_exact(&mut bytes)?;
                // (exactly as large as the file's: `bytes_of_state` counts on it)
                b.keys.reserve_exact(len);
                b.counts.reserve_exact(len);
                for e in bytes.chunks_exact(8) {
                    b.keys.push(u32::from_le_bytes(e[..4].try_into().expect("4 bytes")));
                    b.counts.push(u32::from_le_bytes(e[4..].try_into().expect("4 bytes")));
                }
                if b.keys.windows(2).any(|w| w[0] >= w[1]) || b.counts.contains(&0) {
                    return Err(bad("bucket keys out of order".into()));
                }
                // a key of a finite |x| has an exponent below 0x7ff
                if b.keys.last().is_some_and(|&k| k >= MAX_KEY) {
                    return Err(bad("a bucket key beyond the finite floats".into()));
                }
            }
            let counted = c.sketch.total();
            if counted != Some(c.n) {
                return Err(bad("bucket counts do not add up to n".into()));
            }
            // quantiles clamp to [min, max]: both finite and ordered once a value was added,
            // and the empty cell's (+inf, -inf) before (a NaN would survive a merge)
            let empty = c.min == f64::INFINITY && c.max == f64::NEG_INFINITY;
            let ordered = if c.n > 0 { c.min.is_finite() && c.max.is_finite() && c.min <= c.max } else { empty };
            if !ordered {
                return Err(bad("min and max".into()));
            }
        }
        Ok(acc)
    }
}

// 2: sparse buckets keyed by the float bits (1 held dense log buckets)
const MAGIC: &[u8; 8] = b"QBSTATS2";

fn put_u64(w: &mut dyn Write, x: u64) -> std::io::Result<()> {
    w.write_all(&x.to_le_bytes())
}
fn put_f64(w: &mut dyn Write, x: f64) -> std::io::Result<()> {
    w.write_all(&x.to_le_bytes())
}
fn get_u64(r: &mut dyn Read) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}
fn get_f64(r: &mut dyn Read) -> std::io::Result<f64> {
    Ok(f64::from_bits(get_u64(r)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A column added in one go (`Cell::add_column`) leaves the cell as adding its values one
    /// by one does: columns the integer path takes (narrow spreads, zeros, both signs, up to
    /// 64 binades) and ones it must refuse (wider spreads, subnormals, huge values,
    /// non-finite values), each checked to have taken the path it should.
    #[test]
    fn a_column_at_once_equals_its_values_one_by_one() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
        let mut taken = [0usize; 2];
        for case in 0..400 {
            let len = rng.random_range(1..=COLUMN_MAX);
            let binades = [0, 1, 10, 63, 64, 65, 200][case % 7];
            let xs: Vec<f64> = (0..len)
                .map(|_| {
                    let mag = rng.random_range(1.0..2.0) * 2f64.powi(rng.random_range(0..=binades) - binades / 2);
                    match rng.random_range(0..20) {
                        0 => 0.0,
                        1 => -0.0,
                        2 if case % 11 == 0 => f64::from_bits(rng.random_range(1..1u64 << 52)), // subnormal
                        3 if case % 13 == 0 => f64::NAN,
                        4 if case % 17 == 0 => 1e200,
                        k if k % 2 == 0 => -mag,
                        _ => mag,
                    }
                })
                .collect();
            let (mut one, mut other) = (FixedSum::default(), FixedSum::default());
            let integer_path = FixedSum::add_column(&mut one, &mut other, &xs.iter().copied().filter(|x| x.is_finite()).collect::<Vec<_>>());
            let spread_ok = binades <= 64 || xs.iter().filter(|x| **x != 0.0 && x.is_finite()).count() < 2;
            let plain = xs.iter().all(|x| !x.is_finite() || *x == 0.0 || (x.abs() >= 2f64.powi(-400) && x.abs() < 2f64.powi(400)));
            if spread_ok && plain {
                assert!(integer_path, "case {case}: a column in range was refused");
            }
            if !plain {
                assert!(!integer_path, "case {case}: a column out of range was taken");
            }
            taken[usize::from(integer_path)] += 1;
            let (mut by_column, mut by_value) = (Cell::default(), Cell::default());
            let (mut pc, mut pv) = (vec![], vec![]);
            by_column.add_column(&xs, &mut pc);
            for &x in xs.iter().filter(|x| x.is_finite()) {
                pv.push(by_value.add_moments(x));
            }
            assert_eq!(pc, pv, "case {case}");
            let mut scratch = FoldScratch::default();
            by_column.sketch.fold(&mut pc, &mut scratch);
            by_value.sketch.fold(&mut pv, &mut scratch);
            assert_eq!(by_column, by_value, "case {case}");
            assert_eq!(by_column.mean().to_bits(), by_value.mean().to_bits());
            assert_eq!(by_column.std().to_bits(), by_value.std().to_bits());
        }
        assert!(taken[0] > 50 && taken[1] > 50, "both paths exercised: {taken:?}");
    }

    /// A cell's min and max are those of `total_cmp` (-0 below +0) whatever the order of its
    /// values, added one by one or a column at once, and whatever the order of merges.
    #[test]
    fn min_and_max_keep_the_sign_of_zero_in_any_order() {
        use rand::{seq::SliceRandom, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for values in [vec![0.0, -0.0, 0.0], vec![-0.0, 0.0, 2.0], vec![-3.0, -0.0, 0.0], vec![0.0; 9], vec![-0.0; 7], vec![1.5, -0.0, 0.0, 0.0, -2.5, 7.0]] {
            let want_min = values.iter().copied().min_by(f64::total_cmp).unwrap();
            let want_max = values.iter().copied().max_by(f64::total_cmp).unwrap();
            for _ in 0..8 {
                let mut v = values.clone();
                v.shuffle(&mut rng);
                let (mut one, mut column) = (Cell::default(), Cell::default());
                v.iter().for_each(|&x| one.add(x));
                column.add_column(&v, &mut vec![]);
                let (mut left, mut right) = (Cell::default(), Cell::default());
                let cut = v.len() / 2;
                left.add_column(&v[..cut], &mut vec![]);
                right.add_column(&v[cut..], &mut vec![]);
                right.merge(&left);
                for c in [&one, &column, &right] {
                    assert_eq!((c.min.to_bits(), c.max.to_bits()), (want_min.to_bits(), want_max.to_bits()), "{v:?}");
                }
            }
        }
    }

    #[test]
    fn exact_sum_is_order_independent_and_correctly_rounded() {
        // 1e16 + 1 - 1e16 loses the 1 in naive summation.
        let mut s = ExactSum::default();
        for x in [1e16, 1.0, -1e16, 1e-20] {
            s.add(x);
        }
        assert_eq!(s.value(), 1.0 + 1e-20);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let xs: Vec<f64> = (0..5000).map(|_| rng.random::<f64>() * 10f64.powi(rng.random_range(-8..8))).collect();
        let mut fwd = ExactSum::default();
        xs.iter().for_each(|&x| fwd.add(x));
        let mut rev = ExactSum::default();
        xs.iter().rev().for_each(|&x| rev.add(x));
        assert_eq!(fwd.value().to_bits(), rev.value().to_bits());
    }

    #[test]
    fn two_product_is_exact() {
        let a = 0.1f64 + 1e-9;
        let mut s = ExactSum::default();
        s.add_product(a, a);
        s.add(-(a * a));
        // the rounding error of a*a, recovered exactly: compare with f64::mul_add
        assert_eq!(s.value(), a.mul_add(a, -(a * a)));
    }

    /// Squares beyond f64 (|x| above 1.3e154) leave the std NaN, never 0: the config's bound
    /// keeps the measures below that, and a std of 0 for values that differ would be a wrong
    /// number read as a right one.
    #[test]
    fn std_whose_squares_overflow_is_nan_not_zero() {
        let mut c = Cell::default();
        for x in [1e200, 2e200, 3e200] {
            c.add(x);
        }
        assert!(c.std().is_nan(), "{}", c.std());
        assert_eq!((c.min, c.max), (1e200, 3e200));
    }

    #[test]
    fn std_of_constant_column_is_zero_and_mean_exact() {
        let mut c = Cell::default();
        for _ in 0..1000 {
            c.add(0.1);
        }
        assert_eq!(c.std(), 0.0);
        assert_eq!(c.mean(), 0.1);
        assert_eq!(c.quantile(0.05), 0.1);
    }

    #[test]
    fn quantiles_within_stated_resolution() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let xs: Vec<f64> = (0..20001).map(|_| rng.random::<f64>() * 4.0 - 1.0).collect();
        let mut c = Cell::default();
        xs.iter().for_each(|&x| c.add(x));
        let mut sorted = xs.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        for q in [0.05, 0.5, 0.95] {
            let exact = crate::output::stats::quantile_sorted(&sorted, q);
            let tol = (QUANTILE_REL_RESOLUTION * exact.abs()).max(QUANTILE_ZERO) * 1.0001;
            assert!((c.quantile(q) - exact).abs() <= tol, "q{q}: {} vs {exact}", c.quantile(q));
        }
        // the exact mean, against a naive left-to-right sum (which carries ~n eps of rounding)
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((c.mean() - mean).abs() < 1e-12);
        let mut exact = ExactSum::default();
        xs.iter().for_each(|&x| exact.add(x));
        // (the correctly rounded mean, `ExactSum::quotient`: within an ulp of fl(sum)/n)
        let plain = exact.value() / xs.len() as f64;
        assert!(c.mean() == plain || c.mean() == plain.next_up() || c.mean() == plain.next_down(), "{} {plain}", c.mean());
    }

    #[test]
    fn quantile_across_a_sign_change_keeps_the_neighbour_bound() {
        // numpy: quantile([-1, 1.0015], 0.5) = 0.00075, between x_lo = -1 and x_hi = 1.0015
        let mut c = Cell::default();
        for x in [-1.0, 1.0015] {
            c.add(x);
        }
        let bound = QUANTILE_REL_RESOLUTION * 1.0015 * 1.0001;
        assert!((c.quantile(0.5) - 0.00075).abs() <= bound, "{}", c.quantile(0.5));
    }

    /// A damaged state is refused, never a panic later: NaN min, a key past the finite floats,
    /// counts that overflow instead of adding up to n.
    #[test]
    fn damaged_states_are_refused() {
        let mut acc = StatsAccumulator::new(1, 1);
        acc.add_block(&[0.5, -2.0, 3.0], &[true; 3]);
        let mut good = vec![];
        acc.write_to(&mut good).unwrap();
        assert!(StatsAccumulator::read_from(&mut good.as_slice(), (1, 1), good.len() as u64).is_ok());
        let at = |bytes: &mut Vec<u8>, off: usize, v: u64| bytes[off..off + 8].copy_from_slice(&v.to_le_bytes());
        // header 8 + 16, then n, min, max
        let mut nan_min = good.clone();
        at(&mut nan_min, 32, f64::NAN.to_bits());
        assert!(StatsAccumulator::read_from(&mut nan_min.as_slice(), (1, 1), nan_min.len() as u64).is_err());
        let mut swapped = good.clone();
        at(&mut swapped, 32, 10f64.to_bits());
        assert!(StatsAccumulator::read_from(&mut swapped.as_slice(), (1, 1), swapped.len() as u64).is_err());
        // the last 8 bytes are the negative bucket (key, count): a key past the finite floats
        let mut key = good.clone();
        let k = key.len() - 8;
        key[k..k + 4].copy_from_slice(&MAX_KEY.to_le_bytes());
        assert!(StatsAccumulator::read_from(&mut key.as_slice(), (1, 1), key.len() as u64).is_err());
        // an empty cell: its min and max are the empty ones, not a NaN a merge would carry
        let mut empty = vec![];
        StatsAccumulator::new(1, 1).write_to(&mut empty).unwrap();
        assert!(StatsAccumulator::read_from(&mut empty.as_slice(), (1, 1), empty.len() as u64).is_ok());
        for bad_min in [f64::NAN, 0.5] {
            let mut damaged = empty.clone();
            at(&mut damaged, 32, bad_min.to_bits());
            assert!(StatsAccumulator::read_from(&mut damaged.as_slice(), (1, 1), damaged.len() as u64).is_err(), "{bad_min}");
        }
    }

    /// An exact sum past the largest float is infinite with its sign, and the state holding it
    /// reads back.
    #[test]
    fn an_overflowing_sum_is_infinite_and_round_trips() {
        let mut c = Cell::default();
        for _ in 0..4 {
            c.add(1e308);
        }
        assert_eq!(c.mean(), f64::INFINITY);
        let mut acc = StatsAccumulator::new(1, 1);
        acc.add_block(&[1e308, 1e308, -3.0], &[true; 3]);
        let mut bytes = vec![];
        acc.write_to(&mut bytes).unwrap();
        let back = StatsAccumulator::read_from(&mut bytes.as_slice(), (1, 1), bytes.len() as u64).unwrap();
        assert_eq!(back.cell(0, 0).mean(), f64::INFINITY);
    }

    #[test]
    fn merge_equals_single_pass_and_round_trips() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let (ns, nm, n) = (3, 2, 100);
        let values: Vec<f64> = (0..n * ns * nm).map(|_| rng.random::<f64>() - 0.3).collect();
        let all = vec![true; n];
        let mut one = StatsAccumulator::new(ns, nm);
        one.add_block(&values, &all);
        let mut parts = StatsAccumulator::new(ns, nm);
        for chunk in [(60, 100), (0, 25), (25, 60)] {
            let mut a = StatsAccumulator::new(ns, nm);
            a.add_block(&values[chunk.0 * ns * nm..chunk.1 * ns * nm], &all[chunk.0..chunk.1]);
            parts.merge(&a).unwrap();
        }
        for (a, b) in one.cells.iter().zip(&parts.cells) {
            assert_eq!(a.mean().to_bits(), b.mean().to_bits());
            assert_eq!(a.std().to_bits(), b.std().to_bits());
            assert_eq!(a.quantile(0.5).to_bits(), b.quantile(0.5).to_bits());
        }
        let mut bytes = vec![];
        parts.write_to(&mut bytes).unwrap();
        let back = StatsAccumulator::read_from(&mut bytes.as_slice(), (ns, nm), bytes.len() as u64).unwrap();
        assert_eq!(back, parts);
        // another run's shape is refused before allocating
        assert!(StatsAccumulator::read_from(&mut bytes.as_slice(), (ns + 1, nm), bytes.len() as u64).is_err());
    }
}
