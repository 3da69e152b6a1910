//! The `dicke` model (Ferraro et al. 2018) against references built here, independently of src/model/dicke.rs:
//! the reduced-state ergotropy and capacity against the explicit 2^N computation, N = 1 against
//! the Rabi / Jaynes-Cummings model, N = 2 against two explicit qubits, the closed forms, and
//! the conservation laws.

use qbat_gpu::config::{parse_plan, Overrides, Plan};
use qbat_gpu::linalg::*;
use qbat_gpu::measures::{energy, evaluate, Measure, MeasureContext, Sample};
use qbat_gpu::model::{Jump, ModelKind, OpenSystem, ParamValue, Params, Space};
use qbat_gpu::run::{run_plan, Backend, RunOptions, RunResult};
use std::sync::Arc;

fn run(cfg: &str, backend: Backend) -> (Plan, RunResult) {
    let plan = parse_plan(cfg, &Overrides::default()).unwrap();
    let r = run_plan(&plan, &RunOptions { backend, verify: 0, ..Default::default() }).unwrap();
    (plan, r)
}

fn col(plan: &Plan, m: Measure) -> usize {
    plan.measures.iter().position(|x| *x == m).unwrap_or_else(|| panic!("{} not in the plan", m.name()))
}

/// A seeded-by-formula full-rank state of dimension d: A A^+ / Tr, A with fixed entries.
fn some_state(d: usize, salt: f64) -> CMat {
    let a = CMat::from_fn(d, d, |i, j| c(((i * 7 + j * 3) as f64 * 0.37 + salt).sin(), ((i * 5 + j * 11) as f64 * 0.21 - salt).cos()));
    let rho = &a * a.adjoint();
    let tr = rho.trace();
    rho / tr
}

/// The Dicke states of N qubits in the computational basis (bit i of the index = cell i
/// excited): |k> = sum over bitstrings with k ones / sqrt(C(N, k)), columns of a 2^N x (N+1)
/// isometry.
fn dicke_isometry(n: usize) -> CMat {
    let mut v = CMat::zeros(1 << n, n + 1);
    for k in 0..=n {
        let count = (0..1usize << n).filter(|b| b.count_ones() as usize == k).count() as f64;
        for b in 0..1usize << n {
            if b.count_ones() as usize == k {
                v[(b, k)] = c(1.0 / count.sqrt(), 0.0);
            }
        }
    }
    v
}

fn dicke_system(given: &[(&str, f64)], coupling: &str) -> OpenSystem {
    let mut p: Params = given.iter().map(|(k, v)| (k.to_string(), ParamValue::Real(*v))).collect();
    p.insert("coupling".into(), ParamValue::Text(coupling.into()));
    let p = qbat_gpu::model::resolve_params(ModelKind::Dicke, &p).unwrap();
    ModelKind::Dicke.build(&p).unwrap()
}

#[test]
fn ergotropy_and_capacity_over_2_to_the_n_match_the_explicit_computation() {
    let list = [Measure::EnergyB, Measure::ErgotropyB, Measure::AntiergotropyB, Measure::CapacityB, Measure::EntropyB, Measure::EnergyVarianceB];
    let mut below = 0;
    for n in 1..=4usize {
        for wa in [1.3, -0.7] {
            let sys = dicke_system(&[("n_cells", n as f64), ("n_fock", n as f64 + 1.0), ("wa", wa)], "dicke");
            let v = dicke_isometry(n);
            // H_B = wa sum_i n_i on 2^N: diagonal wa popcount(b)
            let hb_full = CMat::from_diagonal(&nalgebra::DVector::from_iterator(1 << n, (0..1usize << n).map(|b| c(wa * b.count_ones() as f64, 0.0))));
            for salt in [0.1, 0.9, 2.3] {
                // rank 1 .. full-rank states of the cells, in a product with a cavity state
                for rank_one in [false, true] {
                    let rb = if rank_one {
                        let psi: Vec<C64> = (0..=n).map(|k| c((k as f64 + salt).cos(), (k as f64 * salt).sin())).collect();
                        let nn = psi.iter().map(|z| z.norm_sqr()).sum::<f64>().sqrt();
                        projector(&psi.iter().map(|z| z / nn).collect::<Vec<_>>())
                    } else {
                        some_state(n + 1, salt)
                    };
                    let cav = some_state(n + 2, salt + 0.5);
                    let rho = kron(&rb, &cav);
                    let ctx = MeasureContext::new(&sys, &rho);
                    let got = evaluate(&list, &ctx, &Sample { t: 1.0, rho: &rho, y: None });
                    let full = &v * &rb * v.adjoint();
                    let want = [
                        energy::energy(&full, &hb_full),
                        energy::ergotropy(&full, &hb_full),
                        energy::antiergotropy(&full, &hb_full),
                        energy::capacity(&full, &hb_full),
                        qbat_gpu::measures::coherence::entropy_bits(&full),
                        energy::variance(&full, &hb_full),
                    ];
                    for i in 0..list.len() {
                        assert!((got[i] - want[i]).abs() < 1e-12, "N = {n}, wa = {wa}, {}: {} vs 2^N {}", list[i].name(), got[i], want[i]);
                    }
                    // Within the symmetric subspace alone the ergotropy is smaller for N >= 2.
                    let sym = energy::ergotropy(&rb, &sys.h_battery);
                    assert!(sym <= got[1] + 1e-12);
                    if n >= 2 && got[1] - sym > 1e-3 {
                        below += 1;
                    }
                }
            }
        }
    }
    assert!(below > 0, "the symmetric-subspace ergotropy never differed from the 2^N one");
}

