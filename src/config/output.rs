//! `[output]`: the measures (the model's defaults, or a checked list) and the Fock-tail
//! threshold of cavity runs.

use super::values::{as_array, as_f64, check_keys, invalid};
use crate::error::Result;
use crate::measures::Measure;
use crate::model::ModelKind;
use toml::Table;

/// The output section of a config.
pub struct OutputSection {
    pub measures: Vec<Measure>,
    pub fock_tail_threshold: f64,
}

/// Read `[output]` for a model, integrated or `steady`.
pub fn parse_output(out_t: &Table, model: ModelKind, steady: bool) -> Result<OutputSection> {
    let (model_name, cavity) = (model.name(), matches!(model, ModelKind::CavityCells | ModelKind::Dicke));
    check_keys(out_t, &["measures", "fock_tail_threshold"], "output")?;
    let fock_tail_threshold = match out_t.get("fock_tail_threshold") {
        Some(v) => {
            // (a model without a cavity has no Fock tail to warn of: the key would do nothing)
            if !cavity {
                return Err(invalid("output.fock_tail_threshold", format!("applies to models with a cavity (cavity-cells, dicke), not '{model_name}'")));
            }
            let x = as_f64(v, "output.fock_tail_threshold")?;
            if !(x > 0.0 && x < 1.0) {
                return Err(invalid("output.fock_tail_threshold", format!("must lie in (0, 1), got {}", crate::error::shown(x))));
            }
            x
        }
        None => 1e-6,
    };
    let mut measures = match out_t.get("measures") {
        None => {
            let mut ms = crate::measures::default_measures(model);
            if steady {
                ms.push(Measure::SteadyResidual);
            }
            ms
        }
        Some(v) => {
            let arr = as_array(v, "output.measures")?;
            if arr.is_empty() {
                return Err(invalid("output.measures", "must name at least one measure"));
            }
            let mut ms = vec![];
            for x in arr {
                let name = x.as_str().ok_or_else(|| invalid("output.measures", "entries must be strings"))?;
                let m = Measure::from_name(name)?;
                if !m.applies_to(model) {
                    return Err(invalid("output.measures", format!("'{name}' does not apply to model '{model_name}'")));
                }
                if m.steady_only() && !steady {
                    return Err(invalid("output.measures", format!("'{name}' applies to steady-state runs only ([time] steady = true)")));
                }
                if ms.contains(&m) {
                    return Err(invalid("output.measures", format!("'{name}' is listed twice")));
                }
                ms.push(m);
            }
            ms
        }
    };
    // docs/physics.md: every cavity run reports fock_tail, the truncation diagnostic.
    if cavity && !measures.contains(&Measure::FockTail) {
        measures.push(Measure::FockTail);
    }
    Ok(OutputSection { measures, fock_tail_threshold })
}
