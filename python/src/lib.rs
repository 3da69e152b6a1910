//! `qbat_gpu._native`: the PyO3 extension behind the `qbat_gpu` Python package.
//!
//! A thin layer: every computation is the library's (`qbat_gpu::config::parse_plan`,
//! `qbat_gpu::run::run_plan`, `qbat_gpu::study::run_study`, `qbat_gpu::pyapi`). Here are only
//! the conversions between numpy/Python objects and the library's types, the GIL release and
//! Ctrl-C handling (through the library's `engine::Control`), the mapping of `QbatError` onto Python exceptions,
//! and the queue of the library's stderr lines (`take_stderr`), which the package re-emits in Python.

use num_complex::Complex64;
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArrayDyn};
use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyUserWarning, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use qbat_gpu::config::{parse_plan, Overrides};
use qbat_gpu::engine::Control;
use qbat_gpu::error::QbatError;
use qbat_gpu::pyapi::{self, Format, InMemory, OnDeviceLoss, OutputOptions, StateSave};
use qbat_gpu::run::{Backend, Precision, RunOptions};
use qbat_gpu::study::{run_study, StudyOptions};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod caller_paths;
use caller_paths::CallPaths;

create_exception!(_native, ConfigError, PyValueError, "A bad config, option or input; the message names the field, as the CLI's does.");
create_exception!(_native, DeviceError, PyRuntimeError, "The GPU device is missing, lacks a feature, ran out of memory or was lost.");
create_exception!(_native, RunError, PyRuntimeError, "A numerical failure during a run (NaN, lost trace).");
create_exception!(_native, QbatWarning, PyUserWarning, "The library's `WARNING: ` lines: a Fock cutoff too low, members left out as unhealthy.");

/// A `QbatError` as the Python exception of its kind, with `field` (where there is one) and
/// `exit_code` (the CLI's) as attributes; its field and message name the options as the Python
/// caller wrote them (`pyapi::keyword_error`: `save_states`, `force=True`, not the CLI's flags).
fn to_py(py: Python<'_>, e: QbatError) -> PyErr {
    let e = pyapi::keyword_error_keeping(e, &caller_paths::this_call());
    let msg = qbat_gpu::error::one_line(&e.to_string());
    let field = match &e {
        QbatError::Invalid { field, .. } | QbatError::TooLarge { field, .. } => Some(field.clone()),
        QbatError::Parse { .. } => Some("config".to_string()),
        _ => None,
    };
    let err = match &e {
        QbatError::Invalid { .. } | QbatError::Parse { .. } | QbatError::TooLarge { .. } => ConfigError::new_err(msg),
        QbatError::Device(_) | QbatError::DeviceOutOfMemory(_) | QbatError::DeviceLost(_) => DeviceError::new_err(msg),
        QbatError::Io { .. } => PyOSError::new_err(format!("{msg}: {}", std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default())),
        QbatError::Numerics(_) => RunError::new_err(msg),
        // a process or thread limit: the environment's, as an OS error
        QbatError::Threads(_) => PyOSError::new_err(msg),
        // Only a cancelled control or output gives it (Ctrl-C): KeyboardInterrupt, as Python's.
        QbatError::Cancelled => pyo3::exceptions::PyKeyboardInterrupt::new_err(msg),
    };
    let v = err.value(py);
    let _ = v.setattr("field", field);
    let _ = v.setattr("exit_code", e.exit_code());
    err
}

/// rayon's pool, started at the first call of a function that uses it (not at import: a
/// process forked after its threads started would hold a pool without workers): under a
/// process limit an OSError (one line, naming the limit), not a panic in the run.
fn pool(py: Python<'_>) -> PyResult<()> {
    qbat_gpu::config::available_memory::start_pool_within_limits().map_err(|e| to_py(py, e))
}

