//! The operators of every parameter point, each checked: a finite spectral bound, and RK4
//! stability of dt for the generator (and, with `[protocol]`, for the uncoupled one).

use super::values::invalid;
use super::RK4_STABILITY;
use crate::error::Result;
use crate::model::{resolve_params, ModelKind, OpenSystem, Params};
use std::sync::Arc;

/// Build and check the operators of `points`.
pub fn build_systems(model: ModelKind, model_name: &str, points: &[Params], dt: f64, steady: bool, switch_off: Option<f64>) -> Result<Vec<Arc<OpenSystem>>> {
    let mut systems = Vec::with_capacity(points.len());
    for p in points {
        let p = resolve_params(model, p)?;
        let sys = model.build(&p)?;
        let bound = sys.generator_norm_bound();
        if !bound.is_finite() {
            return Err(invalid("params", "the parameters are too large: the generator's spectral bound is not finite"));
        }
        if !steady && dt * bound > RK4_STABILITY {
            return Err(invalid(
                "time.dt",
                format!(
                    "dt = {dt} is beyond RK4 stability for this model: the generator's spectral radius is up to {bound:.4e}, so dt must be <= {:.4e}",
                    RK4_STABILITY / bound
                ),
            ));
        }
        if switch_off.is_some() {
            // After T the model runs without its coupling: that generator must be stable too.
            let off = sys.uncoupled().generator_norm_bound();
            if !off.is_finite() || dt * off > RK4_STABILITY {
                return Err(invalid(
                    "time.dt",
                    format!("dt = {dt} is beyond RK4 stability for this model after protocol.switch_off: the uncoupled generator's spectral radius is up to {off:.4e}"),
                ));
            }
        }
        systems.push(Arc::new(sys));
    }
    if switch_off.is_some() && !systems.iter().any(|s| s.has_coupling()) {
        return Err(invalid(
            "protocol.switch_off",
            format!("model '{model_name}' has no charger-battery coupling to switch off at any parameter point (its coupling is {})", model.coupling_doc()),
        ));
    }
    Ok(systems)
}
