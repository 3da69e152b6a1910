//! CPU twin of `shaders/measures_two_qubit.wgsl`, loop for loop: the eigen-solve measures of
//! a two-qubit sample state from its 16 Pauli coefficients, generic over f32/f64. In f64 it is
//! the CPU engine's hot loop (nalgebra stays the oracle in `measures` and `reference`).
//!
//! Solvers (no transcendentals: + - * /, sqrt, abs, as the kernel):
//! - `jacobi_eigh`: cyclic Jacobi for a 4x4 complex Hermitian A. For the pair (p, q), with
//!   a_pq = r e^{i phi}, J = diag(1, e^{-i phi}) R(theta) on (p, q) makes (J^+ A J)_pq = 0:
//!   theta = (a_qq - a_pp) / (2 r), t = sgn(theta) / (|theta| + sqrt(theta^2 + 1)),
//!   c = 1 / sqrt(t^2 + 1), s = t c; a_pp -= t r, a_qq += t r, and for k != p, q:
//!   a_kp <- c a_kp - s e^{-i phi} a_kq, a_kq <- s a_kp + c e^{-i phi} a_kq; V <- V J.
//!   |a_pq| and its phase come from `modulus_phase` (scaled by the bound b below, so that the
//!   phase has modulus 1 in f32 too). A pair is skipped when b = |Re a_pq| + |Im a_pq|
//!   (between r and sqrt(2) r, and free of the divisions of `modulus_phase`, which only a
//!   rotation needs) is 0, or at most about 2 ulp of |a_pp| + |a_qq| and below it
//!   (`rotates`); the sweeps stop after one that rotated nothing (at most MAX_SWEEPS).
//!   Absolute accuracy ~ eps ||A||.
//! - `singular_values`: one-sided (Hestenes) Jacobi on the columns of a complex 4x4 M, the
//!   same rotation applied to the Gram matrix M^+ M (alpha = |m_p|^2, beta = |m_q|^2,
//!   gamma = m_p^+ m_q), never forming it, skipping a pair whose |Re gamma| + |Im gamma| is
//!   0, or at most about 2 ulp of sqrt(alpha beta) and below it; the singular values are the
//!   final column norms.
//!   Their absolute error is ~ eps ||M||, not sqrt(eps ||M||^2) as from eigenvalues of M^+ M.
//!
//! Measures (docs/physics.md):
//! - spectrum lam of rho: capacity_total = sum_i eps_i (lam_i - lam_{3-i}) (eps of H, both
//!   ascending), taken as (eps_3 - eps_0)(lam_3 - lam_0) + (eps_2 - eps_1)(lam_2 - lam_1) with
//!   the gaps from the host in f64: an offset of H, in every eps_i and cancelling between the
//!   terms, cost f32 3e-4 at 3000 on a spread of 4 (and 1e-2 at 1e5); residual_capacity = capacity_total - 2|h_B||r_b| - 2|h_C||r_c|,
//!   min_eigenvalue = lam_0;
//! - concurrence: rho = X X^+ with X = V diag(sqrt(max(lam, 0))); the Wootters numbers r_i are
//!   the singular values of the complex symmetric M = X^T S X, S = sy (x) sy (the same route
//!   as `measures::entanglement`). They come out directly, with absolute error ~ eps, where
//!   the eigenvalues of rho rho~ (or of sqrt(rho) rho~ sqrt(rho)) are r_i^2 and their square
//!   roots carry sqrt(eps) near a pure state (3e-4 in f32): this form holds in f32.
//! - LOO steering: C_ij = (x_ij - x_i0 x_0j) / 2 (real; the Pauli form of
//!   Tr[(G_i (x) G_j)(rho - rho_c (x) rho_b)]), ||C||_tr from `singular_values_real`.
//!
//! Lanes: the solvers are written once over `simd::Lanes`, a value per lane. The CPU engine
//! measures four samples side by side (`Real::X4`, SIMD vectors; `Real::X4Avx2` with AVX2),
//! or eight with AVX-512 (`Real::X8Avx512`); the one-sample functions
//! here run them with one lane (`Real::X1`, the scalar). Each lane does the kernel's
//! operations in the kernel's order (neither fused nor reordered), so a sample's values are
//! the same bits in any lane as alone. Where the kernel skips a rotation, a lane computes it
//! and keeps its old entries (`Lanes::select`); the sweeps go on while any lane rotated. A
//! sweep that rotated nothing in a lane left it unchanged, so its later sweeps rotate nothing
//! either, as the kernel's break has it.

