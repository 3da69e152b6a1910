//! Host side of `shaders/rk4_cavity.wgsl`: packs a [`CavityJob`] into buffers, chunks the
//! members to fit the device, records the dispatches and reads the reduced states back.
//!
//! Design: one workgroup of [`WORKGROUP_SIZE`] invocations per member; each invocation owns a
//! strided set of the dim (dim + 1) / 2 upper-triangle elements and applies the generator to
//! them in gather form (the CPU twin's loop body, `crate::twin::rk4_cavity`), with one
//! `storageBarrier()` per RK4 stage (and a `workgroupBarrier()` after a stage's copy into the
//! workgroup tile, below). Every matrix (the state X, the two stage buffers, the
//! accumulator, and Z) is Hermitian and stored as its packed upper triangle. One RHS costs
//! O(dim^2); nothing scales as dim^4.
//!
//! Choices, measured on lavapipe (2 cores, cavity-100 shape, 4 members): a workgroup of 64
//! ran about 1.5x faster than 256 there (fewer lanes to switch at each barrier), but 256 keeps
//! a small ensemble busy on a real GPU (cavity-100: 100 workgroups of 256 threads) and costs a
//! large one nothing, so 256 it is. The RK4 stage update is fused into the RHS pass (no
//! separate elementwise pass, one barrier per stage), and the accumulator is indexed by the
//! packed element, so it is touched only by its owner.
//!
//! Cost per member and RK4 step (N = 20: dim 84, 3,570 packed elements, 4 stages): about 40
//! flops per element and stage (the K and band gathers, the diagonal product, the jumps, the
//! stage update), 0.57 MFLOP per member-step; memory traffic, each matrix read once per stage
//! (the gathers hit the cache): 136 bytes per element and step in f32 (stage 1: 24, stages
//! 2-3: 40, stage 4: 32), 0.49 MB per member-step (0.97 MB in f64): about 1.2 flop/byte in
//! f32, so the kernel is memory-bound on any GPU (H100, 3 TB/s: a floor of 6e6 member-steps/s
//! in f32, 3e6 in f64). Z doubles both.
//!
//! Workgroup tile: where a matrix fits the adapter's max_compute_workgroup_storage_size beside
//! the kernel's other workgroup variables (`plan::workgroup_tile`; N = 20 needs 30,784 bytes in
//! f32, 61,568 in f64), each stage first copies its input matrix into workgroup memory and
//! gathers from there, so the ten or so reads of each element go to the workgroup's memory and
//! device memory sees one read of the matrix per stage. The pipeline is built with the
//! kernel's `TILED` and `TILE_LEN` overrides; the arithmetic, and so every bit, is the same
//! either way (tested on lavapipe). On lavapipe (2 cores, 8 members, cavity-10k's schedule) it
//! ran 1.1-1.4x faster than the gathers from device memory at N = 5 and 1.07-1.25x at N = 20
//! (two pairs each); not measured on a GPU yet. `CavityGpuOptions::no_workgroup_tile`, or
//! `QBAT_CAVITY_TILE=off` from the command line, turns it off; a driver that refuses the tiled
//! pipeline with an error (validation, internal, out of memory) gets the untiled one, with a
//! note in the result (`CavityResult::notes`, then run.json), and the context remembers a
//! validation or internal refusal for the later blocks (an out-of-memory one is tried again);
//! one that loses the device over it ends the GPU run as a lost device (`--on-device-loss`).
//! A run with no members builds no pipeline.
//!
//! Buffers (keep in sync with the shader's layout comment; `real` = 4 or 8 bytes):
//! - `consts`  (read, shared): sqrt(0..=N+1), then (h, h/2, h/6, 0) for dt and for each piece's
//!   shortened step, each piece's start time, each drive's DRIVE_SLOTS slot weights;
//! - `lookup`  (read, shared): the element table (r | c << 16 per packed element), the row table
//!   (`job::cavity::row_table`), (n_full, sample) per piece, each drive's envelope code;
//! - `mparams` (read): per member K's diagonal (dim complex) and (lambda, g zeta), (g, kappa),
//!   (gamma, 0), then per drive (amplitude, frequency), (phase, env_a), (env_b, 0):
//!   (dim + 3 + 3 n_drives) vec2;
//! - `work`    (rw): per member X, S_A, S_B, acc, [Z], each n_elem vec2, then 32 vec2 of t = 0
//!   reduced coefficients: (4 [+1]) n_elem + 32 vec2. X and Z are uploaded (the members'
//!   initial states), the rest is zero;
//! - `out`     (rw): per member and sample, 16 reals (the reduced state's Pauli coefficients
//!   minus those at t = 0), 16 more for Z with `evolve_z`, then photon_number and fock_tail;
//! - `status`  (rw): 2 u32 per member, the pieces completed and the invocations that fell short.
//!
//! `[[drive]]`: each invocation computes its member's drive coefficients at the three stage
//! times of every step from the per-member numbers (`shaders/drive.wgsl`), sums them into the
//! slot coefficients, and where all are 0 takes the undriven step; no host work per step.
//!
//! `[protocol] switch_off`: no dispatch spans the switch-off piece, and the dispatches after it
//! carry F_UNCOUPLED, under which the kernel zeroes the cell-cell coupling g (what
//! `CavityCoeffs::uncoupled` does for the twin).
//!
//! The kernel returns differences from t = 0 so that nothing relative to the start (stored
//! energy, the two-time fluctuation, the trace error) suffers an O(1) cancellation in f32; the
//! host adds them to the f64 reduced states at t = 0, which it computes from the initial state
//! as the CPU engine does (so a t = 0 sample is the CPU engine's, bit for bit).
//!
//! Chunking: every per-chunk buffer (and the readback copy of `out`) must fit the device's
//! max_storage_buffer_binding_size and max_buffer_size (and 2 GiB, so that u32 element indices
//! stay exact); one workgroup per member, so a chunk has at most
//! max_compute_workgroups_per_dimension members; and a chunk's buffers together stay within a
//! device-memory budget (`CavityGpuOptions::max_chunk_bytes`, default [`DEFAULT_CHUNK_BYTES`]).
//! The members are split into equal chunks (sizes differ by at most one). Members are
//! independent, so the results do not depend on the chunking, bit for bit.
//!
//! Dispatches: Mesa's llvmpipe (lavapipe, the software adapter of CI) ends every loop of a
//! shader invocation, silently, once 65,535 loop iterations are spent in it. On a CPU-type
//! adapter a dispatch is therefore sized by the loop iterations its worst invocation runs
//! ([`LoopCosts`]), at most [`LOOP_ITERATIONS_PER_DISPATCH`]; on every adapter by
//! [`ELEMENT_STEPS_PER_DISPATCH`] (short dispatches on GPUs with a watchdog), the only bound on
//! a GPU (`buffers::loop_budget`). The kernel reports the pieces each member completed and any
//! invocation that completed fewer steps than its dispatch holds; the host turns a shortfall
//! into an error.

