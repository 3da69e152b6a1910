//! The measures of cavity-cells samples, for both engines (the GPU host from the kernel's
//! returns, the CPU engine from its own states): the two-qubit measures of each reduced
//! (cell 1, cell 2) state by the two-qubit kernel's closed forms and its Jacobi solvers
//! (`twin::rk4_two_qubit::StateMeasures`, `twin::measures_two_qubit::eigen_measures_of_states`,
//! in f64, four samples at a time), photon_number and fock_tail as given. The reduced state is a
//! two-qubit state with battery = cell 2 and charger = cell 1, in the two-qubit kernel's Pauli
//! basis (x[4a + b], a = cell 1), so the same code measures it; the f64 oracle (`measures`)
//! checks it in the tests below.

use crate::config::Plan;
use crate::error::{QbatError, Result};
use crate::gpu::rk4_cavity::CavityResult;
use crate::job::measures_two_qubit::{eigen_code, eigen_flags, eigen_point, N_EIGEN_CODES};
use crate::job::pauli::{pauli2, to_pauli};
use crate::job::two_qubit::{kernel_code, KernelFlags, KernelPoint, N_CODES};
use crate::job::{Pauli4, Peak, TwoQubitPoint, PEAK_MEASURES};
use crate::linalg::{CMat, C64};
use crate::measures::Measure;
use crate::model::OpenSystem;
use crate::twin::measures_two_qubit::eigen_measures_of_states;
use crate::twin::rk4_two_qubit::StateMeasures;
use rayon::prelude::*;

/// Where an output column of a cavity-cells run comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Source {
    /// `sample_measures`' code
    Closed(usize),
    /// `eigen_measures`' code
    Eigen(usize),
    PhotonNumber,
    FockTail,
    /// min_eigenvalue: of the full state, not the reduced one. The CPU engine writes it over
    /// this column from its full state; the GPU engine never asks for it (the kernel does not
    /// return the full state: left out of the defaults with a note; listed, an error before
    /// the run), so a NaN column, not a wrong value, should that change.
    Nan,
}

fn source(m: Measure) -> Result<Source> {
    Ok(match m {
        Measure::PhotonNumber => Source::PhotonNumber,
        Measure::FockTail => Source::FockTail,
        Measure::MinEigenvalue => Source::Nan,
        _ => match (kernel_code(m), eigen_code(m)) {
            (Some(k), _) => Source::Closed(k as usize),
            (None, Some(k)) => Source::Eigen(k as usize),
            (None, None) => return Err(QbatError::Numerics(format!("{} is not a measure of the cavity kernel's reduced states", m.name()))),
        },
    })
}

/// The measures of one run's reduced states: each column's source, and the flag words.
pub(super) struct ReducedMeasures {
    sources: Vec<Source>,
    closed_flags: u32,
    eigen_flags: u32,
    /// `sample_measures`' codes of `PEAK_MEASURES`
    peak_codes: [usize; 4],
}

impl ReducedMeasures {
    pub(super) fn new(measures: &[Measure]) -> Result<Self> {
        Ok(ReducedMeasures {
            sources: measures.iter().map(|&m| source(m)).collect::<Result<_>>()?,
            closed_flags: KernelFlags::for_measures(measures, false).bits(),
            // (min_eigenvalue is of the full state: NaN here, and it needs no solve)
            eigen_flags: eigen_flags(&measures.iter().copied().filter(|&m| m != Measure::MinEigenvalue).collect::<Vec<_>>()),
            peak_codes: PEAK_MEASURES.map(|m| kernel_code(m).expect("the peak measures are kernel measures") as usize),
        })
    }

