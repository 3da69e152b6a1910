//! What the plots draw, read back from their data functions and their SVGs: the band that
//! falls back to the exact min and max where the quantiles do not resolve the spread, a panel
//! a measure with a curve a member, no peak time where there is no peak, a log axis for values
//! spanning decades (zeros at its floor), a long legend beside the curves, not on them, and
//! the band plot's legend off its band.

use crate::common::{bin, ok};
use qbat_gpu::output::plots;
use std::path::Path;

fn run(dir: &Path, config: &str, extra: &[&str]) -> std::path::PathBuf {
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, config).unwrap();
    let out = dir.join("out");
    ok(bin().arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--verify", "0", "--format", "csv", "--out"]).arg(&out).args(extra));
    out
}

/// Purity stays within 1e-7 of 1 while the quantiles hold 1e-3 of it: there the band is the
/// exact min and max (the quantiles' band lay beside the mean), and it holds the mean; where
/// the spread is wide (capacity_b) it is the 5-95% quantiles.
#[test]
fn the_band_is_the_min_and_max_where_the_quantiles_do_not_resolve_the_spread() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = "model = \"spin-pair\"\n[initial]\nrandom = \"haar\"\n[time]\ndt = 0.01\nt_end = 5.0\nsamples = 11\n[ensemble]\nsize = 60\n[output]\nmeasures = [\"purity\", \"capacity_b\"]\n";
    let out = run(tmp.path(), cfg, &["--no-plots"]);
    let bands = plots::band_plot_data(&qbat_gpu::output::stats::read_stats(&out).unwrap());
    let (purity, capacity) = (&bands[0], &bands[1]);
    assert_eq!((purity.measure.as_str(), capacity.measure.as_str()), ("purity", "capacity_b"));
    let (drawn, fell_back) = plots::drawn_band(purity);
    assert!(fell_back);
    for (i, &(lo, hi)) in drawn.iter().enumerate() {
        assert!(purity.max[i] - purity.min[i] < 1e-6, "purity spreads: {} {}", purity.min[i], purity.max[i]);
        assert_eq!((lo, hi), (purity.min[i], purity.max[i]));
        assert!(lo <= purity.mean[i] && purity.mean[i] <= hi);
    }
    let (drawn, _) = plots::drawn_band(capacity);
    let wide: Vec<usize> = (0..drawn.len()).filter(|&i| capacity.max[i] - capacity.min[i] > 0.1).collect();
    assert!(!wide.is_empty());
    for i in wide {
        assert_eq!(drawn[i], (capacity.q05[i], capacity.q95[i]));
    }
}

/// plot_series of a two-member run: a panel a measure shown (the health diagnostics left
/// out), each with a curve a member, whose points are the series' own values.
#[test]
fn the_series_plot_has_a_panel_a_measure_and_a_curve_a_member() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = "model = \"spin-pair\"\n[initial]\nrandom = \"haar\"\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 5\n[ensemble]\nsize = 2\n[output]\nmeasures = [\"concurrence\", \"trace_error\", \"capacity_b\"]\n";
    let out = run(tmp.path(), cfg, &["--no-plots"]);
    let mut rd = qbat_gpu::output::series::SeriesReader::open(&out).unwrap().unwrap();
    let panels = plots::series_plot_data(&mut rd).unwrap();
    let names: Vec<&str> = panels.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(names, ["concurrence", "capacity_b"]);
    // series.csv, read here: member,t,concurrence,trace_error,capacity_b
    let text = std::fs::read_to_string(out.join("series.csv")).unwrap();
    let rows: Vec<Vec<f64>> = text.lines().skip(1).map(|l| l.split(',').map(|x| x.parse().unwrap()).collect()).collect();
    for (panel, column) in panels.iter().zip([2, 4]) {
        assert_eq!(panel.1.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(), ["member 0", "member 1"]);
        for (member, (_, points)) in panel.1.iter().enumerate() {
            let want: Vec<(f64, f64)> = rows.iter().filter(|r| r[0] == member as f64).map(|r| (r[1], r[column])).collect();
            assert_eq!(points, &want, "{}", panel.0);
        }
    }
}

