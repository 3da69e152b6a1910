//! End-to-end: the real binary, its output files, and reproducibility across thread counts.

use crate::common::{bin, ok};

#[test]
fn default_study_writes_its_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("study");
    let stdout = ok(bin().args(["--ensemble", "40", "--backend", "cpu", "--no-progress", "--verify", "3", "--out"]).arg(&out));
    assert!(stdout.contains("Spearman"), "{stdout}");
    assert!(stdout.contains("verify") && stdout.contains("PASS"), "{stdout}");
    for f in ["run.json", "summary.csv", "stats.csv", "plot_capacity_b.svg"] {
        assert!(out.join(f).metadata().unwrap().len() > 0, "{f} missing or empty");
    }
    // the default study writes its series as npy, and analyses it (analysis.csv)
    assert!(out.join("series.npy").metadata().unwrap().len() > 0 && out.join("analysis.csv").is_file());
    let run: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["members"], 40);
    assert_eq!(run["model"], "spin-pair");
    assert!(run["member_steps_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(run["verify"]["pass"], true);
    // stats.csv: one row per (time, measure)
    let stats = std::fs::read_to_string(out.join("stats.csv")).unwrap();
    let measures = run["measures"].as_array().unwrap().len();
    assert_eq!(stats.lines().count(), 1 + 101 * measures);
    // The analysis and its 2-D histograms (counted in the analysis' own pass over the series)
    // are committed with the run, listed in its manifest; `qbat-gpu analyze` on a copy, which
    // reads the series by itself, writes the same files.
    let manifest = qbat_gpu::output::manifest::Manifest::read(&out).unwrap().unwrap();
    manifest.verify(&out).unwrap();
    let hist2d: Vec<String> = manifest.files.iter().map(|f| f.name.clone()).filter(|n| n.starts_with("plot_hist2d_capacity_b_")).collect();
    assert!(manifest.contains("analysis.csv") && hist2d.len() == 2 * 9, "{hist2d:?}");
    let again = dir.path().join("again");
    std::fs::create_dir(&again).unwrap();
    for f in &manifest.files {
        std::fs::copy(out.join(&f.name), again.join(&f.name)).unwrap();
    }
    for f in std::iter::once("analysis.csv".to_string()).chain(hist2d.iter().cloned()) {
        std::fs::remove_file(again.join(&f)).unwrap();
    }
    ok(bin().arg("analyze").arg(&again));
    for f in std::iter::once("analysis.csv".to_string()).chain(hist2d.into_iter().filter(|n| n.ends_with(".svg"))) {
        assert!(std::fs::read(out.join(&f)).unwrap() == std::fs::read(again.join(&f)).unwrap(), "{f} differs from analyze's own");
    }
}

#[test]
fn run_writes_csv_series_with_round_trip_floats() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    ok(bin().args(["run", "examples/bloch-charger.toml", "--backend", "cpu", "--no-progress", "--no-plots", "--out"]).arg(&out));
    let series = std::fs::read_to_string(out.join("series.csv")).unwrap();
    let header = series.lines().next().unwrap();
    assert_eq!(header, "member,t,energy_b,ergotropy_b,capacity_b,power_b,ergotropic_power_b,concurrence");
    assert_eq!(series.lines().count(), 1 + 13 * 1001);
    // theta = pi member (the last), energy_b at t = 10 vs the closed form with decay
    let row = series.lines().find(|l| l.starts_with("12,10.0,")).unwrap();
    let e: f64 = row.split(',').nth(2).unwrap().parse().unwrap();
    let (j, gamma) = (1.0f64, 0.05f64);
    let g = (j * j - gamma * gamma / 16.0).sqrt();
    let closed = (j / g).powi(2) * (g * 10.0).sin().powi(2) * (-gamma * 10.0 / 2.0).exp();
    assert!((e - closed).abs() < 1e-8, "{e} vs {closed}");
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert!(summary.lines().next().unwrap().starts_with("member,theta,phi,max_energy_b,t_max_energy_b"));
}

#[test]
fn npy_series_has_the_documented_shape() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    ok(bin().args(["run", "examples/driven-pair.toml", "--backend", "cpu", "--no-progress", "--no-plots", "--format", "npy", "--out"]).arg(&out));
    let bytes = std::fs::read(out.join("series.npy")).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(npy.shape(), &[10, 401, 6]);
    let axes: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("series.json")).unwrap()).unwrap();
    assert_eq!(axes["measures"].as_array().unwrap().len(), 6);
    assert_eq!(axes["times"].as_array().unwrap().len(), 401);
    let data: Vec<f64> = npy.into_vec().unwrap();
    assert!(data.iter().all(|x| x.is_finite()));
}

#[test]
fn same_seed_same_members_whatever_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let run = |threads: &str, name: &str| {
        let out = dir.path().join(name);
        ok(bin()
            .env("RAYON_NUM_THREADS", threads)
            .args(["run", "examples/two-qubit.toml", "--backend", "cpu", "--no-progress", "--no-plots", "--ensemble", "20", "--out"])
            .arg(&out));
        std::fs::read_to_string(out.join("series.csv")).unwrap()
    };
    assert_eq!(run("1", "a"), run("2", "b"));
}

