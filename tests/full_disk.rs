//! A full disk (ENOSPC, injected at a named file with `QBAT_INJECT_FAULT=full-disk=NAME`, or
//! at its rename into place with `rename-fails=NAME`):
//! the command fails with one line naming the file, leaves no file under a final name and an
//! existing output as it was, and once there is room again the rerun (or `--resume`) gives
//! the bytes of a run that never failed.

use crate::common::{bin, ok};
use std::collections::BTreeMap;
use std::path::Path;

const TWO_MEASURES: &str = r#"
model = "bloch-charger"
[params]
wb = 1.0
j = 1.0
gamma = 0.05
[initial]
random = "bloch"
[time]
dt = 0.01
t_end = 1.0
samples = 21
[ensemble]
size = 200
seed = 1
[output]
measures = ["capacity_b", "ergotropy_b"]
"#;

/// Every entry of `dir` (hidden ones too, and what is inside a subdirectory) with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut all = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_dir() {
            for (inner, bytes) in snapshot(&e.path()) {
                all.insert(format!("{name}/{inner}"), bytes);
            }
        } else {
            all.insert(name, std::fs::read(e.path()).unwrap());
        }
    }
    all
}

/// A copy of the flat directory `from` (an output) as `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Run `args` with the fault `fault`: it must fail (exit 1) with one line that names `file`
/// and the full disk. Returns that line.
fn fails_full(args: &[&std::ffi::OsStr], fault: &str, file: &str) -> String {
    let o = bin().args(args).env("QBAT_INJECT_FAULT", fault).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(o.status.code(), Some(1), "{fault}: {stderr}");
    assert!(errors.len() == 1 && errors[0].contains(file) && errors[0].contains("No space left"), "{fault}: {stderr}");
    assert!(!stderr.contains("panicked"), "{fault}: {stderr}");
    errors[0].to_string()
}

