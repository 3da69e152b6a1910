//! Explicit two-qubit batches (`qb.mesolve`): arrays of Hamiltonians, jump operators and
//! initial states built into one validated `two-qubit` plan, and its errors named as the
//! caller wrote the arguments.

use crate::config::{check_state, InitialSpec, Member, Overrides, Plan};
use crate::engine::Control;
use crate::error::{QbatError, Result};
use crate::linalg::{CMat, C64};
use rayon::prelude::*;
use serde_json::json;
use std::sync::Arc;
use toml::{Table, Value};

/// A batch of `two-qubit` members given as arrays (row-major complex 4x4 matrices):
/// `hamiltonians` P x 16, `jumps` P x J x 16 (already scaled by sqrt(rate)), `member_point`
/// the point of each of the N members, `rho0` N x 16 density matrices.
pub struct Batch<'a> {
    pub hamiltonians: &'a [C64],
    pub jumps: &'a [C64],
    pub n_jumps: usize,
    pub member_point: &'a [usize],
    pub rho0: &'a [C64],
    pub times: &'a [f64],
    pub dt: f64,
    pub h_battery: &'a [C64],
    pub h_charger: &'a [C64],
    pub measures: Option<Vec<String>>,
    /// The caller's batch shape (`qb.mesolve`'s broadcast leading dimensions; their product is
    /// the member count), kept in run.json so that a saved result reshapes as the caller's.
    pub batch_shape: Vec<u64>,
}

/// An n x n matrix from its row-major entries.
pub(super) fn mat(entries: &[C64], n: usize) -> CMat {
    CMat::from_row_slice(n, n, entries)
}

fn toml_matrix(entries: &[C64], n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| {
                Value::Array(
                    (0..n)
                        .map(|j| {
                            let z = entries[i * n + j];
                            Value::Array(vec![Value::Float(z.re), Value::Float(z.im)])
                        })
                        .collect(),
                )
            })
            .collect(),
    )
}

/// The config field of a batch error, in the names of `qb.mesolve`'s arguments: a matrix
/// entry's index (`params.hamiltonian[0][1]`) is dropped, as the caller gave the matrix whole;
/// `point` is the batch's parameter point.
fn batch_field(field: &str, point: usize) -> String {
    if let Some(rest) = field.strip_prefix("params.jumps[") {
        if let Some((k, _)) = rest.split_once(']') {
            return format!("jump_ops[{k}][{point}]");
        }
    }
    let (base, index) = field.split_at(field.find('[').unwrap_or(field.len()));
    match base {
        "params.hamiltonian" | "params" => format!("H[{point}]"),
        "params.h_battery" => "h_battery".into(),
        "params.h_charger" => "h_charger".into(),
        "time.dt" => "dt".into(),
        // (a sample time's index is the caller's tsave's)
        "time.times" => format!("tsave{index}"),
        "time.samples" => "tsave".into(),
        "output.measures" => "measures".into(),
        _ => field.into(),
    }
}

/// A batch error (`Invalid` or `TooLarge`) with its field named by `name`; the RK4 steps limit
/// says what the caller can change.
fn rename_batch_error(e: QbatError, name: impl Fn(&str) -> String) -> QbatError {
    match e {
        QbatError::Invalid { field, reason } => QbatError::Invalid { field: name(&field), reason },
        QbatError::TooLarge { field, reason } => {
            let reason = if field == "time.dt" { format!("{reason}: take a larger dt or end tsave sooner") } else { reason };
            QbatError::TooLarge { field: name(&field), reason }
        }
        e => e,
    }
}

/// An error of a batch's run (the engine's own checks, such as the f32 range of a GPU run, and
/// the in-memory check) as `mesolve`'s caller wrote the arguments: `H`, `jump_ops[k]`, `dt`,
/// `tsave`, and `members_field` for the batch's size. The point is not known there, so it is
/// not named.
pub fn batch_run_error(e: QbatError, members_field: &str) -> QbatError {
    rename_batch_error(e, |field| {
        if field == "params.jumps" {
            return "jump_ops".to_string();
        }
        if field == "--ensemble" {
            return members_field.to_string();
        }
        let named = batch_field(field, 0);
        match named.strip_suffix("[0]") {
            Some(whole) if named.starts_with('H') => whole.to_string(),
            _ => named.replace("][0]", "]"),
        }
    })
}

