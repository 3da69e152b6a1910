//! Two-qubit models on the CPU twin (f64) or the GPU kernel: the job built from a plan, and
//! the eigen-solve measures (capacity_total, residual_capacity, concurrence, the LOO
//! steerings, min_eigenvalue) merged into the kernel's columns. They come from the measures
//! kernel on the device (`gpu::measures_two_qubit`, the states stay there) or from its CPU
//! twin (`twin::measures_two_qubit`, f64) on the CPU engine.

use super::{progress_bar, ChunkProgress, Engine, EngineOutput, RunOptions};
use crate::config::Plan;
use crate::error::Result;
use crate::gpu::rk4_two_qubit::{run_two_qubit_gpu_into, ValuesSink};
use crate::gpu::GpuContext;
use crate::job::columns::column_sources;
use crate::job::measures_two_qubit::EigenJob;
use crate::job::{pauli, Peak, Precision, TwoQubitJob};
use crate::linalg::C64;
use crate::measures::saved::push_row_major;
use crate::measures::{energy::eigvals_asc, Measure};
use crate::twin::measures_two_qubit::run_measures_twin_into;
use crate::twin::rk4_two_qubit::{run_two_qubit_twin_into, run_two_qubit_twin_reusing, TwinBuffers};
use rayon::prelude::*;
use std::time::Instant;

/// The two-qubit job of a plan: Pauli-basis generators, member initial states, closed-form measures.
pub fn two_qubit_job(plan: &Plan) -> TwoQubitJob {
    let switched = plan.schedule.switch_segment().is_some();
    let points = plan
        .systems
        .par_iter()
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
    // States come back for the eigen-solve measures (the CPU engine's twin) and for `--save-states`.
    let keep_states = plan.measures.iter().any(|m| m.needs_eigensolve()) || plan.save_states.is_some();
    TwoQubitJob { points, member_point, initial, schedule: plan.schedule.clone(), measures, keep_states }
}

/// The eigen-solve measures of a two-qubit plan, with the spectrum of each point's full
/// Hamiltonian (once per point, not per sample).
pub fn eigen_job(plan: &Plan) -> EigenJob {
    let measures: Vec<Measure> = plan.measures.iter().copied().filter(|m| m.needs_eigensolve()).collect();
    let h_total_eigs = if measures.is_empty() {
        vec![[0.0; 4]; plan.systems.len()]
    } else {
        plan.systems
            .par_iter()
            .map(|s| {
                // (of H's traceless part: capacity_total takes only the gaps, which an offset's
                // rounding in every eigenvalue blurred; the reference takes the same)
                let e = eigvals_asc(&crate::linalg::traceless_part(&s.hamiltonian));
                [e[0], e[1], e[2], e[3]]
            })
            .collect()
    };
    EigenJob { measures, h_total_eigs }
}

/// A two-qubit plan on the CPU twin (f64) or the GPU kernel.
pub fn run_two_qubit(plan: &Plan, opts: &RunOptions, engine: &Engine) -> Result<EngineOutput> {
    let t = Instant::now();
    let job = two_qubit_job(plan);
    let eigen = eigen_job(plan);
    let ensemble = t.elapsed().as_secs_f64();
    if let Engine::Gpu(ctx) = engine {
        let pb = progress_bar(opts.progress, plan.members.len() as u64, &format!("gpu {}", opts.precision.name()));
        let t = Instant::now();
        // The eigen-solve measures run on the device: the states are read back only for
        // `--save-states`.
        let job = TwoQubitJob { keep_states: plan.save_states.is_some(), ..job };
        let note = (!eigen.is_empty())
            .then(|| format!("eigen-solve measures on the device in {} (Jacobi; concurrence from singular values of X^T S X)", opts.precision.name()));
        if let Some(note) = &note {
            super::say(opts, note);
        }
        let (values, peaks, states, gpu_busy) = run_two_qubit_gpu_overlapped(plan, &job, &eigen, ctx, opts, &pb)?;
        pb.finish_and_clear();
        let exposed = (t.elapsed().as_secs_f64() - gpu_busy).max(0.0);
        let mut out = EngineOutput::new(plan, values, peaks, opts.precision, ensemble, exposed);
        out.states = states;
        out.notes.extend(note);
        return Ok(out);
    }
    let (values, peaks, states, host_measures) = run_two_qubit_twin_sliced(plan, &job, &eigen, opts)?;
    let mut out = EngineOutput::new(plan, values, peaks, Precision::F64, ensemble, host_measures);
    out.states = states;
    Ok(out)
}

/// `--save-states`: the engine's sampled states (Pauli basis, after the dephasing channel, as
/// the measures see them) as 4x4 matrices, row-major.
fn saved_states(plan: &Plan, states: Option<&[f64]>) -> Option<Vec<C64>> {
    plan.save_states?;
    let x = states?;
    let mut out = Vec::with_capacity(x.len());
    for chunk in x.chunks_exact(16) {
        let p: [f64; 16] = chunk.try_into().expect("16 Pauli coefficients");
        push_row_major(&mut out, &pauli::from_pauli(&p));
    }
    Some(out)
}

