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
    // (i + j + 2) / 2, the average of 1-based positions i + 1 .. j + 1: exact below 2^53
    rank_runs(v, &mut vec![], |k, doubled| r[k] = doubled as f64 / 2.0);
    r
}

/// Twice the ranks of `ranks` (integers: a tie's average is a half-integer), for samples of
/// fewer than 2^31 values, sorting in `scratch` (reused: fresh memory is paid for page by
/// page). Half the memory of f64 ranks; a Pearson correlation of doubled ranks is that of the
/// ranks, bit for bit (scaling by 2 is exact through its sums, products and square root).
pub(super) fn doubled_ranks_with(v: &[f64], scratch: &mut Vec<(u64, usize)>) -> Vec<u32> {
    assert!(v.len() < 1 << 31, "doubled ranks of {} values overflow u32", v.len());
    let mut r = vec![0u32; v.len()];
    rank_runs(v, scratch, |k, doubled| r[k] = doubled as u32);
    r
}

/// Sort `v` into `scratch` and call `put(index, i + j + 2)` for each sample, [i, j] the
/// 0-based positions of its run of equal keys.
fn rank_runs(v: &[f64], scratch: &mut Vec<(u64, usize)>, mut put: impl FnMut(usize, u64)) {
    sort_by_key_into(v, scratch);
    let keyed = &scratch[..];
    let mut i = 0;
    while i < keyed.len() {
        let key = keyed[i].0;
        let mut j = i;
        // Keys past +inf's or before -inf's are NaNs.
        if (!0xFFF0_0000_0000_0000..=0xFFF0_0000_0000_0000).contains(&key) {
            while j + 1 < keyed.len() && keyed[j + 1].0 == key {
                j += 1;
            }
        }
        let doubled = (i + j + 2) as u64;
        for k in &keyed[i..=j] {
            put(k.1, doubled);
        }
        i = j + 1;
    }
}

/// `sorted` := (key, index) of every sample of `v`, sorted by key (ties in any order). A radix
/// sort of a large sample at once moves every element through memory once per key byte; so
/// one pass first splits the keys by their top varying bits into buckets (in key order) small
/// enough for the cache, and each bucket is radix-sorted there.
fn sort_by_key_into(v: &[f64], sorted: &mut Vec<(u64, usize)>) {
    // 2^12 buckets, even in the key: a few thousand samples each for a sample spread over its
    // range; a skewed one leaves some buckets larger (sorted as correctly, less in cache)
    const BUCKET_BITS: u32 = 12;
    let key = |x: f64| total_order_key(x + 0.0);
    sorted.clear();
    if v.len() < 1 << 16 {
        sorted.extend(v.iter().enumerate().map(|(i, &x)| (key(x), i)));
        radsort::sort_by_key(sorted, |k| k.0);
        return;
    }
    let (lo, hi) = v.iter().fold((u64::MAX, 0), |(lo, hi), &x| (lo.min(key(x)), hi.max(key(x))));
    // (key - lo) >> shift is the bucket: non-decreasing in the key, below 2^BUCKET_BITS
    let shift = (64 - (hi - lo).leading_zeros()).saturating_sub(BUCKET_BITS);
    let bucket = |x: f64| ((key(x) - lo) >> shift) as usize;
    let mut starts = vec![0usize; ((hi - lo) >> shift) as usize + 2];
    for &x in v {
        starts[bucket(x) + 1] += 1;
    }
    for b in 1..starts.len() {
        starts[b] += starts[b - 1];
    }
    sorted.resize(v.len(), (0, 0));
    let mut next = starts.clone();
    for (i, &x) in v.iter().enumerate() {
        let b = bucket(x);
        sorted[next[b]] = (key(x), i);
        next[b] += 1;
    }
    for w in starts.windows(2) {
        radsort::sort_by_key(&mut sorted[w[0]..w[1]], |k| k.0);
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
        // keys spanning about as many values as there are buckets, at the sizes around the
        // threshold of the split
        for n in [(1 << 16) - 1, 1 << 16, (1 << 16) + 1] {
            for span in [4095u64, 4096, 4097] {
                let v: Vec<f64> = (0..n).map(|_| f64::from_bits(0x3FF0_0000_0000_0000 + rng.random_range(0..span))).collect();
                assert_eq!(ranks(&v), ranks_by_sorting(&v), "n = {n}, span = {span}");
            }
        }
    }
}
