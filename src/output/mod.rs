//! Output directory: run.json, series.csv | series.npy + series.json, summary.csv, stats.csv,
//! and plots. Every file is written under a temporary name and renamed; a new directory is
//! assembled beside its final path and renamed into place, so a failed run leaves nothing
//! under a final name.

pub mod accumulate;
pub mod merge;
pub mod plots;
pub mod stats;

use crate::config::Plan;
use crate::error::{QbatError, Result};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Csv,
    Npy,
}

/// What to write.
#[derive(Clone, Debug)]
pub struct OutputOptions {
    pub format: Format,
    pub series: bool,
    pub plots: bool,
    /// Refuse a series larger than this many bytes.
    pub series_limit: u64,
}

impl Default for OutputOptions {
    fn default() -> Self {
        OutputOptions { format: Format::Csv, series: true, plots: true, series_limit: 4 << 30 }
    }
}

/// A directory being assembled: files go to a fresh `staging` directory beside `final_dir`,
/// which becomes `final_dir` on commit (or, for an existing directory under `--force`, whose
/// files replace the qbat-gpu files there). A run that fails leaves `final_dir` untouched.
pub struct OutputDir {
    final_dir: PathBuf,
    staging: PathBuf,
}

fn io(path: &Path, e: std::io::Error) -> QbatError {
    QbatError::io(path.display().to_string(), e)
}

/// Files a run writes (plots are plot_*.svg and plot_*.png); `--force` replaces these and nothing else.
fn is_output_file(name: &str) -> bool {
    matches!(name, "run.json" | "series.csv" | "series.npy" | "series.json" | "summary.csv" | "stats.csv" | "stats-state.bin" | "analysis.csv" | "summary.npy" | "summary.json")
        || (name.starts_with("plot_") && (name.ends_with(".svg") || name.ends_with(".png")))
}

fn staging_path(final_dir: &Path) -> PathBuf {
    let name = final_dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "out".into());
    let parent = final_dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    parent.join(format!(".{name}.partial-{}", std::process::id()))
}

impl OutputDir {
    /// Check, before the run, that the target can be written: not a file, not a non-empty
    /// directory (unless `force`), and its parent writable (probed by creating the staging
    /// directory and removing it again).
    pub fn check(final_dir: &Path, force: bool) -> Result<()> {
        let shown = final_dir.display();
        if final_dir.exists() && !final_dir.is_dir() {
            return Err(QbatError::invalid("--out", format!("{shown} exists and is not a directory")));
        }
        if final_dir.is_dir() && !force {
            let entries = std::fs::read_dir(final_dir).map_err(|e| QbatError::invalid("--out", format!("cannot read {shown}: {e}")))?;
            if entries.count() > 0 {
                return Err(QbatError::invalid("--out", format!("{shown} exists and is not empty; choose a new directory, or pass --force to replace the qbat-gpu files in it")));
            }
        }
        let parent = final_dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !parent.is_dir() {
            return Err(QbatError::invalid("--out", format!("the parent directory {} does not exist", parent.display())));
        }
        let probe = staging_path(final_dir);
        std::fs::create_dir(&probe).map_err(|e| QbatError::invalid("--out", format!("cannot write in {}: {e}", parent.display())))?;
        let _ = std::fs::remove_dir(&probe);
        Ok(())
    }

    /// An output directory assembled in an existing `staging` directory.
    pub fn at(final_dir: &Path, staging: &Path) -> OutputDir {
        OutputDir { final_dir: final_dir.into(), staging: staging.into() }
    }

    pub fn begin(final_dir: &Path) -> Result<OutputDir> {
        let staging = staging_path(final_dir);
        std::fs::create_dir_all(&staging).map_err(|e| io(&staging, e))?;
        Ok(OutputDir { final_dir: final_dir.into(), staging })
    }

    /// Write one file atomically (see `write_atomic`).
    pub fn write(&self, name: &str, f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
        write_atomic(&self.staging.join(name), f)
    }

    pub fn commit(self) -> Result<PathBuf> {
        if !self.final_dir.exists() {
            std::fs::rename(&self.staging, &self.final_dir).map_err(|e| io(&self.final_dir, e))?;
            return Ok(self.final_dir);
        }
        // --force into an existing directory: drop the old run's files, move the new ones in.
        for entry in std::fs::read_dir(&self.final_dir).map_err(|e| io(&self.final_dir, e))?.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if is_output_file(&name) {
                std::fs::remove_file(entry.path()).map_err(|e| io(&entry.path(), e))?;
            }
        }
        for entry in std::fs::read_dir(&self.staging).map_err(|e| io(&self.staging, e))?.flatten() {
            let to = self.final_dir.join(entry.file_name());
            std::fs::rename(entry.path(), &to).map_err(|e| io(&to, e))?;
        }
        let _ = std::fs::remove_dir(&self.staging);
        Ok(self.final_dir)
    }

    pub fn abort(self) {
        let _ = std::fs::remove_dir_all(&self.staging);
    }
}

/// Write a file atomically and durably: a temporary name in the same directory, fsync, then
/// rename; readable by others (0644, as a plain file would be under the usual umask). A failure
/// (full disk, unwritable directory) is an error naming the file, and leaves nothing under
/// its final name.
pub fn write_atomic(path: &Path, f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let mut tmp = tempfile::Builder::new().prefix(&format!(".{name}.")).tempfile_in(dir).map_err(|e| io(path, e))?;
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        f(&mut w).map_err(|e| io(path, e))?;
        w.flush().map_err(|e| io(path, e))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644));
    }
    tmp.as_file().sync_all().map_err(|e| io(path, e))?;
    tmp.persist(path).map_err(|e| io(path, e.error))?;
    Ok(())
}

/// Bytes the series would take in the chosen format (csv: about 24 bytes a number).
pub fn series_size_estimate(plan: &Plan, format: Format) -> u64 {
    let cells = plan.members.len() as u64 * plan.schedule.times.len() as u64;
    let per_cell = match format {
        Format::Csv => 24 * (plan.measures.len() as u64 + 2),
        Format::Npy => 8 * plan.measures.len() as u64,
    };
    cells * per_cell
}

/// Round-trip float text (17 significant digits are never needed beyond what `{}` prints:
/// Rust's shortest representation round-trips exactly).
pub fn num(x: f64) -> String {
    format!("{x:?}")
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
pub fn run_json(plan: &Plan, r: &crate::run::RunInfo, opts: &crate::run::RunOptions) -> serde_json::Value {
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "model": plan.model.name(),
        "config": plan.config_json,
        "resolved": {
            "params": plan.points.first().map(params_json),
            "swept": plan.param_columns,
            "size": plan.members.len(),
            "seed": plan.seed,
            "t_first": r.times.first(),
            "t_last": r.times.last(),
            "fock_tail_threshold": plan.fock_tail_threshold,
        },
        "seed": plan.seed,
        "n_fock": match plan.space { crate::model::Space::Cavity { n_fock } => Some(n_fock), _ => None },
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