/// What one distinct point of a `mesolve` batch costs as its plan is built (beside 1 KiB a jump
/// operator and 64 B a sample time): measured 13 to 14 KB with one jump and two times.
const BATCH_POINT_BYTES: f64 = 16384.0;

/// What one member of a `mesolve` batch costs as the batch becomes a plan: its state and point
/// index (264 bytes) as numpy's arrays, again as the batch's, and its plan member: measured
/// 870 bytes at a million members (counted as 264 alone, a batch of 2e7 passed the check and
/// aborted the interpreter as its members were built).
const BATCH_MEMBER_BYTES: f64 = 1024.0;

/// Refuse, before the caller builds them, a batch's arrays that cannot fit: each point's
/// operators (H and the jumps, 16 complex each: 256 bytes) and each member's
/// (`BATCH_MEMBER_BYTES`). A broadcast of H (100000, 4, 4) against rho0 (100000, 1, 4, 4) made
/// numpy try 80 GB for the indices alone, naming neither.
pub fn check_batch_arrays(n_points: u64, n_jumps: u64, n_members: u64) -> Result<()> {
    let (points_bytes, members_bytes) = (n_points as f64 * (1.0 + n_jumps as f64) * 256.0, n_members as f64 * BATCH_MEMBER_BYTES);
    let bytes = points_bytes + members_bytes;
    let avail = crate::config::available_memory::available_memory();
    if bytes <= avail.usable() {
        return Ok(());
    }
    let field = if points_bytes > members_bytes { "H" } else { "rho0" };
    Err(QbatError::TooLarge {
        field: field.into(),
        reason: format!(
            "the batch of {n_members} members ({n_points} distinct H and jump_ops) needs about {} for its arrays alone, more than 60% of the {} available{}; split it into smaller qb.mesolve calls",
            crate::config::available_memory::size_need(bytes),
            crate::config::available_memory::size_text(avail.bytes),
            avail.under()
        ),
    })
}

