//! The models' operators and the RK4 stability check. The cavity-cells and dicke Hamiltonians
//! are built factor by factor (a product of Kronecker products is the Kronecker product of the
//! factors' products); here they are built again with dense products of the full matrices, as
//! the physics writes them, and must agree bit for bit. The entries' bound on the generator's
//! spectral radius must lie above the eigen-solved one, and the stability check must decide
//! as the eigen-solved bound does right at the limit.

use qbat_gpu::config::{parse_plan, Overrides, RK4_STABILITY};
use qbat_gpu::linalg::{c, identity, kron, sigma_minus, sigma_plus, sigma_x, sigma_y, sigma_z, CMat};
use qbat_gpu::model::{resolve_params, Jump, ModelKind, OpenSystem, ParamValue, Params, Space};
use rand::{Rng, SeedableRng};
use std::sync::Arc;

fn params(given: &[(&str, f64)], text: &[(&str, &str)]) -> Params {
    let mut p: Params = given.iter().map(|(k, v)| (k.to_string(), ParamValue::Real(*v))).collect();
    for (k, v) in text {
        p.insert(k.to_string(), ParamValue::Text(v.to_string()));
    }
    p
}

fn build(kind: ModelKind, p: &Params) -> OpenSystem {
    kind.build(&resolve_params(kind, p).unwrap()).unwrap()
}

/// a|n> = sqrt(n)|n-1> on |0>..|N>
fn annihilation(n: usize) -> CMat {
    CMat::from_fn(n + 1, n + 1, |i, j| if j == i + 1 { c((j as f64).sqrt(), 0.0) } else { c(0.0, 0.0) })
}

/// Every entry the same float, zeros' signs included.
fn assert_same_bits(got: &CMat, want: &CMat, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}");
    for (k, (a, b)) in got.iter().zip(want.iter()).enumerate() {
        assert!(a.re.to_bits() == b.re.to_bits() && a.im.to_bits() == b.im.to_bits(), "{what}: entry {k}: {a} against {b}");
    }
}

#[test]
fn cavity_cells_operators_match_dense_products() {
    for n in [1usize, 3, 20] {
        // signs of every coefficient, and -0 (a zero's sign survives some products)
        for (lambda, zeta, g, wc, wq) in [(0.7, 0.3, 0.2, 1.1, 0.9), (-1.3, -1.0, -0.5, -0.4, -2.0), (1.0, 1.0, 0.0, 0.0, 1.0), (-0.0, 0.0, -0.0, -0.0, -0.0)] {
            let p = params(&[("n_fock", n as f64), ("lambda", lambda), ("zeta", zeta), ("g", g), ("wc", wc), ("wq", wq), ("kappa", 0.1), ("gamma", 0.05)], &[]);
            let sys = build(ModelKind::CavityCells, &p);
            // index (2 i_1 + i_2)(N + 1) + n: cell 1 (x) cell 2 (x) cavity
            let (i2, ic) = (identity(2), identity(n + 1));
            let tri = |x: &CMat, y: &CMat, z: &CMat| kron(&kron(x, y), z);
            let a = tri(&i2, &i2, &annihilation(n));
            let ad = a.adjoint();
            let sp1 = tri(&sigma_plus(), &i2, &ic);
            let sm1 = tri(&sigma_minus(), &i2, &ic);
            let coupling =
                tri(&sigma_x(), &sigma_x(), &ic) * c((1.0 + zeta) * g / 2.0, 0.0) + tri(&sigma_y(), &sigma_y(), &ic) * c((1.0 - zeta) * g / 2.0, 0.0);
            let pump = (&sp1 * &a + &sm1 * &ad) * c(lambda, 0.0);
            let sz = tri(&sigma_z(), &i2, &ic) + tri(&i2, &sigma_z(), &ic);
            let h = &ad * &a * c(wc, 0.0) + sz * c(wq / 2.0, 0.0) + pump + &coupling;
            let what = format!("n_fock {n}, lambda {lambda}, zeta {zeta}, g {g}, wc {wc}, wq {wq}");
            assert_same_bits(&sys.hamiltonian, &h, &format!("H, {what}"));
            assert_same_bits(&sys.coupling, &coupling, &format!("coupling, {what}"));
            let jumps = [a, sm1, tri(&i2, &sigma_minus(), &ic)];
            assert_eq!(sys.jumps.len(), 3);
            for (j, want) in sys.jumps.iter().zip(&jumps) {
                assert_same_bits(&j.op, want, &format!("jump, {what}"));
            }
        }
    }
}

