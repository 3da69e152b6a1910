//! Exact sums of f64 values, in two forms.
//!
//! `ExactSum`: a Shewchuk expansion (the algorithm behind Python's math.fsum), a few doubles
//! whose exact sum is the value; it rounds correctly (`value`) and is the stored form.
//!
//! `FixedSum`: the same exact value in fixed point (a "small superaccumulator", after
//! R. M. Neal, "Fast exact summation using small and large superaccumulators", 2015), the fast
//! form for adding many values. Every finite f64 is an integer multiple of 2^-1074:
//! x = m 2^(p - 1074) with m < 2^53 and 0 <= p <= 2045. The sum is kept as
//! sum_k c_k 2^(32 k - 1074) over 66 signed 64-bit chunks c_k. Adding x adds the three 32-bit
//! pieces of m 2^(p mod 32) to chunks p/32 .. p/32 + 2, with no carry: each piece is below
//! 2^32, so 2^30 additions fit before the chunks are renormalised (carries moved up so that
//! 0 <= c_k < 2^32 below the top chunk). Integer additions commute, so the state after any
//! set of values is the same whatever their order, and the canonical (normalised) chunks are
//! the same for any grouping into blocks or shards. An add costs about what two floating-point
//! two-sums cost, against an expansion's loop over its partials.

/// An exact sum of f64 values as a non-overlapping expansion (increasing magnitude).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExactSum {
    pub(super) partials: Vec<f64>,
}

impl ExactSum {
    /// Add x exactly (Shewchuk's grow-expansion with zero elimination).
    pub fn add(&mut self, mut x: f64) {
        let mut i = 0;
        for j in 0..self.partials.len() {
            let mut y = self.partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                self.partials[i] = lo;
                i += 1;
            }
            x = hi;
        }
        self.partials.truncate(i);
        self.partials.push(x);
    }

    /// The expansion's partials, in increasing magnitude.
    pub fn partials(&self) -> &[f64] {
        &self.partials
    }

    pub fn merge(&mut self, other: &ExactSum) {
        for &p in &other.partials {
            self.add(p);
        }
    }

    /// The exact sum, correctly rounded to f64 (math.fsum's final step).
    pub fn value(&self) -> f64 {
        let p = &self.partials;
        let Some(mut n) = p.len().checked_sub(1) else {
            return 0.0;
        };
        let mut hi = p[n];
        let mut lo = 0.0;
        while n > 0 {
            n -= 1;
            let x = hi;
            let y = p[n];
            hi = x + y;
            let yr = hi - x;
            lo = y - yr;
            if lo != 0.0 {
                break;
            }
        }
        // Round half-even correction when the rest of the expansion decides the tie.
        if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
            let y = lo * 2.0;
            let x = hi + y;
            if y == x - hi {
                hi = x;
            }
        }
        hi
    }

    /// The exact sum divided by d (a whole number of values, d < 2^53), correctly rounded
    /// (half to even). q = fl(sum)/d lies within two ulp of sum/d; its neighbours
    /// lo < sum/d < hi are found from the signs of the exact residuals sum - q d, and the
    /// midpoint decides: sum - (lo + (hi - lo)/2) d > 0 takes hi, < 0 takes lo, = 0 the one
    /// of even mantissa. Where a product could lose bits (|q d| outside [1e-280, 1e300]),
    /// the plain quotient.
    pub fn quotient(&self, d: f64) -> f64 {
        let q = self.value() / d;
        if !(1e-280..=1e300).contains(&(q.abs() * d)) {
            return q;
        }
        // sum - c d, exactly, rounded: its sign is the exact sign
        let residual = |terms: &[f64]| -> f64 {
            let mut r = self.clone();
            for &c in terms {
                r.add_product(-c, d);
            }
            r.value()
        };
        let r = residual(&[q]);
        if r == 0.0 {
            return q;
        }
        // step outwards from q towards sum/d until it is bracketed (at most twice)
        let (mut lo, mut hi) = if r > 0.0 { (q, q.next_up()) } else { (q.next_down(), q) };
        for _ in 0..4 {
            let (r_lo, r_hi) = (residual(&[lo]), residual(&[hi]));
            if r_lo == 0.0 {
                return lo;
            }
            if r_hi == 0.0 {
                return hi;
            }
            if r_lo > 0.0 && r_hi < 0.0 {
                // (hi - lo is one ulp, a power of two: its half is exact, and so is each product)
                let m = residual(&[lo, (hi - lo) / 2.0]);
                return if m > 0.0 || (m == 0.0 && lo.to_bits() & 1 == 1) { hi } else { lo };
            }
            (lo, hi) = if r_hi > 0.0 { (hi, hi.next_up()) } else { (lo.next_down(), lo) };
        }
        q
    }

    /// Add a * b exactly (Dekker's two-product; no overflow for |a b| < 1e300).
    pub fn add_product(&mut self, a: f64, b: f64) {
        let (p, err) = two_product(a, b);
        self.add(p);
        // an overflowing product has no error term (Dekker's would be NaN)
        if p.is_finite() {
            self.add(err);
        }
    }
}

