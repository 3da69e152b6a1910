//! Models build their operators from named parameters (docs/physics.md). They do not step anything.

pub mod bloch_charger;
pub mod cavity_cells;
pub mod dicke;
pub mod drive;
pub mod driven_pair;
pub mod spin_pair;
pub mod two_qubit;

use crate::error::{QbatError, Result};
use crate::linalg::{CMat, C64};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One jump operator L with its rate: rate * D[L] rho.
#[derive(Clone, Debug)]
pub struct Jump {
    /// Shared by the parameter points whose jump is the same matrix (`OpenSystem::share_with`).
    pub op: Arc<CMat>,
    pub rate: f64,
}

/// Structure of the Hilbert space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    /// Two qubits (charger, battery), dimension 4.
    TwoQubit,
    /// Two cells and a cavity mode truncated at n_fock: dimension 4 (n_fock + 1),
    /// index = (2 i_1 + i_2)(n_fock + 1) + n.
    Cavity { n_fock: usize },
    /// N cells in their symmetric subspace and a cavity mode (`dicke`): dimension
    /// (N + 1)(n_fock + 1), index = k (n_fock + 1) + n, k = m + N/2 the excited cells.
    Dicke { n_cells: usize, n_fock: usize },
}

impl Space {
    pub fn dim(&self) -> usize {
        match self {
            Space::TwoQubit => 4,
            Space::Cavity { n_fock } => 4 * (n_fock + 1),
            Space::Dicke { n_cells, n_fock } => (n_cells + 1) * (n_fock + 1),
        }
    }
}

/// The problem: everything a solver and the measures need for one parameter point.
#[derive(Clone, Debug)]
pub struct OpenSystem {
    pub space: Space,
    /// Full Hamiltonian (dim x dim).
    pub hamiltonian: CMat,
    /// Jump operators with rate > 0 (zero-rate jumps are dropped).
    pub jumps: Vec<Jump>,
    /// Battery Hamiltonian H_B (2x2, acting on the battery qubit / cell 2).
    pub h_battery: CMat,
    /// Charger Hamiltonian H_C (2x2, acting on the charger qubit / cell 1).
    pub h_charger: CMat,
    /// Phase-flip probability applied to each sample before the measures (spin-pair only).
    pub dephasing: f64,
    /// The charger-battery coupling part of `hamiltonian`: what `[protocol] switch_off` turns
    /// off (`ModelKind::coupling_doc` says which term it is for each model). Shared like the
    /// jumps.
    pub coupling: Arc<CMat>,
}

impl OpenSystem {
    pub fn dim(&self) -> usize {
        self.space.dim()
    }

    /// The system after `[protocol] switch_off`: H - coupling, the same jumps (dissipators stay
    /// on), the same H_B, H_C and dephasing (the measures do not change).
    pub fn uncoupled(&self) -> OpenSystem {
        OpenSystem { hamiltonian: &self.hamiltonian - &*self.coupling, coupling: Arc::new(CMat::zeros(self.dim(), self.dim())), ..self.clone() }
    }

    /// Take `other`'s copy of every jump operator and of the coupling that equals this system's
    /// bit for bit (a jump whichever of `other`'s it equals: a zero rate drops a jump, so
    /// positions differ between points): a sweep's points mostly share them, and an 84x84
    /// cavity point's jumps and coupling are four fifths of its operators' memory.
    pub fn share_with(&mut self, other: &OpenSystem) {
        let same = |a: &CMat, b: &CMat| {
            a.shape() == b.shape() && a.iter().zip(b.iter()).all(|(x, y)| x.re.to_bits() == y.re.to_bits() && x.im.to_bits() == y.im.to_bits())
        };
        for mine in &mut self.jumps {
            if let Some(theirs) = other.jumps.iter().find(|t| same(&mine.op, &t.op)) {
                mine.op = Arc::clone(&theirs.op);
            }
        }
        if same(&self.coupling, &other.coupling) {
            self.coupling = Arc::clone(&other.coupling);
        }
    }