#[test]
fn dicke_operators_match_dense_products() {
    for (cells, nf) in [(1usize, 1usize), (4, 6), (7, 12)] {
        for (coupling, (wc, wa, g)) in
            ["dicke", "tavis-cummings"].into_iter().flat_map(|k| [(1.2, 0.8, -0.35), (-0.7, -1.5, 0.6), (-0.0, 0.0, -0.0)].map(|v| (k, v)))
        {
            let p = params(
                &[("n_cells", cells as f64), ("n_fock", nf as f64), ("wc", wc), ("wa", wa), ("g", g), ("kappa", 0.1), ("gamma", 0.02)],
                &[("coupling", coupling)],
            );
            let sys = build(ModelKind::Dicke, &p);
            // J_+ |k> = sqrt((k + 1)(N - k)) |k + 1> on the N + 1 symmetric states
            let j_plus = CMat::from_fn(cells + 1, cells + 1, |i, j| if i == j + 1 { c((((j + 1) * (cells - j)) as f64).sqrt(), 0.0) } else { c(0.0, 0.0) });
            let (ic, ia) = (identity(cells + 1), identity(nf + 1));
            let a = kron(&ic, &annihilation(nf));
            let ad = a.adjoint();
            let jp = kron(&j_plus, &ia);
            let jm = jp.adjoint();
            let want_coupling = if coupling == "tavis-cummings" { (&jp * &a + &jm * &ad) * c(g, 0.0) } else { (&jp + &jm) * (&a + &ad) * c(g, 0.0) };
            let excited = CMat::from_fn(cells + 1, cells + 1, |i, j| if i == j { c(i as f64, 0.0) } else { c(0.0, 0.0) });
            let h = &ad * &a * c(wc, 0.0) + kron(&excited, &ia) * c(wa, 0.0) + &want_coupling;
            let what = format!("N {cells}, n_fock {nf}, {coupling}, wc {wc}, wa {wa}, g {g}");
            assert_same_bits(&sys.hamiltonian, &h, &format!("H, {what}"));
            assert_same_bits(&sys.coupling, &want_coupling, &format!("coupling, {what}"));
            assert_eq!(sys.jumps.len(), 2);
            assert_same_bits(&sys.jumps[0].op, &a, &format!("a, {what}"));
            assert_same_bits(&sys.jumps[1].op, &jm, &format!("J_-, {what}"));
        }
    }
}

fn random_matrix(rng: &mut impl Rng, n: usize, scale: f64) -> CMat {
    CMat::from_fn(n, n, |_, _| if rng.random_range(0..3) == 0 { c(0.0, 0.0) } else { c(rng.random_range(-scale..scale), rng.random_range(-scale..scale)) })
}

/// A system of H and jumps alone (the bounds read nothing else).
fn system(hamiltonian: CMat, jumps: Vec<Jump>) -> OpenSystem {
    let n = hamiltonian.nrows();
    OpenSystem {
        space: Space::TwoQubit,
        hamiltonian,
        jumps,
        h_battery: identity(2),
        h_charger: identity(2),
        dephasing: 0.0,
        coupling: Arc::new(CMat::zeros(n, n)),
    }
}

