//! Charts of a run, as SVG and PNG (plotters): completion curves, bandwidth, concurrent
//! downloads, errors and calls.
//!
//! Chart text is English and ASCII: the PNG backend draws glyphs from the font bundled in
//! `fonts/` (a 10 kB ASCII subset of DejaVu Sans), so the charts look the same on every machine
//! and need no system font.

use std::path::{Path, PathBuf};
use std::sync::Once;

use onshi_core::deployment::DeploymentState;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::des::Outcome;
use crate::report::state_column;

/// Size of every chart, in pixels.
pub const SIZE: (u32, u32) = (1200, 600);

const FONT: &[u8] = include_bytes!("../fonts/DejaVuSans-ascii.ttf");
const FAMILY: &str = "sans-serif";

/// Why a chart could not be written.
#[derive(Debug, thiserror::Error)]
#[error("chart {path}: {why}")]
pub struct ChartError {
    pub path: String,
    pub why: String,
}

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: &'static str,
    pub values: Vec<f64>,
    color: RGBColor,
}

/// One chart: lines against the simulated days.
#[derive(Debug, Clone)]
pub struct Chart {
    /// The file stem: `completion`, `bandwidth`, `errors`.
    pub name: &'static str,
    pub title: String,
    pub y_label: &'static str,
    pub series: Vec<Series>,
    /// `MM-DD` of each simulated day, for the x axis.
    days: Vec<String>,
}

const BLUE_: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const GREEN_: RGBColor = RGBColor(44, 160, 44);
const RED_: RGBColor = RGBColor(214, 39, 40);
const PURPLE: RGBColor = RGBColor(148, 103, 189);

/// The charts of a run.
pub fn charts(o: &Outcome) -> Vec<Chart> {
    let h = &o.hourly;
    let s = &o.summary;
    let days: Vec<String> = (0..=usize::from(s.days))
        .map(|d| {
            let dt = o.calendar.civil(d as u32 * 86_400);
            format!("{:02}-{:02}", dt.month(), dt.day())
        })
        .collect();
    let pct = |v: &[u32], of: u64| -> Vec<f64> {
        v.iter()
            .map(|n| 100.0 * f64::from(*n) / of.max(1) as f64)
            .collect()
    };
    let counts = |v: &[u32]| v.iter().map(|n| f64::from(*n)).collect::<Vec<_>>();
    let title = format!("campaign {}, seed {}", s.campaign, s.seed);
    vec![
        Chart {
            name: "completion",
            title: format!("Completion ({title})"),
            y_label: "% of the fleet",
            series: vec![
                Series {
                    name: "devices applied",
                    values: pct(&state_column(h, DeploymentState::Applied), s.devices),
                    color: BLUE_,
                },
                Series {
                    name: "sites done",
                    values: pct(&h.sites_done, s.sites),
                    color: GREEN_,
                },
                Series {
                    name: "sites waiting for a restart",
                    values: pct(&h.restart_required_sites, s.sites),
                    color: ORANGE,
                },
            ],
            days: days.clone(),
        },
        Chart {
            name: "bandwidth",
            title: format!("Distribution egress ({title})"),
            y_label: "Gbps",
            series: vec![
                Series {
                    name: "egress, hourly average (Gbps)",
                    values: (0..h.len()).map(|i| h.egress_gbps(i)).collect(),
                    color: BLUE_,
                },
                Series {
                    name: "egress, peak (Gbps)",
                    values: h.egress_peak_bps.iter().map(|b| b / 1e9).collect(),
                    color: RED_,
                },
            ],
            days: days.clone(),
        },
        Chart {
            name: "downloads",
            title: format!(
                "Concurrent downloads, throttle {} ({title})",
                s.bandwidth.max_concurrent_downloads
            ),
            y_label: "downloads",
            series: vec![Series {
                name: "concurrent downloads, hourly peak",
                values: counts(&h.downloads_peak),
                color: GREEN_,
            }],
            days: days.clone(),
        },
        Chart {
            name: "errors",
            title: format!("Patients meeting the error, calls ({title})"),
            y_label: "per hour",
            series: vec![
                Series {
                    name: "patients meeting the error",
                    values: counts(&h.patient_errors),
                    color: RED_,
                },
                Series {
                    name: "of which 901 on the card reader",
                    values: counts(&h.reader_901),
                    color: ORANGE,
                },
                Series {
                    name: "calls to the call centre",
                    values: counts(&h.calls),
                    color: PURPLE,
                },
            ],
            days,
        },
    ]
}

/// Writes every chart of a run into `dir` as `NAME.svg` and `NAME.png`; returns the paths.
pub fn write_all(o: &Outcome, dir: &Path) -> Result<Vec<PathBuf>, ChartError> {
    let mut written = Vec::new();
    for chart in charts(o) {
        let svg = dir.join(format!("{}.svg", chart.name));
        render(
            &chart,
            SVGBackend::new(&svg, SIZE).into_drawing_area(),
            &svg,
        )?;
        written.push(svg);
        let png = dir.join(format!("{}.png", chart.name));
        render(
            &chart,
            BitMapBackend::new(&png, SIZE).into_drawing_area(),
            &png,
        )?;
        written.push(png);
    }
    Ok(written)
}

