//! The contract between the run pipeline and the two-qubit engines (GPU kernel and its CPU twin).
//! Everything here is already validated; engines only step and measure.

use crate::measures::Measure;

/// One segment of the time grid: from the previous sample time (or t = 0) to the next
/// sample time, `n_full` RK4 steps of `dt` followed by one shortened step of `h_last`
/// (`h_last` = 0 means none). The integrator so lands exactly on every sample time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Segment {
    pub n_full: u64,
    pub h_last: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub dt: f64,
    pub times: Vec<f64>,
    pub segments: Vec<Segment>,
}

impl Schedule {
    /// Build the steps that land on each sample time. Times must be >= 0 and increasing
    /// (checked by the config layer). A gap within 1e-9 relative of a whole number of steps
    /// is taken as whole, so that t_end = 20, samples = 2001, dt = 1e-3 gives 10 steps each.
    pub fn new(dt: f64, times: &[f64]) -> Schedule {
        let mut segments = Vec::with_capacity(times.len());
        let mut prev = 0.0;
        for &t in times {
            let gap = t - prev;
            let ratio = gap / dt;
            let nearest = ratio.round();
            let seg = if (ratio - nearest).abs() <= 1e-9 * ratio.max(1.0) {
                Segment { n_full: nearest as u64, h_last: 0.0 }
            } else {
                let n = ratio.floor();
                Segment { n_full: n as u64, h_last: gap - n * dt }
            };
            segments.push(seg);
            prev = t;
        }
        Schedule { dt, times: times.to_vec(), segments }
    }

    /// The schedule of a steady-state run (`[time] steady = true`): one sample at t = inf and
    /// no RK4 step (dt = 0 is never stepped with; `total_steps()` is 0).
    pub fn steady() -> Schedule {
        Schedule { dt: 0.0, times: vec![f64::INFINITY], segments: vec![Segment { n_full: 0, h_last: 0.0 }] }
    }

    /// Is this the one-sample t = inf schedule of a steady-state run?
    pub fn is_steady(&self) -> bool {
        self.times.len() == 1 && self.times[0] == f64::INFINITY && self.total_steps() == 0
    }

    /// Total RK4 steps per member (full and shortened).
    pub fn total_steps(&self) -> u64 {
        self.segments.iter().map(|s| s.n_full + u64::from(s.h_last > 0.0)).sum()
    }
}

/// Pauli coefficients of a 2x2 Hermitian H = h0 I + hx sx + hy sy + hz sz (project convention).
pub type Pauli2 = [f64; 4];

/// Two-qubit state in the Pauli basis: x[4a + b] = Tr(rho sigma_a (x) sigma_b),
/// a = charger, b = battery, sigma = (I, sx, sy, sz) in the project convention;
/// rho = (1/4) sum_ab x[4a + b] sigma_a (x) sigma_b, so x[0] = Tr rho.
pub type Pauli4 = [f64; 16];

/// One parameter point of a two-qubit ensemble.
#[derive(Clone, Debug, PartialEq)]
pub struct TwoQubitPoint {
    /// Row-major real generator: dx/dt = G x (the Lindblad equation in the Pauli basis).
    pub generator: [f64; 256],
    pub h_battery: Pauli2,
    pub h_charger: Pauli2,
    /// Phase-flip probability applied to each sample before the measures (spin-pair).
    pub dephasing: f64,
}

#[derive(Clone, Debug)]
pub struct TwoQubitJob {
    pub points: Vec<TwoQubitPoint>,
    /// Parameter point of each member (index into `points`).
    pub member_point: Vec<u32>,
    /// Initial state of each member.
    pub initial: Vec<Pauli4>,
    pub schedule: Schedule,
    /// The closed-form measures the engine is asked for, in column order.
    pub measures: Vec<Measure>,
    /// Also return each member's state at every sample (for host-side eigen measures).
    pub keep_states: bool,
}

/// The four per-member peaks of paper 004: t_E, t_erg, t_P, t_ergP.
pub const PEAK_MEASURES: [Measure; 4] = [Measure::EnergyB, Measure::ErgotropyB, Measure::PowerB, Measure::ErgotropicPowerB];

/// Max and first time of the max of one measure over the samples.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Peak {
    pub max: f64,
    pub t_max: f64,
}

#[derive(Clone, Debug)]
pub struct TwoQubitResult {
    /// Column order of `values` (= the job's `measures`).
    pub measures: Vec<Measure>,
    /// values[(member * n_samples + sample) * n_measures + k]
    pub values: Vec<f64>,
    /// states[(member * n_samples + sample) * 16 + i], when asked for.
    pub states: Option<Vec<f64>>,
    /// peaks[member * 4 + k], k over PEAK_MEASURES.
    pub peaks: Vec<Peak>,
}

/// One parameter point of a cavity ensemble: the structured engine's coefficients and the
/// battery Hamiltonian (2x2, row-major, on cell 2) for Z(0) = {H_B, rho0}/2.
#[derive(Clone, Debug, PartialEq)]
pub struct CavityPoint {
    pub coeffs: crate::twin::rk4_cavity::CavityCoeffs,
    pub h_battery: [crate::linalg::C64; 4],
}

/// A cavity-cells ensemble for the GPU engine. Every point has the same cutoff `n_fock`.
/// Initial states are built on demand, chunk by chunk (a full state is dim^2 complex numbers,
/// too many to hold for a whole large ensemble).
pub struct CavityJob<'a> {
    pub n_fock: usize,
    pub points: Vec<CavityPoint>,
    /// Parameter point of each member (index into `points`); its length is the member count.
    pub member_point: Vec<u32>,
    /// Member i's initial density matrix, dim x dim, dim = 4 (n_fock + 1), Hermitian (the
    /// engine takes its upper triangle).
    pub initial: &'a (dyn Fn(usize) -> crate::linalg::CMat + Sync),
    pub schedule: Schedule,
    /// Also evolve Z(t) = e^{Lt}[{H_B, rho0}/2] (for energy_fluctuation_b).
    pub evolve_z: bool,
}

impl std::fmt::Debug for CavityJob<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CavityJob")
            .field("n_fock", &self.n_fock)
            .field("points", &self.points.len())
            .field("members", &self.member_point.len())
            .field("samples", &self.schedule.times.len())
            .field("evolve_z", &self.evolve_z)
            .finish_non_exhaustive()
    }
}
