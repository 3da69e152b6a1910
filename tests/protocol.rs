//! `[protocol] switch_off = T`: the charger-battery coupling goes off at T and the battery
//! stores. Checked against closed forms (paper 004 up to T, a frozen closed battery after it,
//! the free relaxation of a dissipative battery), against runs without the protocol (bit for
//! bit before T), and engine against engine (reference, CPU, GPU f32 and f64).

use qbat_gpu::config::{parse_plan, Overrides, Plan};
use qbat_gpu::measures::Measure;
use qbat_gpu::run::{run_plan, Backend, Precision, RunOptions, RunResult};
use qbat_gpu::verify::measure_tolerance;

fn run(cfg: &str, backend: Backend, precision: Precision) -> (Plan, RunResult) {
    let plan = parse_plan(cfg, &Overrides::default()).unwrap();
    let r = run_plan(&plan, &RunOptions { backend, precision, verify: 0, ..Default::default() }).unwrap();
    (plan, r)
}

fn col(r: &RunResult, m: Measure) -> usize {
    r.measures.iter().position(|x| *x == m).unwrap_or_else(|| panic!("{} not in the result", m.name()))
}

fn v(r: &RunResult, i: usize, s: usize, m: Measure) -> f64 {
    r.value(i, s, col(r, m))
}

/// bloch-charger, theta = pi and 2 pi / 3, phi = 0.4; T = 1.2345 is neither a multiple of dt
/// nor a sample time.
const T_OFF: f64 = 1.2345;
fn bloch_cfg(gamma: f64, protocol: bool) -> String {
    let p = if protocol { format!("[protocol]\nswitch_off = {T_OFF}\n") } else { String::new() };
    format!(
        "model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = 1.0\ngamma = {gamma}\n[initial]\ntheta = {{ values = [3.141592653589793, 2.0943951023931953] }}\nphi = 0.4\n[time]\ndt = 0.001\nt_end = 3.0\nsamples = 31\n[output]\nmeasures = [\"energy_b\", \"ergotropy_b\", \"capacity_b\", \"concurrence\"]\n{p}"
    )
}

/// Paper 004 (gamma = 0): energy_b = wb s^2 sin^2(jt) and ergotropy_b up to T; after T the
/// battery is alone with H_B, so both stay at their value at T.
fn check_bloch_closed(r: &RunResult, tol_closed: f64, tol_frozen: f64) {
    for (i, theta) in [std::f64::consts::PI, 2.0 * std::f64::consts::PI / 3.0].iter().enumerate() {
        let s2 = (theta / 2.0f64).sin().powi(2);
        let energy = |t: f64| s2 * t.sin().powi(2);
        let ergo = |t: f64| s2 * t.sin().powi(2) - (1.0 - (1.0 - s2 * s2 * (2.0 * t).sin().powi(2)).sqrt()) / 2.0;
        let first_after = r.times.iter().position(|&t| t > T_OFF).unwrap();
        for (s, &t) in r.times.iter().enumerate() {
            let te = t.min(T_OFF);
            let (e, w) = (v(r, i, s, Measure::EnergyB), v(r, i, s, Measure::ErgotropyB));
            assert!((e - energy(te)).abs() <= tol_closed, "energy_b(t={t}) = {e} vs {} (theta {theta})", energy(te));
            assert!((w - ergo(te)).abs() <= tol_closed, "ergotropy_b(t={t}) = {w} vs {} (theta {theta})", ergo(te));
            if t > T_OFF {
                let (e0, w0) = (v(r, i, first_after, Measure::EnergyB), v(r, i, first_after, Measure::ErgotropyB));
                assert!((e - e0).abs() <= tol_frozen, "energy_b not frozen after T: {e} vs {e0} at t={t}");
                assert!((w - w0).abs() <= tol_frozen, "ergotropy_b not frozen after T: {w} vs {w0} at t={t}");
            }
        }
    }
}

