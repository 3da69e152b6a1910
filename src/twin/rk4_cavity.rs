//! Structured RK4 engine for `cavity-cells` (paper 003): the Lindblad generator applied
//! element by element in gather form, with the operators as the few bands they are:
//!
//!   L[X] = M + M^+,   M = K X + (1/2) sum_k J_k X J_k^+,   K = -i H - (1/2) sum_k J_k^+ J_k,
//!
//! valid for Hermitian X (rho, and Z = {H_B, rho0}/2 for the two-time fluctuation). Index
//! r = (q, n) = q (N+1) + n with q = 2 i_1 + i_2 (|gg>, |ge>, |eg>, |ee>). The pieces:
//!   K diagonal  kd(q, n) = -i [wc n + (wq/2)(z_1 + z_2)] - (1/2)[kappa n + gamma (e_1 + e_2)]
//!   cell-cell   G = (g/2)[(1+zeta) sx sx + (1-zeta) sy sy]: <ee|G|gg> = g zeta, <eg|G|ge> = g
//!   cavity-cell lambda (s+_1 a + s-_1 a^+): row (q, n) with i_1 = 1 reads X[(q-2, n+1), c] sqrt(n+1),
//!               with i_1 = 0 reads X[(q+2, n-1), c] sqrt(n)
//!   jumps       kappa a X a^+:     sqrt((n+1)(n'+1)) X[(q, n+1), (q', n'+1)]
//!               gamma s-_1 X s+_1: X[(q+2, n), (q'+2, n')] when i_1(q) = i_1(q') = 0
//!               gamma s-_2 X s+_2: X[(q+1, n), (q'+1, n')] when i_2(q) = i_2(q') = 0
//! Only the upper triangle (r <= c) is computed; the lower is its conjugate. Each element costs
//! a handful of complex products, so one RHS is O(dim^2), never O(dim^4).
//!
//! `[[drive]]`: H(t) = H + sum_s S_s(t) O_s over the slots of `job::cavity` (sx_1 .. sz_2, x_a,
//! y_a), S_s(t) = sum_k c_k(t) w_ks, adds -i [H_d, X] to L[X]; by element, with A = H_d X,
//!   -i (A[r, c] - conj(A[c, r])),
//!   A[r, c] = (S_z1 z_1(r) + S_z2 z_2(r)) X[r, c]                       (z = -1 g, +1 e)
//!           + (S_x1 + i s S_y1) X[r ^ cell 1, c]    (s = +1 where i_1(r) = 0, else -1)
//!           + (S_x2 + i s S_y2) X[r ^ cell 2, c]
//!           + sqrt(n) (S_xa + i S_ya) X[(q, n-1), c] + sqrt(n+1) (S_xa - i S_ya) X[(q, n+1), c],
//! the same bands as H's. A step whose drive coefficients are all 0 at its three stage times is
//! the undriven step, bit for bit.
//!
//! This is the CPU twin of the cavity kernel's loop structure, generic over f32/f64; in f64 it is
//! the CPU engine for cavity-cells, checked against the matrix-form reference.

use super::drive::{stage_coeffs, DriveR};
use super::simd::Lanes;
use super::Real;
use crate::job::cavity::*;
use crate::job::drive::MAX_DRIVES;
use crate::job::{Schedule, SegmentEnd};

/// A complex number as two reals (vec2 in WGSL), re then im in memory.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Cx<R: Real> {
    pub re: R,
    pub im: R,
}

impl<R: Real> Cx<R> {
    pub const ZERO: Self = Cx { re: R::ZERO, im: R::ZERO };
    #[inline(always)]
    pub fn new(re: R, im: R) -> Self {
        Cx { re, im }
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Cx::new(self.re + o.re, self.im + o.im)
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Cx::new(self.re * o.re - self.im * o.im, self.re * o.im + self.im * o.re)
    }
    #[inline(always)]
    fn scale(self, s: R) -> Self {
        Cx::new(self.re * s, self.im * s)
    }
    #[inline(always)]
    fn conj(self) -> Self {
        Cx::new(self.re, -self.im)
    }
}