use super::buffers::{
    dispatch_uniforms, kernel_bind_group, layout_entries, pad32, pad4, piece_steps, read_samples_checked, real_bytes, submit_dispatches, u32_bytes,
};
use super::context::GpuContext;
use super::Precision;
use crate::error::{QbatError, Result};
use crate::job::cavity::{k_diagonal, row_table, CavityDrive, Params, F_FIRST, F_UNCOUPLED, F_Z};
use crate::job::CavityJob;
use crate::job::Piece;
use crate::linalg::{CMat, C64};
use rayon::prelude::*;
use std::ops::Range;
use wgpu::util::DeviceExt;

/// The kernel's name (its file in shaders/).
pub const KERNEL: &str = "rk4_cavity";
mod pack;
mod plan;

use pack::pack_member;
pub use plan::*;

/// What the kernel returns, with the reduced states at t = 0 (f64, from the initial states).
/// The reduced (cell 1, cell 2) state of member i at sample s is
/// `initial[i] + from_pauli(deltas[(i * n_samples + s) * 16..][..16])` ([`CavityResult::state`]).
#[derive(Clone, Debug)]
pub struct CavityResult {
    pub n_samples: usize,
    /// Reduced state at t = 0 per member, 4x4 row-major: sum_n rho0[(a, n), (b, n)].
    pub initial: Vec<[C64; 16]>,
    /// The same for Z(0) = {H_B, rho0}/2, with `evolve_z`.
    pub z_initial: Option<Vec<[C64; 16]>>,
    /// deltas[(member * n_samples + sample) * 16 + k]: Pauli coefficients of
    /// rho_q(t) - rho_q(0), x[4a + b] = Re Tr(. sigma_a (x) sigma_b) (src/pauli.rs, a = cell 1).
    pub deltas: Vec<f64>,
    /// The same for Z(t) - Z(0), with `evolve_z`.
    pub z_deltas: Option<Vec<f64>>,
    /// photon_number[member * n_samples + sample] = Tr(rho a^+ a)
    pub photon_number: Vec<f64>,
    /// fock_tail[member * n_samples + sample] = population of |N>
    pub fock_tail: Vec<f64>,
    pub plan: CavityGpuPlan,
    /// What the run changed from its plan and why (a refused workgroup tile), for run.json.
    pub notes: Vec<String>,
}

