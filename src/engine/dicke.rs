//! The `dicke` model on the engines (docs/physics.md "dicke"): the structured f64 engine
//! (`twin::rk4_dicke`, batches of `LANES` members in SIMD lanes, rayon over batches) for `--backend cpu`, the `rk4_dicke` kernel for
//! `--backend gpu`, the f64 reference for `--backend reference`. The measures are
//! `measures::dicke`'s, from the reduced cell state and four sums over the full state at each
//! sample (`DickeSample`), as the kernel returns them.

use super::{progress_bar, reference::run_reference, update_peaks, Engine, EngineOutput, RunOptions};
use crate::config::{Member, Plan};
use crate::error::QbatError;
use crate::error::Result;
use crate::gpu::rk4_dicke::run_dicke_gpu;
use crate::gpu::GpuContext;
use crate::job::dicke::DickeCoeffs;
use crate::job::dicke::DickeJob;
use crate::job::dicke::{packed, parity_definite};
use crate::job::{Peak, Precision, SegmentEnd, PEAK_MEASURES};
use crate::linalg::{CMat, C64};
use crate::measures::dicke::{evaluate_sample, DickeSample};
use crate::measures::saved::{push_row_major, saved_state};
use crate::measures::{Measure, MeasureContext};
use crate::model::Space;
use crate::model::{dicke, real, Params};
use crate::twin::rk4_cavity::Cx;
use crate::twin::rk4_dicke::{DickeGathers, DickeLaneOps, DickeLaneWork, DickeOps};
use rayon::prelude::*;
use std::time::Instant;

/// Coefficients of a dicke point for the structured engine.
pub fn dicke_coeffs(p: &Params) -> Result<DickeCoeffs> {
    let (n_cells, n_fock) = dicke::sizes(p)?;
    Ok(DickeCoeffs {
        n_cells,
        n_fock,
        wc: real(p, "wc")?,
        wa: real(p, "wa")?,
        g: real(p, "g")?,
        tavis_cummings: dicke::is_tavis_cummings(p)?,
        kappa: real(p, "kappa")?,
        gamma: real(p, "gamma")?,
    })
}

/// The packed upper triangle of a dim-square matrix (`job::dicke::packed`).
pub fn pack_state<R: crate::twin::Real>(rho: &CMat) -> Vec<Cx<R>> {
    let dim = rho.nrows();
    let mut x = Vec::with_capacity(dim * (dim + 1) / 2);
    for r in 0..dim {
        for c in r..dim {
            x.push(Cx::new(R::from_f64(rho[(r, c)].re), R::from_f64(rho[(r, c)].im)));
        }
    }
    x
}

/// The full Hermitian matrix of a packed upper triangle.
pub fn unpack_state(x: &[Cx<f64>], dim: usize) -> CMat {
    CMat::from_fn(dim, dim, |r, c| {
        let z = x[packed(r.min(c), r.max(c), dim)];
        C64::new(z.re, if r <= c { z.im } else { -z.im })
    })
}

/// A sample's sums (`DickeOps::sample`, or the kernel's `out`) as the measures' input.
pub fn dicke_sample(o: &[f64], n_cells: usize, min_eigenvalue: Option<f64>) -> DickeSample {
    let q = n_cells + 1;
    let rb = CMat::from_fn(q, q, |a, b| C64::new(o[2 * (a * q + b)], o[2 * (a * q + b) + 1]));
    let e = &o[2 * q * q..];
    DickeSample { rb, trace: e[0], photon_number: e[1], fock_tail: e[2], purity: e[3], min_eigenvalue }
}

/// Members per pass of the structured f64 engine: one AVX register of f64 per lane vector.
pub const LANES: usize = 4;

/// One member's output: values [sample][measure], peaks, and the saved states
/// (`--save-states`, `measures::saved`; empty without).
type MemberOutput = (Vec<f64>, [Peak; 4], Vec<C64>);

/// The ensemble's values [member][sample][measure], peaks [member][4] and saved states.
type EnsembleOutput = (Vec<f64>, Vec<Peak>, Option<Vec<C64>>);

