//! Output directory: run.json, series.csv | series.npy + series.json, summary.csv, stats.csv,
//! and plots. Every file is written under a temporary name and renamed; a new directory is
//! assembled beside its final path and renamed into place, so a failed run leaves nothing
//! under a final name.

pub mod plots;
pub mod stats;

use crate::config::Plan;
use crate::error::{QbatError, Result};
use crate::job::PEAK_MEASURES;
use crate::run::RunResult;
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

/// A directory being assembled: files go to `staging`, which becomes `final_dir` on commit.
pub struct OutputDir {
    final_dir: PathBuf,
    staging: PathBuf,
    fresh: bool,
}

fn io(path: &Path, e: std::io::Error) -> QbatError {
    QbatError::io(path.display().to_string(), e)
}

impl OutputDir {
    /// Check the target is usable, without creating it yet.
    pub fn check(final_dir: &Path) -> Result<()> {
        if final_dir.exists() && !final_dir.is_dir() {
            return Err(QbatError::invalid("--out", format!("{} exists and is not a directory", final_dir.display())));
        }
        let parent = final_dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !parent.exists() {
            return Err(QbatError::invalid("--out", format!("the parent directory {} does not exist", parent.display())));
        }
        Ok(())
    }

    pub fn begin(final_dir: &Path) -> Result<OutputDir> {
        Self::check(final_dir)?;
        if final_dir.is_dir() {
            return Ok(OutputDir { final_dir: final_dir.into(), staging: final_dir.into(), fresh: false });
        }
        let name = final_dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "out".into());
        let parent = final_dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
        std::fs::create_dir_all(&staging).map_err(|e| io(&staging, e))?;
        Ok(OutputDir { final_dir: final_dir.into(), staging, fresh: true })
    }

    /// Write one file atomically (temporary name in the same directory, then rename).
    pub fn write(&self, name: &str, f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
        let target = self.staging.join(name);
        let mut tmp = tempfile::Builder::new().prefix(&format!(".{name}.")).tempfile_in(&self.staging).map_err(|e| io(&target, e))?;
        {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
            f(&mut w).map_err(|e| io(&target, e))?;
            w.flush().map_err(|e| io(&target, e))?;
        }
        tmp.as_file().sync_all().map_err(|e| io(&target, e))?;
        tmp.persist(&target).map_err(|e| io(&target, e.error))?;
        Ok(())
    }

    pub fn commit(self) -> Result<PathBuf> {
        if self.fresh {
            std::fs::rename(&self.staging, &self.final_dir).map_err(|e| io(&self.final_dir, e))?;
        }
        Ok(self.final_dir.clone())
    }

    pub fn abort(self) {
        if self.fresh {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
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
fn num(x: f64) -> String {
    format!("{x:?}")
}

/// run.json: enough to reproduce and to trust the run.
pub fn run_json(plan: &Plan, r: &RunResult, opts: &crate::run::RunOptions) -> serde_json::Value {
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "model": plan.model.name(),
        "config": plan.config_json,
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
        "notes": r.notes,
    })
}

/// Write every output file of a run.
pub fn write_all(dir: &Path, plan: &Plan, result: &RunResult, st: &stats::Stats, run_json: serde_json::Value, opts: &OutputOptions) -> Result<PathBuf> {
    let out = OutputDir::begin(dir)?;
    match write_files(&out, plan, result, st, run_json, opts) {
        Ok(()) => out.commit(),
        Err(e) => {
            out.abort();
            Err(e)
        }
    }
}

fn write_files(out: &OutputDir, plan: &Plan, r: &RunResult, st: &stats::Stats, run_json: serde_json::Value, opts: &OutputOptions) -> Result<()> {
    let ns = r.times.len();
    let nm = r.measures.len();
    let names: Vec<&str> = r.measures.iter().map(|m| m.name()).collect();
    if opts.series {
        match opts.format {
            Format::Csv => out.write("series.csv", |w| {
                write!(w, "member,t")?;
                for n in &names {
                    write!(w, ",{n}")?;
                }
                writeln!(w)?;
                for (i, id) in r.member_ids.iter().enumerate() {
                    for (s, t) in r.times.iter().enumerate() {
                        write!(w, "{id},{}", num(*t))?;
                        for k in 0..nm {
                            write!(w, ",{}", num(r.value(i, s, k)))?;
                        }
                        writeln!(w)?;
                    }
                }
                Ok(())
            })?,
            Format::Npy => {
                out.write("series.npy", |w| {
                    let shape = [r.member_ids.len() as u64, ns as u64, nm as u64];
                    use npyz::WriterBuilder;
                    let mut npy = npyz::WriteOptions::<f64>::new().default_dtype().shape(&shape).writer(w).begin_nd()?;
                    npy.extend(r.values.iter().copied())?;
                    npy.finish()
                })?;
                let axes = json!({"members": r.member_ids, "times": r.times, "measures": names});
                out.write("series.json", |w| serde_json::to_writer_pretty(&mut *w, &axes).map_err(std::io::Error::other))?;
            }
        }
    }
    // summary.csv: one row per member
    out.write("summary.csv", |w| {
        write!(w, "member")?;
        for c in &plan.param_columns {
            write!(w, ",{c}")?;
        }
        let angles = plan.members.iter().any(|m| m.theta_phi.is_some());
        if angles {
            write!(w, ",theta,phi")?;
        }
        for m in PEAK_MEASURES {
            write!(w, ",max_{0},t_max_{0}", m.name())?;
        }
        writeln!(w)?;
        for (i, m) in plan.members.iter().enumerate() {
            write!(w, "{}", m.id)?;
            for v in &m.param_values {
                write!(w, ",{}", num(*v))?;
            }
            if angles {
                let (th, ph) = m.theta_phi.unwrap_or((f64::NAN, f64::NAN));
                write!(w, ",{},{}", num(th), num(ph))?;
            }
            for k in 0..4 {
                let p = r.peaks[i * 4 + k];
                write!(w, ",{},{}", num(p.max), num(p.t_max))?;
            }
            writeln!(w)?;
        }
        Ok(())
    })?;
    out.write("stats.csv", |w| stats::write_csv(st, w))?;
    if opts.plots {
        plots::write_plots(out, r, st)?;
    }
    out.write("run.json", |w| serde_json::to_writer_pretty(&mut *w, &run_json).map_err(std::io::Error::other))?;
    Ok(())
}
