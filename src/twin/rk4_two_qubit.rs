//! CPU twin of `shaders/rk4_two_qubit.wgsl`: the same loop, stage order, propagator,
//! compensated sums and closed-form measures, in f32 or f64, parallel over members (rayon).
//! Keep the two in sync: a change here without the same change in the shader (or back) is a
//! bug. In f32 the twin and the kernel on lavapipe agree to a few ulp.
//!
//! Stepping: a full step of `dt` is x <- x + D x with the RK4 increment matrix
//! D = hG + (hG)^2/2 + (hG)^3/6 + (hG)^4/24 (h = dt), computed on the host in f64. For the
//! linear autonomous ODE dx/dt = G x this is exactly the classical RK4 update. Keeping P - I
//! rather than P keeps the stored matrix small, and the update x + Dx is summed with a Kahan
//! compensation term carried with the state (across pieces and dispatches), so that the
//! rounding of 1e4 small increments does not pile up: in f32 the states stay within about 1e-6
//! of the exact RK4 sequence after 1e4 steps (3e-6 without compensation). A shortened last
//! step of a segment takes the explicit stages k1..k4 with G and is added the same way.
//!
//! Sample channel: with dephasing p (spin-pair), each sample is measured on a copy of the state
//! with x_ab scaled by (1 - 2p)^(number of a, b in {x, y}); the evolving state is untouched. The
//! same copy rule applies to the evolved matrix Z of `energy_fluctuation_b` and to the t = 0
//! references (rho0 and Z(0)), so that every sample, t = 0 included, sees the same channel. The
//! states returned with `keep_states` are these sample copies (identical to the state when
//! p = 0), so that host-side measures of them need no channel of their own.
//!
//! Relative to t = 0: stored_energy_b and energy_fluctuation_b are formed from the differences
//! x(t) - x(0) and Z(t) - Z(0), which vanish exactly at t = 0. Written directly,
//! Sigma^2 = Tr(H_B^2 rho_b(t)) - 2 Tr(H_B Z_b(t)) + Tr(H_B^2 rho_b(0)) - stored^2 cancels at
//! O(1), and the square root would magnify that rounding (1e-8 in f64, 3e-4 in f32) near t = 0.
//! Z is that of H_B's traceless part h.sigma, so that an offset h0 of H_B (whose Z is
//! h0 rho + Z) costs no digits (`arith::fluctuation_sq`).
//!
//! `entropy_b` is computed in the kernel without transcendentals: log2 is evaluated by exact
//! power-of-two range reduction to [1/sqrt 2, sqrt 2] and an atanh series (accurate to the
//! working precision, also in f64 where WGSL's f64 `log` is unusable on some drivers).
//! `bell_chsh` takes the eigenvalues of T T^T by cyclic Jacobi sweeps (at most six).
//!
//! Driven points (`[[drive]]`) take the classical stages with the drives' coefficients; on the
//! CPU, four consecutive members of one driven point run together in lanes (`lanes`), with
//! each lane doing this file's operations in this file's order (the same bits).
//!
//! `[protocol] switch_off`: the schedule's switch-off segment ends in a piece without a sample,
//! and the pieces after it are `uncoupled`: they step with the point's uncoupled generator
//! (`TwoQubitPoint::generator_off`). The kernel gets the same by running those pieces in their
//! own dispatches with a point offset into the uncoupled copies of the points.
//!
//! The shader also keeps a step count per member (pieces completed, dispatches that fell short),
//! which the host checks, so that a driver that cuts loops short is an error; the CPU needs no
//! such guard.
//!
//! Measures that the kernel does not compute (those that need an eigensolve, and the cavity
//! ones) come back as NaN columns; the host fills them from states.

use super::drive::{driven_increment, stage_coeffs, DriveR, SparseR};
use super::{matvec, rk4_stages, Real};
use crate::job::two_qubit::*;
use crate::job::{piece_starts, plan_pieces, Peak, Piece, TwoQubitJob, TwoQubitResult, NO_SAMPLE};
use rayon::prelude::*;

mod arith;
mod lanes;
mod states;
use arith::{anticommutator, fluctuation_sq, neg_plogp};
pub use arith::{log2_arith, sym3_eigenvalues};
use lanes::LANES;
pub use states::StateMeasures;

