//! Axes that read: ranges padded relative to the data, tick labels with the digits their
//! spacing needs, and the legend put where the data are not.
//!
//! plotters' default tick text has one decimal, so an axis of purity near 1 read "1.0" at
//! every tick, one of trace_error (about 1e-16) "0.0", and zero could read "-0.0".

/// An axis' ends, (lo, hi).
pub type Span = (f64, f64);

/// The padded range of the finite values, for an axis of `plot`; None when there are none, or
/// when the range is too wide to draw (noted). The pad is 5% of the spread, at least 1e-12 of
/// the values' magnitude (plotters' ticks need a width their floats resolve); a constant
/// gets 5% of itself (1 around zero). An absolute floor of 1e-9 drew data of 1e-16 flat.
pub fn finite_range(plot: &str, vals: impl Iterator<Item = f64>) -> Option<Span> {
    // (values below 1e-300 count as 0: an axis of them could be scaled by no finite power
    // of ten, and one scaled by an infinite one hung plotters' ticks)
    let flushed = vals.filter(|v| v.is_finite()).map(|v| if v.abs() < 1e-300 { 0.0 } else { v });
    let (lo, hi) = flushed.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if lo > hi {
        return None;
    }
    let mag = lo.abs().max(hi.abs());
    let pad = if hi > lo {
        ((hi - lo) * 0.05).max(1e-12 * mag)
    } else if mag > 0.0 {
        0.05 * mag
    } else {
        1.0
    };
    // data near the largest floats is drawn unpadded
    let padded = (lo - pad, hi + pad);
    drawable(plot, if (padded.1 - padded.0).is_finite() { padded } else { (lo, hi.max(lo + pad)) })
}

/// An axis from `lo` to `hi`, opened a little past `lo` when it would be empty (one sample
/// time, one theta): by 1e-12, or relatively where that is below lo's resolution.
pub fn opened(lo: f64, hi: f64) -> Span {
    (lo, hi.max(lo + 1e-12f64.max(1e-12 * lo.abs())))
}

/// `range` when an axis can span it: finite ends, lo < hi, and a finite width hi - lo
/// (plotters cannot place ticks on a wider one). Otherwise None, and a note that `plot` is
/// not drawn.
pub fn drawable(plot: &str, range: Span) -> Option<Span> {
    let (lo, hi) = range;
    if lo < hi && (hi - lo).is_finite() {
        return Some(range);
    }
    eprintln!("note: {plot} not drawn: an axis from {lo:e} to {hi:e} cannot be drawn (its width is not a finite float)");
    None
}

/// How an axis' values are drawn: times `factor`, a power of ten that brings values below
/// 1e-3 or from 1e5 up to [1, 10), with `note` for its label ("" where they are not scaled).
/// plotters' ticks fall off round numbers on spans near f64::EPSILON (trace_error's 1e-16
/// got ticks at -2.2e-17, 2.8e-17, ... and stray grid lines over the caption).
pub struct Scale {
    pub factor: f64,
    pub note: String,
}

/// The `Scale` of an axis spanning `span`.
pub fn scale_of((lo, hi): Span) -> Scale {
    let mag = lo.abs().max(hi.abs());
    if mag == 0.0 || !mag.is_finite() || (1e-3..1e5).contains(&mag) {
        return Scale { factor: 1.0, note: String::new() };
    }
    let e = mag.log10().floor() as i32;
    let factor = 10f64.powi(-e);
    if !factor.is_finite() || factor == 0.0 {
        return Scale { factor: 1.0, note: String::new() };
    }
    Scale { factor, note: format!(" (x 1e{e})") }
}

impl Scale {
    /// The span as drawn.
    pub fn span(&self, (lo, hi): Span) -> Span {
        (lo * self.factor, hi * self.factor)
    }
}

