//! Energy, ergotropy, antiergotropy, capacity and energy variance of a state rho against a
//! Hamiltonian H (any dimension d).
//!
//! With lam the eigenvalues of rho and eps those of H, both ascending:
//!   passive energy  E_p = sum_i eps_i lam_{d-1-i}   (largest population in the lowest level)
//!   active energy   E_a = sum_i eps_i lam_i         (largest population in the highest level)
//!   ergotropy       = Tr(rho H) - E_p  (>= 0)
//!   antiergotropy   = Tr(rho H) - E_a  (<= 0)
//!   capacity        = E_a - E_p = sum_i eps_i (lam_i - lam_{d-1-i}) = ergotropy - antiergotropy

use crate::linalg::{eigvals_hermitian, re_trace_product, CMat};

/// Tr(rho H) (real part; exact for Hermitian rho and H).
pub fn energy(rho: &CMat, h: &CMat) -> f64 {
    re_trace_product(rho, h)
}

/// Eigenvalues of a 2x2 Hermitian matrix, ascending, in closed form:
/// m = [[a, b], [b*, d]] -> (a + d)/2 -+ sqrt(((a - d)/2)^2 + |b|^2).
/// Only the Hermitian part of m is used.
pub fn eigvals_2x2(m: &CMat) -> [f64; 2] {
    debug_assert!(m.nrows() == 2 && m.ncols() == 2);
    let a = m[(0, 0)].re;
    let d = m[(1, 1)].re;
    let b = (m[(0, 1)] + m[(1, 0)].conj()) * 0.5;
    let mean = 0.5 * (a + d);
    let r = (0.5 * (a - d)).hypot(b.norm());
    [mean - r, mean + r]
}

/// Eigenvalues of a Hermitian matrix, ascending (closed form for 2x2, eigen-solver otherwise).
pub fn eigvals_asc(m: &CMat) -> Vec<f64> {
    if m.nrows() == 2 {
        eigvals_2x2(m).to_vec()
    } else {
        eigvals_hermitian(m)
    }
}

/// sum_i eps_i lam_{d-1-i}: energy of the passive state with the spectrum of rho.
pub fn passive_energy(rho: &CMat, h: &CMat) -> f64 {
    let (lam, eps) = (eigvals_asc(rho), eigvals_asc(h));
    let d = lam.len();
    (0..d).map(|i| eps[i] * lam[d - 1 - i]).sum()
}

/// sum_i eps_i lam_i: energy of the most active state with the spectrum of rho.
pub fn active_energy(rho: &CMat, h: &CMat) -> f64 {
    let (lam, eps) = (eigvals_asc(rho), eigvals_asc(h));
    lam.iter().zip(&eps).map(|(l, e)| l * e).sum()
}

/// Tr(rho H) - sum_i eps_i lam_{d-1-i}
pub fn ergotropy(rho: &CMat, h: &CMat) -> f64 {
    energy(rho, h) - passive_energy(rho, h)
}

/// Tr(rho H) - sum_i eps_i lam_i (<= 0)
pub fn antiergotropy(rho: &CMat, h: &CMat) -> f64 {
    energy(rho, h) - active_energy(rho, h)
}

/// sum_i eps_i (lam_i - lam_{d-1-i}) (= ergotropy - antiergotropy), in one sum.
pub fn capacity(rho: &CMat, h: &CMat) -> f64 {
    capacity_from_spectra(&eigvals_asc(rho), &eigvals_asc(h))
}

/// sum_i eps_i (lam_i - lam_{d-1-i}) from the ascending spectra of rho (lam) and H (eps).
pub fn capacity_from_spectra(lam: &[f64], eps: &[f64]) -> f64 {
    let d = lam.len();
    (0..d).map(|i| eps[i] * (lam[i] - lam[d - 1 - i])).sum()
}

