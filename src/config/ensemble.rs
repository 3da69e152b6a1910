//! `[ensemble]` and the expansion of a config into members: the grid of swept axes (`grid`
//! or `zip` mode), the ensemble size (a multiple of the grid), the seed, per-member parameter
//! draws, and each member's charger angles.

use super::initial::InitialSection;
use super::params::ParamSection;
use super::values::{as_f64, check_keys, invalid};
use super::{InitialSpec, Member, Overrides};
use crate::ensemble::random::{two_qubit_state, RandomKind};
use crate::ensemble::sweep::{grid_index, grid_size};
use crate::ensemble::{param_rng, state_rng};
use crate::error::{QbatError, Result};
use crate::model::{ModelKind, ParamValue, Params};
use rand::Rng;
use toml::{Table, Value};

/// The ensemble of a config.
pub struct EnsembleSection {
    pub zip: bool,
    pub seed: u64,
    pub size: u64,
    /// Grid points (the product of the axes, or their common length with `zip`).
    pub n_grid: usize,
    /// The field the size came from (`--ensemble` or `ensemble.size`), for messages.
    pub size_field: &'static str,
}

/// The least float `ensemble.seed` may not be: 2^32. Floats there are 2^-20 apart, so a
/// written fraction of 1e-6 or more stays a fraction, which is refused; further up a fraction
/// can round to a whole float (2^52 + 0.5 is read as 2^52: a silently different seed). (A
/// size, at most 1e9, is likewise within floats 1.2e-7 apart.)
const MAX_FLOAT_SEED: f64 = 4_294_967_296.0;

/// A float as the config wrote it: TOML's text (`4294967296.0`, `-1.5`) where short, else
/// `crate::error::shown`'s exponent form.
fn shown_float(x: f64) -> String {
    let text = Value::Float(x).to_string();
    if text.len() <= 24 {
        text
    } else {
        crate::error::shown(x)
    }
}

/// Read `[ensemble]`; `axis_lens` are the lengths of every grid axis (parameters, then angles),
/// and `longest` names the longest as the config spells it (for a grid of too many points).
pub fn parse_ensemble(ens_t: &Table, ov: &Overrides, axis_lens: &[usize], longest: &str) -> Result<EnsembleSection> {
    check_keys(ens_t, &["size", "seed", "mode"], "ensemble")?;
    let zip = match ens_t.get("mode").map(|v| v.as_str()) {
        None | Some(Some("grid")) => false,
        Some(Some("zip")) => true,
        Some(_) => return Err(invalid("ensemble.mode", "must be \"grid\" or \"zip\"")),
    };
    // The config's seed and size are read whatever overrides them: one that is not a seed or
    // a size is refused, not dropped without a word (a size only too large is the override's
    // to replace: a big run is tried small that way).
    let written_seed = match ens_t.get("seed") {
        Some(v) => Some(match v {
            // read as an integer: every u63 seed is distinct (an f64 would merge seeds above 2^53)
            Value::Integer(i) if *i >= 0 => *i as u64,
            // a whole float, as `size` takes one, below 2^32 (`MAX_FLOAT_SEED`)
            Value::Float(x) if x.fract() == 0.0 && (0.0..MAX_FLOAT_SEED).contains(x) => *x as u64,
            Value::Float(x) if x.fract() == 0.0 && *x >= MAX_FLOAT_SEED => {
                return Err(invalid(
                    "ensemble.seed",
                    format!(
                    "the float {} is 2^32 or more, where a written fraction can round to a whole float; write the seed as an integer (no '.0', no exponent)",
                    shown_float(*x)
                ),
                ))
            }
            Value::Float(x) => {
                return Err(invalid(
                    "ensemble.seed",
                    format!("must be a non-negative integer (a float only as a whole number below 2^32), got {}", shown_float(*x)),
                ))
            }
            _ => return Err(invalid("ensemble.seed", format!("must be a non-negative integer (a float only as a whole number below 2^32), got {v}"))),
        }),
        None => None,
    };
    let seed = ov.seed.or(written_seed).unwrap_or(0);
    let n_grid = grid_size(axis_lens, zip, longest)?;
    let written_size = match ens_t.get("size") {
        Some(v) => {
            let x = as_f64(v, "ensemble.size")?;
            let written = v.as_integer().map_or(Written::Float(x), |i| Written::Integer(i.into()));
            match (whole_size(written, "ensemble.size"), ov.ensemble) {
                (Err(QbatError::TooLarge { .. }), Some(_)) => None,
                (size, _) => Some(size?),
            }
        }
        None => None,
    };
    let size = match (ov.ensemble, written_size) {
        (Some(n), _) => whole_size(Written::Integer(n.into()), "--ensemble")?,
        (None, Some(n)) => n,
        (None, None) => whole_size(Written::Integer(n_grid as i128), "ensemble.size")?,
    };
    let size_field = if ov.ensemble.is_some() { "--ensemble" } else { "ensemble.size" };
    if !size.is_multiple_of(n_grid as u64) {
        return Err(invalid(size_field, format!("must be a multiple of the sweep grid size {n_grid} (each grid point gets size/{n_grid} members)")));
    }
    Ok(EnsembleSection { zip, seed, size, n_grid, size_field })
}

/// An ensemble size as written: an integer (shown exactly) or a float.
enum Written {
    Integer(i128),
    Float(f64),
}