/// Precomputed per-member tables in the working precision.
pub struct CavityOps<R: Real> {
    /// (private: the unchecked reads below rely on dim = 4 (n_fock + 1), set by `new`)
    n_fock: usize,
    dim: usize,
    /// K's diagonal, indexed by r = q (N+1) + n
    kd: Vec<Cx<R>>,
    /// sqrt(n) for n = 0..=N+1
    sqrt_n: Vec<R>,
    lambda: R,
    /// <ee|G|gg> = g zeta, <eg|G|ge> = g
    g_flip_both: R,
    g_swap: R,
    kappa: R,
    gamma: R,
    /// Column c = (qc, nc)'s side of conj((K x)[c, r]), read along row r (`kx_rows(qc, nc)`):
    /// the partner column and its coefficient, the band column and its coefficient (0 where
    /// there is no band). Within a block qc the partner is c plus a constant, and so is the
    /// band for 0 < nc < N: what lets `apply` read a run of columns as lanes.
    col_partner: Vec<usize>,
    col_g: Vec<R>,
    col_band: Vec<usize>,
    col_lam: Vec<R>,
}

/// A complex value in each of L's lanes: elements (r, c), (r, c + 1), .. of one row. Each
/// operation is `Cx`'s, lane by lane, in the same order, so a lane holds the bits `Cx` gives
/// (for values that are not NaN: Rust does not fix a NaN's sign or payload).
#[derive(Clone, Copy)]
struct CxLanes<L> {
    re: L,
    im: L,
}

impl<L: Lanes> CxLanes<L>
where
    L::Scalar: Real,
{
    /// Lanes l = 0..N from z[i + l].
    ///
    /// # Safety
    /// i + N <= z.len().
    #[inline(always)]
    unsafe fn load(z: &[Cx<L::Scalar>], i: usize) -> Self {
        debug_assert!(i + L::N <= z.len());
        // (a repr(C) Cx is its re and im, so N of them are 2 N reals)
        let pairs = unsafe { std::slice::from_raw_parts(z.as_ptr().add(i).cast::<L::Scalar>(), 2 * L::N) };
        let (re, im) = L::from_pairs(pairs);
        CxLanes { re, im }
    }
    /// z[l] = lane l, for l < N = z.len().
    #[inline(always)]
    fn store(self, z: &mut [Cx<L::Scalar>]) {
        assert_eq!(z.len(), L::N);
        // (a repr(C) Cx is its re and im, so N of them are 2 N reals)
        let pairs = unsafe { std::slice::from_raw_parts_mut(z.as_mut_ptr().cast::<L::Scalar>(), 2 * L::N) };
        L::to_pairs(self.re, self.im, pairs);
    }
    #[inline(always)]
    fn splat(z: Cx<L::Scalar>) -> Self {
        CxLanes { re: L::splat(z.re), im: L::splat(z.im) }
    }
    #[inline(always)]
    fn lane(self, l: usize) -> Cx<L::Scalar> {
        Cx::new(self.re.lane(l), self.im.lane(l))
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        CxLanes { re: self.re + o.re, im: self.im + o.im }
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        CxLanes { re: self.re - o.re, im: self.im - o.im }
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        CxLanes { re: self.re * o.re - self.im * o.im, im: self.re * o.im + self.im * o.re }
    }
    #[inline(always)]
    fn scale(self, s: L) -> Self {
        CxLanes { re: self.re * s, im: self.im * s }
    }
    /// -i z
    #[inline(always)]
    fn mul_minus_i(self) -> Self {
        CxLanes { re: self.im, im: self.re.flip() }
    }
    #[inline(always)]
    fn conj(self) -> Self {
        CxLanes { re: self.re, im: self.im.flip() }
    }
    /// i z
    #[inline(always)]
    fn mul_i(self) -> Self {
        CxLanes { re: self.im.flip(), im: self.re }
    }
}

/// The most lanes `CavityOps::apply` computes side by side.
const MAX_LANES: usize = 4;

/// Lanes l = 0..N from table[i + l].
#[inline(always)]
fn lanes_of<L: Lanes>(table: &[L::Scalar], i: usize) -> L {
    let run = &table[i..i + L::N];
    L::from_fn(|l| run[l])
}

