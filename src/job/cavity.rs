//! The cavity kernel's contract, shared by its host (`gpu::rk4_cavity`), its CPU twin
//! (`twin::rk4_cavity`) and the engine: the job and point types, each member's coefficients,
//! K's diagonal and the row table. Mirrored by `shaders/rk4_cavity.wgsl` (the `ROW_*` bits);
//! `tests/layouts.rs` checks them against the shader with naga.

use super::Schedule;
use crate::linalg::{CMat, C64};
use bytemuck::{Pod, Zeroable};

/// One parameter point of a cavity ensemble: the structured engine's coefficients, the
/// battery Hamiltonian (2x2, row-major, on cell 2) for Z(0) = {H_B, rho0}/2, and its
/// `[[drive]]`s (every point of a job has the same number, in the same order).
#[derive(Clone, Debug, PartialEq)]
pub struct CavityPoint {
    pub coeffs: CavityCoeffs,
    pub h_battery: [C64; 4],
    pub drives: Vec<CavityDrive>,
}

/// The drive operators the structured engines apply, one slot each (a drive is a real
/// combination of them, `CavityDrive::weights`):
///   sx_1 sy_1 sz_1 (cell 1), sx_2 sy_2 sz_2 (cell 2), x_a = a + a^+, y_a = i(a^+ - a).
/// The cell operators flip or sign the cell's bit of q, the mode's move n by one: the same
/// bands as H's, so a drive costs a few gathers per element.
pub const DRIVE_SLOTS: usize = 8;
pub const DRIVE_SLOT_NAMES: [&str; DRIVE_SLOTS] = ["sx_1", "sy_1", "sz_1", "sx_2", "sy_2", "sz_2", "x_a", "y_a"];

/// One `[[drive]]` of a cavity point: c(t) = amplitude env(t) cos(frequency t + phase) (env by
/// code, `job::drive`), times O = sum_s weights[s] O_s over the slots (plus a multiple of the
/// identity, which commutes with everything and is dropped).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CavityDrive {
    pub coeffs: super::drive::DriveCoeffs,
    pub weights: [f64; DRIVE_SLOTS],
}

/// A `[[drive]]` of cavity-cells in the structured engines' form: a named operator is its slot
/// with weight 1; a matrix given in the config is projected on the slots (they are orthogonal
/// in the trace inner product, and orthogonal to the identity) and taken when the rest,
/// O - Tr(O)/dim I - sum_s w_s O_s, vanishes to 1e-12 of the largest entry of O - Tr(O)/dim I
/// (on the diagonal, also to 2 eps of O's largest diagonal entry: the rounding of a shift written
/// into each diagonal entry). None: the matrix is
/// outside the slots' span (the f64 reference integrates such a run).
pub fn cavity_drive(d: &crate::model::drive::Drive, n_fock: usize) -> Option<CavityDrive> {
    use crate::model::drive::named_operators;
    let mut weights = [0.0; DRIVE_SLOTS];
    if let Some(s) = d.name.as_deref().and_then(|n| DRIVE_SLOT_NAMES.iter().position(|x| *x == n)) {
        weights[s] = 1.0;
    } else {
        let space = crate::model::Space::Cavity { n_fock };
        let ops = named_operators(space);
        let dim = 4 * (n_fock + 1);
        if d.op.nrows() != dim || d.op.ncols() != dim {
            return None;
        }
        // O less its identity part, which sets the scale below: a shift of 1e12 beside a unit
        // part outside the slots let that part pass for rounding
        let mut rest = crate::linalg::traceless_part(&d.op);
        // relative to the matrix's own size, so that a small matrix with a large amplitude keeps
        // its part outside the slots
        let scale = rest.iter().map(|z| z.norm()).fold(0.0, f64::max);
        // A diagonal written as shift + value (`123456.789 + 0.3` in decimal) holds each entry
        // to its rounding, at most eps/2 of it, which no slot takes (the projection leaves at
        // most twice it): that much left on the diagonal is the input's own precision. Off the
        // diagonal a shift rounds nothing.
        let diagonal_rounding = 2.0 * f64::EPSILON * (0..dim).map(|i| d.op[(i, i)].norm()).fold(0.0, f64::max);
        for (s, name) in DRIVE_SLOT_NAMES.iter().enumerate() {
            let (_, o) = ops.iter().find(|(n, _)| n == name)?;
            // w = Tr(O_s O) / Tr(O_s O_s), real for Hermitian O_s and O (the slots are
            // traceless: the identity part adds nothing); Tr(A B) as sum_ij A_ij B_ji, O(dim^2).
            let tr = |a: &CMat, b: &CMat| -> f64 { a.iter().zip(b.transpose().iter()).map(|(x, y)| (x * y).re).sum() };
            let w = tr(o, &rest) / tr(o, o);
            weights[s] = w;
            rest -= o * C64::new(w, 0.0);
        }
        // the identity part the rounded mean of the diagonal left (the slots have none)
        let rest = crate::linalg::traceless_part(&rest);
        // (a NaN entry is never a combination of the slots)
        let within = |i: usize, j: usize| rest[(i, j)].norm() <= 1e-12 * scale + if i == j { diagonal_rounding } else { 0.0 };
        if !(0..dim).all(|i| (0..dim).all(|j| within(i, j))) {
            return None;
        }
    }
    Some(CavityDrive { coeffs: super::drive::DriveCoeffs::of(d), weights })
}

