//! The CPU twin of shaders/rk4_dicke.wgsl, generic over f32/f64; in f64 it is the structured
//! CPU engine of the `dicke` model. RK4 of the Lindblad equation with the operators applied as
//! the bands they are (J_z, a^+a and the loss terms diagonal; J_+-, a and a^+ one band each),
//! element by element in gather form, never as matrices.
//!
//! State X: Hermitian, dim x dim, index r = k (n_fock + 1) + n (docs/physics.md), stored as its
//! packed upper triangle (`job::dicke::packed`); X[a, b] with a > b is conj(X[b, a]).
//!   L[X] = M + M^+,   M = K X + (1/2)(kappa a X a^+ + gamma J_- X J_+),
//!   K = -i H - (1/2)(kappa a^+a + gamma J_+J_-)    (diagonal part: `DickeCoeffs::k_diagonal`)
//! so that M + M^+ = -i[H, X] + kappa D[a]X + gamma D[J_-]X (H Hermitian). For r <= c, with
//! H_c the coupling (off-diagonal part of H, real symmetric, `job::dicke::row_tables`):
//!   L[X]_rc = (kd_r + conj kd_c) X_rc - i (H_c X)_rc + i (X H_c)_rc
//!             + kappa sqrt(n_r + 1) sqrt(n_c + 1) X[r + 1, c + 1]
//!             + gamma s_{k_r} s_{k_c} X[r + d, c + d]
//! (the jump terms of M and M^+ are equal on a Hermitian X, hence no 1/2). H_c has at most 4
//! entries per row: (k +- 1, n -+ 1) with weight g (rotating) and (k +- 1, n +- 1) with weight
//! g (counter-rotating, 0 under Tavis-Cummings), times s_min(k, k') sqrt(max(n, n')).
//!
//! Only the elements of the element table are stepped: all r <= c, or, for a state
//! block-diagonal in the parity (-1)^(n + k) (`job::dicke::parity_definite`), the same-parity
//! pairs only, which L never leaves (the other entries stay exactly 0). That is a quarter of
//! the dense work.
//!
//! RK4, fused as the kernel: stage 1 reads X, writes acc = k1, S_A = X + h/2 k1; stage 2 reads
//! S_A, acc += 2 k2, S_B = X + h/2 k2; stage 3 reads S_B, acc += 2 k3, S_A = X + h k3; stage 4
//! reads S_A, X += h/6 (acc + k4). Classical RK4 as the reference.
//!
//! `DickeOps`/`DickeWork` step one member in the kernel's loop form; the engine steps
//! members in batches with `DickeLaneWork` (below): the same operations per lane, in the same
//! order, so the bits of a member are those of `DickeWork` (tests at the end of this file).

use super::rk4_cavity::Cx;
use super::Real;
use crate::job::dicke::{out_stride, packed, param_tail, row_tables, DickeCoeffs, ROW_REALS, ROW_U32, SLOTS, WORKGROUP_SIZE};

#[inline(always)]
fn add<R: Real>(a: Cx<R>, b: Cx<R>) -> Cx<R> {
    Cx::new(a.re + b.re, a.im + b.im)
}

#[inline(always)]
fn scale<R: Real>(a: Cx<R>, s: R) -> Cx<R> {
    Cx::new(a.re * s, a.im * s)
}

/// X[a, b] of a packed Hermitian matrix, either side of the diagonal.
#[inline(always)]
fn rd<R: Real>(x: &[Cx<R>], a: usize, b: usize, dim: usize) -> Cx<R> {
    if a <= b {
        x[packed(a, b, dim)]
    } else {
        let z = x[packed(b, a, dim)];
        Cx::new(z.re, -z.im)
    }
}

/// One member's generator in the working precision: the shared tables and its coefficients.
pub struct DickeOps<R: Real> {
    pub n_cells: usize,
    pub n_fock: usize,
    pub dim: usize,
    /// The element table (`job::dicke::element_table`).
    pub elems: Vec<u32>,
    rows: Vec<[u32; ROW_U32]>,
    /// Per row: the slot weights times g_rot or g_counter, kappa sqrt(n + 1), gamma s_k
    /// (the kernel forms the same products in the same order).
    gw: Vec<[R; SLOTS]>,
    ka: Vec<R>,
    ga: Vec<R>,
    /// Raw jump factors sqrt(n + 1) and s_k (0 at the top).
    ja: Vec<R>,
    jb: Vec<R>,
    kd: Vec<Cx<R>>,
    /// packed(a, 0) per row a: packed(a, b) = row_off[a] + b.
    row_off: Vec<usize>,
    /// Row r's elements are elems[row_start[r]..row_start[r + 1]] (the table is row-major).
    row_start: Vec<usize>,
}

