//! Ranks with ties averaged, for the Spearman correlations: a sample sorted by the order of
//! `f64::total_cmp` (-0 taken as +0), each run of equal values given its average position.

/// The u64 whose unsigned order is `f64::total_cmp`'s: negatives have every bit flipped, the
/// rest only the sign bit.
fn total_order_key(x: f64) -> u64 {
    let b = x.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
    }
}

/// Ranks with ties averaged (1-based). The samples are sorted by `total_order_key` (the
/// order of `total_cmp`), -0 taken as +0; a tie is then a run of equal keys, which is a run of
/// equal values (`==`) as long as no NaN is among them (a NaN ties with nothing).
pub fn ranks(v: &[f64]) -> Vec<f64> {
    let mut r = vec![0.0; v.len()];
    let at = r.as_ptr();
    // (i + j + 2) / 2, the average of 1-based positions i + 1 .. j + 1: exact below 2^53
    rank_runs(
        v,
        &mut vec![],
        |k| prefetch(at, k),
        |start, run, packing| {
            for &p in run {
                r[packing.index(p)] = doubled_rank(start, run.len()) as f64 / 2.0;
            }
        },
    );
    r
}

/// Twice the average of the 1-based positions start + 1 ..= start + len:
/// (start + 1) + (start + len) = 2 start + len + 1.
fn doubled_rank(start: usize, len: usize) -> u64 {
    (2 * start + len + 1) as u64
}

/// Twice the ranks of `ranks` (integers: a tie's average is a half-integer), for samples of
/// fewer than 2^31 values, sorting in `scratch` (reused: fresh memory is paid for page by
/// page). Half the memory of f64 ranks; a Pearson correlation of doubled ranks is that of the
/// ranks, bit for bit (scaling by 2 is exact through its sums, products and square root).
pub(super) fn doubled_ranks_with(v: &[f64], scratch: &mut Vec<u64>) -> Vec<u32> {
    assert!(v.len() < 1 << 31, "doubled ranks of {} values overflow u32", v.len());
    let mut r = vec![0u32; v.len()];
    let at = r.as_ptr();
    rank_runs(
        v,
        scratch,
        |k| prefetch(at, k),
        |start, run, packing| {
            for &p in run {
                r[packing.index(p)] = doubled_rank(start, run.len()) as u32;
            }
        },
    );
    r
}

/// `doubled_ranks_with` of the whole of `v`, and at the same indices the doubled ranks of
/// each sample within its slice (the consecutive `slice_len` samples it is among), from the
/// one sort of the whole. The whole's order restricted to a slice is the slice's own order,
/// and a slice's part of a run of equal keys is its run; so a sample of slice s in a run with
/// m_s samples of s, after below_s of s in earlier runs, has the doubled rank
/// 2 below_s + m_s + 1 within s, as sorting s alone gives it.
pub fn doubled_ranks_whole_and_sliced(v: &[f64], slice_len: usize, scratch: &mut Vec<u64>) -> (Vec<u32>, Vec<u32>) {
    assert!(v.len() < 1 << 31, "doubled ranks of {} values overflow u32", v.len());
    // (one slice of the whole when longer than it: so a u32 divisor)
    let slice_len = slice_len.clamp(1, v.len().max(1));
    let slice_of = quotient_by(slice_len);
    // both ranks of sample k side by side, in one word (whole << 32 | sliced): the samples
    // come in key order, so each lands at a random place, and one cache line a sample halves
    // the misses of two arrays
    let mut both = vec![0u64; v.len()];
    let n_slices = v.len().div_ceil(slice_len);
    // below[s]: samples of slice s in the runs passed; in_run[s]: of slice s in this run
    let (mut below, mut in_run) = (vec![0u32; n_slices], vec![0u32; n_slices]);
    let pair = |whole: u32, sliced: u32| (u64::from(whole) << 32) | u64::from(sliced);
    let at = both.as_ptr();
    rank_runs(
        v,
        scratch,
        |k| prefetch(at, k),
        |start, run, packing| {
            let doubled = doubled_rank(start, run.len()) as u32;
            if let [p] = run {
                let k = packing.index(*p);
                let s = slice_of(k);
                both[k] = pair(doubled, 2 * below[s] + 2);
                below[s] += 1;
                return;
            }
            for &p in run {
                in_run[slice_of(packing.index(p))] += 1;
            }
            for &p in run {
                let k = packing.index(p);
                let s = slice_of(k);
                both[k] = pair(doubled, 2 * below[s] + in_run[s] + 1);
            }
            for &p in run {
                let s = slice_of(packing.index(p));
                below[s] += std::mem::take(&mut in_run[s]);
            }
        },
    );
    both.iter().map(|&w| ((w >> 32) as u32, w as u32)).unzip()
}