#[test]
fn bloch_charger_follows_paper_004_then_stores() {
    for backend in [Backend::Reference, Backend::Cpu] {
        let (_, r) = run(&bloch_cfg(0.0, true), backend, Precision::F64);
        check_bloch_closed(&r, 1e-9, 1e-12);
    }
}

#[test]
fn spin_pair_battery_is_frozen_after_switch_off() {
    let cfg = "model = \"spin-pair\"\n[params]\nwb = 1.0\nwc = 0.7\nj1 = 0.3\nj2 = 0.2\n[initial]\nrandom = \"haar\"\n[time]\ndt = 0.001\nt_end = 10.0\nsamples = 21\n[ensemble]\nsize = 4\nseed = 3\n[output]\nmeasures = [\"energy_b\", \"ergotropy_b\", \"capacity_b\"]\n[protocol]\nswitch_off = 3.217\n";
    for backend in [Backend::Reference, Backend::Cpu] {
        let (plan, r) = run(cfg, backend, Precision::F64);
        let k = r.times.iter().position(|&t| t > 3.217).unwrap();
        for i in 0..plan.members.len() {
            for s in k..r.times.len() {
                for m in [Measure::EnergyB, Measure::ErgotropyB, Measure::CapacityB] {
                    let d = (v(&r, i, s, m) - v(&r, i, k, m)).abs();
                    assert!(d <= 1e-12, "{backend:?} member {i}: {} moved by {d:e} after T", m.name());
                }
            }
            // and it did charge before T (the check above is not vacuous)
            assert!((v(&r, i, k, Measure::EnergyB) - v(&r, i, 0, Measure::EnergyB)).abs() > 1e-3);
        }
    }
}

/// Every sample before T is that of the run without protocol, bit for bit.
fn assert_same_before(a: &RunResult, b: &RunResult, t_off: f64, what: &str) {
    assert_eq!(a.measures, b.measures);
    let n = a.member_ids.len();
    let mut compared = 0;
    for i in 0..n {
        for (s, &t) in a.times.iter().enumerate() {
            if t < t_off {
                for k in 0..a.measures.len() {
                    assert_eq!(a.value(i, s, k).to_bits(), b.value(i, s, k).to_bits(), "{what}: {} at t={t}", a.measures[k].name());
                    compared += 1;
                }
            }
        }
    }
    assert!(compared > 0);
}

fn without_protocol(cfg: &str) -> String {
    cfg[..cfg.find("[protocol]").unwrap()].to_string()
}

/// One config per model, each with a switch-off that is neither a sample time nor a multiple
/// of dt, and dissipation or dephasing where the model has it.
fn model_cfgs() -> Vec<(&'static str, String, f64)> {
    let two_qubit =
        include_str!("../examples/two-qubit.toml").replace("size = 500", "size = 6").replace("t_end = 20.0\nsamples = 101", "t_end = 6.0\nsamples = 13");
    vec![
        ("spin-pair", "model = \"spin-pair\"\n[params]\nwb = 1.0\nwc = 0.8\nj1 = { uniform = [0.05, 0.4] }\nj2 = 0.1\ndephasing = 0.2\n[initial]\nrandom = \"haar\"\n[time]\ndt = 0.01\nt_end = 6.0\nsamples = 13\n[ensemble]\nsize = 6\nseed = 4\n[protocol]\nswitch_off = 2.345\n".to_string(), 2.345),
        ("driven-pair", "model = \"driven-pair\"\n[params]\nn_th = 0.2\nf = { values = [0.4, 1.1] }\ngamma = 0.4\ndelta = 0.3\n[initial]\nrandom = \"mixed-hs\"\n[time]\ndt = 0.01\ntimes = [0.0, 0.37, 2.0, 3.5, 5.5]\n[ensemble]\nsize = 4\nseed = 2\n[protocol]\nswitch_off = 2.6789\n".to_string(), 2.6789),
        ("bloch-charger", "model = \"bloch-charger\"\n[params]\nj = 0.7\ngamma = 0.3\n[initial]\nrandom = \"bloch\"\n[time]\ndt = 0.01\nt_end = 6.0\nsamples = 13\n[ensemble]\nsize = 6\n[protocol]\nswitch_off = 1.0101\n".to_string(), 1.0101),
        ("two-qubit", format!("{two_qubit}[protocol]\nswitch_off = 3.1234\n"), 3.1234),
        ("cavity-cells", "model = \"cavity-cells\"\n[params]\nwc = 1.1\nwq = 1.0\nlambda = 0.8\ng = 0.4\nzeta = { values = [-0.3, 0.6] }\nkappa = 0.1\ngamma = 0.05\nalpha = [0.9, -0.4]\nn_fock = 4\n[initial]\nrandom = \"haar\"\n[time]\ndt = 0.01\nt_end = 2.0\nsamples = 5\n[ensemble]\nsize = 4\nseed = 8\n[output]\nmeasures = [\"energy_b\", \"stored_energy_b\", \"ergotropy_b\", \"energy_fluctuation_b\", \"concurrence\", \"photon_number\", \"fock_tail\", \"trace_error\"]\n[protocol]\nswitch_off = 0.777\n".to_string(), 0.777),
    ]
}

