//! The structured f64 engine of the `dicke` model: RK4 of the Lindblad equation with the
//! operators applied as the bands they are (J_z, a^+a and the loss terms diagonal; J_+-, a and
//! a^+ one band each), never as matrices. No kernel mirrors it yet; it is the CPU engine.
//!
//! State X: dense dim x dim, row-major, index r = k (n_fock + 1) + n (docs/physics.md).
//!   L[X] = M + M^+,   M = K X + (1/2)(kappa a X a^+ + gamma J_- X J_+),
//!   K = -i H - (1/2)(kappa a^+a + gamma J_+J_-)    (diagonal part: `DickeCoeffs::k_diagonal`)
//! so that M + M^+ = -i[H, X] + kappa D[a]X + gamma D[J_-]X (H Hermitian).
//! The off-diagonal part of K is -i H_c, H_c the coupling:
//!   dicke:           H_c = g (J_+ + J_-)(a + a^+):  <k', n'|H_c|k, n> = g s (sqrt n or sqrt(n+1))
//!                    for k' = k +- 1, n' = n +- 1 (all four);
//!   tavis-cummings:  H_c = g (J_+ a + J_- a^+):     (k + 1, n - 1) and (k - 1, n + 1) only.
//! with s = s_min(k, k') = sqrt((min + 1)(N - min)). Jump terms:
//!   (a X a^+)_{ij}   = sqrt(n_i + 1) sqrt(n_j + 1) X[(k_i, n_i + 1), (k_j, n_j + 1)]
//!   (J_- X J_+)_{ij} = s_{k_i} s_{k_j} X[(k_i + 1, n_i), (k_j + 1, n_j)]
//! RK4: k1 = L[X], k2 = L[X + h/2 k1], k3 = L[X + h/2 k2], k4 = L[X + h k3],
//!      X <- X + h/6 (k1 + 2 k2 + 2 k3 + k4), as the reference.

use crate::job::dicke::DickeCoeffs;
use num_complex::Complex64 as C;

/// The coupling H_c as rows: for each row r, (column, coefficient of H_c).
pub struct DickeOps {
    pub dim: usize,
    d: usize,
    kd: Vec<C>,
    rows: Vec<Vec<(usize, f64)>>,
    sqrt_n: Vec<f64>,
    ladder: Vec<f64>,
    /// Per column j: sqrt(n_j + 1) where n_j < n_fock, else 0 (the a X a^+ factor), and
    /// s_{k_j} where k_j < N, else 0 (the J_- X J_+ factor).
    col_a: Vec<f64>,
    col_j: Vec<f64>,
    n_cells: usize,
    kappa: f64,
    gamma: f64,
}

impl DickeOps {
    pub fn new(c: &DickeCoeffs) -> DickeOps {
        let (n, d) = (c.n_cells, c.n_fock + 1);
        let ladder = c.spin_ladder();
        let sqrt_n: Vec<f64> = (0..=d).map(|m| (m as f64).sqrt()).collect();
        let mut rows = vec![vec![]; c.dim()];
        if c.g != 0.0 {
            for k in 0..=n {
                for m in 0..d {
                    let r = k * d + m;
                    // (k', n') neighbours and whether the coupling has them
                    for (dk, dn) in [(1i64, -1i64), (-1, 1), (1, 1), (-1, -1)] {
                        let counter = dk == dn;
                        if counter && c.tavis_cummings {
                            continue;
                        }
                        let (k2, m2) = (k as i64 + dk, m as i64 + dn);
                        if k2 < 0 || k2 > n as i64 || m2 < 0 || m2 >= d as i64 {
                            continue;
                        }
                        let s = ladder[k.min(k2 as usize)];
                        let a = sqrt_n[m.max(m2 as usize)];
                        rows[r].push((k2 as usize * d + m2 as usize, c.g * s * a));
                    }
                }
            }
        }
        let col_a = (0..c.dim()).map(|j| if j % d + 1 < d { sqrt_n[j % d + 1] } else { 0.0 }).collect();
        let col_j = (0..c.dim()).map(|j| if j / d < n { ladder[j / d] } else { 0.0 }).collect();
        DickeOps {
            dim: c.dim(),
            col_a,
            col_j,
            d,
            kd: c.k_diagonal().into_iter().map(|(re, im)| C::new(re, im)).collect(),
            rows,
            sqrt_n,
            ladder,
            n_cells: n,
            kappa: c.kappa,
            gamma: c.gamma,
        }
    }

