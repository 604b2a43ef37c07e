//! `plot`: the charts of docs/performance.md, drawn as SVG from the JSON `sessionkit-bench http` writes.
//!
//! - `http-throughput.svg`: median req/s per configuration (horizontal bars, the ratio to tower-sessions written
//!   at each bar).
//! - `http-latency.svg`: latency by percentile (median over rounds of wrk's percentiles), x in "nines" (50 %,
//!   90 %, 99 %, 99.9 %, 99.99 %), y logarithmic.
//! - `bytes-per-session.svg`: Redis bytes per stored session per layout (when the run measured memory).
//!
//! Text is written as SVG `<text>` (plotters' SVG backend with no font files), so no system fonts are needed.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;

use crate::BenchError;

const WIDTH: u32 = 960;
const FONT: &str = "sans-serif";

fn chart_error(what: &str) -> impl Fn(DrawingAreaErrorKind<std::io::Error>) -> BenchError + '_ {
    move |e| BenchError(format!("cannot draw {what}: {e}"))
}

/// One bar of a bar chart.
#[derive(Debug, Clone)]
pub struct Bar {
    /// Its label (left of the bar).
    pub label: String,
    /// Its length.
    pub value: f64,
    /// Written after the bar.
    pub note: String,
    /// Drawn in the accent colour (sessionkit) or grey (others).
    pub highlighted: bool,
}

/// Horizontal bars, one per entry, top to bottom in order.
pub fn bar_chart(path: &Path, title: &str, subtitle: &str, x_label: &str, bars: &[Bar]) -> Result<(), BenchError> {
    let height = 130 + 44 * bars.len() as u32;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    let what = path.display().to_string();
    root.fill(&WHITE).map_err(chart_error(&what))?;
    let root = titled(&root, title, subtitle, &what)?;
    // Room right of the longest bar for its note.
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max).max(1.0) * 1.45;
    let n = bars.len();
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(330)
        .build_cartesian_2d(0.0..max, -0.5..(n as f64 - 0.5))
        .map_err(chart_error(&what))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n.max(1))
        .y_label_formatter(&|y| {
            let i = y.round();
            if (y - i).abs() < 0.01 && i >= 0.0 {
                labels.get(n.saturating_sub(1 + i as usize)).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc(x_label)
        .x_label_formatter(&|x| crate::http::report::thousands(*x))
        .label_style((FONT, 14))
        .draw()
        .map_err(chart_error(&what))?;
    let accent = RGBColor(0x2b, 0x6c, 0xb0);
    let grey = RGBColor(0x9a, 0xa0, 0xa6);
    chart
        .draw_series(bars.iter().enumerate().map(|(i, bar)| {
            let y = (n - 1 - i) as f64;
            let colour = if bar.highlighted { accent } else { grey };
            Rectangle::new([(0.0, y - 0.35), (bar.value, y + 0.35)], colour.filled())
        }))
        .map_err(chart_error(&what))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, bar)| {
            let y = (n - 1 - i) as f64;
            Text::new(format!(" {}", bar.note), (bar.value, y + 0.12), (FONT, 14).into_font())
        }))
        .map_err(chart_error(&what))?;
    root.present().map_err(chart_error(&what))
}

/// Title and subtitle at the top; returns the area below them.
fn titled<'a>(
    root: &DrawingArea<SVGBackend<'a>, Shift>,
    title: &str,
    subtitle: &str,
    what: &str,
) -> Result<DrawingArea<SVGBackend<'a>, Shift>, BenchError> {
    let (top, rest) = root.split_vertically(64);
    top.draw(&Text::new(title.to_owned(), (16, 10), (FONT, 22).into_font())).map_err(chart_error(what))?;
    top.draw(&Text::new(subtitle.to_owned(), (16, 40), (FONT, 14).into_font().color(&RGBColor(0x55, 0x55, 0x55))))
        .map_err(chart_error(what))?;
    Ok(rest)
}

/// One line of the latency chart.
#[derive(Debug, Clone)]
pub struct LatencyLine {
    /// Legend.
    pub label: String,
    /// (percentile, latency µs).
    pub points: Vec<(f64, f64)>,
}

