//! GPU engines (wgpu + WGSL). One host module per kernel, named after its shader:
//! `rk4_two_qubit.rs` <-> `shaders/rk4_two_qubit.wgsl`, `rk4_cavity.rs` <->
//! `shaders/rk4_cavity.wgsl`, with the CPU twins in `crate::twin`; the layouts they share
//! with the kernels and the twins live in `crate::job`. Hosts never import the twins.

pub mod buffers;
pub mod context;
pub mod measures_two_qubit;
pub mod pinning;
pub mod rk4_cavity;
pub mod rk4_dicke;
pub mod rk4_two_qubit;
pub mod runtime_dir;

pub use context::{GpuContext, GpuInfo, KernelPipeline};
pub use rk4_cavity::{plan_cavity, run_cavity_gpu, CavityGpuOptions, CavityGpuPlan, CavityResult};
pub use rk4_two_qubit::{plan_chunks, run_two_qubit_gpu, run_two_qubit_gpu_measured, run_two_qubit_gpu_with, GpuRunOptions};

pub use crate::job::Precision;
use crate::error::{QbatError, Result};

/// The kernels, by name, with their WGSL source (files in shaders/).
pub const SHADERS: &[(&str, &str)] = &[
    ("rk4_two_qubit", include_str!("../../shaders/rk4_two_qubit.wgsl")),
    ("rk4_cavity", include_str!("../../shaders/rk4_cavity.wgsl")),
    ("rk4_dicke", include_str!("../../shaders/rk4_dicke.wgsl")),
    ("measures_two_qubit", include_str!("../../shaders/measures_two_qubit.wgsl")),
];

/// The prelude that fixes the working precision: the kernels are written once over `real`.
pub fn prelude(precision: Precision) -> &'static str {
    match precision {
        Precision::F32 => "alias real = f32;\n",
        Precision::F64 => "alias real = f64;\n",
    }
}

/// Prelude + a kernel's text (what the runtime compiles and the naga test validates).
pub fn with_prelude(source: &str, precision: Precision) -> String {
    let mut s = String::with_capacity(source.len() + 32);
    s.push_str(prelude(precision));
    s.push_str(source);
    s
}

/// The full WGSL source of kernel `name` in `precision`.
pub fn shader_source(name: &str, precision: Precision) -> Result<String> {
    SHADERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, src)| with_prelude(src, precision))
        .ok_or_else(|| QbatError::Device(format!("no kernel named '{name}'")))
}
