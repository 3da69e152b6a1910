//! The end of a streamed run: the final files (series, summary, stats, run.json) assembled in
//! member order in a clean subdirectory (series.npy linked from the series file the blocks
//! wrote, the rest from the block files), with the plots drawn from them, and committed into
//! place with their manifest.

use super::checkpoint::Progress;
use super::csv_series::CSV_FILE;
use super::health::{fock_tail_warnings, FockTailCheck, FockTailRecord, Health, HEALTH_CODES};
use super::series_file::{SeriesFile, SERIES_FILE};
use super::staging::Staging;
use super::{peak_rss_bytes, StudyOptions, StudyOutcome};
use crate::analyze::MemoryCheck;
use crate::config::Plan;
use crate::engine::Precision;
use crate::error::{QbatError, Result};
use crate::job::{Peak, PEAK_MEASURES};
use crate::measures::saved::{saved_dim, StateSave};
use crate::measures::Measure;
use crate::output::accumulate::StatsAccumulator;
use crate::output::series::{write_csv_header, write_csv_rows};
use crate::output::states::{states_axes, write_c16_header};
use crate::output::{self, num, Format, OutputDir};
use crate::run::{RunInfo, Timings};
use crate::verify::verify_report_mixed;
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// The block files `name(b)` of every block with the size `bytes(b)` each must have; a missing
/// file or one of another size is an error naming it (the checkpoint is damaged), before any
/// output is written.
fn block_files(staging: &Staging, n_blocks: usize, name: impl Fn(usize) -> String, bytes: impl Fn(usize) -> u64) -> Result<Vec<(PathBuf, u64)>> {
    (0..n_blocks)
        .map(|b| {
            let (p, want) = (staging.blocks().join(name(b)), bytes(b));
            let got = std::fs::metadata(&p).map_err(|e| QbatError::io(&p, e))?.len();
            if got != want {
                return Err(QbatError::invalid(
                    "--resume",
                    format!("{} holds {got} bytes, not the {want} of its block; the checkpoint is damaged", p.display()),
                ));
            }
            Ok((p, want))
        })
        .collect()
}

/// Copy the block files (of `block_files`) into `w` byte for byte; an error names the block.
fn copy_block_files(files: &[(PathBuf, u64)], w: &mut dyn Write) -> std::io::Result<()> {
    for (p, want) in files {
        let named = |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", p.display()));
        // through a 1 MiB buffer (io::copy reads 8 KiB at a time into a `dyn Write`)
        let mut file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(p).map_err(named)?);
        let copied = std::io::copy(&mut file, w).map_err(named)?;
        if copied != *want {
            return Err(std::io::Error::other(format!("{} changed while it was copied ({copied} bytes, not {want})", p.display())));
        }
    }
    Ok(())
}

/// states.npy from the blocks' state files, byte for byte in member order, and states.json
/// naming its axes and basis (`--save-states`).
fn write_states(out: &OutputDir, local: &Plan, staging: &Staging, save: StateSave, ids: &[u64], n_blocks: usize, block: usize) -> Result<()> {
    let d = saved_dim(local.space, save) as u64;
    let ns = local.schedule.times.len() as u64;
    let members = |b: usize| (((b + 1) * block).min(ids.len()) - b * block) as u64;
    let files = block_files(staging, n_blocks, |b| format!("{b:06}.states"), |b| members(b) * ns * d * d * 16)?;
    out.write("states.npy", |w| {
        write_c16_header(w, &[ids.len() as u64, ns, d, d])?;
        copy_block_files(&files, w)
    })?;
    out.write("states.json", |w| {
        serde_json::to_writer_pretty(&mut *w, &states_axes(local.space, save, ids, &local.schedule.times)).map_err(std::io::Error::other)
    })
}

/// The summary.csv header of a plan.
pub fn summary_header(plan: &Plan) -> String {
    let mut h = String::from("member");
    for c in &plan.param_columns {
        h += &format!(",{c}");
    }
    if plan.members.iter().any(|m| m.theta_phi.is_some()) {
        h += ",theta,phi";
    }
    for m in PEAK_MEASURES {
        h += &format!(",max_{0},t_max_{0}", m.name());
    }
    h += ",health";
    h
}