impl<R: Real> DickeOps<R> {
    /// The generator of `c`; `parity_only` steps the same-parity pairs only (valid for a
    /// parity-definite state).
    pub fn new(c: &DickeCoeffs, parity_only: bool) -> DickeOps<R> {
        let (rows, w) = row_tables(c.n_cells, c.n_fock);
        let t = param_tail(c);
        let (g, kappa, gamma) = ([R::from_f64(t[0]), R::from_f64(t[1])], R::from_f64(t[2]), R::from_f64(t[3]));
        let wr = |r: &[f64; ROW_REALS], i: usize| R::from_f64(r[i]);
        let elems = crate::job::dicke::element_table(c.n_cells, c.n_fock, parity_only);
        let mut row_start = vec![0; c.dim() + 1];
        for &rc in &elems {
            row_start[(rc & 0xffff) as usize + 1] += 1;
        }
        for r in 0..c.dim() {
            row_start[r + 1] += row_start[r];
        }
        DickeOps {
            n_cells: c.n_cells,
            n_fock: c.n_fock,
            dim: c.dim(),
            elems,
            row_start,
            gw: w.iter().map(|r| std::array::from_fn(|s| g[s / 2] * wr(r, s))).collect(),
            ka: w.iter().map(|r| kappa * wr(r, 4)).collect(),
            ga: w.iter().map(|r| gamma * wr(r, 5)).collect(),
            ja: w.iter().map(|r| wr(r, 4)).collect(),
            jb: w.iter().map(|r| wr(r, 5)).collect(),
            rows,
            row_off: (0..c.dim()).map(|a| packed(a, 0, c.dim())).collect(),
            kd: c.k_diagonal().into_iter().map(|(re, im)| Cx::new(R::from_f64(re), R::from_f64(im))).collect(),
        }
    }

    /// Entries of a packed matrix, dim (dim + 1) / 2.
    pub fn n_packed(&self) -> usize {
        self.dim * (self.dim + 1) / 2
    }

