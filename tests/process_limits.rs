//! Under an address-space limit (`ulimit -v`, RLIMIT_AS) or a data-size limit (`ulimit -d`,
//! RLIMIT_DATA) a run that cannot fit is refused before any work (exit 2, one line naming the
//! field and the limit), never aborted by a failed allocation (exit 134), and a run that fits
//! still runs, its blocks sized to the limit. Under a tight stack limit (`ulimit -s`) a run
//! runs, and gives what it gives without one. Runs the real binary under `sh -c 'ulimit -v N;
//! exec ...'`, with 2 worker threads (each thread's stack and allocator arena count against
//! the address-space and data-size limits, so the figures depend on them).

use std::path::Path;
use std::process::Command;

/// bloch-charger, one measure, `samples` samples (t_end 20, dt 0.01).
fn config(samples: usize) -> String {
    format!(
        "model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = 1.0\ngamma = 0.05\n[initial]\nrandom = \"bloch\"\n[time]\ndt = 0.01\nt_end = 20.0\nsamples = {samples}\n[ensemble]\nsize = 1000\nseed = 1\n[output]\nmeasures = [\"energy_b\"]\n"
    )
}

/// A temporary directory holding `text` as c.toml: (the directory, the config's path, the
/// output's path).
fn setup(text: &str) -> (tempfile::TempDir, String, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = dir.path().join("out");
    (dir, cfg.display().to_string(), out)
}

/// The run.json of the output `out`.
fn run_json(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap()
}

/// The limits: the `ulimit` option that sets one, and how a message names it.
#[derive(Clone, Copy)]
enum Ulimit {
    AddressSpace,
    DataSize,
    Stack,
}

impl Ulimit {
    fn option(self) -> &'static str {
        match self {
            Ulimit::AddressSpace => "-v",
            Ulimit::DataSize => "-d",
            Ulimit::Stack => "-s",
        }
    }

    fn named(self) -> &'static str {
        match self {
            Ulimit::AddressSpace => "address-space limit (ulimit -v)",
            Ulimit::DataSize => "data-size limit (ulimit -d)",
            Ulimit::Stack => "stack limit (ulimit -s)",
        }
    }
}

/// (exit code, stderr) of the binary with `args` under `ulimit -v limit_kb`, on the CPU engine.
fn under_limit(limit_kb: u64, args: &[&str], out: &Path) -> (i32, String) {
    under(Ulimit::AddressSpace, "cpu", limit_kb, args, out)
}

/// (exit code, stderr) of the binary with `args` and `--backend backend` under the limit
/// `ulimit` of `limit_kb`.
fn under(ulimit: Ulimit, backend: &str, limit_kb: u64, args: &[&str], out: &Path) -> (i32, String) {
    under_limits(&[(ulimit, limit_kb)], backend, args, out, 2)
}

/// (exit code, stderr) of the binary with `args` and `--backend backend` under each limit of
/// `limits` (kB), with `threads` worker threads.
fn under_limits(limits: &[(Ulimit, u64)], backend: &str, args: &[&str], out: &Path, threads: usize) -> (i32, String) {
    let set: Vec<String> = limits.iter().map(|(u, kb)| format!("ulimit {} {kb}", u.option())).collect();
    under_shell(&set.join(" && "), backend, args, out, threads)
}

/// `under_limits` with the shell's own `limits` ("ulimit -Sn 6").
fn under_shell(limits: &str, backend: &str, args: &[&str], out: &Path, threads: usize) -> (i32, String) {
    let mut c = binary_under(limits);
    c.args(args).args(["--backend", backend, "--no-progress", "--force", "--out"]).arg(out);
    // as common::bin() sets them, and a fixed pool: its threads' stacks and arenas count
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir()).env_remove("QBAT_INJECT_FAULT").env("QBAT_PIPELINE_CACHE", "off");
    c.env("RAYON_NUM_THREADS", threads.to_string()).env_remove("RAYON_RS_NUM_CPUS");
    exit_and_stderr(&mut c)
}

/// The binary under the shell's `limits` ("ulimit -d 300000", several joined by " && "): its
/// arguments and environment are the caller's; exit 97 where a limit could not be set.
fn binary_under(limits: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(format!("{limits} || exit 97; exec \"$@\"")).arg("sh").arg(env!("CARGO_BIN_EXE_qbat-gpu"));
    c
}

