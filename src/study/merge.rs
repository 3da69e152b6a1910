//! `qbat-gpu merge DIR... --out DIR`: combine the outputs of `--shard K/N` runs into the
//! output of the whole run. Series and summaries are concatenated in member order; the
//! statistics are merged from each shard's exact accumulator (`stats-state.bin`), so the result
//! equals the unsharded run's bit for bit. Shards that don't belong together (another config,
//! seed, version or option; a shard missing or given twice) are refused, as are a file the
//! merge would read that the shard's manifest does not list, and an `--out` that is one of the
//! shards.

use super::FockTailRecord;
use crate::analyze::MemoryCheck;
use crate::error::{QbatError, Result};
use crate::output::accumulate::StatsAccumulator;
use crate::output::manifest::{Manifest, MANIFEST};
use crate::output::series::axes_limit;
use crate::output::series::count_lines;
use crate::output::states::{copy_npy_data, read_c16_layout, read_f8_layout, write_c16_header, write_f8_header};
use crate::output::stats::Stats;
use crate::output::{read_bounded, read_text_bounded, Format, OutputDir, WriteCancel, SMALL_FILE_LIMIT};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

struct ShardDir {
    dir: PathBuf,
    run: Value,
    index: usize,
    count: usize,
    manifest: Manifest,
    health: super::HealthCounts,
}

/// Missing shards named in a refusal: the first few, then how many more.
const MISSING_SHOWN: usize = 5;

/// Read a shard's run.json after checking every file of the shard against its manifest.
fn read_shard(dir: &Path) -> Result<ShardDir> {
    crate::output::recover::refuse_interrupted(dir)?;
    let manifest =
        Manifest::read(dir)?.ok_or_else(|| QbatError::invalid("DIR", format!("{} is not a finished qbat-gpu output (it has no {MANIFEST})", dir.display())))?;
    manifest.verify(dir)?;
    let rp = dir.join("run.json");
    if !manifest.contains("run.json") {
        return Err(QbatError::invalid(rp.display().to_string(), "is not in the shard's manifest"));
    }
    let text = read_text_bounded(&rp, SMALL_FILE_LIMIT)?;
    let run: Value = serde_json::from_str(&text).map_err(|e| QbatError::invalid("DIR", format!("{}: damaged run.json: {e}", dir.display())))?;
    let shard =
        run.get("shard").filter(|s| s.is_object()).ok_or_else(|| QbatError::invalid("DIR", format!("{} is not the output of a --shard run", dir.display())))?;
    let get = |k: &str| shard.get(k).and_then(Value::as_u64).map(|v| v as usize);
    let (Some(index), Some(count)) = (get("index"), get("count")) else {
        return Err(QbatError::invalid("DIR", format!("{}: run.json has no shard index/count", dir.display())));
    };
    if index >= count {
        return Err(QbatError::invalid(rp.display().to_string(), format!("shard.index {index} is not below shard.count {count}")));
    }
    // The sum of every shard's counts is checked against the members, so it must parse here.
    let health = serde_json::from_value::<super::HealthCounts>(run["health"].clone())
        .map_err(|e| QbatError::invalid(rp.display().to_string(), format!("health is not the run's health counts: {e}")))?;
    Ok(ShardDir { dir: dir.to_path_buf(), run, index, count, manifest, health })
}

/// A shard's warnings that depend on its own members (health, Fock tail), as its run wrote
/// them into its notes; its Fock-tail record, where its model has a cavity mode; and its dt.
fn shard_warnings(s: &ShardDir) -> Result<(Vec<String>, Option<FockTailRecord>, f64)> {
    let rp = || s.dir.join("run.json").display().to_string();
    let dt = s.run["dt"].as_f64().ok_or_else(|| QbatError::invalid(rp(), "dt is not a number"))?;
    let mut warnings: Vec<String> = s.health.warning(dt).into_iter().collect();
    let fock = match s.run.get("fock_tail").filter(|v| !v.is_null()) {
        None => None,
        Some(v) => {
            let record = serde_json::from_value::<FockTailRecord>(v.clone())
                .map_err(|_| QbatError::invalid(rp(), "fock_tail is not the run's Fock-tail check and flags"))?;
            warnings.extend(record.check.warnings(&record.flags));
            Some(record)
        }
    };
    Ok((warnings, fock, dt))
}

