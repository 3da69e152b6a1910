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

/// Flagged members named in run.json: the smallest ids, so that the list is the same whatever
/// order the blocks finish in (several devices), and for a merge of shards.
const FLAGGED_IDS_KEPT: usize = 20;
/// Members named in a Fock-tail warning (the smallest ids, as `FLAGGED_IDS_KEPT`).
const FOCK_FIRST_KEPT: usize = 10;

/// Insert `x` into `list`, kept sorted by `id` and at most `kept` long: the `kept` smallest ids
/// seen, whatever the order they come in.
fn keep_smallest<T, F: Fn(&T) -> u64>(list: &mut Vec<T>, x: T, kept: usize, id: F) {
    let at = list.partition_point(|y| id(y) < id(&x));
    if at < kept {
        list.insert(at, x);
        list.truncate(kept);
    }
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
        if h != Health::Ok {
            keep_smallest(&mut self.flagged_ids, id, FLAGGED_IDS_KEPT, |&i| i);
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
        for &id in &o.flagged_ids {
            keep_smallest(&mut self.flagged_ids, id, FLAGGED_IDS_KEPT, |&i| i);
        }
    }
    /// The error of a run, or of a merge of its shards, whose every member is flagged
    /// unhealthy: there are no statistics to give.
    pub fn all_unhealthy(&self, dt: f64) -> crate::error::QbatError {
        crate::error::QbatError::Numerics(format!("every member was flagged unhealthy; {}", self.warning(dt).unwrap_or_default()))
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
pub fn fock_flags(plan: &Plan, measures: &[Measure], values: &[f64], sub: &Plan, ns: usize, flags: &mut FockTailFlags) {
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
            keep_smallest(&mut flags.first, (m.id, tail), FOCK_FIRST_KEPT, |f| f.0);
            if let Some(n) = kn.map(col).filter(|n| n.is_finite()) {
                flags.worst_photon_number = flags.worst_photon_number.max(n);
            }
        }
    }
}

impl FockTailFlags {
    /// The flags of two parts of a run (shards) as those of the whole; None when the count
    /// overflows (damaged input).
    pub fn merged(&self, o: &FockTailFlags) -> Option<FockTailFlags> {
        let mut first = self.first.clone();
        for &f in &o.first {
            keep_smallest(&mut first, f, FOCK_FIRST_KEPT, |f| f.0);
        }
        Some(FockTailFlags { count: self.count.checked_add(o.count)?, first, worst_photon_number: self.worst_photon_number.max(o.worst_photon_number) })
    }
}

/// What a run's Fock-tail warning depends on besides its flags. run.json keeps it beside the
/// flags (`fock_tail`), so that `merge` says the warning of the whole run, not one shard's.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FockTailCheck {
    pub n_fock: usize,
    pub threshold: f64,
    pub dicke: bool,
    /// fock_tail among the measures (else the cutoff was not checked)
    pub measured: bool,
}

/// run.json's `fock_tail`: a run's Fock-tail flags with what their warning depends on.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FockTailRecord {
    pub check: FockTailCheck,
    pub flags: FockTailFlags,
}

impl FockTailCheck {
    /// The check of a run of `plan` with `measures`; None for a model without a cavity mode.
    pub fn of(plan: &Plan, measures: &[Measure]) -> Option<FockTailCheck> {
        Some(FockTailCheck {
            n_fock: plan.n_fock()?,
            threshold: plan.fock_tail_threshold,
            dicke: plan.is_dicke(),
            measured: measures.contains(&Measure::FockTail),
        })
    }
}

/// Health codes of summary.npy's `health` column.
pub const HEALTH_CODES: [(f64, Health); 4] = [(0.0, Health::Ok), (1.0, Health::NonFinite), (2.0, Health::Trace), (3.0, Health::NonPositive)];

/// Runs of a model with a cavity mode: the warning for members whose fock_tail exceeded the
/// plan's threshold, with the cutoff to use (cavity-cells: from the largest photon number a
/// flagged member reached, when measured; dicke, whose counter-rotating terms the coherent
/// rule does not bound: above the cutoff and that photon number).
pub fn fock_tail_warnings(plan: &Plan, measures: &[Measure], flags: &FockTailFlags) -> Vec<String> {
    FockTailCheck::of(plan, measures).map_or(vec![], |check| check.warnings(flags))
}