#[test]
fn before_switch_off_equals_the_run_without_protocol() {
    for (name, cfg, t_off) in model_cfgs() {
        for backend in [Backend::Reference, Backend::Cpu] {
            let (_, a) = run(&cfg, backend, Precision::F64);
            let (_, b) = run(&without_protocol(&cfg), backend, Precision::F64);
            assert_same_before(&a, &b, t_off, &format!("{name} {backend:?}"));
            // and the protocol changed something after T
            let last = a.times.len() - 1;
            let moved = (0..a.measures.len()).any(|k| (a.value(0, last, k) - b.value(0, last, k)).abs() > 1e-6);
            assert!(moved, "{name} {backend:?}: switching the coupling off changed nothing");
        }
    }
}

/// Largest deviation per measure of `a` from the reference `r` (measures of `a`).
fn assert_close(a: &RunResult, r: &RunResult, tol: f64, what: &str) {
    for (k, m) in a.measures.iter().enumerate() {
        let kr = col(r, *m);
        let t = measure_tolerance(*m, tol);
        let mut worst = 0.0f64;
        for i in 0..a.member_ids.len() {
            for s in 0..a.times.len() {
                let (x, y) = (a.value(i, s, k), r.value(i, s, kr));
                assert!(x.is_finite() && y.is_finite(), "{what}: {} not finite", m.name());
                worst = worst.max((x - y).abs());
            }
        }
        assert!(worst <= t, "{what}: {} deviates {worst:e} > {t:e} from the reference", m.name());
    }
    for (p, q) in a.peaks.iter().zip(&r.peaks) {
        assert!((p.max - q.max).abs() <= 10.0 * tol, "{what}: peak {p:?} vs {q:?}");
    }
}

#[test]
fn cpu_engines_agree_with_the_reference() {
    for (name, cfg, _) in model_cfgs() {
        let (_, r) = run(&cfg, Backend::Reference, Precision::F64);
        let (_, c) = run(&cfg, Backend::Cpu, Precision::F64);
        assert_close(&c, &r, 1e-9, &format!("{name} cpu f64"));
    }
}