/// A cavity-cells ensemble for the GPU engine. Every point has the same cutoff `n_fock`.
/// Initial states are built on demand, chunk by chunk (a full state is dim^2 complex numbers,
/// too many to hold for a whole large ensemble).
pub struct CavityJob<'a> {
    pub n_fock: usize,
    pub points: Vec<CavityPoint>,
    /// Parameter point of each member (index into `points`); its length is the member count.
    pub member_point: Vec<u32>,
    /// Member i's initial density matrix, dim x dim, dim = 4 (n_fock + 1), Hermitian (the
    /// engine takes its upper triangle).
    pub initial: &'a (dyn Fn(usize) -> CMat + Sync),
    pub schedule: Schedule,
    /// Also evolve Z(t) = e^{Lt}[{H_B, rho0}/2] (for energy_fluctuation_b).
    pub evolve_z: bool,
}

impl std::fmt::Debug for CavityJob<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CavityJob")
            .field("n_fock", &self.n_fock)
            .field("points", &self.points.len())
            .field("members", &self.member_point.len())
            .field("samples", &self.schedule.times.len())
            .field("evolve_z", &self.evolve_z)
            .finish_non_exhaustive()
    }
}

/// The parameters of one cavity member, as the kernel holds them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CavityCoeffs {
    pub n_fock: usize,
    pub wc: f64,
    pub wq: f64,
    pub lambda: f64,
    pub g: f64,
    pub zeta: f64,
    pub kappa: f64,
    pub gamma: f64,
}

impl CavityCoeffs {
    pub fn dim(&self) -> usize {
        4 * (self.n_fock + 1)
    }

    /// The coefficients after `[protocol] switch_off`: the cell-cell coupling (g, and with it
    /// zeta's term) off; the cavity pump lambda and the dissipators stay (`OpenSystem::coupling`
    /// of cavity-cells).
    pub fn uncoupled(&self) -> CavityCoeffs {
        CavityCoeffs { g: 0.0, zeta: 0.0, ..*self }
    }
}

/// K's diagonal in f64, kd(q, n) = (-loss, -energy) at r = q (N+1) + n: what `CavityOps`
/// rounds to the working precision and what the GPU host uploads per member.
pub fn k_diagonal(c: &CavityCoeffs) -> Vec<C64> {
    let d = c.n_fock + 1;
    let mut kd = Vec::with_capacity(4 * d);
    for q in 0..4 {
        let (e1, e2) = ((q >> 1) as f64, (q & 1) as f64);
        let (z1, z2) = (2.0 * e1 - 1.0, 2.0 * e2 - 1.0);
        for n in 0..d {
            let energy = c.wc * n as f64 + 0.5 * c.wq * (z1 + z2);
            let loss = 0.5 * (c.kappa * n as f64 + c.gamma * (e1 + e2));
            kd.push(C64::new(-loss, -energy));
        }
    }
    kd
}

/// Bits of the kernel's row table (ROW_* in shaders/rk4_cavity.wgsl): the partner coefficient
/// is g zeta (else g); i_1 = 0; i_2 = 0; n < N; the Fock index n from bit ROW_N_SHIFT.
pub const ROW_FLIP: u32 = 1;
pub const ROW_E1_ZERO: u32 = 2;
pub const ROW_E2_ZERO: u32 = 4;
pub const ROW_TOP: u32 = 8;
pub const ROW_N_SHIFT: u32 = 16;

