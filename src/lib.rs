//! qbat-gpu: large ensembles of open quantum batteries (two qubits, and two cells with a cavity
//! mode), stepped with fixed-step RK4 under the Lindblad equation, on the GPU (WGSL through wgpu)
//! and on an f64 CPU reference (nalgebra) that validates it.
//!
//! Data path: config -> Plan -> ensemble -> backend (reference, twin or gpu) -> measures -> output.

pub mod analyze;
pub mod bench;
pub mod config;
pub mod describe;
pub mod engine;
pub mod ensemble;
pub mod error;
pub mod gpu;
pub mod job;
pub mod linalg;
pub mod measures;
pub mod model;
pub mod output;
pub mod pauli;
pub mod pyapi;
pub mod reference;
pub mod report;
pub mod run;
pub mod steady;
pub mod study;
pub mod twin;
pub mod validate;
