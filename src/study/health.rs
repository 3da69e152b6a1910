//! Health of each member's trajectory (summary.csv `health`, flagged members left out of the
//! statistics) and the Fock-tail flags of cavity runs, with the warnings they raise.

use crate::config::Plan;
use crate::engine::Precision;
use crate::measures::Measure;
use serde::{Deserialize, Serialize};

/// Health of a member's trajectory (summary.csv `health`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Ok,
    /// A value went NaN or infinite.
    NonFinite,
    /// |Tr rho - 1| beyond tolerance.
    Trace,
    /// The state turned clearly non-positive (min_eigenvalue below -tolerance).
    NonPositive,
}

impl Health {
    pub fn name(&self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::NonFinite => "nonfinite",
            Health::Trace => "trace",
            Health::NonPositive => "nonpositive",
        }
    }
}

/// Trace and positivity tolerances of the health check for a run's precision.
pub fn health_tolerance(precision: Precision) -> (f64, f64) {
    match precision {
        Precision::F32 => (1e-3, 1e-3),
        Precision::F64 => (1e-8, 1e-6),
    }
}

/// Health of one member from its values [sample][measure].
pub fn member_health(values: &[f64], measures: &[Measure], precision: Precision) -> Health {
    // every exponent bit set is inf or NaN: an OR over the whole member, with no early exit,
    // vectorises (`any(!is_finite)` tests a value at a time)
    const EXPONENT: u64 = 0x7ff << 52;
    if values.iter().fold(false, |bad, v| bad | (v.to_bits() & EXPONENT == EXPONENT)) {
        return Health::NonFinite;
    }
    let nm = measures.len();
    let (trace_tol, pos_tol) = health_tolerance(precision);
    let col = |m: Measure| measures.iter().position(|x| *x == m);
    if let Some(k) = col(Measure::TraceError) {
        if values.iter().skip(k).step_by(nm).any(|v| v.abs() > trace_tol) {
            return Health::Trace;
        }
    }
    if let Some(k) = col(Measure::MinEigenvalue) {
        if values.iter().skip(k).step_by(nm).any(|v| *v < -pos_tol) {
            return Health::NonPositive;
        }
    }
    Health::Ok
}

/// Health counts of a run.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct HealthCounts {
    pub ok: u64,
    pub nonfinite: u64,
    pub trace: u64,
    pub nonpositive: u64,
    /// Ids of the first flagged members.
    pub flagged_ids: Vec<u64>,
}

impl HealthCounts {
    pub fn add(&mut self, id: u64, h: Health) {
        match h {
            Health::Ok => self.ok += 1,
            Health::NonFinite => self.nonfinite += 1,
            Health::Trace => self.trace += 1,
            Health::NonPositive => self.nonpositive += 1,
        }
        if h != Health::Ok && self.flagged_ids.len() < 20 {
            self.flagged_ids.push(id);
        }
    }
    pub fn flagged(&self) -> u64 {
        self.nonfinite + self.trace + self.nonpositive
    }
    pub fn merge(&mut self, o: &HealthCounts) {
        self.ok += o.ok;
        self.nonfinite += o.nonfinite;
        self.trace += o.trace;
        self.nonpositive += o.nonpositive;
        for id in &o.flagged_ids {
            if self.flagged_ids.len() < 20 {
                self.flagged_ids.push(*id);
            }
        }
    }
    /// One line for the report, with the likely cause.
    pub fn warning(&self, dt: f64) -> Option<String> {
        if self.flagged() == 0 {
            return None;
        }
        let ids: Vec<String> = self.flagged_ids.iter().map(|i| i.to_string()).collect();
        let mut s = format!(
            "{} member(s) flagged unhealthy and left out of the statistics ({} non-finite, {} lost trace, {} non-positive; first ids: {})",
            self.flagged(),
            self.nonfinite,
            self.trace,
            self.nonpositive,
            ids.join(", ")
        );
        let mut causes = vec![];
        if self.nonfinite + self.trace > 0 {
            causes.push("non-finite values or a lost trace are RK4 instability or f32 rounding");
        }
        if self.nonpositive > 0 {
            // RK4 keeps the trace but not positivity: a zero eigenvalue of a (nearly) pure
            // state moves by the step's truncation error, O(dt^4) over a run
            causes.push("a non-positive state is RK4's truncation error pushing a zero eigenvalue below -tolerance (it shrinks as dt^4)");
        }
        s += &format!("; {}: try a smaller dt than {dt}, or --precision f64 for an f32 run", causes.join("; "));
        Some(s)
    }
}

/// Members whose fock_tail passed the plan's threshold.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct FockTailFlags {
    pub count: u64,
    /// (member id, largest tail) of the first few.
    pub first: Vec<(u64, f64)>,
    /// Largest photon number reached by a flagged member (0 when not measured).
    pub worst_photon_number: f64,
}