/// A point's constants in the working precision.
struct PointR<R> {
    /// D and G, transposed (see `matvec`).
    d: [R; 256],
    g: [R; 256],
    hb: [R; 4],
    hc: [R; 4],
    mask: [R; 16],
    nhb: R,
    nhc: R,
    nhb2: R,
    /// `[[drive]]`: each drive's numbers, and the non-zeros of G (first) and of each drive's
    /// generator G_k for the driven stages (empty without drives).
    drives: Vec<DriveR<R>>,
    sparse: Vec<SparseR<R>>,
    /// The same generators' non-zero entries, for members run in lanes (`lanes`).
    entries: Vec<lanes::Entries<R>>,
}

impl<R: Real> PointR<R> {
    fn new(k: &KernelPoint) -> Self {
        let c = R::from_f64;
        PointR {
            d: transpose(&k.d.map(c)),
            g: transpose(&k.g.map(c)),
            hb: k.hb.map(c),
            hc: k.hc.map(c),
            mask: k.mask().map(c),
            nhb: c(k.nhb),
            nhc: c(k.nhc),
            nhb2: c(k.nhb2),
            drives: vec![],
            sparse: vec![],
            entries: vec![],
        }
    }

    /// With the point's drives; `k.g` is the generator the point steps with.
    fn with_drives(mut self, k: &KernelPoint, drives: &[PointDrive]) -> Self {
        self.drives = drives.iter().map(|d| DriveR::new(&d.coeffs)).collect();
        let generators: Vec<&[f64; 256]> = if drives.is_empty() { vec![] } else { std::iter::once(&k.g).chain(drives.iter().map(|d| &d.generator)).collect() };
        self.sparse = generators.iter().map(|m| SparseR::new(&SparseGenerator::from_dense(m))).collect();
        self.entries = generators.iter().map(|m| lanes::Entries::from_dense(m)).collect();
        self
    }
}

// ---- the kernel's arithmetic, in the shader's order -------------------------------------

#[inline(always)]
fn dot4<R: Real>(a: &[R], b: &[R]) -> R {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3]
}

