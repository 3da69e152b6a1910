//! Host side of `shaders/rk4_dicke.wgsl`: packs a [`DickeJob`] into buffers, chunks the
//! members to fit the device, records the dispatches and reads the samples back.
//!
//! Design: one workgroup of WORKGROUP_SIZE invocations per member; each invocation owns a
//! strided set of the element table (all r <= c pairs, or the same-parity ones for a
//! parity-definite ensemble: a quarter of dim^2) and applies the generator to them in gather
//! form (the CPU twin's `element_with`, `crate::twin::rk4_dicke`), one `storageBarrier()` per
//! RK4 stage. X and the three RK4 scratch matrices (S_A, S_B, acc) are packed upper
//! triangles. Per sample the kernel writes the reduced cell state ((N + 1)^2 complex) and four
//! sums (trace, photon number, Fock tail, purity); the host computes every other measure from
//! them. Full states never come back: min_eigenvalue is not available on this engine.
//!
//! Cost per member and RK4 step (dicke-1k: N = 8, n_fock = 24, dim 225, 12,769 same-parity
//! elements, 4 stages): about 70 flops per element and stage (10 gathers, 8 coupling
//! products, the diagonal, two jumps, the stage update), 3.6 MFLOP per member-step; memory,
//! each matrix gathered once per stage (the neighbour rows hit the cache) plus the element's
//! acc, X and stage output: about 40 bytes per element and stage in f32, 2 MB per
//! member-step. About 1.8 flop/byte: memory-bound on any GPU (H200, 4.8 TB/s: a floor of
//! about 2.4e6 member-steps/s in f32).
//!
//! Buffers (see the shader's layout comment): `consts` (weights, step constants), `lookup`
//! (element table, row table, pieces), `mparams` (per member K's diagonal and 4 coefficients),
//! `work` (per member 4 packed matrices), `out` (per member and sample `out_stride` reals),
//! `status` (2 u32 per member).
//!
//! Chunking, dispatch sizing by llvmpipe's loop limit, and the completion check are those of
//! the cavity kernel (`gpu::rk4_cavity`, whose constants this host shares).

use super::buffers::{
    dispatch_uniforms, fill_reals, group_pieces, kernel_bind_group, layout_entries, loop_budget, pad32, pad4, piece_steps, read_samples_checked, real_bytes,
    submit_dispatches, u32_bytes,
};
use super::context::GpuContext;
use super::rk4_cavity::{
    CavityGpuOptions, DEFAULT_CHUNK_BYTES, DISPATCHES_PER_SUBMIT, ELEMENT_STEPS_PER_DISPATCH, LOOP_ITERATIONS_PER_DISPATCH, LOOP_ITERATION_CAP,
    MAX_BUFFER_BYTES, STEPS_PER_PIECE,
};
use super::Precision;
use crate::error::{QbatError, Result};
use crate::job::dicke::{element_table, out_stride, param_tail, row_tables, DickeJob, Params, F_UNCOUPLED, PARAM_TAIL, ROW_REALS, ROW_U32, WORKGROUP_SIZE};
use crate::job::{plan_pieces, Piece, NO_SAMPLE};
use serde::Serialize;
use std::ops::Range;
use wgpu::util::DeviceExt;

/// The kernel's name (its file in shaders/).
pub const KERNEL: &str = "rk4_dicke";

/// The sizes the kernel works with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DickeLayout {
    pub n_cells: usize,
    pub n_fock: usize,
    pub dim: usize,
    /// Entries of the element table (the stepped pairs).
    pub n_list: usize,
    /// Packed upper-triangle entries per matrix.
    pub n_packed: usize,
    pub parity_only: bool,
    /// vec2 per member in `work` and `mparams`; reals per sample in `out`.
    pub member_stride: usize,
    pub param_stride: usize,
    pub out_stride: usize,
}

