//! The drive coefficients of `[[drive]]` per RK4 stage, from per-point parameters:
//! c(t) = amplitude env(t) cos(frequency t + phase). Twin of the WGSL library
//! `shaders/drive.wgsl` (`drive_cos`, `drive_exp`, `drive_coeff`), operation for operation.
//!
//! cos and exp are evaluated without transcendentals (WGSL has none for f64, and f32 ones
//! differ between drivers), so that a kernel can mirror this arithmetic: Cody-Waite reduction by pi/2 (three parts) and Taylor series on
//! |r| <= pi/4 through r^20 / r^21 (the parts' leading ones exact in f32, so that q * part is
//! exact or nearly so in either precision); exp by ln 2 (two parts), a Taylor series on |r| <= ln2/2
//! through r^16, and 2^n by binary powers. exp(x) for x < -80 is taken as 0 (< 2e-35): a
//! gaussian's far tails then give exactly 0, and such steps take the undriven path.

use super::{matvec, rk4_stages, Real};
use crate::job::drive::{DriveCoeffs, ENV_GAUSSIAN, ENV_WINDOW, MAX_DRIVES};
use crate::job::two_qubit::SparseGenerator;

/// A drive's numbers in the working precision.
#[derive(Clone, Copy, Debug)]
pub struct DriveR<R> {
    pub amplitude: R,
    pub frequency: R,
    pub phase: R,
    pub env: u32,
    pub a: R,
    pub b: R,
}

impl<R: Real> DriveR<R> {
    pub fn new(d: &DriveCoeffs) -> Self {
        let c = R::from_f64;
        DriveR { amplitude: c(d.amplitude), frequency: c(d.frequency), phase: c(d.phase), env: d.env, a: c(d.env_a), b: c(d.env_b) }
    }

    /// c(t) = amplitude env(t) cos(frequency t + phase) at a stage time t of a step with
    /// midpoint tm (a window takes the step's midpoint: `model::drive::Drive::coeff_in_step`);
    /// exactly 0 where env is.
    #[inline(always)]
    pub fn coeff(&self, t: R, tm: R) -> R {
        let env = if self.env == ENV_GAUSSIAN {
            let u = (t - self.a) / self.b;
            exp_arith(-(R::from_f64(0.5) * u * u))
        } else if self.env == ENV_WINDOW {
            if tm >= self.a && tm < self.b {
                R::ONE
            } else {
                R::ZERO
            }
        } else {
            R::ONE
        };
        if env == R::ZERO {
            return R::ZERO;
        }
        self.amplitude * env * cos_arith(self.frequency * t + self.phase)
    }
}

/// The stage coefficients of one step from t of length h: (c(t), c(t + h/2), c(t + h)) per
/// drive, and whether any is non-zero (else the step is an undriven one).
#[inline(always)]
pub fn stage_coeffs<R: Real>(drives: &[DriveR<R>], t: R, h: R) -> ([[R; MAX_DRIVES]; 3], bool) {
    let mut c = [[R::ZERO; MAX_DRIVES]; 3];
    let mut any = false;
    let tm = t + h * R::from_f64(0.5);
    let te = t + h;
    for (k, d) in drives.iter().enumerate() {
        c[0][k] = d.coeff(t, tm);
        c[1][k] = d.coeff(tm, tm);
        c[2][k] = d.coeff(te, tm);
        any = any || c[0][k] != R::ZERO || c[1][k] != R::ZERO || c[2][k] != R::ZERO;
    }
    (c, any)
}

/// A generator's non-zero tiles in the working precision (`job::two_qubit::SparseGenerator`),
/// in fixed arrays (at most 16 tiles).
#[derive(Clone, Debug)]
pub struct SparseR<R> {
    quad_start: [u8; 5],
    block: [u8; 16],
    value: [[R; 16]; 16],
}

impl<R: Real> SparseR<R> {
    pub fn new(s: &SparseGenerator) -> Self {
        let mut block = [0u8; 16];
        let mut value = [[R::ZERO; 16]; 16];
        for (n, (&b, v)) in s.block.iter().zip(&s.value).enumerate() {
            block[n] = b as u8;
            value[n] = v.map(R::from_f64);
        }
        SparseR { quad_start: s.quad_start.map(|q| q as u8), block, value }
    }

