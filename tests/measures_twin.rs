//! The measures twin (`twin::measures_two_qubit`, the CPU mirror of the eigen-solve measures
//! kernel) against nalgebra and the f64 reference measures (`measures::evaluate`):
//! the 4x4 Hermitian Jacobi on 10^5 random matrices with generic, degenerate and
//! rank-deficient spectra, the one-sided Jacobi singular values, and every eigen-solve
//! measure on random, pure, near-pure, rank-deficient and dephased two-qubit states; and the
//! CPU engine's SIMD lanes against one sample at a time, bit for bit.

use nalgebra::DMatrix;
use qbat_gpu::engine::Precision;
use qbat_gpu::job::measures_two_qubit::{eigen_code, eigen_flags, eigen_point, EIGEN_MEASURES};
use qbat_gpu::job::pauli::{pauli2, to_pauli};
use qbat_gpu::job::TwoQubitPoint;
use qbat_gpu::linalg::{c, eigvals_hermitian, hermitian_part, CMat};
use qbat_gpu::measures::{evaluate, Measure, MeasureContext, Sample};
use qbat_gpu::model::Space;
use qbat_gpu::twin::measures_two_qubit::{eigen_measures, jacobi_eigh, rho_from_pauli, singular_values, singular_values_real, C4};
use qbat_gpu::twin::Real;
use qbat_gpu::verify::verify_tolerance;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::common::two_qubit_states::{random_complex, test_state, u};

/// The weights of the maximally mixed state in the near-pure test states, taken in turn.
const NEAR_PURE: [f64; 4] = [1e-6, 1e-9, 1e-12, 1e-15];

/// A random unitary: the eigenvectors of a random Hermitian matrix (nalgebra).
fn random_unitary(rng: &mut ChaCha8Rng) -> CMat {
    hermitian_part(&random_complex(rng, 4)).symmetric_eigen().eigenvectors
}

fn with_spectrum(u4: &CMat, lam: &[f64; 4]) -> CMat {
    let d = CMat::from_fn(4, 4, |i, j| if i == j { c(lam[i], 0.0) } else { c(0.0, 0.0) });
    u4 * d * u4.adjoint()
}

fn to_c4<R: Real>(m: &CMat) -> C4<R> {
    let mut out = C4::zero();
    for i in 0..4 {
        for j in 0..4 {
            out.re[4 * i + j] = R::from_f64(m[(i, j)].re);
            out.im[4 * i + j] = R::from_f64(m[(i, j)].im);
        }
    }
    out
}

fn from_c4(m: &C4<f64>) -> CMat {
    CMat::from_fn(4, 4, |i, j| c(m.re[4 * i + j], m.im[4 * i + j]))
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s
}

/// Matrix k of the 10^5: generic, degenerate (repeated eigenvalues, also all four equal),
/// rank-deficient PSD (rank 0..3), or with widely spread eigenvalues.
fn test_matrix(rng: &mut ChaCha8Rng, k: usize) -> CMat {
    let u4 = random_unitary(rng);
    match k % 5 {
        0 => hermitian_part(&random_complex(rng, 4)),
        1 => {
            let (a, b) = (u(rng), u(rng));
            let lam = match (k / 5) % 4 {
                0 => [a, a, b, b],
                1 => [a, a, a, b],
                2 => [a, a, a, a],
                _ => [a, b, b, u(rng)],
            };
            with_spectrum(&u4, &lam)
        }
        2 => {
            let rank = (k / 5) % 4;
            let mut lam = [0.0; 4];
            for l in lam.iter_mut().take(rank) {
                *l = rng.random::<f64>();
            }
            with_spectrum(&u4, &lam)
        }
        3 => with_spectrum(&u4, &[1.0, 1e-3 * u(rng), 1e-9 * u(rng), 1e-14 * u(rng)]),
        _ => {
            // a random density matrix G G^+ / Tr
            let g = random_complex(rng, 4);
            let r = &g * g.adjoint();
            let t = r.trace();
            r / t
        }
    }
}

#[test]
fn jacobi_matches_nalgebra_on_1e5_hermitian_matrices() {
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let mut worst = [0.0f64; 5];
    for k in 0..100_000 {
        let a = test_matrix(&mut rng, k);
        let want = eigvals_hermitian(&a);
        let (lam, v) = jacobi_eigh::<f64>(&to_c4(&a), true);
        let got = sorted(&lam);
        let scale = a.norm().max(1.0);
        for i in 0..4 {
            let d = (got[i] - want[i]).abs() / scale;
            worst[k % 5] = worst[k % 5].max(d);
            assert!(d < 1e-12, "matrix {k}: eigenvalue {i}: Jacobi {} vs nalgebra {}", got[i], want[i]);
        }
        // The vectors: V unitary and A V = V diag(lam).
        if k % 10 == 0 {
            let vm = from_c4(&v);
            let unit = (vm.adjoint() * &vm - CMat::identity(4, 4)).norm();
            let d = CMat::from_fn(4, 4, |i, j| if i == j { c(lam[i], 0.0) } else { c(0.0, 0.0) });
            let resid = (&a * &vm - &vm * d).norm() / scale;
            assert!(unit < 1e-12 && resid < 1e-12, "matrix {k}: |V^+V - I| {unit:e}, |AV - V lam| {resid:e}");
        }
    }
    eprintln!("Jacobi vs nalgebra, worst |dev| / max(1, |A|) by class: {worst:?}");
}

