//! Contracts and layouts shared by the kernels (`shaders/`), their hosts (`gpu/`) and their
//! CPU twins (`twin/`): the time grid, the working precision, the peaks, and one file per
//! kernel (`two_qubit.rs`, `cavity.rs`). `gpu/` and `twin/` meet here and never import each
//! other. Everything here is already validated; engines only step and measure.

pub mod cavity;
pub mod columns;
pub mod dicke;
pub mod drive;
pub mod footprint;
pub mod measures_two_qubit;
pub mod pauli;
pub mod two_qubit;

pub use cavity::{CavityCoeffs, CavityJob, CavityPoint};
pub use two_qubit::{Pauli2, Pauli4, TwoQubitJob, TwoQubitPoint, TwoQubitResult};

use crate::error::{QbatError, Result};
use crate::measures::Measure;

/// Working precision of a kernel (`real` in WGSL), and of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    F32,
    F64,
}

impl Precision {
    pub fn name(&self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
        }
    }

    pub fn from_name(name: &str) -> Result<Precision> {
        match name {
            "f32" => Ok(Precision::F32),
            "f64" => Ok(Precision::F64),
            other => Err(QbatError::invalid("precision", format!("must be 'f32' or 'f64', got '{other}'"))),
        }
    }

    /// Bytes of one `real`.
    pub fn bytes(&self) -> u64 {
        match self {
            Precision::F32 => 4,
            Precision::F64 => 8,
        }
    }
}

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
/// as whole, so that t_end = 20, samples = 2001, dt = 1e-3 gives 10 steps each. A positive gap
/// is never taken as no step: one below 1e-9 dt is a short step of its own (rounded to none,
/// the sample held the state before it, and power_b = E_b / t at t = 1e-9 was 0).
fn steps_for_gap(gap: f64, dt: f64) -> (u64, f64) {
    let ratio = gap / dt;
    let nearest = ratio.round();
    if (ratio - nearest).abs() <= 1e-9 * ratio.max(1.0) && (nearest >= 1.0 || gap == 0.0) {
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

/// Sample index of a piece that ends without a sample.
pub const NO_SAMPLE: u32 = u32::MAX;

/// A run of full steps followed by an optional shortened step and an optional sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Piece {
    pub n_full: u32,
    /// Sample index written at the end of the piece, or NO_SAMPLE.
    pub sample: u32,
    /// Shortened last step (0 = none).
    pub h_last: f64,
    /// The piece steps with the uncoupled generator (it lies after `[protocol] switch_off`).
    pub uncoupled: bool,
}

/// The step constants (h, h/2, h/6, 0) of the full step dt and of each piece's shortened last
/// step (zeros where it has none), rounded as the twins round them: h in the working precision,
/// then h * 0.5 and h / 6 in it. The cavity and dicke kernels read them from their constants.
pub fn step_constants(dt: f64, pieces: &[Piece], precision: Precision) -> Vec<f64> {
    let one = |h: f64| -> [f64; 4] {
        match precision {
            Precision::F32 => {
                let h = h as f32;
                [h as f64, (h * 0.5) as f64, (h / 6.0) as f64, 0.0]
            }
            Precision::F64 => [h, h * 0.5, h / 6.0, 0.0],
        }
    };
    let mut out = one(dt).to_vec();
    for p in pieces {
        out.extend(if p.h_last > 0.0 { one(p.h_last) } else { [0.0; 4] });
    }
    out
}

/// Split the schedule into pieces of at most `max_steps` full steps. Splitting changes no
/// arithmetic: the state goes through storage at full working precision between pieces. The
/// switch-off segment becomes a piece that ends without a sample; the pieces after it are
/// `uncoupled`.
pub fn plan_pieces(schedule: &Schedule, max_steps: u64) -> Vec<Piece> {
    let max_steps = max_steps.clamp(1, u32::MAX as u64);
    let mut out = Vec::with_capacity(schedule.segments.len());
    let mut uncoupled = false;
    for seg in &schedule.segments {
        let mut left = seg.n_full;
        while left > max_steps {
            out.push(Piece { n_full: max_steps as u32, sample: NO_SAMPLE, h_last: 0.0, uncoupled });
            left -= max_steps;
        }
        let sample = match seg.end {
            SegmentEnd::Sample(s) => s as u32,
            SegmentEnd::SwitchOff => NO_SAMPLE,
        };
        out.push(Piece { n_full: left as u32, sample, h_last: seg.h_last, uncoupled });
        if seg.end == SegmentEnd::SwitchOff {
            uncoupled = true;
        }
    }
    out
}

/// The time at which each piece starts (f64): a piece after a sample starts at that sample's
/// time, after the switch-off at T, and a piece split off a longer segment where the steps
/// before it end (segment start + steps * dt). Step j of a piece starts at start + j dt, as the
/// reference's steps do.
pub fn piece_starts(schedule: &Schedule, pieces: &[Piece]) -> Vec<f64> {
    let mut out = Vec::with_capacity(pieces.len());
    let (mut seg_start, mut done) = (0.0, 0u64);
    for (i, p) in pieces.iter().enumerate() {
        out.push(if done == 0 { seg_start } else { seg_start + done as f64 * schedule.dt });
        if p.sample != NO_SAMPLE {
            (seg_start, done) = (schedule.times[p.sample as usize], 0);
        } else if !p.uncoupled && pieces.get(i + 1).is_some_and(|q| q.uncoupled) {
            (seg_start, done) = (schedule.switch_off.expect("a switch-off piece has its time"), 0);
        } else {
            done += p.n_full as u64;
        }
    }
    out
}

/// The four per-member peaks of paper 004: t_E, t_erg, t_P, t_ergP.
pub const PEAK_MEASURES: [Measure; 4] = [Measure::EnergyB, Measure::ErgotropyB, Measure::PowerB, Measure::ErgotropicPowerB];

/// Max and first time of the max of one measure over the samples.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Peak {
    pub max: f64,
    pub t_max: f64,
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
