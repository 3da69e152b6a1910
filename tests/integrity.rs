//! Nothing lost, nothing silently wrong: damaged or edited shards and checkpoints are refused
//! (exit 2, naming the file) before any work; --force and the default output directory never
//! touch a file qbat-gpu did not write, whatever its manifest says, nor does `analyze`, which
//! reads only the series its run wrote, nor a run that meets something of its staging
//! directory's name; one directory has one lock whatever path names it; a resume on another
//! engine is refused or recorded; flagged members do not stop `analyze`; reads are bounded;
//! --auto-fock refuses what it cannot truncate; shards are memory-checked as shards; a resumed
//! run's run.json says each note once.

use crate::common::{bin, config, kill_after_blocks, ok};
use std::io::Write as _;
use std::path::{Path, PathBuf};

pub(crate) const BLOCH: &str = r#"
model = "bloch-charger"
[params]
wb = 1.0
j = { linspace = [0.5, 1.5, 3] }
gamma = 0.05
[initial]
random = "bloch"
[time]
dt = 0.02
t_end = 2.0
samples = 6
[ensemble]
size = 60
seed = 3
"#;

fn run_args(cfg: &Path, out: &Path) -> std::process::Command {
    let mut c = bin();
    c.arg("run").arg(cfg).args(["--backend", "cpu", "--no-progress", "--no-plots", "--out"]).arg(out);
    c
}

/// (exit code, stderr) of a command.
fn outcome(c: &mut std::process::Command) -> (i32, String) {
    let o = c.output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).to_string())
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// The ways a file is damaged: (name, how).
fn damages() -> Vec<(&'static str, fn(&Path))> {
    fn truncate(p: &Path) {
        let b = std::fs::read(p).unwrap();
        std::fs::write(p, &b[..b.len() / 2]).unwrap();
    }
    fn flip(p: &Path) {
        let mut b = std::fs::read(p).unwrap();
        let i = b.len() * 2 / 3;
        b[i] ^= 0x01;
        std::fs::write(p, &b).unwrap();
    }
    fn drop_row(p: &Path) {
        let t = std::fs::read_to_string(p).unwrap();
        let mut lines: Vec<&str> = t.lines().collect();
        lines.remove(lines.len() / 2);
        std::fs::write(p, lines.join("\n") + "\n").unwrap();
    }
    fn duplicate_row(p: &Path) {
        let t = std::fs::read_to_string(p).unwrap();
        let mut lines: Vec<&str> = t.lines().collect();
        let l = lines[lines.len() / 2];
        lines.insert(lines.len() / 2, l);
        std::fs::write(p, lines.join("\n") + "\n").unwrap();
    }
    fn remove(p: &Path) {
        std::fs::remove_file(p).unwrap();
    }
    vec![("truncated", truncate), ("a flipped byte", flip), ("a row removed", drop_row), ("a member duplicated", duplicate_row), ("removed", remove)]
}

fn is_text(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "csv" || e == "json")
}

#[test]
fn damaged_or_edited_shards_are_refused_before_the_merge() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    for format in ["csv", "npy"] {
        let shards: Vec<PathBuf> = (0..2).map(|k| dir.path().join(format!("{format}-s{k}"))).collect();
        for (k, s) in shards.iter().enumerate() {
            ok(run_args(&cfg, s).args(["--format", format, "--shard", &format!("{k}/2")]));
        }
        // the good shards merge
        ok(bin().arg("merge").args(&shards).arg("--out").arg(dir.path().join(format!("{format}-merged"))).arg("--no-plots"));
        let files: Vec<PathBuf> =
            std::fs::read_dir(&shards[0]).unwrap().flatten().map(|e| e.path()).filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.')).collect();
        assert!(files.len() >= 4, "{files:?}");
        let mut cases = 0;
        for file in &files {
            for (how, damage) in damages() {
                if (how == "a row removed" || how == "a member duplicated") && !is_text(file) {
                    continue;
                }
                let case = dir.path().join(format!("case-{format}-{cases}"));
                copy_dir(&shards[0], &case.join("s0"));
                let name = file.file_name().unwrap();
                damage(&case.join("s0").join(name));
                let out = case.join("merged");
                let (code, stderr) = outcome(bin().arg("merge").arg(case.join("s0")).arg(&shards[1]).arg("--out").arg(&out).arg("--no-plots"));
                let name = name.to_string_lossy();
                assert_eq!(code, 2, "{format} {name} {how}: exit {code}: {stderr}");
                assert!(stderr.contains(&*name) && stderr.lines().count() == 1, "{format} {name} {how}: the message must name the file, on one line: {stderr}");
                assert!(!out.exists(), "{format} {name} {how}: a merged output was written");
                cases += 1;
            }
        }
        assert!(cases >= 20, "{cases}");
        // shards swapped between runs: shard 1's summary in shard 0
        let case = dir.path().join(format!("swap-{format}"));
        copy_dir(&shards[0], &case.join("s0"));
        std::fs::copy(shards[1].join("summary.csv"), case.join("s0").join("summary.csv")).unwrap();
        let (code, stderr) = outcome(bin().arg("merge").arg(case.join("s0")).arg(&shards[1]).arg("--out").arg(case.join("m")));
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("summary.csv"), "{stderr}");
    }
}

/// Kill a slow run once `blocks` blocks are checkpointed; the staging directory it left.
fn interrupted_run(dir: &Path, cfg: &Path, out: &Path, blocks: usize) -> PathBuf {
    interrupted_run_with(dir, cfg, out, blocks, &[])
}

fn interrupted_run_with(dir: &Path, cfg: &Path, out: &Path, blocks: usize, extra: &[&str]) -> PathBuf {
    let staging = dir.join(format!(".{}.partial", out.file_name().unwrap().to_string_lossy()));
    let mut child = run_args(cfg, out).args(["--block-members", "10"]).args(extra).env("QBAT_INJECT_FAULT", "slow-blocks=250").spawn().unwrap();
    kill_after_blocks(&mut child, &staging, blocks);
    staging
}

