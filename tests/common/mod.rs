//! Shared by the test files: the binary under test, and for the GPU tests whether an adapter is
//! there (skip with a note, or fail under QBAT_REQUIRE_GPU=1) and a lock that keeps GPU tests in
//! one binary from running at once; the two-qubit states of the eigen-measure checks
//! (`two_qubit_states`).
#![allow(dead_code)]

pub mod two_qubit_states;

use qbat_gpu::engine::gpu_context;
use std::sync::Mutex;

pub static SERIAL: Mutex<()> = Mutex::new(());

pub fn have_gpu(need_f64: bool) -> bool {
    match gpu_context(None, need_f64) {
        Ok(_) => true,
        Err(e) => {
            if std::env::var("QBAT_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("QBAT_REQUIRE_GPU=1 but no usable GPU adapter{}: {e}", if need_f64 { " with f64" } else { "" });
            }
            eprintln!("skipping: no GPU adapter ({e})");
            false
        }
    }
}

/// An f64 comparison the adapter cannot run (no SHADER_F64): a note, or under
/// QBAT_REQUIRE_GPU=1 a failure (CI's adapters, lavapipe included, have f64).
pub fn no_f64(what: &str) {
    if std::env::var("QBAT_REQUIRE_GPU").as_deref() == Ok("1") {
        panic!("QBAT_REQUIRE_GPU=1 but the adapter has no SHADER_F64: {what} not run");
    }
    eprintln!("adapter without SHADER_F64: {what} not run");
}

/// The release binary, with a usable XDG_RUNTIME_DIR (Mesa wants one), no injected faults,
/// and no pipeline cache on disk (the user's is not the tests'; one test sets its own).
pub fn bin() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_qbat-gpu"));
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir()).env_remove("QBAT_INJECT_FAULT");
    c.env("QBAT_PIPELINE_CACHE", "off");
    c
}

/// Wait for `child` at most `deadline`: its exit status, or None after killing it.
pub fn wait_within(child: &mut std::process::Child, deadline: std::time::Duration) -> Option<std::process::ExitStatus> {
    let start = std::time::Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        if start.elapsed() > deadline {
            child.kill().ok();
            child.wait().ok();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// (exit code, stderr) of `c` with stdout discarded, killed after `deadline` (exit -1): for
/// commands that must not hang.
pub fn outcome_within(c: &mut std::process::Command, deadline: std::time::Duration) -> (i32, String) {
    let mut child = c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let status = wait_within(&mut child, deadline);
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    (status.and_then(|s| s.code()).unwrap_or(-1), stderr)
}

/// Wait (at most 120 s) until the checkpoint in the run's `staging` directory lists `blocks`
/// finished blocks, then kill the run; it must still have been running, so that the kill
/// landed mid-run.
pub fn kill_after_blocks(child: &mut std::process::Child, staging: &std::path::Path, blocks: usize) {
    let t0 = std::time::Instant::now();
    loop {
        let done = std::fs::read(staging.join("checkpoint.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .map(|v| v["progress"]["done"].as_array().map_or(0, |a| a.len()))
            .unwrap_or(0);
        if done >= blocks || child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(t0.elapsed().as_secs() < 120, "no checkpoint appeared");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let running = child.try_wait().unwrap().is_none();
    child.kill().unwrap_or(()); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(running, "the run finished before it could be killed; make it longer");
}

/// Run, assert success, and return stdout followed by stderr (notes and warnings go there).
pub fn ok(c: &mut std::process::Command) -> String {
    let o = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", o.status.code());
    stdout + &stderr
}

/// What a refused run left: its exit code, stderr, and whether anything was left behind.
pub struct Refusal {
    pub code: i32,
    pub stderr: String,
    pub left_behind: bool,
}

/// Run the config `text` on the CPU engine into a fresh temporary directory (`run CONFIG
/// --backend cpu --no-progress --out DIR`, then `extra`), for the tests of refused input.
pub fn run_config_text(text: &str, extra: &[&str]) -> Refusal {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = dir.path().join("out");
    let o = bin().arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--out"]).arg(&out).args(extra).output().unwrap();
    let others = std::fs::read_dir(dir.path()).unwrap().count() > 1;
    Refusal { code: o.status.code().unwrap_or(-1), stderr: String::from_utf8_lossy(&o.stderr).to_string(), left_behind: out.exists() || others }
}

/// Write `text` as DIR/c.toml.
pub fn config(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("c.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// A window drive's signature in two runs: `undriven` and `windowed` agree bit for bit at every
/// sample up to `t_open` and differ at every sample after it, for every member.
pub fn assert_window_bits(undriven: &qbat_gpu::run::RunResult, windowed: &qbat_gpu::run::RunResult, t_open: f64) {
    let nm = undriven.measures.len();
    let row = |r: &qbat_gpu::run::RunResult, i: usize, s: usize| (0..nm).map(|k| r.value(i, s, k).to_bits()).collect::<Vec<_>>();
    for i in 0..undriven.member_ids.len() {
        for (s, &t) in undriven.times.iter().enumerate() {
            if t <= t_open {
                assert_eq!(row(undriven, i, s), row(windowed, i, s), "member {i}, t = {t} before the window");
            } else {
                assert_ne!(row(undriven, i, s), row(windowed, i, s), "member {i}, t = {t} after the window opens");
            }
        }
    }
}

/// The largest |a - b| of measure column `k` over every member and sample of two runs of one
/// plan, each value checked finite (a NaN would pass unseen through `f64::max`).
/// |got - want| for folding into a worst case with `f64::max`, a non-finite `got` (or a NaN
/// difference) counting as infinitely far: `f64::max` drops NaN, so a run of NaN would fold to a
/// worst case of 0 and pass.
pub fn deviation(got: f64, want: f64) -> f64 {
    let d = (got - want).abs();
    if got.is_finite() && !d.is_nan() {
        d
    } else {
        f64::INFINITY
    }
}

pub fn worst_deviation(a: &qbat_gpu::run::RunResult, b: &qbat_gpu::run::RunResult, k: usize) -> f64 {
    assert_eq!((a.member_ids.len(), a.times.len(), a.measures.len()), (b.member_ids.len(), b.times.len(), b.measures.len()), "runs of different shapes");
    let mut worst = 0.0f64;
    for i in 0..a.member_ids.len() {
        for s in 0..a.times.len() {
            let (x, y) = (a.value(i, s, k), b.value(i, s, k));
            assert!(x.is_finite() && y.is_finite(), "{:?} not finite at member {i}, sample {s}: {x} and {y}", a.measures[k]);
            worst = worst.max((x - y).abs());
        }
    }
    worst
}

/// Write `bytes` as `name` in the output `dir` and forge its manifest entry to match (size and
/// BLAKE3 redone, no identity), as someone who means it would.
pub fn reseal(dir: &std::path::Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
    let path = dir.join(".qbat-manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let entry = m["files"].as_array_mut().unwrap().iter_mut().find(|f| f["name"] == name).unwrap();
    *entry = serde_json::json!({"name": name, "bytes": bytes.len(), "blake3": blake3::hash(bytes).to_hex().to_string()});
    std::fs::write(path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

/// The names in `dir`, sorted (what a command left beside its output).
pub fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}