#[test]
fn jacobi_in_f32_is_accurate_to_f32_rounding() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for k in 0..5_000 {
        let a = test_matrix(&mut rng, k);
        let want = eigvals_hermitian(&a);
        let (lam, _) = jacobi_eigh::<f32>(&to_c4(&a), false);
        let got = sorted(&lam.map(|x| x as f64));
        for i in 0..4 {
            assert!((got[i] - want[i]).abs() < 2e-6 * a.norm().max(1.0), "matrix {k}: {} vs {}", got[i], want[i]);
        }
    }
}

#[test]
fn singular_values_match_nalgebra() {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    for k in 0..20_000 {
        // general, rank-deficient (a product of thin factors), and complex symmetric
        let m = match k % 3 {
            0 => random_complex(&mut rng, 4),
            1 => {
                let r = 1 + (k / 3) % 3;
                DMatrix::from_fn(4, r, |_, _| c(u(&mut rng), u(&mut rng))) * DMatrix::from_fn(r, 4, |_, _| c(u(&mut rng), u(&mut rng)))
            }
            _ => {
                let g = random_complex(&mut rng, 4);
                &g + g.transpose()
            }
        };
        let want = sorted(m.singular_values().as_slice());
        let got = sorted(&singular_values::<f64>(&to_c4(&m)));
        for i in 0..4 {
            assert!((got[i] - want[i]).abs() < 1e-12 * m.norm().max(1.0), "matrix {k}: sv {i}: {} vs {}", got[i], want[i]);
        }
    }
}

/// The real one-sided Jacobi: against nalgebra's SVD, and bit for bit the complex one's on
/// the same matrix with zero imaginary parts (f64 and f32; general, rank-deficient, and with
/// a zero first row and column like the LOO matrix of a normalised state).
#[test]
fn real_singular_values_match_nalgebra_and_the_complex_path() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for k in 0..20_000 {
        let mut m: [f64; 16] = std::array::from_fn(|_| u(&mut rng));
        match k % 3 {
            1 => {
                // rank 1 or 2: a sum of outer products
                m = [0.0; 16];
                for _ in 0..1 + (k / 3) % 2 {
                    let (a, b): ([f64; 4], [f64; 4]) = (std::array::from_fn(|_| u(&mut rng)), std::array::from_fn(|_| u(&mut rng)));
                    (0..16).for_each(|i| m[i] += a[i / 4] * b[i % 4]);
                }
            }
            2 => (0..4).for_each(|i| (m[i], m[4 * i]) = (0.0, 0.0)),
            _ => {}
        }
        let dense = DMatrix::from_fn(4, 4, |i, j| m[4 * i + j]);
        let want = sorted(dense.singular_values().as_slice());
        let got = singular_values_real(&m);
        let g = sorted(&got);
        for i in 0..4 {
            assert!((g[i] - want[i]).abs() < 1e-12 * dense.norm().max(1.0), "matrix {k}: sv {i}: {} vs {}", g[i], want[i]);
        }
        let complex = C4 { re: m, im: [0.0; 16] };
        assert_eq!(got.map(f64::to_bits), singular_values(&complex).map(f64::to_bits), "matrix {k}");
        let m32 = m.map(|x| x as f32);
        let complex32 = C4 { re: m32, im: [0.0f32; 16] };
        assert_eq!(singular_values_real(&m32).map(f32::to_bits), singular_values(&complex32).map(f32::to_bits), "matrix {k} in f32");
    }
    // overflowing Gram entries and non-finite entries: the same non-finite results
    for (i, v) in [(1usize, 1e20f32), (1, f32::INFINITY), (6, f32::NAN), (0, -f32::INFINITY)] {
        let mut m = [0.0f32; 16];
        (0..4).for_each(|d| m[5 * d] = 1.0);
        m[0] = 1e20;
        m[i] = v;
        let real = singular_values_real(&m).map(|x| if x.is_nan() { f32::NAN.to_bits() } else { x.to_bits() });
        let complex = singular_values(&C4 { re: m, im: [0.0; 16] }).map(|x| if x.is_nan() { f32::NAN.to_bits() } else { x.to_bits() });
        assert_eq!(real, complex, "entry {i} = {v}");
    }
    // an infinite column beside finite ones: on the real path its Gram entry and their scale
    // are both infinite, and the pair still rotates (into NaN); on the complex path the
    // imaginary part of the Gram entry is inf 0 = NaN, which rotates too
    let columns = [[f64::INFINITY, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0]];
    let m: [f64; 16] = std::array::from_fn(|k| columns[k % 4][k / 4]);
    let real = singular_values_real(&m);
    assert!(real.iter().all(|x| x.is_nan()), "{real:?}");
    assert!(singular_values(&C4 { re: m, im: [0.0; 16] }).iter().all(|x| x.is_nan()));
    let m32 = m.map(|x| x as f32);
    assert!(singular_values_real(&m32).iter().all(|x| x.is_nan()));
    assert!(singular_values(&C4 { re: m32, im: [0.0; 16] }).iter().all(|x| x.is_nan()));
}

