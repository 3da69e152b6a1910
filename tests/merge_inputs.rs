//! `merge` reads only what each shard's manifest lists, bounds what a shard's run.json claims,
//! and never writes over one of its inputs.

use crate::common::{bin, config, ok, outcome_within, reseal};
use crate::integrity::{copy_dir, BLOCH};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// integrity.rs's sweep, in 21 members of 21 samples (seven a point and shard).
fn bloch() -> String {
    BLOCH.replace("samples = 6", "samples = 21").replace("size = 60", "size = 21")
}

/// The three shards of one run in `dir`, with the `run` options `extra`.
fn shards(dir: &Path, tag: &str, extra: &[&str]) -> Vec<PathBuf> {
    shards_with_faults(dir, tag, extra, |_| None)
}

/// `shards`, shard k run with the injected fault `fault(k)` (members 0-6, 7-13 and 14-20).
fn shards_with_faults(dir: &Path, tag: &str, extra: &[&str], fault: impl Fn(usize) -> Option<&'static str>) -> Vec<PathBuf> {
    shards_of(dir, tag, &bloch(), extra, fault)
}

/// `shards_with_faults` of the config `text`.
fn shards_of(dir: &Path, tag: &str, text: &str, extra: &[&str], fault: impl Fn(usize) -> Option<&'static str>) -> Vec<PathBuf> {
    let cfg = config(dir, text);
    (0..3)
        .map(|k| {
            let out = dir.join(format!("{tag}{k}"));
            let shard = format!("{k}/3");
            let mut run = bin();
            run.arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--no-plots", "--shard", &shard, "--out"]).arg(&out).args(extra);
            if let Some(f) = fault(k) {
                run.env("QBAT_INJECT_FAULT", f);
            }
            ok(&mut run);
            out
        })
        .collect()
}

/// (exit code, stderr) of `merge DIRS --out OUT --no-plots`, killed after 60 s (exit -1).
fn merge(dirs: &[PathBuf], out: &Path, extra: &[&str]) -> (i32, String) {
    outcome_within(bin().arg("merge").args(dirs).arg("--out").arg(out).arg("--no-plots").args(extra), std::time::Duration::from_secs(60))
}

/// A refusal: exit 2, one line naming `name`, and no output.
fn assert_refused(got: (i32, String), name: &str, out: &Path, case: &str) {
    let (code, stderr) = got;
    assert_eq!(code, 2, "{case}: exit {code}: {stderr}");
    assert!(stderr.contains(name) && stderr.trim_end().lines().count() == 1, "{case}: one line naming {name}: {stderr}");
    assert!(!stderr.contains("panicked"), "{case}: {stderr}");
    assert!(!out.exists(), "{case}: an output was written");
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join(".qbat-manifest.json")).unwrap()).unwrap()
}

