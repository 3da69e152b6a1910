//! Driven members of one point, four at a time: the CPU engine's form of `run_member` for
//! points with `[[drive]]`. Each lane does the twin's operations in the twin's order (no FMA,
//! no regrouping), skipping only products with a zero entry, so while the states are finite a
//! member's values are the same bits in a lane as alone; only the work around them is shared.
//! A group whose states went non-finite runs again one member at a time (`run_twin`).
//!
//! Why it pays: a driven stage is (G + sum_k c_k G_k) x, and bloch-charger's G has non-zeros
//! in 15 of its 16 4x4 tiles, so the twin's tile products cost about a dense matvec per stage
//! (four per step, against one for the undriven x + D x). G has 48 non-zero entries of 256 and
//! sx_b's G_k 8, so products over the non-zero entries alone cost about a quarter; one member
//! cannot fill a vector with them (each entry is one scalar product), but the four members of
//! a lane group can: each entry is one 4-wide multiply and add. The stage coefficients c_k(t)
//! are shared too, computed once per step for the group.
//!
//! Bits: within a 4x4 tile the twin sums a row as ((v0 x0 + v1 x1) + v2 x2) + v3 x3 and the
//! tiles as y = (0 + d_0) + d_1 ...; for finite x, dropping a term v x with v = 0 (a +-0
//! product) leaves every such sum unchanged, the sign of a zero included (the running row sum
//! starts at +0 and can never be -0: +0 + -0 = +0 and exact cancellation gives +0). So the
//! entry form keeps each tile's grouping and skips only zero entries and zero rows. With an
//! infinite or NaN entry in x the twin's 0 * inf is NaN where the lanes have nothing, hence the
//! rerun.

use super::{full_step, references, rk4_step, take_sample, Acc, MemberOut, PointR, TwinPlan};
use crate::job::drive::MAX_DRIVES;
use crate::job::two_qubit::F_Z;
use crate::job::NO_SAMPLE;
use crate::twin::drive::stage_coeffs;
use crate::twin::{Real, Stop, StopCheck};

/// Members per lane group.
pub const LANES: usize = 4;

type Lanes<R> = [R; LANES];

/// A generator's non-zero entries (in the working precision) as a fixed program with no
/// branch on the data. The twin sums a row tile by tile, y = ((+0 + d_0) + d_1) + ..., each
/// tile's d = ((v_0 x_0 + v_1 x_1) + ...) over its entries in column order. Here a tile with
/// one entry is the term v x itself; a tile with more is summed first into a source slot
/// after x (taken as 1 * d, exact). The row sums then run as y_row = y_row + v src_j, sorted
/// by their place in the row (stably): the sums of one place touch different rows, so they are
/// independent of each other, and each row keeps its tile order. (Bloch-charger's G has 48
/// entries in 42 tile rows, 6 of them with more than one entry.)
#[derive(Clone, Debug)]
pub struct Entries<R> {
    /// Tiles with more than one entry: tile t has the entries tile_end[t - 1]..tile_end[t].
    tile_end: Vec<u16>,
    tile_col: Vec<u8>,
    tile_value: Vec<R>,
    /// (row, source, v): y_row = y_row + v src_source (src = x, then the summed tiles).
    sums: Vec<(u8, u8, R)>,
    /// The rows with entries.
    rows: Vec<u8>,
}

/// The sources of one generator's row sums for every lane: x, then its summed tiles.
pub type Sources<R> = [Lanes<R>; SOURCES];
/// 16 entries of x and at most 64 tiles, rounded up to a power of two (indices are masked).
const SOURCES: usize = 128;

impl<R: Real> Entries<R> {
    /// From a row-major dense generator; an entry that is 0 in R is dropped.
    pub fn from_dense(m: &[f64; 256]) -> Self {
        let mut e = Entries { tile_end: vec![], tile_col: vec![], tile_value: vec![], sums: vec![], rows: vec![] };
        let mut sums = vec![];
        for i in 0..16 {
            let mut place = 0;
            for b in 0..4 {
                let tile: Vec<(u8, R)> = (4 * b..4 * b + 4).map(|j| (j as u8, R::from_f64(m[16 * i + j]))).filter(|&(_, v)| v != R::ZERO).collect();
                let term = match tile[..] {
                    [] => continue,
                    [(j, v)] => (j, v),
                    _ => {
                        e.tile_col.extend(tile.iter().map(|t| t.0));
                        e.tile_value.extend(tile.iter().map(|t| t.1));
                        e.tile_end.push(e.tile_col.len() as u16);
                        ((15 + e.tile_end.len()) as u8, R::ONE)
                    }
                };
                sums.push((place, (i as u8, term.0, term.1)));
                place += 1;
            }
            if place > 0 {
                e.rows.push(i as u8);
            }
        }
        sums.sort_by_key(|s| s.0);
        e.sums = sums.into_iter().map(|s| s.1).collect();
        e
    }

