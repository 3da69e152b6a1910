//! The GPU backend through the whole pipeline: the same members as the CPU engine for the same
//! seed, every measure (the host-side eigen measures included), and the papers' checks with
//! `--backend gpu`. Skips with a note when there is no adapter, fails under QBAT_REQUIRE_GPU=1.

use qbat_gpu::config::{parse_plan, Overrides};
use qbat_gpu::engine::gpu_context;
use qbat_gpu::run::{run_plan, Backend, Precision, RunOptions};

use crate::common::{have_gpu, SERIAL};

const STUDY: &str = "model = \"driven-pair\"\n[params]\ng = 1.0\nf = { uniform = [0.2, 1.5] }\ngamma = { uniform = [0.1, 1.0] }\nn_th = 0.3\ndelta = 0.2\n[initial]\nrandom = \"mixed-bures\"\n[time]\ndt = 0.01\nt_end = 20.0\nsamples = 41\n[ensemble]\nsize = 64\nseed = 11\n";

const DEPHASED: &str = "model = \"spin-pair\"\n[params]\nwb = 1.0\nwc = 0.8\nj1 = 0.3\nj2 = 0.1\ndephasing = 0.25\n[initial]\nrandom = \"haar\"\n[time]\ndt = 0.01\nt_end = 10.0\nsamples = 21\n[ensemble]\nsize = 32\nseed = 5\n";

fn compare(precision: Precision, tol: f64) {
    compare_config(STUDY, precision, tol);
    compare_config(DEPHASED, precision, tol);
}

fn compare_config(cfg: &str, precision: Precision, tol: f64) {
    let plan = parse_plan(cfg, &Overrides::default()).unwrap();
    let cpu = run_plan(&plan, &RunOptions { backend: Backend::Cpu, verify: 0, ..Default::default() }).unwrap();
    let gpu = run_plan(&plan, &RunOptions { backend: Backend::Gpu, precision, verify: 4, ..Default::default() }).unwrap();
    assert_eq!(gpu.backend, "gpu");
    assert!(gpu.verify.as_ref().unwrap().pass, "{:#?}", gpu.verify);
    for (k, m) in plan.measures.iter().enumerate() {
        let t = qbat_gpu::verify::measure_tolerance(*m, tol);
        let worst = crate::common::worst_deviation(&gpu, &cpu, k);
        assert!(worst <= t, "{}: GPU {precision:?} vs CPU engine max |dev| {worst:e} > {t:e}", m.name());
    }
    for (a, b) in gpu.peaks.iter().zip(&cpu.peaks) {
        assert!((a.max - b.max).abs() <= tol, "peak {a:?} vs {b:?}");
    }
}

#[test]
fn gpu_f32_run_matches_the_cpu_engine_for_every_measure() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if have_gpu(false) {
        compare(Precision::F32, 1e-4);
    }
}

#[test]
fn gpu_f64_run_matches_the_cpu_engine_for_every_measure() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    match gpu_context(None, true) {
        Ok(_) => compare(Precision::F64, 1e-9),
        Err(e) => {
            // an adapter without SHADER_F64 must give a clear error, not a panic; CI's adapters
            // (lavapipe included) have it, so there it is a failure
            let msg = e.to_string();
            assert!(msg.contains("f64") || msg.contains("F64"), "{msg}");
            if std::env::var("QBAT_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("QBAT_REQUIRE_GPU=1 but the adapter has no f64: {msg}");
            }
            eprintln!("skipping f64: {msg}");
        }
    }
}

#[test]
fn papers_checks_pass_on_the_gpu() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    use qbat_gpu::validate::*;
    for (name, f) in ALL_CHECKS {
        let checks = f(&RunOptions { backend: Backend::Gpu, precision: Precision::F32, ..Default::default() }).unwrap();
        let failed: Vec<_> = checks.iter().filter(|c| !c.pass()).collect();
        assert!(failed.is_empty(), "{name} failed on the GPU (f32): {failed:#?}");
    }
    // f64 too (a failure under QBAT_REQUIRE_GPU=1 where the adapter lacks it)
    if have_gpu(true) {
        for (name, f) in [("paper000_table1", ALL_CHECKS[0].1), ("paper004_closed_forms", ALL_CHECKS[3].1)] {
            let checks = f(&RunOptions { backend: Backend::Gpu, precision: Precision::F64, ..Default::default() }).unwrap();
            let failed: Vec<_> = checks.iter().filter(|c| !c.pass()).collect();
            assert!(failed.is_empty(), "{name} failed on the GPU (f64): {failed:#?}");
        }
    }
}