/// (exit code, stderr) of a `binary_under` command, whose limits could be set.
fn exit_and_stderr(c: &mut Command) -> (i32, String) {
    let o = c.output().unwrap();
    let code = o.status.code().unwrap_or(-1);
    assert_ne!(code, 97, "a limit could not be set here: {c:?}");
    (code, String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Exit 2, one line that names `field` and `ulimit -v`, no abort, nothing left behind.
fn assert_refused(code: i32, stderr: &str, field: &str, out: &Path) {
    assert_refused_under(Ulimit::AddressSpace, code, stderr, field, out)
}

/// Exit 2, one line that names `field` and the limit, no abort, nothing left behind.
fn assert_refused_under(ulimit: Ulimit, code: i32, stderr: &str, field: &str, out: &Path) {
    assert_eq!(code, 2, "expected a refusal (exit 2), got {code}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with(&format!("error: {field}: ")), "should name {field}: {stderr}");
    assert!(stderr.contains(&format!("under this process's {}", ulimit.named())), "should name the limit: {stderr}");
    assert!(!stderr.contains("memory allocation") && !stderr.contains("panicked"), "{stderr}");
    assert!(!out.exists(), "an output was left behind");
}

/// 20 million members' list (4.8 GiB) under a 1 GB limit: refused, naming --ensemble (it
/// aborted on allocating the member list); the same config with 1,000 members runs.
#[test]
fn a_member_list_beyond_the_limit_is_refused_and_a_small_run_fits() {
    let (_dir, cfg, out) = setup(&config(3));
    let cfg = cfg.as_str();
    let (code, stderr) = under_limit(1_000_000, &["run", cfg, "--ensemble", "20000000"], &out);
    assert_refused(code, &stderr, "--ensemble", &out);
    let (code, stderr) = under_limit(1_000_000, &["run", cfg, "--ensemble", "1000"], &out);
    assert_eq!(code, 0, "{stderr}");
    assert!(out.join("run.json").is_file(), "no output written");
}

/// The streamed statistics of 200,000 members x 2,001 samples, and the default job's 100,000
/// members, under a 700 MB limit: refused naming time.samples (both aborted mid-run, on a
/// block's results).
#[test]
fn statistics_beyond_the_limit_are_refused() {
    let (_dir, cfg, out) = setup(&config(2001));
    let cfg = cfg.as_str();
    let (code, stderr) = under_limit(700_000, &["run", cfg, "--ensemble", "200000"], &out);
    assert_refused(code, &stderr, "time.samples", &out);
    let (code, stderr) = under_limit(700_000, &["--ensemble", "100000"], &out);
    assert_refused(code, &stderr, "time.samples", &out);
}

/// 50,000 members x 2,001 samples under a 1 GB limit: the check accepts it, and its blocks
/// are cut to the headroom under the limit (a block sized from the host's memory, 200 MB of
/// results and its copies, aborted the run). No plots and no series, which are not what this
/// is about: the series, 6.7 GiB of text with `--force`, filled the disk of a CI machine.
fn runs_in_blocks_cut_to(ulimit: Ulimit) {
    let (_dir, cfg, out) = setup(&config(2001));
    let args = ["run", cfg.as_str(), "--ensemble", "50000", "--no-plots", "--series", "false"];
    let (code, stderr) = under(ulimit, "cpu", 1_000_000, &args, &out);
    assert_eq!(code, 0, "{stderr}");
    let run = run_json(&out);
    assert_eq!(run["members"], 50000, "{run}");
    // without the limit: blocks of 12,500 or more (25,000 here), 800 MB of results at a time
    let per_block = run["blocks"]["members_per_block"].as_u64().unwrap();
    assert!(per_block < 12500, "blocks of {per_block} members: not cut to the {}", ulimit.named());
}

/// `runs_in_blocks_cut_to` under `ulimit -v` (under `ulimit -d` below).
#[test]
fn a_run_that_fits_runs_in_blocks_sized_to_the_limit() {
    runs_in_blocks_cut_to(Ulimit::AddressSpace);
}

/// Under a limit that leaves less than a GPU driver may take as it opens (Mesa's lavapipe,
/// which CI runs, aborted or crashed the process under 1 to 1.5 GB of address space, and
/// under 0.3 to 0.5 GB of data): `--backend gpu` is refused naming the limit, and `--backend
/// auto` runs on the CPU engine and says why. Neither loads a driver, so this holds with or
/// without a GPU. Both limits short: both named, and both to raise.
#[test]
fn a_gpu_driver_is_not_opened_under_a_tight_limit() {
    for (ulimit, limit_kb) in [(Ulimit::AddressSpace, 1_500_000), (Ulimit::DataSize, 800_000)] {
        let (_dir, cfg, out) = setup(&config(201));
        let cfg = cfg.as_str();
        let (code, stderr) = under(ulimit, "gpu", limit_kb, &["run", cfg, "--no-plots"], &out);
        assert_eq!(code, 2, "expected a refusal (exit 2), got {code}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.starts_with(&format!("error: gpu: this process's {} leaves ", ulimit.named())), "{stderr}");
        assert!(stderr.trim_end().ends_with(&format!("raise the limit (ulimit {}) or use --backend cpu", ulimit.option())), "{stderr}");
        assert!(!out.exists(), "an output was left behind");
        let (code, stderr) = under(ulimit, "auto", limit_kb, &["run", cfg, "--no-plots"], &out);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(run_json(&out)["backend"], "cpu");
        assert!(stderr.contains(ulimit.named()) && stderr.contains("running on the CPU engine"), "{stderr}");
    }
}

/// Blocks given by hand that the headroom under the limit cannot hold: refused naming
/// --block-members (12,500 members of 2,001 samples aborted the run, exit 134), nothing left.
#[test]
fn blocks_given_by_hand_beyond_the_limit_are_refused() {
    let (_dir, cfg, out) = setup(&config(2001));
    let (code, stderr) = under_limit(1_000_000, &["run", cfg.as_str(), "--ensemble", "50000", "--block-members", "12500", "--no-plots"], &out);
    assert_refused(code, &stderr, "--block-members", &out);
}

/// Under a limit that leaves a GPU driver room (2 GiB of address space, 1 GiB of data), the
/// gate lets `--backend gpu` open it, and the run, its memory checked with the driver's
/// mapping counted (the driver opened before the check), completes.
#[test]
fn a_gpu_run_under_a_limit_that_leaves_the_driver_room_runs() {
    if !crate::common::have_gpu(false) {
        return;
    }
    for (ulimit, limit_kb) in [(Ulimit::AddressSpace, 3_000_000), (Ulimit::DataSize, 1_600_000)] {
        let (_dir, cfg, out) = setup(&config(201).replace("t_end = 20.0", "t_end = 2.0"));
        // (4,000 members: lavapipe integrates about 2e5 member-steps a second on CI's 2 cores)
        let (code, stderr) = under(ulimit, "gpu", limit_kb, &["run", cfg.as_str(), "--ensemble", "4000", "--no-plots"], &out);
        assert_eq!(code, 0, "{}: {stderr}", ulimit.named());
        let run = run_json(&out);
        assert_eq!((run["backend"].as_str(), run["members"].as_u64()), (Some("gpu"), Some(4000)), "{run}");
    }
}

/// Under a data-size limit (`ulimit -d`, which counts the heap, the threads' stacks and the
/// allocator's arenas as they are written), with 200 samples: 50,000 members under 200 MB
/// aborted the run (exit 134, formatting series.csv after the check had counted on the host's
/// memory); it now runs, its blocks and its text cut to the limit, and writes what the run
/// without the limit writes. 20,000,000 members under 1 GB and 2,000 under 40 MB are refused
/// naming the field and `ulimit -d`; 100 members run even there. 50,000 members of 2,001
/// samples under 1 GB run, in blocks cut to the limit.
#[test]
fn under_a_data_size_limit_a_run_is_refused_or_fits() {
    let (dir, cfg, out) = setup(&config(200));
    let cfg = cfg.as_str();
    let data = Ulimit::DataSize;
    let (code, stderr) = under(data, "cpu", 200_000, &["run", cfg, "--ensemble", "50000", "--no-plots"], &out);
    assert_eq!(code, 0, "{stderr}");
    let free = dir.path().join("free");
    let (code, stderr) = under(Ulimit::Stack, "cpu", 8192, &["run", cfg, "--ensemble", "50000", "--no-plots"], &free);
    assert_eq!(code, 0, "{stderr}");
    for file in ["stats.csv", "series.csv"] {
        assert!(std::fs::read(out.join(file)).unwrap() == std::fs::read(free.join(file)).unwrap(), "{file} differs under ulimit -d");
    }
    std::fs::remove_dir_all(&out).unwrap();
    let (code, stderr) = under(data, "cpu", 1_000_000, &["run", cfg, "--ensemble", "20000000"], &out);
    assert_refused_under(data, code, &stderr, "--ensemble", &out);
    assert!(stderr.trim_end().ends_with("or raise the limit (ulimit -d)"), "{stderr}");
    let (code, stderr) = under(data, "cpu", 40_000, &["run", cfg, "--ensemble", "2000"], &out);
    assert_refused_under(data, code, &stderr, "time.samples", &out);
    let (code, stderr) = under(data, "cpu", 40_000, &["run", cfg, "--ensemble", "100", "--no-plots"], &out);
    assert_eq!(code, 0, "{stderr}");
    std::fs::remove_dir_all(&out).unwrap();
    runs_in_blocks_cut_to(data);
}

/// A 32 KiB stack limit (the main thread overflowed its stack under 48 KiB, exit 134, and a
/// GPU run crashed, SIGSEGV, under 64 KiB as lavapipe opened): the run completes, on the CPU
/// engine and on the GPU where there is one, and its statistics are those of the run without
/// the limit, byte for byte.
#[test]
fn a_tight_stack_limit_runs_and_changes_nothing() {
    let (dir, cfg, out) = setup(&config(201).replace("t_end = 20.0", "t_end = 2.0"));
    let cfg = cfg.as_str();
    let backends: &[&str] = if crate::common::have_gpu(false) { &["cpu", "gpu"] } else { &["cpu"] };
    for backend in backends {
        let free = dir.path().join(format!("free-{backend}"));
        let (code, stderr) = under(Ulimit::Stack, backend, 8192, &["run", cfg, "--no-plots"], &free);
        assert_eq!(code, 0, "{stderr}");
        let (code, stderr) = under(Ulimit::Stack, backend, 32, &["run", cfg, "--no-plots"], &out);
        assert_eq!(code, 0, "{backend} under ulimit -s 32: {stderr}");
        assert_eq!(run_json(&out)["backend"], *backend);
        let stats = |dir: &Path| std::fs::read(dir.join("stats.csv")).unwrap();
        assert!(stats(&out) == stats(&free), "{backend}: stats.csv differs under ulimit -s 32");
    }
}

/// Both limits short of what a driver needs: the refusal names each, and says to raise both
/// (raising the one named alone was refused again for the other).
#[test]
fn a_gpu_driver_refused_under_two_limits_names_both() {
    let (_dir, cfg, out) = setup(&config(201));
    let (code, stderr) = under_limits(&[(Ulimit::AddressSpace, 1_500_000), (Ulimit::DataSize, 800_000)], "gpu", &["run", cfg.as_str()], &out, 2);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.starts_with("error: gpu: this process's address-space limit (ulimit -v) leaves "), "{stderr}");
    assert!(stderr.contains(", and its data-size limit (ulimit -d) leaves "), "{stderr}");
    assert!(stderr.trim_end().ends_with("; raise the limits (ulimit -v, ulimit -d) or use --backend cpu"), "{stderr}");
    assert!(!out.exists(), "an output was left behind");
}

/// The default job's analysis at its end under `ulimit -d` with 16 worker threads: a sort of
/// the pooled columns a thread (16 x 32 MB for 20,000 members) aborted the run (exit 134)
/// under 700 MB, after the memory check had accepted it. The columns are now ranked as many at
/// once as the memory left holds, and analysis.csv is byte for byte that of the run without
/// the limit.
#[test]
fn the_default_jobs_analysis_fits_under_a_data_size_limit_with_many_threads() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--ensemble", "20000", "--format", "npy", "--no-plots"];
    let limited = dir.path().join("limited");
    let (code, stderr) = under_limits(&[(Ulimit::DataSize, 700_000)], "cpu", &args, &limited, 16);
    assert_eq!(code, 0, "{stderr}");
    let free = dir.path().join("free");
    let (code, stderr) = under_limits(&[(Ulimit::Stack, 8192)], "cpu", &args, &free, 16);
    assert_eq!(code, 0, "{stderr}");
    let analysis = |dir: &Path| std::fs::read(dir.join("analysis.csv")).unwrap();
    assert!(analysis(&limited) == analysis(&free), "analysis.csv differs under ulimit -d");
    // `analyze` of it checks its memory before it reads the series (it aborted ranking the
    // columns under 300,000 kB): refused, one line naming --max-members and the limit, and
    // with fewer members correlated it runs
    let analyze = |extra: &[&str]| {
        exit_and_stderr(binary_under("ulimit -d 300000").arg("analyze").arg(&free).arg("--no-plots").args(extra).env("RAYON_NUM_THREADS", "2"))
    };
    let (code, stderr) = analyze(&[]);
    assert_eq!(code, 2, "expected a refusal, got {code}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("error: --max-members: the correlations of 20000 members x 101 samples"), "{stderr}");
    assert!(stderr.contains("under this process's data-size limit (ulimit -d)"), "{stderr}");
    let (code, stderr) = analyze(&["--max-members", "5000"]);
    assert_eq!(code, 0, "{stderr}");
}

/// `analyze` of a series.csv of 1,000,000 members under `ulimit -d`: in increasing id order, as
/// a run writes it, its repeated-member check keeps one id and it runs under 80,000 kB; in
/// decreasing order the check needs a set of every id, and it is refused there (exit 2, one
/// line naming the file and the limit) and runs under 250,000 kB.
#[test]
fn a_large_series_csv_out_of_order_is_refused_or_fits_under_a_data_size_limit() {
    use std::io::Write;
    let n = 1_000_000u64;
    let analyze = |dir: &Path, limit_kb: u64| {
        exit_and_stderr(binary_under(&format!("ulimit -d {limit_kb}")).arg("analyze").arg(dir).args(["--pairs", "x:y"]).env("RAYON_NUM_THREADS", "2"))
    };
    let tmp = tempfile::tempdir().unwrap();
    for increasing in [true, false] {
        let dir = tmp.path().join(if increasing { "increasing" } else { "decreasing" });
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("run.json"), r#"{"model": "two-qubit", "precision": "f64"}"#).unwrap();
        let mut csv = std::io::BufWriter::new(std::fs::File::create(dir.join("series.csv")).unwrap());
        writeln!(csv, "member,t,x,y").unwrap();
        for i in 0..n {
            let id = if increasing { i } else { n - 1 - i };
            writeln!(csv, "{id},0,{},{}", i % 1000, (i * 7) % 997).unwrap();
        }
        csv.into_inner().unwrap().sync_all().unwrap();
        let (code, stderr) = analyze(&dir, 80_000);
        if increasing {
            assert_eq!(code, 0, "{stderr}");
            continue;
        }
        assert_eq!(code, 2, "expected a refusal, got {code}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains("series.csv: line 3: the member ids do not increase"), "{stderr}");
        assert!(stderr.contains("under this process's data-size limit (ulimit -d)"), "{stderr}");
        let (code, stderr) = analyze(&dir, 250_000);
        assert_eq!(code, 0, "{stderr}");
    }
}

/// A pool of more worker threads than a process limit leaves room for as they start: refused
/// before any of them starts (exit 2, one line naming the threads and the limit). Under
/// `ulimit -v 900000` a pool of 16 started, a worker then could not map its signal stack, and
/// the run aborted or hung.
#[test]
fn a_pool_beyond_the_limit_is_refused_before_it_starts() {
    let (_dir, cfg, out) = setup(&config(201));
    // (16 arenas whatever the CPUs: each thread of 16 reserves its own 64 MiB)
    let pool = |limit: &str, threads: &str| {
        exit_and_stderr(
            binary_under(limit)
                .args(["run", &cfg, "--backend", "cpu", "--no-progress", "--no-plots", "--force", "--out"])
                .arg(&out)
                .env("RAYON_NUM_THREADS", threads)
                .env("MALLOC_ARENA_MAX", "16")
                .env("XDG_RUNTIME_DIR", std::env::temp_dir())
                .env_remove("QBAT_INJECT_FAULT"),
        )
    };
    let (code, stderr) = pool("ulimit -v 900000", "16");
    assert_eq!(code, 2, "expected a refusal, got {code}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("error: threads: 16 worker threads need about "), "{stderr}");
    assert!(stderr.contains("under this process's address-space limit (ulimit -v)") && stderr.contains("RAYON_NUM_THREADS"), "{stderr}");
    assert!(!out.exists(), "an output was left behind");
    // threads past the arenas share them: 64 under 4,000,000 kB run (an arena a thread refused them)
    let (code, stderr) = pool("ulimit -v 4000000", "64");
    assert_eq!(code, 0, "{stderr}");
    // a count refused whatever the limits is refused as such
    let (code, stderr) = pool("ulimit -v 900000", "100000");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("RAYON_NUM_THREADS = 100000 is more than qbat-gpu starts"), "{stderr}");
}

/// Under a stack limit too small for the main thread (`ulimit -s 32`) and a data-size limit
/// too small for an 8 MiB thread (`ulimit -d 8000`), the work runs on a smaller thread (it
/// overflowed the main thread's stack, exit 134, even for `--version`).
#[test]
fn a_tight_stack_and_data_limit_still_run() {
    let o = binary_under("ulimit -s 32 && ulimit -d 8000").arg("--version").output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(97), "the limits could not be set here");
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("qbat-gpu "), "{stderr}");
}

/// `merge` under `ulimit -d`: two shards' statistics states (about 7 MB each) need more than
/// 20,000 kB leaves: refused before they are read (exit 2, one line naming stats-state.bin and
/// the limit, no --out left; it aborted, exit 134, under 30,000 kB); under 80,000 kB the merge
/// runs, and its stats.csv is the unsharded run's, byte for byte.
#[test]
fn a_merge_beyond_a_data_size_limit_is_refused_and_one_that_fits_runs() {
    let (dir, cfg, whole) = setup(&config(2001));
    let cfg = cfg.as_str();
    let (code, stderr) = under(Ulimit::Stack, "cpu", 8192, &["run", cfg, "--no-plots"], &whole);
    assert_eq!(code, 0, "{stderr}");
    let shards: Vec<_> = (0..2).map(|k| dir.path().join(format!("shard{k}"))).collect();
    for (k, shard) in shards.iter().enumerate() {
        let (code, stderr) = under(Ulimit::Stack, "cpu", 8192, &["run", cfg, "--no-plots", "--shard", &format!("{k}/2")], shard);
        assert_eq!(code, 0, "{stderr}");
    }
    let merged = dir.path().join("merged");
    let merge = |limit_kb: u64| {
        exit_and_stderr(
            binary_under(&format!("ulimit -d {limit_kb}"))
                .arg("merge")
                .args(&shards)
                .arg("--out")
                .arg(&merged)
                .arg("--no-plots")
                .env("RAYON_NUM_THREADS", "2")
                .env_remove("QBAT_INJECT_FAULT"),
        )
    };
    let (code, stderr) = merge(20_000);
    assert_refused_under(Ulimit::DataSize, code, &stderr, "stats-state.bin", &merged);
    assert!(stderr.contains("merging the statistics of 2 shards needs about"), "{stderr}");
    let (code, stderr) = merge(80_000);
    assert_eq!(code, 0, "{stderr}");
    let stats = |d: &Path| std::fs::read(d.join("stats.csv")).unwrap();
    assert!(stats(&merged) == stats(&whole), "the merged stats.csv differs from the unsharded run's");
}

/// Under an open-files limit of 6 (`ulimit -n`), a run failed mid-way on EMFILE (exit 1) and
/// left its staging directory behind: refused before any work (exit 2, one line naming
/// `ulimit -n`), nothing left in the output's parent; where only the soft limit is 6, it is
/// raised, and the run gives what it gives without the limit.
#[test]
fn a_tight_open_files_limit_is_raised_or_refused() {
    let (dir, cfg, out) = setup(&config(201));
    let run = |limits: &str, out: &Path| under_shell(limits, "cpu", &["run", &cfg], out, 2);
    let listing = || crate::common::listing(dir.path());
    let before = listing();
    let (code, stderr) = run("ulimit -n 6", &out);
    assert_eq!(code, 2, "expected a refusal, got {code}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("error: ulimit -n: this process may open 6 files at once"), "{stderr}");
    assert_eq!(listing(), before, "the refused run left something beside its output");
    let (code, stderr) = run("ulimit -Sn 6", &out);
    assert_eq!(code, 0, "{stderr}");
    let free = dir.path().join("free");
    let (code, stderr) = run("true", &free);
    assert_eq!(code, 0, "{stderr}");
    for file in ["stats.csv", "summary.csv", "series.csv"] {
        assert!(std::fs::read(out.join(file)).unwrap() == std::fs::read(free.join(file)).unwrap(), "{file} differs under ulimit -Sn 6");
    }
}

/// A shard's stats-state.bin whose first bucket length is forged to 2^21 (its manifest sealed
/// again, so that the hashes pass): the merge allocated 16 MiB from that length before the
/// read failed, and aborted under `ulimit -d 21000` (exit 134); refused now, exit 2, one line
/// naming the file.
#[test]
fn a_forged_bucket_length_is_refused_under_a_data_size_limit() {
    let (dir, cfg, _) = setup(&config(51));
    let shards: Vec<_> = (0..2).map(|k| dir.path().join(format!("shard{k}"))).collect();
    for (k, shard) in shards.iter().enumerate() {
        let (code, stderr) = under(Ulimit::Stack, "cpu", 8192, &["run", &cfg, "--no-plots", "--ensemble", "200", "--shard", &format!("{k}/2")], shard);
        assert_eq!(code, 0, "{stderr}");
    }
    let state = shards[1].join("stats-state.bin");
    let mut bytes = std::fs::read(&state).unwrap();
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize;
    // magic and shape (24 B), the first cell's n, min, max (24 B), its two sums (a length and
    // that many partials each), its zero count: then its positive buckets' length
    let s2 = 48 + 8 + 8 * u64_at(&bytes, 48);
    let pos_len = s2 + 8 + 8 * u64_at(&bytes, s2) + 8;
    bytes[pos_len..pos_len + 8].copy_from_slice(&(1u64 << 21).to_le_bytes());
    crate::common::reseal(&shards[1], "stats-state.bin", &bytes);
    let merged = dir.path().join("merged");
    let (code, stderr) =
        exit_and_stderr(binary_under("ulimit -d 21000").arg("merge").args(&shards).arg("--out").arg(&merged).arg("--no-plots").env("RAYON_NUM_THREADS", "2"));
    assert_eq!(code, 2, "expected a refusal, got {code}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("stats-state.bin: the state ends inside its buckets"), "{stderr}");
    assert!(!merged.exists(), "an output was left behind");
}

/// A config text of dotted keys within the 4 MiB bound (each part of `k.a.b = 1` is a table of
/// its own to the TOML parser, about 1 kB each: this text took 1.4 GB to parse) under a 1 GB
/// limit: refused before the parse, naming the config and the limit (the parse aborted, exit
/// 134). A config of as many bytes of numbers (a `time.times` list) is parsed under it.
#[test]
fn a_config_whose_parse_cannot_fit_is_refused_not_an_abort() {
    let head = "model = \"bloch-charger\"\n[time]\nt_end = 1.0\ndt = 0.01\nsamples = 3\n";
    let mut text = head.to_string();
    let mut i = 0;
    while text.len() < 4_000_000 {
        text.push_str(&format!("z{i}.a.b.c.d.e.f.g = 1\n"));
        i += 1;
    }
    let (_dir, cfg, out) = setup(&text);
    let (code, stderr) = under_limit(1_000_000, &["run", &cfg], &out);
    assert_refused(code, &stderr, &cfg, &out);
    assert!(stderr.contains("parsing its TOML text"), "{stderr}");
    // 3.9 MB of sample times
    let times: Vec<String> = (0..400_000).map(|k| format!("{:.6}", k as f64 * 1e-5 + 1e-5)).collect();
    let text = format!(
        "model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = 1.0\ngamma = 0.05\n[time]\ndt = 0.01\ntimes = [{}]\n[ensemble]\nsize = 1\n[output]\nmeasures = [\"energy_b\"]\n",
        times.join(", ")
    );
    assert!(text.len() > 3_500_000 && text.len() <= 4 << 20);
    let (_dir, cfg, out) = setup(&text);
    let (code, stderr) = under_limit(1_000_000, &["run", &cfg, "--series", "false", "--no-plots"], &out);
    // (400,000 samples' statistics may not fit: refused then, naming time.samples)
    assert!(code == 0 || (code == 2 && stderr.starts_with("error: time.samples: ")), "{code}: {stderr}");
}
