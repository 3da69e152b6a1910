//! Lindblad right-hand side in matrix form:
//!   d rho/dt = -i[H, rho] + sum_k rate_k (L_k rho L_k^+ - {L_k^+ L_k, rho}/2)
//!            = K rho + rho K^+ + sum_k rate_k L_k rho L_k^+,   K = -i H - (1/2) sum_k rate_k L_k^+ L_k.
//! The same form holds for any X (not only Hermitian rho), which the two-time correlation
//! Y(t) = e^{Lt}[H_B rho0] needs. Operators are stored sparse (the cavity model is banded),
//! so one evaluation costs O(nnz * dim), never O(dim^4).

use crate::linalg::{CMat, C64, I};
use crate::model::OpenSystem;

/// Compressed sparse rows of a complex matrix.
#[derive(Clone, Debug)]
pub struct SparseRows {
    pub dim: usize,
    /// (row, col, value), sorted by row.
    pub entries: Vec<(usize, usize, C64)>,
}

impl SparseRows {
    pub fn from_dense(m: &CMat) -> SparseRows {
        let mut entries = vec![];
        for i in 0..m.nrows() {
            for j in 0..m.ncols() {
                let v = m[(i, j)];
                if v.re != 0.0 || v.im != 0.0 {
                    entries.push((i, j, v));
                }
            }
        }
        SparseRows { dim: m.nrows(), entries }
    }

    /// out += A X   (column by column: out[i, c] += a_ij X[j, c])
    pub fn add_left_product(&self, x: &CMat, out: &mut CMat) {
        let n = self.dim;
        for c in 0..n {
            let xc = x.column(c);
            let mut oc = out.column_mut(c);
            for &(i, j, v) in &self.entries {
                oc[i] += v * xc[j];
            }
        }
    }

    /// out += X A^+   (out[r, i] += X[r, j] conj(a_ij), i.e. column i of out gains conj(a_ij) * column j of X)
    pub fn add_right_adjoint_product(&self, x: &CMat, out: &mut CMat) {
        for &(i, j, v) in &self.entries {
            let w = v.conj();
            let n = self.dim;
            for r in 0..n {
                let xv = x[(r, j)];
                out[(r, i)] += w * xv;
            }
        }
    }
}

/// The drives of `[[drive]]` as generator terms: each -i c_k(t) [O_k, .], with K_k = -i O_k
/// applied as K_k x + x K_k^+ (= -i[O_k, x] since O_k is Hermitian), scaled by c_k(t).
#[derive(Clone, Debug)]
pub struct DriveTerms {
    terms: Vec<(SparseRows, crate::model::drive::Drive)>,
}

impl DriveTerms {
    pub fn new(drives: &[crate::model::drive::Drive]) -> DriveTerms {
        // (of O_k's traceless part, as for H: an identity part of O_k commutes with x, but
        // K x + x K^+ would cancel it at a cost of |shift| eps a step)
        DriveTerms { terms: drives.iter().map(|d| (SparseRows::from_dense(&(&crate::linalg::traceless_part(&d.op) * (-I))), d.clone())).collect() }
    }
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// out += sum_k c_k(t) (-i [O_k, x]) at a stage time t of a step with midpoint t_mid.
    pub fn add(&self, t: f64, t_mid: f64, x: &CMat, out: &mut CMat) {
        for (k, d) in &self.terms {
            let s = d.coeff_in_step(t, t_mid);
            if s == 0.0 {
                continue;
            }
            let n = k.dim;
            for &(i, j, v) in &k.entries {
                let a = v * s;
                let w = a.conj();
                for r in 0..n {
                    // (K x)[i, r] += a x[j, r];  (x K^+)[r, i] += conj(a) x[r, j]
                    let xjr = x[(j, r)];
                    out[(i, r)] += a * xjr;
                    let xrj = x[(r, j)];
                    out[(r, i)] += w * xrj;
                }
            }
        }
    }
}

/// The generator L of one parameter point, ready to apply.
#[derive(Clone, Debug)]
pub struct LindbladRhs {
    pub dim: usize,
    /// K = -i H - (1/2) sum_k rate_k L_k^+ L_k
    k: SparseRows,
    /// sqrt(rate_k) L_k
    jumps: Vec<SparseRows>,
}

impl LindbladRhs {
    pub fn new(sys: &OpenSystem) -> LindbladRhs {
        let dim = sys.dim();
        // (of H's traceless part: the commutator is the same, and an offset h0 of H cost h0 eps
        // at every step, where K x + x K^+ cancels it)
        let mut k = &crate::linalg::traceless_part(&sys.hamiltonian) * (-I);
        for j in &sys.jumps {
            k -= (j.op.adjoint() * &*j.op) * C64::new(0.5 * j.rate, 0.0);
        }
        let jumps = sys.jumps.iter().map(|j| SparseRows::from_dense(&(&*j.op * C64::new(j.rate.sqrt(), 0.0)))).collect();
        LindbladRhs { dim, k: SparseRows::from_dense(&k), jumps }
    }

