//! `[[drive]]` on the cavity-cells GPU kernel (shaders/rk4_cavity.wgsl): the x_a drive against
//! the independent dense solve of tests/common/cavity_solve.rs in f32, the kernel against its
//! f32 twin (`twin::rk4_cavity`) with every named operator, every named operator with
//! `[protocol] switch_off` against the f64 CPU engine, bit identity with the undriven run
//! before a window opens, and `--verify`. Skips with a note when there is no adapter, fails
//! under QBAT_REQUIRE_GPU=1.

use qbat_gpu::config::{parse_plan, Overrides, Plan};
use qbat_gpu::run::{run_plan, Backend, Precision, RunOptions, RunResult};
use qbat_gpu::verify::measure_tolerance;

use crate::common::{have_gpu, SERIAL};

#[path = "common/cavity_solve.rs"]
mod cavity_solve;

fn plan(cfg: &str) -> Plan {
    parse_plan(cfg, &Overrides::default()).unwrap()
}

fn run(p: &Plan, backend: Backend, precision: Precision, verify: usize) -> RunResult {
    let r = run_plan(p, &RunOptions { backend, precision, verify, ..Default::default() }).unwrap();
    assert_eq!(r.backend, backend.name());
    r
}

/// Random (Haar) cell states, a complex coherent mode, three members, plus `extra`.
fn random_cfg(extra: &str) -> String {
    format!("model = \"cavity-cells\"\n[params]\nwc = 1.05\nwq = 1.0\nlambda = 0.7\ng = 0.35\nzeta = -0.3\nkappa = 0.1\ngamma = 0.08\nalpha = [0.6, -0.3]\nn_fock = 5\n[initial]\nrandom = \"haar\"\n[time]\ndt = 0.005\nt_end = 3.0\nsamples = 13\n[ensemble]\nsize = 3\nseed = 23\n{extra}")
}

const ALL_NAMED: &str = "[[drive]]\noperator = \"sx_1\"\namplitude = { uniform = [0.2, 0.4] }\nfrequency = 1.1\nphase = 0.4\nenvelope = { gaussian = [1.5, 0.6] }\n[[drive]]\noperator = \"sy_1\"\namplitude = 0.3\nfrequency = { uniform = [0.8, 1.0] }\n[[drive]]\noperator = \"sz_1\"\namplitude = 0.2\nfrequency = 1.3\nenvelope = { window = [0.5, 2.0] }\n[[drive]]\noperator = \"sx_2\"\namplitude = 0.35\nfrequency = 1.0\nphase = 1.0\n[[drive]]\noperator = \"sy_2\"\namplitude = 0.15\nfrequency = 0.5\n[[drive]]\noperator = \"sz_2\"\namplitude = 0.25\nfrequency = 1.9\n[[drive]]\noperator = \"x_a\"\namplitude = 0.2\nfrequency = 1.05\nenvelope = { gaussian = [2.0, 0.5] }\n[[drive]]\noperator = \"y_a\"\namplitude = 0.3\nfrequency = 0.95\nphase = -0.7\n";

/// The x_a drive (three envelopes) in f32 on the GPU: within 1e-4 of the independent solve.
#[test]
fn x_a_drive_on_the_gpu_matches_the_independent_solve() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    for kind in ["constant", "gaussian", "window", "window-off-grid"] {
        let (spec, env) = cavity_solve::envelope(kind);
        let p = plan(&cavity_solve::cavity_cfg(&spec, 0.004));
        let want = cavity_solve::solve(env, &cavity_solve::window_edges(kind), 400);
        let g = run(&p, Backend::Gpu, Precision::F32, 0);
        let mut worst = 0.0f64;
        for (s, w) in want.iter().enumerate() {
            for (k, want_k) in w.iter().enumerate() {
                let got = g.value(0, s, k);
                let d = (got - want_k).abs();
                assert!(d < 1e-4, "{kind} t = {}: {} = {got} vs the independent solve {}", g.times[s], g.measures[k].name(), *want_k);
                worst = worst.max(d);
            }
        }
        eprintln!("x_a {kind}: GPU f32 vs independent solve, worst {worst:.2e}");
    }
}

