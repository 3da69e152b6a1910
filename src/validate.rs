//! `qbat-gpu validate`: the closed-form checks of docs/physics.md, each run through the normal
//! pipeline on the chosen backend and compared with the papers' formulas and tables.

use crate::config::{parse_plan, Overrides, Plan};
use crate::error::Result;
use crate::measures::Measure;
use crate::run::{run_plan, Backend, Precision, RunOptions, RunResult};

#[derive(Clone, Debug, serde::Serialize)]
pub struct Check {
    pub group: &'static str,
    pub name: String,
    pub expected: f64,
    pub got: f64,
    pub tolerance: f64,
}

impl Check {
    pub fn pass(&self) -> bool {
        (self.got - self.expected).abs() <= self.tolerance
    }
}

/// |got - expected| for folding into a worst case with `f64::max`, with a non-finite `got` (or
/// a NaN difference) as an infinite deviation: `f64::max` drops NaN, so an engine that returned
/// NaN everywhere would otherwise fold to a worst case of 0 and pass.
fn dev(got: f64, expected: f64) -> f64 {
    let d = (got - expected).abs();
    if got.is_finite() && !d.is_nan() {
        d
    } else {
        f64::INFINITY
    }
}

/// A finished run and the plan it came from.
pub struct Ran {
    pub plan: Plan,
    pub result: RunResult,
}

impl Ran {
    fn col(&self, m: Measure) -> usize {
        self.result.measures.iter().position(|x| *x == m).expect("measure requested")
    }
    /// Value of measure m for member i at sample s.
    pub fn v(&self, i: usize, s: usize, m: Measure) -> f64 {
        self.result.value(i, s, self.col(m))
    }
}

/// Run a check's config on the engine, precision and adapter of `on`, with no `--verify` (the
/// checks compare with closed forms).
pub fn run_config(text: &str, on: &RunOptions) -> Result<Ran> {
    let plan = parse_plan(text, &Overrides::default())?;
    let result = run_plan(&plan, &RunOptions { verify: 0, ..on.clone() })?;
    Ok(Ran { plan, result })
}

/// Tolerance for a check: the f64 one on f64 engines, a looser one for f32 GPU runs.
fn tol(on: &RunOptions, f64_tol: f64, f32_tol: f64) -> f64 {
    if on.precision == Precision::F32 && matches!(on.backend, Backend::Gpu | Backend::Auto) {
        f32_tol.max(f64_tol)
    } else {
        f64_tol
    }
}

/// Paper 000, Table I: capacity_b = 2 wb |cos(2 j1 t)| at the tabulated times.
pub fn paper000_table1(on: &RunOptions) -> Result<Vec<Check>> {
    let times: [f64; 5] = [5.005, 10.01, 15.02, 20.02, 25.03];
    let table = [1.0789, 0.8359, 1.9811, 1.3012, 0.5788];
    let cfg = format!(
        "model = \"spin-pair\"\n[params]\nwb = 1.0\nwc = 1.0\nj1 = 0.1\nj2 = 0.1\n[time]\ndt = 0.005\ntimes = {times:?}\n[output]\nmeasures = [\"capacity_b\"]\n"
    );
    let ran = run_config(&cfg, on)?;
    let mut out = vec![];
    for (s, (&t, &tab)) in times.iter().zip(&table).enumerate() {
        let got = ran.v(0, s, Measure::CapacityB);
        out.push(Check { group: "paper 000 Table I", name: format!("capacity_b(t={t}) vs table"), expected: tab, got, tolerance: 6e-5 + tol(on, 0.0, 1e-4) });
        let closed = 2.0 * (2.0 * 0.1 * t).cos().abs();
        out.push(Check {
            group: "paper 000 Table I",
            name: format!("capacity_b(t={t}) vs 2|cos 2 j1 t|"),
            expected: closed,
            got,
            tolerance: tol(on, 1e-9, 2e-4),
        });
    }
    Ok(out)
}

