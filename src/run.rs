//! The run pipeline: Plan -> backend (f64 reference, CPU twin engine, or GPU) -> measures and
//! peaks per member -> `RunResult`. Output files are written by `output`.

use crate::config::Plan;
use crate::engine::reference_member;
use crate::error::{QbatError, Result};
use crate::job::Peak;
use crate::measures::Measure;
use crate::verify::{energy_floor, sample_weights, verify_indices, verify_report, VerifyReport, Worst};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::json;
use std::time::Instant;

pub use crate::engine::{Backend, Precision, RunOptions};

/// Wall time of each phase, in seconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Timings {
    pub setup: f64,
    pub ensemble: f64,
    pub integrate: f64,
    pub host_measures: f64,
    pub verify: f64,
    /// Streamed runs: health, statistics, block files after each block, and checkpoints.
    pub streaming: f64,
    pub output: f64,
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
    /// `save_states`: each member's saved state at each sample, as `EngineOutput::states`
    /// (d x d row-major, states[((member * n_samples + sample) * d + i) * d + j]); else None.
    pub states: Option<Vec<crate::linalg::C64>>,
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

/// Re-integrate `k` members chosen by the seed on the f64 reference and compare (the
/// result's measures, which may be fewer than the plan's). A run cancelled through `opts`'
/// control meanwhile stops before the next member's reference (a cavity member's takes
/// seconds) with `Err(Cancelled)`.
pub fn verify(plan: &Plan, result: &RunResult, k: usize, opts: &RunOptions) -> Result<VerifyReport> {
    let idx = verify_indices(plan.seed, plan.members.len(), k);
    let row = plan.schedule.times.len() * result.measures.len();
    let refs: Vec<Vec<f64>> = idx
        .par_iter()
        .map(|&i| {
            opts.check_cancelled()?;
            Ok(reference_member(plan, &plan.members[i], &result.measures).0)
        })
        .collect::<Result<_>>()?;
    let mut worst = Worst::new(result.measures.len());
    let weight = sample_weights(&result.measures, &plan.schedule.times);
    for (r, &i) in refs.iter().zip(&idx) {
        let m = &plan.members[i];
        worst.fold(m.id, &result.values[i * row..(i + 1) * row], r, &weight, &energy_floor(&plan.systems[m.point], &result.measures));
    }
    let mut report = verify_report(&result.measures, &worst, result.precision, idx.iter().map(|&i| plan.members[i].id).collect());
    report.concurrence = crate::verify::concurrence_route(&result.measures, plan.model, &result.backend, result.precision);
    report.dt_halved = crate::verify::dt_check::dt_check(plan, &idx);
    Ok(report)
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
    crate::faults::check_env()?;
    let mut notes = vec![];
    let backend = crate::engine::resolve_backend(opts, &mut notes)?;
    let setup = t0.elapsed().as_secs_f64();
    if let Some(c) = &opts.control {
        c.set_total(plan.members.len() as u64);
        c.set_done(0);
    }
    let t1 = Instant::now();
    let _release_read_back = crate::engine::ReleaseReadBack::of(std::slice::from_ref(&backend));
    let out = crate::engine::integrate(plan, opts, &backend)?;
    // Every member is done (also for the engines that do not count, as the steady solver).
    if let Some(c) = &opts.control {
        c.set_done(plan.members.len() as u64);
    }
    // (the ensemble, built inside the engine's call, is a phase of its own)
    let integrate = (t1.elapsed().as_secs_f64() - out.host_measures - out.ensemble).max(0.0);
    check_finite(plan, &out.measures, &out.values)?;
    // (the engine said its notes as they arose; a fallback is the driver's, said here)
    for note in &out.fallbacks {
        crate::engine::say(opts, note);
    }
    notes.extend(out.notes);
    notes.extend(out.fallbacks);
    let mut result = RunResult {
        info: RunInfo {
            measures: out.measures,
            times: plan.schedule.times.clone(),
            backend: out.ran_on.as_ref().map_or(backend.name(), |r| r.0).into(),
            device: out.ran_on.as_ref().map_or_else(|| backend.device_name(), |r| r.1.clone()),
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
        states: out.states,
    };
    if opts.verify > 0 && plan.steady {
        // No integration to re-run: the residual ||L rho||_F of each state is the check.
        result.notes.push("--verify skipped: steady states are solved for, not integrated; steady_residual = ||L rho||_F is their check".into());
    } else if opts.verify > 0 && !matches!(backend, crate::engine::Engine::Reference) {
        let tv = Instant::now();
        result.verify = Some(verify(plan, &result, opts.verify, opts)?);
        result.timings.verify = tv.elapsed().as_secs_f64();
        if let Some(note) = result.verify.as_ref().and_then(|v| v.dt_halved.as_ref()).and_then(|c| c.note()) {
            crate::engine::say(opts, &note);
            result.notes.push(note);
        }
    }
    Ok(result)
}

/// Resolved parameters of a point (defaults filled in) as JSON; matrices as [re, im] rows.
fn params_json(p: &crate::model::Params) -> serde_json::Value {
    use crate::model::ParamValue;
    let cx = |z: &crate::linalg::C64| json!([z.re, z.im]);
    let mat = |m: &crate::linalg::CMat| json!((0..m.nrows()).map(|i| (0..m.ncols()).map(|j| cx(&m[(i, j)])).collect::<Vec<_>>()).collect::<Vec<_>>());
    let mut out = serde_json::Map::new();
    for (k, v) in p {
        let val = match v {
            ParamValue::Real(x) => json!(x),
            ParamValue::Complex(z) => cx(z),
            ParamValue::Text(t) => json!(t),
            ParamValue::Matrix(m) => mat(m),
            ParamValue::Jumps(js) => json!(js.iter().map(|(op, r)| json!({"op": mat(op), "rate": r})).collect::<Vec<_>>()),
        };
        out.insert(k.clone(), val);
    }
    serde_json::Value::Object(out)
}

/// run.json: enough to reproduce and to trust the run.
pub fn run_json(plan: &Plan, r: &RunInfo, opts: &RunOptions) -> serde_json::Value {
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "model": plan.model.name(),
        "config": plan.config_json,
        "resolved": {
            "params": plan.points.first().map(params_json),
            "swept": plan.param_columns,
            "size": plan.ensemble_size,
            "seed": plan.seed,
            "t_first": r.times.first(),
            "t_last": r.times.last(),
            "fock_tail_threshold": plan.fock_tail_threshold,
            // `[protocol] switch_off` as run (null without one)
            "switch_off": plan.schedule.switch_off,
        },
        "seed": plan.seed,
        "n_fock": match plan.space { crate::model::Space::Cavity { n_fock } | crate::model::Space::Dicke { n_fock, .. } => Some(n_fock), _ => None },
        "members": plan.members.len(),
        "samples": r.times.len(),
        "dt": plan.schedule.dt,
        "steps_per_member": plan.schedule.total_steps(),
        "measures": r.measures.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "backend": r.backend,
        "requested_backend": opts.backend,
        "device": r.device,
        "precision": r.precision,
        "timings": r.timings,
        "member_steps": r.member_steps,
        "member_steps_per_second": r.member_steps_per_second(),
        "verify": r.verify,
        "engine_plan": r.engine_plan,
        "notes": r.notes,
    })
}