    /// L[X]_rc, r <= c, for every c of row r's run of the element table at once (the kernel's
    /// `element`, one element per call there); `put(p, c, v)` takes each value, p its packed
    /// index. Where c > r + d every gather lies in the upper triangle (the neighbour rows are
    /// within d + 1 of r and c) and is read directly, else through conj.
    #[inline(always)]
    fn row(&self, x: &[Cx<R>], r: usize, mut put: impl FnMut(usize, Cx<R>)) {
        let off = &self.row_off;
        let (ur, wr, kr) = (&self.rows[r], &self.gw[r], self.kd[r]);
        let (kar, gar) = (self.ka[r], self.ga[r]);
        let far = r + self.n_fock + 1;
        for &rc in &self.elems[self.row_start[r]..self.row_start[r + 1]] {
            let c = (rc >> 16) as usize;
            let direct = |a: usize, b: usize| x[off[a] + b];
            let either = |a: usize, b: usize| {
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                let z = x[off[lo] + hi];
                if a <= b {
                    z
                } else {
                    Cx::new(z.re, -z.im)
                }
            };
            let v = if c > far { self.element_with(ur, wr, kr, kar, gar, r, c, direct) } else { self.element_with(ur, wr, kr, kar, gar, r, c, either) };
            put(off[r] + c, v);
        }
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn element_with(&self, ur: &[u32; ROW_U32], wr: &[R; SLOTS], kr: Cx<R>, kar: R, gar: R, r: usize, c: usize, rd: impl Fn(usize, usize) -> Cx<R>) -> Cx<R> {
        let (uc, wc, kc) = (&self.rows[c], &self.gw[c], self.kd[c]);
        let diag = Cx::new(kr.re + kc.re, kr.im - kc.im);
        let z = rd(r, c);
        // (H_c X)_rc and (X H_c)_rc
        let mut hr = Cx::new(R::ZERO, R::ZERO);
        let mut hc = Cx::new(R::ZERO, R::ZERO);
        for s in 0..SLOTS {
            hr = add(hr, scale(rd(ur[s] as usize, c), wr[s]));
            hc = add(hc, scale(rd(r, uc[s] as usize), wc[s]));
        }
        // diag z - i hr + i hc, then the jumps
        let mut v = Cx::new(diag.re * z.re - diag.im * z.im + hr.im - hc.im, diag.re * z.im + diag.im * z.re - hr.re + hc.re);
        v = add(v, scale(rd(ur[4] as usize, uc[4] as usize), kar * self.ja[c]));
        v = add(v, scale(rd(ur[5] as usize, uc[5] as usize), gar * self.jb[c]));
        v
    }

    /// The sums of a sample, `job::dicke::out_stride` reals: the reduced cell state
    /// rb[k][k'] = sum_n X[(k, n), (k', n)] (re, im, row-major), then trace, photon number,
    /// Fock tail and purity sum_ij |X_ij|^2 (over the stepped elements, off-diagonal ones
    /// twice, in WORKGROUP_SIZE strided partial sums added in order, as the kernel).
    pub fn sample(&self, x: &[Cx<R>]) -> Vec<R> {
        let (n, d, dim) = (self.n_cells, self.n_fock + 1, self.dim);
        let mut out = Vec::with_capacity(out_stride(n));
        for k in 0..=n {
            for k2 in 0..=n {
                let mut s = Cx::new(R::ZERO, R::ZERO);
                for m in 0..d {
                    s = add(s, rd(x, k * d + m, k2 * d + m, dim));
                }
                out.push(s.re);
                out.push(s.im);
            }
        }
        let (mut tr, mut ph, mut tail) = (R::ZERO, R::ZERO, R::ZERO);
        for r in 0..dim {
            let p = x[packed(r, r, dim)].re;
            tr = tr + p;
            ph = ph + R::from_f64((r % d) as f64) * p;
            if r % d == d - 1 {
                tail = tail + p;
            }
        }
        let wg = WORKGROUP_SIZE as usize;
        let mut part = vec![R::ZERO; wg];
        for (e, &rc) in self.elems.iter().enumerate() {
            let (r, c) = ((rc & 0xffff) as usize, (rc >> 16) as usize);
            let z = x[packed(r, c, dim)];
            let a = z.re * z.re + z.im * z.im;
            part[e % wg] = part[e % wg] + if r == c { a } else { a + a };
        }
        let pur = part.into_iter().fold(R::ZERO, |s, p| s + p);
        out.extend([tr, ph, tail, pur]);
        out
    }
}

/// Work arrays for one RK4 step: the stage matrices S_A, S_B and the accumulator, packed.
pub struct DickeWork<R: Real> {
    sa: Vec<Cx<R>>,
    sb: Vec<Cx<R>>,
    acc: Vec<Cx<R>>,
}

const FIRST: u8 = 0;
const MID: u8 = 1;
const LAST: u8 = 2;

impl<R: Real> DickeWork<R> {
    pub fn new(n_packed: usize) -> DickeWork<R> {
        let z = vec![Cx::new(R::ZERO, R::ZERO); n_packed];
        DickeWork { sa: z.clone(), sb: z.clone(), acc: z }
    }

