//! The drive layout shared by `shaders/drive.wgsl` (a WGSL library the drive-taking kernels
//! include), its twin `twin/drive.rs` and the hosts: the envelope codes and the most drives a
//! job takes. `tests/layouts.rs` checks the codes against the WGSL.

/// Envelope codes: ENV_CONSTANT env = 1, ENV_GAUSSIAN exp(-((t - a)/b)^2 / 2), ENV_WINDOW 1
/// where the step's midpoint lies in [a, b).
pub const ENV_CONSTANT: u32 = 0;
pub const ENV_GAUSSIAN: u32 = 1;
pub const ENV_WINDOW: u32 = 2;
/// Most drives a job takes (the twins keep the stage coefficients in fixed arrays of this
/// size).
pub const MAX_DRIVES: usize = 8;
