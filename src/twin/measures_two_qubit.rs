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

/// The pairs (p, q) of a cyclic sweep, in order.
const PAIR_P: [usize; 6] = [0, 0, 0, 1, 1, 2];
const PAIR_Q: [usize; 6] = [1, 2, 3, 2, 3, 3];

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

/// (|z|, z / |z|) of z = (re, im), scaled by |re| + |im| first: squaring tiny parts
/// underflows in f32, and a phase of modulus 1.02 would stretch a column 2 % per rotation.
/// (0, (1, 0)) for z = 0.
#[inline(always)]
fn modulus_phase<R: Real>(re: R, im: R) -> (R, R, R) {
    // |re| + |im| (not the max) so that a NaN part propagates.
    let m = re.abs() + im.abs();
    if m == R::ZERO {
        return (R::ZERO, R::ONE, R::ZERO);
    }
    let (a, b) = (re / m, im / m);
    let n = (a * a + b * b).sqrt();
    (m * n, a / n, b / n)
}

/// The Jacobi rotation (t, c, s) that zeroes an off-diagonal entry of modulus r between
/// diagonal entries app and aqq.
#[inline(always)]
fn rotation<R: Real>(app: R, aqq: R, r: R) -> (R, R, R) {
    let two = R::from_f64(2.0);
    let theta = (aqq - app) / (two * r);
    let t = if theta.abs() > R::from_f64(BIG_THETA) {
        R::from_f64(0.5) / theta
    } else {
        let sgn = if theta >= R::ZERO { R::ONE } else { -R::ONE };
        sgn / (theta.abs() + (theta * theta + R::ONE).sqrt())
    };
    let c = R::ONE / (t * t + R::ONE).sqrt();
    (t, c, t * c)
}

/// (c a - s conj(e) b, s a + c conj(e) b) for complex a, b and the phase e = (er, ei).
#[inline(always)]
fn rotate_pair<R: Real>(a: (R, R), b: (R, R), er: R, ei: R, c: R, s: R) -> ((R, R), (R, R)) {
    let w = (er * b.0 + ei * b.1, er * b.1 - ei * b.0);
    ((c * a.0 - s * w.0, c * a.1 - s * w.1), (s * a.0 + c * w.0, s * a.1 + c * w.1))
}