#[test]
fn auto_falls_back_and_gpu_errors_without_an_adapter() {
    // No Vulkan driver: auto runs the CPU engine with a note; gpu is a clear error, exit 2.
    let dir = tempfile::tempdir().unwrap();
    let run = |backend: &str| {
        crate::common::bin()
            .env("VK_DRIVER_FILES", "/nonexistent.json")
            .env("VK_ICD_FILENAMES", "/nonexistent.json")
            .args(["--ensemble", "5", "--no-progress", "--backend", backend, "--out"])
            .arg(dir.path().join(backend))
            .output()
            .unwrap()
    };
    let auto = run("auto");
    assert!(auto.status.success(), "{}", String::from_utf8_lossy(&auto.stderr));
    assert!(String::from_utf8_lossy(&auto.stderr).contains("running on the CPU engine"));
    let gpu = run("gpu");
    assert_eq!(gpu.status.code(), Some(2), "{}", String::from_utf8_lossy(&gpu.stderr));
    assert!(!dir.path().join("gpu").exists());
}

/// `--backend auto` never prefers a software adapter (lavapipe: the kernels on the same cores,
/// slower than the CPU engine) to the CPU engine: it says so in one note; `--backend gpu` still
/// runs it, and naming it with `--adapter` makes auto take it. With a hardware GPU, auto takes it.
#[test]
fn auto_prefers_the_cpu_engine_over_a_software_adapter() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let software = qbat_gpu::engine::gpu_context(None, false).unwrap().info.software;
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| {
        let o = crate::common::bin()
            .args(["--ensemble", "4", "--no-progress", "--no-plots", "--verify", "0", "--series", "false", "--out"])
            .arg(dir.path().join(name))
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let run_json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join(name).join("run.json")).unwrap()).unwrap();
        (run_json["backend"].as_str().unwrap().to_string(), String::from_utf8_lossy(&o.stderr).to_string())
    };
    let (auto, notes) = run("auto", &["--backend", "auto"]);
    let (gpu, _) = run("gpu", &["--backend", "gpu"]);
    assert_eq!(gpu, "gpu");
    if software {
        assert_eq!(auto, "cpu", "{notes}");
        assert_eq!(notes.matches("is software").count(), 1, "one note: {notes}");
        let (named, _) = run("named", &["--backend", "auto", "--adapter", "0"]);
        assert_eq!(named, "gpu");
    } else {
        assert_eq!(auto, "gpu", "{notes}");
    }
}

