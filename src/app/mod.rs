//! The binary's own layer: the command line (`cli.rs`), argument policy (`run.rs`), the
//! commands' printed reports (`report.rs`) and the bench command (`bench.rs`). It sits on the
//! library (`qbat_gpu`) and nothing in the library imports it.

pub mod bench;
mod bench_json;
pub mod cli;
pub mod report;
pub mod run;

use cli::{Cli, Command};
use qbat_gpu::error::{one_line, QbatError, Result};
use qbat_gpu::run::RunOptions;
use run::{run_study, DEFAULT_STUDY};
use std::process::ExitCode;

/// Largest config file read: far beyond any real config (the largest example is a few KB).
const CONFIG_LIMIT: u64 = qbat_gpu::config::CONFIG_TEXT_LIMIT as u64;

/// How a command that ran to the end came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// `validate` ran every check and at least one failed.
    ChecksFailed,
}

impl Outcome {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Success => ExitCode::SUCCESS,
            Outcome::ChecksFailed => ExitCode::from(1),
        }
    }
}

/// The one-line message of an error with its causes (`i/o: out/run.json: No space left`).
pub fn message(e: &QbatError) -> String {
    qbat_gpu::error::shown_line(&e.with_causes())
}

/// Run the parsed command line; the outcome decides the exit code (`Outcome::exit_code`).
pub fn run(cli: Cli) -> Result<Outcome> {
    dispatch(cli).map(|()| Outcome::Success).or_else(|e| match e {
        Failure::ChecksFailed => Ok(Outcome::ChecksFailed),
        Failure::Error(e) => Err(e),
    })
}

/// A command that did not succeed: checks that ran and failed, or an error.
enum Failure {
    ChecksFailed,
    Error(QbatError),
}

impl From<QbatError> for Failure {
    fn from(e: QbatError) -> Self {
        Failure::Error(e)
    }
}

fn dispatch(cli: Cli) -> std::result::Result<(), Failure> {
    // before any command touches rayon: a pool that cannot start is an error here, not a
    // panic at its first use
    qbat_gpu::config::available_memory::start_pool_within_limits()?;
    // (before any file is opened: a run that would run out of descriptors mid-way is refused)
    qbat_gpu::open_files::raise_open_files_limit()?;
    match cli.command {
        None => Ok(run_study(DEFAULT_STUDY, &cli.run, std::path::Path::new("qbat-out"), true, true)?),
        Some(Command::Run { config, run }) => {
            let text = qbat_gpu::output::read_text_bounded(&config, CONFIG_LIMIT).map_err(|e| QbatError::invalid("CONFIG", message(&e)))?;
            // the stem's bytes as they are (two names that differ only in bytes that are not
            // UTF-8 would share a lossy one's output)
            let mut default_out = config.file_stem().map(std::ffi::OsStr::to_os_string).unwrap_or_else(|| "run".into());
            default_out.push("-out");
            // (a syntax error names the file)
            Ok(run_study(&text, &run, std::path::Path::new(&default_out), true, false).map_err(|e| e.in_config_file(&config))?)
        }
        Some(Command::Validate { backend, precision, adapter }) => {
            let checks = qbat_gpu::validate::all_checks(&RunOptions { backend, precision, adapter, ..Default::default() })?;
            if report::print_checks(&checks) {
                Ok(())
            } else {
                Err(Failure::ChecksFailed)
            }
        }
        Some(Command::Bench { jobs, backend, adapter, json, repeat, scaling, scaling_max_members, out, members, print_config }) => {
            // (the scaling curve's options are refused beside the jobs, not ignored: the jobs
            // write no directory, and `--scaling`'s own conflicts are clap's)
            if !scaling {
                let given = [
                    ("--out", out.is_some(), "is an option of bench --scaling: the jobs write no directory (--json FILE writes their figures)"),
                    ("--scaling-max-members", scaling_max_members.is_some(), "is an option of bench --scaling: the jobs take their members from --members"),
                ];
                if let Some((name, _, why)) = given.iter().find(|(_, g, _)| *g) {
                    return Err(QbatError::invalid(*name, *why).into());
                }
            }
            if print_config {
                // one config, which `run` takes whole: several would print keys twice over
                let texts = bench::job_configs(&jobs, members)?;
                if texts.len() != 1 {
                    let names = qbat_gpu::config::jobs::JOBS.join(", ");
                    return Err(QbatError::invalid("--print-config", format!("prints one job's config, for `qbat-gpu run`: name one job (of {names})")).into());
                }
                print!("{}", texts[0]);
            } else if scaling {
                let out = out.unwrap_or_else(|| "bench-scaling".into());
                bench::run_scaling(backend, adapter.as_deref(), &out, scaling_max_members.unwrap_or(bench::SCALING_MAX_MEMBERS))?;
                println!("scaling curves: {}/scaling.csv, scaling_members.svg, scaling_n_fock.svg", one_line(&out.display().to_string()));
            } else {
                bench::run_bench(&jobs, backend, adapter.as_deref(), json.as_deref(), repeat, members)?;
            }
            Ok(())
        }
        Some(Command::Merge { dirs, out, force, no_plots }) => {
            let dir = qbat_gpu::study::merge::merge(&dirs, &out, force, !no_plots)?;
            println!("merged {} shards into {}", dirs.len(), one_line(&dir.display().to_string()));
            Ok(())
        }
        Some(Command::Analyze { dir, measures, pairs, no_plots, max_members, monotone_tol }) => {
            let pairs = pairs
                .iter()
                .map(|p| match p.split_once(':') {
                    Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a.to_string(), b.to_string())),
                    _ => Err(QbatError::invalid("--pairs", format!("'{p}' is not of the form a:b"))),
                })
                .collect::<Result<Vec<_>>>()?;
            let opts = qbat_gpu::analyze::AnalyzeOptions { measures, pairs, plots: !no_plots, max_members, monotone_tol, ..Default::default() };
            let analysis = qbat_gpu::analyze::analyze_dir(&dir, &opts)?;
            report::print_table(&analysis);
            println!("wrote       : {}", one_line(&analysis.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")));
            Ok(())
        }
        Some(Command::Models) => {
            print!("{}", qbat_gpu::describe::models_text());
            Ok(())
        }
        Some(Command::Measures) => {
            print!("{}", qbat_gpu::describe::measures_text());
            Ok(())
        }
    }
}
