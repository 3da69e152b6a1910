//! `--save-states`: which state of a sample is saved (states.npy), its dimension and its basis
//! order (docs/interface.md "states.npy").
//!
//! - two-qubit models: the 4x4 two-qubit state the measures see (spin-pair: after the
//!   dephasing channel), basis (charger, battery);
//! - cavity-cells: the reduced (cell 1, cell 2) state, or with `full` the whole
//!   4 (n_fock + 1) state, basis (cell 1, cell 2, Fock n);
//! - dicke: the cells' reduced state on the symmetric subspace, (N + 1)-square, basis
//!   k = 0..N excited cells, or with `full` the whole (N + 1)(n_fock + 1) state, basis (k, n).

use super::two_qubit_part;
use crate::linalg::CMat;
use crate::model::Space;
use serde::{Deserialize, Serialize};

/// What `--save-states` keeps of each sampled state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateSave {
    /// The two-qubit state (cavity-cells: the cells, the cavity traced out; dicke: the cells).
    Reduced,
    /// The model's full state.
    Full,
}

impl StateSave {
    pub fn name(self) -> &'static str {
        match self {
            StateSave::Reduced => "reduced",
            StateSave::Full => "full",
        }
    }
}

/// d of the saved d x d states.
pub fn saved_dim(space: Space, save: StateSave) -> usize {
    match (space, save) {
        (Space::TwoQubit, _) | (Space::Cavity { .. }, StateSave::Reduced) => 4,
        (Space::Dicke { n_cells, .. }, StateSave::Reduced) => n_cells + 1,
        (_, StateSave::Full) => space.dim(),
    }
}

/// The saved state of a sample from the model's full state `rho`.
pub fn saved_state(space: Space, rho: &CMat, dephasing: f64, save: StateSave) -> CMat {
    match (space, save) {
        (Space::TwoQubit, _) | (Space::Cavity { .. }, StateSave::Reduced) => two_qubit_part(space, rho, dephasing),
        (Space::Dicke { n_cells, n_fock }, StateSave::Reduced) => crate::model::dicke::reduced_cells(rho, n_cells, n_fock),
        (_, StateSave::Full) => rho.clone(),
    }
}

/// The saved state's basis, slowest factor first, for states.json.
pub fn basis(space: Space, save: StateSave) -> Vec<String> {
    let s = |x: &str| x.to_string();
    match (space, save) {
        (Space::TwoQubit, _) | (Space::Cavity { .. }, StateSave::Reduced) => {
            vec![s("charger (cell 1): g, e"), s("battery (cell 2): g, e")]
        }
        (Space::Cavity { n_fock }, StateSave::Full) => {
            vec![s("cell 1 (charger side): g, e"), s("cell 2 (battery): g, e"), format!("cavity Fock n: 0..{n_fock}")]
        }
        (Space::Dicke { n_cells, .. }, StateSave::Reduced) => vec![format!("cells, symmetric subspace, excited cells k: 0..{n_cells}")],
        (Space::Dicke { n_cells, n_fock }, StateSave::Full) => {
            vec![format!("cells, symmetric subspace, excited cells k: 0..{n_cells}"), format!("cavity Fock n: 0..{n_fock}")]
        }
    }
}

/// Append a d x d state to `out`, row-major.
pub fn push_row_major(out: &mut Vec<crate::linalg::C64>, m: &CMat) {
    for i in 0..m.nrows() {
        for j in 0..m.ncols() {
            out.push(m[(i, j)]);
        }
    }
}