/// The N + 1 lowest and highest levels of wa sum_i n_i on the 2^N cells (the ladders of the
/// passive and active energies), against the binomial multiplicities counted here in u128, for
/// every N the model takes; and a run's capacity of a pure state, the whole ladder's span N wa.
/// A cap inside the library's count made C(N, N) 0 from 62 cells on: the top level was lost,
/// and capacity_b and antiergotropy_b were wa short.
#[test]
fn the_energy_ladders_hold_every_level_to_64_cells() {
    use qbat_gpu::measures::dicke::{levels_high, levels_low};
    let binomial = |n: usize, k: usize| (0..k).fold(1u128, |c, i| c * (n - i) as u128 / (i + 1) as u128);
    for n in 1..=64usize {
        for wa in [1.0, -0.7] {
            let mut levels: Vec<(f64, u128)> = (0..=n).map(|k| (wa * k as f64, binomial(n, k))).collect();
            levels.sort_by(|a, b| a.0.total_cmp(&b.0));
            let first = |it: &mut dyn Iterator<Item = &(f64, u128)>| -> Vec<f64> {
                let mut out = vec![];
                for &(e, m) in it {
                    out.extend(std::iter::repeat_n(e, m.min((n + 1 - out.len()) as u128) as usize));
                }
                out
            };
            assert_eq!(levels_low(n, wa), first(&mut levels.iter()), "{n} cells, wa {wa}");
            assert_eq!(levels_high(n, wa), first(&mut levels.iter().rev()), "{n} cells, wa {wa}");
        }
    }
    for n in [61, 62, 64] {
        let cfg = format!("model = \"dicke\"\n[params]\nn_cells = {n}\nn_fock = 1\ng = 0.0\nphotons = 0\ndicke_m = {}\n[time]\ndt = 0.01\nt_end = 0.01\nsamples = 1\n[output]\nmeasures = [\"capacity_b\", \"antiergotropy_b\"]\n", 1.0 - n as f64 / 2.0);
        let (plan, r) = run(&cfg, Backend::Cpu);
        let (cap, anti) = (r.value(0, 0, col(&plan, Measure::CapacityB)), r.value(0, 0, col(&plan, Measure::AntiergotropyB)));
        // one excitation, pure: energy 1, the active energy the top level N
        assert!((cap - n as f64).abs() < 1e-9 && (anti - (1.0 - n as f64)).abs() < 1e-9, "{n} cells: capacity {cap}, antiergotropy {anti}");
    }
}

#[test]
fn one_cell_tavis_cummings_at_resonance_follows_sin_squared() {
    // N = 1, |g>|1>, wc = wa: energy_b = wa sin^2(g t)
    let (wa, g) = (1.2, 0.3);
    let cfg = format!("model = \"dicke\"\n[params]\nn_cells = 1\nn_fock = 3\nwc = {wa}\nwa = {wa}\ng = {g}\ncoupling = \"tavis-cummings\"\n[time]\ndt = 0.005\nt_end = 12.0\nsamples = 25\n");
    for backend in [Backend::Reference, Backend::Cpu] {
        let (plan, r) = run(&cfg, backend);
        let (e, p) = (col(&plan, Measure::EnergyB), col(&plan, Measure::EnergyPerCell));
        for (s, &t) in r.times.iter().enumerate() {
            let want = wa * (g * t).sin().powi(2);
            assert!((r.value(0, s, e) - want).abs() < 1e-9, "{backend:?} t = {t}: {} vs {want}", r.value(0, s, e));
            assert_eq!(r.value(0, s, p), r.value(0, s, e));
        }
    }
}

/// e^{-iHt} from the eigendecomposition of the Hermitian H.
fn propagator(h: &CMat, t: f64) -> CMat {
    let e = hermitian_part(h).symmetric_eigen();
    let d = CMat::from_diagonal(&nalgebra::DVector::from_iterator(h.nrows(), e.eigenvalues.iter().map(|&x| C64::from_polar(1.0, -x * t))));
    &e.eigenvectors * d * e.eigenvectors.adjoint()
}

/// Truncated a on |0>..|nf>, built here.
fn destroy(nf: usize) -> CMat {
    CMat::from_fn(nf + 1, nf + 1, |i, j| if j == i + 1 { c((j as f64).sqrt(), 0.0) } else { ZERO })
}