/// `99.9` → 3 (the number of nines: -log10(1 - p/100)).
fn nines(percentile: f64) -> f64 {
    -(1.0 - percentile / 100.0).max(1e-9).log10()
}

/// Latency (ms, log scale) by percentile (x in nines).
pub fn latency_chart(path: &Path, title: &str, subtitle: &str, lines: &[LatencyLine]) -> Result<(), BenchError> {
    let root = SVGBackend::new(path, (WIDTH, 600)).into_drawing_area();
    let what = path.display().to_string();
    root.fill(&WHITE).map_err(chart_error(&what))?;
    let root = titled(&root, title, subtitle, &what)?;
    let all_ms: Vec<f64> =
        lines.iter().flat_map(|l| l.points.iter().map(|(_, us)| us / 1000.0)).filter(|v| *v > 0.0).collect();
    let low = all_ms.iter().copied().fold(f64::INFINITY, f64::min).min(1.0) * 0.8;
    let high = all_ms.iter().copied().fold(0.0, f64::max).max(1.0) * 1.25;
    let mut chart = ChartBuilder::on(&root)
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(nines(50.0)..nines(99.99), (low..high).log_scale())
        .map_err(chart_error(&what))?;
    chart
        .configure_mesh()
        .x_labels(12)
        .x_label_formatter(&|x| {
            let p = 100.0 * (1.0 - 10f64.powf(-x));
            match p {
                p if (p - 50.0).abs() < 0.01 => "p50".into(),
                p if (p - 90.0).abs() < 0.01 => "p90".into(),
                p if (p - 99.0).abs() < 0.001 => "p99".into(),
                p if (p - 99.9).abs() < 0.0001 => "p99.9".into(),
                p if (p - 99.99).abs() < 0.00001 => "p99.99".into(),
                _ => String::new(),
            }
        })
        .x_desc("percentile of requests (from p50, log scale of 1 / (1 - p))")
        .y_desc("latency (ms, log scale)")
        .y_label_formatter(&|y| format!("{y:.1}"))
        .label_style((FONT, 14))
        .draw()
        .map_err(chart_error(&what))?;
    for (i, line) in lines.iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = line
            .points
            .iter()
            .filter(|(p, us)| *p >= 50.0 && *us > 0.0)
            .map(|(p, us)| (nines(*p), us / 1000.0))
            .collect();
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(chart_error(&what))?
            .label(line.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()
        .map_err(chart_error(&what))?;
    root.present().map_err(chart_error(&what))
}

/// Draws every chart the JSON of `sessionkit-bench http` has data for into `out_dir`; returns the files written.
pub fn plot_http(json: &Value, out_dir: &Path) -> Result<Vec<PathBuf>, BenchError> {
    std::fs::create_dir_all(out_dir).map_err(|e| BenchError(format!("cannot create {}: {e}", out_dir.display())))?;
    let machine = &json["machine"];
    let options = &json["options"];
    let subtitle = format!(
        "{} CPUs ({}), redis-server {}, {}; commit {}, {}; median of {} rounds of {} s, wrk -c{}",
        machine["cpus"],
        machine["cpu_model"].as_str().unwrap_or("?"),
        machine["redis_version"].as_str().unwrap_or("?"),
        machine["wrk_version"].as_str().unwrap_or("?"),
        machine["commit"].as_str().unwrap_or("?").split(' ').next().unwrap_or("?"),
        machine["started"].as_str().unwrap_or("?"),
        options["rounds"],
        options["duration_s"],
        options["connections"],
    );
    let configs = json["configs"].as_array().cloned().unwrap_or_default();
    let tower =
        configs.iter().find(|c| c["id"] == "tower-sessions").and_then(|c| c["median"]["requests_per_sec"].as_f64());
    let mut written = Vec::new();
    if !configs.is_empty() {
        let bars: Vec<Bar> = configs
            .iter()
            .map(|c| {
                let rps = c["median"]["requests_per_sec"].as_f64().unwrap_or(0.0);
                let ratio = tower
                    .filter(|_| c["id"] != "tower-sessions" && c["id"] != "ceiling")
                    .map(|t| format!("  ({:.2}× tower-sessions)", rps / t));
                Bar {
                    label: c["label"].as_str().unwrap_or("?").to_owned(),
                    value: rps,
                    note: format!("{}{}", crate::http::report::thousands(rps), ratio.unwrap_or_default()),
                    highlighted: c["app"] == "sessionkit",
                }
            })
            .collect();
        let path = out_dir.join("http-throughput.svg");
        bar_chart(
            &path,
            "HTTP requests/s: load, increment, save a login session",
            &subtitle,
            "requests per second (median)",
            &bars,
        )?;
        written.push(path);
        let lines: Vec<LatencyLine> = configs
            .iter()
            .map(|c| LatencyLine {
                label: c["label"].as_str().unwrap_or("?").to_owned(),
                points: c["median"]["percentiles_us"]
                    .as_array()
                    .map(|points| {
                        points.iter().filter_map(|pair| Some((pair[0].as_f64()?, pair[1].as_f64()?))).collect()
                    })
                    .unwrap_or_default(),
            })
            .collect();
        let path = out_dir.join("http-latency.svg");
        latency_chart(&path, "HTTP latency by percentile (64 connections)", &subtitle, &lines)?;
        written.push(path);
    }
    let memory = json["memory"].as_array().cloned().unwrap_or_default();
    if !memory.is_empty() {
        let django =
            memory.iter().find(|m| m["layout"] == "django-cache").and_then(|m| m["bytes_per_session"].as_f64());
        let bars: Vec<Bar> = memory
            .iter()
            .map(|m| {
                let bytes = m["bytes_per_session"].as_f64().unwrap_or(0.0);
                let ratio = django.map(|d| format!("  ({:.2}× django-cache)", bytes / d)).unwrap_or_default();
                Bar {
                    label: format!("{} ({} B stored)", m["layout"].as_str().unwrap_or("?"), m["value_bytes"]),
                    value: bytes,
                    note: format!("{bytes:.0} B{ratio}"),
                    highlighted: m["layout"] == "hash",
                }
            })
            .collect();
        let sessions = memory.first().map(|m| m["sessions"].clone()).unwrap_or(Value::Null);
        let path = out_dir.join("bytes-per-session.svg");
        let memory_subtitle = format!(
            "Redis used_memory per session, {sessions} login sessions per layout on a fresh server; {}",
            machine["started"].as_str().unwrap_or("?")
        );
        bar_chart(&path, "Redis memory per stored session", &memory_subtitle, "bytes per session", &bars)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_put_p99_at_two_and_p99_99_at_four() {
        assert!((nines(50.0) - std::f64::consts::LOG10_2).abs() < 1e-9);
        assert!((nines(99.0) - 2.0).abs() < 1e-9);
        assert!((nines(99.99) - 4.0).abs() < 1e-6);
    }

    #[test]
    fn the_charts_are_drawn_from_the_json() {
        let dir = std::env::temp_dir().join(format!("sessionkit-bench-plot-{}", std::process::id()));
        let json = serde_json::json!({
            "machine": {"cpus": 2, "cpu_model": "test", "redis_version": "7", "wrk_version": "wrk 4", "commit": "abc", "started": "now"},
            "options": {"rounds": 1, "duration_s": 1, "connections": 64},
            "configs": [
                {"id": "tower-sessions", "label": "tower-sessions", "app": "tower-sessions",
                 "median": {"requests_per_sec": 1000.0, "percentiles_us": [[50, 900], [99, 2000], [99.99, 5000]]}},
                {"id": "string", "label": "sessionkit string", "app": "sessionkit",
                 "median": {"requests_per_sec": 1500.0, "percentiles_us": [[50, 600], [99, 1500], [99.99, 4000]]}},
            ],
            "memory": [{"layout": "hash", "sessions": 10, "value_bytes": 195, "bytes_per_session": 254.0},
                       {"layout": "django-cache", "sessions": 10, "value_bytes": 349, "bytes_per_session": 565.0}],
        });
        let written = plot_http(&json, &dir).expect("drawn");
        assert_eq!(written.len(), 3);
        let throughput = std::fs::read_to_string(&written[0]).expect("svg");
        assert!(throughput.starts_with("<svg") && throughput.contains("1.50× tower-sessions"), "{throughput}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