#[test]
fn models_and_measures_list_the_contract_names() {
    let models = ok(bin().arg("models"));
    for m in ["spin-pair", "driven-pair", "bloch-charger", "cavity-cells", "two-qubit", "n_fock", "zeta", "temperature"] {
        assert!(models.contains(m), "{m}");
    }
    let measures = ok(bin().arg("measures"));
    for m in qbat_gpu::measures::Measure::ALL {
        assert!(measures.contains(m.name()));
    }
}

#[test]
fn validate_passes_on_the_cpu() {
    let out = ok(bin().args(["validate", "--backend", "cpu"]));
    assert!(out.contains("validate: 66 passed, 0 failed"), "{out}");
}

/// `validate` and `bench` take `--adapter` as `run` does; the CPU engine ignores it with one
/// note for all the checks or jobs, and `bench --print-config`, which runs nothing, refuses it.
#[test]
fn validate_and_bench_on_the_cpu_ignore_the_adapter_once() {
    let said_once = |o: &std::process::Output| {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        assert_eq!(err.matches("note: --adapter nope ignored: --backend cpu does not use a GPU").count(), 1, "{err}");
    };
    let o = bin().args(["validate", "--backend", "cpu", "--adapter", "nope"]).output().unwrap();
    said_once(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("validate: 66 passed, 0 failed"));
    said_once(
        &bin().args(["bench", "bloch-1k", "bloch-1k-driven", "--members", "4", "--repeat", "1", "--backend", "cpu", "--adapter", "nope"]).output().unwrap(),
    );
    let o = bin().args(["bench", "bloch-1k", "--print-config", "--adapter", "nope"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("'--print-config' cannot be used with '--adapter"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn fock_tail_warning_names_members_and_a_cutoff() {
    // alpha = 2 in 5 Fock levels: the tail is far above 1e-6
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "model = \"cavity-cells\"\n[params]\nalpha = 2.0\nn_fock = 4\nlambda = { values = [0.5, 1.0] }\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 11\n",
    )
    .unwrap();
    let o = bin().args(["run", cfg.to_str().unwrap(), "--backend", "cpu", "--no-progress", "--no-plots", "--out"]).arg(dir.path().join("o")).output().unwrap();
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("WARNING: fock_tail exceeds 1e-6 for 2 member(s): 0 (") && err.contains("use n_fock >="), "{err}");
    let run: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("o/run.json")).unwrap()).unwrap();
    assert!(run["notes"][0].as_str().unwrap().contains("fock_tail"));
}

#[test]
fn auto_fock_picks_a_cutoff_with_a_negligible_tail() {
    use qbat_gpu::config::{auto_n_fock, parse_plan, Overrides};
    use qbat_gpu::model::cavity_cells::coherent_tail;
    let n = auto_n_fock(2.0).unwrap();
    assert!(coherent_tail(qbat_gpu::linalg::c(2.0, 0.0), n - 2) < 1e-12);
    assert!(coherent_tail(qbat_gpu::linalg::c(2.0, 0.0), n - 3) >= 1e-12);
    let ov = Overrides { auto_fock: true, ..Default::default() };
    let plan = parse_plan("model = \"cavity-cells\"\n[params]\nalpha = { values = [1.0, 3.0] }\n[time]\ndt = 0.005\nt_end = 1.0\nsamples = 3\n", &ov).unwrap();
    assert_eq!(plan.space, qbat_gpu::model::Space::Cavity { n_fock: auto_n_fock(3.0).unwrap() });
    assert!(parse_plan("model = \"spin-pair\"\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 3\n", &ov).unwrap_err().to_string().contains("--auto-fock"));
    // A state of the whole space fixes its own cutoff: under --auto-fock its dimension no
    // longer matches, and the refusal says why (it named the dimension alone). Without the
    // flag the same config runs; the cells' state alone takes the chosen cutoff.
    let ket = |dim: usize| format!("[{}]", (0..dim).map(|i| if i == 0 { "1.0" } else { "0.0" }).collect::<Vec<_>>().join(", "));
    let cfg = |dim: usize, n_fock: usize| {
        format!("model = \"cavity-cells\"\n[params]\nn_fock = {n_fock}\n[initial]\nket = {}\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 3\n", ket(dim))
    };
    let e = parse_plan(&cfg(12, 2), &ov).unwrap_err();
    let (field, text) = match &e {
        qbat_gpu::error::QbatError::Invalid { field, .. } => (field.clone(), e.to_string()),
        other => panic!("{other}"),
    };
    assert_eq!(field, "initial.ket");
    assert!(text.contains("has dimension 12") && text.contains("--auto-fock chose n_fock") && text.contains("drop --auto-fock"), "{text}");
    assert!(parse_plan(&cfg(12, 2), &Overrides::default()).is_ok());
    assert!(parse_plan(&cfg(4, 2), &ov).is_ok());
    // a wrong dimension without the flag keeps its own message, and so does one no cutoff
    // gives (not a multiple of the cells' 4) with it
    let plain = parse_plan(&cfg(10, 2), &Overrides::default()).unwrap_err().to_string();
    assert!(plain.contains("has dimension 10") && !plain.contains("auto-fock"), "{plain}");
    let odd = parse_plan(&cfg(10, 2), &ov).unwrap_err().to_string();
    assert!(odd.contains("has dimension 10") && !odd.contains("auto-fock"), "{odd}");
}

