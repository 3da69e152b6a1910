//! Battery measures (PHYSICS.md "Measures"). Pure functions of states and Hamiltonians, f64.

use crate::error::{QbatError, Result};

/// Every output measure, by its PHYSICS.md column name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Measure {
    EnergyB,
    EnergyC,
    StoredEnergyB,
    ErgotropyB,
    AntiergotropyB,
    CapacityB,
    CapacityC,
    CapacityTotal,
    ResidualCapacity,
    PowerB,
    ErgotropicPowerB,
    EnergyVarianceB,
    EnergyFluctuationB,
    Concurrence,
    SteeringF3,
    SteeringAb,
    SteeringBa,
    BellChsh,
    CoherenceL1,
    ImaginarityL1,
    TextureB,
    Purity,
    EntropyB,
    PhotonNumber,
    TraceError,
    MinEigenvalue,
    FockTail,
}

use Measure::*;

impl Measure {
    pub const ALL: [Measure; 27] = [
        EnergyB, EnergyC, StoredEnergyB, ErgotropyB, AntiergotropyB, CapacityB, CapacityC, CapacityTotal,
        ResidualCapacity, PowerB, ErgotropicPowerB, EnergyVarianceB, EnergyFluctuationB, Concurrence, SteeringF3,
        SteeringAb, SteeringBa, BellChsh, CoherenceL1, ImaginarityL1, TextureB, Purity, EntropyB, PhotonNumber,
        TraceError, MinEigenvalue, FockTail,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            EnergyB => "energy_b",
            EnergyC => "energy_c",
            StoredEnergyB => "stored_energy_b",
            ErgotropyB => "ergotropy_b",
            AntiergotropyB => "antiergotropy_b",
            CapacityB => "capacity_b",
            CapacityC => "capacity_c",
            CapacityTotal => "capacity_total",
            ResidualCapacity => "residual_capacity",
            PowerB => "power_b",
            ErgotropicPowerB => "ergotropic_power_b",
            EnergyVarianceB => "energy_variance_b",
            EnergyFluctuationB => "energy_fluctuation_b",
            Concurrence => "concurrence",
            SteeringF3 => "steering_f3",
            SteeringAb => "steering_ab",
            SteeringBa => "steering_ba",
            BellChsh => "bell_chsh",
            CoherenceL1 => "coherence_l1",
            ImaginarityL1 => "imaginarity_l1",
            TextureB => "texture_b",
            Purity => "purity",
            EntropyB => "entropy_b",
            PhotonNumber => "photon_number",
            TraceError => "trace_error",
            MinEigenvalue => "min_eigenvalue",
            FockTail => "fock_tail",
        }
    }

    pub fn from_name(name: &str) -> Result<Measure> {
        Measure::ALL.iter().copied().find(|m| m.name() == name).ok_or_else(|| {
            QbatError::invalid("output.measures", format!("unknown measure '{name}'; `qbat-gpu measures` lists them"))
        })
    }

    /// Does the measure apply to a model? capacity_total/residual_capacity are two-qubit only;
    /// photon_number and fock_tail are cavity only.
    pub fn applies(&self, cavity: bool) -> bool {
        match self {
            CapacityTotal | ResidualCapacity => !cavity,
            PhotonNumber | FockTail => cavity,
            _ => true,
        }
    }

    /// Measures that need a 4x4 eigen-solve (or a full-state one); the GPU engines leave
    /// these to the host (nalgebra, from transferred states).
    pub fn needs_eigensolve(&self) -> bool {
        matches!(self, CapacityTotal | ResidualCapacity | Concurrence | SteeringAb | SteeringBa | MinEigenvalue)
    }

    pub fn doc(&self) -> &'static str {
        match self {
            EnergyB => "Tr(rho_b H_B)",
            EnergyC => "Tr(rho_c H_C)",
            StoredEnergyB => "energy_b(t) - energy_b(0)",
            ErgotropyB => "Tr(rho_b H_B) - sum_i eps_i lam_{d-1-i} (passive energy subtracted)",
            AntiergotropyB => "Tr(rho_b H_B) - sum_i eps_i lam_i (<= 0)",
            CapacityB => "sum_i eps_i (lam_i - lam_{d-1-i}) of rho_b against H_B",
            CapacityC => "sum_i eps_i (lam_i - lam_{d-1-i}) of rho_c against H_C",
            CapacityTotal => "capacity of the two-qubit state against the full H (two-qubit models)",
            ResidualCapacity => "capacity_total - capacity_b - capacity_c (two-qubit models)",
            PowerB => "stored_energy_b / t (0 at t = 0)",
            ErgotropicPowerB => "ergotropy_b / t (0 at t = 0)",
            EnergyVarianceB => "Tr(rho_b H_B^2) - Tr(rho_b H_B)^2",
            EnergyFluctuationB => "Sigma(t) of paper 003 eq. 6 (two-time, regression theorem): sqrt of Sigma^2",
            Concurrence => "Wootters concurrence of the two-qubit state",
            SteeringF3 => "Tr(T T^T) - 1",
            SteeringAb => "LOO steering charger -> battery (paper 002)",
            SteeringBa => "LOO steering battery -> charger (paper 002)",
            BellChsh => "2 sqrt(u1 + u2) - 2, u the two largest eigenvalues of T^T T",
            CoherenceL1 => "sum_{i != j} |rho_ij| of the two-qubit state",
            ImaginarityL1 => "sum_{i != j} |Im rho_ij| of the two-qubit state",
            TextureB => "(1/2) ||rho_b - |+><+| ||_tr",
            Purity => "Tr rho^2 of the two-qubit state",
            EntropyB => "-Tr rho_b log2 rho_b (bits)",
            PhotonNumber => "Tr(rho a^+ a) (cavity-cells)",
            TraceError => "|Tr rho - 1|",
            MinEigenvalue => "smallest eigenvalue of the full state (positivity)",
            FockTail => "population of the top Fock state |N> (cavity-cells)",
        }
    }
}

/// The default measure list for a model: every measure that applies.
pub fn default_measures(cavity: bool) -> Vec<Measure> {
    Measure::ALL.iter().copied().filter(|m| m.applies(cavity)).collect()
}
