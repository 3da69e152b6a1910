//! Measures of the `dicke` model: the battery is the N cells, whose state lives on the
//! symmetric subspace (dimension N + 1, Dicke index k = 0..N excitations), but whose physical
//! Hilbert space is (C^2)^{(x) N}, dimension 2^N, with H_B = wa sum_i n_i.
//!
//! Ergotropy and capacity are defined over all unitaries of the 2^N cell space, as for any
//! battery. Reduced form for a state rho_b supported on the symmetric subspace
//! (docs/physics.md, "dicke"):
//!
//!   Embedded in 2^N, rho_b has the eigenvalues lam_0 >= lam_1 >= .. >= lam_N of its
//!   (N+1)-square matrix and 2^N - N - 1 zeros. The spectrum of H_B on 2^N is wa k with
//!   multiplicity C(N, k). The passive state puts lam_i on the i-th lowest level of the 2^N
//!   spectrum, the most active one on the i-th highest; only the N + 1 lowest (highest)
//!   levels meet a non-zero lam. For wa >= 0 these are 0 (once) then wa (N times), and
//!   N wa (once) then (N - 1) wa (N times), so
//!     E_passive = wa (Tr rho_b - lam_0)
//!     E_active  = wa (N lam_0 + (N - 1)(Tr rho_b - lam_0))
//!     ergotropy = Tr(rho_b H_B) - E_passive,  capacity = E_active - E_passive
//!                                              = wa ((N - 2) Tr rho_b + 2 lam_0).
//!   (Within the symmetric subspace alone the levels are 0, wa, .., N wa, once each, and the
//!   ergotropy is smaller for N >= 2: the full space has N degenerate single-excitation
//!   levels to put the next N populations in.) `levels_low`/`levels_high` below take the
//!   N + 1 lowest/highest levels for any sign of wa.
//!
//! Other battery measures (energy, variance, entropy) depend only on rho_b and its spectrum,
//! which the embedding does not change. purity is Tr rho^2 of the full (cells + cavity) state,
//! 1 for every closed run; min_eigenvalue, trace_error, photon_number, fock_tail see the full
//! state too.

use super::{coherence, energy, health, rate_per_time, Measure, MeasureContext, Sample};
use crate::linalg::{is_finite, CMat};
use crate::model::dicke::reduced_cells;
use Measure::*;

/// The measures of the dicke model, in `Measure::ALL` order.
pub const APPLIES: [Measure; 15] = [
    EnergyB,
    StoredEnergyB,
    ErgotropyB,
    AntiergotropyB,
    CapacityB,
    PowerB,
    ErgotropicPowerB,
    EnergyVarianceB,
    Purity,
    EntropyB,
    PhotonNumber,
    TraceError,
    MinEigenvalue,
    FockTail,
    EnergyPerCell,
];

/// The N + 1 lowest levels of wa sum_i n_i on 2^N cells, ascending (levels wa k, k = 0..N,
/// each C(N, k) times).
pub fn levels_low(n: usize, wa: f64) -> Vec<f64> {
    let mut ks: Vec<usize> = (0..=n).collect();
    if wa < 0.0 {
        ks.reverse();
    }
    take_levels(n, wa, &ks)
}

/// The N + 1 highest levels, descending.
pub fn levels_high(n: usize, wa: f64) -> Vec<f64> {
    let mut ks: Vec<usize> = (0..=n).collect();
    if wa >= 0.0 {
        ks.reverse();
    }
    take_levels(n, wa, &ks)
}

/// The first N + 1 levels wa k, k in the order given, each repeated C(N, k) times.
fn take_levels(n: usize, wa: f64, ks: &[usize]) -> Vec<f64> {
    let mut out = Vec::with_capacity(n + 1);
    for &k in ks {
        // C(N, k) = C(N, N - k), or any count past N where it is larger (only N + 1 levels
        // are taken): C(N, i + 1) = C(N, i) (N - i) / (i + 1) exactly, rising with i up to
        // N / 2, so the first past N ends the count. (A cap inside the product made C(N, N)
        // of 62 cells and more 0: the top level N wa was lost from the active energy.)
        let mut mult: usize = 1;
        for i in 0..k.min(n - k) {
            mult = mult * (n - i) / (i + 1);
            if mult > n {
                break;
            }
        }
        for _ in 0..mult.min(n + 1 - out.len()) {
            out.push(wa * k as f64);
        }
        if out.len() == n + 1 {
            break;
        }
    }
    out
}

