//! Backend selection and dispatch: which engine integrates which model.
//!
//! - `reference`: the f64 matrix-form oracle, every model.
//! - `cpu`: two-qubit models on the f64 CPU twin of the GPU kernel (Pauli basis, rayon);
//!   cavity-cells on the structured f64 engine (`twin::rk4_cavity`, rayon over members).
//! - `gpu`: two-qubit models on the WGSL kernel; the 4x4 eigen-solve measures are computed
//!   on the host (nalgebra) from the states the kernel returns. cavity-cells on the
//!   rk4_cavity kernel, which returns the reduced (cell 1, cell 2) states (and Z's), the
//!   photon number and the Fock tail; every other measure is computed on the host from the
//!   reduced states, as the CPU engine does. min_eigenvalue needs the full cavity state and is
//!   not available there.
//! - `[time] steady = true` (every backend): each member's steady state from the null space of
//!   its Liouvillian, on the CPU in f64 (`steady.rs`), with no integration.

use crate::config::Plan;
use crate::error::{QbatError, Result};
use crate::gpu::{rk4_cavity::run_cavity_gpu, rk4_cavity::CavityGpuOptions, rk4_cavity::CavityResult};
use crate::gpu::{rk4_two_qubit::run_two_qubit_gpu_with, GpuContext};
use crate::job::{CavityJob, CavityPoint, Peak, SegmentEnd, TwoQubitJob, TwoQubitResult, PEAK_MEASURES};
use crate::linalg::{CMat, C64};
use crate::twin::rk4_cavity::{CavityCoeffs, CavityOps, CavityWork, Cx};
use crate::measures::{evaluate, Measure, MeasureContext, Sample};
use crate::run::{run_reference, Backend, Precision, RunOptions};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The engine chosen for a run.
pub enum Engine {
    Reference,
    Cpu,
    Gpu(Arc<GpuContext>),
}

impl Engine {
    pub fn name(&self) -> &'static str {
        match self {
            Engine::Reference => "reference",
            Engine::Cpu => "cpu",
            Engine::Gpu(_) => "gpu",
        }
    }
    pub fn device_name(&self) -> String {
        match self {
            Engine::Gpu(ctx) => format!("{} ({}, {})", ctx.info.name, ctx.info.backend, ctx.info.device_type),
            _ => format!("CPU ({} threads)", rayon::current_num_threads()),
        }
    }
}

pub struct EngineOutput {
    /// The columns of `values`: the plan's measures, less any the engine cannot give (then
    /// said in `notes`).
    pub measures: Vec<Measure>,
    pub values: Vec<f64>,
    pub peaks: Vec<Peak>,
    pub precision: Precision,
    pub ensemble: f64,
    pub host_measures: f64,
    /// Notes for the run (run.json).
    pub notes: Vec<String>,
    /// How the engine laid the job out on the device (GPU cavity engine), for run.json.
    pub engine_plan: Option<serde_json::Value>,
}

impl EngineOutput {
    fn new(plan: &Plan, values: Vec<f64>, peaks: Vec<Peak>, precision: Precision, ensemble: f64, host_measures: f64) -> Self {
        EngineOutput {
            measures: plan.measures.clone(),
            values,
            peaks,
            precision,
            ensemble,
            host_measures,
            notes: vec![],
            engine_plan: None,
        }
    }
}

/// One GPU context per process (instance, adapter, device, pipelines), keyed by the adapter
/// request and whether f64 was asked for.
static CONTEXT: Mutex<Option<((Option<String>, bool), Arc<GpuContext>)>> = Mutex::new(None);

pub fn gpu_context(adapter: Option<&str>, need_f64: bool) -> Result<Arc<GpuContext>> {
    let key = (adapter.map(str::to_string), need_f64);
    let mut slot = CONTEXT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((k, ctx)) = slot.as_ref() {
        if *k == key {
            return Ok(ctx.clone());
        }
    }
    let ctx = Arc::new(GpuContext::new(adapter, need_f64)?);
    *slot = Some((key, ctx.clone()));
    Ok(ctx)
}