/// The same in f64 (SHADER_F64, which lavapipe has too; without it a note, or a failure under
/// QBAT_REQUIRE_GPU=1): within 1e-8 of the solve, as the f64 CPU engine.
#[test]
fn x_a_drive_on_the_gpu_in_f64_matches_the_independent_solve() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) || !have_gpu(true) {
        return;
    }
    let (spec, env) = cavity_solve::envelope("gaussian");
    let p = plan(&cavity_solve::cavity_cfg(&spec, 0.002));
    let want = cavity_solve::solve(env, &[], 800);
    let g = run(&p, Backend::Gpu, Precision::F64, 0);
    for (s, w) in want.iter().enumerate() {
        for (k, want_k) in w.iter().enumerate() {
            let got = g.value(0, s, k);
            assert!((got - want_k).abs() < 1e-8, "t = {}: {} = {got} vs the independent solve {want_k}", g.times[s], g.measures[k].name());
        }
    }
}

/// The kernel against its f32 twin (same job, every named operator, a shortened step before
/// each sample): the reduced cell state's Pauli coefficients (as differences from t = 0) and
/// the photon number agree to f32 rounding.
#[test]
fn gpu_f32_matches_the_f32_twin_with_every_named_operator() {
    use qbat_gpu::gpu::{run_cavity_gpu, CavityGpuOptions};
    use qbat_gpu::job::cavity::SAMPLE_PARTS;
    use qbat_gpu::twin::rk4_cavity::{integrate_schedule, sample_outputs, CavityDrives, CavityOps, Cx};
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let ctx = qbat_gpu::engine::gpu_context(None, false).unwrap();
    // t_end / (samples - 1) = 0.3 is not a whole number of dt = 0.007 steps.
    let p = plan(&random_cfg(ALL_NAMED).replace("dt = 0.005", "dt = 0.007").replace("t_end = 3.0\nsamples = 13", "t_end = 3.0\nsamples = 11"));
    let initial = |i: usize| p.initial_state(&p.members[i]);
    let job = qbat_gpu::engine::cavity_job(&p, &initial, false).unwrap();
    assert_eq!(job.points[0].drives.len(), 8);
    let r = run_cavity_gpu(&ctx, &job, Precision::F32, &CavityGpuOptions::default(), &|_| Ok(())).unwrap();
    let n_fock = job.n_fock;
    let ns = p.schedule.times.len();
    let (mut worst, mut moved) = (0.0f64, 0.0f64);
    for i in 0..job.member_point.len() {
        let point = &job.points[job.member_point[i] as usize];
        let ops = CavityOps::<f32>::new(&point.coeffs);
        let drives = CavityDrives::<f32>::new(&point.drives);
        let rho0 = initial(i);
        let dim = rho0.nrows();
        let mut x = vec![Cx::<f32>::new(0.0, 0.0); dim * dim];
        for r_ in 0..dim {
            for c_ in 0..dim {
                let z = rho0[(r_, c_)];
                x[r_ * dim + c_] = Cx::new(z.re as f32, z.im as f32);
            }
        }
        let (c0, _, _) = sample_outputs(&x, n_fock, SAMPLE_PARTS);
        integrate_schedule(&ops, &ops, &drives, &mut x, None, &p.schedule, &qbat_gpu::twin::never_stop, |s, x, _| {
            let (c, photons, _) = sample_outputs(x, n_fock, SAMPLE_PARTS);
            for k in 0..16 {
                let twin = (c[k] - c0[k]) as f64;
                let gpu = r.deltas[(i * ns + s) * 16 + k];
                worst = worst.max(crate::common::deviation(gpu, twin));
                moved = moved.max(twin.abs());
            }
            worst = worst.max(crate::common::deviation(r.photon_number[i * ns + s], photons as f64));
        });
    }
    eprintln!("GPU f32 vs f32 twin, 8 drives: worst {worst:.2e} (the state moved by {moved:.2})");
    assert!(moved > 0.1);
    assert!(worst < 2e-6, "GPU f32 vs f32 twin: {worst:e}");
}