/// Run `f` on a worker thread with the GIL released. Every 100 ms: check for signals and
/// call `ticker(elapsed_seconds, members_done, members_total)` if given (a progress display),
/// from the run's `control`, which `f`'s run options hold. On Ctrl-C the run is cancelled
/// through `control`; the worker stops at the engine's next cancellation point (a member, a
/// slice, a GPU chunk or a block) and returns, and then KeyboardInterrupt is raised. A second
/// Ctrl-C while waiting raises at once. When the run ends, the ticker is called once more; an
/// exception from it cancels the run as Ctrl-C does.
fn interruptible<T: Send + 'static>(
    py: Python<'_>,
    ticker: Option<Bound<'_, PyAny>>,
    control: Arc<Control>,
    f: impl FnOnce() -> T + Send + 'static,
) -> PyResult<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::Builder::new()
        .name("qbat-run".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| to_py(py, qbat_gpu::threads::unavailable("the run", e)))?;
    let rx = std::sync::Mutex::new(rx);
    let recv = |py: Python<'_>| py.detach(|| rx.lock().unwrap_or_else(|p| p.into_inner()).recv_timeout(Duration::from_millis(100)));
    let t0 = Instant::now();
    let tick = |t: &Bound<'_, PyAny>| t.call1((t0.elapsed().as_secs_f64(), control.done(), control.total())).map(|_| ());
    loop {
        match recv(py) {
            Ok(v) => {
                let _ = py.detach(|| worker.join());
                if let Some(t) = &ticker {
                    tick(t)?;
                }
                return Ok(v);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                // Ctrl-C (or a failing ticker): cancel the run and wait for the worker, which
                // returns Err(Cancelled) at its next cancellation point; a second Ctrl-C stops
                // the wait.
                let signalled = py.check_signals();
                let by_signal = signalled.is_err();
                if let Err(e) = signalled.and_then(|_| ticker.as_ref().map_or(Ok(()), tick)) {
                    control.cancel();
                    // Ctrl-C also stops the process's outputs being written (a study at its
                    // commit may wait for another's lock on its directory); a failing ticker
                    // stops this run only, not another thread's save.
                    if by_signal {
                        qbat_gpu::output::cancel_writes();
                    }
                    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = recv(py) {
                        if py.check_signals().is_err() {
                            break;
                        }
                    }
                    return Err(e);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Err(PyRuntimeError::new_err("the run thread panicked")),
        }
    }
}

/// `f`, which borrows the caller's arrays (a batch's plan built from them), on a scoped thread
/// with the GIL released; signals checked every 100 ms. On Ctrl-C `control` is cancelled, `f`
/// stops at its next check and is waited for (it holds the arrays), and then KeyboardInterrupt
/// is raised.
fn interruptible_borrowing<T: Send>(py: Python<'_>, control: &Control, f: impl FnOnce() -> T + Send) -> PyResult<T> {
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("qbat-build".into())
            .spawn_scoped(scope, move || {
                // (a panic caught here, so that the scope does not panic again as it ends)
                let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
            })
            .map_err(|e| to_py(py, qbat_gpu::threads::unavailable("the batch's plan", e)))?;
        let rx = std::sync::Mutex::new(rx);
        let recv = |py: Python<'_>| py.detach(|| rx.lock().unwrap_or_else(|p| p.into_inner()).recv_timeout(Duration::from_millis(100)));
        let mut interrupted = None;
        loop {
            match recv(py) {
                Ok(Ok(v)) => return interrupted.map_or(Ok(v), Err),
                Ok(Err(_)) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Err(PyRuntimeError::new_err("the batch's build thread panicked")),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if interrupted.is_none() {
                        if let Err(e) = py.check_signals() {
                            control.cancel();
                            interrupted = Some(e);
                        }
                    }
                }
            }
        }
    })
}

fn backend(name: &str) -> Result<Backend, QbatError> {
    Ok(match name {
        "auto" => Backend::Auto,
        "gpu" => Backend::Gpu,
        "cpu" => Backend::Cpu,
        "reference" => Backend::Reference,
        _ => return Err(QbatError::invalid("backend", format!("must be auto, gpu, cpu or reference, got '{name}'"))),
    })
}