    /// One classical RK4 step of length h (rounded to the working precision, then h * 0.5 and
    /// h / 6 in it, as the host does for the kernel).
    pub fn step(&mut self, ops: &DickeOps<R>, x: &mut [Cx<R>], h: f64) {
        let h = R::from_f64(h);
        let (hh, h6) = (h * R::from_f64(0.5), h / R::from_f64(6.0));
        let DickeWork { sa, sb, acc } = self;
        stage::<R, FIRST>(ops, None, x, sa, acc, hh);
        stage::<R, MID>(ops, Some(sa), x, sb, acc, hh);
        stage::<R, MID>(ops, Some(sb), x, sa, acc, h);
        stage::<R, LAST>(ops, Some(sa), x, &mut [], acc, h6);
    }
}

/// One stage over the element table: k = L[src] (src = X where None), then
///   FIRST: acc = k; dst = X + a k.   MID: acc += 2 k; dst = X + a k.   LAST: X += a (acc + k).
fn stage<R: Real, const MODE: u8>(ops: &DickeOps<R>, src: Option<&[Cx<R>]>, x: &mut [Cx<R>], dst: &mut [Cx<R>], acc: &mut [Cx<R>], a: R) {
    let two = R::from_f64(2.0);
    for r in 0..ops.dim {
        match (MODE, src) {
            (FIRST, None) => ops.row(x, r, |p, v| {
                acc[p] = v;
                dst[p] = add(x[p], scale(v, a));
            }),
            (MID, Some(src)) => ops.row(src, r, |p, v| {
                acc[p] = add(acc[p], scale(v, two));
                dst[p] = add(x[p], scale(v, a));
            }),
            (LAST, Some(src)) => ops.row(src, r, |p, v| x[p] = add(x[p], scale(add(acc[p], v), a))),
            _ => unreachable!("stage mode and source"),
        }
    }
}

// ---- the lane-batched form: L members per pass, the twin's arithmetic in every lane ----------
//
// The structured f64 engine steps L members of the same (N, n_fock, parity path) at once. Per
// element it does exactly `DickeOps::element_with` and `stage` per lane, in the same order, so
// a member's bits do not depend on its lane or its batch (tests below, against DickeWork).
// What changes is the bookkeeping, done once per layout instead of per element and member:
//  - every matrix holds only the entries a stage reads or writes, in "slots": slot e is the
//    element table's entry e, then the entries gathers read that are never stepped (the
//    cross-parity neighbours at the Fock top, whose factor is 0; they stay as they start);
//  - per element the 10 gathers' slots and conj flags are precomputed, so the inner loop has
//    no packed-index arithmetic and, past the rows near the diagonal, no conj;
//  - a slot holds the L members' values as struct of arrays, one gather feeds L lanes and the
//    lane arithmetic vectorises (AVX where the CPU has it, same bits: Rust never fuses
//    multiply-add).

/// Gathers per element: X[u_r[s], c] (s < 4, H_c X), X[r, u_c[s]] (4 + s, X H_c), the a-jump
/// X[r + 1, c + 1] (8) and the J_- jump X[r + d, c + d] (9), as in `element_with`.
const N_GATHER: usize = 2 * SLOTS + 2;
const G_JA: usize = 2 * SLOTS;
const G_JB: usize = 2 * SLOTS + 1;

/// One element's gathers: their slots, and c | conj << 16 where bit i of conj says gather i
/// reads the lower triangle (X[a, b] = conj X[b, a]).
#[derive(Clone, Copy, Debug)]
struct ElementGathers {
    at: [u32; N_GATHER],
    c_conj: u32,
}

/// The slot layout and gather table of a (N, n_fock, parity path), shared by every batch.
pub struct DickeGathers {
    pub n_cells: usize,
    pub n_fock: usize,
    pub dim: usize,
    pub parity_only: bool,
    /// Per element (= slot) e of the element table, row-major.
    gathers: Vec<ElementGathers>,
    /// Row r's elements are [row_start[r], row_start[r + 1]); from row_direct[r] on, none of
    /// their gathers needs conj.
    row_start: Vec<usize>,
    row_direct: Vec<usize>,
    /// The packed index (`job::dicke::packed`) of every slot: the elements, then the
    /// read-only entries. Every gather's slot is below its length (checked in `new`).
    slot_packed: Vec<u32>,
}

impl DickeGathers {
    pub fn new(n_cells: usize, n_fock: usize, parity_only: bool) -> DickeGathers {
        let dim = (n_cells + 1) * (n_fock + 1);
        let (rows, _) = row_tables(n_cells, n_fock);
        let elems = crate::job::dicke::element_table(n_cells, n_fock, parity_only);
        const NONE: u32 = u32::MAX;
        let mut slot_of = vec![NONE; dim * (dim + 1) / 2];
        let mut slot_packed = Vec::with_capacity(elems.len());
        for &rc in &elems {
            let p = packed((rc & 0xffff) as usize, (rc >> 16) as usize, dim);
            slot_of[p] = slot_packed.len() as u32;
            slot_packed.push(p as u32);
        }
        let mut row_start = vec![0; dim + 1];
        let mut row_direct = vec![0; dim];
        let mut gathers = Vec::with_capacity(elems.len());
        for (e, &rc) in elems.iter().enumerate() {
            let (r, c) = ((rc & 0xffff) as usize, (rc >> 16) as usize);
            let (ur, uc) = (&rows[r], &rows[c]);
            let mut pairs = [(0, 0); N_GATHER];
            for s in 0..SLOTS {
                pairs[s] = (ur[s] as usize, c);
                pairs[SLOTS + s] = (r, uc[s] as usize);
            }
            pairs[G_JA] = (ur[4] as usize, uc[4] as usize);
            pairs[G_JB] = (ur[5] as usize, uc[5] as usize);
            let mut g = ElementGathers { at: [0; N_GATHER], c_conj: c as u32 };
            for (i, &(a, b)) in pairs.iter().enumerate() {
                let p = packed(a.min(b), a.max(b), dim);
                if slot_of[p] == NONE {
                    slot_of[p] = slot_packed.len() as u32;
                    slot_packed.push(p as u32);
                }
                g.at[i] = slot_of[p];
                if a > b {
                    g.c_conj |= 1 << (16 + i);
                }
            }
            row_start[r + 1] = e + 1;
            if g.c_conj >> 16 != 0 {
                row_direct[r] = e + 1;
            }
            gathers.push(g);
        }
        // rows without elements start where the previous one ended; a row without conj
        // gathers is direct from its start
        for r in 0..dim {
            row_start[r + 1] = row_start[r + 1].max(row_start[r]);
            row_direct[r] = row_direct[r].max(row_start[r]);
        }
        DickeGathers { n_cells, n_fock, dim, parity_only, gathers, row_start, row_direct, slot_packed }
    }

