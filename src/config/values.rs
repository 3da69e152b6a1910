//! Typed reads of TOML values, each error naming its field: numbers (finite, bounded),
//! complex numbers `[re, im]`, square matrices, kets, sweeps, and the keys a table may have.

use crate::ensemble::sweep::Sweep;
use crate::error::{QbatError, Result};
use crate::linalg::{c, CMat, C64};
use toml::{Table, Value};

pub fn invalid(field: &str, reason: impl Into<String>) -> QbatError {
    QbatError::invalid(field, reason)
}

pub fn as_f64(v: &Value, field: &str) -> Result<f64> {
    let x = match v {
        Value::Float(x) => *x,
        Value::Integer(i) => *i as f64,
        _ => return Err(invalid(field, format!("must be a number, got {}", v.type_str()))),
    };
    if !x.is_finite() {
        return Err(invalid(field, format!("must be finite, got {x}")));
    }
    if x.abs() > MAX_MAGNITUDE {
        return Err(invalid(field, format!("{x:e} is too large in magnitude (limit {MAX_MAGNITUDE:e})")));
    }
    Ok(x)
}

/// Largest magnitude of any number in a config: far beyond any physical parameter, and low
/// enough that the statistics stay finite. A measure may go as a parameter's square (the
/// energy variance, about 1e121 at most here) or as one over the smallest sample time
/// (1.2e-38: a power, about 1e98), and `stats.csv`'s exact sums add its square over up to
/// 1e9 members: about 1e251, inside f64 (at 1e100, the variance's square overflowed and its
/// std was lost).
pub const MAX_MAGNITUDE: f64 = 1e60;

/// A complex number: `x` or `[re, im]`.
pub fn as_complex(v: &Value, field: &str) -> Result<C64> {
    match v {
        Value::Array(a) if a.len() == 2 => Ok(c(as_f64(&a[0], field)?, as_f64(&a[1], field)?)),
        Value::Array(a) => Err(invalid(field, format!("a complex number is [re, im], got an array of {}", a.len()))),
        _ => Ok(c(as_f64(v, field)?, 0.0)),
    }
}

pub fn as_array<'a>(v: &'a Value, field: &str) -> Result<&'a Vec<Value>> {
    v.as_array().ok_or_else(|| invalid(field, format!("must be an array, got {}", v.type_str())))
}

/// A square complex matrix: rows of complex entries.
pub fn as_matrix(v: &Value, field: &str) -> Result<CMat> {
    let rows = as_array(v, field)?;
    let n = rows.len();
    if n == 0 {
        return Err(invalid(field, "must be a non-empty matrix"));
    }
    let mut m = CMat::zeros(n, n);
    for (i, row) in rows.iter().enumerate() {
        let row = as_array(row, &format!("{field}[{i}]"))?;
        if row.len() != n {
            return Err(invalid(&format!("{field}[{i}]"), format!("the matrix must be square: row has {} entries, expected {n}", row.len())));
        }
        for (j, z) in row.iter().enumerate() {
            m[(i, j)] = as_complex(z, &format!("{field}[{i}][{j}]"))?;
        }
    }
    Ok(m)
}

pub fn as_ket(v: &Value, field: &str) -> Result<Vec<C64>> {
    as_array(v, field)?.iter().enumerate().map(|(i, z)| as_complex(z, &format!("{field}[{i}]"))).collect()
}

/// A numeric sweep: scalar, { linspace }, { values } or { uniform }.
pub fn as_sweep(v: &Value, field: &str) -> Result<Sweep> {
    match v {
        Value::Table(t) => {
            if t.len() != 1 {
                return Err(invalid(field, "a sweep table has exactly one of linspace, values, uniform"));
            }
            let (k, val) = t.iter().next().unwrap();
            let f = format!("{field}.{k}");
            let arr = as_array(val, &f)?;
            match k.as_str() {
                "linspace" => {
                    if arr.len() != 3 {
                        return Err(invalid(&f, "must be [lo, hi, n]"));
                    }
                    Sweep::linspace(&f, as_f64(&arr[0], &f)?, as_f64(&arr[1], &f)?, as_f64(&arr[2], &f)?)
                }
                "values" => {
                    if arr.is_empty() {
                        return Err(invalid(&f, "must not be empty"));
                    }
                    Ok(Sweep::Values(arr.iter().map(|x| as_f64(x, &f)).collect::<Result<_>>()?))
                }
                "uniform" => {
                    if arr.len() != 2 {
                        return Err(invalid(&f, "must be [lo, hi]"));
                    }
                    let (lo, hi) = (as_f64(&arr[0], &f)?, as_f64(&arr[1], &f)?);
                    if lo > hi {
                        return Err(invalid(&f, format!("lo must be <= hi, got [{lo}, {hi}]")));
                    }
                    Ok(Sweep::Uniform(lo, hi))
                }
                other => Err(invalid(field, format!("unknown sweep '{other}'; use linspace, values or uniform"))),
            }
        }
        _ => Ok(Sweep::Fixed(as_f64(v, field)?)),
    }
}

pub const TOP_KEYS: [&str; 8] = ["model", "params", "initial", "time", "ensemble", "output", "protocol", "drive"];

pub fn check_keys(t: &Table, allowed: &[&str], section: &str) -> Result<()> {
    for k in t.keys() {
        if !allowed.contains(&k.as_str()) {
            let field = if section.is_empty() { k.clone() } else { format!("{section}.{k}") };
            return Err(invalid(&field, format!("unknown key; allowed here: {}", allowed.join(", "))));
        }
    }
    Ok(())
}

pub fn section<'a>(root: &'a Table, name: &str) -> Result<Option<&'a Table>> {
    match root.get(name) {
        None => Ok(None),
        Some(Value::Table(t)) => Ok(Some(t)),
        Some(v) => Err(invalid(name, format!("must be a table [{name}], got {}", v.type_str()))),
    }
}