fn precision(name: &str) -> Result<Precision, QbatError> {
    Precision::from_name(name).map_err(|_| QbatError::invalid("precision", format!("must be f32 or f64, got '{name}'")))
}

fn format(name: &str) -> Result<Format, QbatError> {
    match name {
        "csv" => Ok(Format::Csv),
        "npy" => Ok(Format::Npy),
        _ => Err(QbatError::invalid("format", format!("must be csv or npy, got '{name}'"))),
    }
}

/// `save_states`: None, "reduced" or "full" (anything else, a bool included, is a ConfigError
/// naming the option).
fn save_states(value: Option<&Bound<'_, PyAny>>) -> Result<Option<StateSave>, QbatError> {
    match value {
        None => Ok(None),
        Some(v) => match v.extract::<String>() {
            Ok(name) => pyapi::state_save(&name).map(Some),
            Err(_) => Err(QbatError::invalid(
                "save_states",
                format!("must be None, \"reduced\" or \"full\", got {}", v.repr().map(|r| r.to_string()).unwrap_or_default()),
            )),
        },
    }
}

/// Run options with a fresh control (cancellation and members done) for `interruptible`.
fn run_options(
    backend_name: &str,
    precision_name: &str,
    verify: usize,
    adapter: Option<String>,
    progress: bool,
) -> Result<(RunOptions, Arc<Control>), QbatError> {
    if adapter.as_deref().is_some_and(|a| a.trim().is_empty()) {
        return Err(QbatError::invalid("adapter", "is empty: name an adapter's index, PCI bus id or part of its name (qb.devices() lists them), or pass None"));
    }
    let control = Arc::new(Control::default());
    let opts = RunOptions {
        backend: backend(backend_name)?,
        precision: precision(precision_name)?,
        verify,
        adapter,
        progress,
        max_chunk: None,
        control: Some(control.clone()),
        values_pool: None,
        said: None,
    };
    Ok((opts, control))
}

/// An in-memory run (everything but its values and saved states, which Python holds as the
/// `series` and `states` arrays).
#[pyclass(module = "qbat_gpu._native", frozen)]
struct NativeRun {
    run: InMemory,
}

/// The run, its series (members, T, K) and its saved states (members, T, d, d) or None.
type RunArrays<'py> = (NativeRun, Bound<'py, PyAny>, Option<Bound<'py, PyAny>>);

fn new_run<'py>(py: Python<'py>, run: InMemory, values: Vec<f64>, states: Option<Vec<Complex64>>) -> PyResult<RunArrays<'py>> {
    let shape = [run.member_ids.len(), run.info.times.len(), run.info.measures.len()];
    // Zero-copy: numpy takes the Rust buffers, and the (M, T, K) and (M, T, d, d) arrays are views of them.
    let flat = PyArray1::from_vec(py, values);
    let series = flat.reshape(shape)?;
    let states = match (states, run.states_dim()) {
        (Some(st), Some(d)) => Some(PyArray1::from_vec(py, st).reshape([run.member_ids.len(), run.info.times.len(), d, d])?.into_any()),
        _ => None,
    };
    Ok((NativeRun { run }, series.into_any(), states))
}