/// Every named operator, with `[protocol] switch_off` and the two-time fluctuation (Z evolved
/// with the drives): GPU f32 against the f64 CPU engine within the verify tolerances.
#[test]
fn driven_gpu_with_switch_off_matches_the_cpu_engine() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let cfg = random_cfg(&format!("[output]\nmeasures = [\"energy_b\", \"energy_c\", \"ergotropy_b\", \"energy_fluctuation_b\", \"photon_number\", \"concurrence\", \"fock_tail\"]\n{ALL_NAMED}"))
        .replace("[ensemble]", "[protocol]\nswitch_off = 1.37\n[ensemble]");
    let p = plan(&cfg);
    let c = run(&p, Backend::Cpu, Precision::F64, 0);
    let g = run(&p, Backend::Gpu, Precision::F32, 0);
    assert_eq!(g.measures, c.measures);
    for (k, m) in g.measures.iter().enumerate() {
        let tol = measure_tolerance(*m, 1e-4);
        let mut worst = 0.0f64;
        for i in 0..g.member_ids.len() {
            for s in 0..g.times.len() {
                let d = (g.value(i, s, k) - c.value(i, s, k)).abs();
                assert!(d <= tol, "{} member {i} t = {}: GPU {} vs CPU {}", m.name(), g.times[s], g.value(i, s, k), c.value(i, s, k));
                worst = worst.max(d);
            }
        }
        eprintln!("    {:<22} {worst:.2e}", m.name());
    }
}

/// Before a window opens every GPU sample is bit for bit the undriven GPU run's; after it
/// opens they differ. A drive of amplitude 0 is the undriven run, bit for bit.
#[test]
fn gpu_samples_before_a_window_are_those_of_the_undriven_run() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let base = random_cfg("[output]\nmeasures = [\"energy_b\", \"ergotropy_b\", \"energy_fluctuation_b\", \"photon_number\", \"concurrence\"]\n");
    let with = format!("{base}[[drive]]\noperator = \"x_a\"\namplitude = 0.5\nfrequency = 1.3\nenvelope = {{ window = [1.25, 2.5] }}\n[[drive]]\noperator = \"sy_2\"\namplitude = 0.3\nfrequency = 0.8\nenvelope = {{ window = [1.25, 2.5] }}\n");
    let zero = format!("{base}[[drive]]\noperator = \"sx_1\"\namplitude = 0.0\nfrequency = 1.3\n");
    let a = run(&plan(&base), Backend::Gpu, Precision::F32, 0);
    let b = run(&plan(&with), Backend::Gpu, Precision::F32, 0);
    let z = run(&plan(&zero), Backend::Gpu, Precision::F32, 0);
    let bits = |r: &RunResult| r.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&z), "an amplitude-0 drive changes bits");
    crate::common::assert_window_bits(&a, &b, 1.25);
}

/// `--verify` on a driven GPU run re-integrates members on the reference with the drives.
#[test]
fn gpu_verify_passes_on_a_driven_run() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let p = plan(&random_cfg(
        "[[drive]]\noperator = \"y_a\"\namplitude = 0.4\nfrequency = 1.0\n[[drive]]\noperator = \"sz_1\"\namplitude = 0.2\nfrequency = 0.6\n",
    ));
    let g = run(&p, Backend::Gpu, Precision::F32, 2);
    let v = g.verify.as_ref().expect("a verify report");
    assert!(v.pass, "{v:#?}");
    assert_eq!(v.deviations.len(), g.measures.len());
}

/// A stage that gathers from its matrix copied into workgroup memory (`TILED`, where it fits
/// the adapter) gives the bits of one that gathers from device memory: eight drives, Z
/// evolved beside X, f32 and (where the adapter has it) f64; the tile is the default at this
/// cutoff.
#[test]
fn gathering_from_workgroup_memory_changes_no_bit() {
    use qbat_gpu::gpu::{run_cavity_gpu, CavityGpuOptions};
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let ctx = qbat_gpu::engine::gpu_context(None, false).unwrap();
    let p = plan(&random_cfg(ALL_NAMED).replace("t_end = 3.0\nsamples = 13", "t_end = 0.4\nsamples = 3"));
    let initial = |i: usize| p.initial_state(&p.members[i]);
    let job = qbat_gpu::engine::cavity_job(&p, &initial, true).unwrap();
    let precisions: &[Precision] = if ctx.info.has_f64 { &[Precision::F32, Precision::F64] } else { &[Precision::F32] };
    for &precision in precisions {
        let run =
            |tile: bool| run_cavity_gpu(&ctx, &job, precision, &CavityGpuOptions { no_workgroup_tile: !tile, ..Default::default() }, &|_| Ok(())).unwrap();
        let (tiled, gathered) = (run(true), run(false));
        assert!(
            tiled.plan.workgroup_tile,
            "{precision:?}: n_fock {} should fit {} bytes of workgroup memory",
            job.n_fock, ctx.info.limits.max_compute_workgroup_storage_size
        );
        assert!(!gathered.plan.workgroup_tile);
        // the tiled pipeline was built, with the tile of this cutoff
        let tile = vec![("TILED", 1.0), ("TILE_LEN", tiled.plan.layout.n_elem as f64)];
        assert!(ctx.pipeline_constants("rk4_cavity", precision).contains(&tile), "{:?}", ctx.pipeline_constants("rk4_cavity", precision));
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&tiled.deltas), bits(&gathered.deltas), "{precision:?}: X");
        assert_eq!(bits(tiled.z_deltas.as_deref().unwrap()), bits(gathered.z_deltas.as_deref().unwrap()), "{precision:?}: Z");
        assert_eq!(bits(&tiled.photon_number), bits(&gathered.photon_number), "{precision:?}: photon number");
        assert_eq!(bits(&tiled.fock_tail), bits(&gathered.fock_tail), "{precision:?}: Fock tail");
        // the members moved, so equal bits are not two copies of the initial state
        assert!(tiled.deltas.iter().any(|d| d.abs() > 1e-3), "{precision:?}");
    }
}