#[test]
fn damaged_checkpoints_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    let out = dir.path().join("r");
    let staging = interrupted_run(dir.path(), &cfg, &out, 2);
    // the checkpoint and the block files it names (a kill can land between a block's files
    // and the checkpoint that names them)
    let sealed: serde_json::Value = serde_json::from_slice(&std::fs::read(staging.join("checkpoint.json")).unwrap()).unwrap();
    // (the series of every block is one file, blocks/series.npy, each block's range at its
    // members; a byte flipped in it lands in block 0, which is finished)
    let series = staging.join("blocks").join("series.npy");
    let mut files: Vec<PathBuf> = vec![staging.join("checkpoint.json"), series.clone()];
    for b in sealed["progress"]["blocks"].as_array().unwrap() {
        let tag = format!("{:06}", b["block"].as_u64().unwrap());
        files.push(staging.join("blocks").join(format!("{tag}.summary")));
    }
    assert!(files.len() >= 4, "{files:?}");
    // The series holds the values the statistics are rebuilt from: no state is written beside it.
    let state_files =
        |staging: &Path| std::fs::read_dir(staging).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().starts_with("stats-state")).count();
    assert_eq!(state_files(&staging), 0);
    // Without a series, the checkpoint names the statistics state of its generation (a kill
    // can land before the previous generation's state is removed).
    let kept = interrupted_run_with(dir.path(), &cfg, &dir.path().join("k"), 2, &["--series", "false"]);
    let generation =
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(kept.join("checkpoint.json")).unwrap()).unwrap()["progress"]["generation"].as_u64().unwrap();
    files.push(kept.join(format!("stats-state-{generation}.bin")));
    assert!(files.last().unwrap().is_file() && (1..=2).contains(&state_files(&kept)));
    fn flip_in_first_member(p: &Path) {
        let mut b = std::fs::read(p).unwrap();
        let header = 10 + u16::from_le_bytes([b[8], b[9]]) as usize;
        b[header + 3] ^= 0x01;
        std::fs::write(p, &b).unwrap();
    }
    let mut cases = 0;
    for (i, file) in files.iter().enumerate() {
        for (j, (how, damage)) in damages().into_iter().enumerate() {
            let text = file.extension().is_some_and(|e| e == "json" || e == "summary");
            if (how == "a row removed" || how == "a member duplicated") && !text {
                continue;
            }
            let case = dir.path().join(format!("case{i}-{j}"));
            std::fs::create_dir_all(&case).unwrap();
            let (from, extra): (&Path, &[&str]) = if file.starts_with(&kept) { (&kept, &["--series", "false"]) } else { (&staging, &[]) };
            let case_staging = case.join(".r.partial");
            copy_dir(from, &case_staging);
            let rel = file.strip_prefix(from).unwrap();
            let damage = if *file == series && how == "a flipped byte" { flip_in_first_member } else { damage };
            damage(&case_staging.join(rel));
            let before: Vec<_> = std::fs::read_dir(case_staging.join("blocks")).unwrap().flatten().map(|e| e.file_name()).collect();
            let (code, stderr) = outcome(run_args(&cfg, &case.join("r")).args(["--resume"]).arg(case.join("r")).args(["--block-members", "10"]).args(extra));
            let name = file.file_name().unwrap().to_string_lossy().to_string();
            // the checkpoint names its files, so a removed checkpoint is an interrupted run
            // killed before its first block: that resume starts over, as it should
            if name == "checkpoint.json" && how == "removed" {
                assert_eq!(code, 0, "{stderr}");
                continue;
            }
            assert_eq!(code, 2, "{name} {how}: exit {code}: {stderr}");
            assert!(stderr.contains(&name) || stderr.contains("checkpoint.json"), "{name} {how}: {stderr}");
            assert!(stderr.contains("--force without --resume"), "{name} {how}: the way to start over: {stderr}");
            assert!(!case.join("r").exists(), "{name} {how}: an output was written");
            let after: Vec<_> = std::fs::read_dir(case_staging.join("blocks")).unwrap().flatten().map(|e| e.file_name()).collect();
            assert_eq!(before.len(), after.len(), "{name} {how}: blocks were computed before the damage was found");
            cases += 1;
        }
    }
    assert!(cases >= 15, "{cases}");
    // a block removed from `done` in checkpoint.json (the seal then differs)
    let case = dir.path().join("edited");
    copy_dir(&staging, &case.join(".r.partial"));
    let ck = case.join(".r.partial").join("checkpoint.json");
    let text = std::fs::read_to_string(&ck).unwrap();
    let edited = text.replacen("\"done\":[0,", "\"done\":[", 1);
    assert_ne!(edited, text);
    std::fs::write(&ck, edited).unwrap();
    let (code, stderr) = outcome(run_args(&cfg, &case.join("r")).args(["--resume"]).arg(case.join("r")));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("checkpoint.json"), "{stderr}");
    // the undamaged checkpoint resumes to the uninterrupted run's files
    let full = dir.path().join("full");
    ok(&mut run_args(&cfg, &full));
    // and so does one with a byte flipped in the series of an unfinished block: its members
    // are computed and written again
    let case = dir.path().join("unfinished");
    copy_dir(&staging, &case.join(".r.partial"));
    let copied = case.join(".r.partial").join("blocks").join("series.npy");
    let mut bytes = std::fs::read(&copied).unwrap();
    *bytes.last_mut().unwrap() ^= 0x01;
    std::fs::write(&copied, bytes).unwrap();
    ok(run_args(&cfg, &case.join("r")).arg("--resume").arg(case.join("r")));
    assert!(std::fs::read(full.join("series.csv")).unwrap() == std::fs::read(case.join("r").join("series.csv")).unwrap());
    ok(run_args(&cfg, &out).arg("--resume").arg(&out));
    for f in ["series.csv", "summary.csv", "stats.csv"] {
        assert!(std::fs::read(full.join(f)).unwrap() == std::fs::read(out.join(f)).unwrap(), "{f}");
    }
}