#[inline(always)]
fn dot3<R: Real>(a: &[R], b: &[R]) -> R {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Row-major 16x16 -> transposed.
fn transpose<R: Real>(m: &[R; 256]) -> [R; 256] {
    std::array::from_fn(|j| m[16 * (j % 16) + j / 16])
}

/// A 16-vector with a Kahan compensation term (the shader's `Acc`).
#[derive(Clone, Copy)]
struct Acc<R> {
    x: [R; 16],
    c: [R; 16],
}

impl<R: Real> Acc<R> {
    fn new(x: [R; 16]) -> Self {
        Acc { x, c: [R::ZERO; 16] }
    }

    /// x += dx, compensated: y = dx - c; t = x + y; c = (t - x) - y; x = t.
    #[inline(always)]
    fn add(&mut self, dx: &[R; 16]) {
        for ((x, c), d) in self.x.iter_mut().zip(self.c.iter_mut()).zip(dx) {
            let y = *d - *c;
            let t = *x + y;
            *c = (t - *x) - y;
            *x = t;
        }
    }
}

/// Full step: x + D x, D = P - I.
#[inline(always)]
fn full_step<R: Real>(d: &[R; 256], a: &mut Acc<R>) {
    let dx = matvec(d, &a.x);
    a.add(&dx);
}

/// The increment of one explicit RK4 step of length h with the generator.
fn rk4_increment_stages<R: Real>(g: &[R; 256], x: &[R; 16], h: R) -> [R; 16] {
    rk4_stages(x, h, |_, y| matvec(g, y))
}

/// One explicit RK4 step of length h with the generator.
fn rk4_step<R: Real>(g: &[R; 256], a: &mut Acc<R>, h: R) {
    let dx = rk4_increment_stages(g, &a.x, h);
    a.add(&dx);
}

/// One step of length h from t of a driven point: where every drive's coefficient is 0 on all
/// three stage times it is the undriven step (x + D x for a full step, the stages with G for a
/// shortened one), bit for bit; otherwise the classical stages with the drives at t, t + h/2,
/// t + h/2 and t + h.
#[inline(always)]
fn driven_step<R: Real>(p: &PointR<R>, a: &mut Acc<R>, t: R, h: R, full: bool) {
    let (c, any) = stage_coeffs(&p.drives, t, h);
    if !any {
        if full {
            full_step(&p.d, a);
        } else {
            rk4_step(&p.g, a, h);
        }
        return;
    }
    a.add(&driven_increment(&p.sparse[0], &p.sparse[1..], &c, &a.x, h));
}

#[inline(always)]
fn dephase<R: Real>(x: &[R; 16], mask: &[R; 16]) -> [R; 16] {
    std::array::from_fn(|i| x[i] * mask[i])
}

#[inline(always)]
fn cabs<R: Real>(re: R, im: R) -> R {
    (re * re + im * im).sqrt()
}

/// The t = 0 references: the battery rows (a = 0) of the sample copies of rho0 and Z(0).
fn references<R: Real>(x0: &[R; 16], p: &PointR<R>) -> ([R; 4], [R; 4]) {
    let z0 = anticommutator(x0, &p.hb);
    (std::array::from_fn(|i| x0[i] * p.mask[i]), std::array::from_fn(|i| z0[i] * p.mask[i]))
}

/// Every kernel measure of one sample (the shader's `sample_measures`), by kernel code.
/// `y` is the sample copy of the state, `yza` the battery row of that of Z, `y0a` and `z0a`
/// the same rows at t = 0 (differences vanish exactly at t = 0). The measures under a flag
/// that no column asks for are 0 (`KernelFlags`); energy_b, ergotropy_b and both powers are
/// always taken, for the peaks.
#[inline(always)]
fn sample_measures<R: Real>(y: &[R; 16], yza: &[R; 4], y0a: &[R; 4], z0a: &[R; 4], t: R, p: &PointR<R>, flags: u32) -> [R; N_CODES] {
    let c = R::from_f64;
    let zero = R::ZERO;
    let half = c(0.5);
    let two = c(2.0);
    let mut m = [zero; N_CODES];
    let rb = &y[1..4];
    let e_b = dot4(&p.hb, &y[0..4]);
    let nrb = dot3(rb, rb).sqrt();
    let hr = dot3(&p.hb[1..4], rb);
    let ergo = hr + p.nhb * nrb;
    let dya: [R; 4] = std::array::from_fn(|i| y[i] - y0a[i]);
    let stored = dot4(&p.hb, &dya);
    let tpos = t > zero;
    m[0] = e_b;
    m[2] = stored;
    m[3] = ergo;
    m[4] = hr - p.nhb * nrb;
    m[5] = two * p.nhb * nrb;
    m[7] = if tpos { stored / t } else { zero };
    m[8] = if tpos { ergo / t } else { zero };
    m[9] = variance(p.nhb, hr, y[0]);
    if flags & F_Z != 0 {
        let dza: [R; 4] = std::array::from_fn(|i| yza[i] - z0a[i]);
        let s2 = fluctuation_sq(&p.hb, p.nhb2, &dya, &dza);
        m[10] = if s2 >= zero { s2.sqrt() } else { -(-s2).sqrt() };
    }
    let t1 = &y[5..8];
    let t2 = &y[9..12];
    let t3 = &y[13..16];
    let s11 = dot3(t1, t1);
    let s22 = dot3(t2, t2);
    let s33 = dot3(t3, t3);
    m[11] = s11 + s22 + s33 - R::ONE;
    if flags & F_BELL != 0 {
        let ev = sym3_eigenvalues(s11, dot3(t1, t2), dot3(t1, t3), s22, dot3(t2, t3), s33);
        let lo = if ev[0] < ev[1] { ev[0] } else { ev[1] };
        let lo = if lo < ev[2] { lo } else { ev[2] };
        let u = ev[0] + ev[1] + ev[2] - lo;
        m[12] = two * u.sqrt() - two;
    }
    if flags & F_COHERENCE != 0 {
        // Upper off-diagonal entries of rho, times 4 (see the shader for the derivation).
        let e = [
            (y[1] - y[13], y[2] - y[14]),
            (y[1] + y[13], y[2] + y[14]),
            (y[4] - y[7], y[8] - y[11]),
            (y[5] - y[10], y[6] + y[9]),
            (y[5] + y[10], y[9] - y[6]),
            (y[4] + y[7], y[8] + y[11]),
        ];
        let mut coh = zero;
        let mut ima = zero;
        for (re, im) in e {
            coh = coh + cabs(re, im);
            ima = ima + im.abs();
        }
        m[13] = half * coh;
        m[14] = half * ima;
    }
    let tr_dev = (y[0] - R::ONE).abs();
    if flags & F_TEXTURE != 0 {
        let dx = y[1] - R::ONE;
        let dtex = (dx * dx + y[2] * y[2] + y[3] * y[3]).sqrt();
        m[15] = half * if tr_dev > dtex { tr_dev } else { dtex };
    }
    m[16] = c(0.25) * (dot4(&y[0..4], &y[0..4]) + dot4(&y[4..8], &y[4..8]) + dot4(&y[8..12], &y[8..12]) + dot4(&y[12..16], &y[12..16]));
    if flags & F_ENTROPY != 0 {
        let lp = (y[0] + nrb) * half;
        let lm = (y[0] - nrb) * half;
        m[17] = neg_plogp(lp) + neg_plogp(lm);
    }
    m[18] = tr_dev;
    if flags & F_CHARGER != 0 {
        let rc = [y[4], y[8], y[12]];
        let e_c = dot4(&p.hc, &[y[0], y[4], y[8], y[12]]);
        let nrc = dot3(&rc, &rc).sqrt();
        m[1] = e_c;
        m[6] = two * p.nhc * nrc;
        charger_measures(&mut m, y, p, nrc, tr_dev);
    }
    m
}

/// Tr(rho H^2) - Tr(rho H)^2 of one qubit from |h|, h.r and x_00: that of H's traceless part
/// h.sigma, which an offset h0 changes only through the initial trace's rounding (the
/// shader's `variance`, with the algebra).
#[inline(always)]
fn variance<R: Real>(nh: R, hr: R, x00: R) -> R {
    nh * nh * x00 - hr * hr
}

/// The charger's mirrors of the battery measures and <s-> of both qubits (codes 19..26), as
/// in the shader's charger block. rho_c = (1/2)(x_00 I + r_c.sigma), r_c = (x_10, x_20, x_30);
/// <s-> = rho[(e, g)] = (x_1 - i x_2)/2 of the qubit's Bloch vector.
#[inline(always)]
fn charger_measures<R: Real>(m: &mut [R; N_CODES], y: &[R; 16], p: &PointR<R>, nrc: R, tr_dev: R) {
    let half = R::from_f64(0.5);
    let rc = [y[4], y[8], y[12]];
    let hr = dot3(&p.hc[1..4], &rc);
    let dx = rc[0] - R::ONE;
    let dtex = (dx * dx + rc[1] * rc[1] + rc[2] * rc[2]).sqrt();
    m[19] = half * if tr_dev > dtex { tr_dev } else { dtex };
    m[20] = hr + p.nhc * nrc;
    m[21] = hr - p.nhc * nrc;
    m[22] = variance(p.nhc, hr, y[0]);
    m[23] = half * y[1];
    m[24] = -half * y[2];
    m[25] = half * y[4];
    m[26] = -half * y[8];
}

/// One member's output slices: values, states and peaks.
type MemberOut<'a> = (&'a mut [f64], &'a mut [f64], &'a mut [Peak]);

