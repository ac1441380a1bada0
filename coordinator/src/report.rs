//! Reports of a run: the per-round table, rounds.csv and PNG plots.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::types::{RangedCoordf64, RangedCoordu32};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::{
    BitMapBackend, Cartesian2d, ChartBuilder, ChartContext, Circle, Color, DashedLineSeries,
    DrawingArea, DrawingAreaErrorKind, DrawingBackend, FontStyle, IntoDrawingArea, IntoFont,
    LineSeries, PathElement, RGBColor, Rectangle, ShapeStyle, Text, TextStyle, BLACK, WHITE,
};
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::{Deserialize, Serialize};

/// One round of a run, as printed and written to rounds.csv.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundRow {
    pub round: u32,
    /// Test accuracy of the global model after this round (0..1).
    pub accuracy: f64,
    /// Test loss of the global model after this round.
    pub loss: f32,
    /// Test ROC AUC for binary tasks.
    pub auc: Option<f64>,
    /// Submissions accepted into the aggregate.
    pub accepted: usize,
    /// Submissions and decryption shares rejected (with a penalty or not).
    pub rejected: usize,
    /// The round was void (too few submissions by the deadline).
    pub void: bool,
    /// Seconds per phase: local training (all hospitals), quantize+pack+encrypt (all hospitals),
    /// the aggregator's checks and ciphertext product, decryption shares and their verification
    /// and combination, block proposal + validation + commit.
    pub train_s: f64,
    pub encrypt_s: f64,
    pub aggregate_s: f64,
    pub decrypt_s: f64,
    pub commit_s: f64,
    /// Wall time of the whole round.
    pub total_s: f64,
    /// Bytes written to the ledger this round (blocks and payloads).
    pub bytes_on_chain: u64,
}

/// An error while writing a report file; each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Creating, writing or flushing the file failed.
    #[error("cannot write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The CSV writer failed (opening the file, serializing a row or writing it).
    #[error("cannot write CSV file {path}")]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    /// Drawing or encoding a plot failed, or the embedded font could not be loaded.
    #[error("cannot draw plot {path}: {message}")]
    Plot { path: PathBuf, message: String },
}