// A mistyped test fault is refused before the run, not taken for a run without one.
#[test]
fn a_malformed_fault_list_is_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    for (spec, entry) in [("slow-blocks=fast", "slow-blocks=fast"), ("nan-member", "nan-member"), ("oom-once,oom-twice", "oom-twice")] {
        let out = dir.path().join("out");
        let o = bin()
            .args(["--ensemble", "4", "--backend", "cpu", "--no-progress", "--no-plots", "--out"])
            .arg(&out)
            .env("QBAT_INJECT_FAULT", spec)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{spec}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
        assert!(errors.len() == 1 && errors[0].contains("QBAT_INJECT_FAULT") && errors[0].contains(&format!("'{entry}'")), "{spec}: {stderr}");
        assert!(!out.exists() && std::fs::read_dir(dir.path()).unwrap().next().is_none(), "{spec}: something was written");
    }
}

// The default study's analysis runs before the commit: when it fails (injected, as a full disk
// would), nothing is committed and the checkpoint stays; `--resume` then finishes the run with
// the same files as a run that never failed.
#[test]
fn a_failed_analysis_commits_nothing_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--ensemble", "12", "--backend", "cpu", "--no-progress", "--verify", "0", "--no-plots", "--out"];
    let (failed, whole) = (dir.path().join("failed"), dir.path().join("whole"));
    let o = bin().args(args).arg(&failed).env("QBAT_INJECT_FAULT", "analysis-fails").output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("analysis.csv") && stderr.contains("injected"), "{stderr}");
    assert!(!failed.exists(), "a run whose analysis failed was committed");
    assert!(dir.path().join(".failed.partial").join("checkpoint.json").is_file(), "the checkpoint is gone");
    ok(bin().args(args).arg(&failed).arg("--resume").arg(&failed));
    // The last block's checkpoint, written beside the failed assembly, was on disk: the
    // resume integrated nothing again.
    let rj: serde_json::Value = serde_json::from_slice(&std::fs::read(failed.join("run.json")).unwrap()).unwrap();
    assert_eq!((rj["blocks"]["count"].as_u64(), rj["blocks"]["resumed"].as_u64()), (Some(1), Some(1)), "{}", rj["blocks"]);
    ok(bin().args(args).arg(&whole));
    for f in ["analysis.csv", "stats.csv", "series.npy", "summary.csv"] {
        assert!(std::fs::read(failed.join(f)).unwrap() == std::fs::read(whole.join(f)).unwrap(), "{f} differs after the resume");
    }
    assert!(!dir.path().join(".failed.partial").exists());
}

/// The notes of `dir`'s run.json that say its analysis was left out.
fn left_out(dir: &std::path::Path) -> Vec<String> {
    let rj: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap();
    rj["notes"].as_array().unwrap().iter().filter_map(|n| n.as_str()).filter(|n| n.contains("correlations were not computed")).map(str::to_string).collect()
}

/// The default study's analysis that finds too little memory left at the run's end (injected:
/// under `ulimit -d` with 48 and 64 threads the threads' arenas kept what the run freed, and
/// it aborted there): the run is committed without analysis.csv, says so in one note naming
/// what it needs, and its other files are those of a run with the analysis.
#[test]
fn an_analysis_short_of_memory_at_the_end_is_left_out_and_said() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--ensemble", "12", "--backend", "cpu", "--no-progress", "--verify", "0", "--no-plots", "--out"];
    let (short, whole) = (dir.path().join("short"), dir.path().join("whole"));
    let o = bin().args(args).arg(&short).env("QBAT_INJECT_FAULT", "analysis-short").output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let notes: Vec<&str> = stdout.lines().filter(|l| l.contains("correlations were not computed")).collect();
    assert_eq!(notes.len(), 1, "{stdout}");
    assert!(notes[0].contains("the correlations of 12 members x 101 samples") && notes[0].contains("qbat-gpu analyze"), "{}", notes[0]);
    assert!(!short.join("analysis.csv").exists(), "an analysis was written");
    assert!(!stdout.contains("Spearman"), "{stdout}");
    // run.json says so in its notes, as printed
    assert_eq!(left_out(&short).len(), 1, "run.json should say the analysis was left out");
    assert!(notes[0].ends_with(&left_out(&short)[0]), "{} against {}", notes[0], left_out(&short)[0]);
    ok(bin().args(args).arg(&whole));
    assert!(whole.join("analysis.csv").is_file());
    assert!(left_out(&whole).is_empty(), "{:?}", left_out(&whole));
    for f in ["stats.csv", "series.npy", "summary.csv"] {
        assert!(std::fs::read(short.join(f)).unwrap() == std::fs::read(whole.join(f)).unwrap(), "{f} differs");
    }
    // and `analyze` of it, where memory is left, writes the analysis the whole run wrote
    ok(bin().arg("analyze").arg(&short).arg("--no-plots"));
    assert!(std::fs::read(short.join("analysis.csv")).unwrap() == std::fs::read(whole.join("analysis.csv")).unwrap(), "analysis.csv differs");
}

