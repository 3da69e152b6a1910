//! What an f32 GPU run can hold. The f32 kernels take the parameters, the drives, the step and
//! the sample times as f32: a magnitude above f32::MAX (3.4e38) becomes inf, and a non-zero
//! step or sample time below the smallest normal f32 (1.2e-38) becomes 0 (GPUs flush
//! subnormals; the config refuses such sample times on every backend, `config::time`). Either would integrate another run than the config's, and the health check
//! would then blame dt. The config accepts magnitudes up to 1e60 (the CPU engines are f64),
//! so an f32 GPU run is checked before any work, naming the field. (frequency * t stays in range:
//! the config bounds |frequency| * dt by 1 and the steps by 1e9.)

use crate::config::Plan;
use crate::error::{QbatError, Result};
use crate::linalg::CMat;
use crate::model::drive::Envelope;
use crate::model::ParamValue;

const F32_MAX: f64 = f32::MAX as f64;
const F32_MIN_NORMAL: f64 = f32::MIN_POSITIVE as f64;

/// A value the f32 kernels cannot hold (`x` finite: the config refuses the rest).
fn overflows(x: f64) -> bool {
    x.abs() > F32_MAX
}

/// A non-zero step or time the f32 kernels would take as 0.
fn flushes(x: f64) -> bool {
    x != 0.0 && x.abs() < F32_MIN_NORMAL
}

/// The largest |re| or |im| of any entry: what the kernels hold of a matrix.
fn largest_part(m: &CMat) -> f64 {
    m.iter().map(|z| z.re.abs().max(z.im.abs())).fold(0.0, f64::max)
}

fn refusal(field: String, x: f64, why: &str) -> QbatError {
    QbatError::invalid(field, format!("{x:e} {why} of the f32 GPU kernels; run with --precision f64 (where the adapter has it) or --backend cpu"))
}

