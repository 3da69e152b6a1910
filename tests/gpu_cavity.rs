//! The cavity-cells GPU engine (shaders/rk4_cavity.wgsl) through the pipeline, against the
//! structured f64 CPU engine: random members for n_fock 4, 12 and 20 (random detuning, zeta,
//! kappa, gamma, complex alpha), every measure; the closed system's conserved excitation
//! number; chunking that changes no bit; the min_eigenvalue rule. Skips with a note when there
//! is no adapter, fails under QBAT_REQUIRE_GPU=1. The cutoff-convergence check runs on the CPU
//! engine and needs no GPU.

use qbat_gpu::config::{parse_plan, Overrides, Plan};
use qbat_gpu::engine::gpu_context;
use qbat_gpu::error::QbatError;
use qbat_gpu::measures::Measure;
use qbat_gpu::run::{run_plan, Backend, Precision, RunOptions, RunResult};
use qbat_gpu::verify::measure_tolerance;

use crate::common::{have_gpu, SERIAL};

/// Random members: detuning through wc, zeta, kappa, gamma drawn per member; complex alpha;
/// Haar-random cell states.
fn random_config(n_fock: usize, t_end: f64, samples: usize, size: usize, seed: u64, measures: &str) -> String {
    format!(
        "model = \"cavity-cells\"\n[params]\nwc = {{ uniform = [0.8, 1.2] }}\nwq = 1.0\nlambda = 0.8\ng = 0.3\nzeta = {{ uniform = [-1.0, 1.0] }}\nkappa = {{ uniform = [0.0, 0.2] }}\ngamma = {{ uniform = [0.0, 0.1] }}\nalpha = [0.9, -0.4]\nn_fock = {n_fock}\n[initial]\nrandom = \"haar\"\n[time]\ndt = 0.01\nt_end = {t_end}\nsamples = {samples}\n[ensemble]\nsize = {size}\nseed = {seed}\n{measures}"
    )
}

fn plan(cfg: &str) -> Plan {
    parse_plan(cfg, &Overrides::default()).unwrap()
}

fn cpu(plan: &Plan) -> RunResult {
    run_plan(plan, &RunOptions { backend: Backend::Cpu, verify: 0, ..Default::default() }).unwrap()
}

fn gpu(plan: &Plan, precision: Precision, max_chunk: Option<usize>, verify: usize) -> RunResult {
    let r = run_plan(plan, &RunOptions { backend: Backend::Gpu, precision, verify, max_chunk, ..Default::default() }).unwrap();
    assert_eq!(r.backend, "gpu");
    assert_eq!(r.precision, precision);
    r
}

/// Max |GPU - CPU| of every measure the GPU run has, by name; fails beyond the tolerance.
fn compare(what: &str, g: &RunResult, c: &RunResult, base: f64) -> Vec<(Measure, f64)> {
    let mut out = vec![];
    for (kg, m) in g.measures.iter().enumerate() {
        let kc = c.measures.iter().position(|x| x == m).expect("the CPU run has every measure");
        let (mut worst, mut at) = (0.0f64, (0, 0));
        for i in 0..g.member_ids.len() {
            for s in 0..g.times.len() {
                let d = (g.value(i, s, kg) - c.value(i, s, kc)).abs();
                let d = if d.is_nan() { f64::INFINITY } else { d };
                if d > worst {
                    (worst, at) = (d, (i, s));
                }
            }
        }
        let tol = measure_tolerance(*m, base);
        let (i, s) = at;
        assert!(
            worst <= tol,
            "{what}: {} GPU vs CPU engine max |dev| {worst:e} > {tol:e} (member {i}, t = {}: GPU {}, CPU {})",
            m.name(),
            g.times[s],
            g.value(i, s, kg),
            c.value(i, s, kc)
        );
        out.push((*m, worst));
    }
    for (a, b) in g.peaks.iter().zip(&c.peaks) {
        assert!((a.max - b.max).abs() <= base, "{what}: peak {a:?} vs {b:?}");
    }
    out
}

fn gpu_matches_cpu(precision: Precision, base: f64) {
    for (n_fock, t_end, samples) in [(4, 4.0, 9), (12, 3.0, 7), (20, 2.0, 5)] {
        let p = plan(&random_config(n_fock, t_end, samples, 8, 17 + n_fock as u64, ""));
        let c = cpu(&p);
        let g = gpu(&p, precision, None, 0);
        // Defaulted measures: every one but min_eigenvalue, with a note saying why.
        assert_eq!(g.measures.len() + 1, p.measures.len());
        assert!(!g.measures.contains(&Measure::MinEigenvalue));
        assert!(g.notes.iter().any(|n| n.contains("min_eigenvalue")), "{:?}", g.notes);
        let plan_json = g.engine_plan.as_ref().expect("the GPU cavity engine reports its plan");
        assert_eq!(plan_json["members"], 8);
        assert_eq!(plan_json["layout"]["n_fock"], n_fock);
        let dev = compare(&format!("n_fock {n_fock}, {precision:?}"), &g, &c, base);
        let worst = dev.iter().map(|d| d.1).fold(0.0, f64::max);
        eprintln!("n_fock {n_fock} {precision:?}: worst |GPU - CPU| over {} measures {worst:.2e}", dev.len());
        for (m, d) in dev {
            eprintln!("    {:<22} {d:.2e}", m.name());
        }
    }
}

