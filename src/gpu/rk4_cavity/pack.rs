//! Packing one member into the kernel's buffers: K's diagonal and coefficients, the upper
//! triangle of its initial state (and Z(0)), and the reduced t = 0 references.

use super::super::Precision;
use super::plan::Layout;
use crate::job::CavityJob;
use crate::linalg::{CMat, C64};

#[inline]
fn put(dst: &mut [u8], i: usize, v: f64, precision: Precision) {
    match precision {
        Precision::F32 => dst[4 * i..4 * i + 4].copy_from_slice(&(v as f32).to_ne_bytes()),
        Precision::F64 => dst[8 * i..8 * i + 8].copy_from_slice(&v.to_ne_bytes()),
    }
}

/// Z(0) = (Y + Y^+)/2, Y = (I (x) h_B (x) I) rho0, at (r, c); h row-major 2x2 on cell 2.
fn z0_entry(rho0: &CMat, h: &[C64; 4], d: usize, r: usize, c: usize) -> C64 {
    // Y[r, c] = sum_b h[i2(r), b] rho0[(i1(r), b, n_r), c]
    let y = |r: usize, c: usize| {
        let (q, n) = (r / d, r % d);
        let (i1, i2) = (q >> 1, q & 1);
        (0..2).map(|b| h[2 * i2 + b] * rho0[((2 * i1 + b) * d + n, c)]).sum::<C64>()
    };
    (y(r, c) + y(c, r).conj()) * 0.5
}

/// Reduced (cell 1, cell 2) 4x4 matrix, row-major, of a full matrix given by entry: the sum
/// over n in order from zero, as the CPU engine forms it.
fn reduce(d: usize, entry: impl Fn(usize, usize) -> C64) -> [C64; 16] {
    std::array::from_fn(|k| (0..d).map(|n| entry((k / 4) * d + n, (k % 4) * d + n)).sum())
}

/// Pack member i's initial state (X and, with Z, Z(0)) into its `work` slot; return their
/// reduced matrices in f64.
pub(super) fn pack_member(job: &CavityJob, layout: &Layout, i: usize, dst: &mut [u8], precision: Precision) -> ([C64; 16], Option<[C64; 16]>) {
    dst.fill(0);
    let (dim, d, ne) = (layout.dim, layout.n_fock + 1, layout.n_elem);
    let rho0 = (job.initial)(i);
    assert_eq!((rho0.nrows(), rho0.ncols()), (dim, dim), "initial state of member {i} is not {dim}x{dim}");
    let mut e = 0;
    for r in 0..dim {
        for c in r..dim {
            let z = rho0[(r, c)];
            put(dst, 2 * e, z.re, precision);
            put(dst, 2 * e + 1, z.im, precision);
            e += 1;
        }
    }
    let x0 = reduce(d, |r, c| rho0[(r, c)]);
    let z0 = job.evolve_z.then(|| {
        let h = &job.points[job.member_point[i] as usize].h_battery;
        let base = 4 * ne;
        let mut e = 0;
        for r in 0..dim {
            for c in r..dim {
                let z = z0_entry(&rho0, h, d, r, c);
                put(dst, 2 * (base + e), z.re, precision);
                put(dst, 2 * (base + e) + 1, z.im, precision);
                e += 1;
            }
        }
        reduce(d, |r, c| z0_entry(&rho0, h, d, r, c))
    });
    (x0, z0)
}
