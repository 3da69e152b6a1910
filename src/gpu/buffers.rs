//! Buffer helpers shared by the kernels' host modules: padding, packing reals in the working
//! precision, reading them back, and the bind-group layout every kernel uses (binding 0 a
//! uniform at dynamic offsets, 1-3 read-only storage, 4-6 read-write storage).

use super::Precision;
use crate::job::columns::{fill_rows, ColumnSource};
use std::num::NonZeroU64;

/// Round up to a whole number of vec4s.
pub fn pad4(n: u64) -> u64 {
    n.div_ceil(4) * 4
}

/// Buffer size: a multiple of 32 bytes (one vec4<f64>), at least 32.
pub fn pad32(bytes: u64) -> u64 {
    bytes.div_ceil(32).max(1) * 32
}

/// Reals -> bytes in the working precision, padded to a multiple of 32.
pub fn real_bytes(v: &[f64], precision: Precision) -> Vec<u8> {
    let mut out: Vec<u8> = match precision {
        Precision::F32 => v.iter().flat_map(|x| (*x as f32).to_ne_bytes()).collect(),
        Precision::F64 => v.iter().flat_map(|x| x.to_ne_bytes()).collect(),
    };
    out.resize(pad32(out.len() as u64) as usize, 0);
    out
}

/// u32s -> bytes, padded to a multiple of 32.
pub fn u32_bytes(v: &[u32]) -> Vec<u8> {
    let mut out: Vec<u8> = bytemuck::cast_slice(v).to_vec();
    out.resize(pad32(out.len() as u64) as usize, 0);
    out
}

/// The first n reals of a mapped buffer, as f64.
pub fn read_reals(bytes: &[u8], n: usize, precision: Precision) -> Vec<f64> {
    let mut out = vec![0.0; n.min(bytes.len() / precision.bytes() as usize)];
    reals_into(&mut out, bytes, precision);
    out
}

/// `out.len()` reals of `precision` from `bytes` into `out`, in parallel pieces.
pub fn fill_reals(out: &mut [f64], bytes: &[u8], precision: Precision) {
    use rayon::prelude::*;
    const PIECE: usize = 1 << 14;
    let (rs, n) = (precision.bytes() as usize, out.len());
    out.par_chunks_mut(PIECE).zip(bytes[..n * rs].par_chunks(PIECE * rs)).for_each(|(o, b)| reals_into(o, b, precision));
}

/// `out` := the reals of `precision` at the start of `bytes`, as f64.
fn reals_into(out: &mut [f64], bytes: &[u8], precision: Precision) {
    match precision {
        Precision::F32 => out.iter_mut().zip(bytes.chunks_exact(4)).for_each(|(v, c)| *v = f32::from_ne_bytes(c.try_into().expect("4 bytes")) as f64),
        Precision::F64 => out.iter_mut().zip(bytes.chunks_exact(8)).for_each(|(v, c)| *v = f64::from_ne_bytes(c.try_into().expect("8 bytes"))),
    }
}

/// `job::columns::fill_rows` of `out` (the rows of the chunk's members, `samples` each)
/// straight from mapped read-back bytes (reals in `precision`), both member-minor as the
/// kernels write them: the integrator's `n_cols` reals of (sample, column) at
/// (sample * n_cols + column) * members + member in `integrator`, the eigen-solve measures'
/// `n_eigen` likewise in `eigen` (None: those columns NaN). One parallel pass from the
/// device's memory to the rows kept, with no intermediate copy.
pub fn fill_rows_from_bytes(
    out: &mut [f64],
    columns: &[ColumnSource],
    samples: usize,
    (integrator, n_cols): (&[u8], usize),
    (eigen, n_eigen): (Option<&[u8]>, usize),
    precision: Precision,
) {
    match precision {
        Precision::F32 => fill_rows_as(out, columns, samples, (integrator, n_cols), (eigen, n_eigen), |b: [u8; 4]| f32::from_ne_bytes(b) as f64),
        Precision::F64 => fill_rows_as(out, columns, samples, (integrator, n_cols), (eigen, n_eigen), f64::from_ne_bytes),
    }
}