/// The merged run's notes: every shard's notes, each said once, less the warnings about the
/// shard's own members, which are said again for the whole run (the health counts `health`,
/// merged; the Fock-tail flags, merged here into `run["fock_tail"]`); and those warnings, to
/// print once the merge is committed.
fn merged_notes(shards: &[ShardDir], health: &super::HealthCounts, run: &mut Value) -> Result<(Vec<String>, Vec<String>)> {
    let parts = shards.iter().map(shard_warnings).collect::<Result<Vec<_>>>()?;
    // (the shards share one config, check_shards: one dt, one Fock-tail check)
    let dt = parts[0].2;
    let mut notes: Vec<String> = vec![];
    let mut fock: Option<FockTailRecord> = None;
    for (k, (s, (own, shard_fock, _))) in shards.iter().zip(parts).enumerate() {
        for n in s.run["notes"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            // (a shard's analysis left out names the shard: the merge has its own)
            if n.starts_with(super::ANALYSIS_LEFT_OUT) || n.starts_with(super::SHARD_ALL_UNHEALTHY) {
                continue;
            }
            if !own.iter().any(|w| w == n) && !notes.iter().any(|k| k == n) {
                notes.push(n.to_string());
            }
        }
        let rp = || s.dir.join("run.json").display().to_string();
        fock = match (k, fock, shard_fock) {
            (0, _, f) => f,
            (_, None, None) => None,
            (_, Some(a), Some(b)) if a.check == b.check => {
                let flags = a.flags.merged(&b.flags).ok_or_else(|| QbatError::invalid(rp(), "fock_tail's count overflows"))?;
                Some(FockTailRecord { flags, ..a })
            }
            _ => return Err(QbatError::invalid(rp(), "fock_tail is not the first shard's check")),
        };
    }
    let mut warnings: Vec<String> = vec![];
    if let Some(record) = fock {
        warnings.extend(record.check.warnings(&record.flags));
        run["fock_tail"] = json!(record);
    }
    warnings.extend(health.warning(dt));
    notes.extend(warnings.iter().cloned());
    Ok((notes, warnings))
}

/// The files `merge` reads from each shard of a run with the fingerprint `fp`.
fn merged_files(fp: &Value) -> Vec<&'static str> {
    let mut names = vec!["run.json", "summary.csv", "stats.csv", "stats-state.bin"];
    let series = fp["series"].as_bool().unwrap_or(false);
    if fp["format"] == json!("npy") {
        names.extend(["summary.npy", "summary.json"]);
        if series {
            names.extend(["series.npy", "series.json"]);
        }
    } else if series {
        names.push("series.csv");
    }
    if !fp["states"].is_null() {
        names.extend(["states.npy", "states.json"]);
    }
    names
}

/// Every file the merge reads must be one the shard wrote: listed in its manifest, which
/// `read_shard` verified. An unlisted one could be anything (an edit, a leftover).
fn check_listed(s: &ShardDir, names: &[&str]) -> Result<()> {
    for name in names {
        if !s.manifest.contains(name) {
            let p = s.dir.join(name);
            let why = if std::fs::symlink_metadata(&p).is_ok() {
                "is not in the shard's manifest: merge reads only the files the shard's run wrote"
            } else {
                "is missing: the shard's run writes it, and its manifest does not list it"
            };
            return Err(QbatError::invalid(p.display().to_string(), why));
        }
    }
    Ok(())
}

/// The fingerprint of a shard without its own index (what all shards of a run share).
fn shared_fingerprint(s: &ShardDir) -> Value {
    let mut fp = s.run["shard"]["fingerprint"].clone();
    if let Some(o) = fp.as_object_mut() {
        o.remove("shard");
    }
    fp
}

