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
}
