//! Host side of `shaders/measures_two_qubit.wgsl`: the eigen-solve measures of the sample
//! states that `rk4_two_qubit` left on the device, recorded after the integrator's dispatches
//! in the same queue (so in order after them), with only the measure rows read back.
//!
//! Buffers (bindings of `buffers::layout_entries`): 0 `MeasureParams`; 1 `consts`, per
//! chunk-local point 2 vec4 (`job::measures_two_qubit::eigen_point`); 2 the integrator's
//! `lookup` (member -> chunk-local point); 3 the integrator's `states`; 4 `out`, n_cols reals
//! per (member, sample); 5 and 6 unused (32-byte placeholders).

use super::buffers::{dispatch_uniforms, kernel_bind_group, layout_entries, pad32, real_bytes};
use super::context::GpuContext;
use super::Precision;
use crate::error::{QbatError, Result};
use crate::job::measures_two_qubit::{eigen_code, eigen_flags, eigen_point, EigenJob, MeasureParams, EIGEN_WORKGROUP_SIZE, MAX_EIGEN_COLS};
use crate::job::TwoQubitPoint;
use wgpu::util::DeviceExt;

/// The kernel's name (its file in shaders/).
pub const KERNEL: &str = "measures_two_qubit";

/// Bytes per member of the kernel's output.
pub fn out_bytes_per_member(eigen: &EigenJob, n_samples: usize, precision: Precision) -> u64 {
    (n_samples * eigen.measures.len()) as u64 * precision.bytes()
}

/// Check what the kernel can take before anything is recorded.
pub fn validate(eigen: &EigenJob, n_points: usize) -> Result<()> {
    if eigen.measures.len() > MAX_EIGEN_COLS {
        return Err(QbatError::invalid("output.measures", format!("at most {MAX_EIGEN_COLS} eigen-solve measures per GPU run, got {}", eigen.measures.len())));
    }
    if let Some(m) = eigen.measures.iter().find(|m| eigen_code(**m).is_none()) {
        return Err(QbatError::invalid("output.measures", format!("{} is not an eigen-solve measure", m.name())));
    }
    if eigen.h_total_eigs.len() != n_points {
        return Err(QbatError::invalid("ensemble", format!("{} points but {} Hamiltonian spectra", n_points, eigen.h_total_eigs.len())));
    }
    Ok(())
}

/// Record and submit the measures of `n_members` x `n_samples` sample states. `eigen` and
/// `points` are those of the chunk's points in chunk-local order (the order of `lookup`).
/// Returns the output buffer (STORAGE | COPY_SRC), ready to be read back after the queue.
#[allow(clippy::too_many_arguments)]
pub fn record_measures(
    ctx: &GpuContext,
    precision: Precision,
    eigen: &EigenJob,
    points: &[&TwoQubitPoint],
    lookup: &wgpu::Buffer,
    states: &wgpu::Buffer,
    n_members: usize,
    n_samples: usize,
) -> Result<wgpu::Buffer> {
    let device = &ctx.device;
    let n_cols = eigen.measures.len();
    let pipeline = ctx.pipeline(KERNEL, precision, &layout_entries(std::mem::size_of::<MeasureParams>() as u64))?;
    let consts: Vec<f64> = points.iter().zip(&eigen.h_total_eigs).flat_map(|(p, e)| eigen_point(p, e)).collect();
    let consts_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("eigen consts"),
        contents: &real_bytes(&consts, precision),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let out = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("eigen values"),
        size: pad32((n_members * n_samples * n_cols) as u64 * precision.bytes()),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let placeholder = |label: &str| {
        device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size: 32, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false })
    };
    let (unused5, unused6) = (placeholder("unused"), placeholder("unused"));
    // One invocation per (member, sample), in a 2D grid when one dimension is not enough.
    let invocations = (n_members * n_samples) as u64;
    let groups = invocations.div_ceil(EIGEN_WORKGROUP_SIZE as u64).max(1);
    let max_dim = ctx.info.limits.max_compute_workgroups_per_dimension.max(1) as u64;
    let gx = groups.min(max_dim);
    let gy = groups.div_ceil(gx);
    if gy > max_dim {
        return Err(QbatError::TooLarge { field: "ensemble".into(), reason: format!("{invocations} sample states exceed the adapter's dispatch grid") });
    }
    let mut cols = [[0u32; 4]; 2];
    for (k, m) in eigen.measures.iter().enumerate() {
        cols[k / 4][k % 4] = eigen_code(*m).unwrap_or(0);
    }
    let params = MeasureParams {
        n_members: n_members as u32,
        n_samples: n_samples as u32,
        n_cols: n_cols as u32,
        flags: eigen_flags(&eigen.measures),
        groups_x: gx as u32,
        _pad: [0; 3],
        cols,
    };
    let (params_buf, _) = dispatch_uniforms(device, ctx.info.limits.min_uniform_buffer_offset_alignment as u64, &[params]);
    let bind_group = kernel_bind_group(
        device,
        &pipeline.layout,
        KERNEL,
        &params_buf,
        std::mem::size_of::<MeasureParams>() as u64,
        [&consts_buf, lookup, states, &out, &unused5, &unused6],
    );
    let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(KERNEL) });
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(KERNEL), timestamp_writes: None });
        pass.set_pipeline(&pipeline.pipeline);
        pass.set_bind_group(0, &bind_group, &[0]);
        pass.dispatch_workgroups(gx as u32, gy as u32, 1);
    }
    super::kernel_clock::timed(ctx, || {
        ctx.queue.submit(Some(enc.finish()));
    })?;
    Ok(out)
}
