//! The f64 oracle as an engine: every member integrated by `crate::reference` (matrix-form
//! RK4 of the Lindblad equation) and measured with `crate::measures`, in parallel over
//! members. `--backend reference` runs it, and `crate::verify` re-runs chosen members with it.

use super::{progress_bar, RunOptions};
use crate::config::{Member, Plan};
use crate::error::Result;
use crate::job::{Peak, PEAK_MEASURES};
use crate::linalg::{identity, kron, CMat, C64};
use crate::measures::saved::{push_row_major, saved_state, StateSave};
use crate::measures::{evaluate, Measure, MeasureContext, Sample};
use crate::model::{OpenSystem, Space};
use crate::reference::{rk4::integrate_driven_with, DriveTerms, LindbladRhs};
use rayon::prelude::*;

/// Fold a sample into the peaks: max and the first time it is reached.
pub fn update_peaks(peaks: &mut [Peak], sample: usize, t: f64, vals: &[f64]) {
    for (p, &v) in peaks.iter_mut().zip(vals) {
        if sample == 0 || v > p.max {
            *p = Peak { max: v, t_max: t };
        }
    }
}

/// Y(0) = Hb' rho0, Hb' = H_B - h0 I the traceless part of H_B (`measures::traceless_part`,
/// which energy_fluctuation_b is taken of), embedded in the full space (battery = right qubit
/// / cell 2).
pub fn battery_times_state(plan: &Plan, sys: &OpenSystem, rho0: &CMat) -> CMat {
    let hb = crate::measures::traceless_part(&sys.h_battery);
    let hb_full = match plan.space {
        Space::TwoQubit => kron(&identity(2), &hb),
        Space::Cavity { n_fock } => kron(&kron(&identity(2), &hb), &identity(n_fock + 1)),
        Space::Dicke { n_fock, .. } => kron(&hb, &identity(n_fock + 1)),
    };
    hb_full * rho0
}

/// Integrate one member with the f64 reference; values [sample][measure] and its peaks.
pub fn reference_member(plan: &Plan, m: &Member, measures: &[Measure]) -> (Vec<f64>, [Peak; 4]) {
    let (values, peaks, _) = reference_member_states(plan, m, measures, None);
    (values, peaks)
}

/// `reference_member`, also returning the saved state of each sample when `save` is given
/// (`measures::saved`, row-major), else an empty list.
pub fn reference_member_states(plan: &Plan, m: &Member, measures: &[Measure], save: Option<StateSave>) -> (Vec<f64>, [Peak; 4], Vec<C64>) {
    let sys = &plan.systems[m.point];
    let rho0 = plan.initial_state(m);
    let ctx = MeasureContext::new(sys, &rho0);
    let rhs = LindbladRhs::new(sys);
    // `[protocol] switch_off`: the uncoupled generator after T.
    let rhs_off = plan.schedule.switch_segment().map(|_| LindbladRhs::new(&sys.uncoupled()));
    let y0 = measures.contains(&Measure::EnergyFluctuationB).then(|| battery_times_state(plan, sys, &rho0));
    let mut list: Vec<Measure> = measures.to_vec();
    list.extend(PEAK_MEASURES);
    let nm = measures.len();
    let mut values = Vec::with_capacity(plan.schedule.times.len() * nm);
    let mut peaks = [Peak::default(); 4];
    let mut states = vec![];
    let on_sample = |s: usize, t: f64, rho: &CMat, y: Option<&CMat>| {
        let v = evaluate(&list, &ctx, &Sample { t, rho, y });
        values.extend_from_slice(&v[..nm]);
        update_peaks(&mut peaks, s, t, &v[nm..]);
        if let Some(save) = save {
            push_row_major(&mut states, &saved_state(plan.space, rho, sys.dephasing, save));
        }
    };
    // `[[drive]]`: H(t) on every stage (none: the autonomous steps)
    let drives = DriveTerms::new(plan.drives.get(m.point).map(Vec::as_slice).unwrap_or(&[]));
    integrate_driven_with(&rhs, rhs_off.as_ref().unwrap_or(&rhs), &drives, &rho0, y0.as_ref(), &plan.schedule, on_sample);
    (values, peaks, states)
}

/// Run every member on the f64 reference, in parallel over members. With a control, each
/// member counts as done, and a cancelled run skips the members not yet begun and returns
/// `Err(Cancelled)`.
pub fn run_reference(plan: &Plan, opts: &RunOptions) -> Result<(Vec<f64>, Vec<Peak>, Vec<C64>)> {
    let pb = progress_bar(opts.progress, plan.members.len() as u64, "reference f64");
    let per: Vec<Option<(Vec<f64>, [Peak; 4], Vec<C64>)>> = plan
        .members
        .par_iter()
        .map(|m| {
            if opts.is_cancelled() {
                return None;
            }
            let r = reference_member_states(plan, m, &plan.measures, plan.save_states);
            pb.inc(1);
            opts.add_done(1);
            Some(r)
        })
        .collect();
    pb.finish_and_clear();
    opts.check_cancelled()?;
    let mut values = Vec::with_capacity(per.len() * plan.schedule.times.len() * plan.measures.len());
    let mut peaks = Vec::with_capacity(per.len() * 4);
    let mut states = vec![];
    for (v, p, st) in per.into_iter().flatten() {
        values.extend(v);
        peaks.extend(p);
        states.extend(st);
    }
    Ok((values, peaks, states))
}
