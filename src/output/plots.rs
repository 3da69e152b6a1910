//! Plots (SVG, plotters): the ensemble mean of each measure over time with its 5-95% band.

use super::stats::Stats;
use super::OutputDir;
use crate::error::{QbatError, Result};
use plotters::prelude::*;

/// Render the mean and 5-95% band of `measure` into an SVG string.
pub fn band_svg(st: &Stats, measure: usize) -> std::result::Result<String, String> {
    let name = st.measures[measure];
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let ns = st.times.len();
        let col = |f: &dyn Fn(&super::stats::Stat) -> f64| -> Vec<f64> { (0..ns).map(|s| f(st.get(s, measure))).collect() };
        let (mean, lo, hi) = (col(&|s| s.mean), col(&|s| s.q05), col(&|s| s.q95));
        let t0 = st.times[0];
        let t1 = st.times[ns - 1].max(t0 + 1e-12);
        let ymin = lo.iter().cloned().fold(f64::INFINITY, f64::min);
        let ymax = hi.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let pad = ((ymax - ymin) * 0.05).max(1e-9);
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{name}: ensemble mean and 5-95% band"), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(t0..t1, (ymin - pad)..(ymax + pad))
            .map_err(|e| e.to_string())?;
        chart.configure_mesh().x_desc("t (1/energy unit, hbar = 1)").y_desc(name).draw().map_err(|e| e.to_string())?;
        let band: Vec<(f64, f64)> = st.times.iter().zip(&hi).map(|(t, v)| (*t, *v)).chain(st.times.iter().zip(&lo).rev().map(|(t, v)| (*t, *v))).collect();
        chart
            .draw_series(std::iter::once(Polygon::new(band, BLUE.mix(0.2))))
            .map_err(|e| e.to_string())?
            .label("5-95% band")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], BLUE.mix(0.2).filled()));
        chart
            .draw_series(LineSeries::new(st.times.iter().zip(&mean).map(|(t, v)| (*t, *v)), BLUE.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label("mean")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE.stroke_width(2)));
        chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw().map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

pub fn write_plots(out: &OutputDir, st: &Stats) -> Result<()> {
    if st.times.len() < 2 {
        return Ok(());
    }
    for (k, m) in st.measures.iter().enumerate() {
        let svg = band_svg(st, k).map_err(|e| QbatError::Numerics(format!("plot of {m}: {e}")))?;
        out.write(&format!("plot_{m}.svg"), |w| w.write_all(svg.as_bytes()))?;
    }
    Ok(())
}

/// Log-log throughput curve per backend (bench --scaling).
pub fn scaling_svg(points: &[crate::bench::ScalingPoint], curve: &str, x_label: &str) -> std::result::Result<String, String> {
    let pts: Vec<_> = points.iter().filter(|p| p.curve == curve && p.member_steps_per_s > 0.0).collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        if pts.is_empty() {
            return Err(format!("no points for the {curve} curve"));
        }
        let (x0, x1) = pts.iter().fold((f64::INFINITY, 0.0f64), |(a, b), p| (a.min(p.x), b.max(p.x)));
        let (y0, y1) = pts.iter().fold((f64::INFINITY, 0.0f64), |(a, b), p| (a.min(p.member_steps_per_s), b.max(p.member_steps_per_s)));
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("throughput against {x_label}"), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d((x0 * 0.8..x1 * 1.25).log_scale(), (y0 * 0.5..y1 * 2.0).log_scale())
            .map_err(|e| e.to_string())?;
        chart.configure_mesh().x_desc(x_label).y_desc("RK4 member-steps per second").draw().map_err(|e| e.to_string())?;
        let mut backends: Vec<&str> = pts.iter().map(|p| p.backend.as_str()).collect();
        backends.dedup();
        backends.sort();
        backends.dedup();
        for (i, b) in backends.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let series: Vec<(f64, f64)> = pts.iter().filter(|p| p.backend == *b).map(|p| (p.x, p.member_steps_per_s)).collect();
            chart
                .draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(b.to_string())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
            chart.draw_series(series.iter().map(|&(x, y)| Circle::new((x, y), 3, color.filled()))).map_err(|e| e.to_string())?;
        }
        chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw().map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}