/// The text of the tick at `v` on a linear axis spanning `span` (about ten ticks): as many
/// decimals as the ticks' spacing needs, in scientific notation where the values are below
/// 1e-3 or from 1e5 up, and zero written "0" (never "-0.0").
///
///   step ~ 10^floor(log10((hi - lo) / 10)),  decimals = -log10(step) (fixed)
///   or log10(|v|max) - log10(step) (the mantissa's, scientific)
pub fn tick_text(v: f64, (lo, hi): Span) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v.is_finite() { "0".into() } else { format!("{v}") };
    }
    let mag = lo.abs().max(hi.abs());
    let step = 10f64.powf((((hi - lo) / 10.0).abs().max(f64::MIN_POSITIVE)).log10().floor());
    // (a tick at zero computed as a rounding residue, far below the ticks' spacing)
    if v.abs() < 1e-6 * step {
        return "0".into();
    }
    let text = if !(1e-3..1e5).contains(&mag) {
        let digits = (mag.log10().floor() - step.log10().floor()).clamp(0.0, 17.0) as usize;
        format!("{v:.digits$e}")
    } else {
        let decimals = (-step.log10().floor()).clamp(0.0, 17.0) as usize;
        format!("{v:.decimals$}")
    };
    // a tick that rounds to zero reads "0", not "-0.00" or "0.00e0"
    match text.parse::<f64>() {
        Ok(x) if x == 0.0 => "0".into(),
        _ => text,
    }
}

/// The text of a tick of a logarithmic axis (at powers of ten and their multiples): the
/// shortest that reads back the value, in scientific notation below 1e-3 or from 1e5.
pub fn log_tick_text(v: f64) -> String {
    if v != 0.0 && !(1e-3..1e5).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// Pixels for the tick labels of an axis spanning `span`, at `font` px: the longest of its
/// end labels, about 0.6 em a character, and room for the axis' description beside them.
pub fn label_area(span: Span, font: u32) -> u32 {
    let chars = [span.0, span.1, (span.0 + span.1) / 2.0].iter().map(|&v| tick_text(v, span).chars().count()).max().unwrap_or(4) as u32;
    (chars * font * 6 / 10 + 2 * font + 8).max(60)
}

/// The fraction of a plot `plot_px` wide that a legend of `labels` at `font` px takes: about
/// 0.6 em a character, and the sample line and border.
pub fn legend_width<'a>(labels: impl Iterator<Item = &'a str>, font: u32, plot_px: u32) -> f64 {
    let chars = labels.map(|l| l.chars().count()).max().unwrap_or(0) as f64;
    ((chars * 0.6 * font as f64 + 40.0) / plot_px as f64).clamp(0.1, 0.9)
}