impl DickeLayout {
    pub fn new(n_cells: usize, n_fock: usize, parity_only: bool) -> DickeLayout {
        let dim = (n_cells + 1) * (n_fock + 1);
        let n_packed = dim * (dim + 1) / 2;
        DickeLayout {
            n_cells,
            n_fock,
            dim,
            n_list: element_table(n_cells, n_fock, parity_only).len(),
            n_packed,
            parity_only,
            member_stride: 4 * n_packed,
            param_stride: dim + PARAM_TAIL,
            out_stride: out_stride(n_cells),
        }
    }

    /// Loop iterations of one invocation: (one RK4 step, one sample). A SIMD lane group runs
    /// every branch any lane takes, so the sample's three serial sums are all counted.
    pub fn loop_costs(&self) -> (u64, u64) {
        let per = self.n_list.div_ceil(WORKGROUP_SIZE as usize) as u64 + 1;
        let q = ((self.n_cells + 1) * (self.n_cells + 1) + 3).div_ceil(WORKGROUP_SIZE as usize) as u64;
        (4 * per + 1, per + q * (self.dim as u64 + self.n_fock as u64 + 2) + WORKGROUP_SIZE as u64 + 1)
    }
}

/// How a job runs on a device. Goes into run.json.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DickeGpuPlan {
    pub kernel: &'static str,
    pub precision: Precision,
    pub workgroup_size: u32,
    pub layout: DickeLayout,
    pub members: usize,
    pub samples: usize,
    pub steps_per_member: u64,
    /// Device bytes per member (work, params, out and its readback copy).
    pub bytes_per_member: u64,
    pub shared_bytes: u64,
    pub buffer_cap_bytes: u64,
    pub chunk_budget_bytes: u64,
    pub max_members_per_chunk: usize,
    pub bound_by: String,
    pub chunks: usize,
    pub loop_budget: u64,
    pub pieces: usize,
}

impl DickeGpuPlan {
    /// `chunks` consecutive ranges whose sizes differ by at most one.
    pub fn chunk_ranges(&self) -> Vec<Range<usize>> {
        let (n, k) = (self.members, self.chunks.max(1));
        let (base, extra) = (n / k, n % k);
        let mut start = 0;
        (0..k)
            .map(|i| {
                let len = base + usize::from(i < extra);
                start += len;
                start - len..start
            })
            .filter(|r| !r.is_empty())
            .collect()
    }
}

/// The pieces of the schedule: few enough steps that a piece and a sample fit the loop budget.
fn pieces(job: &DickeJob, layout: &DickeLayout, loop_budget: u64) -> Vec<Piece> {
    let (step, sample) = layout.loop_costs();
    let room = loop_budget.saturating_sub(sample + 2);
    plan_pieces(&job.schedule, (room / step).clamp(1, STEPS_PER_PIECE))
}

fn dispatches(pieces: &[Piece], layout: &DickeLayout, loop_budget: u64, members: usize, element_budget: u64) -> Vec<(u32, u32)> {
    let (step, sample) = layout.loop_costs();
    let per_step = (members.max(1) * layout.n_list) as u64;
    let cost = |p: &Piece| (piece_steps(p) * step + if p.sample != NO_SAMPLE { sample } else { 0 } + 2, piece_steps(p) * per_step);
    group_pieces(pieces, cost, (loop_budget, element_budget), (0, 0))
}

