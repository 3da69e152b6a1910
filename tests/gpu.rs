//! The GPU kernels against their CPU twins and the f64 reference, in a binary of their own:
//! they share one adapter and `common::SERIAL`, so that they never run at once. Without an
//! adapter they skip with a note, unless QBAT_REQUIRE_GPU=1 (CI), where they fail.

mod common;

/// the cavity kernel
mod gpu_cavity;
/// `[[drive]]` on the cavity kernel
mod gpu_cavity_drives;
/// the dicke kernel
mod gpu_dicke;
/// [[drive]] in the two-qubit kernel
mod gpu_drives;
/// the eigen-solve measures kernel
mod gpu_measures_two_qubit;
/// the GPU engine through run_plan and the binary
mod gpu_pipeline;
/// the two-qubit kernel
mod gpu_two_qubit;
