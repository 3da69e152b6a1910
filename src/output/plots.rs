//! Plots of a finished run, read from its output directory (stats.csv, summary.csv, run.json,
//! the series), each written as PNG and SVG under a temporary name and renamed into place.
//! Every file name starts with `plot_`.
//!
//! - `plot_<measure>`: ensemble mean over time with the 5-95% band (stats.csv);
//! - `plot_series`: runs of at most 4 members, every measure against time (the series);
//! - `plot_hist2d_<a>_<b>`: 2-D histogram of a against b over every healthy member and time
//!   (series);
//! - `plot_peaks_theta`, `plot_peak_times_theta`: bloch-charger theta sweeps, the peak
//!   energy, ergotropy, power and ergotropic power and their times (paper 004 fig. 3e/3f);
//! - `plot_cavity_lambda_t`: cavity-cells, stored_energy_b and concurrence against lambda t,
//!   one curve per member (paper 003 fig. 2a);
//! - `plot_steady_energy_b`: a 2-D parameter grid sampled only at t = inf, energy_b over the
//!   two swept parameters (paper 002 fig. 2b).
//!
//! Text is drawn with DejaVu Sans, compiled in (assets/fonts), so PNGs need no system font.

use super::series::{in_subset, SeriesReader};
use super::stats::{read_stats, Stats};
use super::summary::{read_run_json, read_summary, Summary};
use super::write_atomic;
use crate::error::{QbatError, Result};
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::Shift;
use plotters::prelude::*;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const SIZE: (u32, u32) = (900, 560);

/// Register the compiled-in font as "sans-serif" (once per process).
pub fn ensure_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            // The font is compiled in; this cannot fail unless the asset is corrupt.
            eprintln!("WARNING: the plot font could not be loaded; plots will have no text");
        }
    });
}

type DrawResult = std::result::Result<(), String>;

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Render `draw` into `<stem>.svg` and `<stem>.png` in `dir` (each atomically).
macro_rules! render_both {
    ($dir:expr, $stem:expr, $size:expr, $draw:expr) => {{
        ensure_font();
        let (w, h): (u32, u32) = $size;
        let stem: &str = $stem;
        // The two renderings side by side (a run of one or two measures draws one or two
        // plots, which would leave a core idle), then the two files, only when both rendered.
        let (svg, png) = rayon::join(
            || -> Result<String> {
                let mut svg = String::new();
                draw_on(SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area(), $draw, &format!("{stem}.svg"))?;
                Ok(svg)
            },
            || -> Result<Vec<u8>> {
                let mut rgb = vec![0u8; (w * h * 3) as usize];
                draw_on(BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area(), $draw, &format!("{stem}.png"))?;
                encode_png(&rgb, (w, h)).map_err(|e| QbatError::Numerics(format!("{stem}.png: {e}")))
            },
        );
        write_pair($dir, stem, &svg?, &png?)
    }};
}

/// `draw` on a white `root`, presented; an error names `file`.
fn draw_on<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, draw: impl FnOnce(&DrawingArea<DB, Shift>) -> DrawResult, file: &str) -> Result<()> {
    root.fill(&WHITE).map_err(s).and_then(|_| draw(&root)).and_then(|_| root.present().map_err(s)).map_err(|e| QbatError::Numerics(format!("{file}: {e}")))
}

