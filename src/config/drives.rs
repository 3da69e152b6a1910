//! `[[drive]]`: time-dependent terms of the Hamiltonian (`model::drive`). Each table names an
//! operator (or gives a Hermitian matrix of the model's dimension), an amplitude and a
//! frequency (both sweepable like a parameter), an optional phase and an envelope. Swept
//! values become grid axes (or per-member draws) named `drive[k].amplitude` and
//! `drive[k].frequency`, columns of summary.csv like any swept parameter.

use super::values::{as_array, as_f64, as_matrix, as_sweep, check_keys, invalid};
use crate::ensemble::sweep::Sweep;
use crate::error::Result;
use crate::linalg::{hermiticity_error, CMat};
use crate::model::drive::{named_operator, Drive, Envelope};
use crate::model::{ParamValue, Params, Space};
use toml::{Table, Value};

/// One `[[drive]]` table, validated; amplitude and frequency hold the base values (the first
/// of a sweep), replaced per point by `drives_of_point`.
#[derive(Clone, Debug)]
pub struct DriveSection {
    pub drives: Vec<Drive>,
    /// Grid axes and per-member draws of swept amplitudes and frequencies.
    pub axes: Vec<(String, Vec<f64>)>,
    pub drawn: Vec<(String, f64, f64)>,
}

/// The parameter-point key of drive k's amplitude or frequency.
pub fn key(k: usize, what: &str) -> String {
    format!("drive[{k}].{what}")
}

/// Read every `[[drive]]` table for a model in `space`.
pub fn parse_drives(root: &Table, space: Space, model_name: &str, steady: bool) -> Result<DriveSection> {
    let mut sec = DriveSection { drives: vec![], axes: vec![], drawn: vec![] };
    let Some(v) = root.get("drive") else {
        return Ok(sec);
    };
    let list = match v {
        Value::Array(a) => a,
        _ => return Err(invalid("drive", "must be [[drive]] tables (an array of tables)")),
    };
    if matches!(space, Space::Dicke { .. }) {
        return Err(invalid("drive", format!("model '{model_name}' takes no drives (drives are supported on the two-qubit models and cavity-cells)")));
    }
    if steady && !list.is_empty() {
        return Err(invalid("drive", "a driven Hamiltonian depends on time: it has no steady state (time.steady = true); integrate instead"));
    }
    if list.len() > crate::job::two_qubit::MAX_DRIVES {
        return Err(invalid("drive", format!("at most {} [[drive]] tables, got {}", crate::job::two_qubit::MAX_DRIVES, list.len())));
    }
    for (k, t) in list.iter().enumerate() {
        let f = format!("drive[{k}]");
        let t = t.as_table().ok_or_else(|| invalid(&f, "must be a table"))?;
        check_keys(t, &["operator", "amplitude", "frequency", "phase", "envelope"], &f)?;
        let (op, name) = operator(t.get("operator"), space, &format!("{f}.operator"))?;
        let amplitude = sweep(t.get("amplitude"), &format!("{f}.amplitude"), &key(k, "amplitude"), &mut sec)?;
        let frequency = sweep(t.get("frequency"), &format!("{f}.frequency"), &key(k, "frequency"), &mut sec)?;
        let phase = match t.get("phase") {
            Some(v) => reduced_phase(as_f64(v, &format!("{f}.phase"))?, &format!("{f}.phase"))?,
            None => 0.0,
        };
        let envelope = envelope(t.get("envelope"), &format!("{f}.envelope"))?;
        sec.drives.push(Drive { op: std::sync::Arc::new(op), name, amplitude, frequency, phase, envelope });
    }
    Ok(sec)
}

/// `phase` mod 2 pi, in [-pi, pi]: the same drive, cos(frequency t + phase), for every engine,
/// with a phase an f32 kernel can hold (a raw phase of 1e7 is rounded to whole radians in
/// f32). The product k 2 pi is taken in two parts with fused multiply-adds, so the reduction
/// is exact to about 1e-16 for |phase| up to MAX_DRIVE_ARGUMENT, beyond which it is refused.
fn reduced_phase(phase: f64, field: &str) -> Result<f64> {
    // 2 pi - TAU: the part of 2 pi that the f64 TAU leaves out
    const TAU_LO: f64 = 2.449_293_598_294_706_4e-16;
    if phase.abs() > MAX_DRIVE_ARGUMENT {
        return Err(invalid(field, format!("|phase| = {:.4e} exceeds {MAX_DRIVE_ARGUMENT:e}, where the drive's cos loses accuracy", phase.abs())));
    }
    let k = (phase / std::f64::consts::TAU).round();
    // (phase - k TAU is exact: both are multiples of TAU's last place, and it is below 2 pi)
    Ok((-k).mul_add(TAU_LO, (-k).mul_add(std::f64::consts::TAU, phase)))
}

