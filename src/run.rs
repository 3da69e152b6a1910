//! The run pipeline: Plan -> backend (f64 reference, CPU twin engine, or GPU) -> measures and
//! peaks per member -> `RunResult`. Output files are written by `output`.

use crate::config::{Member, Plan};
use crate::error::{QbatError, Result};
use crate::job::{Peak, PEAK_MEASURES};
use crate::linalg::CMat;
use crate::measures::{evaluate, Measure, MeasureContext, Sample};
use crate::reference::{rk4::integrate_switched_with, LindbladRhs};
use rand::seq::index::sample as sample_indices;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::Serialize;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// A GPU adapter when there is one, else the CPU engine (with a one-line note).
    Auto,
    Gpu,
    Cpu,
    /// The f64 matrix-form oracle itself (slow; for cross-checks).
    Reference,
}

pub use crate::gpu::Precision;

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub backend: Backend,
    pub precision: Precision,
    pub verify: usize,
    pub adapter: Option<String>,
    pub progress: bool,
    /// Largest members per GPU chunk (None: as large as the limits allow).
    pub max_chunk: Option<usize>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { backend: Backend::Auto, precision: Precision::F32, verify: 8, adapter: None, progress: false, max_chunk: None }
    }
}

/// Wall time of each phase, in seconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Timings {
    pub setup: f64,
    pub ensemble: f64,
    pub integrate: f64,
    pub host_measures: f64,
    pub verify: f64,
    /// Streamed runs: health, statistics, block files and checkpoints after each block.
    pub streaming: f64,
    pub output: f64,
}

/// Largest deviation of one measure between the run and the f64 reference.
#[derive(Clone, Debug, Serialize)]
pub struct Deviation {
    pub measure: String,
    pub max_abs: f64,
    pub tolerance: f64,
    pub pass: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub members: Vec<u64>,
    pub deviations: Vec<Deviation>,
    pub pass: bool,
}

/// A run's description without its values: what the report and run.json need.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub measures: Vec<Measure>,
    pub times: Vec<f64>,
    pub backend: String,
    pub device: String,
    pub precision: Precision,
    pub timings: Timings,
    pub member_steps: f64,
    pub verify: Option<VerifyReport>,
    pub notes: Vec<String>,
    /// How the engine laid the job out on the device (the GPU cavity engine: bytes per
    /// member, chunks), for run.json; None for the other engines.
    pub engine_plan: Option<serde_json::Value>,
}

impl RunInfo {
    pub fn member_steps_per_second(&self) -> f64 {
        self.member_steps / self.timings.integrate.max(1e-12)
    }
}

/// An in-memory run: its description (`info`, also reached through Deref) and every value.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub info: RunInfo,
    pub member_ids: Vec<u64>,
    /// values[(member * n_samples + sample) * n_measures + k]
    pub values: Vec<f64>,
    /// peaks[member * 4 + k], k over PEAK_MEASURES
    pub peaks: Vec<Peak>,
}

impl std::ops::Deref for RunResult {
    type Target = RunInfo;
    fn deref(&self) -> &RunInfo {
        &self.info
    }
}

impl std::ops::DerefMut for RunResult {
    fn deref_mut(&mut self) -> &mut RunInfo {
        &mut self.info
    }
}

impl RunResult {
    pub fn value(&self, member: usize, sample: usize, k: usize) -> f64 {
        self.values[(member * self.times.len() + sample) * self.measures.len() + k]
    }
}

/// Fold a sample into the peaks: max and the first time it is reached.
pub fn update_peaks(peaks: &mut [Peak], sample: usize, t: f64, vals: &[f64]) {
    for (p, &v) in peaks.iter_mut().zip(vals) {
        if sample == 0 || v > p.max {
            *p = Peak { max: v, t_max: t };
        }
    }
}

/// Y(0) = H_B rho0 with H_B embedded in the full space (battery = right qubit / cell 2).
pub fn battery_times_state(plan: &Plan, sys: &crate::model::OpenSystem, rho0: &CMat) -> CMat {
    use crate::linalg::{identity, kron};
    let hb_full = match plan.space {
        crate::model::Space::TwoQubit => kron(&identity(2), &sys.h_battery),
        crate::model::Space::Cavity { n_fock } => kron(&kron(&identity(2), &sys.h_battery), &identity(n_fock + 1)),
    };
    hb_full * rho0
}

/// Integrate one member with the f64 reference; values [sample][measure] and its peaks.
pub fn reference_member(plan: &Plan, m: &Member, measures: &[Measure]) -> (Vec<f64>, [Peak; 4]) {
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
    integrate_switched_with(&rhs, rhs_off.as_ref().unwrap_or(&rhs), &rho0, y0.as_ref(), &plan.schedule, |s, t, rho, y| {
        let v = evaluate(&list, &ctx, &Sample { t, rho, y });
        values.extend_from_slice(&v[..nm]);
        update_peaks(&mut peaks, s, t, &v[nm..]);
    });
    (values, peaks)
}

