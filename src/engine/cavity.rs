//! cavity-cells on the structured f64 engine (`twin::rk4_cavity`, rayon over members) or on
//! the GPU kernel, with the measures taken from the reduced (cell 1, cell 2) state as the
//! kernel returns it. `[[drive]]`s go to both as slot weights (`job::cavity::cavity_drive`);
//! a run with a drive outside the slots is the reference engine's (`unsupported_drive`).

use super::{battery_times_state, progress_bar, ChunkProgress, EngineOutput, RunOptions};
use crate::config::{Member, Plan};
use crate::error::{QbatError, Result};
use crate::gpu::{rk4_cavity::run_cavity_gpu, rk4_cavity::CavityGpuOptions, GpuContext};
use crate::job::cavity::{cavity_drive, CavityDrive};
use crate::job::{CavityCoeffs, CavityJob, CavityPoint, Peak, Precision};
use crate::linalg::{CMat, C64};
use crate::measures::saved::{push_row_major, StateSave};
use crate::measures::Measure;
use crate::twin::rk4_cavity::{integrate_schedule, sample_outputs, CavityDrives, CavityOps, Cx};
use std::time::Instant;

mod reduced;

use reduced::{ReducedMeasures, ReducedSample};

/// Coefficients of a cavity point for the structured engine.
pub fn cavity_coeffs(params: &crate::model::Params) -> Result<CavityCoeffs> {
    use crate::model::{cavity_cells::n_fock, real};
    Ok(CavityCoeffs {
        n_fock: n_fock(params)?,
        wc: real(params, "wc")?,
        wq: real(params, "wq")?,
        lambda: real(params, "lambda")?,
        g: real(params, "g")?,
        zeta: real(params, "zeta")?,
        kappa: real(params, "kappa")?,
        gamma: real(params, "gamma")?,
    })
}

/// The `[[drive]]`s of parameter point `point` in the structured engines' form; an error
/// naming the drive where a matrix lies outside what they apply (`unsupported_drive`).
pub fn cavity_drives(plan: &Plan, point: usize) -> Result<Vec<CavityDrive>> {
    let crate::model::Space::Cavity { n_fock } = plan.space else {
        return Err(QbatError::invalid("model", "the cavity engine runs cavity-cells plans only"));
    };
    let Some(drives) = plan.drives.get(point) else {
        return Ok(vec![]);
    };
    drives
        .iter()
        .enumerate()
        .map(|(k, d)| {
            cavity_drive(d, n_fock)
                .ok_or_else(|| QbatError::invalid(format!("drive[{k}].operator"), "the cavity engines apply combinations of the named operators only"))
        })
        .collect()
}

/// The first `[[drive]]` whose operator the structured cavity engines cannot apply (a matrix
/// outside the span of the named operators and the identity), or None.
pub fn unsupported_drive(plan: &Plan) -> Option<usize> {
    let crate::model::Space::Cavity { n_fock } = plan.space else {
        return None;
    };
    // Every point has the same operators (only amplitude and frequency are swept).
    plan.drives.first()?.iter().position(|d| cavity_drive(d, n_fock).is_none())
}

fn to_cx(m: &CMat) -> Vec<Cx<f64>> {
    let n = m.nrows();
    let mut v = Vec::with_capacity(n * n);
    for r in 0..n {
        for c in 0..n {
            let z = m[(r, c)];
            v.push(Cx::new(z.re, z.im));
        }
    }
    v
}

fn from_cx(v: &[Cx<f64>], n: usize) -> CMat {
    CMat::from_fn(n, n, |r, c| C64::new(v[r * n + c].re, v[r * n + c].im))
}

/// Reduced (cell 1, cell 2) state: sum over the cavity index.
fn reduce_cells(v: &[Cx<f64>], n_fock: usize) -> CMat {
    let d = n_fock + 1;
    let dim = 4 * d;
    CMat::from_fn(4, 4, |a, b| {
        let mut s = C64::new(0.0, 0.0);
        for n in 0..d {
            let z = v[(a * d + n) * dim + b * d + n];
            s += C64::new(z.re, z.im);
        }
        s
    })
}

