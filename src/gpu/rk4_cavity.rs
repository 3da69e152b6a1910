//! Host side of `shaders/rk4_cavity.wgsl`: packs a [`CavityJob`] into buffers, chunks the
//! members to fit the device, records the dispatches and reads the reduced states back.
//!
//! Design: one workgroup of [`WORKGROUP_SIZE`] invocations per member; each invocation owns a
//! strided set of the dim (dim + 1) / 2 upper-triangle elements and applies the generator to
//! them in gather form (the CPU twin's loop body, `crate::twin::rk4_cavity`), with one
//! `storageBarrier()` per RK4 stage. Every matrix (the state X, the two stage buffers, the
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
//! Buffers (keep in sync with the shader's layout comment; `real` = 4 or 8 bytes):
//! - `consts`  (read, shared): sqrt(0..=N+1), then (h, h/2, h/6, 0) for dt and for each piece's
//!   shortened step;
//! - `lookup`  (read, shared): the element table (r | c << 16 per packed element), the row table
//!   (`job::cavity::row_table`), (n_full, sample) per piece;
//! - `mparams` (read): per member K's diagonal (dim complex) and (lambda, g zeta), (g, kappa),
//!   (gamma, 0): (dim + 3) vec2;
//! - `work`    (rw): per member X, S_A, S_B, acc, [Z], each n_elem vec2, then 32 vec2 of t = 0
//!   reduced coefficients: (4 [+1]) n_elem + 32 vec2. X and Z are uploaded (the members'
//!   initial states), the rest is zero;
//! - `out`     (rw): per member and sample, 16 reals (the reduced state's Pauli coefficients
//!   minus those at t = 0), 16 more for Z with `evolve_z`, then photon_number and fock_tail;
//! - `status`  (rw): 2 u32 per member, the pieces completed and the invocations that fell short.
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
//! shader invocation, silently, once 65,535 loop iterations are spent in it. A dispatch is
//! therefore sized by the loop iterations its worst invocation runs ([`LoopCosts`]), at most
//! [`LOOP_ITERATIONS_PER_DISPATCH`], and by [`ELEMENT_STEPS_PER_DISPATCH`] (short dispatches on
//! GPUs with a watchdog). The kernel reports the pieces each member completed and any
//! invocation that completed fewer steps than its dispatch holds; the host turns a shortfall
//! into an error.

use super::buffers::{dispatch_uniforms, group_pieces, piece_steps, kernel_bind_group, layout_entries, read_back, pad32, pad4, read_reals, real_bytes, u32_bytes};
use super::context::GpuContext;
use super::Precision;
use crate::error::{QbatError, Result};
use crate::job::CavityJob;
use crate::linalg::{CMat, C64};
use crate::job::cavity::{k_diagonal, row_table};
use crate::job::{plan_pieces, Piece, NO_SAMPLE};
use bytemuck::{Pod, Zeroable};
use rayon::prelude::*;
use serde::Serialize;
use std::ops::Range;
use wgpu::util::DeviceExt;

/// The kernel's name (its file in shaders/).
pub const KERNEL: &str = "rk4_cavity";
/// Invocations per workgroup (one workgroup per member). Keep in sync with WG and
/// @workgroup_size in the shader.
pub const WORKGROUP_SIZE: u32 = 256;
/// Sample quantities (10 reduced entries of X and of Z, photon number, Fock tail) and the
/// invocations that share each sum (NQ and NPART in the shader; the twin's
/// `sample_outputs(.., SAMPLE_PARTS)`).
pub const SAMPLE_QUANTITIES: usize = 22;
pub const SAMPLE_PARTS: usize = WORKGROUP_SIZE as usize / SAMPLE_QUANTITIES;
/// Full steps per piece at most: long segments are split so that a dispatch can end inside one.
pub const STEPS_PER_PIECE: u64 = 256;
/// Element-steps (members x elements x RK4 steps, Z's counted) per dispatch: about 0.1 s on
/// a data-centre GPU, so no dispatch runs into a watchdog.
pub const ELEMENT_STEPS_PER_DISPATCH: u64 = 1 << 28;
/// Loop iterations one invocation runs per dispatch at most: a quarter of
/// [`LOOP_ITERATION_CAP`].
pub const LOOP_ITERATIONS_PER_DISPATCH: u64 = 16_384;
/// Loop iterations after which llvmpipe ends every loop of an invocation (its
/// LP_MAX_TGSI_LOOP_ITERATIONS).
pub const LOOP_ITERATION_CAP: u64 = 65_535;
/// Dispatches recorded per submit.
pub const DISPATCHES_PER_SUBMIT: usize = 8;
/// The largest buffer created whatever the adapter allows (u32 element indices stay exact).
pub const MAX_BUFFER_BYTES: u64 = 1 << 31;
/// Device memory one chunk may use by default (all its buffers, the readback copy included).
pub const DEFAULT_CHUNK_BYTES: u64 = 2 << 30;
/// Host bytes of initial states packed per upload.
const UPLOAD_BATCH_BYTES: u64 = 64 << 20;
/// vec2 per member at the end of `work`: the t = 0 coefficients of X and Z (REF_LEN).
pub const REF_LEN: u64 = 32;