    /// Elements stepped (the element table's length).
    pub fn n_elements(&self) -> usize {
        self.gathers.len()
    }

    /// Slots per matrix: the elements, then the read-only entries.
    pub fn n_slots(&self) -> usize {
        self.slot_packed.len()
    }
}

/// One slot of L members, struct of arrays: lane j is the batch's member j. 64-byte aligned,
/// so that a slot of 4 f64 lanes is one cache line.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C, align(64))]
pub struct Lanes<R: Real, const L: usize> {
    pub re: [R; L],
    pub im: [R; L],
}

impl<R: Real, const L: usize> Lanes<R, L> {
    const ZERO: Self = Lanes { re: [R::ZERO; L], im: [R::ZERO; L] };
}

/// The coefficients of L members (`DickeOps`'s, lane by lane).
pub struct DickeLaneOps<R: Real, const L: usize> {
    gw: Vec<[[R; L]; SLOTS]>,
    kd: Vec<Lanes<R, L>>,
    ka: Vec<[R; L]>,
    ga: Vec<[R; L]>,
    /// Raw jump factors, the same for every member.
    ja: Vec<R>,
    jb: Vec<R>,
}

impl<R: Real, const L: usize> DickeLaneOps<R, L> {
    /// The lanes' coefficients, taken from each lane's `DickeOps` (so they are its values, bit
    /// for bit); every lane must have the layout's (N, n_fock).
    pub fn new(lay: &DickeGathers, lanes: [&DickeOps<R>; L]) -> crate::error::Result<Self> {
        if let Some(o) = lanes.iter().find(|o| o.n_cells != lay.n_cells || o.n_fock != lay.n_fock) {
            return Err(crate::error::QbatError::invalid(
                "params",
                format!("a dicke batch mixes sizes: (N, n_fock) = ({}, {}) against the layout's ({}, {})", o.n_cells, o.n_fock, lay.n_cells, lay.n_fock),
            ));
        }
        let dim = lay.dim;
        Ok(DickeLaneOps {
            gw: (0..dim).map(|r| std::array::from_fn(|s| std::array::from_fn(|j| lanes[j].gw[r][s]))).collect(),
            kd: (0..dim).map(|r| Lanes { re: std::array::from_fn(|j| lanes[j].kd[r].re), im: std::array::from_fn(|j| lanes[j].kd[r].im) }).collect(),
            ka: (0..dim).map(|r| std::array::from_fn(|j| lanes[j].ka[r])).collect(),
            ga: (0..dim).map(|r| std::array::from_fn(|j| lanes[j].ga[r])).collect(),
            ja: lanes[0].ja.clone(),
            jb: lanes[0].jb.clone(),
        })
    }
}

/// A batch's matrices in slots: X, the stage matrices S_A, S_B and the accumulator.
pub struct DickeLaneWork<R: Real, const L: usize> {
    x: Vec<Lanes<R, L>>,
    sa: Vec<Lanes<R, L>>,
    sb: Vec<Lanes<R, L>>,
    acc: Vec<Lanes<R, L>>,
    /// Compile the stages for AVX (checked at run time).
    avx: bool,
}

impl<R: Real, const L: usize> DickeLaneWork<R, L> {
    /// Lane j starts from the packed state `initial[j]` (`engine::dicke::pack_state`).
    pub fn new(lay: &DickeGathers, initial: [&[Cx<R>]; L]) -> DickeLaneWork<R, L> {
        let x: Vec<Lanes<R, L>> = lay
            .slot_packed
            .iter()
            .map(|&p| Lanes { re: std::array::from_fn(|j| initial[j][p as usize].re), im: std::array::from_fn(|j| initial[j][p as usize].im) })
            .collect();
        let z = vec![Lanes::ZERO; x.len()];
        DickeLaneWork { x, sa: z.clone(), sb: z.clone(), acc: z, avx: has_avx() }
    }

