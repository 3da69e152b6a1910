//! The quantile sketch of one cell (see the parent module's doc): integer counts of |x| per
//! log bucket, for each sign, and of the zero bucket; exact to merge.

use super::QUANTILE_ZERO;

/// Occupied buckets only, as (key, count) in increasing key order: memory follows the buckets
/// the values fall in, never the span between them.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Buckets {
    pub(super) keys: Vec<u32>,
    /// u32: runs hold at most 1e9 members
    pub(super) counts: Vec<u32>,
}

impl Buckets {
    /// Merge sorted, distinct (key, count) runs into self (a linear merge).
    pub(super) fn merge_sorted(&mut self, keys: &[u32], counts: &[u32]) {
        if keys.is_empty() {
            return;
        }
        if self.keys.is_empty() {
            self.keys.extend_from_slice(keys);
            self.counts.extend_from_slice(counts);
            return;
        }
        let (mut mk, mut mc) = (Vec::with_capacity(self.keys.len() + keys.len()), Vec::with_capacity(self.keys.len() + keys.len()));
        let (mut i, mut j) = (0, 0);
        while i < self.keys.len() || j < keys.len() {
            let take_self = j == keys.len() || (i < self.keys.len() && self.keys[i] < keys[j]);
            let take_other = i == self.keys.len() || (j < keys.len() && keys[j] < self.keys[i]);
            if take_self {
                mk.push(self.keys[i]);
                mc.push(self.counts[i]);
                i += 1;
            } else if take_other {
                mk.push(keys[j]);
                mc.push(counts[j]);
                j += 1;
            } else {
                mk.push(keys[j]);
                mc.push(self.counts[i].saturating_add(counts[j]));
                i += 1;
                j += 1;
            }
        }
        self.keys = mk;
        self.counts = mc;
    }

    fn merge(&mut self, other: &Buckets) {
        self.merge_sorted(&other.keys, &other.counts);
    }

    pub(super) fn total(&self) -> u64 {
        self.counts.iter().map(|&c| c as u64).sum()
    }
}

/// Mantissa bits below the bucket: |x| = 2^e (1 + f), the bucket keeps e and the top
/// 52 - BUCKET_SHIFT = 9 bits of f, so each bucket spans a relative width of at most 2^-9 and
/// its midpoint lies within 2^-10 < `QUANTILE_REL_RESOLUTION` of every value in it.
const BUCKET_SHIFT: u32 = 43;

/// The bucket of |x| (finite, >= QUANTILE_ZERO): the top bits of its IEEE pattern, which order
/// like |x| itself. No logarithm, and the same key on every machine.
fn bucket_of(abs: f64) -> u32 {
    (abs.to_bits() >> BUCKET_SHIFT) as u32
}

/// The midpoint of a bucket.
fn representative(key: u32) -> f64 {
    let lo = f64::from_bits((key as u64) << BUCKET_SHIFT);
    let hi = f64::from_bits(((key as u64) + 1) << BUCKET_SHIFT);
    0.5 * (lo + hi)
}

/// The first key past the finite floats (exponent 0x7ff).
pub(super) const MAX_KEY: u32 = 0x7ff << (52 - BUCKET_SHIFT);

/// A key with the sign in its top bit (a pending sketch entry of one block).
const NEG: u32 = 1 << 31;
/// The pending entry of a value in the zero bucket.
const ZERO_KEY: u32 = u32::MAX;

/// The widest key range, in slots per pending key, that `Sketch::fold` counts in an array
/// rather than sorting: of 4, 16, 64 and 256, 16 measured fastest in the statistics bench (64
/// and 256 about as fast, 4 about 30% slower; benches/RESULTS.md), and 16 and 64 alike once the
/// walk visited only the occupied slots. The array never outgrows `MAX_KEY` slots (4 MiB),
/// however large the block.
const DENSE_SLOTS_PER_KEY: usize = 16;

/// Scratch buffers of `Sketch::fold`, reused from cell to cell.
#[derive(Default)]
pub(super) struct FoldScratch {
    keys: Vec<u32>,
    counts: Vec<u32>,
    /// counts by key offset, for the dense path: all zeros between calls (the walk that
    /// reads the counts clears them), so that it is never cleared whole
    dense: Vec<u32>,
    /// one bit per slot of `dense` that holds a count, all zeros between calls: the walk
    /// visits the set bits only, not every slot of the key range (up to
    /// `DENSE_SLOTS_PER_KEY` per key, more for a block of few keys)
    occupied: Vec<u64>,
}

/// The pending sketch key of a finite value: its bucket, with `NEG` for a negative one, or
/// `ZERO_KEY`.
#[inline]
pub(super) fn sketch_key(x: f64) -> u32 {
    // the sign bit as NEG: a selection, not a branch (it runs once a value)
    let key = bucket_of(x.abs()) | ((x.to_bits() >> 32) as u32 & NEG);
    if x.abs() < QUANTILE_ZERO {
        ZERO_KEY
    } else {
        key
    }
}