use super::simd::Lanes;
use super::{Isa, Real};
use crate::job::measures_two_qubit::{eigen_code, eigen_flags, eigen_point, EigenJob, BIG_THETA, G_CONCURRENCE, G_LOO, G_SPECTRUM, MAX_SWEEPS, N_EIGEN_CODES};
use crate::job::TwoQubitPoint;
use rayon::prelude::*;

/// A complex 4x4 matrix, row-major: (re, im) of entry (i, j) at 4 i + j.
#[derive(Clone, Copy, Debug)]
pub struct C4<R> {
    pub re: [R; 16],
    pub im: [R; 16],
}

impl<R: Real> C4<R> {
    pub fn zero() -> Self {
        C4 { re: [R::ZERO; 16], im: [R::ZERO; 16] }
    }
}

/// Entry (r, s) of c0 I + c1 sx + c2 sy + c3 sz with complex c (project convention:
/// sy = [[0, i], [-i, 0]], sz = diag(-1, 1)).
#[inline(always)]
fn p2<L: Lanes>(c: &[(L, L); 4], r: usize, s: usize) -> (L, L) {
    let (c0, c1, c2, c3) = (c[0], c[1], c[2], c[3]);
    if r == 0 && s == 0 {
        (c0.0 - c3.0, c0.1 - c3.1)
    } else if r == 0 {
        (c1.0 - c2.1, c1.1 + c2.0) // c1 + i c2
    } else if s == 0 {
        (c1.0 + c2.1, c1.1 - c2.0) // c1 - i c2
    } else {
        (c0.0 + c3.0, c0.1 + c3.1)
    }
}

/// rho = (1/4) sum_ab x[4a + b] sigma_a (x) sigma_b, basis index 2 charger + battery:
/// battery blocks B_a = sum_b x_ab sigma_b, then rho = (1/4) sum_a sigma_a (x) B_a.
pub fn rho_from_pauli<R: Real>(x: &[R; 16]) -> C4<R> {
    lane_of(&rho_lanes::<One<R>>(&x.map(One::<R>::splat)), 0)
}

#[inline(always)]
fn rho_lanes<L: Lanes>(x: &[L; 16]) -> C4<L> {
    let (quarter, nil) = (L::from_f64(0.25), L::from_f64(0.0));
    let mut m = c4_diagonal(nil);
    for r1 in 0..2 {
        for s1 in 0..2 {
            for r2 in 0..2 {
                for s2 in 0..2 {
                    let mut b = [(nil, nil); 4];
                    for (a, ba) in b.iter_mut().enumerate() {
                        let c = [(x[4 * a], nil), (x[4 * a + 1], nil), (x[4 * a + 2], nil), (x[4 * a + 3], nil)];
                        *ba = p2(&c, r2, s2);
                    }
                    let z = p2(&b, r1, s1);
                    let k = 4 * (2 * r1 + r2) + 2 * s1 + s2;
                    m.re[k] = z.0 * quarter;
                    m.im[k] = z.1 * quarter;
                }
            }
        }
    }
    m
}

/// d I, with every other entry zero.
#[inline(always)]
fn c4_diagonal<L: Lanes>(d: L) -> C4<L> {
    let nil = L::from_f64(0.0);
    C4 { re: std::array::from_fn(|k| if k % 5 == 0 { d } else { nil }), im: [nil; 16] }
}

/// The pairs (p, q) of a cyclic sweep, in order, and the other two indices, ascending.
const PAIR_P: [usize; 6] = [0, 0, 0, 1, 1, 2];
const PAIR_Q: [usize; 6] = [1, 2, 3, 2, 3, 3];
const PAIR_OTHERS: [[usize; 2]; 6] = [[2, 3], [1, 3], [1, 2], [0, 3], [0, 2], [0, 1]];

/// One cyclic sweep: `$step(pair)` for the six pairs in order, written out so that each
/// call's indices are constants (a loop over the pairs kept them in registers for addresses,
/// and its stores as masked stores); whether any call rotated.
macro_rules! each_pair {
    (|$pair:ident| $step:expr) => {
        each_pair!(@ $pair, $step, 0 1 2 3 4 5)
    };
    (@ $pair:ident, $step:expr, $($k:literal)*) => {{
        let mut rotated = false;
        $(
            let $pair = $k;
            rotated |= $step;
        )*
        rotated
    }};
}

