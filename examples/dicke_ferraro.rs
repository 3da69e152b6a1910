//! Ferraro et al., PRL 120, 117702 (2018), the collective-charging figure: the maximum power
//! P_N = max_t E_N(t)/t of the Dicke battery (N cells in one cavity, started in |N> photons with
//! every cell in |g>) against N, compared with N independent single-cell batteries, each with
//! its own cavity in |1> (P_N^par = N P_1, P_1 the N = 1 Dicke battery with one photon).
//! Resonance wc = wa = 1, no dissipation, Dicke coupling 2 g J_x (a + a^+), g in {0.05, 0.2}.
//! The advantage Gamma_N = P_N / P_N^par is fitted to c N^beta by least squares in log-log.
//!
//!     cargo run --release --example dicke_ferraro -- [N_MAX] [OUT.png]
//!
//! Default N_MAX = 16 and docs/dicke-ferraro.png (an .svg beside it). Runs on the structured
//! f64 CPU engine, dt = 0.02; n_fock = 2N + 8 (the Tavis-Cummings part conserves
//! a^+a + J_z + N/2 = N, so only the counter-rotating terms take the photon number beyond N;
//! fock_tail at t_max and its largest value over the run are printed for every N).

use plotters::prelude::*;
use qbat_gpu::config::{parse_plan, Overrides};
use qbat_gpu::measures::Measure;
use qbat_gpu::run::{run_plan, Backend, RunOptions};
use rayon::prelude::*;

/// (max power, time of the max, fock_tail at that time, largest fock_tail over the run) of the
/// N-cell battery with `photons` photons.
fn max_power(n: usize, photons: usize, g: f64) -> (f64, f64, f64, f64) {
    let t_end = 2.0 / g;
    let samples = 801;
    let cfg = format!(
        "model = \"dicke\"\n[params]\nn_cells = {n}\nn_fock = {}\nphotons = {photons}\nwc = 1.0\nwa = 1.0\ng = {g}\n[time]\ndt = 0.02\nt_end = {t_end}\nsamples = {samples}\n[output]\nmeasures = [\"energy_b\", \"power_b\", \"fock_tail\"]\n",
        2 * photons + 8
    );
    let plan = parse_plan(&cfg, &Overrides::default()).expect("valid config");
    let r = run_plan(&plan, &RunOptions { backend: Backend::Cpu, verify: 0, ..Default::default() }).expect("run");
    let tail = plan.measures.iter().position(|m| *m == Measure::FockTail).unwrap();
    let worst_tail = (0..samples).map(|s| r.value(0, s, tail)).fold(0.0, f64::max);
    // peaks: energy_b, ergotropy_b, power_b, ergotropic_power_b
    let (p, t) = (r.peaks[2].max, r.peaks[2].t_max);
    let s_max = r.times.iter().position(|&x| x == t).expect("t_max is a sample time");
    (p, t, r.value(0, s_max, tail), worst_tail)
}

/// Least-squares slope and intercept of ln y against ln x.
fn fit_power_law(pts: &[(f64, f64)]) -> (f64, f64) {
    let n = pts.len() as f64;
    let (lx, ly): (Vec<f64>, Vec<f64>) = pts.iter().map(|(x, y)| (x.ln(), y.ln())).unzip();
    let (mx, my) = (lx.iter().sum::<f64>() / n, ly.iter().sum::<f64>() / n);
    let sxy: f64 = lx.iter().zip(&ly).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = lx.iter().map(|x| (x - mx) * (x - mx)).sum();
    let beta = sxy / sxx;
    (beta, (my - beta * mx).exp())
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, plotters::coord::Shift>, series: &[(f64, Vec<(f64, f64)>, f64)], n_max: usize) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    let top = series.iter().flat_map(|(_, p, _)| p.iter().map(|q| q.1)).fold(1.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption("Dicke battery: collective advantage Gamma_N = P_N / (N P_1)", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.5f64..n_max as f64 + 0.5, 0.0f64..top)
        .map_err(e)?;
    chart.configure_mesh().x_desc("N (cells)").y_desc("Gamma_N").label_style(("sans-serif", 15)).draw().map_err(e)?;
    let colors = [BLUE, RED, GREEN];
    for (i, (g, pts, beta)) in series.iter().enumerate() {
        let col = colors[i % colors.len()];
        chart
            .draw_series(pts.iter().map(|&(x, y)| Circle::new((x, y), 4, col.filled())))
            .map_err(e)?
            .label(format!("g = {g}: fitted exponent beta = {beta:.3}"))
            .legend(move |(x, y)| Circle::new((x, y), 4, col.filled()));
        let (b, c) = fit_power_law(&pts[1..]);
        chart.draw_series(LineSeries::new((10..=n_max * 10).map(|k| k as f64 / 10.0).map(|x| (x, c * x.powf(b))), col.stroke_width(1))).map_err(e)?;
    }
    chart
        .draw_series(LineSeries::new((10..=n_max * 10).map(|k| k as f64 / 10.0).map(|x| (x, x.sqrt())), BLACK.stroke_width(1)))
        .map_err(e)?
        .label("sqrt(N)")
        .legend(|(x, y)| PathElement::new(vec![(x - 10, y), (x + 10, y)], BLACK));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(e)?;
    root.present().map_err(e)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n_max: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(16);
    let out = args.get(1).cloned().unwrap_or_else(|| "docs/dicke-ferraro.png".into());
    qbat_gpu::output::plots::ensure_font();
    let mut series = vec![];
    for g in [0.05, 0.2] {
        let (p1, t1, _, _) = max_power(1, 1, g);
        let rows: Vec<(usize, (f64, f64, f64, f64))> = (1..=n_max).into_par_iter().map(|n| (n, max_power(n, n, g))).collect();
        println!("g = {g}: P_1 = {p1:.6} at t = {t1:.3}");
        println!("{:>3} {:>12} {:>9} {:>12} {:>10} {:>13} {:>13}", "N", "P_N", "t_max", "N P_1", "Gamma_N", "tail at t_max", "largest tail");
        let mut pts = vec![];
        for (n, (p, t, tail_at, tail)) in rows {
            let gamma = p / (n as f64 * p1);
            println!("{n:>3} {p:>12.6} {t:>9.3} {:>12.6} {gamma:>10.4} {tail_at:>13.2e} {tail:>13.2e}", n as f64 * p1);
            pts.push((n as f64, gamma));
        }
        let (beta_all, _) = fit_power_law(&pts[1..]);
        let (beta_tail, _) = fit_power_law(&pts[pts.len() / 2..]);
        println!("g = {g}: Gamma_N ~ N^beta, beta = {beta_all:.4} (N = 2..{n_max}), {beta_tail:.4} (N = {}..{n_max})\n", pts.len() / 2 + 1);
        series.push((g, pts, beta_all));
    }
    let (w, h) = (900u32, 560u32);
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    draw(BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area(), &series, n_max).expect("png");
    let file = std::io::BufWriter::new(std::fs::File::create(&out).expect("create png"));
    let mut enc = png::Encoder::new(file, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header().and_then(|mut wr| wr.write_image_data(&rgb)).expect("write png");
    let svg = out.replace(".png", ".svg");
    let mut text = String::new();
    draw(SVGBackend::with_string(&mut text, (w, h)).into_drawing_area(), &series, n_max).expect("svg");
    std::fs::write(&svg, text).expect("write svg");
    println!("wrote {out} and {svg}");
}
