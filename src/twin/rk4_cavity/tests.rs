//! Tests of the cavity twin: its lanes against one element at a time, its tables, drive
//! terms and samples.

use super::*;

fn coeffs(n_fock: usize) -> CavityCoeffs {
    CavityCoeffs { n_fock, wc: 1.1, wq: 0.9, lambda: 0.7, g: 0.3, zeta: -0.4, kappa: 0.2, gamma: 0.05 }
}

/// A Hermitian matrix of mixed-sign entries with exact zeros of both signs among them.
fn hermitian_probe<R: Real>(dim: usize) -> Vec<Cx<R>> {
    let v = |k: usize| match k % 7 {
        0 => 0.0,
        1 => -0.0,
        _ => ((k * 37) % 101) as f64 / 50.0 - 1.0,
    };
    let mut x = vec![Cx::ZERO; dim * dim];
    for r in 0..dim {
        for c in r..dim {
            let im = if r == c { 0.0 } else { v(r * 13 + c * 5 + 3) };
            let z = Cx::new(R::from_f64(v(r * 11 + c * 3)), R::from_f64(im));
            (x[r * dim + c], x[c * dim + r]) = (z, z.conj());
        }
    }
    x
}

fn bits<R: Real>(x: &[Cx<R>]) -> Vec<(u64, u64)> {
    x.iter().map(|z| (z.re.to_f64().to_bits(), z.im.to_f64().to_bits())).collect()
}

/// `Cx`'s operations that the loop below used and the twin no longer does.
trait Then {
    fn sub(self, o: Self) -> Self;
    fn mul_minus_i(self) -> Self;
}

impl<R: Real> Then for Cx<R> {
    fn sub(self, o: Self) -> Self {
        Cx::new(self.re - o.re, self.im - o.im)
    }
    fn mul_minus_i(self) -> Self {
        Cx::new(self.im, -self.re)
    }
}

/// L[x] as the twin computed it before its columns went into lanes, one element at a time
/// with its rows and columns from `kx_rows`, and the drive terms of `drive_term_then` (kept
/// here as written then): the bits every path of `apply_gen` must give.
fn one_element_at_a_time<R: Real>(ops: &CavityOps<R>, x: &[Cx<R>], out: &mut [Cx<R>], drive: Option<&StageDrive<R>>) {
    let d = ops.n_fock + 1;
    let dim = ops.dim;
    let nf = ops.n_fock;
    let x = |i: usize| x[i];
    for q in 0..4 {
        for n in 0..d {
            let r = q * d + n;
            let (pr, gr, br, lr) = ops.kx_rows(q, n);
            for qc in q..4 {
                let n0 = if qc == q { n } else { 0 };
                for nc in n0..d {
                    let c = qc * d + nc;
                    let (pc, gc, bc, lc) = ops.kx_rows(qc, nc);
                    let h_rc = x(pr * dim + c).scale(gr).add(x(br * dim + c).scale(lr));
                    let h_cr = x(r * dim + pc).scale(gc).add(x(r * dim + bc).scale(lc));
                    let diag = ops.kd[r].add(ops.kd[c].conj());
                    // i h_cr = (-im, re)
                    let mut v = diag.mul(x(r * dim + c)).add(h_rc.mul_minus_i()).add(Cx::new(-h_cr.im, h_cr.re));
                    if n < nf && nc < nf {
                        v = v.add(x((r + 1) * dim + c + 1).scale(ops.kappa * ops.sqrt_n[n + 1] * ops.sqrt_n[nc + 1]));
                    }
                    if q < 2 && qc < 2 {
                        v = v.add(x((r + 2 * d) * dim + c + 2 * d).scale(ops.gamma));
                    }
                    if q & 1 == 0 && qc & 1 == 0 {
                        v = v.add(x((r + d) * dim + c + d).scale(ops.gamma));
                    }
                    if let Some(sd) = drive {
                        v = v.add(drive_term_then(ops, sd, x, r, c).mul_minus_i());
                    }
                    // (the diagonal keeps v, as the kernel's packed upper triangle does)
                    out[c * dim + r] = v.conj();
                    out[r * dim + c] = v;
                }
            }
        }
    }
}

