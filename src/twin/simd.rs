//! The twins' lane types (the measures' samples, the cavity RHS's columns): one value (f32,
//! f64), or four side by side: `wide`'s f32x4 and f64x4 (SSE2 on x86_64; f64x4 in two halves
//! unless the build targets AVX), and `F64x4Avx`, one AVX register, for code compiled for
//! AVX2 at run time; or eight: `wide`'s f32x8, and `F64x8Avx512`, one AVX-512 register, for
//! code compiled for AVX-512 at run time. Every operation here is the IEEE operation of each
//! lane (no fusing, no reordering, masks from ordered compares), so code written once over
//! `Lanes` gives a lane the bits it gives the scalar.
//! The module is private to the crate: `F64x4Avx` and `F64x8Avx512` must not be reachable
//! from safe code outside it.

use std::ops::{Add, Div, Mul, Sub};
use wide::{CmpEq, CmpGe, CmpGt, CmpLt};

/// A value per lane, with the operations the twin's solvers use.
pub trait Lanes: Copy + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + Div<Output = Self> {
    type Scalar: Copy + PartialEq + std::fmt::Debug;
    /// Per-lane booleans.
    type Mask: Copy;
    /// Lanes.
    const N: usize;
    fn splat(x: Self::Scalar) -> Self;
    /// Lane l from f(l).
    fn from_fn(f: impl FnMut(usize) -> Self::Scalar) -> Self;
    fn lane(self, l: usize) -> Self::Scalar;
    fn sqrt(self) -> Self;
    fn abs(self) -> Self;
    /// -x: the sign bit flipped, as scalar negation (0 - x would turn -0 into +0).
    fn flip(self) -> Self;
    fn eq(self, o: Self) -> Self::Mask;
    fn ge(self, o: Self) -> Self::Mask;
    fn gt(self, o: Self) -> Self::Mask;
    fn lt(self, o: Self) -> Self::Mask;
    fn or(a: Self::Mask, b: Self::Mask) -> Self::Mask;
    fn not(m: Self::Mask) -> Self::Mask;
    /// t where m holds, f elsewhere.
    fn select(m: Self::Mask, t: Self, f: Self) -> Self;
    fn any(m: Self::Mask) -> bool;
    /// x rounded to the scalar (to nearest, as `Real::from_f64`).
    fn scalar(x: f64) -> Self::Scalar;
    /// Lane l widened to f64.
    fn lane_f64(self, l: usize) -> f64;
    fn from_f64(x: f64) -> Self {
        Self::splat(Self::scalar(x))
    }
    /// Lane l from pairs[2 l] and from pairs[2 l + 1] (N interleaved pairs, as complex
    /// numbers lie in memory), as two sets of lanes.
    #[inline(always)]
    fn from_pairs(pairs: &[Self::Scalar]) -> (Self, Self) {
        debug_assert!(pairs.len() >= 2 * Self::N);
        (Self::from_fn(|l| pairs[2 * l]), Self::from_fn(|l| pairs[2 * l + 1]))
    }
    /// `from_pairs` reversed: pairs[2 l] = a's lane l, pairs[2 l + 1] = b's.
    #[inline(always)]
    fn to_pairs(a: Self, b: Self, pairs: &mut [Self::Scalar]) {
        for l in 0..Self::N {
            (pairs[2 * l], pairs[2 * l + 1]) = (a.lane(l), b.lane(l));
        }
    }
}