    /// One member's rows [sample][column] into `values` and its peaks: `x0` its reduced rho0,
    /// `z0` the reduced Z(0) its Z(t) was stepped from (with energy_fluctuation_b), and
    /// `sample(s)` sample s's reduced state and Z(t) (Pauli coefficients), photon number and
    /// Fock tail. The closed forms sample by sample, then the eigen-solve measures of the
    /// member's sample copies four at a time (`eigen_measures_of_states`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn member(
        &self,
        sys: &OpenSystem,
        times: &[f64],
        x0: &Pauli4,
        z0: Option<&Pauli4>,
        sample: impl Fn(usize) -> ReducedSample,
        values: &mut [f64],
        peaks: &mut [Peak],
    ) {
        let point = TwoQubitPoint {
            generator: [0.0; 256],
            generator_off: None,
            h_battery: pauli2(&sys.h_battery),
            h_charger: pauli2(&sys.h_charger),
            dephasing: sys.dephasing,
            drives: vec![],
        };
        let closed = StateMeasures::new(&KernelPoint::measuring(&point), self.closed_flags);
        // Z(t) - Z(0) from the Z(0) the member stepped from: exactly 0 at t = 0. The
        // closed forms take Z of H_B's traceless part; {H_B, rho0}/2 is that here (h0 = 0)
        debug_assert!(z0.is_none() || point.h_battery[0] == 0.0, "cavity H_B with an offset");
        let refs = z0.map_or_else(|| closed.references(x0), |z0| closed.references_with(x0, z0));
        let n_cols = self.sources.len();
        let ns = times.len();
        // each sample's copy, what the eigen-solve measures take, and whether it is finite
        let mut copies = vec![0.0; if self.eigen_flags == 0 { 0 } else { 16 * ns }];
        let mut finite = vec![false; ns];
        for (s, &t) in times.iter().enumerate() {
            let ReducedSample { x, z, photon, tail } = sample(s);
            let y = closed.sample_copy(&x);
            let zt = z.unwrap_or([0.0; 16]);
            // A non-finite sample gives NaN in every state column, as the matrix-form measures
            // do, so that the health check sees it (a closed form such as entropy_b's would
            // not carry the NaN through).
            finite[s] = y.iter().chain(&zt).all(|v| v.is_finite());
            let m = if finite[s] { closed.of(&y, &zt, &refs, t) } else { [f64::NAN; N_CODES] };
            for (v, src) in values[s * n_cols..(s + 1) * n_cols].iter_mut().zip(&self.sources) {
                *v = match *src {
                    Source::Closed(k) => m[k],
                    // (below)
                    Source::Eigen(_) => f64::NAN,
                    Source::PhotonNumber => photon,
                    Source::FockTail => tail,
                    Source::Nan => f64::NAN,
                };
            }
            crate::engine::update_peaks(peaks, s, t, &self.peak_codes.map(|k| m[k]));
            if !copies.is_empty() {
                copies[16 * s..16 * (s + 1)].copy_from_slice(&y);
            }
        }
        if copies.is_empty() {
            return;
        }
        // (the spectrum of H serves capacity_total only, which the cavity model has not)
        let mut eigen = vec![0.0; ns * N_EIGEN_CODES];
        eigen_measures_of_states(&copies, &eigen_point(&point, &[0.0; 4]), self.eigen_flags, &mut eigen);
        for (s, row) in values.chunks_exact_mut(n_cols.max(1)).take(ns).enumerate() {
            for (v, src) in row.iter_mut().zip(&self.sources) {
                if let (Source::Eigen(k), true) = (*src, finite[s]) {
                    *v = eigen[s * N_EIGEN_CODES + k];
                }
            }
        }
    }
}

/// One sample of a member for `ReducedMeasures::member`.
#[derive(Clone, Copy)]
pub(super) struct ReducedSample {
    /// the reduced state's Pauli coefficients
    pub x: Pauli4,
    /// Z(t)'s, with energy_fluctuation_b
    pub z: Option<Pauli4>,
    pub photon: f64,
    pub tail: f64,
}

/// Pauli coefficients of a 4x4 row-major matrix.
fn pauli_of(m: &[C64; 16]) -> Pauli4 {
    to_pauli(&CMat::from_row_slice(4, 4, m))
}

/// What the cavity kernel returns for a run's members (`CavityResult`'s data).
pub(super) struct Samples<'a> {
    /// each member's reduced rho0, 4x4 row-major
    pub initial: &'a [[C64; 16]],
    /// each member's reduced Z(0), with energy_fluctuation_b
    pub z_initial: Option<&'a [[C64; 16]]>,
    /// [member][sample] 16 Pauli coefficients less rho0's
    pub deltas: &'a [f64],
    /// the same for Z
    pub z_deltas: Option<&'a [f64]>,
    /// [member][sample]
    pub photon_number: &'a [f64],
    pub fock_tail: &'a [f64],
}

impl<'a> From<&'a CavityResult> for Samples<'a> {
    fn from(r: &'a CavityResult) -> Self {
        Samples {
            initial: &r.initial,
            z_initial: r.z_initial.as_deref(),
            deltas: &r.deltas,
            z_deltas: r.z_deltas.as_deref(),
            photon_number: &r.photon_number,
            fock_tail: &r.fock_tail,
        }
    }
}