/// The buckets of one cell: positive and negative values by |x|, and the zero bucket.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Sketch {
    pub(super) zero: u64,
    pub(super) pos: Buckets,
    pub(super) neg: Buckets,
}

impl Sketch {
    /// Fold one block's pending keys (any order) into the buckets, as sorted, distinct
    /// (key, count) runs merged once per sign. When each sign's keys span a range of at most
    /// `DENSE_SLOTS_PER_KEY n` keys, but at least 1024 (n keys over a few decades), they are
    /// counted in an array over that range; otherwise sorted, which puts the positive keys
    /// first, then the negative ones (`NEG` set), then the zero bucket's (`ZERO_KEY`). The same
    /// runs either way.
    pub(super) fn fold(&mut self, pending: &mut [u32], scratch: &mut FoldScratch) {
        let FoldScratch { keys, counts, dense, occupied } = scratch;
        // [lo, hi] of the positive and of the negative keys
        let mut range = [(u32::MAX, 0u32); 2];
        let mut zeros = 0u64;
        for &k in pending.iter() {
            if k == ZERO_KEY {
                zeros += 1;
            } else {
                let r = &mut range[usize::from(k & NEG != 0)];
                *r = (r.0.min(k), r.1.max(k));
            }
        }
        self.zero += zeros;
        // (no key range is wider than MAX_KEY: a limit past it only needs to fit in u32)
        let limit = (DENSE_SLOTS_PER_KEY * pending.len()).clamp(1024, MAX_KEY as usize) as u32;
        let runs_of = |neg: bool, keys: &mut Vec<u32>, counts: &mut Vec<u32>, dense: &mut Vec<u32>, occupied: &mut Vec<u64>, pending: &[u32]| {
            keys.clear();
            counts.clear();
            let (lo, hi) = range[usize::from(neg)];
            if lo > hi {
                return;
            }
            // `dense` and `occupied` are all zeros between calls: the walk below clears what
            // the count set
            let span = (hi - lo) as usize + 1;
            let words = span.div_ceil(64);
            if dense.len() < span {
                dense.resize(span, 0);
            }
            if occupied.len() < words {
                occupied.resize(words, 0);
            }
            for &k in pending.iter().filter(|&&k| k != ZERO_KEY && (k & NEG != 0) == neg) {
                let offset = (k - lo) as usize;
                dense[offset] += 1;
                occupied[offset / 64] |= 1 << (offset % 64);
            }
            // the set bits in increasing order: the keys in increasing order
            for (w, word) in occupied[..words].iter_mut().enumerate() {
                let mut bits = std::mem::take(word);
                while bits != 0 {
                    let offset = w * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    keys.push((lo + offset as u32) & !NEG);
                    counts.push(std::mem::take(&mut dense[offset]));
                }
            }
        };
        if range.iter().all(|&(lo, hi)| lo > hi || hi - lo < limit) {
            runs_of(false, keys, counts, dense, occupied, pending);
            self.pos.merge_sorted(keys, counts);
            runs_of(true, keys, counts, dense, occupied, pending);
            self.neg.merge_sorted(keys, counts);
            return;
        }
        // in place, with no scratch allocation per cell (a radix sort measured no faster here)
        pending.sort_unstable();
        let neg_start = pending.partition_point(|&k| k & NEG == 0);
        let zero_start = pending.partition_point(|&k| k != ZERO_KEY);
        for (run, neg) in [(&pending[..neg_start], false), (&pending[neg_start..zero_start], true)] {
            keys.clear();
            counts.clear();
            for &k in run {
                let k = k & !NEG;
                if keys.last() == Some(&k) {
                    *counts.last_mut().expect("a key was pushed") += 1;
                } else {
                    keys.push(k);
                    counts.push(1);
                }
            }
            if neg {
                self.neg.merge_sorted(keys, counts)
            } else {
                self.pos.merge_sorted(keys, counts)
            }
        }
    }

    pub(super) fn merge(&mut self, o: &Sketch) {
        self.zero += o.zero;
        self.pos.merge(&o.pos);
        self.neg.merge(&o.neg);
    }

    /// Every count, or None when the total overflows (a damaged state).
    pub(super) fn total(&self) -> Option<u64> {
        self.pos.total().checked_add(self.neg.total()).and_then(|t| t.checked_add(self.zero))
    }

