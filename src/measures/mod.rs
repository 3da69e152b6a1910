//! Battery measures (docs/physics.md "Measures"). Pure functions of states and Hamiltonians, f64.
//!
//! energy.rs (energy, ergotropy, capacity, variance), entanglement.rs (concurrence),
//! correlations.rs (T matrix, steering, Bell), coherence.rs (l1, imaginarity, texture, purity,
//! entropy), health.rs (trace, positivity, photon number, Fock tail). `evaluate` below is the
//! per-sample entry point of the run pipeline.

pub mod coherence;
pub mod correlations;
pub mod dicke;
pub mod energy;
pub mod entanglement;
pub mod health;
pub mod saved;

use crate::error::{QbatError, Result};
use crate::linalg::{re_trace_product, reduced_battery, reduced_charger, CMat};
use crate::model::{cavity_cells, ModelKind, OpenSystem, Space};

/// Defines `Measure` from one table: each variant with its docs/physics.md column name and
/// its definition, in the order of `Measure::ALL` (and of the derived `Ord`). One table, so
/// that the enum, `ALL`, `name` and `doc` cannot drift apart.
macro_rules! measures {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// Every output measure, by its docs/physics.md column name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Measure {
            $($variant,)*
        }

        impl Measure {
            pub const ALL: [Measure; [$($name),*].len()] = [$(Measure::$variant),*];

            /// The column name (docs/physics.md).
            pub fn name(&self) -> &'static str {
                match self {
                    $(Measure::$variant => $name,)*
                }
            }

            /// The definition, one line (`qbat-gpu measures`).
            pub fn doc(&self) -> &'static str {
                match self {
                    $(Measure::$variant => $doc,)*
                }
            }
        }
    };
}

measures! {
    EnergyB => "energy_b", "Tr(rho_b H_B)";
    EnergyC => "energy_c", "Tr(rho_c H_C)";
    StoredEnergyB => "stored_energy_b", "energy_b(t) - energy_b(0)";
    ErgotropyB => "ergotropy_b", "Tr(rho_b H_B) - sum_i eps_i lam_{d-1-i} (passive energy subtracted)";
    AntiergotropyB => "antiergotropy_b", "Tr(rho_b H_B) - sum_i eps_i lam_i (<= 0)";
    CapacityB => "capacity_b", "sum_i eps_i (lam_i - lam_{d-1-i}) of rho_b against H_B";
    CapacityC => "capacity_c", "sum_i eps_i (lam_i - lam_{d-1-i}) of rho_c against H_C";
    CapacityTotal => "capacity_total", "capacity of the two-qubit state against the full H (two-qubit models)";
    ResidualCapacity => "residual_capacity", "capacity_total - capacity_b - capacity_c (two-qubit models)";
    PowerB => "power_b", "stored_energy_b / t (0 at t = 0; 0 at t = inf, its limit, in steady runs)";
    ErgotropicPowerB => "ergotropic_power_b", "ergotropy_b / t (0 at t = 0; 0 at t = inf, its limit, in steady runs)";
    EnergyVarianceB => "energy_variance_b", "Tr(rho_b H_B^2) - Tr(rho_b H_B)^2";
    EnergyFluctuationB => "energy_fluctuation_b", "Sigma(t) of paper 003 eq. 6 (two-time, regression theorem): sign(Sigma^2) sqrt(|Sigma^2|)";
    Concurrence => "concurrence", "Wootters concurrence of the two-qubit state";
    SteeringF3 => "steering_f3", "Tr(T T^T) - 1";
    SteeringAb => "steering_ab", "LOO steering charger -> battery (paper 002)";
    SteeringBa => "steering_ba", "LOO steering battery -> charger (paper 002)";
    BellChsh => "bell_chsh", "2 sqrt(u1 + u2) - 2, u the two largest eigenvalues of T^T T";
    CoherenceL1 => "coherence_l1", "sum_{i != j} |rho_ij| of the two-qubit state";
    ImaginarityL1 => "imaginarity_l1", "sum_{i != j} |Im rho_ij| of the two-qubit state";
    TextureB => "texture_b", "(1/2) ||rho_b - |+><+| ||_tr";
    Purity => "purity", "Tr rho^2 of the two-qubit state (cavity-cells: the cells' reduced state; dicke: the full state)";
    EntropyB => "entropy_b", "-Tr rho_b log2 rho_b (bits)";
    PhotonNumber => "photon_number", "Tr(rho a^+ a) (cavity-cells, dicke)";
    TraceError => "trace_error", "|Tr rho - 1|";
    MinEigenvalue => "min_eigenvalue", "smallest eigenvalue of the full state (positivity)";
    FockTail => "fock_tail", "population of the top Fock state |N> (cavity-cells, dicke)";
    SteadyResidual => "steady_residual", "||L rho||_F of the solved steady state (steady runs only, [time] steady = true)";
    EnergyPerCell => "energy_per_cell", "energy_b / N (dicke)";
    TextureC => "texture_c", "(1/2) ||rho_c - |+><+| ||_tr";
    ErgotropyC => "ergotropy_c", "Tr(rho_c H_C) - sum_i eps_i lam_{d-1-i} (charger's passive energy subtracted)";
    AntiergotropyC => "antiergotropy_c", "Tr(rho_c H_C) - sum_i eps_i lam_i (<= 0)";
    EnergyVarianceC => "energy_variance_c", "Tr(rho_c H_C^2) - Tr(rho_c H_C)^2";
    SmBRe => "sm_b_re", "Re <s-_b> = Re Tr(rho_b |g><e|)";
    SmBIm => "sm_b_im", "Im <s-_b> = Im Tr(rho_b |g><e|)";
    SmCRe => "sm_c_re", "Re <s-_c> = Re Tr(rho_c |g><e|)";
    SmCIm => "sm_c_im", "Im <s-_c> = Im Tr(rho_c |g><e|)";
}

