//! `--verify`: re-integrate members chosen by the seed on the f64 reference and compare each
//! measure with its tolerance. The in-memory run and the streamed study share the member
//! choice, the folding of deviations and the report.

pub mod dt_check;

use crate::engine::Precision;
use crate::linalg::{eigvals_hermitian, traceless_part, CMat};
use crate::measures::Measure;
use crate::model::{OpenSystem, Space};
use rand::seq::index::sample as sample_indices;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// The deviation of one measure between the run and the f64 reference, of the verified member
/// nearest to, or furthest past, its own tolerance (`Worst`).
#[derive(Clone, Debug, Serialize)]
pub struct Deviation {
    pub measure: String,
    /// That member's largest |run - reference| over its samples (the rates' times min(1, t):
    /// `sample_weights`).
    pub max_abs: f64,
    /// That member's scale, its largest |value| of the measure in its reference (weighted as
    /// `max_abs`) and at least
    /// its `energy_floor`: its tolerance is the precision's base times max(1, scale)
    /// (`verify_tolerance`).
    pub scale: f64,
    pub tolerance: f64,
    pub pass: bool,
    /// That member's id (absent where the worst is an older build's, of a checkpoint resumed or
    /// a shard merged, which kept none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<u64>,
    /// The largest |run - reference| of any verified member (weighted as `max_abs`), whatever
    /// its scale (a bound on
    /// the run's error, where the worst member's max_abs is the one nearest its tolerance).
    pub largest_abs: f64,
    /// The precision of the members this deviation covers, in a run whose blocks ran at more
    /// than one (each group has its own tolerance); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<Precision>,
}

#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub members: Vec<u64>,
    pub deviations: Vec<Deviation>,
    pub pass: bool,
    /// How and in which precision the concurrence was computed (square-root sensitive near
    /// pure states), when the run has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrence: Option<String>,
    /// The first verified member run again at dt / 2 (`dt_check`), where it could be.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dt_halved: Option<dt_check::DtCheck>,
}

impl VerifyReport {
    /// The warning of a verify that found a deviation beyond its tolerance (`verify_warning`).
    pub fn warning(&self) -> Option<String> {
        match self.pass {
            true => None,
            false => Some(verify_warning(self.deviations.iter().filter(|d| !d.pass).map(|d| (d.measure.as_str(), d.max_abs, d.tolerance, d.member)))),
        }
    }
}

/// The warning of the deviations beyond their tolerance, `failed` (measure, max |dev|,
/// tolerance, worst member), in one line: `measure max |dev| = X > TOL (member N)` of the
/// first four (the run's verify figures hold them all).
pub fn verify_warning<'a>(failed: impl Iterator<Item = (&'a str, f64, f64, Option<u64>)>) -> String {
    const SHOWN: usize = 4;
    let failed: Vec<String> = failed
        .map(|(measure, max_abs, tolerance, member)| {
            let member = member.map(|id| format!(" (member {id})")).unwrap_or_default();
            format!("{measure} max |dev| = {max_abs:.3e} > {tolerance:.1e}{member}")
        })
        .collect();
    let more = match failed.len().saturating_sub(SHOWN) {
        0 => String::new(),
        n => format!("; and {n} more measures (in the run's verify figures)"),
    };
    let shown = failed[..failed.len().min(SHOWN)].join("; ");
    format!("--verify found deviations beyond tolerance: {shown}{more}")
}