#[test]
fn rho_from_pauli_inverts_to_pauli() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for _ in 0..200 {
        let a = hermitian_part(&random_complex(&mut rng, 4));
        let back = from_c4(&rho_from_pauli::<f64>(&to_pauli(&a)));
        assert!((back - &a).norm() < 1e-14);
    }
}

struct Point {
    ctx: MeasureContext,
    consts: [f64; 8],
}

fn random_point(rng: &mut ChaCha8Rng) -> Point {
    let h = hermitian_part(&random_complex(rng, 4));
    let (hb, hc) = (hermitian_part(&random_complex(rng, 2)), hermitian_part(&random_complex(rng, 2)));
    let eps = eigvals_hermitian(&h);
    let p = TwoQubitPoint { generator: [0.0; 256], generator_off: None, h_battery: pauli2(&hb), h_charger: pauli2(&hc), dephasing: 0.0, drives: vec![] };
    let consts = eigen_point(&p, &[eps[0], eps[1], eps[2], eps[3]]);
    let ctx = MeasureContext {
        space: Space::TwoQubit,
        h_total: Some(h),
        h_total_eigs: Some(eps),
        h_b_traceless: qbat_gpu::measures::traceless_part(&hb),
        h_c_traceless: qbat_gpu::measures::traceless_part(&hc),
        h_battery: hb,
        h_charger: hc,
        dephasing: 0.0,
        energy_b0: 0.0,
        traceless_sq0: 0.0,
        traceless_energy0: 0.0,
    };
    Point { ctx, consts }
}

/// Largest deviation per eigen measure of the twin in R from the f64 reference measures.
fn twin_vs_reference<R: Real>(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let flags = eigen_flags(&EIGEN_MEASURES);
    let mut worst = vec![0.0f64; EIGEN_MEASURES.len()];
    for k in 0..n {
        let pt = random_point(&mut rng);
        let rho = test_state(&mut rng, k, &NEAR_PURE);
        let want = evaluate(&EIGEN_MEASURES, &pt.ctx, &Sample { t: 1.0, rho: &rho, y: None });
        let x = to_pauli(&rho).map(R::from_f64);
        let got = eigen_measures(&x, &pt.consts.map(R::from_f64), flags);
        for (i, m) in EIGEN_MEASURES.iter().enumerate() {
            let g = got[eigen_code(*m).unwrap() as usize].to_f64();
            worst[i] = worst[i].max((g - want[i]).abs());
            assert!(!g.is_nan(), "state {k}: {} is NaN", m.name());
        }
    }
    worst
}

#[test]
fn twin_measures_match_the_f64_reference_measures() {
    // The LOO steerings carry sqrt((2 - Tr rho_c^2)(1 - Tr rho_b^2)): at a pure reduced
    // state, rounding of the purity (1e-16) becomes 1e-8 (Measure::sqrt_sensitive), in the
    // reference as here; the f64 verify tolerance of such measures (1e-7) applies to them.
    let worst = twin_vs_reference::<f64>(20_000, 11);
    for (m, w) in EIGEN_MEASURES.iter().zip(&worst) {
        let tol = if matches!(m, Measure::SteeringAb | Measure::SteeringBa) { verify_tolerance(*m, Precision::F64, 1.0) } else { 1e-11 };
        eprintln!("f64 twin vs reference: {} {w:.1e} (tolerance {tol:.0e})", m.name());
        assert!(*w < tol, "{}: max |dev| {w:e}", m.name());
    }
}

#[test]
fn twin_measures_in_f32_hold_the_f32_verify_tolerance() {
    // The state itself rounded to f32 included: what the f32 kernel sees.
    let worst = twin_vs_reference::<f32>(20_000, 12);
    for (m, w) in EIGEN_MEASURES.iter().zip(&worst) {
        let tol = verify_tolerance(*m, Precision::F32, 1.0);
        eprintln!("f32 twin vs reference: {} {w:.1e} (tolerance {tol:.0e})", m.name());
        assert!(*w <= tol, "{}: max |dev| {w:e} > {tol:e}", m.name());
    }
}