#[test]
fn landing_on_switch_off_matches_a_grid_that_samples_t() {
    // T = 1.2345 is not a sample time; the same run with T added to the sample times must give
    // the same states at the common samples: both land exactly on T.
    let extra = "times = [0.0, 0.5, 1.0, 1.2345, 1.5, 2.5]";
    let base = "model = \"bloch-charger\"\n[params]\nj = 0.8\ngamma = 0.2\n[initial]\ntheta = 2.0\n[time]\ndt = 0.01\nTIMES\n[output]\nmeasures = [\"energy_b\", \"ergotropy_b\", \"energy_c\"]\n[protocol]\nswitch_off = 1.2345\n";
    let a_cfg = base.replace("TIMES", "times = [0.0, 0.5, 1.0, 1.5, 2.5]");
    let b_cfg = base.replace("TIMES", extra);
    for backend in [Backend::Reference, Backend::Cpu] {
        let (_, a) = run(&a_cfg, backend, Precision::F64);
        let (_, b) = run(&b_cfg, backend, Precision::F64);
        for (sa, sb) in [(0, 0), (1, 1), (2, 2), (3, 4), (4, 5)] {
            for k in 0..a.measures.len() {
                let (x, y) = (a.value(0, sa, k), b.value(0, sb, k));
                assert!((x - y).abs() <= 1e-13, "{backend:?} {}: {x} vs {y} at t={}", a.measures[k].name(), a.times[sa]);
            }
        }
        // after T the charger decays alone: energy_b is frozen at its value at T
        let eb_t = v(&b, 0, 3, Measure::EnergyB);
        assert!((v(&a, 0, 3, Measure::EnergyB) - eb_t).abs() <= 1e-13);
        assert!((v(&a, 0, 4, Measure::EnergyB) - eb_t).abs() <= 1e-13);
    }
}

#[test]
fn dissipative_batteries_relax_freely_after_switch_off() {
    // bloch-charger with charger decay: the battery has no dissipator, so after T its energy
    // stays at paper 004's value at T: wb s^2 (j/G)^2 sin^2(G T) e^{-gamma T/2}.
    let gamma: f64 = 0.4;
    let g = (1.0 - gamma * gamma / 16.0).sqrt();
    for backend in [Backend::Reference, Backend::Cpu] {
        let (_, r) = run(&bloch_cfg(gamma, true), backend, Precision::F64);
        for (i, theta) in [std::f64::consts::PI, 2.0 * std::f64::consts::PI / 3.0].iter().enumerate() {
            let s2 = (theta / 2.0f64).sin().powi(2);
            for (s, &t) in r.times.iter().enumerate() {
                let te = t.min(T_OFF);
                let want = s2 * (1.0 / g).powi(2) * (g * te).sin().powi(2) * (-gamma * te / 2.0).exp();
                let got = v(&r, i, s, Measure::EnergyB);
                assert!((got - want).abs() <= 1e-9, "{backend:?} theta {theta}: energy_b(t={t}) = {got} vs {want}");
            }
        }
    }
    // driven-pair: after T the battery only meets its reservoir,
    //   p_e(t) = p_ss + (p_e(t_k) - p_ss) e^{-gamma (N + n)(t - t_k)},  p_ss = n / (N + n),
    // energy_b = w0 p_e, from the first sample t_k after T.
    let (n, w0, gam) = (0.3, 1.3, 0.5);
    let big_n = 1.0 + n;
    let cfg = format!("model = \"driven-pair\"\n[params]\nn_th = {n}\nw0 = {w0}\ngamma = {gam}\nf = 1.2\ng = 0.9\ndelta = 0.2\n[time]\ndt = 0.005\nt_end = 8.0\nsamples = 17\n[output]\nmeasures = [\"energy_b\"]\n[protocol]\nswitch_off = 2.2222\n");
    for backend in [Backend::Reference, Backend::Cpu] {
        let (_, r) = run(&cfg, backend, Precision::F64);
        let k = r.times.iter().position(|&t| t > 2.2222).unwrap();
        let p_ss = n / (big_n + n);
        let pk = v(&r, 0, k, Measure::EnergyB) / w0;
        assert!((pk - p_ss).abs() > 1e-2, "the battery starts away from its steady state");
        for s in k..r.times.len() {
            let want = w0 * (p_ss + (pk - p_ss) * (-gam * (big_n + n) * (r.times[s] - r.times[k])).exp());
            let got = v(&r, 0, s, Measure::EnergyB);
            assert!((got - want).abs() <= 1e-9, "{backend:?} driven-pair energy_b(t={}) = {got} vs {want}", r.times[s]);
        }
    }
    // cavity-cells: cell 2 decays alone, energy_b + wq/2 = (wq/2) 2 p_e ~ e^{-gamma (t - t_k)}.
    let (wq, gc) = (1.0, 0.3);
    let cfg = format!("model = \"cavity-cells\"\n[params]\nwq = {wq}\nlambda = 0.9\ng = 0.6\nzeta = 0.2\nkappa = 0.2\ngamma = {gc}\nalpha = 1.2\nn_fock = 6\n[time]\ndt = 0.01\nt_end = 6.0\nsamples = 13\n[output]\nmeasures = [\"energy_b\"]\n[protocol]\nswitch_off = 2.71\n");
    for backend in [Backend::Reference, Backend::Cpu] {
        let (_, r) = run(&cfg, backend, Precision::F64);
        let k = r.times.iter().position(|&t| t > 2.71).unwrap();
        let ek = v(&r, 0, k, Measure::EnergyB) + wq / 2.0;
        assert!(ek > 1e-3, "cell 2 was charged before T");
        for s in k..r.times.len() {
            let want = ek * (-gc * (r.times[s] - r.times[k])).exp() - wq / 2.0;
            let got = v(&r, 0, s, Measure::EnergyB);
            assert!((got - want).abs() <= 1e-9, "{backend:?} cavity energy_b(t={}) = {got} vs {want}", r.times[s]);
        }
    }
}

