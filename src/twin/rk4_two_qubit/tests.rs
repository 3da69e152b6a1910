//! Unit tests of `twin::rk4_two_qubit` (a file of their own to keep the twin short).

use super::*;
use crate::job::{Schedule, TwoQubitPoint};

#[test]
fn increment_is_the_rk4_update() {
    // For dx/dt = G x, one classical RK4 step equals x + D x.
    let mut g = [0.0; 256];
    for (i, v) in g.iter_mut().enumerate() {
        *v = ((i * 37 % 23) as f64 - 11.0) * 0.05;
    }
    let x: [f64; 16] = std::array::from_fn(|i| (i as f64 * 0.3).sin());
    let h = 0.01;
    let d = rk4_increment(&g, h);
    let via_d = matvec(&transpose(&d), &x);
    let via_stages = rk4_increment_stages(&transpose(&g), &x, h);
    for i in 0..16 {
        assert!((via_d[i] - via_stages[i]).abs() < 1e-16, "{i}");
    }
}

#[test]
fn vector_width_does_not_change_bits() {
    // The AVX2 build of the member loop must give the baseline's bits.
    let mut g = [0.0; 256];
    for (i, v) in g.iter_mut().enumerate() {
        *v = ((i * 37 % 23) as f64 - 11.0) * 0.05;
    }
    g[..16].fill(0.0);
    let point =
        TwoQubitPoint { generator: g, generator_off: None, h_battery: [0.1, 0.2, -0.3, 0.5], h_charger: [0.0, 0.0, 0.4, 0.6], dephasing: 0.05, drives: vec![] };
    let job = TwoQubitJob {
        points: vec![point],
        member_point: vec![0; 5],
        initial: (0..5).map(|m| std::array::from_fn(|i| if i == 0 { 1.0 } else { 0.1 * ((m + i) as f64).sin() })).collect(),
        schedule: Schedule::new(1e-2, &[0.0, 0.5, 0.777, 2.0]),
        measures: KERNEL_MEASURES.to_vec(),
        keep_states: true,
    };
    let a = run_twin::<f32>(&job, true);
    let b = run_twin::<f32>(&job, false);
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a.values), bits(&b.values));
    assert_eq!(a.peaks, b.peaks);
    let a = run_twin::<f64>(&job, true);
    let b = run_twin::<f64>(&job, false);
    assert_eq!(bits(&a.values), bits(&b.values));
    assert_eq!(bits(a.states.as_ref().unwrap()), bits(b.states.as_ref().unwrap()));
}

#[test]
fn arithmetic_log2() {
    for &x in &[1e-29, 1e-12, 0.003, 0.25, 0.5, 0.7, 0.71, 1.0, 1.3, 1.5, 2.0] {
        let got: f64 = log2_arith(x);
        assert!((got - x.log2()).abs() < 2e-15 * x.log2().abs().max(1.0), "{x}: {got}");
        let got32: f32 = log2_arith(x as f32);
        assert!((got32 as f64 - x.log2()).abs() < 1e-6 * x.log2().abs().max(1.0), "{x}: {got32}");
    }
}

#[test]
fn jacobi_eigenvalues() {
    let ev: [f64; 3] = sym3_eigenvalues(2.0, 0.3, -0.1, 1.0, 0.2, 0.5);
    let m = nalgebra::Matrix3::new(2.0, 0.3, -0.1, 0.3, 1.0, 0.2, -0.1, 0.2, 0.5);
    let mut want: Vec<f64> = m.symmetric_eigenvalues().iter().copied().collect();
    let mut got = ev.to_vec();
    want.sort_by(f64::total_cmp);
    got.sort_by(f64::total_cmp);
    for k in 0..3 {
        assert!((want[k] - got[k]).abs() < 1e-14);
    }
    // Degenerate and diagonal cases do not divide by zero.
    let ev: [f64; 3] = sym3_eigenvalues(1.0, 0.0, 0.0, 1.0, 0.0, 1.0);
    assert_eq!(ev, [1.0, 1.0, 1.0]);
    let ev: [f32; 3] = sym3_eigenvalues(1.0, 1e-30, 0.0, 1.0, 0.0, 0.0);
    assert!(ev.iter().all(|v| v.is_finite()));
}

#[test]
fn pieces_split_long_segments() {
    let s = Schedule::new(0.1, &[0.0, 1.0, 1.25]);
    let p = plan_pieces(&s, 4);
    assert_eq!(p.len(), 1 + 3 + 1);
    assert_eq!((p[0].n_full, p[0].sample), (0, 0));
    assert_eq!((p[1].n_full, p[1].sample), (4, NO_SAMPLE));
    assert_eq!((p[3].n_full, p[3].sample), (2, 1));
    assert_eq!((p[4].n_full, p[4].sample), (2, 2));
    assert!((p[4].h_last - 0.05).abs() < 1e-12);
}