/// Writes `rows` to `path` as CSV: a header row with the field names of [`RoundRow`], then one
/// line per round. `auc` is empty when `None`; `void` is `true`/`false`; accuracy is a fraction
/// (0..1), times are seconds and `bytes_on_chain` is bytes.
pub fn write_rounds_csv(path: &Path, rows: &[RoundRow]) -> Result<(), ReportError> {
    let csv_err = |source| ReportError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut writer = csv::Writer::from_path(path).map_err(csv_err)?;
    for row in rows {
        writer.serialize(row).map_err(csv_err)?;
    }
    writer.flush().map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The columns of the human table: header and minimum width (all right-aligned).
const COLUMNS: [(&str, usize); 11] = [
    ("round", 5),
    ("acc %", 6),
    ("loss", 7),
    ("accept/rej", 10),
    ("train s", 8),
    ("encrypt s", 9),
    ("aggregate s", 11),
    ("decrypt s", 9),
    ("commit s", 8),
    ("total s", 8),
    ("KB on chain", 11),
];

/// Space between two columns of the human table.
const COLUMN_GAP: &str = "  ";

/// Right-aligns each cell in its column and joins them with [`COLUMN_GAP`].
fn table_line<S: std::fmt::Display>(cells: [S; COLUMNS.len()]) -> String {
    let mut line = String::new();
    for (i, (cell, (_, width))) in cells.iter().zip(COLUMNS).enumerate() {
        if i > 0 {
            line.push_str(COLUMN_GAP);
        }
        line.push_str(&format!("{cell:>width$}"));
    }
    line
}

/// The header line of the per-round table printed during a run; [`table_row`] lines up under
/// it (values wider than their column, e.g. a round over 100 000 s, push the rest right).
pub fn table_header() -> String {
    table_line(COLUMNS.map(|(name, _)| name))
}

/// One line of the per-round table: accuracy in percent, test loss, accepted/rejected
/// submissions (`void` for a void round), seconds per phase and in total, and kilobytes
/// (1000 bytes) written to the ledger.
pub fn table_row(row: &RoundRow) -> String {
    let submissions = if row.void {
        "void".to_string()
    } else {
        format!("{}/{}", row.accepted, row.rejected)
    };
    table_line([
        row.round.to_string(),
        format!("{:.2}", row.accuracy * 100.0),
        format!("{:.4}", row.loss),
        submissions,
        format!("{:.2}", row.train_s),
        format!("{:.2}", row.encrypt_s),
        format!("{:.2}", row.aggregate_s),
        format!("{:.2}", row.decrypt_s),
        format!("{:.2}", row.commit_s),
        format!("{:.2}", row.total_s),
        format!("{:.1}", row.bytes_on_chain as f64 / 1000.0),
    ])
}

/// DejaVu Sans 2.37 (Bitstream Vera licence, see assets/LICENSE-DejaVu.txt), embedded so that
/// plots render the same on machines without system fonts.
static DEJAVU_SANS: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// The font family the plots use; plotters' own default text style asks for it too.
const FONT: &str = "sans-serif";

/// Width and height of every plot, in pixels.
const PLOT_SIZE: (u32, u32) = (900, 500);

/// Font size of the legend.
const LEGEND_FONT_SIZE: u32 = 16;

/// Legend layout in pixels: the gap between the plotting area and the legend box, the padding
/// inside the box, the length of a series sample, the gap between sample and label, and the
/// height of a row.
const LEGEND_GAP: i32 = 14;
const LEGEND_PAD: i32 = 10;
const LEGEND_SAMPLE: i32 = 30;
const LEGEND_SAMPLE_GAP: i32 = 8;
const LEGEND_ROW: i32 = 24;

/// Line colours (the first five of matplotlib's tab10).
const COLORS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
];

/// The chart type of both plots: rounds on x, a value on y.
type RoundChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordu32, RangedCoordf64>>;

/// The error type of drawing on backend `DB`.
type DrawResult<T, DB> = Result<T, DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Registers [`DEJAVU_SANS`] with plotters under [`FONT`] once per process. plotters' ab_glyph
/// backend draws no text without a registered font; a font that fails to parse is reported as
/// an error of the plot being drawn rather than a panic.
fn ensure_font(path: &Path) -> Result<(), ReportError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, DEJAVU_SANS).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(ReportError::Plot {
            path: path.to_path_buf(),
            message: "the embedded DejaVu Sans font could not be parsed".to_string(),
        })
    }
}

/// Turns a plotters error into [`ReportError::Plot`] for `path`.
fn plot_err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> ReportError + '_ {
    move |e| ReportError::Plot {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// The x range covering the rounds in `rounds` (at least two rounds wide).
fn round_range(rounds: impl Iterator<Item = u32>) -> Range<u32> {
    let (lo, hi) = rounds.fold((u32::MAX, 0), |(lo, hi), r| (lo.min(r), hi.max(r)));
    if lo > hi {
        0..1
    } else if lo == hi {
        lo.saturating_sub(1)..hi.saturating_add(1)
    } else {
        lo..hi
    }
}

/// A y range from the finite values in `values`, padded and rounded out to multiples of
/// `step`, clamped to `floor..ceil`.
fn value_range(values: impl Iterator<Item = f64>, step: f64, floor: f64, ceil: f64) -> Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return floor..ceil;
    }
    let pad = ((hi - lo) * 0.05).max(step / 2.0);
    let lo = (((lo - pad) / step).floor() * step).max(floor);
    let hi = (((hi + pad) / step).ceil() * step).min(ceil);
    if hi > lo {
        lo..hi
    } else {
        floor..ceil
    }
}