/// Check that `dirs` are the N shards of one run, and order them by index.
fn check_shards(dirs: &[PathBuf], cancel: WriteCancel) -> Result<Vec<ShardDir>> {
    if dirs.is_empty() {
        return Err(QbatError::invalid("DIR", "no shard directories given"));
    }
    // (each shard's files hashed: the long part before anything is written)
    let mut shards: Vec<ShardDir> = dirs.iter().map(|d| cancel.check().and_then(|()| read_shard(d))).collect::<Result<_>>()?;
    let first = shared_fingerprint(&shards[0]);
    let count = shards[0].count;
    // Every shard runs at least one member: more shards than members cannot be a whole run.
    let members = first["members"].as_u64().unwrap_or(0);
    if count as u64 > members {
        return Err(QbatError::invalid(
            shards[0].dir.join("run.json").display().to_string(),
            format!("shard.count {count} is more than the run's {members} members"),
        ));
    }
    for s in &shards[1..] {
        if s.count != count {
            return Err(QbatError::invalid(
                "DIR",
                format!("{} is shard {} of {}, but {} is of {count}", s.dir.display(), s.index, s.count, shards[0].dir.display()),
            ));
        }
        if let Some(field) = super::fingerprint_difference(&shared_fingerprint(s), &first) {
            return Err(QbatError::invalid(
                "DIR",
                format!("{} and {} are not shards of the same run: they differ in '{field}'", s.dir.display(), shards[0].dir.display()),
            ));
        }
    }
    shards.sort_by_key(|s| s.index);
    for w in shards.windows(2) {
        if w[0].index == w[1].index {
            return Err(QbatError::invalid("DIR", format!("shard {} is given twice ({} and {})", w[0].index, w[0].dir.display(), w[1].dir.display())));
        }
    }
    if shards.len() < count {
        // the indices are sorted, distinct and below count: walk them for the first few gaps
        // (count may be huge, so never list every missing index)
        let (mut shown, mut next, mut it) = (vec![], 0, shards.iter().map(|s| s.index).peekable());
        while shown.len() < MISSING_SHOWN && next < count {
            if it.next_if_eq(&next).is_none() {
                shown.push(next.to_string());
            }
            next += 1;
        }
        let more = count - shards.len() - shown.len();
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        return Err(QbatError::invalid("DIR", format!("shard(s) {}{more} of {count} are missing", shown.join(", "))));
    }
    let files = merged_files(&first);
    for s in &shards {
        check_listed(s, &files)?;
    }
    check_member_ranges(&shards, members as usize)?;
    for s in &shards {
        check_counts(s, first["samples"].as_u64().unwrap_or(0), &files)?;
    }
    Ok(shards)
}

/// The member range [start, end) a shard ran (run.json `shard.members`).
fn member_range(s: &ShardDir) -> Result<std::ops::Range<usize>> {
    let r = &s.run["shard"]["members"];
    match (r[0].as_u64(), r[1].as_u64()) {
        (Some(a), Some(b)) if a <= b => Ok(a as usize..b as usize),
        _ => Err(QbatError::invalid(s.dir.join("run.json").display().to_string(), "shard.members is not a member range [start, end)")),
    }
}

/// The shards' member ranges tile [0, members) in order: the merged output lacks no member
/// and holds none twice.
fn check_member_ranges(shards: &[ShardDir], members: usize) -> Result<()> {
    let mut next = 0;
    for s in shards {
        let r = member_range(s)?;
        if r.start != next {
            return Err(QbatError::invalid(
                s.dir.join("run.json").display().to_string(),
                format!("shard {} runs members from {}, but the shards before it end at {next}", s.index, r.start),
            ));
        }
        next = r.end;
    }
    if next != members {
        return Err(QbatError::invalid("DIR", format!("the shards hold members [0, {next}), the run has {members}")));
    }
    Ok(())
}

