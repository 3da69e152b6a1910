//! CPU twins of the WGSL kernels: each mirrors its shader loop for loop (same propagator, same
//! stage order, same closed-form measures, same peak logic), generic over f32/f64. A twin in
//! f32 tells kernel bugs from rounding; in f64 it is also the fast CPU engine.

/// `$dispatch(isa, args..)` calls `$inner(args..)` compiled for the widest of `isa` and this
/// CPU's vector instructions (`Isa::usable`): through `$avx512` (AVX-512: twice the vector
/// registers, each twice as wide) or `$avx2`, else as it is. Rust never fuses or reorders
/// floating-point operations, so every build gives the same bits, only with wider vectors.
macro_rules! simd_dispatch {
    ($vis:vis fn $dispatch:ident, $avx2:ident, $avx512:ident => $inner:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        #[allow(clippy::too_many_arguments)]
        fn $avx2<R: $crate::twin::Real>($($arg: $ty),*) $(-> $ret)? {
            $inner($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,avx512f,avx512vl,avx512dq")]
        #[allow(clippy::too_many_arguments)]
        fn $avx512<R: $crate::twin::Real>($($arg: $ty),*) $(-> $ret)? {
            $inner($($arg),*)
        }

        #[allow(clippy::too_many_arguments)]
        $vis fn $dispatch<R: $crate::twin::Real>(isa: $crate::twin::Isa, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            match isa.usable() {
                // SAFETY: `usable` found these instructions on this CPU.
                $crate::twin::Isa::Avx512 => return unsafe { $avx512($($arg),*) },
                $crate::twin::Isa::Avx2 => return unsafe { $avx2($($arg),*) },
                $crate::twin::Isa::Portable => {}
            }
            let _ = isa;
            $inner($($arg),*)
        }
    };
}
pub(crate) use simd_dispatch;

/// The vector instructions a twin's hot loop is compiled for (`simd_dispatch!`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Isa {
    Portable,
    Avx2,
    /// AVX-512 F, VL and DQ (with AVX2, FMA and F16C).
    Avx512,
}

impl Isa {
    /// The widest level this CPU has.
    pub(crate) fn best() -> Isa {
        if has_avx512() {
            Isa::Avx512
        } else if has_avx2() {
            Isa::Avx2
        } else {
            Isa::Portable
        }
    }

    /// This level, or the widest below it that this CPU has.
    pub(crate) fn usable(self) -> Isa {
        self.min(Isa::best())
    }

    /// Every level this CPU has, narrowest first (the tests compare their bits).
    #[cfg(test)]
    pub(crate) fn available() -> Vec<Isa> {
        [Isa::Portable, Isa::Avx2, Isa::Avx512].into_iter().filter(|&isa| isa <= Isa::best()).collect()
    }
}

/// Whether this CPU has AVX2 (for `simd_dispatch!` and the measures' AVX2 lanes).
pub(crate) fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU has the AVX-512 subsets of `Isa::Avx512` (and FMA and F16C, which the
/// compiler takes AVX-512 F to imply).
fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        has_avx2()
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512dq")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A run's stop flag as a twin sees it: asked as a member (or group) begins and between runs of
/// `STOP_EVERY` steps of it (counted across its pieces), so that a cancelled run stops within
/// one run of steps even inside one long member; the kernels' equivalent is the host's check
/// between dispatches. It changes no arithmetic: the steps are the same, in the same order.
pub type Stop<'a> = &'a (dyn Fn() -> bool + Sync);

/// Steps between two looks at the stop flag: a few ms of an undriven two-qubit member (pair)
/// on this generation of CPU, some tens of ms of a driven lane group; looking costs well under
/// a microsecond.
pub const STOP_EVERY: u32 = 1 << 16;

/// One member's (or group's) steps counted towards its next look at the stop flag.
pub struct StopCheck<'a> {
    stop: Stop<'a>,
    since: u32,
}

impl<'a> StopCheck<'a> {
    /// None where the flag is already set as the member begins (a member not begun takes no
    /// step after the stop).
    pub fn new(stop: Stop<'a>) -> Option<Self> {
        (!stop()).then_some(StopCheck { stop, since: 0 })
    }

    /// Steps left before the next look.
    #[inline(always)]
    pub fn room(&self) -> u32 {
        STOP_EVERY - self.since
    }

    /// Count `k` steps taken (at most `room`); false where that reached the next look and
    /// the flag was set.
    #[inline(always)]
    pub fn done(&mut self, k: u32) -> bool {
        self.since += k;
        if self.since < STOP_EVERY {
            return true;
        }
        self.since = 0;
        !(self.stop)()
    }
}

/// `for $j in 0..$n $body`, in runs that end at the `StopCheck`'s looks: true where every step
/// was taken, false where the flag stopped it. The body stays the loop's own (no closure):
/// a closure over the state cost the two-qubit twin about 30% of its speed.
macro_rules! stoppable_steps {
    ($check:expr, $n:expr, $j:pat => $body:block) => {{
        let n: u32 = $n;
        let mut from = 0u32;
        let mut go_on = true;
        while go_on && from < n {
            // (saturating: a piece may hold up to u32::MAX steps)
            let to = n.min(from.saturating_add($check.room()));
            for $j in from..to $body
            go_on = $check.done(to - from);
            from = to;
        }
        go_on
    }};
}

/// A stop flag that is never set.
pub fn never_stop() -> bool {
    false
}

pub mod drive;
pub mod measures_two_qubit;
pub mod rk4_cavity;
pub mod rk4_dicke;
pub mod rk4_two_qubit;
pub(crate) mod simd;

use std::ops::{Add, Div, Mul, Neg, Sub};

/// The scalar a kernel runs in (`real` in WGSL): f32 or f64.
pub trait Real:
    Copy
    + Send
    + Sync
    + 'static
    + PartialOrd
    + std::fmt::Debug
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;
    /// One value of Self as lanes (the scalar itself), and four side by side (SIMD), for
    /// code written once over `simd::Lanes`.
    type X1: simd::Lanes<Scalar = Self>;
    type X4: simd::Lanes<Scalar = Self>;
    /// Four lanes for code compiled for AVX2 and run where the CPU has it (one AVX register
    /// of f64; `X4` elsewhere and for f32).
    type X4Avx2: simd::Lanes<Scalar = Self>;
    /// Eight lanes for code compiled for AVX-512 and run where the CPU has it (one AVX-512
    /// register of f64; `wide`'s eight portable lanes for f32). x86_64 only.
    #[cfg(target_arch = "x86_64")]
    type X8Avx512: simd::Lanes<Scalar = Self>;
    /// Rounds to nearest, as WGSL's conversion of an abstract float literal does.
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn sqrt(self) -> Self;
    fn abs(self) -> Self;
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    type X1 = f32;
    type X4 = wide::f32x4;
    type X4Avx2 = wide::f32x4;
    #[cfg(target_arch = "x86_64")]
    type X8Avx512 = wide::f32x8;
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f32::abs(self)
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    type X1 = f64;
    type X4 = wide::f64x4;
    #[cfg(target_arch = "x86_64")]
    type X4Avx2 = simd::F64x4Avx;
    #[cfg(not(target_arch = "x86_64"))]
    type X4Avx2 = wide::f64x4;
    #[cfg(target_arch = "x86_64")]
    type X8Avx512 = simd::F64x8Avx512;
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f64::abs(self)
    }
}

