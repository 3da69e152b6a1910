//! Invariants of the f64 reference: trace, Hermiticity, positivity, conservation laws,
//! RK4's fourth order, and the Fock-cutoff diagnostic.

use qbat_gpu::config::{parse_plan, Overrides};
use qbat_gpu::job::Schedule;
use qbat_gpu::linalg::*;
use qbat_gpu::measures::{evaluate, Measure, MeasureContext, Sample};
use qbat_gpu::reference::{integrate, LindbladRhs};

fn plan(text: &str) -> qbat_gpu::config::Plan {
    parse_plan(text, &Overrides::default()).unwrap()
}

#[test]
fn trace_hermiticity_and_positivity_are_kept() {
    let p = plan("model = \"two-qubit\"\n[params]\nhamiltonian = [[1,0,0,0],[0,0.2,0.4,0],[0,0.4,-0.3,[0,0.1]],[0,0,[0,-0.1],0.5]]\nh_battery = [[1,0],[0,-1]]\nh_charger = [[0,1],[1,0]]\njumps = [{ op = [[0,1,0,0],[0,0,0,0],[0,0,0,1],[0,0,0,0]], rate = 0.3 }, { op = [[1,0,0,0],[0,-1,0,0],[0,0,1,0],[0,0,0,-1]], rate = 0.2 }]\n[initial]\nrandom = \"mixed-hs\"\n[time]\ndt = 0.01\nt_end = 20.0\nsamples = 41\n[ensemble]\nsize = 8\nseed = 3\n");
    for m in &p.members {
        let rho0 = p.initial_state(m);
        let rhs = LindbladRhs::new(&p.systems[m.point]);
        for s in integrate(&rhs, &rho0, None, &p.schedule) {
            assert!((s.rho.trace() - ONE).norm() < 1e-12, "trace at t={}", s.t);
            assert!(hermiticity_error(&s.rho) < 1e-13);
            assert!(eigvals_hermitian(&s.rho)[0] > -1e-10, "positivity at t={}", s.t);
        }
    }
}

#[test]
fn total_capacity_is_constant_under_closed_evolution() {
    let p = plan("model = \"spin-pair\"\n[params]\nwb = 1.0\nwc = 0.7\nj1 = 0.3\nj2 = 0.2\n[initial]\nrandom = \"mixed-bures\"\n[time]\ndt = 0.0025\nt_end = 15.0\nsamples = 31\n[ensemble]\nsize = 6\n");
    for m in &p.members {
        let sys = &p.systems[m.point];
        let rho0 = p.initial_state(m);
        let ctx = MeasureContext::new(sys, &rho0);
        let samples = integrate(&LindbladRhs::new(sys), &rho0, None, &p.schedule);
        let c0 = evaluate(&[Measure::CapacityTotal], &ctx, &Sample { t: 0.0, rho: &rho0, y: None })[0];
        for s in &samples {
            let c = evaluate(&[Measure::CapacityTotal], &ctx, &Sample { t: s.t, rho: &s.rho, y: None })[0];
            assert!((c - c0).abs() < 1e-9, "capacity_total drifted {c0} -> {c} at t={}", s.t);
        }
    }
}

#[test]
fn energy_is_conserved_when_h_commutes_with_hb_plus_hc() {
    // bloch-charger without decay: H commutes with n_c + n_b, so energy_b + energy_c is constant.
    let p = plan("model = \"bloch-charger\"\n[params]\nwb = 1.3\nj = 0.8\n[initial]\nrandom = \"haar\"\n[time]\ndt = 0.01\nt_end = 20.0\nsamples = 41\n[ensemble]\nsize = 6\nseed = 9\n");
    for m in &p.members {
        let sys = &p.systems[m.point];
        let hsum = on_battery(&sys.h_battery) + on_charger(&sys.h_charger);
        assert!(max_abs_diff(&(&sys.hamiltonian * &hsum), &(&hsum * &sys.hamiltonian)) < 1e-14);
        let rho0 = p.initial_state(m);
        let e0 = re_trace_product(&rho0, &hsum);
        for s in integrate(&LindbladRhs::new(sys), &rho0, None, &p.schedule) {
            assert!((re_trace_product(&s.rho, &hsum) - e0).abs() < 1e-10);
        }
    }
}

