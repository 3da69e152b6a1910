//! The bad-input corpus in tests/bad_inputs/: every config of `config/` and every command line
//! of `cli.txt` must be refused by the real binary with exit code 2, a message naming the field
//! (or argument), no panic, and nothing left on disk: no output directory and no hidden staging
//! directory `.NAME.partial-*` beside it. All cases fail in validation, so none integrates; they
//! run in parallel, each in a fresh working directory.
//!
//! Config cases: `config/NNN-name.toml`, whose leading `# expect: TEXT` lines name what stderr
//! must contain; bytes that are not text go in `config/NNN-name.bin` with the expected text in
//! `config/NNN-name.expect`. Command-line cases: `cli.txt`, one `TEXT | ARGS` a line.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Fewer cases than this means the corpus was not found or not read.
const MIN_CASES: usize = 60;
/// A case that is still running after this long did not fail in validation.
const CASE_TIMEOUT: Duration = Duration::from_secs(60);

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_inputs")
}

struct Case {
    name: String,
    /// Arguments; `$TMP` stands for the case's working directory.
    args: Vec<String>,
    expect: Vec<String>,
}

fn config_cases() -> Vec<Case> {
    let dir = corpus().join("config");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    let mut cases = vec![];
    for path in paths {
        let expect: Vec<String> = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => {
                let bytes = std::fs::read(&path).unwrap();
                String::from_utf8_lossy(&bytes).lines().map_while(|l| l.strip_prefix("# expect: ").map(|t| t.trim().to_string())).collect()
            }
            Some("bin") => {
                let sidecar = path.with_extension("expect");
                let text = std::fs::read_to_string(&sidecar).unwrap_or_else(|e| panic!("{}: {e}", sidecar.display()));
                text.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
            }
            Some("expect") => continue,
            _ => panic!("unexpected file in the corpus: {}", path.display()),
        };
        assert!(!expect.is_empty(), "{}: no `# expect:` line", path.display());
        let cfg = path.to_str().unwrap().to_string();
        cases.push(Case {
            name: path.file_name().unwrap().to_string_lossy().to_string(),
            args: ["run", &cfg, "--backend", "cpu", "--no-progress", "--out", "$TMP/out"].map(String::from).to_vec(),
            expect,
        });
    }
    cases
}

fn cli_cases() -> Vec<Case> {
    let text = std::fs::read_to_string(corpus().join("cli.txt")).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(i, line)| {
            let (expect, args) = line.split_once(" | ").unwrap_or_else(|| panic!("cli.txt:{}: expected `TEXT | ARGS`", i + 1));
            let args = args
                .split_whitespace()
                .map(|a| if a.starts_with("tests/") || a.starts_with("examples/") { root.join(a).to_str().unwrap().to_string() } else { a.to_string() })
                .collect();
            Case { name: format!("cli.txt:{}: {line}", i + 1), args, expect: vec![expect.trim().to_string()] }
        })
        .collect()
}

/// The working directory's contents before a case: a plain file and a non-empty directory
/// for the `--out` cases to point at.
fn make_fixtures(dir: &Path) {
    std::fs::write(dir.join("afile"), "").unwrap();
    std::fs::create_dir(dir.join("occupied")).unwrap();
    std::fs::write(dir.join("occupied/notes.txt"), "mine").unwrap();
}

/// What changed in `dir` compared with `make_fixtures`, listed (empty when nothing).
fn leftovers(dir: &Path) -> Vec<String> {
    let mut found = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        if name != "afile" && name != "occupied" {
            found.push(name);
        }
    }
    if std::fs::metadata(dir.join("afile")).map(|m| !m.is_file() || m.len() != 0).unwrap_or(true) {
        found.push("afile (changed)".into());
    }
    let occupied: Vec<String> =
        std::fs::read_dir(dir.join("occupied")).map(|r| r.map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect()).unwrap_or_default();
    if occupied != ["notes.txt"] || std::fs::read_to_string(dir.join("occupied/notes.txt")).ok().as_deref() != Some("mine") {
        found.push(format!("occupied/ (changed: {occupied:?})"));
    }
    found
}