/// Integrate one cavity member on the structured f64 engine; values [sample][measure], peaks,
/// and the saved states (`--save-states`, `measures::saved`; empty without). The reduced
/// (cell 1, cell 2) state of each sample is measured as the GPU engine measures the kernel's
/// (`reduced::ReducedMeasures`: the two-qubit kernels' f64 twins); trace_error and
/// min_eigenvalue are of the full state.
/// A run stopped through `opts`' control stops within a step (`Err(Cancelled)`).
pub fn cavity_member(plan: &Plan, m: &Member, opts: &RunOptions) -> Result<(Vec<f64>, [Peak; 4], Vec<C64>)> {
    let sys = &plan.systems[m.point];
    let coeffs = cavity_coeffs(&plan.points[m.point])?;
    let n_fock = coeffs.n_fock;
    let dim = coeffs.dim();
    let ops = CavityOps::<f64>::new(&coeffs);
    let rho0 = plan.initial_state(m);
    let list: Vec<Measure> = plan.measures.clone();
    let reduced = ReducedMeasures::new(&list)?;
    let want_z = list.contains(&Measure::EnergyFluctuationB);
    // The state as the kernel packs it (its upper triangle, the diagonal as given): an input dm
    // Hermitian only to its check's 1e-10 would otherwise keep its asymmetry X[c, r] -
    // conj(X[r, c]) for the whole run, a constant source the twin's gathers read from the
    // lower triangle (a drift linear in t from the kernel's and the reference's states).
    let mut x = to_cx(&rho0);
    for r in 0..dim {
        for c in r + 1..dim {
            let z = x[r * dim + c];
            x[c * dim + r] = Cx::new(z.re, -z.im);
        }
    }
    // Z(0) = {H_B, rho0}/2, whose evolution gives Re Tr(H_B Y(t)).
    let mut z = want_z.then(|| {
        let y0 = battery_times_state(plan, sys, &rho0);
        to_cx(&crate::linalg::hermitian_part(&y0))
    });
    // the reduced states as the kernel forms them (`sample_outputs`, its sums in order)
    let reduced_of = |v: &[Cx<f64>]| sample_outputs(v, n_fock, 1);
    let (x0, z0) = (reduced_of(&x).0, z.as_deref().map(|z| reduced_of(z).0));
    // `[protocol] switch_off`: the cell-cell coupling g is off after T.
    let ops_off = plan.schedule.switch_segment().map(|_| CavityOps::<f64>::new(&coeffs.uncoupled()));
    let drives = CavityDrives::<f64>::new(&cavity_drives(plan, m.point)?);
    let (ns, nm) = (plan.schedule.times.len(), list.len());
    // per sample: the reduced sample, then trace_error and min_eigenvalue of the full state
    let mut samples = Vec::with_capacity(ns);
    let mut full_state = Vec::with_capacity(ns);
    let mut states = vec![];
    let stop = || opts.is_cancelled();
    let finished = integrate_schedule(&ops, ops_off.as_ref().unwrap_or(&ops), &drives, &mut x, z.as_deref_mut(), &plan.schedule, &stop, |s, x, z| {
        debug_assert_eq!(s, samples.len());
        let (xq, photon, tail) = reduced_of(x);
        samples.push(ReducedSample { x: xq, z: z.map(|z| reduced_of(z).0), photon, tail });
        let mut full: Option<CMat> = None;
        let trace_error = list.contains(&Measure::TraceError).then(|| ((0..dim).map(|r| x[r * dim + r].re).sum::<f64>() - 1.0).abs());
        let min_eigenvalue =
            list.contains(&Measure::MinEigenvalue).then(|| crate::measures::health::min_eigenvalue(full.get_or_insert_with(|| from_cx(x, dim))));
        full_state.push((trace_error, min_eigenvalue));
        match plan.save_states {
            Some(StateSave::Full) => push_row_major(&mut states, full.get_or_insert_with(|| from_cx(x, dim))),
            Some(StateSave::Reduced) => push_row_major(&mut states, &reduce_cells(x, n_fock)),
            None => {}
        }
    });
    if !finished {
        return Err(QbatError::Cancelled);
    }
    let mut values = vec![0.0; ns * nm];
    let mut peaks = [Peak::default(); 4];
    reduced.member(sys, &plan.schedule.times, &x0, z0.as_ref(), |s| samples[s], &mut values, &mut peaks);
    for (row, &(trace_error, min_eigenvalue)) in values.chunks_exact_mut(nm.max(1)).zip(&full_state) {
        for (v, meas) in row.iter_mut().zip(&list) {
            match (meas, trace_error, min_eigenvalue) {
                (Measure::TraceError, Some(e), _) | (Measure::MinEigenvalue, _, Some(e)) => *v = e,
                _ => {}
            }
        }
    }
    Ok((values, peaks, states))
}