/// k -> floor(k / d) for k < 2^32 and d >= 1, by a multiply: floor(k / d) = (M k) >> 64 with
/// M = floor((2^64 - 1) / d) + 1 (Lemire, Kaser and Kurz, "Faster remainder by direct
/// computation", 2019, exact for 32-bit k and d), a few cycles where a division per sample
/// takes tens. (M is 2^64 for d = 1, which a u128 holds.)
fn quotient_by(d: usize) -> impl Fn(usize) -> usize {
    assert!((1..=u32::MAX as usize).contains(&d), "a divisor of {d} is not a u32 above 0");
    let magic = u128::from(u64::MAX) / d as u128 + 1;
    move |k| ((magic * k as u128) >> 64) as usize
}

/// Ask for the cache line of `base[k]` (a hint: nothing is read, and no address is formed
/// past the allocation but by `wrapping_add`, which the hint never dereferences).
#[inline(always)]
fn prefetch<T>(base: *const T, k: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: _mm_prefetch only hints the cache; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(base.wrapping_add(k).cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (base, k);
}

/// The key of a sample as ranked: `total_order_key`, -0 taken as +0.
fn rank_key(x: f64) -> u64 {
    total_order_key(x + 0.0)
}

/// Keys before -inf's or past +inf's are NaNs, which tie with nothing.
fn is_nan_key(key: u64) -> bool {
    !(!0xFFF0_0000_0000_0000..=0xFFF0_0000_0000_0000).contains(&key)
}

/// Sorted positions between a sample's `ahead` hint and its `on_run`: enough for the hinted
/// cache lines (and their pages' translations) to arrive, measured on the analysis of the
/// default study (benches/RESULTS.md).
const AHEAD: usize = 16;

/// Sort `v` into `scratch` and call `on_run(start, run, packing)` for each run of equal keys in
/// order: `start` the 0-based position of its first sample, `run` its packed samples (the
/// sample indices by `packing.index`). `ahead(k)` is called with the index of a sample about
/// `AHEAD` positions before its run is: the ranks land at random places, so that `on_run`'s
/// stores miss the cache unless they are asked for in advance.
fn rank_runs(v: &[f64], scratch: &mut Vec<u64>, ahead: impl Fn(usize), mut on_run: impl FnMut(usize, &[u64], &Packing)) {
    let packing = sort_packed_into(v, scratch);
    let sorted = &mut scratch[..];
    let index = |p: u64| packing.index(p);
    let mut i = 0;
    while i < sorted.len() {
        if let Some(&p) = sorted.get(i + AHEAD) {
            ahead(index(p));
        }
        // [i, j]: samples whose keys agree above the bits the packing dropped (equal keys,
        // when it dropped none)
        let high = sorted[i] >> packing.index_bits;
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] >> packing.index_bits == high {
            j += 1;
        }
        if i == j {
            on_run(i, &sorted[i..=i], &packing);
            i += 1;
            continue;
        }
        // the samples' own keys order the group (when bits were dropped) and tell its runs
        let group = &mut sorted[i..=j];
        let key_of = |p: u64| rank_key(v[index(p)]);
        if packing.shift > 0 && !is_constant_by(group, key_of) {
            // (a NaN ties with nothing: equal NaN keys keep their index order, as the sort
            // of whole keys leaves them)
            group.sort_unstable_by_key(|&p| (key_of(p), p));
        }
        let mut a = 0;
        while a < group.len() {
            let key = key_of(group[a]);
            let mut b = a;
            if !is_nan_key(key) {
                while b + 1 < group.len() && key_of(group[b + 1]) == key {
                    b += 1;
                }
            }
            on_run(i + a, &group[a..=b], &packing);
            a = b + 1;
        }
        i = j + 1;
    }
}

