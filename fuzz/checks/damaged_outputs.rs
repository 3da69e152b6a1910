//! The check of the `damaged_outputs` fuzz target, shared by the target and the corpus replay
//! of `cargo test` (tests/fuzz_corpus.rs).
//!
//! Damaged shard directories and checkpoints: `merge` and `--resume` must refuse them with a
//! QbatError, or, when the damage left every file a run reads intact, give exactly the result
//! of the undamaged input. Never a panic, and never a different result reported as success.
//!
//! A small run is built once: two shards (csv) and an interrupted run whose blocks are all
//! checkpointed (its analysis failed before the commit, `QBAT_INJECT_FAULT=analysis-fails`).
//! The fuzz input picks a file, a kind of damage, an offset and a byte.
use qbat_gpu::config::{parse_plan, Overrides, Plan};
use qbat_gpu::output::{Format, OutputOptions};
use qbat_gpu::run::{Backend, RunOptions};
use qbat_gpu::study::{merge::merge, run_study, OnDeviceLoss, Shard, StudyOptions};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const CONFIG: &str = "model = \"bloch-charger\"\n[params]\nj = { linspace = [0.5, 1.5, 3] }\ngamma = 0.05\n[initial]\nrandom = \"bloch\"\n[time]\ndt = 0.05\nt_end = 1.0\nsamples = 5\n[ensemble]\nsize = 30\nseed = 2\n";

struct Base {
    dir: tempfile::TempDir,
    plan: Plan,
    shards: Vec<PathBuf>,
    merged: PathBuf,
    /// The interrupted run's output directory, with its staging directory beside it.
    interrupted: PathBuf,
    full: PathBuf,
}

fn options(out: &Path, shard: Option<Shard>, resume: bool, force: bool) -> StudyOptions {
    StudyOptions {
        run: RunOptions { backend: Backend::Cpu, verify: 2, ..Default::default() },
        output: OutputOptions { format: Format::Csv, series: true, plots: false, ..Default::default() },
        out: out.to_path_buf(),
        force,
        resume,
        shard,
        block_members: Some(10),
        on_device_loss: OnDeviceLoss::Stop,
        devices: None,
        allow_mixed_backends: false,
        analyze: false,
    }
}

/// The interrupted run's options: with the analysis, whose injected failure stopped it.
fn resumable(out: &Path, resume: bool, force: bool) -> StudyOptions {
    StudyOptions { analyze: true, ..options(out, None, resume, force) }
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let plan = parse_plan(CONFIG, &Overrides::default()).unwrap();
        let shards: Vec<PathBuf> = (0..2).map(|k| dir.path().join(format!("s{k}"))).collect();
        for (k, s) in shards.iter().enumerate() {
            run_study(&plan, &options(s, Some(Shard { index: k, count: 2 }), false, false)).unwrap();
        }
        let merged = merge(&shards, &dir.path().join("merged"), false, false).unwrap();
        let full = dir.path().join("full");
        run_study(&plan, &options(&full, None, false, false)).unwrap();
        // a finished run without a series, then a rerun with a series whose analysis fails
        // before its commit: every block checkpointed, the old output still in place
        let interrupted = dir.path().join("r");
        let mut first = options(&interrupted, None, false, false);
        first.output.series = false;
        run_study(&plan, &first).unwrap();
        std::env::set_var("QBAT_INJECT_FAULT", "analysis-fails");
        let failed = run_study(&plan, &resumable(&interrupted, false, true));
        std::env::remove_var("QBAT_INJECT_FAULT");
        assert!(failed.is_err());
        assert!(interrupted.parent().unwrap().join(".r.partial").join("checkpoint.json").is_file());
        Base { dir, plan, shards, merged, interrupted, full }
    })
}

/// The directory of the undamaged runs, built once per process and never dropped (a static):
/// the corpus replay removes it when it is done. (Unused by the fuzz target.)
#[allow(dead_code)]
pub fn base_dir() -> &'static Path {
    base().dir.path()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            copy_file(&p, &to.join(e.file_name()));
        }
    }
}

/// `std::fs::copy`, tried again when a signal interrupts it: libFuzzer's timer for `-timeout`
/// (SIGALRM) can land in the copy's system call (EINTR), which is not a finding.
fn copy_file(from: &Path, to: &Path) {
    loop {
        match std::fs::copy(from, to) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            copied => {
                copied.unwrap();
                return;
            }
        }
    }
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else if !p.file_name().unwrap().to_string_lossy().starts_with(".lock") && p.file_name().unwrap() != "lock" {
            out.push(p);
        }
    }
}

/// Damage `path` by `op` at `at` with `byte`.
fn damage(path: &Path, op: u8, at: usize, byte: u8) {
    let mut b = std::fs::read(path).unwrap();
    let i = if b.is_empty() { 0 } else { at % b.len() };
    match op % 5 {
        0 => b.truncate(i),
        1 if !b.is_empty() => b[i] ^= byte.max(1),
        2 => b.insert(i, byte),
        3 if !b.is_empty() => {
            b.remove(i);
        }
        _ => {
            std::fs::remove_file(path).unwrap();
            return;
        }
    }
    std::fs::write(path, b).unwrap();
}

fn same_files(a: &Path, b: &Path) -> bool {
    ["summary.csv", "stats.csv", "series.csv"].iter().all(|f| std::fs::read(a.join(f)).ok() == std::fs::read(b.join(f)).ok())
}

/// One input: five bytes pick the input, the file, the damage, where and the byte.
pub fn check(data: &[u8]) {
    if data.len() < 5 {
        return;
    }
    let base = base();
    let work = tempfile::tempdir().unwrap();
    let (which, op, byte) = (data[0], data[1], data[4]);
    let at = u16::from_le_bytes([data[2], data[3]]) as usize;
    if which % 2 == 0 {
        // merge: damage one file of one shard
        let shards: Vec<PathBuf> = base
            .shards
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let to = work.path().join(format!("s{k}"));
                copy_dir(s, &to);
                to
            })
            .collect();
        let mut all = vec![];
        files(&shards[(which as usize / 2) % 2], &mut all);
        let target = &all[(data[1] as usize / 5) % all.len()];
        damage(target, op, at, byte);
        if let Ok(out) = merge(&shards, &work.path().join("m"), false, false) {
            assert!(same_files(&out, &base.merged), "a damaged shard ({}) merged to another result", target.display());
        }
    } else {
        // --resume: damage one file of the staging directory
        let out = work.path().join("r");
        copy_dir(&base.interrupted, &out);
        let staging = work.path().join(".r.partial");
        copy_dir(&base.interrupted.parent().unwrap().join(".r.partial"), &staging);
        let mut all = vec![];
        files(&staging, &mut all);
        let target = &all[(data[1] as usize / 5) % all.len()];
        damage(target, op, at, byte);
        if run_study(&base.plan, &resumable(&out, true, false)).is_ok() {
            assert!(same_files(&out, &base.full), "a damaged checkpoint ({}) resumed to another result", target.display());
        }
    }
}