/// Shards of the default study merged: the merge computes the whole run's analysis, as the
/// unsharded run wrote it (it wrote none, and kept each shard's note that its own was left
/// out, naming the shard); where the merge's analysis finds no memory left (injected), it is
/// left out with one note in run.json naming the merged output.
#[test]
fn merged_default_study_shards_carry_the_whole_runs_analysis() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--ensemble", "40", "--backend", "cpu", "--no-progress", "--verify", "0", "--no-plots", "--out"];
    let whole = dir.path().join("whole");
    ok(bin().args(args).arg(&whole));
    let shards: Vec<_> = (0..2).map(|k| dir.path().join(format!("s{k}"))).collect();
    for (k, s) in shards.iter().enumerate() {
        // the shards' own analyses left out: their notes must not reach the merge
        let o = bin().args(args).arg(s).args(["--shard", &format!("{k}/2")]).env("QBAT_INJECT_FAULT", "analysis-short").output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(!s.join("analysis.csv").exists());
    }
    let merged = dir.path().join("merged");
    ok(bin().arg("merge").args(&shards).arg("--out").arg(&merged).arg("--no-plots"));
    for f in ["analysis.csv", "stats.csv", "summary.csv"] {
        assert!(std::fs::read(merged.join(f)).unwrap() == std::fs::read(whole.join(f)).unwrap(), "merged {f} differs from the unsharded run's");
    }
    assert!(left_out(&merged).is_empty(), "{:?}", left_out(&merged));
    let rj: serde_json::Value = serde_json::from_slice(&std::fs::read(merged.join("run.json")).unwrap()).unwrap();
    assert_eq!(rj["study_analysis"], true);
    // shards written before run.json said so (no `study_analysis`; their manifests sealed
    // again): their left-out notes still tell, and the merge analyses them the same
    for s in &shards {
        let mut rj: serde_json::Value = serde_json::from_slice(&std::fs::read(s.join("run.json")).unwrap()).unwrap();
        rj.as_object_mut().unwrap().remove("study_analysis").expect("the key");
        crate::common::reseal(s, "run.json", &serde_json::to_vec_pretty(&rj).unwrap());
    }
    let older = dir.path().join("older");
    ok(bin().arg("merge").args(&shards).arg("--out").arg(&older).arg("--no-plots"));
    assert!(std::fs::read(older.join("analysis.csv")).unwrap() == std::fs::read(whole.join("analysis.csv")).unwrap(), "older shards' merged analysis differs");
    let short = dir.path().join("short");
    let o = bin().arg("merge").args(&shards).arg("--out").arg(&short).arg("--no-plots").env("QBAT_INJECT_FAULT", "analysis-short").output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(!short.join("analysis.csv").exists(), "an analysis was written");
    let notes = left_out(&short);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("the correlations of 40 members") && notes[0].contains(&format!("qbat-gpu analyze {}", short.display())), "{}", notes[0]);
    assert!(stderr.contains(&format!("note: {}", notes[0])), "{stderr}");
}

/// The default study with `--series false` has no series to analyse: run.json's notes say
/// the correlations were not computed and why, as stdout does (stdout alone said so), once;
/// and a merge of such shards says it once for the whole run (not each shard's).
#[test]
fn a_default_study_without_a_series_says_in_run_json_that_it_has_no_analysis() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--ensemble", "12", "--series", "false", "--backend", "cpu", "--no-progress", "--verify", "0", "--no-plots", "--out"];
    let run = dir.path().join("run");
    let stdout = ok(bin().args(args).arg(&run));
    let said: Vec<&str> = stdout.lines().filter(|l| l.contains("correlations were not computed")).collect();
    assert_eq!(said.len(), 1, "{stdout}");
    let notes = left_out(&run);
    assert_eq!(notes.len(), 1, "run.json should say the analysis was left out: {notes:?}");
    assert!(notes[0].contains("--series false") && said[0].ends_with(&notes[0]), "{} against {}", said[0], notes[0]);
    assert!(!run.join("analysis.csv").exists() && !run.join("series.npy").exists());
    let shards: Vec<_> = (0..2).map(|k| dir.path().join(format!("s{k}"))).collect();
    for (k, s) in shards.iter().enumerate() {
        ok(bin().args(args).arg(s).args(["--shard", &format!("{k}/2")]));
    }
    let merged = dir.path().join("merged");
    ok(bin().arg("merge").args(&shards).arg("--out").arg(&merged).arg("--no-plots"));
    assert_eq!(left_out(&merged), notes, "the merge's note");
    for f in ["stats.csv", "summary.csv"] {
        assert!(std::fs::read(merged.join(f)).unwrap() == std::fs::read(run.join(f)).unwrap(), "merged {f} differs from the unsharded run's");
    }
}

/// `c` starts with the signals' default actions, whatever the test process was started ignoring
/// (a background job of a script ignores SIGINT, and its children with it).
#[cfg(unix)]
fn with_default_signals(c: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: signal is async-signal-safe, and nothing else runs in the forked child.
    unsafe {
        c.pre_exec(|| {
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::signal(sig, libc::SIG_DFL);
            }
            Ok(())
        });
    }
}