/// The kernel's per-member data in the working precision, shared by all members.
struct TwinPlan<R> {
    points: Vec<PointR<R>>,
    /// The points after the switch-off (empty where the schedule has none).
    points_off: Vec<PointR<R>>,
    pieces: Vec<(Piece, R)>,
    /// Start time of each piece (`job::piece_starts`), for the drives.
    starts: Vec<R>,
    dt: R,
    times: Vec<R>,
    /// Kernel code of each output column (None: not a kernel measure, NaN).
    cols: Vec<Option<usize>>,
    flags: u32,
}

/// Sample s of one member: its kernel measures into row s of `values`, its sample copy into
/// `states` (with `F_STATES`), and the running peaks of energy_b, ergotropy_b, power_b and
/// ergotropy power. `refs` are the t = 0 references of `references`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn take_sample<R: Real>(
    plan: &TwinPlan<R>,
    p: &PointR<R>,
    x: &[R; 16],
    z: &[R; 16],
    refs: (&[R; 4], &[R; 4]),
    s: usize,
    values: &mut [f64],
    states: &mut [f64],
    peaks: (&mut [R; 4], &mut [R; 4]),
) {
    let n_cols = plan.cols.len();
    let t = plan.times[s];
    let y = dephase(x, &p.mask);
    let yza: [R; 4] = std::array::from_fn(|i| z[i] * p.mask[i]);
    let m = sample_measures(&y, &yza, refs.0, refs.1, t, p, plan.flags);
    let row = &mut values[s * n_cols..(s + 1) * n_cols];
    for (v, col) in row.iter_mut().zip(&plan.cols) {
        *v = match col {
            Some(k) => m[*k].to_f64(),
            None => f64::NAN,
        };
    }
    if plan.flags & F_STATES != 0 {
        for (o, v) in states[16 * s..16 * s + 16].iter_mut().zip(&y) {
            *o = v.to_f64();
        }
    }
    let v = [m[0], m[3], m[7], m[8]];
    let sr = R::from_f64(s as f64);
    let (pmax, pidx) = peaks;
    for k in 0..4 {
        if s == 0 || v[k] > pmax[k] {
            pmax[k] = v[k];
            pidx[k] = sr;
        }
    }
}