/// The CPU twin on slices of members (at most about 100), each integrated and measured in
/// buffers reused from slice to slice and written into the block's values in place. Between
/// slices the run's control flag is checked, `done` advanced and the progress bar moved.
/// Bit-identical to one call on every member (members are independent).
fn run_two_qubit_twin_sliced(plan: &Plan, job: &TwoQubitJob, eigen: &EigenJob, opts: &RunOptions) -> Result<(Vec<f64>, Vec<Peak>, Option<Vec<C64>>, f64)> {
    let n = plan.members.len();
    let (ns, nm) = (plan.schedule.times.len(), plan.measures.len());
    // A slice's twin outputs: its columns and, for the eigen-solve measures, its states.
    let member_bytes = ns * (job.measures.len() + if job.keep_states { 16 } else { 0 }) * 8;
    let pb = progress_bar(opts.progress, n as u64, "cpu f64");
    let slice = crate::job::footprint::twin_slice_members(n, member_bytes, opts.control.as_ref().is_some_and(|c| c.is_polled()) || !pb.is_hidden());
    let mut values = opts.zeroed_values(n * ns * nm);
    let mut peaks = Vec::with_capacity(n * 4);
    let mut states = plan.save_states.map(|_| Vec::with_capacity(n * ns * 16));
    let mut host = 0.0;
    // A slice's integrator outputs and eigen-solve measures, in buffers reused from slice to
    // slice: memory faulted in once, and in cache, where fresh buffers cost a page fault per
    // 4 KiB written (a few times the block's values in all).
    let (mut buffers, mut ev) = (TwinBuffers::default(), vec![]);
    // The engine's columns are the plan's, with nothing to add: the twin writes the block's
    // values in place.
    let in_place = eigen.is_empty() && job.measures == plan.measures && nm > 0 && ns > 0;
    for lo in (0..n).step_by(slice) {
        opts.check_cancelled()?;
        let hi = (lo + slice).min(n);
        let (sub, used) = job_slice(job, lo..hi);
        let out = &mut values[lo * ns * nm..hi * ns * nm];
        let buffers_in = std::mem::take(&mut buffers);
        // (inside a slice too: one long member stopped within a few ms, not at its end)
        let stop = || opts.is_cancelled();
        let result =
            if in_place { run_two_qubit_twin_into::<f64>(&sub, buffers_in, out, &stop) } else { run_two_qubit_twin_reusing::<f64>(&sub, buffers_in, &stop) };
        // (a stopped slice's values are unfinished)
        opts.check_cancelled()?;
        peaks.extend_from_slice(&result.peaks);
        if let (Some(all), Some(st)) = (states.as_mut(), saved_states(plan, result.states.as_deref())) {
            all.extend(st);
        }
        let t = Instant::now();
        if !in_place {
            let sub_eigen = eigen.select(&used);
            match &result.states {
                Some(st) if !sub_eigen.is_empty() => run_measures_twin_into::<f64>(&sub_eigen, &sub.points, &sub.member_point, st, ns, &mut ev),
                _ => ev.clear(),
            }
            merge_columns(plan, &sub, &sub_eigen, &result.values, &ev, out);
        }
        host += t.elapsed().as_secs_f64();
        buffers = TwinBuffers::from(result);
        pb.inc((hi - lo) as u64);
        opts.add_done((hi - lo) as u64);
    }
    pb.finish_and_clear();
    opts.check_cancelled()?;
    Ok((values, peaks, states, host))
}

/// `out` (the members of `job`, values in the plan's column order) from the engine's columns
/// `engine_values` (`job.measures`, NaN where the kernel has no code) and the eigen-solve
/// measures `ev` (`eigen.measures`, NaN where missing). (The GPU path takes the same sources
/// from `job::columns` and fills its rows from the read-back.)
fn merge_columns(plan: &Plan, job: &TwoQubitJob, eigen: &EigenJob, engine_values: &[f64], ev: &[f64], out: &mut [f64]) {
    let ns = plan.schedule.times.len();
    let nm = plan.measures.len();
    let col_engine: Vec<Option<usize>> = plan.measures.iter().map(|m| job.measures.iter().position(|x| x == m)).collect();
    let col_eigen: Vec<Option<usize>> = plan.measures.iter().map(|m| eigen.measures.iter().position(|x| x == m)).collect();
    let (ne, nev) = (job.measures.len(), eigen.measures.len());
    if ns * nm == 0 {
        return;
    }
    out.par_chunks_mut(ns * nm).enumerate().for_each(|(i, out)| {
        for s in 0..ns {
            let row = i * ns + s;
            for k in 0..nm {
                out[s * nm + k] = match (col_engine[k], col_eigen[k]) {
                    (Some(c), _) => engine_values[row * ne + c],
                    (None, Some(c)) => ev.get(row * nev + c).copied().unwrap_or(f64::NAN),
                    (None, None) => f64::NAN,
                };
            }
        }
    });
}