/// Is there a usable GPU adapter?
pub fn gpu_available() -> bool {
    gpu_context(None, false).is_ok()
}

pub fn resolve_backend(opts: &RunOptions, notes: &mut Vec<String>) -> Result<Engine> {
    let need_f64 = opts.precision == Precision::F64;
    match opts.backend {
        Backend::Reference => Ok(Engine::Reference),
        Backend::Cpu => Ok(Engine::Cpu),
        Backend::Gpu => Ok(Engine::Gpu(gpu_context(opts.adapter.as_deref(), need_f64)?)),
        Backend::Auto => match gpu_context(opts.adapter.as_deref(), need_f64) {
            Ok(ctx) => Ok(Engine::Gpu(ctx)),
            Err(e) => {
                let note = format!("no usable GPU adapter ({e}); running on the CPU engine");
                eprintln!("note: {note}");
                notes.push(note);
                Ok(Engine::Cpu)
            }
        },
    }
}

/// The two-qubit job of a plan: Pauli-basis generators, member initial states, closed-form measures.
pub fn two_qubit_job(plan: &Plan) -> TwoQubitJob {
    let switched = plan.schedule.switch_segment().is_some();
    let points = plan
        .systems
        .iter()
        .map(|s| {
            let mut p = crate::pauli::point(s);
            // `[protocol] switch_off`: the generator of the uncoupled model for the steps after T.
            if switched {
                p.generator_off = Some(Box::new(crate::pauli::generator(&s.uncoupled())));
            }
            p
        })
        .collect();
    let member_point = plan.members.iter().map(|m| m.point as u32).collect();
    let initial = plan.members.par_iter().map(|m| crate::pauli::to_pauli(&plan.initial_state(m))).collect();
    let measures: Vec<Measure> = plan.measures.iter().copied().filter(|m| !m.needs_eigensolve()).collect();
    let keep_states = plan.measures.iter().any(|m| m.needs_eigensolve());
    TwoQubitJob { points, member_point, initial, schedule: plan.schedule.clone(), measures, keep_states }
}

/// Merge the engine's closed-form columns with the eigen-solve measures computed here, in
/// nalgebra f64, from the returned states; columns in the plan's order. `r` holds the members
/// plan.members[offset..offset + n] of the (sliced) `job`.
fn assemble(plan: &Plan, offset: usize, job: &TwoQubitJob, r: TwoQubitResult) -> (Vec<f64>, f64) {
    let t = Instant::now();
    let ns = plan.schedule.times.len();
    let nm = plan.measures.len();
    let n = r.peaks.len() / 4;
    let eigen: Vec<Measure> = plan.measures.iter().copied().filter(|m| m.needs_eigensolve()).collect();
    let col_engine: Vec<Option<usize>> = plan.measures.iter().map(|m| job.measures.iter().position(|x| x == m)).collect();
    let col_eigen: Vec<Option<usize>> = plan.measures.iter().map(|m| eigen.iter().position(|x| x == m)).collect();
    let ne = job.measures.len();
    let mut values = vec![0.0; n * ns * nm];
    values.par_chunks_mut(ns * nm).enumerate().for_each(|(i, out)| {
        let m = &plan.members[offset + i];
        // The engines return the sampled states after the dephasing channel: measure them as they are.
        let ctx = (!eigen.is_empty()).then(|| {
            let mut ctx = MeasureContext::new(&plan.systems[m.point], &plan.initial_state(m));
            ctx.dephasing = 0.0;
            ctx
        });
        for s in 0..ns {
            let ev = match (&ctx, &r.states) {
                (Some(ctx), Some(states)) => {
                    let off = (i * ns + s) * 16;
                    let x: [f64; 16] = states[off..off + 16].try_into().expect("16 Pauli coefficients");
                    let rho = crate::pauli::from_pauli(&x);
                    evaluate(&eigen, ctx, &Sample { t: plan.schedule.times[s], rho: &rho, y: None })
                }
                _ => vec![],
            };
            for k in 0..nm {
                out[s * nm + k] = match (col_engine[k], col_eigen[k]) {
                    (Some(c), _) => r.values[(i * ns + s) * ne + c],
                    (None, Some(c)) => ev[c],
                    (None, None) => f64::NAN,
                };
            }
        }
    });
    (values, t.elapsed().as_secs_f64())
}


