//! `qbat-gpu bench`: the standard jobs (`config::jobs`, docs/interface.md), on each available backend in the same
//! invocation, after a warm-up, repeated; median and spread of the wall time, member-steps/s,
//! accuracy against the closed form (bloch jobs) or the f64 reference (cavity jobs), and the
//! GPU/CPU ratio measured in that same run.

use super::bench_json::check_json_path;
use plotters::prelude::*;
use qbat_gpu::config::jobs::job_config_with_members;
use qbat_gpu::config::{parse_plan, Overrides, Plan};
use qbat_gpu::engine::SaidNotes;
use qbat_gpu::error::{QbatError, Result};
use qbat_gpu::measures::Measure;
use qbat_gpu::output::manifest::Manifest;
use qbat_gpu::output::plots::{ensure_font, log_tick_text};
use qbat_gpu::output::OutputDir;
use qbat_gpu::run::{run_plan, verify, Backend, Precision, RunOptions, RunResult};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// Members per slice of a benchmark, as the study sizes its blocks by memory (results twice
/// over, the states the eigen-solve measures need), for a quarter of the available memory,
/// between 1 and 16 GiB; larger jobs run slice by slice. (A fixed 1 GiB cut bloch-1k's
/// 100,000 members into 26 slices of under 4,000, too few to fill a large GPU.)
fn members_per_slice(plan: &Plan) -> usize {
    use qbat_gpu::config::available_memory::available_memory;
    let avail = available_memory();
    // (under `ulimit -v` or `-d` the headroom is all there is: no 1 GiB floor)
    let floor = if avail.limit.ulimit().is_some() { 0.0 } else { 2f64.powi(30) };
    let bytes = (0.25 * avail.bytes).clamp(floor, 2f64.powi(34));
    qbat_gpu::study::block_members(plan, plan.members.len(), bytes, false)
}

/// Floor of the two-qubit kernel per member-step: flops of the compensated x += D x update
/// (16x16 matvec = 256 FMA = 512 flop, plus about 64 for the compensation) and the bytes it
/// must write per step (the sampled measures, amortised over the steps between samples).
#[derive(Clone, Debug, Serialize)]
pub struct Floor {
    pub flop_per_member_step: f64,
    pub bytes_per_member_step: f64,
    pub peak_flops: Option<f64>,
    pub peak_bytes_per_s: Option<f64>,
    /// Member-steps/s allowed by compute and by bandwidth at the device's peak.
    pub compute_bound: Option<f64>,
    pub bandwidth_bound: Option<f64>,
}

/// Known peaks (FP32 non-tensor FLOP/s, memory bandwidth B/s) by adapter name.
pub fn device_peak(name: &str) -> Option<(f64, f64)> {
    let n = name.to_lowercase();
    if n.contains("h200") {
        Some((67e12, 4.8e12))
    } else if n.contains("h100") {
        Some((67e12, 3.35e12))
    } else {
        None
    }
}

