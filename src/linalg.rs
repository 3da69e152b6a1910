//! Small complex linear-algebra helpers shared by every module (f64, nalgebra).
//!
//! Conventions (PHYSICS.md): basis |0> = |g>, |1> = |e>;
//! sigma_z = |e><e| - |g><g|, sigma_- = |g><e|, sigma_+ = |e><g|,
//! sigma_x = sigma_+ + sigma_-, sigma_y = -i (sigma_+ - sigma_-).
//! Two-qubit index = 2*i_charger + i_battery (charger is the left factor).

use nalgebra::DMatrix;
use num_complex::Complex64;

pub type C64 = Complex64;
pub type CMat = DMatrix<C64>;

pub const ZERO: C64 = C64::new(0.0, 0.0);
pub const ONE: C64 = C64::new(1.0, 0.0);
pub const I: C64 = C64::new(0.0, 1.0);

pub fn c(re: f64, im: f64) -> C64 {
    C64::new(re, im)
}

pub fn identity(n: usize) -> CMat {
    CMat::identity(n, n)
}

/// sigma_- = |g><e|
pub fn sigma_minus() -> CMat {
    CMat::from_row_slice(2, 2, &[ZERO, ONE, ZERO, ZERO])
}
/// sigma_+ = |e><g|
pub fn sigma_plus() -> CMat {
    CMat::from_row_slice(2, 2, &[ZERO, ZERO, ONE, ZERO])
}
/// sigma_z = |e><e| - |g><g|
pub fn sigma_z() -> CMat {
    CMat::from_row_slice(2, 2, &[-ONE, ZERO, ZERO, ONE])
}
/// sigma_x = sigma_+ + sigma_-
pub fn sigma_x() -> CMat {
    sigma_plus() + sigma_minus()
}
/// sigma_y = -i (sigma_+ - sigma_-)   (minus the textbook matrix in the (g, e) basis)
pub fn sigma_y() -> CMat {
    (sigma_plus() - sigma_minus()) * (-I)
}
/// |e><e| = sigma_+ sigma_-
pub fn number_qubit() -> CMat {
    sigma_plus() * sigma_minus()
}

/// The single-qubit operator basis {I, sx, sy, sz} in this order.
pub fn pauli(k: usize) -> CMat {
    match k {
        0 => identity(2),
        1 => sigma_x(),
        2 => sigma_y(),
        3 => sigma_z(),
        _ => panic!("pauli index {k} out of range 0..4"),
    }
}

/// Kronecker product a (x) b (a is the left, slower-varying factor).
pub fn kron(a: &CMat, b: &CMat) -> CMat {
    a.kronecker(b)
}

/// Operator on the charger (left factor) of a two-qubit space: op (x) I.
pub fn on_charger(op: &CMat) -> CMat {
    kron(op, &identity(2))
}
/// Operator on the battery (right factor) of a two-qubit space: I (x) op.
pub fn on_battery(op: &CMat) -> CMat {
    kron(&identity(2), op)
}

/// Hermitian conjugate.
pub fn dag(a: &CMat) -> CMat {
    a.adjoint()
}

pub fn trace(a: &CMat) -> C64 {
    a.trace()
}

/// Re Tr(a b) without forming the product.
pub fn re_trace_product(a: &CMat, b: &CMat) -> f64 {
    let n = a.nrows();
    let mut s = 0.0;
    for i in 0..n {
        for k in 0..n {
            let p = a[(i, k)] * b[(k, i)];
            s += p.re;
        }
    }
    s
}

/// Tr(a b) without forming the product.
pub fn trace_product(a: &CMat, b: &CMat) -> C64 {
    let n = a.nrows();
    let mut s = ZERO;
    for i in 0..n {
        for k in 0..n {
            s += a[(i, k)] * b[(k, i)];
        }
    }
    s
}

/// Largest |a_ij - conj(a_ji)|: zero for a Hermitian matrix.
pub fn hermiticity_error(a: &CMat) -> f64 {
    let n = a.nrows();
    let mut e: f64 = 0.0;
    for i in 0..n {
        for j in i..n {
            e = e.max((a[(i, j)] - a[(j, i)].conj()).norm());
        }
    }
    e
}

