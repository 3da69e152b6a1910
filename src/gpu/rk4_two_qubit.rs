//! Host side of `shaders/rk4_two_qubit.wgsl`: packs a [`TwoQubitJob`] into buffers, chunks the
//! members to fit the device, records the dispatches and reads the results back.
//!
//! Buffers per chunk of M members (`real` = 4 or 8 bytes; keep in sync with the shader):
//! - `consts`  (read):  per used point 132 vec4 (D, G, h_B, h_C, dephasing, |h|), with
//!   `[protocol] switch_off` followed by the same for each used point uncoupled (dispatches
//!   after the switch add `point_offset` to every point index), then the sample times and each
//!   piece's shortened step;
//! - `lookup`  (read):  member -> chunk-local point (u32), then (n_full, sample) per piece,
//!   then per workgroup the point all its members share (or NO_POINT);
//! - with `[[drive]]`, the drive block in `consts` (dt, each piece's start time, per point the
//!   drives' numbers and the non-zero tiles of G and each G_k) and the tile tables in `lookup`
//!   (`job::two_qubit::DRIVE_VEC4_PER_DRIVE`);
//! - `init`    (read):  16 reals per member;
//! - `work`    (rw):    x and its compensation term, the same for Z (only for
//!   energy_fluctuation_b), peak maxima and peak sample indices: 8 (+ 8) + 2 vec4 per member;
//! - `values`  (rw):    n_samples x n_cols reals per member;
//! - `states`  (rw):    n_samples x 16 reals per member, with keep_states or eigen-solve
//!   measures (then read by `measures_two_qubit`'s kernel on the device, and read back only
//!   with keep_states);
//! - the measures kernel's output (`gpu::measures_two_qubit`), with eigen-solve measures.
//!
//! Chunking: every buffer (and its staging copy) must fit the device's
//! max_storage_buffer_binding_size and max_buffer_size (and 2 GiB, so that u32 element indices
//! stay exact), and ceil(M / 64) workgroups must fit max_compute_workgroups_per_dimension.
//! The points are uploaded per chunk (only those its members use), so in the worst case one
//! point (528 reals) per member counts too. Members are independent, so the results do not
//! depend on the chunking, bit for bit.

use super::buffers::{
    check_completed, dispatch_uniforms, fill_rows_from_bytes, group_pieces, kernel_bind_group, layout_entries, loop_budget, pad32, pad4, piece_steps,
    read_back, read_reals, real_bytes, submit_dispatches, u32_bytes, Staging,
};
use super::context::GpuContext;
use super::Precision;
use crate::error::{QbatError, Result};
use crate::job::columns::ColumnSource;
use crate::job::measures_two_qubit::EigenJob;
use crate::job::two_qubit::{
    kernel_code, KernelFlags, KernelPoint, Params, SparseGenerator, DRIVE_VEC4_PER_DRIVE, F_FIRST, MAX_COLS, MAX_DRIVES, NO_POINT, POINT_VEC4, TILE_TABLE,
    TILE_VEC4, WORKGROUP_SIZE,
};
use crate::job::{piece_starts, plan_pieces, Piece};
use crate::job::{Peak, TwoQubitJob, TwoQubitResult};
use rayon::prelude::*;
use std::ops::Range;
use wgpu::util::DeviceExt;

/// The kernel's name (its file in shaders/).
pub const KERNEL: &str = "rk4_two_qubit";
/// Full steps per piece: long segments are split so that a dispatch can end inside one.
pub const STEPS_PER_PIECE: u64 = 1024;
/// Member-steps per dispatch, so that each dispatch stays short (about a second on a software
/// adapter, milliseconds on a GPU).
pub const MEMBER_STEPS_PER_DISPATCH: u64 = 1 << 25;
/// Dispatches recorded per submit.
pub const DISPATCHES_PER_SUBMIT: usize = 16;
/// The largest buffer created whatever the adapter allows (u32 element indices stay exact).
pub const MAX_BUFFER_BYTES: u64 = 1 << 31;
/// Sample indices are carried in `real` (peaks): exact in f32 up to 2^24.
pub const MAX_SAMPLES: usize = 1 << 24;

