//! The two-qubit kernel's arithmetic without transcendentals (the shader's `log2_arith`,
//! `neg_plogp` and `sym3_eigenvalues`, in its order): entropy_b's logarithm and bell_chsh's
//! eigenvalues; and energy_fluctuation_b's Z(0) and Sigma^2 (the shader's `anticommutator`
//! and `fluctuation_sq`).

use crate::twin::Real;

/// Z(0) = {I (x) (H_B - h0 I), rho0}/2 in the Pauli basis, of H_B's traceless part h.sigma
/// alone: z_a0 = h.r_a (r_a = (x_a1, x_a2, x_a3)), z_ak = h_k x_a0. That of H_B itself is
/// h0 rho0 + Z(0), whose offset would cost f32 h0 eps in every entry (`fluctuation_sq`).
pub(super) fn anticommutator<R: Real>(x: &[R; 16], hb: &[R; 4]) -> [R; 16] {
    let mut z = [R::ZERO; 16];
    for a in 0..4 {
        let r = &x[4 * a..4 * a + 4];
        z[4 * a] = hb[1] * r[1] + hb[2] * r[2] + hb[3] * r[3];
        for k in 1..4 {
            z[4 * a + k] = hb[k] * r[0];
        }
    }
    z
}

/// Sigma^2 of energy_fluctuation_b from the battery rows' changes since t = 0: `d` of rho,
/// `dz` of Z (evolved from `anticommutator`'s Z(0)); H_B = h0 I + h.sigma (`hb`), whose own Z
/// is h0 rho + Z, and `nhb2` = |h|^2. With stored = h0 d_0 + h.d,
///   Sigma^2 = Tr(H_B^2 d) - 2 Tr(H_B (h0 d + dz)) - stored^2
///           = |h|^2 d_0 - 2 h.dz - (h.d)^2 - h0 (h0 d_0 (1 + d_0) + 2 (dz_0 + d_0 h.d)),
/// the h0 terms only through the traces' changes d_0 and dz_0 (0 where the trace is kept).
/// Written with H_B's Z, h0 (h.d) cancelled against h.dz: in f32 5e-4 in Sigma^2 at h0 = 3000
/// and 2e-2 at 1e5, on |h| = 1 (the test
/// `the_energy_fluctuation_does_not_lose_its_digits_to_an_offset`).
#[inline(always)]
pub(super) fn fluctuation_sq<R: Real>(hb: &[R; 4], nhb2: R, d: &[R; 4], dz: &[R; 4]) -> R {
    let two = R::from_f64(2.0);
    let hd = hb[1] * d[1] + hb[2] * d[2] + hb[3] * d[3];
    let h0 = hb[0];
    let hdz = hb[1] * dz[1] + hb[2] * dz[2] + hb[3] * dz[3];
    nhb2 * d[0] - two * hdz - hd * hd - h0 * (h0 * d[0] * (R::ONE + d[0]) + two * (dz[0] + d[0] * hd))
}

/// log2 without transcendentals: exact power-of-two range reduction to [1/sqrt2, sqrt2], then
/// ln m = 2 atanh(u), u = (m - 1)/(m + 1), |u| <= 0.172, by its series through u^21.
pub fn log2_arith<R: Real>(x: R) -> R {
    let c = R::from_f64;
    let mut m = x;
    let mut e = R::ZERO;
    let mut i = 0;
    while i < 128 && m < c(std::f64::consts::FRAC_1_SQRT_2) {
        m = m * c(2.0);
        e = e - R::ONE;
        i += 1;
    }
    let mut i = 0;
    while i < 128 && m > c(std::f64::consts::SQRT_2) {
        m = m * c(0.5);
        e = e + R::ONE;
        i += 1;
    }
    let u = (m - R::ONE) / (m + R::ONE);
    let u2 = u * u;
    let mut s = c(1.0 / 21.0);
    for k in [19.0, 17.0, 15.0, 13.0, 11.0, 9.0, 7.0, 5.0, 3.0] {
        s = c(1.0 / k) + u2 * s;
    }
    s = R::ONE + u2 * s;
    e + c(2.0) * u * s * c(std::f64::consts::LOG2_E)
}

/// -l log2 l, 0 for l <= 1e-30.
pub(super) fn neg_plogp<R: Real>(l: R) -> R {
    if l > R::from_f64(1e-30) {
        -(l * log2_arith(l))
    } else {
        R::ZERO
    }
}

/// Eigenvalues of a symmetric 3x3 matrix by cyclic Jacobi (the diagonal at the end). A pair
/// is rotated unless its entry a_pq is zero or negligible beside its diagonal: s + |a_pq|
/// rounds to s = max(|a_pp|, |a_qq|), so dropping it moves no eigenvalue by more than half an
/// ulp of s (Weyl), and s, unlike a sum, cannot overflow. The sweeps stop after one that
/// rotated nothing, at most 6.
pub fn sym3_eigenvalues<R: Real>(m00: R, m01: R, m02: R, m11: R, m12: R, m22: R) -> [R; 3] {
    let mut a = [m00, m01, m02, m01, m11, m12, m02, m12, m22];
    for _sweep in 0..6 {
        let mut rotated = false;
        for k in 0..3usize {
            let p = if k == 2 { 1 } else { 0 };
            let q = if k >= 1 { 2 } else { 1 };
            let r = 3 - p - q;
            let apq = a[3 * p + q];
            let (dp, dq) = (a[3 * p + p].abs(), a[3 * q + q].abs());
            let scale = if dp > dq { dp } else { dq };
            // (a NaN entry rotates: it spreads, as it would through every sweep)
            if apq != R::ZERO && scale + apq.abs() != scale {
                rotated = true;
                let theta = (a[3 * q + q] - a[3 * p + p]) / (R::from_f64(2.0) * apq);
                let sgn = if theta >= R::ZERO { R::ONE } else { -R::ONE };
                let t = sgn / (theta.abs() + (theta * theta + R::ONE).sqrt());
                let c = R::ONE / (t * t + R::ONE).sqrt();
                let s = t * c;
                let arp = a[3 * r + p];
                let arq = a[3 * r + q];
                a[3 * p + p] = a[3 * p + p] - t * apq;
                a[3 * q + q] = a[3 * q + q] + t * apq;
                a[3 * p + q] = R::ZERO;
                a[3 * q + p] = R::ZERO;
                let nrp = c * arp - s * arq;
                let nrq = s * arp + c * arq;
                a[3 * r + p] = nrp;
                a[3 * p + r] = nrp;
                a[3 * r + q] = nrq;
                a[3 * q + r] = nrq;
            }
        }
        if !rotated {
            break;
        }
    }
    [a[0], a[4], a[8]]
}