#[test]
fn entry_bound_lies_above_the_eigen_solved_bound() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    for case in 0..300 {
        let n = rng.random_range(1..24);
        let scale = 10f64.powi(rng.random_range(-3..4));
        let m = random_matrix(&mut rng, n, scale);
        // Hermitian, or Hermitian but for rounding-size anti-Hermitian parts, or diagonal
        // (where Gershgorin is exact), or a large multiple of 1 plus a little
        let mut h = (&m + m.adjoint()) * c(0.5, 0.0);
        match case % 4 {
            1 => h += random_matrix(&mut rng, n, 1e-17 * scale),
            2 => h = CMat::from_diagonal(&h.diagonal()),
            3 => h += identity(n) * c(1e6 * scale, 0.0),
            _ => {}
        }
        let jumps = (0..rng.random_range(0..3)).map(|_| Jump { op: Arc::new(random_matrix(&mut rng, n, 1.0)), rate: rng.random_range(0.0..2.0) }).collect();
        let sys = system(h, jumps);
        let (entry, exact) = (sys.generator_norm_entry_bound(), sys.generator_norm_bound());
        assert!(exact.is_finite() && entry >= exact, "case {case}: entry bound {entry} below {exact}");
    }
    // where the entries' bound is tight, only its margin keeps it above the eigen-solved
    // one's rounding: [[a, b], [b, a]] far from 0 (spread 2|b|, both ways), and the all-ones
    // L (||L||^2 = n^2 = ||L||_1 ||L||_inf)
    for case in 0..300 {
        let n = rng.random_range(2..30);
        let (a, b) = (rng.random_range(-1.0..1.0) * 10f64.powi(rng.random_range(0..9)), rng.random_range(-1.0..1.0));
        let h = CMat::from_fn(2, 2, |i, j| c(if i == j { a } else { b }, 0.0));
        let ones = Jump { op: Arc::new(CMat::from_element(n, n, c(1.0, 0.0))), rate: 1.0 };
        for sys in [system(h, vec![]), system(identity(n), vec![ones])] {
            let (entry, exact) = (sys.generator_norm_entry_bound(), sys.generator_norm_bound());
            assert!(entry >= exact, "tight case {case}: entry bound {entry} below {exact}");
        }
    }
    // a non-finite entry leaves no finite bound
    let mut h = identity(3);
    h[(0, 1)] = c(f64::NAN, 0.0);
    assert!(!system(h, vec![]).generator_norm_entry_bound().is_finite());
}

/// Right at the limit the entries' bound (larger) cannot settle the check: a dt a millionth
/// inside the eigen-solved limit must still pass, and one a millionth beyond it be refused.
#[test]
fn stability_decides_at_the_eigen_solved_limit() {
    for (model, section, entries) in [
        (
            "cavity-cells",
            "n_fock = 4\nlambda = 0.8\ng = 0.3\nkappa = 0.2\ngamma = 0.1\n",
            vec![("n_fock", 4.0), ("lambda", 0.8), ("g", 0.3), ("kappa", 0.2), ("gamma", 0.1)],
        ),
        ("dicke", "n_cells = 3\nn_fock = 4\ng = 0.3\nkappa = 0.1\n", vec![("n_cells", 3.0), ("n_fock", 4.0), ("g", 0.3), ("kappa", 0.1)]),
    ] {
        let kind = ModelKind::from_name(model).unwrap();
        let sys = build(kind, &params(&entries, &[]));
        let (exact, entry) = (sys.generator_norm_bound(), sys.generator_norm_entry_bound());
        assert!(entry * (1.0 - 1e-6) > exact, "{model}: the entries' bound {entry} is not above {exact}, so this test would not reach the eigen-solve");
        for (factor, passes) in [(1.0 - 1e-6, true), (1.0 + 1e-6, false)] {
            let dt = RK4_STABILITY / exact * factor;
            let cfg = format!("model = \"{model}\"\n[params]\n{section}[time]\ndt = {dt:?}\nt_end = {:?}\nsamples = 2\n", 4.0 * dt);
            let got = parse_plan(&cfg, &Overrides::default());
            assert_eq!(got.is_ok(), passes, "{model}, dt = {dt}: {:?}", got.err().map(|e| e.to_string()));
            if let Err(e) = got {
                assert!(e.to_string().contains("time.dt"), "{e}");
            }
        }
    }
}