/// A named operator or a Hermitian matrix of the space's dimension.
fn operator(v: Option<&Value>, space: Space, field: &str) -> Result<(CMat, Option<String>)> {
    let v = v.ok_or_else(|| invalid(field, "missing (a named operator such as \"sx_b\", or a matrix)"))?;
    if let Some(name) = v.as_str() {
        return Ok((named_operator(space, name, field)?, Some(name.to_string())));
    }
    let m = as_matrix(v, field)?;
    let dim = space.dim();
    if m.nrows() != dim {
        return Err(invalid(field, format!("must be {dim}x{dim} (the model's dimension), got {}x{}", m.nrows(), m.ncols())));
    }
    // Hermitian to 1e-12 of the largest entry of O less its identity part (a shift changes
    // no state, so it must not make room for an anti-Hermitian part: at 1e9 it let one of
    // 5e-4 of a unit O pass), then taken as its Hermitian part (O + O^+) / 2, so that every
    // engine integrates the same Hermitian O (the same bits where O is exactly Hermitian).
    // The identity part itself is left for the engines to drop. (Entries are at most 1e60:
    // the trace is finite.)
    let scale = crate::linalg::traceless_part(&m).iter().map(|z| z.norm()).fold(0.0, f64::max);
    let err = hermiticity_error(&m);
    if !(err <= 1e-12 * scale) {
        return Err(invalid(
            field,
            format!("must be Hermitian (largest |O_ij - conj(O_ji)| = {err:e}, against {scale:e} for its largest entry less the identity part)"),
        ));
    }
    let m = (&m + m.adjoint()) * crate::linalg::C64::new(0.5, 0.0);
    Ok((m, None))
}

/// A sweepable number: a fixed value, or a grid axis / per-member draw named `name`.
fn sweep(v: Option<&Value>, field: &str, name: &str, sec: &mut DriveSection) -> Result<f64> {
    let v = v.ok_or_else(|| invalid(field, "missing"))?;
    Ok(match as_sweep(v, field)? {
        Sweep::Fixed(x) => x,
        Sweep::Values(vals) => {
            let x = vals[0];
            sec.axes.push((name.to_string(), vals));
            x
        }
        Sweep::Uniform(lo, hi) => {
            sec.drawn.push((name.to_string(), lo, hi));
            lo
        }
    })
}

/// "constant", { gaussian = [t0, sigma] } or { window = [t_on, t_off] }.
fn envelope(v: Option<&Value>, field: &str) -> Result<Envelope> {
    let Some(v) = v else {
        return Ok(Envelope::Constant);
    };
    const FORMS: &str = "\"constant\", { gaussian = [t0, sigma] } or { window = [t_on, t_off] }";
    match v {
        Value::String(s) if s == "constant" => Ok(Envelope::Constant),
        Value::Table(t) if t.len() == 1 => {
            let (k, val) = t.iter().next().expect("one entry");
            let f = format!("{field}.{k}");
            let pair = |what: &str| -> Result<(f64, f64)> {
                let a = as_array(val, &f)?;
                if a.len() != 2 {
                    return Err(invalid(&f, format!("must be {what}")));
                }
                Ok((as_f64(&a[0], &f)?, as_f64(&a[1], &f)?))
            };
            match k.as_str() {
                "gaussian" => {
                    let (t0, sigma) = pair("[t0, sigma]")?;
                    if sigma <= 0.0 {
                        return Err(invalid(&f, format!("sigma must be > 0, got {}", crate::error::shown(sigma))));
                    }
                    Ok(Envelope::Gaussian { t0, sigma })
                }
                "window" => {
                    let (t_on, t_off) = pair("[t_on, t_off]")?;
                    if t_off <= t_on {
                        return Err(invalid(&f, format!("t_off must be > t_on, got [{t_on}, {t_off}]")));
                    }
                    Ok(Envelope::Window { t_on, t_off })
                }
                other => Err(invalid(field, format!("unknown envelope '{other}'; use {FORMS}"))),
            }
        }
        _ => Err(invalid(field, format!("must be {FORMS}"))),
    }
}