    /// Lane j's state into its packed matrix `out`: the slots are written, every other entry
    /// is left as it is (the engine keeps it at the member's start, which L never changes).
    pub fn lane_packed(&self, lay: &DickeGathers, j: usize, out: &mut [Cx<R>]) {
        for (z, &p) in self.x.iter().zip(&lay.slot_packed) {
            out[p as usize] = Cx::new(z.re[j], z.im[j]);
        }
    }

    /// One classical RK4 step of length h for every lane: `DickeWork::step` lane by lane.
    /// `lay` and `ops` must be of this batch's size (an error otherwise).
    pub fn step(&mut self, lay: &DickeGathers, ops: &DickeLaneOps<R, L>, h: f64) -> crate::error::Result<()> {
        // The stages read gathers unchecked: every slot of lay's table is below
        // lay.n_slots() (by construction), so the matrices must have that length.
        let n = lay.n_slots();
        if [&self.x, &self.sa, &self.sb, &self.acc].iter().any(|m| m.len() != n) || ops.gw.len() != lay.dim {
            return Err(crate::error::QbatError::invalid("dicke", "a dicke batch stepped with another size's gather table"));
        }
        let h = R::from_f64(h);
        let (hh, h6) = (h * R::from_f64(0.5), h / R::from_f64(6.0));
        #[cfg(target_arch = "x86_64")]
        if self.avx {
            // SAFETY: `avx` is set only where the CPU reports AVX.
            unsafe { lane_step_avx(self, lay, ops, hh, h, h6) };
            return Ok(());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = self.avx;
        lane_step(self, lay, ops, hh, h, h6);
        Ok(())
    }
}

fn has_avx() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `lane_step` compiled for AVX (4 f64 per register). Rust never fuses or reorders
/// floating-point operations, so it gives the baseline build's bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn lane_step_avx<R: Real, const L: usize>(w: &mut DickeLaneWork<R, L>, lay: &DickeGathers, ops: &DickeLaneOps<R, L>, hh: R, h: R, h6: R) {
    lane_step(w, lay, ops, hh, h, h6)
}

/// The four stages of `DickeWork::step`, with its stage coefficients.
#[inline(always)]
fn lane_step<R: Real, const L: usize>(w: &mut DickeLaneWork<R, L>, lay: &DickeGathers, ops: &DickeLaneOps<R, L>, hh: R, h: R, h6: R) {
    let two = R::from_f64(2.0);
    let DickeLaneWork { x, sa, sb, acc, .. } = w;
    // FIRST: acc = k; S_A = X + h/2 k
    lane_stage(lay, ops, x, |e, v| {
        acc[e] = v;
        sa[e] = lane_axpy(&x[e], &v, hh);
    });
    // MID: acc += 2 k; S_B = X + h/2 k
    lane_stage(lay, ops, sa, |e, v| {
        acc[e] = lane_axpy(&acc[e], &v, two);
        sb[e] = lane_axpy(&x[e], &v, hh);
    });
    // MID: acc += 2 k; S_A = X + h k
    lane_stage(lay, ops, sb, |e, v| {
        acc[e] = lane_axpy(&acc[e], &v, two);
        sa[e] = lane_axpy(&x[e], &v, h);
    });
    // LAST: X += h/6 (acc + k)
    lane_stage(lay, ops, sa, |e, v| {
        let (a, z) = (&acc[e], &mut x[e]);
        for j in 0..L {
            z.re[j] = z.re[j] + (a.re[j] + v.re[j]) * h6;
            z.im[j] = z.im[j] + (a.im[j] + v.im[j]) * h6;
        }
    });
}

/// x + v s per lane (`add(x, scale(v, s))`).
#[inline(always)]
fn lane_axpy<R: Real, const L: usize>(x: &Lanes<R, L>, v: &Lanes<R, L>, s: R) -> Lanes<R, L> {
    let mut o = *x;
    for j in 0..L {
        o.re[j] = x.re[j] + v.re[j] * s;
        o.im[j] = x.im[j] + v.im[j] * s;
    }
    o
}

/// L[src] at every element, row by row; `put(e, v)` takes element e's value.
#[inline(always)]
fn lane_stage<R: Real, const L: usize>(lay: &DickeGathers, ops: &DickeLaneOps<R, L>, src: &[Lanes<R, L>], mut put: impl FnMut(usize, Lanes<R, L>)) {
    for r in 0..lay.dim {
        let row = RowLanes { gw: &ops.gw[r], kd: &ops.kd[r], ka: &ops.ka[r], ga: &ops.ga[r] };
        let (begin, direct, end) = (lay.row_start[r], lay.row_direct[r], lay.row_start[r + 1]);
        for (e, g) in lay.gathers[begin..direct].iter().enumerate() {
            put(begin + e, lane_element::<R, L, true>(ops, &row, src, begin + e, g));
        }
        for (e, g) in lay.gathers[direct..end].iter().enumerate() {
            put(direct + e, lane_element::<R, L, false>(ops, &row, src, direct + e, g));
        }
    }
}

/// Row r's coefficients in lanes.
struct RowLanes<'a, R: Real, const L: usize> {
    gw: &'a [[R; L]; SLOTS],
    kd: &'a Lanes<R, L>,
    ka: &'a [R; L],
    ga: &'a [R; L],
}