/// Rows of a shard's files against its member range: summary.csv one row a member, the series
/// one row (csv) or one slab (npy) a member and sample; run.json's `members` and health counts
/// add up to it too (so that their sums over the shards cannot overflow).
fn check_counts(s: &ShardDir, samples: u64, files: &[&str]) -> Result<()> {
    let members = member_range(s)?.len();
    let rp = s.dir.join("run.json").display().to_string();
    if s.run["members"].as_u64() != Some(members as u64) {
        return Err(QbatError::invalid(rp, format!("members is {}, the shard's range holds {members}", s.run["members"])));
    }
    let h = &s.health;
    let counted = [h.nonfinite, h.trace, h.nonpositive].iter().try_fold(h.ok, |a, &b| a.checked_add(b));
    if counted != Some(members as u64) {
        let counted = counted.map_or("more than 2^64".to_string(), |c| c.to_string());
        return Err(QbatError::invalid(rp, format!("health counts {counted} members, the shard has {members}")));
    }
    let rows = (members as u64).checked_mul(samples).ok_or_else(|| QbatError::invalid(rp, format!("{members} members x {samples} samples is too many")))?;
    let expect = |name: &str, got: u64, want: u64| -> Result<()> {
        if got != want {
            return Err(QbatError::invalid(s.dir.join(name).display().to_string(), format!("holds {got} rows, the shard's {members} members need {want}")));
        }
        Ok(())
    };
    expect("summary.csv", count_lines(&s.dir.join("summary.csv"))?.saturating_sub(1), members as u64)?;
    if files.contains(&"series.csv") {
        expect("series.csv", count_lines(&s.dir.join("series.csv"))?.saturating_sub(1), rows)?;
    }
    let states = s.dir.join("states.npy");
    if files.contains(&"states.npy") {
        let (shape, _) = read_c16_layout(&states)?;
        expect("states.npy", shape.first().copied().unwrap_or(0), members as u64)?;
        if shape.get(1).copied() != Some(samples) {
            return Err(QbatError::invalid(states.display().to_string(), format!("has shape {shape:?}, the run has {samples} samples")));
        }
    }
    for name in ["series.npy", "summary.npy"] {
        let p = s.dir.join(name);
        if files.contains(&name) {
            let (shape, _) = read_f8_layout(&p)?;
            expect(name, shape.first().copied().unwrap_or(0), members as u64)?;
            if name == "series.npy" && shape.get(1).copied() != Some(samples) {
                return Err(QbatError::invalid(p.display().to_string(), format!("has shape {shape:?}, the run has {samples} samples")));
            }
        }
    }
    Ok(())
}

fn copy_skipping_header(path: &Path, w: &mut dyn Write, keep_header: bool) -> std::io::Result<()> {
    let mut r = BufReader::with_capacity(1 << 20, crate::plain_file::open_followed_regular(path).map_err(std::io::Error::other)?.0);
    let mut header = String::new();
    r.read_line(&mut header)?;
    if keep_header {
        w.write_all(header.as_bytes())?;
    }
    std::io::copy(&mut r, w)?;
    Ok(())
}

/// Concatenate the shards' NAME.npy (float64, C order) along the first axis: one header, then
/// each shard's data bytes as they are. Every shard's layout is checked first (dtype, order,
/// size against shape, and the same shape after the first axis), so a mismatched shard stops
/// the merge before anything is written.
fn concat_npy(dir: &OutputDir, shards: &[ShardDir], name: &str) -> Result<()> {
    let mut parts = vec![];
    let mut shape: Vec<u64> = vec![];
    for s in shards {
        let p = s.dir.join(name);
        let (sh, offset) = read_f8_layout(&p)?;
        let refuse = |why: String| QbatError::invalid(p.display().to_string(), why);
        if sh.is_empty() {
            return Err(refuse("is 0-dimensional, not one row a member".into()));
        }
        if shape.is_empty() {
            shape = sh.clone();
        } else if sh[1..] != shape[1..] {
            return Err(refuse(format!("has shape {sh:?}, the first shard's is {shape:?}")));
        } else {
            shape[0] = shape[0].checked_add(sh[0]).ok_or_else(|| refuse("too many rows".into()))?;
        }
        parts.push((p, offset, 8 * sh.iter().product::<u64>()));
    }
    dir.write(name, |w| {
        write_f8_header(w, &shape)?;
        for (p, offset, bytes) in &parts {
            copy_npy_data(p, *offset, *bytes, w)?;
        }
        Ok(())
    })
}