/// Members [range] of a two-qubit job, with only the parameter points they use (remapped),
/// and the indices of those points in `job`.
fn job_slice(job: &TwoQubitJob, range: std::ops::Range<usize>) -> (TwoQubitJob, Vec<u32>) {
    let mut remap: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
    let mut points = vec![];
    let mut used = vec![];
    let member_point = job.member_point[range.clone()]
        .iter()
        .map(|&p| {
            *remap.entry(p).or_insert_with(|| {
                points.push(job.points[p as usize].clone());
                used.push(p);
                (points.len() - 1) as u32
            })
        })
        .collect();
    let sub = TwoQubitJob {
        points,
        member_point,
        initial: job.initial[range].to_vec(),
        schedule: job.schedule.clone(),
        measures: job.measures.clone(),
        keep_states: job.keep_states,
    };
    (sub, used)
}

/// Two-qubit members on the GPU in slices: each slice's values are filled into its rows of the
/// block from the read-back, on the thread that drives the device; with `--save-states` the
/// host converts slice k's states while the GPU integrates slice k + 1 (otherwise there is
/// one slice). Results are identical to one slice (members are independent and GPU chunking
/// is bit-exact). Returns values, peaks, the saved states, and the seconds the device thread
/// was busy (the read-back's filling included).
fn run_two_qubit_gpu_overlapped(
    plan: &Plan,
    job: &TwoQubitJob,
    eigen: &EigenJob,
    ctx: &GpuContext,
    opts: &RunOptions,
    pb: &indicatif::ProgressBar,
) -> Result<(Vec<f64>, Vec<Peak>, Option<Vec<C64>>, f64)> {
    let n = plan.members.len();
    // Overlap only pays when there is host work; then about 8 slices of at least 4,096 members.
    let slice = if job.keep_states { n.div_ceil(8).max(4096) } else { n.max(1) };
    let eigen = if eigen.is_empty() { None } else { Some(eigen) };
    let ranges: Vec<std::ops::Range<usize>> = (0..n).step_by(slice).map(|s| s..(s + slice).min(n)).collect();
    let gopts = crate::gpu::rk4_two_qubit::GpuRunOptions { max_members_per_chunk: opts.max_chunk, ..Default::default() };
    let ns = plan.schedule.times.len();
    let nm = plan.measures.len();
    // The block's values in the plan's column order, each slice's rows filled in place from
    // the device's read-back.
    let columns = column_sources(&plan.measures, &job.measures, eigen.map_or(&[], |e| &e.measures));
    let mut values = opts.zeroed_values(n * ns * nm);
    let mut rest = &mut values[..];
    let rows_of_slices: Vec<&mut [f64]> = ranges
        .iter()
        .map(|r| {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(r.len() * ns * nm);
            rest = tail;
            head
        })
        .collect();
    let mut peaks = vec![Peak::default(); n * 4];
    let mut states = plan.save_states.map(|_| vec![C64::default(); n * ns * 16]);
    let gpu_time = std::thread::scope(|scope| -> Result<f64> {
        type Slice = (std::ops::Range<usize>, Vec<Peak>, Option<Vec<f64>>);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Slice>>(1);
        let columns = &columns;
        let producer = crate::threads::spawn_scoped(scope, "the GPU's slices", move || {
            let t = Instant::now();
            for (r, out) in ranges.into_iter().zip(rows_of_slices) {
                let (sub, used) = job_slice(job, r.clone());
                let sub_eigen = eigen.map(|e| e.select(&used));
                let offset = r.start as u64;
                let chunks = ChunkProgress::new(opts);
                let mut sinks = [ValuesSink { out, columns }];
                let res = run_two_qubit_gpu_into(
                    ctx,
                    &sub,
                    sub_eigen.as_ref(),
                    opts.precision,
                    &gopts,
                    &|done| {
                        pb.set_position(offset + done);
                        chunks.report(done)
                    },
                    &mut sinks,
                );
                let failed = res.is_err();
                if tx.send(res.map(|(p, st)| (r, p, st))).is_err() || failed {
                    break;
                }
            }
            t.elapsed().as_secs_f64()
        })?;
        // the slices' peaks, and their states converted (`--save-states`) while the device runs
        // the next slice
        for msg in rx {
            let (r, slice_peaks, slice_states) = msg?;
            peaks[r.start * 4..r.end * 4].copy_from_slice(&slice_peaks);
            if let (Some(all), Some(st)) = (states.as_mut(), saved_states(plan, slice_states.as_deref())) {
                all[r.start * ns * 16..r.end * ns * 16].copy_from_slice(&st);
            }
        }
        Ok(producer.join().unwrap_or(0.0))
    })?;
    Ok((values, peaks, states, gpu_time))
}