/// Points `(round, value)` with non-finite values left out, so a NaN does not break the line.
fn points(rows: &[RoundRow], value: impl Fn(&RoundRow) -> f64) -> Vec<(u32, f64)> {
    rows.iter()
        .map(|r| (r.round, value(r)))
        .filter(|(_, v)| v.is_finite())
        .collect()
}

/// How a series is drawn, for its sample in the legend.
#[derive(Clone, Copy, Debug)]
enum Mark {
    /// A solid line with dots at the data points.
    Line(ShapeStyle),
    /// A dashed line.
    Dashed(ShapeStyle),
    /// Hollow circles around some data points.
    Ring(ShapeStyle),
}

/// Draws a solid line with dots at the data points (dots left out for long runs).
fn draw_line<DB: DrawingBackend>(
    chart: &mut RoundChart<'_, DB>,
    data: Vec<(u32, f64)>,
    style: ShapeStyle,
) -> DrawResult<(), DB> {
    let dots = if data.len() <= 60 { 3 } else { 0 };
    chart.draw_series(LineSeries::new(data, style).point_size(dots))?;
    Ok(())
}

/// The legend's text style.
fn legend_font() -> TextStyle<'static> {
    TextStyle::from((FONT, LEGEND_FONT_SIZE).into_font()).pos(Pos::new(HPos::Left, VPos::Center))
}

/// The legend's box width for `labels`.
fn legend_width<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    labels: impl Iterator<Item = impl AsRef<str>>,
) -> DrawResult<i32, DB> {
    let style = legend_font();
    let mut widest = 0;
    for label in labels {
        widest = widest.max(root.estimate_text_size(label.as_ref(), &style)?.0);
    }
    let widest = i32::try_from(widest).unwrap_or(i32::MAX / 2);
    Ok(LEGEND_PAD + LEGEND_SAMPLE + LEGEND_SAMPLE_GAP + widest + LEGEND_PAD)
}

/// The chart's right margin, which leaves room for the legend outside the plotting area so
/// that the legend never hides a line.
fn legend_margin(legend_width: i32) -> u32 {
    u32::try_from(LEGEND_GAP + legend_width + 6).unwrap_or(0)
}

/// Draws a boxed legend of `entries` on `root`, right of `chart`'s plotting area and level
/// with its top, in the margin reserved by [`legend_margin`].
fn draw_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &RoundChart<'_, DB>,
    entries: &[(String, Mark)],
    width: i32,
) -> DrawResult<(), DB> {
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    let (x0, y0) = (xs.end + LEGEND_GAP, ys.start);
    let rows = i32::try_from(entries.len()).unwrap_or(0);
    let bottom = y0 + 2 * LEGEND_PAD + rows * LEGEND_ROW - (LEGEND_ROW - LEGEND_FONT_SIZE as i32);
    root.draw(&Rectangle::new(
        [(x0, y0), (x0 + width, bottom)],
        WHITE.filled(),
    ))?;
    root.draw(&Rectangle::new([(x0, y0), (x0 + width, bottom)], BLACK))?;
    let font = legend_font();
    let mut y = y0 + LEGEND_PAD + LEGEND_FONT_SIZE as i32 / 2;
    for (label, mark) in entries {
        let (a, b) = (x0 + LEGEND_PAD, x0 + LEGEND_PAD + LEGEND_SAMPLE);
        let middle = (a + b) / 2;
        match *mark {
            Mark::Line(style) => {
                root.draw(&PathElement::new(vec![(a, y), (b, y)], style))?;
                root.draw(&Circle::new((middle, y), 3, style))?;
            }
            Mark::Dashed(style) => {
                root.draw(&DashedPathElement::new(vec![(a, y), (b, y)], 8, 5, style))?;
            }
            Mark::Ring(style) => root.draw(&Circle::new((middle, y), 6, style))?,
        }
        root.draw(&Text::new(
            label.as_str(),
            (b + LEGEND_SAMPLE_GAP, y),
            font.clone(),
        ))?;
        y += LEGEND_ROW;
    }
    Ok(())
}

