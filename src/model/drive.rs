//! Time-dependent drives (`[[drive]]`): terms added to a model's Hamiltonian,
//!   H(t) = H + sum_k c_k(t) O_k,   c_k(t) = amplitude_k * env_k(t) * cos(frequency_k t + phase_k),
//! with env = 1 (constant), exp(-(t - t0)^2 / (2 sigma^2)) (gaussian) or 1 on [t_on, t_off)
//! and 0 elsewhere (window). The measures keep the model's H_B and H_C.

use crate::error::{QbatError, Result};
use crate::linalg::{c, identity, kron, sigma_x, sigma_y, sigma_z, CMat};
use crate::model::{cavity_cells::annihilation, Space};

/// The time profile of a drive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Envelope {
    Constant,
    Gaussian { t0: f64, sigma: f64 },
    Window { t_on: f64, t_off: f64 },
}

impl Envelope {
    pub fn at(&self, t: f64) -> f64 {
        match *self {
            Envelope::Constant => 1.0,
            Envelope::Gaussian { t0, sigma } => {
                let u = (t - t0) / sigma;
                (-0.5 * u * u).exp()
            }
            Envelope::Window { t_on, t_off } => {
                if t >= t_on && t < t_off {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }

    /// Where a window opens and closes (the schedule ends a segment at each, `job::Schedule`).
    pub fn edges(&self) -> Option<[f64; 2]> {
        match *self {
            Envelope::Window { t_on, t_off } => Some([t_on, t_off]),
            _ => None,
        }
    }

    /// The largest env(t) over [0, t_end], for the RK4 stability check.
    pub fn max_over(&self, t_end: f64) -> f64 {
        match *self {
            Envelope::Constant => 1.0,
            Envelope::Gaussian { t0, .. } => self.at(t0.clamp(0.0, t_end)),
            Envelope::Window { t_on, t_off } => {
                if t_on <= t_end && t_off > 0.0 && t_off > t_on {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }
}

/// One drive of one parameter point: its operator in the model's full space and its
/// (possibly swept) amplitude and frequency.
#[derive(Clone, Debug, PartialEq)]
pub struct Drive {
    /// Hermitian, dim x dim; shared by the parameter points (a point's copy of the drive
    /// changes only its amplitude and frequency).
    pub op: std::sync::Arc<CMat>,
    /// The operator's name, or None for a matrix given in the config.
    pub name: Option<String>,
    pub amplitude: f64,
    pub frequency: f64,
    pub phase: f64,
    pub envelope: Envelope,
}

impl Drive {
    /// c(t) = amplitude * env(t) * cos(frequency t + phase).
    pub fn coeff(&self, t: f64) -> f64 {
        self.amplitude * self.envelope.at(t) * (self.frequency * t + self.phase).cos()
    }

    /// c at a stage time t of an RK4 step whose midpoint is t_mid. A window switches whole
    /// steps: env = 1 on every stage of a step whose midpoint lies in [t_on, t_off), else 0, so
    /// that a step ending at t_on is undriven and one starting there is driven. The schedule
    /// ends a segment at every edge (`job::Schedule::with_edges`), so no step straddles one.
    pub fn coeff_in_step(&self, t: f64, t_mid: f64) -> f64 {
        let env = match self.envelope {
            Envelope::Window { .. } => self.envelope.at(t_mid),
            e => e.at(t),
        };
        if env == 0.0 {
            return 0.0;
        }
        self.amplitude * env * (self.frequency * t + self.phase).cos()
    }
}

/// H(t) = h + sum_k c_k(t) O_k.
pub fn hamiltonian_at(h: &CMat, drives: &[Drive], t: f64) -> CMat {
    let mut out = h.clone();
    for d in drives {
        out += &*d.op * c(d.coeff(t), 0.0);
    }
    out
}

/// The named operators of a space: (name, matrix in the full space).
/// Two qubits: sx_b sy_b sz_b sx_c sy_c sz_c (battery = right factor, charger = left).
/// cavity-cells: sx_1 .. sz_2 on the cells (cell 1 = charger side, cell 2 = battery) and
/// x_a = a + a^+, y_a = i(a^+ - a) on the mode.
pub fn named_operators(space: Space) -> Vec<(&'static str, CMat)> {
    let paulis = [("x", sigma_x()), ("y", sigma_y()), ("z", sigma_z())];
    let i2 = identity(2);
    match space {
        Space::TwoQubit => {
            let mut out = vec![];
            for (s, p) in &paulis {
                out.push((name_b(s), kron(&i2, p)));
            }
            for (s, p) in &paulis {
                out.push((name_c(s), kron(p, &i2)));
            }
            out
        }
        Space::Cavity { n_fock } => {
            let im = identity(n_fock + 1);
            let mut out = vec![];
            for (s, p) in &paulis {
                out.push((name_1(s), kron(&kron(p, &i2), &im)));
            }
            for (s, p) in &paulis {
                out.push((name_2(s), kron(&kron(&i2, p), &im)));
            }
            let a = annihilation(n_fock);
            let ad = a.adjoint();
            let i4 = identity(4);
            out.push(("x_a", kron(&i4, &(&a + &ad))));
            out.push(("y_a", kron(&i4, &((&ad - &a) * c(0.0, 1.0)))));
            out
        }
        Space::Dicke { .. } => vec![],
    }
}

fn name_b(s: &str) -> &'static str {
    match s {
        "x" => "sx_b",
        "y" => "sy_b",
        _ => "sz_b",
    }
}
fn name_c(s: &str) -> &'static str {
    match s {
        "x" => "sx_c",
        "y" => "sy_c",
        _ => "sz_c",
    }
}
fn name_1(s: &str) -> &'static str {
    match s {
        "x" => "sx_1",
        "y" => "sy_1",
        _ => "sz_1",
    }
}
fn name_2(s: &str) -> &'static str {
    match s {
        "x" => "sx_2",
        "y" => "sy_2",
        _ => "sz_2",
    }
}

/// The named operator `name` of `space`, or an error naming `field` and the known names.
pub fn named_operator(space: Space, name: &str, field: &str) -> Result<CMat> {
    let ops = named_operators(space);
    let known: Vec<&str> = ops.iter().map(|(n, _)| *n).collect();
    ops.into_iter().find(|(n, _)| *n == name).map(|(_, m)| m).ok_or_else(|| {
        if known.is_empty() {
            QbatError::invalid(field, "this model has no named drive operators")
        } else {
            QbatError::invalid(field, format!("unknown drive operator '{name}'; known: {}", known.join(", ")))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::{hermiticity_error, max_abs_diff, on_battery, on_charger};

    #[test]
    fn named_two_qubit_operators_act_on_their_qubit() {
        let ops = named_operators(Space::TwoQubit);
        assert_eq!(ops.len(), 6);
        assert!(max_abs_diff(&ops[2].1, &on_battery(&sigma_z())) == 0.0);
        assert!(max_abs_diff(&ops[3].1, &on_charger(&sigma_x())) == 0.0);
        // sz_b = |e><e| - |g><g| on the battery: |gg> (index 0) has -1, |ge> (index 1) has +1.
        assert_eq!(ops[2].1[(0, 0)].re, -1.0);
        assert_eq!(ops[2].1[(1, 1)].re, 1.0);
        for (_, o) in named_operators(Space::Cavity { n_fock: 3 }) {
            assert_eq!(hermiticity_error(&o), 0.0);
            assert_eq!(o.nrows(), 16);
        }
    }

    #[test]
    fn envelopes() {
        let g = Envelope::Gaussian { t0: 2.0, sigma: 0.5 };
        assert_eq!(g.at(2.0), 1.0);
        assert!((g.at(2.5) - (-0.5f64).exp()).abs() < 1e-16);
        assert!((g.max_over(1.0) - g.at(1.0)).abs() < 1e-16);
        let w = Envelope::Window { t_on: 1.0, t_off: 2.0 };
        assert_eq!((w.at(0.999), w.at(1.0), w.at(1.999), w.at(2.0)), (0.0, 1.0, 1.0, 0.0));
        assert_eq!(w.max_over(0.5), 0.0);
        assert_eq!(w.max_over(1.5), 1.0);
    }
}