#[pymethods]
impl NativeRun {
    #[getter]
    fn times<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_slice(py, &self.run.info.times)
    }
    #[getter]
    fn measures(&self) -> Vec<&'static str> {
        self.run.info.measures.iter().map(|m| m.name()).collect()
    }
    #[getter]
    fn member_ids<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u64>> {
        PyArray1::from_slice(py, &self.run.member_ids)
    }
    #[getter]
    fn param_columns(&self) -> Vec<String> {
        self.run.plan.param_columns.clone()
    }
    /// (members, parameters) values of the swept or drawn parameters.
    #[getter]
    fn param_values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let p = self.run.plan.param_columns.len();
        let flat: Vec<f64> = self.run.plan.members.iter().flat_map(|m| m.param_values.iter().copied()).collect();
        PyArray1::from_vec(py, flat).reshape([self.run.plan.members.len(), p])
    }
    /// (members, 2) Bloch angles of the charger where they apply, else None.
    #[getter]
    fn theta_phi<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyArray2<f64>>>> {
        let ms = &self.run.plan.members;
        if !ms.iter().any(|m| m.theta_phi.is_some()) {
            return Ok(None);
        }
        let flat: Vec<f64> = ms
            .iter()
            .flat_map(|m| {
                let (a, b) = m.theta_phi.unwrap_or((f64::NAN, f64::NAN));
                [a, b]
            })
            .collect();
        Ok(Some(PyArray1::from_vec(py, flat).reshape([ms.len(), 2])?))
    }
    /// Health code per member (0 ok, 1 nonfinite, 2 trace, 3 nonpositive).
    #[getter]
    fn health_codes<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_vec(py, self.run.health_codes())
    }
    fn summary_csv(&self) -> String {
        self.run.summary_csv()
    }
    /// stats.csv of `series` (the Result's attribute, which the caller may have replaced: its
    /// dtype and length are checked, as `save` checks them).
    fn stats_csv(&self, py: Python<'_>, series: &Bound<'_, PyAny>) -> PyResult<String> {
        pool(py)?;
        let refuse = |why: String| to_py(py, QbatError::invalid("series", why));
        let arr = series.extract::<PyReadonlyArrayDyn<'_, f64>>().map_err(|_| {
            let kind = series.getattr("dtype").map(|d| d.to_string()).unwrap_or_else(|_| series.get_type().to_string());
            refuse(format!("must be a float64 array (members, T, K), got {kind}"))
        })?;
        let values = arr.as_slice().map_err(|_| refuse("must be a C-contiguous float64 array".into()))?;
        self.run.stats_csv(values).map_err(|e| to_py(py, e))
    }
    fn run_json(&self) -> String {
        serde_json::to_string_pretty(&self.run.run_json()).unwrap_or_default()
    }
    /// states.json of the saved states (as the CLI writes it), or None without save_states.
    fn states_json(&self) -> Option<String> {
        self.run.states_json().map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
    }
    #[pyo3(signature = (series, states, out, format, write_series, plots, force))]
    #[allow(clippy::too_many_arguments)]
    fn save(
        &self,
        py: Python<'_>,
        series: PyReadonlyArrayDyn<'_, f64>,
        states: Option<PyReadonlyArrayDyn<'_, Complex64>>,
        out: PathBuf,
        format: &str,
        write_series: bool,
        plots: bool,
        force: bool,
    ) -> PyResult<PathBuf> {
        let _paths = CallPaths::enter([&out]);
        pool(py)?;
        let fmt = self::format(format).map_err(|e| to_py(py, e))?;
        let values = series.as_slice()?;
        let states = match &states {
            Some(a) => Some(complex_slice(a, "states")?),
            None => None,
        };
        let run = &self.run;
        let r = py.detach(|| run.save(values, states, &out, fmt, write_series, plots, force));
        r.map_err(|e| to_py(py, e))
    }
}

/// Run a config (TOML text) in memory: (NativeRun, series (members, T, K), states (members, T, d, d) or None).
#[pyfunction]
#[pyo3(signature = (config, *, backend="auto", precision="f32", ensemble=None, seed=None, verify=8, adapter=None, progress=false, ticker=None, save_states=None))]
#[allow(clippy::too_many_arguments)]
fn run<'py>(
    py: Python<'py>,
    config: String,
    backend: &str,
    precision: &str,
    ensemble: Option<u64>,
    seed: Option<u64>,
    verify: usize,
    adapter: Option<String>,
    progress: bool,
    ticker: Option<Bound<'py, PyAny>>,
    save_states: Option<Bound<'py, PyAny>>,
) -> PyResult<RunArrays<'py>> {
    pool(py)?;
    let (opts, control) = run_options(backend, precision, verify, adapter, progress).map_err(|e| to_py(py, e))?;
    let save_states = self::save_states(save_states.as_ref()).map_err(|e| to_py(py, e))?;
    let ov = Overrides { ensemble, seed, auto_fock: false, shard: None, save_states, cpu_only: opts.backend != Backend::Gpu };
    let plan = parse_plan(&config, &ov).map_err(|e| to_py(py, e))?;
    let (run, values, states) = interruptible(py, ticker, control, move || pyapi::run_in_memory(plan, opts))?.map_err(|e| to_py(py, e))?;
    new_run(py, run, values, states)
}