macro_rules! scalar_lanes {
    ($t:ty) => {
        impl Lanes for $t {
            type Scalar = $t;
            type Mask = bool;
            const N: usize = 1;
            #[inline(always)]
            fn splat(x: $t) -> Self {
                x
            }
            #[inline(always)]
            fn from_fn(mut f: impl FnMut(usize) -> $t) -> Self {
                f(0)
            }
            #[inline(always)]
            fn lane(self, _l: usize) -> $t {
                self
            }
            #[inline(always)]
            fn scalar(x: f64) -> $t {
                x as $t
            }
            #[inline(always)]
            fn lane_f64(self, _l: usize) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn flip(self) -> Self {
                -self
            }
            #[inline(always)]
            fn eq(self, o: Self) -> bool {
                self == o
            }
            #[inline(always)]
            fn ge(self, o: Self) -> bool {
                self >= o
            }
            #[inline(always)]
            fn gt(self, o: Self) -> bool {
                self > o
            }
            #[inline(always)]
            fn lt(self, o: Self) -> bool {
                self < o
            }
            #[inline(always)]
            fn or(a: bool, b: bool) -> bool {
                a || b
            }
            #[inline(always)]
            fn not(m: bool) -> bool {
                !m
            }
            #[inline(always)]
            fn select(m: bool, t: Self, f: Self) -> Self {
                if m {
                    t
                } else {
                    f
                }
            }
            #[inline(always)]
            fn any(m: bool) -> bool {
                m
            }
        }
    };
}
scalar_lanes!(f32);
scalar_lanes!(f64);