/// Paper 000, theorems: relations between capacity and the resources along |eg>'s evolution.
pub fn paper000_relations(on: &RunOptions) -> Result<Vec<Check>> {
    let cfg = "model = \"spin-pair\"\n[params]\nwb = 1.0\nwc = 1.0\nj1 = 0.1\nj2 = 0.1\n[time]\ndt = 0.01\nt_end = 30.0\nsamples = 61\n[output]\nmeasures = [\"capacity_b\", \"capacity_c\", \"capacity_total\", \"residual_capacity\", \"concurrence\", \"steering_f3\", \"bell_chsh\", \"coherence_l1\"]\n";
    let ran = run_config(cfg, on)?;
    let sys = &ran.plan.systems[0];
    let eps = crate::linalg::eigvals_hermitian(&sys.hamiltonian);
    let spread = eps[3] - eps[0];
    let (wb, wc) = (1.0, 1.0);
    let mut worst = [0.0f64; 5];
    for s in 0..ran.result.times.len() {
        let e = ran.v(0, s, Measure::Concurrence);
        let root = (1.0 - e * e).max(0.0).sqrt();
        let devs = [
            ran.v(0, s, Measure::CapacityB) - 2.0 * wb * root,
            ran.v(0, s, Measure::SteeringF3) - 2.0 * e * e,
            ran.v(0, s, Measure::BellChsh) - (2.0 * (1.0 + e * e).sqrt() - 2.0),
            ran.v(0, s, Measure::CoherenceL1) - e,
            ran.v(0, s, Measure::ResidualCapacity) - (spread - 2.0 * (wb + wc) * root),
        ];
        for (w, d) in worst.iter_mut().zip(devs) {
            *w = w.max(dev(d, 0.0));
        }
    }
    let names = [
        "capacity_b = 2 wb sqrt(1 - E^2)",
        "steering_f3 = 2 E^2",
        "bell_chsh = 2 sqrt(1 + E^2) - 2",
        "coherence_l1 = E",
        "residual_capacity = eps_max - eps_min - 2(wb + wc) sqrt(1 - E^2)",
    ];
    // Concurrence-derived relations are compared more loosely (sqrt sensitivity near E = 0).
    Ok(names
        .iter()
        .zip(worst)
        .map(|(n, w)| Check { group: "paper 000 theorems", name: format!("max |dev| of {n}"), expected: 0.0, got: w, tolerance: tol(on, 1e-8, 2e-3) })
        .collect())
}

/// Paper 002, eq. 8: steady-state energies of the driven pair at delta = T = 0, k = f/g, l = gamma/g.
pub fn paper002_steady_state(on: &RunOptions) -> Result<Vec<Check>> {
    let cases = [(1.0, 1.0), (0.5, 2.0), (2.0, 1.0), (1.0, 3.0)];
    let mut out = vec![];
    for (k, l) in cases {
        let (eb, ec) = eq8(k, l);
        // Relax for 60 decay times of the slowest rate ~ l/2 (at least t = 200).
        let t_end = (120.0 / l).max(200.0);
        let cfg = format!(
            "model = \"driven-pair\"\n[params]\ng = 1.0\nf = {k}\ngamma = {l}\nn_th = 0.0\ndelta = 0.0\n[time]\ndt = 0.01\nt_end = {t_end}\nsamples = 2\n[output]\nmeasures = [\"energy_b\", \"energy_c\"]\n"
        );
        let ran = run_config(&cfg, on)?;
        let tl = tol(on, 1e-7, 2e-4);
        out.push(Check {
            group: "paper 002 eq. 8",
            name: format!("steady energy_b (k={k}, l={l})"),
            expected: eb,
            got: ran.v(0, 1, Measure::EnergyB),
            tolerance: tl,
        });
        out.push(Check {
            group: "paper 002 eq. 8",
            name: format!("steady energy_c (k={k}, l={l})"),
            expected: ec,
            got: ran.v(0, 1, Measure::EnergyC),
            tolerance: tl,
        });
    }
    Ok(out)
}