/// L[src]_rc in every lane: `DickeOps::element_with`, the same operations in the same order
/// per lane. CONJ: some gathers read the lower triangle (im times -1, which is exactly -im).
// j indexes a dozen lane arrays in lockstep, as a SIMD lane does
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn lane_element<R: Real, const L: usize, const CONJ: bool>(
    ops: &DickeLaneOps<R, L>,
    row: &RowLanes<R, L>,
    src: &[Lanes<R, L>],
    e: usize,
    g: &ElementGathers,
) -> Lanes<R, L> {
    let c = (g.c_conj & 0xffff) as usize;
    let mut gs = [Lanes::ZERO; N_GATHER];
    for (i, z) in gs.iter_mut().enumerate() {
        // SAFETY: g.at[i] < lay.n_slots() (DickeGathers::new) = src.len() (checked in
        // DickeLaneWork::step, the only caller).
        *z = unsafe { *src.get_unchecked(g.at[i] as usize) };
        if CONJ {
            let sign = if (g.c_conj >> (16 + i)) & 1 != 0 { -R::ONE } else { R::ONE };
            for j in 0..L {
                z.im[j] = z.im[j] * sign;
            }
        }
    }
    let z = &src[e];
    let (gwc, kc) = (&ops.gw[c], &ops.kd[c]);
    let (jac, jbc) = (ops.ja[c], ops.jb[c]);
    let mut v = Lanes::ZERO;
    for j in 0..L {
        let diag_re = row.kd.re[j] + kc.re[j];
        let diag_im = row.kd.im[j] - kc.im[j];
        // (H_c X)_rc and (X H_c)_rc
        let (mut hr_re, mut hr_im) = (R::ZERO, R::ZERO);
        let (mut hc_re, mut hc_im) = (R::ZERO, R::ZERO);
        for s in 0..SLOTS {
            hr_re = hr_re + gs[s].re[j] * row.gw[s][j];
            hr_im = hr_im + gs[s].im[j] * row.gw[s][j];
            hc_re = hc_re + gs[SLOTS + s].re[j] * gwc[s][j];
            hc_im = hc_im + gs[SLOTS + s].im[j] * gwc[s][j];
        }
        // diag z - i hr + i hc, then the jumps
        let mut v_re = diag_re * z.re[j] - diag_im * z.im[j] + hr_im - hc_im;
        let mut v_im = diag_re * z.im[j] + diag_im * z.re[j] - hr_re + hc_re;
        let fa = row.ka[j] * jac;
        v_re = v_re + gs[G_JA].re[j] * fa;
        v_im = v_im + gs[G_JA].im[j] * fa;
        let fb = row.ga[j] * jbc;
        v_re = v_re + gs[G_JB].re[j] * fb;
        v_im = v_im + gs[G_JB].im[j] * fb;
        v.re[j] = v_re;
        v.im[j] = v_im;
    }
    v
}

#[cfg(test)]
mod tests;