/// Knobs for tests and benchmarks; the defaults are what runs use.
#[derive(Clone, Debug, Default)]
pub struct GpuRunOptions {
    /// Cap on members per chunk (below what the device limits allow).
    pub max_members_per_chunk: Option<usize>,
    /// Member-steps per dispatch (default MEMBER_STEPS_PER_DISPATCH).
    pub member_steps_per_dispatch: Option<u64>,
}

/// vec4s per member in `work`: x and its compensation, the same for Z, two of peaks, and the
/// step count (pieces completed, dispatches that fell short). Keep in sync with run_member in shaders/rk4_two_qubit.wgsl.
fn work_stride(evolve_z: bool) -> u64 {
    8 + if evolve_z { 8 } else { 0 } + 3
}

/// Most full steps one invocation takes in one dispatch on a software adapter. Software Vulkan
/// (lavapipe) stops an invocation's loops after about 65k iterations without any error; 4,096
/// steps stay far below that, and the completed-steps count catches any driver that still cuts
/// a dispatch short.
pub const MAX_STEPS_PER_DISPATCH: u64 = 4096;

/// Bytes per member of each per-member buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberBytes {
    pub values: u64,
    pub states: u64,
    pub work: u64,
    pub init: u64,
    pub lookup: u64,
    /// One point's constants (counts per member only when members outnumber points).
    pub point: u64,
}

pub fn member_bytes(job: &TwoQubitJob, precision: Precision) -> MemberBytes {
    member_bytes_with(job, precision, false)
}

/// `member_bytes` where the states also live on the device for the measures kernel
/// (`device_states`), read back or not.
fn member_bytes_with(job: &TwoQubitJob, precision: Precision, device_states: bool) -> MemberBytes {
    let rs = precision.bytes();
    let n_samples = job.schedule.times.len() as u64;
    let flags = KernelFlags::for_job(job);
    MemberBytes {
        values: n_samples * job.measures.len() as u64 * rs,
        states: if job.keep_states || device_states { n_samples * 16 * rs } else { 0 },
        work: work_stride(flags.evolve_z) * 4 * rs,
        init: 16 * rs,
        lookup: 4 + 1,
        // with a switch-off, each point also brings its uncoupled copy; with drives, their
        // block in consts and tile tables in lookup
        point: (POINT_VEC4 * 4 * rs + drive_vec4(n_drives(job)) * 4 * rs + tile_table(n_drives(job)) * 4)
            * (1 + u64::from(job.schedule.switch_segment().is_some())),
    }
}

/// Drives per point (every point of a job has the same number).
fn n_drives(job: &TwoQubitJob) -> u64 {
    job.points.first().map_or(0, |p| p.drives.len() as u64)
}

/// vec4s of one point's drive block in `consts` (0 without drives).
fn drive_vec4(nd: u64) -> u64 {
    if nd == 0 {
        0
    } else {
        nd * DRIVE_VEC4_PER_DRIVE as u64 + (nd + 1) * TILE_VEC4 as u64
    }
}

/// u32s of one point's tile tables in `lookup` (0 without drives).
fn tile_table(nd: u64) -> u64 {
    if nd == 0 {
        0
    } else {
        (nd + 1) * TILE_TABLE as u64
    }
}

/// Loop iterations of one driven step, counted generously: the coefficient loop with its exp
/// bit loop per drive and stage time, and per stage the quads, terms and tiles; twice with Z.
fn driven_step_cost(nd: u64) -> u64 {
    2 * (1 + nd * 22 + 4 * (4 + 4 * (nd + 1) * 5))
}

/// Full steps per piece: driven steps take many loop iterations each, so their pieces are
/// shorter (a dispatch holds at least one piece).
fn steps_per_piece(job: &TwoQubitJob) -> u64 {
    match n_drives(job) {
        0 => STEPS_PER_PIECE,
        nd => driven_piece_steps(nd),
    }
}

/// Full steps per piece with `nd` drives: room is left for the piece's shortened step and its
/// sample (`loop_cost`) besides the full steps.
fn driven_piece_steps(nd: u64) -> u64 {
    let cost = driven_step_cost(nd);
    ((LOOP_BUDGET - (16 + cost + 512)) / cost).clamp(1, STEPS_PER_PIECE)
}

