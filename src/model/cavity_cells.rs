//! `cavity-cells` (paper 003): two cells and a cavity mode truncated at n_fock = N.
//! H = wc a^+a + (wq/2)(sz_1 + sz_2) + lambda (s+_1 a + s-_1 a^+)
//!     + (g/2)[(1+zeta) sx_1 sx_2 + (1-zeta) sy_1 sy_2];
//! dissipator kappa D[a] + gamma (D[s-_1] + D[s-_2]).
//! Index = (2 i_1 + i_2)(N + 1) + n.

use super::{jumps, rate, real, spec, OpenSystem, ParamDefault::*, ParamSpec, ParamValue, Params, Space};
use crate::error::{QbatError, Result};
use crate::linalg::*;

/// Largest cutoff accepted; beyond it the dense per-member state alone exceeds any sensible memory.
pub const MAX_N_FOCK: usize = 400;

pub fn params() -> Vec<ParamSpec> {
    vec![
        spec("wc", Real(1.0), "cavity frequency"),
        spec("wq", Real(1.0), "cell frequency (H_B = (wq/2) sz_2)"),
        spec("lambda", Real(1.0), "cavity-cell-1 coupling"),
        spec("g", Real(0.0), "cell-cell coupling"),
        spec("zeta", Real(0.0), "anisotropy in [-1, 1]"),
        spec("kappa", Real(0.0), "cavity loss rate (kappa D[a])"),
        spec("gamma", Real(0.0), "cell decay rate (gamma D[s-_i])"),
        spec("alpha", Complex(2.0, 0.0), "coherent amplitude of the initial cavity state ([re, im] or real)"),
        spec("n_fock", Int(20), "Fock cutoff N (keeps |0>..|N>), an integer in [1, 400]; not sweepable"),
    ]
}

pub fn n_fock(p: &Params) -> Result<usize> {
    let x = real(p, "n_fock")?;
    if x.fract() != 0.0 || x < 1.0 {
        return Err(QbatError::invalid("params.n_fock", format!("must be an integer >= 1, got {}", crate::error::shown(x))));
    }
    if x > MAX_N_FOCK as f64 {
        return Err(QbatError::TooLarge {
            field: "params.n_fock".into(),
            reason: format!("{x} is too large: the state would be {0}x{0} per member (limit n_fock <= {MAX_N_FOCK})", 4.0 * (x + 1.0)),
        });
    }
    Ok(x as usize)
}

pub fn alpha(p: &Params) -> Result<C64> {
    match p.get("alpha") {
        Some(ParamValue::Real(x)) => Ok(c(*x, 0.0)),
        Some(ParamValue::Complex(z)) => Ok(*z),
        _ => Err(QbatError::invalid("params.alpha", "must be a real number or [re, im]")),
    }
}

/// Truncated annihilation operator on |0>..|N>: a|n> = sqrt(n)|n-1>.
pub fn annihilation(n_fock: usize) -> CMat {
    let d = n_fock + 1;
    let mut a = CMat::zeros(d, d);
    for n in 1..d {
        a[(n - 1, n)] = c((n as f64).sqrt(), 0.0);
    }
    a
}

/// op_1 (x) op_2 (x) op_cav
fn tri(op1: &CMat, op2: &CMat, op_cav: &CMat) -> CMat {
    kron(&kron(op1, op2), op_cav)
}