/// (passive, active) energy of rho_b over all unitaries of the 2^N cells, from its
/// eigenvalues `lam` (any order).
pub fn passive_active(lam: &[f64], n: usize, wa: f64) -> (f64, f64) {
    let mut desc = lam.to_vec();
    desc.sort_by(|x, y| y.total_cmp(x));
    let low = levels_low(n, wa);
    let high = levels_high(n, wa);
    let passive = desc.iter().zip(&low).map(|(l, e)| l * e).sum();
    let active = desc.iter().zip(&high).map(|(l, e)| l * e).sum();
    (passive, active)
}

/// The per-sample state of the cells.
struct Cells {
    rb: CMat,
    lam: std::cell::OnceCell<Vec<f64>>,
}

impl Cells {
    fn lam(&self) -> &[f64] {
        self.lam.get_or_init(|| energy::eigvals_asc(&self.rb))
    }
}

/// What the dicke measures need of a sample: the reduced cell state and four sums over the
/// full state (what the GPU kernel returns per sample); `min_eigenvalue` only where asked
/// for (it needs the full state).
pub struct DickeSample {
    pub rb: CMat,
    pub trace: f64,
    pub photon_number: f64,
    pub fock_tail: f64,
    /// Tr rho^2 = sum_ij |rho_ij|^2 of the full state.
    pub purity: f64,
    pub min_eigenvalue: Option<f64>,
}

impl DickeSample {
    /// From the full state, every measure's input.
    pub fn from_full(rho: &CMat, n: usize, n_fock: usize, with_min_eigenvalue: bool) -> DickeSample {
        DickeSample {
            rb: reduced_cells(rho, n, n_fock),
            trace: rho.trace().re,
            photon_number: photon_number(rho, n + 1, n_fock),
            fock_tail: fock_tail(rho, n + 1, n_fock),
            purity: coherence::purity(rho),
            min_eigenvalue: with_min_eigenvalue.then(|| health::min_eigenvalue(rho)),
        }
    }
}

/// Values in the order of `list` for the dicke space; NaN for a measure that does not apply.
pub fn evaluate(list: &[Measure], ctx: &MeasureContext, s: &Sample, n: usize, n_fock: usize) -> Vec<f64> {
    if !is_finite(s.rho) {
        return vec![f64::NAN; list.len()];
    }
    let d = DickeSample::from_full(s.rho, n, n_fock, list.contains(&MinEigenvalue));
    evaluate_sample(list, ctx, s.t, &d, n)
}

/// The measures from a [`DickeSample`] at time t (NaN for min_eigenvalue without it).
pub fn evaluate_sample(list: &[Measure], ctx: &MeasureContext, t: f64, d: &DickeSample, n: usize) -> Vec<f64> {
    if !is_finite(&d.rb) || ![d.trace, d.photon_number, d.fock_tail, d.purity].iter().all(|x| x.is_finite()) {
        return vec![f64::NAN; list.len()];
    }
    let st = Cells { rb: d.rb.clone(), lam: Default::default() };
    let hb = &ctx.h_battery;
    let wa = if n > 0 { hb[(1, 1)].re } else { 0.0 };
    let e = energy::energy(&st.rb, hb);
    let pa = || passive_active(st.lam(), n, wa);
    list.iter()
        .map(|m| match m {
            EnergyB => e,
            StoredEnergyB => e - ctx.energy_b0,
            EnergyPerCell => e / n as f64,
            ErgotropyB => e - pa().0,
            AntiergotropyB => e - pa().1,
            CapacityB => pa().1 - pa().0,
            PowerB => rate_per_time(e - ctx.energy_b0, t),
            ErgotropicPowerB => rate_per_time(e - pa().0, t),
            EnergyVarianceB => energy::variance(&st.rb, hb),
            Purity => d.purity,
            EntropyB => coherence::entropy_bits(&st.rb),
            PhotonNumber => d.photon_number,
            FockTail => d.fock_tail,
            TraceError => (d.trace - 1.0).abs(),
            MinEigenvalue => d.min_eigenvalue.unwrap_or(f64::NAN),
            _ => f64::NAN,
        })
        .collect()
}

/// Tr(rho a^+ a) = sum_{b, n} n rho[b(N+1)+n, b(N+1)+n] over `blocks` cell states.
pub fn photon_number(rho: &CMat, blocks: usize, n_fock: usize) -> f64 {
    let d = n_fock + 1;
    (0..blocks).flat_map(|b| (1..d).map(move |n| (b, n))).map(|(b, n)| n as f64 * rho[(b * d + n, b * d + n)].re).sum()
}

/// Population of the top Fock state |n_fock>.
pub fn fock_tail(rho: &CMat, blocks: usize, n_fock: usize) -> f64 {
    let d = n_fock + 1;
    (0..blocks).map(|b| rho[(b * d + n_fock, b * d + n_fock)].re).sum()
}
