//! The PNG charts: latency figures against their targets, and how the supervisor behaves as
//! sessions pile up.
//!
//! Text needs a TrueType font. The bench reads one at run time (`--font`, or the first of a
//! few common system paths) instead of linking fontconfig; with none found it draws the same
//! charts without any text, and the Markdown table carries the numbers and labels.

use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::scenarios::{CallLatency, Scale, SessionStart, Throughput};

/// Where a sans-serif TrueType font usually is on Linux distributions.
const FONT_CANDIDATES: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

const FONT: &str = "sans-serif";
const P50: RGBColor = RGBColor(52, 101, 164);
const P99: RGBColor = RGBColor(170, 196, 230);
const TARGET: RGBColor = RGBColor(204, 0, 0);

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Register a font for the charts; returns whether text can be drawn.
pub fn load_font(explicit: Option<&Path>) -> bool {
    let candidates: Vec<PathBuf> = match explicit {
        Some(path) => vec![path.to_path_buf()],
        None => FONT_CANDIDATES.iter().map(PathBuf::from).collect(),
    };
    for path in candidates {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        // The font table wants `'static` bytes; the bench registers one font once per run.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        if plotters::style::register_font(FONT, FontStyle::Normal, bytes).is_ok() {
            return true;
        }
    }
    false
}

/// One bar group: a label, p50 and p99 in µs, and the target in µs if the brief sets one.
pub struct Bar {
    pub label: String,
    pub p50: f64,
    pub p99: f64,
    pub target: Option<f64>,
}

/// Bars from the session-start and call-latency measurements, with the brief's targets.
pub fn latency_bars(starts: &[SessionStart], calls: &[CallLatency]) -> Vec<Bar> {
    let mut bars = Vec::new();
    for start in starts.iter().filter(|start| !start.reference) {
        bars.push(Bar {
            label: format!(
                "start {} {}",
                start.transport.name(),
                if start.pooled { "pool" } else { "cold" }
            ),
            p50: start.summary.p50,
            p99: start.summary.p99,
            target: Some(if start.pooled { 500.0 } else { 2000.0 }),
        });
    }
    let direct = calls
        .iter()
        .find(|call| call.transport == crate::scenarios::Transport::Direct)
        .map(|call| call.summary.p50);
    for call in calls {
        let target = match call.transport {
            crate::scenarios::Transport::Floor | crate::scenarios::Transport::Direct => None,
            crate::scenarios::Transport::Stdio => {
                direct.map(|direct| (direct * 1.5).min(direct + 15.0))
            }
            crate::scenarios::Transport::Http => Some(100.0),
        };
        bars.push(Bar {
            label: format!("call {}", short(call.transport.name())),
            p50: call.summary.p50,
            p99: call.summary.p99,
            target,
        });
    }
    bars
}

fn short(name: &str) -> &str {
    if name.starts_with("direct") {
        "direct"
    } else if name.starts_with("floor") {
        "floor (cat)"
    } else {
        name
    }
}

/// Bars of p50 (dark) and p99 (light) on a log scale, a red line at each target.
pub fn draw_latency(path: &Path, bars: &[Bar], text: bool) -> DrawResult {
    let root = BitMapBackend::new(path, (1400, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let most = bars
        .iter()
        .map(|bar| bar.p99.max(bar.target.unwrap_or(0.0)))
        .fold(100.0, f64::max);
    let count = bars.len().max(1);
    let mut builder = ChartBuilder::on(&root);
    builder.margin(20);
    if text {
        builder
            .caption(
                "Bulkhead latency: p50 (dark), p99 (light), target (red)",
                (FONT, 24),
            )
            .x_label_area_size(50)
            .y_label_area_size(80);
    }
    let mut chart = builder.build_cartesian_2d(
        -0.5f64..(count as f64 - 0.5),
        (1f64..most * 3.0).log_scale(),
    )?;
    let labels: Vec<String> = bars.iter().map(|bar| bar.label.clone()).collect();
    let label_of = |x: &f64| {
        let index = x.round();
        if (x - index).abs() < 1e-6 && index >= 0.0 {
            labels.get(index as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    if text {
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(count)
            .x_label_formatter(&label_of)
            .y_desc("microseconds (log scale)")
            .y_label_formatter(&|value| format!("{value:.0}"))
            .label_style((FONT, 14))
            .draw()?;
    } else {
        chart.configure_mesh().x_labels(0).y_labels(0).draw()?;
    }
    for (index, bar) in bars.iter().enumerate() {
        let x = index as f64;
        chart.draw_series([
            Rectangle::new([(x - 0.38, 1.0), (x - 0.01, bar.p50)], P50.filled()),
            Rectangle::new([(x + 0.01, 1.0), (x + 0.38, bar.p99)], P99.filled()),
        ])?;
        if let Some(target) = bar.target {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x - 0.45, target), (x + 0.45, target)],
                TARGET.stroke_width(3),
            )))?;
        }
        if text {
            for (value, offset) in [(bar.p50, -0.2), (bar.p99, 0.2)] {
                chart.draw_series(std::iter::once(Text::new(
                    crate::stats::format_micros(value),
                    (x + offset - 0.15, value * 1.25),
                    (FONT, 13),
                )))?;
            }
        }
    }
    root.present()?;
    Ok(())
}

