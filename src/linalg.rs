//! Small complex linear-algebra helpers shared by every module (f64, nalgebra).
//!
//! Conventions (docs/physics.md): basis |0> = |g>, |1> = |e>;
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
    // nalgebra's QR iteration can return NaN on a finite matrix whose entries span hundreds of
    // decades (nalgebra issue #379; a coherent state far beyond its cutoff does it). A diagonal
    // shift s changes the iteration, and eig(H + s I) - s is exact up to rounding of size
    // eps * (|s| + ||H||), the solver's own accuracy when |s| is the largest |entry| of H.
    if v.iter().any(|x| x.is_nan()) {
        let scale = h.iter().fold(0.0f64, |m, z| m.max(z.norm())).max(f64::MIN_POSITIVE);
        for s in [scale, -scale, 0.5 * scale, -0.5 * scale] {
            let shifted = &h + CMat::identity(h.nrows(), h.ncols()) * c(s, 0.0);
            let w: Vec<f64> = shifted.symmetric_eigenvalues().iter().map(|x| x - s).collect();
            if w.iter().all(|x| !x.is_nan()) {
                v = w;
                break;
            }
        }
    }
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

/// H - (Re Tr(H) / dim) I: the traceless part of a Hermitian H.
pub fn traceless_part(h: &CMat) -> CMat {
    let shift = h.trace().re / h.nrows() as f64;
    h - CMat::identity(h.nrows(), h.ncols()) * C64::new(shift, 0.0)
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

    /// A cavity state (two cells, n_fock = 4) from a coherent state far beyond its cutoff:
    /// entries from 1 down to 1e-300, on which nalgebra's QR iteration returns NaN.
    #[test]
    fn eigenvalues_of_a_matrix_spanning_300_decades_are_finite() {
        let entries: [(usize, usize, f64, f64); 76] = [
            (2, 0, -1.1320970827245562e-300, -4.8524647544183887e-300),
            (3, 0, -1.0585739980529567e-251, -5.004176716183042e-252),
            (4, 0, 9.981433468739613e-201, -4.9255024790602665e-201),
            (11, 0, -1.5798316356672337e-299, 3.6858027635533054e-300),
            (12, 0, -4.1871522850111045e-250, 8.857428808680402e-250),
            (13, 0, 2.1112017363601298e-200, 4.278309320313687e-200),
            (1, 1, 9.273574891835056e-300, 0.0),
            (2, 1, 1.9253393890643915e-250, -2.426232377209273e-250),
            (3, 1, -1.6536929820314937e-202, -7.0880270141058295e-202),
            (4, 1, 6.255162347573183e-151, 2.9569943376984365e-151),
            (10, 1, 0.0, -1.1686171576613708e-299),
            (11, 1, -7.899158178336438e-250, -6.268386196617033e-250),
            (12, 1, -5.930804558428655e-200, 1.3836773547250527e-200),
            (13, 1, -1.2674443132827906e-150, 2.6811292178797827e-150),
            (0, 2, -1.1320970827245565e-300, 4.8524647544183887e-300),
            (1, 2, 1.925339389064391e-250, 2.4262323772092737e-250),
            (2, 2, 1.0345023477673055e-200, 2.217016311529152e-217),
            (3, 2, 1.5110917343640714e-152, -1.9042377862325555e-152),
            (4, 2, 5.2503464460665826e-102, 2.2504487694679682e-101),
            (10, 2, 3.0574364717889854e-250, -2.4262323772092706e-250),
            (11, 2, 1.6447737397603693e-215, -3.368060724309111e-200),
            (12, 2, -1.5933375213335552e-150, -1.2643948853410972e-150),
            (13, 2, -9.646013990183174e-101, 2.250448769467958e-101),
            (0, 3, -1.05857399805296e-251, 5.004176716183097e-252),
            (1, 3, -1.6536929820314883e-202, 7.0880270141058585e-202),
            (2, 3, 1.5110917343640756e-152, 1.9042377862325538e-152),
            (3, 3, 5.712441113123647e-104, -2.6430918444381966e-117),
            (4, 3, -3.375586664332246e-53, 4.25364160854747e-53),
            (10, 3, 8.932046998498182e-202, 2.0838502979225045e-202),
            (11, 3, 6.199650659999507e-152, -4.919746498909694e-152),
            (12, 3, -1.063847057035615e-115, -4.779792345604988e-102),
            (13, 3, -1.823246458739865e-52, -1.4468374556351098e-52),
            (0, 4, 9.981433468739616e-201, 4.925502479060272e-201),
            (1, 4, 6.255162347573183e-151, -2.9569943376984358e-151),
            (2, 4, 5.250346446066574e-102, -2.2504487694679707e-101),
            (3, 4, -3.375586664332269e-53, -4.253641608547463e-53),
            (4, 4, 0.05162077599747332, 1.034003250498705e-17),
            (10, 4, -3.7262711211667804e-151, -7.882496816758869e-151),
            (11, 4, -7.326850598452634e-101, -1.7093804570929004e-101),
            (12, 4, -3.5592152989303775e-51, 2.824419573100281e-51),
            (13, 4, 1.0292600105543675e-16, 0.22126018666526484),
            (1, 10, 0.0, 1.1686171576613708e-299),
            (2, 10, 3.057436471788985e-250, 2.4262323772092706e-250),
            (3, 10, 8.932046998498115e-202, -2.0838502979224606e-202),
            (4, 10, -3.72627112116678e-151, 7.882496816758871e-151),
            (10, 10, 1.4726425108165577e-299, 0.0),
            (11, 10, 7.899158178336436e-250, -9.954188960170461e-250),
            (12, 10, -1.7436522734174088e-200, -7.473751453955644e-200),
            (13, 10, -3.3786460496429905e-150, -1.5971801024340505e-150),
            (0, 11, -1.5798316356672337e-299, -3.6858027635533054e-300),
            (1, 11, -7.899158178336437e-250, 6.268386196617033e-250),
            (2, 11, 1.6447737397603693e-215, 3.368060724309111e-200),
            (3, 11, 6.199650659999578e-152, 4.91974649890973e-152),
            (4, 11, -7.326850598452634e-101, 1.7093804570929035e-101),
            (10, 11, 7.899158178336436e-250, 9.954188960170463e-250),
            (11, 11, 1.096549765223245e-199, 0.0),
            (12, 11, 4.116528583399418e-150, -5.187477089296664e-150),
            (13, 11, -7.326850598452622e-101, -3.140481241630679e-100),
            (0, 12, -4.1871522850111045e-250, -8.857428808680403e-250),
            (1, 12, -5.930804558428654e-200, -1.3836773547250518e-200),
            (2, 12, -1.5933375213335557e-150, 1.2643948853410977e-150),
            (3, 12, -1.0605160083741382e-115, 4.779792345604988e-102),
            (4, 12, -3.5592152989303775e-51, -2.8244195731002815e-51),
            (10, 12, -1.7436522734174088e-200, 7.473751453955644e-200),
            (11, 12, 4.116528583399418e-150, 5.187477089296664e-150),
            (12, 12, 3.999428755888886e-100, 0.0),
            (13, 12, 1.210620411026877e-50, -1.5255731272145812e-50),
            (0, 13, 2.1112017363601307e-200, -4.2783093203136857e-200),
            (1, 13, -1.2674443132827906e-150, -2.6811292178797827e-150),
            (2, 13, -9.646013990183179e-101, -2.2504487694679612e-101),
            (3, 13, -1.823246458739877e-52, 1.4468374556351076e-52),
            (4, 13, 9.877515472211944e-17, -0.22126018666526484),
            (10, 13, -3.3786460496429905e-150, 1.5971801024340505e-150),
            (11, 13, -7.326850598452617e-101, 3.1404812416306785e-100),
            (12, 13, 1.210620411026877e-50, 1.5255731272145812e-50),
            (13, 13, 0.9483792240025265, 4.625929269271486e-19),
        ];
        let mut rho = CMat::zeros(20, 20);
        for (i, j, re, im) in entries {
            rho[(i, j)] = c(re, im);
        }
        let ev = eigvals_hermitian(&rho);
        assert!(ev.iter().all(|x| x.is_finite()), "{ev:?}");
        // Reference: drop the entries below 1e-40; by Weyl's inequality every eigenvalue moves
        // by at most the Frobenius norm of what was dropped (< 20 x 1e-40).
        let coarse = hermitian_part(&rho).map(|z| if z.norm() < 1e-40 { ZERO } else { z });
        let mut want: Vec<f64> = coarse.symmetric_eigenvalues().iter().copied().collect();
        want.sort_by(|x, y| x.total_cmp(y));
        for (got, want) in ev.iter().zip(&want) {
            assert!((got - want).abs() < 1e-14, "{got} vs {want}");
        }
        let trace: f64 = ev.iter().sum();
        assert!((trace - rho.trace().re).abs() < 1e-14);
    }
}