use Measure::*;

impl Measure {
    pub fn from_name(name: &str) -> Result<Measure> {
        Measure::ALL
            .iter()
            .copied()
            .find(|m| m.name() == name)
            .ok_or_else(|| QbatError::invalid("output.measures", format!("unknown measure '{name}'; `qbat-gpu measures` lists them")))
    }

    /// Does the measure apply to a model? capacity_total/residual_capacity are two-qubit only;
    /// photon_number and fock_tail are cavity only; steady_residual is two-qubit only (and
    /// steady runs only, `steady_only`).
    pub fn applies(&self, cavity: bool) -> bool {
        match self {
            CapacityTotal | ResidualCapacity | SteadyResidual => !cavity,
            PhotonNumber | FockTail => cavity,
            EnergyPerCell => false,
            _ => true,
        }
    }

    /// Does the measure apply to `model`? dicke has its own list (`dicke::APPLIES`); the
    /// others as `applies`.
    pub fn applies_to(&self, model: ModelKind) -> bool {
        match model {
            ModelKind::Dicke => dicke::APPLIES.contains(self),
            ModelKind::CavityCells => self.applies(true),
            _ => self.applies(false),
        }
    }

    /// Measures that are written only when `output.measures` lists them: the charger-side
    /// mirrors and <s->, so that the default outputs (and the default study) keep their columns.
    pub fn opt_in(&self) -> bool {
        matches!(self, TextureC | ErgotropyC | AntiergotropyC | EnergyVarianceC | SmBRe | SmBIm | SmCRe | SmCIm)
    }

    /// Measures of steady-state runs only (`[time] steady = true`): the residual ||L rho||_F
    /// of the solved state is not a function of a sampled state, and no integrator gives it.
    pub fn steady_only(&self) -> bool {
        matches!(self, SteadyResidual)
    }

    /// Measures that need a 4x4 eigen-solve (or a full-state one): the two-qubit GPU engine
    /// computes them with its measures kernel, the cavity one on the host with that kernel's
    /// CPU twin; min_eigenvalue of a cavity or dicke state needs the full state.
    pub fn needs_eigensolve(&self) -> bool {
        matches!(self, CapacityTotal | ResidualCapacity | Concurrence | SteeringAb | SteeringBa | MinEigenvalue)
    }

    /// Measures whose error near rank-deficient (pure) states grows like the square root of
    /// the state's error: the concurrence (docs/physics.md), and the LOO steerings through
    /// sqrt((2 - Tr rho_c^2)(1 - Tr rho_b^2)) at a pure reduced state.
    pub fn sqrt_sensitive(&self) -> bool {
        matches!(self, Concurrence | SteeringAb | SteeringBa | EnergyFluctuationB)
    }
}

/// The default measure list of an integrated run: every measure that applies but the opt-in
/// ones (steady runs add steady_residual).
pub fn default_measures(model: ModelKind) -> Vec<Measure> {
    Measure::ALL.iter().copied().filter(|m| m.applies_to(model) && !m.steady_only() && !m.opt_in()).collect()
}

/// Two-qubit phase-flip channel of paper 000 app. B with probability p (the product of one
/// phase flip per qubit): sum_k K_k m K_k^+ with K1 = (1-p) I x I, K2 = sqrt(p(1-p)) I x sz,
/// K3 = sqrt(p(1-p)) sz x I, K4 = p sz x sz. Elementwise: m_ij -> (1 - 2p)^k m_ij, k = number
/// of qubits whose bit differs between i and j. Linear, so it also applies to non-Hermitian m.
pub fn dephase(rho4: &CMat, p: f64) -> CMat {
    assert!(rho4.nrows() == 4 && rho4.ncols() == 4, "dephase expects a 4x4 two-qubit matrix");
    let f = 1.0 - 2.0 * p;
    CMat::from_fn(4, 4, |i, j| {
        let k = (i ^ j).count_ones() as i32;
        rho4[(i, j)] * f.powi(k)
    })
}

