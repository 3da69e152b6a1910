//! The `dicke` model on the engines (docs/physics.md "dicke").

use super::{reference::run_reference, Engine, EngineOutput, RunOptions};
use crate::config::Plan;
use crate::error::Result;
use crate::job::Precision;
use std::time::Instant;

/// Run a dicke plan: the f64 reference for every backend for now.
pub fn run_dicke(plan: &Plan, opts: &RunOptions, engine: &Engine) -> Result<EngineOutput> {
    let t0 = Instant::now();
    let (values, peaks) = run_reference(plan, opts.progress);
    let mut out = EngineOutput::new(plan, values, peaks, Precision::F64, t0.elapsed().as_secs_f64(), 0.0);
    if !matches!(engine, Engine::Reference) {
        out.notes.push("dicke runs on the f64 reference engine".into());
    }
    Ok(out)
}
