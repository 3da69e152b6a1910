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

/// One segment of the time grid: from the previous boundary (t = 0, a sample time, the
/// switch-off time or a drive window's edge) to the next, `n_full` RK4 steps of `dt` followed by
/// one shortened step of `h_last` (`h_last` = 0 means none). The integrator so lands exactly on
/// every sample time, on the switch-off time of a `[protocol]` and on every window edge.
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
    /// At `edges[k]`, where a drive's window opens or closes: no sample, the generator
    /// unchanged. The next segment's steps start there, so that every step lies wholly inside
    /// or wholly outside the window.
    Edge(usize),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub dt: f64,
    pub times: Vec<f64>,
    pub segments: Vec<Segment>,
    /// `[protocol] switch_off`, as given (also when it lies after the last sample and so
    /// changes nothing).
    pub switch_off: Option<f64>,
    /// The window edges that end a segment (`SegmentEnd::Edge`), increasing: those within the
    /// run that are neither a sample time nor the switch-off time.
    pub edges: Vec<f64>,
}

/// The shortest positive gap between two boundaries of the grid: f32's smallest normal number,
/// the shortest step an f32 kernel takes (the config refuses sample times closer than this; a
/// window edge closer than this to another boundary is taken as on it).
pub const MIN_POSITIVE_GAP: f64 = f32::MIN_POSITIVE as f64;

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
        Schedule::with_edges(dt, times, switch_off, &[])
    }

    /// As `with_switch_off`, and each drive window edge in `edges` (any order) that lies in
    /// (0, last sample time) and is neither a sample time nor T, nor within `MIN_POSITIVE_GAP`
    /// of one or of another edge, ends a segment of its own (`SegmentEnd::Edge`). A window
    /// switches whole steps (by their midpoints), so with its edges on the grid it is exact,
    /// where an edge inside a step would switch that step whole: an O(dt) error that does not
    /// shrink as dt^4. The segments before the first edge are those without it.
    pub fn with_edges(dt: f64, times: &[f64], switch_off: Option<f64>, edges: &[f64]) -> Schedule {
        let last = times.last().copied().unwrap_or(0.0);
        let t_off = switch_off.filter(|t| *t > 0.0);
        let clear = |e: f64, b: f64| (e - b).abs() >= MIN_POSITIVE_GAP;
        // (the times increase: an edge's nearest samples are those either side of it)
        let clear_of_samples = |e: f64| {
            let i = times.partition_point(|&t| t < e);
            times[i.saturating_sub(1)..(i + 1).min(times.len())].iter().all(|&t| clear(e, t))
        };
        let mut wanted: Vec<f64> = edges.iter().copied().filter(|e| *e > 0.0 && *e < last).collect();
        wanted.sort_by(f64::total_cmp);
        // Every boundary an edge must keep clear of: 0, the samples, T and the edges kept (in
        // increasing order, so the last kept is the nearest).
        let mut kept: Vec<f64> = Vec::with_capacity(wanted.len());
        for e in wanted {
            if clear(e, 0.0) && clear_of_samples(e) && t_off.is_none_or(|t| clear(e, t)) && kept.last().is_none_or(|&k| clear(e, k)) {
                kept.push(e);
            }
        }
        // The boundaries without a sample, in time order (T and the edges never coincide).
        let mut breaks: Vec<(f64, SegmentEnd)> = kept.iter().enumerate().map(|(k, &e)| (e, SegmentEnd::Edge(k))).collect();
        breaks.extend(t_off.map(|t| (t, SegmentEnd::SwitchOff)));
        breaks.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut breaks = breaks.into_iter().peekable();
        let mut segments = Vec::with_capacity(times.len() + kept.len() + 1);
        let mut prev = 0.0;
        for (s, &t) in times.iter().enumerate() {
            while let Some((b, end)) = breaks.next_if(|(b, _)| *b < t) {
                let (n_full, h_last) = steps_for_gap(b - prev, dt);
                segments.push(Segment { n_full, h_last, end });
                prev = b;
            }
            let (n_full, h_last) = steps_for_gap(t - prev, dt);
            segments.push(Segment { n_full, h_last, end: SegmentEnd::Sample(s) });
            prev = t;
            // T at a sample time: the sample first, then an empty switch segment
            if let Some((_, end)) = breaks.next_if(|(b, _)| *b == t) {
                segments.push(Segment { n_full: 0, h_last: 0.0, end });
            }
        }
        Schedule { dt, times: times.to_vec(), segments, switch_off, edges: kept }
    }

    /// This schedule with another step (the check of dt): the same times, T and edges.
    pub fn with_dt(&self, dt: f64) -> Schedule {
        Schedule::with_edges(dt, &self.times, self.switch_off, &self.edges)
    }

    /// The schedule of a steady-state run (`[time] steady = true`): one sample at t = inf and
    /// no RK4 step (dt = 0 is never stepped with; `total_steps()` is 0).
    pub fn steady() -> Schedule {
        Schedule {
            dt: 0.0,
            times: vec![f64::INFINITY],
            segments: vec![Segment { n_full: 0, h_last: 0.0, end: SegmentEnd::Sample(0) }],
            switch_off: None,
            edges: vec![],
        }
    }

    /// Is this the one-sample t = inf schedule of a steady-state run?
    pub fn is_steady(&self) -> bool {
        self.times.len() == 1 && self.times[0] == f64::INFINITY && self.total_steps() == 0
    }

    /// Total RK4 steps per member (full and shortened).
    pub fn total_steps(&self) -> u64 {
        self.segments.iter().map(|s| s.n_full + u64::from(s.h_last > 0.0)).sum()
    }

    /// The time at which a segment ends, and the next one's steps start.
    pub fn end_time(&self, end: SegmentEnd) -> f64 {
        match end {
            SegmentEnd::Sample(s) => self.times[s],
            SegmentEnd::SwitchOff => self.switch_off.expect("a switch-off segment has its time"),
            SegmentEnd::Edge(k) => self.edges[k],
        }
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
    /// The piece is its segment's last: the next one's steps start at the segment's end time
    /// (`Schedule::end_time`), not where this piece's full steps end.
    pub ends_segment: bool,
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
/// `uncoupled`. A window edge's segment ends in a piece without a sample too.
pub fn plan_pieces(schedule: &Schedule, max_steps: u64) -> Vec<Piece> {
    let max_steps = max_steps.clamp(1, u32::MAX as u64);
    let mut out = Vec::with_capacity(schedule.segments.len());
    let mut uncoupled = false;
    for seg in &schedule.segments {
        let mut left = seg.n_full;
        while left > max_steps {
            out.push(Piece { n_full: max_steps as u32, sample: NO_SAMPLE, h_last: 0.0, uncoupled, ends_segment: false });
            left -= max_steps;
        }
        let sample = match seg.end {
            SegmentEnd::Sample(s) => s as u32,
            SegmentEnd::SwitchOff | SegmentEnd::Edge(_) => NO_SAMPLE,
        };
        out.push(Piece { n_full: left as u32, sample, h_last: seg.h_last, uncoupled, ends_segment: true });
        if seg.end == SegmentEnd::SwitchOff {
            uncoupled = true;
        }
    }
    out
}

/// The time at which each piece starts (f64): a piece that begins a segment starts where the
/// segment before it ended (at a sample time, at the switch-off time T or at a window edge,
/// `Schedule::end_time`), one split off a longer segment where the steps before it end (segment
/// start + steps * dt). Step j of a piece starts at start + j dt, as the reference's steps do.
pub fn piece_starts(schedule: &Schedule, pieces: &[Piece]) -> Vec<f64> {
    let mut out = Vec::with_capacity(pieces.len());
    let mut segments = schedule.segments.iter();
    let (mut seg_start, mut done) = (0.0, 0u64);
    for p in pieces {
        out.push(if done == 0 { seg_start } else { seg_start + done as f64 * schedule.dt });
        if p.ends_segment {
            let seg = segments.next().expect("the pieces follow the schedule's segments");
            (seg_start, done) = (schedule.end_time(seg.end), 0);
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

    /// The end time of each segment, summed from its steps.
    fn ends(s: &Schedule) -> Vec<f64> {
        (1..=s.segments.len()).map(|k| steps_to(s, k, s.dt)).collect()
    }

    #[test]
    fn window_edges_end_segments_of_their_own() {
        let (dt, times) = (0.1, [0.0, 1.0, 2.0, 3.0]);
        let plain = Schedule::new(dt, &times);
        // a sample time, one before 0, one after the last sample and a repeat are no edges
        let s = Schedule::with_edges(dt, &times, None, &[2.5, 1.234, 2.0, -1.0, 5.0, 1.234, 3.0]);
        assert_eq!(s.edges, vec![1.234, 2.5]);
        let want_ends = [0.0, 1.0, 1.234, 2.0, 2.5, 3.0];
        assert_eq!(s.segments.len(), want_ends.len());
        for (got, want) in ends(&s).iter().zip(want_ends) {
            assert!((got - want).abs() < 1e-12, "a segment ends at {got}, not {want}");
        }
        let kinds: Vec<SegmentEnd> = s.segments.iter().map(|g| g.end).collect();
        use SegmentEnd::*;
        assert_eq!(kinds, [Sample(0), Sample(1), Edge(0), Sample(2), Edge(1), Sample(3)]);
        for (g, want) in s.segments.iter().zip(want_ends) {
            assert_eq!(s.end_time(g.end), want);
        }
        // the segments before the first edge are those without it, and so are the steps' count
        // but for the one an off-grid edge adds
        assert_eq!(s.segments[..2], plain.segments[..2]);
        assert_eq!(s.total_steps(), plain.total_steps() + 1);
        assert_eq!(s.sample_segments(), times.len());
        // no edge lies within MIN_POSITIVE_GAP of another boundary
        let s = Schedule::with_edges(dt, &times, None, &[2e-38, 2.5e-38, 1.5]);
        assert_eq!(s.edges, vec![2e-38, 1.5]);
        let s = Schedule::with_edges(dt, &times, None, &[1e-39, 1.0 + 1e-16]);
        assert!(s.edges.is_empty(), "{:?}", s.edges);
        assert_eq!(s.segments, plain.segments);
    }

    #[test]
    fn window_edges_beside_the_switch_off() {
        let (dt, times) = (0.1, [0.0, 1.0, 2.0]);
        let s = Schedule::with_edges(dt, &times, Some(1.5), &[1.25, 1.5, 1.75]);
        // T itself is the switch-off's boundary, not an edge
        assert_eq!(s.edges, vec![1.25, 1.75]);
        use SegmentEnd::*;
        let kinds: Vec<SegmentEnd> = s.segments.iter().map(|g| g.end).collect();
        assert_eq!(kinds, [Sample(0), Sample(1), Edge(0), SwitchOff, Edge(1), Sample(2)]);
        for (got, want) in ends(&s).iter().zip([0.0, 1.0, 1.25, 1.5, 1.75, 2.0]) {
            assert!((got - want).abs() < 1e-12, "a segment ends at {got}, not {want}");
        }
        // the check of dt keeps T and the edges
        let half = s.with_dt(0.05);
        assert_eq!((half.dt, half.edges.clone(), half.switch_off), (0.05, s.edges.clone(), Some(1.5)));
        assert_eq!(half.segments.len(), s.segments.len());
        assert_eq!(half.total_steps(), 40);
    }

    /// Each piece starts where the steps before it end, and a segment's first piece where the
    /// segment before it ended: at a sample, at T or at an edge, whatever the split.
    #[test]
    fn pieces_start_at_their_segments_boundaries() {
        let (dt, times) = (0.1, [0.0, 1.0, 2.0, 3.0]);
        let s = Schedule::with_edges(dt, &times, Some(2.22), &[1.234, 2.5]);
        for max_steps in [1, 3, 4, 1000] {
            let pieces = plan_pieces(&s, max_steps);
            let starts = piece_starts(&s, &pieces);
            assert_eq!(pieces.iter().filter(|p| p.ends_segment).count(), s.segments.len());
            let mut t = 0.0;
            for (p, &start) in pieces.iter().zip(&starts) {
                assert!((start - t).abs() < 1e-12, "max_steps {max_steps}: a piece starts at {start}, not {t}");
                t = start + p.n_full as f64 * dt + p.h_last;
            }
            assert!((t - 3.0).abs() < 1e-12);
            // exactly at the boundaries, not where the steps sum to
            for boundary in [1.234, 2.22, 2.5, 2.0] {
                assert!(starts.contains(&boundary), "max_steps {max_steps}: no piece starts at {boundary}: {starts:?}");
            }
            let after_t: Vec<bool> = pieces.iter().zip(&starts).map(|(p, &st)| p.uncoupled == (st >= 2.22)).collect();
            assert!(after_t.iter().all(|&b| b), "max_steps {max_steps}: the uncoupled pieces are those from T");
        }
    }
}
