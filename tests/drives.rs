//! `[[drive]]`: time-dependent Hamiltonians on the reference and the CPU engine, checked
//! against an independent solve of the same H(t) written here (the battery qubit's Schrodinger
//! equation, not the Lindblad one; the rotating-wave Rabi formula only checks that solve), and bit
//! identity with the undriven run before a window opens. Bad drive tables exit 2.

use qbat_gpu::config::{parse_plan, Overrides};
use qbat_gpu::measures::Measure;
use qbat_gpu::run::{run_plan, Backend, Precision, RunOptions, RunResult};

#[path = "common/drive_solve.rs"]
mod drive_solve;
use drive_solve::{battery_cfg, envelope, excited_population, window_edges};

pub fn run(cfg: &str, backend: Backend, precision: Precision) -> RunResult {
    let plan = parse_plan(cfg, &Overrides::default()).unwrap();
    run_plan(&plan, &RunOptions { backend, precision, verify: 0, ..Default::default() }).unwrap()
}

fn col(r: &RunResult, m: Measure) -> usize {
    r.measures.iter().position(|x| *x == m).unwrap()
}

/// A resonantly driven battery qubit (wb = nu = 1, amplitude 0.2) matches the independent
/// Schrodinger solve to 1e-8 on both f64 engines, for the three envelopes.
#[test]
fn resonant_drive_matches_an_independent_solve() {
    for kind in ["constant", "gaussian", "window", "window-off-grid"] {
        let (spec, env) = envelope(kind);
        let cfg = battery_cfg(&format!("operator = \"sx_b\"\namplitude = 0.2\nfrequency = 1.0\nphase = 0.3\nenvelope = {spec}"), 10.0, 51, 0.002);
        let times: Vec<f64> = (0..51).map(|k| 10.0 * k as f64 / 50.0).collect();
        // 2000 sub-steps per 0.2: h = 1e-4, RK4 error ~1e-15.
        let want = excited_population(1.0, 0.2, 1.0, 0.3, &*env, &times, 2000, &window_edges(kind));
        assert!(want.iter().cloned().fold(0.0, f64::max) > 0.05, "{kind}: the drive must excite the battery");
        for backend in [Backend::Reference, Backend::Cpu] {
            let r = run(&cfg, backend, Precision::F64);
            let k = col(&r, Measure::EnergyB);
            for (s, w) in want.iter().enumerate() {
                let got = r.value(0, s, k);
                assert!((got - w).abs() < 1e-8, "{kind} {backend:?} t = {}: energy_b = {got} vs {w}", times[s]);
            }
        }
    }
}

/// A window shorter than a step, off the step grid, is taken exactly: its edges end segments
/// of their own, and the run matches the independent solve split at them (a step that held
/// the window whole was driven for a whole step, or not at all).
#[test]
fn a_window_shorter_than_a_step_is_exact() {
    let (t_on, t_off) = (2.0037, 2.0049);
    let env = move |t: f64| if (t_on..t_off).contains(&t) { 1.0 } else { 0.0 };
    // a strong pulse, so that its 1.2e-3 of time moves the battery
    let cfg = battery_cfg(
        &format!("operator = \"sx_b\"\namplitude = 40.0\nfrequency = 1.0\nphase = 0.3\nenvelope = {{ window = [{t_on}, {t_off}] }}"),
        4.0,
        21,
        0.002,
    );
    let times: Vec<f64> = (0..21).map(|k| 4.0 * k as f64 / 20.0).collect();
    let want = excited_population(1.0, 40.0, 1.0, 0.3, &env, &times, 2000, &[t_on, t_off]);
    assert!(want[20] > 1e-4, "the pulse must excite the battery: {}", want[20]);
    for backend in [Backend::Reference, Backend::Cpu] {
        let r = run(&cfg, backend, Precision::F64);
        let k = col(&r, Measure::EnergyB);
        for (s, w) in want.iter().enumerate() {
            let got = r.value(0, s, k);
            // (one engine step of 1.2e-3 at amplitude 40 holds the pulse: RK4 to about 1e-7 of it)
            assert!((got - w).abs() < 1e-6 * w.max(1e-3), "{backend:?} t = {}: energy_b = {got} vs {w}", times[s]);
        }
    }
}