const CHUNK_BITS: u32 = 32;
const CHUNKS: usize = 66;
/// Additions between renormalisations (each adds < 2^32 to a chunk; chunks hold +-2^63).
const ADDS_BEFORE_CARRY: u32 = 1 << 30;

/// The biased exponents of `add_square`'s integer path: |x| in [2^-400, 2^401).
const SQUARE_MIN_BIASED: u32 = 1023 - 400;
const SQUARE_MAX_BIASED: u32 = 1023 + 400;

/// Values per `add_column` call (the i128 and 256-bit sums keep 9 bits of headroom).
pub const COLUMN_MAX: usize = 512;
/// The widest spread of biased exponents `add_column` takes: sum +-m 2^(p - p_min) stays
/// below 2^(53 + 64 + 9) < 2^127, sum m^2 2^(2 (p - p_min)) below 2^(106 + 128 + 9) < 2^256.
const COLUMN_SPREAD: u32 = 64;

#[derive(Clone, Debug)]
pub struct FixedSum {
    chunks: [i64; CHUNKS],
    adds: u32,
    /// The sum of the infinite or NaN terms added (x^2 of a huge x), 0 when there were none:
    /// then the sum is that, not finite.
    special: f64,
}

impl Default for FixedSum {
    fn default() -> Self {
        FixedSum { chunks: [0; CHUNKS], adds: 0, special: 0.0 }
    }
}

impl PartialEq for FixedSum {
    fn eq(&self, other: &Self) -> bool {
        let (mut a, mut b) = (self.clone(), other.clone());
        a.normalize();
        b.normalize();
        a.chunks == b.chunks && a.special.to_bits() == b.special.to_bits()
    }
}

impl FixedSum {
    #[inline]
    pub fn add(&mut self, x: f64) {
        let bits = x.to_bits();
        let biased = biased_exponent(bits);
        if biased == 0x7ff {
            self.special += x;
            return;
        }
        // x = m 2^(p - 1074): subnormals have p = 0 and no hidden bit
        let (m, p) = if biased == 0 { (bits & FRACTION, 0) } else { (significand(bits), biased - 1) };
        let wide = (m as u128) << (p % CHUNK_BITS);
        let k = (p / CHUNK_BITS) as usize;
        let pieces = [(wide & 0xffff_ffff) as i64, ((wide >> 32) & 0xffff_ffff) as i64, (wide >> 64) as i64];
        if bits >> 63 == 0 {
            self.chunks[k] += pieces[0];
            self.chunks[k + 1] += pieces[1];
            self.chunks[k + 2] += pieces[2];
        } else {
            self.chunks[k] -= pieces[0];
            self.chunks[k + 1] -= pieces[1];
            self.chunks[k + 2] -= pieces[2];
        }
        self.adds += 1;
        if self.adds == ADDS_BEFORE_CARRY {
            self.normalize();
        }
    }