/// Reals in `consts` after the points: the times and the shortened steps, each padded to 4,
/// and with drives dt (a vec4) and each piece's start time.
fn consts_tail(n_samples: u64, n_pieces: u64) -> u64 {
    pad4(n_samples) + pad4(n_pieces) + 4 + pad4(n_pieces)
}

/// Split the members into chunks that fit the device (see the module doc), at most
/// `max_members_per_chunk` each when given.
pub fn plan_chunks(job: &TwoQubitJob, precision: Precision, limits: &wgpu::Limits, max_members_per_chunk: Option<usize>) -> Result<Vec<Range<usize>>> {
    plan_chunks_with(job, None, precision, limits, max_members_per_chunk)
}

/// `plan_chunks` with the eigen-solve measures on the device: the states stay there and the
/// measures kernel's output counts as one more per-member buffer.
fn plan_chunks_with(
    job: &TwoQubitJob,
    eigen: Option<&EigenJob>,
    precision: Precision,
    limits: &wgpu::Limits,
    max_members_per_chunk: Option<usize>,
) -> Result<Vec<Range<usize>>> {
    let n = job.initial.len();
    let rs = precision.bytes();
    let b = member_bytes_with(job, precision, eigen.is_some());
    let eigen_out = eigen.map_or(0, |e| super::measures_two_qubit::out_bytes_per_member(e, job.schedule.times.len(), precision));
    let cap = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size).min(MAX_BUFFER_BYTES) / 32 * 32;
    let n_pieces = plan_pieces(&job.schedule, steps_per_piece(job)).len() as u64;
    let too_large = |what: &str, need: u64| QbatError::TooLarge {
        field: "ensemble".into(),
        reason: format!("{what} needs {need} bytes, more than the adapter's largest buffer ({cap} bytes)"),
    };
    let mut m_max = limits.max_compute_workgroups_per_dimension as u64 * WORKGROUP_SIZE as u64;
    for (what, per) in [
        ("one member's values (samples x measures)", b.values),
        ("one member's states", b.states),
        ("work", b.work),
        ("init", b.init),
        ("one member's eigen-solve measures", eigen_out),
    ] {
        if per > cap {
            return Err(too_large(what, per));
        }
        if let Some(fit) = cap.checked_div(per) {
            m_max = m_max.min(fit);
        }
    }
    let pieces_bytes = n_pieces * 8 + 4;
    if pieces_bytes + b.lookup > cap {
        return Err(too_large("the time grid", pieces_bytes + b.lookup));
    }
    m_max = m_max.min((cap - pieces_bytes) / b.lookup);
    let tail = consts_tail(job.schedule.times.len() as u64, n_pieces) * rs;
    if tail + b.point > cap {
        return Err(too_large("the sample times", tail + b.point));
    }
    if job.points.len() as u64 * b.point + tail > cap {
        // Members may bring one point each.
        m_max = m_max.min((cap - tail) / b.point);
    }
    if let Some(f) = max_members_per_chunk {
        m_max = m_max.min(f.max(1) as u64);
    }
    let m_max = m_max.max(1) as usize;
    Ok((0..n).step_by(m_max).map(|s| s..(s + m_max).min(n)).collect())
}

fn validate(job: &TwoQubitJob) -> Result<()> {
    if job.member_point.len() != job.initial.len() {
        return Err(QbatError::invalid("ensemble", format!("{} members have a point but {} have a state", job.member_point.len(), job.initial.len())));
    }
    if let Some(p) = job.member_point.iter().find(|&&p| p as usize >= job.points.len()) {
        return Err(QbatError::invalid("ensemble", format!("member point {p} out of range ({} points)", job.points.len())));
    }
    let nd = n_drives(job) as usize;
    if nd > MAX_DRIVES || job.points.iter().any(|p| p.drives.len() != nd) {
        return Err(QbatError::invalid("drive", format!("every point needs the same number of drives, at most {MAX_DRIVES}")));
    }
    if job.measures.len() > MAX_COLS {
        return Err(QbatError::invalid("output.measures", format!("at most {MAX_COLS} measures per GPU run, got {}", job.measures.len())));
    }
    if job.schedule.times.len() > MAX_SAMPLES {
        return Err(QbatError::invalid("time.samples", format!("at most {MAX_SAMPLES} samples per GPU run, got {}", job.schedule.times.len())));
    }
    if job.schedule.sample_segments() != job.schedule.times.len() {
        return Err(QbatError::invalid("time", "schedule has a segment count different from its sample count"));
    }
    if job.schedule.switch_segment().is_some() && job.points.iter().any(|p| p.generator_off.is_none()) {
        return Err(QbatError::invalid("protocol.switch_off", "the schedule switches the coupling off but a point has no uncoupled generator"));
    }
    Ok(())
}

