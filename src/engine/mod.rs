//! Backend selection and dispatch: which engine integrates which model.
//!
//! - `reference`: the f64 matrix-form oracle, every model.
//! - `cpu`: two-qubit models on the f64 CPU twin of the GPU kernel (Pauli basis, rayon);
//!   cavity-cells on the structured f64 engine (`twin::rk4_cavity`, rayon over members), its
//!   reduced states measured as the GPU host measures the kernel's (`cavity/reduced.rs`).
//! - `gpu`: two-qubit models on the WGSL kernels: the integrator, then the 4x4 eigen-solve
//!   measures of the states it leaves on the device (`measures_two_qubit`). cavity-cells on the
//!   rk4_cavity kernel, which returns the reduced (cell 1, cell 2) states (and Z's), the
//!   photon number and the Fock tail; the host measures the reduced states with the two-qubit
//!   kernels' CPU twins in f64 (`cavity/reduced.rs`). min_eigenvalue needs the full cavity
//!   state and is not available there.
//! - `[time] steady = true` (every backend): each member's steady state from the null space of
//!   its Liouvillian, on the CPU in f64 (`steady.rs`), with no integration.

pub mod cavity;
mod control;
pub mod dicke;
mod f32_range;
mod gpu_ahead;
pub mod reference;
pub mod steady;
pub mod two_qubit;
mod values_pool;

pub use crate::job::Precision;
pub use cavity::{cavity_coeffs, cavity_job, cavity_member, run_cavity_cpu};
pub(crate) use control::ChunkProgress;
pub use control::Control;
pub use gpu_ahead::GpuAhead;
pub use reference::{battery_times_state, reference_member, run_reference, update_peaks};
pub use two_qubit::two_qubit_job;
pub use values_pool::ValuesPool;

use crate::config::Plan;
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::job::Peak;
use crate::measures::Measure;
use serde::Serialize;
use std::sync::{Arc, Mutex};

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

impl Backend {
    /// As the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Gpu => "gpu",
            Backend::Cpu => "cpu",
            Backend::Reference => "reference",
        }
    }
}

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub backend: Backend,
    pub precision: Precision,
    pub verify: usize,
    pub adapter: Option<String>,
    pub progress: bool,
    /// Largest members per GPU chunk (None: as large as the limits allow).
    pub max_chunk: Option<usize>,
    /// Cancellation and members done, shared with the caller (None: not cancellable).
    pub control: Option<Arc<Control>>,
    /// Spent block buffers that an engine writes its values into (a streamed run's; None:
    /// fresh buffers).
    pub values_pool: Option<Arc<ValuesPool>>,
    /// The notes already said on stderr, shared by the engines of one run (a study's
    /// workers and blocks, a bench's slices and repetitions), so that each is said once;
    /// None: every note an engine gives is said.
    pub said: Option<SaidNotes>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            backend: Backend::Auto,
            precision: Precision::F32,
            verify: 8,
            adapter: None,
            progress: false,
            max_chunk: None,
            control: None,
            values_pool: None,
            said: None,
        }
    }
}

/// A progress bar of members (hidden when disabled or not a terminal).
pub fn progress_bar(enabled: bool, total: u64, what: &str) -> indicatif::ProgressBar {
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

/// Frees the read-back buffers that the GPU contexts of a run's engines keep from chunk to
/// chunk and block to block (`gpu::buffers::Staging`), when dropped: at the end of the run,
/// however it ends (an error, a cancel, a device lost and its blocks moved to the CPU).
pub struct ReleaseReadBack(Vec<Arc<GpuContext>>);

impl ReleaseReadBack {
    pub fn of(engines: &[Engine]) -> ReleaseReadBack {
        ReleaseReadBack(engines.iter().filter_map(|e| if let Engine::Gpu(ctx) = e { Some(ctx.clone()) } else { None }).collect())
    }
}

impl Drop for ReleaseReadBack {
    fn drop(&mut self) {
        for ctx in &self.0 {
            ctx.release_staging();
        }
    }
}

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
            Engine::Gpu(ctx) if !ctx.info.pci_bus_id.is_empty() => {
                format!("{} ({}, {}, PCI {})", ctx.info.name, ctx.info.backend, ctx.info.device_type, ctx.info.pci_bus_id)
            }
            Engine::Gpu(ctx) => format!("{} ({}, {})", ctx.info.name, ctx.info.backend, ctx.info.device_type),
            _ => format!("CPU ({} threads)", rayon::current_num_threads()),
        }
    }
}

