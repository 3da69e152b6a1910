//! Steady states solved for directly (`[time] steady = true`, src/steady.rs), checked against
//! paper 002's closed form (eq. 8), against long RK4 integrations of the f64 reference, against
//! the Pauli-basis generator's null space, and for the refusals (closed systems, bad configs).

use qbat_gpu::config::{parse_plan, Overrides, Plan};
use qbat_gpu::engine::reference_member;
use qbat_gpu::engine::steady::{relaxation_rate, steady_state, superoperator};
use qbat_gpu::linalg::{c, max_abs_diff, CMat, C64};
use qbat_gpu::measures::Measure;
use qbat_gpu::reference::{integrate, LindbladRhs};
use qbat_gpu::run::{run_plan, Backend, Precision, RunOptions, RunResult};
use qbat_gpu::verify::measure_tolerance;

fn plan(text: &str) -> Plan {
    parse_plan(text, &Overrides::default()).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn run(text: &str, backend: Backend) -> (Plan, RunResult) {
    let p = plan(text);
    let opts = RunOptions { backend, precision: Precision::F64, verify: 0, ..Default::default() };
    let r = run_plan(&p, &opts).unwrap_or_else(|e| panic!("{e}\n{text}"));
    (p, r)
}

fn col(r: &RunResult, m: Measure) -> usize {
    r.measures.iter().position(|x| *x == m).unwrap_or_else(|| panic!("{} not in the result", m.name()))
}

/// Paper 002 eq. 8, transcribed from the paper: (E_B, E_A)/w0 at Delta = T = 0, k = F/g, l = Gamma/g.
fn eq8(k: f64, l: f64) -> (f64, f64) {
    let (k2, l2) = (k * k, l * l);
    let alpha = 256.0 * k2.powi(3) * (1.0 + l2)
        + l2 * (4.0 + l2).powi(2) * (4.0 + 9.0 * l2)
        + 4.0 * k2 * l2 * (4.0 + 3.0 * l2) * (4.0 + 9.0 * l2)
        + 64.0 * k2.powi(2) * (4.0 + 11.0 * l2 + 5.0 * l2.powi(2));
    let e_b = 16.0 * k2 * (8.0 * (k2 + k2.powi(2)) + 2.0 * (2.0 + 9.0 * k2) * l2 + 9.0 * l2.powi(2)) / alpha;
    let e_a = 4.0 * k2 * (32.0 * k2.powi(2) * (1.0 + l2) + l2.powi(2) * (4.0 + 9.0 * l2) + 4.0 * k2 * (2.0 + l2) * (4.0 + 9.0 * l2)) / alpha;
    (e_b, e_a)
}

const KS: [f64; 5] = [0.25, 0.5, 1.0, 2.0, 3.0];
const LS: [f64; 5] = [0.1, 0.5, 1.0, 2.0, 4.0];

#[test]
fn paper002_eq8_on_a_k_l_grid() {
    // Two couplings g: k = f/g and l = gamma/g are what matter (energies in units of w0 = 1).
    let mut worst_rel: f64 = 0.0;
    let mut worst_residual: f64 = 0.0;
    for g in [1.0, 2.5] {
        let fs: Vec<f64> = KS.iter().map(|k| k * g).collect();
        let gammas: Vec<f64> = LS.iter().map(|l| l * g).collect();
        let cfg = format!(
            "model = \"driven-pair\"\n[params]\ng = {g}\nf = {{ values = {fs:?} }}\ngamma = {{ values = {gammas:?} }}\nn_th = 0.0\ndelta = 0.0\n[time]\nsteady = true\n[output]\nmeasures = [\"energy_b\", \"energy_c\", \"steady_residual\"]\n"
        );
        let (p, r) = run(&cfg, Backend::Cpu);
        assert_eq!(p.members.len(), KS.len() * LS.len());
        assert_eq!(r.times, vec![f64::INFINITY]);
        for (i, m) in p.members.iter().enumerate() {
            // param_values follow the sweep order: f, gamma
            let (k, l) = (m.param_values[0] / g, m.param_values[1] / g);
            let (e_b, e_a) = eq8(k, l);
            let got_b = r.value(i, 0, col(&r, Measure::EnergyB));
            let got_a = r.value(i, 0, col(&r, Measure::EnergyC));
            let rel_b = (got_b - e_b).abs() / e_b;
            let rel_a = (got_a - e_a).abs() / e_a;
            assert!(rel_b < 1e-9, "energy_b at k = {k}, l = {l}, g = {g}: {got_b} vs eq. 8 {e_b} (rel {rel_b:.2e})");
            assert!(rel_a < 1e-9, "energy_c at k = {k}, l = {l}, g = {g}: {got_a} vs eq. 8 {e_a} (rel {rel_a:.2e})");
            worst_rel = worst_rel.max(rel_b).max(rel_a);
            let res = r.value(i, 0, col(&r, Measure::SteadyResidual));
            assert!(res < 1e-12, "residual {res:.2e} at k = {k}, l = {l}");
            worst_residual = worst_residual.max(res);
        }
    }
    eprintln!("eq. 8 over {} (k, l) points x 2 g: largest relative deviation {worst_rel:.3e}, largest residual {worst_residual:.3e}", KS.len() * LS.len());
}

#[test]
fn every_backend_gives_the_same_steady_run() {
    let cfg = "model = \"driven-pair\"\n[params]\nf = { values = [0.5, 1.5] }\ngamma = 0.7\nn_th = 0.2\ndelta = 0.3\n[time]\nsteady = true\n";
    let (p, cpu) = run(cfg, Backend::Cpu);
    let (_, reference) = run(cfg, Backend::Reference);
    assert_eq!(cpu.values, reference.values);
    assert_eq!(p.schedule.total_steps(), 0);
    assert_eq!(cpu.member_steps, 0.0);
    // default measures of a steady run: every two-qubit measure and steady_residual
    assert!(cpu.measures.contains(&Measure::SteadyResidual) && cpu.measures.contains(&Measure::Concurrence));
    // power_b and ergotropic_power_b are their t -> inf limit, +0
    for m in [Measure::PowerB, Measure::ErgotropicPowerB] {
        for i in 0..p.members.len() {
            let v = cpu.value(i, 0, col(&cpu, m));
            assert!(v == 0.0 && v.is_sign_positive(), "{} = {v}", m.name());
        }
    }
    // peaks: the single sample, at t = inf
    assert_eq!(cpu.peaks[0].t_max, f64::INFINITY);
    assert_eq!(cpu.peaks[0].max, cpu.value(0, 0, col(&cpu, Measure::EnergyB)));
    assert!(cpu.notes.iter().any(|n| n.contains("steady states") && n.contains("f64")), "{:?}", cpu.notes);
}

/// One member of each two-qubit model that has a unique steady state (spin-pair has none: it
/// is closed). [time] is appended by the tests.
const OPEN_MODELS: [(&str, &str); 4] = [
    ("driven-pair boson", "model = \"driven-pair\"\n[params]\ng = 1.0\nf = 0.8\ngamma = 0.6\nn_th = 0.3\ndelta = 0.4\n"),
    ("driven-pair fermion", "model = \"driven-pair\"\n[params]\ng = 0.9\nf = 1.2\ngamma = 0.5\nreservoir = \"fermion\"\nn_th = 0.7\ndelta = -0.5\n"),
    ("bloch-charger", "model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = 1.0\ngamma = 0.4\n[initial]\ntheta = 2.0\nphi = 0.3\n"),
    (
        "two-qubit",
        "model = \"two-qubit\"\n[params]\n\
         hamiltonian = [[-2.0, 0.2, 0.0, 0.0], [0.2, 0.0, 0.3, 0.0], [0.0, 0.3, 0.0, 0.2], [0.0, 0.0, 0.2, 2.0]]\n\
         h_battery = [[-1.0, 0.0], [0.0, 1.0]]\nh_charger = [[-1.0, 0.0], [0.0, 1.0]]\n\
         jumps = [{ op = [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]], rate = 0.3 }, \
                  { op = [[0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]], rate = 0.2 }, \
                  { op = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, -1, 0], [0, 0, 0, -1]], rate = 0.1 }]\n\
         [initial]\nrandom = \"mixed-hs\"\n",
    ),
];

const COMPARED: [Measure; 9] = [
    Measure::EnergyB,
    Measure::EnergyC,
    Measure::StoredEnergyB,
    Measure::ErgotropyB,
    Measure::CapacityB,
    Measure::Concurrence,
    Measure::SteeringAb,
    Measure::Purity,
    Measure::EnergyFluctuationB,
];

#[test]
fn steady_state_is_the_long_time_limit_of_the_rk4_reference() {
    // The steady state is an exact fixed point of the RK4 map (G x = 0 makes every stage 0), so a
    // long integration approaches it, up to rounding, like exp(-rate t), rate = the slowest
    // relaxation rate of L. Integrating to t_end = 40 / rate leaves e^-40 ~ 4e-18 of the
    // transient: the agreement is then limited by rounding over ~1e4-1e5 steps, far below 1e-10.
    let names: Vec<String> = COMPARED.iter().map(|m| format!("\"{}\"", m.name())).collect();
    let measures = format!("[output]\nmeasures = [{}, \"steady_residual\"]\n", names.join(", "));
    for (name, model) in OPEN_MODELS {
        let (sp, sr) = run(&format!("{model}[time]\nsteady = true\n{measures}"), Backend::Cpu);
        let sys = &sp.systems[0];
        let rate = relaxation_rate(sys).unwrap();
        assert!(rate > 1e-3, "{name}: relaxation rate {rate}");
        let t_end = 40.0 / rate;
        let names_only = format!("[output]\nmeasures = [{}]\n", names.join(", "));
        let ip = plan(&format!("{model}[time]\ndt = 0.01\nt_end = {t_end}\nsamples = 2\n{names_only}"));
        let m = &ip.members[0];
        let rho0 = ip.initial_state(m);
        let samples = integrate(&LindbladRhs::new(&ip.systems[0]), &rho0, None, &ip.schedule);
        let rho_rk4 = &samples.last().unwrap().rho;
        let (rho_ss, residual) = steady_state(sys).unwrap();
        let d = max_abs_diff(rho_rk4, &rho_ss);
        assert!(d < 1e-10, "{name}: |rho_rk4(t = {t_end:.0}) - rho_ss| = {d:.2e}");
        assert!(residual < 1e-12, "{name}: residual {residual:.2e}");
        // the same member's initial state: sp and ip share the config apart from [time]
        assert!(max_abs_diff(&sp.initial_state(&sp.members[0]), &rho0) == 0.0);
        let (vals, _) = reference_member(&ip, m, &COMPARED);
        for (k, meas) in COMPARED.iter().enumerate() {
            let want = vals[COMPARED.len() + k]; // sample 1 = t_end
            let got = sr.value(0, 0, col(&sr, *meas));
            // Square-root-sensitive measures (concurrence, LOO steering, Sigma) at a pure steady
            // state (bloch-charger's |gg>) turn a rounding-level state difference d into ~sqrt(d):
            // they get sqrt(1e-12) = 1e-6, the rest 1e-10.
            let tol = if meas.sqrt_sensitive() { 1e-6 } else { measure_tolerance(*meas, 1e-10) };
            assert!((got - want).abs() <= tol, "{name}: {} steady {got} vs RK4 at t = {t_end:.0} {want} (tol {tol:.0e})", meas.name());
        }
        eprintln!("{name}: rate {rate:.4}, |rho_rk4 - rho_ss| = {d:.2e}, residual {residual:.2e}");
    }
}

fn system_of(text: &str) -> qbat_gpu::model::OpenSystem {
    (*plan(&format!("{text}[time]\nsteady = true\n")).systems[0]).clone()
}

fn random_matrix(seed: u64) -> CMat {
    let mut s = seed;
    let mut next = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    };
    CMat::from_fn(4, 4, |_, _| c(next(), next()))
}