/// The kernel's sample of a full-storage Hermitian state x: the Pauli coefficients of the
/// reduced (cell 1, cell 2) matrix, x[4a + b] = Re Tr(rho_q sigma_a (x) sigma_b) (src/pauli.rs
/// convention), the photon number and the Fock tail, formed as the kernel forms them: each
/// sum (a reduced upper entry over n, the photon number over r, the tail over q) as `parts`
/// strided partial sums added in order, then x[4a + b] = sum_{a,b} Re(R[a, b] P[b, a]).
pub fn sample_outputs<R: Real>(x: &[Cx<R>], n_fock: usize, parts: usize) -> ([R; 16], R, R) {
    let d = n_fock + 1;
    let dim = 4 * d;
    let strided = |count: usize, term: &dyn Fn(usize) -> Cx<R>| -> Cx<R> {
        let mut total = Cx::ZERO;
        for part in 0..parts {
            let mut s = Cx::ZERO;
            for n in (part..count).step_by(parts) {
                s = s.add(term(n));
            }
            total = total.add(s);
        }
        total
    };
    let entry = |a: usize, b: usize| -> Cx<R> {
        let (lo, hi) = (a.min(b), a.max(b));
        let s = strided(d, &|n| x[(lo * d + n) * dim + hi * d + n]);
        if a > b {
            s.conj()
        } else {
            s
        }
    };
    // sigma_i[b, a]: sx = [[0,1],[1,0]], sy = [[0,i],[-i,0]], sz = diag(-1, 1).
    let sig = |i: usize, b: usize, a: usize| -> Cx<R> {
        let (one, zero) = (Cx::new(R::ONE, R::ZERO), Cx::ZERO);
        match (i, a == b) {
            (0, true) | (1, false) => one,
            (2, false) => Cx::new(R::ZERO, if b == 0 { R::ONE } else { -R::ONE }),
            (3, true) => Cx::new(if a == 0 { -R::ONE } else { R::ONE }, R::ZERO),
            _ => zero,
        }
    };
    // the reduced entries once, as the kernel keeps them for its coefficients
    let entries: [[Cx<R>; 4]; 4] = std::array::from_fn(|a| std::array::from_fn(|b| entry(a, b)));
    let mut coeffs = [R::ZERO; 16];
    for (k, out) in coeffs.iter_mut().enumerate() {
        let (i, j) = (k >> 2, k & 3);
        let mut s = R::ZERO;
        for (a, row) in entries.iter().enumerate() {
            for (b, &rab) in row.iter().enumerate() {
                let p = sig(i, b >> 1, a >> 1).mul(sig(j, b & 1, a & 1));
                s = s + (rab.re * p.re - rab.im * p.im);
            }
        }
        *out = s;
    }
    let photons = strided(dim, &|r| Cx::new(R::from_f64((r % d) as f64) * x[r * dim + r].re, R::ZERO)).re;
    let tail = strided(4, &|q| Cx::new(x[(q * d + n_fock) * (dim + 1)].re, R::ZERO)).re;
    (coeffs, photons, tail)
}

impl<R: Real> CavityOps<R> {
    pub fn new(c: &CavityCoeffs) -> Self {
        let d = c.n_fock + 1;
        let kd = k_diagonal(c).into_iter().map(|z| Cx::new(R::from_f64(z.re), R::from_f64(z.im))).collect();
        let mut ops = CavityOps {
            n_fock: c.n_fock,
            dim: 4 * d,
            kd,
            sqrt_n: (0..=d).map(|n| R::from_f64((n as f64).sqrt())).collect(),
            lambda: R::from_f64(c.lambda),
            g_flip_both: R::from_f64(c.g * c.zeta),
            g_swap: R::from_f64(c.g),
            kappa: R::from_f64(c.kappa),
            gamma: R::from_f64(c.gamma),
            col_partner: vec![],
            col_g: vec![],
            col_band: vec![],
            col_lam: vec![],
        };
        let cols: Vec<_> = (0..ops.dim).map(|col| ops.kx_rows(col / d, col % d)).collect();
        ops.col_partner = cols.iter().map(|t| t.0).collect();
        ops.col_g = cols.iter().map(|t| t.1).collect();
        ops.col_band = cols.iter().map(|t| t.2).collect();
        ops.col_lam = cols.iter().map(|t| t.3).collect();
        ops
    }