const F_FIRST: u32 = 1;
const F_Z: u32 = 2;
/// The dispatch lies after `[protocol] switch_off`: the cell-cell coupling g is off
/// (`CavityCoeffs::uncoupled`).
const F_UNCOUPLED: u32 = 4;

/// The kernel's uniform block, one per dispatch (dynamic offset).
/// Keep in sync with `struct Params` in shaders/rk4_cavity.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub n_members: u32,
    pub n_fock: u32,
    pub dim: u32,
    pub n_elem: u32,
    pub n_samples: u32,
    pub piece_begin: u32,
    pub piece_end: u32,
    pub flags: u32,
    /// vec2 per member in `work`.
    pub member_stride: u32,
    /// vec2 per member in `mparams`.
    pub param_stride: u32,
    /// reals per (member, sample) in `out`.
    pub out_stride: u32,
    /// Offsets in `lookup` (u32 units) of the row table and the pieces.
    pub off_rows: u32,
    pub off_pieces: u32,
    /// Offsets in `consts` (real units) of the sqrt table and the step constants.
    pub off_sqrt: u32,
    pub off_steps: u32,
    /// RK4 steps of X in this dispatch.
    pub steps_expected: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 64);

/// Knobs for tests and benchmarks; the defaults are what runs use.
#[derive(Clone, Debug, Default)]
pub struct CavityGpuOptions {
    /// Cap on members per chunk (below what the device limits allow).
    pub max_members_per_chunk: Option<usize>,
    /// Device memory per chunk (default DEFAULT_CHUNK_BYTES).
    pub max_chunk_bytes: Option<u64>,
    /// Element-steps per dispatch (default ELEMENT_STEPS_PER_DISPATCH).
    pub element_steps_per_dispatch: Option<u64>,
    /// Loop iterations per invocation and dispatch (default LOOP_ITERATIONS_PER_DISPATCH;
    /// more than LOOP_ITERATION_CAP makes llvmpipe cut the run short, which the status check
    /// reports).
    pub loop_iterations_per_dispatch: Option<u64>,
}

/// The sizes the kernel works with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Layout {
    pub n_fock: usize,
    pub dim: usize,
    /// Upper-triangle elements per matrix, dim (dim + 1) / 2.
    pub n_elem: usize,
    /// Matrices per member in `work`: X, S_A, S_B, acc (+ Z).
    pub matrices: usize,
    /// vec2 per member in `work`, `mparams`; reals per sample in `out`.
    pub member_stride: usize,
    pub param_stride: usize,
    pub out_stride: usize,
}

impl Layout {
    pub fn new(n_fock: usize, evolve_z: bool) -> Layout {
        let dim = 4 * (n_fock + 1);
        let n_elem = dim * (dim + 1) / 2;
        let matrices = 4 + usize::from(evolve_z);
        Layout {
            n_fock,
            dim,
            n_elem,
            matrices,
            member_stride: matrices * n_elem + REF_LEN as usize,
            param_stride: dim + 3,
            out_stride: if evolve_z { 34 } else { 18 },
        }
    }
}

/// Bytes per member of each per-chunk buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MemberBytes {
    pub work: u64,
    pub params: u64,
    pub out: u64,
    /// The readback copy of `out`.
    pub staging: u64,
    pub total: u64,
}

