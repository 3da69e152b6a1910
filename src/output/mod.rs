//! Output directory: run.json, series.csv | series.npy + series.json, summary.csv, stats.csv,
//! and plots. Every file is written under a temporary name and renamed; a new directory is
//! assembled beside its final path and renamed into place, so a failed run leaves nothing
//! under a final name.

pub mod accumulate;

pub mod plots;
pub mod series;
pub mod stats;
pub mod summary;

use crate::config::Plan;
use crate::error::{QbatError, Result};

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
        std::fs::create_dir_all(&staging).map_err(|e| QbatError::io(&staging, e))?;
        Ok(OutputDir { final_dir: final_dir.into(), staging })
    }

    /// Write one file atomically (see `write_atomic`).
    pub fn write(&self, name: &str, f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
        write_atomic(&self.staging.join(name), f)
    }

    pub fn commit(self) -> Result<PathBuf> {
        if !self.final_dir.exists() {
            std::fs::rename(&self.staging, &self.final_dir).map_err(|e| QbatError::io(&self.final_dir, e))?;
            return Ok(self.final_dir);
        }
        // --force into an existing directory: drop the old run's files, move the new ones in.
        for entry in std::fs::read_dir(&self.final_dir).map_err(|e| QbatError::io(&self.final_dir, e))?.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if is_output_file(&name) {
                std::fs::remove_file(entry.path()).map_err(|e| QbatError::io(&entry.path(), e))?;
            }
        }
        for entry in std::fs::read_dir(&self.staging).map_err(|e| QbatError::io(&self.staging, e))?.flatten() {
            let to = self.final_dir.join(entry.file_name());
            std::fs::rename(entry.path(), &to).map_err(|e| QbatError::io(&to, e))?;
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
    let mut tmp = tempfile::Builder::new().prefix(&format!(".{name}.")).tempfile_in(dir).map_err(|e| QbatError::io(path, e))?;
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        f(&mut w).map_err(|e| QbatError::io(path, e))?;
        w.flush().map_err(|e| QbatError::io(path, e))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644));
    }
    tmp.as_file().sync_all().map_err(|e| QbatError::io(path, e))?;
    tmp.persist(path).map_err(|e| QbatError::io(path, e.error))?;
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