#[test]
fn gpu_engines_agree_with_the_reference() {
    let _lock = crate::common::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !crate::common::have_gpu(false) {
        return;
    }
    let f64_ok = crate::common::have_gpu(true);
    for (name, cfg, t_off) in model_cfgs() {
        let (_, r) = run(&cfg, Backend::Reference, Precision::F64);
        let (_, g32) = run(&cfg, Backend::Gpu, Precision::F32);
        assert_close(&g32, &r, 1e-4, &format!("{name} gpu f32"));
        let (_, g32_plain) = run(&without_protocol(&cfg), Backend::Gpu, Precision::F32);
        assert_same_before(&g32, &g32_plain, t_off, &format!("{name} gpu f32"));
        if f64_ok {
            let (_, g64) = run(&cfg, Backend::Gpu, Precision::F64);
            assert_close(&g64, &r, 1e-9, &format!("{name} gpu f64"));
            let (_, g64_plain) = run(&without_protocol(&cfg), Backend::Gpu, Precision::F64);
            assert_same_before(&g64, &g64_plain, t_off, &format!("{name} gpu f64"));
        }
    }
}

#[test]
fn gpu_bloch_charger_follows_paper_004_then_stores() {
    let _lock = crate::common::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !crate::common::have_gpu(false) {
        return;
    }
    let (_, r) = run(&bloch_cfg(0.0, true), Backend::Gpu, Precision::F32);
    check_bloch_closed(&r, 2e-4, 1e-5);
    if crate::common::have_gpu(true) {
        let (_, r) = run(&bloch_cfg(0.0, true), Backend::Gpu, Precision::F64);
        check_bloch_closed(&r, 1e-9, 1e-12);
    }
}

#[test]
fn gpu_switch_off_survives_many_short_dispatches() {
    // The uncoupled points follow the coupled ones in `consts`; with one piece per dispatch the
    // point offset changes at the switch dispatch and every later one must keep it, and the
    // completed-step count still covers the whole schedule.
    use qbat_gpu::gpu::rk4_two_qubit::{run_two_qubit_gpu_with, GpuRunOptions};
    let _lock = crate::common::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !crate::common::have_gpu(false) {
        return;
    }
    let (name, cfg, _) = model_cfgs().into_iter().find(|c| c.0 == "spin-pair").unwrap();
    let plan = parse_plan(&cfg, &Overrides::default()).unwrap();
    let job = qbat_gpu::engine::two_qubit_job(&plan);
    let ctx = qbat_gpu::engine::gpu_context(None, false).unwrap();
    let one = run_two_qubit_gpu_with(&ctx, &job, Precision::F32, &GpuRunOptions::default(), &|_| Ok(())).unwrap();
    let opts = GpuRunOptions { member_steps_per_dispatch: Some(64 * 37), max_members_per_chunk: Some(2) };
    let many = run_two_qubit_gpu_with(&ctx, &job, Precision::F32, &opts, &|_| Ok(())).unwrap();
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&one.values), bits(&many.values), "{name}: dispatch sizes changed the results");
    let twin = qbat_gpu::twin::rk4_two_qubit::run_two_qubit_twin::<f32>(&job);
    for (a, b) in many.values.iter().zip(&twin.values) {
        assert!(a.is_nan() && b.is_nan() || (a - b).abs() <= 1e-5, "{name}: GPU {a} vs f32 twin {b}");
    }
}