    /// Whether the coupling acts at all: its traceless part is non-zero beyond rounding
    /// relative to H (a multiple of the identity commutes with everything and changes no
    /// dynamics; a custom H written as the sum of its local parts leaves ~1e-17).
    pub fn has_coupling(&self) -> bool {
        let n = self.dim();
        let shift = self.coupling.trace() / n as f64;
        let traceless = &*self.coupling - CMat::identity(n, n) * shift;
        let scale = self.hamiltonian.iter().map(|z| z.norm()).fold(0.0, f64::max).max(f64::MIN_POSITIVE);
        traceless.iter().any(|z| z.norm() > 1e-14 * scale)
    }
    /// Bound on |eigenvalue| of the Lindblad generator, for the RK4 stability check:
    /// -i[H, .] has eigenvalues -i(eps_i - eps_j), so |.| <= eps_max - eps_min, and
    /// |rate D[L]| <= 2 rate ||L||^2 (operator norm).
    pub fn generator_norm_bound(&self) -> f64 {
        let mut bound = spectrum_spread(&self.hamiltonian);
        for j in &self.jumps {
            let ldl = j.op.adjoint() * &*j.op;
            let op_norm_sq = crate::linalg::eigvals_hermitian(&ldl).last().copied().unwrap_or(0.0);
            bound += 2.0 * j.rate * op_norm_sq;
        }
        bound
    }

    /// An upper bound on `generator_norm_bound` from the entries alone: O(dim^2), no
    /// eigen-solve. H's spread as `spectrum_spread_entry_bound`, and
    /// ||L||^2 <= ||L||_1 ||L||_inf, the largest column sum of |l_ij| times the largest row
    /// sum (|z| taken as |re| + |im|, above it), raised by 1e-9, far above the rounding of
    /// these sums and of the eigen-solve of L^dag L, so that it bounds the computed
    /// `generator_norm_bound` too. Infinite or NaN when an entry is.
    pub fn generator_norm_entry_bound(&self) -> f64 {
        let mut bound = spectrum_spread_entry_bound(&self.hamiltonian);
        for j in &self.jumps {
            let (rows, cols) = abs_sums(&j.op);
            // (NaN sums, from NaN entries, stay NaN)
            bound += 2.0 * j.rate * largest_or_nan(cols) * largest_or_nan(rows) * (1.0 + ENTRY_BOUND_MARGIN);
        }
        bound
    }
}

/// The largest of non-negative values (0 for none), or NaN when one is NaN (`f64::max` would
/// pass over it).
pub fn largest_or_nan(values: impl IntoIterator<Item = f64>) -> f64 {
    values.into_iter().fold(0.0, |m, x| if x.is_nan() || m.is_nan() { f64::NAN } else { m.max(x) })
}

/// How far the entry bounds are raised, relative to their scale.
const ENTRY_BOUND_MARGIN: f64 = 1e-9;

/// An upper bound on `spectrum_spread(h)` from the entries alone: O(dim^2), no eigen-solve.
/// Gershgorin's intervals hold the spectrum of h's Hermitian part (what `eigvals_hermitian`
/// solves), so
///   eps_max - eps_min <= max_i (h_ii + R_i) - min_i (h_ii - R_i),
///   R_i = sum_{j != i} (|h_ij| + |h_ji|) / 2,
/// with |z| taken as |re| + |im| (above it), raised by 1e-9 of h's scale (||h|| <= the
/// largest row sum), far above the rounding of these sums and of the eigen-solve, so that it
/// bounds the computed `spectrum_spread` too (where that is finite: entries near f64::MAX
/// overflow the eigen-solve's Hermitian part). NaN when an entry is not finite, infinite when
/// the sums overflow.
pub fn spectrum_spread_entry_bound(h: &CMat) -> f64 {
    if !crate::linalg::is_finite(h) {
        return f64::NAN;
    }
    let n = h.nrows();
    // the sums of |h_ij| without the diagonal's
    let (mut off_row, mut off_col) = abs_sums(h);
    for i in 0..n {
        off_row[i] -= modulus(h[(i, i)]);
        off_col[i] -= modulus(h[(i, i)]);
    }
    let (mut top, mut bottom, mut scale) = (f64::NEG_INFINITY, f64::INFINITY, 0.0f64);
    for i in 0..n {
        let (diag, radius) = (h[(i, i)], 0.5 * (off_row[i] + off_col[i]));
        top = top.max(diag.re + radius);
        bottom = bottom.min(diag.re - radius);
        scale = scale.max(modulus(diag) + off_row[i].max(off_col[i]));
    }
    top - bottom + ENTRY_BOUND_MARGIN * scale
}