/// states.npy of the shards, their data concatenated byte for byte under one header, and
/// states.json with every shard's members (`--save-states`).
fn merge_states(dir: &OutputDir, shards: &[ShardDir]) -> Result<()> {
    let mut rows = 0u64;
    let mut inner: Vec<u64> = vec![];
    let mut ids: Vec<Value> = vec![];
    let mut axes = Value::Null;
    for s in shards {
        let (shape, _) = read_c16_layout(&s.dir.join("states.npy"))?;
        if shape.len() != 4 || (!inner.is_empty() && shape[1..] != inner[..]) {
            return Err(QbatError::invalid(
                s.dir.join("states.npy").display().to_string(),
                format!("has shape {shape:?}, the other shards {inner:?} after the members"),
            ));
        }
        rows += shape[0];
        inner = shape[1..].to_vec();
        let p = s.dir.join("states.json");
        let a: Value = serde_json::from_slice(&read_bounded(&p, axes_limit(&s.dir.join("states.npy"))?)?)
            .map_err(|e| QbatError::invalid("DIR", format!("{}: {e}", p.display())))?;
        ids.extend(a["members"].as_array().cloned().unwrap_or_default());
        axes = a;
    }
    dir.write("states.npy", |w| {
        let shape: Vec<u64> = std::iter::once(rows).chain(inner.iter().copied()).collect();
        write_c16_header(w, &shape)?;
        for s in shards {
            let p = s.dir.join("states.npy");
            let (shape, offset) = read_c16_layout(&p).map_err(std::io::Error::other)?;
            copy_npy_data(&p, offset, 16 * shape.iter().product::<u64>(), w)?;
        }
        Ok(())
    })?;
    axes["members"] = Value::Array(ids);
    dir.write("states.json", |w| serde_json::to_writer_pretty(&mut *w, &axes).map_err(std::io::Error::other))
}

/// The merged output's plots and its analysis (where given), drawn from its files in
/// `staging`; an error names the output (`of_output`).
fn plot_and_analyze(staging: &Path, plots: bool, analyze: Option<&crate::analyze::AnalyzeOptions>) -> Result<()> {
    let (plotted, analysis) = rayon::join(
        || if plots { crate::output::plots::write_run_plots(staging, analyze.is_none()).map(drop) } else { Ok(()) },
        || analyze.map_or(Ok(()), |a| crate::analyze::analyze_dir(staging, a).map(drop)),
    );
    plotted.and(analysis).map_err(of_output)
}

/// An error of the analysis or the plots of the merged output: their `DIR` is the output,
/// `--out` (the merge's `DIR`s are its shards; Python's `dirs`).
fn of_output(e: QbatError) -> QbatError {
    match e {
        QbatError::Invalid { field, reason } if field == "DIR" => QbatError::Invalid { field: "--out".into(), reason },
        QbatError::TooLarge { field, reason } if field == "DIR" => QbatError::TooLarge { field: "--out".into(), reason },
        e => e,
    }
}

/// Whether a shard is one of the default study's, which asks for its analysis at its end
/// (`study_analysis` in its run.json): not one analysed afterwards by `analyze`, with pairs
/// of its own choosing. A shard written before run.json said so (the same version number):
/// its output lists analysis.csv, or says it was left out.
fn ran_analysis(s: &ShardDir) -> bool {
    match s.run.get("study_analysis").and_then(Value::as_bool) {
        Some(asked) => asked,
        None => {
            s.manifest.contains("analysis.csv")
                || s.run["notes"].as_array().into_iter().flatten().filter_map(Value::as_str).any(|n| n.starts_with(super::ANALYSIS_LEFT_OUT))
        }
    }
}