/// Group pieces into dispatches of about `budget` steps each and at most `loop_budget` loop
/// iterations (at least one piece each).
fn plan_dispatches(pieces: &[Piece], budget: u64, step_cost: u64, loop_budget: u64) -> Vec<(u32, u32)> {
    group_pieces(pieces, |p| (piece_steps(p), loop_cost(p, step_cost)), (budget, loop_budget), (0, 0))
}

/// Full steps per dispatch of a chunk of `members`: `member_steps` shared among them (at
/// least one step), at most MAX_STEPS_PER_DISPATCH on a software adapter (`buffers::loop_budget`
/// on a GPU). With the loop budget for `plan_dispatches`.
fn dispatch_budgets(member_steps: u64, members: u64, software: bool) -> (u64, u64) {
    let steps = (member_steps / members.max(1)).max(1);
    (steps.min(loop_budget(software, MAX_STEPS_PER_DISPATCH)), loop_budget(software, LOOP_BUDGET))
}

/// Loop iterations one piece costs an invocation, counted generously: a full step is
/// `step_cost` (2: one iteration of the step loop, its matvec unrolled; a driven step
/// `driven_step_cost`), a shortened step a few more, and a sample runs the measure loops
/// (Jacobi sweeps, the log2 range reduction, the column writes).
fn loop_cost(p: &Piece, step_cost: u64) -> u64 {
    step_cost * p.n_full as u64 + if p.h_last > 0.0 { 16 + step_cost } else { 0 } + if p.sample != crate::job::NO_SAMPLE { 512 } else { 0 }
}

/// Loop iterations per invocation per dispatch on a software adapter: software Vulkan
/// (lavapipe) stops an invocation's loops after about 65k, so dispatches stay at half that
/// (pieces are sized by it on every adapter).
const LOOP_BUDGET: u64 = 32_768;

/// Run a two-qubit job on the GPU. `progress` gets the number of members done after each chunk;
/// an Err from it (a cancelled run) stops the run there and is returned.
pub fn run_two_qubit_gpu(ctx: &GpuContext, job: &TwoQubitJob, precision: Precision, progress: &dyn Fn(u64) -> Result<()>) -> Result<TwoQubitResult> {
    run_two_qubit_gpu_with(ctx, job, precision, &GpuRunOptions::default(), progress)
}

/// [`run_two_qubit_gpu`] with explicit chunking and dispatch sizes (tests, benchmarks).
pub fn run_two_qubit_gpu_with(
    ctx: &GpuContext,
    job: &TwoQubitJob,
    precision: Precision,
    opts: &GpuRunOptions,
    progress: &dyn Fn(u64) -> Result<()>,
) -> Result<TwoQubitResult> {
    Ok(run_two_qubit_gpu_measured(ctx, job, None, precision, opts, progress)?.0)
}

/// [`run_two_qubit_gpu_with`], and with `eigen` the eigen-solve measures computed on the
/// device by the measures kernel from the states the integrator left there (read back only
/// with `job.keep_states`). Returns the result and, with `eigen`, its values
/// [(member * n_samples + sample) * n_eigen + k], column k = `eigen.measures[k]`.
pub fn run_two_qubit_gpu_measured(
    ctx: &GpuContext,
    job: &TwoQubitJob,
    eigen: Option<&EigenJob>,
    precision: Precision,
    opts: &GpuRunOptions,
    progress: &dyn Fn(u64) -> Result<()>,
) -> Result<(TwoQubitResult, Option<Vec<f64>>)> {
    validate(job)?;
    let eigen = eigen.filter(|e| !e.is_empty());
    let rows = job.initial.len() * job.schedule.times.len();
    // the job's columns, NaN where the kernel has no code (it writes code 0's value there)
    let job_columns: Vec<ColumnSource> =
        job.measures.iter().enumerate().map(|(k, &m)| if kernel_code(m).is_some() { ColumnSource::Integrator(k) } else { ColumnSource::Missing }).collect();
    let eigen_columns: Vec<ColumnSource> = (0..eigen.map_or(0, |e| e.measures.len())).map(ColumnSource::Eigen).collect();
    let mut values = vec![0.0; rows * job_columns.len()];
    let mut eigen_values = eigen.map(|_| vec![0.0; rows * eigen_columns.len()]);
    let mut sinks = vec![ValuesSink { out: &mut values, columns: &job_columns }];
    if let Some(ev) = eigen_values.as_mut() {
        sinks.push(ValuesSink { out: ev, columns: &eigen_columns });
    }
    let (peaks, states) = run_two_qubit_gpu_into(ctx, job, eigen, precision, opts, progress, &mut sinks)?;
    Ok((TwoQubitResult { measures: job.measures.clone(), values, states, peaks }, eigen_values))
}

