//! The two-qubit kernel's contract, shared by its host (`gpu::rk4_two_qubit`), its CPU twin
//! (`twin::rk4_two_qubit`) and the engine that builds its jobs: the job and result types, the
//! per-point constants, the measure codes and flag bits, and the piece schedule.
//!
//! Mirrored by `shaders/rk4_two_qubit.wgsl`: `KERNEL_MEASURES` is the shader's `M_*` list,
//! the `F_*` bits its flags, and `KernelPoint` its per-point constants. The test
//! `tests/layouts.rs` parses the shader with naga and checks both against this file.

use super::{Peak, Schedule};
use crate::measures::Measure::{self, *};
use bytemuck::{Pod, Zeroable};

/// Pauli coefficients of a 2x2 Hermitian H = h0 I + hx sx + hy sy + hz sz (project convention).
pub type Pauli2 = [f64; 4];

/// Two-qubit state in the Pauli basis: x[4a + b] = Tr(rho sigma_a (x) sigma_b),
/// a = charger, b = battery, sigma = (I, sx, sy, sz) in the project convention;
/// rho = (1/4) sum_ab x[4a + b] sigma_a (x) sigma_b, so x[0] = Tr rho.
pub type Pauli4 = [f64; 16];

/// One parameter point of a two-qubit ensemble.
#[derive(Clone, Debug, PartialEq)]
pub struct TwoQubitPoint {
    /// Row-major real generator: dx/dt = G x (the Lindblad equation in the Pauli basis).
    pub generator: [f64; 256],
    /// The generator with the charger-battery coupling off (`[protocol] switch_off`), for the
    /// steps after the schedule's switch-off segment; None where the run has no switch.
    pub generator_off: Option<Box<[f64; 256]>>,
    pub h_battery: Pauli2,
    pub h_charger: Pauli2,
    /// Phase-flip probability applied to each sample before the measures (spin-pair).
    pub dephasing: f64,
    /// `[[drive]]`: dx/dt = (G + sum_k c_k(t) G_k) x; empty for an undriven point. Every point
    /// of a job has the same number of drives.
    pub drives: Vec<PointDrive>,
}

pub use super::drive::{ENV_CONSTANT, ENV_GAUSSIAN, ENV_WINDOW, MAX_DRIVES};

/// One drive of a point in the twin's form: its coefficients and the generator of -i[O, .].
#[derive(Clone, Debug, PartialEq)]
pub struct PointDrive {
    /// Row-major generator of -i[O, .] in the Pauli basis (unit coefficient).
    pub generator: [f64; 256],
    pub coeffs: super::drive::DriveCoeffs,
}

#[derive(Clone, Debug)]
pub struct TwoQubitJob {
    pub points: Vec<TwoQubitPoint>,
    /// Parameter point of each member (index into `points`).
    pub member_point: Vec<u32>,
    /// Initial state of each member.
    pub initial: Vec<Pauli4>,
    pub schedule: Schedule,
    /// The closed-form measures the engine is asked for, in column order.
    pub measures: Vec<Measure>,
    /// Also return each member's state at every sample (for host-side eigen measures).
    pub keep_states: bool,
}

#[derive(Clone, Debug)]
pub struct TwoQubitResult {
    /// Column order of `values` (= the job's `measures`).
    pub measures: Vec<Measure>,
    /// values[(member * n_samples + sample) * n_measures + k]
    pub values: Vec<f64>,
    /// states[(member * n_samples + sample) * 16 + i], when asked for.
    pub states: Option<Vec<f64>>,
    /// peaks[member * 4 + k], k over PEAK_MEASURES.
    pub peaks: Vec<Peak>,
}

/// The measures the kernel computes; a measure's kernel code is its index here.
/// Keep in sync with the `M_*` constants in shaders/rk4_two_qubit.wgsl.
pub const KERNEL_MEASURES: [Measure; 27] = [
    EnergyB,
    EnergyC,
    StoredEnergyB,
    ErgotropyB,
    AntiergotropyB,
    CapacityB,
    CapacityC,
    PowerB,
    ErgotropicPowerB,
    EnergyVarianceB,
    EnergyFluctuationB,
    SteeringF3,
    BellChsh,
    CoherenceL1,
    ImaginarityL1,
    TextureB,
    Purity,
    EntropyB,
    TraceError,
    TextureC,
    ErgotropyC,
    AntiergotropyC,
    EnergyVarianceC,
    SmBRe,
    SmBIm,
    SmCRe,
    SmCIm,
];
pub const N_CODES: usize = KERNEL_MEASURES.len();

