//! Parameter sweeps: a scalar, `linspace = [lo, hi, n]`, `values = [...]` (grid axes) and
//! `uniform = [lo, hi]` (drawn per member). Grid axes combine as a cartesian product (the
//! first axis varies slowest) or, with `mode = "zip"`, element by element.

use crate::error::{QbatError, Result};

/// Most points of one linspace axis.
pub const MAX_LINSPACE: f64 = 1e7;

#[derive(Clone, Debug, PartialEq)]
pub enum Sweep {
    Fixed(f64),
    Values(Vec<f64>),
    Uniform(f64, f64),
}

impl Sweep {
    pub fn linspace(field: &str, lo: f64, hi: f64, n: f64) -> Result<Sweep> {
        if !(lo.is_finite() && hi.is_finite()) {
            return Err(QbatError::invalid(field, "linspace bounds must be finite"));
        }
        // Each grid point builds its own operators (tens of KiB): beyond 1e7 points no run fits
        // in memory, and refusing here avoids allocating the axis first.
        if n.fract() != 0.0 || !(1.0..=MAX_LINSPACE).contains(&n) {
            return Err(QbatError::invalid(field, format!("linspace count must be an integer in [1, {MAX_LINSPACE:e}], got {}", crate::error::shown(n))));
        }
        let n = n as usize;
        let v = if n == 1 { vec![lo] } else { (0..n).map(|k| lo + (hi - lo) * k as f64 / (n - 1) as f64).collect() };
        Ok(Sweep::Values(v))
    }
    pub fn is_axis(&self) -> bool {
        matches!(self, Sweep::Values(_))
    }
    pub fn len(&self) -> usize {
        match self {
            Sweep::Values(v) => v.len(),
            _ => 1,
        }
    }
}

/// `3, 4, 5`.
fn lengths(axes: &[usize]) -> String {
    axes.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
}

/// Number of grid points of the axes; more than 1e8 is refused naming `longest`, the longest
/// axis as the config spells it (`params.j`, `drive[0].amplitude`, `initial.theta`).
pub fn grid_size(axes: &[usize], zip: bool, longest: &str) -> Result<usize> {
    if axes.is_empty() {
        return Ok(1);
    }
    if zip {
        let n = axes[0];
        if axes.iter().any(|&a| a != n) {
            return Err(QbatError::invalid("ensemble.mode", format!("zip needs sweeps of equal length, got lengths {}", lengths(axes))));
        }
        Ok(n)
    } else {
        axes.iter().try_fold(1usize, |acc, &a| acc.checked_mul(a)).filter(|&n| n <= 100_000_000).ok_or_else(|| QbatError::TooLarge {
            field: longest.into(),
            reason: format!("the sweep grid {} has more than 1e8 points", axes.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" x ")),
        })
    }
}

/// Index into each axis of grid point `k` (first axis slowest).
pub fn grid_index(axes: &[usize], zip: bool, k: usize) -> Vec<usize> {
    if zip {
        return vec![k; axes.len()];
    }
    let mut idx = vec![0; axes.len()];
    let mut rem = k;
    for (a, &len) in axes.iter().enumerate().rev() {
        idx[a] = rem % len;
        rem /= len;
    }
    idx
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn cartesian_and_zip() {
        let axes = [2, 3];
        assert_eq!(grid_size(&axes, false, "params.j").unwrap(), 6);
        assert_eq!(grid_index(&axes, false, 0), vec![0, 0]);
        assert_eq!(grid_index(&axes, false, 4), vec![1, 1]);
        assert!(grid_size(&axes, true, "params.j").is_err());
        assert_eq!(grid_index(&[3, 3], true, 2), vec![2, 2]);
        match Sweep::linspace("x", 0.5, 1.5, 11.0).unwrap() {
            Sweep::Values(v) => {
                assert_eq!(v.len(), 11);
                assert!((v[10] - 1.5).abs() < 1e-15 && (v[5] - 1.0).abs() < 1e-15);
            }
            _ => unreachable!(),
        }
    }
}