    /// Row sums of M x into `y` (every row +0 first), x in src[..16], the summed tiles
    /// written after it: the twin's `SparseR::quad` for every row.
    #[inline(always)]
    fn rows_of(&self, src: &mut Sources<R>, y: &mut [Lanes<R>; 16]) {
        let mut start = 0;
        for (t, &end) in self.tile_end.iter().enumerate() {
            let end = end as usize;
            let mut d = [R::ZERO; LANES];
            for (n, (&c, &v)) in self.tile_col[start..end].iter().zip(&self.tile_value[start..end]).enumerate() {
                let xc = src[c as usize & 15];
                for l in 0..LANES {
                    d[l] = if n == 0 { v * xc[l] } else { d[l] + v * xc[l] };
                }
            }
            src[(16 + t) & (SOURCES - 1)] = d;
            start = end;
        }
        for yr in y.iter_mut() {
            *yr = [R::ZERO; LANES];
        }
        for &(r, j, v) in &self.sums {
            let sj = src[j as usize & (SOURCES - 1)];
            let yr = &mut y[r as usize & 15];
            for l in 0..LANES {
                yr[l] = yr[l] + v * sj[l];
            }
        }
    }
}

/// Scratch of the driven stages of one lane group.
pub struct Scratch<R> {
    /// The stage input in src[..16], then the summed tiles.
    src: Sources<R>,
    /// k1..k4; k[0] ends as the increment.
    k: [[Lanes<R>; 16]; 4],
    /// (G_k x) of one drive.
    yk: [Lanes<R>; 16],
}

impl<R: Real> Scratch<R> {
    pub fn new() -> Box<Self> {
        Box::new(Scratch { src: [[R::ZERO; LANES]; SOURCES], k: [[[R::ZERO; LANES]; 16]; 4], yk: [[R::ZERO; LANES]; 16] })
    }
}

/// y = (G + sum_k c_k G_k) x for every lane, x in src[..16]: G x, then y_i = y_i + c_k (G_k x)_i
/// in drive order for the rows where G_k has entries (elsewhere the twin adds c_k * +0, which
/// changes nothing).
#[inline(always)]
fn driven_apply<R: Real>(entries: &[Entries<R>], c: &[R], src: &mut Sources<R>, y: &mut [Lanes<R>; 16], yk: &mut [Lanes<R>; 16]) {
    entries[0].rows_of(src, y);
    for (gk, &ck) in entries[1..].iter().zip(c) {
        gk.rows_of(src, yk);
        for &r in &gk.rows {
            let (yr, ykr) = (&mut y[r as usize & 15], &yk[r as usize & 15]);
            for l in 0..LANES {
                yr[l] = yr[l] + ck * ykr[l];
            }
        }
    }
}

/// The twin's `driven_increment`, lane by lane, into `s.k[0]`; the stage inputs x + s k are
/// formed in place in `s.src`.
#[inline(always)]
fn driven_increment<R: Real>(entries: &[Entries<R>], c: &[[R; MAX_DRIVES]; 3], x: &[Lanes<R>; 16], h: R, s: &mut Scratch<R>) {
    let hh = h * R::from_f64(0.5);
    let h6 = h / R::from_f64(6.0);
    let Scratch { src, k, yk } = s;
    for i in 0..16 {
        src[i] = x[i];
    }
    for (stage, (cs, step)) in [(&c[0], hh), (&c[1], hh), (&c[1], h), (&c[2], R::ZERO)].into_iter().enumerate() {
        driven_apply(entries, cs, src, &mut k[stage], yk);
        if stage < 3 {
            let ks = &k[stage];
            for i in 0..16 {
                for l in 0..LANES {
                    src[i][l] = x[i][l] + step * ks[i][l];
                }
            }
        }
    }
    let two = R::from_f64(2.0);
    let [k1, k2, k3, k4] = k;
    for i in 0..16 {
        for l in 0..LANES {
            k1[i][l] = h6 * (k1[i][l] + two * (k2[i][l] + k3[i][l]) + k4[i][l]);
        }
    }
}

/// The four members' states with their Kahan terms, entry-major ([entry][lane]).
#[derive(Clone, Copy)]
struct LaneAcc<R> {
    x: [Lanes<R>; 16],
    c: [Lanes<R>; 16],
}

impl<R: Real> LaneAcc<R> {
    fn new(x: [[R; 16]; LANES]) -> Self {
        LaneAcc { x: std::array::from_fn(|i| std::array::from_fn(|l| x[l][i])), c: [[R::ZERO; LANES]; 16] }
    }