/// `QBAT_CAVITY_TILE` through the binary: `on` and `off` give the same stats.csv on the GPU,
/// and so does a tiled pipeline the driver refuses (the untiled one runs, with a note); another
/// value is refused with exit 2, naming the variable, before the run begins.
#[test]
fn the_tile_switch_and_a_refused_tile_change_no_result() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("qbat-tile-switch-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, random_cfg("").replace("t_end = 3.0\nsamples = 13", "t_end = 0.2\nsamples = 3")).unwrap();
    let run = |tile: &str| {
        let out = dir.join(tile);
        let o = crate::common::bin()
            .env("QBAT_CAVITY_TILE", tile)
            .args(["run", cfg.to_str().unwrap(), "--backend", "gpu", "--verify", "0", "--no-plots", "--no-progress", "--out", out.to_str().unwrap()])
            .output()
            .unwrap();
        let tiled = std::fs::read(out.join("run.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .map(|r| r["engine_plan"]["workgroup_tile"].clone());
        (o.status.code(), String::from_utf8_lossy(&o.stderr).to_string(), std::fs::read(out.join("stats.csv")).ok(), tiled)
    };
    let (on, off, bad) = (run("on"), run("off"), run("sideways"));
    // a driver refusing the tiled pipeline: the untiled one runs, with a note, to the same
    // stats; in blocks, the note comes once in run.json and in the report
    let refused = {
        let out = dir.join("refused");
        let o = crate::common::bin()
            .env("QBAT_INJECT_FAULT", "tile-refused")
            .args([
                "run",
                cfg.to_str().unwrap(),
                "--backend",
                "gpu",
                "--verify",
                "0",
                "--no-plots",
                "--no-progress",
                "--block-members",
                "1",
                "--out",
                out.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout).to_string(), String::from_utf8_lossy(&o.stderr).to_string());
        assert_eq!(o.status.code(), Some(0), "{stderr}");
        const NOTE: &str = "gathers from device memory instead of its workgroup tile";
        assert_eq!((stdout.matches(NOTE).count(), stderr.matches(NOTE).count()), (1, 1), "{stdout}\n{stderr}");
        let run: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
        assert!(run["blocks"]["count"].as_u64().unwrap() > 1, "{run}");
        assert_eq!(run["engine_plan"]["workgroup_tile"], serde_json::json!(false));
        assert_eq!(run["notes"].as_array().unwrap().iter().filter(|n| n.as_str().unwrap().contains(NOTE)).count(), 1, "{run}");
        std::fs::read(out.join("stats.csv")).ok()
    };
    assert!(refused.is_some() && refused == off.2, "stats.csv of the fallback");
    assert_eq!((on.0, off.0), (Some(0), Some(0)), "{} / {}", on.1, off.1);
    assert!(on.2.is_some() && on.2 == off.2, "stats.csv differs with the tile on and off");
    // the switch was heard: run.json's engine plan says which way each ran
    assert_eq!((on.3, off.3), (Some(serde_json::json!(true)), Some(serde_json::json!(false))));
    // refused before the run began: no output directory
    assert!(!dir.join("sideways").exists());
    assert_eq!(bad.0, Some(2), "{}", bad.1);
    let errors: Vec<&str> = bad.1.lines().filter(|l| l.starts_with("error")).collect();
    assert!(errors.len() == 1 && errors[0].contains("QBAT_CAVITY_TILE"), "{}", bad.1);
    std::fs::remove_dir_all(&dir).ok();
}