    /// Add a * b exactly: the rounded product and its rounding error (Dekker's two-product,
    /// exact while |a b| < 1e300).
    #[inline]
    pub fn add_product(&mut self, a: f64, b: f64) {
        let (p, err) = two_product(a, b);
        self.add(p);
        // an overflowing product has no error term (Dekker's would be NaN)
        if p.is_finite() {
            self.add(err);
        }
    }

    /// Add x^2 exactly. For 2^-400 <= |x| < 2^401 from the integer square of the mantissa:
    /// x = m 2^(b - 1075) (b the biased exponent, m < 2^53 with its hidden bit), so
    /// x^2 = m^2 2^(q - 1074) with q = 2 b - 1076 >= 0, and m^2 < 2^106 goes to chunks
    /// q/32 .. q/32 + 4 as five pieces of m^2 2^(q mod 32). There two-product is exact too,
    /// so the sum is the one `add_product(x, x)` gives, bit for bit; outside, that is used.
    #[inline]
    pub fn add_square(&mut self, x: f64) {
        let bits = x.to_bits();
        let biased = biased_exponent(bits);
        if !(SQUARE_MIN_BIASED..=SQUARE_MAX_BIASED).contains(&biased) {
            return self.add_product(x, x);
        }
        let m = significand(bits);
        let q = 2 * biased - 1076;
        let square = (m as u128) * (m as u128);
        let r = q % CHUNK_BITS;
        let low = square << r;
        // the bits shifted past 128 (square < 2^106, so below 2^9)
        let high = if r == 0 { 0 } else { (square >> (128 - r)) as i64 };
        let k = (q / CHUNK_BITS) as usize;
        let piece = |i: u32| ((low >> (32 * i)) & 0xffff_ffff) as i64;
        self.chunks[k] += piece(0);
        self.chunks[k + 1] += piece(1);
        self.chunks[k + 2] += piece(2);
        self.chunks[k + 3] += piece(3);
        self.chunks[k + 4] += high;
        self.adds += 1;
        if self.adds == ADDS_BEFORE_CARRY {
            self.normalize();
        }
    }

    /// Add v 2^(e - 1074) for an integer v = sum_i piece_i 2^(32 i) (each |piece_i| < 2^32),
    /// exactly: each piece times 2^(e mod 32) is split at bit 32 into two chunk additions
    /// under 2^32. Leaves the chunks normalised.
    fn add_pieces(&mut self, pieces: &[i64], e: u32) {
        self.normalize();
        let (k, r) = ((e / CHUNK_BITS) as usize, e % CHUNK_BITS);
        for (i, &piece) in pieces.iter().enumerate() {
            // |piece| < 2^32 and r < 32: the shifted piece fits an i64
            let v = piece << r;
            self.chunks[k + i] += v & 0xffff_ffff;
            self.chunks[k + i + 1] += v >> CHUNK_BITS;
        }
        self.normalize();
    }

