//! `--verify`'s check of dt: RK4's error at the run's dt, measured on one verified member. The
//! comparison with the f64 reference re-runs the same dt and so cannot see that error; here
//! the member runs again on the f64 CPU engine at dt and at dt / 2 and its measures are
//! compared (the stability bound keeps a run finite, not accurate: docs/physics.md).
//!
//! ```text
//! RK4's global error e(dt) = C dt^4 + O(dt^5), so  x(dt) - x(dt/2) = e(dt) - e(dt/2) = 15/16 e(dt) + ...
//! ```
//!
//! The difference is said (a note; never a refusal) where it passes `DT_NOTE_AT` times the
//! measure's scale: f32's `--verify` tolerance, the most a run is meant to differ by. The
//! rates power_b and ergotropic_power_b are compared times min(1, t), as `--verify` takes
//! them (`super::sample_weights`).

use crate::config::Plan;
use crate::engine::{Engine, Precision, RunOptions, SaidNotes};
use crate::job::Schedule;
use crate::measures::Measure;
use serde::Serialize;

/// The difference at which a run is told, per unit of the measure's scale max(1, max |x|).
pub const DT_NOTE_AT: f64 = 1e-4;

/// The most RK4 steps the check takes at dt / 2 for its member, and the most steps times dim^2
/// (a step's cost grows about so: a cavity member of dim 84 about 20 us a step, a dicke one
/// of dim 225 about 0.8 ms): a few seconds at the most, at the run's end (the runs at dt of
/// up to `MAX_TRIES` members add at most as much again).
const MAX_CHECK_STEPS: u64 = 1_000_000;
const MAX_CHECK_WORK: f64 = 5e8;

/// One measure's largest difference over the samples between dt and dt / 2 (a rate's times
/// min(1, t)), and the difference past which it is said.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DtDeviation {
    pub measure: String,
    pub max_abs: f64,
    pub limit: f64,
}

/// The member run at dt and dt / 2 (its id), the largest step the run takes (`step`: dt, or
/// less where every gap between sample times is shorter, which the check halves instead), and
/// each measure's difference.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DtCheck {
    pub member: u64,
    pub dt: f64,
    pub step: f64,
    pub deviations: Vec<DtDeviation>,
}

impl DtCheck {
    /// The note where a measure's difference passes its limit (the largest past it named).
    pub fn note(&self) -> Option<String> {
        let worst = self.deviations.iter().filter(|d| d.max_abs > d.limit).max_by(|a, b| (a.max_abs / a.limit).total_cmp(&(b.max_abs / b.limit)))?;
        // (where the sample times are closer than dt, a smaller dt above them changes nothing)
        let (halved, smaller) = match self.step < self.dt {
            true => (format!("its steps (at most {:.4e}: the sample times are closer than dt) are halved", self.step), format!("a dt below {:.4e}", self.step)),
            false => ("dt is halved".to_string(), "a smaller dt".to_string()),
        };
        Some(format!(
            "time.dt = {}: RK4's error at this dt is visible: member {} moves {}{} by {:.1e} when {halved} (--verify's check of dt; above {:.0e} of its scale); {smaller} is more accurate (docs/physics.md, \"Stability bound\")",
            self.dt,
            self.member,
            worst.measure,
            if Measure::from_name(&worst.measure).is_ok_and(super::is_rate) { " (times min(1, t))" } else { "" },
            worst.max_abs,
            DT_NOTE_AT
        ))
    }
}

/// The most candidates whose run at dt is tried for one that moves (`moves`): the check then
/// costs at most this many runs at dt and one at dt / 2, where it cost one of each.
const MAX_TRIES: usize = 3;