/// How a job runs on a device: sizes, bytes per member, chunks. Goes into run.json.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CavityGpuPlan {
    pub kernel: &'static str,
    pub precision: Precision,
    pub workgroup_size: u32,
    pub layout: Layout,
    pub members: usize,
    pub samples: usize,
    pub steps_per_member: u64,
    pub bytes_per_member: MemberBytes,
    /// `consts` and `lookup`, shared by the members of a chunk.
    pub shared_bytes: u64,
    /// The largest buffer allowed: min(max_storage_buffer_binding_size, max_buffer_size, 2 GiB).
    pub buffer_cap_bytes: u64,
    pub chunk_budget_bytes: u64,
    /// The largest chunk the limits allow, and what sets it.
    pub max_members_per_chunk: usize,
    pub bound_by: String,
    pub members_per_chunk: usize,
    pub chunks: usize,
    /// Loop iterations per invocation (see the module doc) and the budget per dispatch.
    pub loop_costs: LoopCosts,
    pub loop_budget: u64,
    /// Pieces of the time grid and the dispatches of the largest chunk.
    pub pieces: usize,
    pub dispatches_per_chunk: usize,
}

impl CavityGpuPlan {
    /// The chunks: `chunks` consecutive ranges whose sizes differ by at most one.
    pub fn chunk_ranges(&self) -> Vec<Range<usize>> {
        let (n, k) = (self.members, self.chunks.max(1));
        let (base, extra) = (n / k, n % k);
        let mut out = Vec::with_capacity(k);
        let mut start = 0;
        for i in 0..k {
            let len = base + usize::from(i < extra);
            if len > 0 {
                out.push(start..start + len);
            }
            start += len;
        }
        out
    }
}

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

    /// The reduced Z of `member` at `sample`, with `evolve_z`.
    pub fn z_state(&self, member: usize, sample: usize) -> Option<CMat> {
        let off = (member * self.n_samples + sample) * 16;
        match (&self.z_initial, &self.z_deltas) {
            (Some(z0), Some(dz)) => Some(state_at(&z0[member], &dz[off..off + 16])),
            _ => None,
        }
    }
}



pub fn member_bytes(layout: &Layout, n_samples: usize, precision: Precision) -> MemberBytes {
    let rs = precision.bytes();
    let work = layout.member_stride as u64 * 2 * rs;
    let params = layout.param_stride as u64 * 2 * rs;
    let out = n_samples as u64 * layout.out_stride as u64 * rs;
    MemberBytes { work, params, out, staging: out, total: work + params + 2 * out }
}

/// Upper bounds of the loop iterations one invocation runs (a SIMD lane group runs every
/// branch any of its lanes takes, so the branches of a sample are summed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LoopCosts {
    /// One RK4 step (X, and Z with it): 4 stages over the owned elements, plus the step loop.
    pub step: u64,
    /// One sample (also the t = 0 reference on the first dispatch): the strided partial sums
    /// (the photon number's dim terms are the most), their totals, the Pauli sums of X and Z.
    pub sample: u64,
    /// Per piece: the pieces loop and the steps loop's exit.
    pub piece: u64,
}

pub fn loop_costs(layout: &Layout, evolve_z: bool) -> LoopCosts {
    let per_stage = layout.n_elem.div_ceil(WORKGROUP_SIZE as usize) as u64 + 1;
    let d = layout.n_fock as u64 + 1;
    LoopCosts {
        step: (4 * per_stage + 1) * (1 + u64::from(evolve_z)),
        sample: (layout.dim as u64).max(d).div_ceil(SAMPLE_PARTS as u64) + 1 + SAMPLE_PARTS as u64 + 1 + 2 * 21 + 8,
        piece: 2,
    }
}

/// The pieces of a schedule for this kernel: at most STEPS_PER_PIECE full steps, and few
/// enough that a piece fits a dispatch's loop budget.
fn cavity_pieces(job: &CavityJob, costs: &LoopCosts, loop_budget: u64) -> Vec<Piece> {
    let room = loop_budget.saturating_sub(2 * costs.sample + costs.piece + costs.step);
    plan_pieces(&job.schedule, (room / costs.step).clamp(1, STEPS_PER_PIECE))
}

