//! A resume reads and writes only the files qbat-gpu left in its staging directory: a block
//! file, statistics state, series or checkpoint that is a FIFO, a device or a link, and a
//! `blocks/` that is a link, are refused (exit 2, one line naming it) before any work; never
//! waited on, read without end, or written through into a file qbat-gpu did not write.

use crate::common::{bin, config, kill_after_blocks, outcome_within};
use crate::integrity::{copy_dir, BLOCH};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// A run of `cfg` (integrity.rs's six blocks of ten members) with `extra`, killed once two
/// blocks are checkpointed: its staging directory.
fn interrupted(dir: &Path, cfg: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let staging = dir.join(format!(".{name}.partial"));
    let mut child = bin()
        .arg("run")
        .arg(cfg)
        .args(["--backend", "cpu", "--no-progress", "--no-plots", "--block-members", "10", "--out"])
        .arg(&out)
        .args(extra)
        .env("QBAT_INJECT_FAULT", "slow-blocks=250")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    kill_after_blocks(&mut child, &staging, 2);
    staging
}

/// A fresh copy of the staging directory `from` as `DIR/case/.r.partial`: the case's
/// directory (its run's output is `case/r`).
fn case_of(dir: &Path, from: &Path, case: &str) -> PathBuf {
    let c = dir.join(case);
    copy_dir(from, &c.join(".r.partial"));
    c
}

/// `--resume` of the run in `case` (with `extra`), killed after 20 s (exit -1): (exit code,
/// stderr).
fn resume(cfg: &Path, case: &Path, extra: &[&str]) -> (i32, String) {
    let out = case.join("r");
    outcome_within(
        bin()
            .arg("run")
            .arg(cfg)
            .args(["--backend", "cpu", "--no-progress", "--no-plots", "--block-members", "10", "--out"])
            .arg(&out)
            .arg("--resume")
            .arg(&out)
            .args(extra),
        std::time::Duration::from_secs(20),
    )
}

/// What a refused resume must be: exit 2, one line naming `name`, no output; else why not.
fn refusal(got: (i32, String), name: &str, case: &Path) -> Option<String> {
    let (code, stderr) = got;
    let one_line = stderr.trim_end().lines().count() == 1;
    if code != 2 || !stderr.contains(name) || !one_line || stderr.contains("panicked") || case.join("r").exists() {
        let what = if code == -1 { "still running after 20 s".to_string() } else { format!("exit {code}") };
        return Some(format!("{}: {what}, output written: {}: {stderr}", case.display(), case.join("r").exists()));
    }
    None
}

/// Every file under `dir` (links not followed) with its bytes, for before and after.
pub(crate) fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v = vec![];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        match e.file_type().unwrap().is_dir() {
            true => v.extend(snapshot(&e.path())),
            false => v.push((e.path(), std::fs::read(e.path()).unwrap_or_default())),
        }
    }
    v.sort();
    v
}

fn fifo(p: &Path) {
    std::fs::remove_file(p).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(p).status().unwrap().success());
}

fn link_to(p: &Path, target: &Path) {
    std::fs::remove_file(p).unwrap();
    std::os::unix::fs::symlink(target, p).unwrap();
}

/// The statistics state a staging directory's checkpoint names (a run without a series).
fn stats_state(staging: &Path) -> String {
    let ck: serde_json::Value = serde_json::from_slice(&std::fs::read(staging.join("checkpoint.json")).unwrap()).unwrap();
    format!("stats-state-{}.bin", ck["progress"]["generation"].as_u64().unwrap())
}

