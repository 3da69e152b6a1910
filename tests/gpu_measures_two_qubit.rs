//! The eigen-solve measures kernel (shaders/measures_two_qubit.wgsl) against the f64
//! reference measures (`measures::evaluate`, nalgebra) and against its CPU twin:
//! - chosen states held fixed by a zero generator (pure, near-pure, rank 2 and 3, mixed,
//!   Werner, maximally mixed, product, dephased), in f32 and, where the adapter has it, f64;
//! - random members of every two-qubit model through the whole pipeline, with `--verify`.

use qbat_gpu::config::{parse_plan, Overrides};
use qbat_gpu::engine::Precision;
use qbat_gpu::gpu::{run_two_qubit_gpu_measured, GpuContext, GpuRunOptions};
use qbat_gpu::job::measures_two_qubit::{EigenJob, EIGEN_MEASURES};
use qbat_gpu::job::pauli::{pauli2, to_pauli};
use qbat_gpu::job::{Schedule, TwoQubitJob, TwoQubitPoint};
use qbat_gpu::linalg::{eigvals_hermitian, hermitian_part, CMat};
use qbat_gpu::measures::{evaluate, Measure, MeasureContext, Sample};
use qbat_gpu::model::Space;
use qbat_gpu::run::{run_plan, Backend, RunOptions};
use qbat_gpu::twin::measures_two_qubit::run_measures_twin;
use qbat_gpu::verify::verify_tolerance;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::common::two_qubit_states::{random_complex, test_state};
use crate::common::{have_gpu, SERIAL};

fn gpu_context() -> Option<&'static GpuContext> {
    static CTX: std::sync::OnceLock<Option<GpuContext>> = std::sync::OnceLock::new();
    CTX.get_or_init(|| GpuContext::new(None, false).ok()).as_ref()
}

#[test]
fn device_measures_of_fixed_states_match_the_reference_and_the_twin() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let ctx = gpu_context().expect("an adapter");
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let (n_points, n_members) = (5, 135);
    // A zero generator keeps every member at its initial state: the samples are the chosen states.
    let mut points = vec![];
    let mut ctxs = vec![];
    let mut eigs = vec![];
    for _ in 0..n_points {
        let h = hermitian_part(&random_complex(&mut rng, 4));
        let (hb, hc) = (hermitian_part(&random_complex(&mut rng, 2)), hermitian_part(&random_complex(&mut rng, 2)));
        let eps = eigvals_hermitian(&h);
        points.push(TwoQubitPoint {
            generator: [0.0; 256],
            generator_off: None,
            h_battery: pauli2(&hb),
            h_charger: pauli2(&hc),
            dephasing: 0.0,
            drives: vec![],
        });
        eigs.push([eps[0], eps[1], eps[2], eps[3]]);
        ctxs.push(MeasureContext {
            space: Space::TwoQubit,
            h_total: Some(h),
            h_total_eigs: Some(eps),
            h_b_traceless: qbat_gpu::measures::traceless_part(&hb),
            h_c_traceless: qbat_gpu::measures::traceless_part(&hc),
            h_battery: hb,
            h_charger: hc,
            dephasing: 0.0,
            energy_b0: 0.0,
            traceless_sq0: 0.0,
            traceless_energy0: 0.0,
        });
    }
    let states: Vec<CMat> = (0..n_members).map(|k| test_state(&mut rng, k, &[1e-6, 1e-9, 1e-12])).collect();
    let member_point: Vec<u32> = (0..n_members).map(|i| (i % n_points) as u32).collect();
    let job = TwoQubitJob {
        points: points.clone(),
        member_point: member_point.clone(),
        initial: states.iter().map(to_pauli).collect(),
        schedule: Schedule::new(0.05, &[0.0, 0.1]),
        measures: vec![Measure::Purity],
        keep_states: false,
    };
    // every eigen measure, in an order other than the codes'
    let measures: Vec<Measure> = EIGEN_MEASURES.iter().rev().copied().collect();
    let eigen = EigenJob { measures: measures.clone(), h_total_eigs: eigs };
    let mut precisions = vec![Precision::F32];
    if ctx.info.has_f64 {
        precisions.push(Precision::F64);
    } else {
        crate::common::no_f64("the f64 eigen measures");
    }
    for precision in precisions {
        let (res, ev) = run_two_qubit_gpu_measured(ctx, &job, Some(&eigen), precision, &GpuRunOptions::default(), &|_| Ok(())).unwrap();
        assert!(res.states.is_none(), "states are not read back unless asked for");
        let ev = ev.expect("eigen values");
        let nm = measures.len();
        assert_eq!(ev.len(), n_members * 2 * nm);
        // The twin in the same precision, on the states rounded as the device holds them.
        let rounded: Vec<f64> =
            states.iter().flat_map(to_pauli).map(|x| if precision == Precision::F32 { x as f32 as f64 } else { x }).flat_map(|x| [x, x]).collect();
        // (each member's state twice: two samples; interleave per member)
        let mut twin_states = vec![0.0; n_members * 2 * 16];
        for i in 0..n_members {
            for s in 0..2 {
                for k in 0..16 {
                    twin_states[(i * 2 + s) * 16 + k] = rounded[(i * 16 + k) * 2];
                }
            }
        }
        let twin = match precision {
            Precision::F32 => run_measures_twin::<f32>(&eigen, &points, &member_point, &twin_states, 2),
            Precision::F64 => run_measures_twin::<f64>(&eigen, &points, &member_point, &twin_states, 2),
        };
        let mut worst_ref = vec![0.0f64; nm];
        let mut worst_twin = vec![0.0f64; nm];
        for (i, rho) in states.iter().enumerate() {
            let want = evaluate(&measures, &ctxs[i % n_points], &Sample { t: 0.0, rho, y: None });
            for s in 0..2 {
                for k in 0..nm {
                    let got = ev[(i * 2 + s) * nm + k];
                    assert!(got.is_finite(), "member {i}: {} not finite", measures[k].name());
                    worst_ref[k] = worst_ref[k].max((got - want[k]).abs());
                    worst_twin[k] = worst_twin[k].max(crate::common::deviation(twin[(i * 2 + s) * nm + k], got));
                }
            }
        }
        let twin_tol = match precision {
            Precision::F32 => 1e-5,
            Precision::F64 => 1e-12,
        };
        for (k, m) in measures.iter().enumerate() {
            let tol = verify_tolerance(*m, precision, 1.0);
            eprintln!("{precision:?} device {}: vs reference {:.1e} (tolerance {tol:.0e}), vs twin {:.1e}", m.name(), worst_ref[k], worst_twin[k]);
            assert!(worst_ref[k] <= tol, "{precision:?} {}: device vs f64 reference {:e} > {tol:e}", m.name(), worst_ref[k]);
            assert!(worst_twin[k] <= twin_tol, "{precision:?} {}: device vs twin {:e}", m.name(), worst_twin[k]);
        }
    }
}