/// The peaks of a finished member, from the running maxima and their sample indices.
fn finish_peaks<R: Real>(pmax: &[R; 4], pidx: &[R; 4], peaks: &mut [Peak], times: &[f64]) {
    if !times.is_empty() {
        for k in 0..4 {
            peaks[k] = Peak { max: pmax[k].to_f64(), t_max: times[pidx[k].to_f64() as usize] };
        }
    }
}

/// One member: steps, samples and peaks, written into its slices of the result. `p_off`
/// steps the pieces after `[protocol] switch_off` (the kernel's uncoupled point copies).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn run_member<R: Real>(
    plan: &TwinPlan<R>,
    p: &PointR<R>,
    p_off: &PointR<R>,
    x0: &[f64; 16],
    values: &mut [f64],
    states: &mut [f64],
    peaks: &mut [Peak],
    times: &[f64],
    stop: Stop,
) {
    let flags = plan.flags;
    let ez = flags & F_Z != 0;
    let x0: [R; 16] = x0.map(R::from_f64);
    let mut x = Acc::new(x0);
    let mut z = Acc::new(if ez { anticommutator(&x0, &p.hb) } else { [R::ZERO; 16] });
    let (y0a, z0a) = references(&x0, p);
    let mut pmax = [R::ZERO; 4];
    let mut pidx = [R::ZERO; 4];
    let Some(mut check) = StopCheck::new(stop) else {
        return;
    };
    for (pi, &(piece, h)) in plan.pieces.iter().enumerate() {
        // The kernel runs uncoupled pieces in their own dispatches, with the uncoupled point's
        // constants (whose h_B, h_C and mask are the coupled point's).
        let ps = if piece.uncoupled { p_off } else { p };
        if !ps.drives.is_empty() {
            // Step j of the piece starts at t0 + j dt (unfinished where stopped: given up).
            let t0 = plan.starts[pi];
            let finished = stoppable_steps!(check, piece.n_full, j => {
                let t = t0 + R::from_f64(j as f64) * plan.dt;
                driven_step(ps, &mut x, t, plan.dt, true);
                if ez {
                    driven_step(ps, &mut z, t, plan.dt, true);
                }
            });
            if !finished {
                return;
            }
            if h > R::ZERO {
                let t = t0 + R::from_f64(piece.n_full as f64) * plan.dt;
                driven_step(ps, &mut x, t, h, false);
                if ez {
                    driven_step(ps, &mut z, t, h, false);
                }
            }
        } else if ez {
            if !stoppable_steps!(check, piece.n_full, _ => {
                full_step(&ps.d, &mut x);
                full_step(&ps.d, &mut z);
            }) {
                return;
            }
        } else if !stoppable_steps!(check, piece.n_full, _ => { full_step(&ps.d, &mut x); }) {
            return;
        }
        if h > R::ZERO && ps.drives.is_empty() {
            rk4_step(&ps.g, &mut x, h);
            if ez {
                rk4_step(&ps.g, &mut z, h);
            }
        }
        if piece.sample != NO_SAMPLE {
            take_sample(plan, p, &x.x, &z.x, (&y0a, &z0a), piece.sample as usize, values, states, (&mut pmax, &mut pidx));
        }
    }
    finish_peaks(&pmax, &pidx, peaks, times);
}

