//! The correlations of `analyze`: Pearson's of the values, and Spearman's as Pearson's of the
//! doubled ranks, in exact integer arithmetic.

/// Pearson correlation of x and y (of equal lengths), in the centred sums
///   r = sum dx dy / (sqrt(sum dx^2) sqrt(sum dy^2)),  dx = x - mean(x),
/// each side taken in a frame where the sums lose nothing to its mean's size (`Frame`): a
/// column near 1 with a spread of a few ulp (a capacity that is 1 to rounding) correlates
/// as its stored doubles do, where the plain two-pass sums (the mean rounded at the scale
/// of 1) kept little or nothing of it. The centred sums carry the corrected two-pass term
/// (Chan, Golub and LeVeque, 1983) for what is left of the mean's rounding:
///   Sxy = sum ex ey - (sum ex)(sum ey) / n,  ex = u - mean(u) as rounded,
/// (sum ex is 0 but for that rounding). In sample order throughout, so the same column gives
/// the same bits, however it was fed.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    debug_assert_eq!(x.len(), y.len());
    let n = x.len() as f64;
    let (fx, fy) = (Frame::of(x), Frame::of(y));
    // the shifted means: two chains of additions side by side, each in sample order
    let (mut sx, mut sy) = (0.0, 0.0);
    for (&a, &b) in x.iter().zip(y) {
        sx += fx.at(a);
        sy += fy.at(b);
    }
    let (mx, my) = (sx / n, sy / n);
    let (mut ex, mut ey, mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (&a, &b) in x.iter().zip(y) {
        let (da, db) = (fx.at(a) - mx, fy.at(b) - my);
        ex += da;
        ey += db;
        sxy += da * db;
        sxx += da * da;
        syy += db * db;
    }
    let (sxy, sxx, syy) = (sxy - ex * ey / n, sxx - ex * ex / n, syy - ey * ey / n);
    // (the product's root where it is a normal number, as it rounds the same as before)
    let product = sxx * syy;
    sxy / if product.is_normal() { product.sqrt() } else { sxx.sqrt() * syy.sqrt() }
}

/// A side of `pearson` as u = v s - c: scaled by the power of two s that brings its largest
/// |value| to [1, 2) (exact: no bit of a value is lost but below 2^-1022 of the largest, and
/// r does not change with the scale), then shifted by its first value so scaled, c = v_0 s.
/// Values within a factor 2 of v_0 shift exactly (Sterbenz), so a spread of a few ulp around
/// a large mean is held exactly; every |u| < 8, so no sum overflows, and a spread that is
/// not 0 is at least 2^-74 (the ulp of the scaled values near c, or of a subnormal side
/// scaled by 2^1000), so no square that matters underflows.
#[derive(Clone, Copy)]
struct Frame {
    s: f64,
    c: f64,
}

impl Frame {
    fn of(v: &[f64]) -> Frame {
        let m = v.iter().fold(0.0f64, |m, &a| m.max(a.abs()));
        // floor(log2 m) from the exponent bits (a subnormal m taken as 2^-1023); s = 2^-e, its
        // exponent kept normal: 2^-1022 for m >= 2^1023 (scaled m then < 4), 2^1000 for m
        // below 2^-1000 (a subnormal side then lands at or above 2^-74)
        let e = ((m.to_bits() >> 52) & 0x7ff) as i32 - 1023;
        let s = f64::from_bits(((1023 - e.clamp(-1000, 1022)) as u64) << 52);
        Frame { s, c: v.first().map_or(0.0, |&v0| v0 * s) }
    }

    #[inline(always)]
    fn at(&self, v: f64) -> f64 {
        v * self.s - self.c
    }
}

/// Pearson correlation; None when either side is constant (or there are < 2 points).
pub fn pearson_checked(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() < 2 || is_constant(x) || is_constant(y) {
        return None;
    }
    let r = pearson(x, y);
    r.is_finite().then(|| r.clamp(-1.0, 1.0))
}

pub(super) fn is_constant<T: PartialEq>(v: &[T]) -> bool {
    v.iter().all(|x| *x == v[0])
}

/// Pearson correlation of two samples of integers (Spearman's, of doubled ranks) of equal
/// length n < 2^31; None when either side is constant or n < 2. From the exact sums Sx, Sy,
/// Sxx, Syy and Sxy,
///   r = (n Sxy - Sx Sy) / sqrt((n Sxx - Sx^2) (n Syy - Sy^2)),
/// the numerator and both factors exact integers (each term below 2^126, in i128), so that r
/// is rounded in its last four operations only, whatever n. For y = x the factors equal the
/// numerator and r is exactly 1 (sqrt(a a) = |a| in binary floating point); for y reversed,
/// exactly -1.
pub fn integer_pearson(x: &[u32], y: &[u32]) -> Option<f64> {
    assert_eq!(x.len(), y.len(), "integer_pearson of samples of different lengths");
    let len = x.len();
    if len < 2 {
        return None;
    }
    assert!(len < 1 << 31, "integer_pearson of {len} samples");
    let s = integer_sums(x, y);
    let n = len as i128;
    let num = n * s.xy - s.x * s.y;
    let (dx, dy) = (n * s.xx - s.x * s.x, n * s.yy - s.y * s.y);
    if dx == 0 || dy == 0 {
        return None;
    }
    Some((num as f64 / ((dx as f64) * (dy as f64)).sqrt()).clamp(-1.0, 1.0))
}

