//! `[[drive]]` in the two-qubit GPU kernel: in f32 against an independent solve of the same H(t)
//! (tests/common/drive_solve.rs), against its f32 twin (two drives, Z, `[protocol]
//! switch_off`), and bit identity with the undriven GPU run before a window opens.

use qbat_gpu::config::{parse_plan, Overrides};
use qbat_gpu::engine::two_qubit_job;
use qbat_gpu::gpu::{run_two_qubit_gpu, Precision};
use qbat_gpu::measures::Measure;
use qbat_gpu::run::{run_plan, Backend, RunOptions, RunResult};
use qbat_gpu::twin::rk4_two_qubit::run_two_qubit_twin;

#[path = "common/drive_solve.rs"]
mod drive_solve;
use drive_solve::{battery_cfg, envelope, excited_population, window_edges};

fn run(cfg: &str, backend: Backend, precision: Precision, verify: usize) -> RunResult {
    let plan = parse_plan(cfg, &Overrides::default()).unwrap();
    run_plan(&plan, &RunOptions { backend, precision, verify, ..Default::default() }).unwrap()
}

fn col(r: &RunResult, m: Measure) -> usize {
    r.measures.iter().position(|x| *x == m).unwrap()
}

/// The resonantly driven battery qubit (wb = nu = 1, amplitude 0.2, charger idle and
/// decoupled, from |gg>) on the GPU in f32 matches the independent Schrodinger solve to 1e-4,
/// for the three envelopes.
#[test]
fn gpu_resonant_drive_matches_an_independent_solve() {
    let _g = crate::common::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !crate::common::have_gpu(false) {
        return;
    }
    for kind in ["constant", "gaussian", "window", "window-off-grid"] {
        let (spec, env) = envelope(kind);
        let cfg = battery_cfg(&format!("operator = \"sx_b\"\namplitude = 0.2\nfrequency = 1.0\nphase = 0.3\nenvelope = {spec}"), 10.0, 51, 0.01);
        let times: Vec<f64> = (0..51).map(|k| 10.0 * k as f64 / 50.0).collect();
        let want = excited_population(1.0, 0.2, 1.0, 0.3, &*env, &times, 2000, &window_edges(kind));
        assert!(want.iter().cloned().fold(0.0, f64::max) > 0.05, "{kind}: no excitation");
        let r = run(&cfg, Backend::Gpu, Precision::F32, 0);
        assert_eq!(r.backend, "gpu");
        let k = col(&r, Measure::EnergyB);
        for (s, w) in want.iter().enumerate() {
            let got = r.value(0, s, k);
            assert!((got - w).abs() < 1e-4, "{kind} t = {}: energy_b = {got} vs {w}", times[s]);
        }
    }
}

/// A coupled, dissipative pair with two drives (a gaussian on the battery, a window on the
/// charger), energy_fluctuation_b (the Z companion) and `[protocol] switch_off`: the kernel in
/// f32 against its f32 twin, and both against the f64 reference.
const TWO_DRIVES: &str = "model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = 0.7\ngamma = 0.2\n[initial]\ntheta = 2.0\n[time]\ndt = 0.01\nt_end = 8.0\nsamples = 81\n[protocol]\nswitch_off = 5.005\n[output]\nmeasures = [\"energy_b\", \"ergotropy_b\", \"energy_fluctuation_b\", \"purity\"]\n[[drive]]\noperator = \"sx_b\"\namplitude = 0.3\nfrequency = 1.1\nphase = 0.2\nenvelope = { gaussian = [3.0, 1.2] }\n[[drive]]\noperator = \"sy_c\"\namplitude = 0.5\nfrequency = 0.9\nenvelope = { window = [1.5, 6.0] }\n";

#[test]
fn gpu_two_drives_with_switch_off_match_the_twin_and_the_reference() {
    let _g = crate::common::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !crate::common::have_gpu(false) {
        return;
    }
    // the window's edges on the sample grid, then off it (each ends a segment of its own,
    // one 7e-4 before the switch-off)
    for (window, edges) in [("[1.5, 6.0]", 0), ("[1.537, 5.0043]", 2)] {
        let cfg = TWO_DRIVES.replace("window = [1.5, 6.0]", &format!("window = {window}"));
        two_drives_with_switch_off(&cfg, edges);
    }
}

fn two_drives_with_switch_off(cfg: &str, edges: usize) {
    let plan = parse_plan(cfg, &Overrides::default()).unwrap();
    let job = two_qubit_job(&plan);
    assert_eq!(job.points[0].drives.len(), 2);
    assert!(job.schedule.switch_segment().is_some());
    assert_eq!(job.schedule.edges.len(), edges);
    let ctx = qbat_gpu::engine::gpu_context(None, false).unwrap();
    let gpu = run_two_qubit_gpu(&ctx, &job, Precision::F32, &|_| Ok(())).unwrap();
    let twin = run_two_qubit_twin::<f32>(&job);
    let worst = gpu.values.iter().zip(&twin.values).map(|(a, b)| crate::common::deviation(*a, *b)).fold(0.0, f64::max);
    eprintln!("two drives, switch-off, {edges} edges: GPU f32 vs twin f32 max |dev| {worst:e}");
    // The kernel and the twin take the same operations, but the kernel's pieces are shorter
    // (its start times t0 of a piece are rounded to f32 at other places than the twin's
    // t0 + j dt) and the driver may contract a * b + c: a few f32 ulp per step, after 800
    // steps well below 1e-5.
    assert!(worst < 1e-5, "GPU vs twin: {worst:e}");
    let reference = run(cfg, Backend::Reference, Precision::F64, 0);
    let r = run(cfg, Backend::Gpu, Precision::F32, 2);
    assert_eq!(r.backend, "gpu");
    assert!(r.verify.as_ref().unwrap().pass, "{:#?}", r.verify);
    // energy_fluctuation_b is a square root, sensitive to f32 rounding where it is small: it is
    // checked against the twin above and by --verify's tolerances.
    for k in 0..r.measures.len() {
        if r.measures[k] == Measure::EnergyFluctuationB {
            continue;
        }
        for s in 0..r.times.len() {
            let (a, b) = (r.value(0, s, k), reference.value(0, s, k));
            assert!((a - b).abs() < 2e-4, "{:?} t = {}: {a} vs {b}", r.measures[k], r.times[s]);
        }
    }
}