/// Drop `name` from the shard's manifest (the manifest stays valid JSON).
fn unlist(dir: &Path, name: &str) {
    let mut m = manifest(dir);
    m["files"].as_array_mut().unwrap().retain(|f| f["name"] != json!(name));
    std::fs::write(dir.join(".qbat-manifest.json"), serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

/// Edit the shard's run.json with `edit`, and forge its manifest entry to match (size and
/// BLAKE3 redone), as someone who means it would.
fn forge_run_json(dir: &Path, edit: impl Fn(&mut Value)) {
    let p = dir.join("run.json");
    let mut run: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    edit(&mut run);
    reseal(dir, "run.json", &serde_json::to_vec_pretty(&run).unwrap());
}

/// A shard's stats-state.bin replaced by another's, which counts more members than the shard
/// has healthy ones (its manifest sealed again): refused, naming the file, as a resume
/// refuses its own (it was merged, and stats.csv counted a member twice).
#[test]
fn a_statistics_state_counting_more_than_its_shards_members_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = shards_with_faults(dir.path(), "c", &[], |k| (k == 1).then_some("nan-member=8"));
    let other = std::fs::read(s[0].join("stats-state.bin")).unwrap();
    reseal(&s[1], "stats-state.bin", &other);
    let out = dir.path().join("m");
    assert_refused(merge(&s, &out, &[]), "stats-state.bin: a cell counts more than the shard's 6 healthy members", &out, "another shard's state");
}

/// Edit `name` as an unlisted file could carry into the merged output: the series' last value
/// NaN, or a summary row flagged `nonfinite`.
fn poison(dir: &Path, name: &str) {
    let p = dir.join(name);
    if name == "series.npy" {
        let mut b = std::fs::read(&p).unwrap();
        let n = b.len();
        b[n - 8..].copy_from_slice(&f64::NAN.to_le_bytes());
        std::fs::write(&p, b).unwrap();
    } else {
        let t = std::fs::read_to_string(&p).unwrap();
        assert!(t.contains(",ok\n"), "{t}");
        std::fs::write(&p, t.replacen(",ok\n", ",nonfinite\n", 1)).unwrap();
    }
}

#[test]
fn merge_reads_only_the_files_a_shard_lists() {
    let dir = tempfile::tempdir().unwrap();
    let s = shards(dir.path(), "s", &["--format", "npy"]);
    ok(bin().arg("merge").args(&s).arg("--out").arg(dir.path().join("good")).arg("--no-plots"));
    // files edited after they were taken out of the manifest
    for (k, unlisted) in [vec!["series.npy", "summary.csv"], vec!["series.npy"], vec!["summary.csv"]].into_iter().enumerate() {
        let case = dir.path().join(format!("unlisted-{k}"));
        copy_dir(&s[1], &case);
        for name in &unlisted {
            unlist(&case, name);
            poison(&case, name);
        }
        let out = dir.path().join(format!("m-unlisted-{k}"));
        let got = merge(&[s[0].clone(), case.clone(), s[2].clone()], &out, &[]);
        let named = if got.1.contains("series.npy") { "series.npy" } else { "summary.csv" };
        assert!(unlisted.contains(&named), "{unlisted:?}: {}", got.1);
        assert_refused(got, named, &out, &format!("{unlisted:?} unlisted"));
    }
    // files removed with their manifest entries
    for name in ["series.npy", "series.json", "summary.csv", "summary.npy", "stats-state.bin", "stats.csv"] {
        let case = dir.path().join(format!("removed-{name}"));
        copy_dir(&s[1], &case);
        unlist(&case, name);
        std::fs::remove_file(case.join(name)).unwrap();
        let out = dir.path().join(format!("m-removed-{name}"));
        assert_refused(merge(&[s[0].clone(), case, s[2].clone()], &out, &[]), name, &out, &format!("{name} removed"));
    }
    // shards that all ran without a series merge, without one
    for format in ["csv", "npy"] {
        let s = shards(dir.path(), &format!("bare-{format}-"), &["--format", format, "--series", "false"]);
        let out = dir.path().join(format!("m-bare-{format}"));
        ok(bin().arg("merge").args(&s).arg("--out").arg(&out).arg("--no-plots"));
        assert!(!out.join("series.csv").exists() && !out.join("series.npy").exists());
        assert!(out.join("summary.csv").is_file() && out.join("stats.csv").is_file());
    }
}

#[test]
fn a_shard_count_or_health_a_run_json_cannot_hold_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = shards(dir.path(), "s", &[]);
    let copies = |tag: &str| -> Vec<PathBuf> {
        s.iter()
            .enumerate()
            .map(|(k, d)| {
                let c = dir.path().join(format!("{tag}-{k}"));
                copy_dir(d, &c);
                c
            })
            .collect()
    };
    let huge = 1_000_000_000_000_000_000u64;
    // a count over the run's members, in every shard
    let c = copies("count");
    for d in &c {
        forge_run_json(d, |r| r["shard"]["count"] = json!(huge));
    }
    let out = dir.path().join("m-count");
    let t0 = std::time::Instant::now();
    assert_refused(merge(&c, &out, &[]), "run.json", &out, "shard.count 1e18");
    assert!(t0.elapsed().as_secs() < 30);
    // one shard of a run that claims as many members: the missing ones listed, a few of them
    let c = copies("members");
    forge_run_json(&c[1], |r| {
        r["shard"]["count"] = json!(huge);
        r["shard"]["fingerprint"]["members"] = json!(huge);
    });
    let out = dir.path().join("m-members");
    let (code, stderr) = merge(&c[1..2], &out, &[]);
    assert!(stderr.contains("missing") && stderr.len() < 400, "{stderr}");
    assert_refused((code, stderr), "shard", &out, "one shard of 1e18");
    // health counts that overflow when summed, or do not add up to the shard's members
    let c = copies("overflow");
    for d in &c {
        forge_run_json(d, |r| {
            r["health"]["ok"] = json!(u64::MAX);
            r["health"]["trace"] = json!(1);
        });
    }
    let out = dir.path().join("m-overflow");
    assert_refused(merge(&c, &out, &[]), "run.json", &out, "health.ok = u64::MAX");
    let c = copies("short");
    forge_run_json(&c[2], |r| r["health"]["ok"] = json!(r["health"]["ok"].as_u64().unwrap() - 1));
    let out = dir.path().join("m-short");
    assert_refused(merge(&c, &out, &[]), "run.json", &out, "health one member short");
    // run.json `members` that is not its member range
    let c = copies("run-members");
    forge_run_json(&c[0], |r| r["members"] = json!(u64::MAX));
    let out = dir.path().join("m-run-members");
    assert_refused(merge(&c, &out, &[]), "run.json", &out, "members = u64::MAX");
}