#[test]
fn twin_measures_of_a_non_finite_state_are_nan() {
    // a NaN coefficient, and infinite ones: on the diagonal of rho as well as off it (an
    // infinite entry beside an infinite diagonal still rotates, into NaN; an infinity on the
    // diagonal alone rotates nothing, and is not among these)
    for bad in [&[(5, f64::NAN)][..], &[(0, f64::INFINITY), (1, f64::INFINITY)], &[(3, f64::INFINITY), (1, -f64::INFINITY)], &[(6, f64::INFINITY)]] {
        let mut x = [0.0f64; 16];
        x[0] = 1.0;
        for &(i, v) in bad {
            x[i] = v;
        }
        let m = eigen_measures(&x, &[0.0, 1.0, 2.0, 3.0, 1.0, 1.0, 0.0, 0.0], eigen_flags(&EIGEN_MEASURES));
        assert!(m.iter().all(|v| v.is_nan()), "{bad:?}: {m:?}");
    }
}

/// The CPU engine's path (`run_measures_twin`: four samples side by side in SIMD lanes, eight
/// where the CPU has AVX-512)
/// against `eigen_measures` one sample at a time, bit for bit (NaN as NaN), in f64 and f32:
/// states of every kind above, so that lanes converge after different numbers of sweeps, with
/// non-finite, zero, huge and tiny states among them, on several points with non-zero local
/// fields, for every measure and for the spectrum alone (no eigenvectors), concurrence alone
/// and LOO alone, and a count that leaves a short last group.
fn lanes_match_one_at_a_time<R: Real>(seed: u64, measures: &[Measure]) {
    use qbat_gpu::job::measures_two_qubit::EigenJob;
    use qbat_gpu::twin::measures_two_qubit::run_measures_twin;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // 1,005 states: 251 groups of four and one of one (125 of eight and one of five)
    let (n_members, n_samples) = (335, 3);
    let points: Vec<Point> = (0..5).map(|_| random_point(&mut rng)).collect();
    let member_point: Vec<u32> = (0..n_members).map(|_| rng.random_range(0..points.len() as u32)).collect();
    let mut states = vec![];
    for k in 0..n_members * n_samples {
        let mut x = to_pauli(&test_state(&mut rng, k, &NEAR_PURE));
        match k % 37 {
            5 => x[6] = f64::NAN,
            11 => x[3] = f64::INFINITY,
            17 => x = [0.0; 16],
            23 => x = x.map(|v| v * 1e300),
            29 => x = x.map(|v| v * 1e-300),
            _ => {}
        }
        states.extend(x.map(|v| R::from_f64(v).to_f64()));
    }
    let two_qubit_points: Vec<TwoQubitPoint> = points
        .iter()
        .map(|p| TwoQubitPoint {
            generator: [0.0; 256],
            generator_off: None,
            h_battery: pauli2(&p.ctx.h_battery),
            h_charger: pauli2(&p.ctx.h_charger),
            dephasing: 0.0,
            drives: vec![],
        })
        .collect();
    let eigen = EigenJob { measures: measures.to_vec(), h_total_eigs: points.iter().map(|p| [p.consts[0], p.consts[1], p.consts[2], p.consts[3]]).collect() };
    let got = run_measures_twin::<R>(&eigen, &two_qubit_points, &member_point, &states, n_samples);
    let flags = eigen_flags(measures);
    let bits = |v: f64| if v.is_nan() { u64::MAX } else { v.to_bits() };
    for (row, x) in states.chunks(16).enumerate() {
        let p = member_point[row / n_samples] as usize;
        let pt = eigen_point(&two_qubit_points[p], &eigen.h_total_eigs[p]).map(R::from_f64);
        assert!(pt[4] != R::ZERO && pt[5] != R::ZERO);
        let want = eigen_measures(&std::array::from_fn(|i| R::from_f64(x[i])), &pt, flags);
        for (c, m) in measures.iter().enumerate() {
            let w = want[eigen_code(*m).unwrap() as usize].to_f64();
            let g = got[row * measures.len() + c];
            assert_eq!(bits(g), bits(w), "state {row}, {}: lanes {g} against {w}", m.name());
        }
    }
}

#[test]
fn lanes_give_the_bits_of_one_sample_at_a_time() {
    use Measure::*;
    let sets: [&[Measure]; 4] = [&EIGEN_MEASURES, &[MinEigenvalue, ResidualCapacity], &[Concurrence], &[SteeringBa]];
    for (k, set) in sets.iter().enumerate() {
        lanes_match_one_at_a_time::<f64>(21 + k as u64, set);
        lanes_match_one_at_a_time::<f32>(31 + k as u64, set);
    }
}
