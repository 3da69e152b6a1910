//! RK4's accuracy at the run's dt, estimated before the run: a note (never a refusal) where
//! the error on the generator's fastest modes may be visible in the results. The stability
//! check (`systems`) keeps the run finite; this says when a stable dt is still coarse.
//!
//! ```text
//! per step, an eigenvalue lambda of L with |dt lambda| <= y:
//!   |R(dt lambda) - e^(dt lambda)| <= r(y) = e^y - (1 + y + y^2/2 + y^3/6 + y^4/24)
//!                                       = sum_{k>=5} y^k / k!       (maximum modulus on |z| = y)
//! over n steps, |R| and |e^z| <= 1 in RK4's stability region:
//!   |R^n - e^(n dt lambda)| <= n r(y)                   (telescoping: a^n - b^n)
//! with y = dt B, B the bound on the generator's spectral radius that the stability check uses.
//! ```
//!
//! For y << 1 the estimate is t_end B y^4 / 120. It is about the fastest modes B allows: modes
//! the state does not populate see less, a non-normal generator can see more. It is made for
//! the two-qubit models only: there the 16 modes of a 4x4 state are what a run populates, while
//! a cavity's B is set by its top Fock states, which a run within its fock_tail check barely
//! reaches (the dicke example's B gives an estimate of 1.1 where halving dt moves its measures
//! by 3e-6).

use crate::job::Schedule;
use crate::model::drive::Drive;
use crate::model::OpenSystem;
use rayon::prelude::*;
use std::sync::Arc;

/// The estimated error at which a run is told (about 0.1% of an O(1) amplitude).
pub const ACCURACY_NOTE_AT: f64 = 1e-3;

/// Points whose bound is found by eigen-solves (about 5 ms each for an 84x84 cavity point)
/// after their entries' bound passed `ACCURACY_NOTE_AT`: the points of the largest entries'
/// bounds, at most this many.
const EXACT_POINTS: usize = 8;

/// r(y) = sum_{k>=5} y^k / k!: RK4's largest local error on |dt lambda| <= y (no cancellation
/// from e^y minus its Taylor polynomial).
pub fn rk4_local_error(y: f64) -> f64 {
    let mut term = y.powi(5) / 120.0;
    let mut sum = 0.0;
    let mut k = 5.0;
    while term > sum * 1e-17 && k < 400.0 {
        sum += term;
        k += 1.0;
        term *= y / k;
    }
    sum
}

/// The estimate over `steps` steps of dt with spectral bound `bound`, at most 2 (two unit
/// amplitudes apart).
pub fn rk4_global_error(dt: f64, bound: f64, steps: u64) -> f64 {
    (steps as f64 * rk4_local_error(dt * bound)).min(2.0)
}

/// The note, where the largest estimate over the points passes `ACCURACY_NOTE_AT`.
pub(super) fn accuracy_note(systems: &[Arc<OpenSystem>], drives: &[Vec<Drive>], schedule: &Schedule, steady: bool) -> Option<String> {
    let steps = schedule.total_steps();
    if steady || steps == 0 || systems.first().is_none_or(|s| s.space != crate::model::Space::TwoQubit) {
        return None;
    }
    let dt = schedule.dt;
    let t_end = schedule.times.last().copied().unwrap_or(0.0);
    let reach = |d: &Drive| d.amplitude.abs() * d.envelope.max_over(t_end);
    let no_drives = vec![];
    let drives_of = |i: usize| drives.get(i).unwrap_or(&no_drives);
    // B_i from the entries (no eigen-solve), the drives at their strongest added
    let entry: Vec<f64> = systems
        .par_iter()
        .enumerate()
        .map(|(i, s)| s.generator_norm_entry_bound() + drives_of(i).iter().map(|d| reach(d) * crate::model::spectrum_spread_entry_bound(&d.op)).sum::<f64>())
        .collect();
    let estimate = |b: f64| rk4_global_error(dt, b, steps);
    let mut order: Vec<usize> = (0..entry.len()).filter(|&i| entry[i].is_finite() && estimate(entry[i]) > ACCURACY_NOTE_AT).collect();
    if order.is_empty() {
        return None;
    }
    order.sort_by(|&a, &b| entry[b].total_cmp(&entry[a]));
    // the exact bounds of the largest entries' bounds, while one could still be the largest
    let mut worst = (0.0, 0.0);
    for &i in order.iter().take(EXACT_POINTS) {
        if estimate(entry[i]) <= worst.0 {
            break;
        }
        let b = systems[i].generator_norm_bound() + drives_of(i).iter().map(|d| reach(d) * crate::model::spectrum_spread(&d.op)).sum::<f64>();
        let e = estimate(b.min(entry[i]));
        if e > worst.0 {
            worst = (e, b.min(entry[i]));
        }
    }
    let (error, bound) = worst;
    (error > ACCURACY_NOTE_AT).then(|| {
        format!(
            "time.dt = {dt}: RK4's error on the generator's fastest modes may reach {error:.1e} by t = {t_end} (dt * B = {:.3}, B = {bound:.4e} its spectral bound); halve dt and compare to check (docs/physics.md, \"Stability bound\")",
            dt * bound
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// r(y) against e^y minus its Taylor polynomial, and y^5/120 where y is small.
    #[test]
    fn the_local_error_is_the_exponential_past_its_fourth_order() {
        for y in [0.5f64, 1.0, 2.0, 2.7] {
            let direct = y.exp() - (1.0 + y + y * y / 2.0 + y.powi(3) / 6.0 + y.powi(4) / 24.0);
            // (the difference keeps e^y's rounding, a few ulps of e^y)
            assert!((rk4_local_error(y) - direct).abs() <= 8.0 * f64::EPSILON * y.exp(), "{y}: {} vs {direct}", rk4_local_error(y));
        }
        let y = 1e-3f64;
        assert!((rk4_local_error(y) / (y.powi(5) / 120.0) - 1.0).abs() < 1e-3);
        assert_eq!(rk4_local_error(0.0), 0.0);
    }

    /// The bound holds for the exact RK4 amplification of an oscillating mode, e^(i w t), over
    /// n steps (|R(iy)^n - e^(i n y)| computed in the test), and is not far above it.
    #[test]
    fn the_global_estimate_bounds_an_oscillating_modes_error() {
        use num_complex::Complex64 as C;
        for (y, n) in [(0.02f64, 2000u64), (0.2, 500), (1.0, 108), (2.0, 30)] {
            let z = C::new(0.0, y);
            let r = C::new(1.0, 0.0) + z + z * z / 2.0 + z * z * z / 6.0 + z * z * z * z / 24.0;
            let actual = (r.powu(n as u32) - (z * n as f64).exp()).norm();
            let est = rk4_global_error(1.0, y, n);
            assert!(est >= actual, "y {y}: estimate {est} below the actual {actual}");
            // within a factor 10 where the error is not yet saturated at 2
            assert!(actual >= 0.1 * est || est >= 2.0 * 0.99, "y {y}: estimate {est} far above the actual {actual}");
        }
    }
}