/// cavity-cells on the structured f64 engine, in parallel over members.
pub fn run_cavity_cpu(plan: &Plan, opts: &RunOptions) -> Result<EngineOutput> {
    let (values, peaks, states) = super::per_member(plan, opts, "cpu f64 (cavity)", |m| cavity_member(plan, m, opts))?;
    let mut out = EngineOutput::new(plan, values, peaks, Precision::F64, 0.0, 0.0);
    out.states = states;
    Ok(out)
}

/// Was `output.measures` given in the config (rather than defaulted)?
fn measures_explicit(plan: &Plan) -> bool {
    plan.config_json.get("output").and_then(|o| o.get("measures")).is_some()
}

/// min_eigenvalue asked for explicitly from a GPU engine that returns only the reduced cell
/// state of `model` (cavity and dicke kernels), as an error naming output.measures.
pub(super) fn min_eigenvalue_refusal(plan: &Plan, model: &str) -> Option<QbatError> {
    (plan.measures.contains(&Measure::MinEigenvalue) && measures_explicit(plan)).then(|| {
        QbatError::invalid(
            "output.measures",
            format!("min_eigenvalue needs the full {model} state, which the GPU engine does not keep (it returns the reduced cell state); use --backend cpu, or leave min_eigenvalue out"),
        )
    })
}

/// What the GPU cavity engine cannot give, as an error: the full saved state, and an
/// explicitly asked-for min_eigenvalue. Checked by the engine and, before a study touches its
/// output directory, by `engine::refuse_early`.
pub(super) fn gpu_refusal(plan: &Plan) -> Option<QbatError> {
    if plan.save_states == Some(StateSave::Full) {
        return Some(QbatError::invalid(
            "--save-states",
            "full cavity states are not kept by the GPU cavity engine (it returns the reduced cell state); use --save-states (the reduced state), or --backend cpu for the full one",
        ));
    }
    min_eigenvalue_refusal(plan, "cavity")
}

/// `run(options, progress)` of a job on the cavity or dicke kernel (`kernel` names it on the
/// progress bar): chunks of the run's `max_chunk` members, each reported to the bar and to
/// the run's control (which can cancel it there).
pub(super) fn with_gpu_progress<R>(
    plan: &Plan,
    opts: &RunOptions,
    kernel: &str,
    run: impl FnOnce(&CavityGpuOptions, &dyn Fn(u64) -> Result<()>) -> Result<R>,
) -> Result<R> {
    let pb = progress_bar(opts.progress, plan.members.len() as u64, &format!("gpu {} ({kernel})", opts.precision.name()));
    let gopts = CavityGpuOptions { max_members_per_chunk: opts.max_chunk, ..Default::default() };
    let chunks = ChunkProgress::new(opts);
    let r = run(&gopts, &|done| {
        pb.set_position(done);
        chunks.report(done)
    })?;
    pb.finish_and_clear();
    Ok(r)
}

/// `QBAT_CAVITY_TILE=off`: the cavity kernel gathers from device memory; `on` (or unset): from
/// its workgroup tile where that fits (`gpu::rk4_cavity::plan::workgroup_tile`). Whether
/// the tile is off.
pub(super) fn no_workgroup_tile_from_env() -> Result<bool> {
    match std::env::var("QBAT_CAVITY_TILE").as_deref() {
        Err(std::env::VarError::NotPresent) | Ok("on") => Ok(false),
        Err(std::env::VarError::NotUnicode(_)) => Err(QbatError::invalid("QBAT_CAVITY_TILE", "is not UTF-8: neither on nor off")),
        Ok("off") => Ok(true),
        Ok(other) => Err(QbatError::invalid("QBAT_CAVITY_TILE", format!("'{other}' is neither on nor off"))),
    }
}