/// The (cell 1 = charger, cell 2 = battery) part of a full-space matrix: m itself for two
/// qubits, the partial trace over the cavity for the cavity layout (also for non-Hermitian m),
/// then the dephasing channel when p > 0.
pub fn two_qubit_part(space: Space, m: &CMat, dephasing: f64) -> CMat {
    assert_eq!(m.nrows(), space.dim(), "matrix dimension does not match the space {space:?}");
    let q = match space {
        Space::TwoQubit => m.clone(),
        Space::Cavity { n_fock } => cavity_cells::reduced_qubits(m, n_fock),
        Space::Dicke { .. } => panic!("the dicke model has no two-qubit part (measures::dicke)"),
    };
    if dephasing > 0.0 {
        dephase(&q, dephasing)
    } else {
        q
    }
}

/// Fixed per member: Hamiltonians and initial-state quantities.
#[derive(Clone, Debug)]
pub struct MeasureContext {
    pub space: Space,
    /// Full two-qubit Hamiltonian (4x4) for capacity_total; None for the cavity model.
    pub h_total: Option<CMat>,
    /// Its spectrum, ascending (computed once per member, not per sample).
    pub h_total_eigs: Option<Vec<f64>>,
    pub h_battery: CMat,
    pub h_charger: CMat,
    /// Phase-flip probability p applied to the two-qubit state before every measure (spin-pair, paper 000 app. B):
    /// K1 = (1-p) I x I, K2 = sqrt(p(1-p)) I x sz, K3 = sqrt(p(1-p)) sz x I, K4 = p sz x sz.
    pub dephasing: f64,
    /// Tr(rho0_b H_B) of the initial state.
    pub energy_b0: f64,
    /// H_B's traceless part, H_B - h0 I with h0 = Re Tr(H_B) / dim: energy_fluctuation_b is
    /// taken of it (an offset h0 changes no Heisenberg difference H_B(t) - H_B(0), and written
    /// with H_B, f64 lost h0^2 eps).
    pub h_b_traceless: CMat,
    /// Tr(rho0_b Hb'^2) and Tr(rho0_b Hb') of the initial state, Hb' = `h_b_traceless`.
    pub traceless_sq0: f64,
    pub traceless_energy0: f64,
    /// H_C's traceless part: the charger's measures that an offset of H_C does not change are
    /// taken of it, as the battery's of Hb'.
    pub h_c_traceless: CMat,
}

impl MeasureContext {
    /// The initial-state quantities are taken from the same (dephased) battery state the
    /// measures see at a t = 0 sample, so stored_energy_b(0) = 0 exactly.
    pub fn new(sys: &OpenSystem, rho0: &CMat) -> MeasureContext {
        let rb0 = match sys.space {
            Space::Dicke { n_cells, n_fock } => crate::model::dicke::reduced_cells(rho0, n_cells, n_fock),
            _ => reduced_battery(&two_qubit_part(sys.space, rho0, sys.dephasing)),
        };
        let hb = &sys.h_battery;
        let hbp = traceless_part(hb);
        MeasureContext {
            space: sys.space,
            h_total: match sys.space {
                Space::TwoQubit => Some(sys.hamiltonian.clone()),
                Space::Cavity { .. } | Space::Dicke { .. } => None,
            },
            // (of H's traceless part: capacity_total does not see an offset, and with it f64
            // lost h0 eps in every eigenvalue)
            h_total_eigs: match sys.space {
                Space::TwoQubit => Some(energy::eigvals_asc(&traceless_part(&sys.hamiltonian))),
                Space::Cavity { .. } | Space::Dicke { .. } => None,
            },
            h_battery: hb.clone(),
            h_charger: sys.h_charger.clone(),
            dephasing: sys.dephasing,
            energy_b0: energy::energy(&rb0, hb),
            traceless_sq0: re_trace_product(&rb0, &(&hbp * &hbp)),
            traceless_energy0: energy::energy(&rb0, &hbp),
            h_b_traceless: hbp,
            h_c_traceless: traceless_part(&sys.h_charger),
        }
    }
}

/// One sample: the full state, and Y(t) = e^{Lt}[H_B rho0] (full-space, non-Hermitian) when energy_fluctuation_b is wanted.
pub struct Sample<'a> {
    pub t: f64,
    pub rho: &'a CMat,
    pub y: Option<&'a CMat>,
}

/// The per-sample two-qubit state (dephased) and its reductions, with the spectrum and the
/// LOO steering pair computed at most once per sample however many measures use them.
struct Reduced {
    rho2: CMat,
    rb: CMat,
    rc: CMat,
    rho2_eigs: std::cell::OnceCell<Vec<f64>>,
    loo: std::cell::OnceCell<(f64, f64)>,
}