/// An RGB image as PNG bytes.
fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> std::result::Result<Vec<u8>, png::EncodingError> {
    let mut bytes = vec![];
    let mut enc = png::Encoder::new(&mut bytes, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    // deflate at level 1: the main job's 34 plots take about a quarter of the CPU of the
    // default level 6 (46 against 201 ms, one thread), their files 1.46x as large (1.4
    // against 0.96 MB; benches/RESULTS.md)
    enc.set_deflate_compression(png::DeflateCompression::Level(1));
    // the Up filter: a plot's rows mostly repeat the row above (its axes, bands and white
    // space), so its residues are mostly zero; at level 6, deflate ran about 12% faster than
    // after the Sub filter (png 0.17's default) and the files were about 16% smaller
    enc.set_filter(png::Filter::Up);
    let mut writer = enc.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(bytes)
}

fn write_pair(dir: &Path, stem: &str, svg: &str, png: &[u8]) -> Result<Vec<PathBuf>> {
    let (svg_path, png_path) = (dir.join(format!("{stem}.svg")), dir.join(format!("{stem}.png")));
    write_atomic(&svg_path, |out| out.write_all(svg.as_bytes()))?;
    write_atomic(&png_path, |out| out.write_all(png))?;
    Ok(vec![png_path, svg_path])
}

mod axes;
mod hist2d;
mod legend;
mod steady;
mod stems;
use axes::{drawable, label_area, opened, scale_of, Span};
pub use axes::{log_tick_text, tick_text, y_axis, YAxis};
pub use hist2d::{draw_hist2d_plots, hist2d_counted, hist2d_data, hist2d_stem, write_hist2d_plots, Hist2d, Hist2dCounter, HIST_BINS};
use legend::{draw_legend_beside, freest_corner, label_px, legend_place, LegendPlace};
pub use steady::steady_heatmap_data;
use steady::write_steady_heatmap;
pub use stems::run_plot_stems;

// ---------------------------------------------------------------------------------------------
// Reading the run's files.

/// The mean and 5-95% band of one measure over time: what `plot_<measure>` draws (with the
/// min and max, where the band falls back to them: `drawn_band`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BandData {
    pub measure: String,
    pub t: Vec<f64>,
    pub mean: Vec<f64>,
    pub q05: Vec<f64>,
    pub q95: Vec<f64>,
    pub min: Vec<f64>,
    pub max: Vec<f64>,
}

/// Band data of every measure, in stats.csv's order, times ascending.
pub fn band_plot_data(stats: &Stats) -> Vec<BandData> {
    let mut out: Vec<BandData> = stats.measures.iter().map(|m| BandData { measure: m.clone(), ..Default::default() }).collect();
    for r in &stats.stats {
        let b = &mut out[r.measure];
        b.t.push(stats.times[r.sample]);
        b.mean.push(r.mean);
        b.q05.push(r.q05);
        b.q95.push(r.q95);
        b.min.push(r.min);
        b.max.push(r.max);
    }
    out
}

/// The band `plot_<measure>` draws at each time, (lower, upper), and whether any is the
/// min-max range: the quantiles are the sketch's buckets, each within
///   err = max(a max(|q05|, |q95|, |min|, |max|), QUANTILE_ZERO)   (a = 1e-3)
/// of the data's, so where the whole spread max - min is under 20 err they do not resolve it
/// (purity's 1e-9 drift drew a band beside the mean), and the exact min and max are drawn.
pub fn drawn_band(b: &BandData) -> (Vec<(f64, f64)>, bool) {
    use super::accumulate::{QUANTILE_REL_RESOLUTION, QUANTILE_ZERO};
    let mut fell_back = false;
    let band = (0..b.t.len())
        .map(|i| {
            let scale = [b.q05[i], b.q95[i], b.min[i], b.max[i]].iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let err = (QUANTILE_REL_RESOLUTION * scale).max(QUANTILE_ZERO);
            if b.max[i] - b.min[i] < 20.0 * err {
                fell_back = true;
                (b.min[i], b.max[i])
            } else {
                (b.q05[i], b.q95[i])
            }
        })
        .collect();
    (band, fell_back)
}

/// Axis units per model (docs/physics.md: hbar = 1, energies in the model's frequency unit,
/// times in its inverse).
fn units(model: &str) -> (&'static str, &'static str) {
    match model {
        "spin-pair" | "bloch-charger" => ("t (units of 1/wb, hbar = 1)", "wb"),
        "driven-pair" => ("t (units of 1/w0, hbar = 1)", "w0"),
        "cavity-cells" => ("t (units of 1/wq, hbar = 1)", "wq"),
        _ => ("t (units of 1/energy unit, hbar = 1)", "energy unit"),
    }
}

/// The unit a measure is given in, for axis labels.
fn measure_unit(measure: &str, energy: &str) -> String {
    match measure {
        m if m.starts_with("energy")
            || m.starts_with("stored_energy")
            || m.starts_with("ergotropy")
            || m.starts_with("capacity")
            || m.starts_with("antiergotropy")
            || m == "residual_capacity"
            || m == "energy_fluctuation_b" =>
        {
            format!("{measure} ({energy})")
        }
        "energy_variance_b" => format!("{measure} ({energy}^2)"),
        m if m.contains("power") => format!("{measure} ({energy} per unit time)"),
        "entropy_b" => format!("{measure} (bits)"),
        _ => format!("{measure} (dimensionless)"),
    }
}