/// Rows of a run's values that the read-back fills in place: `out` holds a row of
/// `columns.len()` values per (member, sample), member-major, column k from `columns[k]`
/// (`job::columns`; an eigen-solve column is NaN in a run without eigen-solve measures).
pub struct ValuesSink<'a> {
    pub out: &'a mut [f64],
    pub columns: &'a [ColumnSource],
}

/// Run a two-qubit job (and with `eigen` its eigen-solve measures, as
/// [`run_two_qubit_gpu_measured`]) writing the values of each chunk from its mapped read-back
/// straight into the rows of every sink: one pass per sink, in parallel, with no intermediate
/// buffer. Returns the peaks and, with `job.keep_states`, the states.
///
/// # Panics
/// When a sink's rows do not match the job (members x samples rows of its columns), or a
/// column names an integrator or eigen-solve column the job does not have: the caller's
/// contract, not the user's input.
pub fn run_two_qubit_gpu_into(
    ctx: &GpuContext,
    job: &TwoQubitJob,
    eigen: Option<&EigenJob>,
    precision: Precision,
    opts: &GpuRunOptions,
    progress: &dyn Fn(u64) -> Result<()>,
    sinks: &mut [ValuesSink<'_>],
) -> Result<(Vec<Peak>, Option<Vec<f64>>)> {
    validate(job)?;
    let eigen = eigen.filter(|e| !e.is_empty());
    if let Some(e) = eigen {
        super::measures_two_qubit::validate(e, job.points.len())?;
    }
    let n_members = job.initial.len();
    let n_samples = job.schedule.times.len();
    let n_eigen = eigen.map_or(0, |e| e.measures.len());
    for sink in sinks.iter() {
        assert_eq!(sink.out.len(), n_members * n_samples * sink.columns.len(), "a sink's rows do not match the job");
        for source in sink.columns {
            match *source {
                ColumnSource::Integrator(c) => assert!(c < job.measures.len(), "integrator column {c} of {}", job.measures.len()),
                ColumnSource::Eigen(c) => assert!(eigen.is_none() || c < n_eigen, "eigen-solve column {c} of {n_eigen}"),
                ColumnSource::Missing => {}
            }
        }
    }
    let sstride = if job.keep_states { n_samples * 16 } else { 0 };
    let mut states = if job.keep_states { Some(vec![0.0; n_members * sstride]) } else { None };
    let mut peaks = vec![Peak::default(); n_members * 4];
    let pieces = plan_pieces(&job.schedule, steps_per_piece(job));
    if n_members == 0 || pieces.is_empty() {
        return Ok((peaks, states));
    }
    let pipeline = ctx.pipeline(KERNEL, precision, &layout_entries(std::mem::size_of::<Params>() as u64))?;
    let chunks = plan_chunks_with(job, eigen, precision, &ctx.info.limits, opts.max_members_per_chunk)?;
    let mut cols = [[0u32; 4]; 8];
    for (k, m) in job.measures.iter().enumerate() {
        cols[k / 4][k % 4] = kernel_code(*m).unwrap_or(0);
    }
    let run = ChunkRunner {
        ctx,
        job,
        precision,
        pipeline: &pipeline,
        pieces: &pieces,
        // The states are written on the device for the measures kernel too.
        flags: KernelFlags { keep_states: job.keep_states || eigen.is_some(), ..KernelFlags::for_job(job) },
        eigen,
        cols,
        member_steps: opts.member_steps_per_dispatch.unwrap_or(MEMBER_STEPS_PER_DISPATCH).max(1),
    };
    for chunk in chunks {
        let out = run.run(chunk.clone(), sinks)?;
        let (a, b) = (chunk.start, chunk.end);
        if let (Some(all), Some(st)) = (states.as_mut(), out.states) {
            all[a * sstride..b * sstride].copy_from_slice(&st);
        }
        peaks[4 * a..4 * b].copy_from_slice(&out.peaks);
        progress(b as u64)?;
    }
    Ok((peaks, states))
}

struct ChunkOut {
    states: Option<Vec<f64>>,
    peaks: Vec<Peak>,
}

struct ChunkRunner<'a> {
    ctx: &'a GpuContext,
    job: &'a TwoQubitJob,
    precision: Precision,
    pipeline: &'a super::KernelPipeline,
    pieces: &'a [Piece],
    flags: KernelFlags,
    eigen: Option<&'a EigenJob>,
    cols: [[u32; 4]; 8],
    member_steps: u64,
}