impl Reduced {
    fn eigs(&self) -> &[f64] {
        self.rho2_eigs.get_or_init(|| energy::eigvals_asc(&self.rho2))
    }
    fn loo(&self) -> (f64, f64) {
        *self.loo.get_or_init(|| correlations::steering_loo(&self.rho2))
    }
    /// capacity_total against the full H (two-qubit models).
    fn capacity_total(&self, ctx: &MeasureContext) -> f64 {
        ctx.h_total_eigs.as_ref().map_or(f64::NAN, |eps| energy::capacity_from_spectra(self.eigs(), eps))
    }
}

/// Values in the order of `list`. A measure that does not apply to the space is an error from
/// the caller's validation, here return f64::NAN for it (also energy_fluctuation_b without Y).
///
/// Two-qubit measures see the two-qubit part of `s.rho` (cavity traced out) after the dephasing
/// channel; diagnostics (trace_error, min_eigenvalue, photon_number, fock_tail) see the full,
/// undephased state.
pub fn evaluate(list: &[Measure], ctx: &MeasureContext, s: &Sample) -> Vec<f64> {
    if let Space::Dicke { n_cells, n_fock } = ctx.space {
        return dicke::evaluate(list, ctx, s, n_cells, n_fock);
    }
    let rho2 = two_qubit_part(ctx.space, s.rho, ctx.dephasing);
    // A non-finite state gives NaN for every measure (the run reports it as an error); the
    // eigen-solvers and SVDs would not return on it.
    if !crate::linalg::is_finite(&rho2) || s.y.is_some_and(|y| !crate::linalg::is_finite(y)) {
        return vec![f64::NAN; list.len()];
    }
    let st = Reduced { rb: reduced_battery(&rho2), rc: reduced_charger(&rho2), rho2, rho2_eigs: Default::default(), loo: Default::default() };
    list.iter().map(|m| value(*m, ctx, s, &st)).collect()
}

/// x / t, 0 at t = 0, and 0 at t = inf (a steady run's one sample: x is bounded, so x / t
/// tends to 0; written as +0, not the -0 of a negative x / inf).
fn rate_per_time(x: f64, t: f64) -> f64 {
    if t == 0.0 || t == f64::INFINITY {
        0.0
    } else {
        x / t
    }
}

/// Each measure of a sample. Those that an offset h0 I of H_B (or H_C) does not change, at
/// Tr rho = 1 (stored energy, ergotropy, antiergotropy, capacity, variance), are taken of the
/// traceless part H' = H - h0 I: written with H they lost h0 eps to the cancellation, and
/// h0 (Tr rho - 1) or h0^2 (Tr rho - 1) to the trace's rounding (the variance 10 at h0 = 1e8,
/// where the two-qubit twins, whose trace is exact, lose nothing).
fn value(m: Measure, ctx: &MeasureContext, s: &Sample, st: &Reduced) -> f64 {
    let (hb, hc) = (&ctx.h_battery, &ctx.h_charger);
    let (hbp, hcp) = (&ctx.h_b_traceless, &ctx.h_c_traceless);
    let stored = || energy::energy(&st.rb, hbp) - ctx.traceless_energy0;
    let n_fock = match ctx.space {
        Space::Cavity { n_fock } => Some(n_fock),
        Space::TwoQubit | Space::Dicke { .. } => None,
    };
    match m {
        EnergyB => energy::energy(&st.rb, hb),
        EnergyC => energy::energy(&st.rc, hc),
        StoredEnergyB => stored(),
        ErgotropyB => energy::ergotropy(&st.rb, hbp),
        AntiergotropyB => energy::antiergotropy(&st.rb, hbp),
        CapacityB => energy::capacity(&st.rb, hbp),
        CapacityC => energy::capacity(&st.rc, hcp),
        CapacityTotal => st.capacity_total(ctx),
        ResidualCapacity => st.capacity_total(ctx) - energy::capacity(&st.rb, hbp) - energy::capacity(&st.rc, hcp),
        PowerB => rate_per_time(stored(), s.t),
        ErgotropicPowerB => rate_per_time(energy::ergotropy(&st.rb, hbp), s.t),
        EnergyVarianceB => energy::variance(&st.rb, hbp),
        EnergyFluctuationB => s.y.map_or(f64::NAN, |y| energy_fluctuation(ctx, st, y)),
        Concurrence => entanglement::concurrence(&st.rho2),
        SteeringF3 => correlations::steering_f3(&st.rho2),
        SteeringAb => st.loo().0,
        SteeringBa => st.loo().1,
        BellChsh => correlations::bell_chsh(&st.rho2),
        CoherenceL1 => coherence::coherence_l1(&st.rho2),
        ImaginarityL1 => coherence::imaginarity_l1(&st.rho2),
        TextureB => coherence::texture(&st.rb),
        Purity => coherence::purity(&st.rho2),
        EntropyB => coherence::entropy_bits(&st.rb),
        PhotonNumber => n_fock.map_or(f64::NAN, |n| health::photon_number(s.rho, n)),
        TraceError => health::trace_error(s.rho),
        // Two-qubit models: the sampled state (after the spin-pair dephasing channel, which
        // docs/physics.md applies before every measure); cavity: the full state.
        MinEigenvalue => match ctx.space {
            Space::TwoQubit => st.eigs()[0],
            Space::Cavity { .. } | Space::Dicke { .. } => health::min_eigenvalue(s.rho),
        },
        FockTail => n_fock.map_or(f64::NAN, |n| health::fock_tail(s.rho, n)),
        // Not a function of the state: the steady solver fills it in (steady.rs).
        SteadyResidual | EnergyPerCell => f64::NAN,
        TextureC => coherence::texture(&st.rc),
        ErgotropyC => energy::ergotropy(&st.rc, hcp),
        AntiergotropyC => energy::antiergotropy(&st.rc, hcp),
        EnergyVarianceC => energy::variance(&st.rc, hcp),
        SmBRe => coherence::sigma_minus(&st.rb).re,
        SmBIm => coherence::sigma_minus(&st.rb).im,
        SmCRe => coherence::sigma_minus(&st.rc).re,
        SmCIm => coherence::sigma_minus(&st.rc).im,
    }
}

