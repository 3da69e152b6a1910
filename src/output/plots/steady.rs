//! `plot_steady_<measure>`: a steady-state run over a grid of two swept parameters, the
//! measure at t = inf as a heat map over the grid (paper 002 fig. 2b).

use super::super::series::SeriesReader;
use super::super::summary::Summary;
use super::{draw_axes, drawable, ensure_font, heat, label_area, s, tick_text, units, DrawResult, Heatmap, YAxis, SIZE};
use super::{draw_on, encode_png, write_pair};
use crate::error::{QbatError, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// A swept parameter's axis label: its name, with the model's energy unit where it is a
/// frequency or a rate (every parameter but the dimensionless ones: occupations, angles,
/// ratios, counts, the coherent amplitude).
fn param_axis(name: &str, energy: &str) -> String {
    match name {
        "n_th" | "theta" | "phi" | "zeta" | "n_fock" | "n_cells" | "alpha" | "alpha_re" | "alpha_im" | "photons" | "dephasing" | "dicke_m" => {
            format!("{name} (dimensionless)")
        }
        _ => format!("{name} ({energy})"),
    }
}

/// Heatmap data of a steady-state grid: (x name, y name, x values, y values, cell values per member).
pub fn steady_heatmap_data(dir: &Path, sm: &Summary, measure: &str) -> Result<Option<Heatmap>> {
    let params: Vec<String> = sm.param_columns().into_iter().filter(|c| sm.col(c).is_some_and(|v| v.iter().any(|x| *x != v[0]))).collect();
    if params.len() != 2 {
        return Ok(None);
    }
    let Some(mut rd) = SeriesReader::open(dir)? else {
        return Ok(None);
    };
    let Some(k) = rd.measure_index(measure) else {
        return Ok(None);
    };
    let mut vals = vec![];
    let mut block = vec![];
    while rd.next_member(&mut block)?.is_some() {
        vals.push(block[k]); // the single sample time
    }
    let (xs, ys) = (sm.col(&params[0]).expect("present"), sm.col(&params[1]).expect("present"));
    if vals.len() != xs.len() {
        return Err(QbatError::invalid("summary.csv", format!("{} rows, the series has {} members", xs.len(), vals.len())));
    }
    Ok(Some((params[0].clone(), params[1].clone(), xs, ys, vals)))
}

/// Cell edges around sorted distinct centres: midpoints, the ends mirrored.
fn edges(centres: &[f64]) -> Vec<f64> {
    let n = centres.len();
    if n == 1 {
        return vec![centres[0] - 0.5, centres[0] + 0.5];
    }
    let mut e = vec![centres[0] - (centres[1] - centres[0]) / 2.0];
    e.extend(centres.windows(2).map(|w| (w[0] + w[1]) / 2.0));
    e.push(centres[n - 1] + (centres[n - 1] - centres[n - 2]) / 2.0);
    e
}

pub(super) fn write_steady_heatmap(dir: &Path, sm: &Summary, measure: &str, model: &str) -> Result<Vec<PathBuf>> {
    let Some((xn, yn, xs, ys, vals)) = steady_heatmap_data(dir, sm, measure)? else {
        return Ok(vec![]);
    };
    let distinct = |v: &[f64]| {
        let mut d: Vec<f64> = v.to_vec();
        d.sort_by(f64::total_cmp);
        d.dedup();
        d
    };
    let (dx, dy) = (distinct(&xs), distinct(&ys));
    let (ex, ey) = (edges(&dx), edges(&dy));
    let stem = format!("plot_steady_{measure}");
    let Some(xr) = drawable(&stem, (ex[0], ex[ex.len() - 1])) else {
        return Ok(vec![]);
    };
    let Some(yr) = drawable(&stem, (ey[0], ey[ey.len() - 1])) else {
        return Ok(vec![]);
    };
    let (lo, hi) = vals.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    let span = (hi - lo).max(1e-300);
    let (_, eunit) = units(model);
    render_both!(dir, &stem, SIZE, |root: &DrawingArea<_, Shift>| -> DrawResult {
        let mut chart = ChartBuilder::on(root)
            .caption(format!("steady-state {measure} ({eunit}): {} (pale) to {} (dark)", tick_text(lo, (lo, hi)), tick_text(hi, (lo, hi))), ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(label_area(yr, 15))
            .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
            .map_err(s)?;
        let (xd, yd) = (param_axis(&xn, eunit), param_axis(&yn, eunit));
        draw_axes(&mut chart, (xd.as_str(), xr), (yd.as_str(), &YAxis::plain(yr)), 15, false)?;
        chart
            .draw_series(xs.iter().zip(&ys).zip(&vals).map(|((x, y), v)| {
                let i = dx.partition_point(|d| d < x);
                let j = dy.partition_point(|d| d < y);
                Rectangle::new([(ex[i], ey[j]), (ex[i + 1], ey[j + 1])], heat((v - lo) / span).filled())
            }))
            .map_err(s)?;
        Ok(())
    })
}