/// Paper 002 eq. 8 again, from the Liouvillian null space (`[time] steady = true`, src/steady.rs)
/// instead of a long integration: the largest relative deviation of energy_b and energy_c over a
/// 4x4 (k, l) grid, and the largest residual ||L rho||_F. Steady states are always solved on the
/// CPU in f64, whatever the backend, so the tolerances are the f64 ones.
pub fn paper002_steady_null_space(on: &RunOptions) -> Result<Vec<Check>> {
    let ks = [0.5, 1.0, 2.0, 3.0];
    let ls = [0.25, 1.0, 2.0, 4.0];
    let cfg = format!(
        "model = \"driven-pair\"\n[params]\ng = 1.0\nf = {{ values = {ks:?} }}\ngamma = {{ values = {ls:?} }}\nn_th = 0.0\ndelta = 0.0\n[time]\nsteady = true\n[output]\nmeasures = [\"energy_b\", \"energy_c\", \"steady_residual\"]\n"
    );
    let ran = run_config(&cfg, on)?;
    let (mut rel_b, mut rel_c, mut residual) = (0.0f64, 0.0f64, 0.0f64);
    for (i, m) in ran.plan.members.iter().enumerate() {
        let (eb, ec) = eq8(m.param_values[0], m.param_values[1]);
        rel_b = rel_b.max(dev(ran.v(i, 0, Measure::EnergyB), eb) / eb);
        rel_c = rel_c.max(dev(ran.v(i, 0, Measure::EnergyC), ec) / ec);
        residual = residual.max(dev(ran.v(i, 0, Measure::SteadyResidual), 0.0));
    }
    let group = "paper 002 eq. 8 (null space)";
    Ok(vec![
        Check { group, name: "max rel dev steady energy_b, 4x4 (k, l) grid".into(), expected: 0.0, got: rel_b, tolerance: 1e-9 },
        Check { group, name: "max rel dev steady energy_c, 4x4 (k, l) grid".into(), expected: 0.0, got: rel_c, tolerance: 1e-9 },
        Check { group, name: "max residual ||L rho||_F".into(), expected: 0.0, got: residual, tolerance: 1e-12 },
    ])
}

/// Eq. 8 of paper 002: (energy_b, energy_c)/w0 in the steady state.
pub fn eq8(k: f64, l: f64) -> (f64, f64) {
    let (k2, l2) = (k * k, l * l);
    let alpha = 256.0 * k2.powi(3) * (1.0 + l2)
        + l2 * (4.0 + l2).powi(2) * (4.0 + 9.0 * l2)
        + 4.0 * k2 * l2 * (4.0 + 3.0 * l2) * (4.0 + 9.0 * l2)
        + 64.0 * k2 * k2 * (4.0 + 11.0 * l2 + 5.0 * l2 * l2);
    let eb = 16.0 * k2 * (8.0 * (k2 + k2 * k2) + 2.0 * (2.0 + 9.0 * k2) * l2 + 9.0 * l2 * l2) / alpha;
    let ec = 4.0 * k2 * (32.0 * k2 * k2 * (1.0 + l2) + l2 * l2 * (4.0 + 9.0 * l2) + 4.0 * k2 * (2.0 + l2) * (4.0 + 9.0 * l2)) / alpha;
    (eb, ec)
}