    /// out = L[x] = K x + x K^+ + sum_k (sqrt(r_k) L_k) x (sqrt(r_k) L_k)^+.
    /// `scratch` is a dim x dim work matrix.
    pub fn apply(&self, x: &CMat, out: &mut CMat, scratch: &mut CMat) {
        out.fill(C64::new(0.0, 0.0));
        self.k.add_left_product(x, out);
        self.k.add_right_adjoint_product(x, out);
        for l in &self.jumps {
            scratch.fill(C64::new(0.0, 0.0));
            l.add_left_product(x, scratch);
            l.add_right_adjoint_product(scratch, out);
        }
    }

    /// Convenience: allocate and return L[x].
    pub fn eval(&self, x: &CMat) -> CMat {
        let mut out = CMat::zeros(self.dim, self.dim);
        let mut scratch = CMat::zeros(self.dim, self.dim);
        self.apply(x, &mut out, &mut scratch);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::*;
    use crate::model::{resolve_params, ModelKind, ParamValue, Params};

    /// The textbook dense form, written out term by term.
    fn dense_lindblad(sys: &OpenSystem, rho: &CMat) -> CMat {
        let h = &sys.hamiltonian;
        let mut out = (h * rho - rho * h) * (-I);
        for j in &sys.jumps {
            let l: &CMat = &j.op;
            let ld = l.adjoint();
            let ldl = &ld * l;
            out += (l * rho * &ld - (&ldl * rho + rho * &ldl) * c(0.5, 0.0)) * c(j.rate, 0.0);
        }
        out
    }

    fn random_dm(dim: usize, seed: u64) -> CMat {
        // deterministic pseudo-random Hermitian positive matrix, unit trace
        let mut s = seed;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        };
        let g = CMat::from_fn(dim, dim, |_, _| c(next(), next()));
        let r = &g * g.adjoint();
        let tr = r.trace();
        r / tr
    }

    #[test]
    fn sparse_rhs_equals_dense_textbook_form() {
        let mut p = Params::new();
        p.insert("n_fock".into(), ParamValue::Real(3.0));
        p.insert("kappa".into(), ParamValue::Real(0.3));
        p.insert("gamma".into(), ParamValue::Real(0.2));
        p.insert("g".into(), ParamValue::Real(0.4));
        p.insert("zeta".into(), ParamValue::Real(0.5));
        let sys = ModelKind::CavityCells.build(&resolve_params(ModelKind::CavityCells, &p).unwrap()).unwrap();
        let rho = random_dm(sys.dim(), 3);
        let rhs = LindbladRhs::new(&sys);
        assert!(max_abs_diff(&rhs.eval(&rho), &dense_lindblad(&sys, &rho)) < 1e-13);

        let mut p = Params::new();
        p.insert("n_th".into(), ParamValue::Real(0.3));
        let sys = ModelKind::DrivenPair.build(&resolve_params(ModelKind::DrivenPair, &p).unwrap()).unwrap();
        let rho = random_dm(4, 9);
        assert!(max_abs_diff(&LindbladRhs::new(&sys).eval(&rho), &dense_lindblad(&sys, &rho)) < 1e-14);
    }

    #[test]
    fn generator_is_trace_free_and_keeps_hermiticity() {
        let mut p = Params::new();
        p.insert("gamma".into(), ParamValue::Real(0.7));
        let sys = ModelKind::BlochCharger.build(&resolve_params(ModelKind::BlochCharger, &p).unwrap()).unwrap();
        let rho = random_dm(4, 5);
        let d = LindbladRhs::new(&sys).eval(&rho);
        assert!(d.trace().norm() < 1e-14);
        assert!(hermiticity_error(&d) < 1e-14);
    }

    /// A drive's term -i c [O, x] against the commutator written here, for O = s I + A with A
    /// Hermitian: the shift s adds nothing at any size (at s = 1e15 the term held errors of
    /// about s eps = 0.1 when O was taken whole). A's diagonal is dyadic, so that s I + A holds
    /// A exactly at every shift tried.
    #[test]
    fn a_drive_term_is_its_commutator_whatever_the_identity_shift() {
        use crate::model::drive::{Drive, Envelope};
        let mut a = random_dm(4, 7) * c(3.0, 0.0) + sigma_x().kronecker(&sigma_y());
        for (i, d) in [0.5, -0.25, 1.0, -1.25].into_iter().enumerate() {
            a[(i, i)] = c(d, 0.0);
        }
        let x = random_dm(4, 8);
        let amplitude = 0.7;
        let want = (&a * &x - &x * &a) * c(0.0, -amplitude);
        for shift in [0.0, 1.0, 1e12, 1e15, -1e15] {
            let op = &a + CMat::identity(4, 4) * c(shift, 0.0);
            let d = Drive { op: std::sync::Arc::new(op), name: None, amplitude, frequency: 0.0, phase: 0.0, envelope: Envelope::Constant };
            let mut got = CMat::zeros(4, 4);
            DriveTerms::new(&[d]).add(0.0, 0.0, &x, &mut got);
            assert!(max_abs_diff(&got, &want) < 1e-14, "shift {shift}: {}", max_abs_diff(&got, &want));
        }
    }
}