/// A chart of a linear x axis and a linear or log y axis (`YAxis`).
type Chart<'a, DB, Y> = ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>;

/// Build `$builder`'s chart over x `$xs` and the y axis `$y` (`YAxis`), bound to `$chart`,
/// and run `$body` on it: a macro, as the linear and the log chart are of two types.
macro_rules! with_chart {
    ($builder:expr, $xs:expr, $y:expr, |$chart:ident| $body:block) => {{
        let (xs, y): ((f64, f64), &$crate::output::plots::YAxis) = ($xs, $y);
        if y.log {
            let mut $chart = $builder.build_cartesian_2d(xs.0..xs.1, (y.span.0..y.span.1).log_scale()).map_err(s)?;
            $body
        } else {
            let mut $chart = $builder.build_cartesian_2d(xs.0..xs.1, y.span.0..y.span.1).map_err(s)?;
            $body
        }
    }};
}

/// The place of the legend of `curves` at `font` px, drawn on `xs` and `y` in the plot area
/// of `panel` (whose margins, caption and labels take about 110 px of its width and 90 of
/// its height): right of the plot area where it has more than `INSIDE_MOST` entries
/// (`legend_place`), or where every corner inside would cover a point of a curve
/// (`freest_corner`, the box as drawn and 10 px from the area's edges); else in the freest
/// corner. Its `margin` is what the chart reserves right of the plot area, 0 where the
/// legend goes inside.
fn legend_room<DB: DrawingBackend>(curves: &[XyCurve], font: u32, xs: Span, y: &YAxis, panel: &DrawingArea<DB, Shift>) -> LegendPlace {
    let place = legend_place(curves.iter().map(|(l, _)| l.as_str()), font, |l| label_px(l, font));
    if place.outside() {
        return place;
    }
    let (w, h) = panel.dim_in_pixel();
    let plot = (w.saturating_sub(110).max(1) as f64, h.saturating_sub(90).max(1) as f64);
    let box_fraction = ((place.size.0 + 10) as f64 / plot.0, (place.size.1 + 10) as f64 / plot.1);
    let points = curves.iter().flat_map(|(_, c)| c.iter().map(|&(x, v)| (x, y.linearized(y.drawn(v)))));
    match freest_corner(points, xs, y.linear_span(), box_fraction) {
        (_, covered) if covered > 0 => place.moved_outside(),
        (corner, _) => LegendPlace { corner, ..place },
    }
}

/// Curve i of n's line width: of four curves or fewer, each a pixel wider than the next, so
/// that a curve equal to a later one shows round it (energy_b under ergotropy_b in a pure
/// state was hidden, its legend entry with no curve).
fn curve_width(i: usize, n: usize) -> u32 {
    if n <= 4 {
        2 + (n - 1 - i) as u32
    } else {
        2
    }
}

/// Labelled line curves, one colour each (`curve_width` wide), their values drawn on `y`
/// (`YAxis::drawn`), and where `legend` (the chart's panel, and the place `legend_room` gave,
/// whose margin the chart reserved) their legend: right of the plot area (plotters' own
/// legend is clamped into the plot area) or in the corner it names.
fn draw_curves<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut Chart<'a, DB, Y>,
    curves: &[XyCurve],
    font: u32,
    legend: Option<(&DrawingArea<DB, Shift>, LegendPlace)>,
    y: &YAxis,
) -> DrawResult {
    let n = curves.len();
    for (i, (label, pts)) in curves.iter().enumerate() {
        let (c, w) = (color(i), curve_width(i, n));
        let drawn = chart.draw_series(LineSeries::new(pts.iter().map(|&(x, v)| (x, y.drawn(v))), c.stroke_width(w))).map_err(s)?;
        drawn.label(label.as_str()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(w)));
    }
    let Some((panel, place)) = legend else {
        return Ok(());
    };
    let entries: Vec<(&str, RGBColor, u32)> = curves.iter().enumerate().map(|(i, (l, _))| (l.as_str(), color(i), curve_width(i, n))).collect();
    draw_legend(chart, panel, place, &entries, font)
}

