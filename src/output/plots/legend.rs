//! Where a plot's legend goes: in a corner of the plot area that no curve passes through,
//! where it has a few entries and there is one (`freest_corner`); else in a margin right of
//! the plot area (`legend_place`): the cavity plot's twelve entries covered its curves from
//! any corner, and four of them covered a peak of paper 003's concurrence.

use super::axes::Span;
use super::{s, DrawResult};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Legends of more entries than this go right of the plot area; smaller ones in its freest
/// corner, where they may cover a few points.
pub const INSIDE_MOST: usize = 4;

/// Pixels between the plot area's right edge and a legend right of it, and after the legend.
pub const LEGEND_GAP: u32 = 12;

/// plotters' legend box: 10 px of margin round its text, 30 px for the marks
/// (`SeriesLabelStyle`'s defaults), and lines 1.25 of the font apart (`MultiLineText`).
const BOX_MARGIN: u32 = 10;
const MARK_WIDTH: u32 = 30;
const LINE_HEIGHT: f64 = 1.25;

/// A pixel rectangle, (x0, y0, x1, y1), the ends exclusive.
pub type PxRect = (i32, i32, i32, i32);

/// Where a chart's legend goes: `margin` px reserved right of the plot area for it (0: it
/// goes inside, in `corner`), of a box `size` px (width, height).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LegendPlace {
    pub margin: u32,
    pub size: (u32, u32),
    /// The corner inside (`freest_corner`'s order: upper right, upper left, lower right, lower
    /// left) where it goes inside.
    pub corner: usize,
}

impl LegendPlace {
    /// Whether the legend goes right of the plot area.
    pub fn outside(&self) -> bool {
        self.margin > 0
    }

    /// The same legend moved right of the plot area.
    pub fn moved_outside(self) -> LegendPlace {
        LegendPlace { margin: self.size.0 + 2 * LEGEND_GAP, ..self }
    }

    /// Its corner inside, as plotters names it.
    pub fn corner_position(&self) -> plotters::prelude::SeriesLabelPosition {
        corner_position(self.corner)
    }

    /// The legend's box, in the pixels `plot` (the plot area) is in, where it goes outside:
    /// `LEGEND_GAP` right of the plot area, its top at the area's (one taller than the area
    /// runs on below it, still beside no data). None where it goes inside.
    pub fn outside_box(&self, plot: PxRect) -> Option<PxRect> {
        let (w, h) = (self.size.0 as i32, self.size.1 as i32);
        let x0 = plot.2 + LEGEND_GAP as i32;
        self.outside().then_some((x0, plot.1, x0 + w, plot.1 + h))
    }
}

/// The place of a legend of `labels`, each drawn `label_px(label)` px wide at `font` px.
pub fn legend_place<'a>(labels: impl ExactSizeIterator<Item = &'a str>, font: u32, label_px: impl Fn(&str) -> u32) -> LegendPlace {
    let entries = labels.len();
    let widest = labels.map(label_px).max().unwrap_or(0);
    let size = (widest + MARK_WIDTH + 2 * BOX_MARGIN, (entries as f64 * LINE_HEIGHT * font as f64).ceil() as u32 + 2 * BOX_MARGIN);
    let inside = LegendPlace { margin: 0, size, corner: 0 };
    if entries > INSIDE_MOST {
        inside.moved_outside()
    } else {
        inside
    }
}