    /// Rows 4r..4r + 4 of M x: y = y + d over the quad's tiles in block order,
    /// d = ((v_0 x_4b + v_1 x_4b+1) + v_2 x_4b+2) + v_3 x_4b+3 (the dense matvec's grouping, so
    /// the same bits; see `SparseGenerator`).
    #[inline(always)]
    pub fn quad(&self, r: usize, x: &[R; 16]) -> [R; 4] {
        let mut y = [R::ZERO; 4];
        for n in self.quad_start[r] as usize..self.quad_start[r + 1] as usize {
            let b = 4 * (self.block[n] & 3) as usize;
            let (x0, x1, x2, x3) = (x[b], x[b + 1], x[b + 2], x[b + 3]);
            let v = &self.value[n];
            for j in 0..4 {
                let d = v[j] * x0 + v[4 + j] * x1 + v[8 + j] * x2 + v[12 + j] * x3;
                y[j] = y[j] + d;
            }
        }
        y
    }
}

/// (G + sum_k c_k G_k) x in the Pauli basis, a row quad at a time: y = G x, then
/// y = y + c_k (G_k x) in drive order, each product over the non-zero tiles only. The same
/// bits as `driven_apply_dense` (up to the sign of an exact zero).
#[inline(always)]
fn driven_apply<R: Real>(g: &SparseR<R>, gd: &[SparseR<R>], c: &[R], x: &[R; 16]) -> [R; 16] {
    let mut y = [R::ZERO; 16];
    for r in 0..4 {
        let mut q = g.quad(r, x);
        for (gk, &ck) in gd.iter().zip(c) {
            let p = gk.quad(r, x);
            for j in 0..4 {
                q[j] = q[j] + ck * p[j];
            }
        }
        y[4 * r..4 * r + 4].copy_from_slice(&q);
    }
    y
}

/// The increment of one classical RK4 step of length h of dx/dt = (G + sum_k c_k(t) G_k) x,
/// with the stage coefficients `c` of `stage_coeffs` (k2 and k3 both at t + h/2), the
/// generators in sparse form.
#[inline(always)]
pub fn driven_increment<R: Real>(g: &SparseR<R>, gd: &[SparseR<R>], c: &[[R; MAX_DRIVES]; 3], x: &[R; 16], h: R) -> [R; 16] {
    rk4_stages(x, h, |s, y| driven_apply(g, gd, &c[STAGE_TIME[s]], y))
}

/// Which of the three stage times of `stage_coeffs` (t, t + h/2, t + h) each RK4 stage takes.
const STAGE_TIME: [usize; 4] = [0, 1, 1, 2];

/// `driven_apply` with dense matrices (transposed, as `matvec` takes them): G x, then each
/// c_k (G_k x) in drive order. The sparse form's reference.
#[inline(always)]
fn driven_apply_dense<R: Real>(g: &[R; 256], gd: &[[R; 256]], c: &[R], x: &[R; 16]) -> [R; 16] {
    let mut y = matvec(g, x);
    for (gk, &ck) in gd.iter().zip(c) {
        let d = matvec(gk, x);
        for i in 0..16 {
            y[i] = y[i] + ck * d[i];
        }
    }
    y
}

/// `driven_increment` with dense matrices (transposed): the same bits, 16x16 matvecs.
pub fn driven_increment_dense<R: Real>(g: &[R; 256], gd: &[[R; 256]], c: &[[R; MAX_DRIVES]; 3], x: &[R; 16], h: R) -> [R; 16] {
    rk4_stages(x, h, |s, y| driven_apply_dense(g, gd, &c[STAGE_TIME[s]], y))
}

/// floor(x), as WGSL's `floor` (exact in either precision).
#[inline(always)]
fn floor<R: Real>(x: R) -> R {
    R::from_f64(x.to_f64().floor())
}