#[test]
fn superoperator_is_the_matrix_form_lindbladian_and_shares_the_pauli_null_space() {
    for (name, model) in OPEN_MODELS {
        let sys = system_of(model);
        let s = superoperator(&sys);
        let rhs = LindbladRhs::new(&sys);
        // S vec(X) = vec(L[X]) for any X, Hermitian or not (column-stacked vec).
        for seed in 1..4 {
            let x = random_matrix(seed);
            let sx = &s * nalgebra::DVector::from_column_slice(x.as_slice());
            let lx = rhs.eval(&x);
            let d = sx.iter().zip(lx.as_slice()).map(|(a, b)| crate::common::deviation((a - b).norm(), 0.0)).fold(0.0, f64::max);
            assert!(d < 1e-13, "{name}: S vec(X) vs L[X]: {d:.2e}");
        }
        // The null vector of the real Pauli-basis generator G (its own SVD), x[0] = Tr rho = 1.
        let g = nalgebra::DMatrix::<f64>::from_row_slice(16, 16, &qbat_gpu::job::pauli::generator(&sys));
        let svd = g.svd(false, true);
        let v_t = svd.v_t.unwrap();
        let mut x = [0.0; 16];
        for (i, xi) in x.iter_mut().enumerate() {
            *xi = v_t[(15, i)] / v_t[(15, 0)];
        }
        let rho_pauli = qbat_gpu::job::pauli::from_pauli(&x);
        let (rho, _) = steady_state(&sys).unwrap();
        let d = max_abs_diff(&rho, &rho_pauli);
        assert!(d < 1e-12, "{name}: complex-superoperator vs Pauli-generator null space: {d:.2e}");
        assert!((rho.trace() - C64::new(1.0, 0.0)).norm() < 1e-14);
    }
}