pub fn integrate(plan: &Plan, opts: &RunOptions, engine: &Engine) -> Result<EngineOutput> {
    // Steady states are solved for directly, on the CPU in f64, whatever the backend.
    if plan.steady {
        return crate::steady::integrate_steady(plan);
    }
    let mut out = integrate_engine(plan, opts, engine)?;
    if let (Some(t_off), None) = (plan.schedule.switch_off, plan.schedule.switch_segment()) {
        let note = format!("protocol.switch_off = {t_off} lies after the last sample time: the coupling stays on for the whole run");
        eprintln!("note: {note}");
        out.notes.push(note);
    }
    Ok(out)
}

fn integrate_engine(plan: &Plan, opts: &RunOptions, engine: &Engine) -> Result<EngineOutput> {
    if matches!(engine, Engine::Reference) {
        let (values, peaks) = run_reference(plan, opts.progress);
        return Ok(EngineOutput::new(plan, values, peaks, Precision::F64, 0.0, 0.0));
    }
    if plan.is_cavity() {
        if let Engine::Gpu(ctx) = engine {
            return run_cavity_gpu_engine(plan, opts, ctx);
        }
        return run_cavity_cpu(plan, opts);
    }
    let t = Instant::now();
    let job = two_qubit_job(plan);
    let ensemble = t.elapsed().as_secs_f64();
    if let Engine::Gpu(ctx) = engine {
        let pb = crate::run::progress_bar(opts.progress, plan.members.len() as u64, &format!("gpu {}", opts.precision.name()));
        let t = Instant::now();
        let (values, peaks, gpu_busy, host_busy) = run_two_qubit_gpu_overlapped(plan, &job, ctx, opts, &pb)?;
        pb.finish_and_clear();
        // The host time not hidden behind the GPU is what the eigen-solve measures added.
        let exposed = (t.elapsed().as_secs_f64() - gpu_busy).max(0.0);
        let mut out = EngineOutput::new(plan, values, peaks, opts.precision, ensemble, exposed);
        if job.keep_states {
            out.notes.push(format!("host eigen-solve measures: {host_busy:.3} s, {:.3} s of it overlapped with the GPU", (host_busy - exposed).max(0.0)));
        }
        return Ok(out);
    }
    let result = crate::twin::rk4_two_qubit::run_two_qubit_twin::<f64>(&job);
    let peaks = result.peaks.clone();
    let (values, host_measures) = assemble(plan, 0, &job, result);
    Ok(EngineOutput::new(plan, values, peaks, Precision::F64, ensemble, host_measures))
}

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

