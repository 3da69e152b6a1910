//! The dicke engine's contract (`twin::rk4_dicke`, and the engine that feeds it): one member's
//! coefficients and K's diagonal. docs/physics.md "dicke" has the operators.

/// The parameters of one dicke member, as the structured engine holds them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DickeCoeffs {
    pub n_cells: usize,
    pub n_fock: usize,
    pub wc: f64,
    pub wa: f64,
    pub g: f64,
    /// Rotating-wave coupling g (J_+ a + J_- a^+), else 2 g J_x (a + a^+).
    pub tavis_cummings: bool,
    pub kappa: f64,
    pub gamma: f64,
}

impl DickeCoeffs {
    pub fn dim(&self) -> usize {
        (self.n_cells + 1) * (self.n_fock + 1)
    }

    /// The coefficients after `[protocol] switch_off`: the cavity-cell coupling off, the
    /// dissipators on (`OpenSystem::coupling` of dicke).
    pub fn uncoupled(&self) -> DickeCoeffs {
        DickeCoeffs { g: 0.0, ..*self }
    }

    /// s_k = sqrt((k + 1)(N - k)), k = 0..N-1: J_+ |k> = s_k |k + 1>, J_- |k + 1> = s_k |k>.
    pub fn spin_ladder(&self) -> Vec<f64> {
        let n = self.n_cells;
        (0..n).map(|k| (((k + 1) * (n - k)) as f64).sqrt()).collect()
    }

    /// K's diagonal, K = -i H - (1/2)(kappa a^+a + gamma J_+J_-), at r = k (n_fock + 1) + n:
    ///   (re, im) = (-(kappa n + gamma k (N - k + 1))/2, -(wc n + wa k)),
    /// using J_+ J_- |k> = k (N - k + 1) |k>.
    pub fn k_diagonal(&self) -> Vec<(f64, f64)> {
        let (n, d) = (self.n_cells, self.n_fock + 1);
        let mut kd = Vec::with_capacity(self.dim());
        for k in 0..=n {
            for m in 0..d {
                let loss = 0.5 * (self.kappa * m as f64 + self.gamma * (k * (n - k + 1)) as f64);
                kd.push((-loss, -(self.wc * m as f64 + self.wa * k as f64)));
            }
        }
        kd
    }
}