/// Registers the bundled font once per process.
fn font() -> Result<(), String> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = register_font(FAMILY, FontStyle::Normal, FONT)
            .map_err(|_| "the bundled font does not load".to_owned());
    });
    result
}

fn render<DB: DrawingBackend>(
    chart: &Chart,
    root: DrawingArea<DB, Shift>,
    path: &Path,
) -> Result<(), ChartError> {
    let fail = |why: String| ChartError {
        path: path.display().to_string(),
        why,
    };
    font().map_err(fail)?;
    draw(chart, &root).map_err(|e| fail(e.to_string()))?;
    root.present().map_err(|e| fail(e.to_string()))
}

fn top(series: &[Series]) -> f64 {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0, f64::max);
    if max > 0.0 { max * 1.08 } else { 1.0 }
}

fn draw<DB: DrawingBackend>(
    chart: &Chart,
    root: &DrawingArea<DB, Shift>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let days = chart.days.len().saturating_sub(1) as f64;
    let days_labels = chart.days.clone();
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(&chart.title, (FAMILY, 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70);
    let mut ctx = builder.build_cartesian_2d(0f64..days.max(1.0), 0f64..top(&chart.series))?;
    let label = move |d: &f64| {
        let i = d.round();
        if (d - i).abs() < 1e-6 && i >= 0.0 {
            days_labels.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    ctx.configure_mesh()
        .x_labels(chart.days.len().min(24))
        .x_label_formatter(&label)
        .x_desc("date")
        .y_desc(chart.y_label)
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 15))
        .draw()?;
    let points = |s: &Series| -> Vec<(f64, f64)> {
        s.values
            .iter()
            .enumerate()
            .map(|(h, v)| (h as f64 / 24.0, *v))
            .collect()
    };
    for s in &chart.series {
        let color = s.color;
        ctx.draw_series(LineSeries::new(points(s), color.stroke_width(2)))?
            .label(s.name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    ctx.configure_series_labels()
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Scenario, preset_campaign};

    fn outcome() -> Outcome {
        let sc = Scenario::parse(
            "days = 14\n[distribution]\nmax_concurrent_downloads = 20\negress_gbps = 0.04\n\
             [sites.hospital]\ncount = 20\n[sites.clinic]\ncount = 200\n\
             [sites.dental]\ncount = 150\n[sites.pharmacy]\ncount = 130\n",
            preset_campaign,
        )
        .expect("valid scenario");
        crate::run(&sc, 1, &mut |_| {})
    }

    #[test]
    fn every_chart_is_valid_svg_with_its_series() {
        let dir = tempfile::tempdir().expect("temp dir");
        let o = outcome();
        let written = write_all(&o, dir.path()).expect("charts written");
        assert_eq!(written.len(), 8);
        for chart in charts(&o) {
            let text = std::fs::read_to_string(dir.path().join(format!("{}.svg", chart.name)))
                .expect("svg written");
            let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
            let root = doc.root_element();
            assert_eq!(root.tag_name().name(), "svg");
            assert_eq!(root.attribute("width"), Some("1200"));
            let texts: Vec<&str> = doc
                .descendants()
                .filter(|n| n.has_tag_name("text"))
                .filter_map(|n| n.text())
                .map(str::trim)
                .collect();
            let lines = doc
                .descendants()
                .filter(|n| n.has_tag_name("polyline"))
                .count();
            for s in &chart.series {
                assert!(
                    texts.contains(&s.name),
                    "{}: legend lacks {:?}",
                    chart.name,
                    s.name
                );
            }
            let n = chart.series.len();
            assert!(
                lines >= n,
                "{}: {lines} polylines for {n} series",
                chart.name
            );
            assert!(texts.contains(&"01-19"), "{}: x axis dates", chart.name);
        }
    }

    #[test]
    fn every_chart_is_a_png_of_the_chart_size_with_ink_on_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_all(&outcome(), dir.path()).expect("charts written");
        for name in ["completion", "bandwidth", "downloads", "errors"] {
            let bytes = std::fs::read(dir.path().join(format!("{name}.png"))).expect("png");
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{name}: PNG signature");
            let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
            let mut reader = decoder.read_info().expect("PNG header");
            let mut pixels = vec![0; reader.output_buffer_size()];
            let info = reader.next_frame(&mut pixels).expect("PNG data");
            assert_eq!((info.width, info.height), SIZE, "{name}");
            // Lines in colour and text in black, not a blank canvas.
            let coloured = pixels
                .chunks(3)
                .filter(|p| p[0] != p[1] || p[1] != p[2])
                .count();
            let dark = pixels
                .chunks(3)
                .filter(|p| p.iter().all(|c| *c < 60))
                .count();
            assert!(coloured > 500, "{name}: {coloured} coloured pixels");
            assert!(dark > 2_000, "{name}: {dark} dark pixels (text and axes)");
        }
    }
}