/// The kernel's row table, shared by every member of a cutoff: per row r = (q, n),
/// [partner row, band row (r itself where there is none), index into sqrt(0..=N+1) of the band
/// coefficient (0, so lambda sqrt(0) = 0, where there is none), bits]. It encodes
/// `CavityOps::kx_rows` and the conditions of the jump terms.
pub fn row_table(n_fock: usize) -> Vec<[u32; 4]> {
    let d = n_fock + 1;
    let mut rows = Vec::with_capacity(4 * d);
    for q in 0..4usize {
        for n in 0..d {
            let r = q * d + n;
            let partner = [3, 2, 1, 0][q] * d + n;
            let (band, sidx) = if q >= 2 {
                if n < n_fock {
                    ((q - 2) * d + n + 1, n + 1)
                } else {
                    (r, 0)
                }
            } else if n > 0 {
                ((q + 2) * d + n - 1, n)
            } else {
                (r, 0)
            };
            let mut bits = (n as u32) << ROW_N_SHIFT;
            if q == 0 || q == 3 {
                bits |= ROW_FLIP;
            }
            if q < 2 {
                bits |= ROW_E1_ZERO;
            }
            if q & 1 == 0 {
                bits |= ROW_E2_ZERO;
            }
            if n < n_fock {
                bits |= ROW_TOP;
            }
            rows.push([partner as u32, band as u32, sidx as u32, bits]);
        }
    }
    rows
}

// ---- the kernel's own layouts (shaders/rk4_cavity.wgsl) ------------------------------------

/// Invocations per workgroup (one workgroup per member). Mirrors WG and
/// `@workgroup_size` in the shader.
pub const WORKGROUP_SIZE: u32 = 256;
/// Sample quantities (10 reduced entries of X and of Z, photon number, Fock tail) and the
/// invocations that share each sum (NQ and NPART in the shader; the twin's
/// `sample_outputs(.., SAMPLE_PARTS)`).
pub const SAMPLE_QUANTITIES: usize = 22;
pub const SAMPLE_PARTS: usize = WORKGROUP_SIZE as usize / SAMPLE_QUANTITIES;
/// Workgroup memory the kernel holds besides its tile of a stage's matrix, in reals: `red`
/// (NQ complex sums) and `partial` (a complex partial sum per invocation).
pub const WORKGROUP_FIXED_REALS: usize = 2 * (SAMPLE_QUANTITIES + WORKGROUP_SIZE as usize);
/// vec2 per member at the end of `work`: the t = 0 coefficients of X and Z (REF_LEN).
pub const REF_LEN: u64 = 32;

pub const F_FIRST: u32 = 1;
pub const F_Z: u32 = 2;
/// The dispatch lies after `[protocol] switch_off`: the cell-cell coupling g is off
/// (`CavityCoeffs::uncoupled`).
pub const F_UNCOUPLED: u32 = 4;

/// The kernel's uniform block, one per dispatch (dynamic offset).
/// Mirrors `struct Params` in shaders/rk4_cavity.wgsl (checked by tests/layouts.rs).
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
    /// `[[drive]]`s per member (0: undriven; every step takes the undriven path).
    pub n_drives: u32,
    /// Offset in `lookup` of the drives' envelope codes (one u32 each).
    pub off_env: u32,
    /// Offsets in `consts` of the pieces' start times (one real each) and of the drives' slot
    /// weights (DRIVE_SLOTS reals each).
    pub off_starts: u32,
    pub off_weights: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 80);

