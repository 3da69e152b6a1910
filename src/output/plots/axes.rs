//! Axes that read: ranges padded relative to the data, tick labels with the digits their
//! spacing needs, and a log axis for values spanning many decades (`y_axis`).
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

/// A panel's y axis: linear, its values drawn times a power of ten (`Scale`), or
/// logarithmic, for values >= 0 spanning many decades (`y_axis`).
#[derive(Clone, Debug, PartialEq)]
pub struct YAxis {
    pub log: bool,
    /// The values are drawn times this, a power of ten: on a log axis 10^-top, so that the
    /// drawn top is 1 (plotters puts no tick below f64::EPSILON, which fock_tail reaches).
    pub factor: f64,
    /// The axis' ends, as drawn.
    pub span: Span,
    /// Log axis only: drawn values below this (zeros, rounding residues below 0, values more
    /// than `LOG_MOST_DECADES` below the top) are drawn at it; -inf on a linear axis.
    pub floor: f64,
    /// The top's exponent on a log axis (the tick labels' shift), 0 on a linear one.
    top: i32,
    /// For the axis' label: " (x 1e-16)" (`Scale`), or on a log axis, where some values
    /// are drawn at the floor, " (values below 1e-13 drawn at 1e-13)"; "" otherwise.
    pub note: String,
}

/// A log axis is drawn where at least a quarter of a panel's positive values lie more than
/// this many decades below the largest: fock_tail decaying from 1e-2 to 1e-16 sat flat at 0
/// on a linear axis. A quartile, not the smallest value: energy_b rising from 0 has a few
/// values of 1e-5 in its first samples, and reads on a linear axis.
const LOG_DECADES: f64 = 3.0;

/// The most decades a log axis spans: values further below its top are drawn at its floor
/// (a double holds about 16 digits; below, a value is rounding noise beside the top's).
const LOG_MOST_DECADES: i32 = 15;

/// Negative values up to this fraction of the largest value count as rounding around 0 of a
/// measure >= 0 (a population's -1e-19): they allow a log axis and are drawn at its floor.
/// A larger one is a signed measure's (power_b, min_eigenvalue), which stays linear.
const LOG_NEGATIVE_NOISE: f64 = 1e-6;

/// The y axis of `plot` over `vals`: logarithmic where `LOG_DECADES` says so, linear
/// (`finite_range`, `scale_of`) otherwise; None where there is no finite value or no axis
/// can be drawn (noted).
pub fn y_axis(plot: &str, vals: impl Iterator<Item = f64>) -> Option<YAxis> {
    let finite: Vec<f64> = vals.filter(|v| v.is_finite()).collect();
    if let Some(log) = log_axis(&finite) {
        return Some(log);
    }
    finite_range(plot, finite.into_iter()).map(YAxis::linear)
}

/// The log axis of `finite` values, or None where a linear one reads (`y_axis`). Its ends are
/// whole decades, at least 5% of its decades past the data; the floor a quarter decade above
/// its bottom, so that the values drawn at it show above the frame.
fn log_axis(finite: &[f64]) -> Option<YAxis> {
    let mut pos: Vec<f64> = finite.iter().copied().filter(|&v| v > 0.0).collect();
    let top = pos.iter().copied().fold(0.0, f64::max);
    // (within 1e280 of 1: the factor 10^-top stays a finite double)
    if pos.is_empty() || !(1e-280..1e280).contains(&top) || finite.iter().any(|&v| v < -LOG_NEGATIVE_NOISE * top) {
        return None;
    }
    let k = pos.len() / 4;
    let quartile = *pos.select_nth_unstable_by(k, f64::total_cmp).1;
    if quartile >= top * 10f64.powf(-LOG_DECADES) {
        return None;
    }
    let low = pos[..=k].iter().copied().fold(f64::INFINITY, f64::min);
    let (lo_e, hi_e) = (low.log10(), top.log10());
    let pad = 0.05 * (hi_e - lo_e);
    let t = (hi_e + pad).ceil() as i32;
    let b = ((lo_e - pad).floor() as i32).max(t - LOG_MOST_DECADES);
    let floor = 10f64.powi(b - t);
    let floor_real = decimal(1.0, b);
    let note = if finite.iter().any(|&v| v < floor_real) {
        let f = log_tick_text(floor_real);
        format!(" (values below {f} drawn at {f})")
    } else {
        String::new()
    };
    Some(YAxis { log: true, factor: 10f64.powi(-t), span: (floor * 10f64.powf(-0.25), 1.0), floor, top: t, note })
}

/// m x 10^e as the double nearest the decimal (10f64.powi(-13) is not the double of 1e-13).
fn decimal(m: f64, e: i32) -> f64 {
    format!("{m}e{e}").parse().unwrap_or(f64::NAN)
}

impl YAxis {
    /// A linear axis over `span`, its values scaled (`scale_of`).
    pub fn linear(span: Span) -> YAxis {
        let sc = scale_of(span);
        YAxis { log: false, factor: sc.factor, span: sc.span(span), floor: f64::NEG_INFINITY, top: 0, note: sc.note }
    }

    /// A linear axis over `span` as it is, unscaled (values the caller drew scaled, or
    /// parameters).
    pub fn plain(span: Span) -> YAxis {
        YAxis { log: false, factor: 1.0, span, floor: f64::NEG_INFINITY, top: 0, note: String::new() }
    }

    /// The value `v` as drawn: scaled, and on a log axis raised to the floor (NaN stays NaN).
    pub fn drawn(&self, v: f64) -> f64 {
        let d = v * self.factor;
        if self.log && d < self.floor {
            self.floor
        } else {
            d
        }
    }

    /// A drawn value as a fraction-ready linear coordinate: log10 of it on a log axis (for
    /// `freest_corner`, which places by linear fractions of the span).
    pub fn linearized(&self, drawn: f64) -> f64 {
        if self.log {
            drawn.log10()
        } else {
            drawn
        }
    }

    /// The span in `linearized` coordinates.
    pub fn linear_span(&self) -> Span {
        (self.linearized(self.span.0), self.linearized(self.span.1))
    }

    /// The text of the tick at the drawn value `v`: `tick_text` on a linear axis; on a log
    /// one, `log_tick_text` of the value it stands for (10^k drawn is 10^(k + top)).
    pub fn tick(&self, v: f64) -> String {
        if !self.log {
            return tick_text(v, self.span);
        }
        let text = format!("{v:.3e}");
        match text.split_once('e').map(|(m, e)| (m.parse::<f64>(), e.parse::<i32>())) {
            Some((Ok(m), Ok(e))) => log_tick_text(decimal(m, e + self.top)),
            _ => text,
        }
    }

    /// Pixels for the tick labels, at `font` px (`label_area`).
    pub fn label_area(&self, font: u32) -> u32 {
        if !self.log {
            return label_area(self.span, font);
        }
        let chars = [self.floor, self.span.1].iter().map(|&v| self.tick(v).chars().count()).max().unwrap_or(5) as u32;
        (chars * font * 6 / 10 + 2 * font + 8).max(60)
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
        Ok(0.0) => "0".into(),
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
}