/// plot_series of a run of more measures than its panels: the first ones in the series' order,
/// and fock_tail last (it was cut with every measure past the eighth).
#[test]
fn the_series_plot_keeps_fock_tail_past_its_panel_count() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = "model = \"cavity-cells\"\n[params]\nlambda = { values = [0.5, 1.0] }\nn_fock = 6\n[time]\ndt = 0.01\nt_end = 0.1\nsamples = 3\n";
    let out = run(tmp.path(), cfg, &["--no-plots"]);
    let mut rd = qbat_gpu::output::series::SeriesReader::open(&out).unwrap().unwrap();
    let measures = rd.measures.clone();
    let physics: Vec<&str> = measures.iter().map(String::as_str).filter(|m| !["trace_error", "min_eigenvalue", "fock_tail"].contains(m)).collect();
    assert!(physics.len() > 8 && measures.iter().any(|m| m == "fock_tail"), "{measures:?}");
    let panels = plots::series_plot_data(&mut rd).unwrap();
    let names: Vec<&str> = panels.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(names[..7], physics[..7]);
    assert_eq!(names[7..], ["fock_tail"]);
}

/// A member that does not charge (its peak is 0, at theta = 0) has no peak time: its t_max
/// of 0 is not drawn, while its peak is.
#[test]
fn a_member_with_no_peak_has_no_peak_time_drawn() {
    let theta = [0.0, 1.0, 2.0];
    let peaks = vec![("max energy_b".to_string(), vec![0.0, 0.3, 0.8])];
    let times = vec![("t of max energy_b".to_string(), vec![0.0, 1.5, 1.6])];
    let (p, t) = plots::theta_curves(&theta, &peaks, &times);
    assert_eq!(p[0].1, [(0.0, 0.0), (1.0, 0.3), (2.0, 0.8)]);
    assert_eq!(t[0].1, [(1.0, 1.5), (2.0, 1.6)]);
}

/// The attribute `name` of the SVG element `tag` (its text up to '>').
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    tag[at..].split('"').next()
}

/// The SVG elements `<name ...>` of `svg`, each its text up to '>'.
fn elements<'a>(svg: &'a str, name: &str) -> Vec<&'a str> {
    // (each with its leading space, which `attr` finds the first attribute by)
    svg.split(&format!("<{name}")).skip(1).filter(|e| e.starts_with(' ')).map(|e| e.split('>').next().unwrap_or("")).collect()
}

/// The texts of `svg`'s <text> elements, trimmed.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text ").skip(1).filter_map(|e| e.split_once('>')).map(|(_, rest)| rest.split("</text>").next().unwrap_or("").trim().to_string()).collect()
}

/// The legend boxes of `svg` (white at 85% opacity), each (x0, y0, x1, y1) in pixels.
fn legend_boxes(svg: &str) -> Vec<[f64; 4]> {
    elements(svg, "rect")
        .into_iter()
        .filter(|r| attr(r, "opacity") == Some("0.85") && attr(r, "fill") == Some("#FFFFFF"))
        .map(|r| {
            let v = |k| attr(r, k).unwrap().parse::<f64>().unwrap();
            [v("x"), v("y"), v("x") + v("width"), v("y") + v("height")]
        })
        .collect()
}

/// A polyline's points, (x, y) pixels.
fn points(polyline: &str) -> Vec<(f64, f64)> {
    let pts = attr(polyline, "points").unwrap_or("");
    pts.split_whitespace().map(|p| p.split_once(',').map(|(x, y)| (x.parse().unwrap(), y.parse().unwrap())).unwrap()).collect()
}

