//! The two-qubit measures kernel's contract (`shaders/measures_two_qubit.wgsl`), shared by its
//! host (`gpu::measures_two_qubit`) and its CPU twin (`twin::measures_two_qubit`): the
//! eigen-solve measures it computes, their codes and flag bits, the per-point constants and
//! the uniform `MeasureParams`.
//!
//! The kernel reads the (dephased) sample states the integrator kernel wrote on the device and
//! writes the eigen-solve measures of each (member, sample), member-minor as the integrator
//! leaves the states (the host's read-back makes them rows). `tests/layouts.rs` parses the
//! shader with naga and checks it against this file.

use super::two_qubit::TwoQubitPoint;
use crate::measures::Measure::{self, *};
use bytemuck::{Pod, Zeroable};

/// The measures of this kernel; a measure's code is its index here. Exactly the measures of
/// `Measure::needs_eigensolve` (tests/layouts.rs checks both). Keep in sync with the `E_*`
/// constants in shaders/measures_two_qubit.wgsl.
pub const EIGEN_MEASURES: [Measure; 6] = [CapacityTotal, ResidualCapacity, Concurrence, SteeringAb, SteeringBa, MinEigenvalue];
pub const N_EIGEN_CODES: usize = EIGEN_MEASURES.len();

/// The code of a measure in this kernel, or None.
pub fn eigen_code(m: Measure) -> Option<u32> {
    EIGEN_MEASURES.iter().position(|&k| k == m).map(|i| i as u32)
}

/// Flag bits: which solves a job needs (keep in sync with the shader's `G_*`).
/// G_SPECTRUM: the 4x4 Hermitian Jacobi of rho (capacity_total, residual_capacity,
/// min_eigenvalue); G_CONCURRENCE: also its eigenvectors and the singular values of
/// X^T S X; G_LOO: the singular values of the 4x4 LOO matrix.
pub const G_SPECTRUM: u32 = 1;
pub const G_CONCURRENCE: u32 = 2;
pub const G_LOO: u32 = 4;

/// The flag word for a list of eigen measures.
pub fn eigen_flags(measures: &[Measure]) -> u32 {
    let mut f = 0;
    for m in measures {
        f |= match m {
            CapacityTotal | ResidualCapacity | MinEigenvalue => G_SPECTRUM,
            Concurrence => G_SPECTRUM | G_CONCURRENCE,
            SteeringAb | SteeringBa => G_LOO,
            _ => 0,
        };
    }
    f
}

/// Cyclic Jacobi sweeps at most (both solvers stop after a sweep that rotated nothing; a 4x4
/// converges quadratically, in 4 to 6 sweeps in f64).
pub const MAX_SWEEPS: u32 = 12;
/// |theta| above which t = 1 / (2 theta) replaces t = 1 / (|theta| + sqrt(theta^2 + 1))
/// (theta^2 would overflow f32; the relative error of the short form is 1 / (4 theta^2)).
pub const BIG_THETA: f64 = 1e15;

/// The eigen-solve measures of a two-qubit job: the columns, and per point of the job (same
/// index as `TwoQubitJob::points`) the spectrum of the full Hamiltonian, ascending.
#[derive(Clone, Debug, PartialEq)]
pub struct EigenJob {
    pub measures: Vec<Measure>,
    pub h_total_eigs: Vec<[f64; 4]>,
}

impl EigenJob {
    pub fn is_empty(&self) -> bool {
        self.measures.is_empty()
    }
    /// The same measures for the points `used` (indices into this job's points), in that order.
    pub fn select(&self, used: &[u32]) -> EigenJob {
        EigenJob { measures: self.measures.clone(), h_total_eigs: used.iter().map(|&p| self.h_total_eigs[p as usize]).collect() }
    }
}

/// vec4s per point in the kernel's `consts`.
pub const EIGEN_POINT_VEC4: u64 = 2;

/// The per-point constants, in f64, of the spectrum eps of H (ascending): the gaps
/// (eps_3 - eps_0, eps_2 - eps_1, 0, 0), with which capacity_total is offset-free
/// ((eps_3 - eps_0)(lam_3 - lam_0) + (eps_2 - eps_1)(lam_2 - lam_1)), then (|h_B|, |h_C|, 0, 0),
/// the Bloch-vector norms of the local Hamiltonians (capacity of a qubit: 2 |h| |r|).
pub fn eigen_point(p: &TwoQubitPoint, eps: &[f64; 4]) -> [f64; 8] {
    let norm3 = |h: &[f64; 4]| (h[1] * h[1] + h[2] * h[2] + h[3] * h[3]).sqrt();
    [eps[3] - eps[0], eps[2] - eps[1], 0.0, 0.0, norm3(&p.h_battery), norm3(&p.h_charger), 0.0, 0.0]
}

/// Invocations per workgroup (one invocation per (member, sample)).
pub const EIGEN_WORKGROUP_SIZE: u32 = 64;
/// Output columns the uniform has room for.
pub const MAX_EIGEN_COLS: usize = 8;

/// The measures kernel's uniform. Mirrors `struct MeasureParams` in
/// shaders/measures_two_qubit.wgsl (checked by tests/layouts.rs).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct MeasureParams {
    pub n_members: u32,
    pub n_samples: u32,
    pub n_cols: u32,
    pub flags: u32,
    /// Workgroups along x (the dispatch is 2D when one dimension is not enough).
    pub groups_x: u32,
    pub _pad: [u32; 3],
    /// Code of each output column, 4 per row.
    pub cols: [[u32; 4]; 2],
}
const _: () = assert!(std::mem::size_of::<MeasureParams>() == 64);
const _: () = assert!(MAX_EIGEN_COLS == 4 * 2);