/// The legend of `chart`'s labelled series at `font` px, where `place` puts it: plotters' own
/// in its corner inside, or `entries` (label, colour, line width) beside the plot area of
/// `panel` (plotters' is clamped into the plot area).
fn draw_legend<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut Chart<'a, DB, Y>,
    panel: &DrawingArea<DB, Shift>,
    place: LegendPlace,
    entries: &[(&str, RGBColor, u32)],
    font: u32,
) -> DrawResult {
    if place.outside() {
        // the plot area in the panel's pixels
        let ((px, py), (ax, ay)) = (chart.plotting_area().get_pixel_range(), panel.get_base_pixel());
        return draw_legend_beside(panel, place, (px.start - ax, py.start - ay, px.end - ax, py.end - ay), entries, font);
    }
    chart
        .configure_series_labels()
        .position(place.corner_position())
        .label_font(("sans-serif", font))
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()
        .map_err(s)
}

/// The chart's axes: each its description and ticks (`tick_text` over x's span, `YAxis::tick`
/// on y), at `font` px, and the grid's lines where `grid`.
fn draw_axes<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64> + ValueFormatter<f64>>(
    chart: &mut Chart<'a, DB, Y>,
    (x_desc, xs): (&str, Span),
    (y_desc, y): (&str, &YAxis),
    font: u32,
    grid: bool,
) -> DrawResult {
    let (x_text, y_text) = (|v: &f64| tick_text(*v, xs), |v: &f64| y.tick(*v));
    let mut mesh = chart.configure_mesh();
    if !grid {
        mesh.disable_mesh();
    }
    mesh.x_desc(x_desc).y_desc(y_desc).x_label_formatter(&x_text).y_label_formatter(&y_text).label_style(("sans-serif", font)).draw().map_err(s)
}

/// Curve i's colour: twelve apart (the cavity plot draws twelve curves; eight colours
/// repeated gave two curves one colour, and a curve the legend entry of another).
fn color(i: usize) -> RGBColor {
    const C: [RGBColor; 12] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(0, 0, 0),
        RGBColor(255, 187, 120),
    ];
    C[i % C.len()]
}

// ---------------------------------------------------------------------------------------------
// The plots.

/// Write every plot that applies to the run in `dir`; returns the files written. The 2-D
/// histograms are left out when `hist2d` is false (an analysis that reads the series anyway
/// draws them).
pub fn write_run_plots(dir: &Path, hist2d: bool) -> Result<Vec<PathBuf>> {
    let run = read_run_json(dir).unwrap_or(serde_json::Value::Null);
    let model = run["model"].as_str().unwrap_or("").to_string();
    // The band plots and the others are drawn side by side, and listed in that order.
    let (bands, others) = rayon::join(|| write_band_plots(dir, &model), || write_other_plots(dir, &model, &run, hist2d));
    let mut files = bands?;
    files.extend(others?);
    Ok(files)
}

/// The mean and 5-95% band of every measure in stats.csv: each plot is its own pair of
/// files, drawn in parallel, listed in order.
fn write_band_plots(dir: &Path, model: &str) -> Result<Vec<PathBuf>> {
    if !dir.join("stats.csv").is_file() {
        return Ok(vec![]);
    }
    let bands: Vec<BandData> = band_plot_data(&read_stats(dir)?).into_iter().filter(|b| b.t.len() >= 2 && b.t.iter().all(|t| t.is_finite())).collect();
    let drawn: Vec<Vec<PathBuf>> = bands.par_iter().map(|band| write_band_plot(dir, band, model)).collect::<Result<_>>()?;
    Ok(drawn.into_iter().flatten().collect())
}

/// Whether `write_run_plots` (with `hist2d`) reads a run's series: the plots drawn from it.
/// The streamed run keeps such a series in the page cache as it is written.
pub fn plots_read_series(model: &str, members: usize, n_times: usize, measures: &[String], hist2d: bool) -> bool {
    draws_series_plot(members, n_times) || (hist2d && draws_hist2d(measures)) || draws_cavity_plot(model, n_times, measures)
}