/// Error of rho(t_end) at step dt against a 64x finer step.
fn rk4_error(dt: f64) -> f64 {
    let text =
        |dt: f64| format!("model = \"driven-pair\"\n[params]\ng = 1.0\nf = 0.8\ngamma = 0.6\nn_th = 0.2\ndelta = 0.3\n[time]\ndt = {dt}\ntimes = [3.2]\n");
    let coarse = plan(&text(dt));
    let fine = plan(&text(dt / 64.0));
    let m = &coarse.members[0];
    let rho0 = coarse.initial_state(m);
    let a = integrate(&LindbladRhs::new(&coarse.systems[0]), &rho0, None, &coarse.schedule);
    let b = integrate(&LindbladRhs::new(&fine.systems[0]), &rho0, None, &fine.schedule);
    max_abs_diff(&a[0].rho, &b[0].rho)
}

#[test]
fn rk4_is_fourth_order_on_a_dissipative_case() {
    let (e1, e2) = (rk4_error(0.2), rk4_error(0.1));
    let ratio = e1 / e2;
    assert!((16.0 * 0.8..=16.0 * 1.2).contains(&ratio), "error ratio {ratio} (errors {e1:e}, {e2:e})");
}

#[test]
fn schedule_lands_exactly_on_sample_times() {
    let s = Schedule::new(0.1, &[0.25, 0.3, 1.0]);
    assert_eq!(s.segments[0].n_full, 2);
    assert!((s.segments[0].h_last - 0.05).abs() < 1e-15);
    assert_eq!(s.segments[1].n_full, 0);
    assert!((s.segments[1].h_last - 0.05).abs() < 1e-15);
    assert_eq!(s.segments[2].n_full, 7);
    assert_eq!(s.segments[2].h_last, 0.0);
    // a landing step must give the same state as integrating with a dt that divides the gap
    let a = plan("model = \"bloch-charger\"\n[params]\ngamma = 0.2\n[time]\ndt = 0.003\ntimes = [0.25, 0.5]\n");
    let b = plan("model = \"bloch-charger\"\n[params]\ngamma = 0.2\n[time]\ndt = 0.0025\ntimes = [0.25, 0.5]\n");
    let rho0 = a.initial_state(&a.members[0]);
    let ra = integrate(&LindbladRhs::new(&a.systems[0]), &rho0, None, &a.schedule);
    let rb = integrate(&LindbladRhs::new(&b.systems[0]), &rho0, None, &b.schedule);
    assert!(max_abs_diff(&ra[1].rho, &rb[1].rho) < 1e-9);
    // a positive gap below 1e-9 dt is a short step, never none: every sample's steps add up to
    // its time, and the state moves (the sample held the state before it, so power_b = E_b / t
    // read 0 at t = 1e-9 for dt = 1)
    let times = [1e-9, 1e-8, 1e-8 + 1e-12, 2.0];
    let s = Schedule::new(1.0, &times);
    let mut t = 0.0;
    for (g, want) in s.segments.iter().zip(times) {
        t += g.n_full as f64 + g.h_last;
        assert!(g.n_full > 0 || g.h_last > 0.0, "{g:?}: no step to t = {want}");
        assert!((t - want).abs() <= 1e-15 * want.max(1.0), "the steps reach {t}, not {want}");
    }
    let p = plan("model = \"bloch-charger\"\n[params]\nj = 1.0\n[initial]\ntheta = 1.0\nphi = 0.5\n[time]\ndt = 1.0\ntimes = [1e-9, 1e-3]\n");
    let rho0 = p.initial_state(&p.members[0]);
    let rs = integrate(&LindbladRhs::new(&p.systems[0]), &rho0, None, &p.schedule);
    assert!(max_abs_diff(&rs[0].rho, &rho0) > 1e-12, "the state at t = 1e-9 is the initial one");
}