#[test]
fn one_cell_is_the_rabi_and_jaynes_cummings_model() {
    // qubit (x) cavity, |g> = index 0: H = wc a^+a + wa s+s- + g sx (a + a^+) (Rabi), or
    // g (s+ a + s- a^+) (JC); start |e> (x) |alpha>.
    let (nf, wc, wa, g) = (14, 0.9, 1.1, 0.25);
    let alpha = c(0.8, -0.5);
    for coupling in ["dicke", "tavis-cummings"] {
        let cfg = format!("model = \"dicke\"\n[params]\nn_cells = 1\nn_fock = {nf}\nwc = {wc}\nwa = {wa}\ng = {g}\ncoupling = \"{coupling}\"\nalpha = [0.8, -0.5]\ndicke_m = 0.5\n[time]\ndt = 0.002\nt_end = 6.0\nsamples = 7\n");
        let (plan, r) = run(&cfg, Backend::Reference);
        let a = kron(&identity(2), &destroy(nf));
        let (sp, sm) = (kron(&sigma_plus(), &identity(nf + 1)), kron(&sigma_minus(), &identity(nf + 1)));
        let num = |op: &CMat| op.adjoint() * op;
        let inter = if coupling == "dicke" { (&sp + &sm) * (&a + a.adjoint()) } else { &sp * &a + &sm * a.adjoint() };
        let h = num(&a) * c(wc, 0.0) + &sp * &sm * c(wa, 0.0) + inter * c(g, 0.0);
        // the cavity coherent state from its Poisson amplitudes, renormalised on the cutoff
        let mut k: Vec<C64> = (0..=nf).map(|n| alpha.powu(n as u32) / (1..=n).map(|x| (x as f64).sqrt()).product::<f64>()).collect();
        let nn = k.iter().map(|z| z.norm_sqr()).sum::<f64>().sqrt();
        k.iter_mut().for_each(|z| *z /= nn);
        let psi0: Vec<C64> = [ZERO, ONE].iter().flat_map(|q| k.iter().map(move |z| q * z)).collect();
        let hb = sigma_plus() * sigma_minus() * c(wa, 0.0);
        for (s, &t) in r.times.iter().enumerate() {
            let u = propagator(&h, t);
            let rho = &u * projector(&psi0) * u.adjoint();
            let q = trace_out_second(&rho, 2, nf + 1);
            let want = [
                (Measure::EnergyB, energy::energy(&q, &hb)),
                (Measure::ErgotropyB, energy::ergotropy(&q, &hb)),
                (Measure::CapacityB, energy::capacity(&q, &hb)),
                (Measure::PhotonNumber, re_trace_product(&rho, &num(&a))),
                (Measure::Purity, 1.0),
            ];
            for (m, w) in want {
                let got = r.value(0, s, col(&plan, m));
                assert!((got - w).abs() < 1e-8, "{coupling} t = {t} {}: {got} vs {w}", m.name());
            }
        }
    }
}

/// Two explicit qubits and a cavity, built here: J_a = (s_a (x) I + I (x) s_a) / 2 for the
/// cells, index (2 i_1 + i_2)(nf + 1) + n; the same collective couplings and dissipators.
fn two_qubit_full(nf: usize, wc: f64, wa: f64, g: f64, kappa: f64, gamma: f64, tc: bool) -> OpenSystem {
    let (i2, ic) = (identity(2), identity(nf + 1));
    let cell = |op: &CMat| kron(&(kron(op, &i2) + kron(&i2, op)), &ic);
    let (jp, jm) = (cell(&sigma_plus()), cell(&sigma_minus()));
    let a = kron(&identity(4), &destroy(nf));
    let ad = a.adjoint();
    let inter = if tc { (&jp * &a + &jm * &ad) * c(g, 0.0) } else { (&jp + &jm) * (&a + &ad) * c(g, 0.0) };
    let nb = cell(&(sigma_plus() * sigma_minus()));
    let h = &ad * &a * c(wc, 0.0) + nb * c(wa, 0.0) + &inter;
    let jumps = [(a, kappa), (jm, gamma)].into_iter().filter(|(_, r)| *r > 0.0).map(|(op, rate)| Jump { op: Arc::new(op), rate }).collect();
    OpenSystem {
        space: Space::Cavity { n_fock: nf },
        hamiltonian: h,
        jumps,
        h_battery: identity(2),
        h_charger: identity(2),
        dephasing: 0.0,
        coupling: Arc::new(inter),
    }
}

#[test]
fn two_cells_agree_with_two_explicit_qubits_on_every_measure() {
    let nf = 5;
    let (wc, wa, g) = (1.0, 0.8, 0.2);
    for (coupling, kappa, gamma) in [("dicke", 0.0, 0.0), ("tavis-cummings", 0.15, 0.1), ("dicke", 0.1, 0.2)] {
        let cfg = format!("model = \"dicke\"\n[params]\nn_cells = 2\nn_fock = {nf}\nwc = {wc}\nwa = {wa}\ng = {g}\ncoupling = \"{coupling}\"\nkappa = {kappa}\ngamma = {gamma}\n[time]\ndt = 0.01\nt_end = 8.0\nsamples = 9\n");
        let (plan, r) = run(&cfg, Backend::Reference);
        let full = two_qubit_full(nf, wc, wa, g, kappa, gamma, coupling == "tavis-cummings");
        // |gg> (x) |2>
        let mut psi = vec![ZERO; 4 * (nf + 1)];
        psi[2] = ONE;
        let states = qbat_gpu::reference::integrate(&qbat_gpu::reference::LindbladRhs::new(&full), &projector(&psi), None, &plan.schedule);
        let hb = CMat::from_diagonal(&nalgebra::DVector::from_vec(vec![c(0.0, 0.0), c(wa, 0.0), c(wa, 0.0), c(2.0 * wa, 0.0)]));
        let a = kron(&identity(4), &destroy(nf));
        for (s, st) in states.iter().enumerate() {
            let q = trace_out_second(&st.rho, 4, nf + 1);
            let top = (0..4).map(|b| st.rho[(b * (nf + 1) + nf, b * (nf + 1) + nf)].re).sum::<f64>();
            let e0 = 0.0;
            let want = [
                (Measure::EnergyB, energy::energy(&q, &hb)),
                (Measure::StoredEnergyB, energy::energy(&q, &hb) - e0),
                (Measure::EnergyPerCell, energy::energy(&q, &hb) / 2.0),
                (Measure::ErgotropyB, energy::ergotropy(&q, &hb)),
                (Measure::AntiergotropyB, energy::antiergotropy(&q, &hb)),
                (Measure::CapacityB, energy::capacity(&q, &hb)),
                (Measure::EnergyVarianceB, energy::variance(&q, &hb)),
                (Measure::EntropyB, qbat_gpu::measures::coherence::entropy_bits(&q)),
                (Measure::Purity, re_trace_product(&st.rho, &st.rho)),
                (Measure::PhotonNumber, re_trace_product(&st.rho, &(a.adjoint() * &a))),
                (Measure::FockTail, top),
                (Measure::TraceError, (st.rho.trace().re - 1.0).abs()),
            ];
            for (m, w) in want {
                let got = r.value(0, s, col(&plan, m));
                assert!((got - w).abs() < 1e-10, "{coupling} kappa {kappa} gamma {gamma} t = {} {}: {got} vs {w}", st.t, m.name());
            }
            let pw = r.value(0, s, col(&plan, Measure::PowerB));
            assert!(s == 0 && pw == 0.0 || (pw - energy::energy(&q, &hb) / st.t).abs() < 1e-10);
        }
    }
}