#[test]
fn force_replaces_only_the_files_qbat_gpu_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    let out = dir.path().join("o");
    ok(bin().arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--out"]).arg(&out));
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join(".qbat-manifest.json")).unwrap()).unwrap();
    let listed: Vec<&str> = manifest["files"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    // the plots were committed with the run, not drawn after it
    assert!(listed.iter().any(|n| n.starts_with("plot_")), "{listed:?}");
    assert!(listed.contains(&"run.json") && listed.contains(&"summary.csv"));
    // files of the user's, with names qbat-gpu's old pattern matched
    std::fs::write(out.join("plot_mine.png"), b"mine").unwrap();
    std::fs::write(out.join("notes.txt"), b"mine").unwrap();
    ok(bin().arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--force", "--seed", "4", "--out"]).arg(&out));
    assert_eq!(std::fs::read(out.join("plot_mine.png")).unwrap(), b"mine");
    assert_eq!(std::fs::read(out.join("notes.txt")).unwrap(), b"mine");
    let run_json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["seed"], 4);
    // a directory that is not a qbat-gpu output is never written into, even with --force
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("summary.csv"), b"mine").unwrap();
    let (code, stderr) = outcome(run_args(&cfg, &foreign).arg("--force"));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a qbat-gpu output"), "{stderr}");
    assert_eq!(std::fs::read(foreign.join("summary.csv")).unwrap(), b"mine");
    // a user's file under a name the next run writes is not replaced: the run is refused
    // before any work, so no staging directory is made (the commit would refuse it too)
    std::fs::write(out.join("series.npy"), b"mine").unwrap();
    let (code, stderr) = outcome(bin().arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--force", "--format", "npy", "--out"]).arg(&out));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("series.npy") && stderr.contains("not written by qbat-gpu"), "{stderr}");
    assert!(!dir.path().join(".o.partial").exists(), "refused after the run: {stderr}");
    // so is a listed file edited with its size kept
    let summary = std::fs::read(out.join("summary.csv")).unwrap();
    let mut edited = summary.clone();
    edited[summary.len() / 2] ^= 1;
    std::fs::write(out.join("summary.csv"), &edited).unwrap();
    let (code, stderr) = outcome(bin().arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--force", "--out"]).arg(&out));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("summary.csv") && stderr.contains("differs"), "{stderr}");
    assert!(!dir.path().join(".o.partial").exists(), "refused after the run: {stderr}");
    std::fs::write(out.join("summary.csv"), &summary).unwrap();
    assert_eq!(std::fs::read(out.join("series.npy")).unwrap(), b"mine");
    assert_eq!(std::fs::read(out.join("notes.txt")).unwrap(), b"mine");
    // files analyze writes into a run are recorded in its manifest, so --force replaces them
    std::fs::remove_file(out.join("series.npy")).unwrap();
    ok(bin().arg("analyze").arg(dir.path().join("o")).args(["--no-plots", "--pairs", "energy_b:ergotropy_b"]));
    let manifest = std::fs::read_to_string(out.join(".qbat-manifest.json")).unwrap();
    assert!(manifest.contains("analysis.csv"), "{manifest}");
}

/// An edited manifest never makes qbat-gpu remove a file it did not write: a name that
/// reaches outside the directory is a damaged manifest; a listed file that is not the one it
/// wrote (another size: before the run; another hash: at the commit) is refused, and stays.
/// `analyze` replaces its own earlier analysis, and nobody else's file of that name.
#[test]
fn an_edited_manifest_or_a_foreign_analysis_is_never_removed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    let out = dir.path().join("o");
    ok(&mut run_args(&cfg, &out));
    let manifest_path = out.join(".qbat-manifest.json");
    let pristine = std::fs::read(&manifest_path).unwrap();
    let listing = |extra: serde_json::Value| {
        let mut m: serde_json::Value = serde_json::from_slice(&pristine).unwrap();
        m["files"].as_array_mut().unwrap().push(extra);
        std::fs::write(&manifest_path, serde_json::to_vec(&m).unwrap()).unwrap();
    };
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, b"victim").unwrap();
    std::fs::write(out.join("mine.txt"), b"mine").unwrap();
    let cases = [
        (serde_json::json!({"name": "../victim.txt", "bytes": 6, "blake3": "x"}), "damaged manifest"),
        (serde_json::json!({"name": victim.to_str().unwrap(), "bytes": 6, "blake3": "x"}), "damaged manifest"),
        (serde_json::json!({"name": "mine.txt", "bytes": 9, "blake3": "x"}), "holds 4 bytes"),
        (serde_json::json!({"name": "mine.txt", "bytes": 4, "blake3": "x"}), "differs from the file qbat-gpu wrote"),
    ];
    for (entry, said) in cases {
        listing(entry.clone());
        let (code, stderr) = outcome(run_args(&cfg, &out).arg("--force"));
        assert_eq!(code, 2, "{entry}: {stderr}");
        assert!(stderr.contains(said), "{entry}: {stderr}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"victim");
        assert_eq!(std::fs::read(out.join("mine.txt")).unwrap(), b"mine");
        assert!(out.join("summary.csv").is_file(), "{entry}: the old output stays whole");
    }
    // the untouched manifest: --force replaces the run's files and leaves the user's
    std::fs::write(&manifest_path, &pristine).unwrap();
    ok(run_args(&cfg, &out).arg("--force"));
    assert_eq!(std::fs::read(out.join("mine.txt")).unwrap(), b"mine");
    // analyze: its own analysis again, but not a user's analysis.csv
    let analyze = || outcome(bin().arg("analyze").arg(&out).args(["--no-plots", "--pairs", "energy_b:ergotropy_b"]));
    assert_eq!(analyze().0, 0);
    assert_eq!(analyze().0, 0);
    std::fs::write(out.join("analysis.csv"), b"mine").unwrap();
    let (code, stderr) = analyze();
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("analysis.csv"), "{stderr}");
    assert_eq!(std::fs::read(out.join("analysis.csv")).unwrap(), b"mine");
}

/// A committed output's manifest records where each file lay (its identity: device, inode,
/// change and modification times), so an untouched file is known without reading it: --force
/// replaces it though its listed hash is wrong here (the check did not read it). A file
/// changed since (its change time moved) is read, refused and left as it is.
#[cfg(unix)]
#[test]
fn force_knows_an_untouched_file_by_its_identity_and_reads_a_changed_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    let out = dir.path().join("o");
    ok(&mut run_args(&cfg, &out));
    let manifest_path = out.join(".qbat-manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let files = m["files"].as_array_mut().unwrap();
    // (a file system whose clock ticks in seconds gets no identity: every check reads)
    use std::os::unix::fs::MetadataExt;
    let stamp = |p: &Path| {
        std::fs::write(p, b"").unwrap();
        let m = std::fs::metadata(p).unwrap();
        (m.ctime(), m.ctime_nsec())
    };
    let first = stamp(&dir.path().join("clock-a"));
    std::thread::sleep(std::time::Duration::from_millis(30));
    if stamp(&dir.path().join("clock-b")) > first {
        assert!(files.iter().all(|f| f["identity"]["ino"].is_u64()), "{files:?}");
        let summary = files.iter_mut().find(|f| f["name"] == "summary.csv").unwrap();
        summary["blake3"] = serde_json::json!("0".repeat(64));
        std::fs::write(&manifest_path, serde_json::to_vec(&m).unwrap()).unwrap();
    } else {
        eprintln!("this file system's clock ticks in seconds: no identity is recorded");
    }
    ok(run_args(&cfg, &out).arg("--force"));
    // the new manifest's identities, and a file changed in place after them (same size)
    let text = std::fs::read(out.join("summary.csv")).unwrap();
    let mut changed = text.clone();
    let k = changed.iter().rposition(|b| b.is_ascii_digit()).unwrap();
    changed[k] = if changed[k] == b'1' { b'2' } else { b'1' };
    std::fs::OpenOptions::new().write(true).open(out.join("summary.csv")).unwrap().write_all(&changed).unwrap();
    let (code, stderr) = outcome(run_args(&cfg, &out).arg("--force"));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("summary.csv") && stderr.contains("differs from the file qbat-gpu wrote"), "{stderr}");
    assert_eq!(std::fs::read(out.join("summary.csv")).unwrap(), changed);
}