/// Plan a job on a device with these limits: chunks that fit every buffer limit, the
/// workgroup count and the device-memory budget.
/// `software`: a CPU-type adapter, whose loop cap (`buffers::loop_budget`) sizes the pieces and
/// dispatches and bounds the size; a GPU's dispatches are bounded by their element-steps.
pub fn plan_dicke(job: &DickeJob, precision: Precision, limits: &wgpu::Limits, software: bool, opts: &CavityGpuOptions) -> Result<DickeGpuPlan> {
    let layout = DickeLayout::new(job.n_cells, job.n_fock, job.parity_only);
    if layout.dim >= 1 << 16 {
        return Err(QbatError::invalid("params.n_fock", "the dicke GPU kernel indexes rows in 16 bits"));
    }
    if let Some(p) = job.points.iter().find(|p| (p.n_cells, p.n_fock) != (job.n_cells, job.n_fock)) {
        return Err(QbatError::invalid(
            "params.n_fock",
            format!("every point must share n_cells = {} and n_fock = {}, one has {} and {}", job.n_cells, job.n_fock, p.n_cells, p.n_fock),
        ));
    }
    let (n, ns) = (job.member_point.len(), job.schedule.times.len());
    let rs = precision.bytes();
    let work = layout.member_stride as u64 * 2 * rs;
    let params = layout.param_stride as u64 * 2 * rs;
    let out = (ns * layout.out_stride) as u64 * rs;
    let per_member = work + params + 2 * out;
    let cap = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size).min(MAX_BUFFER_BYTES) / 32 * 32;
    let loop_budget = opts.loop_iterations_per_dispatch.unwrap_or(loop_budget(software, LOOP_ITERATIONS_PER_DISPATCH));
    let (step, sample) = layout.loop_costs();
    if step + sample + 2 > super::buffers::loop_budget(software, LOOP_ITERATION_CAP) {
        return Err(QbatError::TooLarge {
            field: "params.n_fock".into(),
            reason: format!(
                "dim {} needs {} loop iterations per invocation for one RK4 step and sample, more than a dispatch may run",
                layout.dim,
                step + sample
            ),
        });
    }
    let np = pieces(job, &layout, loop_budget).len();
    let lookup = (layout.n_list + ROW_U32 * layout.dim + 2 * np) as u64;
    let consts = pad4((ROW_REALS * layout.dim) as u64) + 4 * (1 + np as u64);
    let shared_bytes = pad32(lookup * 4) + pad32(consts * rs);
    let too_large = |what: &str, need: u64| QbatError::TooLarge {
        field: "ensemble".into(),
        reason: format!("{what} needs {need} bytes, more than the adapter's largest buffer ({cap} bytes)"),
    };
    if lookup * 4 > cap || consts * rs > cap {
        return Err(too_large("the element table and the time grid", (lookup * 4).max(consts * rs)));
    }
    let mut m_max = limits.max_compute_workgroups_per_dimension as u64;
    let mut bound_by = "max_compute_workgroups_per_dimension (one workgroup per member)".to_string();
    for (what, per) in [("one member's state and RK4 scratch", work), ("one member's parameters", params), ("one member's samples", out)] {
        if per > cap {
            return Err(too_large(what, per));
        }
        if cap / per < m_max {
            m_max = cap / per;
            bound_by = format!("buffer size ({what}: {per} bytes per member, {cap} bytes per buffer)");
        }
    }
    let budget = opts.max_chunk_bytes.unwrap_or(DEFAULT_CHUNK_BYTES);
    if budget.saturating_sub(shared_bytes) / per_member < m_max {
        m_max = budget.saturating_sub(shared_bytes) / per_member;
        bound_by = format!("device memory budget ({budget} bytes per chunk, {per_member} bytes per member)");
    }
    if let Some(f) = opts.max_members_per_chunk.filter(|&f| (f as u64) < m_max) {
        m_max = f as u64;
        bound_by = "max_members_per_chunk option".into();
    }
    let m_max = m_max.max(1) as usize;
    Ok(DickeGpuPlan {
        kernel: KERNEL,
        precision,
        workgroup_size: WORKGROUP_SIZE,
        layout,
        members: n,
        samples: ns,
        steps_per_member: job.schedule.total_steps(),
        bytes_per_member: per_member,
        shared_bytes,
        buffer_cap_bytes: cap,
        chunk_budget_bytes: budget,
        max_members_per_chunk: m_max,
        bound_by,
        chunks: n.div_ceil(m_max),
        loop_budget,
        pieces: np,
    })
}

/// What the kernel returns: per member and sample `out_stride` reals
/// (`job::dicke::out_stride`), at (member * n_samples + sample) * out_stride.
#[derive(Clone, Debug)]
pub struct DickeGpuResult {
    pub n_samples: usize,
    pub out_stride: usize,
    pub values: Vec<f64>,
    pub plan: DickeGpuPlan,
}

impl DickeGpuResult {
    pub fn sample(&self, member: usize, sample: usize) -> &[f64] {
        let at = (member * self.n_samples + sample) * self.out_stride;
        &self.values[at..at + self.out_stride]
    }
}