/// Group pieces into dispatches: each within `loop_budget` loop iterations per invocation
/// (the t = 0 reference sample counted on the first) and `element_budget` element-steps
/// (`element_per_step` per RK4 step), at least one piece each. Returns [begin, end) pairs.
fn plan_cavity_dispatches(pieces: &[Piece], costs: &LoopCosts, loop_budget: u64, element_per_step: u64, element_budget: u64) -> Vec<(u32, u32)> {
    let cost = |p: &Piece| {
        let steps = piece_steps(p);
        (steps * costs.step + if p.sample != NO_SAMPLE { costs.sample } else { 0 } + costs.piece, steps * element_per_step)
    };
    group_pieces(pieces, cost, (loop_budget, element_budget), (costs.sample, 0))
}

/// Sizes of the shared tables: (lookup u32s, consts reals).
fn shared_len(layout: &Layout, n_pieces: usize) -> (u64, u64) {
    let lookup = layout.n_elem as u64 + 4 * layout.dim as u64 + 2 * n_pieces as u64;
    let consts = pad4(layout.n_fock as u64 + 2) + 4 * (1 + n_pieces as u64);
    (lookup, consts)
}

fn validate(job: &CavityJob) -> Result<()> {
    if job.n_fock == 0 || 4 * (job.n_fock + 1) >= 1 << 16 {
        return Err(QbatError::invalid("params.n_fock", format!("{} is outside what the GPU kernel indexes (1..16382)", job.n_fock)));
    }
    if let Some(p) = job.points.iter().find(|p| p.coeffs.n_fock != job.n_fock) {
        return Err(QbatError::invalid("params.n_fock", format!("every point must share n_fock = {}, one has {}", job.n_fock, p.coeffs.n_fock)));
    }
    if let Some(p) = job.member_point.iter().find(|&&p| p as usize >= job.points.len()) {
        return Err(QbatError::invalid("ensemble", format!("member point {p} out of range ({} points)", job.points.len())));
    }
    if job.schedule.sample_segments() != job.schedule.times.len() {
        return Err(QbatError::invalid("time", "schedule has a segment count different from its sample count"));
    }
    if job.schedule.times.len() >= u32::MAX as usize {
        return Err(QbatError::invalid("time.samples", "too many samples for one GPU run"));
    }
    Ok(())
}

/// Plan a job on a device with these limits: bytes per member, chunks, dispatches.
pub fn plan_cavity(job: &CavityJob, precision: Precision, limits: &wgpu::Limits, opts: &CavityGpuOptions) -> Result<CavityGpuPlan> {
    validate(job)?;
    let layout = Layout::new(job.n_fock, job.evolve_z);
    let n = job.member_point.len();
    let n_samples = job.schedule.times.len();
    let rs = precision.bytes();
    let b = member_bytes(&layout, n_samples, precision);
    let cap = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size).min(MAX_BUFFER_BYTES) / 32 * 32;
    let loop_budget = opts.loop_iterations_per_dispatch.unwrap_or(LOOP_ITERATIONS_PER_DISPATCH);
    let pieces = cavity_pieces(job, &loop_costs(&layout, job.evolve_z), loop_budget);
    let (lookup_len, consts_len) = shared_len(&layout, pieces.len());
    let shared_bytes = pad32(lookup_len * 4) + pad32(consts_len * rs);
    let too_large = |what: &str, need: u64| QbatError::TooLarge {
        field: "ensemble".into(),
        reason: format!("{what} needs {need} bytes, more than the adapter's largest buffer ({cap} bytes)"),
    };
    if lookup_len * 4 > cap || consts_len * rs > cap {
        return Err(too_large("the element table and the time grid", (lookup_len * 4).max(consts_len * rs)));
    }
    let mut m_max = limits.max_compute_workgroups_per_dimension as u64;
    let mut bound_by = "max_compute_workgroups_per_dimension (one workgroup per member)".to_string();
    for (what, per) in [("one member's state and RK4 scratch", b.work), ("one member's parameters", b.params), ("one member's samples", b.out)]
    {
        if per > cap {
            return Err(too_large(what, per));
        }
        if cap / per < m_max {
            m_max = cap / per;
            bound_by = format!("buffer size ({what}: {per} bytes per member, {cap} bytes per buffer)");
        }
    }
    let costs = loop_costs(&layout, job.evolve_z);
    if costs.step + 2 * costs.sample + costs.piece > LOOP_ITERATION_CAP {
        return Err(QbatError::TooLarge {
            field: "params.n_fock".into(),
            reason: format!("n_fock = {} needs {} loop iterations per invocation for one RK4 step, more than a dispatch may run", job.n_fock, costs.step),
        });
    }
    let budget = opts.max_chunk_bytes.unwrap_or(DEFAULT_CHUNK_BYTES);
    let fit = budget.saturating_sub(shared_bytes) / b.total;
    if fit < m_max {
        m_max = fit;
        bound_by = format!("device memory budget ({budget} bytes per chunk, {} bytes per member)", b.total);
    }
    if let Some(f) = opts.max_members_per_chunk {
        if (f as u64) < m_max {
            m_max = f as u64;
            bound_by = "max_members_per_chunk option".into();
        }
    }
    let m_max = m_max.max(1) as usize;
    let chunks = n.div_ceil(m_max);
    let members_per_chunk = if chunks == 0 { 0 } else { n.div_ceil(chunks) };
    let per_step = (members_per_chunk.max(1) * layout.n_elem * (1 + usize::from(job.evolve_z))) as u64;
    let element_budget = opts.element_steps_per_dispatch.unwrap_or(ELEMENT_STEPS_PER_DISPATCH);
    let dispatches = plan_cavity_dispatches(&pieces, &costs, loop_budget, per_step, element_budget);
    Ok(CavityGpuPlan {
        kernel: KERNEL,
        precision,
        workgroup_size: WORKGROUP_SIZE,
        layout,
        members: n,
        samples: n_samples,
        steps_per_member: job.schedule.total_steps(),
        bytes_per_member: b,
        shared_bytes,
        buffer_cap_bytes: cap,
        chunk_budget_bytes: budget,
        max_members_per_chunk: m_max,
        bound_by,
        members_per_chunk,
        chunks,
        loop_costs: costs,
        loop_budget,
        pieces: pieces.len(),
        dispatches_per_chunk: dispatches.len(),
    })
}