macro_rules! vector_lanes {
    ($t:ty, $s:ty, $n:expr) => {
        impl Lanes for $t {
            type Scalar = $s;
            type Mask = $t;
            const N: usize = $n;
            #[inline(always)]
            fn splat(x: $s) -> Self {
                <$t>::splat(x)
            }
            #[inline(always)]
            fn from_fn(f: impl FnMut(usize) -> $s) -> Self {
                <$t>::new(std::array::from_fn(f))
            }
            #[inline(always)]
            fn lane(self, l: usize) -> $s {
                self.to_array()[l]
            }
            #[inline(always)]
            fn scalar(x: f64) -> $s {
                x as $s
            }
            #[inline(always)]
            fn lane_f64(self, l: usize) -> f64 {
                self.to_array()[l] as f64
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn flip(self) -> Self {
                self ^ <$t>::splat(-0.0)
            }
            #[inline(always)]
            fn eq(self, o: Self) -> Self {
                self.cmp_eq(o)
            }
            #[inline(always)]
            fn ge(self, o: Self) -> Self {
                self.cmp_ge(o)
            }
            #[inline(always)]
            fn gt(self, o: Self) -> Self {
                self.cmp_gt(o)
            }
            #[inline(always)]
            fn lt(self, o: Self) -> Self {
                self.cmp_lt(o)
            }
            #[inline(always)]
            fn or(a: Self, b: Self) -> Self {
                a | b
            }
            #[inline(always)]
            fn not(m: Self) -> Self {
                !m
            }
            #[inline(always)]
            fn select(m: Self, t: Self, f: Self) -> Self {
                m.blend(t, f)
            }
            #[inline(always)]
            fn any(m: Self) -> bool {
                m.any()
            }
        }
    };
}
vector_lanes!(wide::f32x4, f32, 4);
vector_lanes!(wide::f32x8, f32, 8);
vector_lanes!(wide::f64x4, f64, 4);

/// The arithmetic operators of an intrinsic lane type `$t` (one register, `.0`): each the
/// intrinsic of its lanes. Expanded where the type's SAFETY note holds (the CPU has been found
/// to have the instructions).
#[cfg(target_arch = "x86_64")]
macro_rules! intrinsic_ops {
    ($t:ident: $($tr:ident $m:ident $f:ident),*) => {$(
        impl std::ops::$tr for $t {
            type Output = Self;
            #[inline(always)]
            fn $m(self, o: Self) -> Self {
                $t(unsafe { $f(self.0, o.0) })
            }
        }
    )*};
}

/// The `Lanes` methods an intrinsic lane type `$t` of `$n` f64 shares whatever its masks: in
/// its `impl Lanes`, from its set1, loadu, storeu, sqrt, andnot and xor intrinsics.
#[cfg(target_arch = "x86_64")]
macro_rules! intrinsic_lane_methods {
    ($t:ident, $n:expr, $set1:ident, $loadu:ident, $storeu:ident, $sqrt:ident, $andnot:ident, $xor:ident) => {
        #[inline(always)]
        fn splat(x: f64) -> Self {
            $t(unsafe { $set1(x) })
        }
        #[inline(always)]
        fn from_fn(f: impl FnMut(usize) -> f64) -> Self {
            let a: [f64; $n] = std::array::from_fn(f);
            $t(unsafe { $loadu(a.as_ptr()) })
        }
        #[inline(always)]
        fn lane(self, l: usize) -> f64 {
            let mut a = [0.0; $n];
            unsafe { $storeu(a.as_mut_ptr(), self.0) };
            a[l]
        }
        #[inline(always)]
        fn scalar(x: f64) -> f64 {
            x
        }
        #[inline(always)]
        fn lane_f64(self, l: usize) -> f64 {
            self.lane(l)
        }
        #[inline(always)]
        fn sqrt(self) -> Self {
            $t(unsafe { $sqrt(self.0) })
        }
        #[inline(always)]
        fn abs(self) -> Self {
            $t(unsafe { $andnot($set1(-0.0), self.0) })
        }
        #[inline(always)]
        fn flip(self) -> Self {
            $t(unsafe { $xor($set1(-0.0), self.0) })
        }
    };
}

/// Four f64 lanes in one AVX register, for code compiled for AVX2 at run time
/// (`twin::measures_two_qubit::measure_group_avx2`, `twin::rk4_cavity::CavityWork::step_avx2`).
/// It may only be made where the CPU has been found to have AVX2 (`twin::has_avx2`):
/// `Real::X4Avx2` is used nowhere else.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug)]
pub struct F64x4Avx(std::arch::x86_64::__m256d);

#[cfg(target_arch = "x86_64")]
mod avx {
    use super::{F64x4Avx, Lanes};
    use std::arch::x86_64::*;

    // SAFETY (every unsafe block here and in the two macros' expansions): an F64x4Avx is made
    // only where the CPU has been found to have AVX2 (see the type's doc; this module is
    // private to the crate).
    intrinsic_ops!(F64x4Avx: Add add _mm256_add_pd, Sub sub _mm256_sub_pd, Mul mul _mm256_mul_pd, Div div _mm256_div_pd);

    impl Lanes for F64x4Avx {
        type Scalar = f64;
        type Mask = F64x4Avx;
        const N: usize = 4;
        intrinsic_lane_methods!(F64x4Avx, 4, _mm256_set1_pd, _mm256_loadu_pd, _mm256_storeu_pd, _mm256_sqrt_pd, _mm256_andnot_pd, _mm256_xor_pd);
        /// Two loads of two pairs each, the 128-bit halves regrouped and unpacked.
        #[inline(always)]
        fn from_pairs(pairs: &[f64]) -> (Self, Self) {
            let pairs = &pairs[..8];
            unsafe {
                let (a, b) = (_mm256_loadu_pd(pairs.as_ptr()), _mm256_loadu_pd(pairs.as_ptr().add(4)));
                // [x0 y0 x2 y2], [x1 y1 x3 y3]
                let (lo, hi) = (_mm256_permute2f128_pd::<0x20>(a, b), _mm256_permute2f128_pd::<0x31>(a, b));
                (F64x4Avx(_mm256_unpacklo_pd(lo, hi)), F64x4Avx(_mm256_unpackhi_pd(lo, hi)))
            }
        }
        #[inline(always)]
        fn to_pairs(a: Self, b: Self, pairs: &mut [f64]) {
            let pairs = &mut pairs[..8];
            unsafe {
                // [a0 b0 a2 b2], [a1 b1 a3 b3]
                let (lo, hi) = (_mm256_unpacklo_pd(a.0, b.0), _mm256_unpackhi_pd(a.0, b.0));
                _mm256_storeu_pd(pairs.as_mut_ptr(), _mm256_permute2f128_pd::<0x20>(lo, hi));
                _mm256_storeu_pd(pairs.as_mut_ptr().add(4), _mm256_permute2f128_pd::<0x31>(lo, hi));
            }
        }
        // Ordered, non-signalling compares: false where either side is NaN, as Rust's.
        #[inline(always)]
        fn eq(self, o: Self) -> Self {
            F64x4Avx(unsafe { _mm256_cmp_pd::<_CMP_EQ_OQ>(self.0, o.0) })
        }
        #[inline(always)]
        fn ge(self, o: Self) -> Self {
            F64x4Avx(unsafe { _mm256_cmp_pd::<_CMP_GE_OQ>(self.0, o.0) })
        }
        #[inline(always)]
        fn gt(self, o: Self) -> Self {
            F64x4Avx(unsafe { _mm256_cmp_pd::<_CMP_GT_OQ>(self.0, o.0) })
        }
        #[inline(always)]
        fn lt(self, o: Self) -> Self {
            F64x4Avx(unsafe { _mm256_cmp_pd::<_CMP_LT_OQ>(self.0, o.0) })
        }
        #[inline(always)]
        fn or(a: Self, b: Self) -> Self {
            F64x4Avx(unsafe { _mm256_or_pd(a.0, b.0) })
        }
        #[inline(always)]
        fn not(m: Self) -> Self {
            F64x4Avx(unsafe { _mm256_xor_pd(m.0, _mm256_castsi256_pd(_mm256_set1_epi64x(-1))) })
        }
        #[inline(always)]
        fn select(m: Self, t: Self, f: Self) -> Self {
            F64x4Avx(unsafe { _mm256_blendv_pd(f.0, t.0, m.0) })
        }
        #[inline(always)]
        fn any(m: Self) -> bool {
            unsafe { _mm256_movemask_pd(m.0) != 0 }
        }
    }
}

/// Eight f64 lanes in one AVX-512 register, for code compiled for AVX-512 at run time
/// (`twin::measures_two_qubit::measure_group_avx512`). It may only be made where the CPU has
/// been found to have AVX-512 F, VL and DQ (`twin::Isa::usable`): `Real::X8Avx512` is used
/// nowhere else. Masks are the mask registers' bits, one a lane.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug)]
pub struct F64x8Avx512(std::arch::x86_64::__m512d);

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{F64x8Avx512, Lanes};
    use std::arch::x86_64::*;

    // SAFETY (every unsafe block here and in the two macros' expansions): an F64x8Avx512 is
    // made only where the CPU has been found to have AVX-512 F, VL and DQ (see the type's doc;
    // this module is private to the crate).
    intrinsic_ops!(F64x8Avx512: Add add _mm512_add_pd, Sub sub _mm512_sub_pd, Mul mul _mm512_mul_pd, Div div _mm512_div_pd);

    impl Lanes for F64x8Avx512 {
        type Scalar = f64;
        type Mask = __mmask8;
        const N: usize = 8;
        intrinsic_lane_methods!(F64x8Avx512, 8, _mm512_set1_pd, _mm512_loadu_pd, _mm512_storeu_pd, _mm512_sqrt_pd, _mm512_andnot_pd, _mm512_xor_pd);
        // Ordered, non-signalling compares: false where either side is NaN, as Rust's.
        #[inline(always)]
        fn eq(self, o: Self) -> __mmask8 {
            unsafe { _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(self.0, o.0) }
        }
        #[inline(always)]
        fn ge(self, o: Self) -> __mmask8 {
            unsafe { _mm512_cmp_pd_mask::<_CMP_GE_OQ>(self.0, o.0) }
        }
        #[inline(always)]
        fn gt(self, o: Self) -> __mmask8 {
            unsafe { _mm512_cmp_pd_mask::<_CMP_GT_OQ>(self.0, o.0) }
        }
        #[inline(always)]
        fn lt(self, o: Self) -> __mmask8 {
            unsafe { _mm512_cmp_pd_mask::<_CMP_LT_OQ>(self.0, o.0) }
        }
        #[inline(always)]
        fn or(a: __mmask8, b: __mmask8) -> __mmask8 {
            a | b
        }
        #[inline(always)]
        fn not(m: __mmask8) -> __mmask8 {
            !m
        }
        /// (the blend takes its second operand where the mask's bit is set)
        #[inline(always)]
        fn select(m: __mmask8, t: Self, f: Self) -> Self {
            F64x8Avx512(unsafe { _mm512_mask_blend_pd(m, f.0, t.0) })
        }
        #[inline(always)]
        fn any(m: __mmask8) -> bool {
            m != 0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lane by lane against Rust's scalar operations, bit for bit, on every pair of `vals`,
    /// each pair in every lane position; `bits` takes every NaN as one value (Rust does not
    /// fix a NaN's sign or payload). The scalar sides spell out the solvers' own expressions.
    macro_rules! same_bits_as_scalar {
        ($v:ty, $s:ty, $vals:expr, $bits:expr) => {{
            let vals: &[$s] = &$vals;
            let bits = $bits;
            // Through black_box: inlined here, LLVM has been seen to take sqrt of a negative
            // constant for a non-NaN in `bits`'s is_nan.
            let same = |got: $s, want: $s, what: &str| {
                let (got, want) = std::hint::black_box((got, want));
                assert_eq!(bits(got), bits(want), "{what}: {got:?} against {want:?}")
            };
            for (i, &x) in vals.iter().enumerate() {
                for (j, &y) in vals.iter().enumerate() {
                    // The pair in lane (i + j) % N, other values in the other lanes.
                    let l = (i + j) % <$v as Lanes>::N;
                    let va = <$v>::from_fn(|k| if k == l { x } else { vals[(i + k) % vals.len()] });
                    let vb = <$v>::from_fn(|k| if k == l { y } else { vals[(j + 3 * k) % vals.len()] });
                    same((va + vb).lane(l), x + y, "+");
                    same((va - vb).lane(l), x - y, "-");
                    same((va * vb).lane(l), x * y, "*");
                    same((va / vb).lane(l), x / y, "/");
                    same(Lanes::sqrt(va).lane(l), x.sqrt(), "sqrt");
                    same(Lanes::abs(va).lane(l), x.abs(), "abs");
                    same(va.flip().lane(l), -x, "flip");
                    let pick = |m| <$v as Lanes>::select(m, va, vb).lane(l);
                    same(pick(Lanes::eq(va, vb)), if x == y { x } else { y }, "==");
                    same(pick(Lanes::ge(va, vb)), if x >= y { x } else { y }, ">=");
                    same(pick(Lanes::gt(va, vb)), if x > y { x } else { y }, ">");
                    same(pick(Lanes::lt(va, vb)), if x < y { x } else { y }, "<");
                    same(pick(<$v as Lanes>::not(Lanes::lt(va, vb))), if !(x < y) { x } else { y }, "!<");
                    same(pick(<$v as Lanes>::or(Lanes::lt(va, vb), Lanes::eq(va, vb))), if x < y || x == y { x } else { y }, "< or ==");
                    // any: true exactly when some lane holds.
                    let only = <$v>::from_fn(|k| if k == l { x } else { <$s>::NAN });
                    assert_eq!(<$v as Lanes>::any(Lanes::eq(only, <$v as Lanes>::splat(y))), x == y, "any");
                }
            }
        }};
    }

    #[test]
    #[allow(clippy::neg_cmp_op_on_partial_ord, clippy::double_comparisons)]
    fn vector_lanes_give_the_scalar_bits() {
        let v64 = [
            0.0,
            -0.0,
            1.0,
            -2.5,
            1e-310,
            -1e-310,
            f64::MIN_POSITIVE,
            f64::MAX,
            -f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -f64::NAN,
            3.0,
            1e300,
            -7e-5,
        ];
        let b64 = |x: f64| if x.is_nan() { u64::MAX } else { x.to_bits() };
        same_bits_as_scalar!(wide::f64x4, f64, v64, b64);
        #[cfg(target_arch = "x86_64")]
        if crate::twin::has_avx2() {
            same_bits_as_scalar!(F64x4Avx, f64, v64, b64);
        }
        #[cfg(target_arch = "x86_64")]
        if crate::twin::Isa::best() == crate::twin::Isa::Avx512 {
            same_bits_as_scalar!(F64x8Avx512, f64, v64, b64);
        }
        let v32 = [
            0.0,
            -0.0,
            1.0,
            -2.5,
            1e-40,
            -1e-40,
            f32::MIN_POSITIVE,
            f32::MAX,
            -f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            3.0,
            1e30,
            -7e-5,
        ];
        let b32 = |x: f32| if x.is_nan() { u32::MAX } else { x.to_bits() };
        same_bits_as_scalar!(wide::f32x4, f32, v32, b32);
        same_bits_as_scalar!(wide::f32x8, f32, v32, b32);
    }
}
