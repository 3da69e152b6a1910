//! Steady states of the two-qubit models, solved for directly (`[time] steady = true`), with
//! no time integration.
//!
//! The steady state solves L[rho] = 0 with Tr rho = 1. Column-stacking X into
//! vec(X)[i + 4 j] = X[i, j] turns vec(A X B) into (B^T (x) A) vec(X), so the Lindblad generator
//!   L[X] = K X + X K^+ + sum_k J_k X J_k^+,  K = -i H - (1/2) sum_k J_k^+ J_k,  J_k = sqrt(rate_k) L_k,
//! becomes vec(L[X]) = S vec(X) with the complex 16x16 superoperator
//!   S = I (x) K + conj(K) (x) I + sum_k conj(J_k) (x) J_k.
//! L preserves the trace (Tr L[X] = 0 for every X), so S is singular; its null vector is the
//! right singular vector of the smallest singular value (SVD, nalgebra, f64). The steady state is
//! unique exactly when the second-smallest singular value is not ~0 as well; it is the limit of
//! every initial state exactly when, in addition, no other eigenvalue of L lies on the imaginary
//! axis (no undamped oscillation). Both are checked, and a failing point is an error that says to
//! integrate instead: a closed system (no dissipation) keeps the memory of its initial state.
//!
//! This path is independent of the RK4 engines and of the Pauli-basis generator `pauli.rs`
//! (which only serves the relaxation-rate check; the tests compare the two null spaces). The
//! residual ||L rho||_F is evaluated with the reference's matrix-form right-hand side.

use super::{battery_times_state, update_peaks, EngineOutput, Precision, RunOptions};
use crate::config::Plan;
use crate::error::{QbatError, Result};
use crate::job::{Peak, PEAK_MEASURES};
use crate::linalg::{c, eigvals_hermitian, hermitian_part, identity, is_finite, kron, CMat, C64};
use crate::measures::{evaluate, Measure, MeasureContext, Sample};
use crate::model::{OpenSystem, ParamValue, Params, Space};
use crate::reference::LindbladRhs;
use rayon::prelude::*;
use std::time::Instant;

/// A singular value (or relaxation rate) below this fraction of the largest singular value of S
/// (its spectral norm, the generator's overall rate scale) counts as zero. SVD resolves singular
/// values to about 1e-16 of the largest, so 1e-9 leaves a wide margin; it also bounds the null
/// vector's sensitivity to rounding, about 1e-16 / 1e-9 = 1e-7 in the worst accepted case.
pub const ZERO_REL: f64 = 1e-9;

/// Smallest eigenvalue of the solved state allowed (positivity), as for input states.
pub const PSD_TOL: f64 = crate::config::STATE_TOL;

/// The complex superoperator S of `sys` (see the module doc), dim^2 x dim^2, acting on the
/// column-stacked vec(X).
pub fn superoperator(sys: &OpenSystem) -> CMat {
    let id = identity(sys.dim());
    let jumps: Vec<CMat> = sys.jumps.iter().map(|j| &*j.op * c(j.rate.sqrt(), 0.0)).collect();
    let mut k = &sys.hamiltonian * c(0.0, -1.0);
    for j in &jumps {
        k -= (j.adjoint() * j) * c(0.5, 0.0);
    }
    let conj = |m: &CMat| m.map(|z| z.conj());
    let mut s = kron(&id, &k) + kron(&conj(&k), &id);
    for j in &jumps {
        s += kron(&conj(j), j);
    }
    s
}

/// The slowest relaxation rate of a two-qubit generator: -max Re(lambda) over its eigenvalues
/// other than the one closest to 0 (the steady state's). Every initial state approaches the
/// steady state like exp(-rate t) (times a polynomial at a defective eigenvalue). Computed from
/// the real Pauli-basis generator G, which is similar to S.
pub fn relaxation_rate(sys: &OpenSystem) -> Result<f64> {
    if sys.space != Space::TwoQubit {
        return Err(QbatError::Numerics("the relaxation rate is computed for two-qubit systems only".into()));
    }
    let g = nalgebra::DMatrix::<f64>::from_row_slice(16, 16, &crate::job::pauli::generator(sys));
    if g.iter().any(|x| !x.is_finite()) {
        return Err(QbatError::Numerics("the generator has a non-finite entry".into()));
    }
    let schur = nalgebra::linalg::Schur::try_new(g, f64::EPSILON, 100_000)
        .ok_or_else(|| QbatError::Numerics("the eigenvalues of the generator did not converge (Schur)".into()))?;
    let mut ev: Vec<nalgebra::Complex<f64>> = schur.complex_eigenvalues().iter().copied().collect();
    ev.sort_by(|a, b| a.norm().total_cmp(&b.norm()));
    Ok(-ev[1..].iter().map(|z| z.re).fold(f64::NEG_INFINITY, f64::max))
}