fn state_at(initial: &[C64; 16], delta: &[f64]) -> CMat {
    let x: [f64; 16] = delta.try_into().expect("16 Pauli coefficients");
    CMat::from_row_slice(4, 4, initial) + crate::job::pauli::from_pauli(&x)
}

impl CavityResult {
    /// The reduced (cell 1, cell 2) state of `member` at `sample`.
    pub fn state(&self, member: usize, sample: usize) -> CMat {
        let off = (member * self.n_samples + sample) * 16;
        state_at(&self.initial[member], &self.deltas[off..off + 16])
    }
}

/// Run a cavity job on the GPU. `progress` gets the number of members done after each chunk;
/// an Err from it (a cancelled run) stops the run there and is returned.
pub fn run_cavity_gpu(
    ctx: &GpuContext,
    job: &CavityJob,
    precision: Precision,
    opts: &CavityGpuOptions,
    progress: &dyn Fn(u64) -> Result<()>,
) -> Result<CavityResult> {
    let entries = layout_entries(std::mem::size_of::<Params>() as u64);
    let plan = plan_cavity(job, precision, &ctx.info.limits, ctx.info.software, opts)?;
    let (n_members, ns) = (plan.members, plan.samples);
    let mut result = CavityResult {
        n_samples: ns,
        initial: Vec::with_capacity(n_members),
        z_initial: job.evolve_z.then(|| Vec::with_capacity(n_members)),
        deltas: vec![0.0; n_members * ns * 16],
        z_deltas: job.evolve_z.then(|| vec![0.0; n_members * ns * 16]),
        photon_number: vec![0.0; n_members * ns],
        fock_tail: vec![0.0; n_members * ns],
        plan,
        notes: vec![],
    };
    // (no pipeline for a run with nothing to integrate)
    if n_members == 0 || cavity_pieces(job, &result.plan.loop_costs, result.plan.loop_budget).is_empty() {
        return Ok(CavityResult { initial: vec![], z_initial: job.evolve_z.then(Vec::new), ..result });
    }
    // a driver that refuses the tiled pipeline with an error gets the one that gathers from
    // device memory (one that loses the device over it is a lost device, as any other); the
    // context remembers the refusal, so a later block goes straight to the untiled one
    let constants = tile_constants(&result.plan);
    if crate::faults::is_injected(crate::faults::Fault::TileRefused) && result.plan.workgroup_tile {
        ctx.refuse_pipeline(KERNEL, precision, &constants, &entries, "the tiled pipeline refused (QBAT_INJECT_FAULT=tile-refused)");
    }
    let pipeline = match ctx.pipeline_with(KERNEL, precision, &constants, &entries) {
        Ok(pipeline) => pipeline,
        Err(e @ QbatError::Device(_)) if result.plan.workgroup_tile => {
            result.notes.push(format!("{e}; the cavity kernel gathers from device memory instead of its workgroup tile"));
            result.plan = plan_cavity(job, precision, &ctx.info.limits, ctx.info.software, &CavityGpuOptions { no_workgroup_tile: true, ..opts.clone() })?;
            ctx.pipeline(KERNEL, precision, &entries)?
        }
        Err(e) => return Err(e),
    };
    let plan = result.plan.clone();
    let pieces = cavity_pieces(job, &plan.loop_costs, plan.loop_budget);
    let layout = plan.layout;

    // Shared tables.
    let mut lookup: Vec<u32> = Vec::with_capacity(shared_len(&layout, pieces.len()).0 as usize);
    for r in 0..layout.dim as u32 {
        for c in r..layout.dim as u32 {
            lookup.push(r | (c << 16));
        }
    }
    let off_rows = lookup.len() as u32;
    lookup.extend(row_table(layout.n_fock).iter().flatten());
    let off_pieces = lookup.len() as u32;
    for p in &pieces {
        lookup.push(p.n_full);
        lookup.push(p.sample);
    }
    // The drives' envelope codes and slot weights (the same at every point).
    let drives: &[CavityDrive] = job.points.first().map_or(&[], |p| &p.drives);
    let off_env = lookup.len() as u32;
    lookup.extend(drives.iter().map(|d| d.coeffs.env));
    let mut consts: Vec<f64> = (0..=layout.n_fock + 1).map(|n| (n as f64).sqrt()).collect();
    consts.resize(pad4(consts.len() as u64) as usize, 0.0);
    let off_steps = consts.len() as u32;
    consts.extend(crate::job::step_constants(job.schedule.dt, &pieces, precision));
    // Step j of piece p starts at starts[p] + j dt (`job::piece_starts`).
    let off_starts = consts.len() as u32;
    consts.extend(crate::job::piece_starts(&job.schedule, &pieces));
    consts.resize(pad4(consts.len() as u64) as usize, 0.0);
    let off_weights = consts.len() as u32;
    for d in drives {
        consts.extend_from_slice(&d.weights);
    }
    let device = &ctx.device;
    let storage_init = |label: &str, contents: &[u8]| {
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some(label), contents, usage: wgpu::BufferUsages::STORAGE })
    };
    let shared = Shared {
        consts: storage_init("consts", &real_bytes(&consts, precision)),
        lookup: storage_init("lookup", &u32_bytes(&lookup)),
        off_rows,
        off_pieces,
        off_sqrt: 0,
        off_steps,
        n_drives: drives.len() as u32,
        off_env,
        off_starts,
        off_weights,
    };
    let runner = ChunkRunner {
        ctx,
        job,
        precision,
        pipeline: &pipeline,
        pieces: &pieces,
        layout,
        shared: &shared,
        costs: plan.loop_costs,
        loop_budget: plan.loop_budget,
        element_steps: opts.element_steps_per_dispatch.unwrap_or(ELEMENT_STEPS_PER_DISPATCH).max(1),
    };
    for chunk in plan.chunk_ranges() {
        let (states, samples) = (chunk.start * ns * 16..chunk.end * ns * 16, chunk.start * ns..chunk.end * ns);
        let sink = ChunkSink {
            deltas: &mut result.deltas[states.clone()],
            z_deltas: result.z_deltas.as_mut().map(|z| &mut z[states]),
            photon_number: &mut result.photon_number[samples.clone()],
            fock_tail: &mut result.fock_tail[samples],
        };
        for (x0, z0) in runner.run(chunk.clone(), sink)? {
            result.initial.push(x0);
            if let (Some(zi), Some(z0)) = (result.z_initial.as_mut(), z0) {
                zi.push(z0);
            }
        }
        progress(chunk.end as u64)?;
    }
    Ok(result)
}