fn fill_rows_as<const N: usize>(
    out: &mut [f64],
    columns: &[ColumnSource],
    samples: usize,
    (integrator, n_cols): (&[u8], usize),
    (eigen, n_eigen): (Option<&[u8]>, usize),
    real: impl Fn([u8; N]) -> f64 + Sync,
) {
    let members = out.len().checked_div(columns.len() * samples).unwrap_or(0);
    let at = |bytes: &[u8], i: usize| real(bytes[N * i..N * (i + 1)].try_into().expect("N bytes"));
    fill_rows(
        out,
        columns,
        samples,
        |i, s, c| at(integrator, (s * n_cols + c) * members + i),
        |i, s, c| eigen.map_or(f64::NAN, |e| at(e, (s * n_eigen + c) * members + i)),
    );
}

/// The kernels' bind-group layout; `params_size` is the size of the uniform Params struct.
pub fn layout_entries(params_size: u64) -> Vec<wgpu::BindGroupLayoutEntry> {
    let storage = |binding: u32, read_only: bool| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Storage { read_only }, has_dynamic_offset: false, min_binding_size: None },
        count: None,
    };
    vec![
        wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Uniform, has_dynamic_offset: true, min_binding_size: NonZeroU64::new(params_size) },
            count: None,
        },
        storage(1, true),
        storage(2, true),
        storage(3, true),
        storage(4, false),
        storage(5, false),
        storage(6, false),
    ]
}

/// One uniform struct per dispatch, packed at the adapter's dynamic-offset alignment into one
/// buffer; returns the buffer and the stride between dispatches.
pub fn dispatch_uniforms<P: bytemuck::Pod>(device: &wgpu::Device, align: u64, params: &[P]) -> (wgpu::Buffer, u64) {
    use wgpu::util::DeviceExt;
    let size = std::mem::size_of::<P>();
    let stride = (size as u64).div_ceil(align.max(1)) * align.max(1);
    let mut bytes = vec![0u8; (stride * params.len().max(1) as u64) as usize];
    for (i, p) in params.iter().enumerate() {
        let at = i * stride as usize;
        bytes[at..at + size].copy_from_slice(bytemuck::bytes_of(p));
    }
    let buffer = device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some("params"), contents: &bytes, usage: wgpu::BufferUsages::UNIFORM });
    (buffer, stride)
}

/// The bind group of `layout_entries`: the per-dispatch uniform (`params_size` bytes at dynamic
/// offsets) and six storage buffers at bindings 1-6.
pub fn kernel_bind_group(
    device: &wgpu::Device,
    layout: &wgpu::BindGroupLayout,
    label: &str,
    uniforms: &wgpu::Buffer,
    params_size: u64,
    storage: [&wgpu::Buffer; 6],
) -> wgpu::BindGroup {
    let mut entries = vec![wgpu::BindGroupEntry {
        binding: 0,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer: uniforms, offset: 0, size: NonZeroU64::new(params_size) }),
    }];
    for (k, b) in storage.iter().enumerate() {
        entries.push(wgpu::BindGroupEntry { binding: k as u32 + 1, resource: b.as_entire_binding() });
    }
    device.create_bind_group(&wgpu::BindGroupDescriptor { label: Some(label), layout, entries: &entries })
}

/// Record `n` dispatches of `workgroups` workgroups each, dispatch i reading its uniform at
/// dynamic offset i * `ustride`, `per_submit` to a command buffer, and submit them in order
/// (timed by `kernel_clock` when it is on).
#[allow(clippy::too_many_arguments)]
pub fn submit_dispatches(
    ctx: &super::GpuContext,
    kernel: &super::KernelPipeline,
    bind_group: &wgpu::BindGroup,
    n: usize,
    ustride: u64,
    workgroups: u32,
    per_submit: usize,
    label: &str,
) -> crate::error::Result<()> {
    super::kernel_clock::timed(ctx, || {
        for group in (0..n).collect::<Vec<_>>().chunks(per_submit) {
            let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(label), timestamp_writes: None });
                pass.set_pipeline(&kernel.pipeline);
                for &i in group {
                    pass.set_bind_group(0, bind_group, &[(i as u64 * ustride) as u32]);
                    pass.dispatch_workgroups(workgroups, 1, 1);
                }
            }
            ctx.queue.submit(Some(enc.finish()));
        }
    })
}