/// Three panels: echo latency vs sessions open, PSS per session vs sessions open, and HTTP
/// throughput vs concurrent sessions.
pub fn draw_scale(
    path: &Path,
    scale: Option<&Scale>,
    throughput: &[Throughput],
    text: bool,
) -> DrawResult {
    let root = BitMapBackend::new(path, (1500, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 3));
    if let Some(scale) = scale.filter(|scale| !scale.checkpoints.is_empty()) {
        draw_scale_latency(&panels[0], scale, text)?;
        draw_scale_memory(&panels[1], scale, text)?;
    }
    if !throughput.is_empty() {
        draw_throughput(&panels[2], throughput, text)?;
    }
    root.present()?;
    Ok(())
}

type Panel<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// The x range of a scale panel: every checkpoint's session count, with room on both sides
/// (log scale).
fn sessions_range(scale: &Scale) -> (f64, f64) {
    let counts = scale.checkpoints.iter().map(|c| c.sessions);
    let least = counts.clone().min().unwrap_or(1) as f64;
    let most = counts.max().unwrap_or(10) as f64;
    (least / 1.5, most * 1.5)
}

/// A panel's chart builder, titled and with label areas when the charts carry text.
fn panel_builder<'a, 'b>(
    panel: &'a Panel<'b>,
    text: bool,
    caption: &str,
    y_label_area: u32,
) -> ChartBuilder<'a, 'b, BitMapBackend<'b>> {
    let mut builder = ChartBuilder::on(panel);
    builder.margin(15);
    if text {
        builder
            .caption(caption, (FONT, 20))
            .x_label_area_size(45)
            .y_label_area_size(y_label_area);
    }
    builder
}

/// A horizontal target line across `x_range` at `y`, in the legend as `label`.
fn target_line<X, Y>(
    chart: &mut Chart<'_, X, Y>,
    (from, to): (f64, f64),
    y: f64,
    label: &str,
) -> DrawResult
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(from, y), (to, y)],
            TARGET.stroke_width(2),
        )))?
        .label(label)
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], TARGET.stroke_width(2)));
    Ok(())
}

fn draw_scale_latency(panel: &Panel<'_>, scale: &Scale, text: bool) -> DrawResult {
    let range = sessions_range(scale);
    let limit = scale.checkpoints.first().map(|first| first.call.p99 * 2.0);
    // The y axis holds the target line too.
    let most_micros = scale
        .checkpoints
        .iter()
        .map(|c| c.call.p99)
        .fold(limit.unwrap_or(100.0).max(100.0), f64::max);
    let mut chart = panel_builder(panel, text, "echo over HTTP vs sessions open", 60)
        .build_cartesian_2d((range.0..range.1).log_scale(), 0f64..most_micros * 1.2)?;
    configure(&mut chart, text, "sessions open (log)", "µs", 0)?;
    let p50: Vec<(f64, f64)> = scale
        .checkpoints
        .iter()
        .map(|c| (c.sessions as f64, c.call.p50))
        .collect();
    let p99: Vec<(f64, f64)> = scale
        .checkpoints
        .iter()
        .map(|c| (c.sessions as f64, c.call.p99))
        .collect();
    line(&mut chart, p50, P50, text, "p50")?;
    line(&mut chart, p99, P99, text, "p99")?;
    if let Some(limit) = limit {
        target_line(&mut chart, range, limit, "2× p99 at the first checkpoint")?;
    }
    legend(&mut chart, text)
}