/// (a + a^+)/2: removes rounding-level anti-Hermitian parts before an eigen-solve.
pub fn hermitian_part(a: &CMat) -> CMat {
    (a + a.adjoint()) * c(0.5, 0.0)
}

/// Eigenvalues of a Hermitian matrix, ascending (all NaN for a matrix with a non-finite entry:
/// the iterative solver would not return on one).
pub fn eigvals_hermitian(a: &CMat) -> Vec<f64> {
    if !is_finite(a) {
        return vec![f64::NAN; a.nrows()];
    }
    let h = hermitian_part(a);
    let mut v: Vec<f64> = h.symmetric_eigenvalues().iter().copied().collect();
    v.sort_by(|x, y| x.total_cmp(y));
    v
}

/// Every entry finite?
pub fn is_finite(a: &CMat) -> bool {
    a.iter().all(|z| z.re.is_finite() && z.im.is_finite())
}

/// Partial trace of a bipartite operator on C^{d1} (x) C^{d2} over the second factor.
pub fn trace_out_second(rho: &CMat, d1: usize, d2: usize) -> CMat {
    let mut out = CMat::zeros(d1, d1);
    for i in 0..d1 {
        for j in 0..d1 {
            let mut s = ZERO;
            for k in 0..d2 {
                s += rho[(i * d2 + k, j * d2 + k)];
            }
            out[(i, j)] = s;
        }
    }
    out
}

/// Partial trace of a bipartite operator on C^{d1} (x) C^{d2} over the first factor.
pub fn trace_out_first(rho: &CMat, d1: usize, d2: usize) -> CMat {
    let mut out = CMat::zeros(d2, d2);
    for i in 0..d2 {
        for j in 0..d2 {
            let mut s = ZERO;
            for k in 0..d1 {
                s += rho[(k * d2 + i, k * d2 + j)];
            }
            out[(i, j)] = s;
        }
    }
    out
}

/// Charger (left qubit) reduced state of a two-qubit state.
pub fn reduced_charger(rho4: &CMat) -> CMat {
    trace_out_second(rho4, 2, 2)
}
/// Battery (right qubit) reduced state of a two-qubit state.
pub fn reduced_battery(rho4: &CMat) -> CMat {
    trace_out_first(rho4, 2, 2)
}

/// |psi><psi|
pub fn projector(psi: &[C64]) -> CMat {
    let n = psi.len();
    CMat::from_fn(n, n, |i, j| psi[i] * psi[j].conj())
}

/// Largest absolute entry difference.
pub fn max_abs_diff(a: &CMat, b: &CMat) -> f64 {
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).norm()).fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauli_algebra_in_project_convention() {
        // In the (g, e) basis both sigma_y and sigma_z are minus the textbook matrices,
        // so sx sy = i sz still holds.
        let lhs = sigma_x() * sigma_y();
        let rhs = sigma_z() * I;
        assert!(max_abs_diff(&lhs, &rhs) < 1e-15);
        // sigma_z |e> = +|e>, index 1 is the excited state
        assert_eq!(sigma_z()[(1, 1)], ONE);
        // sigma_+ sigma_- = |e><e|
        assert_eq!(number_qubit()[(1, 1)], ONE);
        assert_eq!(number_qubit()[(0, 0)], ZERO);
    }

    #[test]
    fn partial_traces_of_a_product_state() {
        let a = CMat::from_row_slice(2, 2, &[c(0.7, 0.0), c(0.1, 0.2), c(0.1, -0.2), c(0.3, 0.0)]);
        let b = CMat::from_row_slice(2, 2, &[c(0.4, 0.0), c(0.0, 0.1), c(0.0, -0.1), c(0.6, 0.0)]);
        let ab = kron(&a, &b);
        assert!(max_abs_diff(&reduced_charger(&ab), &a) < 1e-15);
        assert!(max_abs_diff(&reduced_battery(&ab), &b) < 1e-15);
    }
}
