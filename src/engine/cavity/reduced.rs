//! The measures of the cavity kernel's samples on the host: the two-qubit measures of each
//! reduced (cell 1, cell 2) state by the two-qubit kernel's closed forms and its Jacobi
//! solvers (`twin::rk4_two_qubit::StateMeasures`, `twin::measures_two_qubit::eigen_measures`,
//! in f64), photon_number and fock_tail as the kernel gives them. The reduced state is a
//! two-qubit state with battery = cell 2 and charger = cell 1, in the two-qubit kernel's Pauli
//! basis (x[4a + b], a = cell 1), so the same code measures it; the f64 oracle (`measures`)
//! checks it in the tests below.

use crate::config::Plan;
use crate::error::{QbatError, Result};
use crate::gpu::rk4_cavity::CavityResult;
use crate::job::measures_two_qubit::{eigen_code, eigen_flags, eigen_point, N_EIGEN_CODES};
use crate::job::pauli::{pauli2, to_pauli};
use crate::job::two_qubit::{kernel_code, KernelFlags, KernelPoint};
use crate::job::{Pauli4, Peak, TwoQubitPoint, PEAK_MEASURES};
use crate::linalg::{CMat, C64};
use crate::measures::Measure;
use crate::model::OpenSystem;
use crate::twin::measures_two_qubit::eigen_measures;
use crate::twin::rk4_two_qubit::StateMeasures;
use rayon::prelude::*;

/// Where an output column of a cavity run on the kernel comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Source {
    /// `sample_measures`' code
    Closed(usize),
    /// `eigen_measures`' code
    Eigen(usize),
    PhotonNumber,
    FockTail,
    /// min_eigenvalue: of the full state, which the kernel does not return (the engine
    /// leaves it out of the defaults and says so)
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
        let code = |m: Measure| kernel_code(m).map(|k| k as usize).ok_or_else(|| QbatError::Numerics(format!("{} has no kernel code", m.name())));
        Ok(ReducedMeasures {
            sources: measures.iter().map(|&m| source(m)).collect::<Result<_>>()?,
            closed_flags: KernelFlags::for_measures(measures, false).bits(),
            eigen_flags: eigen_flags(measures),
            peak_codes: [code(PEAK_MEASURES[0])?, code(PEAK_MEASURES[1])?, code(PEAK_MEASURES[2])?, code(PEAK_MEASURES[3])?],
        })
    }

    /// One member's rows [sample][column] into `values` and its peaks: `x0` its reduced rho0,
    /// `dx` the samples' Pauli coefficients less x0's (16 per sample), `z` Z(0)'s and Z(t)'s
    /// differences where energy_fluctuation_b is asked for; `photon` and `tail` per sample.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn member(
        &self,
        sys: &OpenSystem,
        times: &[f64],
        x0: &Pauli4,
        dx: &[f64],
        z: Option<(&Pauli4, &[f64])>,
        photon: &[f64],
        tail: &[f64],
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
        // (the spectrum of H serves capacity_total only, which the cavity model has not)
        let eigen_point = eigen_point(&point, &[0.0; 4]);
        let refs = closed.references(x0);
        let n_cols = self.sources.len();
        for (s, &t) in times.iter().enumerate() {
            let at = |d: &[f64], base: &Pauli4| -> Pauli4 { std::array::from_fn(|k| base[k] + d[16 * s + k]) };
            let y = closed.sample_copy(&at(dx, x0));
            let zt = z.map_or([0.0; 16], |(z0, dz)| at(dz, z0));
            let m = closed.of(&y, &zt, &refs, t);
            let e = if self.eigen_flags != 0 { eigen_measures(&y, &eigen_point, self.eigen_flags) } else { [0.0; N_EIGEN_CODES] };
            for (v, src) in values[s * n_cols..(s + 1) * n_cols].iter_mut().zip(&self.sources) {
                *v = match *src {
                    Source::Closed(k) => m[k],
                    Source::Eigen(k) => e[k],
                    Source::PhotonNumber => photon[s],
                    Source::FockTail => tail[s],
                    Source::Nan => f64::NAN,
                };
            }
            crate::engine::update_peaks(peaks, s, t, &self.peak_codes.map(|k| m[k]));
        }
    }
}

/// Pauli coefficients of a 4x4 row-major matrix.
fn pauli_of(m: &[C64; 16]) -> Pauli4 {
    to_pauli(&CMat::from_row_slice(4, 4, m))
}