/// A read-back buffer, mapped for reading by `read_back`: its first `len` bytes (the
/// source's; a kept buffer can be longer, and past them holds an earlier read-back's bytes).
/// Unmapped when done with (or when dropped), and then, if its mapping had completed, handed
/// back to its context for the next read-back (`GpuContext::staging_buffer`).
pub struct Staging<'a> {
    buffer: Option<wgpu::Buffer>,
    len: u64,
    label: String,
    ctx: &'a super::GpuContext,
    /// Mapped by `read_back` and not unmapped since (wgpu has no query for it, and unmapping an
    /// unmapped buffer is a device error).
    mapped: std::cell::Cell<bool>,
    /// Its mapping completed: a buffer whose mapping failed or never ran is not kept.
    usable: bool,
}

/// The mapped bytes of a `Staging` buffer, which they cannot outlive.
pub struct StagingView<'s> {
    view: wgpu::BufferView,
    _staging: std::marker::PhantomData<&'s ()>,
}

/// (A drop of its own keeps the `Staging` borrowed until the view is dropped, not only until
/// its last use: an unmap with a view alive would be a wgpu panic.)
impl Drop for StagingView<'_> {
    fn drop(&mut self) {}
}

impl std::ops::Deref for StagingView<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.view
    }
}

impl Staging<'_> {
    fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("a staging buffer is held until dropped")
    }

    /// The read-back's bytes (the source's `len`, none of a kept buffer's tail).
    pub fn view(&self) -> crate::error::Result<StagingView<'_>> {
        let view =
            self.buffer().slice(..self.len).get_mapped_range().map_err(|e| crate::error::QbatError::Device(format!("mapping the {}: {e}", self.label)))?;
        Ok(StagingView { view, _staging: std::marker::PhantomData })
    }

    /// Unmap it (once; its views are dropped by then, as they borrow it).
    pub fn unmap(&mut self) {
        if self.mapped.replace(false) {
            self.buffer().unmap();
        }
    }
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        self.unmap();
        if let Some(buffer) = self.buffer.take().filter(|_| self.usable) {
            self.ctx.keep_staging_buffer(buffer);
        }
    }
}

/// Copy `sources` (label, buffer) into mappable buffers (kept from earlier read-backs where
/// they fit) after the work already submitted, wait for the device, and return them mapped for
/// reading, in order. Device errors raised meanwhile, and failed mappings, are errors naming
/// the buffer.
pub fn read_back<'a>(ctx: &'a super::GpuContext, sources: &[(&str, &wgpu::Buffer)]) -> crate::error::Result<Vec<Staging<'a>>> {
    use crate::error::QbatError;
    let device = &ctx.device;
    let mut staging: Vec<Staging<'a>> = sources
        .iter()
        .map(|(label, b)| Staging {
            buffer: Some(ctx.staging_buffer(b.size())),
            len: b.size(),
            label: label.to_string(),
            ctx,
            mapped: false.into(),
            usable: false,
        })
        .collect();
    let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("readback") });
    for ((_, src), dst) in sources.iter().zip(&staging) {
        enc.copy_buffer_to_buffer(src, 0, dst.buffer(), 0, src.size());
    }
    ctx.queue.submit(Some(enc.finish()));
    let (tx, rx) = std::sync::mpsc::channel();
    for (k, s) in staging.iter().enumerate() {
        let tx = tx.clone();
        s.buffer().slice(..s.len).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send((k, r));
        });
    }
    drop(tx);
    ctx.wait()?;
    ctx.take_uncaptured_error()?;
    for _ in 0..staging.len() {
        let (k, r) = rx.recv().map_err(|_| QbatError::Device("a readback never completed".into()))?;
        r.map_err(|e| QbatError::Device(format!("reading back the {}: {e}", sources[k].0)))?;
        staging[k].mapped.set(true);
        staging[k].usable = true;
    }
    Ok(staging)
}