/// Sigma of paper 003 eq. 6 from the regression theorem (docs/physics.md), of H_B's traceless
/// part Hb' = H_B - h0 I (the same Sigma: H(t) - H(0) does not see h0, the evolution being
/// trace-preserving and its Heisenberg picture unital):
///   Sigma^2 = Tr(Hb'^2 rho_b(t)) - 2 Re Tr(Hb' Y_b(t)) + Tr(Hb'^2 rho0_b) - s^2,
///   s = Tr(Hb' rho_b(t)) - Tr(Hb' rho0_b),
/// Y_b the battery part of Y(t) = e^{Lt}[Hb' rho0] (`battery_times_state`; dephased like the
/// state: the channel applied at t acts on Y in Tr(Hb' E(Y))). Returned sign-preserving, not
/// clamped: Sigma = sqrt(Sigma^2) when Sigma^2 >= 0 and -sqrt(-Sigma^2) otherwise, so a
/// negative value reveals numerical trouble (a few 1e-8 below zero is rounding near Sigma = 0).
fn energy_fluctuation(ctx: &MeasureContext, st: &Reduced, y: &CMat) -> f64 {
    let hb = &ctx.h_b_traceless;
    let yb = reduced_battery(&two_qubit_part(ctx.space, y, ctx.dephasing));
    let s = energy::energy(&st.rb, hb) - ctx.traceless_energy0;
    let s2 = re_trace_product(&st.rb, &(hb * hb)) - 2.0 * re_trace_product(hb, &yb) + ctx.traceless_sq0 - s * s;
    let sigma = if s2 >= 0.0 { s2.sqrt() } else { -(-s2).sqrt() };
    sigma + 0.0 // turns -0.0 into 0.0
}

pub use crate::linalg::traceless_part;