#[test]
fn out_naming_an_input_shard_or_a_folder_inside_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = shards(dir.path(), "s", &["--format", "npy"]);
    // (a folder's bytes: its names)
    let snapshot = |d: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        let bytes = |p: &Path| match p.is_dir() {
            true => crate::common::listing(p).join("\n").into_bytes(),
            false => std::fs::read(p).unwrap(),
        };
        let mut v: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(d).unwrap().flatten().map(|e| (e.path(), bytes(&e.path()))).collect();
        v.sort();
        v
    };
    // (an --out that is itself a link to a folder inside a shard)
    std::fs::create_dir(s[2].join("m")).unwrap();
    let link_in = dir.path().join("link-into-s2");
    std::os::unix::fs::symlink(s[2].join("m"), &link_in).unwrap();
    let before: Vec<_> = s.iter().map(|d| snapshot(d)).collect();
    let link = dir.path().join("link-to-s1");
    std::os::unix::fs::symlink(&s[1], &link).unwrap();
    // (an --out inside a shard, by its name or a link's, made the merge part of that shard)
    for out in [
        s[0].clone(),
        s[2].join("..").join("s2"),
        dir.path().join(".").join("s1").join("."),
        link.clone(),
        s[0].join("m"),
        link.join("m"),
        link_in.clone(),
        link_in.join("."),
    ] {
        let (code, stderr) = merge(&s, &out, &["--force"]);
        assert_eq!(code, 2, "--out {}: exit {code}: {stderr}", out.display());
        assert!(stderr.contains("--out") && stderr.trim_end().lines().count() == 1, "{stderr}");
        for (d, b) in s.iter().zip(&before) {
            assert!(snapshot(d) == *b, "--out {}: {} changed", out.display(), d.display());
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().contains(".partial")).count(), 0);
    }
    // the shards still merge, elsewhere
    ok(bin().arg("merge").args(&s).arg("--out").arg(dir.path().join("m")).arg("--no-plots"));
    // a second mount of a shard (a bind mount: another canonical path to the same directory),
    // in a mount namespace of its own where `unshare` may make one
    let mount = dir.path().join("mount");
    std::fs::create_dir(&mount).unwrap();
    if !std::process::Command::new("unshare").args(["-rm", "true"]).status().is_ok_and(|s| s.success()) {
        eprintln!("note: no unprivileged mount namespace here (unshare -rm); the bind-mount case was not tried");
        return;
    }
    let script = r#"mount --bind "$1" "$2" && shift 2 && exec "$@""#;
    let o = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", script, "sh"])
        .arg(&s[0])
        .arg(&mount)
        .arg(env!("CARGO_BIN_EXE_qbat-gpu"))
        .arg("merge")
        .args(&s)
        .arg("--out")
        .arg(&mount)
        .args(["--no-plots", "--force"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "--out a bind mount of s0: {stderr}");
    assert!(stderr.contains("is the input shard") && stderr.trim_end().lines().count() == 1, "{stderr}");
    for (d, b) in s.iter().zip(&before) {
        assert!(snapshot(d) == *b, "--out a bind mount of s0: {} changed", d.display());
    }
}