fn is_constant_by(group: &[u64], key_of: impl Fn(u64) -> u64) -> bool {
    let first = key_of(group[0]);
    group.iter().all(|&p| key_of(p) == first)
}

/// How `sort_packed_into` packs sample i into one u64: `((key - lo) >> shift) << index_bits
/// | i`, its key's top bits (less the sample's smallest key) above its index, so the radix sort
/// moves 8 bytes a sample, not a (key, index) pair's 16. A sample whose keys span more than
/// 64 - index bits loses its keys' lowest bits (`shift` of them: 10 for 4e6 samples within one
/// binade): samples that share the kept bits (ties, or keys less than 2^shift apart) are
/// sorted again by their full keys, in their small groups.
struct Packing {
    index_bits: u32,
    shift: u32,
}

impl Packing {
    fn index(&self, packed: u64) -> usize {
        (packed & ((1u64 << self.index_bits) - 1)) as usize
    }
}

/// `sorted` := every sample of `v` packed (see `Packing`), sorted: by key, except that keys
/// agreeing above the dropped `shift` bits are in index order. A radix sort of a large sample
/// at once moves every element through memory once per key byte; so one pass first splits
/// the packed samples by their top bits into buckets (in key order) small enough for the
/// cache, and each bucket is radix-sorted there.
fn sort_packed_into(v: &[f64], sorted: &mut Vec<u64>) -> Packing {
    // 2^12 buckets by the packed samples' top 12 bits (the key's, and the index's top bits
    // below them when the key spans fewer): a few thousand samples each for a sample spread
    // over its range; a skewed one leaves some buckets larger (sorted as correctly, less in
    // cache)
    const BUCKET_BITS: u32 = 12;
    let index_bits = usize::BITS - v.len().saturating_sub(1).leading_zeros();
    let (lo, hi) = v.iter().fold((u64::MAX, 0), |(lo, hi), &x| (lo.min(rank_key(x)), hi.max(rank_key(x))));
    let span_bits = u64::BITS - hi.saturating_sub(lo).leading_zeros();
    let key_bits = span_bits.min(u64::BITS - index_bits);
    let packing = Packing { index_bits, shift: span_bits - key_bits };
    let pack = |i: usize, x: f64| ((rank_key(x) - lo).checked_shr(packing.shift).unwrap_or(0) << index_bits) | i as u64;
    sorted.clear();
    if v.len() < 1 << 16 {
        sorted.extend(v.iter().enumerate().map(|(i, &x)| pack(i, x)));
        sort_by_kept_key(sorted, index_bits, key_bits);
        return packing;
    }
    // (packed >> bucket_shift) is the bucket: non-decreasing in the packed sample, below
    // 2^BUCKET_BITS
    let bucket_shift = (key_bits + index_bits).saturating_sub(BUCKET_BITS);
    let mut starts = vec![0usize; (1 << (key_bits + index_bits - bucket_shift)) + 1];
    for (i, &x) in v.iter().enumerate() {
        starts[(pack(i, x) >> bucket_shift) as usize + 1] += 1;
    }
    for b in 1..starts.len() {
        starts[b] += starts[b - 1];
    }
    sorted.resize(v.len(), 0);
    let mut next = starts.clone();
    for (i, &x) in v.iter().enumerate() {
        let p = pack(i, x);
        let b = (p >> bucket_shift) as usize;
        sorted[next[b]] = p;
        next[b] += 1;
    }
    // a bucket's packed samples share their bits from bucket_shift up: their kept keys vary
    // only below bucket_shift - index_bits
    for w in starts.windows(2) {
        sort_by_kept_key(&mut sorted[w[0]..w[1]], index_bits, bucket_shift.saturating_sub(index_bits));
    }
    packing
}