/// Of the members `candidates` (indices into `plan.members`), taken stiffest point first (the
/// largest bound on its generator's spectral radius, from its entries; equals in the
/// candidates' order), whatever their points: the first of at most `MAX_TRIES` whose measures
/// move (`moves`), else the first tried whose run succeeded, run
/// on the f64 CPU engine at dt and at half its largest step (`largest_step`: dt / 2 unless the
/// sample times are closer than dt). A member that does not move has nothing for RK4 to get
/// wrong: checked alone, a stationary member (a sweep's ground state) said that any dt was
/// fine for the members that move. None where there is no candidate, the plan has no
/// integration (steady states), the check would take more than `MAX_CHECK_STEPS` or
/// `MAX_CHECK_WORK`, or the runs fail or give a non-finite value (every one tried at dt, or the
/// chosen one's at dt / 2; the run's own checks report those).
pub fn dt_check(plan: &Plan, candidates: &[usize]) -> Option<DtCheck> {
    let stiffness = |i: usize| plan.systems[plan.members[i].point].generator_norm_entry_bound();
    let mut order: Vec<usize> = candidates.iter().copied().filter(|&i| i < plan.members.len()).collect();
    // (a stable sort: equals keep the candidates' order)
    order.sort_by(|&a, &b| stiffness(b).total_cmp(&stiffness(a)));
    let steps = plan.schedule.total_steps().saturating_mul(2);
    if order.is_empty() || plan.steady || steps > MAX_CHECK_STEPS || steps as f64 * (plan.dim() * plan.dim()) as f64 > MAX_CHECK_WORK {
        return None;
    }
    // (the run's own notes were said already: the check says none)
    let opts = RunOptions {
        backend: crate::engine::Backend::Cpu,
        precision: Precision::F64,
        verify: 0,
        progress: false,
        said: Some(SaidNotes::quiet()),
        ..Default::default()
    };
    let run = |p: &Plan| crate::engine::integrate(p, &opts, &Engine::Cpu).ok().filter(|r| !r.measures.is_empty() && r.values.iter().all(|x| x.is_finite()));
    let weight = |r: &crate::engine::EngineOutput| super::sample_weights(&r.measures, &plan.schedule.times);
    let mut first = None;
    let mut chosen = None;
    for &index in order.iter().take(MAX_TRIES) {
        // (its own point alone: a slice keeps every point of a sweep, which the engines build)
        let at_dt = plan.slice_points(index..index + 1);
        // (one that fails or is not finite, which the run's own checks report, passes to the next)
        let Some(coarse) = run(&at_dt) else { continue };
        if moves(&coarse.values, &weight(&coarse), coarse.measures.len()) {
            chosen = Some((index, at_dt, coarse));
            break;
        }
        first.get_or_insert((index, at_dt, coarse));
    }
    let (index, at_dt, coarse) = chosen.or(first)?;
    let member = &plan.members[index];
    // the steps taken are halved: dt's, or where every gap is shorter than dt (each a single
    // short step) the longest of those, which halving dt would leave as they are
    let step = largest_step(&plan.schedule);
    let mut at_half = at_dt;
    at_half.schedule = plan.schedule.with_dt(step / 2.0);
    let fine = run(&at_half)?;
    let nm = coarse.measures.len();
    if fine.measures != coarse.measures || coarse.values.len() != fine.values.len() {
        return None;
    }
    // each measure's largest difference, as --verify folds its deviations; its scale
    let (max_abs, scale) = super::member_deviations(nm, &coarse.values, &fine.values, &weight(&coarse));
    let deviations = coarse
        .measures
        .iter()
        .zip(max_abs)
        .zip(scale)
        .map(|((m, max_abs), s)| DtDeviation { measure: m.name().into(), max_abs, limit: DT_NOTE_AT * s.max(1.0) })
        .collect();
    Some(DtCheck { member: member.id, dt: plan.schedule.dt, step, deviations })
}

/// Whether a member's measures move over the samples: some measure's values (weighed as
/// `--verify` weighs them; [sample][measure], `nm` measures) span more than the note's limit,
/// `DT_NOTE_AT` max(1, max |x|). One that moves less cannot show an error of RK4's past it.
fn moves(values: &[f64], weight: &[f64], nm: usize) -> bool {
    (0..nm).any(|k| {
        let column = || values.iter().zip(weight).skip(k).step_by(nm).map(|(x, w)| x * w);
        let (lo, hi) = column().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)));
        let largest = column().fold(0.0f64, |m, x| m.max(x.abs()));
        hi - lo > DT_NOTE_AT * largest.max(1.0)
    })
}

/// The longest RK4 step `schedule` takes: dt where any segment takes a full step, else the
/// longest shortened one; dt where it takes none.
fn largest_step(schedule: &Schedule) -> f64 {
    let longest = schedule.segments.iter().map(|s| if s.n_full > 0 { schedule.dt } else { s.h_last }).fold(0.0, f64::max);
    if longest > 0.0 {
        longest
    } else {
        schedule.dt
    }
}