/// Store real `v` at real index `i` of a byte buffer in the working precision.
#[inline]
fn put(dst: &mut [u8], i: usize, v: f64, precision: Precision) {
    match precision {
        Precision::F32 => dst[4 * i..4 * i + 4].copy_from_slice(&(v as f32).to_ne_bytes()),
        Precision::F64 => dst[8 * i..8 * i + 8].copy_from_slice(&v.to_ne_bytes()),
    }
}




/// Z(0) = (Y + Y^+)/2, Y = (I (x) h_B (x) I) rho0, at (r, c); h row-major 2x2 on cell 2.
fn z0_entry(rho0: &CMat, h: &[C64; 4], d: usize, r: usize, c: usize) -> C64 {
    // Y[r, c] = sum_b h[i2(r), b] rho0[(i1(r), b, n_r), c]
    let y = |r: usize, c: usize| {
        let (q, n) = (r / d, r % d);
        let (i1, i2) = (q >> 1, q & 1);
        (0..2).map(|b| h[2 * i2 + b] * rho0[((2 * i1 + b) * d + n, c)]).sum::<C64>()
    };
    (y(r, c) + y(c, r).conj()) * 0.5
}

/// Reduced (cell 1, cell 2) 4x4 matrix, row-major, of a full matrix given by entry: the sum
/// over n in order from zero, as the CPU engine forms it.
fn reduce(d: usize, entry: impl Fn(usize, usize) -> C64) -> [C64; 16] {
    std::array::from_fn(|k| (0..d).map(|n| entry((k / 4) * d + n, (k % 4) * d + n)).sum())
}

