//! The pictures a run leaves beside its saved model, as PNG and SVG.
//!
//! - `loss.png` / `loss.svg`: training loss and accuracy over the steps (the
//!   step rows of `metrics.csv`: means over the steps since the previous row)
//!   with the test loss and accuracy after each epoch.
//! - `grads.png` / `grads.svg`: per layer, over the steps, on log scales:
//!   ‖∂C/∂W‖, ‖δ‖ and the update/weight ratio (with the rule-of-thumb 1e-3
//!   dashed), and the share of dead ReLU / saturated sigmoid and tanh units.
//!   Layers are coloured from dark (first) to light (last), so a vanishing
//!   gradient shows as a fan of lines ordered by depth.
//!
//! Drawn with `plotters` and an embedded DejaVu Sans font
//! (`assets/DejaVuSans.ttf`, its licence beside it), so no system font or
//! graphics library is needed. PNGs are encoded with the `png` crate.
//! [`Figure`] is public so that examples can draw their own comparisons.

use super::metrics::{num, Recorder, RowKind};
use crate::inspect::diagnostics::Stat;
use crate::{Error, Result};
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            // The font is embedded and known to parse; a failure would only
            // mean text-less plots, never a failed run.
            let _ = plotters::style::register_font("sans-serif", style, FONT);
        }
    });
}

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// A plain solid line.
    Line,
    /// A line with a dot at every point (few points: per-epoch values).
    Markers,
    /// A dashed reference line.
    Dashed,
}

/// One line of a panel.
#[derive(Clone, Debug)]
pub struct Series {
    /// The series' name in the legend.
    pub label: String,
    /// The line's colour.
    pub color: RGBColor,
    /// The `(x, y)` points, in data units.
    pub points: Vec<(f64, f64)>,
    /// How the series is drawn.
    pub style: Style,
}

/// One chart of a figure.
#[derive(Clone)]
pub struct Panel {
    /// The chart's caption.
    pub title: String,
    /// The y axis' name.
    pub y_label: String,
    /// Log scale on y (points ≤ 0 or not finite are left out).
    pub log_y: bool,
    /// Fixed y range (in data units), else fitted to the points.
    pub y_range: Option<(f64, f64)>,
    /// The lines drawn, in order.
    pub series: Vec<Series>,
    /// Shown when the panel has nothing to draw.
    pub empty_note: String,
    /// Where the panel's legend goes (when the figure has no side legend).
    pub legend_at: SeriesLabelPosition,
    /// The x axis' name, if not the figure's.
    pub x_label: Option<String>,
}

impl Default for Panel {
    fn default() -> Panel {
        Panel {
            title: String::new(),
            y_label: String::new(),
            log_y: false,
            y_range: None,
            series: Vec::new(),
            empty_note: String::new(),
            legend_at: SeriesLabelPosition::UpperRight,
            x_label: None,
        }
    }
}

/// A titled grid of panels (each with its own x range) and their legends.
#[derive(Clone)]
pub struct Figure {
    /// The title above all panels.
    pub title: String,
    /// The x axis' name, for panels that do not name their own.
    pub x_label: String,
    /// The charts, laid out row by row.
    pub panels: Vec<Panel>,
    /// Panels per row.
    pub cols: usize,
    /// Size of the picture in pixels.
    pub size: (u32, u32),
    /// Draw one legend at the right of the figure (for many series shared by
    /// all panels) instead of one inside each panel.
    pub side_legend: bool,
}

/// Blue and orange: train and test.
pub const TRAIN: RGBColor = RGBColor(31, 119, 180);
/// Orange: the colour of test series.
pub const TEST: RGBColor = RGBColor(255, 127, 14);