/// A sweep refused at two points reports the first, with its own bound (the points are checked
/// in parallel), and a driven point right at the limit the refusal names (its bound plus the
/// drives') passes just inside it and is refused just beyond.
#[test]
fn refusals_name_the_first_point_and_drives_decide_at_their_limit() {
    let base = |lambdas: &str, dt: f64| {
        format!("model = \"cavity-cells\"\n[params]\nn_fock = 4\nkappa = 0.1\nlambda = {{ values = [{lambdas}] }}\n[time]\ndt = {dt:?}\nt_end = {:?}\nsamples = 2\n", 4.0 * dt)
    };
    let bound = |lambda: f64| build(ModelKind::CavityCells, &params(&[("n_fock", 4.0), ("kappa", 0.1), ("lambda", lambda)], &[])).generator_norm_bound();
    let (b1, b3) = (bound(50.0), bound(80.0));
    assert!(b3 > b1 * 1.1 && b1 > 2.0 * bound(0.2));
    // dt refused by lambda = 50 and 80 only
    let dt = RK4_STABILITY / b1 * 1.05;
    for _ in 0..5 {
        let err = parse_plan(&base("0.1, 50.0, 0.2, 80.0", dt), &Overrides::default()).expect_err("refused").to_string();
        assert!(err.contains(&format!("up to {b1:.4e}")), "{err}");
    }
    assert!(parse_plan(&base("0.1, 0.2", dt), &Overrides::default()).is_ok());
    // the first point refused (it is built before the rest)
    let err = parse_plan(&base("50.0, 0.1, 80.0", dt), &Overrides::default()).expect_err("refused").to_string();
    assert!(err.contains(&format!("up to {b1:.4e}")), "{err}");
    // a driven point: the refusal of a dt the undriven generator allows says how far dt may go
    let driven = |dt: f64| {
        format!("model = \"cavity-cells\"\n[params]\nn_fock = 4\nalpha = 0.5\n[time]\ndt = {dt:?}\nt_end = {:?}\nsamples = 2\n[[drive]]\noperator = \"x_a\"\namplitude = 30.0\nfrequency = 1.0\n", 4.0 * dt)
    };
    let err = parse_plan(&driven(0.1), &Overrides::default()).expect_err("refused").to_string();
    let limit: f64 = err.split("dt must be <= ").nth(1).and_then(|t| t.trim().parse().ok()).unwrap_or_else(|| panic!("no limit in: {err}"));
    // (the limit is printed to 5 digits)
    assert!(parse_plan(&driven(limit * (1.0 - 1e-4)), &Overrides::default()).is_ok(), "{limit}");
    let beyond = parse_plan(&driven(limit * (1.0 + 1e-4)), &Overrides::default()).expect_err("refused").to_string();
    assert!(beyond.contains("time.dt") && beyond.contains("drives"), "{beyond}");
}

/// The points of a sweep share the first point's jump operators and coupling where theirs are
/// the same matrices, and keep their own where not: a lambda sweep shares all of them, a g
/// sweep only the jumps (its coupling is g's), and a kappa sweep from 0 (whose first point has
/// no cavity jump) the cells' jumps, each the same one wherever it sits in the list.
#[test]
fn sweep_points_share_equal_operators_only() {
    for (swept, values, coupling_shared) in [("lambda", "0.3, 0.6, 0.9", true), ("g", "0.3, 0.6, 0.9", false), ("kappa", "0.0, 0.1, 0.2", true)] {
        let rates = if swept == "kappa" { "gamma = 0.2\n" } else { "kappa = 0.1\ngamma = 0.2\n" };
        let cfg = format!(
            "model = \"cavity-cells\"\n[params]\nn_fock = 3\n{rates}{swept} = {{ values = [{values}] }}\n[time]\ndt = 0.01\nt_end = 0.04\nsamples = 2\n"
        );
        let plan = parse_plan(&cfg, &Overrides::default()).unwrap();
        let (first, systems) = (&plan.systems[0], &plan.systems);
        assert_eq!(systems.len(), 3);
        for (i, sys) in systems.iter().enumerate().skip(1) {
            // the operators as the point alone builds them
            let own = build(ModelKind::CavityCells, &plan.points[i]);
            assert_same_bits(&sys.hamiltonian, &own.hamiltonian, &format!("{swept} point {i}: H"));
            assert_same_bits(&sys.coupling, &own.coupling, &format!("{swept} point {i}: coupling"));
            assert_eq!(Arc::ptr_eq(&sys.coupling, &first.coupling), coupling_shared, "{swept} point {i}: coupling");
            assert_eq!(sys.jumps.len(), own.jumps.len());
            for (k, (j, o)) in sys.jumps.iter().zip(&own.jumps).enumerate() {
                assert_same_bits(&j.op, &o.op, &format!("{swept} point {i}: jump {k}"));
                assert_eq!(j.rate, o.rate);
                // shared exactly when the first point has the same matrix
                let in_first = first.jumps.iter().any(|f| f.op.iter().zip(o.op.iter()).all(|(x, y)| x == y) && f.op.shape() == o.op.shape());
                assert_eq!(first.jumps.iter().any(|f| Arc::ptr_eq(&f.op, &j.op)), in_first, "{swept} point {i}: jump {k}");
            }
        }
        if swept == "kappa" {
            // the cavity jump (first in the list) is each point's own; the cells' are shared
            assert!(systems[1].jumps.len() == 3 && first.jumps.len() == 2);
            assert!(!Arc::ptr_eq(&systems[1].jumps[0].op, &systems[2].jumps[0].op));
        }
    }
}
