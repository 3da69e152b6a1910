//! `plot_peaks_theta` and `plot_peak_times_theta`: a bloch-charger theta sweep's peak energy,
//! ergotropy, power and ergotropic power, and their times, against theta (paper 004 fig.
//! 3e/3f); members sorted by theta.

use super::super::summary::Summary;
use super::draw_on;
use super::{color, draw_axes, draw_curves, drawable, encode_png, ensure_font, legend_room, opened, s, write_pair, y_axis, Curve, DrawResult, XyCurve, SIZE};
use crate::error::{QbatError, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// At most `THETA_PLOT_POINTS` members, evenly spaced in theta order with the first and the
/// last, are drawn: a point (an SVG element) per member of a million-member run would take
/// hundreds of MB to draw and show nothing more.
pub fn theta_plot_data(sm: &Summary) -> Option<(Vec<f64>, Vec<Curve>, Vec<Curve>)> {
    let theta = sm.col("theta")?;
    let mut order: Vec<usize> = (0..theta.len()).filter(|&i| theta[i].is_finite()).collect();
    order.sort_by(|&a, &b| theta[a].total_cmp(&theta[b]));
    let order = evenly_spaced(order, THETA_PLOT_POINTS);
    let pick = |v: Vec<f64>| order.iter().map(|&i| v[i]).collect::<Vec<f64>>();
    let mut peaks = vec![];
    let mut times = vec![];
    for m in crate::job::PEAK_MEASURES {
        let n = m.name();
        peaks.push((format!("max {n}"), pick(sm.col(&format!("max_{n}"))?)));
        times.push((format!("t of max {n}"), pick(sm.col(&format!("t_max_{n}"))?)));
    }
    Some((pick(theta), peaks, times))
}

/// The theta plots' curves, (peaks, times of the peaks), as points (theta, value). A member
/// whose peak is not above 0 (theta = 0: nothing charges) has no peak time, and is not drawn
/// in the times (its t_max of 0 drew a steep ramp from theta = 0).
pub fn theta_curves(theta: &[f64], peaks: &[Curve], times: &[Curve]) -> (Vec<XyCurve>, Vec<XyCurve>) {
    let points = |v: &[f64], keep: &dyn Fn(usize) -> bool| (0..theta.len()).filter(|&i| keep(i)).map(|i| (theta[i], v[i])).collect::<Vec<_>>();
    let peak_curves = peaks.iter().map(|(l, v)| (l.clone(), points(v, &|_| true))).collect();
    let time_curves = times.iter().zip(peaks).map(|((l, v), (_, p))| (l.clone(), points(v, &|i| p[i] > 0.0))).collect();
    (peak_curves, time_curves)
}

/// The members drawn in the theta plots, at most.
pub const THETA_PLOT_POINTS: usize = 2000;

/// At most `most` of `items` (most >= 2), evenly spaced, the first and the last among them.
fn evenly_spaced(items: Vec<usize>, most: usize) -> Vec<usize> {
    if items.len() <= most {
        return items;
    }
    (0..most).map(|j| items[j * (items.len() - 1) / (most - 1)]).collect()
}

pub(super) fn write_theta_plots(dir: &Path, sm: &Summary) -> Result<Vec<PathBuf>> {
    let Some((theta, peaks, times)) = theta_plot_data(sm) else {
        return Ok(vec![]);
    };
    let members = sm.col("theta").map_or(0, |t| t.iter().filter(|t| t.is_finite()).count());
    let thinned = if members > theta.len() { format!(", {} of {members} members", theta.len()) } else { String::new() };
    let captions = [
        format!("peak values against the charger's polar angle (paper 004 fig. 3f{thinned})"),
        format!("times of the peaks against the charger's polar angle (paper 004 fig. 3e{thinned})"),
    ];
    let (peak_curves, time_curves) = theta_curves(&theta, &peaks, &times);
    let panels = [
        ("plot_peaks_theta", captions[0].as_str(), "peak (energy, ergotropy: wb; power: wb per unit time)", peak_curves),
        ("plot_peak_times_theta", captions[1].as_str(), "time of the peak (units of 1/wb, hbar = 1)", time_curves),
    ];
    // the panels drawn in parallel, listed in order
    let drawn: Vec<Vec<PathBuf>> = panels
        .into_par_iter()
        .map(|(stem, caption, ylabel, curves)| -> Result<Vec<PathBuf>> {
            let Some(y) = y_axis(stem, curves.iter().flat_map(|(_, v)| v.iter().map(|p| p.1))) else {
                if curves.iter().all(|(_, v)| v.is_empty()) {
                    eprintln!("note: {stem} not drawn: no member has a peak above 0 (none charged)");
                }
                return Ok(vec![]);
            };
            let Some((x0, x1)) = drawable(stem, opened(theta[0], theta[theta.len() - 1])) else {
                return Ok(vec![]);
            };
            let ylabel = format!("{ylabel}{}", y.note);
            render_both!(dir, stem, SIZE, |root: &DrawingArea<_, Shift>| -> DrawResult {
                let place = legend_room(&curves, 15, (x0, x1), &y, root);
                let mut builder = ChartBuilder::on(root);
                builder
                    .caption(caption, ("sans-serif", 20))
                    .margin(14)
                    .margin_right(14 + place.margin)
                    .x_label_area_size(48)
                    .y_label_area_size(y.label_area(15));
                with_chart!(builder, (x0, x1), &y, |chart| {
                    let theta_desc = "theta (rad): charger cos(theta/2)|g> + e^(i phi) sin(theta/2)|e>";
                    draw_axes(&mut chart, (theta_desc, (x0, x1)), (ylabel.as_str(), &y), 15, true)?;
                    for (i, (_, pts)) in curves.iter().enumerate() {
                        let c = color(i);
                        chart.draw_series(pts.iter().map(|&(x, v)| Circle::new((x, y.drawn(v)), 3, c.filled()))).map_err(s)?;
                    }
                    draw_curves(&mut chart, &curves, 15, Some((root, place)), &y)
                })
            })
        })
        .collect::<Result<_>>()?;
    Ok(drawn.into_iter().flatten().collect())
}
