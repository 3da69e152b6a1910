//! A battery qubit charged by a gaussian pulse (examples/drive-pulse.toml): energy_b and
//! ergotropy_b against time for pulse areas pi/2, pi, 3 pi/2 and 2 pi, with the pi pulse's
//! maximum marked.
//!
//!     cargo run --release --example drive_pulse -- [CONFIG] [OUT.png]
//!
//! Default examples/drive-pulse.toml and docs/drive-pulse.png (an .svg beside it). Runs on the
//! f64 CPU engine.

use plotters::prelude::*;
use qbat_gpu::config::{parse_plan, Overrides};
use qbat_gpu::measures::Measure;
use qbat_gpu::run::{run_plan, Backend, RunOptions};

/// (label, energy_b(t), ergotropy_b(t)) per member.
type Curves = Vec<(String, Vec<(f64, f64)>, Vec<(f64, f64)>)>;

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, plotters::coord::Shift>, curves: &Curves, t_end: f64, pi_peak: (f64, f64)) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Gaussian-pulse charging of a battery qubit (solid: energy_b, dark dashes: ergotropy_b)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0f64..t_end, -0.02f64..1.12)
        .map_err(e)?;
    chart.configure_mesh().x_desc("t (1/wb)").y_desc("energy / wb").label_style(("sans-serif", 15)).draw().map_err(e)?;
    let colors = [BLUE, RED, GREEN, MAGENTA];
    for (i, (label, energy, ergo)) in curves.iter().enumerate() {
        let col = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(energy.iter().copied(), col.stroke_width(3)))
            .map_err(e)?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x - 10, y), (x + 10, y)], col.stroke_width(2)));
        // Dashed: every other short segment of the ergotropy curve, in a darker shade, so that
        // it shows where it equals the energy (a pure state; in the line's own colour it was
        // hidden under it).
        let dark = RGBColor(col.0 / 2, col.1 / 2, col.2 / 2);
        chart
            .draw_series(ergo.windows(2).enumerate().filter(|(k, _)| (k / 12) % 2 == 0).map(|(_, w)| PathElement::new(vec![w[0], w[1]], dark.stroke_width(1))))
            .map_err(e)?;
    }
    chart.draw_series(std::iter::once(Circle::new(pi_peak, 6, BLACK.stroke_width(2)))).map_err(e)?;
    // The label ends left of the marker, so that it stays inside the plot wherever the peak is.
    let label = format!("pi pulse: max energy_b = {:.4} at t = {:.1}", pi_peak.1, pi_peak.0);
    let style = TextStyle::from(("sans-serif", 15).into_font())
        .pos(plotters::style::text_anchor::Pos::new(plotters::style::text_anchor::HPos::Right, plotters::style::text_anchor::VPos::Bottom));
    chart.draw_series(std::iter::once(Text::new(label, (pi_peak.0 - 0.8, pi_peak.1 + 0.03), style))).map_err(e)?;
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
    let cfg = args.first().cloned().unwrap_or_else(|| "examples/drive-pulse.toml".into());
    let out = args.get(1).cloned().unwrap_or_else(|| "docs/drive-pulse.png".into());
    qbat_gpu::output::plots::ensure_font();
    let text = std::fs::read_to_string(&cfg).expect("read the config");
    let plan = parse_plan(&text, &Overrides::default()).expect("valid config");
    let r = run_plan(&plan, &RunOptions { backend: Backend::Cpu, verify: 4, ..Default::default() }).expect("run");
    let ke = r.measures.iter().position(|m| *m == Measure::EnergyB).expect("energy_b");
    let kw = r.measures.iter().position(|m| *m == Measure::ErgotropyB).expect("ergotropy_b");
    let names = ["pi/2", "pi", "3 pi/2", "2 pi"];
    let mut curves: Curves = vec![];
    let mut pi_peak = (0.0, 0.0);
    for (i, m) in plan.members.iter().enumerate() {
        let d = &plan.drives[m.point][0];
        let sigma = match d.envelope {
            qbat_gpu::model::drive::Envelope::Gaussian { sigma, .. } => sigma,
            _ => 0.0,
        };
        let area = d.amplitude * sigma * (2.0 * std::f64::consts::PI).sqrt();
        let label = format!("area {} (A = {:.4})", names.get(i).copied().unwrap_or("?"), d.amplitude);
        let energy: Vec<(f64, f64)> = r.times.iter().enumerate().map(|(s, &t)| (t, r.value(i, s, ke))).collect();
        let ergo: Vec<(f64, f64)> = r.times.iter().enumerate().map(|(s, &t)| (t, r.value(i, s, kw))).collect();
        let peak = r.peaks[4 * i];
        println!(
            "area {area:.4} (A = {:.5}): max energy_b {:.6} at t = {:.2}, final energy_b {:.6}, final ergotropy_b {:.6}",
            d.amplitude,
            peak.max,
            peak.t_max,
            energy.last().unwrap().1,
            ergo.last().unwrap().1
        );
        if (area - std::f64::consts::PI).abs() < 1e-9 {
            pi_peak = (peak.t_max, peak.max);
        }
        curves.push((label, energy, ergo));
    }
    if let Some(v) = &r.verify {
        println!("verify: {v:?}");
    }
    let t_end = *r.times.last().unwrap();
    let (w, h) = (900u32, 560u32);
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    draw(BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area(), &curves, t_end, pi_peak).expect("png");
    let file = std::io::BufWriter::new(std::fs::File::create(&out).expect("create png"));
    let mut enc = png::Encoder::new(file, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header().and_then(|mut wr| wr.write_image_data(&rgb)).expect("write png");
    let svg = out.replace(".png", ".svg");
    let mut text = String::new();
    draw(SVGBackend::with_string(&mut text, (w, h)).into_drawing_area(), &curves, t_end, pi_peak).expect("svg");
    std::fs::write(&svg, text).expect("write svg");
    println!("wrote {out} and {svg}");
}