/// An ensemble size (`field`: `ensemble.size` or `--ensemble`): an integer, or a float where it
/// is a whole number (`4.0`, `1e5`), from 1 to 1e9.
fn whole_size(written: Written, field: &str) -> Result<u64> {
    let (x, shown) = match written {
        Written::Integer(i) => (i as f64, i.to_string()),
        Written::Float(x) => (x, crate::error::shown(x)),
    };
    if x.fract() != 0.0 || x < 1.0 {
        return Err(invalid(field, format!("must be an integer >= 1, got {shown}")));
    }
    if x > 1e9 {
        return Err(QbatError::TooLarge { field: field.into(), reason: format!("{shown} members is more than 1e9") });
    }
    Ok(x as u64)
}

/// `--ensemble N` as typed, by `ensemble.size`'s rules: `100000`, `1e5` and `100000.0` are one
/// size (a physicist writes 1e5); a fraction, a negative, zero, or more than 1e9 is refused.
pub fn ensemble_arg(text: &str) -> Result<u64> {
    let t = text.trim();
    if let Ok(i) = t.parse::<i128>() {
        return whole_size(Written::Integer(i), "--ensemble");
    }
    match t.parse::<f64>() {
        Ok(x) if x.is_finite() => ensemble_float(x, "--ensemble"),
        Ok(_) => Err(invalid("--ensemble", format!("must be finite, got {t}"))),
        Err(_) => Err(invalid("--ensemble", format!("must be an integer >= 1 (or a whole float: 1e5), got {t:?}"))),
    }
}

/// An ensemble size given as a float (`--ensemble 1e5`, Python's `ensemble=1e5`), by
/// `ensemble.size`'s rules: a whole number from 1 to 1e9; the error names `field`.
pub fn ensemble_float(x: f64, field: &str) -> Result<u64> {
    if !x.is_finite() {
        return Err(invalid(field, format!("must be finite, got {}", crate::error::shown(x))));
    }
    whole_size(Written::Float(x), field)
}

/// Members [K M / N, (K + 1) M / N) of M: shard K of N (0-based).
pub fn shard_range(k: usize, n: usize, members: usize) -> std::ops::Range<usize> {
    let at = |k: usize| ((k as u128 * members as u128) / n.max(1) as u128) as usize;
    at(k)..at(k + 1)
}

/// The parameter points and members `range` of a run: one point per grid point, or one per
/// member when parameters are drawn. `base` is the validated base point.
pub fn expand_members(
    model: ModelKind,
    base: &Params,
    params: &ParamSection,
    init: &InitialSection,
    ens: &EnsembleSection,
    range: std::ops::Range<usize>,
) -> (Vec<Params>, Vec<Member>) {
    let angle_axes = init.angle_axes.iter().map(|(k, v)| (k.clone(), v.iter().map(|x| ParamValue::Real(*x)).collect()));
    let all_axes: Vec<(String, Vec<ParamValue>)> = params.axes.iter().cloned().chain(angle_axes).collect();
    let axis_lens: Vec<usize> = all_axes.iter().map(|(_, v)| v.len()).collect();
    let n_param_axes = params.axes.len();
    let per_member_points = !params.drawn.is_empty();
    let grid_point = |k: usize| -> (Params, Vec<f64>, Option<(f64, f64)>) {
        let idx = grid_index(&axis_lens, ens.zip, k);
        let mut p = base.clone();
        let mut vals = vec![];
        let mut ang = init.angle_fixed;
        for (a, (name, values)) in all_axes.iter().enumerate() {
            let v = &values[idx[a]];
            // A complex axis gives two summary values, re and im (ParamSection::columns).
            let x = match v {
                ParamValue::Complex(z) => {
                    vals.push(z.re);
                    z.im
                }
                ParamValue::Real(x) => *x,
                _ => unreachable!("sweep axes are real or complex"),
            };
            if a < n_param_axes {
                p.insert(name.clone(), v.clone());
                vals.push(x);
            } else if name == "theta" {
                ang.0 = x;
            } else {
                ang.1 = x;
            }
        }
        (p, vals, if model == ModelKind::BlochCharger { Some(ang) } else { None })
    };
    let mut points = vec![];
    if !per_member_points {
        for k in 0..ens.n_grid {
            points.push(grid_point(k).0);
        }
    }
    let mut members = Vec::with_capacity(range.len());
    for id in range.start as u64..range.end as u64 {
        let k = (id % ens.n_grid as u64) as usize;
        let (mut p, mut vals, mut ang) = grid_point(k);
        let point = if per_member_points {
            let mut rng = param_rng(ens.seed, id);
            for (name, lo, hi) in &params.drawn {
                let x = lo + (hi - lo) * rng.random::<f64>();
                p.insert(name.clone(), ParamValue::Real(x));
                vals.push(x);
            }
            points.push(p);
            points.len() - 1
        } else {
            k
        };
        if let InitialSpec::Random(kind) = init.spec {
            ang = if kind == RandomKind::Bloch { two_qubit_state(kind, &mut state_rng(ens.seed, id)).1 } else { None };
        } else if !matches!(init.spec, InitialSpec::Default) {
            ang = None;
        }
        members.push(Member { id, point, param_values: std::mem::take(&mut vals), theta_phi: ang });
    }
    (points, members)
}