/// Every member's values [member][sample][measure] and peaks from what the cavity kernel
/// returned.
pub(super) fn cavity_assemble(plan: &Plan, measures: &[Measure], r: &CavityResult) -> Result<(Vec<f64>, Vec<Peak>)> {
    let reduced = ReducedMeasures::new(measures)?;
    if measures.contains(&Measure::EnergyFluctuationB) && (r.z_initial.is_none() || r.z_deltas.is_none()) {
        return Err(QbatError::Numerics("energy_fluctuation_b needs Z(t), which the cavity kernel did not evolve".into()));
    }
    let (ns, nm, n) = (plan.schedule.times.len(), measures.len(), plan.members.len());
    let mut values = vec![0.0; n * ns * nm];
    let mut peaks = vec![Peak::default(); n * 4];
    values.par_chunks_mut((ns * nm).max(1)).zip(peaks.par_chunks_mut(4)).enumerate().for_each(|(i, (rows, member_peaks))| {
        let sys = &plan.systems[plan.members[i].point];
        let states = i * ns * 16..(i + 1) * ns * 16;
        let z0 = r.z_initial.as_ref().map(|z| pauli_of(&z[i]));
        let z = z0.as_ref().zip(r.z_deltas.as_ref()).map(|(z0, dz)| (z0, &dz[states.clone()]));
        let per_sample = i * ns..(i + 1) * ns;
        reduced.member(
            sys,
            &plan.schedule.times,
            &pauli_of(&r.initial[i]),
            &r.deltas[states.clone()],
            z,
            &r.photon_number[per_sample.clone()],
            &r.fock_tail[per_sample],
            rows,
            member_peaks,
        );
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

    /// The measures of random reduced states (mixed and pure) and of a random Hermitian Z, each
    /// member's t = 0 state the plan's own, against the f64 oracle on the same 4x4 states in a
    /// two-qubit context (as the engine measured them before): every measure of the cavity
    /// model, the listed ones too, and the peaks.
    #[test]
    fn reduced_state_measures_are_the_oracles() {
        let plan = parse_plan(
            "model = \"cavity-cells\"\n[params]\nn_fock = 3\nalpha = 0.7\nlambda = { values = [0.5, 1.5] }\nwq = 1.3\n[time]\ndt = 0.01\nt_end = 0.06\nsamples = 7\n",
            &Overrides::default(),
        )
        .unwrap();
        let measures: Vec<Measure> = Measure::ALL.iter().copied().filter(|m| m.applies_to(plan.model) && *m != Measure::SteadyResidual).collect();
        assert!(measures.contains(&Measure::Concurrence) && measures.contains(&Measure::SmCIm) && measures.contains(&Measure::EnergyFluctuationB));
        let reduced = ReducedMeasures::new(&measures).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let ns = plan.schedule.times.len();
        for member in &plan.members {
            let sys = &plan.systems[member.point];
            let rho0 = plan.initial_state(member);
            let x0 = to_pauli(&two_qubit_part(Space::Cavity { n_fock: 3 }, &rho0, 0.0));
            let hb_full = crate::engine::battery_times_state(&plan, sys, &rho0);
            let z0 = to_pauli(&two_qubit_part(Space::Cavity { n_fock: 3 }, &hermitian_part(&hb_full), 0.0));
            let states: Vec<CMat> = (0..ns).map(|s| random_state(&mut rng, s % 3 == 1)).collect();
            let zs: Vec<CMat> = (0..ns).map(|_| hermitian_part(&random_matrix(&mut rng))).collect();
            let delta = |m: &CMat, base: &Pauli4| to_pauli(m).iter().zip(base).map(|(a, b)| a - b).collect::<Vec<f64>>();
            let dx: Vec<f64> = states.iter().flat_map(|m| delta(m, &x0)).collect();
            let dz: Vec<f64> = zs.iter().flat_map(|m| delta(m, &z0)).collect();
            let photon: Vec<f64> = (0..ns).map(|_| rng.random_range(0.0..4.0)).collect();
            let tail: Vec<f64> = (0..ns).map(|_| rng.random_range(0.0..1e-6)).collect();
            let mut values = vec![0.0; ns * measures.len()];
            let mut peaks = vec![Peak::default(); 4];
            reduced.member(sys, &plan.schedule.times, &x0, &dx, Some((&z0, &dz)), &photon, &tail, &mut values, &mut peaks);

            let mut ctx = MeasureContext::new(sys, &rho0);
            ctx.space = Space::TwoQubit;
            let mut want_peaks = vec![Peak::default(); 4];
            for (s, &t) in plan.schedule.times.iter().enumerate() {
                let sample = Sample { t, rho: &states[s], y: Some(&zs[s]) };
                for (k, &m) in measures.iter().enumerate() {
                    let got = values[s * measures.len() + k];
                    let want = match m {
                        Measure::PhotonNumber => photon[s],
                        Measure::FockTail => tail[s],
                        Measure::MinEigenvalue => f64::NAN,
                        _ => evaluate(&[m], &ctx, &sample)[0],
                    };
                    let tol = measure_tolerance(m, 1e-12) * want.abs().max(1.0);
                    assert!((got - want).abs() <= tol || (got.is_nan() && want.is_nan()), "member {} sample {s} {}: {got} against {want}", member.id, m.name());
                }
                crate::engine::update_peaks(&mut want_peaks, s, t, &evaluate(&PEAK_MEASURES, &ctx, &sample));
            }
            for (got, want) in peaks.iter().zip(&want_peaks) {
                assert_eq!(got.t_max, want.t_max);
                assert!((got.max - want.max).abs() <= 1e-12 * want.max.abs().max(1.0), "{got:?} against {want:?}");
            }
        }
    }
}
