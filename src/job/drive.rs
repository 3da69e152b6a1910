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

/// A drive's time profile in the kernels' form: c(t) = amplitude env(t) cos(frequency t +
/// phase), env by code (ENV_CONSTANT 1, ENV_GAUSSIAN exp(-((t - env_a)/env_b)^2 / 2),
/// ENV_WINDOW 1 where the step's midpoint lies in [env_a, env_b)). Shared by the two-qubit and
/// cavity drive layouts, which add their operator's form.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DriveCoeffs {
    pub amplitude: f64,
    pub frequency: f64,
    pub phase: f64,
    pub env: u32,
    pub env_a: f64,
    pub env_b: f64,
}

impl DriveCoeffs {
    pub fn of(d: &crate::model::drive::Drive) -> Self {
        use crate::model::drive::Envelope;
        let (env, env_a, env_b) = match d.envelope {
            Envelope::Constant => (ENV_CONSTANT, 0.0, 0.0),
            Envelope::Gaussian { t0, sigma } => (ENV_GAUSSIAN, t0, sigma),
            Envelope::Window { t_on, t_off } => (ENV_WINDOW, t_on, t_off),
        };
        DriveCoeffs { amplitude: d.amplitude, frequency: d.frequency, phase: d.phase, env, env_a, env_b }
    }
}
