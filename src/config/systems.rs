//! The operators of every parameter point, each checked: a finite spectral bound, and RK4
//! stability of dt for the generator (and, with `[protocol]`, for the uncoupled one).

use super::values::invalid;
use super::RK4_STABILITY;
use crate::error::{shown, Result};
use crate::model::{resolve_params, ModelKind, OpenSystem, Params};
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Build and check the operators of `points`, the points in parallel; an error is the first
/// point's in order, as a loop over them would give. Points past the first failure found so
/// far are skipped (every point before it still runs), so a dt that every point refuses is
/// reported about as soon as a loop would. Each point shares the first point's jump operators
/// and coupling where its own are the same matrices (`OpenSystem::share_with`). With
/// `start_from_params` (no full-space `[initial]` state) each point's start from its
/// parameters is checked too (`ModelKind::check_start`).
pub fn build_systems(
    model: ModelKind,
    model_name: &str,
    points: &[Params],
    dt: f64,
    steady: bool,
    switch_off: Option<f64>,
    start_from_params: bool,
) -> Result<Vec<Arc<OpenSystem>>> {
    let Some(first) = points.first() else {
        return Ok(vec![]);
    };
    // the first point's jumps and coupling, shared by every point whose are the same
    let template = build_checked(model, first, dt, steady, switch_off, start_from_params).map(Arc::new)?;
    let first_failure = AtomicUsize::new(usize::MAX);
    let rest: Vec<Option<Result<Arc<OpenSystem>>>> = points[1..]
        .par_iter()
        .enumerate()
        .map(|(i, p)| {
            if i > first_failure.load(Ordering::Relaxed) {
                return None;
            }
            let sys = build_checked(model, p, dt, steady, switch_off, start_from_params).map(|mut s| {
                s.share_with(&template);
                Arc::new(s)
            });
            if sys.is_err() {
                first_failure.fetch_min(i, Ordering::Relaxed);
            }
            Some(sys)
        })
        .collect();
    let built = std::iter::once(Some(Ok(template))).chain(rest);
    // a skipped point lies past a failed one, whose error comes first
    let systems = built.map(|b| b.expect("skipped only past a failure")).collect::<Result<Vec<_>>>()?;
    if switch_off.is_some() && !systems.iter().any(|s| s.has_coupling()) {
        return Err(invalid(
            "protocol.switch_off",
            format!("model '{model_name}' has no charger-battery coupling to switch off at any parameter point (its coupling is {})", model.coupling_doc()),
        ));
    }
    Ok(systems)
}

fn build_checked(model: ModelKind, p: &Params, dt: f64, steady: bool, switch_off: Option<f64>, start_from_params: bool) -> Result<OpenSystem> {
    let p = resolve_params(model, p)?;
    let sys = model.build(&p)?;
    if start_from_params {
        model.check_start(&p)?;
    }
    if let Some(bound) = bound_to_check(&sys, dt, 0.0, steady) {
        if !bound.is_finite() {
            return Err(invalid("params", "the parameters are too large: the generator's spectral bound is not finite"));
        }
        if !steady && dt * bound > RK4_STABILITY {
            return Err(invalid(
                "time.dt",
                format!(
                    "dt = {} is beyond RK4 stability for this model: the generator's spectral radius is up to {bound:.4e}, so dt must be <= {:.4e}",
                    shown(dt),
                    RK4_STABILITY / bound
                ),
            ));
        }
    }
    if switch_off.is_some() {
        // After T the model runs without its coupling: that generator must be stable too.
        if let Some(off) = bound_to_check(&sys.uncoupled(), dt, 0.0, false) {
            if !off.is_finite() || dt * off > RK4_STABILITY {
                return Err(invalid(
                    "time.dt",
                    format!(
                        "dt = {} is beyond RK4 stability for this model after protocol.switch_off: the uncoupled generator's spectral radius is up to {off:.4e}",
                        shown(dt)
                    ),
                ));
            }
        }
    }
    Ok(sys)
}

/// `sys.generator_norm_bound()` for the stability checks to compare, or None where the
/// entries' bound (`generator_norm_entry_bound`, above it, found without an eigen-solve)
/// already passes them: finite, and (unless `steady`) dt * (bound + extra) <= RK4_STABILITY.
/// The checks then decide as they would with the eigen-solves, which only a point near the
/// limit (or with huge entries) pays for: an 84x84 cavity point's took about 5 ms.
pub(super) fn bound_to_check(sys: &OpenSystem, dt: f64, extra: f64, steady: bool) -> Option<f64> {
    (!entry_bound_passes(sys, dt, extra, steady)).then(|| sys.generator_norm_bound())
}

/// Whether the entries' bound (`generator_norm_entry_bound`) alone passes the stability check:
/// finite, and (unless `steady`) dt * (bound + extra) <= RK4_STABILITY.
pub(super) fn entry_bound_passes(sys: &OpenSystem, dt: f64, extra: f64, steady: bool) -> bool {
    let entry = sys.generator_norm_entry_bound();
    entry.is_finite() && (steady || dt * (entry + extra) <= RK4_STABILITY)
}