/// Draws a PNG line chart (900x500) of test accuracy in percent per round: `rows` as the
/// "encrypted" series and, if given, `baseline` as a second series under its own name (e.g.
/// `("plaintext", &plain_rows)`). Void rounds of `rows` are circled. `path` should end in
/// `.png` (the encoder is chosen by extension); its directory must exist.
pub fn plot_accuracy(
    path: &Path,
    rows: &[RoundRow],
    baseline: Option<(&str, &[RoundRow])>,
) -> Result<(), ReportError> {
    ensure_font(path)?;
    let err = plot_err(path);
    let percent = |r: &RoundRow| r.accuracy * 100.0;
    let mut series = vec![("encrypted".to_string(), points(rows, percent), COLORS[0])];
    if let Some((name, base)) = baseline {
        series.push((name.to_string(), points(base, percent), COLORS[1]));
    }
    let void = points(rows, |r| if r.void { percent(r) } else { f64::NAN });
    let void_style = COLORS[3].stroke_width(2);
    let mut legend: Vec<(String, Mark)> = series
        .iter()
        .map(|(name, _, color)| (name.clone(), Mark::Line(color.stroke_width(2))))
        .collect();
    if !void.is_empty() {
        legend.push(("void round".to_string(), Mark::Ring(void_style)));
    }

    let base_rows = baseline.map_or(&[][..], |(_, b)| b);
    let all = || rows.iter().chain(base_rows);
    let x_range = round_range(all().map(|r| r.round));
    let y_range = value_range(all().map(percent), 5.0, 0.0, 100.0);

    let root = BitMapBackend::new(path, PLOT_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let legend_w = legend_width(&root, legend.iter().map(|(l, _)| l)).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Test accuracy per round", (FONT, 24))
        .margin(15)
        .margin_right(legend_margin(legend_w))
        .x_label_area_size(50)
        .y_label_area_size(65)
        .build_cartesian_2d(x_range, y_range)
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc("round")
        .y_desc("test accuracy (%)")
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .x_label_formatter(&|r| r.to_string())
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(&err)?;

    for (_, data, color) in series {
        draw_line(&mut chart, data, color.stroke_width(2)).map_err(&err)?;
    }
    chart
        .draw_series(void.into_iter().map(|p| Circle::new(p, 7, void_style)))
        .map_err(&err)?;
    draw_legend(&root, &chart, &legend, legend_w).map_err(&err)?;
    root.present().map_err(&err)
}

/// Draws a PNG line chart (900x500) of any per-round series, each `(name, points (round,
/// value))` in its own colour, y from 0 (for comparisons the fixed plots do not cover, e.g.
/// bytes per hospital, or accuracy next to an outside baseline). `path` should end in `.png`;
/// its directory must exist.
pub fn plot_lines(
    path: &Path,
    title: &str,
    y_desc: &str,
    series: &[(&str, Vec<(u32, f64)>)],
) -> Result<(), ReportError> {
    ensure_font(path)?;
    let err = plot_err(path);
    let legend: Vec<(String, Mark)> = series
        .iter()
        .zip(COLORS.iter().cycle())
        .map(|((name, _), color)| (name.to_string(), Mark::Line(color.stroke_width(2))))
        .collect();
    let all = || series.iter().flat_map(|(_, p)| p.iter().copied());
    let x_range = round_range(all().map(|(r, _)| r));
    let max = all()
        .map(|(_, v)| v)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let y_range = 0.0..if max > 0.0 { max * 1.05 } else { 1.0 };

    let root = BitMapBackend::new(path, PLOT_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let legend_w = legend_width(&root, legend.iter().map(|(l, _)| l)).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 24))
        .margin(15)
        .margin_right(legend_margin(legend_w))
        .x_label_area_size(50)
        .y_label_area_size(75)
        .build_cartesian_2d(x_range, y_range)
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc("round")
        .y_desc(y_desc)
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .x_label_formatter(&|r| r.to_string())
        .draw()
        .map_err(&err)?;
    for ((_, data), color) in series.iter().zip(COLORS.iter().cycle()) {
        let data = data
            .iter()
            .copied()
            .filter(|(_, v)| v.is_finite())
            .collect();
        draw_line(&mut chart, data, color.stroke_width(2)).map_err(&err)?;
    }
    draw_legend(&root, &chart, &legend, legend_w).map_err(&err)?;
    root.present().map_err(&err)
}

