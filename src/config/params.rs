//! `[params]`: each parameter fixed, swept on a grid axis (`values`, `linspace`) or drawn per
//! member (`uniform`), checked against the model's parameter list; `--auto-fock` picks n_fock.

use super::values::{as_array, as_complex, as_f64, as_matrix, as_sweep, check_keys, invalid, section};
use super::Overrides;
use crate::ensemble::sweep::Sweep;
use crate::error::{QbatError, Result};
use crate::linalg::C64;
use crate::model::{cavity_cells, ModelKind, ParamValue, Params};
use toml::{Table, Value};

/// The parameters of a config: the base point, the grid axes and the per-member draws.
pub struct ParamSection {
    pub base: Params,
    /// (name, values) of each grid axis, in the config's (sorted) key order: real values, or
    /// complex ones for a complex parameter swept as `values = [[re, im], ...]`.
    pub axes: Vec<(String, Vec<ParamValue>)>,
    /// (name, lo, hi) of each parameter drawn uniformly per member.
    pub drawn: Vec<(String, f64, f64)>,
}

/// Read `[params]` for `model`.
pub fn parse_params(root: &Table, model: ModelKind, model_name: &str, ov: &Overrides) -> Result<ParamSection> {
    let empty = Table::new();
    let params_t = section(root, "params")?.unwrap_or(&empty);
    let specs = model.params();
    let mut sec = ParamSection { base: Params::new(), axes: vec![], drawn: vec![] };
    for (k, v) in params_t {
        let field = format!("params.{k}");
        if !specs.iter().any(|s| s.name == k) {
            let names: Vec<_> = specs.iter().map(|s| s.name).collect();
            return Err(invalid(&field, format!("unknown parameter for model '{model_name}'; known: {}", names.join(", "))));
        }
        let value = param_value(model, k, v, &field, &mut sec)?;
        sec.base.insert(k.clone(), value);
    }
    for name in ["n_fock", "n_cells"] {
        if sec.axes.iter().any(|(k, _)| k == name) || sec.drawn.iter().any(|(k, _, _)| k == name) {
            return Err(invalid(&format!("params.{name}"), format!("all members share one {name}: it cannot be swept")));
        }
    }
    if ov.auto_fock {
        let n = match model {
            ModelKind::CavityCells => {
                let amax = sec.largest("alpha", 2.0);
                auto_n_fock(amax).ok_or_else(|| fock_too_large(amax))?
            }
            ModelKind::Dicke => sec.dicke_auto_n_fock()?,
            _ => return Err(invalid("--auto-fock", format!("applies to cavity-cells and dicke only, not '{model_name}'"))),
        };
        if let Some(ParamValue::Real(given)) = sec.base.get("n_fock") {
            eprintln!("note: --auto-fock sets n_fock = {n}, overriding params.n_fock = {given}");
        }
        sec.base.insert("n_fock".into(), ParamValue::Real(n as f64));
    }
    Ok(sec)
}

/// One parameter's value; a sweep also records its axis or draw in `sec`.
fn param_value(model: ModelKind, k: &str, v: &Value, field: &str, sec: &mut ParamSection) -> Result<ParamValue> {
    Ok(match (model, k) {
        (ModelKind::TwoQubit, "hamiltonian" | "h_battery" | "h_charger") => ParamValue::Matrix(as_matrix(v, field)?),
        (ModelKind::TwoQubit, "jumps") => {
            let mut list = vec![];
            for (i, j) in as_array(v, field)?.iter().enumerate() {
                let f = format!("{field}[{i}]");
                let t = j.as_table().ok_or_else(|| invalid(&f, "must be a table { op = matrix, rate = r }"))?;
                check_keys(t, &["op", "rate"], &f)?;
                let op = as_matrix(t.get("op").ok_or_else(|| invalid(&format!("{f}.op"), "missing"))?, &format!("{f}.op"))?;
                let rate = as_f64(t.get("rate").ok_or_else(|| invalid(&format!("{f}.rate"), "missing"))?, &format!("{f}.rate"))?;
                list.push((op, rate));
            }
            ParamValue::Jumps(list)
        }
        (ModelKind::DrivenPair, "reservoir") => ParamValue::Text(v.as_str().ok_or_else(|| invalid(field, "must be \"boson\" or \"fermion\""))?.to_string()),
        (ModelKind::Dicke, "coupling") => ParamValue::Text(v.as_str().ok_or_else(|| invalid(field, "must be \"dicke\" or \"tavis-cummings\""))?.to_string()),
        (ModelKind::CavityCells | ModelKind::Dicke, "alpha") if v.is_array() => ParamValue::Complex(as_complex(v, field)?),
        (ModelKind::CavityCells | ModelKind::Dicke, "alpha") if complex_values(v).is_some() => {
            let arr = complex_values(v).expect("checked by the guard");
            let f = format!("{field}.values");
            let vals: Vec<ParamValue> =
                arr.iter().enumerate().map(|(i, z)| as_complex(z, &format!("{f}[{i}]")).map(ParamValue::Complex)).collect::<Result<_>>()?;
            sec.axes.push((k.to_string(), vals.clone()));
            vals[0].clone()
        }
        _ => match as_sweep(v, field)? {
            Sweep::Fixed(x) => ParamValue::Real(x),
            Sweep::Values(vals) => {
                sec.axes.push((k.to_string(), vals.iter().map(|x| ParamValue::Real(*x)).collect()));
                ParamValue::Real(vals[0])
            }
            Sweep::Uniform(lo, hi) => {
                sec.drawn.push((k.to_string(), lo, hi));
                ParamValue::Real(lo)
            }
        },
    })
}