    /// Add sum x and sum x^2 of `xs` (finite values) to `s1` and `s2`, exactly, as integers:
    /// with every x = +-m 2^(p - 1074) (m < 2^53; p as in `add`) and p in [p_min, p_min + 64],
    /// sum +-m 2^(p - p_min) fits an i128 for up to 2^9 values, and sum m^2 2^(2 (p - p_min))
    /// a 256-bit integer; each is then added once at its scale. The chunks end as the
    /// value-by-value adds would leave them (normalised), so nothing else changes. Returns
    /// false, having added nothing, when the values are outside that range (wider spread, or
    /// squares outside `add_square`'s integer range) or more than `COLUMN_MAX`: the caller
    /// adds them one by one.
    pub fn add_column(s1: &mut FixedSum, s2: &mut FixedSum, xs: &[f64]) -> bool {
        if xs.len() > COLUMN_MAX {
            return false;
        }
        // the exponent range of the non-zero values (zeros add nothing)
        let (mut lo, mut hi) = (u32::MAX, 0u32);
        for &x in xs {
            let biased = biased_exponent(x.to_bits());
            if x != 0.0 {
                lo = lo.min(biased);
                hi = hi.max(biased);
            }
        }
        if lo == u32::MAX {
            return true;
        }
        if lo < SQUARE_MIN_BIASED || hi > SQUARE_MAX_BIASED || hi - lo > COLUMN_SPREAD {
            return false;
        }
        // in the square range every x is normal: p = biased - 1
        let p_min = lo - 1;
        // Per exponent offset d = biased - lo: sum +-m (< 2^62 for 2^9 values) and sum m^2
        // (< 2^115), each a plain add into its own slot, so a value costs two adds with no
        // variable wide shift; the slots are shifted into place once per column below.
        let spread = (hi - lo) as usize;
        let mut by_offset = [(0i64, 0u128); COLUMN_SPREAD as usize + 1];
        let slots = &mut by_offset[..=spread];
        for &x in xs {
            let bits = x.to_bits();
            if x == 0.0 {
                continue;
            }
            let m = significand(bits);
            let slot = &mut slots[(biased_exponent(bits) - lo) as usize];
            slot.0 += if bits >> 63 == 0 { m as i64 } else { -(m as i64) };
            slot.1 += (m as u128) * (m as u128);
        }
        let mut sum: i128 = 0;
        let (mut sq_lo, mut sq_hi) = (0u128, 0u128);
        for (shift, &(m_sum, square_sum)) in slots.iter().enumerate() {
            sum += (m_sum as i128) << shift;
            // square_sum 2^(2 shift) as a 256-bit (add_hi, add_lo)
            let s2x = 2 * shift as u32;
            let (add_lo, add_hi) = if s2x == 0 {
                (square_sum, 0)
            } else if s2x < 128 {
                (square_sum << s2x, square_sum >> (128 - s2x))
            } else {
                (0, square_sum << (s2x - 128))
            };
            let (new_lo, carry) = sq_lo.overflowing_add(add_lo);
            sq_lo = new_lo;
            sq_hi += add_hi + carry as u128;
        }
        let mask = 0xffff_ffffu128;
        let s1_pieces = [(sum & mask as i128) as i64, ((sum >> 32) & mask as i128) as i64, ((sum >> 64) & mask as i128) as i64, (sum >> 96) as i64];
        s1.add_pieces(&s1_pieces, p_min);
        let mut s2_pieces = [0i64; 8];
        for (i, piece) in s2_pieces.iter_mut().enumerate() {
            let word = if i < 4 { sq_lo } else { sq_hi };
            *piece = ((word >> (32 * (i % 4))) & mask) as i64;
        }
        // x^2 = m^2 2^(q - 1074) with q = 2 p - 1074 (see `add_square`)
        s2.add_pieces(&s2_pieces, 2 * p_min - 1074);
        true
    }

    /// Move the carries up: 0 <= c_k < 2^32 for every chunk below the top one.
    pub fn normalize(&mut self) {
        for k in 0..CHUNKS - 1 {
            let carry = self.chunks[k] >> CHUNK_BITS;
            self.chunks[k] -= carry << CHUNK_BITS;
            self.chunks[k + 1] += carry;
        }
        self.adds = 0;
    }

    pub fn merge(&mut self, other: &FixedSum) {
        let mut o = other.clone();
        o.normalize();
        self.normalize();
        for (a, b) in self.chunks.iter_mut().zip(o.chunks) {
            *a += b;
        }
        self.special += o.special;
        self.normalize();
    }

