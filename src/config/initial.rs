//! `[initial]`: the members' initial state: the model's default, an explicit ket or density
//! matrix, a seeded random kind, or bloch-charger's charger angles (fixed or swept).

use super::values::{as_ket, as_matrix, as_sweep, check_keys, invalid};
use super::{InitialSpec, STATE_TOL};
use crate::ensemble::random::RandomKind;
use crate::ensemble::sweep::Sweep;
use crate::error::Result;
use crate::linalg::{eigvals_hermitian, hermiticity_error, is_finite, projector, CMat};
use crate::model::{ModelKind, Space};
use std::sync::Arc;
use toml::Table;

/// The initial state of a config, with the charger angles: fixed (theta, phi) and swept axes.
pub struct InitialSection {
    pub spec: InitialSpec,
    pub angle_fixed: (f64, f64),
    pub angle_axes: Vec<(String, Vec<f64>)>,
}

/// Read `[initial]` for `model` in `space`.
/// With `auto_fock` (the cutoff chosen by `--auto-fock`), a full-space state whose dimension
/// no longer fits says why.
pub fn parse_initial(init_t: &Table, model: ModelKind, model_name: &str, space: Space, auto_fock: bool) -> Result<InitialSection> {
    check_keys(init_t, &["ket", "dm", "random", "theta", "phi"], "initial")?;
    let given: Vec<&str> = ["ket", "dm", "random"].into_iter().filter(|k| init_t.contains_key(*k)).collect();
    let angles = init_t.contains_key("theta") || init_t.contains_key("phi");
    if given.len() + usize::from(angles) > 1 {
        let mut got = given.clone();
        if angles {
            got.push("theta/phi");
        }
        return Err(invalid("initial", format!("give exactly one of ket, dm, random or theta/phi; got {}", got.join(", "))));
    }
    if angles && model != ModelKind::BlochCharger {
        return Err(invalid("initial.theta", format!("theta/phi apply to bloch-charger only, not '{model_name}'")));
    }
    let dim = space.dim();
    // The cavity models also take a state of their cells alone, tensored with the cavity start.
    let cells = match space {
        Space::Cavity { .. } => Some(4),
        Space::Dicke { n_cells, .. } => Some(n_cells + 1),
        Space::TwoQubit => None,
    };
    let chosen = match space {
        Space::Cavity { n_fock } | Space::Dicke { n_fock, .. } if auto_fock => Some(n_fock),
        _ => None,
    };
    let check_dimension = |n: usize, field: &str| check_dimension(n, dim, cells, chosen, field);
    let spec = if let Some(v) = init_t.get("ket") {
        let ket = as_ket(v, "initial.ket")?;
        if ket.is_empty() {
            return Err(invalid("initial.ket", "must be a non-empty list of amplitudes"));
        }
        let norm2: f64 = ket.iter().map(|z| z.norm_sqr()).sum();
        if (norm2 - 1.0).abs() > STATE_TOL {
            return Err(invalid("initial.ket", format!("must be normalised: |psi|^2 = {} (tolerance {STATE_TOL:e})", crate::error::shown(norm2))));
        }
        // (before the projector: a ket of 300,000 amplitudes would ask for a 1.4 TB matrix)
        check_dimension(ket.len(), "initial.ket")?;
        let rho = projector(&ket);
        check_state(&rho, "initial.ket")?;
        qubits_or_full(rho, dim, cells)
    } else if let Some(v) = init_t.get("dm") {
        let rho = as_matrix(v, "initial.dm")?;
        // (before the eigen-solve, which a matrix of the wrong size would cost for nothing)
        check_dimension(rho.nrows(), "initial.dm")?;
        check_state(&rho, "initial.dm")?;
        qubits_or_full(rho, dim, cells)
    } else if let Some(v) = init_t.get("random") {
        let name = v.as_str().ok_or_else(|| invalid("initial.random", "must be a string"))?;
        if model == ModelKind::Dicke {
            return Err(invalid(
                "initial.random",
                "the random kinds are two-qubit states; dicke takes ket or dm (cells or full space), or photons/alpha/dicke_m in [params]",
            ));
        }
        InitialSpec::Random(RandomKind::from_name(name)?)
    } else {
        InitialSpec::Default
    };
    let mut sec = InitialSection { spec, angle_fixed: (std::f64::consts::PI, 0.0), angle_axes: vec![] };
    for (k, slot) in [("theta", 0), ("phi", 1)] {
        if let Some(v) = init_t.get(k) {
            let field = format!("initial.{k}");
            match as_sweep(v, &field)? {
                Sweep::Fixed(x) => {
                    if slot == 0 {
                        sec.angle_fixed.0 = x
                    } else {
                        sec.angle_fixed.1 = x
                    }
                }
                Sweep::Values(vals) => sec.angle_axes.push((k.to_string(), vals)),
                Sweep::Uniform(..) => return Err(invalid(&field, "use random = \"bloch\" for random angles; uniform is not supported here")),
            }
        }
    }
    Ok(sec)
}

/// An explicit state, its dimension and entries checked: full-space, or (cavity models) a
/// state of the cells (dimension `cells`: 4 for cavity-cells, N + 1 for dicke) to tensor with
/// the cavity start.
fn qubits_or_full(rho: CMat, dim: usize, cells: Option<usize>) -> InitialSpec {
    if rho.nrows() == dim && cells.is_some() {
        InitialSpec::Full(Arc::new(rho))
    } else {
        InitialSpec::Qubits(Arc::new(rho))
    }
}

/// A state's dimension `n` is the space's `dim`, or (cavity models) that of the cells. Where
/// `--auto-fock` chose the cutoff (`chosen`) and `n` is a multiple of the cells' dimension (a
/// state of the whole space at another cutoff), the refusal says why.
fn check_dimension(n: usize, dim: usize, cells: Option<usize>, chosen: Option<usize>, field: &str) -> Result<()> {
    if n == dim || cells == Some(n) {
        return Ok(());
    }
    let expect = match cells {
        Some(k) => format!("{dim} (or {k} for the cells, tensored with the cavity state)"),
        None => dim.to_string(),
    };
    let mut reason = format!("has dimension {n}, the model needs {expect}");
    if let (Some(n_fock), Some(k)) = (chosen, cells) {
        if n > k && n % k == 0 {
            reason += &format!("; --auto-fock chose n_fock = {n_fock} from the parameters, and a state of the whole space fixes its own cutoff; drop --auto-fock (set params.n_fock to the state's), or give the cells' state alone");
        }
    }
    Err(invalid(field, reason))
}

/// Normalised, Hermitian and positive to STATE_TOL.
pub fn check_state(rho: &CMat, field: &str) -> Result<()> {
    // (a NaN passes every comparison below)
    if !is_finite(rho) {
        return Err(invalid(field, "must be finite"));
    }
    let herm = hermiticity_error(rho);
    if herm > STATE_TOL {
        return Err(invalid(field, format!("must be Hermitian: largest |rho_ij - conj rho_ji| = {herm:.3e}")));
    }
    let tr = rho.trace();
    if (tr.re - 1.0).abs() > STATE_TOL || tr.im.abs() > STATE_TOL {
        return Err(invalid(field, format!("must have unit trace, got {}", crate::error::shown(tr.re))));
    }
    let lam = eigvals_hermitian(rho)[0];
    if lam < -STATE_TOL {
        return Err(invalid(field, format!("must be positive semidefinite: smallest eigenvalue {lam:.3e}")));
    }
    Ok(())
}
