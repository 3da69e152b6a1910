//! qbat-gpu command line: clap parsing -> run() -> ExitCode. The only place anyhow is used.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use qbat_gpu::config::{parse_plan, Overrides};
use qbat_gpu::error::QbatError;
use qbat_gpu::output::{series_size_estimate, write_all, Format, OutputDir, OutputOptions};
use qbat_gpu::run::{run_plan, Backend, Precision, RunOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "qbat-gpu", version, about = "Large ensembles of open quantum batteries: RK4 Lindblad on the GPU, checked against an f64 CPU reference")]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The default study (paper 000 spin pair from Haar-random states) when no command is given.
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run a configured study.
    Run {
        /// Config file (TOML), see the README.
        config: PathBuf,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Run the papers' closed-form checks; exit 1 if any fails.
    Validate {
        #[arg(long, value_enum, default_value = "auto")]
        backend: Backend,
        #[arg(long, value_enum, default_value = "f32")]
        precision: Precision,
    },
    /// Run the standard benchmark jobs.
    Bench {
        /// Jobs: bloch-1k, bloch-100k, cavity-100, cavity-10k (default: bloch-1k cavity-100).
        jobs: Vec<String>,
        #[arg(long, value_enum, default_value = "auto")]
        backend: Backend,
        /// Write the figures as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Timed repetitions per job and backend (after one warm-up).
        #[arg(long, default_value_t = 3, allow_negative_numbers = true)]
        repeat: usize,
        /// Instead of the jobs: throughput against ensemble size and n_fock (CSV + SVG).
        #[arg(long)]
        scaling: bool,
        /// Largest ensemble of the scaling curve.
        #[arg(long, default_value_t = 100_000, allow_negative_numbers = true)]
        scaling_max_members: u64,
        /// Folder for the scaling curve's files.
        #[arg(long, default_value = "bench-scaling")]
        out: PathBuf,
    },
    /// List the models, their parameters and defaults.
    Models,
    /// List the measures.
    Measures,
}

#[derive(Args, Clone)]
struct RunArgs {
    #[arg(long, value_enum, default_value = "auto")]
    backend: Backend,
    #[arg(long, value_enum, default_value = "f32")]
    precision: Precision,
    /// Output directory (default: qbat-out for the default study).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "csv")]
    format: Format,
    /// Ensemble size (overrides ensemble.size).
    #[arg(long, allow_negative_numbers = true)]
    ensemble: Option<u64>,
    /// Seed (overrides ensemble.seed).
    #[arg(long, allow_negative_numbers = true)]
    seed: Option<u64>,
    /// Members re-integrated on the f64 reference after the run.
    #[arg(long, default_value_t = 8, allow_negative_numbers = true)]
    verify: usize,
    /// GPU adapter to use, by (part of) its name.
    #[arg(long)]
    adapter: Option<String>,
    /// Write the per-sample series (default: yes for `run`, no for the default study).
    #[arg(long)]
    series: Option<bool>,
    /// Replace the qbat-gpu files of an existing --out directory, and allow a series over 4 GiB.
    #[arg(long)]
    force: bool,
    #[arg(long)]
    no_plots: bool,
    #[arg(long)]
    no_progress: bool,
    /// cavity-cells: choose n_fock so the initial coherent state's tail is below 1e-12 (+2 levels).
    #[arg(long)]
    auto_fock: bool,
}

/// The default study's config (INTERFACE.md): spin pair of paper 000 from Haar-random states.
const DEFAULT_STUDY: &str = r#"
model = "spin-pair"
[params]
wb = 1.0
wc = 1.0
j1 = 0.1
j2 = 0.1
[initial]
random = "haar"
[time]
dt = 0.01
t_end = 50.0
samples = 101
[ensemble]
size = 1000
seed = 0
"#;

