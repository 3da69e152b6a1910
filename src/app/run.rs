//! Argument policy: what the run options mean for the library (defaults that depend on the
//! command, the output directory, the series guard), then the streamed study and its report.

use super::cli::RunArgs;
use super::report;
use qbat_gpu::config::{parse_plan, Overrides};
use qbat_gpu::error::{one_line, QbatError, Result};
use qbat_gpu::output::{series_size_estimate, states_size_estimate, Format, OutputOptions};
use qbat_gpu::run::RunOptions;
use qbat_gpu::study::{run_study as run_study_streamed, StudyOptions};
use std::path::Path;

/// The default study's config (docs/interface.md): spin pair of paper 000 from Haar-random states.
pub const DEFAULT_STUDY: &str = r#"
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

/// Whether two paths name the same output directory (which may not exist yet: an interrupted
/// run has only its staging directory beside it): the same name in the same parent, the
/// parents compared as the file system resolves them (`./b/`, `b` and `/abs/b` are one).
fn same_output_dir(a: &Path, b: &Path) -> bool {
    let key = |p: &Path| Some((std::fs::canonicalize(qbat_gpu::output::parent_of(p)).ok()?, p.file_name()?.to_owned()));
    match (key(a), key(b)) {
        (Some(ka), Some(kb)) => ka == kb,
        _ => a == b,
    }
}

pub fn run_study(config_text: &str, args: &RunArgs, default_out: &Path, series_default: bool, study: bool) -> Result<()> {
    // A shard builds (and is memory-checked for) its own members only.
    let ov = Overrides {
        // (read by the config's rules for ensemble.size: 1e5 is 100000)
        ensemble: args.ensemble.as_deref().map(qbat_gpu::config::ensemble_arg).transpose()?,
        seed: args.seed,
        auto_fock: args.auto_fock,
        shard: args.shard.map(|s| (s.index, s.count)),
        save_states: args.save_states,
        // (auto counts as the CPU engine: a machine without a hardware GPU runs it there, and
        // the device is opened beside the parse, not before it)
        cpu_only: args.backend != qbat_gpu::engine::Backend::Gpu,
    };
    // the device opened beside the parse (joined on every return)
    let _gpu = qbat_gpu::engine::GpuAhead::open(args.backend, args.adapter.as_deref(), args.precision);
    let plan = parse_plan(config_text, &ov)?;
    let (out, resume) = match (&args.resume, &args.out) {
        (Some(r), Some(o)) if !same_output_dir(r, o) => {
            return Err(QbatError::invalid("--resume", format!("--resume {} and --out {} name different directories", r.display(), o.display())))
        }
        (Some(r), _) => (r.clone(), true),
        (None, Some(o)) => (o.clone(), false),
        (None, None) => (default_out.to_path_buf(), false),
    };
    // Without --out the directory is qbat-gpu's own default, and a rerun replaces its files.
    let force = args.force || (args.out.is_none() && !resume);
    let series = args.series.unwrap_or(series_default);
    let format = args.format.unwrap_or(if study { Format::Npy } else { Format::Csv });
    let oopts = OutputOptions { format, series, plots: !args.no_plots, ..Default::default() };
    if series {
        let bytes = series_size_estimate(&plan, format);
        if bytes > oopts.series_limit && !args.force {
            return Err(QbatError::TooLarge {
                field: "--series".into(),
                reason: format!(
                    "the series would take about {:.1} GiB (limit {:.1} GiB); pass --force, or --format npy, fewer samples or --series false",
                    bytes as f64 / 2f64.powi(30),
                    oopts.series_limit as f64 / 2f64.powi(30)
                ),
            });
        }
    }
    // The same guard counts the saved states with the series.
    let states = states_size_estimate(&plan);
    let total = states + if series { series_size_estimate(&plan, format) } else { 0 };
    if states > 0 && total > oopts.series_limit && !args.force {
        return Err(QbatError::TooLarge {
            field: "--save-states".into(),
            reason: format!(
                "states.npy would take about {:.1} GiB, {:.1} GiB with the series (limit {:.1} GiB); pass --force, or fewer samples or members",
                states as f64 / 2f64.powi(30),
                total as f64 / 2f64.powi(30),
                oopts.series_limit as f64 / 2f64.powi(30)
            ),
        });
    }
    // (a signal stops the run's blocks, which checkpoints the blocks done: signals.rs)
    let control = std::sync::Arc::new(qbat_gpu::engine::Control::for_signals());
    let ropts = RunOptions {
        backend: args.backend,
        precision: args.precision,
        verify: args.verify,
        adapter: args.adapter.clone(),
        progress: !args.no_progress,
        max_chunk: None,
        control: Some(control),
        values_pool: None,
        said: None,
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
        allow_mixed_backends: args.allow_mixed_backends,
        // The default study relates capacity_b to each resource, on the series it wrote (and
        // without one says in run.json that it did not).
        analyze: study,
    };
    let outcome = run_study_streamed(&plan, &sopts)?;
    report::print_report(&outcome.info, outcome.members);
    if outcome.blocks > 1 {
        println!("blocks      : {} ({} resumed from the checkpoint)", outcome.blocks, outcome.resumed_blocks);
    }
    report::print_final_stats(&outcome.stats);
    if let Some(analysis) = outcome.analysis {
        println!("Spearman and Pearson correlation of capacity_b with each resource (pooled over members and times), and the fraction of members along whose trajectory it is monotone:");
        report::print_table(&analysis);
    }
    // (a control character in --out shown escaped, as in the error lines)
    println!("output      : {} ({:.2} s)", one_line(&outcome.dir.display().to_string()), outcome.info.timings.output);
    Ok(())
}
