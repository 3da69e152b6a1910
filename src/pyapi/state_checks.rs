//! Checks of the matrices the bindings are given: Hamiltonians and density matrices of the
//! measures (`state_measure_batch`, `battery_measure_batch`), and the saved states of
//! `InMemory::save` that the caller may have edited since the run.
//!
//! A density matrix is finite, Hermitian, of unit trace and positive semidefinite, each to a
//! tolerance (`DensityTol`):
//! - the measures take the loosest a run's health check accepts (`health_tolerance` of f32:
//!   trace and smallest eigenvalue within 1e-3), so that any state a healthy run saved, f32 or
//!   f64, is measured, and Hermiticity to 1e-5 relative (a complex64 array's rounding);
//! - a run's saved states, where they differ from the run's own, take that run's precision's
//!   health tolerances (Hermiticity to its trace tolerance).

use crate::error::{QbatError, Result};
use crate::linalg::{eigvals_hermitian, hermiticity_error, is_finite, CMat, C64};
use crate::run::Precision;
use crate::study::health_tolerance;

/// Tolerances of a density matrix: |rho_ij - conj rho_ji| <= herm * max(1, max |rho_ij|),
/// |Tr rho - 1| <= trace, smallest eigenvalue >= -pos.
#[derive(Clone, Copy, Debug)]
pub struct DensityTol {
    pub herm: f64,
    pub trace: f64,
    pub pos: f64,
}

impl DensityTol {
    /// The measures' tolerance (the module's doc).
    pub fn measures() -> DensityTol {
        let (trace, pos) = health_tolerance(Precision::F32);
        DensityTol { herm: 1e-5, trace, pos }
    }

    /// A run's saved states at its precision (the module's doc).
    pub fn run(precision: Precision) -> DensityTol {
        let (trace, pos) = health_tolerance(precision);
        DensityTol { herm: trace, trace, pos }
    }
}

/// The largest |rho_ij| of a density matrix to `tol`: |rho_ij|^2 <= rho_ii rho_jj, and each
/// rho_ii is at most Tr rho less the others, each at least -pos: 1 + trace + (dim - 1) pos. One
/// far beyond is not a state, and the eigen-solves of its measures would overflow (and could
/// then iterate without end). Checked before the trace and positivity, so it must allow what
/// they allow (at 1 + 1e-6 it refused a near-pure state whose trace was off by 5e-4).
fn density_entry_max(dim: usize, tol: DensityTol) -> f64 {
    1.0 + tol.trace + dim.saturating_sub(1) as f64 * tol.pos
}

/// Hermitian to `tol` relative to its largest entry (at least 1), as a reason it is not.
fn hermitian_reason(m: &CMat, tol: f64) -> Option<String> {
    if !is_finite(m) {
        return Some("has a non-finite entry".into());
    }
    let scale = m.iter().map(|z| z.norm()).fold(1.0, f64::max);
    let e = hermiticity_error(m);
    (e > tol * scale).then(|| format!("must be Hermitian (largest |m_ij - conj m_ji| = {e:.3e}, beyond {tol:e} relative)"))
}

/// Why `rho` is not a density matrix to `tol`, or None where it is.
pub fn density_reason(rho: &CMat, tol: DensityTol) -> Option<String> {
    if let Some(r) = hermitian_reason(rho, tol.herm) {
        return Some(r);
    }
    let largest = rho.iter().map(|z| z.norm()).fold(0.0, f64::max);
    let most = density_entry_max(rho.nrows(), tol);
    if largest > most {
        return Some(format!(
            "is not a density matrix: an entry of modulus {largest:.9} (at most {most:.9} in a state of unit trace to within {:e})",
            tol.trace
        ));
    }
    let tr = rho.trace();
    if (tr.re - 1.0).abs() > tol.trace || tr.im.abs() > tol.trace {
        return Some(format!("is not a density matrix: its trace is {} (1 to within {:e})", fmt_trace(tr), tol.trace));
    }
    let lam = eigvals_hermitian(rho)[0];
    if lam < -tol.pos {
        return Some(format!("is not a density matrix: not positive semidefinite (smallest eigenvalue {lam:.3e}, below -{:e})", tol.pos));
    }
    None
}

fn fmt_trace(tr: C64) -> String {
    if tr.im == 0.0 {
        format!("{:.9}", tr.re)
    } else {
        format!("{:.9}{:+.9}i", tr.re, tr.im)
    }
}

/// A finite Hermitian (to 1e-10 relative) Hamiltonian with entries within a config's bound on
/// its numbers: beyond it the eigen-solves' squares overflow (an ergotropy against h = 1e308
/// came back NaN).
pub fn check_hamiltonian(h: &CMat, field: &str) -> Result<()> {
    if let Some(r) = hermitian_reason(h, 1e-10) {
        return Err(QbatError::invalid(field, r));
    }
    let largest = h.iter().map(|z| z.norm()).fold(0.0, f64::max);
    if largest > crate::config::values::MAX_MAGNITUDE {
        return Err(QbatError::invalid(field, format!("has an entry of modulus {largest:.3e}, beyond {:e}", crate::config::values::MAX_MAGNITUDE)));
    }
    Ok(())
}

/// A measure's state argument `field` (e.g. `rho[3]`): a density matrix to the measures'
/// tolerance.
pub fn check_measured_state(rho: &CMat, field: &str) -> Result<()> {
    match density_reason(rho, DensityTol::measures()) {
        None => Ok(()),
        Some(r) => Err(QbatError::invalid(field, r)),
    }
}

