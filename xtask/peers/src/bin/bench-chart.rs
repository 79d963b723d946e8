//! The chart of `cargo xtask bench`: the ratios of its JSON as horizontal bars, in SVG.
//!
//! ```text
//! bench-chart --input target/bench/latest.json --output target/bench/ratios.svg
//! ```
//!
//! Reads the `chart` object of the bench's JSON: `{"title": TEXT, "bars": [{"label": TEXT,
//! "ratio": NUMBER, "goal": NUMBER or null, "pass": true, false or null}, ...]}` and draws a
//! bar per entry on a logarithmic axis (the ratios run from a fraction to tens; a zero is drawn
//! at the axis's start), green when
//! its target passed, red when it missed, grey without a target, with the target as a black
//! tick, the ratio written at the bar's end, and a line at 1x. Missing or malformed fields are
//! errors naming them (status 1); an empty list draws an empty chart with a note.

use std::path::PathBuf;

use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// One bar.
#[derive(Debug, Clone, PartialEq)]
struct Bar {
    label: String,
    ratio: f64,
    goal: Option<f64>,
    pass: Option<bool>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("bench-chart: {e}");
        std::process::exit(1);
    }
}

fn run(args: &[String]) -> Result<(), Error> {
    let known = ["--input", "--output"];
    let input = PathBuf::from(sockserve_bench_peers::flag(args, &known, "--input", "")?);
    let output = PathBuf::from(sockserve_bench_peers::flag(args, &known, "--output", "")?);
    if input.as_os_str().is_empty() || output.as_os_str().is_empty() {
        return Err("usage: bench-chart --input JSON --output SVG".into());
    }
    let text = std::fs::read_to_string(&input).map_err(|e| format!("{}: {e}", input.display()))?;
    let json: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", input.display()))?;
    let (title, bars) = parse(&json).map_err(|e| format!("{}: {e}", input.display()))?;
    let height = 90 + 26 * bars.len().max(1) as u32;
    let root = SVGBackend::new(&output, (1000, height)).into_drawing_area();
    draw(&root, &title, &bars).map_err(|e| format!("{}: {e}", output.display()))?;
    root.present()
        .map_err(|e| format!("{}: {e}", output.display()))?;
    Ok(())
}