fn draw_scale_memory(panel: &Panel<'_>, scale: &Scale, text: bool) -> DrawResult {
    let range = sessions_range(scale);
    let points: Vec<(f64, f64)> = scale
        .checkpoints
        .iter()
        .filter_map(|c| {
            Some((
                c.sessions as f64,
                c.workers_pss_kib? as f64 / c.sessions as f64 / 1000.0 * 1.024,
            ))
        })
        .collect();
    let most_mb = points.iter().map(|(_, mb)| *mb).fold(1.2, f64::max);
    let mut chart = panel_builder(panel, text, "worker PSS per session", 60)
        .build_cartesian_2d((range.0..range.1).log_scale(), 0f64..most_mb * 1.2)?;
    configure(&mut chart, text, "sessions open (log)", "MB", 1)?;
    line(&mut chart, points, P50, text, "PSS per session")?;
    target_line(&mut chart, range, 1.0, "target 1 MB")?;
    legend(&mut chart, text)
}

fn draw_throughput(panel: &Panel<'_>, rows: &[Throughput], text: bool) -> DrawResult {
    let most_sessions = rows.iter().map(|row| row.sessions).max().unwrap_or(1) as f64;
    let most_rate = rows
        .iter()
        .map(|row| row.calls_per_second)
        .fold(1.0, f64::max);
    let mut chart = panel_builder(panel, text, "HTTP throughput", 70).build_cartesian_2d(
        (0.8f64..most_sessions * 4.0).log_scale(),
        0f64..most_rate * 1.2,
    )?;
    configure(&mut chart, text, "concurrent sessions (log)", "calls/s", 0)?;
    let points: Vec<(f64, f64)> = rows
        .iter()
        .map(|row| (row.sessions as f64, row.calls_per_second))
        .collect();
    line(&mut chart, points, P50, text, "echo calls/s")?;
    if text {
        chart.draw_series(rows.iter().map(|row| {
            Text::new(
                format!("{} → {:.0}/s", row.sessions, row.calls_per_second),
                (row.sessions as f64 * 1.05, row.calls_per_second * 1.03),
                (FONT, 13),
            )
        }))?;
    }
    legend(&mut chart, text)
}

type Chart<'a, X, Y> = ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>;

fn configure<X, Y>(
    chart: &mut Chart<'_, X, Y>,
    text: bool,
    x_desc: &str,
    y_desc: &str,
    y_decimals: usize,
) -> DrawResult
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    if text {
        let count = |value: &f64| {
            if *value >= 1000.0 {
                format!("{}k", value / 1000.0)
            } else {
                format!("{value}")
            }
        };
        let amount = |value: &f64| format!("{value:.y_decimals$}");
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_labels(8)
            .y_labels(8)
            .x_label_formatter(&count)
            .y_label_formatter(&amount)
            .label_style((FONT, 13))
            .draw()?;
    } else {
        chart.configure_mesh().x_labels(0).y_labels(0).draw()?;
    }
    Ok(())
}

fn line<X, Y>(
    chart: &mut Chart<'_, X, Y>,
    points: Vec<(f64, f64)>,
    color: RGBColor,
    text: bool,
    label: &str,
) -> DrawResult
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let series = chart.draw_series(LineSeries::new(points.clone(), color.stroke_width(3)))?;
    if text {
        series.label(label).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(3))
        });
    }
    chart.draw_series(
        points
            .into_iter()
            .map(|point| Circle::new(point, 4, color.filled())),
    )?;
    Ok(())
}

fn legend<X, Y>(chart: &mut Chart<'_, X, Y>, text: bool) -> DrawResult
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    if text {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font((FONT, 13))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
    }
    Ok(())
}