/// Pack member i's initial state (X and, with Z, Z(0)) into its `work` slot; return their
/// reduced matrices in f64.
fn pack_member(job: &CavityJob, layout: &Layout, i: usize, dst: &mut [u8], precision: Precision) -> ([C64; 16], Option<[C64; 16]>) {
    dst.fill(0);
    let (dim, d, ne) = (layout.dim, layout.n_fock + 1, layout.n_elem);
    let rho0 = (job.initial)(i);
    assert_eq!((rho0.nrows(), rho0.ncols()), (dim, dim), "initial state of member {i} is not {dim}x{dim}");
    let mut e = 0;
    for r in 0..dim {
        for c in r..dim {
            let z = rho0[(r, c)];
            put(dst, 2 * e, z.re, precision);
            put(dst, 2 * e + 1, z.im, precision);
            e += 1;
        }
    }
    let x0 = reduce(d, |r, c| rho0[(r, c)]);
    let z0 = job.evolve_z.then(|| {
        let h = &job.points[job.member_point[i] as usize].h_battery;
        let base = 4 * ne;
        let mut e = 0;
        for r in 0..dim {
            for c in r..dim {
                let z = z0_entry(&rho0, h, d, r, c);
                put(dst, 2 * (base + e), z.re, precision);
                put(dst, 2 * (base + e) + 1, z.im, precision);
                e += 1;
            }
        }
        reduce(d, |r, c| z0_entry(&rho0, h, d, r, c))
    });
    (x0, z0)
}

/// Run a cavity job on the GPU. `progress` gets the number of members done after each chunk.
pub fn run_cavity_gpu(
    ctx: &GpuContext,
    job: &CavityJob,
    precision: Precision,
    opts: &CavityGpuOptions,
    progress: &dyn Fn(u64),
) -> Result<CavityResult> {
    let plan = plan_cavity(job, precision, &ctx.info.limits, opts)?;
    let n_members = plan.members;
    let ns = plan.samples;
    let mut result = CavityResult {
        n_samples: ns,
        initial: Vec::with_capacity(n_members),
        z_initial: job.evolve_z.then(|| Vec::with_capacity(n_members)),
        deltas: vec![0.0; n_members * ns * 16],
        z_deltas: job.evolve_z.then(|| vec![0.0; n_members * ns * 16]),
        photon_number: vec![0.0; n_members * ns],
        fock_tail: vec![0.0; n_members * ns],
        plan: plan.clone(),
    };
    let pieces = cavity_pieces(job, &plan.loop_costs, plan.loop_budget);
    if n_members == 0 || pieces.is_empty() {
        return Ok(CavityResult { initial: vec![], z_initial: job.evolve_z.then(Vec::new), ..result });
    }
    let pipeline = ctx.pipeline(KERNEL, precision, &layout_entries(std::mem::size_of::<Params>() as u64))?;
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
    let mut consts: Vec<f64> = (0..=layout.n_fock + 1).map(|n| (n as f64).sqrt()).collect();
    consts.resize(pad4(consts.len() as u64) as usize, 0.0);
    let off_steps = consts.len() as u32;
    // (h, h/2, h/6) rounded as the twin rounds them: h in the working precision, then
    // h * 0.5 and h / 6 in it.
    let step_consts = |h: f64| -> [f64; 4] {
        match precision {
            Precision::F32 => {
                let h = h as f32;
                [h as f64, (h * 0.5) as f64, (h / 6.0) as f64, 0.0]
            }
            Precision::F64 => [h, h * 0.5, h / 6.0, 0.0],
        }
    };
    consts.extend(step_consts(job.schedule.dt));
    for p in &pieces {
        consts.extend(if p.h_last > 0.0 { step_consts(p.h_last) } else { [0.0; 4] });
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
        let out = runner.run(chunk.clone())?;
        for (k, i) in chunk.clone().enumerate() {
            let (x0, z0) = out.refs[k];
            result.initial.push(x0);
            if let (Some(zi), Some(z0)) = (result.z_initial.as_mut(), z0) {
                zi.push(z0);
            }
            for s in 0..ns {
                let o = &out.values[(k * ns + s) * layout.out_stride..(k * ns + s + 1) * layout.out_stride];
                result.deltas[(i * ns + s) * 16..(i * ns + s + 1) * 16].copy_from_slice(&o[..16]);
                let mut tail = 16;
                if let Some(dz) = result.z_deltas.as_mut() {
                    dz[(i * ns + s) * 16..(i * ns + s + 1) * 16].copy_from_slice(&o[16..32]);
                    tail = 32;
                }
                result.photon_number[i * ns + s] = o[tail];
                result.fock_tail[i * ns + s] = o[tail + 1];
            }
        }
        progress(chunk.end as u64);
    }
    Ok(result)
}

struct Shared {
    consts: wgpu::Buffer,
    lookup: wgpu::Buffer,
    off_rows: u32,
    off_pieces: u32,
    off_sqrt: u32,
    off_steps: u32,
}