    /// M = K X + (1/2)(kappa a X a^+ + gamma J_- X J_+), row by row.
    fn apply_m(&self, x: &[C], m: &mut [C]) {
        let (dim, d) = (self.dim, self.d);
        for i in 0..dim {
            let (ki, ni) = (i / d, i % d);
            let row = &mut m[i * dim..(i + 1) * dim];
            let kd = self.kd[i];
            for (v, xs) in row.iter_mut().zip(&x[i * dim..(i + 1) * dim]) {
                *v = kd * xs;
            }
            for &(col, h) in &self.rows[i] {
                // -i h X[col, j]
                let f = C::new(0.0, -h);
                for (v, xs) in row.iter_mut().zip(&x[col * dim..(col + 1) * dim]) {
                    *v += f * xs;
                }
            }
            if self.kappa > 0.0 && ni + 1 < d {
                // row j += (kappa/2) sqrt(n_i + 1) sqrt(n_j + 1) X[i + 1, j + 1]
                let fi = 0.5 * self.kappa * self.sqrt_n[ni + 1];
                let src = &x[(i + 1) * dim + 1..(i + 2) * dim];
                for ((v, xs), ca) in row[..dim - 1].iter_mut().zip(src).zip(&self.col_a) {
                    *v += xs * (fi * ca);
                }
            }
            if self.gamma > 0.0 && ki < self.n_cells {
                // row j += (gamma/2) s_{k_i} s_{k_j} X[i + d, j + d]
                let fi = 0.5 * self.gamma * self.ladder[ki];
                let src = &x[(i + d) * dim + d..(i + d + 1) * dim];
                for ((v, xs), cj) in row[..dim - d].iter_mut().zip(src).zip(&self.col_j) {
                    *v += xs * (fi * cj);
                }
            }
        }
    }

    /// out = L[X] = M + M^+.
    pub fn apply(&self, x: &[C], out: &mut [C], m: &mut [C]) {
        self.apply_m(x, m);
        let dim = self.dim;
        for i in 0..dim {
            for j in 0..dim {
                out[i * dim + j] = m[i * dim + j] + m[j * dim + i].conj();
            }
        }
    }
}

/// Work arrays for one RK4 step.
pub struct DickeWork {
    k: Vec<C>,
    acc: Vec<C>,
    stage: Vec<C>,
    m: Vec<C>,
}

impl DickeWork {
    pub fn new(dim: usize) -> DickeWork {
        let z = vec![C::new(0.0, 0.0); dim * dim];
        DickeWork { k: z.clone(), acc: z.clone(), stage: z.clone(), m: z }
    }

    /// One classical RK4 step of length h.
    pub fn step(&mut self, ops: &DickeOps, x: &mut [C], h: f64) {
        let stages = [(0.5 * h, 2.0), (0.5 * h, 2.0), (h, 1.0)];
        ops.apply(x, &mut self.k, &mut self.m);
        self.acc.copy_from_slice(&self.k);
        for (a, w) in stages {
            for ((s, xi), ki) in self.stage.iter_mut().zip(x.iter()).zip(&self.k) {
                *s = xi + ki * a;
            }
            ops.apply(&self.stage, &mut self.k, &mut self.m);
            for (acc, ki) in self.acc.iter_mut().zip(&self.k) {
                *acc += ki * w;
            }
        }
        for (xi, acc) in x.iter_mut().zip(&self.acc) {
            *xi += acc * (h / 6.0);
        }
    }
}
