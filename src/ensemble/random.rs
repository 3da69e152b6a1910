//! Random states: Haar pure states, uniform Bloch-sphere chargers, and random mixed states
//! (Hilbert-Schmidt: G G^+ / Tr; Bures: (I + U) G G^+ (I + U)^+ / Tr, G Ginibre, U Haar).

use crate::error::{QbatError, Result};
use crate::linalg::*;
use rand::Rng;
use rand_distr::StandardNormal;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RandomKind {
    Haar,
    HaarCharger,
    Bloch,
    MixedHs,
    MixedBures,
}

impl RandomKind {
    pub const ALL: [RandomKind; 5] = [RandomKind::Haar, RandomKind::HaarCharger, RandomKind::Bloch, RandomKind::MixedHs, RandomKind::MixedBures];
    pub fn name(&self) -> &'static str {
        match self {
            RandomKind::Haar => "haar",
            RandomKind::HaarCharger => "haar-charger",
            RandomKind::Bloch => "bloch",
            RandomKind::MixedHs => "mixed-hs",
            RandomKind::MixedBures => "mixed-bures",
        }
    }
    pub fn from_name(s: &str) -> Result<RandomKind> {
        RandomKind::ALL.iter().copied().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<_> = RandomKind::ALL.iter().map(|k| k.name()).collect();
            QbatError::invalid("initial.random", format!("unknown random state '{s}'; known: {}", names.join(", ")))
        })
    }
}

fn gaussian_c(rng: &mut impl Rng) -> C64 {
    let re: f64 = rng.sample(StandardNormal);
    let im: f64 = rng.sample(StandardNormal);
    c(re, im)
}

/// Haar-random unit vector of C^d (normalised complex Gaussian).
pub fn haar_ket(d: usize, rng: &mut impl Rng) -> Vec<C64> {
    let v: Vec<C64> = (0..d).map(|_| gaussian_c(rng)).collect();
    let n = v.iter().map(|z| z.norm_sqr()).sum::<f64>().sqrt();
    v.into_iter().map(|z| z / n).collect()
}

fn ginibre(d: usize, rng: &mut impl Rng) -> CMat {
    CMat::from_fn(d, d, |_, _| gaussian_c(rng))
}

/// Haar unitary: QR of a Ginibre matrix with the phases of R's diagonal divided out.
pub fn haar_unitary(d: usize, rng: &mut impl Rng) -> CMat {
    let qr = ginibre(d, rng).qr();
    let (mut q, r) = qr.unpack();
    for j in 0..d {
        let rjj = r[(j, j)];
        let phase = if rjj.norm() > 0.0 { rjj / rjj.norm() } else { ONE };
        let mut col = q.column_mut(j);
        col *= phase;
    }
    q
}

