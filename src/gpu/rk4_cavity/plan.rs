//! Sizing a cavity job for a device: the layout, bytes per member of each buffer, loop costs,
//! the pieces and their grouping into dispatches, and chunks that fit the adapter's limits.

use super::super::buffers::{group_pieces, loop_budget, pad32, pad4, piece_steps};
use super::super::Precision;
use super::KERNEL;
use crate::error::{QbatError, Result};
use crate::job::cavity::{DRIVE_SLOTS, DRIVE_VEC2, REF_LEN, SAMPLE_PARTS, WORKGROUP_FIXED_REALS, WORKGROUP_SIZE};
use crate::job::drive::MAX_DRIVES;
use crate::job::{plan_pieces, CavityJob, Piece, NO_SAMPLE};
use serde::Serialize;
use std::ops::Range;

/// Full steps per piece at most: long segments are split so that a dispatch can end inside one.
pub const STEPS_PER_PIECE: u64 = 256;
/// Element-steps (members x elements x RK4 steps, Z's counted) per dispatch: about 0.1 s on
/// a data-centre GPU, so no dispatch runs into a watchdog.
pub const ELEMENT_STEPS_PER_DISPATCH: u64 = 1 << 28;
/// Loop iterations one invocation runs per dispatch at most on a CPU-type adapter: a quarter of
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
pub(super) const UPLOAD_BATCH_BYTES: u64 = 64 << 20;
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
    /// Gather from device memory even where a stage's matrix fits workgroup memory (by default
    /// it is copied there first; the two give the same bits).
    pub no_workgroup_tile: bool,
}

/// Whether a stage's input matrix (n_elem complex elements) fits the adapter's workgroup
/// memory beside the kernel's other workgroup variables: the kernel then gathers from there
/// (`TILED`).
pub fn workgroup_tile(layout: &Layout, precision: Precision, limits: &wgpu::Limits) -> bool {
    (2 * layout.n_elem as u64 + WORKGROUP_FIXED_REALS as u64) * precision.bytes() <= u64::from(limits.max_compute_workgroup_storage_size)
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
    /// `[[drive]]`s per member.
    pub n_drives: usize,
    /// vec2 per member in `work`, `mparams`; reals per sample in `out`.
    pub member_stride: usize,
    pub param_stride: usize,
    pub out_stride: usize,
}