/// A[r, c] of the module doc, one element, as the twin computed it before its columns went
/// into lanes.
fn drive_term_then<R: Real>(ops: &CavityOps<R>, sd: &StageDrive<R>, x: impl Fn(usize) -> Cx<R>, r: usize, c: usize) -> Cx<R> {
    let [sx1, sy1, sz1, sx2, sy2, sz2, sxa, sya] = sd.slots;
    let d = ops.n_fock + 1;
    let dim = ops.dim;
    let nf = ops.n_fock;
    let (qr, nr, qc, nc) = (r / d, r % d, c / d, c % d);
    let sel = |cond: bool, a: R, b: R| if cond { a } else { b };
    let mut a = Cx::ZERO;
    if sz1 != R::ZERO || sz2 != R::ZERO {
        let zr = sel(qr >= 2, sz1, -sz1) + sel(qr & 1 == 1, sz2, -sz2);
        let zc = sel(qc >= 2, sz1, -sz1) + sel(qc & 1 == 1, sz2, -sz2);
        a = a.add(x(r * dim + c).scale(zr - zc));
    }
    if sx1 != R::ZERO || sy1 != R::ZERO {
        let (pr, ur) = if qr < 2 { (r + 2 * d, Cx::new(sx1, sy1)) } else { (r - 2 * d, Cx::new(sx1, -sy1)) };
        let (pc, uc) = if qc < 2 { (c + 2 * d, Cx::new(sx1, -sy1)) } else { (c - 2 * d, Cx::new(sx1, sy1)) };
        a = a.add(ur.mul(x(pr * dim + c))).sub(uc.mul(x(r * dim + pc)));
    }
    if sx2 != R::ZERO || sy2 != R::ZERO {
        let (pr, ur) = if qr & 1 == 0 { (r + d, Cx::new(sx2, sy2)) } else { (r - d, Cx::new(sx2, -sy2)) };
        let (pc, uc) = if qc & 1 == 0 { (c + d, Cx::new(sx2, -sy2)) } else { (c - d, Cx::new(sx2, sy2)) };
        a = a.add(ur.mul(x(pr * dim + c))).sub(uc.mul(x(r * dim + pc)));
    }
    if sxa != R::ZERO || sya != R::ZERO {
        let lo = Cx::new(sxa, sya);
        let hi = Cx::new(sxa, -sya);
        let (rl, rh) = (usize::from(nr > 0), usize::from(nr < nf));
        let (cl, ch) = (usize::from(nc > 0), usize::from(nc < nf));
        let top_r = if nr < nf { ops.sqrt_n[nr + 1] } else { R::ZERO };
        let top_c = if nc < nf { ops.sqrt_n[nc + 1] } else { R::ZERO };
        a = a
            .add(lo.scale(ops.sqrt_n[nr]).mul(x((r - rl) * dim + c)))
            .add(hi.scale(top_r).mul(x((r + rh) * dim + c)))
            .sub(hi.scale(ops.sqrt_n[nc]).mul(x(r * dim + c - cl)))
            .sub(lo.scale(top_c).mul(x(r * dim + c + ch)));
    }
    a
}

/// Three classical RK4 steps of size h over `one_element_at_a_time`, with the stage drives
/// (at t, t + h/2, t + h/2, t + h) where given, as `CavityWork::step_with` takes them.
fn three_steps<R: Real>(ops: &CavityOps<R>, x: &[Cx<R>], h: R, drive: Option<&[StageDrive<R>; 3]>) -> Vec<Cx<R>> {
    let dim = ops.dim;
    let dr = |i: usize| drive.map(|d| &d[i]);
    let (half, two, sixth) = (h * R::from_f64(0.5), R::from_f64(2.0), h / R::from_f64(6.0));
    let mut x = x.to_vec();
    for _ in 0..3 {
        let mut k = vec![Cx::ZERO; dim * dim];
        one_element_at_a_time(ops, &x, &mut k, dr(0));
        let mut acc = k.clone();
        let stage: Vec<Cx<R>> = x.iter().zip(&k).map(|(x, k)| x.add(k.scale(half))).collect();
        one_element_at_a_time(ops, &stage, &mut k, dr(1));
        acc.iter_mut().zip(&k).for_each(|(a, k)| *a = a.add(k.scale(two)));
        let stage: Vec<Cx<R>> = x.iter().zip(&k).map(|(x, k)| x.add(k.scale(half))).collect();
        one_element_at_a_time(ops, &stage, &mut k, dr(1));
        acc.iter_mut().zip(&k).for_each(|(a, k)| *a = a.add(k.scale(two)));
        let stage: Vec<Cx<R>> = x.iter().zip(&k).map(|(x, k)| x.add(k.scale(h))).collect();
        one_element_at_a_time(ops, &stage, &mut k, dr(2));
        for ((x, a), k) in x.iter_mut().zip(&acc).zip(&k) {
            *x = x.add(a.add(*k).scale(sixth));
        }
    }
    x
}

