//! Correlation measures of a two-qubit state (charger = left factor, battery = right).
//!
//! T (3x3, real): t_ij = Tr(rho sigma_i (x) sigma_j), i (charger), j (battery) in x, y, z.
//! steering_f3 = Tr(T T^T) - 1;  bell_chsh = 2 sqrt(u1 + u2) - 2, u1 >= u2 the two largest
//! eigenvalues of T^T T. LOO steering (paper 002, Yu and Liu's local orthogonal observables):
//! C_ij = Tr[(G_i (x) G_j)(rho - rho_c (x) rho_b)], G = {I, sx, sy, sz}/sqrt(2) (real 4x4),
//! steering_ab = ||C||_tr - sqrt((2 - Tr rho_c^2)(1 - Tr rho_b^2)), steering_ba with c <-> b.
//! None of these is clamped.

use crate::linalg::{kron, re_trace_product, reduced_battery, reduced_charger, CMat, C64};
use nalgebra::{Matrix3, Matrix4};

const O: C64 = C64::new(0.0, 0.0);
const L: C64 = C64::new(1.0, 0.0);
const IM: C64 = C64::new(0.0, 1.0);

/// {I, sx, sy, sz} as 2x2 arrays, project convention (sy = -i(s+ - s-) = [[0, i], [-i, 0]],
/// sz = diag(-1, 1) in the (g, e) basis); checked against `linalg::pauli` in the tests.
pub const PAULI: [[[C64; 2]; 2]; 4] = [[[L, O], [O, L]], [[O, L], [L, O]], [[O, IM], [C64::new(0.0, -1.0), O]], [[C64::new(-1.0, 0.0), O], [O, L]]];

/// Tr[(P_i (x) P_j) m] for a 4x4 matrix m, P = {I, sx, sy, sz}, without forming the Kronecker product:
/// (A (x) B)[(2a + b), (2a' + b')] = A[a][a'] B[b][b'].
pub fn pauli_expectation(m: &CMat, i: usize, j: usize) -> C64 {
    let (a, b) = (&PAULI[i], &PAULI[j]);
    let mut s = O;
    for r1 in 0..2 {
        for c1 in 0..2 {
            if a[r1][c1] == O {
                continue;
            }
            for r2 in 0..2 {
                for c2 in 0..2 {
                    s += a[r1][c1] * b[r2][c2] * m[(2 * c1 + c2, 2 * r1 + r2)];
                }
            }
        }
    }
    s
}

/// T with t_ij = Tr(rho sigma_i (x) sigma_j), i, j in x, y, z; row i = charger.
pub fn correlation_matrix(rho4: &CMat) -> Matrix3<f64> {
    Matrix3::from_fn(|i, j| pauli_expectation(rho4, i + 1, j + 1).re)
}

/// Tr(T T^T) - 1 (= sum_ij t_ij^2 - 1).
pub fn steering_f3(rho4: &CMat) -> f64 {
    correlation_matrix(rho4).norm_squared() - 1.0
}

/// 2 sqrt(u1 + u2) - 2, u1 >= u2 the two largest eigenvalues of T^T T (Horodecki CHSH value
/// 2 sqrt(u1 + u2), shifted so that a positive value violates the CHSH inequality).
pub fn bell_chsh(rho4: &CMat) -> f64 {
    let t = correlation_matrix(rho4);
    let mut u: Vec<f64> = (t.transpose() * t).symmetric_eigenvalues().iter().copied().collect();
    u.sort_by(|a, b| b.total_cmp(a));
    2.0 * (u[0] + u[1]).sqrt() - 2.0
}

/// The real 4x4 LOO matrix C_ij = Tr[(G_i (x) G_j)(rho - rho_c (x) rho_b)], G = P/sqrt(2).
pub fn loo_matrix(rho4: &CMat) -> Matrix4<f64> {
    let d = rho4 - kron(&reduced_charger(rho4), &reduced_battery(rho4));
    // G_i (x) G_j = (P_i (x) P_j)/2; C is real for Hermitian rho (Re drops rounding).
    Matrix4::from_fn(|i, j| 0.5 * pauli_expectation(&d, i, j).re)
}