/// The colour of series `i` of `n` ordered ones (e.g. layers by depth): from
/// dark blue through purple to orange ("plasma").
pub fn ordered_color(i: usize, n: usize) -> RGBColor {
    const STOPS: [(u8, u8, u8); 5] = [
        (13, 8, 135),
        (106, 0, 168),
        (177, 42, 144),
        (225, 100, 98),
        (245, 150, 40),
    ];
    let t = if n <= 1 {
        0.0
    } else {
        i as f64 / (n - 1) as f64
    };
    let x = t * (STOPS.len() - 1) as f64;
    let k = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - k as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (STOPS[k], STOPS[k + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Figure {
    /// The figure as an SVG document.
    pub fn svg(&self) -> Result<String> {
        register_font();
        let mut s = String::new();
        {
            let root = SVGBackend::with_string(&mut s, self.size).into_drawing_area();
            self.draw(&root).map_err(plot_error)?;
            root.present().map_err(|e| plot_error(err(e)))?;
        }
        Ok(s)
    }

    /// The figure as a PNG file's bytes.
    pub fn png(&self) -> Result<Vec<u8>> {
        register_font();
        let (w, h) = self.size;
        let mut buf = vec![255u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, self.size).into_drawing_area();
            self.draw(&root).map_err(plot_error)?;
            root.present().map_err(|e| plot_error(err(e)))?;
        }
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().map_err(|e| plot_error(err(e)))?;
        wr.write_image_data(&buf).map_err(|e| plot_error(err(e)))?;
        wr.finish().map_err(|e| plot_error(err(e)))?;
        Ok(out)
    }

    /// Write `{stem}.png` and `{stem}.svg`; returns their paths.
    pub fn write(&self, stem: &Path) -> Result<Vec<PathBuf>> {
        let png_path = with_suffix(stem, ".png");
        let svg_path = with_suffix(stem, ".svg");
        crate::io::write_atomic(&png_path, &self.png()?)?;
        crate::io::write_atomic(&svg_path, self.svg()?.as_bytes())?;
        Ok(vec![png_path, svg_path])
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let root = root
            .titled(
                &self.title,
                ("sans-serif", 20).into_font().style(FontStyle::Bold),
            )
            .map_err(err)?;
        let (plots, legend) = if self.side_legend {
            let w = root.dim_in_pixel().0;
            let (a, b) = root.split_horizontally(w.saturating_sub(230));
            (a, Some(b))
        } else {
            (root.clone(), None)
        };
        let cols = self.cols.max(1);
        let rows = self.panels.len().div_ceil(cols);
        let areas = plots.split_evenly((rows, cols));
        for (p, area) in self.panels.iter().zip(&areas) {
            let x_label = p.x_label.as_deref().unwrap_or(&self.x_label);
            draw_panel(area, p, x_label, x_range(p), !self.side_legend)?;
        }
        if let Some(area) = legend {
            // Every distinct (label, colour) once, in order.
            let mut seen: Vec<(&str, RGBColor, Style)> = Vec::new();
            for s in self.panels.iter().flat_map(|p| &p.series) {
                if !seen.iter().any(|(l, _, _)| *l == s.label) {
                    seen.push((&s.label, s.color, s.style));
                }
            }
            let h = area.dim_in_pixel().1 as i32;
            let step = ((h - 80) / seen.len().max(1) as i32).clamp(8, 22);
            let style = ("sans-serif", (step - 6).clamp(8, 14)).into_font();
            for (i, (label, color, st)) in seen.iter().enumerate() {
                let y = 60 + step * i as i32;
                let line = if *st == Style::Dashed { 8 } else { 24 };
                area.draw(&PathElement::new(
                    vec![(10, y), (10 + line, y)],
                    color.stroke_width(3),
                ))
                .map_err(err)?;
                area.draw(&Text::new(label.to_string(), (42, y - 8), style.clone()))
                    .map_err(err)?;
            }
        }
        Ok(())
    }
}

/// A model line cut to fit a title.
pub(crate) fn short(model: &str) -> String {
    const MAX: usize = 110;
    if model.chars().count() <= MAX {
        return model.to_string();
    }
    // Cut after the last whole item (a comma outside parentheses).
    let (mut depth, mut end, mut items) = (0i32, 0, 1);
    for (i, c) in model.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                items += 1;
                if i <= MAX {
                    end = i;
                }
            }
            _ => {}
        }
    }
    format!("{},… ({items} layers)", &model[..end])
}

/// The x range of a panel's points.
fn x_range(p: &Panel) -> (f64, f64) {
    let (x0, x1) = p
        .series
        .iter()
        .flat_map(|s| &s.points)
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &(x, _)| {
            (a.min(x), b.max(x))
        });
    if x0 > x1 {
        (0.0, 1.0)
    } else if x0 == x1 {
        (x0 - 1.0, x1 + 1.0)
    } else {
        (x0, x1)
    }
}

fn plot_error(msg: String) -> Error {
    Error::Config(format!("drawing a plot: {msg}"))
}