#[test]
fn gpu_f32_matches_the_cpu_engine_for_every_measure() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if have_gpu(false) {
        gpu_matches_cpu(Precision::F32, 1e-4);
    }
}

#[test]
fn gpu_f64_matches_the_cpu_engine_for_every_measure() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    match gpu_context(None, true) {
        Ok(_) => gpu_matches_cpu(Precision::F64, 1e-9),
        Err(e) => {
            if std::env::var("QBAT_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("QBAT_REQUIRE_GPU=1 but the adapter has no f64: {e}");
            }
            eprintln!("skipping f64: {e}");
        }
    }
}

#[test]
fn gpu_run_passes_its_own_verify_against_the_reference() {
    // The verify step re-integrates members on the f64 reference: with min_eigenvalue left
    // out of the GPU columns it must compare the columns the run has.
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let p = plan(&random_config(4, 1.0, 5, 4, 3, ""));
    let g = gpu(&p, Precision::F32, None, 2);
    let v = g.verify.as_ref().unwrap();
    assert!(v.pass, "{v:#?}");
    assert_eq!(v.deviations.len(), g.measures.len());
}

#[test]
fn explicit_min_eigenvalue_is_an_error_on_the_gpu() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let p = plan(&random_config(4, 0.1, 2, 2, 1, "[output]\nmeasures = [\"energy_b\", \"min_eigenvalue\"]\n"));
    let e = run_plan(&p, &RunOptions { backend: Backend::Gpu, verify: 0, ..Default::default() }).unwrap_err();
    match &e {
        QbatError::Invalid { field, reason } => {
            assert_eq!(field, "output.measures");
            assert!(reason.contains("min_eigenvalue") && reason.contains("--backend cpu"), "{reason}");
        }
        other => panic!("expected an output.measures error, got {other:?}"),
    }
    // The CPU engine gives it.
    let c = cpu(&p);
    assert!(c.measures.contains(&Measure::MinEigenvalue));
}

#[test]
fn closed_system_conserves_the_excitation_number() {
    // zeta = 0, kappa = gamma = 0: N = a^+ a + e_1 + e_2 commutes with H (the truncated a
    // included), so it is conserved by RK4 up to rounding; e_k = (1 + <sz_k>) / 2, with
    // <sz_1> = 2 energy_c / wq and <sz_2> = 2 energy_b / wq.
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let cfg = "model = \"cavity-cells\"\n[params]\nwc = { uniform = [0.9, 1.1] }\nwq = 1.0\nlambda = 1.0\ng = 0.4\nzeta = 0.0\nkappa = 0.0\ngamma = 0.0\nalpha = [1.2, 0.5]\nn_fock = 12\n[initial]\nrandom = \"haar\"\n[time]\ndt = 0.01\nt_end = 6.0\nsamples = 13\n[ensemble]\nsize = 4\nseed = 9\n[output]\nmeasures = [\"photon_number\", \"energy_b\", \"energy_c\", \"trace_error\"]\n";
    let p = plan(cfg);
    let wq = 1.0;
    let mut precisions = vec![(Precision::F32, 5e-6)];
    // f64 where the adapter has it (a failure under QBAT_REQUIRE_GPU=1 where it does not)
    if have_gpu(true) {
        precisions.push((Precision::F64, 1e-11));
    }
    for (precision, tol) in precisions {
        let g = gpu(&p, precision, None, 0);
        let mut worst = 0.0f64;
        let mut moved = 0.0f64;
        for i in 0..g.member_ids.len() {
            let n = |s: usize| {
                let e1 = 0.5 * (1.0 + 2.0 * g.value(i, s, 2) / wq);
                let e2 = 0.5 * (1.0 + 2.0 * g.value(i, s, 1) / wq);
                g.value(i, s, 0) + e1 + e2
            };
            for s in 0..g.times.len() {
                worst = worst.max(crate::common::deviation(n(s), n(0)));
                moved = moved.max((g.value(i, s, 0) - g.value(i, 0, 0)).abs());
                assert!(g.value(i, s, 3) <= tol, "trace_error {}", g.value(i, s, 3));
            }
        }
        eprintln!("{precision:?}: max |N(t) - N(0)| = {worst:.2e}; photon number moved by up to {moved:.3}");
        assert!(moved > 0.1, "the cavity and the cells should exchange excitations");
        assert!(worst <= tol, "{precision:?}: excitation number drifts by {worst:e} > {tol:e}");
    }
}

