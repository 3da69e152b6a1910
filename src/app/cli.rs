//! The command line as clap sees it: commands, options and their help. Policy (what an option
//! means for the library) lives in `run.rs`.

use clap::{Args, Parser, Subcommand};
use qbat_gpu::analyze::DEFAULT_MAX_MEMBERS;
use qbat_gpu::config::StateSave;
use qbat_gpu::output::Format;
use qbat_gpu::run::{Backend, Precision};
use qbat_gpu::study::{OnDeviceLoss, Shard};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "qbat-gpu", version, about = "Large ensembles of open quantum batteries: RK4 Lindblad on the GPU, checked against an f64 CPU reference")]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The default study (paper 000 spin pair from Haar-random states) when no command is given.
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand)]
pub enum Command {
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
        /// GPU adapter to use, as `run --adapter` takes it.
        #[arg(long, value_name = "NAME|N|BUS", value_parser = not_blank)]
        adapter: Option<String>,
    },
    /// Run the standard benchmark jobs.
    Bench {
        /// Jobs: bloch-1k, bloch-1k-driven, bloch-100k, cavity-100, cavity-10k, dicke-1k (default: bloch-1k cavity-100).
        jobs: Vec<String>,
        #[arg(long, value_enum, default_value = "auto")]
        backend: Backend,
        /// GPU adapter to time, as `run --adapter` takes it (with --backend auto, the CPU
        /// engine is timed beside it).
        #[arg(long, value_name = "NAME|N|BUS", value_parser = not_blank, conflicts_with = "print_config")]
        adapter: Option<String>,
        /// Write the figures as JSON.
        #[arg(long, conflicts_with = "print_config")]
        json: Option<PathBuf>,
        /// Timed repetitions per job and backend (after one warm-up), 1 to 1000.
        #[arg(long, default_value_t = 3, allow_negative_numbers = true, value_parser = repeat_count)]
        repeat: usize,
        /// Instead of the jobs: throughput against ensemble size and n_fock (CSV + SVG). The
        /// jobs' own options (JOB, --json, --repeat, --members, --print-config) are refused
        /// beside it, not ignored.
        #[arg(long, conflicts_with_all = ["jobs", "json", "repeat", "members", "print_config"])]
        scaling: bool,
        /// Largest ensemble of the scaling curve [default: 100000] (with --scaling only).
        #[arg(long, allow_negative_numbers = true)]
        scaling_max_members: Option<u64>,
        /// Folder for the scaling curve's files [default: bench-scaling] (with --scaling only).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Run each job with this many members instead of its own (short runs, device checks).
        #[arg(long, allow_negative_numbers = true)]
        members: Option<u64>,
        /// Print each job's config (TOML, with --members applied) and exit: `qbat-gpu run` of
        /// that file is the job as a whole CLI run.
        #[arg(long)]
        print_config: bool,
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
        #[arg(long, default_value_t = DEFAULT_MAX_MEMBERS, allow_negative_numbers = true)]
        max_members: usize,
        /// Relative tolerance of the monotone test (default: 1e-9 for f64 runs, 1e-5 for f32).
        #[arg(long, allow_negative_numbers = true, value_parser = non_negative)]
        monotone_tol: Option<f64>,
    },
    /// List the models, their parameters and defaults.
    Models,
    /// List the measures.
    Measures,
}

#[derive(Args, Clone)]
pub struct RunArgs {
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: Backend,
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: Precision,
    /// Output directory (default: qbat-out for the default study, <CONFIG stem>-out for `run`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Series format (default: csv for `run`, npy for the default study).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Ensemble size (overrides ensemble.size): an integer, or a whole float (1e5, 4.0).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub ensemble: Option<String>,
    /// Seed (overrides ensemble.seed).
    #[arg(long, allow_negative_numbers = true)]
    pub seed: Option<u64>,
    /// Members re-integrated on the f64 reference after the run.
    #[arg(long, default_value_t = 8, allow_negative_numbers = true)]
    pub verify: usize,
    /// GPU adapter to use: its index as listed, its PCI bus id (0000:17:00.0), or (part of) its
    /// name. Without it, the GPU the scheduler assigned (CUDA_VISIBLE_DEVICES, SLURM_JOB_GPUS,
    /// NVIDIA_VISIBLE_DEVICES), else the best adapter found.
    #[arg(long, value_name = "NAME|N|BUS", value_parser = not_blank)]
    pub adapter: Option<String>,
    /// Write the per-sample series (default: yes; the default study analyses it).
    #[arg(long)]
    pub series: Option<bool>,
    /// Replace the qbat-gpu files of an existing --out directory, and allow a series over 4 GiB.
    #[arg(long)]
    pub force: bool,
    #[arg(long)]
    pub no_plots: bool,
    #[arg(long)]
    pub no_progress: bool,
    /// cavity-cells and dicke: choose n_fock so the initial cavity state's tail is below 1e-12
    /// (+2 levels); it replaces any n_fock in the config.
    #[arg(long)]
    pub auto_fock: bool,
    /// Run only shard K of N (0-based): members [K M / N, (K + 1) M / N), with the seeds of the
    /// whole run; combine the shards with `qbat-gpu merge`.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Continue the interrupted run whose output directory is DIR (same config and options).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// When the GPU is lost mid-run: finish on the CPU engine, or stop (resumable).
    #[arg(long, value_enum, default_value = "cpu")]
    pub on_device_loss: OnDeviceLoss,
    /// Spread the blocks across several GPUs: `all`, or adapter names (comma-separated; a
    /// name may repeat to open one adapter twice). Balanced by throughput: each device takes
    /// the next block when it finishes one.
    #[arg(long, value_name = "all|NAME,NAME")]
    pub devices: Option<String>,
    /// With --resume: allow finishing the run on another --backend than it was started with
    /// (each block's engine is recorded, and verify compares each member at its own precision).
    #[arg(long)]
    pub allow_mixed_backends: bool,
    /// Members per checkpointed block (default: from a memory budget and the results' size).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub block_members: Option<u64>,
    /// Also write each sampled state to states.npy (complex128, members x times x d x d) and
    /// states.json: `reduced` (the default: the two-qubit or cell state) or `full`.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "reduced", value_name = "reduced|full")]
    pub save_states: Option<StateSave>,
}

/// A finite number >= 0 (a tolerance).
fn non_negative(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        Ok(x) => Err(format!("{x} is not a finite number >= 0")),
        Err(_) => Err(format!("'{s}' is not a number")),
    }
}

/// The most timed repetitions `bench` takes (a figure's median is settled long before).
pub const MAX_REPEAT: usize = 1000;

/// A count from 1 to `MAX_REPEAT` (`--repeat`): a huge one never ended.
fn repeat_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_REPEAT).contains(&n) => Ok(n),
        _ => Err(format!("{s} is not a count from 1 to {MAX_REPEAT}")),
    }
}

/// A name that is not empty or blank (`--adapter`: an empty one would match every adapter).
fn not_blank(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("an adapter's index, PCI bus id or name, not an empty string".into())
    } else {
        Ok(s.to_string())
    }
}
