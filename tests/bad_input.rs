//! Bad input gets exit code 2, a message naming the field and the reason, no panic, and no
//! output directory. Runs the real binary.

use std::path::Path;

const GOOD: &str = r#"
model = "bloch-charger"
[params]
wb = 1.0
j = 1.0
gamma = 0.1
[time]
dt = 0.01
t_end = 1.0
samples = 11
"#;

fn run_config(text: &str, extra: &[&str]) -> (i32, String, bool) {
    let r = crate::common::run_config_text(text, extra);
    (r.code, r.stderr, r.left_behind)
}

/// Assert a config is refused with exit 2, naming `field`, with no output left behind.
fn refused(text: &str, field: &str) {
    let (code, stderr, out_exists) = run_config(text, &[]);
    assert_eq!(code, 2, "expected exit 2 for {field}, got {code}: {stderr}");
    assert!(stderr.contains(field), "message should name '{field}': {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert!(!out_exists, "an output directory was left behind for {field}");
}

fn with(replace: &str, by: &str) -> String {
    assert!(GOOD.contains(replace), "{replace}");
    GOOD.replace(replace, by)
}

#[test]
fn good_config_runs() {
    let (code, stderr, out_exists) = run_config(GOOD, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(out_exists);
}

#[test]
fn unknown_model() {
    refused(&with("\"bloch-charger\"", "\"bloch-chargr\""), "model");
}

#[test]
fn unknown_parameter() {
    refused(&with("wb = 1.0", "wbb = 1.0"), "params.wbb");
}

#[test]
fn unknown_measure() {
    refused(&format!("{GOOD}[output]\nmeasures = [\"energy_x\"]\n"), "output.measures");
}

#[test]
fn measure_that_does_not_apply() {
    refused(&format!("{GOOD}[output]\nmeasures = [\"photon_number\"]\n"), "output.measures");
}

#[test]
fn nan_rate() {
    refused(&with("gamma = 0.1", "gamma = nan"), "params.gamma");
}

#[test]
fn negative_rate() {
    refused(&with("gamma = 0.1", "gamma = -0.1"), "params.gamma");
}

#[test]
fn infinite_parameter() {
    refused(&with("j = 1.0", "j = inf"), "params.j");
}

#[test]
fn zeta_out_of_range() {
    refused("model = \"cavity-cells\"\n[params]\nzeta = 1.5\nn_fock = 4\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 3\n", "params.zeta");
}

#[test]
fn unnormalised_ket() {
    refused(&format!("{GOOD}[initial]\nket = [[1.0, 0.0], [0.1, 0.0], [0.0, 0.0], [0.0, 0.0]]\n"), "initial.ket");
}

/// An empty ket or dm is named as empty (not as an unnormalised state of norm 0).
#[test]
fn empty_state() {
    for (key, want) in [("ket", "non-empty list of amplitudes"), ("dm", "non-empty matrix")] {
        let (code, stderr, out_exists) = run_config(&format!("{GOOD}[initial]\n{key} = []\n"), &[]);
        assert_eq!(code, 2, "{key} = []: {stderr}");
        assert!(stderr.contains(&format!("initial.{key}")) && stderr.contains(want) && stderr.trim_end().lines().count() == 1, "{stderr}");
        assert!(!out_exists);
    }
}

#[test]
fn non_hermitian_dm() {
    refused(
        &format!(
            "{GOOD}[initial]\ndm = [[[0.5,0],[0.2,0],[0,0],[0,0]], [[0.1,0],[0.5,0],[0,0],[0,0]], [[0,0],[0,0],[0,0],[0,0]], [[0,0],[0,0],[0,0],[0,0]]]\n"
        ),
        "initial.dm",
    );
}

#[test]
fn non_positive_dm() {
    refused(
        &format!("{GOOD}[initial]\ndm = [[[1.2,0],[0,0],[0,0],[0,0]], [[0,0],[-0.2,0],[0,0],[0,0]], [[0,0],[0,0],[0,0],[0,0]], [[0,0],[0,0],[0,0],[0,0]]]\n"),
        "initial.dm",
    );
}

#[test]
fn unnormalised_dm() {
    refused(
        &format!("{GOOD}[initial]\ndm = [[[0.6,0],[0,0],[0,0],[0,0]], [[0,0],[0.6,0],[0,0],[0,0]], [[0,0],[0,0],[0,0],[0,0]], [[0,0],[0,0],[0,0],[0,0]]]\n"),
        "initial.dm",
    );
}

#[test]
fn wrong_dimension_state() {
    refused(&format!("{GOOD}[initial]\nket = [[1.0, 0.0], [0.0, 0.0]]\n"), "initial.ket");
}

/// A ket far longer than the space is refused by its length, before its projector is built
/// (300,000 amplitudes, a 600 kB config, asked for a 1.4 TB matrix and aborted); a dm of the
/// wrong size is refused by its size on every model.
#[test]
fn a_huge_ket_is_refused_by_its_length_not_an_abort() {
    let ket = format!("[1.0{}]", ",0".repeat(299_999));
    let (code, stderr, out_exists) = run_config(&format!("{GOOD}[initial]\nket = {ket}\n"), &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("initial.ket: has dimension 300000, the model needs 4") && stderr.trim_end().lines().count() == 1, "{stderr}");
    assert!(!out_exists);
    let dicke = "model = \"dicke\"\n[params]\nn_cells = 1\nn_fock = 2\nphotons = 0\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 3\n";
    let ket = format!("[1.0{}]", ",0".repeat(99_999));
    refused(&format!("{dicke}[initial]\nket = {ket}\n"), "initial.ket: has dimension 100000, the model needs 6 (or 2 for the cells");
    refused(&format!("{dicke}[initial]\ndm = [[1.0, 0, 0], [0, 0, 0], [0, 0, 0]]\n"), "initial.dm: has dimension 3, the model needs 6 (or 2 for the cells");
}

#[test]
fn dt_not_positive() {
    refused(&with("dt = 0.01", "dt = 0.0"), "time.dt");
    refused(&with("dt = 0.01", "dt = -0.01"), "time.dt");
}

#[test]
fn times_not_increasing() {
    refused(&with("t_end = 1.0\nsamples = 11", "times = [0.0, 0.5, 0.4]"), "time.times");
}

/// A t_end too small for its samples to be distinct names t_end, the field the user wrote.
#[test]
fn t_end_too_small_for_its_samples() {
    refused(&with("dt = 0.01\nt_end = 1.0\nsamples = 11", "dt = 1e-320\nt_end = 5e-324\nsamples = 3"), "time.t_end");
}

#[test]
fn negative_time() {
    refused(&with("t_end = 1.0\nsamples = 11", "times = [-1.0, 0.5]"), "time.times");
}

#[test]
fn dt_beyond_rk4_stability() {
    // spectral spread of H for wb = j = 1 is 2 + 2 = 4 (plus decay): dt = 2 is far outside.
    let (code, stderr, _) = run_config(&with("dt = 0.01", "dt = 2.0"), &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("time.dt") && stderr.contains("stability"), "{stderr}");
}

#[test]
fn n_fock_below_one() {
    refused("model = \"cavity-cells\"\n[params]\nn_fock = 0\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 3\n", "params.n_fock");
}

#[test]
fn n_fock_too_large() {
    refused("model = \"cavity-cells\"\n[params]\nn_fock = 100000\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 3\n", "params.n_fock");
}

#[test]
fn fermion_occupation_above_one() {
    refused("model = \"driven-pair\"\n[params]\nreservoir = \"fermion\"\nn_th = 1.5\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 3\n", "params.n_th");
}

#[test]
fn unknown_key_and_section() {
    refused(&format!("{GOOD}[ensemble]\nsizee = 3\n"), "ensemble.sizee");
    refused(&format!("{GOOD}[bogus]\nx = 1\n"), "bogus");
}

#[test]
fn not_toml() {
    let (code, stderr, out) = run_config("model = = \u{1}\u{2}", &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("c.toml: ") && stderr.contains("(line 1)"), "{stderr}");
    assert!(!out);
}

#[test]
fn missing_time_section() {
    refused("model = \"spin-pair\"\n", "time");
}

#[test]
fn sweep_size_mismatch() {
    refused(&format!("{}[ensemble]\nsize = 7\n", with("j = 1.0", "j = { linspace = [0.5, 1.5, 3] }")), "ensemble.size");
}

#[test]
fn non_hermitian_custom_hamiltonian() {
    let cfg = "model = \"two-qubit\"\n[params]\nhamiltonian = [[1,1,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]\nh_battery = [[1,0],[0,-1]]\nh_charger = [[1,0],[0,-1]]\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 3\n";
    refused(cfg, "params.hamiltonian");
}

#[test]
fn bad_cli_values_exit_2() {
    let o = crate::common::bin().args(["--backend", "tpu"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = crate::common::bin().args(["run", "/nonexistent/x.toml", "--backend", "cpu"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("CONFIG"));
}

#[test]
fn large_alpha_for_its_cutoff_runs_and_warns() {
    // |alpha|^2 = 900 in 6 Fock levels: the renormalised state sits at the top of the cutoff.
    let (code, stderr, _) = run_config("model = \"cavity-cells\"\n[params]\nalpha = 30.0\nn_fock = 5\n[time]\ndt = 0.01\nt_end = 0.1\nsamples = 3\n", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("fock_tail exceeds"), "{stderr}");
}

#[test]
fn huge_magnitudes_are_refused() {
    refused(&with("wb = 1.0", "wb = 1.7e308"), "params.wb");
    refused(
        &format!("{GOOD}[initial]\ndm = [[[1e200,0],[0,0],[0,0],[0,0]], [[0,0],[0,0],[0,0],[0,0]], [[0,0],[0,0],[0,0],[0,0]], [[0,0],[0,0],[0,0],[0,0]]]\n"),
        "initial.dm",
    );
}

#[test]
fn ensemble_too_large_for_memory() {
    refused(&format!("{}[ensemble]\nsize = 500000000\n", with("gamma = 0.1", "gamma = { uniform = [0.0, 0.2] }")), "ensemble.size");
}

#[test]
fn too_many_steps_even_when_the_count_would_wrap() {
    refused(&with("dt = 0.01\nt_end = 1.0\nsamples = 11", "dt = 1.0842021724855044e-19\ntimes = [1.0, 2.0]"), "time.dt");
}

#[test]
fn zero_t_end_with_several_samples() {
    refused(&with("t_end = 1.0", "t_end = 0.0"), "time.t_end");
}

#[test]
fn unwritable_or_occupied_out_directory() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, GOOD).unwrap();
    let run = |out: &Path, extra: &[&str]| {
        crate::common::bin()
            .args(["run", cfg.to_str().unwrap(), "--backend", "cpu", "--no-progress", "--no-plots", "--out", out.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = run(Path::new("/proc/qbat-x"), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--out"));
    // an existing non-empty directory is refused, and untouched
    let occupied = dir.path().join("occupied");
    std::fs::create_dir(&occupied).unwrap();
    std::fs::write(occupied.join("notes.txt"), "mine").unwrap();
    std::fs::write(occupied.join("series.csv"), "old").unwrap();
    let o = run(&occupied, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(occupied.join("series.csv")).unwrap(), "old");
    // --force does not make a directory qbat-gpu did not write its own: refused, untouched
    let o = run(&occupied, &["--force"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a qbat-gpu output"), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(occupied.join("series.csv")).unwrap(), "old");
    // in a qbat-gpu output, --force replaces the run's files and keeps the user's
    let own = dir.path().join("own");
    assert!(run(&own, &[]).status.success());
    std::fs::write(own.join("notes.txt"), "mine").unwrap();
    let o = run(&own, &["--force"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read_to_string(own.join("series.csv")).unwrap().starts_with("member,t,"));
    assert_eq!(std::fs::read_to_string(own.join("notes.txt")).unwrap(), "mine");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains("partial")).count(), 0);
}

#[test]
fn seeds_above_2_pow_53_stay_distinct() {
    let cfg = |seed: u64| format!("{}[initial]\nrandom = \"haar\"\n[ensemble]\nsize = 2\nseed = {seed}\n", GOOD);
    let dir = tempfile::tempdir().unwrap();
    let series = |seed: u64, name: &str| {
        let c = dir.path().join(format!("{name}.toml"));
        std::fs::write(&c, cfg(seed)).unwrap();
        let out = dir.path().join(name);
        let o = crate::common::bin()
            .args(["run", c.to_str().unwrap(), "--backend", "cpu", "--no-progress", "--no-plots", "--out", out.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success());
        std::fs::read_to_string(out.join("series.csv")).unwrap()
    };
    assert_ne!(series(9007199254740992, "a"), series(9007199254740993, "b"));
}

/// A process limit that leaves no thread to start (`ulimit -u 1`, as a login node's limit or a
/// batch job's cgroup can): exit 2, one line naming the threads and the limit, no panic, and no
/// output directory. The limit counts every process and thread of the user; root is exempt
/// from it, so as root the run is made as `nobody` (uid 65534) through `setpriv`, from a copy
/// of the binary in a directory that `nobody` can read.
#[cfg(target_os = "linux")]
#[test]
fn a_thread_limit_is_exit_2_not_a_panic() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, GOOD).unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let binary = dir.path().join("qbat-gpu");
    std::fs::copy(env!("CARGO_BIN_EXE_qbat-gpu"), &binary).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = dir.path().join("out");
    let shell = || {
        if unsafe { libc::geteuid() } == 0 {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "bash", "-c"]);
            c
        } else {
            let mut c = std::process::Command::new("bash");
            c.arg("-c");
            c
        }
    };
    // (a container may not let root change its user: nothing to test there)
    match shell().arg("exec \"$0\" --version").arg(&binary).output() {
        Ok(o) if o.status.success() => {}
        other => return eprintln!("skipping: cannot run the binary as another user ({other:?})"),
    }
    let o = shell()
        .arg("ulimit -u 1 && exec \"$0\" run \"$1\" --backend cpu --no-progress --out \"$2\"")
        .arg(&binary)
        .arg(&cfg)
        .arg(&out)
        .env("XDG_RUNTIME_DIR", dir.path())
        .env_remove("QBAT_INJECT_FAULT")
        .env_remove("RAYON_NUM_THREADS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("error: threads: ") && stderr.contains("ulimit -u"), "{stderr}");
    assert!(!out.exists(), "an output directory was left behind");
}

/// `ensemble.seed` as a float, like `ensemble.size`: a whole number below 2^32 is that integer
/// seed (the same members, states and drawn parameters as the integer), and any other float is
/// refused naming the field: a fraction, a negative, one of 2^32 or more (where a written
/// fraction can round to a whole float: 2^52 + 0.5 is read as 2^52, a silently different
/// seed), inf and nan.
#[test]
fn a_whole_float_seed_is_that_integer_seed_and_any_other_is_refused() {
    use qbat_gpu::config::{parse_plan, Overrides};
    let drawn = "model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = { uniform = [0.5, 1.5] }\ngamma = 0.1\n[initial]\nrandom = \"bloch\"\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 11\n[ensemble]\nsize = 6\n";
    let plan = |seed: &str| parse_plan(&format!("{drawn}seed = {seed}\n"), &Overrides::default());
    for (float, int) in [("1.0", 1u64), ("0.0", 0), ("1e6", 1_000_000), ("4294967295.0", (1 << 32) - 1)] {
        let (a, b) = (plan(float).unwrap_or_else(|e| panic!("seed = {float}: {e}")), plan(&int.to_string()).unwrap());
        assert_eq!(a.seed, int, "seed = {float}");
        let states = |p: &qbat_gpu::config::Plan| p.members.iter().map(|m| (p.initial_state(m), m.param_values.clone(), m.theta_phi)).collect::<Vec<_>>();
        assert_eq!(states(&a), states(&b), "seed = {float}");
    }
    for bad in ["1.5", "-1.0", "-0.5", "4294967295.5", "4294967296.0", "4503599627370496.5", "9007199254740993.0", "1e300", "inf", "nan", "-inf"] {
        let e = plan(bad).expect_err(bad).to_string();
        assert!(e.starts_with("ensemble.seed: ") && !e.contains('\n'), "seed = {bad}: {e}");
    }
    // through the binary: exit 2, one line naming the field
    refused(&format!("{GOOD}[ensemble]\nseed = 9007199254740993.0\n"), "ensemble.seed");
}

/// `--ensemble` and `--seed` override the config's size and seed, but a config's value that is
/// no size or seed is refused, naming it: it was dropped without a word (run.json kept it
/// beside the override's). A size only too large stays the override's to replace.
#[test]
fn an_overridden_size_or_seed_is_still_read() {
    let ensemble = |lines: &str| format!("{GOOD}[ensemble]\n{lines}\n");
    for (lines, field) in [("seed = -7.5", "ensemble.seed"), ("size = \"abc\"", "ensemble.size"), ("size = 2.5", "ensemble.size")] {
        let r = crate::common::run_config_text(&ensemble(lines), &["--ensemble", "2", "--seed", "1", "--verify", "0"]);
        assert!(r.code == 2 && r.stderr.contains(field) && !r.left_behind, "{lines}: {} {}", r.code, r.stderr);
    }
    let r = crate::common::run_config_text(&ensemble("size = 2000000000\nseed = 3"), &["--ensemble", "2", "--verify", "0"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// `--auto-fock` with more dicke cells than the limit names `params.n_cells` and its value, as
/// the run without it does (it took the limit, 64, and blamed `params.photons`).
#[test]
fn auto_fock_names_too_many_cells() {
    let text = "model = \"dicke\"\n[params]\nn_cells = 65\n[time]\ndt = 0.01\nt_end = 0.1\nsamples = 2\n";
    for extra in [&[][..], &["--auto-fock"]] {
        let r = crate::common::run_config_text(text, extra);
        assert!(r.code == 2 && r.stderr.contains("params.n_cells") && r.stderr.contains("65"), "{extra:?}: {} {}", r.code, r.stderr);
    }
}
