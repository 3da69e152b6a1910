//! The two-qubit states the eigen-solve measures are checked on, for the twin's tests
//! (tests/measures_twin.rs) and the kernel's (tests/gpu_measures_two_qubit.rs) alike.

use qbat_gpu::linalg::{c, kron, projector, CMat, C64};
use qbat_gpu::measures::dephase;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Uniform in [-1, 1).
pub fn u(rng: &mut ChaCha8Rng) -> f64 {
    rng.random::<f64>() * 2.0 - 1.0
}

/// An n x n matrix of entries with real and imaginary parts uniform in [-1, 1).
pub fn random_complex(rng: &mut ChaCha8Rng, n: usize) -> CMat {
    CMat::from_fn(n, n, |_, _| c(u(rng), u(rng)))
}

pub fn random_ket(rng: &mut ChaCha8Rng) -> Vec<C64> {
    let v: Vec<C64> = (0..4).map(|_| c(u(rng), u(rng))).collect();
    let n = v.iter().map(|z| z.norm_sqr()).sum::<f64>().sqrt();
    v.into_iter().map(|z| z / n).collect()
}

/// Two-qubit state k of the measure checks: Hilbert-Schmidt mixed, pure, near-pure (the
/// weight e of the maximally mixed state taken in turn from `near_pure`), rank 2 and 3,
/// product, Werner, the maximally mixed, dephased versions.
pub fn test_state(rng: &mut ChaCha8Rng, k: usize, near_pure: &[f64]) -> CMat {
    let pure = |rng: &mut ChaCha8Rng| projector(&random_ket(rng));
    let mix = |rng: &mut ChaCha8Rng, r: usize| {
        let mut m = CMat::zeros(4, 4);
        let mut w = 0.0;
        for _ in 0..r {
            let p = rng.random::<f64>();
            m += pure(rng) * c(p, 0.0);
            w += p;
        }
        m / c(w, 0.0)
    };
    match k % 9 {
        0 => mix(rng, 6),
        1 => pure(rng),
        2 => {
            let e = near_pure[(k / 9) % near_pure.len()];
            pure(rng) * c(1.0 - e, 0.0) + CMat::identity(4, 4) * c(e / 4.0, 0.0)
        }
        3 => mix(rng, 2),
        4 => mix(rng, 3),
        5 => {
            let a = random_ket(rng);
            let b = random_ket(rng);
            let qa = projector(&[a[0], a[1]]) / c(a[0].norm_sqr() + a[1].norm_sqr(), 0.0);
            let qb = projector(&[b[2], b[3]]) / c(b[2].norm_sqr() + b[3].norm_sqr(), 0.0);
            kron(&qa, &qb)
        }
        6 => {
            let p = rng.random::<f64>();
            let h = c(std::f64::consts::FRAC_1_SQRT_2, 0.0);
            projector(&[h, c(0.0, 0.0), c(0.0, 0.0), h]) * c(p, 0.0) + CMat::identity(4, 4) * c((1.0 - p) / 4.0, 0.0)
        }
        7 => CMat::identity(4, 4) * c(0.25, 0.0),
        _ => dephase(&pure(rng), 0.3 * rng.random::<f64>()),
    }
}