/// A shard whose --verify met a NaN (an infinite deviation, written null) fails that measure
/// in the merged report too: the null is not dropped for the other shards' finite deviations.
#[test]
fn an_infinite_verify_deviation_fails_the_merge_too() {
    let dir = tempfile::tempdir().unwrap();
    let dirs = shards_with_faults(dir.path(), "v", &["--verify", "21"], |_| Some("nan-member=0"));
    let merged = dir.path().join("merged");
    let (code, stderr) = merge(&dirs, &merged, &[]);
    assert_eq!(code, 0, "{stderr}");
    let run: Value = serde_json::from_slice(&std::fs::read(merged.join("run.json")).unwrap()).unwrap();
    let failed: Vec<&Value> = run["verify"]["deviations"].as_array().unwrap().iter().filter(|d| d["pass"] == json!(false)).collect();
    assert!(!failed.is_empty() && failed.iter().all(|d| d["max_abs"].is_null()), "{}", run["verify"]);
    assert_eq!(run["verify"]["pass"], json!(false));
}

/// The warnings about a run's own members are the whole run's after a merge: each shard
/// warns of its one unstable member, the merge of both, and no shard's own count is kept.
#[test]
fn the_merged_health_warning_counts_every_shard() {
    let dir = tempfile::tempdir().unwrap();
    let s = shards_with_faults(dir.path(), "h", &[], |k| match k {
        0 => Some("nan-member=2"),
        2 => Some("nan-member=19"),
        _ => None,
    });
    let out = dir.path().join("m");
    let (code, stderr) = merge(&s, &out, &[]);
    assert_eq!(code, 0, "{stderr}");
    let run: Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["health"]["flagged_ids"], json!([2, 19]));
    let notes: Vec<&str> = run["notes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    let health: Vec<&&str> = notes.iter().filter(|n| n.contains("flagged unhealthy")).collect();
    assert_eq!(health.len(), 1, "{notes:?}");
    assert!(
        health[0].starts_with("2 member(s) flagged unhealthy") && health[0].contains("(2 non-finite") && health[0].contains("first ids: 2, 19"),
        "{notes:?}"
    );
    assert!(stderr.contains(&format!("WARNING: {}", health[0])), "{stderr}");
}

/// `merge --out .` in an empty working directory: the staging directory is made inside it,
/// and is not taken for another run's files at the commit.
#[test]
fn merge_into_the_empty_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let s = shards(dir.path(), "s", &[]);
    let here = dir.path().join("here");
    std::fs::create_dir(&here).unwrap();
    ok(bin().current_dir(&here).arg("merge").args(&s).args(["--out", ".", "--no-plots"]));
    let mut names: Vec<String> = std::fs::read_dir(&here).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    names.sort();
    assert!(names.iter().all(|n| !n.contains("partial")) && names.contains(&"run.json".to_string()), "{names:?}");
    assert!(manifest(&here)["files"].as_array().unwrap().len() + 1 == names.len(), "{names:?}");
}

/// A FIFO in place of a listed shard file is named for what it is (it was called missing),
/// before anything opens it: exit 2, one line, no output.
#[cfg(unix)]
#[test]
fn a_fifo_in_place_of_a_listed_file_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let s = shards(dir.path(), "f", &[]);
    let state = s[1].join("stats-state.bin");
    std::fs::remove_file(&state).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(&state).status().unwrap().success());
    let out = dir.path().join("m");
    assert_refused(merge(&s, &out, &[]), "stats-state.bin: listed in the manifest, but is not a regular file", &out, "a FIFO");
}