/// Draw the legend of `entries` (label, colour, line width) at `font` px beside the plot
/// area `plot` (in `panel`'s pixels), where `place` puts it outside (`outside_box`), as
/// plotters draws its own: a box, and a line of each entry's colour before its label.
pub fn draw_legend_beside<DB: DrawingBackend>(
    panel: &DrawingArea<DB, Shift>,
    place: LegendPlace,
    plot: PxRect,
    entries: &[(&str, RGBColor, u32)],
    font: u32,
) -> DrawResult {
    let Some((x0, y0, x1, y1)) = place.outside_box(plot) else {
        return Ok(());
    };
    panel.draw(&Rectangle::new([(x0, y0), (x1, y1)], WHITE.mix(0.85).filled())).map_err(s)?;
    panel.draw(&Rectangle::new([(x0, y0), (x1, y1)], BLACK)).map_err(s)?;
    let (pad, line) = (BOX_MARGIN as i32, LINE_HEIGHT * font as f64);
    for (i, &(label, c, w)) in entries.iter().enumerate() {
        let top = y0 + pad + (i as f64 * line).round() as i32;
        let mid = top + (line / 2.0).round() as i32;
        panel.draw(&PathElement::new(vec![(x0 + pad, mid), (x0 + pad + 18, mid)], c.stroke_width(w))).map_err(s)?;
        let style = TextStyle::from(("sans-serif", font).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        panel.draw(&Text::new(label, (x0 + pad + MARK_WIDTH as i32, mid), style)).map_err(s)?;
    }
    Ok(())
}

/// The width in pixels of `label` drawn at `font` px in the plots' font (as plotters
/// measures it for the legend box); about 0.6 em a character where the font cannot say.
pub fn label_px(label: &str, font: u32) -> u32 {
    ("sans-serif", font).into_font().box_size(label).map(|(w, _)| w).unwrap_or((label.chars().count() as f64 * 0.6 * font as f64).ceil() as u32)
}

/// Corner `k` of `freest_corner`'s order, as plotters names it.
fn corner_position(k: usize) -> plotters::prelude::SeriesLabelPosition {
    use plotters::prelude::SeriesLabelPosition as P;
    [P::UpperRight, P::UpperLeft, P::LowerRight, P::LowerLeft][k.min(3)].clone()
}

/// The corner (0 to 3, upper right, upper left, lower right, lower left) that covers the fewest
/// of `points` (each in the axes' units, x in `xs`, y in `ys`), the upper ones first where tied, for a
/// box `box_fraction` of the plot area (width, height), and how many of `points` it covers.
pub fn freest_corner(points: impl Iterator<Item = (f64, f64)>, xs: Span, ys: Span, box_fraction: (f64, f64)) -> (usize, usize) {
    let (w, h) = box_fraction;
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
    let best = (0..4).min_by_key(|&k| covered[k]).unwrap_or(0);
    (best, covered[best])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The legend goes to the corner the curves leave free, and says how much it covers where
    /// none is free.
    #[test]
    fn the_legend_goes_where_the_data_are_not() {
        let legend = (0.35, 0.15);
        let rising = (0..100).map(|i| (i as f64, i as f64));
        assert_eq!(freest_corner(rising, (0.0, 99.0), (0.0, 99.0), legend), (1, 0));
        let high = (0..100).map(|i| (i as f64, 90.0 + (i % 3) as f64));
        assert_eq!(freest_corner(high, (0.0, 99.0), (0.0, 99.0), legend), (2, 0));
        // a hump in the middle: a legend 60% wide covers its top from either upper corner, and
        // only its feet from a lower one
        let hump = || (0..100).map(|i| (i as f64, 99.0 - ((i as f64 - 50.0) / 5.0).powi(2).min(99.0)));
        let (corner, covered) = freest_corner(hump(), (0.0, 99.0), (0.0, 99.0), (0.6, 0.15));
        let top = hump().filter(|&(x, y)| (40.0..=59.4).contains(&x) && y >= 84.15).count();
        assert!(corner >= 2 && covered < top, "{corner} {covered} {top}");
        // a band over the whole area: every corner covers some of it
        let band = (0..100).flat_map(|i| (0..=10).map(move |k| (i as f64, 9.9 * k as f64)));
        assert!(freest_corner(band, (0.0, 99.0), (0.0, 99.0), legend).1 > 0);
    }

    /// A legend of twelve entries goes right of the plot area, in a margin wide enough for it:
    /// its box meets neither the plot area nor the panel's right edge. Two entries go inside.
    #[test]
    fn a_long_legend_goes_beside_the_plot_area() {
        let labels: Vec<String> = (0..12).map(|i| format!("zeta = {}, lambda = {}", i % 2, 0.5 * i as f64)).collect();
        // 0.6 em a character, as the font would (the layout is the same for any widths)
        let px = |l: &str| (l.chars().count() as f64 * 0.6 * 13.0) as u32;
        let place = legend_place(labels.iter().map(String::as_str), 13, px);
        assert!(place.outside());
        let widest = labels.iter().map(|l| px(l)).max().unwrap();
        assert!(place.size.0 > widest && place.size.1 >= 12 * 13, "{place:?}");
        // a 900 x 380 panel: margins of 14, 60 px of y labels, the caption and x labels
        let (panel_w, panel_h) = (900, 380);
        let plot = (14 + 60, 40, panel_w - 14 - place.margin as i32, panel_h - 14 - 44);
        let b = place.outside_box(plot).unwrap();
        let apart = b.0 >= plot.2 || b.2 <= plot.0 || b.1 >= plot.3 || b.3 <= plot.1;
        assert!(apart, "legend {b:?} over the plot area {plot:?}");
        assert!(b.2 <= panel_w && b.3 <= panel_h, "legend {b:?} past the panel");
        let two = legend_place(labels[..2].iter().map(String::as_str), 13, px);
        assert!(!two.outside() && two.outside_box(plot).is_none());
    }
}
