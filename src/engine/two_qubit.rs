//! Two-qubit models on the CPU twin (f64) or the GPU kernel: the job built from a plan, the
//! host's eigen-solve measures merged into the kernel's columns, and the GPU run in slices so
//! that the host measures of one slice overlap the kernel of the next.

use super::{progress_bar, ChunkProgress, Engine, EngineOutput, RunOptions};
use crate::config::Plan;
use crate::error::Result;
use crate::gpu::{rk4_two_qubit::run_two_qubit_gpu_with, GpuContext};
use crate::job::{pauli, Peak, Precision, TwoQubitJob, TwoQubitResult};
use crate::measures::{evaluate, Measure, MeasureContext, Sample};
use crate::twin::rk4_two_qubit::run_two_qubit_twin;
use rayon::prelude::*;
use std::time::Instant;

/// The two-qubit job of a plan: Pauli-basis generators, member initial states, closed-form measures.
pub fn two_qubit_job(plan: &Plan) -> TwoQubitJob {
    let switched = plan.schedule.switch_segment().is_some();
    let points = plan
        .systems
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let mut p = pauli::point(s);
            p.drives = plan.drives.get(k).map(|d| d.iter().map(pauli::point_drive).collect()).unwrap_or_default();
            // `[protocol] switch_off`: the generator of the uncoupled model for the steps after T.
            if switched {
                p.generator_off = Some(Box::new(pauli::generator(&s.uncoupled())));
            }
            p
        })
        .collect();
    let member_point = plan.members.iter().map(|m| m.point as u32).collect();
    let initial = plan.members.par_iter().map(|m| pauli::to_pauli(&plan.initial_state(m))).collect();
    let measures: Vec<Measure> = plan.measures.iter().copied().filter(|m| !m.needs_eigensolve()).collect();
    let keep_states = plan.measures.iter().any(|m| m.needs_eigensolve());
    TwoQubitJob { points, member_point, initial, schedule: plan.schedule.clone(), measures, keep_states }
}

/// A two-qubit plan on the CPU twin (f64) or the GPU kernel.
pub fn run_two_qubit(plan: &Plan, opts: &RunOptions, engine: &Engine) -> Result<EngineOutput> {
    let t = Instant::now();
    let job = two_qubit_job(plan);
    let ensemble = t.elapsed().as_secs_f64();
    if let Engine::Gpu(ctx) = engine {
        let pb = progress_bar(opts.progress, plan.members.len() as u64, &format!("gpu {}", opts.precision.name()));
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
    if opts.control.is_some() {
        let (values, peaks, host_measures) = run_two_qubit_twin_sliced(plan, &job, opts)?;
        return Ok(EngineOutput::new(plan, values, peaks, Precision::F64, ensemble, host_measures));
    }
    let result = run_two_qubit_twin::<f64>(&job);
    let peaks = result.peaks.clone();
    let (values, host_measures) = assemble(plan, 0, &job, result);
    Ok(EngineOutput::new(plan, values, peaks, Precision::F64, ensemble, host_measures))
}

/// The CPU twin on slices of members, for a run with a control: the flag is checked and
/// `done` advanced between slices. Bit-identical to one call on every member (members are
/// independent); the run without a control keeps the one call.
fn run_two_qubit_twin_sliced(plan: &Plan, job: &TwoQubitJob, opts: &RunOptions) -> Result<(Vec<f64>, Vec<Peak>, f64)> {
    let n = plan.members.len();
    // About 100 slices, each enough members to keep every thread busy.
    let slice = n.div_ceil(100).max(4 * rayon::current_num_threads()).max(1);
    let pb = progress_bar(opts.progress, n as u64, "cpu f64");
    let (ns, nm) = (plan.schedule.times.len(), plan.measures.len());
    let mut values = Vec::with_capacity(n * ns * nm);
    let mut peaks = Vec::with_capacity(n * 4);
    let mut host = 0.0;
    for lo in (0..n).step_by(slice) {
        opts.check_cancelled()?;
        let hi = (lo + slice).min(n);
        let sub = job_slice(job, lo..hi);
        let result = run_two_qubit_twin::<f64>(&sub);
        peaks.extend_from_slice(&result.peaks);
        let (v, h) = assemble(plan, lo, &sub, result);
        values.extend(v);
        host += h;
        pb.inc((hi - lo) as u64);
        opts.add_done((hi - lo) as u64);
    }
    pb.finish_and_clear();
    opts.check_cancelled()?;
    Ok((values, peaks, host))
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
                    let rho = pauli::from_pauli(&x);
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
                let chunks = ChunkProgress::new(opts);
                let res = run_two_qubit_gpu_with(ctx, &sub, opts.precision, &gopts, &|done| {
                    pb.set_position(offset + done);
                    chunks.report(done)
                });
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