/// Integrate up to `LANES` members of the same parity path together on the structured f64
/// engine (`twin::rk4_dicke::DickeLaneWork`); a short batch fills its spare lanes with copies
/// of its last member, whose results are dropped. Each member's bits are those of stepping it
/// alone (`DickeWork`).
/// `stop` is looked at before each step (`Err(Cancelled)` once it is set).
pub fn dicke_batch(plan: &Plan, lay: &DickeGathers, members: &[&Member], stop: crate::twin::Stop) -> Result<Vec<MemberOutput>> {
    let n = members.len();
    if n == 0 || n > LANES {
        return Err(QbatError::invalid("members", format!("a dicke batch holds 1 to {LANES} members, not {n}")));
    }
    let coeffs = (0..n).map(|j| dicke_coeffs(&plan.points[members[j].point])).collect::<Result<Vec<_>>>()?;
    let rho0: Vec<CMat> = (0..n).map(|j| plan.initial_state(members[j])).collect();
    // the parity path is exact only for parity-definite starts
    if lay.parity_only && !rho0.iter().all(|r| parity_definite(r, lay.n_fock)) {
        return Err(QbatError::invalid("initial", "a parity-mixed start in a batch of the parity path"));
    }
    let ops: Vec<DickeOps<f64>> = coeffs.iter().map(|c| DickeOps::new(c, lay.parity_only)).collect();
    // `[protocol] switch_off`: the cavity-cell coupling g is off after T.
    let ops_off: Option<Vec<DickeOps<f64>>> =
        plan.schedule.switch_segment().map(|_| coeffs.iter().map(|c| DickeOps::new(&c.uncoupled(), lay.parity_only)).collect());
    let lanes_of = |o: &[DickeOps<f64>]| DickeLaneOps::<f64, LANES>::new(lay, std::array::from_fn(|j| &o[j.min(n - 1)]));
    let lane_ops = lanes_of(&ops)?;
    let lane_ops_off = ops_off.as_deref().map(lanes_of).transpose()?;
    // each lane's packed state: its start, then the slots after every sample
    let mut packed_x: Vec<Vec<Cx<f64>>> = rho0.iter().map(pack_state::<f64>).collect();
    let mut work = DickeLaneWork::<f64, LANES>::new(lay, std::array::from_fn(|j| &packed_x[j.min(n - 1)][..]));
    let ctx: Vec<MeasureContext> = (0..n).map(|j| MeasureContext::new(&plan.systems[members[j].point], &rho0[j])).collect();
    let mut list: Vec<Measure> = plan.measures.clone();
    list.extend(PEAK_MEASURES);
    let nm = plan.measures.len();
    let want_min_eig = list.contains(&Measure::MinEigenvalue);
    let dim = lay.dim;
    let mut out: Vec<MemberOutput> = (0..n).map(|_| (Vec::with_capacity(plan.schedule.times.len() * nm), [Peak::default(); 4], vec![])).collect();
    let mut gen = &lane_ops;
    let step = |work: &mut DickeLaneWork<f64, LANES>, gen, h| if stop() { Err(QbatError::Cancelled) } else { work.step(lay, gen, h) };
    for seg in &plan.schedule.segments {
        for _ in 0..seg.n_full {
            step(&mut work, gen, plan.schedule.dt)?;
        }
        if seg.h_last > 0.0 {
            step(&mut work, gen, seg.h_last)?;
        }
        let s = match seg.end {
            SegmentEnd::Sample(s) => s,
            SegmentEnd::SwitchOff => {
                gen = lane_ops_off.as_ref().unwrap_or(&lane_ops);
                continue;
            }
            // (dicke takes no drives, so no window edges)
            SegmentEnd::Edge(_) => continue,
        };
        let t = plan.schedule.times[s];
        for (j, (values, peaks, states)) in out.iter_mut().enumerate() {
            let x = &mut packed_x[j];
            work.lane_packed(lay, j, x);
            // min_eigenvalue alone needs the full state
            let min_eig = want_min_eig.then(|| crate::measures::health::min_eigenvalue(&unpack_state(x, dim)));
            let v = evaluate_sample(&list, &ctx[j], t, &dicke_sample(&ops[j].sample(x), lay.n_cells, min_eig), lay.n_cells);
            values.extend_from_slice(&v[..nm]);
            update_peaks(peaks, s, t, &v[nm..]);
            if let Some(save) = plan.save_states {
                push_row_major(states, &saved_state(plan.space, &unpack_state(x, dim), 0.0, save));
            }
        }
    }
    Ok(out)
}