/// The sums of |a_ij| (as `modulus`) along each row and down each column, in one pass over
/// the column-major entries.
fn abs_sums(a: &CMat) -> (Vec<f64>, Vec<f64>) {
    let n = a.nrows();
    let mut rows = vec![0.0; n];
    let cols = a
        .as_slice()
        .chunks(n.max(1))
        .map(|col| {
            let mut sum = 0.0;
            for (r, &z) in rows.iter_mut().zip(col) {
                *r += modulus(z);
                sum += modulus(z);
            }
            sum
        })
        .collect();
    (rows, cols)
}

/// |re| + |im| >= |z|, for an upper bound: cheaper than `hypot` (a fifth of the bound's time
/// went to it), and it neither underflows nor overflows before |z| does.
fn modulus(z: C64) -> f64 {
    z.re.abs() + z.im.abs()
}

/// Spread of the spectrum of a Hermitian matrix (eps_max - eps_min), which bounds |i[H, .]|.
pub fn spectrum_spread(h: &CMat) -> f64 {
    let ev = crate::linalg::eigvals_hermitian(h);
    ev[ev.len() - 1] - ev[0]
}

/// One named parameter of a model, with its default and meaning.
#[derive(Clone, Debug)]
pub struct ParamSpec {
    pub name: &'static str,
    pub default: ParamDefault,
    pub doc: &'static str,
}

#[derive(Clone, Debug)]
pub enum ParamDefault {
    Real(f64),
    Complex(f64, f64),
    Int(i64),
    Text(&'static str),
    /// Must be given (custom matrices, for example).
    Required,
    /// Optional, no default (for example `n_th` vs `temperature`).
    Optional,
}

/// As `qbat-gpu models` and the Python `models()` show it: the value as written in a config
/// (a string quoted, a complex number as `[re, im]`), or `required` / `optional`.
impl std::fmt::Display for ParamDefault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamDefault::Real(x) => write!(f, "{x}"),
            ParamDefault::Complex(re, im) => write!(f, "[{re}, {im}]"),
            ParamDefault::Int(i) => write!(f, "{i}"),
            ParamDefault::Text(t) => write!(f, "\"{t}\""),
            ParamDefault::Required => f.write_str("required"),
            ParamDefault::Optional => f.write_str("optional"),
        }
    }
}

/// A resolved parameter value for one member.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    Real(f64),
    Complex(C64),
    Text(String),
    Matrix(CMat),
    Jumps(Vec<(CMat, f64)>),
}

/// Parameter values for one member, by name.
pub type Params = BTreeMap<String, ParamValue>;

/// The models of docs/physics.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelKind {
    SpinPair,
    DrivenPair,
    BlochCharger,
    CavityCells,
    TwoQubit,
    Dicke,
}

impl ModelKind {
    pub const ALL: [ModelKind; 6] =
        [ModelKind::SpinPair, ModelKind::DrivenPair, ModelKind::BlochCharger, ModelKind::CavityCells, ModelKind::TwoQubit, ModelKind::Dicke];