/// The route of the concurrence in a run of `model` on `backend` ("gpu" or "cpu") at
/// `precision`: the two-qubit models compute it with the measures kernel (on the device, in
/// the run's precision) or its CPU twin (f64); the cavity model on the host, from the GPU
/// kernel's reduced states with that twin, on the CPU engine with the twin too, and on the
/// reference with nalgebra.
pub fn concurrence_route(measures: &[Measure], model: crate::model::ModelKind, backend: &str, precision: Precision) -> Option<String> {
    use crate::model::ModelKind;
    if !measures.contains(&Measure::Concurrence) {
        return None;
    }
    let two_qubit = matches!(model, ModelKind::SpinPair | ModelKind::DrivenPair | ModelKind::BlochCharger | ModelKind::TwoQubit);
    Some(match (two_qubit, backend) {
        (true, "gpu") => format!("{} on the device (singular values of X^T S X by one-sided Jacobi)", precision.name()),
        (true, _) => "f64 on the CPU (measures twin: singular values of X^T S X by one-sided Jacobi)".into(),
        // cavity-cells: the kernel returns reduced states, which the host measures; the CPU
        // engine measures its own with the same twin; the reference with nalgebra
        (false, "gpu") => "f64 on the host, of the kernel's reduced states (measures twin: singular values of X^T S X by one-sided Jacobi)".into(),
        (false, "reference") => "f64 on the host (nalgebra SVD of X^T S X)".into(),
        (false, _) => "f64 on the host, of the CPU engine's reduced states (measures twin: singular values of X^T S X by one-sided Jacobi)".into(),
    })
}

/// Tolerance of the verify check for a measure at a precision, of values up to `scale` in
/// magnitude: the base (1e-4 in f32, 1e-9 in f64; `measure_tolerance`) times max(1, scale).
/// The precision's rounding is relative, so a value of 3000 (an energy with an offset) carries
/// 3000 times the rounding of a value of 1: an absolute tolerance failed it for that alone.
pub fn verify_tolerance(m: Measure, precision: Precision, scale: f64) -> f64 {
    let base = match precision {
        Precision::F32 => 1e-4,
        Precision::F64 => 1e-9,
    };
    measure_tolerance(m, base) * scale.max(1.0)
}

/// Tolerance for comparing measure m between engines, given the base tolerance of the states.
/// Square-root-sensitive measures (`Measure::sqrt_sensitive`) get 10x the base, and never less
/// than sqrt(1e-14) = 1e-7, the square root of f64 rounding accumulated over a run.
pub fn measure_tolerance(m: Measure, base: f64) -> f64 {
    if m.sqrt_sensitive() {
        (10.0 * base).max(1e-7)
    } else {
        base
    }
}

/// The members `--verify` re-runs: `k` of `n`, chosen by the seed, in index order.
pub fn verify_indices(seed: u64, n: usize, k: usize) -> Vec<usize> {
    let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(seed ^ 0x5eed_0f_7e51f1);
    let mut idx: Vec<usize> = sample_indices(&mut rng, n, k.min(n)).into_vec();
    idx.sort_unstable();
    idx
}

/// Each measure's worst verified member: the one whose largest deviation d from the reference
/// is the largest fraction of its own tolerance, base x max(1, s), with s its own scale (its
/// largest finite |reference value| of the measure, at least `energy_floor`). Per member, so that in a sweep of wb = 0.01 and
/// wb = 1000 the small member is not held to the large one's tolerance (its rounding is 1e5
/// times smaller). Ties go to the smaller id, so that blocks folded in any order (several
/// devices) pick the same member.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Worst {
    /// Each measure's worst member's largest deviation (+inf: a NaN against the reference).
    #[serde(deserialize_with = "null_as_infinite")]
    pub max: Vec<f64>,
    /// Its scale (empty in a checkpoint of a build before it, read as 0: the tolerance's
    /// floor).
    #[serde(default)]
    pub scale: Vec<f64>,
    /// Its id (empty in a checkpoint of a build before it).
    #[serde(default)]
    pub member: Vec<Option<u64>>,
    /// The largest deviation of any member folded (empty in a checkpoint of a build before
    /// it, whose `max` was that).
    #[serde(default, deserialize_with = "null_as_infinite")]
    pub largest: Vec<f64>,
}

impl Worst {
    pub fn new(n_measures: usize) -> Self {
        Worst { max: vec![0.0; n_measures], scale: vec![0.0; n_measures], member: vec![None; n_measures], largest: vec![0.0; n_measures] }
    }

