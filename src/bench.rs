//! `qbat-gpu bench`: the standard jobs of INTERFACE.md, on each available backend in the same
//! invocation, after a warm-up, repeated; median and spread of the wall time, member-steps/s,
//! accuracy against the closed form (bloch jobs) or the f64 reference (cavity jobs), and the
//! GPU/CPU ratio measured in that same run.

use crate::config::{parse_plan, Overrides, Plan};
use crate::error::{QbatError, Result};
use crate::measures::Measure;
use crate::run::{run_plan, verify, Backend, Precision, RunOptions, RunResult};
use serde::Serialize;
use std::time::Instant;

pub const JOBS: [&str; 4] = ["bloch-1k", "bloch-100k", "cavity-100", "cavity-10k"];

/// The config of a standard job.
pub fn job_config(name: &str) -> Result<String> {
    job_config_with_members(name, None)
}

/// The config of a standard job, optionally with another member count (for scaling curves
/// and short CI runs): bloch jobs draw that many charger states, cavity jobs that many lambdas.
pub fn job_config_with_members(name: &str, members: Option<u64>) -> Result<String> {
    let bloch = |n: u64, measures: &str| {
        format!("model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = 1.0\ngamma = 0.05\n[initial]\nrandom = \"bloch\"\n[time]\ndt = 0.01\nt_end = 20.0\nsamples = 2001\n[ensemble]\nsize = {n}\nseed = 1\n{measures}")
    };
    let cavity = |n: u64| {
        format!("model = \"cavity-cells\"\n[params]\nwc = 1.0\nwq = 1.0\ng = 0.2\nzeta = 0.5\nalpha = 2.0\nkappa = 0.1\ngamma = 0.05\nn_fock = 20\nlambda = {{ linspace = [0.5, 1.5, {n}] }}\n[time]\ndt = 0.01\nt_end = 10.0\nsamples = 1001\n[output]\nmeasures = [\"stored_energy_b\"]\n")
    };
    Ok(match name {
        "bloch-1k" => bloch(members.unwrap_or(1_000), "[output]\nmeasures = [\"energy_b\"]\n"),
        "bloch-100k" => bloch(members.unwrap_or(100_000), ""),
        "cavity-100" => cavity(members.unwrap_or(100)),
        "cavity-10k" => cavity(members.unwrap_or(10_000)),
        other => return Err(QbatError::invalid("JOB", format!("unknown job '{other}'; jobs: {}", JOBS.join(", ")))),
    })
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
}

#[derive(Clone, Debug, Serialize)]
pub struct JobFigures {
    pub job: String,
    pub members: usize,
    pub steps_per_member: u64,
    pub backends: Vec<BackendFigures>,
    pub gpu_over_cpu: Option<f64>,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
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

fn one_backend(plan: &Plan, job: &str, backend: Backend, repeat: usize) -> Result<BackendFigures> {
    let opts = RunOptions { backend, precision: Precision::F32, verify: 0, ..Default::default() };
    // warm-up (pipelines, caches, thread pool)
    let mut last = run_plan(plan, &opts)?;
    let mut walls = vec![];
    let mut integ = vec![];
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        last = run_plan(plan, &opts)?;
        walls.push(t.elapsed().as_secs_f64());
        integ.push(last.timings.integrate + last.timings.host_measures);
    }
    let (max_abs_error, error_reference) = if job.starts_with("bloch") {
        (bloch_closed_form_error(plan, &last), "closed form (paper 004, with decay), all members".to_string())
    } else {
        let v = verify(plan, &last, 4);
        (v.deviations.iter().map(|d| d.max_abs).fold(0.0, f64::max), format!("f64 reference, members {:?}", v.members))
    };
    let im = median(&mut integ.clone());
    Ok(BackendFigures {
        backend: last.backend.clone(),
        device: last.device.clone(),
        precision: format!("{:?}", last.precision).to_lowercase(),
        repeats: walls.len(),
        wall_median_s: median(&mut walls.clone()),
        wall_min_s: walls.iter().cloned().fold(f64::INFINITY, f64::min),
        wall_max_s: walls.iter().cloned().fold(0.0, f64::max),
        integrate_median_s: im,
        member_steps: last.member_steps,
        member_steps_per_s: last.member_steps / im.max(1e-12),
        setup_s: last.timings.setup,
        ensemble_s: last.timings.ensemble,
        host_measures_s: last.timings.host_measures,
        max_abs_error,
        error_reference,
    })
}

pub fn run_bench(jobs: &[String], backend: Backend, json: Option<&std::path::Path>, repeat: usize) -> Result<Vec<JobFigures>> {
    let jobs: Vec<String> = if jobs.is_empty() { vec!["bloch-1k".into(), "cavity-100".into()] } else { jobs.to_vec() };
    let backends: Vec<Backend> = match backend {
        Backend::Auto => {
            let mut b = vec![];
            if crate::engine::gpu_available() {
                b.push(Backend::Gpu);
            } else {
                println!("note: no GPU adapter found; benchmarking the CPU engine only");
            }
            b.push(Backend::Cpu);
            b
        }
        other => vec![other],
    };
    let mut all = vec![];
    for job in &jobs {
        let plan = parse_plan(&job_config(job)?, &Overrides::default())?;
        println!("job {job}: {} members x {} RK4 steps", plan.members.len(), plan.schedule.total_steps());
        let mut figs = vec![];
        for &b in &backends {
            let f = one_backend(&plan, job, b, repeat)?;
            println!(
                "  {:<9} {:<40} wall median {:>8.3} s (min {:.3}, max {:.3}, n={})  integrate {:>8.3} s  {:>10.3e} member-steps/s  max|err| {:.2e}",
                f.backend, f.device, f.wall_median_s, f.wall_min_s, f.wall_max_s, f.repeats, f.integrate_median_s, f.member_steps_per_s, f.max_abs_error
            );
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
        all.push(JobFigures { job: job.clone(), members: plan.members.len(), steps_per_member: plan.schedule.total_steps(), backends: figs, gpu_over_cpu: ratio });
    }
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&all).map_err(|e| QbatError::Numerics(e.to_string()))?;
        std::fs::write(path, text).map_err(|e| QbatError::io(path.display().to_string(), e))?;
    }
    Ok(all)
}