/// Run the binary with `args` in `cwd`; (exit code, stdout, stderr), or Err on timeout.
fn run_binary(args: &[OsString], cwd: &Path) -> Result<(Option<i32>, String, String), String> {
    let mut child = crate::common::bin()
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // drain the pipes on threads so that a chatty child cannot block on a full pipe
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = vec![];
        std::io::Read::read_to_end(&mut out, &mut s).ok();
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = vec![];
        std::io::Read::read_to_end(&mut err, &mut s).ok();
        s
    });
    let Some(status) = crate::common::wait_within(&mut child, CASE_TIMEOUT) else {
        return Err(format!("still running after {CASE_TIMEOUT:?}: it did not fail in validation"));
    };
    let stdout = String::from_utf8_lossy(&out_t.join().unwrap()).to_string();
    let stderr = String::from_utf8_lossy(&err_t.join().unwrap()).to_string();
    Ok((status.code(), stdout, stderr))
}

/// Run one case; None if it passes, else what went wrong.
fn check_case(case: &Case) -> Option<String> {
    let tmp = tempfile::tempdir().unwrap();
    make_fixtures(tmp.path());
    let tmp_str = tmp.path().to_str().unwrap();
    let args: Vec<OsString> = case.args.iter().map(|a| a.replace("$TMP", tmp_str).into()).collect();
    let (code, _stdout, stderr) = match run_binary(&args, tmp.path()) {
        Ok(r) => r,
        Err(why) => return Some(format!("{}: {why}", case.name)),
    };
    let mut problems = vec![];
    if code != Some(2) {
        problems.push(format!("exit code {code:?}, expected 2"));
    }
    for e in &case.expect {
        if !stderr.contains(e.as_str()) {
            problems.push(format!("stderr does not name '{e}'"));
        }
    }
    if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
        problems.push("panicked".into());
    }
    let left = leftovers(tmp.path());
    if !left.is_empty() {
        problems.push(format!("left behind: {left:?}"));
    }
    if problems.is_empty() {
        None
    } else {
        Some(format!("{}: {}\n  stderr: {}", case.name, problems.join("; "), stderr.trim().replace('\n', "\n          ")))
    }
}

/// Run every case on a few threads; return the failures.
fn check_all(cases: &[Case]) -> Vec<String> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(2, 8) * 2;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(vec![]);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                if let Some(f) = check_case(case) {
                    failures.lock().unwrap().push(f);
                }
            });
        }
    });
    let mut f = failures.into_inner().unwrap();
    f.sort();
    f
}

#[test]
fn every_bad_config_is_refused_cleanly() {
    let cases = config_cases();
    assert!(cases.len() >= MIN_CASES, "only {} config cases found in {}", cases.len(), corpus().display());
    let failures = check_all(&cases);
    assert!(failures.is_empty(), "{} of {} config cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn every_bad_command_line_is_refused_cleanly() {
    let cases = cli_cases();
    assert!(cases.len() >= 30, "only {} command-line cases found", cases.len());
    let failures = check_all(&cases);
    assert!(failures.is_empty(), "{} of {} command-line cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// Runs `config` on the CPU backend; asserts a clean exit 0 and finite output.
fn runs_cleanly(config: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let args: Vec<OsString> =
        ["run", config.to_str().unwrap(), "--backend", "cpu", "--no-progress", "--no-plots", "--out", out.to_str().unwrap()].map(OsString::from).to_vec();
    let (code, stdout, stderr) = run_binary(&args, tmp.path()).unwrap();
    let name = config.display();
    assert_eq!(code, Some(0), "{name}: {stderr}");
    assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    // --verify re-runs members on the f64 reference: a NaN measure shows as an infinite deviation
    assert!(!stdout.contains("FAIL") && !stderr.contains("beyond tolerance"), "{name}:\n{stdout}\n{stderr}");
    let series = std::fs::read_to_string(out.join("series.csv")).unwrap();
    let mut values = 0;
    for line in series.lines().skip(1) {
        for v in line.split(',') {
            let x: f64 = v.parse().unwrap_or_else(|_| panic!("{name}: '{v}' in series.csv"));
            assert!(x.is_finite(), "{name}: {x} in series.csv");
            values += 1;
        }
    }
    assert!(values > 0, "{name}: empty series.csv");
}

/// The config the command-line cases use is valid: those cases fail on their arguments.
#[test]
fn the_command_line_cases_config_runs() {
    runs_cleanly(&corpus().join("good.toml"));
}

/// Extreme but valid inputs (accepted/) run to the end with finite results.
#[test]
fn extreme_valid_configs_run_cleanly() {
    let dir = corpus().join("accepted");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        runs_cleanly(&e.unwrap().path());
        n += 1;
    }
    assert!(n > 0, "no configs in {}", dir.display());
}