#[test]
fn unknown_adapter_name_is_an_error_not_a_panic() {
    let o = crate::common::bin().args(["--ensemble", "5", "--no-progress", "--backend", "gpu", "--adapter", "no-such-adapter-xyz"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no-such-adapter-xyz") && !err.contains("panicked"), "{err}");
    // where there are adapters the name is the option's fault, named as such, with the list
    if have_gpu(false) {
        assert!(err.starts_with("error: --adapter: no adapter name contains 'no-such-adapter-xyz'; adapters found: "), "{err}");
    }
}

/// `validate` and `bench` take `--adapter` as `run` does: a name that matches nothing is the
/// option's error under `--backend gpu`, and `bench` under auto times the adapter named (a
/// software one included) beside the CPU engine. (They advised `--adapter` in their errors and
/// refused it as an unknown argument.)
#[test]
fn validate_and_bench_take_the_adapter_as_run_does() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    for command in [&["validate"][..], &["bench", "bloch-1k", "--members", "4", "--repeat", "1"]] {
        let o = crate::common::bin().args(command).args(["--backend", "gpu", "--adapter", "no-such-adapter-xyz"]).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{command:?}: {err}");
        assert!(err.contains("error: --adapter: no adapter name contains 'no-such-adapter-xyz'; adapters found: "), "{command:?}: {err}");
    }
    let name = qbat_gpu::engine::gpu_context(None, false).unwrap().info.name.clone();
    // (part of its name without commas or spaces, as a user would type it)
    let part = name.split([',', ' ']).next().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let o = crate::common::bin().args(["bench", "bloch-1k", "--members", "4", "--repeat", "1", "--adapter", &part, "--json"]).arg(&json).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let figures: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let timed: Vec<(&str, &str)> =
        figures[0]["backends"].as_array().unwrap().iter().map(|b| (b["backend"].as_str().unwrap(), b["device"].as_str().unwrap())).collect();
    assert_eq!(timed.len(), 2, "{timed:?}");
    assert_eq!(timed[0].0, "gpu");
    assert!(timed[0].1.starts_with(&name), "{timed:?} vs {name}");
    assert_eq!(timed[1].0, "cpu");
}

/// A scheduler's pinning looks its GPU up with nvidia-smi, for at most 10 s: one past that goes
/// with every process it started (a wrapper script's `sleep` outlived the kill of its shell,
/// and held the pipe a reading thread waited on), and the note says it gave no GPU list (it
/// said there was no nvidia-smi).
#[test]
fn an_nvidia_smi_past_its_limit_goes_with_what_it_started() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("bin");
    std::fs::create_dir(&fake).unwrap();
    let pid_file = dir.path().join("sleep.pid");
    std::fs::write(fake.join("nvidia-smi"), format!("#!/bin/sh\nsleep 1000 &\necho $! > '{}'\nwait\n", pid_file.display())).unwrap();
    std::fs::set_permissions(fake.join("nvidia-smi"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap_or_default());
    let o = crate::common::bin()
        .args(["--ensemble", "2", "--backend", "gpu", "--no-progress", "--no-plots", "--series", "false", "--verify", "0", "--out"])
        .arg(dir.path().join("o"))
        .env("PATH", path)
        .env("CUDA_VISIBLE_DEVICES", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("(no GPU list from nvidia-smi, no /proc/driver/nvidia/gpus)"), "{stderr}");
    let pid: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    // gone, or a zombie its new parent has not reaped (a container's PID 1 may never)
    let gone =
        || std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')));
    let began = std::time::Instant::now();
    while !gone() {
        assert!(began.elapsed().as_secs() < 10, "the sleep nvidia-smi started is still running");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn long_runs_with_few_members_complete_every_step() {
    // 100,000 steps for 4 members: one invocation per member would loop far more than software
    // Vulkan lets a single dispatch loop (the cut came near 75,000 steps), so the run must be
    // split and every step checked. Before that fix the late samples came back as zeros.
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let cfg = "model = \"bloch-charger\"\n[params]\nj = 1.0\ngamma = 0.02\n[initial]\nrandom = \"bloch\"\n[time]\ndt = 0.001\nt_end = 100.0\nsamples = 11\n[ensemble]\nsize = 4\n[output]\nmeasures = [\"energy_b\", \"trace_error\"]\n";
    let plan = parse_plan(cfg, &Overrides::default()).unwrap();
    let cpu = run_plan(&plan, &RunOptions { backend: Backend::Cpu, verify: 0, ..Default::default() }).unwrap();
    let gpu = run_plan(&plan, &RunOptions { backend: Backend::Gpu, verify: 0, ..Default::default() }).unwrap();
    let s = 10;
    for i in 0..4 {
        assert!((gpu.value(i, s, 0) - cpu.value(i, s, 0)).abs() < 1e-4, "member {i} at t = 100: {} vs {}", gpu.value(i, s, 0), cpu.value(i, s, 0));
    }
    // most members hold real energy at the end, so output cut to zeros could not pass
    assert!((0..4).filter(|&i| cpu.value(i, s, 0) > 1e-3).count() >= 2);
}

#[test]
fn sliced_gpu_runs_overlap_host_measures_and_keep_members_in_place() {
    // 9,000 members with eigen-solve measures run as 3 slices (at least 4,096 members each):
    // the host measures slice k while the GPU integrates slice k + 1. Every member must match
    // the CPU engine, so a slice assembled at the wrong offset fails.
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let cfg = "model = \"spin-pair\"\n[params]\nj1 = { uniform = [0.05, 0.5] }\n[initial]\nrandom = \"mixed-hs\"\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 3\n[ensemble]\nsize = 9000\nseed = 3\n[output]\nmeasures = [\"energy_b\", \"concurrence\", \"capacity_total\"]\n";
    let plan = parse_plan(cfg, &Overrides::default()).unwrap();
    let cpu = run_plan(&plan, &RunOptions { backend: Backend::Cpu, verify: 0, ..Default::default() }).unwrap();
    let gpu = run_plan(&plan, &RunOptions { backend: Backend::Gpu, verify: 0, ..Default::default() }).unwrap();
    // The eigen-solve measures now run on the device (no host measures to overlap).
    assert!(gpu.notes.iter().any(|n| n.contains("eigen-solve measures on the device")), "{:?}", gpu.notes);
    for i in 0..plan.members.len() {
        for s in 0..3 {
            for (k, m) in plan.measures.iter().enumerate() {
                let tol = qbat_gpu::verify::measure_tolerance(*m, 1e-4);
                assert!((gpu.value(i, s, k) - cpu.value(i, s, k)).abs() <= tol, "member {i}, {}", m.name());
            }
        }
        assert!((gpu.peaks[4 * i].max - cpu.peaks[4 * i].max).abs() < 1e-4);
    }
}

#[test]
fn sampling_every_step_with_every_kernel_measure_completes() {
    // Each sample runs the measure loops (Jacobi sweeps, log2 reduction): 3,000 steps sampled
    // every step once overran software Vulkan's loop limit inside one dispatch.
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let text =
        qbat_gpu::config::jobs::job_config_with_members("bloch-100k", Some(8)).unwrap().replace("t_end = 20.0\nsamples = 2001", "t_end = 30.0\nsamples = 3001");
    let plan = parse_plan(&text, &Overrides::default()).unwrap();
    let cpu = run_plan(&plan, &RunOptions { backend: Backend::Cpu, verify: 0, ..Default::default() }).unwrap();
    let gpu = run_plan(&plan, &RunOptions { backend: Backend::Gpu, verify: 0, ..Default::default() }).unwrap();
    for (k, m) in plan.measures.iter().enumerate() {
        let tol = qbat_gpu::verify::measure_tolerance(*m, 1e-4);
        for i in 0..8 {
            let d = (gpu.value(i, 3000, k) - cpu.value(i, 3000, k)).abs();
            assert!(d <= tol, "{} member {i} at t = 30: |dev| {d:e}", m.name());
        }
    }
}

#[test]
fn what_a_gpu_kernel_cannot_give_is_refused_before_an_interrupted_run_is_discarded() {
    // `--force` discards an interrupted run in the output directory to start over; a run the
    // GPU kernel would refuse must be refused before that, keeping the interrupted run.
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let dicke = "model = \"dicke\"\n[params]\nn_cells = 2\nn_fock = 3\n[time]\ndt = 0.01\nt_end = 0.1\nsamples = 3\n[ensemble]\nsize = 2\n";
    let cavity = "model = \"cavity-cells\"\n[params]\nn_fock = 3\n[time]\ndt = 0.01\nt_end = 0.1\nsamples = 3\n[ensemble]\nsize = 2\n";
    let cavity_min_eig = format!("{cavity}[output]\nmeasures = [\"energy_b\", \"min_eigenvalue\"]\n");
    for (text, extra, field) in [
        (dicke, &["--save-states"][..], "--save-states"),
        (cavity, &["--save-states", "full"][..], "--save-states"),
        (cavity_min_eig.as_str(), &[][..], "output.measures"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::common::config(dir.path(), text);
        let out = dir.path().join("out");
        // An interrupted run of `out`: its staging directory, with a block the run finished.
        let staging = qbat_gpu::study::staging_dir(&out);
        std::fs::create_dir_all(staging.join("blocks")).unwrap();
        std::fs::write(staging.join("qbat-staging"), b"a qbat-gpu run's staging directory\n").unwrap();
        std::fs::write(staging.join("blocks").join("000000.values"), b"finished block").unwrap();
        let o = crate::common::bin()
            .arg("run")
            .arg(&cfg)
            .args(["--backend", "gpu", "--no-progress", "--no-plots", "--force", "--out"])
            .arg(&out)
            .args(extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(field) && !err.contains("panicked"), "{err}");
        assert!(staging.join("blocks").join("000000.values").is_file(), "the interrupted run was discarded: {err}");
        assert!(!out.exists(), "{err}");
    }
}

/// A run frees the read-back buffers its blocks reused: after `run_plan` on the GPU, the
/// process's context keeps none (the chunks of the run did keep and reuse them).
#[test]
fn a_run_frees_its_kept_read_back_buffers() {
    if !have_gpu(false) {
        return;
    }
    let _guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let plan = parse_plan(DEPHASED, &Overrides::default()).unwrap();
    let ctx = gpu_context(None, false).unwrap();
    let opts = RunOptions { backend: Backend::Gpu, verify: 0, max_chunk: Some(8), ..Default::default() };
    let r = run_plan(&plan, &opts).unwrap();
    assert_eq!(r.backend, "gpu");
    assert_eq!(ctx.kept_staging(), (0, 0));
}

/// A pipeline the driver refuses for good comes back as a device error, and the context
/// remembers the refusal: the same error again with no second compile, never listed as built,
/// and no refusal of the same kernel with another layout or constants.
#[test]
fn a_refused_pipeline_is_an_error_and_is_remembered() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let ctx = gpu_context(None, false).unwrap();
    let entries = qbat_gpu::gpu::buffers::layout_entries(std::mem::size_of::<qbat_gpu::job::cavity::Params>() as u64);
    // the driver's validation: a layout without the kernel's last binding (constants the
    // kernel has, so that naga's count passes it on to the driver)
    let tile = [("TILED", 1.0), ("TILE_LEN", 300.0)];
    let short = &entries[..entries.len() - 1];
    let builds = ctx.pipeline_builds();
    let first = ctx.pipeline_with("rk4_cavity", Precision::F32, &tile, short).map(drop).unwrap_err();
    assert!(matches!(first, qbat_gpu::error::QbatError::Device(_)), "{first}");
    assert_eq!(ctx.pipeline_builds(), builds + 1, "the driver saw the first");
    let again = ctx.pipeline_with("rk4_cavity", Precision::F32, &tile, short).map(drop).unwrap_err();
    assert_eq!(first.to_string(), again.to_string());
    assert_eq!(ctx.pipeline_builds(), builds + 1, "a remembered refusal compiles nothing");
    // the same constants with the kernel's layout build
    ctx.pipeline_with("rk4_cavity", Precision::F32, &tile, &entries).unwrap();
    assert!(ctx.pipeline_constants("rk4_cavity", Precision::F32).iter().any(|c| c.contains(&("TILE_LEN", 300.0))));
    // a constant the kernel does not declare: refused by naga before the driver
    let builds = ctx.pipeline_builds();
    let e = ctx.pipeline_with("rk4_cavity", Precision::F32, &[("TILED", 1.0), ("NO_SUCH_OVERRIDE", 1.0)], &entries).map(drop).unwrap_err().to_string();
    assert!(e.contains("NO_SUCH_OVERRIDE"), "{e}");
    assert!(!ctx.pipeline_constants("rk4_cavity", Precision::F32).iter().any(|c| c.iter().any(|&(n, _)| n == "NO_SUCH_OVERRIDE")));
    // a tile past the adapter's workgroup storage, which a driver may try to compile anyway
    // (lavapipe took 24 GB of host memory over one of 1e8 elements): refused before it
    let limit = ctx.info.limits.max_compute_workgroup_storage_size;
    let e = ctx.pipeline_with("rk4_cavity", Precision::F32, &[("TILED", 1.0), ("TILE_LEN", 1.0e8)], &entries).map(drop).unwrap_err().to_string();
    assert!(e.contains("workgroup memory") && e.contains(&limit.to_string()), "{e}");
    assert_eq!(ctx.pipeline_builds(), builds, "the driver saw neither");
    // at the planner's largest tile the count agrees with it: that builds, one more does not
    let fits = (u64::from(limit) / 8 - qbat_gpu::job::cavity::WORKGROUP_FIXED_REALS as u64 / 2) as f64;
    ctx.pipeline_with("rk4_cavity", Precision::F32, &[("TILED", 1.0), ("TILE_LEN", fits)], &entries).unwrap();
    let e = ctx.pipeline_with("rk4_cavity", Precision::F32, &[("TILED", 1.0), ("TILE_LEN", fits + 1.0)], &entries).map(drop).unwrap_err().to_string();
    assert!(e.contains("workgroup memory"), "{e}");
    // the untiled pipeline still builds beside the refusals
    ctx.pipeline("rk4_cavity", Precision::F32, &entries).unwrap();
}

/// A run resumed on another engine (`--allow-mixed-backends`) keeps that engine's notes: here
/// the GPU's eigen-solve note, which the CPU blocks before it never gave, said once over the
/// GPU's blocks.
#[test]
fn a_run_resumed_on_the_gpu_keeps_the_gpu_engines_note() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, DEPHASED.replace("size = 32", "size = 60").replace("samples = 21", "samples = 3").replace("t_end = 10.0", "t_end = 0.5")).unwrap();
    let out = dir.path().join("r");
    let args = |backend: &str| {
        [
            "run",
            cfg.to_str().unwrap(),
            "--backend",
            backend,
            "--no-progress",
            "--no-plots",
            "--verify",
            "0",
            "--block-members",
            "10",
            "--out",
            out.to_str().unwrap(),
        ]
        .map(String::from)
    };
    let mut child = crate::common::bin().args(args("cpu")).env("QBAT_INJECT_FAULT", "slow-blocks=300").stderr(std::process::Stdio::null()).spawn().unwrap();
    crate::common::kill_after_blocks(&mut child, &dir.path().join(".r.partial"), 2);
    let o = crate::common::bin().args(args("gpu")).args(["--allow-mixed-backends", "--resume", out.to_str().unwrap()]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    const NOTE: &str = "eigen-solve measures on the device";
    assert_eq!(stdout.matches(NOTE).count(), 1, "in the report once: {stdout}");
    // said on stderr once too, before the GPU's first block, whatever the blocks after it
    assert_eq!(stderr.matches(&format!("note: {NOTE}")).count(), 1, "said once: {stderr}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let engines: Vec<&str> = json["engines"].as_array().unwrap().iter().map(|e| e["backend"].as_str().unwrap()).collect();
    assert_eq!(engines, ["cpu", "gpu"], "{}", json["engines"]);
    assert_eq!(json["notes"].as_array().unwrap().iter().filter(|n| n.as_str().unwrap().contains(NOTE)).count(), 1, "{}", json["notes"]);
    // the run says both engines and precisions (it said the first block's backend, the last
    // block's precision, and the GPU's device)
    assert_eq!((&json["backend"], &json["precision"]), (&serde_json::json!("mixed: cpu | gpu"), &serde_json::json!("mixed: f64 | f32")));
    assert!(json["device"].as_str().unwrap().starts_with("mixed: CPU ("), "{}", json["device"]);
}

/// A streamed GPU run computes its `--verify` references ahead, on a thread of their own: over
/// several blocks its verify report (members and each measure's largest deviation) is the
/// in-memory run's, whose references are computed after the integration, one by one.
#[test]
fn verify_references_computed_ahead_give_the_in_memory_report() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = DEPHASED.replace("size = 32", "size = 40");
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, &text).unwrap();
    let out = dir.path().join("r");
    let o = crate::common::bin()
        .args([
            "run",
            cfg.to_str().unwrap(),
            "--backend",
            "gpu",
            "--no-progress",
            "--no-plots",
            "--series",
            "false",
            "--verify",
            "6",
            "--block-members",
            "10",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let streamed: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let plan = parse_plan(&text, &Overrides::default()).unwrap();
    let in_memory = run_plan(&plan, &RunOptions { backend: Backend::Gpu, verify: 6, ..Default::default() }).unwrap().verify.clone().unwrap();
    let members: Vec<u64> = streamed["verify"]["members"].as_array().unwrap().iter().map(|m| m.as_u64().unwrap()).collect();
    assert_eq!(members, in_memory.members);
    for d in &in_memory.deviations {
        let got = streamed["verify"]["deviations"].as_array().unwrap().iter().find(|s| s["measure"] == d.measure.as_str()).unwrap();
        assert_eq!((got["max_abs"].as_f64().unwrap(), got["member"].as_u64()), (d.max_abs, d.member), "{}", d.measure);
    }
}

/// An f32 run's `--verify` holds each member to the energy scale of its own Hamiltonian
/// (`verify::energy_floor`), not only to its values: a wb = 1000 battery near an eigenstate of
/// H_B has energy_variance_b near 0, while the kernel's f32 variance, |h|^2 x00 - (h.r)^2, is
/// off by about |h|^2 eps (0.03 on lavapipe). Held to its own value, such a member failed
/// (1e-4 x max(1, var)); held to (wb / 2)^2, the run passes, and each member is within it.
#[test]
fn f32_verify_holds_each_member_to_its_hamiltonians_energy_scale() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let wb = [0.5f64, 1000.0];
    let text = "model = \"bloch-charger\"\n[params]\nwb = { values = [0.5, 1000.0] }\nj = 0.001\ngamma = 0.05\n[initial]\nrandom = \"bloch\"\n[time]\ndt = 0.0002\nt_end = 0.4\nsamples = 21\n[ensemble]\nsize = 16\nseed = 3\n[output]\nmeasures = [\"energy_b\", \"energy_variance_b\"]\n";
    let plan = parse_plan(text, &Overrides::default()).unwrap();
    let run = run_plan(&plan, &RunOptions { backend: Backend::Gpu, precision: Precision::F32, verify: 16, ..Default::default() }).unwrap();
    let reference = run_plan(&plan, &RunOptions { backend: Backend::Reference, verify: 0, ..Default::default() }).unwrap();
    let v = run.verify.as_ref().unwrap();
    assert!(v.pass, "{v:?}");
    let (ns, k) = (run.times.len(), 1);
    let mut past_own_value = 0;
    for i in 0..run.member_ids.len() {
        let d = (0..ns).map(|s| (run.value(i, s, k) - reference.value(i, s, k)).abs()).fold(0.0, f64::max);
        let own = (0..ns).map(|s| reference.value(i, s, k).abs()).fold(0.0, f64::max);
        // H_B = wb |e><e|: its traceless part's norm wb / 2
        let energy_scale = (wb[i % 2] / 2.0).powi(2);
        assert!(d <= 1e-4 * own.max(energy_scale).max(1.0), "member {i}: {d:e}");
        past_own_value += usize::from(d > 1e-4 * own.max(1.0));
    }
    assert!(past_own_value > 0, "no member's f32 variance went past its own value's tolerance: the check shows nothing");

    // batteries of wb = 20, charged (j = 0.5) and sampled every step (t = 0, dt = 1e-4, ...): the rates stored_energy_b / t and ergotropy_b / t
    // at the first samples are their energies' f32 error over t, past any tolerance of the
    // energy scale; weighted by min(1, t) (`verify::sample_weights`) they are checked as the
    // energies they divide, and pass
    let wb = [0.5f64, 20.0];
    let text = text
        .replace("1000.0", "20.0")
        .replace("j = 0.001", "j = 0.5")
        .replace("dt = 0.0002", "dt = 0.0001")
        .replace("samples = 21", "samples = 4001")
        .replace("[\"energy_b\", \"energy_variance_b\"]", "[\"power_b\", \"ergotropic_power_b\"]");
    let plan = parse_plan(&text, &Overrides::default()).unwrap();
    let run = run_plan(&plan, &RunOptions { backend: Backend::Gpu, precision: Precision::F32, verify: 16, ..Default::default() }).unwrap();
    let reference = run_plan(&plan, &RunOptions { backend: Backend::Reference, verify: 0, ..Default::default() }).unwrap();
    assert_eq!(run.measures, [qbat_gpu::measures::Measure::PowerB, qbat_gpu::measures::Measure::ErgotropicPowerB]);
    assert_eq!(run.times[1], 1e-4);
    let v = run.verify.as_ref().unwrap();
    assert!(v.pass, "{v:?}");
    let ns = run.times.len();
    let mut past_unweighted = 0;
    for i in 0..run.member_ids.len() {
        for k in 0..2 {
            let d = (0..ns).map(|s| (run.value(i, s, k) - reference.value(i, s, k)).abs()).fold(0.0, f64::max);
            let own = (0..ns).map(|s| reference.value(i, s, k).abs()).fold(wb[i % 2] / 2.0, f64::max);
            past_unweighted += usize::from(d > 1e-4 * own.max(1.0));
        }
    }
    assert!(past_unweighted > 0, "no rate went past its unweighted tolerance: the check shows nothing");
}

/// `bench`'s kernel clock: off, a run adds nothing to it; on, it counts a positive time within
/// the run's integration, and the values are the same bits as without it.
#[test]
fn the_kernel_clock_times_the_kernels_within_the_integration_and_changes_no_value() {
    use qbat_gpu::gpu::kernel_clock;
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let plan = parse_plan(STUDY, &Overrides::default()).unwrap();
    let opts = RunOptions { backend: Backend::Gpu, verify: 0, ..Default::default() };
    kernel_clock::take_seconds();
    let plain = run_plan(&plan, &opts).unwrap();
    assert_eq!(kernel_clock::take_seconds(), 0.0, "the clock counted while off");
    kernel_clock::set_on(true);
    let timed = run_plan(&plan, &opts);
    kernel_clock::set_on(false);
    let timed = timed.unwrap();
    let kernel = kernel_clock::take_seconds();
    let integrate = timed.timings.integrate + timed.timings.host_measures;
    assert!(kernel > 0.0 && kernel <= integrate, "kernels {kernel} s, integration {integrate} s");
    assert!(plain.values.iter().zip(&timed.values).all(|(a, b)| a.to_bits() == b.to_bits()) && plain.values.len() == timed.values.len());
}

/// The driver's pipelines kept on disk (`gpu/pipeline_disk_cache.rs`), where the adapter can:
/// a run writes the framed file; a run that loads it leaves it alone, one that finds it
/// damaged writes it again whole, and all give the same files.
#[cfg(unix)]
#[test]
fn the_pipeline_cache_on_disk_is_written_reused_and_a_damaged_one_replaced() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let has_cache = gpu_context(None, false).unwrap().adapter.features().contains(wgpu::Features::PIPELINE_CACHE);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, DEPHASED).unwrap();
    let cache = dir.path().join("pipelines");
    let run = |out: &str| {
        crate::common::ok(
            crate::common::bin()
                .env("QBAT_PIPELINE_CACHE", &cache)
                .arg("run")
                .arg(&cfg)
                .args(["--backend", "gpu", "--no-progress", "--no-plots", "--verify", "0", "--out"])
                .arg(dir.path().join(out)),
        );
        std::fs::read(dir.path().join(out).join("series.csv")).unwrap()
    };
    // magic, length, BLAKE3 of the data, the data
    let framed = |bytes: &[u8]| {
        bytes.len() >= 48
            && &bytes[..8] == b"QBPIPEC1"
            && u64::from_le_bytes(bytes[8..16].try_into().unwrap()) == bytes.len() as u64 - 48
            && blake3::hash(&bytes[48..]).as_bytes() == &bytes[16..48]
    };
    let first = run("a");
    let files: Vec<_> = std::fs::read_dir(&cache).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    if !has_cache {
        assert!(files.is_empty(), "{files:?}");
        return;
    }
    assert_eq!(files.len(), 1, "{files:?}");
    let file = &files[0];
    assert!(framed(&std::fs::read(file).unwrap()));
    // a run that loads the file and builds nothing new leaves it as it was (a file not
    // accepted is written again: a new inode by the rename)
    let inode = |p: &std::path::Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let before = inode(file);
    assert!(run("b") == first, "a run with the cache loaded differs");
    assert_eq!(inode(file), before, "the cache's file was written again: its data was not accepted when loaded, or the driver returned it changed");
    // a well-framed file whose data wgpu refuses (as after a driver update) is replaced
    let garbage = b"not a pipeline cache".to_vec();
    let framed_garbage = [&b"QBPIPEC1"[..], &(garbage.len() as u64).to_le_bytes(), blake3::hash(&garbage).as_bytes(), &garbage].concat();
    assert!(framed(&framed_garbage));
    std::fs::write(file, &framed_garbage).unwrap();
    assert!(run("d") == first, "a run with a refused cache differs");
    let replaced = std::fs::read(file).unwrap();
    assert!(framed(&replaced) && replaced != framed_garbage, "a cache file wgpu refused was kept");
    let mut damaged = std::fs::read(file).unwrap();
    *damaged.last_mut().unwrap() ^= 0x40;
    std::fs::write(file, &damaged).unwrap();
    assert!(run("c") == first, "a run with a damaged cache differs");
    assert!(framed(&std::fs::read(file).unwrap()), "the damaged file was not written again");
}