#[test]
fn tavis_cummings_conserves_excitations_and_closed_runs_stay_pure() {
    for (coupling, cons) in [("tavis-cummings", true), ("dicke", false)] {
        let cfg = format!("model = \"dicke\"\n[params]\nn_cells = 3\nn_fock = 9\nwc = 1.0\nwa = {{ values = [0.9, 1.1] }}\ng = 0.2\ncoupling = \"{coupling}\"\nalpha = [1.0, 0.3]\ndicke_m = -0.5\n[time]\ndt = 0.005\nt_end = 10.0\nsamples = 11\n[output]\nmeasures = [\"energy_b\", \"photon_number\", \"purity\", \"trace_error\", \"min_eigenvalue\"]\n");
        let (plan, r) = run(&cfg, Backend::Reference);
        for i in 0..plan.members.len() {
            let wa = plan.points[plan.members[i].point]["wa"].clone();
            let ParamValue::Real(wa) = wa else { panic!() };
            let n0 = r.value(i, 0, 1) + r.value(i, 0, 0) / wa;
            for s in 0..r.times.len() {
                let n = r.value(i, s, 1) + r.value(i, s, 0) / wa;
                if cons {
                    assert!((n - n0).abs() < 1e-12, "excitations drift {} at t = {}", n - n0, r.times[s]);
                }
                // purity and positivity hold to RK4 truncation (dt = 0.005, 2,000 steps)
                assert!((r.value(i, s, 2) - 1.0).abs() < 1e-8, "{coupling}: purity {}", r.value(i, s, 2));
                assert!(
                    r.value(i, s, 3) < 1e-12 && r.value(i, s, 4) > -1e-7,
                    "{coupling}: trace error {} min eigenvalue {}",
                    r.value(i, s, 3),
                    r.value(i, s, 4)
                );
            }
            // the Dicke coupling's counter-rotating terms do not conserve it
            if !cons {
                let drift = (0..r.times.len()).map(|s| (r.value(i, s, 1) + r.value(i, s, 0) / wa - n0).abs()).fold(0.0, f64::max);
                assert!(drift > 1e-3, "dicke coupling conserved excitations ({drift})");
            }
        }
    }
}

/// A full-space `[initial]` state replaces the default start |N photons>, so a cutoff below
/// N holds it (it was refused, naming n_fock, whatever the state: with n_cells of 40 or more
/// the dimension limit left no full-space state at all). From (|k=1, n=0> + |k=0, n=1>)/sqrt 2
/// a closed Tavis-Cummings run keeps one excitation: photon_number + energy_b / wa = 1. A
/// cells-only state still starts the cavity at |N> and is refused there.
#[test]
fn a_full_space_state_needs_no_cutoff_for_the_default_photons() {
    let s = std::f64::consts::FRAC_1_SQRT_2;
    // index k (n_fock + 1) + n, n_fock = 1
    let mut ket = vec!["0.0".to_string(); 10];
    ket[2] = format!("{s}");
    ket[1] = format!("{s}");
    let cfg = format!("model = \"dicke\"\n[params]\nn_cells = 4\nn_fock = 1\nwa = 0.8\ncoupling = \"tavis-cummings\"\nkappa = 0.0\ngamma = 0.0\n[initial]\nket = [{}]\n[time]\ndt = 0.01\nt_end = 5.0\nsamples = 6\n[output]\nmeasures = [\"energy_b\", \"photon_number\"]\n", ket.join(", "));
    for backend in [Backend::Reference, Backend::Cpu] {
        let (plan, r) = run(&cfg, backend);
        let (e, n) = (col(&plan, Measure::EnergyB), col(&plan, Measure::PhotonNumber));
        let moved = (0..r.times.len()).map(|t| (r.value(0, t, n) - 0.5).abs()).fold(0.0, f64::max);
        assert!(moved > 0.1, "{backend:?}: the photon number stood still ({moved})");
        for t in 0..r.times.len() {
            let excitations = r.value(0, t, n) + r.value(0, t, e) / 0.8;
            assert!((excitations - 1.0).abs() < 1e-12, "{backend:?}: {excitations} excitations at t = {}", r.times[t]);
        }
    }
    let cells_only =
        "model = \"dicke\"\n[params]\nn_cells = 4\nn_fock = 1\n[initial]\nket = [1.0, 0.0, 0.0, 0.0, 0.0]\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 3\n";
    let r = crate::common::run_config_text(cells_only, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("params.n_fock") && r.stderr.contains("|4>"), "{}", r.stderr);
}