fn complex_slice<'a>(a: &'a PyReadonlyArrayDyn<'_, Complex64>, name: &str) -> PyResult<&'a [Complex64]> {
    a.as_slice().map_err(|_| PyValueError::new_err(format!("{name} must be a C-contiguous complex128 array")))
}

/// An explicit two-qubit batch (see `qbat_gpu.mesolve`): (NativeRun, series (members, T, K), None).
#[pyfunction]
#[pyo3(signature = (h, jumps, n_jumps, member_point, rho0, tsave, dt, h_battery, h_charger, measures=None, backend="auto", precision="f32", verify=8, progress=false, ticker=None, batch_shape=None))]
#[allow(clippy::too_many_arguments)]
fn mesolve<'py>(
    py: Python<'py>,
    h: PyReadonlyArrayDyn<'py, Complex64>,
    jumps: PyReadonlyArrayDyn<'py, Complex64>,
    n_jumps: usize,
    member_point: PyReadonlyArray1<'py, u64>,
    rho0: PyReadonlyArrayDyn<'py, Complex64>,
    tsave: PyReadonlyArray1<'py, f64>,
    dt: f64,
    h_battery: PyReadonlyArrayDyn<'py, Complex64>,
    h_charger: PyReadonlyArrayDyn<'py, Complex64>,
    measures: Option<Vec<String>>,
    backend: &str,
    precision: &str,
    verify: usize,
    progress: bool,
    ticker: Option<Bound<'py, PyAny>>,
    batch_shape: Option<Vec<u64>>,
) -> PyResult<RunArrays<'py>> {
    pool(py)?;
    let (opts, control) = run_options(backend, precision, verify, None, progress).map_err(|e| to_py(py, e))?;
    let points: Vec<usize> = member_point.as_slice()?.iter().map(|&p| p as usize).collect();
    let batch = pyapi::Batch {
        hamiltonians: complex_slice(&h, "H")?,
        jumps: complex_slice(&jumps, "jump_ops")?,
        n_jumps,
        member_point: &points,
        rho0: complex_slice(&rho0, "rho0")?,
        times: tsave.as_slice()?,
        dt,
        h_battery: complex_slice(&h_battery, "h_battery")?,
        h_charger: complex_slice(&h_charger, "h_charger")?,
        measures,
        // (one axis of members where the caller gave none)
        batch_shape: batch_shape.unwrap_or_else(|| vec![points.len() as u64]),
    };
    let plan = interruptible_borrowing(py, &control, || pyapi::batch_plan(&batch, &control))?.map_err(|e| to_py(py, e))?;
    // the batch's size, as the caller set it: H's leading shape where each member has its own H
    let n_points = batch.hamiltonians.len() / 16;
    let members_field = if n_points > 1 && n_points == points.len() { "H" } else { "rho0" };
    let (run, values, states) =
        interruptible(py, ticker, control, move || pyapi::run_in_memory(plan, opts))?.map_err(|e| to_py(py, pyapi::batch_run_error(e, members_field)))?;
    new_run(py, run, values, states)
}