struct ChunkOut {
    /// out_stride reals per (member, sample), chunk-local members
    values: Vec<f64>,
    /// f64 reduced X and Z at t = 0 per chunk-local member
    refs: Vec<([C64; 16], Option<[C64; 16]>)>,
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
    fn run(&self, chunk: Range<usize>) -> Result<ChunkOut> {
        let (ctx, job, precision, layout) = (self.ctx, self.job, self.precision, self.layout);
        let device = &ctx.device;
        let m = chunk.len();
        let ns = job.schedule.times.len();
        let rs = precision.bytes() as usize;

        // Per-member parameters: K's diagonal, then (lambda, g zeta), (g, kappa), (gamma, 0).
        let mut mp: Vec<f64> = Vec::with_capacity(m * layout.param_stride * 2);
        for i in chunk.clone() {
            let c = &job.points[job.member_point[i] as usize].coeffs;
            for z in k_diagonal(c) {
                mp.push(z.re);
                mp.push(z.im);
            }
            mp.extend_from_slice(&[c.lambda, c.g * c.zeta, c.g, c.kappa, c.gamma, 0.0]);
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
            let r: Vec<_> = part
                .par_chunks_mut(slot)
                .enumerate()
                .map(|(k, dst)| pack_member(job, &layout, chunk.start + start + k, dst, precision))
                .collect();
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
            .map(|(i, &(begin, end))| {
                Params {
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
                }
            })
            .collect();
        let (params_buf, ustride) = dispatch_uniforms(device, ctx.info.limits.min_uniform_buffer_offset_alignment as u64, &params);
        let bind_group = kernel_bind_group(device, &self.pipeline.layout, KERNEL, &params_buf, std::mem::size_of::<Params>() as u64, [&self.shared.consts, &self.shared.lookup, &mparams, &work, &out, &status]);

        for group in (0..dispatches.len()).collect::<Vec<_>>().chunks(DISPATCHES_PER_SUBMIT) {
            let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(KERNEL) });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(KERNEL), timestamp_writes: None });
                pass.set_pipeline(&self.pipeline.pipeline);
                for &i in group {
                    pass.set_bind_group(0, &bind_group, &[(i as u64 * ustride) as u32]);
                    pass.dispatch_workgroups(m as u32, 1, 1);
                }
            }
            ctx.queue.submit(Some(enc.finish()));
        }

        // Read back the samples and the status once.
        let sources = [("samples", &out), ("status", &status)];
        let staging = read_back(ctx, &sources)?;
        let view = staging[0].slice(..).get_mapped_range().map_err(|e| QbatError::Device(format!("mapping the samples: {e}")))?;
        let values = read_reals(&view, out_len, precision);
        drop(view);
        staging[0].unmap();
        let view = staging[1].slice(..).get_mapped_range().map_err(|e| QbatError::Device(format!("mapping the status: {e}")))?;
        let st: Vec<u32> = view.chunks_exact(4).take(2 * m).map(|c| u32::from_ne_bytes(c.try_into().expect("4 bytes"))).collect();
        drop(view);
        staging[1].unmap();
        for k in 0..m {
            let (pieces_done, short) = (st[2 * k] as usize, st[2 * k + 1]);
            if pieces_done != self.pieces.len() || short != 0 {
                return Err(QbatError::Device(format!(
                    "the {KERNEL} kernel stopped early on this adapter: member {} completed {pieces_done} of {} pieces ({short} invocations fell short); no results were kept",
                    chunk.start + k,
                    self.pieces.len()
                )));
            }
        }
        Ok(ChunkOut { values, refs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{CavityPoint, Schedule};
    use crate::job::CavityCoeffs;

    fn init(_: usize) -> CMat {
        CMat::zeros(4, 4)
    }

    fn job(members: usize, n_fock: usize, samples: usize, evolve_z: bool) -> CavityJob<'static> {
        let coeffs = CavityCoeffs { n_fock, wc: 1.0, wq: 1.0, lambda: 1.0, g: 0.2, zeta: 0.5, kappa: 0.1, gamma: 0.05 };
        let times: Vec<f64> = (0..samples).map(|i| i as f64 * 0.01).collect();
        CavityJob {
            n_fock,
            points: vec![CavityPoint { coeffs, h_battery: [C64::new(0.0, 0.0); 4] }],
            member_point: vec![0; members],
            initial: &init,
            schedule: Schedule::new(0.01, &times),
            evolve_z,
        }
    }

    fn lavapipe_limits() -> wgpu::Limits {
        wgpu::Limits { max_storage_buffer_binding_size: 128 << 20, max_buffer_size: 2 << 30, ..wgpu::Limits::default() }
    }

    #[test]
    fn bytes_per_member_for_the_cavity_100_shape() {
        // N = 20: dim 84, 3570 upper elements; f32: X, S_A, S_B, acc = 4 x 3570 x 8 bytes + 256.
        let l = Layout::new(20, false);
        assert_eq!((l.dim, l.n_elem), (84, 3570));
        let b = member_bytes(&l, 1001, Precision::F32);
        assert_eq!(b.work, (4 * 3570 + 32) * 8);
        assert_eq!(b.params, 87 * 8);
        assert_eq!(b.out, 1001 * 18 * 4);
        let lz = Layout::new(20, true);
        assert_eq!(member_bytes(&lz, 1, Precision::F64).work, (5 * 3570 + 32) * 16);
    }

    #[test]
    fn chunks_fit_the_limits_and_are_balanced() {
        let limits = lavapipe_limits();
        for (members, z, precision) in [(10_000, false, Precision::F32), (3_000, true, Precision::F64), (7, false, Precision::F32)] {
            let j = job(members, 20, 1001, z);
            let p = plan_cavity(&j, precision, &limits, &CavityGpuOptions::default()).unwrap();
            let ranges = p.chunk_ranges();
            assert_eq!(ranges.len(), p.chunks);
            assert_eq!(ranges.first().unwrap().start, 0);
            assert_eq!(ranges.last().unwrap().end, members);
            for w in ranges.windows(2) {
                assert_eq!(w[0].end, w[1].start);
                assert!(w[0].len().abs_diff(w[1].len()) <= 1);
            }
            for r in &ranges {
                let m = r.len() as u64;
                assert!(m <= p.max_members_per_chunk as u64);
                let b = p.bytes_per_member;
                for per in [b.work, b.params, b.out] {
                    assert!(pad32(m * per) <= p.buffer_cap_bytes);
                }
                assert!(m * b.total + p.shared_bytes <= DEFAULT_CHUNK_BYTES);
                assert!(m <= limits.max_compute_workgroups_per_dimension as u64);
            }
        }
        // Forced cap: 8 members at most 3 per chunk -> 3, 3, 2.
        let j = job(8, 4, 5, false);
        let opts = CavityGpuOptions { max_members_per_chunk: Some(3), ..Default::default() };
        let p = plan_cavity(&j, Precision::F32, &limits, &opts).unwrap();
        assert_eq!(p.chunk_ranges(), vec![0..3, 3..6, 6..8]);
        // The workgroup count binds for tiny members on a roomy device.
        let big = wgpu::Limits { max_storage_buffer_binding_size: 1 << 31, max_buffer_size: 1 << 40, ..limits };
        let j = job(100_000, 1, 1, false);
        let opts = CavityGpuOptions { max_chunk_bytes: Some(1 << 40), ..Default::default() };
        let p = plan_cavity(&j, Precision::F32, &big, &opts).unwrap();
        assert_eq!(p.max_members_per_chunk, 65_535);
        assert!(p.bound_by.contains("workgroups"));
    }

    #[test]
    fn a_member_larger_than_a_buffer_is_an_error() {
        let limits = wgpu::Limits { max_storage_buffer_binding_size: 1 << 20, ..lavapipe_limits() };
        let j = job(4, 100, 2, false);
        assert!(matches!(plan_cavity(&j, Precision::F64, &limits, &CavityGpuOptions::default()), Err(QbatError::TooLarge { .. })));
    }

    #[test]
    fn mixed_cutoffs_are_an_error() {
        let mut j = job(2, 4, 2, false);
        let mut p = j.points[0].clone();
        p.coeffs.n_fock = 5;
        j.points.push(p);
        j.member_point[1] = 1;
        assert!(plan_cavity(&j, Precision::F32, &lavapipe_limits(), &CavityGpuOptions::default()).is_err());
    }
}
