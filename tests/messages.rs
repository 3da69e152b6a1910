//! What the user reads: TOML errors on one line naming the key, options named in their
//! errors (negative numbers, `--shard 0/0`, `bench --json DIR`), no Rust `Debug` text, notes
//! for options that do nothing, no Vulkan loader noise, the scheduler's GPU pinning honoured.

use crate::common::{bin, config};
use qbat_gpu::config::{parse_plan, Overrides};
use std::path::Path;

const GOOD: &str = "model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = 1.0\ngamma = 0.1\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 11\n";

fn good_toml(dir: &Path) -> String {
    let p = dir.join("good.toml");
    std::fs::write(&p, GOOD).unwrap();
    p.to_str().unwrap().to_string()
}

/// Run the binary in `dir` with `args`: (exit code, stdout, stderr).
fn run_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let o = bin().args(args).current_dir(dir).output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).to_string(), String::from_utf8_lossy(&o.stderr).to_string())
}

fn parse_error(text: &str) -> String {
    parse_plan(text, &Overrides::default()).expect_err(text).to_string()
}

#[test]
fn toml_errors_fit_on_one_line_and_name_the_key() {
    let e = parse_error(&GOOD.replace("j = 1.0", "j = 1e400"));
    assert!(e.starts_with("config: params.j: ") && e.ends_with("(line 4)") && !e.contains('\n'), "{e}");
    // a key at the top, before any table
    let e = parse_error(&GOOD.replace("model = \"bloch-charger\"", "model = \"bloch-charger"));
    assert!(e.starts_with("config: model: ") && e.ends_with("(line 1)") && !e.contains('\n'), "{e}");
    // dotted and quoted keys, tables with spaces in the header, arrays of tables
    let e = parse_error(&GOOD.replace("[time]\ndt = 0.01", "[ time ]\n\"dt\" = 0.01.5"));
    assert!(e.starts_with("config: time.dt: ") && e.ends_with("(line 7)"), "{e}");
    let e = parse_error("[[jobs]]\nname = \"a\"\nsize = 1e999\n");
    assert!(e.starts_with("config: jobs.size: ") && e.ends_with("(line 3)"), "{e}");
    // inside a multi-line array (matrix rows are not tables): the key that opened it
    let e = parse_error("model = \"two-qubit\"\n[params]\nhamiltonian = [\n  [1.0, 0.0],\n  [0.0, 1.0 2.0],\n]\n");
    assert!(e.starts_with("config: params.hamiltonian: ") && e.ends_with("(line 5)"), "{e}");
    // an integer past i64 (the parser's own words, "invalid type: integer ... as i128" and "u64
    // value was too large", are not the config's), in decimal and in hex, and one past i128
    for (big, shown) in [
        ("99999999999999999999", "99999999999999999999"),
        ("-99999999999999999999", "-99999999999999999999"),
        ("0x1FFFFFFFFFFFFFFFFF", "590295810358705651711"),
        // (up to u64::MAX the parser says "u64 value was too large", naming no number: the one
        // written is named)
        ("9223372036854775808", "9223372036854775808"),
        ("18446744073709551615", "18446744073709551615"),
        ("0x8000000000000000", "0x8000000000000000"),
    ] {
        let e = parse_error(&GOOD.replace("samples = 11", &format!("samples = {big}")));
        assert_eq!(e, format!("config: time.samples: the integer {shown} is outside the range a config's integers take (|n| < 2^63 = 9.2e18) (line 9)"));
    }
    let e = parse_error(&GOOD.replace("samples = 11", &format!("samples = -{}", "9".repeat(60))));
    assert!(e.starts_with("config: time.samples: ") && e.contains("overflow") && e.len() < 100, "{e}");
    // a duplicated table names the table
    let e = parse_error(&format!("{GOOD}[params]\nwb = 2.0\n"));
    assert!(e.contains("params") && e.ends_with("(line 10)") && !e.contains('\n'), "{e}");
    // no key to be found: the reason and the line
    let e = parse_error(&GOOD.replace("samples = 11", "samples = 11\n= 3"));
    assert!(e.starts_with("config: ") && e.ends_with("(line 10)") && !e.contains('\n') && !e.contains("config: time."), "{e}");
    // through the binary: one line on stderr
    let dir = tempfile::tempdir().unwrap();
    // an unknown key holding a Unicode line or paragraph separator: shown escaped
    for sep in ['\u{2028}', '\u{2029}', '\u{85}'] {
        let cfg = dir.path().join("sep.toml");
        std::fs::write(&cfg, GOOD.replace("j = 1.0", &format!("j = 1.0\n\"k{sep}x\" = 1"))).unwrap();
        let (code, _, stderr) = run_in(dir.path(), &["run", cfg.to_str().unwrap(), "--backend", "cpu", "--out", "out"]);
        assert_eq!(code, 2, "{stderr}");
        assert!(!stderr.contains(sep) && stderr.contains(&sep.escape_default().to_string()), "{sep:?}: {stderr}");
    }
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, GOOD.replace("j = 1.0", "j = 1e400")).unwrap();
    let (code, _, stderr) = run_in(dir.path(), &["run", cfg.to_str().unwrap(), "--backend", "cpu", "--out", "out"]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    // (the file named, as given)
    assert!(stderr.starts_with(&format!("error: {}: params.j: ", cfg.display())), "{stderr}");
    // no key to be told: the file and the line (it said `config:`, naming neither)
    let unclosed = dir.path().join("unclosed.toml");
    std::fs::write(&unclosed, GOOD.replace("[time]", "[time")).unwrap();
    let (code, _, stderr) = run_in(dir.path(), &["run", unclosed.to_str().unwrap(), "--backend", "cpu", "--out", "out"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.starts_with(&format!("error: {}: ", unclosed.display())) && stderr.trim_end().ends_with("(line 6)"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    // the same for a run on the GPU, whose device is opened beside the parse, under a
    // scheduler's pin that the adapters found here may not follow (its note is said by the
    // run, never before a refusal)
    for backend in ["gpu", "auto"] {
        let o = bin()
            .args(["run", cfg.to_str().unwrap(), "--backend", backend, "--out", "out"])
            .current_dir(dir.path())
            .env("CUDA_VISIBLE_DEVICES", "0")
            .env("SLURM_JOB_GPUS", "3")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{backend}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{backend}: {stderr}");
        assert!(stderr.starts_with(&format!("error: {}: params.j: ", cfg.display())), "{backend}: {stderr}");
    }
}

/// A dotted key, a table header or an array-of-tables header of very many parts, and inline
/// tables and arrays nested as deep (200,000 and 1,000,000), are refused on one short line
/// naming the key and its line (the dotted ones said only "recursion limit", with neither),
/// within a stack of 256 KiB (the CLI's is 8 MiB, `stack::WORK_STACK`); through the binary,
/// exit 2 and one line.
#[test]
fn very_deep_keys_and_values_are_refused_naming_their_line() {
    let deep = |n: usize| -> Vec<(String, &'static str)> {
        vec![
            (format!("x{} = 1", ".a".repeat(n)), "config: time.x.a.a.a"),
            (format!("x = {{ y{} = 1 }}", ".a".repeat(n)), "config: time.x"),
            (format!("[{}a]", "a.".repeat(n)), "config: a.a.a"),
            (format!("[[{}a]]", "a . ".repeat(n)), "config: a.a.a"),
            (format!("x = {}1{}", "{a = ".repeat(n), "}".repeat(n)), "config: time.x: "),
            (format!("x = {}1{}", "[".repeat(n), "]".repeat(n)), "config: time.x: "),
        ]
    };
    // (GOOD's nine lines, then the deep one)
    let text = |line: &str| format!("{GOOD}{line}\nsize = 4\n");
    // (600,000 levels: the most whose text stays within a config's 4 MiB in every form)
    for n in [200_000, 600_000] {
        for (line, start) in deep(n) {
            assert!(text(&line).len() <= qbat_gpu::config::CONFIG_TEXT_LIMIT);
            let text = text(&line);
            let e = std::thread::Builder::new().stack_size(256 << 10).spawn(move || parse_error(&text)).unwrap().join().unwrap();
            let case = &line[..40];
            assert!(e.starts_with(start) && e.ends_with("(line 10)"), "{case}: {}", &e[..e.len().min(300)]);
            assert!(e.len() < 300 && !e.contains('\n'), "{case}: {} bytes: {}", e.len(), &e[..e.len().min(300)]);
        }
    }
    // through the binary (files within its 4 MiB for a config)
    let dir = tempfile::tempdir().unwrap();
    for (k, (line, _)) in deep(500_000).into_iter().enumerate() {
        let cfg = dir.path().join(format!("deep{k}.toml"));
        std::fs::write(&cfg, text(&line)).unwrap();
        let (code, _, stderr) = run_in(dir.path(), &["run", cfg.to_str().unwrap(), "--backend", "cpu", "--out", "out"]);
        assert_eq!(code, 2, "{}: {stderr}", &line[..40]);
        assert!(
            stderr.starts_with(&format!("error: {}: ", cfg.display())) && stderr.trim_end().ends_with("(line 10)") && stderr.trim_end().lines().count() == 1,
            "{}: {stderr}",
            &line[..40]
        );
    }
}

/// Numbers far from 1 in a message are written as given, or in scientific notation: a huge
/// photon number was named as 2^64 - 1 (its saturated cast), and |psi|^2, a trace or |alpha|
/// of 1e60 as a decimal of 60 to 120 digits.
#[test]
fn huge_numbers_in_messages_are_named_as_given_and_short() {
    let dicke = "model = \"dicke\"\n[params]\nn_cells = 2\nn_fock = 3\nphotons = 1e60\n";
    let two_qubit = "model = \"spin-pair\"\n";
    let cavity = "model = \"cavity-cells\"\n[params]\nalpha = 1e60\n";
    for (head, extra, field, shown) in [
        (dicke, "", "params.photons", "|1e60>"),
        (two_qubit, "[initial]\nket = [1e60, 0.0, 0.0, 0.0]\n", "initial.ket", "= 9.999999999999998e119 "),
        (two_qubit, "[initial]\ndm = [[1e60, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]\n", "initial.dm", "got 1e60"),
        (cavity, "", "--auto-fock", "|alpha| = 1e60"),
    ] {
        let text = format!("{head}{extra}[time]\ndt = 0.01\nt_end = 1.0\nsamples = 3\n");
        let r = crate::common::run_config_text(&text, &["--auto-fock"][..usize::from(field == "--auto-fock")]);
        assert_eq!(r.code, 2, "{text}: {}", r.stderr);
        assert!(r.stderr.contains(field) && r.stderr.contains(shown), "{text}: expected {field} and {shown} in {}", r.stderr);
        assert!(r.stderr.len() < 400, "{}", r.stderr);
    }
}

#[test]
fn shard_count_zero_says_n_must_be_at_least_1() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = good_toml(dir.path());
    let (code, _, stderr) = run_in(dir.path(), &["run", &cfg, "--shard", "0/0", "--backend", "cpu", "--out", "out"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--shard") && stderr.contains("at least 1"), "{stderr}");
    let (code, _, stderr) = run_in(dir.path(), &["run", &cfg, "--shard", "4/4", "--backend", "cpu", "--out", "out"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--shard") && stderr.contains("0..4"), "{stderr}");
}

/// Text that only Rust's `Debug` writes: `Some(..)`, `Shard { .. }`, enum variants in capitals.
fn assert_no_debug_text(what: &str, text: &str) {
    for bad in ["Some(", "None", "Shard {", "{ index", "F32", "F64", "Backends(", "Vulkan,"] {
        assert!(!text.contains(bad), "{what} shows Rust Debug text '{bad}':\n{text}");
    }
}

#[test]
fn no_rust_debug_text_reaches_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = good_toml(dir.path());
    // an empty shard: named as the user wrote it
    let (code, _, stderr) = run_in(dir.path(), &["run", &cfg, "--shard", "0/4", "--ensemble", "2", "--backend", "cpu", "--out", "out"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("shard 0/4 of 2 members is empty"), "{stderr}");
    assert_no_debug_text("the empty-shard error", &stderr);
    // the run report names the precision as the option spells it
    let (code, stdout, stderr) = run_in(dir.path(), &["run", &cfg, "--backend", "cpu", "--no-progress", "--no-plots", "--out", "out2"]);
    assert_eq!(code, 0, "{stderr}");
    let device = stdout.lines().find(|l| l.starts_with("device")).unwrap_or_else(|| panic!("no device line:\n{stdout}"));
    assert!(device.ends_with("(cpu backend, f64)"), "{device}");
    assert_no_debug_text("the run report", &stdout);
    // zipped sweeps of different lengths: the lengths, not a Rust vector
    let zip =
        GOOD.replace("j = 1.0", "j = { values = [1.0, 2.0] }").replace("gamma = 0.1", "gamma = { values = [0.1, 0.2, 0.3] }") + "[ensemble]\nmode = \"zip\"\n";
    let e = parse_error(&zip);
    assert!(e.contains("ensemble.mode") && e.contains("lengths 3, 2") && !e.contains('['), "{e}");
}

#[test]
fn a_negative_number_for_any_numeric_option_names_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = good_toml(dir.path());
    let cases: [(&[&str], &str); 9] = [
        (&["run", &cfg, "--ensemble", "-1"], "--ensemble"),
        (&["run", &cfg, "--seed", "-1"], "--seed"),
        (&["run", &cfg, "--verify", "-1"], "--verify"),
        (&["run", &cfg, "--block-members", "-1"], "--block-members"),
        (&["--ensemble", "-5"], "--ensemble"),
        (&["bench", "bloch-1k", "--repeat", "-1", "--backend", "cpu"], "--repeat"),
        (&["bench", "--scaling", "--scaling-max-members", "-1", "--backend", "cpu"], "--scaling-max-members"),
        (&["analyze", "nowhere", "--max-members", "-1"], "--max-members"),
        (&["analyze", "nowhere", "--monotone-tol", "-1"], "--monotone-tol"),
    ];
    for (args, option) in cases {
        let mut args = args.to_vec();
        if args[0] == "run" || args[0] == "--ensemble" {
            args.extend(["--backend", "cpu", "--no-progress", "--out", "out"]);
        }
        let (code, _, stderr) = run_in(dir.path(), &args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(option), "{args:?} should name {option}: {stderr}");
        assert!(stderr.starts_with("error: ") && stderr.trim_end().lines().count() == 1, "{args:?}: not one line: {stderr}");
        assert!(!dir.path().join("out").exists(), "{args:?} left out/ behind");
    }
    // an --ensemble past 1e9 is quoted as given, not as its rounded f64
    for n in ["9223372036854775809", "18446744073709551615"] {
        let (code, _, stderr) = run_in(dir.path(), &["run", &cfg, "--ensemble", n, "--backend", "cpu", "--out", "out"]);
        assert!(code == 2 && stderr.contains(&format!("--ensemble: {n} members")), "{n}: {stderr}");
    }
    // and the other bad floats of --monotone-tol
    for v in ["nan", "inf", "-0.5"] {
        let (code, _, stderr) = run_in(dir.path(), &["analyze", "nowhere", "--monotone-tol", v]);
        assert!(code == 2 && stderr.contains("--monotone-tol"), "{v}: {stderr}");
    }
}

#[test]
fn adapter_with_a_cpu_backend_gets_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = good_toml(dir.path());
    for backend in ["cpu", "reference"] {
        let out = format!("out-{backend}");
        let (code, _, stderr) =
            run_in(dir.path(), &["run", &cfg, "--backend", backend, "--adapter", "h100", "--no-progress", "--no-plots", "--verify", "0", "--out", &out]);
        assert_eq!(code, 0, "{stderr}");
        let notes: Vec<&str> = stderr.lines().filter(|l| l.contains("--adapter")).collect();
        assert_eq!(notes.len(), 1, "{stderr}");
        assert!(notes[0].starts_with("note: --adapter h100 ignored") && notes[0].contains(&format!("--backend {backend}")), "{stderr}");
    }
    // no note without --adapter
    let (code, _, stderr) = run_in(dir.path(), &["run", &cfg, "--backend", "cpu", "--no-progress", "--no-plots", "--out", "out-plain"]);
    assert!(code == 0 && !stderr.contains("--adapter"), "{stderr}");
}

#[test]
fn bench_json_that_is_not_a_writable_file_is_refused_before_any_job() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("results")).unwrap();
    for json in ["results", "results/", ".", "missing/bench.json"] {
        let (code, stdout, stderr) = run_in(dir.path(), &["bench", "bloch-1k", "--backend", "cpu", "--repeat", "1", "--json", json]);
        assert_eq!(code, 2, "{json}: {stderr}");
        assert!(stderr.contains("--json"), "{json}: {stderr}");
        assert!(!stdout.contains("job bloch-1k"), "{json}: a job ran first:\n{stdout}");
    }
    assert!(!dir.path().join("missing").exists());
    assert_eq!(std::fs::read_dir(dir.path().join("results")).unwrap().count(), 0);
}

#[test]
fn steady_state_of_a_closed_model_is_bad_input() {
    for (model, named) in [("model = \"spin-pair\"\n", "j1 = 0.1"), ("model = \"bloch-charger\"\n[params]\ngamma = 0.0\n", "gamma = 0")] {
        let r = crate::common::run_config_text(&format!("{model}[time]\nsteady = true\n"), &[]);
        assert_eq!(r.code, 2, "{model}: {}", r.stderr);
        assert!(r.stderr.contains("time.steady") && r.stderr.contains("not unique") && r.stderr.contains(named), "{model}: {}", r.stderr);
        assert!(!r.left_behind, "{model}: left files behind");
    }
}

/// Mesa's Vulkan drivers print `XDG_RUNTIME_DIR is invalid or not set` on every probe when the
/// variable is unset (batch jobs, containers): qbat-gpu gives them a private directory.
#[test]
fn probing_adapters_prints_no_loader_noise() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = good_toml(dir.path());
    for xdg in [None, Some("/nonexistent/run/user")] {
        let mut c = bin();
        match xdg {
            None => c.env_remove("XDG_RUNTIME_DIR"),
            Some(v) => c.env("XDG_RUNTIME_DIR", v),
        };
        let o = c.args(["run", &cfg, "--backend", "gpu", "--adapter", "no-such-adapter-xyz", "--out", "out"]).current_dir(dir.path()).output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(!stderr.contains("XDG_RUNTIME_DIR"), "{xdg:?}: {stderr}");
    }
}

/// With XDG_RUNTIME_DIR unset and the per-user runtime directory under TMPDIR not usable (a
/// link planted there, here to a directory of someone else's making), each run made its own
/// `qbat-gpu-runtime-UID-PID` there and left it: every run goes now without a trace, and writes
/// nothing through the link. A TMPDIR that is missing falls back to /tmp.
#[cfg(unix)]
#[test]
fn a_per_process_runtime_dir_goes_with_the_process() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let cfg = good_toml(dir.path());
    let tq = dir.path().join("tq");
    std::fs::create_dir_all(tq.join("victim")).unwrap();
    let uid = std::fs::metadata("/proc/self").unwrap().uid();
    std::os::unix::fs::symlink("victim", tq.join(format!("qbat-gpu-runtime-{uid}"))).unwrap();
    for k in 0..3 {
        let o = bin()
            .env_remove("XDG_RUNTIME_DIR")
            .env("TMPDIR", &tq)
            .args(["run", &cfg, "--backend", "cpu", "--no-progress", "--no-plots", "--out"])
            .arg(dir.path().join(format!("g{k}")))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(crate::common::listing(&tq), [format!("qbat-gpu-runtime-{uid}"), "victim".to_string()]);
    assert_eq!(std::fs::read_dir(tq.join("victim")).unwrap().count(), 0);
    // a missing TMPDIR: the runtime dir under /tmp, so that the probe prints no loader noise
    let o = bin()
        .env_remove("XDG_RUNTIME_DIR")
        .env("TMPDIR", dir.path().join("missing"))
        .args(["run", &cfg, "--no-progress", "--no-plots", "--out"])
        .arg(dir.path().join("auto"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(!stderr.contains("XDG_RUNTIME_DIR"), "{stderr}");
}

#[test]
fn private_runtime_dir_is_made_mode_0700_and_reused() {
    use qbat_gpu::gpu::runtime_dir::{private_runtime_dir, usable_runtime_dir};
    let base = tempfile::tempdir().unwrap();
    let d = private_runtime_dir(base.path()).expect("a runtime dir");
    assert!(d.starts_with(base.path()) && usable_runtime_dir(&d));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700);
        // a world-readable directory, a link or a file is not usable
        let open = base.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(!usable_runtime_dir(&open));
        std::os::unix::fs::symlink(&d, base.path().join("link")).unwrap();
        assert!(!usable_runtime_dir(&base.path().join("link")));
    }
    assert_eq!(private_runtime_dir(base.path()).as_deref(), Some(d.as_path()), "reused");
    std::fs::write(base.path().join("file"), "").unwrap();
    assert!(!usable_runtime_dir(&base.path().join("file")) && !usable_runtime_dir(Path::new("relative/dir")));
}

/// The scheduler's pinning reaches the adapter choice of the binary: a task given no GPU is
/// refused on `--backend gpu` (exit 2, naming the variable) and runs on the CPU engine with a
/// note under `--backend auto`. `--adapter` takes an index.
#[test]
fn a_task_given_no_gpu_does_not_take_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = good_toml(dir.path());
    let o = bin()
        .env("CUDA_VISIBLE_DEVICES", "NoDevFiles")
        .args(["run", &cfg, "--backend", "gpu", "--no-progress", "--out", "out"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("CUDA_VISIBLE_DEVICES=NoDevFiles") || stderr.contains("no GPU adapter found"), "{stderr}");
    let o = bin()
        .env("SLURM_JOB_GPUS", "")
        .env_remove("CUDA_VISIBLE_DEVICES")
        .args(["run", &cfg, "--backend", "auto", "--no-progress", "--no-plots", "--out", "out2"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("(cpu backend"), "{stdout}");
    let (code, _, stderr) = run_in(dir.path(), &["run", &cfg, "--backend", "gpu", "--adapter", "99", "--out", "out3"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no adapter 99") || stderr.contains("no GPU adapter found"), "{stderr}");
}

/// A pinning that cannot be followed (a MIG instance UUID names no GPU by itself): one note on
/// stderr, kept in run.json, and the run goes on on the default adapter.
#[test]
fn a_pinning_that_cannot_be_followed_is_noted_in_run_json() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = good_toml(dir.path());
    let o = bin()
        .env("CUDA_VISIBLE_DEVICES", "MIG-12345678-aaaa-bbbb-cccc-000000000000")
        .args(["run", &cfg, "--backend", "gpu", "--no-progress", "--no-plots", "--verify", "0", "--out", "out"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    if o.status.code() == Some(2) && stderr.contains("no GPU adapter found") && std::env::var("QBAT_REQUIRE_GPU").as_deref() != Ok("1") {
        eprintln!("skipping: no GPU adapter");
        return;
    }
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let notes: Vec<&str> = stderr.lines().filter(|l| l.contains("CUDA_VISIBLE_DEVICES=MIG-")).collect();
    assert_eq!(notes.len(), 1, "{stderr}");
    assert!(notes[0].starts_with("note: ") && notes[0].contains("MIG instance"), "{stderr}");
    let run: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/run.json")).unwrap()).unwrap();
    assert!(run["notes"].to_string().contains("CUDA_VISIBLE_DEVICES=MIG-"), "{}", run["notes"]);
}

/// Every command-line error is one line naming what is wrong (clap's details and usage
/// joined on, its "--help" line left out), with exit 2; help and version still print in full
/// on stdout, with exit 0.
#[test]
fn command_line_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = good_toml(dir.path());
    let cases: [(&[&str], &[&str]); 6] = [
        (&["run", &cfg, "--format", "xml"], &["--format", "xml", "csv, npy"]),
        (&["run", &cfg, "--bogus"], &["--bogus"]),
        (&["run"], &["<CONFIG>"]),
        (&["run", &cfg, "--shard", "1/3/4"], &["--shard"]),
        (&["run", &cfg, "--precision", "f16"], &["--precision", "f16"]),
        (&["--backend", "cpu", "run", &cfg], &["run"]),
    ];
    for (args, names) in cases {
        let (code, stdout, stderr) = run_in(dir.path(), args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: ") && stderr.trim_end().lines().count() == 1, "{args:?}: not one line: {stderr}");
        assert!(!stderr.contains("For more information") && !stderr.contains("--help"), "{args:?}: {stderr}");
        for name in names {
            assert!(stderr.contains(name), "{args:?} should name {name}: {stderr}");
        }
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
    }
    for args in [&["--help"][..], &["run", "--help"], &["--version"]] {
        let (code, stdout, stderr) = run_in(dir.path(), args);
        assert_eq!((code, stderr.as_str()), (0, ""), "{args:?}");
        assert!(stdout.contains(if args == ["--version"] { "qbat-gpu" } else { "Usage:" }), "{args:?}: {stdout}");
    }
}

/// A stdout or stderr that cannot be written is never a panic: a full device on stdout is an
/// i/o error (exit 1, one line); a reader that closed the pipe ends the output quietly; a run
/// whose stderr is full finishes and commits its files; an input error stays exit 2. A newline
/// in a user's string stays inside the one line, escaped.
#[cfg(target_os = "linux")]
#[test]
fn a_console_that_cannot_be_written_is_not_a_panic_and_a_message_stays_one_line() {
    use std::process::Stdio;
    let full = || std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let o = bin().arg("models").stdout(full()).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: i/o: standard output") && stderr.trim_end().lines().count() == 1, "{stderr}");
    // a reader that takes nothing and goes away
    let mut child = bin().arg("measures").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        config(dir.path(), "model = \"bloch-charger\"\n[time]\ndt = 0.01\nt_end = 0.5\nsamples = 6\n[ensemble]\nsize = 8\n[protocol]\nswitch_off = 1e9\n");
    let out = dir.path().join("o");
    let o = bin().arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--no-plots", "--out"]).arg(&out).stderr(full()).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(out.join("run.json").is_file() && !dir.path().join(".o.partial").exists());
    let o = bin().arg("run").arg(dir.path().join("missing.toml")).stderr(full()).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    for text in ["model = \"bloch\\nerror: forged\"\n", "\"a\\nb\" = 1\nmodel = \"bloch-charger\"\n"] {
        let o = bin().arg("run").arg(config(dir.path(), text)).args(["--backend", "cpu"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
    // --help too: a full stdout is exit 1
    let o = bin().arg("--help").stdout(full()).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    // thousands of worker threads asked for, by either of the names rayon reads: refused
    // before any is started
    for var in ["RAYON_NUM_THREADS", "RAYON_RS_NUM_CPUS"] {
        let o = bin().arg("models").env_remove("RAYON_NUM_THREADS").env(var, "100000").output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(var) && stderr.trim_end().lines().count() == 1, "{stderr}");
        // a value that is not a number (rayon would take its default, every CPU): refused
        for junk in ["junk", "-3", "1e3", " 2"] {
            let o = bin().arg("models").env_remove("RAYON_NUM_THREADS").env(var, junk).output().unwrap();
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{var}={junk}: {stderr}");
            assert!(stderr.contains(var) && stderr.contains("not a number") && stderr.trim_end().lines().count() == 1, "{stderr}");
        }
    }
    // a number, and an empty value (unset): taken
    for value in ["2", ""] {
        let o = bin().arg("models").env("RAYON_NUM_THREADS", value).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{value:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
}

/// The configs the documents show a user parse as they stand: each ```toml block of README.md
/// and docs/interface.md (a `[[drive]]` block after a bloch-charger config). The README's
/// reference once asked for 1000 members of a 77-point grid, which every run refuses.
#[test]
fn the_documents_configs_parse() {
    let mut blocks = 0;
    for doc in ["README.md", "docs/interface.md"] {
        let text = std::fs::read_to_string(doc).unwrap();
        let mut lines = text.lines();
        while lines.by_ref().any(|l| l.trim_end() == "```toml") {
            let block: String = lines.by_ref().take_while(|l| !l.starts_with("```")).map(|l| format!("{l}\n")).collect();
            let cfg = if block.contains("model =") { block.clone() } else { format!("{GOOD}{block}") };
            if let Err(e) = parse_plan(&cfg, &Overrides::default()) {
                panic!("{doc}: a config block is refused: {e}\n{block}");
            }
            blocks += 1;
        }
    }
    assert!(blocks >= 4, "{blocks} blocks found");
}

/// A control character in `--out` (a newline, an escape sequence that turns a terminal red)
/// reached stdout raw in the report's `output` line and analyze's lines: shown escaped now,
/// as in the error lines; the directory keeps its name.
#[test]
fn control_characters_of_out_are_escaped_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = good_toml(dir.path());
    let out = dir.path().join("nl\nname\x1b[31mred");
    let stdout = crate::common::ok(bin().args(["run", &cfg, "--backend", "cpu", "--no-progress", "--no-plots", "--out"]).arg(&out));
    let stdout = stdout + &crate::common::ok(bin().arg("analyze").arg(&out).arg("--no-plots"));
    assert!(out.join("run.json").is_file() && out.join("analysis.csv").is_file());
    assert!(!stdout.chars().any(|c| c.is_control() && c != '\n'), "{stdout:?}");
    let shown = format!("{}", dir.path().join(r"nl\nname\u{1b}[31mred").display());
    let line = stdout.lines().find(|l| l.starts_with("output      : ")).unwrap();
    assert!(line.contains(&shown), "{line:?}");
    assert_eq!(stdout.lines().filter(|l| l.contains(&shown)).count(), 3, "{stdout}");
    // a run cut short (its run.json not written) keeps its checkpoint, and says so on stderr;
    // its resume says where it resumed from on stdout: both escaped
    let again = dir.path().join("again[31mred");
    let o = bin()
        .args(["run", &cfg, "--backend", "cpu", "--no-progress", "--no-plots", "--out"])
        .arg(&again)
        .env("QBAT_INJECT_FAULT", "full-disk=run.json")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("--resume") && !stderr.chars().any(|c| c.is_control() && c != '\n'), "{stderr:?}");
    let resumed = crate::common::ok(bin().args(["run", &cfg, "--backend", "cpu", "--no-progress", "--no-plots", "--resume"]).arg(&again));
    assert!(resumed.contains("resumed from the checkpoint") && !resumed.chars().any(|c| c.is_control() && c != '\n'), "{resumed:?}");
}

/// A control character in what a note quotes (a scheduler variable's value, an output
/// directory's name) reached stderr raw and broke the note's line: shown escaped now, as in
/// the error lines.
#[test]
fn control_characters_quoted_by_notes_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = good_toml(dir.path());
    let run = |out: &Path| {
        let mut c = bin();
        c.args(["run", &cfg, "--no-progress", "--no-plots", "--out"]).arg(out);
        c
    };
    // the note of the CPU fallback names the variable that assigned no GPU, with its value
    let o =
        run(&dir.path().join("env")).args(["--backend", "auto"]).env_remove("CUDA_VISIBLE_DEVICES").env("SLURM_STEP_GPUS", "a\nb\x1b[31m").output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(r"(SLURM_STEP_GPUS=a\nb\u{1b}[31m)") && !stderr.chars().any(|c| c.is_control() && c != '\n'), "{stderr:?}");
    // the note of a commit cut short, undone by the next run into its directory, names it
    let out = dir.path().join("nl\nname");
    crate::common::ok(run(&out).args(["--backend", "cpu"]));
    let cut = run(&out).args(["--backend", "cpu", "--force"]).env("QBAT_INJECT_FAULT", "exit-mid-commit=1").output().unwrap();
    assert_eq!(cut.status.code(), Some(137), "{}", String::from_utf8_lossy(&cut.stderr));
    let o = run(&out).args(["--backend", "cpu", "--force"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let line = stderr.lines().find(|l| l.starts_with("note: undid the interrupted commit into")).unwrap_or_else(|| panic!("{stderr:?}"));
    assert!(line.contains(r"nl\nname (process "), "{line:?}");
    // the note of an interrupted run discarded by --force names its staging directory
    let cut =
        run(&out).args(["--backend", "cpu", "--force", "--ensemble", "8", "--block-members", "2"]).env("QBAT_INJECT_FAULT", "no-thread-at=1").output().unwrap();
    assert_eq!(cut.status.code(), Some(2), "{}", String::from_utf8_lossy(&cut.stderr));
    let o = run(&out).args(["--backend", "cpu", "--force"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let line = stderr.lines().find(|l| l.starts_with("note: discarded the interrupted run in")).unwrap_or_else(|| panic!("{stderr:?}"));
    assert!(line.contains(r".nl\nname.partial (use --resume"), "{line:?}");
}

/// A bidirectional formatting character (U+202E) in what a message quotes reached the
/// terminal raw and reordered the rest of the line, and a note quoted a value of any length
/// whole (a scheduler variable of 100 KB): both are shown escaped and bounded now, in notes
/// as in errors, the command line's among them.
#[test]
fn notes_and_errors_escape_reordering_characters_and_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = good_toml(dir.path());
    let fallback = |value: &str, out: &str| {
        let o = bin()
            .args(["run", &cfg, "--no-progress", "--no-plots", "--backend", "auto", "--out"])
            .arg(dir.path().join(out))
            .env_remove("CUDA_VISIBLE_DEVICES")
            .env("SLURM_STEP_GPUS", value)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stderr).unwrap()
    };
    let stderr = fallback("gpu\u{202e}0", "bidi");
    assert!(stderr.contains(r"(SLURM_STEP_GPUS=gpu\u{202e}0)") && !stderr.contains('\u{202e}'), "{stderr:?}");
    let stderr = fallback(&"7".repeat(100_000), "long");
    let note = stderr.lines().find(|l| l.contains("SLURM_STEP_GPUS=")).unwrap_or_else(|| panic!("{}", &stderr[..stderr.len().min(300)]));
    assert!(note.len() <= 10_100 && note.contains(" bytes left out) ... "), "{} bytes", note.len());
    // the parser's message quotes the value given
    let o = bin().args(["validate", "--backend", "gpu\u{2067}x"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(r"gpu\u{2067}x") && !stderr.contains('\u{2067}') && stderr.trim_end().lines().count() == 1, "{stderr:?}");
}

/// A value of megabytes quoted in a refusal (a model name, a measure, an option's value) was
/// echoed whole, a line of megabytes on stderr: the line keeps its start and end now, with
/// the bytes left out counted, and still names the field.
#[test]
fn a_huge_value_quoted_in_a_refusal_is_not_echoed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let huge = "x".repeat(3_000_000);
    let cases = [
        (format!("model = \"{huge}\"\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 2\n"), "error: model: unknown model 'xxx"),
        (
            format!("model = \"bloch-charger\"\n[output]\nmeasures = [\"{huge}\"]\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 2\n"),
            "error: output.measures: unknown measure 'xxx",
        ),
    ];
    let check = |o: std::process::Output, start: &str| {
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{}", &stderr[..stderr.len().min(300)]);
        assert!(stderr.len() <= 10_100 && stderr.trim_end().lines().count() == 1, "{} bytes", stderr.len());
        assert!(stderr.starts_with(start) && stderr.contains(" bytes left out) ... "), "{}", &stderr[..stderr.len().min(300)]);
    };
    for (k, (text, start)) in cases.iter().enumerate() {
        let cfg = config(dir.path(), text);
        check(bin().arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--out"]).arg(dir.path().join(format!("o{k}"))).output().unwrap(), start);
    }
    // a command-line value, in the parser's message
    let arg = "y".repeat(100_000);
    check(bin().args(["validate", "--backend", &arg]).output().unwrap(), "error: invalid value 'yyy");
}