    /// Row offsets that (K X)[(q, n), .] gathers from: the cell-cell partner row with its
    /// coefficient, and the cavity-cell band row with its coefficient (coefficient 0: none).
    #[inline(always)]
    fn kx_rows(&self, q: usize, n: usize) -> (usize, R, usize, R) {
        let d = self.n_fock + 1;
        let (p, gq) = match q {
            0 => (3, self.g_flip_both),
            3 => (0, self.g_flip_both),
            1 => (2, self.g_swap),
            _ => (1, self.g_swap),
        };
        let (band, lam) = if q >= 2 {
            if n < self.n_fock {
                ((q - 2) * d + n + 1, self.lambda * self.sqrt_n[n + 1])
            } else {
                (0, R::ZERO)
            }
        } else if n > 0 {
            ((q + 2) * d + n - 1, self.lambda * self.sqrt_n[n])
        } else {
            (0, R::ZERO)
        };
        (p * d + n, gq, band, lam)
    }

    /// out = L[x] for Hermitian x: element (r, c), r <= c, by gather,
    ///   L[x][r, c] = (K x)[r, c] + conj((K x)[c, r]) + sum_k (J_k x J_k^+)[r, c],
    /// and out[c, r] = conj(out[r, c]).
    pub fn apply(&self, x: &[Cx<R>], out: &mut [Cx<R>]) {
        self.apply_with(x, out, None)
    }

    /// As `apply`, with a stage's drive terms added to each element after L's (none: `apply`'s
    /// arithmetic exactly).
    pub fn apply_with(&self, x: &[Cx<R>], out: &mut [Cx<R>], drive: Option<&StageDrive<R>>) {
        match drive {
            None => self.apply_gen::<false, R::X4>(x, out, None),
            Some(_) => self.apply_gen::<true, R::X4>(x, out, drive),
        }
    }

    /// The element loop, compiled with and without the drive terms (the undriven loop keeps
    /// no per-element test). A run of L::N columns of one block with 0 < nc and nc + L::N <= N
    /// (each with its band, its kappa term and both its mode neighbours) is computed in L's
    /// lanes, as the kernel's neighbouring invocations compute them side by side; the other
    /// columns one at a time. Either way an element gets the same operations in the same
    /// order (so the same bits, for values that are not NaN).
    #[inline(always)]
    fn apply_gen<const DRIVEN: bool, L: Lanes<Scalar = R>>(&self, x: &[Cx<R>], out: &mut [Cx<R>], drive: Option<&StageDrive<R>>) {
        const { assert!(L::N <= MAX_LANES) };
        let d = self.n_fock + 1;
        let dim = self.dim;
        let nf = self.n_fock;
        assert!(dim == 4 * d && x.len() == dim * dim && out.len() == dim * dim && self.kd.len() == dim);
        for q in 0..4 {
            for n in 0..d {
                let r = q * d + n;
                let row = self.kx_rows(q, n);
                for qc in q..4 {
                    let mut nc = if qc == q { n } else { 0 };
                    while nc < d {
                        let c = qc * d + nc;
                        // The lower triangle first, then the upper: on the diagonal (r == c)
                        // the element itself stays, as the kernel stores it (its packed upper
                        // triangle holds X[r, r] whole). Storing conj(v) there flips the sign
                        // of d Im X[r, r] / dt: Im X[r, r] (0 exactly, but seeded at 1e-17 by
                        // rounding in a mode drive or given in an input dm) then grows like
                        // e^{+kappa n t} where it decays like Re X[r, r].
                        if L::N > 1 && nc > 0 && nc + L::N <= nf {
                            let v = self.element_driven::<DRIVEN, L>(x, (q, n, row), (qc, nc), drive);
                            let mut column = [Cx::ZERO; MAX_LANES];
                            v.conj().store(&mut column[..L::N]);
                            for (l, z) in column[..L::N].iter().enumerate() {
                                out[(c + l) * dim + r] = *z;
                            }
                            v.store(&mut out[r * dim + c..r * dim + c + L::N]);
                            nc += L::N;
                        } else {
                            let v = self.element_driven::<DRIVEN, R::X1>(x, (q, n, row), (qc, nc), drive).lane(0);
                            out[c * dim + r] = v.conj();
                            out[r * dim + c] = v;
                            nc += 1;
                        }
                    }
                }
            }
        }
    }