/// `runs/x` + `.png` → `runs/x.png` (keeps dots already in the name).
pub(crate) fn with_suffix(stem: &Path, suffix: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Tick labels of a log axis: `0.01`, `0.2`, `30`, `1e-5`, `2e6`.
fn log_label(v: &f64) -> String {
    let a = v.abs();
    if a == 0.0 || (1e-3..1e4).contains(&a) {
        return num(*v);
    }
    let e = a.log10().floor();
    let m = (v / 10f64.powf(e) * 10.0).round() / 10.0;
    format!("{}e{}", num(m), e as i32)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &Panel,
    x_label: &str,
    (x0, x1): (f64, f64),
    legend: bool,
) -> Result<(), String> {
    let series: Vec<(&Series, Vec<(f64, f64)>)> = p
        .series
        .iter()
        .map(|s| {
            let pts = s
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite() && (!p.log_y || *y > 0.0))
                .collect();
            (s, pts)
        })
        .collect();
    let (mut lo, mut hi) = series
        .iter()
        .flat_map(|(_, v)| v)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &(_, y)| {
            (a.min(y), b.max(y))
        });
    if let Some(r) = p.y_range {
        (lo, hi) = r;
    } else if lo <= hi && p.log_y {
        // Whole decades: every log axis then has labelled powers of ten.
        let (a, mut b) = (lo.log10().floor(), hi.log10().ceil());
        if a == b {
            b += 1.0;
        }
        // A hair wider, so that rounding keeps both end decades on the axis.
        (lo, hi) = (10f64.powf(a) * (1.0 - 1e-9), 10f64.powf(b) * (1.0 + 1e-9));
    } else if lo <= hi {
        let pad = ((hi - lo) * 0.05).max(1e-3);
        (lo, hi) = (lo - pad, hi + pad);
    }
    let title = ("sans-serif", 16).into_font();
    if lo.partial_cmp(&hi) != Some(std::cmp::Ordering::Less) {
        let note = if p.empty_note.is_empty() {
            "nothing to show"
        } else {
            &p.empty_note
        };
        area.draw(&Text::new(p.title.clone(), (20, 10), title))
            .map_err(err)?;
        area.draw(&Text::new(
            note.to_string(),
            (20, 40),
            ("sans-serif", 14).into_font(),
        ))
        .map_err(err)?;
        return Ok(());
    }
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(&p.title, title)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70);
    if p.log_y {
        let chart = builder
            .build_cartesian_2d(x0..x1, (lo..hi).log_scale())
            .map_err(err)?;
        fill_chart(chart, p, &series, x_label, legend, log_label)
    } else {
        let chart = builder.build_cartesian_2d(x0..x1, lo..hi).map_err(err)?;
        fill_chart(chart, p, &series, x_label, legend, |v: &f64| num(*v))
    }
}