/// The streamed, checkpointed run into a directory (`qbat-gpu run --out`); returns the directory.
#[pyfunction]
#[pyo3(signature = (config, out, *, shard=None, resume=false, series=true, format="npy", devices=None, block_members=None, force=false, plots=true, on_device_loss="cpu", allow_mixed_backends=false, backend="auto", precision="f32", ensemble=None, seed=None, verify=8, adapter=None, progress=false, ticker=None, save_states=None))]
#[allow(clippy::too_many_arguments)]
fn study<'py>(
    py: Python<'py>,
    config: String,
    out: PathBuf,
    shard: Option<(usize, usize)>,
    resume: bool,
    series: bool,
    format: &str,
    devices: Option<String>,
    block_members: Option<usize>,
    force: bool,
    plots: bool,
    on_device_loss: &str,
    allow_mixed_backends: bool,
    backend: &str,
    precision: &str,
    ensemble: Option<u64>,
    seed: Option<u64>,
    verify: usize,
    adapter: Option<String>,
    progress: bool,
    ticker: Option<Bound<'py, PyAny>>,
    save_states: Option<Bound<'py, PyAny>>,
) -> PyResult<PathBuf> {
    let _paths = CallPaths::enter([&out]);
    pool(py)?;
    let map = |e| to_py(py, e);
    let (run, control) = run_options(backend, precision, verify, adapter, progress).map_err(map)?;
    let save_states = self::save_states(save_states.as_ref()).map_err(map)?;
    let fmt = self::format(format).map_err(map)?;
    // (refused as the caller wrote it: `(k, n)`, not the CLI's `K/N`)
    let shard = shard.map(|(k, n)| pyapi::shard(k, n)).transpose().map_err(map)?;
    if block_members == Some(0) {
        return Err(to_py(py, QbatError::invalid("block_members", "must be >= 1")));
    }
    let on_device_loss = match on_device_loss {
        "cpu" => OnDeviceLoss::Cpu,
        "stop" => OnDeviceLoss::Stop,
        other => return Err(to_py(py, QbatError::invalid("on_device_loss", format!("must be cpu or stop, got '{other}'")))),
    };
    // The shard's members only (ids and seeds of the whole run), as the CLI builds them.
    let ov = Overrides { ensemble, seed, auto_fock: false, shard: shard.map(|s| (s.index, s.count)), save_states, cpu_only: run.backend != Backend::Gpu };
    let plan = parse_plan(&config, &ov).map_err(map)?;
    let opts = StudyOptions {
        run,
        output: OutputOptions { format: fmt, series, plots, ..Default::default() },
        out,
        force,
        resume,
        shard,
        block_members,
        on_device_loss,
        devices,
        allow_mixed_backends,
        analyze: false,
    };
    let outcome = interruptible(py, ticker, control, move || run_study(&plan, &opts).map(|o| o.dir))?.map_err(map)?;
    // (a PathBuf, as named: a path that is not UTF-8 reaches Python unchanged)
    Ok(outcome)
}

/// Merge shard directories into `out` (`qbat-gpu merge`); returns the directory.
#[pyfunction]
#[pyo3(signature = (dirs, out, force=false, plots=true))]
fn merge(py: Python<'_>, dirs: Vec<PathBuf>, out: PathBuf, force: bool, plots: bool) -> PyResult<PathBuf> {
    let _paths = CallPaths::enter(dirs.iter().chain([&out]));
    pool(py)?;
    let r = py.detach(|| pyapi::merge(&dirs, &out, force, plots));
    // (the shard directories are the CLI's `DIR`s, Python's `dirs`; the output's errors name
    // `--out`, `out`)
    r.map_err(|e| to_py(py, pyapi::renamed_field(e, "DIR", "dirs")))
}

/// The files of a finished output, as its manifest lists them, each checked first.
#[pyfunction]
fn verified_files(py: Python<'_>, dir: PathBuf) -> PyResult<Vec<String>> {
    let _paths = CallPaths::enter([&dir]);
    // (large files are hashed on the pool where it can start: not in a forked child, whose
    // hashes go on one thread)
    let _ = qbat_gpu::config::available_memory::start_pool_within_limits();
    py.detach(|| pyapi::verified_files(&dir)).map_err(|e| to_py(py, e))
}

/// Stop this process's outputs being written (Ctrl-C during a save, merge or copy): each stops
/// at its next write or at its commit, with nothing under its final name.
#[pyfunction]
fn cancel_writes() {
    qbat_gpu::output::cancel_writes();
}

