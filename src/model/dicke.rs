//! `dicke` (Ferraro et al., PRL 120, 117702 (2018)): N identical two-level cells in
//! one cavity mode truncated at n_fock, in the symmetric (Dicke) subspace of the cells.
//!
//! Cells: collective spin j = N/2, basis |j, m>, m = -j..j, indexed by the number of
//! excitations k = m + j = 0..N. Cavity: |0>..|n_fock>. Index = k (n_fock + 1) + n, so the
//! dimension is (N + 1)(n_fock + 1).
//!
//!   J_z |k> = (k - N/2) |k>
//!   J_+ |k> = sqrt((k + 1)(N - k)) |k + 1>      (= sqrt(j(j+1) - m(m+1)) |m + 1>)
//!   J_- = J_+^dag,  J_x = (J_+ + J_-)/2
//!   a |n> = sqrt(n) |n - 1>
//!
//!   coupling = "dicke":           H = wc a^dag a + wa (J_z + N/2) + 2 g J_x (a + a^dag)
//!   coupling = "tavis-cummings":  H = wc a^dag a + wa (J_z + N/2) + g (J_+ a + J_- a^dag)
//!   dissipator: kappa D[a] + gamma D[J_-]  (cavity loss, collective cell decay)
//!   battery: H_B = wa (J_z + N/2) = wa sum_i n_i on the cells; charger: the cavity, wc a^dag a.

use super::cavity_cells::{annihilation, coherent_ket};
use super::{jumps, rate, real, real_opt, spec, text, OpenSystem, ParamDefault::*, ParamSpec, ParamValue, Params, Space};
use crate::error::{QbatError, Result};
use crate::linalg::*;

/// Largest number of cells accepted (the issue asks for at least 16).
pub const MAX_N_CELLS: usize = 64;
/// Largest total dimension (N + 1)(n_fock + 1): the dense per-member state of the reference
/// alone is dim^2 complex numbers; this is the cavity-cells limit, 4 (400 + 1).
pub const MAX_DIM: usize = 1604;

pub fn params() -> Vec<ParamSpec> {
    vec![
        spec("n_cells", Int(4), "number of cells N (an integer in [1, 64]; collective spin j = N/2); not sweepable"),
        spec("n_fock", Int(12), "Fock cutoff (keeps |0>..|n_fock>), integer >= 1 with (N + 1)(n_fock + 1) <= 1604; not sweepable"),
        spec("wc", Real(1.0), "cavity frequency"),
        spec("wa", Real(1.0), "cell frequency (H_B = wa (J_z + N/2))"),
        spec("g", Real(0.05), "cavity-cell coupling"),
        spec("coupling", Text("dicke"), "\"dicke\" (2 g J_x (a + a^+)) or \"tavis-cummings\" (g (J_+ a + J_- a^+))"),
        spec("kappa", Real(0.0), "cavity loss rate (kappa D[a])"),
        spec("gamma", Real(0.0), "collective cell decay rate (gamma D[J_-])"),
        spec("photons", Optional, "initial cavity Fock state |photons> (default: |N>, as in the paper)"),
        spec("alpha", Optional, "initial coherent cavity state |alpha> instead ([re, im] or real)"),
        spec("dicke_m", Optional, "initial cell Dicke state |j, m>, m in -N/2..N/2 (default -N/2: every cell in its ground state)"),
    ]
}

/// An integer parameter within [lo, hi].
fn int_param(p: &Params, name: &str, lo: usize, hi: usize) -> Result<usize> {
    let x = real(p, name)?;
    if x.fract() != 0.0 || x < lo as f64 {
        return Err(QbatError::invalid(format!("params.{name}"), format!("must be an integer >= {lo}, got {}", crate::error::shown(x))));
    }
    if x > hi as f64 {
        return Err(QbatError::TooLarge { field: format!("params.{name}"), reason: format!("{} is too large (limit {hi})", crate::error::shown(x)) });
    }
    Ok(x as usize)
}