fn cavity_measures(n_fock: usize) -> (Vec<f64>, f64) {
    let p = plan(&format!("model = \"cavity-cells\"\n[params]\nlambda = 1.0\ng = 0.3\nzeta = 0.4\nkappa = 0.05\ngamma = 0.02\nalpha = [1.0, 0.5]\nn_fock = {n_fock}\n[time]\ndt = 0.01\nt_end = 2.0\nsamples = 5\n"));
    let sys = &p.systems[0];
    let rho0 = p.initial_state(&p.members[0]);
    let ctx = MeasureContext::new(sys, &rho0);
    let list = [Measure::StoredEnergyB, Measure::Concurrence, Measure::PhotonNumber, Measure::ErgotropyB, Measure::FockTail];
    let samples = integrate(&LindbladRhs::new(sys), &rho0, None, &p.schedule);
    let last = samples.last().unwrap();
    let v = evaluate(&list, &ctx, &Sample { t: last.t, rho: &last.rho, y: None });
    let tail = samples.iter().map(|s| evaluate(&[Measure::FockTail], &ctx, &Sample { t: s.t, rho: &s.rho, y: None })[0]).fold(0.0, f64::max);
    (v[..4].to_vec(), tail)
}

#[test]
fn fock_truncation_changes_less_than_the_tail_suggests() {
    let (small, tail_small) = cavity_measures(8);
    let (big, tail_big) = cavity_measures(16);
    assert!(tail_small > tail_big && tail_big < 1e-6, "tails {tail_small:e}, {tail_big:e}");
    for (a, b) in small.iter().zip(&big) {
        // the change in each measure is bounded by a modest multiple of the smaller cutoff's tail
        assert!((a - b).abs() < 100.0 * tail_small.max(1e-12) + 1e-10, "{a} vs {b}, tail {tail_small:e}");
    }
}

/// energy_fluctuation_b does not depend on a constant offset h0 of H_B (H_B(t) - H_B(0) does
/// not see it), and the f64 reference gives the same Sigma^2 at h0 = 3000 and 1e5 as at 0, to
/// the rounding of the config's entries (h0 eps_f64); taken with H_B itself it lost h0^2 eps_f64
/// (2.4e-8 at h0 = 3000, where its Sigma(0) read 6e-5 rather than about 0).
#[test]
fn the_reference_energy_fluctuation_does_not_see_an_offset_of_h_b() {
    use qbat_gpu::run::{run_plan, Backend, RunOptions};
    // h = (0.6, 0, 0.8): H_B = [[h0 - 0.8, 0.6], [0.6, h0 + 0.8]]
    let cfg = |h0: f64| {
        format!("model = \"two-qubit\"\n[params]\nhamiltonian = [[-2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.3, 0.0], [0.0, 0.3, 0.0, 0.0], [0.0, 0.0, 0.0, 2.0]]\nh_battery = [[{}, 0.6], [0.6, {}]]\nh_charger = [[-1.0, 0.0], [0.0, 1.0]]\njumps = [{{ op = [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]], rate = 0.05 }}]\n[initial]\nrandom = \"mixed-bures\"\n[time]\ndt = 0.01\nt_end = 5.0\nsamples = 11\n[ensemble]\nsize = 3\n[output]\nmeasures = [\"energy_fluctuation_b\"]\n", h0 - 0.8, h0 + 0.8)
    };
    let run = |h0: f64| run_plan(&plan(&cfg(h0)), &RunOptions { backend: Backend::Reference, verify: 0, ..Default::default() }).unwrap();
    let truth = run(0.0);
    for h0 in [3000.0, 1e5] {
        let r = run(h0);
        for member in 0..3 {
            for s in 0..truth.times.len() {
                let (got, want) = (r.value(member, s, 0), truth.value(member, s, 0));
                assert!(s == 0 || want > 0.5, "Sigma {want} at t = {}", truth.times[s]);
                let err = (got * got.abs() - want * want.abs()).abs();
                // (the config's entries h0 +- 0.8 themselves round by h0 eps: so does H_B - h0 I)
                assert!(err <= 4.0 * h0 * f64::EPSILON, "h0 = {h0}, member {member}, t = {}: Sigma^2 off by {err:e}", truth.times[s]);
            }
        }
    }
}