/// The kernel code of a measure, or None if the kernel does not compute it.
pub fn kernel_code(m: Measure) -> Option<u32> {
    KERNEL_MEASURES.iter().position(|&k| k == m).map(|i| i as u32)
}

/// Kernel flag bits (keep in sync with the `F_*` constants in shaders/rk4_two_qubit.wgsl).
pub const F_FIRST: u32 = 1;
pub const F_Z: u32 = 2;
pub const F_STATES: u32 = 4;
pub const F_BELL: u32 = 8;
pub const F_COHERENCE: u32 = 16;
pub const F_ENTROPY: u32 = 32;
pub const F_CHARGER: u32 = 64;
pub const F_TEXTURE: u32 = 128;

/// The codes computed only under `F_CHARGER`: energy_c, capacity_c and the charger block
/// (`charger_measures`: the charger's mirrors of the battery measures and both qubits' <s->).
pub const CHARGER_MEASURES: [Measure; 10] = [EnergyC, CapacityC, TextureC, ErgotropyC, AntiergotropyC, EnergyVarianceC, SmBRe, SmBIm, SmCRe, SmCIm];

/// What a job asks the kernel to do beyond stepping x.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelFlags {
    /// Evolve Z(t) = e^{Lt}[{H_B, rho0}/2] (only for energy_fluctuation_b).
    pub evolve_z: bool,
    pub keep_states: bool,
    pub bell: bool,
    pub coherence: bool,
    pub entropy: bool,
    /// Any of `CHARGER_MEASURES` (a square root and a dozen products a sample otherwise).
    pub charger: bool,
    /// texture_b (a square root a sample otherwise).
    pub texture: bool,
}

impl KernelFlags {
    pub fn for_job(job: &TwoQubitJob) -> KernelFlags {
        KernelFlags::for_measures(&job.measures, job.keep_states)
    }

    /// The flags of the kernel measures among `measures`.
    pub fn for_measures(measures: &[Measure], keep_states: bool) -> KernelFlags {
        let has = |m: Measure| measures.contains(&m);
        KernelFlags {
            evolve_z: has(EnergyFluctuationB),
            keep_states,
            bell: has(BellChsh),
            coherence: has(CoherenceL1) || has(ImaginarityL1),
            entropy: has(EntropyB),
            charger: CHARGER_MEASURES.iter().any(|&m| has(m)),
            texture: has(TextureB),
        }
    }

    /// The flag word of the kernel's Params (without F_FIRST).
    pub fn bits(&self) -> u32 {
        let mut b = 0;
        if self.evolve_z {
            b |= F_Z;
        }
        if self.keep_states {
            b |= F_STATES;
        }
        if self.bell {
            b |= F_BELL;
        }
        if self.coherence {
            b |= F_COHERENCE;
        }
        if self.entropy {
            b |= F_ENTROPY;
        }
        if self.charger {
            b |= F_CHARGER;
        }
        if self.texture {
            b |= F_TEXTURE;
        }
        b
    }
}

/// RK4 increment matrix D = P - I = A + A^2/2 + A^3/6 + A^4/24, A = hG (row-major, f64).
pub fn rk4_increment(g: &[f64; 256], h: f64) -> [f64; 256] {
    let a: [f64; 256] = g.map(|v| v * h);
    let mul = |x: &[f64; 256], y: &[f64; 256]| {
        let mut out = [0.0; 256];
        for i in 0..16 {
            for k in 0..16 {
                let xik = x[16 * i + k];
                if xik != 0.0 {
                    for j in 0..16 {
                        out[16 * i + j] += xik * y[16 * k + j];
                    }
                }
            }
        }
        out
    };
    // Horner: D = A (I + A/2 (I + A/3 (I + A/4))).
    let mut t = a.map(|v| v / 4.0);
    for div in [3.0, 2.0] {
        for i in 0..16 {
            t[17 * i] += 1.0;
        }
        t = mul(&a, &t).map(|v| v / div);
    }
    for i in 0..16 {
        t[17 * i] += 1.0;
    }
    mul(&a, &t)
}

