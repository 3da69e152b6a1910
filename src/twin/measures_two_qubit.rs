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
//!   |a_pq| and its phase come from `modulus_phase` (scaled, so that the phase has modulus 1
//!   in f32 too). A pair is skipped when r is below the rounding of |a_pp| + |a_qq|; the sweeps stop after
//!   one that rotated nothing (at most MAX_SWEEPS). Absolute accuracy ~ eps ||A||.
//! - `singular_values`: one-sided (Hestenes) Jacobi on the columns of a complex 4x4 M, the
//!   same rotation applied to the Gram matrix M^+ M (alpha = |m_p|^2, beta = |m_q|^2,
//!   gamma = m_p^+ m_q), never forming it; the singular values are the final column norms.
//!   Their absolute error is ~ eps ||M||, not sqrt(eps ||M||^2) as from eigenvalues of M^+ M.
//!
//! Measures (docs/physics.md):
//! - spectrum lam of rho: capacity_total = sum_i eps_i (lam_i - lam_{3-i}) (eps of H, both
//!   ascending), residual_capacity = capacity_total - 2|h_B||r_b| - 2|h_C||r_c|,
//!   min_eigenvalue = lam_0;
//! - concurrence: rho = X X^+ with X = V diag(sqrt(max(lam, 0))); the Wootters numbers r_i are
//!   the singular values of the complex symmetric M = X^T S X, S = sy (x) sy (the same route
//!   as `measures::entanglement`). They come out directly, with absolute error ~ eps, where
//!   the eigenvalues of rho rho~ (or of sqrt(rho) rho~ sqrt(rho)) are r_i^2 and their square
//!   roots carry sqrt(eps) near a pure state (3e-4 in f32): this form holds in f32.
//! - LOO steering: C_ij = (x_ij - x_i0 x_0j) / 2 (real; the Pauli form of
//!   Tr[(G_i (x) G_j)(rho - rho_c (x) rho_b)]), ||C||_tr from `singular_values_real`.
//!
//! Lanes: the CPU engine measures `LANES` samples at a time. Every solver runs over N matrices
//! side by side (`C4s`), each lane doing the kernel's operations in the kernel's order (Rust
//! neither fuses nor reorders them), so a sample's values are the same bits in any lane as
//! alone (the one-matrix functions here are N = 1). Where the kernel skips a rotation, a lane
//! computes it and keeps its old entries (`pick`); the sweeps go on while any lane rotated. A
//! sweep that rotated nothing in a lane left it unchanged, so its later sweeps rotate nothing
//! either, as the kernel's break has it. The lanes are straight-line code that the compiler
//! turns into 4-wide vector operations (AVX2 where the CPU has it).

// Lanes are indexed side by side across several arrays, as the kernel indexes its entries.
#![allow(clippy::needless_range_loop)]

use super::Real;
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
    pub fn identity() -> Self {
        let mut m = Self::zero();
        for i in 0..4 {
            m.re[5 * i] = R::ONE;
        }
        m
    }
}

/// Samples the CPU engine measures side by side (see "Lanes" in the module doc).
pub const LANES: usize = 4;

/// N complex 4x4 matrices side by side: lane l of entry (i, j) at [4 i + j][l].
#[derive(Clone, Copy, Debug)]
struct C4s<R, const N: usize> {
    re: [[R; N]; 16],
    im: [[R; N]; 16],
}

impl<R: Real, const N: usize> C4s<R, N> {
    fn from_fn(f: impl Fn(usize) -> C4<R>) -> Self {
        let m: [C4<R>; N] = std::array::from_fn(f);
        C4s { re: std::array::from_fn(|k| std::array::from_fn(|l| m[l].re[k])), im: std::array::from_fn(|k| std::array::from_fn(|l| m[l].im[k])) }
    }
    fn lane(&self, l: usize) -> C4<R> {
        C4 { re: self.re.map(|x| x[l]), im: self.im.map(|x| x[l]) }
    }
}

/// Lane l of N 16-vectors side by side.
#[inline(always)]
fn lane16<R: Real, const N: usize>(x: &[[R; N]; 16], l: usize) -> [R; 16] {
    x.map(|v| v[l])
}