/// A shard analysed afterwards (`analyze --pairs`, which lists analysis.csv in its manifest):
/// the merge is as without it, with no analysis of its own (it ran the default study's
/// analysis, and failed on pairs the series does not have, naming an option merge has not).
#[test]
fn a_shard_analysed_afterwards_merges_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let s = shards(dir.path(), "a", &[]);
    ok(bin().arg("analyze").arg(&s[0]).args(["--pairs", "energy_b:ergotropy_b", "--no-plots"]));
    assert!(manifest(&s[0])["files"].as_array().unwrap().iter().any(|f| f["name"] == json!("analysis.csv")));
    let out = dir.path().join("m");
    let (code, stderr) = merge(&s, &out, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!out.join("analysis.csv").exists(), "the merge analysed a run that did not ask for it");
}

/// Replace the files of `dir` by those of `from`, as a commit into it does (the lock held by
/// the caller): `dir`'s files go, `from`'s are copied in.
fn commit_files_of(from: &Path, dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        std::fs::remove_file(e.path()).unwrap();
    }
    copy_dir(from, dir);
}

/// The lines `child` writes on stderr, as they come.
fn stderr_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(|l| l.ok()) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// A merge reads each shard under the shard's shared lock. While another process commits
/// into a shard (its lock held here, as a `--force` run's commit holds it), the merge says in
/// one line what it waits for and reads nothing; then it reads the shard as the commit left it:
/// another run's shard, refused as such, or the same run's, merged to the clean merge's bytes.
/// (Unlocked, a merge checked one run's manifest and copied another run's series and summary
/// beside the first's run.json, and said nothing.)
#[test]
fn a_merge_waits_for_a_commit_into_a_shard_and_reads_it_whole() {
    let dir = tempfile::tempdir().unwrap();
    let s = shards(dir.path(), "s", &[]);
    let other = shards(dir.path(), "t", &["--seed", "4"]);
    let kept = dir.path().join("kept0");
    copy_dir(&s[0], &kept);
    let clean = dir.path().join("clean");
    assert_eq!(merge(&s, &clean, &[]).0, 0);
    for (case, replacement) in [("another run's shard", &other[0]), ("the same run's shard", &kept)] {
        let out = dir.path().join("merged");
        let held = std::fs::File::open(&s[0]).unwrap();
        held.lock().unwrap();
        let mut child = bin()
            .arg("merge")
            .args(&s)
            .arg("--out")
            .arg(&out)
            .arg("--no-plots")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let lines = stderr_lines(&mut child);
        let said = lines.recv_timeout(std::time::Duration::from_secs(60)).unwrap_or_else(|_| panic!("{case}: the merge said nothing"));
        assert!(said.contains("waiting for another commit into") && said.contains(&*s[0].to_string_lossy()), "{case}: {said}");
        assert!(child.try_wait().unwrap().is_none(), "{case}: the merge did not wait");
        commit_files_of(replacement, &s[0]);
        drop(held);
        let status = crate::common::wait_within(&mut child, std::time::Duration::from_secs(60)).expect("the merge never ended");
        let rest: Vec<String> = lines.iter().collect();
        if replacement == &other[0] {
            assert_eq!(status.code(), Some(2), "{case}: {rest:?}");
            assert!(rest.len() == 1 && rest[0].contains("seed") && !out.exists(), "{case}: {rest:?}");
        } else {
            assert!(status.success(), "{case}: {rest:?}");
            for name in ["series.csv", "summary.csv", "stats.csv"] {
                assert_eq!(std::fs::read(out.join(name)).unwrap(), std::fs::read(clean.join(name)).unwrap(), "{case}: {name}");
            }
        }
    }
}

