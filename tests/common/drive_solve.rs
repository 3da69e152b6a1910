//! Shared by tests/drives.rs and tests/gpu_drives.rs: a driven battery qubit's config and an
//! independent solve of its H(t) (the Schrodinger equation of the qubit alone).
#![allow(dead_code)]

/// bloch-charger with the charger idle and decoupled (j = 0, gamma = 0), both qubits in |g>:
/// the battery alone, H_b(t) = wb |e><e| + c(t) sx, under the given drive table.
pub fn battery_cfg(drive: &str, t_end: f64, samples: usize, dt: f64) -> String {
    format!(
        "model = \"bloch-charger\"\n[params]\nwb = 1.0\nj = 0.0\n[initial]\ntheta = 0.0\n[time]\ndt = {dt}\nt_end = {t_end}\nsamples = {samples}\n[output]\nmeasures = [\"energy_b\", \"ergotropy_b\"]\n[[drive]]\n{drive}\n"
    )
}

/// The envelopes of the tests, as the config spells them and as a function of t.
pub fn envelope(kind: &str) -> (String, Box<dyn Fn(f64) -> f64>) {
    match kind {
        "constant" => ("\"constant\"".into(), Box::new(|_| 1.0)),
        "gaussian" => ("{ gaussian = [4.0, 1.5] }".into(), Box::new(|t: f64| (-0.5 * ((t - 4.0) / 1.5f64).powi(2)).exp())),
        // Window edges on sample times (and so on the step grid).
        "window" => ("{ window = [2.0, 7.0] }".into(), Box::new(|t: f64| if (2.0..7.0).contains(&t) { 1.0 } else { 0.0 })),
        // Window edges off the sample and step grids (dt = 0.002 or 0.01, samples every 0.2).
        _ => ("{ window = [2.0037, 6.9913] }".into(), Box::new(|t: f64| if (2.0037..6.9913).contains(&t) { 1.0 } else { 0.0 })),
    }
}

/// The window edges of an envelope of `envelope`, empty for the others.
pub fn window_edges(kind: &str) -> Vec<f64> {
    match kind {
        "window" => vec![2.0, 7.0],
        "window-off-grid" => vec![2.0037, 6.9913],
        _ => vec![],
    }
}

/// |e> population of a qubit from |g> under H(t) = w |e><e| + a env(t) cos(nu t + phase) sx,
/// by RK4 on the 2-component Schrodinger equation with `sub` steps between samples of `times`,
/// and between a sample and a window edge of `edges` (a window's, empty for the other
/// envelopes) inside its interval: no step straddles an edge, and env is taken at each step's
/// midpoint (piecewise constant on steps, exact there).
pub fn excited_population(w: f64, a: f64, nu: f64, phase: f64, env: &dyn Fn(f64) -> f64, times: &[f64], sub: usize, edges: &[f64]) -> Vec<f64> {
    type Z = (f64, f64);
    let window = !edges.is_empty();
    let mul = |p: Z, q: Z| (p.0 * q.0 - p.1 * q.1, p.0 * q.1 + p.1 * q.0);
    // d psi/dt = -i H psi: d cg = -i f ce, d ce = -i (w ce + f cg).
    let f = |t: f64, tm: f64| a * if window { env(tm) } else { env(t) } * (nu * t + phase).cos();
    let rhs = |t: f64, tm: f64, (g, e): (Z, Z)| -> (Z, Z) {
        let ft = f(t, tm);
        let dg = mul((0.0, -1.0), (ft * e.0, ft * e.1));
        let de = mul((0.0, -1.0), (w * e.0 + ft * g.0, w * e.1 + ft * g.1));
        (dg, de)
    };
    let add = |(g, e): (Z, Z), s: f64, (dg, de): (Z, Z)| ((g.0 + s * dg.0, g.1 + s * dg.1), (e.0 + s * de.0, e.1 + s * de.1));
    let mut psi: (Z, Z) = ((1.0, 0.0), (0.0, 0.0));
    let mut t = 0.0;
    let mut out = vec![];
    for &ts in times {
        let stops: Vec<f64> = edges.iter().copied().filter(|e| *e > t && *e < ts).chain(std::iter::once(ts)).collect();
        for stop in stops {
            let h = (stop - t) / sub as f64;
            for _ in 0..if stop > t { sub } else { 0 } {
                let tm = t + h / 2.0;
                let k1 = rhs(t, tm, psi);
                let k2 = rhs(tm, tm, add(psi, h / 2.0, k1));
                let k3 = rhs(tm, tm, add(psi, h / 2.0, k2));
                let k4 = rhs(t + h, tm, add(psi, h, k3));
                let sum = add(add(add(k1, 2.0, k2), 2.0, k3), 1.0, k4);
                psi = add(psi, h / 6.0, sum);
                t += h;
            }
            t = stop;
        }
        t = ts;
        out.push(psi.1 .0 * psi.1 .0 + psi.1 .1 * psi.1 .1);
    }
    out
}
