//! qbat-gpu command line: clap parsing -> run() -> ExitCode. The only place anyhow is used.

use clap::{Args, Parser, Subcommand};
use qbat_gpu::config::{parse_plan, Overrides};
use qbat_gpu::error::QbatError;
use qbat_gpu::output::{series_size_estimate, Format, OutputOptions};
use qbat_gpu::run::{Backend, Precision, RunOptions};
use qbat_gpu::study::{run_study as run_study_streamed, OnDeviceLoss, Shard, StudyOptions};
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
    /// Combine the outputs of `--shard K/N` runs into the output of the whole run.
    Merge {
        /// The shard output directories (all N of them, in any order).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// Replace the qbat-gpu files of an existing --out directory.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        no_plots: bool,
    },
    /// Correlations and monotone relations between measures of a run's series (analysis.csv).
    Analyze {
        /// A run's output directory (with series.csv or series.npy).
        dir: PathBuf,
        /// Analyse every pair among these measures (comma-separated).
        #[arg(long, value_delimiter = ',')]
        measures: Vec<String>,
        /// Pairs a:b (comma-separated), e.g. capacity_b:concurrence.
        #[arg(long, value_delimiter = ',')]
        pairs: Vec<String>,
        #[arg(long)]
        no_plots: bool,
        /// Members in the correlation set (an evenly strided subset past this).
        #[arg(long, default_value_t = qbat_gpu::analyze::DEFAULT_MAX_MEMBERS)]
        max_members: usize,
        /// Relative tolerance of the monotone test (default: 1e-9 for f64 runs, 1e-5 for f32).
        #[arg(long)]
        monotone_tol: Option<f64>,
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
    /// Series format (default: csv for `run`, npy for the default study).
    #[arg(long, value_enum)]
    format: Option<Format>,
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
    /// Write the per-sample series (default: yes; the default study analyses it).
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
    /// Run only shard K of N (0-based): members [K M / N, (K + 1) M / N), with the seeds of the
    /// whole run; combine the shards with `qbat-gpu merge`.
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    /// Continue the interrupted run whose output directory is DIR (same config and options).
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// When the GPU is lost mid-run: finish on the CPU engine, or stop (resumable).
    #[arg(long, value_enum, default_value = "cpu")]
    on_device_loss: OnDeviceLoss,
    /// Spread the blocks across several GPUs: `all`, or adapter names (comma-separated; a
    /// name may repeat to open one adapter twice). Balanced by throughput: each device takes
    /// the next block when it finishes one.
    #[arg(long, value_name = "all|NAME,NAME")]
    devices: Option<String>,
    /// Members per checkpointed block (default: from a memory budget).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    block_members: Option<u64>,
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
    let (out, resume) = match (&args.resume, &args.out) {
        (Some(r), Some(o)) if r != o => {
            return Err(QbatError::invalid("--resume", format!("--resume {} and --out {} name different directories", r.display(), o.display())).into())
        }
        (Some(r), _) => (r.clone(), true),
        (None, Some(o)) => (o.clone(), false),
        (None, None) => (PathBuf::from(default_out), false),
    };
    // Without --out the directory is qbat-gpu's own default, and a rerun replaces its files.
    let force = args.force || (args.out.is_none() && !resume);
    let series = args.series.unwrap_or(series_default);
    let format = args.format.unwrap_or(if study { Format::Npy } else { Format::Csv });
    let oopts = OutputOptions { format, series, plots: !args.no_plots, ..Default::default() };
    if series {
        let bytes = series_size_estimate(&plan, format) / args.shard.map(|s| s.count as u64).unwrap_or(1);
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
    let sopts = StudyOptions {
        run: ropts,
        output: oopts,
        out,
        force,
        resume,
        shard: args.shard,
        block_members: args.block_members.map(|b| b as usize),
        on_device_loss: args.on_device_loss,
        devices: args.devices.clone(),
    };
    let outcome = run_study_streamed(&plan, &sopts)?;
    qbat_gpu::report::print_report(&outcome.info, outcome.members);
    if outcome.blocks > 1 {
        println!("blocks      : {} ({} resumed from the checkpoint)", outcome.blocks, outcome.resumed_blocks);
    }
    qbat_gpu::report::print_final_stats(&outcome.stats);
    // The default study relates capacity_b to each resource (analyze, on the series it wrote).
    if study && !series {
        println!("note        : no series was written (--series false), so the capacity_b correlations were not computed");
    }
    if study && series {
        println!("Spearman and Pearson correlation of capacity_b with each resource (pooled over members and times), and the fraction of members along whose trajectory it is monotone:");
        let analysis = qbat_gpu::analyze::analyze_dir(&outcome.dir, &qbat_gpu::analyze::AnalyzeOptions { plots: false, ..Default::default() })?;
        qbat_gpu::analyze::print_table(&analysis);
    }
    println!("output      : {} ({:.2} s)", outcome.dir.display(), outcome.info.timings.output);
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => run_study(DEFAULT_STUDY, &cli.run, "qbat-out", true, true),
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
        Some(Command::Merge { dirs, out, force, no_plots }) => {
            let dir = qbat_gpu::output::merge::merge(&dirs, &out, force, !no_plots)?;
            println!("merged {} shards into {}", dirs.len(), dir.display());
            Ok(())
        }
        Some(Command::Analyze { dir, measures, pairs, no_plots, max_members, monotone_tol }) => {
            let pairs = pairs
                .iter()
                .map(|p| match p.split_once(':') {
                    Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a.to_string(), b.to_string())),
                    _ => Err(QbatError::invalid("--pairs", format!("{p:?} is not of the form a:b"))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let opts = qbat_gpu::analyze::AnalyzeOptions { measures, pairs, plots: !no_plots, max_members, monotone_tol };
            let analysis = qbat_gpu::analyze::analyze_dir(&dir, &opts)?;
            qbat_gpu::analyze::print_table(&analysis);
            println!("wrote       : {}", analysis.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "));
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