    pub fn name(&self) -> &'static str {
        match self {
            ModelKind::SpinPair => "spin-pair",
            ModelKind::DrivenPair => "driven-pair",
            ModelKind::BlochCharger => "bloch-charger",
            ModelKind::CavityCells => "cavity-cells",
            ModelKind::TwoQubit => "two-qubit",
            ModelKind::Dicke => "dicke",
        }
    }

    pub fn from_name(name: &str) -> Result<ModelKind> {
        ModelKind::ALL.iter().copied().find(|m| m.name() == name).ok_or_else(|| {
            let names: Vec<_> = ModelKind::ALL.iter().map(|m| m.name()).collect();
            QbatError::invalid("model", format!("unknown model '{name}'; known models: {}", names.join(", ")))
        })
    }

    pub fn paper(&self) -> &'static str {
        match self {
            ModelKind::SpinPair => "paper 000: spin pair (battery + charger), optional phase-flip dephasing of the samples",
            ModelKind::DrivenPair => "paper 002: driven pair in a boson or fermion thermal reservoir (rotating frame)",
            ModelKind::BlochCharger => "paper 004: charger prepared anywhere on the Bloch sphere, optional charger decay",
            ModelKind::CavityCells => "paper 003: two cells charged by a cavity mode truncated at n_fock",
            ModelKind::TwoQubit => "custom: any 4x4 Hamiltonian, jump operators, H_B and H_C",
            ModelKind::Dicke => "Ferraro et al. 2018 (PRL 120, 117702): N cells in one cavity mode, symmetric subspace, battery = the N cells",
        }
    }

    pub fn hamiltonian_doc(&self) -> &'static str {
        match self {
            ModelKind::SpinPair => "H = wb sz_b + wc sz_c + j1 (s+_b s-_c + s-_b s+_c) + j2 sz_b sz_c; H_B = wb sz, H_C = wc sz",
            ModelKind::DrivenPair => "H = (delta/2)(sz_c + sz_b) + g (s+_c s-_b + s-_c s+_b) + f (s+_c + s-_c); gamma N (D[s-_c] + D[s-_b]) + gamma n (D[s+_c] + D[s+_b]); H_B = w0 s+_b s-_b",
            ModelKind::BlochCharger => "H = wb (s+_c s-_c + s+_b s-_b) + j (s+_c s-_b + s-_c s+_b); gamma D[s-_c]; H_B = wb s+_b s-_b",
            ModelKind::CavityCells => "H = wc a^+a + (wq/2)(sz_1 + sz_2) + lambda (s+_1 a + s-_1 a^+) + (g/2)[(1+zeta) sx_1 sx_2 + (1-zeta) sy_1 sy_2]; kappa D[a] + gamma (D[s-_1] + D[s-_2]); H_B = (wq/2) sz_2",
            ModelKind::TwoQubit => "H = hamiltonian (4x4, Hermitian); sum_k rate_k D[op_k]; H_B = h_battery, H_C = h_charger (2x2)",
            ModelKind::Dicke => "H = wc a^+a + wa (J_z + N/2) + 2 g J_x (a + a^+)  [coupling = \"tavis-cummings\": g (J_+ a + J_- a^+)]; kappa D[a] + gamma D[J_-]; H_B = wa (J_z + N/2)",
        }
    }

    /// The charger-battery coupling that `[protocol] switch_off` turns off.
    pub fn coupling_doc(&self) -> &'static str {
        match self {
            ModelKind::SpinPair => "j1 (s+_b s-_c + s-_b s+_c) + j2 sz_b sz_c",
            ModelKind::DrivenPair => "g (s+_c s-_b + s-_c s+_b); the pump f on the charger and the reservoir stay on",
            ModelKind::BlochCharger => "j (s+_c s-_b + s-_c s+_b); the charger decay gamma stays on",
            ModelKind::CavityCells => {
                "(g/2)[(1+zeta) sx_1 sx_2 + (1-zeta) sy_1 sy_2], the only term that couples cell 1 (charger side) to cell 2 (the battery); the cavity keeps pumping cell 1 through lambda, like driven-pair's f"
            }
            ModelKind::TwoQubit => "H - (h_charger (x) I + I (x) h_battery): whatever is not the given local Hamiltonians, so that after T each qubit evolves under its own h",
            ModelKind::Dicke => "the cavity-cell term, 2 g J_x (a + a^+) or g (J_+ a + J_- a^+); the cells then keep their energy, the dissipators stay on",
        }
    }

    /// The parameters that set the local Hamiltonians [H_B, H_C] of a two-qubit-space model,
    /// as a refusal of their size names them (the frequency, or the matrix itself).
    pub fn local_hamiltonian_params(&self) -> Option<[&'static str; 2]> {
        match self {
            ModelKind::SpinPair => Some(["wb", "wc"]),
            ModelKind::DrivenPair => Some(["w0", "w0"]),
            ModelKind::BlochCharger => Some(["wb", "wb"]),
            ModelKind::TwoQubit => Some(["h_battery", "h_charger"]),
            ModelKind::CavityCells | ModelKind::Dicke => None,
        }
    }

    pub fn params(&self) -> Vec<ParamSpec> {
        match self {
            ModelKind::SpinPair => spin_pair::params(),
            ModelKind::DrivenPair => driven_pair::params(),
            ModelKind::BlochCharger => bloch_charger::params(),
            ModelKind::CavityCells => cavity_cells::params(),
            ModelKind::TwoQubit => two_qubit::params(),
            ModelKind::Dicke => dicke::params(),
        }
    }

    pub fn space_for(&self, params: &Params) -> Result<Space> {
        match self {
            ModelKind::CavityCells => Ok(Space::Cavity { n_fock: cavity_cells::n_fock(params)? }),
            ModelKind::Dicke => dicke::sizes(params).map(|(n_cells, n_fock)| Space::Dicke { n_cells, n_fock }),
            _ => Ok(Space::TwoQubit),
        }
    }

    /// Build the operators for one parameter point (params already have defaults filled in).
    pub fn build(&self, params: &Params) -> Result<OpenSystem> {
        match self {
            ModelKind::SpinPair => spin_pair::build(params),
            ModelKind::DrivenPair => driven_pair::build(params),
            ModelKind::BlochCharger => bloch_charger::build(params),
            ModelKind::CavityCells => cavity_cells::build(params),
            ModelKind::TwoQubit => two_qubit::build(params),
            ModelKind::Dicke => dicke::build(params),
        }
    }

    /// Check that the start its parameters give (params with defaults filled in) is one the
    /// point can hold: dicke's Fock start |photons> (by default |N>) within its cutoff. Not
    /// asked where a full-space `[initial]` state replaces that start.
    pub fn check_start(&self, params: &Params) -> Result<()> {
        match self {
            ModelKind::Dicke => dicke::check_start(params),
            _ => Ok(()),
        }
    }

    /// The model's default initial state (density matrix), given its parameters and
    /// the `theta`/`phi` of `[initial]` for bloch-charger.
    pub fn default_state(&self, params: &Params, theta_phi: Option<(f64, f64)>) -> Result<CMat> {
        match self {
            // spin-pair: |eg>, charger excited and battery ground
            ModelKind::SpinPair => Ok(basis_state(2)),
            ModelKind::DrivenPair => Ok(basis_state(0)),
            ModelKind::BlochCharger => {
                let (theta, phi) = theta_phi.unwrap_or((std::f64::consts::PI, 0.0));
                Ok(bloch_charger::initial_state(theta, phi))
            }
            ModelKind::CavityCells => cavity_cells::default_state(params),
            ModelKind::TwoQubit => Ok(basis_state(0)),
            ModelKind::Dicke => dicke::default_state(params),
        }
    }

    pub fn is_two_qubit(&self) -> bool {
        !matches!(self, ModelKind::CavityCells | ModelKind::Dicke)
    }
}

