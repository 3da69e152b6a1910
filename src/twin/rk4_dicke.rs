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

use super::rk4_cavity::Cx;
use super::Real;
use crate::job::dicke::{
    out_stride, packed, param_tail, row_tables, DickeCoeffs, ROW_REALS, ROW_U32, SLOTS,
    WORKGROUP_SIZE,
};

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
        let (g, kappa, gamma) = (
            [R::from_f64(t[0]), R::from_f64(t[1])],
            R::from_f64(t[2]),
            R::from_f64(t[3]),
        );
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
            gw: w
                .iter()
                .map(|r| std::array::from_fn(|s| g[s / 2] * wr(r, s)))
                .collect(),
            ka: w.iter().map(|r| kappa * wr(r, 4)).collect(),
            ga: w.iter().map(|r| gamma * wr(r, 5)).collect(),
            ja: w.iter().map(|r| wr(r, 4)).collect(),
            jb: w.iter().map(|r| wr(r, 5)).collect(),
            rows,
            row_off: (0..c.dim()).map(|a| packed(a, 0, c.dim())).collect(),
            kd: c
                .k_diagonal()
                .into_iter()
                .map(|(re, im)| Cx::new(R::from_f64(re), R::from_f64(im)))
                .collect(),
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
            let v = if c > far {
                self.element_with(ur, wr, kr, kar, gar, r, c, direct)
            } else {
                self.element_with(ur, wr, kr, kar, gar, r, c, either)
            };
            put(off[r] + c, v);
        }
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn element_with(
        &self,
        ur: &[u32; ROW_U32],
        wr: &[R; SLOTS],
        kr: Cx<R>,
        kar: R,
        gar: R,
        r: usize,
        c: usize,
        rd: impl Fn(usize, usize) -> Cx<R>,
    ) -> Cx<R> {
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
        let mut v = Cx::new(
            diag.re * z.re - diag.im * z.im + hr.im - hc.im,
            diag.re * z.im + diag.im * z.re - hr.re + hc.re,
        );
        v = add(
            v,
            scale(rd(ur[4] as usize, uc[4] as usize), kar * self.ja[c]),
        );
        v = add(
            v,
            scale(rd(ur[5] as usize, uc[5] as usize), gar * self.jb[c]),
        );
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
        DickeWork {
            sa: z.clone(),
            sb: z.clone(),
            acc: z,
        }
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
fn stage<R: Real, const MODE: u8>(
    ops: &DickeOps<R>,
    src: Option<&[Cx<R>]>,
    x: &mut [Cx<R>],
    dst: &mut [Cx<R>],
    acc: &mut [Cx<R>],
    a: R,
) {
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