/// Random members of a two-qubit model on the GPU with every measure: `--verify` passes
/// against the f64 reference, it names the concurrence's precision, and the eigen-solve
/// measures match the CPU engine.
fn pipeline_case(cfg: &str) {
    let plan = parse_plan(cfg, &Overrides::default()).unwrap();
    let cpu = run_plan(&plan, &RunOptions { backend: Backend::Cpu, verify: 0, ..Default::default() }).unwrap();
    let gpu = run_plan(&plan, &RunOptions { backend: Backend::Gpu, verify: 4, ..Default::default() }).unwrap();
    let v = gpu.verify.as_ref().unwrap();
    assert!(v.pass, "{v:#?}");
    assert!(v.concurrence.as_deref().is_some_and(|c| c.starts_with("f32 on the device")), "{:?}", v.concurrence);
    for (k, m) in plan.measures.iter().enumerate().filter(|(_, m)| m.needs_eigensolve()) {
        let tol = verify_tolerance(*m, Precision::F32, 1.0);
        let worst = crate::common::worst_deviation(&gpu, &cpu, k);
        assert!(worst <= tol, "{}: GPU vs CPU engine {worst:e} > {tol:e}", m.name());
    }
}

#[test]
fn device_measures_of_every_two_qubit_model_pass_verify() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let tail = "[time]\ndt = 0.01\nt_end = 4.0\nsamples = 9\n[ensemble]\nsize = 24\nseed = 9\n";
    // closed bloch-charger: pure states all along (rank 1, the concurrence's hard case)
    pipeline_case(&format!("model = \"bloch-charger\"\n[params]\nj = {{ uniform = [0.3, 1.2] }}\n{tail}"));
    pipeline_case(&format!("model = \"spin-pair\"\n[params]\nj1 = {{ uniform = [0.05, 0.5] }}\ndephasing = 0.1\n[initial]\nrandom = \"haar\"\n{tail}"));
    pipeline_case(&format!("model = \"driven-pair\"\n[params]\nf = {{ uniform = [0.2, 1.5] }}\nn_th = 0.2\n[initial]\nrandom = \"mixed-bures\"\n{tail}"));
}