/// Lanes of the one-sample functions below: the scalar R itself.
type One<R> = <R as Real>::X1;

/// `C4<L>` from one C4<R> in every lane, and lane l back out.
fn spread<L: Lanes>(m: &C4<L::Scalar>) -> C4<L> {
    C4 { re: m.re.map(L::splat), im: m.im.map(L::splat) }
}
fn lane_of<L: Lanes>(m: &C4<L>, l: usize) -> C4<L::Scalar> {
    C4 { re: m.re.map(|x| x.lane(l)), im: m.im.map(|x| x.lane(l)) }
}

/// (|z|, z / |z|) of z = (re, im), scaled by its bound m = |re| + |im| (the one `rotates`
/// tested) first: squaring tiny parts underflows in f32, and a phase of modulus 1.02 would
/// stretch a column 2 % per rotation. Only a rotating lane keeps what this returns, and its m
/// is never 0 (`rotates`); the others' values (NaN for m = 0) are selected away.
#[inline(always)]
fn modulus_phase<L: Lanes>(re: L, im: L, m: L) -> (L, L, L) {
    let (a, b) = (re / m, im / m);
    let n = (a * a + b * b).sqrt();
    let inv_n = L::from_f64(1.0) / n;
    (m * n, a * inv_n, b * inv_n)
}

/// The Jacobi rotation (t, c, s) that zeroes an off-diagonal entry of modulus r between
/// diagonal entries app and aqq: t = sgn(theta) / (|theta| + sqrt(theta^2 + 1)), or
/// 1 / (2 theta) far out, as one quotient of the chosen operands.
#[inline(always)]
fn rotation<L: Lanes>(app: L, aqq: L, r: L) -> (L, L, L) {
    let one = L::from_f64(1.0);
    let theta = (aqq - app) / (L::from_f64(2.0) * r);
    let far = theta.abs().gt(L::from_f64(BIG_THETA));
    let sgn = L::select(theta.ge(L::from_f64(0.0)), one, L::from_f64(-1.0));
    let near = theta.abs() + (theta * theta + one).sqrt();
    let t = L::select(far, L::from_f64(0.5), sgn) / L::select(far, theta, near);
    let c = one / (t * t + one).sqrt();
    (t, c, t * c)
}

/// Whether a lane rotates: the entry's bound b (|Re| + |Im|) is not 0 (so `modulus_phase`
/// never divides by 0 in a lane that keeps its results) and not negligible beside `scale`,
/// that is scale + b / 4 does not round to scale (b above about 2 ulp of scale) or b is not
/// below scale. Half an ulp (scale + b) sits at the noise of an entry computed from
/// rounded columns, which then rotates sweep after sweep (the LOO matrix's near-zero first
/// column above all). NaN rotates, and so does an infinite b beside an infinite scale (inf +
/// inf / 4 rounds to inf), as when |z| from `modulus_phase` (NaN there) was the test.
#[inline(always)]
fn rotates<L: Lanes>(bound: L, scale: L) -> L::Mask {
    let absorbed = (scale + bound * L::from_f64(0.25)).eq(scale);
    // absorbed and below scale, without an `and` among the masks' operations
    let negligible = L::not(L::or(L::not(absorbed), L::not(bound.lt(scale))));
    L::not(L::or(bound.eq(L::from_f64(0.0)), negligible))
}

/// (c a - s conj(e) b, s a + c conj(e) b) for complex a, b and the phase e = (er, ei).
#[inline(always)]
fn rotate_pair<L: Lanes>(a: (L, L), b: (L, L), er: L, ei: L, c: L, s: L) -> ((L, L), (L, L)) {
    let w = (er * b.0 + ei * b.1, er * b.1 - ei * b.0);
    ((c * a.0 - s * w.0, c * a.1 - s * w.1), (s * a.0 + c * w.0, s * a.1 + c * w.1))
}

/// Rotate entries (k, p) and (k, q) of `m` for the given rows k by the phase (er, ei) and
/// (c, s), in the lanes of `go` (the others keep their entries).
#[inline(always)]
fn rotate_columns<L: Lanes>(m: &mut C4<L>, rows: &[usize], (p, q): (usize, usize), go: L::Mask, (er, ei, c, s): (L, L, L, L)) {
    for &k in rows {
        let (kp, kq) = (4 * k + p, 4 * k + q);
        let (nkp, nkq) = rotate_pair((m.re[kp], m.im[kp]), (m.re[kq], m.im[kq]), er, ei, c, s);
        m.re[kp] = L::select(go, nkp.0, m.re[kp]);
        m.im[kp] = L::select(go, nkp.1, m.im[kp]);
        m.re[kq] = L::select(go, nkq.0, m.re[kq]);
        m.im[kq] = L::select(go, nkq.1, m.im[kq]);
    }
}