/// Python's copy of an opened output (`Result.save`) reads it under its shared lock: a commit
/// into it (the lock held here) is waited for, and the copy is the whole output as the commit
/// left it, never one run's manifest with another's files; where the copy is of the run a
/// Result was opened from (its manifest entries given), another run found there once the
/// wait is over is refused, naming the directory, and nothing is written.
#[test]
fn a_copy_of_an_output_waits_for_a_commit_into_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = shards(dir.path(), "s", &[]);
    let other = shards(dir.path(), "t", &["--seed", "4"]);
    let opened: Vec<(String, u64, String)> = manifest(&s[0])["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap().to_string(), f["bytes"].as_u64().unwrap(), f["blake3"].as_str().unwrap().to_string()))
        .collect();
    for (case, expect) in [("the run opened", Some(opened)), ("whatever is there", None)] {
        let src = dir.path().join("src");
        copy_dir(&s[0], &src);
        let held = std::fs::File::open(&src).unwrap();
        held.lock().unwrap();
        let copy = dir.path().join("copy");
        let copying = std::thread::spawn({
            let (src, copy) = (src.clone(), copy.clone());
            move || qbat_gpu::pyapi::copy_output(&src, &copy, true, true, false, expect.as_deref()).map_err(|e| e.to_string())
        });
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert!(!copying.is_finished(), "{case}: the copy did not wait for the commit");
        commit_files_of(&other[0], &src);
        drop(held);
        match copying.join().unwrap() {
            Err(e) if case == "the run opened" => {
                assert!(e.contains(&*src.to_string_lossy()) && e.contains("no longer holds the run"), "{case}: {e}");
                assert!(!copy.exists(), "{case}: a copy was written");
            }
            Ok(_) if case == "whatever is there" => {
                for e in std::fs::read_dir(&other[0]).unwrap().flatten() {
                    let name = e.file_name();
                    if name != ".qbat-manifest.json" {
                        assert_eq!(std::fs::read(copy.join(&name)).unwrap(), std::fs::read(e.path()).unwrap(), "{case}: {name:?}");
                    }
                }
            }
            got => panic!("{case}: {got:?}"),
        }
        std::fs::remove_dir_all(&src).unwrap();
    }
}

/// A FIFO given as a shard, or a link to one: refused (exit 2, naming it), within the minute.
/// (The shared lock opened it for reading first, and waited for a writer for ever, silently.)
#[test]
fn a_fifo_given_as_a_shard_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let s = shards(dir.path(), "s", &[]);
    let fifo = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    for given in [&fifo, &link] {
        let out = dir.path().join("merged");
        let got = merge(&[given.clone(), s[1].clone(), s[2].clone()], &out, &[]);
        assert_refused(got, &given.display().to_string(), &out, &given.display().to_string());
    }
}

/// The notes of a run.json, as text.
fn notes_of(dir: &Path) -> Vec<String> {
    let run: Value = serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap();
    run["notes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()).collect()
}

/// Every note the merge adds to run.json's (here: a shard run without --verify, and shards of
/// different backends) is said on stderr, once, as a run says its notes: the mixed backends
/// were only in run.json, where a user who read the merge on the terminal did not look.
#[test]
fn merge_says_each_note_it_adds_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &bloch());
    let s: Vec<PathBuf> = (0..3)
        .map(|k| {
            let out = dir.path().join(format!("s{k}"));
            let backend = if k == 0 { "reference" } else { "cpu" };
            ok(bin().arg("run").arg(&cfg).args(["--backend", backend, "--no-progress", "--no-plots", "--shard", &format!("{k}/3"), "--out"]).arg(&out));
            out
        })
        .collect();
    let out = dir.path().join("merged");
    let (code, stderr) = merge(&s, &out, &[]);
    assert_eq!(code, 0, "{stderr}");
    let shards: Vec<String> = s.iter().flat_map(|d| notes_of(d)).collect();
    // (the warnings among the notes are said as WARNING lines)
    let added: Vec<String> = notes_of(&out).into_iter().filter(|n| !shards.contains(n) && !stderr.contains(&format!("WARNING: {n}"))).collect();
    assert!(added.iter().any(|n| n.starts_with("the shards' blocks ran with different backends (")), "{added:?}");
    assert!(added.iter().any(|n| n.contains("shard(s) 0 ran without --verify")), "{added:?}");
    for n in &added {
        assert_eq!(stderr.lines().filter(|l| *l == format!("note: {n}")).count(), 1, "{n}: {stderr}");
    }
}