/// `plot_series`: every member's trajectories, for a run of a few members.
fn draws_series_plot(members: usize, n_times: usize) -> bool {
    members <= 4 && n_times >= 2
}

/// The 2-D histograms of capacity_b against each resource.
fn draws_hist2d(measures: &[String]) -> bool {
    measures.iter().any(|m| m == "capacity_b")
}

/// The cavity-cells curves against lambda t (every member is read, 12 drawn).
fn draws_cavity_plot(model: &str, n_times: usize, measures: &[String]) -> bool {
    model == "cavity-cells" && n_times >= 2 && measures.iter().any(|m| m == "stored_energy_b" || m == "concurrence")
}

/// The plots of `write_run_plots` other than the bands, in order.
fn write_other_plots(dir: &Path, model: &str, run: &serde_json::Value, hist2d: bool) -> Result<Vec<PathBuf>> {
    let mut files = vec![];
    let summary = read_summary(dir)?;
    let series_info = SeriesReader::open(dir)?.map(|r| (r.members_total, r.times.clone(), r.measures.clone()));
    if let Some((members, times, measures)) = &series_info {
        if draws_series_plot(*members, times.len()) {
            files.extend(write_series_plot(dir, model)?);
        }
        if hist2d && draws_hist2d(measures) {
            let pairs: Vec<(String, String)> = crate::measures::DEFAULT_RESOURCES
                .iter()
                .filter(|r| measures.iter().any(|m| m == *r))
                .map(|r| ("capacity_b".to_string(), r.to_string()))
                .collect();
            files.extend(write_hist2d_plots(dir, &pairs)?);
        }
        if draws_cavity_plot(model, times.len(), measures) {
            files.extend(write_cavity_plot(dir, run, summary.as_ref())?);
        }
        if times.len() == 1 && times[0].is_infinite() && measures.iter().any(|m| m == "energy_b") {
            if let Some(sm) = &summary {
                files.extend(write_steady_heatmap(dir, sm, "energy_b", model)?);
            }
        }
    }
    if let Some(sm) = &summary {
        if model == "bloch-charger" {
            if let Some(theta) = sm.col("theta") {
                let distinct = theta.iter().filter(|t| t.is_finite()).map(|t| t.to_bits()).collect::<std::collections::HashSet<_>>().len();
                if distinct >= 2 {
                    files.extend(write_theta_plots(dir, sm)?);
                }
            }
        }
    }
    Ok(files)
}

/// The band's fill, BLUE at 20% on white, as an opaque colour (for a legend drawn beside).
const BAND_ON_WHITE: RGBColor = RGBColor(204, 204, 255);

fn write_band_plot(dir: &Path, band: &BandData, model: &str) -> Result<Vec<PathBuf>> {
    let (tlabel, eunit) = units(model);
    let stem = format!("plot_{}", band.measure);
    let (drawn, fell_back) = drawn_band(band);
    let Some(y) = y_axis(&stem, drawn.iter().flat_map(|&(a, b)| [a, b]).chain(band.mean.iter().copied())) else {
        return Ok(vec![]);
    };
    let Some((t0, t1)) = drawable(&stem, opened(band.t[0], band.t[band.t.len() - 1])) else {
        return Ok(vec![]);
    };
    let ylabel = measure_unit(&band.measure, eunit) + &y.note;
    let band_label = if fell_back { "5-95% of members (min-max where finer than the quantiles resolve)" } else { "5-95% of members" };
    // the legend's place, as the curves' (`legend_room`): the band counted by its edges and
    // the points between them, so that a corner over the band's inside counts as covered, and
    // the legend goes beside the plot area where every corner would cover the band or the mean
    let band_points: Vec<(f64, f64)> = band.t.iter().zip(&drawn).flat_map(|(&t, &(a, b))| (0..=4).map(move |k| (t, a + (b - a) * k as f64 / 4.0))).collect();
    let legend_curves: [XyCurve; 2] =
        [(band_label.to_string(), band_points), ("mean".to_string(), band.t.iter().copied().zip(band.mean.iter().copied()).collect())];
    render_both!(dir, &stem, SIZE, |root: &DrawingArea<_, Shift>| -> DrawResult {
        let place = legend_room(&legend_curves, 15, (t0, t1), &y, root);
        let mut builder = ChartBuilder::on(root);
        builder
            .caption(format!("{}: ensemble mean and {}", band.measure, if fell_back { "5-95% band, or min-max" } else { "5-95% band" }), ("sans-serif", 22))
            .margin(14)
            .margin_right(if place.outside() { 14 + place.margin } else { 28 })
            .x_label_area_size(48)
            .y_label_area_size(y.label_area(15));
        with_chart!(builder, (t0, t1), &y, |chart| {
            draw_axes(&mut chart, (tlabel, (t0, t1)), (ylabel.as_str(), &y), 15, true)?;
            let upper = band.t.iter().zip(&drawn).map(|(t, v)| (*t, y.drawn(v.1)));
            let poly: Vec<(f64, f64)> = upper.chain(band.t.iter().zip(&drawn).rev().map(|(t, v)| (*t, y.drawn(v.0)))).collect();
            chart
                .draw_series(std::iter::once(Polygon::new(poly, BLUE.mix(0.2))))
                .map_err(s)?
                .label(band_label)
                .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], BLUE.mix(0.2).filled()));
            chart
                .draw_series(LineSeries::new(band.t.iter().zip(&band.mean).map(|(t, v)| (*t, y.drawn(*v))), BLUE.stroke_width(2)))
                .map_err(s)?
                .label("mean")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE.stroke_width(2)));
            // (beside the plot area, the band's mark a line as wide as plotters' box, in its
            // colour on white)
            draw_legend(&mut chart, root, place, &[(band_label, BAND_ON_WHITE, 10), ("mean", BLUE, 2)], 15)
        })
    })
}