/// Err where the shards' statistics states would not fit in the memory left: the merged
/// state grows to the sum of theirs (`StatsAccumulator::bytes_of_state` of each
/// stats-state.bin) beside the largest, read and merged in. Under `ulimit -d 30000` a merge of
/// two 7 MB states aborted (exit 134).
fn check_states_fit(shards: &[ShardDir], cells: usize) -> Result<()> {
    use crate::config::available_memory::{available_memory_pool_only, size_need, size_text};
    let mut sizes = vec![];
    for s in shards {
        let p = s.dir.join("stats-state.bin");
        let bytes = std::fs::metadata(&p).map_err(|e| QbatError::io(&p, e))?.len();
        sizes.push(StatsAccumulator::bytes_of_state(bytes, cells));
    }
    let need = sizes.iter().sum::<f64>() + sizes.iter().copied().fold(0.0, f64::max);
    let avail = available_memory_pool_only();
    if need <= avail.bytes {
        return Ok(());
    }
    let raise = avail.limit.ulimit().map(|flag| format!(", or raise the limit ({flag})")).unwrap_or_default();
    Err(QbatError::TooLarge {
        field: "stats-state.bin".into(),
        reason: format!(
            "merging the statistics of {} shards needs about {}, more than the {} available{}; merge where more memory is available{raise}",
            shards.len(),
            size_need(need),
            size_text(avail.bytes),
            avail.under()
        ),
    })
}

/// Whether the paths `a` and `b` (both existing) reach one directory: its device and inode,
/// whatever names or mounts lead there (a bind mount gives it another canonical path).
fn same_dir(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        matches!((std::fs::metadata(a), std::fs::metadata(b)), (Ok(a), Ok(b)) if a.dev() == b.dev() && a.ino() == b.ino())
    }
    #[cfg(not(unix))]
    matches!((std::fs::canonicalize(a), std::fs::canonicalize(b)), (Ok(a), Ok(b)) if a == b)
}

/// Whether `out` (where it exists: a link followed) or else its folder lies inside `dir`, by any
/// names that lead there.
fn inside_dir(out: &Path, dir: &Path) -> bool {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Ok(at) = std::fs::canonicalize(out).or_else(|_| std::fs::canonicalize(parent)) else {
        return false;
    };
    at.ancestors().any(|a| same_dir(a, dir))
}