/// cos(x) without transcendentals. (Inlined, so that the AVX2 and AVX-512 builds of the member loop
/// takes it, and floor, in its own instructions.)
#[inline(always)]
pub fn cos_arith<R: Real>(x: R) -> R {
    let c = R::from_f64;
    let q = floor(x * c(std::f64::consts::FRAC_2_PI) + c(0.5));
    let r = ((x - q * c(1.5703125)) - q * c(0.0004838267923332751)) - q * c(2.563344151594519e-12);
    let n = q - c(4.0) * floor(q * c(0.25));
    let r2 = r * r;
    // cos r = sum (-1)^k r^2k / (2k)!, sin r = r sum (-1)^k r^2k / (2k + 1)!, Horner from the top.
    let mut cs = c(1.0 / 2432902008176640000.0);
    let mut sn = c(1.0 / 51090942171709440000.0);
    let cos_c = [
        -1.0 / 6402373705728000.0,
        1.0 / 20922789888000.0,
        -1.0 / 87178291200.0,
        1.0 / 479001600.0,
        -1.0 / 3628800.0,
        1.0 / 40320.0,
        -1.0 / 720.0,
        1.0 / 24.0,
        -1.0 / 2.0,
        1.0,
    ];
    let sin_c = [
        -1.0 / 121645100408832000.0,
        1.0 / 355687428096000.0,
        -1.0 / 1307674368000.0,
        1.0 / 6227020800.0,
        -1.0 / 39916800.0,
        1.0 / 362880.0,
        -1.0 / 5040.0,
        1.0 / 120.0,
        -1.0 / 6.0,
        1.0,
    ];
    for k in 0..10 {
        cs = c(cos_c[k]) + r2 * cs;
        sn = c(sin_c[k]) + r2 * sn;
    }
    sn = r * sn;
    if n == R::ZERO {
        cs
    } else if n == R::ONE {
        -sn
    } else if n == c(2.0) {
        -cs
    } else {
        sn
    }
}