#[test]
fn relaxation_rate_matches_the_bloch_charger_closed_form() {
    // bloch-charger with charger decay: one-excitation amplitudes evolve under
    // H - i (gamma/2) |e><e|_c, eigenvalues wb - i gamma/4 +- sqrt(j^2 - gamma^2/16), so for
    // j > gamma/4 the slowest mode (a coherence with |gg>) decays at gamma/4.
    for (j, gamma) in [(1.0, 0.4), (0.7, 1.2), (2.0, 0.1)] {
        let sys = system_of(&format!("model = \"bloch-charger\"\n[params]\nwb = 1.3\nj = {j}\ngamma = {gamma}\n"));
        let rate = relaxation_rate(&sys).unwrap();
        assert!((rate - gamma / 4.0).abs() < 1e-9, "j = {j}, gamma = {gamma}: rate {rate} vs gamma/4 {}", gamma / 4.0);
        // its steady state is |gg>: every excitation ends in the reservoir
        let (rho, res) = steady_state(&sys).unwrap();
        assert!((rho[(0, 0)] - C64::new(1.0, 0.0)).norm() < 1e-12 && res < 1e-12, "{rho}");
    }
}

#[test]
fn closed_and_decoherence_free_systems_are_refused() {
    let cases = [
        ("model = \"spin-pair\"\n", "j1 = 0.1"),
        ("model = \"bloch-charger\"\n[params]\ngamma = 0.0\n", "gamma = 0"),
        ("model = \"driven-pair\"\n[params]\ngamma = 0.0\n", "gamma = 0"),
        // battery uncoupled from the decaying charger: its state never changes
        ("model = \"bloch-charger\"\n[params]\nj = 0.0\ngamma = 0.5\n", "j = 0"),
        (
            "model = \"two-qubit\"\n[params]\nhamiltonian = [[-2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.3, 0.0], [0.0, 0.3, 0.0, 0.0], [0.0, 0.0, 0.0, 2.0]]\nh_battery = [[-1.0, 0.0], [0.0, 1.0]]\nh_charger = [[-1.0, 0.0], [0.0, 1.0]]\n",
            "hamiltonian = (as given)",
        ),
    ];
    for (model, named) in cases {
        let sys = system_of(model);
        let e = steady_state(&sys).expect_err(model).to_string();
        assert!(e.contains("not unique") && e.contains("integrate instead"), "{model}: {e}");
        // through the pipeline: the member and its parameters are named
        let p = plan(&format!("{model}[time]\nsteady = true\n"));
        let opts = RunOptions { backend: Backend::Cpu, verify: 0, ..Default::default() };
        let e = run_plan(&p, &opts).expect_err("refused").to_string();
        assert!(e.contains("member 0") && e.contains(named) && e.contains("not unique"), "{model}: {e}");
    }
}