/// The drives of one parameter point: the swept amplitudes and frequencies taken out of
/// `point` (where the ensemble expansion put them) into copies of the configured drives.
pub fn drives_of_point(sec: &DriveSection, point: &mut Params) -> Vec<Drive> {
    let mut take = |name: String, base: f64| match point.remove(&name) {
        Some(ParamValue::Real(x)) => x,
        _ => base,
    };
    sec.drives
        .iter()
        .enumerate()
        .map(|(k, d)| Drive { amplitude: take(key(k, "amplitude"), d.amplitude), frequency: take(key(k, "frequency"), d.frequency), ..d.clone() })
        .collect()
}

/// The largest |frequency| dt a drive may have (see `resolvable`).
const MAX_FREQUENCY_DT: f64 = 1.0;

/// Fixed-step RK4 sees a drive only at its stage times: a drive of fewer than 2 pi steps per
/// period (|frequency| dt > 1), or a gaussian narrower than a step, would be aliased,
/// skipped or amplified without a sign (from |frequency| dt of about 1.5 the RK4 map of a
/// driven member is far from contractive: a closed two-level battery's purity reaches 2.7 and
/// its energy falls below its ground state at |frequency| dt = 3 within 200 steps, on every
/// engine alike). Below 1 what is left is RK4's truncation error, which grows with the drive's
/// amplitude and the run's length and shrinks as dt^4 (a purity 4.5e-6 above 1 after 20,000
/// steps at amplitude 0.5 and |frequency| dt = 0.2; 0.34 above at amplitude 10 and 1): the
/// `nonpositive` health flag marks it. And
/// cos(frequency t + phase) is evaluated by range reduction that keeps full accuracy only for
/// |argument| up to about 1e12. Each is refused, naming the drive's field.
fn resolvable(k: usize, d: &Drive, dt: f64, t_end: f64) -> Result<()> {
    if d.frequency.abs() * dt > MAX_FREQUENCY_DT {
        return Err(invalid(
            &key(k, "frequency"),
            format!(
                "|frequency| * dt = {:.4e} exceeds {MAX_FREQUENCY_DT}: fewer than 2 pi RK4 steps per drive period, where fixed-step RK4 amplifies a driven state instead of following it; use dt <= {:.4e}",
                d.frequency.abs() * dt,
                MAX_FREQUENCY_DT / d.frequency.abs()
            ),
        ));
    }
    // (the phase is within [-pi, pi] here: `reduced_phase` took it mod 2 pi)
    let phase_span = d.frequency.abs() * t_end + d.phase.abs();
    if phase_span > MAX_DRIVE_ARGUMENT {
        return Err(invalid(
            &key(k, "frequency"),
            format!("|frequency| t_end + |phase| = {phase_span:.4e} exceeds {MAX_DRIVE_ARGUMENT:e}, where the drive's cos loses accuracy"),
        ));
    }
    // (an upper bound of spread(O): the entries' bound, no eigen-solve)
    let gaussian_reach = d.amplitude.abs() * crate::model::spectrum_spread_entry_bound(&d.op);
    match d.envelope {
        Envelope::Gaussian { .. } if gaussian_reach > MAX_GAUSSIAN_REACH => Err(invalid(
            &key(k, "amplitude"),
            format!(
                "|amplitude| x spread(operator) = {gaussian_reach:.4e} exceeds {MAX_GAUSSIAN_REACH:e}: the engines take a gaussian envelope as 0 where it is below exp(-80) = {:.2e}, which would leave out up to {:.2e} of the drive term; use a smaller amplitude",
                GAUSSIAN_CUT.exp(),
                gaussian_reach * GAUSSIAN_CUT.exp()
            ),
        )),
        Envelope::Gaussian { sigma, .. } if sigma < dt => Err(invalid(
            &key(k, "envelope.gaussian"),
            format!("sigma = {sigma:e} is below dt = {dt:e}: the pulse would fall between RK4 stage times; use a smaller dt or a wider pulse"),
        )),
        // (a window of any length is exact: its edges end segments, `job::Schedule::with_edges`)
        _ => Ok(()),
    }
}