/// `apply_gen` in AVX2 lanes (f64: one AVX register).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn apply_avx2<R: Real>(ops: &CavityOps<R>, x: &[Cx<R>], out: &mut [Cx<R>], drive: Option<&StageDrive<R>>) {
    match drive {
        None => ops.apply_gen::<false, R::X4Avx2>(x, out, None),
        Some(_) => ops.apply_gen::<true, R::X4Avx2>(x, out, drive),
    }
}

/// A stage's slot coefficients: every slot group, or only the mode's (`k` picks).
fn stage_drive<R: Real>(k: usize, all: bool) -> StageDrive<R> {
    StageDrive { slots: std::array::from_fn(|s| R::from_f64(if all || s >= 6 { 0.1 + 0.07 * s as f64 + 0.03 * k as f64 } else { 0.0 })) }
}

/// Columns in lanes (portable, and AVX2 where the CPU has it), and the columns taken one at a
/// time, give every element the bits of `one_element_at_a_time`, undriven and driven, in one
/// RHS and over whole steps. Runs of four columns need n_fock >= 5: below, every column is
/// taken alone; n_fock 5 to 9 have one or two runs a row, 20 has four.
fn lanes_match_one_element_at_a_time<R: Real>() {
    for n_fock in [1, 2, 3, 4, 5, 6, 8, 9, 20] {
        let ops = CavityOps::<R>::new(&coeffs(n_fock));
        let dim = ops.dim;
        let x = hermitian_probe::<R>(dim);
        for drive in [None, Some(stage_drive(0, true)), Some(stage_drive(0, false))] {
            let what = |path: &str| format!("n_fock {n_fock}, {path}, drive {drive:?}");
            let mut want = vec![Cx::ZERO; dim * dim];
            one_element_at_a_time(&ops, &x, &mut want, drive.as_ref());
            let mut got = vec![Cx::ZERO; dim * dim];
            match drive.as_ref() {
                None => ops.apply_gen::<false, R::X1>(&x, &mut got, None),
                Some(sd) => ops.apply_gen::<true, R::X1>(&x, &mut got, Some(sd)),
            }
            assert_eq!(bits(&got), bits(&want), "{}", what("one column at a time"));
            ops.apply_with(&x, &mut got, drive.as_ref());
            assert_eq!(bits(&got), bits(&want), "{}", what("portable lanes"));
            #[cfg(target_arch = "x86_64")]
            if crate::twin::has_avx2() {
                // SAFETY: the CPU has AVX2.
                unsafe { apply_avx2(&ops, &x, &mut got, drive.as_ref()) };
                assert_eq!(bits(&got), bits(&want), "{}", what("AVX2 lanes"));
            }
        }
        let h = R::from_f64(0.01);
        for (all, stages) in
            [(true, None), (true, Some([0, 1, 2].map(|k| stage_drive::<R>(k, true)))), (false, Some([0, 1, 2].map(|k| stage_drive::<R>(k, false))))]
        {
            let want = three_steps(&ops, &x, h, stages.as_ref());
            for avx2 in [false, true] {
                let mut work = CavityWork::<R>::with_lanes(dim, avx2);
                assert_eq!(work.avx2, avx2 && crate::twin::has_avx2());
                let mut stepped = x.clone();
                for _ in 0..3 {
                    work.step_with(&ops, &mut stepped, h, stages.as_ref());
                }
                assert_eq!(
                    bits(&stepped),
                    bits(&want),
                    "n_fock {n_fock}, steps, driven {}, every slot group {all}, AVX2 lanes {}",
                    stages.is_some(),
                    work.avx2
                );
            }
        }
    }
}

#[test]
fn lanes_give_the_bits_of_one_element_at_a_time() {
    lanes_match_one_element_at_a_time::<f64>();
    lanes_match_one_element_at_a_time::<f32>();
}

#[test]
fn row_table_encodes_kx_rows_and_the_jump_conditions() {
    for n_fock in [1, 4, 9] {
        let c = coeffs(n_fock);
        let ops = CavityOps::<f64>::new(&c);
        let d = n_fock + 1;
        let sqrt_n: Vec<f64> = (0..=d).map(|n| (n as f64).sqrt()).collect();
        for (r, row) in row_table(n_fock).iter().enumerate() {
            let (q, n) = (r / d, r % d);
            let (p, g, b, l) = ops.kx_rows(q, n);
            assert_eq!(row[0] as usize, p);
            let g_table = if row[3] & ROW_FLIP != 0 { c.g * c.zeta } else { c.g };
            assert_eq!(g_table, g);
            assert_eq!(c.lambda * sqrt_n[row[2] as usize], l, "row {r}");
            if l != 0.0 {
                assert_eq!(row[1] as usize, b);
            }
            assert_eq!((row[3] >> ROW_N_SHIFT) as usize, n);
            assert_eq!(row[3] & ROW_E1_ZERO != 0, q < 2);
            assert_eq!(row[3] & ROW_E2_ZERO != 0, q & 1 == 0);
            assert_eq!(row[3] & ROW_TOP != 0, n < n_fock);
        }
    }
}