/// A run's record of its files' identities, after its commit, and an `analyze` adding its files
/// to the output meanwhile: the manifest left lists every file there, each under its own hash
/// (the record wrote back the run's list over the analysis's: analysis.csv was no longer listed,
/// and the next `analyze` refused it as not written by qbat-gpu).
#[test]
fn an_analysis_during_the_record_of_identities_keeps_its_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    let out = dir.path().join("o");
    let mut run = run_args(&cfg, &out).env("QBAT_INJECT_FAULT", "slow-identities=1500").spawn().unwrap();
    // committed: its record of identities now waits
    let t0 = std::time::Instant::now();
    while !out.join("run.json").is_file() {
        assert!(t0.elapsed().as_secs() < 60, "the run did not commit");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    ok(bin().arg("analyze").arg(&out));
    assert!(run.wait().unwrap().success());
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join(".qbat-manifest.json")).unwrap()).unwrap();
    let files = m["files"].as_array().unwrap();
    let names: Vec<&str> = files.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"analysis.csv") && names.contains(&"series.csv"), "{names:?}");
    for f in files {
        let name = f["name"].as_str().unwrap();
        let bytes = std::fs::read(out.join(name)).unwrap();
        assert_eq!(f["blake3"].as_str().unwrap(), blake3::hash(&bytes).to_hex().as_str(), "{name}: the manifest does not list the file in place");
    }
    ok(bin().arg("analyze").arg(&out));
}

#[test]
fn the_default_output_directory_is_checked_like_out() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("myconf.toml");
    std::fs::write(&cfg, BLOCH).unwrap();
    let default = dir.path().join("myconf-out");
    std::fs::create_dir(&default).unwrap();
    std::fs::write(default.join("stats.csv"), b"mine").unwrap();
    let (code, stderr) = outcome(bin().current_dir(dir.path()).args(["run", "myconf.toml", "--backend", "cpu", "--no-progress"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("myconf-out"), "{stderr}");
    assert_eq!(std::fs::read(default.join("stats.csv")).unwrap(), b"mine");
    // its own earlier output is replaced by a rerun
    std::fs::remove_dir_all(&default).unwrap();
    ok(bin().current_dir(dir.path()).args(["run", "myconf.toml", "--backend", "cpu", "--no-progress"]));
    ok(bin().current_dir(dir.path()).args(["run", "myconf.toml", "--backend", "cpu", "--no-progress", "--seed", "9"]));
    let run_json: serde_json::Value = serde_json::from_slice(&std::fs::read(default.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["seed"], 9);
}

/// A staging directory's name taken by something qbat-gpu did not make (a user's directory,
/// a file, a link) is refused with one line, with or without --force or --resume, and left
/// as it was: nothing deleted, no lock written into it. So is an `--out` link that leads
/// nowhere, before anything is written; and a resume whose lock is not a file.
#[test]
fn what_qbat_gpu_did_not_make_beside_the_output_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    let out = dir.path().join("res");
    let staging = dir.path().join(".res.partial");
    let one_line = |(code, stderr): (i32, String), needle: &str| {
        assert_eq!(code, 2, "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
    };
    // a user's directory of that name, a plain file, a link to a directory
    std::fs::create_dir(&staging).unwrap();
    std::fs::write(staging.join("thesis.tex"), b"mine").unwrap();
    let shown = out.to_str().unwrap();
    for extra in [&[][..], &["--force"], &["--resume", shown]] {
        one_line(outcome(run_args(&cfg, &out).args(extra)), ".res.partial");
        let names: Vec<_> = std::fs::read_dir(&staging).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["thesis.tex"], "{extra:?}");
        assert_eq!(std::fs::read(staging.join("thesis.tex")).unwrap(), b"mine");
        assert!(!out.exists());
    }
    // an empty directory there holds nothing to lose: the run replaces it
    std::fs::remove_file(staging.join("thesis.tex")).unwrap();
    ok(&mut run_args(&cfg, &out));
    assert!(out.join("run.json").is_file() && !staging.exists());
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::write(&staging, b"mine").unwrap();
    one_line(outcome(run_args(&cfg, &out).arg("--force")), ".res.partial");
    assert_eq!(std::fs::read(&staging).unwrap(), b"mine");
    std::fs::remove_file(&staging).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &staging).unwrap();
    one_line(outcome(run_args(&cfg, &out).arg("--force")), ".res.partial");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    std::fs::remove_file(&staging).unwrap();
    // an --out link to nowhere, and links in a loop
    let dangling = dir.path().join("dangling");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
    let (l1, l2) = (dir.path().join("l1"), dir.path().join("l2"));
    std::os::unix::fs::symlink(&l2, &l1).unwrap();
    std::os::unix::fs::symlink(&l1, &l2).unwrap();
    for link in [&dangling, &l1] {
        one_line(outcome(&mut run_args(&cfg, link)), "--out");
        let left: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).filter(|n| n.contains("partial")).collect();
        assert!(left.is_empty(), "{left:?}");
    }
    // a resume whose lock is a directory
    let staging = interrupted_run(dir.path(), &cfg, &out, 1);
    std::fs::remove_file(staging.join("lock")).unwrap();
    std::fs::create_dir(staging.join("lock")).unwrap();
    let mut c = run_args(&cfg, &out);
    c.arg("--resume").arg(&out);
    one_line(outcome(&mut c), "lock");
    assert!(staging.join("checkpoint.json").is_file());
    // and the run's own staging directory still resumes
    std::fs::remove_dir(staging.join("lock")).unwrap();
    ok(&mut c);
    assert!(out.join("run.json").is_file() && !staging.exists());
}