/// Integrate one cavity member on the structured f64 engine; values [sample][measure], peaks.
pub fn cavity_member(plan: &Plan, m: &crate::config::Member) -> Result<(Vec<f64>, [Peak; 4])> {
    let sys = &plan.systems[m.point];
    let coeffs = cavity_coeffs(&plan.points[m.point])?;
    let n_fock = coeffs.n_fock;
    let dim = coeffs.dim();
    let ops = CavityOps::<f64>::new(&coeffs);
    let rho0 = plan.initial_state(m);
    let full_ctx = MeasureContext::new(sys, &rho0);
    // The two-qubit measures take the reduced state; the context is the same but for its space.
    let mut ctx = full_ctx.clone();
    ctx.space = crate::model::Space::TwoQubit;
    let list: Vec<Measure> = plan.measures.clone();
    let two_qubit_list: Vec<Measure> = list.iter().copied().filter(|m| !matches!(m, Measure::PhotonNumber | Measure::FockTail | Measure::TraceError | Measure::MinEigenvalue)).chain(PEAK_MEASURES).collect();
    let want_z = list.contains(&Measure::EnergyFluctuationB);
    let mut x = to_cx(&rho0);
    // Z(0) = {H_B, rho0}/2, whose evolution gives Re Tr(H_B Y(t)).
    let mut z = want_z.then(|| {
        let y0 = crate::run::battery_times_state(plan, sys, &rho0);
        to_cx(&crate::linalg::hermitian_part(&y0))
    });
    let mut work = CavityWork::<f64>::new(dim);
    // `[protocol] switch_off`: the cell-cell coupling g is off after T.
    let ops_off = plan.schedule.switch_segment().map(|_| CavityOps::<f64>::new(&coeffs.uncoupled()));
    let mut gen = &ops;
    let nm = list.len();
    let mut values = Vec::with_capacity(plan.schedule.times.len() * nm);
    let mut peaks = [Peak::default(); 4];
    for seg in &plan.schedule.segments {
        for _ in 0..seg.n_full {
            work.step(gen, &mut x, plan.schedule.dt);
            if let Some(z) = z.as_mut() {
                work.step(gen, z, plan.schedule.dt);
            }
        }
        if seg.h_last > 0.0 {
            work.step(gen, &mut x, seg.h_last);
            if let Some(z) = z.as_mut() {
                work.step(gen, z, seg.h_last);
            }
        }
        let s = match seg.end {
            SegmentEnd::Sample(s) => s,
            SegmentEnd::SwitchOff => {
                gen = ops_off.as_ref().unwrap_or(&ops);
                continue;
            }
        };
        let t = plan.schedule.times[s];
        let rho_q = reduce_cells(&x, n_fock);
        let z_q = z.as_ref().map(|z| reduce_cells(z, n_fock));
        let v = evaluate(&two_qubit_list, &ctx, &Sample { t, rho: &rho_q, y: z_q.as_ref() });
        let mut full: Option<CMat> = None;
        let mut k2 = 0;
        for meas in &list {
            let value = match meas {
                Measure::PhotonNumber => (0..dim).map(|r| (r % (n_fock + 1)) as f64 * x[r * dim + r].re).sum(),
                Measure::FockTail => (0..4).map(|q| x[(q * (n_fock + 1) + n_fock) * (dim + 1)].re).sum(),
                Measure::TraceError => ((0..dim).map(|r| x[r * dim + r].re).sum::<f64>() - 1.0).abs(),
                Measure::MinEigenvalue => {
                    let f = full.get_or_insert_with(|| from_cx(&x, dim));
                    crate::measures::health::min_eigenvalue(f)
                }
                _ => {
                    k2 += 1;
                    v[k2 - 1]
                }
            };
            values.push(value);
        }
        crate::run::update_peaks(&mut peaks, s, t, &v[v.len() - 4..]);
    }
    Ok((values, peaks))
}

/// cavity-cells on the structured f64 engine, in parallel over members.
pub fn run_cavity_cpu(plan: &Plan, opts: &RunOptions) -> Result<EngineOutput> {
    let pb = crate::run::progress_bar(opts.progress, plan.members.len() as u64, "cpu f64 (cavity)");
    let per: Vec<Result<(Vec<f64>, [Peak; 4])>> = plan
        .members
        .par_iter()
        .map(|m| {
            let r = cavity_member(plan, m);
            pb.inc(1);
            r
        })
        .collect();
    pb.finish_and_clear();
    let mut values = Vec::with_capacity(plan.members.len() * plan.schedule.times.len() * plan.measures.len());
    let mut peaks = Vec::with_capacity(plan.members.len() * 4);
    for r in per {
        let (v, p) = r?;
        values.extend(v);
        peaks.extend(p);
    }
    Ok(EngineOutput::new(plan, values, peaks, Precision::F64, 0.0, 0.0))
}

/// Measures the cavity CPU engine takes from the full state rather than the reduced one.
fn full_state_measure(m: Measure) -> bool {
    matches!(m, Measure::PhotonNumber | Measure::FockTail | Measure::TraceError | Measure::MinEigenvalue)
}

