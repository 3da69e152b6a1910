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