/// The kernel's override constants for a plan: the tile of n_elem elements where it has one.
fn tile_constants(plan: &CavityGpuPlan) -> Vec<(&'static str, f64)> {
    if plan.workgroup_tile {
        vec![("TILED", 1.0), ("TILE_LEN", plan.layout.n_elem as f64)]
    } else {
        vec![]
    }
}

struct Shared {
    consts: wgpu::Buffer,
    lookup: wgpu::Buffer,
    off_rows: u32,
    off_pieces: u32,
    off_sqrt: u32,
    off_steps: u32,
    n_drives: u32,
    off_env: u32,
    off_starts: u32,
    off_weights: u32,
}

/// A chunk's members' parts of the result's arrays, filled from the read-back.
struct ChunkSink<'a> {
    deltas: &'a mut [f64],
    z_deltas: Option<&'a mut [f64]>,
    photon_number: &'a mut [f64],
    fock_tail: &'a mut [f64],
}

impl ChunkSink<'_> {
    /// The kernel's `out` rows (`out_stride` reals per (member, sample): X's 16 deltas, Z's 16
    /// with `evolve_z`, photon_number, fock_tail) from the mapped bytes, members in parallel.
    fn fill(self, bytes: &[u8], precision: Precision, out_stride: usize, ns: usize) {
        match precision {
            Precision::F32 => self.fill_as(bytes, out_stride, ns, |b: [u8; 4]| f32::from_ne_bytes(b) as f64),
            Precision::F64 => self.fill_as(bytes, out_stride, ns, f64::from_ne_bytes),
        }
    }

    fn fill_as<const N: usize>(self, bytes: &[u8], out_stride: usize, ns: usize, real: impl Fn([u8; N]) -> f64 + Sync) {
        // (a run has at least one sample; max(1) keeps an empty one from a zero chunk size)
        let (state_len, ns1) = ((ns * 16).max(1), ns.max(1));
        let members = self.photon_number.len() / ns1;
        let mut z: Vec<Option<&mut [f64]>> = match self.z_deltas {
            Some(z) => z.chunks_mut(state_len).map(Some).collect(),
            None => (0..members).map(|_| None).collect(),
        };
        let rows = self.deltas.par_chunks_mut(state_len).zip(self.photon_number.par_chunks_mut(ns1)).zip(self.fock_tail.par_chunks_mut(ns1));
        rows.zip(z.par_iter_mut()).enumerate().for_each(|(k, (((dx, photon), tail), dz))| {
            for s in 0..ns {
                let at = |j: usize| {
                    let o = ((k * ns + s) * out_stride + j) * N;
                    real(bytes[o..o + N].try_into().expect("N bytes"))
                };
                for j in 0..16 {
                    dx[16 * s + j] = at(j);
                }
                let mut after = 16;
                if let Some(dz) = dz {
                    for j in 0..16 {
                        dz[16 * s + j] = at(16 + j);
                    }
                    after = 32;
                }
                photon[s] = at(after);
                tail[s] = at(after + 1);
            }
        });
    }
}