/// A finished block's summary, states or statistics state that is a FIFO or a link to
/// /dev/zero is refused at once: the resume neither waits on the FIFO nor hashes the device
/// without end.
#[test]
fn special_files_in_the_staging_directory_are_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    let with_states = interrupted(dir.path(), &cfg, "s", &["--save-states"]);
    let no_series = interrupted(dir.path(), &cfg, "n", &["--series", "false"]);
    let state = stats_state(&no_series);
    let cases: [(&Path, &[&str], String, fn(&Path)); 6] = [
        (with_states.as_path(), &["--save-states"], "blocks/000000.summary".into(), fifo),
        (with_states.as_path(), &["--save-states"], "blocks/000000.summary".into(), |p| link_to(p, Path::new("/dev/zero"))),
        (with_states.as_path(), &["--save-states"], "blocks/000000.states".into(), fifo),
        (with_states.as_path(), &["--save-states"], "blocks/000001.states".into(), |p| link_to(p, Path::new("/dev/zero"))),
        (no_series.as_path(), &["--series", "false"], state.clone(), fifo),
        (no_series.as_path(), &["--series", "false"], state, |p| link_to(p, Path::new("/dev/zero"))),
    ];
    let mut failed = vec![];
    for (k, (from, extra, rel, damage)) in cases.into_iter().enumerate() {
        let case = case_of(dir.path(), from, &format!("special{k}"));
        damage(&case.join(".r.partial").join(&rel));
        let name = Path::new(&rel).file_name().unwrap().to_string_lossy().to_string();
        failed.extend(refusal(resume(&cfg, &case, extra), &name, &case).map(|why| format!("{rel}: {why}")));
    }
    assert!(failed.is_empty(), "not refused:\n{}", failed.join("\n"));
}

/// A `blocks/` that is a link to a folder elsewhere, and a series, block file, checkpoint or
/// statistics state that is a link to a copy elsewhere, are refused: the resume writes into
/// none of them, nor commits a link, and the undamaged run still resumes.
#[test]
fn links_in_the_staging_directory_are_refused_not_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    let staging = interrupted(dir.path(), &cfg, "s", &[]);
    let no_series = interrupted(dir.path(), &cfg, "n", &["--series", "false"]);
    let mut failed = vec![];
    // blocks/ itself: a user's folder holding a copy of the blocks, a file of the name an
    // unfinished block's summary takes, and a file of their own
    let case = case_of(dir.path(), &staging, "blocks-link");
    let users = dir.path().join("users-folder");
    std::fs::rename(case.join(".r.partial").join("blocks"), &users).unwrap();
    std::fs::write(users.join("000003.summary"), "USER FILE\n").unwrap();
    std::fs::write(users.join("notes.txt"), "keep\n").unwrap();
    std::os::unix::fs::symlink(&users, case.join(".r.partial").join("blocks")).unwrap();
    let before = snapshot(&users);
    failed.extend(refusal(resume(&cfg, &case, &[]), "blocks", &case).map(|why| format!("blocks/: {why}")));
    if snapshot(&users) != before {
        failed.push(format!("blocks/: {} changed", users.display()));
    }
    // a file of the staging directory, a link to a copy of it elsewhere
    let cases: [(&Path, &[&str], String); 4] = [
        (staging.as_path(), &[], "blocks/series.npy".into()),
        (staging.as_path(), &[], "blocks/000001.summary".into()),
        (staging.as_path(), &[], "checkpoint.json".into()),
        (no_series.as_path(), &["--series", "false"], stats_state(&no_series)),
    ];
    for (k, (from, extra, rel)) in cases.into_iter().enumerate() {
        let case = case_of(dir.path(), from, &format!("link{k}"));
        let file = case.join(".r.partial").join(&rel);
        let elsewhere = dir.path().join(format!("elsewhere{k}"));
        std::fs::copy(&file, &elsewhere).unwrap();
        let before = std::fs::read(&elsewhere).unwrap();
        link_to(&file, &elsewhere);
        let name = Path::new(&rel).file_name().unwrap().to_string_lossy().to_string();
        failed.extend(refusal(resume(&cfg, &case, extra), &name, &case).map(|why| format!("{rel}: {why}")));
        if std::fs::read(&elsewhere).unwrap() != before {
            failed.push(format!("{rel}: the link's target {} was written", elsewhere.display()));
        }
    }
    assert!(failed.is_empty(), "not refused:\n{}", failed.join("\n"));
    // the undamaged staging directories resume, and their outputs hold no link
    for (k, (from, extra)) in [(&staging, &[][..]), (&no_series, &["--series", "false"][..])].into_iter().enumerate() {
        let case = case_of(dir.path(), from, &format!("whole{k}"));
        let (code, stderr) = resume(&cfg, &case, extra);
        assert_eq!(code, 0, "{stderr}");
        let links: Vec<_> = std::fs::read_dir(case.join("r")).unwrap().flatten().filter(|e| !e.file_type().unwrap().is_file()).map(|e| e.path()).collect();
        assert!(links.is_empty(), "{links:?}");
    }
}

