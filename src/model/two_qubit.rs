//! `two-qubit` (custom): any 4x4 Hermitian `hamiltonian`, `jumps = [{op, rate}]`,
//! `h_battery` and `h_charger` (2x2 Hermitian).

use super::{jumps, spec, OpenSystem, ParamDefault::*, ParamSpec, ParamValue, Params, Space};
use crate::error::{QbatError, Result};
use crate::linalg::*;

pub const HERMITIAN_TOL: f64 = 1e-10;

pub fn params() -> Vec<ParamSpec> {
    vec![
        spec("hamiltonian", Required, "4x4 Hermitian matrix, rows of [re, im] (basis |gg>, |ge>, |eg>, |ee>; charger left)"),
        spec("jumps", Optional, "list of { op = 4x4 matrix, rate = r >= 0 }"),
        spec("h_battery", Required, "2x2 Hermitian battery Hamiltonian"),
        spec("h_charger", Required, "2x2 Hermitian charger Hamiltonian"),
    ]
}

fn matrix(p: &Params, name: &str, dim: usize, hermitian: bool) -> Result<CMat> {
    let field = format!("params.{name}");
    let m = match p.get(name) {
        Some(ParamValue::Matrix(m)) => m.clone(),
        _ => return Err(QbatError::invalid(field, format!("must be a {dim}x{dim} matrix of [re, im] entries"))),
    };
    if m.nrows() != dim || m.ncols() != dim {
        return Err(QbatError::invalid(field, format!("must be {dim}x{dim}, got {}x{}", m.nrows(), m.ncols())));
    }
    if m.iter().any(|z| !z.re.is_finite() || !z.im.is_finite()) {
        return Err(QbatError::invalid(field, "has a non-finite entry"));
    }
    if hermitian {
        let e = hermiticity_error(&m);
        if e > HERMITIAN_TOL {
            return Err(QbatError::invalid(field, format!("must be Hermitian (largest |H_ij - conj H_ji| = {e:.3e})")));
        }
    }
    Ok(m)
}

pub fn build(p: &Params) -> Result<OpenSystem> {
    let h = matrix(p, "hamiltonian", 4, true)?;
    let h_battery = matrix(p, "h_battery", 2, true)?;
    let h_charger = matrix(p, "h_charger", 2, true)?;
    let mut list = vec![];
    if let Some(v) = p.get("jumps") {
        let ParamValue::Jumps(js) = v else {
            return Err(QbatError::invalid("params.jumps", "must be a list of { op, rate } tables"));
        };
        for (k, (op, r)) in js.iter().enumerate() {
            let field = format!("params.jumps[{k}]");
            if op.nrows() != 4 || op.ncols() != 4 {
                return Err(QbatError::invalid(format!("{field}.op"), format!("must be 4x4, got {}x{}", op.nrows(), op.ncols())));
            }
            if op.iter().any(|z| !z.re.is_finite() || !z.im.is_finite()) {
                return Err(QbatError::invalid(format!("{field}.op"), "has a non-finite entry"));
            }
            if !r.is_finite() || *r < 0.0 {
                return Err(QbatError::invalid(format!("{field}.rate"), format!("must be a finite rate >= 0, got {}", crate::error::shown(*r))));
            }
            list.push((op.clone(), *r));
        }
    }
    // The coupling is whatever the given local Hamiltonians do not account for:
    // H - (H_C (x) I + I (x) H_B). After `[protocol] switch_off` each qubit then evolves under
    // its own h (H_B commutes with the battery's free evolution, so a closed battery keeps its
    // energy).
    let coupling = &h - kron(&h_charger, &identity(2)) - kron(&identity(2), &h_battery);
    Ok(OpenSystem { space: Space::TwoQubit, hamiltonian: h, jumps: jumps(list), h_battery, h_charger, dephasing: 0.0, coupling: std::sync::Arc::new(coupling) })
}