/// The most panels `plot_series` draws.
pub const SERIES_PANELS: usize = 8;

/// The panels of `plot_series`: for each measure shown, one curve a member ("member <id>").
/// Each measure has its own panel, unit and scale: on one axis, photon_number squashed the
/// others, and 32 curves shared 8 colours. At most `SERIES_PANELS` are shown: the first measures of
/// the physics, then fock_tail, the truncation diagnostic (on a log axis where it spans decades:
/// `y_axis`); trace_error and min_eigenvalue, rounding noise, are left out.
pub fn series_plot_data(rd: &mut SeriesReader) -> Result<Vec<Panel>> {
    let (nt, nm) = (rd.n_times(), rd.n_measures());
    let times = rd.times.clone();
    let named = |k: &usize, names: &[&str]| names.contains(&rd.measures[*k].as_str());
    // at most SERIES_PANELS panels: the first measures in the series' order, and fock_tail
    // (the cutoff's check) as the last where the series has it (it was cut past 7 others)
    let tail: Vec<usize> = (0..nm).filter(|k| named(k, &["fock_tail"])).collect();
    let physics = (0..nm).filter(|k| !named(k, &["trace_error", "min_eigenvalue", "fock_tail"])).take(SERIES_PANELS - tail.len());
    let shown: Vec<usize> = physics.chain(tail).collect();
    let mut panels: Vec<Panel> = shown.iter().map(|&k| (rd.measures[k].clone(), vec![])).collect();
    let mut block = vec![];
    while let Some(id) = rd.next_member(&mut block)? {
        for (panel, &k) in panels.iter_mut().zip(&shown) {
            panel.1.push((format!("member {id}"), (0..nt).map(|s| (times[s], block[s * nm + k])).collect()));
        }
    }
    Ok(panels)
}