/// The steady state of a two-qubit open system and its residual ||L rho||_F. Bad input
/// (`time.steady`) when it is not unique or some oscillation never decays (no t -> inf
/// limit); `QbatError::Numerics` when the solve fails or the solved state is not a density
/// matrix to PSD_TOL.
pub fn steady_state(sys: &OpenSystem) -> Result<(CMat, f64)> {
    solve(sys).map_err(|e| e.into_error(String::new()))
}

/// Why a point has no steady state: a property of the input (a closed system, a
/// decoherence-free subspace, an undamped oscillation: bad input, exit 2, naming
/// `time.steady`), or a numerical failure of the solve.
#[derive(Clone)]
enum Unsolved {
    Input(String),
    Numerics(String),
}

impl From<String> for Unsolved {
    fn from(s: String) -> Self {
        Unsolved::Numerics(s)
    }
}

impl From<&str> for Unsolved {
    fn from(s: &str) -> Self {
        Unsolved::Numerics(s.to_string())
    }
}

impl Unsolved {
    /// The error, its reason prefixed with `who` (the member that hit it).
    fn into_error(self, who: String) -> QbatError {
        match self {
            Unsolved::Input(r) => QbatError::invalid("time.steady", format!("{who}{r}")),
            Unsolved::Numerics(r) => QbatError::Numerics(format!("{who}{r}")),
        }
    }
}

/// A solved point: (rho, residual), or why it has no steady state (shared by the members of
/// the point, then prefixed with the member that hit it).
type Solved = std::result::Result<(CMat, f64), Unsolved>;

/// `steady_state` with the reason kept apart from the error.
fn solve(sys: &OpenSystem) -> Solved {
    if sys.space != Space::TwoQubit {
        return Err("the direct steady-state solver is for two-qubit models only; integrate instead".into());
    }
    let n = sys.dim();
    let s = superoperator(sys);
    if !is_finite(&s) {
        return Err("the Liouvillian has a non-finite entry".into());
    }
    let svd = nalgebra::linalg::SVD::try_new(s, false, true, f64::EPSILON, 100_000).ok_or_else(|| "the SVD of the Liouvillian did not converge".to_string())?;
    // Sorted in descending order by try_new.
    let sv = &svd.singular_values;
    let m = sv.len();
    let scale = sv[0];
    if scale.is_nan() || scale <= 0.0 {
        return Err(Unsolved::Input("the Liouvillian is zero: every state is stationary, so no steady state is singled out; integrate instead".into()));
    }
    let zeros = sv.iter().filter(|&&x| x <= ZERO_REL * scale).count();
    if sv[m - 2] <= ZERO_REL * scale {
        return Err(Unsolved::Input(format!(
            "the steady state is not unique: the Liouvillian's null space is {zeros}-dimensional (singular values below {ZERO_REL:.0e} of the largest, {scale:.3e}), as in a closed system (no dissipation) or one with a decoherence-free subspace, whose long-time state depends on the initial state; integrate instead ([time] dt, t_end, samples)"
        )));
    }
    let rate = relaxation_rate(sys).map_err(|e| e.to_string())?;
    if rate <= ZERO_REL * scale {
        return Err(Unsolved::Input(format!(
            "the state has no t -> inf limit: an eigenvalue of the Liouvillian other than 0 has real part {:.3e} (an undamped oscillation), so the long-time state depends on the initial state and on t; integrate instead ([time] dt, t_end, samples)",
            -rate
        )));
    }
    // Row m-1 of V^+ is the conjugate of the null vector.
    let v_t = svd.v_t.as_ref().ok_or_else(|| "the SVD returned no right singular vectors".to_string())?;
    let v: Vec<C64> = (0..m).map(|i| v_t[(m - 1, i)].conj()).collect();
    let x = CMat::from_column_slice(n, n, &v);
    let tr = x.trace();
    // A unique steady state of a trace-preserving L has Tr = 1 after scaling; a null vector of
    // trace ~0 would mean the solve went wrong.
    if tr.norm() < 1e-6 {
        return Err(format!("the Liouvillian's null vector has trace {:.3e}, not a state", tr.norm()).into());
    }
    let rho = hermitian_part(&(x / tr));
    let lam = eigvals_hermitian(&rho)[0];
    if lam.is_nan() || lam < -PSD_TOL {
        return Err(format!("the solved steady state is not positive semidefinite: smallest eigenvalue {lam:.3e} (tolerance {PSD_TOL:.0e})").into());
    }
    let residual = LindbladRhs::new(sys).eval(&rho).norm();
    Ok((rho, residual))
}

/// The member's parameter point in words, for error messages: the real and text parameters
/// (custom matrices are named, not printed).
fn describe_point(params: &Params) -> String {
    let parts: Vec<String> = params
        .iter()
        .map(|(k, v)| match v {
            ParamValue::Real(x) => format!("{k} = {x}"),
            ParamValue::Complex(z) => format!("{k} = [{}, {}]", z.re, z.im),
            ParamValue::Text(t) => format!("{k} = \"{t}\""),
            ParamValue::Matrix(_) | ParamValue::Jumps(_) => format!("{k} = (as given)"),
        })
        .collect();
    parts.join(", ")
}