/// A complex sweep `{ values = [...] }` with at least one `[re, im]` entry: its entries. A list of plain numbers stays a real sweep (the same columns as before).
fn complex_values(v: &Value) -> Option<&Vec<Value>> {
    let t = v.as_table()?;
    let arr = t.get("values")?.as_array()?;
    (t.len() == 1 && arr.iter().any(|z| z.is_array())).then_some(arr)
}

impl ParamSection {
    /// The summary columns of the swept and drawn parameters: a complex axis gives two,
    /// `<name>_re` and `<name>_im`, in the order of `expand_members`' values.
    pub fn columns(&self) -> Vec<String> {
        let mut cols = vec![];
        for (k, vals) in &self.axes {
            if matches!(vals[0], ParamValue::Complex(_)) {
                cols.push(format!("{k}_re"));
                cols.push(format!("{k}_im"));
            } else {
                cols.push(k.clone());
            }
        }
        cols.extend(self.drawn.iter().map(|(k, _, _)| k.clone()));
        cols
    }

    /// The largest |value| of parameter `name` any member can take (`default` when it is not
    /// given), e.g. the largest |alpha| any member can start from.
    fn largest(&self, name: &str, default: f64) -> f64 {
        let mut amax = match self.base.get(name) {
            Some(ParamValue::Complex(z)) => z.norm(),
            Some(ParamValue::Real(x)) => x.abs(),
            _ => default,
        };
        for (k, vals) in &self.axes {
            if k == name {
                amax = vals.iter().fold(amax, |m, v| match v {
                    ParamValue::Real(x) => m.max(x.abs()),
                    ParamValue::Complex(z) => m.max(z.norm()),
                    _ => m,
                });
            }
        }
        for (k, lo, hi) in &self.drawn {
            if k == name {
                amax = amax.max(lo.abs()).max(hi.abs());
            }
        }
        amax
    }

    /// `--auto-fock` for dicke: the excitations a^+a + J_z + N/2 are conserved by the
    /// Tavis-Cummings coupling, so the photon number never exceeds the cavity's start plus N:
    /// n_fock = photons + N + 2 for a Fock start (photons defaults to N), and the coherent
    /// cutoff above (with its 2 levels of margin) + N for |alpha>. The Dicke coupling's
    /// counter-rotating terms are not bounded by this; fock_tail reports what is lost.
    fn dicke_auto_n_fock(&self) -> Result<usize> {
        // (refused as the run without --auto-fock refuses it: a number of cells beyond the
        // limit was taken as the limit, and the refusal then named the photons)
        let n = match self.base.get("n_cells") {
            Some(_) => crate::model::dicke::n_cells(&self.base)?,
            None => 4,
        };
        Ok(if self.base.contains_key("alpha") {
            let amax = self.largest("alpha", 0.0);
            auto_n_fock(amax).ok_or_else(|| fock_too_large(amax))? + n
        } else {
            // photons + N + 2, checked: a start beyond any supported cutoff (photons = 1e100, a
            // value that would saturate the cast and wrap the sum) is refused with its own value
            let pmax = self.largest("photons", n as f64);
            // the largest cutoff of N cells: (N + 1)(n_fock + 1) <= MAX_DIM
            let limit = (crate::model::dicke::MAX_DIM / (n + 1)).saturating_sub(1);
            let refuse = || {
                let shown = if pmax < 1e15 { format!("{pmax}") } else { format!("{pmax:e}") };
                QbatError::TooLarge {
                    field: "params.photons".into(),
                    reason: format!(
                        "--auto-fock sets n_fock = photons + n_cells + 2 = {shown} + {n} + 2, beyond the largest n_fock of {n} cells, {limit} ((n_cells + 1)(n_fock + 1) <= {})",
                        crate::model::dicke::MAX_DIM
                    ),
                }
            };
            if pmax.is_nan() || pmax + (n + 2) as f64 > limit as f64 {
                return Err(refuse());
            }
            pmax as usize + n + 2
        })
    }
}

/// The refusal of a coherent state that no supported cutoff truncates well.
fn fock_too_large(amax: f64) -> crate::error::QbatError {
    invalid(
        "--auto-fock",
        format!("|alpha| = {} needs a cutoff beyond the largest supported, n_fock = {}, for a Fock tail below {AUTO_FOCK_TAIL:e}: such a state cannot be truncated well; use a smaller alpha", crate::error::shown(amax), cavity_cells::MAX_N_FOCK),
    )
}

/// `--auto-fock`: the initial coherent state's tail beyond the cutoff must be below
/// AUTO_FOCK_TAIL = 1e-10 times a safety margin of 1e-2, and the cutoff gets 2 more levels
/// because the two cells can hand their two excitations to the mode.
pub const AUTO_FOCK_TAIL: f64 = 1e-12;

/// Smallest n_fock for which P(n >= N) of the Poisson distribution of |alpha|^2 is below
/// AUTO_FOCK_TAIL, plus 2.
/// None when no supported cutoff (n_fock <= MAX_N_FOCK) is large enough.
pub fn auto_n_fock(alpha_abs_max: f64) -> Option<usize> {
    let a = C64::new(alpha_abs_max, 0.0);
    let mut n = 1;
    while cavity_cells::coherent_tail(a, n) >= AUTO_FOCK_TAIL {
        if n + 2 >= cavity_cells::MAX_N_FOCK {
            return None;
        }
        n += 1;
    }
    Some(n + 2)
}
