//! Backend selection and dispatch: which engine integrates which model.

use crate::config::Plan;
use crate::error::Result;
use crate::job::Peak;
use crate::run::{run_reference, Backend, Precision, RunOptions};

/// The engine chosen for a run.
pub enum Engine {
    Reference,
}

impl Engine {
    pub fn name(&self) -> &'static str {
        match self {
            Engine::Reference => "reference",
        }
    }
    pub fn device_name(&self) -> String {
        format!("CPU ({} threads)", rayon::current_num_threads())
    }
}

pub struct EngineOutput {
    pub values: Vec<f64>,
    pub peaks: Vec<Peak>,
    pub precision: Precision,
    pub ensemble: f64,
    pub host_measures: f64,
}

pub fn resolve_backend(opts: &RunOptions, _notes: &mut Vec<String>) -> Result<Engine> {
    match opts.backend {
        Backend::Auto | Backend::Gpu | Backend::Cpu | Backend::Reference => Ok(Engine::Reference),
    }
}

pub fn integrate(plan: &Plan, opts: &RunOptions, engine: &Engine) -> Result<EngineOutput> {
    match engine {
        Engine::Reference => {
            let (values, peaks) = run_reference(plan, opts.progress);
            Ok(EngineOutput { values, peaks, precision: Precision::F64, ensemble: 0.0, host_measures: 0.0 })
        }
    }
}

/// Is there a usable GPU adapter?
pub fn gpu_available() -> bool {
    false
}