/// The sorted 4 values of lane l.
#[inline(always)]
fn sorted_lane<R: Real, const N: usize>(v: &[[R; N]; 4], l: usize) -> [R; 4] {
    sort4_asc(v.map(|x| x[l]))
}

/// One value per lane.
#[inline(always)]
fn lanes<T, const N: usize>(f: impl FnMut(usize) -> T) -> [T; N] {
    std::array::from_fn(f)
}

/// `new` where a lane rotates, `old` where the kernel would have skipped the rotation.
#[inline(always)]
fn pick<R: Copy>(go: bool, new: R, old: R) -> R {
    if go {
        new
    } else {
        old
    }
}

/// The pairs (p, q) of a cyclic sweep, in order.
const PAIR_P: [usize; 6] = [0, 0, 0, 1, 1, 2];
const PAIR_Q: [usize; 6] = [1, 2, 3, 2, 3, 3];
/// The two indices other than p and q, ascending, for each pair.
const PAIR_OTHERS: [[usize; 2]; 6] = [[2, 3], [1, 3], [1, 2], [0, 3], [0, 2], [0, 1]];

/// Entry (r, s) of c0 I + c1 sx + c2 sy + c3 sz with complex c (project convention:
/// sy = [[0, i], [-i, 0]], sz = diag(-1, 1)).
#[inline(always)]
fn p2<R: Real>(c: &[(R, R); 4], r: usize, s: usize) -> (R, R) {
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
    let quarter = R::from_f64(0.25);
    let mut m = C4::zero();
    for r1 in 0..2 {
        for s1 in 0..2 {
            for r2 in 0..2 {
                for s2 in 0..2 {
                    let mut b = [(R::ZERO, R::ZERO); 4];
                    for (a, ba) in b.iter_mut().enumerate() {
                        let c = [(x[4 * a], R::ZERO), (x[4 * a + 1], R::ZERO), (x[4 * a + 2], R::ZERO), (x[4 * a + 3], R::ZERO)];
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

/// Lane by lane, (|z|, z / |z|) of z = (re, im), scaled by |re| + |im| first: squaring tiny
/// parts underflows in f32, and a phase of modulus 1.02 would stretch a column 2 % per
/// rotation. (0, (1, 0)) for z = 0. (Both outcomes are computed and one kept, one operation
/// over all lanes at a time, so that the lanes vectorise; the kernel returns early, with the
/// same values.)
#[inline(always)]
fn modulus_phase<R: Real, const N: usize>(re: [R; N], im: [R; N]) -> ([R; N], [R; N], [R; N]) {
    // |re| + |im| (not the max) so that a NaN part propagates.
    let m: [R; N] = lanes(|l| re[l].abs() + im[l].abs());
    let a: [R; N] = lanes(|l| re[l] / m[l]);
    let b: [R; N] = lanes(|l| im[l] / m[l]);
    let n: [R; N] = lanes(|l| (a[l] * a[l] + b[l] * b[l]).sqrt());
    // For z = 0 the quotients are 1 / 1 and 0 / 1: the choice falls on the operands, so
    // that no division sits in a branch.
    let z: [bool; N] = lanes(|l| m[l] == R::ZERO);
    let n1: [R; N] = lanes(|l| pick(z[l], R::ONE, n[l]));
    (lanes(|l| m[l] * pick(z[l], R::ZERO, n[l])), lanes(|l| pick(z[l], R::ONE, a[l]) / n1[l]), lanes(|l| pick(z[l], R::ZERO, b[l]) / n1[l]))
}

/// Lane by lane, the Jacobi rotation (t, c, s) that zeroes an off-diagonal entry of modulus r
/// between diagonal entries app and aqq.
#[inline(always)]
fn rotation<R: Real, const N: usize>(app: [R; N], aqq: [R; N], r: [R; N]) -> ([R; N], [R; N], [R; N]) {
    let two = R::from_f64(2.0);
    let theta: [R; N] = lanes(|l| (aqq[l] - app[l]) / (two * r[l]));
    let sgn: [R; N] = lanes(|l| pick(theta[l] >= R::ZERO, R::ONE, -R::ONE));
    // t = 1 / (2 theta) far out, else sgn / (|theta| + sqrt(theta^2 + 1)): one quotient of
    // the chosen operands.
    let far: [bool; N] = lanes(|l| theta[l].abs() > R::from_f64(BIG_THETA));
    let near: [R; N] = lanes(|l| theta[l].abs() + (theta[l] * theta[l] + R::ONE).sqrt());
    let den: [R; N] = lanes(|l| pick(far[l], theta[l], near[l]));
    let t: [R; N] = lanes(|l| pick(far[l], R::from_f64(0.5), sgn[l]) / den[l]);
    let c: [R; N] = lanes(|l| R::ONE / (t[l] * t[l] + R::ONE).sqrt());
    (t, c, lanes(|l| t[l] * c[l]))
}

/// Whether the kernel rotates: the entry r is not negligible beside `scale` (NaN rotates).
#[inline(always)]
fn rotates<R: Real, const N: usize>(r: [R; N], scale: [R; N]) -> [bool; N] {
    lanes(|l| !(r[l] == R::ZERO || scale[l] + r[l] == scale[l]))
}

/// (c a - s conj(e) b, s a + c conj(e) b) for complex a, b and the phase e = (er, ei).
#[inline(always)]
fn rotate_pair<R: Real>(a: (R, R), b: (R, R), er: R, ei: R, c: R, s: R) -> ((R, R), (R, R)) {
    let w = (er * b.0 + ei * b.1, er * b.1 - ei * b.0);
    ((c * a.0 - s * w.0, c * a.1 - s * w.1), (s * a.0 + c * w.0, s * a.1 + c * w.1))
}

/// Rotate columns p and q of lane l of `m` (entries (k, p), (k, q) for the given k), keeping
/// the old entries where the lane does not rotate.
#[inline(always)]
fn rotate_columns<R: Real, const N: usize>(m: &mut C4s<R, N>, rows: &[usize], p: usize, q: usize, go: &[bool; N], rot: &Rot<R, N>) {
    for &k in rows {
        let (kp, kq) = (4 * k + p, 4 * k + q);
        for l in 0..N {
            let (nkp, nkq) = rotate_pair((m.re[kp][l], m.im[kp][l]), (m.re[kq][l], m.im[kq][l]), rot.er[l], rot.ei[l], rot.c[l], rot.s[l]);
            m.re[kp][l] = pick(go[l], nkp.0, m.re[kp][l]);
            m.im[kp][l] = pick(go[l], nkp.1, m.im[kp][l]);
            m.re[kq][l] = pick(go[l], nkq.0, m.re[kq][l]);
            m.im[kq][l] = pick(go[l], nkq.1, m.im[kq][l]);
        }
    }
}

/// One rotation per lane: the phase (er, ei) of the zeroed entry and (t, c, s).
struct Rot<R, const N: usize> {
    er: [R; N],
    ei: [R; N],
    t: [R; N],
    c: [R; N],
    s: [R; N],
}

/// Eigenvalues (unsorted, the diagonal at the end) of the Hermitian `a`, and with `vectors`
/// the eigenvectors as the columns of the returned V (identity otherwise). See the module doc.
pub fn jacobi_eigh<R: Real>(a0: &C4<R>, vectors: bool) -> ([R; 4], C4<R>) {
    let (lam, v) = jacobi_eigh_lanes(&C4s::<R, 1>::from_fn(|_| *a0), vectors);
    (lam.map(|x| x[0]), v.lane(0))
}

#[inline(always)]
fn jacobi_eigh_lanes<R: Real, const N: usize>(a0: &C4s<R, N>, vectors: bool) -> ([[R; N]; 4], C4s<R, N>) {
    let mut a = *a0;
    let mut v = C4s::from_fn(|_| C4::identity());
    for _sweep in 0..MAX_SWEEPS {
        let mut rotated = false;
        for pair in 0..6 {
            let (p, q) = (PAIR_P[pair], PAIR_Q[pair]);
            let (pq, qp, pp, qq) = (4 * p + q, 4 * q + p, 5 * p, 5 * q);
            let (r, er, ei) = modulus_phase(a.re[pq], a.im[pq]);
            let (app, aqq) = (a.re[pp], a.re[qq]);
            let go = rotates(r, lanes(|l| app[l].abs() + aqq[l].abs()));
            let (t, c, s) = rotation(app, aqq, r);
            let rot = Rot { er, ei, t, c, s };
            if !go.contains(&true) {
                continue;
            }
            rotated = true;
            let others = PAIR_OTHERS[pair];
            rotate_columns(&mut a, &others, p, q, &go, &rot);
            // The rows mirror the columns (Hermitian).
            for k in others {
                let (kp, kq, pk, qk) = (4 * k + p, 4 * k + q, 4 * p + k, 4 * q + k);
                for l in 0..N {
                    a.re[pk][l] = pick(go[l], a.re[kp][l], a.re[pk][l]);
                    a.im[pk][l] = pick(go[l], -a.im[kp][l], a.im[pk][l]);
                    a.re[qk][l] = pick(go[l], a.re[kq][l], a.re[qk][l]);
                    a.im[qk][l] = pick(go[l], -a.im[kq][l], a.im[qk][l]);
                }
            }
            for l in 0..N {
                let (app, aqq) = (a.re[pp][l], a.re[qq][l]);
                a.re[pp][l] = pick(go[l], app - rot.t[l] * r[l], app);
                a.re[qq][l] = pick(go[l], aqq + rot.t[l] * r[l], aqq);
                for k in [pq, qp] {
                    a.re[k][l] = pick(go[l], R::ZERO, a.re[k][l]);
                    a.im[k][l] = pick(go[l], R::ZERO, a.im[k][l]);
                }
            }
            if vectors {
                rotate_columns(&mut v, &[0, 1, 2, 3], p, q, &go, &rot);
            }
        }
        if !rotated {
            break;
        }
    }
    ([a.re[0], a.re[5], a.re[10], a.re[15]], v)
}

/// Singular values (unsorted) of a complex 4x4 M by one-sided Jacobi (see the module doc).
pub fn singular_values<R: Real>(m0: &C4<R>) -> [R; 4] {
    singular_values_lanes(&C4s::<R, 1>::from_fn(|_| *m0)).map(|x| x[0])
}

#[inline(always)]
fn singular_values_lanes<R: Real, const N: usize>(m0: &C4s<R, N>) -> [[R; N]; 4] {
    let mut m = *m0;
    for _sweep in 0..MAX_SWEEPS {
        let mut rotated = false;
        for pair in 0..6 {
            let (p, q) = (PAIR_P[pair], PAIR_Q[pair]);
            // alpha = |m_p|^2, beta = |m_q|^2, gamma = m_p^+ m_q (lanes innermost, so that they vectorise)
            let (mut alpha, mut beta, mut gr, mut gi) = ([R::ZERO; N], [R::ZERO; N], [R::ZERO; N], [R::ZERO; N]);
            for k in 0..4 {
                let (kp, kq) = (4 * k + p, 4 * k + q);
                for l in 0..N {
                    let (pr, pi, qr, qi) = (m.re[kp][l], m.im[kp][l], m.re[kq][l], m.im[kq][l]);
                    alpha[l] = alpha[l] + pr * pr + pi * pi;
                    beta[l] = beta[l] + qr * qr + qi * qi;
                    gr[l] = gr[l] + pr * qr + pi * qi;
                    gi[l] = gi[l] + pr * qi - pi * qr;
                }
            }
            let (g, er, ei) = modulus_phase(gr, gi);
            let go = rotates(g, lanes(|l| (alpha[l] * beta[l]).sqrt()));
            let (t, c, s) = rotation(alpha, beta, g);
            let rot = Rot { er, ei, t, c, s };
            if !go.contains(&true) {
                continue;
            }
            rotated = true;
            rotate_columns(&mut m, &[0, 1, 2, 3], p, q, &go, &rot);
        }
        if !rotated {
            break;
        }
    }
    let mut sv = [[R::ZERO; N]; 4];
    for (j, out) in sv.iter_mut().enumerate() {
        for k in 0..4 {
            for l in 0..N {
                out[l] = out[l] + m.re[4 * k + j][l] * m.re[4 * k + j][l] + m.im[4 * k + j][l] * m.im[4 * k + j][l];
            }
        }
        *out = out.map(R::sqrt);
    }
    sv
}

/// `modulus_phase` of a real z: the same operations with the imaginary part 0, so the same
/// (|z|, sign z), and NaN for an infinite z (inf / inf), as there.
#[inline(always)]
fn modulus_sign<R: Real, const N: usize>(z: [R; N]) -> ([R; N], [R; N]) {
    let m: [R; N] = lanes(|l| z[l].abs());
    let a: [R; N] = lanes(|l| z[l] / m[l]);
    let n: [R; N] = lanes(|l| (a[l] * a[l]).sqrt());
    let zero: [bool; N] = lanes(|l| m[l] == R::ZERO);
    (lanes(|l| m[l] * pick(zero[l], R::ZERO, n[l])), lanes(|l| pick(zero[l], R::ONE, a[l]) / pick(zero[l], R::ONE, n[l])))
}

/// Singular values (unsorted) of a real 4x4 M (row-major): `singular_values` with every
/// imaginary part zero, which its operations keep zero (up to the sign of a zero), so on the
/// CPU the same values, bit for bit, non-finite ones included, at half the work. (A GPU may
/// fuse the two forms' multiply-adds differently: there they agree to rounding.)
pub fn singular_values_real<R: Real>(m0: &[R; 16]) -> [R; 4] {
    singular_values_real_lanes(&m0.map(|x| [x])).map(|x| x[0])
}

#[inline(always)]
fn singular_values_real_lanes<R: Real, const N: usize>(m0: &[[R; N]; 16]) -> [[R; N]; 4] {
    let mut m = *m0;
    for _sweep in 0..MAX_SWEEPS {
        let mut rotated = false;
        for pair in 0..6 {
            let (p, q) = (PAIR_P[pair], PAIR_Q[pair]);
            let (mut alpha, mut beta, mut gr) = ([R::ZERO; N], [R::ZERO; N], [R::ZERO; N]);
            for k in 0..4 {
                let (kp, kq) = (4 * k + p, 4 * k + q);
                for l in 0..N {
                    alpha[l] = alpha[l] + m[kp][l] * m[kp][l];
                    beta[l] = beta[l] + m[kq][l] * m[kq][l];
                    gr[l] = gr[l] + m[kp][l] * m[kq][l];
                }
            }
            let (g, e) = modulus_sign(gr);
            let go = rotates(g, lanes(|l| (alpha[l] * beta[l]).sqrt()));
            let (_, c, s) = rotation(alpha, beta, g);
            if !go.contains(&true) {
                continue;
            }
            rotated = true;
            for k in 0..4 {
                let (kp, kq) = (4 * k + p, 4 * k + q);
                for l in 0..N {
                    let w = e[l] * m[kq][l];
                    let a = m[kp][l];
                    m[kp][l] = pick(go[l], c[l] * a - s[l] * w, a);
                    m[kq][l] = pick(go[l], s[l] * a + c[l] * w, m[kq][l]);
                }
            }
        }
        if !rotated {
            break;
        }
    }
    let mut sv = [[R::ZERO; N]; 4];
    for (j, out) in sv.iter_mut().enumerate() {
        for k in 0..4 {
            for l in 0..N {
                out[l] = out[l] + m[4 * k + j][l] * m[4 * k + j][l];
            }
        }
        *out = out.map(R::sqrt);
    }
    sv
}

/// Sort 4 values ascending (a fixed exchange network, as the kernel).
pub fn sort4_asc<R: Real>(v: [R; 4]) -> [R; 4] {
    let mut a = v;
    for i in 0..3 {
        for j in 0..(3 - i) {
            if a[j + 1] < a[j] {
                a.swap(j, j + 1);
            }
        }
    }
    a
}

/// max(x, 0) that keeps a NaN (a non-finite state gives NaN measures).
#[inline(always)]
fn floor0<R: Real>(x: R) -> R {
    if x < R::ZERO {
        R::ZERO
    } else {
        x
    }
}

/// Wootters numbers r_1 >= ... >= r_4 from the eigen-decomposition (lam, V) of rho.
pub fn wootters_r<R: Real>(lam: &[R; 4], v: &C4<R>) -> [R; 4] {
    wootters_r_lanes(&lam.map(|x| [x]), &C4s::<R, 1>::from_fn(|_| *v)).map(|x| x[0])
}

#[inline(always)]
fn wootters_r_lanes<R: Real, const N: usize>(lam: &[[R; N]; 4], v: &C4s<R, N>) -> [[R; N]; 4] {
    // X = V diag(sqrt(max(lam, 0)))
    let mut x = *v;
    for j in 0..4 {
        for l in 0..N {
            let w = floor0(lam[j][l]).sqrt();
            for k in 0..4 {
                x.re[4 * k + j][l] = x.re[4 * k + j][l] * w;
                x.im[4 * k + j][l] = x.im[4 * k + j][l] * w;
            }
        }
    }
    // M = X^T S X, S = antidiag(-1, 1, 1, -1): M_ij = -X_0i X_3j + X_1i X_2j + X_2i X_1j - X_3i X_0j.
    let mut m = C4s { re: [[R::ZERO; N]; 16], im: [[R::ZERO; N]; 16] };
    for i in 0..4 {
        for j in 0..4 {
            for l in 0..N {
                let mul = |a: usize, b: usize| (x.re[a][l] * x.re[b][l] - x.im[a][l] * x.im[b][l], x.re[a][l] * x.im[b][l] + x.im[a][l] * x.re[b][l]);
                let (t0, t1, t2, t3) = (mul(i, 12 + j), mul(4 + i, 8 + j), mul(8 + i, 4 + j), mul(12 + i, j));
                m.re[4 * i + j][l] = t1.0 + t2.0 - t0.0 - t3.0;
                m.im[4 * i + j][l] = t1.1 + t2.1 - t0.1 - t3.1;
            }
        }
    }
    let sv = singular_values_lanes(&m);
    let mut out = [[R::ZERO; N]; 4];
    for l in 0..N {
        let r = sorted_lane(&sv, l);
        for i in 0..4 {
            out[i][l] = r[3 - i];
        }
    }
    out
}

/// sqrt(max((2 - a)(1 - b), 0)), the LOO bound.
#[inline(always)]
fn loo_bound<R: Real>(a: R, b: R) -> R {
    floor0((R::from_f64(2.0) - a) * (R::ONE - b)).sqrt()
}

/// Every eigen-solve measure of one sample state x (Pauli coefficients, dephased), by code;
/// `pt` the point's constants (`job::measures_two_qubit::eigen_point`). Unflagged ones are 0.
pub fn eigen_measures<R: Real>(x: &[R; 16], pt: &[R; 8], flags: u32) -> [R; N_EIGEN_CODES] {
    eigen_measures_lanes(&x.map(|v| [v]), &[*pt], flags).map(|v| v[0])
}

/// `eigen_measures` of N sample states side by side (lane l: state x[..][l], point pt[l]).
#[inline(always)]
fn eigen_measures_lanes<R: Real, const N: usize>(x: &[[R; N]; 16], pt: &[[R; 8]; N], flags: u32) -> [[R; N]; N_EIGEN_CODES] {
    let mut out = [[R::ZERO; N]; N_EIGEN_CODES];
    let two = R::from_f64(2.0);
    if flags & (G_SPECTRUM | G_CONCURRENCE) != 0 {
        let rho = C4s::<R, N>::from_fn(|l| rho_from_pauli(&lane16(x, l)));
        let (lam, v) = jacobi_eigh_lanes(&rho, flags & G_CONCURRENCE != 0);
        for l in 0..N {
            let (xl, p) = (lane16(x, l), &pt[l]);
            let s = sorted_lane(&lam, l);
            let mut cap = R::ZERO;
            for i in 0..4 {
                cap = cap + p[i] * (s[i] - s[3 - i]);
            }
            let rb = (xl[1] * xl[1] + xl[2] * xl[2] + xl[3] * xl[3]).sqrt();
            let rc = (xl[4] * xl[4] + xl[8] * xl[8] + xl[12] * xl[12]).sqrt();
            out[0][l] = cap;
            out[1][l] = cap - two * p[4] * rb - two * p[5] * rc;
            out[5][l] = s[0];
        }
        if flags & G_CONCURRENCE != 0 {
            let r = wootters_r_lanes(&lam, &v);
            for l in 0..N {
                out[2][l] = floor0(r[0][l] - r[1][l] - r[2][l] - r[3][l]);
            }
        }
    }
    if flags & G_LOO != 0 {
        let half = R::from_f64(0.5);
        let c: [[R; N]; 16] = std::array::from_fn(|ij| std::array::from_fn(|l| half * (x[ij][l] - x[4 * (ij / 4)][l] * x[ij % 4][l])));
        let sv = singular_values_real_lanes(&c);
        for l in 0..N {
            let xl = lane16(x, l);
            let norm = sv[0][l] + sv[1][l] + sv[2][l] + sv[3][l];
            let pc = half * (xl[0] * xl[0] + xl[4] * xl[4] + xl[8] * xl[8] + xl[12] * xl[12]);
            let pb = half * (xl[0] * xl[0] + xl[1] * xl[1] + xl[2] * xl[2] + xl[3] * xl[3]);
            out[3][l] = norm - loo_bound(pc, pb);
            out[4][l] = norm - loo_bound(pb, pc);
        }
    }
    out
}

/// `eigen_measures` of `LANES` states, the CPU engine's unit (compiled for AVX2 too).
#[inline(always)]
fn eigen_measures_in_lanes<R: Real>(x: &[[R; LANES]; 16], pt: &[[R; 8]; LANES], flags: u32) -> [[R; LANES]; N_EIGEN_CODES] {
    eigen_measures_lanes(x, pt, flags)
}

super::avx2_dispatch!(fn eigen_measures_dispatch, eigen_measures_avx2 => eigen_measures_in_lanes(
    x: &[[R; LANES]; 16], pt: &[[R; 8]; LANES], flags: u32
) -> [[R; LANES]; N_EIGEN_CODES]);

/// The kernel's run: one invocation per (member, sample) in precision R. `states` as the
/// integrator returns them (`TwoQubitResult::states`: 16 reals per (member, sample));
/// `points`/`member_point` those of the two-qubit job. Returns
/// values[(member * n_samples + sample) * n_cols + k], column k = `eigen.measures[k]`.
pub fn run_measures_twin<R: Real>(eigen: &EigenJob, points: &[TwoQubitPoint], member_point: &[u32], states: &[f64], n_samples: usize) -> Vec<f64> {
    let n_cols = eigen.measures.len();
    let flags = eigen_flags(&eigen.measures);
    let cols: Vec<usize> = eigen.measures.iter().map(|&m| eigen_code(m).expect("an eigen-solve measure") as usize).collect();
    let consts: Vec<[R; 8]> = points.iter().zip(&eigen.h_total_eigs).map(|(p, e)| eigen_point(p, e).map(R::from_f64)).collect();
    if n_cols == 0 || n_samples == 0 {
        return vec![];
    }
    let n = states.len() / 16;
    let avx2 = super::has_avx2();
    let mut out = vec![0.0; n * n_cols];
    out.par_chunks_mut(n_cols * LANES).zip(states.par_chunks(16 * LANES)).enumerate().for_each(|(group, (rows, st))| {
        // The last group may hold fewer states: its spare lanes repeat its last one.
        let row = |l: usize| l.min(st.len() / 16 - 1);
        let x: [[R; LANES]; 16] = std::array::from_fn(|i| std::array::from_fn(|l| R::from_f64(st[16 * row(l) + i])));
        let pt: [[R; 8]; LANES] = std::array::from_fn(|l| consts[member_point[(group * LANES + row(l)) / n_samples] as usize]);
        let m = eigen_measures_dispatch(avx2, &x, &pt, flags);
        for (l, out_row) in rows.chunks_mut(n_cols).enumerate() {
            for (o, &c) in out_row.iter_mut().zip(&cols) {
                *o = m[c][l].to_f64();
            }
        }
    });
    out
}
