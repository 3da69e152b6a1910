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

/// L[x] as the twin computed it before its columns went into lanes, one element at a time
/// with its rows and columns from `kx_rows` (kept here as written then): the bits every path
/// of `apply_gen` must give.
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
                        v = v.add(ops.drive_term(sd, x, r, c).mul_minus_i());
                    }
                    out[r * dim + c] = v;
                    out[c * dim + r] = v.conj();
                }
            }
        }
    }
}

/// `apply_gen` in AVX2 lanes (f64: one AVX register).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn apply_avx2<R: Real>(ops: &CavityOps<R>, x: &[Cx<R>], out: &mut [Cx<R>]) {
    ops.apply_gen::<false, R::X4Avx2>(x, out, None)
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
        let mut want = vec![Cx::ZERO; dim * dim];
        one_element_at_a_time(&ops, &x, &mut want, None);
        let mut got = vec![Cx::ZERO; dim * dim];
        ops.apply_gen::<false, R::X1>(&x, &mut got, None);
        assert_eq!(bits(&got), bits(&want), "n_fock {n_fock}, one column at a time");
        ops.apply(&x, &mut got);
        assert_eq!(bits(&got), bits(&want), "n_fock {n_fock}, portable lanes");
        #[cfg(target_arch = "x86_64")]
        if crate::twin::has_avx2() {
            // SAFETY: the CPU has AVX2.
            unsafe { apply_avx2(&ops, &x, &mut got) };
            assert_eq!(bits(&got), bits(&want), "n_fock {n_fock}, AVX2 lanes");
        }
        let sd = StageDrive { slots: std::array::from_fn(|s| R::from_f64(0.1 + 0.07 * s as f64)) };
        one_element_at_a_time(&ops, &x, &mut want, Some(&sd));
        ops.apply_with(&x, &mut got, Some(&sd));
        assert_eq!(bits(&got), bits(&want), "n_fock {n_fock}, driven");
        // whole steps: RK4 over `one_element_at_a_time`, written out here
        let h = R::from_f64(0.01);
        let mut stepped_want = x.clone();
        for _ in 0..3 {
            let (half, two, sixth) = (h * R::from_f64(0.5), R::from_f64(2.0), h / R::from_f64(6.0));
            let mut k = vec![Cx::ZERO; dim * dim];
            one_element_at_a_time(&ops, &stepped_want, &mut k, None);
            let mut acc = k.clone();
            let stage: Vec<Cx<R>> = stepped_want.iter().zip(&k).map(|(x, k)| x.add(k.scale(half))).collect();
            one_element_at_a_time(&ops, &stage, &mut k, None);
            acc.iter_mut().zip(&k).for_each(|(a, k)| *a = a.add(k.scale(two)));
            let stage: Vec<Cx<R>> = stepped_want.iter().zip(&k).map(|(x, k)| x.add(k.scale(half))).collect();
            one_element_at_a_time(&ops, &stage, &mut k, None);
            acc.iter_mut().zip(&k).for_each(|(a, k)| *a = a.add(k.scale(two)));
            let stage: Vec<Cx<R>> = stepped_want.iter().zip(&k).map(|(x, k)| x.add(k.scale(h))).collect();
            one_element_at_a_time(&ops, &stage, &mut k, None);
            for ((x, a), k) in stepped_want.iter_mut().zip(&acc).zip(&k) {
                *x = x.add(a.add(*k).scale(sixth));
            }
        }
        for avx2 in [false, true] {
            let mut work = CavityWork::<R>::with_lanes(dim, avx2);
            assert_eq!(work.avx2, avx2 && crate::twin::has_avx2());
            let mut stepped = x.clone();
            for _ in 0..3 {
                work.step(&ops, &mut stepped, h);
            }
            assert_eq!(bits(&stepped), bits(&stepped_want), "n_fock {n_fock}, steps, AVX2 lanes {}", work.avx2);
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
    let n_fock = 3;
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