/// Every measure of a small run (at most 4 members) against time: a panel a measure, a curve
/// a member (`series_plot_data`).
fn write_series_plot(dir: &Path, model: &str) -> Result<Vec<PathBuf>> {
    let Some(mut rd) = SeriesReader::open(dir)? else {
        return Ok(vec![]);
    };
    let (t_first, t_last, multi) = (rd.times[0], rd.times[rd.n_times() - 1], rd.members_total > 1);
    let panels = series_plot_data(&mut rd)?;
    let (tlabel, eunit) = units(model);
    let Some((t0, t1)) = drawable("plot_series", opened(t_first, t_last)) else {
        return Ok(vec![]);
    };
    // each panel's y axis (linear or log: `y_axis`) and caption
    let panels: Vec<(String, Vec<XyCurve>, Option<YAxis>)> = panels
        .into_iter()
        .map(|(m, curves)| {
            let y = y_axis("plot_series", curves.iter().flat_map(|(_, c)| c.iter().map(|p| p.1)));
            (measure_unit(&m, eunit) + y.as_ref().map_or("", |y| y.note.as_str()), curves, y)
        })
        .collect();
    if panels.iter().all(|p| p.2.is_none()) {
        return Ok(vec![]);
    }
    let cols = if panels.len() > 1 { 2 } else { 1 };
    let rows = panels.len().div_ceil(cols);
    let size = (SIZE.0, 50 + 290 * rows as u32);
    let title = if multi { "measures against time, a colour a member" } else { "measures against time" };
    render_both!(dir, "plot_series", size, |root: &DrawingArea<_, Shift>| -> DrawResult {
        let root = root.titled(title, ("sans-serif", 22)).map_err(s)?;
        for (area, (caption, curves, y)) in root.split_evenly((rows, cols)).iter().zip(&panels) {
            let Some(y) = y else {
                // (a panel of no finite value says so, rather than stand empty)
                area.titled(&format!("{caption}: no finite values"), ("sans-serif", 16)).map_err(s)?;
                continue;
            };
            let legend = multi.then(|| (area, legend_room(curves, 12, (t0, t1), y, area)));
            let mut builder = ChartBuilder::on(area);
            builder
                .caption(caption, ("sans-serif", 16))
                .margin(10)
                .margin_right(10 + legend.map_or(0, |(_, p)| p.margin))
                .x_label_area_size(40)
                .y_label_area_size(y.label_area(13));
            with_chart!(builder, (t0, t1), y, |chart| {
                draw_axes(&mut chart, (tlabel, (t0, t1)), ("", y), 13, true)?;
                draw_curves(&mut chart, curves, 12, legend, y)?;
            });
        }
        Ok(())
    })
}

