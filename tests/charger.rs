//! The charger-side measures (texture_c, ergotropy_c, antiergotropy_c, energy_variance_c) and
//! <s-> of both qubits, against constructions built here: the battery measures of the state
//! with battery and charger swapped, and Tr(rho s-) with s- = |g><e| written out.

use qbat_gpu::config::{parse_plan, Overrides};
use qbat_gpu::linalg::{c, kron, CMat, C64};
use qbat_gpu::measures::Measure::{self, *};
use qbat_gpu::measures::{evaluate, MeasureContext, Sample};
use qbat_gpu::model::{resolve_params, ModelKind, ParamValue, Params};
use qbat_gpu::run::{run_plan, Backend, RunOptions};

/// SWAP on two qubits in the (charger, battery) basis: |ab> -> |ba>.
fn swap() -> CMat {
    let mut s = CMat::zeros(4, 4);
    for (i, j) in [(0, 0), (1, 2), (2, 1), (3, 3)] {
        s[(i, j)] = c(1.0, 0.0);
    }
    s
}

/// A full-rank mixed state from a fixed complex matrix G: G G^+ / Tr(G G^+).
fn mixed(seed: f64) -> CMat {
    let g = CMat::from_fn(4, 4, |i, j| c((1.3 * i as f64 + 0.7 * j as f64 + seed).sin(), (0.4 * i as f64 - 1.9 * j as f64 + 2.0 * seed).cos()));
    let r = &g * g.adjoint();
    let tr = r.trace();
    r / tr
}

fn spin_pair(wb: f64, wc: f64) -> qbat_gpu::model::OpenSystem {
    let p: Params = [("wb", wb), ("wc", wc), ("j1", 0.3), ("j2", 0.1)].iter().map(|(k, v)| (k.to_string(), ParamValue::Real(*v))).collect();
    ModelKind::SpinPair.build(&resolve_params(ModelKind::SpinPair, &p).unwrap()).unwrap()
}

const PAIRS: [(Measure, Measure); 4] = [(TextureC, TextureB), (ErgotropyC, ErgotropyB), (AntiergotropyC, AntiergotropyB), (EnergyVarianceC, EnergyVarianceB)];

#[test]
fn charger_measures_are_the_battery_measures_of_the_swapped_state() {
    let sys = spin_pair(1.3, 0.6);
    for k in 0..6 {
        let rho = mixed(0.37 * k as f64);
        let swapped = swap() * &rho * swap();
        let ctx = MeasureContext::new(&sys, &rho);
        // The swapped problem: H_B is the old H_C and the other way round.
        let mut ctx_s = ctx.clone();
        ctx_s.h_battery = ctx.h_charger.clone();
        ctx_s.h_charger = ctx.h_battery.clone();
        (ctx_s.h_b_traceless, ctx_s.h_c_traceless) = (ctx.h_c_traceless.clone(), ctx.h_b_traceless.clone());
        let charger: Vec<Measure> = PAIRS.iter().map(|p| p.0).collect();
        let battery: Vec<Measure> = PAIRS.iter().map(|p| p.1).collect();
        let a = evaluate(&charger, &ctx, &Sample { t: 0.5, rho: &rho, y: None });
        let b = evaluate(&battery, &ctx_s, &Sample { t: 0.5, rho: &swapped, y: None });
        for i in 0..a.len() {
            assert!((a[i] - b[i]).abs() < 1e-13, "{}: {} vs {}", charger[i].name(), a[i], b[i]);
        }
        // The state is full rank and generic: the values are not trivially 0.
        assert!(a.iter().all(|v| v.abs() > 1e-6), "{a:?}");
    }
}

#[test]
fn sigma_minus_expectations_are_tr_rho_s_minus() {
    let sys = spin_pair(1.0, 1.0);
    let sm = CMat::from_row_slice(2, 2, &[c(0.0, 0.0), c(1.0, 0.0), c(0.0, 0.0), c(0.0, 0.0)]);
    let id = CMat::identity(2, 2);
    let list = [SmBRe, SmBIm, SmCRe, SmCIm];
    for k in 0..6 {
        let rho = mixed(1.1 * k as f64 - 0.2);
        let ctx = MeasureContext::new(&sys, &rho);
        let v = evaluate(&list, &ctx, &Sample { t: 1.0, rho: &rho, y: None });
        let b: C64 = (&rho * kron(&id, &sm)).trace();
        let ch: C64 = (&rho * kron(&sm, &id)).trace();
        let want = [b.re, b.im, ch.re, ch.im];
        for i in 0..4 {
            assert!((v[i] - want[i]).abs() < 1e-14, "{}: {} vs {}", list[i].name(), v[i], want[i]);
        }
    }
    // |g> + e^{i phi}|e> on the battery (charger |g>): <s-_b> = e^{i phi}/2, <s-_c> = 0.
    let phi: f64 = 0.9;
    let h = std::f64::consts::FRAC_1_SQRT_2;
    let psi = [c(h, 0.0), C64::from_polar(h, phi), c(0.0, 0.0), c(0.0, 0.0)];
    let rho = qbat_gpu::linalg::projector(&psi);
    let v = evaluate(&list, &MeasureContext::new(&sys, &rho), &Sample { t: 0.0, rho: &rho, y: None });
    let want = [0.5 * phi.cos(), 0.5 * phi.sin(), 0.0, 0.0];
    for i in 0..4 {
        assert!((v[i] - want[i]).abs() < 1e-15, "{}: {} vs {}", list[i].name(), v[i], want[i]);
    }
}