/// Run a dicke job on the GPU. `progress` gets the members done after each chunk; an Err from
/// it (a cancelled run) stops the run there.
pub fn run_dicke_gpu(
    ctx: &GpuContext,
    job: &DickeJob,
    precision: Precision,
    opts: &CavityGpuOptions,
    progress: &dyn Fn(u64) -> Result<()>,
) -> Result<DickeGpuResult> {
    let plan = plan_dicke(job, precision, &ctx.info.limits, ctx.info.software, opts)?;
    let layout = plan.layout;
    let ns = plan.samples;
    let mut result =
        DickeGpuResult { n_samples: ns, out_stride: layout.out_stride, values: vec![0.0; plan.members * ns * layout.out_stride], plan: plan.clone() };
    let pieces = pieces(job, &layout, plan.loop_budget);
    if plan.members == 0 || pieces.is_empty() {
        return Ok(result);
    }
    let pipeline = ctx.pipeline(KERNEL, precision, &layout_entries(std::mem::size_of::<Params>() as u64))?;
    // Shared tables.
    let (rows, weights) = row_tables(layout.n_cells, layout.n_fock);
    let mut lookup = element_table(layout.n_cells, layout.n_fock, layout.parity_only);
    let off_rows = lookup.len() as u32;
    lookup.extend(rows.iter().flatten());
    let off_pieces = lookup.len() as u32;
    for p in &pieces {
        lookup.extend([p.n_full, p.sample]);
    }
    let mut consts: Vec<f64> = weights.iter().flatten().copied().collect();
    consts.resize(pad4(consts.len() as u64) as usize, 0.0);
    let off_steps = consts.len() as u32;
    consts.extend(crate::job::step_constants(job.schedule.dt, &pieces, precision));
    let device = &ctx.device;
    let storage_init = |label: &str, contents: &[u8]| {
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some(label), contents, usage: wgpu::BufferUsages::STORAGE })
    };
    let consts_buf = storage_init("consts", &real_bytes(&consts, precision));
    let lookup_buf = storage_init("lookup", &u32_bytes(&lookup));
    let rs = precision.bytes() as usize;
    let element_budget = opts.element_steps_per_dispatch.unwrap_or(ELEMENT_STEPS_PER_DISPATCH).max(1);

    for chunk in plan.chunk_ranges() {
        let m = chunk.len();
        // Per-member parameters: K's diagonal, then (g_rot, g_counter), (kappa, gamma).
        let mut mp: Vec<f64> = Vec::with_capacity(m * layout.param_stride * 2);
        for i in chunk.clone() {
            let c = &job.points[job.member_point[i] as usize];
            mp.extend(c.k_diagonal().into_iter().flat_map(|(re, im)| [re, im]));
            mp.extend(param_tail(c));
        }
        let mparams = storage_init("mparams", &real_bytes(&mp, precision));
        // X: the initial states' upper triangles; S_A, S_B, acc stay zero (wgpu zeroes new
        // buffers).
        let slot = layout.member_stride * 2 * rs;
        let work = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("work"),
            size: pad32((m * slot) as u64),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut x = Vec::with_capacity(layout.n_packed * 2);
        for (k, i) in chunk.clone().enumerate() {
            let rho = (job.initial)(i);
            x.clear();
            for r in 0..layout.dim {
                for c in r..layout.dim {
                    x.extend([rho[(r, c)].re, rho[(r, c)].im]);
                }
            }
            ctx.queue.write_buffer(&work, (k * slot) as u64, &real_bytes(&x, precision));
        }
        let out_len = m * ns * layout.out_stride;
        let out = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("out"),
            size: pad32((out_len * rs) as u64),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let status = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("status"),
            size: pad32(m as u64 * 8),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let groups = dispatches(&pieces, &layout, plan.loop_budget, m, element_budget);
        let params: Vec<Params> = groups
            .iter()
            .map(|&(begin, end)| Params {
                n_members: m as u32,
                n_cells: layout.n_cells as u32,
                n_fock: layout.n_fock as u32,
                dim: layout.dim as u32,
                n_list: layout.n_list as u32,
                n_packed: layout.n_packed as u32,
                n_samples: ns as u32,
                piece_begin: begin,
                piece_end: end,
                flags: if pieces[begin as usize].uncoupled { F_UNCOUPLED } else { 0 },
                member_stride: layout.member_stride as u32,
                param_stride: layout.param_stride as u32,
                out_stride: layout.out_stride as u32,
                off_rows,
                off_pieces,
                off_weights: 0,
                off_steps,
                steps_expected: pieces[begin as usize..end as usize].iter().map(piece_steps).sum::<u64>() as u32,
                _pad0: 0,
                _pad1: 0,
            })
            .collect();
        let (params_buf, ustride) = dispatch_uniforms(device, ctx.info.limits.min_uniform_buffer_offset_alignment as u64, &params);
        let bind_group = kernel_bind_group(
            device,
            &pipeline.layout,
            KERNEL,
            &params_buf,
            std::mem::size_of::<Params>() as u64,
            [&consts_buf, &lookup_buf, &mparams, &work, &out, &status],
        );
        submit_dispatches(ctx, &pipeline, &bind_group, groups.len(), ustride, m as u32, DISPATCHES_PER_SUBMIT, KERNEL)?;
        let at = chunk.start * ns * layout.out_stride;
        let rows = &mut result.values[at..at + out_len];
        read_samples_checked(ctx, &out, &status, KERNEL, (chunk.start, m), pieces.len(), |bytes| fill_reals(rows, bytes, precision))?;
        progress(chunk.end as u64)?;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::dicke::DickeCoeffs;
    use crate::job::Schedule;
    use crate::linalg::CMat;

    fn init(_: usize) -> CMat {
        CMat::zeros(1, 1)
    }

    fn job(members: usize, n_cells: usize, n_fock: usize, samples: usize) -> DickeJob<'static> {
        let c = DickeCoeffs { n_cells, n_fock, wc: 1.0, wa: 1.0, g: 0.1, tavis_cummings: false, kappa: 0.05, gamma: 0.02 };
        let times: Vec<f64> = (0..samples).map(|i| i as f64 * 0.1).collect();
        DickeJob { n_cells, n_fock, points: vec![c], member_point: vec![0; members], initial: &init, schedule: Schedule::new(0.01, &times), parity_only: true }
    }

    #[test]
    fn dicke_1k_chunks_fit_the_buffer_limit_and_the_budget() {
        // lavapipe-like limits: 128 MiB per binding
        let limits = wgpu::Limits { max_storage_buffer_binding_size: 128 << 20, max_buffer_size: 2 << 30, ..wgpu::Limits::default() };
        let j = job(1000, 8, 24, 101);
        let p = plan_dicke(&j, Precision::F32, &limits, true, &CavityGpuOptions::default()).unwrap();
        // dim 225: 25,425 packed entries, 4 matrices of vec2<f32>
        assert_eq!((p.layout.dim, p.layout.n_packed), (225, 25_425));
        let work = 4 * 25_425 * 8u64;
        assert_eq!(p.max_members_per_chunk as u64, (128u64 << 20) / work);
        assert!(p.bound_by.contains("state"), "{}", p.bound_by);
        let ranges = p.chunk_ranges();
        assert_eq!((ranges.first().unwrap().start, ranges.last().unwrap().end), (0, 1000));
        assert!(ranges.iter().all(|r| r.len() <= p.max_members_per_chunk && r.len() as u64 * work <= p.buffer_cap_bytes));
        // a small budget binds instead
        let opts = CavityGpuOptions { max_chunk_bytes: Some(64 << 20), ..Default::default() };
        let p = plan_dicke(&j, Precision::F32, &limits, true, &opts).unwrap();
        assert!(p.bound_by.contains("budget") && p.max_members_per_chunk as u64 * p.bytes_per_member + p.shared_bytes <= 64 << 20);
        // the loop costs of a step and a sample fit a dispatch
        let (step, sample) = p.layout.loop_costs();
        assert!(step + sample < LOOP_ITERATIONS_PER_DISPATCH);
    }
}