/// The measures a GPU engine that returns only the reduced cell state can give (cavity and
/// dicke kernels): min_eigenvalue needs the full `model` state, so asked for it is an error
/// naming output.measures; among the default measures it is left out with a note.
pub(super) fn without_min_eigenvalue(plan: &Plan, opts: &RunOptions, model: &str, notes: &mut Vec<String>) -> Result<Vec<Measure>> {
    let mut measures = plan.measures.clone();
    if measures.contains(&Measure::MinEigenvalue) {
        if let Some(e) = min_eigenvalue_refusal(plan, model) {
            return Err(e);
        }
        measures.retain(|m| *m != Measure::MinEigenvalue);
        let note = format!(
            "min_eigenvalue needs the full {model} state, which the GPU engine does not keep: left out of the default measures (--backend cpu gives it)"
        );
        super::say(opts, &note);
        notes.push(note);
    }
    Ok(measures)
}

/// The GPU cavity job of a plan; `initial` builds member i's initial state.
pub fn cavity_job<'a>(plan: &Plan, initial: &'a (dyn Fn(usize) -> CMat + Sync), evolve_z: bool) -> Result<CavityJob<'a>> {
    let crate::model::Space::Cavity { n_fock } = plan.space else {
        return Err(QbatError::invalid("model", "the cavity engine runs cavity-cells plans only"));
    };
    let points = plan
        .points
        .iter()
        .zip(&plan.systems)
        .enumerate()
        .map(|(i, (p, sys))| {
            let h = &sys.h_battery;
            Ok(CavityPoint { coeffs: cavity_coeffs(p)?, h_battery: [h[(0, 0)], h[(0, 1)], h[(1, 0)], h[(1, 1)]], drives: cavity_drives(plan, i)? })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(CavityJob { n_fock, points, member_point: plan.members.iter().map(|m| m.point as u32).collect(), initial, schedule: plan.schedule.clone(), evolve_z })
}

/// cavity-cells on the GPU kernel, the measures on the host from the reduced states (`reduced`).
pub(crate) fn run_cavity_gpu_engine(plan: &Plan, opts: &RunOptions, ctx: &GpuContext) -> Result<EngineOutput> {
    let mut notes = vec![];
    if let Some(e) = gpu_refusal(plan) {
        return Err(e);
    }
    let measures = without_min_eigenvalue(plan, opts, "cavity", &mut notes)?;
    let t = Instant::now();
    let initial = |i: usize| plan.initial_state(&plan.members[i]);
    let job = cavity_job(plan, &initial, measures.contains(&Measure::EnergyFluctuationB))?;
    let ensemble = t.elapsed().as_secs_f64();
    let no_workgroup_tile = no_workgroup_tile_from_env()?;
    let r = with_gpu_progress(plan, opts, "cavity", |gopts, progress| {
        run_cavity_gpu(ctx, &job, opts.precision, &CavityGpuOptions { no_workgroup_tile, ..gopts.clone() }, progress)
    })?;
    let th = Instant::now();
    let (values, peaks) = reduced::cavity_assemble(plan, &measures, &(&r).into())?;
    // `--save-states` (reduced): the cell states the kernel returned, as the measures saw them.
    let states = plan.save_states.map(|_| {
        let mut st = Vec::with_capacity(plan.members.len() * plan.schedule.times.len() * 16);
        for i in 0..plan.members.len() {
            for s in 0..plan.schedule.times.len() {
                push_row_major(&mut st, &r.state(i, s));
            }
        }
        st
    });
    let host_measures = th.elapsed().as_secs_f64();
    Ok(EngineOutput {
        measures,
        values,
        peaks,
        precision: opts.precision,
        ensemble,
        host_measures,
        notes,
        fallbacks: r.notes.clone(),
        engine_plan: serde_json::to_value(&r.plan).ok(),
        ran_on: None,
        states,
    })
}