/// The first value of `plan` an f32 GPU run cannot hold, as the refusal naming its field.
pub fn f32_refusal(plan: &Plan) -> Result<()> {
    let beyond = "is beyond the range (|x| <= 3.4e38)";
    // each distinct point once: the members share them
    for point in &plan.points {
        for (name, value) in point {
            let field = || format!("params.{name}");
            let worst = match value {
                ParamValue::Real(x) => x.abs(),
                ParamValue::Complex(z) => z.re.abs().max(z.im.abs()),
                ParamValue::Matrix(m) => largest_part(m),
                ParamValue::Jumps(js) => js.iter().map(|(m, rate)| largest_part(m).max(rate.abs())).fold(0.0, f64::max),
                ParamValue::Text(_) => 0.0,
            };
            if overflows(worst) {
                return Err(refusal(field(), worst, beyond));
            }
        }
    }
    // The two-qubit kernel's sample measures square the local Hamiltonians h = h0 I + h.sigma,
    // |h|^2 = ((h00 - h11)/2)^2 + |h01|^2, in the energy variances and the battery's energy
    // fluctuation (only where those are asked for: the others never leave the kernel): each
    // such |h| <= 1.8e19. (The cavity and dicke measures are the host's, in f64.)
    if plan.space == crate::model::Space::TwoQubit {
        use crate::measures::Measure::{EnergyFluctuationB, EnergyVarianceB, EnergyVarianceC};
        let squared = |ms: &[crate::measures::Measure]| ms.iter().any(|m| plan.measures.contains(m));
        let (battery, charger) = (squared(&[EnergyVarianceB, EnergyFluctuationB]), squared(&[EnergyVarianceC]));
        // named as the config set it: the matrix, or the frequency that sets it
        let [battery_param, charger_param] = plan.model.local_hamiltonian_params().unwrap_or(["h_battery", "h_charger"]);
        for system in &plan.systems {
            for (h, name, asked, param) in [(&system.h_battery, "h_battery", battery, battery_param), (&system.h_charger, "h_charger", charger, charger_param)]
            {
                let square = ((h[(0, 0)].re - h[(1, 1)].re) / 2.0).powi(2) + h[(0, 1)].norm_sqr();
                if asked && overflows(square) {
                    let field = format!("params.{param}");
                    let why = format!(
                        "gives {name} |h| = {:.1e} (h = h0 I + h.sigma), whose square (in the energy variance) is beyond the f32 GPU kernels' range (|h| <= 1.8e19); run with --precision f64 (where the adapter has it) or --backend cpu",
                        square.sqrt()
                    );
                    return Err(QbatError::invalid(field, why));
                }
            }
        }
    }
    for drives in &plan.drives {
        for (k, d) in drives.iter().enumerate() {
            let envelope = match d.envelope {
                Envelope::Constant => vec![],
                Envelope::Gaussian { t0, sigma } => vec![("envelope", t0), ("envelope", sigma)],
                Envelope::Window { t_on, t_off } => vec![("envelope", t_on), ("envelope", t_off)],
            };
            let operator = largest_part(&d.op);
            let numbers = [("amplitude", d.amplitude), ("frequency", d.frequency), ("phase", d.phase), ("operator", operator)].into_iter().chain(envelope);
            for (what, x) in numbers {
                if overflows(x) {
                    return Err(refusal(format!("drive[{k}].{what}"), x, beyond));
                }
            }
        }
    }
    let s = &plan.schedule;
    if overflows(s.dt) || flushes(s.dt) {
        return Err(refusal("time.dt".into(), s.dt, "is beyond the range (1.2e-38 <= dt <= 3.4e38)"));
    }
    if let Some(&t) = s.times.iter().find(|&&t| overflows(t) || flushes(t)) {
        return Err(refusal("time.times".into(), t, "is beyond the range (0, or 1.2e-38 <= t <= 3.4e38)"));
    }
    // A gap of the grid (between samples, the switch-off or a window edge) just past a whole
    // number of steps ends in a shortened step of as little as 1e-9 dt: with dt below about
    // 1e-29 it flushes to 0, and the kernel takes a step fewer than the host counts.
    if let Some(h) = s.segments.iter().map(|g| g.h_last).find(|&h| flushes(h)) {
        return Err(refusal("time.dt".into(), h, "is the shortened step that ends a gap of the grid here, below the smallest normal number (1.2e-38)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_plan, Overrides};

    fn plan(text: &str) -> Plan {
        parse_plan(text, &Overrides::default()).unwrap()
    }

    /// Each kind of number the kernels take, just inside and just outside f32.
    #[test]
    fn values_beyond_f32_are_named_and_those_inside_pass() {
        let base = "model = \"spin-pair\"\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 3\n";
        assert!(f32_refusal(&plan(base)).is_ok());
        // (dt alone below f32's range: the config refuses positive sample times below it)
        let params = |p: &str| format!("model = \"spin-pair\"\n[params]\n{p}\n[time]\ndt = 1e-40\nt_end = 1e-36\nsamples = 3\n");
        let cases = [
            (params("wb = 1e39"), "params.wb"),
            (params("wb = -4e38"), "params.wb"),
            (params("wb = 1e18"), "time.dt"),
            // |h_B| = wb past 1.8e19: its square (the energy variance) is not, in f32; named
            // as the frequency that sets it, not the point's largest number
            (params("wb = 4e19\nj1 = 5e19"), "params.wb"),
            ("model = \"bloch-charger\"\n[params]\nwb = 3.8e19\nj = 1.0\n[time]\ndt = 1e-23\nt_end = 1e-21\nsamples = 3\n".into(), "params.wb"),
            (params("wc = 4e19\n[output]\nmeasures = [\"energy_variance_c\"]"), "params.wc"),
            // a time past f32's range that a step inside it reaches (a generator of zero)
            ("model = \"spin-pair\"\n[params]\nwb = 0.0\nwc = 0.0\nj1 = 0.0\nj2 = 0.0\n[time]\ndt = 1e30\ntimes = [3.5e38]\n".into(), "time.times"),
            // a gap of 1.000000005 dt: a shortened step of 5e-40
            ("model = \"spin-pair\"\n[time]\ndt = 1e-31\ntimes = [0.0, 1.000000005e-31, 1e-29]\n".into(), "time.dt"),
            (
                "model = \"bloch-charger\"\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 3\n[[drive]]\noperator = \"sx_b\"\namplitude = 0.5\nfrequency = 1.0\nenvelope = { gaussian = [-1e39, 1e39] }\n".into(),
                "drive[0].envelope",
            ),
        ];
        for (text, field) in cases {
            let Err(e) = f32_refusal(&plan(&text)) else { panic!("{field}: accepted:\n{text}") };
            let QbatError::Invalid { field: named, .. } = &e else { panic!("{e}") };
            assert_eq!(named, field, "{e}");
            assert!(e.to_string().contains("--precision f64"), "{e}");
        }
        // a large |h| whose square no measure asked for takes (the variances and the
        // fluctuation not among them; H_C's variance is never a default)
        let unsquared = "model = \"spin-pair\"\n[params]\nwb = 2e19\nwc = 4e19\nj1 = 5e19\n[time]\ndt = 1e-22\nt_end = 1e-21\nsamples = 3\n";
        f32_refusal(&plan(&format!("{unsquared}[output]\nmeasures = [\"energy_b\", \"ergotropy_b\", \"capacity_b\"]\n"))).unwrap();
        let e = f32_refusal(&plan(unsquared)).unwrap_err();
        assert!(matches!(&e, QbatError::Invalid { field, .. } if field == "params.wb"), "the default measures square H_B alone: {e}");
        // 1e37 (a coupling: H_B stays small) and 2e-38 fit, and a time of 0 is kept as 0
        let fits = base.replace("[time]", "[params]\nj1 = 1e37\n[time]").replace("dt = 0.01\nt_end = 1.0\nsamples = 3", "dt = 2e-38\ntimes = [0.0, 1e-36]");
        f32_refusal(&plan(&fits)).unwrap();
    }
}