pub(crate) fn progress_bar(enabled: bool, total: u64, what: &str) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} members (ETA {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb.set_message(what.to_string());
    pb
}

/// Run every member on the f64 reference, in parallel over members.
pub fn run_reference(plan: &Plan, progress: bool) -> (Vec<f64>, Vec<Peak>) {
    let pb = progress_bar(progress, plan.members.len() as u64, "reference f64");
    let per: Vec<(Vec<f64>, [Peak; 4])> = plan
        .members
        .par_iter()
        .map(|m| {
            let r = reference_member(plan, m, &plan.measures);
            pb.inc(1);
            r
        })
        .collect();
    pb.finish_and_clear();
    let mut values = Vec::with_capacity(per.len() * plan.schedule.times.len() * plan.measures.len());
    let mut peaks = Vec::with_capacity(per.len() * 4);
    for (v, p) in per {
        values.extend(v);
        peaks.extend(p);
    }
    (values, peaks)
}

/// Tolerance of the verify check for a measure at a precision.
pub fn verify_tolerance(m: Measure, precision: Precision) -> f64 {
    let base = match precision {
        Precision::F32 => 1e-4,
        Precision::F64 => 1e-9,
    };
    measure_tolerance(m, base)
}

/// Tolerance for comparing measure m between engines, given the base tolerance of the states.
/// Square-root-sensitive measures (`Measure::sqrt_sensitive`) get 10x the base, and never less
/// than sqrt(1e-14) = 1e-7, the square root of f64 rounding accumulated over a run.
pub fn measure_tolerance(m: Measure, base: f64) -> f64 {
    if m.sqrt_sensitive() { (10.0 * base).max(1e-7) } else { base }
}

/// Re-integrate `k` members chosen by the seed on the f64 reference and compare (the
/// result's measures, which may be fewer than the plan's).
pub fn verify(plan: &Plan, result: &RunResult, k: usize) -> VerifyReport {
    let idx = verify_indices(plan.seed, plan.members.len(), k);
    let row = plan.schedule.times.len() * result.measures.len();
    let refs: Vec<Vec<f64>> = idx.par_iter().map(|&i| reference_member(plan, &plan.members[i], &result.measures).0).collect();
    let mut max_abs = vec![0.0; result.measures.len()];
    for (r, &i) in refs.iter().zip(&idx) {
        fold_deviations(&mut max_abs, &result.values[i * row..(i + 1) * row], r);
    }
    verify_report(&result.measures, &max_abs, result.precision, idx.iter().map(|&i| plan.members[i].id).collect())
}

/// The members `--verify` re-runs: `k` of `n`, chosen by the seed, in index order.
pub fn verify_indices(seed: u64, n: usize, k: usize) -> Vec<usize> {
    let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(seed ^ 0x5eed_0f_7e51f1);
    let mut idx: Vec<usize> = sample_indices(&mut rng, n, k.min(n)).into_vec();
    idx.sort_unstable();
    idx
}

/// Fold one member's deviation from the reference into each measure's largest one; both are
/// [sample][measure] with `max_abs.len()` measures, and a NaN counts as an infinite deviation.
pub fn fold_deviations(max_abs: &mut [f64], got: &[f64], reference: &[f64]) {
    let nm = max_abs.len();
    for (c, (a, b)) in got.iter().zip(reference).enumerate() {
        let d = (a - b).abs();
        max_abs[c % nm] = max_abs[c % nm].max(if d.is_nan() { f64::INFINITY } else { d });
    }
}

/// The verify report from each measure's largest deviation.
pub fn verify_report(measures: &[Measure], max_abs: &[f64], precision: Precision, members: Vec<u64>) -> VerifyReport {
    let deviations: Vec<Deviation> = measures
        .iter()
        .zip(max_abs)
        .map(|(m, &max_abs)| {
            let tolerance = verify_tolerance(*m, precision);
            Deviation { measure: m.name().into(), max_abs, tolerance, pass: max_abs <= tolerance }
        })
        .collect();
    let pass = deviations.iter().all(|d| d.pass);
    VerifyReport { members, deviations, pass }
}

/// Check the results for NaN/Inf: never hand back silent NaN output.
fn check_finite(plan: &Plan, measures: &[Measure], values: &[f64]) -> Result<()> {
    let ns = plan.schedule.times.len();
    let nm = measures.len();
    if let Some(pos) = values.iter().position(|v| !v.is_finite()) {
        let member = pos / (ns * nm);
        let sample = (pos / nm) % ns;
        return Err(QbatError::Numerics(format!(
            "member {} produced a non-finite {} at t = {}; the step dt = {} may be too large for its parameters",
            plan.members[member].id,
            measures[pos % nm].name(),
            plan.schedule.times[sample],
            plan.schedule.dt
        )));
    }
    Ok(())
}

/// Run a plan on the chosen backend.
pub fn run_plan(plan: &Plan, opts: &RunOptions) -> Result<RunResult> {
    let t0 = Instant::now();
    let mut notes = vec![];
    let backend = crate::engine::resolve_backend(opts, &mut notes)?;
    let setup = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let out = crate::engine::integrate(plan, opts, &backend)?;
    let integrate = t1.elapsed().as_secs_f64() - out.host_measures;
    check_finite(plan, &out.measures, &out.values)?;
    notes.extend(out.notes);
    let mut result = RunResult {
        info: RunInfo {
            measures: out.measures,
            times: plan.schedule.times.clone(),
            backend: backend.name().into(),
            device: backend.device_name(),
            precision: out.precision,
            timings: Timings { setup, ensemble: out.ensemble, integrate, host_measures: out.host_measures, ..Default::default() },
            member_steps: plan.members.len() as f64 * plan.schedule.total_steps() as f64,
            verify: None,
            notes,
            engine_plan: out.engine_plan,
        },
        member_ids: plan.members.iter().map(|m| m.id).collect(),
        values: out.values,
        peaks: out.peaks,
    };
    if opts.verify > 0 && plan.steady {
        // No integration to re-run: the residual ||L rho||_F of each state is the check.
        result.notes.push("--verify skipped: steady states are solved for, not integrated; steady_residual = ||L rho||_F is their check".into());
    } else if opts.verify > 0 && !matches!(backend, crate::engine::Engine::Reference) {
        let tv = Instant::now();
        result.verify = Some(verify(plan, &result, opts.verify));
        result.timings.verify = tv.elapsed().as_secs_f64();
    }
    Ok(result)
}