/// A merge stopped by SIGTERM or SIGINT (a batch system's time limit, `timeout`, Ctrl-C) with
/// its output half-written: it ends by that signal, and its staging directory is gone (it was
/// left beside the output for good, and a later merge left it too).
#[cfg(unix)]
#[test]
fn a_merge_stopped_by_a_signal_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--ensemble", "40", "--backend", "cpu", "--no-progress", "--verify", "0", "--no-plots", "--out"];
    let shards: Vec<_> = (0..2).map(|k| dir.path().join(format!("s{k}"))).collect();
    for (k, s) in shards.iter().enumerate() {
        ok(bin().args(args).arg(s).args(["--shard", &format!("{k}/2")]));
    }
    let listing = || crate::common::listing(dir.path());
    let before = listing();
    let merged = dir.path().join("merged");
    for (signal, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let mut merge = bin();
        merge.arg("merge").args(&shards).arg("--out").arg(&merged).arg("--no-plots").env("QBAT_INJECT_FAULT", "slow-blocks=20000");
        merge.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        with_default_signals(&mut merge);
        let mut child = merge.spawn().unwrap();
        // stopped once its staging directory holds summary.csv (the merge then sleeps)
        let started = std::time::Instant::now();
        while !std::fs::read_dir(dir.path()).unwrap().any(|e| {
            let e = e.unwrap();
            e.file_name().to_string_lossy().starts_with(".merged.partial") && e.path().join("summary.csv").exists()
        }) {
            assert!(started.elapsed().as_secs() < 60, "the merge never wrote its summary");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // SAFETY: kill is given the child's pid, which has not been reaped yet.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(signal), "{status:?} (a shell would say {code})");
        assert_eq!(listing(), before, "the stopped merge left something beside its output");
    }
    // a signal the merge was started ignoring (`nohup`: SIGHUP) stays ignored: it runs on
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg("trap '' HUP; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_qbat-gpu"))
        .arg("merge")
        .args(&shards)
        .arg("--out")
        .arg(&merged)
        .arg("--no-plots")
        .env("QBAT_INJECT_FAULT", "slow-blocks=1000")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !std::fs::read_dir(dir.path()).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().starts_with(".merged.partial")) {
        assert!(started.elapsed().as_secs() < 60, "the merge never began its output");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // SAFETY: kill is given the child's pid (the shell exec'd the merge), not yet reaped.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGHUP) }, 0);
    assert!(child.wait().unwrap().success(), "an ignored SIGHUP ended the merge");
    assert!(merged.join("stats.csv").is_file());
}

/// A streamed run stopped by SIGTERM (a batch system's time limit, `scancel`): it stops at its
/// next block, writes the blocks finished since its last checkpoint into it (paced without a
/// series; here only the first was, by the fault `checkpoint-once`: the signal's default
/// action lost the others), and ends by the signal; the resumed run's files are an
/// uninterrupted run's. A second signal ends it at once, its blocks kept.
#[cfg(unix)]
#[test]
fn a_run_stopped_by_a_signal_checkpoints_its_blocks_and_ends_by_it() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    // 16 blocks of 4 members, about 70 ms a block on the CPU engine
    let cfg = crate::common::config(
        dir.path(),
        "model = \"spin-pair\"\n[initial]\nrandom = \"haar\"\n[time]\ndt = 0.001\nt_end = 800.0\nsamples = 11\n[ensemble]\nsize = 64\nseed = 3\n",
    );
    let args = ["--backend", "cpu", "--no-progress", "--no-plots", "--verify", "0", "--series", "false", "--block-members", "4", "--out"];
    let done = |staging: &std::path::Path| -> Vec<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(staging.join("checkpoint.json")).unwrap()).unwrap();
        v["progress"]["done"].as_array().unwrap().clone()
    };
    let stopped = |out: &std::path::Path, fault: &str, signals: &[i32]| {
        let mut run = bin();
        run.arg("run").arg(&cfg).args(args).arg(out).env("QBAT_INJECT_FAULT", fault);
        run.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
        with_default_signals(&mut run);
        let mut child = run.spawn().unwrap();
        let staging = dir.path().join(format!(".{}.partial", out.file_name().unwrap().to_string_lossy()));
        let started = std::time::Instant::now();
        while !staging.join("checkpoint.json").exists() {
            assert!(started.elapsed().as_secs() < 60, "the run never wrote its first checkpoint");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        let sent = std::time::Instant::now();
        for &sig in signals {
            // SAFETY: kill is given the child's pid, which has not been reaped yet.
            assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let status = crate::common::wait_within(&mut child, std::time::Duration::from_secs(60)).expect("the run did not end");
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        (status, stderr, sent.elapsed(), staging)
    };
    let out = dir.path().join("o");
    let (status, stderr, _, staging) = stopped(&out, "checkpoint-once", &[libc::SIGTERM]);
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}: {stderr}");
    assert!(stderr.contains("note: stopping the run at its next block") && stderr.contains("the checkpointed blocks are kept"), "{stderr}");
    let kept = done(&staging);
    assert!(kept.len() >= 2 && kept.len() < 16, "the blocks after the first checkpoint were lost, or the run was not stopped: {kept:?}");
    assert!(!out.exists());
    ok(bin().arg("run").arg(&cfg).args(&args[..args.len() - 1]).arg("--resume").arg(&out));
    let whole = dir.path().join("whole");
    ok(bin().arg("run").arg(&cfg).args(args).arg(&whole));
    for f in ["stats.csv", "summary.csv"] {
        assert!(std::fs::read(out.join(f)).unwrap() == std::fs::read(whole.join(f)).unwrap(), "the resumed {f} differs from the whole run's");
    }
    // a second signal: at once, while the first waits on a block held 20 s
    let (status, stderr, waited, staging) = stopped(&dir.path().join("held"), "slow-blocks=20000", &[libc::SIGTERM, libc::SIGINT]);
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}: {stderr}");
    assert!(waited.as_secs_f64() < 5.0, "the second signal took {waited:?}");
    assert!(!done(&staging).is_empty());
}