// --- the binary: config errors exit 2 naming the field; a steady run writes t = inf

fn run_binary(text: &str) -> (i32, String, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = dir.path().join("out");
    let o = crate::common::bin().args(["run", cfg.to_str().unwrap(), "--backend", "cpu", "--no-progress", "--out", out.to_str().unwrap()]).output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).to_string(), out, dir)
}

const STEADY: &str = "model = \"driven-pair\"\n[params]\nf = { values = [0.5, 1.0] }\ngamma = 0.5\n[time]\nsteady = true\n";

#[test]
fn forbidden_combinations_exit_2_naming_the_field() {
    let cases: [(String, &str, &str); 8] = [
        (STEADY.replace("steady = true", "steady = \"yes\""), "time.steady", "true or false"),
        (STEADY.replace("steady = true", "steady = 1"), "time.steady", "true or false"),
        (STEADY.replace("steady = true", "steady = true\ndt = 0.01"), "time.dt", "not used with time.steady = true"),
        (STEADY.replace("steady = true", "steady = true\nt_end = 10.0"), "time.t_end", "not used with time.steady = true"),
        (STEADY.replace("steady = true", "steady = true\nsamples = 3"), "time.samples", "not used with time.steady = true"),
        (STEADY.replace("steady = true", "steady = true\ntimes = [1.0]"), "time.times", "not used with time.steady = true"),
        ("model = \"cavity-cells\"\n[params]\nn_fock = 4\n[time]\nsteady = true\n".to_string(), "time.steady", "integrate"),
        (
            "model = \"driven-pair\"\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 2\n[output]\nmeasures = [\"energy_b\", \"steady_residual\"]\n".to_string(),
            "output.measures",
            "steady",
        ),
    ];
    for (text, field, reason) in cases {
        let (code, stderr, out, _dir) = run_binary(&text);
        assert_eq!(code, 2, "{field}: exit {code}: {stderr}");
        assert!(stderr.contains(field) && stderr.contains(reason), "should name {field} ({reason}): {stderr}");
        assert!(!stderr.contains("panicked") && !out.exists(), "{stderr}");
    }
    // steady = false is an ordinary integrated run
    let text = "model = \"driven-pair\"\n[time]\nsteady = false\ndt = 0.01\nt_end = 1.0\nsamples = 2\n";
    let (code, stderr, _, _dir) = run_binary(text);
    assert_eq!(code, 0, "{stderr}");
    // a closed system has no unique steady state: bad input (exit 2) naming time.steady and the
    // member, and no output
    let (code, stderr, out, _dir) = run_binary("model = \"spin-pair\"\n[time]\nsteady = true\n");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("time.steady") && stderr.contains("not unique") && stderr.contains("member 0") && !out.exists(), "{stderr}");
    // the error alone: the solver's note (each null space 1-dimensional) is said only when true
    assert!(!stderr.contains("note: steady states"), "{stderr}");
}