#[test]
fn default_state_is_ground_cells_and_n_photons() {
    let p = qbat_gpu::model::resolve_params(
        ModelKind::Dicke,
        &[("n_cells".to_string(), ParamValue::Real(3.0)), ("n_fock".to_string(), ParamValue::Real(5.0))].into_iter().collect(),
    )
    .unwrap();
    let rho = ModelKind::Dicke.default_state(&p, None).unwrap();
    assert_eq!(rho.nrows(), 4 * 6);
    // index k (n_fock + 1) + n with k = 0 (all cells in |g>), n = N = 3
    assert_eq!(rho[(3, 3)], ONE);
    assert!((rho.trace() - ONE).norm() == 0.0);
}

#[test]
fn models_and_measures_list_dicke() {
    let models = qbat_gpu::describe::models_text();
    for w in ["dicke", "n_cells", "tavis-cummings", "dicke_m", "photons", "J_z + N/2"] {
        assert!(models.contains(w), "{w}");
    }
    let measures = qbat_gpu::describe::measures_text();
    assert!(measures.lines().any(|l| l.starts_with("energy_per_cell") && l.contains("dicke")), "{measures}");
    assert!(measures.lines().any(|l| l.starts_with("concurrence") && l.contains("all but dicke")), "{measures}");
}

#[test]
fn bad_dicke_inputs_name_their_field() {
    let base = "model = \"dicke\"\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 3\n";
    let cases = [
        ("[params]\nn_cells = { values = [2, 3] }\n", "params.n_cells"),
        ("[params]\nn_cells = 4\nn_fock = 3\n", "params.n_fock"),
        ("[params]\nphotons = 7\nn_fock = 5\n", "params.photons"),
        ("[params]\nphotons = 1\nalpha = 0.5\n", "params.alpha"),
        ("[params]\ncoupling = \"rabi\"\n", "params.coupling"),
        ("[params]\nn_cells = 2\ndicke_m = 0.5\n", "params.dicke_m"),
        ("[params]\nn_cells = 0\n", "params.n_cells"),
        ("[initial]\nrandom = \"haar\"\n", "initial.random"),
        ("[output]\nmeasures = [\"concurrence\"]\n", "output.measures"),
        ("[params]\nn_cells = 16\nn_fock = 200\n", "params.n_fock"),
        ("[params]\nwc = 400.0\n", "time.dt"),
        ("[params]\ncoupling = 1.0\n", "params.coupling"),
        ("[params]\nn_cells = 1\ndicke_m = 0.5\n[initial]\nket = [1.0, 0.0]\n", "params.dicke_m"),
    ];
    for (extra, field) in cases {
        let text = base.replacen("[time]", &format!("{extra}[time]"), 1);
        let r = crate::common::run_config_text(&text, &[]);
        assert_eq!(r.code, 2, "{extra}: {}", r.stderr);
        assert!(r.stderr.contains(field), "{extra}: expected {field} in {}", r.stderr);
        assert!(!r.left_behind, "{extra}");
    }
}

#[test]
fn structured_engine_agrees_with_the_reference_and_verify_covers_it() {
    let cfgs = [
        // dissipative Dicke coupling, complex coherent start, cells in a Dicke state, drawn g
        "model = \"dicke\"\n[params]\nn_cells = 3\nn_fock = 7\nwc = 1.1\nwa = 0.9\ng = { uniform = [0.05, 0.4] }\nkappa = 0.1\ngamma = 0.07\nalpha = [0.7, -0.4]\ndicke_m = -0.5\n[time]\ndt = 0.01\nt_end = 4.0\nsamples = 9\n[ensemble]\nsize = 3\nseed = 5\n",
        // Tavis-Cummings, Fock start, switched off half way
        "model = \"dicke\"\n[params]\nn_cells = 4\nn_fock = 6\ng = { values = [0.2, 0.5] }\ncoupling = \"tavis-cummings\"\ngamma = 0.05\n[time]\ndt = 0.01\nt_end = 5.0\nsamples = 6\n[protocol]\nswitch_off = 2.345\n",
        // a mixed cell state from [initial] dm, tensored with |photons>
        "model = \"dicke\"\n[params]\nn_cells = 1\nn_fock = 4\nphotons = 2\ng = 0.3\nkappa = 0.2\n[initial]\ndm = [[[0.6, 0.0], [0.1, 0.2]], [[0.1, -0.2], [0.4, 0.0]]]\n[time]\ndt = 0.01\nt_end = 3.0\nsamples = 4\n",
    ];
    for cfg in cfgs {
        let plan = parse_plan(cfg, &Overrides::default()).unwrap();
        let fast = run_plan(&plan, &RunOptions { backend: Backend::Cpu, verify: 2, ..Default::default() }).unwrap();
        let (_, refr) = run(cfg, Backend::Reference);
        assert_eq!(fast.backend, "cpu");
        for (k, m) in plan.measures.iter().enumerate() {
            let worst = crate::common::worst_deviation(&fast, &refr, k);
            assert!(worst <= 1e-10, "{}: structured engine vs reference {worst:e}", m.name());
        }
        for (a, b) in fast.peaks.iter().zip(&refr.peaks) {
            assert!((a.max - b.max).abs() <= 1e-10 && a.t_max == b.t_max, "{a:?} vs {b:?}");
        }
        let v = fast.verify.as_ref().expect("verify ran");
        assert!(v.pass && !v.members.is_empty() && v.deviations.len() == plan.measures.len(), "{v:?}");
    }
}