/// A run stopped right after its commit, before its staging directory is removed: the output is
/// complete, and the staging directory says so. A resume is refused as finished (exit 2, one
/// line), never called damaged nor run again, and the leftover goes, unless it holds a file
/// qbat-gpu did not write or the output was moved away; a rerun with --force removes it without
/// calling it an interrupted run.
#[test]
fn a_run_stopped_after_its_commit_is_finished_not_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    let out = dir.path().join("r");
    let staging = dir.path().join(".r.partial");
    let run = |extra: &[&str], fault: Option<&str>| {
        let mut c = bin();
        c.arg("run")
            .arg(&cfg)
            .args(["--backend", "cpu", "--no-progress", "--no-plots", "--format", "npy", "--block-members", "10", "--out"])
            .arg(&out)
            .args(extra);
        if let Some(f) = fault {
            c.env("QBAT_INJECT_FAULT", f);
        }
        outcome_within(&mut c, std::time::Duration::from_secs(60))
    };
    let (code, stderr) = run(&[], Some("exit-after-commit"));
    assert_eq!(code, 137, "{stderr}");
    assert!(staging.join("checkpoint.json").exists() && out.join(".qbat-manifest.json").exists());
    let committed = std::fs::read(out.join("series.npy")).unwrap();
    // a file the user put there is not removed with the leftover
    std::fs::write(staging.join("notes.txt"), b"mine").unwrap();
    let (code, stderr) = run(&["--resume", out.to_str().unwrap()], None);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("notes.txt") && stderr.contains("did not write"), "{stderr}");
    assert_eq!(std::fs::read(staging.join("notes.txt")).unwrap(), b"mine");
    std::fs::remove_file(staging.join("notes.txt")).unwrap();
    // an output moved away since: the leftover is kept (it may hold the series)
    std::fs::rename(&out, dir.path().join("moved")).unwrap();
    let (code, stderr) = run(&["--resume", out.to_str().unwrap()], None);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no longer there"), "{stderr}");
    assert!(staging.join("checkpoint.json").exists());
    std::fs::rename(dir.path().join("moved"), &out).unwrap();
    let (code, stderr) = run(&["--resume", out.to_str().unwrap()], None);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--resume") && stderr.contains("finished already") && !stderr.contains("damaged"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(!staging.exists(), "the leftover staging directory stays");
    assert_eq!(std::fs::read(out.join("series.npy")).unwrap(), committed);
    // the same state again, then a rerun over it
    let (code, stderr) = run(&["--force"], Some("exit-after-commit"));
    assert_eq!(code, 137, "{stderr}");
    let (code, stderr) = run(&["--force"], None);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("interrupted run"), "{stderr}");
    assert!(!staging.exists());
    assert_eq!(std::fs::read(out.join("series.npy")).unwrap(), committed);
}