/// End the process by the signal `sig` with its default action, once the staging directories
/// of the outputs still uncommitted (on any thread) are removed, as the CLI ends
/// (`qbat_gpu::signals::end_by`): after a call that SIGTERM or SIGHUP stopped. Returns only
/// where the signal does not end the process.
#[pyfunction]
fn end_by_signal(py: Python<'_>, sig: i32) {
    py.detach(|| qbat_gpu::signals::end_by(sig));
}

/// Remove the per-process runtime directory made at the import (where the per-user one was
/// taken), as the CLI's `main` does at its end: registered with `atexit`.
#[pyfunction]
fn remove_runtime_dir() {
    qbat_gpu::gpu::runtime_dir::remove_own();
}

/// Whether the signal `sig` is at its default action as the kernel holds it (a handler set
/// outside Python, `faulthandler.register`'s, is invisible to `signal.getsignal`).
#[pyfunction]
fn signal_at_default(sig: i32) -> bool {
    qbat_gpu::signals::is_default(sig)
}

/// An ensemble size given as a float (`ensemble=1e5`), by `ensemble.size`'s rules: a whole
/// number from 1 to 1e9, else a ConfigError naming `ensemble`.
#[pyfunction]
fn ensemble_float(py: Python<'_>, x: f64) -> PyResult<u64> {
    qbat_gpu::config::ensemble_float(x, "ensemble").map_err(|e| to_py(py, e))
}

/// Refuse a mesolve batch whose arrays cannot fit, before Python builds them.
#[pyfunction]
fn check_batch_arrays(py: Python<'_>, n_points: u64, n_jumps: u64, n_members: u64) -> PyResult<()> {
    pyapi::check_batch_arrays(n_points, n_jumps, n_members).map_err(|e| to_py(py, e))
}

/// Save a finished output as another, under a run's own rules.
#[pyfunction]
#[pyo3(signature = (src, out, series=true, plots=true, force=false, opened=None))]
fn copy_output(
    py: Python<'_>,
    src: PathBuf,
    out: PathBuf,
    series: bool,
    plots: bool,
    force: bool,
    opened: Option<Vec<(String, u64, String)>>,
) -> PyResult<PathBuf> {
    let _paths = CallPaths::enter([&src, &out]);
    // (as `verified_files`)
    let _ = qbat_gpu::config::available_memory::start_pool_within_limits();
    let r = py.detach(|| pyapi::copy_output(&src, &out, series, plots, force, opened.as_deref()));
    r.map_err(|e| to_py(py, e))
}

/// Apply a two-qubit state measure to states (N, 16) complex; returns (N,).
#[pyfunction]
fn state_measure<'py>(py: Python<'py>, name: &str, states: PyReadonlyArrayDyn<'py, Complex64>) -> PyResult<Bound<'py, PyArray1<f64>>> {
    pool(py)?;
    let s = complex_slice(&states, "rho")?;
    let v = py.detach(|| pyapi::state_measure_batch(name, s)).map_err(|e| to_py(py, e))?;
    Ok(PyArray1::from_vec(py, v))
}

/// ergotropy / antiergotropy / capacity of battery states (N, d*d) against (N, d*d) or (d*d,) Hamiltonians.
#[pyfunction]
fn battery_measure<'py>(
    py: Python<'py>,
    name: &str,
    states: PyReadonlyArrayDyn<'py, Complex64>,
    h: PyReadonlyArrayDyn<'py, Complex64>,
    d: usize,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    pool(py)?;
    let s = complex_slice(&states, "rho_b")?;
    let hs = complex_slice(&h, "h")?;
    let v = py.detach(|| pyapi::battery_measure_batch(name, s, hs, d)).map_err(|e| to_py(py, e))?;
    Ok(PyArray1::from_vec(py, v))
}

#[pyfunction]
fn models<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for m in pyapi::models() {
        let d = PyDict::new(py);
        d.set_item("name", m.name)?;
        d.set_item("paper", m.paper)?;
        d.set_item("hamiltonian", m.hamiltonian)?;
        d.set_item("coupling", m.coupling)?;
        let ps = PyList::empty(py);
        for p in m.params {
            let pd = PyDict::new(py);
            pd.set_item("name", p.name)?;
            pd.set_item("default", p.default)?;
            pd.set_item("doc", p.doc)?;
            ps.append(pd)?;
        }
        d.set_item("params", ps)?;
        out.append(d)?;
    }
    Ok(out)
}