#[test]
fn one_directory_has_one_lock_whatever_path_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    let real = dir.path().join("g4");
    std::fs::create_dir(&real).unwrap();
    let link = dir.path().join("g4link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let staging = dir.path().join(".g4.partial");
    let mut child = run_args(&cfg, &real).args(["--block-members", "10"]).env("QBAT_INJECT_FAULT", "slow-blocks=300").spawn().unwrap();
    let t0 = std::time::Instant::now();
    while !staging.join("checkpoint.json").exists() {
        assert!(t0.elapsed().as_secs() < 60 && child.try_wait().unwrap().is_none(), "the first run never checkpointed");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let (code, stderr) = outcome(run_args(&cfg, &link).arg("--force"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("lock") || stderr.contains("interrupted run"), "{stderr}");
}

/// `analyze` reads only the series its run's manifest lists as written: one cut after a
/// member's rows (which would parse as a run of fewer members) or edited in place is refused
/// with one line naming it; the run's own series, put back, is analysed.
#[test]
fn analyze_refuses_a_series_that_is_not_the_one_its_run_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    for format in ["csv", "npy"] {
        let out = dir.path().join(format);
        ok(run_args(&cfg, &out).args(["--format", format]));
        let series = out.join(format!("series.{format}"));
        let written = std::fs::read(&series).unwrap();
        let mut analyze = bin();
        analyze.arg("analyze").arg(&out).arg("--no-plots");
        ok(&mut analyze);
        let damaged: Vec<u8> = match format {
            // the header and the first member's 6 rows
            "csv" => written.split_inclusive(|&b| b == b'\n').take(7).flatten().copied().collect(),
            // one value's last byte changed, the size kept
            _ => {
                let mut d = written.clone();
                let last = d.len() - 1;
                d[last] ^= 1;
                d
            }
        };
        std::fs::write(&series, &damaged).unwrap();
        let (code, stderr) = outcome(&mut analyze);
        assert_eq!(code, 2, "{format}: {stderr}");
        assert!(stderr.contains(&format!("series.{format}")) && stderr.trim_end().lines().count() == 1, "{format}: {stderr}");
        std::fs::write(&series, &written).unwrap();
        ok(&mut analyze);
    }
}

#[test]
fn a_resume_on_another_backend_is_refused_or_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    let out = dir.path().join("r");
    interrupted_run(dir.path(), &cfg, &out, 2);
    let resume = |backend: &str, extra: &[&str]| {
        let mut c = bin();
        c.arg("run").arg(&cfg).args(["--backend", backend, "--no-progress", "--no-plots", "--block-members", "10", "--resume"]).arg(&out).args(extra);
        outcome(&mut c)
    };
    let (code, stderr) = resume("reference", &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.starts_with("error: --backend"), "the error comes first and names the option: {stderr}");
    let (code, stderr) = resume("reference", &["--allow-mixed-backends"]);
    assert_eq!(code, 0, "{stderr}");
    let run_json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let engines: Vec<&str> = run_json["engines"].as_array().unwrap().iter().map(|e| e["backend"].as_str().unwrap()).collect();
    assert_eq!(engines, ["cpu", "reference"], "{}", run_json["engines"]);
    let notes = run_json["notes"].to_string();
    assert!(notes.contains("--allow-mixed-backends"), "{notes}");
    assert_eq!(notes.matches("resumed from the checkpoint").count(), 1, "{notes}");
    // the blocks finished on the reference re-ran none of their chosen members: said, with the
    // verify of the others (it passed as though it covered the run)
    assert!(notes.contains("--verify covers only the blocks run on an engine other than the reference"), "{notes}");
    assert!(stderr.contains("--verify covers only"), "{stderr}");
    assert!(run_json["verify"]["members"].as_array().is_some_and(|m| !m.is_empty() && m.len() < 8), "{}", run_json["verify"]);
}

#[test]
fn a_resumed_run_says_each_note_once_and_keeps_its_verify_figures() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    let full = dir.path().join("full");
    ok(run_args(&cfg, &full).args(["--block-members", "10"]));
    let out = dir.path().join("r");
    interrupted_run(dir.path(), &cfg, &out, 1);
    // killed again after one more block, then finished: two resumes
    let staging = dir.path().join(".r.partial");
    let mut child = run_args(&cfg, &out).args(["--block-members", "10", "--resume"]).arg(&out).env("QBAT_INJECT_FAULT", "slow-blocks=250").spawn().unwrap();
    let done = |p: &Path| {
        std::fs::read(p.join("checkpoint.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .map_or(0, |v| v["progress"]["done"].as_array().map_or(0, |a| a.len()))
    };
    let t0 = std::time::Instant::now();
    while done(&staging) < 3 && child.try_wait().unwrap().is_none() {
        assert!(t0.elapsed().as_secs() < 60);
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    ok(run_args(&cfg, &out).args(["--block-members", "10", "--resume"]).arg(&out));
    let a: serde_json::Value = serde_json::from_slice(&std::fs::read(full.join("run.json")).unwrap()).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(a["verify"], b["verify"], "verify figures survive the checkpoint exactly");
    assert_eq!(b["notes"].to_string().matches("resumed from the checkpoint").count(), 1, "{}", b["notes"]);
}

#[test]
fn analyze_skips_flagged_members_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    let out = dir.path().join("o");
    ok(run_args(&cfg, &out).env("QBAT_INJECT_FAULT", "nan-member=7"));
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert!(summary.lines().any(|l| l.starts_with("7,") && l.ends_with(",nonfinite")), "{summary}");
    let log = ok(bin().arg("analyze").arg(&out).args(["--pairs", "energy_b:ergotropy_b", "--no-plots"]));
    assert!(log.contains("1 member(s) flagged unhealthy were left out"), "{log}");
    let csv = std::fs::read_to_string(out.join("analysis.csv")).unwrap();
    let pooled = csv.lines().find(|l| l.contains(",pooled,")).unwrap();
    let cols: Vec<&str> = pooled.split(',').collect();
    assert_eq!(cols[5], "59", "the correlation set lacks the flagged member: {pooled}");
}

#[test]
fn reads_are_bounded_and_special_files_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = std::time::Instant::now();
    let (code, stderr) = outcome(bin().args(["run", "/dev/zero", "--backend", "cpu", "--no-progress", "--out"]).arg(dir.path().join("z")));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("/dev/zero") && stderr.contains("not a regular file"), "{stderr}");
    assert!(t0.elapsed().as_secs() < 10);
    let big = dir.path().join("big.toml");
    let mut text = BLOCH.to_string();
    text.push_str(&"# padding\n".repeat(600_000));
    std::fs::write(&big, text).unwrap();
    let (code, stderr) = outcome(bin().arg("run").arg(&big).args(["--backend", "cpu", "--no-progress", "--out"]).arg(dir.path().join("b")));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("big.toml") && stderr.contains("bytes"), "{stderr}");
    // a run.json replaced by a device file is refused by analyze and merge alike
    let out = dir.path().join("o");
    ok(&mut run_args(&config(dir.path(), BLOCH), &out));
    std::fs::remove_file(out.join("series.csv")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", out.join("series.csv")).unwrap();
    let (code, stderr) = outcome(bin().arg("analyze").arg(&out));
    assert_ne!(code, 0, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The readers of a run's stats.csv and series.csv take a FIFO put in their place as what it
/// is, and say so, rather than wait for a writer: `read_stats` opened it by name and waited
/// for ever (the test waits 10 s).
#[test]
fn a_fifo_in_a_files_place_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    ok(&mut run_args(&config(dir.path(), BLOCH), &out));
    for name in ["stats.csv", "series.csv"] {
        let path = out.join(name);
        std::fs::remove_file(&path).unwrap();
        assert!(std::process::Command::new("mkfifo").arg(&path).status().unwrap().success());
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let d = out.clone();
    std::thread::spawn(move || {
        let stats = qbat_gpu::output::stats::read_stats(&d).map(drop);
        let series = qbat_gpu::output::series::SeriesReader::open(&d).map(drop);
        tx.send((stats, series)).unwrap();
    });
    let (stats, series) = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("a read waited on a FIFO");
    for (what, e) in [("stats.csv", stats.unwrap_err()), ("series.csv", series.unwrap_err())] {
        assert_eq!(e.exit_code(), 2, "{e}");
        assert!(e.to_string().contains(what) && e.to_string().contains("not a regular file"), "{e}");
    }
}

#[test]
fn auto_fock_refuses_a_state_it_cannot_truncate() {
    let dir = tempfile::tempdir().unwrap();
    let cavity = "model = \"cavity-cells\"\n[params]\nalpha = 30.0\nn_fock = 10\n[time]\ndt = 0.001\nt_end = 0.01\nsamples = 2\n";
    let cfg = config(dir.path(), cavity);
    let (code, stderr) = outcome(run_args(&cfg, &dir.path().join("o")).arg("--auto-fock"));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--auto-fock") && stderr.contains("400"), "{stderr}");
    let cfg = config(dir.path(), &cavity.replace("alpha = 30.0", "alpha = 1.0"));
    let (code, stderr) = outcome(run_args(&cfg, &dir.path().join("p")).arg("--auto-fock"));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("overriding params.n_fock = 10"), "{stderr}");
}

/// A run started with --force over an earlier output, killed, then resumed without it,
/// replaces that output as the run it resumes would have (its check passed when it began),
/// and equals an uninterrupted run.
#[test]
fn a_resume_replaces_the_output_its_run_was_started_over() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    let (out, clean) = (dir.path().join("o"), dir.path().join("clean"));
    ok(&mut run_args(&cfg, &clean));
    ok(run_args(&cfg, &out).args(["--seed", "5"]));
    interrupted_run_with(dir.path(), &cfg, &out, 2, &["--force"]);
    ok(run_args(&cfg, &out).args(["--block-members", "10", "--resume"]).arg(&out));
    assert_eq!(std::fs::read(out.join("stats.csv")).unwrap(), std::fs::read(clean.join("stats.csv")).unwrap());
}

