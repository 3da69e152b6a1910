//! `--verify`: re-integrate members chosen by the seed on the f64 reference and compare each
//! measure with its tolerance. The in-memory run and the streamed study share the member
//! choice, the folding of deviations and the report.

pub mod dt_check;

use crate::engine::Precision;
use crate::measures::Measure;
use rand::seq::index::sample as sample_indices;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// Largest deviation of one measure between the run and the f64 reference.
#[derive(Clone, Debug, Serialize)]
pub struct Deviation {
    pub measure: String,
    pub max_abs: f64,
    /// The largest |value| of the measure in the references: its tolerance is the precision's
    /// base times max(1, scale) (`verify_tolerance`).
    pub scale: f64,
    pub tolerance: f64,
    pub pass: bool,
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

/// The route of the concurrence in a run of `model` on `backend` ("gpu" or "cpu") at
/// `precision`: the two-qubit models compute it with the measures kernel (on the device, in
/// the run's precision) or its CPU twin (f64); the cavity model on the host, from the GPU
/// kernel's reduced states with that twin, and on the CPU engine with nalgebra.
pub fn concurrence_route(measures: &[Measure], model: crate::model::ModelKind, backend: &str, precision: Precision) -> Option<String> {
    use crate::model::ModelKind;
    if !measures.contains(&Measure::Concurrence) {
        return None;
    }
    let two_qubit = matches!(model, ModelKind::SpinPair | ModelKind::DrivenPair | ModelKind::BlochCharger | ModelKind::TwoQubit);
    Some(match (two_qubit, backend) {
        (true, "gpu") => format!("{} on the device (singular values of X^T S X by one-sided Jacobi)", precision.name()),
        (true, _) => "f64 on the CPU (measures twin: singular values of X^T S X by one-sided Jacobi)".into(),
        // cavity-cells: the kernel returns reduced states, which the host measures
        (false, "gpu") => "f64 on the host, of the kernel's reduced states (measures twin: singular values of X^T S X by one-sided Jacobi)".into(),
        (false, _) => "f64 on the host (nalgebra SVD of X^T S X)".into(),
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

/// Fold one member's deviation from the reference into each measure's largest one, and the
/// reference's largest finite |value| into its `scale`; all are [sample][measure] with
/// `max_abs.len()` measures, and a NaN counts as an infinite deviation.
pub fn fold_deviations(max_abs: &mut [f64], scale: &mut [f64], got: &[f64], reference: &[f64]) {
    let nm = max_abs.len();
    for (c, (a, b)) in got.iter().zip(reference).enumerate() {
        let d = (a - b).abs();
        max_abs[c % nm] = max_abs[c % nm].max(if d.is_nan() { f64::INFINITY } else { d });
        if b.is_finite() {
            scale[c % nm] = scale[c % nm].max(b.abs());
        }
    }
}

/// The verify report from each measure's largest deviation and scale (`fold_deviations`).
pub fn verify_report(measures: &[Measure], max_abs: &[f64], scale: &[f64], precision: Precision, members: Vec<u64>) -> VerifyReport {
    let deviations: Vec<Deviation> = measures
        .iter()
        .enumerate()
        .map(|(k, m)| {
            let (max_abs, scale) = (max_abs[k], scale.get(k).copied().unwrap_or(0.0));
            let tolerance = verify_tolerance(*m, precision, scale);
            Deviation { measure: m.name().into(), max_abs, scale, tolerance, pass: max_abs <= tolerance, precision: None }
        })
        .collect();
    let pass = deviations.iter().all(|d| d.pass);
    VerifyReport { members, deviations, pass, concurrence: None, dt_halved: None }
}

/// The members verified at one precision, with each measure's largest deviation and scale
/// (`fold_deviations`); a streamed run keeps them in its checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifyGroup {
    pub precision: Precision,
    pub members: Vec<u64>,
    #[serde(deserialize_with = "null_as_infinite")]
    pub max: Vec<f64>,
    /// Each measure's largest |reference value| (empty in a checkpoint of a build before it,
    /// read as 0: the tolerance's floor).
    #[serde(default)]
    pub scale: Vec<f64>,
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
        return verify_report(measures, &g.max, &g.scale, g.precision, g.members.clone());
    }
    let mut members = vec![];
    let mut deviations = vec![];
    for g in groups {
        let r = verify_report(measures, &g.max, &g.scale, g.precision, g.members.clone());
        members.extend(r.members);
        deviations.extend(r.deviations.into_iter().map(|d| Deviation { precision: Some(g.precision), ..d }));
    }
    members.sort_unstable();
    let pass = deviations.iter().all(|d| d.pass);
    VerifyReport { members, deviations, pass, concurrence: None, dt_halved: None }
}
