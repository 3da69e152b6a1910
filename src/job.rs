//! The contract between the run pipeline and the two-qubit engines (GPU kernel and its CPU twin).
//! Everything here is already validated; engines only step and measure.

use crate::measures::Measure;

/// One segment of the time grid: from the previous boundary (a sample time, the switch-off
/// time, or t = 0) to the next, `n_full` RK4 steps of `dt` followed by one shortened step of
/// `h_last` (`h_last` = 0 means none). The integrator so lands exactly on every sample time and
/// on the switch-off time of a `[protocol]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Segment {
    pub n_full: u64,
    pub h_last: f64,
    /// What happens where the segment ends.
    pub end: SegmentEnd,
}

/// Where a segment ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentEnd {
    /// At sample time `times[s]`: the state is measured.
    Sample(usize),
    /// At the switch-off time T of `[protocol]`: no sample; every later step runs with the
    /// charger-battery coupling off (the model's uncoupled generator).
    SwitchOff,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub dt: f64,
    pub times: Vec<f64>,
    pub segments: Vec<Segment>,
    /// `[protocol] switch_off`, as given (also when it lies after the last sample and so
    /// changes nothing).
    pub switch_off: Option<f64>,
}

/// (n_full, h_last) for a gap: a gap within 1e-9 relative of a whole number of steps is taken
/// as whole, so that t_end = 20, samples = 2001, dt = 1e-3 gives 10 steps each.
fn steps_for_gap(gap: f64, dt: f64) -> (u64, f64) {
    let ratio = gap / dt;
    let nearest = ratio.round();
    if (ratio - nearest).abs() <= 1e-9 * ratio.max(1.0) {
        (nearest as u64, 0.0)
    } else {
        let n = ratio.floor();
        (n as u64, gap - n * dt)
    }
}

impl Schedule {
    /// Build the steps that land on each sample time. Times must be >= 0 and increasing
    /// (checked by the config layer).
    pub fn new(dt: f64, times: &[f64]) -> Schedule {
        Schedule::with_switch_off(dt, times, None)
    }

    /// As `new`, and where `switch_off` = Some(T) with 0 < T <= the last sample time, the
    /// segment that holds T is split so that one segment ends exactly at T without a sample
    /// (`SegmentEnd::SwitchOff`). Where T is a sample time the sample comes first (the state at
    /// T is the same either way) and the switch segment is empty. The segments before T are
    /// those of `new`, so every sample before T is bit for bit that of a run without protocol.
    pub fn with_switch_off(dt: f64, times: &[f64], switch_off: Option<f64>) -> Schedule {
        let mut segments = Vec::with_capacity(times.len() + 1);
        let mut prev = 0.0;
        let mut pending = switch_off.filter(|t| *t > 0.0);
        for (s, &t) in times.iter().enumerate() {
            if let Some(t_off) = pending.filter(|t_off| *t_off < t) {
                let (n_full, h_last) = steps_for_gap(t_off - prev, dt);
                segments.push(Segment { n_full, h_last, end: SegmentEnd::SwitchOff });
                prev = t_off;
                pending = None;
            }
            let (n_full, h_last) = steps_for_gap(t - prev, dt);
            segments.push(Segment { n_full, h_last, end: SegmentEnd::Sample(s) });
            prev = t;
            if pending == Some(t) {
                segments.push(Segment { n_full: 0, h_last: 0.0, end: SegmentEnd::SwitchOff });
                pending = None;
            }
        }
        Schedule { dt, times: times.to_vec(), segments, switch_off }
    }

    /// The schedule of a steady-state run (`[time] steady = true`): one sample at t = inf and
    /// no RK4 step (dt = 0 is never stepped with; `total_steps()` is 0).
    pub fn steady() -> Schedule {
        Schedule { dt: 0.0, times: vec![f64::INFINITY], segments: vec![Segment { n_full: 0, h_last: 0.0, end: SegmentEnd::Sample(0) }], switch_off: None }
    }

    /// Is this the one-sample t = inf schedule of a steady-state run?
    pub fn is_steady(&self) -> bool {
        self.times.len() == 1 && self.times[0] == f64::INFINITY && self.total_steps() == 0
    }

    /// Total RK4 steps per member (full and shortened).
    pub fn total_steps(&self) -> u64 {
        self.segments.iter().map(|s| s.n_full + u64::from(s.h_last > 0.0)).sum()
    }

    /// Index of the segment that ends at the switch-off time, if the coupling goes off within
    /// the run.
    pub fn switch_segment(&self) -> Option<usize> {
        self.segments.iter().position(|s| s.end == SegmentEnd::SwitchOff)
    }

    /// Segments that end in a sample (one per sample time, in order).
    pub fn sample_segments(&self) -> usize {
        self.segments.iter().filter(|s| matches!(s.end, SegmentEnd::Sample(_))).count()
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
    /// The generator with the charger-battery coupling off (`[protocol] switch_off`), for the
    /// steps after the schedule's switch-off segment; None where the run has no switch.
    pub generator_off: Option<Box<[f64; 256]>>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn steps_to(s: &Schedule, upto: usize, dt: f64) -> f64 {
        s.segments[..upto].iter().map(|g| g.n_full as f64 * dt + g.h_last).sum()
    }

    #[test]
    fn switch_off_splits_the_segment_that_holds_it() {
        let (dt, times) = (0.1, [0.0, 1.0, 2.0, 3.0]);
        let plain = Schedule::new(dt, &times);
        let s = Schedule::with_switch_off(dt, &times, Some(1.234));
        assert_eq!(s.segments.len(), 5);
        // the segments before T are those without protocol
        assert_eq!(s.segments[..2], plain.segments[..2]);
        let k = s.switch_segment().unwrap();
        assert_eq!(k, 2);
        assert_eq!(s.segments[k].n_full, 2);
        assert!((steps_to(&s, k + 1, dt) - 1.234).abs() < 1e-12, "lands on T");
        assert_eq!(s.segments[k + 1].end, SegmentEnd::Sample(2));
        assert!((steps_to(&s, k + 2, dt) - 2.0).abs() < 1e-12, "lands on the next sample");
        assert_eq!(s.sample_segments(), times.len());
        assert_eq!(s.segments[4], plain.segments[3]);
    }

    #[test]
    fn switch_off_at_a_sample_before_the_first_or_after_the_last() {
        let times = [0.5, 1.0, 2.0];
        // at a sample time: the sample first, then an empty switch segment
        let s = Schedule::with_switch_off(0.1, &times, Some(1.0));
        assert_eq!(s.segments[..2], Schedule::new(0.1, &times).segments[..2]);
        assert_eq!(s.segments[2], Segment { n_full: 0, h_last: 0.0, end: SegmentEnd::SwitchOff });
        assert_eq!(s.total_steps(), Schedule::new(0.1, &times).total_steps());
        // before the first sample
        let s = Schedule::with_switch_off(0.1, &times, Some(0.25));
        assert_eq!(s.switch_segment(), Some(0));
        assert!((s.segments[0].n_full as f64 * 0.1 + s.segments[0].h_last - 0.25).abs() < 1e-15);
        // after the last: no switch within the run
        let s = Schedule::with_switch_off(0.1, &times, Some(7.0));
        assert_eq!(s.switch_segment(), None);
        assert_eq!(s.segments, Schedule::new(0.1, &times).segments);
        assert_eq!(s.switch_off, Some(7.0));
    }
}
