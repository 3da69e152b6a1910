//! The dicke engine's contract (`twin::rk4_dicke`, and the engine that feeds it): one member's
//! coefficients and K's diagonal. docs/physics.md "dicke" has the operators.

/// The parameters of one dicke member, as the structured engine holds them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DickeCoeffs {
    pub n_cells: usize,
    pub n_fock: usize,
    pub wc: f64,
    pub wa: f64,
    pub g: f64,
    /// Rotating-wave coupling g (J_+ a + J_- a^+), else 2 g J_x (a + a^+).
    pub tavis_cummings: bool,
    pub kappa: f64,
    pub gamma: f64,
}

impl DickeCoeffs {
    pub fn dim(&self) -> usize {
        (self.n_cells + 1) * (self.n_fock + 1)
    }

    /// The coefficients after `[protocol] switch_off`: the cavity-cell coupling off, the
    /// dissipators on (`OpenSystem::coupling` of dicke).
    pub fn uncoupled(&self) -> DickeCoeffs {
        DickeCoeffs { g: 0.0, ..*self }
    }

    /// s_k = sqrt((k + 1)(N - k)), k = 0..N-1: J_+ |k> = s_k |k + 1>, J_- |k + 1> = s_k |k>.
    pub fn spin_ladder(&self) -> Vec<f64> {
        let n = self.n_cells;
        (0..n).map(|k| (((k + 1) * (n - k)) as f64).sqrt()).collect()
    }

    /// K's diagonal, K = -i H - (1/2)(kappa a^+a + gamma J_+J_-), at r = k (n_fock + 1) + n:
    ///   (re, im) = (-(kappa n + gamma k (N - k + 1))/2, -(wc n + wa k)),
    /// using J_+ J_- |k> = k (N - k + 1) |k>.
    pub fn k_diagonal(&self) -> Vec<(f64, f64)> {
        let (n, d) = (self.n_cells, self.n_fock + 1);
        let mut kd = Vec::with_capacity(self.dim());
        for k in 0..=n {
            for m in 0..d {
                let loss = 0.5 * (self.kappa * m as f64 + self.gamma * (k * (n - k + 1)) as f64);
                kd.push((-loss, -(self.wc * m as f64 + self.wa * k as f64)));
            }
        }
        kd
    }
}

// ---- the kernel's layout (shaders/rk4_dicke.wgsl, gpu::rk4_dicke, twin::rk4_dicke) ----------

/// Invocations per workgroup (one workgroup per member).
pub const WORKGROUP_SIZE: u32 = 256;
/// Coupling slots per row of the row table: 0 (k+1, n-1) and 1 (k-1, n+1), the rotating pair
/// (J_- a^+ and J_+ a); 2 (k+1, n+1) and 3 (k-1, n-1), the counter-rotating pair.
pub const SLOTS: usize = 4;
/// u32 per row in the row table: the 4 slot columns, the a-jump row, the J_-jump row, n, k.
pub const ROW_U32: usize = 8;
/// reals per row in the weight table: the 4 slot weights, the a-jump and J_-jump factors, 0, 0.
pub const ROW_REALS: usize = 8;
/// vec2 per member in `mparams` after K's diagonal: (g_rot, g_counter), (kappa, gamma).
pub const PARAM_TAIL: usize = 2;
/// Sums of a sample besides the reduced cell state: trace, photon number, Fock tail, purity.
pub const SAMPLE_EXTRA: usize = 4;
/// Flag: the dispatch lies after `[protocol] switch_off` (g off).
pub const F_UNCOUPLED: u32 = 2;

/// A dicke ensemble for the GPU engine: every point has the same (N, n_fock). Initial states
/// are built on demand, chunk by chunk.
pub struct DickeJob<'a> {
    pub n_cells: usize,
    pub n_fock: usize,
    pub points: Vec<DickeCoeffs>,
    /// Parameter point of each member; its length is the member count.
    pub member_point: Vec<u32>,
    /// Member i's initial density matrix, dim x dim, Hermitian (its upper triangle is taken).
    pub initial: &'a (dyn Fn(usize) -> crate::linalg::CMat + Sync),
    pub schedule: super::Schedule,
    /// Every initial state is parity-definite: step the same-parity pairs only.
    pub parity_only: bool,
}

/// The kernel's uniform, one per dispatch (`Params` in shaders/rk4_dicke.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub n_members: u32,
    pub n_cells: u32,
    pub n_fock: u32,
    pub dim: u32,
    /// Elements stepped (the element table's length).
    pub n_list: u32,
    /// Packed upper-triangle entries per matrix, dim (dim + 1) / 2.
    pub n_packed: u32,
    pub n_samples: u32,
    pub piece_begin: u32,
    pub piece_end: u32,
    pub flags: u32,
    pub member_stride: u32,
    pub param_stride: u32,
    pub out_stride: u32,
    pub off_rows: u32,
    pub off_pieces: u32,
    pub off_weights: u32,
    pub off_steps: u32,
    pub steps_expected: u32,
    pub _pad0: u32,
    pub _pad1: u32,
}