/// `analyze` on a full disk leaves the run's directory exactly as it was, whichever file the
/// disk fills at (the analysis, a histogram, the manifest that lists them), for a first
/// analysis and for one that replaces an earlier one; the next `analyze` then runs, and its
/// files are listed in the manifest. (Before, the analysis and histograms were renamed into
/// the directory one by one and listed afterwards: a failure left them there unlisted, and
/// the next `analyze`, or a `--force` run, refused them as not qbat-gpu's.)
#[test]
fn analyze_on_a_full_disk_leaves_the_output_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("two.toml");
    std::fs::write(&cfg, TWO_MEASURES).unwrap();
    let out = tmp.path().join("out");
    ok(bin().arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--verify", "0", "--no-plots", "--out"]).arg(&out));
    let analyze = [std::ffi::OsStr::new("analyze"), out.as_os_str()];
    let hist = "plot_hist2d_capacity_b_ergotropy_b";
    // the disk full as each file is written aside, and as each is renamed into place (the
    // files renamed before it put back)
    let names = ["analysis.csv".to_string(), format!("{hist}.svg"), format!("{hist}.png"), ".qbat-manifest.json".to_string()];
    let faults: Vec<String> = ["full-disk", "rename-fails"].iter().flat_map(|f| names.iter().map(move |n| format!("{f}={n}"))).collect();
    for replacing in [false, true] {
        let before = snapshot(&out);
        for fault in &faults {
            let file = fault.split_once('=').unwrap().1;
            // named as it is in the output, not in the directory the files are written aside in
            let line = fails_full(&analyze, fault, &format!("{}: ", out.join(file).display()));
            assert!(!line.contains(".qbat-added"), "{fault}: {line}");
            let after = snapshot(&out);
            assert_eq!(after.keys().collect::<Vec<_>>(), before.keys().collect::<Vec<_>>(), "{fault} (replacing: {replacing})");
            assert!(after == before, "{fault} (replacing: {replacing}): a file changed");
        }
        ok(bin().args(analyze));
        let manifest = qbat_gpu::output::manifest::Manifest::read(&out).unwrap().unwrap();
        manifest.verify(&out).unwrap();
        for f in ["analysis.csv".to_string(), format!("{hist}.svg"), format!("{hist}.png")] {
            assert!(manifest.contains(&f), "{f} is not listed");
        }
    }
    // the same analysis as on a disk that never filled
    let fresh = tmp.path().join("fresh");
    ok(bin().arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--verify", "0", "--no-plots", "--out"]).arg(&fresh));
    ok(bin().arg("analyze").arg(&fresh));
    assert!(std::fs::read(out.join("analysis.csv")).unwrap() == std::fs::read(fresh.join("analysis.csv")).unwrap());
}

/// A run that finds the disk full at one of its finish's files keeps its checkpoint, leaves an
/// output it replaces under `--force` whole, and `--resume` then gives the bytes of a run that
/// never failed.
#[test]
fn a_run_on_a_full_disk_resumes_to_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("two.toml");
    std::fs::write(&cfg, TWO_MEASURES).unwrap();
    let run = |out: &Path| -> Vec<std::ffi::OsString> {
        ["run", cfg.to_str().unwrap(), "--backend", "cpu", "--no-progress", "--verify", "0", "--block-members", "50", "--out", out.to_str().unwrap()]
            .map(Into::into)
            .to_vec()
    };
    let whole = tmp.path().join("whole");
    ok(bin().args(run(&whole)));
    let old = tmp.path().join("old");
    ok(bin().args(run(&old)).args(["--seed", "2"]));
    let old_files = snapshot(&old);
    for file in ["stats.csv", "summary.csv", "run.json", "plot_capacity_b.svg", ".qbat-manifest.json", "checkpoint.json@2"] {
        let out = tmp.path().join(format!("out-{}", file.replace(['.', '@'], "-")));
        let mut args = run(&out);
        let forced = file.ends_with(".svg");
        if forced {
            // over an earlier output, under --force
            copy_dir(&old, &out);
            args.push("--force".into());
        }
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        fails_full(&args, &format!("full-disk={file}"), file.split('@').next().unwrap());
        match forced {
            true => assert!(snapshot(&out) == old_files, "{file}: the output replaced under --force changed"),
            false => assert!(!out.exists(), "{file}: an output was committed"),
        }
        let staging = tmp.path().join(format!(".{}.partial", out.file_name().unwrap().to_string_lossy()));
        assert!(staging.join("checkpoint.json").is_file(), "{file}: the checkpoint was not kept");
        ok(bin().args(&args).arg("--resume").arg(&out));
        for f in ["stats.csv", "series.csv", "summary.csv", "plot_capacity_b.svg"] {
            assert!(std::fs::read(out.join(f)).unwrap() == std::fs::read(whole.join(f)).unwrap(), "{file}: {f} differs after --resume");
        }
        qbat_gpu::output::manifest::Manifest::read(&out).unwrap().unwrap().verify(&out).unwrap();
        assert!(!staging.exists(), "{file}: the staging directory stayed");
    }
}

/// A file made in the output while `analyze` runs, under a name the analysis writes, is not
/// replaced: the analysis is refused (exit 2, naming it) before anything moves, and the file
/// and the rest of the output stay as they were. (It was checked only as the analysis began:
/// the file made meanwhile was replaced, and its bytes gone.)
#[test]
fn a_file_made_during_analyze_is_refused_not_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("two.toml");
    std::fs::write(&cfg, TWO_MEASURES).unwrap();
    let out = tmp.path().join("out");
    ok(bin().arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--verify", "0", "--no-plots", "--out"]).arg(&out));
    let before = snapshot(&out);
    let child = bin()
        .arg("analyze")
        .arg(&out)
        .env("QBAT_INJECT_FAULT", "slow-added=3000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // its files and manifest written aside: the user's file goes in now
    let aside = || std::fs::read_dir(&out).unwrap().flatten().find(|e| e.file_name().to_string_lossy().starts_with(".qbat-added-")).map(|e| e.path());
    let started = std::time::Instant::now();
    while !aside().is_some_and(|d| d.join(".qbat-manifest.json").exists()) {
        assert!(started.elapsed().as_secs() < 60, "analyze wrote nothing aside");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mine = out.join("plot_hist2d_capacity_b_ergotropy_b.svg");
    std::fs::write(&mine, "my notes").unwrap();
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.trim_end().lines().count() == 1 && stderr.contains(&format!("{}: ", mine.display())), "{stderr}");
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "my notes");
    std::fs::remove_file(&mine).unwrap();
    assert!(snapshot(&out) == before, "the output changed");
}