pub fn build(p: &Params) -> Result<OpenSystem> {
    let n = n_fock(p)?;
    let (wc, wq, lambda, g, zeta) = (real(p, "wc")?, real(p, "wq")?, real(p, "lambda")?, real(p, "g")?, real(p, "zeta")?);
    if !(-1.0..=1.0).contains(&zeta) {
        return Err(QbatError::invalid("params.zeta", format!("must lie in [-1, 1], got {}", crate::error::shown(zeta))));
    }
    let (kappa, gamma) = (rate(p, "kappa")?, rate(p, "gamma")?);
    alpha(p)?;
    let (i2, ic) = (identity(2), identity(n + 1));
    let a_cav = annihilation(n);
    let ad_cav = a_cav.adjoint();
    let (sz, sp, sm, sx, sy) = (sigma_z(), sigma_plus(), sigma_minus(), sigma_x(), sigma_y());
    let sz1 = tri(&sz, &i2, &ic);
    let sz2 = tri(&i2, &sz, &ic);
    // Charger side = cell 1, battery = cell 2 (docs/physics.md): the cell-cell term is the only one
    // that couples them, and what `[protocol] switch_off` turns off. The cavity-cell term
    // lambda pumps the charger side, as the drive f does in driven-pair, and stays.
    let coupling = tri(&sx, &sx, &ic) * c((1.0 + zeta) * g / 2.0, 0.0) + tri(&sy, &sy, &ic) * c((1.0 - zeta) * g / 2.0, 0.0);
    // Products of Kronecker products, factor by factor: (A (x) B (x) C)(D (x) E (x) F) =
    // AD (x) BE (x) CF, so s+_1 a = s+ (x) 1 (x) a and a^+ a = 1 (x) 1 (x) a^+a, without a dense
    // product of the full matrices (each entry of which has one non-zero term: the same
    // numbers).
    let pump = (tri(&sp, &i2, &a_cav) + tri(&sm, &i2, &ad_cav)) * c(lambda, 0.0);
    let h = tri(&i2, &i2, &(&ad_cav * &a_cav)) * c(wc, 0.0) + (sz1 + sz2) * c(wq / 2.0, 0.0) + pump + &coupling;
    let list = vec![(tri(&i2, &i2, &a_cav), kappa), (tri(&sm, &i2, &ic), gamma), (tri(&i2, &sm, &ic), gamma)];
    Ok(OpenSystem {
        space: Space::Cavity { n_fock: n },
        hamiltonian: h,
        jumps: jumps(list),
        h_battery: &sz * c(wq / 2.0, 0.0),
        h_charger: &sz * c(wq / 2.0, 0.0),
        dephasing: 0.0,
        coupling: std::sync::Arc::new(coupling),
    })
}

/// Coherent state |alpha> truncated to |0>..|N> and renormalised.
/// c_n ~ alpha^n / sqrt(n!) is formed in log space, log|c_n| = n log|alpha| - log(n!)/2, and
/// shifted by its maximum before exponentiating, so a large |alpha| for its cutoff gives the
/// (renormalised) top of the distribution rather than 0/0.
pub fn coherent_ket(alpha: C64, n_fock: usize) -> Vec<C64> {
    if alpha.norm() == 0.0 {
        let mut v = vec![ZERO; n_fock + 1];
        v[0] = ONE;
        return v;
    }
    let (log_a, phase) = (alpha.norm().ln(), alpha.arg());
    let mut log_fact = 0.0;
    let logs: Vec<f64> = (0..=n_fock)
        .map(|n| {
            if n > 0 {
                log_fact += (n as f64).ln();
            }
            n as f64 * log_a - 0.5 * log_fact
        })
        .collect();
    let top = logs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let v: Vec<C64> = logs.iter().enumerate().map(|(n, l)| C64::from_polar((l - top).exp(), n as f64 * phase)).collect();
    let norm = v.iter().map(|z| z.norm_sqr()).sum::<f64>().sqrt();
    v.iter().map(|z| z / norm).collect()
}

/// Population of |N> in the untruncated coherent state: the tail the cutoff throws away
/// is at most sum_{n > N} |c_n|^2; this returns P(n >= N) for the Poisson distribution.
pub fn coherent_tail(alpha: C64, n_fock: usize) -> f64 {
    let mean = alpha.norm_sqr();
    let mut p = (-mean).exp();
    let mut below = 0.0;
    for k in 0..n_fock {
        below += p;
        p *= mean / (k as f64 + 1.0);
    }
    (1.0 - below).max(0.0)
}

/// qubits (x) cavity state: |q><q| (x) |alpha><alpha|, q a 4-vector (cell 1, cell 2).
pub fn product_state(qubits: &CMat, alpha: C64, n_fock: usize) -> CMat {
    let cav = projector(&coherent_ket(alpha, n_fock));
    kron(qubits, &cav)
}

/// |g g> (x) |alpha>
pub fn default_state(p: &Params) -> Result<CMat> {
    let n = n_fock(p)?;
    let mut q = vec![ZERO; 4];
    q[0] = ONE;
    Ok(product_state(&projector(&q), alpha(p)?, n))
}

/// Reduced (cell 1, cell 2) state: trace over the cavity.
pub fn reduced_qubits(rho: &CMat, n_fock: usize) -> CMat {
    trace_out_second(rho, 4, n_fock + 1)
}

/// Reduced cavity state.
pub fn reduced_cavity(rho: &CMat, n_fock: usize) -> CMat {
    trace_out_first(rho, 4, n_fock + 1)
}
