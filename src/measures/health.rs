//! Diagnostics of the full (undephased) state: trace, positivity, and for the cavity layout
//! (index = q (N + 1) + n, q = 2 i_1 + i_2) the photon number and the top-Fock population,
//! read off the diagonal without building a^+ a.

use crate::linalg::{eigvals_hermitian, CMat, ONE};

/// |Tr rho - 1|
pub fn trace_error(rho: &CMat) -> f64 {
    (rho.trace() - ONE).norm()
}

/// Smallest eigenvalue of (the Hermitian part of) rho.
pub fn min_eigenvalue(rho: &CMat) -> f64 {
    eigvals_hermitian(rho)[0]
}

/// Tr(rho a^+ a) = sum_{q, n} n rho[q(N+1)+n, q(N+1)+n].
pub fn photon_number(rho: &CMat, n_fock: usize) -> f64 {
    let d = n_fock + 1;
    assert_eq!(rho.nrows(), 4 * d, "cavity state must be {0}x{0}", 4 * d);
    let mut s = 0.0;
    for q in 0..4 {
        for n in 1..d {
            s += n as f64 * rho[(q * d + n, q * d + n)].re;
        }
    }
    s
}

/// Population of the top Fock state |N>: sum_q rho[q(N+1)+N, q(N+1)+N].
pub fn fock_tail(rho: &CMat, n_fock: usize) -> f64 {
    let d = n_fock + 1;
    assert_eq!(rho.nrows(), 4 * d, "cavity state must be {0}x{0}", 4 * d);
    (0..4).map(|q| rho[(q * d + n_fock, q * d + n_fock)].re).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::*;
    use crate::model::cavity_cells::{annihilation, coherent_ket, product_state};

    #[test]
    fn photon_number_and_tail_match_operators() {
        let n = 6;
        let qubits = projector(&[c(0.6, 0.0), ZERO, c(0.0, 0.8), ZERO]);
        let alpha = c(0.9, -0.4);
        let rho = product_state(&qubits, alpha, n);
        let a = kron(&identity(4), &annihilation(n));
        let num = a.adjoint() * &a;
        assert!((photon_number(&rho, n) - re_trace_product(&rho, &num)).abs() < 1e-14);
        let mut top = vec![ZERO; n + 1];
        top[n] = ONE;
        let proj = kron(&identity(4), &projector(&top));
        assert!((fock_tail(&rho, n) - re_trace_product(&rho, &proj)).abs() < 1e-15);
        // and the coherent amplitudes directly
        let k = coherent_ket(alpha, n);
        assert!((fock_tail(&rho, n) - k[n].norm_sqr()).abs() < 1e-15);
    }

    #[test]
    fn trace_and_positivity() {
        let rho = CMat::from_diagonal(&nalgebra::DVector::from_vec(vec![c(0.7, 0.0), c(0.31, 0.0), c(-0.01, 0.0), ZERO]));
        assert!((trace_error(&rho) - 0.0).abs() < 1e-15);
        assert!((min_eigenvalue(&rho) + 0.01).abs() < 1e-15);
        let rho = identity(3) * c(0.34, 0.0);
        assert!((trace_error(&rho) - 0.02).abs() < 1e-15);
    }
}
