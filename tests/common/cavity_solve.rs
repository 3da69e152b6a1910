//! Shared by tests/drives_cavity.rs and tests/gpu_cavity_drives.rs: a driven cavity-cells
//! config and an independent solve of its Lindblad equation, written here in dense matrix form
//! from the model's definition (docs/physics.md), not from the engines' code:
//!   H(t) = wc a^+a + (wq/2)(sz_1 + sz_2) + lambda (s+_1 a + s-_1 a^+)
//!        + (g/2)[(1+zeta) sx_1 sx_2 + (1-zeta) sy_1 sy_2] + c(t) (a + a^+),
//!   d rho/dt = -i[H(t), rho] + kappa D[a] + gamma (D[s-_1] + D[s-_2]),
//! basis (cell 1, cell 2, mode), each cell (g, e), the mode |0>..|N>; c(t) = A env(t)
//! cos(nu t + phase), a window's env taken at each step's midpoint.
#![allow(dead_code)]

use qbat_gpu::linalg::{CMat, C64};

pub const N_FOCK: usize = 3;
pub const WC: f64 = 1.0;
pub const WQ: f64 = 1.1;
pub const LAMBDA: f64 = 0.6;
pub const G: f64 = 0.3;
pub const ZETA: f64 = 0.4;
pub const KAPPA: f64 = 0.15;
pub const GAMMA: f64 = 0.05;
pub const ALPHA: f64 = 0.5;
pub const AMPLITUDE: f64 = 0.4;
pub const FREQUENCY: f64 = 1.0;
pub const PHASE: f64 = 0.3;
pub const T_END: f64 = 4.0;
pub const SAMPLES: usize = 21;

/// The envelopes of the tests, as the config spells them and as a function of t; window
/// edges on sample times (and so on the step grid).
pub fn envelope(kind: &str) -> (String, fn(f64) -> f64) {
    match kind {
        "constant" => ("\"constant\"".into(), |_| 1.0),
        "gaussian" => ("{ gaussian = [2.0, 0.8] }".into(), |t| (-0.5 * ((t - 2.0) / 0.8f64).powi(2)).exp()),
        "window" => ("{ window = [1.0, 3.0] }".into(), |t| if (1.0..3.0).contains(&t) { 1.0 } else { 0.0 }),
        // edges off the sample grid (every 0.2) and the step grids of the tests
        _ => ("{ window = [1.0037, 2.9913] }".into(), |t| if (1.0037..2.9913).contains(&t) { 1.0 } else { 0.0 }),
    }
}

/// The window edges of an envelope of `envelope`, empty for the others.
pub fn window_edges(kind: &str) -> Vec<f64> {
    match kind {
        "window" => vec![1.0, 3.0],
        "window-off-grid" => vec![1.0037, 2.9913],
        _ => vec![],
    }
}

/// The config: |gg> (x) |alpha>, the x_a drive with envelope `env`, measures photon_number,
/// energy_b, energy_c, ergotropy_b.
pub fn cavity_cfg(env: &str, dt: f64) -> String {
    format!(
        "model = \"cavity-cells\"\n[params]\nwc = {WC}\nwq = {WQ}\nlambda = {LAMBDA}\ng = {G}\nzeta = {ZETA}\nkappa = {KAPPA}\ngamma = {GAMMA}\nalpha = {ALPHA}\nn_fock = {N_FOCK}\n[time]\ndt = {dt}\nt_end = {T_END}\nsamples = {SAMPLES}\n[output]\nmeasures = [\"photon_number\", \"energy_b\", \"energy_c\", \"ergotropy_b\"]\n[[drive]]\noperator = \"x_a\"\namplitude = {AMPLITUDE}\nfrequency = {FREQUENCY}\nphase = {PHASE}\nenvelope = {env}\n"
    )
}

fn z(re: f64) -> C64 {
    C64::new(re, 0.0)
}

fn kron(a: &CMat, b: &CMat) -> CMat {
    let (ra, ca, rb, cb) = (a.nrows(), a.ncols(), b.nrows(), b.ncols());
    CMat::from_fn(ra * rb, ca * cb, |i, j| a[(i / rb, j / cb)] * b[(i % rb, j % cb)])
}

fn eye(n: usize) -> CMat {
    CMat::identity(n, n)
}

/// (H without the drive, the drive operator a + a^+, jump operators with their rates, the
/// cell 1 and cell 2 sz, and a^+ a), all in the full space.
struct Ops {
    h: CMat,
    xa: CMat,
    jumps: Vec<(CMat, f64)>,
    sz1: CMat,
    sz2: CMat,
    num: CMat,
    sx2: CMat,
    sy2: CMat,
}