/// Before a window opens every GPU sample is bit for bit that of the undriven GPU run; after
/// it opens they differ.
#[test]
fn gpu_samples_before_a_window_are_those_of_the_undriven_run() {
    let _g = crate::common::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !crate::common::have_gpu(false) {
        return;
    }
    let undriven = "model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = 0.7\ngamma = 0.2\n[initial]\ntheta = 2.0\n[time]\ndt = 0.01\nt_end = 6.0\nsamples = 61\n[output]\nmeasures = [\"energy_b\", \"ergotropy_b\", \"energy_fluctuation_b\", \"purity\"]\n";
    let with = format!("{undriven}[[drive]]\noperator = \"sy_c\"\namplitude = 0.5\nfrequency = 1.3\nenvelope = {{ window = [2.55, 4.0] }}\n");
    let a = run(undriven, Backend::Gpu, Precision::F32, 0);
    let b = run(&with, Backend::Gpu, Precision::F32, 0);
    let nm = a.measures.len();
    let row = |r: &RunResult, s: usize| (0..nm).map(|k| r.value(0, s, k).to_bits()).collect::<Vec<_>>();
    for (s, &t) in a.times.iter().enumerate() {
        if t <= 2.55 {
            assert_eq!(row(&a, s), row(&b, s), "t = {t}");
        } else if t >= 2.7 {
            assert_ne!(row(&a, s), row(&b, s), "t = {t}: the drive must act");
        }
    }
}

/// A drive whose envelope f32 cannot hold (1e39) is refused on the f32 GPU path before any
/// work or file, naming the field (it would integrate NaN coefficients); the CPU engine, f64,
/// runs it, and agrees with the envelope just inside f32, which the GPU then runs too.
#[test]
fn gpu_f32_refuses_a_drive_beyond_f32_and_runs_one_inside() {
    let _g = crate::common::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !crate::common::have_gpu(false) {
        return;
    }
    let cfg = |width: &str| {
        format!("model = \"bloch-charger\"\n[time]\ndt = 0.01\nt_end = 2.0\nsamples = 5\n[ensemble]\nsize = 2\n[output]\nmeasures = [\"energy_b\"]\n[[drive]]\noperator = \"sx_b\"\namplitude = 0.5\nfrequency = 1.0\nenvelope = {{ gaussian = [-{width}, {width}] }}\n")
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.toml");
    std::fs::write(&path, cfg("1e39")).unwrap();
    let out = dir.path().join("o");
    let o = crate::common::bin().arg("run").arg(&path).args(["--backend", "gpu", "--no-progress", "--no-plots", "--out"]).arg(&out).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("drive[0].envelope") && stderr.contains("f32"), "{stderr}");
    assert!(!out.exists() && std::fs::read_dir(dir.path()).unwrap().count() == 1, "files were left");
    // in memory too, and the f64 engine runs it
    let plan = parse_plan(&cfg("1e39"), &Overrides::default()).unwrap();
    let e = run_plan(&plan, &RunOptions { backend: Backend::Gpu, precision: Precision::F32, verify: 0, ..Default::default() }).unwrap_err();
    assert!(e.to_string().contains("drive[0].envelope"), "{e}");
    let wide = run(&cfg("1e39"), Backend::Cpu, Precision::F64, 0);
    let inside = run(&cfg("1e38"), Backend::Gpu, Precision::F32, 0);
    let last = |r: &RunResult| r.value(1, r.times.len() - 1, 0);
    assert!((last(&wide) - last(&inside)).abs() < 1e-4, "{} {}", last(&wide), last(&inside));
}

/// A phase of about 1e7 radians is the phase mod 2 pi on the GPU in f32 too (reduced on the
/// host in f64): the run matches the one with the small phase to f32's 1e-4. (Sent raw, f32
/// rounded it to whole radians: energy_b 0.62 for 0.78 at phase 1e7.)
#[test]
fn gpu_large_phase_is_the_phase_mod_two_pi() {
    let _g = crate::common::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !crate::common::have_gpu(false) {
        return;
    }
    let big = 0.3 + std::f64::consts::TAU * 1591549.0;
    let cfg = |phase: f64| battery_cfg(&format!("operator = \"sx_b\"\namplitude = 0.25\nfrequency = 1.0\nphase = {phase:?}"), 8.0, 41, 0.01);
    let small = run(&cfg(0.3), Backend::Gpu, Precision::F32, 0);
    let large = run(&cfg(big), Backend::Gpu, Precision::F32, 0);
    let k = col(&small, Measure::EnergyB);
    assert!(small.values.iter().cloned().fold(0.0, f64::max) > 0.1, "the drive must excite the battery");
    for s in 0..small.times.len() {
        let (a, b) = (small.value(0, s, k), large.value(0, s, k));
        assert!((a - b).abs() < 1e-4, "t = {}: energy_b {b} at phase {big} vs {a} at 0.3", small.times[s]);
    }
}
