//! `bloch-charger` (paper 004): H = wb (s+_c s-_c + s+_b s-_b) + j (s+_c s-_b + s-_c s+_b),
//! optional charger decay gamma D[s-_c].

use super::{jumps, rate, real, spec, OpenSystem, ParamDefault::*, ParamSpec, Params, Space};
use crate::error::Result;
use crate::linalg::*;

pub fn params() -> Vec<ParamSpec> {
    vec![
        spec("wb", Real(1.0), "qubit frequency of charger and battery"),
        spec("j", Real(1.0), "charger-battery exchange coupling"),
        spec("gamma", Real(0.0), "charger decay rate (gamma D[s-_c])"),
    ]
}

pub fn build(p: &Params) -> Result<OpenSystem> {
    let (wb, j) = (real(p, "wb")?, real(p, "j")?);
    let gamma = rate(p, "gamma")?;
    let num = number_qubit();
    let coupling = (kron(&sigma_plus(), &sigma_minus()) + kron(&sigma_minus(), &sigma_plus())) * c(j, 0.0);
    let h = (on_charger(&num) + on_battery(&num)) * c(wb, 0.0) + &coupling;
    Ok(OpenSystem {
        space: Space::TwoQubit,
        hamiltonian: h,
        jumps: jumps(vec![(on_charger(&sigma_minus()), gamma)]),
        h_battery: &num * c(wb, 0.0),
        h_charger: &num * c(wb, 0.0),
        dephasing: 0.0,
        coupling: std::sync::Arc::new(coupling),
    })
}

/// Charger cos(theta/2)|g> + e^{i phi} sin(theta/2)|e>, battery |g>.
pub fn initial_state(theta: f64, phi: f64) -> CMat {
    let mut psi = vec![ZERO; 4];
    psi[0] = c((theta / 2.0).cos(), 0.0); // |g g>
    psi[2] = C64::from_polar((theta / 2.0).sin(), phi); // |e g>
    projector(&psi)
}