    /// `element`, plus -i times the stage's `drive_term` where DRIVEN and there is a drive.
    #[inline(always)]
    fn element_driven<const DRIVEN: bool, L: Lanes<Scalar = R>>(
        &self,
        x: &[Cx<R>],
        (q, n, row): (usize, usize, (usize, R, usize, R)),
        (qc, nc): (usize, usize),
        drive: Option<&StageDrive<R>>,
    ) -> CxLanes<L> {
        let v = self.element::<L>(x, (q, n, row), (qc, nc));
        match drive {
            Some(sd) if DRIVEN => v.add(self.drive_term::<L>(sd, x, (q, n), (qc, nc)).mul_minus_i()),
            _ => v,
        }
    }

    /// Elements (r, c + l), l < L::N, of L[x] without drive terms: row r = (q, n) with `row`
    /// its `kx_rows`, columns c + l = (qc, nc + l), one column or a run (0 < nc, nc + L::N <=
    /// N), whose partner and band columns are then runs too.
    #[inline(always)]
    fn element<L: Lanes<Scalar = R>>(
        &self,
        x: &[Cx<R>],
        (q, n, (pr, gr, br, lr)): (usize, usize, (usize, R, usize, R)),
        (qc, nc): (usize, usize),
    ) -> CxLanes<L> {
        let (d, dim, nf) = (self.n_fock + 1, self.dim, self.n_fock);
        assert!(x.len() == dim * dim && self.kd.len() == dim && q < 4 && n < d && qc < 4 && nc + L::N <= d);
        assert!(L::N == 1 || (nc > 0 && nc + L::N <= nf), "a run of columns with a band and a kappa term each");
        let (r, c) = (q * d + n, qc * d + nc);
        // each has its kappa term; the two gamma terms, where both ends have the cell in g
        let (top, e1, e2) = (n < nf && nc + L::N <= nf, q < 2 && qc < 2, q & 1 == 0 && qc & 1 == 0);
        // SAFETY: every index below is a row (< dim) times dim plus the first of L::N columns
        // of one block (the last < dim by the asserts): the columns c.., their partner and
        // band runs (`col_partner` and `col_band` are < dim, and runs where L::N > 1), the
        // kappa term's c + 1.. where nc + L::N <= N, and the gamma terms' c + d.. and
        // c + 2d.. where the column's cells are in g; the rows are r, its `kx_rows` (< dim),
        // and r + 1 (n < N), r + d and r + 2d (the row's cells in g) likewise.
        let ld = |i: usize| unsafe { CxLanes::<L>::load(x, i) };
        let (pc, bc) = (self.col_partner[c], self.col_band[c]);
        debug_assert!((0..L::N).all(|l| self.col_partner[c + l] == pc + l && self.col_band[c + l] == bc + l));
        // (K x)[r, c] = kd[r] x(r, c) - i (g_r x(pr, c) + l_r x(br, c))
        let h_rc = ld(pr * dim + c).scale(L::splat(gr)).add(ld(br * dim + c).scale(L::splat(lr)));
        // conj((K x)[c, r]) with x(a, r) = conj(x(r, a)) (x Hermitian), read along row r:
        //   conj(kd[c]) x(r, c) + i (g_c x(r, pc) + l_c x(r, bc))
        let h_cr = ld(r * dim + pc).scale(lanes_of(&self.col_g, c)).add(ld(r * dim + bc).scale(lanes_of(&self.col_lam, c)));
        let diag = CxLanes::splat(self.kd[r]).add(unsafe { CxLanes::load(&self.kd, c) }.conj());
        let mut v = diag.mul(ld(r * dim + c)).add(h_rc.mul_minus_i()).add(h_cr.mul_i());
        // kappa a x a^+: sqrt((n+1)(nc+1)) as (kappa sqrt(n+1)) sqrt(nc+1)
        if top {
            let kappa_row = self.kappa * self.sqrt_n[n + 1];
            v = v.add(ld((r + 1) * dim + c + 1).scale(L::splat(kappa_row) * lanes_of(&self.sqrt_n, nc + 1)));
        }
        // gamma s-_1 x s+_1
        if e1 {
            v = v.add(ld((r + 2 * d) * dim + c + 2 * d).scale(L::splat(self.gamma)));
        }
        // gamma s-_2 x s+_2
        if e2 {
            v = v.add(ld((r + d) * dim + c + d).scale(L::splat(self.gamma)));
        }
        v
    }
}

