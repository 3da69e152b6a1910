//! The kernel's measures of two-qubit states stepped elsewhere, for a host that holds states
//! rather than measures: the cavity kernel returns each sample's reduced (cell 1, cell 2)
//! state. Each state gets the kernel's closed forms (`sample_measures`, in f64) as
//! `take_sample` gives them to a state it steps: the sample copy (the dephasing channel), Z's
//! battery row, and the t = 0 references (`references`, or `references_with` the Z(0) the
//! caller's states were stepped from).

use super::{dephase, references, sample_measures, PointR};
use crate::job::two_qubit::{KernelPoint, Pauli4, N_CODES};

/// One point's constants and the kernel flag bits of the measures asked for.
pub struct StateMeasures {
    p: PointR<f64>,
    flags: u32,
}

/// The t = 0 references of a member: the battery rows of rho0's and Z(0)'s sample copies.
pub type References = ([f64; 4], [f64; 4]);

impl StateMeasures {
    /// `k`'s measure constants (`KernelPoint::measuring` is enough: nothing is stepped) and
    /// `flags` (`KernelFlags::bits` of the measures asked for).
    pub fn new(k: &KernelPoint, flags: u32) -> Self {
        StateMeasures { p: PointR::new(k), flags }
    }

    /// The references of a member started in `x0` (Z(0) = {H_B - h0 I, rho0}/2 from it, of
    /// H_B's traceless part: `anticommutator`).
    pub fn references(&self, x0: &Pauli4) -> References {
        references(x0, &self.p)
    }

    /// The references of a member started in `x0` with Z(0) = `z0` as its Z(t) was stepped
    /// from: Z(t) - Z(0) then vanishes exactly at t = 0 (as `references` makes it for the
    /// kernel's own Z). Z is that of H_B's traceless part, as the kernel's (cavity-cells'
    /// {H_B, rho0}/2 is: its H_B = (wq/2) sz has h0 = 0).
    pub fn references_with(&self, x0: &Pauli4, z0: &Pauli4) -> References {
        (std::array::from_fn(|i| x0[i] * self.p.mask[i]), std::array::from_fn(|i| z0[i] * self.p.mask[i]))
    }

    /// The sample copy of a state: what every measure of it sees (the eigen-solve ones too).
    pub fn sample_copy(&self, x: &Pauli4) -> Pauli4 {
        dephase(x, &self.p.mask)
    }

    /// Every kernel measure of the state x at time t, by kernel code: `y` its sample copy,
    /// `z` Z(t) (read with `F_Z` only).
    pub fn of(&self, y: &Pauli4, z: &Pauli4, refs: &References, t: f64) -> [f64; N_CODES] {
        let yza: [f64; 4] = std::array::from_fn(|i| z[i] * self.p.mask[i]);
        sample_measures(y, &yza, &refs.0, &refs.1, t, &self.p, self.flags)
    }
}