/// Before a window opens every sample is bit for bit that of the run without the drive; after
/// it opens they differ.
#[test]
fn samples_before_a_window_are_those_of_the_undriven_run() {
    let driven = "model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = 0.7\ngamma = 0.2\n[initial]\ntheta = 2.0\n[time]\ndt = 0.01\nt_end = 6.0\nsamples = 61\n[output]\nmeasures = [\"energy_b\", \"ergotropy_b\", \"energy_fluctuation_b\", \"concurrence\"]\n";
    let with = format!("{driven}[[drive]]\noperator = \"sy_c\"\namplitude = 0.5\nfrequency = 1.3\nenvelope = {{ window = [2.55, 4.0] }}\n");
    for backend in [Backend::Reference, Backend::Cpu] {
        let a = run(driven, backend, Precision::F64);
        let b = run(&with, backend, Precision::F64);
        let nm = a.measures.len();
        for (s, &t) in a.times.iter().enumerate() {
            let row = |r: &RunResult| (0..nm).map(|k| r.value(0, s, k).to_bits()).collect::<Vec<_>>();
            if t <= 2.55 {
                assert_eq!(row(&a), row(&b), "{backend:?}: sample t = {t} before the window differs");
            } else if t > 2.6 {
                assert_ne!(row(&a), row(&b), "{backend:?}: sample t = {t} after the window opens is undriven");
            }
        }
    }
}

/// A weak drive (a = 0.02) on resonance and detuned by delta, over long times (one and two
/// Rabi periods), against the independent solve of the same H(t) at every sample. In the
/// rotating-wave limit P_e(t) = sin^2(a t / 2) on resonance (Rabi frequency a) and the peak
/// excitation detuned is a^2 / (a^2 + delta^2); the exact solve differs from these by the
/// counter-rotating terms, of order a / (2 wb) = 1%, so they are not the reference here.
#[test]
fn rabi_oscillations_and_detuning_match_the_independent_solve() {
    let a = 0.02;
    let t_end = 2.0 * std::f64::consts::PI / a; // one Rabi period
    let mut worst = 0.0f64;
    for (delta, periods, samples) in [(0.0, 1.0, 201), (0.01, 2.0, 801), (0.02, 2.0, 801), (0.04, 2.0, 801)] {
        let cfg = battery_cfg(&format!("operator = \"sx_b\"\namplitude = {a}\nfrequency = {}", 1.0 + delta), periods * t_end, samples, 0.02);
        let r = run(&cfg, Backend::Cpu, Precision::F64);
        let k = col(&r, Measure::EnergyB);
        // ~0.0079 per sub-step: RK4 error ~1e-10 over 2 periods
        let want = excited_population(1.0, a, 1.0 + delta, 0.0, &|_| 1.0, &r.times, 200, &[]);
        for (s, w) in want.iter().enumerate() {
            let got = r.value(0, s, k);
            let d = (got - w).abs();
            assert!(d < 1e-6, "delta = {delta}, t = {}: energy_b = {got} vs the solve {w}", r.times[s]);
            worst = worst.max(d);
        }
        let peak = want.iter().cloned().fold(0.0, f64::max);
        let rwa = a * a / (a * a + delta * delta);
        // the solve itself is near the RWA peak (a wrong Rabi frequency or drive strength
        // in both would not be)
        assert!((peak - rwa).abs() < 0.03, "delta = {delta}: the solve's peak {peak} vs the RWA {rwa}");
    }
    eprintln!("weak drive: CPU engine vs the independent solve, worst {worst:.1e}");
}

/// A swept amplitude is a grid axis with its own summary column; members differ as the
/// amplitude says (pulse area A sigma sqrt(2 pi) = pi/2 and pi: half excited and nearly
/// inverted in the rotating-wave limit), each matching the independent solve.
#[test]
fn amplitude_sweeps_like_a_parameter() {
    let sigma = 2.0;
    let api = std::f64::consts::PI / (sigma * (2.0 * std::f64::consts::PI).sqrt());
    let cfg = battery_cfg(
        &format!("operator = \"sx_b\"\namplitude = {{ values = [{}, {api}] }}\nfrequency = 1.0\nenvelope = {{ gaussian = [10.0, {sigma}] }}", api / 2.0),
        20.0,
        41,
        0.01,
    );
    let plan = parse_plan(&cfg, &Overrides::default()).unwrap();
    assert_eq!(plan.members.len(), 2);
    assert_eq!(plan.param_columns, vec!["drive[0].amplitude".to_string()]);
    assert_eq!(plan.drives[1][0].amplitude, api);
    let r = run(&cfg, Backend::Cpu, Precision::F64);
    let k = col(&r, Measure::EnergyB);
    let env = |t: f64| (-0.5 * ((t - 10.0) / sigma).powi(2)).exp();
    for (i, amp) in [api / 2.0, api].into_iter().enumerate() {
        let want = excited_population(1.0, amp, 1.0, 0.0, &env, &r.times, 500, &[]);
        for (s, w) in want.iter().enumerate() {
            let got = r.value(i, s, k);
            assert!((got - w).abs() < 1e-8, "amplitude {amp}, t = {}: energy_b = {got} vs the solve {w}", r.times[s]);
        }
    }
    // pi/2 pulse: half excited; pi pulse: (nearly) inverted, up to counter-rotating terms.
    let last = r.times.len() - 1;
    assert!((r.value(0, last, k) - 0.5).abs() < 0.05 && r.value(1, last, k) > 0.95, "{} {}", r.value(0, last, k), r.value(1, last, k));
}