    /// `Acc::add`, lane by lane.
    #[inline(always)]
    fn add(&mut self, dx: &[Lanes<R>; 16]) {
        for i in 0..16 {
            for l in 0..LANES {
                let y = dx[i][l] - self.c[i][l];
                let t = self.x[i][l] + y;
                self.c[i][l] = (t - self.x[i][l]) - y;
                self.x[i][l] = t;
            }
        }
    }

    fn lane(&self, l: usize) -> Acc<R> {
        Acc { x: std::array::from_fn(|i| self.x[i][l]), c: std::array::from_fn(|i| self.c[i][l]) }
    }

    fn set_lane(&mut self, l: usize, a: &Acc<R>) {
        for i in 0..16 {
            self.x[i][l] = a.x[i];
            self.c[i][l] = a.c[i];
        }
    }

    fn state(&self, l: usize) -> [R; 16] {
        std::array::from_fn(|i| self.x[i][l])
    }
}

/// The twin's `driven_step` for the lane group (all lanes share the point, so the stage
/// coefficients and the choice of path are the group's): where every coefficient is 0, each
/// lane takes the undriven step as the twin does.
#[inline(always)]
fn driven_step<R: Real>(p: &PointR<R>, a: &mut LaneAcc<R>, t: R, h: R, full: bool, scratch: &mut Scratch<R>) {
    let (c, any) = stage_coeffs(&p.drives, t, h);
    if !any {
        for l in 0..LANES {
            let mut m = a.lane(l);
            if full {
                full_step(&p.d, &mut m);
            } else {
                rk4_step(&p.g, &mut m, h);
            }
            a.set_lane(l, &m);
        }
        return;
    }
    driven_increment(&p.entries, &c, &a.x, h, scratch);
    a.add(&scratch.k[0]);
}

/// Four members of one driven point (`p`, and `p_off` after a switch-off; both with drives):
/// `run_member` for each, into `outs` (member index, its output slices). Returns whether every
/// state stayed finite: only then are the bits those of `run_member` (see the header).
#[inline(always)]
fn run_lanes<R: Real>(
    plan: &TwinPlan<R>,
    p: &PointR<R>,
    p_off: &PointR<R>,
    x0: [&[f64; 16]; LANES],
    outs: &mut [(usize, MemberOut)],
    times: &[f64],
    stop: Stop,
) -> bool {
    let ez = plan.flags & F_Z != 0;
    let x0: [[R; 16]; LANES] = x0.map(|x| x.map(R::from_f64));
    let mut x = LaneAcc::new(x0);
    let mut z = LaneAcc::new(x0.map(|x| if ez { super::anticommutator(&x, &p.hb) } else { [R::ZERO; 16] }));
    let refs = x0.map(|x| references(&x, p));
    let mut pmax = [[R::ZERO; 4]; LANES];
    let mut pidx = [[R::ZERO; 4]; LANES];
    let mut scratch = Scratch::new();
    let Some(mut check) = StopCheck::new(stop) else {
        return true;
    };
    for (pi, &(piece, h)) in plan.pieces.iter().enumerate() {
        let ps = if piece.uncoupled { p_off } else { p };
        let t0 = plan.starts[pi];
        let finished = stoppable_steps!(check, piece.n_full, j => {
            let t = t0 + R::from_f64(j as f64) * plan.dt;
            driven_step(ps, &mut x, t, plan.dt, true, &mut scratch);
            if ez {
                driven_step(ps, &mut z, t, plan.dt, true, &mut scratch);
            }
        });
        if !finished {
            // (unfinished, and not to be run again one member at a time: the run is given up)
            return true;
        }
        if h > R::ZERO {
            let t = t0 + R::from_f64(piece.n_full as f64) * plan.dt;
            driven_step(ps, &mut x, t, h, false, &mut scratch);
            if ez {
                driven_step(ps, &mut z, t, h, false, &mut scratch);
            }
        }
        if piece.sample != NO_SAMPLE {
            for (l, (_, (v, s, _))) in outs.iter_mut().enumerate() {
                let r = (&refs[l].0, &refs[l].1);
                take_sample(plan, p, &x.state(l), &z.state(l), r, piece.sample as usize, v, s, (&mut pmax[l], &mut pidx[l]));
            }
        }
    }
    for (l, (_, (_, _, peaks))) in outs.iter_mut().enumerate() {
        super::finish_peaks(&pmax[l], &pidx[l], peaks, times);
    }
    // A non-finite entry stays non-finite (x + y with x infinite or NaN is), so the final
    // states tell whether any step saw one.
    x.x.iter().chain(&z.x).flatten().all(|v| v.to_f64().is_finite())
}

super::simd_dispatch!(pub(super) fn run_lanes_dispatch, run_lanes_avx2, run_lanes_avx512 => run_lanes(
    plan: &TwinPlan<R>, p: &PointR<R>, p_off: &PointR<R>, x0: [&[f64; 16]; LANES], outs: &mut [(usize, MemberOut)], times: &[f64], stop: Stop
) -> bool);