/// The slot coefficients S_s of one RK4 stage, sum_k c_k w_ks (in drive order).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StageDrive<R> {
    pub slots: [R; DRIVE_SLOTS],
}

impl<R: Real> StageDrive<R> {
    fn new(c: &[R; MAX_DRIVES], weights: &[[R; DRIVE_SLOTS]]) -> Self {
        let mut slots = [R::ZERO; DRIVE_SLOTS];
        for (ck, w) in c.iter().zip(weights) {
            for s in 0..DRIVE_SLOTS {
                slots[s] = slots[s] + *ck * w[s];
            }
        }
        StageDrive { slots }
    }
}

/// The `[[drive]]`s of one member in the working precision: each drive's c(t) numbers and its
/// slot weights.
#[derive(Clone, Debug, Default)]
pub struct CavityDrives<R> {
    coeffs: Vec<DriveR<R>>,
    weights: Vec<[R; DRIVE_SLOTS]>,
}

impl<R: Real> CavityDrives<R> {
    pub fn new(drives: &[CavityDrive]) -> Self {
        assert!(drives.len() <= MAX_DRIVES, "at most {MAX_DRIVES} drives");
        let c = R::from_f64;
        CavityDrives { coeffs: drives.iter().map(|d| DriveR::new(&d.coeffs)).collect(), weights: drives.iter().map(|d| d.weights.map(c)).collect() }
    }

    pub fn is_empty(&self) -> bool {
        self.coeffs.is_empty()
    }

    /// The stage drives of a step of length h from t (at t, t + h/2, t + h/2, t + h: three
    /// distinct), or None where every drive's coefficient is 0 at all three (an undriven step).
    #[inline(always)]
    pub fn step_at(&self, t: R, h: R) -> Option<[StageDrive<R>; 3]> {
        if self.coeffs.is_empty() {
            return None;
        }
        let (c, any) = stage_coeffs(&self.coeffs, t, h);
        any.then(|| std::array::from_fn(|i| StageDrive::new(&c[i], &self.weights)))
    }
}