/// Eigenvalues (unsorted, the diagonal at the end) of the Hermitian `a`, and with `vectors`
/// the eigenvectors as the columns of the returned V (identity otherwise). See the module doc.
pub fn jacobi_eigh<R: Real>(a0: &C4<R>, vectors: bool) -> ([R; 4], C4<R>) {
    let mut a = *a0;
    let mut v = C4::identity();
    for _sweep in 0..MAX_SWEEPS {
        let mut rotated = false;
        for pair in 0..6 {
            let (p, q) = (PAIR_P[pair], PAIR_Q[pair]);
            let (r, er, ei) = modulus_phase(a.re[4 * p + q], a.im[4 * p + q]);
            let (app, aqq) = (a.re[5 * p], a.re[5 * q]);
            let scale = app.abs() + aqq.abs();
            if r == R::ZERO || scale + r == scale {
                continue;
            }
            rotated = true;
            let (t, c, s) = rotation(app, aqq, r);
            for k in 0..4 {
                if k != p && k != q {
                    let (kp, kq) = (4 * k + p, 4 * k + q);
                    let (nkp, nkq) = rotate_pair((a.re[kp], a.im[kp]), (a.re[kq], a.im[kq]), er, ei, c, s);
                    a.re[kp] = nkp.0;
                    a.im[kp] = nkp.1;
                    a.re[4 * p + k] = nkp.0;
                    a.im[4 * p + k] = -nkp.1;
                    a.re[kq] = nkq.0;
                    a.im[kq] = nkq.1;
                    a.re[4 * q + k] = nkq.0;
                    a.im[4 * q + k] = -nkq.1;
                }
            }
            a.re[5 * p] = app - t * r;
            a.re[5 * q] = aqq + t * r;
            a.re[4 * p + q] = R::ZERO;
            a.im[4 * p + q] = R::ZERO;
            a.re[4 * q + p] = R::ZERO;
            a.im[4 * q + p] = R::ZERO;
            if vectors {
                for k in 0..4 {
                    let (kp, kq) = (4 * k + p, 4 * k + q);
                    let (nkp, nkq) = rotate_pair((v.re[kp], v.im[kp]), (v.re[kq], v.im[kq]), er, ei, c, s);
                    v.re[kp] = nkp.0;
                    v.im[kp] = nkp.1;
                    v.re[kq] = nkq.0;
                    v.im[kq] = nkq.1;
                }
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
    let mut m = *m0;
    for _sweep in 0..MAX_SWEEPS {
        let mut rotated = false;
        for pair in 0..6 {
            let (p, q) = (PAIR_P[pair], PAIR_Q[pair]);
            let (mut alpha, mut beta, mut gr, mut gi) = (R::ZERO, R::ZERO, R::ZERO, R::ZERO);
            for k in 0..4 {
                let (kp, kq) = (4 * k + p, 4 * k + q);
                alpha = alpha + m.re[kp] * m.re[kp] + m.im[kp] * m.im[kp];
                beta = beta + m.re[kq] * m.re[kq] + m.im[kq] * m.im[kq];
                // conj(m_kp) m_kq
                gr = gr + m.re[kp] * m.re[kq] + m.im[kp] * m.im[kq];
                gi = gi + m.re[kp] * m.im[kq] - m.im[kp] * m.re[kq];
            }
            let (g, er, ei) = modulus_phase(gr, gi);
            let ab = (alpha * beta).sqrt();
            if g == R::ZERO || ab + g == ab {
                continue;
            }
            rotated = true;
            let (_, c, s) = rotation(alpha, beta, g);
            for k in 0..4 {
                let (kp, kq) = (4 * k + p, 4 * k + q);
                let (nkp, nkq) = rotate_pair((m.re[kp], m.im[kp]), (m.re[kq], m.im[kq]), er, ei, c, s);
                m.re[kp] = nkp.0;
                m.im[kp] = nkp.1;
                m.re[kq] = nkq.0;
                m.im[kq] = nkq.1;
            }
        }
        if !rotated {
            break;
        }
    }
    let mut sv = [R::ZERO; 4];
    for (j, out) in sv.iter_mut().enumerate() {
        let mut n2 = R::ZERO;
        for k in 0..4 {
            n2 = n2 + m.re[4 * k + j] * m.re[4 * k + j] + m.im[4 * k + j] * m.im[4 * k + j];
        }
        *out = n2.sqrt();
    }
    sv
}

/// `modulus_phase` of a real z: the same operations with the imaginary part 0, so the same
/// (|z|, sign z), and NaN for an infinite z (inf / inf), as there.
#[inline(always)]
fn modulus_sign<R: Real>(z: R) -> (R, R) {
    let m = z.abs();
    if m == R::ZERO {
        return (R::ZERO, R::ONE);
    }
    let a = z / m;
    let n = (a * a).sqrt();
    (m * n, a / n)
}

/// Singular values (unsorted) of a real 4x4 M (row-major): `singular_values` with every
/// imaginary part zero, which its operations keep zero (up to the sign of a zero), so on the
/// CPU the same values, bit for bit, non-finite ones included, at half the work. (A GPU may
/// fuse the two forms' multiply-adds differently: there they agree to rounding.)
pub fn singular_values_real<R: Real>(m0: &[R; 16]) -> [R; 4] {
    let mut m = *m0;
    for _sweep in 0..MAX_SWEEPS {
        let mut rotated = false;
        for pair in 0..6 {
            let (p, q) = (PAIR_P[pair], PAIR_Q[pair]);
            let (mut alpha, mut beta, mut gr) = (R::ZERO, R::ZERO, R::ZERO);
            for k in 0..4 {
                let (kp, kq) = (4 * k + p, 4 * k + q);
                alpha = alpha + m[kp] * m[kp];
                beta = beta + m[kq] * m[kq];
                gr = gr + m[kp] * m[kq];
            }
            let (g, e) = modulus_sign(gr);
            let ab = (alpha * beta).sqrt();
            if g == R::ZERO || ab + g == ab {
                continue;
            }
            rotated = true;
            let (_, c, s) = rotation(alpha, beta, g);
            for k in 0..4 {
                let (kp, kq) = (4 * k + p, 4 * k + q);
                let w = e * m[kq];
                let a = m[kp];
                m[kp] = c * a - s * w;
                m[kq] = s * a + c * w;
            }
        }
        if !rotated {
            break;
        }
    }
    let mut sv = [R::ZERO; 4];
    for (j, out) in sv.iter_mut().enumerate() {
        let mut n2 = R::ZERO;
        for k in 0..4 {
            n2 = n2 + m[4 * k + j] * m[4 * k + j];
        }
        *out = n2.sqrt();
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
    // X = V diag(sqrt(max(lam, 0)))
    let mut x = *v;
    for j in 0..4 {
        let w = floor0(lam[j]).sqrt();
        for k in 0..4 {
            x.re[4 * k + j] = x.re[4 * k + j] * w;
            x.im[4 * k + j] = x.im[4 * k + j] * w;
        }
    }
    // M = X^T S X, S = antidiag(-1, 1, 1, -1): M_ij = -X_0i X_3j + X_1i X_2j + X_2i X_1j - X_3i X_0j.
    let mul = |a: usize, b: usize| (x.re[a] * x.re[b] - x.im[a] * x.im[b], x.re[a] * x.im[b] + x.im[a] * x.re[b]);
    let mut m = C4::zero();
    for i in 0..4 {
        for j in 0..4 {
            let (t0, t1, t2, t3) = (mul(i, 12 + j), mul(4 + i, 8 + j), mul(8 + i, 4 + j), mul(12 + i, j));
            m.re[4 * i + j] = t1.0 + t2.0 - t0.0 - t3.0;
            m.im[4 * i + j] = t1.1 + t2.1 - t0.1 - t3.1;
        }
    }
    let r = sort4_asc(singular_values(&m));
    [r[3], r[2], r[1], r[0]]
}

/// sqrt(max((2 - a)(1 - b), 0)), the LOO bound.
#[inline(always)]
fn loo_bound<R: Real>(a: R, b: R) -> R {
    floor0((R::from_f64(2.0) - a) * (R::ONE - b)).sqrt()
}

/// Every eigen-solve measure of one sample state x (Pauli coefficients, dephased), by code;
/// `pt` the point's constants (`job::measures_two_qubit::eigen_point`). Unflagged ones are 0.
pub fn eigen_measures<R: Real>(x: &[R; 16], pt: &[R; 8], flags: u32) -> [R; N_EIGEN_CODES] {
    let mut out = [R::ZERO; N_EIGEN_CODES];
    let two = R::from_f64(2.0);
    if flags & (G_SPECTRUM | G_CONCURRENCE) != 0 {
        let rho = rho_from_pauli(x);
        let (lam, v) = jacobi_eigh(&rho, flags & G_CONCURRENCE != 0);
        let l = sort4_asc(lam);
        let mut cap = R::ZERO;
        for i in 0..4 {
            cap = cap + pt[i] * (l[i] - l[3 - i]);
        }
        let rb = (x[1] * x[1] + x[2] * x[2] + x[3] * x[3]).sqrt();
        let rc = (x[4] * x[4] + x[8] * x[8] + x[12] * x[12]).sqrt();
        out[0] = cap;
        out[1] = cap - two * pt[4] * rb - two * pt[5] * rc;
        out[5] = l[0];
        if flags & G_CONCURRENCE != 0 {
            let r = wootters_r(&lam, &v);
            out[2] = floor0(r[0] - r[1] - r[2] - r[3]);
        }
    }
    if flags & G_LOO != 0 {
        let half = R::from_f64(0.5);
        let mut c = [R::ZERO; 16];
        for i in 0..4 {
            for j in 0..4 {
                c[4 * i + j] = half * (x[4 * i + j] - x[4 * i] * x[j]);
            }
        }
        let sv = singular_values_real(&c);
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
pub fn run_measures_twin<R: Real>(eigen: &EigenJob, points: &[TwoQubitPoint], member_point: &[u32], states: &[f64], n_samples: usize) -> Vec<f64> {
    let n_cols = eigen.measures.len();
    let flags = eigen_flags(&eigen.measures);
    let cols: Vec<usize> = eigen.measures.iter().map(|&m| eigen_code(m).expect("an eigen-solve measure") as usize).collect();
    let consts: Vec<[R; 8]> = points.iter().zip(&eigen.h_total_eigs).map(|(p, e)| eigen_point(p, e).map(R::from_f64)).collect();
    if n_cols == 0 || n_samples == 0 {
        return vec![];
    }
    let n = states.len() / 16;
    let mut out = vec![0.0; n * n_cols];
    out.par_chunks_mut(n_cols).zip(states.par_chunks(16)).enumerate().for_each(|(idx, (row, s))| {
        let member = idx / n_samples;
        let pt = &consts[member_point[member] as usize];
        let x: [R; 16] = std::array::from_fn(|i| R::from_f64(s[i]));
        let m = eigen_measures(&x, pt, flags);
        for (o, &c) in row.iter_mut().zip(&cols) {
            *o = m[c].to_f64();
        }
    });
    out
}