/// One spin-pair run per engine: with wb and wc exchanged and the initial state swapped, the
/// charger columns of one run are the battery columns of the other at every sample, and <s->
/// of the two qubits trade places.
#[test]
fn swapped_runs_trade_charger_and_battery_columns_on_every_cpu_engine() {
    let cfg = |wb: f64, wc: f64, ket: &str| {
        format!(
            "model = \"spin-pair\"\n[params]\nwb = {wb}\nwc = {wc}\nj1 = 0.3\nj2 = 0.15\n[initial]\nket = {ket}\n[time]\ndt = 0.01\nt_end = 3.0\nsamples = 7\n[output]\nmeasures = [\"texture_b\", \"ergotropy_b\", \"antiergotropy_b\", \"energy_variance_b\", \"texture_c\", \"ergotropy_c\", \"antiergotropy_c\", \"energy_variance_c\", \"sm_b_re\", \"sm_b_im\", \"sm_c_re\", \"sm_c_im\"]\n"
        )
    };
    // a|gg> + b|ge> + d|eg> (index 2 i_c + i_b) and its swap a|gg> + d|ge> + b|eg>.
    let a = cfg(1.4, 0.8, "[[0.6, 0.0], [0.48, 0.0], [0.0, 0.64], [0.0, 0.0]]");
    let b = cfg(0.8, 1.4, "[[0.6, 0.0], [0.0, 0.64], [0.48, 0.0], [0.0, 0.0]]");
    for backend in [Backend::Cpu, Backend::Reference] {
        let run = |t: &str| {
            let plan = parse_plan(t, &Overrides::default()).unwrap();
            run_plan(&plan, &RunOptions { backend, verify: 0, ..Default::default() }).unwrap()
        };
        let (ra, rb) = (run(&a), run(&b));
        let mut moved = 0.0f64;
        for s in 0..7 {
            for k in 0..4 {
                let (x, y) = (ra.value(0, s, 4 + k), rb.value(0, s, k));
                assert!((x - y).abs() < 1e-12, "{backend:?} sample {s} column {k}: {x} vs {y}");
                moved = moved.max((x - ra.value(0, 0, 4 + k)).abs());
            }
            for k in 0..2 {
                let (x, y) = (ra.value(0, s, 8 + k), rb.value(0, s, 10 + k));
                assert!((x - y).abs() < 1e-12, "{backend:?} sample {s} <s-> part {k}: {x} vs {y}");
            }
        }
        // The exchange moves energy: the columns change along the run.
        assert!(moved > 1e-2, "{backend:?}: nothing moved ({moved})");
    }
}

/// The charger measures are opt-in: listed, every f64 engine agrees with the reference on
/// every model they apply to; left out, the default list does not hold them.
#[test]
fn listed_charger_measures_agree_between_the_cpu_engine_and_the_reference() {
    let list = "[output]\nmeasures = [\"texture_c\", \"ergotropy_c\", \"antiergotropy_c\", \"energy_variance_c\", \"sm_b_re\", \"sm_b_im\", \"sm_c_re\", \"sm_c_im\"]\n";
    let cfgs = [
        "model = \"spin-pair\"\n[params]\nwb = 1.0\nwc = 0.8\nj1 = 0.3\ndephasing = 0.2\n[initial]\nrandom = \"mixed-bures\"\n[time]\ndt = 0.01\nt_end = 3.0\nsamples = 7\n[ensemble]\nsize = 4\nseed = 1\n",
        "model = \"driven-pair\"\n[params]\nf = 0.7\ngamma = 0.4\ndelta = 0.3\nn_th = 0.2\n[initial]\nrandom = \"haar\"\n[time]\ndt = 0.01\nt_end = 3.0\nsamples = 7\n[ensemble]\nsize = 4\nseed = 2\n",
        "model = \"cavity-cells\"\n[params]\nlambda = 0.8\ng = 0.3\nzeta = 0.4\nkappa = 0.1\ngamma = 0.05\nalpha = [0.9, -0.4]\nn_fock = 8\n[initial]\nrandom = \"haar\"\n[time]\ndt = 0.01\nt_end = 2.0\nsamples = 5\n[ensemble]\nsize = 2\nseed = 3\n",
    ];
    for cfg in cfgs {
        let plan = parse_plan(&format!("{cfg}{list}"), &Overrides::default()).unwrap();
        let fast = run_plan(&plan, &RunOptions { backend: Backend::Cpu, verify: 0, ..Default::default() }).unwrap();
        let refr = run_plan(&plan, &RunOptions { backend: Backend::Reference, verify: 0, ..Default::default() }).unwrap();
        // (a cavity run also appends fock_tail, which other tests cover)
        for (k, m) in plan.measures.iter().enumerate().filter(|(_, m)| m.opt_in()) {
            let mut worst = 0.0f64;
            let mut size = 0.0f64;
            for i in 0..plan.members.len() {
                for s in 0..plan.schedule.times.len() {
                    worst = worst.max(crate::common::deviation(fast.value(i, s, k), refr.value(i, s, k)));
                    size = size.max(refr.value(i, s, k).abs());
                }
            }
            assert!(worst < 1e-9, "{}: CPU engine vs reference {worst:e}\n{cfg}", m.name());
            assert!(size > 1e-3, "{}: zero along the whole run, nothing compared\n{cfg}", m.name());
        }
        let plain = parse_plan(cfg, &Overrides::default()).unwrap();
        assert!(plain.measures.iter().all(|m| !m.opt_in()), "{:?}", plain.measures);
    }
}