/// energy_variance_b and _c where H_B and H_C carry large offsets (3000 and 500 on splittings
/// of 2): the variance does not depend on an offset, and the f32 kernel's matches the f64
/// reference engine's to 1e-3 (written as Tr(rho H^2) - Tr(rho H)^2 in f32 it lost every
/// digit: 1 or 2 for 0.86 to 0.98).
#[test]
fn the_energy_variances_do_not_lose_their_digits_to_an_offset() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !have_gpu(false) {
        return;
    }
    let cfg = "model = \"two-qubit\"\n[params]\nhamiltonian = [[-2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.3, 0.0], [0.0, 0.3, 0.0, 0.0], [0.0, 0.0, 0.0, 2.0]]\nh_battery = [[3000.0, 0.0], [0.0, 3002.0]]\nh_charger = [[500.0, 0.0], [0.0, 502.0]]\njumps = [{ op = [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]], rate = 0.05 }]\n[initial]\nrandom = \"mixed-bures\"\n[time]\ndt = 0.01\nt_end = 5.0\nsamples = 11\n[ensemble]\nsize = 3\n[output]\nmeasures = [\"energy_variance_b\", \"energy_variance_c\"]\n";
    let plan = parse_plan(cfg, &Overrides::default()).unwrap();
    let run = |backend| run_plan(&plan, &RunOptions { backend, precision: Precision::F32, verify: 0, ..Default::default() }).unwrap();
    let (gpu, reference) = (run(Backend::Gpu), run(Backend::Reference));
    assert_eq!(gpu.backend, "gpu");
    for (k, m) in gpu.measures.iter().enumerate() {
        for member in 0..3 {
            for s in 0..gpu.times.len() {
                let (got, want) = (gpu.value(member, s, k), reference.value(member, s, k));
                assert!(want > 0.1 && (got - want).abs() < 1e-3, "{} member {member} t = {}: {got} vs the reference's {want}", m.name(), gpu.times[s]);
            }
        }
    }
}

/// energy_fluctuation_b where H_B = h0 I + h.sigma carries a large offset h0 (3000 and 1e5 on
/// |h| = 1). H_B enters the measure only (the dynamics are H's), and Sigma does not depend on
/// h0, so the truth is the f64 reference engine's at h0 = 0 (its own direct formula loses
/// h0^2 eps_f64 to the offset: 5e-6 in Sigma^2 at 1e5). The f32 twin's and kernel's Sigma^2
/// match it to 32 f32 eps |h|^2 (3.8e-6; 2e-7 without an offset). With Z of H_B itself
/// (h0 rho + that of h.sigma), h0 h.(rho - rho0) cancelled against it: 5.2e-4 at 3000 (some
/// 2e-2 at 1e5). The twin is checked without an adapter too.
#[test]
fn the_energy_fluctuation_does_not_lose_its_digits_to_an_offset() {
    use qbat_gpu::engine::two_qubit::two_qubit_job;
    use qbat_gpu::twin::rk4_two_qubit::run_two_qubit_twin;
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // h = (0.6, 0, 0.8): H_B = [[h0 - 0.8, 0.6], [0.6, h0 + 0.8]] (sigma_z = diag(-1, 1))
    let cfg = |h0: f64| {
        format!("model = \"two-qubit\"\n[params]\nhamiltonian = [[-2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.3, 0.0], [0.0, 0.3, 0.0, 0.0], [0.0, 0.0, 0.0, 2.0]]\nh_battery = [[{}, 0.6], [0.6, {}]]\nh_charger = [[-1.0, 0.0], [0.0, 1.0]]\njumps = [{{ op = [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]], rate = 0.05 }}]\n[initial]\nrandom = \"mixed-bures\"\n[time]\ndt = 0.01\nt_end = 5.0\nsamples = 11\n[ensemble]\nsize = 3\n[output]\nmeasures = [\"energy_fluctuation_b\"]\n", h0 - 0.8, h0 + 0.8)
    };
    let run = |h0: f64, backend| {
        run_plan(&parse_plan(&cfg(h0), &Overrides::default()).unwrap(), &RunOptions { backend, precision: Precision::F32, verify: 0, ..Default::default() })
            .unwrap()
    };
    let truth = run(0.0, Backend::Reference);
    let tol = 32.0 * f64::from(f32::EPSILON);
    let gpu = have_gpu(false);
    for h0 in [3000.0, 1e5] {
        let mut runs = vec![("twin", run_two_qubit_twin::<f32>(&two_qubit_job(&parse_plan(&cfg(h0), &Overrides::default()).unwrap())).values)];
        if gpu {
            let g = run(h0, Backend::Gpu);
            assert_eq!(g.backend, "gpu");
            runs.push(("kernel", g.values));
        }
        let ns = truth.times.len();
        for (label, values) in &runs {
            let (mut worst, mut at) = (0.0f64, String::new());
            for member in 0..3 {
                for s in 0..ns {
                    let (got, want) = (values[member * ns + s], truth.value(member, s, 0));
                    assert!(s == 0 || want > 0.5, "the reference's Sigma {want} at t = {}", truth.times[s]);
                    let err = (got * got.abs() - want * want.abs()).abs();
                    if err > worst || err.is_nan() {
                        (worst, at) = (err, format!("member {member} t = {}: Sigma {got} vs the reference's {want}", truth.times[s]));
                    }
                }
            }
            eprintln!("h0 = {h0}: f32 {label} Sigma^2 off the reference by {worst:.1e} at most ({at})");
            assert!(worst <= tol, "h0 = {h0}: f32 {label}: Sigma^2 off by {worst:.2e} > {tol:.1e} ({at})");
        }
    }
}