#[test]
fn chunking_changes_no_bit() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let p = plan(&random_config(6, 1.5, 4, 8, 5, ""));
    let one = gpu(&p, Precision::F32, None, 0);
    let three = gpu(&p, Precision::F32, Some(3), 0);
    assert_eq!(one.engine_plan.as_ref().unwrap()["chunks"], 1);
    assert_eq!(three.engine_plan.as_ref().unwrap()["chunks"], 3);
    assert_eq!(one.measures, three.measures);
    assert_eq!(one.values.len(), three.values.len());
    for (k, (a, b)) in one.values.iter().zip(&three.values).enumerate() {
        assert_eq!(a.to_bits(), b.to_bits(), "value {k}: {a} vs {b}");
    }
    for (a, b) in one.peaks.iter().zip(&three.peaks) {
        assert_eq!((a.max.to_bits(), a.t_max.to_bits()), (b.max.to_bits(), b.t_max.to_bits()));
    }
}

#[test]
fn raising_the_cutoff_changes_nothing_when_the_tail_is_empty() {
    // CPU engine, no GPU needed: alpha = 1 keeps the Fock tail below 1e-10 at N = 16, so
    // N = 24 must give the same measures to 1e-7.
    let cfg = |n: usize| {
        format!("model = \"cavity-cells\"\n[params]\nwc = 1.05\nwq = 1.0\nlambda = 0.8\ng = 0.3\nzeta = 0.4\nkappa = 0.1\ngamma = 0.05\nalpha = 1.0\nn_fock = {n}\n[initial]\nrandom = \"haar\"\n[time]\ndt = 0.01\nt_end = 4.0\nsamples = 5\n[ensemble]\nsize = 2\nseed = 4\n")
    };
    let a = cpu(&plan(&cfg(16)));
    let b = cpu(&plan(&cfg(24)));
    assert_eq!(a.measures, b.measures);
    let tail = a.measures.iter().position(|m| *m == Measure::FockTail).unwrap();
    for i in 0..2 {
        for s in 0..a.times.len() {
            assert!(a.value(i, s, tail) < 1e-10, "fock_tail {} at N = 16", a.value(i, s, tail));
        }
    }
    let mut worst = 0.0f64;
    for (k, m) in a.measures.iter().enumerate() {
        if *m == Measure::FockTail {
            continue;
        }
        for i in 0..2 {
            for s in 0..a.times.len() {
                let d = (a.value(i, s, k) - b.value(i, s, k)).abs();
                assert!(d < 1e-7, "{} changes by {d:e} from N = 16 to 24", m.name());
                worst = worst.max(d);
            }
        }
    }
    eprintln!("N = 16 vs 24: max change {worst:.2e}");
}

#[test]
fn long_runs_complete_and_a_cut_short_run_is_an_error() {
    // llvmpipe ends every loop of an invocation after 65,535 iterations: the engine sizes its
    // dispatches to stay far below that, and the kernel's status check turns a run that was cut
    // short into an error. 1,500 steps with a sample each at N = 20 is several times the cap in
    // one dispatch.
    use qbat_gpu::gpu::{run_cavity_gpu, CavityGpuOptions};
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let ctx = gpu_context(None, false).unwrap();
    let p = plan(&random_config(20, 15.0, 1501, 1, 2, "[output]\nmeasures = [\"photon_number\", \"stored_energy_b\"]\n"));
    let c = cpu(&p);
    let g = gpu(&p, Precision::F32, None, 0);
    let last = p.schedule.times.len() - 1;
    for k in 0..2 {
        let (a, b) = (g.value(0, last, k), c.value(0, last, k));
        assert!((a - b).abs() <= 1e-4, "{} at t = 15: GPU {a} vs CPU {b}", g.measures[k].name());
    }
    assert!(g.engine_plan.as_ref().unwrap()["dispatches_per_chunk"].as_u64().unwrap() > 1);

    let initial = |i: usize| p.initial_state(&p.members[i]);
    let job = qbat_gpu::engine::cavity_job(&p, &initial, false).unwrap();
    let one_dispatch = CavityGpuOptions { loop_iterations_per_dispatch: Some(u64::MAX / 4), ..Default::default() };
    let r = run_cavity_gpu(&ctx, &job, Precision::F32, &one_dispatch, &|_| Ok(()));
    if ctx.info.name.to_lowercase().contains("llvmpipe") {
        let e = r.expect_err("llvmpipe cuts a dispatch this long short, and the engine must say so");
        assert!(e.to_string().contains("stopped early"), "{e}");
    } else {
        let r = r.expect("a GPU without llvmpipe's loop cap runs the whole dispatch");
        let ns = p.schedule.times.len();
        assert!((r.photon_number[ns - 1] - c.value(0, last, 0)).abs() <= 1e-4);
    }
}