/// A drive window's edges end segments of the schedule, so that no step straddles one; a run
/// from before they did took other steps. Its shards name the edges in their fingerprint (an
/// edge on a sample time ends no segment of its own), and a shard without them (from before)
/// is not merged with them.
#[test]
fn shards_name_the_window_edges_that_end_segments() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{}[[drive]]\noperator = \"sx_b\"\namplitude = 0.3\nfrequency = 1.0\nenvelope = {{ window = [0.123, 1.0] }}\n", bloch());
    let s = shards_of(dir.path(), "w", &text, &[], |_| None);
    for d in &s {
        let run: Value = serde_json::from_slice(&std::fs::read(d.join("run.json")).unwrap()).unwrap();
        assert_eq!(run["shard"]["fingerprint"]["window_edges"], json!([0.123]), "{}", d.display());
    }
    let out = dir.path().join("m");
    let (code, stderr) = merge(&s, &out, &[]);
    assert_eq!(code, 0, "{stderr}");
    forge_run_json(&s[1], |r| {
        r["shard"]["fingerprint"].as_object_mut().unwrap().remove("window_edges");
    });
    let out = dir.path().join("m-before");
    assert_refused(merge(&s, &out, &[]), "window_edges", &out, "a shard from before the edges ended segments");
}

/// A closed bloch-charger whose first two members' drives are too strong for dt (RK4 pushes an
/// eigenvalue below zero: flagged non-positive), the rest healthy; `strong` sets the rest's.
fn unstable_first(rest: &str) -> String {
    format!(
        "model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = 0.0\ngamma = 0.0\n[initial]\nrandom = \"bloch\"\n\
         [time]\ndt = 0.02\nt_end = 100.0\nsamples = 5\n[ensemble]\nsize = 6\nseed = 2\n\
         [output]\nmeasures = [\"energy_b\", \"purity\", \"min_eigenvalue\"]\n\
         [[drive]]\noperator = \"sx_b\"\namplitude = {{ values = [40.0, 30.0, {rest}] }}\nfrequency = 1.0\n"
    )
}