// ---- config errors: exit 2, the field named, no output left behind ----------------------

fn run_binary(text: &str) -> (i32, String, bool) {
    let r = crate::common::run_config_text(text, &["--no-plots"]);
    (r.code, r.stderr, r.left_behind)
}

const GOOD: &str = "model = \"bloch-charger\"\n[params]\nj = 1.0\ngamma = 0.1\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 11\n";

#[test]
fn bad_protocols_are_refused_naming_the_field() {
    for (protocol, field) in [
        ("[protocol]\nswitch_off = 0.0\n", "protocol.switch_off"),
        ("[protocol]\nswitch_off = -0.5\n", "protocol.switch_off"),
        ("[protocol]\nswitch_off = nan\n", "protocol.switch_off"),
        ("[protocol]\nswitch_off = inf\n", "protocol.switch_off"),
        ("[protocol]\nswitch_off = \"soon\"\n", "protocol.switch_off"),
        ("[protocol]\n", "protocol.switch_off"),
        ("[protocol]\nswitch_off = 0.5\nswitch_on = 0.7\n", "protocol.switch_on"),
        ("protocol = 0.5\n", "protocol"),
    ] {
        let text = if protocol.starts_with("protocol =") { format!("{protocol}{GOOD}") } else { format!("{GOOD}{protocol}") };
        let (code, stderr, out) = run_binary(&text);
        assert_eq!(code, 2, "{protocol:?}: exit {code}: {stderr}");
        assert!(stderr.contains(field), "{protocol:?}: message should name {field}: {stderr}");
        assert!(!stderr.contains("panicked") && !out, "{protocol:?}: {stderr}");
    }
    // A model with no coupling at any point has nothing to switch off.
    let (code, stderr, _) = run_binary(&format!("{}[protocol]\nswitch_off = 0.5\n", GOOD.replace("j = 1.0", "j = 0.0")));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("protocol.switch_off") && stderr.contains("coupling"), "{stderr}");
    // A T after the last sample is accepted, with a note, and changes nothing.
    let (code, stderr, out) = run_binary(&format!("{GOOD}[protocol]\nswitch_off = 5.0\n"));
    assert_eq!(code, 0, "{stderr}");
    assert!(out && stderr.contains("after the last sample"), "{stderr}");
}

#[test]
fn the_uncoupled_models_drop_exactly_the_documented_terms() {
    use qbat_gpu::linalg::*;
    use qbat_gpu::model::{resolve_params, ModelKind, ParamValue, Params};
    let build = |kind: ModelKind, set: &[(&str, f64)]| {
        let mut p = Params::new();
        for (k, x) in set {
            p.insert(k.to_string(), ParamValue::Real(*x));
        }
        kind.build(&resolve_params(kind, &p).unwrap()).unwrap()
    };
    // Switching off = building the model with its coupling parameters at 0.
    for (kind, on, off) in [
        (ModelKind::BlochCharger, vec![("j", 0.8), ("gamma", 0.2)], vec![("j", 0.0), ("gamma", 0.2)]),
        (ModelKind::SpinPair, vec![("j1", 0.3), ("j2", 0.2)], vec![("j1", 0.0), ("j2", 0.0)]),
        (ModelKind::DrivenPair, vec![("g", 0.7), ("f", 0.5)], vec![("g", 0.0), ("f", 0.5)]),
        (
            ModelKind::CavityCells,
            vec![("g", 0.4), ("zeta", 0.3), ("lambda", 0.9), ("n_fock", 3.0)],
            vec![("g", 0.0), ("zeta", 0.3), ("lambda", 0.9), ("n_fock", 3.0)],
        ),
    ] {
        let sys = build(kind, &on);
        let want = build(kind, &off);
        assert!(max_abs_diff(&sys.uncoupled().hamiltonian, &want.hamiltonian) < 1e-15, "{}", kind.name());
        assert_eq!(sys.uncoupled().jumps.len(), sys.jumps.len());
        assert!(sys.has_coupling() && !want.has_coupling(), "{}", kind.name());
    }
    // two-qubit: after T, H = H_C (x) I + I (x) H_B exactly as given.
    let plan = parse_plan(include_str!("../examples/two-qubit.toml"), &Overrides::default()).unwrap();
    let sys = &plan.systems[0];
    let local = kron(&sys.h_charger, &identity(2)) + kron(&identity(2), &sys.h_battery);
    assert!(max_abs_diff(&sys.uncoupled().hamiltonian, &local) < 1e-15);
}