#[test]
fn example_config_is_ten_thousand_members_and_its_members_verify() {
    let plan = parse_plan(include_str!("../examples/dicke.toml"), &Overrides::default()).unwrap();
    assert_eq!(plan.members.len(), 10_000);
    assert_eq!(plan.space, Space::Dicke { n_cells: 4, n_fock: 16 });
    // every member its own parameter point
    assert_eq!(plan.points.len(), 10_000);
    let mut slice = plan.slice(9_990..9_992);
    // the same steps over a shorter run
    slice.schedule = parse_plan("model = \"dicke\"\n[time]\ndt = 0.02\nt_end = 2.0\nsamples = 5\n", &Overrides::default()).unwrap().schedule;
    let r = run_plan(&slice, &RunOptions { backend: Backend::Cpu, verify: 2, ..Default::default() }).unwrap();
    assert!(r.verify.as_ref().unwrap().pass, "{:?}", r.verify);
}

#[test]
fn shards_of_a_dicke_run_merge_to_the_unsharded_run() {
    use crate::common::{bin, ok};
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("d.toml");
    std::fs::write(
        &cfg,
        "model = \"dicke\"\n[params]\nn_cells = 2\nn_fock = 5\ng = { linspace = [0.1, 0.4, 6] }\nkappa = 0.05\n[time]\ndt = 0.01\nt_end = 2.0\nsamples = 5\n",
    )
    .unwrap();
    let out = |name: &str| dir.path().join(name);
    let run = |extra: &[&str], name: &str| {
        ok(bin().arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--no-plots", "--out"]).arg(out(name)).args(extra))
    };
    run(&[], "full");
    run(&["--shard", "0/2"], "s0");
    run(&["--shard", "1/2"], "s1");
    ok(bin().arg("merge").arg(out("s0")).arg(out("s1")).arg("--no-plots").arg("--out").arg(out("merged")));
    for f in ["stats.csv", "summary.csv"] {
        let a = std::fs::read_to_string(out("full").join(f)).unwrap();
        let b = std::fs::read_to_string(out("merged").join(f)).unwrap();
        assert!(a.lines().count() > 2 && a == b, "{f} differs after merge");
    }
    // the Fock-tail flags and warning are the whole run's, not the first shard's
    let run_json = |name: &str| serde_json::from_slice::<serde_json::Value>(&std::fs::read(out(name).join("run.json")).unwrap()).unwrap();
    let (full, merged, first) = (run_json("full"), run_json("merged"), run_json("s0"));
    let flagged = |r: &serde_json::Value| r["fock_tail"]["flags"]["count"].as_u64().unwrap();
    assert!(flagged(&full) > flagged(&first) && flagged(&first) > 0, "{} {}", full["fock_tail"], first["fock_tail"]);
    assert_eq!(merged["fock_tail"], full["fock_tail"]);
    let warning = |r: &serde_json::Value| {
        r["notes"].as_array().unwrap().iter().filter(|n| n.as_str().unwrap().starts_with("fock_tail exceeds")).cloned().collect::<Vec<_>>()
    };
    assert!(warning(&full).len() == 1 && warning(&merged) == warning(&full), "{:?} {:?}", merged["notes"], full["notes"]);
}

#[test]
fn auto_fock_covers_the_tavis_cummings_excitations_and_the_coherent_tail() {
    let auto = Overrides { auto_fock: true, ..Default::default() };
    // Fock start |photons>, cells in |j, m>: at most photons + (cells excited) + N photons ever;
    // n_fock = photons + N + 2, and under Tavis-Cummings the top level is never populated.
    let cfg = "model = \"dicke\"\n[params]\nn_cells = 3\nphotons = 2\ndicke_m = 1.5\ng = 0.3\ncoupling = \"tavis-cummings\"\n[time]\ndt = 0.01\nt_end = 6.0\nsamples = 13\n[output]\nmeasures = [\"fock_tail\", \"photon_number\"]\n";
    let plan = parse_plan(cfg, &auto).unwrap();
    assert_eq!(plan.space, Space::Dicke { n_cells: 3, n_fock: 7 });
    let r = run_plan(&plan, &RunOptions { backend: Backend::Cpu, verify: 0, ..Default::default() }).unwrap();
    let most = (0..r.times.len()).map(|s| r.value(0, s, 1)).fold(0.0, f64::max);
    assert!(most > 2.5, "the cells gave photons to the cavity ({most})");
    assert!((0..r.times.len()).all(|s| r.value(0, s, 0).abs() < 1e-20));
    // coherent start: the smallest cutoff whose Poisson tail P(n >= c) is below 1e-12, + 2 + N
    let plan =
        parse_plan("model = \"dicke\"\n[params]\nn_cells = 5\nalpha = { values = [1.0, 2.5] }\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 2\n", &auto).unwrap();
    let Space::Dicke { n_fock, .. } = plan.space else { panic!() };
    let tail = |c: usize| {
        let mean: f64 = 6.25;
        1.0 - (0..c).map(|k| (-mean).exp() * mean.powi(k as i32) / (1..=k).map(|x| x as f64).product::<f64>()).sum::<f64>()
    };
    let c = n_fock - 2 - 5;
    assert!(tail(c) < 1e-12 && tail(c - 1) >= 1e-12, "cutoff {n_fock}: tails {} {}", tail(c), tail(c - 1));
}

/// The twin's state after `steps` RK4 steps of dt from the plan's member 0, unpacked.
fn twin_state<R: qbat_gpu::twin::Real>(plan: &Plan, parity_only: bool, steps: usize, dt: f64) -> CMat {
    use qbat_gpu::engine::dicke::{dicke_coeffs, pack_state};
    use qbat_gpu::twin::rk4_dicke::{DickeOps, DickeWork};
    let coeffs = dicke_coeffs(&plan.points[plan.members[0].point]).unwrap();
    let ops = DickeOps::<R>::new(&coeffs, parity_only);
    let mut x = pack_state::<R>(&plan.initial_state(&plan.members[0]));
    let mut w = DickeWork::new(ops.n_packed());
    for _ in 0..steps {
        w.step(&ops, &mut x, dt);
    }
    let x64: Vec<_> = x.iter().map(|z| qbat_gpu::twin::rk4_cavity::Cx::new(z.re.to_f64(), z.im.to_f64())).collect();
    qbat_gpu::engine::dicke::unpack_state(&x64, coeffs.dim())
}

/// The reference's state after `steps` steps of dt from member 0.
fn reference_state(plan: &Plan, steps: usize, dt: f64) -> CMat {
    let sys = &plan.systems[plan.members[0].point];
    let sched = qbat_gpu::job::Schedule::new(dt, &[steps as f64 * dt]);
    let st = qbat_gpu::reference::integrate(&qbat_gpu::reference::LindbladRhs::new(sys), &plan.initial_state(&plan.members[0]), None, &sched);
    st.last().unwrap().rho.clone()
}

fn max_diff(a: &CMat, b: &CMat) -> f64 {
    (a - b).iter().map(|z| crate::common::deviation(z.norm(), 0.0)).fold(0.0, f64::max)
}

#[test]
fn parity_superselection_holds_and_the_structured_twin_uses_it_only_where_valid() {
    use qbat_gpu::job::dicke::{parity, parity_definite};
    let (steps, dt) = (300, 0.01);
    let base = "model = \"dicke\"\n[params]\nn_cells = 3\nn_fock = 6\nwc = 1.1\nwa = 0.9\ng = 0.35\nkappa = 0.15\ngamma = 0.1\n";
    for coupling in ["dicke", "tavis-cummings"] {
        // Fock and Dicke starts (parity-definite), a coherent start (parity-mixed)
        for (start, definite) in [("photons = 3\n", true), ("photons = 2\ndicke_m = 0.5\n", true), ("alpha = [0.8, 0.3]\n", false)] {
            let cfg = format!("{base}coupling = \"{coupling}\"\n{start}[time]\ndt = {dt}\nt_end = 3.0\nsamples = 2\n");
            let plan = parse_plan(&cfg, &Overrides::default()).unwrap();
            let rho0 = plan.initial_state(&plan.members[0]);
            assert_eq!(parity_definite(&rho0, 6), definite, "{coupling} {start}");
            let want = reference_state(&plan, steps, dt);
            // the claim, on the reference: a parity-definite start keeps every cross-parity
            // entry at 0 under both couplings and both dissipators
            let cross = (0..want.nrows())
                .flat_map(|i| (0..want.nrows()).map(move |j| (i, j)))
                .filter(|&(i, j)| parity(i, 6) != parity(j, 6))
                .map(|(i, j)| want[(i, j)].norm())
                .fold(0.0, f64::max);
            if definite {
                assert!(cross < 1e-15, "{coupling} {start}: cross-parity entry {cross:e}");
            } else {
                assert!(cross > 1e-3, "{coupling} {start}: the coherent start should mix parities ({cross:e})");
            }
            // the structured twin in f64: the general path always, the parity path where valid
            let general = twin_state::<f64>(&plan, false, steps, dt);
            assert!(max_diff(&general, &want) < 1e-10, "{coupling} {start}: general path {:e}", max_diff(&general, &want));
            let fast = twin_state::<f64>(&plan, true, steps, dt);
            let dev = max_diff(&fast, &want);
            if definite {
                assert!(dev < 1e-10, "{coupling} {start}: parity path {dev:e}");
            } else {
                assert!(dev > 1e-3, "{coupling} {start}: the parity path must not fit a parity-mixed state ({dev:e})");
            }
            // in f32 the same loops, to f32 rounding
            let f32s = twin_state::<f32>(&plan, definite, steps, dt);
            assert!(max_diff(&f32s, &want) < 2e-5, "{coupling} {start}: f32 twin {:e}", max_diff(&f32s, &want));
        }
    }
}

#[test]
fn the_batched_cpu_engine_gives_every_member_the_bits_of_its_own_one_member_run() {
    use qbat_gpu::job::dicke::parity_definite;
    // 10 members, 5 parity-definite (alpha = 0, the vacuum) and 5 not: each parity path has
    // a full batch of 4 and a batch of 1 with spare lanes
    let gs = [0.1, 0.17, 0.25, 0.33, 0.4];
    let body = |g: &str, alpha: &str| {
        format!("model = \"dicke\"\n[params]\nn_cells = 2\nn_fock = 5\nwc = 1.05\nwa = 0.95\ng = {g}\nalpha = {alpha}\ncoupling = \"dicke\"\nkappa = 0.1\ngamma = 0.05\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 5\n[output]\nmeasures = [\"energy_b\", \"ergotropy_b\", \"purity\", \"photon_number\"]\n")
    };
    let g_list = format!("{{ values = [{}] }}", gs.map(|g| g.to_string()).join(", "));
    let (plan, all) = run(&body(&g_list, "{ values = [0.0, 0.6] }"), Backend::Cpu);
    assert_eq!(all.backend, "cpu");
    assert_eq!(plan.members.len(), 10);
    let definite: Vec<bool> = plan.members.iter().map(|m| parity_definite(&plan.initial_state(m), 5)).collect();
    assert_eq!(definite.iter().filter(|&&d| d).count(), 5, "{definite:?}");
    let column = |name: &str| plan.param_columns.iter().position(|c| c == name).unwrap();
    let (cg, ca) = (column("g"), column("alpha"));
    for (i, m) in plan.members.iter().enumerate() {
        let (g, alpha) = (m.param_values[cg], m.param_values[ca]);
        let (one_plan, one) = run(&body(&g.to_string(), &alpha.to_string()), Backend::Cpu);
        assert_eq!(one_plan.members.len(), 1);
        for s in 0..plan.schedule.times.len() {
            for k in 0..plan.measures.len() {
                let (a, b) = (all.value(i, s, k), one.value(0, s, k));
                assert!(
                    a.to_bits() == b.to_bits(),
                    "member {i} (g {g}, alpha {alpha}), sample {s}, {}: {a:e} in the ensemble, {b:e} alone",
                    plan.measures[k].name()
                );
            }
        }
        assert_eq!(&all.peaks[4 * i..4 * i + 4], &one.peaks[..]);
    }
    // the members differ, so a mix-up of lanes or of the order would show
    let last = plan.schedule.times.len() - 1;
    assert!(all.value(0, last, 0) != all.value(1, last, 0));
    assert!(all.value(0, last, 0) != all.value(5, last, 0));
}

#[test]
fn a_parity_mixed_start_is_refused_on_the_parity_path() {
    use qbat_gpu::engine::dicke::dicke_batch;
    use qbat_gpu::twin::rk4_dicke::DickeGathers;
    let cfg = "model = \"dicke\"\n[params]\nn_cells = 2\nn_fock = 5\ng = 0.2\nalpha = { values = [0.0, 0.6] }\n[time]\ndt = 0.01\nt_end = 0.1\nsamples = 2\n";
    let plan = parse_plan(cfg, &Overrides::default()).unwrap();
    let parity = DickeGathers::new(2, 5, true);
    let full = DickeGathers::new(2, 5, false);
    let (vacuum, coherent) = (&plan.members[0], &plan.members[1]);
    assert!(dicke_batch(&plan, &parity, &[vacuum], &qbat_gpu::twin::never_stop).is_ok());
    assert!(dicke_batch(&plan, &parity, &[vacuum, coherent], &qbat_gpu::twin::never_stop).is_err());
    assert!(dicke_batch(&plan, &full, &[vacuum, coherent], &qbat_gpu::twin::never_stop).is_ok());
}

/// A dicke run whose cutoff loses population warns, as a cavity-cells run does: the warning is
/// said (stderr, run.json notes) exactly where the run's own fock_tail, read back from
/// stats.csv, passed the threshold. N = 4 cells with the counter-rotating coupling at g = 1
/// pump photons well past n_fock = 5; at g = 0.01 and n_fock = 12 the top level stays empty.
#[test]
fn a_dicke_cutoff_that_loses_population_is_warned() {
    let dir = tempfile::tempdir().unwrap();
    let mut sides = vec![];
    for (g, n_fock) in [(1.0, 5), (0.01, 12)] {
        let text = format!("model = \"dicke\"\n[params]\nn_fock = {n_fock}\ng = {g}\n[time]\ndt = 0.001\nt_end = 2.0\nsamples = 5\n[ensemble]\nsize = 1\n");
        let cfg = crate::common::config(dir.path(), &text);
        let out = dir.path().join(format!("o{n_fock}"));
        let o = crate::common::bin()
            .arg("run")
            .arg(&cfg)
            .args(["--backend", "cpu", "--no-progress", "--no-plots", "--verify", "0", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let stats = std::fs::read_to_string(out.join("stats.csv")).unwrap();
        let header: Vec<&str> = stats.lines().next().unwrap().split(',').collect();
        let (km, kx) = (header.iter().position(|h| *h == "measure").unwrap(), header.iter().position(|h| *h == "max").unwrap());
        let largest = stats
            .lines()
            .skip(1)
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f[km] == "fock_tail")
            .map(|f| f[kx].parse::<f64>().unwrap())
            .fold(0.0, f64::max);
        let run_json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
        let noted = run_json["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().starts_with("fock_tail exceeds 1e-6"));
        let said = String::from_utf8_lossy(&o.stderr).contains("WARNING: fock_tail exceeds 1e-6");
        assert_eq!((noted, said), (largest > 1e-6, largest > 1e-6), "g = {g}, n_fock = {n_fock}: largest fock_tail {largest:e}");
        sides.push(largest > 1e-6);
    }
    assert_eq!(sides, [true, false], "both sides of the threshold are taken");
}