/// A run ended by a signal in its setup, before its first checkpoint (where its blocks cannot
/// yet be stopped at the next one), leaves no staging directory: one was left with nothing in
/// it to resume, and the next run into its `--out` was refused for an interrupted run. A
/// staging directory with no checkpoint (a SIGKILL there) is resumed from the first block,
/// saying so, not "resumed from the checkpoint".
#[cfg(unix)]
#[test]
fn a_signal_before_the_first_checkpoint_leaves_no_staging_directory() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::common::config(
        dir.path(),
        "model = \"spin-pair\"\n[initial]\nrandom = \"haar\"\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 3\n[ensemble]\nsize = 4\nseed = 3\n",
    );
    let out = dir.path().join("o");
    let staging = dir.path().join(".o.partial");
    let run = |extra: &[&str], fault: &str| {
        let mut c = bin();
        c.arg("run")
            .arg(&cfg)
            .args(["--backend", "cpu", "--no-progress", "--no-plots", "--verify", "0", "--out"])
            .arg(&out)
            .args(extra)
            .env("QBAT_INJECT_FAULT", fault);
        c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
        with_default_signals(&mut c);
        c
    };
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGKILL] {
        let mut child = run(&[], "slow-setup=20000").spawn().unwrap();
        let started = std::time::Instant::now();
        while !staging.join("blocks").is_dir() {
            assert!(started.elapsed().as_secs() < 60, "the run never made its staging directory");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // (into the setup's sleep, past the moment the directory is watched)
        std::thread::sleep(std::time::Duration::from_millis(300));
        // SAFETY: kill is given the child's pid, which has not been reaped yet.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
        let status = crate::common::wait_within(&mut child, std::time::Duration::from_secs(60)).expect("the run did not end");
        assert_eq!(status.signal(), Some(sig), "{status:?}");
        assert!(!out.exists());
        if sig == libc::SIGKILL {
            // (no handler runs: the directory stays, with no checkpoint in it)
            assert!(staging.is_dir() && !staging.join("checkpoint.json").exists());
            // a resume of it that fails before its first checkpoint leaves nothing either
            let o = run(&["--resume", out.to_str().unwrap()], "full-disk=checkpoint.json").output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{err}");
            assert!(!staging.exists() && !err.contains("blocks are kept"), "{err}");
            let mut again = run(&[], "slow-setup=20000").spawn().unwrap();
            while !staging.join("blocks").is_dir() {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            again.kill().unwrap();
            again.wait().unwrap();
            let mut resume = run(&["--resume", out.to_str().unwrap()], "");
            let said = ok(resume.stdout(std::process::Stdio::piped()));
            assert!(said.contains("holds no checkpoint (the run was stopped before its first): the run starts from its first block"), "{said}");
            assert!(!said.contains("resumed from the checkpoint"), "{said}");
        } else {
            assert!(!staging.exists(), "signal {sig} left the staging directory of a run with no checkpoint");
            ok(&mut run(&[], ""));
            std::fs::remove_dir_all(&out).unwrap();
        }
        assert!(out.join("stats.csv").is_file() || sig != libc::SIGKILL);
    }
}

/// After its blocks (here while its commit records the files' identities, held 20 s) a signal
/// ends a run at once, as it did before runs were stopped: the finish is not stopped half-way
/// (a stop there committed the whole output and then ended by the signal, and `--resume` was
/// refused), and nothing waits for a block that will not come.
#[cfg(unix)]
#[test]
fn a_signal_after_the_blocks_ends_the_run_at_once() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::common::config(dir.path(), crate::integrity::BLOCH);
    let out = dir.path().join("o");
    let mut run = bin();
    run.arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--no-plots", "--out"]).arg(&out).env("QBAT_INJECT_FAULT", "slow-identities=20000");
    run.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    with_default_signals(&mut run);
    let mut child = run.spawn().unwrap();
    let started = std::time::Instant::now();
    while !out.join("run.json").is_file() {
        assert!(started.elapsed().as_secs() < 60, "the run did not commit");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let sent = std::time::Instant::now();
    // SAFETY: kill is given the child's pid, which has not been reaped yet.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let status = crate::common::wait_within(&mut child, std::time::Duration::from_secs(60)).expect("the run did not end");
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}: {stderr}");
    assert!(sent.elapsed().as_secs_f64() < 5.0, "the signal took {:?}", sent.elapsed());
    assert!(!stderr.contains("stopping the run"), "{stderr}");
}