/// Write a run's files as the plots read them: stats.csv (t, measure, mean, std, min, max,
/// q05, q50, q95, n) from `stats` rows, series.csv from `(member, t, values)` rows.
fn write_run(dir: &Path, run_json: Option<&str>, measures: &[&str], stats: &[(f64, &str, [f64; 7])], series: &[(usize, f64, Vec<f64>)]) {
    if !stats.is_empty() {
        let mut text = String::from("t,measure,mean,std,min,max,q05,q50,q95,n\n");
        for (t, m, [mean, std, min, max, q05, q50, q95]) in stats {
            text += &format!("{t:e},{m},{mean:e},{std:e},{min:e},{max:e},{q05:e},{q50:e},{q95:e},2\n");
        }
        std::fs::write(dir.join("stats.csv"), text).unwrap();
    }
    let mut text = format!("member,t,{}\n", measures.join(","));
    for (member, t, vals) in series {
        text += &format!("{member},{t:e},{}\n", vals.iter().map(|v| format!("{v:e}")).collect::<Vec<_>>().join(","));
    }
    std::fs::write(dir.join("series.csv"), text).unwrap();
    if let Some(run) = run_json {
        std::fs::write(dir.join("run.json"), run).unwrap();
    }
}

/// Where a measure's positive values span many decades (a quarter of them more than 3 below
/// the largest), its y axis is logarithmic; where a few early values are small (energy
/// rising from 0), the values are signed, or they sit within a decade (rounding noise), it
/// is linear. Values <= 0 are drawn at the log axis' floor, and the label says so.
#[test]
fn a_measure_spanning_decades_gets_a_log_axis_whose_floor_holds_the_zeros() {
    let decaying: Vec<f64> = (0..=20).map(|i| 1e-2 * 10f64.powf(-(i as f64) / 2.0)).collect();
    let with_zeros: Vec<f64> = decaying.iter().chain(&[0.0, 0.0, -1e-19]).copied().collect();
    let y = plots::y_axis("t", with_zeros.iter().copied()).unwrap();
    assert!(y.log, "{y:?}");
    // every value drawn within the axis, 1e-12 above the zeros' floor, which is above the
    // axis' bottom (so that a curve drawn at it shows above the frame)
    let drawn: Vec<f64> = with_zeros.iter().map(|&v| y.drawn(v)).collect();
    assert!(drawn.iter().all(|&d| d.is_finite() && d >= y.floor && d <= y.span.1), "{drawn:?} in {y:?}");
    assert_eq!((y.drawn(0.0), y.drawn(-1e-19)), (y.floor, y.floor));
    assert!(y.span.0 < y.floor && y.floor < y.drawn(1e-12) && y.drawn(1e-2) < y.span.1);
    assert!(y.note.contains("drawn at"), "{}", y.note);
    // the ticks read the values they stand for: 1e-12 and 0.01 on the axis
    assert_eq!((y.tick(y.drawn(1e-12)), y.tick(y.drawn(1e-2))), ("1e-12".to_string(), "0.01".to_string()));
    // linear: energy rising as t^2 from 0 (its first values 1e-5), a single rounding residue
    // beside values of 0.1, a signed measure, rounding noise of trace_error
    let rising: Vec<f64> = (0..200).map(|i| (i as f64 * 0.005).powi(2)).collect();
    let residue = [1e-17, 0.05, 0.1, 0.2, 0.15, 0.1];
    let signed: Vec<f64> = decaying.iter().map(|v| -v).chain(decaying.iter().copied()).collect();
    let noise = [0.0, 2.2e-16, 4.4e-16, 1.1e-16, 6.7e-16];
    for vals in [&rising[..], &residue, &signed, &noise] {
        let y = plots::y_axis("t", vals.iter().copied()).unwrap();
        assert!(!y.log && y.note.chars().all(|c| c != '<'), "{vals:?}: {y:?}");
    }
}