/// Eigenvalues (unsorted, the diagonal at the end) of the Hermitian `a`, and with `vectors`
/// the eigenvectors as the columns of the returned V (identity otherwise). See the module doc.
pub fn jacobi_eigh<R: Real>(a0: &C4<R>, vectors: bool) -> ([R; 4], C4<R>) {
    let (lam, v) = jacobi_eigh_lanes::<One<R>>(&spread(a0), vectors);
    (lam.map(|x| x.lane(0)), lane_of(&v, 0))
}

#[inline(always)]
fn jacobi_eigh_lanes<L: Lanes>(a0: &C4<L>, vectors: bool) -> ([L; 4], C4<L>) {
    let mut a = *a0;
    let mut v = c4_diagonal(L::from_f64(1.0));
    for _sweep in 0..MAX_SWEEPS {
        if !each_pair!(|pair| jacobi_eigh_pair(&mut a, &mut v, vectors, pair)) {
            break;
        }
    }
    ([a.re[0], a.re[5], a.re[10], a.re[15]], v)
}

/// One rotation of `jacobi_eigh_lanes`, for the pair `pair`; whether any lane rotated.
#[inline(always)]
fn jacobi_eigh_pair<L: Lanes>(a: &mut C4<L>, v: &mut C4<L>, vectors: bool, pair: usize) -> bool {
    let (p, q) = (PAIR_P[pair], PAIR_Q[pair]);
    let (pq, qp, pp, qq) = (4 * p + q, 4 * q + p, 5 * p, 5 * q);
    let (app, aqq) = (a.re[pp], a.re[qq]);
    // |re| + |im| (not the max) so that a NaN part propagates
    let bound = a.re[pq].abs() + a.im[pq].abs();
    let go = rotates(bound, app.abs() + aqq.abs());
    if !L::any(go) {
        return false;
    }
    let (r, er, ei) = modulus_phase(a.re[pq], a.im[pq], bound);
    let (t, c, s) = rotation(app, aqq, r);
    let others = PAIR_OTHERS[pair];
    rotate_columns(a, &others, (p, q), go, (er, ei, c, s));
    // The rows mirror the columns (Hermitian).
    for k in others {
        let (kp, kq, pk, qk) = (4 * k + p, 4 * k + q, 4 * p + k, 4 * q + k);
        a.re[pk] = L::select(go, a.re[kp], a.re[pk]);
        a.im[pk] = L::select(go, a.im[kp].flip(), a.im[pk]);
        a.re[qk] = L::select(go, a.re[kq], a.re[qk]);
        a.im[qk] = L::select(go, a.im[kq].flip(), a.im[qk]);
    }
    a.re[pp] = L::select(go, app - t * r, app);
    a.re[qq] = L::select(go, aqq + t * r, aqq);
    let nil = L::from_f64(0.0);
    for k in [pq, qp] {
        a.re[k] = L::select(go, nil, a.re[k]);
        a.im[k] = L::select(go, nil, a.im[k]);
    }
    if vectors {
        rotate_columns(v, &[0, 1, 2, 3], (p, q), go, (er, ei, c, s));
    }
    true
}

/// Singular values (unsorted) of a complex 4x4 M by one-sided Jacobi (see the module doc).
pub fn singular_values<R: Real>(m0: &C4<R>) -> [R; 4] {
    singular_values_lanes::<One<R>>(&spread(m0)).map(|x| x.lane(0))
}

#[inline(always)]
fn singular_values_lanes<L: Lanes>(m0: &C4<L>) -> [L; 4] {
    let mut m = *m0;
    let nil = L::from_f64(0.0);
    for _sweep in 0..MAX_SWEEPS {
        if !each_pair!(|pair| singular_values_pair(&mut m, pair)) {
            break;
        }
    }
    // A loop, not `array::from_fn`: a closure is compiled without the AVX2 of
    // `measure_group_avx2`, and each lane operation in it would be a call.
    let mut norms = [nil; 4];
    for (j, norm) in norms.iter_mut().enumerate() {
        let mut n2 = nil;
        for k in 0..4 {
            n2 = n2 + m.re[4 * k + j] * m.re[4 * k + j] + m.im[4 * k + j] * m.im[4 * k + j];
        }
        *norm = n2.sqrt();
    }
    norms
}