/// The steady solver's note: the same words for every block of a run (a study keeps one
/// copy); the residuals are in the steady_residual column, the solve time in the run's
/// `integrate`.
const STEADY_NOTE: &str = "steady states (time.steady = true): the null space of each parameter point's 16x16 Liouvillian, solved on the CPU in f64 (SVD, nalgebra) whatever the backend; each null space is 1-dimensional and every other mode decays, so the steady state does not depend on the initial state (stored_energy_b and energy_fluctuation_b still refer to it); power_b and ergotropic_power_b are their t -> inf limit, 0; steady_residual = ||L rho||_F is each member's check";

/// Every member's steady state and the plan's measures at it: one sample at t = inf, no steps.
/// Members that share a parameter point share one solve (in parallel over points, then over
/// members). The measures are those of `measures::evaluate` at t = inf, with the member's
/// initial state for the quantities that refer to it (stored_energy_b, energy_fluctuation_b);
/// power_b and ergotropic_power_b are their t -> inf limit, 0. steady_residual is the solve's
/// ||L rho||_F. Peaks are the single sample (t_max = inf).
pub fn integrate_steady(plan: &Plan, opts: &RunOptions) -> Result<EngineOutput> {
    if plan.is_cavity() {
        return Err(QbatError::invalid("time.steady", "cavity-cells has no direct steady-state solver; integrate to a long t_end instead"));
    }
    let mut used: Vec<usize> = plan.members.iter().map(|m| m.point).collect();
    used.sort_unstable();
    used.dedup();
    let solved: Vec<(usize, Solved)> = used.par_iter().map(|&p| (p, solve(&plan.systems[p]))).collect();
    let mut by_point: Vec<Option<&Solved>> = vec![None; plan.points.len()];
    for (p, r) in &solved {
        by_point[*p] = Some(r);
    }
    // The first member (in member order) whose point has no steady state names the error.
    for m in &plan.members {
        if let Some(Err(why)) = by_point[m.point] {
            return Err(why.clone().into_error(format!("member {} ({}): ", m.id, describe_point(&plan.points[m.point]))));
        }
    }
    // (said once every point has its one steady state, which it describes)
    super::say(opts, STEADY_NOTE);

    let t_measures = Instant::now();
    let state_measures: Vec<Measure> = plan.measures.iter().copied().filter(|m| !m.steady_only()).collect();
    let mut list = state_measures.clone();
    list.extend(PEAK_MEASURES);
    let want_y = plan.measures.contains(&Measure::EnergyFluctuationB);
    let nm = plan.measures.len();
    let per: Vec<(Vec<f64>, [Peak; 4])> = plan
        .members
        .par_iter()
        .map(|m| {
            let (rho, residual) = match by_point[m.point] {
                Some(Ok((rho, r))) => (rho, *r),
                _ => unreachable!("every used point was solved and checked above"),
            };
            let sys = &plan.systems[m.point];
            let rho0 = plan.initial_state(m);
            let ctx = MeasureContext::new(sys, &rho0);
            // Y(t) = e^{Lt}[H_B rho0] tends to rho_ss Tr(H_B rho0) when the steady state is
            // unique and every other mode decays (checked by the solve).
            let y = want_y.then(|| rho * battery_times_state(plan, sys, &rho0).trace());
            let v = evaluate(&list, &ctx, &Sample { t: f64::INFINITY, rho, y: y.as_ref() });
            let mut values = Vec::with_capacity(nm);
            let mut k = 0;
            for meas in &plan.measures {
                if *meas == Measure::SteadyResidual {
                    values.push(residual);
                } else {
                    values.push(v[k]);
                    k += 1;
                }
            }
            let mut peaks = [Peak::default(); 4];
            update_peaks(&mut peaks, 0, f64::INFINITY, &v[state_measures.len()..]);
            (values, peaks)
        })
        .collect();
    let mut values = Vec::with_capacity(plan.members.len() * nm);
    let mut peaks = Vec::with_capacity(plan.members.len() * 4);
    for (v, p) in per {
        values.extend(v);
        peaks.extend(p);
    }
    // `--save-states`: the steady state of each member's point, its one sample.
    let states = plan.save_states.map(|save| {
        let mut st = vec![];
        for m in &plan.members {
            if let Some(Ok((rho, _))) = by_point[m.point] {
                let sys = &plan.systems[m.point];
                crate::measures::saved::push_row_major(&mut st, &crate::measures::saved::saved_state(plan.space, rho, sys.dephasing, save));
            }
        }
        st
    });
    Ok(EngineOutput {
        measures: plan.measures.clone(),
        values,
        peaks,
        precision: Precision::F64,
        ensemble: 0.0,
        host_measures: t_measures.elapsed().as_secs_f64(),
        notes: vec![STEADY_NOTE.to_string()],
        fallbacks: vec![],
        engine_plan: None,
        ran_on: None,
        states,
    })
}