fn run_study(config_text: &str, args: &RunArgs, default_out: &str, series_default: bool, study: bool) -> anyhow::Result<()> {
    let ov = Overrides { ensemble: args.ensemble, seed: args.seed, auto_fock: args.auto_fock };
    let plan = parse_plan(config_text, &ov)?;
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from(default_out));
    // Without --out the directory is qbat-gpu's own default, and a rerun replaces its files.
    let force = args.force || args.out.is_none();
    OutputDir::check(&out, force)?;
    let series = args.series.unwrap_or(series_default);
    let oopts = OutputOptions { format: args.format, series, plots: !args.no_plots, ..Default::default() };
    if series {
        let bytes = series_size_estimate(&plan, args.format);
        if bytes > oopts.series_limit && !args.force {
            return Err(QbatError::TooLarge {
                field: "--series".into(),
                reason: format!("the series would take about {:.1} GiB (limit {:.1} GiB); pass --force, or --format npy, fewer samples or --series false", bytes as f64 / 2f64.powi(30), oopts.series_limit as f64 / 2f64.powi(30)),
            }
            .into());
        }
    }
    let ropts = RunOptions {
        backend: args.backend,
        precision: args.precision,
        verify: args.verify,
        adapter: args.adapter.clone(),
        progress: !args.no_progress,
        max_chunk: None,
    };
    let mut result = run_plan(&plan, &ropts)?;
    let st = qbat_gpu::output::stats::compute(&result);
    qbat_gpu::report::print_report(&result, plan.members.len());
    qbat_gpu::report::print_final_stats(&st);
    for w in qbat_gpu::report::fock_tail_warnings(&plan, &result) {
        eprintln!("WARNING: {w}");
        result.notes.push(w);
    }
    if study {
        println!("Spearman correlation of capacity_b with each resource (pooled over members and times):");
        for m in qbat_gpu::report::RESOURCES {
            if let Some(rho) = qbat_gpu::report::pooled_spearman(&result, qbat_gpu::measures::Measure::CapacityB, m) {
                println!("  {:<16} {:+.4}", m.name(), rho);
            }
        }
    }
    let t_out = std::time::Instant::now();
    let run_json = qbat_gpu::output::run_json(&plan, &result, &ropts);
    let dir = write_all(&out, &plan, &result, &st, run_json, &oopts).context("writing the output directory")?;
    println!("output      : {} ({:.2} s)", dir.display(), t_out.elapsed().as_secs_f64());
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => run_study(DEFAULT_STUDY, &cli.run, "qbat-out", false, true),
        Some(Command::Run { config, run }) => {
            let text = std::fs::read_to_string(&config).map_err(|e| QbatError::invalid("CONFIG", format!("cannot read {}: {e}", config.display())))?;
            let stem = config.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "run".into());
            run_study(&text, &run, &format!("{stem}-out"), true, false)
        }
        Some(Command::Validate { backend, precision }) => {
            let ok = qbat_gpu::validate::run_validate(backend, precision)?;
            if ok { Ok(()) } else { Err(ValidateFailed.into()) }
        }
        Some(Command::Bench { jobs, backend, json, repeat, scaling, scaling_max_members, out }) => {
            if scaling {
                qbat_gpu::bench::run_scaling(backend, &out, scaling_max_members)?;
                println!("scaling curves: {}/scaling.csv, scaling_members.svg, scaling_n_fock.svg", out.display());
            } else {
                qbat_gpu::bench::run_bench(&jobs, backend, json.as_deref(), repeat)?;
            }
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

#[derive(Debug)]
struct ValidateFailed;
impl std::fmt::Display for ValidateFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "one or more checks failed")
    }
}
impl std::error::Error for ValidateFailed {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<ValidateFailed>().is_some() {
                return ExitCode::from(1);
            }
            match e.downcast_ref::<QbatError>() {
                Some(q) => ExitCode::from(q.exit_code()),
                None => ExitCode::from(1),
            }
        }
    }
}