/// The step count both kernels keep per member: the pieces it completed over all dispatches,
/// and the dispatches (two-qubit) or invocations (cavity) that completed fewer steps or pieces
/// than they held. Anything short is an error, never silent output.
pub fn check_completed(kernel: &str, member: usize, pieces_done: usize, pieces: usize, short: u32) -> crate::error::Result<()> {
    if pieces_done != pieces || short != 0 {
        return Err(crate::error::QbatError::Device(format!(
            "the {kernel} kernel stopped early on this adapter: member {member} completed {pieces_done} of {pieces} pieces ({short} fell short of their steps); no results were kept"
        )));
    }
    Ok(())
}

/// How many times a software adapter's per-invocation budget a GPU gets.
pub const GPU_LOOP_FACTOR: u64 = 32;

/// The serial work (loop iterations, or steps) one invocation may run in a dispatch on an
/// adapter. A CPU-type (software) adapter gets `software_budget`: llvmpipe (lavapipe) ends
/// every loop of an invocation after 65,535 iterations, silently. A GPU has no such cap, but
/// one invocation runs its loop serially, so a small chunk's dispatch would otherwise be all
/// serial work: it gets GPU_LOOP_FACTOR times as much (a few hundred thousand iterations,
/// about a tenth of a second at a GPU's clock), besides the dispatch's work budget
/// (member-steps or element-steps). The kernels' completed-steps count makes any driver's cut
/// an error.
pub fn loop_budget(software: bool, software_budget: u64) -> u64 {
    if software {
        software_budget
    } else {
        software_budget.saturating_mul(GPU_LOOP_FACTOR)
    }
}

/// RK4 steps of a piece: its full steps and the shortened one, if any.
pub fn piece_steps(p: &crate::job::Piece) -> u64 {
    p.n_full as u64 + u64::from(p.h_last > 0.0)
}

/// Group a schedule's pieces into dispatches, greedily and in order: a dispatch takes pieces
/// while both running costs (`cost` of each piece, plus `first` on the very first dispatch) stay
/// within `budgets`, holds at least one piece, and never spans the switch-off (the coupling is
/// chosen per dispatch). Returns [begin, end) pairs of piece indices.
pub fn group_pieces(pieces: &[crate::job::Piece], cost: impl Fn(&crate::job::Piece) -> (u64, u64), budgets: (u64, u64), first: (u64, u64)) -> Vec<(u32, u32)> {
    let mut out = vec![];
    let mut begin = 0usize;
    let (mut a, mut b) = first;
    for (i, p) in pieces.iter().enumerate() {
        let (ca, cb) = cost(p);
        if i > begin && (a + ca > budgets.0 || b + cb > budgets.1 || p.uncoupled != pieces[begin].uncoupled) {
            out.push((begin as u32, i as u32));
            begin = i;
            a = 0;
            b = 0;
        }
        a += ca;
        b += cb;
    }
    if begin < pieces.len() {
        out.push((begin as u32, pieces.len() as u32));
    }
    out
}

/// Read back a chunk's samples and its `m` members' status words (pieces done, dispatches
/// that fell short), and check that every member completed all `pieces`. The mapped sample
/// bytes go to `take`, the host's one pass from them into where they are kept (no copy into a
/// vector first). `members`: the chunk's first member and its count. Shared by the hosts
/// whose kernels write one status pair per member (cavity, dicke).
pub fn read_samples_checked<T>(
    ctx: &super::GpuContext,
    out: &wgpu::Buffer,
    status: &wgpu::Buffer,
    kernel: &str,
    (first_member, m): (usize, usize),
    pieces: usize,
    take: impl FnOnce(&[u8]) -> T,
) -> crate::error::Result<T> {
    let mut staging = read_back(ctx, &[("samples", out), ("status", status)])?;
    let view = staging[0].view()?;
    let values = take(&view);
    drop(view);
    staging[0].unmap();
    let view = staging[1].view()?;
    let st: Vec<u32> = view.chunks_exact(4).take(2 * m).map(|c| u32::from_ne_bytes(c.try_into().expect("4 bytes"))).collect();
    drop(view);
    staging[1].unmap();
    for k in 0..m {
        check_completed(kernel, first_member + k, st[2 * k] as usize, pieces, st[2 * k + 1])?;
    }
    Ok(values)
}