/// Each slot's drive term, from apply_with minus apply, is -i[O_s, x] with O_s the named
/// operator of `model::drive` built as a dense matrix; a stage with several slots adds them.
#[test]
fn drive_terms_are_the_commutators_of_the_named_operators() {
    use crate::linalg::{c as cx, hermitian_part, CMat};
    use crate::model::drive::named_operators;
    let n_fock = 5; // runs of four columns in lanes
    let ops = CavityOps::<f64>::new(&coeffs(n_fock));
    let dim = ops.dim;
    let a = CMat::from_fn(dim, dim, |r, c| cx(((r * 7 + c * 3) % 11) as f64 / 11.0 - 0.4, ((r * 5 + c * 2) % 13) as f64 / 13.0 - 0.5));
    let h = hermitian_part(&a);
    let mut x = vec![Cx::ZERO; dim * dim];
    for r in 0..dim {
        for c in 0..dim {
            x[r * dim + c] = Cx::new(h[(r, c)].re, h[(r, c)].im);
        }
    }
    let mut plain = vec![Cx::ZERO; dim * dim];
    ops.apply(&x, &mut plain);
    let named = named_operators(crate::model::Space::Cavity { n_fock });
    let mut sum_want = CMat::zeros(dim, dim);
    let mut all = [0.0; DRIVE_SLOTS];
    for (s, name) in DRIVE_SLOT_NAMES.iter().enumerate() {
        let o = &named.iter().find(|(n, _)| n == name).unwrap().1;
        let w = 0.3 + 0.1 * s as f64;
        let want = (o * &h - &h * o) * cx(0.0, -w);
        sum_want += &want;
        let mut slots = [0.0; DRIVE_SLOTS];
        slots[s] = w;
        all[s] = w;
        let mut got = vec![Cx::ZERO; dim * dim];
        ops.apply_with(&x, &mut got, Some(&StageDrive { slots }));
        for i in 0..dim * dim {
            let d = got[i].sub(plain[i]);
            let e = want[(i / dim, i % dim)];
            assert!((d.re - e.re).abs() < 1e-14 && (d.im - e.im).abs() < 1e-14, "{name} element {i}: {d:?} vs {e}");
        }
    }
    let mut got = vec![Cx::ZERO; dim * dim];
    ops.apply_with(&x, &mut got, Some(&StageDrive { slots: all }));
    for i in 0..dim * dim {
        let d = got[i].sub(plain[i]);
        let e = sum_want[(i / dim, i % dim)];
        assert!((d.re - e.re).abs() < 1e-13 && (d.im - e.im).abs() < 1e-13);
    }
}

#[test]
fn sample_outputs_match_the_partial_trace() {
    use crate::linalg::{c as cx, CMat};
    let n_fock = 3;
    let dim = 4 * (n_fock + 1);
    // a Hermitian, non-trivial matrix
    let a = CMat::from_fn(dim, dim, |r, c| cx(((r * 7 + c * 3) % 11) as f64 / 11.0 - 0.4, ((r * 5 + c * 2) % 13) as f64 / 13.0 - 0.5));
    let h = crate::linalg::hermitian_part(&a);
    let x: Vec<Cx<f64>> = (0..dim * dim).map(|i| Cx::new(h[(i / dim, i % dim)].re, h[(i / dim, i % dim)].im)).collect();
    let want = crate::job::pauli::to_pauli(&crate::model::cavity_cells::reduced_qubits(&h, n_fock));
    let nop = (0..dim).map(|r| (r % (n_fock + 1)) as f64 * h[(r, r)].re).sum::<f64>();
    let t = (0..4).map(|q| h[(q * (n_fock + 1) + n_fock, q * (n_fock + 1) + n_fock)].re).sum::<f64>();
    for parts in [1, 2, 11] {
        let (coeffs, photons, tail) = sample_outputs(&x, n_fock, parts);
        for k in 0..16 {
            assert!((coeffs[k] - want[k]).abs() < 1e-12, "coefficient {k}: {} vs {}", coeffs[k], want[k]);
        }
        assert!((photons - nop).abs() < 1e-12);
        assert!((tail - t).abs() < 1e-12);
    }
}