/// A 16x16 generator's non-zero 4x4 tiles, for the driven stages. Tile (r, b) holds rows
/// 4r..4r + 4 (row quad r, one vec4 of the kernel's V16) and columns 4b..4b + 4 (block b).
/// Quad r's tiles that are not all zero are `quad_start[r]..quad_start[r + 1]`, in ascending
/// block order: `block[n]` = b and `value[n]` its four columns, `value[n][4 kk + j]` =
/// M[4r + j][4b + kk].
///
/// The dense matvec (`twin::matvec`) sums row i as y = d0, y = y + d1, y + d2, y + d3 with
/// d_b = ((p_4b + p_4b+1) + p_4b+2) + p_4b+3, p_k = M_ik x_k. Summed per quad as y = 0, then
/// y = y + d_b over the quad's listed tiles in order, each d_b as the dense one, the left-out
/// tiles (d_b = 0) drop out exactly (a + 0 = a): each row equals the dense one bit for bit, up
/// to the sign of an exact zero.
#[derive(Clone, Debug, PartialEq)]
pub struct SparseGenerator {
    pub quad_start: [u32; 5],
    pub block: Vec<u32>,
    pub value: Vec<[f64; 16]>,
}

impl SparseGenerator {
    /// From a row-major dense generator.
    pub fn from_dense(m: &[f64; 256]) -> SparseGenerator {
        let mut s = SparseGenerator { quad_start: [0; 5], block: vec![], value: vec![] };
        for r in 0..4 {
            for b in 0..4 {
                let v: [f64; 16] = std::array::from_fn(|e| m[16 * (4 * r + e % 4) + 4 * b + e / 4]);
                if v.iter().any(|&x| x != 0.0) {
                    s.block.push(b as u32);
                    s.value.push(v);
                }
            }
            s.quad_start[r + 1] = s.block.len() as u32;
        }
        s
    }
}

/// Per-point constants of the kernel, in f64 (cast to the working precision by the GPU host
/// and the twin alike).
#[derive(Clone, Debug, PartialEq)]
pub struct KernelPoint {
    /// RK4 increment for a full step dt.
    pub d: [f64; 256],
    /// Generator (for shortened steps).
    pub g: [f64; 256],
    pub hb: [f64; 4],
    pub hc: [f64; 4],
    /// Dephasing factors q = 1 - 2p and q^2.
    pub q: f64,
    pub q2: f64,
    /// |h_B| and |h_C| (Bloch-vector norms of the Hamiltonians).
    pub nhb: f64,
    pub nhc: f64,
    /// |h|^2 of H_B = h0 I + h.sigma (energy_fluctuation_b's Sigma^2).
    pub nhb2: f64,
}

impl KernelPoint {
    /// The constants of a point after `[protocol] switch_off`: the uncoupled generator (the
    /// same one where the point has none), everything else as `new`.
    pub fn uncoupled(p: &TwoQubitPoint, dt: f64) -> KernelPoint {
        let mut k = KernelPoint::new(p, dt);
        if let Some(g) = &p.generator_off {
            k.d = rk4_increment(g, dt);
            k.g = **g;
        }
        k
    }

    pub fn new(p: &TwoQubitPoint, dt: f64) -> KernelPoint {
        KernelPoint { d: rk4_increment(&p.generator, dt), g: p.generator, ..KernelPoint::measuring(p) }
    }

    /// The constants of the measures alone (d and g zero): for measuring states that were
    /// stepped elsewhere.
    pub fn measuring(p: &TwoQubitPoint) -> KernelPoint {
        let q = 1.0 - 2.0 * p.dephasing;
        let norm3 = |h: &[f64; 4]| (h[1] * h[1] + h[2] * h[2] + h[3] * h[3]).sqrt();
        let nhb = norm3(&p.h_battery);
        KernelPoint {
            d: [0.0; 256],
            g: [0.0; 256],
            hb: p.h_battery,
            hc: p.h_charger,
            q,
            q2: q * q,
            nhb,
            nhc: norm3(&p.h_charger),
            nhb2: p.h_battery[1] * p.h_battery[1] + p.h_battery[2] * p.h_battery[2] + p.h_battery[3] * p.h_battery[3],
        }
    }