    /// The k-th order statistic (0-based) of each k in `ks` (any order) as its bucket
    /// representative, None past the last count: one walk over the buckets in value order,
    /// each bucket's count closing the ks below the counts seen so far.
    pub(super) fn order_stats(&self, ks: &[u64]) -> Vec<Option<f64>> {
        let mut out = vec![None; ks.len()];
        // ks by increasing k: `next` is the first not yet found
        let mut order: Vec<usize> = (0..ks.len()).collect();
        order.sort_by_key(|&i| ks[i]);
        let mut next = 0;
        let mut seen = 0u64;
        let mut close = |seen: u64, value: f64, next: &mut usize| {
            while *next < order.len() && ks[order[*next]] < seen {
                out[order[*next]] = Some(value);
                *next += 1;
            }
            *next == order.len()
        };
        // negative values: largest magnitude first
        for (&key, &c) in self.neg.keys.iter().zip(&self.neg.counts).rev() {
            seen += c as u64;
            if close(seen, -representative(key), &mut next) {
                return out;
            }
        }
        seen += self.zero;
        if !close(seen, 0.0, &mut next) {
            for (&key, &c) in self.pos.keys.iter().zip(&self.pos.counts) {
                seen += c as u64;
                if close(seen, representative(key), &mut next) {
                    break;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// `order_stats` of ks in any order, repeated and past the end, is the k-th entry of the
    /// sketch's values written out in full (each bucket's representative count times, in
    /// value order).
    #[test]
    fn order_stats_are_the_entries_of_the_expanded_sketch() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        for case in 0..40 {
            let mut pending: Vec<u32> = (0..rng.random_range(1..300))
                .map(|_| match rng.random_range(0..6) {
                    0 => ZERO_KEY,
                    1 | 2 => rng.random_range(0x3f00_0000 >> 11..0x4010_0000 >> 11) | NEG,
                    _ => rng.random_range(0x3f00_0000 >> 11..0x4010_0000 >> 11),
                })
                .collect();
            let mut sketch = Sketch::default();
            sketch.fold(&mut pending, &mut FoldScratch::default());
            let mut expanded: Vec<f64> = vec![];
            for (&key, &c) in sketch.neg.keys.iter().zip(&sketch.neg.counts).rev() {
                expanded.extend(std::iter::repeat_n(-representative(key), c as usize));
            }
            expanded.extend(std::iter::repeat_n(0.0, sketch.zero as usize));
            for (&key, &c) in sketch.pos.keys.iter().zip(&sketch.pos.counts) {
                expanded.extend(std::iter::repeat_n(representative(key), c as usize));
            }
            assert!(expanded.windows(2).all(|w| w[0] <= w[1]), "case {case}");
            let n = expanded.len() as u64;
            let ks: Vec<u64> = (0..rng.random_range(1..8)).map(|_| rng.random_range(0..n + 3)).collect();
            let want: Vec<Option<f64>> = ks.iter().map(|&k| expanded.get(k as usize).copied()).collect();
            assert_eq!(sketch.order_stats(&ks), want, "case {case}: ks {ks:?}");
        }
    }

    /// Both ways of folding keys (counted over a dense range, or sorted when the range is
    /// wide) give the counts of a plain map, for each sign and the zero bucket.
    #[test]
    fn folded_keys_are_the_counts_of_each_bucket() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let n = 1000;
        // either side of the dense limit, so that both paths run, with one scratch throughout
        // (a narrow dense count after a wide one must not see the wide one's counts)
        let limit = (DENSE_SLOTS_PER_KEY * n) as u32;
        let mut scratch = FoldScratch::default();
        // (span, whether there are negative keys): dense counts over many words of the
        // occupancy bitmap after wide ones, at spans either side of a whole word, and with one
        // sign empty
        let spans = [(limit - 100, true), (10u32, true), (limit + 2000, true), (100_000, true), (MAX_KEY - 1, true), (10, true)].into_iter().chain([
            (5000, true),
            (3000, false),
            (63, true),
            (64, false),
            (65, true),
            (128, true),
            (limit - 100, false),
            (700, true),
        ]);
        for (case, (span, negatives)) in spans.enumerate() {
            let base = rng.random_range(0..MAX_KEY - span);
            let mut pending: Vec<u32> = (0..n)
                .map(|_| match rng.random_range(0..10) {
                    0 => ZERO_KEY,
                    1..=3 if negatives => (base + rng.random_range(0..=span)) | NEG,
                    _ => base + rng.random_range(0..=span),
                })
                .collect();
            // keys at both ends of the range
            pending[1] = base;
            pending[2] = base + span;
            let mut expect: [std::collections::BTreeMap<u32, u32>; 2] = Default::default();
            for &k in &pending {
                if k != ZERO_KEY {
                    *expect[usize::from(k & NEG != 0)].entry(k & !NEG).or_default() += 1;
                }
            }
            let zeros = pending.iter().filter(|&&k| k == ZERO_KEY).count() as u64;
            let mut cell = Sketch::default();
            // a cell with buckets already, so that the merge is exercised too
            cell.pos.merge_sorted(&[base], &[5]);
            *expect[0].entry(base).or_default() += 5;
            cell.fold(&mut pending, &mut scratch);
            for (buckets, want) in [(&cell.pos, &expect[0]), (&cell.neg, &expect[1])] {
                let got: Vec<(u32, u32)> = buckets.keys.iter().copied().zip(buckets.counts.iter().copied()).collect();
                assert_eq!(got, want.iter().map(|(&k, &c)| (k, c)).collect::<Vec<_>>(), "case {case}");
            }
            assert_eq!(cell.zero, zeros, "case {case}");
        }
    }
}