/// A run whose fock_tail decays from 1e-2 to 1e-12 (its 5% quantile exactly 0): plot_fock_tail
/// has log ticks, and plot_series a fock_tail panel on a log axis where a member of exact
/// zeros is drawn, flat at the floor, below the other member's curve.
#[test]
fn the_plots_draw_fock_tail_on_a_log_axis_with_its_zeros() {
    let tmp = tempfile::tempdir().unwrap();
    let times: Vec<f64> = (0..=20).map(|i| i as f64 * 0.5).collect();
    let tail = |t: f64| 1e-2 * 10f64.powf(-t);
    let stats: Vec<(f64, &str, [f64; 7])> =
        times.iter().map(|&t| (t, "fock_tail", [tail(t) / 2.0, tail(t) / 2.0, 0.0, tail(t), 0.0, tail(t) / 2.0, tail(t)])).collect();
    let series: Vec<(usize, f64, Vec<f64>)> =
        (0..2).flat_map(|m| times.iter().map(move |&t| (m, t, vec![0.3 * t, if m == 0 { tail(t) } else { 0.0 }]))).collect();
    write_run(tmp.path(), None, &["energy_b", "fock_tail"], &stats, &series);
    plots::write_run_plots(tmp.path(), false).unwrap();
    let band = std::fs::read_to_string(tmp.path().join("plot_fock_tail.svg")).unwrap();
    let decades: Vec<String> = texts(&band).into_iter().filter(|t| t.starts_with("1e-")).collect();
    assert!(decades.len() >= 4, "log ticks: {decades:?}");
    assert!(texts(&band).iter().any(|t| t.contains("drawn at")), "the label names the floor");
    // the band's polygon and the mean's line are drawn, every point a number
    for shape in elements(&band, "polygon").into_iter().chain(elements(&band, "polyline")) {
        assert!(points(shape).iter().all(|(x, y)| x.is_finite() && y.is_finite()));
    }
    let panels = std::fs::read_to_string(tmp.path().join("plot_series.svg")).unwrap();
    assert!(texts(&panels).iter().any(|t| t.starts_with("fock_tail")), "no fock_tail panel");
    // member 0 is drawn in the first colour, member 1 in the second: the fock_tail panel's
    // curves are the last of each
    let curves = |colour: &str| {
        elements(&panels, "polyline")
            .into_iter()
            .filter(|p| attr(p, "stroke") == Some(colour) && points(p).len() == times.len())
            .map(points)
            .collect::<Vec<_>>()
    };
    let (ones, zeros) = (curves("#1F77B4"), curves("#D62728"));
    assert_eq!((ones.len(), zeros.len()), (2, 2));
    let (decay, flat) = (&ones[1], &zeros[1]);
    assert!(flat.iter().all(|p| p.1 == flat[0].1), "zeros drawn flat: {flat:?}");
    // (pixels grow downwards: the floor is below every value of the decaying member)
    assert!(decay.iter().all(|p| p.1 < flat[0].1), "floor {} above {decay:?}", flat[0].1);
    // the decaying member spans most of the panel's height: 10 decades are not drawn flat
    let span = decay.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max) - decay.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    assert!(span > 150.0, "drawn over {span} px");
}