fn ops() -> Ops {
    let d = N_FOCK + 1;
    let i2 = eye(2);
    let im = eye(d);
    // cell (g, e): sigma_- = |g><e|, sz = |e><e| - |g><g|
    let sm = CMat::from_row_slice(2, 2, &[z(0.0), z(1.0), z(0.0), z(0.0)]);
    let sp = sm.transpose();
    let sz = CMat::from_row_slice(2, 2, &[z(-1.0), z(0.0), z(0.0), z(1.0)]);
    let sx = &sp + &sm;
    let sy = (&sp - &sm) * C64::new(0.0, -1.0);
    let mut a = CMat::zeros(d, d);
    for n in 1..d {
        a[(n - 1, n)] = z((n as f64).sqrt());
    }
    let on1 = |o: &CMat| kron(&kron(o, &i2), &im);
    let on2 = |o: &CMat| kron(&kron(&i2, o), &im);
    let mode = |o: &CMat| kron(&eye(4), o);
    let am = mode(&a);
    let ad = am.adjoint();
    let num = &ad * &am;
    let h = &num * z(WC)
        + (on1(&sz) + on2(&sz)) * z(WQ / 2.0)
        + (on1(&sp) * &am + on1(&sm) * &ad) * z(LAMBDA)
        + (&on1(&sx) * &on2(&sx)) * z(G * (1.0 + ZETA) / 2.0)
        + (&on1(&sy) * &on2(&sy)) * z(G * (1.0 - ZETA) / 2.0);
    Ops {
        h,
        xa: &am + &ad,
        jumps: vec![(am.clone(), KAPPA), (on1(&sm), GAMMA), (on2(&sm), GAMMA)],
        sz1: on1(&sz),
        sz2: on2(&sz),
        num,
        sx2: on2(&sx),
        sy2: on2(&sy),
    }
}

fn rhs(o: &Ops, h: &CMat, rho: &CMat) -> CMat {
    let mi = C64::new(0.0, -1.0);
    let mut out = (h * rho - rho * h) * mi;
    for (l, rate) in &o.jumps {
        let ld = l.adjoint();
        let ldl = &ld * l;
        out += (l * rho * &ld - (&ldl * rho + rho * &ldl) * z(0.5)) * z(*rate);
    }
    out
}

/// (photon_number, energy_b, energy_c, ergotropy_b) at each of the SAMPLES sample times, by
/// RK4 with `sub` steps per sample interval, or per part of one between a sample and a window
/// edge of `edges` (a window's, empty for the other envelopes): no step straddles an edge.
/// ergotropy_b of a qubit with H_B = (wq/2) sz:
/// (wq/2)(<sz> + |r|), r its Bloch vector.
pub fn solve(env: fn(f64) -> f64, edges: &[f64], sub: usize) -> Vec<[f64; 4]> {
    let window = !edges.is_empty();
    let o = ops();
    let d = N_FOCK + 1;
    // |gg> (x) |alpha>, truncated and renormalised
    let mut ket: Vec<f64> = (0..d)
        .map(|n| {
            let fact: f64 = (1..=n).map(|k| k as f64).product();
            ALPHA.powi(n as i32) / fact.sqrt()
        })
        .collect();
    let norm = ket.iter().map(|x| x * x).sum::<f64>().sqrt();
    ket.iter_mut().for_each(|x| *x /= norm);
    let dim = 4 * d;
    let mut rho = CMat::from_fn(dim, dim, |i, j| if i < d && j < d { z(ket[i] * ket[j]) } else { z(0.0) });
    let c = |t: f64, tm: f64| AMPLITUDE * if window { env(tm) } else { env(t) } * (FREQUENCY * t + PHASE).cos();
    let ham = |t: f64, tm: f64| &o.h + &o.xa * z(c(t, tm));
    let measure = |rho: &CMat| -> [f64; 4] {
        let tr = |m: &CMat| (m * rho).trace().re;
        let (zb, xb, yb) = (tr(&o.sz2), tr(&o.sx2), tr(&o.sy2));
        let r = (xb * xb + yb * yb + zb * zb).sqrt();
        [tr(&o.num), 0.5 * WQ * zb, 0.5 * WQ * tr(&o.sz1), 0.5 * WQ * (zb + r)]
    };
    let gap = T_END / (SAMPLES - 1) as f64;
    let mut out = vec![measure(&rho)];
    for s in 1..SAMPLES {
        let (t_a, t_b) = ((s - 1) as f64 * gap, s as f64 * gap);
        let inner = edges.iter().copied().filter(|e| *e > t_a && *e < t_b);
        let bounds: Vec<f64> = std::iter::once(t_a).chain(inner).chain(std::iter::once(t_b)).collect();
        for part in bounds.windows(2) {
            let h = (part[1] - part[0]) / sub as f64;
            for j in 0..sub {
                let t = part[0] + j as f64 * h;
                let tm = t + 0.5 * h;
                let k1 = rhs(&o, &ham(t, tm), &rho);
                let k2 = rhs(&o, &ham(tm, tm), &(&rho + &k1 * z(0.5 * h)));
                let k3 = rhs(&o, &ham(tm, tm), &(&rho + &k2 * z(0.5 * h)));
                let k4 = rhs(&o, &ham(t + h, tm), &(&rho + &k3 * z(h)));
                rho += (k1 + (k2 + k3) * z(2.0) + k4) * z(h / 6.0);
            }
        }
        out.push(measure(&rho));
    }
    out
}
