//! Cross-check of the cavity-cells model against an independent implementation: QuTiP 5.3.1
//! `mesolve` (adams, atol 1e-10, rtol 1e-8) on the cavity-100 job's first member
//! (lambda = 0.5), produced by `benches/qutip/bench_qutip.py --job cavity-100`, which builds
//! its operators from docs/physics.md independently of this crate. A numpy/scipy `expm_multiply`
//! run of a hand-built Liouvillian agreed with QuTiP to about 1e-10.

use qbat_gpu::config::{parse_plan, Overrides};
use qbat_gpu::run::{run_plan, Backend, RunOptions};

#[test]
fn cavity_stored_energy_matches_qutip() {
    let cfg = "model = \"cavity-cells\"\n[params]\nwc = 1.0\nwq = 1.0\ng = 0.2\nzeta = 0.5\nalpha = 2.0\nkappa = 0.1\ngamma = 0.05\nn_fock = 20\nlambda = 0.5\n[time]\ndt = 0.01\ntimes = [1.0, 5.0, 10.0]\n[output]\nmeasures = [\"stored_energy_b\"]\n";
    let plan = parse_plan(cfg, &Overrides::default()).unwrap();
    let r = run_plan(&plan, &RunOptions { backend: Backend::Cpu, verify: 0, ..Default::default() }).unwrap();
    let qutip = [0.0148339987, 0.2628034610, 0.3680415849];
    for (s, q) in qutip.iter().enumerate() {
        let got = r.value(0, s, 0);
        assert!((got - q).abs() < 2e-10, "t = {}: {got} vs QuTiP {q}", r.times[s]);
    }
}

/// dicke against QuTiP 5.3.1 `mesolve` (adams, atol 1e-10, rtol 1e-8): the dicke-1k job's first
/// and last members (g = 0.02 and 0.2; N = 8, n_fock = 24, kappa 0.05, gamma 0.02, start
/// |k = 0> x |8>), from `benches/qutip/bench_qutip.py --job dicke-1k --members 2`, whose
/// operators are built there in numpy from docs/physics.md. The largest difference was 1.5e-8
/// (g = 0.2, t = 5, E = 3.03), QuTiP's rtol; the rest are below 1e-9.
#[test]
fn dicke_energy_matches_qutip() {
    let qutip = [(0.02, [0.04135621710495017, 0.38316737977622195, 0.8290503608584887]), (0.2, [3.161450954518504, 3.025094541221843, 2.8055760798441027])];
    for (g, want) in qutip {
        let cfg = format!("model = \"dicke\"\n[params]\nn_cells = 8\nn_fock = 24\nwc = 1.0\nwa = 1.0\nkappa = 0.05\ngamma = 0.02\ng = {g}\n[time]\ndt = 0.01\ntimes = [1.0, 5.0, 10.0]\n[output]\nmeasures = [\"energy_b\"]\n");
        let plan = parse_plan(&cfg, &Overrides::default()).unwrap();
        let r = run_plan(&plan, &RunOptions { backend: Backend::Cpu, verify: 0, ..Default::default() }).unwrap();
        for (s, q) in want.iter().enumerate() {
            let got = r.value(0, s, 0);
            assert!((got - q).abs() < 5e-8 * q.abs().max(1.0), "g = {g}, t = {}: {got} vs QuTiP {q}", r.times[s]);
        }
    }
}