/// A random two-qubit state (charger, battery) of the given kind, with the Bloch angles
/// of the charger when the kind draws them.
pub fn two_qubit_state(kind: RandomKind, rng: &mut impl Rng) -> (CMat, Option<(f64, f64)>) {
    match kind {
        RandomKind::Haar => (projector(&haar_ket(4, rng)), None),
        RandomKind::HaarCharger => {
            let ch = haar_ket(2, rng);
            // charger (x) |g>
            (projector(&[ch[0], ZERO, ch[1], ZERO]), None)
        }
        RandomKind::Bloch => {
            // uniform on the sphere: cos(theta) uniform in [-1, 1], phi uniform in [0, 2 pi)
            let u: f64 = rng.random();
            let v: f64 = rng.random();
            let theta = (1.0 - 2.0 * u).clamp(-1.0, 1.0).acos();
            let phi = 2.0 * std::f64::consts::PI * v;
            let psi = [c((theta / 2.0).cos(), 0.0), ZERO, C64::from_polar((theta / 2.0).sin(), phi), ZERO];
            (projector(&psi), Some((theta, phi)))
        }
        RandomKind::MixedHs => {
            let g = ginibre(4, rng);
            let r = &g * g.adjoint();
            let tr = r.trace();
            (r / tr, None)
        }
        RandomKind::MixedBures => {
            let g = ginibre(4, rng);
            let u = haar_unitary(4, rng);
            let a = (identity(4) + u) * g;
            let r = &a * a.adjoint();
            let tr = r.trace();
            (r / tr, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ensemble::state_rng;

    #[test]
    fn random_states_are_valid_density_matrices() {
        for kind in RandomKind::ALL {
            for m in 0..20 {
                let (rho, _) = two_qubit_state(kind, &mut state_rng(11, m));
                assert!((rho.trace() - ONE).norm() < 1e-12, "{kind:?}");
                assert!(hermiticity_error(&rho) < 1e-12);
                assert!(eigvals_hermitian(&rho)[0] > -1e-12);
            }
        }
    }

    #[test]
    fn member_streams_are_reproducible_and_distinct() {
        let (a, _) = two_qubit_state(RandomKind::Haar, &mut state_rng(5, 17));
        let (b, _) = two_qubit_state(RandomKind::Haar, &mut state_rng(5, 17));
        let (c2, _) = two_qubit_state(RandomKind::Haar, &mut state_rng(5, 18));
        assert_eq!(a, b);
        assert!(max_abs_diff(&a, &c2) > 1e-3);
    }

    #[test]
    fn haar_unitary_is_unitary() {
        let u = haar_unitary(4, &mut state_rng(1, 0));
        assert!(max_abs_diff(&(u.adjoint() * &u), &identity(4)) < 1e-12);
    }

    #[test]
    fn bloch_angles_are_uniform_on_the_sphere() {
        // <cos theta> = 0 and <cos^2 theta> = 1/3 for the uniform measure.
        let n = 20000;
        let (mut m1, mut m2) = (0.0, 0.0);
        for i in 0..n {
            let (_, ang) = two_qubit_state(RandomKind::Bloch, &mut state_rng(3, i));
            let ct = ang.unwrap().0.cos();
            m1 += ct;
            m2 += ct * ct;
        }
        m1 /= n as f64;
        m2 /= n as f64;
        assert!(m1.abs() < 0.02, "{m1}");
        assert!((m2 - 1.0 / 3.0).abs() < 0.02, "{m2}");
    }

    /// The sample mean of `xs` is within 5 of its standard errors (estimated from the sample)
    /// of `want`.
    fn assert_mean(what: &str, xs: &[f64], want: f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let se = (var / n).sqrt();
        assert!(mean.is_finite() && se > 0.0, "{what}: mean {mean}, standard error {se}");
        assert!((mean - want).abs() <= 5.0 * se, "{what}: mean {mean} vs {want} ({:.1} standard errors of {se:.2e})", (mean - want) / se);
    }

    fn purity(m: &CMat) -> f64 {
        (m * m).trace().re
    }

    const DRAWS: u64 = 20_000;

    /// Moments of the ensembles against their closed forms, d = dA dB = 4:
    /// - haar (a normalised complex Gaussian vector, i.e. Haar on C^2 (x) C^2): the reduced
    ///   state's mean purity is (dA + dB)/(dA dB + 1) = 4/5 (Lubkin);
    /// - mixed-hs (G G^+ / Tr, G a square d x d Ginibre matrix: the Hilbert-Schmidt measure):
    ///   E[Tr rho^2] = 2d/(d^2 + 1) = 8/17;
    /// - mixed-bures ((I + U) G G^+ (I + U)^+ / Tr, U Haar, G square Ginibre: the Bures
    ///   measure, Osipov, Sommers and Zyczkowski): E[Tr rho^2] = (5d^2 + 1)/(2d(d^2 + 2)) = 81/144.
    #[test]
    fn ensemble_purities_match_their_closed_forms() {
        let mut reduced = vec![];
        let mut hs = vec![];
        let mut bures = vec![];
        for m in 0..DRAWS {
            let (rho, _) = two_qubit_state(RandomKind::Haar, &mut state_rng(21, m));
            // rho_b = Tr_c rho, charger the left factor: rho[(2c + b), (2c + b')]
            let rb = CMat::from_fn(2, 2, |b, b2| rho[(b, b2)] + rho[(2 + b, 2 + b2)]);
            reduced.push(purity(&rb));
            hs.push(purity(&two_qubit_state(RandomKind::MixedHs, &mut state_rng(22, m)).0));
            bures.push(purity(&two_qubit_state(RandomKind::MixedBures, &mut state_rng(23, m)).0));
        }
        assert_mean("haar: Tr rho_b^2", &reduced, 4.0 / 5.0);
        assert_mean("mixed-hs: Tr rho^2", &hs, 8.0 / 17.0);
        assert_mean("mixed-bures: Tr rho^2", &bures, 81.0 / 144.0);
    }

    /// Haar unitaries of U(4): every entry has E|U_ij|^2 = 1/d = 1/4 and, the measure being
    /// invariant under U -> e^{i phi} U, E[U_ij^2] = 0 (the real and imaginary parts apart).
    /// A QR whose R diagonal keeps the phases of a Householder convention is not Haar: then
    /// Q's diagonal has a fixed phase and E[U_jj^2] = E|U_jj|^2 != 0. (nalgebra's R diagonal
    /// is already real and non-negative, so the division in `haar_unitary` guards against a
    /// change of convention; making Q's diagonal real instead fails here at 180 standard errors.)
    #[test]
    fn haar_unitary_moments() {
        let n = DRAWS as usize;
        let mut abs2 = vec![Vec::with_capacity(n); 16];
        let mut sq_re = vec![Vec::with_capacity(n); 16];
        let mut sq_im = vec![Vec::with_capacity(n); 16];
        for m in 0..DRAWS {
            let u = haar_unitary(4, &mut state_rng(24, m));
            for k in 0..16 {
                let z = u[(k / 4, k % 4)];
                abs2[k].push(z.norm_sqr());
                let z2 = z * z;
                sq_re[k].push(z2.re);
                sq_im[k].push(z2.im);
            }
        }
        for k in 0..16 {
            let (i, j) = (k / 4, k % 4);
            assert_mean(&format!("E|U_{i}{j}|^2"), &abs2[k], 0.25);
            assert_mean(&format!("Re E[U_{i}{j}^2]"), &sq_re[k], 0.0);
            assert_mean(&format!("Im E[U_{i}{j}^2]"), &sq_im[k], 0.0);
        }
    }
}