impl ChunkRunner<'_> {
    /// Run members `chunk`: their values into their rows of every sink, their states and peaks returned.
    fn run(&self, chunk: Range<usize>, sinks: &mut [ValuesSink<'_>]) -> Result<ChunkOut> {
        let (ctx, job, precision) = (self.ctx, self.job, self.precision);
        let device = &ctx.device;
        let m = chunk.len();
        let n_samples = job.schedule.times.len();
        let n_cols = job.measures.len();
        let rs = precision.bytes();

        // Points used by this chunk, renumbered.
        let mut local = vec![u32::MAX; job.points.len()];
        let mut used: Vec<usize> = vec![];
        let mut lookup: Vec<u32> = Vec::with_capacity(m + 2 * self.pieces.len());
        for &g in &job.member_point[chunk.clone()] {
            let g = g as usize;
            if local[g] == u32::MAX {
                local[g] = used.len() as u32;
                used.push(g);
            }
            lookup.push(local[g]);
        }
        let off_pieces = lookup.len() as u32;
        for p in self.pieces {
            lookup.push(p.n_full);
            lookup.push(p.sample);
        }
        // Per workgroup: the point all its members share, or NO_POINT.
        let off_wg_point = lookup.len() as u32;
        for w in 0..m.div_ceil(WORKGROUP_SIZE as usize) {
            let members = &lookup[w * WORKGROUP_SIZE as usize..((w + 1) * WORKGROUP_SIZE as usize).min(m)];
            let first = members[0];
            lookup.push(if members.iter().all(|&p| p == first) { first } else { NO_POINT });
        }
        // The used points; with a switch-off, then the same points uncoupled (point + n_used).
        let switched = self.pieces.iter().any(|p| p.uncoupled);
        let phases = 1 + usize::from(switched);
        let mut consts: Vec<f64> = Vec::with_capacity(phases * used.len() * 528 + consts_tail(n_samples as u64, self.pieces.len() as u64) as usize);
        // (a point each, on every core: an ensemble may bring a point per member)
        let coupled: Vec<KernelPoint> = used.par_iter().map(|&g| KernelPoint::new(&job.points[g], job.schedule.dt)).collect();
        let uncoupled: Vec<KernelPoint> = used.par_iter().filter(|_| switched).map(|&g| KernelPoint::uncoupled(&job.points[g], job.schedule.dt)).collect();
        for k in coupled.iter().chain(&uncoupled) {
            consts.extend_from_slice(&k.d);
            consts.extend_from_slice(&k.g);
            consts.extend_from_slice(&k.hb);
            consts.extend_from_slice(&k.hc);
            consts.extend_from_slice(&[k.q, k.q2, k.nhb, k.nhc, k.nhb2, 1.0, 0.0, 0.0]);
        }
        let off_times = consts.len() as u32;
        consts.extend_from_slice(&job.schedule.times);
        consts.resize(pad4(consts.len() as u64) as usize, 0.0);
        let off_hlast = consts.len() as u32;
        consts.extend(self.pieces.iter().map(|p| p.h_last));
        consts.resize(pad4(consts.len() as u64) as usize, 0.0);
        // [[drive]]: dt, the pieces' start times, then per point (coupled, then uncoupled) the
        // drives' numbers and the tiles of G and each G_k; their tables in lookup.
        let nd = n_drives(job) as usize;
        let off_drives = (consts.len() / 4) as u32;
        let off_tiles = lookup.len() as u32;
        if nd > 0 {
            consts.extend_from_slice(&[job.schedule.dt, 0.0, 0.0, 0.0]);
            consts.extend(piece_starts(&job.schedule, self.pieces));
            consts.resize(pad4(consts.len() as u64) as usize, 0.0);
            lookup.push((consts.len() / 4) as u32);
            let coupled = used.iter().map(|&g| (KernelPoint::new(&job.points[g], job.schedule.dt).g, g));
            let uncoupled = used.iter().filter(|_| switched).map(|&g| (KernelPoint::uncoupled(&job.points[g], job.schedule.dt).g, g));
            for (gen, g) in coupled.chain(uncoupled) {
                let drives = &job.points[g].drives;
                for d in drives.iter().map(|d| &d.coeffs) {
                    consts.extend_from_slice(&[d.amplitude, d.frequency, d.phase, d.env as f64, d.env_a, d.env_b, 0.0, 0.0]);
                }
                for m in std::iter::once(&gen).chain(drives.iter().map(|d| &d.generator)) {
                    let sparse = SparseGenerator::from_dense(m);
                    let base = consts.len();
                    for v in &sparse.value {
                        consts.extend_from_slice(v);
                    }
                    consts.resize(base + 4 * TILE_VEC4 as usize, 0.0);
                    lookup.extend_from_slice(&sparse.quad_start);
                    let base = lookup.len();
                    lookup.extend_from_slice(&sparse.block);
                    lookup.resize(base + 16, 0);
                }
            }
        }
        let init: Vec<f64> = job.initial[chunk.clone()].iter().flatten().copied().collect();

        let storage_init = |label: &str, contents: &[u8]| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some(label), contents, usage: wgpu::BufferUsages::STORAGE })
        };
        let consts_buf = storage_init("consts", &real_bytes(&consts, precision));
        let lookup_buf = storage_init("lookup", &u32_bytes(&lookup));
        let init_buf = storage_init("init", &real_bytes(&init, precision));
        let stride = work_stride(self.flags.evolve_z);
        let sizes = [
            ("work", m as u64 * stride * 4 * rs),
            ("values", (m * n_samples * n_cols) as u64 * rs),
            ("states", if self.flags.keep_states { (m * n_samples * 16) as u64 * rs } else { 0 }),
        ];
        let rw: Vec<wgpu::Buffer> = sizes
            .iter()
            .map(|(label, size)| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: pad32(*size),
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                })
            })
            .collect();

        // One Params per dispatch, at dynamic offsets.
        let wg = (m as u64).div_ceil(WORKGROUP_SIZE as u64);
        let (budget, loops) = dispatch_budgets(self.member_steps, wg * WORKGROUP_SIZE as u64, ctx.info.software);
        let step_cost = match n_drives(job) {
            0 => 2,
            nd => driven_step_cost(nd),
        };
        let dispatches = plan_dispatches(self.pieces, budget, step_cost, loops);
        let params: Vec<Params> = dispatches
            .iter()
            .enumerate()
            .map(|(i, &(begin, end))| Params {
                n_members: m as u32,
                n_samples: n_samples as u32,
                n_cols: n_cols as u32,
                piece_begin: begin,
                piece_end: end,
                flags: self.flags.bits() | if i == 0 { F_FIRST } else { 0 },
                work_stride: stride as u32,
                off_pieces,
                off_times,
                off_hlast,
                off_wg_point,
                point_offset: if self.pieces[begin as usize].uncoupled { used.len() as u32 } else { 0 },
                steps_expected: self.pieces[begin as usize..end as usize].iter().map(piece_steps).sum::<u64>() as u32,
                n_drives: nd as u32,
                off_drives,
                off_tiles,
                cols: self.cols,
            })
            .collect();
        let (params_buf, ustride) = dispatch_uniforms(device, ctx.info.limits.min_uniform_buffer_offset_alignment as u64, &params);
        let bind_group = kernel_bind_group(
            device,
            &self.pipeline.layout,
            KERNEL,
            &params_buf,
            std::mem::size_of::<Params>() as u64,
            [&consts_buf, &lookup_buf, &init_buf, &rw[0], &rw[1], &rw[2]],
        );

        submit_dispatches(ctx, self.pipeline, &bind_group, dispatches.len(), ustride, wg as u32, DISPATCHES_PER_SUBMIT, KERNEL)?;

        // The eigen-solve measures from the states on the device, queued after the integrator.
        let eigen_buf = match self.eigen {
            Some(e) => {
                let pts: Vec<&crate::job::TwoQubitPoint> = used.iter().map(|&g| &job.points[g]).collect();
                let used32: Vec<u32> = used.iter().map(|&g| g as u32).collect();
                Some(super::measures_two_qubit::record_measures(ctx, precision, &e.select(&used32), &pts, &lookup_buf, &rw[2], m, n_samples)?)
            }
            None => None,
        };

        // Read back work (peaks), values, the states only when asked for, and the eigen-solve
        // measures, once.
        let mut sources: Vec<(&str, &wgpu::Buffer)> = vec![("work", &rw[0]), ("values", &rw[1])];
        if job.keep_states {
            sources.push(("states", &rw[2]));
        }
        if let Some(b) = &eigen_buf {
            sources.push(("eigen values", b));
        }
        let mut staging = read_back(ctx, &sources)?;
        let read = |s: &mut Staging, n: usize| -> Result<Vec<f64>> {
            let out = read_reals(&s.view()?, n, precision);
            s.unmap();
            Ok(out)
        };
        let work = read(&mut staging[0], m * stride as usize * 4)?;

        let pk = (stride as usize - 3) * 4;
        let times = &job.schedule.times;
        // Every member must have completed every piece, and every dispatch all its steps.
        for i in 0..m {
            let base = i * stride as usize * 4 + pk + 8;
            check_completed(KERNEL, chunk.start + i, work[base] as usize, self.pieces.len(), work[base + 1] as u32)?;
        }
        let mut peaks = Vec::with_capacity(4 * m);
        for i in 0..m {
            let base = i * stride as usize * 4 + pk;
            for k in 0..4 {
                let idx = (work[base + 4 + k] as usize).min(times.len().saturating_sub(1));
                peaks.push(Peak { max: work[base + k], t_max: times.get(idx).copied().unwrap_or(0.0) });
            }
        }
        // The values and the eigen-solve measures go from the mapped read-back straight into
        // the sinks' rows of this chunk.
        let n_eigen = self.eigen.map_or(0, |e| e.measures.len());
        {
            let values = staging[1].view()?;
            let eigen = if eigen_buf.is_some() { Some(staging[sources.len() - 1].view()?) } else { None };
            let rows = chunk.start * n_samples..chunk.end * n_samples;
            for sink in sinks.iter_mut() {
                let width = sink.columns.len();
                let out = &mut sink.out[rows.start * width..rows.end * width];
                fill_rows_from_bytes(out, sink.columns, n_samples, (&values, n_cols), (eigen.as_deref(), n_eigen), precision);
            }
        }
        staging[1].unmap();
        if eigen_buf.is_some() {
            staging[sources.len() - 1].unmap();
        }
        // member-minor on the device ((sample * 4 + i) * m + member vec4s): member-major here
        let states = if job.keep_states { Some(member_major_states(&read(&mut staging[2], m * n_samples * 16)?, m, n_samples)) } else { None };
        Ok(ChunkOut { states, peaks })
    }
}

/// States read back member-minor, ((sample * 4 + i) * members + member) * 4 + j, as
/// member-major rows of 16: (member * samples + sample) * 16 + 4 i + j.
fn member_major_states(minor: &[f64], members: usize, samples: usize) -> Vec<f64> {
    use rayon::prelude::*;
    let mut out = vec![0.0; minor.len()];
    out.par_chunks_mut((16 * samples).max(1)).enumerate().for_each(|(member, rows)| {
        for (s, row) in rows.chunks_exact_mut(16).enumerate() {
            for (i, quad) in row.chunks_exact_mut(4).enumerate() {
                let at = ((s * 4 + i) * members + member) * 4;
                quad.copy_from_slice(&minor[at..at + 4]);
            }
        }
    });
    out
}

#[cfg(test)]
mod tests;