#[pyfunction]
fn measures_list<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for m in pyapi::measures_list() {
        let d = PyDict::new(py);
        d.set_item("name", m.name)?;
        d.set_item("scope", m.scope)?;
        d.set_item("doc", m.doc)?;
        out.append(d)?;
    }
    Ok(out)
}

#[pyfunction]
fn devices<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
    let list = py.detach(pyapi::devices);
    let out = PyList::empty(py);
    for a in list {
        let d = PyDict::new(py);
        d.set_item("name", a.name)?;
        d.set_item("type", a.device_type)?;
        d.set_item("backend", a.backend)?;
        d.set_item("driver", a.driver)?;
        d.set_item("f64", a.f64)?;
        out.append(d)?;
    }
    Ok(out)
}

/// Queue the library's stderr (notes and warnings) instead of writing fd 2, which Jupyter does
/// not show in the cell; the package takes the queue (`take_stderr`) and re-emits it in Python.
/// Off: what is still queued is written to fd 2.
#[pyfunction]
fn capture_stderr(on: bool) {
    if !on {
        caller_paths::write_said();
    }
    qbat_gpu::console::capture_stderr(on);
}

/// What the library said on stderr since the last call, one entry per line it wrote (a message
/// of several lines is one entry), without the final newline; the options it names are the
/// Python keywords (`pyapi::keyword_message`), the paths of the call that said it as given
/// (`caller_paths`).
#[pyfunction]
fn take_stderr() -> Vec<String> {
    caller_paths::take_said()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // At import, before the run threads start, as the CLI's `main` does: a runtime dir for the
    // Vulkan drivers' probe, so that Mesa says nothing of a missing XDG_RUNTIME_DIR.
    qbat_gpu::gpu::runtime_dir::ensure_runtime_dir();
    let py = m.py();
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("DeviceError", py.get_type::<DeviceError>())?;
    m.add("RunError", py.get_type::<RunError>())?;
    m.add("QbatWarning", py.get_type::<QbatWarning>())?;
    m.add("VERSION", env!("CARGO_PKG_VERSION"))?;
    m.add("STATE_MEASURES", pyapi::STATE_MEASURES.to_vec())?;
    m.add("BATTERY_MEASURES", pyapi::BATTERY_MEASURES.to_vec())?;
    m.add_class::<NativeRun>()?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(mesolve, m)?)?;
    m.add_function(wrap_pyfunction!(study, m)?)?;
    m.add_function(wrap_pyfunction!(merge, m)?)?;
    m.add_function(wrap_pyfunction!(verified_files, m)?)?;
    m.add_function(wrap_pyfunction!(copy_output, m)?)?;
    m.add_function(wrap_pyfunction!(check_batch_arrays, m)?)?;
    m.add_function(wrap_pyfunction!(ensemble_float, m)?)?;
    m.add_function(wrap_pyfunction!(cancel_writes, m)?)?;
    m.add_function(wrap_pyfunction!(end_by_signal, m)?)?;
    m.add_function(wrap_pyfunction!(signal_at_default, m)?)?;
    m.add_function(wrap_pyfunction!(remove_runtime_dir, m)?)?;
    m.add_function(wrap_pyfunction!(state_measure, m)?)?;
    m.add_function(wrap_pyfunction!(battery_measure, m)?)?;
    m.add_function(wrap_pyfunction!(models, m)?)?;
    m.add_function(wrap_pyfunction!(measures_list, m)?)?;
    m.add_function(wrap_pyfunction!(devices, m)?)?;
    m.add_function(wrap_pyfunction!(capture_stderr, m)?)?;
    m.add_function(wrap_pyfunction!(take_stderr, m)?)?;
    Ok(())
}
