//! Wootters concurrence of a two-qubit state, by a numerically stable route.
//!
//! Definition: C = max(0, r1 - r2 - r3 - r4), r_i (decreasing) the square roots of the
//! eigenvalues of rho rho~, rho~ = S rho* S, S = sy (x) sy.
//!
//! Stable route: write rho = X X^+ with X = V diag(sqrt(max(lam, 0))) from the Hermitian
//! eigendecomposition rho = V diag(lam) V^+. Then rho rho~ = X X^+ S X* X^T S has the same
//! nonzero eigenvalues as X^+ S X* X^T S X = M^+ M with M = X^T S X (complex symmetric), so
//! the r_i are the singular values of M. Unlike the eigenvalues of rho rho~, which near a
//! pure state are O(1e-32) quantities computed with O(1e-16) absolute error (so
//! sqrt -> 1e-8), the singular values of M carry an absolute error of O(1e-16).

use crate::linalg::{CMat, C64};
use nalgebra::{Matrix4, Vector4};

/// S = sy (x) sy. Real; the same for the textbook sigma_y and the project's (its negative).
/// In the basis |gg>, |ge>, |eg>, |ee>: S = antidiag(-1, 1, 1, -1).
pub fn sy_sy() -> Matrix4<C64> {
    let (o, z) = (C64::new(1.0, 0.0), C64::new(0.0, 0.0));
    Matrix4::new(z, z, z, -o, z, z, o, z, z, o, z, z, -o, z, z, z)
}

/// Copy a 4x4 dynamic matrix into a fixed-size one.
pub(crate) fn to_m4(rho4: &CMat) -> Matrix4<C64> {
    assert!(rho4.nrows() == 4 && rho4.ncols() == 4, "expected a 4x4 two-qubit matrix, got {}x{}", rho4.nrows(), rho4.ncols());
    Matrix4::from_fn(|i, j| rho4[(i, j)])
}

/// The Wootters numbers r1 >= r2 >= r3 >= r4 >= 0 (stable route, see the module doc).
/// Slightly negative eigenvalues of rho (rounding) are set to zero first.
pub fn wootters_r(rho4: &CMat) -> [f64; 4] {
    let m = to_m4(rho4);
    let h = (m + m.adjoint()) * C64::new(0.5, 0.0);
    let eig = h.symmetric_eigen();
    let scale = Vector4::from_fn(|i, _| C64::new(eig.eigenvalues[i].max(0.0).sqrt(), 0.0));
    // X = V diag(sqrt(lam)): scale column k of V by sqrt(lam_k).
    let x = Matrix4::from_fn(|i, k| eig.eigenvectors[(i, k)] * scale[k]);
    let mm = x.transpose() * sy_sy() * x;
    let sv = mm.singular_values();
    let mut r = [sv[0], sv[1], sv[2], sv[3]];
    r.sort_by(|a, b| b.total_cmp(a));
    r
}