/// `--auto-fock` sets the cutoff after the config is read: a run interrupted without it is not
/// resumed with it (or the other way round), which would give members of two cutoffs in one
/// output.
#[test]
fn a_resume_with_another_auto_fock_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cavity = "model = \"cavity-cells\"\n[params]\nalpha = 1.0\nn_fock = 4\n[time]\ndt = 0.01\nt_end = 0.5\nsamples = 3\n[ensemble]\nsize = 40\n";
    let cfg = config(dir.path(), cavity);
    for (k, (first, then)) in [(&[][..], &["--auto-fock"][..]), (&["--auto-fock"][..], &[][..])].into_iter().enumerate() {
        let out = dir.path().join(format!("r{k}"));
        let staging = interrupted_run_with(dir.path(), &cfg, &out, 1, first);
        let (code, stderr) = outcome(run_args(&cfg, &out).args(["--block-members", "10", "--resume"]).arg(&out).args(then));
        assert_eq!(code, 2, "{first:?} then {then:?}: {stderr}");
        assert!(stderr.contains("'n_fock'") && stderr.trim_end().lines().last().unwrap().starts_with("error: --resume"), "{stderr}");
        assert!(staging.join("checkpoint.json").is_file() && !out.exists());
        // resumed as it began, it finishes
        ok(run_args(&cfg, &out).args(["--block-members", "10", "--resume"]).arg(&out).args(first));
    }
}

#[test]
fn a_shard_is_memory_checked_as_a_shard() {
    let dir = tempfile::tempdir().unwrap();
    // 6e7 members would need far more memory for the member list than a machine has; one
    // shard of 1000 needs little, and only its members are built
    let cfg = config(dir.path(), &BLOCH.replace("size = 60", "size = 60000000").replace("samples = 6", "samples = 2"));
    let (code, stderr) = outcome(run_args(&cfg, &dir.path().join("all")).arg("--series").arg("false"));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("ensemble.size") && stderr.contains("--shard K/N"), "the refusal gives the advice that helps: {stderr}");
    let log = ok(run_args(&cfg, &dir.path().join("s")).args(["--shard", "0/100000", "--series", "false", "--verify", "0"]));
    let run_json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("s").join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["members"], 600, "{log}");
    assert_eq!(run_json["shard"]["members"], serde_json::json!([0, 600]));
}

/// An interrupted run of BLOCH in `dir` (two blocks checkpointed): its config, output,
/// staging directory and checkpoint's progress.
fn interrupted_progress(dir: &Path) -> (PathBuf, PathBuf, PathBuf, serde_json::Value) {
    let cfg = config(dir, BLOCH);
    let out = dir.join("r");
    let staging = interrupted_run(dir, &cfg, &out, 2);
    let progress = serde_json::from_slice::<serde_json::Value>(&std::fs::read(staging.join("checkpoint.json")).unwrap()).unwrap()["progress"].clone();
    (cfg, out, staging, progress)
}

/// The staging directory `staging` copied to `case`, its checkpoint's progress replaced by
/// `edited` and sealed again: its resume is refused (exit 2, one line naming checkpoint.json and
/// `named`), before any output.
fn resume_of_resealed_is_refused(cfg: &Path, staging: &Path, case: &Path, edited: &serde_json::Value, how: &str, named: &str) {
    copy_dir(staging, &case.join(".r.partial"));
    let raw = serde_json::to_string(edited).unwrap();
    let sealed = format!("{{\"blake3\":\"{}\",\"progress\":{raw}}}", blake3::hash(raw.as_bytes()).to_hex());
    std::fs::write(case.join(".r.partial").join("checkpoint.json"), sealed).unwrap();
    let (code, stderr) = outcome(run_args(cfg, &case.join("r")).args(["--block-members", "10", "--resume"]).arg(case.join("r")));
    assert_eq!(code, 2, "{how}: {stderr}");
    assert!(stderr.contains("checkpoint.json") && stderr.contains(named), "{how}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{how}: {stderr}");
    assert!(!case.join("r").exists(), "{how}");
}