    /// The same exact value as a Shewchuk expansion.
    pub fn to_exact(&self) -> ExactSum {
        let mut out = ExactSum::default();
        if self.special != 0.0 || self.special.is_nan() {
            out.partials.push(self.special);
            return out;
        }
        let mut n = self.clone();
        n.normalize();
        for (k, &c) in n.chunks.iter().enumerate() {
            if c == 0 {
                continue;
            }
            // c = hi 2^32 + lo with |lo| < 2^32, both of c's sign (the top chunk may be
            // negative): each piece times a power of two is exact
            let (hi, lo) = (c / (1i64 << CHUNK_BITS), c % (1i64 << CHUNK_BITS));
            for (piece, shift) in [(lo, 0), (hi, CHUNK_BITS)] {
                if piece != 0 {
                    let v = scaled(piece as f64, CHUNK_BITS as i32 * k as i32 + shift as i32 - 1074);
                    // beyond the largest float: the (exact) sum overflows, with the top's sign
                    if v.is_infinite() {
                        return ExactSum { partials: vec![v] };
                    }
                    out.add(v);
                }
            }
        }
        // partials that overflow on adding: the exact sum is past the largest float
        if out.partials.iter().any(|p| !p.is_finite()) {
            let top = n.chunks.iter().rev().find(|&&c| c != 0).copied().unwrap_or(0);
            return ExactSum { partials: vec![if top < 0 { f64::NEG_INFINITY } else { f64::INFINITY }] };
        }
        out
    }

    /// Add every partial of an expansion (a stored state read back).
    pub fn from_exact(e: &ExactSum) -> FixedSum {
        let mut f = FixedSum::default();
        for &p in e.partials() {
            f.add(p);
        }
        f
    }
}

/// The fraction bits of an f64.
const FRACTION: u64 = (1 << 52) - 1;

/// The biased exponent field of an f64's bits (0 for zeros and subnormals, 0x7ff past the
/// finite values).
#[inline(always)]
fn biased_exponent(bits: u64) -> u32 {
    ((bits >> 52) & 0x7ff) as u32
}

/// The significand of a normal f64's bits: the fraction with its hidden bit, below 2^53.
#[inline(always)]
fn significand(bits: u64) -> u64 {
    (bits & FRACTION) | (1 << 52)
}

/// v 2^e for an integer-valued v with at most 33 significant bits, exactly (the result is a
/// multiple of 2^-1074 with few bits, so it is representable unless it overflows, and then
/// the whole sum does).
fn scaled(v: f64, e: i32) -> f64 {
    if e > 1023 {
        v * f64::INFINITY
    } else if e >= -1022 {
        v * pow2(e)
    } else {
        // e + 1074 >= 0: v 2^(e + 1074) is an exact integer, then one multiply by 2^-1074
        v * pow2(e + 1074) * f64::from_bits(1)
    }
}