/// Sort packed samples by their kept keys (`p >> index_bits`) alone, whose lowest
/// `varying_bits` are all that differ among them. The sort is stable and the samples come in
/// index order, so samples with equal kept keys stay in index order: the order of sorting the
/// whole packed words, with fewer radix passes (the index bits are never sorted by, and a
/// key that fits a u32 counts four digits, not eight).
fn sort_by_kept_key(packed: &mut [u64], index_bits: u32, varying_bits: u32) {
    if varying_bits <= u32::BITS {
        // the bits cut off are the same in every sample
        radsort::sort_by_key(packed, |&p| (p >> index_bits) as u32);
    } else {
        radsort::sort_by_key(packed, |&p| p >> index_bits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Rank by definition (no NaN): 1 + (values below) + (other values equal, `==`) / 2.
    fn ranks_by_count(v: &[f64]) -> Vec<f64> {
        v.iter()
            .map(|&x| {
                let below = v.iter().filter(|&&y| y < x).count();
                let equal = v.iter().filter(|&&y| y == x).count();
                below as f64 + (equal as f64 + 1.0) / 2.0
            })
            .collect()
    }

    #[test]
    fn ranks_match_their_definition_with_ties_signed_zeros_and_extremes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let pool = [-0.0, 0.0, 1.5, -1.5, 1e-300, -1e-300, 5e-324, -5e-324, f64::INFINITY, f64::NEG_INFINITY, 1e300, 2.0];
        for n in [1usize, 2, 7, 100, 600] {
            // drawn from a small pool (many ties, both zeros) and from a continuum
            let v: Vec<f64> = (0..n).map(|_| if rng.random::<bool>() { pool[rng.random_range(0..pool.len())] } else { rng.random_range(-3.0..3.0) }).collect();
            assert_eq!(ranks(&v), ranks_by_count(&v), "n = {n}");
        }
        // one NaN ranks after every number and ties with nothing
        let v = [2.0, f64::NAN, -1.0, 2.0];
        assert_eq!(ranks(&v), vec![2.5, 4.0, 1.0, 2.5]);
    }

    /// Ranks by a comparison sort: the samples in `total_cmp` order (-0 as +0), a run of
    /// `==` values sharing its average position.
    fn ranks_by_sorting(v: &[f64]) -> Vec<f64> {
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by(|&a, &b| (v[a] + 0.0).total_cmp(&(v[b] + 0.0)));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < order.len() {
            let mut j = i;
            while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
                j += 1;
            }
            for &k in &order[i..=j] {
                r[k] = (i + j) as f64 / 2.0 + 1.0;
            }
            i = j + 1;
        }
        r
    }

    #[test]
    fn ranks_of_large_samples_split_into_buckets_match_a_comparison_sort() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        let pool = [-0.0, 0.0, 1.5, -1.5, 1e-300, -1e-300, 5e-324, f64::INFINITY, f64::NEG_INFINITY, 1e300, f64::NAN, -f64::NAN];
        let n = 300_000;
        // narrow (one binade, the buckets split its mantissas), wide, and tied samples
        let narrow: Vec<f64> = (0..n).map(|_| rng.random_range(1.0..2.0)).collect();
        let wide: Vec<f64> = (0..n)
            .map(|_| {
                if rng.random_range(0..8) == 0 {
                    pool[rng.random_range(0..pool.len())]
                } else {
                    rng.random_range(-3.0..3.0) * 10f64.powi(rng.random_range(-20..20))
                }
            })
            .collect();
        let tied: Vec<f64> = (0..n).map(|_| (rng.random_range(0..50) as f64) * 0.25).collect();
        let constant = vec![0.75; n];
        for (name, v) in [("narrow", &narrow), ("wide", &wide), ("tied", &tied), ("constant", &constant)] {
            assert_eq!(ranks(v), ranks_by_sorting(v), "{name}");
        }
        // keys a few ulps apart beside keys of both infinities: the packing drops the keys'
        // lowest bits, and the samples sharing the rest are ordered by their full keys
        for n in [1000, 100_000] {
            let mut v: Vec<f64> = (0..n).map(|_| f64::from_bits(0x3FF0_0000_0000_0000 + rng.random_range(0..1u64 << 24))).collect();
            v[0] = f64::INFINITY;
            v[1] = f64::NEG_INFINITY;
            assert_eq!(ranks(&v), ranks_by_sorting(&v), "ulps apart, n = {n}");
        }
        // equal NaNs beside another NaN and -inf (the packing drops bits, so the NaNs share
        // a group): each its own rank, in index order as a stable sort leaves them
        let mut v = vec![f64::NEG_INFINITY, f64::from_bits(0x7FF8_0000_0000_0001)];
        v.extend([f64::NAN; 20]);
        assert_eq!(ranks(&v), ranks_by_sorting(&v), "equal NaNs");
        // keys spanning about as many values as there are buckets, at the sizes around the
        // threshold of the split
        for n in [(1 << 16) - 1, 1 << 16, (1 << 16) + 1] {
            for span in [4095u64, 4096, 4097] {
                let v: Vec<f64> = (0..n).map(|_| f64::from_bits(0x3FF0_0000_0000_0000 + rng.random_range(0..span))).collect();
                assert_eq!(ranks(&v), ranks_by_sorting(&v), "n = {n}, span = {span}");
            }
        }
    }

    /// Doubled ranks as `ranks_by_sorting` gives them (2 x an average position is an integer).
    fn doubled_by_sorting(v: &[f64]) -> Vec<u32> {
        ranks_by_sorting(v).iter().map(|r| (2.0 * r) as u32).collect()
    }

    #[test]
    fn the_quotient_by_a_multiply_is_the_division() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(14);
        let mut divisors: Vec<usize> = (1..=300).chain([1 << 16, (1 << 31) - 1, 1 << 31, u32::MAX as usize]).collect();
        divisors.extend((0..300).map(|_| rng.random_range(1..=u32::MAX as usize)));
        for d in divisors {
            let q = quotient_by(d);
            // the edges (0, multiples of d and their neighbours, the top of u32) and random k
            let mut ks: Vec<usize> = vec![0, 1, d - 1, d, d + 1, 2 * d - 1, 2 * d, u32::MAX as usize, u32::MAX as usize - 1];
            ks.extend((0..200).map(|_| rng.random_range(0..=u32::MAX as usize)));
            ks.extend((0..50).map(|_| (rng.random_range(0..=u32::MAX as usize) / d) * d));
            for k in ks.into_iter().filter(|&k| k <= u32::MAX as usize) {
                assert_eq!(q(k), k / d, "{k} / {d}");
            }
        }
    }

    #[test]
    fn ranks_within_slices_from_the_whole_sort_match_sorting_each_slice() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
        let pool = [-0.0, 0.0, 1.5, -1.5, 5e-324, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, -f64::NAN];
        // small (one sort in place) and large (split into buckets) wholes; slices of one
        // sample, a few, and ones that do not divide the whole (the last slice is shorter)
        for (n, slice_len) in [(1usize, 1usize), (7, 3), (600, 1), (600, 50), (600, 600), (70_000, 700), (100_003, 1000)] {
            // many ties across and within slices, both zeros, NaNs (tied with nothing), and
            // keys a few ulps apart (the packing drops their lowest bits at the large sizes)
            let v: Vec<f64> = (0..n)
                .map(|_| match rng.random_range(0..4) {
                    0 => pool[rng.random_range(0..pool.len())],
                    1 => (rng.random_range(0..20) as f64) * 0.5,
                    2 => f64::from_bits(0x3FF0_0000_0000_0000 + rng.random_range(0..1u64 << 20)),
                    _ => rng.random_range(-3.0..3.0) * 10f64.powi(rng.random_range(-20..20)),
                })
                .collect();
            let (whole, sliced) = doubled_ranks_whole_and_sliced(&v, slice_len, &mut vec![]);
            assert_eq!(whole, doubled_by_sorting(&v), "whole, n = {n}");
            let want: Vec<u32> = v.chunks(slice_len).flat_map(doubled_by_sorting).collect();
            assert_eq!(sliced, want, "slices of {slice_len}, n = {n}");
        }
    }
}