/// Merge shard outputs into `out` (which must not exist, or be empty, unless `force`).
pub fn merge(dirs: &[PathBuf], out: &Path, force: bool, plots: bool) -> Result<PathBuf> {
    // --force would replace a shard's files with the merge (by any name: a link, `a/../a`,
    // another mount of the same directory)
    if let Some(d) = dirs.iter().find(|d| same_dir(d, out)) {
        return Err(QbatError::invalid("--out", format!("{} is the input shard {}; choose another directory for the merge", out.display(), d.display())));
    }
    // (inside a shard, the merge would become part of that finished output, which its manifest
    // does not list: a `--force` run into the shard would leave it there, mixed with a new run)
    if let Some(d) = dirs.iter().find(|d| inside_dir(out, d)) {
        return Err(QbatError::invalid(
            "--out",
            format!("{} lies inside the input shard {}; choose a directory outside the shards", out.display(), d.display()),
        ));
    }
    // (Python's Ctrl-C: `cancel_writes`, from here on, also for the output)
    let cancel = WriteCancel::now();
    // Each shard read under its shared lock, from its manifest's check to the last copy: a
    // `--force` run or merge into a shard meanwhile waits, rather than the merge taking one
    // run's manifest and another's files. (Given back once they are read, before the plots,
    // the analysis and the commit.)
    let reading = dirs.iter().map(|d| crate::output::lock_dir_shared(d, cancel)).collect::<Result<Vec<_>>>()?;
    let shards = check_shards(dirs, cancel)?;
    let mut health = super::HealthCounts::default();
    for s in &shards {
        health.merge(&s.health);
    }
    // (the unsharded run's error, where it holds for the whole run: before any file is read)
    if health.ok == 0 {
        let (_, _, dt) = shard_warnings(&shards[0])?;
        return Err(health.all_unhealthy(dt));
    }
    OutputDir::check(out, force)?;
    let Stats { times, measures: names, .. } = crate::output::stats::read_stats(&shards[0].dir)?;
    check_states_fit(&shards, times.len() * names.len())?;
    let mut acc: Option<StatsAccumulator> = None;
    for s in &shards {
        cancel.check()?;
        let p = s.dir.join("stats-state.bin");
        // (a regular file only: a FIFO put there since the manifest's check would block)
        let (file, size) = crate::plain_file::open_regular(&p)?;
        let mut f = BufReader::new(file);
        let a =
            StatsAccumulator::read_from(&mut f, (times.len(), names.len()), size).map_err(|e| QbatError::invalid("DIR", format!("{}: {e}", p.display())))?;
        // no cell may count more members than the shard's healthy ones (as a resume checks)
        if a.cells.iter().any(|c| c.n > s.health.ok) {
            return Err(QbatError::invalid(p.display().to_string(), format!("a cell counts more than the shard's {} healthy members", s.health.ok)));
        }
        match acc.as_mut() {
            None => acc = Some(a),
            Some(m) => m.merge(&a)?,
        }
    }
    let acc = acc.expect("at least one shard");
    for n in &names {
        crate::measures::Measure::from_name(n)?;
    }
    let measures = names;
    let stats = Stats::from_accumulator(&acc, times, measures);
    // (its memory given back before the plots and the files' copies)
    drop(acc);
    let fp = shared_fingerprint(&shards[0]);
    let series = fp["series"].as_bool().unwrap_or(false);
    let format = if fp["format"] == json!("npy") { Format::Npy } else { Format::Csv };
    // (the shards' series axes checked before anything is written)
    let axes = match (series, format) {
        (true, Format::Npy) => {
            let ranges = shards.iter().map(|s| member_range(s).map(|r| (s.dir.as_path(), r))).collect::<Result<Vec<_>>>()?;
            super::merge_checks::merged_series_axes(&ranges)?
        }
        (true, Format::Csv) => {
            super::merge_checks::check_csv_headers(&shards.iter().map(|s| s.dir.as_path()).collect::<Vec<_>>())?;
            Value::Null
        }
        (false, _) => Value::Null,
    };
    let dir = OutputDir::begin_marked(out, force, cancel)?;
    let mut warnings: Vec<String> = vec![];
    // the notes the merge itself adds to run.json's, said on stderr too once it is committed,
    // as a run says its notes (run.json alone went unread)
    let mut said: Vec<String> = vec![];
    let result = (|| -> Result<()> {
        if series && format == Format::Csv {
            dir.write("series.csv", |w| {
                for (k, s) in shards.iter().enumerate() {
                    copy_skipping_header(&s.dir.join("series.csv"), w, k == 0)?;
                }
                Ok(())
            })?;
        }
        if series && format == Format::Npy {
            concat_npy(&dir, &shards, "series.npy")?;
            dir.write("series.json", |w| serde_json::to_writer_pretty(&mut *w, &axes).map_err(std::io::Error::other))?;
        }
        if !fp["states"].is_null() {
            merge_states(&dir, &shards)?;
        }
        if format == Format::Npy {
            concat_npy(&dir, &shards, "summary.npy")?;
            let p = shards[0].dir.join("summary.json");
            let meta = read_bounded(&p, SMALL_FILE_LIMIT)?;
            dir.write("summary.json", |w| w.write_all(&meta))?;
        }
        dir.write("summary.csv", |w| {
            for (k, s) in shards.iter().enumerate() {
                copy_skipping_header(&s.dir.join("summary.csv"), w, k == 0)?;
            }
            Ok(())
        })?;
        if let Some(d) = crate::faults::block_delay() {
            // (the tests stop a merge here, its output half-written)
            std::thread::sleep(d);
        }
        dir.write("stats.csv", |w| crate::output::stats::write_csv(&stats, w))?;
        let mut run = shards[0].run.clone();
        // check_counts: each shard's members and health counts add up to its member range, and
        // the ranges tile the run's members, so neither sum overflows
        run["members"] = json!(shards.iter().map(|s| s.run["members"].as_u64().unwrap_or(0)).sum::<u64>());
        // the whole run's member-steps (its rate, per process, is left out below)
        run["member_steps"] = json!(shards.iter().map(|s| s.run["member_steps"].as_f64()).sum::<Option<f64>>());
        run["shard"] = Value::Null;
        let mut notes;
        (notes, warnings) = merged_notes(&shards, &health, &mut run)?;
        let mut add_note = |note: String| {
            notes.push(note.clone());
            said.push(note);
        };
        run["health"] = json!(health);
        // verify over all shards: every member re-run, each measure's worst deviation at each
        // precision (shards may have run at different ones: each keeps its own tolerance), and
        // a pass only when every shard passed
        let verifies: Vec<(&Value, &Value)> = shards.iter().map(|s| (&s.run["verify"], &s.run["precision"])).filter(|(v, _)| v.is_object()).collect();
        if !verifies.is_empty() {
            let mut merged = super::merged_verify::merged_verify(&verifies);
            // shards that ran no --verify (0, or the reference backend): their members are not
            // in it, said rather than covered by the others' pass
            let unverified: Vec<usize> = shards.iter().filter(|s| !s.run["verify"].is_object()).map(|s| s.index).collect();
            if !unverified.is_empty() {
                merged["unverified_shards"] = json!(unverified);
                let list = unverified.iter().map(usize::to_string).collect::<Vec<_>>().join(", ");
                add_note(format!("verify covers only the shards that ran it: shard(s) {list} ran without --verify (0, or --backend reference), so their members were not checked"));
            }
            warnings.extend(super::merged_verify::merged_warning(&merged));
            run["verify"] = merged;
        }
        run["engines"] = super::merged_engines::merged_engines(shards.iter().map(|s| &s.run));
        // per-run figures of one shard would mislead at the top level: they are in merged_from
        for key in ["timings", "member_steps_per_second", "peak_rss_bytes", "blocks"] {
            run[key] = Value::Null;
        }
        // Shards may have run on different backends (a mixed cluster, or --on-device-loss cpu):
        // say so rather than report the first shard's.
        for key in ["backend", "device", "precision"] {
            let seen = super::merged_engines::distinct_parts(shards.iter().map(|s| &s.run[key]));
            if seen.len() > 1 {
                let list: Vec<String> = seen.iter().map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).collect();
                run[key] = json!(format!("mixed: {}", list.join(" | ")));
                add_note(format!("the shards' blocks ran with different {key}s ({}); see merged_from", list.join(", ")));
            }
        }
        run["merged_from"] = json!(shards
            .iter()
            .map(|s| json!({
                "dir": s.dir.display().to_string(),
                "shard": s.run["shard"]["index"],
                "members": s.run["shard"]["members"],
                "backend": s.run["backend"],
                "device": s.run["device"],
                "timings": s.run["timings"],
                "verify": s.run["verify"],
                "health": s.run["health"],
                "notes": s.run["notes"],
            }))
            .collect::<Vec<_>>());
        // The default study's analysis, where the shards ran it: of the whole run's series, as
        // the unsharded run computes it (each shard's covers its own members only), checked
        // against the memory left before run.json, which says where it is left out.
        let asked = shards.iter().any(ran_analysis);
        run["study_analysis"] = json!(asked);
        let (mut analyze, note) = match asked {
            true => super::plan_analysis(dir.staging(), None, series, plots, MemoryCheck::Before, out).map_err(of_output)?,
            false => Default::default(),
        };
        analyze.cancel = Some(dir.cancel());
        let analyzed = asked && note.is_none();
        if let Some(note) = note {
            add_note(note);
        }
        run["notes"] = json!(notes);
        dir.write("run.json", |w| serde_json::to_writer_pretty(&mut *w, &run).map_err(std::io::Error::other))?;
        // (the shards are read: the plots and the analysis read the merged files)
        drop(reading);
        plot_and_analyze(dir.staging(), plots, analyzed.then_some(&analyze))
    })();
    match result {
        Ok(()) => dir.commit().inspect(|d| {
            let _ = crate::output::manifest::Manifest::record_identities(d);
            for w in &warnings {
                eprintln!("WARNING: {w}");
            }
            for note in &said {
                crate::console::note(note);
            }
        }),
        Err(e) => {
            dir.abort();
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_of_the_merged_output_names_out() {
        // (an output without its series: the analysis refuses it)
        let staging = tempfile::tempdir().unwrap();
        let e = plot_and_analyze(staging.path(), false, Some(&Default::default())).unwrap_err();
        assert!(matches!(&e, QbatError::Invalid { field, .. } if field == "--out"), "{e}");
    }
}