/// A checkpoint sealed again by hand (its hash redone) passes the seal, so what it says is
/// checked as input: its --verify deviations are one a measure, none negative or NaN (a group
/// with none made the resume divide by zero), each naming a member the group verified. And a resume names its directory however the
/// path is spelled (`./r/` and the absolute path are `r`).
#[test]
fn a_resealed_checkpoint_is_checked_and_a_resume_is_found_however_spelled() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, out, staging, progress) = interrupted_progress(dir.path());
    let nm = progress["measures"].as_array().unwrap().len();
    let group = |max: Vec<serde_json::Value>| serde_json::json!([{"precision": "f64", "members": [], "max": max}]);
    let cases = [
        ("none", group(vec![])),
        ("one too many", group(vec![0.0.into(); nm + 1])),
        ("a negative one", group([vec![(-1.0).into()], vec![0.0.into(); nm - 1]].concat())),
        // the worst member named: one a measure, among the group's verified members
        ("a member not verified", serde_json::json!([{"precision": "f64", "members": [3], "max": vec![0.0; nm], "member": vec![4; nm]}])),
        (
            "members one short",
            serde_json::json!([{"precision": "f64", "members": [3], "max": vec![0.0; nm], "scale": vec![1.0; nm], "member": vec![3; nm - 1]}]),
        ),
        ("a member without its scale", serde_json::json!([{"precision": "f64", "members": [3], "max": vec![0.0; nm], "member": vec![3; nm]}])),
        ("a negative largest", serde_json::json!([{"precision": "f64", "members": [3], "max": vec![0.0; nm], "largest": vec![-1.0; nm]}])),
        ("a largest below the worst", serde_json::json!([{"precision": "f64", "members": [3], "max": vec![1e-12; nm], "largest": vec![0.0; nm]}])),
    ];
    for (i, (how, verify)) in cases.into_iter().enumerate() {
        let mut edited = progress.clone();
        edited["verify"] = verify;
        resume_of_resealed_is_refused(&cfg, &staging, &dir.path().join(format!("case{i}")), &edited, how, "--verify deviations");
    }
    // the undamaged checkpoint, resumed by another spelling of its path, from its parent
    let spelled = format!(".{}r{}", std::path::MAIN_SEPARATOR, std::path::MAIN_SEPARATOR);
    let mut resume = run_args(&cfg, Path::new("r"));
    resume.current_dir(dir.path()).args(["--block-members", "10", "--resume", &spelled]);
    ok(&mut resume);
    let full = dir.path().join("full");
    ok(run_args(&cfg, &full).args(["--block-members", "10"]));
    for f in ["series.csv", "summary.csv", "stats.csv"] {
        assert!(std::fs::read(full.join(f)).unwrap() == std::fs::read(out.join(f)).unwrap(), "{f}");
    }
}

/// A member that went NaN is an infinite --verify deviation, which JSON writes as null: the
/// checkpoint that holds one resumes (it was refused as damaged), and the finished run's
/// report fails that measure.
#[test]
fn an_infinite_verify_deviation_survives_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    let out = dir.path().join("r");
    let staging = dir.path().join(".r.partial");
    let extra = ["--block-members", "10", "--verify", "60"];
    let mut child = run_args(&cfg, &out).args(extra).env("QBAT_INJECT_FAULT", "slow-blocks=250,nan-member=0").spawn().unwrap();
    kill_after_blocks(&mut child, &staging, 2);
    let sealed: serde_json::Value = serde_json::from_slice(&std::fs::read(staging.join("checkpoint.json")).unwrap()).unwrap();
    let written: Vec<&serde_json::Value> = sealed["progress"]["verify"].as_array().unwrap().iter().flat_map(|g| g["max"].as_array().unwrap()).collect();
    assert!(written.iter().any(|d| d.is_null()), "member 0's deviation is infinite: {written:?}");
    ok(run_args(&cfg, &out).args(extra).arg("--resume").arg(&out));
    let run_json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["verify"]["pass"], false, "{}", run_json["verify"]);
    assert!(run_json["verify"]["deviations"].as_array().unwrap().iter().any(|d| d["max_abs"].is_null() && d["pass"] == false), "{}", run_json["verify"]);
}