    /// Fold one member's values against its reference, both [sample][measure] with
    /// `self.max.len()` measures, each taken times its `weight` (`sample_weights`); its scale
    /// is at least `floor` (`energy_floor`).
    pub fn fold(&mut self, id: u64, got: &[f64], reference: &[f64], weight: &[f64], floor: &[f64]) {
        let nm = self.max.len();
        // (a checkpoint of a build before scales and members has neither)
        self.scale.resize(nm, 0.0);
        self.member.resize(nm, None);
        if self.largest.len() != nm {
            self.largest = self.max.clone();
        }
        let (d, mut s) = member_deviations(nm, got, reference, weight);
        for (s, f) in s.iter_mut().zip(floor) {
            *s = s.max(*f);
        }
        for k in 0..nm {
            self.largest[k] = self.largest[k].max(d[k]);
            let (ratio, held) = (d[k] / s[k].max(1.0), self.max[k] / self.scale[k].max(1.0));
            // (no member yet: a fresh group's 0, or an older build's deviation, kept unless this
            // one is worse)
            if ratio > held || (ratio == held && id < self.member[k].unwrap_or(u64::MAX)) {
                (self.max[k], self.scale[k], self.member[k]) = (d[k], s[k], Some(id));
            }
        }
    }
}

/// The least scale of each measure for a member of `sys`: the energy scale its rounding
/// follows, whatever the measure's own value. The engines compute a qubit's energy as
/// h.r, so its error is eps |h| even where the value is near 0 (a battery of wb = 1000 at its
/// ground state: energy_variance_b near 0, its f32 error about |h|^2 eps = 0.03). So
/// E_B = ||H_B'|| (the spectral norm of H_B's traceless part; an offset is taken out exactly)
/// for the battery's energies, ergotropies, capacity, powers and fluctuation, E_B^2 for its
/// variance, E_B / N for energy_per_cell; E_C = ||H_C'|| for the charger's; ||H'|| for
/// capacity_total, and at least E_B + E_C for residual_capacity. 0 for the rest
/// (dimensionless: their own values set their scale).
pub fn energy_floor(sys: &OpenSystem, measures: &[Measure]) -> Vec<f64> {
    use Measure::*;
    let norm = |h: &CMat| eigvals_hermitian(&traceless_part(h)).iter().fold(0.0, |a: f64, x| a.max(x.abs()));
    let (e_b, e_c) = (norm(&sys.h_battery), norm(&sys.h_charger));
    let cells = match sys.space {
        Space::Dicke { n_cells, .. } => n_cells as f64,
        Space::TwoQubit | Space::Cavity { .. } => 1.0,
    };
    measures
        .iter()
        .map(|m| match m {
            EnergyB | StoredEnergyB | ErgotropyB | AntiergotropyB | CapacityB | PowerB | ErgotropicPowerB | EnergyFluctuationB => e_b,
            EnergyVarianceB => e_b * e_b,
            EnergyPerCell => e_b / cells,
            EnergyC | CapacityC | ErgotropyC | AntiergotropyC => e_c,
            EnergyVarianceC => e_c * e_c,
            CapacityTotal => norm(&sys.hamiltonian),
            // capacity_total - capacity_b - capacity_c carries the errors of all three (a custom
            // H_B and H_C need not be parts of H)
            ResidualCapacity => norm(&sys.hamiltonian).max(e_b + e_c),
            _ => 0.0,
        })
        .collect()
}

/// The weight of each [sample][measure] value in the comparison: min(1, t) for the rates
/// power_b = stored_energy_b / t and ergotropic_power_b = ergotropy_b / t (1 at t = 0, where
/// both are 0), 1 for the rest. A
/// rate's error is its energy's, eps E_B, over t: at a first sample of t = 1e-4 the f32 rate
/// is off by 1e4 eps E_B, past any tolerance of its energy scale, while the energy it divides
/// is right (and its scale, ergotropy(0) / t, grows as 1 / t). Weighted, a rate at t < 1 is
/// checked as the energy it divides.
pub fn sample_weights(measures: &[Measure], times: &[f64]) -> Vec<f64> {
    // (at t = 0 a rate is 0 by definition on every engine: compared in full)
    let weight = |t: f64| if t == 0.0 { 1.0 } else { t.min(1.0) };
    times.iter().flat_map(|&t| measures.iter().map(move |m| if is_rate(*m) { weight(t) } else { 1.0 })).collect()
}

