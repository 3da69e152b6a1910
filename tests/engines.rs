//! The CPU engines against the f64 matrix-form reference, for every model and every measure:
//! the Pauli-basis twin (two-qubit models, spin-pair with dephasing included) and the
//! structured cavity engine (n_fock 4 and 12, random detuning, zeta, dissipation, complex alpha).

use qbat_gpu::config::{parse_plan, Overrides};
use qbat_gpu::run::{run_plan, Backend, RunOptions};

fn engines_agree(cfg: &str, tol: f64) {
    let plan = parse_plan(cfg, &Overrides::default()).unwrap();
    let fast = run_plan(&plan, &RunOptions { backend: Backend::Cpu, verify: 0, ..Default::default() }).unwrap();
    let refr = run_plan(&plan, &RunOptions { backend: Backend::Reference, verify: 0, ..Default::default() }).unwrap();
    assert_eq!(fast.backend, "cpu");
    assert_eq!(refr.backend, "reference");
    for (k, m) in plan.measures.iter().enumerate() {
        let t = qbat_gpu::verify::measure_tolerance(*m, tol);
        let worst = crate::common::worst_deviation(&fast, &refr, k);
        assert!(worst <= t, "{}: CPU engine vs reference {worst:e} > {t:e}", m.name());
    }
    for (a, b) in fast.peaks.iter().zip(&refr.peaks) {
        assert!((a.max - b.max).abs() <= tol && (a.t_max - b.t_max).abs() <= 1e-12, "{a:?} vs {b:?}");
    }
}

#[test]
fn spin_pair_with_dephasing() {
    engines_agree("model = \"spin-pair\"\n[params]\nwb = 1.0\nwc = 0.8\nj1 = { uniform = [0.05, 0.4] }\nj2 = 0.1\ndephasing = 0.3\n[initial]\nrandom = \"haar\"\n[time]\ndt = 0.01\nt_end = 8.0\nsamples = 17\n[ensemble]\nsize = 12\nseed = 4\n", 1e-9);
}

#[test]
fn driven_pair_fermion_reservoir() {
    engines_agree("model = \"driven-pair\"\n[params]\nreservoir = \"fermion\"\ntemperature = 0.7\nmu = 0.3\nf = { linspace = [0.2, 1.2, 4] }\ngamma = 0.4\ndelta = 0.3\n[initial]\nrandom = \"mixed-hs\"\n[time]\ndt = 0.01\ntimes = [0.0, 0.37, 2.0, 5.5]\n[ensemble]\nsize = 8\nseed = 2\n", 1e-9);
}

#[test]
fn bloch_charger_with_decay() {
    engines_agree("model = \"bloch-charger\"\n[params]\nj = 0.7\ngamma = 0.3\n[initial]\nrandom = \"bloch\"\n[time]\ndt = 0.01\nt_end = 6.0\nsamples = 13\n[ensemble]\nsize = 10\n", 1e-9);
}

/// The smallest positive sample time the config takes (f32's smallest normal, 1.2e-38; below
/// it is refused, tests/bad_inputs): 1/t is 8.5e37 there, and the powers are the reference's.
#[test]
fn bloch_charger_at_the_smallest_sample_time() {
    engines_agree("model = \"bloch-charger\"\n[params]\nj = 0.7\ngamma = 0.3\n[initial]\nrandom = \"bloch\"\n[time]\ndt = 0.01\ntimes = [0.0, 1.2e-38, 0.5]\n[ensemble]\nsize = 6\n", 1e-9);
}

#[test]
fn custom_two_qubit() {
    engines_agree(include_str!("../examples/two-qubit.toml").replace("size = 500", "size = 10").as_str(), 1e-9);
}

#[test]
fn cavity_engine_small_and_mid_cutoff() {
    for n in [4, 12] {
        engines_agree(&format!("model = \"cavity-cells\"\n[params]\nwc = {{ uniform = [0.8, 1.2] }}\nwq = 1.0\nlambda = 0.8\ng = 0.3\nzeta = {{ uniform = [-1.0, 1.0] }}\nkappa = 0.1\ngamma = 0.05\nalpha = [0.9, -0.4]\nn_fock = {n}\n[initial]\nrandom = \"haar\"\n[time]\ndt = 0.01\nt_end = 2.0\nsamples = 5\n[ensemble]\nsize = 3\nseed = 8\n"), 1e-9);
    }
}

/// The measures written only when listed (the charger's and the ladder coherences), with the
/// full state's trace_error and min_eigenvalue; stored_energy_b and energy_fluctuation_b are
/// exactly 0 at t = 0 on the CPU engine (its Z(0) and rho0 are the references).
#[test]
fn cavity_engine_listed_measures_and_the_zero_at_t0() {
    let cfg = "model = \"cavity-cells\"\n[params]\nwc = { uniform = [0.8, 1.2] }\nlambda = 0.8\ng = 0.3\nzeta = { uniform = [-1.0, 1.0] }\nkappa = 0.1\ngamma = 0.05\nalpha = [0.9, -0.4]\nn_fock = 4\n[initial]\nrandom = \"haar\"\n[time]\ndt = 0.01\nt_end = 2.0\nsamples = 5\n[ensemble]\nsize = 3\nseed = 8\n[output]\nmeasures = [\"texture_c\", \"ergotropy_c\", \"antiergotropy_c\", \"energy_variance_c\", \"sm_b_re\", \"sm_b_im\", \"sm_c_re\", \"sm_c_im\", \"trace_error\", \"stored_energy_b\", \"energy_fluctuation_b\", \"min_eigenvalue\"]\n";
    engines_agree(cfg, 1e-9);
    let plan = parse_plan(cfg, &Overrides::default()).unwrap();
    let fast = run_plan(&plan, &RunOptions { backend: Backend::Cpu, verify: 0, ..Default::default() }).unwrap();
    for name in ["stored_energy_b", "energy_fluctuation_b"] {
        let k = plan.measures.iter().position(|m| m.name() == name).unwrap();
        for i in 0..3 {
            assert_eq!(fast.value(i, 0, k), 0.0, "{name} of member {i} at t = 0");
            assert!(fast.value(i, 4, k) != 0.0, "{name} of member {i} at t = 2");
        }
    }
}