pub fn floor(plan: &Plan, device: &str, precision_bytes: f64) -> Floor {
    let steps = plan.schedule.total_steps().max(1) as f64;
    let samples = plan.schedule.times.len() as f64;
    let (flop, bytes) = if plan.is_dicke() {
        // rk4_dicke.wgsl: the element table (same-parity pairs for a parity-definite start);
        // about 70 flop per element per stage (10 gathers, 8 coupling products, the diagonal,
        // two jumps, the stage update), 4 stages; per element and stage about 10 reals moved
        // (the source read once, X, acc in and out, the stage output).
        let qbat_gpu::model::Space::Dicke { n_cells, n_fock } = plan.space else { unreachable!("a dicke plan") };
        let parity = plan.members.first().is_some_and(|m| qbat_gpu::job::dicke::parity_definite(&plan.initial_state(m), n_fock));
        let elems = qbat_gpu::job::dicke::element_table(n_cells, n_fock, parity).len() as f64;
        (4.0 * 70.0 * elems, 4.0 * 10.0 * precision_bytes * elems)
    } else if plan.is_cavity() {
        // rk4_cavity.wgsl: packed upper triangle, dim (dim + 1)/2 elements; about 40 flop per
        // element per stage (gather, jumps and the folded stage update), 4 stages; each matrix
        // read once per stage, about 34 reals moved per element per step.
        let dim = plan.dim() as f64;
        let elems = dim * (dim + 1.0) / 2.0;
        (4.0 * 40.0 * elems, 34.0 * precision_bytes * elems)
    } else {
        let out = plan.measures.len() as f64 + if plan.measures.iter().any(|m| m.needs_eigensolve()) { 16.0 } else { 0.0 };
        (576.0, out * precision_bytes * samples / steps)
    };
    let peak = device_peak(device);
    Floor {
        flop_per_member_step: flop,
        bytes_per_member_step: bytes,
        peak_flops: peak.map(|p| p.0),
        peak_bytes_per_s: peak.map(|p| p.1),
        compute_bound: peak.map(|p| p.0 / flop),
        bandwidth_bound: peak.map(|p| p.1 / bytes),
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct BackendFigures {
    pub backend: String,
    pub device: String,
    pub precision: String,
    pub repeats: usize,
    pub wall_median_s: f64,
    pub wall_min_s: f64,
    pub wall_max_s: f64,
    pub integrate_median_s: f64,
    pub member_steps: f64,
    pub member_steps_per_s: f64,
    pub setup_s: f64,
    pub ensemble_s: f64,
    pub host_measures_s: f64,
    /// Max abs error against the closed form (bloch) or the f64 reference on sampled members (cavity).
    pub max_abs_error: f64,
    pub error_reference: String,
    pub slices: usize,
    pub floor: Floor,
    /// Achieved member-steps/s over the lower of the compute and bandwidth bounds.
    pub achieved_over_bound: Option<f64>,
    /// Wall time over integration time (integrate+host less the host measures): what the run
    /// around the integrator costs.
    pub wall_over_integration: f64,
    /// GPU only: the device's time in the kernels (`gpu::kernel_clock`: from the submit to
    /// the completion of each batch of dispatches, no read-back), median over the repeats.
    pub kernel_median_s: Option<f64>,
    /// Member-steps over `kernel_median_s`.
    pub kernel_member_steps_per_s: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct JobFigures {
    pub job: String,
    pub members: usize,
    pub steps_per_member: u64,
    pub backends: Vec<BackendFigures>,
    pub gpu_over_cpu: Option<f64>,
    /// The GPU's kernel-only rate over the CPU engine's integration rate, in the same run.
    pub gpu_kernel_over_cpu: Option<f64>,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Max |energy_b - closed form| of paper 004 with decay, over every member and sample.
pub fn bloch_closed_form_error(plan: &Plan, r: &RunResult) -> f64 {
    let k = r.measures.iter().position(|m| *m == Measure::EnergyB).expect("energy_b in bloch jobs");
    let (wb, j, gamma) = (1.0f64, 1.0f64, 0.05f64);
    let g = (j * j - gamma * gamma / 16.0).sqrt();
    let mut worst = 0.0f64;
    for (i, m) in plan.members.iter().enumerate() {
        let (theta, _) = m.theta_phi.expect("bloch members carry angles");
        let s2 = (theta / 2.0).sin().powi(2);
        for (s, &t) in r.times.iter().enumerate() {
            let e = wb * s2 * (j / g).powi(2) * (g * t).sin().powi(2) * (-gamma * t / 2.0).exp();
            worst = worst.max((r.value(i, s, k) - e).abs());
        }
    }
    worst
}

/// Run the plan in member slices of `slice`; timings add up, results are dropped
/// after the accuracy check of each slice.
struct Pass {
    wall: f64,
    integrate: f64,
    /// The kernels' device time (GPU; zero on the CPU engine).
    kernel: f64,
    setup: f64,
    ensemble: f64,
    host: f64,
    member_steps: f64,
    max_abs_error: f64,
    backend: String,
    device: String,
    precision: Precision,
}

fn run_pass(plan: &Plan, job: &str, opts: &RunOptions, check: bool, slice: usize) -> Result<(Pass, usize)> {
    let t = Instant::now();
    let mut p = Pass {
        wall: 0.0,
        integrate: 0.0,
        kernel: 0.0,
        setup: 0.0,
        ensemble: 0.0,
        host: 0.0,
        member_steps: 0.0,
        max_abs_error: 0.0,
        backend: String::new(),
        device: String::new(),
        precision: opts.precision,
    };
    let mut n_slices = 0;
    // the engine's notes once, not once a slice and a repetition
    let opts = RunOptions { said: Some(opts.said.clone().unwrap_or_default()), ..opts.clone() };
    for start in (0..plan.members.len()).step_by(slice) {
        let sub = plan.slice(start..(start + slice).min(plan.members.len()));
        qbat_gpu::gpu::kernel_clock::take_seconds();
        let r = run_plan(&sub, &opts);
        p.kernel += qbat_gpu::gpu::kernel_clock::take_seconds();
        let r = r?;
        p.integrate += r.timings.integrate;
        p.setup += r.timings.setup;
        p.ensemble += r.timings.ensemble;
        p.host += r.timings.host_measures;
        p.member_steps += r.member_steps;
        if check {
            // A driven bloch job has no closed form: the f64 reference checks it.
            let e = if job.starts_with("bloch") && !sub.is_driven() {
                bloch_closed_form_error(&sub, &r)
            } else {
                verify(&sub, &r, 2, &RunOptions::default())?.deviations.iter().map(|d| d.largest_abs).fold(0.0, f64::max)
            };
            p.max_abs_error = p.max_abs_error.max(e);
        }
        p.backend = r.backend.clone();
        p.device = r.device.clone();
        p.precision = r.precision;
        n_slices += 1;
    }
    p.wall = t.elapsed().as_secs_f64();
    Ok((p, n_slices))
}

fn one_backend(plan: &Plan, job: &str, backend: Backend, adapter: Option<String>, said: &SaidNotes, repeat: usize) -> Result<BackendFigures> {
    let opts = RunOptions { backend, precision: Precision::F32, verify: 0, adapter, said: Some(said.clone()), ..Default::default() };
    // one slicing for the warm-up and the repeats
    let slice = members_per_slice(plan);
    // the kernels timed apart on the GPU (one more wait per batch of dispatches)
    struct ClockOff;
    impl Drop for ClockOff {
        fn drop(&mut self) {
            qbat_gpu::gpu::kernel_clock::set_on(false);
        }
    }
    qbat_gpu::gpu::kernel_clock::set_on(backend == Backend::Gpu);
    let _off = ClockOff;
    // warm-up (pipelines, caches, thread pool) and the accuracy check
    let (first, slices) = run_pass(plan, job, &opts, true, slice)?;
    let mut walls = vec![];
    let mut integ = vec![];
    let mut pure = vec![];
    let mut kernel = vec![];
    let mut last = first;
    let max_abs_error = last.max_abs_error;
    for _ in 0..repeat.max(1) {
        let (p, _) = run_pass(plan, job, &opts, false, slice)?;
        walls.push(p.wall);
        integ.push(p.integrate + p.host);
        pure.push(p.integrate);
        kernel.push(p.kernel);
        last = p;
    }
    let error_reference = if job.starts_with("bloch") && !plan.is_driven() {
        "closed form (paper 004, with decay), all members".to_string()
    } else {
        "f64 reference, 2 members per slice".to_string()
    };
    let im = median(&mut integ.clone());
    // (none where no dispatch was timed: a steady plan is solved on the CPU)
    let kernel_s = Some(median(&mut kernel)).filter(|k| last.backend == "gpu" && *k > 0.0);
    let rate = last.member_steps / im.max(1e-12);
    let fl = floor(plan, &last.device, last.precision.bytes() as f64);
    let achieved_over_bound = match (fl.compute_bound, fl.bandwidth_bound) {
        (Some(c), Some(b)) => Some(rate / c.min(b)),
        _ => None,
    };
    Ok(BackendFigures {
        backend: last.backend.clone(),
        device: last.device.clone(),
        precision: last.precision.name().to_string(),
        repeats: walls.len(),
        wall_median_s: median(&mut walls.clone()),
        wall_min_s: walls.iter().cloned().fold(f64::INFINITY, f64::min),
        wall_max_s: walls.iter().cloned().fold(0.0, f64::max),
        integrate_median_s: im,
        member_steps: last.member_steps,
        member_steps_per_s: rate,
        setup_s: last.setup,
        ensemble_s: last.ensemble,
        host_measures_s: last.host,
        max_abs_error,
        error_reference,
        slices,
        floor: fl,
        achieved_over_bound,
        wall_over_integration: median(&mut walls.clone()) / median(&mut pure).max(1e-12),
        kernel_median_s: kernel_s,
        kernel_member_steps_per_s: kernel_s.map(|k| last.member_steps / k.max(1e-12)),
    })
}

/// The jobs asked for (bloch-1k and cavity-100 when none), their names checked.
fn job_list(jobs: &[String]) -> Vec<String> {
    if jobs.is_empty() {
        vec!["bloch-1k".into(), "cavity-100".into()]
    } else {
        jobs.to_vec()
    }
}

/// Each job's config text, with `members` applied; every name is checked first. A count no
/// config can hold (TOML integers end at i64::MAX) is refused here, naming `--members`, so
/// that `--print-config` never prints a config that `run` refuses to read.
pub fn job_configs(jobs: &[String], members: Option<u64>) -> Result<Vec<String>> {
    match members {
        Some(0) => return Err(QbatError::invalid("--members", "must be at least 1")),
        Some(n) if n > i64::MAX as u64 => {
            return Err(QbatError::invalid("--members", format!("{n} is more than {}, the largest integer a config can hold", i64::MAX)))
        }
        _ => {}
    }
    job_list(jobs).iter().map(|job| job_config_with_members(job, members)).collect()
}

/// A job's plan; with `--members`, a refusal of the config (a count beyond the ensemble's or
/// the sweep's limit, or one that does not fit in memory) names `--members`, the option the
/// user gave, rather than a line of the generated config.
fn job_plan(config: &str, members: Option<u64>) -> Result<Plan> {
    parse_plan(config, &Overrides::default()).map_err(|e| match members {
        Some(n) if matches!(e, QbatError::Invalid { .. } | QbatError::Parse { .. } | QbatError::TooLarge { .. }) => {
            QbatError::invalid("--members", format!("the job's config refuses {n} members: {e}"))
        }
        _ => e,
    })
}

/// The backends `bench` times for `--backend` and `--adapter`: under auto the GPU (a hardware
/// one, or the one `--adapter` names, software or not) where one opens, then the CPU engine,
/// saying why where no GPU is timed.
fn backends_timed(backend: Backend, adapter: Option<&str>, said: &SaidNotes) -> Result<Vec<Backend>> {
    if backend != Backend::Auto {
        return Ok(vec![backend]);
    }
    let mut b = vec![];
    if adapter.is_some() {
        // as `run --backend auto --adapter` chooses (its note says why it falls back)
        let opts = RunOptions { backend, adapter: adapter.map(String::from), said: Some(said.clone()), ..Default::default() };
        if matches!(qbat_gpu::engine::resolve_backend(&opts, &mut vec![])?, qbat_gpu::engine::Engine::Gpu(_)) {
            b.push(Backend::Gpu);
        }
    } else if qbat_gpu::engine::hardware_gpu_available() {
        b.push(Backend::Gpu);
    } else if qbat_gpu::engine::gpu_available() {
        println!("note: the only GPU adapter is software; benchmarking the CPU engine only (--backend gpu times it)");
    } else {
        let why = qbat_gpu::engine::driver_gate_reason().map_or("no GPU adapter found".to_string(), |why| format!("no GPU opened: {why}"));
        println!("note: {why}; benchmarking the CPU engine only");
    }
    b.push(Backend::Cpu);
    Ok(b)
}

/// `--adapter` for the runs on `timed`, one of `backends_timed(asked, ..)`: auto's CPU engine,
/// timed beside the GPU, runs without it (it would say it ignores it); `--backend cpu
/// --adapter` says so, as `run` does.
fn adapter_for(asked: Backend, timed: Backend, adapter: Option<&str>) -> Option<String> {
    adapter.filter(|_| !(asked == Backend::Auto && timed == Backend::Cpu)).map(String::from)
}

pub fn run_bench(
    jobs: &[String],
    backend: Backend,
    adapter: Option<&str>,
    json: Option<&std::path::Path>,
    repeat: usize,
    members: Option<u64>,
) -> Result<Vec<JobFigures>> {
    if let Some(path) = json {
        check_json_path(path)?;
    }
    let configs = job_configs(jobs, members)?;
    let jobs = job_list(jobs);
    // each note once for all the jobs and backends
    let said = SaidNotes::default();
    let backends = backends_timed(backend, adapter, &said)?;
    // every job's plan before any job runs: a refused --members is said before the work
    let plans = configs.iter().map(|c| job_plan(c, members)).collect::<Result<Vec<Plan>>>()?;
    let mut all = vec![];
    for (job, plan) in jobs.iter().zip(plans) {
        println!("job {job}: {} members x {} RK4 steps", plan.members.len(), plan.schedule.total_steps());
        let mut figs = vec![];
        for &b in &backends {
            let f = match one_backend(&plan, job, b, adapter_for(backend, b, adapter), &said, repeat) {
                Ok(f) => f,
                Err(QbatError::Device(why)) => {
                    println!("  {:<9} skipped: {why}", b.name());
                    continue;
                }
                Err(e) => return Err(e),
            };
            println!(
                "  {:<9} {:<40} wall median {:>8.3} s (min {:.3}, max {:.3}, n={})  integrate {:>8.3} s  {:>10.3e} member-steps/s  max|err| {:.2e}",
                f.backend, f.device, f.wall_median_s, f.wall_min_s, f.wall_max_s, f.repeats, f.integrate_median_s, f.member_steps_per_s, f.max_abs_error
            );
            println!(
                "            phases: setup {:.3} s, ensemble {:.3} s, integrate+host {:.3} s (host measures {:.3} s), wall/integration {:.2}x, {} slice(s); floor {:.0} flop and {:.1} B per member-step{}",
                f.setup_s,
                f.ensemble_s,
                f.integrate_median_s,
                f.host_measures_s,
                f.wall_over_integration,
                f.slices,
                f.floor.flop_per_member_step,
                f.floor.bytes_per_member_step,
                match f.achieved_over_bound {
                    Some(a) => format!(", achieved {:.1}% of the device bound", 100.0 * a),
                    None => ", device peak unknown".to_string(),
                }
            );
            if let (Some(k), Some(rate)) = (f.kernel_median_s, f.kernel_member_steps_per_s) {
                println!("            kernels alone: {k:.4} s on the device (submit to completion, no read-back), {rate:.3e} member-steps/s");
            }
            figs.push(f);
        }
        let gpu = figs.iter().find(|f| f.backend == "gpu").map(|f| f.member_steps_per_s);
        let cpu = figs.iter().find(|f| f.backend != "gpu").map(|f| f.member_steps_per_s);
        let ratio = match (gpu, cpu) {
            (Some(g), Some(c)) => Some(g / c),
            _ => None,
        };
        if let Some(r) = ratio {
            println!("  GPU/CPU throughput ratio (this run): {r:.2}x");
        }
        let kernel_ratio = match (figs.iter().find_map(|f| f.kernel_member_steps_per_s), cpu) {
            (Some(g), Some(c)) => Some(g / c),
            _ => None,
        };
        if let Some(r) = kernel_ratio {
            println!("  GPU kernels alone / CPU integration (this run): {r:.2}x");
        }
        all.push(JobFigures {
            job: job.clone(),
            members: plan.members.len(),
            steps_per_member: plan.schedule.total_steps(),
            backends: figs,
            gpu_over_cpu: ratio,
            gpu_kernel_over_cpu: kernel_ratio,
        });
    }
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&all).map_err(|e| QbatError::Numerics(e.to_string()))?;
        // checked again: what was put at the name while the jobs ran (a user's file, a FIFO)
        // is refused and kept, not replaced
        check_json_path(path)?;
        // atomically; a link the user named is followed to its file
        let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        qbat_gpu::output::write_atomic(&target, |w| w.write_all(text.as_bytes()))?;
    }
    Ok(all)
}

/// `--scaling-max-members` where it is not given.
pub const SCALING_MAX_MEMBERS: u64 = 100_000;

/// One point of a scaling curve.
#[derive(Clone, Debug, Serialize)]
pub struct ScalingPoint {
    pub curve: String,
    pub backend: String,
    pub x: f64,
    pub member_steps_per_s: f64,
    pub wall_s: f64,
}

fn scaling_config(curve: &str, x: u64) -> String {
    match curve {
        // bloch-charger, 201 samples over [0, 2] (200 steps), energy_b: throughput vs members
        "members" => format!("model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = 1.0\ngamma = 0.05\n[initial]\nrandom = \"bloch\"\n[time]\ndt = 0.01\nt_end = 2.0\nsamples = 201\n[ensemble]\nsize = {x}\nseed = 1\n[output]\nmeasures = [\"energy_b\"]\n"),
        // cavity-100's parameters, 8 members, 50 steps: throughput vs n_fock
        _ => format!("model = \"cavity-cells\"\n[params]\nwc = 1.0\nwq = 1.0\ng = 0.2\nzeta = 0.5\nalpha = 2.0\nkappa = 0.1\ngamma = 0.05\nn_fock = {x}\nlambda = {{ linspace = [0.5, 1.5, 8] }}\n[time]\ndt = 0.01\nt_end = 0.5\nsamples = 51\n[output]\nmeasures = [\"stored_energy_b\"]\n"),
    }
}

/// Throughput against ensemble size (4x4) and against n_fock (cavity), on every backend;
/// written as scaling.csv and drawn as scaling_members.svg and scaling_n_fock.svg in `out`.
pub fn run_scaling(backend: Backend, adapter: Option<&str>, out: &Path, max_members: u64) -> Result<Vec<ScalingPoint>> {
    let field = "--scaling-max-members";
    if max_members < 100 {
        return Err(QbatError::invalid(field, format!("the curve starts at 100 members, got {max_members}")));
    }
    check_scaling_out(out)?;
    // each note once for the whole curve
    let said = SaidNotes::default();
    let backends = backends_timed(backend, adapter, &said)?;
    let mut members = vec![];
    let mut m = 100u64;
    while m <= max_members {
        members.push(m);
        let Some(next) = m.checked_mul(10) else { break };
        m = next;
    }
    // The largest point must be a valid plan (size and memory limits) before any point runs.
    let largest = *members.last().expect("max_members >= 100");
    parse_plan(&scaling_config("members", largest), &Overrides::default()).map_err(|e| QbatError::invalid(field, format!("{largest} members: {e}")))?;
    let curves: Vec<(&str, Vec<u64>)> = vec![("members", members), ("n_fock", vec![4, 8, 12, 16, 20, 28, 40])];
    let mut points = vec![];
    for (curve, xs) in &curves {
        for &b in &backends {
            for &x in xs {
                let plan = parse_plan(&scaling_config(curve, x), &Overrides::default())?;
                let opts = RunOptions { backend: b, verify: 0, adapter: adapter_for(backend, b, adapter), said: Some(said.clone()), ..Default::default() };
                let slice = members_per_slice(&plan);
                let (_, _) = match run_pass(&plan, "scaling", &opts, false, slice) {
                    Ok(p) => p,
                    Err(QbatError::Device(why)) => {
                        println!("scaling {curve}: {} skipped: {why}", b.name());
                        break;
                    }
                    Err(e) => return Err(e),
                };
                let (p, _) = run_pass(&plan, "scaling", &opts, false, slice)?;
                let rate = p.member_steps / (p.integrate + p.host).max(1e-12);
                println!("scaling {curve:<8} {:<4} x = {x:>8}  {rate:>10.3e} member-steps/s  ({:.3} s)", p.backend, p.wall);
                points.push(ScalingPoint { curve: curve.to_string(), backend: p.backend, x: x as f64, member_steps_per_s: rate, wall_s: p.wall });
            }
        }
    }
    write_scaling(out, &points)?;
    Ok(points)
}

/// The files `bench --scaling` writes into `--out`.
const SCALING_FILES: [&str; 3] = ["scaling.csv", "scaling_members.svg", "scaling_n_fock.svg"];

/// `--out` of `bench --scaling`, checked before any curve runs: a new or empty directory, or
/// the output of an earlier `bench --scaling` (its manifest lists only the files above), whose
/// files a re-run replaces. A file, a directory holding files qbat-gpu did not write, and the
/// output of another command are refused, naming `--out`.
fn check_scaling_out(out: &Path) -> Result<()> {
    qbat_gpu::gpu::check_cache_outside(out, None, "--out")?;
    OutputDir::check_replacing_own(out)?;
    check_scaling_manifest(out)
}

/// `out`'s manifest, where it has one, lists only `bench --scaling`'s files: checked before the
/// curves, and again at the commit (a run committed there meanwhile is not replaced).
fn check_scaling_manifest(out: &Path) -> Result<()> {
    if out.is_dir() {
        if let Some(m) = Manifest::read(out)? {
            if let Some(f) = m.files.iter().find(|f| !SCALING_FILES.contains(&f.name.as_str())) {
                return Err(QbatError::invalid(
                    "--out",
                    format!(
                        "{} holds the output of another qbat-gpu command (it lists {}): bench --scaling replaces only its own files; choose another directory",
                        out.display(),
                        f.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// scaling.csv and the SVGs, assembled beside `out` and moved into place with a manifest (the
/// files of an earlier `bench --scaling` there replaced, no other file touched).
fn write_scaling(out: &Path, points: &[ScalingPoint]) -> Result<()> {
    let mut svgs = vec![];
    for (curve, label) in [("members", "ensemble size (members)"), ("n_fock", "n_fock (cavity cutoff N)")] {
        if points.iter().any(|p| p.curve == curve) {
            svgs.push((format!("scaling_{curve}.svg"), scaling_svg(points, curve, label).map_err(QbatError::Numerics)?));
        }
    }
    let dir = OutputDir::begin(out, true)?;
    let written = (|| -> Result<()> {
        dir.write("scaling.csv", |w| {
            writeln!(w, "curve,backend,x,member_steps_per_s,wall_s")?;
            for p in points {
                writeln!(w, "{},{},{},{:?},{:?}", p.curve, p.backend, p.x, p.member_steps_per_s, p.wall_s)?;
            }
            Ok(())
        })?;
        for (name, svg) in &svgs {
            dir.write(name, |w| w.write_all(svg.as_bytes()))?;
        }
        Ok(())
    })();
    match written.and_then(|()| check_scaling_manifest(out)) {
        Ok(()) => {
            let d = dir.commit()?;
            let _ = Manifest::record_identities(&d);
            Ok(())
        }
        Err(e) => {
            dir.abort();
            Err(e)
        }
    }
}

/// Log-log throughput curve per backend (bench --scaling).
pub fn scaling_svg(points: &[ScalingPoint], curve: &str, x_label: &str) -> std::result::Result<String, String> {
    ensure_font();
    let pts: Vec<_> = points.iter().filter(|p| p.curve == curve && p.member_steps_per_s > 0.0).collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        if pts.is_empty() {
            return Err(format!("no points for the {curve} curve"));
        }
        let (x0, x1) = pts.iter().fold((f64::INFINITY, 0.0f64), |(a, b), p| (a.min(p.x), b.max(p.x)));
        let (y0, y1) = pts.iter().fold((f64::INFINITY, 0.0f64), |(a, b), p| (a.min(p.member_steps_per_s), b.max(p.member_steps_per_s)));
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("throughput against {x_label}"), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d((x0 * 0.8..x1 * 1.25).log_scale(), (y0 * 0.5..y1 * 2.0).log_scale())
            .map_err(|e| e.to_string())?;
        // (plotters' default text put "10000000.0" on the rate axis)
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc("RK4 member-steps per second")
            .x_label_formatter(&|v| log_tick_text(*v))
            .y_label_formatter(&|v| log_tick_text(*v))
            .draw()
            .map_err(|e| e.to_string())?;
        let mut backends: Vec<&str> = pts.iter().map(|p| p.backend.as_str()).collect();
        backends.sort();
        backends.dedup();
        for (i, b) in backends.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let series: Vec<(f64, f64)> = pts.iter().filter(|p| p.backend == *b).map(|p| (p.x, p.member_steps_per_s)).collect();
            chart
                .draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(b.to_string())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
            chart.draw_series(series.iter().map(|&(x, y)| Circle::new((x, y), 3, color.filled()))).map_err(|e| e.to_string())?;
        }
        chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw().map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}