/// A validated `two-qubit` plan of the batch: each point is checked as a config's would be
/// (Hermiticity, RK4 stability of dt, measures, times), and each member's initial state as
/// `initial.dm` is. Stops with `QbatError::Cancelled` at the next point or state once
/// `control` is cancelled (a batch of 100,000 distinct points takes seconds to build).
pub fn batch_plan(b: &Batch, control: &Control) -> Result<Plan> {
    let n_points = b.hamiltonians.len() / 16;
    let n = b.member_point.len();
    if n == 0 || n_points == 0 {
        return Err(QbatError::invalid("H", "the batch is empty"));
    }
    if b.rho0.len() != n * 16 || b.jumps.len() != n_points * b.n_jumps * 16 || b.h_battery.len() != 4 || b.h_charger.len() != 4 {
        return Err(QbatError::invalid("H", "inconsistent batch shapes"));
    }
    if b.batch_shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d)) != Some(n as u64) {
        return Err(QbatError::invalid("rho0", format!("the batch shape {:?} does not hold the batch's {n} members", b.batch_shape)));
    }
    if let Some(&p) = b.member_point.iter().find(|&&p| p >= n_points) {
        return Err(QbatError::invalid("H", format!("member point {p} is out of range (0..{n_points})")));
    }
    // Each distinct point becomes a plan's parameter point (its operators, generator and
    // parameters: 13 to 14 KB measured with one jump operator) before `check_in_memory` can
    // weigh the results: a batch of millions of distinct H must be refused here.
    // (and each keeps the sample times three times over: its schedule, segments and config)
    let points_bytes = n_points as f64 * (BATCH_POINT_BYTES + b.n_jumps as f64 * 1024.0 + 64.0 * b.times.len() as f64);
    let avail = crate::config::available_memory::available_memory();
    if points_bytes > avail.usable() {
        return Err(QbatError::TooLarge {
            field: "H".into(),
            reason: format!(
                "{n_points} distinct parameter points (H and jump_ops) need about {}, more than 60% of the {} available{}; split the batch into smaller qb.mesolve calls",
                crate::config::available_memory::size_need(points_bytes),
                crate::config::available_memory::size_text(avail.bytes),
                avail.under()
            ),
        });
    }
    let mut time = Table::new();
    time.insert("dt".into(), Value::Float(b.dt));
    time.insert("times".into(), Value::Array(b.times.iter().map(|t| Value::Float(*t)).collect()));
    let mut output = Table::new();
    if let Some(ms) = &b.measures {
        output.insert("measures".into(), Value::Array(ms.iter().map(|m| Value::String(m.clone())).collect()));
    }
    let build_point = |p: usize| -> Result<Plan> {
        control.check()?;
        let mut params = Table::new();
        params.insert("hamiltonian".into(), toml_matrix(&b.hamiltonians[p * 16..(p + 1) * 16], 4));
        params.insert("h_battery".into(), toml_matrix(b.h_battery, 2));
        params.insert("h_charger".into(), toml_matrix(b.h_charger, 2));
        let jumps: Vec<Value> = (0..b.n_jumps)
            .map(|k| {
                let off = (p * b.n_jumps + k) * 16;
                let mut t = Table::new();
                t.insert("op".into(), toml_matrix(&b.jumps[off..off + 16], 4));
                t.insert("rate".into(), Value::Float(1.0));
                Value::Table(t)
            })
            .collect();
        params.insert("jumps".into(), Value::Array(jumps));
        let mut root = Table::new();
        root.insert("model".into(), Value::String("two-qubit".into()));
        root.insert("params".into(), Value::Table(params));
        root.insert("time".into(), Value::Table(time.clone()));
        if !output.is_empty() {
            root.insert("output".into(), Value::Table(output.clone()));
        }
        crate::config::plan_from_table(&root, &Overrides::default()).map_err(|e| rename_batch_error(e, |f| batch_field(f, p)))
    };
    let plans: Vec<Plan> = (0..n_points).into_par_iter().map(build_point).collect::<Result<_>>()?;
    let rhos: Vec<CMat> = (0..n)
        .into_par_iter()
        .map(|i| {
            control.check()?;
            let rho = mat(&b.rho0[i * 16..(i + 1) * 16], 4);
            check_state(&rho, &format!("rho0[{i}]"))?;
            Ok(rho)
        })
        .collect::<Result<_>>()?;
    let mut plan = plans[0].clone();
    plan.points = plans.iter().map(|p| p.points[0].clone()).collect();
    plan.systems = plans.iter().map(|p| p.systems[0].clone()).collect();
    plan.drives = plans.iter().map(|p| p.drives[0].clone()).collect();
    plan.ensemble_size = n;
    plan.members = b.member_point.iter().enumerate().map(|(i, &p)| Member { id: i as u64, point: p, param_values: vec![], theta_phi: None }).collect();
    plan.initial = InitialSpec::PerMember(Arc::new(rhos));
    plan.param_columns = vec![];
    plan.config_json = json!({
        "mesolve": {"members": n, "batch_shape": b.batch_shape, "points": n_points, "jump_ops": b.n_jumps, "dt": b.dt, "tsave": b.times, "measures": b.measures},
    });
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch of two distinct points: its plan is built, and, once the control is cancelled
    /// (Ctrl-C in Python), the build stops with `Cancelled` rather than building every point.
    #[test]
    fn a_cancelled_build_stops() {
        let c = |re: f64| C64::new(re, 0.0);
        let mut hamiltonians = vec![c(0.0); 32];
        for (p, w) in [(0, 1.0), (1, 2.0)] {
            // diag(w, 0, 0, -w): Hermitian
            hamiltonians[p * 16] = c(w);
            hamiltonians[p * 16 + 15] = c(-w);
        }
        let mut rho0 = vec![c(0.0); 32];
        rho0[0] = c(1.0);
        rho0[16] = c(1.0);
        let pauli_z = [c(1.0), c(0.0), c(0.0), c(-1.0)];
        let batch = Batch {
            hamiltonians: &hamiltonians,
            jumps: &[],
            n_jumps: 0,
            member_point: &[0, 1],
            rho0: &rho0,
            times: &[0.0, 0.5],
            dt: 0.01,
            h_battery: &pauli_z,
            h_charger: &pauli_z,
            measures: None,
            batch_shape: vec![2],
        };
        let built = batch_plan(&batch, &Control::default()).unwrap();
        assert_eq!((built.members.len(), built.points.len()), (2, 2));
        let control = Control::default();
        control.cancel();
        assert!(matches!(batch_plan(&batch, &control), Err(QbatError::Cancelled)));
    }
}
