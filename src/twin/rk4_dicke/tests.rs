//! Unit tests of `twin::rk4_dicke` (a file of their own to keep the twin short).

use super::*;
use crate::job::dicke::parity;

/// A Hermitian test state in packed form with every stepped entry distinct and non-zero
/// (cross-parity entries 0 for the parity path); not a density matrix, which the
/// arithmetic does not need.
fn start<R: Real>(c: &DickeCoeffs, parity_only: bool, salt: f64) -> Vec<Cx<R>> {
    let dim = c.dim();
    let mut x = Vec::with_capacity(dim * (dim + 1) / 2);
    for r in 0..dim {
        for col in r..dim {
            let keep = !parity_only || parity(r, c.n_fock) == parity(col, c.n_fock);
            let t = (r * dim + col) as f64 + salt;
            let (re, im) = if !keep {
                (0.0, 0.0)
            } else if r == col {
                (0.3 + 0.1 * (1.3 * t).sin(), 0.0)
            } else {
                (0.05 * (0.7 * t).sin(), 0.05 * (1.9 * t).cos())
            };
            x.push(Cx::new(R::from_f64(re), R::from_f64(im)));
        }
    }
    x
}

/// Members of one size with different couplings, both coupling kinds and dissipators.
fn members(n_cells: usize, n_fock: usize) -> Vec<DickeCoeffs> {
    (0..6)
        .map(|i| DickeCoeffs {
            n_cells,
            n_fock,
            wc: 1.0 + 0.03 * i as f64,
            wa: 0.9 - 0.02 * i as f64,
            g: 0.1 + 0.07 * i as f64,
            tavis_cummings: i % 3 == 1,
            kappa: 0.05 + 0.04 * i as f64,
            gamma: 0.02 + 0.03 * i as f64,
        })
        .collect()
}

/// Member i stepped alone with the kernel-order twin (`DickeWork`).
fn alone<R: Real>(c: &DickeCoeffs, parity_only: bool, salt: f64, steps: usize, h: f64) -> Vec<Cx<R>> {
    let ops = DickeOps::<R>::new(c, parity_only);
    let mut x = start::<R>(c, parity_only, salt);
    let mut w = DickeWork::new(ops.n_packed());
    for _ in 0..steps {
        w.step(&ops, &mut x, h);
    }
    x
}

/// The members `idx` stepped together in L lanes (spare lanes repeat the last member);
/// their packed states.
fn batched<R: Real, const L: usize>(cs: &[DickeCoeffs], idx: &[usize], parity_only: bool, steps: usize, h: f64, avx: bool) -> Vec<Vec<Cx<R>>> {
    let lay = DickeGathers::new(cs[0].n_cells, cs[0].n_fock, parity_only);
    let lane = |j: usize| idx[j.min(idx.len() - 1)];
    let ops: Vec<DickeOps<R>> = cs.iter().map(|c| DickeOps::new(c, parity_only)).collect();
    let starts: Vec<Vec<Cx<R>>> = (0..cs.len()).map(|i| start::<R>(&cs[i], parity_only, i as f64)).collect();
    let lane_ops = DickeLaneOps::<R, L>::new(&lay, std::array::from_fn(|j| &ops[lane(j)])).unwrap();
    let mut w = DickeLaneWork::<R, L>::new(&lay, std::array::from_fn(|j| &starts[lane(j)][..]));
    w.avx = w.avx && avx;
    for _ in 0..steps {
        w.step(&lay, &lane_ops, h).unwrap();
    }
    (0..idx.len())
        .map(|j| {
            let mut x = starts[idx[j]].clone();
            w.lane_packed(&lay, j, &mut x);
            x
        })
        .collect()
}

fn bits<R: Real>(x: &[Cx<R>]) -> Vec<(u64, u64)> {
    x.iter().map(|z| (z.re.to_f64().to_bits(), z.im.to_f64().to_bits())).collect()
}