/// The measures an offset h0 I of H_B or H_C does not change (stored energy, ergotropy,
/// antiergotropy, the capacities, the variances, the powers) are the same in the f64 reference
/// at h0 = 1e8 (and c0 = 1e6 on H_C, 1e8 on H) as without an offset, to the rounding of the
/// config's entries (h0 eps); taken with H_B itself the variance was off by 10 and the rest by
/// up to 1e-7. And `--verify` of the CPU engine against it passes: every deviation within the
/// tolerance 1e-9 max(1, scale) (the variance's was 1e10 times its absolute 1e-9, energy_b's
/// 89 times, from its own rounding at 1e8).
#[test]
fn the_reference_measures_do_not_see_an_offset_of_h() {
    use qbat_gpu::run::{run_plan, Backend, RunOptions};
    let list = [
        "stored_energy_b",
        "ergotropy_b",
        "antiergotropy_b",
        "capacity_b",
        "capacity_c",
        "capacity_total",
        "residual_capacity",
        "power_b",
        "ergotropic_power_b",
        "energy_variance_b",
        "ergotropy_c",
        "antiergotropy_c",
        "energy_variance_c",
    ];
    let cfg = |h0: f64, c0: f64, e0: f64| {
        let measures = list.iter().map(|m| format!("\"{m}\"")).collect::<Vec<_>>().join(", ");
        format!(
            "model = \"two-qubit\"\n[params]\nhamiltonian = [[{}, 0.0, 0.0, 0.0], [0.0, {e0}, 0.3, 0.0], [0.0, 0.3, {e0}, 0.0], [0.0, 0.0, 0.0, {}]]\nh_battery = [[{}, 0.6], [0.6, {}]]\nh_charger = [[{}, [0.2, 0.1]], [[0.2, -0.1], {}]]\njumps = [{{ op = [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]], rate = 0.05 }}]\n[initial]\nrandom = \"mixed-bures\"\n[time]\ndt = 0.01\nt_end = 5.0\nsamples = 11\n[ensemble]\nsize = 3\n[output]\nmeasures = [{measures}]\n",
            e0 - 2.0,
            e0 + 2.0,
            h0 - 0.8,
            h0 + 0.8,
            c0 - 1.0,
            c0 + 1.0
        )
    };
    let run = |text: &str, backend| run_plan(&plan(text), &RunOptions { backend, verify: 3, ..Default::default() }).unwrap();
    let truth = run(&cfg(0.0, 0.0, 0.0), Backend::Reference);
    // (not whole numbers: the eigenvalues of H then round by h0 eps, which the gaps must not see)
    let (h0, c0, e0) = (1e8 + 0.137, 1e6 + 0.291, 1e8 + 0.713);
    let shifted = run(&cfg(h0, c0, e0), Backend::Reference);
    for (k, m) in list.iter().enumerate() {
        // (the entries h0 +- 0.8 round by h0 eps; a variance by h0 eps times its splitting)
        let limit = 16.0 * h0.max(c0).max(e0) * f64::EPSILON;
        for member in 0..3 {
            for s in 0..truth.times.len() {
                let (got, want) = (shifted.value(member, s, k), truth.value(member, s, k));
                assert!((got - want).abs() <= limit, "{m}, member {member}, t = {}: {got} against {want} without the offset", truth.times[s]);
            }
        }
    }
    let cpu = run(&cfg(h0, c0, e0), Backend::Cpu);
    let v = cpu.verify.as_ref().unwrap();
    assert!(v.pass, "{:#?}", v.deviations);
    // energy_b itself carries its value's rounding: passed by the tolerance's scale
    let with_energy = cfg(h0, c0, e0).replace("measures = [", "measures = [\"energy_b\", ");
    let with_energy = run(&with_energy, Backend::Cpu);
    let d = &with_energy.verify.as_ref().unwrap().deviations[0];
    assert_eq!(d.measure, "energy_b");
    assert!(d.pass && d.max_abs > 1e-9 && (d.scale - h0).abs() < 10.0 && d.tolerance == 1e-9 * d.scale, "{d:?}");
}