/// The rates that `sample_weights` weighs: an energy over t.
pub fn is_rate(m: Measure) -> bool {
    matches!(m, Measure::PowerB | Measure::ErgotropicPowerB)
}

/// One member's largest deviation from its reference and largest finite |reference value|,
/// per measure, each value taken times its weight (`sample_weights`); all are
/// [sample][measure] with `nm` measures, and a NaN counts as an infinite deviation.
pub fn member_deviations(nm: usize, got: &[f64], reference: &[f64], weight: &[f64]) -> (Vec<f64>, Vec<f64>) {
    // (a shorter list would end the comparison early, and pass what it left out)
    assert!(got.len() == reference.len() && got.len() == weight.len(), "verify: values, reference and weights differ in length");
    let (mut max_abs, mut scale) = (vec![0.0f64; nm], vec![0.0f64; nm]);
    for (c, ((a, b), w)) in got.iter().zip(reference).zip(weight).enumerate() {
        let d = (a - b).abs() * w;
        max_abs[c % nm] = max_abs[c % nm].max(if d.is_nan() { f64::INFINITY } else { d });
        if b.is_finite() {
            scale[c % nm] = scale[c % nm].max(b.abs() * w);
        }
    }
    (max_abs, scale)
}

/// The verify report from each measure's worst member (`Worst`).
pub fn verify_report(measures: &[Measure], worst: &Worst, precision: Precision, members: Vec<u64>) -> VerifyReport {
    let deviations: Vec<Deviation> = measures
        .iter()
        .enumerate()
        .map(|(k, m)| {
            let (max_abs, scale) = (worst.max[k], worst.scale.get(k).copied().unwrap_or(0.0));
            let tolerance = verify_tolerance(*m, precision, scale);
            let member = worst.member.get(k).copied().flatten();
            let largest_abs = worst.largest.get(k).copied().unwrap_or(max_abs);
            Deviation { measure: m.name().into(), max_abs, scale, tolerance, pass: max_abs <= tolerance, member, largest_abs, precision: None }
        })
        .collect();
    let pass = deviations.iter().all(|d| d.pass);
    VerifyReport { members, deviations, pass, concurrence: None, dt_halved: None }
}

/// The members verified at one precision, with each measure's worst member (`Worst`); a
/// streamed run keeps them in its checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifyGroup {
    pub precision: Precision,
    pub members: Vec<u64>,
    #[serde(flatten)]
    pub worst: Worst,
}

/// Largest deviations as written: an infinite one (a NaN against the reference,
/// `fold_deviations`) is JSON's null, as serde_json writes any non-finite number.
fn null_as_infinite<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<f64>, D::Error> {
    let written: Vec<Option<f64>> = Deserialize::deserialize(d)?;
    Ok(written.into_iter().map(|x| x.unwrap_or(f64::INFINITY)).collect())
}