/// Every member's state, stepped in any lane of any batch (4 lanes: a full batch, a batch
/// of 2 with spare lanes, a batch in another order; 8 lanes; with and without AVX), is
/// the kernel-order twin's state of the member stepped alone, bit for bit.
fn lanes_match_alone<R: Real>(n_cells: usize, n_fock: usize, parity_only: bool) {
    let (steps, h) = (25, 0.05);
    let cs = members(n_cells, n_fock);
    let want: Vec<_> = (0..cs.len()).map(|i| bits(&alone::<R>(&cs[i], parity_only, i as f64, steps, h))).collect();
    let what = format!("N {n_cells}, n_fock {n_fock}, parity {parity_only}");
    // 6 members in batches of 4 and 2 (the engine's split), then other groupings
    type Run<'a, R> = (&'a str, Vec<usize>, Vec<Vec<Cx<R>>>);
    let runs: Vec<Run<R>> = vec![
        ("4 lanes, first 4", vec![0, 1, 2, 3], batched::<R, 4>(&cs, &[0, 1, 2, 3], parity_only, steps, h, true)),
        ("4 lanes, last 2", vec![4, 5], batched::<R, 4>(&cs, &[4, 5], parity_only, steps, h, true)),
        ("4 lanes, reordered", vec![5, 2, 0, 4], batched::<R, 4>(&cs, &[5, 2, 0, 4], parity_only, steps, h, true)),
        ("4 lanes, one member", vec![3], batched::<R, 4>(&cs, &[3], parity_only, steps, h, true)),
        ("4 lanes, no AVX", vec![1, 3, 5], batched::<R, 4>(&cs, &[1, 3, 5], parity_only, steps, h, false)),
        ("8 lanes, 6 members", vec![0, 1, 2, 3, 4, 5], batched::<R, 8>(&cs, &[0, 1, 2, 3, 4, 5], parity_only, steps, h, true)),
        ("1 lane", vec![2], batched::<R, 1>(&cs, &[2], parity_only, steps, h, true)),
    ];
    for (name, idx, got) in runs {
        for (&i, x) in idx.iter().zip(&got) {
            assert!(bits(x) == want[i], "{what}, {name}: member {i} differs from the member stepped alone");
        }
    }
    // and the test is not vacuous: the members moved, differently
    let s0 = alone::<R>(&cs[0], parity_only, 0.0, 0, h);
    assert!(bits(&s0) != want[0], "{what}: member 0 did not move");
    assert!(want[0] != want[1], "{what}: members 0 and 1 coincide");
}

#[test]
fn a_member_in_any_lane_of_any_batch_has_the_bits_of_the_member_stepped_alone() {
    for parity_only in [true, false] {
        lanes_match_alone::<f64>(3, 5, parity_only);
        lanes_match_alone::<f64>(2, 4, parity_only);
        lanes_match_alone::<f32>(3, 5, parity_only);
    }
}

#[test]
fn the_gather_table_reads_stepped_entries_and_conj_only_near_the_diagonal() {
    for parity_only in [true, false] {
        let lay = DickeGathers::new(3, 5, parity_only);
        let d = lay.n_fock + 1;
        assert_eq!(lay.n_elements(), crate::job::dicke::element_table(3, 5, parity_only).len());
        // the full table steps every entry; the parity one reads only the cross-parity
        // neighbours of the Fock top besides its elements
        if !parity_only {
            assert_eq!(lay.n_slots(), lay.n_elements());
        } else {
            assert!(lay.n_slots() > lay.n_elements());
        }
        for r in 0..lay.dim {
            for e in lay.row_start[r]..lay.row_start[r + 1] {
                let g = lay.gathers[e];
                let c = (g.c_conj & 0xffff) as usize;
                assert!(g.at.iter().all(|&s| (s as usize) < lay.n_slots()));
                if g.c_conj >> 16 != 0 {
                    assert!(e < lay.row_direct[r] && c <= r + d + 1, "conj at ({r}, {c})");
                }
            }
        }
    }
}
