//! `driven-pair` (paper 002), rotating frame:
//! H = (delta/2)(sz_c + sz_b) + g (s+_c s-_b + s-_c s+_b) + f (s+_c + s-_c),
//! dissipator gamma N (D[s-_c] + D[s-_b]) + gamma n (D[s+_c] + D[s+_b]).

use super::{jumps, rate, real, real_opt, spec, text, OpenSystem, ParamDefault::*, ParamSpec, Params, Space};
use crate::error::{QbatError, Result};
use crate::linalg::*;

pub fn params() -> Vec<ParamSpec> {
    vec![
        spec("delta", Real(0.0), "detuning (rotating frame)"),
        spec("g", Real(1.0), "charger-battery exchange coupling"),
        spec("f", Real(1.0), "coherent pump on the charger"),
        spec("gamma", Real(1.0), "reservoir coupling rate"),
        spec("reservoir", Text("boson"), "boson | fermion"),
        spec("n_th", Optional, "thermal occupation n (else from temperature); fermions need 0 <= n <= 1"),
        spec("temperature", Optional, "reservoir temperature T (k_B = 1); used when n_th is not given"),
        spec("omega_k", Optional, "reservoir mode frequency (default w0)"),
        spec("mu", Real(0.0), "chemical potential (fermions)"),
        spec("w0", Real(1.0), "energy unit: H_B = w0 s+_b s-_b, H_C = w0 s+_c s-_c"),
    ]
}

/// Thermal occupation n and N (= 1 + n for bosons, 1 - n for fermions).
pub fn occupations(p: &Params) -> Result<(f64, f64)> {
    let reservoir = text(p, "reservoir")?;
    let fermion = match reservoir.as_str() {
        "boson" => false,
        "fermion" => true,
        other => return Err(QbatError::invalid("params.reservoir", format!("must be 'boson' or 'fermion', got '{other}'"))),
    };
    let n_th = real_opt(p, "n_th")?;
    let temperature = real_opt(p, "temperature")?;
    let n = match (n_th, temperature) {
        (Some(_), Some(_)) => {
            return Err(QbatError::invalid("params.n_th", "give either n_th or temperature, not both"));
        }
        (Some(n), None) => {
            if n < 0.0 {
                return Err(QbatError::invalid("params.n_th", format!("must be >= 0, got {}", crate::error::shown(n))));
            }
            if fermion && n > 1.0 {
                return Err(QbatError::invalid("params.n_th", format!("a fermion occupation must lie in [0, 1], got {}", crate::error::shown(n))));
            }
            n
        }
        (None, Some(t)) => {
            if t < 0.0 {
                return Err(QbatError::invalid("params.temperature", format!("must be >= 0, got {}", crate::error::shown(t))));
            }
            let omega_k = real_opt(p, "omega_k")?.unwrap_or(real(p, "w0")?);
            let mu = real(p, "mu")?;
            if fermion {
                // n = 1/(exp((omega_k - mu)/T) + 1); T = 0: step function.
                if t == 0.0 {
                    if omega_k < mu {
                        1.0
                    } else {
                        0.0
                    }
                } else {
                    1.0 / (((omega_k - mu) / t).exp() + 1.0)
                }
            } else {
                if omega_k <= 0.0 {
                    return Err(QbatError::invalid("params.omega_k", format!("a boson mode needs omega_k > 0, got {}", crate::error::shown(omega_k))));
                }
                // n = 1/(exp(omega_k/T) - 1); T = 0: n = 0.
                if t == 0.0 {
                    0.0
                } else {
                    1.0 / ((omega_k / t).exp_m1())
                }
            }
        }
        (None, None) => 0.0,
    };
    let big_n = if fermion { 1.0 - n } else { 1.0 + n };
    Ok((n, big_n))
}

pub fn build(p: &Params) -> Result<OpenSystem> {
    let (delta, g, f, w0) = (real(p, "delta")?, real(p, "g")?, real(p, "f")?, real(p, "w0")?);
    let gamma = rate(p, "gamma")?;
    let (n, big_n) = occupations(p)?;
    let (sp, sm, sz) = (sigma_plus(), sigma_minus(), sigma_z());
    let coupling = (kron(&sp, &sm) + kron(&sm, &sp)) * c(g, 0.0);
    let h = (on_charger(&sz) + on_battery(&sz)) * c(delta / 2.0, 0.0) + &coupling + on_charger(&sigma_x()) * c(f, 0.0);
    let list = vec![(on_charger(&sm), gamma * big_n), (on_battery(&sm), gamma * big_n), (on_charger(&sp), gamma * n), (on_battery(&sp), gamma * n)];
    Ok(OpenSystem {
        space: Space::TwoQubit,
        hamiltonian: h,
        jumps: jumps(list),
        h_battery: number_qubit() * c(w0, 0.0),
        h_charger: number_qubit() * c(w0, 0.0),
        dephasing: 0.0,
        coupling: std::sync::Arc::new(coupling),
    })
}