/// Was `output.measures` given in the config (rather than defaulted)?
fn measures_explicit(plan: &Plan) -> bool {
    plan.config_json.get("output").and_then(|o| o.get("measures")).is_some()
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
        .map(|(p, sys)| {
            let h = &sys.h_battery;
            Ok(CavityPoint { coeffs: cavity_coeffs(p)?, h_battery: [h[(0, 0)], h[(0, 1)], h[(1, 0)], h[(1, 1)]] })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(CavityJob {
        n_fock,
        points,
        member_point: plan.members.iter().map(|m| m.point as u32).collect(),
        initial,
        schedule: plan.schedule.clone(),
        evolve_z,
    })
}

/// The measures of every member and sample from what the cavity kernel returns, computed as
/// `cavity_member` computes them: the two-qubit measures from the reduced state (and Z's) in
/// a TwoQubit-space context, photon_number and fock_tail as the kernel gives them,
/// trace_error = |Tr rho - 1| from the reduced state's trace (the same trace).
fn cavity_assemble(plan: &Plan, measures: &[Measure], r: &CavityResult) -> (Vec<f64>, Vec<Peak>) {
    let ns = plan.schedule.times.len();
    let two_qubit_list: Vec<Measure> = measures.iter().copied().filter(|m| !full_state_measure(*m)).chain(PEAK_MEASURES).collect();
    let per: Vec<(Vec<f64>, [Peak; 4])> = (0..plan.members.len())
        .into_par_iter()
        .map(|i| {
            let m = &plan.members[i];
            let rho0 = plan.initial_state(m);
            let mut ctx = MeasureContext::new(&plan.systems[m.point], &rho0);
            ctx.space = crate::model::Space::TwoQubit;
            let mut values = Vec::with_capacity(ns * measures.len());
            let mut peaks = [Peak::default(); 4];
            for (s, &t) in plan.schedule.times.iter().enumerate() {
                let rho_q = r.state(i, s);
                let z_q = r.z_state(i, s);
                let v = evaluate(&two_qubit_list, &ctx, &Sample { t, rho: &rho_q, y: z_q.as_ref() });
                let mut k2 = 0;
                for meas in measures {
                    values.push(match meas {
                        Measure::PhotonNumber => r.photon_number[i * ns + s],
                        Measure::FockTail => r.fock_tail[i * ns + s],
                        Measure::TraceError => (rho_q.trace().re - 1.0).abs(),
                        Measure::MinEigenvalue => f64::NAN,
                        _ => {
                            k2 += 1;
                            v[k2 - 1]
                        }
                    });
                }
                crate::run::update_peaks(&mut peaks, s, t, &v[v.len() - 4..]);
            }
            (values, peaks)
        })
        .collect();
    let mut values = Vec::with_capacity(plan.members.len() * ns * measures.len());
    let mut peaks = Vec::with_capacity(plan.members.len() * 4);
    for (v, p) in per {
        values.extend(v);
        peaks.extend(p);
    }
    (values, peaks)
}

/// cavity-cells on the GPU kernel, the measures on the host from the reduced states.
fn run_cavity_gpu_engine(plan: &Plan, opts: &RunOptions, ctx: &GpuContext) -> Result<EngineOutput> {
    let mut notes = vec![];
    let mut measures = plan.measures.clone();
    if measures.contains(&Measure::MinEigenvalue) {
        if measures_explicit(plan) {
            return Err(QbatError::invalid(
                "output.measures",
                "min_eigenvalue needs the full cavity state, which the GPU engine does not keep (it returns the reduced cell state); use --backend cpu, or leave min_eigenvalue out",
            ));
        }
        measures.retain(|m| *m != Measure::MinEigenvalue);
        let note = "min_eigenvalue needs the full cavity state, which the GPU engine does not keep: left out of the default measures (--backend cpu gives it)".to_string();
        eprintln!("note: {note}");
        notes.push(note);
    }
    let t = Instant::now();
    let initial = |i: usize| plan.initial_state(&plan.members[i]);
    let job = cavity_job(plan, &initial, measures.contains(&Measure::EnergyFluctuationB))?;
    let ensemble = t.elapsed().as_secs_f64();
    let pb = crate::run::progress_bar(opts.progress, plan.members.len() as u64, &format!("gpu {} (cavity)", opts.precision.name()));
    let gopts = CavityGpuOptions { max_members_per_chunk: opts.max_chunk, ..Default::default() };
    let r = run_cavity_gpu(ctx, &job, opts.precision, &gopts, &|done| pb.set_position(done))?;
    pb.finish_and_clear();
    let th = Instant::now();
    let (values, peaks) = cavity_assemble(plan, &measures, &r);
    let host_measures = th.elapsed().as_secs_f64();
    Ok(EngineOutput {
        measures,
        values,
        peaks,
        precision: opts.precision,
        ensemble,
        host_measures,
        notes,
        engine_plan: serde_json::to_value(&r.plan).ok(),
    })
}

/// Members [range] of a two-qubit job, with only the parameter points they use (remapped).
fn job_slice(job: &TwoQubitJob, range: std::ops::Range<usize>) -> TwoQubitJob {
    let mut remap: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
    let mut points = vec![];
    let member_point = job.member_point[range.clone()]
        .iter()
        .map(|&p| {
            *remap.entry(p).or_insert_with(|| {
                points.push(job.points[p as usize].clone());
                (points.len() - 1) as u32
            })
        })
        .collect();
    TwoQubitJob {
        points,
        member_point,
        initial: job.initial[range].to_vec(),
        schedule: job.schedule.clone(),
        measures: job.measures.clone(),
        keep_states: job.keep_states,
    }
}

/// Two-qubit members on the GPU in slices, so that the host's eigen-solve measures of slice k
/// run while the GPU integrates slice k + 1. Results are identical to one slice (members are
/// independent and GPU chunking is bit-exact). Returns values, peaks, and the GPU and host
/// busy times.
fn run_two_qubit_gpu_overlapped(
    plan: &Plan,
    job: &TwoQubitJob,
    ctx: &GpuContext,
    opts: &RunOptions,
    pb: &indicatif::ProgressBar,
) -> Result<(Vec<f64>, Vec<Peak>, f64, f64)> {
    let n = plan.members.len();
    // Overlap only pays when there is host work; then about 8 slices of at least 4,096 members.
    let slice = if job.keep_states { n.div_ceil(8).max(4096) } else { n.max(1) };
    let ranges: Vec<std::ops::Range<usize>> = (0..n).step_by(slice).map(|s| s..(s + slice).min(n)).collect();
    let gopts = crate::gpu::rk4_two_qubit::GpuRunOptions { max_members_per_chunk: opts.max_chunk, ..Default::default() };
    let ns = plan.schedule.times.len();
    let nm = plan.measures.len();
    let mut values = vec![0.0; n * ns * nm];
    let mut peaks = vec![Peak::default(); n * 4];
    let mut host = 0.0;
    let gpu_time = std::thread::scope(|scope| -> Result<f64> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<(std::ops::Range<usize>, TwoQubitJob, TwoQubitResult)>>(1);
        let producer = scope.spawn(move || {
            let t = Instant::now();
            for r in ranges {
                let sub = job_slice(job, r.clone());
                let offset = r.start as u64;
                let res = run_two_qubit_gpu_with(ctx, &sub, opts.precision, &gopts, &|done| pb.set_position(offset + done));
                let failed = res.is_err();
                if tx.send(res.map(|x| (r, sub, x))).is_err() || failed {
                    break;
                }
            }
            t.elapsed().as_secs_f64()
        });
        for msg in rx {
            let (r, sub, res) = msg?;
            peaks[r.start * 4..r.end * 4].copy_from_slice(&res.peaks);
            let (v, h) = assemble(plan, r.start, &sub, res);
            values[r.start * ns * nm..r.end * ns * nm].copy_from_slice(&v);
            host += h;
        }
        Ok(producer.join().unwrap_or(0.0))
    })?;
    Ok((values, peaks, gpu_time, host))
}