/// Every member's values [member][sample][measure] and peaks from what the cavity kernel
/// returned.
pub(super) fn cavity_assemble(plan: &Plan, measures: &[Measure], r: &Samples) -> Result<(Vec<f64>, Vec<Peak>)> {
    let reduced = ReducedMeasures::new(measures)?;
    if measures.contains(&Measure::EnergyFluctuationB) && (r.z_initial.is_none() || r.z_deltas.is_none()) {
        return Err(QbatError::Numerics("energy_fluctuation_b needs Z(t), which the cavity kernel did not evolve".into()));
    }
    let (ns, nm, n) = (plan.schedule.times.len(), measures.len(), plan.members.len());
    let mut values = vec![0.0; n * ns * nm];
    let mut peaks = vec![Peak::default(); n * 4];
    values.par_chunks_mut((ns * nm).max(1)).zip(peaks.par_chunks_mut(4)).enumerate().for_each(|(i, (rows, member_peaks))| {
        let states = i * ns * 16..(i + 1) * ns * 16;
        let z0 = r.z_initial.map(|z| pauli_of(&z[i]));
        let z = z0.as_ref().zip(r.z_deltas).map(|(z0, dz)| (z0, &dz[states.clone()]));
        let per_sample = i * ns..(i + 1) * ns;
        let (x0, dx) = (pauli_of(&r.initial[i]), &r.deltas[states.clone()]);
        let at = |d: &[f64], base: &Pauli4, s: usize| -> Pauli4 { std::array::from_fn(|k| base[k] + d[16 * s + k]) };
        let sample = |s: usize| ReducedSample {
            x: at(dx, &x0, s),
            z: z.map(|(z0, dz)| at(dz, z0, s)),
            photon: r.photon_number[per_sample.start + s],
            tail: r.fock_tail[per_sample.start + s],
        };
        reduced.member(&plan.systems[plan.members[i].point], &plan.schedule.times, &x0, z.map(|(z0, _)| z0), sample, rows, member_peaks);
    });
    Ok((values, peaks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_plan, Overrides};
    use crate::linalg::hermitian_part;
    use crate::measures::{evaluate, two_qubit_part, MeasureContext, Sample};
    use crate::model::Space;
    use crate::verify::measure_tolerance;
    use rand::{Rng, SeedableRng};

    fn random_matrix(rng: &mut impl Rng) -> CMat {
        CMat::from_fn(4, 4, |_, _| C64::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)))
    }

    /// G G^+ / Tr: full rank, or rank one from a single column of G.
    fn random_state(rng: &mut impl Rng, pure: bool) -> CMat {
        let mut g = random_matrix(rng);
        if pure {
            for c in 1..4 {
                g.column_mut(c).fill(C64::new(0.0, 0.0));
            }
        }
        let rho = &g * g.adjoint();
        let tr = rho.trace();
        rho / tr
    }

    /// Every measure of the cavity model (the listed ones too), alone and all together, and
    /// the peaks, of random reduced states (mixed and pure) and random Hermitian Z's, each
    /// member's t = 0 state its own, through `cavity_assemble`'s slicing of the kernel's
    /// returned arrays: against the f64 oracle on the same 4x4 states in a two-qubit context (as
    /// the engine measured them before). A NaN in one member's sample gives NaN in its state
    /// columns there. (In cavity-cells H_B = H_C, so a swap of the two would not show here;
    /// the two-qubit twin's own tests hold them apart.)
    #[test]
    fn reduced_state_measures_are_the_oracles() {
        let plan = parse_plan(
            "model = \"cavity-cells\"\n[params]\nn_fock = 3\nalpha = 0.7\nlambda = { values = [0.5, 1.5, 1.1] }\nwq = 1.3\n[time]\ndt = 0.01\nt_end = 0.06\nsamples = 7\n",
            &Overrides::default(),
        )
        .unwrap();
        let all: Vec<Measure> = Measure::ALL.iter().copied().filter(|m| m.applies_to(plan.model) && *m != Measure::SteadyResidual).collect();
        assert!(all.contains(&Measure::Concurrence) && all.contains(&Measure::SmCIm) && all.contains(&Measure::EnergyFluctuationB));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let (ns, n) = (plan.schedule.times.len(), plan.members.len());
        let space = Space::Cavity { n_fock: 3 };
        let row_major = |m: &CMat| -> [C64; 16] { std::array::from_fn(|k| m[(k / 4, k % 4)]) };
        // per member: rho0's and Z(0)'s reduced parts, then random states and Z's per sample
        let (mut initial, mut z_initial, mut states, mut zs) = (vec![], vec![], vec![], vec![]);
        let (mut deltas, mut z_deltas) = (vec![], vec![]);
        for member in &plan.members {
            let rho0 = plan.initial_state(member);
            let x0 = two_qubit_part(space, &rho0, 0.0);
            let z0 = two_qubit_part(space, &hermitian_part(&crate::engine::battery_times_state(&plan, &plan.systems[member.point], &rho0)), 0.0);
            for s in 0..ns {
                // the first member's first sample is its t = 0 state, as the kernel returns it
                let (rho, z) = match (member.id, s) {
                    (0, 0) => (x0.clone(), z0.clone()),
                    _ => (random_state(&mut rng, s % 3 == 1), hermitian_part(&random_matrix(&mut rng))),
                };
                deltas.extend(to_pauli(&rho).iter().zip(to_pauli(&x0)).map(|(a, b)| a - b));
                z_deltas.extend(to_pauli(&z).iter().zip(to_pauli(&z0)).map(|(a, b)| a - b));
                states.push(rho);
                zs.push(z);
            }
            initial.push(row_major(&x0));
            z_initial.push(row_major(&z0));
        }
        // not finite: member 2's state at sample 4, member 1's Z at sample 3
        deltas[(2 * ns + 4) * 16 + 5] = f64::NAN;
        z_deltas[(ns + 3) * 16 + 2] = f64::NAN;
        let photon: Vec<f64> = (0..n * ns).map(|_| rng.random_range(0.0..4.0)).collect();
        let tail: Vec<f64> = (0..n * ns).map(|_| rng.random_range(0.0..1e-6)).collect();
        let samples =
            Samples { initial: &initial, z_initial: Some(&z_initial), deltas: &deltas, z_deltas: Some(&z_deltas), photon_number: &photon, fock_tail: &tail };
        // At t = 0 the differences from rho0 and Z(0) vanish exactly: so do stored_energy_b and
        // energy_fluctuation_b (a square root would magnify any rounding left there), measured
        // from the Z(0) the kernel returned, here one off {H_B, rho0}/2 by 1e-3 (which
        // {H_B, rho0}/2 recomputed would leave in Sigma(0) as a few hundredths).
        let mut z_off = z_initial.clone();
        z_off[0][0] += C64::new(1e-3, 0.0);
        let mut z_deltas_off = z_deltas.clone();
        z_deltas_off[..16].fill(0.0);
        let at_zero = Samples { z_initial: Some(&z_off), z_deltas: Some(&z_deltas_off), ..samples };
        let (values, _) = cavity_assemble(&plan, &[Measure::StoredEnergyB, Measure::EnergyFluctuationB], &at_zero).unwrap();
        assert_eq!((values[0], values[1]), (0.0, 0.0));
        let lists: Vec<Vec<Measure>> = std::iter::once(all.clone()).chain(all.iter().map(|&m| vec![m])).collect();
        for list in &lists {
            let (values, peaks) = cavity_assemble(&plan, list, &samples).unwrap();
            for (i, member) in plan.members.iter().enumerate() {
                let rho0 = plan.initial_state(member);
                let mut ctx = MeasureContext::new(&plan.systems[member.point], &rho0);
                ctx.space = Space::TwoQubit;
                let mut want_peaks = vec![Peak::default(); 4];
                for (s, &t) in plan.schedule.times.iter().enumerate() {
                    let nan_matrix = CMat::from_element(4, 4, C64::new(f64::NAN, 0.0));
                    let (nan_state, nan_z) = ((i, s) == (2, 4), (i, s) == (1, 3));
                    let nan = nan_state || nan_z;
                    let rho = if nan_state { nan_matrix.clone() } else { states[i * ns + s].clone() };
                    let z = if nan_z { nan_matrix } else { zs[i * ns + s].clone() };
                    let sample = Sample { t, rho: &rho, y: Some(&z) };
                    for (k, &m) in list.iter().enumerate() {
                        let got = values[(i * ns + s) * list.len() + k];
                        let want = match m {
                            Measure::PhotonNumber => photon[i * ns + s],
                            Measure::FockTail => tail[i * ns + s],
                            Measure::MinEigenvalue => f64::NAN,
                            _ => evaluate(&[m], &ctx, &sample)[0],
                        };
                        let state_column = !matches!(m, Measure::PhotonNumber | Measure::FockTail);
                        assert_eq!(want.is_nan(), m == Measure::MinEigenvalue || (nan && state_column), "{}", m.name());
                        let tol = measure_tolerance(m, 1e-12) * want.abs().max(1.0);
                        assert!((got - want).abs() <= tol || (got.is_nan() && want.is_nan()), "member {i} sample {s} {}: {got} against {want}", m.name());
                    }
                    crate::engine::update_peaks(&mut want_peaks, s, t, &evaluate(&PEAK_MEASURES, &ctx, &sample));
                }
                for (got, want) in peaks[4 * i..4 * i + 4].iter().zip(&want_peaks) {
                    assert_eq!(got.t_max, want.t_max);
                    assert!((got.max - want.max).abs() <= 1e-12 * want.max.abs().max(1.0), "{got:?} against {want:?}");
                }
            }
        }
        // energy_fluctuation_b with no Z returned is an error, not a column of zeros
        let no_z = Samples { z_initial: None, z_deltas: None, ..samples };
        assert!(cavity_assemble(&plan, &[Measure::EnergyFluctuationB], &no_z).is_err());
        assert!(cavity_assemble(&plan, &[Measure::EnergyB], &no_z).is_ok());
    }
}