/// Paper 004: energy, capacity, concurrence and ergotropy of the battery for a charger on the
/// Bloch sphere (closed system).
pub fn paper004_closed_forms(on: &RunOptions) -> Result<Vec<Check>> {
    let thetas = [std::f64::consts::PI, 2.0 * std::f64::consts::PI / 3.0, std::f64::consts::FRAC_PI_3];
    let (wb, j) = (1.0, 1.0);
    let cfg = format!(
        "model = \"bloch-charger\"\n[params]\nwb = {wb}\nj = {j}\n[initial]\ntheta = {{ values = {thetas:?} }}\nphi = 0.7\n[time]\ndt = 0.001\nt_end = 4.0\nsamples = 81\n[output]\nmeasures = [\"energy_b\", \"capacity_b\", \"concurrence\", \"ergotropy_b\"]\n"
    );
    let ran = run_config(&cfg, on)?;
    let mut out = vec![];
    for (i, theta) in thetas.iter().enumerate() {
        let s2 = (theta / 2.0).sin().powi(2);
        let mut worst = [0.0f64; 4];
        for (k, &t) in ran.result.times.iter().enumerate() {
            let root = (1.0 - s2 * s2 * (2.0 * j * t).sin().powi(2)).sqrt();
            let expect = [wb * s2 * (j * t).sin().powi(2), wb * root, s2 * (2.0 * j * t).sin().abs(), wb * (s2 * (j * t).sin().powi(2) - (1.0 - root) / 2.0)];
            let got = [ran.v(i, k, Measure::EnergyB), ran.v(i, k, Measure::CapacityB), ran.v(i, k, Measure::Concurrence), ran.v(i, k, Measure::ErgotropyB)];
            for q in 0..4 {
                worst[q] = worst[q].max(dev(got[q], expect[q]));
            }
        }
        let names = ["energy_b = wb s^2 sin^2 jt", "capacity_b = wb sqrt(1 - s^4 sin^2 2jt)", "concurrence = s^2 |sin 2jt|", "ergotropy_b closed form"];
        for q in 0..4 {
            let f32_tol = if q == 2 { 1e-3 } else { 2e-4 };
            out.push(Check {
                group: "paper 004 closed forms",
                name: format!("max |dev| {} (theta={theta:.4})", names[q]),
                expected: 0.0,
                got: worst[q],
                tolerance: tol(on, 1e-8, f32_tol),
            });
        }
    }
    Ok(out)
}

/// Paper 004 with charger decay: energy_b = wb s^2 (j/G)^2 sin^2(Gt) e^{-gamma t/2},
/// G = sqrt(j^2 - gamma^2/16), and the time of its peak t_E = arctan(4G/gamma)/G.
pub fn paper004_decay(on: &RunOptions) -> Result<Vec<Check>> {
    let (wb, j, gamma) = (1.0, 1.0, 0.4);
    let g = (j * j - gamma * gamma / 16.0f64).sqrt();
    let cfg = format!(
        "model = \"bloch-charger\"\n[params]\nwb = {wb}\nj = {j}\ngamma = {gamma}\n[initial]\ntheta = {{ values = [3.141592653589793, 1.5707963267948966] }}\n[time]\ndt = 0.0005\nt_end = 3.0\nsamples = 6001\n[output]\nmeasures = [\"energy_b\"]\n"
    );
    let ran = run_config(&cfg, on)?;
    let mut out = vec![];
    for (i, theta) in [std::f64::consts::PI, std::f64::consts::FRAC_PI_2].iter().enumerate() {
        let s2 = (theta / 2.0).sin().powi(2);
        let mut worst = 0.0f64;
        for (k, &t) in ran.result.times.iter().enumerate() {
            let e = wb * s2 * (j / g).powi(2) * (g * t).sin().powi(2) * (-gamma * t / 2.0).exp();
            worst = worst.max(dev(ran.v(i, k, Measure::EnergyB), e));
        }
        out.push(Check {
            group: "paper 004 decay",
            name: format!("max |dev| energy_b with decay (theta={theta:.4})"),
            expected: 0.0,
            got: worst,
            tolerance: tol(on, 1e-9, 2e-4),
        });
        let t_e = (4.0 * g / gamma).atan() / g;
        let peak = ran.result.peaks[i * 4];
        out.push(Check {
            group: "paper 004 decay",
            name: format!("t_E = arctan(4G/gamma)/G (theta={theta:.4})"),
            expected: t_e,
            got: peak.t_max,
            tolerance: 5e-4 + tol(on, 0.0, 2e-3),
        });
    }
    Ok(out)
}

