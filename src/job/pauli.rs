//! Two-qubit states and Lindblad generators in the real Pauli basis (the form the GPU kernel
//! and its CPU twin step).
//!
//! x[4a + b] = Re Tr(rho sigma_a (x) sigma_b), sigma = (I, sx, sy, sz) in the project convention
//! (linalg.rs), a = charger (left factor), b = battery; rho = (1/4) sum_ab x[4a + b] sigma_a (x) sigma_b.
//! The Lindblad equation d rho/dt = L[rho] becomes dx/dt = G x with a real 16x16 G.

use crate::job::{Pauli2, Pauli4, TwoQubitPoint};
use crate::linalg::{c, kron, pauli, re_trace_product, CMat, ZERO};
use crate::model::{OpenSystem, Space};

/// The 16 two-qubit basis operators sigma_a (x) sigma_b, index 4a + b.
pub fn basis4() -> Vec<CMat> {
    let mut out = Vec::with_capacity(16);
    for a in 0..4 {
        for b in 0..4 {
            out.push(kron(&pauli(a), &pauli(b)));
        }
    }
    out
}

/// Pauli coefficients of a 4x4 operator: x[4a + b] = Re Tr(rho sigma_a (x) sigma_b).
pub fn to_pauli(rho4: &CMat) -> Pauli4 {
    assert_eq!((rho4.nrows(), rho4.ncols()), (4, 4), "to_pauli needs a 4x4 matrix");
    let basis = basis4();
    let mut x = [0.0; 16];
    for (k, p) in basis.iter().enumerate() {
        x[k] = re_trace_product(rho4, p);
    }
    x
}

/// rho = (1/4) sum_ab x[4a + b] sigma_a (x) sigma_b.
pub fn from_pauli(x: &Pauli4) -> CMat {
    let mut rho = CMat::from_element(4, 4, ZERO);
    for (k, p) in basis4().iter().enumerate() {
        rho += p * c(0.25 * x[k], 0.0);
    }
    rho
}

/// h = h0 I + hx sx + hy sy + hz sz for a 2x2 Hermitian h: h_k = Re Tr(h sigma_k) / 2.
pub fn pauli2(h: &CMat) -> Pauli2 {
    assert_eq!((h.nrows(), h.ncols()), (2, 2), "pauli2 needs a 2x2 matrix");
    let mut out = [0.0; 4];
    for (k, o) in out.iter_mut().enumerate() {
        *o = 0.5 * re_trace_product(h, &pauli(k));
    }
    out
}

/// L[X] = -i[H, X] + sum_k rate_k (L_k X L_k^+ - {L_k^+ L_k, X}/2).
fn lindblad(sys: &OpenSystem, x: &CMat) -> CMat {
    let h = &sys.hamiltonian;
    let mut out = (h * x - x * h) * c(0.0, -1.0);
    for j in &sys.jumps {
        let l: &CMat = &j.op;
        let ld = l.adjoint();
        let ldl = &ld * l;
        let d = l * x * &ld - (&ldl * x + x * &ldl) * c(0.5, 0.0);
        out += d * c(j.rate, 0.0);
    }
    out
}

/// Row-major real generator of a two-qubit open system, dx/dt = G x:
/// G[(4a+b), (4c+d)] = (1/4) Re Tr((sigma_a (x) sigma_b) L[sigma_c (x) sigma_d]).
/// Panics if the system is not a two-qubit one (a programming error: the pipeline routes
/// cavity models elsewhere).
pub fn generator(sys: &OpenSystem) -> [f64; 256] {
    assert_eq!(sys.space, Space::TwoQubit, "the Pauli generator is for two-qubit systems");
    let basis = basis4();
    let mut g = [0.0; 256];
    for (col, p) in basis.iter().enumerate() {
        let lp = lindblad(sys, p);
        for (row, q) in basis.iter().enumerate() {
            g[16 * row + col] = 0.25 * re_trace_product(q, &lp);
        }
    }
    g
}

/// The engine's view of one parameter point.
pub fn point(sys: &OpenSystem) -> TwoQubitPoint {
    TwoQubitPoint {
        generator: generator(sys),
        generator_off: None,
        h_battery: pauli2(&sys.h_battery),
        h_charger: pauli2(&sys.h_charger),
        dephasing: sys.dephasing,
        drives: vec![],
    }
}

/// Row-major generator of X -> -i[O, X] in the Pauli basis (a drive's term with c = 1).
pub fn commutator_generator(o: &CMat) -> [f64; 256] {
    let basis = basis4();
    let mut g = [0.0; 256];
    for (col, p) in basis.iter().enumerate() {
        let lp = (o * p - p * o) * c(0.0, -1.0);
        for (row, q) in basis.iter().enumerate() {
            g[16 * row + col] = 0.25 * re_trace_product(q, &lp);
        }
    }
    g
}