/// A light-to-dark colormap on [0, 1] (pale yellow -> red -> dark blue-violet).
fn heat(f: f64) -> RGBColor {
    let f = f.clamp(0.0, 1.0);
    let stops = [(255.0, 245.0, 200.0), (250.0, 150.0, 60.0), (200.0, 40.0, 60.0), (60.0, 20.0, 110.0)];
    let x = f * (stops.len() - 1) as f64;
    let i = (x.floor() as usize).min(stops.len() - 2);
    let u = x - i as f64;
    let (a, b) = (stops[i], stops[i + 1]);
    let mix = |p: f64, q: f64| (p + (q - p) * u).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// A labelled curve over a shared x axis.
pub type Curve = (String, Vec<f64>);
/// A labelled curve of (x, y) points.
pub type XyCurve = (String, Vec<(f64, f64)>);
/// One panel: the measure it shows and its curves.
pub type Panel = (String, Vec<XyCurve>);
/// A steady-state grid: x name, y name, x and y of each member, the measure of each member.
pub type Heatmap = (String, String, Vec<f64>, Vec<f64>, Vec<f64>);

mod theta;
use theta::write_theta_plots;
pub use theta::{theta_curves, theta_plot_data, THETA_PLOT_POINTS};

/// Curves of stored_energy_b and concurrence against lambda t, one per member (at most 12,
/// evenly strided), labelled by the swept parameters. Returns (panel measure, curves).
pub fn cavity_plot_data(dir: &Path, run: &serde_json::Value, sm: Option<&Summary>) -> Result<Vec<Panel>> {
    let Some(mut rd) = SeriesReader::open(dir)? else {
        return Ok(vec![]);
    };
    let (nt, nm, n) = (rd.n_times(), rd.n_measures(), rd.members_total);
    let times = rd.times.clone();
    let panels: Vec<(String, usize)> = ["stored_energy_b", "concurrence"].iter().filter_map(|m| rd.measure_index(m).map(|k| (m.to_string(), k))).collect();
    let fixed_lambda = run["resolved"]["params"]["lambda"].as_f64();
    let lambda_col = sm.and_then(|s| s.col("lambda"));
    let label_cols: Vec<String> = sm.map(|s| s.param_columns()).unwrap_or_default();
    let mut out: Vec<Panel> = panels.iter().map(|(m, _)| (m.clone(), vec![])).collect();
    let mut ids = vec![];
    let mut block = vec![];
    let mut i = 0;
    while let Some(id) = rd.next_member(&mut block)? {
        if in_subset(i, n, 12) {
            ids.push(id);
            let lambda = lambda_col
                .as_ref()
                .map(|c| c[i])
                .or(fixed_lambda)
                .ok_or_else(|| QbatError::invalid("run.json", "no lambda in resolved.params or summary.csv"))?;
            let label = match sm {
                Some(s) if !label_cols.is_empty() => {
                    label_cols.iter().map(|c| format!("{c} = {}", s.col(c).map(|v| v[i]).unwrap_or(f64::NAN))).collect::<Vec<_>>().join(", ")
                }
                _ => format!("member {id}"),
            };
            for (p, (_, k)) in panels.iter().enumerate() {
                out[p].1.push((label.clone(), (0..nt).map(|s| (lambda * times[s], block[s * nm + k])).collect()));
            }
        }
        i += 1;
    }
    // Members of one parameter point (random initial states) share its label: each is then
    // named by its id too, rather than told apart by colour alone.
    let labels: Vec<&String> = out.first().map(|p| p.1.iter().map(|c| &c.0).collect()).unwrap_or_default();
    let repeated = labels.iter().enumerate().any(|(j, l)| labels[..j].contains(l));
    if repeated && !label_cols.is_empty() {
        for panel in &mut out {
            for (curve, id) in panel.1.iter_mut().zip(&ids) {
                curve.0 = format!("member {id}: {}", curve.0);
            }
        }
    }
    Ok(out)
}

fn write_cavity_plot(dir: &Path, run: &serde_json::Value, sm: Option<&Summary>) -> Result<Vec<PathBuf>> {
    let panels = cavity_plot_data(dir, run, sm)?;
    if panels.is_empty() {
        return Ok(vec![]);
    }
    // each panel's axes, or None where it cannot be drawn (said once, before drawing)
    let stem = "plot_cavity_lambda_t";
    let axes: Vec<Option<(Span, YAxis)>> = panels
        .iter()
        .map(|(_, curves)| {
            let y = y_axis(stem, curves.iter().flat_map(|(_, c)| c.iter().map(|p| p.1)))?;
            let x1 = curves.iter().flat_map(|(_, c)| c.iter().map(|p| p.0)).fold(0.0f64, f64::max).max(1e-12);
            let x0 = curves.iter().flat_map(|(_, c)| c.iter().map(|p| p.0)).fold(f64::INFINITY, f64::min).min(x1 - 1e-12);
            Some((drawable(stem, (x0, x1))?, y))
        })
        .collect();
    if axes.iter().all(Option::is_none) {
        return Ok(vec![]);
    }
    let size = (SIZE.0, 380 * panels.len() as u32);
    // (the members drawn, of those run: the caption says where some are left out)
    let (drawn, run_members) = (panels[0].1.len(), run["members"].as_u64().unwrap_or(0) as usize);
    let thinned = if run_members > drawn { format!(", {drawn} of {run_members} members") } else { String::new() };
    render_both!(dir, stem, size, |root: &DrawingArea<_, Shift>| -> DrawResult {
        let areas = root.split_evenly((panels.len(), 1));
        for ((area, (measure, curves)), axes) in areas.iter().zip(&panels).zip(&axes) {
            let Some((xs, y)) = axes else {
                continue;
            };
            let ylabel = if measure == "stored_energy_b" { "stored_energy_b (wq)" } else { "concurrence of the cells" };
            let ylabel = format!("{ylabel}{}", y.note);
            let place = legend_room(curves, 13, *xs, y, area);
            let mut builder = ChartBuilder::on(area);
            builder
                .caption(format!("{measure} against lambda t (paper 003 fig. 2{thinned})"), ("sans-serif", 18))
                .margin(14)
                .margin_right(14 + place.margin)
                .x_label_area_size(44)
                .y_label_area_size(y.label_area(14));
            with_chart!(builder, *xs, y, |chart| {
                draw_axes(&mut chart, ("lambda t (dimensionless)", *xs), (ylabel.as_str(), y), 14, true)?;
                draw_curves(&mut chart, curves, 13, Some((area, place)), y)?;
            });
        }
        Ok(())
    })
}
