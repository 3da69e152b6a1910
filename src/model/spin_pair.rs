//! `spin-pair` (paper 000): H = wb sz_b + wc sz_c + j1 (s+_b s-_c + s-_b s+_c) + j2 sz_b sz_c.

use super::{jumps, real, spec, OpenSystem, ParamDefault::*, ParamSpec, Params, Space};
use crate::error::{QbatError, Result};
use crate::linalg::*;

pub fn params() -> Vec<ParamSpec> {
    vec![
        spec("wb", Real(1.0), "battery frequency (H_B = wb sz)"),
        spec("wc", Real(1.0), "charger frequency (H_C = wc sz)"),
        spec("j1", Real(0.1), "exchange coupling (s+_b s-_c + h.c.)"),
        spec("j2", Real(0.1), "Ising coupling sz_b sz_c"),
        spec("dephasing", Real(0.0), "phase-flip probability p in [0,1] applied to each sample (paper 000 app. B)"),
    ]
}

pub fn build(p: &Params) -> Result<OpenSystem> {
    let (wb, wc, j1, j2) = (real(p, "wb")?, real(p, "wc")?, real(p, "j1")?, real(p, "j2")?);
    let dephasing = real(p, "dephasing")?;
    if !(0.0..=1.0).contains(&dephasing) {
        return Err(QbatError::invalid("params.dephasing", format!("must lie in [0, 1], got {}", crate::error::shown(dephasing))));
    }
    let sz = sigma_z();
    // s+_b s-_c = (s-)_c (x) (s+)_b, charger is the left factor.
    let exchange = kron(&sigma_minus(), &sigma_plus()) + kron(&sigma_plus(), &sigma_minus());
    let coupling = exchange * c(j1, 0.0) + kron(&sz, &sz) * c(j2, 0.0);
    let local = on_battery(&sz) * c(wb, 0.0) + on_charger(&sz) * c(wc, 0.0);
    Ok(OpenSystem {
        space: Space::TwoQubit,
        hamiltonian: local + &coupling,
        jumps: jumps(vec![]),
        h_battery: &sz * c(wb, 0.0),
        h_charger: &sz * c(wc, 0.0),
        dephasing,
        coupling: std::sync::Arc::new(coupling),
    })
}