/// One rotation of `singular_values_lanes`, for the pair `pair`; whether any lane rotated.
#[inline(always)]
fn singular_values_pair<L: Lanes>(m: &mut C4<L>, pair: usize) -> bool {
    let nil = L::from_f64(0.0);
    let (p, q) = (PAIR_P[pair], PAIR_Q[pair]);
    let (mut alpha, mut beta, mut gr, mut gi) = (nil, nil, nil, nil);
    for k in 0..4 {
        let (kp, kq) = (4 * k + p, 4 * k + q);
        let (pr, pi, qr, qi) = (m.re[kp], m.im[kp], m.re[kq], m.im[kq]);
        alpha = alpha + pr * pr + pi * pi;
        beta = beta + qr * qr + qi * qi;
        // conj(m_kp) m_kq
        gr = gr + pr * qr + pi * qi;
        gi = gi + pr * qi - pi * qr;
    }
    let bound = gr.abs() + gi.abs();
    let go = rotates(bound, (alpha * beta).sqrt());
    if !L::any(go) {
        return false;
    }
    let (g, er, ei) = modulus_phase(gr, gi, bound);
    let (_, c, s) = rotation(alpha, beta, g);
    rotate_columns(m, &[0, 1, 2, 3], (p, q), go, (er, ei, c, s));
    true
}

/// `modulus_phase` of a real z, m = |z|: the same operations with the imaginary part 0, so
/// the same (|z|, sign z), and NaN for an infinite z (inf / inf), as there.
#[inline(always)]
fn modulus_sign<L: Lanes>(z: L, m: L) -> (L, L) {
    let a = z / m;
    let n = (a * a).sqrt();
    let inv_n = L::from_f64(1.0) / n;
    (m * n, a * inv_n)
}

/// Singular values (unsorted) of a real 4x4 M (row-major): `singular_values` with every
/// imaginary part zero, which its operations keep zero (up to the sign of a zero), so on the
/// CPU the same values, bit for bit, non-finite ones included, at half the work. (A GPU may
/// fuse the two forms' multiply-adds differently: there they agree to rounding.)
pub fn singular_values_real<R: Real>(m0: &[R; 16]) -> [R; 4] {
    singular_values_real_lanes::<One<R>>(&m0.map(One::<R>::splat)).map(|x| x.lane(0))
}

#[inline(always)]
fn singular_values_real_lanes<L: Lanes>(m0: &[L; 16]) -> [L; 4] {
    let mut m = *m0;
    let nil = L::from_f64(0.0);
    for _sweep in 0..MAX_SWEEPS {
        if !each_pair!(|pair| singular_values_real_pair(&mut m, pair)) {
            break;
        }
    }
    // (a loop, not `array::from_fn`: see `singular_values_lanes`)
    let mut norms = [nil; 4];
    for (j, norm) in norms.iter_mut().enumerate() {
        let mut n2 = nil;
        for k in 0..4 {
            n2 = n2 + m[4 * k + j] * m[4 * k + j];
        }
        *norm = n2.sqrt();
    }
    norms
}

/// One rotation of `singular_values_real_lanes`, for the pair `pair`; whether any lane rotated.
#[inline(always)]
fn singular_values_real_pair<L: Lanes>(m: &mut [L; 16], pair: usize) -> bool {
    let nil = L::from_f64(0.0);
    let (p, q) = (PAIR_P[pair], PAIR_Q[pair]);
    let (mut alpha, mut beta, mut gr) = (nil, nil, nil);
    for k in 0..4 {
        let (kp, kq) = (4 * k + p, 4 * k + q);
        alpha = alpha + m[kp] * m[kp];
        beta = beta + m[kq] * m[kq];
        gr = gr + m[kp] * m[kq];
    }
    let bound = gr.abs();
    let go = rotates(bound, (alpha * beta).sqrt());
    if !L::any(go) {
        return false;
    }
    let (g, e) = modulus_sign(gr, bound);
    let (_, c, s) = rotation(alpha, beta, g);
    for k in 0..4 {
        let (kp, kq) = (4 * k + p, 4 * k + q);
        let w = e * m[kq];
        let a = m[kp];
        m[kp] = L::select(go, c * a - s * w, a);
        m[kq] = L::select(go, s * a + c * w, m[kq]);
    }
    true
}