/// N, checked: an integer in 1..=MAX_N_CELLS.
pub fn n_cells(p: &Params) -> Result<usize> {
    int_param(p, "n_cells", 1, MAX_N_CELLS)
}

/// (N, n_fock), checked: N in 1..=MAX_N_CELLS, n_fock >= 1, (N + 1)(n_fock + 1) <= MAX_DIM.
pub fn sizes(p: &Params) -> Result<(usize, usize)> {
    let n = n_cells(p)?;
    let nf = int_param(p, "n_fock", 1, MAX_DIM)?;
    if (n + 1) * (nf + 1) > MAX_DIM {
        return Err(QbatError::TooLarge {
            field: "params.n_fock".into(),
            reason: format!("(n_cells + 1)(n_fock + 1) = {} is beyond the limit {MAX_DIM} on the dimension", (n + 1) * (nf + 1)),
        });
    }
    Ok((n, nf))
}

/// Whether the Hamiltonian keeps the rotating-wave (Tavis-Cummings) form.
pub fn is_tavis_cummings(p: &Params) -> Result<bool> {
    match text(p, "coupling")?.as_str() {
        "dicke" => Ok(false),
        "tavis-cummings" => Ok(true),
        other => Err(QbatError::invalid("params.coupling", format!("must be \"dicke\" or \"tavis-cummings\", got \"{other}\""))),
    }
}

/// J_+ on the N + 1 Dicke states: J_+ |k> = sqrt((k + 1)(N - k)) |k + 1>.
pub fn j_plus(n: usize) -> CMat {
    let mut m = CMat::zeros(n + 1, n + 1);
    for k in 0..n {
        m[(k + 1, k)] = c((((k + 1) * (n - k)) as f64).sqrt(), 0.0);
    }
    m
}

/// J_z + N/2 = diag(0, 1, .., N): the number of excited cells.
pub fn excitations(n: usize) -> CMat {
    CMat::from_diagonal(&nalgebra::DVector::from_iterator(n + 1, (0..=n).map(|k| c(k as f64, 0.0))))
}

pub fn build(p: &Params) -> Result<OpenSystem> {
    let (n, nf) = sizes(p)?;
    let (wc, wa, g) = (real(p, "wc")?, real(p, "wa")?, real(p, "g")?);
    let (kappa, gamma) = (rate(p, "kappa")?, rate(p, "gamma")?);
    let tc = is_tavis_cummings(p)?;
    let (ic, ia) = (identity(n + 1), identity(nf + 1));
    let a_cav = annihilation(nf);
    let ad_cav = a_cav.adjoint();
    let j_p = j_plus(n);
    let j_m = j_p.adjoint();
    // Products of Kronecker products, factor by factor: (A (x) B)(C (x) D) = AC (x) BD, so
    // J_+ a = J_+ (x) a and a^+ a = 1 (x) a^+a, without a dense product of the full matrices
    // (each entry of which has one non-zero term: the same numbers).
    let coupling = if tc {
        (kron(&j_p, &a_cav) + kron(&j_m, &ad_cav)) * c(g, 0.0)
    } else {
        // 2 g J_x (a + a^dag) = g (J_+ + J_-)(a + a^dag)
        kron(&(&j_p + &j_m), &(&a_cav + &ad_cav)) * c(g, 0.0)
    };
    let nb = excitations(n);
    let h = kron(&ic, &(&ad_cav * &a_cav)) * c(wc, 0.0) + kron(&nb, &ia) * c(wa, 0.0) + &coupling;
    // J_- as the adjoint of J_+ (x) 1, not J_- (x) 1: the same numbers but for the sign of
    // its zero imaginary parts, which the jump keeps as it was
    let (a, jm) = (kron(&ic, &a_cav), kron(&j_p, &ia).adjoint());
    Ok(OpenSystem {
        space: Space::Dicke { n_cells: n, n_fock: nf },
        hamiltonian: h,
        jumps: jumps(vec![(a, kappa), (jm, gamma)]),
        h_battery: nb * c(wa, 0.0),
        h_charger: annihilation(nf).adjoint() * annihilation(nf) * c(wc, 0.0),
        dephasing: 0.0,
        coupling: std::sync::Arc::new(coupling),
    })
}