/// Draws a PNG line chart (900x500) of the seconds each round spent per phase (train, encrypt,
/// aggregate, decrypt, commit) with the round's wall time as a dashed line. `path` should end
/// in `.png`; its directory must exist.
pub fn plot_phases(path: &Path, rows: &[RoundRow]) -> Result<(), ReportError> {
    ensure_font(path)?;
    let err = plot_err(path);
    type Phase = (&'static str, fn(&RoundRow) -> f64, Mark);
    let line = |color: RGBColor| Mark::Line(color.stroke_width(2));
    let phases: [Phase; 6] = [
        ("train", |r| r.train_s, line(COLORS[0])),
        ("encrypt", |r| r.encrypt_s, line(COLORS[1])),
        ("aggregate", |r| r.aggregate_s, line(COLORS[2])),
        ("decrypt", |r| r.decrypt_s, line(COLORS[3])),
        ("commit", |r| r.commit_s, line(COLORS[4])),
        (
            "total (wall)",
            |r| r.total_s,
            Mark::Dashed(BLACK.stroke_width(2)),
        ),
    ];
    let legend: Vec<(String, Mark)> = phases
        .iter()
        .map(|(name, _, mark)| (name.to_string(), *mark))
        .collect();

    let x_range = round_range(rows.iter().map(|r| r.round));
    let max = rows
        .iter()
        .flat_map(|r| phases.iter().map(|(_, value, _)| value(r)))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let y_range = 0.0..if max > 0.0 { max * 1.05 } else { 1.0 };

    let root = BitMapBackend::new(path, PLOT_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let legend_w = legend_width(&root, legend.iter().map(|(l, _)| l)).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Time per phase per round", (FONT, 24))
        .margin(15)
        .margin_right(legend_margin(legend_w))
        .x_label_area_size(50)
        .y_label_area_size(65)
        .build_cartesian_2d(x_range, y_range)
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc("round")
        .y_desc("seconds")
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .x_label_formatter(&|r| r.to_string())
        .draw()
        .map_err(&err)?;

    for (_, value, mark) in &phases {
        match *mark {
            Mark::Dashed(style) => {
                chart
                    .draw_series(DashedLineSeries::new(points(rows, value), 8, 5, style))
                    .map_err(&err)?;
            }
            Mark::Line(style) | Mark::Ring(style) => {
                draw_line(&mut chart, points(rows, value), style).map_err(&err)?;
            }
        }
    }
    draw_legend(&root, &chart, &legend, legend_w).map_err(&err)?;
    root.present().map_err(&err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    type TestResult = Result<(), Box<dyn Error>>;

    /// A run of `n` rounds with accuracy rising from about `start`; round 4 is void.
    fn run(n: u32, start: f64) -> Vec<RoundRow> {
        (1..=n)
            .map(|round| {
                let t = f64::from(round);
                let accuracy =
                    (start + 0.25 * (1.0 - (-t / 5.0).exp()) + 0.01 * (t * 1.7).sin()).min(1.0);
                let void = round == 4;
                let encrypt_s = 6.0 + 0.3 * (t * 0.9).cos();
                let (train_s, aggregate_s, decrypt_s, commit_s) = (2.1, 1.4, 3.2, 0.15);
                RoundRow {
                    round,
                    accuracy,
                    loss: (0.7 - 0.3 * (accuracy - start)) as f32,
                    auc: (round % 3 != 0).then_some(accuracy + 0.05),
                    accepted: if void { 1 } else { 5 },
                    rejected: usize::from(round == 6),
                    void,
                    train_s,
                    encrypt_s,
                    aggregate_s,
                    decrypt_s,
                    commit_s,
                    total_s: train_s + encrypt_s + aggregate_s + decrypt_s + commit_s + 0.3,
                    bytes_on_chain: 180_000 + u64::from(round) * 1_234,
                }
            })
            .collect()
    }

    /// The same fields as [`RoundRow`], read back from rounds.csv.
    #[derive(serde::Deserialize)]
    struct CsvRow {
        round: u32,
        accuracy: f64,
        loss: f32,
        auc: Option<f64>,
        accepted: usize,
        rejected: usize,
        void: bool,
        train_s: f64,
        encrypt_s: f64,
        aggregate_s: f64,
        decrypt_s: f64,
        commit_s: f64,
        total_s: f64,
        bytes_on_chain: u64,
    }

    impl From<CsvRow> for RoundRow {
        fn from(r: CsvRow) -> Self {
            RoundRow {
                round: r.round,
                accuracy: r.accuracy,
                loss: r.loss,
                auc: r.auc,
                accepted: r.accepted,
                rejected: r.rejected,
                void: r.void,
                train_s: r.train_s,
                encrypt_s: r.encrypt_s,
                aggregate_s: r.aggregate_s,
                decrypt_s: r.decrypt_s,
                commit_s: r.commit_s,
                total_s: r.total_s,
                bytes_on_chain: r.bytes_on_chain,
            }
        }
    }

    #[test]
    fn csv_round_trips_with_header_and_empty_auc() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("rounds.csv");
        let rows = run(6, 0.6);
        write_rounds_csv(&path, &rows)?;

        let text = std::fs::read_to_string(&path)?;
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(
                "round,accuracy,loss,auc,accepted,rejected,void,train_s,encrypt_s,aggregate_s,\
                 decrypt_s,commit_s,total_s,bytes_on_chain"
            )
        );
        let third = lines.nth(2).ok_or("too few lines")?;
        assert!(third.starts_with("3,"), "{third}");
        assert_eq!(third.split(',').nth(3), Some(""), "auc of round 3 is None");

        let back = csv::Reader::from_path(&path)?
            .deserialize::<CsvRow>()
            .map(|r| r.map(RoundRow::from))
            .collect::<Result<Vec<_>, _>>()?;
        assert_eq!(back, rows);
        Ok(())
    }

    #[test]
    fn csv_into_missing_directory_names_the_file() {
        let path = Path::new("/nonexistent-fedchain-dir/rounds.csv");
        let err = write_rounds_csv(path, &run(1, 0.5));
        assert!(
            matches!(&err, Err(ReportError::Csv { path: p, .. }) if p == path),
            "{err:?}"
        );
        let message = err.map_err(|e| e.to_string()).err().unwrap_or_default();
        assert!(
            message.contains("/nonexistent-fedchain-dir/rounds.csv"),
            "{message}"
        );
    }

    /// Byte offsets where each column ends in a table line.
    fn column_ends() -> Vec<usize> {
        let mut end = 0;
        COLUMNS
            .iter()
            .enumerate()
            .map(|(i, (_, width))| {
                end += width + if i > 0 { COLUMN_GAP.len() } else { 0 };
                end
            })
            .collect()
    }

    #[test]
    fn table_rows_line_up_with_the_header() {
        let header = table_header();
        assert!(header.starts_with("round   acc %"), "{header}");
        let mut rows = run(6, 0.6);
        rows.push(RoundRow {
            round: 10_000,
            accuracy: 1.0,
            loss: 12.5,
            accepted: 1_000,
            rejected: 999,
            total_s: 99_999.99,
            bytes_on_chain: 99_999_999,
            ..rows[0].clone()
        });
        let ends = column_ends();
        assert_eq!(header.len(), *ends.last().unwrap_or(&0));
        for row in &rows {
            let line = table_row(row);
            assert_eq!(line.len(), header.len(), "\n{header}\n{line}");
            // Every cell is right-aligned and ends where its header ends.
            for &end in &ends {
                let (h, l) = (header.as_bytes()[end - 1], line.as_bytes()[end - 1]);
                assert!(
                    h != b' ' && l != b' ',
                    "column ending at {end}:\n{header}\n{line}"
                );
                if end < line.len() {
                    assert_eq!(&line[end..end + COLUMN_GAP.len()], COLUMN_GAP);
                }
            }
        }
        assert!(table_row(&rows[3]).contains(" void "), "round 4 is void");
        assert!(
            table_row(&rows[5]).contains(" 5/1 "),
            "round 6 has a rejection"
        );
        assert!(table_row(&rows[0]).ends_with("181.2"), "KB on chain");
    }

    /// Checks that `path` holds a PNG of a plot with some content.
    fn assert_png(path: &Path) -> TestResult {
        let bytes = std::fs::read(path)?;
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is not a PNG",
            path.display()
        );
        assert!(
            bytes.len() > 15_000,
            "{}: only {} bytes",
            path.display(),
            bytes.len()
        );
        Ok(())
    }

    /// Renders both plots into `dir`.
    fn render(dir: &Path) -> Result<(PathBuf, PathBuf), ReportError> {
        let (accuracy, phases) = (dir.join("accuracy.png"), dir.join("phases.png"));
        let rows = run(20, 0.6);
        let plain = run(20, 0.63);
        plot_accuracy(&accuracy, &rows, Some(("plaintext", &plain)))?;
        plot_phases(&phases, &rows)?;
        Ok((accuracy, phases))
    }

    /// Also writes the plots to `$FEDCHAIN_PLOTS_DIR` if set, to look at them.
    #[test]
    fn plots_render_to_png() -> TestResult {
        let dir = tempfile::tempdir()?;
        let (accuracy, phases) = render(dir.path())?;
        assert_png(&accuracy)?;
        assert_png(&phases)?;
        if let Some(out) = std::env::var_os("FEDCHAIN_PLOTS_DIR") {
            std::fs::create_dir_all(&out)?;
            render(Path::new(&out))?;
        }
        Ok(())
    }

    #[test]
    fn line_plot_renders_several_series() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("bytes.png");
        let rows = run(10, 0.6);
        let series = [
            ("encrypted", points(&rows, |r| r.bytes_on_chain as f64)),
            (
                "plaintext",
                points(&rows, |r| r.bytes_on_chain as f64 / 8.0),
            ),
            ("other", vec![(1, f64::NAN), (2, 5.0)]),
        ];
        plot_lines(&path, "Bytes per hospital per round", "bytes", &series)?;
        assert_png(&path)?;
        plot_lines(&dir.path().join("empty.png"), "empty", "bytes", &[])?;
        Ok(())
    }

    #[test]
    fn plots_of_short_or_empty_runs_render() -> TestResult {
        let dir = tempfile::tempdir()?;
        let one = run(1, 0.5);
        plot_accuracy(&dir.path().join("a1.png"), &one, None)?;
        plot_phases(&dir.path().join("p1.png"), &one)?;
        plot_accuracy(&dir.path().join("a0.png"), &[], Some(("plaintext", &[])))?;
        plot_phases(&dir.path().join("p0.png"), &[])?;
        for name in ["a1.png", "p1.png", "a0.png", "p0.png"] {
            let bytes = std::fs::read(dir.path().join(name))?;
            assert!(bytes.starts_with(b"\x89PNG"), "{name}");
        }
        Ok(())
    }

    #[test]
    fn plot_into_missing_directory_names_the_file() {
        let path = Path::new("/nonexistent-fedchain-dir/accuracy.png");
        let err = plot_accuracy(path, &run(3, 0.5), None);
        assert!(
            matches!(&err, Err(ReportError::Plot { path: p, .. }) if p == path),
            "{err:?}"
        );
    }
}