/// The cavity plot's curves fill their panels, through every corner: the legend, of twelve
/// entries or of four, goes beside the plot area, where no point of a curve lies under it.
/// (Four entries went into the corner that covered fewest, over a peak of paper 003's
/// concurrence.)
#[test]
fn a_legend_covers_no_curve() {
    for members in [12usize, 4] {
        let tmp = tempfile::tempdir().unwrap();
        let run = format!(r#"{{"model": "cavity-cells", "members": {members}, "resolved": {{"params": {{"lambda": 1.0}}}}}}"#);
        // each member a sine of its own phase: together they pass through every corner
        let wave = move |m: usize, t: f64| 0.5 + 0.5 * (t + std::f64::consts::TAU * m as f64 / members as f64).sin();
        let series: Vec<(usize, f64, Vec<f64>)> =
            (0..members).flat_map(|m| (0..60).map(move |s| (m, s as f64 * 0.2, vec![wave(m, s as f64 * 0.2), 0.5 * wave(m + 3, s as f64 * 0.2)]))).collect();
        write_run(tmp.path(), Some(&run), &["stored_energy_b", "concurrence"], &[], &series);
        plots::write_run_plots(tmp.path(), false).unwrap();
        let svg = std::fs::read_to_string(tmp.path().join("plot_cavity_lambda_t.svg")).unwrap();
        let legends = legend_boxes(&svg);
        assert_eq!(legends.len(), 2, "{members}: a legend a panel");
        let curves: Vec<Vec<(f64, f64)>> = elements(&svg, "polyline").into_iter().map(points).filter(|p| p.len() == 60).collect();
        assert_eq!(curves.len(), 2 * members);
        for [x0, y0, x1, y1] in &legends {
            assert!(x1 - x0 > 40.0 && y1 - y0 > members as f64 * 10.0, "{members}: a legend box of {members} entries: {x0} {y0} {x1} {y1}");
            let under: Vec<&(f64, f64)> = curves.iter().flatten().filter(|(x, y)| x >= x0 && x <= x1 && y >= y0 && y <= y1).collect();
            assert!(under.is_empty(), "{members}: {} points under the legend {x0},{y0}..{x1},{y1}: {:?}", under.len(), &under[..under.len().min(5)]);
        }
    }
}

/// The band plot's legend: where the band fills the plot area at every time, every corner
/// would cover it (the legend went into a corner over the band, which only its edges were
/// counted against): the legend goes beside the plot area, right of every point of the band.
/// Where the band rises, leaving the upper left free, the legend goes there, above the band.
#[test]
fn the_band_plots_legend_covers_no_band() {
    for rising in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let band = |i: usize| if rising { (0.02, 0.1 + 0.04 * i as f64) } else { (0.02, 0.98) };
        let stats: Vec<(f64, &str, [f64; 7])> = (0..=20)
            .map(|i| {
                let (lo, hi) = band(i);
                (i as f64 * 0.5, "energy_b", [(lo + hi) / 2.0, 0.2, 0.0, 1.0, lo, (lo + hi) / 2.0, hi])
            })
            .collect();
        let series: Vec<(usize, f64, Vec<f64>)> = (0..=20).map(|i| (0, i as f64 * 0.5, vec![band(i).0])).collect();
        write_run(tmp.path(), Some(r#"{"model": "bloch-charger", "members": 2}"#), &["energy_b"], &stats, &series);
        plots::write_run_plots(tmp.path(), false).unwrap();
        let svg = std::fs::read_to_string(tmp.path().join("plot_energy_b.svg")).unwrap();
        let legend = legend_boxes(&svg);
        assert_eq!(legend.len(), 1, "rising {rising}: one legend");
        let [x0, y0, x1, y1] = legend[0];
        // the polygon: the upper edge left to right, then the lower edge back
        let polygon: Vec<(f64, f64)> = elements(&svg, "polygon").into_iter().flat_map(points).collect();
        assert_eq!(polygon.len(), 42, "rising {rising}: the band's polygon");
        let band_right = polygon.iter().map(|p| p.0).fold(f64::MIN, f64::max);
        if !rising {
            assert!(x0 > band_right, "the legend {x0},{y0}..{x1},{y1} over a band that fills the area (right edge {band_right})");
        } else {
            // inside, and above the upper edge (pixels grow downwards) wherever it spans
            assert!(x1 < band_right, "the legend {x0},{y0}..{x1},{y1} went outside though the upper left is free");
            let upper = &polygon[..21];
            let under = upper.windows(2).any(|w| w[1].0 >= x0 && w[0].0 <= x1 && w[0].1.min(w[1].1) <= y1);
            assert!(!under, "the legend {x0},{y0}..{x1},{y1} covers the band: {upper:?}");
        }
    }
}