/// A shard whose members are all unhealthy is written (with a note), not refused: the run's
/// other shards hold healthy members, and the merge equals the unsharded run. Where every
/// member of the run is unhealthy, the merge refuses it as the unsharded run does (exit 1),
/// committing nothing.
#[test]
fn a_shard_of_unhealthy_members_only_merges_and_a_run_of_them_is_refused_by_the_merge() {
    let dir = tempfile::tempdir().unwrap();
    let text = unstable_first("0.1, 0.2, 0.3, 0.4");
    let cfg = config(dir.path(), &text);
    let whole = dir.path().join("whole");
    ok(bin().arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--no-plots", "--out"]).arg(&whole));
    let health: Value = serde_json::from_slice(&std::fs::read(whole.join("run.json")).unwrap()).unwrap();
    assert_eq!((health["health"]["ok"].as_u64(), health["health"]["flagged_ids"].clone()), (Some(4), json!([0, 1])), "the config's premise");
    let parts = shards_of(dir.path(), "s", &text, &[], |_| None);
    let first: Value = serde_json::from_slice(&std::fs::read(parts[0].join("run.json")).unwrap()).unwrap();
    assert_eq!(first["health"]["ok"], 0);
    assert!(
        first["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().starts_with("every member of this shard was flagged unhealthy")),
        "{}",
        first["notes"]
    );
    let merged = dir.path().join("m");
    ok(bin().arg("merge").args(&parts).arg("--out").arg(&merged).arg("--no-plots"));
    for f in ["stats.csv", "summary.csv", "series.csv"] {
        assert!(std::fs::read(whole.join(f)).unwrap() == std::fs::read(merged.join(f)).unwrap(), "{f} differs from the unsharded run's");
    }
    let run: Value = serde_json::from_slice(&std::fs::read(merged.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["notes"], health["notes"], "the merge's notes are the unsharded run's");
    // analyze says its members are the healthy ones (it said "all 6 members")
    let said = ok(bin().arg("analyze").arg(&merged).args(["--pairs", "energy_b:purity", "--no-plots"]));
    assert!(
        said.contains("correlations pooled over the 4 healthy members of 6") && said.contains("monotone fractions over the 4 healthy members of 6"),
        "{said}"
    );
    let said = ok(bin().arg("analyze").arg(&merged).args(["--pairs", "energy_b:purity", "--no-plots", "--max-members", "3"]));
    // (the cap strides over the healthy members: 3 of them, not 3 less the flagged it fell on)
    assert!(said.contains("correlations pooled over 3 of the 4 healthy members of 6 (evenly strided"), "{said}");
    assert!(said.contains("(capped: correlations use 3 of 4 healthy members"), "{said}");
    // every member unhealthy: the unsharded run and the merge both exit 1, writing nothing
    let text = unstable_first("45.0, 40.0, 35.0, 30.0");
    let cfg = config(dir.path(), &text);
    let o = bin().arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--no-plots", "--out"]).arg(dir.path().join("bad")).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let parts = shards_of(dir.path(), "u", &text, &[], |_| None);
    let out = dir.path().join("um");
    let o = bin().arg("merge").args(&parts).arg("--out").arg(&out).arg("--no-plots").output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("every member was flagged unhealthy") && stderr.trim().lines().count() == 1, "{stderr}");
    assert!(!out.exists() && !std::fs::read_dir(dir.path()).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().starts_with(".um")));
}

/// The default study's shard of unhealthy members only: written, its analysis left out with a
/// note (there is nothing to analyse; it failed the shard, and removed its work), and the merge
/// of the shards equals the unsharded run, analysis.csv included.
#[test]
fn a_default_study_shard_of_unhealthy_members_only_merges_to_the_unsharded_run() {
    let dir = tempfile::tempdir().unwrap();
    let study = |out: &Path, shard: Option<usize>| {
        let mut c = bin();
        c.args(["--backend", "cpu", "--no-progress", "--no-plots", "--ensemble", "4", "--out"]).arg(out).env("QBAT_INJECT_FAULT", "nan-member=0");
        if let Some(k) = shard {
            c.args(["--shard", &format!("{k}/4")]);
        }
        ok(&mut c);
    };
    let whole = dir.path().join("whole");
    study(&whole, None);
    let parts: Vec<PathBuf> = (0..4).map(|k| dir.path().join(format!("d{k}"))).collect();
    for (k, p) in parts.iter().enumerate() {
        study(p, Some(k));
    }
    let first: Value = serde_json::from_slice(&std::fs::read(parts[0].join("run.json")).unwrap()).unwrap();
    assert_eq!(first["health"]["ok"], 0, "the premise");
    assert!(!parts[0].join("analysis.csv").exists() && parts[1].join("analysis.csv").exists());
    let merged = dir.path().join("m");
    ok(bin().arg("merge").args(&parts).arg("--out").arg(&merged).arg("--no-plots"));
    for f in ["stats.csv", "summary.csv", "series.npy", "analysis.csv"] {
        assert!(std::fs::read(whole.join(f)).unwrap() == std::fs::read(merged.join(f)).unwrap(), "{f} differs from the unsharded run's");
    }
    let notes = |d: &Path| serde_json::from_slice::<Value>(&std::fs::read(d.join("run.json")).unwrap()).unwrap()["notes"].clone();
    assert_eq!(notes(&merged), notes(&whole));
}

/// A merge whose verify fails (a shard's verified member went NaN) says the run's WARNING, once,
/// after its commit, as the run does; a merge that passes says none.
#[test]
fn a_merge_whose_verify_fails_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let failing = shards_with_faults(dir.path(), "f", &["--verify", "100"], |k| (k == 1).then_some("nan-member=8"));
    let (code, stderr) = merge(&failing, &dir.path().join("m"), &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr.matches("WARNING: --verify found deviations beyond tolerance").count(), 1, "{stderr}");
    assert!(stderr.contains("(member 8)"), "{stderr}");
    let run: Value = serde_json::from_slice(&std::fs::read(dir.path().join("m").join("run.json")).unwrap()).unwrap();
    assert_eq!(run["verify"]["pass"], json!(false));
    let passing = shards(dir.path(), "p", &["--verify", "100"]);
    let (code, stderr) = merge(&passing, &dir.path().join("n"), &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("--verify found"), "{stderr}");
}