/// Two members of undriven points in a job without Z (`run_member` for each, the same
/// bits), their steps alternating: one member's step is a chain of dependent sums (x + D x,
/// then its Kahan term), which alone leaves the core waiting on latency; two independent
/// chains fill it. (Where Z is stepped beside x, a member has two chains already, and a pair
/// measured slower.) The kernel runs one member per invocation.
#[inline(always)]
fn run_member_pair<R: Real>(plan: &TwinPlan<R>, points: [(&PointR<R>, &PointR<R>); 2], x0: [&[f64; 16]; 2], outs: [MemberOut; 2], times: &[f64], stop: Stop) {
    let x0: [[R; 16]; 2] = x0.map(|x| x.map(R::from_f64));
    let mut x = x0.map(Acc::new);
    let refs = [references(&x0[0], points[0].0), references(&x0[1], points[1].0)];
    let no_z = [R::ZERO; 16];
    let mut pmax = [[R::ZERO; 4]; 2];
    let mut pidx = [[R::ZERO; 4]; 2];
    let mut outs = outs;
    let Some(mut check) = StopCheck::new(stop) else {
        return;
    };
    for &(piece, h) in &plan.pieces {
        let ps = points.map(|(p, p_off)| if piece.uncoupled { p_off } else { p });
        if !stoppable_steps!(check, piece.n_full, _ => {
            full_step(&ps[0].d, &mut x[0]);
            full_step(&ps[1].d, &mut x[1]);
        }) {
            return;
        }
        if h > R::ZERO {
            rk4_step(&ps[0].g, &mut x[0], h);
            rk4_step(&ps[1].g, &mut x[1], h);
        }
        if piece.sample != NO_SAMPLE {
            for (k, (values, states, _)) in outs.iter_mut().enumerate() {
                let r = (&refs[k].0, &refs[k].1);
                take_sample(plan, points[k].0, &x[k].x, &no_z, r, piece.sample as usize, values, states, (&mut pmax[k], &mut pidx[k]));
            }
        }
    }
    for (k, (_, _, peaks)) in outs.iter_mut().enumerate() {
        finish_peaks(&pmax[k], &pidx[k], peaks, times);
    }
}

use super::{simd_dispatch, Isa, Stop, StopCheck};

simd_dispatch!(fn run_member_dispatch, run_member_avx2, run_member_avx512 => run_member(
    plan: &TwinPlan<R>, p: &PointR<R>, p_off: &PointR<R>, x0: &[f64; 16], values: &mut [f64], states: &mut [f64], peaks: &mut [Peak], times: &[f64], stop: Stop
));
simd_dispatch!(fn run_member_pair_dispatch, run_member_pair_avx2, run_member_pair_avx512 => run_member_pair(
    plan: &TwinPlan<R>, points: [(&PointR<R>, &PointR<R>); 2], x0: [&[f64; 16]; 2], outs: [MemberOut; 2], times: &[f64], stop: Stop
));

/// Run a two-qubit job on the CPU in precision R (f32 or f64). Values come back as f64.
pub fn run_two_qubit_twin<R: Real>(job: &TwoQubitJob) -> TwoQubitResult {
    run_twin::<R>(job, Isa::best(), true, TwinBuffers::default(), None, &super::never_stop).0
}

/// `run_two_qubit_twin` writing into the buffers of an earlier result (`TwinBuffers::from`):
/// a run in slices reuses memory already faulted in and in cache, where fresh buffers per
/// slice cost a page fault per 4 KiB written. Once `stop` says so (`super::StopCheck`), the
/// members give up and the result is unfinished: the caller discards it.
pub fn run_two_qubit_twin_reusing<R: Real>(job: &TwoQubitJob, buffers: TwinBuffers, stop: Stop) -> TwoQubitResult {
    run_twin::<R>(job, Isa::best(), true, buffers, None, stop).0
}

/// `run_two_qubit_twin_reusing` with the values written into `values` (members x samples x
/// `job.measures`, at least one measure) rather than the result's, which comes back empty:
/// where they are the caller's output as they are, no copy is made.
pub fn run_two_qubit_twin_into<R: Real>(job: &TwoQubitJob, buffers: TwinBuffers, values: &mut [f64], stop: Stop) -> TwoQubitResult {
    assert!(
        !job.measures.is_empty() && values.len() == job.initial.len() * job.schedule.times.len() * job.measures.len(),
        "values for every member, sample and measure"
    );
    run_twin::<R>(job, Isa::best(), true, buffers, Some(values), stop).0
}