/// As PID 1 (a container's first process, to which the kernel delivers no signal at its
/// default action) a signal still ends the command, with a shell's status for it: a merge stopped
/// by SIGTERM ends at once with nothing beside its output (it went on into its removed staging
/// directory, and failed on its next file with exit 1), and a second signal ends a stopped run
/// at once (it waited out the block). Skipped, with a note, where no PID namespace can be made
/// (`unshare -rpf`).
#[cfg(unix)]
#[test]
fn as_pid_1_a_signal_still_ends_the_command() {
    if !std::process::Command::new("unshare").args(["-rpf", "true"]).status().is_ok_and(|s| s.success()) {
        eprintln!("note: no PID namespace here (unshare -rpf); the PID 1 case was not tried");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // `args` as PID 1 of a PID namespace of its own; the qbat-gpu process's pid once it runs
    let spawn_as_pid_1 = |args: &[&std::ffi::OsStr], fault: &str| {
        let mut c = std::process::Command::new("unshare");
        c.args(["-rpf", env!("CARGO_BIN_EXE_qbat-gpu")]).args(args).env("QBAT_INJECT_FAULT", fault);
        c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        with_default_signals(&mut c);
        let child = c.spawn().unwrap();
        let children = format!("/proc/{0}/task/{0}/children", child.id());
        let started = std::time::Instant::now();
        let pid = loop {
            if let Some(pid) = std::fs::read_to_string(&children).ok().and_then(|s| s.split_whitespace().next().and_then(|p| p.parse::<libc::pid_t>().ok())) {
                break pid;
            }
            assert!(started.elapsed().as_secs() < 60, "unshare never started qbat-gpu");
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        (child, pid)
    };
    let staged = |name: &str, file: &str| {
        std::fs::read_dir(dir.path()).unwrap().flatten().any(|e| e.file_name().to_string_lossy().starts_with(name) && e.path().join(file).exists())
    };
    let wait_for = |what: &str, ready: &dyn Fn() -> bool| {
        let started = std::time::Instant::now();
        while !ready() {
            assert!(started.elapsed().as_secs() < 60, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    };
    let kill = |pid: libc::pid_t, sig: i32| {
        // SAFETY: kill is given the pid of a process of this test's, still running.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    };
    let args = ["--ensemble", "40", "--backend", "cpu", "--no-progress", "--verify", "0", "--no-plots", "--out"];
    let shards: Vec<_> = (0..2).map(|k| dir.path().join(format!("s{k}"))).collect();
    for (k, s) in shards.iter().enumerate() {
        ok(bin().args(args).arg(s).args(["--shard", &format!("{k}/2")]));
    }
    let before = crate::common::listing(dir.path());
    let merged = dir.path().join("merged");
    let mut merge_args: Vec<&std::ffi::OsStr> = vec!["merge".as_ref()];
    merge_args.extend(shards.iter().map(|s| s.as_os_str()));
    merge_args.extend(["--out".as_ref(), merged.as_os_str(), "--no-plots".as_ref()]);
    let (mut child, pid) = spawn_as_pid_1(&merge_args, "slow-blocks=20000");
    wait_for("the merge never wrote its summary", &|| staged(".merged.partial", "summary.csv"));
    kill(pid, libc::SIGTERM);
    let status = crate::common::wait_within(&mut child, std::time::Duration::from_secs(60)).expect("the merge did not end");
    assert_eq!(status.code(), Some(143), "{status:?}");
    assert_eq!(crate::common::listing(dir.path()), before, "the stopped merge left something beside its output");
    // a stopped run (its block held 20 s), then a second signal
    let held = dir.path().join("held");
    let (mut child, pid) = spawn_as_pid_1(
        &[
            "--ensemble".as_ref(),
            "40".as_ref(),
            "--block-members".as_ref(),
            "10".as_ref(),
            "--backend".as_ref(),
            "cpu".as_ref(),
            "--no-plots".as_ref(),
            "--out".as_ref(),
            held.as_os_str(),
        ],
        "slow-blocks=20000",
    );
    wait_for("the run never wrote its first checkpoint", &|| staged(".held.partial", "checkpoint.json"));
    kill(pid, libc::SIGTERM);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let sent = std::time::Instant::now();
    kill(pid, libc::SIGINT);
    let status = crate::common::wait_within(&mut child, std::time::Duration::from_secs(60)).expect("the run did not end");
    // (either signal's status: where the signal thread had not taken SIGTERM before SIGINT
    // came, it takes SIGINT, the lower number, first)
    assert!([Some(130), Some(143)].contains(&status.code()), "{status:?}");
    assert!(sent.elapsed().as_secs_f64() < 5.0, "the second signal took {:?}", sent.elapsed());
}

/// A thread that cannot be started mid-run (block 2's files thread, as under a process limit):
/// exit 2 with one line naming the threads, the finished blocks kept with a note, and a
/// `--resume` that finishes the run to the same files as a run never stopped.
#[test]
fn a_thread_refused_mid_run_keeps_its_blocks_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--ensemble", "40", "--block-members", "10", "--backend", "cpu", "--no-progress", "--verify", "0", "--no-plots", "--out"];
    let (stopped, whole) = (dir.path().join("stopped"), dir.path().join("whole"));
    let o = bin().args(args).arg(&stopped).env("QBAT_INJECT_FAULT", "no-thread-at=2").output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(error.len(), 1, "{stderr}");
    assert!(error[0].starts_with("error: threads: a thread for the block's files") && error[0].contains("ulimit -u"), "{stderr}");
    assert!(stderr.contains("blocks are kept"), "{stderr}");
    assert!(!stopped.exists(), "a stopped run was committed");
    let checkpoint: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join(".stopped.partial").join("checkpoint.json")).unwrap()).unwrap();
    let mut done: Vec<u64> = checkpoint["progress"]["done"].as_array().unwrap().iter().map(|b| b.as_u64().unwrap()).collect();
    done.sort();
    assert_eq!(done, [0, 1], "the blocks before the refused one are checkpointed");
    ok(bin().args(args).arg(&stopped).arg("--resume").arg(&stopped));
    ok(bin().args(args).arg(&whole));
    for f in ["analysis.csv", "stats.csv", "series.npy", "summary.csv"] {
        assert!(std::fs::read(stopped.join(f)).unwrap() == std::fs::read(whole.join(f)).unwrap(), "{f} differs after the resume");
    }
}

/// Without a series the checkpoint is paced (held here to the first block's): a run stopped at
/// block 4 leaves block 0 checkpointed and blocks 1 to 3 finished but not; `--resume` integrates
/// those again and ends with the files of a run never stopped.
#[test]
fn blocks_finished_after_the_last_checkpoint_are_integrated_again_to_the_same_files() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--ensemble", "60", "--block-members", "10", "--series", "false", "--backend", "cpu", "--no-progress", "--verify", "0", "--no-plots", "--out"];
    let (stopped, whole) = (dir.path().join("stopped"), dir.path().join("whole"));
    let o = bin().args(args).arg(&stopped).env("QBAT_INJECT_FAULT", "checkpoint-once,no-thread-at=4").output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    let checkpoint: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join(".stopped.partial").join("checkpoint.json")).unwrap()).unwrap();
    let done: Vec<u64> = checkpoint["progress"]["done"].as_array().unwrap().iter().map(|b| b.as_u64().unwrap()).collect();
    assert_eq!(done, [0], "only the first block is checkpointed");
    ok(bin().args(args).arg(&stopped).arg("--resume").arg(&stopped));
    let rj: serde_json::Value = serde_json::from_slice(&std::fs::read(stopped.join("run.json")).unwrap()).unwrap();
    assert_eq!((rj["blocks"]["count"].as_u64(), rj["blocks"]["resumed"].as_u64()), (Some(6), Some(1)), "{}", rj["blocks"]);
    ok(bin().args(args).arg(&whole));
    for f in ["stats.csv", "summary.csv"] {
        assert!(std::fs::read(stopped.join(f)).unwrap() == std::fs::read(whole.join(f)).unwrap(), "{f} differs after the resume");
    }
}