/// The summary.csv rows of `sub`'s members (columns of `plan`, see `summary_header`).
pub fn summary_rows(w: &mut dyn Write, plan: &Plan, sub: &Plan, peaks: &[Peak], health: &[Health]) -> std::io::Result<()> {
    let angles = plan.members.iter().any(|m| m.theta_phi.is_some());
    for (i, m) in sub.members.iter().enumerate() {
        write!(w, "{}", m.id)?;
        for v in &m.param_values {
            write!(w, ",{}", num(*v))?;
        }
        if angles {
            let (th, ph) = m.theta_phi.unwrap_or((f64::NAN, f64::NAN));
            write!(w, ",{},{}", num(th), num(ph))?;
        }
        for k in 0..4 {
            let p = peaks[i * 4 + k];
            write!(w, ",{},{}", num(p.max), num(p.t_max))?;
        }
        writeln!(w, ",{}", health[i].name())?;
    }
    Ok(())
}

/// `--format npy`: summary.npy (members x columns, f64; health as its code) and summary.json
/// naming the columns, from the block summary rows.
fn write_summary_npy(out: &OutputDir, local: &Plan, staging: &Staging, n_blocks: usize) -> Result<()> {
    let header = summary_header(local);
    let columns: Vec<&str> = header.split(',').collect();
    let code = |h: &str| HEALTH_CODES.iter().find(|(_, x)| x.name() == h).map(|(c, _)| *c).unwrap_or(f64::NAN);
    out.write("summary.npy", |w| {
        use npyz::WriterBuilder;
        let shape = [local.members.len() as u64, columns.len() as u64];
        let mut npy = npyz::WriteOptions::<f64>::new().default_dtype().shape(&shape).writer(w).begin_nd()?;
        for b in 0..n_blocks {
            let text = std::fs::read_to_string(staging.blocks().join(format!("{b:06}.summary")))?;
            for line in text.lines() {
                let cells: Vec<&str> = line.split(',').collect();
                for (k, c) in cells.iter().enumerate() {
                    let v = if k + 1 == cells.len() { code(c) } else { c.parse::<f64>().map_err(std::io::Error::other)? };
                    npy.push(&v)?;
                }
            }
        }
        npy.finish()
    })?;
    let health: serde_json::Map<String, serde_json::Value> = HEALTH_CODES.iter().map(|(c, h)| (format!("{c}"), json!(h.name()))).collect();
    let meta = json!({"columns": columns, "health_codes": health});
    out.write("summary.json", |w| serde_json::to_writer_pretty(&mut *w, &meta).map_err(std::io::Error::other))
}

/// The files the run's plots and analysis may write (which of them depends on the members'
/// values): each name its plan allows.
pub(super) fn names_it_may_draw(local: &Plan, opts: &StudyOptions) -> Vec<String> {
    let mut names = vec![];
    if opts.output.plots {
        let measures: Vec<String> = local.measures.iter().map(|m| m.name().to_string()).collect();
        let thetas: std::collections::HashSet<u64> =
            local.members.iter().filter_map(|m| m.theta_phi).map(|(t, _)| t).filter(|t| t.is_finite()).map(f64::to_bits).collect();
        let first = local.members.first().map(|m| m.param_values.as_slice()).unwrap_or_default();
        let varying = (0..first.len()).filter(|&c| local.members.iter().any(|m| m.param_values[c] != first[c])).count();
        let (members, times) = (local.members.len(), &local.schedule.times);
        let stems = output::plots::run_plot_stems(local.model.name(), members, thetas.len(), varying, times, &measures, opts.output.series);
        names.extend(stems.into_iter().flat_map(|s| ["png", "svg"].map(|ext| format!("{s}.{ext}"))));
    }
    if opts.analyze && opts.output.series {
        names.push("analysis.csv".into());
    }
    names
}

/// The files every run of `local` with `opts` writes, whatever its members give (the plots and
/// the analysis's files vary: `names_it_may_draw`).
pub(super) fn files_written(local: &Plan, opts: &StudyOptions) -> Vec<&'static str> {
    let mut names = vec!["run.json", "stats.csv", "summary.csv"];
    let npy = opts.output.format == Format::Npy;
    if npy {
        names.extend(["summary.npy", "summary.json"]);
    }
    if opts.output.series {
        names.extend(if npy { vec![SERIES_FILE, "series.json"] } else { vec![CSV_FILE] });
    }
    if local.save_states.is_some() {
        names.extend(["states.npy", "states.json"]);
    }
    if opts.shard.is_some() {
        names.push("stats-state.bin");
    }
    names
}