/// LOO steering (charger -> battery, battery -> charger):
/// (||C||_tr - sqrt((2 - Tr rho_c^2)(1 - Tr rho_b^2)), ||C||_tr - sqrt((2 - Tr rho_b^2)(1 - Tr rho_c^2))),
/// the radicands floored at 0 against rounding (purity 1 + 1e-16).
pub fn steering_loo(rho4: &CMat) -> (f64, f64) {
    let norm_tr: f64 = loo_matrix(rho4).singular_values().sum();
    let (rc, rb) = (reduced_charger(rho4), reduced_battery(rho4));
    let (pc, pb) = (re_trace_product(&rc, &rc), re_trace_product(&rb, &rb));
    // Tr rho^2 <= 1 for a state, but rounds to 1 + 1e-16 on pure states: the radicands are
    // floored at 0 so that rounding gives a value ~1e-8 off instead of NaN (the measure itself
    // is not clamped).
    let bound = |x: f64, y: f64| ((2.0 - x) * (1.0 - y)).max(0.0).sqrt();
    (norm_tr - bound(pc, pb), norm_tr - bound(pb, pc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::*;

    const S2: f64 = std::f64::consts::SQRT_2;

    fn bell(k: usize) -> CMat {
        let h = c(std::f64::consts::FRAC_1_SQRT_2, 0.0);
        let v = match k {
            0 => [h, ZERO, ZERO, h],
            1 => [h, ZERO, ZERO, -h],
            2 => [ZERO, h, h, ZERO],
            _ => [ZERO, h, -h, ZERO],
        };
        projector(&v)
    }

    #[test]
    fn pauli_table_matches_linalg() {
        for k in 0..4 {
            let p = pauli(k);
            for r in 0..2 {
                for s in 0..2 {
                    assert_eq!(PAULI[k][r][s], p[(r, s)], "pauli {k} ({r},{s})");
                }
            }
        }
    }

    #[test]
    fn pauli_expectation_matches_kron_trace() {
        let m = CMat::from_fn(4, 4, |i, j| c(i as f64 + 0.3 * j as f64, (i * j) as f64 * 0.1 - 0.2));
        for i in 0..4 {
            for j in 0..4 {
                let want = trace_product(&kron(&pauli(i), &pauli(j)), &m);
                assert!((pauli_expectation(&m, i, j) - want).norm() < 1e-13, "({i},{j})");
            }
        }
    }

    #[test]
    fn bell_states() {
        // |Phi+> = (|gg> + |ee>)/sqrt2: t_xx = 1; with the project sy (minus textbook) t_yy = -1
        // just as textbook; t_zz = 1.
        let t = correlation_matrix(&bell(0));
        assert!((t - Matrix3::from_diagonal(&nalgebra::Vector3::new(1.0, -1.0, 1.0))).norm() < 1e-14, "{t}");
        let t = correlation_matrix(&bell(3)); // singlet: -I
        assert!((t + Matrix3::identity()).norm() < 1e-14, "{t}");
        for k in 0..4 {
            let rho = bell(k);
            assert!((steering_f3(&rho) - 2.0).abs() < 1e-14);
            assert!((bell_chsh(&rho) - (2.0 * S2 - 2.0)).abs() < 1e-14);
            let (ab, ba) = steering_loo(&rho);
            // ||C||_tr = 3/2, purities 1/2: 3/2 - sqrt(3)/2
            let want = 1.5 - 3f64.sqrt() / 2.0;
            assert!((ab - want).abs() < 1e-14 && (ba - want).abs() < 1e-14, "{ab} {ba}");
        }
    }

    #[test]
    fn werner_states() {
        // p singlet + (1-p) I/4: T = -p I, f3 = 3p^2 - 1, chsh = 2 sqrt2 p - 2,
        // LOO steering 3p/2 - sqrt(3)/2 (positive iff p > 1/sqrt3).
        for k in 0..=10 {
            let p = k as f64 / 10.0;
            let rho = bell(3) * c(p, 0.0) + identity(4) * c((1.0 - p) / 4.0, 0.0);
            assert!((steering_f3(&rho) - (3.0 * p * p - 1.0)).abs() < 1e-14);
            assert!((bell_chsh(&rho) - (2.0 * S2 * p - 2.0)).abs() < 1e-14);
            let (ab, ba) = steering_loo(&rho);
            let want = 1.5 * p - 3f64.sqrt() / 2.0;
            assert!((ab - want).abs() < 1e-14 && (ba - want).abs() < 1e-14, "p = {p}: {ab} {ba}");
        }
    }

    #[test]
    fn product_states_do_not_steer() {
        let rc = CMat::from_row_slice(2, 2, &[c(0.6, 0.0), c(0.1, 0.2), c(0.1, -0.2), c(0.4, 0.0)]);
        let rb = CMat::from_row_slice(2, 2, &[c(0.3, 0.0), c(0.0, -0.3), c(0.0, 0.3), c(0.7, 0.0)]);
        let rho = kron(&rc, &rb);
        assert!(loo_matrix(&rho).norm() < 1e-15);
        let (ab, ba) = steering_loo(&rho);
        assert!(ab < 0.0 && ba < 0.0, "{ab} {ba}");
        // pure product: C = 0 and both purities are 1, so both are 0 up to sqrt(rounding of
        // 1 - Tr rho^2) ~ 1e-8 (here Tr rho_b^2 rounds to 1 + 2.2e-16, which gave NaN before
        // the radicand floor); Tr T T^T = 1.
        let g = projector(&[ONE, ZERO]);
        let plus = projector(&[c(0.6, 0.0), c(0.0, 0.8)]);
        let rho = kron(&g, &plus);
        let (ab, ba) = steering_loo(&rho);
        assert!(ab <= 1e-15 && ba <= 1e-15 && ab.abs() < 1e-7 && ba.abs() < 1e-7, "{ab} {ba}");
        assert!(steering_f3(&rho).abs() < 1e-14);
        assert!(bell_chsh(&rho).abs() < 1e-14);
    }

    #[test]
    fn steering_is_asymmetric_for_asymmetric_states() {
        // rho = 0.7 |Phi+><Phi+| + 0.3 (I/2 (x) |g><g|), charger left. By hand: rho_c = I/2,
        // rho_b = diag(0.65, 0.35) in (g, e); <sx sx> = 0.7, <sy sy> = -0.7 (project sy),
        // <sz sz> = 0.7, <I sz> = -0.3, the rest 0 but <I I> = 1. So
        // C = diag(0, 0.35, -0.35, 0.35) (C_03 = (-0.3 - 1 (-0.3))/2 = 0), ||C||_tr = 1.05,
        // Tr rho_c^2 = 1/2, Tr rho_b^2 = 0.545, and
        //   steering_ab = 1.05 - sqrt((2 - 1/2)(1 - 0.545)) = 1.05 - sqrt(0.6825),
        //   steering_ba = 1.05 - sqrt((2 - 0.545)(1 - 1/2)) = 1.05 - sqrt(0.7275).
        let g = CMat::from_row_slice(2, 2, &[ONE, ZERO, ZERO, ZERO]);
        let phi = CMat::from_fn(4, 4, |r, s| if (r == 0 || r == 3) && (s == 0 || s == 3) { c(0.5, 0.0) } else { ZERO });
        let half_i = CMat::from_row_slice(2, 2, &[c(0.5, 0.0), ZERO, ZERO, c(0.5, 0.0)]);
        let rho = phi * c(0.7, 0.0) + kron(&half_i, &g) * c(0.3, 0.0);
        // partial traces by index: rho[(2a + b), (2a' + b')]
        let rc = CMat::from_fn(2, 2, |a, a2| rho[(2 * a, 2 * a2)] + rho[(2 * a + 1, 2 * a2 + 1)]);
        let rb = CMat::from_fn(2, 2, |b, b2| rho[(b, b2)] + rho[(2 + b, 2 + b2)]);
        let purity = |m: &CMat| (m * m).trace().re;
        let (pc, pb) = (purity(&rc), purity(&rb));
        assert!((pc - 0.5).abs() < 1e-15 && (pb - 0.545).abs() < 1e-15, "{pc} {pb}");
        // C_ij = Tr[(G_i (x) G_j)(rho - rho_c (x) rho_b)], G = P/sqrt(2), with explicit matrices
        let d = &rho - kron(&rc, &rb);
        let mut cm = Matrix4::zeros();
        for i in 0..4 {
            for j in 0..4 {
                let gg = kron(&(pauli(i) * c(1.0 / S2, 0.0)), &(pauli(j) * c(1.0 / S2, 0.0)));
                let t = (gg * &d).trace();
                assert!(t.im.abs() < 1e-15);
                cm[(i, j)] = t.re;
            }
        }
        let by_hand = Matrix4::from_diagonal(&nalgebra::Vector4::new(0.0, 0.35, -0.35, 0.35));
        assert!((cm - by_hand).norm() < 1e-15, "{cm}");
        assert!((loo_matrix(&rho) - cm).norm() < 1e-15, "{}", loo_matrix(&rho));
        let norm_tr: f64 = cm.singular_values().sum();
        let want_ab = norm_tr - ((2.0 - pc) * (1.0 - pb)).sqrt();
        let want_ba = norm_tr - ((2.0 - pb) * (1.0 - pc)).sqrt();
        assert!((want_ab - (1.05 - 0.6825f64.sqrt())).abs() < 1e-14 && (want_ba - (1.05 - 0.7275f64.sqrt())).abs() < 1e-14);
        let (ab, ba) = steering_loo(&rho);
        assert!((ab - want_ab).abs() < 1e-14, "steering_ab {ab} vs {want_ab}");
        assert!((ba - want_ba).abs() < 1e-14, "steering_ba {ba} vs {want_ba}");
        assert!(ab - ba > 1e-2, "{ab} {ba}");
    }
}