struct ChunkRunner<'a> {
    ctx: &'a GpuContext,
    job: &'a CavityJob<'a>,
    precision: Precision,
    pipeline: &'a super::KernelPipeline,
    pieces: &'a [Piece],
    layout: Layout,
    shared: &'a Shared,
    costs: LoopCosts,
    loop_budget: u64,
    element_steps: u64,
}

impl ChunkRunner<'_> {
    /// Run a chunk into `sink`; returns each member's f64 reduced X and Z at t = 0.
    fn run(&self, chunk: Range<usize>, sink: ChunkSink) -> Result<Vec<([C64; 16], Option<[C64; 16]>)>> {
        let (ctx, job, precision, layout) = (self.ctx, self.job, self.precision, self.layout);
        let device = &ctx.device;
        let m = chunk.len();
        let ns = job.schedule.times.len();
        let rs = precision.bytes() as usize;

        // Per-member parameters: K's diagonal, then (lambda, g zeta), (g, kappa), (gamma, 0),
        // then per drive (amplitude, frequency), (phase, env_a), (env_b, 0).
        let mut mp: Vec<f64> = Vec::with_capacity(m * layout.param_stride * 2);
        for i in chunk.clone() {
            let point = &job.points[job.member_point[i] as usize];
            let c = &point.coeffs;
            for z in k_diagonal(c) {
                mp.push(z.re);
                mp.push(z.im);
            }
            mp.extend_from_slice(&[c.lambda, c.g * c.zeta, c.g, c.kappa, c.gamma, 0.0]);
            for d in point.drives.iter().map(|d| &d.coeffs) {
                mp.extend_from_slice(&[d.amplitude, d.frequency, d.phase, d.env_a, d.env_b, 0.0]);
            }
        }
        let mparams = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("mparams"),
            contents: &real_bytes(&mp, precision),
            usage: wgpu::BufferUsages::STORAGE,
        });
        drop(mp);

        // The state buffer, filled with the initial states batch by batch.
        let slot = layout.member_stride * 2 * rs;
        let work = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("work"),
            size: pad32((m * slot) as u64),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let batch = ((UPLOAD_BATCH_BYTES as usize) / slot).max(1);
        let mut refs = Vec::with_capacity(m);
        let mut host = vec![0u8; batch.min(m) * slot];
        for start in (0..m).step_by(batch) {
            let len = batch.min(m - start);
            let part = &mut host[..len * slot];
            let r: Vec<_> = part.par_chunks_mut(slot).enumerate().map(|(k, dst)| pack_member(job, &layout, chunk.start + start + k, dst, precision)).collect();
            refs.extend(r);
            ctx.queue.write_buffer(&work, (start * slot) as u64, part);
        }
        drop(host);

        let out_len = m * ns * layout.out_stride;
        let out = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("out"),
            size: pad32((out_len * rs) as u64),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });

        // One Params per dispatch, at dynamic offsets.
        let per_step = (m * layout.n_elem * (1 + usize::from(job.evolve_z))) as u64;
        let dispatches = plan_cavity_dispatches(self.pieces, &self.costs, self.loop_budget, per_step, self.element_steps);
        let status = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("status"),
            size: pad32(m as u64 * 8),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let params: Vec<Params> = dispatches
            .iter()
            .enumerate()
            .map(|(i, &(begin, end))| Params {
                n_members: m as u32,
                n_fock: layout.n_fock as u32,
                dim: layout.dim as u32,
                n_elem: layout.n_elem as u32,
                n_samples: ns as u32,
                piece_begin: begin,
                piece_end: end,
                flags: if job.evolve_z { F_Z } else { 0 }
                    | if i == 0 { F_FIRST } else { 0 }
                    | if self.pieces[begin as usize].uncoupled { F_UNCOUPLED } else { 0 },
                member_stride: layout.member_stride as u32,
                param_stride: layout.param_stride as u32,
                out_stride: layout.out_stride as u32,
                off_rows: self.shared.off_rows,
                off_pieces: self.shared.off_pieces,
                off_sqrt: self.shared.off_sqrt,
                off_steps: self.shared.off_steps,
                steps_expected: self.pieces[begin as usize..end as usize].iter().map(piece_steps).sum::<u64>() as u32,
                n_drives: self.shared.n_drives,
                off_env: self.shared.off_env,
                off_starts: self.shared.off_starts,
                off_weights: self.shared.off_weights,
            })
            .collect();
        let (params_buf, ustride) = dispatch_uniforms(device, ctx.info.limits.min_uniform_buffer_offset_alignment as u64, &params);
        let bind_group = kernel_bind_group(
            device,
            &self.pipeline.layout,
            KERNEL,
            &params_buf,
            std::mem::size_of::<Params>() as u64,
            [&self.shared.consts, &self.shared.lookup, &mparams, &work, &out, &status],
        );

        submit_dispatches(ctx, self.pipeline, &bind_group, dispatches.len(), ustride, m as u32, DISPATCHES_PER_SUBMIT, KERNEL)?;

        // Read back the samples and the status once.
        read_samples_checked(ctx, &out, &status, KERNEL, (chunk.start, m), self.pieces.len(), |bytes| sink.fill(bytes, precision, layout.out_stride, ns))?;
        Ok(refs)
    }
}