/// Wootters concurrence max(0, r1 - r2 - r3 - r4) of a 4x4 two-qubit state.
pub fn concurrence(rho4: &CMat) -> f64 {
    let r = wootters_r(rho4);
    (r[0] - r[1] - r[2] - r[3]).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Textbook route: r_i = sqrt of the eigenvalues of rho rho~ (complex Schur of a
    /// non-Hermitian product). Loses accuracy near rank-deficient states.
    fn wootters_r_naive(rho4: &CMat) -> [f64; 4] {
        let s = kron(&sigma_y(), &sigma_y());
        let tilde = &s * rho4.map(|z| z.conj()) * &s;
        let ev = (rho4 * tilde).eigenvalues().expect("complex Schur gives all eigenvalues");
        let mut r: Vec<f64> = ev.iter().map(|z| z.re.max(0.0).sqrt()).collect();
        r.sort_by(|a, b| b.total_cmp(a));
        [r[0], r[1], r[2], r[3]]
    }

    fn ket(v: [C64; 4]) -> CMat {
        projector(&v)
    }

    fn random_ket(rng: &mut ChaCha8Rng) -> [C64; 4] {
        let mut v = [ZERO; 4];
        for z in v.iter_mut() {
            *z = c(rng.random::<f64>() - 0.5, rng.random::<f64>() - 0.5);
        }
        let n = v.iter().map(|z| z.norm_sqr()).sum::<f64>().sqrt();
        v.map(|z| z / n)
    }

    /// Hilbert-Schmidt random mixed state G G^+ / Tr, G with complex entries.
    fn random_mixed(rng: &mut ChaCha8Rng) -> CMat {
        let g = CMat::from_fn(4, 4, |_, _| c(rng.random::<f64>() - 0.5, rng.random::<f64>() - 0.5));
        let r = &g * g.adjoint();
        let t = r.trace();
        r / t
    }

    #[test]
    fn sy_sy_matches_kron_of_project_sigma_y() {
        let s = kron(&sigma_y(), &sigma_y());
        let f = sy_sy();
        for i in 0..4 {
            for j in 0..4 {
                assert_eq!(s[(i, j)], f[(i, j)]);
            }
        }
    }

    #[test]
    fn bell_states_have_concurrence_one() {
        let h = c(std::f64::consts::FRAC_1_SQRT_2, 0.0);
        for v in [[h, ZERO, ZERO, h], [h, ZERO, ZERO, -h], [ZERO, h, h, ZERO], [ZERO, h, -h, ZERO], [ZERO, h, h * I, ZERO]] {
            let cc = concurrence(&ket(v));
            assert!((cc - 1.0).abs() < 1e-14, "{cc}");
        }
    }

    #[test]
    fn product_states_have_concurrence_zero() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..20 {
            let a = [c(rng.random::<f64>(), rng.random::<f64>() - 0.5), c(rng.random::<f64>(), 0.3)];
            let b = [c(rng.random::<f64>() - 0.5, 0.1), c(rng.random::<f64>(), rng.random::<f64>())];
            let v = [a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]];
            let n = v.iter().map(|z| z.norm_sqr()).sum::<f64>().sqrt();
            assert!(concurrence(&ket(v.map(|z| z / n))) < 1e-12);
        }
        // mixed product state
        let rc = CMat::from_row_slice(2, 2, &[c(0.6, 0.0), c(0.1, 0.2), c(0.1, -0.2), c(0.4, 0.0)]);
        let rb = CMat::from_row_slice(2, 2, &[c(0.3, 0.0), c(0.0, -0.3), c(0.0, 0.3), c(0.7, 0.0)]);
        assert_eq!(concurrence(&kron(&rc, &rb)), 0.0);
    }

    #[test]
    fn pure_states_match_two_abs_ad_minus_bc() {
        // psi = a|gg> + b|ge> + c|eg> + d|ee>: C = 2|ad - bc|.
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for _ in 0..200 {
            let v = random_ket(&mut rng);
            let want = 2.0 * (v[0] * v[3] - v[1] * v[2]).norm();
            let got = concurrence(&ket(v));
            assert!((got - want).abs() < 1e-12, "stable {got} vs exact {want}");
        }
    }

    #[test]
    fn nearly_pure_state_is_accurate_to_1e12() {
        // (1 - e)|psi><psi| + e I/4 with e = 1e-14: C = 2|ad - bc| up to O(e).
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut worst_naive: f64 = 0.0;
        for _ in 0..50 {
            let v = random_ket(&mut rng);
            let want = 2.0 * (v[0] * v[3] - v[1] * v[2]).norm();
            let e = 1e-14;
            let rho = ket(v) * c(1.0 - e, 0.0) + identity(4) * c(e / 4.0, 0.0);
            let r = wootters_r(&rho);
            let got = (r[0] - r[1] - r[2] - r[3]).max(0.0);
            assert!((got - want).abs() < 1e-12, "stable {got} vs exact {want}");
            let rn = wootters_r_naive(&rho);
            worst_naive = worst_naive.max(((rn[0] - rn[1] - rn[2] - rn[3]).max(0.0) - want).abs());
        }
        // Not asserted (platform dependent); documents why the stable route exists.
        eprintln!("naive route, worst error on nearly pure states: {worst_naive:.2e}");
    }

    #[test]
    fn werner_states() {
        // p |Bell><Bell| + (1 - p) I/4: C = max(0, (3p - 1)/2).
        let h = c(std::f64::consts::FRAC_1_SQRT_2, 0.0);
        for bell in [[h, ZERO, ZERO, h], [ZERO, h, -h, ZERO]] {
            for k in 0..=20 {
                let p = k as f64 / 20.0;
                let rho = ket(bell) * c(p, 0.0) + identity(4) * c((1.0 - p) / 4.0, 0.0);
                let want = ((3.0 * p - 1.0) / 2.0).max(0.0);
                assert!((concurrence(&rho) - want).abs() < 1e-13, "p = {p}");
            }
        }
    }

    #[test]
    fn stable_and_naive_routes_agree_on_mixed_states() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut entangled = 0;
        for k in 0..300 {
            // alternate plain random mixed states with entangled mixtures q|psi><psi| + (1-q) sigma
            let rho = if k % 2 == 0 {
                random_mixed(&mut rng)
            } else {
                let q = 0.5 + 0.45 * rng.random::<f64>();
                ket(random_ket(&mut rng)) * c(q, 0.0) + random_mixed(&mut rng) * c(1.0 - q, 0.0)
            };
            let (a, b) = (wootters_r(&rho), wootters_r_naive(&rho));
            for i in 0..4 {
                assert!((a[i] - b[i]).abs() < 1e-10, "r{i}: stable {} vs naive {}", a[i], b[i]);
            }
            if concurrence(&rho) > 0.05 {
                entangled += 1;
            }
        }
        assert!(entangled > 50, "the sample should contain entangled states, got {entangled}");
    }
}