#[test]
fn a_steady_run_writes_one_sample_at_infinity() {
    let (code, stderr, out, _dir) = run_binary(STEADY);
    assert_eq!(code, 0, "{stderr}");
    let series = std::fs::read_to_string(out.join("series.csv")).unwrap();
    let rows: Vec<&str> = series.lines().collect();
    assert_eq!(rows.len(), 3, "{series}");
    assert!(rows[1].starts_with("0,inf,") && rows[2].starts_with("1,inf,"), "{series}");
    let header: Vec<&str> = rows[0].split(',').collect();
    let k = header.iter().position(|h| *h == "steady_residual").expect("steady_residual column");
    for r in &rows[1..] {
        let res: f64 = r.split(',').nth(k).unwrap().parse().unwrap();
        assert!((0.0..1e-12).contains(&res), "{r}");
    }
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(json["steps_per_member"], 0);
    assert!(json["resolved"]["t_last"].is_null()); // inf in JSON is null
    let notes = json["notes"].to_string();
    assert!(notes.contains("--verify skipped") && notes.contains("steady states"), "{notes}");
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert!(summary.lines().nth(1).unwrap().contains(",inf"), "{summary}");
}

/// A run in several blocks keeps the first block's engine notes, once: the steady solver's
/// note is said on stderr once, before the first solve, and kept in run.json once.
#[test]
fn a_run_in_blocks_keeps_one_engine_note() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, STEADY.replace("values = [0.5, 1.0]", "values = [0.5, 0.75, 1.0, 1.25]")).unwrap();
    let out = dir.path().join("out");
    let o = crate::common::bin()
        .args(["run", cfg.to_str().unwrap(), "--backend", "cpu", "--no-progress", "--block-members", "1", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(json["blocks"]["count"], 4, "{}", json["blocks"]);
    let steady = json["notes"].as_array().unwrap().iter().filter(|n| n.as_str().unwrap().starts_with("steady states")).count();
    assert_eq!(steady, 1, "{}", json["notes"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(stderr.matches("note: steady states (time.steady = true)").count(), 1, "{stderr}");
}

#[test]
fn paper002_example_maps_run_and_match_eq8() {
    // Fig. 2(b): g = 1, Delta = T = 0, so every member is eq. 8 at k = f, l = gamma.
    let (p, r) = run(include_str!("../examples/papers/002-fig2b.toml"), Backend::Cpu);
    assert!(p.steady && p.members.len() == 81 * 80 && p.param_columns == ["f", "gamma"]);
    let mut worst: f64 = 0.0;
    for (i, m) in p.members.iter().enumerate() {
        let (e_b, _) = eq8(m.param_values[0], m.param_values[1]);
        let got = r.value(i, 0, col(&r, Measure::EnergyB));
        // f = 0: nothing drives the pair, E_B = 0 (the closed form is 0/alpha)
        let dev = if e_b == 0.0 { got.abs() } else { (got - e_b).abs() / e_b };
        assert!(dev < 1e-9, "f = {}, gamma = {}: {got} vs {e_b}", m.param_values[0], m.param_values[1]);
        worst = worst.max(dev);
        assert!(r.value(i, 0, col(&r, Measure::SteadyResidual)) < 1e-12);
    }
    eprintln!("002-fig2b: largest deviation from eq. 8 over {} members: {worst:.3e}", p.members.len());
    // Fig. 3: F = Gamma = g = 1; its Delta = 0, n_th = 0 member is eq. 8 at k = l = 1.
    let (p, r) = run(include_str!("../examples/papers/002-fig3.toml"), Backend::Cpu);
    assert!(p.steady && p.members.len() == 41 * 61 && p.param_columns == ["delta", "n_th"]);
    let i = p.members.iter().position(|m| m.param_values == [0.0, 0.0]).expect("a Delta = 0, n = 0 member");
    let (e_b, e_a) = eq8(1.0, 1.0);
    assert!((r.value(i, 0, col(&r, Measure::EnergyB)) - e_b).abs() < 1e-12 && (r.value(i, 0, col(&r, Measure::EnergyC)) - e_a).abs() < 1e-12);
    // and switching to the fermion reservoir is the one line the comment names
    let fermion = include_str!("../examples/papers/002-fig3.toml").replace("reservoir = \"boson\"", "reservoir = \"fermion\"");
    let (_, rf) = run(&fermion, Backend::Cpu);
    assert_eq!(rf.value(i, 0, col(&rf, Measure::EnergyB)), r.value(i, 0, col(&r, Measure::EnergyB))); // n = 0: same reservoir
    assert!(rf.values != r.values, "the fermion reservoir differs at n > 0");
}
