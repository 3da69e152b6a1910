//! Coherence-type measures: l1 coherence and imaginarity (two-qubit state, computational
//! basis), battery and charger texture, purity, battery von Neumann entropy, <s->.

use super::energy::eigvals_asc;
use crate::linalg::{c, re_trace_product, CMat, C64};

/// sum_{i != j} |rho_ij|
pub fn coherence_l1(rho: &CMat) -> f64 {
    off_diagonal_sum(rho, |z| z.norm())
}

/// sum_{i != j} |Im rho_ij|
pub fn imaginarity_l1(rho: &CMat) -> f64 {
    off_diagonal_sum(rho, |z| z.im.abs())
}

fn off_diagonal_sum(rho: &CMat, f: impl Fn(&crate::linalg::C64) -> f64) -> f64 {
    let n = rho.nrows();
    let mut s = 0.0;
    for i in 0..n {
        for j in 0..n {
            if i != j {
                s += f(&rho[(i, j)]);
            }
        }
    }
    s
}

/// (1/2) ||rho_b - |f><f| ||_tr, |f> = (|0> + |1>)/sqrt(2), ||A||_tr = sum |eigenvalues| (A Hermitian).
pub fn texture(rho_b: &CMat) -> f64 {
    let half = c(0.5, 0.0);
    let f = CMat::from_element(2, 2, half);
    let ev = eigvals_asc(&(rho_b - f));
    0.5 * ev.iter().map(|x| x.abs()).sum::<f64>()
}

/// <s-> = Tr(rho s-) = <e|rho|g> = rho[(e, g)] of a qubit state, s- = |g><e| (basis (g, e)).
pub fn sigma_minus(rho: &CMat) -> C64 {
    rho[(1, 0)]
}

/// Tr rho^2
pub fn purity(rho: &CMat) -> f64 {
    re_trace_product(rho, rho)
}

/// -Tr rho log2 rho in bits, with 0 log 0 = 0. Eigenvalues <= 0 (rounding on a rank-deficient
/// state) contribute 0.
pub fn entropy_bits(rho: &CMat) -> f64 {
    // 0 log 0 = 0; a NaN eigenvalue stays NaN (never dropped as if it were 0). (+ 0.0: a
    // state whose one positive eigenvalue is 1 gives -(1 log2 1) = -0, which the series and
    // stats showed as -0.0.)
    eigvals_asc(rho).iter().filter(|&&l| !(l <= 0.0)).map(|&l| -l * l.log2()).sum::<f64>() + 0.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::*;

    #[test]
    fn l1_coherence_and_imaginarity() {
        // |psi> = (|gg> + i|ee>)/sqrt2: off-diagonal entries +-i/2 -> l1 = 1, imaginarity = 1.
        let h = std::f64::consts::FRAC_1_SQRT_2;
        let rho = projector(&[c(h, 0.0), ZERO, ZERO, c(0.0, h)]);
        assert!((coherence_l1(&rho) - 1.0).abs() < 1e-15);
        assert!((imaginarity_l1(&rho) - 1.0).abs() < 1e-15);
        // real amplitudes: no imaginarity; uniform superposition: l1 = d - 1 = 3
        let rho = projector(&[c(0.5, 0.0); 4]);
        assert!((coherence_l1(&rho) - 3.0).abs() < 1e-15);
        assert_eq!(imaginarity_l1(&rho), 0.0);
        // diagonal state: none
        assert_eq!(coherence_l1(&(identity(4) * c(0.25, 0.0))), 0.0);
    }

    #[test]
    fn texture_of_simple_states() {
        let h = std::f64::consts::FRAC_1_SQRT_2;
        // |+>: 0. |g>, |e>, |->: trace distance of pure states sqrt(1 - |<f|psi>|^2) = 1/sqrt2, 1/sqrt2, 1.
        assert!(texture(&projector(&[c(h, 0.0), c(h, 0.0)])) < 1e-15);
        assert!((texture(&projector(&[ONE, ZERO])) - h).abs() < 1e-15);
        assert!((texture(&projector(&[ZERO, ONE])) - h).abs() < 1e-15);
        assert!((texture(&projector(&[c(h, 0.0), c(-h, 0.0)])) - 1.0).abs() < 1e-15);
        // maximally mixed: I/2 - |f><f| has eigenvalues +-1/2 -> 1/2
        assert!((texture(&(identity(2) * c(0.5, 0.0))) - 0.5).abs() < 1e-15);
    }

    #[test]
    fn purity_and_entropy() {
        assert!((purity(&(identity(4) * c(0.25, 0.0))) - 0.25).abs() < 1e-15);
        assert!((purity(&projector(&[c(0.6, 0.0), ZERO, c(0.0, 0.8), ZERO])) - 1.0).abs() < 1e-15);
        assert!((entropy_bits(&(identity(2) * c(0.5, 0.0))) - 1.0).abs() < 1e-15);
        assert_eq!(entropy_bits(&projector(&[ONE, ZERO])).to_bits(), 0.0f64.to_bits(), "a pure state's entropy is +0");
        // binary entropy of p = 0.2 in a rotated basis
        let p: f64 = 0.2;
        let hb = -p * p.log2() - (1.0 - p) * (1.0 - p).log2();
        let rho = CMat::from_row_slice(2, 2, &[c(0.5, 0.0), c(0.0, 0.3), c(0.0, -0.3), c(0.5, 0.0)]); // eigenvalues 0.2, 0.8
        assert!((entropy_bits(&rho) - hb).abs() < 1e-14);
        // general-d route (4x4)
        let rho4 = CMat::from_diagonal(&nalgebra::DVector::from_vec(vec![c(0.5, 0.0), c(0.25, 0.0), c(0.25, 0.0), ZERO]));
        assert!((entropy_bits(&rho4) - 1.5).abs() < 1e-14);
    }
}