/// A `[[drive]]` in the two-qubit kernel's form.
pub fn point_drive(d: &crate::model::drive::Drive) -> crate::job::two_qubit::PointDrive {
    crate::job::two_qubit::PointDrive { generator: commutator_generator(&crate::linalg::traceless_part(&d.op)), coeffs: crate::job::drive::DriveCoeffs::of(d) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::{max_abs_diff, C64};
    use crate::model::{resolve_params, ModelKind, ParamValue, Params};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random_state(rng: &mut ChaCha8Rng) -> CMat {
        // A random mixed state: A A^+ / Tr.
        let a = CMat::from_fn(4, 4, |_, _| C64::new(rng.random::<f64>() - 0.5, rng.random::<f64>() - 0.5));
        let r = &a * a.adjoint();
        let t = r.trace();
        r / t
    }

    fn systems() -> Vec<OpenSystem> {
        let mut p = Params::new();
        p.insert("gamma".into(), ParamValue::Real(0.3));
        p.insert("f".into(), ParamValue::Real(0.7));
        p.insert("n_th".into(), ParamValue::Real(0.2));
        let driven = ModelKind::DrivenPair.build(&resolve_params(ModelKind::DrivenPair, &p).unwrap()).unwrap();
        let mut q = Params::new();
        q.insert("gamma".into(), ParamValue::Real(0.2));
        let bloch = ModelKind::BlochCharger.build(&resolve_params(ModelKind::BlochCharger, &q).unwrap()).unwrap();
        let spin = ModelKind::SpinPair.build(&resolve_params(ModelKind::SpinPair, &Params::new()).unwrap()).unwrap();
        vec![driven, bloch, spin]
    }

    #[test]
    fn round_trip() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..5 {
            let rho = random_state(&mut rng);
            let back = from_pauli(&to_pauli(&rho));
            assert!(max_abs_diff(&rho, &back) < 1e-14);
            assert!((to_pauli(&rho)[0] - 1.0).abs() < 1e-14);
        }
        let h = CMat::from_row_slice(2, 2, &[c(0.3, 0.0), c(0.1, 0.4), c(0.1, -0.4), c(-0.7, 0.0)]);
        let hp = pauli2(&h);
        let rebuilt = pauli(0) * c(hp[0], 0.0) + pauli(1) * c(hp[1], 0.0) + pauli(2) * c(hp[2], 0.0) + pauli(3) * c(hp[3], 0.0);
        assert!(max_abs_diff(&h, &rebuilt) < 1e-15);
    }

    /// G x against the reference engine's right-hand side (reference/lindblad.rs: the matrix
    /// form K x + x K^+ + sum_k L_k x L_k^+, written apart from `lindblad` here), mapped to the
    /// Pauli basis, on random mixed states.
    #[test]
    fn generator_matches_lindbladian() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for sys in systems() {
            let g = generator(&sys);
            let rhs = crate::reference::lindblad::LindbladRhs::new(&sys);
            for _ in 0..4 {
                let rho = random_state(&mut rng);
                let x = to_pauli(&rho);
                let want = to_pauli(&rhs.eval(&rho));
                for r in 0..16 {
                    let gx: f64 = (0..16).map(|k| g[16 * r + k] * x[k]).sum();
                    assert!((gx - want[r]).abs() < 1e-12, "row {r}: {gx} vs {}", want[r]);
                }
            }
            // Trace preservation: the trace row is zero.
            assert!(g[..16].iter().all(|v| v.abs() < 1e-14));
        }
    }

    /// A closed-form row: decay of the battery, sigma-_b = |g><e| at rate gamma (with
    /// H = wb sz_b + wc sz_c, which commutes with sz_b). From D[s-](rho) = s- rho s+ - {s+ s-, rho}/2,
    ///   d<sz_b>/dt = -gamma (1 + <sz_b>)   (<sz_b> -> -1, the ground state),
    /// so row 4*0 + 3 of G (x[3] = <I (x) sz_b>, x[0] = Tr rho = 1) is -gamma at columns 0 and 3
    /// and 0 elsewhere; the charger's <sz_c> (row 4*3 + 0) does not move.
    #[test]
    fn battery_decay_row_is_the_closed_form() {
        use crate::linalg::{identity, sigma_minus, sigma_z};
        let (gamma, wb, wc) = (0.37, 1.3, 0.8);
        let (i2, sz) = (identity(2), sigma_z());
        let h = kron(&i2, &sz) * c(wb, 0.0) + kron(&sz, &i2) * c(wc, 0.0);
        let sys = OpenSystem {
            space: Space::TwoQubit,
            hamiltonian: h,
            jumps: vec![crate::model::Jump { op: std::sync::Arc::new(kron(&i2, &sigma_minus())), rate: gamma }],
            h_battery: &sz * c(wb, 0.0),
            h_charger: &sz * c(wc, 0.0),
            dephasing: 0.0,
            coupling: std::sync::Arc::new(CMat::from_element(4, 4, ZERO)),
        };
        let g = generator(&sys);
        for col in 0..16 {
            let want = if col == 0 || col == 3 { -gamma } else { 0.0 };
            assert!((g[16 * 3 + col] - want).abs() < 1e-15, "d<sz_b>/dt, column {col}: {} vs {want}", g[16 * 3 + col]);
            assert!(g[16 * 12 + col].abs() < 1e-15, "d<sz_c>/dt, column {col}: {}", g[16 * 12 + col]);
        }
    }

    #[test]
    fn hamiltonian_generator_is_antisymmetric() {
        let spin = ModelKind::SpinPair.build(&resolve_params(ModelKind::SpinPair, &Params::new()).unwrap()).unwrap();
        let mut p = Params::new();
        p.insert("gamma".into(), ParamValue::Real(0.0));
        let bloch = ModelKind::BlochCharger.build(&resolve_params(ModelKind::BlochCharger, &p).unwrap()).unwrap();
        for sys in [spin, bloch] {
            assert!(sys.jumps.is_empty());
            let g = generator(&sys);
            for r in 0..16 {
                for k in 0..16 {
                    assert!((g[16 * r + k] + g[16 * k + r]).abs() < 1e-14);
                }
                assert!(g[16 * r].abs() < 1e-14 && g[r].abs() < 1e-14);
            }
        }
    }
}