/// The same drive as a named operator and as the explicit matrix, on the charger and the
/// battery, with switch_off: identical on the CPU engine, and the CPU engine agrees with the
/// reference on a dissipative coupled model.
#[test]
fn matrix_operators_switch_off_and_engines_agree() {
    let base = "model = \"spin-pair\"\n[params]\nj1 = 0.8\n[time]\ndt = 0.005\nt_end = 4.0\nsamples = 21\n[protocol]\nswitch_off = 2.345\n[output]\nmeasures = [\"energy_b\", \"energy_c\", \"ergotropy_b\", \"energy_fluctuation_b\", \"concurrence\"]\n";
    // sy_c = sigma_y (x) I with sigma_y = [[0, i], [-i, 0]] in (g, e).
    let named = format!("{base}[[drive]]\noperator = \"sy_c\"\namplitude = 0.4\nfrequency = 0.9\nenvelope = {{ gaussian = [1.5, 0.7] }}\n[[drive]]\noperator = \"sz_b\"\namplitude = 0.3\nfrequency = 2.0\n");
    let sy_c = "[[0, 0], [0, 0], [0, 1], [0, 0]], [[0, 0], [0, 0], [0, 0], [0, 1]], [[0, -1], [0, 0], [0, 0], [0, 0]], [[0, 0], [0, -1], [0, 0], [0, 0]]";
    let sz_b = "[[-1, 0], [0, 0], [0, 0], [0, 0]], [[0, 0], [1, 0], [0, 0], [0, 0]], [[0, 0], [0, 0], [-1, 0], [0, 0]], [[0, 0], [0, 0], [0, 0], [1, 0]]";
    let matrix = format!("{base}[[drive]]\noperator = [{sy_c}]\namplitude = 0.4\nfrequency = 0.9\nenvelope = {{ gaussian = [1.5, 0.7] }}\n[[drive]]\noperator = [{sz_b}]\namplitude = 0.3\nfrequency = 2.0\n");
    let a = run(&named, Backend::Cpu, Precision::F64);
    let b = run(&matrix, Backend::Cpu, Precision::F64);
    assert_eq!(a.values, b.values);
    let r = run(&named, Backend::Reference, Precision::F64);
    let undriven = run(base, Backend::Cpu, Precision::F64);
    let mut moved = 0.0f64;
    for (i, (x, y)) in a.values.iter().zip(&r.values).enumerate() {
        assert!((x - y).abs() < 1e-10, "value {i}: cpu {x} vs reference {y}");
        moved = moved.max((x - undriven.values[i]).abs());
    }
    assert!(moved > 1e-2, "the drives changed nothing");
}

/// cavity-cells: the mode alone (lambda = g = 0), from |0>, driven by c(t) x_a with a gaussian:
/// a coherent state |beta(t)>, d beta/dt = -i wc beta - i c(t), so photon_number = |beta|^2
/// (solved here by RK4 on beta). Runs on the reference engine whatever the backend.
#[test]
fn cavity_x_a_drive_makes_the_coherent_state_of_the_classical_solution() {
    let cfg = "model = \"cavity-cells\"\n[params]\nlambda = 0.0\nalpha = 0.0\nn_fock = 12\n[time]\ndt = 0.005\nt_end = 6.0\nsamples = 13\n[output]\nmeasures = [\"photon_number\"]\n[[drive]]\noperator = \"x_a\"\namplitude = 0.3\nfrequency = 1.0\nenvelope = { gaussian = [3.0, 1.0] }\n";
    let c = |t: f64| 0.3 * (-0.5 * (t - 3.0f64).powi(2)).exp() * t.cos();
    let (mut br, mut bi, mut t) = (0.0f64, 0.0f64, 0.0f64);
    let f = |t: f64, (re, im): (f64, f64)| (im, -re - c(t)); // -i (beta + c) with wc = 1
    let mut want = vec![0.0];
    for _ in 0..12 {
        let h = 0.5 / 5000.0;
        for _ in 0..5000 {
            let k1 = f(t, (br, bi));
            let k2 = f(t + h / 2.0, (br + h / 2.0 * k1.0, bi + h / 2.0 * k1.1));
            let k3 = f(t + h / 2.0, (br + h / 2.0 * k2.0, bi + h / 2.0 * k2.1));
            let k4 = f(t + h, (br + h * k3.0, bi + h * k3.1));
            br += h / 6.0 * (k1.0 + 2.0 * k2.0 + 2.0 * k3.0 + k4.0);
            bi += h / 6.0 * (k1.1 + 2.0 * k2.1 + 2.0 * k3.1 + k4.1);
            t += h;
        }
        want.push(br * br + bi * bi);
    }
    assert!(want[12] > 0.1, "the pulse must displace the mode: {}", want[12]);
    for backend in [Backend::Reference, Backend::Cpu] {
        let r = run(cfg, backend, Precision::F64);
        for (s, w) in want.iter().enumerate() {
            assert!((r.value(0, s, 0) - w).abs() < 1e-8, "{backend:?} t = {}: photon_number {} vs |beta|^2 = {w}", r.times[s], r.value(0, s, 0));
        }
    }
}