#[allow(clippy::too_many_arguments)]
pub(super) fn finish(
    plan: &Plan,
    local: &Plan,
    opts: &StudyOptions,
    staging: &Staging,
    series: Option<SeriesFile>,
    progress: Progress,
    acc: StatsAccumulator,
    block: usize,
    n_blocks: usize,
    resumed: usize,
    setup: f64,
    gathered: Option<crate::analyze::Gather>,
) -> Result<StudyOutcome> {
    let mut progress = progress;
    // A run whose members are all unhealthy is refused; a shard's are a slice of the run's, so
    // such a shard is written, its statistics empty and its analysis left out, and `merge`
    // refuses the run where every shard's members are unhealthy, as the unsharded run does.
    let all_unhealthy = progress.health.ok == 0;
    if all_unhealthy {
        match opts.shard {
            None => return Err(progress.health.all_unhealthy(local.schedule.dt)),
            Some(_) => super::drive::keep_once(
                &mut progress.notes,
                &format!("{}: its statistics hold no member (merge takes the other shards' members)", super::SHARD_ALL_UNHEALTHY),
            ),
        };
    }
    // --verify's check of dt, on a verified member: timed as the verify, before the files
    let t_dt = Instant::now();
    let dt_halved = match progress.verify.is_empty() {
        true => None,
        false => crate::verify::dt_check::dt_check(local, &crate::verify::verify_indices(plan.seed, local.members.len(), opts.run.verify)),
    };
    progress.timings.verify += t_dt.elapsed().as_secs_f64();
    // (before the health and Fock-tail warnings, as an in-memory run says them)
    if let Some(note) = dt_halved.as_ref().and_then(|c| c.note()) {
        crate::engine::say(&opts.run, &note);
        progress.notes.push(note);
    }
    let t_out = Instant::now();
    // The outputs are assembled in a clean subdirectory, which alone is moved into place: no
    // checkpoint, block or stray temporary file can reach the final directory, and the
    // checkpoint stays until the commit has succeeded.
    let assembled = super::staging::fresh_final(&staging.dir)?;
    // (a resume replaces what the interrupted run's check accepted: a qbat-gpu output where
    // the run was started with --force, else nothing; a directory written since is refused)
    let out = OutputDir::at(&opts.out, &assembled, opts.force || progress.force);
    let ns = local.schedule.times.len();
    let measures: Vec<&str> = progress.measures.iter().map(|s| s.as_str()).collect();
    let nm = measures.len();
    let ids: Vec<u64> = local.members.iter().map(|m| m.id).collect();
    // The files are independent of each other: written side by side, so that one's
    // formatting overlaps another's sync (each file is synced before it is renamed).
    let series_files = || -> Result<()> {
        if opts.output.series {
            // A run resumed with every block finished opens the file its checkpoint checked.
            let series = match series {
                Some(s) => s,
                None => SeriesFile::open(&staging.blocks(), ids.len(), ns, nm).map_err(|why| QbatError::invalid("--resume", why))?,
            };
            match (opts.output.format, series.csv_complete()) {
                // appended as the blocks landed: placed, not written again
                (Format::Csv, Some((path, entry))) => out.place(CSV_FILE, path, entry)?,
                (Format::Csv, None) => out.write(CSV_FILE, |w| {
                    write_csv_header(w, &measures)?;
                    for b in 0..n_blocks {
                        let block_ids = &ids[b * block..((b + 1) * block).min(ids.len())];
                        let values = series.read_block(b * block, block_ids.len()).map_err(std::io::Error::other)?;
                        write_csv_rows(w, block_ids, &local.schedule.times, &values, nm)?;
                    }
                    Ok(())
                })?,
                (Format::Npy, _) => {
                    // The blocks wrote the npy in place: it is placed, not copied.
                    out.place(SERIES_FILE, series.path(), series.entry()?)?;
                    let axes = json!({"members": ids, "times": local.schedule.times, "measures": measures});
                    out.write("series.json", |w| serde_json::to_writer_pretty(&mut *w, &axes).map_err(std::io::Error::other))?;
                }
            }
        }
        if let Some(save) = local.save_states {
            write_states(&out, local, staging, save, &ids, n_blocks, block)?;
        }
        Ok(())
    };
    let summary_files = || -> Result<()> {
        if opts.output.format == Format::Npy {
            write_summary_npy(&out, local, staging, n_blocks)?;
        }
        out.write("summary.csv", |w| {
            writeln!(w, "{}", summary_header(local))?;
            for b in 0..n_blocks {
                let p = staging.blocks().join(format!("{b:06}.summary"));
                let mut f = std::fs::File::open(&p)?;
                std::io::copy(&mut f, w)?;
            }
            Ok(())
        })
    };
    let stats_files = || -> Result<output::stats::Stats> {
        let names: Vec<String> = stats_measures(&progress).iter().map(|m| m.name().to_string()).collect();
        let stats = output::stats::Stats::from_accumulator(&acc, local.schedule.times.clone(), names);
        out.write("stats.csv", |w| output::stats::write_csv(&stats, w))?;
        if opts.shard.is_some() {
            out.write("stats-state.bin", |w| acc.write_to(w))?;
        }
        Ok(stats)
    };
    let (series_written, (summary_written, stats)) = rayon::join(series_files, || rayon::join(summary_files, stats_files));
    series_written?;
    summary_written?;
    let stats = stats?;
    // Several devices finish blocks in any order: list ids in member order.
    progress.health.flagged_ids.sort_unstable();
    for g in progress.verify.iter_mut() {
        g.members.sort_unstable();
    }
    for w in fock_tail_warnings(local, &stats_measures(&progress), &progress.fock).into_iter().chain(progress.health.warning(local.schedule.dt)) {
        eprintln!("WARNING: {w}");
        progress.notes.push(w);
    }
    // The analysis's memory, checked before run.json is written, so that run.json says where
    // it is left out: at the run's end against all that is left, as the threads' arenas keep
    // what the run freed (where even that is short, the run ends without it, and says so,
    // rather than losing its end to an abort).
    let assembled = out.staging();
    let (analyze, analysis_skipped) = match opts.analyze {
        // (a shard of unhealthy members only has nothing to analyse: `merge` analyses the run,
        // and does not carry this note there)
        true if all_unhealthy => {
            (Default::default(), Some(format!("{}: every member of this shard was flagged unhealthy (merge computes the run's)", super::ANALYSIS_LEFT_OUT)))
        }
        true => super::plan_analysis(assembled, gathered.as_ref(), opts.output.series, opts.output.plots, MemoryCheck::AtRunEnd, &opts.out)?,
        false => Default::default(),
    };
    progress.notes.extend(analysis_skipped.clone());
    let mut info = run_info(local, &progress, setup, t_out.elapsed().as_secs_f64());
    if let Some(v) = info.verify.as_mut() {
        v.dt_halved = dt_halved;
        // (said, not kept in notes: run.json's verify holds it, and a merge judges its own)
        if let Some(w) = v.warning() {
            eprintln!("WARNING: {w}");
        }
    }
    let mut rj = crate::run::run_json(plan, &info, &opts.run);
    rj["members"] = json!(local.members.len());
    rj["health"] = json!(progress.health);
    rj["peak_rss_bytes"] = json!(peak_rss_bytes());
    rj["blocks"] = json!({"members_per_block": block, "count": n_blocks, "resumed": resumed});
    let engines = block_engines(&progress);
    rj["engines"] =
        json!(engines.iter().map(|(backend, precision, blocks)| json!({"backend": backend, "precision": precision, "blocks": blocks})).collect::<Vec<_>>());
    // blocks in both precisions (a GPU's f32 and the CPU's f64, across a resume or a lost
    // device): said as a merge of such shards says it, not the last block's
    if let Some(((_, first, _), rest)) = engines.split_first() {
        let precision = rest.iter().fold(first.name().to_string(), |said, (_, p, _)| super::merged_engines::mixed_with(&said, p.name()));
        if precision.starts_with("mixed: ") {
            rj["precision"] = json!(precision);
        }
    }
    // (for `merge`, which computes the whole run's analysis only for shards that asked for it)
    rj["study_analysis"] = json!(opts.analyze);
    // the flags and what their warning depends on, for `merge` to warn for the whole run
    if let Some(check) = FockTailCheck::of(local, &stats_measures(&progress)) {
        rj["fock_tail"] = json!(FockTailRecord { check, flags: progress.fock.clone() });
    }
    if let Some(s) = opts.shard {
        let r = s.range(plan.ensemble_size);
        rj["shard"] = json!({"index": s.index, "count": s.count, "members": [r.start, r.end], "fingerprint": progress.fingerprint});
    }
    out.write("run.json", |w| serde_json::to_writer_pretty(&mut *w, &rj).map_err(std::io::Error::other))?;
    // The plots are drawn from the assembled files and committed with them, so that a run
    // killed at any point has either no output or all of it; the analysis reads the series
    // beside them, and counts the 2-D histograms in that pass. Either failing leaves nothing
    // committed and the checkpoint in place (`--resume` finishes the run).
    let (plotted, analysis) = rayon::join(
        || if opts.output.plots { output::plots::write_run_plots(assembled, !opts.analyze).map(drop) } else { Ok(()) },
        || {
            (opts.analyze && analysis_skipped.is_none()).then(|| match crate::faults::is_injected(crate::faults::Fault::AnalysisFails) {
                true => Err(QbatError::io(&assembled.join("analysis.csv"), std::io::Error::other("injected by QBAT_INJECT_FAULT"))),
                false => match gathered {
                    Some(g) => crate::analyze::analyze_gathered(assembled, g, &analyze),
                    None => crate::analyze::analyze_dir(assembled, &analyze),
                },
            })
        },
    );
    plotted?;
    let analysis = analysis.transpose()?;
    let dir = out.commit()?;
    super::staging::mark_committed(&staging.dir);
    if crate::faults::is_injected(crate::faults::Fault::ExitAfterCommit) {
        std::process::exit(137);
    }
    // Committed. The series' second link goes first (removing it moves the committed file's
    // change time), then the files are as they will stay: their identities are recorded while
    // the lock is held, and the checkpoint, blocks and lock go.
    let _ = std::fs::remove_file(staging.blocks().join(SERIES_FILE));
    let _ = std::fs::remove_file(staging.blocks().join(CSV_FILE));
    let _ = crate::output::manifest::Manifest::record_identities(&dir);
    // (one holding a file qbat-gpu did not write stays, said: the next run names the file)
    if let Err(e @ QbatError::Invalid { .. }) = super::staging::remove_staging(&staging.dir) {
        crate::engine::say(&opts.run, &format!("the run's staging directory stays: {e}"));
    }
    let analysis = analysis.map(|a| a.moved_to(&dir));
    Ok(StudyOutcome {
        dir,
        info,
        stats,
        health: progress.health,
        fock: progress.fock,
        members: local.members.len(),
        blocks: n_blocks,
        resumed_blocks: resumed,
        analysis,
        analysis_skipped,
    })
}