/// The exponent below which the engines' arithmetic exp (`twin::drive::exp_arith` and the
/// kernels' `drive_exp`) gives 0: a gaussian envelope's tail past it is dropped.
const GAUSSIAN_CUT: f64 = -80.0;

/// The largest |amplitude| x spread(O) of a gaussian drive: the tail the cut drops, at most
/// this x exp(-80) = 1.8e-15, stays below the f64 rounding of an O(1) Hamiltonian.
const MAX_GAUSSIAN_REACH: f64 = 1e20;

/// The largest |frequency t + phase| a drive may reach (`twin::drive::cos_arith`'s range
/// reduction holds f64 accuracy up to here).
const MAX_DRIVE_ARGUMENT: f64 = 1e12;

/// RK4 stability of dt with the drives at their strongest: the spectral spread of H(t) is at
/// most spread(H) + sum_k max_t |amplitude_k env_k(t)| spread(O_k), added to the bound of the
/// undriven generator (and of the uncoupled one after `[protocol] switch_off`).
pub fn check_stability(
    systems: &[std::sync::Arc<crate::model::OpenSystem>],
    drives: &[Vec<Drive>],
    schedule: &crate::job::Schedule,
    switched: bool,
) -> Result<()> {
    let t_end = schedule.times.last().copied().unwrap_or(0.0);
    let dt = schedule.dt;
    for (sys, ds) in systems.iter().zip(drives) {
        if ds.is_empty() {
            continue;
        }
        for (k, d) in ds.iter().enumerate() {
            resolvable(k, d, dt, t_end)?;
        }
        let reach = |d: &Drive| d.amplitude.abs() * d.envelope.max_over(t_end);
        let uncoupled = switched.then(|| sys.uncoupled());
        let generators = || [Some(&**sys), uncoupled.as_ref()].into_iter().flatten();
        // The entries' bounds first (the drives' spreads and the generators', no eigen-solve):
        // max(B, B_uncoupled) + extra passes when each generator does with the drives' bound.
        let extra_bound: f64 = ds.iter().map(|d| reach(d) * crate::model::spectrum_spread_entry_bound(&d.op)).sum();
        // (the entries' test alone: a generator that fails it is eigen-solved once, below)
        if extra_bound.is_finite() && generators().all(|s| super::systems::entry_bound_passes(s, dt, extra_bound, false)) {
            continue;
        }
        let extra: f64 = ds.iter().map(|d| reach(d) * crate::model::spectrum_spread(&d.op)).sum();
        let bound = crate::model::largest_or_nan(generators().map(|s| s.generator_norm_bound())) + extra;
        if !bound.is_finite() || dt * bound > super::RK4_STABILITY {
            return Err(invalid(
                "time.dt",
                format!(
                    "dt = {} is beyond RK4 stability with the drives at their strongest: the generator's spectral radius is up to {bound:.4e} (drives: {extra:.4e}), so dt must be <= {:.4e}",
                    crate::error::shown(dt),
                    super::RK4_STABILITY / bound
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The phase mod 2 pi against the exact reduction (by 2 pi to 60 digits, rounded to f64):
    /// within 1e-15 up to 1e12; a phase within (-pi, pi) stays as given; beyond 1e12, refused.
    #[test]
    fn the_phase_is_reduced_by_the_exact_two_pi() {
        for (phase, exact) in
            [(1e7, 2.707543636322236), (-9.87e11, 1.8805799574752071), (1e12, -0.6576247591367864), (3.5, -2.7831853071795867), (7.0, 0.7168146928204135)]
        {
            let got = super::reduced_phase(phase, "phase").unwrap();
            assert!((got - exact).abs() < 1e-15, "{phase}: {got} vs {exact}");
        }
        for phase in [0.0, 0.3, -3.0, 3.14] {
            assert_eq!(super::reduced_phase(phase, "phase").unwrap(), phase);
        }
        assert!(super::reduced_phase(1.1e12, "drive[0].phase").unwrap_err().to_string().contains("drive[0].phase"));
    }
}