/// The resources capacity_b is compared with by default (paper 000), in table order.
pub const DEFAULT_RESOURCES: [&str; 9] =
    ["concurrence", "steering_f3", "steering_ab", "steering_ba", "bell_chsh", "coherence_l1", "imaginarity_l1", "texture_b", "ergotropy_b"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::*;
    use crate::model::{resolve_params, ModelKind, ParamValue, Params};

    fn system(kind: ModelKind, given: &[(&str, f64)]) -> OpenSystem {
        let p: Params = given.iter().map(|(k, v)| (k.to_string(), ParamValue::Real(*v))).collect();
        kind.build(&resolve_params(kind, &p).unwrap()).unwrap()
    }

    /// e^{-iHt} from the eigendecomposition of the Hermitian H.
    fn propagator(h: &CMat, t: f64) -> CMat {
        let e = hermitian_part(h).symmetric_eigen();
        let d = CMat::from_diagonal(&nalgebra::DVector::from_iterator(h.nrows(), e.eigenvalues.iter().map(|&x| C64::from_polar(1.0, -x * t))));
        &e.eigenvectors * d * e.eigenvectors.adjoint()
    }

    fn eval1(m: Measure, ctx: &MeasureContext, t: f64, rho: &CMat) -> f64 {
        evaluate(&[m], ctx, &Sample { t, rho, y: None })[0]
    }

    #[test]
    fn exchange_pure_states_satisfy_paper_000_relations() {
        // psi = a|eg> + b|ge>: E = 2|ab|, capacity_b = 2 wb sqrt(1 - E^2), steering_f3 = 2 E^2,
        // bell_chsh = 2 sqrt(1 + E^2) - 2, coherence_l1 = E.
        let (wb, wc) = (1.3, 0.7);
        let sys = system(ModelKind::SpinPair, &[("wb", wb), ("wc", wc), ("j1", 0.2), ("j2", 0.05)]);
        let list = [Concurrence, CapacityB, CapacityC, SteeringF3, BellChsh, CoherenceL1];
        for k in 0..=12 {
            let th = k as f64 * 0.13;
            let (a, b) = (C64::from_polar(th.cos(), 0.4 * th), C64::from_polar(th.sin(), -1.1));
            let rho = projector(&[ZERO, b, a, ZERO]); // index 2 = |eg>, 1 = |ge>
            let ctx = MeasureContext::new(&sys, &rho);
            let v = evaluate(&list, &ctx, &Sample { t: 1.0, rho: &rho, y: None });
            let e = 2.0 * (a * b).norm();
            let s = (1.0 - e * e).max(0.0).sqrt();
            let want = [e, 2.0 * wb * s, 2.0 * wc * s, 2.0 * e * e, 2.0 * (1.0 + e * e).sqrt() - 2.0, e];
            for (i, m) in list.iter().enumerate() {
                assert!((v[i] - want[i]).abs() < 1e-12, "{} at theta {th}: {} vs {}", m.name(), v[i], want[i]);
            }
        }
    }

    #[test]
    fn spin_pair_table_one() {
        // Paper 000 Table I: wb = wc = 1, j1 = j2 = 0.1, |eg>: capacity_b = 2 wb |cos(2 j1 t)|,
        // and residual_capacity = eps_max - eps_min - 2 (wb + wc) sqrt(1 - E^2).
        let sys = system(ModelKind::SpinPair, &[]);
        let rho0 = ModelKind::SpinPair.default_state(&Params::new(), None).unwrap();
        let ctx = MeasureContext::new(&sys, &rho0);
        let eps = eigvals_hermitian(&sys.hamiltonian);
        let table = [(5.005, 1.0789), (10.01, 0.8359), (15.02, 1.9811), (20.02, 1.3012), (25.03, 0.5788)];
        for (t, cap) in table {
            let u = propagator(&sys.hamiltonian, t);
            let rho = &u * &rho0 * u.adjoint();
            let v = evaluate(&[CapacityB, Concurrence, ResidualCapacity], &ctx, &Sample { t, rho: &rho, y: None });
            assert!((v[0] - cap).abs() < 6e-5, "t = {t}: capacity_b {} vs table {cap}", v[0]);
            assert!((v[0] - 2.0 * (0.2 * t).cos().abs()).abs() < 1e-12);
            assert!((v[1] - (0.2 * t).sin().abs()).abs() < 1e-12, "E at t = {t}");
            let res = eps[3] - eps[0] - 4.0 * (1.0 - v[1] * v[1]).sqrt();
            assert!((v[2] - res).abs() < 1e-12, "residual at t = {t}: {} vs {res}", v[2]);
        }
    }

    #[test]
    fn bloch_charger_closed_forms() {
        // Paper 004, no decay: energy_b = wb s^2 sin^2(jt), concurrence = s^2 |sin 2jt|,
        // capacity_b = wb sqrt(1 - s^4 sin^2 2jt), ergotropy_b = wb[s^2 sin^2 jt - (1 - sqrt(1 - s^4 sin^2 2jt))/2].
        let (wb, j) = (1.4, 0.6);
        let sys = system(ModelKind::BlochCharger, &[("wb", wb), ("j", j)]);
        for (theta, phi) in [(std::f64::consts::PI, 0.0), (2.0, 0.7), (0.9, -1.2)] {
            let rho0 = crate::model::bloch_charger::initial_state(theta, phi);
            let ctx = MeasureContext::new(&sys, &rho0);
            let s2 = (theta / 2.0).sin().powi(2);
            for t in [0.0, 0.3, 1.1, 2.5] {
                let u = propagator(&sys.hamiltonian, t);
                let rho = &u * &rho0 * u.adjoint();
                let v = evaluate(&[EnergyB, Concurrence, CapacityB, ErgotropyB], &ctx, &Sample { t, rho: &rho, y: None });
                let root = (1.0 - s2 * s2 * (2.0 * j * t).sin().powi(2)).sqrt();
                let want = [wb * s2 * (j * t).sin().powi(2), s2 * (2.0 * j * t).sin().abs(), wb * root, wb * (s2 * (j * t).sin().powi(2) - (1.0 - root) / 2.0)];
                for i in 0..4 {
                    assert!((v[i] - want[i]).abs() < 1e-12, "theta {theta} t {t} #{i}: {} vs {}", v[i], want[i]);
                }
            }
        }
    }

    #[test]
    fn dephasing_channel() {
        let m = CMat::from_fn(4, 4, |i, j| c(1.0 + i as f64 + 0.5 * j as f64, i as f64 - 2.0 * j as f64));
        // p = 0.5 kills every coherence in the sz basis and keeps the diagonal.
        let d = dephase(&m, 0.5);
        for i in 0..4 {
            for j in 0..4 {
                if i == j {
                    assert_eq!(d[(i, j)], m[(i, j)]);
                } else {
                    assert_eq!(d[(i, j)], ZERO, "({i},{j})");
                }
            }
        }
        // elementwise form = Kraus sum
        let p: f64 = 0.3;
        let sz = sigma_z();
        let q = (p * (1.0 - p)).sqrt();
        let ks = [identity(4) * c(1.0 - p, 0.0), on_battery(&sz) * c(q, 0.0), on_charger(&sz) * c(q, 0.0), kron(&sz, &sz) * c(p, 0.0)];
        let kraus = ks.iter().fold(CMat::zeros(4, 4), |acc, k| acc + k * &m * k.adjoint());
        assert!(max_abs_diff(&dephase(&m, p), &kraus) < 1e-14);
        assert!(max_abs_diff(&dephase(&m, 0.0), &m) == 0.0);
    }

    #[test]
    fn evaluate_dephases_two_qubit_measures_but_not_diagnostics() {
        let sys = system(ModelKind::SpinPair, &[("dephasing", 0.5)]);
        let h = c(std::f64::consts::FRAC_1_SQRT_2, 0.0);
        let bell = projector(&[ZERO, h, h, ZERO]);
        let ctx = MeasureContext::new(&sys, &bell);
        let list = [Concurrence, CoherenceL1, Purity, MinEigenvalue, TraceError];
        let v = evaluate(&list, &ctx, &Sample { t: 0.0, rho: &bell, y: None });
        assert!(v[0].abs() < 1e-15 && v[1].abs() < 1e-15, "dephased Bell state: {v:?}");
        assert!((v[2] - 0.5).abs() < 1e-15);
        // full undephased state is pure: min eigenvalue 0 (not -1/2 or 1/2 of the dephased one)
        assert!(v[3].abs() < 1e-15 && v[4] < 1e-15);
        let ctx0 = MeasureContext::new(&system(ModelKind::SpinPair, &[]), &bell);
        assert!((eval1(Concurrence, &ctx0, 0.0, &bell) - 1.0).abs() < 1e-14);
    }

    #[test]
    fn stored_energy_and_powers() {
        let sys = system(ModelKind::BlochCharger, &[("wb", 2.0), ("j", 1.0)]);
        let rho0 = crate::model::bloch_charger::initial_state(std::f64::consts::PI, 0.0);
        let ctx = MeasureContext::new(&sys, &rho0);
        // H_B = diag(0, 2): its traceless part diag(-1, 1), whose square is the identity
        assert_eq!((ctx.energy_b0, ctx.traceless_energy0, ctx.traceless_sq0), (0.0, -1.0, 1.0));
        let list = [StoredEnergyB, PowerB, ErgotropicPowerB, EnergyB, ErgotropyB];
        let v0 = evaluate(&list, &ctx, &Sample { t: 0.0, rho: &rho0, y: None });
        assert_eq!(&v0[..3], &[0.0, 0.0, 0.0]);
        let t = 0.8;
        let u = propagator(&sys.hamiltonian, t);
        let rho = &u * &rho0 * u.adjoint();
        let v = evaluate(&list, &ctx, &Sample { t, rho: &rho, y: None });
        assert!(v[0] > 0.1 && (v[0] - v[3]).abs() < 1e-15);
        assert!((v[1] - v[0] / t).abs() < 1e-15 && (v[2] - v[4] / t).abs() < 1e-15);
        // relative to an excited battery start: negative stored energy
        let rho_e = projector(&[ZERO, ONE, ZERO, ZERO]);
        let ctx_e = MeasureContext::new(&sys, &rho_e);
        assert!((ctx_e.energy_b0 - 2.0).abs() < 1e-15 && (ctx_e.traceless_energy0 - 1.0).abs() < 1e-15 && (ctx_e.traceless_sq0 - 1.0).abs() < 1e-15);
        assert!((eval1(StoredEnergyB, &ctx_e, t, &rho0) + 2.0).abs() < 1e-15);
    }

    /// Heisenberg-picture Sigma^2 = <dH^2> - <dH>^2, dH = U^+ H_B U - H_B (closed system).
    fn sigma_sq_heisenberg(h: &CMat, hb_full: &CMat, rho0: &CMat, t: f64) -> f64 {
        let u = propagator(h, t);
        let dh = u.adjoint() * hb_full * &u - hb_full;
        let m1 = re_trace_product(rho0, &dh);
        re_trace_product(rho0, &(&dh * &dh)) - m1 * m1
    }

    #[test]
    fn energy_fluctuation_matches_heisenberg_for_closed_spin_pair() {
        let sys = system(ModelKind::SpinPair, &[("wb", 1.0), ("wc", 1.3), ("j1", 0.4), ("j2", 0.2)]);
        // a mixed, coherent initial state
        let psi = [c(0.3, 0.1), c(0.5, -0.2), c(0.6, 0.0), c(0.1, 0.4)];
        let n = psi.iter().map(|z| z.norm_sqr()).sum::<f64>().sqrt();
        let rho0 = projector(&psi.map(|z| z / n)) * c(0.8, 0.0) + identity(4) * c(0.05, 0.0);
        let ctx = MeasureContext::new(&sys, &rho0);
        let hb_full = on_battery(&sys.h_battery);
        for t in [0.0, 0.4, 1.7, 3.2] {
            let u = propagator(&sys.hamiltonian, t);
            let rho = &u * &rho0 * u.adjoint();
            let y = &u * (&hb_full * &rho0) * u.adjoint();
            let v = evaluate(&[EnergyFluctuationB], &ctx, &Sample { t, rho: &rho, y: Some(&y) })[0];
            let want = sigma_sq_heisenberg(&sys.hamiltonian, &hb_full, &rho0, t);
            assert!(want >= -1e-14);
            assert!((v * v - want).abs() < 1e-12, "t = {t}: Sigma^2 {} vs {want}", v * v);
            assert!(v >= 0.0);
            if t > 0.0 {
                assert!(v > 1e-3);
            }
        }
        // no Y: NaN
        assert!(eval1(EnergyFluctuationB, &ctx, 1.0, &rho0).is_nan());
    }

    #[test]
    fn cavity_layout() {
        let n = 3;
        let sys = system(ModelKind::CavityCells, &[("n_fock", n as f64), ("g", 0.3), ("zeta", 0.2), ("lambda", 0.7), ("wq", 1.2)]);
        let p: Params = [("n_fock".to_string(), ParamValue::Real(n as f64)), ("alpha".to_string(), ParamValue::Real(0.8))].into_iter().collect();
        let rho0 = crate::model::cavity_cells::default_state(&resolve_params(ModelKind::CavityCells, &p).unwrap()).unwrap();
        let ctx = MeasureContext::new(&sys, &rho0);
        assert!(ctx.h_total.is_none());
        let t = 1.3;
        let u = propagator(&sys.hamiltonian, t);
        let rho = &u * &rho0 * u.adjoint();
        let hb_full = kron(&kron(&identity(2), &sys.h_battery), &identity(n + 1));
        let y = &u * (&hb_full * &rho0) * u.adjoint();
        let list = Measure::ALL;
        let v = evaluate(&list, &ctx, &Sample { t, rho: &rho, y: Some(&y) });
        let get = |m: Measure| v[list.iter().position(|x| *x == m).unwrap()];
        // two-qubit measures use the reduced (cell 1, cell 2) state
        let q = crate::model::cavity_cells::reduced_qubits(&rho, n);
        let rb = reduced_battery(&q);
        assert!((get(EnergyB) - energy::energy(&rb, &sys.h_battery)).abs() < 1e-15);
        assert!((get(Concurrence) - entanglement::concurrence(&q)).abs() < 1e-15);
        assert!((get(SteeringAb) - correlations::steering_loo(&q).0).abs() < 1e-15);
        assert!((get(Purity) - coherence::purity(&q)).abs() < 1e-15);
        // the initial |gg> stores -wq/2 in cell 2
        assert!((ctx.energy_b0 + 0.6).abs() < 1e-15);
        assert!((get(StoredEnergyB) - (get(EnergyB) + 0.6)).abs() < 1e-15);
        // not applicable: NaN; cavity diagnostics present
        assert!(get(CapacityTotal).is_nan() && get(ResidualCapacity).is_nan());
        let a = kron(&identity(4), &crate::model::cavity_cells::annihilation(n));
        assert!((get(PhotonNumber) - re_trace_product(&rho, &(a.adjoint() * &a))).abs() < 1e-13);
        assert!(get(FockTail) > 0.0 && get(TraceError) < 1e-13 && get(MinEigenvalue) > -1e-13);
        // two-time fluctuation with the cavity traced out
        let want = sigma_sq_heisenberg(&sys.hamiltonian, &hb_full, &rho0, t);
        let s = get(EnergyFluctuationB);
        assert!((s * s - want).abs() < 1e-12, "{} vs {want}", s * s);
        // and the two-qubit-only diagnostics are NaN on a two-qubit space
        let ctx2 = MeasureContext::new(&system(ModelKind::SpinPair, &[]), &identity(4));
        assert!(eval1(PhotonNumber, &ctx2, 0.0, &identity(4)).is_nan());
        assert!(eval1(FockTail, &ctx2, 0.0, &identity(4)).is_nan());
    }
}