/// The engines that computed the blocks: (backend, precision, how many blocks), each engine
/// once, in the order it first did.
fn block_engines(p: &Progress) -> Vec<(String, Precision, usize)> {
    let mut used: Vec<(String, Precision, usize)> = vec![];
    for b in &p.blocks {
        match used.iter_mut().find(|(name, prec, _)| *name == b.backend && *prec == b.precision) {
            Some(u) => u.2 += 1,
            None => used.push((b.backend.clone(), b.precision, 1)),
        }
    }
    used
}

fn stats_measures(p: &Progress) -> Vec<Measure> {
    p.measures.iter().filter_map(|s| Measure::from_name(s).ok()).collect()
}

fn run_info(local: &Plan, p: &Progress, setup: f64, output: f64) -> RunInfo {
    let measures = stats_measures(p);
    let precision = p.precision.unwrap_or(Precision::F64);
    let verify = (!p.verify.is_empty()).then(|| {
        let mut r = verify_report_mixed(&measures, &p.verify);
        let engines = block_engines(p);
        // members verified at one precision of a run of both: labelled with it, as a run's of
        // both precisions are (a merge would take run.json's "mixed: ..." for their precision)
        if let [g] = &p.verify[..] {
            if engines.iter().any(|(_, pr, _)| *pr != g.precision) {
                for d in &mut r.deviations {
                    d.precision = Some(g.precision);
                }
            }
        }
        // the route of each engine that computed blocks (a resume or a lost device may have
        // moved them), each once
        let mut routes: Vec<String> = vec![];
        for (backend, precision, _) in &engines {
            if let Some(route) = crate::verify::concurrence_route(&measures, local.model, backend, *precision).filter(|r| !routes.contains(r)) {
                routes.push(route);
            }
        }
        r.concurrence = (!routes.is_empty()).then(|| routes.join("; "));
        r
    });
    RunInfo {
        measures,
        times: local.schedule.times.clone(),
        backend: p.backend.clone(),
        device: p.device.clone(),
        precision,
        timings: Timings {
            setup,
            ensemble: p.timings.ensemble,
            integrate: p.timings.integrate,
            host_measures: p.timings.host_measures,
            verify: p.timings.verify,
            streaming: p.timings.streaming,
            output,
        },
        member_steps: p.timings.member_steps,
        verify,
        notes: p.notes.clone(),
        engine_plan: p.engine_plan.clone(),
    }
}
