//! What the plots draw, read back from their data functions: the band that falls back to the
//! exact min and max where the quantiles do not resolve the spread, a panel a measure with a
//! curve a member, and no peak time where there is no peak.

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