/// 2^e for -1022 <= e <= 1023.
fn pow2(e: i32) -> f64 {
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// a * b = p + err exactly, p the rounded product (Dekker; exact while 2^-969 < |a b| < 1e300:
/// below, the error term underflows, an error under 2^-1021 relative to the statistics'
/// 1e-12 zero bucket).
#[inline]
pub(super) fn two_product(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    let (ah, al) = split(a);
    let (bh, bl) = split(b);
    (p, ((ah * bh - p) + ah * bl + al * bh) + al * bl)
}

/// Veltkamp split: a = hi + lo with hi holding the top 26 bits.
fn split(a: f64) -> (f64, f64) {
    let c = 134_217_729.0 * a; // 2^27 + 1
    let hi = c - (c - a);
    (hi, a - hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// `quotient` against the mean in integers: values in [0.5, 1) are X 2^-53 with X an
    /// integer, so the mean rounded half to even is M 2^-53 with M the rounded X_sum / n
    /// (the mean stays in [0.5, 1), where the ulp is 2^-53); scaled by powers of two and
    /// negated it scales and negates exactly. fl(sum)/n is off by an ulp in many of these.
    #[test]
    fn quotient_is_the_correctly_rounded_mean() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(71);
        let (mut plain_off, mut cases) = (0, 0);
        for case in 0..3000 {
            let n = [2, 3, 5, 7, 10, 97, 1000, 4097][case % 8];
            // half the cases near the midpoints: values of a few bits and a tie-prone count
            let xs: Vec<i128> = (0..n)
                .map(|_| if case % 2 == 0 { rng.random_range(1i128 << 52..1i128 << 53) } else { (1i128 << 52) + rng.random_range(0..8i128) * (1 << 49) })
                .collect();
            let total: i128 = xs.iter().sum();
            let (q, rem) = (total / n as i128, total % n as i128);
            let m = if 2 * rem > n as i128 || (2 * rem == n as i128 && q % 2 == 1) { q + 1 } else { q };
            for (scale, sign) in [(1.0, 1.0), (2f64.powi(-600), -1.0), (2f64.powi(700), 1.0)] {
                let want = sign * scale * m as f64 * 2f64.powi(-53);
                let mut sum = ExactSum::default();
                xs.iter().for_each(|&x| sum.add(sign * scale * x as f64 * 2f64.powi(-53)));
                assert_eq!(sum.quotient(n as f64), want, "n {n}, case {case}");
                plain_off += usize::from(sum.value() / n as f64 != want);
                cases += 1;
            }
        }
        // the plain quotient is not the correctly rounded one: the test decides something
        assert!(plain_off > cases / 20, "{plain_off} of {cases}");
    }

    /// `add_column` at the edges of its integer sums, against the value-by-value adds:
    /// COLUMN_MAX values of the largest mantissa (the per-exponent sum near 2^62), a spread of
    /// exactly COLUMN_SPREAD binades (the i128 sum near 2^126, the squares shifted by 128
    /// bits), and the top of the square range (the highest chunks), in both signs.
    #[test]
    fn add_column_at_its_bounds_equals_the_adds_one_by_one() {
        let largest = |biased: u32| f64::from_bits((u64::from(biased) << 52) | FRACTION);
        let (top, bottom, edge) = (largest(1023 + 32), largest(1023 - 32), largest(SQUARE_MAX_BIASED));
        for sign in [1.0, -1.0] {
            let mut spread = vec![sign * top; COLUMN_MAX - 1];
            spread.push(sign * bottom);
            for xs in [vec![sign * top; COLUMN_MAX], spread, vec![sign * edge; COLUMN_MAX]] {
                let (mut s1, mut s2) = (FixedSum::default(), FixedSum::default());
                assert!(FixedSum::add_column(&mut s1, &mut s2, &xs));
                let (mut one1, mut one2) = (FixedSum::default(), FixedSum::default());
                for &x in &xs {
                    one1.add(x);
                    one2.add_square(x);
                }
                assert_eq!((s1, s2), (one1, one2), "{} x {:e}", xs.len(), xs[0]);
            }
        }
    }

    /// Against the Shewchuk expansion (an independent exact method) on values over the whole
    /// exponent range, subnormals and signed zeros included, in two orders and two groupings.
    #[test]
    fn fixed_sum_equals_the_expansion_whatever_the_order() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut xs: Vec<f64> = (0..20000)
            .map(|i| match i % 5 {
                0 => f64::from_bits(rng.random::<u64>() & !(0x7ffu64 << 52) | ((rng.random_range(0..0x7ffu64)) << 52)),
                1 => f64::from_bits(rng.random_range(0..1u64 << 52)), // subnormal
                2 => rng.random::<f64>() * 10f64.powi(rng.random_range(-30..30)),
                3 => -(rng.random::<f64>()),
                _ => {
                    if rng.random::<bool>() {
                        0.0
                    } else {
                        -0.0
                    }
                }
            })
            .collect();
        xs.retain(|x| x.is_finite() && x.abs() < 1e300);
        let mut exact = ExactSum::default();
        let mut fixed = FixedSum::default();
        for &x in &xs {
            exact.add(x);
            fixed.add(x);
        }
        assert_eq!(fixed.to_exact().value().to_bits(), exact.value().to_bits());
        let mut rev = FixedSum::default();
        xs.iter().rev().for_each(|&x| rev.add(x));
        let (mut a, mut b) = (FixedSum::default(), FixedSum::default());
        xs[..7000].iter().for_each(|&x| a.add(x));
        xs[7000..].iter().for_each(|&x| b.add(x));
        b.merge(&a);
        assert_eq!(rev, fixed);
        assert_eq!(b, fixed);
        assert_eq!(FixedSum::from_exact(&fixed.to_exact()), fixed);
        // cancellation: 1e16 + 1 - 1e16 keeps the 1
        let mut c = FixedSum::default();
        [1e16, 1.0, -1e16, 1e-300].iter().for_each(|&x| c.add(x));
        assert_eq!(c.to_exact().value(), 1.0 + 1e-300);
    }

    /// The integer square path gives the sum of Dekker's two-product, bit for bit, at and
    /// around its range's edges and over the whole exponent range, and the exact x^2
    /// (checked against the expansion of the two-product, an independent exact method).
    #[test]
    fn add_square_equals_the_two_product_sum() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let at = |b: u32, frac: u64, neg: bool| f64::from_bits(((neg as u64) << 63) | ((b as u64) << 52) | (frac & ((1 << 52) - 1)));
        let mut xs = vec![0.0, -0.0, 1.0, -3.0, f64::MAX, f64::from_bits(1)];
        for b in [SQUARE_MIN_BIASED - 1, SQUARE_MIN_BIASED, SQUARE_MIN_BIASED + 1, SQUARE_MAX_BIASED - 1, SQUARE_MAX_BIASED, SQUARE_MAX_BIASED + 1] {
            xs.extend([at(b, 0, false), at(b, u64::MAX, true), at(b, rng.random(), rng.random())]);
        }
        xs.extend((0..20000).map(|_| at(rng.random_range(0..0x7ff), rng.random(), rng.random())));
        xs.extend((0..20000).map(|_| rng.random_range(-2.0..2.0)));
        let (mut fast, mut dekker) = (FixedSum::default(), FixedSum::default());
        for &x in &xs {
            fast.add_square(x);
            dekker.add_product(x, x);
            let (mut one, mut other) = (FixedSum::default(), FixedSum::default());
            one.add_square(x);
            other.add_product(x, x);
            assert_eq!(one, other, "x = {x:e}");
        }
        assert_eq!(fast, dekker);
        // in range, the exact square: x^2 - p - err = 0 for Dekker's p, err
        let x = at(1023 + 7, 0x000f_0f0f_0f0f_0f0f, false);
        let mut f = FixedSum::default();
        f.add_square(x);
        let (p, err) = two_product(x, x);
        f.add(-p);
        f.add(-err);
        assert_eq!(f, FixedSum::default());
    }

    #[test]
    fn the_carry_path_keeps_the_sum() {
        let mut f = FixedSum::default();
        // force renormalisations often: a chunk at its bound after many additions
        for _ in 0..(3 * 1000) {
            f.add(f64::from_bits(0x000f_ffff_ffff_ffff)); // the largest subnormal
            f.adds = f.adds.max(ADDS_BEFORE_CARRY - 2);
        }
        let mut e = ExactSum::default();
        (0..3000).for_each(|_| e.add(f64::from_bits(0x000f_ffff_ffff_ffff)));
        assert_eq!(f.to_exact().value().to_bits(), e.value().to_bits());
        let mut inf = FixedSum::default();
        inf.add(f64::INFINITY);
        assert!(inf.to_exact().value().is_infinite());
    }
}