/// The output buffers of a spent `TwoQubitResult`, for `run_two_qubit_twin_reusing`.
#[derive(Default)]
pub struct TwinBuffers {
    values: Vec<f64>,
    states: Vec<f64>,
}

impl From<TwoQubitResult> for TwinBuffers {
    fn from(r: TwoQubitResult) -> Self {
        TwinBuffers { values: r.values, states: r.states.unwrap_or_default() }
    }
}

/// How many members `run_twin` ran together: lane groups of four, pairs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Groups {
    lanes: usize,
    pairs: usize,
}

/// `isa`: the vector instructions the member loop is compiled for (at most what this CPU has,
/// `simd_dispatch!`). `grouped`: run the members of a driven point four at a time (`lanes`),
/// and those of undriven points two at a time where there is no Z (`run_member_pair`); the
/// same bits as one at a time. The values go into `values_out` where given (see
/// `run_two_qubit_twin_into`). Also returns how many lane groups and pairs ran.
fn run_twin<R: Real>(job: &TwoQubitJob, isa: Isa, grouped: bool, buffers: TwinBuffers, values_out: Option<&mut [f64]>, stop: Stop) -> (TwoQubitResult, Groups) {
    let dt = job.schedule.dt;
    let n_samples = job.schedule.times.len();
    let n_cols = job.measures.len();
    let n_members = job.initial.len();
    let pieces = plan_pieces(&job.schedule, u64::MAX);
    let plan = TwinPlan::<R> {
        points: job
            .points
            .iter()
            .map(|p| {
                let k = KernelPoint::new(p, dt);
                PointR::new(&k).with_drives(&k, &p.drives)
            })
            .collect(),
        points_off: if job.schedule.switch_segment().is_some() {
            job.points
                .iter()
                .map(|p| {
                    let k = KernelPoint::uncoupled(p, dt);
                    PointR::new(&k).with_drives(&k, &p.drives)
                })
                .collect()
        } else {
            vec![]
        },
        starts: piece_starts(&job.schedule, &pieces).into_iter().map(R::from_f64).collect(),
        dt: R::from_f64(dt),
        pieces: pieces.into_iter().map(|p| (p, R::from_f64(p.h_last))).collect(),
        times: job.schedule.times.iter().map(|&t| R::from_f64(t)).collect(),
        cols: job.measures.iter().map(|&m| kernel_code(m).map(|c| c as usize)).collect(),
        flags: KernelFlags::for_job(job).bits(),
    };
    let vstride = n_samples * n_cols;
    let sstride = if job.keep_states { n_samples * 16 } else { 0 };
    // Zero-width outputs get a one-element dummy per member so that the zip below keeps
    // one item per member.
    let TwinBuffers { mut values, mut states } = buffers;
    let values_len = if values_out.is_some() { 0 } else { n_members * vstride.max(1) };
    // (a reused buffer keeps its old entries: every member writes each of its own, as the test
    // of reused buffers holding NaN checks, so only a longer one is zeroed where it grows)
    for (buffer, len) in [(&mut values, values_len), (&mut states, n_members * sstride.max(1))] {
        buffer.truncate(len);
        buffer.resize(len, 0.0);
    }
    let written = values_out.is_some();
    let values_to: &mut [f64] = match values_out {
        Some(out) => out,
        None => &mut values,
    };
    let mut peaks = vec![Peak::default(); n_members * 4];
    let (vs, ss) = (vstride.max(1), sstride.max(1));
    let times = &job.schedule.times;
    let point = |k: usize| (&plan.points[k], plan.points_off.get(k).unwrap_or(&plan.points[k]));
    let in_lanes = |k: usize| grouped && !point(k).0.drives.is_empty() && !point(k).1.drives.is_empty();
    let undriven = |k: usize| point(k).0.drives.is_empty() && point(k).1.drives.is_empty();
    let pairs = grouped && plan.flags & F_Z == 0;
    let mut groups = Groups::default();
    if (0..job.points.len()).any(in_lanes) {
        // Members of a point are not consecutive (a sweep interleaves its points), so the
        // work items are built per point: four members of a driven point, two of an undriven
        // one (`pairs`), else one member.
        let mut outs: Vec<Option<MemberOut>> =
            values_to.chunks_mut(vs).zip(states.chunks_mut(ss)).zip(peaks.chunks_mut(4)).map(|((v, s), p)| Some((v, s, p))).collect();
        let mut by_point = vec![vec![]; job.points.len()];
        for (m, &k) in job.member_point.iter().enumerate() {
            by_point[k as usize].push(m);
        }
        let mut items: Vec<Vec<(usize, MemberOut)>> = vec![];
        for (k, members) in by_point.iter().enumerate() {
            let pair = pairs && undriven(k);
            for chunk in members.chunks(if in_lanes(k) {
                LANES
            } else if pair {
                2
            } else {
                1
            }) {
                let mut take = |m: usize| (m, outs[m].take().expect("each member once"));
                match chunk.len() {
                    LANES => items.push(chunk.iter().map(|&m| take(m)).collect()),
                    2 if pair => items.push(chunk.iter().map(|&m| take(m)).collect()),
                    _ => items.extend(chunk.iter().map(|&m| vec![take(m)])),
                }
            }
        }
        groups.lanes = items.iter().filter(|i| i.len() == LANES).count();
        groups.pairs = items.iter().filter(|i| i.len() == 2).count();
        items.into_par_iter().for_each(|mut item| {
            let (p, p_off) = point(job.member_point[item[0].0] as usize);
            if let [(m0, o0), (m1, o1)] = &mut item[..] {
                let outs = [(&mut *o0.0, &mut *o0.1, &mut *o0.2), (&mut *o1.0, &mut *o1.1, &mut *o1.2)];
                run_member_pair_dispatch(isa, &plan, [(p, p_off); 2], [&job.initial[*m0], &job.initial[*m1]], outs, times, stop);
                return;
            }
            if item.len() == LANES {
                let x0 = std::array::from_fn(|l| &job.initial[item[l].0]);
                if lanes::run_lanes_dispatch(isa, &plan, p, p_off, x0, &mut item, times, stop) {
                    return;
                }
                // A state went non-finite: the lanes skip zero products, which the twin
                // takes (0 * inf = NaN), so these members run again one at a time.
            }
            for (m, (v, s, pk)) in item.iter_mut() {
                run_member_dispatch(isa, &plan, p, p_off, &job.initial[*m], v, s, pk, times, stop);
            }
        });
    } else {
        // Two members at a time where both are undriven (`pairs`), else one.
        let group = if pairs { 2 } else { 1 };
        let pair_of = |m: usize| group == 2 && m + 1 < n_members && undriven(job.member_point[m] as usize) && undriven(job.member_point[m + 1] as usize);
        groups.pairs = (0..n_members).step_by(group).filter(|&m| pair_of(m)).count();
        values_to.par_chunks_mut(group * vs).zip(states.par_chunks_mut(group * ss)).zip(peaks.par_chunks_mut(4 * group)).enumerate().for_each(
            |(g, ((v, s), pk))| {
                let m = group * g;
                if pair_of(m) {
                    let ((v0, v1), (s0, s1), (pk0, pk1)) = (v.split_at_mut(vs), s.split_at_mut(ss), pk.split_at_mut(4));
                    let points = [point(job.member_point[m] as usize), point(job.member_point[m + 1] as usize)];
                    run_member_pair_dispatch(isa, &plan, points, [&job.initial[m], &job.initial[m + 1]], [(v0, s0, pk0), (v1, s1, pk1)], times, stop);
                    return;
                }
                for (k, ((v, s), pk)) in v.chunks_mut(vs).zip(s.chunks_mut(ss)).zip(pk.chunks_mut(4)).enumerate() {
                    let (p, p_off) = point(job.member_point[m + k] as usize);
                    run_member_dispatch(isa, &plan, p, p_off, &job.initial[m + k], v, s, pk, times, stop);
                }
            },
        );
    }
    if vstride == 0 || written {
        values.clear();
    }
    (TwoQubitResult { measures: job.measures.clone(), values, states: if job.keep_states { Some(states) } else { None }, peaks }, groups)
}

#[cfg(test)]
mod tests;