impl<R: Real> CavityOps<R> {
    /// A[r, c + l], l < L::N, of the module doc for the stage's slots (the kernel's
    /// `drive_term`), for the columns of `element` (one, or a run): the terms of the slot
    /// groups that are non-zero, in the order z, cell 1, cell 2, mode.
    #[inline(always)]
    fn drive_term<L: Lanes<Scalar = R>>(&self, sd: &StageDrive<R>, x: &[Cx<R>], (q, n): (usize, usize), (qc, nc): (usize, usize)) -> CxLanes<L> {
        let [sx1, sy1, sz1, sx2, sy2, sz2, sxa, sya] = sd.slots;
        let (d, dim, nf) = (self.n_fock + 1, self.dim, self.n_fock);
        assert!(x.len() == dim * dim && q < 4 && n < d && qc < 4 && nc + L::N <= d);
        assert!(L::N == 1 || (nc > 0 && nc + L::N <= nf), "a run of columns inside the block");
        let (r, c) = (q * d + n, qc * d + nc);
        // SAFETY: every index below is a row (< dim) times dim plus the first of L::N columns
        // of one block (the last < dim by the asserts): c.., the partner columns c +- d..,
        // c +- 2d.. (the other cell's state, same n), and c - 1.. where nc > 0, c + 1.. where
        // nc + L::N <= N; the rows are r, r +- d, r +- 2d, r - 1 (n > 0) and r + 1 (n < N).
        let ld = |i: usize| unsafe { CxLanes::<L>::load(x, i) };
        let cx = CxLanes::<L>::splat;
        let sel = |cond: bool, a: R, b: R| if cond { a } else { b };
        let mut a = cx(Cx::ZERO);
        if sz1 != R::ZERO || sz2 != R::ZERO {
            // (S_z1 z_1 + S_z2 z_2)(r) - (...)(c), z = +1 for e
            let zr = sel(q >= 2, sz1, -sz1) + sel(q & 1 == 1, sz2, -sz2);
            let zc = sel(qc >= 2, sz1, -sz1) + sel(qc & 1 == 1, sz2, -sz2);
            a = a.add(ld(r * dim + c).scale(L::splat(zr - zc)));
        }
        if sx1 != R::ZERO || sy1 != R::ZERO {
            // partner rows r ^ cell 1: +-2d; coefficients S_x1 + i s S_y1, conj on the column side
            let (pr, ur) = if q < 2 { (r + 2 * d, Cx::new(sx1, sy1)) } else { (r - 2 * d, Cx::new(sx1, -sy1)) };
            let (pc, uc) = if qc < 2 { (c + 2 * d, Cx::new(sx1, -sy1)) } else { (c - 2 * d, Cx::new(sx1, sy1)) };
            a = a.add(cx(ur).mul(ld(pr * dim + c))).sub(cx(uc).mul(ld(r * dim + pc)));
        }
        if sx2 != R::ZERO || sy2 != R::ZERO {
            let (pr, ur) = if q & 1 == 0 { (r + d, Cx::new(sx2, sy2)) } else { (r - d, Cx::new(sx2, -sy2)) };
            let (pc, uc) = if qc & 1 == 0 { (c + d, Cx::new(sx2, -sy2)) } else { (c - d, Cx::new(sx2, sy2)) };
            a = a.add(cx(ur).mul(ld(pr * dim + c))).sub(cx(uc).mul(ld(r * dim + pc)));
        }
        if sxa != R::ZERO || sya != R::ZERO {
            // n - 1 (sqrt(0) = 0 where n = 0, reading row r itself) and n + 1 (0 at the top)
            let lo = Cx::new(sxa, sya);
            let hi = Cx::new(sxa, -sya);
            let (rl, rh) = (usize::from(n > 0), usize::from(n < nf));
            let (cl, ch) = (usize::from(nc > 0), usize::from(nc + L::N <= nf));
            let top_r = if n < nf { self.sqrt_n[n + 1] } else { R::ZERO };
            let top_c = if nc + L::N <= nf { lanes_of(&self.sqrt_n, nc + 1) } else { L::splat(R::ZERO) };
            a = a
                .add(cx(lo.scale(self.sqrt_n[n])).mul(ld((r - rl) * dim + c)))
                .add(cx(hi.scale(top_r)).mul(ld((r + rh) * dim + c)))
                .sub(cx(hi).scale(lanes_of(&self.sqrt_n, nc)).mul(ld(r * dim + c - cl)))
                .sub(cx(lo).scale(top_c).mul(ld(r * dim + c + ch)));
        }
        a
    }
}

/// RK4 work space for one member.
pub struct CavityWork<R: Real> {
    k: Vec<Cx<R>>,
    acc: Vec<Cx<R>>,
    stage: Vec<Cx<R>>,
    /// Steps run in AVX2 lanes (`Real::X4Avx2`): asked for, and the CPU has AVX2.
    avx2: bool,
}

impl<R: Real> CavityWork<R> {
    pub fn new(dim: usize) -> Self {
        Self::with_lanes(dim, super::has_avx2())
    }

    /// Work space whose steps run in AVX2 lanes only with `avx2` (and a CPU that has
    /// it), else in portable lanes (`Real::X4`): the same bits either way.
    pub(crate) fn with_lanes(dim: usize, avx2: bool) -> Self {
        let zeros = || vec![Cx::ZERO; dim * dim];
        CavityWork { k: zeros(), acc: zeros(), stage: zeros(), avx2: avx2 && super::has_avx2() }
    }

    /// One classical RK4 step of size h on x (Hermitian).
    pub fn step(&mut self, ops: &CavityOps<R>, x: &mut [Cx<R>], h: R) {
        self.step_with(ops, x, h, None)
    }

    /// One classical RK4 step with the stage drives of `CavityDrives::step_at` (the drives at
    /// t, t + h/2, t + h/2, t + h); None: `step`.
    pub fn step_with(&mut self, ops: &CavityOps<R>, x: &mut [Cx<R>], h: R, drive: Option<&[StageDrive<R>; 3]>) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: avx2 is set only where the CPU reports AVX2.
            return unsafe { self.step_avx2(ops, x, h, drive) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = self.avx2;
        self.step_in::<R::X4>(ops, x, h, drive)
    }