/// exp(x) for x <= 0 without transcendentals (0 below -80).
#[inline(always)]
pub fn exp_arith<R: Real>(x: R) -> R {
    let c = R::from_f64;
    if x < c(-80.0) {
        return R::ZERO;
    }
    let n = floor(x * c(std::f64::consts::LOG2_E) + c(0.5));
    let r = (x - n * c(0.693145751953125)) - n * c(1.4286068203094173e-06);
    let inv = [
        1.0 / 20922789888000.0,
        1.0 / 1307674368000.0,
        1.0 / 87178291200.0,
        1.0 / 6227020800.0,
        1.0 / 479001600.0,
        1.0 / 39916800.0,
        1.0 / 3628800.0,
        1.0 / 362880.0,
        1.0 / 40320.0,
        1.0 / 5040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        1.0 / 2.0,
        1.0,
        1.0,
    ];
    let mut p = c(inv[0]);
    for k in inv.iter().skip(1) {
        p = c(*k) + r * p;
    }
    // 2^n, n in [-116, 0]: multiply by 2^-(2^b) for each bit b of -n.
    let m = (-n).to_f64() as u32;
    let mut scale = c(0.5);
    for b in 0..7 {
        if (m >> b) & 1 == 1 {
            p = p * scale;
        }
        scale = scale * scale;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_cos_and_exp() {
        for i in -400..400 {
            let x = i as f64 * 0.173;
            let got: f64 = cos_arith(x);
            assert!((got - x.cos()).abs() < 4e-15, "cos({x}): {got} vs {}", x.cos());
            let got32: f32 = cos_arith(x as f32);
            assert!((got32 as f64 - (x as f32 as f64).cos()).abs() < 2e-6, "cos32({x})");
        }
        for i in 0..800 {
            let x = -(i as f64) * 0.1;
            let got: f64 = exp_arith(x);
            assert!((got - x.exp()).abs() <= 4e-16 * x.exp(), "exp({x}): {got} vs {}", x.exp());
            let got32: f32 = exp_arith(x as f32);
            assert!((got32 as f64 - (x as f32 as f64).exp()).abs() <= 2e-6 * (x as f32 as f64).exp() + 1e-38, "exp32({x})");
        }
        assert_eq!(exp_arith(-80.5f64), 0.0);
    }

    /// Row-major -> transposed (as `matvec` takes it).
    fn transposed<R: Real>(m: &[f64; 256]) -> [R; 256] {
        std::array::from_fn(|j| R::from_f64(m[16 * (j % 16) + j / 16]))
    }

    /// A generator with zero rows (row 7) and the given density of non-zeros.
    fn generator_with_zeros(seed: u64, keep_per_mille: u64) -> [f64; 256] {
        crate::twin::sparse_test_generator(seed, keep_per_mille, 7, 1.37)
    }

    fn check_sparse_equals_dense<R: Real>() {
        for (seed, density) in [(1, 100), (2, 250), (3, 500), (4, 1000), (5, 0)] {
            let g = generator_with_zeros(seed, density);
            let gd: Vec<[f64; 256]> = (0..3).map(|k| generator_with_zeros(seed * 10 + k, 90 + 150 * k)).collect();
            let sg = SparseR::<R>::new(&SparseGenerator::from_dense(&g));
            let sgd: Vec<SparseR<R>> = gd.iter().map(|m| SparseR::new(&SparseGenerator::from_dense(m))).collect();
            let dg = transposed::<R>(&g);
            let dgd: Vec<[R; 256]> = gd.iter().map(transposed::<R>).collect();
            let x: [R; 16] = std::array::from_fn(|i| R::from_f64((i as f64 * 0.71).sin()));
            // Each product alone, against the dense matvec.
            for (m, s) in std::iter::once((&dg, &sg)).chain(dgd.iter().zip(&sgd)) {
                let dense = matvec(m, &x);
                for i in 0..16 {
                    let sparse = s.quad(i / 4, &x)[i % 4];
                    assert!(
                        sparse.to_f64().to_bits() == dense[i].to_f64().to_bits() || (sparse == R::ZERO && dense[i] == R::ZERO),
                        "seed {seed} row {i}: {sparse:?} vs {dense:?}"
                    );
                }
            }
            // A whole driven step (three drives).
            let mut c = [[R::ZERO; MAX_DRIVES]; 3];
            for (j, row) in c.iter_mut().enumerate() {
                for (k, ck) in row.iter_mut().take(3).enumerate() {
                    *ck = R::from_f64(0.3 * (j + 1) as f64 - 0.2 * k as f64);
                }
            }
            let h = R::from_f64(0.01);
            let a = driven_increment(&sg, &sgd, &c, &x, h);
            let b = driven_increment_dense(&dg, &dgd, &c, &x, h);
            for i in 0..16 {
                assert!(
                    a[i].to_f64().to_bits() == b[i].to_f64().to_bits() || (a[i] == R::ZERO && b[i] == R::ZERO),
                    "seed {seed} step row {i}: {:?} vs {:?}",
                    a[i],
                    b[i]
                );
            }
        }
    }

    #[test]
    fn sparse_products_equal_dense_bit_for_bit() {
        // The dense form groups each row in blocks of four columns; the sparse form must keep
        // the grouping (a plain left-to-right sum over the non-zeros would differ in the last
        // bits), which dense rows with several non-zero blocks test.
        check_sparse_equals_dense::<f64>();
        check_sparse_equals_dense::<f32>();
        // Only the non-zero tiles are kept, per quad in block order, by columns.
        let mut g = [0.0; 256];
        g[16 * 2 + 1] = 1.0;
        g[16 * 3 + 3] = 2.0;
        g[16 * 2 + 9] = 3.0;
        g[16 * 13 + 4] = 4.0;
        let s = SparseGenerator::from_dense(&g);
        assert_eq!(s.quad_start, [0, 2, 2, 2, 3]);
        assert_eq!(s.block, vec![0, 2, 1]);
        assert_eq!(s.value[0][4 + 2], 1.0);
        assert_eq!(s.value[0][12 + 3], 2.0);
        assert_eq!(s.value[1][4 + 2], 3.0);
        assert_eq!(s.value[2][1], 4.0);
    }
}