impl FockTailCheck {
    /// `fock_tail_warnings` of a run with this check.
    pub fn warnings(&self, flags: &FockTailFlags) -> Vec<String> {
        let n_fock = self.n_fock;
        if !self.measured {
            return vec![format!("fock_tail was not among the measures: the cutoff n_fock = {n_fock} was not checked")];
        }
        if flags.count == 0 {
            return vec![];
        }
        let worst_nbar = flags.worst_photon_number;
        // (two decimals said 0.00 of a photon number of 3e-3 beside a tail of 6e-4)
        let nbar = if worst_nbar >= 0.01 { format!("{worst_nbar:.2}") } else { format!("{worst_nbar:.1e}") };
        let listed: Vec<String> = flags.first.iter().map(|(id, t)| format!("{id} ({t:.1e})")).collect();
        let suggestion = if self.dicke {
            match worst_nbar > 0.0 {
                true => format!("; raise n_fock above {n_fock} (the largest photon number reached was {nbar})"),
                false => format!("; raise n_fock above {n_fock}"),
            }
        } else if worst_nbar > 0.0 {
            match crate::config::auto_n_fock(worst_nbar.sqrt()) {
                Some(n) => format!("; use n_fock >= {} (from the largest photon number reached, {nbar}), or --auto-fock", n.max(n_fock + 1)),
                None => format!(
                    "; the largest photon number reached, {nbar}, needs a cutoff beyond the largest supported (n_fock = {}): this run cannot be truncated well",
                    crate::model::cavity_cells::MAX_N_FOCK
                ),
            }
        } else {
            format!("; raise n_fock above {n_fock}")
        };
        vec![format!(
            "fock_tail exceeds {:.0e} for {} member(s): {}{}{}",
            self.threshold,
            flags.count,
            listed.join(", "),
            if flags.count as usize > listed.len() { ", ..." } else { "" },
            suggestion
        )]
    }
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

    /// The members a run names (flagged ids, Fock-tail flags) are the smallest ids, whatever
    /// order the blocks come in or however the run is split into shards.
    #[test]
    fn named_members_do_not_depend_on_the_order_or_the_split() {
        let ids: Vec<u64> = (0..100).map(|k| (k * 37) % 100).collect();
        let mut one = HealthCounts::default();
        for &i in &ids {
            one.add(i, if i % 3 == 0 { Health::Ok } else { Health::Trace });
        }
        let expect: Vec<u64> = (0..100).filter(|i| i % 3 != 0).take(FLAGGED_IDS_KEPT).collect();
        assert_eq!(one.flagged_ids, expect);
        let (mut a, mut b) = (HealthCounts::default(), HealthCounts::default());
        for &i in ids.iter().rev() {
            let h = if i % 3 == 0 { Health::Ok } else { Health::Trace };
            if i >= 50 {
                a.add(i, h)
            } else {
                b.add(i, h)
            }
        }
        a.merge(&b);
        assert_eq!(a, one);
        let flags = |ids: &[u64]| {
            ids.iter().fold(FockTailFlags::default(), |f, &i| {
                let mut g = FockTailFlags { count: 1, ..Default::default() };
                keep_smallest(&mut g.first, (i, i as f64), FOCK_FIRST_KEPT, |x| x.0);
                g.worst_photon_number = i as f64;
                f.merged(&g).unwrap()
            })
        };
        let (lo, hi) = ids.split_at(30);
        assert_eq!(flags(hi).merged(&flags(lo)).unwrap(), flags(&ids));
        let all = flags(&ids);
        assert_eq!((all.count, all.worst_photon_number), (100, 99.0));
        assert_eq!(all.first.iter().map(|f| f.0).collect::<Vec<_>>(), (0..FOCK_FIRST_KEPT as u64).collect::<Vec<_>>());
        assert!(FockTailFlags { count: u64::MAX, ..Default::default() }.merged(&all).is_none());
    }
}