/// Exact sums of two integer samples.
#[derive(Default)]
struct Sums {
    x: i128,
    y: i128,
    xx: i128,
    yy: i128,
    xy: i128,
}

/// Sx, Sy, Sxx, Syy and Sxy: added in u64 over chunks short enough that no sum overflows
/// (each term is at most m^2 for the samples' largest value m, so a chunk of u64::MAX / m^2
/// terms fits), which vectorises, and carried into i128 between chunks.
fn integer_sums(x: &[u32], y: &[u32]) -> Sums {
    let m = u64::from(x.iter().chain(y).copied().max().unwrap_or(0));
    // (m < 2^32: m^2 fits a u64)
    let chunk = (u64::MAX / (m * m).max(1)).clamp(1, 1 << 20) as usize;
    let mut total = Sums::default();
    for (xc, yc) in x.chunks(chunk).zip(y.chunks(chunk)) {
        let (mut sx, mut sy, mut sxx, mut syy, mut sxy) = (0u64, 0u64, 0u64, 0u64, 0u64);
        for (&a, &b) in xc.iter().zip(yc) {
            let (a, b) = (u64::from(a), u64::from(b));
            sx += a;
            sy += b;
            sxx += a * a;
            syy += b * b;
            sxy += a * b;
        }
        total.x += i128::from(sx);
        total.y += i128::from(sy);
        total.xx += i128::from(sxx);
        total.yy += i128::from(syy);
        total.xy += i128::from(sxy);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Pearson of integers in exact rational arithmetic, written independently: the
    /// centred sums n^2 Sdxdy = sum (n x_i - Sx)(n y_i - Sy) as i128 (n x_i - Sx is exact for
    /// the small samples here), then r in f64.
    fn centred_reference(x: &[u32], y: &[u32]) -> f64 {
        let n = x.len() as i128;
        let (sx, sy): (i128, i128) = (x.iter().map(|&a| a as i128).sum(), y.iter().map(|&b| b as i128).sum());
        let (mut dxy, mut dxx, mut dyy) = (0i128, 0i128, 0i128);
        for (&a, &b) in x.iter().zip(y) {
            let (da, db) = (n * a as i128 - sx, n * b as i128 - sy);
            dxy += da * db;
            dxx += da * da;
            dyy += db * db;
        }
        dxy as f64 / (dxx as f64).sqrt() / (dyy as f64).sqrt()
    }

    #[test]
    fn integer_pearson_is_the_centred_sums_correlation() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
        // small values (long chunks) and values near 2^32 (chunks of one or a few terms)
        for (n, top) in [(2usize, 10u32), (3, 4), (50, 100), (1000, 2000), (5000, u32::MAX), (3000, 1 << 31), (10_000, 1 << 20)] {
            let x: Vec<u32> = (0..n).map(|_| rng.random_range(0..=top)).collect();
            // correlated with x, and independent of it
            let y: Vec<u32> = x.iter().map(|&a| a / 2 + rng.random_range(0..=top / 2)).collect();
            let z: Vec<u32> = (0..n).map(|_| rng.random_range(0..=top)).collect();
            for other in [&y, &z] {
                let (got, want) = (integer_pearson(&x, other).unwrap(), centred_reference(&x, other));
                assert!((got - want).abs() < 1e-14, "n {n}, top {top}: {got} against {want}");
            }
        }
    }

    #[test]
    fn integer_pearson_of_a_sample_with_itself_is_exactly_one() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(22);
        for (n, top) in [(2usize, 3u32), (101, 1000), (20_000, 40_001), (4000, u32::MAX)] {
            let x: Vec<u32> = (0..n).map(|_| rng.random_range(0..=top)).collect();
            let reversed: Vec<u32> = x.iter().map(|&a| top - a).collect();
            if x.iter().all(|&a| a == x[0]) {
                continue;
            }
            assert_eq!(integer_pearson(&x, &x), Some(1.0), "n {n}");
            assert_eq!(integer_pearson(&x, &reversed), Some(-1.0), "n {n}");
        }
        assert_eq!(integer_pearson(&[4, 4, 4], &[1, 2, 3]), None);
        assert_eq!(integer_pearson(&[1, 2, 3], &[0, 0, 0]), None);
        assert_eq!(integer_pearson(&[1], &[2]), None);
        assert_eq!(integer_pearson(&[], &[]), None);
    }

    /// Doubled ranks at the largest sizes an analysis holds (4e6 samples): the integer
    /// correlation agrees with the f64 Pearson of the same values.
    #[test]
    fn integer_pearson_of_large_rank_samples_agrees_with_the_float_pearson() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(23);
        let n = 4_000_000u32;
        let x: Vec<u32> = (1..=n).map(|i| 2 * i).collect();
        let y: Vec<u32> = x.iter().map(|&a| if rng.random_range(0..4) == 0 { rng.random_range(2..=2 * n) } else { a }).collect();
        let (fx, fy): (Vec<f64>, Vec<f64>) = (x.iter().map(|&a| a as f64).collect(), y.iter().map(|&b| b as f64).collect());
        let (got, float) = (integer_pearson(&x, &y).unwrap(), pearson_checked(&fx, &fy).unwrap());
        assert!((got - float).abs() < 1e-9, "{got} against {float}");
        assert!(got > 0.5 && got < 0.9, "{got}");
    }
}