/// vec2 per drive in a member's `mparams`, after its dim + 3 coefficients:
/// (amplitude, frequency), (phase, env_a), (env_b, 0).
pub const DRIVE_VEC2: usize = 3;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::drive::{named_operators, Drive, Envelope};

    fn drive(op: CMat, name: Option<&str>) -> Drive {
        Drive {
            op: std::sync::Arc::new(op),
            name: name.map(str::to_string),
            amplitude: 0.3,
            frequency: 1.2,
            phase: 0.1,
            envelope: Envelope::Gaussian { t0: 1.0, sigma: 0.5 },
        }
    }

    #[test]
    fn drives_map_onto_the_slots() {
        let n_fock = 4;
        let named = named_operators(crate::model::Space::Cavity { n_fock });
        let dim = 4 * (n_fock + 1);
        let mut combo = CMat::identity(dim, dim) * C64::new(0.7, 0.0);
        let mut want = [0.0; DRIVE_SLOTS];
        for (s, name) in DRIVE_SLOT_NAMES.iter().enumerate() {
            let o = &named.iter().find(|(n, _)| n == name).unwrap().1;
            // by name: the slot with weight 1, the numbers kept
            let d = cavity_drive(&drive(o.clone(), Some(name)), n_fock).unwrap();
            let mut unit = [0.0; DRIVE_SLOTS];
            unit[s] = 1.0;
            assert_eq!(d.weights, unit);
            let c = d.coeffs;
            assert_eq!((c.amplitude, c.frequency, c.phase, c.env, c.env_a, c.env_b), (0.3, 1.2, 0.1, crate::job::drive::ENV_GAUSSIAN, 1.0, 0.5));
            // as a matrix: the same weight
            let m = cavity_drive(&drive(o.clone(), None), n_fock).unwrap();
            assert_eq!(m.weights, unit, "{name}");
            want[s] = 0.25 * s as f64 - 0.8;
            combo += o * C64::new(want[s], 0.0);
        }
        let d = cavity_drive(&drive(combo, None), n_fock).unwrap();
        for (got, w) in d.weights.iter().zip(&want) {
            assert!((got - w).abs() < 1e-14, "{:?}", d.weights);
        }
        // sx_1 sx_2 flips both cells: outside the slots
        let sx1 = &named[0].1;
        let sx2 = &named[3].1;
        assert!(cavity_drive(&drive(sx1 * sx2, None), n_fock).is_none());
        // a diagonal photon-number term: outside too
        let xa = &named[6].1;
        assert!(cavity_drive(&drive(xa * xa, None), n_fock).is_none());
        // small entries are judged against their own size (the amplitude can be large)
        assert!(cavity_drive(&drive(sx1 * sx2 * C64::new(1e-13, 0.0), None), n_fock).is_none());
        let tiny = cavity_drive(&drive(sx1 * C64::new(1e-13, 0.0), None), n_fock).unwrap();
        assert!((tiny.weights[0] - 1e-13).abs() < 1e-27, "{:?}", tiny.weights);
        // the zero matrix is a (vanishing) combination of the slots
        assert_eq!(cavity_drive(&drive(CMat::zeros(dim, dim), None), n_fock).unwrap().weights, [0.0; DRIVE_SLOTS]);
    }

    /// A multiple of the identity beside the matrix sets neither its weights nor the scale of
    /// what is left outside the slots: sx_1 sx_2 stays outside under a shift of 1e12 or 1e15
    /// (it passed for rounding of the shift), and 0.5 sx_1 + 0.25 x_a keeps its weights.
    #[test]
    fn an_identity_shift_changes_no_slot() {
        let n_fock = 1;
        let named = named_operators(crate::model::Space::Cavity { n_fock });
        let dim = 4 * (n_fock + 1);
        let (sx1, sx2, xa) = (&named[0].1, &named[3].1, &named[6].1);
        let combo = sx1 * C64::new(0.5, 0.0) + xa * C64::new(0.25, 0.0);
        let mut want = [0.0; DRIVE_SLOTS];
        (want[0], want[6]) = (0.5, 0.25);
        for shift in [0.0, 1.0, 2e12, 1e15, -3e15] {
            let id = CMat::identity(dim, dim) * C64::new(shift, 0.0);
            assert!(cavity_drive(&drive(sx1 * sx2 + &id, None), n_fock).is_none(), "shift {shift}");
            let d = cavity_drive(&drive(&combo + &id, None), n_fock).unwrap_or_else(|| panic!("shift {shift}: a combination"));
            for (got, w) in d.weights.iter().zip(&want) {
                assert!((got - w).abs() < 1e-14, "shift {shift}: {:?}", d.weights);
            }
        }
        // 123456.789 I + 0.3 sz_1 + 0.2 sz_2 with each diagonal entry written in decimal (so
        // each rounded on its own, to about 1e-11): a combination of the slots, as it was when
        // the scale was the shift's; sx_1 sx_2 beside it stays outside.
        let (sz1, sz2) = (&named[2].1, &named[5].1);
        let written = |v: f64| -> f64 {
            let text = match (v * 10.0).round() as i64 {
                5 => "123457.289",
                1 => "123456.889",
                -1 => "123456.689",
                -5 => "123456.289",
                other => panic!("{other}"),
            };
            text.parse().unwrap()
        };
        let decimal =
            CMat::from_fn(dim, dim, |i, j| if i == j { C64::new(written(0.3 * sz1[(i, i)].re + 0.2 * sz2[(i, i)].re), 0.0) } else { C64::new(0.0, 0.0) });
        let d = cavity_drive(&drive(decimal.clone(), None), n_fock).expect("a combination, to the diagonal's rounding");
        assert!((d.weights[2] - 0.3).abs() < 1e-10 && (d.weights[5] - 0.2).abs() < 1e-10, "{:?}", d.weights);
        assert!(cavity_drive(&drive(&decimal + sx1 * sx2, None), n_fock).is_none());
    }
}