/// capacity_total and residual_capacity where the full H carries a large offset c (3000 and
/// 1e5; spectrum c + (-2, -0.3, 0.3, 2)): the capacity does not depend on c, and the f32
/// twin's and kernel's match the f64 reference engine's to 32 f32 eps times the offset-free
/// scale S = (eps_3 - eps_0) + (eps_2 - eps_1) + 2 |h_B| + 2 |h_C| = 8.6 (3.3e-5; 5e-7 at
/// c = 0). Taken as sum_i eps_i (lam_i - lam_{3-i}) with the eps in f32 they were off by 3.3e-4
/// at 3000 and 9.5e-3 at 1e5. The twin is checked without an adapter too.
#[test]
fn the_total_capacity_does_not_lose_its_digits_to_an_offset() {
    use qbat_gpu::engine::two_qubit::{eigen_job, two_qubit_job};
    use qbat_gpu::twin::rk4_two_qubit::run_two_qubit_twin;
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let cfg = |c: f64| {
        format!("model = \"two-qubit\"\n[params]\nhamiltonian = [[{}, 0.0, 0.0, 0.0], [0.0, {c}, 0.3, 0.0], [0.0, 0.3, {c}, 0.0], [0.0, 0.0, 0.0, {}]]\nh_battery = [[-1.0, 0.0], [0.0, 1.0]]\nh_charger = [[-1.0, 0.0], [0.0, 1.0]]\njumps = [{{ op = [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]], rate = 0.05 }}]\n[initial]\nrandom = \"mixed-bures\"\n[time]\ndt = 0.01\nt_end = 5.0\nsamples = 11\n[ensemble]\nsize = 3\n[output]\nmeasures = [\"capacity_total\", \"residual_capacity\"]\n", c - 2.0, c + 2.0)
    };
    let tol = 32.0 * f64::from(f32::EPSILON) * 8.6;
    let gpu = have_gpu(false);
    for c in [3000.0, 1e5] {
        let plan = parse_plan(&cfg(c), &Overrides::default()).unwrap();
        let reference = run_plan(&plan, &RunOptions { backend: Backend::Reference, verify: 0, ..Default::default() }).unwrap();
        let job = two_qubit_job(&plan);
        let ns = reference.times.len();
        let states = run_two_qubit_twin::<f32>(&job).states.unwrap();
        let mut runs = vec![("twin", run_measures_twin::<f32>(&eigen_job(&plan), &job.points, &job.member_point, &states, ns))];
        if gpu {
            let g = run_plan(&plan, &RunOptions { backend: Backend::Gpu, precision: Precision::F32, verify: 0, ..Default::default() }).unwrap();
            assert_eq!(g.backend, "gpu");
            runs.push(("kernel", g.values));
        }
        for (label, values) in &runs {
            let (mut worst, mut at) = (0.0f64, String::new());
            for member in 0..3 {
                for s in 0..ns {
                    for (k, m) in reference.measures.iter().enumerate() {
                        let (got, want) = (values[(member * ns + s) * 2 + k], reference.value(member, s, k));
                        assert!(k == 1 || want > 0.5, "the reference's capacity {want}");
                        let err = (got - want).abs();
                        if err > worst || err.is_nan() {
                            (worst, at) = (err, format!("{} member {member} t = {}: {got} vs the reference's {want}", m.name(), reference.times[s]));
                        }
                    }
                }
            }
            eprintln!("c = {c}: f32 {label} off the reference by {worst:.1e} at most ({at})");
            assert!(worst <= tol, "c = {c}: f32 {label}: off by {worst:.2e} > {tol:.1e} ({at})");
        }
    }
}