/// BLAKE3 hash of each member's run of `per_member` saved-state entries: which members' states
/// the caller changed since the run.
pub fn member_hashes(states: &[C64], per_member: usize) -> Vec<blake3::Hash> {
    use rayon::prelude::*;
    if per_member == 0 {
        return vec![];
    }
    states
        .par_chunks(per_member)
        .map(|s| {
            let mut h = blake3::Hasher::new();
            let mut buf = Vec::with_capacity(4096 * 16);
            for chunk in s.chunks(4096) {
                buf.clear();
                for z in chunk {
                    buf.extend_from_slice(&z.re.to_le_bytes());
                    buf.extend_from_slice(&z.im.to_le_bytes());
                }
                h.update(&buf);
            }
            h.finalize()
        })
        .collect()
}

/// Refuse saved states (`states`: members x samples x d x d) in which a member's states differ
/// from the run's (`run_hashes`, `member_hashes` of the run's) and one of them is not a density
/// matrix to `tol`: states.npy would hold, beside a summary.csv that calls the member ok, a
/// state no run gives (a NaN, 7 I). The run's own states are saved as they are.
pub fn check_saved_states(states: &[C64], d: usize, member_ids: &[u64], times: &[f64], run_hashes: &[blake3::Hash], tol: DensityTol) -> Result<()> {
    use rayon::prelude::*;
    let ns = times.len();
    let per_member = ns * d * d;
    if per_member == 0 {
        return Ok(());
    }
    let now = member_hashes(states, per_member);
    let bad = |i: usize| -> Option<(usize, usize, String)> {
        if run_hashes.get(i) == now.get(i) {
            return None;
        }
        (0..ns).find_map(|k| {
            let at = (i * ns + k) * d * d;
            let rho = CMat::from_row_slice(d, d, &states[at..at + d * d]);
            density_reason(&rho, tol).map(|r| (i, k, r))
        })
    };
    match (0..now.len()).into_par_iter().find_map_first(bad) {
        None => Ok(()),
        Some((i, k, r)) => Err(QbatError::invalid(
            "states",
            format!(
                "member {}'s state at sample {k} (t = {:?}) {r}: it is not the run's (edited since the run), and states.npy is saved beside the run's summary; save the run's own states, or write the edited array with numpy",
                member_ids.get(i).copied().unwrap_or(i as u64),
                times[k]
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bell() -> CMat {
        let mut m = CMat::zeros(4, 4);
        for (i, j) in [(1, 1), (2, 2), (1, 2), (2, 1)] {
            m[(i, j)] = C64::new(0.5, 0.0);
        }
        m
    }

    #[test]
    fn density_reason_refuses_each_defect_and_accepts_within_tolerance() {
        let t = DensityTol::measures();
        assert!(density_reason(&bell(), t).is_none());
        assert!(density_reason(&(bell() * C64::new(1.0 + 5e-4, 0.0)), t).is_none());
        assert!(density_reason(&(bell() * C64::new(2.0, 0.0)), t).unwrap().contains("trace is 2.000000000"));
        // a near-pure state whose trace is off by 5e-4 in its one large entry: within the
        // trace's tolerance, so within the entries' bound too (it was refused by the bound)
        let mut pure = CMat::zeros(4, 4);
        pure[(0, 0)] = C64::new(1.0 + 5e-4, 0.0);
        assert!(density_reason(&pure, t).is_none(), "{:?}", density_reason(&pure, t));
        pure[(0, 0)] = C64::new(1.0 + 2e-3, 0.0);
        assert!(density_reason(&pure, t).unwrap().contains("trace is 1.002000000"), "{:?}", density_reason(&pure, t));
        let mut m = bell();
        m[(0, 3)] = C64::new(0.01, 0.0);
        assert!(density_reason(&m, t).unwrap().contains("Hermitian"));
        let mut p = CMat::zeros(2, 2);
        p[(0, 0)] = C64::new(1.2, 0.0);
        p[(1, 1)] = C64::new(-0.2, 0.0);
        assert!(density_reason(&p, t).unwrap().contains("an entry of modulus"));
        p[(0, 0)] = C64::new(0.6, 0.0);
        p[(1, 1)] = C64::new(0.4, 0.0);
        p[(0, 1)] = C64::new(0.6, 0.0);
        p[(1, 0)] = C64::new(0.6, 0.0);
        assert!(density_reason(&p, t).unwrap().contains("positive"));
        let mut n = bell();
        n[(0, 0)] = C64::new(f64::NAN, 0.0);
        assert!(density_reason(&n, t).unwrap().contains("non-finite"));
    }

    #[test]
    fn saved_states_unchanged_pass_and_an_edited_member_is_named() {
        let d = 4;
        let one: Vec<C64> = bell().transpose().iter().copied().collect();
        let mut states: Vec<C64> = one.iter().cycle().take(2 * 3 * 16).copied().collect();
        // the run's own states pass whatever they hold
        states[16 * 4] = C64::new(7.0, 0.0);
        let run = member_hashes(&states, 3 * 16);
        let tol = DensityTol::run(Precision::F64);
        check_saved_states(&states, d, &[10, 11], &[0.0, 0.5, 1.0], &run, tol).unwrap();
        states[16 * 4] = C64::new(8.0, 0.0);
        let e = check_saved_states(&states, d, &[10, 11], &[0.0, 0.5, 1.0], &run, tol).unwrap_err().to_string();
        assert!(e.starts_with("states: member 11's state at sample 1 (t = 0.5) is not a density matrix"), "{e}");
    }
}