/// Tr(rho H^2) - Tr(rho H)^2
pub fn variance(rho: &CMat, h: &CMat) -> f64 {
    let e = energy(rho, h);
    re_trace_product(rho, &(h * h)) - e * e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::*;

    /// rho = (I + r . sigma)/2 in the project convention.
    fn bloch(r: [f64; 3]) -> CMat {
        (identity(2) + sigma_x() * c(r[0], 0.0) + sigma_y() * c(r[1], 0.0) + sigma_z() * c(r[2], 0.0)) * c(0.5, 0.0)
    }

    /// A fixed 4x4 unitary (eigenvectors of a generic Hermitian matrix).
    fn some_unitary() -> CMat {
        let h = CMat::from_fn(4, 4, |i, j| c((i + 2 * j) as f64 * 0.3 - 0.7, (i as f64 - j as f64) * 0.45));
        hermitian_part(&h).symmetric_eigen().eigenvectors
    }

    #[test]
    fn closed_form_2x2_eigenvalues_match_solver() {
        let m = CMat::from_row_slice(2, 2, &[c(0.3, 0.0), c(-0.2, 0.7), c(-0.2, -0.7), c(-1.1, 0.0)]);
        let a = eigvals_2x2(&m);
        let b = eigvals_hermitian(&m);
        assert!((a[0] - b[0]).abs() < 1e-14 && (a[1] - b[1]).abs() < 1e-14, "{a:?} vs {b:?}");
    }

    #[test]
    fn qubit_ergotropy_matches_bloch_closed_form() {
        // H = w sz, rho = (I + r.sigma)/2: Tr(rho H) = w r_z, lam = (1 -+ |r|)/2, so
        // ergotropy = w (r_z + |r|), antiergotropy = w (r_z - |r|), capacity = 2 w |r|.
        let w = 1.7;
        let h = sigma_z() * c(w, 0.0);
        for r in [[0.3, -0.4, 0.5], [0.0, 0.0, -0.9], [0.0, 0.0, 0.9], [0.6, 0.8, 0.0], [0.1, 0.2, -0.3]] {
            let rho = bloch(r);
            let n = (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]).sqrt();
            assert!((energy(&rho, &h) - w * r[2]).abs() < 1e-14);
            assert!((ergotropy(&rho, &h) - w * (r[2] + n)).abs() < 1e-14, "r = {r:?}");
            assert!((antiergotropy(&rho, &h) - w * (r[2] - n)).abs() < 1e-14, "r = {r:?}");
            assert!((capacity(&rho, &h) - 2.0 * w * n).abs() < 1e-14, "r = {r:?}");
            // variance of w sz: w^2 (1 - r_z^2)
            assert!((variance(&rho, &h) - w * w * (1.0 - r[2] * r[2])).abs() < 1e-14);
        }
    }

    #[test]
    fn ergotropy_of_excited_and_ground_qubit() {
        // H = w |e><e|: |e> stores w, all of it extractable; |g> stores nothing.
        let w = 0.8;
        let h = number_qubit() * c(w, 0.0);
        let e = projector(&[ZERO, ONE]);
        let g = projector(&[ONE, ZERO]);
        assert!((ergotropy(&e, &h) - w).abs() < 1e-15);
        assert!(ergotropy(&g, &h).abs() < 1e-15);
        assert!((antiergotropy(&g, &h) + w).abs() < 1e-15);
        assert!((capacity(&e, &h) - w).abs() < 1e-15 && (capacity(&g, &h) - w).abs() < 1e-15);
    }

    #[test]
    fn capacity_is_ergotropy_minus_antiergotropy_in_dimension_4() {
        let u = some_unitary();
        let h = CMat::from_fn(4, 4, |i, j| c(((i * 3 + j * 5) % 7) as f64 * 0.2, (i as f64 - j as f64) * 0.1));
        let h = hermitian_part(&h);
        let lam = [0.05, 0.15, 0.3, 0.5];
        let rho = &u * CMat::from_diagonal(&nalgebra::DVector::from_iterator(4, lam.iter().map(|&x| c(x, 0.0)))) * u.adjoint();
        let (erg, anti, cap) = (ergotropy(&rho, &h), antiergotropy(&rho, &h), capacity(&rho, &h));
        assert!(erg >= -1e-14 && anti <= 1e-14);
        assert!((cap - (erg - anti)).abs() < 1e-13);
        // general-d route vs direct formula with the solver's spectra
        let eps = eigvals_hermitian(&h);
        let want: f64 = (0..4).map(|i| eps[i] * (lam[i] - lam[3 - i])).sum();
        assert!((cap - want).abs() < 1e-13);
    }

    #[test]
    fn thermal_state_is_passive() {
        // rho = exp(-beta H)/Z in a non-diagonal basis: ergotropy 0, capacity sum eps_i (p_i - p_{d-1-i}).
        let u = some_unitary();
        let eps: [f64; 4] = [-1.3, -0.2, 0.4, 1.9];
        let beta: f64 = 0.7;
        let z: f64 = eps.iter().map(|e| (-beta * e).exp()).sum();
        let p: Vec<f64> = eps.iter().map(|e| (-beta * e).exp() / z).collect();
        let diag = |v: &[f64]| CMat::from_diagonal(&nalgebra::DVector::from_iterator(4, v.iter().map(|&x| c(x, 0.0))));
        let h = &u * diag(&eps) * u.adjoint();
        let rho = &u * diag(&p) * u.adjoint();
        assert!(ergotropy(&rho, &h).abs() < 1e-13, "thermal ergotropy {}", ergotropy(&rho, &h));
        // p is descending when eps is ascending
        let want: f64 = (0..4).map(|i| eps[i] * (p[3 - i] - p[i])).sum();
        assert!((capacity(&rho, &h) - want).abs() < 1e-13);
        // 2x2: capacity of a thermal qubit under w sz is 2 w tanh(beta w)
        let w = 0.9;
        let (pg, pe) = ((beta * w).exp(), (-beta * w).exp());
        let rho2 = CMat::from_row_slice(2, 2, &[c(pg / (pg + pe), 0.0), ZERO, ZERO, c(pe / (pg + pe), 0.0)]);
        let h2 = sigma_z() * c(w, 0.0);
        assert!(ergotropy(&rho2, &h2).abs() < 1e-15);
        assert!((capacity(&rho2, &h2) - 2.0 * w * (beta * w).tanh()).abs() < 1e-14);
    }
}