impl Layout {
    pub fn new(n_fock: usize, evolve_z: bool, n_drives: usize) -> Layout {
        let dim = 4 * (n_fock + 1);
        let n_elem = dim * (dim + 1) / 2;
        let matrices = 4 + usize::from(evolve_z);
        Layout {
            n_fock,
            dim,
            n_elem,
            matrices,
            n_drives,
            member_stride: matrices * n_elem + REF_LEN as usize,
            param_stride: dim + 3 + DRIVE_VEC2 * n_drives,
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
    /// Whether each stage gathers from a copy of its matrix in workgroup memory.
    pub workgroup_tile: bool,
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
    /// One RK4 step (X, and Z with it): 4 stages over the owned elements (twice with the
    /// workgroup tile: the copy, then the stage), plus the step loop,
    /// plus with drives the step's coefficients (per drive three c(t), each through
    /// drive_exp's 7-iteration loop).
    pub step: u64,
    /// One sample (also the t = 0 reference on the first dispatch): the strided partial sums
    /// (the photon number's dim terms are the most), their totals, the Pauli sums of X and Z.
    pub sample: u64,
    /// Per piece: the pieces loop and the steps loop's exit.
    pub piece: u64,
}

/// `tiled`: each stage first copies its matrix into workgroup memory, a second loop over the
/// owned elements.
pub fn loop_costs(layout: &Layout, evolve_z: bool, tiled: bool) -> LoopCosts {
    let per_stage = (layout.n_elem.div_ceil(WORKGROUP_SIZE as usize) as u64 + 1) * (1 + u64::from(tiled));
    let d = layout.n_fock as u64 + 1;
    let drives = layout.n_drives as u64;
    // drive_step: its zeroing loop (3 + 1), the drives loop (n + 1), three drive_exp loops of
    // 7 (+ 1) per drive.
    let drive_step = if drives > 0 { 5 + drives * (1 + 3 * 8) } else { 0 };
    LoopCosts {
        step: (4 * per_stage + 1) * (1 + u64::from(evolve_z)) + drive_step,
        sample: (layout.dim as u64).max(d).div_ceil(SAMPLE_PARTS as u64) + 1 + SAMPLE_PARTS as u64 + 1 + 2 * 21 + 8,
        piece: 2,
    }
}

/// `[[drive]]`s per member of a job (every point has as many).
pub fn job_drives(job: &CavityJob) -> usize {
    job.points.first().map_or(0, |p| p.drives.len())
}

/// The pieces of a schedule for this kernel: at most STEPS_PER_PIECE full steps, and few
/// enough that a piece fits a dispatch's loop budget.
pub(super) fn cavity_pieces(job: &CavityJob, costs: &LoopCosts, loop_budget: u64) -> Vec<Piece> {
    let room = loop_budget.saturating_sub(2 * costs.sample + costs.piece + costs.step);
    plan_pieces(&job.schedule, (room / costs.step).clamp(1, STEPS_PER_PIECE))
}

/// Group pieces into dispatches: each within `loop_budget` loop iterations per invocation
/// (the t = 0 reference sample counted on the first) and `element_budget` element-steps
/// (`element_per_step` per RK4 step), at least one piece each. Returns [begin, end) pairs.
pub(super) fn plan_cavity_dispatches(pieces: &[Piece], costs: &LoopCosts, loop_budget: u64, element_per_step: u64, element_budget: u64) -> Vec<(u32, u32)> {
    let cost = |p: &Piece| {
        let steps = piece_steps(p);
        (steps * costs.step + if p.sample != NO_SAMPLE { costs.sample } else { 0 } + costs.piece, steps * element_per_step)
    };
    group_pieces(pieces, cost, (loop_budget, element_budget), (costs.sample, 0))
}

/// Sizes of the shared tables: (lookup u32s, consts reals). lookup: the element table, the
/// row table, (n_full, sample) per piece, the drives' envelope codes; consts: sqrt(0..=N+1)
/// (padded to 4), the step constants, the pieces' start times (padded to 4), the drives' slot
/// weights.
pub(super) fn shared_len(layout: &Layout, n_pieces: usize) -> (u64, u64) {
    let n = n_pieces as u64;
    let drives = layout.n_drives as u64;
    let lookup = layout.n_elem as u64 + 4 * layout.dim as u64 + 2 * n + drives;
    let consts = pad4(layout.n_fock as u64 + 2) + 4 * (1 + n) + pad4(n) + DRIVE_SLOTS as u64 * drives;
    (lookup, consts)
}

pub(super) fn validate(job: &CavityJob) -> Result<()> {
    if job.n_fock == 0 || 4 * (job.n_fock + 1) >= 1 << 16 {
        return Err(QbatError::invalid("params.n_fock", format!("{} is outside what the GPU kernel indexes (1..16382)", job.n_fock)));
    }
    if let Some(p) = job.points.iter().find(|p| p.coeffs.n_fock != job.n_fock) {
        return Err(QbatError::invalid("params.n_fock", format!("every point must share n_fock = {}, one has {}", job.n_fock, p.coeffs.n_fock)));
    }
    let n_drives = job.points.first().map_or(0, |p| p.drives.len());
    if n_drives > MAX_DRIVES || job.points.iter().any(|p| p.drives.len() != n_drives) {
        return Err(QbatError::invalid("drive", format!("every point must have the same number of drives, at most {MAX_DRIVES}")));
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
/// `software`: a CPU-type adapter, whose loop cap (`buffers::loop_budget`) sizes the pieces and
/// dispatches and bounds the cutoff; a GPU's dispatches are bounded by their element-steps.
pub fn plan_cavity(job: &CavityJob, precision: Precision, limits: &wgpu::Limits, software: bool, opts: &CavityGpuOptions) -> Result<CavityGpuPlan> {
    validate(job)?;
    let layout = Layout::new(job.n_fock, job.evolve_z, job_drives(job));
    let n = job.member_point.len();
    let n_samples = job.schedule.times.len();
    let rs = precision.bytes();
    let b = member_bytes(&layout, n_samples, precision);
    let cap = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size).min(MAX_BUFFER_BYTES) / 32 * 32;
    let loop_budget = opts.loop_iterations_per_dispatch.unwrap_or(loop_budget(software, LOOP_ITERATIONS_PER_DISPATCH));
    let tiled = !opts.no_workgroup_tile && workgroup_tile(&layout, precision, limits);
    let costs = loop_costs(&layout, job.evolve_z, tiled);
    let pieces = cavity_pieces(job, &costs, loop_budget);
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
    for (what, per) in [("one member's state and RK4 scratch", b.work), ("one member's parameters", b.params), ("one member's samples", b.out)] {
        if per > cap {
            return Err(too_large(what, per));
        }
        if cap / per < m_max {
            m_max = cap / per;
            bound_by = format!("buffer size ({what}: {per} bytes per member, {cap} bytes per buffer)");
        }
    }
    if costs.step + 2 * costs.sample + costs.piece > super::super::buffers::loop_budget(software, LOOP_ITERATION_CAP) {
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
        workgroup_tile: tiled,
        pieces: pieces.len(),
        dispatches_per_chunk: dispatches.len(),
    })
}

/// Store real `v` at real index `i` of a byte buffer in the working precision.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::CavityCoeffs;
    use crate::job::{CavityPoint, Schedule};
    use crate::linalg::{CMat, C64};

    fn init(_: usize) -> CMat {
        CMat::zeros(4, 4)
    }

    fn job(members: usize, n_fock: usize, samples: usize, evolve_z: bool) -> CavityJob<'static> {
        let coeffs = CavityCoeffs { n_fock, wc: 1.0, wq: 1.0, lambda: 1.0, g: 0.2, zeta: 0.5, kappa: 0.1, gamma: 0.05 };
        let times: Vec<f64> = (0..samples).map(|i| i as f64 * 0.01).collect();
        CavityJob {
            n_fock,
            points: vec![CavityPoint { coeffs, h_battery: [C64::new(0.0, 0.0); 4], drives: vec![] }],
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
        let l = Layout::new(20, false, 0);
        assert_eq!((l.dim, l.n_elem), (84, 3570));
        let b = member_bytes(&l, 1001, Precision::F32);
        assert_eq!(b.work, (4 * 3570 + 32) * 8);
        assert_eq!(b.params, 87 * 8);
        assert_eq!(b.out, 1001 * 18 * 4);
        let lz = Layout::new(20, true, 0);
        assert_eq!(member_bytes(&lz, 1, Precision::F64).work, (5 * 3570 + 32) * 16);
    }

    #[test]
    fn chunks_fit_the_limits_and_are_balanced() {
        let limits = lavapipe_limits();
        for (members, z, precision) in [(10_000, false, Precision::F32), (3_000, true, Precision::F64), (7, false, Precision::F32)] {
            let j = job(members, 20, 1001, z);
            let p = plan_cavity(&j, precision, &limits, true, &CavityGpuOptions::default()).unwrap();
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
        let p = plan_cavity(&j, Precision::F32, &limits, true, &opts).unwrap();
        assert_eq!(p.chunk_ranges(), vec![0..3, 3..6, 6..8]);
        // The workgroup count binds for tiny members on a roomy device.
        let big = wgpu::Limits { max_storage_buffer_binding_size: 1 << 31, max_buffer_size: 1 << 40, ..limits };
        let j = job(100_000, 1, 1, false);
        let opts = CavityGpuOptions { max_chunk_bytes: Some(1 << 40), ..Default::default() };
        let p = plan_cavity(&j, Precision::F32, &big, true, &opts).unwrap();
        assert_eq!(p.max_members_per_chunk, 65_535);
        assert!(p.bound_by.contains("workgroups"));
    }

    /// A stage's matrix goes into workgroup memory exactly where it fits beside the kernel's
    /// other workgroup variables (n_fock 20: 3,570 complex elements, 30,784 bytes in f32 with
    /// them), and a tiled stage costs its copy loop too.
    #[test]
    fn the_tile_is_used_where_it_fits_the_workgroup_memory() {
        let j = job(4, 20, 3, false);
        let plan_with = |bytes: u32, precision| {
            let limits = wgpu::Limits { max_compute_workgroup_storage_size: bytes, ..lavapipe_limits() };
            plan_cavity(&j, precision, &limits, false, &CavityGpuOptions::default()).unwrap()
        };
        assert!(plan_with(30_784, Precision::F32).workgroup_tile);
        assert!(!plan_with(30_783, Precision::F32).workgroup_tile);
        // f64 at n_fock 20 needs 61,568 bytes: not in the 48 KiB most GPUs give
        assert!(!plan_with(49_152, Precision::F64).workgroup_tile);
        assert!(plan_with(61_568, Precision::F64).workgroup_tile);
        let limits = wgpu::Limits { max_compute_workgroup_storage_size: 1 << 20, ..lavapipe_limits() };
        let tile = |no_workgroup_tile, software| {
            plan_cavity(&j, Precision::F32, &limits, software, &CavityGpuOptions { no_workgroup_tile, ..Default::default() }).unwrap().workgroup_tile
        };
        // on GPUs and software adapters alike, unless asked not to
        assert_eq!([tile(false, false), tile(false, true), tile(true, false), tile(true, true)], [true, true, false, false]);
        let (tiled, gathered) = (plan_with(30_784, Precision::F32).loop_costs, plan_with(30_783, Precision::F32).loop_costs);
        let per_stage = 3570u64.div_ceil(WORKGROUP_SIZE as u64) + 1;
        assert_eq!(tiled.step - gathered.step, 4 * per_stage);
    }

    #[test]
    fn a_member_larger_than_a_buffer_is_an_error() {
        let limits = wgpu::Limits { max_storage_buffer_binding_size: 1 << 20, ..lavapipe_limits() };
        let j = job(4, 100, 2, false);
        assert!(matches!(plan_cavity(&j, Precision::F64, &limits, true, &CavityGpuOptions::default()), Err(QbatError::TooLarge { .. })));
    }

    /// The loop cap binds on a software adapter only: there a long run of one sample is cut
    /// into dispatches of at most LOOP_ITERATIONS_PER_DISPATCH loop iterations; on a GPU its
    /// dispatches are bounded by their element-steps alone.
    #[test]
    fn loop_caps_bind_on_a_software_adapter_only() {
        let mut j = job(4, 4, 2, false);
        j.schedule = Schedule::new(0.01, &[0.0, 2000.0]);
        // (the same loop costs on both: no tile, which the GPU would otherwise take)
        let untiled = CavityGpuOptions { no_workgroup_tile: true, ..Default::default() };
        let [sw, hw] = [true, false].map(|software| plan_cavity(&j, Precision::F32, &lavapipe_limits(), software, &untiled).unwrap());
        assert_eq!((sw.loop_budget, hw.loop_budget), (LOOP_ITERATIONS_PER_DISPATCH, 32 * LOOP_ITERATIONS_PER_DISPATCH));
        let steps = j.schedule.total_steps();
        assert!(sw.dispatches_per_chunk as u64 >= steps * sw.loop_costs.step / LOOP_ITERATIONS_PER_DISPATCH, "{sw:?}");
        // 4 members x 210 elements x 200,000 steps fit one dispatch's element-steps: on a GPU the
        // loop budget alone cuts them, into 32 times fewer dispatches
        assert!(4 * hw.layout.n_elem as u64 * steps <= ELEMENT_STEPS_PER_DISPATCH);
        assert!(hw.dispatches_per_chunk * 32 <= sw.dispatches_per_chunk + 32 && hw.dispatches_per_chunk > 1, "{hw:?} against {sw:?}");
        // a cutoff whose single step overruns the software cap is refused there only
        let big = job(1, 600, 2, true);
        let roomy = wgpu::Limits { max_storage_buffer_binding_size: 1 << 31, max_buffer_size: 1 << 40, ..lavapipe_limits() };
        let opts = CavityGpuOptions { max_chunk_bytes: Some(1 << 40), ..Default::default() };
        assert!(matches!(plan_cavity(&big, Precision::F32, &roomy, true, &opts), Err(QbatError::TooLarge { field, .. }) if field == "params.n_fock"));
        assert!(plan_cavity(&big, Precision::F32, &roomy, false, &opts).is_ok());
    }

    #[test]
    fn mixed_cutoffs_are_an_error() {
        let mut j = job(2, 4, 2, false);
        let mut p = j.points[0].clone();
        p.coeffs.n_fock = 5;
        j.points.push(p);
        j.member_point[1] = 1;
        assert!(plan_cavity(&j, Precision::F32, &lavapipe_limits(), true, &CavityGpuOptions::default()).is_err());
    }
}
