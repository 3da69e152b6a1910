//! GPU engines (wgpu + WGSL). One host module per kernel, named after its shader:
//! `rk4_two_qubit.rs` <-> `shaders/rk4_two_qubit.wgsl`, `rk4_cavity.rs` <->
//! `shaders/rk4_cavity.wgsl`, with the CPU twins in `crate::twin`; the layouts they share
//! with the kernels and the twins live in `crate::job`. Hosts never import the twins.

pub mod buffers;
pub mod context;
pub mod kernel_clock;
pub mod measures_two_qubit;
pub mod pinning;
mod pipeline_disk_cache;
pub use pipeline_disk_cache::check_cache_outside;
pub mod rk4_cavity;
pub mod rk4_dicke;
pub mod rk4_two_qubit;
pub mod runtime_dir;

pub use context::{GpuContext, GpuInfo, KernelPipeline};
pub use rk4_cavity::{plan_cavity, run_cavity_gpu, CavityGpuOptions, CavityGpuPlan, CavityResult};
pub use rk4_two_qubit::{plan_chunks, run_two_qubit_gpu, run_two_qubit_gpu_measured, run_two_qubit_gpu_with, GpuRunOptions};

use crate::error::{QbatError, Result};
pub use crate::job::Precision;

/// The kernels, by name, with their WGSL source (files in shaders/).
pub const SHADERS: &[(&str, &str)] = &[
    ("rk4_two_qubit", include_str!("../../shaders/rk4_two_qubit.wgsl")),
    ("rk4_cavity", include_str!("../../shaders/rk4_cavity.wgsl")),
    ("rk4_dicke", include_str!("../../shaders/rk4_dicke.wgsl")),
    ("measures_two_qubit", include_str!("../../shaders/measures_two_qubit.wgsl")),
];

/// WGSL libraries (files in shaders/ that hold functions, no entry point), by name.
pub const LIBRARIES: &[(&str, &str)] = &[("drive", include_str!("../../shaders/drive.wgsl"))];

/// The libraries each kernel takes, prepended in this order after the precision prelude (WGSL
/// has no imports). Kernels not listed take none.
pub const KERNEL_LIBRARIES: &[(&str, &[&str])] = &[("rk4_two_qubit", &["drive"]), ("rk4_cavity", &["drive"])];

/// The libraries of kernel `name`, as (name, source).
pub fn kernel_libraries(name: &str) -> Vec<(&'static str, &'static str)> {
    let names = KERNEL_LIBRARIES.iter().find(|(k, _)| *k == name).map(|(_, l)| *l).unwrap_or(&[]);
    names.iter().filter_map(|l| LIBRARIES.iter().find(|(n, _)| n == l).copied()).collect()
}

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

/// The full WGSL source of kernel `name` in `precision`: prelude, libraries, kernel.
pub fn shader_source(name: &str, precision: Precision) -> Result<String> {
    let (_, src) = SHADERS.iter().find(|(n, _)| *n == name).ok_or_else(|| QbatError::Device(format!("no kernel named '{name}'")))?;
    let mut text = String::new();
    for (_, lib) in kernel_libraries(name) {
        text.push_str(lib);
    }
    text.push_str(src);
    Ok(with_prelude(&text, precision))
}