/// Paper 004's optimal-power constants [A, B, C, D] at theta = pi, gamma = 0, computed from the
/// closed forms (the paper prints A = 1.1656, B = 0.7246, C = 1.399193, D = 0.673). With x = j t:
///   energy_b = wb sin^2 x, so power_b = energy_b / t = wb j h(x),  h(x) = sin^2(x) / x,
///   h'(x) = sin(x) (2 x cos x - sin x) / x^2: on (0, pi) it is > 0 below the root of
///   tan x = 2x in (0, pi/2) and < 0 above it, so t_P = A/j with A that root, and the peak
///   power is B wb j with B = h(A) = sin^2(A) / A.
///   ergotropy_b = wb [sin^2 x - (1 - |cos 2x|)/2] is 0 for x <= pi/4 (cos 2x >= 0) and
///   -wb cos 2x on [pi/4, 3 pi/4], so ergotropic_power_b = wb j g(x), g(x) = -cos(2x) / x,
///   g'(x) = (2 x sin 2x + cos 2x) / x^2, > 0 at pi/4 and < 0 at 3 pi/4 with one root C
///   between: t_ergP = C/j (for j t_end < 3 pi/4), the peak D wb j with D = g(C).
/// Both roots by bisection on the sign of the derivative's numerator, to the last bits.
pub fn paper004_optimal_constants() -> [f64; 4] {
    // The root of f on (lo, hi), where f(lo) and f(hi) differ in sign.
    fn bisect(f: impl Fn(f64) -> f64, mut lo: f64, mut hi: f64) -> f64 {
        let lo_negative = f(lo) < 0.0;
        assert_ne!(lo_negative, f(hi) < 0.0, "no sign change on [{lo}, {hi}]");
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if mid <= lo || mid >= hi {
                break;
            }
            if (f(mid) < 0.0) == lo_negative {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    }
    use std::f64::consts::{FRAC_PI_2, FRAC_PI_4};
    // 2 x cos x - sin x: x + O(x^3) near 0, -1 at pi/2
    let a = bisect(|x| 2.0 * x * x.cos() - x.sin(), 0.1, FRAC_PI_2);
    let b = a.sin().powi(2) / a;
    let c = bisect(|x| 2.0 * x * (2.0 * x).sin() + (2.0 * x).cos(), FRAC_PI_4, 3.0 * FRAC_PI_4);
    let d = -(2.0 * c).cos() / c;
    [a, b, c, d]
}

/// Paper 004's optimal powers for theta = pi, gamma = 0: t_P = A/j with power B wb j s^2,
/// and the ergotropic-power peak at C/j with value D wb j (`paper004_optimal_constants`).
pub fn paper004_optimal_powers(on: &RunOptions) -> Result<Vec<Check>> {
    let [a, bb, c, d] = paper004_optimal_constants();
    let wb = 1.0;
    let mut out = vec![];
    for j in [1.0, 2.0] {
        let cfg = format!(
            "model = \"bloch-charger\"\n[params]\nwb = {wb}\nj = {j}\n[time]\ndt = 0.00025\nt_end = {}\nsamples = 8001\n[output]\nmeasures = [\"power_b\", \"ergotropic_power_b\"]\n",
            2.0 / j
        );
        let ran = run_config(&cfg, on)?;
        let peaks = &ran.result.peaks;
        let s = ran.result.times[1] - ran.result.times[0];
        // The peaks are the largest samples, s apart. Near a peak at t0,
        // P(t0 + u) = P0 + P'' u^2/2 + P''' u^3/6: the largest sample is the nearest one except
        // where the two around t0 nearly tie, so |t_max - t0| <= s/2 + |P'''/(8 P'')| s^2, and
        // it lies below P0 by at most |P''| (s/2)^2 / 2. In x = j t, P = wb j h(x) (or g(x)),
        // with |h'''/h''| < 0.5, |g'''/g''| < 1.5 and |h''|, |g''| < 3 at the peaks, so
        // |t_max - t0| <= s/2 + j s^2 and 0 <= P0 - P(t_max) <= wb j^3 s^2 (margins for the
        // engine's error).
        let tl_t = 0.5 * s + j * s * s + tol(on, 0.0, 2e-3);
        let tl_v = wb * j.powi(3) * s * s + tol(on, 1e-10, 3e-4);
        let group = "paper 004 optimal powers";
        out.push(Check { group, name: format!("t_P = A/j, A = {a:.9} (j={j})"), expected: a / j, got: peaks[2].t_max, tolerance: tl_t });
        out.push(Check { group, name: format!("max power_b = B wb j, B = {bb:.9} (j={j})"), expected: bb * wb * j, got: peaks[2].max, tolerance: tl_v });
        out.push(Check { group, name: format!("t_ergP = C/j, C = {c:.9} (j={j})"), expected: c / j, got: peaks[3].t_max, tolerance: tl_t });
        out.push(Check {
            group,
            name: format!("max ergotropic_power_b = D wb j, D = {d:.9} (j={j})"),
            expected: d * wb * j,
            got: peaks[3].max,
            tolerance: tl_v,
        });
    }
    Ok(out)
}

/// Paper 004 with `[protocol] switch_off = T` (T = 1.2345, neither a sample time nor a multiple
/// of dt): up to T the closed forms above; after T the battery of bloch-charger has neither
/// coupling nor dissipator, so energy_b stays at its value at T,
/// wb s^2 (j/G)^2 sin^2(G T) e^{-gamma T/2} (G = j at gamma = 0), and so does ergotropy_b.
pub fn protocol_storage(on: &RunOptions) -> Result<Vec<Check>> {
    let (wb, j, t_off) = (1.0, 1.0, 1.2345);
    let cfg = format!(
        "model = \"bloch-charger\"\n[params]\nwb = {wb}\nj = {j}\ngamma = {{ values = [0.0, 0.4] }}\n[initial]\ntheta = {{ values = [3.141592653589793, 1.5707963267948966] }}\n[time]\ndt = 0.001\nt_end = 3.0\nsamples = 31\n[output]\nmeasures = [\"energy_b\", \"ergotropy_b\"]\n[protocol]\nswitch_off = {t_off}\n"
    );
    let ran = run_config(&cfg, on)?;
    let times = &ran.result.times;
    let first_after = times.iter().position(|&t| t > t_off).expect("samples after T");
    let mut out = vec![];
    for (i, m) in ran.plan.members.iter().enumerate() {
        let gamma = crate::model::real(&ran.plan.points[m.point], "gamma")?;
        let theta = m.theta_phi.map(|(th, _)| th).unwrap_or(std::f64::consts::PI);
        let s2 = (theta / 2.0).sin().powi(2);
        let g = (j * j - gamma * gamma / 16.0f64).sqrt();
        let energy = |t: f64| wb * s2 * (j / g).powi(2) * (g * t).sin().powi(2) * (-gamma * t / 2.0).exp();
        let (mut closed, mut frozen_e, mut frozen_w) = (0.0f64, 0.0f64, 0.0f64);
        for (k, &t) in times.iter().enumerate() {
            closed = closed.max(dev(ran.v(i, k, Measure::EnergyB), energy(t.min(t_off))));
            if k > first_after {
                frozen_e = frozen_e.max(dev(ran.v(i, k, Measure::EnergyB), ran.v(i, first_after, Measure::EnergyB)));
                frozen_w = frozen_w.max(dev(ran.v(i, k, Measure::ErgotropyB), ran.v(i, first_after, Measure::ErgotropyB)));
            }
        }
        let case = format!("theta={theta:.4}, gamma={gamma}");
        let group = "protocol switch_off (004)";
        out.push(Check { group, name: format!("max |dev| energy_b, closed form to T ({case})"), expected: 0.0, got: closed, tolerance: tol(on, 1e-9, 2e-4) });
        out.push(Check { group, name: format!("energy_b frozen after T ({case})"), expected: 0.0, got: frozen_e, tolerance: tol(on, 1e-12, 1e-5) });
        out.push(Check { group, name: format!("ergotropy_b frozen after T ({case})"), expected: 0.0, got: frozen_w, tolerance: tol(on, 1e-12, 1e-5) });
    }
    Ok(out)
}

/// A circularly driven battery qubit, the one exactly solvable drive. bloch-charger with j = 0
/// and the charger in |g> (decoupled and idle), no decay, two `[[drive]]` tables:
///   H(t) = wb s+_b s-_b + Omega (sx_b cos(w t) + sy_b sin(w t))
///        = wb s+_b s-_b + Omega (s+_b e^{-i w t} + s-_b e^{+i w t}),
/// (sy_b as `cos(w t - pi/2)`). In the frame rotating at w, H' = (Delta/2) sz_b + Omega sx_b,
/// Delta = wb - w, so from |g>, with W = sqrt(Omega^2 + Delta^2/4) (the Rabi formula),
///   energy_b = wb (Omega/W)^2 sin^2(W t),   energy_c = 0.
/// wb in {1, 1.1} at w = 1: on resonance and detuned, where the peak drops to (Omega/W)^2.
pub fn drive_rabi(on: &RunOptions) -> Result<Vec<Check>> {
    let (omega, w) = (0.25, 1.0);
    let cfg = format!(
        "model = \"bloch-charger\"\n[params]\nwb = {{ values = [1.0, 1.1] }}\nj = 0.0\ngamma = 0.0\n[initial]\ntheta = 0.0\n[time]\ndt = 0.002\nt_end = 8.0\nsamples = 81\n[output]\nmeasures = [\"energy_b\", \"energy_c\"]\n[[drive]]\noperator = \"sx_b\"\namplitude = {omega}\nfrequency = {w}\n[[drive]]\noperator = \"sy_b\"\namplitude = {omega}\nfrequency = {w}\nphase = -1.5707963267948966\n"
    );
    let ran = run_config(&cfg, on)?;
    let times = &ran.result.times;
    let mut out = vec![];
    for (i, m) in ran.plan.members.iter().enumerate() {
        let wb = crate::model::real(&ran.plan.points[m.point], "wb")?;
        let delta = wb - w;
        let rabi = (omega * omega + delta * delta / 4.0).sqrt();
        let energy = |t: f64| wb * (omega / rabi).powi(2) * (rabi * t).sin().powi(2);
        let (mut dev_b, mut dev_c) = (0.0f64, 0.0f64);
        for (k, &t) in times.iter().enumerate() {
            dev_b = dev_b.max(dev(ran.v(i, k, Measure::EnergyB), energy(t)));
            dev_c = dev_c.max(dev(ran.v(i, k, Measure::EnergyC), 0.0));
        }
        let case = format!("Omega={omega}, detuning={delta:.1}");
        let group = "drives (Rabi)";
        out.push(Check { group, name: format!("max |dev| energy_b, Rabi formula ({case})"), expected: 0.0, got: dev_b, tolerance: tol(on, 1e-8, 2e-4) });
        out.push(Check { group, name: format!("max |energy_c|, idle charger ({case})"), expected: 0.0, got: dev_c, tolerance: tol(on, 1e-12, 1e-5) });
    }
    Ok(out)
}

/// A check, run on the engine, precision and adapter of its options.
pub type CheckFn = fn(&RunOptions) -> Result<Vec<Check>>;

pub const ALL_CHECKS: [(&str, CheckFn); 9] = [
    ("paper000_table1", paper000_table1),
    ("paper000_relations", paper000_relations),
    ("paper002_steady_state", paper002_steady_state),
    ("paper004_closed_forms", paper004_closed_forms),
    ("paper004_decay", paper004_decay),
    ("paper004_optimal_powers", paper004_optimal_powers),
    ("paper002_steady_null_space", paper002_steady_null_space),
    ("protocol_storage", protocol_storage),
    ("drive_rabi", drive_rabi),
];

/// Run every check of `ALL_CHECKS` on `on`'s backend, precision and adapter (`--adapter`).
pub fn all_checks(on: &RunOptions) -> Result<Vec<Check>> {
    // each note once for all the checks (an adapter ignored by the CPU engine, a pinning note)
    let said = on.said.clone().unwrap_or_default();
    let mut on = RunOptions { said: Some(said), ..on.clone() };
    // auto resolved once, for every check: the engine it takes (a hardware GPU's or the one
    // named by --adapter, else the CPU's) sets the tolerances (the f64 CPU engine was held only
    // to f32's), and its note is said once, not once a check
    if on.backend == Backend::Auto {
        on.backend = match crate::engine::resolve_backend(&on, &mut vec![])? {
            crate::engine::Engine::Gpu(_) => Backend::Gpu,
            _ => Backend::Cpu,
        };
        if on.backend == Backend::Cpu {
            // (auto fell back: the adapter is not the CPU engine's to ignore again)
            on.adapter = None;
        }
    }
    let mut all = vec![];
    for (_, f) in ALL_CHECKS {
        all.extend(f(&on)?);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A NaN or infinite value counts as an infinite deviation in a worst-case fold, so the
    /// check fails; `f64::max` alone would drop the NaN and pass.
    #[test]
    fn a_nan_fails_a_folded_check() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let values = [0.0, 1e-12, bad, 2e-12];
            let naive = values.iter().fold(0.0f64, |w, &g| w.max(g.abs()));
            let worst = values.iter().fold(0.0f64, |w, &g| w.max(dev(g, 0.0)));
            assert_eq!(worst, f64::INFINITY, "{bad}");
            let check = Check { group: "test", name: "fold".into(), expected: 0.0, got: worst, tolerance: 1e-9 };
            assert!(!check.pass(), "{bad}: {check:?}");
            if bad.is_nan() {
                // the gap this closes: the plain fold drops the NaN and passes
                assert!(Check { got: naive, ..check }.pass());
            }
            // a value compared directly fails too
            assert!(!Check { group: "test", name: "direct".into(), expected: 0.5, got: bad, tolerance: 1e-9 }.pass());
        }
        assert_eq!(dev(0.25, 0.5), 0.25);
        assert_eq!(dev(1.0, f64::NAN), f64::INFINITY);
    }

    /// The computed constants solve their equations, are the maxima of the closed forms on a
    /// fine grid, and round to the values paper 004 prints.
    #[test]
    fn paper004_constants_solve_their_equations_and_round_to_the_papers() {
        let [a, b, c, d] = paper004_optimal_constants();
        assert!((a.tan() - 2.0 * a).abs() < 1e-12, "tan A - 2A at A = {a}");
        assert!((b - a.sin().powi(2) / a).abs() < 1e-15);
        assert!((2.0 * c * (2.0 * c).sin() + (2.0 * c).cos()).abs() < 1e-12, "g'(C) at C = {c}");
        // energy_b / t and ergotropy_b / t from the closed forms (wb = j = 1), sampled densely
        let h = |x: f64| x.sin().powi(2) / x;
        let g = |x: f64| (x.sin().powi(2) - (1.0 - (2.0 * x).cos().abs()) / 2.0) / x;
        let (mut hmax, mut gmax) = ((0.0f64, 0.0f64), (0.0f64, 0.0f64));
        for k in 1..=200_000 {
            let x = 2.0 * k as f64 / 200_000.0;
            if h(x) > hmax.1 {
                hmax = (x, h(x));
            }
            if g(x) > gmax.1 {
                gmax = (x, g(x));
            }
        }
        assert!((hmax.0 - a).abs() <= 1e-5 && hmax.1 <= b + 1e-15 && b - hmax.1 < 1e-10, "{hmax:?} vs ({a}, {b})");
        assert!((gmax.0 - c).abs() <= 1e-5 && gmax.1 <= d + 1e-15 && d - gmax.1 < 1e-10, "{gmax:?} vs ({c}, {d})");
        for (got, printed, half_unit) in [(a, 1.1656, 5e-5), (b, 0.7246, 5e-5), (c, 1.399193, 5e-7), (d, 0.673, 5e-4)] {
            assert!((got - printed).abs() <= half_unit, "{got} does not round to {printed}");
        }
    }
}