/// A staging directory holds only what qbat-gpu writes there; a file, folder or link someone
/// else put in it is never removed: `--force` over an interrupted run, a rerun over a finished
/// run's leftover (with or without `--force`), and the run's own removal after its commit each
/// leave the directory whole and name the file (exit 2, one line; a note after a commit).
#[test]
fn force_discards_only_what_qbat_gpu_wrote_in_its_staging_directory() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    let first = interrupted(dir.path(), &cfg, "first", &[]);
    let run = |case: &Path, extra: &[&str], fault: Option<&str>| {
        let mut c = bin();
        c.arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--no-plots", "--block-members", "10", "--out"]).arg(case.join("r")).args(extra);
        if let Some(f) = fault {
            c.env("QBAT_INJECT_FAULT", f);
        }
        outcome_within(&mut c, std::time::Duration::from_secs(60))
    };
    // (a name of qbat-gpu's own in the wrong folder is someone else's too)
    for (i, put) in ["notes.txt", "blocks/thesis.tex", "blocks/checkpoint.json", "final/notes.txt", "mine/notes.txt", ".hidden"].iter().enumerate() {
        let case = case_of(dir.path(), &first, &format!("force-{i}"));
        let staging = case.join(".r.partial");
        let path = staging.join(put);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"mine").unwrap();
        let before = listing(&staging);
        let (code, stderr) = run(&case, &["--force"], None);
        assert_eq!(code, 2, "{put}: {stderr}");
        let named = if put.starts_with("mine/") { staging.join("mine") } else { path.clone() };
        assert!(stderr.contains(&named.display().to_string()) && stderr.contains("did not write"), "{put}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{put}: {stderr}");
        assert_eq!(std::fs::read(&path).unwrap(), b"mine", "{put}");
        assert_eq!(listing(&staging), before, "{put}: the staging directory changed");
        assert!(!case.join("r").exists(), "{put}");
        // moved away, the run starts over
        std::fs::remove_file(&path).unwrap();
        if put.starts_with("mine/") {
            std::fs::remove_dir(staging.join("mine")).unwrap();
        }
        let (code, stderr) = run(&case, &["--force"], None);
        assert_eq!(code, 0, "{put}: {stderr}");
        assert!(!staging.exists(), "{put}");
    }
    // a finish cut short leaves `final/`: a resume makes it anew, unless it holds another's file
    let case = case_of(dir.path(), &first, "resume-final");
    std::fs::create_dir(case.join(".r.partial/final")).unwrap();
    std::fs::write(case.join(".r.partial/final/run.json"), b"{}").unwrap();
    std::fs::write(case.join(".r.partial/final/notes.txt"), b"mine").unwrap();
    if let Some(why) = refusal(resume(&cfg, &case, &[]), "notes.txt", &case) {
        panic!("{why}");
    }
    assert_eq!(std::fs::read(case.join(".r.partial/final/notes.txt")).unwrap(), b"mine");
    std::fs::remove_file(case.join(".r.partial/final/notes.txt")).unwrap();
    let (code, stderr) = resume(&cfg, &case, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!case.join(".r.partial").exists());
    // a removal cut short by a kill (`.r.partial.gone-PID`, renamed out of the way first) goes
    // with the next run into the output, unless it holds another's file
    let case = case_of(dir.path(), &first, "gone");
    copy_dir(&first, &case.join(".r.partial.gone-4000001"));
    copy_dir(&first, &case.join(".r.partial.gone-4000002"));
    std::fs::write(case.join(".r.partial.gone-4000002/blocks/notes.txt"), b"mine").unwrap();
    let (code, stderr) = run(&case, &["--force"], None);
    assert_eq!(code, 0, "{stderr}");
    assert!(!case.join(".r.partial.gone-4000001").exists(), "a cut-short removal's leftover stays");
    assert_eq!(std::fs::read(case.join(".r.partial.gone-4000002/blocks/notes.txt")).unwrap(), b"mine");
    // a link: refused, and what it leads to untouched
    let case = case_of(dir.path(), &first, "force-link");
    let target = dir.path().join("kept");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("data"), b"mine").unwrap();
    std::os::unix::fs::symlink(&target, case.join(".r.partial/final")).unwrap();
    let (code, stderr) = run(&case, &["--force"], None);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("final") && stderr.contains("did not write"), "{stderr}");
    assert_eq!(std::fs::read(target.join("data")).unwrap(), b"mine");
    // a finished run's leftover: refused by a resume and by a rerun with --force
    let case = dir.path().join("finished");
    std::fs::create_dir(&case).unwrap();
    let (code, stderr) = run(&case, &[], Some("exit-after-commit"));
    assert_eq!(code, 137, "{stderr}");
    let notes = case.join(".r.partial/blocks/notes.txt");
    std::fs::write(&notes, b"mine").unwrap();
    let resume = ["--resume".to_string(), case.join("r").display().to_string()];
    for extra in [&[resume[0].as_str(), resume[1].as_str()][..], &["--force"][..]] {
        let (code, stderr) = run(&case, extra, None);
        assert_eq!(code, 2, "{extra:?}: {stderr}");
        assert!(stderr.contains("notes.txt") && stderr.contains("did not write"), "{extra:?}: {stderr}");
        assert_eq!(std::fs::read(&notes).unwrap(), b"mine");
    }
    // a file put there while the run goes: the run commits, says it keeps the directory
    let case = dir.path().join("during");
    std::fs::create_dir(&case).unwrap();
    let staging = case.join(".r.partial");
    let child = bin()
        .arg("run")
        .arg(&cfg)
        .args(["--backend", "cpu", "--no-progress", "--no-plots", "--block-members", "10", "--out"])
        .arg(case.join("r"))
        .env("QBAT_INJECT_FAULT", "slow-blocks=250")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while !staging.join("blocks").is_dir() {
        assert!(t0.elapsed().as_secs() < 60, "no staging directory appeared");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::fs::write(staging.join("blocks/notes.txt"), b"mine").unwrap();
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("staging directory stays") && stderr.contains("notes.txt"), "{stderr}");
    assert!(case.join("r/run.json").is_file());
    assert_eq!(std::fs::read(staging.join("blocks/notes.txt")).unwrap(), b"mine");
}