/// A resume given another `--verify` count than the run was started with: refused, naming
/// `--verify` (the finished blocks verified the members chosen for the first count; a resume
/// with --verify 30 reported 26 members of neither choice, and one with --verify 0 a verify
/// without its check of dt); the same count resumes.
#[test]
fn a_resume_with_another_verify_count_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--ensemble", "40", "--block-members", "10", "--backend", "cpu", "--no-progress", "--no-plots", "--out"];
    let stopped = dir.path().join("stopped");
    let o = bin().args(args).arg(&stopped).args(["--verify", "3"]).env("QBAT_INJECT_FAULT", "no-thread-at=2").output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    for other in ["5", "0"] {
        let o = bin().args(args).arg(&stopped).arg("--resume").arg(&stopped).args(["--verify", other]).output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.trim(), format!("error: --verify: the interrupted run verifies 3 members, not {other}; give --verify 3 to resume it"));
        assert!(dir.path().join(".stopped.partial").join("checkpoint.json").is_file(), "the checkpoint is kept");
    }
    ok(bin().args(args).arg(&stopped).arg("--resume").arg(&stopped).args(["--verify", "3"]));
    let run: serde_json::Value = serde_json::from_slice(&std::fs::read(stopped.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["verify"]["members"].as_array().unwrap().len(), 3, "{}", run["verify"]);
}

/// `--ensemble` takes a whole number written as a float, by `ensemble.size`'s rules: `1e3` is
/// 1000 members (the option took only a plain integer), the same members as `--ensemble 1000`
/// and as `size = 1e3` in the config.
#[test]
fn ensemble_takes_a_whole_float_as_the_config_size_does() {
    let dir = tempfile::tempdir().unwrap();
    let text = "model = \"bloch-charger\"\n[params]\nj = 1.0\n[time]\ndt = 0.05\nt_end = 0.5\nsamples = 3\n";
    let plain = dir.path().join("plain.toml");
    let sized = dir.path().join("sized.toml");
    std::fs::write(&plain, text).unwrap();
    std::fs::write(&sized, format!("{text}[ensemble]\nsize = 1e3\n")).unwrap();
    let summary = |cfg: &std::path::Path, extra: &[&str], name: &str| {
        let out = dir.path().join(name);
        ok(bin().arg("run").arg(cfg).args(extra).args(["--backend", "cpu", "--no-progress", "--no-plots", "--verify", "0", "--out"]).arg(&out));
        let run: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
        assert_eq!(run["members"], 1000, "{name}");
        std::fs::read_to_string(out.join("summary.csv")).unwrap()
    };
    let exponent = summary(&plain, &["--ensemble", "1e3"], "exponent");
    assert_eq!(exponent.lines().count(), 1 + 1000);
    assert_eq!(exponent, summary(&plain, &["--ensemble", "1000.0"], "float"));
    assert_eq!(exponent, summary(&plain, &["--ensemble", "1000"], "integer"));
    assert_eq!(exponent, summary(&sized, &[], "config"));
}

/// `validate` under auto, where auto takes the CPU engine (no hardware GPU), holds the checks
/// to the f64 tolerances, as `--backend cpu` does: it held the f64 engine to f32's (2e-3
/// against 1e-8), and said the software adapter's note once a check.
#[test]
fn validate_on_auto_holds_the_cpu_engine_to_its_own_tolerances() {
    let table = |args: &[&str]| {
        let o = bin().arg("validate").args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        (String::from_utf8_lossy(&o.stdout).to_string(), String::from_utf8_lossy(&o.stderr).to_string())
    };
    let (auto, said) = table(&[]);
    if !said.contains("CPU engine") {
        eprintln!("skipping: auto took a GPU here ({said})");
        return;
    }
    let (cpu, _) = table(&["--backend", "cpu"]);
    assert_eq!(auto, cpu, "auto on the CPU engine is the cpu table, tolerances included");
    assert!(said.lines().filter(|l| l.contains("CPU engine")).count() == 1, "{said}");
}