/// The structured f64 engine over a plan: members grouped by parity path into batches of
/// `LANES`, the batches in parallel; results in member order.
fn run_dicke_cpu(plan: &Plan, opts: &RunOptions) -> Result<EnsembleOutput> {
    let Space::Dicke { n_cells, n_fock } = plan.space else {
        return Err(QbatError::invalid("model", "the dicke engine runs dicke plans only"));
    };
    // A parity-definite start stays so: step the same-parity pairs only.
    let parity: Vec<bool> = plan.members.par_iter().map(|m| parity_definite(&plan.initial_state(m), n_fock)).collect();
    let mut batches: Vec<(bool, Vec<usize>)> = vec![];
    for path in [true, false] {
        let idx: Vec<usize> = (0..parity.len()).filter(|&i| parity[i] == path).collect();
        batches.extend(idx.chunks(LANES).map(|b| (path, b.to_vec())));
    }
    let layouts: Vec<Option<DickeGathers>> =
        [true, false].into_iter().map(|path| parity.contains(&path).then(|| DickeGathers::new(n_cells, n_fock, path))).collect();
    let pb = progress_bar(opts.progress, plan.members.len() as u64, "cpu f64 (dicke)");
    let per: Vec<Result<Vec<MemberOutput>>> = batches
        .par_iter()
        .map(|(path, idx)| {
            opts.check_cancelled()?;
            let lay = layouts[usize::from(!path)].as_ref().ok_or_else(|| QbatError::invalid("members", "no layout for a parity path in use"))?;
            let members: Vec<&Member> = idx.iter().map(|&i| &plan.members[i]).collect();
            opts.done_if_ok(dicke_batch(plan, lay, &members, &|| opts.is_cancelled()), idx.len() as u64, &pb)
        })
        .collect();
    pb.finish_and_clear();
    opts.check_cancelled()?;
    let mut by_member: Vec<Option<MemberOutput>> = (0..plan.members.len()).map(|_| None).collect();
    for ((_, idx), r) in batches.iter().zip(per) {
        for (&i, o) in idx.iter().zip(r?) {
            by_member[i] = Some(o);
        }
    }
    let mut values = Vec::with_capacity(plan.members.len() * plan.schedule.times.len() * plan.measures.len());
    let mut peaks = Vec::with_capacity(plan.members.len() * 4);
    let mut states = plan.save_states.map(|_| vec![]);
    for o in by_member {
        let (v, p, st) = o.ok_or_else(|| QbatError::invalid("members", "a member was not run"))?;
        values.extend(v);
        peaks.extend(p);
        if let Some(all) = states.as_mut() {
            all.extend(st);
        }
    }
    Ok((values, peaks, states))
}

/// Run a dicke plan: the reference engine for `--backend reference`, the GPU kernel for
/// `--backend gpu` (and `auto` with an adapter), else the structured f64 engine in parallel
/// over members.
pub fn run_dicke(plan: &Plan, opts: &RunOptions, engine: &Engine) -> Result<EngineOutput> {
    match engine {
        Engine::Reference => {
            let (values, peaks, states) = run_reference(plan, opts)?;
            let mut out = EngineOutput::new(plan, values, peaks, Precision::F64, 0.0, 0.0);
            out.states = plan.save_states.map(|_| states);
            Ok(out)
        }
        // The kernel keeps no states on the host: auto takes the CPU engine for --save-states.
        Engine::Gpu(_) if plan.save_states.is_some() && opts.backend == super::Backend::Auto => {
            let note = "--save-states on dicke: the GPU kernel keeps no states on the host, so the run is on the structured CPU engine".to_string();
            super::say(opts, &note);
            let mut out = run_dicke(plan, opts, &Engine::Cpu)?;
            out.notes.push(note);
            out.ran_on = Some(("cpu", Engine::Cpu.device_name()));
            Ok(out)
        }
        Engine::Gpu(ctx) => run_dicke_gpu_engine(plan, opts, ctx),
        Engine::Cpu => {
            let (values, peaks, states) = run_dicke_cpu(plan, opts)?;
            let mut out = EngineOutput::new(plan, values, peaks, Precision::F64, 0.0, 0.0);
            out.states = states;
            Ok(out)
        }
    }
}