/// |i><i| of the two-qubit basis (|gg>, |ge>, |eg>, |ee>; charger first).
pub fn basis_state(i: usize) -> CMat {
    let mut psi = vec![C64::new(0.0, 0.0); 4];
    psi[i] = C64::new(1.0, 0.0);
    crate::linalg::projector(&psi)
}

/// Fill in defaults and reject unknown names, NaN and out-of-range values.
pub fn resolve_params(kind: ModelKind, given: &Params) -> Result<Params> {
    let specs = kind.params();
    for name in given.keys() {
        if !specs.iter().any(|s| s.name == name) {
            let names: Vec<_> = specs.iter().map(|s| s.name).collect();
            return Err(QbatError::invalid(format!("params.{name}"), format!("unknown parameter for model '{}'; known: {}", kind.name(), names.join(", "))));
        }
    }
    let mut out = Params::new();
    for s in &specs {
        match (given.get(s.name), &s.default) {
            (Some(v), _) => {
                out.insert(s.name.to_string(), v.clone());
            }
            (None, ParamDefault::Real(x)) => {
                out.insert(s.name.to_string(), ParamValue::Real(*x));
            }
            (None, ParamDefault::Complex(re, im)) => {
                out.insert(s.name.to_string(), ParamValue::Complex(C64::new(*re, *im)));
            }
            (None, ParamDefault::Int(x)) => {
                out.insert(s.name.to_string(), ParamValue::Real(*x as f64));
            }
            (None, ParamDefault::Text(t)) => {
                out.insert(s.name.to_string(), ParamValue::Text(t.to_string()));
            }
            (None, ParamDefault::Optional) => {}
            (None, ParamDefault::Required) => {
                return Err(QbatError::invalid(format!("params.{}", s.name), format!("required for model '{}'", kind.name())));
            }
        }
    }
    for (name, v) in &out {
        match v {
            ParamValue::Real(x) if !x.is_finite() => {
                return Err(QbatError::invalid(format!("params.{name}"), format!("must be a finite number, got {x}")));
            }
            ParamValue::Complex(z) if !(z.re.is_finite() && z.im.is_finite()) => {
                return Err(QbatError::invalid(format!("params.{name}"), "must be a finite complex number"));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// A real parameter by name.
pub fn real(params: &Params, name: &str) -> Result<f64> {
    match params.get(name) {
        Some(ParamValue::Real(x)) => Ok(*x),
        Some(ParamValue::Complex(z)) if z.im == 0.0 => Ok(z.re),
        Some(_) => Err(QbatError::invalid(format!("params.{name}"), "must be a real number")),
        None => Err(QbatError::invalid(format!("params.{name}"), "missing")),
    }
}

pub fn real_opt(params: &Params, name: &str) -> Result<Option<f64>> {
    if params.contains_key(name) {
        real(params, name).map(Some)
    } else {
        Ok(None)
    }
}

/// A rate: finite and >= 0.
pub fn rate(params: &Params, name: &str) -> Result<f64> {
    let r = real(params, name)?;
    if r < 0.0 {
        return Err(QbatError::invalid(format!("params.{name}"), format!("a rate must be >= 0, got {}", crate::error::shown(r))));
    }
    Ok(r)
}

pub fn text(params: &Params, name: &str) -> Result<String> {
    match params.get(name) {
        Some(ParamValue::Text(t)) => Ok(t.clone()),
        _ => Err(QbatError::invalid(format!("params.{name}"), "must be a string")),
    }
}

/// Keep jumps with a positive rate only.
pub fn jumps(list: Vec<(CMat, f64)>) -> Vec<Jump> {
    list.into_iter().filter(|(_, r)| *r > 0.0).map(|(op, rate)| Jump { op: Arc::new(op), rate }).collect()
}

pub fn spec(name: &'static str, default: ParamDefault, doc: &'static str) -> ParamSpec {
    ParamSpec { name, default, doc }
}