// The 16-vector operations of the two-qubit twin, shared by its undriven and driven steps
// (`rk4_two_qubit.rs`, `drive.rs`), in the shader's order of operations.

/// y = M x with M given transposed (`mt[16 k + i] = M[i][k]`), in the shader's order for
/// every row: four vec4 dots (((p0 + p1) + p2) + p3) summed as ((d0 + d1) + d2) + d3. The loops
/// run over rows innermost, so the compiler vectorises across rows without changing any row's
/// order of operations.
#[inline(always)]
pub(crate) fn matvec<R: Real>(mt: &[R; 256], x: &[R; 16]) -> [R; 16] {
    let mut y = [R::ZERO; 16];
    for blk in 0..4 {
        let mut d = [R::ZERO; 16];
        let k0 = 4 * blk;
        let (c0, c1, c2, c3) = (&mt[16 * k0..16 * k0 + 16], &mt[16 * k0 + 16..16 * k0 + 32], &mt[16 * k0 + 32..16 * k0 + 48], &mt[16 * k0 + 48..16 * k0 + 64]);
        let (x0, x1, x2, x3) = (x[k0], x[k0 + 1], x[k0 + 2], x[k0 + 3]);
        for i in 0..16 {
            d[i] = c0[i] * x0 + c1[i] * x1 + c2[i] * x2 + c3[i] * x3;
        }
        if blk == 0 {
            y = d;
        } else {
            for i in 0..16 {
                y[i] = y[i] + d[i];
            }
        }
    }
    y
}

/// The increment of one classical RK4 step of length h, h/6 (k1 + 2 (k2 + k3) + k4), with
/// k1 = f(0, x), k2 = f(1, x + h/2 k1), k3 = f(2, x + h/2 k2), k4 = f(3, x + h k3): `f` is the
/// right-hand side at stage s (stages 1 and 2 are both at t + h/2). The shader's steps end in
/// the same combination (`rk4_combine`).
#[inline(always)]
pub(crate) fn rk4_stages<R: Real>(x: &[R; 16], h: R, f: impl Fn(usize, &[R; 16]) -> [R; 16]) -> [R; 16] {
    let hh = h * R::from_f64(0.5);
    let h6 = h / R::from_f64(6.0);
    let k1 = f(0, x);
    let k2 = f(1, &axpy(hh, &k1, x));
    let k3 = f(2, &axpy(hh, &k2, x));
    let k4 = f(3, &axpy(h, &k3, x));
    let two = R::from_f64(2.0);
    std::array::from_fn(|i| h6 * (k1[i] + two * (k2[i] + k3[i]) + k4[i]))
}

/// x + s y
#[inline(always)]
pub(crate) fn axpy<R: Real>(s: R, y: &[R; 16], x: &[R; 16]) -> [R; 16] {
    std::array::from_fn(|i| x[i] + s * y[i])
}

/// A row-major 16x16 generator for the twins' tests: about `keep_per_mille` / 1000 of its
/// entries non-zero (so whole zero tiles and single-entry tiles), row `zero_row` zero, entries
/// of mixed sign up to `scale` in size, from a fixed pseudo-random sequence.
#[cfg(test)]
pub(crate) fn sparse_test_generator(seed: u64, keep_per_mille: u64, zero_row: usize, scale: f64) -> [f64; 256] {
    let mut s = seed;
    std::array::from_fn(|i| {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let r = s >> 33;
        if i / 16 == zero_row || r % 1000 >= keep_per_mille {
            0.0
        } else {
            ((r % 2001) as f64 - 1000.0) * 1e-3 * scale
        }
    })
}