/// The GPU job of a dicke plan; `initial` builds member i's initial state. The parity path
/// is taken when every member starts parity-definite.
pub fn dicke_job<'a>(plan: &Plan, initial: &'a (dyn Fn(usize) -> CMat + Sync)) -> Result<DickeJob<'a>> {
    let Space::Dicke { n_cells, n_fock } = plan.space else {
        return Err(QbatError::invalid("model", "the dicke engine runs dicke plans only"));
    };
    let points = plan.points.iter().map(dicke_coeffs).collect::<Result<Vec<_>>>()?;
    let parity_only = (0..plan.members.len()).into_par_iter().all(|i| parity_definite(&initial(i), n_fock));
    Ok(DickeJob {
        n_cells,
        n_fock,
        points,
        member_point: plan.members.iter().map(|m| m.point as u32).collect(),
        initial,
        schedule: plan.schedule.clone(),
        parity_only,
    })
}

/// What the dicke GPU kernel cannot give, as an error: saved states (except under `--backend
/// auto`, which then takes the CPU engine) and an explicitly asked-for min_eigenvalue. Checked
/// here and, before a study touches its output directory, by `engine::refuse_early`.
pub(super) fn gpu_refusal(plan: &Plan, opts: &RunOptions) -> Option<QbatError> {
    if plan.save_states.is_some() {
        return (opts.backend != super::Backend::Auto)
            .then(|| QbatError::invalid("--save-states", "the dicke GPU kernel keeps no states on the host; run with --backend cpu to save them"));
    }
    super::cavity::min_eigenvalue_refusal(plan, "dicke")
}

/// dicke on the GPU kernel, the measures on the host from the reduced cell state and the
/// kernel's sums. min_eigenvalue needs the full state, which the kernel never returns: asked
/// for, it is an error; among the default measures, it is left out with a note.
fn run_dicke_gpu_engine(plan: &Plan, opts: &RunOptions, ctx: &GpuContext) -> Result<EngineOutput> {
    if let Some(e) = gpu_refusal(plan, opts) {
        return Err(e);
    }
    let mut notes = vec![];
    let measures = super::cavity::without_min_eigenvalue(plan, opts, "dicke", &mut notes)?;
    let t = Instant::now();
    let initial = |i: usize| plan.initial_state(&plan.members[i]);
    let job = dicke_job(plan, &initial)?;
    let ensemble = t.elapsed().as_secs_f64();
    let r = super::cavity::with_gpu_progress(plan, opts, "dicke", |gopts, progress| run_dicke_gpu(ctx, &job, opts.precision, gopts, progress))?;
    let th = Instant::now();
    let n = job.n_cells;
    let mut list = measures.clone();
    list.extend(PEAK_MEASURES);
    let nm = measures.len();
    // each member's rows and peaks written in place, in parallel
    let mut values = vec![0.0; plan.members.len() * r.n_samples * nm];
    let mut peaks = vec![Peak::default(); plan.members.len() * 4];
    values.par_chunks_mut((r.n_samples * nm).max(1)).zip(peaks.par_chunks_mut(4)).enumerate().for_each(|(i, (rows, member_peaks))| {
        let m = &plan.members[i];
        let ctx = MeasureContext::new(&plan.systems[m.point], &initial(i));
        for (s, &t) in plan.schedule.times.iter().enumerate() {
            let v = evaluate_sample(&list, &ctx, t, &dicke_sample(r.sample(i, s), n, None), n);
            rows[s * nm..(s + 1) * nm].copy_from_slice(&v[..nm]);
            update_peaks(member_peaks, s, t, &v[nm..]);
        }
    });
    Ok(EngineOutput {
        measures,
        values,
        peaks,
        precision: opts.precision,
        ensemble,
        host_measures: th.elapsed().as_secs_f64(),
        notes,
        fallbacks: vec![],
        engine_plan: serde_json::to_value(&r.plan).ok(),
        ran_on: None,
        states: None,
    })
}