/// The notes said on stderr so far by the engines of one run (see `RunOptions::said`); a
/// quiet one says none (a check's runs beside the run, whose notes the run said).
#[derive(Clone, Debug, Default)]
pub struct SaidNotes(Arc<std::sync::Mutex<std::collections::HashSet<String>>>, bool);

impl SaidNotes {
    /// Say `note` on stderr unless it was said already.
    pub fn say(&self, note: &str) {
        if self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(note.to_string()) && !self.1 {
            crate::console::note(note);
        }
    }

    /// Notes that are kept from stderr.
    pub fn quiet() -> SaidNotes {
        SaidNotes(Default::default(), true)
    }
}

/// Say a note on stderr as it arises, before the work it is about: once a run (`RunOptions::said`).
pub fn say(opts: &RunOptions, note: &str) {
    match &opts.said {
        Some(said) => said.say(note),
        None => crate::console::note(note),
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
    /// Notes for the run (run.json and the report), each said on stderr as it arises
    /// (`say`; a GPU's pinning note when its context opened); a study keeps each block's,
    /// once each.
    pub notes: Vec<String>,
    /// What this block changed from its plan, and why (a refused pipeline): any block may
    /// say it, and a study keeps each once.
    pub fallbacks: Vec<String>,
    /// How the engine laid the job out on the device (GPU cavity engine), for run.json.
    pub engine_plan: Option<serde_json::Value>,
    /// The engine that actually ran, where it is not the one chosen (a model without a GPU
    /// kernel runs on the CPU engine): its (backend, device) for run.json and the report.
    pub ran_on: Option<(&'static str, String)>,
    /// `--save-states`: each member's saved state at each sample (`measures::saved`), d x d
    /// row-major, states[((member * n_samples + sample) * d + i) * d + j].
    pub states: Option<Vec<crate::linalg::C64>>,
}

impl EngineOutput {
    pub(crate) fn new(plan: &Plan, values: Vec<f64>, peaks: Vec<Peak>, precision: Precision, ensemble: f64, host_measures: f64) -> Self {
        EngineOutput {
            measures: plan.measures.clone(),
            values,
            peaks,
            precision,
            ensemble,
            host_measures,
            notes: vec![],
            fallbacks: vec![],
            engine_plan: None,
            ran_on: None,
            states: None,
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
    driver_gate()?;
    let ctx = Arc::new(GpuContext::new(adapter, need_f64)?);
    *slot = Some((key, ctx.clone()));
    Ok(ctx)
}

/// Err where an address-space or data-size limit (`ulimit -v`, `ulimit -d`) leaves less than a
/// driver needs of it (`driver_fits`): a driver that meets the limit while it opens, or later
/// in its own threads, aborts or crashes the process, which no error can report. Checked before a driver is loaded, so that
/// `--backend auto` runs on the CPU engine and `--backend gpu` is refused (exit 2); once it
/// has let one open, it stays open (the CLI's open ahead and its backend then agree), while a
/// refusal is checked again at the next call (a Python session may have freed memory since).
pub fn driver_gate() -> Result<()> {
    match driver_fits("a GPU driver") {
        Ok(()) => Ok(()),
        Err(short) => Err(crate::error::QbatError::Device(format!("{}; {} or use --backend cpu", short.why, short.raise))),
    }
}

/// Why `driver_gate` opens no driver (None: it does).
pub fn driver_gate_reason() -> Option<String> {
    static PASSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if PASSED.load(std::sync::atomic::Ordering::SeqCst) {
        return None;
    }
    let why = driver_fits("a GPU driver").err().map(|short| short.why);
    if why.is_none() {
        PASSED.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    why
}

/// Why a driver may not be opened, and the limits to raise.
#[derive(Debug)]
pub struct DriverShort {
    pub why: String,
    /// what to do: "raise the limit (ulimit -v)", "raise the limits (ulimit -v, ulimit -d)"
    pub raise: String,
}

/// Err where the headroom under an address-space or data-size limit now is less than a
/// driver needs of it as it opens (`driver_need`), for `what` (a GPU driver, another
/// device's); each limit that is short is named.
pub fn driver_fits(what: &str) -> std::result::Result<(), DriverShort> {
    use crate::config::available_memory::{driver_need, process_limits_left, size_text};
    let short: Vec<_> = process_limits_left().into_iter().filter(|left| left.bytes < driver_need(left.limit)).collect();
    if short.is_empty() {
        return Ok(());
    }
    let said: Vec<String> = short
        .iter()
        .map(|left| {
            let named = left.limit.named();
            format!("{named} leaves {}, less than the {} {what} may take as it opens", size_text(left.bytes.max(0.0)), size_text(driver_need(left.limit)))
        })
        .collect();
    let ulimits: Vec<&str> = short.iter().filter_map(|left| left.limit.ulimit()).collect();
    let raise = format!("raise the limit{} ({})", if ulimits.len() > 1 { "s" } else { "" }, ulimits.join(", "));
    Err(DriverShort { why: format!("this process's {}", said.join(", and its ")), raise })
}

/// Is there a usable GPU adapter (software ones included)?
pub fn gpu_available() -> bool {
    gpu_context(None, false).is_ok()
}

/// Is there a usable hardware GPU adapter (what `--backend auto` takes)?
pub fn hardware_gpu_available() -> bool {
    gpu_context(None, false).map(|c| !c.info.software).unwrap_or(false)
}

/// The context, its pinning note kept for run.json, and said here once a context (not where
/// the context is opened: that may be a thread opening it ahead of a refused config,
/// `gpu_ahead`).
fn with_pinning_note(opts: &RunOptions, ctx: Arc<GpuContext>, notes: &mut Vec<String>) -> Arc<GpuContext> {
    if let Some(n) = &ctx.info.pinning_note {
        if !ctx.pinning_said.swap(true, std::sync::atomic::Ordering::Relaxed) {
            say(opts, n);
        }
        notes.push(n.clone());
    }
    ctx
}

pub fn resolve_backend(opts: &RunOptions, notes: &mut Vec<String>) -> Result<Engine> {
    let need_f64 = opts.precision == Precision::F64;
    if let (Some(a), Backend::Reference | Backend::Cpu) = (&opts.adapter, opts.backend) {
        let note = format!("--adapter {a} ignored: --backend {} does not use a GPU", opts.backend.name());
        say(opts, &note);
        notes.push(note);
    }
    match opts.backend {
        Backend::Reference => Ok(Engine::Reference),
        Backend::Cpu => Ok(Engine::Cpu),
        Backend::Gpu => Ok(Engine::Gpu(with_pinning_note(opts, gpu_context(opts.adapter.as_deref(), need_f64)?, notes))),
        Backend::Auto => match gpu_context(opts.adapter.as_deref(), need_f64) {
            // A software adapter runs the kernels on the same cores about 10x slower than the
            // CPU engine: auto takes it only when the user named it with --adapter.
            Ok(ctx) if ctx.info.software && opts.adapter.is_none() => {
                let note = format!(
                    "the only GPU adapter is software ('{}', {}); running on the CPU engine, which is faster on the same cores (--backend gpu runs it)",
                    ctx.info.name, ctx.info.device_type
                );
                say(opts, &note);
                notes.push(note);
                Ok(Engine::Cpu)
            }
            Ok(ctx) => Ok(Engine::Gpu(with_pinning_note(opts, ctx, notes))),
            Err(e) => {
                let note = match driver_gate_reason() {
                    Some(why) => format!("no GPU opened: {why}; running on the CPU engine"),
                    None => format!("no usable GPU adapter ({e}); running on the CPU engine"),
                };
                say(opts, &note);
                notes.push(note);
                Ok(Engine::Cpu)
            }
        },
    }
}

pub fn integrate(plan: &Plan, opts: &RunOptions, engine: &Engine) -> Result<EngineOutput> {
    // Steady states are solved for directly, on the CPU in f64, whatever the backend.
    if plan.steady {
        return steady::integrate_steady(plan, opts);
    }
    let note = match (plan.schedule.switch_off, plan.schedule.switch_segment()) {
        (Some(t_off), None) => {
            Some(format!("protocol.switch_off = {} lies after the last sample time: the coupling stays on for the whole run", crate::error::shown(t_off)))
        }
        _ => None,
    };
    if let Some(note) = &note {
        say(opts, note);
    }
    if runs_f32_kernels(plan, opts, engine) {
        f32_range::f32_refusal(plan)?;
    }
    let mut out = integrate_engine(plan, opts, engine)?;
    out.notes.extend(note);
    Ok(out)
}

/// The refusals an engine would otherwise give only once a study had created its staging
/// directory (what a GPU kernel that keeps only the reduced state cannot give), checked before
/// any file is touched; the engines check the same again for in-memory runs.
pub fn refuse_early(plan: &Plan, opts: &RunOptions, engine: &Engine) -> Result<()> {
    if plan.steady || !matches!(engine, Engine::Gpu(_)) {
        return Ok(());
    }
    if runs_f32_kernels(plan, opts, engine) {
        f32_range::f32_refusal(plan)?;
    }
    let refusal = if plan.is_dicke() {
        dicke::gpu_refusal(plan, opts)
    } else if plan.is_cavity() && cavity::unsupported_drive(plan).is_none() {
        // (a bad QBAT_CAVITY_TILE before the run starts, not at its first block)
        cavity::gpu_refusal(plan).or_else(|| cavity::no_workgroup_tile_from_env().err())
    } else {
        None
    };
    refusal.map_or(Ok(()), Err)
}

/// Does the run go through the f32 GPU kernels? (Not a cavity run with a drive the kernels do
/// not apply, which the f64 reference integrates.)
fn runs_f32_kernels(plan: &Plan, opts: &RunOptions, engine: &Engine) -> bool {
    matches!(engine, Engine::Gpu(_)) && opts.precision == Precision::F32 && !plan.steady && !(plan.is_cavity() && cavity::unsupported_drive(plan).is_some())
}

fn integrate_engine(plan: &Plan, opts: &RunOptions, engine: &Engine) -> Result<EngineOutput> {
    if matches!(engine, Engine::Reference) {
        let (values, peaks, states) = run_reference(plan, opts)?;
        let mut out = EngineOutput::new(plan, values, peaks, Precision::F64, 0.0, 0.0);
        out.states = plan.save_states.map(|_| states);
        return Ok(out);
    }
    if plan.is_dicke() {
        return dicke::run_dicke(plan, opts, engine);
    }
    if let Some(k) = plan.is_cavity().then(|| cavity::unsupported_drive(plan)).flatten() {
        // The structured cavity engines apply the named drive operators and their real
        // combinations; a matrix drive outside them is integrated by the f64 oracle.
        let note = format!("cavity-cells: drive[{k}].operator is not a combination of the named operators (sx_1 .. sz_2, x_a, y_a) that the cavity CPU and GPU engines apply; the run is integrated on the f64 reference engine");
        say(opts, &note);
        let (values, peaks, states) = run_reference(plan, opts)?;
        let mut out = EngineOutput::new(plan, values, peaks, Precision::F64, 0.0, 0.0);
        out.states = plan.save_states.map(|_| states);
        out.notes.push(note);
        out.ran_on = Some(("reference", Engine::Reference.device_name()));
        return Ok(out);
    }
    if plan.is_cavity() {
        if let Engine::Gpu(ctx) = engine {
            return cavity::run_cavity_gpu_engine(plan, opts, ctx);
        }
        return run_cavity_cpu(plan, opts);
    }
    two_qubit::run_two_qubit(plan, opts, engine)
}

/// Every member of `plan` through `member` (its values [sample][measure] and peaks), in
/// parallel over members, with a progress bar and the run control (a cancelled run skips the
/// members not yet begun; a member stopped part-way is not counted): the CPU engine of
/// cavity-cells.
/// The third part of a member's result is its saved states (`--save-states`; empty without).
pub(crate) fn per_member<F>(plan: &Plan, opts: &RunOptions, label: &str, member: F) -> Result<(Vec<f64>, Vec<Peak>, Option<Vec<crate::linalg::C64>>)>
where
    F: Fn(&crate::config::Member) -> Result<(Vec<f64>, [Peak; 4], Vec<crate::linalg::C64>)> + Sync,
{
    use rayon::prelude::*;
    let pb = progress_bar(opts.progress, plan.members.len() as u64, label);
    let per: Vec<Result<(Vec<f64>, [Peak; 4], Vec<crate::linalg::C64>)>> = plan
        .members
        .par_iter()
        .map(|m| {
            opts.check_cancelled()?;
            opts.done_if_ok(member(m), 1, &pb)
        })
        .collect();
    pb.finish_and_clear();
    opts.check_cancelled()?;
    let mut values = Vec::with_capacity(plan.members.len() * plan.schedule.times.len() * plan.measures.len());
    let mut peaks = Vec::with_capacity(plan.members.len() * 4);
    let mut states = plan.save_states.map(|_| vec![]);
    for r in per {
        let (v, p, st) = r?;
        values.extend(v);
        peaks.extend(p);
        if let Some(all) = states.as_mut() {
            all.extend(st);
        }
    }
    Ok((values, peaks, states))
}