/// Sort 4 values ascending (a fixed exchange network, as the kernel).
pub fn sort4_asc<R: Real>(v: [R; 4]) -> [R; 4] {
    sort4_lanes(v.map(One::<R>::splat)).map(|x| x.lane(0))
}

/// `sort4_asc` in every lane: an exchange moves the two values where a[j + 1] < a[j].
#[inline(always)]
fn sort4_lanes<L: Lanes>(v: [L; 4]) -> [L; 4] {
    let mut a = v;
    for i in 0..3 {
        for j in 0..(3 - i) {
            let swap = a[j + 1].lt(a[j]);
            (a[j], a[j + 1]) = (L::select(swap, a[j + 1], a[j]), L::select(swap, a[j], a[j + 1]));
        }
    }
    a
}

/// max(x, 0) that keeps a NaN (a non-finite state gives NaN measures).
#[inline(always)]
fn floor0<L: Lanes>(x: L) -> L {
    L::select(x.lt(L::from_f64(0.0)), L::from_f64(0.0), x)
}

/// Wootters numbers r_1 >= ... >= r_4 from the eigen-decomposition (lam, V) of rho.
pub fn wootters_r<R: Real>(lam: &[R; 4], v: &C4<R>) -> [R; 4] {
    wootters_r_lanes::<One<R>>(&lam.map(One::<R>::splat), &spread(v)).map(|x| x.lane(0))
}

#[inline(always)]
fn wootters_r_lanes<L: Lanes>(lam: &[L; 4], v: &C4<L>) -> [L; 4] {
    // X = V diag(sqrt(max(lam, 0)))
    let mut x = *v;
    for (j, &lam_j) in lam.iter().enumerate() {
        let w = floor0(lam_j).sqrt();
        for k in 0..4 {
            x.re[4 * k + j] = x.re[4 * k + j] * w;
            x.im[4 * k + j] = x.im[4 * k + j] * w;
        }
    }
    // M = X^T S X, S = antidiag(-1, 1, 1, -1): M_ij = -X_0i X_3j + X_1i X_2j + X_2i X_1j - X_3i X_0j.
    let mul = |a: usize, b: usize| (x.re[a] * x.re[b] - x.im[a] * x.im[b], x.re[a] * x.im[b] + x.im[a] * x.re[b]);
    let mut m = c4_diagonal(L::from_f64(0.0));
    for i in 0..4 {
        for j in 0..4 {
            let (t0, t1, t2, t3) = (mul(i, 12 + j), mul(4 + i, 8 + j), mul(8 + i, 4 + j), mul(12 + i, j));
            m.re[4 * i + j] = t1.0 + t2.0 - t0.0 - t3.0;
            m.im[4 * i + j] = t1.1 + t2.1 - t0.1 - t3.1;
        }
    }
    let r = sort4_lanes(singular_values_lanes(&m));
    [r[3], r[2], r[1], r[0]]
}

/// sqrt(max((2 - a)(1 - b), 0)), the LOO bound.
#[inline(always)]
fn loo_bound<L: Lanes>(a: L, b: L) -> L {
    floor0((L::from_f64(2.0) - a) * (L::from_f64(1.0) - b)).sqrt()
}

/// Every eigen-solve measure of one sample state x (Pauli coefficients, dephased), by code;
/// `pt` the point's constants (`job::measures_two_qubit::eigen_point`). Unflagged ones are 0.
pub fn eigen_measures<R: Real>(x: &[R; 16], pt: &[R; 8], flags: u32) -> [R; N_EIGEN_CODES] {
    eigen_measures_lanes::<One<R>>(&x.map(One::<R>::splat), &pt.map(One::<R>::splat), flags).map(|v| v.lane(0))
}