/// Parity P = (-1)^(n + k) of basis row r = k (n_fock + 1) + n.
pub fn parity(r: usize, n_fock: usize) -> usize {
    (r / (n_fock + 1) + r % (n_fock + 1)) % 2
}

/// Is rho block-diagonal in the parity P = (-1)^(n + k)? Every term of L keeps it so: H
/// changes (k, n) by (+-1, +-1), a and J_- each flip P on both sides of X (a X a^+, J_- X J_+,
/// a^+a, J_+J_- map same-parity pairs to same-parity pairs). Such a state never leaves the
/// same-parity pairs, a quarter of the matrix with the Hermitian half (tests/dicke.rs checks
/// the claim against the reference). Fock and Dicke starts are; coherent ones are not.
pub fn parity_definite(rho: &crate::linalg::CMat, n_fock: usize) -> bool {
    let dim = rho.nrows();
    (0..dim).all(|i| (i + 1..dim).all(|j| parity(i, n_fock) == parity(j, n_fock) || rho[(i, j)] == crate::linalg::C64::new(0.0, 0.0)))
}

/// Packed index of (a, b), a <= b, in the row-major upper triangle of a dim-square matrix.
#[inline(always)]
pub fn packed(a: usize, b: usize, dim: usize) -> usize {
    a * dim - a * (a + 1) / 2 + b
}

/// The element table: r | c << 16 for every upper-triangle pair r <= c, row-major; with
/// `parity`, only the same-parity pairs.
pub fn element_table(n_cells: usize, n_fock: usize, parity_only: bool) -> Vec<u32> {
    let dim = (n_cells + 1) * (n_fock + 1);
    let mut t = Vec::with_capacity(dim * (dim + 1) / if parity_only { 4 } else { 2 });
    for r in 0..dim {
        for c in r..dim {
            if !parity_only || parity(r, n_fock) == parity(c, n_fock) {
                t.push(r as u32 | (c as u32) << 16);
            }
        }
    }
    t
}

/// The row table and the weight table, shared by every member of a (N, n_fock): per row
/// r = (k, n), [slot columns (r itself where the slot has no neighbour), r + 1 if n < n_fock
/// else r, r + d if k < N else r, n, k] and [slot weights <r|H_c|c>/g = s_min(k, k')
/// sqrt(max(n, n')) (0 where no neighbour), sqrt(n + 1) if n < n_fock else 0, s_k if k < N
/// else 0, 0, 0].
pub fn row_tables(n_cells: usize, n_fock: usize) -> (Vec<[u32; ROW_U32]>, Vec<[f64; ROW_REALS]>) {
    let c = DickeCoeffs { n_cells, n_fock, wc: 0.0, wa: 0.0, g: 0.0, tavis_cummings: false, kappa: 0.0, gamma: 0.0 };
    let ladder = c.spin_ladder();
    let d = n_fock + 1;
    let (mut rows, mut weights) = (Vec::with_capacity(c.dim()), Vec::with_capacity(c.dim()));
    for k in 0..=n_cells {
        for n in 0..d {
            let r = k * d + n;
            let (mut u, mut w) = ([r as u32; ROW_U32], [0.0; ROW_REALS]);
            for (s, (dk, dn)) in [(1i64, -1i64), (-1, 1), (1, 1), (-1, -1)].into_iter().enumerate() {
                let (k2, n2) = (k as i64 + dk, n as i64 + dn);
                if k2 < 0 || k2 > n_cells as i64 || n2 < 0 || n2 >= d as i64 {
                    continue;
                }
                u[s] = (k2 as usize * d + n2 as usize) as u32;
                w[s] = ladder[k.min(k2 as usize)] * (n.max(n2 as usize) as f64).sqrt();
            }
            if n < n_fock {
                u[4] = (r + 1) as u32;
                w[4] = ((n + 1) as f64).sqrt();
            }
            if k < n_cells {
                u[5] = (r + d) as u32;
                w[5] = ladder[k];
            }
            u[6] = n as u32;
            u[7] = k as u32;
            rows.push(u);
            weights.push(w);
        }
    }
    (rows, weights)
}

/// A member's coefficients after K's diagonal: (g_rot, g_counter), (kappa, gamma); g_counter
/// is 0 under Tavis-Cummings.
pub fn param_tail(c: &DickeCoeffs) -> [f64; 2 * PARAM_TAIL] {
    [c.g, if c.tavis_cummings { 0.0 } else { c.g }, c.kappa, c.gamma]
}

/// Reals per (member, sample) in the kernel's `out`: the reduced cell state, (N + 1)^2
/// complex entries rb[k][k'] = sum_n X[(k, n), (k', n)] row-major, then trace, photon
/// number, Fock tail and purity.
pub fn out_stride(n_cells: usize) -> usize {
    2 * (n_cells + 1) * (n_cells + 1) + SAMPLE_EXTRA
}