/// The verify report of members verified at several precisions: each group's deviations with
/// its own tolerance, labelled with its precision; it passes when every group passes.
pub fn verify_report_mixed(measures: &[Measure], groups: &[VerifyGroup]) -> VerifyReport {
    if let [g] = groups {
        return verify_report(measures, &g.worst, g.precision, g.members.clone());
    }
    let mut members = vec![];
    let mut deviations = vec![];
    for g in groups {
        let r = verify_report(measures, &g.worst, g.precision, g.members.clone());
        members.extend(r.members);
        deviations.extend(r.deviations.into_iter().map(|d| Deviation { precision: Some(g.precision), ..d }));
    }
    members.sort_unstable();
    let pass = deviations.iter().all(|d| d.pass);
    VerifyReport { members, deviations, pass, concurrence: None, dt_halved: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two members of one measure at f32, [sample][measure] with one measure: a small one
    /// (values near 0.01, off by 5e-4) and a large one (values near 1000, off by 0.05). Held
    /// to the large one's tolerance, 1e-4 x 1000 = 0.1, both passed; each held to its own, the
    /// small one fails (1e-4 x max(1, 0.01) = 1e-4 < 5e-4), and is the one named, whatever
    /// the order the members are folded in.
    #[test]
    fn each_member_is_held_to_its_own_scale() {
        let small = (3u64, vec![0.0105, 0.0095], vec![0.01, 0.01]);
        let large = (8u64, vec![1000.05, 999.0], vec![1000.0, 999.0]);
        for order in [[&small, &large], [&large, &small]] {
            let mut w = Worst::new(1);
            for (id, got, reference) in order {
                w.fold(*id, got, reference, &[1.0; 2], &[0.0]);
            }
            let r = verify_report(&[Measure::EnergyB], &w, Precision::F32, vec![3, 8]);
            let d = &r.deviations[0];
            assert_eq!(d.member, Some(3));
            assert!((d.max_abs - 5e-4).abs() < 1e-12 && d.scale == 0.01 && d.tolerance == 1e-4, "{d:?}");
            assert!(!d.pass && !r.pass);
            // the run's largest error is the large member's, which passes its own tolerance
            assert!((d.largest_abs - 0.05).abs() < 1e-9, "{d:?}");
        }
        // the large member alone passes at its own scale: 0.05 <= 0.1
        let mut w = Worst::new(1);
        w.fold(large.0, &large.1, &large.2, &[1.0; 2], &[0.0]);
        let r = verify_report(&[Measure::EnergyB], &w, Precision::F32, vec![8]);
        assert!(r.pass && r.deviations[0].tolerance == 1e-4 * 1000.0, "{r:?}");
    }

    /// Equal fractions of the tolerance (here none, and two NaNs) name the smaller id in any
    /// order; a NaN is an infinite deviation, worse than any finite one.
    #[test]
    fn ties_go_to_the_smaller_id_and_a_nan_is_worst() {
        for ids in [[5u64, 2], [2, 5]] {
            let mut w = Worst::new(2);
            for id in ids {
                w.fold(id, &[1.0, f64::NAN], &[1.0, 2.0], &[1.0; 2], &[0.0; 2]);
            }
            assert_eq!(w.member, vec![Some(2), Some(2)]);
            assert_eq!((w.max[0], w.max[1]), (0.0, f64::INFINITY));
        }
        let mut w = Worst::new(1);
        w.fold(1, &[f64::NAN], &[0.5], &[1.0], &[0.0]);
        w.fold(0, &[1e3], &[0.5], &[1.0], &[0.0]);
        assert_eq!((w.member[0], w.max[0]), (Some(1), f64::INFINITY));
    }

    /// The rates' weights, [sample][measure]: min(1, t), and 1 at t = 0 and for every other
    /// measure.
    #[test]
    fn rates_are_weighed_by_min_one_t() {
        let w = sample_weights(&[Measure::PowerB, Measure::EnergyB, Measure::ErgotropicPowerB], &[0.0, 0.25, 2.0]);
        assert_eq!(w, vec![1.0, 1.0, 1.0, 0.25, 1.0, 0.25, 1.0, 1.0, 1.0]);
    }

    /// A group written by a build before members and scales reads back with neither, and
    /// folds on from its deviations (held to the floor of the tolerance): a member no worse
    /// leaves them, a NaN among them included; the flattened form keeps a checkpoint's keys.
    #[test]
    fn an_older_checkpoint_group_reads_and_folds_on() {
        let old = r#"{"precision":"f32","members":[4],"max":[2e-5,null]}"#;
        let mut g: VerifyGroup = serde_json::from_str(old).unwrap();
        assert_eq!((g.worst.scale.len(), g.worst.member.len(), g.worst.max[1]), (0, 0, f64::INFINITY));
        g.worst.fold(9, &[0.5, 1.0], &[0.5, 1.0], &[1.0; 2], &[0.0; 2]);
        assert_eq!(g.worst.member, vec![None, None]);
        g.worst.fold(7, &[0.5 + 3e-5, 1.0], &[0.5, 1.0], &[1.0; 2], &[0.0; 2]);
        assert_eq!(g.worst.member, vec![Some(7), None]);
        let text = serde_json::to_string(&g).unwrap();
        assert!(text.contains(r#""max":[0.00002999999999997449,null],"scale":[0.5,0.0],"member":[7,null],"largest":[0.00002999999999997449,null]"#), "{text}");
    }
}