/// A resume replaces what its run's check accepted, and nothing else. Where the run was not
/// given --force, an output another process wrote into its --out since (a merge's, a save's)
/// is refused (exit 2, one line naming --out), its files untouched; the resume given --force
/// replaces it with the run's own output. A run started with --force into an existing output
/// is resumed without it, and replaces that output as the run would have. (Every resume
/// replaced whatever qbat-gpu output it found, as if given --force.)
#[test]
fn a_resume_replaces_an_output_written_since_only_where_its_run_was_forced() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    let clean = dir.path().join("clean");
    ok(&mut run_args(&cfg, &clean));
    let other = dir.path().join("other");
    ok(run_args(&cfg, &other).args(["--seed", "4"]));
    let read = |d: &Path| std::fs::read(d.join("stats.csv")).unwrap();
    let resume = |out: &Path, extra: &[&str]| {
        let mut c = bin();
        c.arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--no-plots", "--resume"]).arg(out).args(extra);
        outcome(&mut c)
    };
    let out = dir.path().join("r");
    interrupted_run(dir.path(), &cfg, &out, 2);
    copy_dir(&other, &out);
    // refused before any block runs (not at the commit, after the remaining blocks), by a
    // message that says why: nothing says the run was started to replace an output
    let checkpoint = || std::fs::read(dir.path().join(".r.partial/checkpoint.json")).unwrap();
    let before = checkpoint();
    let (code, stderr) = resume(&out, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.starts_with("error: --out: ") && stderr.contains("holds an output") && stderr.contains("--force"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(checkpoint() == before, "blocks ran before the refusal");
    assert_eq!(read(&out), read(&other), "the other output was replaced");
    let (code, stderr) = resume(&out, &["--force"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(read(&out), read(&clean));
    let forced = dir.path().join("f");
    copy_dir(&other, &forced);
    interrupted_run_with(dir.path(), &cfg, &forced, 2, &["--force"]);
    let (code, stderr) = resume(&forced, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(read(&forced), read(&clean));
}

/// `--force` refuses, before the run, a user's file under the name of a plot or of the
/// analysis the run may write: it was found only at the commit, after the whole run, with the
/// staging directory left. A user's file under a name the run does not draw stays.
#[test]
fn force_refuses_a_users_plot_or_analysis_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    let with_plots = |out: &Path| {
        let mut c = bin();
        c.arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--force", "--out"]).arg(out);
        c
    };
    // the names of the plots this config draws, from a run that drew them
    ok(&mut with_plots(&dir.path().join("p")));
    let mut drawn: Vec<String> =
        std::fs::read_dir(dir.path().join("p")).unwrap().flatten().map(|e| e.file_name().into_string().unwrap()).filter(|n| n.starts_with("plot_")).collect();
    drawn.sort();
    assert!(!drawn.is_empty());
    let out = dir.path().join("o");
    ok(&mut run_args(&cfg, &out));
    for name in [&drawn[0], drawn.last().unwrap()] {
        std::fs::write(out.join(name), b"mine").unwrap();
        let (code, stderr) = outcome(&mut with_plots(&out));
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(stderr.contains(name.as_str()) && stderr.contains("not written by qbat-gpu"), "{name}: {stderr}");
        assert!(!dir.path().join(".o.partial").exists(), "{name}: refused after the run: {stderr}");
        assert_eq!(std::fs::read(out.join(name)).unwrap(), b"mine");
        std::fs::remove_file(out.join(name)).unwrap();
    }
    // names the run does not draw stay: one of the user's own, and the plot of every member's
    // trajectories, drawn for a run of at most 4 members (this one has 60)
    for name in ["plot_mine.svg", "plot_series.png"] {
        std::fs::write(out.join(name), b"mine").unwrap();
    }
    ok(&mut with_plots(&out));
    for name in ["plot_mine.svg", "plot_series.png"] {
        assert_eq!(std::fs::read(out.join(name)).unwrap(), b"mine", "{name}");
    }
    // a steady run's heat map is over two varying parameters: with one swept it is never drawn,
    // and a user's file of its name stays; with two it is, and such a file is refused
    for (sweep, drawn) in [("f = { values = [0.1, 0.2] }", false), ("f = { values = [0.1, 0.2] }\ngamma = { values = [0.5, 1.0] }", true)] {
        let text = format!("model = \"driven-pair\"\n[params]\n{sweep}\n[time]\nsteady = true\n[output]\nmeasures = [\"energy_b\"]\n");
        let steady_cfg = dir.path().join("steady.toml");
        std::fs::write(&steady_cfg, text).unwrap();
        let steady = dir.path().join(format!("steady-{drawn}"));
        let run = |extra: &str| {
            let mut c = bin();
            c.arg("run").arg(&steady_cfg).args(["--backend", "cpu", "--no-progress", extra, "--out"]).arg(&steady);
            c
        };
        ok(&mut run("--no-plots"));
        std::fs::write(steady.join("plot_steady_energy_b.png"), b"mine").unwrap();
        let (code, stderr) = outcome(&mut run("--force"));
        assert_eq!(code, if drawn { 2 } else { 0 }, "{sweep}: {stderr}");
        assert_eq!(std::fs::read(steady.join("plot_steady_energy_b.png")).unwrap(), b"mine", "{sweep}");
        // (drawn into a directory of its own, the plot is there: the refusal was of a name it writes)
        let fresh = dir.path().join(format!("steady-fresh-{drawn}"));
        ok(bin().arg("run").arg(&steady_cfg).args(["--backend", "cpu", "--no-progress", "--out"]).arg(&fresh));
        assert_eq!(fresh.join("plot_steady_energy_b.png").exists(), drawn, "{sweep}");
    }
    // the default study's analysis.csv, in an output written without a series (no analysis)
    let study = dir.path().join("s");
    let default_study = |extra: &[&str]| {
        let mut c = bin();
        c.args(["--backend", "cpu", "--ensemble", "20", "--no-progress", "--no-plots", "--out"]).arg(&study).args(extra);
        c
    };
    ok(&mut default_study(&["--series", "false"]));
    std::fs::write(study.join("analysis.csv"), b"mine").unwrap();
    let (code, stderr) = outcome(&mut default_study(&["--force"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("analysis.csv") && stderr.contains("not written by qbat-gpu"), "{stderr}");
    assert!(!dir.path().join(".s.partial").exists(), "refused after the run: {stderr}");
    assert_eq!(std::fs::read(study.join("analysis.csv")).unwrap(), b"mine");
}

/// `analyze` refuses a file it reads beside the series that the manifest lists and that is
/// missing: a missing summary.csv was read as no member left out, a missing run.json as an f64
/// run's tolerance.
#[test]
fn analyze_refuses_a_listed_file_that_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), BLOCH);
    let out = dir.path().join("o");
    ok(&mut run_args(&cfg, &out));
    let mut analyze = bin();
    analyze.arg("analyze").arg(&out).arg("--no-plots");
    for name in ["summary.csv", "run.json"] {
        let kept = std::fs::read(out.join(name)).unwrap();
        std::fs::remove_file(out.join(name)).unwrap();
        let (code, stderr) = outcome(&mut analyze);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(stderr.contains(name) && stderr.contains("missing") && stderr.trim_end().lines().count() == 1, "{name}: {stderr}");
        std::fs::write(out.join(name), kept).unwrap();
    }
    ok(&mut analyze);
}

/// A checkpoint edited and sealed again is checked as input beyond its verify figures: its
/// health counts (7 members more than its blocks hold went into run.json, and a warning of
/// members left out that every `n` of stats.csv contradicted), its timings (a negative
/// integration was copied into run.json) and each block's engine (one a run never has).
#[test]
fn a_resealed_checkpoints_health_timings_and_engines_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, out, staging, progress) = interrupted_progress(dir.path());
    let edits: [(&str, &str, fn(&mut serde_json::Value)); 6] = [
        ("7 non-finite members more", "health", |p| p["health"]["nonfinite"] = 7.into()),
        ("a healthy member fewer", "health", |p| p["health"]["ok"] = (p["health"]["ok"].as_u64().unwrap() - 1).into()),
        ("more flagged ids than flagged", "health", |p| p["health"]["flagged_ids"] = serde_json::json!([1, 2, 3])),
        ("a negative integration", "timings", |p| p["timings"]["integrate"] = (-5.0).into()),
        ("negative member-steps", "timings", |p| p["timings"]["member_steps"] = (-1e300).into()),
        ("an engine of no run's", "engine", |p| p["blocks"][0]["backend"] = "warp".into()),
    ];
    for (i, (how, named, edit)) in edits.into_iter().enumerate() {
        let mut edited = progress.clone();
        edit(&mut edited);
        assert_ne!(edited, progress, "{how}");
        resume_of_resealed_is_refused(&cfg, &staging, &dir.path().join(format!("case{i}")), &edited, how, named);
    }
    // the checkpoint as it was resumes
    ok(run_args(&cfg, &out).args(["--block-members", "10", "--resume"]).arg(&out));
}