    /// `step_with` compiled for AVX2, in its lanes.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn step_avx2(&mut self, ops: &CavityOps<R>, x: &mut [Cx<R>], h: R, drive: Option<&[StageDrive<R>; 3]>) {
        self.step_in::<R::X4Avx2>(ops, x, h, drive)
    }

    /// `step_with` in L's lanes, the loop compiled with or without the drive terms.
    #[inline(always)]
    fn step_in<L: Lanes<Scalar = R>>(&mut self, ops: &CavityOps<R>, x: &mut [Cx<R>], h: R, drive: Option<&[StageDrive<R>; 3]>) {
        match drive {
            None => self.step_gen::<false, L>(ops, x, h, None),
            Some(_) => self.step_gen::<true, L>(ops, x, h, drive),
        }
    }

    // Indexed loops over the elements, as the kernel's per-element updates.
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    fn step_gen<const DRIVEN: bool, L: Lanes<Scalar = R>>(&mut self, ops: &CavityOps<R>, x: &mut [Cx<R>], h: R, drive: Option<&[StageDrive<R>; 3]>) {
        let dr = |i: usize| drive.map(|d| &d[i]);
        let half = h * R::from_f64(0.5);
        let two = R::from_f64(2.0);
        ops.apply_gen::<DRIVEN, L>(x, &mut self.k, dr(0));
        for i in 0..x.len() {
            self.acc[i] = self.k[i];
            self.stage[i] = x[i].add(self.k[i].scale(half));
        }
        ops.apply_gen::<DRIVEN, L>(&self.stage, &mut self.k, dr(1));
        for i in 0..x.len() {
            self.acc[i] = self.acc[i].add(self.k[i].scale(two));
            self.stage[i] = x[i].add(self.k[i].scale(half));
        }
        ops.apply_gen::<DRIVEN, L>(&self.stage, &mut self.k, dr(1));
        for i in 0..x.len() {
            self.acc[i] = self.acc[i].add(self.k[i].scale(two));
            self.stage[i] = x[i].add(self.k[i].scale(h));
        }
        ops.apply_gen::<DRIVEN, L>(&self.stage, &mut self.k, dr(2));
        let sixth = h / R::from_f64(6.0);
        for i in 0..x.len() {
            x[i] = x[i].add(self.acc[i].add(self.k[i]).scale(sixth));
        }
    }
}

/// Step x (and z, the same way) through `schedule` with `ops`, and `ops_off` after `[protocol]
/// switch_off`, calling `on_sample(s, x, z)` at each sample. With drives, step j of a segment
/// that starts at t_s (0, a sample time, the switch-off time or a window edge) starts at
/// t_s + j dt, in f64 as
/// the reference takes it, then rounded to the working precision. `stop` is looked at before
/// each step (a step of this dimension takes microseconds to seconds; the kernel's equivalent is
/// the host's check between dispatches): false, the rest not taken, once it is set.
#[allow(clippy::too_many_arguments)]
pub fn integrate_schedule<R: Real>(
    ops: &CavityOps<R>,
    ops_off: &CavityOps<R>,
    drives: &CavityDrives<R>,
    x: &mut [Cx<R>],
    mut z: Option<&mut [Cx<R>]>,
    schedule: &Schedule,
    stop: super::Stop,
    mut on_sample: impl FnMut(usize, &[Cx<R>], Option<&[Cx<R>]>),
) -> bool {
    let mut work = CavityWork::<R>::new(ops.dim);
    let mut gen = ops;
    let mut t_seg = 0.0f64;
    for seg in &schedule.segments {
        let full = (0..seg.n_full).map(|j| (t_seg + j as f64 * schedule.dt, schedule.dt));
        let last = (seg.h_last > 0.0).then_some((t_seg + seg.n_full as f64 * schedule.dt, seg.h_last));
        for (t, h) in full.chain(last) {
            if stop() {
                return false;
            }
            let h = R::from_f64(h);
            let ds = drives.step_at(R::from_f64(t), h);
            work.step_with(gen, x, h, ds.as_ref());
            if let Some(z) = z.as_deref_mut() {
                work.step_with(gen, z, h, ds.as_ref());
            }
        }
        t_seg = schedule.end_time(seg.end);
        match seg.end {
            SegmentEnd::Sample(s) => on_sample(s, x, z.as_deref()),
            SegmentEnd::SwitchOff => gen = ops_off,
            SegmentEnd::Edge(_) => {}
        }
    }
    true
}

#[cfg(test)]
mod tests;