/// `eigen_measures` in every lane: state x, point constants pt.
#[inline(always)]
fn eigen_measures_lanes<L: Lanes>(x: &[L; 16], pt: &[L; 8], flags: u32) -> [L; N_EIGEN_CODES] {
    let mut out = [L::from_f64(0.0); N_EIGEN_CODES];
    let two = L::from_f64(2.0);
    if flags & (G_SPECTRUM | G_CONCURRENCE) != 0 {
        let (lam, v) = jacobi_eigh_lanes(&rho_lanes(x), flags & G_CONCURRENCE != 0);
        let l = sort4_lanes(lam);
        // by the gaps of H's spectrum (`eigen_point`): offset-free
        let cap = pt[0] * (l[3] - l[0]) + pt[1] * (l[2] - l[1]);
        let rb = (x[1] * x[1] + x[2] * x[2] + x[3] * x[3]).sqrt();
        let rc = (x[4] * x[4] + x[8] * x[8] + x[12] * x[12]).sqrt();
        out[0] = cap;
        out[1] = cap - two * pt[4] * rb - two * pt[5] * rc;
        out[5] = l[0];
        if flags & G_CONCURRENCE != 0 {
            let r = wootters_r_lanes(&lam, &v);
            out[2] = floor0(r[0] - r[1] - r[2] - r[3]);
        }
    }
    if flags & G_LOO != 0 {
        let half = L::from_f64(0.5);
        let c: [L; 16] = std::array::from_fn(|ij| half * (x[ij] - x[4 * (ij / 4)] * x[ij % 4]));
        let sv = singular_values_real_lanes(&c);
        let norm = sv[0] + sv[1] + sv[2] + sv[3];
        let pc = half * (x[0] * x[0] + x[4] * x[4] + x[8] * x[8] + x[12] * x[12]);
        let pb = half * (x[0] * x[0] + x[1] * x[1] + x[2] * x[2] + x[3] * x[3]);
        out[3] = norm - loo_bound(pc, pb);
        out[4] = norm - loo_bound(pb, pc);
    }
    out
}

/// The kernel's run: one invocation per (member, sample) in precision R. `states` as the
/// integrator returns them (`TwoQubitResult::states`: 16 reals per (member, sample));
/// `points`/`member_point` those of the two-qubit job. Returns
/// values[(member * n_samples + sample) * n_cols + k], column k = `eigen.measures[k]`.
/// The CPU engine's form: four samples side by side in SIMD lanes (`Real::X4`, or
/// `Real::X4Avx2` where the CPU has AVX2), eight where it has AVX-512 (`Real::X8Avx512`).
pub fn run_measures_twin<R: Real>(eigen: &EigenJob, points: &[TwoQubitPoint], member_point: &[u32], states: &[f64], n_samples: usize) -> Vec<f64> {
    let mut out = vec![];
    run_measures_twin_into::<R>(eigen, points, member_point, states, n_samples, &mut out);
    out
}

/// `run_measures_twin` into `out`, resized to the values and each entry written: a run in
/// slices reuses one buffer.
pub fn run_measures_twin_into<R: Real>(eigen: &EigenJob, points: &[TwoQubitPoint], member_point: &[u32], states: &[f64], n_samples: usize, out: &mut Vec<f64>) {
    run_measures_in_lanes::<R>(eigen, points, member_point, states, n_samples, Isa::best(), out)
}

/// `run_measures_twin`, in the lanes of `isa` (at most what this CPU has): eight samples at a
/// time with AVX-512, four otherwise.
fn run_measures_in_lanes<R: Real>(
    eigen: &EigenJob,
    points: &[TwoQubitPoint],
    member_point: &[u32],
    states: &[f64],
    n_samples: usize,
    isa: Isa,
    out: &mut Vec<f64>,
) {
    let n_cols = eigen.measures.len();
    let flags = eigen_flags(&eigen.measures);
    let cols: Vec<usize> = eigen.measures.iter().map(|&m| eigen_code(m).expect("an eigen-solve measure") as usize).collect();
    let consts: Vec<[R; 8]> = points.iter().zip(&eigen.h_total_eigs).map(|(p, e)| eigen_point(p, e).map(R::from_f64)).collect();
    if n_cols == 0 || n_samples == 0 {
        out.clear();
        return;
    }
    let n = states.len() / 16;
    let isa = isa.usable();
    let lanes = if isa == Isa::Avx512 { WIDE_GROUP } else { GROUP };
    // (a reused buffer keeps its old entries: every group writes each of its rows)
    out.truncate(n * n_cols);
    out.resize(n * n_cols, 0.0);
    out.par_chunks_mut(n_cols * lanes).zip(states.par_chunks(16 * lanes)).enumerate().for_each(|(group, (rows, st))| {
        let k = st.len() / 16;
        let all: [&[R; 8]; WIDE_GROUP] = std::array::from_fn(|l| &consts[member_point[(group * lanes + l.min(k - 1)) / n_samples] as usize]);
        let pts = &all[..k];
        #[cfg(target_arch = "x86_64")]
        match isa {
            // SAFETY: `usable` found these instructions on this CPU.
            Isa::Avx512 => return unsafe { measure_group_avx512::<R::X8Avx512>(st, pts, flags, &cols, rows) },
            Isa::Avx2 => return unsafe { measure_group_avx2::<R::X4Avx2>(st, pts, flags, &cols, rows) },
            Isa::Portable => {}
        }
        measure_group::<R::X4>(st, pts, flags, &cols, rows)
    });
}