#[test]
fn example_charges_then_stores_and_run_json_records_the_protocol() {
    let text = include_str!("../examples/protocol-switch-off.toml");
    let (plan, r) = run(text, Backend::Cpu, Precision::F64);
    let k = r.times.iter().position(|&t| t > 1.5).unwrap();
    for i in 0..plan.members.len() {
        assert!(v(&r, i, k, Measure::EnergyB) > 0.1, "member {i} charged before T");
        for s in k..r.times.len() {
            for m in [Measure::EnergyB, Measure::ErgotropyB] {
                assert!((v(&r, i, s, m) - v(&r, i, k, m)).abs() <= 1e-12, "{} moved after T", m.name());
            }
        }
        // the charger decays on after T
        assert!(v(&r, i, r.times.len() - 1, Measure::EnergyC) < v(&r, i, k, Measure::EnergyC));
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = crate::common::bin()
        .args(["run", "examples/protocol-switch-off.toml", "--backend", "cpu", "--no-progress", "--no-plots", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run_json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["config"]["protocol"]["switch_off"].as_f64(), Some(1.5), "run.json: {run_json}");
    assert_eq!(run_json["resolved"]["switch_off"].as_f64(), Some(1.5), "run.json: {run_json}");
}

#[test]
fn validate_protocol_storage_passes_on_the_cpu_engines() {
    use qbat_gpu::validate::protocol_storage;
    for backend in [Backend::Reference, Backend::Cpu] {
        let checks = protocol_storage(&qbat_gpu::run::RunOptions { backend, precision: Precision::F64, ..Default::default() }).unwrap();
        assert_eq!(checks.len(), 12);
        let failed: Vec<_> = checks.iter().filter(|c| !c.pass()).collect();
        assert!(failed.is_empty(), "{backend:?}: {failed:#?}");
    }
}

#[test]
fn models_text_names_what_switch_off_turns_off() {
    let text = qbat_gpu::describe::models_text();
    for m in qbat_gpu::model::ModelKind::ALL {
        assert!(text.contains(&format!("[protocol] switch_off turns off: {}", m.coupling_doc())), "{}", m.name());
    }
}

/// A note of the engine's (here: a switch-off after the last sample) is said once on stderr
/// and listed once in run.json, however many blocks the run has.
#[test]
fn an_engine_note_is_said_once_in_a_run_of_many_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "model = \"spin-pair\"\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 3\n[ensemble]\nsize = 8\n[protocol]\nswitch_off = 5.0\n").unwrap();
    let out = dir.path().join("out");
    let o = crate::common::bin()
        .args(["run", cfg.to_str().unwrap(), "--backend", "cpu", "--no-progress", "--block-members", "2", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    const NOTE: &str = "lies after the last sample time";
    assert_eq!(stderr.matches(NOTE).count(), 1, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(json["blocks"]["count"], 4, "{}", json["blocks"]);
    assert_eq!(json["notes"].as_array().unwrap().iter().filter(|n| n.as_str().unwrap().contains(NOTE)).count(), 1, "{}", json["notes"]);
}