/// Flag the members of a model with a cavity mode (cavity-cells, dicke) whose fock_tail passed
/// the threshold.
pub(super) fn fock_flags(plan: &Plan, measures: &[Measure], values: &[f64], sub: &Plan, ns: usize, flags: &mut FockTailFlags) {
    if plan.n_fock().is_none() {
        return;
    }
    let nm = measures.len();
    let Some(kt) = measures.iter().position(|m| *m == Measure::FockTail) else {
        return;
    };
    let kn = measures.iter().position(|m| *m == Measure::PhotonNumber);
    for (i, m) in sub.members.iter().enumerate() {
        let col = |k: usize| (0..ns).map(|s| values[(i * ns + s) * nm + k]).fold(0.0, f64::max);
        let tail = col(kt);
        // (a member whose values went non-finite is flagged by its health, not here)
        if tail.is_finite() && tail > plan.fock_tail_threshold {
            flags.count += 1;
            if flags.first.len() < 10 {
                flags.first.push((m.id, tail));
            }
            if let Some(n) = kn.map(col).filter(|n| n.is_finite()) {
                flags.worst_photon_number = flags.worst_photon_number.max(n);
            }
        }
    }
}

/// Health codes of summary.npy's `health` column.
pub const HEALTH_CODES: [(f64, Health); 4] = [(0.0, Health::Ok), (1.0, Health::NonFinite), (2.0, Health::Trace), (3.0, Health::NonPositive)];

/// Runs of a model with a cavity mode: the warning for members whose fock_tail exceeded the
/// plan's threshold, with the cutoff to use (cavity-cells: from the largest photon number a
/// flagged member reached, when measured; dicke, whose counter-rotating terms the coherent
/// rule does not bound: above the cutoff and that photon number).
pub fn fock_tail_warnings(plan: &Plan, measures: &[Measure], flags: &FockTailFlags) -> Vec<String> {
    let Some(n_fock) = plan.n_fock() else {
        return vec![];
    };
    if !measures.contains(&Measure::FockTail) {
        return vec![format!("fock_tail was not among the measures: the cutoff n_fock = {n_fock} was not checked")];
    }
    if flags.count == 0 {
        return vec![];
    }
    let worst_nbar = flags.worst_photon_number;
    let listed: Vec<String> = flags.first.iter().map(|(id, t)| format!("{id} ({t:.1e})")).collect();
    let suggestion = if plan.is_dicke() {
        match worst_nbar > 0.0 {
            true => format!("; raise n_fock above {n_fock} (the largest photon number reached was {worst_nbar:.2})"),
            false => format!("; raise n_fock above {n_fock}"),
        }
    } else if worst_nbar > 0.0 {
        match crate::config::auto_n_fock(worst_nbar.sqrt()) {
            Some(n) => format!("; use n_fock >= {} (from the largest photon number reached, {worst_nbar:.2}), or --auto-fock", n.max(n_fock + 1)),
            None => format!("; the largest photon number reached, {worst_nbar:.2}, needs a cutoff beyond the largest supported (n_fock = {}): this run cannot be truncated well", crate::model::cavity_cells::MAX_N_FOCK),
        }
    } else {
        format!("; raise n_fock above {n_fock}")
    };
    vec![format!(
        "fock_tail exceeds {:.0e} for {} member(s): {}{}{}",
        plan.fock_tail_threshold,
        flags.count,
        listed.join(", "),
        if flags.count as usize > listed.len() { ", ..." } else { "" },
        suggestion
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A member is non-finite exactly when one of its values is (`f64::is_finite`), wherever
    /// the value sits; the extremes of the finite values (the largest, the subnormals, -0) are
    /// finite, and the trace and positivity checks still apply to a finite member.
    #[test]
    fn a_member_is_non_finite_exactly_when_a_value_is() {
        let measures = [Measure::EnergyB, Measure::TraceError, Measure::MinEigenvalue];
        let finite = [0.5, 0.0, 0.0];
        let odd = [
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            -f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            -0.0,
            f64::from_bits(0x7ff0_0000_0000_0001),
        ];
        for len in [1usize, 3, 7, 64] {
            for at in 0..len * 3 {
                for &x in &odd {
                    let mut values: Vec<f64> = finite.iter().copied().cycle().take(len * 3).collect();
                    values[at] = x;
                    let h = member_health(&values, &measures, Precision::F64);
                    if x.is_finite() {
                        assert_ne!(h, Health::NonFinite, "{x:e} at {at} of {}", values.len());
                    } else {
                        assert_eq!(h, Health::NonFinite, "{x:e} at {at} of {}", values.len());
                    }
                }
            }
        }
        let healthy: Vec<f64> = finite.iter().copied().cycle().take(30).collect();
        assert_eq!(member_health(&healthy, &measures, Precision::F64), Health::Ok);
        let mut trace = healthy.clone();
        trace[1 + 3 * 4] = 1e-3;
        assert_eq!(member_health(&trace, &measures, Precision::F64), Health::Trace);
    }
}