/// Where a legend of `entries` lines, `width` of the plot wide (`legend_width`), covers the
/// fewest of `points` (each in the axes' units, x in `xs`, y in `ys`): one of the four
/// corners, the upper ones first where tied. Its height is about `entries` x 7% (at least 15%).
pub fn legend_corner(points: impl Iterator<Item = (f64, f64)>, xs: Span, ys: Span, entries: usize, width: f64) -> plotters::prelude::SeriesLabelPosition {
    use plotters::prelude::SeriesLabelPosition as P;
    let (w, h) = (width, (0.07 * entries as f64).clamp(0.15, 0.9));
    let mut covered = [0usize; 4];
    for (x, y) in points {
        let (fx, fy) = ((x - xs.0) / (xs.1 - xs.0), (y - ys.0) / (ys.1 - ys.0));
        if !(fx.is_finite() && fy.is_finite()) {
            continue;
        }
        let (left, right, top, bottom) = (fx <= w, fx >= 1.0 - w, fy >= 1.0 - h, fy <= h);
        covered[0] += (top && right) as usize;
        covered[1] += (top && left) as usize;
        covered[2] += (bottom && right) as usize;
        covered[3] += (bottom && left) as usize;
    }
    let corners = [P::UpperRight, P::UpperLeft, P::LowerRight, P::LowerLeft];
    let best = (0..4).min_by_key(|&k| covered[k]).unwrap_or(0);
    corners[best].clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ticks read apart: purity drifting below 1 by 1e-9, trace_error near 1e-16, times, a
    /// zero tick, large rates.
    #[test]
    fn ticks_have_the_digits_their_spacing_needs() {
        let purity = (1.0 - 2.2e-9, 1.0 + 1e-10);
        assert_eq!(tick_text(1.0 - 1e-9, purity), "0.9999999990");
        assert_ne!(tick_text(1.0 - 1e-9, purity), tick_text(1.0 - 2e-9, purity));
        let trace = (-3.5e-17, 7.35e-16);
        assert_eq!(tick_text(7e-16, trace), "7.0e-16");
        assert_eq!(tick_text(0.0, trace), "0");
        assert_eq!(tick_text(-1e-30, trace), "0");
        assert_eq!(tick_text(20.0, (0.0, 50.0)), "20");
        assert_eq!(tick_text(0.2, (0.0, 1.0)), "0.2");
        assert_eq!(tick_text(0.05, (0.0, 0.5)), "0.05");
        assert_eq!(tick_text(-0.0, (-1.0, 1.0)), "0");
        assert_eq!(tick_text(-0.04, (-1.0, 1.0)), "0");
        assert_eq!(tick_text(2.5e7, (0.0, 5e7)), "2.5e7");
        assert_eq!(log_tick_text(1e7), "1e7");
        assert_eq!(log_tick_text(20.0), "20");
        assert!(label_area(purity, 15) > label_area((0.0, 1.0), 15));
        // tiny and huge values are drawn scaled to [1, 10), and said so
        let s = scale_of(trace);
        assert_eq!((s.factor, s.note.as_str()), (1e16, " (x 1e-16)"));
        let (a, b) = s.span(trace);
        assert!((a + 0.35).abs() < 1e-12 && (b - 7.35).abs() < 1e-12, "{a} {b}");
        assert_eq!(scale_of((0.0, 4.2e7)).note, " (x 1e7)");
        assert_eq!((scale_of((0.0, 1.0)).factor, scale_of((0.0, 0.0)).factor), (1.0, 1.0));
    }

    /// Data of 1e-16 get an axis of their own size, not one of 1e-9 that draws them flat; a
    /// constant, zero included, gets an axis around it.
    #[test]
    fn ranges_are_padded_relative_to_the_data() {
        // values of 1e-321 are drawn at 0, on an axis around it (scaled by 1e321, infinite,
        // the axis hung plotters)
        assert_eq!(finite_range("t", [0.0, 1.8e-321].into_iter()), Some((-1.0, 1.0)));
        assert_eq!(scale_of((-1e-305, 1e-305)).note, " (x 1e-305)");
        // ticks 2e-13 apart at 1 read apart
        let near_one = (1.0 - 1e-12, 1.0 + 1e-12);
        assert_ne!(tick_text(1.0 + 2e-13, near_one), tick_text(1.0, near_one));
        let (lo, hi) = finite_range("t", [0.0, 7e-16].into_iter()).unwrap();
        assert!(hi - lo < 1e-15 && lo < 0.0 && hi > 7e-16, "{lo:e}..{hi:e}");
        assert_eq!(finite_range("t", [0.0, 0.0].into_iter()), Some((-1.0, 1.0)));
        let (lo, hi) = finite_range("t", [2.0, 2.0].into_iter()).unwrap();
        assert!((lo - 1.9).abs() < 1e-12 && (hi - 2.1).abs() < 1e-12);
        let (lo, hi) = finite_range("t", [1.0, 1.0 + 4.0 * f64::EPSILON].into_iter()).unwrap();
        assert!(hi - lo >= 2e-12, "{}", hi - lo);
        assert_eq!(finite_range("t", [f64::NAN].into_iter()), None);
    }

    /// The legend goes to the corner the curves leave free.
    #[test]
    fn the_legend_goes_where_the_data_are_not() {
        use plotters::prelude::SeriesLabelPosition as P;
        let rising = (0..100).map(|i| (i as f64, i as f64));
        assert!(matches!(legend_corner(rising, (0.0, 99.0), (0.0, 99.0), 2, 0.35), P::UpperLeft));
        let high = (0..100).map(|i| (i as f64, 90.0 + (i % 3) as f64));
        assert!(matches!(legend_corner(high, (0.0, 99.0), (0.0, 99.0), 2, 0.35), P::LowerRight));
        // a hump in the middle: a legend 60% wide covers it from either upper corner
        let hump = (0..100).map(|i| (i as f64, 99.0 - ((i as f64 - 50.0) / 5.0).powi(2).min(99.0)));
        assert!(matches!(legend_corner(hump, (0.0, 99.0), (0.0, 99.0), 2, 0.6), P::LowerRight | P::LowerLeft));
        assert!(legend_width(["a much longer legend label than the other"].into_iter(), 15, 800) > legend_width(["mean"].into_iter(), 15, 800));
    }
}
