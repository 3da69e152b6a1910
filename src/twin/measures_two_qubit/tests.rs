use super::*;
use crate::job::measures_two_qubit::EIGEN_MEASURES;

/// The AVX2 and AVX-512 lanes (where the CPU has them) and the portable ones (`wide`)
/// give the same bits, in f64 and f32, on random mixed states, a pure one, a zero one and
/// a non-finite one; in f64 they are the bits of one sample at a time.
#[test]
fn vector_and_portable_lanes_agree() {
    let mut seed = 3u64;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mut states = vec![];
    for k in 0..203 {
        let a = crate::linalg::CMat::from_fn(4, 4, |_, _| crate::linalg::C64::new(next(), next()));
        let rank1 = a.columns(0, 1) * a.columns(0, 1).adjoint();
        let rho = if k % 5 == 0 { rank1 } else { &a * a.adjoint() };
        let tr = rho.trace();
        let mut x = crate::job::pauli::to_pauli(&(rho / tr));
        match k % 17 {
            3 => x = [0.0; 16],
            7 => x[9] = f64::NAN,
            _ => {}
        }
        states.extend(x);
    }
    let point = TwoQubitPoint {
        generator: [0.0; 256],
        generator_off: None,
        h_battery: [0.0, 0.3, 0.0, 1.0],
        h_charger: [0.0, 0.0, 0.2, 1.0],
        dephasing: 0.0,
        drives: vec![],
    };
    // two points, 29 members of 7 samples each, the members' points interleaved: a group
    // of lanes spans members and points
    let points = [point.clone(), TwoQubitPoint { h_battery: [0.1, 0.0, 0.4, 0.8], h_charger: [0.2, 0.1, 0.0, 1.3], ..point.clone() }];
    let eigen = EigenJob { measures: EIGEN_MEASURES.to_vec(), h_total_eigs: vec![[-2.0, -1.0, 1.0, 2.0], [-1.5, -0.5, 0.25, 1.75]] };
    let (n_samples, member_point) = (7, (0..29u32).map(|m| (m + 1) % 2).collect::<Vec<_>>());
    let pts = [eigen_point(&points[0], &eigen.h_total_eigs[0]), eigen_point(&points[1], &eigen.h_total_eigs[1])];
    let bits = |v: &[f64]| v.iter().map(|x| if x.is_nan() { u64::MAX } else { x.to_bits() }).collect::<Vec<_>>();
    for f32_run in [false, true] {
        let run = |isa, reused: bool| {
            // a reused buffer, longer and holding NaN, or a fresh one: the same entries
            let mut out = if reused { vec![f64::NAN; 10_000] } else { vec![] };
            if f32_run {
                run_measures_in_lanes::<f32>(&eigen, &points, &member_point, &states, n_samples, isa, &mut out)
            } else {
                run_measures_in_lanes::<f64>(&eigen, &points, &member_point, &states, n_samples, isa, &mut out)
            }
            out
        };
        let portable = run(Isa::Portable, false);
        assert_eq!(portable.len(), 203 * EIGEN_MEASURES.len());
        if !f32_run {
            // (203 samples: a last group of three lanes in four, of three in eight)
            let flags = eigen_flags(&eigen.measures);
            let one: Vec<f64> = states
                .chunks_exact(16)
                .enumerate()
                .flat_map(|(k, x)| {
                    let m = eigen_measures(&std::array::from_fn(|i| x[i]), &pts[member_point[k / n_samples] as usize], flags);
                    eigen.measures.iter().map(move |&measure| m[eigen_code(measure).unwrap() as usize])
                })
                .collect();
            assert_eq!(bits(&portable), bits(&one), "portable lanes against one at a time");
        }
        for isa in Isa::available() {
            let (fresh, reused) = (run(isa, false), run(isa, true));
            assert_eq!(bits(&fresh), bits(&portable), "{isa:?}, f32: {f32_run}");
            assert_eq!(
                fresh.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                reused.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                "{isa:?}, f32: {f32_run}"
            );
        }
    }
    // one point's states in lanes (203: a last group of three) against one at a time, each
    // group of flags
    let pt = &pts[0];
    for flags in [G_SPECTRUM, G_SPECTRUM | G_CONCURRENCE, G_LOO, G_SPECTRUM | G_CONCURRENCE | G_LOO] {
        let mut rows = vec![f64::NAN; 203 * N_EIGEN_CODES];
        eigen_measures_of_states(&states, pt, flags, &mut rows);
        let one: Vec<f64> = states.chunks_exact(16).flat_map(|x| eigen_measures(&std::array::from_fn(|i| x[i]), pt, flags)).collect();
        assert_eq!(bits(&rows), bits(&one), "flags {flags}");
    }
}
