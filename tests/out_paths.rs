//! `--out` paths a command cannot use (a file behind a trailing slash, a directory that cannot
//! be written, a path too long for the names qbat-gpu builds from it): refused before any
//! work, exit 2 naming `--out`, nothing left beside it.

use crate::common::{bin, listing, outcome_within};
use std::path::{Path, PathBuf};
use std::time::Duration;

const SMALL: &str = r#"
model = "bloch-charger"
[params]
wb = 1.0
j = 1.0
gamma = 0.05
[time]
dt = 0.01
t_end = 1.0
samples = 11
[ensemble]
size = 4
seed = 1
"#;

/// `run SMALL --out OUT` (then `extra`) on the CPU engine: (exit code, stderr).
fn run(dir: &Path, out: &Path, extra: &[&str]) -> (i32, String) {
    let cfg = crate::common::config(dir, SMALL);
    outcome_within(
        bin().arg("run").arg(cfg).args(["--backend", "cpu", "--no-progress", "--no-plots", "--verify", "0", "--out"]).arg(out).args(extra),
        Duration::from_secs(120),
    )
}

/// Exit 2, one line naming `--out`, no panic.
fn assert_refused((code, stderr): (i32, String), case: &str) {
    assert_eq!(code, 2, "{case}: exit {code}: {stderr}");
    assert!(stderr.starts_with("error: --out: ") && stderr.trim_end().lines().count() == 1, "{case}: {stderr}");
}

/// The staging names qbat-gpu makes (`.NAME.partial...`) found in `dir`.
fn leftovers(dir: &Path) -> Vec<String> {
    listing(dir).into_iter().filter(|n| n.contains(".partial")).collect()
}

/// A file, a socket or a symbolic link loop spelled with a trailing slash is not a directory
/// (the lookup says ENOTDIR or ELOOP, not that nothing is there): run, merge and
/// `bench --scaling` refuse it before their work, and leave no staging directory.
#[cfg(unix)]
#[test]
fn a_non_directory_behind_a_trailing_slash_is_refused_before_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("userfile"), "hello\n").unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(d.join("sock")).unwrap();
    std::os::unix::fs::symlink("loopb", d.join("loopa")).unwrap();
    std::os::unix::fs::symlink("loopa", d.join("loopb")).unwrap();
    let shards: Vec<PathBuf> = (0..2).map(|k| d.join(format!("s{k}"))).collect();
    for (k, s) in shards.iter().enumerate() {
        let (code, stderr) = run(d, s, &["--shard", &format!("{k}/2")]);
        assert_eq!(code, 0, "{stderr}");
    }
    let before = listing(d);
    for name in ["userfile/", "sock/", "loopa/", "userfile/x"] {
        let out = d.join(name);
        assert_refused(run(d, &out, &[]), &format!("run --out {name}"));
        let merge = bin().arg("merge").args(&shards).arg("--out").arg(&out).arg("--no-plots").output().unwrap();
        assert_refused((merge.status.code().unwrap_or(-1), String::from_utf8_lossy(&merge.stderr).into()), &format!("merge --out {name}"));
        let bench = bin().args(["bench", "--backend", "cpu", "--scaling", "--scaling-max-members", "100", "--out"]).arg(&out).output().unwrap();
        assert_refused((bench.status.code().unwrap_or(-1), String::from_utf8_lossy(&bench.stderr).into()), &format!("bench --scaling --out {name}"));
        assert_eq!(listing(d), before, "--out {name}: something was left beside it");
        assert_eq!(std::fs::read_to_string(d.join("userfile")).unwrap(), "hello\n");
    }
    assert!(leftovers(d).is_empty());
}