/// Every path under `dir`, relative, with each file's bytes.
fn listing(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut all = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let bytes = if p.is_dir() {
                stack.push(p.clone());
                vec![]
            } else {
                std::fs::read(&p).unwrap_or_default()
            };
            all.push((p.strip_prefix(dir).unwrap().to_path_buf(), bytes));
        }
    }
    all.sort();
    all
}

/// The default study's analysis is added to the assembled output in `final/.qbat-added-PID-N/`:
/// a run killed while it commits those files leaves that folder, which a resume and a rerun
/// with --force take for qbat-gpu's own (they refused it as another's file).
#[test]
fn an_analysis_cut_short_in_the_assembled_output_is_qbat_gpus_own() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let run = |extra: &[&str], fault: Option<&str>| {
        let mut c = bin();
        c.args(["--backend", "cpu", "--no-progress", "--no-plots", "--ensemble", "40", "--out"]).arg(&out).args(extra);
        if let Some(f) = fault {
            c.env("QBAT_INJECT_FAULT", f);
        }
        outcome_within(&mut c, std::time::Duration::from_secs(120))
    };
    for again in [&["--resume", out.to_str().unwrap()][..], &["--force"][..]] {
        let (code, stderr) = run(&["--force"], Some("exit-mid-added=0"));
        assert_eq!(code, 137, "{stderr}");
        let added: Vec<_> = std::fs::read_dir(dir.path().join(".r.partial/final"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".qbat-added-"))
            .collect();
        assert_eq!(added.len(), 1, "the kill left no analysis being added");
        let (code, stderr) = run(again, None);
        assert_eq!(code, 0, "{again:?}: {stderr}");
        assert!(out.join("analysis.csv").is_file() && !dir.path().join(".r.partial").exists(), "{again:?}");
    }
}