/// Bad drive tables: exit 2 with one line naming the field.
#[test]
fn bad_drive_tables_exit_2_naming_the_field() {
    let base = "model = \"bloch-charger\"\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 3\n";
    let cases = [
        ("[[drive]]\noperator = \"sx_q\"\namplitude = 0.1\nfrequency = 1.0\n", "drive[0].operator"),
        ("[[drive]]\noperator = [[1, 0], [0, 1]]\namplitude = 0.1\nfrequency = 1.0\n", "drive[0].operator"),
        ("[[drive]]\noperator = [[0, [0, 1], 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]\namplitude = 0.1\nfrequency = 1.0\n", "drive[0].operator"),
        ("[[drive]]\noperator = \"sx_b\"\namplitude = 0.1\nfrequency = 1.0\nenvelope = { gaussian = [1.0, 0.0] }\n", "drive[0].envelope.gaussian"),
        ("[[drive]]\noperator = \"sx_b\"\namplitude = 0.1\nfrequency = 1.0\nenvelope = { window = [2.0, 1.0] }\n", "drive[0].envelope.window"),
        ("[[drive]]\noperator = \"sx_b\"\namplitude = 0.1\nfrequency = 1.0\nenvelope = \"square\"\n", "drive[0].envelope"),
        ("[[drive]]\noperator = \"sx_b\"\nfrequency = 1.0\n", "drive[0].amplitude"),
        ("[[drive]]\noperator = \"sx_b\"\namplitude = 0.1\nfrequency = 1.0\nshape = 1\n", "drive[0].shape"),
        ("[[drive]]\noperator = \"sx_b\"\namplitude = 1e4\nfrequency = 1.0\n", "time.dt"),
        ("drive = 3\n", "drive"),
        // 3 steps a period (|frequency| dt = 2): RK4 amplifies the driven state (at 3, within
        // pi, a closed battery's purity reached 2.7 on every engine)
        ("[[drive]]\noperator = \"sx_b\"\namplitude = 2.0\nfrequency = 200.0\n", "drive[0].frequency"),
        ("[[drive]]\noperator = \"sx_b\"\namplitude = 2.0\nfrequency = -101.0\n", "drive[0].frequency"),
    ];
    for (extra, field) in cases {
        let r = crate::common::run_config_text(&format!("{base}{extra}"), &[]);
        assert_eq!(r.code, 2, "{extra}: {}", r.stderr);
        assert!(r.stderr.contains(field), "{extra}: stderr does not name {field}: {}", r.stderr);
        assert_eq!(r.stderr.trim().lines().count(), 1, "{extra}: {}", r.stderr);
        assert!(!r.left_behind, "{extra}");
    }
    // |frequency| dt = 1 runs, and follows the exact closed evolution: purity 1 and energy_b
    // >= 0 within 1e-3 over 200 steps
    let edge = format!("{base}[[drive]]\noperator = \"sx_b\"\namplitude = 2.0\nfrequency = 100.0\n")
        .replace("samples = 3", "samples = 101")
        .replace("[time]", "[params]\nj = 0.0\n[initial]\ntheta = 0.0\n[time]")
        .replace("t_end = 1.0", "t_end = 2.0");
    let r = run(&edge, Backend::Cpu, Precision::F64);
    let (e, p) = (col(&r, Measure::EnergyB), col(&r, Measure::Purity));
    for s in 0..r.times.len() {
        assert!(
            r.value(0, s, e) > -1e-3 && (r.value(0, s, p) - 1.0).abs() < 1e-3,
            "t = {}: energy_b {} purity {}",
            r.times[s],
            r.value(0, s, e),
            r.value(0, s, p)
        );
    }
    let dicke = "model = \"dicke\"\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 3\n[[drive]]\noperator = \"sx_b\"\namplitude = 0.1\nfrequency = 1.0\n";
    let r = crate::common::run_config_text(dicke, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("drive"), "{}", r.stderr);
}
