//! The plots a run's config can draw, by name: for the check before a `--force` run that a
//! user's file is not under one of them. The conditions are `write_run_plots`'s own.

use super::{draws_cavity_plot, draws_hist2d, draws_series_plot, hist2d_stem};

/// The stems (NAME of NAME.png and NAME.svg) that `write_run_plots`, or the study's analysis,
/// may draw for a run of `model` with `members` (of `distinct_thetas` charger angles, and
/// `varying_params` swept parameters that vary among them), `times` and `measures`, with or
/// without a `series`: each its config allows, as `write_run_plots` decides (which of them it
/// draws depends on the values too), for the check before the run.
pub fn run_plot_stems(
    model: &str,
    members: usize,
    distinct_thetas: usize,
    varying_params: usize,
    times: &[f64],
    measures: &[String],
    series: bool,
) -> Vec<String> {
    let mut stems: Vec<String> = vec![];
    if times.len() >= 2 && times.iter().all(|t| t.is_finite()) {
        stems.extend(measures.iter().map(|m| format!("plot_{m}")));
    }
    if series && draws_series_plot(members, times.len()) {
        stems.push("plot_series".into());
    }
    if series && draws_hist2d(measures) {
        stems.extend(crate::measures::DEFAULT_RESOURCES.iter().filter(|r| measures.iter().any(|m| m == *r)).map(|r| hist2d_stem("capacity_b", r)));
    }
    if series && draws_cavity_plot(model, times.len(), measures) {
        stems.push("plot_cavity_lambda_t".into());
    }
    // (the steady heat map is over a grid of two parameters)
    if series && times.len() == 1 && times[0].is_infinite() && measures.iter().any(|m| m == "energy_b") && varying_params == 2 {
        stems.push("plot_steady_energy_b".into());
    }
    if model == "bloch-charger" && distinct_thetas >= 2 {
        stems.extend(["plot_peaks_theta".into(), "plot_peak_times_theta".into()]);
    }
    stems
}