    /// Dephasing mask: x_ab is scaled by q^(number of a, b in {x, y}).
    pub fn mask(&self) -> [f64; 16] {
        let row_outer = [1.0, self.q, self.q, 1.0];
        let row_inner = [self.q, self.q2, self.q2, self.q];
        let mut m = [0.0; 16];
        for a in 0..4 {
            let row = if a == 1 || a == 2 { row_inner } else { row_outer };
            m[4 * a..4 * a + 4].copy_from_slice(&row);
        }
        m
    }
}

// ---- the kernel's own layouts (shaders/rk4_two_qubit.wgsl) -------------------------------

/// Invocations per workgroup (`@workgroup_size` of the shader's entry point).
pub const WORKGROUP_SIZE: u32 = 64;
/// vec4s per point in `consts` (POINT_VEC4 in the shader).
pub const POINT_VEC4: u64 = 132;
/// A workgroup whose members do not all share one point (the `lookup` table).
pub const NO_POINT: u32 = u32::MAX;
/// `[[drive]]` in `consts` at `off_drives` (vec4s): (dt, 0, 0, 0), the start time of each
/// piece (scalars, padded to 4); at the vec4 index `lookup[off_tiles]`, per point (the used
/// points, then their uncoupled copies) DRIVE_VEC4_PER_DRIVE vec4s per drive,
/// (amplitude, frequency, phase, env code) and (env a, env b, 0, 0), then TILE_VEC4 per term
/// (G, then each G_k): the `SparseGenerator` tiles' values, four vec4 columns each. In
/// `lookup` from `off_tiles + 1`, per point and term TILE_TABLE u32s: the 5 quad starts and
/// the column block of each of the (at most 16) tiles.
pub const DRIVE_VEC4_PER_DRIVE: u32 = 2;
pub const TILE_VEC4: u32 = 64;
pub const TILE_TABLE: u32 = 21;
const _: () = assert!(TILE_VEC4 == 16 * 4 && TILE_TABLE == 5 + 16);
/// Output columns the Params uniform has room for.
pub const MAX_COLS: usize = 32;
/// The kernel's uniform block, one per dispatch (dynamic offset).
/// Mirrors `struct Params` in shaders/rk4_two_qubit.wgsl (checked by tests/layouts.rs).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub n_members: u32,
    pub n_samples: u32,
    pub n_cols: u32,
    pub piece_begin: u32,
    pub piece_end: u32,
    pub flags: u32,
    /// vec4s per member in `work`.
    pub work_stride: u32,
    /// Offset of the pieces in `lookup` (u32 units).
    pub off_pieces: u32,
    /// Offset of the sample times in `consts` (scalar units).
    pub off_times: u32,
    /// Offset of the pieces' shortened steps in `consts` (scalar units).
    pub off_hlast: u32,
    /// Offset in `lookup` of the per-workgroup shared point (or NO_POINT).
    pub off_wg_point: u32,
    /// Added to every point index: 0, or the number of used points for dispatches after
    /// `[protocol] switch_off` (their uncoupled copies follow the points in `consts`).
    pub point_offset: u32,
    /// RK4 steps of x in this dispatch (the kernel counts the steps it completed against it).
    pub steps_expected: u32,
    /// `[[drive]]`: drives per point (0: none), the drive block's vec4 offset in `consts` and
    /// the tile tables' offset in `lookup` (see `DRIVE_VEC4_PER_DRIVE`).
    pub n_drives: u32,
    pub off_drives: u32,
    pub off_tiles: u32,
    /// Kernel measure code of each column, 4 per row.
    pub cols: [[u32; 4]; 8],
}
const _: () = assert!(std::mem::size_of::<Params>() == 192);
const _: () = assert!(MAX_COLS == 4 * 8);