/// `eigen_measures` in f64 of states of one point (16 reals each, the point's constants
/// `pt`), four at a time in the four-sample lanes of `run_measures_twin` (the same bits as
/// one at a time): `rows` gets N_EIGEN_CODES values per state, by code. On the calling thread.
pub fn eigen_measures_of_states(states: &[f64], pt: &[f64; 8], flags: u32, rows: &mut [f64]) {
    assert_eq!(states.len() / 16 * N_EIGEN_CODES, rows.len(), "a row of every code per state");
    let cols: [usize; N_EIGEN_CODES] = std::array::from_fn(|k| k);
    let avx2 = super::has_avx2();
    for (st, rows) in states.chunks(16 * GROUP).zip(rows.chunks_mut(N_EIGEN_CODES * GROUP)) {
        let pts = [pt; GROUP];
        let pts = &pts[..st.len() / 16];
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: the CPU reports AVX2.
            unsafe { measure_group_avx2::<<f64 as Real>::X4Avx2>(st, pts, flags, &cols, rows) };
            continue;
        }
        let _ = avx2;
        measure_group::<<f64 as Real>::X4>(st, pts, flags, &cols, rows)
    }
}

/// Samples a group of `run_measures_twin`: the lanes of `Real::X4` and `Real::X4Avx2`.
const GROUP: usize = 4;
/// Samples a group with AVX-512: the lanes of `Real::X8Avx512`.
const WIDE_GROUP: usize = 8;
const _: () = assert!(
    <<f64 as Real>::X4 as Lanes>::N == GROUP
        && <<f64 as Real>::X4Avx2 as Lanes>::N == GROUP
        && <<f32 as Real>::X4 as Lanes>::N == GROUP
        && <<f32 as Real>::X4Avx2 as Lanes>::N == GROUP
);
#[cfg(target_arch = "x86_64")]
const _: () = assert!(<<f64 as Real>::X8Avx512 as Lanes>::N == WIDE_GROUP && <<f32 as Real>::X8Avx512 as Lanes>::N == WIDE_GROUP);

/// One group of up to L::N states (16 reals each, point constants `pts`) into its rows of
/// the columns `cols`; spare lanes repeat the group's last state.
#[inline(always)]
fn measure_group<L: Lanes>(st: &[f64], pts: &[&[L::Scalar; 8]], flags: u32, cols: &[usize], rows: &mut [f64]) {
    let last = pts.len() - 1;
    let x: [L; 16] = std::array::from_fn(|i| L::from_fn(|l| L::scalar(st[16 * l.min(last) + i])));
    let pt: [L; 8] = std::array::from_fn(|i| L::from_fn(|l| pts[l.min(last)][i]));
    let m = eigen_measures_lanes(&x, &pt, flags);
    for (l, row) in rows.chunks_mut(cols.len()).enumerate() {
        for (o, &c) in row.iter_mut().zip(cols) {
            *o = m[c].lane_f64(l);
        }
    }
}

/// `measure_group` compiled for AVX2 (`Real::X4Avx2`: one AVX register for f64).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn measure_group_avx2<L: Lanes>(st: &[f64], pts: &[&[L::Scalar; 8]], flags: u32, cols: &[usize], rows: &mut [f64]) {
    measure_group::<L>(st, pts, flags, cols, rows)
}

/// `measure_group` compiled for AVX-512 (`Real::X8Avx512`: one AVX-512 register for f64).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx512f,avx512vl,avx512dq")]
fn measure_group_avx512<L: Lanes>(st: &[f64], pts: &[&[L::Scalar; 8]], flags: u32, cols: &[usize], rows: &mut [f64]) {
    measure_group::<L>(st, pts, flags, cols, rows)
}

#[cfg(test)]
mod tests;