/// `initial_parts`' checks alone (`ModelKind::check_start`).
pub fn check_start(p: &Params) -> Result<()> {
    let (n, nf) = sizes(p)?;
    initial_parts(p, n, nf).map(|_| ())
}

/// The initial cavity state: Fock |photons> (default |N>) or coherent |alpha>.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CavityStart {
    Fock(usize),
    Coherent(C64),
}

/// The cavity start and the cells' Dicke index k = m + N/2, checked against the cutoff.
pub fn initial_parts(p: &Params, n: usize, nf: usize) -> Result<(CavityStart, usize)> {
    let cav = match (real_opt(p, "photons")?, p.get("alpha")) {
        (Some(_), Some(_)) => return Err(QbatError::invalid("params.alpha", "give photons or alpha for the initial cavity state, not both")),
        (None, Some(ParamValue::Real(x))) => CavityStart::Coherent(c(*x, 0.0)),
        (None, Some(ParamValue::Complex(z))) => CavityStart::Coherent(*z),
        (None, Some(_)) => return Err(QbatError::invalid("params.alpha", "must be a real number or [re, im]")),
        (Some(x), None) => {
            if x.fract() != 0.0 || x < 0.0 {
                return Err(QbatError::invalid("params.photons", format!("must be an integer >= 0, got {}", crate::error::shown(x))));
            }
            // (compared before the cast, which saturates: 1e60 was named as |2^64 - 1>)
            if x > nf as f64 {
                let k = crate::error::shown(x);
                return Err(QbatError::invalid("params.photons", format!("the initial Fock state |{k}> needs n_fock >= {k}, got n_fock = {nf}")));
            }
            CavityStart::Fock(x as usize)
        }
        (None, None) if n > nf => {
            return Err(QbatError::invalid("params.n_fock", format!("the initial Fock state |{n}> needs n_fock >= {n}, got n_fock = {nf}")))
        }
        (None, None) => CavityStart::Fock(n),
    };
    let k = match real_opt(p, "dicke_m")? {
        None => 0,
        Some(m) => {
            let k = m + n as f64 / 2.0;
            if k.fract() != 0.0 || k < 0.0 || k > n as f64 {
                return Err(QbatError::invalid("params.dicke_m", format!("must be one of -N/2, -N/2 + 1, .., N/2 (N = {n}), got {}", crate::error::shown(m))));
            }
            k as usize
        }
    };
    Ok((cav, k))
}

/// The cavity ket of a start, on |0>..|n_fock>.
pub fn cavity_ket(start: CavityStart, nf: usize) -> Vec<C64> {
    match start {
        CavityStart::Fock(k) => {
            let mut v = vec![ZERO; nf + 1];
            v[k] = ONE;
            v
        }
        CavityStart::Coherent(alpha) => coherent_ket(alpha, nf),
    }
}

/// cells (x) cavity: rho_cells (x) |psi_cav><psi_cav|, rho_cells an (N + 1)-square state.
pub fn with_cavity(cells: &CMat, p: &Params) -> Result<CMat> {
    let (n, nf) = sizes(p)?;
    let (cav, _) = initial_parts(p, n, nf)?;
    Ok(kron(cells, &projector(&cavity_ket(cav, nf))))
}

/// |j, m> (x) cavity start: by default every cell in its ground state and the cavity in |N>.
pub fn default_state(p: &Params) -> Result<CMat> {
    let (n, nf) = sizes(p)?;
    let (_, k) = initial_parts(p, n, nf)?;
    let mut cells = vec![ZERO; n + 1];
    cells[k] = ONE;
    with_cavity(&projector(&cells), p)
}

/// Reduced state of the cells ((N + 1)-square): trace over the cavity.
pub fn reduced_cells(rho: &CMat, n_cells: usize, n_fock: usize) -> CMat {
    trace_out_second(rho, n_cells + 1, n_fock + 1)
}