/// The title and bars of the JSON's `chart` object.
fn parse(json: &Value) -> Result<(String, Vec<Bar>), String> {
    let chart = json.get("chart").ok_or("no `chart` object")?;
    let title = chart
        .get("title")
        .and_then(Value::as_str)
        .ok_or("`chart.title` is not a string")?
        .to_owned();
    let bars = chart
        .get("bars")
        .and_then(Value::as_array)
        .ok_or("`chart.bars` is not a list")?;
    let bars = bars
        .iter()
        .enumerate()
        .map(|(i, bar)| {
            let field = |name: &str| format!("`chart.bars[{i}].{name}`");
            let label = bar
                .get("label")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{} is not a string", field("label")))?;
            let ratio = bar
                .get("ratio")
                .and_then(Value::as_f64)
                .filter(|r| r.is_finite() && *r >= 0.0)
                .ok_or_else(|| format!("{} is not a number >= 0", field("ratio")))?;
            let goal = match bar.get("goal") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_f64()
                        .filter(|g| g.is_finite() && *g > 0.0)
                        .ok_or_else(|| format!("{} is not a positive number", field("goal")))?,
                ),
            };
            let pass = match bar.get("pass") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_bool()
                        .ok_or_else(|| format!("{} is not a boolean", field("pass")))?,
                ),
            };
            Ok(Bar {
                label: label.to_owned(),
                ratio,
                goal,
                pass,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok((title, bars))
}

/// The x axis: a power of ten below the smallest figure to one above the largest.
fn x_range(bars: &[Bar]) -> (f64, f64) {
    // A zero (a row with no answer) is drawn at the axis's start.
    let figures = bars
        .iter()
        .flat_map(|b| std::iter::once(b.ratio).chain(b.goal))
        .filter(|f| *f > 0.0);
    let (lo, hi) = figures.fold((1.0f64, 1.0f64), |(lo, hi), f| (lo.min(f), hi.max(f)));
    (
        10f64.powf(lo.log10().floor()).min(0.1),
        10f64.powf((hi * 1.5).log10().ceil()).max(10.0),
    )
}

fn draw(root: &DrawingArea<SVGBackend<'_>, Shift>, title: &str, bars: &[Bar]) -> Result<(), Error> {
    root.fill(&WHITE)?;
    let (lo, hi) = x_range(bars);
    let n = bars.len().max(1);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(430)
        .build_cartesian_2d((lo..hi).log_scale(), (0..n).into_segmented())?;
    // Segment 0 is the bottom line: the labels from the last bar up, so the first is on top.
    let labels: Vec<String> = bars.iter().rev().map(|b| b.label.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("ratio (log scale); black tick: the target")
        .x_label_formatter(&|x| format!("{x}x"))
        .label_style(("sans-serif", 13))
        .draw()?;
    if bars.is_empty() {
        root.draw(&Text::new(
            "no ratios in this run (see the tables)",
            (460, 60),
            ("sans-serif", 14),
        ))?;
        return Ok(());
    }
    // Bars top-down in the order given: the first entry on the first line.
    let row = |i: usize| n - 1 - i;
    chart.draw_series(bars.iter().enumerate().map(|(i, bar)| {
        let color = match bar.pass {
            Some(true) => RGBColor(46, 160, 67),
            Some(false) => RGBColor(207, 34, 46),
            None => RGBColor(140, 140, 140),
        };
        let mut rect = Rectangle::new(
            [
                (lo, SegmentValue::Exact(row(i))),
                (bar.ratio.max(lo), SegmentValue::Exact(row(i) + 1)),
            ],
            color.filled(),
        );
        rect.set_margin(4, 4, 0, 0);
        rect
    }))?;
    chart.draw_series(bars.iter().enumerate().filter_map(|(i, bar)| {
        let goal = bar.goal?;
        Some(PathElement::new(
            vec![
                (goal, SegmentValue::Exact(row(i))),
                (goal, SegmentValue::Exact(row(i) + 1)),
            ],
            BLACK.stroke_width(3),
        ))
    }))?;
    chart.draw_series(bars.iter().enumerate().map(|(i, bar)| {
        Text::new(
            format!("{:.2}x", bar.ratio),
            (bar.ratio.max(lo) * 1.08, SegmentValue::CenterOf(row(i))),
            ("sans-serif", 12),
        )
    }))?;
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(1.0, SegmentValue::Exact(0)), (1.0, SegmentValue::Exact(n))],
        BLACK.mix(0.4).stroke_width(1),
    )))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_parse_and_bad_fields_are_named() {
        let json: Value = serde_json::from_str(
            r#"{"chart": {"title": "t", "bars": [
                {"label": "a", "ratio": 0.5, "goal": 0.9, "pass": false},
                {"label": "b", "ratio": 12, "goal": null, "pass": null}]}}"#,
        )
        .unwrap();
        let (title, bars) = parse(&json).unwrap();
        assert_eq!(title, "t");
        assert_eq!(bars.len(), 2);
        assert_eq!((bars[0].goal, bars[0].pass), (Some(0.9), Some(false)));
        assert_eq!((bars[1].goal, bars[1].pass), (None, None));
        assert_eq!(x_range(&bars), (0.1, 100.0));
        let bad: Value = serde_json::from_str(
            r#"{"chart": {"title": "t", "bars": [{"label": "a", "ratio": -1}]}}"#,
        )
        .unwrap();
        let e = parse(&bad).unwrap_err();
        assert!(e.contains("chart.bars[0].ratio"), "{e}");
        assert!(parse(&serde_json::json!({})).unwrap_err().contains("chart"));
    }
}