/// Mesh, series and legend of a panel, for a linear or a log y axis.
fn fill_chart<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64> + ValueFormatter<f64>>(
    mut chart: ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    p: &Panel,
    series: &[(&Series, Vec<(f64, f64)>)],
    x_label: &str,
    legend: bool,
    ylab: impl Fn(&f64) -> String,
) -> Result<(), String> {
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(&p.y_label)
        .x_label_formatter(&|v| num(*v))
        .y_label_formatter(&ylab)
        .label_style(("sans-serif", 13))
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(205, 205, 205))
        .draw()
        .map_err(err)?;
    for (s, pts) in series {
        let c = s.color;
        let drawn = match s.style {
            Style::Line => chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                .map_err(err)?,
            Style::Markers => {
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
                    .map_err(err)?;
                chart
                    .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                    .map_err(err)?
            }
            Style::Dashed => chart
                .draw_series(DashedLineSeries::new(pts.clone(), 6, 6, c.stroke_width(1)))
                .map_err(err)?,
        };
        drawn
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3)));
    }
    if legend && !p.series.is_empty() {
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .position(p.legend_at.clone())
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// Loss and accuracy, train and test, over the steps of a run.
pub fn loss_figure(rec: &Recorder, model: &str) -> Figure {
    let steps: Vec<_> = rec.rows_of(RowKind::Step).collect();
    let epochs: Vec<_> = rec.rows_of(RowKind::Epoch).collect();
    // Without step rows (a very short run), the epoch means stand for training.
    let train_rows = if steps.len() >= 2 { &steps } else { &epochs };
    let window = if steps.len() >= 2 {
        format!("train (mean over {} steps)", rec.every)
    } else {
        "train (epoch mean)".to_string()
    };
    let mut loss = Panel {
        title: "loss".into(),
        y_label: "loss (log scale)".into(),
        log_y: true,
        ..Default::default()
    };
    let mut acc = Panel {
        title: "accuracy".into(),
        y_label: "accuracy (%)".into(),
        legend_at: SeriesLabelPosition::LowerRight,
        ..Default::default()
    };
    let style = if train_rows.len() < 20 {
        Style::Markers
    } else {
        Style::Line
    };
    loss.series.push(Series {
        label: window.clone(),
        color: TRAIN,
        points: train_rows.iter().map(|r| (r.step as f64, r.loss)).collect(),
        style,
    });
    acc.series.push(Series {
        label: window,
        color: TRAIN,
        points: train_rows
            .iter()
            .map(|r| (r.step as f64, 100.0 * r.accuracy))
            .collect(),
        style,
    });
    let test: Vec<_> = epochs.iter().filter(|r| r.test_loss.is_some()).collect();
    if !test.is_empty() {
        loss.series.push(Series {
            label: "test (after each epoch)".into(),
            color: TEST,
            points: test
                .iter()
                .map(|r| (r.step as f64, r.test_loss.unwrap_or(f64::NAN)))
                .collect(),
            style: Style::Markers,
        });
        acc.series.push(Series {
            label: "test (after each epoch)".into(),
            color: TEST,
            points: test
                .iter()
                .map(|r| (r.step as f64, 100.0 * r.test_accuracy.unwrap_or(f64::NAN)))
                .collect(),
            style: Style::Markers,
        });
    }
    Figure {
        title: format!("training of {}", short(model)),
        x_label: "step".into(),
        panels: vec![loss, acc],
        cols: 2,
        size: (1300, 520),
        side_legend: false,
    }
}

/// Per-layer gradient statistics over the steps of a run; `None` when the
/// run measured none (`--diagnostics-every 0`).
pub fn grads_figure(rec: &Recorder, model: &str) -> Option<Figure> {
    if rec.stats.is_empty() {
        return None;
    }
    let rows: Vec<_> = rec.rows_of(RowKind::Step).collect();
    let series_of = |stat: Stat| -> Vec<(String, Vec<(f64, f64)>)> {
        rec.stats
            .iter()
            .enumerate()
            .filter(|(_, (_, s))| *s == stat)
            .map(|(col, (layer, _))| {
                let pts = rows
                    .iter()
                    .filter_map(|r| r.stats[col].map(|v| (r.step as f64, v)))
                    .collect();
                (layer.clone(), pts)
            })
            .collect()
    };
    let param_layers: Vec<String> = series_of(Stat::GradNorm)
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    let label = |l: &str| {
        let name = rec
            .layer_names
            .iter()
            .find(|(n, _)| n == l)
            .map_or("", |(_, d)| d.as_str());
        format!("L{l} {name}")
    };
    let panel = |stat: Stat, title: &str, y: &str| {
        let series = series_of(stat)
            .into_iter()
            .map(|(l, points)| {
                let i = param_layers.iter().position(|p| *p == l).unwrap_or(0);
                Series {
                    label: label(&l),
                    color: ordered_color(i, param_layers.len()),
                    points,
                    style: if rows.len() < 20 {
                        Style::Markers
                    } else {
                        Style::Line
                    },
                }
            })
            .collect();
        Panel {
            title: title.into(),
            y_label: y.into(),
            log_y: true,
            series,
            empty_note: "no layers with parameters".into(),
            ..Default::default()
        }
    };
    let grad = panel(
        Stat::GradNorm,
        "weight gradient ‖∂C/∂W‖",
        "norm (log scale)",
    );
    let delta = panel(
        Stat::DeltaNorm,
        "δ = ∂C/∂z at each layer's output",
        "‖δ‖ (log scale)",
    );
    let mut ratio = panel(
        Stat::UpdateRatio,
        "update / weight ‖ΔW‖ / ‖W‖",
        "ratio (log scale)",
    );
    if let (Some(a), Some(b)) = (rows.first(), rows.last()) {
        ratio.series.push(Series {
            label: "1e-3 (rule of thumb)".into(),
            color: RGBColor(120, 120, 120),
            points: vec![(a.step as f64, 1e-3), (b.step as f64, 1e-3)],
            style: Style::Dashed,
        });
    }
    // Dead ReLU and saturated sigmoid/tanh units, coloured like the layer before them, dashed.
    let mut units = Panel {
        title: "dead ReLU / saturated sigmoid, tanh units".into(),
        y_label: "share of units (%)".into(),
        y_range: Some((0.0, 100.0)),
        empty_note: "no relu, sigmoid or tanh layers".into(),
        ..Default::default()
    };
    for stat in [Stat::DeadFrac, Stat::SaturatedFrac] {
        for (l, pts) in series_of(stat) {
            // The last layer with parameters before this one, in the model's order.
            let order = |name: &str| rec.layer_names.iter().position(|(n, _)| n == name);
            let at = order(&l);
            let i = param_layers
                .iter()
                .rposition(|p| order(p) < at)
                .unwrap_or(0);
            let what = if stat == Stat::DeadFrac {
                "dead"
            } else {
                "saturated"
            };
            units.series.push(Series {
                label: format!("{} ({what})", label(&l)),
                color: ordered_color(i, param_layers.len()),
                points: pts.into_iter().map(|(x, v)| (x, 100.0 * v)).collect(),
                // Dashed, so the shared legend tells them from the layer whose colour they take.
                style: Style::Dashed,
            });
        }
    }
    if units.series.is_empty() {
        units.y_range = None;
    }
    Some(Figure {
        title: format!("gradient flow in {}", short(model)),
        x_label: "step".into(),
        panels: vec![grad, delta, ratio, units],
        cols: 2,
        size: (1400, 920),
        side_legend: true,
    })
}

/// The files of a run: `{prefix}metrics.csv`, `{prefix}loss.{png,svg}` and,
/// with diagnostics, `{prefix}grads.{png,svg}`. `prefix` is `runs/x.` beside
/// a saved `runs/x.safetensors`, or `DIR/` for `--out DIR`. With `plots`
/// false only the CSV is written. Returns the paths written.
pub fn write_run_files(
    rec: &Recorder,
    model: &str,
    prefix: &Path,
    plots: bool,
) -> Result<Vec<PathBuf>> {
    let csv = with_suffix(prefix, "metrics.csv");
    crate::io::write_atomic(&csv, rec.to_csv().as_bytes())?;
    let mut out = vec![csv];
    if plots {
        out.extend(loss_figure(rec, model).write(&with_suffix(prefix, "loss"))?);
        if let Some(f) = grads_figure(rec, model) {
            out.extend(f.write(&with_suffix(prefix, "grads"))?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_renders_as_png_and_svg() {
        let f = Figure {
            title: "test ∂C/∂W".into(),
            x_label: "step".into(),
            panels: vec![
                Panel {
                    title: "log".into(),
                    log_y: true,
                    series: vec![Series {
                        label: "a".into(),
                        color: TRAIN,
                        points: vec![(1.0, 1e-6), (2.0, 1e-3), (3.0, 0.0), (4.0, 1.0)],
                        style: Style::Line,
                    }],
                    ..Default::default()
                },
                Panel::default(),
            ],
            cols: 2,
            size: (400, 200),
            side_legend: false,
        };
        let png = f.png().unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let svg = f.svg().unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{svg}"
        );
        assert!(svg.contains("nothing to show"));
    }

    #[test]
    fn colors_run_from_dark_to_light() {
        let lum = |c: RGBColor| c.0 as u32 + c.1 as u32 + c.2 as u32;
        let cs: Vec<RGBColor> = (0..5).map(|i| ordered_color(i, 5)).collect();
        assert!(cs.windows(2).all(|w| lum(w[0]) < lum(w[1])), "{cs:?}");
        assert_eq!(ordered_color(0, 1), RGBColor(13, 8, 135));
        assert_eq!(log_label(&1e-5), "1e-5");
        let long = ["linear(64,64),sigmoid"; 10].join(",");
        assert_eq!(
            short(&long),
            "linear(64,64),sigmoid,linear(64,64),sigmoid,linear(64,64),sigmoid,linear(64,64),sigmoid,linear(64,64),sigmoid,… (20 layers)"
        );
        assert_eq!(log_label(&2e6), "2e6");
        assert_eq!(log_label(&0.2), "0.2");
    }
}
